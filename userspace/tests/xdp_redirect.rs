//! What the XDP program hands to xsknet and what it leaves to the kernel, on
//! literal frames through `BPF_PROG_TEST_RUN` ([`TestRunProgram`]): every IPv4
//! and ARP frame to our MAC, broadcast or multicast is ours, valid or not (the
//! softirq counts it as `ip_rcv` and `arp_rcv` would); another host's unicast
//! frames, IPv6 and other EtherTypes are the kernel's; with
//! `--pass-kernel-addrs` so are the kernel's own addresses, the limited
//! broadcast and multicast groups. The guard runs before the redirect, and the
//! counters add up to what the program saw. Needs root (skips otherwise,
//! fails under `CI`).

use std::net::Ipv4Addr;

use xsknet::testing;
use xsknet::wire::arp::{ArpOperation, ArpRepr};
use xsknet::wire::build;
use xsknet::wire::ethernet::{ethertype, EthernetAddress, EthernetRepr};
use xsknet::wire::udp::UdpRepr;
use xsknet::xdp::guard::GuardPrefix;
use xsknet::xdp::{GuardRules, GuardUpdate, TestRunProgram, XdpAction, XdpProgStats};

const OUR_ADDR: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
/// The host's own address on the shared NIC, and its subnet's broadcast.
const KERNEL_ADDR: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 9);
const KERNEL_BCAST: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 255);
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const OTHER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x99, 0x99];
const BCAST_MAC: [u8; 6] = [0xff; 6];
const MCAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];

fn load(test: &str, kernel_addrs: Option<&[Ipv4Addr]>) -> Option<TestRunProgram> {
    if !testing::require_root(test) {
        return None;
    }
    Some(TestRunProgram::load(OUR_ADDR, OUR_MAC, kernel_addrs).expect("load the XDP program (verifier)"))
}

fn eth(dst: [u8; 6], ty: u16, payload: &[u8]) -> Vec<u8> {
    build::ethernet(&EthernetRepr { dst: EthernetAddress(dst), src: EthernetAddress(PEER_MAC), ethertype: ty }, payload)
}

fn udp(dst_mac: [u8; 6], dst: Ipv4Addr) -> Vec<u8> {
    let d = build::udp(PEER, dst, &UdpRepr { src_port: 40000, dst_port: 7, payload_len: 0 }, b"x");
    eth(dst_mac, ethertype::IPV4, &build::ipv4(&build::ipv4_repr(PEER, dst, 17, 1), &d))
}

fn arp(dst_mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let a = ArpRepr {
        operation: ArpOperation::Request,
        sender_hw: EthernetAddress(PEER_MAC),
        sender_ip: sender,
        target_hw: EthernetAddress::default(),
        target_ip: target,
    };
    eth(dst_mac, ethertype::ARP, &build::arp(&a))
}

/// Runs each frame once and checks the action; returns the counters.
fn run(prog: &TestRunProgram, cases: &[(&str, Vec<u8>, XdpAction)]) -> XdpProgStats {
    for (what, frame, want) in cases {
        assert_eq!(prog.run(frame).unwrap(), *want, "{what}");
    }
    let s = prog.stats().unwrap();
    let outcomes = s.redirect_ipv4
        + s.redirect_arp
        + s.pass_not_ours
        + s.pass_no_socket
        + s.pass_malformed
        + s.drop
        + s.guard_drop
        + s.pass_other_host
        + s.pass_kernel_addr;
    assert_eq!(s.rx, outcomes, "every frame lands in exactly one outcome: {s:?}");
    s
}

/// Without a registered socket an "ours" frame comes back as XDP_PASS and is
/// counted `pass_no_socket`; the kernel's frames are counted by why.
#[test]
fn ours_by_ethertype_and_mac_the_rest_is_the_kernels() {
    let Some(prog) = load("ours_by_ethertype_and_mac_the_rest_is_the_kernels", None) else { return };
    let mut bad_ip = udp(OUR_MAC, OUR_ADDR);
    bad_ip[14] = 0x46; // IHL 6, options missing: ip_rcv_core's to count
    let gratuitous = arp(BCAST_MAC, PEER, PEER);
    let mut arp_other_hw = arp(BCAST_MAC, PEER, OUR_ADDR);
    arp_other_hw[15] = 6; // ar_hrd 6 (IEEE 802)
    let pass = XdpAction::Pass;
    let s = run(
        &prog,
        &[
            ("IPv4 to us", udp(OUR_MAC, OUR_ADDR), pass),
            ("IPv4 to another address, our MAC", udp(OUR_MAC, Ipv4Addr::new(10, 88, 0, 77)), pass),
            ("IPv4 with a bad header", bad_ip, pass),
            ("IPv4 cut at 10 bytes", eth(OUR_MAC, ethertype::IPV4, &[0x45; 10]), pass),
            ("IPv4 to us, broadcast MAC", udp(BCAST_MAC, OUR_ADDR), pass),
            ("IPv4 to us, multicast MAC", udp(MCAST_MAC, OUR_ADDR), pass),
            ("IPv4 subnet broadcast", udp(BCAST_MAC, Ipv4Addr::new(10, 88, 0, 255)), pass),
            ("ARP for us", arp(BCAST_MAC, PEER, OUR_ADDR), pass),
            ("gratuitous ARP", gratuitous, pass),
            ("ARP for another address", arp(BCAST_MAC, PEER, Ipv4Addr::new(10, 88, 0, 77)), pass),
            ("ARP for other hardware", arp_other_hw, pass),
            ("IPv4 to another host's MAC", udp(OTHER_MAC, OUR_ADDR), pass),
            ("ARP to another host's MAC", arp(OTHER_MAC, PEER, OUR_ADDR), pass),
            ("IPv6 neighbour solicitation", eth([0x33, 0x33, 0xff, 0, 0, 2], ethertype::IPV6, &[0x60; 40]), pass),
            ("VLAN-tagged", eth(OUR_MAC, ethertype::VLAN, &[0, 7, 8, 0, 0x45, 0]), pass),
            ("LLDP", eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], 0x88cc, &[0; 46]), pass),
        ],
    );
    assert_eq!(
        s,
        XdpProgStats { rx: 16, pass_no_socket: 11, pass_other_host: 2, pass_not_ours: 3, ..XdpProgStats::default() }
    );
    // The benchmark's drop: every frame that is ours, none of the kernel's.
    prog.set_drop(true).unwrap();
    assert_eq!(prog.run(&udp(OUR_MAC, Ipv4Addr::new(10, 88, 0, 77))).unwrap(), XdpAction::Drop);
    assert_eq!(prog.run(&udp(OTHER_MAC, OUR_ADDR)).unwrap(), XdpAction::Pass);
}

/// `--pass-kernel-addrs`: the kernel keeps its addresses, their broadcast,
/// the limited broadcast, multicast groups and ARP for its addresses; the rest
/// stays ours. The guard never sees the kernel's frames.
#[test]
fn pass_kernel_addrs_leaves_the_hosts_addresses_to_the_kernel() {
    let kernel = [KERNEL_ADDR, KERNEL_BCAST];
    let Some(prog) = load("pass_kernel_addrs_leaves_the_hosts_addresses_to_the_kernel", Some(&kernel)) else {
        return;
    };
    let guard = prog.guard();
    guard
        .apply(&GuardUpdate::Replace(Box::new(GuardRules {
            block: vec!["10.88.0.0/24".parse::<GuardPrefix>().unwrap()],
            ..GuardRules::default()
        })))
        .unwrap();
    guard.apply(&GuardUpdate::Enable).unwrap();
    let (pass, drop) = (XdpAction::Pass, XdpAction::Drop);
    let s = run(
        &prog,
        &[
            ("IPv4 to the kernel's address", udp(OUR_MAC, KERNEL_ADDR), pass),
            ("IPv4 to the kernel's subnet broadcast", udp(BCAST_MAC, KERNEL_BCAST), pass),
            ("IPv4 limited broadcast (DHCP)", udp(BCAST_MAC, Ipv4Addr::BROADCAST), pass),
            ("IPv4 multicast (mDNS)", udp(MCAST_MAC, Ipv4Addr::new(224, 0, 0, 251)), pass),
            ("ARP for the kernel's address", arp(BCAST_MAC, PEER, KERNEL_ADDR), pass),
            // Ours, and the guard (blocking the peer's prefix) runs on them.
            ("IPv4 to us", udp(OUR_MAC, OUR_ADDR), drop),
            ("IPv4 to another address", udp(OUR_MAC, Ipv4Addr::new(10, 88, 0, 77)), drop),
            ("ARP for us", arp(BCAST_MAC, PEER, OUR_ADDR), drop),
        ],
    );
    assert_eq!(s, XdpProgStats { rx: 8, pass_kernel_addr: 5, guard_drop: 3, ..XdpProgStats::default() });
    guard.apply(&GuardUpdate::Disable).unwrap();
    assert_eq!(prog.run(&udp(OUR_MAC, OUR_ADDR)).unwrap(), pass);
    assert_eq!(prog.stats().unwrap().pass_no_socket, 1);
}
