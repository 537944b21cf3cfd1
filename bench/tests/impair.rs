//! `xsknet-impair` between two kernel stacks (`xsknet::testing::ImpairedPair`): with no
//! options it forwards every frame and TCP is byte-exact; each of loss, delay and jitter,
//! reordering, duplication and rate shows at its configured rate at the receiver and in the
//! relay's counters; TCP completes byte-exact through loss, delay and reordering together;
//! and nothing (namespace or relay process) is left afterwards, also when a test panics.
//!
//! Privileged: each test skips with a message when not root, and fails when `CI` is set.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use xsknet::testing::{in_netns, require_root, ImpairedPair, ImpairedPairOptions, IMPAIRED_IF};
use xsknet_bench::impair::{DirectionStats, RelayStats};

fn relay() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xsknet-impair"))
}

fn parse(json: &str) -> RelayStats {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("relay stats: {e}\n{json}"))
}

/// Stops the relay, drops the pair and checks that its namespaces and its relay are gone.
fn finish(mut pair: ImpairedPair) -> RelayStats {
    let stats = parse(&pair.stop_relay().unwrap_or_else(|e| panic!("{e}")));
    let names: Vec<String> = pair.namespaces().iter().map(|s| s.to_string()).collect();
    drop(pair);
    assert_cleaned(&names, None);
    stats
}

/// No namespace of `names` listed, and `pid` (if any) no longer an `xsknet-impair`.
fn assert_cleaned(names: &[String], pid: Option<u32>) {
    let out = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    for name in names {
        assert!(!listed.lines().any(|l| l.split_whitespace().next() == Some(name)), "namespace {name} left behind");
        assert!(!Path::new("/run/netns").join(name).exists(), "/run/netns/{name} left behind");
    }
    if let Some(pid) = pid {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&cmdline).contains("xsknet-impair"), "relay {pid} still running");
    }
}

/// Both directions relayed every frame: nothing dropped, refused, truncated or left queued.
fn assert_lossless(s: &DirectionStats, what: &str) {
    assert!(s.balanced(), "{what}: {s:?}");
    assert_eq!(s.forwarded, s.frames_in, "{what}: {s:?}");
    assert_eq!(
        (s.dropped_loss, s.dropped_limit, s.send_errors, s.socket_drops, s.truncated, s.queued),
        (0, 0, 0, 0, 0, 0),
        "{what}: {s:?}"
    );
}

/// Binomial(n, pct %) lies within `mean ± 6 sd` except with odds below 1e-8.
fn assert_binomial(count: u64, n: u64, pct: f64, what: &str) {
    let p = pct / 100.0;
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!((count as f64 - mean).abs() <= 6.0 * sd, "{what}: {count} of {n}, expected {mean:.0} ± {:.0}", 6.0 * sd);
}

/// `len` bytes that differ from any shift or reordering of themselves (xorshift64).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A TCP connection from the peer to a listener on the xsknet side: `down` bytes from the
/// xsknet side to the peer and `up` bytes the other way, both compared byte for byte.
/// Returns how long it took.
fn tcp_transfer(pair: &ImpairedPair, down: usize, up: usize, timeout: Duration) -> Duration {
    let listener = in_netns(pair.ns(), || TcpListener::bind((pair.addr(), 0))).unwrap();
    let server_addr = listener.local_addr().unwrap();
    let (down_data, up_data) = (pattern(down, 1), pattern(up, 2));
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(timeout)).unwrap();
            let reader = conn.try_clone().unwrap();
            let got = s.spawn(move || read_all(reader));
            conn.write_all(&down_data).unwrap();
            conn.shutdown(std::net::Shutdown::Write).unwrap();
            got.join().unwrap()
        });
        let mut client =
            in_netns(pair.peer_ns(), || TcpStream::connect_timeout(&server_addr, Duration::from_secs(10))).unwrap();
        client.set_read_timeout(Some(timeout)).unwrap();
        let reader = client.try_clone().unwrap();
        let got_down = s.spawn(move || read_all(reader));
        client.write_all(&up_data).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let got_down = got_down.join().unwrap();
        let got_up = server.join().unwrap();
        assert!(got_down == down_data, "download: {} of {down} bytes, content differs", got_down.len());
        assert!(got_up == up_data, "upload: {} of {up} bytes, content differs", got_up.len());
    });
    t0.elapsed()
}

fn read_all(mut conn: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap_or_else(|e| panic!("after {} bytes: {e}", got.len()));
    got
}

/// Sends `n` UDP datagrams of `size` bytes (a 4-byte sequence number first) from the peer to
/// the xsknet side, one every `gap` (none: as fast as the socket goes), and returns the
/// sequence numbers in the order they arrived, with their arrival times.
fn udp_stream(pair: &ImpairedPair, n: u32, size: usize, gap: Option<Duration>) -> Vec<(u32, Instant)> {
    let rx = in_netns(pair.ns(), || UdpSocket::bind((pair.addr(), 0))).unwrap();
    let to: SocketAddr = rx.local_addr().unwrap();
    let tx = in_netns(pair.peer_ns(), || UdpSocket::bind((pair.peer_addr(), 0))).unwrap();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 2048];
            // The last datagram can be ~100 ms late (delay, rate); then quiet means done.
            rx.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
            while let Ok(len) = rx.recv(&mut buf) {
                assert_eq!(len, size);
                got.push((u32::from_be_bytes(buf[..4].try_into().unwrap()), Instant::now()));
            }
            got
        });
        let mut dgram = vec![0x5au8; size];
        for seq in 0..n {
            dgram[..4].copy_from_slice(&seq.to_be_bytes());
            tx.send_to(&dgram, to).unwrap();
            if let Some(gap) = gap {
                std::thread::sleep(gap);
            }
        }
        receiver.join().unwrap()
    })
}

/// `ping -c COUNT -i 0.05` from the peer; (min, avg, max) round trip in ms.
fn ping(pair: &ImpairedPair, count: u32) -> (f64, f64, f64) {
    let to = pair.addr().to_string();
    let out = pair.run_peer(&["ping", "-n", "-q", "-c", &count.to_string(), "-i", "0.05", "-W", "2", &to]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find(|l| l.contains("min/avg/max")).unwrap_or_else(|| panic!("no rtt line:\n{text}"));
    let nums: Vec<f64> =
        line.split('=').nth(1).unwrap().trim().split(['/', ' ']).filter_map(|v| v.parse().ok()).collect();
    (nums[0], nums[1], nums[2])
}

#[test]
fn without_options_every_frame_is_forwarded_and_tcp_is_byte_exact() {
    if !require_root("without_options_every_frame_is_forwarded_and_tcp_is_byte_exact") {
        return;
    }
    let pair = ImpairedPair::new(relay(), &["--seed", "1"]).unwrap();
    // ARP resolves through the relay, as on one wire.
    let (_, avg, _) = ping(&pair, 5);
    assert!(avg < 20.0, "rtt {avg} ms without delay");
    let got = udp_stream(&pair, 1000, 64, Some(Duration::from_micros(20)));
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), (0..1000).collect::<Vec<_>>());
    let took = tcp_transfer(&pair, 4 << 20, 4 << 20, Duration::from_secs(60));
    eprintln!("4 MB each way through the relay: {took:?}");
    let stats = finish(pair);
    assert_lossless(&stats.a2b, "a2b");
    assert_lossless(&stats.b2a, "b2a");
    // 1000 datagrams, 5 pings and 4 MB of segments from the peer at the least.
    assert!(stats.a2b.frames_in > 1000 + 5 + (4 << 20) / 1500, "{:?}", stats.a2b);
    assert!(stats.a2b.bytes_in > 4 << 20 && stats.b2a.bytes_in > 4 << 20);
}

#[test]
fn loss_drops_its_share_of_udp_datagrams() {
    if !require_root("loss_drops_its_share_of_udp_datagrams") {
        return;
    }
    let pair = ImpairedPair::new(relay(), &["--loss", "10", "--direction", "a2b", "--seed", "7"]).unwrap();
    pair.add_static_neighbours().unwrap();
    let n = 3000;
    let got = udp_stream(&pair, n, 64, Some(Duration::from_micros(20)));
    let received = got.len() as u64;
    assert_binomial(n as u64 - received, n as u64, 10.0, "datagrams lost");
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "loss alone must not reorder");
    let stats = finish(pair);
    // With static neighbours and IPv6 off the datagrams are the only frames: exact accounting.
    assert_eq!(stats.a2b.frames_in, n as u64, "{:?}", stats.a2b);
    assert_eq!(stats.a2b.dropped_loss, n as u64 - received, "{:?}", stats.a2b);
    assert_eq!(stats.a2b.forwarded, received);
    assert!(stats.a2b.balanced());
    assert_lossless(&stats.b2a, "b2a (not impaired)");
}

#[test]
fn delay_and_jitter_add_to_the_round_trip() {
    if !require_root("delay_and_jitter_add_to_the_round_trip") {
        return;
    }
    let pair = ImpairedPair::new(relay(), &["--delay", "20", "--jitter", "5", "--seed", "3"]).unwrap();
    // Without them the first ping would also wait for ARP's own delayed round trip.
    pair.add_static_neighbours().unwrap();
    let (min, avg, max) = ping(&pair, 40);
    // Each way 20 ± 5 ms: a round trip lies in 30..50 ms (plus scheduling on a busy machine);
    // the sum of two uniform draws averages 40 ms, within ±4 ms for 40 pings (6 sd); a busy
    // machine only adds to a round trip.
    assert!(min >= 29.9, "min rtt {min} ms below 2 × (20 - 5)");
    assert!(max <= 50.0 + 15.0, "max rtt {max} ms far above 2 × (20 + 5)");
    assert!((36.0..=46.0).contains(&avg), "avg rtt {avg} ms, expected 40");
    assert!(max - min >= 2.0, "jitter 5 ms each way but rtt spread only {min}..{max} ms");
    let stats = finish(pair);
    assert_lossless(&stats.a2b, "a2b");
    assert_lossless(&stats.b2a, "b2a");
}

#[test]
fn reorder_and_duplicate_show_at_their_rates() {
    if !require_root("reorder_and_duplicate_show_at_their_rates") {
        return;
    }
    let mut pair =
        ImpairedPair::new(relay(), &["--delay", "10", "--reorder", "25", "--direction", "a2b", "--seed", "5"]).unwrap();
    pair.add_static_neighbours().unwrap();
    let n = 2000u32;
    let got = udp_stream(&pair, n, 64, Some(Duration::from_micros(100)));
    let mut seqs: Vec<u32> = got.iter().map(|g| g.0).collect();
    // Reordered datagrams are sent at once and so arrive ahead of earlier, delayed ones: count
    // the datagrams that some lower sequence number arrives after.
    let mut lowest_after = u32::MAX;
    let early = seqs
        .iter()
        .rev()
        .filter(|&&s| {
            let overtook = lowest_after < s;
            lowest_after = lowest_after.min(s);
            overtook
        })
        .count() as u64;
    assert_binomial(early, n as u64, 25.0, "datagrams arriving early");
    seqs.sort_unstable();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "reordering must not lose or duplicate");
    let reorder = parse(&pair.restart_relay(&["--duplicate", "10", "--direction", "a2b", "--seed", "6"]).unwrap());
    assert_eq!(reorder.a2b.frames_in, n as u64);
    assert_binomial(reorder.a2b.reordered, n as u64, 25.0, "relay's reordered");
    // The relay's count is exact; the receiver misses one sent at once with nothing delayed
    // still ahead of it (the first datagram, or after a pause of the sender over 10 ms).
    assert!(early <= reorder.a2b.reordered && reorder.a2b.reordered - early <= n as u64 / 50, "{early} vs {reorder:?}");
    assert_lossless(&reorder.a2b, "a2b with reorder");

    let got = udp_stream(&pair, n, 64, Some(Duration::from_micros(20)));
    let mut seen = std::collections::HashSet::new();
    let dups = got.iter().filter(|g| !seen.insert(g.0)).count() as u64;
    assert_eq!(seen.len() as u32, n, "duplicate must not lose");
    assert_binomial(dups, n as u64, 10.0, "duplicates received");
    let stats = finish(pair);
    assert_eq!(stats.a2b.duplicated, dups, "{:?}", stats.a2b);
    assert_eq!(stats.a2b.forwarded, n as u64 + dups);
    assert!(stats.a2b.balanced());
}

#[test]
fn rate_paces_and_limit_drops() {
    if !require_root("rate_paces_and_limit_drops") {
        return;
    }
    let mut pair = ImpairedPair::new(relay(), &["--rate", "10", "--direction", "a2b", "--seed", "8"]).unwrap();
    pair.add_static_neighbours().unwrap();
    // 1250-byte payloads: 1292-byte frames, 1.0336 ms each at 10 Mbit/s.
    let n = 300;
    let got = udp_stream(&pair, n, 1250, None);
    assert_eq!(got.len(), n as usize, "the default limit (1000) holds a burst of {n}");
    let span = got.last().unwrap().1 - got[0].1;
    let expected = Duration::from_nanos(1_033_600 * (n as u64 - 1));
    assert!(
        span >= expected.mul_f64(0.9) && span <= expected.mul_f64(1.5),
        "{n} frames in {span:?}, expected {expected:?}"
    );
    let paced = parse(&pair.restart_relay(&["--rate", "10", "--limit", "20", "--direction", "a2b"]).unwrap());
    assert_lossless(&paced.a2b, "a2b under rate");
    let got = udp_stream(&pair, n, 1250, None);
    let stats = finish(pair);
    assert!(stats.a2b.dropped_limit > n as u64 / 2, "{:?}", stats.a2b);
    assert_eq!(got.len() as u64 + stats.a2b.dropped_limit, n as u64, "{:?}", stats.a2b);
}

#[test]
fn tcp_is_byte_exact_through_loss_delay_and_reordering() {
    if !require_root("tcp_is_byte_exact_through_loss_delay_and_reordering") {
        return;
    }
    let pair = ImpairedPair::new(relay(), &["--loss", "5", "--delay", "10", "--reorder", "10", "--seed", "9"]).unwrap();
    let took = tcp_transfer(&pair, 4 << 20, 64 << 10, Duration::from_secs(120));
    eprintln!("4 MB down, 64 KB up through loss 5 %, delay 10 ms, reorder 10 %: {took:?}");
    let stats = finish(pair);
    for (s, what) in [(&stats.a2b, "a2b"), (&stats.b2a, "b2a")] {
        assert!(s.balanced(), "{what}: {s:?}");
        assert!(s.dropped_loss > 0 && s.reordered > 0, "{what}: {s:?}");
        // `queued` may hold the last segments of the close, still delayed when the relay stops.
        assert_eq!((s.send_errors, s.socket_drops), (0, 0), "{what}: {s:?}");
    }
}

#[test]
fn everything_is_removed_when_a_test_panics_and_the_options_hold() {
    if !require_root("everything_is_removed_when_a_test_panics_and_the_options_hold") {
        return;
    }
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = ImpairedPair::new(relay(), &["--delay", "5"]).unwrap();
        let names: Vec<String> = pair.namespaces().iter().map(|s| s.to_string()).collect();
        seen = Some((names, pair.relay_pid().unwrap()));
        panic!("a failing test");
    }));
    assert!(result.is_err());
    let (names, pid) = seen.unwrap();
    assert_cleaned(&names, Some(pid));
    // With xsknet owning the address, the kernel behind it holds none (it must not answer too).
    let opts = ImpairedPairOptions { kernel_owns_addr: false, ..Default::default() };
    let pair = ImpairedPair::with_options(relay(), &opts).unwrap();
    let out = pair.run(&["ip", "-4", "-o", "addr", "show", "dev", IMPAIRED_IF]);
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    assert_eq!(pair.addr(), opts.addr.0);
    finish(pair);
    // A relay that cannot start (an option it refuses) is an error, and leaves nothing either.
    let err = ImpairedPair::new(relay(), &["--reorder", "5"]).unwrap_err();
    assert!(err.to_string().contains("--reorder needs --delay"), "{err}");
}
