//! The other receivers of the side-by-side benchmark, each the same kind of
//! program as `xsknet sink` / `xsknet echo` so that they can be compared in
//! one run:
//!
//! * `xdp-drop`: our XDP program dropping our frames: the ceiling, what the
//!   path costs up to the XDP program;
//! * `xsk-rxdrop`: a bare AF_XDP receive-and-drop loop on the same UMEM
//!   settings as xsknet (no parsing): the AF_XDP ceiling;
//! * `udp-sink`: a kernel UDP socket read with `recvmmsg` × 64: the
//!   kernel's own receive path (`docs/architecture.md`);
//! * `udp-echo`: a kernel UDP echo server, blocking in `recvfrom` or spinning
//!   on a non-blocking socket.
//!
//! Each runs until SIGINT/SIGTERM or `--duration`, then prints one JSON object
//! (to `--json PATH` as well if given).

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use xsknet::netdevice::{Desc, NetDevice};
use xsknet::signal;
use xsknet::umem::{Frame, Umem};
use xsknet::xdp::{AttachMode, XdpOptions, XdpProgram};
use xsknet::xsk::{BindMode, XskConfig, XskDevice};

#[derive(Parser)]
#[command(name = "baseline", about = "Reference receivers for the side-by-side benchmark")]
struct Cli {
    #[command(subcommand)]
    what: What,
    /// Stop after SECS seconds (default: at SIGINT/SIGTERM).
    #[arg(long, global = true)]
    duration: Option<f64>,
    /// Also write the result to PATH.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
}

#[derive(Subcommand)]
enum What {
    /// Attach the XDP program with XSKNET_F_DROP: frames for ADDR are dropped at XDP.
    XdpDrop {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        ip: Ipv4Addr,
    },
    /// A bare AF_XDP loop: take descriptors off the rx ring, give the frames back to the fill ring.
    XskRxdrop {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        ip: Ipv4Addr,
        /// The same defaults as `xsknet sink`, so that the two compare.
        #[arg(long, default_value_t = 8192)]
        frames: u32,
        #[arg(long, default_value_t = 4096)]
        ring_size: u32,
    },
    /// A kernel UDP socket read with recvmmsg, BATCH datagrams per call.
    UdpSink {
        #[arg(long)]
        bind: SocketAddrV4,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// SO_RCVBUFFORCE in bytes (0: the system default).
        #[arg(long, default_value_t = 0)]
        rcvbuf: usize,
    },
    /// A kernel UDP echo server.
    UdpEcho {
        #[arg(long)]
        bind: SocketAddrV4,
        #[arg(long, value_enum, default_value_t = EchoMode::Blocking)]
        mode: EchoMode,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum EchoMode {
    /// Block in recvfrom: the process sleeps until the softirq wakes it.
    Blocking,
    /// Spin on a non-blocking socket: no sleep, no wake-up.
    Busy,
}

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = signal::install() {
        eprintln!("baseline: installing signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let deadline = cli.duration.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let result = match cli.what {
        What::XdpDrop { iface, ip } => xdp_drop(&iface, ip, deadline),
        What::XskRxdrop { iface, ip, frames, ring_size } => xsk_rxdrop(&iface, ip, frames, ring_size, deadline),
        What::UdpSink { bind, batch, rcvbuf } => udp_sink(bind, batch, rcvbuf, deadline),
        What::UdpEcho { bind, mode } => udp_echo(bind, mode, deadline),
    };
    match result {
        Ok(v) => {
            let text = v.to_string();
            println!("{text}");
            if let Some(p) = cli.json {
                if let Err(e) = std::fs::write(&p, text) {
                    eprintln!("baseline: writing {}: {e}", p.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stop(deadline: Option<Instant>) -> bool {
    if deadline.is_some_and(|d| Instant::now() >= d) {
        signal::request_stop();
    }
    signal::stop_requested()
}

fn attach(iface: &str, ip: Ipv4Addr) -> Result<XdpProgram, BoxError> {
    Ok(XdpProgram::attach(&XdpOptions {
        ifname: iface.to_string(),
        ipv4_addr: ip,
        mode: AttachMode::Auto,
        replace: false,
        force: false,
        pass_kernel_addrs: false,
        frags: false,
    })?)
}

fn ready(what: &str) {
    eprintln!("baseline: ready: {what}");
}

fn xdp_drop(iface: &str, ip: Ipv4Addr, deadline: Option<Instant>) -> Result<serde_json::Value, BoxError> {
    let mut prog = attach(iface, ip)?;
    prog.set_drop(true)?;
    ready("xdp-drop");
    let t0 = Instant::now();
    while !stop(deadline) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = prog.stats()?;
    Ok(json!({ "receiver": "xdp-drop", "received": s.drop, "elapsed_s": t0.elapsed().as_secs_f64(), "xdp_prog": s }))
}

fn xsk_rxdrop(
    iface: &str,
    ip: Ipv4Addr,
    frames: u32,
    ring_size: u32,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, BoxError> {
    let mut prog = attach(iface, ip)?;
    let (umem, pool) = Umem::new(frames, 2048)?;
    let umem = Arc::new(umem);
    let mut cfg = XskConfig::new(iface, 0);
    cfg.bind_mode = BindMode::Auto;
    cfg.set_ring_sizes(ring_size);
    let mut dev = XskDevice::open(umem, &cfg)?;
    prog.register_xsk(0, dev.as_fd())?;
    let mut free: Vec<Frame> = std::iter::from_fn(|| pool.get()).collect();
    dev.fill(&mut free);
    let mut batch: Vec<Desc> = Vec::with_capacity(64);
    let mut received: u64 = 0;
    let mut polls: u64 = 0;
    ready("xsk-rxdrop");
    let t0 = Instant::now();
    loop {
        polls += 1;
        if polls.is_multiple_of(4096) && stop(deadline) {
            break;
        }
        dev.receive(64, &mut batch);
        if batch.is_empty() {
            dev.wake_rx();
            continue;
        }
        received += batch.len() as u64;
        free.extend(batch.drain(..).map(|d| d.frame));
        dev.fill(&mut free);
    }
    let x = dev.stats();
    Ok(json!({
        "receiver": "xsk-rxdrop", "received": received, "elapsed_s": t0.elapsed().as_secs_f64(),
        "xdp_statistics": x, "xdp_prog": prog.stats()?, "zero_copy": dev.zero_copy(),
    }))
}

/// UdpRcvbufErrors and UdpInErrors of this process's namespace.
fn udp_mib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/net/snmp").unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else { return (0, 0) };
    let get = |want: &str| {
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == want)
            .and_then(|(_, v)| v.parse().ok())
    };
    (get("RcvbufErrors").unwrap_or(0), get("InErrors").unwrap_or(0))
}

fn set_timeout(sock: &UdpSocket) -> Result<(), BoxError> {
    // A blocked call returns now and then to look at the stop flag.
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(())
}

fn udp_sink(
    bind: SocketAddrV4,
    batch: usize,
    rcvbuf: usize,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, BoxError> {
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    set_timeout(&sock)?;
    let fd = sock.as_raw_fd();
    if rcvbuf > 0 {
        let v = rcvbuf as libc::c_int;
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!("SO_RCVBUFFORCE: {}", std::io::Error::last_os_error()).into());
        }
    }
    let batch = batch.clamp(1, 1024);
    let mut bufs = vec![[0u8; 2048]; batch];
    let mut iovs: Vec<libc::iovec> =
        bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
    // SAFETY: mmsghdr is plain data; all-zero is a valid value before we set the iovecs.
    let mut msgs: Vec<libc::mmsghdr> = (0..batch).map(|_| unsafe { std::mem::zeroed() }).collect();
    for (m, iov) in msgs.iter_mut().zip(iovs.iter_mut()) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let (rcvbuf_errors0, in_errors0) = udp_mib();
    let mut received: u64 = 0;
    let mut calls: u64 = 0;
    ready("udp-sink");
    let t0 = Instant::now();
    while !stop(deadline) {
        // SAFETY: msgs holds `batch` headers whose iovecs point into `bufs`,
        // which outlive the call; a null timeout means none.
        let n =
            unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), batch as u32, libc::MSG_WAITFORONE, std::ptr::null_mut()) };
        calls += 1;
        if n > 0 {
            received += n as u64;
        }
    }
    let (rcvbuf_errors1, in_errors1) = udp_mib();
    Ok(json!({
        "receiver": "kernel-udp-recvmmsg", "received": received, "elapsed_s": t0.elapsed().as_secs_f64(),
        "recvmmsg_calls": calls, "batch": batch,
        "UdpRcvbufErrors": rcvbuf_errors1 - rcvbuf_errors0, "UdpInErrors": in_errors1 - in_errors0,
    }))
}

fn udp_echo(bind: SocketAddrV4, mode: EchoMode, deadline: Option<Instant>) -> Result<serde_json::Value, BoxError> {
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    match mode {
        EchoMode::Blocking => set_timeout(&sock)?,
        EchoMode::Busy => sock.set_nonblocking(true)?,
    }
    let mut buf = [0u8; 2048];
    let mut echoed: u64 = 0;
    let mut spins: u64 = 0;
    ready("udp-echo");
    let t0 = Instant::now();
    loop {
        spins += 1;
        if (mode == EchoMode::Blocking || spins.is_multiple_of(4096)) && stop(deadline) {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, peer)) => {
                if sock.send_to(&buf[..n], peer).is_ok() {
                    echoed += 1;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(format!("recvfrom: {e}").into()),
        }
    }
    Ok(json!({
        "receiver": match mode { EchoMode::Blocking => "kernel-udp-echo-blocking", EchoMode::Busy => "kernel-udp-echo-busy" },
        "echoed": echoed, "elapsed_s": t0.elapsed().as_secs_f64(),
    }))
}
