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

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::before;
use super::cb::TcpCb;
use super::table::{FourTuple, TimeWaitSock};
use crate::wire::tcp::{flags, TcpRepr};

/// `TCPOLEN_TSTAMP_ALIGNED`: bytes the option takes with its two NOPs, what
/// the MSS of a connection with timestamps shrinks by.
pub const TCPOLEN_TSTAMP_ALIGNED: u32 = 12;
/// `TCP_PAWS_WINDOW`: a TSval this far behind `ts_recent` still passes
/// `tcp_paws_discard` (replay window, ticks).
pub const TCP_PAWS_WINDOW: u32 = 1;
/// `TCP_PAWS_WRAP` (`INT_MAX / USEC_PER_SEC` seconds): after this long
/// without a new `ts_recent`, PAWS lets any timestamp through. Linux 6.7
/// and later; RFC 7323 §5.5 and older kernels say 24 days.
pub const TCP_PAWS_WRAP: Duration = Duration::from_secs(i32::MAX as u64 / 1_000_000);
/// `TCP_PAWS_MSL`: a RST that fails PAWS on a request sock or TIME-WAIT
/// sock is still taken once `ts_recent` is this old.
pub const TCP_PAWS_MSL: Duration = Duration::from_secs(60);
/// `TSBITS`: the low bits of a cookie's TSval that carry options.
pub const TSBITS: u32 = 6;
/// `TS_OPT_WSCALE_MASK`: the window scale in a cookie's TSval; all ones: none.
pub const TS_OPT_WSCALE_MASK: u32 = 0xf;
/// `TS_OPT_SACK`.
pub const TS_OPT_SACK: u32 = 1 << 4;
/// `TS_OPT_ECN` (xsknet negotiates no ECN: never set).
pub const TS_OPT_ECN: u32 = 1 << 5;

/// `net.ipv4.tcp_timestamps`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcpTimestamps {
    /// 0: never offered, and ignored in a peer's SYN.
    Off,
    /// 1, Linux's default: offered and accepted, with a random offset per
    /// address pair (`secure_tcp_ts_off`).
    #[default]
    On,
    /// 2: offered and accepted, no random offset.
    NoOffset,
}

impl TcpTimestamps {
    /// Whether timestamps are offered and accepted at all.
    pub fn enabled(self) -> bool {
        self != TcpTimestamps::Off
    }
}

/// The stack's timestamp clock and the key of its offsets.
#[derive(Debug)]
pub struct TsClock {
    epoch: Instant,
    key: RandomState,
    /// `net.ipv4.tcp_timestamps`.
    pub mode: TcpTimestamps,
}

impl TsClock {
    /// A clock that reads 0 at `epoch`, with a new random key.
    pub fn new(epoch: Instant, mode: TcpTimestamps) -> TsClock {
        TsClock { epoch, key: RandomState::new(), mode }
    }

    /// `tcp_time_stamp_ts` without the offset: milliseconds since the
    /// epoch, modulo 2^32 (Linux counts from boot, `tcp_clock_ms`).
    #[inline]
    pub fn ms(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_millis() as u32
    }

    /// `secure_tcp_ts_off` for a connection between `local` and `remote`:
    /// a keyed hash of the two addresses (not the ports: every connection
    /// between two hosts shares it, as in Linux), 0 with
    /// [`TcpTimestamps::NoOffset`].
    pub fn offset(&self, local: Ipv4Addr, remote: Ipv4Addr) -> u32 {
        match self.mode {
            TcpTimestamps::On => self.key.hash_one((local, remote)) as u32,
            _ => 0,
        }
    }
}

/// A connection's timestamp state (the timestamp part of
/// `tcp_options_received`, and `tsoffset`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsState {
    /// Both sides agreed to timestamps (`tstamp_ok`): every segment carries them.
    pub ok: bool,
    /// Added to our clock in every TSval we send (`tsoffset`).
    pub offset: u32,
    /// The TSval to echo (`ts_recent`).
    pub recent: u32,
    /// When `recent` was last stored (`ts_recent_stamp`).
    pub recent_stamp: Option<Instant>,
    /// Our clock (no offset) when the first SYN of an active open left
    /// (`retrans_stamp` in SYN-SENT): the SYN-ACK's TSecr must lie between
    /// it and now.
    pub syn_stamp: Option<u32>,
}

/// A request sock's timestamps (`req->ts_recent`, `ts_off`,
/// `snt_tsval_first`, `snt_tsval_last`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReqTs {
    /// The TSval to echo.
    pub recent: u32,
    /// Our offset.
    pub off: u32,
    /// The TSval of the first SYN-ACK (0: none sent yet).
    pub snt_tsval_first: u32,
    /// The TSval of the latest SYN-ACK.
    pub snt_tsval_last: u32,
    /// For a SYN cookie: the TSval (before the offset) that carries the
    /// SYN's options ([`cookie_init_timestamp`]).
    pub cookie_ts: Option<u32>,
}

/// The timestamp fields of a received segment, after `tcp_parse_options`
/// and the offset taken out of TSecr (`tcp_fast_parse_options`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RcvTs {
    /// `rcv_tsval`.
    pub tsval: u32,
    /// `rcv_tsecr` less our offset (0 stays 0).
    pub tsecr: u32,
}

/// The segment's timestamps if the connection takes them (`saw_tstamp`:
/// a connection reads the option only when timestamps were agreed).
#[inline]
pub fn saw_tstamp(ts: &TsState, opt: Option<(u32, u32)>) -> Option<RcvTs> {
    if !ts.ok {
        return None;
    }
    opt.map(|(tsval, tsecr)| RcvTs { tsval, tsecr: if tsecr == 0 { 0 } else { tsecr.wrapping_sub(ts.offset) } })
}

/// `tcp_paws_check`: `tsval` is acceptable against `recent` (stored at
/// `stamp`) within `paws_win` ticks: not older, or `recent` too old to
/// judge by (`TCP_PAWS_WRAP`), or 0 (some stacks send 0 in their SYN).
pub fn tcp_paws_check(recent: u32, stamp: Option<Instant>, tsval: u32, paws_win: u32, now: Instant) -> bool {
    if recent.wrapping_sub(tsval) as i32 <= paws_win as i32 {
        return true;
    }
    if stamp.is_none_or(|s| now.saturating_duration_since(s) >= TCP_PAWS_WRAP) {
        return true;
    }
    recent == 0
}

/// `tcp_paws_reject`: PAWS for a request sock or TIME-WAIT sock: a RST is
/// still taken once `recent` is older than `TCP_PAWS_MSL`.
pub fn tcp_paws_reject(recent: u32, stamp: Option<Instant>, tsval: u32, rst: bool, now: Instant) -> bool {
    if tcp_paws_check(recent, stamp, tsval, 0, now) {
        return false;
    }
    !(rst && stamp.is_none_or(|s| now.saturating_duration_since(s) >= TCP_PAWS_MSL))
}

/// What `tcp_paws_discard` decided about a segment of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paws {
    /// It passes.
    Accept,
    /// Older than `ts_recent`: dropped, counted in `PAWSEstab`, answered
    /// with a duplicate ACK (`SKB_DROP_REASON_TCP_RFC7323_PAWS`).
    Reject,
    /// A pure ACK below `rcv_nxt` with an old timestamp: dropped, counted
    /// in `PAWSOldAck`, not answered (`SKB_DROP_REASON_TCP_RFC7323_PAWS_ACK`).
    OldAck,
}

/// The header fields `tcp_disordered_ack_check` looks at.
#[derive(Clone, Copy, Debug)]
pub struct DisorderedAck {
    /// The segment has the ACK flag, no data, no SYN or FIN (`seq == end_seq`).
    pub pure_ack: bool,
    /// SEG.SEQ.
    pub seq: u32,
    /// SEG.ACK.
    pub ack: u32,
    /// The ACK would update the send window (`tcp_may_update_window`).
    pub may_update_window: bool,
}

/// `tcp_paws_discard` with `tcp_disordered_ack_check` (Linux 6.15 and
/// later): `rx` fails PAWS with the replay window of one tick, unless it is
/// a pure duplicate ACK at `rcv_nxt` that moves no window and is at most
/// `tcp_tsval_replay` (the RTO in 1/1200 s) behind: such ACKs are reordered
/// rather than old.
pub fn tcp_paws_discard(
    ts: &TsState,
    rx: RcvTs,
    seg: DisorderedAck,
    rcv_nxt: u32,
    snd_una: u32,
    rto: Duration,
    now: Instant,
) -> Paws {
    if tcp_paws_check(ts.recent, ts.recent_stamp, rx.tsval, TCP_PAWS_WINDOW, now) {
        return Paws::Accept;
    }
    if !seg.pure_ack {
        return Paws::Reject;
    }
    if seg.seq != rcv_nxt {
        return if before(seg.seq, rcv_nxt) { Paws::OldAck } else { Paws::Reject };
    }
    if seg.ack != snd_una || seg.may_update_window {
        return Paws::Reject;
    }
    // tcp_tsval_replay: icsk_rto * 1200 / HZ.
    let replay = (rto.as_millis() as u64 * 1200 / 1000) as i64;
    if i64::from(ts.recent.wrapping_sub(rx.tsval) as i32) > replay {
        return Paws::Reject;
    }
    Paws::Accept
}

/// `tcp_store_ts_recent`.
#[inline]
pub fn tcp_store_ts_recent(ts: &mut TsState, tsval: u32, now: Instant) {
    ts.recent = tsval;
    ts.recent_stamp = Some(now);
}

/// `tcp_replace_ts_recent`: an acceptable segment that starts at or before
/// the last window edge we advertised (`rcv_wup`, RFC 7323 §4.3's
/// Last.ACK.sent) and passes PAWS gives the next TSecr.
pub fn tcp_replace_ts_recent(ts: &mut TsState, rx: Option<RcvTs>, seq: u32, rcv_wup: u32, now: Instant) {
    let Some(rx) = rx else { return };
    if super::after(seq, rcv_wup) {
        return;
    }
    if tcp_paws_check(ts.recent, ts.recent_stamp, rx.tsval, 0, now) {
        tcp_store_ts_recent(ts, rx.tsval, now);
    }
}

/// `tcp_rtt_tsopt_us`: the RTT a segment's TSecr gives, for an ACK of new
/// data (RFC 7323 §4.1's RTTM; Linux takes it only when the ACK's timing
/// gives none, e.g. retransmitted data acknowledged). `None` without an
/// echo or for an echo from the future or too far back.
pub fn tcp_rtt_tsopt(clock_ms: u32, rx: Option<RcvTs>) -> Option<Duration> {
    let rx = rx?;
    if rx.tsecr == 0 {
        return None;
    }
    let delta = clock_ms.wrapping_sub(rx.tsecr);
    if delta >= i32::MAX as u32 / 1000 {
        return None;
    }
    Some(Duration::from_millis(u64::from(delta.max(1))))
}

/// The TSval of a segment we send: our clock plus the offset.
#[inline]
pub fn tsval(clock: &TsClock, ts: &TsState, now: Instant) -> u32 {
    clock.ms(now).wrapping_add(ts.offset)
}

/// `tcp_established_options`, the timestamp part: (TSval, TSecr) on every
/// segment of a connection that agreed to timestamps.
#[inline]
pub fn established_option(clock: &TsClock, ts: &TsState, now: Instant) -> Option<(u32, u32)> {
    ts.ok.then(|| (tsval(clock, ts, now), ts.recent))
}

/// `tcp_syn_options`, the timestamp part: a SYN (or the SYN-ACK of a
/// simultaneous open) carries timestamps whenever `tcp_timestamps` is on,
/// echoing `ts_recent` (0 before the peer's SYN). The first SYN's clock is
/// kept for the SYN-ACK's TSecr check.
pub fn syn_option(clock: &TsClock, ts: &mut TsState, now: Instant) -> Option<(u32, u32)> {
    if !clock.mode.enabled() {
        return None;
    }
    let ms = clock.ms(now);
    ts.syn_stamp.get_or_insert(ms);
    Some((ms.wrapping_add(ts.offset), ts.recent))
}

/// `tcp_synack_options`, the timestamp part, for a request sock: TSval is
/// the clock plus its offset, or its `cookie_ts` plus it for a SYN cookie;
/// the first and latest TSval sent are kept for the final ACK's TSecr check.
pub fn synack_option(clock: &TsClock, req: &mut ReqTs, now: Instant) -> (u32, u32) {
    let mut tsval = req.cookie_ts.unwrap_or_else(|| clock.ms(now)).wrapping_add(req.off);
    if req.cookie_ts.is_none() {
        if req.snt_tsval_first == 0 {
            if tsval == 0 {
                tsval = u32::MAX;
            }
            req.snt_tsval_first = tsval;
        }
        req.snt_tsval_last = tsval;
    }
    (tsval, req.recent)
}

/// `tcp_check_req`'s TSecr check (Linux 6.15 and later): the final ACK must
/// echo one of the TSvals our SYN-ACKs carried (`TSEcrRejected` otherwise).
/// `raw_tsecr` is as received, offset included.
pub fn tsecr_reject(req: &ReqTs, raw_tsecr: u32) -> bool {
    raw_tsecr != 0 && raw_tsecr.wrapping_sub(req.snt_tsval_first) > req.snt_tsval_last.wrapping_sub(req.snt_tsval_first)
}

/// `cookie_init_timestamp`: the TSval (before the offset) of a SYN-ACK that
/// carries a SYN cookie: our clock `ts_now` with its low [`TSBITS`] bits
/// replaced by the options the SYN offered (window scale `snd_wscale`, or
/// all ones for none; SACK), never later than `ts_now`.
pub fn cookie_init_timestamp(snd_wscale: Option<u8>, sack_ok: bool, ts_now: u32) -> u32 {
    let mut options = snd_wscale.map_or(TS_OPT_WSCALE_MASK, |w| u32::from(w) & TS_OPT_WSCALE_MASK);
    if sack_ok {
        options |= TS_OPT_SACK;
    }
    let mut ts = (ts_now >> TSBITS << TSBITS) | options;
    if before(ts_now, ts) {
        ts = ts.wrapping_sub(1 << TSBITS);
    }
    ts
}

/// What a cookie's echoed timestamp gives back (`cookie_timestamp_decode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    /// The peer's window-scale shift, if it offered one.
    pub snd_wscale: Option<u8>,
    /// The peer offered SACK.
    pub sack_ok: bool,
}

/// `cookie_timestamp_decode`: the options of a cookie from the ACK's TSecr
/// less our offset (`tsecr`). `None` when timestamps are off here (the ACK
/// is then not taken); without a timestamp in the ACK, no options.
pub fn cookie_timestamp_decode(mode: TcpTimestamps, tsecr: Option<u32>) -> Option<CookieOptions> {
    let Some(options) = tsecr else {
        return Some(CookieOptions { snd_wscale: None, sack_ok: false });
    };
    if !mode.enabled() {
        return None;
    }
    let wscale = options & TS_OPT_WSCALE_MASK;
    Some(CookieOptions {
        snd_wscale: (wscale != TS_OPT_WSCALE_MASK).then_some(wscale as u8),
        sack_ok: options & TS_OPT_SACK != 0,
    })
}

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
/// `advmss` too (`tcp_rcv_synsent_state_process`).
pub fn shrink_mss(cb: &mut TcpCb, active: bool) {
    if !cb.ts.ok {
        return;
    }
    cb.mss = cb.mss.saturating_sub(TCPOLEN_TSTAMP_ALIGNED).max(TCP_MIN_SND_MSS);
    if active {
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
