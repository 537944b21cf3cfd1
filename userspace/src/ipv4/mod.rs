//! IPv4 input and output (net/ipv4/ip_input.c, ip_output.c, net/core/dev.c's
//! `__netif_receive_skb`): the protocol half of the softirq stage.
//!
//! `netif_receive` takes one descriptor off the rx batch, checks the Ethernet
//! destination and dispatches on the EtherType; `ip_rcv` validates as
//! `ip_rcv_core` does, in the same order and with the same counters, and
//! delivers to ICMP or UDP. Every frame ends in exactly one place: a sock's
//! receive queue, the tx batch (answers are built in the same frame where
//! they fit), or the free cache, with a counter saying why.

pub mod arp;
pub mod icmp;
pub mod udp;

use std::net::Ipv4Addr;
use std::time::Instant;

use crate::neighbour::Resolution;
use crate::netdevice::{Desc, NetDevice};
use crate::stack::Stack;
use crate::umem::{Frame, Umem};
use crate::wire::ethernet::{self, ethertype, EthernetHeader};
use crate::wire::ipv4::{self, protocol, Ipv4Error, Ipv4Header};
use crate::wire::{checksum, EthernetAddress};

/// Where a received IPv4 datagram lies in its frame.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RxIp {
    pub hdr: Ipv4Header,
    /// Offset of the IP header from the frame base.
    pub l3: usize,
    /// Offset of the payload (ICMP, UDP) from the frame base.
    pub l4: usize,
    /// Payload length, Ethernet padding trimmed.
    pub l4_len: usize,
}

impl<D: NetDevice> Stack<D> {
    /// One received frame (`__netif_receive_skb`).
    #[inline]
    pub(crate) fn netif_receive(&mut self, umem: &Umem, d: Desc, now: Instant) {
        self.mib.XskRxFrames += 1;
        let start = d.offset as usize;
        let end = start + d.len as usize;
        let frame = umem.frame(&d.frame);
        if end > frame.len() {
            // The kernel never hands out such a descriptor; count it, don't trust it.
            self.mib.XskRxRunts += 1;
            return self.free_frame(d.frame);
        }
        let Ok(eth) = EthernetHeader::parse(&frame[start..end]) else {
            self.mib.XskRxRunts += 1;
            return self.free_frame(d.frame);
        };
        if eth.dst != self.cfg.mac && !eth.dst.is_broadcast() {
            self.mib.XskRxOtherHost += 1;
            return self.free_frame(d.frame);
        }
        let l3 = start + ethernet::HEADER_LEN;
        match eth.ethertype {
            ethertype::IPV4 => self.ip_rcv(umem, d.frame, l3, end - l3, now),
            ethertype::ARP => self.arp_rcv(umem, d.frame, l3, end - l3, now),
            _ => {
                self.mib.XskRxNoHandler += 1;
                self.free_frame(d.frame);
            }
        }
    }

    /// `ip_rcv` + `ip_rcv_core` + `ip_local_deliver`.
    #[inline]
    fn ip_rcv(&mut self, umem: &Umem, frame: Frame, l3: usize, len: usize, now: Instant) {
        let pkt = &umem.frame(&frame)[l3..l3 + len];
        self.mib.IpInReceives += 1;
        self.mib.IpExtInOctets += len as u64;
        // Linux counts ECN once version and IHL look right, before the checksum.
        if len >= ipv4::MIN_HEADER_LEN && pkt[0] >> 4 == 4 && pkt[0] & 0x0f >= 5 {
            match pkt[1] & 0x03 {
                0 => self.mib.IpExtInNoECTPkts += 1,
                1 => self.mib.IpExtInECT1Pkts += 1,
                2 => self.mib.IpExtInECT0Pkts += 1,
                _ => self.mib.IpExtInCEPkts += 1,
            }
        }
        let hdr = match Ipv4Header::check(pkt) {
            Ok(h) => h,
            Err(e) => {
                match e {
                    Ipv4Error::HdrError => self.mib.IpInHdrErrors += 1,
                    Ipv4Error::ChecksumError => {
                        self.mib.IpExtInCsumErrors += 1;
                        self.mib.IpInHdrErrors += 1;
                    }
                    Ipv4Error::Truncated => self.mib.IpExtInTruncatedPkts += 1,
                }
                return self.free_frame(frame);
            }
        };
        // The route lookup: only our own address is local. (Broadcast and
        // multicast never reach us: the XDP program claims only our address.)
        if hdr.dst != self.cfg.addr {
            self.mib.IpInAddrErrors += 1;
            return self.free_frame(frame);
        }
        // ip_route_input_slow(): zeronet, loopback (route_localnet off),
        // multicast and limited-broadcast sources are martians, and
        // fib_validate_source() rejects one of our own addresses as the source.
        // A subnet-broadcast source passes, as with rp_filter off (a new
        // namespace's default).
        if hdr.src.is_broadcast()
            || hdr.src.is_multicast()
            || hdr.src.is_unspecified()
            || hdr.src.is_loopback()
            || hdr.src == self.cfg.addr
        {
            self.mib.XskIpInMartianSrc += 1;
            return self.free_frame(frame);
        }
        if hdr.is_fragment() {
            self.mib.IpReasmReqds += 1;
            self.mib.XskIpFragDrops += 1;
            return self.free_frame(frame);
        }
        let ip = RxIp { hdr, l3, l4: l3 + hdr.header_len, l4_len: hdr.payload_len() };
        match hdr.protocol {
            protocol::UDP => {
                self.udp_rcv(umem, frame, &ip, now);
                self.mib.IpInDelivers += 1;
            }
            protocol::ICMP => {
                self.icmp_rcv(umem, frame, &ip, now);
                self.mib.IpInDelivers += 1;
            }
            _ => {
                self.mib.IpInUnknownProtos += 1;
                self.icmp_send_unreach(umem, &frame, &ip, crate::wire::icmp::unreach_code::PROTOCOL, now);
                self.free_frame(frame);
            }
        }
    }

    /// The next IP identifier (`ip_select_ident`, simplified to a counter).
    #[inline]
    pub(crate) fn next_ip_ident(&mut self) -> u16 {
        let id = self.ip_ident;
        self.ip_ident = self.ip_ident.wrapping_add(1);
        id
    }

    /// Writes a 20-byte IP header at `l3` for a payload of `payload_len`.
    #[inline]
    pub(crate) fn ip_build_header(&mut self, buf: &mut [u8], dst: Ipv4Addr, protocol: u8, payload_len: usize, tos: u8) {
        let ident = self.next_ip_ident();
        Ipv4Header::write(buf, self.cfg.addr, dst, protocol, payload_len, self.cfg.ttl, ident, false);
        if tos != 0 {
            buf[1] = tos;
            buf[10] = 0;
            buf[11] = 0;
            let c = checksum::checksum(&buf[..ipv4::MIN_HEADER_LEN]);
            buf[10..12].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// The next hop for `dst`, or `None` (IpOutNoRoutes).
    #[inline]
    pub(crate) fn route(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.cfg.next_hop(dst)
    }

    /// `ip_local_out` → `ip_finish_output2` → `neigh_output`: the IP datagram
    /// at `l3` (header written) goes to the tx batch, or waits for ARP.
    /// Returns false if it was dropped (no route).
    #[inline]
    pub(crate) fn ip_output(&mut self, frame: Frame, l3: usize, ip_len: usize, dst: Ipv4Addr, now: Instant) -> bool {
        let Some(nexthop) = self.route(dst) else {
            self.mib.IpOutNoRoutes += 1;
            self.free_frame(frame);
            return false;
        };
        self.mib.IpOutRequests += 1;
        self.mib.IpOutTransmits += 1;
        self.mib.IpExtOutOctets += ip_len as u64;
        let desc =
            Desc { frame, offset: (l3 - ethernet::HEADER_LEN) as u32, len: (ethernet::HEADER_LEN + ip_len) as u32 };
        match self.neigh.resolve(nexthop, desc, now) {
            Resolution::Reachable(mac, d) => self.dev_queue_xmit(d, mac, ethertype::IPV4),
            Resolution::Queued { probe } => {
                if probe {
                    self.arp_send_request(nexthop);
                }
            }
            Resolution::QueueFull(d) => {
                self.mib.XskNeighUnresDiscards += 1;
                self.free_frame(d.frame);
            }
        }
        true
    }

    /// Puts a packet whose next hop is known on the tx batch.
    #[inline]
    pub(crate) fn dev_queue_xmit(&mut self, mut d: Desc, dst_mac: EthernetAddress, ethertype: u16) {
        if self.tx_batch.len() >= self.tx_backlog_max {
            self.mib.XskTxRingFull += 1;
            return self.free_frame(d.frame);
        }
        let at = d.offset as usize;
        let eth = EthernetHeader { dst: dst_mac, src: self.cfg.mac, ethertype };
        eth.write(&mut self.umem.frame_mut(&mut d.frame)[at..at + ethernet::HEADER_LEN]);
        self.tx_batch.push(d);
    }
}
