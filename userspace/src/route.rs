//! Routing for our one IPv4 interface (net/ipv4/route.c, fib_frontend.c):
//! which destinations are on the link, which go through the gateway, which
//! have no route, and which sources are martians.
//!
//! xsknet has one address per stack, so the FIB is the connected route of
//! `addr/prefix_len` plus an optional default route through `gateway`. Every
//! routing decision of the input path (`ip_route_input_slow`) and the output
//! path (`ip_route_output_key`, the `sendto()` check) is made here and nowhere
//! else.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The routing table of one interface: its address, its connected subnet and
/// an optional default gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Our address (the local route).
    pub addr: Ipv4Addr,
    /// The connected subnet's prefix length, 0–32.
    pub prefix_len: u8,
    /// The next hop for destinations off the subnet (the default route).
    pub gateway: Option<Ipv4Addr>,
}

/// What the output route lookup says about a destination (`ip_route_output_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutRoute {
    /// A unicast destination, reached through `next_hop`.
    Unicast {
        /// Where the frame goes on the link: the destination or the gateway.
        next_hop: Ipv4Addr,
    },
    /// The subnet's or the limited broadcast address: `sendto()` needs
    /// `SO_BROADCAST` (`EACCES` without it, as in `udp_sendmsg`).
    Broadcast,
    /// Off the subnet with no gateway: `IpOutNoRoutes`, `ENETUNREACH`.
    NoRoute,
}

/// What the input route lookup says about a received datagram
/// (`ip_route_input_slow`, net/ipv4/route.c, with forwarding off as on a host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InRoute {
    /// Our address: `RTN_LOCAL`, delivered.
    Local,
    /// The limited broadcast or the subnet's broadcast address: `RTN_BROADCAST`,
    /// delivered as a broadcast (`IpExtInBcastPkts`).
    Broadcast,
    /// The all-hosts group 224.0.0.1, which every multicast-capable interface
    /// joins: `RTN_MULTICAST`, delivered as a multicast (`IpExtInMcastPkts`).
    Multicast,
    /// A multicast group we did not join (`ip_check_mc_rcu` fails): dropped,
    /// no SNMP counter.
    McastNotJoined,
    /// Another host's address: with forwarding off the route is `ip_error`'s,
    /// which counts `IpInAddrErrors` (after the options are checked).
    Unreachable,
    /// A martian source: dropped, no SNMP counter (`in_martian_src`).
    MartianSource,
    /// A martian destination (zeronet, loopback): dropped, no SNMP counter
    /// (`in_martian_dst`).
    MartianDestination,
}

impl InRoute {
    /// Whether the route is a broadcast or multicast one
    /// (`rt->rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)`).
    #[inline]
    pub fn is_bcast(self) -> bool {
        matches!(self, InRoute::Broadcast | InRoute::Multicast)
    }
}

impl Route {
    /// The subnet mask, as a host-order integer.
    fn netmask(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// Whether `ip` is on our subnet (reached directly, without a gateway).
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.netmask() == 0
    }

    /// The next hop for `dst`: `dst` itself on the subnet, else the gateway;
    /// `None` when there is no route (`IpOutNoRoutes`).
    pub fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.gateway
        }
    }

    /// The subnet's broadcast address; none on a /31 or /32, as Linux sets
    /// `ifa_broadcast` only below 31 bits (RFC 3021: a /31 is a point-to-point
    /// link whose two addresses are both hosts).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from(u32::from(self.addr) | !self.netmask()))
    }

    /// Whether `gw` can be a gateway: a unicast address on the subnet, not
    /// ours (Linux refuses others: "Nexthop has invalid gateway").
    pub fn valid_gateway(&self, gw: Ipv4Addr) -> bool {
        self.on_link(gw)
            && gw != self.addr
            && Some(gw) != self.broadcast()
            && !gw.is_broadcast()
            && !gw.is_multicast()
            && !gw.is_unspecified()
    }

    /// The output route lookup for `dst` (`ip_route_output_key`).
    pub fn output(&self, dst: Ipv4Addr) -> OutRoute {
        if dst.is_broadcast() || Some(dst) == self.broadcast() {
            OutRoute::Broadcast
        } else {
            match self.next_hop(dst) {
                Some(next_hop) => OutRoute::Unicast { next_hop },
                None => OutRoute::NoRoute,
            }
        }
    }

    /// Whether `dst` is our own address (the local route); the receive path
    /// asks [`Route::input`], which also knows broadcasts and martians.
    pub fn is_local(&self, dst: Ipv4Addr) -> bool {
        dst == self.addr
    }

    /// The input route for a datagram from `src` to `dst`, decided in
    /// `ip_route_input_slow`'s order: multicast or limited-broadcast sources,
    /// the limited-broadcast destination, zeronet sources and destinations,
    /// loopback destinations then sources (`route_localnet` off), then the
    /// FIB: the subnet's broadcast, our address (`fib_validate_source` refuses
    /// our own address as the source), else no route. Multicast destinations
    /// are decided before (`ip_route_input_rcu`): 224.0.0.1 is joined, the rest
    /// are not. A subnet-broadcast source passes, as with `rp_filter` off (a
    /// new namespace's default).
    pub fn input(&self, src: Ipv4Addr, dst: Ipv4Addr) -> InRoute {
        if dst.is_multicast() {
            // ip_route_input_mc's checks on the source.
            if src.is_multicast() || src.is_broadcast() || src.is_loopback() {
                return InRoute::MartianSource;
            }
            return if dst == Ipv4Addr::new(224, 0, 0, 1) { InRoute::Multicast } else { InRoute::McastNotJoined };
        }
        if src.is_multicast() || src.is_broadcast() {
            return InRoute::MartianSource;
        }
        // brd_input: fib_validate_source refuses our own address as the source.
        let broadcast = |src: Ipv4Addr| if src == self.addr { InRoute::MartianSource } else { InRoute::Broadcast };
        if dst.is_broadcast() || (src.is_unspecified() && dst.is_unspecified()) {
            return broadcast(src);
        }
        if src.is_unspecified() || u32::from(src) >> 24 == 0 {
            return InRoute::MartianSource;
        }
        if dst.is_unspecified() || u32::from(dst) >> 24 == 0 || dst.is_loopback() {
            return InRoute::MartianDestination;
        }
        if src.is_loopback() {
            return InRoute::MartianSource;
        }
        if Some(dst) == self.broadcast() {
            return broadcast(src);
        }
        if dst == self.addr {
            return if src == self.addr { InRoute::MartianSource } else { InRoute::Local };
        }
        InRoute::Unreachable
    }

    /// Whether `src` is a martian source (`ip_route_input_slow`): zeronet,
    /// loopback (`route_localnet` off), multicast and limited-broadcast
    /// sources are, and `fib_validate_source` rejects one of our own
    /// addresses. A subnet-broadcast source passes, as with `rp_filter` off
    /// (a new namespace's default).
    pub fn is_martian_source(&self, src: Ipv4Addr) -> bool {
        src.is_broadcast() || src.is_multicast() || src.is_unspecified() || src.is_loopback() || src == self.addr
    }
}

/// The path MTU exceptions of our one route (`struct fib_nh_exception`,
/// net/ipv4/route.c): what ICMP fragmentation needed taught us, per
/// destination (see `crate::ipv4::ip_fragment` and docs/fragments.md).
/// `net.ipv4.route.mtu_expires`: how long a learned path MTU holds.
pub const IP_RT_MTU_EXPIRES: Duration = Duration::from_secs(600);
/// `net.ipv4.route.min_pmtu`: the lowest path MTU learned from ICMP.
pub const IP_RT_MIN_PMTU: usize = 552;
/// Destinations the path MTU cache holds at most.
pub const PMTU_CACHE_SIZE: usize = 256;
/// One destination's learned path MTU (`struct fib_nh_exception`).
#[derive(Clone, Copy, Debug)]
struct PmtuEntry {
    dst: Ipv4Addr,
    mtu: usize,
    /// Learned below `min_pmtu`: the MTU is 552 and DF is not set under
    /// `IP_PMTUDISC_WANT` (`fnhe_mtu_locked`).
    locked: bool,
    expires: Instant,
}

/// The path MTUs learned from ICMP fragmentation needed, shared by the loop
/// (which learns them and sends) and application threads (which lay large
/// datagrams out). Bounded at [`PMTU_CACHE_SIZE`] destinations.
#[derive(Debug, Default)]
pub struct PmtuCache {
    /// Entries held: 0 lets a lookup skip the lock.
    count: AtomicUsize,
    entries: Mutex<Vec<PmtuEntry>>,
}

/// The MTU a datagram to one destination gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathMtu {
    /// Bytes of IP datagram.
    pub mtu: usize,
    /// Below `min_pmtu` once: no DF under `IP_PMTUDISC_WANT`.
    pub locked: bool,
}

impl PmtuCache {
    /// The path MTU to `dst` at `now`: the learned one if it has not expired,
    /// else the device's `dev_mtu` (`ipv4_mtu`).
    #[inline]
    pub fn get(&self, dst: Ipv4Addr, dev_mtu: usize, now: Instant) -> PathMtu {
        let dev = PathMtu { mtu: dev_mtu, locked: false };
        if self.count.load(Ordering::Acquire) == 0 {
            return dev;
        }
        let e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        e.iter()
            .find(|x| x.dst == dst && x.expires > now)
            .map_or(dev, |x| PathMtu { mtu: x.mtu.min(dev_mtu), locked: x.locked })
    }

    /// `__ip_rt_update_pmtu`: an ICMP fragmentation needed says the path to
    /// `dst` takes at most `mtu` bytes. Only lowers; below `min_pmtu` it sets
    /// `min_pmtu` (or the current MTU if lower) and locks; a locked entry
    /// takes no update until it expires.
    pub fn update(&self, dst: Ipv4Addr, mtu: usize, dev_mtu: usize, now: Instant) {
        let old = self.get(dst, dev_mtu, now);
        if old.locked || old.mtu < mtu {
            return;
        }
        let (mtu, locked) = if mtu < IP_RT_MIN_PMTU { (old.mtu.min(IP_RT_MIN_PMTU), true) } else { (mtu, false) };
        let mut e = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let expires = now + IP_RT_MTU_EXPIRES;
        if let Some(x) = e.iter_mut().find(|x| x.dst == dst) {
            // The same MTU again, not locked, refreshed only past half its life.
            if x.expires > now && x.mtu == mtu && !locked && now < x.expires - IP_RT_MTU_EXPIRES / 2 {
                return;
            }
            *x = PmtuEntry { dst, mtu, locked, expires };
            return;
        }
        let entry = PmtuEntry { dst, mtu, locked, expires };
        if e.len() < PMTU_CACHE_SIZE {
            if e.capacity() == 0 {
                e.reserve_exact(PMTU_CACHE_SIZE);
            }
            e.push(entry);
            self.count.store(e.len(), Ordering::Release);
        } else if let Some(oldest) = e.iter_mut().min_by_key(|x| x.expires) {
            // fnhe_oldest: the entry that expires first gives way.
            *oldest = entry;
        }
    }

    /// Destinations held (expired ones included until replaced).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no path MTU was learned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(addr: Ipv4Addr, prefix_len: u8) -> Route {
        Route { addr, prefix_len, gateway: None }
    }

    #[test]
    fn subnet_arithmetic() {
        let c = route(Ipv4Addr::new(10, 1, 2, 3), 24);
        assert!(c.on_link(Ipv4Addr::new(10, 1, 2, 200)));
        assert!(!c.on_link(Ipv4Addr::new(10, 1, 3, 1)));
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(10, 1, 2, 255)));
        let all = route(Ipv4Addr::new(10, 0, 0, 1), 0);
        assert!(all.on_link(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn output_decisions() {
        let mut r = route(Ipv4Addr::new(10, 1, 2, 3), 24);
        let peer = Ipv4Addr::new(10, 1, 2, 9);
        assert_eq!(r.output(peer), OutRoute::Unicast { next_hop: peer });
        assert_eq!(r.output(Ipv4Addr::new(10, 1, 2, 255)), OutRoute::Broadcast);
        assert_eq!(r.output(Ipv4Addr::BROADCAST), OutRoute::Broadcast);
        assert_eq!(r.output(Ipv4Addr::new(8, 8, 8, 8)), OutRoute::NoRoute);
        let gw = Ipv4Addr::new(10, 1, 2, 1);
        r.gateway = Some(gw);
        assert_eq!(r.output(Ipv4Addr::new(8, 8, 8, 8)), OutRoute::Unicast { next_hop: gw });
    }

    /// RFC 3021, as Linux: a /31 has no broadcast address, so the peer at the
    /// other end is unicast; on a /32 our own address is not a broadcast.
    #[test]
    fn point_to_point_prefixes_have_no_broadcast() {
        let r = route(Ipv4Addr::new(10, 88, 0, 0), 31);
        let peer = Ipv4Addr::new(10, 88, 0, 1);
        assert_eq!(r.broadcast(), None);
        assert_eq!(r.output(peer), OutRoute::Unicast { next_hop: peer });
        assert_eq!(r.output(Ipv4Addr::BROADCAST), OutRoute::Broadcast);
        assert_eq!(route(Ipv4Addr::new(10, 88, 0, 7), 32).broadcast(), None);
        assert_eq!(route(Ipv4Addr::new(10, 88, 0, 7), 30).broadcast(), Some(Ipv4Addr::new(10, 88, 0, 7)));
    }

    #[test]
    fn gateways_must_be_on_the_subnet() {
        let r = route(Ipv4Addr::new(10, 88, 0, 2), 24);
        assert!(r.valid_gateway(Ipv4Addr::new(10, 88, 0, 1)));
        for gw in [Ipv4Addr::new(10, 99, 0, 1), r.addr, Ipv4Addr::new(10, 88, 0, 255), Ipv4Addr::UNSPECIFIED] {
            assert!(!r.valid_gateway(gw), "{gw}");
        }
    }

    #[test]
    fn martian_sources() {
        let r = route(Ipv4Addr::new(10, 1, 2, 3), 24);
        for src in
            [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1), Ipv4Addr::UNSPECIFIED, Ipv4Addr::LOCALHOST, r.addr]
        {
            assert!(r.is_martian_source(src), "{src}");
        }
        assert!(!r.is_martian_source(Ipv4Addr::new(10, 1, 2, 255)), "subnet broadcast passes");
        assert!(!r.is_martian_source(Ipv4Addr::new(10, 1, 2, 9)));
    }

    #[test]
    fn pmtu_only_lowers_locks_below_min_and_expires() {
        let c = PmtuCache::default();
        let t0 = Instant::now();
        let d = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(c.get(d, 1500, t0), PathMtu { mtu: 1500, locked: false });
        c.update(d, 1400, 1500, t0);
        assert_eq!(c.get(d, 1500, t0).mtu, 1400);
        c.update(d, 1450, 1500, t0);
        assert_eq!(c.get(d, 1500, t0).mtu, 1400, "never raised by ICMP");
        c.update(d, 300, 1500, t0);
        assert_eq!(c.get(d, 1500, t0), PathMtu { mtu: 552, locked: true });
        c.update(d, 500, 1500, t0);
        assert_eq!(c.get(d, 1500, t0), PathMtu { mtu: 552, locked: true }, "locked");
        assert_eq!(c.get(Ipv4Addr::new(10, 0, 0, 9), 1500, t0).mtu, 1500, "per destination");
        let later = t0 + IP_RT_MTU_EXPIRES + Duration::from_secs(1);
        assert_eq!(c.get(d, 1500, later), PathMtu { mtu: 1500, locked: false }, "expired after 600 s");
    }

    #[test]
    fn pmtu_cache_is_bounded() {
        let c = PmtuCache::default();
        let t0 = Instant::now();
        for i in 0..(PMTU_CACHE_SIZE as u32 + 50) {
            c.update(Ipv4Addr::from(0x0a00_0000 + i), 1000, 1500, t0 + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(c.len(), PMTU_CACHE_SIZE);
        let last = Ipv4Addr::from(0x0a00_0000 + PMTU_CACHE_SIZE as u32 + 49);
        assert_eq!(c.get(last, 1500, t0).mtu, 1000, "the newest is held");
        assert_eq!(c.get(Ipv4Addr::from(0x0a00_0000), 1500, t0).mtu, 1500, "the oldest gave way");
    }
}
