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
//!   on a non-blocking socket;
//! * `tcp-echo`: a kernel TCP echo server (RFC 862 over TCP), blocking in
//!   `read` or spinning on non-blocking sockets, beside `xsknet echo`'s TCP side;
//! * `tcp-sink`: a kernel TCP discard server (RFC 863) counting the bytes it
//!   reads, beside `xsknet sink`'s TCP side.
//!
//! And the TCP clients of the benchmark's TCP section, run in the peer namespace:
//!
//! * `tcp-rr`: one connection, fixed-size requests, each sent when the last
//!   answer is back, on a busy-polled non-blocking kernel socket; round trips in an
//!   HdrHistogram (written as an interval log with `--hlog`);
//! * `tcp-send`: one connection writing `--bytes` bytes, then a FIN, timed until
//!   the server's FIN: the sender whose bytes a sink counts;
//! * `tcp-connect`: connections opened at a fixed rate, each closed with a RST as
//!   soon as it is established: the share that succeed within `--timeout-ms` and
//!   the time `connect` took (a legitimate client beside a SYN flood).
//!
//! Each runs until SIGINT/SIGTERM or `--duration` (a client until it is done),
//! then prints one JSON object (to `--json PATH` as well if given).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
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
        /// Read the first 64 bytes of each packet (its headers), the least a
        /// receiver that looks at what it got does.
        #[arg(long)]
        touch: bool,
    },
    /// A bare AF_XDP UDP echo: each IPv4 UDP datagram off the rx ring goes back out of the same
    /// frame with its Ethernet and IPv4 addresses and UDP ports swapped (the checksums hold:
    /// swapping keeps the sums), anything else back to the fill ring. No stack: the round trip
    /// AF_XDP itself costs, the floor of any AF_XDP echo on the same path.
    XskEcho {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        ip: Ipv4Addr,
        /// The same defaults as `xsknet echo`, so that the two compare.
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
    /// A kernel TCP echo server: connections one after the other, each echoed until it closes.
    TcpEcho {
        #[arg(long)]
        bind: SocketAddrV4,
        #[arg(long, value_enum, default_value_t = EchoMode::Blocking)]
        mode: EchoMode,
    },
    /// A kernel TCP discard server: connections one after the other, read until they close.
    TcpSink {
        #[arg(long)]
        bind: SocketAddrV4,
    },
    /// One TCP connection, SIZE-byte requests each answered by SIZE bytes, busy-polled.
    TcpRr {
        #[arg(long)]
        connect: SocketAddrV4,
        /// Request (and answer) size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Round trips not recorded first (the connection's and caches' warm-up); at most
        /// the first tenth of --duration.
        #[arg(long, default_value_t = 1000)]
        warmup: u64,
        /// Write the round trips (ns) as an HdrHistogram interval log to PATH.
        #[arg(long)]
        hlog: Option<PathBuf>,
        /// The tag of the log's series.
        #[arg(long, default_value = "tcp-rr")]
        tag: String,
    },
    /// One TCP connection: write BYTES, shut the write side, wait for the server's FIN.
    TcpSend {
        #[arg(long)]
        connect: SocketAddrV4,
        #[arg(long)]
        bytes: u64,
        /// Bytes per write(2).
        #[arg(long, default_value_t = 65536)]
        chunk: usize,
    },
    /// Connections opened at RATE per second, one at a time, until --duration.
    TcpConnect {
        #[arg(long)]
        connect: SocketAddrV4,
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// A connect not established by then failed.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
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
        What::XskRxdrop { iface, ip, frames, ring_size, touch } => {
            xsk_rxdrop(&iface, ip, frames, ring_size, touch, deadline)
        }
        What::XskEcho { iface, ip, frames, ring_size } => xsk_echo(&iface, ip, frames, ring_size, deadline),
        What::UdpSink { bind, batch, rcvbuf } => udp_sink(bind, batch, rcvbuf, deadline),
        What::UdpEcho { bind, mode } => udp_echo(bind, mode, deadline),
        What::TcpEcho { bind, mode } => tcp_echo(bind, mode, deadline),
        What::TcpSink { bind } => tcp_sink(bind, deadline),
        What::TcpRr { connect, size, warmup, hlog, tag } => {
            tcp_rr(connect, size, warmup, hlog.as_deref(), &tag, deadline)
        }
        What::TcpSend { connect, bytes, chunk } => tcp_send(connect, bytes, chunk),
        What::TcpConnect { connect, rate, timeout_ms } => tcp_connect_rate(connect, rate, timeout_ms, deadline),
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

/// Turns the IPv4 UDP datagram in `pkt` (an Ethernet frame) around in place when it is
/// one `xsknet echo` would answer: unicast to us (`ip`), not a fragment, no IP options,
/// with IP and UDP lengths that fit the frame. False, and `pkt` untouched, for anything
/// else. The checksums stay valid: each sum covers the swapped fields both ways round
/// (RFC 1071 is commutative).
fn swap_udp(pkt: &mut [u8], ip: Ipv4Addr) -> bool {
    const ETH: usize = 14;
    let be16 = |p: &[u8], at: usize| usize::from(u16::from_be_bytes([p[at], p[at + 1]]));
    if pkt.len() < ETH + 20 + 8
        || pkt[0] & 1 != 0
        || pkt[12..14] != [0x08, 0x00]
        || pkt[ETH] != 0x45
        || pkt[ETH + 9] != 17
        || be16(pkt, ETH + 6) & 0x3fff != 0
        || pkt[ETH + 16..ETH + 20] != ip.octets()
    {
        return false;
    }
    let tot_len = be16(pkt, ETH + 2);
    let udp_len = be16(pkt, ETH + 24);
    if tot_len < 28 || ETH + tot_len > pkt.len() || udp_len < 8 || udp_len > tot_len - 20 {
        return false;
    }
    let (dst, src) = pkt[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let (saddr, daddr) = pkt[ETH + 12..ETH + 20].split_at_mut(4);
    saddr.swap_with_slice(daddr);
    let (sport, dport) = pkt[ETH + 20..ETH + 24].split_at_mut(2);
    sport.swap_with_slice(dport);
    true
}

/// Our XDP program on `iface` for `ip`, and an AF_XDP socket on its queue 0 with a UMEM of
/// `frames` 2 KiB frames and rings of `ring_size`, registered with the program, its fill ring
/// full: the program, the UMEM, the socket and the frames left over.
fn open_xsk(
    iface: &str,
    ip: Ipv4Addr,
    frames: u32,
    ring_size: u32,
) -> Result<(XdpProgram, Arc<Umem>, XskDevice, Vec<Frame>), BoxError> {
    let mut prog = attach(iface, ip)?;
    let (umem, pool) = Umem::new(frames, 2048)?;
    let umem = Arc::new(umem);
    let mut cfg = XskConfig::new(iface, 0);
    cfg.bind_mode = BindMode::Auto;
    cfg.set_ring_sizes(ring_size);
    let mut dev = XskDevice::open(umem.clone(), &cfg)?;
    prog.register_xsk(0, dev.as_fd())?;
    let mut free: Vec<Frame> = std::iter::from_fn(|| pool.get()).collect();
    dev.fill(&mut free);
    Ok((prog, umem, dev, free))
}

fn xsk_echo(
    iface: &str,
    ip: Ipv4Addr,
    frames: u32,
    ring_size: u32,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, BoxError> {
    let (prog, umem, mut dev, mut free) = open_xsk(iface, ip, frames, ring_size)?;
    let mut batch: Vec<Desc> = Vec::with_capacity(64);
    let mut tx: Vec<Desc> = Vec::with_capacity(64);
    let (mut echoed, mut other, mut tx_full, mut polls) = (0u64, 0u64, 0u64, 0u64);
    ready("xsk-echo");
    let t0 = Instant::now();
    loop {
        polls += 1;
        if polls.is_multiple_of(4096) && stop(deadline) {
            break;
        }
        dev.complete(&mut free);
        dev.receive(64, &mut batch);
        if batch.is_empty() {
            dev.wake_rx();
            continue;
        }
        let mut batch_len = 0;
        for mut d in batch.drain(..) {
            let at = d.offset as usize;
            let len = d.len as usize;
            let turned =
                d.nr_frags == 0 && umem.frame_mut(&mut d.frame).get_mut(at..at + len).is_some_and(|p| swap_udp(p, ip));
            if turned {
                batch_len += 1;
                tx.push(d);
            } else {
                other += 1;
                free.push(d.frame);
            }
        }
        dev.transmit(&mut tx);
        // What the tx ring had no room for is dropped, and counted.
        tx_full += tx.len() as u64;
        echoed += (batch_len - tx.len()) as u64;
        free.extend(tx.drain(..).map(|d| d.frame));
        dev.fill(&mut free);
    }
    Ok(json!({
        "server": "xsk-echo", "received": echoed + other + tx_full, "echoed": echoed, "other": other,
        "tx_ring_full": tx_full,
        "elapsed_s": t0.elapsed().as_secs_f64(), "xdp_statistics": dev.stats(), "xdp_prog": prog.stats()?,
    }))
}

fn xsk_rxdrop(
    iface: &str,
    ip: Ipv4Addr,
    frames: u32,
    ring_size: u32,
    touch: bool,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, BoxError> {
    let (prog, umem, mut dev, mut free) = open_xsk(iface, ip, frames, ring_size)?;
    let mut batch: Vec<Desc> = Vec::with_capacity(64);
    let mut received: u64 = 0;
    let mut polls: u64 = 0;
    let mut touched: u64 = 0;
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
        if touch {
            for d in &batch {
                let at = d.offset as usize;
                let bytes = umem.frame(&d.frame).get(at..at + (d.len as usize).min(64)).unwrap_or(&[]);
                touched = touched.wrapping_add(bytes.iter().map(|&b| u64::from(b)).sum::<u64>());
            }
        }
        free.extend(batch.drain(..).map(|d| d.frame));
        dev.fill(&mut free);
    }
    let x = dev.stats();
    Ok(json!({
        "receiver": "xsk-rxdrop", "received": received, "elapsed_s": t0.elapsed().as_secs_f64(),
        "xdp_statistics": x, "xdp_prog": prog.stats()?, "zero_copy": dev.zero_copy(),
        "touched": touch.then_some(touched),
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

/// Whether an I/O error only means "nothing yet" (a non-blocking socket, a timeout, a signal).
fn transient(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}

/// A kernel TCP listener on `bind` (backlog 511, as nginx's and `xsknet`'s default).
fn tcp_listen(bind: SocketAddrV4) -> Result<TcpListener, BoxError> {
    let l = TcpListener::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    Ok(l)
}

/// Waits for a connection, looking at the stop flag every 200 ms (`busy`: spinning).
fn tcp_accept(l: &TcpListener, busy: bool, deadline: Option<Instant>) -> Result<Option<TcpStream>, BoxError> {
    l.set_nonblocking(true)?;
    loop {
        if stop(deadline) {
            return Ok(None);
        }
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(busy)?;
                s.set_nodelay(true)?;
                if !busy {
                    s.set_read_timeout(Some(Duration::from_millis(200)))?;
                }
                return Ok(Some(s));
            }
            Err(e) if transient(&e) => {
                if !busy {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(e) => return Err(format!("accept: {e}").into()),
        }
    }
}

/// Writes all of `buf`, spinning on a full send buffer.
fn write_all_spin(s: &mut TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match s.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn tcp_echo(bind: SocketAddrV4, mode: EchoMode, deadline: Option<Instant>) -> Result<serde_json::Value, BoxError> {
    let l = tcp_listen(bind)?;
    let busy = mode == EchoMode::Busy;
    let mut buf = vec![0u8; 65536];
    let (mut connections, mut bytes, mut spins) = (0u64, 0u64, 0u64);
    ready("tcp-echo");
    let t0 = Instant::now();
    while let Some(mut s) = tcp_accept(&l, busy, deadline)? {
        connections += 1;
        loop {
            spins += 1;
            if (!busy || spins.is_multiple_of(4096)) && stop(deadline) {
                break;
            }
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if write_all_spin(&mut s, &buf[..n]).is_err() {
                        break;
                    }
                    bytes += n as u64;
                }
                Err(e) if transient(&e) => {}
                Err(_) => break, // reset by the peer: the next connection
            }
        }
    }
    Ok(json!({
        "receiver": match mode { EchoMode::Blocking => "kernel-tcp-echo-blocking", EchoMode::Busy => "kernel-tcp-echo-busy" },
        "connections": connections, "echoed_bytes": bytes, "elapsed_s": t0.elapsed().as_secs_f64(),
    }))
}

fn tcp_sink(bind: SocketAddrV4, deadline: Option<Instant>) -> Result<serde_json::Value, BoxError> {
    let l = tcp_listen(bind)?;
    let mut buf = vec![0u8; 1 << 18];
    let (mut connections, mut bytes) = (0u64, 0u64);
    ready("tcp-sink");
    let t0 = Instant::now();
    while let Some(mut s) = tcp_accept(&l, false, deadline)? {
        connections += 1;
        while !stop(deadline) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes += n as u64,
                Err(e) if transient(&e) => {}
                Err(_) => break,
            }
        }
    }
    Ok(json!({
        "receiver": "kernel-tcp-sink", "connections": connections, "received_bytes": bytes,
        "elapsed_s": t0.elapsed().as_secs_f64(),
    }))
}

fn tcp_connect(to: SocketAddrV4) -> Result<TcpStream, BoxError> {
    let s = TcpStream::connect_timeout(&to.into(), Duration::from_secs(5)).map_err(|e| format!("connect {to}: {e}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn tcp_rr(
    to: SocketAddrV4,
    size: usize,
    warmup: u64,
    hlog: Option<&std::path::Path>,
    tag: &str,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, BoxError> {
    use xsknet_bench::hist::{IntervalRecorder, Percentiles};
    let size = size.max(1);
    let mut s = tcp_connect(to)?;
    s.set_nonblocking(true)?;
    let req: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0u8; size];
    let mut rec: Option<IntervalRecorder> = None;
    let (mut done, mut mismatches) = (0u64, 0u64);
    ready("tcp-rr");
    let t0 = Instant::now();
    // A slow server must still leave nine tenths of the run recorded.
    let warm_until = deadline.map(|d| t0 + d.saturating_duration_since(t0) / 10);
    let mut warmed = 0;
    while !stop(deadline) {
        if rec.is_none() && (done >= warmup || warm_until.is_some_and(|w| Instant::now() >= w)) {
            rec = Some(IntervalRecorder::new(Instant::now(), Duration::from_secs(1)));
            warmed = done;
        }
        let sent_at = Instant::now();
        write_all_spin(&mut s, &req).map_err(|e| format!("write: {e}"))?;
        let mut got = 0;
        while got < size {
            match s.read(&mut buf[got..]) {
                Ok(0) => return Err(format!("{to} closed the connection after {done} round trips").into()),
                Ok(n) => got += n,
                Err(e) if transient(&e) => {
                    if got == 0 && sent_at.elapsed() > Duration::from_secs(5) {
                        return Err(format!("no answer from {to} in 5 s after {done} round trips").into());
                    }
                }
                Err(e) => return Err(format!("read: {e}").into()),
            }
        }
        let now = Instant::now();
        if buf != req {
            mismatches += 1;
        }
        if let Some(r) = rec.as_mut() {
            r.record(now.duration_since(sent_at).as_nanos() as u64);
            r.rotate(now);
        }
        done += 1;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let rec_done = rec.is_some();
    let log = rec.map(|r| r.finish(Instant::now()));
    let p = log.as_ref().map(|l| Percentiles::from_ns(&l.total)).unwrap_or_default();
    if let (Some(path), Some(l)) = (hlog, &log) {
        let note = format!("baseline tcp-rr {to}, {size}-byte requests, one connection, busy-polled");
        l.write_hlog(path, Some(tag), &[note]).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(json!({
        "client": "tcp-rr", "size": size, "round_trips": done, "warmup": if rec_done { warmed } else { done }, "mismatches": mismatches,
        "elapsed_s": elapsed, "rate_per_s": done as f64 / elapsed.max(1e-9), "rtt_us": p,
    }))
}

fn tcp_send(to: SocketAddrV4, bytes: u64, chunk: usize) -> Result<serde_json::Value, BoxError> {
    let chunk = chunk.clamp(1, 1 << 22);
    let buf: Vec<u8> = (0..chunk).map(|i| (i % 253) as u8).collect();
    let mut s = tcp_connect(to)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    ready("tcp-send");
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        s.write_all(&buf[..n]).map_err(|e| format!("write after {} bytes: {e}", bytes - left))?;
        left -= n as u64;
    }
    let written_s = t0.elapsed().as_secs_f64();
    s.shutdown(std::net::Shutdown::Write)?;
    // The server's FIN comes after it has read everything: the transfer's end.
    let mut sink = [0u8; 4096];
    loop {
        match s.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("waiting for the server's FIN: {e}").into()),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({
        "client": "tcp-send", "bytes": bytes, "chunk": chunk, "written_s": written_s, "elapsed_s": secs,
        "gbit_per_s": bytes as f64 * 8.0 / secs.max(1e-9) / 1e9,
    }))
}

fn tcp_connect_rate(
    to: SocketAddrV4,
    rate: u32,
    timeout_ms: u64,
    deadline: Option<Instant>,
) -> Result<serde_json::Value, BoxError> {
    use xsknet_bench::hist::{new_histogram, Percentiles};
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let mut h = new_histogram();
    let (mut attempts, mut ok) = (0u64, 0u64);
    let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
    ready("tcp-connect");
    let t0 = Instant::now();
    let mut next = t0;
    while !stop(deadline) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        next += gap;
        attempts += 1;
        let start = Instant::now();
        match TcpStream::connect_timeout(&to.into(), timeout) {
            Ok(s) => {
                h.saturating_record(start.elapsed().as_nanos() as u64);
                ok += 1;
                // SO_LINGER 0: close with a RST, so that neither side keeps the connection.
                let lin = libc::linger { l_onoff: 1, l_linger: 0 };
                // SAFETY: setsockopt on our own open socket with a pointer to a live linger and its size.
                unsafe {
                    libc::setsockopt(
                        s.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_LINGER,
                        (&lin as *const libc::linger).cast(),
                        std::mem::size_of::<libc::linger>() as libc::socklen_t,
                    );
                }
            }
            Err(e) => *errors.entry(format!("{:?}", e.kind())).or_default() += 1,
        }
    }
    Ok(json!({
        "client": "tcp-connect", "attempts": attempts, "established": ok,
        "success": if attempts > 0 { ok as f64 / attempts as f64 } else { 0.0 },
        "errors": errors, "timeout_ms": timeout_ms, "rate": rate,
        "elapsed_s": t0.elapsed().as_secs_f64(), "connect_us": Percentiles::from_ns(&h),
    }))
}

#[cfg(test)]
mod tests {
    use super::swap_udp;
    use std::net::Ipv4Addr;

    /// A 60-byte IPv4 UDP frame from 10.0.0.1:9000 to 10.0.0.2:7, with its checksums.
    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&9000u16.to_be_bytes());
        f[36..38].copy_from_slice(&7u16.to_be_bytes());
        f[38..40].copy_from_slice(&26u16.to_be_bytes());
        f[42..].fill(0x41);
        let ip = checksum(&f[14..34]);
        f[24..26].copy_from_slice(&ip.to_be_bytes());
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 17, 0, 26]);
        pseudo.extend_from_slice(&f[34..60]);
        let udp = checksum(&pseudo);
        f[40..42].copy_from_slice(&udp.to_be_bytes());
        f
    }

    /// RFC 1071's sum, folded and complemented.
    fn checksum(b: &[u8]) -> u16 {
        let mut s: u32 = b.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    #[test]
    fn a_udp_datagram_is_turned_around_with_valid_checksums() {
        let mut f = frame();
        assert!(swap_udp(&mut f, US));
        assert_eq!(&f[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 2]);
        assert_eq!(&f[26..34], &[10, 0, 0, 2, 10, 0, 0, 1]);
        assert_eq!(&f[34..38], &[0, 7, 0x23, 0x28]);
        // A header with its checksum in sums to zero (RFC 1071).
        assert_eq!(checksum(&f[14..34]), 0);
        let mut pseudo = f[26..34].to_vec();
        pseudo.extend_from_slice(&[0, 17, 0, 26]);
        pseudo.extend_from_slice(&f[34..60]);
        assert_eq!(checksum(&pseudo), 0);
    }

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn anything_else_is_left_alone() {
        let orig = frame();
        let cases: [(&str, usize, u8); 9] = [
            ("not IPv4", 12, 0x86),
            ("IP options", 14, 0x46),
            ("not UDP", 23, 6),
            ("broadcast or multicast MAC", 0, 0x01),
            ("a first fragment (MF)", 20, 0x20),
            ("a later fragment (offset)", 21, 0x01),
            ("not our address", 33, 3),
            ("IP total length past the frame", 17, 47),
            ("UDP length past the IP datagram", 39, 27),
        ];
        for (what, at, v) in cases {
            let mut f = orig.clone();
            f[at] = v;
            let before = f.clone();
            assert!(!swap_udp(&mut f, US), "{what}: byte {at} = {v:#x}");
            assert_eq!(f, before, "{what}");
        }
        let mut short_udp = orig.clone();
        short_udp[38..40].copy_from_slice(&7u16.to_be_bytes());
        assert!(!swap_udp(&mut short_udp, US), "UDP length below its header");
        assert!(!swap_udp(&mut orig.clone()[..41], US), "shorter than its headers");
        // DF alone is not a fragment.
        let mut df = orig.clone();
        df[20] = 0x40;
        assert!(swap_udp(&mut df, US));
        // Ethernet padding past the IP datagram is allowed, as in ip_rcv.
        let mut padded = orig.clone();
        padded[16..18].copy_from_slice(&40u16.to_be_bytes());
        padded[38..40].copy_from_slice(&20u16.to_be_bytes());
        assert!(swap_udp(&mut padded, US));
    }
}
