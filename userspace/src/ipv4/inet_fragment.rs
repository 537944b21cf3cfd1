//! The reassembly queues' bookkeeping (net/ipv4/inet_fragment.c): the
//! queues of fragments by `(source, destination, id, protocol)`, their
//! fragments in offset order grouped in runs (`inet_frag_queue_insert`), the
//! memory charge and bounds, the per-source fragment counters of
//! `ipfrag_max_dist`, and the queues' timers. What a fragment does to a
//! queue, and what a complete or expired queue becomes, is
//! [`super::ip_fragment`]'s (`ip_fragment.c`). Everything is allocated when
//! the table is made: taking a fragment allocates nothing.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::RxIp;
use crate::umem::Frame;

/// `net.ipv4.ipfrag_time`: how long a queue waits for its missing fragments.
pub const IPFRAG_TIME: Duration = Duration::from_secs(30);
/// `net.ipv4.ipfrag_high_thresh`: fragments are refused while the queues hold
/// more than this, bytes of truesize.
pub const IPFRAG_HIGH_THRESH: usize = 4 << 20;
/// `net.ipv4.ipfrag_low_thresh`: documented by Linux, unused since 4.17.
pub const IPFRAG_LOW_THRESH: usize = 3 << 20;
/// `net.ipv4.ipfrag_max_dist`.
pub const IPFRAG_MAX_DIST: u32 = 64;
/// `IP_MAX_MTU`: the largest IPv4 datagram.
pub const IP_MAX_MTU: usize = 0xFFFF;
/// Entries of the per-source fragment counters (`inet_peer`'s `rid`).
pub(super) const PEERS: usize = 256;
pub(super) const NIL: u32 = u32::MAX;

/// A reassembly queue's key (`struct frag_v4_compare_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct FragKey {
    pub(super) src: Ipv4Addr,
    pub(super) dst: Ipv4Addr,
    pub(super) id: u16,
    pub(super) protocol: u8,
}

/// One held fragment.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) frame: Option<Frame>,
    /// Offset of its IP header in the frame (for the ICMP quote).
    pub(super) l3: u16,
    /// Offset of its payload in the frame.
    pub(super) data: u16,
    /// Its place in the datagram: `[offset, end)`, bytes of IP payload.
    pub(super) offset: u32,
    pub(super) end: u32,
    /// The next fragment by offset.
    pub(super) next: u32,
    /// For the first fragment of a run, where the run ends; else 0.
    pub(super) run_end: u32,
}

/// `INET_FRAG_FIRST_IN`, `INET_FRAG_LAST_IN`.
pub(super) const FIRST_IN: u8 = 1;
pub(super) const LAST_IN: u8 = 2;

/// One datagram being reassembled (`struct ipq`).
#[derive(Debug)]
pub(super) struct Ipq {
    pub(super) key: FragKey,
    /// The lowest fragment, and the highest (`fragments_tail`).
    pub(super) head: u32,
    pub(super) tail: u32,
    /// The run the highest fragment belongs to (`last_run_head`).
    pub(super) last_run_head: u32,
    /// The datagram's length as far as known (`q.len`), and the bytes held (`q.meat`).
    pub(super) len: u32,
    pub(super) meat: u32,
    pub(super) flags: u8,
    /// The ECN codepoints seen (`IPFRAG_ECN_*` bits).
    pub(super) ecn: u8,
    pub(super) expires: Instant,
    /// The source's fragment count when this queue last took one (`qp->rid`).
    pub(super) rid: u32,
    pub(super) frames: usize,
    /// The fragment at offset 0 as `ip_rcv` saw it, once in: its header,
    /// `pkt_type` and input route, which the reassembled datagram keeps
    /// (`ip_frag_reasm` morphs the head skb into the datagram).
    pub(super) first: Option<RxIp>,
}

impl Ipq {
    /// A queue for `key` with no fragment yet, expiring at `expires`, with
    /// `rid` runs of the datagram seen before (`inet_frag_reinit`'s reset).
    pub(super) fn empty(key: FragKey, expires: Instant, rid: u32) -> Ipq {
        Ipq {
            key,
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
            first: None,
        }
    }
}

/// Why a fragment could not join its queue's fragments.
pub(super) enum Insert {
    /// It goes after node `prev` (NIL: first), starting a run or not.
    At {
        prev: u32,
        joins_last_run: bool,
    },
    Dup,
    Overlap,
}

/// The reassembly queues of one stack (`net->ipv4.fqdir`).
pub struct IpFragTable {
    pub(super) nodes: Vec<Node>,
    pub(super) free_nodes: Vec<u32>,
    pub(super) queues: Vec<Option<Ipq>>,
    pub(super) free_queues: Vec<u32>,
    pub(super) index: HashMap<FragKey, u32>,
    /// Bytes of truesize held (`frag_mem_limit`).
    pub(super) mem: usize,
    pub(super) truesize: usize,
    /// Frames held now, and the most we hold (half the UMEM).
    pub(super) frames: usize,
    pub(super) max_frames: usize,
    pub(super) high_thresh: usize,
    /// When the earliest queue expires (may be early after a queue left).
    pub(super) earliest: Option<Instant>,
    /// Fragments seen per source (`inet_peer.rid`), direct-mapped.
    pub(super) peers: Box<[(Ipv4Addr, u32)]>,
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

    pub(super) fn peer_rid(&mut self, src: Ipv4Addr) -> u32 {
        let h = (u32::from(src).wrapping_mul(0x9E37_79B9) >> 24) as usize % PEERS;
        let e = &mut self.peers[h];
        if e.0 != src {
            *e = (src, 0);
        }
        e.1 = e.1.wrapping_add(1);
        e.1
    }

    /// Frees every fragment of queue `qi` through `free`, and the queue.
    pub(super) fn kill(&mut self, qi: u32, mut free: impl FnMut(Frame, &Node)) -> Ipq {
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
    pub(super) fn insert_pos(&self, q: &Ipq, offset: u32, end: u32) -> Insert {
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
