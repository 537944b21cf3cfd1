//! The guard in the XDP program, rule by rule, on literal frames: each test
//! loads the program without attaching it anywhere and runs frames through it
//! with `BPF_PROG_TEST_RUN` ([`TestRunProgram`]). Token buckets are tested by
//! their bursts (N frames pass, the N+1th is dropped) at rates so low that
//! the test's own run time refills a negligible fraction of a token; nothing
//! sleeps. Then `xsknet echo --guard` and `--guard-rules` end to end, with the
//! kernel of a peer namespace pinging. Needs root (skips otherwise, fails under
//! `CI`), `iproute2`, `ethtool` and `iputils-ping`.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{pair, ping, warm_up_ping, Xsknet, PEER_ADDR, SERVER_ADDR};

use xsknet::testing;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::build;
use xsknet::wire::ethernet::{EthernetAddress, EthernetRepr};
use xsknet::wire::icmp::{msg_type, IcmpRepr};
use xsknet::wire::tcp::{flags, TcpOptions, TcpRepr};
use xsknet::wire::udp::UdpRepr;
use xsknet::xdp::guard::{ByteRate, GlobalLimits, GuardPrefix, GuardProto, GuardStat, Rate, RuleList, SourceLimit};
use xsknet::xdp::{Guard, GuardError, GuardRules, GuardUpdate, TestRunProgram, XdpAction, XdpProgStats};

const OUR_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const FLOODER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const OTHER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

const ETH: EthernetRepr =
    EthernetRepr { dst: EthernetAddress([2, 0, 0, 0, 0, 1]), src: EthernetAddress([2, 0, 0, 0, 0, 2]), ethertype: 0 };

/// The program loaded for `OUR_ADDR`, or `None` (skipped) without root.
fn load(test: &str) -> Option<(TestRunProgram, Guard)> {
    if !testing::require_root(test) {
        return None;
    }
    let prog = TestRunProgram::load(OUR_ADDR, ETH.dst.0, None).expect("load the XDP program (verifier)");
    let guard = prog.guard();
    Some((prog, guard))
}

fn p(s: &str) -> GuardPrefix {
    s.parse().unwrap()
}

fn udp_to(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> Vec<u8> {
    let ip = build::ipv4_repr(src, dst, 0, 1);
    build::udp_frame(&ETH, &ip, &UdpRepr { src_port: 40000, dst_port: 7, payload_len: 0 }, &vec![0x5a; payload_len])
}

fn udp(src: Ipv4Addr) -> Vec<u8> {
    udp_to(src, OUR_ADDR, 18)
}

fn tcp(src: Ipv4Addr, tcp_flags: u8) -> Vec<u8> {
    let ip = build::ipv4_repr(src, OUR_ADDR, 0, 1);
    let seg = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: 1000,
        ack: if tcp_flags & flags::ACK != 0 { 1 } else { 0 },
        flags: tcp_flags,
        window: 65535,
        urgent: 0,
        options: TcpOptions::default(),
        payload_len: 0,
    };
    build::tcp_frame(&ETH, &ip, &seg, &[])
}

fn icmp(src: Ipv4Addr) -> Vec<u8> {
    let ip = build::ipv4_repr(src, OUR_ADDR, 0, 1);
    build::icmp_frame(&ETH, &ip, &IcmpRepr { msg_type: msg_type::ECHO_REQUEST, code: 0, rest: [0, 1, 0, 1] }, &[0; 16])
}

/// An IPv6 frame: the kernel's (xsknet speaks IPv4 only), never the guard's.
fn ipv6() -> Vec<u8> {
    build::ethernet(&EthernetRepr { ethertype: 0x86dd, ..ETH }, &[0x60, 0, 0, 0, 0, 8, 17, 64])
}

/// IPv4 protocol 47 (GRE): "other".
fn other_proto(src: Ipv4Addr) -> Vec<u8> {
    let ip = build::ipv4_repr(src, OUR_ADDR, 47, 1);
    build::ipv4_frame(&ETH, &ip, &[0; 24])
}

fn arp(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    build::arp_frame(
        &ETH,
        &ArpRepr {
            operation: ArpOperation::Request,
            sender_hw: ETH.src,
            sender_ip: sender,
            target_hw: EthernetAddress::default(),
            target_ip: target,
        },
    )
}

/// Recomputes the IPv4 header checksum of a frame after an edit.
fn fix_ip_checksum(f: &mut [u8]) {
    let hlen = usize::from(f[14] & 0xf) * 4;
    f[24] = 0;
    f[25] = 0;
    let sum = xsknet::wire::checksum::checksum(&f[14..14 + hlen]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
}

/// Runs `frame` `n` times, one run each, and checks every action.
fn run_n(prog: &TestRunProgram, frame: &[u8], n: usize, want: XdpAction, what: &str) {
    for i in 0..n {
        assert_eq!(prog.run(frame).unwrap(), want, "{what}: frame {}", i + 1);
    }
}

/// The guard's counter of `stat`.
fn count(guard: &Guard, stat: GuardStat) -> u64 {
    guard.counters().unwrap().get(stat)
}

/// Every guard counter that is not zero, by name.
fn nonzero(guard: &Guard) -> Vec<(String, u64)> {
    guard.counters().unwrap().reasons.into_iter().filter(|r| r.value > 0).map(|r| (r.name, r.value)).collect()
}

fn named(pairs: &[(GuardStat, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(s, v)| (s.name().to_owned(), *v)).collect()
}

fn enable(guard: &Guard, rules: GuardRules) {
    guard.apply(&GuardUpdate::Replace(Box::new(rules))).unwrap();
    guard.apply(&GuardUpdate::Enable).unwrap();
}

#[test]
fn guard_off_is_todays_behaviour() {
    let Some((prog, guard)) = load("guard_off_is_todays_behaviour") else { return };
    // Rules that would drop everything, but the guard stays off.
    guard
        .apply(&GuardUpdate::Replace(Box::new(GuardRules {
            block: vec![p("0.0.0.0/0")],
            drop_malformed: true,
            global: GlobalLimits { udp: Some(Rate::new(1, 1).unwrap()), ..GlobalLimits::default() },
            ..GuardRules::default()
        })))
        .unwrap();
    assert!(!guard.enabled());
    let mut bad_csum = udp(FLOODER);
    bad_csum[24] ^= 0xff;
    run_n(&prog, &udp(FLOODER), 5, XdpAction::Pass, "ours, no socket");
    run_n(&prog, &bad_csum, 2, XdpAction::Pass, "malformed goes to the softirq");
    run_n(&prog, &arp(FLOODER, OUR_ADDR), 1, XdpAction::Pass, "ARP for us");
    run_n(&prog, &ipv6(), 1, XdpAction::Pass, "not ours");
    let s = prog.stats().unwrap();
    assert_eq!(s, XdpProgStats { rx: 9, pass_no_socket: 8, pass_not_ours: 1, ..XdpProgStats::default() });
    assert_eq!(nonzero(&guard), []);
    assert_eq!(guard.counters().unwrap().rule_hits(RuleList::Block, p("0.0.0.0/0")), Some(0));
    assert!(guard.talkers(10).unwrap().is_empty(), "the guard saw nothing");

    // On, the same rules drop what is ours, never what is the kernel's.
    guard.apply(&GuardUpdate::Enable).unwrap();
    run_n(&prog, &udp(FLOODER), 2, XdpAction::Drop, "blocked");
    run_n(&prog, &ipv6(), 1, XdpAction::Pass, "not ours: not the guard's");
    let s = prog.stats().unwrap();
    assert_eq!((s.guard_drop, s.pass_not_ours, s.rx), (2, 2, 12));
    assert_eq!(nonzero(&guard), named(&[(GuardStat::DropBlock, 2)]));

    // And off again.
    guard.apply(&GuardUpdate::Disable).unwrap();
    run_n(&prog, &udp(FLOODER), 1, XdpAction::Pass, "off again");
    assert_eq!(prog.stats().unwrap().pass_no_socket, 9);
}

#[test]
fn blocklist_drops_by_longest_prefix_and_counts_per_rule() {
    let Some((prog, guard)) = load("blocklist_drops_by_longest_prefix_and_counts_per_rule") else { return };
    enable(
        &guard,
        GuardRules { block: vec![p("198.51.0.0/16"), p("198.51.100.0/24"), p("203.0.113.9")], ..GuardRules::default() },
    );
    run_n(&prog, &udp(FLOODER), 3, XdpAction::Drop, "in the /24 (and the /16)");
    run_n(&prog, &icmp(Ipv4Addr::new(198, 51, 7, 1)), 2, XdpAction::Drop, "in the /16 only");
    run_n(&prog, &arp(OTHER, OUR_ADDR), 1, XdpAction::Drop, "ARP: the sender address is the source");
    run_n(&prog, &udp(CLIENT), 4, XdpAction::Pass, "not blocked");
    let c = guard.counters().unwrap();
    assert_eq!(c.rule_hits(RuleList::Block, p("198.51.100.0/24")), Some(3));
    assert_eq!(c.rule_hits(RuleList::Block, p("198.51.0.0/16")), Some(2));
    assert_eq!(c.rule_hits(RuleList::Block, p("203.0.113.9/32")), Some(1));
    assert_eq!(nonzero(&guard), named(&[(GuardStat::Pass, 4), (GuardStat::DropBlock, 6)]));
    let s = prog.stats().unwrap();
    assert_eq!((s.rx, s.guard_drop, s.pass_no_socket, s.redirect_ipv4), (10, 6, 4, 0));
}

#[test]
fn allowlist_beats_the_blocklist_the_header_checks_and_every_limit() {
    let Some((prog, guard)) = load("allowlist_beats_the_blocklist_the_header_checks_and_every_limit") else { return };
    let one = Rate::new(1, 1).unwrap();
    enable(
        &guard,
        GuardRules {
            allow: vec![p("10.99.0.2")],
            block: vec![p("10.99.0.0/16")],
            drop_malformed: true,
            per_source: Some(SourceLimit { packets: Some(one), bytes: Some(ByteRate::new(1, 1514).unwrap()) }),
            syn_per_source: Some(one),
            global: GlobalLimits { udp: Some(one), tcp: Some(one), icmp: Some(one), arp: Some(one), other: Some(one) },
            ..GuardRules::default()
        },
    );
    guard.apply(&GuardUpdate::Tighten { addr: CLIENT, pps: 1 }).unwrap();
    let mut bad_csum = udp(CLIENT);
    bad_csum[24] ^= 0xff;
    let frames =
        [udp(CLIENT), tcp(CLIENT, flags::SYN), icmp(CLIENT), arp(CLIENT, OUR_ADDR), other_proto(CLIENT), bad_csum];
    for f in &frames {
        run_n(&prog, f, 5, XdpAction::Pass, "allowlisted");
    }
    let n = 5 * frames.len() as u64;
    assert_eq!(nonzero(&guard), named(&[(GuardStat::PassAllow, n)]));
    assert_eq!(guard.counters().unwrap().rule_hits(RuleList::Allow, p("10.99.0.2/32")), Some(n));
    assert_eq!(guard.counters().unwrap().rule_hits(RuleList::Block, p("10.99.0.0/16")), Some(0));
    // Its neighbour is blocked.
    run_n(&prog, &udp(Ipv4Addr::new(10, 99, 0, 3)), 1, XdpAction::Drop, "blocked neighbour");
}

#[test]
fn per_source_packet_rate_lets_the_burst_through_then_drops() {
    let Some((prog, guard)) = load("per_source_packet_rate_lets_the_burst_through_then_drops") else { return };
    let limit = SourceLimit { packets: Some(Rate::new(1, 5).unwrap()), bytes: None };
    enable(&guard, GuardRules { per_source: Some(limit), ..GuardRules::default() });
    run_n(&prog, &udp(FLOODER), 5, XdpAction::Pass, "the burst");
    run_n(&prog, &udp(FLOODER), 3, XdpAction::Drop, "past the burst");
    // Each source has its own bucket, whatever the protocol.
    run_n(&prog, &icmp(CLIENT), 5, XdpAction::Pass, "another source's burst");
    run_n(&prog, &arp(CLIENT, OUR_ADDR), 1, XdpAction::Drop, "ARP shares the source's bucket");
    assert_eq!(nonzero(&guard), named(&[(GuardStat::Pass, 10), (GuardStat::DropSourcePps, 4)]));
    // In one system call, as a flood arrives.
    let burst = Rate::new(1, 1000).unwrap();
    guard.apply(&GuardUpdate::SetSourceLimit(Some(SourceLimit { packets: Some(burst), bytes: None }))).unwrap();
    let before = count(&guard, GuardStat::Pass);
    let r = prog.run_repeat(&udp(OTHER), 1500).unwrap();
    assert_eq!(r.action, XdpAction::Drop);
    assert_eq!(count(&guard, GuardStat::Pass) - before, 1000);
    assert_eq!(count(&guard, GuardStat::DropSourcePps), 4 + 500);
}

#[test]
fn per_source_byte_rate_counts_whole_frames() {
    let Some((prog, guard)) = load("per_source_byte_rate_counts_whole_frames") else { return };
    let frame = udp_to(FLOODER, OUR_ADDR, 500 - 42);
    assert_eq!(frame.len(), 500);
    let limit = SourceLimit { packets: None, bytes: Some(ByteRate::new(1, 2000).unwrap()) };
    enable(&guard, GuardRules { per_source: Some(limit), ..GuardRules::default() });
    run_n(&prog, &frame, 4, XdpAction::Pass, "4 × 500 bytes");
    run_n(&prog, &frame, 1, XdpAction::Drop, "the 2001st byte");
    // A smaller frame from another source: 2000 / 100 = 20.
    let small = udp_to(CLIENT, OUR_ADDR, 100 - 42);
    run_n(&prog, &small, 20, XdpAction::Pass, "20 × 100 bytes");
    run_n(&prog, &small, 1, XdpAction::Drop, "the 21st");
    assert_eq!(nonzero(&guard), named(&[(GuardStat::Pass, 24), (GuardStat::DropSourceBytes, 2)]));
    let t = guard.sources(2).unwrap();
    assert_eq!((t[0].addr, t[0].packets, t[0].bytes), (CLIENT, 21, 2100));
    assert_eq!((t[1].addr, t[1].packets, t[1].bytes), (FLOODER, 5, 2500));
}

#[test]
fn syn_rate_counts_syns_without_ack_only() {
    let Some((prog, guard)) = load("syn_rate_counts_syns_without_ack_only") else { return };
    enable(&guard, GuardRules { syn_per_source: Some(Rate::new(1, 3).unwrap()), ..GuardRules::default() });
    run_n(&prog, &tcp(FLOODER, flags::SYN), 3, XdpAction::Pass, "the SYN burst");
    run_n(&prog, &tcp(FLOODER, flags::SYN), 2, XdpAction::Drop, "past it");
    run_n(&prog, &tcp(FLOODER, flags::ACK), 10, XdpAction::Pass, "ACKs are not SYNs");
    run_n(&prog, &tcp(FLOODER, flags::SYN | flags::ACK), 10, XdpAction::Pass, "nor SYN-ACKs");
    run_n(&prog, &tcp(FLOODER, flags::RST), 10, XdpAction::Pass, "nor RSTs");
    run_n(&prog, &udp(FLOODER), 10, XdpAction::Pass, "nor UDP");
    run_n(&prog, &tcp(CLIENT, flags::SYN), 3, XdpAction::Pass, "another source's SYNs");
    assert_eq!(nonzero(&guard), named(&[(GuardStat::Pass, 46), (GuardStat::DropSyn, 2)]));
    // A later fragment has no TCP header, whatever its bytes say.
    let mut frag = tcp(FLOODER, flags::SYN);
    frag[20] = 0x00;
    frag[21] = 0x10; // offset 16 × 8 bytes
    fix_ip_checksum(&mut frag);
    run_n(&prog, &frag, 1, XdpAction::Pass, "a later fragment");
}

#[test]
fn global_limit_per_protocol() {
    let Some((prog, guard)) = load("global_limit_per_protocol") else { return };
    let two = Rate::new(1, 2).unwrap();
    for (proto, frame, stat) in [
        (GuardProto::Udp, udp as fn(Ipv4Addr) -> Vec<u8>, GuardStat::DropGlobalUdp),
        (GuardProto::Tcp, |a| tcp(a, flags::ACK), GuardStat::DropGlobalTcp),
        (GuardProto::Icmp, icmp, GuardStat::DropGlobalIcmp),
        (GuardProto::Arp, |a| arp(a, OUR_ADDR), GuardStat::DropGlobalArp),
        (GuardProto::Other, other_proto, GuardStat::DropGlobalOther),
    ] {
        // A program of its own for each protocol, so that each count is exact.
        let prog2 = TestRunProgram::load(OUR_ADDR, ETH.dst.0, None).unwrap();
        let g = prog2.guard();
        let mut global = GlobalLimits::default();
        global.set(proto, Some(two));
        enable(&g, GuardRules { global, ..GuardRules::default() });
        // All sources together: two from two different ones, then a third.
        run_n(&prog2, &frame(FLOODER), 1, XdpAction::Pass, proto.name());
        run_n(&prog2, &frame(CLIENT), 1, XdpAction::Pass, proto.name());
        run_n(&prog2, &frame(OTHER), 2, XdpAction::Drop, proto.name());
        // The other protocols are not limited.
        let all: [(GuardProto, Vec<u8>); 5] = [
            (GuardProto::Udp, udp(OTHER)),
            (GuardProto::Tcp, tcp(OTHER, flags::ACK)),
            (GuardProto::Icmp, icmp(OTHER)),
            (GuardProto::Arp, arp(OTHER, OUR_ADDR)),
            (GuardProto::Other, other_proto(OTHER)),
        ];
        for (other, f) in all.iter().filter(|(o, _)| *o != proto) {
            assert_eq!(prog2.run(f).unwrap(), XdpAction::Pass, "{} not limited by {}", other.name(), proto.name());
        }
        assert_eq!(count(&g, stat), 2, "{}", proto.name());
        assert_eq!(g.counters().unwrap().dropped(), 2, "{}", proto.name());
    }
    // The first program, set at run time protocol by protocol.
    enable(&guard, GuardRules::default());
    guard.apply(&GuardUpdate::SetGlobal(GuardProto::Icmp, Some(two))).unwrap();
    run_n(&prog, &icmp(CLIENT), 2, XdpAction::Pass, "icmp burst");
    run_n(&prog, &icmp(CLIENT), 1, XdpAction::Drop, "icmp past it");
    guard.apply(&GuardUpdate::SetGlobal(GuardProto::Icmp, None)).unwrap();
    run_n(&prog, &icmp(CLIENT), 3, XdpAction::Pass, "icmp unlimited again");
}

#[test]
fn malformed_ipv4_is_dropped_by_kind_and_fragments_are_not() {
    let Some((prog, guard)) = load("malformed_ipv4_is_dropped_by_kind_and_fragments_are_not") else { return };
    let good = udp(FLOODER);
    let edit = |f: &dyn Fn(&mut Vec<u8>), fix: bool| {
        let mut v = good.clone();
        f(&mut v);
        if fix {
            fix_ip_checksum(&mut v);
        }
        v
    };
    let tot_len = good.len() as u16 - 14;
    let cases: Vec<(Vec<u8>, GuardStat)> = vec![
        (edit(&|v| v[14] = 0x65, true), GuardStat::DropMalformedVersion),
        (edit(&|v| v[14] = 0x44, false), GuardStat::DropMalformedIhl),
        // IHL 15 (60 bytes) in a frame with 46 bytes of IPv4.
        (edit(&|v| v[14] = 0x4f, false), GuardStat::DropMalformedHdrLen),
        (edit(&|v| v[24] ^= 0x01, false), GuardStat::DropMalformedCsum),
        (edit(&|v| v[16..18].copy_from_slice(&(tot_len + 1).to_be_bytes()), true), GuardStat::DropMalformedTruncated),
        (edit(&|v| v[16..18].copy_from_slice(&19u16.to_be_bytes()), true), GuardStat::DropMalformedTotLen),
    ];
    let fragment = edit(&|v| v[20..22].copy_from_slice(&0x2001u16.to_be_bytes()), true);
    let mut padded = good.clone();
    padded.extend_from_slice(&[0; 20]); // Ethernet padding past tot_len is fine
    let mut with_options = build::ipv4_frame(
        &ETH,
        &build::ipv4_repr(FLOODER, OUR_ADDR, 17, 9),
        &build::udp(FLOODER, OUR_ADDR, &UdpRepr { src_port: 1, dst_port: 7, payload_len: 0 }, &[1, 2]),
    );
    // Rebuilt with two option words (NOPs), checksum over the 28-byte header.
    let udp_part = with_options.split_off(34);
    let opts = build::ipv4_with_options(&build::ipv4_repr(FLOODER, OUR_ADDR, 17, 9), &[1; 8], &udp_part);
    let with_options = build::ethernet(&EthernetRepr { ethertype: 0x0800, ..ETH }, &opts);

    // Off: every one of them goes on to the softirq.
    enable(&guard, GuardRules::default());
    for (frame, stat) in &cases {
        assert_eq!(prog.run(frame).unwrap(), XdpAction::Pass, "{stat:?} with drop_malformed off");
    }
    assert_eq!(nonzero(&guard), named(&[(GuardStat::Pass, cases.len() as u64)]));

    guard.apply(&GuardUpdate::SetDropMalformed(true)).unwrap();
    for (frame, stat) in &cases {
        let before = count(&guard, *stat);
        assert_eq!(prog.run(frame).unwrap(), XdpAction::Drop, "{stat:?}");
        assert_eq!(count(&guard, *stat), before + 1, "{stat:?} counted");
    }
    for (frame, what) in [(&good, "good"), (&fragment, "a fragment"), (&padded, "padded"), (&with_options, "options")] {
        assert_eq!(prog.run(frame).unwrap(), XdpAction::Pass, "{what}");
    }
    let c = guard.counters().unwrap();
    assert_eq!(c.dropped(), cases.len() as u64);
    assert_eq!(c.get(GuardStat::Pass), cases.len() as u64 + 4);
    assert_eq!(prog.stats().unwrap().guard_drop, cases.len() as u64);
}

#[test]
fn tighten_and_relax_a_source_at_run_time() {
    let Some((prog, guard)) = load("tighten_and_relax_a_source_at_run_time") else { return };
    enable(&guard, GuardRules::default_policy());
    run_n(&prog, &udp(FLOODER), 10, XdpAction::Pass, "within the default policy");
    guard.apply(&GuardUpdate::Tighten { addr: FLOODER, pps: 3 }).unwrap();
    assert_eq!(guard.tightened().get(&FLOODER), Some(&3));
    run_n(&prog, &udp(FLOODER), 3, XdpAction::Pass, "a second's worth");
    run_n(&prog, &udp(FLOODER), 2, XdpAction::Drop, "past it");
    run_n(&prog, &udp(CLIENT), 10, XdpAction::Pass, "others are not tightened");
    assert_eq!(count(&guard, GuardStat::DropTight), 2);
    for t in [guard.talkers(1).unwrap(), guard.sources(1).unwrap()] {
        assert_eq!((t[0].addr, t[0].packets, t[0].tightened_pps), (FLOODER, 15, Some(3)));
    }

    guard.apply(&GuardUpdate::Relax { addr: FLOODER }).unwrap();
    run_n(&prog, &udp(FLOODER), 10, XdpAction::Pass, "relaxed");
    assert_eq!(count(&guard, GuardStat::DropTight), 2);
    assert!(guard.tightened().is_empty());
    assert!(matches!(
        guard.apply(&GuardUpdate::Relax { addr: FLOODER }),
        Err(GuardError::NotTightened { addr }) if addr == FLOODER
    ));
    let e = guard.apply(&GuardUpdate::Tighten { addr: FLOODER, pps: 0 }).unwrap_err();
    assert!(e.to_string().contains("tightening 198.51.100.7: the rate must be"), "{e}");
}

#[test]
fn runtime_changes_take_effect_and_counters_follow_the_rules() {
    let Some((prog, guard)) = load("runtime_changes_take_effect_and_counters_follow_the_rules") else { return };
    enable(&guard, GuardRules::default());
    run_n(&prog, &udp(FLOODER), 1, XdpAction::Pass, "no rule");
    guard.apply(&GuardUpdate::Block(p("198.51.100.0/24"))).unwrap();
    guard.apply(&GuardUpdate::Block(p("198.51.100.0/24"))).unwrap(); // no change
    run_n(&prog, &udp(FLOODER), 2, XdpAction::Drop, "blocked");
    assert_eq!(guard.rules().block, [p("198.51.100.0/24")]);
    guard.apply(&GuardUpdate::Allow(p("198.51.100.7"))).unwrap();
    run_n(&prog, &udp(FLOODER), 1, XdpAction::Pass, "allowed beats blocked");
    guard.apply(&GuardUpdate::Unallow(p("198.51.100.7"))).unwrap();
    run_n(&prog, &udp(FLOODER), 1, XdpAction::Drop, "blocked again");
    assert_eq!(guard.counters().unwrap().rule_hits(RuleList::Block, p("198.51.100.0/24")), Some(3));
    guard.apply(&GuardUpdate::Unblock(p("198.51.100.0/24"))).unwrap();
    run_n(&prog, &udp(FLOODER), 1, XdpAction::Pass, "unblocked");
    assert!(matches!(
        guard.apply(&GuardUpdate::Unblock(p("198.51.100.0/24"))),
        Err(GuardError::NoSuchRule { list: "blocklist", .. })
    ));
    // A rule added again starts from 0 hits (its slot was zeroed).
    guard.apply(&GuardUpdate::Block(p("198.51.100.0/24"))).unwrap();
    assert_eq!(guard.counters().unwrap().rule_hits(RuleList::Block, p("198.51.100.0/24")), Some(0));
    assert_eq!(guard.counters().unwrap().rule_hits(RuleList::Allow, p("198.51.100.7/32")), None);

    // Replace: the old lists go, the new ones come, rules() says so.
    let new = GuardRules {
        block: vec![p("203.0.113.0/24")],
        allow: vec![p("10.99.0.0/24")],
        per_source: Some(SourceLimit { packets: Some(Rate::new(1, 2).unwrap()), bytes: None }),
        ..GuardRules::default()
    };
    guard.apply(&GuardUpdate::Replace(Box::new(new.clone()))).unwrap();
    assert_eq!(guard.rules(), new);
    run_n(&prog, &udp(FLOODER), 2, XdpAction::Pass, "no longer blocked; the burst");
    run_n(&prog, &udp(FLOODER), 1, XdpAction::Drop, "past the new per-source burst");
    run_n(&prog, &udp(OTHER), 1, XdpAction::Drop, "newly blocked");
    run_n(&prog, &udp(CLIENT), 5, XdpAction::Pass, "newly allowed");
    let c = guard.counters().unwrap();
    assert_eq!(
        c.rules.iter().map(|r| (r.list, r.prefix.to_string(), r.hits)).collect::<Vec<_>>(),
        [(RuleList::Allow, "10.99.0.0/24".into(), 5), (RuleList::Block, "203.0.113.0/24".into(), 1)]
    );
    // Every frame the guard looked at in exactly one counter; the program's count agrees.
    let looked_at: u64 = c.reasons.iter().map(|r| r.value).sum();
    let s = prog.stats().unwrap();
    assert_eq!(looked_at, s.rx);
    assert_eq!(c.dropped(), s.guard_drop);
    assert_eq!(s.rx, s.pass_no_socket + s.guard_drop);

    // The guard and the bench's drop switch share the config map without clobbering.
    prog.set_drop(true).unwrap();
    assert!(guard.enabled());
    run_n(&prog, &udp(OTHER), 1, XdpAction::Drop, "blocked, with drop on");
    prog.set_drop(false).unwrap();
    guard.apply(&GuardUpdate::Disable).unwrap();
    prog.set_drop(true).unwrap();
    assert!(!guard.enabled());
    prog.set_drop(false).unwrap();
    run_n(&prog, &udp(OTHER), 1, XdpAction::Pass, "guard off, drop off");
}

#[test]
fn rules_are_refused_with_a_reason_not_a_panic() {
    let Some((_prog, guard)) = load("rules_are_refused_with_a_reason_not_a_panic") else { return };
    let too_many: Vec<GuardPrefix> =
        (0..1025u32).map(|i| GuardPrefix::new(Ipv4Addr::from(0x0a00_0000 | (i << 8)), 24).unwrap()).collect();
    let e =
        guard.apply(&GuardUpdate::Replace(Box::new(GuardRules { block: too_many.clone(), ..GuardRules::default() })));
    assert!(matches!(e, Err(GuardError::Rule(_))), "{e:?}");
    for prefix in &too_many[..1024] {
        guard.apply(&GuardUpdate::Block(*prefix)).unwrap();
    }
    let e = guard.apply(&GuardUpdate::Allow(too_many[1024])).unwrap_err();
    assert!(matches!(e, GuardError::RulesFull { max: 1024 }), "{e}");
    assert!(e.to_string().contains("remove one"), "{e}");
    guard.apply(&GuardUpdate::Unblock(too_many[0])).unwrap();
    guard.apply(&GuardUpdate::Allow(too_many[1024])).unwrap();
}

/// The slot of the heavy-hitter table `addr` hashes to (as the program does).
fn heavy_slot(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets()).wrapping_mul(2_654_435_761) >> 24
}

#[test]
fn talkers_are_counted_in_xdp_and_read_in_one_call() {
    let Some((prog, guard)) = load("talkers_are_counted_in_xdp_and_read_in_one_call") else { return };
    enable(&guard, GuardRules::default());
    let slots = [heavy_slot(FLOODER), heavy_slot(OTHER), heavy_slot(CLIENT)];
    assert!(slots[0] != slots[1] && slots[1] != slots[2] && slots[0] != slots[2], "{slots:?}");
    prog.run_repeat(&udp(FLOODER), 50).unwrap();
    prog.run_repeat(&udp(OTHER), 20).unwrap();
    prog.run_repeat(&icmp(CLIENT), 30).unwrap();
    for t in [guard.talkers(2).unwrap(), guard.sources(2).unwrap()] {
        assert_eq!(t.iter().map(|t| (t.addr, t.packets)).collect::<Vec<_>>(), [(FLOODER, 50), (CLIENT, 30)]);
        assert_eq!(t[0].bytes, 50 * udp(FLOODER).len() as u64);
    }
    assert_eq!(guard.talkers(10).unwrap().len(), 3);
    assert_eq!(guard.sources(10).unwrap().len(), 3);

    // A lighter source in FLOODER's slot does not take it; a heavier one does.
    let rival = (1..=255u8)
        .map(|b| Ipv4Addr::new(192, 0, 2, b))
        .find(|a| heavy_slot(*a) == slots[0])
        .or_else(|| {
            (0..=u16::MAX).map(|i| Ipv4Addr::new(100, 64, (i >> 8) as u8, i as u8)).find(|a| heavy_slot(*a) == slots[0])
        })
        .expect("an address in the same slot");
    prog.run_repeat(&udp(rival), 40).unwrap();
    assert!(!guard.talkers(10).unwrap().iter().any(|t| t.addr == rival));
    assert!(guard.sources(10).unwrap().iter().any(|t| t.addr == rival && t.packets == 40), "sources() has all");
    prog.run_repeat(&udp(rival), 20).unwrap();
    let t = guard.talkers(10).unwrap();
    assert_eq!((t[0].addr, t[0].packets), (rival, 60));
    assert!(!t.iter().any(|t| t.addr == FLOODER), "FLOODER lost its slot to a heavier source");
    // FLOODER's next frame: still lighter than the slot's source, still out.
    prog.run(&udp(FLOODER)).unwrap();
    assert!(!guard.talkers(10).unwrap().iter().any(|t| t.addr == FLOODER));

    // A spoofed flood fills the table of sources: the cost of each read.
    let mut frame = udp(FLOODER);
    for i in 0..70_000u32 {
        frame[26..30].copy_from_slice(&(0x6400_0000u32 | i).to_be_bytes());
        fix_ip_checksum(&mut frame);
        prog.run(&frame).unwrap();
    }
    let started = Instant::now();
    let top = guard.talkers(10).unwrap();
    let heavy_took = started.elapsed();
    let started = Instant::now();
    let all = guard.sources(usize::MAX).unwrap();
    let all_took = started.elapsed();
    eprintln!(
        "talkers: the heavy-hitter table in {:.3} ms; all {} sources in {:.2} ms",
        heavy_took.as_secs_f64() * 1e3,
        all.len(),
        all_took.as_secs_f64() * 1e3
    );
    assert!(all.len() <= 65_536 && all.len() > 30_000, "{}", all.len());
    assert_eq!(top.len(), 10);
    assert_eq!((top[0].addr, top[0].packets), (rival, 60), "the flood's one-packet sources do not displace it");
    assert!(top.windows(2).all(|w| w[0].packets >= w[1].packets));
}

#[test]
fn what_the_guard_costs_per_frame() {
    let Some((prog, guard)) = load("what_the_guard_costs_per_frame") else { return };
    let frame = udp(CLIENT);
    let runs = 200_000;
    let measure = |what: &str, want: XdpAction| {
        let r = prog.run_repeat(&frame, runs).unwrap();
        assert_eq!(r.action, want, "{what}");
        eprintln!("guard cost: {what:<44} {:>6} ns/frame", r.per_run.as_nanos());
    };
    measure("off", XdpAction::Pass);
    enable(&guard, GuardRules::default());
    measure("on, no rule (source counted)", XdpAction::Pass);
    let rules = GuardRules {
        per_source: Some(SourceLimit { packets: Some(Rate::new(1_000_000, 1_000_000).unwrap()), bytes: None }),
        ..GuardRules::default_policy()
    };
    enable(&guard, rules.clone());
    measure("on, default policy (generous bucket)", XdpAction::Pass);
    let block: Vec<GuardPrefix> =
        (0..1000u32).map(|i| GuardPrefix::new(Ipv4Addr::from(0xc000_0000 | (i << 8)), 24).unwrap()).collect();
    enable(&guard, GuardRules { block, ..rules });
    measure("on, default policy + 1000 block rules", XdpAction::Pass);
    guard.apply(&GuardUpdate::Block(p("10.99.0.0/24"))).unwrap();
    measure("blocked", XdpAction::Drop);
}

// ---- end to end: the xsknet binary ------------------------------------------

/// The guard's counter `name` in a stopped xsknet's JSON report.
fn reported(f: &common::Finished, name: &str) -> u64 {
    let reasons = f.json["guard"]["reasons"].as_array().unwrap_or_else(|| panic!("no guard in the report: {}", f.json));
    reasons.iter().find(|r| r["name"] == name).and_then(|r| r["value"].as_u64()).unwrap_or_else(|| panic!("{name}"))
}

fn rules_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("xsknet-guard-{}-{name}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn echo_with_the_default_policy_answers_and_counts() {
    if !testing::require_root("echo_with_the_default_policy_answers_and_counts") {
        return;
    }
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--guard"]);
    let ready = x.ready_line.clone().unwrap();
    assert!(ready.contains("guard: default policy"), "{ready}");
    warm_up_ping(pair.peer_ns(), SERVER_ADDR, Duration::from_secs(5));
    assert_eq!(ping(pair.peer_ns(), SERVER_ADDR, 5, "0.2", "1"), (5, 5));
    let f = x.stop();
    f.assert_clean_exit();
    // Every ping and ARP request passed the guard; nothing was dropped.
    assert!(reported(&f, "XdpGuardPass") >= 6, "{}", f.json["guard"]);
    assert_eq!(f.json["xdp_prog"]["guard_drop"], 0);
    assert_eq!(f.json["guard"]["enabled"], true);
    assert!(f.stdout.contains("guard (XDP)"), "{}", f.stdout);
}

#[test]
fn echo_with_a_rules_file_blocks_the_peer() {
    if !testing::require_root("echo_with_a_rules_file_blocks_the_peer") {
        return;
    }
    let path = rules_file("block", &format!("block = [\"{PEER_ADDR}/32\"]\n"));
    let pair = pair();
    let x = Xsknet::start_echo(pair.ns(), pair.ifname(), &["--guard-rules", path.to_str().unwrap()]);
    // The peer's ARP requests (ar_sip) and pings (saddr) are dropped in XDP.
    assert_eq!(ping(pair.peer_ns(), SERVER_ADDR, 3, "0.2", "1"), (3, 0));
    let f = x.stop();
    let _ = std::fs::remove_file(&path);
    f.assert_clean_exit();
    let blocked = reported(&f, "XdpGuardDropBlocklist");
    assert!(blocked >= 1, "{}", f.json["guard"]);
    assert_eq!(f.json["guard"]["rules"][0]["hits"].as_u64(), Some(blocked));
    assert_eq!(f.json["xdp_prog"]["guard_drop"].as_u64(), Some(blocked));
    assert_eq!(f.counter("XskRxFrames"), 0, "the softirq saw none of it");
}

#[test]
fn a_bad_rules_file_is_refused_with_its_line() {
    if !testing::require_root("a_bad_rules_file_is_refused_with_its_line") {
        return;
    }
    let path = rules_file("bad", "drop_malformed = true\nblock = [\"10.0.0.5/8\"]\n");
    let pair = pair();
    let mut x = Xsknet::spawn_echo(pair.ns(), pair.ifname(), &["--guard-rules", path.to_str().unwrap()]);
    let e = x.wait_ready(Duration::from_secs(10)).unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(e.contains("line 2") && e.contains("did you mean 10.0.0.0/8?"), "{e}");
}
