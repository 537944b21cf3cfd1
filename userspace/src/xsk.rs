//! The AF_XDP socket and its four rings: the device queue the softirq loop
//! polls (Documentation/networking/af_xdp.rst; Linux ≥ 5.4, statistics v2 and
//! `need_wakeup` ≥ 5.9).
//!
//! One socket per interface queue, bound to the UMEM, owning the fill and
//! completion rings (UMEM side) and the rx and tx rings (socket side). Each
//! ring is single-producer single-consumer; this type is their one user-space
//! owner and touches each ring's indices once per batch. Zero-copy is tried
//! first where asked and the driver supports it; veth only has copy mode.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Duration;

use xdpilone::xdp::XdpDesc;
use xdpilone::{DeviceQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, UmemConfig, User};

use crate::netdevice::{Desc, DeviceStats, NetDevice, RxAssembler, XDP_PKT_CONTD};

/// Socket options of busy polling (include/uapi/asm-generic/socket.h), which
/// the `libc` crate does not have for every target.
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
/// `XDP_USE_SG` (include/uapi/linux/if_xdp.h): the bind flag of AF_XDP
/// multi-buffer, which xdpilone does not name.
const XDP_USE_SG: u16 = 1 << 4;
/// `SOL_XDP` (include/linux/socket.h).
const SOL_XDP: libc::c_int = 283;
/// `XDP_MAX_TX_SKB_BUDGET` (include/uapi/linux/if_xdp.h, Linux 6.17): in copy mode, how many
/// tx descriptors one `sendto()` turns into packets (`xs->max_tx_budget`, 32 by default:
/// `TX_BATCH_SIZE`), from 32 to the tx ring's size.
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// `TX_BATCH_SIZE` (net/xdp/xsk.c): copy mode's descriptors per `sendto()` by default.
pub const TX_BATCH_SIZE: u32 = 32;
/// `SO_BUSY_POLL` for [`XskDevice::set_busy_poll`] (`--prefer-busy-poll`):
/// the socket may busy-poll (any value above 0 does for a non-blocking call,
/// which polls once), 20 µs as Documentation/networking/af_xdp.rst's example.
pub const BUSY_POLL_USECS: u32 = 20;
use crate::umem::{Frame, Umem};

/// Frames given to the kernel and not yet back: the books for the census.
///
/// Checked arithmetic: a ring that gives back more than it was given (a
/// kernel bug, or ours) is counted in `underflows` and the count clamped at
/// zero, never wrapped to a huge number; debug builds also stop there.
#[derive(Debug, Default)]
struct InKernel {
    frames: usize,
    underflows: u64,
}

impl InKernel {
    /// `n` frames went to the kernel (fill or tx ring).
    #[inline]
    fn gave(&mut self, n: usize) {
        // Cannot overflow: there are at most `u32::MAX` frames.
        self.frames = self.frames.saturating_add(n);
    }

    /// `n` frames came back (rx or completion ring).
    #[inline]
    fn took(&mut self, n: usize) {
        match self.frames.checked_sub(n) {
            Some(left) => self.frames = left,
            None => self.underflow(n),
        }
    }

    #[cold]
    #[inline(never)]
    fn underflow(&mut self, n: usize) {
        let held = self.frames;
        self.underflows += 1;
        self.frames = 0;
        debug_assert!(false, "the kernel gave back {n} frames while holding {held} by our books");
    }
}

/// How the socket binds to the queue (`XDP_COPY`, `XDP_ZEROCOPY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy if the driver supports it, else copy.
    Auto,
    /// Copy mode: the kernel copies each frame into the UMEM.
    Copy,
    /// Zero-copy: the driver DMAs into the UMEM; fails where unsupported.
    ZeroCopy,
}

/// Where and how to open the socket.
#[derive(Clone, Debug)]
pub struct XskConfig {
    /// The interface.
    pub ifname: String,
    /// The queue to bind (0 on a veth made without `numrxqueues`).
    pub queue_id: u32,
    /// Copy, zero-copy, or zero-copy with a fallback.
    pub bind_mode: BindMode,
    /// Rx ring entries (a power of two).
    pub rx_size: u32,
    /// Tx ring entries (a power of two).
    pub tx_size: u32,
    /// Fill ring entries (a power of two).
    pub fill_size: u32,
    /// Completion ring entries (a power of two).
    pub completion_size: u32,
    /// Bind with `XDP_USE_SG` (multi-buffer: a packet may span several
    /// frames; Linux ≥ 6.6 for copy mode, and zero-copy drivers that
    /// support it).
    pub multi_buffer: bool,
    /// In copy mode, descriptors one kick of the tx ring sends (`XDP_MAX_TX_SKB_BUDGET`,
    /// Linux ≥ 6.17: 32 up to `tx_size`); `None` leaves the kernel's [`TX_BATCH_SIZE`].
    /// A kernel that refuses the option keeps 32 ([`XskDevice::tx_budget`] says).
    pub max_tx_budget: Option<u32>,
}

impl XskConfig {
    /// Gives all four rings the same size (a power of two).
    pub fn set_ring_sizes(&mut self, size: u32) {
        (self.rx_size, self.tx_size, self.fill_size, self.completion_size) = (size, size, size, size);
    }

    /// Queue `queue_id` of `ifname`, auto bind mode, 2048-entry rings.
    pub fn new(ifname: &str, queue_id: u32) -> XskConfig {
        XskConfig {
            ifname: ifname.to_string(),
            queue_id,
            bind_mode: BindMode::Auto,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            completion_size: 2048,
            multi_buffer: false,
            max_tx_budget: None,
        }
    }
}

/// Errors of opening an AF_XDP socket. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// No interface of that name.
    #[error("interface {ifname} not found (see `ip link`)")]
    NoSuchInterface {
        /// The interface.
        ifname: String,
    },
    /// Not root: the operation needs capabilities.
    #[error("creating an AF_XDP socket needs CAP_NET_RAW and CAP_NET_ADMIN: run as root")]
    NotPermitted,
    /// The interface has no such queue.
    #[error("{ifname} has no queue {queue_id}: a veth has one queue unless created with numrxqueues/numtxqueues")]
    NoSuchQueue {
        /// The interface.
        ifname: String,
        /// The queue.
        queue_id: u32,
    },
    /// Zero-copy was asked for and the driver has none.
    #[error("{ifname} does not support zero-copy AF_XDP; use --bind-mode auto or copy")]
    ZeroCopyUnsupported {
        /// The interface.
        ifname: String,
    },
    /// The kernel refused `XDP_USE_SG` (before Linux 6.6, or a zero-copy
    /// driver without multi-buffer).
    #[error(
        "{ifname}: the kernel refused AF_XDP multi-buffer (XDP_USE_SG: Linux 6.6 or later; zero-copy needs driver \
         support): {io_error}; lower the MTU to fit one frame or use --bind-mode copy"
    )]
    MultiBufferUnsupported {
        /// The interface.
        ifname: String,
        /// The error `bind` returned.
        io_error: std::io::Error,
    },
    /// Another AF_XDP socket holds the queue.
    #[error("queue {queue_id} of {ifname} is in use by another AF_XDP socket (EBUSY)")]
    Busy {
        /// The interface.
        ifname: String,
        /// The queue.
        queue_id: u32,
    },
    /// A system call failed.
    #[error("{call} failed on {ifname}: {io_error}")]
    Syscall {
        /// The system call or operation that failed.
        call: &'static str,
        /// The interface.
        ifname: String,
        /// The error the call returned.
        io_error: std::io::Error,
    },
}

/// Takes back the frame holding `addr`, returned on the rx ring (`len` of
/// the descriptor) or the completion ring (`len` 0), with the address's offset
/// in it; or counts the address in `invalid` and makes nothing. A refused
/// address is a kernel or driver bug: counted, never trusted. The frame it
/// should have named stays in the books as held by the kernel.
///
/// # Safety
///
/// As [`Umem::take_from_kernel`]: a frame the address names must be ours,
/// given to the kernel and not taken back since.
#[inline]
unsafe fn take_back(umem: &Umem, addr: u64, len: u32, invalid: &mut u64) -> Option<(Frame, u32)> {
    // SAFETY: the caller's promise, passed on.
    match unsafe { umem.take_from_kernel(addr, len) } {
        Ok(taken) => Some(taken),
        Err(_) => {
            *invalid += 1;
            None
        }
    }
}

/// The AF_XDP socket as a [`NetDevice`].
pub struct XskDevice {
    // Field order is drop order: the rings and socket go before the UMEM.
    fq: DeviceQueue,
    rx: RingRx,
    tx: RingTx,
    user: User,
    _xumem: xdpilone::Umem,
    umem: Arc<Umem>,
    fill_size: u32,
    in_kernel: InKernel,
    /// Rx descriptors refused by `Umem::take_from_kernel` (`XskRxInvalidAddr`).
    rx_invalid_addr: u64,
    /// Completion addresses refused likewise (`XskCqInvalidAddr`).
    cq_invalid_addr: u64,
    zero_copy: bool,
    tx_kicks: u64,
    /// Descriptors one copy-mode kick sends ([`Self::tx_budget`]).
    tx_budget: u32,
    /// Fill-ring wake-ups and busy polls made (`XskRxWakeups`).
    rx_wakeups: u64,
    /// Each receive busy-polls the NAPI first (`XskConfig::prefer_busy_poll`).
    busy_poll: bool,
    /// Bound with `XDP_USE_SG`: descriptors may carry `XDP_PKT_CONTD`.
    multi_buffer: bool,
    /// Puts multi-buffer packets together (and keeps one across reads).
    rx_asm: RxAssembler,
}

// SAFETY: the device holds raw pointers into the ring and UMEM mappings,
// which xdpilone does not mark `Send`. The mappings live as long as the
// device (they are unmapped in its fields' `Drop`), and the device is one
// value with one owner: moving it to the loop thread moves all four rings'
// user-space ends together, so each ring still has exactly one producer or
// consumer on our side. It is not `Sync`: it is never shared.
unsafe impl Send for XskDevice {}

fn errno_io(e: xdpilone::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.get_raw())
}

impl XskDevice {
    /// Creates the socket, maps the rings and binds to `cfg.queue_id` of
    /// `cfg.ifname`, with `XDP_USE_NEED_WAKEUP`.
    pub fn open(umem: Arc<Umem>, cfg: &XskConfig) -> Result<XskDevice, XskError> {
        match cfg.bind_mode {
            BindMode::Auto => match Self::open_with(umem.clone(), cfg, true) {
                Err(XskError::ZeroCopyUnsupported { .. }) => Self::open_with(umem, cfg, false),
                other => other,
            },
            BindMode::ZeroCopy => Self::open_with(umem, cfg, true),
            BindMode::Copy => Self::open_with(umem, cfg, false),
        }
    }

    fn open_with(umem: Arc<Umem>, cfg: &XskConfig, zero_copy: bool) -> Result<XskDevice, XskError> {
        let ifname = cfg.ifname.clone();
        let sys = |call: &'static str, e: xdpilone::Errno| {
            let io_error = errno_io(e);
            match io_error.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => XskError::NotPermitted,
                _ => XskError::Syscall { call, ifname: ifname.clone(), io_error },
            }
        };
        let name =
            CString::new(cfg.ifname.as_str()).map_err(|_| XskError::NoSuchInterface { ifname: ifname.clone() })?;
        let mut info = IfInfo::invalid();
        info.from_name(&name).map_err(|_| XskError::NoSuchInterface { ifname: ifname.clone() })?;
        info.set_queue(cfg.queue_id);

        let config = UmemConfig {
            fill_size: cfg.fill_size,
            complete_size: cfg.completion_size,
            frame_size: umem.frame_size(),
            headroom: 0,
            flags: 0,
        };
        // SAFETY: the area is a page-aligned mapping owned by `umem`, which this
        // device keeps alive (the `Arc`) for as long as the kernel may use it:
        // the xdpilone objects are dropped before it (field order).
        let xumem = unsafe { xdpilone::Umem::new(config, umem.area()) }.map_err(|e| sys("XDP_UMEM_REG", e))?;
        let sock = Socket::with_shared(&info, &xumem).map_err(|e| sys("socket(AF_XDP)", e))?;
        let fq = xumem.fq_cq(&sock).map_err(|e| sys("XDP_UMEM_FILL_RING", e))?;
        let mut bind_flags = SocketConfig::XDP_BIND_NEED_WAKEUP;
        if cfg.multi_buffer {
            bind_flags |= XDP_USE_SG;
        }
        bind_flags |= if zero_copy { SocketConfig::XDP_BIND_ZEROCOPY } else { SocketConfig::XDP_BIND_COPY };
        let user = xumem
            .rx_tx(
                &sock,
                &SocketConfig {
                    rx_size: NonZeroU32::new(cfg.rx_size),
                    tx_size: NonZeroU32::new(cfg.tx_size),
                    bind_flags,
                },
            )
            .map_err(|e| sys("XDP_RX_RING", e))?;
        let rx = user.map_rx().map_err(|e| sys("mmap rx ring", e))?;
        let tx = user.map_tx().map_err(|e| sys("mmap tx ring", e))?;
        // Socket teardown is asynchronous: a queue released a moment ago can
        // still be busy. Retry for a short while before giving up.
        let mut tries = 0;
        loop {
            match xumem.bind(&user) {
                Ok(()) => break,
                Err(e) => {
                    let err = e.get_raw();
                    if err == libc::EBUSY && tries < 50 {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    return Err(match err {
                        libc::EOPNOTSUPP | libc::EPROTONOSUPPORT if zero_copy => {
                            XskError::ZeroCopyUnsupported { ifname }
                        }
                        libc::EOPNOTSUPP | libc::EINVAL if cfg.multi_buffer => {
                            XskError::MultiBufferUnsupported { ifname, io_error: errno_io(e) }
                        }
                        libc::EINVAL if cfg.queue_id > 0 => XskError::NoSuchQueue { ifname, queue_id: cfg.queue_id },
                        libc::EBUSY => XskError::Busy { ifname, queue_id: cfg.queue_id },
                        _ => sys("bind(AF_XDP)", e),
                    });
                }
            }
        }
        // Copy mode: `__xsk_generic_xmit` stops at `max_tx_budget` descriptors a kick; a
        // kernel before 6.17 refuses the option and keeps 32.
        let tx_budget = match (zero_copy, cfg.max_tx_budget) {
            (true, _) => 0,
            (false, Some(b)) if set_max_tx_budget(rx.as_raw_fd(), b).is_ok() => b,
            (false, _) => TX_BATCH_SIZE,
        };
        Ok(XskDevice {
            fq,
            rx,
            tx,
            user,
            _xumem: xumem,
            umem,
            fill_size: cfg.fill_size,
            in_kernel: InKernel::default(),
            rx_invalid_addr: 0,
            cq_invalid_addr: 0,
            zero_copy,
            tx_kicks: 0,
            tx_budget,
            rx_wakeups: 0,
            busy_poll: false,
            multi_buffer: cfg.multi_buffer,
            rx_asm: RxAssembler::default(),
        })
    }

    /// Makes every receive busy-poll the queue's NAPI first
    /// (Documentation/networking/af_xdp.rst, "Busy polling"): sets
    /// `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` (`usecs`) and
    /// `SO_BUSY_POLL_BUDGET` (`budget` packets per busy poll) on the socket.
    ///
    /// # Errors
    ///
    /// The `setsockopt` error (`EPERM` for a budget above the default without
    /// `CAP_NET_ADMIN`; `ENOPROTOOPT` before Linux 5.11).
    pub fn set_busy_poll(&mut self, usecs: u32, budget: u32) -> std::io::Result<()> {
        let fd = self.rx.as_raw_fd();
        for (opt, value) in
            [(SO_PREFER_BUSY_POLL, 1), (SO_BUSY_POLL, usecs as i32), (SO_BUSY_POLL_BUDGET, budget as i32)]
        {
            let value: libc::c_int = value;
            // SAFETY: setsockopt(2) on our own open socket, with a pointer to a
            // c_int on the stack and its size; the kernel only reads it.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&value as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        self.busy_poll = true;
        Ok(())
    }

    /// One busy poll of the queue's NAPI: a non-blocking `recvfrom()`, which
    /// `xsk_recvmsg` turns into `sk_busy_loop` (net/xdp/xsk.c).
    fn busy_poll_rx(&mut self) {
        // SAFETY: recvfrom(2) on our own open socket with no buffer (length 0)
        // and no address: the kernel writes nothing to user memory.
        unsafe {
            libc::recvfrom(
                self.rx.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        self.rx_wakeups += 1;
    }

    /// The socket, to register in the XDP program's XSKMAP.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.rx` (xdpilone's socket) and
        // stays open while the returned borrow (tied to `&self`) lives.
        unsafe { BorrowedFd::borrow_raw(self.rx.as_raw_fd()) }
    }

    /// Whether the socket is bound with `XDP_USE_SG` (multi-buffer).
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// Descriptors one kick of the tx ring sends in copy mode: [`XskConfig::max_tx_budget`]
    /// when the kernel took it (`XDP_MAX_TX_SKB_BUDGET`, Linux ≥ 6.17), else the kernel's
    /// default [`TX_BATCH_SIZE`]; 0 in zero-copy mode, where the driver's NAPI sends.
    pub fn tx_budget(&self) -> u32 {
        self.tx_budget
    }

    /// Whether the socket is bound in zero-copy mode.
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Kicks the kernel to transmit (`sendto`), only when the ring asks
    /// (`need_wakeup`): in copy mode every kick is a system call.
    fn kick_tx(&mut self) {
        if self.tx.needs_wakeup() {
            self.tx.wake();
            self.tx_kicks += 1;
        }
    }
}

/// `XDP_MAX_TX_SKB_BUDGET` on the AF_XDP socket `fd`: descriptors one copy-mode `sendto()`
/// sends (net/xdp/xsk.c `xsk_setsockopt`: 32 up to the tx ring's entries, else `EACCES`).
///
/// # Errors
///
/// The `setsockopt` error: `ENOPROTOOPT` before Linux 6.17, `EACCES` out of range.
fn set_max_tx_budget(fd: std::os::fd::RawFd, budget: u32) -> std::io::Result<()> {
    let value: u32 = budget;
    // SAFETY: setsockopt(2) on our own open socket, with a pointer to a u32 on the stack
    // and its size (the kernel wants exactly `sizeof(unsigned int)`); it only reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl NetDevice for XskDevice {
    fn receive(&mut self, budget: usize, batch: &mut Vec<Desc>) {
        if self.busy_poll {
            self.busy_poll_rx();
        }
        let mut reader = self.rx.receive(budget as u32);
        let mut n = 0;
        if !self.multi_buffer {
            while let Some(XdpDesc { addr, len, .. }) = reader.read() {
                // SAFETY: `addr` comes off this socket's rx ring, which the kernel
                // fills only with frames we put on the fill ring (`fill`), each
                // returned once; range and fit are checked by the call.
                if let Some((frame, offset)) = unsafe { take_back(&self.umem, addr, len, &mut self.rx_invalid_addr) } {
                    batch.push(Desc::one(frame, offset, len));
                    n += 1;
                }
            }
        } else {
            // Multi-buffer: `budget` counts descriptors, and a packet may
            // run on past it (kept by the assembler for the next read).
            let mut read = 0;
            while let Some(XdpDesc { addr, len, options }) = reader.read() {
                read += 1;
                let contd = options & XDP_PKT_CONTD != 0;
                // SAFETY: as above.
                match unsafe { take_back(&self.umem, addr, len, &mut self.rx_invalid_addr) } {
                    Some((frame, offset)) => {
                        n += 1;
                        if !contd && self.rx_asm.idle() {
                            batch.push(Desc::one(frame, offset, len));
                        } else {
                            self.rx_asm.push(&self.umem, frame, offset, len, contd, batch);
                        }
                    }
                    // A refused descriptor in a packet: the packet is
                    // invalid; its other frames go back, counted once.
                    None if contd || !self.rx_asm.idle() => {
                        self.rx_asm.invalidate(&self.umem, contd);
                    }
                    None => {}
                }
            }
            self.rx_asm.end_of_read(&self.umem, read >= budget);
        }
        // Release what was read, or the same descriptors come back.
        reader.release();
        self.in_kernel.took(n);
    }

    fn fill(&mut self, free: &mut Vec<Frame>) -> usize {
        // Frames of multi-buffer packets the assembler dropped go first (the
        // ring takes from the end of `free`); what does not fit stays in the cache.
        free.append(self.rx_asm.recycled());
        self.fill_from(free)
    }

    fn fill_capacity(&self) -> usize {
        self.fill_size as usize
    }

    fn fill_room(&self) -> usize {
        (self.fill_size - self.fq.pending()) as usize
    }

    fn transmit(&mut self, batch: &mut Vec<Desc>) -> usize {
        self.transmit_descs(batch)
    }

    fn complete(&mut self, free: &mut Vec<Frame>) -> usize {
        self.complete_into(free)
    }

    fn frames_in_kernel(&self) -> usize {
        self.in_kernel.frames + self.rx_asm.frames()
    }

    fn stats(&self) -> DeviceStats {
        let mut ours = DeviceStats {
            xsk_rx_invalid_addr: self.rx_invalid_addr,
            xsk_cq_invalid_addr: self.cq_invalid_addr,
            xsk_in_kernel_underflow: self.in_kernel.underflows,
            ..DeviceStats::default()
        };
        self.rx_asm.stats(&mut ours);
        match self.user.statistics_v2() {
            Ok(s) => DeviceStats {
                rx_dropped: s.rx_dropped,
                rx_invalid_descs: s.rx_invalid_descs,
                tx_invalid_descs: s.tx_invalid_descs,
                rx_ring_full: s.rx_ring_full,
                rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
                tx_ring_empty_descs: s.tx_ring_empty_descs,
                ..ours
            },
            Err(_) => ours,
        }
    }

    /// The socket: `xsk_poll` (net/xdp/xsk.c) reports `EPOLLIN` while the rx
    /// ring is not empty, and `sk_data_ready` wakes a poller when frames land.
    fn rx_poll_fd(&mut self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }

    fn wake_rx(&mut self) {
        if self.fq.needs_wakeup() {
            self.fq.wake();
            self.rx_wakeups += 1;
        }
    }

    fn tx_kicks(&self) -> u64 {
        self.tx_kicks
    }

    fn rx_wakeups(&self) -> u64 {
        self.rx_wakeups
    }
}

impl XskDevice {
    /// The fill ring from the end of `free`.
    fn fill_from(&mut self, free: &mut Vec<Frame>) -> usize {
        // The ring's free count is cached and refreshed only when it reads
        // zero, so a second reservation right after the first sees what the
        // kernel has consumed meanwhile: reserve until nothing more fits.
        let mut total = 0;
        while !free.is_empty() {
            let mut writer = self.fq.fill(free.len() as u32);
            // Reserve first, then take exactly as many frames as were
            // reserved: a frame taken and not written would be lost.
            let n = writer.capacity() as usize;
            if n == 0 {
                break;
            }
            let start = free.len() - n;
            let taken = writer.insert(free.drain(start..).map(|f| self.umem.give_to_kernel(f))) as usize;
            debug_assert_eq!(taken, n);
            writer.commit();
            drop(writer);
            total += n;
        }
        self.in_kernel.gave(total);
        total
    }

    /// The tx ring from the front of `batch`; a multi-buffer packet goes
    /// on as one descriptor per frame, `XDP_PKT_CONTD` on all but the last.
    fn transmit_descs(&mut self, batch: &mut Vec<Desc>) -> usize {
        let mut total = 0;
        // As in `fill`: the ring's free count is cached and refreshed only when
        // it reads zero, so reserve again until nothing more fits.
        while !batch.is_empty() {
            let mut writer = self.tx.transmit(batch.len() as u32);
            let n = writer.capacity() as usize;
            if n == 0 {
                break;
            }
            let taken = writer.insert(batch.drain(..n).map(|d| XdpDesc {
                addr: self.umem.give_to_kernel(d.frame) + u64::from(d.offset),
                len: d.len,
                options: 0,
            })) as usize;
            debug_assert_eq!(taken, n);
            writer.commit();
            drop(writer);
            total += n;
        }
        self.in_kernel.gave(total);
        if total > 0 {
            self.kick_tx();
        }
        total
    }

    /// The completion ring into `free`.
    fn complete_into(&mut self, free: &mut Vec<Frame>) -> usize {
        let mut reader = self.fq.complete(u32::MAX);
        let mut n = 0;
        while let Some(addr) = reader.read() {
            // SAFETY: `addr` comes off this socket's completion ring, which
            // the kernel fills only with the addresses of frames we put on the
            // tx ring (`transmit`: base + offset inside the frame), each
            // returned once; the range is checked by the call.
            if let Some((frame, _)) = unsafe { take_back(&self.umem, addr, 0, &mut self.cq_invalid_addr) } {
                free.push(frame);
                n += 1;
            }
        }
        reader.release();
        drop(reader);
        self.in_kernel.took(n);
        // In copy mode one kick sends at most `tx_budget` frames (32 on a kernel
        // without `XDP_MAX_TX_SKB_BUDGET`): keep kicking while the tx ring holds
        // frames the kernel has not taken, or they stay there until the next send.
        if self.tx.pending() > 0 {
            self.kick_tx();
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the rings of a broken kernel could hand back: addresses past the
    /// UMEM, an rx descriptor running past its frame. Each is counted and
    /// dropped; the good one comes back as its frame.
    #[test]
    fn bad_kernel_addresses_are_counted_and_dropped() {
        let (umem, pool) = Umem::new(4, 2048).unwrap();
        let given = umem.give_to_kernel(pool.get().unwrap());
        let mut invalid = 0;
        // SAFETY: the only frame any of these names is the one given above,
        // taken back once, by the last call.
        unsafe {
            for (addr, len) in [(4 * 2048, 60), (u64::MAX - 255, 60), (given + 256, 1793), (given + 2047, 2)] {
                assert!(take_back(&umem, addr, len, &mut invalid).is_none(), "{addr:#x}+{len}");
            }
            assert_eq!(invalid, 4);
            let (frame, offset) = take_back(&umem, given + 256, 1792, &mut invalid).unwrap();
            assert_eq!((frame.addr(), offset, invalid), (given, 256, 4));
            pool.put(frame);
        }
        assert_eq!(pool.len(), 4, "the census adds up");
    }

    #[test]
    fn in_kernel_books_never_wrap() {
        let mut books = InKernel::default();
        books.gave(3);
        books.took(2);
        assert_eq!((books.frames, books.underflows), (1, 0));
        // Two back while holding one: counted and clamped. Debug builds
        // assert as well, after the books are set straight.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| books.took(2)));
        assert_eq!(r.is_err(), cfg!(debug_assertions));
        assert_eq!((books.frames, books.underflows), (0, 1));
        books.gave(1);
        books.took(1);
        assert_eq!((books.frames, books.underflows), (0, 1));
    }
}
