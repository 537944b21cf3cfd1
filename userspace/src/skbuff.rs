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
//!
//! ## Datagrams in several frames (`skb_shared_info`, `frag_list`)
//!
//! A datagram larger than a frame (a reassembled IP datagram, a large UDP
//! send, and later an AF_XDP multi-buffer packet) is a *chain* of pieces,
//! each a `(frame, offset, len)`: the head piece is the `SkBuff`'s own frame,
//! the others hang off it as Linux's `skb_shinfo(skb)->frag_list` hangs skbs
//! off the head. The chain lives in the frames themselves, so that building,
//! queueing and freeing it never allocates: the [`LINK_LEN`] bytes just
//! before each piece's data hold its *link* (the next piece's frame as a
//! word, 0 for the last, the next piece's data offset, and this piece's
//! length). Every piece must therefore start at least [`LINK_LEN`] bytes into
//! its frame: a received fragment's payload follows its Ethernet and IP
//! headers (34 bytes at least), and a frame built for sending leaves
//! `TX_HEADROOM` in front. Headers written in front of a piece on the way out
//! overwrite its link, so a sender reads the link first ([`Pieces`] does).
//!
//! `SkBuff::len` is the whole datagram's length and `nr_frags` the number of
//! frames after the head (0 for the one-frame datagram, whose path is
//! unchanged: no link is read or written, no branch beyond `nr_frags == 0`).
//! A chained datagram is read with [`SkBuff::copy_to`] and
//! [`SkBuff::for_each_piece`] and freed with [`SkBuff::free`], which gives
//! back every frame; [`SkBuff::into_frame`] is for one-frame buffers only.
//! The frames of the chain after the head are owned through the head: whoever
//! holds the `SkBuff` holds them, as `Frame` values would be held.
//!
//! On a queue, a chained datagram takes one slot and charges its other
//! frames to the queue's `frags` count: the frame census counts them
//! ([`SkbQueue::frames`]), and a chained datagram that would take the queue
//! past its bound in frames is refused as a full queue refuses (rcvbuf).
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
    /// Frames chained after the head (`skb_shinfo(skb)->nr_frags`): 0 for a
    /// datagram in one frame.
    pub(crate) nr_frags: u16,
}

/// Bytes before each chained piece's data that hold its link: the next
/// piece's frame word (8 bytes, 0 for none), its data offset (2) and this
/// piece's length (2), then 4 bytes of zero.
pub const LINK_LEN: usize = 16;

/// One piece's link, as read from the bytes before its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link {
    /// The next piece's frame, as a ring word; 0 for none.
    next: u64,
    /// The next piece's data offset in its frame.
    next_data: u16,
    /// This piece's length.
    len: u16,
}

impl Link {
    fn read(frame: &[u8], data: usize) -> Link {
        let b = &frame[data - LINK_LEN..data];
        Link {
            next: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            next_data: u16::from_le_bytes([b[8], b[9]]),
            len: u16::from_le_bytes([b[10], b[11]]),
        }
    }

    fn write(self, frame: &mut [u8], data: usize) {
        let b = &mut frame[data - LINK_LEN..data];
        b[0..8].copy_from_slice(&self.next.to_le_bytes());
        b[8..10].copy_from_slice(&self.next_data.to_le_bytes());
        b[10..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..16].fill(0);
    }
}

/// Builds a chained [`SkBuff`] piece by piece (the head first), writing each
/// piece's link as the next one arrives. Dropping a builder unfinished would
/// lose its frames: finish it ([`SkbChain::finish`]) or free it
/// ([`SkbChain::free`]).
#[derive(Debug)]
pub(crate) struct SkbChain {
    head: Frame,
    head_data: u16,
    /// The last piece when it is not the head: owned here until the next
    /// piece (or `finish`) writes its link and hands it to the chain.
    last: Option<(Frame, u16)>,
    len: usize,
    nr_frags: u16,
}

impl SkbChain {
    /// A chain whose head piece is `len` bytes at `data` in `frame`
    /// (`data >= LINK_LEN`).
    pub(crate) fn new(umem: &Umem, mut frame: Frame, data: usize, len: usize) -> SkbChain {
        debug_assert!(data >= LINK_LEN && len <= u16::MAX as usize);
        Link { next: 0, next_data: 0, len: len as u16 }.write(umem.frame_mut(&mut frame), data);
        SkbChain { head: frame, head_data: data as u16, last: None, len, nr_frags: 0 }
    }

    /// The datagram's length so far, bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `len` bytes at `data` in `frame` (`data >= LINK_LEN`).
    pub(crate) fn push(&mut self, umem: &Umem, mut frame: Frame, data: usize, len: usize) {
        debug_assert!(data >= LINK_LEN && len <= u16::MAX as usize);
        Link { next: 0, next_data: 0, len: len as u16 }.write(umem.frame_mut(&mut frame), data);
        let word = frame.word();
        let (prev, prev_data) = match &mut self.last {
            Some((f, d)) => (f, *d),
            None => (&mut self.head, self.head_data),
        };
        let buf = umem.frame_mut(prev);
        let mut link = Link::read(buf, prev_data as usize);
        link.next = word;
        link.next_data = data as u16;
        link.write(buf, prev_data as usize);
        if let Some((f, _)) = self.last.replace((frame, data as u16)) {
            // Owned from now on through its predecessor's link.
            let _ = f.into_ring();
        }
        self.len += len;
        self.nr_frags += 1;
    }

    /// The datagram, from `peer` (receive) or to it (send).
    pub(crate) fn finish(mut self, peer: SocketAddrV4) -> SkBuff {
        if let Some((f, _)) = self.last.take() {
            let _ = f.into_ring();
        }
        SkBuff {
            frame: self.head,
            data: self.head_data,
            len: self.len as u16,
            peer,
            tstamp: 0,
            nr_frags: self.nr_frags,
        }
    }

    /// Gives back every frame of an unfinished chain.
    pub(crate) fn free(self, umem: &Umem, put: impl FnMut(Frame)) {
        let peer = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        self.finish(peer).free(umem, put);
    }
}

/// The pieces of a datagram as `(frame, data offset, len)`, for a sender that
/// writes headers in front of each piece: each piece's link is read before it
/// is handed out, so the caller may overwrite the bytes before its data. The
/// frames are the caller's from then on; dropping the iterator early frees
/// nothing, so take every piece.
pub(crate) struct Pieces<'a> {
    umem: &'a Umem,
    next: Option<(Frame, u16, u16)>,
}

impl Iterator for Pieces<'_> {
    type Item = (Frame, usize, usize);

    fn next(&mut self) -> Option<(Frame, usize, usize)> {
        let (frame, data, len) = self.next.take()?;
        let link = Link::read(self.umem.frame(&frame), data as usize);
        if link.next != 0 {
            // SAFETY: the word was stored by `SkbChain::push` from
            // `Frame::word` of a frame it then gave up to the chain
            // (`into_ring`); the chain is consumed piece by piece here and
            // each link is read once, so the frame is rebuilt once.
            let next = unsafe { Frame::from_ring(link.next) };
            let next_len = Link::read(self.umem.frame(&next), link.next_data as usize).len;
            self.next = Some((next, link.next_data, next_len));
        }
        Some((frame, data as usize, len as usize))
    }
}

/// Calls `f` on each piece of the chain whose head piece starts at `data` in
/// `frame` (its link before it), up to `len` bytes in all, without taking
/// the chain: for readers that hold it by reference (a capture of a
/// multi-buffer `Desc`, [`SkBuff::for_each_piece`]).
pub(crate) fn walk_chain(umem: &Umem, frame: &Frame, data: usize, len: usize, mut f: impl FnMut(&[u8])) {
    let mut left = len;
    let buf = umem.frame(frame);
    let mut data = data;
    let mut link = Link::read(buf, data);
    let n = (link.len as usize).min(left).min(buf.len() - data);
    f(&buf[data..data + n]);
    left -= n;
    while link.next != 0 && left > 0 {
        // SAFETY: a word of this chain (see `Pieces::next`), rebuilt only
        // to read through it while the chain's owner is borrowed (the
        // caller's `&Frame` of its head), and given back to the chain
        // (`into_ring`) before the next one: at no time does a second
        // owner escape.
        let next = unsafe { Frame::from_ring(link.next) };
        data = link.next_data as usize;
        let buf = umem.frame(&next);
        link = Link::read(buf, data);
        let n = (link.len as usize).min(left).min(buf.len() - data);
        f(&buf[data..data + n]);
        left -= n;
        let _ = next.into_ring();
    }
}

impl SkBuff {
    #[inline]
    pub(crate) fn new(frame: Frame, data: usize, len: usize, peer: SocketAddrV4) -> SkBuff {
        debug_assert!(data + len <= u16::MAX as usize);
        SkBuff { frame, data: data as u16, len: len as u16, peer, tstamp: 0, nr_frags: 0 }
    }

    /// A chain a device built (`crate::netdevice::Desc` with `nr_frags`
    /// frames after the head): `len` bytes from `data` in `frame`, the head
    /// piece's link at `data`. The caller owns the chain's frames through it.
    #[inline]
    pub(crate) fn from_chain(frame: Frame, data: usize, len: usize, nr_frags: u16) -> SkBuff {
        let peer = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        SkBuff { frame, data: data as u16, len: len as u16, peer, tstamp: 0, nr_frags }
    }

    /// The length of the head piece: all of a one-frame datagram's bytes.
    #[inline]
    pub(crate) fn head_len(&self, umem: &Umem) -> usize {
        if self.nr_frags == 0 {
            self.len as usize
        } else {
            (Link::read(umem.frame(&self.frame), self.data as usize).len as usize).min(self.len as usize)
        }
    }

    /// The head frame, for reading headers in place (the head piece's bytes
    /// are at `data..data + head_len`).
    #[inline]
    pub(crate) fn head_frame(&self) -> &Frame {
        &self.frame
    }

    /// The data bytes of a datagram in one frame; of a chained one, its
    /// head piece only (read a chain with [`Self::copy_to`] or
    /// [`Self::for_each_piece`]).
    #[inline]
    pub fn data<'a>(&'a self, umem: &'a Umem) -> &'a [u8] {
        let start = self.data as usize;
        let buf = umem.frame(&self.frame);
        let len = if self.nr_frags == 0 {
            self.len as usize
        } else {
            (Link::read(buf, start).len as usize).min(self.len as usize)
        };
        &buf[start..start + len]
    }

    /// Whether the datagram spans several frames.
    #[inline]
    pub fn is_chained(&self) -> bool {
        self.nr_frags != 0
    }

    /// Frames the datagram holds, the head included.
    #[inline]
    pub fn frames(&self) -> usize {
        1 + self.nr_frags as usize
    }

    /// Calls `f` on each piece's bytes, in order, up to the datagram's
    /// length (pieces past a trimmed length are not shown).
    pub fn for_each_piece(&self, umem: &Umem, f: impl FnMut(&[u8])) {
        if self.nr_frags == 0 {
            let mut f = f;
            return f(self.data(umem));
        }
        walk_chain(umem, &self.frame, self.data as usize, self.len as usize, f);
    }

    /// The one's-complement sum (`crate::wire::checksum::sum`, unfolded) of
    /// the datagram's bytes added to `initial`, across its pieces whatever
    /// their lengths (a piece at an odd offset is summed byte-swapped, as
    /// `csum_block_add` does).
    pub fn csum(&self, umem: &Umem, initial: u64) -> u64 {
        use crate::wire::checksum::{fold, sum};
        let mut acc = initial;
        let mut odd = false;
        self.for_each_piece(umem, |p| {
            if odd {
                acc += u64::from(fold(sum(0, p)).swap_bytes());
            } else {
                acc = sum(acc, p);
            }
            odd ^= p.len() % 2 == 1;
        });
        acc
    }

    /// Moves the data start `n` bytes on (`skb_pull`): the head piece must
    /// hold them (`n` at most its length).
    pub(crate) fn pull(&mut self, umem: &Umem, n: usize) {
        debug_assert!(n <= self.len as usize);
        if self.nr_frags != 0 {
            let data = self.data as usize;
            let buf = umem.frame_mut(&mut self.frame);
            let mut link = Link::read(buf, data);
            debug_assert!(n <= link.len as usize);
            link.len -= n as u16;
            link.write(buf, data + n);
        }
        self.data += n as u16;
        self.len -= n as u16;
    }

    /// Cuts the datagram to its first `len` bytes (`pskb_trim`); the frames
    /// stay with it.
    pub(crate) fn trim(&mut self, len: usize) {
        debug_assert!(len <= self.len as usize);
        self.len = len as u16;
    }

    /// Copies the datagram's first `buf.len()` bytes (all of it if it fits)
    /// into `buf`; returns how many were copied.
    pub fn copy_to(&self, umem: &Umem, buf: &mut [u8]) -> usize {
        let mut at = 0;
        self.for_each_piece(umem, |p| {
            let n = p.len().min(buf.len() - at);
            buf[at..at + n].copy_from_slice(&p[..n]);
            at += n;
        });
        at
    }

    /// The pieces, consuming the datagram (see [`Pieces`]).
    pub(crate) fn into_pieces(self, umem: &Umem) -> Pieces<'_> {
        let len =
            if self.nr_frags == 0 { self.len } else { Link::read(umem.frame(&self.frame), self.data as usize).len };
        Pieces { umem, next: Some((self.frame, self.data, len)) }
    }

    /// Gives every frame of the datagram to `put` (`kfree_skb` of the head
    /// and its `frag_list`).
    #[inline]
    pub(crate) fn free(self, umem: &Umem, mut put: impl FnMut(Frame)) {
        if self.nr_frags == 0 {
            return put(self.frame);
        }
        for (frame, _, _) in self.into_pieces(umem) {
            put(frame);
        }
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

    /// Gives up the frame (to the free list or a ring) of a datagram in one
    /// frame; a chained one is freed with [`Self::free`].
    #[inline]
    pub(crate) fn into_frame(self) -> Frame {
        debug_assert_eq!(self.nr_frags, 0, "a chained datagram is freed with SkBuff::free");
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
    /// `data | len << 16 | port << 32 | nr_frags << 48`.
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
    /// Frames held beyond one per queued buffer (the chained datagrams'
    /// `nr_frags`): touched only by chained datagrams.
    frags: AtomicUsize,
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
            frags: AtomicUsize::new(0),
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
        let used = tail.wrapping_sub(self.head.load(Ordering::Acquire));
        if used >= self.cap {
            return Err(skb);
        }
        if skb.nr_frags != 0 {
            // Charged in frames: the chain must fit beside what is queued.
            let frags = self.frags.load(Ordering::Acquire);
            if used + frags + skb.frames() > self.cap {
                return Err(skb);
            }
            self.frags.fetch_add(skb.nr_frags as usize, Ordering::AcqRel);
        }
        let slot = &self.slots[tail & self.mask];
        let meta = u64::from(skb.data)
            | u64::from(skb.len) << 16
            | u64::from(skb.peer.port()) << 32
            | u64::from(skb.nr_frags) << 48;
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
        let skb = unsafe { Self::build(skb) };
        self.uncharge(&skb);
        Some(skb)
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
                Ok(_) => {
                    // SAFETY: the compare-and-swap moved `head` past this
                    // slot, a published one (head != tail), and only one
                    // reader's can.
                    let skb = unsafe { Self::build(words) };
                    self.uncharge(&skb);
                    return Some(skb);
                }
                Err(now) => head = now,
            }
        }
    }

    /// A chained datagram's frames leave the queue's charge.
    #[inline]
    fn uncharge(&self, skb: &SkBuff) {
        if skb.nr_frags != 0 {
            self.frags.fetch_sub(skb.nr_frags as usize, Ordering::AcqRel);
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
            nr_frags: (meta >> 48) as u16,
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

    /// Frames queued now, chained datagrams' frames included (the census).
    pub(crate) fn frames(&self) -> usize {
        self.len() + self.frags.load(Ordering::SeqCst)
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
            nr_frags: 0,
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

    /// A chain of five pieces of odd and even lengths: built, queued,
    /// read across, summed, pulled, and freed frame for frame.
    #[test]
    fn chain_reads_copies_sums_and_frees_every_frame() {
        let (umem, pool) = Umem::new(16, 2048).unwrap();
        let lens = [100usize, 1480, 7, 1480, 33];
        let mut all = Vec::new();
        let mut chain: Option<SkbChain> = None;
        for (i, &len) in lens.iter().enumerate() {
            let mut f = pool.get().unwrap();
            let data = 64 + i * 8;
            let bytes: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            umem.frame_mut(&mut f)[data..data + len].copy_from_slice(&bytes);
            all.extend_from_slice(&bytes);
            match &mut chain {
                None => chain = Some(SkbChain::new(&umem, f, data, len)),
                Some(c) => c.push(&umem, f, data, len),
            }
        }
        let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9);
        let skb = chain.unwrap().finish(peer);
        assert_eq!((skb.len(), skb.frames(), skb.is_chained()), (all.len(), 5, true));
        assert_eq!(pool.len(), 11);
        // Through a queue: one slot, five frames charged.
        let q = SkbQueue::new(8, Readers::Shared);
        q.push(skb).unwrap();
        assert_eq!((q.len(), q.frames()), (1, 5));
        let mut skb = q.pop().unwrap();
        assert_eq!(q.frames(), 0);
        let mut out = vec![0u8; 4000];
        assert_eq!(skb.copy_to(&umem, &mut out), all.len());
        assert_eq!(&out[..all.len()], &all[..]);
        let mut short = [0u8; 1000];
        assert_eq!(skb.copy_to(&umem, &mut short), 1000);
        assert_eq!(&short[..], &all[..1000]);
        use crate::wire::checksum::{fold, sum};
        assert_eq!(fold(skb.csum(&umem, 0)), fold(sum(0, &all)), "odd pieces summed as one");
        skb.pull(&umem, 10);
        assert_eq!(skb.data(&umem), &all[10..100]);
        assert_eq!(skb.copy_to(&umem, &mut out), all.len() - 10);
        assert_eq!(&out[..all.len() - 10], &all[10..]);
        skb.trim(200);
        assert_eq!(skb.copy_to(&umem, &mut out), 200);
        skb.free(&umem, |f| pool.put(f));
        assert_eq!(pool.len(), 16, "every frame back");
    }

    #[test]
    fn a_chain_is_charged_in_frames() {
        let q = SkbQueue::new(4, Readers::Exclusive);
        let mut big = skb(1);
        big.nr_frags = 3;
        q.push(skb(2)).unwrap();
        let back = q.push(big).unwrap_err();
        assert_eq!(back.nr_frags, 3, "1 + 4 frames do not fit in 4");
        let mut fits = skb(3);
        fits.nr_frags = 2;
        q.push(fits).unwrap();
        assert_eq!(q.frames(), 4);
        assert!(q.push(skb(4)).is_ok(), "a one-frame datagram still takes a free slot");
        assert_eq!(q.pop().unwrap().nr_frags, 0);
        assert_eq!(q.pop().unwrap().nr_frags, 2);
        assert_eq!(q.frames(), 1);
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
