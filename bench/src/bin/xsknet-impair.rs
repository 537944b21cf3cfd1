//! `xsknet-impair`: netem's loss, delay, jitter, reordering, duplication and rate, as a relay.
//!
//! Runs in a middle network namespace holding two interfaces, the A side and the B side. It
//! reads every frame from each through an `AF_PACKET` raw socket (`ETH_P_ALL`, bound to the
//! interface, promiscuous, `PACKET_IGNORE_OUTGOING` so its own sends do not come back) and
//! sends it out of the other one, after [`xsknet_bench::impair::Shaper`] has decided its fate.
//! Frames are relayed at layer 2, ARP included, so the kernels on either side see one wire.
//!
//! Why not netem: this kernel has none (`CONFIG_NET_SCH_NETEM` unset), and AF_XDP transmit
//! goes straight to the driver, past every qdisc of xsknet's interface. See docs/impairment.md.
//!
//! Stops on SIGINT or SIGTERM, prints the counters to stderr and, with `--stats-json FILE`,
//! writes them there. Prints `xsknet-impair: ready` on stderr once both sockets are bound: a
//! frame sent before that line is not seen. Exit status: 0 after a clean stop, 1 when a socket
//! could not be set up or the loop failed, 2 for a usage error (clap's).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use xsknet::signal;
use xsknet_bench::impair::{direction_seed, DirectionStats, Impairment, RelayStats, Scope, Shaper, DEFAULT_LIMIT};

#[derive(Parser, Debug)]
#[command(
    name = "xsknet-impair",
    version,
    about = "Relay every frame between two interfaces, with netem's loss, delay, jitter, reorder, duplicate and rate.",
    long_about = "Relay every frame between two interfaces, with netem's loss, delay, jitter, reorder, duplicate \
        and rate.\n\n\
        Run it in a namespace that holds both interfaces (no addresses on them): it reads each frame from one \
        side with an AF_PACKET socket and sends it out of the other, ARP included, so the hosts on either side \
        see one Ethernet segment. The options apply to --direction (default both); the other direction is \
        relayed as is. Stop it with SIGINT or SIGTERM: it prints its counters, and writes them to --stats-json.\n\n\
        Turn off transmit checksum offload on the outer hosts' veths (ethtool -K IFACE tx off): a veth hands \
        over frames with partial checksums and 64 KB GSO segments, which a raw socket relays as they are and \
        the far side then drops.\n\nNeeds CAP_NET_RAW (and CAP_NET_ADMIN for the large socket buffers).",
    after_help = "Example (namespaces peer, mid, xsk; mid holds p1 and x1):\n  \
        ip netns exec mid xsknet-impair --a-side p1 --b-side x1 --loss 5 --delay 10 --jitter 2 --reorder 10 \
        --seed 1 --stats-json /tmp/impair.json"
)]
struct Cli {
    /// The A side's interface.
    #[arg(long, value_name = "IFACE")]
    a_side: String,
    /// The B side's interface.
    #[arg(long, value_name = "IFACE")]
    b_side: String,
    /// Share of frames dropped, percent (netem `loss random`).
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    loss: f64,
    /// Delay added to each frame, milliseconds (netem `delay`).
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    delay: f64,
    /// Uniform spread around --delay, milliseconds (netem `delay TIME JITTER`).
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    jitter: f64,
    /// Share of frames sent at once, the rest delayed by --delay, percent (netem `reorder`; needs --delay).
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    reorder: f64,
    /// Share of frames sent twice, percent (netem `duplicate`).
    #[arg(long, value_name = "PCT", default_value_t = 0.0)]
    duplicate: f64,
    /// Link rate, Mbit/s (netem `rate`): frames wait to be serialised one after another.
    #[arg(long, value_name = "MBIT")]
    rate: Option<f64>,
    /// Most frames waiting per direction; more are dropped and counted (netem `limit`).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMIT)]
    limit: usize,
    /// Seed of the random streams (each direction derives its own): the same seed and the same
    /// frames give the same decisions. Without it, one is drawn and printed.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Which directions the options apply to.
    #[arg(long, value_enum, default_value_t = Scope::Both)]
    direction: Scope,
    /// Write the counters as JSON to FILE on exit.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

/// Socket buffers asked for (`SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`), bytes: a burst of 64 KB
/// frames while the relay is descheduled must not overflow them.
const SOCKET_BUFFER: libc::c_int = 64 << 20;
/// Read buffer: the largest frame a veth may hand over (64 KB GSO segment) and some.
const FRAME_BUFFER: usize = 128 << 10;
/// Frames read from one socket before the other gets a turn.
const READ_BATCH: usize = 256;
/// Longest wait in poll when nothing is queued, so a stop is noticed even without a signal.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// How long a send may keep failing with a transient error (`EAGAIN`, `ENOBUFS`) before the
/// frame counts as a send error.
const SEND_PATIENCE: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let imp = Impairment {
        loss_pct: cli.loss,
        delay_ns: ms_to_ns(cli.delay),
        jitter_ns: ms_to_ns(cli.jitter),
        reorder_pct: cli.reorder,
        duplicate_pct: cli.duplicate,
        rate_bps: cli.rate.map(|mbit| (mbit * 1e6).round() as u64),
        limit: cli.limit,
    };
    let bad_times = [("--delay", cli.delay), ("--jitter", cli.jitter), ("--rate", cli.rate.unwrap_or(1.0))];
    if let Some((name, v)) = bad_times.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
        eprintln!("xsknet-impair: {name} {v}: must be a finite number, 0 or more");
        return ExitCode::from(2);
    }
    if let Err(e) = imp.validate() {
        eprintln!("xsknet-impair: {e}");
        return ExitCode::from(2);
    }
    match run(&cli, imp) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xsknet-impair: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ms_to_ns(ms: f64) -> u64 {
    (ms * 1e6).round() as u64
}

fn run(cli: &Cli, imp: Impairment) -> io::Result<()> {
    let seed = cli.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (nanos.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
    });
    signal::install()?;
    let ports = [Port::open(&cli.a_side)?, Port::open(&cli.b_side)?];
    let (a2b, b2a) = cli.direction.split(imp);
    // shapers[i] carries what ports[i] reads to ports[1 - i].
    let mut shapers = [Shaper::new(a2b, direction_seed(seed, false)), Shaper::new(b2a, direction_seed(seed, true))];
    let scope = match cli.direction {
        Scope::A2b => format!("{} -> {}", cli.a_side, cli.b_side),
        Scope::B2a => format!("{} -> {}", cli.b_side, cli.a_side),
        Scope::Both => "both directions".to_owned(),
    };
    let rate = cli.rate.map_or("none".to_owned(), |r| format!("{r} Mbit/s"));
    eprintln!(
        "xsknet-impair: ready: {} <-> {}, seed {seed}; on {scope}: loss {} %, delay {} ms, jitter {} ms, \
         reorder {} %, duplicate {} %, rate {rate}, limit {}",
        cli.a_side, cli.b_side, cli.loss, cli.delay, cli.jitter, cli.reorder, cli.duplicate, cli.limit
    );

    let t0 = Instant::now();
    let now_ns = || t0.elapsed().as_nanos() as u64;
    let mut buf = vec![0u8; FRAME_BUFFER];
    let mut last_send_error: Option<io::Error> = None;
    let mut pollfds = ports.each_ref().map(|p| libc::pollfd { fd: p.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
    while !signal::stop_requested() {
        let now = now_ns();
        for (i, shaper) in shapers.iter_mut().enumerate() {
            shaper.release_due(now, |f| send_frame(ports[1 - i].fd.as_raw_fd(), f, &mut last_send_error));
        }
        let wait = shapers
            .iter()
            .filter_map(Shaper::next_release_ns)
            .min()
            .map_or(IDLE_WAIT, |t| Duration::from_nanos(t.saturating_sub(now)).min(IDLE_WAIT));
        let ts = libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as _ };
        // SAFETY: `pollfds` is a live array of two pollfd whose length is passed; `ts` lives
        // for the call; a null sigmask leaves the mask unchanged.
        let rc = unsafe { libc::ppoll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io::Error::new(e.kind(), format!("ppoll: {e}")));
        }
        for i in 0..2 {
            let revents = pollfds[i].revents;
            if revents & libc::POLLERR != 0 {
                return Err(io::Error::other(format!("{}: socket error (interface gone?)", ports[i].name)));
            }
            if revents & libc::POLLIN == 0 {
                continue;
            }
            for _ in 0..READ_BATCH {
                let Some(len) = ports[i].recv(&mut buf)? else { break };
                let now = now_ns();
                if len > buf.len() {
                    shapers[i].stats.frames_in += 1;
                    shapers[i].stats.truncated += 1;
                    continue;
                }
                shapers[i].enqueue(now, &buf[..len]);
                shapers[i].release_due(now, |f| send_frame(ports[1 - i].fd.as_raw_fd(), f, &mut last_send_error));
            }
        }
        for p in &mut pollfds {
            p.revents = 0;
        }
    }

    let mut stats = [shapers[0].stats, shapers[1].stats];
    for (s, port) in stats.iter_mut().zip(&ports) {
        s.socket_drops = port.drops()?;
    }
    let report = RelayStats { seed, impairment: imp, direction: cli.direction, a2b: stats[0], b2a: stats[1] };
    eprintln!("xsknet-impair: stopped; seed {seed}");
    eprint!("{}", table(&report, &cli.a_side, &cli.b_side));
    if let Some(e) = last_send_error {
        eprintln!("xsknet-impair: last send error: {e}");
    }
    if let Some(path) = &cli.stats_json {
        let json = serde_json::to_string_pretty(&report).map_err(io::Error::other)?;
        std::fs::write(path, json + "\n").map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// The counters as an aligned two-column table.
fn table(r: &RelayStats, a: &str, b: &str) -> String {
    type Counter = fn(&DirectionStats) -> u64;
    let rows: [(&str, Counter); 11] = [
        ("frames in", |s| s.frames_in),
        ("bytes in", |s| s.bytes_in),
        ("forwarded", |s| s.forwarded),
        ("dropped by loss", |s| s.dropped_loss),
        ("dropped by limit", |s| s.dropped_limit),
        ("duplicated", |s| s.duplicated),
        ("reordered", |s| s.reordered),
        ("send errors", |s| s.send_errors),
        ("still queued", |s| s.queued),
        ("socket drops", |s| s.socket_drops),
        ("truncated", |s| s.truncated),
    ];
    let (h1, h2) = (format!("{a} -> {b}"), format!("{b} -> {a}"));
    let mut out = format!("  {:<18} {h1:>16} {h2:>16}\n", "");
    for (name, get) in rows {
        out += &format!("  {name:<18} {:>16} {:>16}\n", get(&r.a2b), get(&r.b2a));
    }
    out
}

/// One side: an `AF_PACKET` raw socket bound to the interface.
struct Port {
    fd: OwnedFd,
    name: String,
}

impl Port {
    /// Opens the socket for `ifname`: created with protocol 0 (it receives nothing yet), given
    /// its options, then bound with `ETH_P_ALL`, so no frame of another interface slips in
    /// between socket(2) and bind(2) (packet(7)).
    fn open(ifname: &str) -> io::Result<Port> {
        let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{ifname}: {what}: {e}"));
        let cname = std::ffi::CString::new(ifname).map_err(|_| io::Error::other("interface name holds a NUL"))?;
        // SAFETY: `cname` is a NUL-terminated string live for the call.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(ctx("no such interface in this namespace", io::Error::last_os_error()));
        }
        // SAFETY: socket(2) with constant arguments; returns a new descriptor or -1.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(ctx("socket(AF_PACKET) (needs CAP_NET_RAW)", io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1)
            .map_err(|e| ctx("PACKET_IGNORE_OUTGOING", e))?;
        for (force, plain) in [(libc::SO_RCVBUFFORCE, libc::SO_RCVBUF), (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)] {
            // Without CAP_NET_ADMIN the FORCE form fails; the plain one is capped by rmem_max/wmem_max.
            if setsockopt(raw, libc::SOL_SOCKET, force, &SOCKET_BUFFER).is_err() {
                setsockopt(raw, libc::SOL_SOCKET, plain, &SOCKET_BUFFER).map_err(|e| ctx("SO_RCVBUF/SO_SNDBUF", e))?;
            }
        }
        // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `raw` is a valid socket; `addr` is live and its exact size is passed.
        let rc = unsafe {
            libc::bind(
                raw,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(ctx("bind", io::Error::last_os_error()));
        }
        // SAFETY: packet_mreq is plain data; all zeroes is a valid value.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = ifindex as i32;
        mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
        setsockopt(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| ctx("promiscuous mode", e))?;
        Ok(Port { fd, name: ifname.to_owned() })
    }

    /// Reads one frame into `buf`: `Some(length)`, which exceeds `buf.len()` when the frame was
    /// truncated (`MSG_TRUNC`), or `None` when nothing is waiting.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: `buf` and `from` are live, writable and their sizes are passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => Ok(None),
                    Some(libc::EINTR) => continue,
                    _ => Err(io::Error::new(e.kind(), format!("{}: recvfrom: {e}", self.name))),
                };
            }
            // PACKET_IGNORE_OUTGOING already keeps our own sends out; this is the backstop.
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n as usize));
        }
    }

    /// Frames the kernel dropped on this socket since it was opened (`PACKET_STATISTICS`,
    /// which also resets the counters: call once).
    fn drops(&self) -> io::Result<u64> {
        // SAFETY: tpacket_stats is plain data; all zeroes is a valid value.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is live and writable, `len` holds its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(u64::from(st.tp_drops))
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live reference and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, (value as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends one frame on `fd` (bound, so no address is needed), retrying transient refusals for
/// up to [`SEND_PATIENCE`]. `false` (and `last_error` set) when the frame could not be sent.
fn send_frame(fd: RawFd, frame: &[u8], last_error: &mut Option<io::Error>) -> bool {
    let mut deadline = None;
    loop {
        // SAFETY: `frame` is live for the call and its length is passed.
        let n = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
        if n >= 0 && n as usize == frame.len() {
            return true;
        }
        let e = if n < 0 {
            io::Error::last_os_error()
        } else {
            io::Error::other(format!("sent {n} of {} bytes", frame.len()))
        };
        let transient = matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR));
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + SEND_PATIENCE);
        if !transient || Instant::now() >= deadline {
            *last_error = Some(e);
            return false;
        }
        // The socket's send buffer or the receiver's backlog is full: give the softirq a moment.
        std::thread::sleep(Duration::from_micros(50));
    }
}
