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
}

/// Checks that the program may be attached (the refusals of
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
    let xdp_opts = XdpOptions {
        ifname: opts.ifname.clone(),
        ipv4_addr: opts.ipv4_addr,
        mode: opts.xdp_mode,
        replace: opts.replace,
        force: opts.force,
        pass_kernel_addrs: opts.pass_kernel_addrs,
    };
    XdpProgram::check(&xdp_opts)?;
    let mac = EthernetAddress(interface_mac(&opts.ifname)?);
    let (umem, pool) = Umem::new(opts.frames, opts.frame_size)?;
    let umem = Arc::new(umem);
    let mut xcfg = XskConfig::new(&opts.ifname, opts.queue);
    xcfg.bind_mode = opts.bind_mode;
    xcfg.set_ring_sizes(opts.ring_size);
    let xsk = XskDevice::open(umem.clone(), &xcfg)?;
    let mut xdp = XdpProgram::attach(&xdp_opts)?;
    xdp.register_xsk(opts.queue, xsk.as_fd())?;
    Ok(Device { xdp, mac, umem, pool, xsk })
}
