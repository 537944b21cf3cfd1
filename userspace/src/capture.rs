//! Packet capture: the stack's AF_PACKET tap. Linux hands a copy of every
//! frame to `ptype_all` listeners on the way in (`deliver_skb` from
//! `__netif_receive_skb_core`) and on the way out (`dev_queue_xmit_nit`,
//! net/core/dev.c), and a dropped frame with its reason to the drop monitor
//! (`kfree_skb_reason`, net/core/skbuff.c; reasons in
//! include/net/dropreason-core.h). This module owns the same for xsknet: it
//! writes those frames to a pcapng file (draft-ietf-opsawg-pcapng) that
//! tcpdump and tshark read.
//!
//! The loop's side is a [`CaptureTap`], held by the device queue
//! ([`crate::netdev_queue::NetdevQueue`]): it copies the frame's bytes, cut
//! to the snap length, into a slot taken from a free list of preallocated
//! buffers and pushes the slot on a bounded lock-free queue. A writer thread
//! pops slots, writes one Enhanced Packet Block each (direction in the flags
//! option, the drop reason in a comment) and gives the slot back. Nothing on
//! the loop's side allocates, locks, reads a clock or makes a system call:
//! the timestamp is that of the poll (set once per poll), and when no slot is
//! free the frame is simply not captured and counted (`XskCaptureDrops`).
//! Traffic never waits for the file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_queue::ArrayQueue;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::{Block, PcapNgWriter};
use pcap_file::{DataLink, Endianness};

use crate::netdevice::Desc;
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};

/// The default snap length, bytes: tcpdump's (`MAXIMUM_SNAPLEN`, 262144).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// Slots in the queue between the loop and the writer by default: at
/// 1.5 million frames a second, 2.7 ms of traffic.
pub const DEFAULT_QUEUE_SLOTS: usize = 4096;

/// Rx frames per batch whose place a drop capture remembers: a batch is
/// at most the NAPI weight (64 by default); beyond this many the rest of a
/// batch is not remembered (their drops are not captured) rather than the
/// loop allocating.
pub const RX_EXTENTS: usize = 1024;

/// How long the writer sleeps when it finds the queue empty: the first
/// time; each empty look after that doubles it, up to [`WRITER_IDLE_MAX`].
const WRITER_IDLE: Duration = Duration::from_micros(200);

/// The longest sleep of an idle writer: 2 ms, in which [`DEFAULT_QUEUE_SLOTS`]
/// hold a burst of 2 Mpps (an idle writer woke 5000 times a second).
const WRITER_IDLE_MAX: Duration = Duration::from_millis(2);

/// EPB flags option, bits 0–1: the direction (draft-ietf-opsawg-pcapng §4.3.1).
const EPB_FLAGS_INBOUND: u32 = 0b01;
/// See [`EPB_FLAGS_INBOUND`].
const EPB_FLAGS_OUTBOUND: u32 = 0b10;

/// Which frames a capture takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureMode {
    /// Every frame off the rx ring (before any check) and onto the transmit
    /// batch (`--pcap`): what tcpdump on the interface would see.
    All,
    /// Only the frames the stack drops, each with its reason (`--pcap-drops`).
    Drops,
}

/// Which way a captured frame went (the EPB direction flag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received.
    Inbound,
    /// Sent, or on its way out when dropped.
    Outbound,
}

/// The header the bytes of a dropped packet start with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// An Ethernet header: every frame that reached the device, and every
    /// received frame.
    Ethernet,
    /// The IPv4 header: a datagram dropped on its way out before its next hop
    /// was known has no Ethernet header yet. It is written behind an Ethernet
    /// header with zero addresses (no next hop) and EtherType IPv4, so that
    /// the file has one link type (libpcap, and so tcpdump, reads no file
    /// whose interfaces differ in link type).
    Ipv4,
}

/// The Ethernet header put in front of a [`Link::Ipv4`] packet: zero
/// addresses, EtherType IPv4.
const NO_NEXT_HOP_ETH: [u8; 14] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];

/// What a capture is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureOptions {
    /// The pcapng file to write (created, or truncated).
    pub path: PathBuf,
    /// Which frames to take.
    pub mode: CaptureMode,
    /// Bytes kept of each frame; longer frames are cut, their original
    /// length kept (as pcap's snaplen). At least 1.
    pub snaplen: u32,
    /// Stop capturing once the file would grow past this many bytes.
    pub max_size: Option<u64>,
    /// Slots in the queue to the writer thread (at least 1).
    pub slots: usize,
    /// The largest frame the device hands over (the UMEM frame size): no slot
    /// needs more than `min(snaplen, max_frame)` bytes.
    pub max_frame: usize,
}

impl CaptureOptions {
    /// Options for a capture of `mode` to `path` with tcpdump's snap length,
    /// no size bound and [`DEFAULT_QUEUE_SLOTS`] slots of up to `max_frame` bytes.
    pub fn new(path: impl Into<PathBuf>, mode: CaptureMode, max_frame: usize) -> CaptureOptions {
        CaptureOptions {
            path: path.into(),
            mode,
            snaplen: DEFAULT_SNAPLEN,
            max_size: None,
            slots: DEFAULT_QUEUE_SLOTS,
            max_frame,
        }
    }
}

/// One captured frame on its way to the writer; allocated once, reused.
struct Slot {
    data: Vec<u8>,
    orig_len: u32,
    /// Time since the Unix epoch.
    ts: Duration,
    dir: Direction,
    reason: Option<MibCounter>,
}

/// What the loop and the writer share: two lock-free queues and two flags.
struct Shared {
    /// Slots holding a frame, oldest first.
    filled: ArrayQueue<Box<Slot>>,
    /// Empty slots.
    free: ArrayQueue<Box<Slot>>,
    /// Set when the loop has stopped: the writer drains and ends.
    stop: AtomicBool,
    /// Set by the writer when the size bound is reached: the loop stops copying.
    bound_reached: AtomicBool,
}

/// What the writer thread did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct WriterStats {
    frames: u64,
    bytes: u64,
    /// Frames the writer had but did not write because of the size bound.
    over_bound: u64,
    bound_reached: bool,
    error: Option<String>,
}

/// What a capture did, for the exit report.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureSummary {
    /// The file written.
    pub path: PathBuf,
    /// Frames written to the file.
    pub frames_written: u64,
    /// Size of the file, bytes.
    pub bytes_written: u64,
    /// Frames not captured because the queue to the writer was full
    /// (`XskCaptureDrops`): the traffic itself went on.
    pub capture_drops: u64,
    /// Whether the size bound was reached.
    pub size_bound_reached: bool,
    /// Frames not captured because the size bound had been reached.
    pub frames_over_bound: u64,
    /// The error that stopped the writer early, if any (a full disk).
    pub error: Option<String>,
}

impl CaptureSummary {
    /// One line for the exit report, e.g. `pcap /tmp/x.pcapng: 200 frames
    /// written (31424 bytes), 0 capture drops`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "pcap {}: {} frames written ({} bytes), {} capture drops (queue full)",
            self.path.display(),
            self.frames_written,
            self.bytes_written,
            self.capture_drops
        );
        if self.size_bound_reached {
            s.push_str(&format!(", size bound reached: {} frames not captured", self.frames_over_bound));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(", stopped on error: {e}"));
        }
        s
    }
}

/// The loop's side of a capture: copies frames into preallocated slots for
/// the writer thread, which it owns. Dropping it stops the writer and closes
/// the file; [`CaptureTap::finish`] does the same and says what was written.
pub struct CaptureTap {
    shared: Arc<Shared>,
    mode: CaptureMode,
    snaplen: usize,
    /// The wall clock at `mono0`, since the Unix epoch.
    wall0: Duration,
    mono0: Instant,
    /// The time of the current poll, since the Unix epoch.
    now: Duration,
    /// Where each frame of the rx batch being handled lies: frame address,
    /// offset, length (so that a drop on the receive path captures the frame
    /// as received). Allocated once, for [`RX_EXTENTS`] frames.
    rx: Vec<(u64, u32, u32)>,
    /// Frames not captured for want of a free slot (`XskCaptureDrops`).
    drops: u64,
    /// Frames not captured because the size bound was reached.
    over_bound: u64,
    path: PathBuf,
    writer: Option<JoinHandle<WriterStats>>,
}

impl CaptureTap {
    /// Creates the file, writes its header (a Section Header Block and one
    /// Ethernet Interface Description Block, nanosecond timestamps),
    /// preallocates the slots and starts the writer thread.
    ///
    /// # Errors
    /// The file cannot be created or written, the thread cannot be started,
    /// or `snaplen` or `slots` is 0 (`InvalidInput`).
    pub fn start(opts: &CaptureOptions) -> io::Result<CaptureTap> {
        if opts.snaplen == 0 || opts.slots == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "snaplen and slots must be at least 1"));
        }
        let file = File::create(&opts.path).map_err(|e| with_path(e, &opts.path))?;
        let writer = open_pcapng(BufWriter::new(file), opts.snaplen).map_err(|e| with_path(e, &opts.path))?;
        let snaplen = (opts.snaplen as usize).min(opts.max_frame.max(1));
        let shared = Arc::new(Shared {
            filled: ArrayQueue::new(opts.slots),
            free: ArrayQueue::new(opts.slots),
            stop: AtomicBool::new(false),
            bound_reached: AtomicBool::new(false),
        });
        for _ in 0..opts.slots {
            let slot = Slot {
                data: Vec::with_capacity(snaplen),
                orig_len: 0,
                ts: Duration::ZERO,
                dir: Direction::Inbound,
                reason: None,
            };
            // Cannot fail: the queue holds `slots`.
            let _ = shared.free.push(Box::new(slot));
        }
        let handle = {
            let shared = shared.clone();
            let max_size = opts.max_size;
            std::thread::Builder::new()
                .name("xsknet-pcap".into())
                .spawn(move || write_loop(&shared, writer, max_size))?
        };
        let wall0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(CaptureTap {
            shared,
            mode: opts.mode,
            snaplen,
            wall0,
            mono0: Instant::now(),
            now: wall0,
            rx: Vec::with_capacity(RX_EXTENTS),
            drops: 0,
            over_bound: 0,
            path: opts.path.clone(),
            writer: Some(handle),
        })
    }

    /// Which frames this tap takes.
    #[inline]
    pub fn mode(&self) -> CaptureMode {
        self.mode
    }

    /// Frames not captured for want of a free slot (`XskCaptureDrops`).
    #[inline]
    pub fn capture_drops(&self) -> u64 {
        self.drops
    }

    /// Sets the time stamped on what is captured next: the poll's time.
    #[inline]
    pub fn set_time(&mut self, now: Instant) {
        self.now = self.wall0 + now.saturating_duration_since(self.mono0);
    }

    /// The batch of frames just taken off the rx ring, before any check
    /// (`deliver_skb` to `ptype_all`), once per batch.
    pub fn rx_batch(&mut self, umem: &Umem, batch: &[Desc]) {
        self.rx.clear();
        for d in batch {
            if d.nr_frags != 0 {
                self.rx_chained(umem, d);
                continue;
            }
            let at = d.offset as usize;
            if let Some(bytes) = umem.frame(&d.frame).get(at..at + d.len as usize) {
                self.rx(d.frame.addr(), d.offset, bytes);
            }
        }
    }

    /// A frame taken off the rx ring, before any check: `bytes` is the
    /// whole frame, at `offset` in the frame at `addr`.
    #[inline]
    pub fn rx(&mut self, addr: u64, offset: u32, bytes: &[u8]) {
        match self.mode {
            CaptureMode::All => self.capture(bytes, Direction::Inbound, Link::Ethernet, None),
            CaptureMode::Drops => {
                if self.rx.len() < self.rx.capacity() {
                    self.rx.push((addr, offset, bytes.len() as u32));
                }
            }
        }
    }

    /// A frame taken off the rx ring in several descriptors (multi-buffer):
    /// captured whole (up to the snap length) across its pieces; for a drop
    /// capture its head piece is remembered, and a drop records that piece
    /// with the frame's full length as `orig_len`.
    #[cold]
    fn rx_chained(&mut self, umem: &Umem, d: &Desc) {
        match self.mode {
            CaptureMode::All => {
                if self.shared.bound_reached.load(Ordering::Relaxed) {
                    self.over_bound += 1;
                    return;
                }
                let Some(mut slot) = self.shared.free.pop() else {
                    self.drops += 1;
                    return;
                };
                let room = self.snaplen.min(slot.data.capacity());
                slot.data.clear();
                crate::skbuff::walk_chain(umem, &d.frame, d.offset as usize, d.len as usize, |p| {
                    let n = p.len().min(room - slot.data.len());
                    slot.data.extend_from_slice(&p[..n]);
                });
                slot.orig_len = d.len;
                slot.ts = self.now;
                slot.dir = Direction::Inbound;
                slot.reason = None;
                if let Err(slot) = self.shared.filled.push(slot) {
                    let _ = self.shared.free.push(slot);
                    self.drops += 1;
                }
            }
            CaptureMode::Drops => {
                if self.rx.len() < self.rx.capacity() {
                    self.rx.push((d.frame.addr(), d.offset, d.len));
                }
            }
        }
    }

    /// A frame put on the transmit batch, Ethernet header written
    /// (`dev_queue_xmit_nit`).
    #[inline]
    pub fn tx(&mut self, bytes: &[u8]) {
        if self.mode == CaptureMode::All {
            self.capture(bytes, Direction::Outbound, Link::Ethernet, None);
        }
    }

    /// A received frame dropped for `reason` (`kfree_skb_reason`): captured
    /// as it came off the rx ring, when it is a frame of the batch being handled.
    pub fn drop_rx(&mut self, umem: &Umem, frame: &Frame, reason: MibCounter) {
        if self.mode != CaptureMode::Drops {
            return;
        }
        let Some(&(_, offset, len)) = self.rx.iter().rev().find(|e| e.0 == frame.addr()) else { return };
        let (at, len) = (offset as usize, len as usize);
        let buf = umem.frame(frame);
        if let Some(bytes) = buf.get(at..at + len) {
            self.capture(bytes, Direction::Inbound, Link::Ethernet, Some(reason));
        } else if let Some(head) = buf.get(at..) {
            // A multi-buffer frame: the bytes of its head frame, its whole
            // length recorded (pcap's caplen below orig_len, never hidden).
            self.capture_orig(head, len, Direction::Inbound, Link::Ethernet, Some(reason));
        }
    }

    /// A packet on its way out dropped for `reason`: `bytes` starts with the
    /// header `link` says.
    pub fn drop_tx(&mut self, bytes: &[u8], link: Link, reason: MibCounter) {
        if self.mode == CaptureMode::Drops {
            self.capture(bytes, Direction::Outbound, link, Some(reason));
        }
    }

    /// Copies `bytes` (cut to the snap length) into a free slot for the
    /// writer; counts the frame as a capture drop when there is none. Not
    /// inlined: the loop's code stays as small as without a capture.
    #[inline(never)]
    fn capture(&mut self, bytes: &[u8], dir: Direction, link: Link, reason: Option<MibCounter>) {
        self.capture_orig(bytes, bytes.len(), dir, link, reason);
    }

    /// [`Self::capture`] of the first bytes of a packet `orig_len` long.
    fn capture_orig(&mut self, bytes: &[u8], orig_len: usize, dir: Direction, link: Link, reason: Option<MibCounter>) {
        if self.shared.bound_reached.load(Ordering::Relaxed) {
            self.over_bound += 1;
            return;
        }
        let Some(mut slot) = self.shared.free.pop() else {
            self.drops += 1;
            return;
        };
        // Within the capacity allocated at start: this never reallocates.
        let room = self.snaplen.min(slot.data.capacity());
        slot.data.clear();
        let mut orig_len = orig_len;
        if link == Link::Ipv4 {
            let h = NO_NEXT_HOP_ETH.len().min(room);
            slot.data.extend_from_slice(&NO_NEXT_HOP_ETH[..h]);
            orig_len += NO_NEXT_HOP_ETH.len();
        }
        let n = bytes.len().min(room - slot.data.len());
        slot.data.extend_from_slice(&bytes[..n]);
        slot.orig_len = orig_len as u32;
        slot.ts = self.now;
        slot.dir = dir;
        slot.reason = reason;
        if let Err(slot) = self.shared.filled.push(slot) {
            // Cannot happen (both queues hold every slot); keep the slot.
            let _ = self.shared.free.push(slot);
            self.drops += 1;
        }
    }

    /// Stops the writer once it has written what is queued, closes the file
    /// and says what was written.
    pub fn finish(mut self) -> CaptureSummary {
        self.stop_writer()
    }

    fn stop_writer(&mut self) -> CaptureSummary {
        self.shared.stop.store(true, Ordering::Release);
        let w = match self.writer.take().map(JoinHandle::join) {
            Some(Ok(w)) => w,
            Some(Err(_)) => WriterStats { error: Some("the pcap writer thread panicked".into()), ..Default::default() },
            None => WriterStats::default(),
        };
        CaptureSummary {
            path: self.path.clone(),
            frames_written: w.frames,
            bytes_written: w.bytes,
            capture_drops: self.drops,
            size_bound_reached: w.bound_reached,
            frames_over_bound: self.over_bound + w.over_bound,
            error: w.error,
        }
    }
}

impl Drop for CaptureTap {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.stop_writer();
        }
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A writer that counts the bytes through it.
struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A pcapng writer over `w` with its header written: the Section Header
/// Block, then the one Interface Description Block (Ethernet, `snaplen`,
/// nanosecond timestamps: `if_tsresol` 9).
fn open_pcapng<W: Write>(w: W, snaplen: u32) -> io::Result<PcapNgWriter<Counting<W>>> {
    let mut writer =
        PcapNgWriter::with_endianness(Counting { inner: w, count: 0 }, Endianness::Little).map_err(pcap_error)?;
    let idb = InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Borrowed("xsknet")),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    writer.write_block(&Block::InterfaceDescription(idb)).map_err(pcap_error)?;
    Ok(writer)
}

fn pcap_error(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        e => io::Error::other(e.to_string()),
    }
}

/// The comment of a dropped frame: the counter's name and what it means,
/// e.g. `UdpNoPorts: no socket on the port (port unreachable, unless broadcast or rate-limited)`.
pub fn drop_comment(reason: MibCounter) -> String {
    match reason.drop_reason() {
        Some(why) => format!("{}: {why}", reason.name()),
        None => reason.name().to_string(),
    }
}

/// Bytes an option of `len` bytes takes: code, length, value padded to 4.
fn option_len(len: usize) -> usize {
    4 + len.div_ceil(4) * 4
}

/// The size of the Enhanced Packet Block for `slot`, bytes.
fn epb_len(slot: &Slot, comment: Option<&str>) -> u64 {
    let mut opts = option_len(4); // flags
    if let Some(c) = comment {
        opts += option_len(c.len());
    }
    opts += 4; // opt_endofopt
    (12 + 20 + slot.data.len().div_ceil(4) * 4 + opts) as u64
}

/// The writer thread: writes what the loop queues until told to stop, then
/// what is left, and closes the file.
fn write_loop<W: Write>(shared: &Shared, mut writer: PcapNgWriter<Counting<W>>, max_size: Option<u64>) -> WriterStats {
    let mut st = WriterStats::default();
    let mut idle = WRITER_IDLE;
    loop {
        // Read the flag before draining: what was queued before it was set is written.
        let stop = shared.stop.load(Ordering::Acquire);
        let mut wrote = false;
        while let Some(slot) = shared.filled.pop() {
            wrote = true;
            if st.error.is_none() && !st.bound_reached {
                write_slot(&mut writer, &slot, max_size, shared, &mut st);
            } else if st.bound_reached {
                st.over_bound += 1;
            }
            let _ = shared.free.push(slot);
        }
        if stop {
            break;
        }
        idle = if wrote { WRITER_IDLE } else { (idle * 2).min(WRITER_IDLE_MAX) };
        std::thread::sleep(idle);
    }
    if let Err(e) = writer.get_mut().flush() {
        st.error.get_or_insert(e.to_string());
    }
    st.bytes = writer.get_ref().count;
    st
}

fn write_slot<W: Write>(
    writer: &mut PcapNgWriter<Counting<W>>,
    slot: &Slot,
    max_size: Option<u64>,
    shared: &Shared,
    st: &mut WriterStats,
) {
    let comment = slot.reason.map(drop_comment);
    if let Some(max) = max_size {
        if writer.get_ref().count + epb_len(slot, comment.as_deref()) > max {
            st.bound_reached = true;
            st.over_bound += 1;
            shared.bound_reached.store(true, Ordering::Relaxed);
            return;
        }
    }
    let flags = match slot.dir {
        Direction::Inbound => EPB_FLAGS_INBOUND,
        Direction::Outbound => EPB_FLAGS_OUTBOUND,
    };
    let mut options = vec![EnhancedPacketOption::Flags(flags)];
    if let Some(c) = comment {
        options.push(EnhancedPacketOption::Comment(Cow::Owned(c)));
    }
    let epb = EnhancedPacketBlock {
        interface_id: 0,
        timestamp: slot.ts,
        original_len: slot.orig_len,
        data: Cow::Borrowed(&slot.data),
        options,
    };
    match writer.write_block(&Block::EnhancedPacket(epb)) {
        Ok(_) => st.frames += 1,
        Err(e) => st.error = Some(pcap_error(e).to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::PcapNgReader;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xsknet-capture-{}-{name}.pcapng", std::process::id()))
    }

    /// One EPB: interface, flags, original length, data, comment.
    type Epb = (u32, u32, u32, Vec<u8>, Option<String>);

    /// Every EPB of the file at `path`.
    fn read_back(path: &Path) -> Vec<Epb> {
        let mut r = PcapNgReader::new(File::open(path).unwrap()).unwrap();
        let mut out = Vec::new();
        while let Some(b) = r.next_block() {
            if let Block::EnhancedPacket(p) = b.unwrap() {
                let mut flags = 0;
                let mut comment = None;
                for o in &p.options {
                    match o {
                        EnhancedPacketOption::Flags(f) => flags = *f,
                        EnhancedPacketOption::Comment(c) => comment = Some(c.to_string()),
                        _ => {}
                    }
                }
                out.push((p.interface_id, flags, p.original_len, p.data.to_vec(), comment));
            }
        }
        out
    }

    #[test]
    fn frames_are_written_with_direction_snaplen_and_reason() {
        let path = tmp("all");
        let mut o = CaptureOptions::new(&path, CaptureMode::All, 2048);
        o.snaplen = 10;
        let mut tap = CaptureTap::start(&o).unwrap();
        tap.set_time(Instant::now());
        tap.rx(0, 0, &[1u8; 64]);
        tap.tx(&[2u8; 8]);
        // Not a drop capture: drops are not taken.
        tap.drop_tx(&[3u8; 20], Link::Ipv4, MibCounter::IpOutNoRoutes);
        let s = tap.finish();
        assert_eq!((s.frames_written, s.capture_drops, s.size_bound_reached), (2, 0, false));
        assert_eq!(s.bytes_written, std::fs::metadata(&path).unwrap().len());
        let got = read_back(&path);
        assert_eq!(got[0], (0, EPB_FLAGS_INBOUND, 64, vec![1u8; 10], None));
        assert_eq!(got[1], (0, EPB_FLAGS_OUTBOUND, 8, vec![2u8; 8], None));
        assert_eq!(got.len(), 2);

        let mut o = CaptureOptions::new(&path, CaptureMode::Drops, 2048);
        o.slots = 4;
        let mut tap = CaptureTap::start(&o).unwrap();
        tap.tx(&[2u8; 8]);
        tap.drop_tx(&[0x45u8; 20], Link::Ipv4, MibCounter::IpOutNoRoutes);
        let s = tap.finish();
        assert_eq!(s.frames_written, 1);
        let got = read_back(&path);
        let mut framed = NO_NEXT_HOP_ETH.to_vec();
        framed.extend_from_slice(&[0x45u8; 20]);
        assert_eq!(
            got,
            vec![(0, EPB_FLAGS_OUTBOUND, 34, framed, Some("IpOutNoRoutes: no route to the destination".into()))]
        );
        std::fs::remove_file(&path).unwrap();
    }

    /// A multi-buffer frame (a chain of two descriptors) is captured whole,
    /// across its pieces, never cut to one UMEM frame.
    #[test]
    fn a_multi_buffer_frame_is_captured_whole() {
        let (umem, pool) = crate::umem::Umem::new(8, 2048).unwrap();
        let mut asm = crate::netdevice::RxAssembler::default();
        let mut batch = Vec::new();
        let bytes: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        for (piece, contd) in [(&bytes[..1792], true), (&bytes[1792..], false)] {
            let mut f = pool.get().unwrap();
            umem.frame_mut(&mut f)[256..256 + piece.len()].copy_from_slice(piece);
            asm.push(&umem, f, 256, piece.len() as u32, contd, &mut batch);
        }
        assert_eq!((batch.len(), batch[0].nr_frags, batch[0].len), (1, 1, 2500));
        let path = tmp("mb");
        let mut tap = CaptureTap::start(&CaptureOptions::new(&path, CaptureMode::All, 4096)).unwrap();
        tap.set_time(Instant::now());
        tap.rx_batch(&umem, &batch);
        let s = tap.finish();
        assert_eq!(s.frames_written, 1);
        let got = read_back(&path);
        assert_eq!(got[0], (0, EPB_FLAGS_INBOUND, 2500, bytes, None));
        let d = batch.pop().unwrap();
        crate::skbuff::SkBuff::from_chain(d.frame, d.offset as usize, d.len as usize, d.nr_frags)
            .free(&umem, |f| pool.put(f));
        assert_eq!(pool.len(), 8, "the census adds up");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_full_queue_is_counted_and_never_waits() {
        let path = tmp("full");
        let mut o = CaptureOptions::new(&path, CaptureMode::All, 2048);
        o.slots = 3;
        let mut tap = CaptureTap::start(&o).unwrap();
        // Hold the writer off: take every free slot, as a writer that has
        // fallen behind would leave the loop.
        let mut held = Vec::new();
        while let Some(s) = tap.shared.free.pop() {
            held.push(s);
        }
        for _ in 0..5 {
            tap.tx(&[7u8; 60]);
        }
        assert_eq!(tap.capture_drops(), 5);
        for s in held {
            tap.shared.free.push(s).ok().unwrap();
        }
        tap.tx(&[7u8; 60]);
        let s = tap.finish();
        assert_eq!((s.frames_written, s.capture_drops), (1, 5));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_size_bound_stops_the_capture() {
        let path = tmp("bound");
        let mut o = CaptureOptions::new(&path, CaptureMode::All, 2048);
        o.max_size = Some(1000);
        let mut tap = CaptureTap::start(&o).unwrap();
        for _ in 0..20 {
            tap.tx(&[9u8; 100]);
        }
        let s = tap.finish();
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(s.size_bound_reached);
        assert!(len <= 1000, "{len}");
        assert_eq!(s.bytes_written, len);
        assert!(s.frames_written > 0 && s.frames_written < 20, "{s:?}");
        assert_eq!(s.frames_written + s.frames_over_bound, 20, "{s:?}");
        assert_eq!(read_back(&path).len() as u64, s.frames_written);
        assert!(s.line().contains("size bound reached"), "{}", s.line());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn epb_length_is_what_is_written() {
        let mut w = open_pcapng(Vec::new(), 100).unwrap();
        for (n, comment) in [(0usize, None), (5, Some("UdpNoPorts: x")), (64, Some("abcd"))] {
            let slot = Slot {
                data: vec![0; n],
                orig_len: n as u32,
                ts: Duration::ZERO,
                dir: Direction::Inbound,
                reason: None,
            };
            let mut options = vec![EnhancedPacketOption::Flags(1)];
            if let Some(c) = comment {
                options.push(EnhancedPacketOption::Comment(Cow::Borrowed(c)));
            }
            let epb = EnhancedPacketBlock {
                interface_id: 0,
                timestamp: Duration::ZERO,
                original_len: n as u32,
                data: Cow::Borrowed(&slot.data),
                options,
            };
            let written = w.write_block(&Block::EnhancedPacket(epb)).unwrap() as u64;
            assert_eq!(written, epb_len(&slot, comment), "{n} {comment:?}");
        }
    }
}
