//! The MIB counters, named as `nstat` prints them for the same event in Linux
//! (include/uapi/linux/snmp.h, net/ipv4/proc.c), so that the same traffic sent
//! to Linux and to xsknet gives the same numbers. Events Linux has no counter
//! for (ring, frame and ARP events) have names of our own with an `Xsk` prefix.
//!
//! The softirq loop owns one [`Mib`] and bumps plain integers: no atomics on
//! the per-packet path. Readers get a copy (`Stack::snmp`).
#![allow(non_snake_case)]

macro_rules! mib {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $field: u64,)*
        }

        impl $name {
            /// Every counter with its name, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($field), self.$field),)*].into_iter()
            }

            /// The counter called `name`, if there is one.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $(stringify!($field) => Some(self.$field),)*
                    _ => None,
                }
            }
        }
    };
}

mib! {
    /// Counters of the IP, ICMP and UDP layers, and of our own stages.
    Mib {
        // IP (net/ipv4/ip_input.c, ip_output.c)
        /// Every datagram handed to ip_rcv, before any check.
        IpInReceives,
        /// Bad version, header length, or header checksum (the last also counts IpExtInCsumErrors).
        IpInHdrErrors,
        /// Destination is not an address of ours.
        IpInAddrErrors,
        IpInUnknownProtos,
        /// Handed to a protocol handler (ICMP, UDP), whatever it then did.
        IpInDelivers,
        IpOutRequests,
        IpOutNoRoutes,
        IpOutDiscards,
        /// Fragments received; reassembly is not supported yet, so each is also XskIpFragDrops.
        IpReasmReqds,
        IpOutTransmits,
        IpExtInOctets,
        IpExtOutOctets,
        IpExtInCsumErrors,
        IpExtInTruncatedPkts,
        IpExtInNoECTPkts,
        IpExtInECT1Pkts,
        IpExtInECT0Pkts,
        IpExtInCEPkts,
        // ICMP (net/ipv4/icmp.c)
        IcmpInMsgs,
        IcmpInErrors,
        IcmpInCsumErrors,
        IcmpInDestUnreachs,
        IcmpInEchos,
        IcmpInEchoReps,
        IcmpOutMsgs,
        IcmpOutRateLimitGlobal,
        IcmpOutRateLimitHost,
        IcmpOutDestUnreachs,
        IcmpOutEchoReps,
        IcmpMsgInType0,
        IcmpMsgInType3,
        IcmpMsgInType8,
        IcmpMsgOutType0,
        IcmpMsgOutType3,
        // UDP (net/ipv4/udp.c)
        /// Datagrams read by the application (Linux counts in udp_recvmsg).
        UdpInDatagrams,
        UdpNoPorts,
        UdpInErrors,
        UdpOutDatagrams,
        UdpRcvbufErrors,
        UdpSndbufErrors,
        UdpInCsumErrors,
        // Our own stages.
        /// Frames taken from the rx ring.
        XskRxFrames,
        /// Shorter than an Ethernet header.
        XskRxRunts,
        /// Destination MAC neither ours nor broadcast (Linux: PACKET_OTHERHOST, rx_otherhost_dropped).
        XskRxOtherHost,
        /// An EtherType we do not handle (Linux: rx_nohandler).
        XskRxNoHandler,
        XskArpInRequests,
        XskArpInReplies,
        /// Malformed ARP, or ARP for hardware/protocols other than Ethernet/IPv4.
        XskArpInErrors,
        /// Well-formed ARP not for us.
        XskArpIgnored,
        XskArpOutRequests,
        XskArpOutReplies,
        /// Frames dropped because their neighbour never answered ARP, or its queue was full.
        XskNeighUnresDiscards,
        /// IPv4 fragments dropped (no reassembly yet).
        XskIpFragDrops,
        /// Source address broadcast, multicast or zero: dropped as Linux drops martians.
        XskIpInMartianSrc,
        /// Frames put on the tx ring.
        XskTxFrames,
        /// A reply could not be sent because no free frame was left.
        XskNoFreeFrames,
        /// Packets that waited because the tx ring was full.
        XskTxRingFull,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nstat_names() {
        let m = Mib { UdpNoPorts: 3, ..Mib::default() };
        assert_eq!(m.get("UdpNoPorts"), Some(3));
        assert_eq!(m.get("NoSuchCounter"), None);
        assert!(m.iter().any(|(n, _)| n == "IpExtInCsumErrors"));
        assert!(m.iter().all(|(n, _)| ["Ip", "Icmp", "Udp", "Xsk"].iter().any(|p| n.starts_with(p))));
    }
}
