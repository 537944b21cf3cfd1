//! A TCP client on xsknet (an active open, RFC 9293 §3.5): brings the device
//! up as the `xsknet` command does ([`xsknet::device::open`]), connects to a
//! server — the kernel's, on the other end of the link — sends one HTTP/1.0
//! GET, reads the reply to the server's FIN, and prints the status line, the
//! body's length, the connection's `TCP_INFO` and where every UMEM frame is.
//! The application drives the stack itself (run to completion): every call
//! is non-blocking, and `poll_fds` turns the loop while it waits.
//!
//! Run it as root in a namespace pair (the kernel peer needs `ethtool -K
//! <peer> tx off` on veth):
//!
//! ```text
//! ip netns add a; ip netns add b
//! ip link add va netns a type veth peer name vb netns b
//! ip -n a link set va up; ip -n b link set vb up; ip -n b addr add 10.77.0.1/24 dev vb
//! ip netns exec b ethtool -K vb tx off
//! ip netns exec b python3 -m http.server --bind 10.77.0.1 8000 &
//! cargo build --release --example tcp_client
//! ip netns exec a target/release/examples/tcp_client --iface va --ip 10.77.0.2/24 \
//!     --connect 10.77.0.1:8000 --path / --output /tmp/body
//! ```
//!
//! `--output` writes the body to a file (to compare with `sha256sum`).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use xsknet::cli::parse_cidr;
use xsknet::device::{self, DeviceOptions};
use xsknet::socket::{POLLERR, POLLHUP, POLLIN, POLLOUT};
use xsknet::xdp::AttachMode;
use xsknet::xsk::BindMode;
use xsknet::{Errno, PollFd, SockType, Stack, StackConfig};

/// Fetch one URL path over TCP from xsknet.
#[derive(Parser)]
struct Args {
    /// Interface to use (no kernel address needed on it).
    #[arg(long)]
    iface: String,
    /// Our address and prefix, e.g. 10.77.0.2/24.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    ip: (Ipv4Addr, u8),
    /// The server, ADDR:PORT.
    #[arg(long)]
    connect: SocketAddrV4,
    /// The path to GET.
    #[arg(long, default_value = "/")]
    path: String,
    /// Write the body here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Give up after SECS seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
}

type BoxError = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcp_client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), BoxError> {
    let (addr, prefix_len) = args.ip;
    let dev = device::open(&DeviceOptions {
        ifname: args.iface.clone(),
        queue: 0,
        ipv4_addr: addr,
        xdp_mode: AttachMode::Auto,
        bind_mode: BindMode::Auto,
        frames: 4096,
        frame_size: 2048,
        ring_size: 1024,
        replace: false,
        force: false,
        pass_kernel_addrs: false,
        multi_buffer: device::MultiBuffer::Auto,
    })?;
    let mut cfg = StackConfig::new(dev.mac, addr, prefix_len);
    cfg.mtu = dev.mtu as usize;
    let mut stack = Stack::new(dev.xsk, dev.umem, Arc::new(dev.pool), cfg);
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    let left = || deadline.saturating_duration_since(Instant::now());

    // connect(): EINPROGRESS, then POLLOUT once the handshake is done (or
    // POLLERR when it failed: SO_ERROR says why).
    let fd = stack.socket(SockType::Stream)?;
    match stack.connect(fd, args.connect) {
        Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(format!("connect {}: {e}", args.connect).into()),
        Ok(()) => {}
    }
    let mut p = [PollFd::new(fd, POLLOUT)];
    if stack.poll_fds(&mut p, Some(left())) == 0 {
        return Err(format!("connect {}: timed out", args.connect).into());
    }
    if let Some(e) = stack.socket_error(fd)? {
        return Err(format!("connect {}: {e} ({})", args.connect, e.name()).into());
    }
    println!("connected {} -> {}", stack.local_addr(fd)?, stack.peer_addr(fd)?);

    let request =
        format!("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: xsknet-tcp_client\r\n\r\n", args.path, args.connect);
    let mut sent = 0;
    while sent < request.len() {
        match stack.send(fd, &request.as_bytes()[sent..]) {
            Ok(n) => sent += n,
            Err(Errno::EAGAIN) => {
                stack.poll_fds(&mut [PollFd::new(fd, POLLOUT)], Some(left()));
            }
            Err(e) => return Err(format!("send: {e}").into()),
        }
        if left().is_zero() {
            return Err("send: timed out".into());
        }
    }

    // HTTP/1.0: the server closes after the reply; read to its FIN.
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stack.recv(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => {
                if left().is_zero() {
                    return Err(format!("recv: timed out after {} bytes", reply.len()).into());
                }
                stack.poll_fds(&mut [PollFd::new(fd, POLLIN | POLLERR | POLLHUP)], Some(left()));
            }
            Err(e) => return Err(format!("recv after {} bytes: {e}", reply.len()).into()),
        }
    }
    let info = stack.tcp_info(fd)?;
    let head_end = reply.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of the header section")?;
    let body = &reply[head_end + 4..];
    let status_line = String::from_utf8_lossy(reply.split(|&b| b == b'\r').next().unwrap_or(b""));
    println!("{status_line}");
    println!("body: {} bytes", body.len());
    if let Some(path) = &args.output {
        std::fs::write(path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!(
        "tcp_info: state {} rtt {} µs (var {}) rto {} µs cwnd {} ssthresh {} mss {}/{} segs {} out {} in, \
         bytes {} acked {} received, retrans {}",
        info.state.name(),
        info.rtt_us,
        info.rttvar_us,
        info.rto_us,
        info.snd_cwnd,
        info.snd_ssthresh,
        info.snd_mss,
        info.rcv_mss,
        info.segs_out,
        info.segs_in,
        info.bytes_acked,
        info.bytes_received,
        info.total_retrans
    );

    // close(): our FIN; let the handshake finish before the device goes.
    stack.close(fd)?;
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        stack.poll(Instant::now());
    }
    stack.release_backlog();
    let c = stack.frame_census();
    if c.accounted() == c.total {
        println!("frames: all accounted for ({} in UMEM)", c.total);
    } else {
        return Err(format!("frames: {} of {} accounted for: {c:?}", c.accounted(), c.total).into());
    }
    drop(stack);
    drop(dev.xdp);
    Ok(())
}
