//! The device seen from the softirq loop: where received frames come from and
//! where frames to send go, as descriptor batches.
//!
//! [`NetDevice`] is what a NIC driver offers NAPI: receive a batch under a
//! budget, take frames to receive into (the fill ring), transmit a batch, give
//! back what was sent (the completion ring). The AF_XDP socket
//! ([`crate::xsk::XskDevice`]) is the real one; [`MemDevice`] is an in-memory
//! device so that the whole loop can be tested and measured without a kernel.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::handoff::EventFd;
use crate::skbuff::{SkBuff, SkbChain, LINK_LEN};
use crate::umem::{Frame, Umem};

/// A frame on its way in or out: the frame, and where its packet lies in it.
///
/// A packet larger than a frame (AF_XDP multi-buffer, `XDP_USE_SG`: see
/// docs/jumbo.md) is one `Desc` too: `frame` is its head frame, `offset`
/// where the packet starts in it, `len` the whole packet's length and
/// `nr_frags` the frames chained after the head, linked through the frames
/// as [`crate::skbuff`] chains a datagram (each piece's link in the
/// [`crate::skbuff::LINK_LEN`] bytes before its data; the head piece's
/// length is in its link). A packet in one frame has `nr_frags` 0 and no link.
#[derive(Debug)]
pub struct Desc {
    /// The frame (the head frame of a multi-buffer packet).
    pub frame: Frame,
    /// Offset of the packet from the frame base.
    pub offset: u32,
    /// Length of the packet, bytes (all its pieces).
    pub len: u32,
    /// Frames chained after `frame` (`skb_shinfo(skb)->nr_frags`): 0 for a
    /// packet in one frame.
    pub nr_frags: u16,
}

impl Desc {
    /// A packet of `len` bytes at `offset` in one frame.
    #[inline]
    pub fn one(frame: Frame, offset: u32, len: u32) -> Desc {
        Desc { frame, offset, len, nr_frags: 0 }
    }

    /// Frames the packet holds, the head included.
    #[inline]
    pub fn frames(&self) -> usize {
        1 + self.nr_frags as usize
    }
}

/// `XDP_PKT_CONTD` (include/uapi/linux/if_xdp.h): set in a ring descriptor's
/// `options` when the packet goes on in the next descriptor.
pub const XDP_PKT_CONTD: u32 = 1;

/// The most descriptors one received packet may span: enough for the
/// largest Ethernet frame we take (65535 bytes, [`MAX_MB_PACKET`]) in
/// 2048-byte frames with the kernel's 256 bytes of headroom (37), rounded
/// up. A longer sequence is an invalid one: counted (`XskRxMultiBufTooBig`) and
/// dropped, its frames given back.
pub const MAX_RX_DESCS: usize = 64;

/// The largest packet a multi-buffer receive takes, bytes of Ethernet frame
/// (a `u16` length, as an [`crate::skbuff::SkBuff`]'s): an interface MTU of
/// at most 65521 (`MAX_MB_PACKET` less the 14-byte Ethernet header).
pub const MAX_MB_PACKET: usize = u16::MAX as usize;

/// The fewest bytes the first descriptor of a multi-buffer packet must
/// hold: Ethernet, an IPv4 header with options and a UDP header (82),
/// rounded up. The kernel fills every descriptor but the last to the
/// frame's end (`__xsk_rcv`, net/xdp/xsk.c), so only a broken kernel or
/// driver sends less: counted (`XskRxMultiBufInvalid`) and dropped.
pub const MB_MIN_HEAD: u32 = 128;

/// What the receive side does with the descriptors of multi-buffer packets
/// (net/xdp/xsk.c `__xsk_rcv`; Documentation/networking/af_xdp.rst,
/// "Multi-Buffer Support"): chains each packet's descriptors into one
/// [`Desc`], keeps a packet whose last descriptors lie beyond the batch for
/// the next one, and drops invalid sequences with their frames, counted.
///
/// The kernel publishes all descriptors of a packet at once (it reserves
/// room for all of them before it writes the first, and moves the producer
/// index at the flush), so a packet split across two reads was split by our
/// budget; one still open after a read that the budget did not stop was cut
/// short (`XskRxMultiBufTruncated`).
#[derive(Debug, Default)]
pub struct RxAssembler {
    /// The packet being put together: its chain and descriptors so far.
    partial: Option<(SkbChain, usize)>,
    /// The packet's descriptors are being skipped to its end (too many, or invalid).
    skipping: Option<MibDrop>,
    /// Frames of dropped packets, to go back to the fill ring first.
    recycled: Vec<Frame>,
    /// Packets received in more than one descriptor (`XskRxMultiBufPackets`).
    pub mb_packets: u64,
    /// Packets dropped for spanning more than [`MAX_RX_DESCS`] descriptors or
    /// [`MAX_MB_PACKET`] bytes (`XskRxMultiBufTooBig`).
    pub too_big: u64,
    /// Packets dropped for an invalid descriptor in their sequence
    /// (`XskRxMultiBufInvalid`): a first descriptor under [`MB_MIN_HEAD`] bytes,
    /// an empty one, or one too close to its frame's start for the link.
    pub invalid: u64,
    /// Packets dropped because their last descriptor never came: a
    /// descriptor with `XDP_PKT_CONTD` ended what the ring held
    /// (`XskRxMultiBufTruncated`).
    pub truncated: u64,
}

/// Why the rest of a packet is being skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MibDrop {
    TooBig,
    Invalid,
}

impl RxAssembler {
    /// Takes one descriptor of a packet that spans several, or continues
    /// one (`contd`: `XDP_PKT_CONTD` set, the packet goes on). A finished
    /// packet is appended to `batch`.
    pub fn push(&mut self, umem: &Umem, frame: Frame, offset: u32, len: u32, contd: bool, batch: &mut Vec<Desc>) {
        if let Some(why) = self.skipping {
            self.recycled.push(frame);
            if !contd {
                self.skipping = None;
                self.count(why);
            }
            return;
        }
        let (off, n) = (offset as usize, len as usize);
        let bad_piece = off < LINK_LEN || n == 0;
        match self.partial.take() {
            None => {
                if !contd {
                    // A packet in one descriptor: the common case.
                    batch.push(Desc::one(frame, offset, len));
                } else if bad_piece || len < MB_MIN_HEAD {
                    self.recycled.push(frame);
                    self.skipping = Some(MibDrop::Invalid);
                } else {
                    self.partial = Some((SkbChain::new(umem, frame, off, n), 1));
                }
            }
            Some((mut chain, descs)) => {
                let why = if bad_piece {
                    Some(MibDrop::Invalid)
                } else if descs + 1 > MAX_RX_DESCS || chain.len() + n > MAX_MB_PACKET {
                    Some(MibDrop::TooBig)
                } else {
                    None
                };
                if let Some(why) = why {
                    self.recycled.push(frame);
                    let recycled = &mut self.recycled;
                    chain.free(umem, |f| recycled.push(f));
                    if contd {
                        self.skipping = Some(why);
                    } else {
                        self.count(why);
                    }
                    return;
                }
                chain.push(umem, frame, off, n);
                if contd {
                    self.partial = Some((chain, descs + 1));
                } else {
                    self.mb_packets += 1;
                    let skb = chain.finish(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));
                    let SkBuff { frame, data, len, nr_frags, .. } = skb;
                    batch.push(Desc { frame, offset: u32::from(data), len: u32::from(len), nr_frags });
                }
            }
        }
    }

    /// The end of one read of the rx ring: `budget_hit` when the read stopped
    /// at the budget, so that the rest of an open packet waits on the ring;
    /// otherwise an open packet was cut short and is dropped.
    pub fn end_of_read(&mut self, umem: &Umem, budget_hit: bool) {
        if budget_hit {
            return;
        }
        if let Some((chain, _)) = self.partial.take() {
            let recycled = &mut self.recycled;
            chain.free(umem, |f| recycled.push(f));
            self.truncated += 1;
        }
        if self.skipping.take().is_some() {
            self.truncated += 1;
        }
    }

    /// A descriptor of the open packet was refused (its address outside the
    /// UMEM, counted by the device): the packet is invalid, its frames go
    /// back, and the rest of it (`contd`) is skipped.
    pub fn invalidate(&mut self, umem: &Umem, contd: bool) {
        if let Some((chain, _)) = self.partial.take() {
            let recycled = &mut self.recycled;
            chain.free(umem, |f| recycled.push(f));
        }
        let why = self.skipping.take().unwrap_or(MibDrop::Invalid);
        if contd {
            self.skipping = Some(why);
        } else {
            self.count(why);
        }
    }

    fn count(&mut self, why: MibDrop) {
        match why {
            MibDrop::TooBig => self.too_big += 1,
            MibDrop::Invalid => self.invalid += 1,
        }
    }

    /// Whether no packet is open: the next descriptor starts a packet.
    #[inline]
    pub fn idle(&self) -> bool {
        self.partial.is_none() && self.skipping.is_none()
    }

    /// Frames held: the open packet's and those of dropped packets not yet
    /// back on the fill ring (the frame census counts them with the device's).
    pub fn frames(&self) -> usize {
        self.partial.as_ref().map_or(0, |(_, d)| *d) + self.recycled.len()
    }

    /// The frames of dropped packets, for the fill ring.
    pub fn recycled(&mut self) -> &mut Vec<Frame> {
        &mut self.recycled
    }

    /// Copies the counters into `stats`.
    pub fn stats(&self, stats: &mut DeviceStats) {
        stats.xsk_rx_multibuf_packets = self.mb_packets;
        stats.xsk_rx_multibuf_too_big = self.too_big;
        stats.xsk_rx_multibuf_invalid = self.invalid;
        stats.xsk_rx_multibuf_truncated = self.truncated;
    }
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
    /// Packets received in more than one descriptor (AF_XDP multi-buffer).
    #[serde(rename = "XskRxMultiBufPackets", default)]
    pub xsk_rx_multibuf_packets: u64,
    /// Multi-buffer packets dropped for spanning more than
    /// [`MAX_RX_DESCS`] descriptors or [`MAX_MB_PACKET`] bytes.
    #[serde(rename = "XskRxMultiBufTooBig", default)]
    pub xsk_rx_multibuf_too_big: u64,
    /// Multi-buffer packets dropped for an invalid descriptor in their
    /// sequence (a first piece under [`MB_MIN_HEAD`] bytes, an empty piece).
    #[serde(rename = "XskRxMultiBufInvalid", default)]
    pub xsk_rx_multibuf_invalid: u64,
    /// Multi-buffer packets dropped because their last descriptor never came
    /// (`XDP_PKT_CONTD` on the last descriptor the ring held).
    #[serde(rename = "XskRxMultiBufTruncated", default)]
    pub xsk_rx_multibuf_truncated: u64,
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

    /// A descriptor that polls readable (`POLLIN`) while received frames
    /// wait, for a loop that blocks instead of polling
    /// ([`crate::handoff::Handoff::block`]); made ready for that `poll()` by
    /// this call. `None`: a device that has none (the loop then waits only
    /// for its bound).
    fn rx_poll_fd(&mut self) -> Option<BorrowedFd<'_>> {
        None
    }

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
    /// Multi-buffer on ([`MemDevice::set_multi_buffer`]): the rx ring's
    /// descriptors carry `XDP_PKT_CONTD` and are put together here.
    multi_buffer: bool,
    rx_asm: RxAssembler,
}

/// The far side of a [`MemDevice`]: where tests put frames and read them.
#[derive(Clone)]
pub struct MemWire {
    umem: Arc<Umem>,
    inner: Arc<Mutex<MemRings>>,
    /// The completion ring's length, written under the lock: the loop looks
    /// at it without the lock, as it would read a ring's producer index.
    completions: Arc<AtomicUsize>,
    /// Readable while the rx ring holds frames, once a loop has asked for it
    /// ([`NetDevice::rx_poll_fd`]): signalled by every injection after that.
    rx_efd: Arc<OnceLock<Option<EventFd>>>,
}

struct MemRings {
    fill_ring: VecDeque<Frame>,
    fill_size: usize,
    /// Oldest first. A `Vec`, not a `VecDeque`: the loop takes the whole ring
    /// at once when it fits its budget, which is a move of the buffer.
    rx_ring: Vec<Desc>,
    /// With multi-buffer on, each rx descriptor's `options`, beside `rx_ring`.
    rx_options: Vec<u32>,
    multi_buffer: bool,
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
            rx_options: Vec::with_capacity(rx_size),
            multi_buffer: false,
            rx_size,
            transmitted: VecDeque::new(),
            completion_ring: VecDeque::new(),
            stats: DeviceStats::default(),
            rx_headroom: 256,
            kicks: 0,
        };
        let wire = MemWire {
            umem,
            inner: Arc::new(Mutex::new(rings)),
            completions: Arc::new(AtomicUsize::new(0)),
            rx_efd: Arc::new(OnceLock::new()),
        };
        MemDevice { wire, fill_size, multi_buffer: false, rx_asm: RxAssembler::default() }
    }

    /// Turns multi-buffer on or off (`XDP_USE_SG`): with it, a packet larger
    /// than a frame's room is copied into as many frames as it needs, as
    /// `__xsk_rcv` does (net/xdp/xsk.c), instead of dropped (`rx_dropped`).
    pub fn set_multi_buffer(&mut self, on: bool) {
        self.multi_buffer = on;
        self.rings().multi_buffer = on;
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
            if !r.multi_buffer {
                // __xsk_rcv: larger than a frame and no XDP_USE_SG.
                r.stats.rx_dropped += 1;
                return false;
            }
            drop(r);
            let pieces: Vec<(&[u8], bool)> = packet.chunks(room as usize).map(|c| (c, true)).collect();
            let last = pieces.len() - 1;
            let pieces: Vec<(&[u8], bool)> = pieces.into_iter().enumerate().map(|(i, (c, _))| (c, i < last)).collect();
            return self.inject_descs(&pieces);
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
        r.rx_ring.push(Desc::one(frame, offset, packet.len() as u32));
        if r.multi_buffer {
            r.rx_options.push(0);
        }
        drop(r);
        self.rx_ready();
        true
    }

    /// Frames are on the rx ring: a loop blocked on [`NetDevice::rx_poll_fd`]
    /// wakes (after the push, as `sk_data_ready` after the ring's producer).
    fn rx_ready(&self) {
        if let Some(Some(efd)) = self.rx_efd.get() {
            efd.signal();
        }
    }

    /// Puts descriptors on the rx ring as a multi-buffer receive would: each
    /// piece copied into a fill-ring frame at the headroom, `XDP_PKT_CONTD`
    /// in its options when its flag is set. All or nothing, as `__xsk_rcv`
    /// reserves room for a whole packet first: too few fill-ring frames is
    /// `rx_fill_ring_empty_descs`, too little rx ring `rx_ring_full`. Lets a
    /// test send sequences the kernel would not (a packet cut short, one of
    /// too many descriptors). Multi-buffer must be on.
    pub fn inject_descs(&self, pieces: &[(&[u8], bool)]) -> bool {
        let mut r = self.rings();
        assert!(r.multi_buffer, "inject_descs needs MemDevice::set_multi_buffer(true)");
        let room = (self.umem.frame_size() - r.rx_headroom) as usize;
        assert!(pieces.iter().all(|(p, _)| p.len() <= room), "a piece larger than a frame's room");
        if r.rx_ring.len() + pieces.len() > r.rx_size {
            r.stats.rx_ring_full += 1;
            return false;
        }
        if r.fill_ring.len() < pieces.len() {
            r.stats.rx_fill_ring_empty_descs += 1;
            return false;
        }
        let at = r.rx_headroom as usize;
        for &(piece, contd) in pieces {
            let mut frame = r.fill_ring.pop_front().expect("checked above");
            self.umem.frame_mut(&mut frame)[at..at + piece.len()].copy_from_slice(piece);
            r.rx_ring.push(Desc::one(frame, at as u32, piece.len() as u32));
            r.rx_options.push(if contd { XDP_PKT_CONTD } else { 0 });
        }
        drop(r);
        self.rx_ready();
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
    fn rx_poll_fd(&mut self) -> Option<BorrowedFd<'_>> {
        let efd = self.wire.rx_efd.get_or_init(|| EventFd::new().ok()).as_ref()?;
        // Reset first, then look: a frame injected after the look signals
        // again; one injected before it is seen.
        efd.drain();
        if !self.wire.rings().rx_ring.is_empty() {
            efd.signal();
        }
        Some(efd.as_fd())
    }

    fn receive(&mut self, budget: usize, batch: &mut Vec<Desc>) {
        if self.multi_buffer {
            return self.receive_multi_buffer(budget, batch);
        }
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
        // Frames of multi-buffer packets the assembler dropped go first (the
        // ring takes from the end of `free`); what does not fit stays in the cache.
        free.append(self.rx_asm.recycled());
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
        r.fill_ring.len() + r.rx_ring.len() + r.transmitted.len() + r.completion_ring.len() + self.rx_asm.frames()
    }

    fn stats(&self) -> DeviceStats {
        let mut stats = self.rings().stats;
        self.rx_asm.stats(&mut stats);
        stats
    }
}

impl MemDevice {
    /// [`NetDevice::receive`] with multi-buffer on: up to `budget`
    /// descriptors through the [`RxAssembler`], as `XskDevice` does.
    fn receive_multi_buffer(&mut self, budget: usize, batch: &mut Vec<Desc>) {
        let umem = self.wire.umem.clone();
        let mut r = self.wire.rings();
        let n = r.rx_ring.len().min(budget);
        let descs: Vec<Desc> = r.rx_ring.drain(..n).collect();
        let options: Vec<u32> = r.rx_options.drain(..n).collect();
        drop(r);
        for (d, o) in descs.into_iter().zip(options) {
            self.rx_asm.push(&umem, d.frame, d.offset, d.len, o & XDP_PKT_CONTD != 0, batch);
        }
        self.rx_asm.end_of_read(&umem, n >= budget);
    }
}
