//! The UMEM: the DMA area that the kernel and this process share, cut into
//! equal frames (Documentation/networking/af_xdp.rst, "UMEM").
//!
//! This module owns the memory mapping and the rules that make sharing it
//! sound. A frame belongs to exactly one place at a time: either the kernel (a
//! descriptor on the fill, rx, tx or completion ring) or a [`Frame`] value in
//! this process. `Frame` is move-only, so the compiler keeps the books:
//! whoever holds the `Frame` may touch its bytes, nobody else.
//!
//! A `Frame` also names the UMEM it belongs to. Each [`Umem`] gets a process-
//! unique id (never reused), and a frame carries it next to its address in one
//! `u64`; [`Umem::frame`] and [`Umem::frame_mut`] check owner and bounds in
//! every build (one subtraction and one compare), so a frame of another UMEM,
//! or of one dropped since, is refused instead of reaching memory it does not
//! own. A foreign frame is a programming error, not input: `frame` panics
//! naming it, and [`Umem::get`] / [`Umem::get_mut`] return `None` for callers
//! that would rather handle it.
//!
//! Addresses that come back from the kernel (rx and completion rings) enter
//! through one checked door, [`Umem::take_from_kernel`]: an address outside
//! the UMEM, or an rx descriptor running past its frame, is refused for the
//! caller to count and drop.
//!
//! [`FramePool`] is the free list. It has a lock-free shared half that any
//! thread may return frames to (an application thread that has read a
//! datagram, say) and that the softirq loop refills the fill ring from.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use crossbeam_queue::ArrayQueue;

/// Bits of a [`Frame`] that hold its address. A UMEM has at most
/// `u32::MAX` frames of at most 4096 bytes, so every address is below 2^44.
const ADDR_BITS: u32 = 44;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;
/// The largest UMEM id: the 20 bits above the address.
const MAX_UMEM_ID: u32 = (1 << (64 - ADDR_BITS)) - 1;

/// The next UMEM id. Ids start at 1 (0 names no UMEM) and are never reused:
/// a frame that outlives its UMEM must not pass for a frame of a later one.
static NEXT_UMEM_ID: AtomicU32 = AtomicU32::new(1);

/// One UMEM frame, owned. Holding it is the right to read and write its bytes.
///
/// Eight bytes: the owning UMEM's id in the top 20 bits, the frame's base
/// address (its offset in the UMEM) in the low 44.
///
/// Not `Clone`: a frame can be in one place only. Frames are created once, by
/// [`Umem::new`] handing them all to the pool, and re-created only from
/// addresses the kernel gives back ([`Umem::take_from_kernel`]) or from our
/// own rings that hold frames as words ([`Frame::from_ring`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    bits: u64,
}

// A frame is one word, as the address alone was: the owner costs no space.
const _: () = assert!(std::mem::size_of::<Frame>() == 8);

impl Frame {
    /// The frame's base address: its offset in the UMEM, in bytes.
    #[inline]
    pub fn addr(&self) -> u64 {
        self.bits & ADDR_MASK
    }

    /// The id of the UMEM the frame belongs to (0: none, see [`Umem::id`]).
    #[inline]
    pub fn umem_id(&self) -> u32 {
        (self.bits >> ADDR_BITS) as u32
    }

    /// Puts the frame on a ring of our own that stores frames as words
    /// (a sock's receive queue, `crate::skbuff::SkbQueue`): the handle ends
    /// here and the ring owns the frame until [`Frame::from_ring`].
    #[inline]
    pub(crate) fn into_ring(self) -> u64 {
        self.bits
    }

    /// The word [`Frame::into_ring`] will give, without giving the frame up:
    /// for a chain that records where a frame goes before it hands the frame
    /// over (`crate::skbuff::SkbChain`).
    #[inline]
    pub(crate) fn word(&self) -> u64 {
        self.bits
    }

    /// Takes a frame back off one of our rings.
    ///
    /// # Safety
    ///
    /// `bits` must come from [`Frame::into_ring`], and each such word may be
    /// turned back into a frame once: a second `Frame` for the same bytes
    /// would let two owners write them at once. The ring's reader protocol
    /// (one claim per slot) is what guarantees it; the bounds and owner are
    /// still checked on every access, so a wrong word cannot reach outside
    /// the UMEM, but it can alias a frame held elsewhere.
    #[inline]
    pub(crate) unsafe fn from_ring(bits: u64) -> Frame {
        Frame { bits }
    }

    /// A frame that belongs to no UMEM (id 0): every [`Umem`] refuses it, so
    /// it reaches no memory. For tests of code that only moves frames.
    #[cfg(test)]
    pub(crate) fn unowned(addr: u64) -> Frame {
        Frame { bits: addr & ADDR_MASK }
    }
}

/// Why an address the kernel gave back was refused by
/// [`Umem::take_from_kernel`]. Either is a kernel or driver bug: the caller
/// counts it (`XskRxInvalidAddr`, `XskCqInvalidAddr`) and drops it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKernelAddr {
    /// The address lies beyond the end of the UMEM.
    OutsideUmem,
    /// The descriptor's data (`offset + len`) runs past the end of its frame.
    PastFrameEnd,
}

/// The mapped UMEM area.
pub struct Umem {
    area: NonNull<u8>,
    len: usize,
    frame_size: u32,
    frame_count: u32,
    /// This UMEM's id, shifted into place: `id << ADDR_BITS`.
    tag: u64,
    /// The highest frame base: `len - frame_size`.
    last_base: u64,
}

// SAFETY: `Umem` is a raw memory region. Its bytes are only reached through
// `get()` / `get_mut()` (and `frame()` / `frame_mut()` over them), which
// require a `Frame` of this UMEM (shared or exclusive borrow), and a frame is
// held by one owner at a time, so no two threads can get overlapping mutable
// access through this type.
unsafe impl Send for Umem {}
// SAFETY: see `Send` above: shared `&Umem` gives access only per owned frame.
unsafe impl Sync for Umem {}

impl Umem {
    /// Maps `frame_count` frames of `frame_size` bytes (a power of two between
    /// 2048 and the page size, as aligned-mode AF_XDP requires) and returns the
    /// area with a pool holding every frame.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad frame size or no frames; `OutOfMemory` once
    /// this process has created 2^20 - 1 UMEMs (ids are not reused, see
    /// [`Umem::id`]); the `mmap` error if the kernel refuses the mapping.
    pub fn new(frame_count: u32, frame_size: u32) -> io::Result<(Umem, FramePool)> {
        if !(2048..=4096).contains(&frame_size) || !frame_size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame size {frame_size} is not 2048 or 4096 (aligned AF_XDP frames are a power of two, at most a page)"),
            ));
        }
        if frame_count == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the UMEM needs at least one frame"));
        }
        let len = frame_count as usize * frame_size as usize;
        debug_assert!((len as u64) <= 1 << ADDR_BITS);
        let id = NEXT_UMEM_ID
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n <= MAX_UMEM_ID).then_some(n + 1))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    format!("this process has created {MAX_UMEM_ID} UMEMs, and UMEM ids are not reused"),
                )
            })?;
        // SAFETY: anonymous private mapping with no address hint; the kernel
        // picks the place, so no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let area = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null without MAP_FAILED");
        let tag = u64::from(id) << ADDR_BITS;
        let last_base = (len - frame_size as usize) as u64;
        let umem = Umem { area, len, frame_size, frame_count, tag, last_base };
        let pool = FramePool::new(frame_count as usize, id);
        for i in 0..frame_count {
            let pushed = pool.shared.push(Frame { bits: tag | (u64::from(i) * u64::from(frame_size)) });
            debug_assert!(pushed.is_ok());
        }
        Ok((umem, pool))
    }

    /// This UMEM's id: unique in the process for its whole life (1 to
    /// 2^20 - 1), carried by each of its frames ([`Frame::umem_id`]).
    #[inline]
    pub fn id(&self) -> u32 {
        (self.tag >> ADDR_BITS) as u32
    }

    /// Bytes per frame (2048 or 4096).
    #[inline]
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Frames in the UMEM.
    #[inline]
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// The base address of the frame that holds `addr` (aligned mode).
    #[inline]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// Whether `addr` lies inside this UMEM.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        addr < self.len as u64
    }

    /// Gives `frame` to the kernel (fill or tx ring) as its base address: the
    /// handle ends here, and comes back through [`Umem::take_from_kernel`].
    ///
    /// # Panics
    ///
    /// As [`Umem::frame`], if `frame` belongs to another UMEM: the kernel
    /// would write into whatever frame of this one has the same address.
    #[inline]
    pub(crate) fn give_to_kernel(&self, frame: Frame) -> u64 {
        match self.offset_of(&frame) {
            Some(addr) => addr as u64,
            None => foreign(frame.bits, self.tag),
        }
    }

    /// Takes back the frame that holds `addr`, an address the kernel returned
    /// on the rx ring (with the descriptor's `len`) or the completion ring
    /// (`len` 0: the ring carries no length). Returns the frame and the
    /// address's offset in it.
    ///
    /// In aligned mode every address inside the UMEM lies in exactly one
    /// frame, and the rings return the address we put there plus an offset
    /// inside the same frame (the rx headroom, or the tx descriptor's offset,
    /// for the completion ring echoes the tx descriptor's address). So the
    /// checks are: the address is inside the UMEM, and `offset + len` stays
    /// inside the frame.
    ///
    /// # Errors
    ///
    /// [`BadKernelAddr`] when either check fails: the caller counts the
    /// descriptor and drops it, and no frame is made.
    ///
    /// # Safety
    ///
    /// If `addr` passes the checks, the frame holding it must be one this
    /// process gave to the kernel (fill or tx ring, through
    /// [`Umem::give_to_kernel`]) on a socket bound to this UMEM, and has not
    /// taken back since: the kernel returns each frame it was given once
    /// (net/xdp/xsk_queue.h), and that is trusted, not checked here. Range
    /// and fit are checked, so a wrong address cannot reach outside the UMEM;
    /// an address that fails them makes no frame and needs nothing.
    #[inline]
    pub(crate) unsafe fn take_from_kernel(&self, addr: u64, len: u32) -> Result<(Frame, u32), BadKernelAddr> {
        if !self.contains(addr) {
            return Err(BadKernelAddr::OutsideUmem);
        }
        let base = self.frame_base(addr);
        let offset = (addr - base) as u32;
        if u64::from(offset) + u64::from(len) > u64::from(self.frame_size) {
            return Err(BadKernelAddr::PastFrameEnd);
        }
        Ok((Frame { bits: self.tag | base }, offset))
    }

    /// Where `frame` starts in the mapping, if it is a frame of this UMEM.
    ///
    /// One subtraction and one compare check owner and bounds at once: the
    /// UMEM is below 2^44 bytes and ids differ in the bits above, so the
    /// difference of a foreign frame's word and this UMEM's tag is 2^44 or
    /// more whichever id is larger, and past `last_base`.
    #[inline(always)]
    fn offset_of(&self, frame: &Frame) -> Option<usize> {
        let off = frame.bits.wrapping_sub(self.tag);
        (off <= self.last_base).then_some(off as usize)
    }

    /// The bytes of a frame (`frame_size` of them), or `None` if `frame`
    /// belongs to another UMEM.
    #[inline]
    pub fn get<'a>(&'a self, frame: &'a Frame) -> Option<&'a [u8]> {
        let off = self.offset_of(frame)?;
        // SAFETY: `off <= len - frame_size`, so the slice lies inside the
        // mapping; frames of this UMEM are disjoint (bases are multiples of
        // `frame_size`: made by `new` and `take_from_kernel`), and holding
        // `&Frame` means no one holds `&mut` to the same frame.
        Some(unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(off), self.frame_size as usize) })
    }

    /// The bytes of a frame, writable, or `None` if `frame` belongs to
    /// another UMEM.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub fn get_mut<'a>(&'a self, frame: &'a mut Frame) -> Option<&'a mut [u8]> {
        let off = self.offset_of(frame)?;
        // SAFETY: as in `get`; `&mut Frame` is the exclusive right to these
        // bytes, since the handle is unique and not `Clone`.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(off), self.frame_size as usize) })
    }

    /// The bytes of a frame (`frame_size` of them).
    ///
    /// # Panics
    ///
    /// If `frame` belongs to another UMEM (or to one dropped since): a
    /// program that mixes up its UMEMs has a bug, and reading on would read
    /// someone else's memory. [`Umem::get`] returns `None` instead.
    #[inline]
    pub fn frame<'a>(&'a self, frame: &'a Frame) -> &'a [u8] {
        match self.get(frame) {
            Some(bytes) => bytes,
            None => foreign(frame.bits, self.tag),
        }
    }

    /// The bytes of a frame, writable.
    ///
    /// # Panics
    ///
    /// As [`Umem::frame`], for a frame of another UMEM.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub fn frame_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        let off = match self.offset_of(frame) {
            Some(off) => off,
            None => foreign(frame.bits, self.tag),
        };
        // SAFETY: as in `get_mut` (the same check, done just above).
        unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(off), self.frame_size as usize) }
    }

    /// The whole area, for registering it with the kernel (`XDP_UMEM_REG`).
    pub(crate) fn area(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.area, self.len)
    }
}

/// The panic of [`Umem::frame`] and friends for a frame of another UMEM. Out
/// of line, and given words rather than references, so that the check costs
/// the hot path a subtraction and a compare only (the frame need not be in
/// memory for the call).
#[cold]
#[inline(never)]
fn foreign(bits: u64, tag: u64) -> ! {
    panic!(
        "frame {:#x} of UMEM {} used with UMEM {}: a frame must go back to the UMEM it came from",
        bits & ADDR_MASK,
        bits >> ADDR_BITS,
        tag >> ADDR_BITS
    )
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `new` mapped; the XSK socket that
        // registered it is dropped before the `Umem` (it holds an `Arc`).
        unsafe {
            libc::munmap(self.area.as_ptr().cast(), self.len);
        }
    }
}

/// The free list. The shared half is lock-free (multi-producer,
/// multi-consumer); the softirq loop additionally keeps a private cache of
/// frames so that its per-packet recycling touches no shared memory.
pub struct FramePool {
    shared: ArrayQueue<Frame>,
    /// The id of the UMEM whose frames this pool holds.
    umem_id: u32,
}

impl FramePool {
    fn new(capacity: usize, umem_id: u32) -> FramePool {
        FramePool { shared: ArrayQueue::new(capacity), umem_id }
    }

    /// Takes a free frame, if any.
    #[inline]
    pub fn get(&self) -> Option<Frame> {
        self.shared.pop()
    }

    /// Returns a frame to the free list.
    ///
    /// # Panics
    ///
    /// If `frame` belongs to another UMEM than the pool's (a programming
    /// error, as in [`Umem::frame`]), or exists twice (impossible in safe code).
    #[inline]
    pub fn put(&self, frame: Frame) {
        assert!(
            frame.umem_id() == self.umem_id,
            "frame {:#x} of UMEM {} returned to the pool of UMEM {}",
            frame.addr(),
            frame.umem_id(),
            self.umem_id
        );
        // The queue holds every frame of the UMEM, so it can never be full: a
        // failure here means a frame was duplicated, which `Frame` forbids.
        if self.shared.push(frame).is_err() {
            unreachable!("frame pool overflow: a frame exists twice");
        }
    }

    /// Free frames in the shared list.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether the shared list holds no free frame.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }
}

/// Where every frame of the UMEM is, at one moment. The parts always add up
/// to the UMEM's frame count; a frame missing from the census is a leak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameCensus {
    /// Frames in the UMEM.
    pub total: usize,
    /// On the fill, rx, tx or completion ring.
    pub in_kernel: usize,
    /// In the loop's own free cache.
    pub free_local: usize,
    /// In the shared free list.
    pub free_shared: usize,
    /// On socks' receive and write queues.
    pub in_socks: usize,
    /// Waiting for ARP.
    pub awaiting_neighbour: usize,
    /// Waiting for room on the tx ring.
    pub tx_backlog: usize,
    /// Held by IP reassembly queues (fragments waiting for the rest of
    /// their datagram, `crate::ipv4::ip_fragment`).
    #[serde(default)]
    pub in_reasm: usize,
}

impl FrameCensus {
    /// The parts added up: equal to `total` when no frame leaked.
    pub fn accounted(&self) -> usize {
        self.in_kernel
            + self.free_local
            + self.free_shared
            + self.in_socks
            + self.awaiting_neighbour
            + self.tx_backlog
            + self.in_reasm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_starts_free_and_disjoint() {
        let (umem, pool) = Umem::new(64, 2048).unwrap();
        assert_eq!(pool.len(), 64);
        let mut frames: Vec<Frame> = std::iter::from_fn(|| pool.get()).collect();
        assert_eq!(frames.len(), 64);
        for (i, f) in frames.iter_mut().enumerate() {
            umem.frame_mut(f).fill(i as u8);
        }
        for (i, f) in frames.iter().enumerate() {
            assert!(umem.frame(f).iter().all(|&b| b == i as u8));
            assert_eq!(umem.frame_base(f.addr() + 100), f.addr());
        }
        frames.into_iter().for_each(|f| pool.put(f));
        assert_eq!(pool.len(), 64);
    }

    #[test]
    fn rejects_bad_frame_sizes() {
        assert!(Umem::new(16, 1000).is_err());
        assert!(Umem::new(16, 8192).is_err());
        assert!(Umem::new(0, 2048).is_err());
    }

    /// Both directions, and a smaller UMEM whose range a foreign address
    /// would overrun: `get` says no, `frame`/`frame_mut` panic naming the
    /// bug, and neither reads a byte.
    #[test]
    fn a_frame_of_another_umem_is_refused() {
        let (big, big_pool) = Umem::new(64, 2048).unwrap();
        let (small, small_pool) = Umem::new(4, 4096).unwrap();
        assert_ne!(big.id(), small.id());
        let mut big_frames: Vec<Frame> = std::iter::from_fn(|| big_pool.get()).collect();
        let mut small_frames: Vec<Frame> = std::iter::from_fn(|| small_pool.get()).collect();
        // Past the small UMEM's end, and inside its range: both refused.
        for f in big_frames.iter_mut() {
            assert!(small.get(f).is_none(), "{f:?}");
            assert!(small.get_mut(f).is_none(), "{f:?}");
            assert!(big.get(f).is_some());
        }
        for f in small_frames.iter_mut() {
            assert!(big.get(f).is_none(), "{f:?}");
            assert!(big.get_mut(f).is_none(), "{f:?}");
            assert_eq!(small.get(f).map(<[u8]>::len), Some(4096));
        }
        let last = big_frames.last().unwrap();
        let msg = std::panic::catch_unwind(|| small.frame(last).len()).unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains(&format!("of UMEM {} used with UMEM {}", big.id(), small.id())), "{msg}");
        let first = small_frames.first_mut().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| big.frame_mut(first)[0] = 1));
        assert!(r.is_err());
        let to_kernel = std::panic::AssertUnwindSafe(|| big.give_to_kernel(small_frames.pop().unwrap()));
        assert!(std::panic::catch_unwind(to_kernel).is_err(), "a foreign frame never reaches the kernel");
        let to_pool = std::panic::AssertUnwindSafe(|| big_pool.put(small_frames.pop().unwrap()));
        assert!(std::panic::catch_unwind(to_pool).is_err(), "nor another UMEM's pool");
        small_frames.into_iter().for_each(|f| small_pool.put(f));
        big_frames.into_iter().for_each(|f| big_pool.put(f));
    }

    /// Ids are not reused: a frame that outlives its UMEM never passes for a
    /// frame of a later one, even one of the same shape.
    #[test]
    fn a_frame_of_a_dropped_umem_is_refused() {
        let (old, pool) = Umem::new(8, 2048).unwrap();
        let stale = pool.get().unwrap();
        drop(old);
        let (new, _pool) = Umem::new(8, 2048).unwrap();
        assert!(new.get(&stale).is_none());
        assert!(Frame::unowned(stale.addr()).umem_id() == 0 && new.get(&Frame::unowned(0)).is_none());
    }

    #[test]
    fn kernel_addresses_are_checked() {
        let (umem, pool) = Umem::new(4, 2048).unwrap();
        let frame = pool.get().unwrap();
        let base = frame.addr();
        let addr = umem.give_to_kernel(frame) + 256;
        // SAFETY: for every call, the frame at `base` was given to the "kernel"
        // above and is taken back once, by the call that succeeds; the
        // refused addresses make no frame.
        unsafe {
            assert_eq!(umem.take_from_kernel(4 * 2048, 60), Err(BadKernelAddr::OutsideUmem));
            assert_eq!(umem.take_from_kernel(u64::MAX, 0), Err(BadKernelAddr::OutsideUmem));
            assert_eq!(umem.take_from_kernel(1 << 50, 0), Err(BadKernelAddr::OutsideUmem));
            assert_eq!(umem.take_from_kernel(addr, 2048 - 256 + 1), Err(BadKernelAddr::PastFrameEnd));
            assert_eq!(umem.take_from_kernel(addr, u32::MAX), Err(BadKernelAddr::PastFrameEnd));
            let (mut back, offset) = umem.take_from_kernel(addr, 2048 - 256).unwrap();
            assert_eq!((back.addr(), offset), (base, 256));
            assert_eq!(back.umem_id(), umem.id());
            umem.frame_mut(&mut back)[2047] = 7;
            pool.put(back);
        }
    }
}
