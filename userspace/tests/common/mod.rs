//! Helpers shared by the end-to-end tests that run the `xsknet` binary against
//! the kernel of a peer namespace: start and stop the server, read its JSON
//! counters, read the kernel's counters (`/proc/net/snmp`, `/proc/net/netstat`)
//! in a namespace, ping, and build raw frames with `xsknet::wire`.
//!
//! Everything here works in namespaces made by [`xsknet::testing::NetNsPair`];
//! nothing touches an interface a test did not create.
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    net::Ipv4Addr,
    path::PathBuf,
    process::{Child, ExitStatus},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use xsknet::testing::{run_in, NetNsPair, NetNsPairOptions};
use xsknet::wire::ethernet::{self, EthernetAddress, EthernetRepr};
use xsknet::wire::icmp::{self, IcmpRepr};
use xsknet::wire::ipv4::{self, Ipv4Packet};
use xsknet::wire::udp::UdpRepr;
use xsknet::wire::{build, checksum};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_xsknet");

/// The address xsknet (or the kernel, in the differential test) serves.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
/// The peer kernel's address.
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
pub const PREFIX: u8 = 24;
pub const ECHO_PORT: u16 = 7;

/// A veth pair whose peer has 10.77.0.1/24 and whose xsknet side has no kernel
/// address; IPv6 off so nothing but the test's traffic crosses.
pub fn pair() -> NetNsPair {
    NetNsPair::with_options(&NetNsPairOptions {
        peer_addr: Some((PEER_ADDR, PREFIX)),
        ipv6: false,
        ..NetNsPairOptions::default()
    })
    .expect("netns pair")
}

/// How long a freshly started xsknet may take to print its `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

static JSON_FILES: AtomicU32 = AtomicU32::new(0);

/// A running `xsknet` child in a namespace. Drop kills it (SIGKILL) if it still
/// runs, so that a failing test never leaves a process holding a namespace.
pub struct Xsknet {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    json_path: PathBuf,
    /// The `xsknet: ready: …` line, once `wait_ready` saw it.
    pub ready_line: Option<String>,
}

/// What a stopped xsknet left: exit status, output, and its JSON report.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub json: serde_json::Value,
}

impl Xsknet {
    /// Starts `xsknet echo --iface IFNAME --ip 10.77.0.2/24 --port 7 --stats-json …`
    /// in namespace `ns`, with `extra` arguments appended.
    pub fn spawn_echo(ns: &str, ifname: &str, extra: &[&str]) -> Xsknet {
        Xsknet::spawn_command(ns, "echo", ifname, ECHO_PORT, extra)
    }

    /// Starts `xsknet COMMAND --iface IFNAME --ip 10.77.0.2/24 --port PORT
    /// --stats-json …` in namespace `ns`, with `extra` arguments appended.
    pub fn spawn_command(ns: &str, command: &str, ifname: &str, port: u16, extra: &[&str]) -> Xsknet {
        Xsknet::spawn_command_env(ns, command, ifname, port, extra, &[])
    }

    /// [`Xsknet::spawn_command`] with `env` set in xsknet's environment
    /// (`XSKNET_RUN_DIR`, for one: a test's own directory of control sockets).
    pub fn spawn_command_env(
        ns: &str,
        command: &str,
        ifname: &str,
        port: u16,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Xsknet {
        let json_path = std::env::temp_dir().join(format!(
            "xsknet-test-{}-{}.json",
            std::process::id(),
            JSON_FILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&json_path);
        let ip = format!("{SERVER_ADDR}/{PREFIX}");
        let port = port.to_string();
        let json = json_path.to_string_lossy().into_owned();
        let mut args = vec![BIN, command, "--iface", ifname, "--ip", &ip, "--port", &port, "--stats-json", &json];
        args.extend_from_slice(extra);
        let mut child = xsknet::testing::command_in(ns, &args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("ip netns exec {ns}: {e} (apt-get install iproute2)"));
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let out = child.stdout.take().expect("piped stdout");
        let all = stdout.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        }));
        let mut err = child.stderr.take().expect("piped stderr");
        let all = stderr.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }));
        Xsknet { child: Some(child), lines, stdout, stderr, readers, json_path, ready_line: None }
    }

    /// Starts xsknet and waits for its `ready` line; panics with its output if it
    /// exits or stays silent.
    pub fn start_echo(ns: &str, ifname: &str, extra: &[&str]) -> Xsknet {
        Xsknet::start_command(ns, "echo", ifname, ECHO_PORT, extra)
    }

    /// [`Xsknet::spawn_command`], then waits for the `ready` line as
    /// [`Xsknet::start_echo`] does.
    pub fn start_command(ns: &str, command: &str, ifname: &str, port: u16, extra: &[&str]) -> Xsknet {
        let mut x = Xsknet::spawn_command(ns, command, ifname, port, extra);
        if let Err(e) = x.wait_ready(READY_TIMEOUT) {
            panic!("xsknet did not become ready: {e}");
        }
        x
    }

    /// The child's pid (`ip netns exec` execs, so it is xsknet's own).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Waits until stdout shows `xsknet: ready: …`. On failure, says why, with
    /// the exit status and stderr when the process ended.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) if line.starts_with("xsknet: ready:") => {
                    self.ready_line = Some(line.clone());
                    return Ok(line);
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.try_exited() {
                        return Err(format!("xsknet exited ({status}) before ready; stderr: {}", self.stderr_text()));
                    }
                    if Instant::now() >= deadline {
                        return Err(format!("no ready line within {timeout:?}; stderr so far: {}", self.stderr_text()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.wait_exit(Duration::from_secs(5));
                    return Err(format!(
                        "xsknet closed stdout before ready ({status:?}); stderr: {}",
                        self.stderr_text()
                    ));
                }
            }
        }
    }

    fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    /// Sends `sig` to the running xsknet (SIGSTOP and SIGCONT in tests of a stopped instance).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.pid() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we have not reaped yet, so the
        // pid cannot have been reused by another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
    }

    /// SIGKILL, and reap. The process gets no chance to clean up.
    pub fn kill9(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL);
        let status = self.wait_exit(Duration::from_secs(5)).expect("xsknet survived SIGKILL for 5 s");
        self.child = None;
        status
    }

    /// SIGINT, wait for the exit (at most 10 s), and collect the report.
    pub fn stop(self) -> Finished {
        self.stop_with(libc::SIGINT)
    }

    /// Signal `sig` (SIGINT, SIGTERM, SIGHUP: each stops xsknet cleanly), wait
    /// for the exit (at most 10 s), and collect the report.
    pub fn stop_with(mut self, sig: libc::c_int) -> Finished {
        self.signal(sig);
        let Some(status) = self.wait_exit(Duration::from_secs(10)) else {
            panic!(
                "xsknet did not exit within 10 s of signal {sig}; stdout:\n{}\nstderr:\n{}",
                self.stdout_text(),
                self.stderr_text()
            );
        };
        self.child = None;
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout = self.stdout_text();
        let stderr = self.stderr_text();
        let text = std::fs::read_to_string(&self.json_path).unwrap_or_else(|e| {
            panic!("reading {}: {e} ({status}); stdout:\n{stdout}\nstderr:\n{stderr}", self.json_path.display())
        });
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", self.json_path.display()));
        Finished { status, stdout, stderr, json }
    }
}

impl Drop for Xsknet {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.json_path);
    }
}

impl Finished {
    /// A counter from the JSON `counters` object; panics if it is missing.
    pub fn counter(&self, name: &str) -> u64 {
        self.json["counters"][name].as_u64().unwrap_or_else(|| panic!("counter {name} missing from the JSON report"))
    }

    /// Checks what every stop must show: exit status 0, the summary's "all
    /// accounted for", and the JSON `frames` parts adding up to `total`.
    pub fn assert_clean_exit(&self) {
        assert!(self.status.success(), "xsknet exited with {}; stderr:\n{}", self.status, self.stderr);
        let frames_line = self
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("frames:"))
            .unwrap_or_else(|| panic!("no frames line in the summary:\n{}", self.stdout));
        assert!(frames_line.contains("(all accounted for)"), "frames not all accounted for: {frames_line}");
        let f = &self.json["frames"];
        let get = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("frames.{k} missing: {f}"));
        let parts = ["in_kernel", "free_local", "free_shared", "in_socks", "awaiting_neighbour", "tx_backlog"];
        let sum: u64 = parts.iter().map(|k| get(k)).sum();
        assert_eq!(sum, get("total"), "JSON frames do not add up: {f}");
        assert!(get("total") > 0, "{f}");
        // The kernel handed back only addresses we gave it, and no more
        // frames than it held: the device's own checks are in the JSON, zero.
        let x = &self.json["xdp_statistics"];
        for k in ["XskRxInvalidAddr", "XskCqInvalidAddr", "XskInKernelUnderflow"] {
            assert_eq!(x[k].as_u64(), Some(0), "xdp_statistics.{k}: {x}");
        }
        for k in ["XskRxInvalidAddr", "XskCqInvalidAddr", "XskInKernelUnderflow"] {
            assert!(self.stdout.lines().any(|l| l.contains(k)), "{k} not in the summary:\n{}", self.stdout);
        }
    }
}

/// `ping -n -q -c COUNT -i INTERVAL -W WAIT ADDR` in `ns`: (transmitted, received).
pub fn ping(ns: &str, addr: Ipv4Addr, count: u32, interval: &str, wait: &str) -> (u32, u32) {
    let out =
        run_in(ns, &["ping", "-n", "-q", "-c", &count.to_string(), "-i", interval, "-W", wait, &addr.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout);
    // "5 packets transmitted, 5 received, 0% packet loss, time 804ms"
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("ping printed no statistics: {out:?}"));
    let num = |word: &str| -> u32 {
        let (before, _) = line.split_once(word).unwrap_or_else(|| panic!("{line:?}: no {word:?}"));
        before
            .rsplit(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{line:?}: no number before {word:?}"))
    };
    (num(" packets transmitted"), num(" received"))
}

/// One ping at a time until one is answered or `timeout` passes: attaching an
/// XDP program may bounce the link, so the first packet can be lost
/// (docs/veth-and-af_xdp.md). Returns how many were sent, or panics.
pub fn warm_up_ping(ns: &str, addr: Ipv4Addr, timeout: Duration) -> u32 {
    let deadline = Instant::now() + timeout;
    let mut sent = 0;
    loop {
        let (tx, rx) = ping(ns, addr, 1, "0.2", "1");
        sent += tx;
        if rx == 1 {
            return sent;
        }
        assert!(Instant::now() < deadline, "no ping reply from {addr} within {timeout:?} ({sent} sent)");
    }
}

/// The ip link details of `ifname` in `ns`.
pub fn link_details(ns: &str, ifname: &str) -> String {
    let out = run_in(ns, &["ip", "-d", "link", "show", "dev", ifname]);
    assert!(out.status.success(), "ip link show: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `ip -d link` shows an XDP program: an `xdp…` flag on the first line
/// or a `prog/xdp` line.
pub fn shows_xdp(details: &str) -> bool {
    let first = details.lines().next().unwrap_or("");
    first.split_whitespace().any(|w| w.starts_with("xdp")) || details.contains("prog/xdp")
}

/// The kernel's SNMP counters in namespace `ns`, with nstat's names
/// (`Ip`+`InReceives` → `IpInReceives`, `IpExt`+`InCsumErrors` → …), from
/// `/proc/net/snmp` and `/proc/net/netstat` read by a process in `ns`.
pub fn kernel_counters(ns: &str) -> BTreeMap<String, i64> {
    let mut counters = BTreeMap::new();
    for file in ["/proc/net/snmp", "/proc/net/netstat"] {
        let out = run_in(ns, &["cat", file]);
        assert!(out.status.success(), "cat {file}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        parse_proc_net(&text, &mut counters);
    }
    counters
}

/// The kernel's counts for one link in `ns` (`ip -s -j link show`):
/// `stats64.tx.dropped` and `stats64.rx.dropped`. On a veth pair whose
/// other end has an XDP program, `veth_xmit` drops a frame when that end's
/// NAPI ring (`VETH_RING_SIZE`, 256) is full and counts it in the sending
/// end's `tx_dropped` (drivers/net/veth.c): a frame lost before any XDP
/// program ran.
pub fn link_drops(ns: &str, ifname: &str) -> (i64, i64) {
    let out = run_in(ns, &["ip", "-s", "-j", "link", "show", "dev", ifname]);
    assert!(out.status.success(), "ip -s -j link show dev {ifname}: {out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    let stats = &json[0]["stats64"];
    let get = |dir: &str| stats[dir]["dropped"].as_i64().unwrap_or_else(|| panic!("no {dir} dropped: {json}"));
    (get("tx"), get("rx"))
}

/// Parses the header-line / value-line pairs of `/proc/net/snmp` or
/// `/proc/net/netstat` into `counters`.
pub fn parse_proc_net(text: &str, counters: &mut BTreeMap<String, i64>) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let [names, values] = pair else { continue };
        let (Some((section, names)), Some((section2, values))) = (names.split_once(':'), values.split_once(':')) else {
            continue;
        };
        assert_eq!(section, section2, "unpaired lines in /proc/net: {pair:?}");
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = value.parse::<i64>() {
                counters.insert(format!("{section}{name}"), v);
            }
        }
    }
}

// ---------------------------------------------------------------- frames

/// Ethernet header + `payload`.
pub fn eth_frame(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr { dst: EthernetAddress(dst), src: EthernetAddress(src), ethertype };
    build::ethernet(&eth, payload)
}

/// A UDP datagram (header + payload) with a correct checksum.
pub fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    build::udp(src, dst, &UdpRepr { src_port: sport, dst_port: dport, payload_len: payload.len() }, payload)
}

/// An ICMP echo request with a correct checksum.
pub fn icmp_echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    build::icmp(&IcmpRepr::echo(icmp::msg_type::ECHO_REQUEST, ident, seq), data)
}

/// An IPv4 packet: a header with `options` (a multiple of 4 bytes), a correct
/// header checksum, DF set, TTL 64, then `payload`.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, ident: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0, "IP options come in 32-bit words");
    build::ipv4_with_options(&build::ipv4_repr(src, dst, protocol, ident), options, payload)
}

/// Recomputes the header checksum of the IPv4 header at the start of `p` (over
/// its IHL, at least 20 bytes, at most `p.len()`) after a test changed a field,
/// even one that makes the header invalid (IHL below 5 or beyond the packet).
pub fn fix_ipv4_checksum(p: &mut [u8]) {
    let hl = (usize::from(p[0] & 0x0f) * 4).clamp(ipv4::MIN_HEADER_LEN, p.len());
    let mut packet = Ipv4Packet::new_unchecked(&mut p[..]);
    packet.set_checksum(0);
    let c = checksum::checksum(&p[..hl]);
    Ipv4Packet::new_unchecked(p).set_checksum(c);
}

/// The payload byte at `i` of a datagram of `size` bytes: differs by size and
/// position, so a shifted, truncated or stale echo never compares equal.
pub fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i.wrapping_mul(31) ^ size.wrapping_mul(7) ^ (size >> 8)) as u8).collect()
}

// ---------------------------------------------------------------- raw frames

/// An `AF_PACKET` raw socket (`SOCK_RAW`: whole Ethernet frames) opened in
/// namespace `ns` and bound to `ifname` for EtherType `proto` (host order:
/// `libc::ETH_P_ALL as u16` for every frame, `ethertype::ARP`), with the
/// interface's index, which a `sendto` address needs. The socket stays in
/// `ns` whichever thread uses it: the tests that write frames by hand, and
/// read the replies, bypassing the sender's kernel.
pub fn packet_socket(ns: &str, ifname: &str, proto: u16) -> (std::os::fd::OwnedFd, i32) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let ifname = ifname.to_owned();
    xsknet::testing::in_netns(ns, move || {
        let ifindex = xsknet::xdp::interface_index(&ifname).expect("interface index");
        let proto = proto.to_be();
        // SAFETY: socket(2) with constant arguments; returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) };
        assert!(fd >= 0, "AF_PACKET socket: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `fd` is a valid socket; `addr` is a live sockaddr_ll and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
        (fd, ifindex as i32)
    })
}

/// Sends the Ethernet frame `frame` as it is on `fd`, a [`packet_socket`]
/// bound to the interface `ifindex`, to the frame's own destination MAC;
/// panics unless the whole frame went.
pub fn packet_send(fd: &std::os::fd::OwnedFd, ifindex: i32, frame: &[u8]) {
    use std::os::fd::AsFd;
    if let Err(e) = xsknet::testing::packet_send(fd.as_fd(), ifindex, frame) {
        panic!("sendto: {e}");
    }
}

// ---------------------------------------------------------------- ARP probe

/// Asks for `target` with ARP from `ifname` in `ns` (sender `src_mac`/`src_ip`,
/// sent through an `AF_PACKET` socket, bypassing the sender's kernel) until a
/// reply from `target` arrives; returns its MAC, or `None` after `timeout`.
///
/// ARP is in none of the IP, ICMP and UDP counters, on either stack: this is
/// how a test learns that the path works (the link is up after the XDP attach,
/// the program redirects, the stack answers) without changing what it compares.
pub fn arp_probe(
    ns: &str,
    ifname: &str,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
    timeout: Duration,
) -> Option<[u8; 6]> {
    use std::os::fd::AsRawFd;
    use xsknet::wire::arp::{ArpOperation, ArpPacket, ArpRepr};
    use xsknet::wire::ethernet::ethertype;

    let request = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: EthernetAddress(src_mac),
        sender_ip: src_ip,
        target_hw: EthernetAddress([0; 6]),
        target_ip: target,
    };
    let frame = eth_frame([0xff; 6], src_mac, ethertype::ARP, &build::arp(&request));
    let (fd, ifindex) = packet_socket(ns, ifname, ethertype::ARP);
    // Where the requests go: the broadcast address on the interface.
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ethertype::ARP.to_be();
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let addr_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    let addr_ptr = (&addr as *const libc::sockaddr_ll).cast::<libc::sockaddr>();
    let tv = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
    // SAFETY: `tv` is a live timeval and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
    let deadline = Instant::now() + timeout;
    let mut next_send = Instant::now();
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        if Instant::now() >= next_send {
            // SAFETY: `fd` is a valid socket; `frame` and `addr` are live for the
            // call and their exact sizes are passed.
            let sent =
                unsafe { libc::sendto(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0, addr_ptr, addr_len) };
            assert_eq!(sent, frame.len() as isize, "sendto: {}", std::io::Error::last_os_error());
            next_send = Instant::now() + Duration::from_millis(200);
        }
        // SAFETY: `fd` is a valid socket and `buf` is live and writable for
        // its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < ethernet::HEADER_LEN as isize {
            continue; // timeout, or a runt
        }
        let got = &buf[..n as usize];
        if let Ok(p) = ArpRepr::parse(&ArpPacket::new_unchecked(&got[ethernet::HEADER_LEN..])) {
            if p.operation == ArpOperation::Reply && p.sender_ip == target {
                return Some(p.sender_hw.0);
            }
        }
    }
    None
}

/// Prints Linux's and xsknet's value of each counter in `names` side by side
/// (marking those that differ) and returns the ones that differ. Panics if
/// xsknet lacks one: a counter it does not keep cannot be compared.
pub fn counter_table(
    linux: &BTreeMap<String, i64>,
    xsk: &BTreeMap<String, i64>,
    names: &[&'static str],
) -> Vec<&'static str> {
    let mut differ = Vec::new();
    eprintln!("\n  {:<30} {:>8} {:>8}", "counter", "linux", "xsknet");
    for &name in names {
        let l = linux.get(name).copied().unwrap_or(0);
        let x = xsk.get(name).copied().unwrap_or_else(|| panic!("xsknet has no counter {name}"));
        let mark = if l == x { "" } else { "  <-- differs" };
        eprintln!("  {name:<30} {l:>8} {x:>8}{mark}");
        if l != x {
            differ.push(name);
        }
    }
    differ
}
