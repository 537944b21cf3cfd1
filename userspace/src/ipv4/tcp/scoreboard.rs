//! The SACK scoreboard (RFC 2018, net/ipv4/tcp_input.c's `tcp_sacktag_write_queue`
//! keeps it in the write queue's skbs): the ranges of our sent data the peer
//! selectively acknowledged and the ranges we ever sent twice (the skbs'
//! `TCPCB_SACKED_ACKED` and `TCPCB_EVER_RETRANS` bits), each in a fixed
//! array ([`SeqRanges`]), and what the recovery in [`super::sack`] asks of it. A data structure of its own, so that the control
//! block (`cb.rs`) holds one without depending on the recovery code.

use super::{after, before};
use crate::wire::tcp::SackBlock;

/// SACKed ranges a connection remembers. More holes than this in one window
/// lose the highest ranges: they are retransmitted again, never skipped
/// wrongly.
pub const SACK_RANGES: usize = 32;

/// `net.ipv4.tcp_reordering`: the initial reordering degree, segments (the
/// DupThresh of RFC 6675).
pub const TCP_REORDERING: u32 = 3;

/// `net.ipv4.tcp_max_reordering`: the most it may grow to, segments.
pub const TCP_MAX_REORDERING: u32 = 300;

/// What a full [`SeqRanges`] does with a range that needs a slot of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Overflow {
    /// The highest range gives way (SACKed data: forgetting a SACK only
    /// sends data again, never skips it wrongly).
    DropHighest,
    /// The range joins its neighbour, the gap between them with it
    /// (retransmitted data: data taken as sent twice that was not is only
    /// never counted as reordered, never counted wrongly).
    Widen,
}

/// Disjoint ranges of sequence space above `snd_una`, sorted, neither
/// overlapping nor touching, at most [`SACK_RANGES`] of them: the per-skb
/// bits of Linux's write queue as ranges of bytes.
#[derive(Clone, Debug)]
pub struct SeqRanges {
    ranges: [SackBlock; SACK_RANGES],
    len: usize,
    /// A range was widened over a gap ([`Overflow::Widen`]) since the set
    /// was last empty: what it covers is no longer exact.
    widened: bool,
}

impl Default for SeqRanges {
    fn default() -> SeqRanges {
        SeqRanges { ranges: [SackBlock::default(); SACK_RANGES], len: 0, widened: false }
    }
}

impl SeqRanges {
    /// The ranges, lowest first.
    pub fn as_slice(&self) -> &[SackBlock] {
        &self.ranges[..self.len]
    }

    /// Forgets every range.
    pub fn clear(&mut self) {
        self.len = 0;
        self.widened = false;
    }

    /// Whether every range covers exactly what was inserted (no
    /// [`Overflow::Widen`] since the set was last empty).
    pub fn exact(&self) -> bool {
        !self.widened
    }

    /// Drops what lies below `una`.
    pub(super) fn trim(&mut self, una: u32) {
        let mut w = 0;
        for i in 0..self.len {
            let mut r = self.ranges[i];
            if !after(r.right, una) {
                continue;
            }
            if before(r.left, una) {
                r.left = una;
            }
            self.ranges[w] = r;
            w += 1;
        }
        self.len = w;
        if w == 0 {
            self.widened = false;
        }
    }

    /// Bytes covered in `[a, b)`.
    pub fn covered_in(&self, a: u32, b: u32) -> u32 {
        let mut n = 0u32;
        for r in self.as_slice() {
            let l = if after(r.left, a) { r.left } else { a };
            let e = if before(r.right, b) { r.right } else { b };
            if after(e, l) {
                n = n.wrapping_add(e.wrapping_sub(l));
            }
        }
        n
    }

    /// The range holding `seq`, if one does.
    pub(super) fn holding(&self, seq: u32) -> Option<SackBlock> {
        self.as_slice().iter().copied().find(|r| !before(seq, r.left) && before(seq, r.right))
    }

    /// The first range starting after `seq`.
    pub(super) fn next_after(&self, seq: u32) -> Option<SackBlock> {
        self.as_slice().iter().copied().find(|r| after(r.left, seq))
    }

    /// The lowest sequence number in `[a, b)` that no range covers.
    pub(super) fn first_uncovered(&self, a: u32, b: u32) -> Option<u32> {
        let mut cur = a;
        for r in self.as_slice() {
            if !before(cur, r.left) && before(cur, r.right) {
                cur = r.right;
            }
        }
        before(cur, b).then_some(cur)
    }

    /// Covers `[left, right)`; `newly` sees each part that was not covered.
    pub(super) fn insert(&mut self, b: SackBlock, overflow: Overflow, mut newly: impl FnMut(u32, u32)) {
        // The parts not yet covered.
        let mut cur = b.left;
        for r in self.as_slice() {
            if !after(b.right, r.left) {
                break;
            }
            if !after(r.right, cur) {
                continue;
            }
            if before(cur, r.left) {
                newly(cur, r.left);
            }
            cur = r.right;
        }
        if before(cur, b.right) {
            newly(cur, b.right);
        }
        // Merge: the ranges that overlap or touch b become one.
        let (mut left, mut right) = (b.left, b.right);
        let mut first = self.len;
        let mut last = self.len;
        for (i, r) in self.as_slice().iter().enumerate() {
            if before(r.right, b.left) {
                continue;
            }
            if after(r.left, b.right) {
                if first == self.len {
                    first = i;
                    last = i;
                }
                break;
            }
            if first == self.len {
                first = i;
            }
            last = i + 1;
            if before(r.left, left) {
                left = r.left;
            }
            if after(r.right, right) {
                right = r.right;
            }
        }
        let merged = SackBlock { left, right };
        let full = self.len == SACK_RANGES;
        if first == self.len {
            // Above everything.
            if !full {
                self.ranges[self.len] = merged;
                self.len += 1;
            } else if overflow == Overflow::Widen {
                self.ranges[self.len - 1].right = merged.right;
                self.widened = true;
            }
            return;
        }
        let removed = last - first;
        if removed == 0 {
            if full && overflow == Overflow::Widen {
                // Into the range above it, the gap with it.
                self.ranges[first].left = merged.left;
                self.widened = true;
                return;
            }
            // Insert at `first`, the highest range giving way when full
            // (`b` lies below it: it takes the freed slot, also when that
            // is where `b` goes, so that what `newly` saw is kept).
            if full {
                self.len -= 1;
            }
            self.ranges.copy_within(first..self.len, first + 1);
            self.ranges[first] = merged;
            self.len += 1;
        } else {
            self.ranges[first] = merged;
            self.ranges.copy_within(last..self.len, first + 1);
            self.len -= removed - 1;
        }
    }
}

/// A connection's SACK and undo state (the parts of `struct tcp_sock` they use).
#[derive(Clone, Debug)]
pub struct Scoreboard {
    /// SACKed ranges above `snd_una` (`TCPCB_SACKED_ACKED`).
    pub(super) sacked: SeqRanges,
    /// Ranges above `snd_una` sent more than once (`TCPCB_EVER_RETRANS`,
    /// kept until acknowledged, across undo episodes as Linux keeps it).
    pub(super) ever_retrans: SeqRanges,
    /// Everything unSACKed below this is lost (`tcp_mark_head_lost`'s marks).
    pub lost_end: u32,
    /// RFC 6675 `HighRxt`: recovery has retransmitted the holes below this
    /// (kept from one recovery to the next, as Linux keeps `TCPCB_SACKED_RETRANS`;
    /// never below `snd_una`: `rack::tcp_rack_update` keeps it level).
    pub high_rxt: u32,
    /// `tp->retrans_stamp` as timestamp undo reads it: our TSval clock (ms,
    /// without the connection's offset) at the first retransmission since
    /// the last time none was out (`tcp_retrans_stamp_cleanup`).
    pub retrans_stamp: Option<u32>,
    /// `tp->reordering`: SACKed segments above a hole before it is lost.
    pub reordering: u32,
    /// Times reordering was seen (`reord_seen`).
    pub reord_seen: u32,
    /// `undo_marker`: `snd_una` when the current reduction began; `None` once undone.
    pub undo_marker: Option<u32>,
    /// `undo_retrans`: retransmissions not yet shown spurious by a D-SACK
    /// (-1: none made yet).
    pub undo_retrans: i32,
    /// `prior_cwnd`, segments.
    pub prior_cwnd: u32,
    /// `prior_ssthresh` (0: no undo of the threshold).
    pub prior_ssthresh: u32,
    /// D-SACKed segments so far (`dsack_dups`).
    pub dsack_dups: u32,
    /// The D-SACK block our next segment carries first (`duplicate_sack[0]`).
    pub dsack_out: Option<SackBlock>,
}

impl Default for Scoreboard {
    fn default() -> Scoreboard {
        Scoreboard {
            sacked: SeqRanges::default(),
            ever_retrans: SeqRanges::default(),
            retrans_stamp: None,
            lost_end: 0,
            high_rxt: 0,
            reordering: TCP_REORDERING,
            reord_seen: 0,
            undo_marker: None,
            undo_retrans: -1,
            prior_cwnd: 0,
            prior_ssthresh: 0,
            dsack_dups: 0,
            dsack_out: None,
        }
    }
}

impl Scoreboard {
    /// The SACKed ranges, lowest first.
    pub fn ranges(&self) -> &[SackBlock] {
        self.sacked.as_slice()
    }

    /// Forgets every SACKed range (reneging, `tcp_enter_loss`).
    pub fn clear(&mut self) {
        self.sacked.clear();
    }

    /// Drops what lies below `una`, SACKed or retransmitted.
    pub(super) fn trim(&mut self, una: u32) {
        self.sacked.trim(una);
        self.ever_retrans.trim(una);
    }

    /// Bytes SACKed in `[a, b)`.
    pub fn sacked_in(&self, a: u32, b: u32) -> u32 {
        self.sacked.covered_in(a, b)
    }

    /// The SACKed range holding `seq`, if one does.
    pub(super) fn holding(&self, seq: u32) -> Option<SackBlock> {
        self.sacked.holding(seq)
    }

    /// The first SACKed range starting after `seq`.
    pub(super) fn next_after(&self, seq: u32) -> Option<SackBlock> {
        self.sacked.next_after(seq)
    }

    /// `tcp_highest_sack_seq` while anything is SACKed: where the data
    /// after the highest SACKed segment starts (`tp->highest_sack` is the
    /// skb after it, `tcp_advance_highest_sack`), the end of the highest range.
    pub(super) fn highest_sack_seq(&self) -> Option<u32> {
        self.ranges().last().map(|r| r.right)
    }

    /// SACKed segments (`sacked_out`), each range counted in whole segments.
    pub fn sacked_out(&self, mss: u32) -> u32 {
        self.ranges().iter().map(|r| r.right.wrapping_sub(r.left).div_ceil(mss.max(1))).sum()
    }

    /// Marks `[seq, end)` sent more than once (`TCPCB_EVER_RETRANS`).
    pub(super) fn mark_retransmitted(&mut self, seq: u32, end: u32) {
        self.ever_retrans.insert(SackBlock { left: seq, right: end }, Overflow::Widen, |_, _| {});
    }

    /// Whether the byte at `seq` was ever sent more than once, or may have
    /// been (a widened range): what holds back a reordering sample.
    pub(super) fn ever_retransmitted(&self, seq: u32) -> bool {
        self.ever_retrans.holding(seq).is_some()
    }

    /// Whether the byte at `seq` was certainly sent more than once: what a
    /// D-SACK must find before it counts against `undo_retrans` or as
    /// reordering. While a range is widened nothing is certain, so no
    /// D-SACK of outstanding data undoes (the safe side).
    pub(super) fn surely_retransmitted(&self, seq: u32) -> bool {
        self.ever_retrans.exact() && self.ever_retransmitted(seq)
    }

    /// `retrans_out` is not zero: data sent more than once is neither
    /// SACKed nor acknowledged yet (a retransmission RACK marked lost again
    /// still counts, where Linux's `tcp_mark_skb_lost` takes it out).
    pub(super) fn retrans_out(&self) -> bool {
        self.ever_retrans
            .as_slice()
            .iter()
            .any(|r| self.sacked.covered_in(r.left, r.right) < r.right.wrapping_sub(r.left))
    }

    /// `tcp_any_retrans_done`: a retransmission is out, or the head at
    /// `snd_una` was sent more than once.
    pub(super) fn any_retrans_done(&self, snd_una: u32) -> bool {
        self.retrans_out() || self.ever_retransmitted(snd_una)
    }

    /// The lowest byte in `[a, b)` never sent more than once.
    pub(super) fn first_never_retransmitted(&self, a: u32, b: u32) -> Option<u32> {
        self.ever_retrans.first_uncovered(a, b)
    }
}
