//! SYN cookies (net/ipv4/syncookies.c, `tcp_syncookies=1`): when a
//! listener's SYN queue is full, the SYN-ACK's sequence number carries what
//! the request sock would have held, and no request sock is kept; the ACK
//! that completes the handshake gives it back.
//!
//! The cookie is `secure_tcp_syn_cookie`'s:
//!
//! ```text
//! H1(4-tuple) + ISN_peer + (count << 24) + ((H2(4-tuple, count) + mss_index) mod 2^24)
//! ```
//!
//! where `count` is a minute counter (`tcp_cookie_time`) and `mss_index`
//! the largest of [`MSSTAB`] not above the peer's MSS. A cookie is good for
//! [`MAX_SYNCOOKIE_AGE`] minutes. Without timestamps (xsknet does not send
//! them yet) a cookie has no room for the window scale or SACK: the SYN-ACK
//! offers neither, as Linux's does for a SYN without timestamps
//! (`tcp_clear_options`). The hashes are keyed with a per-stack random
//! secret, as Linux's `syncookie_secret` (siphash there, `RandomState`'s
//! SipHash here).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use std::net::SocketAddrV4;

/// `COOKIEBITS`: the bits below the minute counter.
const COOKIEBITS: u32 = 24;
/// `COOKIEMASK`.
const COOKIEMASK: u32 = (1 << COOKIEBITS) - 1;
/// `MAX_SYNCOOKIE_AGE`: minutes a cookie stays good.
pub const MAX_SYNCOOKIE_AGE: u32 = 2;
/// `TCP_SYNCOOKIE_VALID`: how long after the last cookie sent a listener
/// still looks for cookies in ACKs (`tcp_synq_no_recent_overflow`).
pub const TCP_SYNCOOKIE_VALID: Duration = Duration::from_secs(2 * 60);
/// `msstab` (net/ipv4/syncookies.c): the MSS values a cookie can carry.
pub const MSSTAB: [u16; 4] = [536, 1300, 1440, 1460];

/// `net.ipv4.tcp_syncookies`: when a listener answers with SYN cookies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcpSyncookies {
    /// 0: never; a full SYN queue drops the SYN (`TCPReqQFullDrop`).
    Off,
    /// 1, Linux's default: when the SYN queue is full.
    #[default]
    WhenFull,
    /// 2: always, for every SYN.
    Always,
}

/// The cookie secret and clock of one stack.
#[derive(Debug)]
pub struct SynCookies {
    key: RandomState,
    epoch: Instant,
}

impl SynCookies {
    /// A new random secret; `epoch` starts the minute counter.
    pub fn new(epoch: Instant) -> SynCookies {
        SynCookies { key: RandomState::new(), epoch }
    }

    /// `tcp_cookie_time`: minutes since the epoch.
    fn count(&self, now: Instant) -> u32 {
        (now.saturating_duration_since(self.epoch).as_secs() / 60) as u32
    }

    /// `cookie_hash`: the keyed hash of the 4-tuple (our address and port,
    /// the peer's) with `count` and a discriminator `c` (0 for the first
    /// hash, 1 for the second).
    fn hash(&self, key: &(SocketAddrV4, SocketAddrV4), count: u32, c: u32) -> u32 {
        self.key.hash_one((key.0, key.1, count, c)) as u32
    }

    /// `cookie_v4_init_sequence`: the cookie for a SYN on `key` (ours, the
    /// peer's) whose
    /// sequence number is `sseq`, offering `mss`; and the MSS the cookie
    /// carries (the largest of [`MSSTAB`] not above it, 536 at the least).
    pub fn init_sequence(&self, key: &(SocketAddrV4, SocketAddrV4), sseq: u32, mss: u16, now: Instant) -> (u32, u16) {
        let index = MSSTAB.iter().rposition(|&m| mss >= m).unwrap_or(0);
        let count = self.count(now);
        let cookie = self
            .hash(key, 0, 0)
            .wrapping_add(sseq)
            .wrapping_add(count << COOKIEBITS)
            .wrapping_add(self.hash(key, count, 1).wrapping_add(index as u32) & COOKIEMASK);
        (cookie, MSSTAB[index])
    }

    /// `__cookie_v4_check`: the MSS a cookie carries, for an ACK on `key`
    /// whose sequence number less one is `sseq` and acknowledgment number
    /// less one is `cookie`; `None` for a cookie that is not ours or is
    /// older than [`MAX_SYNCOOKIE_AGE`] minutes.
    pub fn check(&self, key: &(SocketAddrV4, SocketAddrV4), sseq: u32, cookie: u32, now: Instant) -> Option<u16> {
        let count = self.count(now);
        let rest = cookie.wrapping_sub(self.hash(key, 0, 0).wrapping_add(sseq));
        let diff = count.wrapping_sub(rest >> COOKIEBITS) & (u32::MAX >> COOKIEBITS);
        if diff >= MAX_SYNCOOKIE_AGE {
            return None;
        }
        let index = rest.wrapping_sub(self.hash(key, count.wrapping_sub(diff), 1)) & COOKIEMASK;
        MSSTAB.get(index as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(port: u16) -> (SocketAddrV4, SocketAddrV4) {
        (SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80), SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port))
    }

    #[test]
    fn a_cookie_gives_back_its_mss_for_two_minutes_and_no_longer() {
        let t0 = Instant::now();
        let c = SynCookies::new(t0);
        for (offered, carried) in [(1460, 1460), (1500, 1460), (1440, 1440), (1400, 1300), (1000, 536), (100, 536)] {
            let (cookie, mss) = c.init_sequence(&key(40000), 0x1234_5678, offered, t0);
            assert_eq!(mss, carried, "offered {offered}");
            assert_eq!(c.check(&key(40000), 0x1234_5678, cookie, t0), Some(carried));
        }
        let (cookie, _) = c.init_sequence(&key(40000), 7, 1460, t0 + Duration::from_secs(59));
        assert_eq!(c.check(&key(40000), 7, cookie, t0 + Duration::from_secs(60)), Some(1460), "the next minute");
        assert_eq!(c.check(&key(40000), 7, cookie, t0 + Duration::from_secs(119)), Some(1460));
        assert_eq!(c.check(&key(40000), 7, cookie, t0 + Duration::from_secs(180)), None, "two minutes on");
    }

    #[test]
    fn a_cookie_is_bound_to_its_four_tuple_sequence_and_secret() {
        let t0 = Instant::now();
        let c = SynCookies::new(t0);
        let (cookie, _) = c.init_sequence(&key(40000), 1000, 1460, t0);
        assert_eq!(c.check(&key(40001), 1000, cookie, t0), None, "another port");
        // The peer's ISN is added in: one a little off moves the MSS index
        // (as in Linux), one further off gives none.
        assert_eq!(c.check(&key(40000), 1001, cookie, t0), Some(1440), "the ISN one off: index 3 - 1");
        assert_eq!(c.check(&key(40000), 1000 + (1 << 16), cookie, t0), None, "another ISN");
        assert_eq!(c.check(&key(40000), 1000, cookie.wrapping_add(1), t0), None, "another cookie");
        assert_eq!(SynCookies::new(t0).check(&key(40000), 1000, cookie, t0), None, "another secret");
        // Guessing: of 100 000 random cookies, about 4 × 2 / 2^24 pass.
        let passed =
            (0..100_000u32).filter(|&i| c.check(&key(40000), 1000, i.wrapping_mul(2_654_435_761), t0).is_some());
        assert!(passed.count() <= 2);
    }
}
