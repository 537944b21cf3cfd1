//! `xsknet-soak` (`make soak DURATION=10m`): xsknet under mixed good and malformed traffic
//! for a long time, with sockets opening and closing, checked while it runs and at the end.
//!
//! In two network namespaces joined by a veth pair that it creates and removes (also on
//! failure and Ctrl-C), it starts `xsknet echo --churn-ports` (the server opens and closes
//! UDP sockets and TCP listeners while it serves) on CPU 1, measures the highest rate the
//! generator's mix reaches against it (`xsknet pktgen --flood mix` at full rate for a few
//! seconds, as `make bench` measures the sink) unless `--max-pps` gives it, and then for
//! `--duration` sends the mix at `--load` (80 %) of that rate from CPU 0, while a kernel
//! UDP client (`udp-check --rate`) probes the echo and kernel TCP clients connect, echo and
//! close. Every `--interval` it reads the instance's statistics through its control
//! endpoint (what `xsknet stat --json` reads) and its resident memory from /proc; at the
//! end it stops xsknet and reads its `--stats-json`. What it checks, and the summary it
//! prints, are in docs/soak.md. Exit status 0: PASS; 1: FAIL (the summary says what).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use xsknet::control::{Request, Snapshot};
use xsknet::snmp::MibCounter;
use xsknet::testing::{command_in, in_netns, NetNsPair, NetNsPairOptions};
use xsknet_bench::nsproc::NsProc as Proc;
use xsknet_bench::pktgen::mix::DEFAULT_CHURN_PORTS;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// xsknet's address, its echo port, the peer kernel's address and the generator's own.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const GEN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);
const PORT: u16 = 7;
/// UMEM frames of the server (its default) and their size: the UMEM mapping in /proc/PID/smaps.
const FRAMES: u64 = 8192;
const FRAME_SIZE: u64 = 2048;
/// CPUs: the generator (and on veth the receive path it drives), the server.
const GEN_CPU: &str = "0";
const SERVER_CPU: &str = "1";
/// The probe: datagrams of this payload, lost when not back byte-exact within the timeout
/// (long: on a shared machine a loaded loop answers late, and late is not lost).
const PROBE_PAYLOAD: &str = "18";
const PROBE_TIMEOUT_MS: &str = "1000";
/// The probe runs in windows of this length, each its own `udp-check`: an echo that
/// stops answering shows in the window it stopped in.
const PROBE_WINDOW: Duration = Duration::from_secs(5);
/// Time between TCP client rounds.
const TCP_ROUND: Duration = Duration::from_millis(20);
/// Long enough for two SYN retransmissions (1 s, then 2 s later): a loop behind drops SYNs at its rx ring.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);
const TCP_LINE: &[u8] = b"xsknet-soak: a line to echo over TCP, 64 bytes long, ends here\n";

#[derive(Parser)]
#[command(
    name = "xsknet-soak",
    version,
    about = "xsknet under mixed good and malformed traffic at 80 % of the measured maximum, with sockets \
             opening and closing, checked throughout (frames, memory, counters, the echo): docs/soak.md."
)]
struct Cli {
    /// How long to soak: seconds, or with a unit: 30s, 10m, 1h.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// The mix's maximum rate (packets/s) to take 80 % of; without it, measured at the start.
    #[arg(long, value_name = "PPS")]
    max_pps: Option<f64>,
    /// Share of the maximum to send at.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Seconds of the full-rate run that measures the maximum.
    #[arg(long, default_value_t = 3.0)]
    measure_secs: f64,
    /// Seconds between checks through the control endpoint.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// The probe's rate, datagrams/s (udp-check from the peer's kernel).
    #[arg(long, default_value_t = 200)]
    probe_rate: u64,
    /// The most the probe may lose over the run, percent, beyond 1.5 times the share of
    /// frames the kernel dropped at xsknet's full rx ring (the loop behind: the probe's
    /// datagrams are lost with the rest, no more).
    #[arg(long, default_value_t = 2.0)]
    max_probe_loss: f64,
    /// The most the resident memory outside the UMEM may grow after warm-up, KiB.
    #[arg(long, default_value_t = 2048)]
    rss_bound_kib: u64,
    /// Directory of xsknet-pktgen and udp-check (default: this binary's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The xsknet binary (default: $XSKNET_BIN, else xsknet in --bin-dir).
    #[arg(long)]
    xsknet: Option<PathBuf>,
    /// Write the summary as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// `30`, `30s`, `10m`, `1h`, `0.5m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1.0),
        Some('m') => (&s[..s.len() - 1], 60.0),
        Some('h') => (&s[..s.len() - 1], 3600.0),
        _ => (s, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("{s}: expected a duration like 30s, 10m or 1h"))?;
    let secs = v * mult;
    if !(1.0..1e7).contains(&secs) {
        return Err(format!("{s}: must be at least 1 second"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("xsknet-soak: needs root (namespaces, XDP, AF_XDP): sudo -E env PATH=\"$PATH\" make soak");
        return ExitCode::from(2);
    }
    if let Err(e) = xsknet::signal::install() {
        eprintln!("xsknet-soak: {e}");
        return ExitCode::from(2);
    }
    match run(&cli) {
        Ok(SoakEnd::Pass) => ExitCode::SUCCESS,
        Ok(SoakEnd::Fail) => ExitCode::FAILURE,
        // As a shell reports a program ended by SIGINT.
        Ok(SoakEnd::Interrupted { .. }) => ExitCode::from(130),
        Err(e) => {
            eprintln!("xsknet-soak: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resident memory of a process: VmRSS, and the part of it that is the UMEM (the
/// anonymous mapping of `FRAMES * FRAME_SIZE` bytes in /proc/PID/smaps), KiB.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct Rss {
    vm_rss_kib: u64,
    umem_kib: u64,
}

impl Rss {
    fn read(pid: u32) -> Option<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let vm_rss_kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB");
        let vm_rss_kib = vm_rss_kib.trim().parse().ok()?;
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
        let want = FRAMES * FRAME_SIZE / 1024;
        let mut umem_kib = 0;
        let mut in_umem = false;
        for line in smaps.lines() {
            let field = |name: &str| {
                line.strip_prefix(name).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            };
            if let Some(size) = field("Size:") {
                in_umem = size == want;
            } else if let Some(rss) = field("Rss:") {
                if in_umem {
                    umem_kib = umem_kib.max(rss);
                }
            }
        }
        Some(Rss { vm_rss_kib, umem_kib })
    }

    /// VmRSS without the UMEM: what the stack's own allocations hold.
    fn rest_kib(&self) -> u64 {
        self.vm_rss_kib.saturating_sub(self.umem_kib)
    }
}

/// One check through the control endpoint.
#[derive(Clone, Debug, serde::Serialize)]
struct Sample {
    t_s: f64,
    rx_frames: u64,
    census_total: usize,
    census_accounted: usize,
    in_socks: usize,
    in_reasm: usize,
    age_ms: f64,
    rss: Rss,
}

/// What the probe saw over the run, window by window.
#[derive(Default)]
struct ProbeTotals {
    windows: Vec<Value>,
    errors: Vec<String>,
}

/// The TCP clients' counts.
#[derive(Default)]
struct TcpCounts {
    echo_ok: AtomicU64,
    echo_failed: AtomicU64,
    churn_connected: AtomicU64,
    churn_refused: AtomicU64,
    churn_other: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

/// A check of the run: its name, whether it held, and the numbers.
struct Verdict {
    name: String,
    outcome: Outcome,
    detail: String,
}

/// What became of a check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Held,
    Failed,
    /// It needs the whole run, and the run was interrupted (Ctrl-C).
    Skipped,
}

/// How a soak ended: every check held, one failed, or it was interrupted (the checks that
/// need the whole run skipped; `failed` if one of the others failed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum SoakEnd {
    Pass,
    Fail,
    Interrupted { failed: bool },
}

fn run(cli: &Cli) -> Result<SoakEnd, BoxError> {
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?.parent().ok_or("no directory for this binary")?.to_path_buf(),
    };
    let xsknet_bin = cli
        .xsknet
        .clone()
        .or_else(|| std::env::var_os("XSKNET_BIN").map(PathBuf::from))
        .unwrap_or_else(|| bin_dir.join("xsknet"));
    let pktgen = bin_dir.join("xsknet-pktgen");
    let udp_check = bin_dir.join("udp-check");
    for exe in [&xsknet_bin, &pktgen, &udp_check] {
        if !exe.exists() {
            return Err(format!("{} missing: run `make build`", exe.display()).into());
        }
    }
    let dir = std::env::temp_dir().join(format!("xsknet-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pair = NetNsPair::with_options(&NetNsPairOptions {
        peer_addr: Some((PEER, 24)),
        ipv6: false,
        ..NetNsPairOptions::default()
    })?;
    let result = soak(cli, &pair, &dir, &xsknet_bin, &pktgen, &udp_check);
    drop(pair); // removes the namespaces (the processes were stopped inside `soak`)
    if result.as_ref().is_ok_and(|end| *end == SoakEnd::Pass) {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("xsknet-soak: logs kept in {}", dir.display());
    }
    result
}

#[allow(clippy::too_many_lines)]
fn soak(
    cli: &Cli,
    pair: &NetNsPair,
    dir: &Path,
    xsknet_bin: &Path,
    pktgen: &Path,
    udp_check: &Path,
) -> Result<SoakEnd, BoxError> {
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let (churn_lo, churn_hi) = DEFAULT_CHURN_PORTS;
    let stats_json = dir.join("xsknet.json");
    let mut server = Proc::spawn(
        pair.ns(),
        SERVER_CPU,
        &[
            s(xsknet_bin),
            "echo".into(),
            "--iface".into(),
            pair.ifname().into(),
            "--ip".into(),
            format!("{SERVER}/24"),
            "--port".into(),
            PORT.to_string(),
            "--frames".into(),
            FRAMES.to_string(),
            "--churn-ports".into(),
            format!("{churn_lo}-{churn_hi}"),
            "--stats-json".into(),
            s(&stats_json),
        ],
        "xsknet",
        dir,
    )?;
    server.wait_ready(Duration::from_secs(15))?;
    let pid = server.pid();
    // The first frames after an XDP attach can be lost while the link settles.
    let t0 = Instant::now();
    loop {
        let out = command_in(pair.peer_ns(), &["ping", "-n", "-q", "-c", "1", "-W", "1", &SERVER.to_string()])
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(15) {
            return Err(format!("no ping reply from xsknet within 15 s:\n{}", server.log()).into());
        }
    }
    let control = xsknet::control::find(Some(pair.ifname()), None)?;
    let rss_start = Rss::read(pid).unwrap_or_default();

    let gen_args = |extra: &[String], json_path: &Path| -> Vec<String> {
        let mut a = vec![
            s(pktgen),
            "--iface".into(),
            pair.peer_ifname().into(),
            "--src".into(),
            format!("{GEN}/24"),
            "--dst".into(),
            SERVER.to_string(),
            "--dst-port".into(),
            PORT.to_string(),
            "--dst-ports".into(),
            format!("{churn_lo}-{churn_hi}"),
            "--flood".into(),
            "mix".into(),
            "--progress".into(),
            "off".into(),
            "--json".into(),
            s(json_path),
        ];
        a.extend_from_slice(extra);
        a
    };

    // The maximum: the mix at full rate for a few seconds. On veth the receiving side's
    // XDP program and copy run on the generator's core, so the generator's rate is what the
    // path lets through; of that, what xsknet's loop took off its rx ring per second is what
    // it can serve (the rest the kernel dropped at a full rx ring). The lower of the two.
    let rx_frames = || -> Result<u64, BoxError> {
        let snap: Snapshot = xsknet::control::request(&control, Request::Stats)?;
        Ok(snap.stats.mib.XskRxFrames)
    };
    let (max_pps, measured, measure_sent) = match cli.max_pps {
        Some(m) => (m, String::from("given"), 0),
        None => {
            let path = dir.join("measure.json");
            eprintln!("xsknet-soak: measuring the mix's maximum rate ({} s at full rate)", cli.measure_secs);
            let rx_before = rx_frames()?;
            let mut g = Proc::spawn(
                pair.peer_ns(),
                GEN_CPU,
                &gen_args(&["--duration".into(), format!("{}", cli.measure_secs)], &path),
                "measure",
                dir,
            )?;
            let status = g.wait(Duration::from_secs_f64(cli.measure_secs + 30.0));
            if !status.is_some_and(|s| s.success()) {
                return Err(format!("the measuring run failed ({status:?}):\n{}", g.log()).into());
            }
            // What is still in the rx ring lands within a publication or two.
            std::thread::sleep(Duration::from_millis(300));
            let taken = rx_frames()?.saturating_sub(rx_before);
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let gen_rate = v["rate_pps"].as_f64().ok_or("measure.json: no rate_pps")?;
            let elapsed = v["elapsed_s"].as_f64().ok_or("measure.json: no elapsed_s")?.max(1e-3);
            let served = taken as f64 / elapsed;
            (
                gen_rate.min(served),
                format!(
                    "measured: the mix at full rate for {} s, the generator sent {gen_rate:.0} pps, xsknet took {served:.0} \
                     frames/s off its rx ring",
                    cli.measure_secs
                ),
                v["sent"].as_u64().unwrap_or(0),
            )
        }
    };
    let target = (max_pps * cli.load).round().max(1.0) as u64;
    eprintln!(
        "xsknet-soak: maximum {:.0} pps ({measured}); soaking {} s at {:.0} % = {target} pps",
        max_pps,
        cli.duration.as_secs(),
        cli.load * 100.0
    );
    // Let the measuring run's leftovers (SYN-ACK retransmissions, ICMP) go by.
    std::thread::sleep(Duration::from_millis(500));

    let stop = Arc::new(AtomicBool::new(false));
    let soak_json = dir.join("soak-gen.json");
    let mut generator = Proc::spawn(
        pair.peer_ns(),
        GEN_CPU,
        &gen_args(
            &["--rate".into(), target.to_string(), "--duration".into(), format!("{}", cli.duration.as_secs_f64())],
            &soak_json,
        ),
        "generator",
        dir,
    )?;
    let started = Instant::now();

    // The probe, window after window.
    let probe = Arc::new(Mutex::new(ProbeTotals::default()));
    let probe_thread = {
        let (stop, probe, ns) = (stop.clone(), probe.clone(), pair.peer_ns().to_string());
        let (udp_check, rate, end) = (s(udp_check), cli.probe_rate, started + cli.duration);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let left = end.saturating_duration_since(Instant::now());
                let w = left.min(PROBE_WINDOW);
                if w < Duration::from_millis(500) {
                    break;
                }
                let args = [
                    udp_check.clone(),
                    "--to".into(),
                    format!("{SERVER}:{PORT}"),
                    "--bind".into(),
                    format!("{PEER}:0"),
                    "--rate".into(),
                    rate.to_string(),
                    "--duration".into(),
                    format!("{:.3}", w.as_secs_f64()),
                    "--sizes".into(),
                    PROBE_PAYLOAD.into(),
                    "--timeout-ms".into(),
                    PROBE_TIMEOUT_MS.into(),
                    "--min-ok".into(),
                    "0".into(),
                    "--json".into(),
                ];
                let out = command_in(&ns, &args).stdin(Stdio::null()).output();
                let mut p = probe.lock().unwrap();
                match out {
                    Ok(o) => {
                        let text = String::from_utf8_lossy(&o.stdout);
                        match text.lines().rev().find(|l| l.starts_with('{')).map(serde_json::from_str::<Value>) {
                            Some(Ok(v)) => p.windows.push(v),
                            _ => p.errors.push(format!(
                                "udp-check ({}): {text}{}",
                                o.status,
                                String::from_utf8_lossy(&o.stderr)
                            )),
                        }
                    }
                    Err(e) => p.errors.push(format!("udp-check: {e}")),
                }
            }
        })
    };

    // The TCP clients: an echo on the served port, and connections to the churned ports.
    let tcp = Arc::new(TcpCounts::default());
    let tcp_thread = {
        let (stop, tcp, ns) = (stop.clone(), tcp.clone(), pair.peer_ns().to_string());
        std::thread::spawn(move || in_netns(&ns, || tcp_clients(&stop, &tcp, (churn_lo, churn_hi))))
    };

    // Checks through the control endpoint while it runs.
    let interval = Duration::from_secs_f64(cli.interval.max(0.2));
    let warm_up = (cli.duration / 5).clamp(Duration::from_secs(5), Duration::from_secs(60));
    let mut samples: Vec<Sample> = Vec::new();
    let mut live_failures: Vec<String> = Vec::new();
    let mut last_counters: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut rss_warm: Option<Rss> = None;
    let mut next = started + interval;
    let mut interrupted = false;
    let mut server_died = None;
    while started.elapsed() < cli.duration {
        if xsknet::signal::stop_requested() {
            interrupted = true;
            break;
        }
        if let Some(status) = server.exited() {
            server_died = Some(status);
            break;
        }
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        next += interval;
        let t = started.elapsed().as_secs_f64();
        match xsknet::control::request::<Snapshot>(&control, Request::Stats) {
            Ok(snap) => {
                let c = snap.stats.census;
                let rss = Rss::read(pid).unwrap_or_default();
                if c.accounted() != c.total {
                    live_failures.push(format!("t={t:.1} s: census {} of {} frames: {c:?}", c.accounted(), c.total));
                }
                let counters: BTreeMap<&'static str, u64> =
                    snap.counters().into_iter().map(|(n, v, _)| (n, v)).collect();
                for (name, v) in &counters {
                    // Gauges move both ways.
                    if matches!(
                        *name,
                        "TcpCurrEstab"
                            | "XskArpCacheEntries"
                            | "XskSockstatTcpMem"
                            | "SoftirqRunDelayNs"
                            | "SoftirqNivcsw"
                    ) {
                        continue;
                    }
                    if let Some(before) = last_counters.get(name).filter(|b| **b > *v) {
                        live_failures.push(format!("t={t:.1} s: {name} went down from {before} to {v}"));
                    }
                }
                let rx = counters.get("XskRxFrames").copied().unwrap_or(0);
                let sample = Sample {
                    t_s: t,
                    rx_frames: rx,
                    census_total: c.total,
                    census_accounted: c.accounted(),
                    in_socks: c.in_socks,
                    in_reasm: c.in_reasm,
                    age_ms: snap.age_ns as f64 / 1e6,
                    rss,
                };
                let rate = samples
                    .last()
                    .map_or(String::from("-"), |p| format!("{:.0}", (rx - p.rx_frames) as f64 / (t - p.t_s).max(1e-3)));
                eprintln!(
                    "xsknet-soak: t={t:>6.1} s  rx {:>8} frames/s  census {}/{} (socks {}, reasm {})  VmRSS {} KiB \
                     ({} KiB without the UMEM)",
                    rate,
                    sample.census_accounted,
                    sample.census_total,
                    sample.in_socks,
                    sample.in_reasm,
                    rss.vm_rss_kib,
                    rss.rest_kib()
                );
                if rss_warm.is_none() && started.elapsed() >= warm_up {
                    rss_warm = Some(rss);
                }
                samples.push(sample);
                last_counters = counters;
            }
            Err(e) => live_failures.push(format!("t={t:.1} s: the control endpoint did not answer: {e}")),
        }
    }
    let soaked = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let gen_status = if interrupted || server_died.is_some() {
        generator.interrupt(Duration::from_secs(5))
    } else {
        generator.wait(Duration::from_secs(30))
    };
    let _ = tcp_thread.join();
    let _ = probe_thread.join();
    // The traffic has stopped: what is in flight lands, then the counters settle.
    std::thread::sleep(Duration::from_secs(1));
    let quiet = if server_died.is_none() {
        xsknet::control::request::<Snapshot>(&control, Request::Stats).map_err(|e| e.to_string())
    } else {
        Err("the server is gone".to_string())
    };
    let rss_end = Rss::read(pid).unwrap_or_default();
    let server_status = server.interrupt(Duration::from_secs(20));
    let server_log = server.log();
    let report: Option<Value> = std::fs::read_to_string(&stats_json).ok().and_then(|t| serde_json::from_str(&t).ok());
    let gen_report: Option<Value> =
        std::fs::read_to_string(&soak_json).ok().and_then(|t| serde_json::from_str(&t).ok());

    // ---- verdicts
    let mut verdicts: Vec<Verdict> = Vec::new();
    let outcome = |ok: bool| if ok { Outcome::Held } else { Outcome::Failed };
    let mut check = |name: &str, ok: bool, detail: String| {
        verdicts.push(Verdict { name: name.into(), outcome: outcome(ok), detail })
    };
    // A check that only means something for a whole run: skipped, not failed, after Ctrl-C.
    let mut whole_run_checks: Vec<Verdict> = Vec::new();
    let mut check_whole_run = |name: &str, ok: bool, detail: String| {
        let (outcome, detail) = if interrupted {
            (Outcome::Skipped, format!("skipped: interrupted after {:.1} s ({detail})", soaked.as_secs_f64()))
        } else {
            (outcome(ok), detail)
        };
        whole_run_checks.push(Verdict { name: name.into(), outcome, detail });
    };
    check_whole_run(
        "ran the whole duration",
        server_died.is_none() && soaked + Duration::from_secs(1) >= cli.duration,
        if let Some(s) = server_died {
            format!("xsknet exited early ({s})")
        } else {
            format!("{:.1} s of {:.1} s", soaked.as_secs_f64(), cli.duration.as_secs_f64())
        },
    );
    // The generator paces itself; a machine too busy to keep up would soak at less than it says.
    let gen_rate = gen_report.as_ref().and_then(|g| g["rate_pps"].as_f64()).unwrap_or(0.0);
    check_whole_run(
        "offered the target rate",
        gen_rate >= 0.9 * target as f64,
        format!(
            "the generator sent at {gen_rate:.0} pps, {:.1} % of the target {target} pps (at least 90 %)",
            100.0 * gen_rate / target.max(1) as f64
        ),
    );
    let panicked = server_log.contains("panicked");
    check(
        "xsknet exited cleanly, no panic",
        server_status.is_some_and(|s| s.success()) && !panicked,
        format!("exit {server_status:?}{}", if panicked { ", panicked (see its log)" } else { "" }),
    );
    check_whole_run(
        "generator ran",
        gen_status.is_some_and(|s| s.success()) && gen_report.is_some(),
        format!("exit {gen_status:?}"),
    );
    check(
        "checked throughout",
        live_failures.is_empty() && samples.len() as f64 >= (soaked.as_secs_f64() / cli.interval * 0.8).floor(),
        if live_failures.is_empty() {
            format!("{} samples, census added up and no counter went down in each", samples.len())
        } else {
            format!(
                "{} samples; {}",
                samples.len(),
                live_failures.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            )
        },
    );
    let stale = samples.iter().filter(|s| s.age_ms > 1000.0).count();
    check(
        "the loop published throughout",
        stale == 0,
        format!("{stale} samples older than 1 s (the loop stalled or was descheduled)"),
    );

    // Frames at the end, after every socket was closed.
    if let Some(r) = &report {
        let f = &r["frames"];
        let g = |k: &str| f[k].as_u64().unwrap_or(u64::MAX);
        let parts =
            ["in_kernel", "free_local", "free_shared", "in_socks", "awaiting_neighbour", "tx_backlog", "in_reasm"];
        let sum: u64 = parts.iter().map(|k| g(k)).sum();
        let held = g("in_socks") + g("awaiting_neighbour") + g("tx_backlog") + g("in_reasm");
        check(
            "every frame back at the end",
            sum == g("total") && held == 0,
            format!(
                "{} total = {} in kernel rings + {} free + {} in socks + {} awaiting ARP + {} tx backlog + {} in reassembly",
                g("total"),
                g("in_kernel"),
                g("free_local") + g("free_shared"),
                g("in_socks"),
                g("awaiting_neighbour"),
                g("tx_backlog"),
                g("in_reasm")
            ),
        );
        let x = &r["xdp_statistics"];
        let bad: Vec<String> = ["XskRxInvalidAddr", "XskCqInvalidAddr", "XskInKernelUnderflow"]
            .iter()
            .filter(|k| x[**k].as_u64() != Some(0))
            .map(|k| format!("{k} {}", x[*k]))
            .collect();
        check(
            "the kernel gave back only our frames",
            bad.is_empty(),
            if bad.is_empty() { "0 each".into() } else { bad.join(", ") },
        );
    } else {
        check("every frame back at the end", false, format!("no --stats-json report at {}", stats_json.display()));
    }

    // Counters that add up, on the quiet snapshot (XDP, rings) and on the exit report (MIB).
    if let Ok(snap) = &quiet {
        let m: BTreeMap<&str, u64> = snap.counters().into_iter().map(|(n, v, _)| (n, v)).collect();
        for id in IDENTITIES_LIVE {
            let (ok, detail) = id.eval(&|n| m.get(n).copied());
            check(id.name, ok, detail);
        }
    } else if let Err(e) = &quiet {
        check("counters after the traffic", false, e.clone());
    }
    if let Some(r) = &report {
        let get = |n: &str| r["counters"][n].as_u64();
        for id in IDENTITIES_EXIT {
            let (ok, detail) = id.eval(&get);
            check(id.name, ok, detail);
        }
        let app = r["application"]["datagrams"].as_u64().unwrap_or(0);
        let churn = r["churn"]["datagrams"].as_u64().unwrap_or(0);
        let read = get("UdpInDatagrams").unwrap_or(u64::MAX);
        check(
            "UDP read by the application = UdpInDatagrams",
            app + churn == read,
            format!("echo {app} + churned sockets {churn} = {} vs UdpInDatagrams {read}", app + churn),
        );
        let opened =
            r["churn"]["udp_opened"].as_u64().unwrap_or(0) + r["churn"]["tcp_listeners_opened"].as_u64().unwrap_or(0);
        let closed = r["churn"]["closed"].as_u64().unwrap_or(0);
        check(
            "sockets opened and closed throughout",
            opened > 0 && opened == closed,
            format!("{opened} opened, {closed} closed, {} refused", r["churn"]["open_errors"]),
        );
    }

    // Memory.
    let rss_peak = samples.iter().map(|s| s.rss.vm_rss_kib).max().unwrap_or(0).max(rss_end.vm_rss_kib);
    let warm = rss_warm.unwrap_or(rss_end);
    let after_warm_peak =
        samples.iter().filter(|s| s.t_s >= warm_up.as_secs_f64()).map(|s| s.rss.rest_kib()).max().unwrap_or(0);
    let growth = after_warm_peak.max(rss_end.rest_kib()).saturating_sub(warm.rest_kib());
    check_whole_run(
        "resident memory flat after warm-up",
        rss_warm.is_some() && growth <= cli.rss_bound_kib,
        format!(
            "outside the UMEM {} KiB at {} s, at most {} KiB after: +{growth} KiB (bound {} KiB)",
            warm.rest_kib(),
            warm_up.as_secs(),
            after_warm_peak.max(rss_end.rest_kib()),
            cli.rss_bound_kib
        ),
    );

    // The echo, answered throughout.
    let p = probe.lock().unwrap();
    let sum = |k: &str| p.windows.iter().map(|w| w[k].as_u64().unwrap_or(0)).sum::<u64>();
    let (sent, ok) = (sum("sent"), sum("ok"));
    let loss = if sent > 0 { 100.0 * (1.0 - ok as f64 / sent as f64) } else { 100.0 };
    let silent = p.windows.iter().filter(|w| w["ok"].as_u64() == Some(0)).count();
    let p50s: Vec<f64> = p.windows.iter().filter_map(|w| w["rtt_us"]["p50"].as_f64()).collect();
    let p99s: Vec<f64> = p.windows.iter().filter_map(|w| w["rtt_us"]["p99"].as_f64()).collect();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let probe_p50 = median(&p50s);
    let probe_p99 = median(&p99s);
    let probe_p99_worst = p99s.iter().copied().fold(f64::NAN, f64::max);
    let mismatches = sum("mismatches");
    // What the kernel dropped because the loop was behind: the rx ring full, or the fill ring empty.
    let ring_drop_percent = quiet.as_ref().map_or(0.0, |q| {
        let x = q.xdp.unwrap_or_default();
        let d = &q.stats.device;
        100.0 * (d.rx_ring_full + d.rx_dropped) as f64 / (x.redirect_ipv4 + x.redirect_arp).max(1) as f64
    });
    // At most half: a probe that lost more than that was not answered
    // throughout, however starved the loop (the check must be able to fail).
    let loss_bound = (cli.max_probe_loss + 1.5 * ring_drop_percent).min(50.0);
    check_whole_run(
        "the echo answered throughout",
        p.errors.is_empty() && silent == 0 && mismatches == 0 && loss <= loss_bound && !p.windows.is_empty(),
        format!(
            "{} windows of {} s, {sent} sent, {ok} back byte-exact, loss {loss:.3} % (bound {loss_bound:.2} % = {} % + \
             1.5 x the {ring_drop_percent:.3} % the kernel dropped at the rings), {silent} windows without an echo, \
             {mismatches} corrupted{}",
            p.windows.len(),
            PROBE_WINDOW.as_secs(),
            cli.max_probe_loss,
            p.errors.first().map(|e| format!("; {e}")).unwrap_or_default()
        ),
    );
    let tcp_ok = tcp.echo_ok.load(Ordering::Relaxed);
    let tcp_failed = tcp.echo_failed.load(Ordering::Relaxed);
    // As for the probe: the clients' segments are lost at the rings with the rest, no more.
    let tcp_bound = (1.0 + 1.5 * ring_drop_percent).min(50.0);
    let tcp_failed_percent = 100.0 * tcp_failed as f64 / (tcp_ok + tcp_failed).max(1) as f64;
    check_whole_run(
        "TCP echo on the served port",
        tcp_ok > 0 && tcp_failed_percent <= tcp_bound,
        format!(
            "{tcp_ok} connections echoed, {tcp_failed} failed ({tcp_failed_percent:.2} %, bound {tcp_bound:.2} % = 1 % + \
             1.5 x the share the kernel dropped at the rings){}",
            tcp.first_failure.lock().unwrap().as_ref().map(|e| format!("; first: {e}")).unwrap_or_default()
        ),
    );

    // ---- the summary
    // The run's own checks first, then the stack's.
    let verdicts: Vec<Verdict> = whole_run_checks.into_iter().chain(verdicts).collect();
    let any_failed = verdicts.iter().any(|v| v.outcome == Outcome::Failed);
    let end = match (interrupted, any_failed) {
        (true, failed) => SoakEnd::Interrupted { failed },
        (false, true) => SoakEnd::Fail,
        (false, false) => SoakEnd::Pass,
    };
    let mib = |n: &str| report.as_ref().and_then(|r| r["counters"][n].as_u64()).unwrap_or(0);
    let gen_sent = gen_report.as_ref().and_then(|g| g["sent"].as_u64()).unwrap_or(0);
    let mut out = String::new();
    let w = &mut out;
    use std::fmt::Write as _;
    let _ = writeln!(
        w,
        "\n== xsknet-soak: {:.0} s of xsknet echo under the mix, sockets opening and closing",
        soaked.as_secs_f64()
    );
    let _ = writeln!(
        w,
        "  load: maximum {:.0} pps ({measured}), target {:.0} % = {target} pps; sent {gen_sent} frames at {gen_rate:.0} pps{}",
        max_pps,
        cli.load * 100.0,
        if measure_sent > 0 {
            format!(" (and {measure_sent} in the measuring run before it: the counters below count both)")
        } else {
            String::new()
        }
    );
    if let Some(kinds) = gen_report.as_ref().and_then(|g| g["mix_sent"].as_array()) {
        let parts: Vec<String> =
            kinds.iter().map(|k| format!("{} {}", k["kind"].as_str().unwrap_or("?"), k["sent"])).collect();
        let _ = writeln!(w, "  sent by kind: {}", parts.join(", "));
    }
    let _ = writeln!(
        w,
        "  received: XDP {} (redirected {}), off the rx ring {}, IP {} (delivered {}), UDP read {} (echoed {}), \
         ICMP echo replies {}, TCP segments in {} / out {}, fragments {} (reassembled {}, timed out {})",
        quiet.as_ref().map(|q| q.xdp.unwrap_or_default().rx).unwrap_or(0),
        quiet
            .as_ref()
            .map(|q| {
                let x = q.xdp.unwrap_or_default();
                x.redirect_ipv4 + x.redirect_arp
            })
            .unwrap_or(0),
        mib("XskRxFrames"),
        mib("IpInReceives"),
        mib("IpInDelivers"),
        mib("UdpInDatagrams"),
        mib("UdpOutDatagrams"),
        mib("IcmpOutEchoReps"),
        mib("TcpInSegs"),
        mib("TcpOutSegs"),
        mib("IpReasmReqds"),
        mib("IpReasmOKs"),
        mib("IpReasmTimeout"),
    );
    let _ = writeln!(w, "  drops by reason:");
    for c in MibCounter::ALL {
        if let Some(why) = c.drop_reason() {
            let v = mib(c.name());
            if v > 0 {
                let _ = writeln!(w, "    {:<26} {:>12}  {why}", c.name(), v);
            }
        }
    }
    if let Ok(q) = &quiet {
        let d = &q.stats.device;
        let _ = writeln!(
            w,
            "    kernel (XDP_STATISTICS): rx_dropped {}, rx_ring_full {}, rx_fill_ring_empty_descs {}: {ring_drop_percent:.3} % \
             of the redirected frames (the loop behind)",
            d.rx_dropped, d.rx_ring_full, d.rx_fill_ring_empty_descs
        );
    }
    if let Some(r) = &report {
        let c = &r["churn"];
        let _ = writeln!(
            w,
            "  sockets: server opened {} UDP sockets and {} TCP listeners on ports {churn_lo}-{churn_hi} and closed {} \
             ({} datagrams read on them, {} connections accepted); TCP clients: {tcp_ok} echoed on port {PORT} \
             ({tcp_failed} failed), to the churned ports {} connected, {} refused, {} other",
            c["udp_opened"],
            c["tcp_listeners_opened"],
            c["closed"],
            c["datagrams"],
            c["accepted"],
            tcp.churn_connected.load(Ordering::Relaxed),
            tcp.churn_refused.load(Ordering::Relaxed),
            tcp.churn_other.load(Ordering::Relaxed),
        );
    }
    let _ = writeln!(
        w,
        "  census: {} samples, every one added up ({} failures); at exit: {}",
        samples.len(),
        live_failures.iter().filter(|f| f.contains("census")).count(),
        verdicts.iter().find(|v| v.name == "every frame back at the end").map(|v| v.detail.as_str()).unwrap_or("-")
    );
    let _ = writeln!(
        w,
        "  RSS (VmRSS): start {} KiB, peak {rss_peak} KiB, end {} KiB; UMEM resident {} KiB at the end; outside the \
         UMEM {} KiB after warm-up, +{growth} KiB at most after",
        rss_start.vm_rss_kib,
        rss_end.vm_rss_kib,
        rss_end.umem_kib,
        warm.rest_kib()
    );
    let _ = writeln!(
        w,
        "  probe: udp-check {}/s from {PEER}: {sent} sent, loss {loss:.3} %, p50 {probe_p50:.1} µs, p99 {probe_p99:.1} µs \
         (median of the {}-s windows; worst window p99 {probe_p99_worst:.1} µs)",
        cli.probe_rate,
        PROBE_WINDOW.as_secs()
    );
    let _ = writeln!(w, "  checks:");
    for v in &verdicts {
        let mark = match v.outcome {
            Outcome::Held => " ok ",
            Outcome::Failed => "FAIL",
            Outcome::Skipped => "skip",
        };
        let _ = writeln!(w, "    [{mark}] {}: {}", v.name, v.detail);
    }
    let failed: Vec<&str> = verdicts.iter().filter(|v| v.outcome == Outcome::Failed).map(|v| v.name.as_str()).collect();
    let skipped = verdicts.iter().filter(|v| v.outcome == Outcome::Skipped).count();
    match end {
        SoakEnd::Pass => {
            let _ = writeln!(w, "PASS");
        }
        SoakEnd::Fail => {
            let _ = writeln!(w, "FAIL: {}", failed.join("; "));
        }
        SoakEnd::Interrupted { .. } => {
            let _ = writeln!(
                w,
                "INTERRUPTED after {:.1} s: {skipped} checks that need the whole run skipped; {}",
                soaked.as_secs_f64(),
                if failed.is_empty() {
                    "the others held".to_string()
                } else {
                    format!("failed: {}", failed.join("; "))
                }
            );
        }
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    if let Some(path) = &cli.json {
        let j = json!({
            "duration_s": soaked.as_secs_f64(),
            "max_pps": max_pps,
            "max_from": measured,
            "load": cli.load,
            "target_pps": target,
            "generator": gen_report,
            "xsknet": report,
            "samples": samples,
            "rss_kib": { "start": rss_start.vm_rss_kib, "peak": rss_peak, "end": rss_end.vm_rss_kib,
                         "outside_umem_after_warm_up": warm.rest_kib(), "growth_after_warm_up": growth },
            "ring_drop_percent": ring_drop_percent,
            "probe": { "windows": p.windows, "sent": sent, "ok": ok, "loss_percent": loss, "loss_bound_percent": loss_bound,
                       "p50_us": probe_p50, "p99_us": probe_p99, "worst_window_p99_us": probe_p99_worst },
            "tcp": { "echo_ok": tcp_ok, "echo_failed": tcp_failed },
            "checks": verdicts.iter().map(|v| json!({
                "name": v.name,
                "outcome": match v.outcome { Outcome::Held => "ok", Outcome::Failed => "fail", Outcome::Skipped => "skipped" },
                "detail": v.detail,
            })).collect::<Vec<_>>(),
            "pass": end == SoakEnd::Pass,
            "interrupted": interrupted,
            "measure_sent": measure_sent,
        });
        std::fs::write(path, serde_json::to_string_pretty(&j)? + "\n")?;
    }
    Ok(end)
}

/// The kernel clients: a line echoed over a fresh connection to the served port, then a
/// connection to a churned port (its listener open or not), each round.
fn tcp_clients(stop: &AtomicBool, c: &TcpCounts, (lo, hi): (u16, u16)) {
    let mut n: u32 = 0;
    let fail = |c: &TcpCounts, what: String| {
        c.echo_failed.fetch_add(1, Ordering::Relaxed);
        c.first_failure.lock().unwrap().get_or_insert(what);
    };
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        let to = SocketAddr::V4(SocketAddrV4::new(SERVER, PORT));
        match TcpStream::connect_timeout(&to, TCP_TIMEOUT) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(TCP_TIMEOUT));
                let _ = s.set_write_timeout(Some(TCP_TIMEOUT));
                let mut back = vec![0u8; TCP_LINE.len()];
                match s.write_all(TCP_LINE).and_then(|()| s.read_exact(&mut back)) {
                    Ok(()) if back == TCP_LINE => {
                        c.echo_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(()) => fail(c, "the echo came back different".into()),
                    Err(e) => fail(c, format!("echo: {e}")),
                }
            }
            Err(e) => fail(c, format!("connect: {e}")),
        }
        // The churned listeners are on every other port of the range.
        let span = u32::from(hi - lo) + 1;
        let port = lo + ((n.wrapping_mul(2654435761) >> 16) % span) as u16;
        let to = SocketAddr::V4(SocketAddrV4::new(SERVER, port));
        match TcpStream::connect_timeout(&to, TCP_TIMEOUT) {
            Ok(_) => c.churn_connected.fetch_add(1, Ordering::Relaxed),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                c.churn_refused.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => c.churn_other.fetch_add(1, Ordering::Relaxed),
        };
        std::thread::sleep(TCP_ROUND);
    }
}

/// An identity the counters satisfy: `lhs` = `rhs` (or ≥ when `at_least`).
struct Identity {
    name: &'static str,
    lhs: &'static [&'static str],
    rhs: &'static [&'static str],
    at_least: bool,
}

impl Identity {
    fn eval(&self, get: &dyn Fn(&str) -> Option<u64>) -> (bool, String) {
        let side = |names: &[&str]| -> Result<u64, String> {
            names.iter().map(|n| get(n).ok_or_else(|| format!("{n} missing"))).sum()
        };
        let (l, r) = match (side(self.lhs), side(self.rhs)) {
            (Ok(l), Ok(r)) => (l, r),
            (Err(e), _) | (_, Err(e)) => return (false, e),
        };
        let ok = if self.at_least { l >= r } else { l == r };
        let terms = |names: &[&str]| {
            names.iter().map(|n| format!("{n} {}", get(n).unwrap_or(0))).collect::<Vec<_>>().join(" + ")
        };
        (ok, format!("{} = {l} {} {r} = {}", terms(self.lhs), if self.at_least { ">=" } else { "vs" }, terms(self.rhs)))
    }
}

/// Checked on the control endpoint's snapshot once the traffic has stopped (the XDP
/// program's counters and the socket's `XDP_STATISTICS` are there, not in the MIB).
const IDENTITIES_LIVE: &[Identity] = &[
    Identity {
        name: "XDP: every frame one verdict",
        lhs: &["XdpProgRx"],
        rhs: &[
            "XdpProgRedirectIpv4",
            "XdpProgRedirectArp",
            "XdpProgPassNotOurs",
            "XdpProgPassNoSocket",
            "XdpProgPassMalformed",
            "XdpProgDrop",
            "XdpProgGuardDrop",
            "XdpProgPassOtherHost",
            "XdpProgPassKernelAddr",
        ],
        at_least: false,
    },
    Identity {
        name: "AF_XDP: redirected = off the rx ring + dropped by the kernel",
        lhs: &["XdpProgRedirectIpv4", "XdpProgRedirectArp"],
        rhs: &["XskRxFrames", "XskRxDropped", "XskRxRingFull"],
        at_least: false,
    },
];

/// Checked on the exit report's MIB.
const IDENTITIES_EXIT: &[Identity] = &[
    Identity {
        name: "softirq: every frame off the rx ring to IP, ARP or a counted drop",
        lhs: &["XskRxFrames"],
        rhs: &[
            "IpInReceives",
            "XskArpInRequests",
            "XskArpInReplies",
            "XskArpInErrors",
            "XskRxRunts",
            "XskRxOtherHost",
            "XskRxNoHandler",
        ],
        at_least: false,
    },
    Identity {
        name: "IP: every datagram delivered, queued as a fragment, or dropped by reason",
        lhs: &["IpInReceives", "IpReasmOKs"],
        rhs: &[
            "IpInDelivers",
            "IpReasmReqds",
            "IpInHdrErrors",
            "IpInAddrErrors",
            "IpExtInTruncatedPkts",
            "XskIpInMartianSrc",
            "XskIpInMartianDst",
            "XskIpInMcastNotJoined",
            "XskIpInSrcRoute",
            "XskIpInMultiBufUnsupported",
            "IpInUnknownProtos",
        ],
        at_least: false,
    },
    Identity {
        name: "transport: delivered >= taken by ICMP, UDP and TCP (the rest: unread datagrams of closed sockets)",
        lhs: &["IpInDelivers"],
        rhs: &[
            "IcmpInMsgs",
            "TcpInSegs",
            "UdpInDatagrams",
            "UdpNoPorts",
            "UdpInErrors",
            "UdpIgnoredMulti",
            "XskIpReasmUnsupported",
        ],
        at_least: true,
    },
    Identity {
        name: "ICMP: every echo request answered",
        lhs: &["IcmpOutEchoReps"],
        rhs: &["IcmpInEchos"],
        at_least: false,
    },
];
