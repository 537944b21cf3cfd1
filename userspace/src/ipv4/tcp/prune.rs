//! Received data under `tcp_mem` (net/ipv4/tcp_input.c
//! `tcp_try_rmem_schedule`, `tcp_prune_queue`, `tcp_prune_ofo_queue`,
//! `tcp_clamp_window`, include/net/tcp.h `tcp_adjust_rcv_ssthresh`): the
//! stage between a segment's checks and its queueing that charges its bytes
//! to the connection ([`super::mem`]), and when the stack's TCP memory
//! refuses them, shrinks what the connection holds (its out-of-order queue,
//! newest first) and the window it offers, or drops the segment.
//!
//! `tcp_collapse` and `tcp_collapse_ofo_queue` have nothing to do here:
//! they copy data out of half-empty skbs to give back their overhead, and
//! xsknet's queues hold payload bytes only (the receive buffer is a byte
//! ring, an out-of-order segment exactly its bytes), so a queue's charge is
//! already its length and collapsing would free nothing.

use std::time::Instant;

use super::after;
use super::cb::TcpCb;
use super::mem::{self, sk_mem_charge, sk_mem_uncharge};
use crate::net::Net;

/// `sk_rcvbuf` as the pruning tests read it: the receive ring's whole size
/// (`SO_RCVBUF` and the slack kept for window rounding; Linux's limit is
/// soft and lets a window rounded up to the scale unit in, ours is that ring).
#[inline]
fn sk_rcvbuf(cb: &TcpCb) -> usize {
    cb.rcv_full_space() as usize + super::TCP_RCV_SLACK
}

/// What the reader took out of the receive buffer since the loop last
/// looked is uncharged (Linux: `skb_attempt_defer_free` / `sock_rfree` as
/// `tcp_recvmsg` eats each skb; here the reader runs on the application's
/// side of a lock-free ring, and the loop, which owns the accounting, counts
/// what left when it next touches the connection: a segment, or the
/// window update a read that frees half the buffer asks for).
pub fn tcp_rcvq_reclaim(net: &mut Net, cb: &mut TcpCb, now: Instant) {
    let queued = cb.bufs.as_ref().map_or(0, |b| ringbuf::traits::Observer::occupied_len(&b.rcv));
    if queued < cb.mem.rcvq {
        let freed = cb.mem.rcvq - queued;
        cb.mem.rcvq = queued;
        sk_mem_uncharge(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, freed, now);
    }
}

/// `tcp_data_queue`'s memory check for in-order data of `size` bytes at
/// `seq`: `tcp_try_rmem_schedule`, and when that fails an ACK goes at once
/// (`ICSK_ACK_NOMEM | ICSK_ACK_NOW`) and, unless the receive buffer is
/// empty (then the pages are forced, `sk_forced_mem_schedule`, so that a
/// connection always moves), the segment is dropped: false, counted
/// `TcpExtTCPRcvQDrop` by the caller.
pub fn tcp_rmem_schedule_rcvq(net: &mut Net, cb: &mut TcpCb, seq: u32, size: usize, now: Instant) -> bool {
    if tcp_try_rmem_schedule(net, cb, seq, size, now) {
        return true;
    }
    cb.ack_pending = true;
    cb.ack_now = true;
    if cb.mem.rcvq > 0 && size > 0 {
        return false;
    }
    mem::sk_forced_mem_schedule(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, size);
    true
}

/// `tcp_data_queue_ofo`'s memory check for `size` bytes at `seq`: false
/// when they cannot be had (the caller counts `TcpExtTCPOFODrop` and drops
/// the segment, before it is counted as queued).
pub fn tcp_rmem_schedule_ofo(net: &mut Net, cb: &mut TcpCb, seq: u32, size: usize, now: Instant) -> bool {
    tcp_try_rmem_schedule(net, cb, seq, size, now)
}

/// `n` bytes went into the receive buffer (`tcp_queue_rcv`).
#[inline]
pub fn tcp_charge_rcvq(cb: &mut TcpCb, n: usize) {
    sk_mem_charge(&mut cb.mem, n);
    cb.mem.rcvq += n;
}

/// `n` bytes went into the out-of-order queue.
#[inline]
pub fn tcp_charge_ofo(cb: &mut TcpCb, n: usize) {
    sk_mem_charge(&mut cb.mem, n);
}

/// An out-of-order segment of `held` bytes left the queue (`tcp_ofo_queue`):
/// `moved` of them went into the receive buffer (already charged), the rest
/// (already delivered, or no room) are freed.
pub fn tcp_ofo_moved(net: &mut Net, cb: &mut TcpCb, held: usize, moved: usize, now: Instant) {
    cb.mem.rcvq += moved;
    if held > moved {
        sk_mem_uncharge(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, held - moved, now);
    }
}

/// The out-of-order queue is purged (`skb_rbtree_purge`: a FIN in
/// sequence, the connection's end): its bytes are freed.
pub fn tcp_ofo_purge(net: &mut Net, cb: &mut TcpCb, now: Instant) {
    let bytes = cb.ofo_bytes;
    net.tcp.ofo_bufs.give_all(&mut cb.ofo);
    cb.ofo_bytes = 0;
    if bytes > 0 {
        sk_mem_uncharge(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, bytes, now);
    }
}

/// `sk_mem_reclaim_final` when the connection ends (`tcp_done`,
/// `inet_csk_destroy_sock`): everything it held goes back to the total.
pub fn tcp_mem_release(net: &mut Net, cb: &mut TcpCb) {
    mem::sk_mem_release(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, None);
}

/// `tcp_try_rmem_schedule`: room for `size` bytes at `seq`. Over its
/// receive buffer, or refused by `tcp_mem`, the connection prunes
/// (`tcp_prune_queue`), then drops its out-of-order data from the newest
/// down until the pages come or nothing is left to drop.
fn tcp_try_rmem_schedule(net: &mut Net, cb: &mut TcpCb, seq: u32, size: usize, now: Instant) -> bool {
    if cb.mem.rmem_alloc <= sk_rcvbuf(cb) && sk_rmem_schedule(net, cb, size, now) {
        return true;
    }
    if !tcp_prune_queue(net, cb, seq, now) {
        return false;
    }
    while !sk_rmem_schedule(net, cb, size, now) {
        if !tcp_prune_ofo_queue(net, cb, seq, now) {
            return false;
        }
    }
    true
}

/// [`mem::sk_rmem_schedule`] for `cb`, with the number of TCP socks there are.
fn sk_rmem_schedule(net: &mut Net, cb: &mut TcpCb, size: usize, now: Instant) -> bool {
    let nr_socks = net.tcp.len();
    mem::sk_rmem_schedule(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, size, nr_socks, now)
}

/// `tcp_prune_queue` (`TcpExtPruneCalled`): the window stops growing (over
/// the buffer: clamped to two segments; under pressure: to four); within
/// the buffer that is all (true). Over it, the out-of-order queue is pruned;
/// still over, the segment must go (`TcpExtRcvPruned`, false).
fn tcp_prune_queue(net: &mut Net, cb: &mut TcpCb, seq: u32, now: Instant) -> bool {
    net.mib.TcpExtPruneCalled += 1;
    let rcvbuf = sk_rcvbuf(cb);
    if cb.mem.rmem_alloc >= rcvbuf {
        tcp_clamp_window(cb);
    } else if net.tcp.mem.under_pressure() {
        tcp_adjust_rcv_ssthresh(cb);
    }
    if cb.mem.rmem_alloc <= rcvbuf {
        return true;
    }
    // tcp_collapse_ofo_queue, tcp_collapse: nothing to squeeze (module doc).
    mem::sk_mem_reclaim(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, now);
    tcp_prune_ofo_queue(net, cb, seq, now);
    if cb.mem.rmem_alloc <= rcvbuf {
        return true;
    }
    net.mib.TcpExtRcvPruned += 1;
    false
}

/// `tcp_prune_ofo_queue`: drops out-of-order data from the newest down,
/// never a segment that starts before `seq` (the one that wants the room
/// would land after it), an eighth of the buffer at a time, until the
/// connection is within its buffer and pressure is off, or the queue is
/// empty. Counts `TcpExtOfoPruned` and forgets the pending D-SACK
/// (`tcp_sack_reset`; the SACK blocks are read from the queue itself).
/// True if it dropped anything.
fn tcp_prune_ofo_queue(net: &mut Net, cb: &mut TcpCb, seq: u32, now: Instant) -> bool {
    let rcvbuf = sk_rcvbuf(cb);
    let mut goal = (rcvbuf >> 3) as isize;
    let mut pruned = false;
    while let Some(last) = cb.ofo.last() {
        if after(seq, last.seq) {
            break;
        }
        let Some(o) = cb.ofo.pop() else { break };
        pruned = true;
        let len = o.data.len();
        net.tcp.ofo_bufs.give(o.data);
        cb.ofo_bytes -= len;
        goal -= len as isize;
        sk_mem_uncharge(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, len, now);
        if cb.ofo.is_empty() || goal <= 0 {
            mem::sk_mem_reclaim(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, now);
            if cb.mem.rmem_alloc <= rcvbuf && !net.tcp.mem.under_pressure() {
                break;
            }
            goal = (rcvbuf >> 3) as isize;
        }
    }
    if pruned {
        net.mib.TcpExtOfoPruned += 1;
        if cb.sack_ok {
            cb.sack.dsack_out = None;
        }
    }
    pruned
}

/// `tcp_clamp_window`: the receive queues hold more than the buffer: no
/// quick ACKs, and the window grows no further than two segments. (Linux
/// may grow `sk_rcvbuf` first, below `tcp_rmem[2]` without pressure;
/// xsknet's buffers have a fixed size.)
fn tcp_clamp_window(cb: &mut TcpCb) {
    cb.quick = 0;
    if cb.mem.rmem_alloc > sk_rcvbuf(cb) {
        cb.rcv_ssthresh = cb.rcv_full_space().min(2 * cb.advmss);
    }
}

/// `tcp_adjust_rcv_ssthresh`: under memory pressure the offered window
/// grows no further than four segments.
pub fn tcp_adjust_rcv_ssthresh(cb: &mut TcpCb) {
    cb.rcv_ssthresh = cb.rcv_ssthresh.min(4 * cb.advmss);
}

/// `__tcp_select_window` under memory pressure: when less than half the
/// buffer is free, the window is clamped ([`tcp_adjust_rcv_ssthresh`]).
pub fn tcp_select_window_under_pressure(net: &Net, cb: &mut TcpCb) {
    if net.tcp.mem.under_pressure() && cb.rcv_space() < cb.rcv_full_space() / 2 {
        tcp_adjust_rcv_ssthresh(cb);
    }
}
