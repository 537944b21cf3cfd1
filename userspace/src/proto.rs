//! A protocol's operations behind the socket calls (`struct proto`,
//! include/net/sock.h): what `connect()`, `sendto()` and the loop's transmit
//! step do for socks of that protocol, so that the socket layer and the loop
//! call through one table instead of matching on the protocol everywhere.
//!
//! Each protocol defines its table beside its code (`udp_prot` in
//! `crate::ipv4::udp`, as in net/ipv4/udp.c; `tcp_prot` in `crate::ipv4::tcp::prot`), and
//! `crate::ipv4::af_inet::sk_prot` finds it for a sock (`inetsw_array`).

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::time::Instant;

use crate::errno::Errno;
use crate::inet_hashtables::InetHashTables;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::route::OutRoute;
use crate::sock::Sock;

/// What a socket call that changes the stack borrows: the protocol state,
/// the device queue (to send a SYN), the socket tables (to bind a port), and
/// the time.
pub struct ProtoCtx<'a> {
    /// The protocol state.
    pub net: &'a mut Net,
    /// The device queue.
    pub q: &'a mut NetdevQueue,
    /// The socket tables.
    pub socks: &'a mut InetHashTables,
    /// The time of the call.
    pub now: Instant,
}

/// One protocol's operations.
pub struct Proto {
    /// The protocol's name as `/proc/net/protocols` shows it (`UDP`).
    pub name: &'static str,
    /// Its IP protocol number (`IPPROTO_UDP`).
    pub protocol: u8,
    /// `connect()` to `addr` (`ip4_datagram_connect` for UDP, on a bound
    /// sock; `tcp_v4_connect` for TCP, which binds a port itself).
    ///
    /// # Errors
    ///
    /// The protocol's: none for UDP; for TCP `EINPROGRESS` once the SYN is
    /// out, and those of `tcp_v4_connect`.
    pub connect: fn(cx: &mut ProtoCtx<'_>, sock: &Arc<Sock>, addr: SocketAddrV4) -> Result<(), Errno>,
    /// The checks of a send of `len` bytes to `dst` routed as `route`, with
    /// `mtu` the MTU the send is laid out for (the path MTU, or the device's
    /// under `IP_PMTUDISC_PROBE`), made before a frame is taken for it
    /// (`udp_sendmsg`'s order).
    ///
    /// # Errors
    ///
    /// The errno the send fails with (`EMSGSIZE`, `EINVAL`, `ENETUNREACH`,
    /// `EACCES`, or the sock's pending error).
    pub sendmsg_check: fn(sock: &Sock, len: usize, dst: SocketAddrV4, route: OutRoute, mtu: usize) -> Result<(), Errno>,
    /// Sends up to `budget` buffers from the sock's write queue through the
    /// IP output path at `now`; returns how many it took.
    pub push_pending: fn(net: &mut Net, q: &mut NetdevQueue, sock: &Sock, budget: usize, now: Instant) -> usize,
}
