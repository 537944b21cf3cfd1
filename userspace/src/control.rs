//! The control endpoint: a running instance answers questions about itself
//! (who it is, its counters, its sockets) on a Unix socket, so that
//! `xsknet list`, `stat`, `ss` and `top` look at a live process as `nstat`
//! and `ss` look at the kernel.
//!
//! Each instance has one socket, at a path made from its interface, queue
//! and network namespace ([`control_path`]): `/run/xsknet/IFACE-qQUEUE.sock`,
//! or `IFACE-qQUEUE@NETNS.sock` in a namespace `ip netns` named. The
//! directory is root's, mode 0700, and the socket mode 0600. A socket whose
//! process still answers from the same namespace makes a second instance on
//! the same queue refuse to start; one left by a killed process is found
//! (connection refused) and replaced. Readers find an instance by asking
//! each socket who it is, so a name is only a convenience.
//!
//! The protocol is one JSON request per connection, a line such as
//! `{"get":"stats"}`, and one JSON answer: the payload, or `{"error": "…"}`.
//! A thread serves it from the statistics page ([`crate::publish`]) and the
//! XDP program's maps; it never touches the loop.
//!
//! The XDP guard ([`crate::xdp::guard`]) is read and changed here too
//! (`{"get":"guard"}`, with an `update` to change a rule): its rules live in
//! BPF maps, so a change is a map write from the serving thread, in force
//! for the next frame, and the loop never waits for it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::adaptive::{AdaptiveShared, AdaptiveStats};
#[cfg(test)]
use crate::inet_diag::SockDiag;
use crate::publish::{PublishedStats, ReadError, StatsReader};
use crate::xdp::guard::{Guard, GuardCounters, GuardRules, GuardStat, GuardUpdate, Talker};
use crate::xdp::{XdpProgStats, XdpStatsReader};

/// The directory of the control sockets (`XSKNET_RUN_DIR` overrides it).
pub const RUN_DIR: &str = "/run/xsknet";

/// How long a request may take to arrive, and a socket listing to be answered.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest request line accepted, bytes: a rules file of the guard's
/// 1024 prefixes, and room to spare.
const MAX_REQUEST: u64 = 256 * 1024;

/// Talkers listed by a guard request that does not say how many.
const DEFAULT_TALKERS: usize = 10;

/// Connections served at once: each on a thread of its own, so that an idle
/// client does not hold up the others; more wait in the listen backlog.
const MAX_CLIENTS: usize = 16;

/// The directory of the control sockets: `$XSKNET_RUN_DIR`, else [`RUN_DIR`].
pub fn run_dir() -> PathBuf {
    std::env::var_os("XSKNET_RUN_DIR").map_or_else(|| PathBuf::from(RUN_DIR), PathBuf::from)
}

/// A network namespace, as `ip netns identify` names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Netns {
    /// The namespace's inode number (`/proc/self/ns/net`): what tells two apart.
    pub inode: u64,
    /// Its name under `/run/netns`, if `ip netns add` made it.
    pub name: Option<String>,
}

impl Netns {
    /// The namespace of the calling thread.
    pub fn current() -> Netns {
        let inode = ns_inode(Path::new("/proc/self/ns/net")).unwrap_or(0);
        let name = std::fs::read_dir("/run/netns").ok().and_then(|dir| {
            dir.flatten()
                .find(|e| ns_inode(&e.path()) == Some(inode))
                .map(|e| e.file_name().to_string_lossy().into_owned())
        });
        Netns { inode, name }
    }

    /// How `xsknet list` shows it: the name `ip netns` gave it, else `-`
    /// (the default namespace, or one made without a name).
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("-")
    }
}

fn ns_inode(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// The control socket of the instance on `iface` and `queue` in `netns`:
/// `IFACE-qQUEUE.sock`, with `@NAME` before `.sock` in a named namespace.
pub fn control_path(iface: &str, queue: u32, netns: &Netns) -> PathBuf {
    let ns = netns.name.as_ref().map_or(String::new(), |n| format!("@{n}"));
    run_dir().join(format!("{iface}-q{queue}{ns}.sock"))
}

/// The path an instance takes when another namespace's instance holds
/// [`control_path`] (two unnamed namespaces with the same interface name).
fn control_path_by_inode(iface: &str, queue: u32, netns: &Netns) -> PathBuf {
    run_dir().join(format!("{iface}-q{queue}@ns{}.sock", netns.inode))
}

/// Who an instance is (the `info` answer).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InstanceInfo {
    /// Its process.
    pub pid: u32,
    /// `xsknet`'s version.
    pub version: String,
    /// The application: `echo (udp, tcp)`, `sink (udp, tcp)`, `http (tcp)`.
    pub app: String,
    /// The interface.
    pub iface: String,
    /// The interface's rx queue.
    pub queue: u32,
    /// Its network namespace.
    pub netns: Netns,
    /// Our IPv4 address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The port served.
    pub port: u16,
    /// The line `xsknet` printed when ready (modes, program id).
    pub setup: String,
    /// When it started, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// The id of the XDP program it serves from (whether it is still
    /// attached is in each [`Snapshot`]).
    #[serde(default)]
    pub prog_id: Option<u32>,
}

/// A request: one line of JSON, `{"get":"info"}` and so on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "get", rename_all = "lowercase")]
pub enum Request {
    /// [`InstanceInfo`].
    Info,
    /// A [`Snapshot`].
    Stats,
    /// Every socket: a list of [`SockDiag`].
    Sockets,
    /// The guard's [`GuardView`], after applying `update` if there is one.
    Guard {
        /// A change to make first (`xsknet guard block …`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        update: Option<GuardUpdate>,
        /// How many top talkers to list (default 10).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        talkers: Option<usize>,
    },
}

/// The `guard` answer: what the guard does now.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuardView {
    /// The rules in force.
    pub rules: GuardRules,
    /// Its counters (whether it is on, drops by reason, hits by rule).
    pub counters: GuardCounters,
    /// Sources under a tightened limit, with it (packets per second).
    pub tightened: Vec<(Ipv4Addr, u64)>,
    /// The heaviest sources the XDP program counted, heaviest first.
    pub talkers: Vec<Talker>,
    /// The adaptive mode's figures, when it runs.
    pub adaptive: Option<AdaptiveStats>,
}

/// The `stats` answer: the instance, its loop's last publication and the
/// XDP program's counters read now.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Who answered.
    pub info: InstanceInfo,
    /// How long before the answer the loop published, ns (over a second: the loop is stalled).
    pub age_ns: u64,
    /// The loop's counters.
    pub stats: PublishedStats,
    /// The XDP program's per-CPU counters summed, if they could be read.
    pub xdp: Option<XdpProgStats>,
    /// The guard's counters, when the instance has a guard (`--guard`).
    #[serde(default)]
    pub guard: Option<GuardCounters>,
    /// The guard's adaptive mode, when it runs.
    #[serde(default)]
    pub adaptive: Option<AdaptiveStats>,
}

/// What a counter counts, for a reader that names or groups counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// A MIB counter with Linux's `nstat` name (`IpInReceives`) or one of
    /// ours with the `Xsk` prefix.
    Mib,
    /// The XDP program's per-CPU counters (`XdpProg…`).
    XdpProg,
    /// The kernel's `XDP_STATISTICS` for the AF_XDP socket, and our ring checks.
    XdpStatistics,
    /// The loop's own figures (`Softirq…`).
    Softirq,
    /// The XDP guard's counters (`XdpGuard…`): frames passed and dropped
    /// by reason, and the adaptive mode's changes.
    XdpGuard,
}

impl Snapshot {
    /// Every counter as `xsknet stat` prints it: the MIB in `nstat`'s order
    /// (IP, ICMP, UDP, TCP, then ours), the XDP program's, `XDP_STATISTICS`,
    /// and the loop's polls, busy time and CPU time (ns): `SoftirqCpuNs` the
    /// loop thread's, `SoftirqOtherThreadsCpuNs` the process's other threads'
    /// (observing, and the application's when threaded), both since the loop
    /// started and as of the last publication, and the publications with
    /// the loop's CPU time they took (`SoftirqPublishCpuNs`). Counters only: gauges such
    /// as the frame census are in [`PublishedStats::census`].
    pub fn counters(&self) -> Vec<(&'static str, u64, CounterKind)> {
        let mut out: Vec<(&'static str, u64, CounterKind)> =
            self.stats.mib.iter().map(|(n, v)| (n, v, CounterKind::Mib)).collect();
        let x = self.xdp.unwrap_or_default();
        for (n, v) in [
            ("XdpProgRx", x.rx),
            ("XdpProgRedirectIpv4", x.redirect_ipv4),
            ("XdpProgRedirectArp", x.redirect_arp),
            ("XdpProgPassNotOurs", x.pass_not_ours),
            ("XdpProgPassNoSocket", x.pass_no_socket),
            ("XdpProgPassMalformed", x.pass_malformed),
            ("XdpProgDrop", x.drop),
            ("XdpProgGuardDrop", x.guard_drop),
            ("XdpProgPassOtherHost", x.pass_other_host),
            ("XdpProgPassKernelAddr", x.pass_kernel_addr),
        ] {
            out.push((n, v, CounterKind::XdpProg));
        }
        let d = &self.stats.device;
        for (n, v) in [
            ("XskRxDropped", d.rx_dropped),
            ("XskRxInvalidDescs", d.rx_invalid_descs),
            ("XskTxInvalidDescs", d.tx_invalid_descs),
            ("XskRxRingFull", d.rx_ring_full),
            ("XskRxFillRingEmptyDescs", d.rx_fill_ring_empty_descs),
            ("XskTxRingEmptyDescs", d.tx_ring_empty_descs),
            ("XskRxInvalidAddr", d.xsk_rx_invalid_addr),
            ("XskCqInvalidAddr", d.xsk_cq_invalid_addr),
            ("XskInKernelUnderflow", d.xsk_in_kernel_underflow),
            ("XskRxMultiBufPackets", d.xsk_rx_multibuf_packets),
            ("XskRxMultiBufTooBig", d.xsk_rx_multibuf_too_big),
            ("XskRxMultiBufInvalid", d.xsk_rx_multibuf_invalid),
            ("XskRxMultiBufTruncated", d.xsk_rx_multibuf_truncated),
        ] {
            out.push((n, v, CounterKind::XdpStatistics));
        }
        let l = &self.stats.softirq;
        for (n, v) in [
            ("SoftirqPolls", l.polls),
            ("SoftirqBusyPolls", l.busy_polls),
            ("SoftirqBusyNs", l.busy_ns),
            ("SoftirqTotalNs", l.total_ns),
            ("SoftirqRunDelayNs", l.sched.run_delay_ns),
            ("SoftirqNivcsw", l.sched.nivcsw),
            ("SoftirqCpuNs", l.loop_cpu_ns),
            ("SoftirqOtherThreadsCpuNs", l.other_threads_cpu_ns()),
            ("SoftirqPublications", l.publications),
            ("SoftirqPublishCpuNs", l.publish_ns),
        ] {
            out.push((n, v, CounterKind::Softirq));
        }
        if let Some(g) = &self.guard {
            for stat in GuardStat::ALL {
                out.push((stat.name(), g.get(stat), CounterKind::XdpGuard));
            }
        }
        if let Some(a) = &self.adaptive {
            out.push(("XdpGuardAdaptiveTightens", a.tightens, CounterKind::XdpGuard));
            out.push(("XdpGuardAdaptiveRelaxes", a.relaxes, CounterKind::XdpGuard));
        }
        out
    }
}

/// What went wrong at the control endpoint, on either side.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Another instance answers on the same interface and queue.
    #[error(
        "xsknet is already running on {iface} queue {queue} (pid {pid}, control socket {}): stop it first \
         (`xsknet list` shows the instances running)",
        path.display()
    )]
    AlreadyRunning {
        /// The interface.
        iface: String,
        /// The queue.
        queue: u32,
        /// The process that answered.
        pid: u32,
        /// Its control socket.
        path: PathBuf,
    },
    /// No instance matched what was asked for.
    #[error("{0}")]
    NotFound(String),
    /// The instance accepted the connection but did not answer: its process
    /// is stopped (SIGSTOP, a debugger) or stuck, or starved of CPU.
    #[error(
        "{}: the xsknet instance{} is not answering (no answer within {after:?}): it is stopped (SIGSTOP, a \
         debugger{}) or stuck, or starved of CPU",
        path.display(),
        pid.map_or(String::new(), |p| format!(" (pid {p})")),
        pid.map_or(String::new(), |p| format!("; `kill -CONT {p}` resumes a stopped one"))
    )]
    NotAnswering {
        /// The control socket.
        path: PathBuf,
        /// The process listening on it (`SO_PEERCRED`), when known.
        pid: Option<u32>,
        /// How long it was given.
        after: Duration,
    },
    /// The instance serves [`MAX_CLIENTS`] control connections already and
    /// closed this one with that answer.
    #[error("{}: the xsknet instance{} is busy: {msg}", path.display(), pid.map_or(String::new(), |p| format!(" (pid {p})")))]
    Busy {
        /// The control socket.
        path: PathBuf,
        /// The process listening on it (`SO_PEERCRED`), when known.
        pid: Option<u32>,
        /// Its message (how many clients, what to do).
        msg: String,
    },
    /// A system call failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The instance answered with an error.
    #[error("{}: {msg}", path.display())]
    Remote {
        /// The control socket.
        path: PathBuf,
        /// Its message.
        msg: String,
    },
    /// The answer was not what the protocol says.
    #[error("{}: unexpected answer: {msg}", path.display())]
    Protocol {
        /// The control socket.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
}

impl ControlError {
    /// Whether the instance is gone: its socket removed (a clean stop),
    /// left by a process that died (nobody listens: `ECONNREFUSED`), or
    /// closed with no answer (it stopped while asked).
    pub fn is_gone(&self) -> bool {
        matches!(self, ControlError::Io { source, .. }
        if matches!(
            source.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::NotFound
                | std::io::ErrorKind::ConnectionAborted
        ))
    }

    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ControlError {
        let path = path.to_path_buf();
        move |source| ControlError::Io { what, path, source }
    }
}

/// Who answers at `path`, if anyone; a socket nobody answers on (left by a
/// killed process) is removed.
fn claimed(path: &Path) -> Result<Option<InstanceInfo>, ControlError> {
    if !path.exists() {
        return Ok(None);
    }
    match UnixStream::connect(path) {
        Ok(_) => Ok(Some(request::<InstanceInfo>(path, Request::Info)?)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            log::info!("replacing the stale control socket {}", path.display());
            std::fs::remove_file(path).map_err(ControlError::io("removing the stale", path))?;
            Ok(None)
        }
        Err(e) => Err(ControlError::io("connecting to", path)(e)),
    }
}

/// A bound control socket, not yet served: binding first claims the
/// interface and queue before the device is set up.
pub struct ControlSocket {
    path: PathBuf,
    listener: Option<UnixListener>,
}

impl ControlSocket {
    /// Binds the control socket of `iface`/`queue` in this namespace,
    /// replacing one left by a process that is gone.
    ///
    /// # Errors
    ///
    /// [`ControlError::AlreadyRunning`] when an instance answers there;
    /// [`ControlError::Io`] when the directory or socket cannot be made
    /// (`EACCES` without root).
    pub fn bind(iface: &str, queue: u32) -> Result<ControlSocket, ControlError> {
        let dir = run_dir();
        if !dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(ControlError::io("creating", &dir))?;
        }
        let netns = Netns::current();
        let mut path = control_path(iface, queue, &netns);
        if let Some(other) = claimed(&path)? {
            if other.netns.inode == netns.inode {
                return Err(ControlError::AlreadyRunning { iface: iface.to_string(), queue, pid: other.pid, path });
            }
            // Another namespace's instance, on an interface of the same name.
            path = control_path_by_inode(iface, queue, &netns);
            if let Some(other) = claimed(&path)? {
                return Err(ControlError::AlreadyRunning { iface: iface.to_string(), queue, pid: other.pid, path });
            }
        }
        let listener = UnixListener::bind(&path).map_err(ControlError::io("binding", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(ControlError::io("setting the mode of", &path))?;
        Ok(ControlSocket { path, listener: Some(listener) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves the endpoint from a thread of its own until the returned
    /// [`Endpoint`] is dropped.
    ///
    /// # Errors
    ///
    /// [`ControlError::Io`] when the thread cannot be started.
    pub fn serve(mut self, source: SnapshotSource) -> Result<Endpoint, ControlError> {
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server(source);
        let listener = self.listener.take().expect("a control socket is served once");
        // From here the endpoint owns the path.
        let path = std::mem::take(&mut self.path);
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("xsknet-control".into())
                .spawn(move || {
                    let server = Arc::new(server);
                    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                            // Too many at once: this one is told so and closed,
                            // without waiting for its request.
                            busy.fetch_sub(1, Ordering::AcqRel);
                            refuse_busy(&conn);
                            continue;
                        }
                        let (server, done) = (server.clone(), busy.clone());
                        let served = std::thread::Builder::new().name("xsknet-control-conn".into()).spawn(move || {
                            server.answer(conn);
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                        if served.is_err() {
                            busy.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                })
                .map_err(ControlError::io("starting the server of", &path))?
        };
        Ok(Endpoint { path, stop, thread: Some(thread) })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Bound but never served (the device failed to come up): not ours to keep.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A served control endpoint; dropping it stops the thread and removes the socket.
pub struct Endpoint {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocked accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where snapshots come from: the instance's identity, the loop's
/// statistics page and the XDP program's counters. The control endpoint
/// serves one; another reader (a metrics server) may make its own.
pub struct SnapshotSource {
    /// Who the instance is.
    pub info: InstanceInfo,
    /// The loop's publications.
    pub stats: StatsReader,
    /// The XDP program's counters, when readable.
    pub xdp: Option<XdpStatsReader>,
    /// The guard, when the instance has one: read for `stats`, read and
    /// changed for `guard`.
    pub guard: Option<Guard>,
    /// The adaptive mode's figures, when it runs.
    pub adaptive: Option<AdaptiveShared>,
}

impl SnapshotSource {
    /// The loop's next publication (it publishes every
    /// [`crate::publish::PUBLISH_INTERVAL`]; at most one and a half of them
    /// is waited for, then the last one is taken, its age saying how old),
    /// with the XDP counters read right after it. `nstat` reads live
    /// counters: waiting for the next publication counts what was just
    /// sent, and keeps the XDP counters and the stack's from the same moment.
    ///
    /// # Errors
    ///
    /// [`ReadError::NotYet`] before the loop's first publication.
    pub fn snapshot(&self) -> Result<Snapshot, ReadError> {
        // The page itself is copied once, after the wait.
        self.stats.wait_next(crate::publish::PUBLISH_INTERVAL * 3 / 2);
        let stats = self.stats.read()?;
        let age_ns = self.stats.now_ns().saturating_sub(stats.uptime_ns);
        let xdp = self.xdp.as_ref().and_then(|x| x.read().ok());
        let guard = self.guard.as_ref().and_then(|g| g.counters().ok());
        let adaptive = self.adaptive.as_ref().map(AdaptiveShared::load);
        Ok(Snapshot { info: self.info.clone(), age_ns, stats, xdp, guard, adaptive })
    }

    /// The guard as it is now, after `update` if given.
    ///
    /// # Errors
    ///
    /// A message when the instance has no guard, the update is refused
    /// ([`crate::xdp::guard::GuardError`]), or a map cannot be read.
    pub fn guard(&self, update: Option<&GuardUpdate>, talkers: usize) -> Result<GuardView, String> {
        let g = self.guard.as_ref().ok_or(
            "this instance has no guard: start it with --guard (or --guard-rules FILE); the guard's maps \
             exist only in a program loaded for it",
        )?;
        if let Some(u) = update {
            g.apply(u).map_err(|e| e.to_string())?;
        }
        Ok(GuardView {
            rules: g.rules(),
            counters: g.counters().map_err(|e| e.to_string())?,
            tightened: g.tightened().into_iter().collect(),
            talkers: g.talkers(talkers).map_err(|e| e.to_string())?,
            adaptive: self.adaptive.as_ref().map(AdaptiveShared::load),
        })
    }
}

/// The answer to a connection past [`MAX_CLIENTS`]: `{"error": …, "busy": true}`,
/// written without blocking (a short line into an empty socket buffer).
fn refuse_busy(conn: &UnixStream) {
    let msg = format!(
        "too many control clients at once ({MAX_CLIENTS} are served at a time): try again in a moment; if it stays \
         busy, end some of the clients connected to it (`xsknet stat`, `ss`, `top` loops, scrapers)"
    );
    let mut out = serde_json::to_vec(&serde_json::json!({ "error": msg, "busy": true })).unwrap_or_default();
    out.push(b'\n');
    let _ = conn.set_nonblocking(true);
    let _ = (&*conn).write_all(&out);
}

/// The pid of the process listening on a control socket we are connected
/// to (`SO_PEERCRED`: the credentials the listener had at `listen(2)`).
fn peer_pid(conn: &UnixStream) -> Option<u32> {
    rustix::net::sockopt::socket_peercred(conn).ok().map(|c| c.pid.as_raw_pid() as u32)
}

/// How much of a bad request its error quotes, in characters.
const BAD_REQUEST_QUOTE: usize = 100;

struct Server(SnapshotSource);

impl Server {
    fn answer(&self, conn: UnixStream) {
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        let mut raw = Vec::new();
        if BufReader::new((&conn).take(MAX_REQUEST)).read_until(b'\n', &mut raw).is_err() || raw.is_empty() {
            return;
        }
        // Bytes that are not UTF-8 get an answer too (a parse error).
        let line = String::from_utf8_lossy(&raw);
        let answer = match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => self.handle(req),
            Err(e) => {
                // Quote at most the start of what was sent.
                let shown: String = line.trim().chars().take(BAD_REQUEST_QUOTE).collect();
                let cut = if shown.len() < line.trim().len() { "…" } else { "" };
                Err(format!("bad request {shown:?}{cut}: {e} (send one line such as {{\"get\":\"stats\"}})"))
            }
        };
        let json = match answer {
            Ok(v) => v,
            Err(msg) => serde_json::json!({ "error": msg }),
        };
        // One buffer, one write: serde_json writes token by token, a
        // syscall each on an unbuffered socket.
        let mut out = serde_json::to_vec(&json).unwrap_or_default();
        out.push(b'\n');
        let _ = (&conn).write_all(&out);
    }

    fn handle(&self, req: Request) -> Result<serde_json::Value, String> {
        let v = match req {
            Request::Info => serde_json::to_value(&self.0.info),
            Request::Stats => serde_json::to_value(self.0.snapshot().map_err(|e| e.to_string())?),
            Request::Sockets => match self.0.stats.sockets(IO_TIMEOUT) {
                Ok(list) => serde_json::to_value(list),
                Err(e @ (ReadError::Busy | ReadError::Timeout(_) | ReadError::NotYet)) => return Err(e.to_string()),
            },
            Request::Guard { update, talkers } => {
                let view = self.0.guard(update.as_ref(), talkers.unwrap_or(DEFAULT_TALKERS))?;
                if let Some(u) = &update {
                    log::info!("guard: {u} (through the control socket)");
                }
                serde_json::to_value(view)
            }
        };
        v.map_err(|e| e.to_string())
    }
}

/// Sends `req` to the control socket at `path` and reads the answer.
///
/// # Errors
///
/// [`ControlError::Io`] when the socket cannot be reached (`ECONNREFUSED`:
/// its process is gone; `EACCES`: not root); [`ControlError::Remote`] for
/// the instance's error; [`ControlError::Protocol`] for an answer that does
/// not parse as `T`.
pub fn request<T: serde::de::DeserializeOwned>(path: &Path, req: Request) -> Result<T, ControlError> {
    let mut conn = UnixStream::connect(path).map_err(ControlError::io("connecting to", path))?;
    conn.set_read_timeout(Some(IO_TIMEOUT * 2)).map_err(ControlError::io("setting a timeout on", path))?;
    let pid = peer_pid(&conn);
    let mut line = serde_json::to_string(&req).expect("a request serializes");
    line.push('\n');
    // A busy instance answers and closes without reading: the write may
    // fail (EPIPE) with its answer waiting to be read.
    let wrote = conn.write_all(line.as_bytes());
    let answer = read_answer(&mut conn).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            ControlError::NotAnswering { path: path.to_path_buf(), pid, after: IO_TIMEOUT * 2 }
        }
        _ => ControlError::io("reading from", path)(e),
    })?;
    if answer.is_empty() {
        wrote.map_err(ControlError::io("writing to", path))?;
        // Closed with no answer: the instance stopped while it was asked.
        let closed = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "closed without an answer");
        return Err(ControlError::io("reading from", path)(closed));
    }
    let v: serde_json::Value = serde_json::from_str(&answer)
        .map_err(|e| ControlError::Protocol { path: path.to_path_buf(), msg: format!("{e}") })?;
    if let Some(msg) = v.get("error").and_then(|m| m.as_str()) {
        if v.get("busy").and_then(serde_json::Value::as_bool) == Some(true) {
            return Err(ControlError::Busy { path: path.to_path_buf(), pid, msg: msg.to_string() });
        }
        return Err(ControlError::Remote { path: path.to_path_buf(), msg: msg.to_string() });
    }
    serde_json::from_value(v).map_err(|e| ControlError::Protocol { path: path.to_path_buf(), msg: format!("{e}") })
}

/// Reads an answer to its end. A busy instance closes without reading the
/// request, and a Unix socket closed with unread data makes the other end's
/// next read fail with `ECONNRESET` once the answer has been read
/// (`unix_release_sock`, net/unix/af_unix.c): after an answer, that is its end.
fn read_answer(conn: &mut UnixStream) -> std::io::Result<String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(answer).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Every control socket in [`run_dir`] (answering or not), by name.
///
/// # Errors
///
/// [`ControlError::Io`] when the directory cannot be read (`EACCES`: not root).
pub fn list() -> Result<Vec<PathBuf>, ControlError> {
    let dir = run_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ControlError::io("reading", &dir)(e)),
    };
    let mut out: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "sock")).collect();
    out.sort();
    Ok(out)
}

/// Whether the socket at `path` was left by a process that is gone: nobody
/// listens (`ECONNREFUSED`). A live instance's socket always accepts: it is
/// bound and listening before it is visible.
pub fn is_stale(path: &Path) -> bool {
    matches!(UnixStream::connect(path), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Removes the control socket at `path` if it is stale ([`is_stale`]);
/// returns whether it did. Instances in namespaces since deleted leave
/// sockets nobody would replace: `xsknet list` clears them.
pub fn remove_if_stale(path: &Path) -> bool {
    is_stale(path) && std::fs::remove_file(path).is_ok()
}

/// The control socket of the instance a command means: on `iface` (and
/// `queue`, if given), preferring this namespace; with no interface, the
/// only instance running.
///
/// # Errors
///
/// [`ControlError::NotFound`] with what is running instead, or that nothing is;
/// the errors of [`list`].
pub fn find(iface: Option<&str>, queue: Option<u32>) -> Result<PathBuf, ControlError> {
    let here = Netns::current().inode;
    // Who answers where; sockets whose process is gone do not count, and
    // those that do not answer are named if nothing else matches.
    let mut all: Vec<(PathBuf, InstanceInfo)> = Vec::new();
    // Instances that are there but cannot say who they are: stopped, stuck, busy.
    let mut silent: Vec<(PathBuf, ControlError)> = Vec::new();
    for p in list()? {
        match request::<InstanceInfo>(&p, Request::Info) {
            Ok(i) => all.push((p, i)),
            Err(e @ (ControlError::NotAnswering { .. } | ControlError::Busy { .. })) => silent.push((p, e)),
            Err(_) => {}
        }
    }
    let matching: Vec<&(PathBuf, InstanceInfo)> =
        all.iter().filter(|(_, i)| iface.is_none_or(|f| i.iface == f) && queue.is_none_or(|q| i.queue == q)).collect();
    let local: Vec<&&(PathBuf, InstanceInfo)> = matching.iter().filter(|(_, i)| i.netns.inode == here).collect();
    // Nothing that answers matches, and one instance that does not answer
    // may be the one meant (by its socket's name): say what is wrong with it.
    let named = |p: &Path| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match iface.map(|i| name.strip_prefix(&format!("{i}-q")).map(str::to_owned)) {
            None => true,
            Some(None) => false,
            Some(Some(rest)) => {
                let q: String = rest.chars().take_while(char::is_ascii_digit).collect();
                queue.is_none_or(|want| q.parse() == Ok(want))
            }
        }
    };
    if matching.is_empty() {
        let candidates: Vec<usize> = (0..silent.len()).filter(|&i| named(&silent[i].0)).collect();
        if let [i] = candidates[..] {
            return Err(silent.swap_remove(i).1);
        }
    }
    let wanted = match (iface, queue) {
        (Some(i), Some(q)) => format!("no xsknet instance on {i} queue {q}"),
        (Some(i), None) => format!("no xsknet instance on {i}"),
        (None, Some(q)) => format!("no xsknet instance on queue {q}"),
        (None, None) => String::new(),
    };
    let running = || {
        let silent = if silent.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = silent.iter().map(|(_, e)| e.to_string()).collect();
            format!("; {}", names.join("; "))
        };
        if all.is_empty() && silent.is_empty() {
            format!("no xsknet instance is running (no control socket answers in {})", run_dir().display())
        } else {
            let names: Vec<String> = all
                .iter()
                .map(|(_, i)| format!("--iface {} --queue {} (netns {})", i.iface, i.queue, i.netns.label()))
                .collect();
            let running =
                if names.is_empty() { "none answering".to_string() } else { format!("running: {}", names.join(", ")) };
            format!("{running}{silent}; `xsknet list` shows them")
        }
    };
    match (local.as_slice(), matching.as_slice()) {
        ([one], _) => Ok(one.0.clone()),
        ([], [one]) => Ok(one.0.clone()),
        ([], []) if wanted.is_empty() => Err(ControlError::NotFound(running())),
        ([], []) => Err(ControlError::NotFound(format!("{wanted}: {}", running()))),
        _ => Err(ControlError::NotFound(format!(
            "more than one instance matches: name one with --iface and --queue, or run the command in the \
             instance's namespace (`ip netns exec NAME xsknet ...`); {}",
            running()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Publisher;
    use std::time::Instant;

    #[test]
    fn paths_name_the_queue_and_a_named_namespace() {
        let unnamed = Netns { inode: 7, name: None };
        let named = Netns { inode: 4026532, name: Some("a".into()) };
        assert_eq!(control_path("veth-x", 3, &unnamed).file_name().unwrap(), "veth-x-q3.sock");
        assert_eq!(control_path("xsk1", 0, &named).file_name().unwrap(), "xsk1-q0@a.sock");
        assert_eq!(control_path_by_inode("xsk1", 0, &named).file_name().unwrap(), "xsk1-q0@ns4026532.sock");
        assert_eq!((named.label(), unnamed.label()), ("a", "-"));
    }

    fn info() -> InstanceInfo {
        InstanceInfo {
            pid: std::process::id(),
            version: "t".into(),
            app: "echo".into(),
            iface: "lo".into(),
            queue: 0,
            netns: Netns::current(),
            addr: Ipv4Addr::new(10, 0, 0, 1),
            prefix_len: 24,
            port: 7,
            setup: "test".into(),
            started_unix_s: 0.0,
            prog_id: Some(42),
        }
    }

    /// The endpoint end to end, in a directory of the test's own (the
    /// environment variable is read per call, so the tests of this module
    /// run in one test to keep it theirs).
    #[test]
    fn endpoint_serves_refuses_a_second_and_replaces_a_stale_socket() {
        let dir = std::env::temp_dir().join(format!("xsknet-control-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // No other test of this crate reads XSKNET_RUN_DIR.
        std::env::set_var("XSKNET_RUN_DIR", &dir);

        let sock = ControlSocket::bind("lo", 0).unwrap();
        let path = sock.path().to_path_buf();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (mut publisher, reader) = Publisher::new(Instant::now());
        let ep =
            sock.serve(SnapshotSource { info: info(), stats: reader, xdp: None, guard: None, adaptive: None }).unwrap();

        assert_eq!(request::<InstanceInfo>(&path, Request::Info).unwrap(), info());
        // Before the loop publishes: a clear error, not a hang.
        let e = request::<Snapshot>(&path, Request::Stats).unwrap_err();
        assert!(e.to_string().contains("not published"), "{e}");
        publisher.scratch.mib.UdpNoPorts = 5;
        publisher.commit(Instant::now());
        let snap: Snapshot = request(&path, Request::Stats).unwrap();
        assert_eq!(snap.stats.mib.UdpNoPorts, 5);
        assert!(snap.xdp.is_none());
        // A socket listing waits for the loop.
        let lister = {
            let path = path.clone();
            std::thread::spawn(move || request::<Vec<SockDiag>>(&path, Request::Sockets))
        };
        let t0 = Instant::now();
        let mut served = false;
        while !lister.is_finished() && t0.elapsed() < Duration::from_secs(5) {
            publisher.serve_requests(|| {
                served = true;
                Vec::new()
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(served);
        assert_eq!(lister.join().unwrap().unwrap(), Vec::new());
        // A bad request gets an error that says what to send.
        let mut c = UnixStream::connect(&path).unwrap();
        c.write_all(b"{\"get\":\"everything\"}\n").unwrap();
        let mut a = String::new();
        c.read_to_string(&mut a).unwrap();
        assert!(a.contains("\"error\"") && a.contains("{\\\"get\\\":\\\"stats\\\"}"), "{a}");

        // A 17th client at once is told the instance is busy, and what to do.
        let held: Vec<UnixStream> = (0..MAX_CLIENTS).map(|_| UnixStream::connect(&path).unwrap()).collect();
        let t0 = Instant::now();
        let busy = loop {
            // The server counts a connection once it accepted it: wait for all 16.
            match request::<InstanceInfo>(&path, Request::Info) {
                Err(e @ ControlError::Busy { .. }) => break e,
                other => assert!(t0.elapsed() < Duration::from_secs(5), "never busy: {other:?}"),
            }
        };
        assert!(matches!(busy, ControlError::Busy { pid: Some(p), .. } if p == std::process::id()), "{busy:?}");
        let text = busy.to_string();
        assert!(text.contains("is busy: too many control clients at once (16") && text.contains("try again"), "{text}");
        assert!(!busy.is_gone(), "a busy instance is not a gone one");
        let e = find(Some("lo"), None).unwrap_err();
        assert!(matches!(e, ControlError::Busy { .. }), "find names the busy instance: {e}");
        drop(held);
        let t0 = Instant::now();
        while request::<InstanceInfo>(&path, Request::Info).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(5), "still busy after its clients left");
        }

        // A second instance on the same queue is refused, naming the first.
        match ControlSocket::bind("lo", 0) {
            Err(ControlError::AlreadyRunning { pid, .. }) => assert_eq!(pid, std::process::id()),
            other => panic!("{:?}", other.map(|s| s.path().to_path_buf())),
        }
        assert_eq!(list().unwrap().len(), 1);
        assert_eq!(find(Some("lo"), None).unwrap(), path);
        assert_eq!(find(None, None).unwrap(), path);
        let e = find(Some("veth9"), None).unwrap_err().to_string();
        assert!(e.contains("no xsknet instance on veth9") && e.contains("--iface lo --queue 0 (netns"), "{e}");

        // Stopping removes the socket.
        drop(ep);
        assert!(!path.exists());
        let e = find(None, None).unwrap_err().to_string();
        assert!(e.contains("no xsknet instance is running"), "{e}");

        // A socket left by a killed process (bound, nobody listening) is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let again = ControlSocket::bind("lo", 0).unwrap();
        assert_eq!(again.path(), path);
        drop(again);
        assert!(!path.exists());

        // A process that listens but does not answer (stopped with SIGSTOP,
        // stuck) is named as such, with its pid, not as no instance.
        let stuck_path = dir.join("lo-q1.sock");
        let _stuck = std::os::unix::net::UnixListener::bind(&stuck_path).unwrap();
        let e = find(Some("lo"), Some(1)).unwrap_err();
        assert!(matches!(&e, ControlError::NotAnswering { pid: Some(p), .. } if *p == std::process::id()), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&format!("instance (pid {}) is not answering", std::process::id())), "{text}");
        assert!(text.contains("stopped (SIGSTOP") && text.contains("kill -CONT"), "{text}");
        assert!(!text.contains("no xsknet instance"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
