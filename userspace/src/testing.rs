//! Test support: network namespaces and veth pairs where the kernel is the peer.
//!
//! Privileged tests never touch an interface they did not create. [`NetNsPair`]
//! makes two namespaces with a veth pair between them, names unique to the process
//! (`xsk<pid>-<n>a` / `…b`), and deletes both namespaces on drop, which also
//! deletes the veths, when a test panics too. The "xsknet side" is where the XDP
//! program and AF_XDP sockets go; the "peer side" is a plain kernel stack.
//!
//! The peer side's transmit checksum offload is turned off (`ethtool -K <peer> tx
//! off`): veth otherwise hands over frames with *partial* TCP/UDP checksums, which
//! xsknet, like any receiver on a real wire, counts as checksum errors.
//!
//! [`ImpairedPair`] puts a middle namespace between the two, where the `xsknet-impair` relay
//! (in the bench crate) applies netem's loss, delay, jitter, reordering, duplication and rate
//! to the frames crossing it: this kernel has no netem (see docs/impairment.md).
//!
//! Needs `iproute2` (`ip`) and `ethtool`. A process killed with SIGKILL cannot run
//! its destructors: `ip netns list | grep '^xsk'` shows what such a run left.
#![allow(unsafe_code)] // setns(2), geteuid(2), AF_PACKET sockets; each with a SAFETY line

use std::{
    ffi::OsStr,
    fs::File,
    io::{self, Write},
    net::Ipv4Addr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use crate::xdp;

/// Whether this process may run a privileged test. Without root it prints
/// "skipped: needs root" and returns false, except under CI (env `CI` set), where a
/// silent skip would hide a broken job: there it panics.
pub fn require_root(test_name: &str) -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test_name}: privileged test cannot be skipped in CI (run as root)");
    }
    // Straight to the stderr handle: libtest captures eprintln! of passing tests,
    // and a skip should be seen.
    let _ = writeln!(io::stderr(), "{test_name}: skipped: needs root");
    false
}

/// How to build a [`NetNsPair`].
#[derive(Clone, Debug)]
pub struct NetNsPairOptions {
    /// A kernel address on the xsknet side's veth. Usually `None`: the address
    /// xsknet serves belongs to xsknet, not to the kernel behind it.
    pub addr: Option<(Ipv4Addr, u8)>,
    /// The peer's address and prefix length.
    pub peer_addr: Option<(Ipv4Addr, u8)>,
    /// rx and tx queues of the xsknet side's veth, and rx queues of the peer's
    /// (a veth has one unless asked). The peer has one tx queue: what it sends
    /// reaches this end's rx queue 0.
    pub queues: u32,
    /// Leave IPv6 on. Off, neither end sends router solicitations or MLD reports,
    /// which keeps counters exact in tests.
    pub ipv6: bool,
    /// Run `ethtool -K <peer> tx off` (see the module docs).
    pub peer_tx_checksum_off: bool,
}

impl Default for NetNsPairOptions {
    fn default() -> Self {
        Self { addr: None, peer_addr: None, queues: 1, ipv6: true, peer_tx_checksum_off: true }
    }
}

/// Two network namespaces joined by a veth pair. Drop deletes both.
#[derive(Debug)]
pub struct NetNsPair {
    ns: String,
    peer_ns: String,
    ifname: String,
    peer_ifname: String,
    mac: [u8; 6],
    peer_mac: [u8; 6],
    addr: Option<Ipv4Addr>,
    peer_addr: Option<Ipv4Addr>,
    /// Namespaces this guard created and must delete.
    created: Vec<String>,
}

static PAIRS: AtomicU32 = AtomicU32::new(0);

/// A name base unique to this process and call, leaving one character of the
/// 15 (IFNAMSIZ - 1) for the side suffix.
fn unique_base() -> String {
    let pid = std::process::id();
    let n = PAIRS.fetch_add(1, Ordering::Relaxed);
    let base = format!("xsk{pid}-{n}");
    let base = if base.len() <= 14 { base } else { format!("xsk{pid:x}-{n:x}") };
    assert!(base.len() <= 14, "namespace name {base} too long");
    base
}

impl NetNsPair {
    /// A pair with default options: no addresses, one queue, IPv6 on.
    pub fn new() -> io::Result<Self> {
        Self::with_options(&NetNsPairOptions::default())
    }

    /// A pair built as `opts` says. On error, whatever was created is deleted.
    pub fn with_options(opts: &NetNsPairOptions) -> io::Result<Self> {
        let base = unique_base();
        let mut pair = NetNsPair {
            ns: format!("{base}a"),
            peer_ns: format!("{base}b"),
            ifname: format!("{base}a"),
            peer_ifname: format!("{base}b"),
            mac: [0; 6],
            peer_mac: [0; 6],
            addr: opts.addr.map(|(a, _)| a),
            peer_addr: opts.peer_addr.map(|(a, _)| a),
            created: Vec::new(),
        };
        // From here on, an early return drops `pair`, which deletes what exists.
        for ns in [pair.ns.clone(), pair.peer_ns.clone()] {
            ip(&["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        let q = opts.queues.max(1);
        // A veth hands what its peer sends on tx queue N to rx queue N of this
        // end, and a peer with several picks one by a flow hash seeded at boot
        // (`skb_tx_hash`): its ARP requests went to queue 1 on one boot, queue 0
        // on another. The peer has one tx queue, so that traffic reaches queue 0.
        ip_line(&format!(
            "link add name {} numtxqueues {q} numrxqueues {q} netns {} \
             type veth peer name {} numtxqueues 1 numrxqueues {q} netns {}",
            pair.ifname, pair.ns, pair.peer_ifname, pair.peer_ns
        ))?;
        for (ns, ifname) in [(&pair.ns, &pair.ifname), (&pair.peer_ns, &pair.peer_ifname)] {
            if !opts.ipv6 {
                let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
                // /proc/sys/net is the opening thread's namespace.
                in_netns(ns, || match std::fs::write(&path, "1") {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()), // no IPv6 at all
                    other => other,
                })?;
            }
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", ifname, "up"])?;
        }
        for (ns, ifname, addr) in
            [(&pair.ns, &pair.ifname, opts.addr), (&pair.peer_ns, &pair.peer_ifname, opts.peer_addr)]
        {
            if let Some((addr, prefix)) = addr {
                ip_line(&format!("-n {ns} addr add {addr}/{prefix} dev {ifname}"))?;
            }
        }
        if opts.peer_tx_checksum_off {
            ip_line(&format!("netns exec {} ethtool -K {} tx off", pair.peer_ns, pair.peer_ifname))?;
        }
        let mac = |ns: &str, ifname: &str| in_netns(ns, || xdp::interface_mac(ifname)).map_err(io::Error::other);
        pair.mac = mac(&pair.ns, &pair.ifname)?;
        pair.peer_mac = mac(&pair.peer_ns, &pair.peer_ifname)?;
        Ok(pair)
    }

    /// The xsknet side's namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The peer (kernel) side's namespace.
    pub fn peer_ns(&self) -> &str {
        &self.peer_ns
    }

    /// The xsknet side's veth, in [`Self::ns`].
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The peer's veth, in [`Self::peer_ns`].
    pub fn peer_ifname(&self) -> &str {
        &self.peer_ifname
    }

    /// The xsknet side's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The peer's MAC address.
    pub fn peer_mac(&self) -> [u8; 6] {
        self.peer_mac
    }

    /// The kernel address on the xsknet side, if one was asked for.
    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.addr
    }

    /// The peer's address, if one was asked for.
    pub fn peer_addr(&self) -> Option<Ipv4Addr> {
        self.peer_addr
    }

    /// Runs `args` in the xsknet side's namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        run_in(&self.ns, args)
    }

    /// Runs `args` in the peer's namespace.
    pub fn run_peer(&self, args: &[&str]) -> Output {
        run_in(&self.peer_ns, args)
    }

    /// Tells the peer that `addr` is at the xsknet side's MAC (a permanent
    /// neighbour entry), so it sends IPv4 without asking ARP first.
    pub fn add_peer_neighbour(&self, addr: Ipv4Addr) -> io::Result<()> {
        ip_line(&format!(
            "-n {} neigh replace {addr} lladdr {} dev {} nud permanent",
            self.peer_ns,
            format_mac(self.mac),
            self.peer_ifname
        ))
    }
}

impl Drop for NetNsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and so the pair.
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("NetNsPair: could not delete namespace {ns}: {e}");
            }
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// [`ip`] with the arguments split at whitespace (names here never hold any).
fn ip_line(line: &str) -> io::Result<()> {
    ip(&line.split_whitespace().collect::<Vec<_>>())
}

/// Runs `ip ARGS`, turning a non-zero exit into an error carrying its stderr.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            io::Error::new(e.kind(), "ip not found: apt-get install iproute2")
        } else {
            e
        }
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `ip netns exec NS PROG` reports a missing PROG as `exec of "PROG" failed`.
    let hint = match stderr.split_once("exec of \"") {
        Some((_, rest)) if rest.contains("No such file") => {
            let program = rest.split('"').next().unwrap_or("");
            format!(" ({program} not found: apt-get install {program})")
        }
        _ => String::new(),
    };
    Err(io::Error::other(format!("`ip {}` failed ({}): {}{hint}", args.join(" "), out.status, stderr.trim())))
}

/// A `Command` that runs `args` in namespace `ns` (`ip netns exec`, which also
/// gives it a /sys of that namespace).
pub fn command_in<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).args(args);
    cmd
}

/// Runs `args` in namespace `ns` and collects its output. Panics only if `ip`
/// cannot be started; check `status` yourself.
pub fn run_in<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Output {
    command_in(ns, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ip netns exec {ns}: {e} (apt-get install iproute2)"))
}

/// Starts `args` in namespace `ns` with stdout and stderr piped (read them, or a
/// chatty child blocks) and stdin closed. `ip netns exec` execs the command, so
/// the child's pid is the command's own: `Child::kill` reaches it.
pub fn spawn_in<S: AsRef<OsStr>>(ns: &str, args: &[S]) -> Child {
    command_in(ns, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("ip netns exec {ns}: {e} (apt-get install iproute2)"))
}

/// Runs `f` on a fresh thread that has joined namespace `ns` (`setns(2)` on
/// `/run/netns/NS`), and returns its result; a panic in `f` is re-raised here.
/// The calling thread's namespace is untouched. Sockets, netlink, and
/// `/proc/thread-self/net` in `f` see `ns`; `/sys/class/net` does not.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || {
            // SAFETY: `file` is an open namespace file; CLONE_NEWNET makes the kernel
            // check that it is a network namespace. Only this thread changes
            // namespace, and it ends when `f` returns.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns({path}): {}", io::Error::last_os_error());
            drop(file);
            f()
        });
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Sends one literal Ethernet frame out of `ifname` in namespace `ns` through an
/// `AF_PACKET` socket, bypassing the sender's stack: the way to hand the receiver
/// exactly the bytes a test wants, malformed ones included.
pub fn send_raw_frame(ns: &str, ifname: &str, frame: &[u8]) -> io::Result<()> {
    in_netns(ns, || {
        let ifindex = xdp::interface_index(ifname).map_err(io::Error::other)?;
        // SAFETY: socket(2) with constant arguments; protocol 0 means the socket
        // receives nothing, it only sends. Returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
        packet_send(fd.as_fd(), ifindex, frame)
    })
}

/// Sends the Ethernet frame `frame` as it is on `fd`, an `AF_PACKET` socket,
/// out of the interface `ifindex`, to the frame's own destination MAC
/// (`sendto` with a `sockaddr_ll`).
///
/// # Errors
///
/// `sendto`'s error, or `Other` when only part of the frame went.
pub fn packet_send(fd: BorrowedFd<'_>, ifindex: i32, frame: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    if let Some(dst) = frame.get(..6) {
        addr.sll_addr[..6].copy_from_slice(dst);
    }
    // SAFETY: `fd` is a valid socket; `frame` and `addr` are live for the call
    // and their exact sizes are passed.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    match sent {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != frame.len() => Err(io::Error::other(format!("sent {n} of {} bytes", frame.len()))),
        _ => Ok(()),
    }
}

/// How to build an [`ImpairedPair`].
#[derive(Clone, Debug)]
pub struct ImpairedPairOptions {
    /// The peer's address and prefix length, on `p0` in the peer namespace.
    pub peer_addr: (Ipv4Addr, u8),
    /// The address xsknet uses, on the xsknet side's `x0`.
    pub addr: (Ipv4Addr, u8),
    /// Put [`Self::addr`] on `x0` as a kernel address. `true` for kernel-to-kernel tests of the
    /// topology; `false` when xsknet owns the address (the kernel behind xsknet must not also
    /// answer for it).
    pub kernel_owns_addr: bool,
    /// The relay's impairment options (`xsknet-impair --help`), e.g. `["--loss", "5"]`.
    pub relay_args: Vec<String>,
}

impl Default for ImpairedPairOptions {
    fn default() -> Self {
        Self {
            peer_addr: (Ipv4Addr::new(10, 99, 0, 1), 24),
            addr: (Ipv4Addr::new(10, 99, 0, 2), 24),
            kernel_owns_addr: true,
            relay_args: Vec::new(),
        }
    }
}

/// The peer's veth in an [`ImpairedPair`] (in its peer namespace).
pub const IMPAIRED_PEER_IF: &str = "p0";
/// The xsknet side's veth in an [`ImpairedPair`] (in its xsknet namespace).
pub const IMPAIRED_IF: &str = "x0";
/// The middle namespace's ends: `p1` faces the peer (the relay's A side), `x1` xsknet (B side).
pub const IMPAIRED_MID_IFS: [&str; 2] = ["p1", "x1"];

/// Three namespaces in a row with `xsknet-impair` relaying between them:
///
/// ```text
///  peer ns: p0 (peer_addr) ── middle ns: p1 ⇄ xsknet-impair ⇄ x1 ── xsknet ns: x0 (addr)
/// ```
///
/// The relay forwards every frame at layer 2 (ARP too), applying its options, so the two
/// outer namespaces share one impaired Ethernet segment: what netem on the peer's interface
/// would do on a kernel that has netem. Direction `a2b` of the relay is peer → xsknet.
/// All veths have MTU 1500, IPv6 off (no router solicitations or MLD reports to count), and
/// transmit checksum offload off on `p0` and `x0` (the relay copies frames as they are: a
/// partial checksum or a GSO super-segment would not survive it). The interfaces are created
/// straight in their namespaces, so their short names clash with nothing; the namespaces are
/// `xsk<pid>-<n>p`, `…m` and `…x`. Drop stops the relay (SIGKILL if still running) and
/// deletes the namespaces, also when a test panics.
#[derive(Debug)]
pub struct ImpairedPair {
    peer_ns: String,
    mid_ns: String,
    ns: String,
    peer_mac: [u8; 6],
    mac: [u8; 6],
    peer_addr: Ipv4Addr,
    addr: Ipv4Addr,
    relay_bin: std::path::PathBuf,
    relay: Option<Child>,
    relay_stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stats_path: std::path::PathBuf,
    created: Vec<String>,
}

/// Where cargo put `xsknet-impair` for the test binary running now (`target/<profile>/`, the
/// parent of the test's `deps/`), if it is built there: `cargo build -p xsknet-bench --bin
/// xsknet-impair`. Tests in the bench crate have `env!("CARGO_BIN_EXE_xsknet-impair")` instead.
pub fn impair_relay_path() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("xsknet-impair");
    path.exists().then_some(path)
}

impl ImpairedPair {
    /// The default addresses (peer 10.99.0.1/24, xsknet side 10.99.0.2/24, both kernel-owned)
    /// and the relay `relay_bin` started with `relay_args`.
    ///
    /// # Errors
    /// A failed `ip`/`ethtool` command, or a relay that exits or stays silent for 10 s
    /// instead of reporting ready; whatever was created is deleted.
    pub fn new(relay_bin: &std::path::Path, relay_args: &[&str]) -> io::Result<Self> {
        let opts = ImpairedPairOptions {
            relay_args: relay_args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        };
        Self::with_options(relay_bin, &opts)
    }

    /// The topology built as `opts` says, the relay running when this returns.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_options(relay_bin: &std::path::Path, opts: &ImpairedPairOptions) -> io::Result<Self> {
        let base = unique_base();
        let mut pair = ImpairedPair {
            peer_ns: format!("{base}p"),
            mid_ns: format!("{base}m"),
            ns: format!("{base}x"),
            peer_mac: [0; 6],
            mac: [0; 6],
            peer_addr: opts.peer_addr.0,
            addr: opts.addr.0,
            relay_bin: relay_bin.to_owned(),
            relay: None,
            relay_stderr: Default::default(),
            stats_path: std::env::temp_dir().join(format!("{base}-impair.json")),
            created: Vec::new(),
        };
        // From here on, an early return drops `pair`, which deletes what exists.
        for ns in [pair.peer_ns.clone(), pair.mid_ns.clone(), pair.ns.clone()] {
            ip(&["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        let [p1, x1] = IMPAIRED_MID_IFS;
        let (peer_ns, mid_ns, ns) = (&pair.peer_ns, &pair.mid_ns, &pair.ns);
        ip_line(&format!("link add name {IMPAIRED_PEER_IF} netns {peer_ns} type veth peer name {p1} netns {mid_ns}"))?;
        ip_line(&format!("link add name {IMPAIRED_IF} netns {ns} type veth peer name {x1} netns {mid_ns}"))?;
        for (ns, ifname) in [(peer_ns, IMPAIRED_PEER_IF), (mid_ns, p1), (mid_ns, x1), (ns, IMPAIRED_IF)] {
            let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
            in_netns(ns, || match std::fs::write(&path, "1") {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()), // no IPv6 at all
                other => other,
            })?;
            ip_line(&format!("-n {ns} link set {ifname} mtu 1500 up"))?;
        }
        for ns in [peer_ns, mid_ns, ns] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let (peer_addr, prefix) = opts.peer_addr;
        ip_line(&format!("-n {peer_ns} addr add {peer_addr}/{prefix} dev {IMPAIRED_PEER_IF}"))?;
        if opts.kernel_owns_addr {
            let (addr, prefix) = opts.addr;
            ip_line(&format!("-n {ns} addr add {addr}/{prefix} dev {IMPAIRED_IF}"))?;
        }
        for (ns, ifname) in [(peer_ns, IMPAIRED_PEER_IF), (ns, IMPAIRED_IF)] {
            ip_line(&format!("netns exec {ns} ethtool -K {ifname} tx off"))?;
        }
        let mac = |ns: &str, ifname: &str| in_netns(ns, || xdp::interface_mac(ifname)).map_err(io::Error::other);
        pair.peer_mac = mac(&pair.peer_ns, IMPAIRED_PEER_IF)?;
        pair.mac = mac(&pair.ns, IMPAIRED_IF)?;
        pair.start_relay(&opts.relay_args)?;
        Ok(pair)
    }

    fn start_relay<S: AsRef<str>>(&mut self, args: &[S]) -> io::Result<()> {
        use std::io::BufRead;
        let _ = std::fs::remove_file(&self.stats_path);
        let [p1, x1] = IMPAIRED_MID_IFS;
        let mut cmd = command_in(&self.mid_ns, &[self.relay_bin.as_os_str()]);
        cmd.args(["--a-side", p1, "--b-side", x1, "--stats-json"])
            .arg(&self.stats_path)
            .args(args.iter().map(AsRef::as_ref))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("starting the relay: {e}")))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = std::sync::Arc::clone(&self.relay_stderr);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        // Collects everything the relay says (for errors and `relay_stderr`) and reports the
        // ready line; ends when the relay closes stderr.
        std::thread::spawn(move || {
            for line in io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("xsknet-impair: ready") {
                    let _ = ready_tx.send(());
                }
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        self.relay = Some(child);
        if ready_rx.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
            // Let the reader take in the last lines.
            std::thread::sleep(std::time::Duration::from_millis(50));
            return Err(io::Error::other(format!(
                "xsknet-impair did not report ready ({} {}):\n{}",
                self.relay_bin.display(),
                args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" "),
                self.relay_stderr()
            )));
        }
        Ok(())
    }

    /// Stops the relay with SIGTERM and returns the counters it wrote (`--stats-json`: a
    /// `xsknet_bench::impair::RelayStats` as JSON).
    ///
    /// # Errors
    /// No relay running, a relay that does not exit within 5 s (it is then killed) or exits
    /// with a failure, or no stats file.
    pub fn stop_relay(&mut self) -> io::Result<String> {
        let mut child = self.relay.take().ok_or_else(|| io::Error::other("no relay running"))?;
        // SAFETY: kill(2) on the pid of our own child, which has not been waited for yet, so
        // the pid cannot have been reused.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other(format!("the relay ignored SIGTERM:\n{}", self.relay_stderr())));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        if !status.success() {
            return Err(io::Error::other(format!("the relay failed ({status}):\n{}", self.relay_stderr())));
        }
        std::fs::read_to_string(&self.stats_path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.stats_path.display())))
    }

    /// Stops the relay (returning its counters, as [`Self::stop_relay`]) and starts a new one
    /// with `args`, for a test that tries several impairments on one topology.
    ///
    /// # Errors
    /// As [`Self::stop_relay`] and [`Self::new`].
    pub fn restart_relay(&mut self, args: &[&str]) -> io::Result<String> {
        let stats = self.stop_relay()?;
        self.relay_stderr.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.start_relay(args)?;
        Ok(stats)
    }

    /// The relay's process id while it runs.
    pub fn relay_pid(&self) -> Option<u32> {
        self.relay.as_ref().map(Child::id)
    }

    /// What the relay has written to stderr so far (its ready line, its counters once stopped).
    pub fn relay_stderr(&self) -> String {
        self.relay_stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Permanent neighbour entries on both sides (peer → xsknet side's MAC and back), so no
    /// ARP crosses the relay and its counters hold only the test's own frames.
    ///
    /// # Errors
    /// A failed `ip neigh replace`.
    pub fn add_static_neighbours(&self) -> io::Result<()> {
        ip_line(&format!(
            "-n {} neigh replace {} lladdr {} dev {IMPAIRED_PEER_IF} nud permanent",
            self.peer_ns,
            self.addr,
            format_mac(self.mac)
        ))?;
        ip_line(&format!(
            "-n {} neigh replace {} lladdr {} dev {IMPAIRED_IF} nud permanent",
            self.ns,
            self.peer_addr,
            format_mac(self.peer_mac)
        ))
    }

    /// The peer's namespace (holds [`IMPAIRED_PEER_IF`] with [`Self::peer_addr`]).
    pub fn peer_ns(&self) -> &str {
        &self.peer_ns
    }

    /// The middle namespace, where the relay runs.
    pub fn mid_ns(&self) -> &str {
        &self.mid_ns
    }

    /// The xsknet side's namespace (holds [`IMPAIRED_IF`]).
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The three namespaces: peer, middle, xsknet side.
    pub fn namespaces(&self) -> [&str; 3] {
        [&self.peer_ns, &self.mid_ns, &self.ns]
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Ipv4Addr {
        self.peer_addr
    }

    /// The address xsknet uses on [`IMPAIRED_IF`] (a kernel address there too when
    /// [`ImpairedPairOptions::kernel_owns_addr`]).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The peer's MAC address.
    pub fn peer_mac(&self) -> [u8; 6] {
        self.peer_mac
    }

    /// The MAC address of [`IMPAIRED_IF`].
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Runs `args` in the peer's namespace.
    pub fn run_peer(&self, args: &[&str]) -> Output {
        run_in(&self.peer_ns, args)
    }

    /// Runs `args` in the middle namespace.
    pub fn run_mid(&self, args: &[&str]) -> Output {
        run_in(&self.mid_ns, args)
    }

    /// Runs `args` in the xsknet side's namespace.
    pub fn run(&self, args: &[&str]) -> Output {
        run_in(&self.ns, args)
    }
}

impl Drop for ImpairedPair {
    fn drop(&mut self) {
        if let Some(mut child) = self.relay.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("ImpairedPair: could not delete namespace {ns}: {e}");
            }
        }
        let _ = std::fs::remove_file(&self.stats_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fit_ifnamsiz() {
        let a = unique_base();
        let b = unique_base();
        assert_ne!(a, b);
        assert!(a.starts_with("xsk"));
        assert!(a.len() < 15 && b.len() < 15);
    }

    #[test]
    fn mac_formatting() {
        assert_eq!(format_mac([2, 0, 0xab, 0, 0, 1]), "02:00:ab:00:00:01");
    }
}
