//! Error numbers of the socket API, with the text `strerror(3)` gives, so a
//! user sees exactly what Linux would say ("Too many open files").

use std::fmt;

/// An `errno` value from a socket call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// Bad file descriptor: not open.
    pub const EBADF: Errno = Errno(libc::EBADF);
    /// Permission denied: a broadcast send without `SO_BROADCAST`.
    pub const EACCES: Errno = Errno(libc::EACCES);
    /// Network is unreachable: no route.
    pub const ENETUNREACH: Errno = Errno(libc::ENETUNREACH);
    /// Resource temporarily unavailable: nothing to read, no room to send.
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// Too many open files: the descriptor limit.
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    /// Address already in use: the port is bound.
    pub const EADDRINUSE: Errno = Errno(libc::EADDRINUSE);
    /// Cannot assign requested address: not ours.
    pub const EADDRNOTAVAIL: Errno = Errno(libc::EADDRNOTAVAIL);
    /// Message too long for one datagram.
    pub const EMSGSIZE: Errno = Errno(libc::EMSGSIZE);
    /// No buffer space available: no free UMEM frame.
    pub const ENOBUFS: Errno = Errno(libc::ENOBUFS);
    /// Connection refused: a port unreachable came back.
    pub const ECONNREFUSED: Errno = Errno(libc::ECONNREFUSED);
    /// Destination address required: `send()` on an unconnected socket.
    pub const EDESTADDRREQ: Errno = Errno(libc::EDESTADDRREQ);
    /// Transport endpoint is not connected.
    pub const ENOTCONN: Errno = Errno(libc::ENOTCONN);
    /// Cannot send after transport endpoint shutdown: the loop thread is gone.
    pub const ESHUTDOWN: Errno = Errno(libc::ESHUTDOWN);
    /// Connection timed out.
    pub const ETIMEDOUT: Errno = Errno(libc::ETIMEDOUT);

    /// A non-blocking connect() has started: poll for POLLOUT.
    pub const EINPROGRESS: Errno = Errno(libc::EINPROGRESS);
    /// connect() while a connect is under way.
    pub const EALREADY: Errno = Errno(libc::EALREADY);
    /// connect() on a connected socket.
    pub const EISCONN: Errno = Errno(libc::EISCONN);
    /// The peer reset the connection.
    pub const ECONNRESET: Errno = Errno(libc::ECONNRESET);
    /// Send on a stream whose sending side is shut down, or never connected.
    pub const EPIPE: Errno = Errno(libc::EPIPE);
    /// The call does not apply to this socket type (listen on a datagram socket).
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    /// Protocol not available: a TCP option set on a datagram socket.
    pub const ENOPROTOOPT: Errno = Errno(libc::ENOPROTOOPT);
    /// Software caused connection abort: a connection aborted on our side.
    pub const ECONNABORTED: Errno = Errno(libc::ECONNABORTED);
    /// No such file or directory: `TCP_CONGESTION` names no algorithm we have.
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    /// No route to host: an ICMP host unreachable (fatal codes only on UDP).
    pub const EHOSTUNREACH: Errno = Errno(libc::EHOSTUNREACH);
    /// Host is down: an ICMP destination host unknown.
    pub const EHOSTDOWN: Errno = Errno(libc::EHOSTDOWN);
    /// Machine is not on the network: an ICMP source host isolated.
    pub const ENONET: Errno = Errno(libc::ENONET);
    /// Protocol error: an ICMP parameter problem about a datagram we sent.
    pub const EPROTO: Errno = Errno(libc::EPROTO);
    /// Already there (`epoll_ctl` adding a descriptor twice).
    pub const EEXIST: Errno = Errno(libc::EEXIST);

    /// The symbolic name, as in `errno.h`.
    pub fn name(self) -> &'static str {
        match self.0 {
            libc::EBADF => "EBADF",
            libc::EACCES => "EACCES",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::EAGAIN => "EAGAIN",
            libc::EINVAL => "EINVAL",
            libc::EMFILE => "EMFILE",
            libc::EADDRINUSE => "EADDRINUSE",
            libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
            libc::EMSGSIZE => "EMSGSIZE",
            libc::ENOBUFS => "ENOBUFS",
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::EDESTADDRREQ => "EDESTADDRREQ",
            libc::ENOTCONN => "ENOTCONN",
            libc::ESHUTDOWN => "ESHUTDOWN",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::EINPROGRESS => "EINPROGRESS",
            libc::EALREADY => "EALREADY",
            libc::EISCONN => "EISCONN",
            libc::ECONNRESET => "ECONNRESET",
            libc::EPIPE => "EPIPE",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            libc::ENOPROTOOPT => "ENOPROTOOPT",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::ENOENT => "ENOENT",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            libc::EHOSTDOWN => "EHOSTDOWN",
            libc::ENONET => "ENONET",
            libc::EPROTO => "EPROTO",
            libc::EEXIST => "EEXIST",
            _ => "E?",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // glibc's strerror() texts.
        let text = match self.0 {
            libc::EBADF => "Bad file descriptor",
            libc::EACCES => "Permission denied",
            libc::ENETUNREACH => "Network is unreachable",
            libc::EAGAIN => "Resource temporarily unavailable",
            libc::EINVAL => "Invalid argument",
            libc::EMFILE => "Too many open files",
            libc::EADDRINUSE => "Address already in use",
            libc::EADDRNOTAVAIL => "Cannot assign requested address",
            libc::EMSGSIZE => "Message too long",
            libc::ENOBUFS => "No buffer space available",
            libc::ECONNREFUSED => "Connection refused",
            libc::EDESTADDRREQ => "Destination address required",
            libc::ENOTCONN => "Transport endpoint is not connected",
            libc::ESHUTDOWN => "Cannot send after transport endpoint shutdown",
            libc::ETIMEDOUT => "Connection timed out",
            libc::EINPROGRESS => "Operation now in progress",
            libc::EALREADY => "Operation already in progress",
            libc::EISCONN => "Transport endpoint is already connected",
            libc::ECONNRESET => "Connection reset by peer",
            libc::EPIPE => "Broken pipe",
            libc::EOPNOTSUPP => "Operation not supported",
            libc::ENOPROTOOPT => "Protocol not available",
            libc::ECONNABORTED => "Software caused connection abort",
            libc::ENOENT => "No such file or directory",
            libc::EHOSTUNREACH => "No route to host",
            libc::EHOSTDOWN => "Host is down",
            libc::ENONET => "Machine is not on the network",
            libc::EPROTO => "Protocol error",
            _ => return write!(f, "errno {}", self.0),
        };
        f.write_str(text)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_match_the_c_library() {
        for e in [
            Errno::EMFILE,
            Errno::EBADF,
            Errno::EADDRINUSE,
            Errno::EAGAIN,
            Errno::ECONNREFUSED,
            Errno::EINPROGRESS,
            Errno::EALREADY,
            Errno::EISCONN,
            Errno::ECONNRESET,
            Errno::EPIPE,
            Errno::EOPNOTSUPP,
        ] {
            let libc_text = std::io::Error::from_raw_os_error(e.0).to_string();
            assert!(libc_text.starts_with(&e.to_string()), "{libc_text} vs {e}");
        }
        assert_eq!(Errno::EMFILE.to_string(), "Too many open files");
    }

    /// Found by the socket_api fuzz target: `setsockopt(TCP_NODELAY)` on a datagram socket
    /// returned ENOPROTOOPT, an errno without a name or text here ("E?", "errno 92").
    #[test]
    fn every_errno_the_socket_calls_return_has_a_name_and_text() {
        for e in [
            Errno::ENOPROTOOPT,
            Errno::ECONNABORTED,
            Errno::ENOENT,
            Errno::EHOSTUNREACH,
            Errno::EHOSTDOWN,
            Errno::ENONET,
            Errno::EPROTO,
        ] {
            assert_ne!(e.name(), "E?");
            let libc_text = std::io::Error::from_raw_os_error(e.0).to_string();
            assert!(libc_text.starts_with(&e.to_string()), "{libc_text} vs {e}");
        }
        assert_eq!(Errno::ENOPROTOOPT.name(), "ENOPROTOOPT");
    }
}
