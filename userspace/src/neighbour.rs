//! The neighbour table for IPv4 (net/core/neighbour.c, with the ARP
//! parameters of net/ipv4/arp.c): the NUD state machine of each next hop, what
//! waits for it, and the table's bounds.
//!
//! An entry goes through Linux's states: `INCOMPLETE` while we ask (packets
//! wait on its `arp_queue`, bounded; `mcast_solicit` broadcast requests every
//! `retrans_time`, then `FAILED`), `REACHABLE` for `reachable_time` after a
//! confirmation, then `STALE`; a packet sent to a `STALE` neighbour moves it
//! to `DELAY` for `delay_first_probe_time`, then `PROBE` (`ucast_solicit`
//! unicast requests) unless it was confirmed meanwhile. What ARP tells us goes
//! through [`NeighTable::neigh_update`], which follows `__neigh_update`: an
//! address differing from a valid one is taken only with the override flag
//! (the caller applies `locktime`), and `STALE` never downgrades a valid entry
//! with the same address.
//!
//! The table is bounded as Linux's: `gc_thresh1` (below it the periodic
//! collection removes nothing), `gc_thresh2` (above it a new entry starts a
//! forced collection at most every 5 s), `gc_thresh3` (a hard limit: a new
//! entry that a forced collection cannot make room for is refused and counted
//! as `table_fulls`). Neither collection removes an entry whose timer runs
//! (`INCOMPLETE`, `REACHABLE`, `DELAY`, `PROBE`: in Linux the timer holds a
//! reference), so neighbours in use, or with packets waiting, survive a flood
//! of new senders; the forced one also spares entries updated in the last 5 s.
//!
//! Time is passed in: each entry arms one timer in a [`TimerQueue`],
//! [`NeighTable::next_deadline`] says when the table needs
//! [`NeighTable::expire`] again, and nothing here reads a clock. The counters
//! of `/proc/net/stat/arp_cache` (`struct neigh_statistics`) go to the
//! [`Mib`] passed in, under `XskArpCache*` names.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::snmp::Mib;
use crate::timer::TimerQueue;
use crate::wire::EthernetAddress;

/// `retrans_time`: how long an incomplete or probed entry waits for an answer.
pub const RETRANS_TIME: Duration = Duration::from_secs(1);
/// `mcast_solicit`: broadcast requests sent before an incomplete entry fails.
pub const MCAST_SOLICIT: u8 = 3;
/// `ucast_solicit`: unicast requests sent in `PROBE` before the entry fails.
pub const UCAST_SOLICIT: u8 = 3;
/// `base_reachable_time`: `reachable_time` is drawn in [1/2, 3/2) of it.
pub const BASE_REACHABLE_TIME: Duration = Duration::from_secs(30);
/// `delay_first_probe_time`: how long `DELAY` waits for a confirmation.
pub const DELAY_FIRST_PROBE_TIME: Duration = Duration::from_secs(5);
/// `gc_stale_time`: an entry not used for this long may be collected.
pub const GC_STALE_TIME: Duration = Duration::from_secs(60);
/// `locktime`: an ARP reply changing the address of an entry updated less
/// than this ago is ignored (arp_process: the first of competing replies wins).
pub const LOCKTIME: Duration = Duration::from_secs(1);
/// Packets that may wait for one neighbour. Linux bounds by bytes
/// (`unres_qlen_bytes` = 212992, shown as `unres_qlen` 101 packets of
/// `SKB_TRUESIZE(ETH_FRAME_LEN)`); a frame here is one packet.
pub const ARP_QUEUE_LEN: usize = 100;
/// `gc_thresh1`: below this many entries the periodic collection keeps all.
pub const GC_THRESH1: usize = 128;
/// `gc_thresh2`: above this a new entry forces a collection (at most every 5 s).
pub const GC_THRESH2: usize = 512;
/// `gc_thresh3`: the hard limit on entries.
pub const GC_THRESH3: usize = 1024;
/// How often the periodic collection (`neigh_periodic_work`) runs:
/// `base_reachable_time / 2`. (The `gc_interval` sysctl, 30 s, is shown by
/// Linux but not used by it.)
pub const GC_PERIOD: Duration = Duration::from_secs(15);
/// The forced collection's minimum spacing and the age below which it spares
/// an entry (`neigh_alloc`, `neigh_forced_gc`: `5 * HZ`).
pub const FORCED_GC_AGE: Duration = Duration::from_secs(5);
/// How often `reachable_time` is drawn anew (`neigh_periodic_work`: 300 s).
pub const REACHABLE_TIME_REDRAW: Duration = Duration::from_secs(300);

/// A neighbour's NUD state (include/uapi/linux/neighbour.h), as `ip neigh`
/// names it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NudState {
    /// `NUD_NONE`: just created, nothing known yet.
    None,
    /// `NUD_INCOMPLETE`: asked, no answer yet; packets wait.
    Incomplete,
    /// `NUD_REACHABLE`: confirmed within `reachable_time`.
    Reachable,
    /// `NUD_STALE`: an address, not confirmed lately.
    Stale,
    /// `NUD_DELAY`: stale and used; waiting for a confirmation before probing.
    Delay,
    /// `NUD_PROBE`: asking the known address by unicast.
    Probe,
    /// `NUD_FAILED`: resolution failed.
    Failed,
    /// `NUD_NOARP`: needs no resolution (a broadcast or multicast address).
    NoArp,
}

impl NudState {
    /// The name `ip neigh` prints.
    pub fn name(self) -> &'static str {
        match self {
            NudState::None => "NONE",
            NudState::Incomplete => "INCOMPLETE",
            NudState::Reachable => "REACHABLE",
            NudState::Stale => "STALE",
            NudState::Delay => "DELAY",
            NudState::Probe => "PROBE",
            NudState::Failed => "FAILED",
            NudState::NoArp => "NOARP",
        }
    }

    /// `NUD_VALID`: the entry has an address to send to.
    pub fn is_valid(self) -> bool {
        matches!(self, NudState::Reachable | NudState::Stale | NudState::Delay | NudState::Probe | NudState::NoArp)
    }

    /// `NUD_CONNECTED`: the address is confirmed (or needs none).
    pub fn is_connected(self) -> bool {
        matches!(self, NudState::Reachable | NudState::NoArp)
    }

    /// `NUD_IN_TIMER`: the entry's timer runs in this state (and, as in Linux
    /// where the timer holds a reference, no collection removes it).
    pub fn in_timer(self) -> bool {
        matches!(self, NudState::Incomplete | NudState::Reachable | NudState::Delay | NudState::Probe)
    }
}

#[derive(Debug)]
struct Neighbour<T> {
    state: NudState,
    /// `ha`: the link-layer address (meaningful when the state is valid).
    ha: EthernetAddress,
    /// `probes`: requests sent in this resolution (starts at `ucast_solicit`
    /// for `INCOMPLETE`, as `__neigh_event_send` sets it).
    probes: u8,
    /// `confirmed`: the last confirmation of reachability.
    confirmed: Instant,
    /// `updated`: the last change of state or address.
    updated: Instant,
    /// `used`: the last send through the slow path (`neigh_event_send`).
    used: Instant,
    arp_queue: VecDeque<T>,
    /// When the entry's timer (`neigh->timer`) fires, if it runs.
    timer_at: Option<Instant>,
    /// The deadline of this entry's pending item in the [`TimerQueue`].
    pending: Option<Instant>,
    /// Its place on the table's `gc_list` (creation order).
    gc_seq: u64,
}

/// What the output path should do for a next hop (`neigh_output`).
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<T> {
    /// Send the packet (handed back) to this address now.
    Resolved(EthernetAddress, T),
    /// The packet waits for an answer. `probe`: send the first broadcast
    /// request now. `discarded`: the oldest waiting packet pushed out of the
    /// full queue, to be dropped (`unresolved_discards`).
    Queued {
        /// Whether this packet started the resolution (send the first request).
        probe: bool,
        /// The packet the queue let go to make room, if it was full.
        discarded: Option<T>,
    },
    /// No entry could be made (the table is at `gc_thresh3` and nothing could
    /// be collected: `table_fulls`); the packet is handed back to be dropped.
    TableFull(T),
}

/// A request that a timer run asks for (`arp_solicit`).
#[derive(Debug, PartialEq, Eq)]
pub struct Solicit {
    /// Whom to ask about.
    pub ip: Ipv4Addr,
    /// `Some(ha)` for a unicast probe (`PROBE`), `None` for a broadcast.
    pub unicast: Option<EthernetAddress>,
}

/// What a timer run decided.
pub struct Expired<T> {
    /// Requests to send.
    pub probes: Vec<Solicit>,
    /// Packets whose neighbour never answered (`neigh_invalidate`).
    pub failed: Vec<T>,
}

/// One entry as `ip neigh` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NeighEntry {
    /// The next hop.
    pub ip: Ipv4Addr,
    /// Its link-layer address (`aa:bb:cc:dd:ee:ff`), when the state is valid.
    pub lladdr: Option<String>,
    /// The NUD state, as `ip neigh` names it.
    pub state: String,
}

/// The neighbour table: an entry per next hop, with what waits for it.
pub struct NeighTable<T> {
    entries: HashMap<Ipv4Addr, Neighbour<T>>,
    timers: TimerQueue<Ipv4Addr>,
    /// `gc_list`: entries in creation order, oldest first, for the forced collection.
    gc_list: BTreeMap<u64, Ipv4Addr>,
    next_seq: u64,
    /// `reachable_time`: drawn in [base/2, 3 base/2), redrawn every 300 s.
    reachable_time: Duration,
    last_rand: Option<Instant>,
    /// When the periodic collection runs next (every [`GC_PERIOD`]).
    gc_at: Option<Instant>,
    /// `last_flush`: the last complete forced collection.
    last_flush: Option<Instant>,
    rng: u64,
}

impl<T> Default for NeighTable<T> {
    fn default() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        let mut t = NeighTable {
            entries: HashMap::new(),
            timers: TimerQueue::default(),
            gc_list: BTreeMap::new(),
            next_seq: 0,
            reachable_time: BASE_REACHABLE_TIME,
            last_rand: None,
            gc_at: None,
            last_flush: None,
            rng: h.finish() | 1,
        };
        t.reachable_time = t.rand_reach_time();
        t
    }
}

impl<T> NeighTable<T> {
    /// `neigh_rand_reach_time`: uniform in [base/2, 3 base/2).
    fn rand_reach_time(&mut self) -> Duration {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let base = BASE_REACHABLE_TIME.as_millis() as u64;
        Duration::from_millis(self.rng % base + base / 2)
    }

    /// The `reachable_time` in force (random in [15 s, 45 s)).
    pub fn reachable_time(&self) -> Duration {
        self.reachable_time
    }

    fn start(&mut self, now: Instant) {
        if self.gc_at.is_none() {
            self.gc_at = Some(now + GC_PERIOD);
            self.last_rand = Some(now);
        }
    }

    /// Sets the entry's timer (`neigh_add_timer`/`neigh_del_timer` with `None`).
    fn set_timer(timers: &mut TimerQueue<Ipv4Addr>, ip: Ipv4Addr, n: &mut Neighbour<T>, at: Option<Instant>) {
        n.timer_at = at;
        if let Some(at) = at {
            timers.arm(ip, at, &mut n.pending);
        }
    }

    /// `ip_finish_output2` → `neigh_output`/`neigh_event_send`: resolves `ip`
    /// for a packet `pkt` about to be sent, creating the entry if needed
    /// (`__neigh_create`, which may refuse: [`Resolution::TableFull`]).
    pub fn resolve(&mut self, ip: Ipv4Addr, pkt: T, now: Instant, mib: &mut Mib) -> Resolution<T> {
        match self.entries.get(&ip) {
            // neigh_hh_output: a connected entry sends without touching `used`.
            Some(n) if n.state.is_connected() => return Resolution::Resolved(n.ha, pkt),
            Some(_) => {}
            None => {
                if !self.neigh_create(ip, now, mib) {
                    return Resolution::TableFull(pkt);
                }
            }
        }
        let Some(n) = self.entries.get_mut(&ip) else { return Resolution::TableFull(pkt) };
        n.used = now;
        let mut probe = false;
        match n.state {
            NudState::Delay | NudState::Probe => return Resolution::Resolved(n.ha, pkt),
            NudState::Stale => {
                n.state = NudState::Delay;
                n.updated = now;
                Self::set_timer(&mut self.timers, ip, n, Some(now + DELAY_FIRST_PROBE_TIME));
                return Resolution::Resolved(n.ha, pkt);
            }
            NudState::Incomplete => {}
            NudState::None | NudState::Failed | NudState::Reachable | NudState::NoArp => {
                // Start a resolution with an immediate broadcast request.
                n.probes = UCAST_SOLICIT + 1;
                n.state = NudState::Incomplete;
                n.updated = now;
                Self::set_timer(&mut self.timers, ip, n, Some(now + RETRANS_TIME));
                probe = true;
            }
        }
        let mut discarded = None;
        if n.arp_queue.len() >= ARP_QUEUE_LEN {
            discarded = n.arp_queue.pop_front();
            mib.XskArpCacheUnresolvedDiscards += 1;
        }
        n.arp_queue.push_back(pkt);
        Resolution::Queued { probe, discarded }
    }

    /// The address of `ip` if the entry has one (any valid state), without
    /// queueing or counting anything.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        let n = self.entries.get(&ip)?;
        n.state.is_valid().then_some(n.ha)
    }

    /// The state of `ip`'s entry, if there is one.
    pub fn state(&self, ip: Ipv4Addr) -> Option<NudState> {
        self.entries.get(&ip).map(|n| n.state)
    }

    /// `neigh_lookup`: whether `ip` has an entry, counting `lookups` and `hits`.
    pub fn neigh_lookup(&mut self, ip: Ipv4Addr, mib: &mut Mib) -> bool {
        mib.XskArpCacheLookups += 1;
        let hit = self.entries.contains_key(&ip);
        mib.XskArpCacheHits += u64::from(hit);
        hit
    }

    /// `__neigh_create` → `neigh_alloc`: a new `NONE` entry for `ip` (or the
    /// existing one). At `gc_thresh3`, or above `gc_thresh2` with no forced
    /// collection in the last 5 s, a forced collection runs first; if the
    /// table is at `gc_thresh3` and it freed nothing, the entry is refused
    /// (`table_fulls`) and false returned.
    pub fn neigh_create(&mut self, ip: Ipv4Addr, now: Instant, mib: &mut Mib) -> bool {
        self.neigh_create_typed(ip, false, now, mib)
    }

    /// As [`Self::neigh_create`], with `noarp` for an address that needs no
    /// resolution (`arp_constructor`: broadcast or multicast).
    pub fn neigh_create_typed(&mut self, ip: Ipv4Addr, noarp: bool, now: Instant, mib: &mut Mib) -> bool {
        if self.entries.contains_key(&ip) {
            return true;
        }
        self.start(now);
        let entries = self.entries.len();
        let flush_due = self.last_flush.is_none_or(|t| now > t + FORCED_GC_AGE);
        if entries >= GC_THRESH3 || (entries >= GC_THRESH2 && flush_due) {
            let shrunk = self.forced_gc(now, mib);
            if shrunk == 0 && entries >= GC_THRESH3 {
                mib.XskArpCacheTableFulls += 1;
                return false;
            }
        }
        mib.XskArpCacheAllocs += 1;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.gc_list.insert(seq, ip);
        let state = if noarp { NudState::NoArp } else { NudState::None };
        let ha = if noarp { EthernetAddress::BROADCAST } else { EthernetAddress::default() };
        // A new entry is not confirmed (`confirmed` lies in the past) and not used.
        let long_ago = now.checked_sub(BASE_REACHABLE_TIME * 2).unwrap_or(now);
        self.entries.insert(
            ip,
            Neighbour {
                state,
                ha,
                probes: 0,
                confirmed: long_ago,
                updated: now,
                used: now,
                arp_queue: VecDeque::new(),
                timer_at: None,
                pending: None,
                gc_seq: seq,
            },
        );
        mib.XskArpCacheEntries = self.entries.len() as u64;
        true
    }

    /// `neigh_forced_gc`: from the oldest entry, removes those no timer holds
    /// that failed, need no resolution, or were not updated in the last 5 s,
    /// until the table is back to `gc_thresh2`. Returns how many went.
    fn forced_gc(&mut self, now: Instant, mib: &mut Mib) -> usize {
        mib.XskArpCacheForcedGcRuns += 1;
        let max_clean = (self.entries.len() + 1).saturating_sub(GC_THRESH2);
        let tref = now.checked_sub(FORCED_GC_AGE);
        let mut victims = Vec::new();
        for (&seq, ip) in &self.gc_list {
            if victims.len() >= max_clean {
                break;
            }
            let Some(n) = self.entries.get(ip) else { continue };
            if n.state.in_timer() {
                continue;
            }
            let recent = tref.is_none_or(|tref| n.updated >= tref) && n.updated <= now;
            if matches!(n.state, NudState::Failed | NudState::NoArp) || !recent {
                victims.push(seq);
            }
        }
        for seq in &victims {
            self.remove(*seq, mib);
        }
        self.last_flush = Some(now);
        victims.len()
    }

    fn remove(&mut self, seq: u64, mib: &mut Mib) {
        if let Some(ip) = self.gc_list.remove(&seq) {
            if self.entries.remove(&ip).is_some() {
                mib.XskArpCacheDestroys += 1;
                mib.XskArpCacheEntries = self.entries.len() as u64;
            }
        }
    }

    /// Whether an ARP reply may change `ip`'s address now: `updated` is more
    /// than `locktime` ago (arp_process's `override`, before the gratuitous
    /// ARP exception). False when there is no entry.
    pub fn override_allowed(&self, ip: Ipv4Addr, now: Instant) -> bool {
        self.entries.get(&ip).is_some_and(|n| now > n.updated + LOCKTIME)
    }

    /// `neigh_confirm` (include/net/neighbour.h): an upper layer saw that
    /// `ip` is reachable (TCP's forward progress, `MSG_CONFIRM`): its entry's
    /// confirmation time becomes `now`, which keeps a `REACHABLE` entry so
    /// and lets a `DELAY` one go back to `REACHABLE` without a probe. No
    /// entry, nothing.
    pub fn neigh_confirm(&mut self, ip: Ipv4Addr, now: Instant) {
        if let Some(n) = self.entries.get_mut(&ip) {
            n.confirmed = n.confirmed.max(now);
        }
    }

    /// `__neigh_update` for an address learnt from the wire: `lladdr` for
    /// `ip`, in state `new` (`Reachable` or `Stale`), replacing a different
    /// valid address only if `override_`. Does nothing without an entry or
    /// for a `NOARP` one. Returns what waited for the entry if it just became
    /// valid, to be sent now, in order.
    pub fn neigh_update(
        &mut self,
        ip: Ipv4Addr,
        lladdr: EthernetAddress,
        new: NudState,
        override_: bool,
        now: Instant,
    ) -> VecDeque<T> {
        let reachable_time = self.reachable_time;
        let Some(n) = self.entries.get_mut(&ip) else { return VecDeque::new() };
        let old = n.state;
        if old == NudState::NoArp {
            return VecDeque::new();
        }
        let mut new = new;
        // The same address as a valid one: "unchanged".
        let same = old.is_valid() && lladdr == n.ha;
        if new.is_connected() {
            n.confirmed = now;
        }
        if old.is_valid() {
            if !same && !override_ {
                return VecDeque::new();
            }
            if same && new == NudState::Stale {
                new = old;
            }
        }
        if new != old || !same {
            n.updated = now;
        }
        if new != old {
            let at = match new {
                NudState::Reachable => Some(now + reachable_time),
                s if s.in_timer() => Some(now),
                _ => None,
            };
            if new == NudState::Probe {
                n.probes = 0;
            }
            n.state = new;
            Self::set_timer(&mut self.timers, ip, n, at);
        }
        if !same {
            n.ha = lladdr;
            if !new.is_connected() {
                n.confirmed = now.checked_sub(BASE_REACHABLE_TIME * 2).unwrap_or(now);
            }
        }
        if new != old && !old.is_valid() && new.is_valid() {
            return std::mem::take(&mut n.arp_queue);
        }
        VecDeque::new()
    }

    /// Runs the timers due at `now` (`neigh_timer_handler` for each entry
    /// whose timer fired, and `neigh_periodic_work` when due): retransmit
    /// probes, fail entries that never answered (`res_failed`), age
    /// `REACHABLE` to `DELAY` or `STALE`, `DELAY` to `REACHABLE` or `PROBE`,
    /// and collect unused entries. Call it when [`Self::next_deadline`] has
    /// passed.
    pub fn expire(&mut self, now: Instant, mib: &mut Mib) -> Expired<T> {
        let mut out = Expired { probes: Vec::new(), failed: Vec::new() };
        while let Some((at, ip)) = self.timers.pop_expired(now) {
            let Some(n) = self.entries.get_mut(&ip) else { continue };
            if n.pending != Some(at) {
                continue; // superseded by an earlier item for the same key
            }
            n.pending = None;
            let Some(due) = n.timer_at else { continue };
            if due > now {
                // Moved later since the item was queued: wait for it.
                self.timers.arm(ip, due, &mut n.pending);
                continue;
            }
            self.timer_handler(ip, now, mib, &mut out);
        }
        self.periodic_work(now, mib);
        out
    }

    fn timer_handler(&mut self, ip: Ipv4Addr, now: Instant, mib: &mut Mib, out: &mut Expired<T>) {
        let reachable_time = self.reachable_time;
        let Some(n) = self.entries.get_mut(&ip) else { return };
        n.timer_at = None;
        let mut next = now + RETRANS_TIME;
        match n.state {
            NudState::Reachable => {
                if now <= n.confirmed + reachable_time {
                    next = n.confirmed + reachable_time;
                } else if now <= n.used + DELAY_FIRST_PROBE_TIME {
                    n.state = NudState::Delay;
                    n.updated = now;
                    next = now + DELAY_FIRST_PROBE_TIME;
                } else {
                    n.state = NudState::Stale;
                    n.updated = now;
                }
            }
            NudState::Delay => {
                if now <= n.confirmed + DELAY_FIRST_PROBE_TIME {
                    n.state = NudState::Reachable;
                    n.updated = now;
                    next = n.confirmed + reachable_time;
                } else {
                    n.state = NudState::Probe;
                    n.updated = now;
                    n.probes = 0;
                }
            }
            NudState::Incomplete | NudState::Probe => {}
            _ => return,
        }
        // neigh_max_probes: ucast + app (0) + mcast while incomplete,
        // ucast + mcast_reprobes (0) while probing.
        let max_probes = match n.state {
            NudState::Incomplete => UCAST_SOLICIT + MCAST_SOLICIT,
            _ => UCAST_SOLICIT,
        };
        if matches!(n.state, NudState::Incomplete | NudState::Probe) && n.probes >= max_probes {
            // neigh_invalidate
            n.state = NudState::Failed;
            mib.XskArpCacheResFailed += 1;
            out.failed.extend(n.arp_queue.drain(..));
            return;
        }
        if n.state.in_timer() {
            // Never sooner than HZ/100 from now.
            let next = next.max(now + Duration::from_millis(10));
            Self::set_timer(&mut self.timers, ip, n, Some(next));
        }
        // neigh_probe → arp_solicit: broadcast while the probes counted so
        // far are at least ucast_solicit (INCOMPLETE), else unicast to `ha`.
        if matches!(n.state, NudState::Incomplete | NudState::Probe) {
            let unicast = (n.probes < UCAST_SOLICIT).then_some(n.ha);
            n.probes += 1;
            out.probes.push(Solicit { ip, unicast });
        }
    }

    /// `neigh_periodic_work`, for every period that has passed: redraws
    /// `reachable_time` every 300 s; at or above `gc_thresh1` entries,
    /// removes those no timer holds that failed or were not used for
    /// `gc_stale_time`.
    fn periodic_work(&mut self, now: Instant, mib: &mut Mib) {
        let Some(at) = self.gc_at else { return };
        if at > now {
            return;
        }
        let mut at = at;
        let runs = ((now - at).as_nanos() / GC_PERIOD.as_nanos()) as u32 + 1;
        mib.XskArpCachePeriodicGcRuns += u64::from(runs);
        at += GC_PERIOD * runs;
        self.gc_at = Some(at);
        if self.last_rand.is_some_and(|t| now > t + REACHABLE_TIME_REDRAW) {
            self.last_rand = Some(now);
            self.reachable_time = self.rand_reach_time();
        }
        if self.entries.len() < GC_THRESH1 {
            return;
        }
        let mut victims = Vec::new();
        for n in self.entries.values_mut() {
            if n.state.in_timer() {
                continue;
            }
            if n.used < n.confirmed && n.confirmed <= now {
                n.used = n.confirmed;
            }
            let fresh = n.used <= now && now < n.used + GC_STALE_TIME;
            if n.state == NudState::Failed || !fresh {
                victims.push(n.gc_seq);
            }
        }
        for seq in victims {
            self.remove(seq, mib);
        }
    }

    /// When [`Self::expire`] has work next: the earliest entry timer, and
    /// the periodic collection while the table holds `gc_thresh1` entries or
    /// more (below that it would only count its run, which [`Self::expire`]
    /// catches up on).
    pub fn next_deadline(&self) -> Option<Instant> {
        let gc = self.gc_at.filter(|_| self.entries.len() >= GC_THRESH1);
        match (self.timers.next_deadline(), gc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Drops everything that waits (on shutdown): the caller frees it.
    pub fn drain_queued(&mut self) -> Vec<T> {
        self.entries.values_mut().flat_map(|n| n.arp_queue.drain(..)).collect()
    }

    /// Entries in the table (`entries` of `/proc/net/stat/arp_cache`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting for resolution.
    pub fn queued(&self) -> usize {
        self.entries.values().map(|n| n.arp_queue.len()).sum()
    }

    /// Every entry as `ip neigh` lists it, by address.
    pub fn entries(&self) -> Vec<NeighEntry> {
        let mut v: Vec<NeighEntry> = self
            .entries
            .iter()
            .map(|(ip, n)| NeighEntry {
                ip: *ip,
                lladdr: n.state.is_valid().then(|| n.ha.to_string()),
                state: n.state.name().to_string(),
            })
            .collect();
        v.sort_by_key(|e| e.ip);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn table() -> (NeighTable<u32>, Mib, Instant) {
        (NeighTable::default(), Mib::default(), Instant::now())
    }

    /// Runs every timer up to `until`, one due deadline at a time.
    fn run_until(t: &mut NeighTable<u32>, mib: &mut Mib, until: Instant) -> (Vec<Solicit>, Vec<u32>) {
        let (mut probes, mut failed) = (Vec::new(), Vec::new());
        while let Some(at) = t.next_deadline().filter(|&at| at <= until) {
            let e = t.expire(at, mib);
            probes.extend(e.probes);
            failed.extend(e.failed);
        }
        (probes, failed)
    }

    #[test]
    fn queues_until_answered_then_flushes_in_order() {
        let (mut t, mut mib, now) = table();
        assert_eq!(t.resolve(IP, 1, now, &mut mib), Resolution::Queued { probe: true, discarded: None });
        assert_eq!(t.resolve(IP, 2, now, &mut mib), Resolution::Queued { probe: false, discarded: None });
        assert_eq!(t.lookup(IP), None);
        assert_eq!(t.state(IP), Some(NudState::Incomplete));
        let flushed: Vec<_> = t.neigh_update(IP, MAC, NudState::Reachable, false, now).into_iter().collect();
        assert_eq!(flushed, vec![1, 2]);
        assert_eq!(t.resolve(IP, 3, now, &mut mib), Resolution::Resolved(MAC, 3));
        assert_eq!(mib.XskArpCacheAllocs, 1);
    }

    #[test]
    fn gives_up_after_mcast_solicit_probes() {
        let (mut t, mut mib, now) = table();
        assert_eq!(t.resolve(IP, 7, now, &mut mib), Resolution::Queued { probe: true, discarded: None });
        let (probes, failed) = run_until(&mut t, &mut mib, now + RETRANS_TIME * 10);
        assert_eq!(probes.len() + 1, MCAST_SOLICIT as usize);
        assert!(probes.iter().all(|p| p.unicast.is_none()), "broadcast while incomplete");
        assert_eq!(failed, vec![7]);
        assert_eq!(t.state(IP), Some(NudState::Failed));
        assert_eq!(mib.XskArpCacheResFailed, 1);
        assert_eq!(t.next_deadline(), None);
        // A new packet starts a new resolution.
        assert_eq!(t.resolve(IP, 8, now, &mut mib), Resolution::Queued { probe: true, discarded: None });
    }

    /// `REACHABLE` for `reachable_time`, then `STALE`; a send moves it to
    /// `DELAY`, then `PROBE` with `ucast_solicit` unicast requests, then
    /// `FAILED` (neigh_timer_handler).
    #[test]
    fn reachable_stale_delay_probe_failed() {
        let (mut t, mut mib, t0) = table();
        t.resolve(IP, 1, t0, &mut mib);
        t.neigh_update(IP, MAC, NudState::Reachable, false, t0);
        let rt = t.reachable_time();
        assert!(rt >= BASE_REACHABLE_TIME / 2 && rt < BASE_REACHABLE_TIME * 3 / 2, "{rt:?}");
        run_until(&mut t, &mut mib, t0 + rt - Duration::from_millis(1));
        assert_eq!(t.state(IP), Some(NudState::Reachable));
        assert_eq!(t.next_deadline(), Some(t0 + rt));
        run_until(&mut t, &mut mib, t0 + rt + Duration::from_millis(20));
        assert_eq!(t.state(IP), Some(NudState::Stale));
        assert_eq!(t.next_deadline(), None, "no timer in STALE, no collection below gc_thresh1");
        let t1 = t0 + rt + Duration::from_secs(1);
        assert_eq!(t.resolve(IP, 2, t1, &mut mib), Resolution::Resolved(MAC, 2), "STALE still sends");
        assert_eq!(t.state(IP), Some(NudState::Delay));
        assert_eq!(t.next_deadline(), Some(t1 + DELAY_FIRST_PROBE_TIME));
        let (probes, _) = run_until(&mut t, &mut mib, t1 + DELAY_FIRST_PROBE_TIME);
        assert_eq!(t.state(IP), Some(NudState::Probe));
        assert_eq!(probes, vec![Solicit { ip: IP, unicast: Some(MAC) }]);
        let (probes, failed) = run_until(&mut t, &mut mib, t1 + DELAY_FIRST_PROBE_TIME + RETRANS_TIME * 10);
        assert_eq!(probes.len() + 1, UCAST_SOLICIT as usize);
        assert!(failed.is_empty());
        assert_eq!(t.state(IP), Some(NudState::Failed));
        assert_eq!(mib.XskArpCacheResFailed, 1);
    }

    /// A reply confirms a `DELAY` entry: back to `REACHABLE`, no probe.
    #[test]
    fn confirmation_in_delay_returns_to_reachable() {
        let (mut t, mut mib, t0) = table();
        t.neigh_create(IP, t0, &mut mib);
        t.neigh_update(IP, MAC, NudState::Stale, true, t0);
        t.resolve(IP, 1, t0, &mut mib);
        assert_eq!(t.state(IP), Some(NudState::Delay));
        t.neigh_update(IP, MAC, NudState::Reachable, false, t0 + Duration::from_secs(1));
        assert_eq!(t.state(IP), Some(NudState::Reachable));
        let (probes, _) = run_until(&mut t, &mut mib, t0 + DELAY_FIRST_PROBE_TIME * 2);
        assert!(probes.is_empty());
        assert_eq!(t.state(IP), Some(NudState::Reachable));
    }

    /// neigh_confirm (TCP's forward progress): a confirmed entry stays
    /// `REACHABLE` past its reachable time, and a `DELAY` one goes back to
    /// `REACHABLE` without a probe; an unknown address creates nothing.
    #[test]
    fn upper_layer_confirmation_keeps_an_entry_reachable() {
        let (mut t, mut mib, t0) = table();
        t.neigh_confirm(IP, t0);
        assert_eq!(t.state(IP), None, "no entry, nothing created");
        t.resolve(IP, 1, t0, &mut mib);
        t.neigh_update(IP, MAC, NudState::Reachable, false, t0);
        let rt = t.reachable_time();
        let t1 = t0 + rt - Duration::from_secs(1);
        t.neigh_confirm(IP, t1);
        run_until(&mut t, &mut mib, t0 + rt + Duration::from_millis(20));
        assert_eq!(t.state(IP), Some(NudState::Reachable), "confirmed at {t1:?}: reachable until {:?}", t1 + rt);
        // Unconfirmed: STALE, then DELAY on use; a confirmation in DELAY
        // takes it back to REACHABLE with no probe.
        run_until(&mut t, &mut mib, t1 + rt + Duration::from_millis(20));
        assert_eq!(t.state(IP), Some(NudState::Stale));
        let t2 = t1 + rt + Duration::from_secs(1);
        t.resolve(IP, 2, t2, &mut mib);
        assert_eq!(t.state(IP), Some(NudState::Delay));
        t.neigh_confirm(IP, t2 + Duration::from_secs(1));
        let (probes, _) = run_until(&mut t, &mut mib, t2 + DELAY_FIRST_PROBE_TIME + Duration::from_millis(1));
        assert!(probes.is_empty(), "{probes:?}");
        assert_eq!(t.state(IP), Some(NudState::Reachable));
    }

    /// __neigh_update: a different address replaces a valid one only with
    /// override; STALE with the same address keeps REACHABLE.
    #[test]
    fn update_rules() {
        let (mut t, mut mib, t0) = table();
        assert!(t.neigh_update(IP, MAC, NudState::Stale, true, t0).is_empty());
        assert_eq!(t.state(IP), None, "no entry, nothing created");
        t.neigh_create(IP, t0, &mut mib);
        t.neigh_update(IP, MAC, NudState::Reachable, false, t0);
        t.neigh_update(IP, MAC, NudState::Stale, false, t0);
        assert_eq!(t.state(IP), Some(NudState::Reachable), "STALE does not downgrade the same address");
        t.neigh_update(IP, MAC2, NudState::Reachable, false, t0);
        assert_eq!(t.lookup(IP), Some(MAC), "no override: the address stays");
        assert!(!t.override_allowed(IP, t0 + LOCKTIME), "locktime not yet passed");
        assert!(t.override_allowed(IP, t0 + LOCKTIME + Duration::from_millis(1)));
        t.neigh_update(IP, MAC2, NudState::Stale, true, t0);
        assert_eq!((t.lookup(IP), t.state(IP)), (Some(MAC2), Some(NudState::Stale)));
    }

    /// Linux drops the oldest waiting packet (unresolved_discards).
    #[test]
    fn arp_queue_is_bounded() {
        let (mut t, mut mib, now) = table();
        for i in 0..ARP_QUEUE_LEN as u32 {
            assert!(matches!(t.resolve(IP, i, now, &mut mib), Resolution::Queued { discarded: None, .. }));
        }
        assert_eq!(t.resolve(IP, 999, now, &mut mib), Resolution::Queued { probe: false, discarded: Some(0) });
        assert_eq!(mib.XskArpCacheUnresolvedDiscards, 1);
        assert_eq!(t.queued(), ARP_QUEUE_LEN);
    }

    fn ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + 2 + i as u32)
    }

    /// Entries from a flood stop at gc_thresh3; entries no timer holds and
    /// not updated in the last 5 s make room; an entry in use is never taken.
    #[test]
    fn table_is_bounded_by_gc_thresh3_and_spares_entries_in_use() {
        let (mut t, mut mib, t0) = table();
        t.resolve(IP, 1, t0, &mut mib);
        t.neigh_update(IP, MAC, NudState::Reachable, false, t0);
        for i in 0..10_000 {
            if t.neigh_create(ip(i), t0, &mut mib) {
                t.neigh_update(ip(i), MAC2, NudState::Stale, true, t0);
            }
        }
        assert_eq!(t.len(), GC_THRESH3);
        assert_eq!(mib.XskArpCacheEntries, GC_THRESH3 as u64);
        assert_eq!(mib.XskArpCacheAllocs, GC_THRESH3 as u64);
        assert_eq!(mib.XskArpCacheTableFulls, 10_000 + 1 - GC_THRESH3 as u64);
        assert_eq!(mib.XskArpCacheDestroys, 0, "all updated within 5 s");
        assert_eq!(t.state(IP), Some(NudState::Reachable));
        // 5 s later the oldest unused entries can go, down to gc_thresh2.
        let t1 = t0 + FORCED_GC_AGE + Duration::from_millis(1);
        assert!(t.neigh_create(ip(20_000), t1, &mut mib));
        assert_eq!(t.len(), GC_THRESH2);
        assert_eq!(mib.XskArpCacheEntries, GC_THRESH2 as u64);
        assert_eq!(t.state(IP), Some(NudState::Reachable), "the neighbour in use stays");
        assert_eq!(t.state(ip(0)), None, "the oldest flood entry went");
        assert_eq!(mib.XskArpCacheForcedGcRuns, 10_000 + 1 - GC_THRESH3 as u64 + 2);
    }

    /// Above gc_thresh1 the periodic collection removes entries unused for
    /// gc_stale_time; below it, none.
    #[test]
    fn periodic_gc_keeps_gc_thresh1() {
        let (mut t, mut mib, t0) = table();
        for i in 0..GC_THRESH1 - 1 {
            t.neigh_create(ip(i), t0, &mut mib);
            t.neigh_update(ip(i), MAC2, NudState::Stale, true, t0);
        }
        t.expire(t0 + GC_STALE_TIME * 3, &mut mib);
        assert_eq!(t.len(), GC_THRESH1 - 1, "below gc_thresh1 nothing goes");
        assert_eq!(t.next_deadline(), None);
        let t1 = t0 + GC_STALE_TIME * 3;
        t.neigh_create(ip(1000), t1, &mut mib);
        t.neigh_update(ip(1000), MAC2, NudState::Stale, true, t1);
        let at = t.next_deadline().expect("the periodic collection runs at gc_thresh1");
        assert!(at <= t1 + GC_PERIOD);
        t.expire(at, &mut mib);
        assert_eq!(t.len(), 1, "only the fresh entry stays");
        assert_eq!(mib.XskArpCacheDestroys, GC_THRESH1 as u64 - 1);
        assert!(mib.XskArpCachePeriodicGcRuns >= 12);
    }

    #[test]
    fn entries_list_as_ip_neigh() {
        let (mut t, mut mib, t0) = table();
        t.resolve(IP, 1, t0, &mut mib);
        t.neigh_create(ip(5), t0, &mut mib);
        t.neigh_update(ip(5), MAC2, NudState::Stale, true, t0);
        let e = t.entries();
        assert_eq!(e[0], NeighEntry { ip: IP, lladdr: None, state: "INCOMPLETE".into() });
        assert_eq!(e[1], NeighEntry { ip: ip(5), lladdr: Some("02:00:00:00:00:02".into()), state: "STALE".into() });
    }
}
