//! `xsknet echo --pcap`, end to end with the kernel as the peer: the capture
//! file is read back with tshark and checked against what the peer sent and
//! against xsknet's own `--stats-json` counters.
//!
//! Needs root (skips otherwise, fails under `CI`), `iproute2`, `ethtool`,
//! `iputils-ping` and `tshark` (scripts/deps.sh installs them).

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use xsknet::testing::{self, in_netns};
use xsknet::wire::ethernet::ethertype;

/// A capture file under the temp dir, removed when dropped.
struct TmpFile(PathBuf);

impl TmpFile {
    fn new(name: &str) -> TmpFile {
        TmpFile(std::env::temp_dir().join(format!("xsknet-pcap-test-{}-{name}.pcapng", std::process::id())))
    }
    fn arg(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One line per frame of `tshark -r FILE -T fields` with `fields`, split on `|`.
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args =
        vec!["-n".to_string(), "-r".into(), file.to_string_lossy().into_owned(), "-T".into(), "fields".into()];
    args.extend(["-E".into(), "separator=|".into()]);
    for f in fields {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    let out = std::process::Command::new("tshark").args(&args).output().expect("running tshark (scripts/deps.sh)");
    assert!(out.status.success(), "tshark {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

/// Sends `n` datagrams to the echo port and reads each echo, then one to
/// port 9 (closed), from the peer namespace.
fn udp_traffic(peer_ns: &str, n: usize) {
    in_netns(peer_ns, || {
        let s = UdpSocket::bind((PEER_ADDR, 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 2048];
        for i in 0..n {
            let msg = format!("datagram {i}");
            s.send_to(msg.as_bytes(), (SERVER_ADDR, ECHO_PORT)).expect("send");
            let (len, _) = s.recv_from(&mut buf).expect("echo");
            assert_eq!(&buf[..len], msg.as_bytes());
        }
        s.send_to(b"closed", (SERVER_ADDR, 9)).expect("send to the closed port");
        // The port unreachable comes back as an error on this socket's next call.
        std::thread::sleep(Duration::from_millis(200));
    });
}

#[test]
fn pcap_holds_every_frame_in_and_out() {
    if !testing::require_root("pcap_holds_every_frame_in_and_out") {
        return;
    }
    const N: usize = 20;
    let pair = pair();
    let file = TmpFile::new("all");
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--pcap", &file.arg()]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    udp_traffic(pair.peer_ns(), N);
    let f = x.stop();
    f.assert_clean_exit();
    let summary = f.stdout.lines().find(|l| l.starts_with("pcap ")).unwrap_or_else(|| panic!("{}", f.stdout));
    assert!(summary.contains(&file.arg()) && summary.contains(" 0 capture drops"), "{summary}");

    // Direction: 1 inbound, 2 outbound (pcapng EPB flags).
    let rows = tshark(
        &file.0,
        &["frame.packet_flags_direction", "udp.srcport", "udp.dstport", "icmp.type", "icmp.code", "frame.comment"],
    );
    let dir = |r: &Vec<String>| u32::from_str_radix(r[0].trim_start_matches("0x"), 16).unwrap();
    let count = |pred: &dyn Fn(&Vec<String>) -> bool| rows.iter().filter(|r| pred(r)).count();
    let udp_in = count(&|r| dir(r) == 1 && r[2] == "7" && r[3].is_empty());
    let udp_out = count(&|r| dir(r) == 2 && r[1] == "7" && r[3].is_empty());
    assert_eq!((udp_in, udp_out), (N, N), "UDP to and from the echo port: {rows:?}");
    assert_eq!(count(&|r| dir(r) == 1 && r[2] == "9" && r[3].is_empty()), 1, "the datagram to the closed port");
    assert_eq!(count(&|r| dir(r) == 2 && r[3] == "3" && r[4] == "3"), 1, "one ICMP port unreachable sent");
    assert_eq!(count(&|r| !r[5].is_empty()), 0, "no comments in a capture of everything");
    // Every frame off the rx ring and every frame sent, nothing else.
    assert_eq!(count(&|r| dir(r) == 1) as u64, f.counter("XskRxFrames"));
    assert_eq!(count(&|r| dir(r) == 2) as u64, f.counter("XskTxFrames"));
    assert_eq!(f.counter("XskCaptureDrops"), 0);
    // tcpdump (libpcap) reads the file too, every frame of it.
    let out = std::process::Command::new("tcpdump").args(["-n", "-r", &file.arg()]).output().expect("tcpdump");
    assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), rows.len());
}

#[test]
fn pcap_drops_holds_the_dropped_frames_with_their_reasons() {
    if !testing::require_root("pcap_drops_holds_the_dropped_frames_with_their_reasons") {
        return;
    }
    let pair = pair();
    let file = TmpFile::new("drops");
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--pcap", &file.arg(), "--pcap-drops"]);
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    udp_traffic(pair.peer_ns(), 5);
    // A datagram with a bad UDP checksum, sent raw (the peer's kernel would fix it).
    let mut dgram = udp_datagram(PEER_ADDR, SERVER_ADDR, 40000, ECHO_PORT, b"bad checksum");
    dgram[6] ^= 0xff;
    let ip = ipv4_packet(PEER_ADDR, SERVER_ADDR, 17, 7, &[], &dgram);
    let frame = eth_frame(pair.mac(), pair.peer_mac(), ethertype::IPV4, &ip);
    testing::send_raw_frame(pair.peer_ns(), pair.peer_ifname(), &frame).expect("raw frame");
    std::thread::sleep(Duration::from_millis(200));
    let f = x.stop();
    f.assert_clean_exit();

    let rows = tshark(&file.0, &["frame.packet_flags_direction", "frame.comment", "udp.dstport"]);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        let (name, why) = r[1].split_once(": ").unwrap_or_else(|| panic!("frame without a drop reason: {r:?}"));
        let counter = xsknet::snmp::MibCounter::ALL.iter().find(|c| c.name() == name).expect("a MibCounter name");
        assert_eq!(counter.drop_reason(), Some(why), "{r:?}");
        *by_reason.entry(name.to_string()).or_default() += 1;
    }
    assert_eq!(by_reason.get("UdpNoPorts"), Some(&1), "{by_reason:?}");
    assert_eq!(by_reason.get("UdpInCsumErrors"), Some(&1), "{by_reason:?}");
    assert!(rows.iter().any(|r| r[1].starts_with("UdpNoPorts: ") && r[2] == "9"), "{rows:?}");
    // Each reason in the file agrees with the counter of the same name.
    for (name, n) in &by_reason {
        assert_eq!(f.counter(name), *n, "{name}: counter vs frames in the file");
    }
    assert_eq!(f.counter("UdpNoPorts"), 1);
    assert_eq!(f.counter("XskCaptureDrops"), 0);
}
