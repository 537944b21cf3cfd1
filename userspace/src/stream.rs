//! The byte stream of a TCP sock, shared by the application and the loop:
//! the connection's state word and its two byte buffers.
//!
//! Linux keeps a TCP sock's data as `sk_buff`s on `sk_receive_queue` and
//! `sk_write_queue`, under the socket lock. xsknet copies the data out of
//! UMEM frames into two byte rings instead (why: `docs/tcp.md`):
//!
//! * the **receive buffer**: the loop writes in-order data (`tcp_data_queue`),
//!   the application reads it (`tcp_recvmsg`);
//! * the **send buffer**: the application writes (`tcp_sendmsg`), the loop
//!   reads segments out of it at any offset and frees bytes only when the
//!   peer acknowledges them (`tcp_clean_rtx_queue`), so the bytes of a
//!   retransmission are still there.
//!
//! Each ring is single-producer single-consumer and lock-free. The loop's
//! halves ([`LoopBufs`]) live in the connection's control block, which only
//! the loop touches; the application's halves live here behind a mutex that
//! only application calls take (Linux's `lock_sock`), never the loop once
//! the connection is set up. The state word is written by the loop and read
//! by anyone (`sk_state`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// TCP states, numbered as Linux numbers them (`include/net/tcp_states.h`),
/// the eleven of RFC 9293 §3.3.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum TcpState {
    /// Data flows both ways.
    Established = 1,
    /// Our SYN is out, no answer yet.
    SynSent = 2,
    /// A SYN came and our SYN-ACK is out.
    SynRecv = 3,
    /// We closed; our FIN is not yet acknowledged.
    FinWait1 = 4,
    /// Our FIN is acknowledged; waiting for the peer's.
    FinWait2 = 5,
    /// Both FINs done; waiting 2 MSL for strays.
    TimeWait = 6,
    /// No connection.
    Close = 7,
    /// The peer closed; we have not.
    CloseWait = 8,
    /// The peer closed, then we did; our FIN is not yet acknowledged.
    LastAck = 9,
    /// Waiting for SYNs.
    Listen = 10,
    /// Both closed at once; our FIN is not yet acknowledged.
    Closing = 11,
}

impl TcpState {
    /// Every state, in Linux's order.
    pub const ALL: [TcpState; 11] = [
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::Closing,
    ];

    /// The state numbered `v`; [`TcpState::Close`] for anything else.
    pub fn from_u8(v: u8) -> TcpState {
        TcpState::ALL.get(usize::from(v).wrapping_sub(1)).copied().unwrap_or(TcpState::Close)
    }

    /// The name `ss` prints (`ESTAB`, `SYN-SENT`, …).
    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTAB",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynRecv => "SYN-RECV",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Close => "UNCONN",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
        }
    }
}

/// The loop's halves of a connection's buffers: it writes received data and
/// reads data to send.
pub struct LoopBufs {
    /// Producer side of the receive buffer.
    pub rcv: HeapProd<u8>,
    /// Consumer side of the send buffer: bytes from `snd_una` on.
    pub snd: HeapCons<u8>,
}

/// How [`StreamSock::grow_rcv`] or [`StreamSock::grow_snd`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingGrow {
    /// The ring has the size asked for (or was larger already).
    Done,
    /// The application holds the ring (reading or writing): try again later.
    Busy,
    /// The connection has no ring (over, or never set up).
    NoRing,
    /// The allocator refused the new ring: the old one stays.
    NoMemory,
}

/// The application's half of a ring, unless the application holds it at
/// this moment (the loop never waits for it).
fn try_hold<T>(half: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match half.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// A ring of `cap` bytes holding `bytes` (a ring's two slices, in order),
/// split into its halves; `None` when the allocator refuses it.
fn ring_holding(cap: usize, (a, b): (&[u8], &[u8])) -> Option<(HeapProd<u8>, HeapCons<u8>)> {
    let (mut prod, cons) = HeapRb::<u8>::try_new(cap).ok()?.split();
    prod.push_slice(a);
    prod.push_slice(b);
    Some((prod, cons))
}

/// The shared part of a TCP sock: state word, buffers, shutdown flags.
pub struct StreamSock {
    state: AtomicU8,
    rcv: Mutex<Option<HeapCons<u8>>>,
    snd: Mutex<Option<HeapProd<u8>>>,
    /// The peer's FIN is in sequence (`RCV_SHUTDOWN` from `tcp_fin`): a read
    /// of an empty buffer returns 0.
    pub(crate) fin_rcvd: AtomicBool,
    /// `shutdown(SHUT_RD)` or `close()`: reads return 0.
    pub(crate) rd_shut: AtomicBool,
    /// `tcp_done` ran (a RST, a refused or timed-out connect, the
    /// retransmission limit, the end of a connection): `sk_shutdown` is
    /// `SHUTDOWN_MASK`, both ways shut. Cleared by the next `connect`.
    pub(crate) done: AtomicBool,
    /// The loop holds a delayed ACK that a read draining the buffer may
    /// send at once (`tcp_cleanup_rbuf`): set when the delayed-ACK timer is
    /// armed, cleared when an ACK goes. A read that empties the buffer with
    /// it set has the loop look (`Sock::schedule_xmit`).
    pub(crate) ack_on_read: AtomicBool,
    /// A send found the buffer full and copied less than it was given, or
    /// nothing (`SOCK_NOSPACE`, set where Linux's `sk_stream_wait_memory`
    /// and `tcp_sendmsg`'s `EAGAIN` set it): when ACKs free room, the loop
    /// may grow the buffer (`tcp_new_space`). Cleared by the loop.
    pub(crate) nospace: AtomicBool,
    /// `shutdown(SHUT_WR)` or `close()` (`SEND_SHUTDOWN`): the loop sends a
    /// FIN after the data, sends fail with `EPIPE`.
    pub(crate) wr_shut: AtomicBool,
    /// Bytes the application has written so far, as of the end of its last
    /// send: the loop sets PSH on the segment that carries the last of them.
    pub(crate) pushed: AtomicU64,
    /// When the oldest unread data came off the rx ring (ns since the
    /// stack's epoch; 0: none waits): the rx-to-read latency of a stream.
    pub(crate) rx_ns: AtomicU64,
    /// The send stamp of a sampled write not yet sent (ns since the stack's
    /// epoch; 0: none): set by the application when 0, taken by the loop.
    pub(crate) tx_ns: AtomicU64,
    /// Where that write's first byte lies: bytes written before it.
    pub(crate) tx_off: AtomicU64,
    /// `sk_sndbuf` as the loop sets it under memory pressure
    /// (`sk_stream_moderate_sndbuf`), bytes; `usize::MAX`: the whole send
    /// buffer. A send copies no more than takes the bytes queued to it
    /// (`sk_stream_memory_free`).
    pub(crate) sndbuf_lim: AtomicUsize,
}

impl Default for StreamSock {
    fn default() -> Self {
        StreamSock {
            state: AtomicU8::new(TcpState::Close as u8),
            rcv: Mutex::new(None),
            snd: Mutex::new(None),
            fin_rcvd: AtomicBool::new(false),
            rd_shut: AtomicBool::new(false),
            done: AtomicBool::new(false),
            ack_on_read: AtomicBool::new(false),
            nospace: AtomicBool::new(false),
            wr_shut: AtomicBool::new(false),
            pushed: AtomicU64::new(0),
            rx_ns: AtomicU64::new(0),
            tx_ns: AtomicU64::new(0),
            tx_off: AtomicU64::new(0),
            sndbuf_lim: AtomicUsize::new(usize::MAX),
        }
    }
}

impl StreamSock {
    /// The connection's state.
    #[inline]
    pub fn state(&self) -> TcpState {
        TcpState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Loop side: records a new state.
    pub(crate) fn set_state(&self, s: TcpState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Loop side: makes the two buffers, `rcvbuf` and `sndbuf` bytes, keeps
    /// the application's halves and returns the loop's.
    pub(crate) fn attach_bufs(&self, rcvbuf: usize, sndbuf: usize) -> LoopBufs {
        let (rcv_prod, rcv_cons) = HeapRb::<u8>::new(rcvbuf.max(1)).split();
        let (snd_prod, snd_cons) = HeapRb::<u8>::new(sndbuf.max(1)).split();
        *self.rcv.lock().unwrap_or_else(|e| e.into_inner()) = Some(rcv_cons);
        *self.snd.lock().unwrap_or_else(|e| e.into_inner()) = Some(snd_prod);
        LoopBufs { rcv: rcv_prod, snd: snd_cons }
    }

    /// Loop side: makes the receive ring `cap` bytes when it is smaller,
    /// moving the bytes that wait in it, in order, to the new one
    /// (receive-buffer autotuning, [`crate::ipv4::tcp::rcvbuf`]). Nothing
    /// changes when the application is reading at this moment (the loop
    /// never waits for it: the caller tries again later), when the
    /// connection has no ring, or when the memory cannot be had.
    pub(crate) fn grow_rcv(&self, bufs: &mut LoopBufs, cap: usize) -> RingGrow {
        let Some(mut guard) = try_hold(&self.rcv) else { return RingGrow::Busy };
        let Some(cons) = guard.as_mut() else { return RingGrow::NoRing };
        if cap <= cons.capacity().get() {
            return RingGrow::Done;
        }
        let Some((prod, new_cons)) = ring_holding(cap, cons.as_slices()) else { return RingGrow::NoMemory };
        *guard = Some(new_cons);
        bufs.rcv = prod;
        RingGrow::Done
    }

    /// Loop side: makes the send ring `cap` bytes when it is smaller, moving
    /// the bytes in it (from `snd_una` on), in order, to the new one
    /// (send-buffer autotuning, `tcp_sndbuf_expand` in
    /// [`crate::ipv4::tcp::wmem`]). As [`Self::grow_rcv`]: nothing changes
    /// when the application is writing at this moment (the caller tries
    /// again later), when the connection has no ring, or when the memory
    /// cannot be had.
    pub(crate) fn grow_snd(&self, bufs: &mut LoopBufs, cap: usize) -> RingGrow {
        let Some(mut guard) = try_hold(&self.snd) else { return RingGrow::Busy };
        let Some(prod) = guard.as_mut() else { return RingGrow::NoRing };
        if cap <= prod.capacity().get() {
            return RingGrow::Done;
        }
        // With the writer's half held, everything written is in the loop's half.
        let Some((new_prod, cons)) = ring_holding(cap, bufs.snd.as_slices()) else { return RingGrow::NoMemory };
        *guard = Some(new_prod);
        bufs.snd = cons;
        RingGrow::Done
    }

    /// The send ring's size in bytes (0 before the connection has one).
    pub fn snd_capacity(&self) -> usize {
        self.snd.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |p| p.capacity().get())
    }

    /// Application side: copies received bytes into `buf`; returns how many
    /// (0 when the buffer is empty or not made yet) and, when the read takes
    /// the oldest waiting data, that data's rx stamp (0 otherwise).
    #[cfg(test)]
    pub(crate) fn read(&self, buf: &mut [u8]) -> (usize, u64) {
        let (n, _, rx_ns) = self.read_counted(buf);
        (n, rx_ns)
    }

    /// [`Self::read`] that also says, from the same look at the buffer
    /// (one lock: `recv()` on an empty buffer is the run-to-completion
    /// servers' most frequent call), what waited before it and what the
    /// buffer holds: `(read, (queued before, capacity), rx stamp)`.
    pub(crate) fn read_counted(&self, buf: &mut [u8]) -> (usize, (usize, usize), u64) {
        let (n, sizes) = match self.rcv.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(c) => {
                let sizes = (c.occupied_len(), c.capacity().get());
                (if sizes.0 == 0 { 0 } else { c.pop_slice(buf) }, sizes)
            }
            None => (0, (0, 0)),
        };
        let rx_ns = if n > 0 { self.rx_ns.swap(0, Ordering::AcqRel) } else { 0 };
        (n, sizes, rx_ns)
    }

    /// Loop side: data arrived in the batch stamped `rx_ns`; kept only if no
    /// older data waits.
    #[inline]
    pub(crate) fn stamp_rx(&self, rx_ns: u64) {
        if self.rx_ns.load(Ordering::Relaxed) == 0 {
            self.rx_ns.store(rx_ns, Ordering::Release);
        }
    }

    /// Application side: drops everything received and unread; returns how
    /// many bytes (`close()` with unread data resets the connection).
    pub(crate) fn discard_unread(&self) -> usize {
        match self.rcv.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(c) => c.clear(),
            None => 0,
        }
    }

    /// Bytes received and not read (`Recv-Q`).
    pub fn rcv_queued(&self) -> usize {
        self.rcv.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |c| c.occupied_len())
    }

    /// The receive buffer's size in bytes (0 before the connection has one).
    pub fn rcv_capacity(&self) -> usize {
        self.rcv.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |c| c.capacity().get())
    }

    /// Application side: copies as much of `data` as the send buffer has
    /// room for; returns how many bytes, and records them as pushed.
    #[cfg(test)]
    pub(crate) fn write(&self, data: &[u8]) -> usize {
        self.write_stamped(data, 0)
    }

    /// [`Self::write`] of a send stamped `tstamp` (0: not sampled): the
    /// stamp and the offset of the first byte written are kept for the loop
    /// unless an earlier sampled write is still unsent.
    pub(crate) fn write_stamped(&self, data: &[u8], tstamp: u64) -> usize {
        let mut snd = self.snd.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = snd.as_mut() else { return 0 };
        let room = self.wspace(p.vacant_len(), p.occupied_len());
        let n = p.push_slice(&data[..data.len().min(room)]);
        if n < data.len() {
            self.nospace.store(true, Ordering::Relaxed);
        }
        if n > 0 {
            let off = self.pushed.fetch_add(n as u64, Ordering::Release);
            if tstamp != 0 && self.tx_ns.load(Ordering::Acquire) == 0 {
                // Under the lock: one writer at a time; the loop reads the
                // offset after it sees the stamp.
                self.tx_off.store(off, Ordering::Relaxed);
                self.tx_ns.store(tstamp, Ordering::Release);
            }
        }
        n
    }

    /// Bytes written and not yet acknowledged by the peer (`Send-Q`).
    pub fn snd_queued(&self) -> usize {
        self.snd.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |p| p.occupied_len())
    }

    /// Room in the send buffer, bytes (0 before the connection has one),
    /// within `sk_sndbuf` as memory pressure left it.
    pub fn snd_room(&self) -> usize {
        let snd = self.snd.lock().unwrap_or_else(|e| e.into_inner());
        snd.as_ref().map_or(0, |p| self.wspace(p.vacant_len(), p.occupied_len()))
    }

    /// `sk_stream_wspace`: what a send may still queue, the ring's free
    /// space within `sk_sndbuf`.
    #[inline]
    fn wspace(&self, vacant: usize, occupied: usize) -> usize {
        vacant.min(self.sndbuf_lim.load(Ordering::Acquire).saturating_sub(occupied))
    }

    /// `sk_sndbuf` as the loop last set it (`usize::MAX`: the whole ring).
    pub fn sndbuf_lim(&self) -> usize {
        self.sndbuf_lim.load(Ordering::Acquire)
    }

    /// Loop side: sets `sk_sndbuf` (`usize::MAX`: the whole ring).
    pub(crate) fn set_sndbuf_lim(&self, bytes: usize) {
        self.sndbuf_lim.store(bytes, Ordering::Release);
    }

    /// Whether a send would make progress as `sk_stream_is_writeable` judges
    /// it: free space (within `sk_sndbuf`) at least half of what is queued.
    pub fn writeable(&self) -> bool {
        let snd = self.snd.lock().unwrap_or_else(|e| e.into_inner());
        snd.as_ref().is_some_and(|p| self.writeable_with(p.vacant_len(), p.occupied_len()))
    }

    /// [`Self::writeable`] for a ring with `vacant` bytes free and
    /// `occupied` queued, as the loop sees its half (`tcp_new_space`
    /// clearing `SOCK_NOSPACE`).
    pub(crate) fn writeable_with(&self, vacant: usize, occupied: usize) -> bool {
        let w = self.wspace(vacant, occupied);
        w > 0 && w >= occupied / 2
    }
}

/// A congestion-control algorithm (`TCP_CONGESTION`,
/// `net.ipv4.tcp_congestion_control`): CUBIC, Linux's default, or Reno.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongAlgo {
    /// CUBIC with HyStart (net/ipv4/tcp_cubic.c, RFC 9438).
    #[default]
    Cubic,
    /// Reno: halve on loss, one segment per window (net/ipv4/tcp_cong.c, RFC 5681).
    Reno,
}

impl CongAlgo {
    /// The name `TCP_CONGESTION` and `ss -i` use.
    pub fn name(self) -> &'static str {
        match self {
            CongAlgo::Cubic => "cubic",
            CongAlgo::Reno => "reno",
        }
    }

    /// The algorithm of `name`, as `setsockopt(TCP_CONGESTION)` takes it.
    ///
    /// # Errors
    ///
    /// `ENOENT` for a name that is no algorithm of ours, as Linux answers
    /// for one not loaded.
    pub fn from_name(name: &str) -> Result<CongAlgo, crate::errno::Errno> {
        match name {
            "cubic" => Ok(CongAlgo::Cubic),
            "reno" => Ok(CongAlgo::Reno),
            _ => Err(crate::errno::Errno::ENOENT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_linux_numbers() {
        for s in TcpState::ALL {
            assert_eq!(TcpState::from_u8(s as u8), s);
        }
        assert_eq!(TcpState::Established as u8, 1);
        assert_eq!(TcpState::Listen as u8, 10);
        assert_eq!(TcpState::from_u8(0), TcpState::Close);
        assert_eq!(TcpState::from_u8(200), TcpState::Close);
    }

    #[test]
    fn bytes_flow_through_both_buffers() {
        let s = StreamSock::default();
        assert_eq!(s.write(b"abc"), 0, "no buffer before the connection");
        let mut lb = s.attach_bufs(8, 4);
        assert_eq!(s.write(b"hello"), 4, "send buffer holds 4");
        assert_eq!(s.pushed.load(Ordering::Relaxed), 4);
        assert_eq!(s.snd_queued(), 4);
        let (a, b) = lb.snd.as_slices();
        assert_eq!([a, b].concat(), b"hell");
        lb.snd.skip(2);
        assert_eq!(s.snd_room(), 2);
        assert_eq!(lb.rcv.push_slice(b"0123456789"), 8);
        let mut buf = [0u8; 5];
        s.stamp_rx(77);
        s.stamp_rx(99);
        assert_eq!(s.read(&mut buf), (5, 77), "the oldest data's stamp, once");
        assert_eq!(&buf, b"01234");
        assert_eq!(s.read(&mut buf[..1]), (1, 0));
        assert_eq!(s.rcv_queued(), 2);
        assert_eq!(s.discard_unread(), 2);
    }

    #[test]
    fn a_grown_receive_ring_keeps_the_waiting_bytes_in_order() {
        let s = StreamSock::default();
        let mut lb = s.attach_bufs(8, 4);
        // Wrapped: 6 in, 4 read, 6 more in (the ring's end crossed).
        assert_eq!(lb.rcv.push_slice(b"abcdef"), 6);
        let mut buf = [0u8; 4];
        assert_eq!(s.read(&mut buf).0, 4);
        assert_eq!(lb.rcv.push_slice(b"ghijkl"), 6);
        assert_eq!(lb.rcv.vacant_len(), 0);
        assert_eq!(s.grow_rcv(&mut lb, 32), RingGrow::Done);
        assert_eq!((s.rcv_capacity(), s.rcv_queued(), lb.rcv.vacant_len()), (32, 8, 24));
        assert_eq!(lb.rcv.push_slice(b"mn"), 2, "the loop writes to the new ring");
        let mut all = [0u8; 16];
        assert_eq!(s.read(&mut all).0, 10);
        assert_eq!(&all[..10], b"efghijklmn");
        assert_eq!(s.grow_rcv(&mut lb, 16), RingGrow::Done, "never shrinks: nothing to do");
        assert_eq!(s.grow_rcv(&mut lb, usize::MAX / 2), RingGrow::NoMemory, "refused by the allocator: no abort");
        assert_eq!(s.rcv_capacity(), 32);
    }

    #[test]
    fn a_grown_send_ring_keeps_the_unacknowledged_bytes_in_order() {
        let s = StreamSock::default();
        let mut lb = s.attach_bufs(4, 8);
        // Wrapped: 6 written, 4 acknowledged, 6 more written (the ring's end crossed).
        assert_eq!(s.write(b"abcdef"), 6);
        lb.snd.skip(4);
        assert!(!s.nospace.load(Ordering::Relaxed));
        assert_eq!(s.write(b"ghijklmn"), 6, "a short write: the ring is full");
        assert!(s.nospace.swap(false, Ordering::Relaxed), "the writer found no room");
        assert_eq!(s.grow_snd(&mut lb, 32), RingGrow::Done);
        assert_eq!((s.snd_capacity(), s.snd_queued(), s.snd_room()), (32, 8, 24));
        let (a, b) = lb.snd.as_slices();
        assert_eq!([a, b].concat(), b"efghijkl", "what was unacknowledged, in order, in the loop's half");
        assert_eq!(s.write(b"mn"), 2, "the application writes to the new ring");
        lb.snd.skip(8);
        let (a, b) = lb.snd.as_slices();
        assert_eq!([a, b].concat(), b"mn");
        assert_eq!(s.pushed.load(Ordering::Relaxed), 14, "the count of bytes written goes on");
        assert_eq!(s.grow_snd(&mut lb, 16), RingGrow::Done, "never shrinks: nothing to do");
        assert_eq!(s.grow_snd(&mut lb, usize::MAX / 2), RingGrow::NoMemory, "refused by the allocator: no abort");
        let held = s.snd.lock().unwrap();
        assert_eq!(s.grow_snd(&mut lb, 64), RingGrow::Busy, "the loop does not wait for a writer");
        drop(held);
        assert_eq!(s.snd_capacity(), 32);
    }

    #[test]
    fn the_ring_is_not_grown_while_the_application_holds_it() {
        let s = StreamSock::default();
        let mut lb = s.attach_bufs(8, 4);
        let held = s.rcv.lock().unwrap();
        assert_eq!(s.grow_rcv(&mut lb, 32), RingGrow::Busy, "the loop does not wait for a reader");
        drop(held);
        assert_eq!(s.rcv_capacity(), 8);
        assert_eq!(s.grow_rcv(&mut lb, 32), RingGrow::Done);
        assert_eq!(s.rcv_capacity(), 32);
    }
}
