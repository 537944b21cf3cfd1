//! The send queue under `tcp_mem` (net/core/sock.c `__sk_mem_raise_allocated`
//! with `SK_MEM_SEND`; net/ipv4/tcp.c `tcp_stream_alloc_skb`,
//! `tcp_sendmsg_locked`; include/net/sock.h `sk_stream_moderate_sndbuf`,
//! `sk_wmem_free_skb`; net/ipv4/tcp_input.c `tcp_check_space`,
//! `tcp_new_space`, `tcp_should_expand_sndbuf`; net/core/stream.c
//! `sk_stream_write_space`; net/ipv4/tcp_timer.c `tcp_out_of_resources`,
//! include/net/tcp.h `tcp_out_of_memory`): the stage that charges what the
//! application wrote to the stack's TCP memory, shrinks the send buffer when
//! that memory runs short, and gives it back as the peer acknowledges.
//!
//! Linux charges each skb as `tcp_sendmsg` fills it (`sk_wmem_schedule`),
//! under the socket lock. In xsknet the application copies into a lock-free
//! ring and the loop owns the accounting, so the loop charges what it finds
//! written each time it looks at the send buffer ([`tcp_wmem_charge`], the
//! first step of `tcp_write_xmit`), before any of it is sent: the bytes are
//! already queued, as Linux's are once `sk_wmem_schedule` let the skb be
//! made. A refusal does what `suppress_allocation` does for a stream sock:
//! the send buffer (`sk_sndbuf`, [`crate::stream::StreamSock::sndbuf_lim`])
//! is cut to half what is queued, at least `SOCK_MIN_SNDBUF`
//! (`sk_stream_moderate_sndbuf`), and the bytes are charged anyway (the
//! write queue is over the new buffer), so the next `send()` finds no room
//! (`sk_stream_memory_free` fails: `EAGAIN`, or a blocking writer waits in
//! `sk_stream_wait_memory`). As ACKs free bytes (`sk_wmem_free_skb`,
//! `sk_mem_reclaim`), [`tcp_check_space`] grows the buffer back when memory
//! allows (`tcp_should_expand_sndbuf`) and the writer is woken
//! (`sk_stream_write_space`). With `SO_SNDBUF` set (`SOCK_SNDBUF_LOCK`) the
//! buffer is never cut; a refused charge there stops the writer at what is
//! queued until the next ACK frees some, when it tries again, as Linux's
//! writer waits in `sk_stream_wait_memory` and retries `sk_wmem_schedule`.
//! All of it is integers the loop owns: nothing allocates or locks per
//! segment.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::cb::TcpCb;
use super::mem::{self, SOCK_MIN_SNDBUF};
use crate::net::Net;

/// The send buffer's whole size, bytes (the ring's capacity; 0 before the
/// connection has one).
#[inline]
fn ring_capacity(cb: &TcpCb) -> usize {
    cb.bufs.as_ref().map_or(0, |b| ringbuf::traits::Observer::capacity(&b.snd).get())
}

/// Charges what the application wrote since the loop last looked
/// (`tcp_stream_alloc_skb`'s `sk_wmem_schedule`, `sk_wmem_queued_add`,
/// `sk_mem_charge`). Refused by `tcp_mem`: the send buffer is moderated
/// (or, locked by `SO_SNDBUF`, closed at what is queued) and the bytes
/// charged anyway (module doc).
pub fn tcp_wmem_charge(net: &mut Net, cb: &mut TcpCb, now: Instant) {
    let queued = cb.snd_buffered() as usize;
    if queued <= cb.mem.wmem_queued {
        return;
    }
    let size = queued - cb.mem.wmem_queued;
    let nr_socks = net.tcp.len();
    if !mem::sk_wmem_schedule(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, size, nr_socks, now) {
        let tsk = cb.tsk();
        if tsk.sndbuf_lock.load(Ordering::Relaxed) {
            // Linux fails the allocation while the queue is under the
            // buffer: the writer waits with what is queued.
            let sndbuf = ring_capacity(cb).min(tsk.stream.sndbuf_lim());
            if cb.mem.wmem_queued + size < sndbuf {
                tsk.stream.set_sndbuf_lim(queued);
            }
        } else {
            sk_stream_moderate_sndbuf(cb);
        }
        mem::sk_forced_mem_schedule(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, size);
    }
    cb.mem.forward_alloc = cb.mem.forward_alloc.saturating_sub(size);
    cb.mem.wmem_queued += size;
}

/// `sk_stream_moderate_sndbuf`: `sk_sndbuf` becomes at most half the bytes
/// queued, at least `SOCK_MIN_SNDBUF`.
fn sk_stream_moderate_sndbuf(cb: &TcpCb) {
    let stream = &cb.tsk().stream;
    let sndbuf = ring_capacity(cb).min(stream.sndbuf_lim());
    let val = sndbuf.min(cb.mem.wmem_queued >> 1);
    stream.set_sndbuf_lim(val.max(SOCK_MIN_SNDBUF));
}

/// `sk_wmem_free_skb` for `bytes` the peer acknowledged: uncharged from the
/// write queue, back to the reserve, whose whole pages go back to the total
/// (`sk_mem_reclaim`).
pub fn tcp_wmem_free(net: &mut Net, cb: &mut TcpCb, bytes: usize, now: Instant) {
    let bytes = bytes.min(cb.mem.wmem_queued);
    if bytes == 0 {
        return;
    }
    cb.mem.wmem_queued -= bytes;
    cb.mem.forward_alloc += bytes;
    mem::sk_mem_reclaim(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, now);
}

/// `tcp_check_space` → `tcp_new_space` after an ACK freed bytes
/// (`SOCK_QUEUE_SHRUNK`): a send buffer memory pressure cut grows back to
/// its size when `tcp_should_expand_sndbuf` says so (no pressure, the total
/// below `tcp_mem[0]`, fewer packets in flight than cwnd); a locked one
/// opens for the waiting writer to try again. The caller then wakes the
/// writer (`sk_stream_write_space`).
pub fn tcp_check_space(net: &Net, cb: &TcpCb) {
    let tsk = cb.tsk();
    if tsk.stream.sndbuf_lim() == usize::MAX {
        return;
    }
    if tsk.sndbuf_lock.load(Ordering::Relaxed) || tcp_should_expand_sndbuf(net, cb) {
        // tcp_sndbuf_expand: xsknet's buffer does not autotune, so it grows
        // back to its size, not to 2 × cwnd segments.
        tsk.stream.set_sndbuf_lim(usize::MAX);
    }
}

/// `tcp_should_expand_sndbuf` for a buffer not locked by `SO_SNDBUF`.
fn tcp_should_expand_sndbuf(net: &Net, cb: &TcpCb) -> bool {
    let m = &net.tcp.mem;
    !m.under_pressure() && m.allocated < m.limits.min && super::sack::pipe(cb) < cb.cwnd.saturating_mul(cb.mss.max(1))
}

/// `tcp_out_of_memory`: the sock queues more than `SOCK_MIN_SNDBUF` to send
/// while all TCP memory is over `tcp_mem[2]`; an orphan in that case is
/// reset (`tcp_out_of_resources`, `TcpExtTCPAbortOnMemory`).
pub fn tcp_out_of_memory(net: &Net, cb: &TcpCb) -> bool {
    cb.mem.wmem_queued > SOCK_MIN_SNDBUF && net.tcp.mem.allocated > net.tcp.mem.limits.max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::tcp::mem::TcpMemLimits;
    use crate::stream::CongAlgo;

    #[test]
    fn the_hard_limit_moderates_the_send_buffer_and_acks_grow_it_back() {
        let t0 = Instant::now();
        let route = crate::route::Route { addr: std::net::Ipv4Addr::new(10, 0, 0, 2), prefix_len: 24, gateway: None };
        let mut net = Net::new(crate::wire::EthernetAddress([2, 0, 0, 0, 0, 2]), route, 64, 0, 64);
        net.tcp.mem = mem::TcpMem::new(TcpMemLimits { min: 2, pressure: 3, max: 4 });
        let mut cb = TcpCb::for_tests(CongAlgo::Reno);
        let bufs = cb.tsk().stream.attach_bufs(4096, 65536);
        cb.bufs = Some(bufs);
        cb.cwnd = 10;
        cb.mss = 1000;
        // 16 KiB: four pages, under tcp_mem[2].
        assert_eq!(cb.tsk().stream.write(&[7; 16384]), 16384);
        tcp_wmem_charge(&mut net, &mut cb, t0);
        assert_eq!((cb.mem.wmem_queued, net.tcp.mem.allocated), (16384, 4));
        assert!(net.tcp.mem.under_pressure());
        assert_eq!(cb.tsk().stream.sndbuf_lim(), usize::MAX);
        // One byte more wants a fifth page: refused, so the buffer is cut to
        // half the queue and the byte charged anyway.
        assert_eq!(cb.tsk().stream.write(&[7; 1]), 1);
        tcp_wmem_charge(&mut net, &mut cb, t0);
        assert_eq!((cb.mem.wmem_queued, net.tcp.mem.allocated), (16385, 5));
        assert_eq!(cb.tsk().stream.sndbuf_lim(), 8192);
        assert_eq!(cb.tsk().stream.write(&[7; 100]), 0, "no room: EAGAIN");
        assert!(!cb.tsk().stream.writeable());
        assert!(tcp_out_of_memory(&net, &cb));
        // The peer acknowledges 12 KiB: three pages back, still under pressure.
        let t1 = t0 + std::time::Duration::from_millis(30);
        ringbuf::traits::Consumer::skip(&mut cb.bufs.as_mut().unwrap().snd, 12288);
        tcp_wmem_free(&mut net, &mut cb, 12288, t1);
        assert_eq!((cb.mem.wmem_queued, net.tcp.mem.allocated), (4097, 2));
        assert!(net.tcp.mem.under_pressure(), "2 pages are not below tcp_mem[0]");
        tcp_check_space(&net, &cb);
        assert_eq!(cb.tsk().stream.sndbuf_lim(), 8192, "no expansion under pressure");
        assert_eq!(cb.tsk().stream.write(&[7; 8192]), 8192 - 4097, "the moderated buffer's room");
        ringbuf::traits::Consumer::skip(&mut cb.bufs.as_mut().unwrap().snd, 8192);
        tcp_wmem_free(&mut net, &mut cb, 8192, t1);
        assert_eq!((cb.mem.wmem_queued, net.tcp.mem.allocated), (0, 0), "bytes never charged are not uncharged");
        assert!(!net.tcp.mem.under_pressure());
        assert_eq!(net.mib.TcpExtTCPMemoryPressuresChrono, 30);
        tcp_check_space(&net, &cb);
        assert_eq!(cb.tsk().stream.sndbuf_lim(), usize::MAX, "grown back");
        assert!(cb.tsk().stream.writeable());
        mem::sk_mem_release(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, Some(t1));
        assert_eq!(net.tcp.mem.allocated, 0);
    }
}
