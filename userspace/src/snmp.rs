//! The MIB counters, named as `nstat` prints them for the same event in Linux
//! (include/uapi/linux/snmp.h, net/ipv4/proc.c), so that the same traffic sent
//! to Linux and to xsknet gives the same numbers. Events Linux has no counter
//! for (ring, frame and ARP events) have names of our own with an `Xsk` prefix.
//!
//! The softirq loop owns one [`Mib`] and bumps plain integers: no atomics on
//! the per-packet path. Readers get a copy (`Stack::snmp`).
#![allow(non_snake_case)]

macro_rules! mib {
    (@why) => { None };
    (@why $why:literal) => { Some($why) };
    ($(#[$m:meta])* $name:ident / $(#[$cm:meta])* $counter:ident {
        $($(#[$fm:meta])* $field:ident $(=> $why:literal)?,)*
    }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $name {
            $($(#[$fm])* #[doc = concat!("`", stringify!($field), "`, as `nstat` names it.")] pub $field: u64,)*
        }

        $(#[$cm])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $counter {
            $($(#[$fm])* #[doc = concat!("`", stringify!($field), "`.")] $field,)*
        }

        impl $counter {
            /// Every counter, in declaration order.
            pub const ALL: &'static [$counter] = &[$($counter::$field,)*];

            /// The counter's name, as `nstat` prints it.
            pub fn name(self) -> &'static str {
                match self {
                    $($counter::$field => stringify!($field),)*
                }
            }

            /// For a counter that counts dropped packets, what the drop means
            /// (one line, for the exit report); `None` for the others.
            pub fn drop_reason(self) -> Option<&'static str> {
                match self {
                    $($counter::$field => mib!(@why $($why)?),)*
                }
            }
        }

        impl $name {
            /// Every counter with its name, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$((stringify!($field), self.$field),)*].into_iter()
            }

            /// The counter called `name`, if there is one (for names read at run
            /// time; code names a counter by its enum variant instead, e.g. `MibCounter::UdpNoPorts`).
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $(stringify!($field) => Some(self.$field),)*
                    _ => None,
                }
            }

            /// The value of `counter`.
            pub fn value(&self, counter: $counter) -> u64 {
                match counter {
                    $($counter::$field => self.$field,)*
                }
            }

            /// Sets `counter` to `v` (for a copy rebuilt from published values).
            pub fn set(&mut self, counter: $counter, v: u64) {
                match counter {
                    $($counter::$field => self.$field = v,)*
                }
            }
        }
    };
}

mib! {
    /// Counters of the IP, ICMP and UDP layers, and of our own stages.
    Mib /
    /// One counter of [`Mib`] by name, checked when compiled: the exit report
    /// and other readers name counters this way, so a misspelt name does not build.
    MibCounter {
        // IP (net/ipv4/ip_input.c, ip_output.c)
        /// Every datagram handed to ip_rcv, before any check.
        IpInReceives,
        /// Bad version, header length, or header checksum (the last also counts IpExtInCsumErrors).
        IpInHdrErrors => "bad IPv4 header (version, length, checksum, options)",
        /// Destination is not an address of ours.
        IpInAddrErrors => "IPv4 destination not ours",
        IpInUnknownProtos => "IP protocol not handled (protocol unreachable, unless broadcast or rate-limited)",
        /// Handed to a protocol handler (ICMP, UDP), whatever it then did.
        IpInDelivers,
        IpOutRequests,
        IpOutNoRoutes => "no route to the destination",
        IpOutDiscards,
        /// Fragments received (`ip_defrag`), whatever became of them.
        IpReasmReqds,
        /// Datagrams reassembled.
        IpReasmOKs,
        /// Reassemblies that failed (a queue dropped: overlap, bad fragment, timeout, too
        /// large), or fragments refused for want of reassembly memory.
        IpReasmFails => "IPv4 reassembly failed (bad or overlapping fragment, memory bound)",
        /// Reassembly queues whose `ipfrag_time` ran out (each also an IpReasmFails).
        IpReasmTimeout => "IPv4 reassembly timed out",
        /// Datagrams fragmented on the way out.
        IpFragOKs,
        /// Datagrams that needed fragmenting and could not be (DF set, or the
        /// path MTU fell below their layout).
        IpFragFails => "datagram larger than the path MTU and not fragmentable",
        /// Fragments made.
        IpFragCreates,
        IpOutTransmits,
        IpExtInOctets,
        IpExtOutOctets,
        IpExtInCsumErrors => "bad IPv4 header checksum",
        IpExtInTruncatedPkts => "IPv4 total length beyond the frame",
        IpExtInNoECTPkts,
        IpExtInECT1Pkts,
        IpExtInECT0Pkts,
        IpExtInCEPkts,
        /// Reassembly queues dropped for an overlapping fragment (RFC 5722's rule, which
        /// Linux applies to IPv4 too); each also an IpReasmFails.
        IpExtReasmOverlaps => "overlapping IPv4 fragment",
        /// Datagrams to a broadcast address (limited or the subnet's), and their bytes.
        IpExtInBcastPkts,
        IpExtInBcastOctets,
        /// Datagrams to a joined multicast group, and their bytes.
        IpExtInMcastPkts,
        IpExtInMcastOctets,
        // ICMP (net/ipv4/icmp.c)
        IcmpInMsgs,
        IcmpInErrors => "bad ICMP message",
        IcmpInCsumErrors => "bad ICMP checksum",
        IcmpInDestUnreachs,
        IcmpInTimeExcds,
        IcmpInParmProbs,
        IcmpInSrcQuenchs,
        IcmpInRedirects,
        IcmpInEchos,
        IcmpInEchoReps,
        IcmpInTimestamps,
        IcmpInTimestampReps,
        IcmpInAddrMasks,
        IcmpInAddrMaskReps,
        IcmpOutMsgs,
        IcmpOutRateLimitGlobal => "ICMP error not sent: global rate limit",
        IcmpOutRateLimitHost => "ICMP error not sent: per-host rate limit",
        IcmpOutDestUnreachs,
        IcmpOutTimeExcds,
        /// Parameter problems sent (bad IP options).
        IcmpOutParmProbs,
        IcmpOutEchoReps,
        IcmpOutTimestampReps,
        /// Messages received by type, as `ICMPMSGIN_INC_STATS` counts them
        /// (the types of `NR_ICMP_TYPES` that have a name; Linux counts all 256).
        IcmpMsgInType0,
        IcmpMsgInType3,
        IcmpMsgInType4,
        IcmpMsgInType5,
        IcmpMsgInType8,
        IcmpMsgInType11,
        IcmpMsgInType12,
        IcmpMsgInType13,
        IcmpMsgInType14,
        IcmpMsgInType17,
        IcmpMsgInType18,
        IcmpMsgInType42,
        IcmpMsgOutType0,
        IcmpMsgOutType3,
        IcmpMsgOutType11,
        IcmpMsgOutType12,
        IcmpMsgOutType14,
        // UDP (net/ipv4/udp.c)
        /// Datagrams read by the application (Linux counts in udp_recvmsg).
        UdpInDatagrams,
        UdpNoPorts => "no socket on the port (port unreachable, unless broadcast or rate-limited)",
        UdpInErrors => "bad UDP datagram or receive buffer full",
        UdpOutDatagrams,
        UdpRcvbufErrors => "socket receive buffer full",
        UdpSndbufErrors,
        UdpInCsumErrors => "bad UDP checksum",
        /// A broadcast or multicast datagram no socket wanted (no port unreachable).
        UdpIgnoredMulti => "broadcast or multicast UDP no socket wanted",
        // TCP (net/ipv4/tcp*.c; meanings in Documentation/networking/snmp_counter.rst)
        /// A SYN sent from CLOSED (`connect()`).
        TcpActiveOpens,
        /// A child socket made from a completed handshake (`tcp_create_openreq_child`), not per SYN.
        TcpPassiveOpens,
        /// SYN-SENT or SYN-RECV went to CLOSED (refused, timed out, reset).
        TcpAttemptFails,
        /// ESTABLISHED or CLOSE-WAIT went straight to CLOSED (a reset, in or out, or an abort).
        TcpEstabResets,
        /// A gauge: sockets in ESTABLISHED or CLOSE-WAIT now.
        TcpCurrEstab,
        /// Every segment received, bad ones included.
        TcpInSegs,
        /// Segments sent, pure ACKs and RSTs included, retransmissions not.
        TcpOutSegs,
        /// Segments retransmitted (data, SYN, SYN-ACK, FIN).
        TcpRetransSegs,
        /// Segments dropped as bad: header too short, bad checksum, SYN on a synchronized connection.
        TcpInErrs => "bad TCP segment (header, checksum, SYN in a connection)",
        TcpOutRsts,
        TcpInCsumErrors => "bad TCP checksum",
        /// A SYN or final ACK found the listener's accept queue full.
        TcpExtListenOverflows => "listener's accept queue full",
        /// Every SYN or final ACK a listener dropped (overflows included).
        TcpExtListenDrops,
        /// A SYN dropped because the listener's SYN queue was full (no SYN cookies).
        TcpExtTCPReqQFullDrop => "listener's SYN queue full",
        /// A SYN answered with a SYN cookie because the listener's SYN queue was full.
        TcpExtTCPReqQFullDoCookies,
        /// SYN-ACKs sent with a SYN cookie.
        TcpExtSyncookiesSent,
        /// ACKs whose SYN cookie was good (a connection made from it).
        TcpExtSyncookiesRecv,
        /// ACKs to a listener that sent cookies lately whose cookie was not good (answered with a reset).
        TcpExtSyncookiesFailed,
        /// A request sock reset by the peer (RST or SYN in SYN-RECV).
        TcpExtEmbryonicRsts,
        TcpExtTCPChallengeACK,
        TcpExtTCPSYNChallenge,
        /// A challenge ACK not sent: one per 500 ms per socket (`tcp_invalid_ratelimit`).
        TcpExtTCPACKSkippedChallenge,
        /// A duplicate ACK for an out-of-window segment not sent (the same limit).
        TcpExtTCPACKSkippedSeq,
        /// A request sock's SYN-ACK or ACK for a repeated or out-of-window segment not sent
        /// (the same limit, per request sock).
        TcpExtTCPACKSkippedSynRecv,
        /// A SYN-ACK whose TSecr is not the time of our SYN (RFC 7323 §3.2): reset.
        TcpExtPAWSActive => "SYN-ACK echoing a timestamp we never sent",
        /// A segment older than the last timestamp (PAWS, RFC 7323 §5), or a
        /// request sock's final ACK so: dropped, answered with a duplicate ACK.
        TcpExtPAWSEstab => "segment older than the last timestamp (PAWS)",
        /// A final ACK echoing no TSval of our SYN-ACKs: dropped, answered with an ACK.
        TcpExtTSEcrRejected => "final ACK echoing a timestamp we never sent",
        /// A pure ACK below RCV.NXT with an old timestamp: dropped silently.
        TcpExtPAWSOldAck => "old ACK with an old timestamp (PAWS)",
        /// A segment for a TIME-WAIT sock older than its last timestamp.
        TcpExtPAWSTimewait => "TIME-WAIT segment older than the last timestamp (PAWS)",
        /// A duplicate ACK for a segment PAWS dropped not sent (`tcp_invalid_ratelimit`).
        TcpExtTCPACKSkippedPAWS,
        /// Delayed-ACK timers that sent an ACK.
        TcpExtDelayedACKs,
        /// A segment entirely old (already received): our ACK was lost or late.
        TcpExtDelayedACKLost,
        TcpExtTCPPureAcks,
        /// Out-of-order segments queued.
        TcpExtTCPOFOQueue,
        /// Out-of-order segments dropped (no room).
        TcpExtTCPOFODrop => "out-of-order segment dropped (no room)",
        TcpExtTCPOFOMerge,
        /// In-order data dropped: the receive window was zero.
        TcpExtTCPZeroWindowDrop => "data beyond a zero receive window",
        /// In-order data dropped for want of receive buffer, or of TCP memory (`tcp_mem`).
        TcpExtTCPRcvQDrop => "receive buffer full",
        /// `tcp_prune_queue` runs: a sock could not get memory for a segment.
        TcpExtPruneCalled,
        /// Pruning freed too little: a segment dropped (`tcp_prune_queue` gave up).
        TcpExtRcvPruned,
        /// Out-of-order queues pruned to free memory (`tcp_prune_ofo_queue`).
        TcpExtOfoPruned,
        /// Times TCP memory went above `tcp_mem[1]` (pressure started).
        TcpExtTCPMemoryPressures,
        /// Milliseconds spent under TCP memory pressure, added when it ends.
        TcpExtTCPMemoryPressuresChrono,
        /// Orphaned connections reset because TCP memory was above `tcp_mem[2]`.
        TcpExtTCPAbortOnMemory,
        /// ICMP errors about a connection quoting a sequence number outside
        /// `snd_una`..`snd_nxt` (`tcp_v4_err`): ignored.
        TcpExtOutOfWindowIcmps,
        /// Retransmission timeouts.
        TcpExtTCPTimeouts,
        /// SYN and SYN-ACK retransmissions.
        TcpExtTCPSynRetrans,
        /// Retransmissions in fast recovery.
        TcpExtTCPFastRetrans,
        /// Retransmissions after a timeout.
        TcpExtTCPSlowStartRetrans,
        /// Fast recoveries entered (no SACK: NewReno).
        TcpExtTCPRenoRecovery,
        /// Fast recoveries entered on SACK evidence (`tcp_enter_recovery`).
        TcpExtTCPSackRecovery,
        /// Reordering seen in SACKs or cumulative ACKs (`tcp_check_sack_reordering`).
        TcpExtTCPSACKReorder,
        /// Reordering seen from timestamps: a partial ACK in recovery echoed
        /// a TSval older than the first retransmission (`tcp_try_undo_partial`).
        TcpExtTCPTSReorder,
        /// Recoveries undone at a partial ACK by timestamps (`tcp_try_undo_partial`).
        TcpExtTCPPartialUndo,
        /// A timeout found the peer had dropped data it SACKed.
        TcpExtTCPSACKReneging,
        /// SACK blocks outside what was sent (`tcp_is_sackblock_valid`).
        TcpExtTCPSACKDiscard,
        /// D-SACKs received for data below the ACK.
        TcpExtTCPDSACKRecv,
        /// D-SACKs received for out-of-order data (inside the second block).
        TcpExtTCPDSACKOfoRecv,
        /// Segments the D-SACKs received reported.
        TcpExtTCPDSACKRecvSegs,
        /// D-SACKs ignored: older than the current undo episode.
        TcpExtTCPDSACKIgnoredOld,
        /// D-SACKs ignored: no undo episode under way.
        TcpExtTCPDSACKIgnoredNoUndo,
        /// D-SACKs ignored: longer than the window, or more than we retransmitted.
        TcpExtTCPDSACKIgnoredDubious,
        /// D-SACKs sent for data below `rcv_nxt`.
        TcpExtTCPDSACKOldSent,
        /// D-SACKs sent for out-of-order data.
        TcpExtTCPDSACKOfoSent,
        /// Reductions undone because the peer D-SACKed every retransmission.
        TcpExtTCPDSACKUndo,
        /// Recoveries undone when they ended.
        TcpExtTCPFullUndo,
        /// Timeouts undone: the peer D-SACKed every retransmission.
        TcpExtTCPLossUndo,
        /// Tail loss probes sent (RFC 8985 §7, `tcp_send_loss_probe`).
        TcpExtTCPLossProbes,
        /// Losses a tail loss probe repaired without a timeout (`tcp_process_tlp_ack`).
        TcpExtTCPLossProbeRecovery,
        /// Retransmissions found lost again (RACK, `tcp_rack_detect_loss`).
        TcpExtTCPLostRetransmit,
        /// Timeouts F-RTO found spurious (RFC 5682, `tcp_process_loss`).
        TcpExtTCPSpuriousRTOs,
        TcpExtTCPAbortOnData,
        TcpExtTCPAbortOnClose,
        TcpExtTCPAbortOnTimeout,
        TcpExtTCPAbortOnLinger,
        /// TIME-WAIT (and orphaned FIN-WAIT-2) sockets whose timer ran out.
        TcpExtTW,
        /// A connection closed without a TIME-WAIT sock: `tcp_max_tw_buckets` were in use.
        TcpExtTCPTimeWaitOverflow,
        TcpExtTCPToZeroWindowAdv,
        TcpExtTCPFromZeroWindowAdv,
        TcpExtTCPWantZeroWindowAdv,
        /// Segments sent for the first time that carry new data or our FIN.
        TcpExtTCPOrigDataSent,
        /// Zero-window probes sent.
        TcpExtTCPWinProbe,
        /// Keepalive probes sent (`tcp_keepalive_timer`).
        TcpExtTCPKeepAlive,
        /// Slow starts HyStart ended on a long ACK train, and the windows (segments) summed.
        TcpExtTCPHystartTrainDetect,
        TcpExtTCPHystartTrainCwnd,
        /// Slow starts HyStart ended on a rise of the RTT, and the windows (segments) summed.
        TcpExtTCPHystartDelayDetect,
        TcpExtTCPHystartDelayCwnd,
        // Our own stages.
        /// A gauge: pages of 4096 bytes all TCP socks hold now (`tcp_memory_allocated`,
        /// `/proc/net/sockstat`'s `TCP: mem`).
        XskSockstatTcpMem,
        /// Frames taken from the rx ring.
        XskRxFrames,
        /// Shorter than an Ethernet header.
        XskRxRunts => "frame shorter than an Ethernet header",
        /// Destination MAC neither ours nor broadcast (Linux: PACKET_OTHERHOST, rx_otherhost_dropped).
        XskRxOtherHost => "destination MAC not ours",
        /// An EtherType we do not handle (Linux: rx_nohandler).
        XskRxNoHandler => "EtherType not handled",
        XskArpInRequests,
        XskArpInReplies,
        /// Malformed ARP, or ARP for hardware/protocols other than Ethernet/IPv4.
        XskArpInErrors => "malformed or unsupported ARP",
        /// Well-formed ARP not for us.
        XskArpIgnored,
        XskArpOutRequests,
        XskArpOutReplies,
        /// Frames dropped because their neighbour never answered ARP (`neigh_invalidate`).
        XskNeighUnresDiscards => "next hop never answered ARP",
        /// A fragment that repeats bytes its queue already has, inside one run
        /// (Linux frees it with `SKB_DROP_REASON_DUP_FRAG` and no MIB counter).
        XskIpFragDups => "duplicate IPv4 fragment",
        /// A reassembled datagram for a protocol that cannot take a buffer of
        /// several frames (ICMP other than echo requests, protocols not ours).
        XskIpReasmUnsupported => "reassembled datagram neither UDP, TCP nor ICMP echo",
        /// A datagram in a multi-buffer frame (AF_XDP `XDP_USE_SG`) that is
        /// neither UDP, TCP nor an IP fragment: ICMP takes one frame only yet (docs/jumbo.md).
        XskIpInMultiBufUnsupported => "multi-buffer frame neither UDP, TCP nor an IP fragment (not taken yet)",

        // The neighbour table's counters (`struct neigh_statistics`, the
        // columns of /proc/net/stat/arp_cache that `ip -s ntable` shows).
        /// `entries`: a gauge, the entries in the table now.
        XskArpCacheEntries,
        /// `allocs`: entries created.
        XskArpCacheAllocs,
        /// `destroys`: entries removed (by a collection).
        XskArpCacheDestroys,
        /// `lookups`: table lookups by received ARP (`neigh_lookup`).
        XskArpCacheLookups,
        /// `hits`: lookups that found an entry.
        XskArpCacheHits,
        /// `res_failed`: resolutions that failed (entry went FAILED).
        XskArpCacheResFailed,
        /// `periodic_gc_runs`: runs of the periodic collection (every 15 s).
        XskArpCachePeriodicGcRuns,
        /// `forced_gc_runs`: forced collections (table above gc_thresh2).
        XskArpCacheForcedGcRuns,
        /// `unresolved_discards`: packets pushed out of a full queue awaiting ARP.
        XskArpCacheUnresolvedDiscards => "queue awaiting ARP full (oldest packet dropped)",
        /// `table_fulls`: entries refused at gc_thresh3 (the packet, or the ARP reply, is dropped).
        XskArpCacheTableFulls => "neighbour table full (gc_thresh3)",
        /// Source address broadcast, multicast or zero: dropped as Linux drops martians.
        XskIpInMartianSrc => "IPv4 source broadcast, multicast or zero",
        /// Destination zeronet or loopback: dropped as Linux drops martian destinations.
        XskIpInMartianDst => "IPv4 destination zeronet or loopback",
        /// Destination a multicast group not joined (`ip_check_mc_rcu`).
        XskIpInMcastNotJoined => "IPv4 multicast group not joined",
        /// A valid source route option, dropped as Linux does with `accept_source_route` off.
        XskIpInSrcRoute => "IPv4 source route option (accept_source_route off)",
        /// A TCP segment in a frame not to our MAC (`tcp_v4_rcv`: `pkt_type != PACKET_HOST`).
        XskTcpInNotHost => "TCP segment in a link-layer broadcast or multicast frame",
        /// A TCP segment to a broadcast or multicast address.
        XskTcpInBcast => "TCP segment to a broadcast or multicast address",
        /// Receive rings grown by autotuning (`tcp_rcvbuf_grow`; Linux has a
        /// tracepoint there, `tcp:tcp_rcvbuf_grow`, no counter).
        XskTcpRcvbufGrown,
        /// Growths refused because the rings of all connections had grown
        /// by `tcp_mem`'s pressure threshold (xsknet's bound: a ring is
        /// memory, Linux's `sk_rcvbuf` a limit), or because the allocator
        /// refused the new ring.
        XskTcpRcvbufGrowRefused,
        /// Send rings grown by autotuning (`tcp_sndbuf_expand`; Linux
        /// counts none).
        XskTcpSndbufGrown,
        /// Send-ring growths refused: the rings of all connections had grown
        /// by `tcp_mem`'s pressure threshold, or the allocator refused.
        XskTcpSndbufGrowRefused,
        /// TCP segments that joined an earlier segment's GRO aggregate, so
        /// that one ACK decision covered both (`ipv4::tcp::offload`; Linux
        /// counts no such thing, its aggregate is one `sk_buff`).
        XskTcpGroMerged,
        /// Frames put on the tx ring.
        XskTxFrames,
        /// A reply could not be sent because no free frame was left.
        XskNoFreeFrames => "no free UMEM frame for a reply",
        /// Packets that waited because the tx ring was full.
        XskTxRingFull => "tx ring full (packet waited or was dropped)",
        /// Frames the packet capture did not take because its queue to the
        /// writer was full (`--pcap`): the traffic itself was not dropped.
        XskCaptureDrops,
        /// Kicks of the tx ring (`sendto()` when the ring asks for one with
        /// `need_wakeup`): in copy mode each is a system call that runs the
        /// driver's transmit in it.
        XskTxKicks,
        /// System calls made for the receive side: wake-ups of the fill ring
        /// (`poll()`/`recvfrom()` when it asks with `need_wakeup`), and busy
        /// polls (`--prefer-busy-poll`: one `recvfrom()` per receive).
        XskRxWakeups,
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
        assert!(m.iter().all(|(n, _)| ["Ip", "Icmp", "Udp", "Tcp", "Xsk"].iter().any(|p| n.starts_with(p))));
    }

    #[test]
    fn counters_by_variant_match_counters_by_name() {
        let m = Mib { UdpNoPorts: 3, XskTxFrames: 9, IpInReceives: 1, ..Mib::default() };
        for c in MibCounter::ALL {
            assert_eq!(m.get(c.name()), Some(m.value(*c)), "{}", c.name());
        }
        assert_eq!(m.value(MibCounter::UdpNoPorts), 3);
        assert_eq!(m.value(MibCounter::XskTxFrames), 9);
        let names: Vec<&str> = MibCounter::ALL.iter().map(|c| c.name()).collect();
        let iter_names: Vec<&str> = m.iter().map(|(n, _)| n).collect();
        assert_eq!(names, iter_names);
        assert_eq!(
            MibCounter::UdpNoPorts.drop_reason(),
            Some("no socket on the port (port unreachable, unless broadcast or rate-limited)")
        );
        assert_eq!(MibCounter::UdpInDatagrams.drop_reason(), None);
        assert_eq!(MibCounter::ALL.iter().filter(|c| c.drop_reason().is_some()).count(), 49);
    }
}
