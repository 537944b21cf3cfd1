//! ICMP for IPv4 (net/ipv4/icmp.c): answer echo requests, count what
//! arrives, hand an error to the protocol it quotes (a port unreachable is
//! `ECONNREFUSED` on the connected UDP sock it concerns; TCP's handler is
//! `ipv4::tcp::err`), and send destination-unreachable errors under Linux's two
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
/// `ICMP_EXT_ECHO`: an extended echo request (RFC 8335, PROBE).
const ICMP_EXT_ECHO: u8 = 42;
/// `NR_ICMP_UNREACH`: the highest destination-unreachable code Linux knows.
const NR_ICMP_UNREACH: u8 = 15;
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
    count_in_type(net, hdr.msg_type);
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
    let body = &umem.frame(&frame)[ip.l4 + icmp::HEADER_LEN..ip.l4 + ip.l4_len];
    match hdr.msg_type {
        msg_type::ECHO_REQUEST => icmp_echo(net, q, frame, ip, now),
        msg_type::ECHO_REPLY => q.free_frame(frame),
        msg_type::TIMESTAMP => icmp_timestamp(net, q, frame, ip, now),
        msg_type::DEST_UNREACH | msg_type::SOURCE_QUENCH | msg_type::TIME_EXCEEDED | msg_type::PARAMETER_PROBLEM => {
            // icmp_unreach(): no room for the quoted IP header, or a mangled
            // one, is an ICMP input error; so is a quote without the 8
            // bytes past the header that icmp_socket_deliver() wants, for
            // a message it would deliver (a destination unreachable of a
            // code past NR_ICMP_UNREACH is not).
            let undeliverable = hdr.msg_type == msg_type::DEST_UNREACH && hdr.code > NR_ICMP_UNREACH;
            match msg.quote() {
                Ok(_) if undeliverable => q.free_frame(frame),
                Ok(quote) if body.len() >= quote.header_len() + 8 => {
                    icmp_socket_deliver(net, socks, q, umem, hdr.msg_type, hdr.code, hdr.rest, &quote, now);
                    q.free_frame(frame);
                }
                _ => {
                    net.mib.IcmpInErrors += 1;
                    q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
                }
            }
        }
        msg_type::REDIRECT => {
            // icmp_redirect(): shorter than an IP header is an error, and
            // icmp_socket_deliver() wants the header's length and 8 more.
            // A redirect changes no route of ours (we route through the
            // gateway we were given, as Linux with accept_redirects 0 on a
            // host: the default for a router, and what a server wants).
            let header_len = body.first().map_or(usize::MAX, |b| usize::from(b & 0x0f) * 4);
            if body.len() < ipv4::MIN_HEADER_LEN || body.len() < header_len.saturating_add(8) {
                net.mib.IcmpInErrors += 1;
                q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
            } else {
                if let Ok(quote) = msg.quote() {
                    icmp_socket_deliver(net, socks, q, umem, hdr.msg_type, hdr.code, hdr.rest, &quote, now);
                }
                q.free_frame(frame);
            }
        }
        // icmp_rcv(): an extended echo request (RFC 8335, PROBE) is
        // ignored unless net.ipv4.icmp_echo_enable_probe (0 by default);
        // another type above NR_ICMP_TYPES is an error; known types we do
        // not handle are silently ignored.
        t => {
            if t > NR_ICMP_TYPES && t != ICMP_EXT_ECHO {
                net.mib.IcmpInErrors += 1;
                q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
            } else {
                q.free_frame(frame);
            }
        }
    }
}

/// `ICMPMSGIN_INC_STATS` and the `Icmp` line's per-type counters
/// (`icmpmsg_put` / `icmp_put` in net/ipv4/proc.c derive them from the
/// per-type counts): counted before any check on the message.
fn count_in_type(net: &mut Net, t: u8) {
    let m = &mut net.mib;
    match t {
        msg_type::ECHO_REPLY => (m.IcmpInEchoReps += 1, m.IcmpMsgInType0 += 1),
        msg_type::DEST_UNREACH => (m.IcmpInDestUnreachs += 1, m.IcmpMsgInType3 += 1),
        msg_type::SOURCE_QUENCH => (m.IcmpInSrcQuenchs += 1, m.IcmpMsgInType4 += 1),
        msg_type::REDIRECT => (m.IcmpInRedirects += 1, m.IcmpMsgInType5 += 1),
        msg_type::ECHO_REQUEST => (m.IcmpInEchos += 1, m.IcmpMsgInType8 += 1),
        msg_type::TIME_EXCEEDED => (m.IcmpInTimeExcds += 1, m.IcmpMsgInType11 += 1),
        msg_type::PARAMETER_PROBLEM => (m.IcmpInParmProbs += 1, m.IcmpMsgInType12 += 1),
        msg_type::TIMESTAMP => (m.IcmpInTimestamps += 1, m.IcmpMsgInType13 += 1),
        msg_type::TIMESTAMP_REPLY => (m.IcmpInTimestampReps += 1, m.IcmpMsgInType14 += 1),
        msg_type::ADDRESS => (m.IcmpInAddrMasks += 1, m.IcmpMsgInType17 += 1),
        msg_type::ADDRESS_REPLY => (m.IcmpInAddrMaskReps += 1, m.IcmpMsgInType18 += 1),
        ICMP_EXT_ECHO => ((), m.IcmpMsgInType42 += 1),
        _ => ((), ()),
    };
}

/// `icmp_err_convert[]` (net/ipv4/icmp.c): the errno of a destination
/// unreachable's code, and whether it is fatal (`harderr`) for a socket.
fn icmp_err_convert(code: u8) -> Option<(Errno, bool)> {
    Some(match code {
        0 => (Errno::ENETUNREACH, false),       // ICMP_NET_UNREACH
        1 => (Errno::EHOSTUNREACH, false),      // ICMP_HOST_UNREACH
        2 => (Errno::ENOPROTOOPT, true),        // ICMP_PROT_UNREACH
        3 => (Errno::ECONNREFUSED, true),       // ICMP_PORT_UNREACH
        4 => (Errno::EMSGSIZE, false),          // ICMP_FRAG_NEEDED
        5 => (Errno::EOPNOTSUPP, false),        // ICMP_SR_FAILED
        6 => (Errno::ENETUNREACH, true),        // ICMP_NET_UNKNOWN
        7 => (Errno::EHOSTDOWN, true),          // ICMP_HOST_UNKNOWN
        8 => (Errno::ENONET, true),             // ICMP_HOST_ISOLATED
        9 => (Errno::ENETUNREACH, true),        // ICMP_NET_ANO
        10 => (Errno::EHOSTUNREACH, true),      // ICMP_HOST_ANO
        11 => (Errno::ENETUNREACH, false),      // ICMP_NET_UNR_TOS
        12 => (Errno::EHOSTUNREACH, false),     // ICMP_HOST_UNR_TOS
        13..=15 => (Errno::EHOSTUNREACH, true), // PKT_FILTERED, PREC_VIOLATION, PREC_CUTOFF
        _ => return None,
    })
}

/// `icmp_socket_deliver`: an ICMP error (destination unreachable, source
/// quench, redirect, time exceeded, parameter problem) to the error handler
/// of the protocol it quotes: UDP's (`__udp4_lib_err`) or TCP's
/// (`tcp_v4_err`, [`crate::ipv4::tcp::err`]); others have none here. Each
/// counts `IcmpInErrors` when no socket of ours sent what is quoted, as
/// Linux's handlers do.
#[allow(clippy::too_many_arguments)]
fn icmp_socket_deliver(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    msg_type: u8,
    code: u8,
    rest: [u8; 4],
    quote: &IcmpQuote<&[u8]>,
    now: Instant,
) {
    if quote.version() != 4 {
        return;
    }
    // The quoted header is cut short by design (its total length is the
    // original's): the quote view reads only its fixed fields, and the
    // caller checked that the 8 bytes past it (the ports) are there.
    let Some((sport, dport)) = quote.ports() else { return };
    let local = SocketAddrV4::new(quote.src_addr(), sport);
    let peer = SocketAddrV4::new(quote.dst_addr(), dport);
    match quote.protocol() {
        protocol::UDP => udp_err(net, socks, msg_type, code, rest, local, peer, now),
        protocol::TCP => {
            let th = quote.transport_header();
            let Some(seq) = th.get(4..8).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])) else { return };
            let mtu = u16::from_be_bytes([rest[2], rest[3]]);
            let e = crate::ipv4::tcp::err::TcpIcmpErr { msg_type, code, mtu, local, peer, seq };
            crate::ipv4::tcp::err::tcp_v4_err(net, q, umem, &e, icmp_err_convert, now);
        }
        _ => {}
    }
}

/// `__udp4_lib_err`: an ICMP error about a datagram one of our UDP sockets
/// sent from `local` to `peer`. The socket is found as the reverse flow
/// finds it (bound to `local`'s port, to its address or any, connected to
/// `peer` if at all); none is an `IcmpInErrors`. On a connected socket
/// (Linux without `IP_RECVERR`) a fatal error sets the socket's error: a
/// destination unreachable by `icmp_err_convert` (port unreachable:
/// `ECONNREFUSED`; protocol unreachable: `ENOPROTOOPT`; …) and a parameter
/// problem (`EPROTO`); a time exceeded, a source quench, a redirect or a
/// non-fatal unreachable (network, host) change nothing. A fragmentation
/// needed (`rest` carries the next hop's MTU in its last two bytes) lowers
/// the path MTU to `peer` (`ipv4_sk_update_pmtu`, `net.ipv4.ip_no_pmtu_disc`
/// 0) and, unless the socket does `IP_PMTUDISC_DONT`, is `EMSGSIZE` on a
/// connected socket.
#[allow(clippy::too_many_arguments)]
fn udp_err(
    net: &mut Net,
    socks: &InetHashTables,
    msg_type: u8,
    code: u8,
    rest: [u8; 4],
    local: SocketAddrV4,
    peer: SocketAddrV4,
    now: Instant,
) {
    let sock = socks.lookup(&DemuxKey { protocol: protocol::UDP, port: local.port() }).filter(|s| {
        s.local().is_none_or(|a| a.ip().is_unspecified() || a.ip() == local.ip())
            && s.remote().is_none_or(|r| r == peer)
    });
    let Some(sock) = sock else {
        net.mib.IcmpInErrors += 1;
        return;
    };
    let err = match msg_type {
        msg_type::DEST_UNREACH if code == icmp::unreach_code::FRAG_NEEDED => {
            let mtu = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            net.pmtu.update(*peer.ip(), mtu, net.mtu, now);
            if sock.pmtudisc() == crate::sock::PmtuDisc::Dont {
                return;
            }
            Errno::EMSGSIZE
        }
        msg_type::DEST_UNREACH => match icmp_err_convert(code) {
            Some((errno, true)) => errno,
            _ => return,
        },
        msg_type::PARAMETER_PROBLEM => Errno::EPROTO,
        _ => return,
    };
    if sock.remote() == Some(peer) {
        sock.set_err(err);
    }
}

/// `icmp_timestamp` → `icmp_reply` (RFC 792), in the same frame: a
/// timestamp reply of 20 bytes, the request's identifier and sequence
/// number, its originate timestamp (the first 4 bytes of its data), and the
/// receive and transmit timestamps both the milliseconds since midnight UTC
/// now (`inet_current_timestamp`: the wall clock, not the loop's `now`). A
/// request with less than the originate timestamp is an input error.
fn icmp_timestamp(net: &mut Net, q: &mut NetdevQueue, mut frame: Frame, ip: &RxIp, now: Instant) {
    const REPLY_LEN: usize = icmp::HEADER_LEN + 12;
    if ip.l4_len < icmp::HEADER_LEN + 4 || ip.l4 + REPLY_LEN > q.umem().frame_size() as usize {
        net.mib.IcmpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::IcmpInErrors);
    }
    let since_midnight_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| ((d.as_secs() % 86_400) * 1000 + u64::from(d.subsec_millis())) as u32);
    let umem = q.umem().clone();
    let buf = umem.frame_mut(&mut frame);
    let msg = &mut buf[ip.l4..ip.l4 + REPLY_LEN];
    msg[0] = msg_type::TIMESTAMP_REPLY;
    msg[1] = 0;
    // Identifier, sequence number (4..8) and originate timestamp (8..12) stay.
    msg[12..16].copy_from_slice(&since_midnight_ms.to_be_bytes());
    msg[16..20].copy_from_slice(&since_midnight_ms.to_be_bytes());
    let mut reply = IcmpPacket::new_unchecked(msg);
    reply.fill_checksum();
    let l3 = ip.l4 - ipv4::MIN_HEADER_LEN;
    ip_build_header(net, &mut buf[l3..ip.l4], ip.hdr.src, protocol::ICMP, REPLY_LEN, ip.hdr.tos);
    if ip_output(net, q, frame, l3, ipv4::MIN_HEADER_LEN + REPLY_LEN, ip.hdr.src, now) {
        net.mib.IcmpOutMsgs += 1;
        net.mib.IcmpOutTimestampReps += 1;
        net.mib.IcmpMsgOutType14 += 1;
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

/// `icmp_rcv` for a message in more than one frame (`r.ip.hdr`, its body
/// the chain `r.skb`): a reassembled one, or one in a multi-buffer frame.
/// The checksum across the pieces, the type counted; an echo request to a
/// broadcast or multicast address is ignored (`icmp_echo_ignore_broadcasts`,
/// an `IcmpInErrors` as for one frame); else it is answered. When every
/// piece but the last holds a multiple of 8 bytes (a reassembled request's
/// do) and fits the path MTU, in its own frames, piece for piece: the
/// head's type and checksum turned into a reply's (`icmp_echo`), and each
/// piece sent back as a fragment of the reply with the request's offsets,
/// one new identifier, no DF (Linux's ICMP socket does `IP_PMTUDISC_DONT`).
/// Else (a multi-buffer frame's pieces) copied out and sent in new
/// fragments ([`icmp_echo_relaid`]). Other ICMP messages this long are
/// counted in and dropped (`XskIpReasmUnsupported`).
pub fn icmp_rcv_chained(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, r: Reassembled, now: Instant) {
    let (hdr, skb) = (&r.ip.hdr, r.skb);
    net.mib.IcmpInMsgs += 1;
    // icmp_rcv(): pskb_pull of the 8-byte header, then the checksum.
    if skb.len() < icmp::HEADER_LEN {
        net.mib.IcmpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IcmpInErrors));
    }
    if crate::wire::checksum::fold(skb.csum(umem, 0)) != 0xFFFF {
        net.mib.IcmpInCsumErrors += 1;
        net.mib.IcmpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IcmpInCsumErrors));
    }
    let msg_type = skb.data(umem).first().copied().unwrap_or(u8::MAX);
    count_in_type(net, msg_type);
    if msg_type != msg_type::ECHO_REQUEST {
        net.mib.XskIpReasmUnsupported += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskIpReasmUnsupported));
    }
    if r.ip.route.is_bcast() && ICMP_ECHO_IGNORE_BROADCASTS {
        net.mib.IcmpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IcmpInErrors));
    }
    let path = net.pmtu.get(hdr.src, net.mtu, now);
    let pieces = skb.frames();
    // Each piece goes back as a fragment at its own offset: every piece but
    // the last must hold a multiple of 8 bytes (fragments' pieces do; a
    // multi-buffer frame's pieces need not), the head the ICMP header.
    let (mut fits, mut aligned, mut seen) = (true, true, 0);
    skb.for_each_piece(umem, |p| {
        fits &= ipv4::MIN_HEADER_LEN + p.len() <= path.mtu;
        seen += 1;
        aligned &= (seen == pieces || p.len() % 8 == 0) && (seen > 1 || p.len() >= icmp::HEADER_LEN);
    });
    if !aligned || !fits {
        return icmp_echo_relaid(net, q, umem, &r.ip, skb, path.mtu, now);
    }
    let ident = net.next_ip_ident(hdr.src, protocol::ICMP);
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

/// `icmp_echo` for a request in pieces that cannot go back at their own
/// offsets (a multi-buffer frame's are not multiples of 8) or no longer fit
/// the path MTU `mtu`: the message copied out (into `Net::reasm_scratch`,
/// kept between calls), turned into a reply, and sent in new frames, in
/// fragments of at most `mtu` and of one frame (xsknet sends no multi-buffer
/// packets: docs/jumbo.md), as `ip_fragment` lays out a reply larger than
/// the MTU for Linux's ICMP socket (`IP_PMTUDISC_DONT`, no DF). All or
/// nothing: without a frame for every fragment the request is dropped
/// (`XskNoFreeFrames`).
fn icmp_echo_relaid(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    ip: &ReasmIp,
    skb: crate::skbuff::SkBuff,
    mtu: usize,
    now: Instant,
) {
    let len = skb.len();
    let mut scratch = std::mem::take(&mut net.reasm_scratch);
    scratch.clear();
    scratch.resize(len, 0);
    skb.copy_to(umem, &mut scratch);
    skb.free(umem, |f| q.free_frame(f));
    IcmpPacket::new_unchecked(&mut scratch[..]).echo_request_to_reply();
    // The fragment's data right after its Ethernet and IP headers.
    let data = crate::wire::ethernet::HEADER_LEN + ipv4::MIN_HEADER_LEN;
    let room = umem.frame_size() as usize - data;
    let piece = if ipv4::MIN_HEADER_LEN + len <= mtu && len <= room {
        len
    } else {
        (mtu - ipv4::MIN_HEADER_LEN).min(room) / 8 * 8
    };
    let n = len.div_ceil(piece.max(8));
    q.top_up(n);
    if q.cached() < n {
        net.mib.XskNoFreeFrames += 1;
        net.reasm_scratch = scratch;
        return;
    }
    let ident = net.next_ip_ident(ip.hdr.src, protocol::ICMP);
    let l3 = data - ipv4::MIN_HEADER_LEN;
    for (i, chunk) in scratch.chunks(piece.max(8)).enumerate() {
        let Some(mut frame) = q.alloc_frame() else { break };
        let buf = umem.frame_mut(&mut frame);
        buf[data..data + chunk.len()].copy_from_slice(chunk);
        let offset = (i * piece / 8) as u16;
        super::ip_output::ip_build_header_id(
            net,
            &mut buf[l3..data],
            ip.hdr.src,
            protocol::ICMP,
            chunk.len(),
            ip.hdr.tos,
            ident,
            false,
            i + 1 < n,
            offset,
        );
        if n > 1 {
            net.mib.IpFragCreates += 1;
        }
        super::ip_output::ip_output_frag(
            net,
            q,
            frame,
            l3,
            ipv4::MIN_HEADER_LEN + chunk.len(),
            ip.hdr.src,
            now,
            i == 0,
        );
    }
    if n > 1 {
        net.mib.IpFragOKs += 1;
    }
    net.reasm_scratch = scratch;
    net.mib.IcmpOutMsgs += 1;
    net.mib.IcmpOutEchoReps += 1;
    net.mib.IcmpMsgOutType0 += 1;
}
