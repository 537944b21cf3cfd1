//! ICMP for IPv4 (net/ipv4/icmp.c): answer echo requests, count what
//! arrives, turn a port unreachable into `ECONNREFUSED` on the connected sock
//! it concerns, and send destination-unreachable errors under Linux's two
//! rate limits (`crate::ratelimit`).

use std::net::SocketAddrV4;
use std::time::Instant;

use super::ip_output::{ip_build_header, ip_output};
use super::RxIp;
use super::{ReasmIp, Reassembled};
use crate::errno::Errno;
use crate::inet_hashtables::{DemuxKey, InetHashTables};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::ratelimit::RateLimited;
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::ethernet::PktType;
use crate::wire::icmp::{self, msg_type, IcmpError, IcmpPacket, IcmpQuote, IcmpRepr};
use crate::wire::ipv4::{self, protocol};

/// `IPTOS_PREC_INTERNETCONTROL`: the TOS Linux gives ICMP errors.
const TOS_INTERNETCONTROL: u8 = 0xc0;
/// `NR_ICMP_TYPES`: the highest ICMP type Linux knows.
const NR_ICMP_TYPES: u8 = 18;
/// `net.ipv4.icmp_echo_ignore_broadcasts`, at its default (1): echo and
/// timestamp requests to a broadcast or multicast address get no answer.
const ICMP_ECHO_IGNORE_BROADCASTS: bool = true;

/// `icmp_rcv`: the ICMP message described by `ip` in `frame`.
pub fn icmp_rcv(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    frame: Frame,
    ip: &RxIp,
    now: Instant,
) {
    net.mib.IcmpInMsgs += 1;
    let msg = IcmpPacket::new_unchecked(&umem.frame(&frame)[ip.l4..ip.l4 + ip.l4_len]);
    let hdr = match IcmpRepr::parse(&msg) {
        Ok(h) => h,
        Err(e) => {
            if e == IcmpError::ChecksumError {
                net.mib.IcmpInCsumErrors += 1;
            }
            net.mib.IcmpInErrors += 1;
            let reason =
                if e == IcmpError::ChecksumError { MibCounter::IcmpInCsumErrors } else { MibCounter::IcmpInErrors };
            return q.kfree_skb_reason(frame, reason);
        }
    };
    // ICMPMSGIN_INC_STATS: the type is counted before any check on it.
    match hdr.msg_type {
        msg_type::ECHO_REQUEST => {
            net.mib.IcmpInEchos += 1;
            net.mib.IcmpMsgInType8 += 1;
        }
        msg_type::ECHO_REPLY => {
            net.mib.IcmpInEchoReps += 1;
            net.mib.IcmpMsgInType0 += 1;
        }
        msg_type::DEST_UNREACH => {
            net.mib.IcmpInDestUnreachs += 1;
            net.mib.IcmpMsgInType3 += 1;
        }
        _ => {}
    }
    // To a broadcast or multicast address (RFC 1122 3.2.2.6, 3.2.2.8): echo
    // and timestamp requests are ignored as icmp_echo_ignore_broadcasts says,
    // and only those and address mask messages are looked at at all.
    if ip.is_bcast_route() && hdr.msg_type <= NR_ICMP_TYPES {
        let t = hdr.msg_type;
        let ignored = (t == msg_type::ECHO_REQUEST || t == msg_type::TIMESTAMP) && ICMP_ECHO_IGNORE_BROADCASTS;
        let handled =
            matches!(t, msg_type::ECHO_REQUEST | msg_type::TIMESTAMP | msg_type::ADDRESS | msg_type::ADDRESS_REPLY);
        if ignored || !handled {
            net.mib.IcmpInErrors += 1;
            return q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
        }
    }
    match hdr.msg_type {
        msg_type::ECHO_REQUEST => icmp_echo(net, q, frame, ip, now),
        msg_type::ECHO_REPLY => q.free_frame(frame),
        msg_type::DEST_UNREACH => {
            // icmp_unreach(): no room for the quoted IP header, or a mangled
            // one, is an ICMP input error.
            match msg.quote() {
                Ok(quote) => {
                    icmp_unreach(net, socks, hdr.code, hdr.rest, &quote, now);
                    q.free_frame(frame);
                }
                Err(_) => {
                    net.mib.IcmpInErrors += 1;
                    q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
                }
            }
        }
        // icmp_rcv(): a type above NR_ICMP_TYPES is an error; known
        // types we do not handle are silently ignored.
        t => {
            if t > NR_ICMP_TYPES {
                net.mib.IcmpInErrors += 1;
                q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
            } else {
                q.free_frame(frame);
            }
        }
    }
}

/// `icmp_unreach` → `__udp4_lib_err`: a port unreachable for a datagram a
/// connected UDP socket sent becomes ECONNREFUSED on that socket (only
/// connected ones, as Linux without IP_RECVERR). A fragmentation needed
/// (`rest` carries the next hop's MTU in its last two bytes) for a datagram
/// of one of our UDP sockets lowers the path MTU to its destination
/// (`ipv4_sk_update_pmtu`, `net.ipv4.ip_no_pmtu_disc` 0) and, unless the
/// socket does `IP_PMTUDISC_DONT`, is `EMSGSIZE` on a connected socket.
fn icmp_unreach(net: &Net, socks: &InetHashTables, code: u8, rest: [u8; 4], quote: &IcmpQuote<&[u8]>, now: Instant) {
    if code != icmp::unreach_code::PORT && code != icmp::unreach_code::FRAG_NEEDED {
        return;
    }
    // The quoted header is cut short by design (its total length is the
    // original's): the quote view reads only its fixed fields.
    let dst = quote.dst_addr();
    if quote.version() != 4 || quote.protocol() != protocol::UDP || quote.src_addr() != net.route.addr {
        return;
    }
    let Some((sport, dport)) = quote.ports() else { return };
    let Some(sock) = socks.lookup(&DemuxKey { protocol: protocol::UDP, port: sport }) else { return };
    let peer = SocketAddrV4::new(dst, dport);
    // The lookup of the reverse flow: a connected socket only for its peer.
    if sock.remote().is_some_and(|r| r != peer) {
        return;
    }
    if code == icmp::unreach_code::PORT {
        if sock.remote() == Some(peer) {
            sock.set_err(Errno::ECONNREFUSED);
        }
        return;
    }
    let mtu = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
    net.pmtu.update(dst, mtu, net.mtu, now);
    if sock.remote() == Some(peer) && sock.pmtudisc() != crate::sock::PmtuDisc::Dont {
        sock.set_err(Errno::EMSGSIZE);
    }
}

/// `icmp_echo` → `icmp_reply`, in the same frame: the reply's 20-byte IP
/// header goes right before the ICMP message (the request's header was at
/// least as long, so it fits), the Ethernet header before that.
fn icmp_echo(net: &mut Net, q: &mut NetdevQueue, mut frame: Frame, ip: &RxIp, now: Instant) {
    let umem = q.umem().clone();
    let buf = umem.frame_mut(&mut frame);
    IcmpPacket::new_unchecked(&mut buf[ip.l4..ip.l4 + ip.l4_len]).echo_request_to_reply();
    let l3 = ip.l4 - ipv4::MIN_HEADER_LEN;
    ip_build_header(net, &mut buf[l3..ip.l4], ip.hdr.src, protocol::ICMP, ip.l4_len, ip.hdr.tos);
    if ip_output(net, q, frame, l3, ipv4::MIN_HEADER_LEN + ip.l4_len, ip.hdr.src, now) {
        net.mib.IcmpOutMsgs += 1;
        net.mib.IcmpOutEchoReps += 1;
        net.mib.IcmpMsgOutType0 += 1;
    }
}

/// `icmp_send`: an error message `msg` (destination unreachable, parameter
/// problem) about the offending datagram (`original`, described by `ip`),
/// quoted in a new frame; the original stays with the caller. Sends nothing,
/// as `__icmp_send` (net/ipv4/icmp.c) does, when the datagram came in a frame
/// not to our MAC (`pkt_type != PACKET_HOST`), to a broadcast or multicast
/// address, is a fragment other than the first, or is itself an ICMP error
/// (or of a type past `NR_ICMP_TYPES`, or too short to tell); then under the
/// rate limits (`icmpv4_xrlim_allow`: both types are in `icmp_ratemask`).
pub fn icmp_send(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    original: &Frame,
    ip: &RxIp,
    msg: IcmpRepr,
    now: Instant,
) {
    if ip.pkt_type != PktType::Host || ip.is_bcast_route() || ip.hdr.frag_offset != 0 {
        return;
    }
    if ip.hdr.protocol == protocol::ICMP {
        let inner_type = umem.frame(original)[ip.l3..ip.l3 + ip.total_len()].get(ip.l4 - ip.l3).copied();
        match inner_type {
            Some(t) if t <= NR_ICMP_TYPES && !msg_type::is_error(t) => {}
            _ => return,
        }
    }
    let quoted = &umem.frame(original)[ip.l3..ip.l3 + ip.total_len()];
    icmp_xmit_error(net, q, quoted, ip.hdr.src, msg, now);
}

/// `icmp_send` for a datagram not in one frame (a reassembled one, `ip`):
/// `quoted` is its IP header and first bytes, as the message will quote
/// them. The same checks as [`icmp_send`]: nothing when its first fragment
/// came in a frame not to our MAC (`ip.pkt_type`, which the reassembled skb
/// takes from its head), to a broadcast or multicast address (`ip.route`), or
/// when it is an ICMP error itself.
pub fn icmp_send_reassembled(
    net: &mut Net,
    q: &mut NetdevQueue,
    quoted: &[u8],
    ip: &ReasmIp,
    msg: IcmpRepr,
    now: Instant,
) {
    let hdr = &ip.hdr;
    if ip.pkt_type != PktType::Host || ip.route.is_bcast() {
        return;
    }
    if hdr.protocol == protocol::ICMP {
        let ihl = usize::from(quoted.first().map_or(0, |b| b & 0x0f)) * 4;
        match quoted.get(ihl).copied() {
            Some(t) if t <= NR_ICMP_TYPES && !msg_type::is_error(t) => {}
            _ => return,
        }
    }
    icmp_xmit_error(net, q, quoted, hdr.src, msg, now);
}

/// `icmp_send(head, ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME)` from `ip_expire`:
/// quotes the first fragment of a datagram never completed (its IP header
/// and payload at `quoted` in `original`) to its sender `src`. Not for a
/// fragment of an ICMP error message (`icmp_send` answers no error with an
/// error).
pub fn icmp_send_time_exceeded(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    original: &Frame,
    quoted: std::ops::Range<usize>,
    src: std::net::Ipv4Addr,
    now: Instant,
) {
    let bytes = &umem.frame(original)[quoted];
    let ihl = usize::from(bytes[0] & 0x0f) * 4;
    if bytes[9] == protocol::ICMP {
        let t = bytes.get(ihl).copied().unwrap_or(0);
        if msg_type::is_error(t) || t > NR_ICMP_TYPES {
            return;
        }
    }
    icmp_xmit_error(net, q, bytes, src, IcmpRepr::time_exceeded(icmp::exc_code::FRAGTIME), now);
}

/// The sending half of `icmp_send`: the error `repr` to `dst`, quoting
/// `quoted` (the offending datagram's header and first bytes), under the rate
/// limits, counted by type.
fn icmp_xmit_error(
    net: &mut Net,
    q: &mut NetdevQueue,
    quoted: &[u8],
    dst: std::net::Ipv4Addr,
    repr: IcmpRepr,
    now: Instant,
) {
    if let Err(limited) = net.icmp_ratelimit.allow(dst, now) {
        match limited {
            RateLimited::Global => net.mib.IcmpOutRateLimitGlobal += 1,
            RateLimited::Host => net.mib.IcmpOutRateLimitHost += 1,
        }
        return;
    }
    let Some(mut frame) = q.alloc_frame() else {
        net.mib.XskNoFreeFrames += 1;
        return;
    };
    let l3 = crate::wire::ethernet::HEADER_LEN;
    let l4 = l3 + ipv4::MIN_HEADER_LEN;
    let umem = q.umem().clone();
    let buf = umem.frame_mut(&mut frame);
    let icmp_len = repr.emit_quoting(&mut buf[l4..], quoted);
    ip_build_header(net, &mut buf[l3..l4], dst, protocol::ICMP, icmp_len, TOS_INTERNETCONTROL);
    if ip_output(net, q, frame, l3, ipv4::MIN_HEADER_LEN + icmp_len, dst, now) {
        let mib = &mut net.mib;
        mib.IcmpOutMsgs += 1;
        match repr.msg_type {
            msg_type::DEST_UNREACH => {
                mib.IcmpOutDestUnreachs += 1;
                mib.IcmpMsgOutType3 += 1;
            }
            msg_type::TIME_EXCEEDED => {
                mib.IcmpOutTimeExcds += 1;
                mib.IcmpMsgOutType11 += 1;
            }
            msg_type::PARAMETER_PROBLEM => {
                mib.IcmpOutParmProbs += 1;
                mib.IcmpMsgOutType12 += 1;
            }
            _ => {}
        }
    }
}

/// `icmp_rcv` for a reassembled message (`r.ip.hdr`, its body the chain
/// `r.skb`): the checksum across the pieces; an echo request to a broadcast
/// or multicast address is ignored (`icmp_echo_ignore_broadcasts`, an
/// `IcmpInErrors` as for one frame); else it is answered in its
/// own frames, piece for piece: the head's type and checksum turned into a
/// reply's (`icmp_echo`), and each piece sent back as a fragment of the
/// reply with the request's offsets, one new identifier, no DF (Linux's
/// ICMP socket does `IP_PMTUDISC_DONT`). A piece that no longer fits the
/// path MTU fails the reply (`IpFragFails`). Other reassembled ICMP messages
/// are counted in and dropped (`XskIpReasmUnsupported`).
pub fn icmp_rcv_chained(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, r: Reassembled, now: Instant) {
    let (hdr, skb) = (&r.ip.hdr, r.skb);
    net.mib.IcmpInMsgs += 1;
    if crate::wire::checksum::fold(skb.csum(umem, 0)) != 0xFFFF {
        net.mib.IcmpInCsumErrors += 1;
        net.mib.IcmpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IcmpInCsumErrors));
    }
    if skb.data(umem).first() != Some(&msg_type::ECHO_REQUEST) {
        net.mib.XskIpReasmUnsupported += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskIpReasmUnsupported));
    }
    net.mib.IcmpInEchos += 1;
    net.mib.IcmpMsgInType8 += 1;
    if r.ip.route.is_bcast() && ICMP_ECHO_IGNORE_BROADCASTS {
        net.mib.IcmpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IcmpInErrors));
    }
    let path = net.pmtu.get(hdr.src, net.mtu, now);
    let pieces = skb.frames();
    // Each piece goes back as a fragment at its own offset: every piece but
    // the last must hold a multiple of 8 bytes (fragments' pieces do; a
    // multi-buffer frame's pieces need not, and are not answered this way).
    let (mut fits, mut aligned, mut seen) = (true, true, 0);
    skb.for_each_piece(umem, |p| {
        fits &= ipv4::MIN_HEADER_LEN + p.len() <= path.mtu;
        seen += 1;
        aligned &= seen == pieces || p.len() % 8 == 0;
    });
    if !aligned {
        net.mib.XskIpReasmUnsupported += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskIpReasmUnsupported));
    }
    if !fits {
        net.mib.IpFragFails += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IpFragFails));
    }
    let ident = net.next_ip_ident();
    let mut offset = 0;
    for (i, (mut frame, data, len)) in skb.into_pieces(umem).enumerate() {
        let buf = umem.frame_mut(&mut frame);
        if i == 0 {
            IcmpPacket::new_unchecked(&mut buf[data..data + len]).echo_request_to_reply();
        }
        let l3 = data - ipv4::MIN_HEADER_LEN;
        let mf = i + 1 < pieces;
        super::ip_output::ip_build_header_id(
            net,
            &mut buf[l3..data],
            hdr.src,
            protocol::ICMP,
            len,
            hdr.tos,
            ident,
            false,
            mf,
            (offset / 8) as u16,
        );
        offset += len;
        net.mib.IpFragCreates += 1;
        super::ip_output::ip_output_frag(net, q, frame, l3, ipv4::MIN_HEADER_LEN + len, hdr.src, now, i == 0);
    }
    net.mib.IpFragOKs += 1;
    net.mib.IcmpOutMsgs += 1;
    net.mib.IcmpOutEchoReps += 1;
    net.mib.IcmpMsgOutType0 += 1;
}
