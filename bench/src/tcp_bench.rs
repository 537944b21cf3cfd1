//! The TCP section of `make bench` (issue 10): xsknet's TCP beside the
//! kernel's, on the side-by-side benchmark's veth pair and cores (clients on
//! CPU 0 in the peer namespace, servers on CPU 1), in the same run.
//!
//! * **Requests**: `wrk` (keep-alive, one thread, [`CONNECTIONS`] connections)
//!   and `ab` (a new connection per request, [`CONNECTIONS`] at a time) fetching a
//!   1 KiB file from `xsknet http` and from nginx (Debian's, one worker, its
//!   configuration written to the run's temporary directory): requests per
//!   second and latency percentiles.
//! * **Request/response latency**: `baseline tcp-rr`, one connection, 64-byte
//!   requests on a busy-polled kernel socket, round trips in an HdrHistogram,
//!   against `xsknet echo` (run to completion, and threaded) and `baseline
//!   tcp-echo` (the kernel, busy-polling and blocking).
//! * **Bulk send**: curl fetching a 16 MiB file from `xsknet http` and from
//!   nginx with GSO on and off on the server's veth (xsknet sends MTU-sized
//!   frames: GSO off is the like-for-like row), Gbit/s.
//! * **Bulk receive**: `iperf3` against an `iperf3 -s` (the kernel), and
//!   `baseline tcp-send` against `baseline tcp-sink` (the kernel) and `xsknet
//!   sink` (which counts the bytes): Gbit/s and CPU time per GB, of the server
//!   process and of both cores.
//!
//! Each row records its commands; [`TcpResults`] goes to the run's JSON under
//! `tcp`, [`markdown`] gives the tables and the goals of issue 10, [`plot`]
//! the request/response percentile plot.

use crate::median;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use xsknet::testing::run_in;

use crate::nsproc::NsProc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connections of `wrk` and concurrency of `ab`.
pub const CONNECTIONS: u32 = 16;
/// The HTTP port of `xsknet http` and nginx.
pub const HTTP_PORT: u16 = 80;
/// The echo port (`xsknet echo`, `baseline tcp-echo`).
pub const ECHO_PORT: u16 = 7;
/// The discard port (`xsknet sink`, `baseline tcp-sink`).
pub const SINK_PORT: u16 = 9;
/// The `iperf3 -s` port (its default).
pub const IPERF_PORT: u16 = 5201;
/// The small response body, bytes.
pub const SMALL_FILE: usize = 1024;
/// The bulk-send file, bytes (16 MiB).
pub const BIG_FILE: usize = 16 << 20;
/// Request (and answer) size of the request/response rows, bytes.
pub const RR_SIZE: usize = 64;

/// Where and how long the TCP section runs.
pub struct TcpBench<'a> {
    /// The servers' namespace and their interface (a veth), and the clients' namespace and
    /// theirs.
    pub ns: &'a str,
    pub ifname: &'a str,
    pub peer_ns: &'a str,
    pub peer_ifname: &'a str,
    /// The run's temporary directory (configurations, files served, logs).
    pub dir: &'a Path,
    /// Where `xsknet` and `baseline` are.
    pub bin: &'a Path,
    /// The servers' address (the kernel's on `ifname()` for the kernel rows, xsknet's otherwise).
    pub server_addr: Ipv4Addr,
    /// The clients' address: the servers' next hop to the SYN flood's spoofed sources.
    pub peer_addr: Ipv4Addr,
    /// The clients' CPU and the servers' CPU.
    pub client_cpu: &'a str,
    pub server_cpu: &'a str,
    /// Small counts (`--quick`): the section stays under a minute.
    pub quick: bool,
    /// Seconds of each wrk and request/response row.
    pub secs: f64,
}

/// The server veth's transmit offloads for a bulk-send row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Offload {
    /// `tx on` and GSO on: the veth's defaults.
    Tso,
    /// `tx off` and GSO on: the section's setting.
    Gso,
    /// `tx off` and `gso off`: TCP builds MTU-sized segments.
    Off,
}

/// One row of a table: who served, who asked, how, and what came out.
#[derive(Serialize, Clone, Debug)]
pub struct TcpRow {
    /// The server: `nginx`, `xsknet-http`, `kernel-tcp-echo-busy`, …
    pub server: String,
    /// What the row is, as the tables print it.
    pub what: String,
    /// The commands that ran, server first.
    pub setup: Vec<String>,
    /// The figures (names with units: `requests_per_s`, `p50_us`, `gbit_per_s`, …).
    pub metrics: BTreeMap<String, f64>,
    /// The clients' and servers' own reports.
    pub detail: Value,
}

impl TcpRow {
    /// A figure of the row, if measured.
    pub fn get(&self, k: &str) -> Option<f64> {
        self.metrics.get(k).copied()
    }
}

/// The TCP section's results (JSON key `tcp`).
#[derive(Serialize, Default, Debug)]
pub struct TcpResults {
    /// Versions of the outside tools and the settings of the section.
    pub setup: Value,
    /// wrk (keep-alive) and ab (a connection per request).
    pub requests: Vec<TcpRow>,
    /// One connection, 64-byte requests.
    pub request_response: Vec<TcpRow>,
    /// curl fetching the 16 MiB file.
    pub bulk_send: Vec<TcpRow>,
    /// A kernel client sending to a sink.
    pub bulk_receive: Vec<TcpRow>,
    /// curl fetching a file through `xsknet-impair` (loss and delay), from nginx and `xsknet http`.
    pub loss: Vec<TcpRow>,
    /// Legitimate connects alone and beside a SYN flood, to nginx and `xsknet http`.
    pub syn_flood: Vec<TcpRow>,
    /// Rows not measured, with why (a tool missing).
    pub skipped: Vec<String>,
}

/// A program's version line, or `None` when it is not installed.
fn version(cmd: &[&str]) -> Option<String> {
    let out = Command::new(cmd[0]).args(&cmd[1..]).stdin(Stdio::null()).output().ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines().map(str::trim).find(|l| !l.is_empty()).map(String::from)
}

/// Whether `name` is a program on PATH.
fn have(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file() || d.join(name).is_symlink()))
        || Path::new("/usr/sbin").join(name).exists()
}

/// The value of the `key` line's number in a tool's text output ("Requests/sec:  62400.12").
fn number_after(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    line.trim_start()[key.len()..].split_whitespace().next()?.parse().ok()
}

/// wrk's duration ("262.00us", "1.20ms", "2.00s") in µs.
fn wrk_duration_us(s: &str) -> Option<f64> {
    let (n, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60e6)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    n.parse::<f64>().ok().map(|v| v * mult)
}

/// What `wrk --latency` printed: requests/s, the latency distribution's percentiles (µs),
/// requests, socket errors and non-2xx/3xx responses.
pub fn parse_wrk(text: &str) -> Result<BTreeMap<String, f64>, BoxError> {
    let mut m = BTreeMap::new();
    let rps = number_after(text, "Requests/sec:").ok_or_else(|| format!("wrk: no Requests/sec in:\n{text}"))?;
    m.insert("requests_per_s".to_string(), rps);
    let mut in_dist = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            let mut w = t.split_whitespace();
            match (w.next().and_then(|p| p.strip_suffix('%')), w.next().and_then(wrk_duration_us)) {
                (Some(p), Some(us)) => {
                    m.insert(format!("p{p}_us"), us);
                }
                _ => in_dist = false,
            }
        }
        if let Some(rest) = t.strip_suffix(" read").and_then(|r| r.split_once(" requests in ")) {
            if let Ok(n) = rest.0.trim().parse::<f64>() {
                m.insert("requests".into(), n);
            }
        }
        if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            let errs: f64 = rest.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<f64>().ok()).sum();
            m.insert("socket_errors".into(), errs);
        }
        if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            m.insert("non_2xx".into(), rest.trim().parse().unwrap_or(f64::NAN));
        }
    }
    m.entry("socket_errors".into()).or_insert(0.0);
    m.entry("non_2xx".into()).or_insert(0.0);
    if !m.contains_key("p50_us") {
        return Err(format!("wrk: no latency distribution in:\n{text}").into());
    }
    Ok(m)
}

/// What `ab` printed (requests/s, complete and failed requests, non-2xx responses) and
/// the percentiles of its `-e` CSV ("Percentage served,Time in ms"), in µs.
pub fn parse_ab(text: &str, csv: &str) -> Result<BTreeMap<String, f64>, BoxError> {
    let mut m = BTreeMap::new();
    let rps =
        number_after(text, "Requests per second:").ok_or_else(|| format!("ab: no Requests per second in:\n{text}"))?;
    m.insert("requests_per_s".to_string(), rps);
    m.insert("requests".into(), number_after(text, "Complete requests:").unwrap_or(0.0));
    m.insert("failed".into(), number_after(text, "Failed requests:").unwrap_or(0.0));
    m.insert("non_2xx".into(), number_after(text, "Non-2xx responses:").unwrap_or(0.0));
    for line in csv.lines().skip(1) {
        let Some((p, ms)) = line.split_once(',') else { continue };
        let (Ok(p), Ok(ms)) = (p.trim().parse::<u32>(), ms.trim().parse::<f64>()) else { continue };
        if matches!(p, 50 | 90 | 99 | 100) {
            let key = if p == 100 { "max_us".to_string() } else { format!("p{p}_us") };
            m.insert(key, ms * 1000.0);
        }
    }
    if !m.contains_key("p50_us") {
        return Err(format!("ab: no percentiles in its CSV:\n{csv}").into());
    }
    Ok(m)
}

/// The last line of `log` that is a JSON object (the baseline programs' reports).
fn last_json(log: &str, who: &str) -> Result<Value, BoxError> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("{who}: no JSON report in:\n{log}"))?;
    Ok(serde_json::from_str(line)?)
}

/// The JSON document that starts at the first '{' of `log` (`iperf3 -J`).
fn whole_json(log: &str, who: &str) -> Result<Value, BoxError> {
    let at = log.find('{').ok_or_else(|| format!("{who}: no JSON in:\n{log}"))?;
    Ok(serde_json::from_str(&log[at..]).map_err(|e| format!("{who}: {e} in:\n{log}"))?)
}

/// Busy and total jiffies of each CPU, from /proc/stat (busy: all but idle and iowait).
fn cpu_jiffies() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

/// User plus system CPU time of process `pid` (its threads included), seconds.
fn process_cpu_s(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(ticks as f64 / hz)
}

/// What a transfer cost: the server process's CPU and both cores' busy time, in seconds.
struct CpuMark {
    machine: Vec<(u64, u64)>,
    server: Option<f64>,
}

impl CpuMark {
    fn now(server_pid: u32) -> CpuMark {
        CpuMark { machine: cpu_jiffies(), server: process_cpu_s(server_pid) }
    }

    /// (server CPU s, busy CPU s of all cores) since `self`.
    fn since(&self, server_pid: u32) -> (Option<f64>, f64) {
        // SAFETY: as in `process_cpu_s`.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let now = cpu_jiffies();
        let busy: u64 = now.iter().zip(&self.machine).map(|(a, b)| a.0.saturating_sub(b.0)).sum();
        let server = match (self.server, process_cpu_s(server_pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        (server, busy as f64 / hz)
    }
}

impl TcpBench<'_> {
    fn exe(&self, name: &str) -> String {
        self.bin.join(name).to_string_lossy().into_owned()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn url(&self, file: &str) -> String {
        format!("http://{}:{HTTP_PORT}/{file}", self.server_addr)
    }

    /// The kernel on the server's side has the address only for the kernel rows.
    fn kernel_addr(&self, on: bool) -> Result<(), BoxError> {
        let cidr = format!("{}/24", self.server_addr);
        let out = run_in(self.ns, &["ip", "addr", if on { "add" } else { "del" }, &cidr, "dev", self.ifname]);
        if on && !out.status.success() {
            return Err(format!("ip addr add: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(())
    }

    /// The server veth's transmit offloads (`ethtool -K IF tx on|off gso on|off`); what
    /// `ethtool -k` then says of checksumming and segmentation offload.
    fn offload(&self, tx: bool, gso: bool) -> Result<String, BoxError> {
        self.ethtool_k(&[("tx", tx), ("gso", gso)])?;
        let k = run_in(self.ns, &["ethtool", "-k", self.ifname]);
        let text = String::from_utf8_lossy(&k.stdout);
        let keep = ["tx-checksumming:", "tcp-segmentation-offload:", "generic-segmentation-offload:"];
        Ok(text.lines().map(str::trim).filter(|l| keep.iter().any(|k| l.starts_with(k))).collect::<Vec<_>>().join(", "))
    }

    /// GRO on the server's veth (`ethtool -K IF gro on|off`); the command.
    fn gro(&self, on: bool) -> Result<String, BoxError> {
        self.ethtool_k(&[("gro", on)])
    }

    /// `ethtool -K IF FEATURE on|off ...` on the server's veth; the command.
    fn ethtool_k(&self, features: &[(&str, bool)]) -> Result<String, BoxError> {
        let mut args = vec!["ethtool", "-K", self.ifname];
        for &(f, on) in features {
            args.extend([f, if on { "on" } else { "off" }]);
        }
        let out = run_in(self.ns, &args);
        if !out.status.success() {
            return Err(format!("ethtool -K {}: {}", self.ifname, String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(args.join(" "))
    }

    /// Waits until a kernel socket listens on `port` in the server's namespace (`ss -ltn`).
    fn wait_listening(&self, p: &mut NsProc, port: u16, who: &str) -> Result<(), BoxError> {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let out = run_in(self.ns, &["ss", "-Hltn", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return Ok(());
            }
            if let Some(s) = p.exited() {
                return Err(format!("{who} exited ({s}) before listening:\n{}", p.log()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{who} not listening on port {port} after 10 s:\n{}", p.log()).into())
    }

    /// Runs a client in the peer namespace on the client CPU until it exits; its output.
    fn client(&self, args: &[String], name: &str, timeout: Duration) -> Result<String, BoxError> {
        let p = NsProc::spawn(self.peer_ns, self.client_cpu, args, name, self.dir)?;
        p.wait_exit(timeout)
    }

    /// A server on the server CPU in the server's namespace, started and ready.
    fn server(&self, server: &str) -> Result<(NsProc, Vec<String>), BoxError> {
        let ifname = self.ifname.to_string();
        let cidr = format!("{}/24", self.server_addr);
        let xsknet = |app: &str, port: u16, extra: &[String]| {
            let mut v = vec![
                self.exe("xsknet"),
                app.to_string(),
                "--iface".into(),
                ifname.clone(),
                "--ip".into(),
                cidr.clone(),
                "--port".into(),
                port.to_string(),
            ];
            v.extend_from_slice(extra);
            v.extend(server_args());
            v.extend(["--stats-json".to_string(), self.path(&format!("{server}.json"))]);
            v
        };
        let bind = |port: u16| format!("{}:{port}", self.server_addr);
        let (args, port): (Vec<String>, Option<u16>) = match server {
            "xsknet-http" => (
                xsknet(
                    "http",
                    HTTP_PORT,
                    &["--root".into(), self.path("www"), "--gateway".into(), self.peer_addr.to_string()],
                ),
                None,
            ),
            "xsknet-echo" => (xsknet("echo", ECHO_PORT, &[]), None),
            "xsknet-echo-threaded" => (xsknet("echo", ECHO_PORT, &["--threaded".into()]), None),
            "xsknet-sink" => (xsknet("sink", SINK_PORT, &[]), None),
            "nginx" => (
                vec![
                    "nginx".into(),
                    "-c".into(),
                    self.path("nginx.conf"),
                    "-p".into(),
                    self.path("nginx"),
                    "-e".into(),
                    self.path("nginx/error.log"),
                ],
                Some(HTTP_PORT),
            ),
            "kernel-tcp-echo-busy" | "kernel-tcp-echo-blocking" => (
                vec![
                    self.exe("baseline"),
                    "tcp-echo".into(),
                    "--bind".into(),
                    bind(ECHO_PORT),
                    "--mode".into(),
                    if server.ends_with("busy") { "busy" } else { "blocking" }.into(),
                ],
                None,
            ),
            "kernel-tcp-sink" | "kernel-tcp-sink-gro" => {
                (vec![self.exe("baseline"), "tcp-sink".into(), "--bind".into(), bind(SINK_PORT)], None)
            }
            "iperf3" => (
                vec![
                    "iperf3".into(),
                    "-s".into(),
                    "-B".into(),
                    self.server_addr.to_string(),
                    "-p".into(),
                    IPERF_PORT.to_string(),
                ],
                Some(IPERF_PORT),
            ),
            other => return Err(format!("unknown TCP server {other}").into()),
        };
        let mut p = NsProc::spawn(self.ns, self.server_cpu, &args, server, self.dir)?;
        match port {
            Some(port) => self.wait_listening(&mut p, port, server)?,
            None => p.wait_ready(Duration::from_secs(10))?,
        }
        let shown = format!("taskset -c {} {}", self.server_cpu, args.join(" "));
        Ok((p, vec![shown.replace(&self.dir.to_string_lossy().into_owned(), "$TMP")]))
    }

    /// Stops a server; an xsknet server's `--stats-json` report (or its log's last JSON line).
    fn stop_server(&self, p: NsProc, server: &str) -> Value {
        let log = p.stop().unwrap_or_default();
        if server.starts_with("xsknet") {
            let path = self.dir.join(format!("{server}.json"));
            let v: Value =
                std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null);
            let _ = std::fs::remove_file(&path);
            return json!({
                "application": v["application"], "http": v["http"], "softirq_busy_share": v["softirq"]["busy_share"],
                "tcp_sockets_by_state": v["tcp_sockets_by_state"], "counters": tcp_counters(&v["counters"]),
            });
        }
        last_json(&log, server).unwrap_or(Value::Null)
    }

    /// Writes the files served and nginx's configuration (the run's own; the system's is
    /// never read: `-c`, `-p` and `-e` point here).
    fn prepare(&self) -> Result<(), BoxError> {
        let www = self.dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::create_dir_all(self.dir.join("nginx/tmp"))?;
        let mut small = vec![0u8; SMALL_FILE];
        for (i, b) in small.iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
        std::fs::write(www.join("1k.bin"), &small)?;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let big: Vec<u8> = (0..BIG_FILE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(www.join("16m.bin"), &big)?;
        std::fs::write(www.join("loss.bin"), &big[..self.loss_bytes().min(BIG_FILE)])?;
        if self.loss_bytes() > BIG_FILE {
            let mut f = std::fs::OpenOptions::new().append(true).open(www.join("loss.bin"))?;
            for _ in 1..self.loss_bytes() / BIG_FILE {
                std::io::Write::write_all(&mut f, &big)?;
            }
        }
        let cpu: usize = self.server_cpu.parse().unwrap_or(1);
        let mask = format!("1{}", "0".repeat(cpu));
        let d = self.dir.to_string_lossy();
        let conf = format!(
            "# side-by-side's nginx: one worker pinned to CPU {cpu}, in the run's temporary directory.\n\
             user root;\nworker_processes 1;\nworker_cpu_affinity {mask};\ndaemon off;\nmaster_process on;\n\
             pid {d}/nginx/nginx.pid;\nerror_log {d}/nginx/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  open_file_cache max=1000;\n  open_file_cache_valid 1s;\n  \
             default_type application/octet-stream;\n  sendfile on;\n  tcp_nopush on;\n  \
             tcp_nodelay on;\n  keepalive_timeout 65;\n  keepalive_requests 1000000;\n  \
             client_body_temp_path {d}/nginx/tmp/body;\n  proxy_temp_path {d}/nginx/tmp/proxy;\n  \
             fastcgi_temp_path {d}/nginx/tmp/fastcgi;\n  uwsgi_temp_path {d}/nginx/tmp/uwsgi;\n  \
             scgi_temp_path {d}/nginx/tmp/scgi;\n  \
             server {{\n    listen {addr}:{HTTP_PORT} backlog=511;\n    root {d}/www;\n  }}\n}}\n",
            addr = self.server_addr,
        );
        std::fs::write(self.dir.join("nginx.conf"), conf)?;
        // The clients' side: many short connections (ab) must not run out of ports.
        for (k, v) in [("net.ipv4.ip_local_port_range", "1024 65535"), ("net.ipv4.tcp_tw_reuse", "1")] {
            let _ = run_in(self.peer_ns, &["sysctl", "-qw", &format!("{k}={v}")]);
        }
        Ok(())
    }

    /// Runs the whole section. A missing tool skips its rows with a note; anything else
    /// that fails fails the run.
    ///
    /// # Errors
    ///
    /// A server that does not start, a client that fails, or output that cannot be read.
    pub fn run(&self, stopped: &dyn Fn() -> Result<(), BoxError>) -> Result<TcpResults, BoxError> {
        self.prepare()?;
        let mut r = TcpResults::default();
        let cc = self.section_congctl()?;
        let result = self.run_rows(&mut r, stopped);
        self.section_congctl_off();
        result?;
        r.setup["congestion_control"] = cc.clone();
        for rows in [&mut r.requests, &mut r.request_response, &mut r.bulk_send, &mut r.bulk_receive, &mut r.syn_flood]
        {
            stamp_congctl(rows, &cc);
        }
        Ok(r)
    }

    /// The rows of [`Self::run`], into `r`.
    fn run_rows(&self, r: &mut TcpResults, stopped: &dyn Fn() -> Result<(), BoxError>) -> Result<(), BoxError> {
        let tools = ["nginx", "wrk", "ab", "curl", "iperf3", "hping3"];
        for t in tools {
            if !have(t) {
                r.skipped.push(format!("{t} not installed (`make deps`): its rows are not measured"));
            }
        }
        r.setup = json!({
            "clients": format!("peer namespace, CPU {}", self.client_cpu),
            "servers": format!("server namespace, CPU {}", self.server_cpu),
            "connections": CONNECTIONS, "secs": self.secs, "small_file_bytes": SMALL_FILE, "big_file_bytes": BIG_FILE,
            "rr_size_bytes": RR_SIZE, "ab_requests": self.ab_requests(), "bulk_receive_bytes": self.bulk_bytes(),
            "curl_runs": self.curl_runs(),
            "versions": {
                "nginx": version(&["nginx", "-v"]), "wrk": version(&["wrk", "-v"]), "ab": version(&["ab", "-V"]),
                "curl": version(&["curl", "--version"]), "iperf3": version(&["iperf3", "--version"]),
                "hping3": version(&["hping3", "--version"]),
            },
            "server_veth": "tx checksum offload off, GSO on, unless a bulk-send row says otherwise (its detail.server_veth: what ethtool -k said)",
        });
        eprintln!("== tcp: requests (wrk keep-alive, ab a connection per request), 1 KiB responses");
        for server in ["nginx", "xsknet-http"] {
            stopped()?;
            if server == "nginx" && !have("nginx") {
                continue;
            }
            r.requests.extend(self.requests(server)?);
        }
        eprintln!("== tcp: request/response, one connection, {RR_SIZE} bytes, {} s each", self.secs);
        for server in ["kernel-tcp-echo-busy", "xsknet-echo", "kernel-tcp-echo-blocking", "xsknet-echo-threaded"] {
            stopped()?;
            r.request_response.push(self.rr(server)?);
        }
        eprintln!("== tcp: bulk send, curl fetching {} MiB", BIG_FILE >> 20);
        if have("curl") {
            let mut rows = vec![
                ("nginx", Offload::Tso, Some(KERNEL_CC)),
                ("nginx", Offload::Gso, Some(KERNEL_CC)),
                ("nginx", Offload::Off, Some(KERNEL_CC)),
            ];
            // The like-for-like row again on this machine's default, when that is not CUBIC
            // (bbr here), for reference.
            if self.default_congctl() != KERNEL_CC {
                rows.push(("nginx", Offload::Off, None));
            }
            rows.push(("xsknet-http", Offload::Gso, Some(KERNEL_CC)));
            for (server, offload, cc) in rows {
                stopped()?;
                if server == "nginx" && !have("nginx") {
                    continue;
                }
                r.bulk_send.push(self.bulk_send(server, offload, cc)?);
            }
        }
        eprintln!("== tcp: connects beside a SYN flood (hping3 --flood --rand-source)");
        if have("hping3") {
            for server in ["nginx", "xsknet-http"] {
                stopped()?;
                if server == "nginx" && !have("nginx") {
                    continue;
                }
                r.syn_flood.extend(self.syn_flood(server)?);
            }
        }
        self.bulk_receive_rounds(self.receive_rounds(), r, stopped)
    }

    /// Transfers per server in the bulk-receive rows: 3 (1 with `--quick`), one a round.
    fn receive_rounds(&self) -> u32 {
        if self.quick {
            1
        } else {
            3
        }
    }

    /// The bulk-receive rows: `rounds` rounds of one transfer to each receiver (iperf3, the
    /// kernel's tcp-sink, `xsknet sink`), in an order that rotates from round to round, so that
    /// a change of the machine's load falls on all of them; each row says its round
    /// (`detail.round`), and the goal compares the medians.
    fn bulk_receive_rounds(
        &self,
        rounds: u32,
        r: &mut TcpResults,
        stopped: &dyn Fn() -> Result<(), BoxError>,
    ) -> Result<(), BoxError> {
        let mut servers = vec!["kernel-tcp-sink", "xsknet-sink", "kernel-tcp-sink-gro"];
        if have("iperf3") {
            servers.insert(0, "iperf3");
        }
        r.setup["bulk_receive_rounds"] = json!(rounds);
        for round in 0..rounds.max(1) as usize {
            for i in 0..servers.len() {
                stopped()?;
                let server = servers[(round + i) % servers.len()];
                eprintln!(
                    "== tcp: bulk receive, round {}: {} MB from a kernel client to {server}",
                    round + 1,
                    self.bulk_bytes() / 1_000_000
                );
                let mut row = self.bulk_receive(server)?;
                row.detail["round"] = json!(round + 1);
                r.bulk_receive.push(row);
            }
        }
        Ok(())
    }

    /// Only the bulk-receive rows, `runs` rounds (`side-by-side --tcp-only --receive-only
    /// --runs N`): for working on the receive rate, where one transfer moves by ±30 % on a
    /// shared machine; the goal is judged on the medians.
    ///
    /// # Errors
    ///
    /// As [`Self::run`].
    pub fn run_receive(&self, runs: u32, stopped: &dyn Fn() -> Result<(), BoxError>) -> Result<TcpResults, BoxError> {
        self.prepare()?;
        let mut r = TcpResults::default();
        if !have("iperf3") {
            r.skipped.push("iperf3 not installed (`make deps`): its rows are not measured".into());
        }
        r.setup = json!({
            "clients": format!("peer namespace, CPU {}", self.client_cpu),
            "servers": format!("server namespace, CPU {}", self.server_cpu),
            "bulk_receive_bytes": self.bulk_bytes(), "runs": runs,
            "versions": { "iperf3": version(&["iperf3", "--version"]) },
        });
        let cc = self.section_congctl()?;
        let result = self.bulk_receive_rounds(runs, &mut r, stopped);
        self.section_congctl_off();
        result?;
        r.setup["congestion_control"] = cc.clone();
        stamp_congctl(&mut r.bulk_receive, &cc);
        Ok(r)
    }

    /// Only the bulk-send rows that the goal compares, `runs` rounds in a rotating order
    /// (`side-by-side --tcp-only --bulk-only --runs N`): nginx with GSO off on CUBIC and
    /// `xsknet http`, and nginx with GSO off on this machine's default congestion control
    /// when that is not CUBIC, for reference. For working on the bulk-send rate, where one
    /// transfer moves by ±30 % on a shared machine: the goal is judged on the median of all
    /// the transfers of each side.
    ///
    /// # Errors
    ///
    /// As [`Self::run`].
    pub fn run_bulk(&self, runs: u32, stopped: &dyn Fn() -> Result<(), BoxError>) -> Result<TcpResults, BoxError> {
        self.prepare()?;
        let mut r = TcpResults::default();
        if !have("curl") {
            r.skipped.push("curl not installed (`make deps`): its rows are not measured".into());
            return Ok(r);
        }
        let mut servers: Vec<(&str, Option<&str>)> = vec![("xsknet-http", Some(KERNEL_CC))];
        if have("nginx") {
            servers.insert(0, ("nginx", Some(KERNEL_CC)));
            if self.default_congctl() != KERNEL_CC {
                servers.push(("nginx", None));
            }
        }
        let cc = self.section_congctl()?;
        r.setup = json!({
            "clients": format!("peer namespace, CPU {}", self.client_cpu),
            "servers": format!("server namespace, CPU {}", self.server_cpu),
            "big_file_bytes": BIG_FILE, "curl_runs": self.curl_runs(), "runs": runs,
            "versions": { "nginx": version(&["nginx", "-v"]), "curl": version(&["curl", "--version"]) },
            "congestion_control": cc.clone(),
        });
        let result = (|| {
            for round in 0..runs.max(1) as usize {
                for i in 0..servers.len() {
                    stopped()?;
                    let (server, cc) = servers[(round + i) % servers.len()];
                    eprintln!("== tcp: bulk send, round {}: {server} ({})", round + 1, cc.unwrap_or("default"));
                    let offload = if server == "nginx" { Offload::Off } else { Offload::Gso };
                    let mut row = self.bulk_send(server, offload, cc)?;
                    row.detail["round"] = json!(round + 1);
                    r.bulk_send.push(row);
                }
            }
            Ok::<(), BoxError>(())
        })();
        self.section_congctl_off();
        result?;
        stamp_congctl(&mut r.bulk_send, &cc);
        Ok(r)
    }

    /// Only the request rows (wrk and ab against nginx and `xsknet http`), `runs` rounds,
    /// the servers in a rotating order so that a change of the machine's load falls on both
    /// alike (`side-by-side --tcp-only --requests-only --runs N`): for working on the request
    /// rates, where one run of each moves by ±10 % on a shared machine.
    ///
    /// # Errors
    ///
    /// As [`Self::run`].
    pub fn run_requests(&self, runs: u32, stopped: &dyn Fn() -> Result<(), BoxError>) -> Result<TcpResults, BoxError> {
        self.prepare()?;
        let mut r = TcpResults::default();
        let servers = if have("nginx") { vec!["nginx", "xsknet-http"] } else { vec!["xsknet-http"] };
        r.setup = json!({
            "clients": format!("peer namespace, CPU {}", self.client_cpu),
            "servers": format!("server namespace, CPU {}", self.server_cpu),
            "connections": CONNECTIONS, "secs": self.secs, "small_file_bytes": SMALL_FILE,
            "ab_requests": self.ab_requests(), "runs": runs,
            "versions": { "nginx": version(&["nginx", "-v"]), "wrk": version(&["wrk", "-v"]), "ab": version(&["ab", "-V"]) },
        });
        for round in 0..runs.max(1) as usize {
            for i in 0..servers.len() {
                stopped()?;
                let server = servers[(round + i) % servers.len()];
                eprintln!("== tcp: requests, round {}: {server}", round + 1);
                r.requests.extend(self.requests(server)?.into_iter().map(|mut row| {
                    row.detail["round"] = json!(round + 1);
                    row
                }));
            }
        }
        Ok(r)
    }

    fn ab_requests(&self) -> u64 {
        if self.quick {
            2_000
        } else {
            20_000
        }
    }

    fn bulk_bytes(&self) -> u64 {
        if self.quick {
            256_000_000
        } else {
            2_000_000_000
        }
    }

    /// The size of the file fetched under loss: 64 MiB (4 MiB with `--quick`).
    fn loss_bytes(&self) -> usize {
        if self.quick {
            4 << 20
        } else {
            64 << 20
        }
    }

    /// Transfers per bulk-send row: odd, so that the median is a transfer's own rate.
    fn curl_runs(&self) -> usize {
        if self.quick {
            3
        } else {
            7
        }
    }

    /// Starts `server` (the kernel's address on for nginx), runs `f`, stops it.
    fn with_server<T>(
        &self,
        server: &str,
        f: impl FnOnce(&[String]) -> Result<T, BoxError>,
    ) -> Result<(T, Value), BoxError> {
        let kernel = !server.starts_with("xsknet");
        if kernel {
            self.kernel_addr(true)?;
        }
        let result = (|| {
            let (p, setup) = self.server(server)?;
            let out = f(&setup);
            let report = self.stop_server(p, server);
            out.map(|t| (t, report))
        })();
        if kernel {
            self.kernel_addr(false)?;
        }
        result
    }

    fn requests(&self, server: &str) -> Result<Vec<TcpRow>, BoxError> {
        let label = if server == "nginx" { "nginx (1 worker, sendfile)" } else { "xsknet http (run to completion)" };
        let url = self.url("1k.bin");
        let secs = format!("{}s", self.secs.max(1.0).round());
        let wrk_args: Vec<String> =
            ["wrk", "-t1", &format!("-c{CONNECTIONS}"), &format!("-d{secs}"), "--latency", &url]
                .map(String::from)
                .to_vec();
        let csv = self.path("ab.csv");
        let ab_args: Vec<String> = [
            "ab",
            "-q",
            "-n",
            &self.ab_requests().to_string(),
            "-c",
            &CONNECTIONS.to_string(),
            "-s",
            "10",
            "-e",
            &csv,
            &url,
        ]
        .map(String::from)
        .to_vec();
        let cpu = self.client_cpu;
        let (rows, report) = self.with_server(server, |setup| {
            let mut rows = Vec::new();
            if have("wrk") {
                let out =
                    self.client(&wrk_args, &format!("wrk-{server}"), Duration::from_secs_f64(self.secs + 30.0))?;
                rows.push(TcpRow {
                    server: server.into(),
                    what: format!("{label}, wrk keep-alive"),
                    setup: [setup.to_vec(), vec![format!("taskset -c {cpu} {}", wrk_args.join(" "))]].concat(),
                    metrics: parse_wrk(&out)?,
                    detail: json!({ "client": "wrk", "output": out }),
                });
            }
            if have("ab") {
                let out = self.client(&ab_args, &format!("ab-{server}"), Duration::from_secs(120))?;
                let text = std::fs::read_to_string(&csv).unwrap_or_default();
                rows.push(TcpRow {
                    server: server.into(),
                    what: format!("{label}, ab, a connection per request"),
                    setup: [
                        setup.to_vec(),
                        vec![format!("taskset -c {cpu} {}", ab_args.join(" "))
                            .replace(&self.dir.to_string_lossy().into_owned(), "$TMP")],
                    ]
                    .concat(),
                    metrics: parse_ab(&out, &text)?,
                    detail: json!({ "client": "ab", "output": out }),
                });
            }
            Ok(rows)
        })?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                r.detail["server"] = report.clone();
                r
            })
            .collect())
    }

    fn rr(&self, server: &str) -> Result<TcpRow, BoxError> {
        let what = match server {
            "kernel-tcp-echo-busy" => "kernel TCP echo, spinning on non-blocking sockets",
            "kernel-tcp-echo-blocking" => "kernel TCP echo, blocking in read",
            "xsknet-echo" => "xsknet echo (run to completion)",
            _ => "xsknet echo --threaded (loop and reader on one core)",
        };
        let hlog = self.path(&format!("tcp-rr-{server}.hlog"));
        let args: Vec<String> = [
            self.exe("baseline").as_str(),
            "tcp-rr",
            "--connect",
            &format!("{}:{ECHO_PORT}", self.server_addr),
            "--size",
            &RR_SIZE.to_string(),
            "--duration",
            &self.secs.to_string(),
            "--hlog",
            &hlog,
            "--tag",
            server,
        ]
        .map(String::from)
        .to_vec();
        let cpu = self.client_cpu;
        let ((client, setup), report) = self.with_server(server, |setup| {
            let out = self.client(&args, &format!("tcp-rr-{server}"), Duration::from_secs_f64(self.secs + 30.0))?;
            let v = last_json(&out, "baseline tcp-rr")?;
            let shown = format!("taskset -c {cpu} {}", args.join(" ")).replace(&*self.dir.to_string_lossy(), "$TMP");
            Ok((v, [setup.to_vec(), vec![shown]].concat()))
        })?;
        let mut metrics = BTreeMap::new();
        for (k, key) in
            [("p50", "p50_us"), ("p90", "p90_us"), ("p99", "p99_us"), ("p99.9", "p99.9_us"), ("max", "max_us")]
        {
            if let Some(v) = client["rtt_us"][k].as_f64() {
                metrics.insert(key.to_string(), v);
            }
        }
        for k in ["round_trips", "rate_per_s", "mismatches"] {
            metrics.insert(k.to_string(), client[k].as_f64().unwrap_or(f64::NAN));
        }
        Ok(TcpRow {
            server: server.into(),
            what: what.into(),
            setup,
            metrics,
            detail: json!({ "client": client, "server": report, "hlog": hlog }),
        })
    }

    /// curl fetching the big file from `server` with the veth's `offload`; for nginx, `cc` is
    /// the kernel's congestion control (`Some(KERNEL_CC)`: the section's route, see
    /// [`Self::section_congctl`]; `None`: the namespace's default, the server's route taken
    /// away for the row and put back after).
    fn bulk_send(&self, server: &str, offload: Offload, cc: Option<&str>) -> Result<TcpRow, BoxError> {
        let (what, row, tx, gso_on) = match (server, offload) {
            ("nginx", Offload::Tso) => {
                ("nginx, veth defaults (tx checksum offload on, TSO and GSO on), CUBIC", "nginx-tso", true, true)
            }
            ("nginx", Offload::Gso) => {
                ("nginx, tx checksum offload off, GSO on (the section's setting), CUBIC", "nginx-gso", false, true)
            }
            ("nginx", Offload::Off) => {
                ("nginx, tx checksum offload off, GSO off, CUBIC (like for like)", "nginx-gso-off", false, false)
            }
            _ => ("xsknet http (MTU-sized frames, CUBIC)", "xsknet-http", false, true),
        };
        let default_cc = (server == "nginx" && cc.is_none()).then(|| self.default_congctl());
        let (what, row) = match &default_cc {
            Some(d) => (
                format!(
                    "nginx, tx checksum offload off, GSO off, {}: this machine's default (for reference)",
                    d.to_uppercase()
                ),
                format!("{row}-{d}"),
            ),
            None => (what.to_string(), row.to_string()),
        };
        let args: Vec<String> = [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{time_total}\\n",
            &self.url("16m.bin"),
        ]
        .map(String::from)
        .to_vec();
        let cpu = self.client_cpu;
        let features = self.offload(tx, gso_on)?;
        let runs = self.curl_runs();
        let route_off = match &default_cc {
            Some(_) => Some(self.kernel_congctl(None)?),
            None => None,
        };
        let result = self.with_server(server, |setup| {
            let mut gbps = Vec::new();
            for i in 0..runs {
                let out = self.client(&args, &format!("curl-{server}-{i}"), Duration::from_secs(60))?;
                let line = out.lines().last().unwrap_or("");
                let f: Vec<&str> = line.split_whitespace().collect();
                let (Some(code), Some(size), Some(secs)) = (
                    f.first(),
                    f.get(1).and_then(|s| s.parse::<f64>().ok()),
                    f.get(2).and_then(|s| s.parse::<f64>().ok()),
                ) else {
                    return Err(format!("curl: unexpected output: {out}").into());
                };
                if *code != "200" || size as usize != BIG_FILE {
                    return Err(format!("curl from {server}: status {code}, {size} bytes of {BIG_FILE}").into());
                }
                gbps.push(size * 8.0 / secs.max(1e-9) / 1e9);
            }
            let shown = format!("taskset -c {cpu} {} (x {runs}, each a new connection)", args.join(" "));
            Ok((gbps, [setup.to_vec(), vec![shown]].concat()))
        });
        // Back to the section's setting: tx offload off, GSO on, and CUBIC.
        self.offload(false, true)?;
        if route_off.is_some() {
            self.kernel_congctl(Some(KERNEL_CC))?;
        }
        let ((gbps, setup), report) = result?;
        let setup = [route_off.into_iter().collect(), setup].concat();
        let mut metrics = BTreeMap::new();
        metrics.insert("gbit_per_s".into(), median(&gbps));
        metrics.insert("gbit_per_s_min".into(), gbps.iter().copied().fold(f64::INFINITY, f64::min));
        metrics.insert("gbit_per_s_max".into(), gbps.iter().copied().fold(0.0, f64::max));
        let mut detail = json!({ "runs_gbit_per_s": gbps, "server": report, "server_veth": features });
        if let Some(d) = default_cc {
            detail["congestion_control"] = json!(d);
        }
        Ok(TcpRow { server: row, what, setup, metrics, detail })
    }

    fn bulk_receive(&self, server: &str) -> Result<TcpRow, BoxError> {
        let bytes = self.bulk_bytes();
        let (what, args): (&str, Vec<String>) = match server {
            "iperf3" => (
                "kernel: iperf3 -c against iperf3 -s",
                [
                    "iperf3",
                    "-c",
                    &self.server_addr.to_string(),
                    "-p",
                    &IPERF_PORT.to_string(),
                    "-n",
                    &bytes.to_string(),
                    "-J",
                ]
                .map(String::from)
                .to_vec(),
            ),
            _ => (
                match server {
                    "xsknet-sink" => "xsknet sink (run to completion, GRO's ACKs), from baseline tcp-send",
                    "kernel-tcp-sink-gro" => {
                        "kernel: baseline tcp-sink, GRO on the server's veth (merged segments), from baseline tcp-send"
                    }
                    _ => "kernel: baseline tcp-sink (read, 256 KiB), from baseline tcp-send",
                },
                [
                    self.exe("baseline").as_str(),
                    "tcp-send",
                    "--connect",
                    &format!("{}:{SINK_PORT}", self.server_addr),
                    "--bytes",
                    &bytes.to_string(),
                ]
                .map(String::from)
                .to_vec(),
            ),
        };
        let cpu = self.client_cpu;
        // GRO on the server's veth for the kernel's row that has it (veth's default is off:
        // without XDP or GRO it has no NAPI, `veth_xmit` → `netif_rx`); off again after.
        let gro = server.ends_with("-gro");
        let gro_cmd = if gro { Some(self.gro(true)?) } else { None };
        let measured = self.with_server(server, |setup| {
            let pid = self.server_pid(server)?;
            let mark = CpuMark::now(pid);
            let out = self.client(&args, &format!("send-{server}"), Duration::from_secs(300))?;
            let used = mark.since(pid);
            let v =
                if server == "iperf3" { whole_json(&out, "iperf3")? } else { last_json(&out, "baseline tcp-send")? };
            let shown = format!("taskset -c {cpu} {}", args.join(" "));
            Ok((v, used, [gro_cmd.iter().cloned().collect(), setup.to_vec(), vec![shown]].concat()))
        });
        if gro {
            self.gro(false)?;
        }
        let ((client, cpu_used, setup), report) = measured?;
        let gbps = if server == "iperf3" {
            client["end"]["sum_received"]["bits_per_second"].as_f64().map(|b| b / 1e9)
        } else {
            client["gbit_per_s"].as_f64()
        }
        .ok_or_else(|| format!("{server}: no rate in the client's report: {client}"))?;
        let received = match server {
            "iperf3" => client["end"]["sum_received"]["bytes"].as_f64(),
            "xsknet-sink" => report["application"]["tcp_bytes"].as_f64(),
            _ => report["received_bytes"].as_f64(),
        }
        .unwrap_or(f64::NAN);
        let gb = bytes as f64 / 1e9;
        let mut metrics = BTreeMap::new();
        metrics.insert("gbit_per_s".into(), gbps);
        metrics.insert("bytes_sent".into(), bytes as f64);
        metrics.insert("bytes_received".into(), received);
        if let Some(s) = cpu_used.0 {
            metrics.insert("server_cpu_s_per_gb".into(), s / gb);
        }
        metrics.insert("machine_cpu_s_per_gb".into(), cpu_used.1 / gb);
        let mut detail = json!({ "server": report });
        if server == "iperf3" {
            detail["client"] = json!({ "end": client["end"] });
        } else {
            detail["client"] = client;
        }
        Ok(TcpRow { server: server.into(), what: what.into(), setup, metrics, detail })
    }

    /// The congestion control the kernel's server uses towards the peer: `cc` set on a host
    /// route to the peer (`ip route replace PEER/32 dev IF congctl CC`, the route's
    /// `RTAX_CC_ALGO`, which `tcp_ca_openreq_child` in net/ipv4/tcp_cong.c gives the accepted
    /// socket). A route rather than the namespace's `net.ipv4.tcp_congestion_control`: a
    /// namespace other than the first may only pick an algorithm listed in
    /// `tcp_allowed_congestion_control` (`tcp_set_default_congestion_control`: `EPERM`), and
    /// this machine lists `reno bbr`. `None` removes the route (the namespace's default again).
    /// Returns the command, for the row's setup.
    fn kernel_congctl(&self, cc: Option<&str>) -> Result<String, BoxError> {
        route_congctl(self.ns, self.ifname, self.peer_addr, cc)
    }

    /// [`Self::kernel_congctl`] on the clients' side: `cc` on a host route to the servers
    /// (`tcp_connect_init` → `tcp_ca_dst_init` in net/ipv4/tcp_output.c gives it to a
    /// connecting socket). The bulk-receive rows' clients are the senders.
    fn peer_congctl(&self, cc: Option<&str>) -> Result<String, BoxError> {
        route_congctl(self.peer_ns, self.peer_ifname, self.server_addr, cc)
    }

    /// Puts every kernel TCP socket of the section on [`KERNEL_CC`], xsknet's algorithm, on
    /// both sides ([`Self::kernel_congctl`], [`Self::peer_congctl`]): the like-for-like
    /// comparison, whatever this machine's default is. What was done, for the setup
    /// (`congestion_control`).
    fn section_congctl(&self) -> Result<Value, BoxError> {
        let commands = [self.kernel_congctl(Some(KERNEL_CC))?, self.peer_congctl(Some(KERNEL_CC))?];
        Ok(json!({
            "algorithm": KERNEL_CC,
            "commands": commands,
            "namespaces_default": self.default_congctl(),
        }))
    }

    /// Takes [`Self::section_congctl`]'s routes away again.
    fn section_congctl_off(&self) {
        let _ = self.kernel_congctl(None);
        let _ = self.peer_congctl(None);
    }

    /// The server namespace's default congestion control (`net.ipv4.tcp_congestion_control`).
    fn default_congctl(&self) -> String {
        let out = run_in(self.ns, &["sysctl", "-n", "net.ipv4.tcp_congestion_control"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// One transfer of `loss.bin` from `server` through the relay: goodput, or how it failed
    /// (curl's exit status: 28 is its `--max-time`). For nginx, `cc` is the kernel's
    /// congestion control for the transfer ([`Self::kernel_congctl`]; `None`: the
    /// namespace's default).
    fn lossy_transfer(&self, server: &str, cc: Option<&str>, impairment: &str) -> Result<TcpRow, BoxError> {
        let max_time = if self.quick { 10 } else { 120 };
        let args: Vec<String> = [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            &max_time.to_string(),
            "-w",
            "%{http_code} %{size_download} %{time_total}\\n",
            &self.url("loss.bin"),
        ]
        .map(String::from)
        .to_vec();
        let cpu = self.client_cpu;
        let name = format!("curl-loss-{server}");
        let kernel = server == "nginx";
        let route = if kernel { cc.map(|c| self.kernel_congctl(Some(c))).transpose()? } else { None };
        let congctl = match (kernel, cc) {
            (false, _) => "cubic".to_string(),
            (true, Some(c)) => c.to_string(),
            (true, None) => self.default_congctl(),
        };
        let result = self.with_server(server, |setup| {
            let c0 = self.tcp_mib(server);
            let out = self.client(&args, &name, Duration::from_secs(max_time + 30));
            let counters = counter_deltas(c0, self.tcp_mib(server));
            let shown = format!("taskset -c {cpu} {}", args.join(" "));
            Ok((out, [route.iter().cloned().collect(), setup.to_vec(), vec![shown]].concat(), counters))
        });
        if route.is_some() {
            self.kernel_congctl(None)?;
        }
        let ((out, setup, counters), report) = result?;
        let want = self.loss_bytes() as f64;
        let mut metrics = BTreeMap::new();
        let (ok, text) = match out {
            Ok(text) => {
                let f: Vec<String> = text.lines().last().unwrap_or("").split_whitespace().map(String::from).collect();
                let size = f.get(1).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
                let secs = f.get(2).and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
                let complete = f.first().is_some_and(|c| c == "200") && size == want;
                if complete {
                    metrics.insert("mbit_per_s".into(), size * 8.0 / secs / 1e6);
                    metrics.insert("secs".into(), secs);
                }
                (complete, text)
            }
            Err(e) => (false, e.to_string()),
        };
        metrics.insert("failed".into(), if ok { 0.0 } else { 1.0 });
        let label = match (kernel, cc) {
            (false, _) => "xsknet http (CUBIC, SACK)".to_string(),
            (true, Some(c)) => format!("nginx (the kernel's TCP, {}, SACK)", c.to_uppercase()),
            (true, None) => {
                format!("nginx (the kernel's TCP, {}: this machine's default, SACK)", congctl.to_uppercase())
            }
        };
        Ok(TcpRow {
            server: server.into(),
            what: format!("{label}, {impairment}"),
            setup,
            metrics,
            detail: json!({
                "client": text, "server": report, "impairment": impairment, "bytes": want,
                "counters": counters, "congestion_control": congctl,
            }),
        })
    }

    /// The legitimate client's rows beside `server`: alone, then beside hping3 flooding the
    /// HTTP port with SYNs from random sources for as long, on the same CPU (the client at
    /// SCHED_FIFO 50, so that it preempts the flooder as the UDP flood rows' client does).
    fn syn_flood(&self, server: &str) -> Result<Vec<TcpRow>, BoxError> {
        let label = if server == "nginx" { "nginx (kernel, tcp_syncookies=1)" } else { "xsknet http" };
        let secs = self.secs.max(1.0);
        let kernel = server == "nginx";
        let connect: Vec<String> = [
            "chrt",
            "-f",
            "50",
            self.exe("baseline").as_str(),
            "tcp-connect",
            "--connect",
            &format!("{}:{HTTP_PORT}", self.server_addr),
            "--rate",
            &SYN_FLOOD_CONNECT_RATE.to_string(),
            "--timeout-ms",
            "1000",
            "--duration",
            &secs.to_string(),
        ]
        .map(String::from)
        .to_vec();
        let flood: Vec<String> = [
            "timeout",
            "-s",
            "INT",
            &format!("{}", secs + 1.0),
            "hping3",
            "-q",
            "-S",
            "-p",
            &HTTP_PORT.to_string(),
            "--flood",
            "--rand-source",
            &self.server_addr.to_string(),
        ]
        .map(String::from)
        .to_vec();
        let cpu = self.client_cpu;
        let result = self.with_server(server, |setup| {
            if kernel {
                // The SYN-ACKs to the spoofed sources go to the peer, which drops them (it does
                // not forward), as xsknet's go there through `--gateway`. The route leaves with
                // the address at the end of the row.
                let out = run_in(self.ns, &["ip", "route", "add", "default", "via", &self.peer_addr.to_string()]);
                if !out.status.success() {
                    return Err(format!("ip route add default: {}", String::from_utf8_lossy(&out.stderr)).into());
                }
            }
            let mut phases = Vec::new();
            for flooded in [false, true] {
                let pids = self.listener_pids(HTTP_PORT, server)?;
                let rss0 = rss_kb(&pids);
                let c0 = self.tcp_mib(server);
                let hping = if flooded {
                    let p = NsProc::spawn(self.peer_ns, cpu, &flood, &format!("hping3-{server}"), self.dir)?;
                    std::thread::sleep(Duration::from_millis(300));
                    Some(p)
                } else {
                    None
                };
                let tag = if flooded { "flood" } else { "unloaded" };
                let out =
                    self.client(&connect, &format!("connect-{server}-{tag}"), Duration::from_secs_f64(secs + 30.0));
                let hping_log = match hping {
                    Some(mut p) => {
                        let _ = p.wait(Duration::from_secs_f64(secs + 10.0));
                        Some(p.log())
                    }
                    None => None,
                };
                let rss1 = rss_kb(&pids);
                let c1 = self.tcp_mib(server);
                phases.push((flooded, out?, hping_log, rss0, rss1, c0, c1));
            }
            let shown = vec![
                format!("taskset -c {cpu} {}", connect.join(" ")),
                format!("taskset -c {cpu} {} (flood phase only)", flood.join(" ")),
            ];
            Ok((phases, [setup.to_vec(), shown].concat()))
        });
        let ((phases, setup), report) = result?;
        let mut rows = Vec::new();
        for (flooded, out, hping_log, rss0, rss1, c0, c1) in phases {
            let client = last_json(&out, "baseline tcp-connect")?;
            let mut metrics = BTreeMap::new();
            metrics.insert("success_pct".into(), client["success"].as_f64().unwrap_or(0.0) * 100.0);
            metrics.insert("attempts".into(), client["attempts"].as_f64().unwrap_or(0.0));
            for (k, key) in [("p50", "connect_p50_us"), ("p99", "connect_p99_us"), ("max", "connect_max_us")] {
                if let Some(v) = client["connect_us"][k].as_f64() {
                    metrics.insert(key.into(), v);
                }
            }
            if let (Some(a), Some(b)) = (rss0, rss1) {
                metrics.insert("rss_kb_before".into(), a as f64);
                metrics.insert("rss_kb_after".into(), b as f64);
            }
            let sent = hping_log.as_deref().and_then(hping_sent);
            if let Some(n) = sent {
                metrics.insert("flood_pps".into(), n as f64 / (secs + 1.0));
            }
            let counters = counter_deltas(c0, c1);
            rows.push(TcpRow {
                server: server.into(),
                what: if flooded { format!("{label}, SYN flood") } else { format!("{label}, unloaded") },
                setup: setup.clone(),
                metrics,
                detail: json!({
                    "load": if flooded { "flood" } else { "unloaded" }, "client": client, "hping3": hping_log,
                    "counters": counters, "server": report,
                }),
            });
        }
        Ok(rows)
    }

    /// The pids of the processes holding a listening socket on `port` (nginx: master and
    /// worker); xsknet's sockets are its own, so it is found by its stats file.
    fn listener_pids(&self, port: u16, server: &str) -> Result<Vec<u32>, BoxError> {
        if server.starts_with("xsknet") {
            return Ok(vec![self.server_pid(server)?]);
        }
        let out = run_in(self.ns, &["ss", "-Hltnp", &format!("sport = :{port}")]);
        let text = String::from_utf8_lossy(&out.stdout);
        let pids: Vec<u32> = text.split("pid=").skip(1).filter_map(|s| s.split(',').next()?.parse().ok()).collect();
        if pids.is_empty() {
            return Err(format!("{server}: no listener's pid in: {text}").into());
        }
        Ok(pids)
    }

    /// The TCP and TcpExt counters of the server side: the kernel's of its namespace
    /// (/proc/net/snmp and netstat there), or xsknet's through its control endpoint
    /// (what `xsknet stat` asks); `None` when they cannot be read.
    fn tcp_mib(&self, server: &str) -> Option<BTreeMap<String, u64>> {
        if server.starts_with("xsknet") {
            let path = xsknet::control::find(Some(self.ifname), None).ok()?;
            let snap: xsknet::control::Snapshot =
                xsknet::control::request(&path, xsknet::control::Request::Stats).ok()?;
            return Some(
                snap.counters()
                    .into_iter()
                    .filter(|(n, _, _)| n.starts_with("Tcp") || n.starts_with("Syncookies"))
                    .map(|(n, v, _)| (n.to_string(), v))
                    .collect(),
            );
        }
        let mut m = BTreeMap::new();
        for file in ["/proc/net/snmp", "/proc/net/netstat"] {
            let out = run_in(self.ns, &["cat", file]);
            let text = String::from_utf8_lossy(&out.stdout);
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                let [names, values] = pair else { continue };
                let Some((proto, names)) = names.split_once(':') else { continue };
                if proto != "Tcp" && proto != "TcpExt" {
                    continue;
                }
                let values = values.split_once(':').map(|v| v.1).unwrap_or("");
                for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                    if let Ok(v) = v.parse() {
                        m.insert(format!("{proto}{n}"), v);
                    }
                }
            }
        }
        Some(m)
    }

    /// The server's pid, from `ss -ltnp` on its port (nginx's worker is where the time goes,
    /// but its master's children are counted with it only when reaped; take the listener's
    /// owner, which for these servers is the process that reads).
    fn server_pid(&self, server: &str) -> Result<u32, BoxError> {
        if server.starts_with("xsknet") {
            // xsknet's sockets are its own: find it by the stats file it will write.
            let want = self.path(&format!("{server}.json"));
            return find_pid(|cmdline| cmdline.contains(&want)).ok_or_else(|| format!("{server}: no process").into());
        }
        let port = if server == "iperf3" { IPERF_PORT } else { SINK_PORT };
        let out = run_in(self.ns, &["ss", "-Hltnp", &format!("sport = :{port}")]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("pid=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{server}: no listener's pid in: {text}").into())
    }
}

/// The counters that moved between two readings of [`TcpBench::tcp_mib`] (none when either
/// could not be read).
/// `ip route replace DST/32 dev IFNAME congctl CC` in `ns` (`None`: `ip route del` the
/// route); the command.
fn route_congctl(ns: &str, ifname: &str, dst: Ipv4Addr, cc: Option<&str>) -> Result<String, BoxError> {
    let dst = format!("{dst}/32");
    let args: Vec<&str> = match cc {
        Some(cc) => vec!["ip", "route", "replace", &dst, "dev", ifname, "congctl", cc],
        None => vec!["ip", "route", "del", &dst, "dev", ifname],
    };
    let out = run_in(ns, &args);
    if cc.is_some() && !out.status.success() {
        return Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(format!("ip netns exec {ns} {}", args.join(" ")))
}

/// Every row without a congestion control of its own ran on the section's
/// ([`TcpBench::section_congctl`]): `detail.congestion_control` says so and the routes' commands
/// head the row's setup.
fn stamp_congctl(rows: &mut [TcpRow], cc: &Value) {
    for row in rows {
        if row.detail["congestion_control"].is_null() {
            row.detail["congestion_control"] = cc["algorithm"].clone();
            let cmds = cc["commands"].as_array().map(|a| a.iter().filter_map(|c| c.as_str().map(String::from)));
            row.setup = cmds.into_iter().flatten().chain(row.setup.drain(..)).collect();
        }
    }
}

fn counter_deltas(c0: Option<BTreeMap<String, u64>>, c1: Option<BTreeMap<String, u64>>) -> BTreeMap<String, i64> {
    match (c0, c1) {
        (Some(a), Some(b)) => b
            .iter()
            .map(|(k, v)| (k.clone(), *v as i64 - a.get(k).copied().unwrap_or(0) as i64))
            .filter(|(_, d)| *d != 0)
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The kernel's congestion control in the TCP rows' like-for-like comparisons: CUBIC, Linux's
/// default (`CONFIG_DEFAULT_TCP_CONG`) and xsknet's.
pub const KERNEL_CC: &str = "cubic";

/// Options added to every xsknet server of the TCP section: the words of the
/// `XSKNET_BENCH_SERVER_ARGS` environment variable (e.g. `--pcap /tmp/http.pcapng` to see
/// a loss row's segments in tshark; each transfer starts the server again, so the file
/// holds the last one). Unset: none.
pub fn server_args() -> Vec<String> {
    std::env::var("XSKNET_BENCH_SERVER_ARGS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The impairments of the loss rows: `xsknet-impair` options, both directions.
pub const LOSS_SETTINGS: [&[&str]; 2] = [&["--loss", "1", "--delay", "1"], &["--loss", "5", "--delay", "1"]];

/// The impairments of the loss rows, `--seed 1` added to each where it has no seed:
/// [`LOSS_SETTINGS`], or those of `custom` (the `XSKNET_BENCH_IMPAIR` environment variable:
/// `xsknet-impair` options, settings apart by `;`, e.g. `--loss 3 --delay 5 --jitter 2
/// --reorder 5;--loss 1 --delay 1 --seed 2`).
pub fn loss_settings(custom: Option<&str>) -> Vec<Vec<String>> {
    let given: Vec<Vec<String>> = match custom {
        Some(c) if !c.trim().is_empty() => c
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.split_whitespace().map(String::from).collect())
            .collect(),
        _ => LOSS_SETTINGS.iter().map(|a| a.iter().map(|s| s.to_string()).collect()).collect(),
    };
    given
        .into_iter()
        .map(|mut a| {
            if !a.iter().any(|s| s == "--seed") {
                a.extend(["--seed".into(), "1".into()]);
            }
            a
        })
        .collect()
}

/// Where the loss rows run, for the section's setup (`setup.loss`) and its Markdown: their own
/// namespace trio ([`under_loss`]), the clients and servers on `cpus` (client's, server's) as
/// in the rest of the section, the relay between them; and the `settings` they ran.
pub fn loss_setup(cpus: (&str, &str), settings: &[Vec<String>]) -> Value {
    json!({
        "clients": format!("peer namespace, CPU {}", cpus.0),
        "servers": format!("server namespace, CPU {}", cpus.1),
        "relay": "xsknet-impair in a middle namespace between them, unpinned",
        "settings": settings.iter().map(|a| a.join(" ")).collect::<Vec<_>>(),
    })
}

/// The loss rows, into `r.loss` (and where they ran into `r.setup["loss"]`, [`loss_setup`]):
/// a namespace trio with `xsknet-impair` in the middle ([`xsknet::testing::ImpairedPair`]:
/// peer 10.99.0.1, servers 10.99.0.2), for each of [`loss_settings`] curl fetching `loss.bin`
/// (64 MiB; 4 with `quick`) from nginx and from `xsknet http`. The relay runs unpinned (it is
/// the wire, not a host); clients and servers on their CPUs as in the rest of the section.
/// The relay is started afresh for each row, with the same options and seed for every row of
/// a setting (so each server meets the same stream of decisions), and its counters for that
/// row alone go in the row's `detail.relay`.
///
/// # Errors
///
/// The relay (`bin/xsknet-impair`) missing, not starting or failing, a server that does not
/// start. A transfer that does not complete is a row with `failed` 1, not an error.
pub fn under_loss(
    bin: &Path,
    dir: &Path,
    quick: bool,
    cpus: (&str, &str),
    stopped: &dyn Fn() -> Result<(), BoxError>,
    r: &mut TcpResults,
) -> Result<(), BoxError> {
    use xsknet::testing::{ImpairedPair, ImpairedPairOptions, IMPAIRED_IF, IMPAIRED_PEER_IF};
    let relay = bin.join("xsknet-impair");
    if !relay.exists() {
        return Err(format!("{} missing: run `make build`", relay.display()).into());
    }
    let settings = loss_settings(std::env::var("XSKNET_BENCH_IMPAIR").ok().as_deref());
    r.setup["loss"] = loss_setup(cpus, &settings);
    let opts = ImpairedPairOptions { kernel_owns_addr: false, relay_args: settings[0].clone(), ..Default::default() };
    let mut pair = ImpairedPair::with_options(&relay, &opts)?;
    let dir = dir.join("loss");
    std::fs::create_dir_all(&dir)?;
    // Owned: the relay is restarted (`pair` borrowed mutably) between the rows.
    let (ns, peer_ns, addr, peer_addr) =
        (pair.ns().to_string(), pair.peer_ns().to_string(), pair.addr(), pair.peer_addr());
    // The relay running now has seen no row yet (it was started for the first, or restarted
    // after the last).
    let mut fresh = true;
    for (i, args) in settings.iter().enumerate() {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = TcpBench {
            ns: &ns,
            ifname: IMPAIRED_IF,
            peer_ns: &peer_ns,
            peer_ifname: IMPAIRED_PEER_IF,
            dir: &dir,
            bin,
            server_addr: addr,
            peer_addr,
            client_cpu: cpus.0,
            server_cpu: cpus.1,
            quick,
            secs: 0.0,
        };
        if i == 0 {
            t.prepare()?;
        }
        let impairment = format!("xsknet-impair {}", args.join(" "));
        // The kernel with CUBIC, as xsknet (Linux's default, CONFIG_DEFAULT_TCP_CONG); and,
        // when this machine's default is another (bbr here), with that one too, for reference.
        let default_cc = t.default_congctl();
        for (server, cc) in [("nginx", Some(KERNEL_CC)), ("nginx", None), ("xsknet-http", None)] {
            stopped()?;
            if server == "nginx" && (!have("nginx") || (cc.is_none() && default_cc == KERNEL_CC)) {
                continue;
            }
            if !fresh {
                // The previous row's counters, and a relay of this setting from its start.
                let stats = pair.restart_relay(&a)?;
                attach_relay_stats(&mut r.loss, &stats);
            }
            r.loss.push(t.lossy_transfer(server, cc, &impairment)?);
            fresh = false;
        }
    }
    let stats = pair.stop_relay()?;
    attach_relay_stats(&mut r.loss, &stats);
    Ok(())
}

/// Puts the relay's counters (its `--stats-json`, over the last row's transfer alone) in the
/// last row's `detail.relay`.
fn attach_relay_stats(rows: &mut [TcpRow], stats: &str) {
    if let Some(last) = rows.last_mut() {
        last.detail["relay"] = serde_json::from_str(stats).unwrap_or_else(|_| json!({ "unreadable": stats }));
    }
}

/// Legitimate connects per second beside the SYN flood.
pub const SYN_FLOOD_CONNECT_RATE: u32 = 200;

/// The resident memory of some processes, kB in all (`VmRSS`); `None` if one is gone.
fn rss_kb(pids: &[u32]) -> Option<u64> {
    pids.iter()
        .map(|p| {
            let text = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .sum()
}

/// The frames hping3 said it sent ("N packets transmitted, …").
fn hping_sent(log: &str) -> Option<u64> {
    log.lines().find_map(|l| l.split_once(" packets transmitted").and_then(|(n, _)| n.trim().parse().ok()))
}

/// The pid of a process whose command line (arguments joined by spaces) matches.
fn find_pid(matches: impl Fn(&str) -> bool) -> Option<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        if pid == me {
            return None;
        }
        let raw = std::fs::read(e.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        // `ip netns exec` and `taskset` exec: the program's own command line, its binary first.
        (!cmdline.starts_with("ip ") && !cmdline.starts_with("taskset ") && matches(&cmdline)).then_some(pid)
    })
}

/// The TCP counters of an xsknet report worth keeping beside a row.
fn tcp_counters(counters: &Value) -> Value {
    let Some(map) = counters.as_object() else { return Value::Null };
    Value::Object(
        map.iter()
            .filter(|(k, v)| (k.starts_with("Tcp") || k.starts_with("Syncookies")) && v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// A figure as the tables print it ("–" when not measured).
fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "–".into(),
    }
}

/// Where a setup (the section's, or its `loss`) says its rows ran: (clients, servers), e.g.
/// ("peer namespace, CPU 0", "server namespace, CPU 1"); `None` when it does not say.
fn placement(setup: &Value) -> Option<(&str, &str)> {
    Some((setup["clients"].as_str()?, setup["servers"].as_str()?))
}

/// The TCP section's Markdown: one table per kind of row, then issue 10's goals.
pub fn markdown(r: &TcpResults) -> String {
    let mut md = String::from("\n### TCP: xsknet beside the kernel\n\n");
    // The section's own pair holds every row but the loss rows: when none of those ran (only
    // the loss rows, `--loss-only`), its setup names no namespaces.
    match placement(&r.setup) {
        Some((c, s)) => md.push_str(&format!(
            "Clients in the {c}, servers in the {s}; each row's commands are in the JSON (`tcp`).\n"
        )),
        None => md.push_str("Each row's commands are in the JSON (`tcp`).\n"),
    }
    for s in &r.skipped {
        md.push_str(&format!("\nNot measured: {s}.\n"));
    }
    if !r.requests.is_empty() {
        md.push_str(&format!(
            "\n| requests, 1 KiB file, {CONNECTIONS} connections | requests/s | p50 µs | p90 µs | p99 µs | errors |\n\
             |---|---:|---:|---:|---:|---:|\n"
        ));
        for row in &r.requests {
            let errors = ["socket_errors", "non_2xx", "failed"].iter().filter_map(|k| row.get(k)).sum::<f64>();
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {errors:.0} |\n",
                row.what,
                fmt(row.get("requests_per_s"), 0),
                fmt(row.get("p50_us"), 0),
                fmt(row.get("p90_us"), 0),
                fmt(row.get("p99_us"), 0),
            ));
        }
    }
    if !r.request_response.is_empty() {
        md.push_str(&format!(
            "\n| request/response, one connection, {RR_SIZE} bytes | round trips/s | p50 µs | p99 µs | p99.9 µs | max µs |\n\
             |---|---:|---:|---:|---:|---:|\n"
        ));
        for row in &r.request_response {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                row.what,
                fmt(row.get("rate_per_s"), 0),
                fmt(row.get("p50_us"), 1),
                fmt(row.get("p99_us"), 1),
                fmt(row.get("p99.9_us"), 1),
                fmt(row.get("max_us"), 1),
            ));
        }
    }
    if !r.bulk_send.is_empty() {
        md.push_str(&format!(
            "\n| bulk send: curl fetching {} MiB | Gbit/s (median) | min | max |\n|---|---:|---:|---:|\n",
            BIG_FILE >> 20
        ));
        for row in &r.bulk_send {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.what,
                fmt(row.get("gbit_per_s"), 2),
                fmt(row.get("gbit_per_s_min"), 2),
                fmt(row.get("gbit_per_s_max"), 2)
            ));
        }
    }
    if !r.bulk_receive.is_empty() {
        md.push_str(&format!(
            "\n| bulk receive: {} MB from a kernel client | transfers | Gbit/s (median) | min | max | server CPU s/GB | both cores' CPU s/GB |\n\
             |---|---:|---:|---:|---:|---:|---:|\n",
            r.setup["bulk_receive_bytes"].as_f64().unwrap_or(0.0) / 1e6
        ));
        let mut seen: Vec<&str> = Vec::new();
        for row in &r.bulk_receive {
            if seen.contains(&row.server.as_str()) {
                continue;
            }
            seen.push(&row.server);
            let of = |key: &str| -> Vec<f64> {
                r.bulk_receive.iter().filter(|x| x.server == row.server).filter_map(|x| x.get(key)).collect()
            };
            let med = |key: &str| {
                let v = of(key);
                (!v.is_empty()).then(|| median(&v))
            };
            let rates = of("gbit_per_s");
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                row.what,
                rates.len(),
                fmt(med("gbit_per_s"), 2),
                fmt(rates.iter().copied().reduce(f64::min), 2),
                fmt(rates.iter().copied().reduce(f64::max), 2),
                fmt(med("server_cpu_s_per_gb"), 2),
                fmt(med("machine_cpu_s_per_gb"), 2)
            ));
        }
    }
    if !r.syn_flood.is_empty() {
        md.push_str(&format!(
            "\n| connects ({SYN_FLOOD_CONNECT_RATE}/s, 1 s timeout) beside a SYN flood | flood pps | established | connect p50 µs | p99 µs | server RSS kB before → after |\n\
             |---|---:|---:|---:|---:|---|\n"
        ));
        for row in &r.syn_flood {
            md.push_str(&format!(
                "| {} | {} | {} % | {} | {} | {} → {} |\n",
                row.what,
                fmt(row.get("flood_pps"), 0),
                fmt(row.get("success_pct"), 2),
                fmt(row.get("connect_p50_us"), 0),
                fmt(row.get("connect_p99_us"), 0),
                fmt(row.get("rss_kb_before"), 0),
                fmt(row.get("rss_kb_after"), 0),
            ));
        }
    }
    if !r.loss.is_empty() {
        let placed = placement(&r.setup["loss"])
            .map(|(c, s)| format!(", clients in the {c}, servers in the {s}"))
            .unwrap_or_default();
        md.push_str(&format!(
            "\nThe loss rows run in namespaces of their own{placed}, with `xsknet-impair` relaying between \
             them in a middle namespace (unpinned), started afresh for each row; the relay's counters for \
             each row (frames dropped by loss, by its queue limit, …) are in the row's `detail.relay`.\n"
        ));
        md.push_str(&format!(
            "\n| under loss: curl fetching {} MiB through xsknet-impair | Mbit/s | seconds | failed |\n|---|---:|---:|---:|\n",
            r.loss[0].detail["bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        ));
        for row in &r.loss {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.what,
                fmt(row.get("mbit_per_s"), 1),
                fmt(row.get("secs"), 2),
                fmt(row.get("failed"), 0)
            ));
        }
    }
    md.push_str(&goals(r));
    md
}

/// The median over rounds of xsknet's requests/s over nginx's in the same round, with
/// `client`, when the rows carry their round (`--requests-only --runs N`): each pair ran side
/// by side, so a burst of load from elsewhere that lands on one round moves one ratio only.
fn median_round_ratio(rows: &[TcpRow], client: &str) -> Option<(f64, usize)> {
    let rate = |server: &str, round: &Value| {
        rows.iter()
            .find(|r| r.server == server && r.what.contains(client) && &r.detail["round"] == round)
            .and_then(|r| r.get("requests_per_s"))
    };
    let mut rounds: Vec<&Value> = rows.iter().map(|r| &r.detail["round"]).filter(|v| !v.is_null()).collect();
    rounds.dedup();
    let v: Vec<f64> =
        rounds.into_iter().filter_map(|round| Some(rate("xsknet-http", round)? / rate("nginx", round)?)).collect();
    if v.len() < 2 {
        return None;
    }
    Some((median(&v), v.len()))
}

/// The median requests/s of `server`'s rows with `client`, and how many rows there were.
fn median_rate(rows: &[TcpRow], server: &str, client: &str) -> Option<(f64, usize)> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.server == server && r.what.contains(client))
        .filter_map(|r| r.get("requests_per_s"))
        .collect();
    if v.is_empty() {
        return None;
    }
    Some((median(&v), v.len()))
}

/// The median Gbit/s of all the transfers of `server`'s bulk-send or bulk-receive rows (each
/// row's `detail.runs_gbit_per_s`, or its own rate when those are not there), and how many.
fn bulk_rate(rows: &[TcpRow], server: &str) -> Option<(f64, usize)> {
    let v: Vec<f64> = rows
        .iter()
        .filter(|r| r.server == server)
        .flat_map(|r| match r.detail["runs_gbit_per_s"].as_array() {
            Some(a) => a.iter().filter_map(Value::as_f64).collect(),
            None => r.get("gbit_per_s").into_iter().collect::<Vec<_>>(),
        })
        .collect();
    (!v.is_empty()).then(|| (median(&v), v.len()))
}

/// Where each of issue 10's goals stands in this run.
pub fn goals(r: &TcpResults) -> String {
    let mark = |ok: bool| if ok { "met" } else { "not met" };
    let mut out = String::from("\n| TCP goal | this run | |\n|---|---|---|\n");
    for (client, factor, label) in [("wrk", 1.5, "keep-alive (wrk)"), ("ab", 2.0, "a connection per request (ab)")] {
        let (x, n) = (median_rate(&r.requests, "xsknet-http", client), median_rate(&r.requests, "nginx", client));
        let line = match (x, n) {
            (Some((x, runs)), Some((n, _))) => match median_round_ratio(&r.requests, client) {
                // Interleaved rounds: judged on the rounds' own ratios.
                Some((q, rounds)) => format!(
                    "{x:.0} vs {n:.0} requests/s (medians of {runs} runs, {:.2} ×); median of the {rounds} rounds' \
                     ratios {q:.2} × | {} |",
                    x / n,
                    mark(q >= factor)
                ),
                None => {
                    let q = x / n;
                    let of = if runs > 1 { format!(" (medians of {runs} runs)") } else { String::new() };
                    format!("{x:.0} vs {n:.0} requests/s{of} ({q:.2} ×) | {} |", mark(q >= factor))
                }
            },
            _ => "not measured | |".into(),
        };
        out.push_str(&format!("| requests/s, {label}, ≥ {factor} × nginx's | {line}\n"));
    }
    let rr = |s: &str| r.request_response.iter().find(|x| x.server == s);
    let line = match (rr("xsknet-echo"), rr("kernel-tcp-echo-busy")) {
        (Some(x), Some(k)) => match (x.get("p50_us"), k.get("p50_us"), x.get("p99_us"), k.get("p99_us")) {
            (Some(x50), Some(k50), Some(x99), Some(k99)) => {
                format!("p50 {x50:.1} vs {k50:.1} µs, p99 {x99:.1} vs {k99:.1} µs | {} |", mark(x50 < k50 && x99 < k99))
            }
            _ => "not measured | |".into(),
        },
        _ => "not measured | |".into(),
    };
    out.push_str(&format!(
        "| one-connection request/response p50 and p99 below the busy-polling kernel server's | {line}\n"
    ));
    let line = match (bulk_rate(&r.bulk_receive, "xsknet-sink"), bulk_rate(&r.bulk_receive, "iperf3")) {
        (Some((x, n)), Some((k, _))) => {
            let same = bulk_rate(&r.bulk_receive, "kernel-tcp-sink")
                .map(|(s, _)| format!("; the same sender to the kernel's tcp-sink {s:.2}"))
                .unwrap_or_default();
            let gro = bulk_rate(&r.bulk_receive, "kernel-tcp-sink-gro")
                .map(|(s, _)| format!(", {s:.2} with GRO on its veth"))
                .unwrap_or_default();
            let same = same + &gro;
            let of = if n > 1 { format!(" (medians of {n} transfers each)") } else { String::new() };
            format!("{x:.2} vs iperf3's {k:.2} Gbit/s{same}{of} | {} |", mark(x >= k))
        }
        _ => "not measured | |".into(),
    };
    out.push_str(&format!("| bulk receive ≥ the kernel's rate | {line}\n"));
    let line = match (bulk_rate(&r.bulk_send, "xsknet-http"), bulk_rate(&r.bulk_send, "nginx-gso-off")) {
        (Some((x, n)), Some((k, m))) => {
            let of = if n > 1 || m > 1 { format!(" (medians of {n} and {m} transfers)") } else { String::new() };
            format!("{x:.2} vs {k:.2} Gbit/s{of} | {} |", mark(x >= k))
        }
        _ => "not measured | |".into(),
    };
    out.push_str(&format!("| bulk send ≥ nginx's with GSO off (like for like) | {line}\n"));
    // The kernel's row with CUBIC (xsknet's algorithm), not the machine's default's.
    let lossy = |server: &str, pct: &str| {
        r.loss.iter().find(|x| {
            x.server == server
                && x.what.contains(&format!("--loss {pct} "))
                && (server != "nginx" || x.detail["congestion_control"] == KERNEL_CC)
        })
    };
    let line = match (lossy("xsknet-http", "1"), lossy("nginx", "1")) {
        (Some(x), Some(k)) => match (x.get("mbit_per_s"), k.get("mbit_per_s")) {
            (Some(a), Some(b)) => format!("{a:.1} vs {b:.1} Mbit/s ({:.2} ×) | {} |", a / b, mark(a >= 0.9 * b)),
            (None, _) => "xsknet's transfer failed | not met |".into(),
            (Some(a), None) => format!("{a:.1} Mbit/s; the kernel's transfer failed | |"),
        },
        _ => "not measured | |".into(),
    };
    out.push_str(&format!("| goodput at 1 % loss (delay 1 ms) ≥ 0.9 × the kernel's | {line}\n"));
    let line = match lossy("xsknet-http", "5") {
        Some(x) => {
            let failed = x.get("failed").unwrap_or(1.0) > 0.0;
            format!(
                "{} | {} |",
                if failed {
                    "failed".to_string()
                } else {
                    format!("completed, {:.1} Mbit/s", x.get("mbit_per_s").unwrap_or(0.0))
                },
                mark(!failed)
            )
        }
        None => "not measured | |".into(),
    };
    out.push_str(&format!("| no transfer fails at 5 % loss | {line}\n"));
    let line = match r.syn_flood.iter().find(|x| x.server == "xsknet-http" && x.detail["load"] == "flood") {
        Some(x) => match (x.get("success_pct"), x.get("rss_kb_before"), x.get("rss_kb_after")) {
            (Some(ok), Some(a), Some(b)) => {
                let growth = (b - a) / a.max(1.0) * 100.0;
                format!(
                    "{ok:.2} % established at {} SYN/s; RSS {a:.0} → {b:.0} kB ({growth:+.1} %) | {} |",
                    fmt(x.get("flood_pps"), 0),
                    mark(ok >= 99.0 && growth <= 5.0)
                )
            }
            _ => "not measured | |".into(),
        },
        None => "not measured | |".into(),
    };
    out.push_str(&format!(
        "| under a SYN flood, ≥ 99 % of legitimate connects succeed, memory flat (RSS within 5 %) | {line}\n"
    ));
    out
}

/// The request/response round trips by percentile, one line per server, from the
/// clients' interval logs; false when there is nothing to draw.
pub fn plot(path: &Path, r: &TcpResults) -> bool {
    let mut series = Vec::new();
    for row in &r.request_response {
        let Some(hlog) = row.detail["hlog"].as_str() else { continue };
        match crate::hist::read_hlog(&PathBuf::from(hlog)) {
            Ok(h) => series.push((row.server.clone(), h)),
            Err(e) => eprintln!("side-by-side: {hlog}: {e}"),
        }
    }
    if series.is_empty() {
        return false;
    }
    let refs: Vec<(String, &hdrhistogram::Histogram<u64>)> = series.iter().map(|(n, h)| (n.clone(), h)).collect();
    let title = format!("TCP request/response round trip, one connection, {RR_SIZE} bytes");
    match crate::hist::plot_percentiles(path, &title, &refs) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("side-by-side: plot: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_settings_default_and_custom_each_get_a_seed() {
        let d = loss_settings(None);
        assert_eq!(d.len(), LOSS_SETTINGS.len());
        assert_eq!(d[0], ["--loss", "1", "--delay", "1", "--seed", "1"]);
        assert_eq!(loss_settings(Some("  ")), d);
        let c = loss_settings(Some("--loss 3 --delay 5 --reorder 5; --loss 1 --delay 1 --seed 7;"));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], ["--loss", "3", "--delay", "5", "--reorder", "5", "--seed", "1"]);
        assert_eq!(c[1], ["--loss", "1", "--delay", "1", "--seed", "7"]);
    }

    const WRK: &str = "Running 5s test @ http://10.77.0.2:80/1k.bin
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   281.54us   60.12us   2.10ms   90.00%
    Req/Sec    62.10k     1.20k   64.00k    70.00%
  Latency Distribution
     50%  262.00us
     75%  300.00us
     90%  350.00us
     99%    1.20ms
  310500 requests in 5.00s, 360.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  62100.00
Transfer/sec:     72.00MB
";

    #[test]
    fn wrk_output_read() {
        let m = parse_wrk(WRK).unwrap();
        assert_eq!(m["requests_per_s"], 62100.0);
        assert_eq!(m["p50_us"], 262.0);
        assert_eq!(m["p90_us"], 350.0);
        assert_eq!(m["p99_us"], 1200.0);
        assert_eq!(m["requests"], 310500.0);
        assert_eq!(m["socket_errors"], 3.0);
        assert_eq!(m["non_2xx"], 0.0);
        assert!(parse_wrk("Running 5s test\n").is_err());
        assert_eq!(wrk_duration_us("2.00s"), Some(2e6));
    }

    #[test]
    fn ab_output_and_csv_read() {
        let text = "Complete requests:      2000\nFailed requests:        3\n\
                    Requests per second:    21000.50 [#/sec] (mean)\n";
        let mut csv = String::from("Percentage served,Time in ms\n");
        for p in 0..=100 {
            csv.push_str(&format!("{p},{}\n", 0.5 + p as f64 / 100.0));
        }
        let m = parse_ab(text, &csv).unwrap();
        assert_eq!(m["requests_per_s"], 21000.5);
        assert_eq!(m["requests"], 2000.0);
        assert_eq!(m["failed"], 3.0);
        assert_eq!(m["non_2xx"], 0.0);
        assert!((m["p50_us"] - 1000.0).abs() < 1e-6);
        assert!((m["p99_us"] - 1490.0).abs() < 1e-6);
        assert!((m["max_us"] - 1500.0).abs() < 1e-6);
        assert!(parse_ab(text, "Percentage served,Time in ms\n").is_err());
    }

    fn row(server: &str, what: &str, k: &[(&str, f64)]) -> TcpRow {
        TcpRow {
            server: server.into(),
            what: what.into(),
            setup: vec![],
            metrics: k.iter().map(|(a, b)| (a.to_string(), *b)).collect(),
            detail: Value::Null,
        }
    }

    /// A loss row as `lossy_transfer` makes it: its `detail` holds the file's size.
    fn loss_row(server: &str) -> TcpRow {
        let mut r = row(server, &format!("{server}, xsknet-impair --loss 3 --seed 4"), &[("mbit_per_s", 10.0)]);
        r.detail = json!({ "bytes": 4.0 * 1048576.0, "impairment": "xsknet-impair --loss 3 --seed 4" });
        r
    }

    #[test]
    fn markdown_says_where_the_rows_ran_in_every_combination() {
        // Only the loss rows (`--tcp-only --loss-only`): no other row set the section's setup.
        let r = TcpResults { loss: vec![loss_row("nginx"), loss_row("xsknet-http")], ..Default::default() };
        let md = markdown(&r);
        assert!(!md.contains('?'), "{md}");
        assert!(md.contains("\nEach row's commands are in the JSON"), "{md}");
        // With where they ran (`under_loss` records it): named before their table.
        let mut r = r;
        r.setup["loss"] = loss_setup(("0", "1"), &loss_settings(None));
        let md = markdown(&r);
        assert!(!md.contains('?'), "{md}");
        let loss = md.find(
            "The loss rows run in namespaces of their own, clients in the peer namespace, CPU 0, \
                            servers in the server namespace, CPU 1, with `xsknet-impair`",
        );
        assert!(loss.is_some_and(|at| at < md.find("| under loss").unwrap()), "{md}");
        // The whole section: the rows of the section's own pair, and the loss rows in theirs.
        let mut all = TcpResults {
            setup: json!({ "clients": "peer namespace, CPU 0", "servers": "server namespace, CPU 1" }),
            requests: vec![row("nginx", "nginx, wrk keep-alive", &[("requests_per_s", 60_000.0)])],
            ..r
        };
        all.setup["loss"] = loss_setup(("0", "1"), &loss_settings(None));
        let md = markdown(&all);
        assert!(!md.contains('?'), "{md}");
        assert!(
            md.contains("\nClients in the peer namespace, CPU 0, servers in the server namespace, CPU 1; each row's")
        );
        assert!(md.contains("The loss rows run in namespaces of their own, clients in the peer namespace"), "{md}");
        // Neither: no loss rows, no setup (a section that measured nothing).
        let md = markdown(&TcpResults::default());
        assert!(!md.contains('?') && !md.contains("loss rows"), "{md}");
    }

    #[test]
    fn goals_compare_like_with_like() {
        let r = TcpResults {
            requests: vec![
                row("nginx", "nginx, wrk keep-alive", &[("requests_per_s", 60_000.0)]),
                row("xsknet-http", "xsknet http, wrk keep-alive", &[("requests_per_s", 100_000.0)]),
                row("nginx", "nginx, ab, a connection per request", &[("requests_per_s", 20_000.0)]),
                row("xsknet-http", "xsknet http, ab, a connection per request", &[("requests_per_s", 30_000.0)]),
            ],
            request_response: vec![
                row("kernel-tcp-echo-busy", "", &[("p50_us", 10.0), ("p99_us", 20.0)]),
                row("xsknet-echo", "", &[("p50_us", 8.0), ("p99_us", 25.0)]),
            ],
            bulk_send: vec![
                row("nginx", "", &[("gbit_per_s", 20.0)]),
                row("nginx-gso-off", "", &[("gbit_per_s", 3.0)]),
                row("xsknet-http", "", &[("gbit_per_s", 3.5)]),
            ],
            bulk_receive: vec![row("iperf3", "", &[("gbit_per_s", 6.0)])],
            ..TcpResults::default()
        };
        let g = goals(&r);
        assert!(
            g.contains("| requests/s, keep-alive (wrk), ≥ 1.5 × nginx's | 100000 vs 60000 requests/s (1.67 ×) | met |"),
            "{g}"
        );
        assert!(g.contains("30000 vs 20000 requests/s (1.50 ×) | not met |"), "{g}");
        assert!(g.contains("p50 8.0 vs 10.0 µs, p99 25.0 vs 20.0 µs | not met |"), "{g}");
        // GSO off is the like-for-like row, not nginx's GSO on.
        assert!(g.contains("| bulk send ≥ nginx's with GSO off (like for like) | 3.50 vs 3.00 Gbit/s | met |"), "{g}");
        assert!(g.contains("| bulk receive ≥ the kernel's rate | not measured | |"), "{g}");
    }

    /// Bulk receive in rounds: the goal on the medians of each receiver's transfers, the table
    /// one line per receiver with its median, min and max.
    #[test]
    fn bulk_receive_rounds_are_judged_on_medians() {
        let mut bulk_receive = Vec::new();
        for (round, x, k, s) in [(1, 3.0, 4.0, 4.1), (2, 4.5, 3.5, 3.6), (3, 4.2, 3.9, 1.0)] {
            for (server, rate) in
                [("xsknet-sink", x), ("iperf3", k), ("kernel-tcp-sink", s), ("kernel-tcp-sink-gro", s + 4.0)]
            {
                let mut r = row(server, server, &[("gbit_per_s", rate), ("machine_cpu_s_per_gb", 2.0)]);
                r.detail = json!({ "round": round });
                bulk_receive.push(r);
            }
        }
        let mut r = TcpResults { bulk_receive, ..TcpResults::default() };
        r.setup = json!({ "bulk_receive_bytes": 2e9 });
        let g = goals(&r);
        assert!(
            g.contains(
                "| bulk receive ≥ the kernel's rate | 4.20 vs iperf3's 3.90 Gbit/s; the same sender to the kernel's \
                 tcp-sink 3.60, 7.60 with GRO on its veth (medians of 3 transfers each) | met |"
            ),
            "{g}"
        );
        let md = markdown(&r);
        assert!(md.contains("| xsknet-sink | 3 | 4.20 | 3.00 | 4.50 | – | 2.00 |"), "{md}");
        assert_eq!(md.matches("| iperf3 | 3 |").count(), 1, "{md}");
    }

    #[test]
    fn interleaved_rounds_are_judged_on_their_own_ratios() {
        let mut requests = Vec::new();
        // Round 3's xsknet run met a burst of load from elsewhere.
        for (round, x, n) in [(1, 38_000.0, 19_000.0), (2, 37_000.0, 18_000.0), (3, 25_000.0, 18_000.0)] {
            for (server, rate) in [("nginx", n), ("xsknet-http", x)] {
                let mut r =
                    row(server, &format!("{server}, ab, a connection per request"), &[("requests_per_s", rate)]);
                r.detail = json!({ "round": round });
                requests.push(r);
            }
        }
        let g = goals(&TcpResults { requests, ..TcpResults::default() });
        assert!(
            g.contains(
                "37000 vs 18000 requests/s (medians of 3 runs, 2.06 ×); median of the 3 rounds' ratios 2.00 × | met |"
            ),
            "{g}"
        );
    }

    #[test]
    fn bulk_send_is_judged_on_all_the_transfers_of_the_like_for_like_rows() {
        let mut bulk_send = Vec::new();
        for (server, runs) in [
            ("nginx-gso-off", [4.0, 5.0, 6.0]),
            ("nginx-gso-off-bbr", [9.0, 9.0, 9.0]),
            ("xsknet-http", [1.0, 5.5, 7.0]),
            ("nginx-gso-off", [4.5, 4.6, 4.7]),
            ("xsknet-http", [5.2, 5.3, 2.0]),
        ] {
            let mut r = row(server, "", &[("gbit_per_s", median(&runs))]);
            r.detail = json!({ "runs_gbit_per_s": runs });
            bulk_send.push(r);
        }
        let g = goals(&TcpResults { bulk_send, ..TcpResults::default() });
        // xsknet 1, 2, 5.2, 5.3, 5.5, 7 → 5.3; nginx (CUBIC) 4, 4.5, 4.6, 4.7, 5, 6 → 4.7;
        // the reference row on BBR is not the comparison.
        assert!(
            g.contains("| bulk send ≥ nginx's with GSO off (like for like) | 5.30 vs 4.70 Gbit/s (medians of 6 and 6 transfers) | met |"),
            "{g}"
        );
    }

    #[test]
    fn rows_without_their_own_congestion_control_get_the_sections() {
        let cc = json!({ "algorithm": "cubic", "commands": ["ip netns exec a ip route replace 10.77.0.1/32 dev v congctl cubic"] });
        let mut rows = vec![row("nginx-gso-off", "", &[]), row("nginx-gso-off-bbr", "", &[])];
        rows[0].detail = json!({});
        rows[0].setup = vec!["nginx".into()];
        rows[1].detail = json!({ "congestion_control": "bbr" });
        rows[1].setup = vec!["ip route del".into(), "nginx".into()];
        stamp_congctl(&mut rows, &cc);
        assert_eq!(rows[0].detail["congestion_control"], "cubic");
        assert_eq!(rows[0].setup, ["ip netns exec a ip route replace 10.77.0.1/32 dev v congctl cubic", "nginx"]);
        assert_eq!(rows[1].detail["congestion_control"], "bbr");
        assert_eq!(rows[1].setup, ["ip route del", "nginx"]);
    }

    #[test]
    fn median_of_runs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 4.0]), 4.0);
        assert!(median(&[]).is_nan());
    }
}
