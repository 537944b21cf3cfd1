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

use super::ip_output::{ip_build_header, ip_output};
use super::{icmp, RxIp};
use crate::errno::Errno;
use crate::inet_hashtables::{DemuxKey, InetHashTables};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::proto::{Proto, ProtoCtx};
use crate::route::OutRoute;
use crate::skbuff::SkBuff;
use crate::snmp::MibCounter;
use crate::sock::Sock;
use crate::umem::{Frame, Umem};
use crate::wire::icmp::{unreach_code, IcmpRepr};
use crate::wire::ipv4::{self, protocol};
use crate::wire::udp::{self, UdpPacket, UdpRepr};

/// Largest UDP payload one send carries: one 1500-byte MTU frame, no
/// fragmentation (IP reassembly and fragmentation are not built yet).
pub const MAX_UDP_PAYLOAD: usize = 1500 - ipv4::MIN_HEADER_LEN - udp::HEADER_LEN;

/// UDP's operations (`udp_prot`).
pub static UDP_PROT: Proto = Proto {
    name: "UDP",
    protocol: protocol::UDP,
    connect: udp_connect,
    sendmsg_check: udp_sendmsg_check,
    push_pending: udp_push_pending,
};

/// `ip4_datagram_connect`: sets the default destination, and makes port
/// unreachable errors from it come back as `ECONNREFUSED`.
fn udp_connect(_cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>, addr: SocketAddrV4) -> Result<(), Errno> {
    sock.set_remote(addr);
    Ok(())
}

/// `udp_sendmsg`'s checks, in its order: the pending error, the length, the
/// destination, the route.
fn udp_sendmsg_check(sock: &Sock, len: usize, dst: SocketAddrV4, route: OutRoute) -> Result<(), Errno> {
    if let Some(e) = sock.take_err() {
        return Err(e);
    }
    if len > MAX_UDP_PAYLOAD {
        return Err(Errno::EMSGSIZE);
    }
    if dst.port() == 0 || dst.ip().is_unspecified() {
        return Err(Errno::EINVAL);
    }
    match route {
        OutRoute::Unicast { .. } => Ok(()),
        OutRoute::NoRoute => Err(Errno::ENETUNREACH),
        // No SO_BROADCAST (yet): Linux refuses with EACCES.
        OutRoute::Broadcast => Err(Errno::EACCES),
    }
}

/// `CHECKSUM_BREAK` (include/linux/skbuff.h): `udp4_csum_init` verifies the
/// checksum of a datagram this short at once, before any lookup.
const CHECKSUM_BREAK: usize = 76;

/// `__udp_is_mcast_sock`: whether `sock` takes a broadcast or multicast
/// datagram described by `ip` from port `sport`: bound to the wildcard or to
/// the destination, unconnected or connected to the sender (the group filter
/// passes with `IP_MULTICAST_ALL` on, its default).
fn udp_is_mcast_sock(sock: &Sock, ip: &RxIp, sport: u16) -> bool {
    let bound = sock.local().is_none_or(|l| l.ip().is_unspecified() || *l.ip() == ip.hdr.dst);
    let peer = sock.remote().is_none_or(|r| *r.ip() == ip.hdr.src && (r.port() == 0 || r.port() == sport));
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
        sock = sock.filter(|s| udp_is_mcast_sock(s, ip, uh.src_port));
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
    let mut skb = SkBuff::new(frame, ip.l4 + udp::HEADER_LEN, uh.payload_len, peer);
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
            q.kfree_skb_reason(skb.into_frame(), MibCounter::UdpRcvbufErrors);
        }
    }
}

/// `udp_push_pending_frames`: sends up to `budget` datagrams from `sock`'s
/// write queue; UDP and IP headers go in front of the data (the socket layer
/// leaves `TX_HEADROOM` for them), then `ip_output`. Returns how many it took.
pub fn udp_push_pending(net: &mut Net, q: &mut NetdevQueue, sock: &Sock, budget: usize, now: Instant) -> usize {
    let Some(local) = sock.local() else { return 0 };
    // Once per call, not per datagram: an `Arc` clone is a locked add.
    let umem = q.umem().clone();
    let mut sent = 0;
    while sent < budget {
        let Some(skb) = sock.dequeue_xmit() else { break };
        sent += 1;
        let dst = skb.peer;
        let len = skb.len();
        let tstamp = skb.tstamp;
        let l4 = skb.data as usize - udp::HEADER_LEN;
        let l3 = l4 - ipv4::MIN_HEADER_LEN;
        let mut frame = skb.into_frame();
        let buf = umem.frame_mut(&mut frame);
        let uh = UdpRepr { src_port: local.port(), dst_port: dst.port(), payload_len: len };
        uh.emit(&mut UdpPacket::new_unchecked(&mut buf[l4..l4 + uh.buffer_len()]), net.route.addr, *dst.ip());
        let ulen = uh.buffer_len();
        ip_build_header(net, &mut buf[l3..l4], *dst.ip(), protocol::UDP, ulen, 0);
        let before = q.tx_backlog();
        if ip_output(net, q, frame, l3, ipv4::MIN_HEADER_LEN + ulen, *dst.ip(), now) {
            net.mib.UdpOutDatagrams += 1;
        }
        if tstamp != 0 {
            net.tx_stamps.queued(q, before, tstamp);
        }
    }
    sent
}
