//! `make bench`: xsknet beside the kernel's own path and the XDP ceilings, on
//! a fresh namespace pair, in one run.
//!
//! Throughput: 64-byte UDP from one generator core (CPU 0) to each receiver
//! on the other core (CPU 1): XDP_DROP on the receiving veth (the ceiling),
//! a bare AF_XDP receive-and-drop loop (the AF_XDP ceiling), the kernel's UDP
//! socket with `recvmmsg` (the kernel's own receive path), and `xsknet sink`,
//! without and with `--pcap` (every frame written to a pcapng file in a
//! temporary directory by the capture's writer thread, which shares the
//! receiver's core).
//!
//! Latency: UDP echo round trips measured by the generator in echo mode,
//! unloaded and at shares of a maximum, against a kernel echo server (blocking,
//! and busy-polling) and `xsknet echo` (run to completion, and threaded). The
//! maximum is each xsknet echo server's own, searched first: the highest paced
//! rate it serves with at most 0.1 % loss (`xsknet_bench::paced_max`); the
//! kernel server it is compared with (busy-polling for run to completion,
//! blocking for threaded) gets the same offered rate.
//!
//! Under a flood: a legitimate UDP ping-pong at 1000/s (`udp-check --rate`, a kernel
//! socket in the generator's namespace, on the generator's CPU at SCHED_FIFO), alone and
//! beside the generator flooding the echo port at its full rate from spoofed, off-link
//! sources, against the kernel's echo server, `xsknet echo` and `xsknet echo --guard`: the
//! round trip's percentiles and loss, xsknet's softirq busy share (its control endpoint),
//! the kernel's `si` per CPU (/proc/stat) and the frames that reached user space.
//!
//! TCP (issue 10; `xsknet_bench::tcp_bench`): requests (wrk, ab) against `xsknet http` and
//! nginx, one-connection request/response round trips against `xsknet echo` and a kernel
//! TCP echo server, bulk send (curl from `xsknet http` and nginx, GSO on and off) and
//! bulk receive (iperf3, and a kernel sender to `xsknet sink` and a kernel discard server).
//!
//! Results go to `bench/results/<date>-<host>.json` and `.md` (plus the
//! percentile plot `.svg`), with the setup recorded; `--update-readme`
//! replaces the README's results block. Every namespace is removed at the end,
//! even on failure.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::Value;
use xsknet::testing::{command_in, format_mac, NetNsPair, NetNsPairOptions};
use xsknet_bench::autogroup::AutogroupNice;
use xsknet_bench::nsproc::NsProc as Proc;
use xsknet_bench::paced_max::{PacedMax, SearchPlan, Trial, LOSS_LIMIT};
use xsknet_bench::tcp_bench;

const RX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const GEN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const SINK_PORT: u16 = 9;
const ECHO_PORT: u16 = 7;
const GEN_CPU: &str = "0";
/// The latency section's servers, like with like: run to completion beside the kernel's
/// busy-polling server, threaded beside its blocking one.
/// The latency section's servers. `xsk-echo` is no stack, a bare AF_XDP loop that turns each
/// datagram around in its frame: the floor of any AF_XDP echo on this path, beside run to completion.
const LATENCY_SERVERS: [&str; 5] =
    ["kernel-echo-busy", "xsk-echo", "xsknet-echo", "kernel-echo-blocking", "xsknet-echo-threaded"];
const RX_CPU: &str = "1";

#[derive(Parser)]
#[command(name = "side-by-side", about = "xsknet beside the kernel's UDP path and the XDP ceilings, in one run")]
struct Cli {
    /// Small counts: a smoke test that runs in under a minute.
    #[arg(long)]
    quick: bool,
    /// Frames per throughput run.
    #[arg(long, default_value_t = 3_000_000)]
    count: u64,
    /// Throughput runs per receiver (the median rate and the worst delivery are reported; all are kept).
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Seconds per latency point.
    #[arg(long, default_value_t = 3.0)]
    latency_secs: f64,
    /// Seconds of the legitimate ping-pong per phase (unloaded, then under the flood) of each
    /// flood row.
    #[arg(long, default_value_t = 5.0)]
    flood_secs: f64,
    /// CPU of the flood section's legitimate client (the generator is on CPU 0, the server on 1).
    #[arg(long, default_value = "0", value_parser = ["0", "1"])]
    flood_client_cpu: String,
    /// Scheduling of the flood section's legitimate client.
    #[arg(long, value_enum, default_value_t = ClientSched::Fifo)]
    flood_client_sched: ClientSched,
    /// The load generator for the throughput runs.
    #[arg(long, value_enum, default_value_t = Generator::Pktgen)]
    generator: Generator,
    /// Where results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Run only the flood section (for working on it; not with --update-readme).
    #[arg(long, conflicts_with = "update_readme")]
    flood_only: bool,
    /// Run only the latency section (for working on it; not with --update-readme).
    #[arg(long, conflicts_with_all = ["update_readme", "flood_only"])]
    latency_only: bool,
    /// Only the TCP section (requests, request/response, bulk send and receive).
    #[arg(long, conflicts_with_all = ["update_readme", "flood_only", "latency_only", "no_tcp"])]
    tcp_only: bool,
    /// With --tcp-only: only the rows under loss (curl through `xsknet-impair`), for working
    /// on loss recovery.
    #[arg(long, requires = "tcp_only")]
    loss_only: bool,
    /// With --tcp-only: only the request rows (wrk and ab against nginx and `xsknet http`),
    /// `--runs` interleaved rounds, the goals judged on the medians.
    #[arg(long, requires = "tcp_only", conflicts_with = "loss_only")]
    requests_only: bool,
    /// With --tcp-only: only the bulk-send rows of the goal (curl fetching 16 MiB from nginx
    /// with GSO off on CUBIC, from `xsknet http`, and from nginx on this machine's default
    /// congestion control when that is not CUBIC), `--runs` interleaved rounds, the goal judged
    /// on the median of all the transfers.
    #[arg(long, requires = "tcp_only", conflicts_with_all = ["loss_only", "requests_only"])]
    bulk_only: bool,
    /// With --tcp-only: only the bulk-receive rows (a kernel client sending to iperf3, to the
    /// kernel's tcp-sink and to `xsknet sink`), `--runs` interleaved rounds, the goal judged on
    /// the medians.
    #[arg(long, requires = "tcp_only", conflicts_with_all = ["loss_only", "requests_only", "bulk_only"])]
    receive_only: bool,
    /// Run only the throughput rows (for working on the receive path; not with --update-readme).
    #[arg(long, conflicts_with_all = ["update_readme", "flood_only", "latency_only", "tcp_only", "observability_only"])]
    throughput_only: bool,
    /// Leave the TCP section out.
    #[arg(long)]
    no_tcp: bool,
    /// Only the cost of observing (the sink with no publication, with the control endpoint,
    /// with /metrics scraped), `--runs` interleaved runs each (at least 3), for measuring that
    /// cost alone (not with --update-readme).
    #[arg(long, conflicts_with_all = ["update_readme", "flood_only", "latency_only", "tcp_only"])]
    observability_only: bool,
    /// Seconds of each TCP wrk and request/response row (wrk rounds to whole seconds).
    #[arg(long, default_value_t = 5.0)]
    tcp_secs: f64,
    /// The maximum the latency loads are shares of, packets per second, for every server
    /// (default: each xsknet echo server's own, searched before the latency points: the
    /// highest paced rate it serves with at most 0.1 % loss; the kernel server compared with
    /// it gets the same rate).
    #[arg(long)]
    max_pps: Option<f64>,
    /// The latency section's loads: packets per second (`1000`, at least 100) or shares of
    /// the maximum (`0.25`, above 0 and at most 1), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,0.1,0.25,0.5,0.9", value_parser = parse_load)]
    loads: Vec<f64>,
    /// The latency section's servers, comma-separated (of kernel-echo-busy, xsk-echo, xsknet-echo,
    /// kernel-echo-blocking, xsknet-echo-threaded).
    #[arg(long, value_delimiter = ',', default_values_t = LATENCY_SERVERS.map(String::from),
          value_parser = clap::builder::PossibleValuesParser::new(LATENCY_SERVERS))]
    servers: Vec<String>,
    /// Replace the block between `<!-- bench:start -->` and `<!-- bench:end -->` in README.md.
    #[arg(long)]
    update_readme: bool,
    /// The nice value of the benchmark's scheduling autogroup for the run (-20 to 19),
    /// restored after: with autogroups on, builds in other sessions weigh as much as this
    /// whole session whatever their own nice value (`xsknet_bench::autogroup`).
    #[arg(long, default_value_t = -20, allow_hyphen_values = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    autogroup_nice: i32,
    /// Directory holding xsknet, baseline, xsknet-pktgen, udp-check and xsknet-impair
    /// (default: this binary's own directory, wherever it is run from).
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
}

/// How the flood section's legitimate client is scheduled.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum ClientSched {
    /// SCHED_FIFO (`chrt -f 50`): on the generator's CPU it preempts the flooding generator
    /// the moment its echo comes back or its next slot is due; only the softirq (the flood's
    /// receive path, on veth on that CPU) still delays it. On the server's CPU it would share
    /// the core with a busy-polling `xsknet echo` under CFS and wait for its time slice, and
    /// that delay would pass for the server's round trip.
    Fifo,
    /// SCHED_OTHER (CFS), as a process is started: for comparison.
    Other,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Generator {
    /// xsknet's own AF_XDP generator (`xsknet pktgen`).
    Pktgen,
    /// netsniff-ng's trafgen, the outside reference.
    Trafgen,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Cli {
    /// Where and how the flood section's client runs, for the report: "CPU 0, SCHED_FIFO 50".
    fn flood_client(&self) -> String {
        match self.flood_client_sched {
            ClientSched::Fifo => format!("CPU {}, SCHED_FIFO {LEGIT_PRIO}", self.flood_client_cpu),
            ClientSched::Other => format!("CPU {}, SCHED_OTHER", self.flood_client_cpu),
        }
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.quick {
        cli.count = cli.count.min(300_000);
        cli.runs = 1;
        cli.latency_secs = cli.latency_secs.min(1.0);
        cli.flood_secs = cli.flood_secs.min(1.5);
        cli.tcp_secs = cli.tcp_secs.min(1.0);
    }
    if unsafe_is_not_root() {
        eprintln!("side-by-side: needs root (namespaces, XDP, AF_XDP): run `sudo make bench`");
        return ExitCode::FAILURE;
    }
    if let Err(e) = xsknet::signal::install() {
        eprintln!("side-by-side: {e}");
        return ExitCode::FAILURE;
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("side-by-side: {e}");
            ExitCode::FAILURE
        }
    }
}

fn unsafe_is_not_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) != Some("0")))
        .unwrap_or(true)
}

struct Bench<'a> {
    cli: &'a Cli,
    pair: NetNsPair,
    dir: PathBuf,
    bin: PathBuf,
}

#[derive(Serialize, Clone)]
struct ThroughputRun {
    sent: u64,
    generator_secs: f64,
    offered_pps: f64,
    received: u64,
    delivered: f64,
    detail: Value,
}

#[derive(Serialize)]
struct Throughput {
    receiver: String,
    what: String,
    /// The run with the median rate.
    median: ThroughputRun,
    /// The smallest fraction delivered over the runs.
    worst_delivered: f64,
    runs: Vec<ThroughputRun>,
}

#[derive(Serialize)]
struct LatencyPoint {
    server: String,
    /// Which of `--loads` this point is (its place in the list).
    load_index: usize,
    target_pps: u64,
    /// The load as a share of the maximum, when it was given as one (`--loads 0.5`).
    share: Option<f64>,
    result: Value,
}

impl LatencyPoint {
    /// The load as the tables print it: "1000 pps", or "375000 pps (50 %)".
    fn load(&self) -> String {
        match self.share {
            Some(f) => format!("{} pps ({:.0} %)", self.target_pps, f * 100.0),
            None => format!("{} pps", self.target_pps),
        }
    }

    /// A round-trip percentile in µs ("p50", "p99", …).
    fn rtt(&self, k: &str) -> Option<f64> {
        self.result["echo"]["rtt_us"][k].as_f64()
    }

    /// Echoes that did not come back.
    fn lost(&self) -> u64 {
        self.result["echo"]["lost"].as_u64().unwrap_or(0)
    }
}

impl Bench<'_> {
    fn exe(&self, name: &str) -> String {
        self.bin.join(name).to_string_lossy().into_owned()
    }

    fn stopped(&self) -> Result<(), BoxError> {
        if xsknet::signal::stop_requested() {
            return Err("interrupted".into());
        }
        Ok(())
    }

    /// The kernel on the receiving side has the address only for kernel receivers.
    fn kernel_addr(&self, on: bool) -> Result<(), BoxError> {
        let cidr = format!("{RX_ADDR}/24");
        let args = ["ip", "addr", if on { "add" } else { "del" }, cidr.as_str(), "dev", self.pair.ifname()];
        let out = self.pair.run(&args);
        if on && !out.status.success() {
            return Err(format!("ip addr add: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(())
    }

    fn start_receiver(&self, receiver: &str) -> Result<Proc, BoxError> {
        let ifname = self.pair.ifname().to_string();
        let ip = RX_ADDR.to_string();
        // The observability rows run the same sink with their own options (`observed_args`).
        let base = if receiver.starts_with("xsknet-sink") { "xsknet-sink" } else { receiver };
        let mut args: Vec<String> = match base {
            "xdp-drop" => vec![self.exe("baseline"), "xdp-drop".into(), "--iface".into(), ifname, "--ip".into(), ip],
            "xsk-echo" => vec![self.exe("baseline"), "xsk-echo".into(), "--iface".into(), ifname, "--ip".into(), ip],
            "xsk-rxdrop" | "xsk-rxdrop-touch" => {
                let mut v =
                    vec![self.exe("baseline"), "xsk-rxdrop".into(), "--iface".into(), ifname, "--ip".into(), ip];
                if base.ends_with("touch") {
                    v.push("--touch".into());
                }
                v
            }
            "kernel-udp" => vec![
                self.exe("baseline"),
                "udp-sink".into(),
                "--bind".into(),
                format!("{RX_ADDR}:{SINK_PORT}"),
                "--batch".into(),
                "64".into(),
            ],
            r if r.starts_with("xsknet-sink") => {
                let mut v = vec![
                    self.exe("xsknet"),
                    "sink".into(),
                    "--iface".into(),
                    ifname,
                    "--ip".into(),
                    format!("{ip}/24"),
                    "--port".into(),
                    SINK_PORT.to_string(),
                    "--stats-json".into(),
                    self.dir.join(format!("{receiver}.json")).to_string_lossy().into_owned(),
                ];
                if receiver.ends_with("pcap") {
                    v.push("--pcap".into());
                    v.push(self.pcap_file().to_string_lossy().into_owned());
                }
                v
            }
            "kernel-echo-blocking" | "kernel-echo-busy" => vec![
                self.exe("baseline"),
                "udp-echo".into(),
                "--bind".into(),
                format!("{RX_ADDR}:{ECHO_PORT}"),
                "--mode".into(),
                if receiver.ends_with("busy") { "busy" } else { "blocking" }.into(),
            ],
            "xsknet-echo" | "xsknet-echo-threaded" | "xsknet-echo-flood" | "xsknet-echo-guard" => {
                let mut v = vec![
                    self.exe("xsknet"),
                    "echo".into(),
                    "--iface".into(),
                    ifname,
                    "--ip".into(),
                    format!("{ip}/24"),
                    "--port".into(),
                    ECHO_PORT.to_string(),
                ];
                if receiver.ends_with("threaded") {
                    v.push("--threaded".into());
                }
                if let Some(extra) = std::env::var_os("XSKNET_BENCH_ECHO_ARGS") {
                    // For experiments: more options for the xsknet echo rows.
                    v.extend(extra.to_string_lossy().split_whitespace().map(String::from));
                }
                // Its counters and poll histograms at exit: where a latency row's time went.
                v.push("--stats-json".into());
                v.push(self.dir.join(format!("{receiver}.json")).to_string_lossy().into_owned());
                if receiver.ends_with("flood") || receiver.ends_with("guard") {
                    // The flood's sources are off the link: answered through the router.
                    v.extend(["--gateway".into(), GEN_ADDR.to_string()]);
                }
                if receiver.ends_with("guard") {
                    v.extend(self.guard_args());
                }
                v
            }
            other => return Err(format!("unknown receiver {other}").into()),
        };
        args.extend(observed_args(receiver));
        let mut p = Proc::spawn(self.pair.ns(), RX_CPU, &args, receiver, &self.dir)?;
        p.wait_ready(Duration::from_secs(10))?;
        Ok(p)
    }

    /// The guard's options for `xsknet-echo-guard`: `--guard-rules` with [`GUARD_RULES`] when
    /// this xsknet reads rules files, else `--guard` (the default policy).
    fn guard_args(&self) -> Vec<String> {
        if !self.has_flag("xsknet", Some("echo"), "--guard-rules") {
            return vec!["--guard".into()];
        }
        let path = self.dir.join("guard-rules.toml");
        match std::fs::write(&path, self.guard_rules()) {
            Ok(()) => vec!["--guard-rules".into(), path.to_string_lossy().into_owned()],
            Err(e) => {
                eprintln!("side-by-side: {}: {e}; the guard row runs the default policy", path.display());
                vec!["--guard".into()]
            }
        }
    }

    /// [`GUARD_RULES`] for this run.
    fn guard_rules(&self) -> String {
        GUARD_RULES.replace("{client}", &GEN_ADDR.to_string())
    }

    /// The capture file of `xsknet-sink-pcap` (removed after each run).
    fn pcap_file(&self) -> PathBuf {
        self.dir.join("xsknet-sink.pcapng")
    }

    /// How many datagrams a stopped receiver got, and what else it said.
    fn received(&self, receiver: &str, log: &str) -> Result<(u64, Value), BoxError> {
        if receiver.starts_with("xsknet-sink") {
            let path = self.dir.join(format!("{receiver}.json"));
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let got = v["counters"]["UdpInDatagrams"]
                .as_u64()
                .ok_or_else(|| format!("{}: no UdpInDatagrams", path.display()))?;
            let mut detail = serde_json::json!({
                "xdp_statistics": v["xdp_statistics"], "softirq_busy_share": v["softirq"]["busy_share"],
                "UdpRcvbufErrors": v["counters"]["UdpRcvbufErrors"], "rx_latency": v["rx_latency"],
                "loop": LoopCost::KEYS.iter().map(|&k| (k.to_string(), v["softirq"][k].clone())).collect::<serde_json::Map<_, _>>(),
                "xdp_prog": v["xdp_prog"],
                "stall": {
                    "run_delay_ns": v["softirq"]["run_delay_ns"], "nivcsw": v["softirq"]["nivcsw"],
                    "poll_gap_max_ns": v["softirq"]["poll"]["poll_gap"]["max_ns"],
                    "busy_poll_max_ns": v["softirq"]["poll"]["busy_poll"]["max_ns"],
                },
            });
            if receiver.ends_with("pcap") {
                // "pcap FILE: N frames written (B bytes), D capture drops (queue full)"
                detail["pcap"] = log.lines().find(|l| l.starts_with("pcap ")).unwrap_or("").into();
                detail["XskCaptureDrops"] = v["counters"]["XskCaptureDrops"].clone();
                detail["XskRxFrames"] = v["counters"]["XskRxFrames"].clone();
                let _ = std::fs::remove_file(self.pcap_file());
            }
            return Ok((got, detail));
        }
        let line = log
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .ok_or_else(|| format!("{receiver}: no result in:\n{log}"))?;
        let v: Value = serde_json::from_str(line)?;
        let got = v["received"].as_u64().ok_or_else(|| format!("{receiver}: no 'received' in {line}"))?;
        Ok((got, v))
    }

    /// Sends `count` 64-byte frames as fast as one core can; returns (sent, seconds).
    fn generate(&self, count: u64) -> Result<(u64, f64, Value), BoxError> {
        let mac = format_mac(self.pair.mac());
        let peer_if = self.pair.peer_ifname().to_string();
        match self.cli.generator {
            Generator::Trafgen => {
                let cfg = self.dir.join("udp64.cfg");
                std::fs::write(
                    &cfg,
                    format!(
                        "{{ eth(da={mac}, type=0x0800), ipv4(saddr={GEN_ADDR}, daddr={RX_ADDR}, proto=17, ttl=64), \
                         udp(sport=9000, dport={SINK_PORT}), fill(0x41, 18) }}\n"
                    ),
                )?;
                let out = command_in(
                    self.pair.peer_ns(),
                    &[
                        "taskset",
                        "-c",
                        GEN_CPU,
                        "trafgen",
                        "-o",
                        &peer_if,
                        "-c",
                        &cfg.to_string_lossy(),
                        "-n",
                        &count.to_string(),
                        "-P",
                        "1",
                        "-q",
                    ],
                )
                .output()?;
                let text =
                    String::from_utf8_lossy(&out.stdout).replace('\r', "") + &String::from_utf8_lossy(&out.stderr);
                let sent = text
                    .lines()
                    .find(|l| l.contains("packets outgoing"))
                    .and_then(|l| l.split_whitespace().next()?.parse().ok())
                    .ok_or_else(|| format!("trafgen output not understood:\n{text}"))?;
                let secs = text
                    .lines()
                    .find(|l| l.contains("usec on CPU"))
                    .and_then(|l| {
                        let w: Vec<&str> = l.split_whitespace().collect();
                        Some(w.first()?.parse::<f64>().ok()? + w.get(2)?.parse::<f64>().ok()? / 1e6)
                    })
                    .ok_or_else(|| format!("trafgen output not understood:\n{text}"))?;
                Ok((sent, secs, serde_json::json!({ "generator": "trafgen" })))
            }
            Generator::Pktgen => {
                let json = self.dir.join("pktgen.json");
                let _ = std::fs::remove_file(&json);
                self.run_pktgen(&["--dst-port", &SINK_PORT.to_string(), "--count", &count.to_string()], &json, "")?;
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
                let sent = v["sent"].as_u64().ok_or("pktgen json: no 'sent'")?;
                let secs = v["elapsed_s"].as_f64().ok_or("pktgen json: no 'elapsed_s'")?;
                Ok((sent, secs, v))
            }
        }
    }

    fn pktgen_args(&self, extra: &[&str], json: &Path) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "taskset".into(),
            "-c".into(),
            GEN_CPU.into(),
            self.exe("xsknet-pktgen"),
            "--iface".into(),
            self.pair.peer_ifname().into(),
            "--src".into(),
            format!("{GEN_ADDR}/24"),
            "--dst".into(),
            RX_ADDR.to_string(),
            "--dst-mac".into(),
            format_mac(self.pair.mac()),
            "--size".into(),
            "60".into(),
            "--progress".into(),
            "off".into(),
            "--json".into(),
            json.to_string_lossy().into_owned(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }

    /// The throughput rows, `--runs` runs each, interleaved: each round
    /// runs every row once, starting with the next one, so that a change of
    /// load on the machine (or of the generator's speed) falls on all rows
    /// alike and the ratios between them hold.
    fn throughput(&self, rows: &[(&str, &str)]) -> Result<Vec<Throughput>, BoxError> {
        let mut all: Vec<Vec<ThroughputRun>> = rows.iter().map(|_| Vec::new()).collect();
        for round in 0..self.cli.runs as usize {
            for k in 0..rows.len() {
                let i = (round + k) % rows.len();
                let receiver = rows[i].0;
                let kernel = receiver.starts_with("kernel");
                if kernel {
                    self.kernel_addr(true)?;
                }
                let run = self.throughput_run(receiver, self.cli.count);
                if kernel {
                    self.kernel_addr(false)?;
                }
                all[i].push(run?);
            }
        }
        rows.iter().zip(all).map(|((r, what), runs)| summarize(r, what, runs)).collect()
    }

    /// One throughput run of `count` frames against `receiver`.
    fn throughput_run(&self, receiver: &str, count: u64) -> Result<ThroughputRun, BoxError> {
        self.stopped()?;
        let p = self.start_receiver(receiver)?;
        // The first frames after an attach can be lost while the link bounces.
        std::thread::sleep(Duration::from_millis(300));
        let scraper = (receiver == "xsknet-sink-metrics").then(|| Scraper::start(self));
        let (sent, secs, gen) = self.generate(count)?;
        let scrapes = scraper.map(Scraper::stop).transpose()?;
        std::thread::sleep(Duration::from_millis(500));
        let log = p.stop()?;
        let (received, mut detail) = self.received(receiver, &log)?;
        if let Some(s) = scrapes {
            detail["scrapes"] = s;
        }
        let run = ThroughputRun {
            sent,
            generator_secs: secs,
            offered_pps: sent as f64 / secs,
            received,
            delivered: received as f64 / sent.max(1) as f64,
            detail: serde_json::json!({ "receiver": detail, "generator": gen }),
        };
        eprintln!(
            "  {receiver:<14} {:>6.3} Mpps offered, {:>9.5} % delivered",
            run.offered_pps / 1e6,
            run.delivered * 100.0
        );
        Ok(run)
    }

    /// What the observability costs: the sink with no publication at all
    /// (`--no-control`, the baseline), with the control endpoint (the
    /// default), and with `--metrics` while a scraper fetches `/metrics` and
    /// runs `xsknet stat` once a second. Runs long enough for several scrapes,
    /// at least three each, interleaved so that a change of load on the
    /// machine falls on all three alike.
    fn observability(&self) -> Result<Vec<Throughput>, BoxError> {
        let count = self.cli.count.max(if self.cli.quick { OBSERVED_MIN_COUNT_QUICK } else { OBSERVED_MIN_COUNT });
        let runs = self.cli.runs.max(3);
        eprintln!("== observability cost: xsknet sink, {count} frames x {runs} run(s) each, interleaved");
        let mut all: Vec<Vec<ThroughputRun>> = OBSERVED.iter().map(|_| Vec::new()).collect();
        for round in 0..runs as usize {
            // Each round starts with the next row: none always runs first.
            for k in 0..OBSERVED.len() {
                let i = (round + k) % OBSERVED.len();
                all[i].push(self.throughput_run(OBSERVED[i].0, count)?);
            }
        }
        OBSERVED.iter().zip(all).map(|((r, what), runs)| summarize(r, what, runs)).collect()
    }

    fn latency(
        &self,
        server: &str,
        load_index: usize,
        rate: u64,
        share: Option<f64>,
    ) -> Result<LatencyPoint, BoxError> {
        self.stopped()?;
        let kernel = server.starts_with("kernel");
        self.kernel_addr(kernel)?;
        let p = self.start_receiver(server)?;
        std::thread::sleep(Duration::from_millis(300));
        let json = self.dir.join(format!("lat-{server}-{rate}.json"));
        let hlog = self.dir.join(format!("lat-{server}-{rate}.hlog"));
        let mut args = echo_args(rate, &self.cli.latency_secs.to_string());
        args.extend(["--hlog".to_string(), hlog.to_string_lossy().into_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // The server is stopped, and the kernel's address taken back, whether the run went well or not.
        let run = self.run_pktgen(&args, &json, &format!(" --echo against {server}"));
        let log = p.stop();
        if std::env::var_os("XSKNET_BENCH_DEBUG").is_some() {
            eprintln!("{log:?}");
        }
        if kernel {
            self.kernel_addr(false)?;
        }
        run?;
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
        if !kernel {
            // The server's own account (`--stats-json`): stage latencies, poll histograms.
            let path = self.dir.join(format!("{server}.json"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                v["server"] = serde_json::from_str(&text)?;
            }
            let _ = std::fs::remove_file(path);
        }
        let pct = |k: &str| v["echo"]["rtt_us"][k].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "  {server:<22} {:>8} pps: p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  lost {}",
            rate,
            pct("p50"),
            pct("p99"),
            pct("p99.9"),
            v["echo"]["lost"]
        );
        if let Some(w) = Breakdown::of(&v) {
            eprintln!("  {:<22} {}", "", w.line());
        }
        Ok(LatencyPoint { server: server.into(), load_index, target_pps: rate, share, result: v })
    }

    /// The maximum `server` (an xsknet echo server) is loaded at shares of: the highest paced
    /// rate it serves with at most 0.1 % loss, found by bisection below the rate it echoes
    /// when the generator sends as fast as it can ([`PacedMax`]). One server for all the
    /// trials.
    fn paced_max(&self, server: &str) -> Result<PacedMax, BoxError> {
        self.stopped()?;
        let plan = SearchPlan::new(self.cli.quick);
        let p = self.start_receiver(server)?;
        std::thread::sleep(Duration::from_millis(300));
        let search = (|| {
            let v = self.echo_trial(server, 0, plan.full_rate_secs)?;
            let back = v["echo"]["received"].as_u64().unwrap_or(0) + v["echo"]["late"].as_u64().unwrap_or(0);
            let full = back as f64 / v["elapsed_s"].as_f64().unwrap_or(0.0).max(1e-3);
            eprintln!(
                "  {server:<22} echoes {full:>8.0} pps at full rate (offered {:.0} pps): the search's upper bound",
                v["rate_pps"].as_f64().unwrap_or(0.0)
            );
            if back == 0 {
                return Err(format!("{server} echoed nothing at full rate: no maximum to take shares of").into());
            }
            let mut search = PacedMax::new(full, plan);
            while let Some(rate) = search.next_rate() {
                self.stopped()?;
                let v = self.echo_trial(server, rate, plan.trial_secs)?;
                let t = Trial::new(
                    rate,
                    v["sent"].as_u64().unwrap_or(0),
                    v["rate_pps"].as_f64().unwrap_or(0.0),
                    v["echo"]["lost"].as_u64().unwrap_or(0),
                );
                eprintln!(
                    "  {:<22} paced {rate:>8} pps: offered {:.0}, lost {} ({:.3} %): {}",
                    "",
                    t.offered_pps,
                    t.lost,
                    t.loss() * 100.0,
                    if t.served { "served" } else { "not served" }
                );
                search.record(t);
            }
            Ok::<PacedMax, BoxError>(search)
        })();
        let _ = p.stop();
        let _ = std::fs::remove_file(self.dir.join(format!("{server}.json")));
        let search = search?;
        eprintln!(
            "  {server:<22} maximum {} pps{}",
            search.pps(),
            if search.lossless() { "" } else { " (no rate tried was served without loss: the lowest tried)" }
        );
        Ok(search)
    }

    /// One echo run against a server already started: `rate` packets a second (0: as fast as
    /// the generator can) for `secs`; the generator's JSON.
    fn echo_trial(&self, server: &str, rate: u64, secs: f64) -> Result<Value, BoxError> {
        let json = self.dir.join(format!("max-{server}.json"));
        let _ = std::fs::remove_file(&json);
        let args = echo_args(rate, &secs.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run_pktgen(&args, &json, &format!(" --echo --rate {rate} against {server}"))?;
        Ok(serde_json::from_str(&std::fs::read_to_string(&json)?)?)
    }

    /// `xsknet pktgen EXTRA`, its JSON to `json`, from the peer namespace; when it fails, an
    /// error naming the run (`xsknet pktgen{what} failed`) with the generator's output.
    fn run_pktgen(&self, extra: &[&str], json: &Path, what: &str) -> Result<(), BoxError> {
        let args = self.pktgen_args(extra, json);
        let out = command_in(self.pair.peer_ns(), &args).stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(format!(
                "xsknet pktgen{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }
}

/// The generator's arguments of an echo run to [`ECHO_PORT`]: `rate` datagrams a second (0:
/// as fast as it can) for `secs` seconds.
fn echo_args(rate: u64, secs: &str) -> Vec<String> {
    ["--dst-port", &ECHO_PORT.to_string(), "--echo", "--rate", &rate.to_string(), "--duration", secs]
        .map(String::from)
        .to_vec()
}

/// The flood's source addresses: the benchmarking range of RFC 2544 (198.18.0.0/15), off
/// the link, as a flood from the Internet arrives: the servers answer them through the
/// generator's address as their gateway ([`GEN_ADDR`], the router of this setup), whose MAC
/// is resolved once, and the generator's kernel drops the answers (it does not forward).
/// The legitimate client ([`GEN_ADDR`]) is never among them. On-link spoofed sources would
/// instead test the neighbour table: a reply to each waits for an ARP answer that never
/// comes, and the kernel's echo server blocks in `sendto` while those replies hold its
/// send buffer (`unres_qlen_bytes`, net/core/neighbour.c).
const FLOOD_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const FLOOD_PREFIX: u8 = 15;
/// The generator's own address in it (its `--src`).
const FLOOD_SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The legitimate client: datagrams per second, UDP payload bytes (a 60-byte frame, as the
/// generator's), and how long before an echo that has not come back counts as lost.
const LEGIT_RATE: u64 = 1000;
const LEGIT_PAYLOAD: usize = 18;
const LEGIT_TIMEOUT_MS: u64 = 100;
/// The legitimate client's SCHED_FIFO priority with `--flood-client-sched fifo` (the default:
/// see [`ClientSched`]).
const LEGIT_PRIO: &str = "50";
/// The guard's rules for its row (`--guard-rules`, TOML, docs/guard.md), when this xsknet
/// reads rules files: the default policy (malformed IPv4 dropped, 50 000 packets/s per source)
/// with the legitimate client allowlisted and UDP from everyone else limited to 20 000
/// packets/s in all. The flood's sources are random over a /15, a few packets a second each:
/// no per-source limit sees them, so the limit must be global, and a global limit would drop
/// the client's datagrams in proportion unless it is allowed. `{client}` is [`GEN_ADDR`].
const GUARD_RULES: &str = "\
drop_malformed = true
allow = [\"{client}\"]

[per_source]
pps = 50000
burst = 5000

[global]
udp = { pps = 20000, burst = 2000 }
";

/// The servers of the flood section: (receiver, label). The guard's row runs only when this
/// `xsknet echo` has `--guard`.
const FLOOD_SERVERS: [(&str, &str); 3] = [
    ("kernel-echo-blocking", "kernel UDP echo (blocking recvfrom)"),
    ("xsknet-echo-flood", "xsknet echo, no guard"),
    ("xsknet-echo-guard", "xsknet echo --guard"),
];

/// One CPU's line of /proc/stat, in USER_HZ ticks (`show_stat` in fs/proc/stat.c).
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct CpuTicks {
    softirq: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is in user).
    total: u64,
}

/// `cpuN` lines of /proc/stat, by N.
fn proc_stat_cpus() -> Vec<CpuTicks> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> Vec<CpuTicks> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        let Some(name) = w.next() else { continue };
        if !name.starts_with("cpu") || name == "cpu" {
            continue;
        }
        let v: Vec<u64> = w.take(8).filter_map(|x| x.parse().ok()).collect();
        if v.len() == 8 {
            out.push(CpuTicks { softirq: v[6], total: v.iter().sum() });
        }
    }
    out
}

/// Counters at one instant: the CPUs' ticks, the running xsknet's counters (by name, from
/// its control endpoint) or the kernel's UDP MIB in the server's namespace.
struct Mark {
    cpus: Vec<CpuTicks>,
    counters: std::collections::BTreeMap<String, u64>,
    /// When xsknet's loop published the counters (it does every 100 ms,
    /// `publish::PUBLISH_INTERVAL`); the kernel's are read live.
    at: Instant,
}

/// The kernel's `Udp:` MIB (/proc/net/snmp, as `nstat` names it: `UdpInDatagrams`) in `ns`.
fn kernel_udp_mib(ns: &str) -> Result<std::collections::BTreeMap<String, u64>, BoxError> {
    let out = xsknet::testing::run_in(ns, &["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("Udp:")).collect();
    let [names, values] = rows[..] else {
        return Err(format!("/proc/net/snmp in {ns}: no Udp: lines").into());
    };
    Ok(names
        .split_whitespace()
        .zip(values.split_whitespace())
        .skip(1)
        .filter_map(|(n, v)| Some((format!("Udp{n}"), v.parse().ok()?)))
        .collect())
}

/// What one phase (unloaded, or under the flood) measured for one server.
#[derive(Serialize)]
struct FloodPhase {
    /// "unloaded" or "flood".
    load: String,
    /// udp-check's fixed-rate report (round trip percentiles in µs, loss, send lag).
    client: Value,
    /// Frames per second the flood generator sent (None unloaded).
    flood_pps: Option<f64>,
    /// The generator's report (None unloaded).
    flood: Option<Value>,
    /// The kernel's `si` per CPU over the client's run: softirq ticks over all ticks, 0–1.
    si_share: Vec<f64>,
    /// xsknet's own softirq busy share over the client's run (SoftirqBusyNs / SoftirqTotalNs).
    ours_busy_share: Option<f64>,
    /// Frames that reached user space over the client's run: xsknet's rx ring
    /// (`XskRxFrames`), the kernel's socket layer (`UdpInDatagrams`).
    user_space_frames: u64,
    /// The client's run.
    seconds: f64,
    /// The time the counters' changes cover (xsknet's: from one publication to another).
    counter_seconds: f64,
    /// Every counter's change over the client's run.
    counters: std::collections::BTreeMap<String, u64>,
}

impl FloodPhase {
    /// The flood rate offered, as the tables print it.
    fn flood_offered(&self) -> String {
        self.flood_pps.map(|r| format!("{:.3} Mpps", r / 1e6)).unwrap_or_else(|| "–".into())
    }

    /// xsknet's softirq busy share, as the tables print it.
    fn busy(&self) -> String {
        self.ours_busy_share.map(|s| format!("{:.1} %", s * 100.0)).unwrap_or_else(|| "–".into())
    }

    /// The client's loss, percent.
    fn loss_pct(&self) -> f64 {
        self.client["loss"].as_f64().unwrap_or(f64::NAN) * 100.0
    }

    /// Frames that reached user space, per second.
    fn to_user_space_per_s(&self) -> f64 {
        self.user_space_frames as f64 / self.counter_seconds.max(1e-9)
    }
}

/// A server's two phases, or why it was skipped.
#[derive(Serialize)]
struct FloodRow {
    server: String,
    what: String,
    skipped: Option<String>,
    /// The guard's options and, with `--guard-rules`, the rules file's text.
    guard: Option<Value>,
    phases: Vec<FloodPhase>,
}

impl Bench<'_> {
    /// The running server's counters, or the kernel's UDP MIB for a kernel server.
    fn mark(&self, kernel: bool) -> Result<Mark, BoxError> {
        if kernel {
            let counters = kernel_udp_mib(self.pair.ns())?;
            return Ok(Mark { cpus: proc_stat_cpus(), counters, at: Instant::now() });
        }
        let path = xsknet::control::find(Some(self.pair.ifname()), None)?;
        let asked = Instant::now();
        let snap: xsknet::control::Snapshot = xsknet::control::request(&path, xsknet::control::Request::Stats)?;
        let at = asked.checked_sub(Duration::from_nanos(snap.age_ns)).unwrap_or(asked);
        let counters = snap.counters().into_iter().map(|(n, v, _)| (n.to_string(), v)).collect();
        Ok(Mark { cpus: proc_stat_cpus(), counters, at })
    }

    /// Whether `exe --help` (a subcommand's, with `sub`) lists `flag`.
    fn has_flag(&self, exe: &str, sub: Option<&str>, flag: &str) -> bool {
        let mut c = Command::new(self.exe(exe));
        c.args(sub).arg("--help");
        c.output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).split(|ch: char| ch.is_whitespace() || ch == ',').any(|w| w == flag)
            })
            .unwrap_or(false)
    }

    /// The flood: the generator at its full rate for `secs` (`--flood udp`: random payloads and
    /// source ports), from random sources in [`FLOOD_NET`]/[`FLOOD_PREFIX`] (`--spoof`) to the
    /// echo port, 60-byte frames.
    fn flood_args(&self, secs: f64, json: &Path) -> Vec<String> {
        vec![
            self.exe("xsknet-pktgen"),
            "--iface".into(),
            self.pair.peer_ifname().into(),
            "--src".into(),
            format!("{FLOOD_SRC}/{FLOOD_PREFIX}"),
            "--dst".into(),
            RX_ADDR.to_string(),
            "--dst-mac".into(),
            format_mac(self.pair.mac()),
            "--dst-port".into(),
            ECHO_PORT.to_string(),
            "--size".into(),
            "60".into(),
            "--duration".into(),
            format!("{secs:.3}"),
            "--progress".into(),
            "off".into(),
            "--json".into(),
            json.to_string_lossy().into_owned(),
            "--flood".into(),
            "udp".into(),
            "--spoof".into(),
            format!("{FLOOD_NET}/{FLOOD_PREFIX}"),
            // Nothing attached on the generator's side: its kernel keeps every frame that
            // arrives (the client's echoes, and the servers' answers to the flood, dropped).
            "--no-xdp".into(),
        ]
    }

    /// The legitimate client: [`LEGIT_RATE`] datagrams a second for `secs` from [`GEN_ADDR`],
    /// on `--flood-client-cpu` as `--flood-client-sched` says; its JSON report.
    fn legit_client(&self, secs: f64) -> Result<Value, BoxError> {
        let mut args: Vec<String> = match self.cli.flood_client_sched {
            ClientSched::Fifo => vec!["chrt".into(), "-f".into(), LEGIT_PRIO.into()],
            ClientSched::Other => Vec::new(),
        };
        args.extend([
            "taskset".into(),
            "-c".into(),
            self.cli.flood_client_cpu.clone(),
            self.exe("udp-check"),
            "--to".into(),
            format!("{RX_ADDR}:{ECHO_PORT}"),
            "--bind".into(),
            format!("{GEN_ADDR}:0"),
            "--rate".into(),
            LEGIT_RATE.to_string(),
            "--duration".into(),
            format!("{secs:.3}"),
            "--sizes".into(),
            LEGIT_PAYLOAD.to_string(),
            "--timeout-ms".into(),
            LEGIT_TIMEOUT_MS.to_string(),
            "--min-ok".into(),
            "0".into(),
            "--json".into(),
        ]);
        let out = command_in(self.pair.peer_ns(), &args).stdin(Stdio::null()).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        // Exit status 1 is a verdict (corrupted echoes), in the JSON; anything else is a failure.
        if !matches!(out.status.code(), Some(0 | 1)) {
            return Err(
                format!("udp-check failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr)).into()
            );
        }
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).ok_or("udp-check: no JSON")?;
        Ok(serde_json::from_str(line)?)
    }

    /// One phase: the legitimate client's run, with the counters read around it.
    fn flood_phase(
        &self,
        kernel: bool,
        client: impl FnOnce() -> Result<Value, BoxError>,
    ) -> Result<FloodPhase, BoxError> {
        let before = self.mark(kernel)?;
        let t0 = Instant::now();
        let client = client()?;
        let seconds = t0.elapsed().as_secs_f64();
        let after = self.mark(kernel)?;
        let counters: std::collections::BTreeMap<String, u64> = after
            .counters
            .iter()
            .map(|(n, v)| (n.clone(), v.saturating_sub(before.counters.get(n).copied().unwrap_or(0))))
            .collect();
        let si_share = before
            .cpus
            .iter()
            .zip(&after.cpus)
            .map(|(a, b)| (b.softirq - a.softirq) as f64 / (b.total - a.total).max(1) as f64)
            .collect();
        let ours_busy_share = (!kernel).then(|| {
            counters.get("SoftirqBusyNs").copied().unwrap_or(0) as f64
                / counters.get("SoftirqTotalNs").copied().unwrap_or(0).max(1) as f64
        });
        let user_space_frames =
            counters.get(if kernel { "UdpInDatagrams" } else { "XskRxFrames" }).copied().unwrap_or(0);
        Ok(FloodPhase {
            load: String::new(),
            client,
            flood_pps: None,
            flood: None,
            si_share,
            ours_busy_share,
            user_space_frames,
            seconds,
            counter_seconds: after.at.saturating_duration_since(before.at).as_secs_f64(),
            counters,
        })
    }

    /// One server of the flood section: unloaded, then under the flood.
    fn flood_row(&self, server: &str, what: &str) -> Result<FloodRow, BoxError> {
        self.stopped()?;
        let secs = self.cli.flood_secs;
        let kernel = server.starts_with("kernel");
        if server.ends_with("guard") && !self.has_flag("xsknet", Some("echo"), "--guard") {
            let note = "skipped: this xsknet echo has no --guard (not in `xsknet echo --help`)".to_string();
            eprintln!("  {server:<22} {note}");
            return Ok(FloodRow {
                server: server.into(),
                what: what.into(),
                skipped: Some(note),
                guard: None,
                phases: Vec::new(),
            });
        }
        self.kernel_addr(kernel)?;
        let route = format!("{FLOOD_NET}/{FLOOD_PREFIX}");
        if kernel {
            // The flood's sources are off the link: answered through the router.
            let gw = GEN_ADDR.to_string();
            let out = self.pair.run(&["ip", "route", "add", &route, "via", &gw, "dev", self.pair.ifname()]);
            if !out.status.success() {
                return Err(format!("ip route add {route}: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
        }
        let result = (|| {
            let p = self.start_receiver(server)?;
            std::thread::sleep(Duration::from_millis(300));
            let mut unloaded = self.flood_phase(kernel, || self.legit_client(secs))?;
            unloaded.load = "unloaded".into();
            self.report_phase(server, &unloaded);
            // The generator runs a little longer than the client: it sets up its socket and
            // UMEM first and must be at full rate before the client starts.
            let json = self.dir.join(format!("flood-{server}.json"));
            let _ = std::fs::remove_file(&json);
            let settle = Duration::from_millis(500);
            let gen_secs = secs + settle.as_secs_f64() + 0.5;
            let gen = Proc::spawn(
                self.pair.peer_ns(),
                GEN_CPU,
                &self.flood_args(gen_secs, &json),
                &format!("flood-{server}"),
                &self.dir,
            )?;
            std::thread::sleep(settle);
            let mut loaded = self.flood_phase(kernel, || self.legit_client(secs))?;
            let gen_log = gen.wait_exit(Duration::from_secs_f64(gen_secs + 10.0))?;
            let report: Value = serde_json::from_str(
                &std::fs::read_to_string(&json)
                    .map_err(|e| format!("the flood generator wrote no {}: {e}\n{gen_log}", json.display()))?,
            )?;
            loaded.load = "flood".into();
            loaded.flood_pps = match (report["sent"].as_f64(), report["elapsed_s"].as_f64()) {
                (Some(n), Some(s)) if s > 0.0 => Some(n / s),
                _ => None,
            };
            loaded.flood = Some(report);
            self.report_phase(server, &loaded);
            let _ = p.stop();
            let guard = server.ends_with("guard").then(|| {
                let args = self.guard_args();
                let rules = (args[0] == "--guard-rules").then(|| self.guard_rules());
                serde_json::json!({ "args": args[0], "rules": rules })
            });
            Ok(FloodRow {
                server: server.into(),
                what: what.into(),
                skipped: None,
                guard,
                phases: vec![unloaded, loaded],
            })
        })();
        if kernel {
            let _ = self.pair.run(&["ip", "route", "del", &route]);
            self.kernel_addr(false)?;
        }
        result
    }

    fn report_phase(&self, server: &str, ph: &FloodPhase) {
        let c = &ph.client;
        let p = |k: &str| c["rtt_us"][k].as_f64().unwrap_or(f64::NAN);
        let si: Vec<String> = ph.si_share.iter().map(|s| format!("{:.0} %", s * 100.0)).collect();
        eprintln!(
            "  {server:<22} {:<8} flood offered {:>10}: p50 {:>7.1} µs  p99 {:>7.1} µs  p99.9 {:>7.1} µs  loss {:.3} %  ours {}  si [{}]  to user space {:.0}/s",
            ph.load,
            ph.flood_offered(),
            p("p50"),
            p("p99"),
            p("p99.9"),
            ph.loss_pct(),
            ph.busy(),
            si.join(", "),
            ph.to_user_space_per_s()
        );
    }

    /// The flood section: every server of [`FLOOD_SERVERS`], unloaded then flooded.
    fn flood(&self) -> Result<Vec<FloodRow>, BoxError> {
        eprintln!(
            "== under a flood: legitimate UDP ping-pong at {LEGIT_RATE}/s for {} s (udp-check on {}), beside the \
             generator's full-rate flood from {FLOOD_NET}/{FLOOD_PREFIX}",
            self.cli.flood_secs,
            self.cli.flood_client()
        );
        FLOOD_SERVERS.iter().map(|(s, what)| self.flood_row(s, what)).collect()
    }
}

impl Throughput {
    /// The run that delivered the smallest share.
    fn worst_run(&self) -> Option<&ThroughputRun> {
        self.runs.iter().min_by(|a, b| a.delivered.total_cmp(&b.delivered))
    }
}

/// Where a run's lost frames went, from what the receiver counted: before the XDP program (on
/// veth, the hop from the generator), an empty fill ring or a full rx ring (AF_XDP's
/// `rx_fill_ring_empty_descs`, `rx_ring_full`), the socket's buffer (`UdpRcvbufErrors`), and the
/// rest; for xsknet, also the loop's longest gap between two polls and the time its thread
/// waited on the run queue in the run (`softirq.poll.poll_gap`, `run_delay`): a fill ring of
/// N frames lasts N / rate seconds when the loop does not run.
fn loss_where(run: &ThroughputRun) -> String {
    let lost = run.sent.saturating_sub(run.received);
    if lost == 0 {
        return "nothing lost".into();
    }
    let r = &run.detail["receiver"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let mut parts = Vec::new();
    let mut counted = 0;
    if let Some(rx) = r["xdp_prog"]["rx"].as_u64() {
        let before = run.sent.saturating_sub(rx);
        if before > 0 {
            parts.push(format!("{before} before the XDP program"));
            counted += before;
        }
    }
    for (k, what) in [
        (&r["xdp_statistics"]["rx_fill_ring_empty_descs"], "fill ring empty"),
        (&r["xdp_statistics"]["rx_ring_full"], "rx ring full"),
        (&r["UdpRcvbufErrors"], "UdpRcvbufErrors"),
    ] {
        if n(k) > 0 {
            parts.push(format!("{} {what}", n(k)));
            counted += n(k);
        }
    }
    if lost > counted {
        parts.push(format!("{} not counted", lost - counted));
    }
    let mut text = format!("{lost}: {}", parts.join(", "));
    let s = &r["stall"];
    if let (Some(gap), Some(delay)) = (s["poll_gap_max_ns"].as_f64(), s["run_delay_ns"].as_f64()) {
        text.push_str(&format!(
            "; loop's longest gap between polls {:.1} ms, {:.1} ms runnable but not running",
            gap / 1e6,
            delay / 1e6
        ));
    }
    text
}

/// The run with the median rate, and the worst delivery.
fn summarize(receiver: &str, what: &str, runs: Vec<ThroughputRun>) -> Result<Throughput, BoxError> {
    let mut by_rate: Vec<&ThroughputRun> = runs.iter().collect();
    by_rate.sort_by(|a, b| a.offered_pps.total_cmp(&b.offered_pps));
    let median = by_rate.get(by_rate.len() / 2).map(|r| (*r).clone()).ok_or("no runs")?;
    let worst_delivered = runs.iter().map(|r| r.delivered).fold(f64::INFINITY, f64::min);
    Ok(Throughput { receiver: receiver.into(), what: what.into(), median, worst_delivered, runs })
}

/// The observability rows: the sink's rate with nothing published, with the
/// control endpoint, and with the metrics server scraped.
const OBSERVED: [(&str, &str); 3] = [
    ("xsknet-sink-no-control", "xsknet sink --no-control (nothing published: the baseline)"),
    ("xsknet-sink-control", "xsknet sink, control endpoint on (the default)"),
    ("xsknet-sink-metrics", "xsknet sink --metrics, /metrics and `xsknet stat` once a second"),
];

/// Frames per observability run, at least: ~2 s at 1.4 Mpps, two scrapes or more.
const OBSERVED_MIN_COUNT: u64 = 3_000_000;

/// The same with `--quick`: ~0.7 s at 1.4 Mpps, a scrape or more.
const OBSERVED_MIN_COUNT_QUICK: u64 = 1_000_000;

/// Where the metrics row serves `/metrics` (inside the bench's namespace).
const METRICS_ADDR: &str = "127.0.0.1:9464";

/// The options an observability row adds to `xsknet sink`.
fn observed_args(receiver: &str) -> Vec<String> {
    match receiver {
        "xsknet-sink-no-control" => vec!["--no-control".into()],
        "xsknet-sink-metrics" => vec!["--metrics".into(), METRICS_ADDR.into()],
        _ => Vec::new(),
    }
}

/// What a scraper thread returns: scrapes and `stat`s that succeeded, and the failures.
type ScrapeTally = (u64, u64, Vec<String>);

/// Fetches `/metrics` and runs `xsknet stat` once a second in the receiver's
/// namespace, on the generator's CPU (as a Prometheus elsewhere would: the
/// cost measured is the one xsknet pays to answer).
struct Scraper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<ScrapeTally>,
}

impl Scraper {
    fn start(b: &Bench) -> Scraper {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ns, ifname) = (b.pair.ns().to_string(), b.pair.ifname().to_string());
        let thread = {
            let stop = stop.clone();
            // In this process, not as child processes: on two cores a process started
            // once a second (`ip netns exec` alone sets up a mount namespace) costs the
            // generator's core more than the scrape costs xsknet, and the row would
            // measure that. What xsknet serves is the same: a GET /metrics over TCP,
            // and the control socket's `stats` answer that `xsknet stat` reads.
            std::thread::spawn(move || {
                let (mut scrapes, mut stats, mut errors) = (0, 0, Vec::new());
                let get = || -> Result<(), String> {
                    xsknet::testing::in_netns(&ns, || {
                        use std::io::Write;
                        let mut c = std::net::TcpStream::connect(METRICS_ADDR).map_err(|e| e.to_string())?;
                        c.set_read_timeout(Some(Duration::from_secs(1))).map_err(|e| e.to_string())?;
                        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").map_err(|e| e.to_string())?;
                        let mut body = Vec::new();
                        c.read_to_end(&mut body).map_err(|e| e.to_string())?;
                        if body.starts_with(b"HTTP/1.1 200") || body.starts_with(b"HTTP/1.0 200") {
                            Ok(())
                        } else {
                            Err(String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned())
                        }
                    })
                };
                let stat = || -> Result<(), String> {
                    let path = xsknet::control::find(Some(&ifname), None).map_err(|e| e.to_string())?;
                    xsknet::control::request::<xsknet::control::Snapshot>(&path, xsknet::control::Request::Stats)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t0 = Instant::now();
                    match get() {
                        Ok(()) => scrapes += 1,
                        Err(e) => errors.push(format!("GET /metrics: {e}")),
                    }
                    match stat() {
                        Ok(()) => stats += 1,
                        Err(e) => errors.push(format!("stats from the control socket: {e}")),
                    }
                    while t0.elapsed() < Duration::from_secs(1) && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                (scrapes, stats, errors)
            })
        };
        Scraper { stop, thread }
    }

    /// Stops it: how many scrapes and `stat`s succeeded, as JSON; an error if any failed.
    fn stop(self) -> Result<Value, BoxError> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (scrapes, stats, errors) = self.thread.join().map_err(|_| "the scraper panicked")?;
        if let Some(e) = errors.first() {
            return Err(format!("scraping xsknet sink --metrics failed ({} errors): {e}", errors.len()).into());
        }
        Ok(serde_json::json!({ "metrics_scrapes": scrapes, "xsknet_stats": stats }))
    }
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "host".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

fn today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output().ok();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_else(|| "today".into())
}

/// What the run did to its scheduling autogroup, for the setup in the results.
static AUTOGROUP_NOTE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The directory of xsknet, baseline, xsknet-pktgen, udp-check and xsknet-impair: `--bin-dir`,
/// else this binary's own (cargo puts them all in one, `$CARGO_TARGET_DIR/release`).
fn bin_dir(cli: &Cli) -> Result<PathBuf, BoxError> {
    match &cli.bin_dir {
        Some(d) => Ok(d.clone()),
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
            Ok(exe.parent().ok_or("no directory for this binary")?.to_path_buf())
        }
    }
}

fn run(cli: &Cli) -> Result<(), BoxError> {
    let dir = bin_dir(cli)?;
    let bin = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e} (run `make build` first)", dir.display()))?;
    for exe in ["xsknet", "baseline", "xsknet-pktgen", "udp-check"] {
        if !bin.join(exe).exists() {
            return Err(format!("{} missing: run `make build`", bin.join(exe).display()).into());
        }
    }
    if cli.generator == Generator::Trafgen && Command::new("trafgen").arg("-v").output().is_err() {
        return Err("trafgen not found: run `make deps`".into());
    }
    let dir = std::env::temp_dir().join(format!("xsknet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The generator's kernel has its address (it answers xsknet's ARP); IPv6 off so
    // that no router solicitation or MLD report lands in the counts.
    let pair = NetNsPair::with_options(&NetNsPairOptions {
        peer_addr: Some((GEN_ADDR, 24)),
        ipv6: false,
        ..Default::default()
    })?;
    // The kernel echo servers send from this side: full checksums on the wire,
    // as a NIC would put them, or the generator counts every reply as corrupt.
    let out = pair.run(&["ethtool", "-K", pair.ifname(), "tx", "off"]);
    if !out.status.success() {
        return Err(format!("ethtool -K {} tx off: {}", pair.ifname(), String::from_utf8_lossy(&out.stderr)).into());
    }
    // The servers and the generator are children: same session, same autogroup.
    let autogroup = AutogroupNice::set(cli.autogroup_nice);
    let note = match &autogroup {
        Ok(g) => format!("{} nice {} for the run (was {})", g.group, g.now, g.was),
        Err(e) => format!("left as it is: {e}"),
    };
    eprintln!("== scheduling autogroup: {note}");
    let _ = AUTOGROUP_NOTE.set(note);
    let bench = Bench { cli, pair, dir: dir.clone(), bin };
    let result = measure(&bench);
    drop(bench); // removes the namespaces
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure(b: &Bench) -> Result<(), BoxError> {
    let cli = b.cli;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    if !(cli.tcp_only || (cli.latency_only && cli.max_pps.is_some())) {
        eprintln!(
            "== throughput: 64-byte UDP, {} frames x {} run(s) each, interleaved, generator {:?} on CPU {GEN_CPU}, receiver on CPU {RX_CPU}",
            cli.count, cli.runs, cli.generator
        );
    }
    let receivers = [
        ("xdp-drop", "XDP_DROP at the receiving veth (the ceiling)"),
        ("xsk-rxdrop", "bare AF_XDP rx-and-drop, no parsing (the AF_XDP ceiling)"),
        ("xsk-rxdrop-touch", "bare AF_XDP rx-and-drop, reading each packet's first 64 bytes (the ceiling of a receiver that looks at its packets)"),
        ("kernel-udp", "kernel UDP socket, recvmmsg x 64"),
        ("xsknet-sink", "xsknet sink (run to completion)"),
        ("xsknet-sink-pcap", "xsknet sink --pcap FILE (every frame captured)"),
    ];
    let udp = !cli.flood_only && !cli.latency_only && !cli.tcp_only;
    let rows: Vec<(&str, &str)> = receivers.into_iter().filter(|_| udp && !cli.observability_only).collect();
    let mut throughput = b.throughput(&rows)?;
    for t in &mut throughput {
        let what = t.what.clone();
        if t.receiver == "xsknet-sink-pcap" {
            // How much of the traffic the capture kept (the rest is XskCaptureDrops).
            let d = &t.median.detail["receiver"];
            if let (Some(drops), Some(rx)) = (d["XskCaptureDrops"].as_u64(), d["XskRxFrames"].as_u64()) {
                let kept = 100.0 * (1.0 - drops as f64 / rx.max(1) as f64);
                t.what = format!("{what}: {kept:.1} % of frames in the file");
            }
        }
    }
    let observed = if udp && !cli.throughput_only { b.observability()? } else { Vec::new() };

    let latency_on = !cli.flood_only && !cli.tcp_only && !cli.observability_only && !cli.throughput_only;
    if latency_on {
        eprintln!("== latency: UDP echo, 64-byte frames, {} s per point", cli.latency_secs);
    }
    let loads = if latency_on { latency_loads(&cli.loads, cli.quick) } else { Vec::new() };
    // The maxima the shares are of: each xsknet echo server's own (like with like), or --max-pps.
    let mut maxima: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut searches: BTreeMap<&'static str, PacedMax> = BTreeMap::new();
    if loads.iter().any(|l| l.share.is_some()) {
        for s in &cli.servers {
            let of = paced_by(s);
            if !maxima.contains_key(of) {
                let m = match cli.max_pps {
                    Some(m) => m,
                    None => {
                        let search = b.paced_max(of)?;
                        let m = search.pps() as f64;
                        searches.insert(of, search);
                        m
                    }
                };
                maxima.insert(of, m);
            }
        }
    }
    let mut latency = Vec::new();
    for (i, load) in loads.iter().enumerate() {
        for s in &cli.servers {
            let rate = load.rate(maxima.get(paced_by(s)).copied().unwrap_or(0.0));
            latency.push(b.latency(s, i, rate, load.share)?);
        }
    }

    let flood = if cli.latency_only || cli.tcp_only || cli.observability_only || cli.throughput_only {
        Vec::new()
    } else {
        b.flood()?
    };

    let tcp = if cli.tcp_only
        || !(cli.flood_only || cli.latency_only || cli.no_tcp || cli.observability_only || cli.throughput_only)
    {
        let t = tcp_bench::TcpBench {
            ns: b.pair.ns(),
            ifname: b.pair.ifname(),
            peer_ns: b.pair.peer_ns(),
            peer_ifname: b.pair.peer_ifname(),
            dir: &b.dir,
            bin: &b.bin,
            server_addr: RX_ADDR,
            peer_addr: GEN_ADDR,
            client_cpu: GEN_CPU,
            server_cpu: RX_CPU,
            quick: cli.quick,
            secs: cli.tcp_secs,
        };
        if cli.requests_only {
            Some(t.run_requests(cli.runs, &|| b.stopped())?)
        } else if cli.bulk_only {
            Some(t.run_bulk(cli.runs, &|| b.stopped())?)
        } else if cli.receive_only {
            Some(t.run_receive(cli.runs, &|| b.stopped())?)
        } else {
            let mut r = if cli.loss_only { tcp_bench::TcpResults::default() } else { t.run(&|| b.stopped())? };
            eprintln!("== tcp: under loss, through xsknet-impair");
            tcp_bench::under_loss(&b.bin, &b.dir, cli.quick, (GEN_CPU, RX_CPU), &|| b.stopped(), &mut r)?;
            Some(r)
        }
    } else {
        None
    };

    let date = today();
    let name = format!("{date}-{}", host());
    std::fs::create_dir_all(&cli.out)?;
    let setup = serde_json::json!({
        "kernel": kernel, "interface": "veth pair across two network namespaces",
        "xdp_mode": "driver (native)", "af_xdp": "copy mode (veth has no zero-copy)",
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "cpu": cpu_model(),
        "generator": cli.generator, "generator_cpu": GEN_CPU, "receiver_cpu": RX_CPU,
        "frame_bytes": "60 (64 on the wire with FCS)", "count": cli.count, "runs": cli.runs,
        "latency_secs": cli.latency_secs, "quick": cli.quick, "flood_secs": cli.flood_secs,
        "autogroup": AUTOGROUP_NOTE.get(),
        "flood_setup": {
            "legitimate": format!(
                "udp-check --rate {LEGIT_RATE} --sizes {LEGIT_PAYLOAD} --timeout-ms {LEGIT_TIMEOUT_MS} from {GEN_ADDR} \
                 on {}",
                cli.flood_client()
            ),
            "flood": format!("xsknet pktgen at full rate on CPU {GEN_CPU} from {FLOOD_NET}/{FLOOD_PREFIX} to port {ECHO_PORT}, 60-byte frames"),
        },
    });
    let maxima_from = if cli.max_pps.is_some() {
        "--max-pps".to_string()
    } else {
        format!(
            "searched: the highest paced rate served with at most {} % lost, by bisection below the echoes per \
             second at full rate (see `search`)",
            LOSS_LIMIT * 100.0
        )
    };
    let search_json: BTreeMap<&str, Value> = searches
        .iter()
        .map(|(s, m)| {
            let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
            v["pps"] = m.pps().into();
            v["lossless"] = m.lossless().into();
            (*s, v)
        })
        .collect();
    let results = serde_json::json!({ "date": date, "host": host(), "setup": setup, "throughput": throughput, "observability": observed,
        "latency_maxima": { "pps": maxima, "from": maxima_from, "loss_limit": LOSS_LIMIT, "search": search_json },
        "latency": latency, "flood": flood, "tcp": tcp });
    let json_path = cli.out.join(format!("{name}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)?;
    let mut md = markdown(&results, &throughput, &latency, &flood, &maxima, &searches);
    md.push_str(&observability_table(&observed));
    md.push_str(&flood_table(&flood, &cli.flood_client()));
    let tcp_plot = cli.out.join(format!("{name}-tcp-rr.svg"));
    if let Some(t) = &tcp {
        md.push_str(&tcp_bench::markdown(t));
    }
    let md_path = cli.out.join(format!("{name}.md"));
    std::fs::write(&md_path, &md)?;
    // One plot per load: `{name}.svg` for the first (unloaded), `{name}-{load}.svg` for the others.
    let mut plots = Vec::new();
    for (i, load) in loads.iter().enumerate() {
        let path = cli.out.join(if i == 0 { format!("{name}.svg") } else { format!("{name}-{}.svg", load.file_tag()) });
        if plot(&path, &latency, i, &load.to_string(), b) {
            plots.push((path, load.to_string()));
        }
    }
    let tcp_plot = tcp.as_ref().is_some_and(|t| tcp_bench::plot(&tcp_plot, t)).then_some(tcp_plot);
    println!("{md}");
    eprintln!("results: {} {}", json_path.display(), md_path.display());
    for (p, _) in &plots {
        eprintln!("plot: {}", p.display());
    }
    if let Some(p) = &tcp_plot {
        eprintln!("plot: {}", p.display());
    }
    if cli.update_readme {
        update_readme(&md, &plots, tcp_plot.as_deref())?;
    }
    Ok(())
}

/// Where an xsknet latency row's time went, from the server's `--stats-json`: the sampled
/// stage latencies, the poll histograms and what the scheduler did to the loop's thread.
struct Breakdown {
    /// p99 of rx ring to read, send to tx ring, tx ring to completion, µs.
    rx_to_read_p99: f64,
    send_to_tx_p99: f64,
    tx_to_completion_p99: f64,
    /// p99 of a busy poll, and p99 and max of the time between polls, µs.
    busy_poll_p99: f64,
    poll_gap_p99: f64,
    poll_gap_max: f64,
    /// Mean descriptors per rx batch.
    rx_batch_mean: f64,
    /// tx kicks per frame put on the tx ring.
    kicks_per_tx: f64,
    /// Milliseconds the loop's thread waited on a run queue, per second of run, and its
    /// preemptions.
    run_delay_ms_per_s: f64,
    nivcsw: u64,
}

impl Breakdown {
    /// From a latency point's JSON (`server` is the server's `--stats-json`); `None` for a
    /// kernel server.
    fn of(v: &Value) -> Option<Breakdown> {
        let s = v.get("server")?;
        let us = |x: &Value| x.as_f64().unwrap_or(f64::NAN) / 1000.0;
        let st = &s["stage_latency"];
        let p = &s["softirq"]["poll"];
        let secs = s["elapsed_s"].as_f64().unwrap_or(f64::NAN);
        let c = &s["counters"];
        Some(Breakdown {
            rx_to_read_p99: us(&st["rx_to_read"]["p99_ns"]),
            send_to_tx_p99: us(&st["send_to_tx"]["p99_ns"]),
            tx_to_completion_p99: us(&st["tx_to_completion"]["p99_ns"]),
            busy_poll_p99: us(&p["busy_poll"]["p99_ns"]),
            poll_gap_p99: us(&p["poll_gap"]["p99_ns"]),
            poll_gap_max: us(&p["poll_gap"]["max_ns"]),
            rx_batch_mean: p["rx_batch"]["mean"].as_f64().unwrap_or(f64::NAN),
            kicks_per_tx: c["XskTxKicks"].as_f64().unwrap_or(f64::NAN)
                / c["XskTxFrames"].as_f64().unwrap_or(f64::NAN).max(1.0),
            run_delay_ms_per_s: s["softirq"]["run_delay_ns"].as_f64().unwrap_or(f64::NAN) / 1e6 / secs,
            nivcsw: s["softirq"]["nivcsw"].as_u64().unwrap_or(0),
        })
    }

    /// One line for the progress output.
    fn line(&self) -> String {
        format!(
            "p99: rx->read {:.1} µs, send->tx {:.1}, tx->completion {:.1}, busy poll {:.1}, between polls {:.2} \
             (max {:.0}); rx batch {:.1}; kicks/frame {:.2}; descheduled {:.2} ms/s, {} preemptions",
            self.rx_to_read_p99,
            self.send_to_tx_p99,
            self.tx_to_completion_p99,
            self.busy_poll_p99,
            self.poll_gap_p99,
            self.poll_gap_max,
            self.rx_batch_mean,
            self.kicks_per_tx,
            self.run_delay_ms_per_s,
            self.nivcsw
        )
    }
}

/// A latency load: a share of the maximum in (0, 1], or a rate of at least 100 packets a second.
fn parse_load(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s}: not a number"))?;
    if (v > 0.0 && v <= 1.0) || (v >= 100.0 && v.fract() == 0.0) {
        Ok(v)
    } else {
        Err(format!("{s}: a load is a share of the maximum (0 < x ≤ 1, e.g. 0.25) or whole packets per second (≥ 100, e.g. 1000)"))
    }
}

/// One load of the latency section: a rate in packets per second, or a share of a maximum.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Load {
    /// Packets per second (`--loads 1000`).
    pps: Option<u64>,
    /// A share of the maximum, in (0, 1] (`--loads 0.5`).
    share: Option<f64>,
}

impl Load {
    /// The offered rate for a server whose maximum is `max` packets per second: the rate
    /// given, or the share of `max` (at least 2000 pps).
    fn rate(&self, max: f64) -> u64 {
        match (self.pps, self.share) {
            (Some(pps), _) => pps,
            (None, Some(f)) => ((max * f) as u64).max(2000),
            (None, None) => 2000,
        }
    }

    /// A name for the load's plot file: `1000pps`, `50pct`.
    fn file_tag(&self) -> String {
        match (self.pps, self.share) {
            (Some(pps), _) => format!("{pps}pps"),
            (None, Some(f)) => format!("{:.0}pct", f * 100.0),
            (None, None) => "load".into(),
        }
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pps, self.share) {
            (Some(pps), _) => write!(f, "{pps} pps"),
            (None, Some(s)) => write!(f, "{:.0} % of the maximum", s * 100.0),
            (None, None) => write!(f, "?"),
        }
    }
}

/// The latency section's loads, in the order given: a value above 1 is packets per second,
/// else a share of the maximum; `--quick` keeps the first two.
fn latency_loads(loads: &[f64], quick: bool) -> Vec<Load> {
    let mut out: Vec<Load> = loads
        .iter()
        .map(|&l| if l > 1.0 { Load { pps: Some(l as u64), share: None } } else { Load { pps: None, share: Some(l) } })
        .collect();
    if quick {
        out.truncate(2);
    }
    out
}

/// The xsknet echo server whose maximum a latency server's loads are shares of, so that
/// like is compared with like at the same offered rate: run to completion for itself and for
/// the kernel's busy-polling server, threaded for itself and for the kernel's blocking one.
fn paced_by(server: &str) -> &'static str {
    match server {
        "kernel-echo-blocking" | "xsknet-echo-threaded" => "xsknet-echo-threaded",
        _ => "xsknet-echo",
    }
}

fn markdown(
    results: &Value,
    throughput: &[Throughput],
    latency: &[LatencyPoint],
    flood: &[FloodRow],
    maxima: &BTreeMap<&'static str, f64>,
    searches: &BTreeMap<&'static str, PacedMax>,
) -> String {
    let s = &results["setup"];
    let runs = if throughput.is_empty() {
        String::new()
    } else {
        format!("{}-frame throughput runs ({} each: median rate, worst delivery), ", s["count"], s["runs"])
    };
    let mut md = format!(
        "Run {} on {}: Linux {}, {} cores ({}), {}, XDP {}, AF_XDP {}; generator {} on CPU {}, receiver on CPU {}; \
         {runs}{} s per latency point.\n\n",
        results["date"].as_str().unwrap_or(""),
        results["host"].as_str().unwrap_or(""),
        s["kernel"].as_str().unwrap_or(""),
        s["cores"],
        s["cpu"].as_str().unwrap_or(""),
        s["interface"].as_str().unwrap_or(""),
        s["xdp_mode"].as_str().unwrap_or(""),
        s["af_xdp"].as_str().unwrap_or(""),
        s["generator"].as_str().unwrap_or(""),
        GEN_CPU,
        RX_CPU,
        s["latency_secs"],
    );
    if !throughput.is_empty() {
        md.push_str(
            "| receiver (64-byte UDP) | rate one generator core reaches (median) | delivered (worst run) | where the worst run lost |\n|---|---:|---:|---|\n",
        );
    }
    for t in throughput {
        md.push_str(&format!(
            "| {} | {:.3} Mpps | {:.3} % | {} |\n",
            t.what,
            t.median.offered_pps / 1e6,
            t.worst_delivered * 100.0,
            t.worst_run().map(loss_where).unwrap_or_default()
        ));
    }
    md.push_str(&maxima_text(maxima, searches, latency));
    if !latency.is_empty() {
        md.push_str("\n| UDP echo server | offered | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs | lost |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    }
    for l in latency {
        let r = &l.result;
        let p = |k: &str| l.rtt(k).map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            l.server,
            l.load(),
            p("p50"),
            p("p90"),
            p("p99"),
            p("p99.9"),
            p("p99.99"),
            p("max"),
            r["echo"]["lost"]
        ));
    }
    md.push_str(&breakdown_table(latency));
    md.push_str(&goals(throughput, latency, flood));
    md
}

/// The paragraph saying what the latency loads are shares of: the maximum of each xsknet echo
/// server and how it was found (the search's trials), or that `--max-pps` gave it, each with
/// the servers of `latency` whose offered rates it set ([`paced_by`]).
fn maxima_text(
    maxima: &BTreeMap<&'static str, f64>,
    searches: &BTreeMap<&'static str, PacedMax>,
    latency: &[LatencyPoint],
) -> String {
    if maxima.is_empty() {
        return String::new();
    }
    let beside = |of: &str| {
        let mut paced: Vec<&str> = Vec::new();
        for s in latency.iter().map(|l| l.server.as_str()).filter(|s| paced_by(s) == of && *s != of) {
            if !paced.contains(&s) {
                paced.push(s);
            }
        }
        if paced.is_empty() {
            String::new()
        } else {
            format!(" (and {} beside it)", paced.join(", "))
        }
    };
    if searches.is_empty() {
        let parts: Vec<String> = maxima.iter().map(|(s, m)| format!("{s}{} {m:.0} pps", beside(s))).collect();
        return format!(
            "\nThe latency loads given as shares are of the maximum given with --max-pps: {}.\n",
            parts.join("; ")
        );
    }
    let plan = searches.values().next().map(|m| m.plan).unwrap_or(SearchPlan::new(false));
    let mut md = format!(
        "\nThe latency loads given as shares are of each xsknet echo server's maximum: the highest paced rate it \
         serves with at most {} % of the datagrams lost, searched just before (the echoes per second with the \
         generator at full rate for {} s as the upper bound, then a bisection over paced rates, {} s each, {} rates{}); \
         the kernel server compared with it gets the same offered rates.\n\n",
        LOSS_LIMIT * 100.0,
        plan.full_rate_secs,
        plan.trial_secs,
        plan.steps,
        if plan.retries > 0 { format!(", up to {} failed rates tried a second time", plan.retries) } else { String::new() }
    );
    for (s, m) in searches {
        md.push_str(&format!(
            "- {s}{}: **{} pps**{}; at full rate {:.0} pps; paced trials: {}.\n",
            beside(s),
            m.pps(),
            if m.lossless() { "" } else { " (no rate tried was served: the lowest tried)" },
            m.full_rate_pps,
            m.trials_text()
        ));
    }
    md
}

/// Where each xsknet row's time went ([`Breakdown`]), beside its round-trip p99.
fn breakdown_table(latency: &[LatencyPoint]) -> String {
    let rows: Vec<(&LatencyPoint, Breakdown)> =
        latency.iter().filter_map(|l| Breakdown::of(&l.result).map(|b| (l, b))).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\nWhere xsknet's time went (the server's own account, `--stats-json`): p99 of each sampled stage \
         (rx ring to read, send to tx ring, tx ring to completion; `docs/latency.md`), of a poll that found work \
         and of the time between two polls, the mean rx batch, tx kicks (`sendto`) per frame sent, and what the \
         scheduler did to the loop's thread (`run_delay` from schedstat, involuntary switches).\n\n\
         | server | offered | RTT p99 µs | rx→read | send→tx | tx→completion | busy poll | between polls (max) | rx batch | kicks/frame | descheduled ms/s | preemptions/s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (l, b) in rows {
        let secs = l.result["server"]["elapsed_s"].as_f64().unwrap_or(f64::NAN);
        md.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} ({:.0}) | {:.1} | {:.2} | {:.2} | {:.0} |\n",
            l.server,
            l.load(),
            l.rtt("p99").map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into()),
            b.rx_to_read_p99,
            b.send_to_tx_p99,
            b.tx_to_completion_p99,
            b.busy_poll_p99,
            b.poll_gap_p99,
            b.poll_gap_max,
            b.rx_batch_mean,
            b.kicks_per_tx,
            b.run_delay_ms_per_s,
            b.nivcsw as f64 / secs
        ));
    }
    md
}

/// Where each goal of the benchmark stands, from this run's numbers.
fn goals(throughput: &[Throughput], latency: &[LatencyPoint], flood: &[FloodRow]) -> String {
    let rate = |r: &str| throughput.iter().find(|t| t.receiver == r).map(|t| t.median.offered_pps);
    let mark = |ok: bool| if ok { "met" } else { "not met" };
    let mut out = String::from("\n| goal | this run | |\n|---|---|---|\n");
    if let Some(t) = throughput.iter().find(|t| t.receiver == "xsknet-sink") {
        let d = t.worst_delivered * 100.0;
        let lost = t.worst_run().map(loss_where).unwrap_or_default();
        out.push_str(&format!(
            "| xsknet sink delivers ≥ 99.99 % | {d:.3} % (worst run: {lost}) | {} |\n",
            mark(d >= 99.99)
        ));
    }
    // The loop that reads its packets is the like of a receiver: reading a frame moves its
    // cache line to the receiver's core, and the generator's next copy into that frame
    // takes it back (docs/benchmarks.md, "Throughput"). The one that reads nothing is beside it.
    if let (Some(x), Some(t)) = (rate("xsknet-sink"), rate("xsk-rxdrop-touch")) {
        let q = x / t;
        let untouched =
            rate("xsk-rxdrop").map(|a| format!("; {:.3} × the loop that reads nothing", x / a)).unwrap_or_default();
        out.push_str(&format!(
            "| xsknet sink ≥ 0.98 × bare AF_XDP (reading each packet's headers, as a receiver does) | {q:.3} ×{untouched} | {} |\n",
            mark(q >= 0.98)
        ));
    } else if let (Some(x), Some(a)) = (rate("xsknet-sink"), rate("xsk-rxdrop")) {
        let q = x / a;
        out.push_str(&format!("| xsknet sink ≥ 0.98 × bare AF_XDP | {q:.3} × | {} |\n", mark(q >= 0.98)));
    }
    if let (Some(x), Some(k)) = (rate("xsknet-sink"), rate("kernel-udp")) {
        let q = x / k;
        out.push_str(&format!("| xsknet sink ≥ 1.35 × kernel UDP socket | {q:.3} × | {} |\n", mark(q >= 1.35)));
    }
    // Like with like (issue 13): run to completion beside the kernel's busy-polling server,
    // threaded beside its blocking one. Up to 50 % of the maximum (and at an absolute rate
    // such as 1000 pps): p50 and p99 no higher, and for run to completion no loss; above,
    // no more loss than the kernel.
    for l in latency {
        let (kernel, label) = match l.server.as_str() {
            "xsknet-echo" => ("kernel-echo-busy", "run to completion"),
            "xsknet-echo-threaded" => ("kernel-echo-blocking", "threaded, one shared core"),
            _ => continue,
        };
        let Some(k) = latency.iter().find(|k| k.server == kernel && k.load_index == l.load_index) else { continue };
        let (Some(x50), Some(k50), Some(x99), Some(k99)) = (l.rtt("p50"), k.rtt("p50"), l.rtt("p99"), k.rtt("p99"))
        else {
            continue;
        };
        if l.share.is_none_or(|f| f <= 0.5) {
            let no_loss = l.server == "xsknet-echo";
            let ok = x50 <= k50 && x99 <= k99 && (!no_loss || l.lost() == 0);
            // Run to completion: the bare AF_XDP echo's p50 beside, the floor on this path. Its
            // tail is no floor: a loop with no pacing of its own, it varies from run to run
            // (docs/benchmarks.md, "Latency").
            let floor = latency
                .iter()
                .find(|b| no_loss && b.server == "xsk-echo" && b.load_index == l.load_index)
                .and_then(|b| Some(format!(" (bare AF_XDP echo's p50: {:.1})", b.rtt("p50")?)))
                .unwrap_or_default();
            out.push_str(&format!(
                "| {label}: p50 and p99 ≤ {kernel}'s{}, {} | p50 {x50:.1} vs {k50:.1} µs, p99 {x99:.1} vs {k99:.1} µs, lost {} vs {}{floor} | {} |\n",
                if no_loss { ", no loss" } else { "" },
                l.load(),
                l.lost(),
                k.lost(),
                mark(ok)
            ));
        } else if l.server == "xsknet-echo" {
            out.push_str(&format!(
                "| {label}: no more loss than {kernel}, {} | lost {} vs {} (p50 {x50:.1} vs {k50:.1} µs) | {} |\n",
                l.load(),
                l.lost(),
                k.lost(),
                mark(l.lost() <= k.lost())
            ));
        }
    }
    out.push_str(&flood_goals(flood));
    if out.lines().count() <= 3 {
        return String::new(); // no UDP row in this run (--tcp-only)
    }
    out
}

/// The flood goals (issue 12), judged on the guarded row: under the flood, the legitimate
/// round trip's p99 within 2 × its unloaded p99, at most 0.1 % of it lost, and xsknet's
/// softirq busy share under 20 %.
fn flood_goals(flood: &[FloodRow]) -> String {
    let mark = |ok: bool| if ok { "met" } else { "not met" };
    let Some(row) = flood.iter().find(|r| r.server == "xsknet-echo-guard") else {
        return String::new();
    };
    if let Some(why) = &row.skipped {
        return format!("| under a flood, with the guard: p99 ≤ 2 × unloaded, loss ≤ 0.1 %, softirq busy < 20 % | {why} | not measured |\n");
    }
    let (Some(idle), Some(hit)) =
        (row.phases.iter().find(|p| p.load == "unloaded"), row.phases.iter().find(|p| p.load == "flood"))
    else {
        return String::new();
    };
    let p99 = |p: &FloodPhase| p.client["rtt_us"]["p99"].as_f64();
    let loss = hit.client["loss"].as_f64().unwrap_or(1.0) * 100.0;
    let busy = hit.ours_busy_share.unwrap_or(1.0) * 100.0;
    let flood = hit.flood_pps.map(|r| format!("{:.3} Mpps", r / 1e6)).unwrap_or_else(|| "?".into());
    let mut out = match (p99(idle), p99(hit)) {
        (Some(a), Some(b)) => format!(
            "| under a flood ({flood}), with the guard: legitimate p99 ≤ 2 × unloaded | {b:.1} µs vs 2 × {a:.1} µs ({:.2} ×) | {} |\n",
            b / a,
            mark(b <= 2.0 * a)
        ),
        _ => format!("| under a flood ({flood}), with the guard: legitimate p99 ≤ 2 × unloaded | no echo came back | not met |\n"),
    };
    out.push_str(&format!(
        "| under a flood, with the guard: legitimate loss ≤ 0.1 % | {loss:.3} % | {} |\n",
        mark(loss <= 0.1)
    ));
    out.push_str(&format!(
        "| under a flood, with the guard: xsknet's softirq busy share < 20 % | {busy:.1} % (kernel si: {}) | {} |\n",
        si_text(&hit.si_share),
        mark(busy < 20.0)
    ));
    out
}

/// The kernel's `si` per CPU as "CPU 0 12 %, CPU 1 3 %".
fn si_text(si: &[f64]) -> String {
    si.iter().enumerate().map(|(i, s)| format!("CPU {i} {:.0} %", s * 100.0)).collect::<Vec<_>>().join(", ")
}

/// The `### Under a flood` table: per server, the unloaded row then the flooded one.
fn flood_table(flood: &[FloodRow], client: &str) -> String {
    if flood.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n### Under a flood\n\nA legitimate UDP ping-pong ({LEGIT_RATE}/s, {LEGIT_PAYLOAD}-byte payloads, udp-check on \
         {client}) alone, then beside the generator flooding the same port at its full rate on CPU \
         {GEN_CPU} from {FLOOD_NET}/{FLOOD_PREFIX}; the server on CPU {RX_CPU}. Lost: no byte-exact echo within \
         {LEGIT_TIMEOUT_MS} ms. Softirq: xsknet's loop busy share (SoftirqBusyNs / SoftirqTotalNs) and the kernel's \
         `si` per CPU from /proc/stat (on veth the XDP program and the receive softirq run on the sender's CPU). To \
         user space: xsknet's frames off the rx ring (XskRxFrames), the kernel's UdpInDatagrams, per second.\n\n\
         | server | load | flood offered | p50 µs | p99 µs | p99.9 µs | lost | xsknet softirq busy | si CPU 0 | si CPU 1 | to user space |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in flood {
        if let Some(why) = &row.skipped {
            out.push_str(&format!("| {} | – | {why} | | | | | | | | |\n", row.what));
            continue;
        }
        for ph in &row.phases {
            let c = &ph.client;
            let p = |k: &str| c["rtt_us"][k].as_f64().map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
            let si = |i: usize| ph.si_share.get(i).map(|s| format!("{:.1} %", s * 100.0)).unwrap_or_else(|| "–".into());
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.3} % | {} | {} | {} | {:.0}/s |\n",
                row.what,
                ph.load,
                ph.flood_offered(),
                p("p50"),
                p("p99"),
                p("p99.9"),
                ph.loss_pct(),
                ph.busy(),
                si(0),
                si(1),
                ph.to_user_space_per_s(),
            ));
        }
    }
    for row in flood {
        match row.guard.as_ref().map(|g| (g["args"].as_str().unwrap_or(""), g["rules"].as_str())) {
            Some((_, Some(rules))) => {
                out.push_str(&format!("\n{}: `--guard-rules` with\n\n```toml\n{}```\n", row.what, rules))
            }
            Some((args, None)) => out.push_str(&format!("\n{}: `{args}` (the default policy).\n", row.what)),
            None => {}
        }
    }
    out
}

/// What one run of `xsknet sink` cost its loop, from its `--stats-json`
/// (`softirq`): the CPU its frames took, and what observing took besides.
#[derive(Clone, Copy, Debug)]
struct LoopCost {
    /// Datagrams received.
    frames: u64,
    /// Time in polls that found work, ns.
    busy_ns: f64,
    /// Time the publications took on the loop's thread, ns.
    publish_ns: f64,
    /// CPU time of the process's other threads (control endpoint, metrics
    /// server and the connections they served), ns.
    other_threads_ns: f64,
    /// The loop thread's CPU time, ns (the run's length, as it busy-polls).
    loop_ns: f64,
}

impl LoopCost {
    /// The keys of the report's `softirq` object a run keeps (`detail.receiver.loop`).
    const KEYS: [&'static str; 8] = [
        "busy_ns",
        "total_ns",
        "rx_packets",
        "loop_cpu_ns",
        "other_threads_cpu_ns",
        "threads_cpu_ns",
        "publications",
        "publish_ns",
    ];

    fn of(run: &ThroughputRun) -> Option<LoopCost> {
        let l = &run.detail["receiver"]["loop"];
        let f = |k: &str| l[k].as_f64();
        Some(LoopCost {
            frames: run.received,
            busy_ns: f("busy_ns")?,
            publish_ns: f("publish_ns")?,
            other_threads_ns: f("other_threads_cpu_ns")?,
            loop_ns: f("loop_cpu_ns")?,
        })
        .filter(|c| c.frames > 0 && c.loop_ns > 0.0)
    }

    /// The loop's busy polls per frame, ns.
    fn busy_per_frame(&self) -> f64 {
        self.busy_ns / self.frames as f64
    }

    /// What observing took: the publications and the other threads, ns.
    fn observing_ns(&self) -> f64 {
        self.publish_ns + self.other_threads_ns
    }

    /// The share of a saturated loop's capacity that observing leaves it.
    /// Observing costs per second, not per frame (a publication every
    /// 100 ms, a scrape a second), and a saturated loop is busy all the time:
    /// it loses the CPU observing took over the run's length (the loop
    /// thread's CPU time, as it busy-polls), counting the other threads as
    /// if they ran on its core (the worst case).
    fn capacity_kept(&self) -> f64 {
        1.0 - self.observing_ns() / self.loop_ns
    }
}

/// The observability rows against their baseline (goal: ≤ 1 % less: the
/// capacity kept, and the worst run's delivered share against the
/// baseline's worst).
/// The generator, not the sink, limits the rate received on two cores (the
/// sink's loop is idle half the time), so the rate received shows that
/// nothing is lost at the offered rate, and the cost is measured as CPU:
/// what publishing and the observing threads took per second of the loop's
/// run, which a saturated loop would lose (the capacity it keeps, worst
/// run). The busy polls per frame against the
/// baseline's, round by round, show whether observing slowed the polls
/// themselves (within the machine's noise).
fn observability_table(observed: &[Throughput]) -> String {
    let Some(base) = observed.iter().find(|t| t.receiver == OBSERVED[0].0) else {
        return String::new();
    };
    let mut out = String::from(
        "\n| the cost of observing (xsknet sink, 64-byte UDP, interleaved runs) | rate received (median run) | delivered (worst run) | busy polls per frame (median; over --no-control, median of rounds) | observing: CPU per second (median) | capacity kept (worst run) | goal ≥ 0.99 × |\n|---|---:|---:|---:|---:|---:|---|\n",
    );
    for t in observed {
        let costs: Vec<LoopCost> = t.runs.iter().filter_map(LoopCost::of).collect();
        let busy = xsknet_bench::median(&costs.iter().map(LoopCost::busy_per_frame).collect::<Vec<_>>());
        let rounds: Vec<f64> = t
            .runs
            .iter()
            .zip(&base.runs)
            .filter_map(|(a, b)| Some(LoopCost::of(a)?.busy_per_frame() / LoopCost::of(b)?.busy_per_frame()))
            .collect();
        let per_s = xsknet_bench::median(&costs.iter().map(|c| c.observing_ns() / c.loop_ns * 1e3).collect::<Vec<_>>());
        let kept = costs.iter().map(LoopCost::capacity_kept).fold(f64::INFINITY, f64::min);
        let goal = if costs.len() < t.runs.len() || costs.is_empty() {
            "not measured"
        } else if t.receiver == OBSERVED[0].0 {
            "(baseline)"
        } else if kept >= 0.99 && t.worst_delivered >= 0.99 * base.worst_delivered {
            "met"
        } else {
            "not met"
        };
        out.push_str(&format!(
            "| {} | {:.3} Mpps | {:.3} % | {busy:.1} ns ({:.3} ×) | {per_s:.2} ms/s | {kept:.4} × | {goal} |\n",
            t.what,
            t.median.offered_pps * t.median.delivered / 1e6,
            t.worst_delivered * 100.0,
            xsknet_bench::median(&rounds),
        ));
    }
    out
}

/// The percentile plot of the unloaded round trips, one line per server.
fn plot(path: &Path, latency: &[LatencyPoint], load_index: usize, load: &str, b: &Bench) -> bool {
    let mut series = Vec::new();
    for l in latency.iter().filter(|l| l.load_index == load_index) {
        let hlog = b.dir.join(format!("lat-{}-{}.hlog", l.server, l.target_pps));
        match xsknet_bench::hist::read_hlog(&hlog) {
            Ok(h) => series.push((l.server.clone(), h)),
            Err(e) => eprintln!("side-by-side: {}: {e}", hlog.display()),
        }
    }
    if series.is_empty() {
        return false;
    }
    let refs: Vec<(String, &hdrhistogram::Histogram<u64>)> = series.iter().map(|(n, h)| (n.clone(), h)).collect();
    match xsknet_bench::hist::plot_percentiles(path, &format!("UDP echo round trip, {load}, 64-byte frames"), &refs) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("side-by-side: plot: {e}");
            false
        }
    }
}

fn update_readme(md: &str, plots: &[(PathBuf, String)], tcp_plot: Option<&Path>) -> Result<(), BoxError> {
    let readme = std::fs::read_to_string("README.md")?;
    let (Some(a), Some(z)) = (readme.find("<!-- bench:start -->"), readme.find("<!-- bench:end -->")) else {
        return Err("README.md has no <!-- bench:start --> / <!-- bench:end --> block".into());
    };
    let mut block = String::from("<!-- bench:start -->\n");
    block.push_str(md);
    if let Some((first, rate)) = plots.first() {
        block.push_str(&format!("\n![UDP echo round trip by percentile, {rate}]({})\n", first.display()));
    }
    if plots.len() > 1 {
        let links: Vec<String> = plots[1..].iter().map(|(p, rate)| format!("[{rate}]({})", p.display())).collect();
        block.push_str(&format!("\nThe same under load: {}.\n", links.join(", ")));
    }
    if let Some(p) = tcp_plot {
        block.push_str(&format!("\n![TCP request/response round trip by percentile]({})\n", p.display()));
    }
    let new = format!("{}{}\n{}", &readme[..a], block, &readme[z..]);
    std::fs::write("README.md", new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_is_this_binary_s_own_unless_given() {
        // Whatever the working directory and CARGO_TARGET_DIR: where this binary is.
        let here = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
        assert_eq!(bin_dir(&Cli::parse_from(["side-by-side"])).unwrap(), here);
        let given = Cli::parse_from(["side-by-side", "--bin-dir", "/opt/xsknet/bin"]);
        assert_eq!(bin_dir(&given).unwrap(), PathBuf::from("/opt/xsknet/bin"));
    }

    #[test]
    fn proc_stat_cpu_lines() {
        // fs/proc/stat.c: user nice system idle iowait irq softirq steal guest guest_nice.
        let text = "cpu  10 0 20 300 0 0 70 0 0 0\n\
                    cpu0 5 0 10 100 0 0 60 0 0 0\n\
                    cpu1 5 0 10 200 0 0 10 0 0 0\n\
                    intr 12345\nsoftirq 99 1 2 3\n";
        let cpus = parse_proc_stat(text);
        assert_eq!(cpus.len(), 2, "the aggregate line and the others are left out");
        assert_eq!((cpus[0].softirq, cpus[0].total), (60, 175));
        assert_eq!((cpus[1].softirq, cpus[1].total), (10, 225));
        assert!(parse_proc_stat("cpu0 1 2 3\n").is_empty(), "a short line is not a CPU");
    }

    fn phase(load: &str, p99: f64, loss: f64, busy: f64) -> FloodPhase {
        FloodPhase {
            load: load.into(),
            client: serde_json::json!({ "rtt_us": { "p99": p99 }, "loss": loss }),
            flood_pps: (load == "flood").then_some(800_000.0),
            flood: None,
            si_share: vec![0.3, 0.05],
            ours_busy_share: Some(busy),
            user_space_frames: 0,
            seconds: 1.0,
            counter_seconds: 1.0,
            counters: Default::default(),
        }
    }

    fn guard_row(phases: Vec<FloodPhase>) -> Vec<FloodRow> {
        vec![FloodRow {
            server: "xsknet-echo-guard".into(),
            what: "xsknet echo --guard".into(),
            skipped: None,
            guard: None,
            phases,
        }]
    }

    #[test]
    fn latency_loads_are_rates_or_shares_of_the_maximum() {
        let loads = latency_loads(&[1000.0, 0.1, 0.5], false);
        let r: Vec<u64> = loads.iter().map(|l| l.rate(700_000.0)).collect();
        assert_eq!(r, [1000, 70_000, 350_000]);
        assert_eq!(loads[1].share, Some(0.1));
        assert_eq!(loads[0].to_string(), "1000 pps");
        assert_eq!(loads[2].to_string(), "50 % of the maximum");
        assert_eq!(loads[2].file_tag(), "50pct");
        assert_eq!(latency_loads(&[1000.0, 0.1, 0.5], true).len(), 2);
        assert_eq!(latency_loads(&[0.001], false)[0].rate(0.0), 2000, "at least 2000 pps");
    }

    /// Each kernel server is loaded at the rate of the xsknet server it is compared with.
    #[test]
    fn shares_are_of_the_like_xsknet_servers_maximum() {
        assert_eq!(paced_by("kernel-echo-busy"), "xsknet-echo");
        assert_eq!(paced_by("xsknet-echo"), "xsknet-echo");
        assert_eq!(paced_by("kernel-echo-blocking"), "xsknet-echo-threaded");
        assert_eq!(paced_by("xsknet-echo-threaded"), "xsknet-echo-threaded");
    }

    fn point(server: &str, rate: u64, share: Option<f64>, p50: f64, p99: f64, lost: u64) -> LatencyPoint {
        LatencyPoint {
            server: server.into(),
            load_index: match share {
                None => 0,
                Some(f) => (f * 100.0) as usize,
            },
            target_pps: rate,
            share,
            result: serde_json::json!({ "echo": { "rtt_us": { "p50": p50, "p99": p99 }, "lost": lost } }),
        }
    }

    /// Like with like: run to completion against the busy-polling kernel (and no loss up to
    /// 50 %), threaded against the blocking kernel; above 50 %, only the loss is judged.
    #[test]
    fn latency_goals_compare_like_with_like() {
        let latency = [
            point("kernel-echo-busy", 1000, None, 9.0, 20.0, 0),
            point("xsknet-echo", 1000, None, 8.0, 18.0, 0),
            point("kernel-echo-blocking", 1000, None, 40.0, 100.0, 0),
            point("xsknet-echo-threaded", 1000, None, 20.0, 120.0, 0),
            point("kernel-echo-busy", 350_000, Some(0.5), 900.0, 1200.0, 400_000),
            point("xsknet-echo", 350_000, Some(0.5), 12.0, 300.0, 3),
            point("kernel-echo-busy", 630_000, Some(0.9), 900.0, 1200.0, 800_000),
            point("xsknet-echo", 630_000, Some(0.9), 5000.0, 9000.0, 50_000),
        ];
        let g = goals(&[], &latency, &[]);
        let lines: Vec<&str> = g.lines().filter(|l| l.contains("kernel-echo")).collect();
        assert_eq!(lines.len(), 4, "{g}");
        assert!(lines[0].starts_with("| run to completion: p50 and p99 ≤ kernel-echo-busy's, no loss, 1000 pps"));
        assert!(lines[0].ends_with("| met |"), "{g}");
        assert!(lines[1].starts_with("| threaded, one shared core: p50 and p99 ≤ kernel-echo-blocking's, 1000 pps"));
        assert!(lines[1].ends_with("| not met |"), "p99 120 > 100: {g}");
        assert!(lines[2].contains("350000 pps (50 %)") && lines[2].ends_with("| not met |"), "3 lost: {g}");
        assert!(lines[3].contains("no more loss than kernel-echo-busy, 630000 pps (90 %)"));
        assert!(lines[3].ends_with("| met |"), "{g}");
    }

    fn run(sent: u64, received: u64, receiver: Value) -> ThroughputRun {
        ThroughputRun {
            sent,
            generator_secs: 1.0,
            offered_pps: sent as f64,
            received,
            delivered: received as f64 / sent as f64,
            detail: serde_json::json!({ "receiver": receiver }),
        }
    }

    /// Every lost frame is put where the receiver counted it, and what no counter holds is
    /// said; xsknet's rows add the loop's longest stall.
    #[test]
    fn a_run_s_loss_is_put_where_it_was_counted() {
        assert_eq!(loss_where(&run(1000, 1000, Value::Null)), "nothing lost");
        let sink = serde_json::json!({
            "xdp_prog": { "rx": 990 },
            "xdp_statistics": { "rx_fill_ring_empty_descs": 6, "rx_ring_full": 1 },
            "UdpRcvbufErrors": 0,
            "stall": { "poll_gap_max_ns": 12_300_000, "run_delay_ns": 58_000_000 },
        });
        assert_eq!(
            loss_where(&run(1000, 982, sink)),
            "18: 10 before the XDP program, 6 fill ring empty, 1 rx ring full, 1 not counted; \
             loop's longest gap between polls 12.3 ms, 58.0 ms runnable but not running"
        );
        let kernel = serde_json::json!({ "UdpRcvbufErrors": 40 });
        assert_eq!(loss_where(&run(1000, 960, kernel)), "40: 40 UdpRcvbufErrors");
        let t = summarize("r", "r", vec![run(10, 10, Value::Null), run(10, 7, Value::Null), run(10, 9, Value::Null)])
            .unwrap();
        assert_eq!(t.worst_run().map(|r| r.received), Some(7));
    }

    #[test]
    fn flood_goals_judge_the_guarded_row() {
        let met = flood_goals(&guard_row(vec![phase("unloaded", 20.0, 0.0, 0.01), phase("flood", 39.0, 0.001, 0.19)]));
        assert_eq!(met.matches("| met |").count(), 3, "{met}");
        assert!(met.contains("0.800 Mpps") && met.contains("1.95 ×"), "{met}");
        let missed =
            flood_goals(&guard_row(vec![phase("unloaded", 20.0, 0.0, 0.01), phase("flood", 41.0, 0.0011, 0.2)]));
        assert_eq!(missed.matches("| not met |").count(), 3, "{missed}");
        let skipped = flood_goals(&[FloodRow {
            server: "xsknet-echo-guard".into(),
            what: "xsknet echo --guard".into(),
            skipped: Some("skipped: no --guard".into()),
            guard: None,
            phases: Vec::new(),
        }]);
        assert!(skipped.contains("skipped: no --guard") && skipped.contains("not measured"), "{skipped}");
        assert_eq!(flood_goals(&[]), "");
    }
}
