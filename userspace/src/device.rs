//! Device setup, as `xsknet` and the packet generator both do it: the XDP
//! program attached (or refused) on the interface, the UMEM made, the AF_XDP
//! socket opened on one rx queue and registered in the program's XSKMAP.
//!
//! In Linux terms this is bringing the device up (`dev_open`): after
//! [`open`], frames for our address that arrive on the queue land in the
//! socket's rx ring, and the caller's loop owns the rest.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::control::{self, InstanceInfo};
use crate::umem::{FramePool, Umem};
use crate::wire::EthernetAddress;
use crate::xdp::bpf::{self, LinkHolder};
use crate::xdp::{interface_mac, netlink, AttachMode, XdpError, XdpOptions, XdpProgram};
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
    /// `--replace` would take the XDP program of a running xsknet (on
    /// another queue of the interface) off it, and silence it.
    #[error(
        "the XDP program {prog_id} on {ifname} serves a running xsknet ({}): --replace would detach it and that \
         instance would receive nothing more; one program serves one instance per interface, so stop that instance \
         first (kill {pid}), then start this one, or serve from another interface",
        owner_text(*pid, comm, *queue, control.as_deref())
    )]
    ReplaceLiveInstance {
        /// The interface.
        ifname: String,
        /// The program attached.
        prog_id: u32,
        /// The process that holds the program's bpf_link.
        pid: u32,
        /// Its name.
        comm: String,
        /// Its queue, when its control socket says.
        queue: Option<u32>,
        /// Its control socket, when it has one.
        control: Option<std::path::PathBuf>,
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
    // The stack's transmits: one kick sends what the tx ring holds (a window of a bulk
    // send), not 32 of it, where the kernel allows (docs/architecture.md, "Transmit in
    // copy mode").
    xcfg.max_tx_budget = Some(xcfg.tx_size);
    let xsk = XskDevice::open(umem.clone(), &xcfg)?;
    if opts.replace {
        refuse_replacing_a_live_instance(&opts.ifname, opts.queue)?;
    }
    let mut xdp = XdpProgram::attach(&xdp_opts)?;
    xdp.register_xsk(opts.queue, xsk.as_fd())?;
    Ok(Device { xdp, mac, umem, pool, xsk, mtu, multi_buffer })
}

fn owner_text(pid: u32, comm: &str, queue: Option<u32>, control: Option<&std::path::Path>) -> String {
    match (queue, control) {
        (Some(q), Some(c)) => format!("pid {pid}, queue {q}, control socket {}", c.display()),
        _ => format!("pid {pid}, {comm}, without a control socket"),
    }
}

/// With `--replace`: refuses when the program attached to `ifname` is held
/// by a running xsknet (its bpf_link open in a process named `xsknet…`),
/// which on a multi-queue interface serves another queue. Its queue and
/// control socket are named when it has one (`/run/xsknet/IFACE-qN….sock`,
/// asked who it is). The same queue never gets here: the AF_XDP bind fails
/// first (`EBUSY`). Called after the socket is bound, before anything is
/// detached.
fn refuse_replacing_a_live_instance(ifname: &str, queue: u32) -> Result<(), DeviceError> {
    let Some(prog_id) = netlink::get_link(ifname)?.xdp.any_prog_id() else { return Ok(()) };
    let holders = bpf::link_holders(prog_id);
    if !holders.iter().any(is_xsknet) {
        return Ok(());
    }
    // The instances of this interface on other queues, by their socket's name.
    let prefix = format!("{ifname}-q");
    let instances: Vec<Instance> = control::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let q: String = name.strip_prefix(&prefix).unwrap_or("").chars().take_while(char::is_ascii_digit).collect();
            q.parse::<u32>().is_ok_and(|q| q != queue)
        })
        .filter_map(|p| control::request::<InstanceInfo>(&p, control::Request::Info).ok().map(|i| (p, i)))
        .collect();
    match live_owner(prog_id, &holders, &instances, std::process::id()) {
        None => Ok(()),
        Some((pid, comm, instance)) => Err(DeviceError::ReplaceLiveInstance {
            ifname: ifname.to_string(),
            prog_id,
            pid,
            comm,
            queue: instance.map(|(_, i)| i.queue),
            control: instance.map(|(p, _)| p.clone()),
        }),
    }
}

/// An instance's control socket, and who answered there.
type Instance = (std::path::PathBuf, InstanceInfo);

/// The pid and name of the xsknet holding a program's link, and its instance if known.
type Owner<'a> = (u32, String, Option<&'a Instance>);

/// Whether a holder of the link is an xsknet process (`xsknet`, `xsknet-pktgen`).
fn is_xsknet(h: &LinkHolder) -> bool {
    h.comm.starts_with("xsknet")
}

/// The running xsknet (not `self_pid`) that holds program `prog_id`'s link,
/// with its instance when one of `instances` is it (same pid, or the same
/// program id in its info).
fn live_owner<'a>(prog_id: u32, holders: &[LinkHolder], instances: &'a [Instance], self_pid: u32) -> Option<Owner<'a>> {
    let h = holders.iter().find(|h| h.pid != self_pid && is_xsknet(h))?;
    let instance = instances.iter().find(|(_, i)| i.pid == h.pid || i.prog_id == Some(prog_id));
    Some((h.pid, h.comm.clone(), instance))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Netns;

    fn info(pid: u32, queue: u32, prog_id: Option<u32>) -> InstanceInfo {
        InstanceInfo {
            pid,
            version: "t".into(),
            app: "echo (udp, tcp)".into(),
            iface: "veth0".into(),
            queue,
            netns: Netns { inode: 1, name: None },
            addr: Ipv4Addr::new(10, 0, 0, 2),
            prefix_len: 24,
            port: 7,
            setup: String::new(),
            started_unix_s: 0.0,
            prog_id,
        }
    }

    #[test]
    fn replace_is_refused_only_for_a_running_xsknet() {
        let holder = |pid: u32, comm: &str| LinkHolder { pid, comm: comm.into() };
        let q0 = [("/run/xsknet/veth0-q0.sock".into(), info(100, 0, Some(42)))];
        // A running xsknet on queue 0 holds program 42: named with its queue.
        let (pid, comm, inst) = live_owner(42, &[holder(100, "xsknet")], &q0, 200).expect("refused");
        assert_eq!((pid, comm.as_str(), inst.map(|(_, i)| i.queue)), (100, "xsknet", Some(0)));
        // Without a control socket (--no-control) or as pktgen: refused all the same.
        let (pid, _, inst) = live_owner(42, &[holder(101, "xsknet-pktgen")], &[], 200).expect("refused");
        assert_eq!((pid, inst.is_none()), (101, true));
        // Another tool's program (xdp-loader, ip) may be replaced, as asked.
        assert!(live_owner(42, &[holder(102, "xdp-loader")], &q0, 200).is_none());
        // Nobody holds it (a netlink attachment), or only we do.
        assert!(live_owner(42, &[], &q0, 200).is_none());
        assert!(live_owner(42, &[holder(200, "xsknet")], &q0, 200).is_none());
        let e = DeviceError::ReplaceLiveInstance {
            ifname: "veth0".into(),
            prog_id: 42,
            pid: 100,
            comm: "xsknet".into(),
            queue: Some(0),
            control: Some("/run/xsknet/veth0-q0.sock".into()),
        };
        assert_eq!(
            e.to_string(),
            "the XDP program 42 on veth0 serves a running xsknet (pid 100, queue 0, control socket \
             /run/xsknet/veth0-q0.sock): --replace would detach it and that instance would receive nothing more; \
             one program serves one instance per interface, so stop that instance first (kill 100), then start this \
             one, or serve from another interface"
        );
    }
}
