//! SACK loss recovery, the sender's side (net/ipv4/tcp_input.c): the
//! scoreboard of what the peer selectively acknowledged (RFC 2018,
//! `tcp_sacktag_write_queue`), its blocks checked as `tcp_is_sackblock_valid`
//! checks them, D-SACKs read (RFC 2883, `tcp_check_dsack`), recovery entered on
//! SACK evidence and the holes retransmitted within the congestion window
//! (RFC 6675, `tcp_fastretrans_alert`, `tcp_mark_head_lost`,
//! `tcp_xmit_retransmit_queue`), reordering measured (`tcp_check_sack_reordering`)
//! and a spurious recovery or timeout undone (`tcp_try_undo_dsack`,
//! `tcp_try_undo_recovery`, `tcp_try_undo_loss`), a spurious timeout found
//! by F-RTO too (RFC 5682, `tcp_process_loss`'s `tp->frto`). And the receiver's D-SACK
//! (`tcp_dsack_set`; the input path merges what `tcp_dsack_extend` would):
//! the first SACK block of our next ACK reports a duplicate segment.
//!
//! Loss is detected as Linux detects it: by time with RACK
//! (`net.ipv4.tcp_recovery=1`, the default, [`super::rack`]), or, with
//! `tcp_recovery=0`, once `reordering` SACKed segments lie above a hole
//! (RFC 6675's `IsLost`). The window in recovery follows proportional rate
//! reduction (RFC 6937, [`super::prr`]), as Linux's does.
//!
//! The scoreboard is a fixed array of SACKed ranges: nothing here allocates.

use std::time::{Duration, Instant};

use super::cb::{CaState, TcpCb};
use super::rack_state::Delivered;
use super::{after, before};
use crate::net::Net;
use crate::snmp::Mib;
use crate::wire::tcp::{SackBlock, TcpOptions};

use super::scoreboard::Overflow;
pub use super::scoreboard::{Scoreboard, SACK_RANGES, TCP_MAX_REORDERING, TCP_REORDERING};

/// What the SACK option of one ACK told (the `FLAG_*` bits `tcp_sacktag_write_queue` returns).
#[derive(Clone, Copy, Debug, Default)]
pub struct SackTag {
    /// New data was SACKed (`FLAG_DATA_SACKED`).
    pub data_sacked: bool,
    /// The first block was a valid D-SACK (`FLAG_DSACKING_ACK`).
    pub dsack: bool,
    /// Where that D-SACK block ends.
    pub dsack_end: Option<u32>,
    /// What the ACK delivered: newly SACKed ranges, and cumulatively
    /// acknowledged ones that were not SACKed before (RACK and PRR read it).
    pub delivered: Delivered,
    /// The ACK's TSecr less our offset, when it has one that is not zero
    /// (`rx_opt.saw_tstamp && rx_opt.rcv_tsecr`): what timestamp undo reads.
    pub tsecr: Option<u32>,
}

impl SackTag {
    /// The ACK must go through `tcp_fastretrans_alert` (`FLAG_CA_ALERT`).
    pub fn alert(&self) -> bool {
        self.data_sacked || self.dsack
    }
}

/// `tcp_is_sackblock_valid`: a block within what was sent and above
/// `snd_una`, or a D-SACK below it and not older than the current undo
/// episode (RFC 2883 §4.1.1).
fn is_sackblock_valid(cb: &TcpCb, snd_una: u32, is_dsack: bool, start: u32, end: u32) -> bool {
    let snd_nxt = cb.snd_max;
    if after(end, snd_nxt) || !before(start, end) {
        return false;
    }
    if !before(start, snd_nxt) {
        return false;
    }
    if after(start, snd_una) {
        return true;
    }
    let Some(undo) = cb.sack.undo_marker.filter(|_| is_dsack) else {
        return false;
    };
    if after(end, snd_una) {
        return false;
    }
    if !before(start, undo) {
        return true;
    }
    if !after(end, undo) {
        return false;
    }
    !before(start, end.wrapping_sub(cb.max_window))
}

/// `tcp_dsack_seen`: D-SACKed segments of `[start, end)`, or 0 for a
/// dubious one (empty, longer than the peer's window, or more D-SACKed segments
/// than we ever retransmitted). Once reordering has been seen, a D-SACK
/// that is not of a loss probe asks RACK to widen its reordering window
/// (`rack.dsack_seen`, read by [`super::rack::tcp_rack_update`]).
fn dsack_seen(cb: &mut TcpCb, start: u32, end: u32) -> u32 {
    // An empty (or reversed) block is no D-SACK.
    if !before(start, end) {
        return 0;
    }
    let len = end.wrapping_sub(start);
    if len > cb.max_window {
        return 0;
    }
    let segs = if len > cb.mss { len.div_ceil(cb.mss.max(1)) } else { 1 };
    // FLAG_DSACK_TLP: a one-segment D-SACK ending where the probe ended.
    let tlp = len <= cb.mss && cb.rack.tlp_high_seq == Some(end);
    // A u32 that wraps, as Linux's: a peer may D-SACK up to its window per
    // ACK, which would overflow a checked add.
    cb.sack.dsack_dups = cb.sack.dsack_dups.wrapping_add(segs);
    if cb.sack.dsack_dups > cb.total_retrans {
        return 0;
    }
    if cb.sack.reord_seen > 0 && !tlp {
        cb.rack.dsack_seen = true;
    }
    segs
}

/// `tcp_check_dsack`: whether the first block is a D-SACK (below the ACK,
/// or inside the second block), counting `TcpExtTCPDSACKRecv` or
/// `TcpExtTCPDSACKOfoRecv`; one for data already acknowledged takes its
/// segments off `undo_retrans`.
fn check_dsack(mib: &mut Mib, cb: &mut TcpCb, blocks: &[SackBlock], ack: u32, prior_una: u32) -> bool {
    let Some(b0) = blocks.first().copied() else {
        return false;
    };
    if before(b0.left, ack) {
        mib.TcpExtTCPDSACKRecv += 1;
    } else if let Some(b1) = blocks.get(1) {
        if after(b0.right, b1.right) || before(b0.left, b1.left) {
            return false;
        }
        mib.TcpExtTCPDSACKOfoRecv += 1;
    } else {
        return false;
    }
    let segs = dsack_seen(cb, b0.left, b0.right);
    if segs == 0 {
        mib.TcpExtTCPDSACKIgnoredDubious += 1;
        return false;
    }
    mib.TcpExtTCPDSACKRecvSegs += u64::from(segs);
    if let Some(undo) = cb.sack.undo_marker {
        if cb.sack.undo_retrans > 0 && !after(b0.right, prior_una) && after(b0.right, undo) {
            cb.sack.undo_retrans = (cb.sack.undo_retrans - segs as i32).max(0);
        }
    }
    true
}

/// `tcp_sacktag_write_queue` with the reordering check of
/// `tcp_clean_rtx_queue`: reads the SACK blocks of an ACK of `ack` that
/// found `prior_una`, marks newly SACKed data on the scoreboard, drops what
/// `ack` covers, and counts invalid blocks (`TcpExtTCPSACKDiscard`,
/// `TcpExtTCPDSACKIgnoredOld`, `TcpExtTCPDSACKIgnoredNoUndo`).
///
/// Reordering (`TcpExtTCPSACKReorder`, `tp->reordering` grown to its
/// distance) is data never sent twice that arrived after data above it:
/// - `tcp_sacktag_one`: newly SACKed below the highest SACKed segment, or
///   D-SACKed after being SACKed;
/// - `tcp_clean_rtx_queue`: cumulatively acknowledged without having been
///   SACKed, below where the highest SACKed segment ended before this ACK
///   (`prior_fack`).
pub fn tcp_sacktag(mib: &mut Mib, cb: &mut TcpCb, opts: &TcpOptions, prior_una: u32, ack: u32) -> SackTag {
    let mut tag = SackTag::default();
    if !cb.sack_ok {
        return tag;
    }
    tag.tsecr = super::ts_state::saw_tstamp(&cb.ts, opts.timestamp).map(|t| t.tsecr).filter(|&e| e != 0);
    let una = if after(ack, prior_una) { ack } else { prior_una };
    let prior_fack = cb.sack.highest_sack_seq();
    // The lowest sequence numbers showing reordering, SACKed and acknowledged.
    let mut sack_reord: Option<u32> = None;
    let mut ack_reord: Option<u32> = None;
    if after(ack, prior_una) {
        // The cumulatively acknowledged data that was not SACKed before.
        let mut cur = prior_una;
        let mut gap = |sb: &Scoreboard, tag: &mut SackTag, s: u32, e: u32| {
            tag.delivered.push(s, e);
            if ack_reord.is_none() {
                ack_reord = sb.first_never_retransmitted(s, e);
            }
        };
        for r in cb.sack.ranges() {
            if !before(r.left, ack) {
                break;
            }
            if before(cur, r.left) {
                gap(&cb.sack, &mut tag, cur, r.left);
            }
            if after(r.right, cur) {
                cur = r.right;
            }
        }
        if before(cur, ack) {
            gap(&cb.sack, &mut tag, cur, ack);
        }
    }
    tag.delivered.end_of_acked();
    let blocks = opts.sack_blocks();
    if !blocks.is_empty() {
        let found_dup = check_dsack(mib, cb, blocks, ack, prior_una);
        tag.dsack = found_dup;
        if found_dup {
            tag.dsack_end = Some(blocks[0].right);
        }
        let too_old = before(ack, prior_una.wrapping_sub(cb.max_window));
        // `packets_out` as it was before this ACK's cumulative part.
        if !too_old && cb.snd_max != prior_una {
            for (i, &b) in blocks.iter().enumerate() {
                let dup = i == 0 && found_dup;
                if !is_sackblock_valid(cb, una, dup, b.left, b.right) {
                    if dup {
                        if cb.sack.undo_marker.is_none() {
                            mib.TcpExtTCPDSACKIgnoredNoUndo += 1;
                        } else {
                            mib.TcpExtTCPDSACKIgnoredOld += 1;
                        }
                    } else {
                        // Old blocks on a reordered ACK are not counted.
                        if ack != una && !after(b.right, una) {
                            continue;
                        }
                        mib.TcpExtTCPSACKDiscard += 1;
                    }
                    continue;
                }
                if !after(b.right, prior_una) {
                    continue;
                }
                if dup {
                    // A D-SACK of data still outstanding (`tcp_sacktag_one`
                    // with `dup_sack`): a retransmission shown spurious; one
                    // SACKed before, reordering.
                    let segs = b.right.wrapping_sub(b.left).div_ceil(cb.mss.max(1)) as i32;
                    if cb.sack.surely_retransmitted(b.left) {
                        if let Some(undo) = cb.sack.undo_marker {
                            if cb.sack.undo_retrans > 0 && after(b.right, undo) {
                                cb.sack.undo_retrans = (cb.sack.undo_retrans - segs).max(0);
                            }
                        }
                        if cb.sack.holding(b.left).is_some() && sack_reord.is_none_or(|r| before(b.left, r)) {
                            sack_reord = Some(b.left);
                        }
                    }
                    continue;
                }
                let left = if before(b.left, una) { una } else { b.left };
                let block = SackBlock { left, right: b.right };
                // Blocks are taken in the order they came, not sorted as
                // Linux sorts them: the highest SACKed segment before this
                // ACK stands in for the one `tcp_sacktag_one` compares with.
                let fack = prior_fack;
                let Scoreboard { sacked, ever_retrans, .. } = &mut cb.sack;
                sacked.insert(block, Overflow::DropHighest, |s, e| {
                    tag.data_sacked = true;
                    tag.delivered.push(s, e);
                    if let Some(first) = ever_retrans.first_uncovered(s, e) {
                        if fack.is_some_and(|f| before(first, f)) && sack_reord.is_none_or(|r| before(first, r)) {
                            sack_reord = Some(first);
                        }
                    }
                });
            }
        }
    }
    tag.delivered.sort_sacked(prior_una);
    // tcp_sacktag_write_queue's check, against the highest SACKed now;
    // not after a timeout whose episode was undone (no `undo_marker`).
    let undo_or_not_loss = cb.ca_state != CaState::Loss || cb.sack.undo_marker.is_some();
    if let (Some(low), Some(fack), true) = (sack_reord, cb.sack.highest_sack_seq(), undo_or_not_loss) {
        check_sack_reordering(mib, cb, low, fack, false);
    }
    cb.sack.trim(una);
    // tcp_clean_rtx_queue's: a hole below `prior_fack` filled by data
    // never sent twice; `tcp_highest_sack_seq` is `snd_una` once nothing
    // is SACKed.
    if let (Some(low), Some(prior)) = (ack_reord, prior_fack) {
        if before(low, prior) {
            let fack = cb.sack.highest_sack_seq().unwrap_or(una);
            check_sack_reordering(mib, cb, low, fack, false);
        }
    }
    tag
}

/// `tcp_check_sack_reordering`: data from `low_seq` arrived after data at
/// `fack`; the reordering degree grows to cover the distance. Counted in
/// `TcpExtTCPTSReorder` when timestamps showed it (`ts`), else in
/// `TcpExtTCPSACKReorder`.
fn check_sack_reordering(mib: &mut Mib, cb: &mut TcpCb, low_seq: u32, fack: u32, ts: bool) {
    if !before(low_seq, fack) {
        return;
    }
    let mss = cb.mss.max(1);
    let metric = fack.wrapping_sub(low_seq);
    if metric > cb.sack.reordering.saturating_mul(mss) {
        cb.sack.reordering = metric.div_ceil(mss).min(TCP_MAX_REORDERING);
    }
    cb.sack.reord_seen += 1;
    if ts {
        mib.TcpExtTCPTSReorder += 1;
    } else {
        mib.TcpExtTCPSACKReorder += 1;
    }
}

/// A segment `[seq, end)` sent again at `tsnow` on our TSval clock (ms,
/// no offset) (`tcp_retransmit_skb`): counted in `undo_retrans` (from -1,
/// none yet, to 0 first), remembered as sent twice, and the first since
/// none was out stamps `retrans_stamp`.
pub fn on_retransmit(cb: &mut TcpCb, seq: u32, end: u32, tsnow: u32) {
    let sb = &mut cb.sack;
    if sb.retrans_stamp.is_none() {
        sb.retrans_stamp = Some(tsnow);
    }
    if sb.undo_marker.is_some() {
        if sb.undo_retrans < 0 {
            sb.undo_retrans = 0;
        }
        sb.undo_retrans += end.wrapping_sub(seq).div_ceil(cb.mss.max(1)).max(1) as i32;
    }
    if cb.sack_ok {
        sb.mark_retransmitted(seq, end);
    }
}

/// `tcp_init_undo`: an undo episode starts at `snd_una`. A loss probe of
/// data sent before (`tlp_retrans`) still out counts as one of its
/// retransmissions (Linux since "tcp: fix incorrect undo caused by DSACK of
/// TLP retransmit", v6.10): its D-SACK shows the probe spurious, not the
/// episode's retransmissions. Not copied: Linux counts the retransmissions
/// still out from before (`retrans_out`) too.
fn init_undo(cb: &mut TcpCb) {
    cb.sack.undo_marker = Some(cb.snd_una);
    let tlp_out = cb.rack.tlp_high_seq.is_some() && cb.rack.tlp_retrans;
    cb.sack.undo_retrans = if tlp_out { 1 } else { -1 };
}

/// `tcp_current_ssthresh`: the threshold an undo may restore.
fn current_ssthresh(cb: &TcpCb) -> u32 {
    if cb.ca_state == CaState::Recovery {
        cb.ssthresh
    } else {
        cb.ssthresh.max(cb.cwnd / 2 + cb.cwnd / 4)
    }
}

/// `tcp_retrans_stamp_cleanup`: no retransmission out any more, so the
/// next one starts the clock again.
fn retrans_stamp_cleanup(cb: &mut TcpCb) {
    if !cb.sack.any_retrans_done(cb.snd_una) {
        cb.sack.retrans_stamp = None;
    }
}

/// `tcp_packet_delayed`: the ACK echoes a TSval sent before the first
/// retransmission (RFC 3522, the Eifel detection: the original arrived,
/// not the copy), or nothing was sent again at all.
fn packet_delayed(cb: &TcpCb, tag: &SackTag) -> bool {
    match cb.sack.retrans_stamp {
        Some(stamp) => tag.tsecr.is_some_and(|e| before(e, stamp)),
        None => true,
    }
}

/// The D-SACK half of `tcp_may_undo` (`tcp_try_undo_dsack`'s test): an
/// episode whose retransmissions the peer all D-SACKed.
fn may_undo_dsack(cb: &TcpCb) -> bool {
    cb.sack.undo_marker.is_some() && cb.sack.undo_retrans == 0
}

/// `tcp_may_undo`: an episode whose retransmissions the peer all D-SACKed,
/// or whose ACK shows the original transmission arrived ([`packet_delayed`]).
fn may_undo(cb: &TcpCb, tag: &SackTag) -> bool {
    cb.sack.undo_marker.is_some() && (cb.sack.undo_retrans == 0 || packet_delayed(cb, tag))
}

/// `tcp_undo_cwnd_reduction`: the window and threshold as they were before
/// the episode (`tcp_reno_undo_cwnd`, which CUBIC uses too).
fn undo_cwnd_reduction(cb: &mut TcpCb) {
    if cb.sack.prior_ssthresh != 0 {
        cb.cwnd = cb.cwnd.max(cb.sack.prior_cwnd);
        if cb.sack.prior_ssthresh > cb.ssthresh {
            cb.ssthresh = cb.sack.prior_ssthresh;
        }
    }
    cb.sack.undo_marker = None;
    // The lost marks go with the reduction (`TCPCB_LOST` cleared, `lost_out` 0).
    cb.sack.lost_end = cb.snd_una;
    cb.rack.trim_relost(None);
}

/// `tcp_try_undo_loss`: the timeout undone, because every retransmission
/// was shown spurious (`tcp_may_undo`) or F-RTO saw data never sent again
/// acknowledged (`frto`, counted in `TcpExtTCPSpuriousRTOs` too): the
/// window as before (`TcpExtTCPLossUndo`), the Open state, and sending
/// resumes after the highest sent (the data marked lost is not).
fn try_undo_loss(mib: &mut Mib, cb: &mut TcpCb, frto: bool) {
    undo_cwnd_reduction(cb);
    mib.TcpExtTCPLossUndo += 1;
    if frto {
        mib.TcpExtTCPSpuriousRTOs += 1;
    }
    cb.retransmits = 0;
    cb.ca_state = CaState::Open;
    cb.dupacks = 0;
    cb.frto = false;
    cb.frto_gap = None;
    cb.snd_nxt = cb.snd_max;
}

/// `FLAG_ORIG_SACK_ACKED` during F-RTO: the ACK delivered (cumulatively or
/// by SACK) data up to `high_seq` that was never sent again since the
/// timeout (above `loss_rexmit_hi`).
fn frto_orig_acked(cb: &TcpCb, tag: &SackTag) -> bool {
    let (lo, hi) = (cb.loss_rexmit_hi, cb.high_seq);
    tag.delivered.ranges().iter().any(|&(s, e)| {
        let from = if after(s, lo) { s } else { lo };
        let to = if before(e, hi) { e } else { hi };
        after(to, from)
    })
}

/// `tcp_try_undo_dsack`: every retransmission of the episode D-SACKed.
fn try_undo_dsack(mib: &mut Mib, cb: &mut TcpCb) -> bool {
    if may_undo_dsack(cb) {
        undo_cwnd_reduction(cb);
        mib.TcpExtTCPDSACKUndo += 1;
        return true;
    }
    false
}

/// `tcp_try_undo_partial`: an ACK in recovery that moves `snd_una` but not
/// to `high_seq`, and echoes a TSval from before the first retransmission:
/// the hole was filled by the original, late. Reordering, by timestamps
/// (`TcpExtTCPTSReorder`); with no retransmission left out the reduction is
/// undone (`TcpExtTCPPartialUndo`) and the state is Open again. Returns
/// whether this ACK is to do nothing more (retransmissions still out: send
/// new data, mark nothing lost, retransmit nothing).
fn try_undo_partial(mib: &mut Mib, cb: &mut TcpCb, tag: &SackTag, prior_una: u32) -> bool {
    if cb.sack.undo_marker.is_none() || !packet_delayed(cb, tag) {
        return false;
    }
    let fack = cb.sack.highest_sack_seq().unwrap_or(cb.snd_una);
    check_sack_reordering(mib, cb, prior_una, fack, true);
    if cb.sack.retrans_out() {
        return true;
    }
    retrans_stamp_cleanup(cb);
    undo_cwnd_reduction(cb);
    mib.TcpExtTCPPartialUndo += 1;
    // tcp_try_keep_open.
    cb.ca_state = CaState::Open;
    cb.dupacks = 0;
    false
}

/// `tcp_try_undo_recovery`, when `high_seq` is acknowledged: undo if the
/// peer showed every retransmission spurious or the ACK echoes the original
/// ([`may_undo`]; `TcpExtTCPFullUndo`, or `TcpExtTCPLossUndo` after a
/// timeout); back to Open either way. Returns whether it undid.
fn try_undo_recovery(mib: &mut Mib, cb: &mut TcpCb, tag: &SackTag) -> bool {
    let undone = may_undo(cb, tag);
    if !undone {
        // A recovery that was real: one fewer that keeps a widened window.
        cb.rack.reo_wnd_persist = cb.rack.reo_wnd_persist.saturating_sub(1);
    }
    if undone {
        undo_cwnd_reduction(cb);
        if cb.ca_state == CaState::Loss {
            mib.TcpExtTCPLossUndo += 1;
        } else {
            mib.TcpExtTCPFullUndo += 1;
        }
    }
    undone
}

/// `tcp_enter_loss`'s part of the scoreboard, before the window drops: an
/// undo episode starts (unless recovery was under way); a SACKed head means
/// the peer reneged (`TcpExtTCPSACKReneging`): the scoreboard is forgotten.
/// Otherwise SACKed data stays SACKed and is not sent again.
pub fn enter_loss(mib: &mut Mib, cb: &mut TcpCb) {
    if !cb.sack_ok {
        return;
    }
    let new_episode = cb.ca_state == CaState::Open
        || !before(cb.snd_una, cb.high_seq)
        || (cb.ca_state == CaState::Loss && cb.retransmits == 0);
    if new_episode {
        cb.sack.prior_ssthresh = current_ssthresh(cb);
        cb.sack.prior_cwnd = cb.cwnd;
        init_undo(cb);
    }
    if cb.sack.holding(cb.snd_una).is_some() {
        mib.TcpExtTCPSACKReneging += 1;
        cb.sack.clear();
    }
    cb.sack.lost_end = cb.snd_max;
    cb.sack.high_rxt = cb.snd_una;
    // Everything is lost and sent again from `snd_una`; the probe and
    // reordering timers give way to the RTO (`tlp_high_seq` = 0 in
    // `tcp_retransmit_timer`).
    cb.rack.trim_relost(None);
    cb.rack.tlp_high_seq = None;
    cb.rack.tlp_at = None;
    cb.rack.reo_at = None;
}

/// `tcp_enter_recovery` with SACK: ssthresh from the algorithm and PRR's
/// counts from zero (`tcp_init_cwnd_reduction`; cwnd then follows
/// [`super::prr::tcp_cwnd_reduction`] ACK by ACK), `RecoveryPoint` =
/// `high_seq`; counts `TcpExtTCPSackRecovery`. The lost marks are kept, and
/// so are the marks of retransmissions still out (`high_rxt`).
pub fn enter_recovery(mib: &mut Mib, cb: &mut TcpCb) {
    // The clock starts with this fast retransmission, for undo.
    retrans_stamp_cleanup(cb);
    mib.TcpExtTCPSackRecovery += 1;
    cb.sack.prior_ssthresh = current_ssthresh(cb);
    cb.sack.prior_cwnd = cb.cwnd;
    init_undo(cb);
    super::prr::tcp_init_cwnd_reduction(cb);
    // A retransmission an earlier recovery left on its way keeps its mark
    // (Linux's `TCPCB_SACKED_RETRANS` outlives the episode): it is not sent
    // again unless RACK finds it lost.
    if !after(cb.sack.high_rxt, cb.snd_una) || after(cb.sack.high_rxt, cb.snd_max) {
        cb.sack.high_rxt = cb.snd_una;
    }
    if !after(cb.sack.lost_end, cb.snd_una) {
        cb.sack.lost_end = cb.snd_una;
    }
    cb.ca_state = CaState::Recovery;
    cb.rtt_probe = None;
}

/// `tcp_cong_control` in recovery: PRR sets cwnd for what this ACK
/// delivered (`tag.delivered`) and found lost (RACK's `newly_lost`).
pub fn prr_on_ack(cb: &mut TcpCb, tag: &SackTag, prior_una: u32) {
    if cb.ca_state != CaState::Recovery {
        return;
    }
    let mss = cb.mss.max(1);
    let in_flight = pipe(cb).div_ceil(mss);
    let delivered = tag.delivered.bytes().div_ceil(mss);
    let newly_lost = cb.rack.newly_lost;
    super::prr::tcp_cwnd_reduction(cb, in_flight, delivered, newly_lost, after(cb.snd_una, prior_una));
}

/// `tcp_update_scoreboard` → `tcp_mark_head_lost`: a hole with
/// `reordering` SACKed segments above it is lost; at the fast retransmit
/// the head is lost in any case.
fn update_scoreboard(cb: &mut TcpCb, fast_rexmit: bool) {
    let mss = cb.mss.max(1);
    let mut above = 0u32;
    let mut lost = None;
    for r in cb.sack.ranges().iter().rev() {
        above += r.right.wrapping_sub(r.left).div_ceil(mss);
        if above >= cb.sack.reordering {
            lost = Some(r.left);
            break;
        }
    }
    let mut end = lost.unwrap_or(cb.snd_una);
    if fast_rexmit && lost.is_none() {
        end = cb.snd_una.wrapping_add(mss).min_seq(cb.snd_max);
    }
    // Marks are kept through a recovery; outside one they are made afresh.
    if cb.ca_state != CaState::Recovery || after(end, cb.sack.lost_end) {
        cb.sack.lost_end = end;
    }
}

/// Sequence-space minimum.
trait MinSeq {
    fn min_seq(self, other: u32) -> u32;
}

impl MinSeq for u32 {
    fn min_seq(self, other: u32) -> u32 {
        if before(other, self) {
            other
        } else {
            self
        }
    }
}

/// `tcp_time_to_recover`: something is lost (`lost_out`); without RACK
/// also once `reordering` segments are SACKed (`tcp_dupack_heuristics`).
fn time_to_recover(cb: &TcpCb, rack: bool) -> bool {
    if rack {
        return super::rack::lost_out(cb);
    }
    after(cb.sack.lost_end, cb.snd_una) || cb.sack.sacked_out(cb.mss) >= cb.sack.reordering
}

/// `tcp_packets_in_flight` in bytes (RFC 6675's `pipe`): what was sent and
/// is neither acknowledged, SACKed, nor lost without a retransmission.
pub fn pipe(cb: &TcpCb) -> u32 {
    let (una, nxt) = (cb.snd_una, cb.snd_nxt);
    let mut p = nxt.wrapping_sub(una);
    if let Some((a, b)) = cb.frto_gap {
        // F-RTO's skipped old data is lost, not in flight.
        let from = if after(a, una) { a } else { una };
        if after(b, from) {
            p = p.saturating_sub(b.wrapping_sub(from).saturating_sub(cb.sack.sacked_in(from, b)));
        }
    }
    if !cb.sack_ok || (cb.sack.ranges().is_empty() && cb.ca_state != CaState::Recovery && cb.rack.relost().is_empty()) {
        return p;
    }
    p = p.saturating_sub(cb.sack.sacked_in(una, nxt));
    if cb.ca_state == CaState::Recovery {
        let from = if after(cb.sack.high_rxt, una) { cb.sack.high_rxt } else { una };
        let to = cb.sack.lost_end.min_seq(nxt);
        if after(to, from) {
            p = p.saturating_sub(to.wrapping_sub(from).saturating_sub(cb.sack.sacked_in(from, to)));
        }
    }
    // Retransmissions RACK found lost again are not in flight either.
    for &(s, e) in cb.rack.relost() {
        p = p.saturating_sub(e.wrapping_sub(s).saturating_sub(cb.sack.sacked_in(s, e)));
    }
    p
}

/// For the sender sending again from `snd_nxt` after a timeout: steps over
/// data the peer SACKed (`tcp_xmit_retransmit_queue` skips it).
pub fn skip_sacked(cb: &mut TcpCb) {
    while before(cb.snd_nxt, cb.snd_max) {
        match cb.sack.holding(cb.snd_nxt) {
            Some(r) => cb.snd_nxt = r.right.min_seq(cb.snd_max),
            None => break,
        }
    }
}

/// How far a segment sent again from `seq` may reach before SACKed data
/// (`u32::MAX`: no limit).
pub fn room_before_sacked(cb: &TcpCb, seq: u32) -> u32 {
    if !before(seq, cb.snd_max) {
        return u32::MAX;
    }
    cb.sack.next_after(seq).map_or(u32::MAX, |r| r.left.wrapping_sub(seq))
}

/// `tcp_fastretrans_alert` for a SACK connection, after `tcp_sacktag`
/// and the cumulative ACK (`snd_una` already moved from `prior_una`):
/// reneging, the end of recovery or loss with its undo, a D-SACK undo,
/// marking what is lost (RACK, or the duplicate-ACK threshold with
/// `tcp_recovery=0`), entering recovery. Returns whether lost data is to
/// be retransmitted now (`output::tcp_xmit_retransmit_queue`), and whether
/// the first goes whatever the pipe (`Some(true)`: the fast retransmit);
/// `None` when nothing is to be sent.
pub fn fastretrans_alert(
    net: &mut Net,
    cb: &mut TcpCb,
    prior_una: u32,
    tag: &SackTag,
    dupack: bool,
    now: Instant,
) -> Option<bool> {
    let rack = net.tcp.rack();
    let una_advanced = after(cb.snd_una, prior_una);
    // tcp_check_sack_reneging: the new head is SACKed; give the peer a
    // moment (srtt/2, at least 10 ms) before the timeout sends it again.
    if una_advanced && cb.sack.holding(cb.snd_una).is_some() {
        let delay = Duration::from_micros(u64::from(cb.srtt_us / 2)).max(Duration::from_millis(10));
        cb.rto_at = Some(now + delay);
        return None;
    }
    let mut fast_rexmit = false;
    // D. The state ends when high_seq is acknowledged.
    if cb.ca_state == CaState::Recovery && !before(cb.snd_una, cb.high_seq) {
        if !try_undo_recovery(&mut net.mib, cb, tag) {
            super::cong::exit_recovery(cb);
        }
        cb.ca_state = CaState::Open;
    }
    match cb.ca_state {
        CaState::Recovery => {
            if una_advanced && try_undo_partial(&mut net.mib, cb, tag, prior_una) {
                return None;
            }
            if try_undo_dsack(&mut net.mib, cb) {
                // tcp_try_to_open.
                cb.ca_state = CaState::Open;
                cb.dupacks = 0;
            }
            if rack {
                super::rack::tcp_rack_mark_lost(&mut net.mib, cb, now, net.tcp.hz);
            }
            if cb.ca_state != CaState::Recovery {
                if !rack {
                    update_scoreboard(cb, false);
                }
                if !time_to_recover(cb, rack) {
                    return None;
                }
                enter_recovery(&mut net.mib, cb);
                fast_rexmit = true;
            }
        }
        CaState::Loss => {
            // tcp_process_loss.
            let recovered = !before(cb.snd_una, cb.high_seq);
            if una_advanced && may_undo(cb, tag) {
                try_undo_loss(&mut net.mib, cb, false);
                return None;
            }
            if cb.frto {
                // F-RTO (RFC 5682 §3.1, SACK-enhanced). Step 3b: data never
                // sent again is (S)ACKed: the timeout was spurious.
                if frto_orig_acked(cb, tag) {
                    try_undo_loss(&mut net.mib, cb, true);
                    return None;
                }
                if after(cb.snd_max, cb.high_seq) {
                    // Step 3a: the new data is SACKed or duplicate ACKs
                    // come: the loss was real; the old data goes again.
                    if tag.data_sacked || dupack {
                        cb.frto = false;
                        if let Some((from, _)) = cb.frto_gap.take() {
                            cb.snd_nxt = from;
                        }
                    }
                } else if una_advanced && !recovered {
                    cb.high_seq = cb.snd_max;
                    // Step 2b: new data (as much as cwnd allows, once the ACK
                    // has grown it) instead of old, if there is any and the
                    // window takes it; else the conventional recovery.
                    let wnd_end = cb.snd_una.wrapping_add(cb.snd_wnd);
                    if before(cb.snd_max, cb.write_seq()) && after(wnd_end, cb.snd_max) {
                        if before(cb.snd_nxt, cb.snd_max) {
                            cb.frto_gap = Some((cb.snd_nxt, cb.snd_max));
                            cb.snd_nxt = cb.snd_max;
                        }
                        return None;
                    }
                    cb.frto = false;
                }
            }
            if recovered {
                // RFC 5682 step 2a and the first part of 3a.
                try_undo_recovery(&mut net.mib, cb, tag);
                super::cong::exit_recovery(cb);
                cb.frto = false;
                cb.frto_gap = None;
                return None;
            }
            // tcp_identify_packet_loss: a retransmission sent after the
            // timeout and lost again is sent once more, not left to the
            // next timeout.
            if rack {
                super::rack::tcp_rack_mark_lost(&mut net.mib, cb, now, net.tcp.hz);
                if !cb.rack.relost().is_empty() {
                    return Some(false);
                }
            }
            return None;
        }
        CaState::Open => {
            // No episode under way: the next retransmission starts the clock.
            retrans_stamp_cleanup(cb);
            try_undo_dsack(&mut net.mib, cb);
            if rack {
                super::rack::tcp_rack_mark_lost(&mut net.mib, cb, now, net.tcp.hz);
            } else {
                update_scoreboard(cb, false);
            }
            if !time_to_recover(cb, rack) {
                return None;
            }
            enter_recovery(&mut net.mib, cb);
            fast_rexmit = true;
        }
    }
    if !rack {
        update_scoreboard(cb, fast_rexmit);
    }
    Some(fast_rexmit)
}

/// `tcp_dsack_set`: our next segment reports `[seq, end)` as a duplicate
/// (`TcpExtTCPDSACKOldSent` below `rcv_nxt`, else `TcpExtTCPDSACKOfoSent`).
pub fn dsack_set(mib: &mut Mib, cb: &mut TcpCb, seq: u32, end: u32) {
    if !cb.sack_ok {
        return;
    }
    if before(seq, cb.rcv_nxt) {
        mib.TcpExtTCPDSACKOldSent += 1;
    } else {
        mib.TcpExtTCPDSACKOfoSent += 1;
    }
    cb.sack.dsack_out = Some(SackBlock { left: seq, right: end });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(ranges: &[(u32, u32)]) -> Scoreboard {
        let mut s = Scoreboard::default();
        for &(l, r) in ranges {
            s.sacked.insert(SackBlock { left: l, right: r }, Overflow::DropHighest, |_, _| {});
        }
        s
    }

    fn pairs(s: &Scoreboard) -> Vec<(u32, u32)> {
        s.ranges().iter().map(|r| (r.left, r.right)).collect()
    }

    #[test]
    fn ranges_merge_and_report_only_new_parts() {
        let mut s = sb(&[(100, 200), (300, 400)]);
        let mut newly = Vec::new();
        s.sacked.insert(SackBlock { left: 150, right: 350 }, Overflow::DropHighest, |a, b| newly.push((a, b)));
        assert_eq!(newly, vec![(200, 300)]);
        assert_eq!(pairs(&s), vec![(100, 400)]);
        s.sacked.insert(SackBlock { left: 500, right: 600 }, Overflow::DropHighest, |_, _| {});
        s.sacked.insert(SackBlock { left: 450, right: 470 }, Overflow::DropHighest, |_, _| {});
        assert_eq!(pairs(&s), vec![(100, 400), (450, 470), (500, 600)]);
        s.sacked.insert(SackBlock { left: 400, right: 450 }, Overflow::DropHighest, |_, _| {});
        assert_eq!(pairs(&s), vec![(100, 470), (500, 600)]);
        assert_eq!(s.sacked_in(0, 1000), 470);
        assert_eq!(s.sacked_in(120, 520), 370);
        s.trim(160);
        assert_eq!(pairs(&s), vec![(160, 470), (500, 600)]);
        s.trim(700);
        assert!(s.ranges().is_empty());
    }

    #[test]
    fn a_full_scoreboard_gives_up_its_highest_ranges() {
        let mut s = Scoreboard::default();
        for i in 0..SACK_RANGES as u32 + 5 {
            s.sacked.insert(SackBlock { left: 10 * i + 1000, right: 10 * i + 1005 }, Overflow::DropHighest, |_, _| {});
        }
        assert_eq!(s.ranges().len(), SACK_RANGES);
        // A lower block still goes in; the highest gives way.
        s.sacked.insert(SackBlock { left: 10, right: 20 }, Overflow::DropHighest, |_, _| {});
        assert_eq!(s.ranges().len(), SACK_RANGES);
        assert_eq!(s.ranges()[0], SackBlock { left: 10, right: 20 });
        assert_eq!(s.ranges().last().unwrap().left, 1000 + 10 * (SACK_RANGES as u32 - 2));
    }

    #[test]
    fn a_full_scoreboard_keeps_a_block_just_below_its_highest() {
        let mut s = Scoreboard::default();
        for i in 0..SACK_RANGES as u32 {
            s.sacked.insert(SackBlock { left: 10 * i + 1000, right: 10 * i + 1005 }, Overflow::DropHighest, |_, _| {});
        }
        // A block between the two highest ranges: the highest gives way to
        // it, and what `newly` reported SACKed is on the scoreboard.
        let top = 1000 + 10 * (SACK_RANGES as u32 - 1);
        let mut newly = Vec::new();
        s.sacked.insert(SackBlock { left: top - 4, right: top - 2 }, Overflow::DropHighest, |a, b| newly.push((a, b)));
        assert_eq!(newly, vec![(top - 4, top - 2)]);
        assert_eq!(s.ranges().len(), SACK_RANGES);
        assert_eq!(s.sacked_in(top - 4, top - 2), 2);
        // The same block again is nothing new (no second delivery).
        let mut again = Vec::new();
        s.sacked.insert(SackBlock { left: top - 4, right: top - 2 }, Overflow::DropHighest, |a, b| again.push((a, b)));
        assert!(again.is_empty(), "reported newly SACKed twice: {again:?}");
    }

    /// A CUBIC connection with SACK, `snd_una` 1000 and `n` segments of
    /// `cb.mss` sent; `seg(i)` is where segment `i` starts.
    fn sack_conn(n: u32) -> (TcpCb, Mib, impl Fn(u32) -> u32) {
        let mut cb = TcpCb::for_tests(crate::stream::CongAlgo::Cubic);
        let (mss, una) = (cb.mss, 1000u32);
        let seg = move |i: u32| una.wrapping_add(i * mss);
        cb.sack_ok = true;
        cb.snd_una = una;
        cb.snd_nxt = seg(n);
        cb.snd_max = seg(n);
        (cb, Mib::default(), seg)
    }

    #[test]
    fn a_dsack_of_data_never_sent_twice_takes_nothing_off_undo_retrans() {
        // tcp_sacktag_one counts a D-SACK against `undo_retrans` only for
        // an skb with TCPCB_RETRANS. 33 segments retransmitted one apart
        // fill the 32 ranges, the last joins the highest across the gap;
        // the network then duplicates segment 63, never sent twice, and
        // the peer D-SACKs it (RFC 2883 §4.2). Counting it would let a
        // duplicated original undo the reduction of a real loss.
        let (mut cb, mut mib, seg) = sack_conn(100);
        let una = cb.snd_una;
        cb.max_window = 1 << 20;
        cb.sack.undo_marker = Some(una);
        for i in 0..33 {
            on_retransmit(&mut cb, seg(2 * i), seg(2 * i + 1), 1);
        }
        cb.total_retrans = 33;
        assert_eq!(cb.sack.undo_retrans, 33);
        let dup = SackBlock { left: seg(63), right: seg(64) };
        let none = SackBlock::default();
        let opts = TcpOptions { sack_len: 2, sack_blocks: [dup, dup, none, none], ..TcpOptions::default() };
        let tag = tcp_sacktag(&mut mib, &mut cb, &opts, una, una);
        assert!(tag.dsack);
        assert_eq!(mib.TcpExtTCPDSACKOfoRecv, 1);
        assert_eq!(cb.sack.undo_retrans, 33, "segment 63 was never retransmitted");
    }

    #[test]
    fn a_full_set_of_retransmitted_ranges_widens_rather_than_forgets() {
        let mut s = Scoreboard::default();
        for i in 0..SACK_RANGES as u32 {
            s.mark_retransmitted(100 * i + 1000, 100 * i + 1010);
        }
        // A new range between two: it joins the one above, the gap with it.
        s.mark_retransmitted(1050, 1060);
        assert_eq!(s.ever_retrans.as_slice().len(), SACK_RANGES);
        assert!(s.ever_retransmitted(1050) && s.ever_retransmitted(1099) && !s.ever_retransmitted(1020));
        // Above everything: the highest range grows to it.
        let top = 100 * (SACK_RANGES as u32 - 1) + 1000;
        s.mark_retransmitted(top + 500, top + 510);
        assert!(s.ever_retransmitted(top + 200) && s.ever_retransmitted(top + 505));
        // Below everything: the lowest grows down to it.
        s.mark_retransmitted(900, 910);
        assert!(s.ever_retransmitted(950) && !s.ever_retransmitted(899));
        assert_eq!(s.ever_retrans.as_slice().len(), SACK_RANGES);
    }

    #[test]
    fn the_first_byte_never_sent_twice() {
        let mut s = Scoreboard::default();
        s.mark_retransmitted(100, 200);
        s.mark_retransmitted(300, 400);
        assert_eq!(s.first_never_retransmitted(100, 200), None);
        assert_eq!(s.first_never_retransmitted(100, 250), Some(200));
        assert_eq!(s.first_never_retransmitted(50, 250), Some(50));
        assert_eq!(s.first_never_retransmitted(150, 400), Some(200));
        assert_eq!(s.first_never_retransmitted(300, 400), None);
        s.trim(350);
        assert_eq!(s.first_never_retransmitted(350, 500), Some(400));
        assert!(!s.ever_retransmitted(150));
    }

    /// `high_rxt` outlives a recovery (the retransmissions still out keep
    /// their marks), so it must never fall behind `snd_una` by more than an
    /// ACK's worth: 4 GiB after the recovery that set it, a stale value
    /// would read as inside the flight again and hide lost data from the
    /// next recovery (not sent, and counted in the pipe).
    #[test]
    fn high_rxt_follows_snd_una_so_it_never_reads_as_out_4_gib_later() {
        let (mut cb, mut mib, seg) = sack_conn(10);
        let mss = cb.mss;
        // A recovery ended with 0 .. 3 retransmitted; their ACKs come, and 4 GiB more.
        cb.sack.high_rxt = seg(3);
        let now = std::time::Instant::now();
        let ack = |cb: &mut TcpCb, to: u32| {
            cb.snd_una = to;
            cb.snd_nxt = to.wrapping_add(10 * mss);
            cb.snd_max = cb.snd_nxt;
            let clock = super::super::ts_state::TsClock::new(now, super::super::ts_state::TcpTimestamps::On);
            super::super::rack::tcp_rack_update(
                cb,
                &super::super::rack_state::Delivered::default(),
                None,
                &clock,
                now,
                1000,
            );
        };
        ack(&mut cb, seg(5));
        let mut at = seg(5);
        for step in [1u32 << 30, 1 << 30, 1 << 30, (1 << 30) - 4 * mss] {
            at = at.wrapping_add(step);
            ack(&mut cb, at);
        }
        // 2³² - 4 segments on: snd_una is segment 1's number again, and 3 is in flight.
        assert_eq!(cb.snd_una, seg(1));
        // RACK finds the head lost: the next recovery sends it, and it is not in the pipe.
        cb.sack.lost_end = seg(2);
        enter_recovery(&mut mib, &mut cb);
        assert_eq!(cb.sack.high_rxt, cb.snd_una, "the head is to be sent again");
        assert_eq!(pipe(&cb), 9 * mss, "the lost head is not in flight");
    }

    #[test]
    fn ranges_wrap_around_sequence_zero() {
        let s = sb(&[(u32::MAX - 100, 50), (100, 200)]);
        assert_eq!(pairs(&s), vec![(u32::MAX - 100, 50), (100, 200)]);
        assert_eq!(s.sacked_in(u32::MAX - 200, 300), 251);
    }
}
