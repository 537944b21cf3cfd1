//! ARP for IPv4 over Ethernet (net/ipv4/arp.c, `arp_rcv`/`arp_process`):
//! answer requests for our address, learn the requester, update what the
//! table holds from replies and gratuitous ARP, send requests for the output
//! path and the neighbour timers (`arp_solicit`), and run those timers. The
//! table itself and its bounds are [`crate::neighbour`]'s; docs/arp.md has
//! the rules.

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::capture::Link;
use crate::neighbour::NudState;
use crate::net::Net;
use crate::netdev_queue::{dev_queue_xmit, NetdevQueue};
use crate::netdevice::Desc;
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, ethertype};
use crate::wire::EthernetAddress;

/// `arp_rcv` → `arp_process`: the ARP packet of `len` bytes at `l3` in
/// `frame` (the Ethernet header in front of it).
///
/// As Linux with its defaults (`arp_accept`, `arp_ignore`, `arp_filter`,
/// `drop_gratuitous_arp` 0): frames to another host's MAC are ignored; a
/// target that is multicast or loopback is dropped; a request from 0.0.0.0
/// (duplicate address detection) for our address is answered and learns
/// nothing; a request for our address from a sender that is not a martian
/// creates or refreshes the sender's entry (`neigh_event_ns`: `STALE`, the new
/// address taken) and is answered, unless the table is full. Any other ARP
/// only updates an entry we already have: `REACHABLE` for a reply to our MAC,
/// `STALE` otherwise, a new address taken if the entry was updated more than
/// `locktime` ago or the ARP is gratuitous (`arp_is_garp`: sender address =
/// target address, and for a reply sender MAC = target MAC).
pub fn arp_rcv(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, frame: Frame, l3: usize, len: usize, now: Instant) {
    let buf = umem.frame(&frame);
    let Ok(pkt) = ArpRepr::parse(&ArpPacket::new_unchecked(&buf[l3..l3 + len])) else {
        net.mib.XskArpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::XskArpInErrors);
    };
    // arp_rcv: PACKET_OTHERHOST is consumed unlooked at.
    let eth_dst =
        EthernetAddress(buf[l3 - ethernet::HEADER_LEN..l3 - ethernet::HEADER_LEN + 6].try_into().unwrap_or_default());
    let to_our_mac = eth_dst == net.mac;
    if !to_our_mac && !eth_dst.is_multicast() {
        net.mib.XskArpIgnored += 1;
        return q.free_frame(frame);
    }
    // arp_process() drops a multicast or loopback target before looking
    // further. A multicast or loopback sender gets no answer (ip_route_input:
    // martian source) and can have no entry to update (a multicast entry is
    // NOARP): Linux consumes it after a fruitless lookup; we count it here.
    if pkt.target_ip.is_multicast()
        || pkt.target_ip.is_loopback()
        || pkt.sender_ip.is_multicast()
        || pkt.sender_ip.is_loopback()
    {
        net.mib.XskArpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::XskArpInErrors);
    }
    match pkt.operation {
        ArpOperation::Request => net.mib.XskArpInRequests += 1,
        ArpOperation::Reply => net.mib.XskArpInReplies += 1,
    }
    let for_us = pkt.target_ip == net.route.addr;
    let request = pkt.operation == ArpOperation::Request;
    if pkt.sender_ip.is_unspecified() {
        // RFC 2131 duplicate address detection: answer, learn nothing.
        if request && for_us {
            return arp_reply(net, q, umem, frame, l3, &pkt);
        }
        if !for_us {
            net.mib.XskArpIgnored += 1;
        }
        return q.free_frame(frame);
    }
    // A request for our address (ip_route_input says RTN_LOCAL unless the
    // sender is a martian): neigh_event_ns, then the reply.
    if request && for_us && !net.route.is_martian_source(pkt.sender_ip) {
        let noarp = net.route.broadcast() == Some(pkt.sender_ip);
        let exists = net.neigh.neigh_lookup(pkt.sender_ip, &mut net.mib)
            || net.neigh.neigh_create_typed(pkt.sender_ip, noarp, now, &mut net.mib);
        if !exists {
            // No entry, no reply (arp_process answers only with `n`).
            return q.kfree_skb_reason(frame, MibCounter::XskArpCacheTableFulls);
        }
        let waiting = net.neigh.neigh_update(pkt.sender_ip, pkt.sender_hw, NudState::Stale, true, now);
        for d in waiting {
            dev_queue_xmit(q, &mut net.mib, d, net.mac, pkt.sender_hw, ethertype::IPV4);
        }
        return arp_reply(net, q, umem, frame, l3, &pkt);
    }
    // Update our ARP tables: only an entry we have (arp_accept is 0).
    if net.neigh.neigh_lookup(pkt.sender_ip, &mut net.mib) {
        let unicast_sender = !pkt.sender_ip.is_broadcast()
            && !pkt.sender_ip.is_multicast()
            && pkt.sender_ip != net.route.addr
            && net.route.broadcast() != Some(pkt.sender_ip);
        let is_garp = pkt.sender_ip == pkt.target_ip && (request || pkt.target_hw == pkt.sender_hw) && unicast_sender;
        let override_ = is_garp || net.neigh.override_allowed(pkt.sender_ip, now);
        // Broadcast replies and requests do not assert reachability.
        let state = if !request && to_our_mac { NudState::Reachable } else { NudState::Stale };
        let waiting = net.neigh.neigh_update(pkt.sender_ip, pkt.sender_hw, state, override_, now);
        if let Some(mac) = net.neigh.lookup(pkt.sender_ip) {
            for d in waiting {
                dev_queue_xmit(q, &mut net.mib, d, net.mac, mac, ethertype::IPV4);
            }
        }
    }
    if !for_us {
        net.mib.XskArpIgnored += 1;
    }
    q.free_frame(frame)
}

/// `arp_send_dst(ARPOP_REPLY, …)` for the request `pkt`: the answer is
/// written in the same frame (Ethernet header at `l3` - 14, body at `l3`).
fn arp_reply(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, frame: Frame, l3: usize, pkt: &ArpRepr) {
    let mut frame = frame;
    let reply = pkt.reply(net.mac);
    reply.emit(&mut ArpPacket::new_unchecked(&mut umem.frame_mut(&mut frame)[l3..l3 + arp::PACKET_LEN]));
    net.mib.XskArpOutReplies += 1;
    let d = Desc::one(frame, (l3 - ethernet::HEADER_LEN) as u32, (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32);
    dev_queue_xmit(q, &mut net.mib, d, net.mac, pkt.sender_hw, ethertype::ARP);
}

/// Broadcasts "who has `ip`?" (`arp_solicit` for an incomplete entry).
pub fn arp_send_request(net: &mut Net, q: &mut NetdevQueue, ip: Ipv4Addr) {
    arp_solicit(net, q, ip, None);
}

/// `arp_solicit`: asks "who has `ip`?", by broadcast, or by unicast to
/// `unicast` (a `PROBE` of a known address). The target hardware address is
/// zero either way, as `arp_create` leaves it.
pub fn arp_solicit(net: &mut Net, q: &mut NetdevQueue, ip: Ipv4Addr, unicast: Option<EthernetAddress>) {
    let Some(mut frame) = q.alloc_frame() else {
        net.mib.XskNoFreeFrames += 1;
        return;
    };
    let req = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: net.mac,
        sender_ip: net.route.addr,
        target_hw: EthernetAddress::default(),
        target_ip: ip,
    };
    let l3 = ethernet::HEADER_LEN;
    req.emit(&mut ArpPacket::new_unchecked(&mut q.umem().frame_mut(&mut frame)[l3..l3 + arp::PACKET_LEN]));
    net.mib.XskArpOutRequests += 1;
    let d = Desc::one(frame, 0, (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32);
    dev_queue_xmit(q, &mut net.mib, d, net.mac, unicast.unwrap_or(EthernetAddress::BROADCAST), ethertype::ARP);
}

/// The neighbour timers due at `now`: ask again, or give up and drop what
/// waited (`XskNeighUnresDiscards`); age and collect entries.
pub fn neigh_timers(net: &mut Net, q: &mut NetdevQueue, now: Instant) {
    let expired = net.neigh.expire(now, &mut net.mib);
    for s in expired.probes {
        arp_solicit(net, q, s.ip, s.unicast);
    }
    for d in expired.failed {
        net.mib.XskNeighUnresDiscards += 1;
        // No next hop, no Ethernet header: captured from the IP header.
        let l3 = (d.offset + d.len.min(ethernet::HEADER_LEN as u32)) as usize..(d.offset + d.len) as usize;
        q.kfree_xmit_reason(d.frame, l3, Link::Ipv4, MibCounter::XskNeighUnresDiscards);
    }
}
