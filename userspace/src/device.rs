//! Device setup, as `xsknet` and the packet generator both do it: the XDP
//! program attached (or refused) on the interface, the UMEM made, the AF_XDP
//! socket opened on one rx queue and registered in the program's XSKMAP.
//!
//! In Linux terms this is bringing the device up (`dev_open`): after
//! [`open`], frames for our address that arrive on the queue land in the
//! socket's rx ring, and the caller's loop owns the rest.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::umem::{FramePool, Umem};
use crate::wire::EthernetAddress;
use crate::xdp::{interface_mac, AttachMode, XdpError, XdpOptions, XdpProgram};
use crate::xsk::{BindMode, XskConfig, XskDevice, XskError};

/// What [`open`] needs.
#[derive(Clone, Debug)]
pub struct DeviceOptions {
    /// The interface.
    pub ifname: String,
    /// The rx queue to bind (and to register in the XSKMAP).
    pub queue: u32,
    /// Our address (the XDP program redirects every IPv4 and ARP frame to the
    /// interface's MAC, broadcast or multicast: docs/ingress.md).
    pub ipv4_addr: Ipv4Addr,
    /// `--xdp-mode`.
    pub xdp_mode: AttachMode,
    /// `--bind-mode`.
    pub bind_mode: BindMode,
    /// UMEM frames.
    pub frames: u32,
    /// UMEM frame size in bytes: 2048 or 4096.
    pub frame_size: u32,
    /// Size of each of the four rings (a power of two).
    pub ring_size: u32,
    /// `--replace`: take the place of an XDP program already attached.
    pub replace: bool,
    /// `--force`: allow the interface that holds the default route.
    pub force: bool,
    /// `--pass-kernel-addrs`: leave the kernel's own addresses on the
    /// interface to the kernel (see [`XdpOptions::pass_kernel_addrs`]).
    pub pass_kernel_addrs: bool,
    /// `--multi-buffer`: AF_XDP multi-buffer when the MTU needs it, always, or never.
    pub multi_buffer: MultiBuffer,
}

/// Whether the socket binds with `XDP_USE_SG` (AF_XDP multi-buffer: a frame
/// larger than a UMEM frame arrives in several descriptors; docs/jumbo.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultiBuffer {
    /// When the interface's MTU and the Ethernet header do not fit one
    /// UMEM frame after the kernel's headroom ([`frame_room`]).
    Auto,
    /// Always (the XDP program loaded frags-aware, the socket with `XDP_USE_SG`).
    On,
    /// Never: [`open`] refuses an MTU that does not fit one frame.
    Off,
}

/// `XDP_PACKET_HEADROOM` (include/uapi/linux/bpf.h): the bytes the kernel
/// leaves in front of a packet in each UMEM frame it receives into.
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// The bytes of a received frame one UMEM frame holds: its size less the
/// kernel's headroom (`xsk_pool_get_rx_frame_size`, net/xdp/xsk_buff_pool.c).
pub fn frame_room(frame_size: u32) -> u32 {
    frame_size - XDP_PACKET_HEADROOM
}

/// Whether a frame of an interface whose MTU is `mtu` (bytes of IP
/// datagram, plus the 14-byte Ethernet header) needs more than one UMEM
/// frame of `frame_size` bytes.
pub fn mtu_needs_multi_buffer(mtu: u32, frame_size: u32) -> bool {
    mtu + ETH_HLEN > frame_room(frame_size)
}

/// The Ethernet header, bytes (`ETH_HLEN`).
const ETH_HLEN: u32 = 14;

/// The largest MTU a multi-buffer receive takes: a frame of at most
/// `MAX_MB_PACKET` (65535) bytes with its Ethernet header.
pub const MAX_MB_MTU: u32 = crate::netdevice::MAX_MB_PACKET as u32 - ETH_HLEN;

/// Decides multi-buffer for `mtu` and `frame_size` as `choice` asks:
/// whether to bind with `XDP_USE_SG`, or the refusal to print.
///
/// # Errors
///
/// [`DeviceError::MtuTooLarge`] when the MTU does not fit one frame and
/// multi-buffer is off, or the MTU is past [`MAX_MB_MTU`].
pub fn multi_buffer_for(ifname: &str, mtu: u32, frame_size: u32, choice: MultiBuffer) -> Result<bool, DeviceError> {
    let needs = mtu_needs_multi_buffer(mtu, frame_size);
    let refuse = |why: &str| DeviceError::MtuTooLarge {
        ifname: ifname.to_string(),
        mtu,
        frame_size,
        room: frame_room(frame_size),
        why: why.to_string(),
    };
    if mtu > MAX_MB_MTU {
        return Err(refuse(&format!("xsknet takes frames of at most 65535 bytes (MTU {MAX_MB_MTU})")));
    }
    match choice {
        MultiBuffer::Off if needs => {
            let fits_4096 = !mtu_needs_multi_buffer(mtu, 4096);
            let hint = if fits_4096 && frame_size < 4096 {
                "; use --multi-buffer auto, or --frame-size 4096".to_string()
            } else {
                "; use --multi-buffer auto".to_string()
            };
            Err(refuse(&format!("multi-buffer is off (--multi-buffer off){hint}")))
        }
        MultiBuffer::Off => Ok(false),
        MultiBuffer::On => Ok(true),
        MultiBuffer::Auto => Ok(needs),
    }
}

/// The interface's MTU, as `ip link` shows it (`/sys/class/net/IF/mtu`,
/// `dev->mtu`).
///
/// # Errors
///
/// The read's error, or `InvalidData` for a file that holds no number.
pub fn interface_mtu(ifname: &str) -> std::io::Result<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{ifname}/mtu"))?;
    text.trim()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("MTU of {ifname}: {text:?}")))
}

/// The parts [`open`] returns, for the caller to assemble.
pub struct Device {
    /// The attached program; dropping it detaches.
    pub xdp: XdpProgram,
    /// The interface's MAC address.
    pub mac: EthernetAddress,
    /// The UMEM, shared with the socket.
    pub umem: Arc<Umem>,
    /// Every UMEM frame, free.
    pub pool: FramePool,
    /// The AF_XDP socket, bound and registered.
    pub xsk: XskDevice,
    /// The interface's MTU, bytes of IP datagram.
    pub mtu: u32,
    /// Whether the socket is bound with `XDP_USE_SG` and the program frags-aware.
    pub multi_buffer: bool,
}

/// Why [`open`] failed; each message is the failing step's own.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Attaching the program, or reading the interface.
    #[error(transparent)]
    Xdp(#[from] XdpError),
    /// Making the UMEM (`mmap`).
    #[error(transparent)]
    Umem(#[from] std::io::Error),
    /// Opening or binding the AF_XDP socket.
    #[error(transparent)]
    Xsk(#[from] XskError),
    /// The interface's MTU cannot be received as asked.
    #[error(
        "MTU {mtu} of {ifname} needs {} bytes per frame, more than a {frame_size}-byte UMEM frame holds \
         ({room} after the kernel's 256 bytes of headroom), and {why}; or lower the MTU: \
         ip link set {ifname} mtu {}",
        mtu + 14,
        room - 14
    )]
    MtuTooLarge {
        /// The interface.
        ifname: String,
        /// Its MTU.
        mtu: u32,
        /// `--frame-size`.
        frame_size: u32,
        /// What one frame holds.
        room: u32,
        /// Why multi-buffer cannot serve it, and what to do.
        why: String,
    },
    /// Reading the interface's MTU.
    #[error("reading the MTU of {ifname}: {io_error}")]
    Mtu {
        /// The interface.
        ifname: String,
        /// The error.
        io_error: std::io::Error,
    },
}

/// Reads the interface's MTU and decides multi-buffer ([`multi_buffer_for`]:
/// the refusal comes before anything is set up), checks that the program may be attached (the refusals of
/// [`XdpProgram::attach`], changing nothing), makes the UMEM, opens and binds
/// the socket, and only then attaches the program and registers the socket for
/// `opts.queue`. Binding before attaching matters with `--replace`: when
/// another instance still holds the queue (`EBUSY`), it is left running with
/// its program, instead of losing it to a program nobody serves.
///
/// # Errors
/// [`DeviceError`], from the first step that failed; the steps before it are
/// undone (the socket closes and the program detaches when dropped).
pub fn open(opts: &DeviceOptions) -> Result<Device, DeviceError> {
    let mtu = interface_mtu(&opts.ifname).map_err(|io_error| match io_error.kind() {
        // /sys/class/net/IFACE/mtu is missing: no such interface here.
        std::io::ErrorKind::NotFound => DeviceError::Xdp(XdpError::NoSuchInterface { ifname: opts.ifname.clone() }),
        _ => DeviceError::Mtu { ifname: opts.ifname.clone(), io_error },
    })?;
    let multi_buffer = multi_buffer_for(&opts.ifname, mtu, opts.frame_size, opts.multi_buffer)?;
    let xdp_opts = XdpOptions {
        ifname: opts.ifname.clone(),
        ipv4_addr: opts.ipv4_addr,
        mode: opts.xdp_mode,
        replace: opts.replace,
        force: opts.force,
        pass_kernel_addrs: opts.pass_kernel_addrs,
        frags: multi_buffer,
    };
    XdpProgram::check(&xdp_opts)?;
    let mac = EthernetAddress(interface_mac(&opts.ifname)?);
    let (umem, pool) = Umem::new(opts.frames, opts.frame_size)?;
    let umem = Arc::new(umem);
    let mut xcfg = XskConfig::new(&opts.ifname, opts.queue);
    xcfg.bind_mode = opts.bind_mode;
    xcfg.set_ring_sizes(opts.ring_size);
    xcfg.multi_buffer = multi_buffer;
    let xsk = XskDevice::open(umem.clone(), &xcfg)?;
    let mut xdp = XdpProgram::attach(&xdp_opts)?;
    xdp.register_xsk(opts.queue, xsk.as_fd())?;
    Ok(Device { xdp, mac, umem, pool, xsk, mtu, multi_buffer })
}
