//! RACK-TLP (RFC 8985) as Linux runs it by default
//! (`net.ipv4.tcp_recovery=1`, `tcp_early_retrans=3`; net/ipv4/tcp_recovery.c,
//! tcp_input.c, tcp_output.c): losses marked by time rather than by counting
//! SACKed segments — a segment is lost once a segment sent after it was
//! delivered and it has gone unacknowledged for the RTT plus a reordering
//! window (`tcp_rack_advance`, `tcp_rack_detect_loss`, `tcp_rack_mark_lost`,
//! the reordering timer `tcp_rack_reo_timeout`'s test) — which catches a lost
//! retransmission too; and the tail loss probe (`tcp_schedule_loss_probe`,
//! `tcp_process_tlp_ack`), which makes the peer SACK when the tail of a
//! flight is lost, instead of waiting for the RTO. The probe itself is sent
//! by `output::tcp_send_loss_probe`.
//!
//! Loss of data sent once is kept as the scoreboard keeps it (everything
//! unSACKed below `lost_end`: data sent once leaves in sequence order, so
//! what RACK finds lost of it is a prefix); a retransmission found lost again
//! goes on a short list of its own ([`RackState::relost`]).

use std::time::{Duration, Instant};

use super::cb::{CaState, TcpCb};
use super::rack_state::{Delivered, TxRecord};
use super::ts_state::TsClock;
use super::{after, before, TCP_RTO_MIN, TCP_TIMEOUT_INIT};
use crate::snmp::Mib;

pub use super::rack_state::RackState;

/// `TCP_RACK_LOSS_DETECTION`, the bit of `net.ipv4.tcp_recovery` that turns
/// RACK on (Linux's default value of the sysctl is 1).
pub const TCP_RACK_LOSS_DETECTION: u8 = 0x1;

/// `TCP_TIMEOUT_MIN`: 2 ms, added to the probe and reordering timers.
pub const TCP_TIMEOUT_MIN: Duration = Duration::from_millis(2);

/// `tcp_rack_sent_after`: whether `(o1, seq1)` was sent after `(o2, seq2)`,
/// by send order ([`TxRecord::order`], which refines the send time) and,
/// within one record, by sequence number.
fn sent_after(o1: u64, o2: u64, seq1: u32, seq2: u32) -> bool {
    o1 > o2 || (o1 == o2 && after(seq1, seq2))
}

/// Microseconds from `then` to `now` (0 if `then` is later).
fn us_since(now: Instant, then: Instant) -> u32 {
    now.saturating_duration_since(then).as_micros().min(u128::from(u32::MAX)) as u32
}

/// `tcp_rack_advance` for one delivered transmission `rec`, of which
/// `[.., end)` was delivered: RACK remembers the most recently sent delivered
/// data; returns its RTT, µs, for the caller to keep as `rack.rtt_us` when
/// it is the last of the ACK's in Linux's order (by sequence number, not by
/// send order: see [`tcp_rack_update`]). A retransmission acknowledged
/// sooner than the minimum RTT was most likely the original's ACK: ignored
/// (`None`).
fn advance(r: &mut RackState, rec: &TxRecord, end: u32, now: Instant, hz: u32) -> Option<u32> {
    // From the departure of the record's first data: a record a full log
    // stamped again gives no sample shorter than its data's RTT.
    let rtt = us_since(now, rec.sent).saturating_add(rec.stretch_us);
    if rec.retrans && rtt < r.min_rtt_us {
        return None;
    }
    if !rec.retrans {
        // tcp_update_rtt_min, from samples Karn allows.
        tcp_update_rtt_min(r, rtt, hz);
    }
    r.advanced = true;
    if r.order.is_none_or(|o| sent_after(rec.order, o, end, r.end_seq)) {
        r.order = Some(rec.order);
        r.end_seq = end;
    }
    Some(rtt)
}

/// `tcp_skb_spurious_retrans`: a retransmission the cumulative ACK took,
/// whose ACK echoes a TSval (`tsecr`, on our clock, the connection's offset
/// taken off) older than the retransmission: the ACK answers the original,
/// and the retransmission's short "RTT" says nothing of the path.
fn spurious_retrans(rec: &TxRecord, tsecr: Option<u32>, clock: &TsClock) -> bool {
    rec.retrans && tsecr.is_some_and(|e| before(e, clock.ms(rec.sent)))
}

/// `tcp_update_rtt_min`: `tcp_min_rtt` (`tcpi_min_rtt`) takes an RTT
/// sample of `rtt_us` µs; a sample of 0 counts as one jiffy (`HZ` = `hz`),
/// as in Linux. xsknet's clock is the poll's: an ACK that came back within
/// the poll that sent its data (the transmit goes first, and a veth peer
/// answers before the receive work starts) reads 0, which is the clock's
/// grain and not the path's RTT; taken as 1 µs it made RACK's reordering
/// window and [`super::wmem`]'s path window (`cwnd × min_rtt / srtt`) none.
/// Linux keeps a windowed minimum over `tcp_min_rtt_wlen` (300 s); this is
/// the connection's least.
pub fn tcp_update_rtt_min(r: &mut RackState, rtt_us: u32, hz: u32) {
    let rtt_us = if rtt_us == 0 { 1_000_000 / hz.max(1) } else { rtt_us };
    r.min_rtt_us = r.min_rtt_us.min(rtt_us);
}

/// After an ACK (its SACK blocks read and `snd_una` moved): each
/// transmission it delivered advances RACK, in Linux's order (newly SACKed
/// data first, then what the cumulative ACK took, less a retransmission
/// the ACK's echoed timestamp shows spurious), then the log drops what is
/// acknowledged. `tsecr` is the ACK's echoed timestamp on `clock`
/// ([`super::sack::SackTag::tsecr`]); `hz`, the kernel's `HZ`, for
/// [`tcp_update_rtt_min`].
pub fn tcp_rack_update(
    cb: &mut TcpCb,
    delivered: &Delivered,
    tsecr: Option<u32>,
    clock: &TsClock,
    now: Instant,
    hz: u32,
) {
    if !cb.sack_ok {
        return;
    }
    let r = &mut cb.rack;
    r.newly_lost = 0;
    // When the most recently sent of what this ACK delivered left
    // (`rs->prior_delivered`'s moment).
    let mut latest_sent: Option<Instant> = None;
    for (s, e, acked) in delivered.in_rack_order() {
        let in_order = r.log.in_seq_order();
        // Linux walks a range's skbs by sequence number (the retransmit
        // queue's order), so the last `tcp_rack_advance` of a range, whose
        // RTT stays, is its highest transmission's; the log is in send order
        // once it holds a retransmission, which goes last: the RTT kept is
        // the one of the highest-sequence record that advanced RACK.
        let mut last: Option<(u32, u32)> = None;
        let mut i = r.log.first_overlapping(s);
        while let Some(rec) = r.log.get(i) {
            if in_order && !before(rec.seq, e) {
                break;
            }
            if before(rec.seq, e) && after(rec.end, s) {
                let end = if before(e, rec.end) { e } else { rec.end };
                if !(acked && spurious_retrans(&rec, tsecr, clock)) {
                    if let Some(rtt) = advance(r, &rec, end, now, hz) {
                        let at = if before(rec.seq, s) { 0 } else { rec.seq.wrapping_sub(s) };
                        if last.is_none_or(|(l, _)| at >= l) {
                            last = Some((at, rtt));
                        }
                    }
                }
                if latest_sent.is_none_or(|t| rec.sent > t) {
                    latest_sent = Some(rec.sent);
                }
            }
            i += 1;
        }
        if let Some((_, rtt)) = last {
            r.rtt_us = rtt;
        }
    }
    update_reo_wnd(r, latest_sent, now);
    r.log.acked(cb.snd_una);
    r.trim_relost(Some(cb.snd_una));
    // The lost prefix never starts below `snd_una` (nor reaches past what was sent).
    let sb = &mut cb.sack;
    if before(sb.lost_end, cb.snd_una) || after(sb.lost_end, cb.snd_max) {
        sb.lost_end = cb.snd_una;
    }
    // Nor does the retransmitted one (`high_rxt`), which outlives a recovery: an
    // acknowledged retransmission's mark goes with its skb in Linux. Left behind,
    // it would read as inside the flight again 2³¹ bytes on.
    if before(sb.high_rxt, cb.snd_una) || after(sb.high_rxt, cb.snd_max) {
        sb.high_rxt = cb.snd_una;
    }
    if cb.snd_una == cb.snd_max {
        r.reo_at = None;
        r.tlp_at = None;
    }
}

/// `TCP_RACK_RECOVERY_THRESH`: recoveries a widened reordering window lasts.
pub const TCP_RACK_RECOVERY_THRESH: u8 = 16;

/// `tcp_rack_update_reo_wnd` (net/ipv4/tcp_recovery.c), for an ACK that
/// delivered data of which the most recently sent left at `latest_sent`: a
/// D-SACK seen since (spurious retransmissions, likely from reordering
/// longer than the window) widens the window by a quarter of the minimum
/// RTT, at most once a round trip (data sent before the last widening does
/// not count), and the width then holds for
/// [`TCP_RACK_RECOVERY_THRESH`] recoveries; after those, back to one step.
fn update_reo_wnd(r: &mut RackState, latest_sent: Option<Instant>, now: Instant) {
    let Some(sent) = latest_sent else { return };
    if r.reo_wnd_widened.is_some_and(|t| sent < t) {
        r.dsack_seen = false;
    }
    if r.dsack_seen {
        r.reo_wnd_steps = (r.reo_wnd_steps + 1).min(0xff);
        r.dsack_seen = false;
        r.reo_wnd_widened = Some(now);
        r.reo_wnd_persist = TCP_RACK_RECOVERY_THRESH;
    } else if r.reo_wnd_persist == 0 {
        r.reo_wnd_steps = 1;
    }
}

/// `tcp_rack_reo_wnd`: how long past the RTT data may arrive out of order,
/// µs. None while no reordering was seen and recovery is under way or
/// `reordering` segments are SACKed (RACK then acts as fast as the
/// duplicate-ACK threshold would); else a quarter of the minimum RTT per
/// step, at most the smoothed RTT.
pub fn reo_wnd(cb: &TcpCb) -> u32 {
    if cb.sack.reord_seen == 0 {
        if matches!(cb.ca_state, CaState::Recovery | CaState::Loss) {
            return 0;
        }
        if cb.sack.sacked_out(cb.mss) >= cb.sack.reordering {
            return 0;
        }
    }
    (cb.rack.min_rtt_us / 4).saturating_mul(cb.rack.reo_wnd_steps).min(cb.srtt_us)
}

/// `tcp_rack_detect_loss`: every transmission sent before the most recently
/// sent delivered one, unSACKed, and older than RACK's RTT plus the
/// reordering window is lost; returns how long the youngest of the others
/// still has to wait, µs (0: none waits).
pub fn detect_loss(mib: &mut Mib, cb: &mut TcpCb, now: Instant) -> u32 {
    let Some(rack_order) = cb.rack.order else { return 0 };
    let reo_wnd = reo_wnd(cb);
    let (rack_end, rack_rtt) = (cb.rack.end_seq, cb.rack.rtt_us);
    let mut wait = 0u32;
    let mut i = 0;
    while let Some(rec) = cb.rack.log.get(i) {
        let len = rec.end.wrapping_sub(rec.seq);
        if cb.sack.sacked_in(rec.seq, rec.end) == len {
            cb.rack.log.remove(i);
            continue;
        }
        if rec.order > rack_order {
            break;
        }
        // RACK's own record: what lies below RACK's segment was sent before it.
        let limit = if rec.order == rack_order && before(rack_end, rec.end) { rack_end } else { rec.end };
        if !sent_after(rack_order, rec.order, rack_end, rec.seq) || !after(limit, rec.seq) {
            i += 1;
            continue;
        }
        let remaining = i64::from(rack_rtt) + i64::from(reo_wnd) - i64::from(us_since(now, rec.sent));
        if remaining > 0 {
            wait = wait.max(remaining as u32);
            i += 1;
            continue;
        }
        let before_len = cb.rack.log.len();
        mark_lost(mib, cb, rec, limit);
        if cb.rack.log.len() == before_len && cb.rack.log.get(i) == Some(rec) {
            i += 1;
        }
    }
    wait
}

/// `tcp_mark_skb_lost` for `[rec.seq, limit)`: data sent once joins the
/// lost prefix of the scoreboard; a retransmission is lost again
/// (`TcpExtTCPLostRetransmit`) and waits to be sent once more.
fn mark_lost(mib: &mut Mib, cb: &mut TcpCb, rec: TxRecord, limit: u32) {
    let mss = cb.mss.max(1);
    let unsacked = limit.wrapping_sub(rec.seq).saturating_sub(cb.sack.sacked_in(rec.seq, limit));
    let segs = unsacked.div_ceil(mss);
    if rec.retrans {
        if !cb.rack.add_relost(rec.seq, limit) {
            // No room: left to the RTO.
            cb.rack.log.take_out(rec.seq, limit);
            return;
        }
        mib.TcpExtTCPLostRetransmit += u64::from(segs);
    } else if after(limit, cb.sack.lost_end) {
        cb.sack.lost_end = limit;
    }
    cb.rack.newly_lost += segs;
    cb.rack.log.take_out(rec.seq, limit);
}

/// `tcp_rack_mark_lost`: looks for losses if something was delivered since
/// the last look, and arms the reordering timer for what may yet arrive
/// (`ICSK_TIME_REO_TIMEOUT`: `usecs_to_jiffies(wait + TCP_TIMEOUT_MIN_US)`,
/// the wait plus 2 ms in whole jiffies of `hz` a second). Returns whether it
/// armed it.
pub fn tcp_rack_mark_lost(mib: &mut Mib, cb: &mut TcpCb, now: Instant, hz: u32) -> bool {
    if !cb.rack.advanced {
        return false;
    }
    cb.rack.advanced = false;
    let wait = detect_loss(mib, cb, now);
    if wait > 0 {
        let timeout = Duration::from_micros(u64::from(wait)) + TCP_TIMEOUT_MIN;
        cb.rack.reo_at = Some(now + crate::jiffies::round_up(timeout, hz));
    }
    wait > 0
}

/// Lost and not yet sent again (`tp->lost_out` with RACK): the unSACKed
/// data below `lost_end`, or a retransmission lost again.
pub fn lost_out(cb: &TcpCb) -> bool {
    after(cb.sack.lost_end, cb.snd_una) || !cb.rack.relost().is_empty()
}

/// `tcp_schedule_loss_probe`: in the Open state with SACK and data in
/// flight, a tail loss probe in two smoothed RTTs (plus `TCP_RTO_MIN` with
/// one segment in flight, for the peer's delayed ACK, else plus
/// `TCP_TIMEOUT_MIN`; 1 s without an RTT sample), rounded up to whole
/// jiffies of `hz` a second (Linux: `usecs_to_jiffies(2·srtt +
/// TCP_TIMEOUT_MIN_US)`), never later than the RTO would fire
/// (`advancing_rto`: the RTO restarted now). Returns whether it armed it
/// (`enabled`: `tcp_early_retrans` 3, with RACK).
pub fn tcp_schedule_loss_probe(cb: &mut TcpCb, now: Instant, advancing_rto: bool, enabled: bool, hz: u32) -> bool {
    cb.rack.tlp_at = None;
    if !enabled || !cb.sack_ok || cb.in_flight() == 0 || cb.ca_state != CaState::Open {
        return false;
    }
    let mut timeout = if cb.srtt_us > 0 {
        let srtt2 = Duration::from_micros(2 * u64::from(cb.srtt_us));
        let one = cb.in_flight().div_ceil(cb.mss.max(1)) == 1;
        // In whole jiffies, as the timer is armed (`usecs_to_jiffies`).
        crate::jiffies::round_up(srtt2 + if one { TCP_RTO_MIN } else { TCP_TIMEOUT_MIN }, hz)
    } else {
        TCP_TIMEOUT_INIT
    };
    let rto_delta = match (advancing_rto, cb.rto_at) {
        (false, Some(at)) => at.saturating_duration_since(now),
        _ => cb.rto_backed_off(),
    };
    if !rto_delta.is_zero() {
        timeout = timeout.min(crate::jiffies::round_up(rto_delta, hz));
    }
    cb.rack.tlp_at = Some(now + timeout);
    true
}

/// `tcp_process_tlp_ack`: an ACK at or past `tlp_high_seq` settles the
/// probe. Of new data, or D-SACKed (`dsack_tlp`: the original and the probe
/// both arrived), or answered by a pure duplicate ACK: no loss. An ACK past
/// it after a probe that sent old data: the probe repaired a loss, and the
/// window is reduced once (`tcp_init_cwnd_reduction`, then
/// `tcp_end_cwnd_reduction`), counted in `TcpExtTCPLossProbeRecovery`.
pub fn tcp_process_tlp_ack(mib: &mut Mib, cb: &mut TcpCb, ack: u32, dsack_tlp: bool, pure_dupack: bool) {
    let Some(high) = cb.rack.tlp_high_seq else { return };
    if before(ack, high) {
        return;
    }
    if !cb.rack.tlp_retrans || dsack_tlp {
        cb.rack.tlp_high_seq = None;
    } else if after(ack, high) {
        super::prr::tcp_init_cwnd_reduction(cb);
        // tcp_end_cwnd_reduction in CWR.
        cb.cwnd = cb.ssthresh.max(1);
        mib.TcpExtTCPLossProbeRecovery += 1;
    } else if pure_dupack {
        cb.rack.tlp_high_seq = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CUBIC connection with SACK and an MSS of `mss` bytes.
    fn sack_cb(mss: u32) -> TcpCb {
        let mut cb = TcpCb::for_tests(crate::stream::CongAlgo::Cubic);
        cb.sack_ok = true;
        cb.mss = mss;
        cb
    }

    /// A TSval clock started at `t0`.
    fn clock(t0: Instant) -> TsClock {
        TsClock::new(t0, super::super::ts_state::TcpTimestamps::On)
    }

    /// The probe timer is armed in jiffies (`usecs_to_jiffies(2·srtt +
    /// TCP_TIMEOUT_MIN_US)`): at a 2.35 ms RTT, 6.7 ms is 7 ms at HZ 1000
    /// and two 4 ms jiffies, 8 ms, at HZ 250.
    #[test]
    fn the_loss_probe_waits_whole_jiffies() {
        let probe_in = |hz: u32| {
            let mut cb = TcpCb::for_tests(crate::stream::CongAlgo::Cubic);
            let now = Instant::now();
            cb.sack_ok = true;
            cb.mss = 1448;
            cb.srtt_us = 2350;
            cb.snd_nxt = cb.snd_una.wrapping_add(4 * 1448);
            assert!(tcp_schedule_loss_probe(&mut cb, now, true, true, hz));
            cb.rack.tlp_at.unwrap() - now
        };
        assert_eq!(probe_in(1000), Duration::from_millis(7));
        assert_eq!(probe_in(250), Duration::from_millis(8));
    }

    /// The reordering timer is armed in jiffies too
    /// (`usecs_to_jiffies(wait + TCP_TIMEOUT_MIN_US)`): 0 is sent, 1 a millisecond later; 1 is
    /// SACKed after a 100 ms RTT, so 0 may yet arrive until 100 ms plus the
    /// 25 ms window after it left: 24 ms on, plus 2 ms, is 26 ms at HZ 1000
    /// and seven 4 ms jiffies, 28 ms, at HZ 250.
    #[test]
    fn the_reordering_timer_waits_whole_jiffies() {
        use super::super::scoreboard::Overflow;
        use crate::wire::tcp::SackBlock;
        const MSS: u32 = 1000;
        let reo_in = |hz: u32| {
            let t0 = Instant::now();
            let ms = |n: u64| t0 + Duration::from_millis(n);
            let mut cb = sack_cb(MSS);
            cb.srtt_us = 100_000;
            cb.rack.min_rtt_us = 100_000;
            cb.rack.log.sent(0, MSS, ms(0), false);
            cb.rack.log.sent(MSS, 2 * MSS, ms(1), false);
            cb.snd_nxt = 2 * MSS;
            cb.snd_max = cb.snd_nxt;
            cb.sack.sacked.insert(SackBlock { left: MSS, right: 2 * MSS }, Overflow::DropHighest, |_, _| {});
            let mut d = Delivered::default();
            d.push(MSS, 2 * MSS);
            tcp_rack_update(&mut cb, &d, None, &clock(t0), ms(101), 1000);
            let mut mib = Mib::default();
            assert!(tcp_rack_mark_lost(&mut mib, &mut cb, ms(101), hz));
            assert_eq!(cb.sack.lost_end, 0, "0 is not lost yet");
            cb.rack.reo_at.unwrap() - ms(101)
        };
        assert_eq!(reo_in(1000), Duration::from_millis(26));
        assert_eq!(reo_in(250), Duration::from_millis(28));
    }

    /// A full transmit log stamps the newest record again when new data
    /// joins it (`TxLog::sent`), so that data looks sent later than it
    /// was: RACK must then mark it lost later, never sooner. The record's
    /// older data, delivered, must not give an RTT sample shorter than its
    /// own: Linux stamps every skb at its own transmission, so its sample is
    /// the real RTT, and nothing sent a moment before it is lost within an
    /// RTT plus the reordering window.
    #[test]
    fn data_joining_the_newest_record_of_a_full_log_gives_no_short_rtt_sample() {
        use super::super::rack_state::TX_LOG_LEN;
        use super::super::scoreboard::Overflow;
        use crate::wire::tcp::SackBlock;
        const MSS: u32 = 100;
        let t0 = Instant::now();
        let us = |u: u64| t0 + Duration::from_micros(u);
        let mut cb = TcpCb::for_tests(crate::stream::CongAlgo::Reno);
        cb.sack_ok = true;
        cb.mss = MSS;
        cb.srtt_us = 100_000;
        cb.rack.min_rtt_us = 100_000;
        // One segment a poll, a microsecond apart: the log fills.
        for i in 0..TX_LOG_LEN as u32 {
            cb.rack.log.sent(i * MSS, (i + 1) * MSS, us(u64::from(i)), false);
        }
        assert_eq!(cb.rack.log.len(), TX_LOG_LEN);
        // 50 ms later, one more segment: it joins the newest record.
        let n = TX_LOG_LEN as u32;
        cb.rack.log.sent(n * MSS, (n + 1) * MSS, us(50_000), false);
        assert_eq!(cb.rack.log.len(), TX_LOG_LEN);
        cb.snd_nxt = (n + 1) * MSS;
        cb.snd_max = cb.snd_nxt;
        // 100 ms after it left, the segment sent last in the first burst is
        // SACKed (the rest of that burst is merely late: reordered).
        let now = us(u64::from(n - 1) + 100_000);
        let (s, e) = ((n - 1) * MSS, n * MSS);
        cb.sack.sacked.insert(SackBlock { left: s, right: e }, Overflow::DropHighest, |_, _| {});
        let mut d = Delivered::default();
        d.push(s, e);
        tcp_rack_update(&mut cb, &d, None, &clock(t0), now, 1000);
        assert!(cb.rack.rtt_us >= 100_000, "RACK's RTT {} µs: shorter than the segment's own, 100 ms", cb.rack.rtt_us);
        assert!(cb.rack.min_rtt_us >= 100_000, "min RTT {} µs: shorter than any RTT seen", cb.rack.min_rtt_us);
        let mut mib = Mib::default();
        let armed = tcp_rack_mark_lost(&mut mib, &mut cb, now, 1000);
        assert_eq!(
            (cb.rack.newly_lost, cb.sack.lost_end, armed),
            (0, 0, true),
            "segments sent a millisecond before the SACKed one, within its RTT plus the window, marked lost"
        );
    }

    /// An ACK that both moves `snd_una` over late data and SACKs data sent
    /// after it: Linux tags the SACKed data first (`tcp_sacktag_write_queue`)
    /// and takes the acknowledged data in `tcp_clean_rtx_queue`, which
    /// `tcp_ack` calls after, so RACK's RTT is the last acknowledged
    /// segment's. Segments 0 and 1 left at 0 and 1 ms and were late, 2 left
    /// at 9 ms, 3 at 9.5 ms and came at once: at 20 ms the ACK of 0-1
    /// carries a SACK of 3. RACK's RTT is 19 ms (1's), not 10.5 ms (3's), and
    /// 2, out for 11 ms, is not lost yet (with 3's RTT it was, on a path
    /// whose minimum RTT of 1 ms makes the reordering window 250 µs).
    #[test]
    fn an_ack_that_acknowledges_and_sacks_gives_rack_the_acknowledged_data_s_rtt() {
        use crate::wire::tcp::{SackBlock, TcpOptions};
        const MSS: u32 = 1000;
        let t0 = Instant::now();
        let us = |u: u64| t0 + Duration::from_micros(u);
        let mut cb = rtt_cb(MSS);
        cb.snd_una = 0;
        for (i, at) in [0u64, 1_000, 9_000, 9_500].into_iter().enumerate() {
            let seq = i as u32 * MSS;
            cb.rack.log.sent(seq, seq + MSS, us(at), false);
        }
        cb.snd_nxt = 4 * MSS;
        cb.snd_max = cb.snd_nxt;
        let mut opts = TcpOptions::default();
        opts.sack_blocks[0] = SackBlock { left: 3 * MSS, right: 4 * MSS };
        opts.sack_len = 1;
        let mut mib = Mib::default();
        let tag = super::super::sack::tcp_sacktag(&mut mib, &mut cb, &opts, 0, 2 * MSS);
        cb.snd_una = 2 * MSS;
        tcp_rack_update(&mut cb, &tag.delivered, tag.tsecr, &clock(t0), us(20_000), 1000);
        assert_eq!(cb.rack.rtt_us, 19_000, "RACK's RTT: segment 1's, acknowledged last");
        assert_eq!(cb.rack.end_seq, 4 * MSS, "the most recently sent delivered: segment 3");
        tcp_rack_mark_lost(&mut mib, &mut cb, us(20_000), 1000);
        assert_eq!((cb.rack.newly_lost, cb.sack.lost_end), (0, 2 * MSS), "segment 2 marked lost after 11 ms");
    }

    /// `tcp_skb_spurious_retrans`: segment 0 left at 0 ms, segment 1 at 1 ms
    /// and again at 15 ms, segment 2 at 9 ms. At 20 ms an ACK of 0-1 echoes
    /// the TSval of 1 ms: it answers the original 1, so the copy's 5 ms is no
    /// RTT and RACK keeps 0's, 20 ms; 2, out for 11 ms, is not lost. Without
    /// timestamps nothing tells, and the copy's 5 ms counts (the highest
    /// segment acknowledged), as in Linux.
    #[test]
    fn a_retransmission_the_echoed_timestamp_shows_spurious_gives_rack_no_rtt() {
        const MSS: u32 = 1000;
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let rack_after = |tsecr: Option<u32>| {
            let mut cb = sack_cb(MSS);
            cb.srtt_us = 20_000;
            cb.rack.min_rtt_us = 1_000;
            cb.snd_una = 0;
            cb.rack.log.sent(0, MSS, ms(0), false);
            cb.rack.log.sent(MSS, 2 * MSS, ms(1), false);
            cb.rack.log.sent(2 * MSS, 3 * MSS, ms(9), false);
            cb.rack.log.sent(MSS, 2 * MSS, ms(15), true);
            cb.snd_nxt = 3 * MSS;
            cb.snd_max = cb.snd_nxt;
            let mut d = Delivered::default();
            d.push(0, 2 * MSS);
            d.end_of_acked();
            cb.snd_una = 2 * MSS;
            tcp_rack_update(&mut cb, &d, tsecr, &clock(t0), ms(20), 1000);
            let mut mib = Mib::default();
            tcp_rack_mark_lost(&mut mib, &mut cb, ms(20), 1000);
            (cb.rack.rtt_us, cb.rack.newly_lost)
        };
        assert_eq!(rack_after(Some(1)), (20_000, 0), "the ACK of the original: the copy gives no RTT");
        assert_eq!(rack_after(None), (5_000, 1), "without timestamps the copy's RTT counts");
    }

    /// `tcp_sacktag_one` calls `tcp_rack_advance` with no
    /// `tcp_skb_spurious_retrans` check: a SACKed retransmission advances
    /// RACK even when the ACK echoes a TSval older than it (only its RTT
    /// below the minimum makes it ambiguous). Segment 1 left at 1 ms and
    /// again at 15 ms; at 20 ms an ACK of nothing new SACKs it, echoing the
    /// TSval of 1 ms: RACK takes the copy's 5 ms and its end.
    #[test]
    fn a_sacked_retransmission_advances_rack_whatever_the_echoed_timestamp() {
        const MSS: u32 = 1000;
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut cb = rtt_cb(MSS);
        cb.rack.log.sent(0, MSS, ms(0), false);
        cb.rack.log.sent(MSS, 2 * MSS, ms(1), false);
        cb.rack.log.sent(2 * MSS, 3 * MSS, ms(9), false);
        cb.rack.log.sent(MSS, 2 * MSS, ms(15), true);
        cb.snd_nxt = 3 * MSS;
        cb.snd_max = cb.snd_nxt;
        let mut d = Delivered::default();
        d.end_of_acked();
        d.push(MSS, 2 * MSS);
        tcp_rack_update(&mut cb, &d, Some(1), &clock(t0), ms(20), 1000);
        assert!(cb.rack.advanced, "a SACKed retransmission advances RACK");
        assert_eq!((cb.rack.rtt_us, cb.rack.end_seq), (5_000, 2 * MSS));
    }

    /// One cumulative range over a retransmission and data sent once above
    /// it: `tcp_clean_rtx_queue` takes the skbs by sequence number, so
    /// RACK's RTT is the original's above the hole, not the
    /// retransmission's, though the retransmission went later (the log's
    /// order). Segment 0 left at 0 ms and again at 10 ms, 1 at 1 ms; the ACK
    /// of both comes at 20 ms: RACK's RTT is 19 ms (1's), its most recently
    /// sent the retransmission.
    #[test]
    fn a_range_gives_rack_the_rtt_of_its_highest_segment_not_its_latest_sent() {
        const MSS: u32 = 1000;
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut cb = rtt_cb(MSS);
        cb.rack.log.sent(0, MSS, ms(0), false);
        cb.rack.log.sent(MSS, 2 * MSS, ms(1), false);
        cb.rack.log.sent(0, MSS, ms(10), true);
        cb.snd_nxt = 2 * MSS;
        cb.snd_max = cb.snd_nxt;
        let mut mib = Mib::default();
        let tag =
            super::super::sack::tcp_sacktag(&mut mib, &mut cb, &crate::wire::tcp::TcpOptions::default(), 0, 2 * MSS);
        assert_eq!(tag.delivered.ranges(), &[(0, 2 * MSS)]);
        cb.snd_una = 2 * MSS;
        tcp_rack_update(&mut cb, &tag.delivered, tag.tsecr, &clock(t0), ms(20), 1000);
        assert_eq!(cb.rack.rtt_us, 19_000, "RACK's RTT: segment 1's, the highest acknowledged");
        assert_eq!(cb.rack.end_seq, MSS, "the most recently sent delivered: the retransmission of 0");
    }

    /// An ACK read in the poll that sent its data (the clock's grain, not
    /// the path's RTT) gives a sample of 0: the minimum RTT takes one jiffy
    /// for it, as `tcp_update_rtt_min` does, not 1 µs; a real sample of
    /// 60 µs then sets it.
    #[test]
    fn a_zero_rtt_sample_counts_one_jiffy_in_the_minimum() {
        const MSS: u32 = 1000;
        for (hz, jiffy) in [(1000, 1000), (250, 4000)] {
            let t0 = Instant::now();
            let mut cb = sack_cb(MSS);
            cb.rack.log.sent(0, MSS, t0, false);
            cb.rack.log.sent(MSS, 2 * MSS, t0 + Duration::from_micros(100), false);
            cb.snd_nxt = 2 * MSS;
            cb.snd_max = cb.snd_nxt;
            let mut d = Delivered::default();
            d.push(0, MSS);
            cb.snd_una = MSS;
            tcp_rack_update(&mut cb, &d, None, &clock(t0), t0, hz);
            assert_eq!(cb.rack.min_rtt_us, jiffy, "HZ {hz}: a zero sample is one jiffy");
            let mut d = Delivered::default();
            d.push(MSS, 2 * MSS);
            cb.snd_una = 2 * MSS;
            tcp_rack_update(&mut cb, &d, None, &clock(t0), t0 + Duration::from_micros(160), hz);
            assert_eq!(cb.rack.min_rtt_us, 60, "HZ {hz}: the real sample");
        }
    }

    /// [`sack_cb`] with an SRTT of 20 ms and a minimum RTT of 1 ms.
    fn rtt_cb(mss: u32) -> TcpCb {
        let mut cb = sack_cb(mss);
        cb.srtt_us = 20_000;
        cb.rack.min_rtt_us = 1_000;
        cb
    }

    /// Segment size of [`odd_sacked_cb`].
    const MSS: u32 = 1000;

    /// A SACK connection (MSS 1000 bytes, SRTT 20 ms, minimum RTT 1 ms) that
    /// sent segments `0..segments` 100 µs apart from `t0`, sent `retrans` again
    /// at 15 ms, and has the odd segments of 1-17 SACKed.
    fn odd_sacked_cb(segments: u32, retrans: u32, t0: Instant) -> TcpCb {
        use super::super::scoreboard::Overflow;
        use crate::wire::tcp::SackBlock;
        let mut cb = rtt_cb(MSS);
        for i in 0..segments {
            cb.rack.log.sent(i * MSS, (i + 1) * MSS, t0 + Duration::from_micros(u64::from(i) * 100), false);
        }
        cb.rack.log.sent(retrans * MSS, (retrans + 1) * MSS, t0 + Duration::from_millis(15), true);
        cb.snd_nxt = segments * MSS;
        cb.snd_max = cb.snd_nxt;
        for i in (1..19u32).step_by(2) {
            cb.sack.sacked.insert(SackBlock { left: i * MSS, right: (i + 1) * MSS }, Overflow::DropHighest, |_, _| {});
        }
        cb
    }

    /// An ACK that fills ten holes and SACKs data above a hole with a
    /// retransmission still in flight: eleven ranges, more than an ACK's
    /// ranges once fitted in (eight). Merged into one, the last of them took
    /// the hole above the ACK for delivered and RACK advanced on the
    /// retransmission in it, never delivered; and the delivered bytes PRR
    /// reads counted the hole. Segments 0-29 left 100 µs apart, the odd ones
    /// of 1-17 are SACKed, 22 went again at 15 ms; at 21 ms the ACK of 19
    /// SACKs 25.
    #[test]
    fn ranges_past_the_limit_never_make_rack_advance_on_data_not_delivered() {
        use crate::wire::tcp::{SackBlock, TcpOptions};
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut cb = odd_sacked_cb(30, 22, t0);
        let mut opts = TcpOptions::default();
        opts.sack_blocks[0] = SackBlock { left: 25 * MSS, right: 26 * MSS };
        opts.sack_len = 1;
        let mut mib = Mib::default();
        let tag = super::super::sack::tcp_sacktag(&mut mib, &mut cb, &opts, 0, 19 * MSS);
        assert_eq!(tag.delivered.bytes(), 11 * MSS, "ten holes filled and one segment SACKed");
        assert!(tag.delivered.ranges().iter().all(|&(_, e)| !after(e, 19 * MSS) || e == 26 * MSS));
        cb.snd_una = 19 * MSS;
        tcp_rack_update(&mut cb, &tag.delivered, tag.tsecr, &clock(t0), ms(21), 1000);
        assert_eq!(cb.rack.end_seq, 26 * MSS, "the most recently sent delivered: 25, not 22's retransmission");
    }

    /// An ACK that fills nine holes between data SACKed before, one of
    /// which, 17, was a retransmission sent at 15 ms: RACK advances on the
    /// holes alone (`tcp_clean_rtx_queue` skips what was SACKed), so its RTT
    /// is the highest hole's, 16 sent at 1.6 ms, not the retransmission's
    /// 6 ms, which the four cumulative ranges an ACK had until 2026-12-02
    /// took in by widening the last over 6-18.
    #[test]
    fn a_cumulative_ack_over_many_holes_never_advances_rack_on_data_sacked_before() {
        use crate::wire::tcp::TcpOptions;
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut cb = odd_sacked_cb(20, 17, t0);
        let mut mib = Mib::default();
        let tag = super::super::sack::tcp_sacktag(&mut mib, &mut cb, &TcpOptions::default(), 0, 18 * MSS);
        assert_eq!(tag.delivered.bytes(), 9 * MSS, "nine holes filled");
        assert_eq!(tag.delivered.ranges().len(), 9, "each hole a range of its own");
        cb.snd_una = 18 * MSS;
        tcp_rack_update(&mut cb, &tag.delivered, tag.tsecr, &clock(t0), ms(21), 1000);
        assert_eq!(cb.rack.rtt_us, 21_000 - 1_600, "the RTT of 16, the highest hole");
        assert_eq!(cb.rack.end_seq, 17 * MSS);
    }

    #[test]
    fn a_dsack_widens_the_window_once_a_round_trip_for_sixteen_recoveries() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut r = RackState::default();
        // Nothing delivered: nothing changes, the D-SACK waits.
        r.dsack_seen = true;
        update_reo_wnd(&mut r, None, at(10));
        assert_eq!((r.reo_wnd_steps, r.dsack_seen), (1, true));
        update_reo_wnd(&mut r, Some(at(5)), at(10));
        assert_eq!((r.reo_wnd_steps, r.reo_wnd_persist, r.dsack_seen), (2, TCP_RACK_RECOVERY_THRESH, false));
        // A D-SACK answered by data sent before the widening: the same round trip.
        r.dsack_seen = true;
        update_reo_wnd(&mut r, Some(at(9)), at(20));
        assert_eq!((r.reo_wnd_steps, r.dsack_seen), (2, false));
        // Data sent after it: a round trip later, wider again.
        r.dsack_seen = true;
        update_reo_wnd(&mut r, Some(at(15)), at(30));
        assert_eq!(r.reo_wnd_steps, 3);
        // The width holds while recoveries remain, then goes back to one step.
        update_reo_wnd(&mut r, Some(at(40)), at(50));
        assert_eq!(r.reo_wnd_steps, 3);
        r.reo_wnd_persist = 0;
        update_reo_wnd(&mut r, Some(at(60)), at(70));
        assert_eq!(r.reo_wnd_steps, 1);
    }
}
