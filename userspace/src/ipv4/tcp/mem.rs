//! TCP's memory accounting (net/core/sock.c `__sk_mem_schedule`,
//! `__sk_mem_raise_allocated`, `__sk_mem_reduce_allocated`,
//! `sk_forced_mem_schedule`; include/net/sock.h `sk_mem_charge`,
//! `sk_mem_uncharge`, `sk_mem_reclaim`; net/ipv4/tcp.c `tcp_init_mem`,
//! `tcp_enter_memory_pressure`, `tcp_leave_memory_pressure`): the stage that
//! decides whether a sock may hold more bytes, received ones
//! (`SK_MEM_RECV`) or ones written to send (`SK_MEM_SEND`), given what all
//! TCP socks hold together (`tcp_memory_allocated`) and `net.ipv4.tcp_mem`.
//!
//! Every sock keeps a reserve of bytes it may still queue
//! (`sk_forward_alloc`); past it, it asks for whole pages from the stack's
//! total, which is weighed against the three thresholds of `tcp_mem`: below
//! `min` pressure ends, above `pressure` it starts (`TcpExtTCPMemoryPressures`),
//! above `max` the pages are refused. What a sock frees goes back to its
//! reserve, and whole pages of the reserve go back to the total. The
//! accounting is in plain integers owned by the loop: no atomics on the
//! per-packet path (Linux's per-CPU reserve, `net.core.mem_pcpu_rsv`, exists
//! to avoid a shared atomic that xsknet does not have).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::snmp::Mib;

/// `PAGE_SIZE`: the unit of `tcp_mem` and of `tcp_memory_allocated`.
pub const PAGE_SIZE: usize = 4096;

/// `tcp_rmem[0]`: under memory pressure, a sock whose receive queues hold
/// less than this may still queue (`sk_get_rmem0`, "guarantee minimum
/// buffer size under pressure").
pub const TCP_RMEM_MIN: usize = 4096;

/// `tcp_wmem[0]`: under memory pressure, a sock whose write queue holds
/// less than this may still queue (`sk_get_wmem0`).
pub const TCP_WMEM_MIN: usize = 4096;

/// `SOCK_MIN_SNDBUF` (include/net/sock.h): `2 × TCP_SKB_MIN_TRUESIZE`, two
/// skbs of 2048 bytes and their 256-byte `struct sk_buff` on x86-64; the
/// smallest `sk_sndbuf` memory pressure moderates a send buffer to.
pub const SOCK_MIN_SNDBUF: usize = 2 * (2048 + 256);

/// Which side of a sock asks for memory (`SK_MEM_RECV`, `SK_MEM_SEND`):
/// each has its own guaranteed minimum under pressure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkMemKind {
    /// Received data (`tcp_rmem[0]` guaranteed).
    Recv,
    /// Data written to send (`tcp_wmem[0]` guaranteed).
    Send,
}

/// `sk_mem_pages`: pages that `bytes` need, rounded up.
#[inline]
pub fn sk_mem_pages(bytes: usize) -> u64 {
    bytes.div_ceil(PAGE_SIZE) as u64
}

/// `net.ipv4.tcp_mem`: three thresholds in pages of 4096 bytes on what all
/// TCP socks together may hold (`tcp_memory_allocated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpMemLimits {
    /// Below this, there is no pressure (`tcp_mem[0]`).
    pub min: u64,
    /// Above this, pressure starts (`tcp_mem[1]`).
    pub pressure: u64,
    /// Above this, no sock gets more pages (`tcp_mem[2]`).
    pub max: u64,
}

impl TcpMemLimits {
    /// `tcp_init_mem` (net/ipv4/tcp.c) applied to xsknet's buffer budget.
    /// Linux takes one sixteenth of the machine's free buffer pages as
    /// `limit` (at least 128) and sets `min` = limit / 4 × 3, `pressure` =
    /// limit, `max` = 2 × min: 4.7 %, 6.25 % and 9.4 % of memory. xsknet's
    /// TCP data lives in heap buffers, not in the UMEM (docs/tcp.md, "data is
    /// copied out of frames"), and those buffers are bounded by what its
    /// sockets may have: the same formula runs on `max_fds` sockets each
    /// holding a full receive buffer (`rcvbuf`, the ring's slack included)
    /// and a full send buffer (`sndbuf`), in pages. With the defaults (1024
    /// descriptors, 128 KiB + 4 KiB and 256 KiB) that is 99328 pages, so
    /// `tcp_mem` is 4656 6208 9312 (18, 24 and 36 MiB).
    pub fn from_budget(max_fds: usize, rcvbuf: usize, sndbuf: usize) -> TcpMemLimits {
        let pages = (max_fds as u64).saturating_mul(sk_mem_pages(rcvbuf) + sk_mem_pages(sndbuf));
        let limit = (pages / 16).max(128);
        let min = limit / 4 * 3;
        TcpMemLimits { min, pressure: limit, max: min * 2 }
    }

    /// `MIN,PRESSURE,MAX` in pages, as `sysctl net.ipv4.tcp_mem` takes them
    /// (commas or white space between).
    ///
    /// # Errors
    ///
    /// A message when there are not three numbers, or when they do not
    /// rise (`min ≤ pressure ≤ max`; Linux takes any three, but a `max`
    /// below `pressure` would refuse pages before pressure starts).
    pub fn parse(s: &str) -> Result<TcpMemLimits, String> {
        let v: Vec<u64> = s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().map_err(|_| format!("{p:?}: not a number of pages")))
            .collect::<Result<_, _>>()?;
        let [min, pressure, max] = v[..] else {
            return Err(format!("{s:?}: expected MIN,PRESSURE,MAX in pages of 4096 bytes"));
        };
        if !(min <= pressure && pressure <= max) || max == 0 {
            return Err(format!("{s:?}: must be MIN <= PRESSURE <= MAX, MAX above 0"));
        }
        Ok(TcpMemLimits { min, pressure, max })
    }
}

/// The stack's TCP memory: `tcp_mem`, `tcp_memory_allocated` and
/// `tcp_memory_pressure`.
#[derive(Clone, Debug)]
pub struct TcpMem {
    /// `net.ipv4.tcp_mem`.
    pub limits: TcpMemLimits,
    /// `tcp_memory_allocated`: pages all TCP socks hold (their queued bytes
    /// and reserves), as `/proc/net/sockstat`'s `TCP: mem` shows it.
    pub allocated: u64,
    /// `tcp_memory_pressure`: when pressure started (`None`: no pressure).
    pressure_since: Option<Instant>,
    /// The loop's time at the last accounting event, for a release that
    /// comes without one (`tcp_done`).
    last_now: Option<Instant>,
}

impl TcpMem {
    /// No page allocated, no pressure, `limits`.
    pub fn new(limits: TcpMemLimits) -> TcpMem {
        TcpMem { limits, allocated: 0, pressure_since: None, last_now: None }
    }

    /// The loop's time as of the last accounting event (or the start of
    /// pressure; `None` before any).
    pub fn clock(&self) -> Option<Instant> {
        self.last_now.or(self.pressure_since)
    }

    /// The bound of what all connections' rings may grow by together
    /// ([`RingsGrown`]): `tcp_mem`'s pressure threshold, in bytes.
    pub fn rings_growth_limit(&self) -> usize {
        usize::try_from(self.limits.pressure.saturating_mul(PAGE_SIZE as u64)).unwrap_or(usize::MAX)
    }

    /// `tcp_under_memory_pressure`.
    #[inline]
    pub fn under_pressure(&self) -> bool {
        self.pressure_since.is_some()
    }

    /// `tcp_enter_memory_pressure`: counts `TcpExtTCPMemoryPressures` once
    /// per episode.
    pub fn enter_memory_pressure(&mut self, mib: &mut Mib, now: Instant) {
        self.last_now = Some(now);
        if self.pressure_since.is_none() {
            self.pressure_since = Some(now);
            mib.TcpExtTCPMemoryPressures += 1;
        }
    }

    /// `tcp_leave_memory_pressure`: adds the episode's length in
    /// milliseconds to `TcpExtTCPMemoryPressuresChrono`.
    pub fn leave_memory_pressure(&mut self, mib: &mut Mib, now: Instant) {
        self.last_now = Some(now);
        if let Some(since) = self.pressure_since.take() {
            mib.TcpExtTCPMemoryPressuresChrono += now.saturating_duration_since(since).as_millis() as u64;
        }
    }

    /// `sk_memory_allocated_sub` + `__sk_mem_reduce_allocated`: `pages`
    /// given back; pressure ends once the total is below `min`.
    fn reduce_allocated(&mut self, mib: &mut Mib, pages: u64, now: Option<Instant>) {
        self.allocated = self.allocated.saturating_sub(pages);
        mib.XskSockstatTcpMem = self.allocated;
        if self.allocated < self.limits.min {
            if let Some(now) = now.or(self.clock()) {
                self.leave_memory_pressure(mib, now);
            }
        }
    }
}

/// A sock's share of the accounting (`sk_forward_alloc`, `sk_rmem_alloc`,
/// `sk_wmem_queued`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkMem {
    /// `sk_forward_alloc`: bytes this sock holds pages for and may still
    /// queue without asking.
    pub forward_alloc: usize,
    /// `sk_rmem_alloc`: received bytes charged, in the receive buffer and
    /// the out-of-order queue.
    pub rmem_alloc: usize,
    /// Of those, the bytes charged for the receive buffer (the rest are out
    /// of order): what the reader takes out is uncharged against it.
    pub rcvq: usize,
    /// `sk_wmem_queued`: bytes written to send and charged, the write queue
    /// and the retransmission queue (from `snd_una` to `write_seq`).
    pub wmem_queued: usize,
}

impl SkMem {
    /// Pages this sock holds of the total: its charged bytes and reserve.
    pub fn pages(&self) -> u64 {
        ((self.rmem_alloc + self.wmem_queued + self.forward_alloc) / PAGE_SIZE) as u64
    }
}

/// `sk_rmem_schedule`: whether `size` more received bytes may be charged to
/// `sk`, asking the total for the pages the reserve lacks. `rcvbuf` is the
/// sock's receive buffer, `nr_socks` the TCP socks there are
/// (`tcp_sockets_allocated`, for the fair share under pressure).
pub fn sk_rmem_schedule(
    mem: &mut TcpMem,
    mib: &mut Mib,
    sk: &mut SkMem,
    size: usize,
    nr_socks: usize,
    now: Instant,
) -> bool {
    sk_mem_schedule(mem, mib, sk, size, SkMemKind::Recv, nr_socks, now)
}

/// `sk_wmem_schedule`: whether `size` more bytes written to send may be
/// charged to `sk` (`__sk_mem_schedule` with `SK_MEM_SEND`). The caller
/// handles a refusal as `__sk_mem_raise_allocated`'s `suppress_allocation`
/// does for a stream sock (`super::wmem`).
pub fn sk_wmem_schedule(
    mem: &mut TcpMem,
    mib: &mut Mib,
    sk: &mut SkMem,
    size: usize,
    nr_socks: usize,
    now: Instant,
) -> bool {
    sk_mem_schedule(mem, mib, sk, size, SkMemKind::Send, nr_socks, now)
}

/// `__sk_mem_schedule`: the pages the reserve lacks for `size` bytes, asked of the total.
fn sk_mem_schedule(
    mem: &mut TcpMem,
    mib: &mut Mib,
    sk: &mut SkMem,
    size: usize,
    kind: SkMemKind,
    nr_socks: usize,
    now: Instant,
) -> bool {
    if size <= sk.forward_alloc {
        return true;
    }
    let delta = size - sk.forward_alloc;
    let amt = sk_mem_pages(delta);
    sk.forward_alloc += amt as usize * PAGE_SIZE;
    if sk_mem_raise_allocated(mem, mib, sk, amt, kind, nr_socks, now) {
        true
    } else {
        sk.forward_alloc -= amt as usize * PAGE_SIZE;
        false
    }
}

/// `__sk_mem_raise_allocated`: `amt` pages are added to the total, then
/// weighed: at or below `min` they are granted and pressure ends; above
/// `pressure` pressure starts; above `max` they are refused (and taken
/// back); in between, a sock under `tcp_rmem[0]` (received data) or
/// `tcp_wmem[0]` (its write queue, for data to send) gets them, and so does
/// any sock while there is no pressure, or under pressure one whose pages
/// (write queue, receive queues and reserve) times the number of socks stay
/// under `max` (its fair share).
fn sk_mem_raise_allocated(
    mem: &mut TcpMem,
    mib: &mut Mib,
    sk: &SkMem,
    amt: u64,
    kind: SkMemKind,
    nr_socks: usize,
    now: Instant,
) -> bool {
    mem.last_now = Some(now);
    mem.allocated += amt;
    mib.XskSockstatTcpMem = mem.allocated;
    let allocated = mem.allocated;
    if allocated <= mem.limits.min {
        mem.leave_memory_pressure(mib, now);
        return true;
    }
    if allocated > mem.limits.pressure {
        mem.enter_memory_pressure(mib, now);
    }
    if allocated <= mem.limits.max {
        let guaranteed = match kind {
            SkMemKind::Recv => sk.rmem_alloc < TCP_RMEM_MIN,
            SkMemKind::Send => sk.wmem_queued < TCP_WMEM_MIN,
        };
        if guaranteed || !mem.under_pressure() {
            return true;
        }
        let share = sk_mem_pages(sk.wmem_queued + sk.rmem_alloc + sk.forward_alloc);
        if mem.limits.max > (nr_socks as u64).max(1).saturating_mul(share) {
            return true;
        }
    }
    // suppress_allocation
    mem.allocated -= amt;
    mib.XskSockstatTcpMem = mem.allocated;
    false
}

/// `sk_forced_mem_schedule`: the pages for `size` bytes taken whatever the
/// limits (Linux: the first segment of an empty receive queue, so that a
/// connection always moves).
pub fn sk_forced_mem_schedule(mem: &mut TcpMem, mib: &mut Mib, sk: &mut SkMem, size: usize) {
    if size <= sk.forward_alloc {
        return;
    }
    let amt = sk_mem_pages(size - sk.forward_alloc);
    sk.forward_alloc += amt as usize * PAGE_SIZE;
    mem.allocated += amt;
    mib.XskSockstatTcpMem = mem.allocated;
}

/// `sk_mem_charge` (and `skb_set_owner_r`'s `sk_rmem_alloc`): `size`
/// received bytes queued, out of the reserve that was scheduled for them.
#[inline]
pub fn sk_mem_charge(sk: &mut SkMem, size: usize) {
    sk.forward_alloc = sk.forward_alloc.saturating_sub(size);
    sk.rmem_alloc += size;
}

/// `sock_rfree` → `sk_mem_uncharge`: `size` received bytes freed (read,
/// pruned, dropped); back to the reserve, whose whole pages go back to the
/// total (`sk_mem_reclaim`).
pub fn sk_mem_uncharge(mem: &mut TcpMem, mib: &mut Mib, sk: &mut SkMem, size: usize, now: Instant) {
    let size = size.min(sk.rmem_alloc);
    sk.rmem_alloc -= size;
    sk.forward_alloc += size;
    sk_mem_reclaim(mem, mib, sk, now);
}

/// `sk_mem_reclaim`: whole pages of the reserve go back to the total.
pub fn sk_mem_reclaim(mem: &mut TcpMem, mib: &mut Mib, sk: &mut SkMem, now: Instant) {
    if sk.forward_alloc >= PAGE_SIZE {
        let pages = sk.forward_alloc / PAGE_SIZE;
        sk.forward_alloc -= pages * PAGE_SIZE;
        mem.reduce_allocated(mib, pages as u64, Some(now));
    }
}

/// `sk_mem_reclaim_final` with the queues purged (`tcp_done`,
/// `inet_sock_destruct`): everything the sock held goes back; `now` is the
/// loop's time if the caller has it, else the last the accounting saw.
pub fn sk_mem_release(mem: &mut TcpMem, mib: &mut Mib, sk: &mut SkMem, now: Option<Instant>) {
    let bytes = sk.rmem_alloc + sk.wmem_queued + sk.forward_alloc;
    *sk = SkMem::default();
    // Charged bytes are not page-aligned, the reserve makes up the rest:
    // the sock held exactly the pages it was granted.
    mem.reduce_allocated(mib, sk_mem_pages(bytes), now);
}

/// The bytes by which connections' rings, receive and send, have grown past
/// their first size, all connections of a stack together: a bound of
/// xsknet's own (rings are memory, Linux's `sk_rcvbuf` and `sk_sndbuf` are
/// limits), so that many fast peers cannot make every connection's receive
/// ring 32 MiB and its send ring 4 MiB. Shared with each connection's
/// [`RingCharge`]s, which give their bytes back when they are dropped,
/// however the connection ends.
#[derive(Clone, Debug, Default)]
pub struct RingsGrown(Arc<AtomicUsize>);

impl RingsGrown {
    /// The bytes grown, all connections.
    pub fn total(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more keep the total within `limit`.
    pub fn fits(&self, bytes: usize, limit: usize) -> bool {
        self.total().saturating_add(bytes) <= limit
    }

    /// Adds `bytes` to `charge` (made on a connection's first growth) and to
    /// the total, unless the total would pass `limit`: then nothing changes
    /// and the answer is false.
    pub fn charge(&self, charge: &mut Option<RingCharge>, bytes: usize, limit: usize) -> bool {
        if !self.fits(bytes, limit) {
            return false;
        }
        self.0.fetch_add(bytes, Ordering::Relaxed);
        charge.get_or_insert_with(|| RingCharge { pool: self.clone(), bytes: 0 }).bytes += bytes;
        true
    }
}

/// One ring's share of [`RingsGrown`], given back on drop.
#[derive(Debug)]
pub struct RingCharge {
    pool: RingsGrown,
    bytes: usize,
}

impl Drop for RingCharge {
    fn drop(&mut self) {
        self.pool.0.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grown_bytes_are_bounded_and_given_back_when_a_connection_goes() {
        let pool = RingsGrown::default();
        let (mut a, mut b) = (None, None);
        assert!(pool.charge(&mut a, 600, 1000));
        assert!(!pool.charge(&mut b, 500, 1000), "past the bound: refused");
        assert!(b.is_none() && pool.total() == 600);
        assert!(pool.charge(&mut b, 400, 1000));
        assert!(pool.charge(&mut a, 0, 1000));
        drop(a);
        assert_eq!(pool.total(), 400, "a's bytes back when it is dropped");
        drop(b);
        assert_eq!(pool.total(), 0);
    }

    fn mem(min: u64, pressure: u64, max: u64) -> TcpMem {
        TcpMem::new(TcpMemLimits { min, pressure, max })
    }

    #[test]
    fn defaults_follow_tcp_init_mem_on_the_buffer_budget() {
        let l = TcpMemLimits::from_budget(1024, 131_072 + 4096, 262_144);
        assert_eq!(l, TcpMemLimits { min: 4656, pressure: 6208, max: 9312 });
        // tcp_init_mem's floor of 128 pages for a tiny budget.
        assert_eq!(TcpMemLimits::from_budget(1, 4096, 4096), TcpMemLimits { min: 96, pressure: 128, max: 192 });
    }

    #[test]
    fn the_sysctl_form_parses() {
        assert_eq!(TcpMemLimits::parse("10,20,30"), Ok(TcpMemLimits { min: 10, pressure: 20, max: 30 }));
        assert_eq!(TcpMemLimits::parse("10 20\t30"), Ok(TcpMemLimits { min: 10, pressure: 20, max: 30 }));
        assert!(TcpMemLimits::parse("10,20").is_err());
        assert!(TcpMemLimits::parse("30,20,10").is_err());
        assert!(TcpMemLimits::parse("a,b,c").is_err());
        assert!(TcpMemLimits::parse("0,0,0").is_err());
    }

    #[test]
    fn pages_are_granted_then_pressure_then_refused() {
        let t0 = Instant::now();
        let mut m = mem(2, 4, 6);
        let mut mib = Mib::default();
        let mut a = SkMem::default();
        // 1 byte takes a page; the reserve covers the rest of it.
        assert!(sk_rmem_schedule(&mut m, &mut mib, &mut a, 1, 1, t0));
        sk_mem_charge(&mut a, 1);
        assert_eq!((m.allocated, a.forward_alloc, a.rmem_alloc), (1, 4095, 1));
        assert!(sk_rmem_schedule(&mut m, &mut mib, &mut a, 4095, 1, t0));
        assert_eq!(m.allocated, 1, "the reserve was enough");
        sk_mem_charge(&mut a, 4095);
        // 4 more pages: 5 > pressure 4: pressure starts, granted (under max).
        assert!(sk_rmem_schedule(&mut m, &mut mib, &mut a, 4 * 4096, 1, t0));
        sk_mem_charge(&mut a, 4 * 4096);
        assert!(m.under_pressure());
        assert_eq!((m.allocated, mib.TcpExtTCPMemoryPressures), (5, 1));
        // 2 more would be 7 > max 6: refused, nothing taken.
        assert!(!sk_rmem_schedule(&mut m, &mut mib, &mut a, 2 * 4096, 1, t0));
        assert_eq!((m.allocated, a.forward_alloc), (5, 0));
        assert_eq!(mib.TcpExtTCPMemoryPressures, 1, "one episode");
        // Freed below min: pressure ends, its length counted.
        let t1 = t0 + std::time::Duration::from_millis(250);
        sk_mem_uncharge(&mut m, &mut mib, &mut a, 4 * 4096, t1);
        assert_eq!((m.allocated, a.forward_alloc), (1, 0));
        assert!(!m.under_pressure());
        assert_eq!(mib.TcpExtTCPMemoryPressuresChrono, 250);
        sk_mem_release(&mut m, &mut mib, &mut a, Some(t1));
        assert_eq!((m.allocated, mib.XskSockstatTcpMem), (0, 0));
    }

    #[test]
    fn under_pressure_a_small_sock_and_a_fair_share_still_get_pages() {
        let t0 = Instant::now();
        let mut m = mem(1, 2, 100);
        let mut mib = Mib::default();
        let mut big = SkMem::default();
        sk_forced_mem_schedule(&mut m, &mut mib, &mut big, 40 * 4096);
        sk_mem_charge(&mut big, 40 * 4096);
        let mut small = SkMem::default();
        assert!(sk_rmem_schedule(&mut m, &mut mib, &mut small, 100, 2, t0), "the first page is a new sock's");
        assert!(m.under_pressure());
        sk_mem_charge(&mut small, 100);
        // The big sock, with 2 socks: 2 × 41 pages < 100: its share.
        assert!(sk_rmem_schedule(&mut m, &mut mib, &mut big, 4096, 2, t0));
        sk_mem_charge(&mut big, 4096);
        // With 3 socks: 3 × 42 > 100: refused.
        assert!(!sk_rmem_schedule(&mut m, &mut mib, &mut big, 4096, 3, t0));
    }
}
