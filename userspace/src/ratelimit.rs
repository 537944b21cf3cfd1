//! Linux's two limits on ICMP errors (net/ipv4/icmp.c, net/ipv4/inetpeer.c):
//! a global token bucket (`net.ipv4.icmp_msgs_per_sec` = 1000,
//! `icmp_msgs_burst` = 50, `icmp_global_allow`) and one per destination host
//! (`net.ipv4.icmp_ratelimit` = 1000 ms per token, bursts of 6:
//! `inet_peer_xrlim_allow`), both applied to the types in `icmp_ratemask`
//! (destination unreachable among them; echo replies are never limited).
//! Linux takes 0–2 global credits per message at random; we take 1, the
//! mean, so that tests are repeatable. Time is passed in.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// `XRLIM_BURST_FACTOR`.
const XRLIM_BURST_FACTOR: u64 = 6;
const MAX_PEERS: usize = 4096;

/// Which limit refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimited {
    /// The global bucket (`IcmpOutRateLimitGlobal`).
    Global,
    /// The destination host's bucket (`IcmpOutRateLimitHost`).
    Host,
}

/// Both limits' state.
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
    /// Limits of `msgs_per_sec` with bursts of `msgs_burst` globally, and one
    /// message per `ratelimit_ms` milliseconds per host (0: no per-host limit).
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
    ///
    /// # Errors
    ///
    /// [`RateLimited`] names the limit that refused; nothing is consumed then.
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
