//! The device seen from the softirq loop: where received frames come from and
//! where frames to send go, as descriptor batches.
//!
//! [`NetDevice`] is what a NIC driver offers NAPI: receive a batch under a
//! budget, take frames to receive into (the fill ring), transmit a batch, give
//! back what was sent (the completion ring). The AF_XDP socket
//! ([`crate::xsk::XskDevice`]) is the real one; [`MemDevice`] is an in-memory
//! device so that the whole loop can be tested and measured without a kernel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::umem::{Frame, Umem};

/// A frame on its way in or out: the frame, and where its packet lies in it.
#[derive(Debug)]
pub struct Desc {
    /// The frame.
    pub frame: Frame,
    /// Offset of the packet from the frame base.
    pub offset: u32,
    /// Length of the packet, bytes.
    pub len: u32,
}

/// Counters of the device queue that only the device knows: the kernel's
/// `XDP_STATISTICS` for an AF_XDP socket (`struct xdp_statistics`,
/// include/uapi/linux/if_xdp.h), and the `Xsk…` counters of the checks our
/// side makes on what the kernel hands back (serialized under those names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceStats {
    /// Frames dropped by the kernel for reasons other than the two below.
    pub rx_dropped: u64,
    /// Rx descriptors the kernel found invalid.
    pub rx_invalid_descs: u64,
    /// Tx descriptors the kernel found invalid (address or length out of the UMEM).
    pub tx_invalid_descs: u64,
    /// Frames dropped because the rx ring was full (we did not keep up).
    pub rx_ring_full: u64,
    /// Frames dropped because the fill ring was empty (no frame to receive into).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty when asked to send.
    pub tx_ring_empty_descs: u64,
    /// Rx descriptors refused because their address lay outside the UMEM or
    /// their data ran past the end of the frame: counted and dropped, never
    /// read (a kernel or driver bug; see `Umem::take_from_kernel`).
    #[serde(rename = "XskRxInvalidAddr")]
    pub xsk_rx_invalid_addr: u64,
    /// Completion-ring addresses refused because they lay outside the UMEM.
    #[serde(rename = "XskCqInvalidAddr")]
    pub xsk_cq_invalid_addr: u64,
    /// Times the rings gave back more frames than our books said the kernel
    /// held: the count was clamped at zero rather than wrapped.
    #[serde(rename = "XskInKernelUnderflow")]
    pub xsk_in_kernel_underflow: u64,
}

/// A device queue as NAPI sees it: batches of descriptors in and out.
pub trait NetDevice {
    /// Moves up to `budget` received packets into `batch` (appending).
    /// Touches the rx ring's indices once. Every descriptor it appends has
    /// `offset + len` inside its frame: a device checks what it did not build
    /// itself (an AF_XDP socket counts and drops a bad descriptor, see
    /// [`DeviceStats::xsk_rx_invalid_addr`]). The stack relies on it: a
    /// descriptor that breaks it stops the loop at a bounds-checked slice.
    fn receive(&mut self, budget: usize, batch: &mut Vec<Desc>);

    /// Gives frames from the end of `free` to the device to receive into
    /// (the fill ring); returns how many it took.
    fn fill(&mut self, free: &mut Vec<Frame>) -> usize;

    /// Frames the fill ring can still take, as far as this side knows (the
    /// kernel publishes its progress lazily, so this may under-count).
    fn fill_room(&self) -> usize;

    /// The fill ring's size.
    fn fill_capacity(&self) -> usize;

    /// Queues packets from the front of `batch` for transmission, removing
    /// those it took; returns how many. Kicks the kernel only when it asks.
    fn transmit(&mut self, batch: &mut Vec<Desc>) -> usize;

    /// Moves transmitted frames (the completion ring) to `free`.
    fn complete(&mut self, free: &mut Vec<Frame>) -> usize;

    /// Frames the kernel holds now (fill, rx, tx and completion rings).
    fn frames_in_kernel(&self) -> usize;

    /// The device's own counters.
    fn stats(&self) -> DeviceStats;

    /// Kicks the kernel to receive, if the fill ring says it needs it
    /// (`XDP_USE_NEED_WAKEUP`). Called when a poll found nothing to do.
    fn wake_rx(&mut self) {}

    /// Kicks of the transmit ring made so far (`XskTxKicks`; 0 for a device
    /// that needs none).
    fn tx_kicks(&self) -> u64 {
        0
    }

    /// Wake-ups of the receive side made so far ([`Self::wake_rx`] calls that
    /// were system calls; `XskRxWakeups`).
    fn rx_wakeups(&self) -> u64 {
        0
    }
}

/// An in-memory device: tests inject frames as bytes and read what was sent.
/// It copies into frames from its fill ring as the kernel does in copy mode,
/// and drops with `rx_fill_ring_empty_descs` when there is none. Its "wire"
/// side ([`MemWire`]) can be used from another thread than the loop's: the
/// state sits behind one mutex, taken once per batch.
pub struct MemDevice {
    wire: MemWire,
    /// The fill ring's size, fixed: asked for every poll, so kept outside the lock.
    fill_size: usize,
}

/// The far side of a [`MemDevice`]: where tests put frames and read them.
#[derive(Clone)]
pub struct MemWire {
    umem: Arc<Umem>,
    inner: Arc<Mutex<MemRings>>,
    /// The completion ring's length, written under the lock: the loop looks
    /// at it without the lock, as it would read a ring's producer index.
    completions: Arc<AtomicUsize>,
}

struct MemRings {
    fill_ring: VecDeque<Frame>,
    fill_size: usize,
    /// Oldest first. A `Vec`, not a `VecDeque`: the loop takes the whole ring
    /// at once when it fits its budget, which is a move of the buffer.
    rx_ring: Vec<Desc>,
    rx_size: usize,
    transmitted: VecDeque<Desc>,
    completion_ring: VecDeque<Frame>,
    stats: DeviceStats,
    rx_headroom: u32,
    /// Transmit calls that sent anything (`XskTxKicks`).
    kicks: u64,
}

impl MemDevice {
    /// A device over `umem` with a fill ring of `fill_size` and an rx ring
    /// of `rx_size` descriptors.
    pub fn new(umem: Arc<Umem>, fill_size: usize, rx_size: usize) -> MemDevice {
        let rings = MemRings {
            fill_ring: VecDeque::with_capacity(fill_size),
            fill_size,
            rx_ring: Vec::with_capacity(rx_size),
            rx_size,
            transmitted: VecDeque::new(),
            completion_ring: VecDeque::new(),
            stats: DeviceStats::default(),
            rx_headroom: 256,
            kicks: 0,
        };
        let wire = MemWire { umem, inner: Arc::new(Mutex::new(rings)), completions: Arc::new(AtomicUsize::new(0)) };
        MemDevice { wire, fill_size }
    }

    /// The far side, for the test or benchmark that plays the peer.
    pub fn wire(&self) -> MemWire {
        self.wire.clone()
    }

    fn rings(&self) -> std::sync::MutexGuard<'_, MemRings> {
        self.wire.rings()
    }
}

impl MemWire {
    fn rings(&self) -> std::sync::MutexGuard<'_, MemRings> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wire delivers `packet`: copied into a fill-ring frame and put on
    /// the rx ring, or dropped and counted as the kernel would.
    pub fn inject(&self, packet: &[u8]) -> bool {
        let mut r = self.rings();
        let room = self.umem.frame_size() - r.rx_headroom;
        if packet.len() > room as usize {
            r.stats.rx_dropped += 1;
            return false;
        }
        if r.rx_ring.len() >= r.rx_size {
            r.stats.rx_ring_full += 1;
            return false;
        }
        let Some(mut frame) = r.fill_ring.pop_front() else {
            r.stats.rx_fill_ring_empty_descs += 1;
            return false;
        };
        let at = r.rx_headroom as usize;
        self.umem.frame_mut(&mut frame)[at..at + packet.len()].copy_from_slice(packet);
        let offset = r.rx_headroom;
        r.rx_ring.push(Desc { frame, offset, len: packet.len() as u32 });
        true
    }

    /// Takes the packets sent so far (their frames go to the completion ring).
    pub fn take_transmitted(&self) -> Vec<Vec<u8>> {
        let mut r = self.rings();
        let mut out = Vec::with_capacity(r.transmitted.len());
        while let Some(d) = r.transmitted.pop_front() {
            let start = d.offset as usize;
            out.push(self.umem.frame(&d.frame)[start..start + d.len as usize].to_vec());
            r.completion_ring.push_back(d.frame);
        }
        self.completions.store(r.completion_ring.len(), Ordering::Release);
        out
    }

    /// Completes what was sent without copying it (for benchmarks).
    pub fn complete_transmitted(&self) -> usize {
        let mut r = self.rings();
        let n = r.transmitted.len();
        while let Some(d) = r.transmitted.pop_front() {
            r.completion_ring.push_back(d.frame);
        }
        self.completions.store(r.completion_ring.len(), Ordering::Release);
        n
    }

    /// The device's counters, from the wire's side.
    pub fn stats(&self) -> DeviceStats {
        self.rings().stats
    }
}

impl NetDevice for MemDevice {
    fn receive(&mut self, budget: usize, batch: &mut Vec<Desc>) {
        let mut r = self.rings();
        if r.rx_ring.len() <= budget {
            // The common case: everything fits the budget. A copy of the
            // descriptors, not a descriptor at a time.
            batch.append(&mut r.rx_ring);
        } else {
            batch.extend(r.rx_ring.drain(..budget));
        }
    }

    fn fill(&mut self, free: &mut Vec<Frame>) -> usize {
        let mut r = self.rings();
        let n = (r.fill_size - r.fill_ring.len()).min(free.len());
        let start = free.len() - n;
        r.fill_ring.extend(free.drain(start..));
        n
    }

    fn fill_room(&self) -> usize {
        let r = self.rings();
        r.fill_size - r.fill_ring.len()
    }

    fn fill_capacity(&self) -> usize {
        self.fill_size
    }

    fn transmit(&mut self, batch: &mut Vec<Desc>) -> usize {
        let n = batch.len();
        let mut r = self.rings();
        r.transmitted.extend(batch.drain(..));
        // Like an AF_XDP socket in copy mode: every transmit is a kick.
        r.kicks += u64::from(n > 0);
        n
    }

    fn tx_kicks(&self) -> u64 {
        self.rings().kicks
    }

    fn complete(&mut self, free: &mut Vec<Frame>) -> usize {
        if self.wire.completions.load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut r = self.rings();
        let n = r.completion_ring.len();
        free.extend(r.completion_ring.drain(..));
        self.wire.completions.store(0, Ordering::Release);
        n
    }

    fn frames_in_kernel(&self) -> usize {
        let r = self.rings();
        r.fill_ring.len() + r.rx_ring.len() + r.transmitted.len() + r.completion_ring.len()
    }

    fn stats(&self) -> DeviceStats {
        self.rings().stats
    }
}
