//! The control endpoint of a running instance, end to end: `xsknet echo` runs
//! in one namespace of a veth pair, the kernel of the other sends it UDP and
//! TCP, and `xsknet list`, `stat` and `ss` (run as a user would, as separate
//! processes) must agree with what was sent and with the `--stats-json`
//! report written at exit. Also: a socket left by `kill -9` is seen as stale
//! and replaced, and the threaded loop publishes as the run-to-completion one does.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `ethtool`, `iputils-ping`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Output;
use std::time::Duration;

use common::*;
use xsknet::testing::{self, in_netns};

/// `xsknet ARGS` in `ns`, its history file of `stat` kept at `history`.
fn xsknet(ns: &str, history: &std::path::Path, args: &[&str]) -> Output {
    xsknet_env(ns, history, args, &[])
}

/// [`xsknet`] with `env` set (`XSKNET_RUN_DIR`).
fn xsknet_env(ns: &str, history: &std::path::Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
    let mut cmd = testing::command_in(ns, &[&[BIN], args].concat());
    cmd.env("XSKNET_STAT_HISTORY", history).envs(env.iter().copied());
    cmd.output().expect("run xsknet")
}

fn ok_stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `xsknet stat --json ARGS` as a map of counter to value.
fn stat_json(ns: &str, history: &std::path::Path, args: &[&str]) -> BTreeMap<String, u64> {
    let out = ok_stdout(&xsknet(ns, history, &[&["stat", "--json"], args].concat()));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v["xsknet"]
        .as_object()
        .expect("an object under \"xsknet\"")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

/// UDP echoes of `n` datagrams from the peer, each answered.
fn udp_echoes(ns: &str, n: usize) {
    in_netns(ns, || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).unwrap();
        s.connect((SERVER_ADDR, ECHO_PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 64];
        for i in 0..n {
            s.send(format!("datagram {i}").as_bytes()).unwrap();
            let got = s.recv(&mut buf).expect("echo");
            assert_eq!(&buf[..got], format!("datagram {i}").as_bytes());
        }
    });
}

#[test]
fn stat_and_ss_agree_with_what_was_sent_and_the_exit_report() {
    if !testing::require_root("stat_and_ss_agree_with_what_was_sent_and_the_exit_report") {
        return;
    }
    const N: usize = 20;
    let pair = pair();
    let (ns, ifname) = (pair.ns(), pair.ifname());
    let history = std::env::temp_dir().join(format!("xsknet-stat-history-{}-{ifname}", std::process::id()));
    let _ = std::fs::remove_file(&history);
    let x = Xsknet::start_echo(ns, ifname, &[]);
    let pings = warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));

    // `list` names the instance, from any namespace.
    let list = ok_stdout(&xsknet(pair.peer_ns(), &history, &["list"]));
    let line = list.lines().find(|l| l.starts_with(ifname)).unwrap_or_else(|| panic!("{ifname} not listed:\n{list}"));
    assert!(line.contains(&x.pid().to_string()) && line.contains("echo") && line.contains("10.77.0.2:7"), "{line}");
    assert!(line.contains(ns) && line.contains(&format!("{ifname}-q0@{ns}.sock")), "the namespace, named: {line}");

    udp_echoes(pair.peer_ns(), N);
    // One datagram to a closed port: UdpNoPorts and a port unreachable.
    in_netns(pair.peer_ns(), || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).unwrap();
        s.send_to(b"nobody", (SERVER_ADDR, 9)).unwrap();
    });
    // A TCP connection, held open while `ss` looks at it.
    let (stream, peer_port) = in_netns(pair.peer_ns(), || {
        let mut s = TcpStream::connect((SERVER_ADDR, ECHO_PORT)).expect("connect");
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let port = s.local_addr().unwrap().port();
        (s, port)
    });

    let ss = ok_stdout(&xsknet(ns, &history, &["ss", "-t", "-n", "-i", "-m", "--iface", ifname]));
    let peer = format!("{PEER_ADDR}:{peer_port}");
    let estab = ss.lines().position(|l| l.starts_with("ESTAB") && l.contains(&peer)).unwrap_or_else(|| panic!("{ss}"));
    // One indented line, as ss prints it: skmem, then the TCP internals.
    let more = ss.lines().nth(estab + 1).unwrap_or_default();
    assert!(more.starts_with("\t skmem:(r0,rb") && more.contains(" rtt:") && more.contains("bytes_received:5"), "{ss}");
    assert!(
        more.contains(" ts sack cubic wscale:"),
        "options, congestion control, window scales first, as ss prints them: {ss}"
    );
    assert!(!ss.contains("LISTEN"), "ss without -l or -a shows no listener:\n{ss}");
    let listening = ok_stdout(&xsknet(ns, &history, &["ss", "-l", "--iface", ifname]));
    assert!(
        listening.lines().any(|l| l.starts_with("tcp") && l.contains("LISTEN") && l.contains(":7 ")),
        "{listening}"
    );
    assert!(
        listening.lines().any(|l| l.starts_with("udp") && l.contains("UNCONN") && l.contains("0.0.0.0:7 ")),
        "{listening}"
    );
    // A listener under -i, as a kernel listener under `ss -tiln`: its algorithm
    // (the stack's default, CUBIC) and cwnd:10, nothing else.
    let listener = ok_stdout(&xsknet(ns, &history, &["ss", "-t", "-l", "-n", "-i", "--iface", ifname]));
    let at = listener.lines().position(|l| l.starts_with("LISTEN")).unwrap_or_else(|| panic!("{listener}"));
    assert_eq!(listener.lines().nth(at + 1), Some("\t cubic cwnd:10"), "{listener}");
    let all: serde_json::Value =
        serde_json::from_str(&ok_stdout(&xsknet(ns, &history, &["ss", "-a", "--json", "--iface", ifname]))).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "a UDP socket, a listener, a connection: {all:#}");

    drop(stream);
    // The close completes (FIN both ways), and the loop publishes (every 100 ms).
    std::thread::sleep(Duration::from_millis(500));
    // The peer closed first: TIME-WAIT is on its side; ours went CLOSE-WAIT, LAST-ACK, gone.
    let after = ok_stdout(&xsknet(ns, &history, &["ss", "-t", "-a", "--iface", ifname]));
    assert!(!after.contains(&peer), "the closed connection is still listed:\n{after}");

    // The first call has no history: values since the start, as nstat's.
    let first = stat_json(ns, &history, &["--iface", ifname]);
    assert_eq!(first["UdpInDatagrams"], N as u64, "{first:?}");
    assert_eq!(first["UdpNoPorts"], 1);
    assert_eq!(first["IcmpOutDestUnreachs"], 1);
    assert_eq!(first["TcpPassiveOpens"], 1);
    assert_eq!(first["IcmpInEchos"], u64::from(pings));
    assert!(!first.contains_key("UdpInErrors"), "zeros are left out without -z: {first:?}");
    // Nothing sent since: the second call's changes are the loop's own, and no UDP, TCP or IP.
    let second = stat_json(ns, &history, &["-z", "--iface", ifname]);
    for (k, v) in &second {
        if k.starts_with("Ip") || k.starts_with("Udp") || k.starts_with("Tcp") || k.starts_with("Icmp") {
            assert_eq!(*v, 0, "{k} changed with no traffic: {second:?}");
        }
    }
    assert!(second.contains_key("UdpInErrors"), "-z shows zeros");
    let absolute = stat_json(ns, &history, &["-a", "-z", "-s", "--iface", ifname]);
    let udp_only = stat_json(ns, &history, &["-a", "-s", "--iface", ifname, "Udp*"]);
    assert_eq!(udp_only.keys().cloned().collect::<Vec<_>>(), ["UdpInDatagrams", "UdpNoPorts", "UdpOutDatagrams"]);

    let f = x.stop();
    f.assert_clean_exit();
    // Every MIB counter of the exit report, as `stat -a` saw it (the ARP
    // counters aside: the kernel may probe its neighbour at any time).
    let counters = f.json["counters"].as_object().unwrap();
    assert!(counters.len() > 100);
    for (name, v) in counters {
        if name.starts_with("XskArp") {
            continue;
        }
        assert_eq!(absolute[name], v.as_u64().unwrap(), "{name}: stat -a vs --stats-json");
    }
    for (stat, json) in [("XdpProgRedirectIpv4", "redirect_ipv4"), ("XdpProgPassNotOurs", "pass_not_ours")] {
        assert_eq!(absolute[stat], f.json["xdp_prog"][json].as_u64().unwrap(), "{stat}");
    }
    let _ = std::fs::remove_file(&history);
}

#[test]
fn a_killed_instance_leaves_a_stale_socket_that_is_replaced_or_cleared() {
    if !testing::require_root("a_killed_instance_leaves_a_stale_socket_that_is_replaced_or_cleared") {
        return;
    }
    let pair = pair();
    let (ns, ifname) = (pair.ns(), pair.ifname());
    let history = std::env::temp_dir().join(format!("xsknet-stat-history-{}-{ifname}", std::process::id()));
    // A run directory of its own: `list` removes every stale socket it finds, and the
    // `list` of a test running beside this one once removed this test's before it
    // could (2026-12-03, under `make test`).
    let run_dir = std::env::temp_dir().join(format!("xsknet-run-{}-{ifname}", std::process::id()));
    std::fs::create_dir_all(&run_dir).unwrap();
    let env = [("XSKNET_RUN_DIR", run_dir.as_os_str())];
    let xsknet = |ns: &str, history: &std::path::Path, args: &[&str]| xsknet_env(ns, history, args, &env);
    let start_echo = |extra: &[&str]| {
        let mut x = Xsknet::spawn_command_env(ns, "echo", ifname, ECHO_PORT, extra, &env);
        x.wait_ready(READY_TIMEOUT).unwrap_or_else(|e| panic!("xsknet did not become ready: {e}"));
        x
    };
    let mut x = start_echo(&[]);
    let list = ok_stdout(&xsknet(ns, &history, &["list"]));
    let line = list.lines().find(|l| l.starts_with(ifname)).unwrap_or_else(|| panic!("{list}"));
    let socket = line.split_whitespace().find(|w| w.ends_with(".sock")).expect("the control socket's path");
    let mode = std::fs::metadata(socket).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.unwrap(), 0o600, "{socket}");

    // Killed: its socket stays behind, and the next instance on the queue replaces it.
    x.kill9();
    assert!(std::path::Path::new(socket).exists());
    let out = xsknet(ns, &history, &["stat", "--iface", ifname]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&format!("no xsknet instance on {ifname}")), "{stderr}");
    // Threaded this time: its loop publishes too.
    let mut x = start_echo(&["--threaded"]);
    let list = ok_stdout(&xsknet(ns, &history, &["list"]));
    let line = list.lines().find(|l| l.starts_with(ifname)).unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains(&x.pid().to_string()) && !line.contains("stale"), "{line}");
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    udp_echoes(pair.peer_ns(), 7);
    std::thread::sleep(Duration::from_millis(300));
    let stat = ok_stdout(&xsknet(ns, &history, &["stat", "--json", "-a", "-s", "--iface", ifname]));
    let v: serde_json::Value = serde_json::from_str(&stat).unwrap_or_else(|e| panic!("{e}: {stat}"));
    assert_eq!(v["xsknet"]["UdpInDatagrams"], 7, "{stat}");
    let ss = ok_stdout(&xsknet(ns, &history, &["ss", "-u", "-l", "--iface", ifname]));
    assert!(ss.contains("UNCONN") && ss.contains("0.0.0.0:7"), "{ss}");

    // Killed again: `list` shows the stale socket and clears it.
    x.kill9();
    let list = ok_stdout(&xsknet(ns, &history, &["list"]));
    assert!(
        list.lines().any(|l| l.contains(socket) && l.contains("stale") && l.contains("removed")),
        "the killed instance's socket not found stale: {list}"
    );
    assert!(!std::path::Path::new(socket).exists(), "{socket} not removed by list");

    // A clean stop removes its own socket.
    let x = start_echo(&[]);
    assert!(std::path::Path::new(socket).exists());
    let f = x.stop();
    f.assert_clean_exit();
    assert!(!std::path::Path::new(socket).exists(), "{socket} left behind after a clean stop");
    let _ = std::fs::remove_file(&history);
    std::fs::remove_dir(&run_dir).expect("the run directory empty at the end");
}

/// The loop's CPU figures are live in `stat` (not only in the exit report),
/// and an instance stopped with SIGSTOP is named as not answering, with its
/// pid and how to resume it, not as "no instance".
#[test]
fn cpu_figures_are_live_and_a_stopped_instance_is_named() {
    if !testing::require_root("cpu_figures_are_live_and_a_stopped_instance_is_named") {
        return;
    }
    let pair = pair();
    let (ns, ifname) = (pair.ns(), pair.ifname());
    let history = std::env::temp_dir().join(format!("xsknet-stat-history-{}-{ifname}", std::process::id()));
    let x = Xsknet::start_echo(ns, ifname, &[]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    let stat = stat_json(ns, &history, &["-a", "-s", "--iface", ifname, "Softirq*"]);
    for k in ["SoftirqCpuNs", "SoftirqPublications", "SoftirqPublishCpuNs"] {
        assert!(stat.get(k).is_some_and(|v| *v > 0), "{k}: {stat:?}");
    }
    assert!(stat.contains_key("SoftirqOtherThreadsCpuNs"), "{stat:?}");

    x.signal(libc::SIGSTOP);
    let out = xsknet(ns, &history, &["stat", "--iface", ifname]);
    x.signal(libc::SIGCONT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pid = x.pid();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains(&format!("the xsknet instance (pid {pid}) is not answering"))
            && stderr.contains(&format!("kill -CONT {pid}"))
            && !stderr.contains("no xsknet instance"),
        "{stderr}"
    );
    let f = x.stop();
    f.assert_clean_exit();
    let at_exit = f.json["softirq"]["loop_cpu_ns"].as_u64().unwrap();
    assert!(at_exit >= stat["SoftirqCpuNs"], "{at_exit} < {}", stat["SoftirqCpuNs"]);
    let _ = std::fs::remove_file(&history);
}
