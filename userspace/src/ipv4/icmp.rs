//! ICMP for IPv4 (net/ipv4/icmp.c): answer echo requests, count what
//! arrives, and send destination-unreachable errors under Linux's two rate
//! limits.
//!
//! The limits are Linux's: a global token bucket (`net.ipv4.icmp_msgs_per_sec`
//! = 1000, `icmp_msgs_burst` = 50) and one per destination host
//! (`net.ipv4.icmp_ratelimit` = 1000 ms per token, bursts of 6:
//! `inet_peer_xrlim_allow`), both applied to the types in
//! `icmp_ratemask` (destination unreachable among them; echo replies are
//! never limited). Linux takes 0–2 global credits per message at random;
//! we take 1, the mean, so that tests are repeatable.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::RxIp;
use crate::netdevice::NetDevice;
use crate::stack::Stack;
use crate::umem::{Frame, Umem};
use crate::wire::icmp::{self, msg_type, IcmpError};
use crate::wire::ipv4::{self, protocol};

/// `IPTOS_PREC_INTERNETCONTROL`: the TOS Linux gives ICMP errors.
const TOS_INTERNETCONTROL: u8 = 0xc0;
/// `XRLIM_BURST_FACTOR`.
const XRLIM_BURST_FACTOR: u64 = 6;
const MAX_PEERS: usize = 4096;
/// `NR_ICMP_TYPES`: the highest ICMP type Linux knows.
const NR_ICMP_TYPES: u8 = 18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimited {
    Global,
    Host,
}

pub struct IcmpRateLimit {
    msgs_per_sec: u64,
    msgs_burst: i64,
    /// Milliseconds a host must wait per message; 0 disables the per-host limit.
    ratelimit_ms: u64,
    credit: i64,
    stamp: Option<Instant>,
    /// Per host: tokens in milliseconds and when they were last counted.
    peers: HashMap<Ipv4Addr, (u64, Instant)>,
}

fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}")).ok()?.trim().parse().ok()
}

impl IcmpRateLimit {
    pub fn new(msgs_per_sec: u64, msgs_burst: u64, ratelimit_ms: u64) -> IcmpRateLimit {
        IcmpRateLimit {
            msgs_per_sec,
            msgs_burst: msgs_burst as i64,
            ratelimit_ms,
            credit: 0,
            stamp: None,
            peers: HashMap::new(),
        }
    }

    /// Linux's defaults, or this machine's sysctls where readable.
    pub fn from_sysctls() -> IcmpRateLimit {
        IcmpRateLimit::new(
            sysctl("icmp_msgs_per_sec").unwrap_or(1000),
            sysctl("icmp_msgs_burst").unwrap_or(50),
            sysctl("icmp_ratelimit").unwrap_or(1000),
        )
    }

    /// `icmp_global_allow` then `inet_peer_xrlim_allow`; consumes on success.
    pub fn allow(&mut self, dst: Ipv4Addr, now: Instant) -> Result<(), RateLimited> {
        if self.credit <= 0 {
            let delta = match self.stamp {
                None => Duration::from_secs(1),
                Some(s) => now.duration_since(s).min(Duration::from_secs(1)),
            };
            // Refills at most every 20 ms (HZ / 50), as Linux does.
            if delta < Duration::from_millis(20) {
                return Err(RateLimited::Global);
            }
            let incr = (self.msgs_per_sec as u128 * delta.as_millis() / 1000) as i64;
            if incr == 0 {
                return Err(RateLimited::Global);
            }
            self.stamp = Some(now);
            self.credit = (self.credit + incr).min(self.msgs_burst);
        }
        if self.ratelimit_ms > 0 {
            if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&dst) {
                // Forget hosts that have earned a full burst back anyway.
                let full = self.ratelimit_ms * XRLIM_BURST_FACTOR;
                self.peers.retain(|_, (_, last)| (now.duration_since(*last).as_millis() as u64) < full);
            }
            let (tokens, last) = self.peers.entry(dst).or_insert((self.ratelimit_ms * XRLIM_BURST_FACTOR, now));
            let cap = self.ratelimit_ms * XRLIM_BURST_FACTOR;
            let t = (*tokens + now.duration_since(*last).as_millis() as u64).min(cap);
            *last = now;
            if t < self.ratelimit_ms {
                *tokens = t;
                return Err(RateLimited::Host);
            }
            *tokens = t - self.ratelimit_ms;
        }
        self.credit -= 1;
        Ok(())
    }
}

impl<D: NetDevice> Stack<D> {
    /// `icmp_rcv`.
    pub(crate) fn icmp_rcv(&mut self, umem: &Umem, frame: Frame, ip: &RxIp, now: Instant) {
        self.mib.IcmpInMsgs += 1;
        let msg = &umem.frame(&frame)[ip.l4..ip.l4 + ip.l4_len];
        let hdr = match icmp::check(msg) {
            Ok(h) => h,
            Err(e) => {
                if e == IcmpError::ChecksumError {
                    self.mib.IcmpInCsumErrors += 1;
                }
                self.mib.IcmpInErrors += 1;
                return self.free_frame(frame);
            }
        };
        match hdr.msg_type {
            msg_type::ECHO_REQUEST => {
                self.mib.IcmpInEchos += 1;
                self.mib.IcmpMsgInType8 += 1;
                self.icmp_echo(frame, ip, now);
            }
            msg_type::ECHO_REPLY => {
                self.mib.IcmpInEchoReps += 1;
                self.mib.IcmpMsgInType0 += 1;
                self.free_frame(frame);
            }
            msg_type::DEST_UNREACH => {
                self.mib.IcmpInDestUnreachs += 1;
                self.mib.IcmpMsgInType3 += 1;
                let quoted = &msg[icmp::HEADER_LEN..];
                // icmp_unreach(): no room for the quoted IP header, or a mangled
                // one, is an ICMP input error.
                if quoted.len() < ipv4::MIN_HEADER_LEN || quoted[0] & 0x0f < 5 {
                    self.mib.IcmpInErrors += 1;
                } else {
                    self.icmp_unreach(hdr.code, quoted);
                }
                self.free_frame(frame);
            }
            // icmp_rcv(): a type above NR_ICMP_TYPES is an error; known
            // types we do not handle are silently ignored.
            t => {
                if t > NR_ICMP_TYPES {
                    self.mib.IcmpInErrors += 1;
                }
                self.free_frame(frame)
            }
        }
    }

    /// `icmp_unreach` → `__udp4_lib_err`: a port unreachable for a datagram
    /// a connected UDP socket sent becomes ECONNREFUSED on that socket (only
    /// connected ones, as Linux without IP_RECVERR).
    fn icmp_unreach(&mut self, code: u8, quoted: &[u8]) {
        if code != icmp::unreach_code::PORT {
            return;
        }
        // The quoted header is cut short by design (its total length is the
        // original's): read only its fixed fields.
        let Some(h) = quoted.first_chunk::<{ ipv4::MIN_HEADER_LEN }>() else { return };
        let header_len = usize::from(h[0] & 0x0f) * 4;
        let src = std::net::Ipv4Addr::new(h[12], h[13], h[14], h[15]);
        let dst = std::net::Ipv4Addr::new(h[16], h[17], h[18], h[19]);
        if h[0] >> 4 != 4 || header_len < ipv4::MIN_HEADER_LEN || h[9] != protocol::UDP || src != self.cfg.addr {
            return;
        }
        let Some(ports) = quoted.get(header_len..header_len + 4) else { return };
        let sport = u16::from_be_bytes([ports[0], ports[1]]);
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        let key = crate::stack::DemuxKey { protocol: protocol::UDP, port: sport };
        if let Some(sock) = self.demux.get(&key) {
            if sock.remote() == Some(std::net::SocketAddrV4::new(dst, dport)) {
                sock.set_err(crate::errno::Errno::ECONNREFUSED);
            }
        }
    }

    /// `icmp_echo` → `icmp_reply`, in the same frame: the reply's 20-byte IP
    /// header goes right before the ICMP message (the request's header was at
    /// least as long, so it fits), the Ethernet header before that.
    fn icmp_echo(&mut self, mut frame: Frame, ip: &RxIp, now: Instant) {
        let umem = self.umem.clone();
        let buf = umem.frame_mut(&mut frame);
        icmp::echo_request_to_reply(&mut buf[ip.l4..ip.l4 + ip.l4_len]);
        let l3 = ip.l4 - ipv4::MIN_HEADER_LEN;
        self.ip_build_header(&mut buf[l3..ip.l4], ip.hdr.src, protocol::ICMP, ip.l4_len, ip.hdr.tos);
        if self.ip_output(frame, l3, ipv4::MIN_HEADER_LEN + ip.l4_len, ip.hdr.src, now) {
            self.mib.IcmpOutMsgs += 1;
            self.mib.IcmpOutEchoReps += 1;
            self.mib.IcmpMsgOutType0 += 1;
        }
    }

    /// `icmp_send(skb, ICMP_DEST_UNREACH, code)`: quotes the offending
    /// datagram in a new frame; the original stays with the caller.
    pub(crate) fn icmp_send_unreach(&mut self, umem: &Umem, original: &Frame, ip: &RxIp, code: u8, now: Instant) {
        if let Err(limited) = self.icmp_ratelimit.allow(ip.hdr.src, now) {
            match limited {
                RateLimited::Global => self.mib.IcmpOutRateLimitGlobal += 1,
                RateLimited::Host => self.mib.IcmpOutRateLimitHost += 1,
            }
            return;
        }
        let Some(mut frame) = self.alloc_frame() else {
            self.mib.XskNoFreeFrames += 1;
            return;
        };
        let l3 = crate::wire::ethernet::HEADER_LEN;
        let l4 = l3 + ipv4::MIN_HEADER_LEN;
        let quoted = &umem.frame(original)[ip.l3..ip.l3 + ip.hdr.total_len];
        let buf = umem.frame_mut(&mut frame);
        let icmp_len = icmp::write_dest_unreachable(&mut buf[l4..], code, quoted);
        self.ip_build_header(&mut buf[l3..l4], ip.hdr.src, protocol::ICMP, icmp_len, TOS_INTERNETCONTROL);
        if self.ip_output(frame, l3, ipv4::MIN_HEADER_LEN + icmp_len, ip.hdr.src, now) {
            self.mib.IcmpOutMsgs += 1;
            self.mib.IcmpOutDestUnreachs += 1;
            self.mib.IcmpMsgOutType3 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn per_host_burst_of_six_then_one_per_second() {
        let mut rl = IcmpRateLimit::new(1000, 50, 1000);
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(rl.allow(PEER, t0), Ok(()));
        }
        assert_eq!(rl.allow(PEER, t0), Err(RateLimited::Host));
        assert_eq!(rl.allow(PEER, t0 + Duration::from_millis(500)), Err(RateLimited::Host));
        assert_eq!(rl.allow(PEER, t0 + Duration::from_millis(1000)), Ok(()));
        // Another host has its own bucket.
        assert_eq!(rl.allow(Ipv4Addr::new(10, 0, 0, 9), t0), Ok(()));
    }

    #[test]
    fn global_burst_of_fifty() {
        let mut rl = IcmpRateLimit::new(1000, 50, 0);
        let t0 = Instant::now();
        let allowed = (0..200).filter(|_| rl.allow(PEER, t0).is_ok()).count();
        assert_eq!(allowed, 50);
        assert_eq!(rl.allow(PEER, t0 + Duration::from_millis(10)), Err(RateLimited::Global));
        assert_eq!(rl.allow(PEER, t0 + Duration::from_millis(30)), Ok(()));
    }
}
