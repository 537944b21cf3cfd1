//! The UMEM: the DMA area that the kernel and this process share, cut into
//! equal frames (Documentation/networking/af_xdp.rst, "UMEM").
//!
//! This module owns the memory mapping and the one rule that makes sharing it
//! sound: a frame belongs to exactly one place at a time. That place is either
//! the kernel (a descriptor on the fill, rx, tx or completion ring) or a
//! [`Frame`] value in this process. `Frame` is move-only, so the compiler keeps
//! the books: whoever holds the `Frame` may touch its bytes, nobody else.
//!
//! [`FramePool`] is the free list. It has a lock-free shared half that any
//! thread may return frames to (an application thread that has read a
//! datagram, say) and that the softirq loop refills the fill ring from.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;

use crossbeam_queue::ArrayQueue;

/// One UMEM frame, owned. Holding it is the right to read and write its bytes.
///
/// Not `Clone`: a frame can be in one place only. Frames are created once, by
/// [`Umem::new`] handing them all to the pool, and re-created only from
/// addresses the kernel gives back on the rx and completion rings.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    addr: u64,
}

impl Frame {
    /// The frame's base address: its offset in the UMEM.
    #[inline]
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Takes back a frame the kernel returned on the rx or completion ring.
    /// `base` must be a frame base the kernel got from us; only the ring
    /// owners call this.
    #[inline]
    pub(crate) fn from_kernel(base: u64) -> Frame {
        Frame { addr: base }
    }

    /// Gives the frame to the kernel (fill or tx ring): the handle ends here.
    #[inline]
    pub(crate) fn into_kernel(self) -> u64 {
        self.addr
    }

    /// Puts the frame on a ring of our own that stores frames as addresses
    /// (a sock's receive queue, `crate::skbuff::SkbQueue`): the handle ends
    /// here and the ring owns the frame until [`Frame::from_ring`].
    #[inline]
    pub(crate) fn into_ring(self) -> u64 {
        self.addr
    }

    /// Takes a frame back off one of our rings. `addr` must come from
    /// [`Frame::into_ring`], once: only the ring's reader calls this.
    #[inline]
    pub(crate) fn from_ring(addr: u64) -> Frame {
        Frame { addr }
    }
}

/// The mapped UMEM area.
pub struct Umem {
    area: NonNull<u8>,
    len: usize,
    frame_size: u32,
    frame_count: u32,
}

// SAFETY: `Umem` is a raw memory region. Its bytes are only reached through
// `frame()` / `frame_mut()`, which require a `Frame` (shared or exclusive
// borrow), and a frame is held by one owner at a time, so no two threads can
// get overlapping mutable access through this type.
unsafe impl Send for Umem {}
// SAFETY: see `Send` above: shared `&Umem` gives access only per owned frame.
unsafe impl Sync for Umem {}

impl Umem {
    /// Maps `frame_count` frames of `frame_size` bytes (a power of two between
    /// 2048 and the page size, as aligned-mode AF_XDP requires).
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
        let umem = Umem { area, len, frame_size, frame_count };
        let pool = FramePool::new(frame_count as usize);
        for i in 0..frame_count {
            let pushed = pool.shared.push(Frame { addr: u64::from(i) * u64::from(frame_size) });
            debug_assert!(pushed.is_ok());
        }
        Ok((umem, pool))
    }

    #[inline]
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    #[inline]
    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// The base address of the frame that holds `addr` (aligned mode).
    #[inline]
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// Whether `addr` lies inside this UMEM: a descriptor from the kernel
    /// that does not is a kernel or driver bug, and is counted, not trusted.
    #[inline]
    pub fn contains(&self, addr: u64) -> bool {
        addr < self.len as u64
    }

    /// The bytes of a frame.
    #[inline]
    pub fn frame<'a>(&'a self, frame: &'a Frame) -> &'a [u8] {
        debug_assert!(self.contains(frame.addr));
        // SAFETY: `frame.addr` is a frame base inside the area (frames are only
        // made by `new` and from kernel addresses checked with `contains`), the
        // slice stays inside the mapping, and holding `&Frame` means no one
        // holds `&mut` to the same frame.
        unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(frame.addr as usize), self.frame_size as usize) }
    }

    /// The bytes of a frame, writable.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub fn frame_mut<'a>(&'a self, frame: &'a mut Frame) -> &'a mut [u8] {
        debug_assert!(self.contains(frame.addr));
        // SAFETY: as in `frame`; `&mut Frame` is the exclusive right to these
        // bytes, since the handle is unique and not `Clone`.
        unsafe { std::slice::from_raw_parts_mut(self.area.as_ptr().add(frame.addr as usize), self.frame_size as usize) }
    }

    /// The whole area, for registering it with the kernel (`XDP_UMEM_REG`).
    pub(crate) fn area(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.area, self.len)
    }
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
}

impl FramePool {
    fn new(capacity: usize) -> FramePool {
        FramePool { shared: ArrayQueue::new(capacity) }
    }

    /// Takes a free frame, if any.
    #[inline]
    pub fn get(&self) -> Option<Frame> {
        self.shared.pop()
    }

    /// Returns a frame to the free list.
    #[inline]
    pub fn put(&self, frame: Frame) {
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

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
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
}
