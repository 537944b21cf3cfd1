//! Round-trip time and congestion control: RFC 6298's estimator and timer
//! (`tcp_rtt_estimator`, `__tcp_set_rto` in net/ipv4/tcp_input.c), slow start
//! and congestion avoidance (RFC 5681, `tcp_slow_start`, `tcp_cong_avoid_ai`
//! in net/ipv4/tcp_cong.c) with the algorithm's growth and decrease
//! ([`CongestionControl`] in [`super::ca`]: CUBIC, Linux's default, or
//! Reno), NewReno fast
//! recovery (RFC 6582) and the loss state after a timeout (`tcp_enter_loss`).
//!
//! The congestion window is kept in segments, as Linux keeps `snd_cwnd`.

use std::time::{Duration, Instant};

pub use super::ca::{Congestion, CongestionControl, Reno};
use super::cb::{CaState, TcpCb};
use super::cubic::HystartExit;
use super::{TCP_RTO_MAX, TCP_RTO_MIN};
use crate::snmp::Mib;
pub use crate::stream::CongAlgo;

/// `tcp_rtt_estimator` + `__tcp_set_rto`: folds an RTT sample into SRTT and
/// RTTVAR (RFC 6298 §2.2-2.3, α = 1/8, β = 1/4) and sets the RTO to
/// SRTT + max(4·RTTVAR, 200 ms), as Linux floors the variance term at
/// `TCP_RTO_MIN`; at most `TCP_RTO_MAX`. `hz`: the kernel's `HZ`, for
/// the minimum RTT ([`super::rack::tcp_update_rtt_min`]).
pub fn rtt_sample(cb: &mut TcpCb, rtt: Duration, hz: u32) {
    let us = rtt_us(rtt);
    let m = us.max(1);
    // tcp_update_rtt_min, for a connection without SACK (with SACK, RACK
    // keeps it from the same deliveries, `super::rack`): `tcpi_min_rtt`.
    if !cb.sack_ok {
        super::rack::tcp_update_rtt_min(&mut cb.rack, us, hz);
    }
    if cb.srtt_us == 0 {
        cb.srtt_us = m;
        cb.rttvar_us = m / 2;
    } else {
        let err = cb.srtt_us.abs_diff(m);
        cb.rttvar_us = cb.rttvar_us - cb.rttvar_us / 4 + err / 4;
        cb.srtt_us = cb.srtt_us - cb.srtt_us / 8 + m / 8;
    }
    let var = Duration::from_micros(4 * u64::from(cb.rttvar_us)).max(TCP_RTO_MIN);
    cb.rto = (Duration::from_micros(u64::from(cb.srtt_us)) + var).min(TCP_RTO_MAX);
}

/// [`rtt_sample`] of a handshake (`tcp_synack_rtt_meas`, or the SYN's in
/// `tcp_rcv_synsent_state_process`), which also starts the minimum RTT
/// whether or not the connection has SACK: Linux's `tcp_ack_update_rtt`
/// calls `tcp_update_rtt_min` for every sample; with SACK, xsknet's later
/// ones come from RACK's deliveries, which a handshake has none of.
pub fn handshake_rtt_sample(cb: &mut TcpCb, rtt: Duration, hz: u32) {
    rtt_sample(cb, rtt, hz);
    // Without SACK, rtt_sample has taken it into the minimum already.
    if cb.sack_ok {
        super::rack::tcp_update_rtt_min(&mut cb.rack, rtt_us(rtt), hz);
    }
}

/// An RTT in µs, at most what SRTT's fixed point (× 8) holds in a `u32`.
fn rtt_us(rtt: Duration) -> u32 {
    rtt.as_micros().min(u128::from(u32::MAX / 8)) as u32
}

/// `tcp_init_metrics`: a handshake that gave no RTT sample (its SYN or
/// SYN-ACK was retransmitted) leaves the RTO at 3 s rather than 1 s
/// (RFC 6298 §5.7); the first sample then sets it as usual.
pub fn no_handshake_sample(cb: &mut TcpCb) {
    if cb.srtt_us == 0 {
        cb.rttvar_us = super::TCP_TIMEOUT_FALLBACK.as_micros() as u32;
        cb.rto = super::TCP_TIMEOUT_FALLBACK;
    }
}

/// The algorithm's threshold after a loss of the current window.
fn ca_ssthresh(cb: &mut TcpCb) -> u32 {
    let cwnd = cb.cwnd;
    cb.ca.ops().ssthresh(cwnd)
}

/// `.cong_avoid` (`tcp_reno_cong_avoid`, `cubictcp_cong_avoid`): `acked`
/// segments were acknowledged; grow the window if the sender was using it
/// (`tcp_is_cwnd_limited`): slow start up to ssthresh, then one segment
/// per `w` ACKed segments, `w` the algorithm's.
pub fn cong_avoid(cb: &mut TcpCb, acked: u32, cwnd_limited: bool, now: Instant) {
    if !cwnd_limited || acked == 0 {
        return;
    }
    let mut acked = acked;
    if cb.cwnd < cb.ssthresh {
        // Slow start (`tcp_slow_start`): one segment per segment ACKed, up to ssthresh.
        let cwnd = (cb.cwnd + acked).min(cb.ssthresh);
        acked -= cwnd - cb.cwnd;
        cb.cwnd = cwnd;
        if acked == 0 {
            return;
        }
    }
    let cwnd = cb.cwnd;
    let w = cb.ca.ops().cong_avoid_cnt(cwnd, acked, now).max(1);
    // tcp_cong_avoid_ai: credits from a higher w are applied gently first.
    if cb.cwnd_cnt >= w {
        cb.cwnd_cnt = 0;
        cb.cwnd += 1;
    }
    cb.cwnd_cnt += acked;
    if cb.cwnd_cnt >= w {
        let delta = cb.cwnd_cnt / w;
        cb.cwnd_cnt -= delta * w;
        cb.cwnd += delta;
    }
}

/// `tcp_ack_update_rtt` → `.pkts_acked`: the algorithm sees an RTT sample;
/// a slow start HyStart ends here takes ssthresh = cwnd
/// (`TcpExtTCPHystartTrainDetect`/`DelayDetect`, with the windows in
/// `…TrainCwnd`/`…DelayCwnd`).
pub fn pkts_acked(cb: &mut TcpCb, rtt: Duration, now: Instant, mib: &mut Mib) {
    let (cwnd, ss, una, nxt) = (cb.cwnd, cb.cwnd < cb.ssthresh, cb.snd_una, cb.snd_nxt);
    let (ack_delay, paced) = (cb.pacing.hystart_ack_delay(), cb.pacing.needed);
    cb.ca.ops().set_pacing(ack_delay, paced);
    match cb.ca.ops().pkts_acked(rtt, cwnd, ss, una, nxt, now) {
        HystartExit::None => {}
        HystartExit::Train(w) => {
            mib.TcpExtTCPHystartTrainDetect += 1;
            mib.TcpExtTCPHystartTrainCwnd += u64::from(w);
            cb.ssthresh = w;
        }
        HystartExit::Delay(w) => {
            mib.TcpExtTCPHystartDelayDetect += 1;
            mib.TcpExtTCPHystartDelayCwnd += u64::from(w);
            cb.ssthresh = w;
        }
    }
}

/// Third duplicate ACK: enter fast recovery (RFC 6582 §3.2 step 2).
pub fn enter_recovery(cb: &mut TcpCb) {
    cb.ssthresh = ca_ssthresh(cb);
    cb.cwnd = cb.ssthresh + super::TCP_FASTRETRANS_THRESH;
    cb.cwnd_cnt = 0;
    cb.high_seq = cb.snd_nxt;
    cb.ca_state = CaState::Recovery;
}

/// A duplicate ACK in recovery: each one says a segment left the network (step 3).
pub fn recovery_dupack(cb: &mut TcpCb) {
    cb.cwnd += 1;
}

/// A partial ACK in recovery (step 5): deflate by what it acknowledged, add one back.
pub fn recovery_partial_ack(cb: &mut TcpCb, acked: u32) {
    cb.cwnd = cb.cwnd.saturating_sub(acked).saturating_add(1).max(1);
}

/// The ACK that ends recovery or loss: back to Open with cwnd = ssthresh
/// (`tcp_end_cwnd_reduction`).
pub fn exit_recovery(cb: &mut TcpCb) {
    if cb.ca_state == CaState::Recovery {
        cb.cwnd = cb.ssthresh.max(1);
    }
    cb.ca_state = CaState::Open;
    cb.dupacks = 0;
}

/// `tcp_enter_loss`: a retransmission timeout. The first of an episode
/// takes the algorithm's ssthresh; the window drops to one segment and
/// everything in flight is sent again from `snd_una` (go-back-N, as Linux
/// marks it all lost); the algorithm starts over (`.set_state(Loss)`).
pub fn enter_loss(cb: &mut TcpCb, now: Instant) {
    if cb.ca_state != CaState::Loss || cb.retransmits == 0 {
        cb.ssthresh = ca_ssthresh(cb);
    }
    let snd_nxt = cb.snd_nxt;
    cb.ca.ops().on_loss(snd_nxt, now);
    cb.cwnd = 1;
    cb.cwnd_cnt = 0;
    cb.dupacks = 0;
    cb.high_seq = cb.snd_nxt;
    cb.ca_state = CaState::Loss;
    cb.rtt_probe = None;
}

/// `tcp_slow_start_after_idle_check` → `tcp_cwnd_restart` (RFC 2861,
/// net/ipv4/tcp_output.c): data to send with nothing in flight after
/// `idle` without sending, longer than the RTO: the window was not used, so
/// it is not trusted. `ssthresh` keeps the window's memory
/// (`tcp_current_ssthresh`: at least 3/4 of it, unless in recovery), and
/// `cwnd` halves for each RTO of the idle time past the first, down to the
/// restart window (the initial window, or less if `cwnd` was smaller).
/// Nothing when `enabled` (`net.ipv4.tcp_slow_start_after_idle`, 1 by
/// default) is off or the idle time is no longer than the RTO.
pub fn tcp_cwnd_restart(cb: &mut TcpCb, idle: Duration, enabled: bool) {
    let rto = cb.rto_backed_off();
    if !enabled || idle <= rto || rto.is_zero() {
        return;
    }
    if cb.ca_state == CaState::Open {
        cb.ssthresh = cb.ssthresh.max((cb.cwnd >> 1) + (cb.cwnd >> 2));
    }
    let restart = super::TCP_INIT_CWND.min(cb.cwnd);
    let mut cwnd = cb.cwnd;
    let mut left = idle;
    while left > rto && cwnd > restart {
        left -= rto;
        cwnd >>= 1;
    }
    cb.cwnd = cwnd.max(restart);
    cb.cwnd_cnt = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cb() -> TcpCb {
        TcpCb::for_tests(CongAlgo::Reno)
    }

    /// RFC 2861 as Linux: idle for 1 s with an RTO of 200 ms halves a window
    /// of 40 to 20 to 10 (the initial window, not below); ssthresh keeps 3/4
    /// of 40; idle no longer than the RTO, or the knob off, changes nothing.
    #[test]
    fn a_window_unused_for_longer_than_the_rto_restarts() {
        let mut c = cb();
        c.rto = Duration::from_millis(200);
        c.cwnd = 40;
        c.ssthresh = 8;
        tcp_cwnd_restart(&mut c, Duration::from_millis(200), true);
        assert_eq!((c.cwnd, c.ssthresh), (40, 8), "idle = RTO: nothing");
        tcp_cwnd_restart(&mut c, Duration::from_secs(1), false);
        assert_eq!(c.cwnd, 40, "tcp_slow_start_after_idle 0");
        tcp_cwnd_restart(&mut c, Duration::from_millis(500), true);
        assert_eq!((c.cwnd, c.ssthresh), (10, 30), "500 ms: 40 → 20 → 10, not below the initial window");
        c.cwnd = 64;
        tcp_cwnd_restart(&mut c, Duration::from_millis(300), true);
        assert_eq!(c.cwnd, 32, "one RTO past the first: halved once");
        c.cwnd = 4;
        tcp_cwnd_restart(&mut c, Duration::from_secs(10), true);
        assert_eq!(c.cwnd, 4, "a window below the initial one stays");
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut c = cb();
        rtt_sample(&mut c, Duration::from_millis(100), 1000);
        assert_eq!(c.srtt_us, 100_000);
        assert_eq!(c.rttvar_us, 50_000);
        // 100 ms + max(4 * 50 ms, 200 ms) = 300 ms.
        assert_eq!(c.rto, Duration::from_millis(300));
    }

    /// Without SACK the RTT samples keep `tcpi_min_rtt`: one of 0 (an ACK
    /// read in the poll that sent its data) counts one jiffy, as
    /// `tcp_update_rtt_min` counts it, so the minimum is never the clock's
    /// grain; a real one below it then sets it. With SACK, RACK keeps it.
    #[test]
    fn without_sack_a_zero_sample_is_one_jiffy_in_the_minimum_rtt() {
        let mut c = cb();
        c.sack_ok = false;
        rtt_sample(&mut c, Duration::ZERO, 250);
        assert_eq!(c.rack.min_rtt_us, 4000);
        rtt_sample(&mut c, Duration::from_micros(70), 250);
        assert_eq!(c.rack.min_rtt_us, 70);
        let mut s = cb();
        s.sack_ok = true;
        rtt_sample(&mut s, Duration::from_micros(70), 1000);
        assert_eq!(s.rack.min_rtt_us, u32::MAX, "with SACK, RACK's deliveries keep it");
    }

    #[test]
    fn lan_rtt_floors_the_rto_at_srtt_plus_200ms() {
        let mut c = cb();
        for _ in 0..20 {
            rtt_sample(&mut c, Duration::from_micros(50), 1000);
        }
        assert!(c.rto >= TCP_RTO_MIN && c.rto < TCP_RTO_MIN + Duration::from_millis(1), "{:?}", c.rto);
    }

    #[test]
    fn slow_start_then_one_segment_per_window() {
        let mut c = cb();
        c.ssthresh = 12;
        cong_avoid(&mut c, 4, true, Instant::now());
        assert_eq!(c.cwnd, 12, "slow start stops at ssthresh");
        assert_eq!(c.cwnd_cnt, 2, "the rest counts towards avoidance");
        cong_avoid(&mut c, 10, true, Instant::now());
        assert_eq!(c.cwnd, 13);
        cong_avoid(&mut c, 5, false, Instant::now());
        assert_eq!(c.cwnd, 13, "not cwnd-limited: no growth");
    }

    #[test]
    fn recovery_and_loss_follow_newreno() {
        let mut c = cb();
        c.cwnd = 20;
        enter_recovery(&mut c);
        assert_eq!((c.ssthresh, c.cwnd, c.ca_state), (10, 13, CaState::Recovery));
        recovery_dupack(&mut c);
        assert_eq!(c.cwnd, 14);
        recovery_partial_ack(&mut c, 3);
        assert_eq!(c.cwnd, 12);
        exit_recovery(&mut c);
        assert_eq!((c.cwnd, c.ca_state), (10, CaState::Open));
        enter_loss(&mut c, Instant::now());
        assert_eq!((c.ssthresh, c.cwnd, c.ca_state), (5, 1, CaState::Loss));
    }
}
