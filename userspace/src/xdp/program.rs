//! The XDP program and its link: the hard-IRQ stage's life cycle.
//!
//! [`XdpProgram::attach`] refuses what would hurt (a missing interface, the
//! interface of the default route, one that already has a program), loads the
//! embedded object, writes the config map, takes the place of an old program
//! when asked (`--replace`), and attaches through a bpf_link. The program then
//! takes sockets into its XSKMAP, reports its per-CPU counters, and leaves the
//! interface when dropped. The decisions are in [`attach_with`], generic over
//! [`XdpSys`], so that they are tested against a fake system.

use std::{fmt, os::fd::BorrowedFd};

use aya::maps::{MapData, PerCpuArray, XskMap};

use super::object::{self, XsknetStat, STATS_MAP, XSKS_MAP};
use super::{sys::Loaded, AttachMode, Guard, LinkDetails, RealSys, XdpError, XdpOptions, XdpState, XdpSys};

/// The hard-IRQ stage's counters, summed over CPUs. Every frame counted in `rx`
/// is counted in exactly one of the others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XdpProgStats {
    /// Every frame the program ran on.
    pub rx: u64,
    /// IPv4 to our MAC, broadcast or a multicast group, redirected into the AF_XDP socket.
    pub redirect_ipv4: u64,
    /// ARP to our MAC, broadcast or a multicast group, redirected into the AF_XDP socket.
    pub redirect_arp: u64,
    /// Left to the kernel: IPv6, VLAN-tagged, another ethertype, or no address configured.
    pub pass_not_ours: u64,
    /// Ours, but no AF_XDP socket registered on the frame's rx queue: left to the kernel.
    pub pass_no_socket: u64,
    /// Shorter than an Ethernet header: left to the kernel.
    pub pass_malformed: u64,
    /// Ours, dropped at XDP because [`XdpProgram::set_drop`] asked for it.
    pub drop: u64,
    /// Ours, dropped by the guard ([`Guard::counters`] says why).
    #[serde(default)]
    pub guard_drop: u64,
    /// IPv4 or ARP to another host's unicast MAC (`PACKET_OTHERHOST`): left to the kernel.
    #[serde(default)]
    pub pass_other_host: u64,
    /// To one of the kernel's addresses (`--pass-kernel-addrs`): left to the kernel.
    #[serde(default)]
    pub pass_kernel_addr: u64,
}

/// An XDP program attached to one interface through a bpf_link.
///
/// Owns the loaded object (program and maps) and the link. Dropping it detaches the
/// program; so does the death of the process, even by `kill -9`, because the
/// kernel releases the link with the last file descriptor.
pub struct XdpProgram {
    loaded: Loaded,
    guard: Guard,
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

/// What [`attach_with`] leaves attached.
#[derive(Debug)]
pub struct Attached<L> {
    /// The loaded program, attached.
    pub loaded: L,
    /// The interface's index.
    pub ifindex: u32,
    /// The mode it went on in: [`AttachMode::Driver`] or [`AttachMode::Generic`].
    pub mode: AttachMode,
    /// The kernel's id for the program.
    pub program_id: u32,
}

/// Steps 1–3 of [`attach_with`], which change nothing: whether an attach
/// with `opts` would be refused. Returns the link and its current XDP state.
///
/// # Errors
/// [`XdpError::NoSuchInterface`], [`XdpError::DefaultRoute`],
/// [`XdpError::AlreadyAttached`], or the system's own failures.
pub fn check_with<S: XdpSys>(sys: &mut S, opts: &XdpOptions) -> Result<(LinkDetails, XdpState), XdpError> {
    let ifname = opts.ifname.as_str();
    let link = sys.get_link(ifname)?;

    if !opts.force {
        let holds = sys
            .holds_default_route(link.index)
            .map_err(|e| XdpError::syscall("reading the routes (RTM_GETROUTE)", e))?;
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
    Ok((link, current))
}

/// The attach decisions, against any [`XdpSys`]: in this order,
///
/// 1. the interface must exist ([`XdpError::NoSuchInterface`]);
/// 2. without `force`, it must not carry a default route ([`XdpError::DefaultRoute`]);
/// 3. without `replace`, it must have no XDP program ([`XdpError::AlreadyAttached`],
///    which names the program and says to pass `--replace`);
/// 4. the program is loaded and verified *before* anything is detached, so a
///    program the kernel refuses never leaves the interface bare;
/// 5. with `replace`, the old program is detached: a bpf_link through
///    `BPF_LINK_DETACH` (the kernel refuses a netlink detach of a link with
///    `EBUSY`), a netlink attachment through `IFLA_XDP_FD = -1` in its mode;
/// 6. attach, driver mode falling back to generic for [`AttachMode::Auto`];
/// 7. the attachment must be a bpf_link ([`XdpError::NotALink`]): aya falls back
///    to netlink on `EINVAL`, and such a program would outlive the process.
///
/// # Errors
/// As listed, plus the system's own failures; permission failures at any step
/// become [`XdpError::NotPermitted`] ("run as root").
pub fn attach_with<S: XdpSys>(sys: &mut S, opts: &XdpOptions) -> Result<Attached<S::Loaded>, XdpError> {
    let ifname = opts.ifname.as_str();
    let (link, current) = check_with(sys, opts)?;

    let mut loaded = sys.load(opts.ipv4_addr, opts.frags)?;

    if opts.replace && current.any_prog_id().is_some() {
        detach_existing(sys, ifname, link.index, &current)?;
    }

    let (program_id, mode) = match opts.mode {
        AttachMode::Driver | AttachMode::Generic => {
            (sys.attach(&mut loaded, ifname, link.index, opts.mode)?, opts.mode)
        }
        AttachMode::Auto => match sys.attach(&mut loaded, ifname, link.index, AttachMode::Driver) {
            Ok(id) => (id, AttachMode::Driver),
            Err(XdpError::NotPermitted) => return Err(XdpError::NotPermitted),
            Err(driver_err) => {
                log::info!("{driver_err}; falling back to generic mode");
                (sys.attach(&mut loaded, ifname, link.index, AttachMode::Generic)?, AttachMode::Generic)
            }
        },
    };
    // aya falls back to a netlink attachment when BPF_LINK_CREATE says EINVAL.
    // Such a program stays on the interface after we die: refuse it.
    match sys.is_xdp_link(program_id) {
        Ok(true) => Ok(Attached { loaded, ifindex: link.index, mode, program_id }),
        Ok(false) => {
            sys.detach(&mut loaded);
            Err(XdpError::NotALink { ifname: ifname.to_owned() })
        }
        Err(e) => {
            sys.detach(&mut loaded);
            Err(XdpError::syscall("listing bpf_links (BPF_LINK_GET_NEXT_ID)", e))
        }
    }
}

/// Detaches whatever XDP program `current` says is on the interface: bpf_links
/// through `BPF_LINK_DETACH`, netlink attachments with `IFLA_XDP_FD = -1` in
/// their mode; then checks that the interface is bare.
fn detach_existing<S: XdpSys>(sys: &mut S, ifname: &str, ifindex: u32, current: &XdpState) -> Result<(), XdpError> {
    for (prog_id, flags) in current.attachments() {
        let links = sys
            .xdp_links(ifindex, prog_id)
            .map_err(|e| XdpError::syscall("looking up the XDP bpf_link to replace", e))?;
        if links.is_empty() {
            sys.set_xdp_fd(ifindex, -1, flags).map_err(|e| {
                XdpError::syscall(format!("detaching XDP program {prog_id} from {ifname} (RTM_SETLINK)"), e)
            })?;
        }
        for link in &links {
            sys.link_detach(link).map_err(|e| {
                XdpError::syscall(format!("detaching the bpf_link of XDP program {prog_id} on {ifname}"), e)
            })?;
        }
    }
    let after = sys.get_link(ifname)?.xdp;
    match after.any_prog_id() {
        None => Ok(()),
        Some(id) => Err(XdpError::AlreadyAttached { ifname: ifname.to_owned(), id }),
    }
}

impl XdpProgram {
    /// Whether [`XdpProgram::attach`] with `opts` would be refused, without
    /// changing anything (so that a caller can open its socket first, and
    /// leave a running instance alone when that fails).
    ///
    /// # Errors
    /// As the refusals of [`XdpProgram::attach`].
    pub fn check(opts: &XdpOptions) -> Result<(), XdpError> {
        check_with(&mut RealSys, opts).map(|_| ())
    }

    /// Checks, loads and attaches the program ([`attach_with`] on the real system).
    ///
    /// # Errors
    /// See [`attach_with`].
    pub fn attach(opts: &XdpOptions) -> Result<XdpProgram, XdpError> {
        let mut attached = attach_with(&mut RealSys, opts)?;
        // Until the MAC is written no unicast frame is ours (they pass, as
        // they do until a socket is registered).
        let link = RealSys.get_link(&opts.ifname)?;
        let mac = link.mac.ok_or_else(|| XdpError::NotEthernet { ifname: opts.ifname.clone() })?;
        let kernel_addrs = if opts.pass_kernel_addrs {
            let mut addrs = super::netlink::ipv4_addrs(attached.ifindex).map_err(|e| {
                XdpError::syscall(format!("listing the IPv4 addresses of {} (RTM_GETADDR)", opts.ifname), e)
            })?;
            // Our own address stays ours even if the kernel holds it too.
            if addrs.contains(&opts.ipv4_addr) {
                log::warn!(
                    "{} is also the kernel's address on {}: its frames come to xsknet, not to the kernel",
                    opts.ipv4_addr,
                    opts.ifname
                );
                addrs.retain(|a| *a != opts.ipv4_addr);
            }
            log::info!("--pass-kernel-addrs: the kernel keeps {addrs:?} on {}", opts.ifname);
            Some(addrs)
        } else {
            // Every IPv4 frame to the interface's MAC comes to xsknet: the
            // kernel's own addresses there stop answering while it runs.
            let theirs: Vec<String> = super::netlink::ipv4_local_addrs(attached.ifindex)
                .unwrap_or_default()
                .into_iter()
                .filter(|a| *a != opts.ipv4_addr)
                .map(|a| a.to_string())
                .collect();
            if !theirs.is_empty() {
                log::warn!(
                    "the kernel's address{} {} on {} will not answer while xsknet runs (every IPv4 frame to the \
                     interface's MAC comes to xsknet, and one for another address is counted as IpInAddrErrors); \
                     --pass-kernel-addrs leaves them to the kernel (docs/ingress.md)",
                    if theirs.len() > 1 { "es" } else { "" },
                    theirs.join(", "),
                    opts.ifname
                );
            }
            None
        };
        object::set_ingress(&mut attached.loaded.ebpf, mac, kernel_addrs.as_deref())?;
        let guard = Guard::take_from(&mut attached.loaded.ebpf, opts.ipv4_addr)?;
        Ok(XdpProgram {
            loaded: attached.loaded,
            guard,
            ifname: opts.ifname.clone(),
            ifindex: attached.ifindex,
            mode: attached.mode,
            program_id: attached.program_id,
        })
    }

    /// Registers an AF_XDP socket for `queue_id`: frames for us that arrive on that
    /// rx queue are redirected to it. The socket must be bound to the same
    /// interface and queue, or the kernel drops the redirected frames.
    pub fn register_xsk(&mut self, queue_id: u32, xsk_fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        let map = self.loaded.ebpf.map_mut(XSKS_MAP).ok_or(XdpError::MissingFromObject { name: XSKS_MAP })?;
        let mut xsks = XskMap::try_from(map).map_err(|e| XdpError::map(XSKS_MAP, e))?;
        xsks.set(queue_id, xsk_fd, 0).map_err(|e| XdpError::map(XSKS_MAP, e))
    }

    /// Removes the socket registered for `queue_id`: its frames go to the kernel again.
    pub fn unregister_xsk(&mut self, queue_id: u32) -> Result<(), XdpError> {
        let map = self.loaded.ebpf.map_mut(XSKS_MAP).ok_or(XdpError::MissingFromObject { name: XSKS_MAP })?;
        let mut xsks = XskMap::try_from(map).map_err(|e| XdpError::map(XSKS_MAP, e))?;
        xsks.unset(queue_id).map_err(|e| XdpError::map(XSKS_MAP, e))
    }

    /// Reads the counters, each summed over the CPUs.
    ///
    /// The counters are read one after another, not as a snapshot: under traffic
    /// `rx` may run slightly ahead of the sum of the others.
    pub fn stats(&self) -> Result<XdpProgStats, XdpError> {
        let map = self.loaded.ebpf.map(STATS_MAP).ok_or(XdpError::MissingFromObject { name: STATS_MAP })?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| XdpError::map(STATS_MAP, e))?;
        read_stats(&stats)
    }

    /// A reader of the counters for another thread (the control endpoint):
    /// it holds a descriptor of its own for the counters' map, opened by id,
    /// and keeps working while the program stays attached.
    ///
    /// # Errors
    ///
    /// [`XdpError::Map`] when the map cannot be found or opened again.
    pub fn stats_reader(&self) -> Result<XdpStatsReader, XdpError> {
        let map = self.loaded.ebpf.map(STATS_MAP).ok_or(XdpError::MissingFromObject { name: STATS_MAP })?;
        let aya::maps::Map::PerCpuArray(data) = map else {
            return Err(XdpError::MissingFromObject { name: STATS_MAP });
        };
        let id = data.info().map_err(|e| XdpError::map(STATS_MAP, e))?.id();
        let data = MapData::from_id(id).map_err(|e| XdpError::map(STATS_MAP, e))?;
        let map = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).map_err(|e| XdpError::map(STATS_MAP, e))?;
        Ok(XdpStatsReader { map })
    }

    /// Drops the frames that are ours at the XDP program instead of handing
    /// them to the socket (`true`), or goes back to redirecting (`false`):
    /// the benchmark's ceiling, set through the config map while attached.
    /// The guard's on/off flag, in the same map, stays as it is.
    pub fn set_drop(&mut self, drop: bool) -> Result<(), XdpError> {
        self.guard.set_xdp_drop(drop)
    }

    /// A handle on the program's guard (off until [`crate::xdp::GuardUpdate::Enable`]),
    /// for this thread or another: every handle of one program shares the rules
    /// in force.
    ///
    /// # Errors
    /// None today (the maps are opened at attach); fallible so that a program
    /// without a guard can say so.
    pub fn guard(&self) -> Result<Guard, XdpError> {
        Ok(self.guard.clone())
    }

    /// A watch on this program's bpf_link, for the loop to notice that the
    /// program was taken off ([`XdpLinkWatch::attached`]).
    ///
    /// # Errors
    /// [`XdpError::Syscall`] when the link cannot be found (it is gone:
    /// the program was detached already).
    pub fn link_watch(&self) -> Result<XdpLinkWatch, XdpError> {
        let link_id = super::bpf::xdp_link_id(self.program_id)
            .map_err(|e| XdpError::syscall("listing bpf_links (BPF_LINK_GET_NEXT_ID)", e))?
            .ok_or_else(|| {
                XdpError::syscall(
                    format!("finding the bpf_link of XDP program {} on {}", self.program_id, self.ifname),
                    std::io::Error::from_raw_os_error(libc::ENOENT),
                )
            })?;
        Ok(XdpLinkWatch { prog_id: self.program_id, link_id })
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
/// Whether an instance's XDP program is still on its interface, asked of
/// the program's own bpf_link ([`XdpProgram::link_watch`]): cheap enough for
/// the loop to ask at every publication, and it works from any namespace.
///
/// A program is taken off while its owner runs when another process detaches
/// its link (`BPF_LINK_DETACH`: another program's `--replace`) or the
/// interface is removed; from then on no frame reaches the instance's socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpLinkWatch {
    prog_id: u32,
    link_id: u32,
}

impl XdpLinkWatch {
    /// The program's id, as `ip link` and `bpftool prog` show it.
    pub fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// Whether the link still attaches the program to an interface (three
    /// `bpf(2)` calls: [`super::bpf::xdp_link_ifindex`]). A failed query
    /// says attached: only the kernel's word that it is not counts.
    pub fn attached(&self) -> bool {
        !matches!(super::bpf::xdp_link_ifindex(self.link_id), Ok(None | Some(0)))
    }
}

/// The hard-IRQ stage's counters from another thread ([`XdpProgram::stats_reader`]).
pub struct XdpStatsReader {
    map: PerCpuArray<MapData, u64>,
}

impl XdpStatsReader {
    /// Reads the counters, as [`XdpProgram::stats`] does.
    ///
    /// # Errors
    ///
    /// [`XdpError::Map`] when a lookup fails.
    pub fn read(&self) -> Result<XdpProgStats, XdpError> {
        read_stats(&self.map)
    }
}

/// Sums each counter of the program's per-CPU stats map over the CPUs.
pub(crate) fn read_stats<T: std::borrow::Borrow<MapData>>(
    stats: &PerCpuArray<T, u64>,
) -> Result<XdpProgStats, XdpError> {
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
        guard_drop: sums[XsknetStat::GuardDrop as usize],
        pass_other_host: sums[XsknetStat::PassOtherHost as usize],
        pass_kernel_addr: sums[XsknetStat::PassKernelAddr as usize],
    })
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Dropping the Ebpf would detach too; doing it here first makes the
        // order explicit. Closing the link fd is what detaches.
        RealSys.detach(&mut self.loaded);
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use std::net::Ipv4Addr;

    use super::*;
    use crate::xdp::LinkDetails;

    /// A system that answers from a table and records what was asked.
    #[derive(Default)]
    struct FakeSys {
        /// Interfaces by name; a missing name is `ENODEV`.
        links: Vec<(&'static str, LinkDetails)>,
        default_route_on: Option<u32>,
        /// bpf_links by (ifindex, prog id): their ids.
        bpf_links: Vec<(u32, u32, u32)>,
        /// `load` fails with this errno.
        load_errno: Option<i32>,
        /// `attach` in driver mode fails with this errno.
        driver_errno: Option<i32>,
        /// What `is_xdp_link` says.
        not_a_link: bool,
        next_prog_id: u32,
        calls: Vec<String>,
    }

    impl FakeSys {
        fn with_link(ifname: &'static str, ifindex: u32, xdp: XdpState) -> Self {
            let link = LinkDetails { index: ifindex, mac: Some([2, 0, 0, 0, 0, 1]), xdp };
            FakeSys { links: vec![(ifname, link)], next_prog_id: 100, ..FakeSys::default() }
        }

        fn link_mut(&mut self, ifindex: u32) -> &mut LinkDetails {
            &mut self.links.iter_mut().find(|(_, l)| l.index == ifindex).expect("known ifindex").1
        }
    }

    impl XdpSys for FakeSys {
        type Loaded = Option<u32>;
        type Link = (u32, u32, u32);

        fn get_link(&mut self, ifname: &str) -> Result<LinkDetails, XdpError> {
            self.calls.push(format!("get_link {ifname}"));
            self.links
                .iter()
                .find(|(n, _)| *n == ifname)
                .map(|(_, l)| l.clone())
                .ok_or_else(|| XdpError::NoSuchInterface { ifname: ifname.to_owned() })
        }

        fn holds_default_route(&mut self, ifindex: u32) -> io::Result<bool> {
            self.calls.push(format!("routes {ifindex}"));
            Ok(self.default_route_on == Some(ifindex))
        }

        fn load(&mut self, _: Ipv4Addr, _: bool) -> Result<Option<u32>, XdpError> {
            self.calls.push("load".into());
            match self.load_errno {
                Some(errno) => Err(XdpError::syscall("bpf(BPF_PROG_LOAD)", io::Error::from_raw_os_error(errno))),
                None => Ok(None),
            }
        }

        fn attach(
            &mut self,
            loaded: &mut Option<u32>,
            ifname: &str,
            ifindex: u32,
            mode: AttachMode,
        ) -> Result<u32, XdpError> {
            self.calls.push(format!("attach {ifindex} {mode}"));
            if let (AttachMode::Driver, Some(errno)) = (mode, self.driver_errno) {
                let source = io::Error::from_raw_os_error(errno);
                return Err(XdpError::syscall(format!("attaching to {ifname} in {mode} mode"), source));
            }
            let id = self.next_prog_id;
            *loaded = Some(id);
            let link = self.link_mut(ifindex);
            link.xdp = XdpState { attached: XdpState::ATTACHED_DRV, prog_id: id, ..XdpState::default() };
            Ok(id)
        }

        fn detach(&mut self, loaded: &mut Option<u32>) {
            self.calls.push(format!("detach {loaded:?}"));
            *loaded = None;
        }

        fn is_xdp_link(&mut self, _: u32) -> io::Result<bool> {
            Ok(!self.not_a_link)
        }

        fn xdp_links(&mut self, ifindex: u32, prog_id: u32) -> io::Result<Vec<(u32, u32, u32)>> {
            Ok(self.bpf_links.iter().copied().filter(|&(i, p, _)| i == ifindex && p == prog_id).collect())
        }

        fn link_detach(&mut self, link: &(u32, u32, u32)) -> io::Result<()> {
            self.calls.push(format!("link_detach {}", link.2));
            self.bpf_links.retain(|l| l != link);
            self.link_mut(link.0).xdp = XdpState::default();
            Ok(())
        }

        fn set_xdp_fd(&mut self, ifindex: u32, fd: i32, flags: u32) -> io::Result<()> {
            self.calls.push(format!("set_xdp_fd {ifindex} {fd} {flags:#x}"));
            // A bpf_link cannot be removed by netlink: the kernel says EBUSY.
            if self.bpf_links.iter().any(|&(i, _, _)| i == ifindex) {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            self.link_mut(ifindex).xdp = XdpState::default();
            Ok(())
        }
    }

    fn opts(ifname: &str) -> XdpOptions {
        XdpOptions {
            ifname: ifname.into(),
            ipv4_addr: Ipv4Addr::new(10, 77, 0, 2),
            mode: AttachMode::Auto,
            replace: false,
            force: false,
            pass_kernel_addrs: false,
            frags: false,
        }
    }

    fn drv(prog_id: u32) -> XdpState {
        XdpState { attached: XdpState::ATTACHED_DRV, prog_id, ..XdpState::default() }
    }

    #[test]
    fn attaches_a_bare_interface_in_driver_mode() {
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        let a = attach_with(&mut sys, &opts("veth0")).unwrap();
        assert_eq!((a.ifindex, a.mode, a.program_id, a.loaded), (7, AttachMode::Driver, 100, Some(100)));
        assert_eq!(sys.calls, ["get_link veth0", "routes 7", "load", "attach 7 driver"]);
    }

    #[test]
    fn missing_interface_is_named() {
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        let e = attach_with(&mut sys, &opts("veth9")).unwrap_err();
        assert!(matches!(e, XdpError::NoSuchInterface { ref ifname } if ifname == "veth9"));
        assert_eq!(e.to_string(), "no interface veth9 in this network namespace: `ip link` lists them; for one in another namespace, run xsknet there (`ip netns exec NS xsknet …`)");
        assert_eq!(sys.calls, ["get_link veth9"]);
    }

    #[test]
    fn default_route_interface_is_refused_unless_force() {
        let mut sys = FakeSys::with_link("eth1", 3, XdpState::default());
        sys.default_route_on = Some(3);
        let e = attach_with(&mut sys, &opts("eth1")).unwrap_err();
        assert!(matches!(e, XdpError::DefaultRoute { .. }));
        assert!(e.to_string().contains("eth1 holds the default route"));
        assert!(e.to_string().contains("pass --force"));
        assert!(!sys.calls.contains(&"load".to_string()), "nothing loaded before refusing");

        let a = attach_with(&mut sys, &XdpOptions { force: true, ..opts("eth1") }).unwrap();
        assert_eq!(a.ifindex, 3);
        // With force, the routes are not even asked.
        assert_eq!(sys.calls.iter().filter(|c| c.starts_with("routes")).count(), 1);
    }

    #[test]
    fn attached_program_is_refused_unless_replace() {
        let mut sys = FakeSys::with_link("veth0", 7, drv(42));
        let e = attach_with(&mut sys, &opts("veth0")).unwrap_err();
        assert!(matches!(e, XdpError::AlreadyAttached { id: 42, .. }));
        let msg = e.to_string();
        assert!(msg.contains("(id 42)") && msg.contains("pass --replace"), "{msg}");
        assert_eq!(sys.calls, ["get_link veth0", "routes 7"]);
    }

    #[test]
    fn replace_detaches_a_bpf_link_through_bpf() {
        let mut sys = FakeSys::with_link("veth0", 7, drv(42));
        sys.bpf_links.push((7, 42, 900));
        let a = attach_with(&mut sys, &XdpOptions { replace: true, ..opts("veth0") }).unwrap();
        assert_eq!(a.program_id, 100);
        // Loaded (verified) before the old program goes; BPF_LINK_DETACH, no netlink.
        assert_eq!(
            sys.calls,
            ["get_link veth0", "routes 7", "load", "link_detach 900", "get_link veth0", "attach 7 driver"]
        );
    }

    #[test]
    fn replace_detaches_a_netlink_program_through_netlink_in_its_mode() {
        let skb = XdpState { attached: XdpState::ATTACHED_SKB, prog_id: 42, ..XdpState::default() };
        let mut sys = FakeSys::with_link("veth0", 7, skb);
        attach_with(&mut sys, &XdpOptions { replace: true, ..opts("veth0") }).unwrap();
        assert_eq!(
            sys.calls,
            ["get_link veth0", "routes 7", "load", "set_xdp_fd 7 -1 0x2", "get_link veth0", "attach 7 driver"]
        );
    }

    #[test]
    fn replace_is_not_tried_when_the_new_program_is_refused() {
        let mut sys = FakeSys::with_link("veth0", 7, drv(42));
        sys.bpf_links.push((7, 42, 900));
        sys.load_errno = Some(libc::EINVAL);
        let e = attach_with(&mut sys, &XdpOptions { replace: true, ..opts("veth0") }).unwrap_err();
        assert!(matches!(e, XdpError::Syscall { .. }));
        assert_eq!(sys.bpf_links.len(), 1, "the old program stays");
        assert!(!sys.calls.iter().any(|c| c.starts_with("link_detach")));
    }

    #[test]
    fn not_permitted_says_run_as_root() {
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        sys.load_errno = Some(libc::EPERM);
        let e = attach_with(&mut sys, &opts("veth0")).unwrap_err();
        assert!(matches!(e, XdpError::NotPermitted));
        assert!(e.to_string().contains("run as root"), "{e}");

        // A driver-mode refusal for permission is not retried in generic mode.
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        sys.driver_errno = Some(libc::EPERM);
        assert!(matches!(attach_with(&mut sys, &opts("veth0")), Err(XdpError::NotPermitted)));
        assert!(!sys.calls.iter().any(|c| c.ends_with("generic")));
    }

    #[test]
    fn auto_falls_back_to_generic() {
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        sys.driver_errno = Some(libc::EOPNOTSUPP);
        let a = attach_with(&mut sys, &opts("veth0")).unwrap();
        assert_eq!(a.mode, AttachMode::Generic);
        // An explicit driver mode does not fall back.
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        sys.driver_errno = Some(libc::EOPNOTSUPP);
        assert!(attach_with(&mut sys, &XdpOptions { mode: AttachMode::Driver, ..opts("veth0") }).is_err());
    }

    #[test]
    fn a_netlink_attachment_of_ours_is_refused_and_undone() {
        let mut sys = FakeSys::with_link("veth0", 7, XdpState::default());
        sys.not_a_link = true;
        let e = attach_with(&mut sys, &opts("veth0")).unwrap_err();
        assert!(matches!(e, XdpError::NotALink { .. }));
        assert_eq!(sys.calls.last().map(String::as_str), Some("detach Some(100)"));
    }
}
