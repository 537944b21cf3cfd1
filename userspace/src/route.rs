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
}
