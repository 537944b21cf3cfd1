//! The protocol state of one stack (`struct net`): our link-layer and IP
//! addresses and routes, the neighbour table, the MIB counters, the ICMP rate
//! limits, the IP identifier, the rx-stamp sampler, the send-side latency
//! samples and TCP's connections.
//!
//! The protocol handlers (`crate::ipv4`) borrow it mutably for one packet,
//! together with the socket tables they look socks up in and the device
//! queue they send on. It owns no device, no socket and no clock.

use std::sync::Arc;
use std::time::Instant;

use crate::ipv4::inet_fragment::IpFragTable;

use crate::ipv4::tcp::table::TcpTable;
use crate::latency::TxStamps;
use crate::neighbour::NeighTable;
use crate::netdevice::Desc;
use crate::ratelimit::IcmpRateLimit;
use crate::route::{PmtuCache, Route};
use crate::snmp::Mib;
use crate::wire::EthernetAddress;

/// The MTU of an Ethernet device, bytes of IP datagram (`ETH_DATA_LEN`).
pub const DEFAULT_MTU: usize = 1500;

/// Which received datagrams are stamped for the rx-to-read latency histogram
/// (`crate::latency`): one in `every`, with the current rx batch's stamp.
#[derive(Clone, Copy, Debug)]
pub struct RxSampler {
    every: u32,
    countdown: u32,
    /// The current rx batch's stamp, in ns since the stack's epoch (never 0).
    stamp_ns: u64,
}

impl RxSampler {
    /// Stamps one datagram in `every` (0: none).
    pub fn new(every: u32) -> RxSampler {
        RxSampler { every, countdown: every, stamp_ns: 0 }
    }

    /// Starts an rx batch taken off the ring at `stamp_ns` after the epoch.
    #[inline]
    pub fn start_batch(&mut self, stamp_ns: u64) {
        // Never 0: 0 marks a datagram that is not sampled.
        self.stamp_ns = stamp_ns.max(1);
    }

    /// The current rx batch's stamp for a TCP stream's data (a stream times
    /// its oldest unread byte, one stamp per read); 0 when timing is off.
    #[inline]
    pub fn batch_stamp(&self) -> u64 {
        if self.every == 0 {
            0
        } else {
            self.stamp_ns
        }
    }

    /// The stamp for the next queued datagram: the batch's stamp for one in
    /// `every`, else 0.
    #[inline]
    pub fn stamp(&mut self) -> u64 {
        if self.countdown == 0 {
            return 0;
        }
        self.countdown -= 1;
        if self.countdown != 0 {
            return 0;
        }
        self.countdown = self.every;
        self.stamp_ns
    }
}

/// The protocol state. Fields are the handlers' to borrow; nothing outside
/// the protocol stage and the stack that owns it writes them.
pub struct Net {
    /// Our link-layer address.
    pub mac: EthernetAddress,
    /// Our address, subnet and gateway.
    pub route: Route,
    /// TTL of datagrams we send (`net.ipv4.ip_default_ttl`).
    pub ttl: u8,
    /// Next hops and the packets waiting for them.
    pub neigh: NeighTable<Desc>,
    /// The counters (`nstat`'s names).
    pub mib: Mib,
    /// Limits on the ICMP errors we send.
    pub icmp_ratelimit: IcmpRateLimit,
    /// Where a TCP segment that came in IP fragments is copied whole (grown
    /// to 64 KiB by the first, then kept).
    pub reasm_scratch: Vec<u8>,
    /// Socks that received data in this rx batch, to wake once it is queued
    /// (`sk_data_ready`, deferred to the end of the batch).
    pub rx_woken: Vec<crate::inet_hashtables::DemuxKey>,
    /// Which datagrams get an rx stamp.
    pub rx_sampler: RxSampler,
    /// The sampled sent frame on its way to the tx ring and back, and the
    /// send-side stage histograms.
    pub tx_stamps: TxStamps,
    /// TCP's tables, control blocks and timers (`net->ipv4.tcp_death_row`,
    /// the `inet_hashinfo` behind it).
    pub tcp: TcpTable,
    /// The device's MTU, bytes of IP datagram (1500 on Ethernet).
    pub mtu: usize,
    /// IP reassembly queues (`net->ipv4.fqdir`).
    pub ipfrags: IpFragTable,
    /// Path MTUs learned from ICMP, shared with application threads.
    pub pmtu: Arc<PmtuCache>,
    /// The counter of TCP segments' IP identifiers (DF, so never reassembled).
    ip_ident: u16,
    /// `ip_idents`: the IP identifier counters of datagrams without DF, one
    /// per bucket, each started at random.
    ip_idents: Box<[u16]>,
    /// `net->ipv4.ip_id_key`: the key that picks a datagram's bucket.
    ip_id_key: std::hash::RandomState,
}

/// Buckets of [`Net::next_ip_ident`] (`ip_idents_mask` + 1 on a small machine).
const IP_IDENTS: usize = 2048;

impl Net {
    /// The state of a stack at `mac` and `route`, sending with `ttl`, stamping
    /// one datagram in `rx_latency_sample`, with Linux's ICMP limits (or this
    /// machine's sysctls).
    pub fn new(mac: EthernetAddress, route: Route, ttl: u8, rx_latency_sample: u32, batch: usize) -> Net {
        Net {
            mac,
            route,
            ttl,
            neigh: NeighTable::default(),
            mib: Mib::default(),
            icmp_ratelimit: IcmpRateLimit::from_sysctls(),
            reasm_scratch: Vec::new(),
            rx_woken: Vec::with_capacity(batch),
            rx_sampler: RxSampler::new(rx_latency_sample),
            tx_stamps: TxStamps::default(),
            tcp: TcpTable::new(Instant::now()),
            mtu: DEFAULT_MTU,
            ipfrags: IpFragTable::new(2048, 1024),
            pmtu: Arc::default(),
            ip_ident: 1,
            ip_idents: {
                let seed = std::hash::RandomState::new();
                (0..IP_IDENTS).map(|i| std::hash::BuildHasher::hash_one(&seed, i) as u16).collect()
            },
            ip_id_key: std::hash::RandomState::new(),
        }
    }

    /// The IP identifier of a datagram to `dst` of `protocol` without DF
    /// from no connected socket (ICMP messages, fragmented datagrams):
    /// `__ip_select_ident` (net/ipv4/route.c), a counter per bucket of 2048,
    /// the bucket chosen by a keyed hash of the destination, source and
    /// protocol (`ip_idents_reserve`), each started at random. IDs stay unique
    /// per destination for reassembly, and one destination's IDs tell nothing
    /// of the traffic to others (no idle scan, no counting). Linux also adds
    /// a random step after a bucket was idle for a jiffy; xsknet does not.
    #[inline]
    pub fn next_ip_ident(&mut self, dst: std::net::Ipv4Addr, protocol: u8) -> u16 {
        let h =
            std::hash::BuildHasher::hash_one(&self.ip_id_key, (u32::from(dst), u32::from(self.route.addr), protocol));
        let slot = &mut self.ip_idents[h as usize % IP_IDENTS];
        let id = *slot;
        *slot = id.wrapping_add(1);
        id
    }

    /// The IP identifier of a TCP segment (DF): a counter. Linux counts per
    /// connection from a random start (`inet_id`).
    #[inline]
    pub fn next_tcp_ip_ident(&mut self) -> u16 {
        let id = self.ip_ident;
        self.ip_ident = self.ip_ident.wrapping_add(1);
        id
    }

    /// When the protocol timers need to run next, if any is armed.
    pub fn next_timer(&self) -> Option<Instant> {
        [self.neigh.next_deadline(), self.tcp.next_deadline(), self.ipfrags.next_deadline()].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_stamps_one_in_n() {
        for (every, expect) in [(1, 12), (3, 4), (0, 0)] {
            let mut s = RxSampler::new(every);
            s.start_batch(0);
            let stamped = (0..12).filter(|_| s.stamp() != 0).count();
            assert_eq!(stamped, expect, "1 in {every}");
        }
    }

    /// `__ip_select_ident`: each destination counts on from its own random
    /// start, untouched by the traffic to the others.
    #[test]
    fn ip_identifiers_count_per_destination_from_a_random_start() {
        use std::net::Ipv4Addr;
        let route = Route { addr: Ipv4Addr::new(10, 0, 0, 2), prefix_len: 24, gateway: None };
        let mut net = Net::new(EthernetAddress([2, 0, 0, 0, 0, 2]), route, 64, 0, 64);
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 7));
        let first = net.next_ip_ident(a, 1);
        for _ in 0..100 {
            net.next_ip_ident(b, 1);
        }
        assert_eq!(net.next_ip_ident(a, 1), first.wrapping_add(1), "b's traffic does not show in a's IDs");
        let starts: std::collections::HashSet<u16> =
            (0..64u8).map(|i| net.next_ip_ident(Ipv4Addr::new(198, 51, 100, i), 17)).collect();
        assert!(starts.len() > 32, "random starts, not one counter: {starts:?}");
    }
}
