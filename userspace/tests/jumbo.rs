//! Jumbo frames and datagrams larger than a UMEM frame, with a kernel peer
//! over a veth pair (privileged; docs/jumbo.md): AF_XDP multi-buffer when
//! the MTU needs it, `--frame-size 4096` without it, and the refusal at
//! start when multi-buffer is off and the MTU does not fit a frame.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use xsknet::testing::{self, in_netns, NetNsPair};

/// A pair with the MTU of both ends set to `mtu`.
fn pair_with_mtu(mtu: u32) -> NetNsPair {
    let pair = pair();
    let mtu = mtu.to_string();
    for out in [
        pair.run(&["ip", "link", "set", pair.ifname(), "mtu", &mtu]),
        pair.run_peer(&["ip", "link", "set", pair.peer_ifname(), "mtu", &mtu]),
    ] {
        assert!(out.status.success(), "ip link set mtu {mtu}: {}", String::from_utf8_lossy(&out.stderr));
    }
    pair
}

/// A device counter from the JSON report's `xdp_statistics`.
fn xdp_stat(f: &Finished, name: &str) -> u64 {
    f.json["xdp_statistics"][name].as_u64().unwrap_or_else(|| panic!("xdp_statistics.{name} missing"))
}

/// Echoes each of `sizes` three times from the kernel peer; the failures.
fn echo_sizes(pair: &NetNsPair, sizes: &[usize]) -> Vec<String> {
    in_netns(pair.peer_ns(), || {
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
        for &size in sizes {
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
    })
}

/// The first example: MTU 3000, a 2500-byte datagram, the default
/// 2048-byte frames: multi-buffer on by itself, the echo byte for byte.
#[test]
fn mtu_3000_echo_of_2500_bytes_with_multi_buffer() {
    if !testing::require_root("mtu_3000_echo_of_2500_bytes_with_multi_buffer") {
        return;
    }
    let pair = pair_with_mtu(3000);
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let ready = x.ready_line.clone().unwrap_or_default();
    assert!(ready.contains("MTU 3000") && ready.contains("multi-buffer on"), "{ready}");
    let failures = echo_sizes(&pair, &[1800, 2500, 2972]);
    let f = x.stop();
    assert!(failures.is_empty(), "{failures:#?}\nxsknet stdout:\n{}", f.stdout);
    f.assert_clean_exit();
    assert_eq!(xdp_stat(&f, "XskRxMultiBufPackets"), 9, "every datagram arrived in two descriptors");
    for name in ["rx_dropped", "XskRxMultiBufTooBig", "XskRxMultiBufInvalid", "XskRxMultiBufTruncated"] {
        assert_eq!(xdp_stat(&f, name), 0, "{name}");
    }
    assert_eq!(f.counter("UdpInErrors"), 0);
}

/// The second example: MTU 3000 and `--frame-size 4096`: one frame
/// per packet, no multi-buffer, and no datagram cut to 2048 bytes.
#[test]
fn mtu_3000_echo_with_4096_byte_frames() {
    if !testing::require_root("mtu_3000_echo_with_4096_byte_frames") {
        return;
    }
    let pair = pair_with_mtu(3000);
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--frame-size", "4096"]);
    let ready = x.ready_line.clone().unwrap_or_default();
    assert!(ready.contains("MTU 3000") && ready.contains("multi-buffer off"), "{ready}");
    let failures = echo_sizes(&pair, &[2048, 2049, 2500, 2972, 5000]);
    let f = x.stop();
    assert!(failures.is_empty(), "{failures:#?}\nxsknet stdout:\n{}", f.stdout);
    f.assert_clean_exit();
    assert_eq!(xdp_stat(&f, "XskRxMultiBufPackets"), 0);
    assert_eq!(xdp_stat(&f, "rx_dropped"), 0);
    // Only the 5000-byte datagrams are fragmented, both ways.
    assert_eq!(f.counter("IpReasmOKs"), 3);
    assert_eq!(f.counter("IpFragOKs"), 3);
}

/// A jumbo frame: MTU 9000, the largest datagram that fits it (8972 bytes),
/// in five descriptors of 2048-byte frames.
#[test]
fn mtu_9000_echo_of_8972_bytes() {
    if !testing::require_root("mtu_9000_echo_of_8972_bytes") {
        return;
    }
    let pair = pair_with_mtu(9000);
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let failures = echo_sizes(&pair, &[8972]);
    let f = x.stop();
    assert!(failures.is_empty(), "{failures:#?}\nxsknet stdout:\n{}", f.stdout);
    f.assert_clean_exit();
    assert_eq!(xdp_stat(&f, "XskRxMultiBufPackets"), 3);
    for name in ["rx_dropped", "XskRxMultiBufTooBig", "XskRxMultiBufInvalid", "XskRxMultiBufTruncated"] {
        assert_eq!(xdp_stat(&f, name), 0, "{name}");
    }
    assert_eq!(f.counter("UdpInErrors"), 0);
}

/// Multi-buffer forced off with an MTU no frame holds: xsknet refuses to
/// start and says what to do.
#[test]
fn mtu_too_large_without_multi_buffer_is_refused() {
    if !testing::require_root("mtu_too_large_without_multi_buffer_is_refused") {
        return;
    }
    let pair = pair_with_mtu(9000);
    let mut x = Xsknet::spawn_command(pair.ns(), "echo", pair.ifname(), ECHO_PORT, &["--multi-buffer", "off"]);
    let err = x.wait_ready(READY_TIMEOUT).expect_err("xsknet started with an MTU it cannot receive");
    for part in ["MTU 9000", "needs 9014 bytes per frame", "--multi-buffer auto", "ip link set"] {
        assert!(err.contains(part), "{part:?} not in: {err}");
    }
    // MTU 3000 fits a 4096-byte frame: the message says so.
    let pair = pair_with_mtu(3000);
    let mut x = Xsknet::spawn_command(pair.ns(), "echo", pair.ifname(), ECHO_PORT, &["--multi-buffer", "off"]);
    let err = x.wait_ready(READY_TIMEOUT).expect_err("xsknet started with an MTU it cannot receive");
    assert!(err.contains("--frame-size 4096"), "{err}");
}

/// The largest datagram at MTU 9000: 65507 bytes, in fragments of 8976
/// bytes from the kernel, each a multi-buffer frame, reassembled; echoed in
/// fragments of at most one frame (no multi-buffer transmit yet).
#[test]
fn mtu_9000_echo_of_65507_bytes() {
    if !testing::require_root("mtu_9000_echo_of_65507_bytes") {
        return;
    }
    let pair = pair_with_mtu(9000);
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
    let failures = echo_sizes(&pair, &[9000, 20000, 65507]);
    let f = x.stop();
    assert!(failures.is_empty(), "{failures:#?}\nxsknet stdout:\n{}", f.stdout);
    f.assert_clean_exit();
    // 8976 bytes of IP payload per fragment from the kernel.
    let frags: u64 = [9000u64, 20000, 65507].iter().map(|n| (n + 8).div_ceil(8976)).sum::<u64>() * 3;
    assert_eq!(f.counter("IpReasmReqds"), frags);
    assert_eq!(f.counter("IpReasmOKs"), 9);
    assert_eq!(f.counter("IpFragOKs"), 9, "every echo fragmented");
    for name in ["IpReasmFails", "IpFragFails", "UdpInErrors", "XskIpInMultiBufUnsupported"] {
        assert_eq!(f.counter(name), 0, "{name}");
    }
    for name in ["rx_dropped", "XskRxMultiBufTooBig", "XskRxMultiBufInvalid", "XskRxMultiBufTruncated"] {
        assert_eq!(xdp_stat(&f, name), 0, "{name}");
    }
}

/// `ping` from the kernel peer at MTU 3000 and 9000, as a user of jumbo
/// frames tries first: an echo request in a multi-buffer frame (2900 and
/// 8900 bytes of data) and one in IP fragments that each came in a
/// multi-buffer frame (20000 bytes at MTU 9000) are answered, the replies in
/// fragments of at most one frame, which the kernel reassembles.
#[test]
fn ping_with_jumbo_frames_is_answered() {
    if !testing::require_root("ping_with_jumbo_frames_is_answered") {
        return;
    }
    for (mtu, sizes) in [(3000u32, &[2900usize][..]), (9000, &[8900, 20000][..])] {
        let pair = pair_with_mtu(mtu);
        let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &[]);
        let mut failures = Vec::new();
        for &size in sizes {
            let out = pair.run_peer(&[
                "ping",
                "-n",
                "-q",
                "-c",
                "3",
                "-i",
                "0.2",
                "-W",
                "2",
                "-s",
                &size.to_string(),
                &SERVER_ADDR.to_string(),
            ]);
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.contains("3 received") {
                failures.push(format!("MTU {mtu}, ping -s {size}: {text}{}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        let f = x.stop();
        assert!(failures.is_empty(), "{failures:#?}\nxsknet stdout:\n{}", f.stdout);
        f.assert_clean_exit();
        let pings = 3 * sizes.len() as u64;
        assert!(f.counter("IcmpInEchos") >= pings, "{}", f.stdout);
        assert_eq!(f.counter("IcmpOutEchoReps"), f.counter("IcmpInEchos"));
        for name in ["XskIpInMultiBufUnsupported", "XskIpReasmUnsupported", "IpFragFails", "XskNoFreeFrames"] {
            assert_eq!(f.counter(name), 0, "{name}");
        }
    }
}
