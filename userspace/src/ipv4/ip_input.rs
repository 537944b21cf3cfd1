//! IPv4 input (net/ipv4/ip_input.c): `ip_rcv` + `ip_rcv_core` +
//! `ip_local_deliver`. Validates as `ip_rcv_core` does, in the same order
//! and with the same counters, asks the route whether the datagram is ours,
//! and delivers it to ICMP, UDP or TCP.

use std::ops::Range;
use std::time::Instant;

use super::ip_fragment::{self, Defrag, Reassembled};
use super::{icmp, tcp, udp, RxIp};
use crate::inet_hashtables::InetHashTables;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::ipv4::{ecn, protocol, Ipv4Error, Ipv4Packet, Ipv4Repr};

/// `ip_rcv`: the IPv4 datagram at `pkt` (offsets from the frame base) in
/// `frame`, Ethernet header stripped.
#[inline]
pub fn ip_rcv(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    frame: Frame,
    pkt: Range<usize>,
    now: Instant,
) {
    let (l3, len) = (pkt.start, pkt.len());
    let pkt = Ipv4Packet::new_unchecked(&umem.frame(&frame)[pkt]);
    let mib = &mut net.mib;
    mib.IpInReceives += 1;
    mib.IpExtInOctets += len as u64;
    // Linux counts ECN once version and IHL look right, before the checksum.
    if pkt.check_version_ihl().is_ok() {
        match pkt.ecn() {
            ecn::NOT_ECT => mib.IpExtInNoECTPkts += 1,
            ecn::ECT1 => mib.IpExtInECT1Pkts += 1,
            ecn::ECT0 => mib.IpExtInECT0Pkts += 1,
            _ => mib.IpExtInCEPkts += 1,
        }
    }
    let hdr = match Ipv4Repr::parse(&pkt) {
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
            return q.kfree_skb_reason(frame, reason);
        }
    };
    // The input route: only our own address is local.
    if !net.route.is_local(hdr.dst) {
        mib.IpInAddrErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::IpInAddrErrors);
    }
    if net.route.is_martian_source(hdr.src) {
        mib.XskIpInMartianSrc += 1;
        return q.kfree_skb_reason(frame, MibCounter::XskIpInMartianSrc);
    }
    if hdr.is_fragment() {
        // ip_local_deliver → ip_defrag: held until the datagram is whole.
        let ip = RxIp { hdr, l3, l4: l3 + pkt.header_len(), l4_len: hdr.payload_len };
        return match ip_fragment::ip_defrag(net, q, umem, frame, &ip, now) {
            Defrag::Stolen => {}
            Defrag::Done(r) => ip_local_deliver_reassembled(net, socks, q, umem, r, now),
        };
    }
    let ip = RxIp { hdr, l3, l4: l3 + pkt.header_len(), l4_len: hdr.payload_len };
    match hdr.protocol {
        protocol::UDP => {
            udp::udp_rcv(net, socks, q, umem, frame, &ip, now);
            net.mib.IpInDelivers += 1;
        }
        protocol::TCP => {
            tcp::input::tcp_v4_rcv(net, q, umem, frame, &ip, now);
            net.mib.IpInDelivers += 1;
        }
        protocol::ICMP => {
            icmp::icmp_rcv(net, socks, q, umem, frame, &ip, now);
            net.mib.IpInDelivers += 1;
        }
        _ => {
            net.mib.IpInUnknownProtos += 1;
            icmp::icmp_send_unreach(net, q, umem, &frame, &ip, crate::wire::icmp::unreach_code::PROTOCOL, now);
            q.kfree_skb_reason(frame, MibCounter::IpInUnknownProtos);
        }
    }
}

/// `ip_local_deliver_finish` for a reassembled datagram: to UDP, or to ICMP
/// (echo requests are answered). TCP takes one frame only for now, and other
/// protocols are not ours: a reassembled datagram for them is delivered and
/// dropped (`XskIpReasmUnsupported`).
fn ip_local_deliver_reassembled(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    r: Reassembled,
    now: Instant,
) {
    net.mib.IpInDelivers += 1;
    match r.hdr.protocol {
        protocol::UDP => udp::udp_rcv_chained(net, socks, q, umem, r.skb, &r.hdr, now),
        protocol::ICMP => icmp::icmp_rcv_chained(net, q, umem, r.skb, &r.hdr, now),
        _ => {
            net.mib.XskIpReasmUnsupported += 1;
            r.skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskIpReasmUnsupported));
        }
    }
}
