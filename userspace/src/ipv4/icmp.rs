//! ICMP for IPv4 (net/ipv4/icmp.c): answer echo requests, count what
//! arrives, turn a port unreachable into `ECONNREFUSED` on the connected sock
//! it concerns, and send destination-unreachable errors under Linux's two
//! rate limits (`crate::ratelimit`).

use std::net::SocketAddrV4;
use std::time::Instant;

use super::ip_output::{ip_build_header, ip_output};
use super::RxIp;
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
                    icmp_unreach(net, socks, hdr.code, &quote);
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
/// connected ones, as Linux without IP_RECVERR).
fn icmp_unreach(net: &Net, socks: &InetHashTables, code: u8, quote: &IcmpQuote<&[u8]>) {
    if code != icmp::unreach_code::PORT {
        return;
    }
    // The quoted header is cut short by design (its total length is the
    // original's): the quote view reads only its fixed fields.
    let dst = quote.dst_addr();
    if quote.version() != 4 || quote.protocol() != protocol::UDP || quote.src_addr() != net.route.addr {
        return;
    }
    let Some((sport, dport)) = quote.ports() else { return };
    if let Some(sock) = socks.lookup(&DemuxKey { protocol: protocol::UDP, port: sport }) {
        if sock.remote() == Some(SocketAddrV4::new(dst, dport)) {
            sock.set_err(Errno::ECONNREFUSED);
        }
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
    if let Err(limited) = net.icmp_ratelimit.allow(ip.hdr.src, now) {
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
    let quoted = &umem.frame(original)[ip.l3..ip.l3 + ip.total_len()];
    let buf = umem.frame_mut(&mut frame);
    let icmp_len = msg.emit_quoting(&mut buf[l4..], quoted);
    ip_build_header(net, &mut buf[l3..l4], ip.hdr.src, protocol::ICMP, icmp_len, TOS_INTERNETCONTROL);
    if ip_output(net, q, frame, l3, ipv4::MIN_HEADER_LEN + icmp_len, ip.hdr.src, now) {
        let mib = &mut net.mib;
        mib.IcmpOutMsgs += 1;
        match msg.msg_type {
            msg_type::DEST_UNREACH => {
                mib.IcmpOutDestUnreachs += 1;
                mib.IcmpMsgOutType3 += 1;
            }
            msg_type::PARAMETER_PROBLEM => {
                mib.IcmpOutParmProbs += 1;
                mib.IcmpMsgOutType12 += 1;
            }
            _ => {}
        }
    }
}
