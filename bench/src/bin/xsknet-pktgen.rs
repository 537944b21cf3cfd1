//! `xsknet-pktgen` (run as `xsknet pktgen`): the packet generator. UDP over IPv4
//! from an interface's own AF_XDP socket, paced or as fast as one core goes,
//! with echo round trips timed into an HdrHistogram. See `xsknet_bench::pktgen`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use xsknet::cli::{parse_cidr, AttachArgs, BindModeArg, XdpModeArg};

use xsknet::wire::EthernetAddress;
use xsknet::xdp::AttachMode;
use xsknet::xsk::BindMode;
use xsknet_bench::hist::plot_percentiles;
use xsknet_bench::pktgen::flood::{self, FloodMode, Prefix};
use xsknet_bench::pktgen::{self, Config, Outcome, Report};
use xsknet_bench::progress::ProgressMode;

#[derive(Parser)]
#[command(
    name = "xsknet pktgen",
    bin_name = "xsknet pktgen",
    version,
    about = "Packet generator: UDP over IPv4 from an interface's own AF_XDP socket, with echo round-trip histograms.",
    long_about = "Packet generator: UDP over IPv4 from an interface's own AF_XDP socket, with echo round-trip \
        histograms.\n\n\
        Attaches xsknet's XDP program to IFACE for the --src address (so echo replies and ARP for it reach \
        the generator's socket while it runs; everything else still goes to the kernel), pre-builds one frame per UMEM \
        frame, and per packet patches only the sequence number, send timestamp, source port and checksums. \
        Every run is bounded: --count and/or --duration.\n\n\
        --flood MODE sends attack traffic instead (UDP to open or closed ports, malformed IPv4, ARP, ICMP echo, \
        TCP SYN/ACK/RST), from --src or random sources of --spoof PREFIX; see docs/benchmarks.md, \"Floods\".\n\n\
        Sizes are Ethernet frames without the 4-byte FCS: the usual \"64-byte\" benchmark frame is --size 60.\n\n\
        Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW). Never point it at the interface that carries \
        this machine's own traffic.",
    after_help = "Examples:\n  \
        xsknet pktgen --iface veth-gen --src 10.77.0.1/24 --dst 10.77.0.2 --dst-port 9 --size 60 --count 10000000\n  \
        xsknet pktgen --iface veth-gen --src 10.77.0.1/24 --dst 10.77.0.2 --dst-port 7 --echo --rate 100000 \
        --duration 10 --json out.json --hlog out.hlog --plot out.svg\n  \
        xsknet pktgen --iface veth-gen --src 10.77.0.1/24 --dst 10.77.0.2 --dst-port 80 --flood syn \
        --spoof 10.66.0.0/16 --seed 7 --duration 10"
)]
struct Cli {
    /// Interface to send from (a veth end or a NIC; never the one with the default route unless --force).
    #[arg(long, value_name = "IFACE")]
    iface: String,
    /// Our IPv4 source address and prefix, e.g. 10.77.0.1/24. Echo replies come back to it.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    src: (Ipv4Addr, u8),
    /// Destination IPv4 address.
    #[arg(long, value_name = "ADDR")]
    dst: Ipv4Addr,
    /// Destination UDP port (TCP for --flood syn/ack/rst; the one port --flood udp-closed avoids; not used by
    /// --flood arp and icmp).
    #[arg(long, value_name = "PORT")]
    dst_port: u16,
    /// First source UDP port (flows count up from it).
    #[arg(long, value_name = "PORT", default_value_t = 9000)]
    src_port: u16,
    /// Destination MAC address (aa:bb:cc:dd:ee:ff). Without it, the destination is resolved by ARP
    /// through the generator's own socket.
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    dst_mac: Option<EthernetAddress>,
    /// Ethernet frame size in bytes WITHOUT the 4-byte FCS, 60 to 1514. A "64-byte frame" (the
    /// minimum on the wire) is --size 60.
    #[arg(long, value_name = "BYTES", default_value_t = 60)]
    size: usize,
    /// Number of flows: consecutive source ports from --src-port.
    #[arg(long, value_name = "N", default_value_t = 1)]
    flows: u32,
    /// Vary the source address too (consecutive addresses in --src's prefix); not with --echo.
    #[arg(long)]
    flows_src_ips: bool,
    /// Datagrams to send. At least one of --count and --duration is required.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Seconds to send for. At least one of --count and --duration is required.
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,
    /// Target rate in packets per second (token bucket on the monotonic clock); 0 = as fast as possible.
    #[arg(long, value_name = "PPS", default_value_t = 0)]
    rate: u64,
    /// Receive the replies of an echo server, match them by sequence number and record round-trip times.
    #[arg(long)]
    echo: bool,
    /// In echo mode, how long to wait for the last replies after the last send.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    wait_ms: u64,
    /// Write the result object (counters, rate, setup, RTT percentiles) to PATH as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the RTT histogram as an HdrHistogram interval log (1-second intervals, ns). Needs --echo.
    #[arg(long, value_name = "PATH")]
    hlog: Option<PathBuf>,
    /// Draw the RTT "latency by percentile" plot as SVG. Needs --echo.
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,
    /// Interface queue to bind (a veth has only queue 0 unless created with more).
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// XDP attach mode: driver (native) with fallback to generic, or one of them.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    xdp_mode: XdpModeArg,
    /// AF_XDP bind mode: zero-copy where the driver supports it, else copy (veth: copy).
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    bind_mode: BindModeArg,
    /// UMEM frames (2048 bytes each): up to --ring-size for sending, the rest (half in echo mode) for receiving.
    #[arg(long, default_value_t = 4096)]
    frames: u32,
    /// Size of each of the four rings (a power of two).
    #[arg(long, default_value_t = 2048)]
    ring_size: u32,
    /// Most packets sent per loop iteration (copy mode hands them to the kernel 32 at a time).
    #[arg(long, default_value_t = 64)]
    batch: u32,
    /// Send a flood instead of numbered datagrams: udp (to --dst-port, random payloads), udp-closed (to random
    /// ports of --dst-ports), bad-csum (IPv4 with a wrong header checksum), bad-len (IPv4 total length past the
    /// frame), arp (requests for --dst), icmp (echo requests), syn, ack, rst (TCP to --dst-port), mix (good and
    /// malformed frames interleaved, the soak's traffic: docs/soak.md). Random source ports (and TCP sequence
    /// numbers) from --seed. Not with --echo.
    #[arg(long, value_enum, value_name = "MODE")]
    flood: Option<FloodMode>,
    /// With --flood: each frame's source address random in PREFIX (e.g. 10.66.0.0/16); for arp the sender
    /// address, with a random sender MAC. Without it the flood comes from --src alone. Not with --echo.
    #[arg(long, value_name = "PREFIX", value_parser = Prefix::parse)]
    spoof: Option<Prefix>,
    /// With --flood udp-closed: destination ports, LO-HI (never --dst-port). Default 1024-65535. With --flood mix:
    /// the ports the soak's server opens and closes (default 20000-20063).
    #[arg(long, value_name = "LO-HI", value_parser = flood::parse_port_range)]
    dst_ports: Option<(u16, u16)>,
    /// Seed of the flood's random numbers (wyrand): the same seed sends the same frames.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Attach no XDP program: the socket only sends, and every frame that arrives stays the kernel's (without
    /// it, frames to --src are the generator's while it runs: a kernel socket on that address gets no
    /// replies). Needs --dst-mac (no ARP through the socket); not with --echo.
    #[arg(long)]
    no_xdp: bool,
    /// One-line progress display on stderr (rate, sent, received, elapsed); auto = when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    progress: ProgressMode,
    #[command(flatten)]
    attach: AttachArgs,
}

fn parse_mac(s: &str) -> Result<EthernetAddress, String> {
    s.parse().map_err(|_| format!("{s}: expected a MAC address like 02:00:00:00:00:01"))
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s}: expected seconds, e.g. 10 or 0.5"))?;
    if !(v > 0.0 && v.is_finite() && v < 1e9) {
        return Err(format!("{s}: must be more than 0 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Cli {
    fn config(&self) -> Config {
        let mut c = Config::new(&self.iface, self.src.0, self.src.1, self.dst, self.dst_port);
        c.queue = self.queue;
        c.src_port = self.src_port;
        c.dst_mac = self.dst_mac;
        c.size = self.size;
        c.flows = self.flows;
        c.flows_src_ips = self.flows_src_ips;
        c.count = self.count;
        c.duration = self.duration;
        c.rate = self.rate;
        c.echo = self.echo;
        c.wait = Duration::from_millis(self.wait_ms);
        c.xdp_mode = AttachMode::from(self.xdp_mode);
        c.bind_mode = BindMode::from(self.bind_mode);
        c.frames = self.frames;
        c.ring_size = self.ring_size;
        c.batch = self.batch;
        c.progress = self.progress;
        c.replace = self.attach.replace;
        c.force = self.attach.force;
        c.flood = self.flood;
        c.spoof = self.spoof;
        c.dst_ports = self.dst_ports;
        c.seed = self.seed;
        c.no_xdp = self.no_xdp;
        c
    }
}

fn main() -> ExitCode {
    // A closed pipe (`xsknet pktgen … | head -3`) ends it quietly, as it ends
    // any command-line tool, instead of a panic in println!.
    sigpipe::reset();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap's message without its usage block: the first line, and the
            // arguments it lists under it (those missing) on the same line.
            let text = e.render().to_string();
            let mut lines = text.lines().take_while(|l| !l.starts_with("Usage:"));
            let first = lines.next().unwrap_or("invalid arguments").trim_start_matches("error: ");
            let listed: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
            let sep = if listed.is_empty() { "" } else { " " };
            eprintln!("xsknet-pktgen: {first}{sep}{} (see --help)", listed.join(", "));
            return ExitCode::from(2);
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xsknet-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), pktgen::BoxError> {
    if !cli.echo && (cli.hlog.is_some() || cli.plot.is_some()) {
        return Err("--hlog and --plot record round-trip times: they need --echo".into());
    }
    let cfg = cli.config();
    cfg.validate()?;
    // Output files are opened before the run: a bad path is said at once, not
    // after a flood of --duration seconds was sent for nothing.
    let outputs = [&cli.json, &cli.hlog, &cli.plot];
    for path in outputs.into_iter().flatten() {
        std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(|e| {
            format!("{}: {e} (give a path in a directory that exists and can be written)", path.display())
        })?;
    }
    xsknet::signal::install()?;
    let Outcome { report, rtt } = pktgen::run(&cfg)?;
    print_summary(&report);
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(log) = &rtt {
        let s = &report.setup;
        let title = format!(
            "{} → {}:{}, {} B, {}",
            s.src,
            s.dst,
            s.dst_port,
            s.size,
            if s.rate_pps == 0 { "max rate".to_string() } else { format!("{} pps", s.rate_pps) }
        );
        if let Some(path) = &cli.hlog {
            let comments = vec![
                "xsknet-pktgen echo round-trip times (ns)".to_string(),
                format!("{title}; {} on {}, {} mode, kernel {}", s.iface, s.xdp_mode, s.bind_mode, s.kernel),
            ];
            log.write_hlog(path, Some("rtt"), &comments)?;
        }
        if let Some(path) = &cli.plot {
            plot_percentiles(path, &format!("UDP echo round trip, {title}"), &[("RTT".to_string(), &log.total)])?;
        }
    }
    Ok(())
}

fn print_summary(r: &Report) {
    let s = &r.setup;
    let rate = if r.rate_pps >= 1e6 {
        format!("{:.3} Mpps", r.rate_pps / 1e6)
    } else {
        format!("{:.1} kpps", r.rate_pps / 1e3)
    };
    println!(
        "xsknet-pktgen: sent {} frames of {} bytes ({} on the wire with FCS) in {:.3} s: {rate}{}",
        r.sent,
        s.size,
        s.size + 4,
        r.elapsed_s,
        if r.interrupted { " (interrupted)" } else { "" }
    );
    println!(
        "  setup: {} queue {}, XDP {} mode, {} mode, {} flow(s), batch {}, kernel {}, cpus {}",
        s.iface, s.queue, s.xdp_mode, s.bind_mode, s.flows, s.batch, s.kernel, s.cpus_allowed
    );
    let t = &r.tx;
    let x = &r.xdp_statistics;
    println!(
        "  tx: {} submissions ({:.1} frames each), {} stall kicks, ring full {}, short reservations {}, completed {}, \
         in flight at end {}; tx_invalid_descs {}, tx_ring_empty_descs {}",
        t.submits,
        t.frames_per_submit,
        t.stall_kicks,
        t.ring_full,
        t.short_reservations,
        t.completed,
        t.in_flight_at_end,
        x.tx_invalid_descs,
        x.tx_ring_empty_descs
    );
    if let Some(f) = &s.flood {
        println!("  flood {}: {} (seed {})", f.mode.name(), f.sends, f.seed);
    }
    if let Some(m) = &r.mix_sent {
        let parts: Vec<String> = m.iter().map(|c| format!("{} {}", c.kind.name(), c.sent)).collect();
        println!("  mix sent: {}", parts.join(", "));
    }
    if let Some(i) = &r.iface {
        println!(
            "  {}: tx_packets {}, tx_dropped {} (frames the peer could not take), rx_packets {}, rx_dropped {}",
            s.iface, i.tx_packets, i.tx_dropped, i.rx_packets, i.rx_dropped
        );
    }
    if let Some(e) = &r.echo {
        let c = &e.counts;
        println!(
            "  echo: received {} of {}, lost {}, duplicates {}, reordered {}, late {}, unknown {}; rx bad {}, bad checksum {}, \
             other {}, rx_dropped {}, rx_ring_full {}, rx_fill_ring_empty_descs {}",
            c.received,
            r.sent,
            c.lost,
            c.duplicates,
            c.reordered,
            c.late,
            c.unknown,
            r.rx.bad,
            r.rx.bad_checksum,
            r.rx.other,
            x.rx_dropped,
            x.rx_ring_full,
            x.rx_fill_ring_empty_descs
        );
        println!("  rtt: {}", e.rtt_us);
    }
    if r.rx.bad_checksum > 0 {
        println!(
            "  {} replies had a wrong UDP checksum and were not counted. A kernel peer on veth sends partial \
             checksums: run `ethtool -K <its interface> tx off` on the peer.",
            r.rx.bad_checksum
        );
    }
}
