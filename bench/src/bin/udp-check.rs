//! `udp-check`: the kernel's side of an echo conversation.
//!
//! A plain kernel UDP socket (the peer the demo and the privileged tests put in the other
//! namespace) that sends datagrams of chosen sizes to an echo service, checks that every echo
//! comes back byte for byte, and times each round trip. With `--closed-port` it also checks the
//! other half of a UDP service's manners: a datagram to a port nobody has bound must draw an ICMP
//! port unreachable, which Linux reports as `ECONNREFUSED` on the next call on a *connected*
//! socket (`__udp4_lib_err` → `sk->sk_err`, see `ip_icmp_error`/`udp_err` in net/ipv4/udp.c).
//!
//! Exit status: 0 when every echo matched (and, with `--closed-port`, `ECONNREFUSED` was seen);
//! 1 when a check failed; 2 for a usage error; 3 when the socket could not be set up.
//!
//! The payload of each datagram depends on its size and sequence number (see [`fill_payload`]),
//! so an echo of the wrong datagram, a truncated one or a corrupted one never passes, and a late
//! echo of an earlier, timed-out datagram is recognised as late rather than as a mismatch.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: udp-check --to ADDR:PORT [--sizes LIST] [--count N] [--timeout-ms MS]
                 [--closed-port PORT] [--bind ADDR:PORT] [--json]

  --to ADDR:PORT      echo service to talk to (IPv4 or [IPv6]:port)
  --sizes LIST        payload sizes: comma-separated sizes and inclusive ranges,
                      e.g. 1,64,512,1472 or 1..1472 or 0,1..16,1472 (default 1,64,512,1472)
  --count N           datagrams per size (default 10)
  --timeout-ms MS     how long to wait for each echo (default 500)
  --closed-port PORT  also send one datagram to PORT and expect ECONNREFUSED
                      (the kernel's report of the ICMP port unreachable)
  --bind ADDR:PORT    local address to bind (default: any address, any port)
  --json              print one JSON object instead of the table

exit status: 0 all echoes byte-exact (and ECONNREFUSED seen with --closed-port),
             1 a check failed, 2 usage error, 3 socket setup failed";

/// Largest UDP payload over IPv4 (65535 - 20 IP - 8 UDP) and over IPv6 (65535 - 8; the
/// 40-byte IPv6 header is not part of the payload length).
const MAX_PAYLOAD_V4: usize = 65_507;
const MAX_PAYLOAD_V6: usize = 65_527;
/// Rows of the per-size table beyond which only failing sizes are listed.
const MAX_TABLE_ROWS: usize = 32;
/// How many timed-out datagrams we remember to recognise their late echoes.
const LATE_WINDOW: usize = 64;
/// How many mismatches are described in detail on stderr.
const MAX_MISMATCH_REPORTS: usize = 5;

// ---------------------------------------------------------------------------------------------
// Payload pattern
// ---------------------------------------------------------------------------------------------

/// Length of the ASCII tag that opens payloads of at least this many bytes: `<ssss:qqqqqqqq> `,
/// size and sequence number in hex, so a datagram is recognisable in `tcpdump -X`.
pub const TAG_LEN: usize = 16;

/// The byte at `index` of the pattern for datagram (`size`, `seq`). Multipliers are odd, so
/// over 256 consecutive sequence numbers (or sizes) every byte position takes every value:
/// even a 1-byte datagram tells neighbouring sequence numbers apart.
pub fn pattern_byte(size: usize, seq: u32, index: usize) -> u8 {
    (seq.wrapping_mul(31)).wrapping_add((size as u32).wrapping_mul(7)).wrapping_add((index as u32).wrapping_mul(13))
        as u8
}

/// Fills `buf` (whose length is the datagram size) with the payload of datagram number `seq`.
/// Payloads of [`TAG_LEN`] bytes or more start with the readable tag; the rest, and whole
/// shorter payloads, are [`pattern_byte`].
pub fn fill_payload(buf: &mut [u8], seq: u32) {
    let size = buf.len();
    let mut start = 0;
    if size >= TAG_LEN {
        // Sizes are at most 65527 = 0xfff7: four hex digits are enough.
        let tag = format!("<{:04x}:{:08x}> ", size & 0xffff, seq);
        debug_assert_eq!(tag.len(), TAG_LEN);
        buf[..TAG_LEN].copy_from_slice(tag.as_bytes());
        start = TAG_LEN;
    }
    for (i, b) in buf.iter_mut().enumerate().skip(start) {
        *b = pattern_byte(size, seq, i);
    }
}

/// Where two payloads first differ, for the error line.
fn first_difference(sent: &[u8], got: &[u8]) -> String {
    match sent.iter().zip(got).position(|(a, b)| a != b) {
        Some(i) => format!("first difference at byte {i} (sent 0x{:02x}, got 0x{:02x})", sent[i], got[i]),
        None if sent.len() == got.len() => "identical".to_string(),
        None => format!("identical for the first {} bytes", sent.len().min(got.len())),
    }
}

// ---------------------------------------------------------------------------------------------
// Percentiles
// ---------------------------------------------------------------------------------------------

/// Nearest-rank percentile of an ascending slice: the smallest sample such that at least `p`
/// percent of the samples are no greater than it. `p` = 0 gives the minimum, 100 the maximum.
/// `None` for no samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// min / p50 / p90 / p99 / max of a set of round trips, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttSummary {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl RttSummary {
    /// Sorts `samples` in place and summarises them; `None` when there are none.
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        samples.sort_unstable();
        Some(RttSummary {
            min: percentile(samples, 0.0)?,
            p50: percentile(samples, 50.0)?,
            p90: percentile(samples, 90.0)?,
            p99: percentile(samples, 99.0)?,
            max: percentile(samples, 100.0)?,
        })
    }

    fn fields_us(&self) -> [f64; 5] {
        [self.min, self.p50, self.p90, self.p99, self.max].map(|ns| ns as f64 / 1000.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Args {
    to: SocketAddr,
    sizes: Vec<usize>,
    count: u32,
    timeout: Duration,
    closed_port: Option<u16>,
    bind: Option<SocketAddr>,
    json: bool,
}

/// Parses `1,64,512` / `1..1472` / `0,1..16,1472` into a list of sizes, in the order given.
pub fn parse_sizes(spec: &str) -> Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    for item in spec.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("empty item in size list '{spec}'"));
        }
        let num = |s: &str| s.trim().parse::<usize>().map_err(|_| format!("'{s}' is not a size in '{spec}'"));
        if let Some((lo, hi)) = item.split_once("..") {
            let (lo, hi) = (num(lo)?, num(hi.strip_prefix('=').unwrap_or(hi))?);
            if lo > hi {
                return Err(format!("range {item} runs backwards"));
            }
            sizes.extend(lo..=hi);
        } else {
            sizes.push(num(item)?);
        }
    }
    Ok(sizes)
}

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut to = None;
    let mut sizes = vec![1, 64, 512, 1472];
    let mut count = 10u32;
    let mut timeout_ms = 500u64;
    let mut closed_port: Option<u16> = None;
    let mut bind: Option<SocketAddr> = None;
    let mut json = false;

    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        // Accept both `--opt value` and `--opt=value`.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{name} needs {what}"))
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--to" => {
                let v = value("ADDR:PORT")?;
                to = Some(v.parse().map_err(|e| format!("--to: '{v}' is not ADDR:PORT ({e})"))?);
            }
            "--sizes" => sizes = parse_sizes(&value("a size list")?).map_err(|e| format!("--sizes: {e}"))?,
            "--count" => {
                let v = value("a number")?;
                count = v.parse().map_err(|_| format!("--count: '{v}' is not a number"))?;
                if count == 0 {
                    return Err("--count must be at least 1".into());
                }
            }
            "--timeout-ms" => {
                let v = value("milliseconds")?;
                timeout_ms = v.parse().map_err(|_| format!("--timeout-ms: '{v}' is not a number"))?;
                if timeout_ms == 0 {
                    return Err("--timeout-ms must be at least 1".into());
                }
            }
            "--closed-port" => {
                let v = value("a port")?;
                closed_port = Some(v.parse().map_err(|_| format!("--closed-port: '{v}' is not a port"))?);
            }
            "--bind" => {
                let v = value("ADDR:PORT")?;
                bind = Some(v.parse().map_err(|e| format!("--bind: '{v}' is not ADDR:PORT ({e})"))?);
            }
            "--json" => {
                if inline.is_some() {
                    return Err("--json takes no value".into());
                }
                json = true;
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }

    let to: SocketAddr = to.ok_or("--to ADDR:PORT is required")?;
    let max = if to.is_ipv4() { MAX_PAYLOAD_V4 } else { MAX_PAYLOAD_V6 };
    if let Some(&big) = sizes.iter().find(|&&s| s > max) {
        return Err(format!("--sizes: {big} bytes is more than a UDP datagram can carry ({max})"));
    }
    if sizes.is_empty() {
        return Err("--sizes: no sizes".into());
    }
    if let Some(b) = bind {
        if b.is_ipv4() != to.is_ipv4() {
            return Err("--bind and --to must be the same address family".into());
        }
    }
    Ok(Some(Args { to, sizes, count, timeout: Duration::from_millis(timeout_ms), closed_port, bind, json }))
}

// ---------------------------------------------------------------------------------------------
// The conversation
// ---------------------------------------------------------------------------------------------

/// What happened to the datagrams of one size, or of all sizes.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    sent: u64,
    /// Echo came back byte-exact.
    ok: u64,
    /// Something else came back: wrong bytes, wrong length.
    mismatches: u64,
    /// Nothing came back in time.
    timeouts: u64,
    /// `ECONNREFUSED`: an ICMP port unreachable instead of an echo.
    refused: u64,
    /// Echoes of earlier, timed-out datagrams that turned up later (not failures in themselves).
    late: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.ok += o.ok;
        self.mismatches += o.mismatches;
        self.timeouts += o.timeouts;
        self.refused += o.refused;
        self.late += o.late;
    }

    fn all_ok(&self) -> bool {
        self.sent > 0 && self.ok == self.sent
    }
}

#[derive(Default, Debug)]
struct SizeResult {
    size: usize,
    c: Counts,
    rtt_ns: Vec<u64>,
}

enum ClosedPort {
    Refused,
    Timeout,
    Other(String),
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn is_refused(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECONNREFUSED)
}

fn unspecified(to: &SocketAddr) -> SocketAddr {
    let ip = if to.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) };
    SocketAddr::new(ip, 0)
}

fn connected_socket(bind: SocketAddr, to: SocketAddr) -> Result<UdpSocket, String> {
    let sock = UdpSocket::bind(bind).map_err(|e| format!("cannot bind a UDP socket to {bind}: {e}"))?;
    sock.connect(to).map_err(|e| format!("cannot connect the UDP socket to {to}: {e} (no route?)"))?;
    Ok(sock)
}

/// Sends `count` datagrams of each size, one at a time, and waits for each echo.
fn run_echoes(sock: &UdpSocket, args: &Args, mismatch_lines: &mut Vec<String>) -> Result<Vec<SizeResult>, String> {
    let mut rx = vec![0u8; 65_536];
    let mut results = Vec::with_capacity(args.sizes.len());
    // Payloads that timed out: a later recv may still bring their echo.
    let mut overdue: VecDeque<Vec<u8>> = VecDeque::with_capacity(LATE_WINDOW);
    let mut seq: u32 = 0;

    for &size in &args.sizes {
        let mut r = SizeResult { size, rtt_ns: Vec::with_capacity(args.count as usize), ..Default::default() };
        let mut tx = vec![0u8; size];
        for _ in 0..args.count {
            seq = seq.wrapping_add(1);
            fill_payload(&mut tx, seq);
            sock.set_read_timeout(Some(args.timeout)).map_err(|e| format!("setsockopt(SO_RCVTIMEO): {e}"))?;
            let start = Instant::now();
            let deadline = start + args.timeout;
            r.c.sent += 1;
            match sock.send(&tx) {
                Ok(n) if n == size => {}
                Ok(n) => return Err(format!("send of {size} bytes sent only {n}")),
                Err(e) if is_refused(&e) => {
                    // The ICMP error of an earlier datagram surfaced on this send.
                    r.c.refused += 1;
                    continue;
                }
                Err(e) => return Err(format!("send of {size} bytes to {}: {e}", args.to)),
            }
            loop {
                match sock.recv(&mut rx) {
                    Ok(n) => {
                        let rtt = start.elapsed();
                        let got = &rx[..n];
                        if got == tx.as_slice() {
                            r.c.ok += 1;
                            r.rtt_ns.push(rtt.as_nanos() as u64);
                            break;
                        }
                        if let Some(pos) = overdue.iter().position(|p| p.as_slice() == got) {
                            overdue.remove(pos);
                            r.c.late += 1;
                        } else {
                            r.c.mismatches += 1;
                            if mismatch_lines.len() < MAX_MISMATCH_REPORTS {
                                mismatch_lines.push(format!(
                                    "mismatch: size {size} seq {seq}: sent {size} bytes, got {n}; {}",
                                    first_difference(&tx, got)
                                ));
                            }
                            break;
                        }
                        // A late echo: keep waiting for ours until the deadline.
                        let now = Instant::now();
                        if now >= deadline {
                            r.c.timeouts += 1;
                            remember(&mut overdue, &tx);
                            break;
                        }
                        sock.set_read_timeout(Some(deadline - now))
                            .map_err(|e| format!("setsockopt(SO_RCVTIMEO): {e}"))?;
                    }
                    Err(e) if is_timeout(&e) => {
                        r.c.timeouts += 1;
                        remember(&mut overdue, &tx);
                        break;
                    }
                    Err(e) if is_refused(&e) => {
                        r.c.refused += 1;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("recv from {}: {e}", args.to)),
                }
            }
        }
        results.push(r);
    }
    Ok(results)
}

fn remember(overdue: &mut VecDeque<Vec<u8>>, payload: &[u8]) {
    if overdue.len() == LATE_WINDOW {
        overdue.pop_front();
    }
    overdue.push_back(payload.to_vec());
}

/// One datagram from a fresh connected socket to `port`; the kernel should turn the ICMP port
/// unreachable that comes back into `ECONNREFUSED` on the next `recv`.
fn probe_closed_port(args: &Args, port: u16) -> Result<ClosedPort, String> {
    let target = SocketAddr::new(args.to.ip(), port);
    let sock =
        connected_socket(args.bind.map(|b| SocketAddr::new(b.ip(), 0)).unwrap_or(unspecified(&args.to)), target)?;
    sock.set_read_timeout(Some(args.timeout)).map_err(|e| format!("setsockopt(SO_RCVTIMEO): {e}"))?;
    match sock.send(b"udp-check closed-port probe") {
        Ok(_) => {}
        Err(e) if is_refused(&e) => return Ok(ClosedPort::Refused),
        Err(e) => return Err(format!("send to {target}: {e}")),
    }
    let mut buf = [0u8; 2048];
    loop {
        return Ok(match sock.recv(&mut buf) {
            Ok(n) => ClosedPort::Other(format!("got a {n}-byte reply instead: is port {port} open?")),
            Err(e) if is_refused(&e) => ClosedPort::Refused,
            Err(e) if is_timeout(&e) => ClosedPort::Timeout,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => ClosedPort::Other(format!("recv gave '{e}', not ECONNREFUSED")),
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

fn totals(results: &[SizeResult]) -> (Counts, Option<RttSummary>) {
    let mut c = Counts::default();
    results.iter().for_each(|r| c.add(&r.c));
    let mut all: Vec<u64> = results.iter().flat_map(|r| r.rtt_ns.iter().copied()).collect();
    (c, RttSummary::of(&mut all))
}

fn row(out: &mut String, label: &str, c: &Counts, rtt: Option<RttSummary>) {
    let Counts { sent, ok, mismatches, timeouts, refused, late } = *c;
    let _ = write!(out, "{label:>6} {sent:>7} {ok:>7} {mismatches:>8} {timeouts:>8} {refused:>7} {late:>5}");
    match rtt {
        Some(s) => {
            for v in s.fields_us() {
                let _ = write!(out, " {v:>8.1}");
            }
        }
        None => {
            for _ in 0..5 {
                let _ = write!(out, " {:>8}", "-");
            }
        }
    }
    out.push('\n');
}

fn size_list_text(sizes: &[usize]) -> String {
    // Compress runs: 1..1472 reads better than 1472 numbers.
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sizes.len() {
        let mut j = i;
        while j + 1 < sizes.len() && sizes[j + 1] == sizes[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}..{}", sizes[i], sizes[j]));
        } else {
            parts.extend(sizes[i..=j].iter().map(|s| s.to_string()));
        }
        i = j + 1;
    }
    parts.join(",")
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("udp-check: error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let sock = match connected_socket(args.bind.unwrap_or(unspecified(&args.to)), args.to) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-check: error: {e}");
            return ExitCode::from(3);
        }
    };
    let local = sock.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "?".into());

    let mut mismatch_lines = Vec::new();
    let mut results = match run_echoes(&sock, &args, &mut mismatch_lines) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("udp-check: error: {e}");
            return ExitCode::from(3);
        }
    };
    let closed = match args.closed_port.map(|p| probe_closed_port(&args, p)).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("udp-check: error: closed-port probe: {e}");
            return ExitCode::from(3);
        }
    };

    let (t, t_rtt) = totals(&results);
    let echoes_pass = t.all_ok();
    let closed_pass = !matches!(closed, Some(ClosedPort::Timeout) | Some(ClosedPort::Other(_)));
    let pass = echoes_pass && closed_pass;

    for line in &mismatch_lines {
        eprintln!("udp-check: {line}");
    }

    if args.json {
        let per_size: Vec<serde_json::Value> = results
            .iter_mut()
            .map(|r| {
                let rtt = RttSummary::of(&mut r.rtt_ns);
                let c = &r.c;
                serde_json::json!({
                    "size": r.size, "sent": c.sent, "ok": c.ok, "mismatches": c.mismatches,
                    "timeouts": c.timeouts, "refused": c.refused, "late": c.late,
                    "rtt_us": rtt.map(rtt_json),
                })
            })
            .collect();
        let closed_json = args.closed_port.map(|port| {
            let (refused, detail) = match &closed {
                Some(ClosedPort::Refused) => (true, "ECONNREFUSED".to_string()),
                Some(ClosedPort::Timeout) => (false, format!("no ECONNREFUSED within {} ms", args.timeout.as_millis())),
                Some(ClosedPort::Other(s)) => (false, s.clone()),
                None => (false, String::new()),
            };
            serde_json::json!({ "port": port, "econnrefused": refused, "detail": detail })
        });
        let obj = serde_json::json!({
            "to": args.to.to_string(),
            "local": local,
            "sizes": size_list_text(&args.sizes),
            "sizes_tried": args.sizes.len(),
            "count_per_size": args.count,
            "timeout_ms": args.timeout.as_millis() as u64,
            "sent": t.sent, "ok": t.ok, "mismatches": t.mismatches, "timeouts": t.timeouts,
            "refused": t.refused, "late": t.late,
            "rtt_us": t_rtt.map(rtt_json),
            "per_size": per_size,
            "closed_port": closed_json,
            "mismatch_details": mismatch_lines,
            "pass": pass,
        });
        println!("{obj}");
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "udp-check: {} from {}: {} size(s) [{}] x {}, timeout {} ms",
            args.to,
            local,
            args.sizes.len(),
            size_list_text(&args.sizes),
            args.count,
            args.timeout.as_millis()
        );
        let _ = writeln!(
            out,
            "{:>6} {:>7} {:>7} {:>8} {:>8} {:>7} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "size",
            "sent",
            "ok",
            "mismatch",
            "timeout",
            "refused",
            "late",
            "min_us",
            "p50_us",
            "p90_us",
            "p99_us",
            "max_us"
        );
        let many = results.len() > MAX_TABLE_ROWS;
        let mut hidden = 0;
        for r in results.iter_mut() {
            if many && r.c.all_ok() {
                hidden += 1;
                continue;
            }
            let rtt = RttSummary::of(&mut r.rtt_ns);
            row(&mut out, &r.size.to_string(), &r.c, rtt);
        }
        if hidden > 0 {
            let _ = writeln!(out, "{:>6} ({hidden} sizes with every echo byte-exact not listed)", "...");
        }
        row(&mut out, "all", &t, t_rtt);
        if let (Some(port), Some(c)) = (args.closed_port, &closed) {
            let _ = match c {
                ClosedPort::Refused => {
                    writeln!(out, "closed port {port}: ECONNREFUSED (ICMP port unreachable came back) - ok")
                }
                ClosedPort::Timeout => writeln!(
                    out,
                    "closed port {port}: no ECONNREFUSED within {} ms (no ICMP port unreachable) - FAIL",
                    args.timeout.as_millis()
                ),
                ClosedPort::Other(s) => writeln!(out, "closed port {port}: {s} - FAIL"),
            };
        }
        let _ = writeln!(
            out,
            "udp-check: {} ({}/{} echoes byte-exact{})",
            if pass { "PASS" } else { "FAIL" },
            t.ok,
            t.sent,
            match (args.closed_port, closed_pass) {
                (None, _) => "",
                (Some(_), true) => ", port unreachable seen",
                (Some(_), false) => ", port unreachable NOT seen",
            }
        );
        print!("{out}");
    }

    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn rtt_json(s: RttSummary) -> serde_json::Value {
    let [min, p50, p90, p99, max] = s.fields_us();
    serde_json::json!({ "min": min, "p50": p50, "p90": p90, "p99": p99, "max": max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(size: usize, seq: u32) -> Vec<u8> {
        let mut b = vec![0u8; size];
        fill_payload(&mut b, seq);
        b
    }

    #[test]
    fn payload_is_deterministic_and_sized() {
        for size in [0, 1, 15, 16, 17, 64, 1472] {
            assert_eq!(payload(size, 9).len(), size);
            assert_eq!(payload(size, 9), payload(size, 9));
        }
    }

    #[test]
    fn payload_carries_readable_tag() {
        assert_eq!(&payload(1472, 7)[..TAG_LEN], b"<05c0:00000007> ");
        assert_eq!(&payload(16, 0xdeadbeef)[..], b"<0010:deadbeef> ");
        // Below the tag length the pattern fills everything.
        let p = payload(15, 3);
        assert!(p.iter().enumerate().all(|(i, &b)| b == pattern_byte(15, 3, i)));
    }

    #[test]
    fn payload_depends_on_sequence_even_for_one_byte() {
        // 256 consecutive sequence numbers give 256 different single bytes.
        let mut seen = [false; 256];
        for seq in 1000..1256u32 {
            let b = payload(1, seq)[0];
            assert!(!seen[b as usize], "seq {seq} repeats byte {b}");
            seen[b as usize] = true;
        }
        for size in [1, 2, 8, 16, 64, 1472] {
            assert_ne!(payload(size, 1), payload(size, 2), "size {size}");
        }
    }

    #[test]
    fn payload_depends_on_size() {
        // A truncated echo of a longer datagram does not pass as the shorter one.
        for (a, b) in [(1, 2), (63, 64), (64, 65), (1471, 1472)] {
            assert_ne!(payload(a, 5)[..], payload(b, 5)[..a], "sizes {a} and {b}");
        }
    }

    #[test]
    fn payload_is_not_constant_within_a_datagram() {
        let p = payload(64, 1);
        assert!(p[TAG_LEN..].windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn first_difference_names_the_byte() {
        assert_eq!(first_difference(b"abc", b"abd"), "first difference at byte 2 (sent 0x63, got 0x64)");
        assert_eq!(first_difference(b"abc", b"ab"), "identical for the first 2 bytes");
        assert_eq!(first_difference(b"abc", b"abc"), "identical");
    }

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.5), Some(100));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[42], 0.0), Some(42));
        assert_eq!(percentile(&[42], 99.0), Some(42));
        // Ten samples: p50 is the 5th, p90 the 9th, p99 the 10th.
        let v: Vec<u64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(100));
    }

    #[test]
    fn rtt_summary_sorts_its_input() {
        let mut v = vec![5, 3, 9, 1, 7];
        let s = RttSummary::of(&mut v).unwrap();
        assert_eq!(s, RttSummary { min: 1, p50: 5, p90: 9, p99: 9, max: 9 });
        assert_eq!(RttSummary::of(&mut []), None);
    }

    #[test]
    fn sizes_lists_and_ranges() {
        assert_eq!(parse_sizes("1,64,512,1472").unwrap(), vec![1, 64, 512, 1472]);
        assert_eq!(parse_sizes("1..4").unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(parse_sizes("0, 3..=5 ,9").unwrap(), vec![0, 3, 4, 5, 9]);
        assert_eq!(parse_sizes("1..1472").unwrap().len(), 1472);
        assert!(parse_sizes("5..1").is_err());
        assert!(parse_sizes("1,,2").is_err());
        assert!(parse_sizes("abc").is_err());
    }

    #[test]
    fn size_list_is_compressed_for_display() {
        assert_eq!(size_list_text(&[1, 2, 3, 4, 64, 65, 512]), "1..4,64,65,512");
    }

    #[test]
    fn args_parse_and_validate() {
        let a = |s: &str| parse_args(s.split_whitespace().map(String::from));
        let args =
            a("--to 10.77.0.2:7 --sizes 1..3 --count 2 --timeout-ms=100 --closed-port 9 --json").unwrap().unwrap();
        assert_eq!(args.to, "10.77.0.2:7".parse().unwrap());
        assert_eq!(args.sizes, vec![1, 2, 3]);
        assert_eq!(
            (args.count, args.timeout, args.closed_port, args.json),
            (2, Duration::from_millis(100), Some(9), true)
        );
        assert!(a("--help").unwrap().is_none());
        assert!(a("--sizes 1").unwrap_err().contains("--to"));
        assert!(a("--to 10.0.0.1").unwrap_err().contains("ADDR:PORT"));
        assert!(a("--to 10.0.0.1:7 --sizes 65508").unwrap_err().contains("65507"));
        assert!(a("--to [::1]:7 --sizes 65508").is_ok());
        assert!(a("--to 10.0.0.1:7 --count 0").is_err());
        assert!(a("--to 10.0.0.1:7 --bogus").unwrap_err().contains("--bogus"));
    }

    /// End to end against a kernel echo thread on loopback: no privileges needed.
    #[test]
    fn echo_round_trip_on_loopback() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let _ = server.send_to(&buf[..n], from);
            }
        });
        let args = parse_args(["--to", &addr.to_string(), "--sizes", "0,1,16,1472", "--count", "3"].map(String::from))
            .unwrap()
            .unwrap();
        let sock = connected_socket(unspecified(&args.to), args.to).unwrap();
        let mut lines = Vec::new();
        let r = run_echoes(&sock, &args, &mut lines).unwrap();
        let (t, rtt) = totals(&r);
        assert_eq!((t.sent, t.ok, t.mismatches, t.timeouts), (12, 12, 0, 0), "{lines:?}");
        assert!(rtt.is_some());
    }

    #[test]
    fn closed_port_on_loopback_is_refused() {
        // Bind then drop a socket to find a port that is (almost certainly) closed.
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let args = parse_args(["--to", &format!("127.0.0.1:{port}")].map(String::from)).unwrap().unwrap();
        assert!(matches!(probe_closed_port(&args, port).unwrap(), ClosedPort::Refused));
    }
}
