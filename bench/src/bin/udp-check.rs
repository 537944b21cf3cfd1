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
//!
//! With `--rate PPS --duration SECS` it is instead a fixed-rate ping-pong client (the legitimate
//! traffic of `make bench`'s flood section): datagrams leave on a fixed schedule whether or not
//! the previous echo came back (open loop, so a slow server cannot slow the offered rate down),
//! each echo is matched by the sequence number in its tag, checked byte for byte and timed, and a
//! datagram whose echo has not come back within `--timeout-ms` counts as lost. The report gives
//! the round trip's percentiles (p50, p90, p99, p99.9, exact: every sample is kept), the loss, and
//! how late the client itself sent against its schedule (its own scheduling delay, which would
//! otherwise pass for the server's).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: udp-check --to ADDR:PORT [--sizes LIST] [--count N] [--timeout-ms MS]
                 [--closed-port PORT] [--bind ADDR:PORT] [--json]
       udp-check --to ADDR:PORT --rate PPS --duration SECS [--sizes LIST] [--timeout-ms MS]
                 [--min-ok PERCENT] [--bind ADDR:PORT] [--json]

  --to ADDR:PORT      echo service to talk to (IPv4 or [IPv6]:port)
  --sizes LIST        payload sizes: comma-separated sizes and inclusive ranges,
                      e.g. 1,64,512,1472 or 1..1472 or 0,1..16,1472 (default 1,64,512,1472)
  --count N           datagrams per size (default 10)
  --timeout-ms MS     how long to wait for each echo (default 500)
  --closed-port PORT  also send one datagram to PORT and expect ECONNREFUSED
                      (the kernel's report of the ICMP port unreachable)
  --bind ADDR:PORT    local address to bind (default: any address, any port)
  --json              print one JSON object instead of the table

fixed-rate mode (open loop: one datagram every 1/PPS s whatever came back):
  --rate PPS          datagrams per second, 1 to 1000000
  --duration SECS     how long to send (then wait up to --timeout-ms for the last echoes)
  --sizes LIST        sizes taken in turn; each at least 16 bytes (the tag carries the
                      sequence number that matches an echo to its datagram; default 64)
  --min-ok PERCENT    pass when at least this share came back byte-exact in time and
                      nothing came back corrupted (default 100)

exit status: 0 all echoes byte-exact (and ECONNREFUSED seen with --closed-port; in
             fixed-rate mode: at least --min-ok percent), 1 a check failed,
             2 usage error, 3 socket setup failed";

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
    /// Fixed-rate mode: (datagrams per second, how long).
    rate: Option<(u64, Duration)>,
    /// Fixed-rate mode: the share (percent) of byte-exact echoes needed to pass.
    min_ok: f64,
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
    let mut sizes: Option<Vec<usize>> = None;
    let mut count = 10u32;
    let mut timeout_ms = 500u64;
    let mut closed_port: Option<u16> = None;
    let mut bind: Option<SocketAddr> = None;
    let mut json = false;
    let mut count_given = false;
    let mut rate: Option<u64> = None;
    let mut duration: Option<Duration> = None;
    let mut min_ok: Option<f64> = None;

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
            "--sizes" => sizes = Some(parse_sizes(&value("a size list")?).map_err(|e| format!("--sizes: {e}"))?),
            "--count" => {
                let v = value("a number")?;
                count = v.parse().map_err(|_| format!("--count: '{v}' is not a number"))?;
                if count == 0 {
                    return Err("--count must be at least 1".into());
                }
                count_given = true;
            }
            "--rate" => {
                let v = value("datagrams per second")?;
                let r: u64 = v.parse().map_err(|_| format!("--rate: '{v}' is not a number"))?;
                if !(1..=1_000_000).contains(&r) {
                    return Err(format!("--rate {r}: must be 1 to 1000000"));
                }
                rate = Some(r);
            }
            "--duration" => {
                let v = value("seconds")?;
                let d: f64 = v.parse().map_err(|_| format!("--duration: '{v}' is not a number of seconds"))?;
                if !(d > 0.0 && d <= 86_400.0) {
                    return Err(format!("--duration {v}: must be more than 0 and at most a day"));
                }
                duration = Some(Duration::from_secs_f64(d));
            }
            "--min-ok" => {
                let v = value("a percentage")?;
                let p: f64 = v.parse().map_err(|_| format!("--min-ok: '{v}' is not a number"))?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(format!("--min-ok {v}: must be 0 to 100"));
                }
                min_ok = Some(p);
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
    // The defaults: a spread of sizes one at a time; 64 bytes in the fixed-rate
    // mode, whose datagrams carry a 16-byte tag.
    let sizes = sizes.unwrap_or_else(|| if rate.is_some() { vec![64] } else { vec![1, 64, 512, 1472] });
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
    let rate = match (rate, duration) {
        (Some(r), Some(d)) => Some((r, d)),
        (None, None) => None,
        _ => return Err("--rate and --duration go together (the fixed-rate mode)".into()),
    };
    if rate.is_some() {
        if count_given {
            return Err("--count is for the one-at-a-time mode; the fixed-rate mode sends --rate x --duration".into());
        }
        if closed_port.is_some() {
            return Err("--closed-port is for the one-at-a-time mode".into());
        }
        if let Some(&small) = sizes.iter().find(|&&s| s < TAG_LEN) {
            return Err(format!(
                "--sizes: {small} bytes is too short for the fixed-rate mode: the {TAG_LEN}-byte tag carries the \
                 sequence number that matches an echo to its datagram"
            ));
        }
    } else if min_ok.is_some() {
        return Err("--min-ok is for the fixed-rate mode (--rate, --duration)".into());
    }
    Ok(Some(Args {
        to,
        sizes,
        count,
        timeout: Duration::from_millis(timeout_ms),
        closed_port,
        bind,
        json,
        rate,
        min_ok: min_ok.unwrap_or(100.0),
    }))
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

// ---------------------------------------------------------------------------------------------
// Fixed-rate mode
// ---------------------------------------------------------------------------------------------

/// Reads the tag that [`fill_payload`] writes: (size, sequence number), or `None` when `buf`
/// does not open with `<ssss:qqqqqqqq> `.
pub fn parse_tag(buf: &[u8]) -> Option<(usize, u32)> {
    let tag = buf.get(..TAG_LEN)?;
    if tag[0] != b'<' || tag[5] != b':' || tag[14] != b'>' || tag[15] != b' ' {
        return None;
    }
    let hex = |b: &[u8]| {
        let s = std::str::from_utf8(b).ok()?;
        // from_str_radix takes a leading '+': the tag never has one.
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    Some((hex(&tag[1..5])? as usize, hex(&tag[6..14])?))
}

/// What the fixed-rate mode measured.
#[derive(Debug, Default)]
struct RateResult {
    c: Counts,
    /// Round trips of the byte-exact echoes, ns.
    rtt_ns: Vec<u64>,
    /// How long after its slot on the schedule each datagram left, ns.
    send_lag_ns: Vec<u64>,
    /// From the first slot to the last send.
    send_secs: f64,
}

/// The datagram sent in slot `slot` (0, 1, …): its sequence number (slot + 1) and size.
fn rate_datagram(args: &Args, slot: u64) -> (u32, usize) {
    ((slot as u32).wrapping_add(1), args.sizes[(slot % args.sizes.len() as u64) as usize])
}

/// Sends one datagram per 1/`rate` s for `duration`, receives echoes between sends, and
/// matches each by its tag (see the module docs). The schedule is absolute (slot `k` is due
/// at start + k/rate): a client delayed by the scheduler sends the missed slots at once and
/// the delay shows in `send_lag_ns`.
fn run_rate(
    sock: &UdpSocket,
    args: &Args,
    rate: u64,
    duration: Duration,
    mismatch_lines: &mut Vec<String>,
) -> Result<RateResult, String> {
    let total = (duration.as_secs_f64() * rate as f64).round().max(1.0) as u64;
    let interval_ns = 1_000_000_000 / rate;
    let max_size = args.sizes.iter().copied().max().unwrap_or(0);
    let (mut tx, mut expect, mut rx) = (vec![0u8; max_size], vec![0u8; max_size], vec![0u8; 65_536]);
    let mut r = RateResult {
        rtt_ns: Vec::with_capacity(total as usize),
        send_lag_ns: Vec::with_capacity(total as usize),
        ..Default::default()
    };
    // In flight, in send order: (sequence number, when it left).
    let mut pending: VecDeque<(u32, Instant)> = VecDeque::new();
    // Sequence numbers that timed out, to recognise their late echoes.
    let mut overdue: VecDeque<u32> = VecDeque::with_capacity(LATE_WINDOW);
    // Whether each sequence number's echo came back (index: seq, 1..=total): an echo later
    // than `overdue` remembers is late, not a duplicate, unless its datagram was answered.
    let mut echoed = vec![false; total as usize + 1];
    let mut slot = 0u64;
    sock.set_nonblocking(true).map_err(|e| format!("cannot make the socket non-blocking: {e}"))?;
    let start = Instant::now();
    loop {
        let now = Instant::now();
        while let Some(&(seq, sent)) = pending.front() {
            if now.duration_since(sent) < args.timeout {
                break;
            }
            pending.pop_front();
            r.c.timeouts += 1;
            if overdue.len() == LATE_WINDOW {
                overdue.pop_front();
            }
            overdue.push_back(seq);
        }
        let due = (slot < total).then(|| start + Duration::from_nanos(slot * interval_ns));
        if let Some(due) = due.filter(|&d| now >= d) {
            let (seq, size) = rate_datagram(args, slot);
            fill_payload(&mut tx[..size], seq);
            r.c.sent += 1;
            r.send_lag_ns.push(now.duration_since(due).as_nanos() as u64);
            slot += 1;
            if slot == total {
                r.send_secs = now.duration_since(start).as_secs_f64();
            }
            match sock.send(&tx[..size]) {
                Ok(n) if n == size => pending.push_back((seq, Instant::now())),
                Ok(n) => return Err(format!("send of {size} bytes sent only {n}")),
                // The ICMP error of an earlier datagram surfaced on this send.
                Err(e) if is_refused(&e) => r.c.refused += 1,
                Err(e) => return Err(format!("send of {size} bytes to {}: {e}", args.to)),
            }
            continue;
        }
        if due.is_none() && pending.is_empty() {
            break;
        }
        // Wait for an echo until the next slot or the oldest datagram's timeout.
        let expiry = pending.front().map(|&(_, sent)| sent + args.timeout);
        let until = match (due, expiry) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => now,
        };
        let wait = until.saturating_duration_since(Instant::now());
        if wait < Duration::from_micros(1) {
            continue;
        }
        // poll(2) with a timespec (ppoll: an hrtimer), not SO_RCVTIMEO, which the kernel keeps in
        // jiffies (`sock_set_timeout` in net/core/sock.c): a wait of 0.3 ms would last a tick.
        let timeout =
            rustix::event::Timespec { tv_sec: wait.as_secs() as i64, tv_nsec: i64::from(wait.subsec_nanos()) };
        let mut fds = [rustix::event::PollFd::new(sock, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let n = match sock.recv(&mut rx) {
            Ok(n) => n,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_refused(&e) => {
                r.c.refused += 1;
                continue;
            }
            Err(e) => return Err(format!("recv from {}: {e}", args.to)),
        };
        let got_at = Instant::now();
        let got = &rx[..n];
        let matched = parse_tag(got).filter(|&(size, _)| size == n && size <= max_size).and_then(|(size, seq)| {
            fill_payload(&mut expect[..size], seq);
            (got == &expect[..size]).then_some(seq)
        });
        let Some(seq) = matched else {
            r.c.mismatches += 1;
            if mismatch_lines.len() < MAX_MISMATCH_REPORTS {
                let what = match parse_tag(got) {
                    Some((size, seq)) => {
                        let mut want = vec![0u8; size];
                        fill_payload(&mut want, seq);
                        format!("tag says size {size} seq {seq}, got {n} bytes; {}", first_difference(&want, got))
                    }
                    None => format!("{n} bytes without a readable tag"),
                };
                mismatch_lines.push(format!("mismatch: {what}"));
            }
            continue;
        };
        let first_echo = echoed.get(seq as usize) == Some(&false) && u64::from(seq) <= slot;
        if let Some(e) = echoed.get_mut(seq as usize) {
            *e = true;
        }
        if let Ok(i) = pending.binary_search_by_key(&seq, |&(s, _)| s) {
            let (_, sent) = pending.remove(i).expect("index from binary_search");
            r.c.ok += 1;
            r.rtt_ns.push(got_at.duration_since(sent).as_nanos() as u64);
        } else if let Some(i) = overdue.iter().position(|&s| s == seq) {
            overdue.remove(i);
            r.c.late += 1;
        } else if first_echo {
            // A datagram that timed out longer ago than `overdue` remembers (under heavy loss
            // more than LATE_WINDOW time out before their echoes arrive): late, not a duplicate.
            r.c.late += 1;
        } else {
            // Byte-exact, but of no datagram in flight: a duplicate.
            r.c.mismatches += 1;
            if mismatch_lines.len() < MAX_MISMATCH_REPORTS {
                mismatch_lines.push(format!("mismatch: a second echo of seq {seq}"));
            }
        }
    }
    Ok(r)
}

/// The fixed-rate mode's percentiles of `ns` (sorted in place), in µs.
fn rate_percentiles_json(ns: &mut [u64]) -> serde_json::Value {
    ns.sort_unstable();
    let p = |q: f64| percentile(ns, q).map(|v| v as f64 / 1000.0);
    serde_json::json!({
        "count": ns.len(), "min": p(0.0), "p50": p(50.0), "p90": p(90.0), "p99": p(99.0),
        "p99.9": p(99.9), "max": p(100.0),
    })
}

/// Runs the fixed-rate mode and reports; the exit status as the usage text says.
fn main_rate(sock: &UdpSocket, args: &Args, local: &str, rate: u64, duration: Duration) -> ExitCode {
    let mut mismatch_lines = Vec::new();
    let mut r = match run_rate(sock, args, rate, duration, &mut mismatch_lines) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("udp-check: error: {e}");
            return ExitCode::from(3);
        }
    };
    for line in &mismatch_lines {
        eprintln!("udp-check: {line}");
    }
    let c = r.c;
    let ok_percent = 100.0 * c.ok as f64 / c.sent.max(1) as f64;
    let pass = c.sent > 0 && c.mismatches == 0 && ok_percent >= args.min_ok;
    let loss = 1.0 - c.ok as f64 / c.sent.max(1) as f64;
    let rtt = rate_percentiles_json(&mut r.rtt_ns);
    let lag = rate_percentiles_json(&mut r.send_lag_ns);
    if args.json {
        let obj = serde_json::json!({
            "mode": "rate", "to": args.to.to_string(), "local": local, "sizes": size_list_text(&args.sizes),
            "rate_pps": rate, "duration_s": duration.as_secs_f64(),
            "sent_pps": c.sent.saturating_sub(1) as f64 / r.send_secs.max(f64::MIN_POSITIVE),
            "timeout_ms": args.timeout.as_millis() as u64,
            "sent": c.sent, "ok": c.ok, "mismatches": c.mismatches, "timeouts": c.timeouts,
            "refused": c.refused, "late": c.late, "loss": loss, "ok_percent": ok_percent, "min_ok": args.min_ok,
            "rtt_us": rtt, "send_lag_us": lag, "mismatch_details": mismatch_lines, "pass": pass,
        });
        println!("{obj}");
    } else {
        let us =
            |v: &serde_json::Value, k: &str| v[k].as_f64().map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "udp-check: {} from {local}: {rate} pps for {:.1} s, sizes [{}], timeout {} ms",
            args.to,
            duration.as_secs_f64(),
            size_list_text(&args.sizes),
            args.timeout.as_millis()
        );
        println!(
            "sent {} ok {} mismatch {} timeout {} refused {} late {}: loss {:.3} %",
            c.sent,
            c.ok,
            c.mismatches,
            c.timeouts,
            c.refused,
            c.late,
            loss * 100.0
        );
        println!(
            "rtt µs: min {} p50 {} p90 {} p99 {} p99.9 {} max {}; send lag µs: p50 {} p99 {} max {}",
            us(&rtt, "min"),
            us(&rtt, "p50"),
            us(&rtt, "p90"),
            us(&rtt, "p99"),
            us(&rtt, "p99.9"),
            us(&rtt, "max"),
            us(&lag, "p50"),
            us(&lag, "p99"),
            us(&lag, "max")
        );
        println!(
            "udp-check: {} ({ok_percent:.2} % byte-exact, at least {} % needed{})",
            if pass { "PASS" } else { "FAIL" },
            args.min_ok,
            if c.mismatches > 0 { ", corrupted echoes seen" } else { "" }
        );
    }
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
    if let Some((rate, duration)) = args.rate {
        return main_rate(&sock, &args, &local, rate, duration);
    }

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
    fn tag_reads_back_what_fill_payload_wrote() {
        for (size, seq) in [(16, 0), (18, 1), (1472, 0xdead_beef), (65_527, u32::MAX)] {
            assert_eq!(parse_tag(&payload(size, seq)), Some((size, seq)));
        }
        assert_eq!(parse_tag(&payload(15, 3)), None, "too short for a tag");
        assert_eq!(parse_tag(b"<0012:0000000g> xx"), None, "not hex");
        assert_eq!(parse_tag(b"<+012:00000001> xx"), None, "a sign is not a digit");
        assert_eq!(parse_tag(b"[0012:00000001> xx"), None);
    }

    #[test]
    fn rate_mode_args() {
        let a = |s: &str| parse_args(s.split_whitespace().map(String::from));
        let args = a("--to 10.77.0.2:7 --rate 1000 --duration 2.5 --sizes 18 --min-ok 99").unwrap().unwrap();
        assert_eq!(args.rate, Some((1000, Duration::from_millis(2500))));
        assert_eq!((args.sizes, args.min_ok), (vec![18], 99.0));
        assert_eq!(a("--to 10.77.0.2:7").unwrap().unwrap().rate, None);
        assert!(a("--to 10.0.0.1:7 --rate 1000").unwrap_err().contains("together"));
        assert!(a("--to 10.0.0.1:7 --duration 1").unwrap_err().contains("together"));
        assert!(a("--to 10.0.0.1:7 --rate 0 --duration 1").is_err());
        assert!(a("--to 10.0.0.1:7 --rate 10 --duration 0").is_err());
        assert!(a("--to 10.0.0.1:7 --rate 10 --duration 1 --count 5").unwrap_err().contains("--count"));
        assert!(a("--to 10.0.0.1:7 --rate 10 --duration 1 --closed-port 9").is_err());
        assert!(a("--to 10.0.0.1:7 --rate 10 --duration 1 --sizes 8").unwrap_err().contains("tag"));
        assert!(a("--to 10.0.0.1:7 --min-ok 99").unwrap_err().contains("fixed-rate"));
        assert!(a("--to 10.0.0.1:7 --rate 10 --duration 1 --sizes 16 --min-ok 101").is_err());
    }

    /// A kernel echo thread on loopback that answers every datagram, except that it drops
    /// the ones whose sequence number `drop` picks and corrupts those `corrupt` picks.
    fn lossy_echo(drop: fn(u32) -> bool, corrupt: fn(u32) -> bool) -> SocketAddr {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let seq = parse_tag(&buf[..n]).map_or(0, |(_, s)| s);
                if drop(seq) {
                    continue;
                }
                if corrupt(seq) {
                    buf[n - 1] ^= 1;
                }
                let _ = server.send_to(&buf[..n], from);
            }
        });
        addr
    }

    fn rate_run(addr: SocketAddr) -> (RateResult, Vec<String>) {
        let args = parse_args(
            [
                "--to",
                &addr.to_string(),
                "--rate",
                "2000",
                "--duration",
                "0.25",
                "--sizes",
                "18,64",
                "--timeout-ms",
                "100",
            ]
            .map(String::from),
        )
        .unwrap()
        .unwrap();
        let sock = connected_socket(unspecified(&args.to), args.to).unwrap();
        let (rate, duration) = args.rate.unwrap();
        let mut lines = Vec::new();
        let r = run_rate(&sock, &args, rate, duration, &mut lines).unwrap();
        (r, lines)
    }

    #[test]
    fn rate_mode_on_loopback_counts_every_echo() {
        let (r, lines) = rate_run(lossy_echo(|_| false, |_| false));
        assert_eq!((r.c.sent, r.c.ok, r.c.mismatches, r.c.timeouts, r.c.late), (500, 500, 0, 0, 0), "{lines:?}");
        assert_eq!((r.rtt_ns.len(), r.send_lag_ns.len()), (500, 500));
        // 500 slots, 0.5 ms apart: the last leaves about 0.25 s after the first.
        assert!(r.send_secs >= 0.249, "{}", r.send_secs);
    }

    #[test]
    fn rate_mode_on_loopback_counts_losses_and_corruption() {
        // Every tenth datagram dropped, every 50th (25, 75, …) corrupted: a corrupted echo is a
        // mismatch, and its datagram, whose byte-exact echo never comes, times out as well.
        let (r, lines) = rate_run(lossy_echo(|s| s % 10 == 0, |s| s % 50 == 25));
        assert_eq!((r.c.sent, r.c.timeouts, r.c.mismatches), (500, 60, 10), "{lines:?}");
        assert_eq!(r.c.ok, 440);
        assert!(lines.iter().all(|l| l.contains("first difference at byte")), "{lines:?}");
    }

    #[test]
    fn rate_mode_late_echoes_beyond_the_window_are_late_not_duplicates() {
        // The echo holds the datagrams of seq 10..=109 and sends them back when seq 400
        // arrives, about 145 ms after the last of them left: all 100 have timed out, more than
        // the LATE_WINDOW (64) that `overdue` remembers, and each is late (found by the soak,
        // whose probe under heavy loss reported such echoes as duplicates). Seq 200 is echoed
        // twice: a real duplicate.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let mut held: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let seq = parse_tag(&buf[..n]).map_or(0, |(_, s)| s);
                if (10..=109).contains(&seq) {
                    held.push((buf[..n].to_vec(), from));
                    continue;
                }
                let _ = server.send_to(&buf[..n], from);
                if seq == 200 {
                    let _ = server.send_to(&buf[..n], from);
                }
                if seq == 400 {
                    for (d, to) in held.drain(..) {
                        let _ = server.send_to(&d, to);
                    }
                }
            }
        });
        let (r, lines) = rate_run(addr);
        const { assert!(LATE_WINDOW < 100) };
        assert_eq!((r.c.sent, r.c.timeouts, r.c.late, r.c.mismatches), (500, 100, 100, 1), "{lines:?}");
        assert_eq!(lines, ["mismatch: a second echo of seq 200"]);
    }

    #[test]
    fn closed_port_on_loopback_is_refused() {
        // Bind then drop a socket to find a port that is (almost certainly) closed.
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let args = parse_args(["--to", &format!("127.0.0.1:{port}")].map(String::from)).unwrap().unwrap();
        assert!(matches!(probe_closed_port(&args, port).unwrap(), ClosedPort::Refused));
    }
}
