//! The neighbour table for IPv4: ARP resolution (net/core/neighbour.c,
//! net/ipv4/arp.c).
//!
//! An entry is `Incomplete` while we ask (packets for it wait on its
//! `arp_queue`, bounded), `Reachable` once answered. An incomplete entry is
//! asked again every `retrans_time` up to `mcast_solicit` times (Linux
//! defaults: 1 s, 3) and then fails, dropping what waited, counted. Entries
//! not confirmed for `gc_stale_time` (60 s) are forgotten and resolved anew.
//! What waits is generic: the table does not know about frames.
//!
//! Time is passed in: each entry arms one timer in a [`TimerQueue`] (its next
//! probe, or the moment it goes stale), [`NeighTable::next_deadline`] says
//! when the table needs [`NeighTable::expire`] again, and nothing here reads
//! a clock.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::timer::TimerQueue;
use crate::wire::EthernetAddress;

/// `retrans_time`: how long an incomplete entry waits for an answer.
pub const RETRANS_TIME: Duration = Duration::from_secs(1);
/// `mcast_solicit`: requests sent before an entry fails.
pub const MCAST_SOLICIT: u8 = 3;
/// `gc_stale_time`: how long an unconfirmed entry is kept.
pub const GC_STALE_TIME: Duration = Duration::from_secs(60);
/// Packets that may wait for one neighbour (Linux bounds by bytes,
/// unres_qlen_bytes = 212992; with 2 KiB frames this is about the same).
pub const ARP_QUEUE_LEN: usize = 100;
/// Entries before the oldest incomplete ones are dropped.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Debug)]
enum State {
    Incomplete { probes: u8, next_probe: Instant },
    Reachable { mac: EthernetAddress, confirmed: Instant },
}

impl State {
    /// When this entry's timer must run: its next probe, or when it goes stale.
    fn deadline(&self) -> Instant {
        match *self {
            State::Incomplete { next_probe, .. } => next_probe,
            State::Reachable { confirmed, .. } => confirmed + GC_STALE_TIME,
        }
    }
}

#[derive(Debug)]
struct Neighbour<T> {
    state: State,
    arp_queue: VecDeque<T>,
    /// The deadline of this entry's pending timer in the queue, if any.
    timer: Option<Instant>,
}

impl<T> Neighbour<T> {
    fn new(state: State) -> Neighbour<T> {
        Neighbour { state, arp_queue: VecDeque::new(), timer: None }
    }
}

/// What the output path should do for a next hop.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<T> {
    /// Known: send the packet (handed back) to this address.
    Reachable(EthernetAddress, T),
    /// Unknown: the packet waits; send an ARP request when `probe` is true.
    Queued {
        /// Whether this packet started the resolution (send the first request).
        probe: bool,
    },
    /// Its queue is full: the packet is handed back to be dropped.
    QueueFull(T),
}

/// The neighbour table: an entry per next hop, with what waits for it.
pub struct NeighTable<T> {
    entries: HashMap<Ipv4Addr, Neighbour<T>>,
    timers: TimerQueue<Ipv4Addr>,
}

/// What a timer run decided.
pub struct Expired<T> {
    /// Neighbours to ask again.
    pub probes: Vec<Ipv4Addr>,
    /// Packets whose neighbour never answered.
    pub failed: Vec<T>,
}

impl<T> Default for NeighTable<T> {
    fn default() -> Self {
        NeighTable { entries: HashMap::new(), timers: TimerQueue::default() }
    }
}

impl<T> NeighTable<T> {
    /// Resolves `ip` for a packet `pkt` about to be sent.
    pub fn resolve(&mut self, ip: Ipv4Addr, pkt: T, now: Instant) -> Resolution<T> {
        if let Some(n) = self.entries.get_mut(&ip) {
            match n.state {
                State::Reachable { mac, .. } => return Resolution::Reachable(mac, pkt),
                State::Incomplete { .. } => {
                    if n.arp_queue.len() >= ARP_QUEUE_LEN {
                        return Resolution::QueueFull(pkt);
                    }
                    n.arp_queue.push_back(pkt);
                    return Resolution::Queued { probe: false };
                }
            }
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Resolution::QueueFull(pkt);
        }
        let mut n = Neighbour::new(State::Incomplete { probes: 1, next_probe: now + RETRANS_TIME });
        n.arp_queue.push_back(pkt);
        self.timers.arm(ip, n.state.deadline(), &mut n.timer);
        self.entries.insert(ip, n);
        Resolution::Queued { probe: true }
    }

    /// The address of `ip` if known, without queueing anything.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        match self.entries.get(&ip)?.state {
            State::Reachable { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    /// ARP said `ip` is at `mac`. As arp_process(): a request to us creates the
    /// entry (`create`); other ARP only updates an entry we already have.
    /// Returns what waited for it, to be sent now.
    pub fn update(&mut self, ip: Ipv4Addr, mac: EthernetAddress, create: bool, now: Instant) -> VecDeque<T> {
        match self.entries.get_mut(&ip) {
            Some(n) => {
                n.state = State::Reachable { mac, confirmed: now };
                self.timers.arm(ip, n.state.deadline(), &mut n.timer);
                std::mem::take(&mut n.arp_queue)
            }
            None => {
                if create && self.entries.len() < MAX_ENTRIES {
                    let mut n = Neighbour::new(State::Reachable { mac, confirmed: now });
                    self.timers.arm(ip, n.state.deadline(), &mut n.timer);
                    self.entries.insert(ip, n);
                }
                VecDeque::new()
            }
        }
    }

    /// Runs the timers due at `now`: retransmit probes, fail entries that
    /// never answered, forget stale ones. Touches only entries whose timer is
    /// due; call it when [`Self::next_deadline`] has passed.
    pub fn expire(&mut self, now: Instant) -> Expired<T> {
        let mut out = Expired { probes: Vec::new(), failed: Vec::new() };
        while let Some((at, ip)) = self.timers.pop_expired(now) {
            let Some(n) = self.entries.get_mut(&ip) else { continue };
            if n.timer != Some(at) {
                continue; // superseded by an earlier entry for the same key
            }
            n.timer = None;
            let due = n.state.deadline();
            if due > now {
                // Confirmed since the timer was armed: wait for the new deadline.
                self.timers.arm(ip, due, &mut n.timer);
                continue;
            }
            match &mut n.state {
                State::Incomplete { probes, next_probe } => {
                    if *probes >= MCAST_SOLICIT {
                        out.failed.extend(n.arp_queue.drain(..));
                        self.entries.remove(&ip);
                    } else {
                        *probes += 1;
                        *next_probe = now + RETRANS_TIME;
                        self.timers.arm(ip, *next_probe, &mut n.timer);
                        out.probes.push(ip);
                    }
                }
                State::Reachable { .. } => {
                    self.entries.remove(&ip);
                }
            }
        }
        out
    }

    /// When [`Self::expire`] has work next, if any entry has a timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Drops everything that waits (on shutdown): the caller frees it.
    pub fn drain_queued(&mut self) -> Vec<T> {
        self.entries.values_mut().flat_map(|n| n.arp_queue.drain(..)).collect()
    }

    /// Entries in the table.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    #[test]
    fn queues_until_answered_then_flushes_in_order() {
        let mut t = NeighTable::default();
        let now = Instant::now();
        assert_eq!(t.resolve(IP, 1, now), Resolution::Queued { probe: true });
        assert_eq!(t.resolve(IP, 2, now), Resolution::Queued { probe: false });
        assert_eq!(t.lookup(IP), None);
        let flushed: Vec<_> = t.update(IP, MAC, false, now).into_iter().collect();
        assert_eq!(flushed, vec![1, 2]);
        assert_eq!(t.resolve(IP, 3, now), Resolution::Reachable(MAC, 3));
    }

    #[test]
    fn gives_up_after_mcast_solicit_probes() {
        let mut t = NeighTable::default();
        let mut now = Instant::now();
        t.resolve(IP, 7, now);
        let mut probes = 1;
        loop {
            now += RETRANS_TIME;
            let e = t.expire(now);
            probes += e.probes.len();
            if !e.failed.is_empty() {
                assert_eq!(e.failed, vec![7]);
                break;
            }
        }
        assert_eq!(probes, MCAST_SOLICIT as usize);
        assert!(t.is_empty());
    }

    /// On virtual time: the table says when it needs to run, and a confirmed
    /// entry's stale timer moves with the confirmation.
    #[test]
    fn deadlines_follow_probes_and_confirmations() {
        let mut t = NeighTable::default();
        let t0 = Instant::now();
        assert_eq!(t.next_deadline(), None);
        t.resolve(IP, 1, t0);
        assert_eq!(t.next_deadline(), Some(t0 + RETRANS_TIME));
        assert!(t.expire(t0 + RETRANS_TIME / 2).probes.is_empty(), "not due yet");
        let confirmed = t0 + RETRANS_TIME / 2;
        assert_eq!(t.update(IP, MAC, false, confirmed).len(), 1);
        // The probe timer fires, finds the entry reachable and re-arms for staleness.
        let e = t.expire(t0 + RETRANS_TIME);
        assert!(e.probes.is_empty() && e.failed.is_empty());
        assert_eq!(t.next_deadline(), Some(confirmed + GC_STALE_TIME));
        // A later confirmation pushes staleness out.
        let again = confirmed + GC_STALE_TIME / 2;
        t.update(IP, MAC, false, again);
        t.expire(confirmed + GC_STALE_TIME);
        assert_eq!(t.lookup(IP), Some(MAC));
        assert_eq!(t.next_deadline(), Some(again + GC_STALE_TIME));
        t.expire(again + GC_STALE_TIME);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn arp_queue_is_bounded() {
        let mut t = NeighTable::default();
        let now = Instant::now();
        for i in 0..ARP_QUEUE_LEN {
            assert!(matches!(t.resolve(IP, i, now), Resolution::Queued { .. }));
        }
        assert_eq!(t.resolve(IP, 999, now), Resolution::QueueFull(999));
    }

    #[test]
    fn unsolicited_reply_does_not_create_but_request_does() {
        let mut t: NeighTable<u8> = NeighTable::default();
        let now = Instant::now();
        t.update(IP, MAC, false, now);
        assert_eq!(t.lookup(IP), None);
        t.update(IP, MAC, true, now);
        assert_eq!(t.lookup(IP), Some(MAC));
        assert!(t.expire(now + GC_STALE_TIME).probes.is_empty());
        assert!(t.is_empty());
    }
}
