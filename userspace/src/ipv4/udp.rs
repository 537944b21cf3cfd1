//! UDP (net/ipv4/udp.c): `__udp4_lib_rcv` on the way in,
//! `udp_push_pending_frames` on the way out, and `udp_prot`, the operations
//! behind a UDP socket's calls.
//!
//! In: length checks, lookup of the bound sock by port, the checksum (only
//! then, as Linux verifies lazily), the rcvbuf check, the queue. A datagram
//! for a port nobody bound is counted (`UdpNoPorts`) and answered with ICMP
//! port unreachable, rate-limited. Out: headers written in front of the
//! application's data, in the frame it was copied to.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Instant;

use super::ip_fragment::{PmtuCache, IP_MAX_MTU};
use super::ip_output::{ip_build_header_id, ip_output_frag};
use super::Reassembled;
use super::{icmp, RxIp};
use crate::errno::Errno;
use crate::inet_hashtables::{DemuxKey, InetHashTables};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::proto::{Proto, ProtoCtx};
use crate::route::OutRoute;
use crate::skbuff::SkBuff;
use crate::snmp::MibCounter;
use crate::sock::{PmtuDisc, Sock};
use crate::umem::{Frame, Umem};
use crate::wire::checksum;
use crate::wire::icmp::{unreach_code, IcmpRepr};
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv4::{self, protocol};
use crate::wire::udp::{self, UdpPacket, UdpRepr};
use std::sync::atomic::Ordering;

/// Largest UDP payload one send carries: the largest IP datagram less the
/// headers (65507 bytes), sent in fragments past the path MTU. With
/// `IP_PMTUDISC_DO` or `PROBE` the bound is the MTU less the headers.
pub const MAX_UDP_PAYLOAD: usize = IP_MAX_MTU - ipv4::MIN_HEADER_LEN - udp::HEADER_LEN;

/// UDP's operations (`udp_prot`).
pub static UDP_PROT: Proto = Proto {
    name: "UDP",
    protocol: protocol::UDP,
    connect: udp_connect,
    sendmsg_check: udp_sendmsg_check,
    push_pending: udp_push_pending,
};

/// `ip4_datagram_connect`: sets the default destination, and makes port
/// unreachable errors from it come back as `ECONNREFUSED`; the socket's IP
/// identifier for DF datagrams starts at a random value (`inet_id`).
fn udp_connect(_cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>, addr: SocketAddrV4) -> Result<(), Errno> {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(u32::from(*addr.ip()));
    sock.inet_id.store(h.finish() as u16 as u32, Ordering::Relaxed);
    sock.set_remote(addr);
    Ok(())
}

/// `udp_sendmsg`'s checks, in its order: the length against 64 KiB, the
/// pending error, the destination, the route, then `__ip_append_data`'s
/// bound: the path MTU `mtu` under `IP_PMTUDISC_DO`/`PROBE`
/// (`ip_sk_ignore_df` false), else the largest IP datagram.
fn udp_sendmsg_check(sock: &Sock, len: usize, dst: SocketAddrV4, route: OutRoute, mtu: usize) -> Result<(), Errno> {
    if len > 0xFFFF {
        return Err(Errno::EMSGSIZE);
    }
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    if dst.port() == 0 || dst.ip().is_unspecified() {
        return Err(Errno::EINVAL);
    }
    match route {
        OutRoute::Unicast { .. } => {}
        OutRoute::NoRoute => return Err(Errno::ENETUNREACH),
        // No SO_BROADCAST (yet): Linux refuses with EACCES.
        OutRoute::Broadcast => return Err(Errno::EACCES),
    }
    let max = match sock.pmtudisc() {
        PmtuDisc::Do | PmtuDisc::Probe => mtu,
        PmtuDisc::Want | PmtuDisc::Dont => IP_MAX_MTU,
    };
    if len + udp::HEADER_LEN > max - ipv4::MIN_HEADER_LEN {
        return Err(Errno::EMSGSIZE);
    }
    Ok(())
}

/// The MTU a send of `sock` to `dst` is laid out for and checked against
/// (`ip_setup_cork`: the path MTU, or the device's under `IP_PMTUDISC_PROBE`).
#[inline]
pub fn udp_send_mtu(net_mtu: usize, pmtu: &PmtuCache, sock: &Sock, dst: std::net::Ipv4Addr, now: Instant) -> usize {
    if sock.pmtudisc() == PmtuDisc::Probe {
        net_mtu
    } else {
        pmtu.get(dst, net_mtu, now).mtu
    }
}

/// `CHECKSUM_BREAK` (include/linux/skbuff.h): `udp4_csum_init` verifies the
/// checksum of a datagram this short at once, before any lookup.
const CHECKSUM_BREAK: usize = 76;

/// `__udp_is_mcast_sock`: whether `sock` takes a broadcast or multicast
/// datagram described by `ip` from port `sport`: bound to the wildcard or to
/// the destination, unconnected or connected to the sender (the group filter
/// passes with `IP_MULTICAST_ALL` on, its default).
fn udp_is_mcast_sock(sock: &Sock, hdr: &Ipv4Repr, sport: u16) -> bool {
    let bound = sock.local().is_none_or(|l| l.ip().is_unspecified() || *l.ip() == hdr.dst);
    let peer = sock.remote().is_none_or(|r| *r.ip() == hdr.src && (r.port() == 0 || r.port() == sport));
    bound && peer
}

/// `__udp4_lib_rcv`: the UDP datagram described by `ip` in `frame`.
#[inline]
pub fn udp_rcv(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    frame: Frame,
    ip: &RxIp,
    now: Instant,
) {
    let packet = UdpPacket::new_unchecked(&umem.frame(&frame)[ip.l4..ip.l4 + ip.l4_len]);
    let Ok(uh) = UdpRepr::parse(&packet) else {
        net.mib.UdpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::UdpInErrors);
    };
    // Verified lazily, after the lookup, as Linux does; one error path
    // (`csum_error:`) whether or not a sock was found.
    let key = DemuxKey { protocol: protocol::UDP, port: uh.dst_port };
    let mut sock = socks.lookup(&key);
    if ip.is_bcast_route() {
        // __udp4_lib_mcast_deliver: only a sock bound to the wildcard or to
        // the destination, and not connected elsewhere, takes it.
        sock = sock.filter(|s| udp_is_mcast_sock(s, &ip.hdr, uh.src_port));
        if sock.is_none() {
            // udp4_csum_init verified only a short datagram's checksum
            // (CHECKSUM_BREAK); no socket, no port unreachable.
            if uh.payload_len + udp::HEADER_LEN <= CHECKSUM_BREAK && !packet.verify_checksum(ip.hdr.src, ip.hdr.dst) {
                net.mib.UdpInCsumErrors += 1;
                net.mib.UdpInErrors += 1;
                return q.kfree_skb_reason(frame, MibCounter::UdpInCsumErrors);
            }
            net.mib.UdpIgnoredMulti += 1;
            return q.kfree_skb_reason(frame, MibCounter::UdpIgnoredMulti);
        }
    }
    if !packet.verify_checksum(ip.hdr.src, ip.hdr.dst) {
        net.mib.UdpInCsumErrors += 1;
        net.mib.UdpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::UdpInCsumErrors);
    }
    let Some(sock) = sock else {
        net.mib.UdpNoPorts += 1;
        icmp::icmp_send(net, q, umem, &frame, ip, IcmpRepr::dest_unreachable(unreach_code::PORT), now);
        return q.kfree_skb_reason(frame, MibCounter::UdpNoPorts);
    };
    let peer = SocketAddrV4::new(ip.hdr.src, uh.src_port);
    let skb = SkBuff::new(frame, ip.l4 + udp::HEADER_LEN, uh.payload_len, peer);
    udp_queue_rcv(net, q, umem, sock, key, skb);
}

/// `__udp4_lib_rcv` for a reassembled datagram (`r.ip.hdr`, its payload the
/// chain `r.skb`): the same checks, in the same order, across the pieces;
/// a closed port answered as `icmp_send` answers it (not for a datagram
/// that came as link-layer broadcast or to a broadcast address).
pub fn udp_rcv_chained(
    net: &mut Net,
    socks: &InetHashTables,
    q: &mut NetdevQueue,
    umem: &Umem,
    r: Reassembled,
    now: Instant,
) {
    let (ip, mut skb) = (r.ip, r.skb);
    let hdr = &ip.hdr;
    let head = skb.data(umem);
    let total = skb.len();
    // A first fragment carries at least 8 bytes (a multiple of 8, not 0).
    let Some(h) = head.first_chunk::<{ udp::HEADER_LEN }>() else {
        net.mib.UdpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpInErrors));
    };
    let (sport, dport) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[2], h[3]]));
    let ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let csum_field = u16::from_be_bytes([h[6], h[7]]);
    // short_packet: a length past the datagram or under the header.
    if ulen > total || ulen < udp::HEADER_LEN {
        net.mib.UdpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpInErrors));
    }
    skb.trim(ulen);
    let key = DemuxKey { protocol: protocol::UDP, port: dport };
    let mut sock = socks.lookup(&key);
    let csum_ok = |skb: &SkBuff| {
        csum_field == 0
            || checksum::fold(skb.csum(umem, checksum::pseudo_header_sum(hdr.src, hdr.dst, protocol::UDP, ulen as u16)))
                == 0xFFFF
    };
    if ip.route.is_bcast() {
        // __udp4_lib_mcast_deliver, as for a datagram in one frame.
        sock = sock.filter(|s| udp_is_mcast_sock(s, hdr, sport));
        if sock.is_none() {
            if ulen <= CHECKSUM_BREAK && !csum_ok(&skb) {
                net.mib.UdpInCsumErrors += 1;
                net.mib.UdpInErrors += 1;
                return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpInCsumErrors));
            }
            net.mib.UdpIgnoredMulti += 1;
            return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpIgnoredMulti));
        }
    }
    if !csum_ok(&skb) {
        net.mib.UdpInCsumErrors += 1;
        net.mib.UdpInErrors += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpInCsumErrors));
    }
    let Some(sock) = sock else {
        net.mib.UdpNoPorts += 1;
        // The quote: the reassembled datagram's header and its first bytes.
        let mut quote = [0u8; crate::wire::icmp::MAX_QUOTED_LEN];
        let ip_hdr = Ipv4Repr { payload_len: ulen, ..*hdr };
        ip_hdr.emit(&mut ipv4::Ipv4Packet::new_unchecked(&mut quote[..ipv4::MIN_HEADER_LEN]));
        let n = ipv4::MIN_HEADER_LEN + skb.copy_to(umem, &mut quote[ipv4::MIN_HEADER_LEN..]);
        let msg = IcmpRepr::dest_unreachable(unreach_code::PORT);
        icmp::icmp_send_reassembled(net, q, &quote[..n], &ip, msg, now);
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpNoPorts));
    };
    skb.pull(umem, udp::HEADER_LEN);
    skb.peer = SocketAddrV4::new(hdr.src, sport);
    udp_queue_rcv(net, q, umem, sock, key, skb);
}

/// `udp_push_pending_frames`: sends up to `budget` datagrams from `sock`'s
/// write queue; UDP and IP headers go in front of the data (the socket layer
/// leaves `TX_HEADROOM` for them), then `ip_output`. DF and the IP
/// identifier as `__ip_make_skb` sets them: DF under `IP_PMTUDISC_DO` and
/// `PROBE`, and under `WANT` when the path MTU is not locked (the datagram
/// fits it: a larger one was laid out in fragments); a DF datagram of a
/// connected socket takes the socket's `inet_id`, of an unconnected one 0;
/// others the stack's next identifier. A datagram laid out in fragments
/// (a chain, one piece per fragment) goes out as `ip_do_fragment` sends it.
/// One whose layout no longer fits the path MTU (it fell between the send
/// and now) is dropped as `ip_fragment` drops a DF datagram: `IpFragFails`.
/// Returns how many it took.
pub fn udp_push_pending(net: &mut Net, q: &mut NetdevQueue, sock: &Sock, budget: usize, now: Instant) -> usize {
    let Some(local) = sock.local() else { return 0 };
    // Once per call, not per datagram: an `Arc` clone is a locked add.
    let umem = q.umem().clone();
    let mut sent = 0;
    while sent < budget {
        let Some(skb) = sock.dequeue_xmit() else { break };
        sent += 1;
        let dst = skb.peer;
        let pmtudisc = sock.pmtudisc();
        let path = net.pmtu.get(*dst.ip(), net.mtu, now);
        let mtu = if pmtudisc == PmtuDisc::Probe { net.mtu } else { path.mtu };
        if skb.is_chained() {
            udp_push_fragments(net, q, &umem, skb, local.port(), mtu, pmtudisc, now);
            continue;
        }
        let len = skb.len();
        let tstamp = skb.tstamp;
        let l4 = skb.data as usize - udp::HEADER_LEN;
        let l3 = l4 - ipv4::MIN_HEADER_LEN;
        let mut frame = skb.into_frame();
        let ip_len = ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + len;
        if ip_len > mtu {
            net.mib.IpFragFails += 1;
            q.kfree_skb_reason(frame, MibCounter::IpFragFails);
            continue;
        }
        let df = match pmtudisc {
            PmtuDisc::Do | PmtuDisc::Probe => true,
            PmtuDisc::Want => !path.locked,
            PmtuDisc::Dont => false,
        };
        // ip_select_ident_segs: a connected socket's own counter; else 0
        // with DF, the hashed counter without.
        let ident = if sock.remote().is_some() {
            // Only the loop writes it: a load and a store, no locked add.
            let id = sock.inet_id.load(Ordering::Relaxed);
            sock.inet_id.store(id.wrapping_add(1), Ordering::Relaxed);
            id as u16
        } else if df {
            0
        } else {
            net.next_ip_ident(*dst.ip(), protocol::UDP)
        };
        let buf = umem.frame_mut(&mut frame);
        let uh = UdpRepr { src_port: local.port(), dst_port: dst.port(), payload_len: len };
        uh.emit(&mut UdpPacket::new_unchecked(&mut buf[l4..l4 + uh.buffer_len()]), net.route.addr, *dst.ip());
        let ulen = uh.buffer_len();
        ip_build_header_id(net, &mut buf[l3..l4], *dst.ip(), protocol::UDP, ulen, 0, ident, df, false, 0);
        let before = q.tx_backlog();
        if ip_output_frag(net, q, frame, l3, ipv4::MIN_HEADER_LEN + ulen, *dst.ip(), now, true) {
            net.mib.UdpOutDatagrams += 1;
        }
        if tstamp != 0 {
            net.tx_stamps.queued(q, before, tstamp);
        }
    }
    sent
}

/// `ip_do_fragment` for a datagram laid out in fragments at send time (the
/// chain `skb`, one piece per fragment, the first with room for the UDP
/// header): the UDP checksum over the whole datagram, then an IP header in
/// front of each piece (one identifier, MF on all but the last, offsets in
/// 8-byte units), each fragment out on its own (`IpFragCreates`), the
/// datagram counted once (`IpFragOKs`, `IpOutRequests`).
#[allow(clippy::too_many_arguments)]
fn udp_push_fragments(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    skb: SkBuff,
    sport: u16,
    mtu: usize,
    pmtudisc: PmtuDisc,
    now: Instant,
) {
    let dst = skb.peer;
    let len = skb.len();
    let ulen = udp::HEADER_LEN + len;
    let head_len = skb.data(umem).len();
    // Laid out for a larger MTU than the path has now, or DF asked for since.
    if ipv4::MIN_HEADER_LEN + udp::HEADER_LEN + head_len > mtu || matches!(pmtudisc, PmtuDisc::Do | PmtuDisc::Probe) {
        net.mib.IpFragFails += 1;
        return skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::IpFragFails));
    }
    let src = net.route.addr;
    let mut header = [0u8; udp::HEADER_LEN];
    header[0..2].copy_from_slice(&sport.to_be_bytes());
    header[2..4].copy_from_slice(&dst.port().to_be_bytes());
    header[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    let sum = checksum::sum(checksum::pseudo_header_sum(src, *dst.ip(), protocol::UDP, ulen as u16), &header);
    let csum = match !checksum::fold(skb.csum(umem, sum)) {
        0 => 0xFFFF,
        c => c,
    };
    header[6..8].copy_from_slice(&csum.to_be_bytes());
    let ident = net.next_ip_ident(*dst.ip(), protocol::UDP);
    let pieces = skb.frames();
    let mut offset = 0;
    for (i, (mut frame, data, plen)) in skb.into_pieces(umem).enumerate() {
        let buf = umem.frame_mut(&mut frame);
        let (l3, payload) = if i == 0 {
            buf[data - udp::HEADER_LEN..data].copy_from_slice(&header);
            (data - udp::HEADER_LEN - ipv4::MIN_HEADER_LEN, udp::HEADER_LEN + plen)
        } else {
            (data - ipv4::MIN_HEADER_LEN, plen)
        };
        let mf = i + 1 < pieces;
        ip_build_header_id(
            net,
            &mut buf[l3..l3 + ipv4::MIN_HEADER_LEN],
            *dst.ip(),
            protocol::UDP,
            payload,
            0,
            ident,
            false,
            mf,
            (offset / 8) as u16,
        );
        offset += payload;
        net.mib.IpFragCreates += 1;
        ip_output_frag(net, q, frame, l3, ipv4::MIN_HEADER_LEN + payload, *dst.ip(), now, i == 0);
    }
    net.mib.IpFragOKs += 1;
    net.mib.UdpOutDatagrams += 1;
}

/// `__udp_queue_rcv_skb`: onto the sock's receive queue, stamped for the
/// rx-to-read latency, its sock marked for the batch's wake-up; a full
/// rcvbuf is `UdpRcvbufErrors` (and `UdpInErrors`), every frame freed.
#[inline]
fn udp_queue_rcv(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, sock: &Sock, key: DemuxKey, mut skb: SkBuff) {
    skb.tstamp = net.rx_sampler.stamp();
    match sock.queue_rcv(skb) {
        Ok(()) => {
            if net.rx_woken.last() != Some(&key) {
                net.rx_woken.push(key);
            }
        }
        Err(skb) => {
            net.mib.UdpRcvbufErrors += 1;
            net.mib.UdpInErrors += 1;
            skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::UdpRcvbufErrors));
        }
    }
}
