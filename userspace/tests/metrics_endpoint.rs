//! The Prometheus endpoint end to end: `xsknet echo --metrics` runs in one
//! namespace of a veth pair, the kernel of the other sends it UDP and a TCP
//! exchange, and `curl` inside xsknet's namespace scrapes `/metrics`. The
//! scrape must pass `promtool check metrics` and agree with `xsknet stat -a
//! --json` read at the same moment (traffic stopped, a publication later)
//! and with the `--stats-json` written at exit.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `ethtool`,
//! `curl` and `promtool` (Debian's `prometheus`; `make deps` installs both).

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddrV4, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use xsknet::control::{self, CounterKind, Request, Snapshot};
use xsknet::metrics;
use xsknet::testing::{self, in_netns, run_in};

/// The port `/metrics` is served on, inside the test's namespace.
const METRICS_PORT: u16 = 19464;

/// Datagrams sent after the warm-up.
const DATAGRAMS: usize = 200;

/// `curl` in `ns`: the body of `GET url`, or the error.
fn curl(ns: &str, url: &str) -> Result<String, String> {
    let out = run_in(ns, &["curl", "-sS", "--fail", "--max-time", "5", url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("curl {url}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr)))
    }
}

/// The samples of an exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (k.to_string(), v.parse().unwrap_or_else(|e| panic!("{l}: {e}")))
        })
        .collect()
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e} (Debian's prometheus package: run `make deps`)"))?;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// From the peer: a warm-up until the first echo, then [`DATAGRAMS`]
/// datagrams each echoed. Returns the warm-up datagrams sent.
fn udp_traffic(peer_ns: &str) -> usize {
    in_netns(peer_ns, || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).expect("bind");
        s.connect((SERVER_ADDR, ECHO_PORT)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut buf = [0u8; 2048];
        let mut warm_up = 0;
        loop {
            s.send(b"warm-up").unwrap();
            warm_up += 1;
            match s.recv(&mut buf) {
                Ok(_) => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    assert!(warm_up < 10, "no echo of {warm_up} warm-up datagrams");
                }
                Err(e) => panic!("warm-up: {e}"),
            }
        }
        // Late echoes of the other warm-ups.
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        while s.recv(&mut buf).is_ok() {}
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        for i in 0..DATAGRAMS {
            let p = pattern(64 + i);
            s.send(&p).unwrap();
            let n = s.recv(&mut buf).unwrap_or_else(|e| panic!("echo of datagram {i}: {e}"));
            assert_eq!(&buf[..n], &p[..], "echo of datagram {i}");
        }
        warm_up
    })
}

/// From the peer: one TCP connection, a message echoed, closed by the peer.
fn tcp_exchange(peer_ns: &str) {
    in_netns(peer_ns, || {
        let addr = SocketAddrV4::new(SERVER_ADDR, ECHO_PORT);
        let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let msg = pattern(3000);
        s.write_all(&msg).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).expect("read the echo");
        assert_eq!(back, msg, "TCP echo");
    })
}

#[test]
fn metrics_agree_with_stat_and_the_exit_report() {
    if !testing::require_root("metrics_agree_with_stat_and_the_exit_report") {
        return;
    }
    let pair = pair();
    let addr = format!("127.0.0.1:{METRICS_PORT}");
    let url = format!("http://{addr}{}", metrics::PATH);
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--metrics", &addr]);

    // A second instance asking for the same port is told, at start, before it touches the device.
    let second = run_in(
        pair.ns(),
        &[BIN, "echo", "--iface", pair.ifname(), "--ip", "10.77.0.3/24", "--no-control", "--metrics", &addr],
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second server on {addr} started: {err}");
    assert!(err.contains("another process listens on port") && err.contains("--metrics"), "{err}");

    let warm_up = udp_traffic(pair.peer_ns());
    tcp_exchange(pair.peer_ns());
    // Traffic has stopped; the server side of the connection closes (LAST-ACK to CLOSED)
    // within a round trip. Then a publication (every 100 ms) after that.
    std::thread::sleep(Duration::from_millis(400));

    // The same moment, three ways: the control endpoint (for each counter's kind),
    // `xsknet stat`, and the scrape. Softirq figures move with every poll; the rest stand.
    let snap: Snapshot = in_netns(pair.ns(), || {
        let path = control::find(Some(pair.ifname()), None).expect("control socket");
        control::request(&path, Request::Stats).expect("stats")
    });
    let stat = run_in(pair.ns(), &[BIN, "stat", "--iface", pair.ifname(), "-a", "-z", "--json"]);
    assert!(stat.status.success(), "xsknet stat: {}", String::from_utf8_lossy(&stat.stderr));
    let stat: serde_json::Value = serde_json::from_slice(&stat.stdout).expect("stat --json");
    let stat = &stat["xsknet"];
    let text = curl(pair.ns(), &url).unwrap_or_else(|e| panic!("{e}\nxsknet stderr:\n{}", x.stderr_text()));
    promtool_check(&text).unwrap_or_else(|e| panic!("{e}\nthe scrape:\n{text}"));
    let got = samples(&text);

    let value = |name: &str, kind: CounterKind| -> f64 {
        let s = metrics::series(name, kind);
        *got.get(&s.key()).unwrap_or_else(|| panic!("{name}: no {} in the scrape:\n{text}", s.key()))
    };
    let mut compared = 0;
    for (name, _, kind) in snap.counters() {
        let s = metrics::series(name, kind);
        let from_stat = stat[name].as_u64().unwrap_or_else(|| panic!("{name} missing from xsknet stat: {stat}"));
        let scraped = value(name, kind);
        if kind == CounterKind::Softirq {
            // Read after stat: never less.
            assert!(scraped >= from_stat as f64 / s.divisor, "{name}: scraped {scraped}, stat {from_stat}");
        } else {
            assert_eq!(scraped, from_stat as f64, "{name}: {} in the scrape, {from_stat} in xsknet stat", s.key());
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} counters compared");

    // What was sent.
    let udp_in = value("UdpInDatagrams", CounterKind::Mib) as usize;
    assert!((DATAGRAMS + 1..=DATAGRAMS + warm_up).contains(&udp_in), "UdpInDatagrams {udp_in}, warm-up {warm_up}");
    assert_eq!(value("TcpPassiveOpens", CounterKind::Mib), 1.0);
    assert_eq!(got["xsknet_tcp_sockets{state=\"ESTAB\"}"], 0.0);
    assert_eq!(got["xsknet_tcp_sockets{state=\"LISTEN\"}"], 1.0);
    assert!(got["xsknet_xdp_rx_packets_total"] >= (DATAGRAMS + 3) as f64, "{text}");
    assert!(got["xsknet_publish_age_seconds"] < 1.0, "{text}");
    let frames: f64 = ["in_kernel", "free_local", "free_shared", "in_socks", "awaiting_neighbour", "tx_backlog"]
        .iter()
        .map(|p| got[&format!("xsknet_umem_frames{{place=\"{p}\"}}")])
        .sum();
    assert_eq!(frames, got["xsknet_umem_capacity_frames"], "UMEM frames by place do not add up");
    // The rx-to-read histogram: +Inf holds every sample, and the sampled datagrams are some of those read.
    let inf = got["xsknet_stage_latency_seconds_bucket{stage=\"rx_to_read\",le=\"+Inf\"}"];
    assert_eq!(inf, got["xsknet_stage_latency_seconds_count{stage=\"rx_to_read\"}"]);
    assert!(inf >= 1.0 && inf <= udp_in as f64, "{inf} samples of {udp_in} datagrams");
    assert!(text.contains(&format!("xsknet_info{{iface=\"{}\",queue=\"0\"", pair.ifname())), "{text}");

    // The report at exit: the same counters (nothing moved since).
    let f = x.stop();
    f.assert_clean_exit();
    for (name, _, kind) in snap.counters() {
        if kind != CounterKind::Mib {
            continue;
        }
        assert_eq!(value(name, kind), f.counter(name) as f64, "{name}: scrape against --stats-json");
    }
    for (field, action) in [("redirect_ipv4", "redirect_ipv4"), ("redirect_arp", "redirect_arp"), ("drop", "drop")] {
        let at_exit = f.json["xdp_prog"][field].as_u64().unwrap_or_else(|| panic!("xdp_prog.{field}: {}", f.json));
        assert_eq!(got[&format!("xsknet_xdp_packets_total{{action=\"{action}\"}}")], at_exit as f64, "{field}");
    }
    assert_eq!(got["xsknet_xdp_rx_packets_total"], f.json["xdp_prog"]["rx"].as_u64().unwrap() as f64);
}

#[test]
fn metrics_are_served_without_the_control_endpoint() {
    if !testing::require_root("metrics_are_served_without_the_control_endpoint") {
        return;
    }
    let pair = pair();
    let addr = format!("127.0.0.1:{METRICS_PORT}");
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--no-control", "--metrics", &addr]);
    // The first publication comes with the loop's first poll.
    let mut text = Err(String::new());
    for _ in 0..20 {
        text = curl(pair.ns(), &format!("http://{addr}/metrics"));
        if text.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = text.unwrap_or_else(|e| panic!("{e}\nxsknet stderr:\n{}", x.stderr_text()));
    promtool_check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(text.lines().any(|l| l.starts_with("xsknet_softirq_polls_total ")), "{text}");
    // No control socket: `xsknet stat` does not find it.
    let stat = run_in(pair.ns(), &[BIN, "stat", "--iface", pair.ifname()]);
    assert!(!stat.status.success());
    // Another path, another method.
    let out = run_in(pair.ns(), &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", &format!("http://{addr}/")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
    let out = run_in(
        pair.ns(),
        &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &format!("http://{addr}/metrics")],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
    x.stop().assert_clean_exit();
}

/// A bad `--metrics` is refused before anything is set up, saying what is expected.
#[test]
fn a_bad_metrics_address_is_refused_with_an_example() {
    let out = Command::new(BIN)
        .args(["echo", "--iface", "nosuch0", "--ip", "10.0.0.1/24", "--metrics", "9464"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not ADDR:PORT") && err.contains("127.0.0.1:9464"), "{err}");
}
