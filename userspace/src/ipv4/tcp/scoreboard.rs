//! The SACK scoreboard (RFC 2018, net/ipv4/tcp_input.c's `tcp_sacktag_write_queue`
//! keeps it in the write queue's skbs): the ranges of our sent data the peer
//! selectively acknowledged, in a fixed array, and what the recovery in
//! [`super::sack`] asks of it. A data structure of its own, so that the control
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

/// A connection's SACK and undo state (the parts of `struct tcp_sock` they use).
#[derive(Clone, Debug)]
pub struct Scoreboard {
    /// SACKed ranges above `snd_una`, sorted, neither overlapping nor touching.
    pub(super) ranges: [SackBlock; SACK_RANGES],
    /// How many of `ranges` are in use.
    pub(super) len: usize,
    /// Everything unSACKed below this is lost (`tcp_mark_head_lost`'s marks).
    pub lost_end: u32,
    /// RFC 6675 `HighRxt`: recovery has retransmitted the holes below this.
    pub high_rxt: u32,
    /// The end of the highest retransmission since `undo_marker`: data below
    /// it may have been sent twice (`TCPCB_EVER_RETRANS`).
    pub retrans_high: Option<u32>,
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
            ranges: [SackBlock::default(); SACK_RANGES],
            len: 0,
            lost_end: 0,
            high_rxt: 0,
            retrans_high: None,
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
        &self.ranges[..self.len]
    }

    /// Forgets every SACKed range (reneging, `tcp_enter_loss`).
    pub fn clear(&mut self) {
        self.len = 0;
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
    }

    /// Bytes SACKed in `[a, b)`.
    pub fn sacked_in(&self, a: u32, b: u32) -> u32 {
        let mut n = 0u32;
        for r in self.ranges() {
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
        self.ranges().iter().copied().find(|r| !before(seq, r.left) && before(seq, r.right))
    }

    /// The first range starting after `seq`.
    pub(super) fn next_after(&self, seq: u32) -> Option<SackBlock> {
        self.ranges().iter().copied().find(|r| after(r.left, seq))
    }

    /// `tcp_highest_sack_seq`: where the highest SACKed range starts.
    pub(super) fn highest_sack_seq(&self) -> Option<u32> {
        self.ranges().last().map(|r| r.left)
    }

    /// SACKed segments (`sacked_out`), each range counted in whole segments.
    pub fn sacked_out(&self, mss: u32) -> u32 {
        self.ranges().iter().map(|r| r.right.wrapping_sub(r.left).div_ceil(mss.max(1))).sum()
    }

    /// Marks `[left, right)` SACKed; `newly` sees each part that was not.
    pub(super) fn insert(&mut self, b: SackBlock, mut newly: impl FnMut(u32, u32)) {
        // The parts not yet SACKed.
        let mut cur = b.left;
        for r in self.ranges() {
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
        for (i, r) in self.ranges().iter().enumerate() {
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
        if first == self.len {
            // Above everything.
            if self.len < SACK_RANGES {
                self.ranges[self.len] = merged;
                self.len += 1;
            }
            return;
        }
        let removed = last - first;
        if removed == 0 {
            // Insert at `first`, the highest range giving way when full.
            if self.len == SACK_RANGES {
                self.len -= 1;
                if first == self.len {
                    return;
                }
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
