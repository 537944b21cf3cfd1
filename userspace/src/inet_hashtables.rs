//! The socket tables (net/ipv4/inet_hashtables.c, udp.c's `udp_table`):
//! where the receive path looks a sock up by what a packet is addressed to,
//! and where `bind()` and autobind find a free port.
//!
//! Today one table: bound socks by (protocol, local port), which is how UDP
//! demultiplexes. TCP adds the established table (by the 4-tuple) and the
//! listening table (by port) beside it; the receive path will look in the
//! established one first, as `__inet_lookup` does. Lookups are hash lookups
//! with a multiplicative hash: no SipHash rounds per packet.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crate::errno::Errno;
use crate::sock::Sock;

/// The ephemeral range of `net.ipv4.ip_local_port_range`.
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// The key socks are found by: protocol and local port. TCP will add the
/// remote address for established connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DemuxKey {
    /// The IP protocol number (`IPPROTO_UDP`).
    pub protocol: u8,
    /// The local port.
    pub port: u16,
}

/// A multiplicative hasher for small keys (FxHash): the per-packet lookup
/// costs a multiply, not SipHash's rounds. Keys are not attacker-chosen in
/// a way that matters: there are at most 65536 ports per protocol.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Bound socks by protocol and port.
pub type DemuxTable = HashMap<DemuxKey, Arc<Sock>, BuildHasherDefault<FxHasher>>;

/// The socket tables of one stack.
pub struct InetHashTables {
    bound: DemuxTable,
    /// Where the next ephemeral port search starts (0: at the range's start).
    next_ephemeral: u16,
}

impl Default for InetHashTables {
    /// Empty tables. The ephemeral search starts at a random port of the
    /// range, as Linux's does (`inet_hash_connect` offsets it by a secret
    /// hash): two runs of a program do not reuse the same port, which the
    /// peer may still hold in TIME-WAIT.
    fn default() -> Self {
        use std::hash::BuildHasher;
        let span = u64::from(EPHEMERAL_PORTS.end() - EPHEMERAL_PORTS.start()) + 1;
        let offset = std::collections::hash_map::RandomState::new().hash_one(0u8) % span;
        InetHashTables { bound: DemuxTable::default(), next_ephemeral: EPHEMERAL_PORTS.start() + offset as u16 }
    }
}

impl InetHashTables {
    /// The sock bound to `port` for `protocol`, if any.
    #[inline]
    pub fn lookup(&self, key: &DemuxKey) -> Option<&Arc<Sock>> {
        self.bound.get(key)
    }

    /// Binds `sock` to `addr` for `protocol` (`inet_bind` → `get_port`):
    /// port 0 picks an ephemeral port; the address must be `local` or 0.0.0.0.
    ///
    /// # Errors
    ///
    /// `EINVAL` if the sock is bound already, `EADDRNOTAVAIL` for an address
    /// not ours, `EADDRINUSE` if the port is taken or no ephemeral port is free.
    pub fn hash(&mut self, sock: &Arc<Sock>, protocol: u8, addr: SocketAddrV4, local: Ipv4Addr) -> Result<(), Errno> {
        if sock.local().is_some() {
            return Err(Errno::EINVAL);
        }
        let ip = *addr.ip();
        if !ip.is_unspecified() && ip != local {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let port = if addr.port() == 0 { self.ephemeral_port(protocol)? } else { addr.port() };
        let key = DemuxKey { protocol, port };
        if self.bound.contains_key(&key) {
            return Err(Errno::EADDRINUSE);
        }
        sock.set_local(SocketAddrV4::new(ip, port));
        self.bound.insert(key, sock.clone());
        Ok(())
    }

    /// Binds `sock` to a free ephemeral port for `protocol` on `ip`, skipping
    /// ports for which `taken` says yes (TCP: the 4-tuple with the peer is
    /// in use, TIME-WAIT included, as `__inet_hash_connect` checks); returns
    /// the port.
    ///
    /// # Errors
    ///
    /// `EADDRINUSE` when no port in the range is free.
    pub fn hash_connect(
        &mut self,
        sock: &Arc<Sock>,
        protocol: u8,
        ip: Ipv4Addr,
        taken: impl Fn(u16) -> bool,
    ) -> Result<u16, Errno> {
        let (low, high) = (*EPHEMERAL_PORTS.start(), *EPHEMERAL_PORTS.end());
        for _ in EPHEMERAL_PORTS {
            let port = self.next_ephemeral.clamp(low, high);
            self.next_ephemeral = if port >= high { low } else { port + 1 };
            let key = DemuxKey { protocol, port };
            if !self.bound.contains_key(&key) && !taken(port) {
                sock.set_local(SocketAddrV4::new(ip, port));
                self.bound.insert(key, sock.clone());
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }

    /// Removes `sock` from the table, if it is the one bound to its port.
    pub fn unhash(&mut self, sock: &Arc<Sock>, protocol: u8) {
        if let Some(local) = sock.local() {
            let key = DemuxKey { protocol, port: local.port() };
            if self.bound.get(&key).is_some_and(|s| Arc::ptr_eq(s, sock)) {
                self.bound.remove(&key);
            }
        }
    }

    /// Every bound sock.
    pub fn socks(&self) -> impl Iterator<Item = &Arc<Sock>> {
        self.bound.values()
    }

    /// A free port from the ephemeral range, searched from where the last
    /// search stopped (`inet_csk_find_open_port`, simplified).
    fn ephemeral_port(&mut self, protocol: u8) -> Result<u16, Errno> {
        let (low, high) = (*EPHEMERAL_PORTS.start(), *EPHEMERAL_PORTS.end());
        for _ in EPHEMERAL_PORTS {
            let port = self.next_ephemeral.clamp(low, high);
            self.next_ephemeral = if port >= high { low } else { port + 1 };
            if !self.bound.contains_key(&DemuxKey { protocol, port }) {
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }
}
