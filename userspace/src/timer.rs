//! Timers on time passed in: a queue of per-owner deadlines, run by whoever
//! polls with the current time (the kernel's `timer_list`, without a clock of
//! its own).
//!
//! Nothing here reads a clock. An owner (the neighbour table now; TCP's
//! retransmission, delayed-ACK, keepalive and TIME_WAIT timers next) arms a
//! timer for a key at an [`Instant`] it computed from the `now` it was given;
//! the loop asks [`TimerQueue::next_deadline`] when it must run again (its
//! `poll_at`), and [`TimerQueue::pop_expired`] hands back the keys whose time
//! has come. Tests drive it with virtual time: `t0 + Duration` values, no sleeps.
//!
//! Re-arming and cancelling are lazy, as `mod_timer` on a pending timer is
//! cheap in Linux: an owner keeps the deadline it wants in its own state and
//! checks it when the key pops; a stale pop is ignored or re-armed. An owner
//! that arms at most one pending entry per key (see [`TimerQueue::arm`])
//! keeps the queue bounded by the number of keys it has.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A min-heap of `(deadline, key)` entries.
#[derive(Debug)]
pub struct TimerQueue<K: Ord> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue { heap: BinaryHeap::new() }
    }
}

impl<K: Ord + Copy> TimerQueue<K> {
    /// Arms a timer for `key` at `at`. `pending` is the owner's record of the
    /// entry it already has in the queue for this key, if any: when that one
    /// fires no later than `at`, nothing is added (the owner re-arms when it
    /// fires early); otherwise a new entry is pushed and `pending` updated.
    /// This keeps at most one useful entry per key.
    pub fn arm(&mut self, key: K, at: Instant, pending: &mut Option<Instant>) {
        if pending.is_some_and(|p| p <= at) {
            return;
        }
        *pending = Some(at);
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline in the queue (possibly a stale one, which only
    /// makes the caller poll a little early).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next entry due at `now` or before, earliest first.
    pub fn pop_expired(&mut self, now: Instant) -> Option<(Instant, K)> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Entries in the queue, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the queue holds no entry.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut q = TimerQueue::default();
        let mut pending = [None; 3];
        q.arm(0u8, ms(30), &mut pending[0]);
        q.arm(1u8, ms(10), &mut pending[1]);
        q.arm(2u8, ms(20), &mut pending[2]);
        assert_eq!(q.next_deadline(), Some(ms(10)));
        assert_eq!(q.pop_expired(ms(9)), None);
        assert_eq!(q.pop_expired(ms(25)), Some((ms(10), 1)));
        assert_eq!(q.pop_expired(ms(25)), Some((ms(20), 2)));
        assert_eq!(q.pop_expired(ms(25)), None);
        assert_eq!(q.pop_expired(ms(30)), Some((ms(30), 0)));
        assert!(q.is_empty());
    }

    #[test]
    fn rearming_later_adds_nothing_earlier_adds_one() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        let mut pending = None;
        q.arm(7u32, t0 + Duration::from_secs(1), &mut pending);
        for s in 2..100 {
            q.arm(7u32, t0 + Duration::from_secs(s), &mut pending);
        }
        assert_eq!(q.len(), 1, "later deadlines ride on the pending entry");
        q.arm(7u32, t0 + Duration::from_millis(500), &mut pending);
        assert_eq!(q.len(), 2);
        assert_eq!(pending, Some(t0 + Duration::from_millis(500)));
    }
}
