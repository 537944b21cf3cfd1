//! ARP for IPv4 over Ethernet (net/ipv4/arp.c, `arp_process`): answer
//! requests for our address, learn the requester, complete our own
//! resolutions, send requests for the output path (`arp_solicit`), and run
//! the neighbour timers.

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::capture::Link;
use crate::net::Net;
use crate::netdev_queue::{dev_queue_xmit, NetdevQueue};
use crate::netdevice::Desc;
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::arp::{self, ArpOperation, ArpPacket, ArpRepr};
use crate::wire::ethernet::{self, ethertype};
use crate::wire::EthernetAddress;

/// `arp_rcv` → `arp_process`: the ARP packet of `len` bytes at `l3` in `frame`.
pub fn arp_rcv(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, frame: Frame, l3: usize, len: usize, now: Instant) {
    let Ok(pkt) = ArpRepr::parse(&ArpPacket::new_unchecked(&umem.frame(&frame)[l3..l3 + len])) else {
        net.mib.XskArpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::XskArpInErrors);
    };
    // arp_process() drops these before looking further.
    if pkt.sender_ip.is_multicast() || pkt.sender_ip.is_loopback() || pkt.target_ip.is_multicast() {
        net.mib.XskArpInErrors += 1;
        return q.kfree_skb_reason(frame, MibCounter::XskArpInErrors);
    }
    match pkt.operation {
        ArpOperation::Request => net.mib.XskArpInRequests += 1,
        ArpOperation::Reply => net.mib.XskArpInReplies += 1,
    }
    let for_us = pkt.target_ip == net.route.addr;
    // A request to us creates the requester's entry; anything else only
    // refreshes an entry we already have (no arp_accept).
    let create = for_us && pkt.operation == ArpOperation::Request;
    if !pkt.sender_ip.is_unspecified() && net.route.on_link(pkt.sender_ip) {
        let waiting = net.neigh.update(pkt.sender_ip, pkt.sender_hw, create, now);
        for d in waiting {
            dev_queue_xmit(q, &mut net.mib, d, net.mac, pkt.sender_hw, ethertype::IPV4);
        }
    }
    if !(for_us && pkt.operation == ArpOperation::Request) {
        if !for_us {
            net.mib.XskArpIgnored += 1;
        }
        return q.free_frame(frame);
    }
    // Answer in the same frame: Ethernet header at l3 - 14, body at l3.
    let mut frame = frame;
    let reply = pkt.reply(net.mac);
    reply.emit(&mut ArpPacket::new_unchecked(&mut umem.frame_mut(&mut frame)[l3..l3 + arp::PACKET_LEN]));
    net.mib.XskArpOutReplies += 1;
    let d = Desc {
        frame,
        offset: (l3 - ethernet::HEADER_LEN) as u32,
        len: (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32,
    };
    dev_queue_xmit(q, &mut net.mib, d, net.mac, pkt.sender_hw, ethertype::ARP);
}

/// Broadcasts "who has `ip`?" (`arp_solicit`).
pub fn arp_send_request(net: &mut Net, q: &mut NetdevQueue, ip: Ipv4Addr) {
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
    let d = Desc { frame, offset: 0, len: (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32 };
    dev_queue_xmit(q, &mut net.mib, d, net.mac, EthernetAddress::BROADCAST, ethertype::ARP);
}

/// The neighbour timers due at `now`: ask again, or give up and drop what
/// waited (`XskNeighUnresDiscards`).
pub fn neigh_timers(net: &mut Net, q: &mut NetdevQueue, now: Instant) {
    let expired = net.neigh.expire(now);
    for ip in expired.probes {
        arp_send_request(net, q, ip);
    }
    for d in expired.failed {
        net.mib.XskNeighUnresDiscards += 1;
        // No next hop, no Ethernet header: captured from the IP header.
        let l3 = (d.offset + d.len.min(ethernet::HEADER_LEN as u32)) as usize..(d.offset + d.len) as usize;
        q.kfree_xmit_reason(d.frame, l3, Link::Ipv4, MibCounter::XskNeighUnresDiscards);
    }
}
