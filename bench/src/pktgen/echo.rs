//! Echo matching: which sequence numbers came back, how often, in what order.
//!
//! A sliding window of one bit per sequence number (a ring of `u64` words,
//! allocated once) remembers which of the last `window` datagrams were
//! answered. A datagram's bit is cleared when it is sent; a reply sets it.
//! A reply whose bit is already set is a **duplicate**; one older than the
//! window (its bit now belongs to a newer datagram) is **late** and cannot be
//! told from a duplicate, so it is counted apart; one lower than the highest
//! sequence answered so far is **reordered** (and still counts as received).
//! **Lost** is what was sent and never answered: `sent - received - late`.

use serde::Serialize;

/// Default window: 2^22 datagrams (512 KiB of bits), four seconds at 1 Mpps.
pub const DEFAULT_WINDOW: u64 = 1 << 22;

/// How one reply was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// First reply for this sequence number; `reordered` if a higher one came before.
    Unique {
        reordered: bool,
    },
    Duplicate,
    /// Older than the window.
    Late,
    /// A sequence number not sent yet: not ours, or corrupted.
    Unknown,
}

/// The counts, as reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EchoCounts {
    /// Unique replies.
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Unique replies with a sequence number lower than the highest seen before them.
    pub reordered: u64,
    /// Replies older than the matching window (not in `received`).
    pub late: u64,
    /// Replies with a sequence number never sent.
    pub unknown: u64,
}

#[derive(Debug)]
pub struct EchoTracker {
    words: Vec<u64>,
    /// Window size in datagrams, a power of two, at least 64.
    window: u64,
    /// Sequence numbers below this were sent (the next one to send).
    sent: u64,
    highest: Option<u64>,
    counts: EchoCounts,
}

impl EchoTracker {
    /// A tracker remembering the last `window` datagrams (rounded up to a
    /// power of two, at least 64).
    pub fn new(window: u64) -> EchoTracker {
        let window = window.max(64).next_power_of_two();
        EchoTracker {
            words: vec![0; (window / 64) as usize],
            window,
            sent: 0,
            highest: None,
            counts: EchoCounts::default(),
        }
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    /// Sequence numbers sent so far (`0..sent`).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Notes that `n` more datagrams were sent, numbered from [`sent`](Self::sent)
    /// on: their bits are cleared (the datagrams a window ago become late).
    #[inline]
    pub fn on_sent(&mut self, n: u64) {
        let mask = (self.words.len() - 1) as u64;
        let mut s = self.sent;
        let end = self.sent + n;
        while s < end {
            let bit = s & 63;
            let upto = end.min((s | 63) + 1);
            let nbits = upto - s;
            let m = if nbits == 64 { u64::MAX } else { ((1u64 << nbits) - 1) << bit };
            self.words[((s >> 6) & mask) as usize] &= !m;
            s = upto;
        }
        self.sent = end;
    }

    /// Takes a reply carrying `seq`.
    #[inline]
    pub fn on_reply(&mut self, seq: u64) -> ReplyKind {
        if seq >= self.sent {
            self.counts.unknown += 1;
            return ReplyKind::Unknown;
        }
        if self.sent - seq > self.window {
            self.counts.late += 1;
            return ReplyKind::Late;
        }
        let mask = (self.words.len() - 1) as u64;
        let w = &mut self.words[((seq >> 6) & mask) as usize];
        let bit = 1u64 << (seq & 63);
        if *w & bit != 0 {
            self.counts.duplicates += 1;
            return ReplyKind::Duplicate;
        }
        *w |= bit;
        self.counts.received += 1;
        let reordered = match self.highest {
            Some(h) if seq < h => true,
            _ => {
                self.highest = Some(seq);
                false
            }
        };
        if reordered {
            self.counts.reordered += 1;
        }
        ReplyKind::Unique { reordered }
    }

    /// Whether every datagram sent has been answered (or given up on as late).
    pub fn all_answered(&self) -> bool {
        self.counts.received + self.counts.late >= self.sent
    }

    /// The counts, with `lost` computed for what was sent so far.
    pub fn counts(&self) -> EchoCounts {
        EchoCounts { lost: self.sent.saturating_sub(self.counts.received + self.counts.late), ..self.counts }
    }
}
