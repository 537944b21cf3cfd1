//! IPv4 input (net/ipv4/ip_input.c): `ip_rcv` + `ip_rcv_core` +
//! `ip_local_deliver`. Validates as `ip_rcv_core` does, in the same order
//! and with the same counters, asks the route whether the datagram is ours,
//! and delivers it to ICMP, UDP or TCP.

use std::ops::Range;
use std::time::Instant;

use super::ip_fragment::{self, Defrag};
use super::{icmp, tcp, udp, RxIp};
use super::{ReasmIp, Reassembled};
use crate::inet_hashtables::InetHashTables;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::route::InRoute;
use crate::skbuff::SkBuff;
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::ethernet::PktType;
use crate::wire::icmp::{unreach_code, IcmpRepr};
use crate::wire::ipv4::{self, ecn, protocol, Ipv4Error, Ipv4Packet, Ipv4Repr};
use crate::wire::udp::HEADER_LEN as UDP_HEADER_LEN;

/// `ip_rcv`: the IPv4 datagram at `pkt` (offsets from the frame base) in
/// `frame`, Ethernet header stripped, that arrived as `pkt_type` (never
/// [`PktType::OtherHost`]: `ip_rcv_core` drops those before it counts).
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn ip_rcv(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    frame: Frame,
    pkt: Range<usize>,
    pkt_type: PktType,
    now: Instant,
) {
    let received = pkt.len();
    let ip = match ip_rcv_core(net, q, umem, &frame, pkt, received, pkt_type, now) {
        Ok(ip) => ip,
        Err(reason) => return q.kfree_skb_reason(frame, reason),
    };
    let hdr = ip.hdr;
    if hdr.is_fragment() {
        // ip_local_deliver → ip_defrag: held until the datagram is whole.
        return match ip_fragment::ip_defrag(net, q, umem, frame, &ip, now) {
            Defrag::Stolen => {}
            Defrag::Done(r) => ip_local_deliver_reassembled(net, socks, q, umem, r, now),
        };
    }
    match hdr.protocol {
        protocol::UDP => {
            udp::udp_rcv(net, socks, q, umem, frame, &ip, now);
            net.mib.IpInDelivers += 1;
        }
        protocol::TCP => {
            net.mib.IpInDelivers += 1;
            // tcp_v4_rcv drops what was not sent to our MAC before it counts
            // TcpInSegs; a segment to a broadcast or multicast address never
            // makes a connection (tcp_v4_conn_request) nor gets a reset.
            if pkt_type != PktType::Host {
                net.mib.XskTcpInNotHost += 1;
                return q.kfree_skb_reason(frame, MibCounter::XskTcpInNotHost);
            }
            if ip.is_bcast_route() {
                net.mib.XskTcpInBcast += 1;
                return q.kfree_skb_reason(frame, MibCounter::XskTcpInBcast);
            }
            tcp::input::tcp_v4_rcv(net, q, umem, frame, &ip, now);
        }
        protocol::ICMP => {
            icmp::icmp_rcv(net, socks, q, umem, frame, &ip, now);
            net.mib.IpInDelivers += 1;
        }
        _ => {
            net.mib.IpInUnknownProtos += 1;
            icmp::icmp_send(net, q, umem, &frame, &ip, IcmpRepr::dest_unreachable(unreach_code::PROTOCOL), now);
            q.kfree_skb_reason(frame, MibCounter::IpInUnknownProtos);
        }
    }
}

/// `ip_rcv_core` and `ip_rcv_finish_core`: the checks of the datagram whose
/// first bytes are at `pkt` in `frame` (all of it, or the head piece of a
/// multi-buffer frame) and `received` bytes long in all, in Linux's order,
/// the input route, the options, and the route's own drops. The datagram
/// to deliver, or the counter its drop was counted in (the caller frees).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn ip_rcv_core(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    frame: &Frame,
    pkt: Range<usize>,
    received: usize,
    pkt_type: PktType,
    now: Instant,
) -> Result<RxIp, MibCounter> {
    let l3 = pkt.start;
    let pkt = Ipv4Packet::new_unchecked(&umem.frame(frame)[pkt]);
    let mib = &mut net.mib;
    mib.IpInReceives += 1;
    mib.IpExtInOctets += received as u64;
    // Linux counts ECN once version and IHL look right, before the checksum.
    if pkt.check_version_ihl().is_ok() {
        match pkt.ecn() {
            ecn::NOT_ECT => mib.IpExtInNoECTPkts += 1,
            ecn::ECT1 => mib.IpExtInECT1Pkts += 1,
            ecn::ECT0 => mib.IpExtInECT0Pkts += 1,
            _ => mib.IpExtInCEPkts += 1,
        }
    }
    let hdr = match Ipv4Repr::parse_received(&pkt, received) {
        Ok(h) => h,
        Err(e) => {
            let reason = match e {
                Ipv4Error::HdrError => {
                    mib.IpInHdrErrors += 1;
                    MibCounter::IpInHdrErrors
                }
                Ipv4Error::ChecksumError => {
                    mib.IpExtInCsumErrors += 1;
                    mib.IpInHdrErrors += 1;
                    MibCounter::IpExtInCsumErrors
                }
                Ipv4Error::Truncated => {
                    mib.IpExtInTruncatedPkts += 1;
                    MibCounter::IpExtInTruncatedPkts
                }
            };
            return Err(reason);
        }
    };
    // ip_rcv_finish_core: the input route first (ip_route_input_slow), the
    // options after it, then what the route says.
    let route = net.route.input(hdr.src, hdr.dst);
    match route {
        InRoute::MartianSource => {
            mib.XskIpInMartianSrc += 1;
            return Err(MibCounter::XskIpInMartianSrc);
        }
        InRoute::MartianDestination => {
            mib.XskIpInMartianDst += 1;
            return Err(MibCounter::XskIpInMartianDst);
        }
        InRoute::McastNotJoined => {
            mib.XskIpInMcastNotJoined += 1;
            return Err(MibCounter::XskIpInMcastNotJoined);
        }
        InRoute::Local | InRoute::Broadcast | InRoute::Multicast | InRoute::Unreachable => {}
    }
    let ip = RxIp { hdr, l3, l4: l3 + pkt.header_len(), l4_len: hdr.payload_len, pkt_type, route };
    if pkt.header_len() > ipv4::MIN_HEADER_LEN {
        // ip_rcv_options: ip_options_compile, then the source route check.
        match ipv4::ip_options_compile(pkt.options()) {
            Err(e) => {
                icmp::icmp_send(net, q, umem, frame, &ip, IcmpRepr::parameter_problem(e.pointer), now);
                net.mib.IpInHdrErrors += 1;
                return Err(MibCounter::IpInHdrErrors);
            }
            // accept_source_route is off in conf/all (the default of a new
            // namespace), and IN_DEV_SOURCE_ROUTE needs both all and the device.
            Ok(opt) if opt.srr != 0 => {
                net.mib.XskIpInSrcRoute += 1;
                return Err(MibCounter::XskIpInSrcRoute);
            }
            Ok(_) => {}
        }
    }
    let mib = &mut net.mib;
    match route {
        InRoute::Multicast => {
            mib.IpExtInMcastPkts += 1;
            mib.IpExtInMcastOctets += pkt.total_len() as u64;
        }
        InRoute::Broadcast => {
            mib.IpExtInBcastPkts += 1;
            mib.IpExtInBcastOctets += pkt.total_len() as u64;
        }
        // ip_error with forwarding off: EHOSTUNREACH.
        InRoute::Unreachable => {
            mib.IpInAddrErrors += 1;
            return Err(MibCounter::IpInAddrErrors);
        }
        _ => {}
    }
    Ok(ip)
}

/// `ip_rcv` for a datagram in a multi-buffer frame (AF_XDP `XDP_USE_SG`,
/// docs/jumbo.md): `skb` holds it from its IP header on, the headers in the
/// head piece. The same checks as [`ip_rcv`], then, as for a datagram in
/// one frame, UDP gets it (as a chain: `udp_rcv_chained`, with the rules of
/// the frame's `pkt_type` and the input route), and a fragment goes to
/// reassembly (`ip_defrag_chained`), TCP gets it copied out of the chain
/// (`tcp_v4_rcv_reassembled`), and ICMP as a reassembled message
/// (`icmp_rcv_chained`: an echo request answered in fragments). Other
/// protocols are counted (`XskIpInMultiBufUnsupported`) and dropped.
pub fn ip_rcv_chained(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    mut skb: SkBuff,
    pkt_type: PktType,
    now: Instant,
) {
    let l3 = skb.data as usize;
    let head = l3..l3 + skb.head_len(umem);
    let ip = match ip_rcv_core(net, q, umem, skb.head_frame(), head.clone(), skb.len(), pkt_type, now) {
        Ok(ip) => ip,
        Err(reason) => return skb.free(umem, |f| q.kfree_skb_reason(f, reason)),
    };
    // The device took a first piece of at least MB_MIN_HEAD bytes: Ethernet,
    // the IP header with options and the UDP header lie in it.
    let fragment = ip.hdr.is_fragment();
    let taken = match ip.hdr.protocol {
        protocol::UDP => ip.l4 + UDP_HEADER_LEN <= head.end,
        protocol::TCP | protocol::ICMP => true,
        _ => false,
    };
    if !fragment && !taken {
        net.mib.XskIpInMultiBufUnsupported += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskIpInMultiBufUnsupported));
    }
    // The IP payload: the headers pulled, Ethernet padding trimmed.
    skb.pull(umem, ip.l4 - l3);
    skb.trim(ip.l4_len);
    if fragment {
        // ip_local_deliver → ip_defrag, each frame of the chain a piece.
        return match ip_fragment::ip_defrag_chained(net, q, umem, skb, &ip, now) {
            Defrag::Stolen => {}
            Defrag::Done(r) => ip_local_deliver_reassembled(net, socks, q, umem, r, now),
        };
    }
    let ip = ReasmIp { hdr: ip.hdr, pkt_type: ip.pkt_type, route: ip.route };
    ip_local_deliver_reassembled(net, socks, q, umem, Reassembled { ip, skb }, now);
}

/// `ip_local_deliver_finish` for a reassembled datagram: to UDP, TCP, or ICMP
/// (echo requests are answered). Other protocols are not ours: a reassembled
/// datagram for them is delivered and dropped (`XskIpReasmUnsupported`).
fn ip_local_deliver_reassembled(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    r: Reassembled,
    now: Instant,
) {
    net.mib.IpInDelivers += 1;
    match r.ip.hdr.protocol {
        protocol::UDP => udp::udp_rcv_chained(net, socks, q, umem, r, now),
        protocol::ICMP => icmp::icmp_rcv_chained(net, q, umem, r, now),
        protocol::TCP => {
            let mut scratch = std::mem::take(&mut net.reasm_scratch);
            tcp::input::tcp_v4_rcv_reassembled(net, q, umem, r, &mut scratch, now);
            net.reasm_scratch = scratch;
        }
        _ => {
            net.mib.XskIpReasmUnsupported += 1;
            r.skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskIpReasmUnsupported));
        }
    }
}
