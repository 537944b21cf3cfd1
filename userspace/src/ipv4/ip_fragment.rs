//! IPv4 fragments: reassembly on the way in (net/ipv4/ip_fragment.c
//! `ip_defrag`, net/ipv4/inet_fragment.c), the layout of fragments on the way
//! out (net/ipv4/ip_output.c `ip_do_fragment`), and the path MTU cache that
//! ICMP fragmentation-needed lowers (net/ipv4/route.c `__ip_rt_update_pmtu`,
//! the `fib_nh_exception` table).
//!
//! **Reassembly.** A fragment for us (after the input route, as in
//! `ip_local_deliver`) joins the queue of its `(source, destination, id,
//! protocol)`, made on its first fragment with a timer of `ipfrag_time`
//! (30 s). Each queue keeps its fragments in offset order, grouped in *runs*
//! as `inet_frag_queue_insert` groups them (a fragment that starts where the
//! highest one ends joins that one's run; any other starts a run of its own).
//! A fragment wholly inside one run is a duplicate: dropped, the queue kept. A
//! fragment that overlaps otherwise drops the whole queue (`IpExtReasmOverlaps`
//! and `IpReasmFails`): Linux applies RFC 5722's rule to IPv4 too. A last
//! fragment that ends before bytes already held, a second last fragment with
//! another end, bytes past a known end, or a fragment of no bytes drop the
//! queue (`IpReasmFails`, "fail fast" as Linux has since 5.x). When the first
//! and last fragments are in and the bytes add up, the datagram is rebuilt as
//! one chained [`SkBuff`](crate::skbuff::SkBuff) over the fragments' own
//! frames, without a copy (`IpReasmOKs`); one longer than 65535 bytes, or whose
//! fragments mix Not-ECT with ECT, fails (`IpReasmFails`).
//!
//! **Bounds.** Every held fragment is charged its truesize (the UMEM frame
//! size, as sockets charge it). A fragment that arrives while the charge is
//! over `ipfrag_high_thresh` (4 MiB) is refused (`IpReasmFails`), as
//! `inet_frag_find` refuses it; Linux has not used `ipfrag_low_thresh` (3 MiB)
//! since 4.17 (no evictor: queues leave by completing or timing out), nor do
//! we. Our own bound on top: the queues never hold more than half the UMEM's
//! frames, so a fragment flood cannot starve the fill ring. `ipfrag_max_dist`
//! (64): a queue that has seen more than 64 fragments from its source go by
//! (to any queue) since its own last one is started afresh
//! (`ip_frag_too_far`, `ip_frag_reinit`; `IpReasmFails`). The per-source
//! counters live in a small direct-mapped table, as `inet_peer` entries that
//! may be reclaimed.
//!
//! **Timeout** (`ip_expire`): a queue still incomplete after `ipfrag_time` is
//! dropped (`IpReasmFails`, `IpReasmTimeout`) and, only if its first fragment
//! came in, answered with ICMP time exceeded, code 1 (fragment reassembly
//! time exceeded), quoting that fragment, under the ICMP rate limits.
//!
//! The queues' bookkeeping is [`super::inet_fragment`]'s (inet_fragment.c).
//!
//! **The path MTU** ([`PmtuCache`], in [`crate::route`]): ICMP fragmentation needed for a datagram
//! of one of our sockets lowers the MTU towards its destination for
//! `ip_rt_mtu_expires` (600 s); never below `min_pmtu` (552): a smaller value
//! sets 552 and *locks* the entry, which clears DF under `IP_PMTUDISC_WANT`.
//! The cache is bounded (256 destinations, the one expiring first gives way)
//! and shared with application threads, which need the MTU to lay a large
//! datagram out in fragments when they send it. It costs one atomic load per
//! send while empty, a lock only while it holds entries.

use std::time::Instant;

use super::inet_fragment::{FragKey, Insert, Ipq, Node, FIRST_IN, LAST_IN, NIL};
pub use super::inet_fragment::{
    IpFragTable, IPFRAG_HIGH_THRESH, IPFRAG_LOW_THRESH, IPFRAG_MAX_DIST, IPFRAG_TIME, IP_MAX_MTU,
};
use super::{ReasmIp, Reassembled, RxIp};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
pub use crate::route::{PathMtu, PmtuCache, IP_RT_MIN_PMTU, IP_RT_MTU_EXPIRES, PMTU_CACHE_SIZE};
use crate::skbuff::{SkBuff, SkbChain};
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::ipv4::{ecn, Ipv4Repr, MIN_HEADER_LEN};

/// The bytes of IP payload each fragment but the last carries for an MTU of
/// `mtu` (`ip_do_fragment`: the MTU less the 20-byte header, a multiple of 8).
#[inline]
pub fn frag_payload(mtu: usize) -> usize {
    (mtu - MIN_HEADER_LEN) & !7
}

/// What became of a fragment handed to [`ip_defrag`].
#[derive(Debug)]
pub enum Defrag {
    /// Held, or dropped and counted: nothing to deliver.
    Stolen,
    /// It completed its datagram.
    Done(Reassembled),
}

/// The frame of a fragment dropped for `reason` (a label for the drop
/// capture; the counters are bumped where Linux bumps them).
fn drop_frag(q: &mut NetdevQueue, frame: Frame, reason: MibCounter) {
    q.kfree_skb_reason(frame, reason);
}

/// Kills queue `qi`, freeing its fragments as dropped for `reason`.
fn discard_queue(net: &mut Net, q: &mut NetdevQueue, qi: u32, reason: MibCounter) -> Ipq {
    net.ipfrags.kill(qi, |f, _| drop_frag(q, f, reason))
}

/// `ip_defrag`: the fragment `ip` (its header, where its IP header and
/// payload lie) in `frame`, for us.
pub fn ip_defrag(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, frame: Frame, ip: &RxIp, now: Instant) -> Defrag {
    let len = ip.hdr.payload_len;
    ip_defrag_pieces(net, q, umem, ip, 1, &mut std::iter::once((frame, ip.l4, len)), now)
}

/// `ip_defrag` for a fragment in a multi-buffer frame (docs/jumbo.md):
/// `skb` holds its IP payload (headers pulled, padding trimmed), its head
/// piece in the frame of the IP header `ip` describes. Each frame of the
/// chain is queued as a piece of the fragment, at its own offset: the
/// fragment counts once (`IpReasmReqds`), its frames each in the queues'
/// bounds, and the datagram is rebuilt over all of them.
pub fn ip_defrag_chained(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    skb: SkBuff,
    ip: &RxIp,
    now: Instant,
) -> Defrag {
    let frames = skb.frames();
    ip_defrag_pieces(net, q, umem, ip, frames, &mut skb.into_pieces(umem), now)
}

/// `ip_defrag` of a fragment in `frames` frames, its payload the `pieces`
/// `(frame, data offset, length)` in order, the first in the frame of its IP header.
fn ip_defrag_pieces(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    ip: &RxIp,
    frames: usize,
    pieces: &mut dyn Iterator<Item = (Frame, usize, usize)>,
    now: Instant,
) -> Defrag {
    let hdr = &ip.hdr;
    net.mib.IpReasmReqds += 1;
    let t = &mut net.ipfrags;
    // inet_frag_find: no queue while over the memory bound; ours: nor while
    // the queues hold their share of the UMEM.
    if t.mem > t.high_thresh || t.frames + frames > t.max_frames {
        net.mib.IpReasmFails += 1;
        pieces.for_each(|(f, _, _)| drop_frag(q, f, MibCounter::IpReasmFails));
        return Defrag::Stolen;
    }
    let key = FragKey { src: hdr.src, dst: hdr.dst, id: hdr.ident, protocol: hdr.protocol };
    let qi = match t.index.get(&key) {
        Some(&qi) => qi,
        None => {
            let qi = t.free_queues.pop().expect("a queue per frame held, and one spare");
            let expires = now + IPFRAG_TIME;
            t.queues[qi as usize] = Some(Ipq::empty(key, expires, 0));
            t.index.insert(key, qi);
            t.earliest = Some(t.earliest.map_or(expires, |e| e.min(expires)));
            qi
        }
    };
    ip_frag_queue(net, q, umem, qi, pieces, ip, now)
}

/// `ip_frag_queue`: adds the fragment to queue `qi`, and reassembles when
/// it completes the datagram.
fn ip_frag_queue(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    qi: u32,
    pieces: &mut dyn Iterator<Item = (Frame, usize, usize)>,
    ip: &RxIp,
    now: Instant,
) -> Defrag {
    let (hdr, l3) = (&ip.hdr, ip.l3);
    // ip_frag_too_far: more than ipfrag_max_dist fragments from this source
    // since this queue's last one: start the queue afresh.
    let rid = net.ipfrags.peer_rid(hdr.src);
    let (start, has_frags) = {
        let qp = net.ipfrags.queues[qi as usize].as_mut().expect("a live queue");
        let start = qp.rid;
        qp.rid = rid;
        (start, qp.tail != NIL)
    };
    if has_frags && rid.wrapping_sub(start) > IPFRAG_MAX_DIST {
        net.mib.IpReasmFails += 1;
        // ip_frag_reinit: the fragments go, the queue stays with a new timer.
        let old = discard_queue(net, q, qi, MibCounter::IpReasmFails);
        let t = &mut net.ipfrags;
        let expires = now + IPFRAG_TIME;
        t.free_queues.retain(|&x| x != qi);
        t.index.insert(old.key, qi);
        t.queues[qi as usize] = Some(Ipq::empty(old.key, expires, rid));
        t.earliest = Some(t.earliest.map_or(expires, |e| e.min(expires)));
    }

    let ecn_bit = match hdr.ecn() {
        ecn::NOT_ECT => 1,
        ecn::ECT1 => 2,
        ecn::ECT0 => 4,
        _ => 8,
    };
    let offset = u32::from(hdr.frag_offset) * 8;
    let mut end = offset + hdr.payload_len as u32;
    let t = &mut net.ipfrags;
    let qp = t.queues[qi as usize].as_mut().expect("a live queue");
    let bad = if !hdr.more_fragments {
        // The last fragment: nothing may lie beyond it, and a second last
        // fragment must agree.
        if end < qp.len || (qp.flags & LAST_IN != 0 && end != qp.len) {
            true
        } else {
            qp.flags |= LAST_IN;
            qp.len = end;
            false
        }
    } else {
        end &= !7;
        if end > qp.len {
            if qp.flags & LAST_IN != 0 {
                true
            } else {
                qp.len = end;
                false
            }
        } else {
            false
        }
    };
    if bad || end == offset {
        net.mib.IpReasmFails += 1;
        discard_queue(net, q, qi, MibCounter::IpReasmFails);
        pieces.for_each(|(f, _, _)| drop_frag(q, f, MibCounter::IpReasmFails));
        return Defrag::Stolen;
    }
    // Each piece (one for a fragment in one frame) at its own offset; the
    // first holds the IP header (`l3`, quoted by ip_expire).
    let mut at = offset;
    let mut first = true;
    let mut killed = false;
    let mut inserted = false;
    for (frame, data, len) in pieces {
        let node_l3 = if first { l3 } else { data };
        first = false;
        let (p_off, p_end) = (at, (at + len as u32).min(end));
        at += len as u32;
        if killed {
            drop_frag(q, frame, MibCounter::IpExtReasmOverlaps);
            continue;
        }
        if p_end <= p_off {
            // Past the fragment's end cut to a multiple of 8 (pskb_trim).
            q.free_frame(frame);
            continue;
        }
        let t = &mut net.ipfrags;
        let qp = t.queues[qi as usize].as_ref().expect("a live queue");
        match t.insert_pos(qp, p_off, p_end) {
            Insert::Dup => {
                net.mib.XskIpFragDups += 1;
                q.kfree_skb_reason(frame, MibCounter::XskIpFragDups);
            }
            Insert::Overlap => {
                net.mib.IpExtReasmOverlaps += 1;
                net.mib.IpReasmFails += 1;
                discard_queue(net, q, qi, MibCounter::IpExtReasmOverlaps);
                drop_frag(q, frame, MibCounter::IpExtReasmOverlaps);
                killed = true;
            }
            Insert::At { prev, joins_last_run } => {
                let n = t.free_nodes.pop().expect("a node per frame held, and one spare");
                let qp = t.queues[qi as usize].as_mut().expect("a live queue");
                let next = if prev == NIL { qp.head } else { t.nodes[prev as usize].next };
                t.nodes[n as usize] = Node {
                    frame: Some(frame),
                    l3: node_l3 as u16,
                    data: data as u16,
                    offset: p_off,
                    end: p_end,
                    next,
                    run_end: if joins_last_run { 0 } else { p_end },
                };
                if prev == NIL {
                    qp.head = n;
                } else {
                    t.nodes[prev as usize].next = n;
                }
                if next == NIL {
                    // The new highest fragment (`fragments_tail`).
                    qp.tail = n;
                    if joins_last_run {
                        t.nodes[qp.last_run_head as usize].run_end = p_end;
                    } else {
                        qp.last_run_head = n;
                    }
                }
                qp.meat += p_end - p_off;
                qp.ecn |= ecn_bit;
                qp.frames += 1;
                if p_off == 0 {
                    qp.flags |= FIRST_IN;
                    qp.first = Some(*ip);
                }
                t.frames += 1;
                t.mem += t.truesize;
                inserted = true;
            }
        }
    }
    // A duplicate completes nothing (inet_frag_queue_insert's IPFRAG_DUP).
    if killed || !inserted {
        return Defrag::Stolen;
    }
    let qp = net.ipfrags.queues[qi as usize].as_ref().expect("a live queue");
    if qp.flags == FIRST_IN | LAST_IN && qp.meat == qp.len {
        ip_frag_reasm(net, q, umem, qi)
    } else {
        Defrag::Stolen
    }
}

/// `ip_frag_reasm`: queue `qi` holds every byte: its fragments become one
/// chained datagram.
fn ip_frag_reasm(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, qi: u32) -> Defrag {
    let t = &mut net.ipfrags;
    let qp = t.queues[qi as usize].as_ref().expect("a live queue");
    let first = qp.first.expect("the first fragment is in");
    // ip_frag_ecn_table: Not-ECT mixed with any ECT codepoint is invalid.
    let invalid_ecn = qp.ecn & 1 != 0 && qp.ecn != 1;
    let total = MIN_HEADER_LEN + qp.len as usize;
    if invalid_ecn || total > IP_MAX_MTU {
        net.mib.IpReasmFails += 1;
        discard_queue(net, q, qi, MibCounter::IpReasmFails);
        return Defrag::Stolen;
    }
    let mut chain: Option<SkbChain> = None;
    t.kill(qi, |f, node| {
        let (data, len) = (node.data as usize, (node.end - node.offset) as usize);
        match &mut chain {
            None => chain = Some(SkbChain::new(umem, f, data, len)),
            Some(c) => c.push(umem, f, data, len),
        }
    });
    net.mib.IpReasmOKs += 1;
    let chain = chain.expect("a complete queue has fragments");
    let hdr = Ipv4Repr {
        payload_len: chain.len(),
        more_fragments: false,
        frag_offset: 0,
        dont_fragment: first.hdr.dont_fragment,
        ..first.hdr
    };
    let skb = chain.finish(std::net::SocketAddrV4::new(hdr.src, 0));
    Defrag::Done(Reassembled { ip: ReasmIp { hdr, pkt_type: first.pkt_type, route: first.route }, skb })
}

/// `ip_expire`: drops every queue whose time ran out by `now`, answering
/// with ICMP time exceeded (fragment reassembly) where the first fragment
/// came in.
pub fn ip_expire(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, now: Instant) {
    if net.ipfrags.earliest.is_none_or(|e| e > now) {
        return;
    }
    let mut earliest: Option<Instant> = None;
    for qi in 0..net.ipfrags.queues.len() as u32 {
        let Some(qp) = &net.ipfrags.queues[qi as usize] else { continue };
        if qp.expires > now {
            earliest = Some(earliest.map_or(qp.expires, |e| e.min(qp.expires)));
            continue;
        }
        net.mib.IpReasmFails += 1;
        net.mib.IpReasmTimeout += 1;
        let first_in = qp.flags & FIRST_IN != 0;
        let src = qp.key.src;
        let mut head: Option<(Frame, usize, usize)> = None;
        net.ipfrags.kill(qi, |f, node| {
            if first_in && node.offset == 0 && head.is_none() {
                let quoted_end = node.data as usize + (node.end - node.offset) as usize;
                head = Some((f, node.l3 as usize, quoted_end));
            } else {
                q.kfree_skb_reason(f, MibCounter::IpReasmTimeout);
            }
        });
        if let Some((f, l3, l4_end)) = head {
            super::icmp::icmp_send_time_exceeded(net, q, umem, &f, l3..l4_end, src, now);
            q.kfree_skb_reason(f, MibCounter::IpReasmTimeout);
        }
    }
    net.ipfrags.earliest = earliest;
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fragment_payload_is_a_multiple_of_eight() {
        assert_eq!(frag_payload(1500), 1480);
        assert_eq!(frag_payload(576), 552);
        assert_eq!(frag_payload(552), 528);
        assert_eq!(frag_payload(1006), 984);
    }
}
