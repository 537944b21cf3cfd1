//! The loop's side of the device queue: its frame cache and its transmit
//! batch (`struct netdev_queue` and the per-CPU skb cache of net/core/dev.c).
//!
//! Protocol handlers borrow a [`NetdevQueue`] for one packet: they take a
//! free frame for a reply ([`NetdevQueue::alloc_frame`]), give back a frame
//! they are done with ([`NetdevQueue::free_frame`], Linux's `consume_skb`),
//! drop a frame for a reason ([`NetdevQueue::kfree_skb_reason`], Linux's
//! `kfree_skb_reason`), and put a finished frame on the transmit batch
//! ([`dev_queue_xmit`]). The queue holds the capture tap, when there is one
//! ([`crate::capture`]): frames are handed to it as they pass. The NAPI
//! poller ([`crate::softirq`]) hands the batch to the tx ring once per poll and
//! refills the fill ring from the cache. Nothing here touches a ring.

use std::sync::Arc;

use crate::capture::{CaptureMode, CaptureTap, Link};
use crate::netdevice::Desc;
use crate::snmp::{Mib, MibCounter};
use crate::umem::{Frame, FramePool, Umem};
use crate::wire::ethernet::{self, EthernetFrame, EthernetRepr};
use crate::wire::EthernetAddress;

/// The frame cache and transmit batch of one device queue.
pub struct NetdevQueue {
    umem: Arc<Umem>,
    pool: Arc<FramePool>,
    /// The loop's private free frames: recycled and reused without touching
    /// shared memory.
    free: Vec<Frame>,
    /// Packets ready for the tx ring, oldest first.
    tx: Vec<Desc>,
    /// Cap on `tx`, so a full tx ring cannot grow memory.
    tx_backlog_max: usize,
    /// The packet capture, if on: with none, each tap point costs one branch.
    tap: Option<Box<CaptureTap>>,
}

impl NetdevQueue {
    /// A queue over `umem`, whose free frames are in `pool`; the transmit
    /// backlog holds at most half the UMEM's frames.
    pub fn new(umem: Arc<Umem>, pool: Arc<FramePool>) -> NetdevQueue {
        let frames = umem.frame_count() as usize;
        NetdevQueue {
            umem,
            pool,
            free: Vec::with_capacity(frames),
            tx: Vec::with_capacity(frames),
            tx_backlog_max: frames / 2,
            tap: None,
        }
    }

    /// Starts handing frames to `tap` (see [`crate::capture`]).
    pub fn attach_capture(&mut self, tap: CaptureTap) {
        self.tap = Some(Box::new(tap));
    }

    /// Stops the capture and gives the tap back, for its summary.
    pub fn detach_capture(&mut self) -> Option<CaptureTap> {
        self.tap.take().map(|t| *t)
    }

    /// Frames the capture could not take for want of a free slot
    /// (`XskCaptureDrops`); 0 without a capture.
    pub fn capture_drops(&self) -> u64 {
        self.tap.as_ref().map_or(0, |t| t.capture_drops())
    }

    /// Whether a capture of dropped frames is on (`--pcap-drops`).
    #[inline]
    pub fn drop_capture_on(&self) -> bool {
        self.tap.as_ref().is_some_and(|t| t.mode() == CaptureMode::Drops)
    }

    /// The capture tap, if on.
    #[inline]
    pub(crate) fn tap_mut(&mut self) -> Option<&mut CaptureTap> {
        self.tap.as_deref_mut()
    }

    /// The UMEM the frames belong to.
    #[inline]
    pub fn umem(&self) -> &Arc<Umem> {
        &self.umem
    }

    /// The shared free list.
    #[inline]
    pub fn pool(&self) -> &Arc<FramePool> {
        &self.pool
    }

    /// A free frame for a packet the stack builds: from the cache, else the
    /// shared list; `None` when every frame is in use (`XskNoFreeFrames`).
    #[inline]
    pub fn alloc_frame(&mut self) -> Option<Frame> {
        self.free.pop().or_else(|| self.pool.get())
    }

    /// Returns a frame the stack is done with to the cache (`consume_skb`:
    /// the frame was used, not dropped).
    #[inline]
    pub fn free_frame(&mut self, frame: Frame) {
        self.free.push(frame);
    }

    /// Drops a received frame for `reason`, the counter the caller has
    /// bumped (`kfree_skb_reason`, net/core/skbuff.c): hands it to a drop
    /// capture, as received, then returns it to the cache.
    #[inline]
    pub fn kfree_skb_reason(&mut self, frame: Frame, reason: MibCounter) {
        debug_assert!(reason.drop_reason().is_some(), "{} is not a drop counter", reason.name());
        if self.tap.is_some() {
            self.tap_drop_rx(&frame, reason);
        }
        self.free.push(frame);
    }

    /// Drops a packet on its way out for `reason` (the counter the caller
    /// has bumped): the bytes at `at` in `frame` start with the header
    /// `link` says. Hands it to a drop capture, then returns the frame to the cache.
    #[inline]
    pub fn kfree_xmit_reason(&mut self, frame: Frame, at: std::ops::Range<usize>, link: Link, reason: MibCounter) {
        debug_assert!(reason.drop_reason().is_some(), "{} is not a drop counter", reason.name());
        if self.tap.is_some() {
            self.tap_drop_tx(&frame, at, link, reason);
        }
        self.free.push(frame);
    }

    // The tap's work is out of line (and cold: without a capture it never
    // runs), so that each tap point adds one branch to the loop's code and no more.

    #[cold]
    #[inline(never)]
    fn tap_drop_rx(&mut self, frame: &Frame, reason: MibCounter) {
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.drop_rx(&self.umem, frame, reason);
        }
    }

    #[cold]
    #[inline(never)]
    fn tap_drop_tx(&mut self, frame: &Frame, at: std::ops::Range<usize>, link: Link, reason: MibCounter) {
        if let Some(tap) = self.tap.as_deref_mut() {
            if let Some(bytes) = self.umem.frame(frame).get(at) {
                tap.drop_tx(bytes, link, reason);
            }
        }
    }

    /// A batch off the rx ring, for the tap (see [`CaptureTap::rx_batch`]).
    #[cold]
    #[inline(never)]
    pub(crate) fn tap_rx_batch(&mut self, batch: &[Desc]) {
        if let Some(tap) = self.tap.as_deref_mut() {
            tap.rx_batch(&self.umem, batch);
        }
    }

    /// A frame going onto the transmit batch, for the tap (see [`CaptureTap::tx`]).
    #[cold]
    #[inline(never)]
    fn tap_tx(&mut self, d: &Desc) {
        if let Some(tap) = self.tap.as_deref_mut() {
            let at = d.offset as usize;
            if let Some(bytes) = self.umem.frame(&d.frame).get(at..at + d.len as usize) {
                tap.tx(bytes);
            }
        }
    }

    /// Whether a capture is on: the one branch per tap point.
    #[inline]
    pub(crate) fn tapping(&self) -> bool {
        self.tap.is_some()
    }

    /// The cache, for the device's fill and completion rings.
    #[inline]
    pub(crate) fn cache(&mut self) -> &mut Vec<Frame> {
        &mut self.free
    }

    /// Tops the cache up from the shared list to `want` frames (what the fill
    /// ring has room for), so the fill ring stays full without the cache
    /// holding frames beyond that, which application threads need to send.
    pub(crate) fn top_up(&mut self, want: usize) {
        while self.free.len() < want {
            match self.pool.get() {
                Some(f) => self.free.push(f),
                None => break,
            }
        }
    }

    /// Gives frames beyond `keep` back to the shared list, so the loop's cache
    /// does not hoard frames that application threads need.
    pub(crate) fn trim(&mut self, keep: usize) {
        while self.free.len() > keep {
            let Some(f) = self.free.pop() else { break };
            self.pool.put(f);
        }
    }

    /// Frames in the cache.
    pub fn cached(&self) -> usize {
        self.free.len()
    }

    /// The transmit batch, for the device.
    #[inline]
    pub(crate) fn tx_batch(&mut self) -> &mut Vec<Desc> {
        &mut self.tx
    }

    /// Packets waiting for room on the tx ring.
    pub fn tx_backlog(&self) -> usize {
        self.tx.len()
    }

    /// Frees every packet waiting for the tx ring (on shutdown).
    pub(crate) fn drop_tx_backlog(&mut self) {
        for d in std::mem::take(&mut self.tx) {
            self.free.push(d.frame);
        }
    }
}

/// Puts a packet whose next hop is known on the transmit batch
/// (`dev_queue_xmit`): writes its Ethernet header (`src` → `dst`,
/// `ethertype`) in the 14 bytes at `d.offset`, and hands the frame to the
/// capture tap if there is one (`dev_queue_xmit_nit`). When the backlog is
/// full the frame is dropped and counted (`XskTxRingFull`).
#[inline]
pub fn dev_queue_xmit(
    q: &mut NetdevQueue,
    mib: &mut Mib,
    mut d: Desc,
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: u16,
) {
    let at = d.offset as usize;
    let eth = EthernetRepr { dst, src, ethertype };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut q.umem.frame_mut(&mut d.frame)[at..at + ethernet::HEADER_LEN]));
    if q.tx.len() >= q.tx_backlog_max {
        mib.XskTxRingFull += 1;
        return q.kfree_xmit_reason(d.frame, at..at + d.len as usize, Link::Ethernet, MibCounter::XskTxRingFull);
    }
    if q.tap.is_some() {
        q.tap_tx(&d);
    }
    q.tx.push(d);
}
