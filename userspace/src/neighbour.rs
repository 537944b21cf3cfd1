//! The neighbour table for IPv4: ARP resolution (net/core/neighbour.c,
//! net/ipv4/arp.c).
//!
//! An entry is `Incomplete` while we ask (packets for it wait on its
//! `arp_queue`, bounded), `Reachable` once answered. An incomplete entry is
//! asked again every `retrans_time` up to `mcast_solicit` times (Linux
//! defaults: 1 s, 3) and then fails, dropping what waited, counted. Entries
//! not confirmed for `gc_stale_time` (60 s) are forgotten and resolved anew.
//! What waits is generic: the table does not know about frames.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::wire::EthernetAddress;

pub const RETRANS_TIME: Duration = Duration::from_secs(1);
pub const MCAST_SOLICIT: u8 = 3;
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

#[derive(Debug)]
struct Neighbour<T> {
    state: State,
    arp_queue: VecDeque<T>,
}

/// What the output path should do for a next hop.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution<T> {
    /// Known: send the packet (handed back) to this address.
    Reachable(EthernetAddress, T),
    /// Unknown: the packet waits; send an ARP request when `probe` is true.
    Queued { probe: bool },
    /// Its queue is full: the packet is handed back to be dropped.
    QueueFull(T),
}

pub struct NeighTable<T> {
    entries: HashMap<Ipv4Addr, Neighbour<T>>,
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
        NeighTable { entries: HashMap::new() }
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
        let mut arp_queue = VecDeque::new();
        arp_queue.push_back(pkt);
        self.entries.insert(
            ip,
            Neighbour { state: State::Incomplete { probes: 1, next_probe: now + RETRANS_TIME }, arp_queue },
        );
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
                std::mem::take(&mut n.arp_queue)
            }
            None => {
                if create && self.entries.len() < MAX_ENTRIES {
                    self.entries.insert(
                        ip,
                        Neighbour { state: State::Reachable { mac, confirmed: now }, arp_queue: VecDeque::new() },
                    );
                }
                VecDeque::new()
            }
        }
    }

    /// Runs the timers: retransmit probes, fail entries that never answered,
    /// forget stale ones. Cheap when nothing is due; call it now and then.
    pub fn expire(&mut self, now: Instant) -> Expired<T> {
        let mut out = Expired { probes: Vec::new(), failed: Vec::new() };
        self.entries.retain(|ip, n| match &mut n.state {
            State::Incomplete { probes, next_probe } => {
                if now < *next_probe {
                    return true;
                }
                if *probes >= MCAST_SOLICIT {
                    out.failed.extend(n.arp_queue.drain(..));
                    return false;
                }
                *probes += 1;
                *next_probe = now + RETRANS_TIME;
                out.probes.push(*ip);
                true
            }
            State::Reachable { confirmed, .. } => now.duration_since(*confirmed) < GC_STALE_TIME,
        });
        out
    }

    /// Drops everything that waits (on shutdown): the caller frees it.
    pub fn drain_queued(&mut self) -> Vec<T> {
        self.entries.values_mut().flat_map(|n| n.arp_queue.drain(..)).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

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
