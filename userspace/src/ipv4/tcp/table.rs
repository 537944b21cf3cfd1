//! The TCP socket tables and the control blocks they point to
//! (`inet_hashinfo` for TCP: `ehash`, `lhash2`; net/ipv4/inet_hashtables.c):
//! established connections by their 4-tuple, listeners by port, both hash
//! lookups, and the timer queue of every control block.
//!
//! Control blocks live in a slab indexed by a small integer, which the sock
//! keeps (`TcpSock::cb`) so that the loop finds a sock's control block from
//! the application's side (a send, a close) without a search.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::cb::TcpCb;
use super::syncookies::{SynCookies, TcpSyncookies};
use super::ts_state::{TcpTimestamps, TsClock};
use crate::inet_hashtables::FxHasher;
use crate::stream::TcpState;
use crate::timer::TimerQueue;

/// A connection's addresses: the key of the established table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FourTuple {
    /// Our address and port.
    pub local: SocketAddrV4,
    /// The peer's.
    pub remote: SocketAddrV4,
}

/// A connection in TIME-WAIT, or orphaned in FIN-WAIT-2
/// (`inet_timewait_sock`): only what answering strays takes, no buffers.
#[derive(Clone, Copy, Debug)]
pub struct TimeWaitSock {
    /// `TimeWait`, or `FinWait2` until the peer's FIN comes.
    pub substate: TcpState,
    /// Our next sequence number (`tw_snd_nxt`).
    pub snd_nxt: u32,
    /// The peer's (`tw_rcv_nxt`).
    pub rcv_nxt: u32,
    /// The window we last offered, bytes (`tw_rcv_wnd`).
    pub rcv_wnd: u32,
    /// Our window-scale shift.
    pub rcv_wscale: u8,
    /// The TSval to echo (`tw_ts_recent`).
    pub ts_recent: u32,
    /// When it was stored (`tw_ts_recent_stamp`); `None` without timestamps.
    pub ts_recent_stamp: Option<Instant>,
    /// Our timestamp offset (`tw_ts_offset`).
    pub ts_offset: u32,
    /// When it ends.
    pub expires: Instant,
}

/// Index of a control block in the slab.
pub type CbId = u32;

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Every TCP control block of one stack and the tables that find them.
pub struct TcpTable {
    cbs: Vec<Option<Box<TcpCb>>>,
    free: Vec<CbId>,
    ehash: FxMap<FourTuple, CbId>,
    lhash: FxMap<u16, CbId>,
    /// Deadlines of the control blocks (retransmission, delayed ACK, SYN-ACK).
    pub timers: TimerQueue<CbId>,
    /// TIME-WAIT sockets by 4-tuple (`tw` buckets in `ehash`).
    pub tw: FxMap<FourTuple, TimeWaitSock>,
    /// Their deadlines (lazily re-armed: an entry checks its `expires`).
    pub tw_timers: TimerQueue<FourTuple>,
    /// The ISN secret (`secure_tcp_seq`'s key), random per stack.
    isn_key: RandomState,
    /// `net.ipv4.tcp_syncookies`.
    pub syncookies: TcpSyncookies,
    /// The SYN cookie secret and clock.
    pub cookies: SynCookies,
    /// `net.ipv4.tcp_max_tw_buckets`: TIME-WAIT socks at most.
    pub max_tw_buckets: usize,
    /// `net.ipv4.tcp_challenge_ack_limit`: challenge ACKs the whole stack
    /// sends a second; `u32::MAX` (Linux's default since 6.0, `INT_MAX`) is
    /// no host-wide limit, only each connection's.
    pub challenge_ack_limit: u32,
    /// `net.ipv4.tcp_slow_start_after_idle`: a window unused for longer
    /// than the RTO restarts (RFC 2861; on, as in Linux).
    pub slow_start_after_idle: bool,
    /// `net.ipv4.tcp_moderate_rcvbuf`: receive buffers are autotuned
    /// (`super::rcvbuf`; default on).
    pub moderate_rcvbuf: bool,
    /// GRO on the device (`ethtool -K IFACE gro on`, Linux's default): the
    /// ACK of the segments of one aggregate is decided once
    /// (`super::offload`).
    pub gro: bool,
    /// Connections with a GRO aggregate open in the current rx batch, for
    /// `napi_gro_flush` at its end (grown to a batch once, then reused; an
    /// entry may be stale: its aggregate
    /// ended earlier, or the connection is gone).
    pub gro_held: Vec<CbId>,
    /// Out-of-order segments' buffers given back, for the next ones.
    pub ofo_bufs: super::cb::OfoBufs,
    /// What receive rings have grown by, all connections (`super::rcvbuf`):
    /// autotuning grows no ring past `tcp_mem`'s pressure threshold of it.
    pub rings_grown: super::mem::RingsGrown,
    /// The second the challenge-ACK budget is for (`tcp_challenge_timestamp`).
    challenge_second: Option<u64>,
    /// Challenge ACKs left in it (`tcp_challenge_count`).
    challenge_count: u32,
    /// The timestamp clock and `net.ipv4.tcp_timestamps`.
    pub ts_clock: TsClock,
    /// `net.ipv4.tcp_mem` and what all connections hold (`tcp_memory_allocated`).
    pub mem: super::mem::TcpMem,
    /// `net.ipv4.tcp_recovery`: RACK loss detection and the tail loss probe
    /// with [`super::rack::TCP_RACK_LOSS_DETECTION`] (1, Linux's default).
    pub recovery: u8,
    /// `net.ipv4.tcp_early_retrans`: tail loss probes with 3 or 4 (3, Linux's default).
    pub early_retrans: u8,
    /// `CONFIG_HZ`: jiffies a second, the tick of CUBIC's clock ([`crate::jiffies`]).
    pub hz: u32,
    /// Time zero of the ISN clock.
    epoch: Instant,
}

impl TcpTable {
    /// Whether RACK-TLP is on (`net.ipv4.tcp_recovery` has
    /// [`super::rack::TCP_RACK_LOSS_DETECTION`]).
    pub fn rack(&self) -> bool {
        self.recovery & super::rack::TCP_RACK_LOSS_DETECTION != 0
    }

    /// Whether tail loss probes are on (`tcp_early_retrans` 3 or 4).
    pub fn tlp(&self) -> bool {
        matches!(self.early_retrans, 3 | 4)
    }

    /// Empty tables; `epoch` starts the ISN clock.
    pub fn new(epoch: Instant) -> TcpTable {
        TcpTable {
            cbs: Vec::new(),
            free: Vec::new(),
            ehash: FxMap::default(),
            lhash: FxMap::default(),
            timers: TimerQueue::default(),
            tw: FxMap::default(),
            tw_timers: TimerQueue::default(),
            isn_key: RandomState::new(),
            syncookies: TcpSyncookies::WhenFull,
            cookies: SynCookies::new(epoch),
            max_tw_buckets: super::TCP_MAX_TW_BUCKETS,
            challenge_ack_limit: u32::MAX,
            slow_start_after_idle: true,
            moderate_rcvbuf: true,
            gro: true,
            gro_held: Vec::new(),
            ofo_bufs: super::cb::OfoBufs::default(),
            rings_grown: super::mem::RingsGrown::default(),
            challenge_second: None,
            challenge_count: 0,
            ts_clock: TsClock::new(epoch, TcpTimestamps::On),
            mem: super::mem::TcpMem::new(super::mem::TcpMemLimits::from_budget(
                crate::fdtable::DEFAULT_MAX_FDS,
                crate::sock::TCP_RMEM_DEFAULT + super::TCP_RCV_SLACK,
                crate::sock::TCP_WMEM_DEFAULT,
            )),
            recovery: super::rack::TCP_RACK_LOSS_DETECTION,
            early_retrans: 3,
            hz: crate::jiffies::HZ_DEFAULT,
            epoch,
        }
    }

    /// The host-wide RFC 5961 §7 limit of `tcp_send_challenge_ack`
    /// (net/ipv4/tcp_input.c): whether one more challenge ACK may go at
    /// `now`. Each second gets a budget drawn at random in
    /// `[limit/2, limit + limit/2)` (so an attacker cannot count the
    /// challenges to learn the window), each ACK takes one; always true when
    /// the limit is off (`u32::MAX`).
    pub fn challenge_ack_allowed(&mut self, now: Instant) -> bool {
        let limit = self.challenge_ack_limit;
        if limit == u32::MAX {
            return true;
        }
        let second = now.saturating_duration_since(self.epoch).as_secs();
        if self.challenge_second != Some(second) {
            let half = (u64::from(limit) + 1) >> 1;
            let draw = std::hash::BuildHasher::hash_one(&self.isn_key, ("challenge", second));
            self.challenge_second = Some(second);
            self.challenge_count = (half + draw % u64::from(limit).max(1)).min(u64::from(u32::MAX)) as u32;
            if limit == 0 {
                self.challenge_count = 0;
            }
        }
        if self.challenge_count == 0 {
            return false;
        }
        self.challenge_count -= 1;
        true
    }

    /// Puts `cb` in the slab and records its index in its sock.
    pub fn insert(&mut self, cb: TcpCb) -> CbId {
        let id = match self.free.pop() {
            Some(id) => {
                self.cbs[id as usize] = Some(Box::new(cb));
                id
            }
            None => {
                self.cbs.push(Some(Box::new(cb)));
                (self.cbs.len() - 1) as CbId
            }
        };
        if let Some(cb) = self.cbs[id as usize].as_ref() {
            cb.tsk().cb.store(id, Ordering::Release);
        }
        id
    }

    /// Takes control block `id` out to work on it (with the tables free to
    /// change meanwhile); give it back with [`Self::put`] or [`Self::remove`].
    pub fn take(&mut self, id: CbId) -> Option<Box<TcpCb>> {
        self.cbs.get_mut(id as usize)?.take()
    }

    /// Gives back a control block taken with [`Self::take`].
    pub fn put(&mut self, id: CbId, cb: Box<TcpCb>) {
        self.cbs[id as usize] = Some(cb);
    }

    /// Forgets control block `id` (already taken out): unhashed, slot freed,
    /// the sock told it has none.
    pub fn remove(&mut self, id: CbId, cb: &TcpCb) {
        let key = FourTuple { local: cb.local, remote: cb.remote };
        if self.ehash.get(&key) == Some(&id) {
            self.ehash.remove(&key);
        }
        if self.lhash.get(&cb.local.port()) == Some(&id) {
            self.lhash.remove(&cb.local.port());
        }
        let _ = cb.tsk().cb.compare_exchange(id, u32::MAX, Ordering::AcqRel, Ordering::Relaxed);
        self.free.push(id);
    }

    /// A control block by index.
    pub fn get(&self, id: CbId) -> Option<&TcpCb> {
        self.cbs.get(id as usize)?.as_deref()
    }

    /// A control block by index, mutably.
    pub fn get_mut(&mut self, id: CbId) -> Option<&mut TcpCb> {
        self.cbs.get_mut(id as usize)?.as_deref_mut()
    }

    /// Every control block present (not taken out).
    pub fn iter(&self) -> impl Iterator<Item = (CbId, &TcpCb)> {
        self.cbs.iter().enumerate().filter_map(|(i, c)| Some((i as CbId, c.as_deref()?)))
    }

    /// `__inet_lookup_established`.
    #[inline]
    pub fn lookup_established(&self, key: &FourTuple) -> Option<CbId> {
        self.ehash.get(key).copied()
    }

    /// `__inet_lookup_listener`, by port.
    #[inline]
    pub fn lookup_listener(&self, port: u16) -> Option<CbId> {
        self.lhash.get(&port).copied()
    }

    /// Adds an established (or connecting) control block.
    pub fn hash_established(&mut self, key: FourTuple, id: CbId) {
        self.ehash.insert(key, id);
    }

    /// Adds a listener.
    pub fn hash_listener(&mut self, port: u16, id: CbId) {
        self.lhash.insert(port, id);
    }

    /// Whether any control block (a connection, TIME-WAIT included, or a
    /// listener) uses local port `port`.
    pub fn port_in_use(&self, port: u16) -> bool {
        self.lhash.contains_key(&port)
            || self.ehash.keys().any(|k| k.local.port() == port)
            || self.tw.keys().any(|k| k.local.port() == port)
    }

    /// Whether local port `port` is used by anything but TIME-WAIT (what
    /// `SO_REUSEADDR` lets a `bind()` share).
    pub fn port_in_use_live(&self, port: u16) -> bool {
        self.lhash.contains_key(&port) || self.ehash.keys().any(|k| k.local.port() == port)
    }

    /// Whether the 4-tuple is taken (a connection or TIME-WAIT).
    pub fn tuple_in_use(&self, key: &FourTuple) -> bool {
        self.ehash.contains_key(key) || self.tw.contains_key(key)
    }

    /// Puts a connection into TIME-WAIT (or orphaned FIN-WAIT-2) until `tw.expires`.
    pub fn time_wait(&mut self, key: FourTuple, tw: TimeWaitSock) {
        let mut pending = None;
        self.tw_timers.arm(key, tw.expires, &mut pending);
        self.tw.insert(key, tw);
    }

    /// Arms control block `id`'s timer entry for its earliest deadline.
    pub fn rearm(&mut self, id: CbId, cb: &mut TcpCb) {
        if let Some(at) = cb.next_deadline() {
            self.timers.arm(id, at, &mut cb.timer_pending);
        }
    }

    /// When the next TCP timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.timers.next_deadline(), self.tw_timers.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `secure_tcp_seq`: a keyed hash of the 4-tuple plus a clock ticking
    /// every 64 ns (net/core/secure_seq.c, RFC 6528).
    pub fn isn(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> u32 {
        let ticks = (now.saturating_duration_since(self.epoch).as_nanos() >> 6) as u32;
        (self.isn_key.hash_one((local, remote)) as u32).wrapping_add(ticks)
    }

    /// Control blocks in each state, for the report.
    pub fn count_by_state(&self) -> Vec<(TcpState, usize)> {
        let mut out: Vec<(TcpState, usize)> = Vec::new();
        // A listener's request socks are SYN-RECV sockets, as `ss` counts them.
        let requests = self.iter().flat_map(|(_, cb)| {
            std::iter::repeat_n(TcpState::SynRecv, cb.listener.as_ref().map_or(0, |l| l.syn_queue.len()))
        });
        let states = self.iter().map(|(_, cb)| cb.state).chain(self.tw.values().map(|t| t.substate)).chain(requests);
        for state in states {
            match out.iter_mut().find(|(s, _)| *s == state) {
                Some((_, n)) => *n += 1,
                None => out.push((state, 1)),
            }
        }
        out.sort();
        out
    }

    /// Control blocks in the slab.
    pub fn len(&self) -> usize {
        self.cbs.len() - self.free.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// `tcp_challenge_ack_limit`: off by default; when set, a budget a
    /// second in [limit/2, limit*3/2), renewed each second.
    #[test]
    fn challenge_acks_are_limited_host_wide_only_when_asked() {
        let t0 = Instant::now();
        let mut t = TcpTable::new(t0);
        assert!((0..10_000).all(|_| t.challenge_ack_allowed(t0)), "Linux's default: no host-wide limit");
        t.challenge_ack_limit = 100;
        for s in 0..20 {
            let now = t0 + Duration::from_secs(s) + Duration::from_millis(300);
            let sent = (0..1000).filter(|_| t.challenge_ack_allowed(now)).count();
            assert!((50..150).contains(&sent), "second {s}: {sent}");
        }
        t.challenge_ack_limit = 0;
        assert!(!t.challenge_ack_allowed(t0 + Duration::from_secs(100)));
    }
}
