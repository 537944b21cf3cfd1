//! Round-trip time and congestion control: RFC 6298's estimator and timer
//! (`tcp_rtt_estimator`, `__tcp_set_rto` in net/ipv4/tcp_input.c), slow start
//! and congestion avoidance (RFC 5681, `tcp_reno_cong_avoid` in
//! net/ipv4/tcp_cong.c), NewReno fast recovery (RFC 6582) and the loss state
//! after a timeout (`tcp_enter_loss`).
//!
//! The congestion window is kept in segments, as Linux keeps `snd_cwnd`.
//! CUBIC and a pluggable algorithm come with the next issue; the calls below
//! are where it plugs in.

use std::time::Duration;

use super::cb::{CaState, TcpCb};
use super::{TCP_RTO_MAX, TCP_RTO_MIN};

/// `tcp_rtt_estimator` + `__tcp_set_rto`: folds an RTT sample into SRTT and
/// RTTVAR (RFC 6298 §2.2-2.3, α = 1/8, β = 1/4) and sets the RTO to
/// SRTT + max(4·RTTVAR, 200 ms), as Linux floors the variance term at
/// `TCP_RTO_MIN`; at most `TCP_RTO_MAX`.
pub fn rtt_sample(cb: &mut TcpCb, rtt: Duration) {
    let m = (rtt.as_micros() as u64).clamp(1, u64::from(u32::MAX / 8)) as u32;
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

/// `tcp_init_metrics`: a handshake that gave no RTT sample (its SYN or
/// SYN-ACK was retransmitted) leaves the RTO at 3 s rather than 1 s
/// (RFC 6298 §5.7); the first sample then sets it as usual.
pub fn no_handshake_sample(cb: &mut TcpCb) {
    if cb.srtt_us == 0 {
        cb.rttvar_us = super::TCP_TIMEOUT_FALLBACK.as_micros() as u32;
        cb.rto = super::TCP_TIMEOUT_FALLBACK;
    }
}

/// `tcp_reno_ssthresh`: half the congestion window, at least 2.
fn reno_ssthresh(cb: &TcpCb) -> u32 {
    (cb.cwnd >> 1).max(2)
}

/// `tcp_reno_cong_avoid`: `acked` segments were acknowledged in the Open
/// state; grow the window if the sender was using it (`tcp_is_cwnd_limited`).
pub fn cong_avoid(cb: &mut TcpCb, acked: u32, cwnd_limited: bool) {
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
    // Congestion avoidance (`tcp_cong_avoid_ai`): one segment per window.
    cb.cwnd_cnt += acked;
    if cb.cwnd_cnt >= cb.cwnd {
        let delta = cb.cwnd_cnt / cb.cwnd;
        cb.cwnd_cnt -= delta * cb.cwnd;
        cb.cwnd += delta;
    }
}

/// Third duplicate ACK: enter fast recovery (RFC 6582 §3.2 step 2).
pub fn enter_recovery(cb: &mut TcpCb) {
    cb.ssthresh = reno_ssthresh(cb);
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
/// halves ssthresh; the window drops to one segment and everything in flight
/// is sent again from `snd_una` (go-back-N, as Linux marks it all lost).
pub fn enter_loss(cb: &mut TcpCb) {
    if cb.ca_state != CaState::Loss || cb.retransmits == 0 {
        cb.ssthresh = reno_ssthresh(cb);
    }
    cb.cwnd = 1;
    cb.cwnd_cnt = 0;
    cb.dupacks = 0;
    cb.high_seq = cb.snd_nxt;
    cb.ca_state = CaState::Loss;
    cb.rtt_probe = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock::{Sock, SockType};
    use std::net::{Ipv4Addr, SocketAddrV4};
    use std::sync::Arc;

    fn cb() -> TcpCb {
        let sock = Arc::new(Sock::new(SockType::Stream, 0, 0, 2048));
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1);
        TcpCb::new(sock, a, a, 1460)
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut c = cb();
        rtt_sample(&mut c, Duration::from_millis(100));
        assert_eq!(c.srtt_us, 100_000);
        assert_eq!(c.rttvar_us, 50_000);
        // 100 ms + max(4 * 50 ms, 200 ms) = 300 ms.
        assert_eq!(c.rto, Duration::from_millis(300));
    }

    #[test]
    fn lan_rtt_floors_the_rto_at_srtt_plus_200ms() {
        let mut c = cb();
        for _ in 0..20 {
            rtt_sample(&mut c, Duration::from_micros(50));
        }
        assert!(c.rto >= TCP_RTO_MIN && c.rto < TCP_RTO_MIN + Duration::from_millis(1), "{:?}", c.rto);
    }

    #[test]
    fn slow_start_then_one_segment_per_window() {
        let mut c = cb();
        c.ssthresh = 12;
        cong_avoid(&mut c, 4, true);
        assert_eq!(c.cwnd, 12, "slow start stops at ssthresh");
        assert_eq!(c.cwnd_cnt, 2, "the rest counts towards avoidance");
        cong_avoid(&mut c, 10, true);
        assert_eq!(c.cwnd, 13);
        cong_avoid(&mut c, 5, false);
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
        enter_loss(&mut c);
        assert_eq!((c.ssthresh, c.cwnd, c.ca_state), (5, 1, CaState::Loss));
    }
}
