//! End to end, with the kernel as the peer: `xsknet echo` runs as a child process
//! in one namespace of a veth pair, and the kernel of the other namespace pings
//! it, sends it UDP, and gets its ICMP errors. Every test stops xsknet with
//! SIGINT and checks the exit status and that every UMEM frame is accounted
//! for, then checks the counters of the JSON report.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `ethtool` and
//! `iputils-ping`.

mod common;

use std::{
    io::ErrorKind,
    net::UdpSocket,
    time::{Duration, Instant},
};

use common::*;
use xsknet::testing::{self, in_netns, run_in, NetNsPair, NetNsPairOptions};

#[test]
fn ping_gets_replies() {
    if !testing::require_root("ping_gets_replies") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let warm_up = warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    let (sent, received) = ping(pair.peer_ns(), SERVER_ADDR, 5, "0.2", "1");
    assert_eq!((sent, received), (5, 5), "ping -c 5");

    let f = x.stop();
    f.assert_clean_exit();
    // The warm-up pings that went unanswered may or may not have reached xsknet;
    // with the usual single warm-up ping this is exact: 6.
    let echos = f.counter("IcmpInEchos");
    assert!(
        (5 + 1..=5 + u64::from(warm_up)).contains(&echos),
        "IcmpInEchos {echos}: expected 5 + 1..={warm_up} warm-up"
    );
    for name in ["IcmpOutEchoReps", "IcmpMsgInType8", "IcmpMsgOutType0"] {
        assert_eq!(f.counter(name), echos, "{name} vs IcmpInEchos");
    }
    assert_eq!(f.counter("IcmpInMsgs"), echos);
    assert_eq!(f.counter("IcmpOutMsgs"), echos);
    assert_eq!(f.counter("IcmpInErrors"), 0);
    assert_eq!(f.counter("IcmpInCsumErrors"), 0);
    assert_eq!(f.counter("IpInHdrErrors"), 0);
}

/// Every payload size a 1500-byte MTU carries unfragmented (1..=1472), each
/// with its own pattern, echoed byte for byte.
fn udp_echo_every_size(test: &str, extra: &[&str]) {
    if !testing::require_root(test) {
        return;
    }
    const MAX: usize = 1472;
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), extra);
    let (warm_up_sent, warm_up_echoed, failures) = in_netns(pair.peer_ns(), || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).expect("bind");
        s.connect((SERVER_ADDR, ECHO_PORT)).expect("connect");
        let mut buf = [0u8; 2048];
        // Warm-up: the first datagram may meet a link that is still bouncing.
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut sent = 0;
        loop {
            s.send(b"warm-up").expect("send");
            sent += 1;
            match s.recv(&mut buf) {
                Ok(n) => {
                    assert_eq!(&buf[..n], b"warm-up");
                    break;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    assert!(sent < 10, "no echo of {sent} warm-up datagrams");
                }
                Err(e) => panic!("warm-up recv: {e}"),
            }
        }
        // Late echoes of unanswered warm-ups, if any, must not shift the run.
        let mut echoed = 1;
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        while let Ok(n) = s.recv(&mut buf) {
            assert_eq!(&buf[..n], b"warm-up");
            echoed += 1;
        }
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut failures = Vec::new();
        for size in 1..=MAX {
            let p = pattern(size);
            s.send(&p).expect("send");
            match s.recv(&mut buf) {
                Ok(n) if buf[..n] == p[..] => {}
                Ok(n) => {
                    let first_diff = (0..n.min(size)).find(|&i| buf[i] != p[i]);
                    failures.push(format!("size {size}: got {n} bytes, first difference at {first_diff:?}"));
                }
                Err(e) => failures.push(format!("size {size}: {e}")),
            }
        }
        (sent, echoed, failures)
    });

    let f = x.stop();
    assert!(
        failures.is_empty(),
        "{} of {MAX} sizes not echoed exactly; first ones: {:#?}\nxsknet stdout:\n{}",
        failures.len(),
        &failures[..failures.len().min(10)],
        f.stdout
    );
    f.assert_clean_exit();
    let expected = MAX as u64 + warm_up_echoed;
    assert!(warm_up_echoed <= warm_up_sent);
    assert_eq!(f.counter("UdpInDatagrams"), expected, "UdpInDatagrams");
    assert_eq!(f.counter("UdpOutDatagrams"), expected, "UdpOutDatagrams");
    assert_eq!(f.json["application"]["datagrams"], expected);
    assert_eq!(f.json["application"]["echo_send_failed"], 0);
    for name in ["UdpInErrors", "UdpInCsumErrors", "UdpRcvbufErrors", "UdpNoPorts", "IpInHdrErrors", "XskNoFreeFrames"]
    {
        assert_eq!(f.counter(name), 0, "{name}");
    }
}

#[test]
fn udp_echo_is_byte_exact_for_every_size_1_to_1472() {
    udp_echo_every_size("udp_echo_is_byte_exact_for_every_size_1_to_1472", &[]);
}

#[test]
fn udp_echo_is_byte_exact_for_every_size_1_to_1472_threaded() {
    udp_echo_every_size("udp_echo_is_byte_exact_for_every_size_1_to_1472_threaded", &["--threaded"]);
}

/// `ping -s 4000`: the kernel fragments the request, xsknet reassembles it
/// and answers in fragments, the kernel reassembles the reply.
#[test]
fn large_ping_gets_replies() {
    if !testing::require_root("large_ping_gets_replies") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    let addr = SERVER_ADDR.to_string();
    let out = run_in(pair.peer_ns(), &["ping", "-n", "-q", "-c", "3", "-s", "4000", "-i", "0.2", "-W", "1", &addr]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 packets transmitted, 3 received"), "{text}");
    let f = x.stop();
    f.assert_clean_exit();
    assert_eq!(f.counter("IpReasmOKs"), 3);
    assert_eq!(f.counter("IpFragOKs"), 3);
    assert_eq!(f.counter("IpFragCreates"), 9, "4008 bytes of ICMP in 3 fragments each way");
}

/// Datagrams past one frame, both ways with the kernel: the kernel fragments
/// what it sends, xsknet reassembles it (`ip_defrag`), the echo reads the
/// whole datagram and sends it back in fragments (`ip_do_fragment`), and the
/// kernel reassembles those.
fn udp_echo_large(test: &str, extra: &[&str]) {
    if !testing::require_root(test) {
        return;
    }
    const SIZES: [usize; 4] = [1473, 4000, 20000, 65507];
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), extra);
    let failures = in_netns(pair.peer_ns(), || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).expect("bind");
        s.connect((SERVER_ADDR, ECHO_PORT)).expect("connect");
        let mut buf = vec![0u8; 70000];
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        for i in 0.. {
            s.send(b"warm-up").expect("send");
            if s.recv(&mut buf).is_ok() {
                break;
            }
            assert!(i < 10, "no echo of the warm-up datagrams");
        }
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        while s.recv(&mut buf).is_ok() {}
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut failures = Vec::new();
        for size in SIZES {
            for _ in 0..3 {
                let p = pattern(size);
                s.send(&p).expect("send");
                match s.recv(&mut buf) {
                    Ok(n) if buf[..n] == p[..] => {}
                    Ok(n) => failures.push(format!("size {size}: got {n} bytes, not the same")),
                    Err(e) => failures.push(format!("size {size}: {e}")),
                }
            }
        }
        failures
    });
    let f = x.stop();
    assert!(failures.is_empty(), "{failures:#?}\nxsknet stdout:\n{}", f.stdout);
    f.assert_clean_exit();
    // Fragments per datagram at MTU 1500: 1480 bytes of IP payload each.
    let frags: u64 = SIZES.iter().map(|&n| (n as u64 + 8).div_ceil(1480)).sum::<u64>() * 3;
    assert_eq!(f.counter("IpReasmOKs"), 12, "every datagram reassembled");
    assert_eq!(f.counter("IpReasmReqds"), frags);
    assert_eq!(f.counter("IpFragOKs"), 12, "every echo fragmented");
    assert_eq!(f.counter("IpFragCreates"), frags);
    for name in ["IpReasmFails", "IpFragFails", "UdpInErrors", "UdpInCsumErrors", "XskNoFreeFrames"] {
        assert_eq!(f.counter(name), 0, "{name}");
    }
}

#[test]
fn udp_echo_of_datagrams_larger_than_the_mtu() {
    udp_echo_large("udp_echo_of_datagrams_larger_than_the_mtu", &[]);
}

#[test]
fn udp_echo_of_datagrams_larger_than_the_mtu_threaded() {
    udp_echo_large("udp_echo_of_datagrams_larger_than_the_mtu_threaded", &["--threaded"]);
}

#[test]
fn closed_port_gives_econnrefused() {
    if !testing::require_root("closed_port_gives_econnrefused") {
        return;
    }
    const CLOSED_PORT: u16 = 9;
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    let (sent, result) = in_netns(pair.peer_ns(), || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).expect("bind");
        s.connect((SERVER_ADDR, CLOSED_PORT)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 64];
        let mut sent = 0;
        // At most 3 tries: far below the per-host ICMP burst of 6.
        loop {
            s.send(b"anyone there?").expect("send");
            sent += 1;
            match s.recv(&mut buf) {
                Err(e) if sent < 3 && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                other => return (sent, other.map_err(|e| e.kind())),
            }
        }
    });
    assert_eq!(result, Err(ErrorKind::ConnectionRefused), "recv after a send to a closed port ({sent} sent)");

    let f = x.stop();
    f.assert_clean_exit();
    assert_eq!(sent, 1, "the first datagram went unanswered");
    assert_eq!(f.counter("UdpNoPorts"), 1);
    assert_eq!(f.counter("IcmpOutDestUnreachs"), 1);
    assert_eq!(f.counter("IcmpMsgOutType3"), 1);
    assert_eq!(f.counter("IcmpOutRateLimitHost"), 0);
    assert_eq!(f.counter("IcmpOutRateLimitGlobal"), 0);
    assert_eq!(f.counter("UdpInDatagrams"), 0);
    assert_eq!(f.counter("UdpInErrors"), 0);
}

#[test]
fn kill_9_leaves_no_xdp_program_and_restart_serves_at_once() {
    if !testing::require_root("kill_9_leaves_no_xdp_program_and_restart_serves_at_once") {
        return;
    }
    let pair = pair();
    let mut x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    let details = link_details(pair.ns(), pair.ifname());
    assert!(shows_xdp(&details), "no XDP program while serving:\n{details}");

    x.kill9();
    // The bpf_link goes with the process's last descriptor; it is gone by the
    // time the parent reaps it. Allow a moment anyway, and say how long it took.
    let killed = Instant::now();
    let mut details = link_details(pair.ns(), pair.ifname());
    while shows_xdp(&details) && killed.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(20));
        details = link_details(pair.ns(), pair.ifname());
    }
    assert!(!shows_xdp(&details), "an XDP program is still attached 1 s after kill -9:\n{details}");
    eprintln!("kill -9: XDP program gone after {:?}", killed.elapsed());

    // At once: the queue may still be EBUSY for a moment; xsknet retries.
    let restart = Instant::now();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let ready_after = restart.elapsed();
    let budget = Duration::from_millis(2500);
    let served_after = loop {
        let (_, received) = ping(pair.peer_ns(), SERVER_ADDR, 1, "0.2", "0.5");
        if received == 1 {
            break restart.elapsed();
        }
        assert!(
            restart.elapsed() < budget,
            "no ping reply within {budget:?} of restarting after kill -9 (ready after {ready_after:?})"
        );
    };
    eprintln!("restart: ready after {ready_after:?}, first ping answered after {served_after:?}");

    let f = x.stop();
    f.assert_clean_exit();
    assert!(f.counter("IcmpOutEchoReps") >= 1);
}

#[test]
fn second_instance_refused_without_replace() {
    if !testing::require_root("second_instance_refused_without_replace") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));

    // --duration bounds it should it wrongly start serving.
    let ip = format!("{SERVER_ADDR}/{PREFIX}");
    let args = [BIN, "echo", "--iface", pair.ifname(), "--ip", &ip, "--port", "7", "--duration", "2"];
    // The control endpoint answers first, naming the instance that runs.
    let out = run_in(pair.ns(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second xsknet started on the same interface: {out:?}");
    let pid = format!("pid {}", x.pid());
    assert!(
        stderr.lines().any(|l| l.contains("already running") && l.contains(&pid)),
        "no line with \"already running\" and \"{pid}\" in stderr:\n{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"), "{out:?}");
    // Without one, the XDP attach refuses.
    let out = run_in(pair.ns(), &[&args[..], &["--no-control"]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second xsknet started on the same interface: {out:?}");
    assert!(
        stderr.lines().any(|l| l.contains("already attached") && l.contains("--replace")),
        "no line with \"already attached\" and \"--replace\" in stderr:\n{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready"), "{out:?}");

    // The first instance is untouched.
    let (_, received) = ping(pair.peer_ns(), SERVER_ADDR, 1, "0.2", "1");
    assert_eq!(received, 1, "the first instance stopped serving");
    let f = x.stop();
    f.assert_clean_exit();
}

#[test]
fn default_route_interface_refused_without_force() {
    if !testing::require_root("default_route_interface_refused_without_force") {
        return;
    }
    // A kernel address on the xsknet side, and the default route through the
    // veth: only inside the test's own namespace.
    let pair = NetNsPair::with_options(&NetNsPairOptions {
        addr: Some((std::net::Ipv4Addr::new(10, 77, 0, 3), PREFIX)),
        peer_addr: Some((PEER_ADDR, PREFIX)),
        ipv6: false,
        ..NetNsPairOptions::default()
    })
    .expect("netns pair");
    let out = pair.run(&["ip", "route", "add", "default", "via", &PEER_ADDR.to_string(), "dev", pair.ifname()]);
    assert!(out.status.success(), "ip route add default: {out:?}");

    let ip = format!("{SERVER_ADDR}/{PREFIX}");
    let args = [BIN, "echo", "--iface", pair.ifname(), "--ip", &ip, "--port", "7", "--duration", "2"];
    let out = run_in(pair.ns(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "xsknet attached to the default-route interface without --force: {out:?}");
    assert!(
        stderr.lines().any(|l| l.contains("default route") && l.contains("--force")),
        "no line with \"default route\" and \"--force\" in stderr:\n{stderr}"
    );
    let details = link_details(pair.ns(), pair.ifname());
    assert!(!shows_xdp(&details), "refused, yet attached:\n{details}");

    // With --force it serves.
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--force"]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    let f = x.stop();
    f.assert_clean_exit();
}

/// `--replace` while another instance still holds the queue: the AF_XDP bind
/// fails (EBUSY) before anything is attached, so the first instance keeps its
/// program and keeps serving.
#[test]
fn replace_while_the_queue_is_held_leaves_the_first_instance_serving() {
    if !testing::require_root("replace_while_the_queue_is_held_leaves_the_first_instance_serving") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));

    let ip = format!("{SERVER_ADDR}/{PREFIX}");
    // Past the control endpoint (which would refuse first), to the queue itself.
    let args = [
        BIN,
        "echo",
        "--iface",
        pair.ifname(),
        "--ip",
        &ip,
        "--port",
        "7",
        "--duration",
        "2",
        "--replace",
        "--no-control",
    ];
    let out = run_in(pair.ns(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second xsknet took the queue: {out:?}");
    assert!(stderr.contains("in use by another AF_XDP socket"), "{stderr}");

    let (_, received) = ping(pair.peer_ns(), SERVER_ADDR, 3, "0.2", "1");
    assert_eq!(received, 3, "the first instance lost its program");
    let f = x.stop();
    f.assert_clean_exit();
}

/// `GET /metrics` at 127.0.0.1:`port` in `ns`: the body.
fn scrape(ns: &str, port: u16) -> String {
    in_netns(ns, || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut all = String::new();
        c.read_to_string(&mut all).unwrap();
        all
    })
}

/// On an interface with two queues, an instance serves queue 0 and a second
/// one asks for queue 1 with `--replace`: refused, naming the first (pid,
/// queue, what to do), and the first keeps serving (before, `--replace`
/// detached its program and it went silent). Then another process takes
/// the first one's program off (`BPF_LINK_DETACH`, as another tool's
/// `--replace` does): `xsknet list`, `/metrics`, a warning on stderr and the
/// exit report say so.
#[test]
fn replace_on_another_queue_is_refused_and_a_detached_program_is_shown() {
    if !testing::require_root("replace_on_another_queue_is_refused_and_a_detached_program_is_shown") {
        return;
    }
    let pair = NetNsPair::with_options(&NetNsPairOptions {
        peer_addr: Some((PEER_ADDR, PREFIX)),
        ipv6: false,
        queues: 2,
        ..NetNsPairOptions::default()
    })
    .expect("netns pair");
    let (ns, ifname) = (pair.ns(), pair.ifname());
    let x = Xsknet::start_echo(ns, ifname, &["--metrics", "127.0.0.1:9464"]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    let prog_id = in_netns(ns, || xsknet::xdp::netlink::get_link(ifname).unwrap().xdp.any_prog_id()).expect("attached");

    let args = [BIN, "echo", "--iface", ifname, "--queue", "1", "--ip", "10.77.0.3/24", "--duration", "2", "--replace"];
    let out = run_in(ns, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second instance started: {out:?}");
    let pid = x.pid();
    assert!(
        stderr.contains(&format!("the XDP program {prog_id} on {ifname} serves a running xsknet (pid {pid}, queue 0"))
            && stderr.contains(&format!("stop that instance first (kill {pid})")),
        "{stderr}"
    );
    let still = in_netns(ns, || xsknet::xdp::netlink::get_link(ifname).unwrap().xdp.any_prog_id());
    assert_eq!(still, Some(prog_id), "the first instance's program was replaced");
    let (_, received) = ping(pair.peer_ns(), SERVER_ADDR, 3, "0.2", "1");
    assert_eq!(received, 3, "the first instance went silent");

    let list = String::from_utf8_lossy(&run_in(ns, &[BIN, "list"]).stdout).into_owned();
    assert!(list.lines().any(|l| l.starts_with(ifname) && l.contains(&format!(" {prog_id} attached "))), "{list}");
    let attached = format!("xsknet_xdp_prog_attached{{prog_id=\"{prog_id}\"}}");
    assert!(scrape(ns, 9464).lines().any(|l| l == format!("{attached} 1")), "not shown attached");

    // Another process takes the program off, as another program's --replace would.
    in_netns(ns, || {
        let index = xsknet::xdp::interface_index(ifname).unwrap();
        let links = xsknet::xdp::bpf::xdp_links(index, prog_id).unwrap();
        assert_eq!(links.len(), 1);
        xsknet::xdp::bpf::link_detach(links[0].as_fd_ref()).unwrap();
    });
    let t0 = Instant::now();
    let list = loop {
        let list = String::from_utf8_lossy(&run_in(ns, &[BIN, "list"]).stdout).into_owned();
        if list.contains(&format!(" {prog_id} DETACHED ")) {
            break list;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "never shown detached:\n{list}");
    };
    assert!(list.lines().any(|l| l.starts_with(ifname)), "{list}");
    let metrics = scrape(ns, 9464);
    assert!(metrics.lines().any(|l| l == format!("{attached} 0")), "not shown detached:\n{metrics}");
    let (_, received) = ping(pair.peer_ns(), SERVER_ADDR, 2, "0.2", "1");
    assert_eq!(received, 0, "answered without its program?");

    let f = x.stop();
    assert!(f.status.success(), "{}", f.stderr);
    assert!(f.stderr.contains(&format!("the XDP program {prog_id} is no longer attached")), "{}", f.stderr);
    assert!(f.stdout.contains(&format!("XDP program: id {prog_id}, DETACHED while running")), "{}", f.stdout);
    assert_eq!(f.json["xdp_program"], serde_json::json!({ "id": prog_id, "attached": false }));
}

/// SIGHUP (the terminal closed) stops xsknet as SIGINT and SIGTERM do: the
/// exit report printed, `--stats-json` written, exit status 0.
#[test]
fn sighup_stops_with_the_exit_report() {
    if !testing::require_root("sighup_stops_with_the_exit_report") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let (_, received) = ping(pair.peer_ns(), SERVER_ADDR, 2, "0.2", "1");
    let f = x.stop_with(libc::SIGHUP);
    f.assert_clean_exit();
    assert!(f.stdout.contains("xsknet: stopped after"), "no exit report:\n{}", f.stdout);
    assert!(f.counter("IcmpInEchos") >= u64::from(received));
}
