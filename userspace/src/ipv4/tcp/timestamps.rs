//! RFC 7323 timestamps as Linux keeps them: the TSval clock
//! (`tcp_time_stamp_ts`, milliseconds, plus the per-address-pair random
//! `tsoffset` of `secure_tcp_ts_off`), `ts_recent` and its update
//! (`tcp_store_ts_recent`, `tcp_replace_ts_recent`), PAWS
//! (`tcp_paws_check`, `tcp_paws_reject`, `tcp_paws_discard` with
//! `tcp_disordered_ack_check`, include/net/tcp.h and net/ipv4/tcp_input.c),
//! the RTT sample from TSecr (`tcp_rtt_tsopt_us`), and the SYN cookie's
//! options carried in the low bits of TSval (`cookie_init_timestamp`,
//! `cookie_timestamp_decode`, net/ipv4/syncookies.c).
//!
//! This module owns the timestamp state of a connection ([`TsState`]), of a
//! request sock ([`ReqTs`]) and the stack's clock ([`TsClock`]); input.rs,
//! output.rs and the TIME-WAIT code call it at the points Linux does.
//!
//! Where Linux and RFC 7323 differ, Linux is copied (docs/tcp.md,
//! "Timestamps and PAWS"): the idle limit after which PAWS lets any
//! timestamp through is `TCP_PAWS_WRAP` (2147 s) rather than the RFC's 24
//! days (§5.5); a pure ACK that only failed PAWS for being reordered is
//! accepted (`tcp_disordered_ack_check`); a RST is accepted whatever its
//! timestamp (RFC 7323 §5.3 R1 says the same; Linux also relaxes it for a
//! request sock after `TCP_PAWS_MSL`).

use std::time::{Duration, Instant};

use super::cb::TcpCb;
use super::table::{FourTuple, TimeWaitSock};
pub use super::ts_state::*;
use crate::wire::tcp::{flags, TcpRepr};

// ---------------------------------------------------------------- hooks
// The points of input.rs where Linux reads or writes the timestamps of a
// control block, a request sock or a TIME-WAIT sock.

/// The SYN or SYN-ACK a SYN-SENT socket got: timestamps are agreed when it
/// carries them and `tcp_timestamps` is on; `ts_recent` is its TSval
/// (`tcp_rcv_synsent_state_process`). Returns whether they were.
pub fn synsent_agree(cb: &mut TcpCb, clock: &TsClock, opt: Option<(u32, u32)>, now: Instant) -> bool {
    match opt {
        Some((tsval, _)) if clock.mode.enabled() => {
            cb.ts.ok = true;
            tcp_store_ts_recent(&mut cb.ts, tsval, now);
            true
        }
        _ => false,
    }
}

/// `tcp_sync_mss` with timestamps agreed: data segments carry 12 bytes of
/// option, so the MSS (`mss_cache`) is 12 less; an active opener's
/// `advmss` too (`tcp_rcv_synsent_state_process`; a passive opener's when it
/// becomes ESTABLISHED, [`synrecv_advmss`]).
pub fn shrink_mss(cb: &mut TcpCb, active: bool) {
    if !cb.ts.ok {
        return;
    }
    cb.mss = cb.mss.saturating_sub(TCPOLEN_TSTAMP_ALIGNED).max(TCP_MIN_SND_MSS);
    if active {
        cb.advmss = cb.advmss.saturating_sub(TCPOLEN_TSTAMP_ALIGNED).max(TCP_MIN_SND_MSS);
    }
}

/// `tcp_rcv_state_process` in SYN-RECV, as a passive (or simultaneous)
/// open becomes ESTABLISHED: with timestamps agreed `advmss` is 12 less,
/// as an active opener's is in [`shrink_mss`]; before `tcp_init_transfer`
/// since Linux 6.16 ("fix initial tp->rcvq_space.space value for passive TS
/// enabled flows"), so that receive-buffer autotuning starts from 10 × the
/// smaller MSS.
pub fn synrecv_advmss(cb: &mut TcpCb) {
    if cb.ts.ok {
        cb.advmss = cb.advmss.saturating_sub(TCPOLEN_TSTAMP_ALIGNED).max(TCP_MIN_SND_MSS);
    }
}

/// `TCP_MIN_SND_MSS`: no MSS is cut below this.
pub const TCP_MIN_SND_MSS: u32 = 48;

/// The SYN-ACK's TSecr check of `tcp_rcv_synsent_state_process`: an echo
/// (less our offset) that is not between our first SYN's clock and now is
/// a SYN-ACK for another connection (`PAWSActive`, answered with a reset).
pub fn synsent_tsecr_bad(cb: &TcpCb, clock: &TsClock, opt: Option<(u32, u32)>, now: Instant) -> bool {
    if !clock.mode.enabled() {
        return false;
    }
    let Some((_, raw)) = opt else { return false };
    if raw == 0 {
        return false;
    }
    let ecr = raw.wrapping_sub(cb.ts.offset);
    let first = cb.ts.syn_stamp.unwrap_or(ecr);
    ecr.wrapping_sub(first) > clock.ms(now).wrapping_sub(first)
}

/// PAWS for a segment of a synchronized connection (`tcp_validate_incoming`
/// step H1), as [`tcp_paws_discard`]; `Accept` without timestamps.
pub fn paws_discard(cb: &TcpCb, repr: &TcpRepr, now: Instant) -> Paws {
    let Some(rx) = saw_tstamp(&cb.ts, repr.options.timestamp) else { return Paws::Accept };
    let nwin = u32::from(repr.window) << cb.snd_wscale;
    // tcp_may_update_window.
    let may_update_window = super::after(repr.ack, cb.snd_una)
        || super::after(repr.seq, cb.snd_wl1)
        || (repr.seq == cb.snd_wl1 && (nwin > cb.snd_wnd || nwin == 0));
    let seg = DisorderedAck {
        pure_ack: repr.flags & flags::ACK != 0 && repr.seg_len() == 0,
        seq: repr.seq,
        ack: repr.ack,
        may_update_window,
    };
    tcp_paws_discard(&cb.ts, rx, seg, cb.rcv_nxt, cb.snd_una, cb.rto, now)
}

/// `tcp_replace_ts_recent` for an acceptable ACK of a connection.
pub fn ack_update_ts_recent(cb: &mut TcpCb, repr: &TcpRepr, now: Instant) {
    let rx = saw_tstamp(&cb.ts, repr.options.timestamp);
    let rcv_wup = cb.rcv_wup;
    tcp_replace_ts_recent(&mut cb.ts, rx, repr.seq, rcv_wup, now);
}

/// The RTT the ACK `repr`'s TSecr gives a connection (`tcp_rtt_tsopt_us`).
pub fn ack_rtt(cb: &TcpCb, clock: &TsClock, repr: &TcpRepr, now: Instant) -> Option<Duration> {
    tcp_rtt_tsopt(clock.ms(now), saw_tstamp(&cb.ts, repr.options.timestamp))
}

/// The request sock's timestamps for a SYN (`tcp_conn_request`:
/// `tstamp_ok` when the SYN has them and `tcp_timestamps` is on; `ts_off`).
pub fn req_init(clock: &TsClock, key: &FourTuple, opt: Option<(u32, u32)>) -> Option<ReqTs> {
    if !clock.mode.enabled() {
        return None;
    }
    let (tsval, _) = opt?;
    Some(ReqTs { recent: tsval, off: clock.offset(*key.local.ip(), *key.remote.ip()), ..ReqTs::default() })
}

/// What `tcp_check_req` finds of a segment's timestamps: PAWS against the
/// request's `ts_recent` (taken as stored one SYN-ACK timeout ago), and
/// whether TSecr echoes none of our SYN-ACKs.
pub struct ReqCheck {
    /// The segment's TSval, when it has timestamps (`saw_tstamp`).
    pub tsval: Option<u32>,
    /// `paws_reject`.
    pub paws_reject: bool,
    /// `tsecr_reject`.
    pub tsecr_reject: bool,
}

/// `tcp_check_req`'s timestamp checks for `req` (its `timeout()` so far).
pub fn req_check(clock: &TsClock, req: Option<&ReqTs>, timeout: Duration, repr: &TcpRepr, now: Instant) -> ReqCheck {
    let none = ReqCheck { tsval: None, paws_reject: false, tsecr_reject: false };
    if !clock.mode.enabled() {
        return none;
    }
    let Some((tsval, raw_tsecr)) = repr.options.timestamp else { return none };
    let recent = req.map_or(0, |r| r.recent);
    let stamp = now.checked_sub(timeout);
    ReqCheck {
        tsval: Some(tsval),
        paws_reject: tcp_paws_reject(recent, stamp, tsval, repr.flags & flags::RST != 0, now),
        tsecr_reject: req.is_some_and(|r| tsecr_reject(r, raw_tsecr)),
    }
}

/// The timestamps of an ACK we send without a control block (a request
/// sock's or TIME-WAIT sock's, `tcp_v4_send_ack`): only when there is a
/// TSval to echo.
pub fn bare_ack_option(clock: &TsClock, recent: u32, off: u32, now: Instant) -> Option<(u32, u32)> {
    (recent != 0).then(|| (clock.ms(now).wrapping_add(off), recent))
}

/// A child's timestamps from its request sock (`tcp_create_openreq_child`).
pub fn child_init(cb: &mut TcpCb, req: Option<&ReqTs>, now: Instant) {
    if let Some(r) = req {
        cb.ts = TsState { ok: true, offset: r.off, recent: r.recent, recent_stamp: Some(now), syn_stamp: None };
    }
}

/// What `tcp_timewait_state_process` finds of a segment's timestamps:
/// its TSval, and whether PAWS rejects it. TIME-WAIT socks of connections
/// without timestamps read none.
pub fn tw_check(clock: &TsClock, tw: &TimeWaitSock, repr: &TcpRepr, now: Instant) -> (Option<u32>, bool) {
    if tw.ts_recent_stamp.is_none() || !clock.mode.enabled() {
        return (None, false);
    }
    let Some((tsval, _)) = repr.options.timestamp else { return (None, false) };
    let reject = tcp_paws_reject(tw.ts_recent, tw.ts_recent_stamp, tsval, repr.flags & flags::RST != 0, now);
    (Some(tsval), reject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::tcp::before;
    use std::net::Ipv4Addr;

    fn ts(recent: u32, stamp: Instant) -> TsState {
        TsState { ok: true, offset: 0, recent, recent_stamp: Some(stamp), syn_stamp: None }
    }

    #[test]
    fn paws_rejects_older_tsval_until_the_wrap_limit() {
        let t0 = Instant::now();
        // Equal or newer passes; one tick older passes the replay window of
        // tcp_paws_discard but not tcp_paws_check with 0.
        assert!(tcp_paws_check(1000, Some(t0), 1000, 0, t0));
        assert!(tcp_paws_check(1000, Some(t0), 1001, 0, t0));
        assert!(!tcp_paws_check(1000, Some(t0), 999, 0, t0));
        assert!(tcp_paws_check(1000, Some(t0), 999, TCP_PAWS_WINDOW, t0));
        assert!(!tcp_paws_check(1000, Some(t0), 998, TCP_PAWS_WINDOW, t0));
        // Across the wrap of the 32-bit clock.
        assert!(tcp_paws_check(u32::MAX - 5, Some(t0), 3, 0, t0));
        assert!(!tcp_paws_check(3, Some(t0), u32::MAX - 5, 0, t0));
        // ts_recent idle for TCP_PAWS_WRAP: anything goes (Linux 6.7+: 2147 s).
        assert_eq!(TCP_PAWS_WRAP, Duration::from_secs(2147));
        assert!(!tcp_paws_check(1000, Some(t0), 10, 0, t0 + TCP_PAWS_WRAP - Duration::from_secs(1)));
        assert!(tcp_paws_check(1000, Some(t0), 10, 0, t0 + TCP_PAWS_WRAP));
        // A peer that sent 0 in its SYN is not held to it.
        assert!(tcp_paws_check(0, Some(t0), 0x8000_0001, 0, t0));
    }

    #[test]
    fn paws_reject_takes_an_old_rst_after_msl() {
        let t0 = Instant::now();
        assert!(tcp_paws_reject(1000, Some(t0), 10, false, t0));
        assert!(tcp_paws_reject(1000, Some(t0), 10, true, t0 + Duration::from_secs(59)));
        assert!(!tcp_paws_reject(1000, Some(t0), 10, true, t0 + TCP_PAWS_MSL));
        assert!(tcp_paws_reject(1000, Some(t0), 10, false, t0 + TCP_PAWS_MSL));
        assert!(!tcp_paws_reject(1000, Some(t0), 1000, false, t0));
    }

    #[test]
    fn disordered_acks_pass_paws_old_ones_are_told_apart() {
        let t0 = Instant::now();
        let s = ts(1000, t0);
        let rx = RcvTs { tsval: 900, tsecr: 0 };
        let rto = Duration::from_millis(200);
        let dup = DisorderedAck { pure_ack: true, seq: 500, ack: 700, may_update_window: false };
        // A duplicate ACK at rcv_nxt, 100 ticks behind, within 240 (rto * 1.2): reordered.
        assert_eq!(tcp_paws_discard(&s, rx, dup, 500, 700, rto, t0), Paws::Accept);
        // Further behind than the replay window: rejected.
        let far = RcvTs { tsval: 700, tsecr: 0 };
        assert_eq!(tcp_paws_discard(&s, far, dup, 500, 700, rto, t0), Paws::Reject);
        // Below rcv_nxt: an old ACK.
        assert_eq!(tcp_paws_discard(&s, rx, DisorderedAck { seq: 400, ..dup }, 500, 700, rto, t0), Paws::OldAck);
        // Data, a window update, or an ACK that moves snd_una: rejected.
        assert_eq!(tcp_paws_discard(&s, rx, DisorderedAck { pure_ack: false, ..dup }, 500, 700, rto, t0), Paws::Reject);
        let upd = DisorderedAck { may_update_window: true, ..dup };
        assert_eq!(tcp_paws_discard(&s, rx, upd, 500, 700, rto, t0), Paws::Reject);
        assert_eq!(tcp_paws_discard(&s, rx, DisorderedAck { ack: 800, ..dup }, 500, 700, rto, t0), Paws::Reject);
        // Within one tick: accepted whatever it is.
        let one = RcvTs { tsval: 999, tsecr: 0 };
        assert_eq!(
            tcp_paws_discard(&s, one, DisorderedAck { pure_ack: false, ..dup }, 500, 700, rto, t0),
            Paws::Accept
        );
    }

    #[test]
    fn ts_recent_moves_only_for_segments_at_the_window_edge() {
        let t0 = Instant::now();
        let mut s = ts(1000, t0);
        let t1 = t0 + Duration::from_secs(1);
        tcp_replace_ts_recent(&mut s, Some(RcvTs { tsval: 1100, tsecr: 0 }), 51, 50, t1);
        assert_eq!(s.recent, 1000, "beyond rcv_wup: not Last.ACK.sent");
        tcp_replace_ts_recent(&mut s, Some(RcvTs { tsval: 900, tsecr: 0 }), 50, 50, t1);
        assert_eq!(s.recent, 1000, "older");
        tcp_replace_ts_recent(&mut s, Some(RcvTs { tsval: 1100, tsecr: 0 }), 50, 50, t1);
        assert_eq!((s.recent, s.recent_stamp), (1100, Some(t1)));
    }

    #[test]
    fn rtt_from_tsecr() {
        let rx = |tsecr| Some(RcvTs { tsval: 0, tsecr });
        assert_eq!(tcp_rtt_tsopt(1050, rx(1000)), Some(Duration::from_millis(50)));
        assert_eq!(tcp_rtt_tsopt(1000, rx(1000)), Some(Duration::from_millis(1)), "at least a tick");
        assert_eq!(tcp_rtt_tsopt(5, rx(u32::MAX - 4)), Some(Duration::from_millis(10)), "across the wrap");
        assert_eq!(tcp_rtt_tsopt(1000, rx(0)), None, "no echo");
        assert_eq!(tcp_rtt_tsopt(1000, rx(2000)), None, "from the future");
        assert_eq!(tcp_rtt_tsopt(1000, None), None);
    }

    #[test]
    fn saw_tstamp_needs_agreement_and_takes_the_offset_out() {
        let mut s = TsState { offset: 100, ..TsState::default() };
        assert_eq!(saw_tstamp(&s, Some((5, 150))), None);
        s.ok = true;
        assert_eq!(saw_tstamp(&s, Some((5, 150))), Some(RcvTs { tsval: 5, tsecr: 50 }));
        assert_eq!(saw_tstamp(&s, Some((5, 0))), Some(RcvTs { tsval: 5, tsecr: 0 }));
        assert_eq!(saw_tstamp(&s, None), None);
    }

    #[test]
    fn cookie_timestamp_round_trip() {
        for now in [64u32, 1000, 0x1234_5678, u32::MAX, 3] {
            for ws in [None, Some(0), Some(7), Some(14)] {
                for sack in [false, true] {
                    let t = cookie_init_timestamp(ws, sack, now);
                    assert!(!before(now, t), "never later than the clock: {t} > {now}");
                    assert!(now.wrapping_sub(t) < 64, "less than 64 ticks early");
                    let d = cookie_timestamp_decode(TcpTimestamps::On, Some(t)).unwrap();
                    assert_eq!(d, CookieOptions { snd_wscale: ws, sack_ok: sack }, "now {now}");
                }
            }
        }
        assert_eq!(cookie_timestamp_decode(TcpTimestamps::Off, Some(7)), None);
        assert_eq!(
            cookie_timestamp_decode(TcpTimestamps::Off, None),
            Some(CookieOptions { snd_wscale: None, sack_ok: false })
        );
    }

    #[test]
    fn synack_tsvals_bound_the_final_acks_tsecr() {
        let t0 = Instant::now();
        let clock = TsClock::new(t0, TcpTimestamps::On);
        let mut r = ReqTs { recent: 77, off: 1000, ..ReqTs::default() };
        let (v1, e) = synack_option(&clock, &mut r, t0 + Duration::from_millis(5));
        assert_eq!((v1, e), (1005, 77));
        let (v2, _) = synack_option(&clock, &mut r, t0 + Duration::from_millis(1005));
        assert_eq!((r.snt_tsval_first, r.snt_tsval_last), (1005, 2005));
        assert_eq!(v2, 2005);
        assert!(!tsecr_reject(&r, 1005) && !tsecr_reject(&r, 1500) && !tsecr_reject(&r, 2005));
        assert!(tsecr_reject(&r, 1004) && tsecr_reject(&r, 2006));
        assert!(!tsecr_reject(&r, 0), "no echo is not checked");
        // A cookie's TSval is not recorded.
        let mut c = ReqTs { off: 10, cookie_ts: Some(64 | 7), ..ReqTs::default() };
        assert_eq!(synack_option(&clock, &mut c, t0).0, (64 | 7) + 10);
        assert_eq!(c.snt_tsval_first, 0);
    }

    #[test]
    fn offsets_are_per_address_pair_and_off_in_mode_2() {
        let t0 = Instant::now();
        let c = TsClock::new(t0, TcpTimestamps::On);
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(c.offset(a, b), c.offset(a, b));
        let others = (3..40).map(|i| c.offset(a, Ipv4Addr::new(10, 0, 0, i)));
        assert!(others.filter(|&o| o != c.offset(a, b)).count() >= 36, "random per pair");
        assert_eq!(TsClock::new(t0, TcpTimestamps::NoOffset).offset(a, b), 0);
        assert_eq!(c.ms(t0 + Duration::from_millis(1234)), 1234);
    }
}
