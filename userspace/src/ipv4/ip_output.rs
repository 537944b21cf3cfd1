//! IPv4 output (net/ipv4/ip_output.c): the header of a datagram we send, the
//! route to its next hop, and `neigh_output` to the device queue or the ARP
//! queue (`ip_local_out` → `ip_finish_output2` → `neigh_output`).

use std::net::Ipv4Addr;
use std::time::Instant;

use super::arp;
use crate::capture::Link;
use crate::neighbour::Resolution;
use crate::net::Net;
use crate::netdev_queue::{dev_queue_xmit, NetdevQueue};
use crate::netdevice::Desc;
use crate::snmp::MibCounter;
use crate::umem::Frame;
use crate::wire::ethernet::{self, ethertype};
use crate::wire::ipv4::{Ipv4Packet, Ipv4Repr};

/// Writes a 20-byte IP header from us to `dst` into `buf` for a payload of
/// `payload_len` bytes, with TOS `tos` and the next identifier.
#[inline]
pub fn ip_build_header(net: &mut Net, buf: &mut [u8], dst: Ipv4Addr, protocol: u8, payload_len: usize, tos: u8) {
    ip_build_header_df(net, buf, dst, protocol, payload_len, tos, false);
}

/// As [`ip_build_header`], with DF set when `df` (path MTU discovery, as
/// Linux sets it on every TCP segment: `IP_PMTUDISC_WANT`).
#[inline]
pub fn ip_build_header_df(
    net: &mut Net,
    buf: &mut [u8],
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    tos: u8,
    df: bool,
) {
    let ident = if df { net.next_tcp_ip_ident() } else { net.next_ip_ident(dst, protocol) };
    ip_build_header_id(net, buf, dst, protocol, payload_len, tos, ident, df, false, 0);
}

/// Writes a 20-byte IP header with every fragment field given: identifier
/// `ident`, DF `df`, MF `mf`, fragment offset `frag_offset` (8-byte units).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn ip_build_header_id(
    net: &Net,
    buf: &mut [u8],
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
    tos: u8,
    ident: u16,
    df: bool,
    mf: bool,
    frag_offset: u16,
) {
    let repr = Ipv4Repr {
        src: net.route.addr,
        dst,
        protocol,
        payload_len,
        ttl: net.ttl,
        tos,
        ident,
        dont_fragment: df,
        more_fragments: mf,
        frag_offset,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(buf));
}

/// `ip_local_out` → `ip_finish_output2` → `neigh_output`: the IP datagram of
/// `ip_len` bytes at `l3` in `frame` (header written) goes to the transmit
/// batch, or waits for ARP. Returns false if it was dropped for want of a
/// route (`IpOutNoRoutes`).
#[inline]
pub fn ip_output(
    net: &mut Net,
    q: &mut NetdevQueue,
    frame: Frame,
    l3: usize,
    ip_len: usize,
    dst: Ipv4Addr,
    now: Instant,
) -> bool {
    ip_output_frag(net, q, frame, l3, ip_len, dst, now, true)
}

/// As [`ip_output`] for one fragment of a datagram: the datagram counts once
/// in `IpOutRequests` (with its first fragment, `first`), each fragment in
/// `IpOutTransmits` and `IpExtOutOctets`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn ip_output_frag(
    net: &mut Net,
    q: &mut NetdevQueue,
    frame: Frame,
    l3: usize,
    ip_len: usize,
    dst: Ipv4Addr,
    now: Instant,
    first: bool,
) -> bool {
    let Some(nexthop) = net.route.next_hop(dst) else {
        net.mib.IpOutNoRoutes += 1;
        q.kfree_xmit_reason(frame, l3..l3 + ip_len, Link::Ipv4, MibCounter::IpOutNoRoutes);
        return false;
    };
    if first {
        net.mib.IpOutRequests += 1;
    }
    net.mib.IpOutTransmits += 1;
    net.mib.IpExtOutOctets += ip_len as u64;
    let desc = Desc::one(frame, (l3 - ethernet::HEADER_LEN) as u32, (ethernet::HEADER_LEN + ip_len) as u32);
    match net.neigh.resolve(nexthop, desc, now, &mut net.mib) {
        Resolution::Resolved(mac, d) => dev_queue_xmit(q, &mut net.mib, d, net.mac, mac, ethertype::IPV4),
        Resolution::Queued { probe, discarded } => {
            if let Some(d) = discarded {
                // The oldest waiting packet (counted by the table): its IP
                // header follows the room left for the Ethernet header.
                let l3 = (d.offset + d.len.min(ethernet::HEADER_LEN as u32)) as usize..(d.offset + d.len) as usize;
                q.kfree_xmit_reason(d.frame, l3, Link::Ipv4, MibCounter::XskArpCacheUnresolvedDiscards);
            }
            if probe {
                arp::arp_send_request(net, q, nexthop);
            }
        }
        Resolution::TableFull(d) => {
            q.kfree_xmit_reason(d.frame, l3..l3 + ip_len, Link::Ipv4, MibCounter::XskArpCacheTableFulls);
        }
    }
    true
}
