//! The hard-IRQ stage: loading and attaching the XDP program.
//!
//! In Linux the hard IRQ handler does the least it can (note that packets wait,
//! schedule the softirq) and leaves parsing and validation to the softirq. The XDP
//! program in `xdp-prog/xsknet.bpf.c` plays that part for xsknet: a bounds-checked
//! look at the Ethernet header and the one header behind it, the decision "ours or
//! the kernel's", and `bpf_redirect_map()` into the AF_XDP socket registered for the
//! frame's rx queue. Everything else, including every validity check, is the
//! softirq loop's in user space.
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
//! *thread's* network namespace: interfaces through rtnetlink and routes through
//! `/proc/thread-self/net`, never `/sys/class/net`, which shows the namespace
//! sysfs was mounted in. A thread that has `setns(2)`'d into a namespace can
//! therefore attach there.
#![allow(unsafe_code)] // raw rtnetlink and bpf(2) calls, each with a SAFETY line

use std::{
    error::Error as StdError,
    fmt, io,
    net::Ipv4Addr,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

use aya::{
    maps::{Array, MapError, PerCpuArray, XskMap},
    programs::{links::LinkType, xdp::XdpLinkId, ProgramError, Xdp, XdpMode},
    Ebpf, EbpfError,
};

/// The compiled `xdp-prog/xsknet.bpf.c` (built by `build.rs`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xsknet.bpf.o"));

/// `SEC("xdp")` function name in the object.
const PROGRAM: &str = "xsknet_xdp";
/// Map names, as in `xsknet_common.h`.
const CONFIG_MAP: &str = "xsknet_config";
const XSKS_MAP: &str = "xsks_map";
const STATS_MAP: &str = "xsknet_stats";
/// `XSKNET_MAX_QUEUES`: entries in `xsks_map`.
pub const MAX_QUEUES: u32 = 64;

/// Mirror of `struct xsknet_config` in `xsknet_common.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct XsknetConfig {
    /// Network byte order; 0 makes the program pass everything.
    ipv4_addr: u32,
    /// `XSKNET_F_*`.
    flags: u32,
}

/// `XSKNET_F_DROP`: drop our frames instead of redirecting them.
const XSKNET_F_DROP: u32 = 1 << 0;

// SAFETY: `repr(C)` with two `u32` fields: no padding, and every bit pattern is a
// valid value, so it may be copied to and from the kernel's bytes.
unsafe impl aya::Pod for XsknetConfig {}

/// Mirror of `enum xsknet_stat` in `xsknet_common.h`: indices into `xsknet_stats`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XsknetStat {
    Rx = 0,
    RedirectIpv4 = 1,
    RedirectArp = 2,
    PassNotOurs = 3,
    PassNoSocket = 4,
    PassMalformed = 5,
    Drop = 6,
}

impl XsknetStat {
    const ALL: [Self; 7] = [
        Self::Rx,
        Self::RedirectIpv4,
        Self::RedirectArp,
        Self::PassNotOurs,
        Self::PassNoSocket,
        Self::PassMalformed,
        Self::Drop,
    ];

    /// The C enumerator's name, for the header drift test.
    #[cfg(test)]
    fn c_name(self) -> &'static str {
        match self {
            Self::Rx => "XSKNET_STAT_RX",
            Self::RedirectIpv4 => "XSKNET_STAT_REDIRECT_IPV4",
            Self::RedirectArp => "XSKNET_STAT_REDIRECT_ARP",
            Self::PassNotOurs => "XSKNET_STAT_PASS_NOT_OURS",
            Self::PassNoSocket => "XSKNET_STAT_PASS_NO_SOCKET",
            Self::PassMalformed => "XSKNET_STAT_PASS_MALFORMED",
            Self::Drop => "XSKNET_STAT_DROP",
        }
    }
}

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
    /// Our IPv4 address: frames to it (and ARP asking for it) are redirected.
    /// `0.0.0.0` attaches a program that passes everything.
    pub ipv4_addr: Ipv4Addr,
    /// Driver, generic, or driver falling back to generic.
    pub mode: AttachMode,
    /// Detach a program already on the interface (bpf_link or netlink) and take its place.
    pub replace: bool,
    /// Attach even to the interface that holds the default route.
    pub force: bool,
}

/// The hard-IRQ stage's counters, summed over CPUs. Every frame counted in `rx`
/// is counted in exactly one of the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct XdpProgStats {
    /// Every frame the program ran on.
    pub rx: u64,
    /// IPv4 to our address, redirected into the AF_XDP socket.
    pub redirect_ipv4: u64,
    /// ARP asking for our address, redirected into the AF_XDP socket.
    pub redirect_arp: u64,
    /// Left to the kernel: another address, IPv6, VLAN-tagged, another ethertype,
    /// or no address configured.
    pub pass_not_ours: u64,
    /// Ours, but no AF_XDP socket registered on the frame's rx queue: left to the kernel.
    pub pass_no_socket: u64,
    /// Too short to tell (Ethernet, IPv4 or ARP header cut short): left to the kernel.
    pub pass_malformed: u64,
    /// Ours, dropped at XDP because [`XdpProgram::set_drop`] asked for it.
    pub drop: u64,
}

/// Errors of the setup path. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading an XDP program needs CAP_NET_ADMIN and CAP_BPF: run as root")]
    NotPermitted,
    #[error("interface {ifname} not found (see `ip link`)")]
    NoSuchInterface { ifname: String },
    #[error("interface {ifname} has no Ethernet address: xsknet needs an Ethernet device")]
    NotEthernet { ifname: String },
    #[error("an XDP program is already attached to {ifname} (id {id}); pass --replace to take its place")]
    AlreadyAttached { ifname: String, id: u32 },
    #[error(
        "{ifname} holds the default route: attaching would cut this machine off; pass --force if you really mean it"
    )]
    DefaultRoute { ifname: String },
    #[error("could not load the XDP object: {detail}")]
    Load {
        detail: String,
        #[source]
        source: Box<EbpfError>,
    },
    #[error("the kernel refused to load the XDP program {PROGRAM}: {detail}")]
    Program {
        detail: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("could not attach the XDP program to {ifname} in {mode} mode: {detail}")]
    Attach {
        ifname: String,
        mode: AttachMode,
        detail: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error(
        "the kernel attached the XDP program to {ifname} without a bpf_link (Linux older than 5.9?); \
         xsknet refuses, as such a program would outlive the process and black-hole traffic"
    )]
    NotALink { ifname: String },
    #[error("XDP map {map}: {detail}")]
    Map {
        map: &'static str,
        detail: String,
        #[source]
        source: Box<MapError>,
    },
    #[error("the embedded XDP object has no {name}: rebuild xsknet (xdp-prog/ and src/xdp.rs disagree)")]
    MissingFromObject { name: &'static str },
    #[error("{call} failed: {source}")]
    Syscall {
        call: String,
        #[source]
        source: io::Error,
    },
}

impl XdpError {
    /// Collapses permission failures into [`XdpError::NotPermitted`], whatever step
    /// they came from, so the user is told what to do.
    fn or_not_permitted(self) -> Self {
        if is_permission_error(&self) {
            Self::NotPermitted
        } else {
            self
        }
    }

    fn syscall(call: impl Into<String>, source: io::Error) -> Self {
        Self::Syscall { call: call.into(), source }.or_not_permitted()
    }

    fn map(map: &'static str, source: MapError) -> Self {
        Self::Map { map, detail: chain(&source), source: Box::new(source) }.or_not_permitted()
    }
}

/// An XDP program attached to one interface through a bpf_link.
///
/// Owns the loaded object (program and maps) and the link. Dropping it detaches the
/// program; so does the death of the process, even by `kill -9`, because the
/// kernel releases the link with the last file descriptor.
pub struct XdpProgram {
    ebpf: Ebpf,
    ipv4_addr: Ipv4Addr,
    link: Option<XdpLinkId>,
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
    program_id: u32,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("program_id", &self.program_id)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Checks, loads and attaches the program (see the module docs for the order).
    ///
    /// With `replace`, the new program is loaded and verified *before* the old one
    /// is detached, so a program the kernel refuses never leaves the interface bare.
    pub fn attach(opts: &XdpOptions) -> Result<XdpProgram, XdpError> {
        let ifname = opts.ifname.as_str();
        let link = rtnl::get_link(ifname)?;

        if !opts.force {
            let holds = holds_default_route(ifname)
                .map_err(|e| XdpError::syscall("reading /proc/thread-self/net routes", e))?;
            if holds {
                return Err(XdpError::DefaultRoute { ifname: ifname.to_owned() });
            }
        }

        let current = link.xdp;
        if let Some(id) = current.any_prog_id() {
            if !opts.replace {
                return Err(XdpError::AlreadyAttached { ifname: ifname.to_owned(), id });
            }
        }

        let mut ebpf = Ebpf::load(OBJECT)
            .map_err(|source| XdpError::Load { detail: chain(&source), source: Box::new(source) }.or_not_permitted())?;
        write_config(&mut ebpf, opts.ipv4_addr, 0)?;

        let program = xdp_program(&mut ebpf)?;
        program.load().map_err(|source| {
            // The verifier says EACCES for a program it rejects: that is no
            // permission problem, and its log says so.
            let rejected = matches!(&source, ProgramError::LoadError { verifier_log, .. }
                if !verifier_log.to_string().trim().is_empty());
            let err = XdpError::Program { detail: chain(&source), source: Box::new(source) };
            if rejected {
                err
            } else {
                err.or_not_permitted()
            }
        })?;

        if opts.replace && current.any_prog_id().is_some() {
            detach_existing(ifname, link.index, &current)?;
        }

        let (link_id, mode) = attach_in_mode(program, ifname, link.index, opts.mode)?;
        let program_id = match program.info() {
            Ok(info) => info.id(),
            Err(source) => {
                let _ = program.detach(link_id);
                return Err(XdpError::Program { detail: chain(&source), source: Box::new(source) }.or_not_permitted());
            }
        };
        // aya falls back to a netlink attachment when BPF_LINK_CREATE says EINVAL.
        // Such a program stays on the interface after we die: refuse it.
        match is_xdp_link(program_id) {
            Ok(true) => {}
            Ok(false) => {
                let _ = program.detach(link_id);
                return Err(XdpError::NotALink { ifname: ifname.to_owned() });
            }
            Err(e) => {
                let _ = program.detach(link_id);
                return Err(XdpError::syscall("listing bpf_links (BPF_LINK_GET_NEXT_ID)", e));
            }
        }

        Ok(XdpProgram {
            ebpf,
            ipv4_addr: opts.ipv4_addr,
            link: Some(link_id),
            ifname: ifname.to_owned(),
            ifindex: link.index,
            mode,
            program_id,
        })
    }

    /// Registers an AF_XDP socket for `queue_id`: frames for us that arrive on that
    /// rx queue are redirected to it. The socket must be bound to the same
    /// interface and queue, or the kernel drops the redirected frames.
    pub fn register_xsk(&mut self, queue_id: u32, xsk_fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        let map = self.ebpf.map_mut(XSKS_MAP).ok_or(XdpError::MissingFromObject { name: XSKS_MAP })?;
        let mut xsks = XskMap::try_from(map).map_err(|e| XdpError::map(XSKS_MAP, e))?;
        xsks.set(queue_id, xsk_fd, 0).map_err(|e| XdpError::map(XSKS_MAP, e))
    }

    /// Removes the socket registered for `queue_id`: its frames go to the kernel again.
    pub fn unregister_xsk(&mut self, queue_id: u32) -> Result<(), XdpError> {
        let map = self.ebpf.map_mut(XSKS_MAP).ok_or(XdpError::MissingFromObject { name: XSKS_MAP })?;
        let mut xsks = XskMap::try_from(map).map_err(|e| XdpError::map(XSKS_MAP, e))?;
        xsks.unset(queue_id).map_err(|e| XdpError::map(XSKS_MAP, e))
    }

    /// Reads the counters, each summed over the CPUs.
    ///
    /// The counters are read one after another, not as a snapshot: under traffic
    /// `rx` may run slightly ahead of the sum of the others.
    pub fn stats(&self) -> Result<XdpProgStats, XdpError> {
        let map = self.ebpf.map(STATS_MAP).ok_or(XdpError::MissingFromObject { name: STATS_MAP })?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| XdpError::map(STATS_MAP, e))?;
        let mut sums = [0u64; XsknetStat::ALL.len()];
        for stat in XsknetStat::ALL {
            let per_cpu = stats.get(&(stat as u32), 0).map_err(|e| XdpError::map(STATS_MAP, e))?;
            sums[stat as usize] = per_cpu.iter().copied().fold(0, u64::wrapping_add);
        }
        Ok(XdpProgStats {
            rx: sums[XsknetStat::Rx as usize],
            redirect_ipv4: sums[XsknetStat::RedirectIpv4 as usize],
            redirect_arp: sums[XsknetStat::RedirectArp as usize],
            pass_not_ours: sums[XsknetStat::PassNotOurs as usize],
            pass_no_socket: sums[XsknetStat::PassNoSocket as usize],
            pass_malformed: sums[XsknetStat::PassMalformed as usize],
            drop: sums[XsknetStat::Drop as usize],
        })
    }

    /// Drops the frames that are ours at the XDP program instead of handing
    /// them to the socket (`true`), or goes back to redirecting (`false`):
    /// the benchmark's ceiling, set through the config map while attached.
    pub fn set_drop(&mut self, drop: bool) -> Result<(), XdpError> {
        write_config(&mut self.ebpf, self.ipv4_addr, if drop { XSKNET_F_DROP } else { 0 })
    }

    /// The mode actually attached: [`AttachMode::Driver`] or [`AttachMode::Generic`].
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface's index (in the namespace it was attached in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The kernel's id for the loaded program, as `ip link` and `bpftool prog` show it.
    pub fn program_id(&self) -> u32 {
        self.program_id
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Dropping the Ebpf would detach too; doing it here first makes the
        // order explicit. Closing the link fd is what detaches.
        if let Some(link_id) = self.link.take() {
            if let Ok(program) = xdp_program(&mut self.ebpf) {
                let _ = program.detach(link_id);
            }
        }
    }
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM)
        .and_then(|p| <&mut Xdp>::try_from(p).ok())
        .ok_or(XdpError::MissingFromObject { name: PROGRAM })
}

fn write_config(ebpf: &mut Ebpf, addr: Ipv4Addr, flags: u32) -> Result<(), XdpError> {
    let map = ebpf.map_mut(CONFIG_MAP).ok_or(XdpError::MissingFromObject { name: CONFIG_MAP })?;
    let mut config: Array<_, XsknetConfig> = Array::try_from(map).map_err(|e| XdpError::map(CONFIG_MAP, e))?;
    let value = XsknetConfig {
        // The octets in memory order are network byte order.
        ipv4_addr: u32::from_ne_bytes(addr.octets()),
        flags,
    };
    config.set(0, value, 0).map_err(|e| XdpError::map(CONFIG_MAP, e))
}

fn attach_in_mode(
    program: &mut Xdp,
    ifname: &str,
    ifindex: u32,
    mode: AttachMode,
) -> Result<(XdpLinkId, AttachMode), XdpError> {
    let attach = |program: &mut Xdp, mode: AttachMode| {
        let xdp_mode = match mode {
            AttachMode::Generic => XdpMode::Skb,
            AttachMode::Driver | AttachMode::Auto => XdpMode::Driver,
        };
        program.attach_to_if_index(ifindex, xdp_mode).map_err(|source| {
            XdpError::Attach { ifname: ifname.to_owned(), mode, detail: chain(&source), source: Box::new(source) }
                .or_not_permitted()
        })
    };
    match mode {
        AttachMode::Driver | AttachMode::Generic => Ok((attach(program, mode)?, mode)),
        AttachMode::Auto => match attach(program, AttachMode::Driver) {
            Ok(id) => Ok((id, AttachMode::Driver)),
            Err(XdpError::NotPermitted) => Err(XdpError::NotPermitted),
            Err(driver_err) => {
                log::info!("{driver_err}; falling back to generic mode");
                Ok((attach(program, AttachMode::Generic)?, AttachMode::Generic))
            }
        },
    }
}

/// Detaches whatever XDP program `current` says is on the interface: bpf_links
/// through `BPF_LINK_DETACH` (the kernel refuses a netlink detach of a link with
/// EBUSY), netlink attachments with `IFLA_XDP_FD = -1` in their mode.
fn detach_existing(ifname: &str, ifindex: u32, current: &XdpState) -> Result<(), XdpError> {
    for (prog_id, flags) in current.attachments() {
        let links = bpf::xdp_links(ifindex, prog_id)
            .map_err(|e| XdpError::syscall("looking up the XDP bpf_link to replace", e))?;
        if links.is_empty() {
            rtnl::set_xdp_fd(ifindex, -1, flags).map_err(|e| {
                XdpError::syscall(format!("detaching XDP program {prog_id} from {ifname} (RTM_SETLINK)"), e)
            })?;
        }
        for link in links {
            bpf::link_detach(link.as_fd_ref()).map_err(|e| {
                XdpError::syscall(format!("detaching the bpf_link of XDP program {prog_id} on {ifname}"), e)
            })?;
        }
    }
    let after = rtnl::get_link(ifname)?.xdp;
    match after.any_prog_id() {
        None => Ok(()),
        Some(id) => Err(XdpError::AlreadyAttached { ifname: ifname.to_owned(), id }),
    }
}

/// Whether an XDP bpf_link holds program `program_id`.
fn is_xdp_link(program_id: u32) -> io::Result<bool> {
    for info in aya::programs::loaded_links() {
        // A link can vanish between listing its id and opening it: skip those.
        let Ok(info) = info else { continue };
        if info.program_id() == program_id && matches!(info.link_type(), Ok(LinkType::Xdp)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The interface's index, in the calling thread's network namespace.
pub fn interface_index(ifname: &str) -> Result<u32, XdpError> {
    Ok(rtnl::get_link(ifname)?.index)
}

/// The interface's MAC address, in the calling thread's network namespace.
///
/// Read through rtnetlink (`IFLA_ADDRESS`), the same value as
/// `/sys/class/net/IF/address`, but sysfs shows the namespace it was mounted in,
/// not the caller's.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6], XdpError> {
    rtnl::get_link(ifname)?.mac.ok_or_else(|| XdpError::NotEthernet { ifname: ifname.to_owned() })
}

/// Whether `ifname` carries an IPv4 default route (`/proc/net/route`: destination
/// and mask 0) or an IPv6 one (`/proc/net/ipv6_route`: `::/0`, reject routes
/// excluded), in the calling thread's namespace. Only the main table is seen for
/// IPv4, as `route -n` sees it.
pub fn holds_default_route(ifname: &str) -> io::Result<bool> {
    let v4 = read_optional("/proc/thread-self/net/route")?;
    let v6 = read_optional("/proc/thread-self/net/ipv6_route")?;
    Ok(ipv4_default_route_on(&v4, ifname) || ipv6_default_route_on(&v6, ifname))
}

/// A missing file (IPv6 disabled) reads as empty.
fn read_optional(path: &str) -> io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        other => other,
    }
}

fn ipv4_default_route_on(route: &str, ifname: &str) -> bool {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
    route.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 8 && f[0] == ifname && f[1] == "00000000" && f[7] == "00000000"
    })
}

fn ipv6_default_route_on(ipv6_route: &str, ifname: &str) -> bool {
    // dest plen src src_plen next_hop metric refcnt use flags iface
    const RTF_REJECT: u32 = 0x0200;
    ipv6_route.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 10
            && f[9] == ifname
            && f[0].bytes().all(|b| b == b'0')
            && f[1] == "00"
            && u32::from_str_radix(f[8], 16).is_ok_and(|flags| flags & RTF_REJECT == 0)
    })
}

/// The message of `err` and of every error under it, without repeating text an
/// outer message already includes.
fn chain(err: &dyn StdError) -> String {
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
struct XdpState {
    /// `IFLA_XDP_ATTACHED`: `XDP_ATTACHED_{NONE, DRV, SKB, HW, MULTI}`.
    attached: u8,
    /// `IFLA_XDP_PROG_ID`: the program, when a single one is attached.
    prog_id: u32,
    drv_prog_id: u32,
    skb_prog_id: u32,
    hw_prog_id: u32,
}

impl XdpState {
    const ATTACHED_DRV: u8 = 1;
    const ATTACHED_SKB: u8 = 2;
    const ATTACHED_HW: u8 = 3;

    fn any_prog_id(&self) -> Option<u32> {
        [self.prog_id, self.drv_prog_id, self.skb_prog_id, self.hw_prog_id].into_iter().find(|&id| id != 0)
    }

    /// Each attached program with the `XDP_FLAGS_*_MODE` that addresses it.
    fn attachments(&self) -> Vec<(u32, u32)> {
        let (mut drv, mut skb, mut hw) = (self.drv_prog_id, self.skb_prog_id, self.hw_prog_id);
        // Kernels report the per-mode ids only with XDP_ATTACHED_MULTI.
        match self.attached {
            Self::ATTACHED_DRV if drv == 0 => drv = self.prog_id,
            Self::ATTACHED_SKB if skb == 0 => skb = self.prog_id,
            Self::ATTACHED_HW if hw == 0 => hw = self.prog_id,
            _ => {}
        }
        [(drv, rtnl::XDP_FLAGS_DRV_MODE), (skb, rtnl::XDP_FLAGS_SKB_MODE), (hw, rtnl::XDP_FLAGS_HW_MODE)]
            .into_iter()
            .filter(|&(id, _)| id != 0)
            .collect()
    }
}

/// The parts of `RTM_NEWLINK` we use.
#[derive(Debug)]
struct LinkDetails {
    index: u32,
    mac: Option<[u8; 6]>,
    xdp: XdpState,
}

/// Raw rtnetlink (`NETLINK_ROUTE`): `RTM_GETLINK` by name, `RTM_SETLINK` with
/// `IFLA_XDP`. Messages are built and parsed as bytes in safe code; only the
/// socket calls are `unsafe`. Constants from `include/uapi/linux/{netlink,rtnetlink,if_link}.h`.
mod rtnl {
    use super::*;

    const NLMSG_HDRLEN: usize = 16;
    const IFINFOMSG_LEN: usize = 16;
    const NLMSG_ERROR: u16 = 2;
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    const RTM_SETLINK: u16 = 19;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    /// Set on an error message that carries extended-ack attributes.
    const NLM_F_ACK_TLVS: u16 = 0x200;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    const NLA_F_NESTED: u16 = 1 << 15;
    const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_FD: u16 = 1;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const IFLA_XDP_FLAGS: u16 = 3;
    const IFLA_XDP_PROG_ID: u16 = 4;
    const IFLA_XDP_DRV_PROG_ID: u16 = 5;
    const IFLA_XDP_SKB_PROG_ID: u16 = 6;
    const IFLA_XDP_HW_PROG_ID: u16 = 7;
    pub(super) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    pub(super) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    pub(super) const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
    const SOL_NETLINK: libc::c_int = 270;
    const NETLINK_EXT_ACK: libc::c_int = 11;
    const IFNAMSIZ: usize = 16;

    /// A netlink request under construction: header, `ifinfomsg`, attributes.
    pub(super) struct Request {
        buf: Vec<u8>,
    }

    impl Request {
        pub(super) fn new(msg_type: u16, flags: u16, ifindex: u32) -> Self {
            let mut buf = Vec::with_capacity(128);
            buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish()
            buf.extend_from_slice(&msg_type.to_ne_bytes());
            buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
            buf.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
            buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel

            // struct ifinfomsg: family, pad, type, index, flags, change
            buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
            buf.extend_from_slice(&ifindex.to_ne_bytes());
            buf.extend_from_slice(&[0; 8]);
            Self { buf }
        }

        pub(super) fn attr(&mut self, attr_type: u16, payload: &[u8]) -> &mut Self {
            let len = 4 + payload.len();
            self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
            self.buf.extend_from_slice(&attr_type.to_ne_bytes());
            self.buf.extend_from_slice(payload);
            self.buf.resize(align4(self.buf.len()), 0);
            self
        }

        pub(super) fn nested(&mut self, attr_type: u16, inner: impl FnOnce(&mut Self)) -> &mut Self {
            let start = self.buf.len();
            self.attr(attr_type | NLA_F_NESTED, &[]);
            inner(self);
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
            self
        }

        pub(super) fn finish(mut self) -> Vec<u8> {
            let len = self.buf.len() as u32;
            self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
            self.buf
        }
    }

    fn align4(n: usize) -> usize {
        (n + 3) & !3
    }

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    /// Iterates `(type, payload)` over a run of netlink attributes, stopping at
    /// the first malformed one.
    pub(super) fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
        std::iter::from_fn(move || {
            let len = u16_at(b, 0)? as usize;
            let ty = u16_at(b, 2)? & NLA_TYPE_MASK;
            if len < 4 || len > b.len() {
                return None;
            }
            let payload = &b[4..len];
            b = b.get(align4(len)..).unwrap_or(&[]);
            Some((ty, payload))
        })
    }

    /// Iterates `(type, flags, whole message)` over the messages in a datagram.
    fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
        std::iter::from_fn(move || {
            let len = u32_at(b, 0)? as usize;
            if len < NLMSG_HDRLEN || len > b.len() {
                return None;
            }
            let msg = &b[..len];
            b = b.get(align4(len)..).unwrap_or(&[]);
            Some((u16_at(msg, 4)?, u16_at(msg, 6)?, msg))
        })
    }

    /// A failed request: the errno and the kernel's extended-ack message, if any.
    #[derive(Debug)]
    pub(super) struct NlError {
        pub(super) errno: i32,
        pub(super) ext_ack: Option<String>,
    }

    impl NlError {
        fn into_io(self) -> io::Error {
            let os = io::Error::from_raw_os_error(self.errno);
            match self.ext_ack {
                // Keep the raw errno (for NotPermitted) when there is no message.
                None => os,
                Some(msg) => io::Error::new(os.kind(), format!("{os}: {msg}")),
            }
        }
    }

    /// Parses the reply to a request: `Ok(Some(payload))` for `RTM_NEWLINK`,
    /// `Ok(None)` for an ack, `Err` for a negative error.
    pub(super) fn parse_reply(datagram: &[u8]) -> Option<Result<Option<&[u8]>, NlError>> {
        for (ty, flags, msg) in messages(datagram) {
            match ty {
                NLMSG_ERROR => {
                    let errno = -(u32_at(msg, NLMSG_HDRLEN)? as i32);
                    if errno == 0 {
                        return Some(Ok(None));
                    }
                    // With NETLINK_EXT_ACK the attributes follow struct nlmsgerr
                    // (error + the request's header; the payload is echoed too
                    // unless NETLINK_CAP_ACK, so skip by the echoed length).
                    let ext_ack = (flags & NLM_F_ACK_TLVS != 0)
                        .then(|| {
                            let echoed = u32_at(msg, NLMSG_HDRLEN + 4)? as usize;
                            let tlvs = msg.get(NLMSG_HDRLEN + 4 + align4(echoed)..)?;
                            attrs(tlvs)
                                .find(|&(t, _)| t == NLMSGERR_ATTR_MSG)
                                .map(|(_, p)| String::from_utf8_lossy(p).trim_end_matches('\0').to_owned())
                        })
                        .flatten();
                    return Some(Err(NlError { errno, ext_ack }));
                }
                RTM_NEWLINK => return Some(Ok(Some(&msg[NLMSG_HDRLEN..]))),
                _ => continue,
            }
        }
        None
    }

    /// One request, one reply, on a fresh `NETLINK_ROUTE` socket (opened in the
    /// calling thread's network namespace).
    fn transact(request: &[u8]) -> io::Result<Result<Option<Vec<u8>>, NlError>> {
        // SAFETY: socket(2) with constant arguments; it returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };

        let on: libc::c_int = 1;
        // SAFETY: `fd` is a valid socket; the option value points to a live c_int
        // whose size is passed. Failure only loses the kernel's error text.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_NETLINK,
                NETLINK_EXT_ACK,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };

        // SAFETY: `fd` is a valid socket; `request` is a live byte slice whose
        // length is passed. With no address, netlink sends to the kernel.
        let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }

        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `fd` is a valid socket; `buf` is a live, writable buffer whose
            // length is passed. MSG_TRUNC makes the return value the datagram's
            // real length, so truncation is detected below.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n > buf.len() {
                return Err(io::Error::other(format!(
                    "netlink reply of {n} bytes does not fit the {} byte buffer",
                    buf.len()
                )));
            }
            if let Some(reply) = parse_reply(&buf[..n]) {
                return Ok(reply.map(|payload| payload.map(<[u8]>::to_vec)));
            }
        }
    }

    /// `RTM_GETLINK` by name.
    pub(super) fn get_link(ifname: &str) -> Result<LinkDetails, XdpError> {
        let no_such = || XdpError::NoSuchInterface { ifname: ifname.to_owned() };
        if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains(['/', '\0']) {
            return Err(no_such());
        }
        let mut name = ifname.as_bytes().to_vec();
        name.push(0);
        let mut req = Request::new(RTM_GETLINK, 0, 0);
        req.attr(IFLA_IFNAME, &name);
        let reply = transact(&req.finish()).map_err(|e| XdpError::syscall(format!("RTM_GETLINK {ifname}"), e))?;
        match reply {
            Ok(Some(payload)) => parse_link(&payload).ok_or_else(|| {
                XdpError::syscall(
                    format!("RTM_GETLINK {ifname}"),
                    io::Error::new(io::ErrorKind::InvalidData, "malformed RTM_NEWLINK reply"),
                )
            }),
            Ok(None) => Err(XdpError::syscall(
                format!("RTM_GETLINK {ifname}"),
                io::Error::new(io::ErrorKind::InvalidData, "ack without link"),
            )),
            Err(NlError { errno: libc::ENODEV, .. }) => Err(no_such()),
            Err(e) => Err(XdpError::syscall(format!("RTM_GETLINK {ifname}"), e.into_io())),
        }
    }

    /// Parses an `RTM_NEWLINK` payload (`ifinfomsg` + attributes).
    pub(super) fn parse_link(payload: &[u8]) -> Option<LinkDetails> {
        let index = u32_at(payload, 4)?;
        let mut link = LinkDetails { index, mac: None, xdp: XdpState::default() };
        for (ty, value) in attrs(payload.get(IFINFOMSG_LEN..)?) {
            match ty {
                IFLA_ADDRESS => link.mac = value.try_into().ok(),
                IFLA_XDP => {
                    for (ty, value) in attrs(value) {
                        match ty {
                            IFLA_XDP_ATTACHED => link.xdp.attached = *value.first()?,
                            IFLA_XDP_PROG_ID => link.xdp.prog_id = u32_at(value, 0)?,
                            IFLA_XDP_DRV_PROG_ID => link.xdp.drv_prog_id = u32_at(value, 0)?,
                            IFLA_XDP_SKB_PROG_ID => link.xdp.skb_prog_id = u32_at(value, 0)?,
                            IFLA_XDP_HW_PROG_ID => link.xdp.hw_prog_id = u32_at(value, 0)?,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Some(link)
    }

    /// `RTM_SETLINK` with `IFLA_XDP { FD, FLAGS }`: `fd = -1` detaches the
    /// netlink-attached program of the mode in `flags`.
    pub(super) fn set_xdp_fd(ifindex: u32, fd: i32, flags: u32) -> io::Result<()> {
        let mut req = Request::new(RTM_SETLINK, NLM_F_ACK, ifindex);
        req.nested(IFLA_XDP, |r| {
            r.attr(IFLA_XDP_FD, &fd.to_ne_bytes());
            r.attr(IFLA_XDP_FLAGS, &flags.to_ne_bytes());
        });
        match transact(&req.finish())? {
            Ok(_) => Ok(()),
            Err(e) => Err(e.into_io()),
        }
    }
}

/// The few raw `bpf(2)` commands aya 0.14 does not offer publicly: opening a
/// link by id, reading its target interface, and `BPF_LINK_DETACH`, which
/// `--replace` needs to remove another process's link. Layouts from
/// `include/uapi/linux/bpf.h`.
mod bpf {
    use super::*;

    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
    const BPF_LINK_DETACH: libc::c_long = 34;
    const BPF_LINK_TYPE_XDP: u32 = 6;

    /// `union bpf_attr` for `BPF_LINK_GET_FD_BY_ID`.
    #[repr(C)]
    struct GetFdById {
        link_id: u32,
        next_id: u32,
        open_flags: u32,
    }

    /// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
    #[repr(C)]
    struct GetInfo {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }

    /// The head of `struct bpf_link_info` up to `xdp.ifindex`. The kernel copies
    /// at most `info_len` bytes, so a prefix is enough.
    #[repr(C)]
    #[derive(Default)]
    struct LinkInfoXdp {
        link_type: u32,
        id: u32,
        prog_id: u32,
        _pad: u32,
        ifindex: u32,
        _pad2: u32,
    }

    /// `union bpf_attr` for `BPF_LINK_DETACH`.
    #[repr(C)]
    struct LinkDetach {
        link_fd: u32,
    }

    /// bpf(2). `attr` is a `repr(C)` prefix of `union bpf_attr` for `cmd`.
    fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
        // SAFETY: `attr` is a live, exclusively borrowed repr(C) value and its exact
        // size is passed, so the kernel reads and writes only within it. Pointers
        // it contains (GetInfo::info) are set by the callers to live buffers.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                (attr as *mut T).cast::<libc::c_void>(),
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// A link opened by id.
    pub(super) struct LinkFd(OwnedFd);

    impl LinkFd {
        pub(super) fn as_fd_ref(&self) -> BorrowedFd<'_> {
            use std::os::fd::AsFd;
            self.0.as_fd()
        }
    }

    /// The XDP bpf_links on `ifindex` (in this namespace) that hold `prog_id`.
    pub(super) fn xdp_links(ifindex: u32, prog_id: u32) -> io::Result<Vec<LinkFd>> {
        let mut found = Vec::new();
        for info in aya::programs::loaded_links() {
            let Ok(info) = info else { continue };
            if info.program_id() != prog_id || !matches!(info.link_type(), Ok(LinkType::Xdp)) {
                continue;
            }
            let mut attr = GetFdById { link_id: info.id(), next_id: 0, open_flags: 0 };
            let fd = match sys_bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
                Ok(fd) => fd as i32,
                // Gone since it was listed.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            // SAFETY: BPF_LINK_GET_FD_BY_ID returned a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let mut link = LinkInfoXdp::default();
            let mut attr = GetInfo {
                bpf_fd: fd.as_raw_fd() as u32,
                info_len: std::mem::size_of::<LinkInfoXdp>() as u32,
                info: (&mut link as *mut LinkInfoXdp) as u64,
            };
            sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
            // Interface indices are per namespace; the program id narrows it to
            // the link that holds the program netlink reported on our interface.
            if link.link_type == BPF_LINK_TYPE_XDP && link.ifindex == ifindex && link.prog_id == prog_id {
                found.push(LinkFd(fd));
            }
        }
        Ok(found)
    }

    /// `BPF_LINK_DETACH`: the program leaves the interface; the link stays, defunct,
    /// until its owner closes it.
    pub(super) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
        let mut attr = LinkDetach { link_fd: link.as_raw_fd() as u32 };
        sys_bpf(BPF_LINK_DETACH, &mut attr).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON_H: &str = include_str!("../../xdp-prog/xsknet_common.h");

    /// The Rust mirrors must match `xsknet_common.h`, which C compiles against.
    #[test]
    fn mirrors_match_common_header() {
        let body = COMMON_H
            .split_once("enum xsknet_stat {")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(body, _)| body)
            .expect("enum xsknet_stat in xsknet_common.h");
        let c_names: Vec<&str> = body
            .lines()
            .map(|l| l.split("/*").next().unwrap_or("").trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        let mut rust_names: Vec<&str> = XsknetStat::ALL.iter().map(|s| s.c_name()).collect();
        rust_names.push("XSKNET_STAT__MAX");
        assert_eq!(c_names, rust_names);
        for (i, stat) in XsknetStat::ALL.iter().enumerate() {
            assert_eq!(*stat as usize, i);
        }

        let config = COMMON_H
            .split_once("struct xsknet_config {")
            .and_then(|(_, rest)| rest.split_once("};"))
            .map(|(body, _)| body)
            .expect("struct xsknet_config in xsknet_common.h");
        let fields: Vec<&str> =
            config.lines().map(|l| l.split("/*").next().unwrap_or("").trim()).filter(|l| !l.is_empty()).collect();
        assert_eq!(fields, ["__u32 ipv4_addr;", "__u32 flags;"]);
        assert_eq!(std::mem::size_of::<XsknetConfig>(), 8);

        for (define, value) in [
            ("XSKNET_CONFIG_MAP", format!("\"{CONFIG_MAP}\"")),
            ("XSKNET_XSKS_MAP", format!("\"{XSKS_MAP}\"")),
            ("XSKNET_STATS_MAP", format!("\"{STATS_MAP}\"")),
            ("XSKNET_MAX_QUEUES", MAX_QUEUES.to_string()),
        ] {
            let line = format!("#define {define} {value}");
            assert!(COMMON_H.contains(&line), "xsknet_common.h lacks `{line}`");
        }
    }

    #[test]
    fn object_is_embedded() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        let has = |needle: &[u8]| OBJECT.windows(needle.len()).any(|w| w == needle);
        for name in [PROGRAM, CONFIG_MAP, XSKS_MAP, STATS_MAP, ".BTF"] {
            assert!(has(name.as_bytes()), "{name} missing from xsknet.bpf.o");
        }
    }

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
veth1\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
";

    #[test]
    fn ipv4_default_route() {
        assert!(ipv4_default_route_on(ROUTE, "eth0"));
        assert!(!ipv4_default_route_on(ROUTE, "veth1"));
        assert!(!ipv4_default_route_on(ROUTE, "eth"));
        assert!(!ipv4_default_route_on("", "eth0"));
        // Header only.
        assert!(!ipv4_default_route_on(ROUTE.lines().next().unwrap(), "Iface"));
    }

    const IPV6_ROUTE: &str = "\
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00450003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001    veth1
";

    #[test]
    fn ipv6_default_route() {
        assert!(ipv6_default_route_on(IPV6_ROUTE, "eth0"));
        assert!(!ipv6_default_route_on(IPV6_ROUTE, "veth1"));
        // The local table's unreachable ::/0 on lo is a reject route.
        assert!(!ipv6_default_route_on(IPV6_ROUTE, "lo"));
    }

    #[test]
    fn netlink_request_layout() {
        let mut req = rtnl::Request::new(19, 0x4, 7);
        req.nested(43, |r| {
            r.attr(1, &(-1i32).to_ne_bytes());
            r.attr(3, &4u32.to_ne_bytes());
        });
        let msg = req.finish();
        assert_eq!(msg.len(), 16 + 16 + 4 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), msg.len() as u32);
        assert_eq!(u16::from_ne_bytes(msg[4..6].try_into().unwrap()), 19);
        assert_eq!(u16::from_ne_bytes(msg[6..8].try_into().unwrap()), 0x5);
        assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 7);
        // IFLA_XDP, nested, 20 bytes long.
        assert_eq!(u16::from_ne_bytes(msg[32..34].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(msg[34..36].try_into().unwrap()), 43 | 0x8000);
        let nested: Vec<_> = rtnl::attrs(&msg[32..]).collect();
        assert_eq!(nested.len(), 1);
        assert_eq!(nested[0].0, 43);
        let inner: Vec<_> = rtnl::attrs(nested[0].1).collect();
        assert_eq!(inner, [(1, &(-1i32).to_ne_bytes()[..]), (3, &4u32.to_ne_bytes()[..])]);
    }

    fn newlink(attrs: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        let len = (16 + 16 + attrs.len()) as u32;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&16u16.to_ne_bytes()); // RTM_NEWLINK
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[0, 0, 1, 0]); // family, pad, ARPHRD_ETHER
        m.extend_from_slice(&9u32.to_ne_bytes()); // ifindex
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(attrs);
        m
    }

    fn attr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    #[test]
    fn parses_link_with_xdp() {
        let mut xdp = attr(2, &[1]); // IFLA_XDP_ATTACHED = DRV
        xdp.extend(attr(4, &42u32.to_ne_bytes())); // IFLA_XDP_PROG_ID
        let mut attrs = attr(3, b"veth0\0"); // IFLA_IFNAME
        attrs.extend(attr(1, &[2, 0, 0, 0, 0, 1])); // IFLA_ADDRESS
        attrs.extend(attr(43 | 0x8000, &xdp));
        let msg = newlink(&attrs);
        let payload = match rtnl::parse_reply(&msg) {
            Some(Ok(Some(p))) => p,
            other => panic!("unexpected {other:?}"),
        };
        let link = rtnl::parse_link(payload).unwrap();
        assert_eq!(link.index, 9);
        assert_eq!(link.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(link.xdp.any_prog_id(), Some(42));
        assert_eq!(link.xdp.attachments(), [(42, rtnl::XDP_FLAGS_DRV_MODE)]);

        let bare = newlink(&attr(3, b"lo\0"));
        let link = rtnl::parse_link(&bare[16..]).unwrap();
        assert_eq!(link.mac, None);
        assert_eq!(link.xdp.any_prog_id(), None);
        assert!(link.xdp.attachments().is_empty());
    }

    #[test]
    fn multi_mode_lists_each_program() {
        let state = XdpState { attached: 4, prog_id: 0, drv_prog_id: 5, skb_prog_id: 6, hw_prog_id: 0 };
        assert_eq!(state.attachments(), [(5, rtnl::XDP_FLAGS_DRV_MODE), (6, rtnl::XDP_FLAGS_SKB_MODE)]);
    }

    #[test]
    fn parses_error_with_ext_ack() {
        // nlmsgerr: error, echoed request header (CAP_ACK-style, 16 bytes), then TLVs.
        let mut m = Vec::new();
        let tlv = attr(1, b"Can't replace active BPF XDP link\0");
        let len = (16 + 4 + 16 + tlv.len()) as u32;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        m.extend_from_slice(&0x300u16.to_ne_bytes()); // NLM_F_CAPPED | NLM_F_ACK_TLVS
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(-libc::EBUSY).to_ne_bytes());
        m.extend_from_slice(&16u32.to_ne_bytes()); // echoed nlmsg_len
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&tlv);
        match rtnl::parse_reply(&m) {
            Some(Err(e)) => {
                assert_eq!(e.errno, libc::EBUSY);
                assert_eq!(e.ext_ack.as_deref(), Some("Can't replace active BPF XDP link"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ack_and_truncated_replies() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&2u16.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&[0; 8]);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert!(matches!(rtnl::parse_reply(&ack), Some(Ok(None))));
        assert!(rtnl::parse_reply(&ack[..10]).is_none());
        assert!(rtnl::parse_reply(&[]).is_none());
    }

    #[test]
    fn permission_errors_are_found_in_the_chain() {
        let e = XdpError::syscall("x", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, XdpError::NotPermitted));
        let e = XdpError::syscall("x", io::Error::from_raw_os_error(libc::EBUSY));
        assert!(matches!(e, XdpError::Syscall { .. }));
        let map_err =
            MapError::CreateError { name: "xsks_map".into(), io_error: io::Error::from_raw_os_error(libc::EACCES) };
        assert!(matches!(XdpError::map(XSKS_MAP, map_err), XdpError::NotPermitted));
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
            "interface veth9 not found (see `ip link`)"
        );
    }

    #[test]
    fn bad_names_are_not_found_without_asking() {
        for name in ["", "a/b", "sixteen-chars-xx"] {
            assert!(matches!(interface_index(name), Err(XdpError::NoSuchInterface { .. })));
        }
    }
}
