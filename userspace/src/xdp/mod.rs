//! The hard-IRQ stage: loading and attaching the XDP program.
//!
//! In Linux the hard IRQ handler does the least it can (note that packets wait,
//! schedule the softirq) and leaves parsing and validation to the softirq. The XDP
//! program in `xdp-prog/xsknet.bpf.c` plays that part for xsknet: a bounds-checked
//! look at the Ethernet header, the decision "ours or the kernel's" by EtherType and
//! destination MAC (IPv4 and ARP to our MAC, broadcast or multicast; with
//! `--pass-kernel-addrs` the host's own addresses stay the kernel's:
//! docs/ingress.md), and `bpf_redirect_map()` into the AF_XDP socket registered for the
//! frame's rx queue. Everything else, including every validity check, is the
//! softirq loop's in user space, unless the guard is on ([`guard`], off by
//! default): then a flood is dropped here, before the copy.
//!
//! This module owns that program's life: it checks that attaching is safe (the
//! interface exists, does not carry the default route, has no program already),
//! loads the embedded object, writes the configuration map, attaches through a
//! **bpf_link** so that the program leaves with the process even on `kill -9`, lets
//! sockets register in the XSKMAP, and reads the per-CPU counters.
//!
//! Kernel documentation: [AF_XDP](https://docs.kernel.org/networking/af_xdp.html),
//! [XSKMAP](https://docs.kernel.org/bpf/map_xskmap.html),
//! [BPF_MAP_TYPE_ARRAY and PERCPU_ARRAY](https://docs.kernel.org/bpf/map_array.html).
//!
//! # Minimum kernel version
//!
//! Linux 5.9: XDP attachment through `bpf_link` (`BPF_LINK_CREATE` for
//! `BPF_XDP`). `bpf_redirect_map()` returning its fallback action when the XSKMAP
//! slot is empty needs 5.3; netlink's extended ack messages, shown in errors, 4.12.
//!
//! # Namespaces
//!
//! Every lookup here (interface, routes, attached program) is made in the calling
//! *thread's* network namespace: interfaces and routes through rtnetlink, never
//! `/sys/class/net`, which shows the namespace sysfs was mounted in. A thread that has `setns(2)`'d into a namespace can
//! therefore attach there.
//!
//! # Layout
//!
//! As in aya: [`program`] is the program and its link (attach, refuse, replace,
//! detach, the config map, the counters); [`object`] the embedded object and
//! the mirrors of its C header; [`netlink`] the rtnetlink requests;
//! [`bpf`] the raw `bpf(2)` commands aya lacks; [`route`] the default-route
//! question; [`guard`] the guard's rules and maps (the drops before the copy,
//! off by default); [`testrun`] the program loaded nowhere, run on literal
//! frames with `BPF_PROG_TEST_RUN`. Every system call of the attach path goes through one trait,
//! [`XdpSys`], so the attach decisions are tested with a fake, without root.

pub mod bpf;
pub mod guard;
pub mod netlink;
pub mod object;
pub mod program;
pub mod route;
pub mod sys;
pub mod testrun;

use std::{error::Error as StdError, fmt, io, net::Ipv4Addr};

use aya::{maps::MapError, programs::ProgramError, EbpfError};

pub use guard::{Guard, GuardCounters, GuardError, GuardRules, GuardUpdate};
pub use netlink::LinkDetails;
pub use object::{MAX_QUEUES, PROGRAM};
pub use program::{XdpLinkWatch, XdpProgStats, XdpProgram, XdpStatsReader};
pub use route::holds_default_route;
pub use sys::{RealSys, XdpSys};
pub use testrun::{TestRunProgram, XdpAction};

/// How to attach the program to the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Try driver (native) mode, fall back to generic (skb) mode.
    Auto,
    /// Driver (native) XDP: runs in the driver's NAPI poll, before any `sk_buff`.
    Driver,
    /// Generic (skb) XDP: runs after the kernel has built an `sk_buff`; works on
    /// every interface, slower.
    Generic,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Driver => "driver",
            Self::Generic => "generic",
        })
    }
}

/// What [`XdpProgram::attach`] needs.
#[derive(Clone, Debug)]
pub struct XdpOptions {
    /// The interface to attach to.
    pub ifname: String,
    /// Our IPv4 address (for the guard, and to refuse `pass_kernel_addrs`
    /// when the kernel holds it too); IPv4 and ARP frames to the interface's
    /// MAC, broadcast or multicast are redirected whatever their addresses.
    /// `0.0.0.0` attaches a program that passes everything.
    pub ipv4_addr: Ipv4Addr,
    /// Driver, generic, or driver falling back to generic.
    pub mode: AttachMode,
    /// Detach a program already on the interface (bpf_link or netlink) and take its place.
    pub replace: bool,
    /// Attach even to the interface that holds the default route.
    pub force: bool,
    /// `--pass-kernel-addrs`: leave to the kernel the frames to its own IPv4
    /// addresses on the interface (read at attach), their broadcast addresses,
    /// the limited broadcast and multicast groups, and ARP for its addresses.
    pub pass_kernel_addrs: bool,
    /// Load the frags-aware build (`xdp.frags`, `BPF_F_XDP_HAS_FRAGS`, Linux
    /// ≥ 5.18), for AF_XDP multi-buffer: frames in several buffers reach the
    /// program and veth attaches at MTUs past one page per frame.
    pub frags: bool,
}

/// Errors of the setup path. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// Not root: the operation needs capabilities.
    #[error("loading an XDP program needs CAP_NET_ADMIN and CAP_BPF: run as root")]
    NotPermitted,
    /// No interface of that name.
    #[error(
        "no interface {ifname} in this network namespace: `ip link` lists them; for one in another \
         namespace, run xsknet there (`ip netns exec NS xsknet …`)"
    )]
    NoSuchInterface {
        /// The interface.
        ifname: String,
    },
    /// The interface has no Ethernet address.
    #[error("interface {ifname} has no Ethernet address: xsknet needs an Ethernet device")]
    NotEthernet {
        /// The interface.
        ifname: String,
    },
    /// Another XDP program is attached (`--replace` takes its place).
    #[error("an XDP program is already attached to {ifname} (id {id}); pass --replace to take its place")]
    AlreadyAttached {
        /// The interface.
        ifname: String,
        /// The attached program's id.
        id: u32,
    },
    /// The interface holds this machine's default route (`--force` overrides).
    #[error(
        "{ifname} holds the default route: attaching would cut this machine off; pass --force if you really mean it"
    )]
    DefaultRoute {
        /// The interface.
        ifname: String,
    },
    /// The embedded object did not load.
    #[error("could not load the XDP object: {detail}")]
    Load {
        /// What went wrong, with the kernel's own words where it gave some.
        detail: String,
        #[source]
        /// The underlying error.
        source: Box<EbpfError>,
    },
    /// The kernel refused the program (the verifier).
    #[error("the kernel refused to load the XDP program {PROGRAM}: {detail}")]
    Program {
        /// What went wrong, with the kernel's own words where it gave some.
        detail: String,
        #[source]
        /// The underlying error.
        source: Box<ProgramError>,
    },
    /// Attaching failed in the given mode.
    #[error("could not attach the XDP program to {ifname} in {mode} mode: {detail}")]
    Attach {
        /// The interface.
        ifname: String,
        /// The attach mode tried.
        mode: AttachMode,
        /// What went wrong, with the kernel's own words where it gave some.
        detail: String,
        #[source]
        /// The underlying error.
        source: Box<ProgramError>,
    },
    /// The kernel attached without a bpf_link.
    #[error(
        "the kernel attached the XDP program to {ifname} without a bpf_link (Linux older than 5.9?); \
         xsknet refuses, as such a program would outlive the process and black-hole traffic"
    )]
    NotALink {
        /// The interface.
        ifname: String,
    },
    /// A map could not be read or written.
    #[error("XDP map {map}: {detail}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// What went wrong, with the kernel's own words where it gave some.
        detail: String,
        #[source]
        /// The underlying error.
        source: Box<MapError>,
    },
    /// `--pass-kernel-addrs` found more kernel addresses than the map holds.
    #[error("the interface has {count} kernel IPv4 addresses and broadcast addresses, more than the {max} --pass-kernel-addrs can leave to the kernel", max = object::KERNEL_ADDRS_MAX)]
    TooManyKernelAddrs {
        /// How many there are.
        count: usize,
    },
    /// The embedded object lacks a program or map the loader expects.
    #[error("the embedded XDP object has no {name}: rebuild xsknet (xdp-prog/ and src/xdp.rs disagree)")]
    MissingFromObject {
        /// What is missing.
        name: &'static str,
    },
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The system call or operation that failed.
        call: String,
        #[source]
        /// The underlying error.
        source: io::Error,
    },
}

impl XdpError {
    /// Collapses permission failures into [`XdpError::NotPermitted`], whatever step
    /// they came from, so the user is told what to do.
    pub(crate) fn or_not_permitted(self) -> Self {
        if is_permission_error(&self) {
            Self::NotPermitted
        } else {
            self
        }
    }

    pub(crate) fn syscall(call: impl Into<String>, source: io::Error) -> Self {
        Self::Syscall { call: call.into(), source }.or_not_permitted()
    }

    pub(crate) fn map(map: &'static str, source: MapError) -> Self {
        Self::Map { map, detail: chain(&source), source: Box::new(source) }.or_not_permitted()
    }
}

/// The interface's index, in the calling thread's network namespace.
///
/// # Errors
/// [`XdpError::NoSuchInterface`], or the netlink request's failure.
pub fn interface_index(ifname: &str) -> Result<u32, XdpError> {
    Ok(netlink::get_link(ifname)?.index)
}

/// The interface's MAC address, in the calling thread's network namespace.
///
/// Read through rtnetlink (`IFLA_ADDRESS`), the same value as
/// `/sys/class/net/IF/address`, but sysfs shows the namespace it was mounted in,
/// not the caller's.
///
/// # Errors
/// [`XdpError::NoSuchInterface`]; [`XdpError::NotEthernet`] for an interface
/// without a 6-byte address; the netlink request's failure.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6], XdpError> {
    netlink::get_link(ifname)?.mac.ok_or_else(|| XdpError::NotEthernet { ifname: ifname.to_owned() })
}

/// The message of `err` and of every error under it, without repeating text an
/// outer message already includes.
pub(crate) fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let msg = e.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        source = e.source();
    }
    out
}

/// Whether `EPERM` or `EACCES` is anywhere in the chain.
fn is_permission_error(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// What rtnetlink says about an interface's XDP programs (`IFLA_XDP`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpState {
    /// `IFLA_XDP_ATTACHED`: `XDP_ATTACHED_{NONE, DRV, SKB, HW, MULTI}`.
    pub attached: u8,
    /// `IFLA_XDP_PROG_ID`: the program, when a single one is attached.
    pub prog_id: u32,
    /// `IFLA_XDP_DRV_PROG_ID`: the driver-mode program (with `XDP_ATTACHED_MULTI`).
    pub drv_prog_id: u32,
    /// `IFLA_XDP_SKB_PROG_ID`: the generic-mode program.
    pub skb_prog_id: u32,
    /// `IFLA_XDP_HW_PROG_ID`: the offloaded program.
    pub hw_prog_id: u32,
}

impl XdpState {
    /// `XDP_ATTACHED_DRV`.
    pub const ATTACHED_DRV: u8 = 1;
    /// `XDP_ATTACHED_SKB`.
    pub const ATTACHED_SKB: u8 = 2;
    /// `XDP_ATTACHED_HW`.
    pub const ATTACHED_HW: u8 = 3;

    /// The first program id reported, if any program is attached.
    pub fn any_prog_id(&self) -> Option<u32> {
        [self.prog_id, self.drv_prog_id, self.skb_prog_id, self.hw_prog_id].into_iter().find(|&id| id != 0)
    }

    /// Each attached program with the `XDP_FLAGS_*_MODE` that addresses it.
    pub fn attachments(&self) -> Vec<(u32, u32)> {
        let (mut drv, mut skb, mut hw) = (self.drv_prog_id, self.skb_prog_id, self.hw_prog_id);
        // Kernels report the per-mode ids only with XDP_ATTACHED_MULTI.
        match self.attached {
            Self::ATTACHED_DRV if drv == 0 => drv = self.prog_id,
            Self::ATTACHED_SKB if skb == 0 => skb = self.prog_id,
            Self::ATTACHED_HW if hw == 0 => hw = self.prog_id,
            _ => {}
        }
        [(drv, netlink::XDP_FLAGS_DRV_MODE), (skb, netlink::XDP_FLAGS_SKB_MODE), (hw, netlink::XDP_FLAGS_HW_MODE)]
            .into_iter()
            .filter(|&(id, _)| id != 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_are_found_in_the_chain() {
        let e = XdpError::syscall("x", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, XdpError::NotPermitted));
        let e = XdpError::syscall("x", io::Error::from_raw_os_error(libc::EBUSY));
        assert!(matches!(e, XdpError::Syscall { .. }));
        let map_err =
            MapError::CreateError { name: "xsks_map".into(), io_error: io::Error::from_raw_os_error(libc::EACCES) };
        assert!(matches!(XdpError::map("xsks_map", map_err), XdpError::NotPermitted));
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = XdpError::AlreadyAttached { ifname: "eth1".into(), id: 42 };
        assert_eq!(
            e.to_string(),
            "an XDP program is already attached to eth1 (id 42); pass --replace to take its place"
        );
        assert_eq!(
            XdpError::NoSuchInterface { ifname: "veth9".into() }.to_string(),
            "no interface veth9 in this network namespace: `ip link` lists them; for one in another namespace, run xsknet there (`ip netns exec NS xsknet …`)"
        );
    }

    #[test]
    fn bad_names_are_not_found_without_asking() {
        for name in ["", "a/b", "sixteen-chars-xx"] {
            assert!(matches!(interface_index(name), Err(XdpError::NoSuchInterface { .. })));
        }
    }
}
