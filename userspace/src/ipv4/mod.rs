//! IPv4 and the protocols above it: the protocol half of the softirq stage.
//!
//! Each handler is a function that borrows what it needs for one packet: the
//! protocol state ([`crate::net::Net`]), the socket tables it looks socks up
//! in ([`crate::inet_hashtables::InetHashTables`]) and the device queue it
//! frees frames to and sends on ([`crate::netdev_queue::NetdevQueue`]), with
//! the time passed in. Every frame ends in exactly one place: a sock's receive
//! queue, the transmit batch (answers are built in the same frame where they
//! fit), or the free cache, with a counter saying why.
//!
//! | module | Linux | what |
//! |---|---|---|
//! | [`ip_input`] | net/ipv4/ip_input.c | `ip_rcv`: checks, route, deliver |
//! | [`ip_output`] | net/ipv4/ip_output.c | headers, route, neighbour output |
//! | [`ip_fragment`] | net/ipv4/ip_fragment.c | `ip_defrag`, `ip_expire`, fragment layout |
//! | [`inet_fragment`] | net/ipv4/inet_fragment.c | the reassembly queues, their bounds and runs |
//! | [`udp`] | net/ipv4/udp.c | `__udp4_lib_rcv`, `udp_push_pending_frames`, `udp_prot` |
//! | [`tcp`] | net/ipv4/tcp*.c | `tcp_v4_rcv`, the state machine, timers, `tcp_prot` |
//! | [`icmp`] | net/ipv4/icmp.c | echo, errors in and out |
//! | [`arp`] | net/ipv4/arp.c | `arp_rcv`, `arp_solicit`, the neighbour timers |
//! | [`af_inet`] | net/ipv4/af_inet.c | the protocol switch |

pub mod af_inet;
pub mod arp;
pub mod icmp;
pub mod inet_fragment;
pub mod ip_fragment;
pub mod ip_input;
pub mod ip_output;
pub mod tcp;
pub mod udp;

use crate::route::InRoute;
use crate::skbuff::SkBuff;
use crate::wire::ethernet::PktType;
use crate::wire::ipv4::Ipv4Repr;

/// Where a received IPv4 datagram lies in its frame.
#[derive(Clone, Copy, Debug)]
pub struct RxIp {
    /// The checked header (options skipped).
    pub hdr: Ipv4Repr,
    /// Offset of the IP header from the frame base.
    pub l3: usize,
    /// Offset of the payload (ICMP, UDP) from the frame base.
    pub l4: usize,
    /// Payload length, Ethernet padding trimmed.
    pub l4_len: usize,
    /// What the destination MAC said (`skb->pkt_type`): never
    /// [`PktType::OtherHost`] here, `netif_receive` dropped those.
    pub pkt_type: PktType,
    /// The input route: [`InRoute::Local`], [`InRoute::Broadcast`] or
    /// [`InRoute::Multicast`] for a datagram handed to a protocol.
    pub route: InRoute,
}

impl RxIp {
    /// Whether the input route is a broadcast or multicast one
    /// (`rt->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)`).
    #[inline]
    pub fn is_bcast_route(&self) -> bool {
        self.route.is_bcast()
    }

    /// The datagram's total length: header, options and payload.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.l4 - self.l3 + self.l4_len
    }
}

/// How a reassembled datagram came: its header and what its first
/// fragment's frame and route said (`ip_frag_reasm` morphs the head skb, the
/// fragment at offset 0, into the datagram, keeping its `pkt_type` and dst).
#[derive(Clone, Copy, Debug)]
pub struct ReasmIp {
    /// The datagram's IP header (the first fragment's, no longer a fragment),
    /// `payload_len` the whole payload.
    pub hdr: Ipv4Repr,
    /// What the first fragment's destination MAC said (`skb->pkt_type`): the
    /// ICMP errors about the datagram follow it as `__icmp_send` does.
    pub pkt_type: PktType,
    /// The input route of the fragments (one destination, one route).
    pub route: InRoute,
}

/// A datagram `ip_fragment::ip_defrag` completed.
#[derive(Debug)]
pub struct Reassembled {
    /// Its header and how it came.
    pub ip: ReasmIp,
    /// The payload: a chain over the fragments' frames (its peer unset).
    pub skb: SkBuff,
}
