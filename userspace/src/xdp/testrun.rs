//! The hard-IRQ stage without a NIC: the program loaded and verified, attached
//! nowhere, and run on literal frames with `BPF_PROG_TEST_RUN`
//! (`net/bpf/test_run.c`, `bpf_prog_test_run_xdp()`), which aya 0.14 offers
//! as [`aya::programs::TestRun`]. The kernel builds an `xdp_buff` around a copy
//! of the frame, on the loopback device's rx queue 0, and returns the
//! program's action; the maps are the real ones, so the counters and the
//! guard's buckets move as they would on an interface.
//!
//! An empty XSKMAP makes `bpf_redirect_map()` return its fallback, so a frame
//! that would be redirected comes back as [`XdpAction::Pass`] with
//! `XdpProgStats::pass_no_socket` counted: the tests tell "ours, passed" from
//! "dropped" by the action and the counters.

use std::{net::Ipv4Addr, time::Duration};

use aya::{
    maps::PerCpuArray,
    programs::{TestRun, TestRunOptions},
};

use super::{
    chain,
    object::{self, STATS_MAP},
    program::read_stats,
    sys::Loaded,
    Guard, RealSys, XdpError, XdpProgStats, XdpSys,
};

/// An XDP action, as the program returns it (`enum xdp_action`, `include/uapi/linux/bpf.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAction {
    /// `XDP_ABORTED`: a program error.
    Aborted,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_PASS`: on to the kernel.
    Pass,
    /// `XDP_TX`.
    Tx,
    /// `XDP_REDIRECT`.
    Redirect,
}

impl XdpAction {
    fn from_raw(v: u32) -> Option<XdpAction> {
        Some(match v {
            0 => Self::Aborted,
            1 => Self::Drop,
            2 => Self::Pass,
            3 => Self::Tx,
            4 => Self::Redirect,
            _ => return None,
        })
    }
}

/// What a repeated run returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRunOutcome {
    /// The action of the last run.
    pub action: XdpAction,
    /// The kernel's mean time per run (`duration` of `BPF_PROG_TEST_RUN`).
    pub per_run: Duration,
}

/// The program loaded (verified) but attached nowhere, for `BPF_PROG_TEST_RUN`.
pub struct TestRunProgram {
    loaded: Loaded,
    guard: Guard,
}

impl std::fmt::Debug for TestRunProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRunProgram").finish_non_exhaustive()
    }
}

impl TestRunProgram {
    /// Loads the embedded program for our address `ipv4_addr` on an
    /// interface whose MAC is `mac`, attaching it nowhere; `kernel_addrs`
    /// are the kernel's addresses `--pass-kernel-addrs` leaves to it (`None`:
    /// the option off), as [`super::XdpProgram::attach`] reads them from the interface.
    ///
    /// # Errors
    /// As [`XdpSys::load`]: [`XdpError::NotPermitted`] without root, the
    /// verifier's refusal as [`XdpError::Program`]; [`XdpError::Map`] when
    /// the maps cannot be written.
    pub fn load(
        ipv4_addr: Ipv4Addr,
        mac: [u8; 6],
        kernel_addrs: Option<&[Ipv4Addr]>,
    ) -> Result<TestRunProgram, XdpError> {
        let mut loaded = RealSys.load(ipv4_addr, false)?;
        object::set_ingress(&mut loaded.ebpf, mac, kernel_addrs)?;
        let guard = Guard::take_from(&mut loaded.ebpf, ipv4_addr)?;
        Ok(TestRunProgram { loaded, guard })
    }

    /// Runs the program once on `frame` (at least the 14 bytes of an Ethernet
    /// header, as the kernel requires) and returns its action.
    ///
    /// # Errors
    /// [`XdpError::Program`] when the kernel refuses the run (`EINVAL` for a
    /// frame shorter than 14 bytes) or the action is unknown.
    pub fn run(&self, frame: &[u8]) -> Result<XdpAction, XdpError> {
        Ok(self.run_repeat(frame, 1)?.action)
    }

    /// Runs the program `repeat` times on `frame` in one system call (the
    /// buckets see `repeat` frames in a row), returning the last action and
    /// the mean time per run.
    ///
    /// # Errors
    /// As [`TestRunProgram::run`].
    pub fn run_repeat(&self, frame: &[u8], repeat: u32) -> Result<TestRunOutcome, XdpError> {
        let program = self.program()?;
        let opts = TestRunOptions { data_in: Some(frame), repeat, ..TestRunOptions::default() };
        let r = program
            .test_run(opts)
            .map_err(|source| XdpError::Program { detail: chain(&source), source: Box::new(source) })?;
        let action = XdpAction::from_raw(r.return_value).ok_or_else(|| XdpError::Syscall {
            call: "BPF_PROG_TEST_RUN".into(),
            source: std::io::Error::other(format!("unknown XDP action {}", r.return_value)),
        })?;
        Ok(TestRunOutcome { action, per_run: r.duration })
    }

    fn program(&self) -> Result<&aya::programs::Xdp, XdpError> {
        self.loaded
            .ebpf
            .program(object::PROGRAM)
            .and_then(|p| <&aya::programs::Xdp>::try_from(p).ok())
            .ok_or(XdpError::MissingFromObject { name: object::PROGRAM })
    }

    /// The program's guard, as [`super::XdpProgram::guard`].
    pub fn guard(&self) -> Guard {
        self.guard.clone()
    }

    /// The program's counters, as [`super::XdpProgram::stats`].
    ///
    /// # Errors
    /// [`XdpError::Map`] when a lookup fails.
    pub fn stats(&self) -> Result<XdpProgStats, XdpError> {
        let map = self.loaded.ebpf.map(STATS_MAP).ok_or(XdpError::MissingFromObject { name: STATS_MAP })?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(|e| XdpError::map(STATS_MAP, e))?;
        read_stats(&stats)
    }

    /// Drops our frames instead of redirecting them, as [`super::XdpProgram::set_drop`].
    ///
    /// # Errors
    /// [`XdpError::Map`] when the config map cannot be written.
    pub fn set_drop(&self, drop: bool) -> Result<(), XdpError> {
        self.guard.set_xdp_drop(drop)
    }
}
