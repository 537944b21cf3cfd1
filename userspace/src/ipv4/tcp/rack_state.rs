//! The state RACK-TLP (RFC 8985) and PRR (RFC 6937) keep per connection, as
//! `struct tcp_sock` keeps it (`tp->rack`, `tlp_high_seq`, `prr_delivered`,
//! `prr_out`) and as the skbs of the write queue keep their send times
//! (`tsorted_sent_queue`, `skb->skb_mstamp_ns`, `TCPCB_RETRANS`): a
//! transmit log in send order, in a fixed-capacity ring made with the
//! connection. A data structure of its own, so that the control block
//! (`cb.rs`) holds one without depending on the algorithms in
//! [`super::rack`] and [`super::prr`].

use std::collections::VecDeque;
use std::time::Instant;

use super::scoreboard::SACK_RANGES;
use super::{after, before};

/// Records the transmit log holds. Segments sent at the same instant one
/// after the other share a record, so a bulk sender needs about one per
/// ACK in flight; when the log is full a new original segment joins the
/// newest record (its data then looks sent later than it was: RACK marks it
/// lost later, never sooner, and its RTT samples count from its first
/// data's departure, [`TxRecord::stretch_us`], so they are never shorter
/// either) if that record is an original one ending where it starts, else
/// it goes unrecorded, as a retransmission does then (joined to a later
/// retransmission's record it would look sent before it; the RTO still
/// covers what is unrecorded).
pub const TX_LOG_LEN: usize = 512;

/// Retransmissions RACK may hold as lost again at once (`TCPCB_LOST` on a
/// retransmitted skb); more wait for the RTO.
pub const RELOST_LEN: usize = 16;

/// Ranges one ACK may report cumulatively acknowledged: the holes below
/// the ACK between the ranges SACKed before it, of which the scoreboard
/// keeps at most [`SACK_RANGES`], so one more than that always has room.
pub const DELIVERED_ACKED_LEN: usize = SACK_RANGES + 1;

/// Ranges one ACK may report newly SACKed (left out past that; see
/// [`Delivered::push`]): its at most four blocks, split where data inside
/// them was SACKed before.
pub const DELIVERED_SACKED_LEN: usize = 8;

const DELIVERED_LEN: usize = DELIVERED_ACKED_LEN + DELIVERED_SACKED_LEN;

/// One transmission: `[seq, end)` left at `sent`; `retrans` when it was
/// data sent before (`TCPCB_RETRANS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRecord {
    /// First sequence number.
    pub seq: u32,
    /// Sequence number after the last.
    pub end: u32,
    /// When it left (`skb_mstamp_ns`).
    pub sent: Instant,
    /// Its place in the connection's send order: records later in the log
    /// have larger ones. Linux's send times are its clock's at each
    /// transmission, so two transmissions made for two ACKs, or a
    /// retransmission and the new data sent after it, never share one;
    /// xsknet's are one per poll, shared by everything a poll sends, and
    /// the order tells which of those went first (what `sent` alone would
    /// leave to the sequence numbers, as `tcp_rack_sent_after` does for the
    /// segments of one skb).
    pub order: u64,
    /// How long before `sent` its first data left, µs: nonzero once new
    /// data joined it in a later poll (the log was full) and `sent` moved
    /// on. An RTT sample of the record counts from its first data's
    /// departure, so that the move makes RACK's RTT longer, never shorter.
    pub stretch_us: u32,
    /// A retransmission.
    pub retrans: bool,
}

/// The data in flight in the order it was (last) sent: Linux's
/// `tsorted_sent_queue`. A retransmission takes its data out of the older
/// records and goes last.
#[derive(Debug)]
pub struct TxLog {
    recs: VecDeque<TxRecord>,
    /// The next record's [`TxRecord::order`].
    next_order: u64,
    /// Retransmission records in `recs`: none means the log is also in
    /// sequence order.
    retrans: usize,
}

impl Default for TxLog {
    fn default() -> TxLog {
        TxLog { recs: VecDeque::with_capacity(TX_LOG_LEN), next_order: 0, retrans: 0 }
    }
}

impl TxLog {
    /// The records, oldest transmission first.
    pub fn records(&self) -> impl Iterator<Item = &TxRecord> {
        self.recs.iter()
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Whether every record is an original transmission (the log is then
    /// in sequence order too).
    pub fn in_seq_order(&self) -> bool {
        self.retrans == 0
    }

    /// Forgets everything (the connection's send side is over).
    pub fn clear(&mut self) {
        self.recs.clear();
        self.retrans = 0;
    }

    /// `[seq, end)` left at `now` (`tcp_update_skb_after_send`: the skb's
    /// stamp, moved to the tail of the sorted queue).
    pub fn sent(&mut self, seq: u32, end: u32, now: Instant, retrans: bool) {
        if !before(seq, end) {
            return;
        }
        if retrans {
            self.take_out(seq, end);
        } else {
            let full = self.recs.len() == TX_LOG_LEN;
            if let Some(last) = self.recs.back_mut().filter(|l| !l.retrans && l.end == seq && (l.sent == now || full)) {
                let moved = now.saturating_duration_since(last.sent).as_micros().min(u128::from(u32::MAX)) as u32;
                last.stretch_us = last.stretch_us.saturating_add(moved);
                last.end = end;
                last.sent = now;
                return;
            }
        }
        if self.recs.len() == TX_LOG_LEN {
            return;
        }
        if retrans {
            self.retrans += 1;
        }
        let order = self.next_order;
        self.next_order += 1;
        self.recs.push_back(TxRecord { seq, end, sent: now, order, stretch_us: 0, retrans });
    }

    /// Takes `[seq, end)` out of every record (sent again, or marked lost):
    /// a record it covers goes; one it overlaps keeps the part below `seq`,
    /// or, when that is empty, the part above `end`.
    pub fn take_out(&mut self, seq: u32, end: u32) {
        let mut removed_retrans = 0;
        self.recs.retain_mut(|r| {
            if !before(r.seq, end) || !after(r.end, seq) {
                return true;
            }
            if before(r.seq, seq) {
                r.end = seq;
                return true;
            }
            if after(r.end, end) {
                r.seq = end;
                return true;
            }
            removed_retrans += usize::from(r.retrans);
            false
        });
        self.retrans -= removed_retrans;
    }

    /// Drops what `una` acknowledges (`tcp_clean_rtx_queue`).
    pub fn acked(&mut self, una: u32) {
        if self.retrans == 0 {
            while let Some(r) = self.recs.front_mut() {
                if after(r.end, una) {
                    if before(r.seq, una) {
                        r.seq = una;
                    }
                    return;
                }
                self.recs.pop_front();
            }
            return;
        }
        let mut removed_retrans = 0;
        self.recs.retain_mut(|r| {
            if after(r.end, una) {
                if before(r.seq, una) {
                    r.seq = una;
                }
                return true;
            }
            removed_retrans += usize::from(r.retrans);
            false
        });
        self.retrans -= removed_retrans;
    }

    /// Removes the record at `i`.
    pub(super) fn remove(&mut self, i: usize) {
        if let Some(r) = self.recs.remove(i) {
            self.retrans -= usize::from(r.retrans);
        }
    }

    /// The record at `i`.
    pub(super) fn get(&self, i: usize) -> Option<TxRecord> {
        self.recs.get(i).copied()
    }

    /// The first record (in send order) at `i` or later that may overlap
    /// `seq` onwards: in a log in sequence order, found by bisection.
    pub(super) fn first_overlapping(&self, seq: u32) -> usize {
        if self.retrans == 0 {
            self.recs.partition_point(|r| !after(r.end, seq))
        } else {
            0
        }
    }
}

/// What one ACK delivered: the sequence ranges it newly SACKed and the
/// ones it acknowledged cumulatively that were not SACKed before (the skbs
/// `tcp_sacktag_one` and `tcp_clean_rtx_queue` hand to `tcp_rack_advance`),
/// and their bytes, counted exactly also when the ranges overflow.
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    ranges: [(u32, u32); DELIVERED_LEN],
    len: usize,
    /// How many of the ranges, the first ones, the cumulative ACK took.
    acked: usize,
    /// The cumulative part is over: ranges pushed now are newly SACKed.
    sacking: bool,
    /// Bytes pushed.
    bytes: u32,
}

impl Default for Delivered {
    fn default() -> Self {
        Delivered { ranges: [(0, 0); DELIVERED_LEN], len: 0, acked: 0, sacking: false, bytes: 0 }
    }
}

impl Delivered {
    /// Adds `[seq, end)`. Its bytes always count ([`Self::bytes`]); the
    /// range may not be kept. The cumulatively acknowledged ranges, the
    /// holes the ACK filled, all have room ([`DELIVERED_ACKED_LEN`]), so
    /// data SACKed before, which lies between them, never counts as
    /// delivered again (`tcp_clean_rtx_queue` skips a `TCPCB_SACKED_ACKED`
    /// skb); should more come, the last widens over them. A newly SACKed
    /// range that finds no room is left out rather than merged with another,
    /// which would take the hole between them, data not delivered, for
    /// delivered (RACK would advance on it): RACK then misses it, never
    /// learns of what did not arrive. The SACK option's first block, the
    /// most recent data (RFC 2018 §4), comes first.
    pub fn push(&mut self, seq: u32, end: u32) {
        if !before(seq, end) {
            return;
        }
        self.bytes = self.bytes.wrapping_add(end.wrapping_sub(seq));
        if self.sacking && self.len - self.acked == DELIVERED_SACKED_LEN {
            return;
        }
        if !self.sacking && self.len == DELIVERED_ACKED_LEN {
            let last = &mut self.ranges[self.len - 1];
            if before(seq, last.0) {
                last.0 = seq;
            }
            if after(end, last.1) {
                last.1 = end;
            }
            return;
        }
        self.ranges[self.len] = (seq, end);
        self.len += 1;
    }

    /// The ranges pushed so far are the cumulatively acknowledged ones;
    /// those pushed after are newly SACKed.
    pub fn end_of_acked(&mut self) {
        self.acked = self.len;
        self.sacking = true;
    }

    /// Orders the newly SACKed ranges by sequence number from `base` (at or
    /// below all of them: `snd_una` before the ACK), as
    /// `tcp_sacktag_write_queue` sorts the blocks before it walks them.
    pub fn sort_sacked(&mut self, base: u32) {
        let acked = self.acked.min(self.len);
        self.ranges[acked..self.len].sort_unstable_by_key(|&(s, _)| s.wrapping_sub(base));
    }

    /// The ranges in the order Linux hands their data to
    /// `tcp_rack_advance`: the newly SACKed (`tcp_sacktag_write_queue`),
    /// then the cumulatively acknowledged (`tcp_clean_rtx_queue`, which
    /// `tcp_ack` calls after the SACK tagging). The last call sets RACK's RTT.
    /// Each with whether the cumulative ACK took it.
    pub fn in_rack_order(&self) -> impl Iterator<Item = (u32, u32, bool)> + '_ {
        let acked = self.acked.min(self.len);
        let sacked = self.ranges[acked..self.len].iter().map(|&(s, e)| (s, e, false));
        sacked.chain(self.ranges[..acked].iter().map(|&(s, e)| (s, e, true)))
    }

    /// The ranges.
    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges[..self.len]
    }

    /// Bytes delivered: every range pushed, kept or not.
    pub fn bytes(&self) -> u32 {
        self.bytes
    }
}

/// RACK's, TLP's and PRR's part of `struct tcp_sock`.
#[derive(Debug)]
pub struct RackState {
    /// The data in flight by send time.
    pub log: TxLog,
    /// `rack.mstamp`, as a place in the send order: the
    /// [`TxRecord::order`] of the most recently sent of the delivered
    /// segments (what `tcp_rack_sent_after` compares); `None` before any.
    pub order: Option<u64>,
    /// `rack.end_seq`: that segment's end.
    pub end_seq: u32,
    /// `rack.rtt_us`: the RTT of the last delivered segment that advanced RACK, µs.
    pub rtt_us: u32,
    /// `rack.advanced`: something was delivered since loss was last looked for.
    pub advanced: bool,
    /// `rack.reo_wnd_steps`: the reordering window in quarters of the minimum RTT.
    pub reo_wnd_steps: u32,
    /// `rack.reo_wnd_persist`: recoveries the widened window lasts for.
    pub reo_wnd_persist: u8,
    /// `rack.dsack_seen`: a D-SACK asks for a wider window.
    pub dsack_seen: bool,
    /// When the window was last widened (Linux keeps `rack.last_delivered`,
    /// the delivered count then; data sent before it does not count).
    pub reo_wnd_widened: Option<Instant>,
    /// `tcp_min_rtt`: the least RTT seen, µs (`u32::MAX`: none yet).
    pub min_rtt_us: u32,
    /// Retransmissions marked lost again and not yet sent again.
    relost: [(u32, u32); RELOST_LEN],
    relost_len: usize,
    /// Segments marked lost by the last look (`tp->lost` moved).
    pub newly_lost: u32,
    /// The reordering timer (`ICSK_TIME_REO_TIMEOUT`).
    pub reo_at: Option<Instant>,
    /// The loss-probe timer (`ICSK_TIME_LOSS_PROBE`).
    pub tlp_at: Option<Instant>,
    /// `tlp_high_seq`: `snd_nxt` when the probe went, while it is unresolved.
    pub tlp_high_seq: Option<u32>,
    /// `tlp_retrans`: the probe sent old data again.
    pub tlp_retrans: bool,
    /// `prr_delivered`: segments delivered since recovery began.
    pub prr_delivered: u32,
    /// `prr_out`: segments sent since recovery began.
    pub prr_out: u32,
    /// `prior_cwnd` as PRR reads it: cwnd when recovery began.
    pub prr_prior_cwnd: u32,
}

impl Default for RackState {
    fn default() -> RackState {
        RackState {
            log: TxLog::default(),
            order: None,
            end_seq: 0,
            rtt_us: 0,
            advanced: false,
            reo_wnd_steps: 1,
            reo_wnd_persist: 0,
            dsack_seen: false,
            reo_wnd_widened: None,
            min_rtt_us: u32::MAX,
            relost: [(0, 0); RELOST_LEN],
            relost_len: 0,
            newly_lost: 0,
            reo_at: None,
            tlp_at: None,
            tlp_high_seq: None,
            tlp_retrans: false,
            prr_delivered: 0,
            prr_out: 0,
            prr_prior_cwnd: 0,
        }
    }
}

impl RackState {
    /// The retransmissions marked lost again, lowest first.
    pub fn relost(&self) -> &[(u32, u32)] {
        &self.relost[..self.relost_len]
    }

    /// Marks the retransmission `[seq, end)` lost again; false when there is no room.
    pub(super) fn add_relost(&mut self, seq: u32, end: u32) -> bool {
        if self.relost_len == RELOST_LEN {
            return false;
        }
        let at = self.relost().iter().position(|&(s, _)| after(s, seq)).unwrap_or(self.relost_len);
        self.relost.copy_within(at..self.relost_len, at + 1);
        self.relost[at] = (seq, end);
        self.relost_len += 1;
        true
    }

    /// Drops the lost-again ranges below `una`, or all of them (`None`).
    pub fn trim_relost(&mut self, una: Option<u32>) {
        let Some(una) = una else {
            self.relost_len = 0;
            return;
        };
        let mut w = 0;
        for i in 0..self.relost_len {
            let (s, e) = self.relost[i];
            if !after(e, una) {
                continue;
            }
            self.relost[w] = (if before(s, una) { una } else { s }, e);
            w += 1;
        }
        self.relost_len = w;
    }

    /// The first lost-again range, taken off to be sent.
    pub fn pop_relost(&mut self) -> Option<(u32, u32)> {
        if self.relost_len == 0 {
            return None;
        }
        let r = self.relost[0];
        self.relost.copy_within(1..self.relost_len, 0);
        self.relost_len -= 1;
        Some(r)
    }

    /// Bytes held lost again.
    pub fn relost_bytes(&self) -> u32 {
        self.relost().iter().map(|&(s, e)| e.wrapping_sub(s)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_retransmission_takes_its_data_out_of_older_records_and_goes_last() {
        let t0 = Instant::now();
        let mut log = TxLog::default();
        log.sent(0, 100, t0, false);
        log.sent(100, 200, t0, false);
        assert_eq!(log.len(), 1, "sent at one instant: one record");
        log.sent(200, 300, t0 + Duration::from_millis(1), false);
        log.sent(100, 150, t0 + Duration::from_millis(2), true);
        let v: Vec<_> = log.records().map(|r| (r.seq, r.end, r.retrans)).collect();
        assert_eq!(v, vec![(0, 100, false), (200, 300, false), (100, 150, true)]);
        assert!(!log.in_seq_order());
        log.acked(250);
        let v: Vec<_> = log.records().map(|r| (r.seq, r.end)).collect();
        assert_eq!(v, vec![(250, 300)]);
        assert!(log.in_seq_order());
    }

    #[test]
    fn lost_again_ranges_stay_sorted_and_bounded() {
        let mut r = RackState::default();
        assert!(r.add_relost(300, 400));
        assert!(r.add_relost(100, 200));
        assert_eq!(r.relost(), &[(100, 200), (300, 400)]);
        r.trim_relost(Some(150));
        assert_eq!(r.relost(), &[(150, 200), (300, 400)]);
        assert_eq!(r.relost_bytes(), 150);
        assert_eq!(r.pop_relost(), Some((150, 200)));
        for i in 0..RELOST_LEN as u32 - 1 {
            assert!(r.add_relost(1000 + i * 10, 1005 + i * 10));
        }
        assert!(!r.add_relost(5000, 5001), "full");
    }
}
