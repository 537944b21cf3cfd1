//! UDP (net/ipv4/udp.c): `__udp4_lib_rcv` on the way in, `udp_send_skb` on
//! the way out.
//!
//! In: length checks, lookup of the bound sock by port, the checksum (only
//! then, as Linux verifies lazily), the rcvbuf check, the queue. A datagram
//! for a port nobody bound is counted (`UdpNoPorts`) and answered with ICMP
//! port unreachable, rate-limited. Out: headers written in front of the
//! application's data, in the frame it was copied to.

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Instant;

use super::RxIp;
use crate::netdevice::NetDevice;
use crate::skbuff::SkBuff;
use crate::sock::Sock;
use crate::stack::{DemuxKey, Stack};
use crate::umem::{Frame, Umem};
use crate::wire::icmp::unreach_code;
use crate::wire::ipv4::{self, protocol};
use crate::wire::udp;

impl<D: NetDevice> Stack<D> {
    /// `__udp4_lib_rcv`.
    #[inline]
    pub(crate) fn udp_rcv(&mut self, umem: &Umem, frame: Frame, ip: &RxIp, now: Instant) {
        let segment = &umem.frame(&frame)[ip.l4..ip.l4 + ip.l4_len];
        let Ok(uh) = udp::parse(segment) else {
            self.mib.UdpInErrors += 1;
            return self.free_frame(frame);
        };
        let datagram = &segment[..uh.len as usize];
        let key = DemuxKey { protocol: protocol::UDP, port: uh.dst_port };
        match self.demux.get(&key) {
            Some(sock) => {
                if !udp::verify_checksum(ip.hdr.src, ip.hdr.dst, datagram) {
                    self.mib.UdpInCsumErrors += 1;
                    self.mib.UdpInErrors += 1;
                    return self.free_frame(frame);
                }
                let peer = SocketAddrV4::new(ip.hdr.src, uh.src_port);
                let mut skb = SkBuff::new(frame, ip.l4 + udp::HEADER_LEN, uh.len as usize - udp::HEADER_LEN, peer);
                if self.rx_sample_countdown != 0 {
                    self.rx_sample_countdown -= 1;
                    if self.rx_sample_countdown == 0 {
                        self.rx_sample_countdown = self.cfg.rx_latency_sample;
                        skb.rx_ns = self.rx_stamp_ns;
                    }
                }
                match sock.queue_rcv(skb) {
                    Ok(()) => {
                        if self.rx_woken.last() != Some(&key) {
                            self.rx_woken.push(key);
                        }
                    }
                    Err(skb) => {
                        self.mib.UdpRcvbufErrors += 1;
                        self.mib.UdpInErrors += 1;
                        self.free_frame(skb.into_frame());
                    }
                }
            }
            None => {
                if !udp::verify_checksum(ip.hdr.src, ip.hdr.dst, datagram) {
                    self.mib.UdpInCsumErrors += 1;
                    self.mib.UdpInErrors += 1;
                    return self.free_frame(frame);
                }
                self.mib.UdpNoPorts += 1;
                self.icmp_send_unreach(umem, &frame, ip, unreach_code::PORT, now);
                self.free_frame(frame);
            }
        }
    }

    /// Sends what `sock` has on its write queue: UDP and IP headers go in
    /// front of the data (`TX_HEADROOM` leaves room), then `ip_output`.
    pub(crate) fn udp_push_pending(&mut self, sock: &Arc<Sock>, budget: usize, now: Instant) -> usize {
        let Some(local) = sock.local() else { return 0 };
        // Once per call, not per datagram: an `Arc` clone is a locked add.
        let umem = self.umem.clone();
        let mut sent = 0;
        while sent < budget {
            let Some(skb) = sock.dequeue_xmit() else { break };
            sent += 1;
            let dst = skb.peer;
            let len = skb.len();
            let l4 = skb.data as usize - udp::HEADER_LEN;
            let l3 = l4 - ipv4::MIN_HEADER_LEN;
            let mut frame = skb.into_frame();
            let buf = umem.frame_mut(&mut frame);
            udp::write_header(&mut buf[l4..], self.cfg.addr, *dst.ip(), local.port(), dst.port(), len);
            let ulen = udp::HEADER_LEN + len;
            self.ip_build_header(&mut buf[l3..l4], *dst.ip(), protocol::UDP, ulen, 0);
            if self.ip_output(frame, l3, ipv4::MIN_HEADER_LEN + ulen, *dst.ip(), now) {
                self.mib.UdpOutDatagrams += 1;
            }
        }
        sent
    }
}
