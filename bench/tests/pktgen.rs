//! The packet generator: frame building and patching (numbered datagrams and floods), pacing, echo matching and the
//! histogram helpers without a kernel; then privileged runs of the binary: echo mode
//! against `xsknet echo`, and a flood of each mode counted by the receiving kernel.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use xsknet::wire::arp::ArpOperation;
use xsknet::wire::checksum;
use xsknet::wire::ethernet::{EthernetFrame, EthernetRepr};
use xsknet::wire::ipv4::{protocol, Ipv4Packet, Ipv4Repr};
use xsknet::wire::udp::{UdpPacket, UdpRepr};
use xsknet::wire::{build, EthernetAddress};
use xsknet_bench::hist::{
    hlog_text, hlog_text_series, new_histogram, percentile_label, percentile_points, plot_percentiles,
    IntervalRecorder, Percentiles,
};
use xsknet_bench::pktgen::echo::{EchoTracker, ReplyKind};
use xsknet_bench::pktgen::frame::{
    self, classify, host_addresses, make_flows, write_frame, Flow, FrameSpec, Patcher, Received, MAX_FRAME_LEN,
    MIN_FRAME_LEN, PAYLOAD_OFFSET, UDP_OFFSET,
};
use xsknet_bench::pktgen::pace::TokenBucket;
use xsknet_bench::pktgen::{Config, IfaceStats};
use xsknet_bench::progress::{format_line, Snapshot};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

fn spec(len: usize) -> FrameSpec {
    FrameSpec { src_mac: MAC_A, dst_mac: MAC_B, dst_ip: DST, dst_port: 9, len }
}

/// The tests of this file run one at a time: the privileged one busy-polls two
/// processes against each other, and on a small machine the others running beside
/// it would starve them (round trips of milliseconds, replies dropped).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deterministic xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Checks a frame as a receiver would: Ethernet, IPv4 header checksum, UDP
/// length and checksum; returns (src, src port, seq, ts).
fn validate(frame: &[u8]) -> (Ipv4Addr, u16, u64, u64) {
    let eth_frame = EthernetFrame::new_unchecked(frame);
    let eth = EthernetRepr::parse(&eth_frame).unwrap();
    assert_eq!((eth.src, eth.dst, eth.ethertype), (MAC_A, MAC_B, 0x0800));
    let packet = Ipv4Packet::new_unchecked(eth_frame.payload());
    let ip = Ipv4Repr::parse(&packet).expect("IPv4 header (and its checksum) valid");
    assert_eq!(packet.total_len(), frame.len() - 14);
    assert_eq!((ip.protocol, ip.dst, ip.ttl, ip.dont_fragment), (protocol::UDP, DST, 64, true));
    let seg = UdpPacket::new_unchecked(packet.payload());
    let h = UdpRepr::parse(&seg).unwrap();
    assert_eq!(seg.len(), frame.len() - UDP_OFFSET);
    assert_ne!(seg.checksum(), 0, "a UDP checksum is always sent");
    assert!(seg.verify_checksum(ip.src, ip.dst), "UDP checksum valid");
    let (seq, ts) = frame::read_seq_ts(frame).unwrap();
    (ip.src, h.src_port, seq, ts)
}

#[test]
fn patched_frames_equal_frames_built_from_scratch() {
    let _serial = serial();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for len in [60, 61, 64, 100, 511, 1000, 1513, 1514] {
        for (nflows, vary) in [(1, false), (7, false), (5, true), (300, true)] {
            let flows = make_flows(SRC, 24, DST, 65_530, nflows, vary).unwrap();
            let p = Patcher::new(spec(len), &flows).unwrap();
            validate(p.template());
            let mut frame = p.template().to_vec();
            let mut reference = vec![0u8; len];
            let edge = [0, 1, 0xFFFF, 0xFFFF_FFFF, 0x1_0000_0000, u64::MAX, u64::MAX - 1, 0x8000_0000_0000_0000];
            for i in 0..3_000u64 {
                let (seq, ts) = if i < 64 {
                    (edge[(i % 8) as usize], edge[(i / 8) as usize])
                } else {
                    (rng.next() >> (i % 64), rng.next())
                };
                let flow = (i as usize * 13) % flows.len();
                // The same frame is patched again and again, as transmit frames are.
                p.patch(&mut frame, flow, seq, ts);
                write_frame(&mut reference, p.spec(), flows[flow], seq, ts);
                assert_eq!(frame, reference, "len {len}, flow {flow}, seq {seq:#x}, ts {ts:#x}");
                assert_eq!(validate(&frame), (flows[flow].src_ip, flows[flow].src_port, seq, ts));
            }
        }
    }
}

/// A checksum that folds to zero must go out as 0xFFFF: find a sequence
/// number that hits it and check the patch agrees with the full computation.
#[test]
fn computed_zero_checksum_is_sent_as_ffff() {
    let _serial = serial();
    let flows = make_flows(SRC, 24, DST, 9000, 1, false).unwrap();
    let p = Patcher::new(spec(60), &flows).unwrap();
    let mut frame = p.template().to_vec();
    let mut hits = 0;
    for seq in 0..200_000u64 {
        p.patch(&mut frame, 0, seq, 0);
        if frame[40..42] == [0xFF, 0xFF] {
            hits += 1;
            let mut reference = vec![0u8; 60];
            write_frame(&mut reference, p.spec(), flows[0], seq, 0);
            assert_eq!(frame, reference);
            validate(&frame);
        }
    }
    assert!(hits > 0, "some sequence number gives the all-ones checksum");
}

#[test]
fn frame_size_bounds() {
    let _serial = serial();
    assert!(FrameSpec::check_len(MIN_FRAME_LEN - 1).is_err());
    assert!(FrameSpec::check_len(MIN_FRAME_LEN).is_ok());
    assert!(FrameSpec::check_len(MAX_FRAME_LEN).is_ok());
    assert!(FrameSpec::check_len(MAX_FRAME_LEN + 1).is_err());
    assert_eq!((MIN_FRAME_LEN, MAX_FRAME_LEN, PAYLOAD_OFFSET), (60, 1514, 42));
    assert!(FrameSpec::check_len(59).unwrap_err().contains("--size 60"), "the error says what 64 bytes means");
    assert!(Patcher::new(spec(59), &[Flow { src_ip: SRC, src_port: 1 }]).is_err());
    assert!(Patcher::new(spec(1515), &[Flow { src_ip: SRC, src_port: 1 }]).is_err());
}

#[test]
fn flows_vary_ports_and_addresses_inside_the_prefix() {
    let _serial = serial();
    let f = make_flows(SRC, 24, DST, 65_534, 4, false).unwrap();
    let ports: Vec<u16> = f.iter().map(|f| f.src_port).collect();
    assert_eq!(ports, [65_534, 65_535, 1, 2], "ports wrap and skip 0");
    assert!(f.iter().all(|f| f.src_ip == SRC));

    let f = make_flows(Ipv4Addr::new(10, 0, 0, 253), 24, Ipv4Addr::new(10, 0, 0, 2), 9000, 5, true).unwrap();
    let ips: Vec<String> = f.iter().map(|f| f.src_ip.to_string()).collect();
    assert_eq!(ips, ["10.0.0.253", "10.0.0.254", "10.0.0.1", "10.0.0.3", "10.0.0.4"], "no .255, .0 or dst");

    // A /30 has two hosts; one is the destination: every flow gets the other.
    let hosts = host_addresses(Ipv4Addr::new(192, 168, 1, 1), 30, Ipv4Addr::new(192, 168, 1, 2), 10);
    assert_eq!(hosts, [Ipv4Addr::new(192, 168, 1, 1)]);
    assert!(make_flows(SRC, 24, DST, 9000, 0, false).is_err());
    assert!(make_flows(SRC, 24, DST, 9000, 65_536, false).is_err());
    assert!(make_flows(SRC, 24, DST, 0, 1, false).is_err());
}

#[test]
fn config_refuses_what_it_cannot_do() {
    let _serial = serial();
    let ok = || {
        let mut c = Config::new("veth0", SRC, 24, DST, 7);
        c.count = Some(10);
        c
    };
    assert_eq!(ok().validate(), Ok(()));
    let err = |f: &dyn Fn(&mut Config)| {
        let mut c = ok();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert!(err(&|c| c.count = None).contains("unbounded"));
    assert!(err(&|c| c.count = Some(0)).contains("--count"));
    assert!(err(&|c| c.size = 1515).contains("--size"));
    assert!(err(&|c| c.dst = Ipv4Addr::new(10, 9, 9, 9)).contains("--dst-mac"), "off-link needs a MAC");
    assert!(err(&|c| c.dst = SRC).contains("own"));
    assert!(err(&|c| {
        c.echo = true;
        c.flows_src_ips = true;
        c.flows = 4;
    })
    .contains("--flows-src-ips"));
    assert!(err(&|c| c.ring_size = 1000).contains("power of two"));
    assert!(err(&|c| c.batch = 0).contains("--batch"));
    // Off-link is fine with a MAC; duration alone is bounded.
    let mut c = ok();
    c.dst = Ipv4Addr::new(192, 0, 2, 1);
    c.dst_mac = Some(MAC_B);
    c.count = None;
    c.duration = Some(Duration::from_secs(1));
    assert_eq!(c.validate(), Ok(()));
    // Transmit frames never exceed the tx ring; echo takes half the UMEM for receiving.
    let mut c = ok();
    assert_eq!(c.frame_split(), Ok((2048, 64)));
    c.echo = true;
    assert_eq!(c.frame_split(), Ok((2048, 2048)));
    c.frames = 1024;
    assert_eq!(c.frame_split(), Ok((512, 512)));
}

#[test]
fn echoes_are_recognised_and_everything_else_is_not() {
    let _serial = serial();
    let flows = make_flows(SRC, 24, DST, 9000, 3, false).unwrap();
    let p = Patcher::new(spec(80), &flows).unwrap();
    let mut frame = p.template().to_vec();
    p.patch(&mut frame, 2, 123_456, 987_654_321);
    // The echo server's answer: addresses and ports swapped, payload unchanged.
    let payload_len = 80 - PAYLOAD_OFFSET;
    let eth = EthernetRepr { dst: MAC_A, src: MAC_B, ethertype: 0x0800 };
    let udp = UdpRepr { src_port: 9, dst_port: 9002, payload_len };
    let reply = build::udp_frame(&eth, &build::ipv4_repr(DST, SRC, protocol::UDP, 7), &udp, &frame[PAYLOAD_OFFSET..]);
    assert_eq!(reply.len(), 80);
    assert_eq!(classify(&reply, DST, 9), Received::Echo { seq: 123_456, ts_ns: 987_654_321 });
    // From another port or address: not ours.
    assert_eq!(classify(&reply, DST, 10), Received::Other);
    assert_eq!(classify(&reply, Ipv4Addr::new(10, 0, 0, 3), 9), Received::Other);
    // Corrupted payload: the UDP checksum catches it.
    let mut bad = reply.clone();
    bad[PAYLOAD_OFFSET + 5] ^= 1;
    assert_eq!(classify(&bad, DST, 9), Received::BadChecksum);
    // Bad IPv4 header checksum.
    let mut bad = reply.clone();
    bad[14 + 8] = 1;
    assert_eq!(classify(&bad, DST, 9), Received::Bad);
    // Right port and checksum but not our magic.
    let mut other = reply.clone();
    other[PAYLOAD_OFFSET] = 0;
    udp.emit(&mut UdpPacket::new_unchecked(&mut other[UDP_OFFSET..]), DST, SRC);
    assert_eq!(classify(&other, DST, 9), Received::Other);
    // Truncated frames never panic.
    for n in 0..reply.len() {
        let _ = classify(&reply[..n], DST, 9);
    }
    // ARP: our request, and a reply to it, parse back.
    let mut buf = [0u8; 64];
    let req = frame::arp_request(MAC_A, SRC, DST);
    let n = frame::write_arp(&mut buf, EthernetAddress::BROADCAST, &req);
    assert_eq!(n, 42);
    assert_eq!(classify(&buf[..n], DST, 9), Received::Arp(req));
    let answer = req.reply(MAC_B);
    let n = frame::write_arp(&mut buf, MAC_A, &answer);
    match classify(&buf[..n], DST, 9) {
        Received::Arp(a) => assert_eq!((a.operation, a.sender_ip, a.sender_hw), (ArpOperation::Reply, DST, MAC_B)),
        other => panic!("{other:?}"),
    }
}

/// Simulated clock: the bucket holds the rate, in grants of at least a quantum.
#[test]
fn token_bucket_holds_the_rate_in_quanta() {
    let _serial = serial();
    for (rate, batch, step_ns) in
        [(1_000_000u64, 64u64, 700u64), (100_000, 64, 1_300), (10_000, 64, 5_000), (3, 64, 1_000_000)]
    {
        let mut b = TokenBucket::new(rate, batch, 0);
        let (quantum, depth) = TokenBucket::sizes(rate, batch);
        assert_eq!(b.quantum(), quantum);
        assert!(quantum >= 1 && quantum <= batch && depth >= quantum);
        let secs = if rate < 100 { 10 } else { 1 };
        let end = secs * 1_000_000_000;
        let mut sent = 0;
        let mut t = 0;
        while t < end {
            let n = b.take(t, batch);
            assert!(n == 0 || n >= quantum, "grant {n} below the quantum {quantum}");
            assert!(n <= batch);
            sent += n;
            t += step_ns;
        }
        let expected = rate * secs;
        // One quantum of start-up credit, and the last partial quantum.
        assert!(sent + quantum >= expected && sent <= expected + quantum, "rate {rate}: sent {sent} in {secs} s");
    }
    assert_eq!(TokenBucket::sizes(1_000_000, 64), (20, 10_000), "20 µs quanta, 10 ms depth");
    assert_eq!(TokenBucket::sizes(10_000, 64), (1, 100));
    assert_eq!(TokenBucket::sizes(50, 64), (1, 1));
    assert_eq!(TokenBucket::sizes(100_000_000, 64), (64, 1_000_000));
}

#[test]
fn token_bucket_forgives_long_stalls_and_unlimited_is_unlimited() {
    let _serial = serial();
    let mut b = TokenBucket::new(1_000_000, 64, 0);
    assert_eq!(b.take(0, 64), 20, "starts with one quantum");
    assert_eq!(b.take(1_000, 64), 0, "1 token is less than a quantum");
    assert_eq!(b.take(20_000, 64), 20);
    // A 1 s stall: only the depth (10 ms of traffic) is made up, a batch at a time.
    let mut t = 1_000_020_000;
    let mut burst = 0;
    loop {
        let n = b.take(t, 64);
        if n == 0 {
            break;
        }
        burst += n;
        t += 1; // back-to-back
    }
    assert!((10_000 - 20..=10_010).contains(&burst), "burst after a stall {burst}");
    // The end of a run asks for fewer than a quantum: granted when there.
    let mut b = TokenBucket::new(1_000_000, 64, 0);
    assert_eq!(b.take(0, 3), 3);
    let mut b = TokenBucket::new(0, 64, 0);
    assert_eq!(b.take(0, 64), 64);
    assert_eq!(b.take(0, 64), 64);
    assert_eq!(b.available(0), u64::MAX);
}

#[test]
fn echo_accounting_counts_loss_duplicates_reordering_and_late() {
    let _serial = serial();
    let mut t = EchoTracker::new(1024);
    assert_eq!(t.window(), 1024);
    t.on_sent(100);
    for s in 0..100 {
        if s % 10 != 3 {
            assert_eq!(t.on_reply(s), ReplyKind::Unique { reordered: false });
        }
    }
    let c = t.counts();
    assert_eq!((c.received, c.lost, c.duplicates, c.reordered), (90, 10, 0, 0));
    assert!(!t.all_answered());
    // Two of the missing ones arrive now: reordered, and no longer lost.
    assert_eq!(t.on_reply(13), ReplyKind::Unique { reordered: true });
    assert_eq!(t.on_reply(23), ReplyKind::Unique { reordered: true });
    assert_eq!(t.on_reply(13), ReplyKind::Duplicate);
    assert_eq!(t.on_reply(99), ReplyKind::Duplicate);
    assert_eq!(t.on_reply(100), ReplyKind::Unknown, "not sent yet");
    let c = t.counts();
    assert_eq!((c.received, c.lost, c.duplicates, c.reordered, c.unknown), (92, 8, 2, 2, 1));
    // Send past the window: seq 3 is now older than it.
    t.on_sent(2000);
    assert_eq!(t.on_reply(3), ReplyKind::Late);
    // Slots re-used by new sequence numbers start clear.
    assert_eq!(t.on_reply(3 + 1024), ReplyKind::Late);
    assert_eq!(t.on_reply(3 + 1024 * 2), ReplyKind::Unique { reordered: false });
    let c = t.counts();
    assert_eq!((c.received, c.late), (93, 2));
    assert_eq!(c.lost, 2100 - 93 - 2);
}

#[test]
fn echo_window_is_cleared_exactly_for_what_is_sent() {
    let _serial = serial();
    // Odd batch sizes across word boundaries, window wrapping many times.
    let mut t = EchoTracker::new(256);
    let mut rng = Rng(7);
    let mut next = 0u64;
    for _ in 0..2_000 {
        let n = rng.next() % 70 + 1;
        t.on_sent(n);
        for s in next..next + n {
            assert_eq!(t.on_reply(s), ReplyKind::Unique { reordered: false }, "seq {s}");
            assert_eq!(t.on_reply(s), ReplyKind::Duplicate);
        }
        next += n;
    }
    let c = t.counts();
    assert_eq!((c.received, c.lost, c.duplicates, c.late), (next, 0, next, 0));
    assert!(t.all_answered());
}

#[test]
fn percentiles_from_a_known_histogram() {
    let _serial = serial();
    let mut h = new_histogram();
    for v in 1..=10_000u64 {
        h.record(v * 1_000).unwrap(); // 1..10000 µs, in ns
    }
    let p = Percentiles::from_ns(&h);
    assert_eq!(p.count, 10_000);
    let near = |a: f64, b: f64| (a - b).abs() <= b * 0.001 + 0.01;
    assert!(near(p.min, 1.0) && near(p.p50, 5_000.0) && near(p.p90, 9_000.0), "{p:?}");
    assert!(near(p.p99, 9_900.0) && near(p.p99_9, 9_990.0) && near(p.p99_99, 9_999.0) && near(p.max, 10_000.0));
    let json = serde_json::to_value(p).unwrap();
    for k in ["p50", "p90", "p99", "p99.9", "p99.99", "max", "min", "mean", "count"] {
        assert!(json.get(k).is_some(), "{k} in {json}");
    }
    assert_eq!(Percentiles::from_ns(&new_histogram()), Percentiles::default());
}

#[test]
fn hlog_round_trips_through_the_log_reader() {
    let _serial = serial();
    let start = Instant::now();
    let mut rec = IntervalRecorder::new(start, Duration::from_secs(1));
    for i in 0..1_000u64 {
        rec.record(1_000 + i);
    }
    rec.rotate(start + Duration::from_millis(500)); // not yet
    assert_eq!(rec.current_len(), 1_000);
    rec.rotate(start + Duration::from_secs(1));
    for i in 0..500u64 {
        rec.record(50_000 + i * 10);
    }
    let log = rec.finish(start + Duration::from_millis(1_700));
    assert_eq!(log.intervals.len(), 2);
    assert_eq!(log.total.len(), 1_500);

    let text = hlog_text(SystemTime::now(), &log.intervals, Some("rtt"), &["a comment".into()]).unwrap();
    assert!(text.starts_with("#a comment\n#[Histogram log format version 1.3]\n"));
    assert!(text.contains("\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""));
    let mut lens = Vec::new();
    let mut total: Histogram<u64> = new_histogram();
    for entry in IntervalLogIterator::new(text.as_bytes()) {
        if let LogEntry::Interval(ilh) = entry.unwrap() {
            assert_eq!(ilh.tag().map(|t| t.as_str()), Some("rtt"));
            let raw = xsknet_bench::hist::base64_decode(ilh.encoded_histogram()).unwrap();
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut raw.as_slice()).unwrap();
            lens.push(h.len());
            total.add(&h).unwrap();
        }
    }
    assert_eq!(lens, [1_000, 500]);
    assert_eq!(total.max(), log.total.max());
    assert_eq!(total.value_at_quantile(0.5), log.total.value_at_quantile(0.5));
    assert!(hlog_text(SystemTime::now(), &log.intervals, Some("bad tag"), &[]).is_err());

    // Several tagged series in one log, as the side-by-side benchmark writes them.
    let text = hlog_text_series(
        SystemTime::now(),
        &[(Some("xsknet"), &log.intervals), (Some("kernel"), &log.intervals[..1])],
        &[],
    )
    .unwrap();
    let tags: Vec<String> = IntervalLogIterator::new(text.as_bytes())
        .filter_map(|e| match e.unwrap() {
            LogEntry::Interval(i) => i.tag().map(|t| t.as_str().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(tags, ["xsknet", "xsknet", "kernel"]);
}

/// Standard base64 (the log's encoding), to keep the test free of another dependency.
#[test]
fn percentile_axis_and_plot() {
    let _serial = serial();
    assert_eq!(percentile_label(1.0), "0%");
    assert_eq!(percentile_label(10.0), "90%");
    assert_eq!(percentile_label(100.0), "99%");
    assert_eq!(percentile_label(1_000.0), "99.9%");
    assert_eq!(percentile_label(100_000.0), "99.999%");
    assert_eq!(percentile_label(20.0), "");
    let mut a = new_histogram();
    let mut b = new_histogram();
    for v in 0..100_000u64 {
        a.record(3_000 + v % 2_000).unwrap();
        b.record(5_000 + (v % 1_000) * 7).unwrap();
    }
    let pts = percentile_points(&a, 1e5);
    assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "monotonic");
    assert_eq!(pts.first().unwrap().0, 1.0);
    assert!(pts.last().unwrap().0 <= 1e5);
    let dir = std::env::temp_dir().join(format!("xsknet-pktgen-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.svg");
    plot_percentiles(&path, "latency by percentile", &[("a".into(), &a), ("b".into(), &b)]).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    for s in ["<svg", "latency by percentile", "99.9%", "latency (µs)", "percentile", ">\na (p50"] {
        assert!(svg.contains(s), "{s:?} in the SVG");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn progress_line() {
    let _serial = serial();
    let l = format_line(Duration::from_millis(12_300), 1_234_567.0, Snapshot { sent: 42, received: Some(40) });
    assert!(l.contains("1.235 Mpps") && l.contains("sent") && l.contains("42") && l.contains("received"));
    assert!(l.contains("12.3 s"));
    let l = format_line(Duration::from_secs(1), 9_500.0, Snapshot { sent: 1, received: None });
    assert!(l.contains("9.5 kpps") && !l.contains("received"));
}

/// What the per-packet UDP checksum costs three ways, on a 60-byte frame
/// (`cargo test --release -p xsknet-bench --test pktgen -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a test"]
fn patch_cost() {
    let _serial = serial();
    let flows = make_flows(SRC, 24, DST, 9000, 1, false).unwrap();
    let p = Patcher::new(spec(60), &flows).unwrap();
    let mut frame = p.template().to_vec();
    let n = 50_000_000u64;
    let time = |name: &str, f: &mut dyn FnMut(u64)| {
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("{name:<40} {ns:6.2} ns/packet");
    };
    time("patch: base sum + 64-bit fields (ours)", &mut |i| {
        p.patch(std::hint::black_box(&mut frame), 0, i, i * 3);
    });
    assert!(UdpPacket::new_unchecked(&frame[UDP_OFFSET..]).verify_checksum(SRC, DST));
    time("RFC 1624: update per changed word", &mut |i| {
        let f = std::hint::black_box(&mut frame);
        let mut c = u16::from_be_bytes([f[40], f[41]]);
        for (at, v) in [(44, i), (52, i * 3)] {
            let new = v.to_be_bytes();
            for w in 0..4 {
                let o = at + 2 * w;
                let old = u16::from_be_bytes([f[o], f[o + 1]]);
                let nw = u16::from_be_bytes([new[2 * w], new[2 * w + 1]]);
                c = checksum::update(c, old, nw);
                f[o..o + 2].copy_from_slice(&new[2 * w..2 * w + 2]);
            }
        }
        f[40..42].copy_from_slice(&c.to_be_bytes());
    });
    time("full recompute over the datagram", &mut |i| {
        let f = std::hint::black_box(&mut frame);
        f[44..52].copy_from_slice(&i.to_be_bytes());
        f[52..60].copy_from_slice(&(i * 3).to_be_bytes());
        let udp = UdpRepr { src_port: 9000, dst_port: 9, payload_len: 60 - PAYLOAD_OFFSET };
        udp.emit(&mut UdpPacket::new_unchecked(&mut f[UDP_OFFSET..]), SRC, DST);
    });
    assert!(UdpPacket::new_unchecked(&frame[UDP_OFFSET..]).verify_checksum(SRC, DST));
}

// ---- privileged: the binary against `xsknet echo` ------------------------------

fn xsknet_bin() -> PathBuf {
    std::env::var_os("XSKNET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/xsknet")))
}

/// 10,000 datagrams at 20 kpps in echo mode: every one answered, percentiles sane.
#[test]
fn echo_mode_against_xsknet_echo() {
    let _serial = serial();
    use xsknet::testing::{require_root, spawn_in, NetNsPair, NetNsPairOptions};
    if !require_root("echo_mode_against_xsknet_echo") {
        return;
    }
    let xsknet = xsknet_bin();
    if !xsknet.exists() {
        let msg = format!("{} not built: run cargo build --release --workspace (or set XSKNET_BIN)", xsknet.display());
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("echo_mode_against_xsknet_echo: skipped: {msg}");
        return;
    }
    let pair = NetNsPair::with_options(&NetNsPairOptions { ipv6: false, ..Default::default() }).unwrap();
    let x = xsknet.to_str().unwrap();
    let mut echo = spawn_in(
        pair.ns(),
        &[x, "echo", "--iface", pair.ifname(), "--ip", "10.66.0.2/24", "--port", "7", "--duration", "30"],
    );
    // Wait for "xsknet: ready: …" on its stdout.
    let stdout = echo.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("xsknet: ready:") => break,
            Ok(_) => continue,
            Err(_) => {
                let _ = echo.kill();
                let out = echo.wait_with_output().unwrap();
                panic!("xsknet echo not ready: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("xsknet-pktgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("echo.json");
    let t0 = Instant::now();
    let out = xsknet::testing::run_in(
        pair.peer_ns(),
        &[
            env!("CARGO_BIN_EXE_xsknet-pktgen"),
            "--iface",
            pair.peer_ifname(),
            "--src",
            "10.66.0.1/24",
            "--dst",
            "10.66.0.2",
            "--dst-port",
            "7",
            "--count",
            "10000",
            "--rate",
            "20000",
            "--echo",
            // Returns as soon as every reply is in; the margin is for a busy machine,
            // where the echo server may fall seconds behind.
            "--wait-ms",
            "5000",
            "--progress",
            "off",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let took = t0.elapsed();
    let _ = Command::new("kill").args(["-INT", &echo.id().to_string()]).status();
    let echo_out = echo.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pktgen failed: {stdout}\n{stderr}");
    assert!(echo_out.status.success(), "xsknet echo: {}", String::from_utf8_lossy(&echo_out.stderr));
    eprintln!("{stdout}");
    let echo_stdout: Vec<String> = rx.try_iter().collect();
    eprintln!("{}", echo_stdout.join("\n"));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let e = &r["echo"];
    assert_eq!(r["sent"], 10_000, "{r}");
    assert_eq!(e["received"], 10_000, "{r}");
    assert_eq!((e["lost"].as_u64(), e["duplicates"].as_u64(), e["unknown"].as_u64()), (Some(0), Some(0), Some(0)));
    assert_eq!(r["setup"]["dst_mac_from"], "arp");
    // Never above the target; below it only if this process was starved of CPU.
    let rate = r["rate_pps"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 20_400.0, "paced at {rate} pps");
    let p = &e["rtt_us"];
    let v = |k: &str| p[k].as_f64().unwrap();
    assert_eq!(p["count"], 10_000);
    assert!(v("min") > 0.0 && v("p50") >= v("min"), "{p}");
    assert!(v("p50") <= v("p90") && v("p90") <= v("p99") && v("p99") <= v("p99.9"), "{p}");
    assert!(v("p99.9") <= v("p99.99") && v("p99.99") <= v("max"), "{p}");
    // A veth round trip takes microseconds (a few ms if the machine is busy), never seconds.
    assert!(v("p50") < 50_000.0 && v("max") < 1_000_000.0, "{p}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn interface_counters_from_proc_net_dev() {
    let _serial = serial();
    let text = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
        lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n\
        veth-gen:      28       1    0    7    0     0          0         0 138000028 3000001    0    5    0     0       0          0\n";
    let s = IfaceStats::parse(text, "veth-gen").unwrap();
    assert_eq!((s.rx_packets, s.rx_dropped, s.tx_packets, s.tx_dropped), (1, 7, 3_000_001, 5));
    assert!(IfaceStats::parse(text, "veth").is_none());
    assert!(IfaceStats::parse(text, "lo").is_some());
}

// ---- floods -------------------------------------------------------------------

use xsknet::wire::arp::{ArpPacket, ArpRepr};
use xsknet::wire::icmp::{msg_type, IcmpPacket, IcmpRepr};
use xsknet::wire::ipv4::Ipv4Error;
use xsknet::wire::tcp::{TcpPacket, TcpRepr};
use xsknet_bench::pktgen::flood::{
    self, parse_port_range, write_flood_frame, FloodFields, FloodMode, FloodPatcher, FloodSpec, Prefix, WyRand,
    BAD_CSUM_XOR, BAD_LEN_EXCESS, PAYLOAD_AT,
};

const SPOOF: Prefix = Prefix { net: Ipv4Addr::new(10, 66, 0, 0), len: 16 };

fn flood_spec(mode: FloodMode, spoof: Option<Prefix>, len: usize) -> FloodSpec {
    FloodSpec {
        mode,
        src_mac: MAC_A,
        dst_mac: MAC_B,
        src_ip: SRC,
        dst_ip: DST,
        dst_port: 9,
        dst_ports: (1000, 1999),
        spoof,
        len,
    }
}

/// What a receiver's parsers make of a flood frame.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    src: Ipv4Addr,
    sport: u16,
    dport: u16,
    mac: EthernetAddress,
}

/// Checks one flood frame of `spec` with the project's own parsers, as the
/// mode means it: what must verify verifies, what must fail fails as meant.
fn check_flood_frame(spec: &FloodSpec, frame: &[u8], n: u64) -> Seen {
    let len = spec.len;
    assert_eq!(frame.len(), len);
    let eth_frame = EthernetFrame::new_unchecked(frame);
    let eth = EthernetRepr::parse(&eth_frame).unwrap();
    if spec.mode == FloodMode::Arp {
        assert_eq!((eth.dst, eth.ethertype), (EthernetAddress::BROADCAST, 0x0806));
        let a = ArpRepr::parse(&ArpPacket::new_unchecked(eth_frame.payload())).expect("ARP parses");
        assert_eq!((a.operation, a.target_ip, a.target_hw), (ArpOperation::Request, DST, EthernetAddress::default()));
        assert_eq!(a.sender_hw, eth.src, "the Ethernet source is the sender's");
        assert!(frame[42..].iter().all(|&b| b == 0), "padded with zeros");
        if spec.spoof.is_none() {
            assert_eq!((a.sender_ip, a.sender_hw), (SRC, MAC_A));
        } else {
            assert_eq!(a.sender_hw.0[0] & 0x03, 0x02, "locally administered unicast MAC {}", a.sender_hw);
        }
        return Seen { src: a.sender_ip, sport: 0, dport: 0, mac: a.sender_hw };
    }
    assert_eq!((eth.src, eth.dst, eth.ethertype), (MAC_A, MAC_B, 0x0800), "IPv4 keeps the interface's MAC");
    let packet = Ipv4Packet::new_unchecked(eth_frame.payload());
    assert_eq!((packet.dst_addr(), packet.ttl(), packet.header_len()), (DST, 64, 20));
    let src = packet.src_addr();
    let (sport, dport) = match spec.mode {
        FloodMode::BadCsum => {
            assert_eq!(Ipv4Repr::parse(&packet), Err(Ipv4Error::ChecksumError));
            assert!(!packet.verify_checksum());
            // Put the right checksum back: then everything else verifies.
            let mut fixed = frame.to_vec();
            let c = u16::from_be_bytes([fixed[24], fixed[25]]) ^ BAD_CSUM_XOR;
            fixed[24..26].copy_from_slice(&c.to_be_bytes());
            let p = Ipv4Packet::new_unchecked(&fixed[14..]);
            assert!(p.verify_checksum(), "only the checksum is wrong");
            let ip = Ipv4Repr::parse(&p).unwrap();
            assert_eq!(ip.protocol, protocol::UDP);
            let seg = UdpPacket::new_unchecked(&fixed[UDP_OFFSET..]);
            assert!(seg.verify_checksum(src, DST));
            (seg.src_port(), seg.dst_port())
        }
        FloodMode::BadLen => {
            assert_eq!(Ipv4Repr::parse(&packet), Err(Ipv4Error::Truncated));
            assert!(packet.verify_checksum(), "the header checksum is right for the length it claims");
            assert_eq!(packet.total_len(), len - 14 + BAD_LEN_EXCESS);
            let seg = UdpPacket::new_unchecked(&frame[UDP_OFFSET..]);
            assert_eq!(seg.len(), len - UDP_OFFSET, "UDP length: the bytes present");
            assert!(seg.verify_checksum(src, DST));
            (seg.src_port(), seg.dst_port())
        }
        _ => {
            let ip = Ipv4Repr::parse(&packet).expect("IPv4 header valid");
            assert!(ip.dont_fragment && !ip.is_fragment());
            match spec.mode {
                FloodMode::Icmp => {
                    assert_eq!(packet.total_len(), len - 14);
                    let m = IcmpPacket::new_unchecked(packet.payload());
                    let r = IcmpRepr::parse(&m).expect("ICMP checksum right");
                    assert_eq!((r.msg_type, r.code, r.echo_seq()), (msg_type::ECHO_REQUEST, 0, n as u16));
                    assert_eq!(&frame[PAYLOAD_AT..], m.payload());
                    (r.echo_ident(), r.echo_seq())
                }
                FloodMode::Syn | FloodMode::Ack | FloodMode::Rst => {
                    assert_eq!((ip.protocol, packet.total_len()), (protocol::TCP, 40), "a bare header");
                    assert!(frame[54..].iter().all(|&b| b == 0), "padded with zeros");
                    let seg = TcpPacket::new_checked(packet.payload()).unwrap();
                    assert!(seg.verify_checksum(src, DST), "TCP checksum right");
                    let t = TcpRepr::parse(&seg);
                    assert_eq!(t.flags, spec.mode.tcp_flags());
                    assert_eq!((t.dst_port, t.payload_len, t.urgent), (9, 0, 0));
                    assert_eq!(t.options, Default::default());
                    if spec.mode != FloodMode::Ack {
                        assert_eq!(t.ack, 0);
                    }
                    assert_eq!(t.window, if spec.mode == FloodMode::Rst { 0 } else { flood::TCP_WINDOW });
                    (t.src_port, t.dst_port)
                }
                _ => {
                    assert_eq!((ip.protocol, packet.total_len()), (protocol::UDP, len - 14));
                    let seg = UdpPacket::new_unchecked(packet.payload());
                    let h = UdpRepr::parse(&seg).unwrap();
                    assert_eq!(seg.len(), len - UDP_OFFSET);
                    assert_ne!(seg.checksum(), 0, "a UDP checksum is always sent");
                    assert!(seg.verify_checksum(src, DST), "UDP checksum right");
                    (h.src_port, h.dst_port)
                }
            }
        }
    };
    if spec.mode != FloodMode::Icmp {
        assert!(sport >= 1024, "source port {sport}");
        match spec.mode {
            FloodMode::UdpClosed => {
                assert!((1000..=1999).contains(&dport) && dport != 9, "port {dport}");
            }
            _ => assert_eq!(dport, 9),
        }
    }
    Seen { src, sport, dport, mac: eth.src }
}

const SIZES: [usize; 4] = [60, 61, 100, 1514];

fn spoofs() -> [Option<Prefix>; 3] {
    [None, Some(SPOOF), Some(Prefix { net: Ipv4Addr::new(192, 0, 2, 128), len: 27 })]
}

#[test]
fn flood_frames_parse_as_each_mode_means() {
    let _serial = serial();
    for mode in FloodMode::ALL {
        for spoof in spoofs() {
            for len in SIZES {
                let spec = flood_spec(mode, spoof, len);
                let p = FloodPatcher::new(spec).unwrap();
                let mut rng = WyRand::new(42);
                // Several UMEM frames, each patched again and again.
                let mut frames = vec![vec![0u8; len]; 8];
                for f in frames.iter_mut() {
                    p.init(f, &mut rng);
                    check_flood_frame(&spec, f, 0);
                }
                let mut seen = Vec::new();
                for n in 0..2_000u64 {
                    let f = &mut frames[(n % 8) as usize];
                    let fields = p.draw(&mut rng, n);
                    p.patch(f, &fields);
                    let s = check_flood_frame(&spec, f, n);
                    match spoof {
                        Some(px) => assert!(px.contains(s.src), "{mode:?}: {} outside {px}", s.src),
                        None => assert_eq!(s.src, SRC),
                    }
                    seen.push(s);
                }
                let distinct = |f: &dyn Fn(&Seen) -> u64| {
                    let mut v: Vec<u64> = seen.iter().map(f).collect();
                    v.sort_unstable();
                    v.dedup();
                    v.len()
                };
                if let Some(px) = spoof {
                    // 2,000 draws over 2^(32 - len) addresses: nearly all different, or all of a small prefix.
                    let want = (1usize << (32 - px.len)).min(1_500);
                    assert!(distinct(&|s| u64::from(u32::from(s.src))) >= want, "{mode:?} {px}: sources vary");
                    if mode == FloodMode::Arp {
                        assert!(
                            distinct(&|s| u64::from_be_bytes([
                                0, 0, s.mac.0[0], s.mac.0[1], s.mac.0[2], s.mac.0[3], s.mac.0[4], s.mac.0[5]
                            ])) > 1_900
                        );
                    }
                }
                if mode != FloodMode::Arp {
                    assert!(
                        distinct(&|s| u64::from(s.sport)) > 1_900,
                        "{mode:?}: source ports (or ICMP identifiers) vary"
                    );
                }
                if mode == FloodMode::UdpClosed {
                    assert!(distinct(&|s| u64::from(s.dport)) > 800, "destination ports spread over the range");
                }
                if matches!(mode, FloodMode::Udp | FloodMode::Icmp) {
                    // Payloads differ from one UMEM frame to the next.
                    let mut payloads: Vec<&[u8]> = frames.iter().map(|f| &f[PAYLOAD_AT..]).collect();
                    payloads.sort_unstable();
                    payloads.dedup();
                    assert_eq!(payloads.len(), 8, "{mode:?}: random payloads");
                }
            }
        }
    }
}

/// The patch (fields replaced, checksums updated by difference) against the
/// frame written and summed from scratch, for random and edge values.
#[test]
fn patched_flood_frames_equal_frames_built_from_scratch() {
    let _serial = serial();
    let edge_u32 = [0u32, 1, 0xFFFF, 0x1_0000, 0xFFFF_FFFF, 0x8000_0000, 0xFFFF_0000];
    let edge_u16 = [1u16, 0xFFFF, 0x8000, 0x00FF, 1024];
    for mode in FloodMode::ALL {
        for spoof in spoofs() {
            for len in SIZES {
                let spec = flood_spec(mode, spoof, len);
                let p = FloodPatcher::new(spec).unwrap();
                let mut rng = WyRand::new(len as u64);
                let mut frame = vec![0u8; len];
                p.init(&mut frame, &mut rng);
                let mut reference = vec![0u8; len];
                for n in 0..3_000u64 {
                    let mut f = p.draw(&mut rng, n);
                    if n < 70 {
                        // Edge values in every field the patch writes.
                        let i = n as usize;
                        let host = spoof.map_or(0, |px| !px.mask());
                        let net = spoof.map_or(u32::from(SRC), |px| u32::from(px.net));
                        f.src_ip = Ipv4Addr::from(net | (edge_u32[i % 7] & host));
                        f.seq = edge_u32[(i / 7) % 7];
                        if mode == FloodMode::Ack {
                            f.ack = edge_u32[(i + 3) % 7];
                        }
                        f.src_port = edge_u16[i % 5];
                        if matches!(mode, FloodMode::UdpClosed | FloodMode::Icmp) {
                            f.dst_port = edge_u16[(i / 5) % 5];
                        }
                    }
                    p.patch(&mut frame, &f);
                    let payload = frame[PAYLOAD_AT..].to_vec();
                    write_flood_frame(&mut reference, &spec, &f, &payload);
                    assert_eq!(frame, reference, "{mode:?} {spoof:?} len {len} n {n} {f:?}");
                }
            }
        }
    }
}

/// Every source port of a UDP flood, once: some give the computed checksum 0,
/// which goes out as 0xFFFF, as the full computation writes it.
#[test]
fn flood_udp_checksum_zero_goes_out_as_ffff() {
    let _serial = serial();
    for mode in [FloodMode::Udp, FloodMode::BadCsum] {
        let spec = flood_spec(mode, None, 60);
        let p = FloodPatcher::new(spec).unwrap();
        let mut frame = vec![0u8; 60];
        p.init(&mut frame, &mut WyRand::new(3));
        let payload = frame[PAYLOAD_AT..].to_vec();
        let mut reference = vec![0u8; 60];
        let mut hits = 0;
        let mut f = p.draw(&mut WyRand::new(3), 0);
        for port in 1..=u16::MAX {
            f.src_port = port;
            p.patch(&mut frame, &f);
            write_flood_frame(&mut reference, &spec, &f, &payload);
            assert_eq!(frame, reference, "port {port}");
            if frame[40..42] == [0xFF, 0xFF] {
                hits += 1;
            }
        }
        assert_eq!(hits, 1, "one source port sums to the all-ones checksum");
    }
}

#[test]
fn flood_seed_decides_the_frames() {
    let _serial = serial();
    let spec = flood_spec(FloodMode::Syn, Some(SPOOF), 60);
    let p = FloodPatcher::new(spec).unwrap();
    let run = |seed: u64| -> Vec<FloodFields> {
        let mut rng = WyRand::new(seed);
        (0..100).map(|n| p.draw(&mut rng, n)).collect()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn flood_options_parse_and_refuse() {
    let _serial = serial();
    assert_eq!(Prefix::parse("10.66.1.2/16"), Ok(SPOOF), "host bits cleared");
    assert_eq!(SPOOF.to_string(), "10.66.0.0/16");
    assert!(SPOOF.contains(Ipv4Addr::new(10, 66, 255, 255)) && !SPOOF.contains(Ipv4Addr::new(10, 67, 0, 0)));
    assert!(Prefix::parse("10.66.0.0").is_err() && Prefix::parse("10.66.0.0/33").is_err());
    assert_eq!(parse_port_range("1024-65535"), Ok((1024, 65535)));
    assert_eq!(parse_port_range("53"), Ok((53, 53)));
    assert!(
        parse_port_range("0-10").is_err() && parse_port_range("10-9").is_err() && parse_port_range("1-70000").is_err()
    );

    let ok = || {
        let mut c = Config::new("veth0", SRC, 24, DST, 7);
        c.count = Some(10);
        c.flood = Some(FloodMode::Udp);
        c
    };
    assert_eq!(ok().validate(), Ok(()));
    let err = |f: &dyn Fn(&mut Config)| {
        let mut c = ok();
        f(&mut c);
        c.validate().unwrap_err()
    };
    assert!(err(&|c| c.echo = true).contains("--flood with --echo"));
    assert!(err(&|c| {
        c.flood = None;
        c.echo = true;
        c.spoof = Some(SPOOF);
    })
    .contains("--spoof with --echo"));
    assert!(err(&|c| {
        c.flood = None;
        c.spoof = Some(SPOOF);
    })
    .contains("need --flood"));
    assert!(err(&|c| c.dst_ports = Some((1, 10))).contains("udp-closed"));
    assert!(err(&|c| c.flows = 4).contains("--flows"));
    assert!(err(&|c| c.no_xdp = true).contains("--dst-mac"));
    assert!(err(&|c| {
        c.flood = Some(FloodMode::UdpClosed);
        c.dst_ports = Some((7, 7));
    })
    .contains("only --dst-port"));
    let mut c = ok();
    c.flood = Some(FloodMode::UdpClosed);
    c.dst_ports = Some((7, 8));
    c.spoof = Some(SPOOF);
    c.no_xdp = true;
    c.dst_mac = Some(MAC_B);
    assert_eq!(c.validate(), Ok(()));
    // A two-port range around the open port: only the other one is hit.
    let spec = flood_spec(FloodMode::UdpClosed, None, 60);
    let spec = FloodSpec { dst_port: 1000, dst_ports: (1000, 1001), ..spec };
    let p = FloodPatcher::new(spec).unwrap();
    let mut rng = WyRand::new(1);
    assert!((0..1000).all(|n| p.draw(&mut rng, n).dst_port == 1001));
    let spec = FloodSpec { dst_port: 1001, ..spec };
    let p = FloodPatcher::new(spec).unwrap();
    assert!((0..1000).all(|n| p.draw(&mut rng, n).dst_port == 1000));
}

/// The kernel's protocol counters (`/proc/net/snmp` and `/proc/net/netstat`:
/// header line, value line) of namespace `ns`, keyed `Ip.InHdrErrors`, and the
/// interface counters of `ifname` there.
fn kernel_counters(ns: &str, ifname: &str) -> (std::collections::HashMap<String, u64>, IfaceStats) {
    xsknet::testing::in_netns(ns, || {
        let mut m = std::collections::HashMap::new();
        for file in ["/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"] {
            let text = std::fs::read_to_string(file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for pair in lines.chunks(2) {
                let [names, values] = pair else { continue };
                let (group, names) = names.split_once(':').unwrap();
                let (_, values) = values.split_once(':').unwrap();
                for (k, v) in names.split_whitespace().zip(values.split_whitespace()) {
                    m.insert(format!("{group}.{k}"), v.parse::<i64>().unwrap_or(0) as u64);
                }
            }
        }
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
        (m, IfaceStats::parse(&dev, ifname).unwrap())
    })
}

/// A short flood of each mode, single-source (XDP attached) and spoofed (with
/// --no-xdp), through a veth pair: the receiving interface counts exactly the
/// frames the generator says it sent, and the receiving kernel's own counters
/// see them as the mode means (bad checksums, truncated packets, closed ports,
/// echo requests, TCP segments).
#[test]
fn flood_each_mode_through_a_veth_pair() {
    let _serial = serial();
    use xsknet::testing::{format_mac, require_root, NetNsPair, NetNsPairOptions};
    if !require_root("flood_each_mode_through_a_veth_pair") {
        return;
    }
    const N: u64 = 20_000;
    let opts = NetNsPairOptions { addr: Some((Ipv4Addr::new(10, 66, 0, 2), 24)), ipv6: false, ..Default::default() };
    let pair = NetNsPair::with_options(&opts).unwrap();
    let rx_if = pair.ifname();
    // The receiver neither asks nor answers ARP (its replies would be frames
    // the generator side sends too), and takes spoofed sources.
    for args in [
        vec!["ip", "link", "set", "dev", rx_if, "arp", "off"],
        vec!["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"],
        vec!["sysctl", "-qw", &format!("net.ipv4.conf.{rx_if}.rp_filter=0")],
    ] {
        let out = pair.run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // An open UDP port for the `udp` mode: a socket made in the namespace stays there.
    let open = xsknet::testing::in_netns(pair.ns(), || std::net::UdpSocket::bind("10.66.0.2:9").unwrap());
    open.set_nonblocking(true).unwrap();
    let dst_mac = format_mac(pair.mac());
    let dir = std::env::temp_dir().join(format!("xsknet-flood-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("flood.json");
    let mut failures = Vec::new();
    for spoofed in [false, true] {
        for mode in FloodMode::ALL {
            let (before, if_before) = kernel_counters(pair.ns(), rx_if);
            let name = mode.name();
            let count = N.to_string();
            let mut args = vec![
                env!("CARGO_BIN_EXE_xsknet-pktgen"),
                "--iface",
                pair.peer_ifname(),
                "--src",
                "10.66.0.1/24",
                "--dst",
                "10.66.0.2",
                "--dst-port",
                "9",
                "--dst-mac",
                &dst_mac,
                "--flood",
                name,
                "--count",
                &count,
                "--seed",
                "11",
                "--progress",
                "off",
                "--json",
                json.to_str().unwrap(),
            ];
            if spoofed {
                args.extend(["--spoof", "10.99.0.0/16", "--no-xdp"]);
            }
            let out = xsknet::testing::run_in(pair.peer_ns(), &args);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{name}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
            let f = &r["setup"]["flood"];
            assert_eq!((f["mode"].as_str(), f["seed"].as_u64()), (Some(name), Some(11)), "{r}");
            assert_eq!(f["spoof"].as_str(), spoofed.then_some("10.99.0.0/16"), "{r}");
            assert_eq!(r["setup"]["xdp_mode"].as_str() == Some("none"), spoofed, "{r}");
            assert_eq!(r["sent"], N, "{r}");
            assert!(r["rate_pps"].as_f64().unwrap() > 0.0);
            let (after, if_after) = kernel_counters(pair.ns(), rx_if);
            // What waits in the open port's queue (counted as InDatagrams only when read).
            let mut queued = 0u64;
            let mut buf = [0u8; 2048];
            while open.recv(&mut buf).is_ok() {
                queued += 1;
            }
            let d = |k: &str| after[k] - before[k];
            let rx = if_after.rx_packets - if_before.rx_packets;
            let rx_dropped = if_after.rx_dropped - if_before.rx_dropped;
            eprintln!("{name} (spoofed: {spoofed}): {}; receiver rx_packets {rx}", stdout.lines().next().unwrap_or(""));
            // Every frame the generator counts reached the receiving interface.
            if rx != N || rx_dropped != 0 {
                failures.push(format!("{name} spoofed {spoofed}: receiver rx_packets {rx} rx_dropped {rx_dropped}"));
            }
            let (what, seen) = match mode {
                FloodMode::Udp => ("queued + Udp.InErrors", queued + d("Udp.InErrors")),
                FloodMode::UdpClosed => ("Udp.NoPorts", d("Udp.NoPorts")),
                FloodMode::BadCsum => ("IpExt.InCsumErrors", d("IpExt.InCsumErrors").min(d("Ip.InHdrErrors"))),
                FloodMode::BadLen => ("IpExt.InTruncatedPkts", d("IpExt.InTruncatedPkts")),
                FloodMode::Arp => ("rx_packets", rx),
                FloodMode::Icmp => ("Icmp.InEchos", d("Icmp.InEchos")),
                FloodMode::Syn | FloodMode::Ack | FloodMode::Rst => ("Tcp.InSegs", d("Tcp.InSegs")),
                FloodMode::Mix => unreachable!("mix is not a flood of FloodMode::ALL: bench/tests/soak.rs runs it"),
            };
            if seen != N {
                let mut moved: Vec<String> = after
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(v))
                    .map(|(k, _)| format!("{k} +{}", d(k)))
                    .collect();
                moved.sort();
                eprintln!("{name}: counters that moved: {moved:?}");
                failures.push(format!("{name} spoofed {spoofed}: {what} rose by {seen}, not {N}"));
            }
        }
    }
    drop(open);
    assert!(failures.is_empty(), "{failures:#?}");

    // Other traffic shares the generator's namespace and interface: a kernel UDP
    // client on another address of the same veth keeps its round trips going while
    // the generator floods with its XDP program attached for 10.66.0.1 (with
    // --pass-kernel-addrs' rule: 10.66.0.3, its ARP and broadcasts stay the kernel's).
    assert!(pair.run(&["ip", "link", "set", "dev", rx_if, "arp", "on"]).status.success());
    let out = pair.run_peer(&["ip", "addr", "add", "10.66.0.3/24", "dev", pair.peer_ifname()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = xsknet::testing::in_netns(pair.ns(), || std::net::UdpSocket::bind("10.66.0.2:10").unwrap());
    let client = xsknet::testing::in_netns(pair.peer_ns(), || std::net::UdpSocket::bind("10.66.0.3:0").unwrap());
    for s in [&server, &client] {
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    }
    let mut flood = xsknet::testing::spawn_in(
        pair.peer_ns(),
        &[
            env!("CARGO_BIN_EXE_xsknet-pktgen"),
            "--iface",
            pair.peer_ifname(),
            "--src",
            "10.66.0.1/24",
            "--dst",
            "10.66.0.2",
            "--dst-port",
            "9",
            "--flood",
            "icmp",
            "--rate",
            "50000",
            "--duration",
            "3",
            "--progress",
            "off",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    let (mut during, mut tries) = (0u64, 0u64);
    let mut buf = [0u8; 64];
    let status = loop {
        if let Some(status) = flood.try_wait().unwrap() {
            break status;
        }
        // One round trip, sent again if a datagram is lost (the link may bounce
        // once while the program attaches).
        let msg = format!("ping {during}");
        let mut answered = false;
        for _ in 0..5 {
            tries += 1;
            client.send_to(msg.as_bytes(), "10.66.0.2:10").unwrap();
            let Ok((n, from)) = server.recv_from(&mut buf) else { continue };
            server.send_to(&buf[..n], from).unwrap();
            if matches!(client.recv(&mut buf), Ok(n) if &buf[..n] == msg.as_bytes()) {
                answered = true;
                break;
            }
        }
        assert!(answered, "round trip {during} of the kernel client lost 5 times during the flood");
        during += 1;
    };
    let out = flood.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!("kernel client: {during} round trips ({tries} sends) during a flood of {} frames", r["sent"]);
    assert!(r["sent"].as_u64().unwrap() > 100_000, "{r}");
    assert!(during >= 100, "only {during} round trips during the flood");
    assert!(tries <= during + 5, "{tries} sends for {during} round trips");
}

/// What drawing and patching one flood frame costs, per mode, on a 60-byte frame
/// (`cargo test --release -p xsknet-bench --test pktgen flood_patch_cost -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a test"]
fn flood_patch_cost() {
    let _serial = serial();
    let n = 20_000_000u64;
    for mode in FloodMode::ALL {
        for spoof in [None, Some(SPOOF)] {
            let spec = flood_spec(mode, spoof, 60);
            let p = FloodPatcher::new(spec).unwrap();
            let mut rng = WyRand::new(1);
            let mut frame = vec![0u8; 60];
            p.init(&mut frame, &mut rng);
            let t = Instant::now();
            for i in 0..n {
                let f = p.draw(&mut rng, i);
                p.patch(std::hint::black_box(&mut frame), &f);
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            eprintln!(
                "{:<12} {:<14} {ns:6.2} ns/packet",
                mode.name(),
                spoof.map_or("one source".into(), |p| p.to_string())
            );
            check_flood_frame(&spec, &frame, n - 1);
        }
    }
}

/// A bad output path is refused before anything is attached or sent, not
/// after the run (no root needed: it fails first).
#[test]
fn an_output_path_that_cannot_be_written_is_refused_before_the_run() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xsknet-pktgen"))
        .args(["--iface", "xsknet-no-such-if", "--src", "10.1.0.1/24", "--dst", "10.1.0.2", "--dst-port", "9"])
        .args(["--count", "1", "--json", "/nonexistent-xsknet-dir/x.json"])
        .output()
        .expect("run xsknet-pktgen");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent-xsknet-dir/x.json: No such file or directory"), "{err}");
    assert!(!err.contains("xsknet-no-such-if"), "refused before the interface is looked at: {err}");
}
