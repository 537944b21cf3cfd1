//! Legitimate traffic keeps flowing under a flood (issue 12): `xsknet echo` in one namespace,
//! the generator flooding it at full rate from spoofed, off-link sources in the other, and
//! meanwhile a kernel UDP client (`udp-check`'s fixed-rate mode) sending 1000 datagrams a second
//! from the peer's own address: at least 99 % of them must come back byte-exact within the
//! timeout, and none corrupted.
//!
//! With `--guard` (when this xsknet has it) the flood goes to the echo port itself, the flood the
//! guard is for. Without it, to a closed port: xsknet's own path must absorb that one (each
//! frame parsed, counted in `UdpNoPorts`, its ICMP error rate-limited as Linux's), while a flood
//! to the open port costs a reply per frame, which the guard is there to spare (`make bench`'s
//! flood section measures both).
//!
//! Placement as in `make bench`'s flood section: the generator on CPU 0, the server on CPU 1,
//! the client on CPU 0 at SCHED_FIFO (it preempts the flooder when its echo comes back).
//! Privileged: skipped without root, failed under CI.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xsknet::testing::{command_in, format_mac, require_root, NetNsPair, NetNsPairOptions};

const PEER: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
const PORT: &str = "7";
/// A port nobody serves: the flood's target without the guard.
const CLOSED_PORT: &str = "9";
/// RFC 2544's benchmarking range: the flood's spoofed sources, off the link.
const SPOOF: &str = "198.18.0.0/15";
const FLOOD_SRC: &str = "198.18.0.1/15";
const CLIENT_SECS: &str = "4";
/// The flood starts first (at full rate before the client starts) and ends after it.
const FLOOD_SETTLE: Duration = Duration::from_millis(500);
const FLOOD_SECS: &str = "5.5";

fn xsknet_bin() -> PathBuf {
    std::env::var_os("XSKNET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/xsknet")))
}

/// A child in a namespace, output to a file, killed when dropped (a failing test leaves
/// nothing running in a namespace about to be removed).
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn spawn(ns: &str, args: &[String], log: PathBuf) -> Running {
        let file = std::fs::File::create(&log).unwrap();
        let child = command_in(ns, args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("ip netns exec {ns}: {e}"));
        Running { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&mut self, what: &str, timeout: Duration) {
        let t0 = Instant::now();
        while !self.log().contains(what) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("exited ({status}) before '{what}':\n{}", self.log());
            }
            assert!(t0.elapsed() < timeout, "no '{what}' after {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(t0.elapsed() < timeout, "still running after {timeout:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `exe [sub] --help` lists `flag`.
fn has_flag(exe: &Path, sub: Option<&str>, flag: &str) -> bool {
    let out = Command::new(exe).args(sub).arg("--help").output().unwrap();
    String::from_utf8_lossy(&out.stdout).split(|c: char| c.is_whitespace() || c == ',').any(|w| w == flag)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn legitimate_traffic_keeps_flowing_under_a_flood() {
    if !require_root("legitimate_traffic_keeps_flowing_under_a_flood") {
        return;
    }
    let xsknet = xsknet_bin();
    if !xsknet.exists() {
        let msg = format!("{} not built: run cargo build --release --workspace (or set XSKNET_BIN)", xsknet.display());
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("legitimate_traffic_keeps_flowing_under_a_flood: skipped: {msg}");
        return;
    }
    let pktgen = Path::new(env!("CARGO_BIN_EXE_xsknet-pktgen"));
    let guard = has_flag(&xsknet, Some("echo"), "--guard");
    let dir = std::env::temp_dir().join(format!("xsknet-flood-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pair =
        NetNsPair::with_options(&NetNsPairOptions { peer_addr: Some((PEER, 24)), ipv6: false, ..Default::default() })
            .unwrap();

    // The server: its replies to the flood's off-link sources go through the peer as gateway.
    let mut echo_args = strings(&["taskset", "-c", "1"]);
    echo_args.push(xsknet.to_string_lossy().into_owned());
    echo_args.extend(strings(&["echo", "--iface", pair.ifname(), "--ip", &format!("{SERVER}/24"), "--port", PORT]));
    echo_args.extend(strings(&["--gateway", &PEER.to_string(), "--duration", "30"]));
    if has_flag(&xsknet, Some("echo"), "--guard-rules") {
        // The flood's sources are random over a /15, a few packets a second each: the limit
        // that stops them is global, and the client, allowed, is never dropped by it.
        let rules = dir.join("guard-rules.toml");
        std::fs::write(
            &rules,
            format!("drop_malformed = true\nallow = [\"{PEER}\"]\n\n[global]\nudp = {{ pps = 20000, burst = 2000 }}\n"),
        )
        .unwrap();
        echo_args.extend(["--guard-rules".to_string(), rules.to_string_lossy().into_owned()]);
    } else if guard {
        echo_args.push("--guard".into());
    }
    let mut echo = Running::spawn(pair.ns(), &echo_args, dir.join("echo.log"));
    echo.wait_for("ready", Duration::from_secs(10));

    let flood_json = dir.join("flood.json");
    let mut flood_args = strings(&["taskset", "-c", "0"]);
    flood_args.push(pktgen.to_string_lossy().into_owned());
    flood_args.extend(strings(&[
        "--iface",
        pair.peer_ifname(),
        "--src",
        FLOOD_SRC,
        "--dst",
        &SERVER.to_string(),
        "--dst-mac",
        &format_mac(pair.mac()),
        "--dst-port",
        if guard { PORT } else { CLOSED_PORT },
        "--size",
        "60",
        "--duration",
        FLOOD_SECS,
        "--progress",
        "off",
        "--json",
        &flood_json.to_string_lossy(),
    ]));
    flood_args.extend(strings(&["--flood", "udp", "--spoof", SPOOF, "--no-xdp"]));
    let mut flood = Running::spawn(pair.peer_ns(), &flood_args, dir.join("flood.log"));
    std::thread::sleep(FLOOD_SETTLE);

    let client = [
        "chrt",
        "-f",
        "50",
        "taskset",
        "-c",
        "0",
        env!("CARGO_BIN_EXE_udp-check"),
        "--to",
        &format!("{SERVER}:{PORT}"),
        "--bind",
        &format!("{PEER}:0"),
        "--rate",
        "1000",
        "--duration",
        CLIENT_SECS,
        "--sizes",
        "18,64,512",
        "--timeout-ms",
        "200",
        "--min-ok",
        "99",
        "--json",
    ];
    let out = command_in(pair.peer_ns(), &client).stdin(Stdio::null()).output().unwrap();
    let flood_status = flood.wait(Duration::from_secs(15));
    drop(echo);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(flood_status.success(), "the flood failed:\n{}", flood.log());
    let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&flood_json).unwrap()).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("{}")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let flood_pps = f["sent"].as_f64().unwrap_or(0.0) / f["elapsed_s"].as_f64().unwrap_or(f64::INFINITY);
    eprintln!(
        "guard: {guard}; flood {:.3} Mpps to port {}; client: {} of {} byte-exact, rtt {}",
        flood_pps / 1e6,
        f["setup"]["dst_port"],
        r["ok"],
        r["sent"],
        r["rtt_us"]
    );
    // A flood it was: far above the client's rate (one generator core reaches hundreds of kpps).
    assert!(flood_pps > 50_000.0, "flood of {flood_pps:.0} pps: {f}");
    assert_eq!(r["sent"].as_u64(), Some(4000), "{stdout}\n{stderr}");
    assert_eq!(r["mismatches"].as_u64(), Some(0), "corrupted echoes: {stdout}\n{stderr}");
    assert!(
        r["ok_percent"].as_f64().is_some_and(|p| p >= 99.0),
        "under a flood of {flood_pps:.0} pps, fewer than 99 % of the legitimate echoes came back: {stdout}\n{stderr}"
    );
    assert!(out.status.success(), "udp-check: {stdout}\n{stderr}");
}
