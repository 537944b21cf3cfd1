//! `make bench --quick` as a smoke test: the whole side-by-side benchmark
//! runs, every receiver and every echo server answers, the flood section has
//! its rows (each server unloaded, then flooded), the TCP section has its rows
//! (requests, request/response, bulk send and receive, under loss) with every
//! answer whole, the results are written, and nothing is left behind. Rates are not judged here: on a
//! shared 2-core VM they are for `make bench` to report, not for a test.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn bin_dir() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_side-by-side"));
    exe.parent().expect("target dir").to_path_buf()
}

#[test]
fn quick_run_measures_every_receiver_and_cleans_up() {
    if !xsknet::testing::require_root("quick_run_measures_every_receiver_and_cleans_up") {
        return;
    }
    let bins = bin_dir();
    for exe in ["xsknet", "xsknet-pktgen", "baseline", "xsknet-impair"] {
        assert!(bins.join(exe).exists(), "{} not built: run `cargo build --release --workspace`", exe);
    }
    let out_dir = std::env::temp_dir().join(format!("xsknet-sbs-test-{}", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_side-by-side"))
        .args(["--quick", "--count", "100000", "--latency-secs", "0.5", "--flood-secs", "1"])
        .arg("--out")
        .arg(&out_dir)
        .arg("--bin-dir")
        .arg(&bins)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its namespaces are named after its process id (`xsk<pid>-…`, in hex
    // when long: `testing::unique_base`): only those are its to remove;
    // other tests may make their own meanwhile.
    let ours = [format!("xsk{}-", child.id()), format!("xsk{:x}-", child.id())];
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "side-by-side failed:\n{stderr}\n{}", String::from_utf8_lossy(&out.stdout));
    let json = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a results .json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let receivers: Vec<&str> =
        v["throughput"].as_array().unwrap().iter().map(|t| t["receiver"].as_str().unwrap()).collect();
    assert_eq!(
        receivers,
        ["xdp-drop", "xsk-rxdrop", "xsk-rxdrop-touch", "kernel-udp", "xsknet-sink", "xsknet-sink-pcap"]
    );
    // The bare loop that reads its packets says so.
    assert!(v["throughput"][2]["median"]["detail"]["receiver"]["touched"].as_u64().is_some(), "{}", v["throughput"][2]);
    // The --pcap row says what its capture wrote and dropped.
    let pcap = &v["throughput"][5]["median"]["detail"]["receiver"];
    assert!(pcap["pcap"].as_str().is_some_and(|l| l.contains("frames written")), "{pcap}");
    assert!(pcap["XskCaptureDrops"].as_u64().is_some(), "{pcap}");
    for t in v["throughput"].as_array().unwrap() {
        let median = &t["median"];
        assert!(median["sent"].as_u64().unwrap() >= 100_000, "{t}");
        assert!(median["received"].as_u64().unwrap() > 0, "{} received nothing: {t}", t["receiver"]);
    }
    // The cost of observing: the sink with nothing published, the control endpoint, and the
    // metrics scraped (every scrape and `xsknet stat` answered, or the run fails).
    let observed: Vec<&str> =
        v["observability"].as_array().unwrap().iter().map(|t| t["receiver"].as_str().unwrap()).collect();
    assert_eq!(observed, ["xsknet-sink-no-control", "xsknet-sink-control", "xsknet-sink-metrics"]);
    for t in v["observability"].as_array().unwrap() {
        assert_eq!(t["runs"].as_array().unwrap().len(), 3, "{t}");
        assert!(t["median"]["received"].as_u64().unwrap() > 0, "{} received nothing: {t}", t["receiver"]);
    }
    let scrapes: u64 = v["observability"][2]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["detail"]["receiver"]["scrapes"]["metrics_scrapes"].as_u64().unwrap())
        .sum();
    assert!(scrapes >= 3, "{scrapes} scrapes in three runs");
    let latency = v["latency"].as_array().unwrap();
    assert_eq!(latency.len(), 10, "5 servers x 2 rates");
    // The bare AF_XDP echo (the floor beside run to completion) answers byte for byte too.
    assert!(latency.iter().any(|l| l["server"] == "xsk-echo"), "no xsk-echo row");
    for l in latency {
        assert!(l["result"]["echo"]["received"].as_u64().unwrap() > 0, "{} answered nothing: {l}", l["server"]);
    }
    // Each xsknet row carries the server's own account of where its time went.
    for l in latency.iter().filter(|l| l["server"].as_str().unwrap().starts_with("xsknet")) {
        let server = &l["result"]["server"];
        assert!(server["softirq"]["poll"]["busy_poll"]["count"].as_u64().unwrap() > 0, "{l}");
        assert!(server["softirq"]["poll"]["rx_batch"]["count"].as_u64().unwrap() > 0, "{l}");
        assert!(server["softirq"]["poll"]["rx_batch"]["mean"].as_f64().unwrap() >= 1.0, "{l}");
        assert!(server["counters"]["XskTxKicks"].as_u64().unwrap() > 0, "{l}");
        assert!(server["softirq"]["run_delay_ns"].as_u64().is_some(), "{l}");
    }
    // Under a flood: every server, unloaded then flooded (the guard's row skipped, with a note,
    // while `xsknet echo` has no --guard).
    let flood = v["flood"].as_array().unwrap();
    let servers: Vec<&str> = flood.iter().map(|r| r["server"].as_str().unwrap()).collect();
    assert_eq!(servers, ["kernel-echo-blocking", "xsknet-echo-flood", "xsknet-echo-guard"]);
    for row in flood {
        if let Some(why) = row["skipped"].as_str() {
            assert_eq!(row["server"], "xsknet-echo-guard", "{row}");
            assert!(why.contains("--guard"), "{row}");
            continue;
        }
        let phases = row["phases"].as_array().unwrap();
        let loads: Vec<&str> = phases.iter().map(|p| p["load"].as_str().unwrap()).collect();
        assert_eq!(loads, ["unloaded", "flood"], "{row}");
        let kernel = row["server"].as_str().unwrap().starts_with("kernel");
        for p in phases {
            let c = &p["client"];
            assert_eq!(c["mode"], "rate", "{row}");
            assert_eq!(c["sent"].as_u64(), Some(1000), "1 s at 1000/s: {row}");
            assert_eq!(c["mismatches"].as_u64(), Some(0), "corrupted echoes: {row}");
            let loss = c["loss"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&loss), "{row}");
            let si = p["si_share"].as_array().unwrap();
            assert!(!si.is_empty() && si.iter().all(|s| (0.0..=1.0).contains(&s.as_f64().unwrap())), "{row}");
            assert_eq!(p["ours_busy_share"].is_null(), kernel, "{row}");
            if let Some(b) = p["ours_busy_share"].as_f64() {
                assert!((0.0..=1.0).contains(&b), "{row}");
            }
            assert!(p["counter_seconds"].as_f64().unwrap() > 0.0, "{row}");
            if p["load"] == "unloaded" {
                // Alone, the client is answered, and its datagrams reach user space.
                assert!(c["ok"].as_u64().unwrap() > 0, "{row}");
                assert!(p["flood_pps"].is_null(), "{row}");
                assert!(p["user_space_frames"].as_u64().unwrap() > 0, "{row}");
            } else {
                // A flood it was: far more than the client's 1000/s.
                assert!(p["flood_pps"].as_f64().unwrap() > 20_000.0, "{row}");
                assert!(p["flood"]["sent"].as_u64().unwrap() > 0, "{row}");
            }
        }
    }
    // TCP (issue 10): every row measured, every answer whole.
    let tcp = &v["tcp"];
    assert_eq!(tcp["skipped"].as_array().unwrap().len(), 0, "a tool is missing (make deps): {}", tcp["skipped"]);
    let rows = |k: &str| tcp[k].as_array().unwrap_or_else(|| panic!("no tcp.{k}: {tcp}")).clone();
    let servers = |k: &str| rows(k).iter().map(|r| r["server"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(servers("requests"), ["nginx", "nginx", "xsknet-http", "xsknet-http"]);
    for r in rows("requests") {
        let m = &r["metrics"];
        assert!(m["requests_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(m["p50_us"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(m["non_2xx"].as_f64(), Some(0.0), "{r}");
        if let Some(failed) = m["failed"].as_f64() {
            assert_eq!(failed, 0.0, "ab: failed requests: {r}");
            assert_eq!(m["requests"].as_f64(), Some(2000.0), "{r}");
        }
        assert!(!r["setup"].as_array().unwrap().is_empty(), "{r}");
    }
    assert_eq!(
        servers("request_response"),
        ["kernel-tcp-echo-busy", "xsknet-echo", "kernel-tcp-echo-blocking", "xsknet-echo-threaded"]
    );
    for r in rows("request_response") {
        assert!(r["metrics"]["round_trips"].as_f64().unwrap() > 100.0, "{r}");
        assert_eq!(r["metrics"]["mismatches"].as_f64(), Some(0.0), "{r}");
        assert!(r["metrics"]["p99_us"].as_f64().unwrap() >= r["metrics"]["p50_us"].as_f64().unwrap(), "{r}");
    }
    // The kernel's TCP rows on CUBIC, as xsknet, whatever this machine's default is; the
    // like-for-like bulk-send row again on the default when that is another (for reference).
    let default_cc = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap_or_default();
    let default_cc = default_cc.trim();
    let cubic = xsknet_bench::tcp_bench::KERNEL_CC;
    assert_eq!(tcp["setup"]["congestion_control"]["algorithm"], cubic, "{}", tcp["setup"]);
    let reference = format!("nginx-gso-off-{default_cc}");
    let mut bulk: Vec<&str> = vec!["nginx-tso", "nginx-gso", "nginx-gso-off"];
    if default_cc != cubic {
        bulk.push(&reference);
    }
    bulk.push("xsknet-http");
    assert_eq!(servers("bulk_send"), bulk);
    for r in rows("bulk_send") {
        assert!(r["metrics"]["gbit_per_s"].as_f64().unwrap() > 0.0, "{r}");
        let cc = r["detail"]["congestion_control"].as_str().unwrap();
        assert_eq!(cc, if r["server"] == reference.as_str() { default_cc } else { cubic }, "{r}");
    }
    for k in ["requests", "request_response", "bulk_receive", "syn_flood"] {
        for r in rows(k) {
            assert_eq!(r["detail"]["congestion_control"], cubic, "{r}");
            assert!(r["setup"][0].as_str().unwrap().contains("congctl cubic"), "{r}");
        }
    }
    // The like-for-like rows really had GSO off, the others on.
    let veth = |i: usize| rows("bulk_send")[i]["detail"]["server_veth"].as_str().unwrap().to_string();
    assert!(veth(0).contains("tx-checksumming: on"), "{}", veth(0));
    assert!(veth(1).contains("tx-checksumming: off"), "{}", veth(1));
    for i in 2..bulk.len() - 1 {
        assert!(veth(i).contains("generic-segmentation-offload: off"), "{}", veth(i));
    }
    assert!(veth(bulk.len() - 1).contains("generic-segmentation-offload: on"), "{}", veth(bulk.len() - 1));
    assert_eq!(servers("bulk_receive"), ["iperf3", "kernel-tcp-sink", "xsknet-sink", "kernel-tcp-sink-gro"]);
    // Only the GRO row turned GRO on.
    for r in rows("bulk_receive") {
        let gro = r["setup"].as_array().unwrap().iter().any(|c| c.as_str().unwrap().contains("gro on"));
        assert_eq!(gro, r["server"] == "kernel-tcp-sink-gro", "{r}");
    }
    for r in rows("bulk_receive") {
        let m = &r["metrics"];
        assert!(m["gbit_per_s"].as_f64().unwrap() > 0.0, "{r}");
        // Every byte our sender sent was counted by the server (iperf3 -n reports what its
        // server had received when the client stopped sending).
        if r["server"] != "iperf3" {
            assert_eq!(m["bytes_received"].as_f64(), m["bytes_sent"].as_f64(), "{r}");
        }
        assert!(m["bytes_received"].as_f64().unwrap() > 0.9 * m["bytes_sent"].as_f64().unwrap(), "{r}");
        assert!(m["machine_cpu_s_per_gb"].as_f64().unwrap() > 0.0, "{r}");
    }
    // Each loss setting: nginx on CUBIC, as xsknet, then nginx on this machine's default
    // congestion control when that is another one (for reference), then xsknet.
    let per_setting: &[&str] =
        if default_cc == cubic { &["nginx", "xsknet-http"] } else { &["nginx", "nginx", "xsknet-http"] };
    assert_eq!(servers("loss"), per_setting.repeat(2), "the machine's default: {default_cc}");
    for r in rows("loss").into_iter().filter(|r| r["server"] == "nginx") {
        let cc = r["detail"]["congestion_control"].as_str().unwrap();
        assert!(cc == cubic || cc == default_cc, "{r}");
    }
    for r in rows("loss") {
        let what = r["what"].as_str().unwrap();
        if what.contains("--loss 1 ") {
            assert_eq!(r["metrics"]["failed"].as_f64(), Some(0.0), "4 MiB at 1 % loss: {r}");
            assert!(r["metrics"]["mbit_per_s"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    // The relay dropped frames: the loss was real.
    let relay = &rows("loss")[0]["detail"]["relay"];
    let dropped = relay["a2b"]["dropped_loss"].as_u64().unwrap() + relay["b2a"]["dropped_loss"].as_u64().unwrap();
    assert!(dropped > 0, "{relay}");
    assert!(v["setup"]["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
    assert!(md.contains("| xsknet sink (run to completion) |"), "{md}");
    assert!(md.contains("| xsknet sink --no-control (nothing published: the baseline) |"), "{md}");
    assert!(md.contains("### Under a flood"), "{md}");
    assert!(md.contains("| xsknet echo, no guard | flood |"), "{md}");
    assert!(md.contains("| kernel UDP echo (blocking recvfrom) | unloaded |"), "{md}");
    assert!(md.contains("### TCP: xsknet beside the kernel"), "{md}");
    assert!(md.contains("| TCP goal | this run |"), "{md}");
    assert!(md.contains("| xsknet echo (run to completion) |"), "{md}");
    let after = Command::new("ip").args(["netns", "list"]).output().unwrap().stdout;
    let left: Vec<&str> = std::str::from_utf8(&after)
        .unwrap()
        .lines()
        .filter(|l| ours.iter().any(|o| l.starts_with(o.as_str())))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&out_dir);
}
