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
//! **The path MTU** ([`PmtuCache`]): ICMP fragmentation needed for a datagram
//! of one of our sockets lowers the MTU towards its destination for
//! `ip_rt_mtu_expires` (600 s); never below `min_pmtu` (552): a smaller value
//! sets 552 and *locks* the entry, which clears DF under `IP_PMTUDISC_WANT`.
//! The cache is bounded (256 destinations, the one expiring first gives way)
//! and shared with application threads, which need the MTU to lay a large
//! datagram out in fragments when they send it. It costs one atomic load per
//! send while empty, a lock only while it holds entries.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::RxIp;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::skbuff::{SkBuff, SkbChain};
use crate::snmp::MibCounter;
use crate::umem::{Frame, Umem};
use crate::wire::ipv4::{ecn, Ipv4Repr, MIN_HEADER_LEN};

/// `net.ipv4.ipfrag_time`: how long a queue waits for its missing fragments.
pub const IPFRAG_TIME: Duration = Duration::from_secs(30);
/// `net.ipv4.ipfrag_high_thresh`: fragments are refused while the queues hold
/// more than this, bytes of truesize.
pub const IPFRAG_HIGH_THRESH: usize = 4 << 20;
/// `net.ipv4.ipfrag_low_thresh`: documented by Linux, unused since 4.17.
pub const IPFRAG_LOW_THRESH: usize = 3 << 20;
/// `net.ipv4.ipfrag_max_dist`.
pub const IPFRAG_MAX_DIST: u32 = 64;
/// `net.ipv4.route.mtu_expires`: how long a learned path MTU holds.
pub const IP_RT_MTU_EXPIRES: Duration = Duration::from_secs(600);
/// `net.ipv4.route.min_pmtu`: the lowest path MTU learned from ICMP.
pub const IP_RT_MIN_PMTU: usize = 552;
/// `IP_MAX_MTU`: the largest IPv4 datagram.
pub const IP_MAX_MTU: usize = 0xFFFF;
/// Destinations the path MTU cache holds at most.
pub const PMTU_CACHE_SIZE: usize = 256;
/// Entries of the per-source fragment counters (`inet_peer`'s `rid`).
const PEERS: usize = 256;
const NIL: u32 = u32::MAX;

/// The bytes of IP payload each fragment but the last carries for an MTU of
/// `mtu` (`ip_do_fragment`: the MTU less the 20-byte header, a multiple of 8).
#[inline]
pub fn frag_payload(mtu: usize) -> usize {
    (mtu - MIN_HEADER_LEN) & !7
}

/// A reassembly queue's key (`struct frag_v4_compare_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    protocol: u8,
}

/// One held fragment.
#[derive(Debug)]
struct Node {
    frame: Option<Frame>,
    /// Offset of its IP header in the frame (for the ICMP quote).
    l3: u16,
    /// Offset of its payload in the frame.
    data: u16,
    /// Its place in the datagram: `[offset, end)`, bytes of IP payload.
    offset: u32,
    end: u32,
    /// The next fragment by offset.
    next: u32,
    /// For the first fragment of a run, where the run ends; else 0.
    run_end: u32,
}

/// `INET_FRAG_FIRST_IN`, `INET_FRAG_LAST_IN`.
const FIRST_IN: u8 = 1;
const LAST_IN: u8 = 2;

/// One datagram being reassembled (`struct ipq`).
#[derive(Debug)]
struct Ipq {
    key: FragKey,
    /// The lowest fragment, and the highest (`fragments_tail`).
    head: u32,
    tail: u32,
    /// The run the highest fragment belongs to (`last_run_head`).
    last_run_head: u32,
    /// The datagram's length as far as known (`q.len`), and the bytes held (`q.meat`).
    len: u32,
    meat: u32,
    flags: u8,
    /// The ECN codepoints seen (`IPFRAG_ECN_*` bits).
    ecn: u8,
    expires: Instant,
    /// The source's fragment count when this queue last took one (`qp->rid`).
    rid: u32,
    frames: usize,
    /// The header of the fragment at offset 0, once in.
    first_hdr: Option<Ipv4Repr>,
}

/// Why a fragment could not join its queue's fragments.
enum Insert {
    /// It goes after node `prev` (NIL: first), starting a run or not.
    At {
        prev: u32,
        joins_last_run: bool,
    },
    Dup,
    Overlap,
}

/// A datagram rebuilt from its fragments.
#[derive(Debug)]
pub struct Reassembled {
    /// The datagram's IP header (the first fragment's, no longer a fragment),
    /// `payload_len` the whole payload.
    pub hdr: Ipv4Repr,
    /// The payload: a chain over the fragments' frames (its peer unset).
    pub skb: SkBuff,
}

/// The reassembly queues of one stack (`net->ipv4.fqdir`).
pub struct IpFragTable {
    nodes: Vec<Node>,
    free_nodes: Vec<u32>,
    queues: Vec<Option<Ipq>>,
    free_queues: Vec<u32>,
    index: HashMap<FragKey, u32>,
    /// Bytes of truesize held (`frag_mem_limit`).
    mem: usize,
    truesize: usize,
    /// Frames held now, and the most we hold (half the UMEM).
    frames: usize,
    max_frames: usize,
    high_thresh: usize,
    /// When the earliest queue expires (may be early after a queue left).
    earliest: Option<Instant>,
    /// Fragments seen per source (`inet_peer.rid`), direct-mapped.
    peers: Box<[(Ipv4Addr, u32)]>,
}

impl IpFragTable {
    /// Queues for frames of `truesize` bytes, holding at most `max_frames`
    /// frames and Linux's `ipfrag_high_thresh` of truesize. Everything is
    /// allocated here: taking a fragment allocates nothing.
    pub fn new(truesize: usize, max_frames: usize) -> IpFragTable {
        let max_frames = max_frames.min(IPFRAG_HIGH_THRESH / truesize.max(1) + 1).max(1);
        let cap = max_frames + 1;
        IpFragTable {
            nodes: (0..cap)
                .map(|_| Node { frame: None, l3: 0, data: 0, offset: 0, end: 0, next: NIL, run_end: 0 })
                .collect(),
            free_nodes: (0..cap as u32).rev().collect(),
            queues: (0..cap).map(|_| None).collect(),
            free_queues: (0..cap as u32).rev().collect(),
            index: HashMap::with_capacity(cap),
            mem: 0,
            truesize,
            frames: 0,
            max_frames,
            high_thresh: IPFRAG_HIGH_THRESH,
            earliest: None,
            peers: vec![(Ipv4Addr::UNSPECIFIED, 0); PEERS].into_boxed_slice(),
        }
    }

    /// Frames the queues hold now (the frame census).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes of truesize the queues hold (`frag_mem_limit`).
    pub fn mem(&self) -> usize {
        self.mem
    }

    /// Queues open now.
    pub fn queues(&self) -> usize {
        self.index.len()
    }

    /// The most frames the queues may hold.
    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    /// Frees every held fragment through `put` and closes every queue (on
    /// shutdown).
    pub fn release(&mut self, mut put: impl FnMut(Frame)) {
        for qi in 0..self.queues.len() as u32 {
            if self.queues[qi as usize].is_some() {
                self.kill(qi, |f, _| put(f));
            }
        }
        self.earliest = None;
    }

    /// When [`ip_expire`] has work, if any queue is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest
    }

    fn peer_rid(&mut self, src: Ipv4Addr) -> u32 {
        let h = (u32::from(src).wrapping_mul(0x9E37_79B9) >> 24) as usize % PEERS;
        let e = &mut self.peers[h];
        if e.0 != src {
            *e = (src, 0);
        }
        e.1 = e.1.wrapping_add(1);
        e.1
    }

    /// Frees every fragment of queue `qi` through `free`, and the queue.
    fn kill(&mut self, qi: u32, mut free: impl FnMut(Frame, &Node)) -> Ipq {
        let q = self.queues[qi as usize].take().expect("a live queue");
        self.index.remove(&q.key);
        self.free_queues.push(qi);
        let mut n = q.head;
        while n != NIL {
            let node = &mut self.nodes[n as usize];
            let next = node.next;
            if let Some(f) = node.frame.take() {
                free(f, node);
            }
            self.free_nodes.push(n);
            n = next;
        }
        self.frames -= q.frames;
        self.mem -= q.frames * self.truesize;
        q
    }

    /// Where `[offset, end)` goes in queue `q` (`inet_frag_queue_insert`).
    fn insert_pos(&self, q: &Ipq, offset: u32, end: u32) -> Insert {
        if q.tail == NIL {
            return Insert::At { prev: NIL, joins_last_run: false };
        }
        let last = &self.nodes[q.tail as usize];
        if last.end < end {
            // The common case: at the end.
            if offset < last.end {
                return Insert::Overlap;
            }
            return Insert::At { prev: q.tail, joins_last_run: offset == last.end };
        }
        // Among the runs: a fragment inside one is a duplicate, one that
        // touches one otherwise overlaps.
        let mut prev = NIL;
        let mut n = q.head;
        while n != NIL {
            let node = &self.nodes[n as usize];
            if node.run_end != 0 {
                if end <= node.offset {
                    break;
                }
                if offset < node.run_end {
                    return if offset >= node.offset && end <= node.run_end { Insert::Dup } else { Insert::Overlap };
                }
            }
            prev = n;
            n = node.next;
        }
        Insert::At { prev, joins_last_run: false }
    }
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
    let hdr = &ip.hdr;
    net.mib.IpReasmReqds += 1;
    let t = &mut net.ipfrags;
    // inet_frag_find: no queue while over the memory bound; ours: nor while
    // the queues hold their share of the UMEM.
    if t.mem > t.high_thresh || t.frames >= t.max_frames {
        net.mib.IpReasmFails += 1;
        drop_frag(q, frame, MibCounter::IpReasmFails);
        return Defrag::Stolen;
    }
    let key = FragKey { src: hdr.src, dst: hdr.dst, id: hdr.ident, protocol: hdr.protocol };
    let qi = match t.index.get(&key) {
        Some(&qi) => qi,
        None => {
            let qi = t.free_queues.pop().expect("a queue per frame held, and one spare");
            let expires = now + IPFRAG_TIME;
            t.queues[qi as usize] = Some(Ipq {
                key,
                head: NIL,
                tail: NIL,
                last_run_head: NIL,
                len: 0,
                meat: 0,
                flags: 0,
                ecn: 0,
                expires,
                rid: 0,
                frames: 0,
                first_hdr: None,
            });
            t.index.insert(key, qi);
            t.earliest = Some(t.earliest.map_or(expires, |e| e.min(expires)));
            qi
        }
    };
    ip_frag_queue(net, q, umem, qi, frame, ip, now)
}

/// `ip_frag_queue`: adds the fragment to queue `qi`, and reassembles when
/// it completes the datagram.
fn ip_frag_queue(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    qi: u32,
    frame: Frame,
    ip: &RxIp,
    now: Instant,
) -> Defrag {
    let (hdr, l3, l4) = (&ip.hdr, ip.l3, ip.l4);
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
        t.queues[qi as usize] = Some(Ipq {
            key: old.key,
            head: NIL,
            tail: NIL,
            last_run_head: NIL,
            len: 0,
            meat: 0,
            flags: 0,
            ecn: 0,
            expires,
            rid,
            frames: 0,
            first_hdr: None,
        });
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
        drop_frag(q, frame, MibCounter::IpReasmFails);
        return Defrag::Stolen;
    }
    let qp = t.queues[qi as usize].as_ref().expect("a live queue");
    match t.insert_pos(qp, offset, end) {
        Insert::Dup => {
            net.mib.XskIpFragDups += 1;
            q.kfree_skb_reason(frame, MibCounter::XskIpFragDups);
            Defrag::Stolen
        }
        Insert::Overlap => {
            net.mib.IpExtReasmOverlaps += 1;
            net.mib.IpReasmFails += 1;
            discard_queue(net, q, qi, MibCounter::IpExtReasmOverlaps);
            drop_frag(q, frame, MibCounter::IpExtReasmOverlaps);
            Defrag::Stolen
        }
        Insert::At { prev, joins_last_run } => {
            let n = t.free_nodes.pop().expect("a node per frame held, and one spare");
            let qp = t.queues[qi as usize].as_mut().expect("a live queue");
            let next = if prev == NIL { qp.head } else { t.nodes[prev as usize].next };
            t.nodes[n as usize] = Node {
                frame: Some(frame),
                l3: l3 as u16,
                data: l4 as u16,
                offset,
                end,
                next,
                run_end: if joins_last_run { 0 } else { end },
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
                    t.nodes[qp.last_run_head as usize].run_end = end;
                } else {
                    qp.last_run_head = n;
                }
            }
            qp.meat += end - offset;
            qp.ecn |= ecn_bit;
            qp.frames += 1;
            if offset == 0 {
                qp.flags |= FIRST_IN;
                qp.first_hdr = Some(*hdr);
            }
            t.frames += 1;
            t.mem += t.truesize;
            if qp.flags == FIRST_IN | LAST_IN && qp.meat == qp.len {
                ip_frag_reasm(net, q, umem, qi)
            } else {
                Defrag::Stolen
            }
        }
    }
}

/// `ip_frag_reasm`: queue `qi` holds every byte: its fragments become one
/// chained datagram.
fn ip_frag_reasm(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, qi: u32) -> Defrag {
    let t = &mut net.ipfrags;
    let qp = t.queues[qi as usize].as_ref().expect("a live queue");
    let first = qp.first_hdr.expect("the first fragment is in");
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
        dont_fragment: first.dont_fragment,
        ..first
    };
    let skb = chain.finish(std::net::SocketAddrV4::new(hdr.src, 0));
    Defrag::Done(Reassembled { hdr, skb })
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

    #[test]
    fn fragment_payload_is_a_multiple_of_eight() {
        assert_eq!(frag_payload(1500), 1480);
        assert_eq!(frag_payload(576), 552);
        assert_eq!(frag_payload(552), 528);
        assert_eq!(frag_payload(1006), 984);
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
