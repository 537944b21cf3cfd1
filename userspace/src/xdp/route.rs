//! Does an interface carry the default route? The question the loader asks
//! before it attaches (an XDP program that takes the default route's interface
//! can cut the machine off).
//!
//! Answered from an rtnetlink `RTM_GETROUTE` dump ([`super::netlink::dump_routes`]),
//! IPv4 and IPv6, in the calling thread's namespace: a default route is a
//! unicast route with `rtm_dst_len` 0 in the main table (`RT_TABLE_MAIN`,
//! include/uapi/linux/rtnetlink.h), as `ip route show default` lists it; its
//! interface is `RTA_OIF` or, for a multipath route, any next hop's.
//! Unreachable, prohibit and blackhole routes (the local table's `::/0` on `lo`)
//! are not default routes: traffic does not leave through them.

use std::io;

use netlink_packet_route::{
    route::{RouteAttribute, RouteHeader, RouteMessage, RouteType},
    AddressFamily,
};

/// Whether `route` is a default route of the main table that leaves through `ifindex`.
pub fn is_default_route_on(route: &RouteMessage, ifindex: u32) -> bool {
    let h = &route.header;
    let table = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(h.table));
    if h.destination_prefix_length != 0
        || table != u32::from(RouteHeader::RT_TABLE_MAIN)
        || h.kind != RouteType::Unicast
    {
        return false;
    }
    route.attributes.iter().any(|a| match a {
        RouteAttribute::Oif(oif) => *oif == ifindex,
        RouteAttribute::MultiPath(hops) => hops.iter().any(|hop| hop.interface_index == ifindex),
        _ => false,
    })
}

/// Whether interface `ifindex` carries an IPv4 or IPv6 default route, in the
/// calling thread's namespace.
///
/// # Errors
/// The netlink socket's errors (a family the kernel lacks reads as no routes).
pub fn holds_default_route_index(ifindex: u32) -> io::Result<bool> {
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        if super::netlink::dump_routes(family)?.iter().any(|r| is_default_route_on(r, ifindex)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether interface `ifname` carries an IPv4 or IPv6 default route, in the
/// calling thread's namespace.
///
/// # Errors
/// `NotFound` for an interface that does not exist; the netlink socket's errors.
pub fn holds_default_route(ifname: &str) -> io::Result<bool> {
    let ifindex = match super::netlink::get_link(ifname) {
        Ok(link) => link.index,
        Err(e @ super::XdpError::NoSuchInterface { .. }) => return Err(io::Error::new(io::ErrorKind::NotFound, e)),
        Err(e) => return Err(io::Error::other(e)),
    };
    holds_default_route_index(ifindex)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use netlink_packet_route::route::{RouteAddress, RouteNextHop};

    use super::*;

    fn route(
        family: AddressFamily,
        dst_len: u8,
        table: u8,
        kind: RouteType,
        attrs: Vec<RouteAttribute>,
    ) -> RouteMessage {
        let mut r = RouteMessage::default();
        r.header.address_family = family;
        r.header.destination_prefix_length = dst_len;
        r.header.table = table;
        r.header.kind = kind;
        r.attributes = attrs;
        r
    }

    const ETH0: u32 = 2;
    const VETH1: u32 = 5;
    const LO: u32 = 1;
    const MAIN: u8 = RouteHeader::RT_TABLE_MAIN;

    /// `ip route`: `default via 192.168.2.1 dev eth0`, `192.168.2.0/24 dev eth0`,
    /// `10.0.0.0/24 dev veth1`.
    #[test]
    fn ipv4_default_route() {
        let routes = [
            route(
                AddressFamily::Inet,
                0,
                MAIN,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Table(254),
                    RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(192, 168, 2, 1))),
                    RouteAttribute::Oif(ETH0),
                ],
            ),
            route(
                AddressFamily::Inet,
                24,
                MAIN,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(192, 168, 2, 0))),
                    RouteAttribute::Oif(ETH0),
                ],
            ),
            route(
                AddressFamily::Inet,
                24,
                MAIN,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 0))),
                    RouteAttribute::Oif(VETH1),
                ],
            ),
        ];
        let on = |ifindex| routes.iter().any(|r| is_default_route_on(r, ifindex));
        assert!(on(ETH0));
        assert!(!on(VETH1));
        assert!(!on(99));
        assert!(![].iter().any(|r| is_default_route_on(r, ETH0)));
        // A default route in another table (policy routing) is not the main one's.
        let other = route(AddressFamily::Inet, 0, 100, RouteType::Unicast, vec![RouteAttribute::Oif(VETH1)]);
        assert!(!is_default_route_on(&other, VETH1));
        // The table attribute wins over the header's 8-bit field.
        let big = route(
            AddressFamily::Inet,
            0,
            252,
            RouteType::Unicast,
            vec![RouteAttribute::Table(1000), RouteAttribute::Oif(VETH1)],
        );
        assert!(!is_default_route_on(&big, VETH1));
    }

    #[test]
    fn ipv6_default_route() {
        let routes = [
            route(
                AddressFamily::Inet6,
                64,
                MAIN,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(RouteAddress::Inet6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0))),
                    RouteAttribute::Oif(ETH0),
                ],
            ),
            route(
                AddressFamily::Inet6,
                0,
                MAIN,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Gateway(RouteAddress::Inet6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))),
                    RouteAttribute::Oif(ETH0),
                ],
            ),
            // The local table's `unreachable ::/0 dev lo` is a reject route.
            route(AddressFamily::Inet6, 0, 255, RouteType::Unreachable, vec![RouteAttribute::Oif(LO)]),
            route(
                AddressFamily::Inet6,
                64,
                MAIN,
                RouteType::Unicast,
                vec![
                    RouteAttribute::Destination(RouteAddress::Inet6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0))),
                    RouteAttribute::Oif(VETH1),
                ],
            ),
        ];
        let on = |ifindex| routes.iter().any(|r| is_default_route_on(r, ifindex));
        assert!(on(ETH0));
        assert!(!on(VETH1));
        assert!(!on(LO));
        // Unreachable in the main table is no way out either.
        let unreachable = route(AddressFamily::Inet6, 0, MAIN, RouteType::Unreachable, vec![RouteAttribute::Oif(LO)]);
        assert!(!is_default_route_on(&unreachable, LO));
    }

    #[test]
    fn multipath_default_route() {
        let mut hop = RouteNextHop::default();
        hop.interface_index = VETH1;
        let r = route(AddressFamily::Inet, 0, MAIN, RouteType::Unicast, vec![RouteAttribute::MultiPath(vec![hop])]);
        assert!(is_default_route_on(&r, VETH1));
        assert!(!is_default_route_on(&r, ETH0));
    }
}
