//! The soak's 30-second form (issue 8, item 9; docs/soak.md): `xsknet-soak --duration 30s`,
//! xsknet echo under the generator's mix of good and malformed traffic at 80 % of the
//! measured maximum with sockets opening and closing, must PASS every check (frames back,
//! memory flat, counters adding up, no panic, the echo answered throughout).
//!
//! The soak creates and removes its own namespaces. Privileged: skipped without root,
//! failed under CI. It needs the workspace's release binaries (`make test` builds them
//! first): xsknet (`$XSKNET_BIN`, else target/release/xsknet), xsknet-pktgen and udp-check.

use std::path::PathBuf;
use std::process::Command;

use xsknet::testing::require_root;

/// Where the workspace's release binaries are: beside `$XSKNET_BIN` when the Makefile
/// sets it, else the target directory this test was built in.
fn bin_dir() -> PathBuf {
    match std::env::var_os("XSKNET_BIN") {
        Some(p) => PathBuf::from(p).parent().expect("XSKNET_BIN has a directory").to_path_buf(),
        None => PathBuf::from(env!("CARGO_BIN_EXE_xsknet-soak")).parent().unwrap().to_path_buf(),
    }
}

#[test]
fn soak_30s_passes_every_check() {
    if !require_root("soak_30s_passes_every_check") {
        return;
    }
    let dir = bin_dir();
    for exe in ["xsknet", "xsknet-pktgen", "udp-check"] {
        assert!(
            dir.join(exe).exists(),
            "{} missing: build the workspace first (`cargo build --release --workspace`, as `make test` does)",
            dir.join(exe).display()
        );
    }
    let json = std::env::temp_dir().join(format!("xsknet-soak-test-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_xsknet-soak"))
        .args(["--duration", "30s", "--bin-dir"])
        .arg(&dir)
        .arg("--xsknet")
        .arg(dir.join("xsknet"))
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running xsknet-soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xsknet-soak failed ({}):\n{stdout}\n{stderr}", out.status);
    assert!(stdout.lines().any(|l| l == "PASS"), "no PASS line:\n{stdout}\n{stderr}");
    // The summary is the one a user reads, and the JSON says the same.
    for part in ["sent by kind:", "drops by reason:", "census:", "RSS (VmRSS):", "probe:", "checks:"] {
        assert!(stdout.contains(part), "summary without {part:?}:\n{stdout}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(v["pass"], true, "{v}");
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 14, "fewer checks than the soak makes: {checks:?}");
    assert!(checks.iter().all(|c| c["outcome"] == "ok"), "{checks:?}");
    // The mix reached the server: every kind was sent, and the server counted the malformed ones.
    let kinds = v["generator"]["mix_sent"].as_array().unwrap();
    assert_eq!(kinds.len(), 16, "{kinds:?}");
    assert!(kinds.iter().all(|k| k["sent"].as_u64().unwrap() > 0), "{kinds:?}");
    let c = &v["xsknet"]["counters"];
    for name in [
        "IpInHdrErrors",
        "IpExtInCsumErrors",
        "IpExtInTruncatedPkts",
        "UdpInCsumErrors",
        "UdpNoPorts",
        "IpReasmOKs",
        "IcmpOutEchoReps",
        "IcmpOutParmProbs",
        "TcpOutRsts",
    ] {
        assert!(c[name].as_u64().unwrap() > 0, "{name} is 0: {c}");
    }
    let churn = &v["xsknet"]["churn"];
    assert!(churn["udp_opened"].as_u64().unwrap() > 100, "{churn}");
    assert!(churn["tcp_listeners_opened"].as_u64().unwrap() > 100, "{churn}");
}
