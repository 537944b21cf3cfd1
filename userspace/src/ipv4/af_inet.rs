//! The `AF_INET` protocol switch (net/ipv4/af_inet.c, `inetsw_array`): which
//! operations table serves a sock of a given type.

use crate::proto::Proto;
use crate::sock::{Sock, SockType};

/// The operations of `sock`'s protocol (`sk->sk_prot`).
#[inline]
pub fn sk_prot(sock: &Sock) -> &'static Proto {
    match sock.sock_type {
        SockType::Dgram => &super::udp::UDP_PROT,
        SockType::Stream => &super::tcp::prot::TCP_PROT,
    }
}
