//! The socket buffer: our `struct sk_buff`, and the queue of them that a
//! sock receives into (`struct sk_buff_head`).
//!
//! An [`SkBuff`] is a UMEM [`Frame`] plus where its data lies in the frame
//! and the control block a protocol needs (here the peer's address, and the
//! sample stamp of the per-stage latency histograms). It
//! moves from the rx ring into a sock's receive queue and out to the
//! application, or from the application through the write queue to the tx
//! ring, without a copy of the frame and without allocation. Like the frame
//! it wraps it is move-only.
//!
//! `SkbQueue` is a sock's receive queue: bounded, one producer (the
//! softirq loop), and readers that are either the stack's own thread (run to
//! completion, no atomic read-modify-write at all) or application threads
//! sharing it (one compare-and-swap per read). The stack's own socks use it
//! for their write queue too (the same thread sends and transmits). A locked instruction costs
//! about 9 ns here, a third of the per-packet budget, so the queue is built
//! to need none on the run-to-completion path. Like the AF_XDP rings it holds
//! frames as words, in atomics.
//!
//! That is this module's one `unsafe`: turning a slot's word back into a
//! [`Frame`] (`Frame::from_ring`) is sound only because the queue's protocol
//! hands each slot to exactly one reader (the sole reader's store to `head`,
//! or the shared readers' compare-and-swap on it), which the compiler cannot
//! see. A queue of `Frame` values with no `unsafe` would need a lock or an
//! atomic swap per slot, the locked instruction this queue exists to avoid:
//! readers of a shared queue read a slot before they win it, and a `Frame`
//! cannot be read twice. Even a broken protocol could not reach outside the
//! UMEM (every access checks the frame's owner and bounds), only alias a frame.
#![allow(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

use crate::umem::{Frame, Umem};

/// A datagram in a UMEM frame.
#[derive(Debug)]
pub struct SkBuff {
    pub(crate) frame: Frame,
    /// Offset of the data (payload for a sock queue) from the frame base.
    pub(crate) data: u16,
    /// Length of the data.
    pub(crate) len: u16,
    /// The control block: on receive the source, on send the destination.
    pub(crate) peer: SocketAddrV4,
    /// The sample stamp, in nanoseconds since the stack's epoch, 0 when not
    /// sampled (`skb->tstamp`): on receive when the loop took the frame off
    /// the rx ring (the rx-to-read latency), on send when the application
    /// called send (the send-to-tx-ring latency; `crate::latency`).
    pub(crate) tstamp: u64,
}

impl SkBuff {
    #[inline]
    pub(crate) fn new(frame: Frame, data: usize, len: usize, peer: SocketAddrV4) -> SkBuff {
        debug_assert!(data + len <= u16::MAX as usize);
        SkBuff { frame, data: data as u16, len: len as u16, peer, tstamp: 0 }
    }

    /// The data bytes.
    #[inline]
    pub fn data<'a>(&'a self, umem: &'a Umem) -> &'a [u8] {
        let start = self.data as usize;
        &umem.frame(&self.frame)[start..start + self.len as usize]
    }

    #[inline]
    /// Length of the data, bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    /// Whether the data is empty (a zero-length datagram).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    /// The control block's address: the source on receive, the destination on send.
    pub fn peer(&self) -> SocketAddrV4 {
        self.peer
    }

    /// Gives up the frame (to the free list or a ring).
    #[inline]
    pub(crate) fn into_frame(self) -> Frame {
        self.frame
    }
}

/// Who reads an [`SkbQueue`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Readers {
    /// Only the thread that owns the `Stack` (its own socks, reached through
    /// `&mut Stack` only): reads need no atomic read-modify-write.
    Exclusive,
    /// Application threads through a `StackHandle`, any number at once, and
    /// the loop when it purges the queue on close: reads claim a slot with a
    /// compare-and-swap.
    Shared,
}

/// One queued `SkBuff`, as plain words. Written by the producer before it
/// publishes the slot (`tail`, release), read by a reader after it sees it
/// (acquire): the atomics only make the hand-over free of data races; none of
/// them is ever contended.
#[derive(Default)]
struct Slot {
    frame: AtomicU64,
    /// `data | len << 16 | port << 32`.
    meta: AtomicU64,
    ip: AtomicU64,
    tstamp: AtomicU64,
}

/// A bounded queue of [`SkBuff`]s with one producer (`sk_buff_head`).
///
/// `head` and `tail` count reads and writes since creation (they never wrap
/// in practice: 2^64 datagrams), so `tail - head` is the length and a reader
/// that claims `head` with a compare-and-swap cannot be fooled by a slot
/// reused meanwhile (ABA).
pub(crate) struct SkbQueue {
    slots: Box<[Slot]>,
    /// `slots.len() - 1`; `slots.len()` is a power of two, so no division.
    mask: usize,
    /// How many the queue holds (at most `slots.len()`).
    cap: usize,
    readers: Readers,
    /// Reads so far: written by readers only.
    head: CachePadded<AtomicUsize>,
    /// Writes so far: written by the producer only.
    tail: CachePadded<AtomicUsize>,
}

impl SkbQueue {
    /// Who may read this queue.
    pub(crate) fn readers(&self) -> Readers {
        self.readers
    }

    /// A queue for `cap` buffers (at least one).
    pub(crate) fn new(cap: usize, readers: Readers) -> SkbQueue {
        let cap = cap.max(1);
        let n = cap.next_power_of_two();
        SkbQueue {
            slots: (0..n).map(|_| Slot::default()).collect(),
            mask: n - 1,
            cap,
            readers,
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// Producer side: queues `skb`, or hands it back when the queue is full.
    /// One producer only: for a receive queue the softirq loop that holds the
    /// sock in its demultiplexing table, for a stack-owned sock's write queue
    /// the thread that owns the `Stack` (both through `&mut Stack`).
    #[inline]
    pub(crate) fn push(&self, skb: SkBuff) -> Result<(), SkBuff> {
        let tail = self.tail.load(Ordering::Relaxed);
        // Acquire: a reader's loads from the slot it freed come before our stores to it.
        if tail.wrapping_sub(self.head.load(Ordering::Acquire)) >= self.cap {
            return Err(skb);
        }
        let slot = &self.slots[tail & self.mask];
        let meta = u64::from(skb.data) | u64::from(skb.len) << 16 | u64::from(skb.peer.port()) << 32;
        slot.meta.store(meta, Ordering::Relaxed);
        slot.ip.store(u64::from(u32::from(*skb.peer.ip())), Ordering::Relaxed);
        slot.tstamp.store(skb.tstamp, Ordering::Relaxed);
        slot.frame.store(skb.frame.into_ring(), Ordering::Relaxed);
        // Release: publishes the slot.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Reader side: the oldest buffer, if any.
    #[inline]
    pub(crate) fn pop(&self) -> Option<SkBuff> {
        match self.readers {
            Readers::Exclusive => self.pop_exclusive(),
            Readers::Shared => self.pop_shared(),
        }
    }

    /// The only reader: `head` is ours, a plain store moves it.
    #[inline]
    fn pop_exclusive(&self) -> Option<SkBuff> {
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let skb = Self::read(&self.slots[head & self.mask]);
        // Release: our loads from the slot come before the producer reuses it.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        // SAFETY: the slot at `head` was published by `push` (head != tail)
        // and is ours alone: we are the only reader, and have just moved
        // `head` past it.
        Some(unsafe { Self::build(skb) })
    }

    /// One reader of several: read the slot, then claim it. A failed claim
    /// means another reader took it (and the producer may be rewriting it):
    /// what was read is dropped and the next slot tried.
    fn pop_shared(&self) -> Option<SkBuff> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            if head == self.tail.load(Ordering::Acquire) {
                return None;
            }
            let words = Self::read(&self.slots[head & self.mask]);
            match self.head.compare_exchange_weak(head, head.wrapping_add(1), Ordering::AcqRel, Ordering::Acquire) {
                // SAFETY: the compare-and-swap moved `head` past this slot, a
                // published one (head != tail), and only one reader's can.
                Ok(_) => return Some(unsafe { Self::build(words) }),
                Err(now) => head = now,
            }
        }
    }

    #[inline]
    fn read(slot: &Slot) -> [u64; 4] {
        [
            slot.frame.load(Ordering::Relaxed),
            slot.meta.load(Ordering::Relaxed),
            slot.ip.load(Ordering::Relaxed),
            slot.tstamp.load(Ordering::Relaxed),
        ]
    }

    /// The `SkBuff` back from a claimed slot's words.
    ///
    /// # Safety
    ///
    /// `words` must have been read from a slot that `push` published and
    /// that this reader has since claimed (moved `head` past it, which a
    /// reader does once per write), and be built once: the frame word becomes
    /// a `Frame` again (see [`Frame::from_ring`]).
    #[inline]
    unsafe fn build([frame, meta, ip, tstamp]: [u64; 4]) -> SkBuff {
        SkBuff {
            // SAFETY: `frame` was stored by `push` from `Frame::into_ring`, and
            // the caller claimed its slot, once (this function's contract).
            frame: unsafe { Frame::from_ring(frame) },
            data: meta as u16,
            len: (meta >> 16) as u16,
            peer: SocketAddrV4::new(Ipv4Addr::from(ip as u32), (meta >> 32) as u16),
            tstamp,
        }
    }

    /// Buffers queued now (a snapshot when others are at work).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // SeqCst: a sleeper checks this after registering on the wait queue.
        let head = self.head.load(Ordering::SeqCst);
        self.tail.load(Ordering::SeqCst).wrapping_sub(head)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len() >= self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn skb(i: u64) -> SkBuff {
        SkBuff {
            frame: Frame::unowned(i * 2048),
            data: i as u16,
            len: (i * 3) as u16,
            peer: SocketAddrV4::new(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8), (40000 + i) as u16),
            tstamp: i * 1000,
        }
    }

    fn same(a: &SkBuff, b: &SkBuff) -> bool {
        a.frame == b.frame && a.data == b.data && a.len == b.len && a.peer == b.peer && a.tstamp == b.tstamp
    }

    #[test]
    fn fifo_bounded_and_wraps() {
        for readers in [Readers::Exclusive, Readers::Shared] {
            // 5 does not fill its power-of-two array of 8: the bound is 5.
            let q = SkbQueue::new(5, readers);
            let mut next_in = 0;
            let mut next_out = 0;
            for round in 0..40 {
                while q.len() < 5 {
                    q.push(skb(next_in)).unwrap();
                    next_in += 1;
                }
                assert!(q.push(skb(999)).is_err(), "full at 5");
                for _ in 0..(round % 5) + 1 {
                    let got = q.pop().unwrap();
                    assert!(same(&got, &skb(next_out)), "round {round}: {got:?}");
                    next_out += 1;
                }
            }
            while let Some(got) = q.pop() {
                assert!(same(&got, &skb(next_out)));
                next_out += 1;
            }
            assert_eq!(next_out, next_in);
            assert!(q.is_empty());
        }
    }

    #[test]
    fn a_zero_capacity_request_still_holds_one() {
        let q = SkbQueue::new(0, Readers::Exclusive);
        q.push(skb(1)).unwrap();
        assert!(q.push(skb(2)).is_err());
    }

    /// One producer, several readers at once: every buffer comes out exactly
    /// once, nothing is invented.
    #[test]
    fn shared_readers_take_each_buffer_once() {
        const N: u64 = 200_000;
        let q = Arc::new(SkbQueue::new(64, Readers::Shared));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    loop {
                        match q.pop() {
                            Some(s) if s.tstamp == u64::MAX => break,
                            Some(s) => {
                                assert_eq!(s.frame.addr(), s.tstamp / 1000 * 2048, "torn slot");
                                seen.push(s.tstamp / 1000);
                            }
                            None => std::hint::spin_loop(),
                        }
                    }
                    seen
                })
            })
            .collect();
        for i in 0..N {
            let mut s = skb(i);
            while let Err(back) = q.push(s) {
                s = back;
                std::hint::spin_loop();
            }
        }
        for _ in 0..3 {
            let mut stop = skb(0);
            stop.tstamp = u64::MAX;
            while let Err(back) = q.push(stop) {
                stop = back;
            }
        }
        let mut all: Vec<u64> = readers.into_iter().flat_map(|r| r.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all.len() as u64, N);
        assert!(all.iter().enumerate().all(|(i, &v)| v == i as u64), "each exactly once");
    }
}
