//! The timestamp state of RFC 7323 as Linux keeps it, apart from the code
//! that reads and writes it at the points Linux does ([`super::timestamps`]):
//! the TSval clock ([`TsClock`]), a connection's state ([`TsState`]), a
//! request sock's ([`ReqTs`]), PAWS's checks, the RTT from TSecr and the SYN
//! cookie's options in TSval. A module of its own so that the control block
//! (`cb.rs`) and the tables (`table.rs`) hold this state without depending on
//! the code that uses them.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::before;

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
    tcp_rtt_tsopt_min(clock_ms, rx, 1)
}

/// [`tcp_rtt_tsopt`] with Linux's `min_delta`: the ticks an echo of this
/// very tick counts for (1 for the sender's RTT; 0 for the receiver's,
/// `tcp_rcv_rtt_measure_ts`, which then takes no sample).
pub fn tcp_rtt_tsopt_min(clock_ms: u32, rx: Option<RcvTs>, min_delta: u32) -> Option<Duration> {
    let rx = rx?;
    if rx.tsecr == 0 {
        return None;
    }
    let delta = clock_ms.wrapping_sub(rx.tsecr);
    if delta >= i32::MAX as u32 / 1000 {
        return None;
    }
    Some(Duration::from_millis(u64::from(if delta == 0 { min_delta } else { delta })))
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
