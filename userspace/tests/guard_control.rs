//! The XDP guard of a running instance, changed at run time through its
//! control endpoint: `xsknet echo --guard` serves in one namespace of a veth
//! pair, the kernel of the other sends it UDP, and `xsknet guard …` (run as
//! a user would, as a separate process) blocks, allows and limits the
//! sender. Each change must take effect for the next datagram, and every
//! dropped datagram must be counted once, under its reason and its rule, in
//! `xsknet guard --json` and `xsknet stat`.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `iputils-ping`.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::process::Output;
use std::time::Duration;

use common::*;
use xsknet::testing::{self, in_netns};

fn xsknet(ns: &str, args: &[&str]) -> Output {
    let history = std::env::temp_dir().join(format!("xsknet-guard-history-{}", std::process::id()));
    let mut cmd = testing::command_in(ns, &[&[BIN], args].concat());
    cmd.env("XSKNET_STAT_HISTORY", history);
    cmd.output().expect("run xsknet")
}

fn ok_stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `xsknet guard --iface IFACE ARGS` (other tests' instances may run beside this one).
fn guard(ns: &str, iface: &str, args: &[&str]) -> Output {
    xsknet(ns, &[&["guard", "--iface", iface], args].concat())
}

/// `xsknet guard --iface IFACE --json ARGS`.
fn guard_json(ns: &str, iface: &str, args: &[&str]) -> serde_json::Value {
    let out = ok_stdout(&guard(ns, iface, &[&["--json"], args].concat()));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The guard's counters by name, from a `guard --json` answer.
fn reasons(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v["counters"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r["value"].as_u64().unwrap()))
        .collect()
}

/// Sends `n` datagrams from the peer at once, then collects the echoes for
/// 300 ms; returns how many came back.
fn burst_of_echoes(ns: &str, n: usize) -> usize {
    in_netns(ns, || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).unwrap();
        s.connect((SERVER_ADDR, ECHO_PORT)).unwrap();
        for i in 0..n {
            s.send(format!("datagram {i}").as_bytes()).unwrap();
        }
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut buf = [0u8; 64];
        let mut got = 0;
        while s.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    })
}

#[test]
fn rules_changed_at_run_time_take_effect_and_every_drop_is_counted_once() {
    if !testing::require_root("rules_changed_at_run_time_take_effect_and_every_drop_is_counted_once") {
        return;
    }
    let pair = pair();
    let (ns, peer, ifname) = (pair.ns(), pair.peer_ns(), pair.ifname());
    let x = Xsknet::start_echo(ns, ifname, &["--guard"]);
    warm_up_ping(peer, SERVER_ADDR, Duration::from_secs(5));

    // On, with the default policy: the peer's echoes pass.
    let show = ok_stdout(&guard(peer, ifname, &[]));
    assert!(show.starts_with("guard: on"), "{show}");
    assert!(show.contains("XdpGuardPass"), "{show}");
    assert_eq!(burst_of_echoes(peer, 5), 5);
    let passed0 = reasons(&guard_json(peer, ifname, &[]))["XdpGuardPass"];
    assert!(passed0 >= 5, "passed {passed0}");

    // Block the peer: nothing comes back, and each datagram is counted once,
    // under the reason and under the rule.
    let out = ok_stdout(&guard(peer, ifname, &["block", "10.77.0.1"]));
    assert!(out.contains("guard: block 10.77.0.1/32"), "{out}");
    assert_eq!(burst_of_echoes(peer, 10), 0);
    let v = guard_json(peer, ifname, &[]);
    assert_eq!(reasons(&v)["XdpGuardDropBlocklist"], 10, "{v}");
    let rules = v["counters"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{v}");
    assert_eq!((rules[0]["list"].as_str(), rules[0]["hits"].as_u64()), (Some("block"), Some(10)), "{v}");
    // `xsknet stat` shows the same counter.
    let stat = ok_stdout(&xsknet(peer, &["stat", "--iface", ifname, "-a", "--json", "XdpGuard*"]));
    let stat: serde_json::Value = serde_json::from_str(&stat).unwrap();
    assert_eq!(stat["xsknet"]["XdpGuardDropBlocklist"].as_u64(), Some(10), "{stat}");

    // The allowlist wins over the blocklist.
    ok_stdout(&guard(peer, ifname, &["allow", "10.77.0.0/24"]));
    assert_eq!(burst_of_echoes(peer, 4), 4);
    let r = reasons(&guard_json(peer, ifname, &[]));
    assert_eq!((r["XdpGuardPassAllowlist"], r["XdpGuardDropBlocklist"]), (4, 10));

    // Removing what is not there is an error that says so; nothing changes.
    let out = guard(peer, ifname, &["unblock", "10.99.0.0/16"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("10.99.0.0/16 is not in the blocklist"), "{err}");
    // Several prefixes are one request each: a failure says what went in before it.
    ok_stdout(&guard(peer, ifname, &["block", "10.55.0.0/16"]));
    let out = guard(peer, ifname, &["unblock", "10.55.0.0/16", "10.57.0.0/16"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(applied before it: unblock 10.55.0.0/16; the rest not)"), "{err}");
    // A prefix with host bits set is refused before it is sent.
    let out = guard(peer, ifname, &["block", "10.0.0.5/8"]);
    assert!(!out.status.success());

    // Lists emptied: a global UDP limit of 1 a second with a burst of 3
    // lets 3 of 10 datagrams sent at once through.
    ok_stdout(&guard(peer, ifname, &["unallow", "10.77.0.0/24"]));
    ok_stdout(&guard(peer, ifname, &["unblock", "10.77.0.1/32"]));
    ok_stdout(&guard(peer, ifname, &["limit", "udp", "--pps", "1", "--burst", "3"]));
    let before = reasons(&guard_json(peer, ifname, &[]));
    let got = burst_of_echoes(peer, 10);
    let after = reasons(&guard_json(peer, ifname, &[]));
    let dropped = after["XdpGuardDropGlobalUdp"] - before["XdpGuardDropGlobalUdp"];
    assert!((3..=4).contains(&got), "{got} echoes through a bucket of 3 at 1 pps");
    assert_eq!(dropped as usize + got, 10, "each datagram passed or was counted as dropped");
    let v = guard_json(peer, ifname, &["limit", "udp", "--none"]);
    assert!(v["rules"]["global"]["udp"].is_null(), "{v}");
    assert_eq!(burst_of_echoes(peer, 10), 10);

    // Off: the program redirects as without a guard, and counts nothing more.
    ok_stdout(&guard(peer, ifname, &["block", "10.77.0.1"]));
    ok_stdout(&guard(peer, ifname, &["off"]));
    let before = reasons(&guard_json(peer, ifname, &[]));
    assert_eq!(burst_of_echoes(peer, 5), 5, "the guard is off: its blocklist does not apply");
    assert_eq!(reasons(&guard_json(peer, ifname, &[])), before);

    let done = x.stop();
    done.assert_clean_exit();
}

#[test]
fn an_instance_without_a_guard_says_how_to_get_one() {
    if !testing::require_root("an_instance_without_a_guard_says_how_to_get_one") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let out = guard(pair.peer_ns(), pair.ifname(), &["block", "10.77.0.1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no guard: start it with --guard"), "{err}");
    x.stop().assert_clean_exit();
}

/// The adaptive mode end to end: one source floods at 100 000 packets a
/// second with no per-source limit, the loop goes over the (low) threshold,
/// the source is tightened within about a second and its frames dropped in
/// XDP; it is relaxed once it has stopped; each change is logged and counted.
#[test]
fn the_adaptive_mode_tightens_a_flooding_source_and_relaxes_it_once_it_stops() {
    if !testing::require_root("the_adaptive_mode_tightens_a_flooding_source_and_relaxes_it_once_it_stops") {
        return;
    }
    let pair = pair();
    let (ns, peer, ifname) = (pair.ns(), pair.peer_ns(), pair.ifname());
    let rules = std::env::temp_dir().join(format!("xsknet-adaptive-{}-{ifname}.toml", std::process::id()));
    std::fs::write(
        &rules,
        "[adaptive]\nthreshold = 0.02\nhold_secs = 0.5\ntighten_pps = 100\nmin_share = 0.5\nrelax_secs = 1\n",
    )
    .unwrap();
    // Started with the default policy; the low threshold comes with a rules
    // file loaded at run time, which the adaptive mode must follow.
    let x = Xsknet::start_echo(ns, ifname, &["--guard"]);
    warm_up_ping(peer, SERVER_ADDR, Duration::from_secs(5));
    ok_stdout(&guard(peer, ifname, &["load", rules.to_str().unwrap()]));

    // 3 s of UDP from the peer's address to the open port, 100 000 a second.
    let mut flood = testing::command_in(
        peer,
        &[
            BIN,
            "pktgen",
            "--iface",
            pair.peer_ifname(),
            "--src",
            "10.77.0.1/24",
            "--dst",
            "10.77.0.2",
            "--dst-port",
            "7",
            "--flood",
            "udp",
            "--rate",
            "100000",
            "--duration",
            "3",
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("run xsknet pktgen");
    // Looked at while the flood runs: once the generator has stopped, a loaded machine
    // may take longer than relax_secs to get here, and the source is rightly relaxed.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let v = loop {
        let v = guard_json(peer, ifname, &[]);
        if !v["tightened"].as_array().unwrap().is_empty() || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = flood.wait().expect("wait for xsknet pktgen");
    assert!(status.success(), "{status:?}");
    let tightened = v["tightened"].as_array().unwrap();
    assert_eq!(tightened.len(), 1, "{v}");
    assert_eq!(tightened[0][0], "10.77.0.1", "{v}");
    let v_after = guard_json(peer, ifname, &[]);
    let dropped = reasons(&v_after)["XdpGuardDropTightened"];
    assert!(dropped > 100_000, "most of 300 000 frames dropped in XDP once tightened: {dropped}; {v_after}");
    assert_eq!(v["adaptive"]["tightens"], 1, "{v}");

    // Quiet now: relaxed after relax_secs (1 s) of staying under the limit.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let v = loop {
        let v = guard_json(peer, ifname, &[]);
        if v["tightened"].as_array().unwrap().is_empty() || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(v["adaptive"]["relaxes"], 1, "relaxed once it stopped: {v}");
    assert_eq!(burst_of_echoes(peer, 5), 5, "its traffic passes again");
    // Rules without [adaptive]: the mode goes off.
    std::fs::write(&rules, "").unwrap();
    ok_stdout(&guard(peer, ifname, &["load", rules.to_str().unwrap()]));
    std::thread::sleep(Duration::from_millis(300));

    let done = x.stop();
    done.assert_clean_exit();
    let _ = std::fs::remove_file(&rules);
    assert!(done.stderr.contains("guard: adaptive: tightened 10.77.0.1 to 100 pps"), "{}", done.stderr);
    assert!(done.stderr.contains("guard: adaptive: relaxed 10.77.0.1"), "{}", done.stderr);
    assert_eq!(done.json["guard_adaptive"]["tightens"], 1);
    assert!(done.stderr.contains("guard: adaptive: new settings, at 2 % busy"), "{}", done.stderr);
    assert!(done.stderr.contains("guard: adaptive: off"), "{}", done.stderr);
}
