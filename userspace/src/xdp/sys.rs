//! The system calls of the attach path behind one trait, [`XdpSys`]: the
//! rtnetlink link query and `IFLA_XDP` set, the route query, the bpf_link
//! listing and `BPF_LINK_DETACH`, and aya's load and attach. [`RealSys`] makes
//! them; the unit tests of [`super::program`] substitute a fake, so the attach,
//! refuse and replace decisions run without root.

use std::{io, net::Ipv4Addr};

use aya::{
    programs::{xdp::XdpLinkId, ProgramError, XdpMode},
    Ebpf,
};

use super::{bpf, chain, netlink, object, route, AttachMode, LinkDetails, XdpError};

/// Every system interaction [`super::XdpProgram::attach`] makes, in the calling
/// thread's network namespace.
pub trait XdpSys {
    /// A loaded, verified program with its maps (and, once attached, its link).
    type Loaded;
    /// An XDP bpf_link found on an interface, held open to detach it.
    type Link;

    /// `RTM_GETLINK` by name.
    ///
    /// # Errors
    /// [`XdpError::NoSuchInterface`], or the request's failure.
    fn get_link(&mut self, ifname: &str) -> Result<LinkDetails, XdpError>;

    /// Whether interface `ifindex` carries an IPv4 or IPv6 default route.
    ///
    /// # Errors
    /// The route query's failure.
    fn holds_default_route(&mut self, ifindex: u32) -> io::Result<bool>;

    /// Loads the embedded object, writes the config map for `ipv4_addr`, and
    /// loads the program into the kernel (the verifier runs here).
    ///
    /// # Errors
    /// [`XdpError::Load`], [`XdpError::Map`], [`XdpError::Program`], or
    /// [`XdpError::NotPermitted`].
    fn load(&mut self, ipv4_addr: Ipv4Addr, frags: bool) -> Result<Self::Loaded, XdpError>;

    /// Attaches `loaded` to `ifindex` in `mode` ([`AttachMode::Driver`] or
    /// [`AttachMode::Generic`]) and returns the kernel's program id.
    ///
    /// # Errors
    /// [`XdpError::Attach`] (the kernel refused the mode), [`XdpError::Program`]
    /// (the id could not be read; the program is detached again), or
    /// [`XdpError::NotPermitted`].
    fn attach(
        &mut self,
        loaded: &mut Self::Loaded,
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
    ) -> Result<u32, XdpError>;

    /// Detaches what [`XdpSys::attach`] attached (a no-op if nothing is).
    fn detach(&mut self, loaded: &mut Self::Loaded);

    /// Whether an XDP bpf_link holds `program_id`.
    ///
    /// # Errors
    /// The listing's failure.
    fn is_xdp_link(&mut self, program_id: u32) -> io::Result<bool>;

    /// The XDP bpf_links on `ifindex` that hold `prog_id`.
    ///
    /// # Errors
    /// `bpf(2)` failures.
    fn xdp_links(&mut self, ifindex: u32, prog_id: u32) -> io::Result<Vec<Self::Link>>;

    /// `BPF_LINK_DETACH` on `link`.
    ///
    /// # Errors
    /// The kernel's refusal.
    fn link_detach(&mut self, link: &Self::Link) -> io::Result<()>;

    /// `RTM_SETLINK` with `IFLA_XDP { FD = fd, FLAGS = flags }`.
    ///
    /// # Errors
    /// The kernel's refusal, with its extended-ack text.
    fn set_xdp_fd(&mut self, ifindex: u32, fd: i32, flags: u32) -> io::Result<()>;
}

/// The program as [`RealSys`] holds it: the aya object and, once attached, its link.
pub struct Loaded {
    pub(crate) ebpf: Ebpf,
    pub(crate) link: Option<XdpLinkId>,
}

/// The real system: rtnetlink, `bpf(2)` and aya.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSys;

impl XdpSys for RealSys {
    type Loaded = Loaded;
    type Link = bpf::LinkFd;

    fn get_link(&mut self, ifname: &str) -> Result<LinkDetails, XdpError> {
        netlink::get_link(ifname)
    }

    fn holds_default_route(&mut self, ifindex: u32) -> io::Result<bool> {
        route::holds_default_route_index(ifindex)
    }

    fn load(&mut self, ipv4_addr: Ipv4Addr, frags: bool) -> Result<Loaded, XdpError> {
        let mut ebpf = Ebpf::load(object::OBJECT)
            .map_err(|source| XdpError::Load { detail: chain(&source), source: Box::new(source) }.or_not_permitted())?;
        object::write_config(&mut ebpf, ipv4_addr, 0)?;
        let name = if frags { object::PROGRAM_FRAGS } else { object::PROGRAM };
        object::xdp_program_named(&mut ebpf, name)?.load().map_err(|source| {
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
        Ok(Loaded { ebpf, link: None })
    }

    fn attach(&mut self, loaded: &mut Loaded, ifname: &str, ifindex: u32, mode: AttachMode) -> Result<u32, XdpError> {
        let program = object::xdp_program(&mut loaded.ebpf)?;
        let xdp_mode = match mode {
            AttachMode::Generic => XdpMode::Skb,
            AttachMode::Driver | AttachMode::Auto => XdpMode::Driver,
        };
        let link_id = program.attach_to_if_index(ifindex, xdp_mode).map_err(|source| {
            XdpError::Attach { ifname: ifname.to_owned(), mode, detail: chain(&source), source: Box::new(source) }
                .or_not_permitted()
        })?;
        match program.info() {
            Ok(info) => {
                loaded.link = Some(link_id);
                Ok(info.id())
            }
            Err(source) => {
                let _ = program.detach(link_id);
                Err(XdpError::Program { detail: chain(&source), source: Box::new(source) }.or_not_permitted())
            }
        }
    }

    fn detach(&mut self, loaded: &mut Loaded) {
        if let Some(link_id) = loaded.link.take() {
            if let Ok(program) = object::xdp_program(&mut loaded.ebpf) {
                let _ = program.detach(link_id);
            }
        }
    }

    fn is_xdp_link(&mut self, program_id: u32) -> io::Result<bool> {
        bpf::is_xdp_link(program_id)
    }

    fn xdp_links(&mut self, ifindex: u32, prog_id: u32) -> io::Result<Vec<bpf::LinkFd>> {
        bpf::xdp_links(ifindex, prog_id)
    }

    fn link_detach(&mut self, link: &bpf::LinkFd) -> io::Result<()> {
        bpf::link_detach(link.as_fd_ref())
    }

    fn set_xdp_fd(&mut self, ifindex: u32, fd: i32, flags: u32) -> io::Result<()> {
        netlink::set_xdp_fd(ifindex, fd, flags)
    }
}
