//! The socket buffer: our `struct sk_buff`.
//!
//! An [`SkBuff`] is a UMEM [`Frame`] plus where its data lies in the frame
//! and the control block a protocol needs (here the peer's address). It moves
//! from the rx ring into a sock's receive queue and out to the application,
//! or from the application through the write queue to the tx ring, without a
//! copy of the frame and without allocation. Like the frame it wraps it is
//! move-only.

use std::net::SocketAddrV4;

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
}

impl SkBuff {
    #[inline]
    pub(crate) fn new(frame: Frame, data: usize, len: usize, peer: SocketAddrV4) -> SkBuff {
        debug_assert!(data + len <= u16::MAX as usize);
        SkBuff { frame, data: data as u16, len: len as u16, peer }
    }

    /// The data bytes.
    #[inline]
    pub fn data<'a>(&'a self, umem: &'a Umem) -> &'a [u8] {
        let start = self.data as usize;
        &umem.frame(&self.frame)[start..start + self.len as usize]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn peer(&self) -> SocketAddrV4 {
        self.peer
    }

    /// Gives up the frame (to the free list or a ring).
    #[inline]
    pub(crate) fn into_frame(self) -> Frame {
        self.frame
    }
}
