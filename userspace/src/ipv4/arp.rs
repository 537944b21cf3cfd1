//! ARP for IPv4 over Ethernet (net/ipv4/arp.c, `arp_process`): answer
//! requests for our address, learn the requester, complete our own
//! resolutions, and send requests for the output path.

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::netdevice::{Desc, NetDevice};
use crate::stack::Stack;
use crate::umem::{Frame, Umem};
use crate::wire::arp::{self, ArpOperation, ArpPacket};
use crate::wire::ethernet::{self, ethertype};
use crate::wire::EthernetAddress;

impl<D: NetDevice> Stack<D> {
    pub(crate) fn arp_rcv(&mut self, umem: &Umem, frame: Frame, l3: usize, len: usize, now: Instant) {
        let Ok(pkt) = ArpPacket::parse(&umem.frame(&frame)[l3..l3 + len]) else {
            self.mib.XskArpInErrors += 1;
            return self.free_frame(frame);
        };
        // arp_process() drops these before looking further.
        if pkt.sender_ip.is_multicast() || pkt.sender_ip.is_loopback() || pkt.target_ip.is_multicast() {
            self.mib.XskArpInErrors += 1;
            return self.free_frame(frame);
        }
        match pkt.operation {
            ArpOperation::Request => self.mib.XskArpInRequests += 1,
            ArpOperation::Reply => self.mib.XskArpInReplies += 1,
        }
        let for_us = pkt.target_ip == self.cfg.addr;
        // A request to us creates the requester's entry; anything else only
        // refreshes an entry we already have (no arp_accept).
        let create = for_us && pkt.operation == ArpOperation::Request;
        if !pkt.sender_ip.is_unspecified() && self.cfg.on_link(pkt.sender_ip) {
            let waiting = self.neigh.update(pkt.sender_ip, pkt.sender_hw, create, now);
            for d in waiting {
                self.dev_queue_xmit(d, pkt.sender_hw, ethertype::IPV4);
            }
        }
        if !(for_us && pkt.operation == ArpOperation::Request) {
            if !for_us {
                self.mib.XskArpIgnored += 1;
            }
            return self.free_frame(frame);
        }
        // Answer in the same frame: Ethernet header at l3 - 14, body at l3.
        let mut frame = frame;
        let reply = pkt.reply(self.cfg.mac);
        reply.write(&mut self.umem.frame_mut(&mut frame)[l3..l3 + arp::PACKET_LEN]);
        self.mib.XskArpOutReplies += 1;
        let d = Desc {
            frame,
            offset: (l3 - ethernet::HEADER_LEN) as u32,
            len: (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32,
        };
        self.dev_queue_xmit(d, pkt.sender_hw, ethertype::ARP);
    }

    /// Broadcasts "who has `ip`?" (`arp_solicit`).
    pub(crate) fn arp_send_request(&mut self, ip: Ipv4Addr) {
        let Some(mut frame) = self.alloc_frame() else {
            self.mib.XskNoFreeFrames += 1;
            return;
        };
        let req = ArpPacket {
            operation: ArpOperation::Request,
            sender_hw: self.cfg.mac,
            sender_ip: self.cfg.addr,
            target_hw: EthernetAddress::default(),
            target_ip: ip,
        };
        let l3 = ethernet::HEADER_LEN;
        req.write(&mut self.umem.frame_mut(&mut frame)[l3..l3 + arp::PACKET_LEN]);
        self.mib.XskArpOutRequests += 1;
        let d = Desc { frame, offset: 0, len: (ethernet::HEADER_LEN + arp::PACKET_LEN) as u32 };
        self.dev_queue_xmit(d, EthernetAddress::BROADCAST, ethertype::ARP);
    }

    /// The neighbour timers: ask again, or give up and drop what waited.
    pub(crate) fn neigh_timers(&mut self, now: Instant) {
        let expired = self.neigh.expire(now);
        for ip in expired.probes {
            self.arp_send_request(ip);
        }
        for d in expired.failed {
            self.mib.XskNeighUnresDiscards += 1;
            self.free_frame(d.frame);
        }
    }
}
