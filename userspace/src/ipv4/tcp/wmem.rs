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
//!
//! **Send-buffer autotuning** (`tcp_sndbuf_expand`, from `tcp_new_space`
//! when ACKs free room after a writer found the buffer full, and from
//! `tcp_init_buffer_space`): the buffer grows to hold two congestion
//! windows of segments, `2 × max(cwnd, 10, reordering + 1) × per_mss`
//! bytes ([`sndbuf_expand_target`]), up to `tcp_wmem[2]` (4 MiB), while
//! `tcp_should_expand_sndbuf` allows it; xsknet counts of cwnd only what
//! the path holds beyond the sender's own queue (`path_window`). Linux's
//! `sk_sndbuf` is a number in skb truesize; xsknet's send buffer is a ring
//! of payload bytes, reallocated and copied to grow ([`tcp_sndbuf_grow`]),
//! so it takes Linux's number as payload bytes (as for a Linux sender with
//! GSO, whose skbs carry little overhead; one without GSO fits about two
//! thirds of it), grows at least twofold each time (a handful of growths
//! in a connection's life), and what all rings have grown by stays under
//! the same bound as the receive rings' ([`super::mem::RingsGrown`]).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::cb::TcpCb;
use super::mem::{self, SOCK_MIN_SNDBUF};
use crate::net::Net;
use crate::stream::RingGrow;

/// `tcp_wmem[2]`: the largest send buffer autotuning grows to, bytes.
pub const TCP_WMEM_MAX: usize = 4 << 20;

/// `MAX_TCP_HEADER` (include/net/tcp.h, `L1_CACHE_ALIGN(128 + MAX_HEADER)`)
/// of the 6.18 kernel xsknet copies (`LL_MAX_HEADER` 32, no tunnels): 192.
/// Read back from it: a CUBIC connection's `sk_sndbuf` after the handshake
/// (`ss -m`, `tb`) is 46 080 for an MSS of 1500 and 87 040 for 1560, which
/// `per_mss` gives with 192 and not with 256. A distribution kernel with
/// WLAN mesh and tunnels has 320.
const MAX_TCP_HEADER: usize = 192;

/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on x86-64 (17 frags).
const SKB_SHINFO: usize = 320;

/// `SKB_DATA_ALIGN(sizeof(struct sk_buff))` on x86-64.
const SKB_STRUCT: usize = 256;

/// `tcp_sndbuf_expand`: the send buffer for `cwnd` (segments) of `mss`-byte
/// segments (`max(mss_clamp, mss_cache)`) with `reordering` (segments), in
/// bytes: two windows (`sndbuf_expand` of CUBIC and Reno: "Cubic needs 1.7
/// factor, rounded to 2") of at least `TCP_INIT_CWND` and `reordering + 1`
/// segments, each charged what a non-GSO skb costs (`per_mss`: its head
/// rounded up to a power of two, and the `sk_buff`), at most `tcp_wmem[2]`.
pub fn sndbuf_expand_target(cwnd: u32, mss: u32, reordering: u32) -> usize {
    let per_mss = (mss as usize + MAX_TCP_HEADER + SKB_SHINFO).next_power_of_two() + SKB_STRUCT;
    let nr_segs = cwnd.max(super::TCP_INIT_CWND).max(reordering.saturating_add(1)) as usize;
    (2 * nr_segs).saturating_mul(per_mss).min(TCP_WMEM_MAX)
}

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
/// writer (`sk_stream_write_space`). Autotuning is [`tcp_new_space`], after
/// the ACK's push.
pub fn tcp_check_space(net: &mut Net, cb: &mut TcpCb) {
    let tsk = cb.tsk();
    let locked = tsk.sndbuf_lock.load(Ordering::Relaxed);
    if tsk.stream.sndbuf_lim() != usize::MAX && (locked || tcp_should_expand_sndbuf(net, cb)) {
        tsk.stream.set_sndbuf_lim(usize::MAX);
    }
}

/// `tcp_data_snd_check`'s `tcp_check_space` → `tcp_new_space` for a writer
/// that found the buffer full (`SOCK_NOSPACE`): after the segment's ACK
/// and the push that followed it (`tcp_push_pending_frames`), so that
/// `tcp_should_expand_sndbuf`'s in-flight test sees the window the push
/// filled; the buffer grows ([`tcp_sndbuf_expand`]) only when the push
/// could not fill cwnd, the send buffer and not the window holding the
/// sender back. Before the push, an ACK that freed any byte always passes
/// that test. `SOCK_NOSPACE` is cleared as `sk_stream_write_space` clears
/// it, once the buffer is writeable (`__sk_stream_is_writeable`: free room
/// at least half of what is queued), and stays set until then. A grown
/// buffer wakes the writer (`sk_write_space`).
pub fn tcp_new_space(net: &mut Net, cb: &mut TcpCb) {
    let tsk = cb.tsk();
    if !tsk.stream.nospace.load(Ordering::Relaxed) {
        return;
    }
    if !tsk.sndbuf_lock.load(Ordering::Relaxed) && tcp_should_expand_sndbuf(net, cb) {
        let before = ring_capacity(cb);
        tcp_sndbuf_expand(net, cb);
        if ring_capacity(cb) != before {
            // sk_write_space: the room may make a waiting writer's buffer writeable.
            cb.sock.wq.wake_up_write_space();
        }
    }
    let (cap, queued) = (ring_capacity(cb), cb.snd_buffered() as usize);
    let stream = &cb.tsk().stream;
    if cap > 0 && stream.writeable_with(cap.saturating_sub(queued), queued) {
        stream.nospace.store(false, Ordering::Relaxed);
    }
}

/// `tcp_sndbuf_expand` for a buffer not locked by `SO_SNDBUF`: the ring
/// grown to [`sndbuf_expand_target`] for the window as it stands, when it is
/// smaller (`tcp_init_buffer_space` at the start of a connection,
/// `tcp_new_space` after).
pub fn tcp_sndbuf_expand(net: &mut Net, cb: &mut TcpCb) {
    if cb.tsk().sndbuf_lock.load(Ordering::Relaxed) {
        return;
    }
    // max(mss_clamp, mss_cache): the peer's MSS, which is ours less the
    // timestamp option (xsknet keeps no mss_clamp apart).
    let mss = cb.mss + if cb.ts.ok { super::ts_state::TCPOLEN_TSTAMP_ALIGNED } else { 0 };
    let target = sndbuf_expand_target(path_window(cb), mss, cb.sack.reordering);
    let cap = ring_capacity(cb);
    if cap == 0 || target <= cap {
        return;
    }
    tcp_sndbuf_grow(net, cb, target.max(cap.saturating_mul(2)).min(TCP_WMEM_MAX));
}

/// The part of the congestion window the path holds rather than a queue,
/// segments: `cwnd × min_rtt / srtt`, or cwnd without a minimum RTT yet
/// (`tcp_min_rtt`: RACK's with SACK, the RTT samples' without). Where
/// xsknet differs from `tcp_sndbuf_expand`, which counts all of cwnd: on a
/// path whose RTT is mostly the sender's own standing queue (a veth pair,
/// where the queue is in the loop and in the peer's backlog), two windows
/// are more queue, not more rate, and a larger ring cost 9 % of a bulk
/// send there (docs/tcp.md, "Send-buffer autotuning"); on a path whose RTT
/// is the path's, `srtt ≈ min_rtt` and this is cwnd, as Linux counts.
fn path_window(cb: &TcpCb) -> u32 {
    let (min_rtt, srtt) = (u64::from(cb.rack.min_rtt_us), u64::from(cb.srtt_us));
    if cb.rack.min_rtt_us == u32::MAX || srtt <= min_rtt {
        return cb.cwnd;
    }
    (u64::from(cb.cwnd) * min_rtt / srtt) as u32
}

/// Makes the send ring `want` bytes; `sk_sndbuf` follows. The growth is
/// charged to [`super::mem::RingsGrown`] and refused past `tcp_mem`'s
/// pressure threshold, or when the allocator refuses the ring
/// (`XskTcpSndbufGrowRefused`); a writer holding the ring at this moment
/// leaves it for the next ACK that frees room (`SOCK_NOSPACE` set again).
fn tcp_sndbuf_grow(net: &mut Net, cb: &mut TcpCb, want: usize) {
    let grow = want.saturating_sub(ring_capacity(cb));
    let limit = net.tcp.mem.rings_growth_limit();
    if !net.tcp.rings_grown.fits(grow, limit) {
        net.mib.XskTcpSndbufGrowRefused += 1;
        return;
    }
    let (Some(tsk), Some(bufs)) = (cb.sock.tcp(), cb.bufs.as_mut()) else { return };
    match tsk.stream.grow_snd(bufs, want) {
        RingGrow::Done => {
            tsk.sndbuf.store(want, Ordering::Relaxed);
            net.tcp.rings_grown.charge(&mut cb.sndbuf_charge, grow, usize::MAX);
            net.mib.XskTcpSndbufGrown += 1;
        }
        RingGrow::Busy => tsk.stream.nospace.store(true, Ordering::Relaxed),
        RingGrow::NoRing => {}
        RingGrow::NoMemory => net.mib.XskTcpSndbufGrowRefused += 1,
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

    /// Linux 6.18 here (`ss -m` after a CUBIC handshake): `tb` 46080 for an MSS
    /// of 1500 (per_mss 2304), 87040 for 1560 (4352).
    #[test]
    fn the_expand_target_is_two_windows_of_linux_s_per_segment_cost() {
        assert_eq!(sndbuf_expand_target(10, 1500, 3), 46_080);
        assert_eq!(sndbuf_expand_target(10, 1560, 3), 87_040);
        assert_eq!(sndbuf_expand_target(2, 1460, 3), 46_080, "at least TCP_INIT_CWND segments");
        assert_eq!(sndbuf_expand_target(10, 1460, 20), 2 * 21 * 2304, "at least reordering + 1");
        assert_eq!(sndbuf_expand_target(100, 1460, 3), 460_800);
        assert_eq!(sndbuf_expand_target(5000, 1460, 3), TCP_WMEM_MAX, "tcp_wmem[2]");
        assert_eq!(sndbuf_expand_target(u32::MAX, 9000, u32::MAX), TCP_WMEM_MAX, "no overflow");
    }

    /// `tcp_new_space` after the push: a full window in flight means cwnd, not the buffer,
    /// holds the sender back (no growth, `SOCK_NOSPACE` kept); fewer in flight than cwnd
    /// grows the ring and, now writeable, clears the flag; a writeable buffer clears it.
    #[test]
    fn the_send_buffer_grows_only_when_the_push_cannot_fill_cwnd() {
        let route = crate::route::Route { addr: std::net::Ipv4Addr::new(10, 0, 0, 2), prefix_len: 24, gateway: None };
        let mut net = Net::new(crate::wire::EthernetAddress([2, 0, 0, 0, 0, 2]), route, 64, 0, 64);
        net.tcp.mem = mem::TcpMem::new(TcpMemLimits { min: 1 << 20, pressure: 1 << 20, max: 1 << 21 });
        let mut cb = TcpCb::for_tests(CongAlgo::Reno);
        cb.bufs = Some(cb.tsk().stream.attach_bufs(4096, 65536));
        // Two windows of 20 segments of 2304 bytes: 92160, more than the ring.
        (cb.cwnd, cb.mss) = (20, 1000);
        let stream = &cb.tsk().stream;
        assert_eq!(stream.write(&[7; 70_000]), 65536);
        assert!(stream.nospace.load(Ordering::Relaxed), "a short write");
        // The push filled cwnd: 20 segments in flight.
        cb.snd_nxt = cb.snd_una.wrapping_add(20_000);
        tcp_new_space(&mut net, &mut cb);
        assert_eq!((ring_capacity(&cb), net.mib.XskTcpSndbufGrown), (65536, 0), "cwnd-limited");
        assert!(cb.tsk().stream.nospace.load(Ordering::Relaxed), "kept: the buffer is still full");
        // The push could not fill cwnd: the buffer holds the sender back.
        cb.snd_nxt = cb.snd_una.wrapping_add(12_000);
        tcp_new_space(&mut net, &mut cb);
        assert_eq!((ring_capacity(&cb), net.mib.XskTcpSndbufGrown), (131_072, 1), "at least doubled");
        assert!(!cb.tsk().stream.nospace.load(Ordering::Relaxed), "writeable: cleared");
        // Set again, with room at least half of what is queued and a full window: cleared
        // (sk_stream_write_space), nothing grown.
        cb.tsk().stream.nospace.store(true, Ordering::Relaxed);
        cb.snd_nxt = cb.snd_una.wrapping_add(20_000);
        tcp_new_space(&mut net, &mut cb);
        assert_eq!((ring_capacity(&cb), net.mib.XskTcpSndbufGrown), (131_072, 1));
        assert!(!cb.tsk().stream.nospace.load(Ordering::Relaxed));
    }

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
        tcp_check_space(&mut net, &mut cb);
        assert_eq!(cb.tsk().stream.sndbuf_lim(), 8192, "no expansion under pressure");
        assert_eq!(cb.tsk().stream.write(&[7; 8192]), 8192 - 4097, "the moderated buffer's room");
        ringbuf::traits::Consumer::skip(&mut cb.bufs.as_mut().unwrap().snd, 8192);
        tcp_wmem_free(&mut net, &mut cb, 8192, t1);
        assert_eq!((cb.mem.wmem_queued, net.tcp.mem.allocated), (0, 0), "bytes never charged are not uncharged");
        assert!(!net.tcp.mem.under_pressure());
        assert_eq!(net.mib.TcpExtTCPMemoryPressuresChrono, 30);
        tcp_check_space(&mut net, &mut cb);
        assert_eq!(cb.tsk().stream.sndbuf_lim(), usize::MAX, "grown back");
        assert!(cb.tsk().stream.writeable());
        mem::sk_mem_release(&mut net.tcp.mem, &mut net.mib, &mut cb.mem, Some(t1));
        assert_eq!(net.tcp.mem.allocated, 0);
    }
}
