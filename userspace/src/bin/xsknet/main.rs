//! The `xsknet` command: echo and sink servers (UDP and TCP) and a static-file
//! HTTP server on the user-space stack.

mod churn;
mod guard;
mod http;
mod inspect;
mod tcp_serve;
mod top;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use xsknet::cli::{parse_cidr, AttachArgs, BindModeArg, GuardArgs, MultiBufferArg, PcapArgs, XdpModeArg};
use xsknet::control::{ControlSocket, InstanceInfo, Netns, SnapshotSource};
use xsknet::metrics::MetricsServer;
use xsknet::publish::Publisher;

use xsknet::device::{self, DeviceOptions};
use xsknet::netdevice::NetDevice;
use xsknet::report::{AppStats, Report};
use xsknet::softirq::LoopStats;
use xsknet::xdp::{AttachMode, GuardUpdate, XdpProgram};
use xsknet::xsk::BindMode;
use xsknet::{signal, Errno, SockType, Stack, StackConfig, ThreadedStack};

#[derive(Parser)]
#[command(
    name = "xsknet",
    version,
    about = "A kernel-bypass TCP/UDP/IP stack on AF_XDP: the Linux receive and send path, in user space.",
    long_about = "A kernel-bypass TCP/UDP/IP stack on AF_XDP: the Linux receive and send path, in user space.\n\n\
        An XDP program on IFACE redirects every IPv4 and ARP frame to the interface's MAC (and \
        broadcast and multicast ones) into an AF_XDP socket; xsknet's busy-poll loop validates them \
        as Linux's ip_rcv does (one for another address is counted, IpInAddrErrors), answers ARP and \
        ping, and serves UDP and TCP for ADDR. Other EtherTypes still go to the kernel, and \
        --pass-kernel-addrs leaves it the frames to its own addresses on IFACE (docs/ingress.md). \
        IFACE needs no kernel address.\n\n\
        Needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW). On veth, run `ethtool -K <peer> tx off` \
        on the peer: veth otherwise sends partial checksums that fail validation."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve echo on PORT, UDP and TCP (RFC 862): every datagram goes back to its sender,
    /// every byte of a TCP connection back down it.
    Echo(ServeArgs),
    /// Receive and discard on PORT, UDP and TCP (RFC 863): a load-test target.
    Sink(ServeArgs),
    /// Serve the files under DIR over HTTP/1.1 on TCP PORT (default 80): GET and HEAD,
    /// keep-alive and pipelining, nothing outside DIR.
    Http(http::HttpArgs),
    /// The packet generator (AF_XDP transmit, paced, with echo round-trip histograms):
    /// runs `xsknet-pktgen` from beside this binary; `xsknet pktgen --help` for its options.
    #[command(disable_help_flag = true)]
    Pktgen {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// List the running instances (their control sockets in /run/xsknet).
    List,
    /// Counters of a running instance, as `nstat` prints the kernel's: the change since
    /// the last call (-a: absolute) with its rate per second.
    Stat(inspect::StatArgs),
    /// Sockets of a running instance, as `ss` shows the kernel's (default: connected;
    /// -l listening, -a all; -t TCP, -u UDP; -i TCP internals, -m memory).
    Ss(inspect::SsArgs),
    /// A live view of a running instance, refreshed every second: the loop's busy share,
    /// packets and bytes per second per stage, drops by reason, frames, latency, TCP states
    /// (plain lines, as vmstat, when stdout is not a terminal or with --plain).
    Top(top::TopArgs),
    /// The XDP guard of a running instance (started with --guard): its rules, drops by
    /// reason and by rule, top talkers; and changes at run time (block, allow, limit, load, ...).
    Guard(guard::GuardArgs),
}

#[derive(Parser, Clone)]
struct ServeArgs {
    /// Interface to serve on (a veth or a NIC; never the one with the default route unless --force).
    #[arg(long, value_name = "IFACE")]
    iface: String,
    /// Our IPv4 address and prefix on IFACE, e.g. 10.77.0.2/24.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    ip: (Ipv4Addr, u8),
    /// Port to serve, UDP and TCP (http: TCP only) [default: 7; http: 80].
    #[arg(long)]
    port: Option<u16>,
    /// TCP listen backlog (capped at 4096, as net.core.somaxconn caps it).
    #[arg(long, default_value_t = 511)]
    backlog: i32,
    /// Keepalive on accepted TCP connections (SO_KEEPALIVE on the listener, which they
    /// inherit), as nginx's `so_keepalive`: `on` (Linux's defaults: probes after 7200 s idle,
    /// 75 s apart, 9 of them), or IDLE:INTVL:CNT with any part empty for its default, e.g.
    /// `30m:10:5` or `600::` (docs/tcp.md).
    #[arg(long, value_name = "on|IDLE:INTVL:CNT", value_parser = tcp_serve::parse_keepalive)]
    so_keepalive: Option<tcp_serve::Keepalive>,
    /// TCP_QUICKACK on the listener after listen(), which its connections inherit: 0 starts
    /// them in interactive mode, where the ACK of a request waits (up to 40 ms at first) for the
    /// reply to carry it, a frame fewer per request, as HAProxy's tcp-smart-accept; a client
    /// that writes one request in two pieces with Nagle on then waits those 40 ms for the
    /// second. 1 keeps Linux's quick ACKs of a new connection's first data [default: http 0,
    /// echo and sink 1] (docs/tcp.md).
    #[arg(long, value_name = "0|1", allow_negative_numbers = true,
          value_parser = clap::value_parser!(u8).range(0..=1))]
    tcp_quickack: Option<u8>,
    /// Next hop for destinations outside the prefix.
    #[arg(long, value_name = "ADDR")]
    gateway: Option<Ipv4Addr>,
    /// Interface rx queue to bind (a veth has only queue 0 unless created with more).
    #[arg(long, default_value_t = 0)]
    queue: u32,
    /// XDP attach mode: driver (native) with fallback to generic, or one of them.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    xdp_mode: XdpModeArg,
    /// On a NIC shared with the host: leave to the kernel the frames to its own IPv4
    /// addresses on IFACE (read at start) and their broadcast addresses, the limited
    /// broadcast, multicast groups, and ARP for its addresses. Without it xsknet takes
    /// every IPv4 and ARP frame to the NIC's MAC, broadcast or multicast (docs/ingress.md).
    #[arg(long)]
    pass_kernel_addrs: bool,
    /// AF_XDP bind mode: zero-copy where the driver supports it, else copy (veth: copy).
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    bind_mode: BindModeArg,
    /// AF_XDP multi-buffer (XDP_USE_SG; the XDP program frags-aware): a frame larger than a
    /// UMEM frame arrives in several. auto: when the interface's MTU needs it (MTU + 14 >
    /// frame size - 256); off refuses such an MTU (docs/jumbo.md).
    #[arg(long, value_enum, default_value_t = MultiBufferArg::Auto)]
    multi_buffer: MultiBufferArg,
    /// Run the softirq loop on its own thread and the application blocking on another
    /// (default: run to completion on one thread).
    #[arg(long)]
    threaded: bool,
    /// With --threaded: microseconds a reader blocked in recvfrom (or accept, send, poll)
    /// spins before it sleeps (`net.core.busy_read`, each socket's `SO_BUSY_POLL`). A reader
    /// that spins takes data without a futex round trip; 0 sleeps at once, as Linux's default.
    #[arg(long, value_name = "US", requires = "threaded",
          default_value_t = xsknet::stack::DEFAULT_BUSY_READ.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    busy_read: u64,
    /// TCP congestion control (`net.ipv4.tcp_congestion_control`): cubic, Linux's default
    /// (RFC 9438, with HyStart), or reno.
    #[arg(long, value_name = "ALGO", default_value = "cubic", value_parser = parse_congestion)]
    congestion: xsknet::CongAlgo,
    /// Every TCP socket's `SO_MAX_PACING_RATE`, bytes per second: connections then pace
    /// themselves at min(this, sk_pacing_rate) as Linux's internal pacing does. Unset (the
    /// default), nothing paces, as Linux with CUBIC and no fq qdisc.
    #[arg(long, value_name = "BYTES_PER_SEC")]
    tcp_max_pacing_rate: Option<u64>,
    /// Busy-poll the queue's NAPI from the loop (`SO_PREFER_BUSY_POLL`; one non-blocking
    /// `recvfrom()` per poll): the driver's receive work runs on the loop's core.
    #[arg(long)]
    prefer_busy_poll: bool,
    /// CPU for the softirq loop: the whole process when it runs to completion, the loop's
    /// thread with --threaded (default: --app-cpu's when given, else wherever the scheduler
    /// puts it, e.g. `taskset`'s).
    #[arg(long, value_name = "N")]
    cpu: Option<usize>,
    /// With --threaded: CPU for the application's threads (default: --cpu's, so that the
    /// loop and the application share one core).
    #[arg(long, value_name = "N", requires = "threaded")]
    app_cpu: Option<usize>,
    /// UMEM frames (2 KiB each by default: 8192 is 16 MiB; at most 1048576).
    #[arg(long, default_value_t = 8192, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    frames: u32,
    /// UMEM frame size: 2048 or 4096.
    #[arg(long, default_value_t = 2048)]
    frame_size: u32,
    /// Size of each of the four rings (a power of two). The fill ring is the buffer that
    /// absorbs the loop being descheduled: 4096 frames last 2.8 ms at 1.45 Mpps.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    ring_size: u32,
    /// Receive buffer per socket in bytes (each datagram is charged one frame).
    #[arg(long, default_value_t = xsknet::sock::DEFAULT_RCVBUF)]
    rcvbuf: usize,
    /// Time one datagram in N from the rx ring to the application's read, and one send in N
    /// (per sending thread) from the send call to the tx ring and on to the completion ring
    /// (0: off, 1: every one).
    #[arg(long, value_name = "N", default_value_t = xsknet::stack::DEFAULT_RX_LATENCY_SAMPLE)]
    rx_latency_sample: u32,
    /// Descriptor limit of the stack's fd table (like `ulimit -n`).
    #[arg(long, default_value_t = xsknet::fdtable::DEFAULT_MAX_FDS)]
    max_fds: usize,
    /// Write every counter to PATH as JSON on exit.
    #[arg(long, value_name = "PATH")]
    stats_json: Option<PathBuf>,
    /// Print a rate line every SECS seconds (0: off).
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = xsknet::cli::parse_secs)]
    stats_interval: f64,
    /// Stop after SECS seconds (default: until SIGINT, SIGTERM or SIGHUP).
    #[arg(long, value_name = "SECS", value_parser = xsknet::cli::parse_secs)]
    duration: Option<f64>,
    /// Open no control endpoint: `xsknet list`, `stat`, `ss` and `top` will not see this
    /// instance (by default it answers on /run/xsknet/IFACE-qQUEUE.sock).
    #[arg(long)]
    no_control: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9464), from a
    /// thread of its own; works with --no-control too.
    #[arg(long, value_name = "ADDR:PORT", value_parser = xsknet::metrics::parse_addr)]
    metrics: Option<std::net::SocketAddr>,
    /// Open and close sockets on ports LO-HI while serving, UDP and TCP listeners in turn, a
    /// few at a time (echo and sink, run to completion; the soak's server: docs/soak.md).
    #[arg(long, value_name = "LO-HI", value_parser = parse_port_range)]
    churn_ports: Option<(u16, u16)>,
    #[command(flatten)]
    tcp: xsknet::cli::TcpSysctlArgs,
    #[command(flatten)]
    attach: AttachArgs,
    #[command(flatten)]
    pcap: PcapArgs,
    #[command(flatten)]
    guard: GuardArgs,
}

impl ServeArgs {
    /// How the servers listen: the backlog, `SO_REUSEADDR`, and `--so-keepalive`'s options;
    /// and `--tcp-quickack` (else `quickack`, the application's default) after listen().
    fn listen(&self, quickack: u8) -> tcp_serve::Listen {
        let mut opts = vec![xsknet::SockOpt::ReuseAddr(true)];
        opts.extend(self.so_keepalive.iter().flat_map(|k| k.0.iter().copied()));
        // listen() leaves the listener out of interactive mode: 1 is its state already.
        let after_listen = match self.tcp_quickack.unwrap_or(quickack) {
            0 => vec![xsknet::SockOpt::TcpQuickAck(false)],
            _ => Vec::new(),
        };
        tcp_serve::Listen { backlog: self.backlog, opts, after_listen }
    }
}

/// `LO-HI`, 1 <= LO <= HI <= 65535.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s.split_once('-').ok_or_else(|| format!("{s}: expected LO-HI, e.g. 20000-20063"))?;
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or(format!("{p}: expected a port 1-65535"));
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo > hi {
        return Err(format!("{s}: the range's low end is above its high end"));
    }
    Ok((lo, hi))
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let (kind, args, http) = match &cli.command {
        Command::Echo(a) => (App::Echo, a.clone(), None),
        Command::Sink(a) => (App::Sink, a.clone(), None),
        Command::Http(a) => match a.config() {
            Ok(c) => (App::Http, a.serve.clone(), Some(c)),
            Err(e) => {
                eprintln!("xsknet: {e}");
                return ExitCode::FAILURE;
            }
        },
        Command::Pktgen { args } => return exec_sibling("xsknet-pktgen", args),
        // The commands that only print: a closed pipe (`xsknet list | head -1`) ends them
        // quietly, as it ends `ss` or `nstat`, instead of a panic in println!. Not the
        // servers: their control and metrics sockets must see EPIPE, not die of it.
        Command::List => return quiet_pipe(inspect::list),
        Command::Stat(a) => return quiet_pipe(|| inspect::stat(a)),
        Command::Ss(a) => return quiet_pipe(|| inspect::ss(a)),
        Command::Guard(a) => return quiet_pipe(|| guard::guard(a)),
        Command::Top(a) => return report_result(top::top(a)),
    };
    report_result(serve(kind, &args, http.as_ref()))
}

/// Runs a command that only prints, with SIGPIPE's default action back.
fn quiet_pipe(f: impl FnOnce() -> Result<(), BoxError>) -> ExitCode {
    sigpipe::reset();
    report_result(f())
}

/// The exit status of a command that prints its own output.
fn report_result(r: Result<(), BoxError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xsknet: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `name` from the directory of this executable (as `git` runs
/// `git-foo`), replacing this process.
fn exec_sibling(name: &str, args: &[std::ffi::OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let path = std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join(name)));
    let Some(path) = path.filter(|p| p.exists()) else {
        eprintln!("xsknet: {name} not found beside this binary: build it with `make build` (cargo build --release --workspace)");
        return ExitCode::FAILURE;
    };
    let err = std::process::Command::new(&path).args(args).exec();
    eprintln!("xsknet: running {}: {err}", path.display());
    ExitCode::FAILURE
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum App {
    Echo,
    Sink,
    Http,
}

impl App {
    fn name(self) -> &'static str {
        match self {
            App::Echo => "echo (udp, tcp)",
            App::Sink => "sink (udp, tcp)",
            App::Http => "http (tcp)",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            App::Echo | App::Sink => 7,
            App::Http => 80,
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn serve(app: App, args: &ServeArgs, http: Option<&http::Config>) -> Result<(), BoxError> {
    let (addr, prefix_len) = args.ip;
    if !args.ring_size.is_power_of_two() {
        return Err(format!("--ring-size {} is not a power of two", args.ring_size).into());
    }
    if args.frames <= args.ring_size {
        return Err(format!(
            "--frames {} must be more than --ring-size {}: the fill ring holds that many frames, and replies need \
             frames of their own",
            args.frames, args.ring_size
        )
        .into());
    }
    let route = xsknet::route::Route { addr, prefix_len, gateway: args.gateway };
    if let Some(gw) = args.gateway.filter(|gw| !route.valid_gateway(*gw)) {
        let why = if gw == addr { "it is xsknet's own address" } else { "a gateway must be a host on the subnet" };
        return Err(format!(
            "--gateway {gw} cannot be the gateway of {addr}/{prefix_len}: {why} (Linux: \"Nexthop has invalid gateway\")"
        )
        .into());
    }
    // A CPU that cannot be used is said before anything is set up.
    for (flag, cpu) in [("--cpu", args.cpu), ("--app-cpu", args.app_cpu)] {
        if let Some(cpu) = cpu {
            xsknet::cpu::core(cpu).map_err(|e| format!("{flag} {cpu}: {e}"))?;
        }
    }
    if args.churn_ports.is_some() && (args.threaded || app == App::Http) {
        return Err("--churn-ports is for echo and sink run to completion (not --threaded, not http)".into());
    }
    let port = args.port.unwrap_or(app.default_port());
    if let Some((lo, hi)) = args.churn_ports.filter(|(lo, hi)| (*lo..=*hi).contains(&port)) {
        return Err(format!("--churn-ports {lo}-{hi} holds the served port {port}").into());
    }
    // A bad rules file is said before anything is set up.
    let guard_rules = args.guard.rules()?;
    signal::install()?;
    // Claimed before the device: a second instance on the queue is told who runs there.
    let control = if args.no_control { None } else { Some(ControlSocket::bind(&args.iface, args.queue)?) };
    let metrics = args.metrics.map(MetricsServer::bind).transpose()?;
    let device::Device { xdp, mac, umem, pool, xsk: dev, mtu, multi_buffer } = device::open(&DeviceOptions {
        ifname: args.iface.clone(),
        queue: args.queue,
        ipv4_addr: addr,
        xdp_mode: AttachMode::from(args.xdp_mode),
        bind_mode: BindMode::from(args.bind_mode),
        frames: args.frames,
        frame_size: args.frame_size,
        ring_size: args.ring_size,
        replace: args.attach.replace,
        force: args.attach.force,
        pass_kernel_addrs: args.pass_kernel_addrs,
        multi_buffer: args.multi_buffer.into(),
    })?;
    let mut dev = dev;
    if args.prefer_busy_poll {
        dev.set_busy_poll(xsknet::xsk::BUSY_POLL_USECS, xsknet::stack::NAPI_POLL_WEIGHT as u32)
            .map_err(|e| format!("--prefer-busy-poll: setsockopt(SO_PREFER_BUSY_POLL): {e}"))?;
    }
    let zero_copy = dev.zero_copy();
    // The guard's rules go in before the loop reads the first frame (frames
    // that came in since the attach wait in the rx ring, already past XDP).
    let guard = match guard_rules {
        Some(rules) => {
            let guard = xdp.guard()?;
            guard.apply(&GuardUpdate::Replace(Box::new(rules)))?;
            guard.apply(&GuardUpdate::Enable)?;
            Some(guard)
        }
        None => None,
    };

    let mut cfg = StackConfig::new(mac, addr, prefix_len);
    cfg.gateway = args.gateway;
    cfg.rcvbuf = args.rcvbuf;
    cfg.max_fds = args.max_fds;
    cfg.rx_latency_sample = args.rx_latency_sample;
    cfg.busy_read = Duration::from_micros(args.busy_read);
    cfg.tcp_congestion = args.congestion;
    cfg.tcp_max_pacing_rate = args.tcp_max_pacing_rate.unwrap_or(u64::MAX);
    args.tcp.apply(&mut cfg);
    cfg.mtu = mtu as usize;
    let mut stack = Stack::new(dev, umem, Arc::new(pool), cfg);
    // A capture holds whole frames: the MTU's with multi-buffer, else a frame's.
    let max_frame = (args.frame_size as usize).max(mtu as usize + 14);
    if let Some(o) = args.pcap.options(max_frame) {
        let tap = xsknet::capture::CaptureTap::start(&o)
            .map_err(|e| format!("--pcap: {e} (the directory must exist and be writable)"))?;
        stack.attach_capture(tap);
    }
    let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let setup = format!(
        "{} on {} {}:{} (queue {}, {} mode, MTU {}, {}-byte frames, multi-buffer {}, XDP {} mode, prog id {}, {}, HZ {}{})",
        app.name(),
        args.iface,
        addr,
        port,
        args.queue,
        if zero_copy { "zero-copy" } else { "copy" },
        mtu,
        args.frame_size,
        if multi_buffer { "on" } else { "off" },
        xdp.mode(),
        xdp.program_id(),
        if args.threaded { "threaded" } else { "run-to-completion" },
        stack.config().hz,
        match (&guard, &args.guard.guard_rules) {
            (None, _) => String::new(),
            (Some(_), Some(path)) => format!(", guard: {}", path.display()),
            (Some(_), None) => ", guard: default policy".to_string(),
        },
    );
    // Whether the program is still attached: asked at each publication and at exit.
    let xdp_watch = xdp.link_watch().map_err(|e| log::warn!("the XDP program's link is not watched: {e}")).ok();
    // The loop publishes when someone reads: the control endpoint, the metrics server, the
    // guard's adaptive mode.
    let published = (control.is_some() || metrics.is_some() || guard.is_some()).then(|| {
        let (mut publisher, reader) = Publisher::new(stack.epoch());
        if let Some(w) = &xdp_watch {
            publisher.watch_xdp(w.clone());
        }
        stack.attach_publisher(publisher);
        let info = InstanceInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            app: app.name().to_string(),
            iface: args.iface.clone(),
            queue: args.queue,
            netns: Netns::current(),
            addr,
            prefix_len,
            port,
            setup: setup.clone(),
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            prog_id: Some(xdp.program_id()),
        };
        (info, reader)
    });
    // The adaptive mode reads the loop's time from the statistics page, off the loop. It
    // follows the rules in force (`xsknet guard load`), so it runs whenever the guard does.
    let adaptive = match (&guard, &published) {
        (Some(g), Some((_, reader))) => Some(guard::AdaptiveThread::spawn(g.clone(), reader.clone())?),
        _ => None,
    };
    // Each server reads through a source of its own.
    let source = |(info, reader): &(InstanceInfo, xsknet::publish::StatsReader)| SnapshotSource {
        info: info.clone(),
        stats: reader.clone(),
        xdp: xdp.stats_reader().map_err(|e| log::warn!("XDP counters not served: {e}")).ok(),
        guard: guard.clone(),
        adaptive: adaptive.as_ref().map(guard::AdaptiveThread::shared),
    };
    let endpoint = match (control, &published) {
        (Some(sock), Some(p)) => Some(sock.serve(source(p))?),
        _ => None,
    };
    let metrics_endpoint = match (metrics, &published) {
        (Some(m), Some(p)) => {
            eprintln!("xsknet: metrics at http://{}{}", m.local_addr(), xsknet::metrics::PATH);
            Some(m.serve(source(p))?)
        }
        _ => None,
    };
    let started = Instant::now();
    let deadline = args.duration.map(|s| started + Duration::from_secs_f64(s));
    let interval = (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));

    // Placement: the application's threads (the process, threaded) or the whole loop (run to
    // completion) first; a threaded loop's own thread is bound when it starts.
    let placed = if args.threaded { args.app_cpu.or(args.cpu) } else { args.cpu };
    if let Some(cpu) = placed {
        xsknet::cpu::bind_current(cpu).map_err(|e| format!("--cpu/--app-cpu: {e}"))?;
    }
    let mut churn = args.churn_ports.map(|ports| churn::Churn::new(ports, app == App::Echo));
    let (mut final_stack, loop_stats, app_stats, http_stats) = if let Some(cfg) = http {
        http::run(cfg, stack, local, args, &setup, deadline, interval)?
    } else if args.threaded {
        let (s, l, a) = run_threaded(app, stack, local, &args.listen(1), &setup, deadline, interval, args.cpu)?;
        (s, l, a, None)
    } else {
        let (s, l, a) =
            run_to_completion(app, stack, local, &args.listen(1), &setup, deadline, interval, &xdp, churn.as_mut())?;
        (s, l, a, None)
    };
    let elapsed = started.elapsed();
    let adaptive = adaptive.map(guard::AdaptiveThread::stop);
    let report = Report {
        setup: &setup,
        elapsed,
        mib: final_stack.snmp(),
        device: final_stack.device_stats(),
        census: final_stack.frame_census(),
        xdp: xdp.stats().unwrap_or_default(),
        xdp_attached: xdp_watch.as_ref().map(|w| (w.prog_id(), w.attached())),
        guard: guard.as_ref().and_then(|g| g.counters().map_err(|e| log::warn!("guard counters: {e}")).ok()),
        adaptive,
        loop_stats,
        app: app_stats,
        rx_latency: final_stack.rx_latency().summary(),
        stage_latency: final_stack.stage_latency().summary(),
        poll: final_stack.poll_histograms().summary(),
        tcp_states: final_stack.tcp_states().into_iter().map(|(s, n)| (s.name(), n)).collect(),
        http: http_stats,
        neighbours: final_stack.neighbours(),
        threads_cpu_ns: xsknet::schedstat::threads_cpu_ns(),
    };
    // The writer thread writes what is queued, closes the file and is joined.
    let capture = final_stack.detach_capture().map(|t| t.finish());
    report.print();
    // Written, not println!'d: the terminal may be gone (SIGHUP), and the JSON must still be written.
    let mut out = std::io::stdout();
    if let Some(c) = &capture {
        let _ = writeln!(out, "{}", c.line());
    }
    if let (Some(c), Some((lo, hi))) = (&churn, args.churn_ports) {
        let s = c.stats;
        let _ = writeln!(
            out,
            "  churn on ports {lo}-{hi}: {} UDP sockets and {} TCP listeners opened, {} closed, {} refused; {} \
             datagrams read, {} connections accepted",
            s.udp_opened, s.tcp_listeners_opened, s.closed, s.open_errors, s.datagrams, s.accepted
        );
    }
    if let Some(path) = &args.stats_json {
        let mut json = report.to_json();
        if let Some(c) = &churn {
            json["churn"] = serde_json::to_value(c.stats)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    drop(metrics_endpoint);
    drop(endpoint);
    drop(final_stack);
    drop(xdp); // detaches (bpf_link)
    Ok(())
}

fn bind_error(e: Errno, port: u16) -> BoxError {
    format!("bind to UDP port {port}: {e} ({})", e.name()).into()
}

fn listen_error(e: Errno, port: u16) -> BoxError {
    format!("listen on TCP port {port}: {e} ({})", e.name()).into()
}

fn tcp_mode(app: App) -> tcp_serve::Mode {
    if app == App::Echo {
        tcp_serve::Mode::Echo
    } else {
        tcp_serve::Mode::Discard
    }
}

/// How long connections get on exit to deliver what they hold and close.
const TCP_LINGER_ON_EXIT: Duration = Duration::from_secs(2);

/// On exit, after the application closed its sockets: the connections finish
/// on their own for a while (data, FIN), then the rest are reset, so that no
/// peer is left waiting on a stream that stopped mid-way.
pub(crate) fn finish_tcp<D: NetDevice>(stack: &mut Stack<D>) {
    let reset = stack.finish_tcp(TCP_LINGER_ON_EXIT);
    if reset > 0 {
        eprintln!(
            "xsknet: {reset} TCP connection(s) had not finished {} s after stop: reset",
            TCP_LINGER_ON_EXIT.as_secs()
        );
    }
}

fn should_stop(deadline: Option<Instant>) -> bool {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        signal::request_stop();
    }
    signal::stop_requested()
}

/// Prints a rate line every `interval`.
struct Ticker {
    interval: Option<Duration>,
    last: Instant,
    last_rx: u64,
    last_app: u64,
    last_tcp: u64,
}

impl Ticker {
    fn new(interval: Option<Duration>) -> Ticker {
        Ticker { interval, last: Instant::now(), last_rx: 0, last_app: 0, last_tcp: 0 }
    }

    /// Whether a rate line is due (so that callers fetch counters only then).
    fn due(&self) -> bool {
        self.interval.is_some_and(|iv| self.last.elapsed() >= iv)
    }

    /// A line of rates from the counters now: frames off the rx ring, the
    /// application's units (`what`: datagrams, requests) and TCP segments in.
    fn tick(&mut self, mib: &xsknet::snmp::Mib, app_units: u64, what: &str, busy: f64) {
        if !self.due() {
            return;
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last);
        let secs = dt.as_secs_f64();
        eprintln!(
            "xsknet: rx {:>10.0} frames/s  app {:>10.0} {what}/s  tcp in {:>10.0} segments/s  softirq busy {:>5.1} %",
            (mib.XskRxFrames - self.last_rx) as f64 / secs,
            (app_units - self.last_app) as f64 / secs,
            (mib.TcpInSegs - self.last_tcp) as f64 / secs,
            busy * 100.0
        );
        self.last = now;
        self.last_rx = mib.XskRxFrames;
        self.last_app = app_units;
        self.last_tcp = mib.TcpInSegs;
    }
}

#[allow(clippy::too_many_arguments)]
fn run_to_completion<D: NetDevice>(
    app: App,
    mut stack: Stack<D>,
    local: SocketAddrV4,
    listen: &tcp_serve::Listen,
    setup: &str,
    deadline: Option<Instant>,
    interval: Option<Duration>,
    xdp: &XdpProgram,
    mut churn: Option<&mut churn::Churn>,
) -> Result<(Stack<D>, LoopStats, AppStats), BoxError> {
    let fd = stack.socket(SockType::Dgram)?;
    stack.bind(fd, local).map_err(|e| bind_error(e, local.port()))?;
    let lfd = tcp_serve::listener(&mut stack, local, listen).map_err(|e| listen_error(e, local.port()))?;
    let mut tcp = tcp_serve::TcpService::new(&mut stack, tcp_mode(app), lfd)?;
    println!("xsknet: ready: {setup}");
    let _ = xdp;
    let mut stats = LoopStats::start();
    let mut app_stats = AppStats::default();
    let mut ticker = Ticker::new(interval);
    // The largest UDP datagram (65507 bytes, reassembled from fragments).
    let mut buf = vec![0u8; xsknet::socket::MAX_UDP_PAYLOAD];
    let mut n_polls: u32 = 0;
    loop {
        n_polls = n_polls.wrapping_add(1);
        if n_polls.is_multiple_of(1024) {
            if should_stop(deadline) {
                break;
            }
            if ticker.due() {
                ticker.tick(&stack.snmp(), app_stats.datagrams, "datagrams", stats.busy_share());
            }
        }
        stack.poll_timed(&mut stats);
        tcp.serve(&mut stack);
        if let Some(c) = churn.as_deref_mut() {
            c.maybe_step(&mut stack, &mut buf);
        }
        loop {
            let got = match app {
                App::Sink | App::Http => stack.recv_with(fd, |data, peer| (data.len(), peer)),
                App::Echo => stack.recv_from(fd, &mut buf),
            };
            let (n, peer) = match got {
                Ok(v) => v,
                Err(_) => break,
            };
            app_stats.datagrams += 1;
            app_stats.bytes += n as u64;
            if app == App::Echo {
                let mut sent = stack.send_to(fd, &buf[..n], peer);
                if sent == Err(Errno::EAGAIN) {
                    // The write queue is full: let the loop drain it once.
                    stack.poll(Instant::now());
                    sent = stack.send_to(fd, &buf[..n], peer);
                }
                if sent.is_err() {
                    app_stats.echo_send_failed += 1;
                }
            }
        }
    }
    stats.sample_sched();
    // Let what is queued go out before closing.
    let drain_until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < drain_until {
        stack.poll(Instant::now());
    }
    app_stats.tcp_accepted = tcp.stats.accepted.load(std::sync::atomic::Ordering::Relaxed);
    app_stats.tcp_bytes = tcp.stats.bytes.load(std::sync::atomic::Ordering::Relaxed);
    tcp.close(&mut stack);
    if let Some(c) = churn {
        c.close_all(&mut stack);
    }
    finish_tcp(&mut stack);
    stack.close(fd)?;
    stack.release_backlog();
    Ok((stack, stats, app_stats))
}

#[allow(clippy::too_many_arguments)]
fn run_threaded<D: NetDevice + Send + 'static>(
    app: App,
    stack: Stack<D>,
    local: SocketAddrV4,
    listen: &tcp_serve::Listen,
    setup: &str,
    deadline: Option<Instant>,
    interval: Option<Duration>,
    loop_cpu: Option<usize>,
) -> Result<(Stack<D>, LoopStats, AppStats), BoxError> {
    let threaded = ThreadedStack::spawn_on(stack, loop_cpu)?;
    let h = threaded.handle();
    let fd = h.socket(SockType::Dgram)?;
    h.bind(fd, local).map_err(|e| bind_error(e, local.port()))?;
    let lfd = tcp_serve::listener_threaded(&h, local, listen).map_err(|e| listen_error(e, local.port()))?;
    let tcp_stats = Arc::new(tcp_serve::TcpAppStats::default());
    let acceptor = {
        let (h, stats, mode) = (h.clone(), tcp_stats.clone(), tcp_mode(app));
        std::thread::spawn(move || tcp_serve::serve_threaded(&h, mode, lfd, stats, signal::stop_requested))
    };
    println!("xsknet: ready: {setup}");
    let mut app_stats = AppStats::default();
    let mut ticker = Ticker::new(interval);
    // The largest UDP datagram (65507 bytes, reassembled from fragments).
    let mut buf = vec![0u8; xsknet::socket::MAX_UDP_PAYLOAD];
    while !should_stop(deadline) {
        match h.recv_from(fd, &mut buf, Some(Duration::from_millis(100))) {
            Ok((n, peer)) => {
                app_stats.datagrams += 1;
                app_stats.bytes += n as u64;
                if app == App::Echo && h.send_to(fd, &buf[..n], peer).is_err() {
                    app_stats.echo_send_failed += 1;
                }
            }
            Err(Errno::EAGAIN) => {}
            Err(e) => return Err(format!("recvfrom: {e}").into()),
        }
        // A snapshot is a round trip to the loop thread: only when a line is due.
        if ticker.due() {
            if let Ok(s) = h.snapshot() {
                ticker.tick(&s.mib, app_stats.datagrams, "datagrams", s.loop_stats.busy_share());
            }
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    for t in acceptor.join().map_err(|_| "the TCP acceptor panicked")? {
        let _ = t.join();
    }
    app_stats.tcp_accepted = tcp_stats.accepted.load(std::sync::atomic::Ordering::Relaxed);
    app_stats.tcp_bytes = tcp_stats.bytes.load(std::sync::atomic::Ordering::Relaxed);
    let _ = h.close(lfd);
    h.close(fd)?;
    let (mut stack, stats) = threaded.stop().map_err(|_| "the softirq thread panicked")?;
    finish_tcp(&mut stack);
    stack.release_backlog();
    Ok((stack, stats, app_stats))
}

/// `--congestion`: an algorithm's name, as `TCP_CONGESTION` takes it.
fn parse_congestion(s: &str) -> Result<xsknet::CongAlgo, String> {
    xsknet::CongAlgo::from_name(s).map_err(|_| format!("no congestion control {s:?}: cubic or reno"))
}

/// The library's messages (`log`) on stderr as `xsknet: warning: …`:
/// warnings and errors by default, more with `RUST_LOG=info` or `debug`.
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            let level = match record.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                log::Level::Info => "info",
                log::Level::Debug => "debug",
                log::Level::Trace => "trace",
            };
            writeln!(buf, "xsknet: {level}: {}", record.args())
        })
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The definitions hold together, and every serving option parses into
    /// the type its field has (clap checks that only when the option is given).
    #[test]
    fn the_command_line_parses_every_serving_option() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "xsknet",
            "echo",
            "--iface",
            "veth0",
            "--ip",
            "10.0.0.2/24",
            "--so-keepalive",
            "30m:10:5",
            "--congestion",
            "reno",
            "--tcp-timestamps",
            "0",
            "--tcp-mem",
            "100,200,300",
            "--backlog",
            "64",
        ])
        .expect("parses");
        let Command::Echo(a) = cli.command else { panic!("not echo") };
        let l = a.listen(1);
        assert_eq!(l.backlog, 64);
        assert_eq!(l.opts.first(), Some(&xsknet::SockOpt::ReuseAddr(true)));
        assert_eq!(l.opts.len(), 5, "SO_REUSEADDR, SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT");
        let err =
            Cli::try_parse_from(["xsknet", "echo", "--iface", "v", "--ip", "10.0.0.2/24", "--so-keepalive", "off"])
                .err()
                .expect("refused");
        assert!(err.to_string().contains("IDLE:INTVL:CNT"), "{err}");
    }
}
