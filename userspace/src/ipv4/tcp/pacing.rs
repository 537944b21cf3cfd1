//! TCP pacing (net/ipv4/tcp_input.c `tcp_update_pacing_rate`, net/ipv4/tcp_output.c
//! `tcp_update_skb_after_send`, `tcp_pacing_check`, `tcp_pace_kick`): the stage that says
//! when the next segment of a connection may leave.
//!
//! Every connection has a pacing rate, `sk_pacing_rate`, bytes per second: the current rate
//! `mss · max(cwnd, packets_out) / srtt` times `tcp_pacing_ss_ratio` (200 %) in slow start
//! while `cwnd < ssthresh / 2`, else times `tcp_pacing_ca_ratio` (120 %), capped at
//! `SO_MAX_PACING_RATE`. It is computed on every ACK, whether or not anything paces: CUBIC's
//! HyStart reads it (`hystart_ack_delay`), and `tcp_info` shows it (`ss -ti`'s
//! `pacing_rate`).
//!
//! Linux paces in TCP itself (`tcp_needs_internal_pacing`) only when the socket's
//! `sk_pacing_status` is `SK_PACING_NEEDED`: BBR sets it, and so does a `SO_MAX_PACING_RATE`
//! other than `~0` (net/core/sock.c). Otherwise the fq qdisc paces (`SK_PACING_FQ`), or
//! nothing does: with CUBIC over the default qdisc (pfifo_fast, or noqueue on a veth) Linux
//! sends a window as fast as ACKs open it. xsknet has no qdisc and copies that default: a
//! connection paces internally once the application sets `SO_MAX_PACING_RATE`
//! ([`crate::SockOpt::MaxPacingRate`]).
//!
//! Pacing internally is earliest-departure-time: `tcp_wstamp` is when the next segment may
//! go. Sending a segment of `len` bytes moves it on by `len / rate`, less up to half of that
//! for time the loop was late (`credit`, "take into account OS jitter"); the first ten data
//! segments of a connection are not paced (as the original sch_fq). Before each segment,
//! [`tcp_pacing_check`] stops the send loop while `tcp_wstamp` is in the future and arms the
//! pacing timer for it (Linux's pacing hrtimer); when the timer fires the loop sends again
//! (`tcp_pace_kick` → `tcp_tsq_write`). Times are the `now` the caller passes in, so tests
//! run on virtual time. No allocation, no lock: a few integers per connection.

use std::time::{Duration, Instant};

use super::cb::TcpCb;
pub use super::pacing_state::{Pacing, GSO_LEGACY_MAX_SIZE, MAX_TCP_HEADER, PACING_RATE_UNLIMITED, SK_GSO_MAX_SIZE};

/// `sysctl_tcp_pacing_ss_ratio`: the pacing rate in slow start, percent of the current rate.
pub const TCP_PACING_SS_RATIO: u64 = 200;
/// `sysctl_tcp_pacing_ca_ratio`: the pacing rate past slow start, percent of the current rate.
pub const TCP_PACING_CA_RATIO: u64 = 120;
/// Data segments a connection sends before pacing applies (`tcp_update_skb_after_send`:
/// "Original sch_fq does not pace first 10 MSS").
pub const TCP_PACING_FREE_SEGS: u64 = 10;
/// `tcp_update_pacing_rate`: `sk_pacing_rate` from the window, the MSS and the smoothed
/// RTT, bytes per second: `mss · max(cwnd, packets_out) / srtt`, times
/// [`TCP_PACING_SS_RATIO`] % while `cwnd < ssthresh / 2`, else [`TCP_PACING_CA_RATIO`] %,
/// at most `SO_MAX_PACING_RATE`. Without an RTT sample the division is skipped, as Linux
/// does (`if (likely(tp->srtt_us))`), which leaves a very high rate.
pub fn tcp_update_pacing_rate(cb: &mut TcpCb) {
    let mss = u64::from(cb.mss.max(1));
    let ratio = if cb.cwnd < cb.ssthresh / 2 { TCP_PACING_SS_RATIO } else { TCP_PACING_CA_RATIO };
    let packets_out = u64::from(cb.in_flight().div_ceil(cb.mss.max(1)));
    let segs = u64::from(cb.cwnd).max(packets_out);
    // Linux: mss · (USEC_PER_SEC / 100 << 3) · ratio · segs / (srtt_us << 3).
    let mut rate = mss.saturating_mul(1_000_000 / 100).saturating_mul(ratio).saturating_mul(segs);
    if cb.srtt_us > 0 {
        rate /= u64::from(cb.srtt_us);
    }
    cb.pacing.rate = rate.min(cb.pacing.max_rate);
}

/// `tcp_pacing_check`: whether the send loop must stop because the next segment's time
/// (`tcp_wstamp`) has not come; if so, the pacing timer is armed for it. Never when the
/// connection does not pace ([`Pacing::needed`]).
pub fn tcp_pacing_check(cb: &mut TcpCb, now: Instant) -> bool {
    if !cb.pacing.needed {
        return false;
    }
    match cb.pacing.wstamp {
        Some(w) if w > now => {
            // `!hrtimer_is_queued`: none armed, or one whose time has passed (it fired, or
            // is about to, for an earlier departure).
            if cb.pacing.timer_at.is_none_or(|t| t <= now) {
                cb.pacing.timer_at = Some(w);
            }
            true
        }
        _ => false,
    }
}

/// The part of `__tcp_transmit_skb` before the send: `tcp_wstamp` catches up with `now`
/// (a segment never leaves before the time it is sent). Returns the prior `tcp_wstamp`,
/// for [`tcp_update_skb_after_send`].
pub fn tcp_wstamp_refresh(cb: &mut TcpCb, now: Instant) -> Option<Instant> {
    let prior = cb.pacing.wstamp;
    cb.pacing.wstamp = Some(prior.map_or(now, |w| w.max(now)));
    prior
}

/// `tcp_update_skb_after_send` for a data segment of `len` payload bytes that just went:
/// with pacing on and a finite rate, and after the first [`TCP_PACING_FREE_SEGS`] data
/// segments, `tcp_wstamp` moves on by the segment's time at the pacing rate, less the
/// time the loop was late (`credit`: how far `tcp_wstamp` had to catch up with now), at
/// most half the segment's time.
pub fn tcp_update_skb_after_send(cb: &mut TcpCb, len: usize, prior_wstamp: Option<Instant>) {
    let p = &mut cb.pacing;
    let segs_before = p.data_segs_out;
    p.data_segs_out += 1;
    if !p.needed || p.rate == 0 || p.rate == PACING_RATE_UNLIMITED || segs_before < TCP_PACING_FREE_SEGS {
        return;
    }
    let Some(w) = p.wstamp else { return };
    let len_ns = (len as u64).saturating_mul(1_000_000_000) / p.rate;
    let credit = prior_wstamp.map_or(0, |prior| w.saturating_duration_since(prior).as_nanos() as u64);
    let len_ns = len_ns - credit.min(len_ns / 2);
    p.wstamp = Some(w + Duration::from_nanos(len_ns));
}

/// Whether the pacing timer is due at `now`; clears it if so (the caller then sends
/// again: `tcp_pace_kick`).
pub fn pacing_timer_due(cb: &mut TcpCb, now: Instant) -> bool {
    if cb.pacing.timer_at.is_some_and(|t| t <= now) {
        cb.pacing.timer_at = None;
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock::{Sock, SockType};
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Arc;

    const MSS: u32 = 1448;

    fn cb() -> TcpCb {
        let sock = Arc::new(Sock::new(SockType::Stream, 0, 0, 2048));
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        let mut c = TcpCb::new(sock, a, a, MSS);
        c.mss = MSS;
        c.srtt_us = 2000;
        c
    }

    /// `tcp_update_pacing_rate`: 200 % of mss·cwnd/srtt while cwnd < ssthresh/2, 120 %
    /// from there on; `max(cwnd, packets_out)`; the cap; no RTT sample: no division.
    #[test]
    fn the_rate_is_twice_the_window_per_rtt_in_slow_start_and_1_2_times_after() {
        let mut c = cb();
        c.cwnd = 20;
        c.ssthresh = u32::MAX;
        tcp_update_pacing_rate(&mut c);
        // 1448 · 20 / 2 ms = 14.48 MB/s; twice that.
        assert_eq!(c.pacing.rate, 28_960_000, "slow start");
        c.ssthresh = 42;
        tcp_update_pacing_rate(&mut c);
        assert_eq!(c.pacing.rate, 28_960_000, "20 < 42 / 2: still 200 %");
        c.ssthresh = 41;
        tcp_update_pacing_rate(&mut c);
        assert_eq!(c.pacing.rate, 17_376_000, "20 = 41 / 2 (integer): 120 %");
        c.ssthresh = 14;
        tcp_update_pacing_rate(&mut c);
        assert_eq!(c.pacing.rate, 17_376_000, "congestion avoidance");
        // More in flight than cwnd (after a reduction): packets_out counts.
        c.snd_una = 1000;
        c.snd_nxt = 1000 + 30 * MSS;
        tcp_update_pacing_rate(&mut c);
        assert_eq!(c.pacing.rate, 26_064_000, "30 packets out");
        c.pacing.set_max_rate(10_000_000);
        tcp_update_pacing_rate(&mut c);
        assert_eq!(c.pacing.rate, 10_000_000, "SO_MAX_PACING_RATE caps it");
        let mut c = cb();
        c.srtt_us = 0;
        c.cwnd = 10;
        tcp_update_pacing_rate(&mut c);
        assert_eq!(c.pacing.rate, 1448 * 10_000 * 200 * 10, "no sample: not divided");
    }

    /// `SO_MAX_PACING_RATE`: a finite value turns pacing on for good and lowers the rate at
    /// once; `~0` alone does not turn it on.
    #[test]
    fn so_max_pacing_rate_turns_internal_pacing_on() {
        let mut p = Pacing::default();
        assert!(!p.needed, "Linux's default with CUBIC and no fq: no internal pacing");
        p.set_max_rate(PACING_RATE_UNLIMITED);
        assert!(!p.needed, "~0: unchanged");
        p.rate = 5_000_000;
        p.set_max_rate(1_000_000);
        assert!(p.needed);
        assert_eq!(p.rate, 1_000_000);
        p.set_max_rate(PACING_RATE_UNLIMITED);
        assert!(p.needed, "SK_PACING_NEEDED stays");
        assert_eq!(p.max_rate, PACING_RATE_UNLIMITED);
    }

    /// Sends `n` segments of `MSS` at `now`, as the send loop does: stops when pacing says
    /// so; returns how many went.
    fn send_burst(c: &mut TcpCb, n: usize, now: Instant) -> usize {
        for i in 0..n {
            if tcp_pacing_check(c, now) {
                return i;
            }
            let prior = tcp_wstamp_refresh(c, now);
            tcp_update_skb_after_send(c, MSS as usize, prior);
        }
        n
    }

    /// EDT pacing: the first ten data segments go at once; then one segment per
    /// `len / rate`, the timer armed for the next departure; a loop late by less than half
    /// a segment's time gets the time back (`credit`), later than that only half.
    #[test]
    fn segments_leave_one_segment_time_apart_after_the_first_ten() {
        let t0 = Instant::now();
        let mut c = cb();
        c.pacing.set_max_rate(PACING_RATE_UNLIMITED - 1);
        c.pacing.needed = true;
        // 1448 bytes per ms.
        c.pacing.rate = 1_448_000;
        assert_eq!(send_burst(&mut c, 30, t0), 11, "ten free, the eleventh starts the clock");
        let ms = Duration::from_millis(1);
        assert_eq!(c.pacing.wstamp, Some(t0 + ms));
        assert_eq!(c.pacing.timer_at, Some(t0 + ms), "the pacing timer armed for the next");
        assert!(!pacing_timer_due(&mut c, t0 + ms / 2));
        assert!(pacing_timer_due(&mut c, t0 + ms));
        assert_eq!(c.pacing.timer_at, None);
        assert_eq!(send_burst(&mut c, 30, t0 + ms), 1, "one per ms");
        assert_eq!(c.pacing.wstamp, Some(t0 + 2 * ms));
        // Late by 0.3 ms: the next leaves 0.7 ms after this one.
        let late = t0 + 2 * ms + Duration::from_micros(300);
        assert_eq!(send_burst(&mut c, 30, late), 1);
        assert_eq!(c.pacing.wstamp, Some(late + Duration::from_micros(700)));
        // Late by 5 ms: at most half a segment's time is given back.
        let late = t0 + 8 * ms;
        assert_eq!(send_burst(&mut c, 30, late), 1);
        assert_eq!(c.pacing.wstamp, Some(late + ms / 2));
    }

    /// A rate of 0 (`SO_MAX_PACING_RATE` 0) or one too high to matter spaces nothing,
    /// as `tcp_update_skb_after_send` skips `rate == 0` and `~0`; without
    /// `SK_PACING_NEEDED` nothing is held back whatever the rate.
    #[test]
    fn a_zero_or_huge_rate_or_no_pacing_holds_nothing_back() {
        let t0 = Instant::now();
        for (rate, needed) in [(0, true), (PACING_RATE_UNLIMITED, true), (u64::MAX / 2, true), (1_448_000, false)] {
            let mut c = cb();
            c.pacing.needed = needed;
            c.pacing.rate = rate;
            assert_eq!(send_burst(&mut c, 100, t0), 100, "rate {rate} needed {needed}");
            assert_eq!(c.pacing.timer_at, None);
        }
    }

    /// `hystart_ack_delay`: `min(1 ms, 4 · sk_gso_max_size / rate)`, 0 without a rate;
    /// `sk_gso_max_size` 65536 - 193 = 65343 (`sk_dst_gso_max_size` on a veth).
    #[test]
    fn hystart_ack_delay_follows_the_rate() {
        assert_eq!(SK_GSO_MAX_SIZE, 65_343);
        let mut p = Pacing::default();
        assert_eq!(p.hystart_ack_delay(), Duration::ZERO, "~0");
        p.rate = 0;
        assert_eq!(p.hystart_ack_delay(), Duration::ZERO);
        p.rate = 1_000_000;
        assert_eq!(p.hystart_ack_delay(), Duration::from_millis(1), "261 ms capped at 1 ms");
        // 4 · 65343 µs·B/s over 1 GiB/s: 243.4 µs (with 64 KiB it would be 244.1, 244 µs).
        p.rate = 1_073_741_824;
        assert_eq!(p.hystart_ack_delay(), Duration::from_micros(243));
        // 5.8 GB/s, slow start's pacing rate at a window of 60 and an RTT of 30 µs: 45 µs.
        p.rate = 5_792_000_000;
        assert_eq!(p.hystart_ack_delay(), Duration::from_micros(45));
    }
}
