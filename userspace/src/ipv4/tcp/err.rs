//! TCP's ICMP error handler (net/ipv4/tcp_ipv4.c `tcp_v4_err`, `tcp_req_err`,
//! `tcp_v4_mtu_reduced`, `tcp_ld_RTO_revert`; net/ipv4/tcp_output.c
//! `tcp_sync_mss`, net/ipv4/tcp_input.c `tcp_simple_retransmit`): the stage
//! that turns an ICMP error quoting one of our segments into what Linux makes
//! of it. The ICMP side (`icmp_rcv`, `icmp_unreach`) has checked the message
//! and found the quoted 4-tuple; this module finds the connection and acts.
//!
//! | ICMP | SYN-SENT / SYN-RECV | ESTABLISHED and later | request sock |
//! |---|---|---|---|
//! | fragmentation needed | path MTU lowered, MSS lowered, segments too big sent again | the same | nothing |
//! | other destination unreachable | the connection fails with `icmp_err_convert`'s errno (`ECONNREFUSED` for a port, `EHOSTUNREACH` for a host, `ENETUNREACH`, `ENOPROTOOPT`, …) | `sk_err_soft`: `SO_ERROR`, and the error a later timeout gives instead of `ETIMEDOUT`; net/host unreachable also reverts one RTO backoff (RFC 6069) | net/host unreachable drops it (`ListenDrops`) |
//! | time exceeded | fails with `EHOSTUNREACH` | `sk_err_soft` `EHOSTUNREACH` | dropped |
//! | parameter problem | fails with `EPROTO` | `sk_err_soft` `EPROTO` | dropped |
//! | source quench, redirect | nothing | nothing | nothing |
//!
//! Linux and RFC 1122 §4.2.3.9 differ: the RFC lets only protocol and port
//! unreachable abort a connection and asks that the others be soft; Linux
//! aborts a connection still in its handshake on any of them (RFC 5461 §4
//! discusses this choice: a connect that would otherwise wait 127 s fails at
//! once), and never aborts an established one, whatever the code (its
//! `IP_RECVERR` makes the error hard; xsknet has no `IP_RECVERR`). xsknet
//! does what Linux does.
//!
//! A quoted sequence number outside `snd_una`..`snd_nxt` (for a request
//! sock: other than our ISN) is not about a segment in flight, so possibly
//! forged (RFC 5927 §4.1): `TcpExtOutOfWindowIcmps`, ignored.
//! `LINUX_MIB_LOCKDROPPEDICMPS` has no counterpart: Linux counts an ICMP
//! that arrives while the application holds the socket lock
//! (`sock_owned_by_user`), and xsknet's loop owns every control block when
//! it runs, so that never happens; nor is an ICMP ever deferred as Linux
//! defers a fragmentation needed (`TCP_MTU_REDUCED_DEFERRED`).

use std::net::SocketAddrV4;
use std::time::Instant;

use super::cb::{CaState, TcpCb};
use super::input::{finish, tcp_done, Fate};
use super::table::FourTuple;
use super::timestamps::TCP_MIN_SND_MSS;
use crate::errno::Errno;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::stream::TcpState;
use crate::umem::Umem;
use crate::wire::icmp::{msg_type, unreach_code};

/// Bytes of IPv4 and TCP header between a path MTU and an MSS (no options).
const IP_TCP_HEADERS: u32 = 40;

/// An ICMP error about a TCP segment, as `icmp_socket_deliver` hands it on.
#[derive(Clone, Copy, Debug)]
pub struct TcpIcmpErr {
    /// ICMP type.
    pub msg_type: u8,
    /// ICMP code.
    pub code: u8,
    /// `info`: the next hop's MTU of a fragmentation needed (bytes).
    pub mtu: u16,
    /// The quoted segment's source: our address and port.
    pub local: SocketAddrV4,
    /// The quoted segment's destination: the peer.
    pub peer: SocketAddrV4,
    /// The quoted segment's sequence number.
    pub seq: u32,
}

/// The errno of an ICMP error and whether it is a fragmentation needed;
/// `None` for the messages TCP ignores (source quench, redirect, unknown
/// codes).
fn tcp_err_errno(e: &TcpIcmpErr, convert: impl Fn(u8) -> Option<(Errno, bool)>) -> Option<Errno> {
    match e.msg_type {
        msg_type::PARAMETER_PROBLEM => Some(Errno::EPROTO),
        msg_type::TIME_EXCEEDED => Some(Errno::EHOSTUNREACH),
        msg_type::DEST_UNREACH => convert(e.code).map(|(errno, _)| errno),
        _ => None,
    }
}

/// `tcp_v4_err`: an ICMP error quoting a segment from `e.local` to
/// `e.peer`. `convert` is `icmp_err_convert`. No connection, request sock
/// or TIME-WAIT sock of that 4-tuple is an `IcmpInErrors`; a TIME-WAIT sock
/// ignores it.
pub fn tcp_v4_err(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    e: &TcpIcmpErr,
    convert: impl Fn(u8) -> Option<(Errno, bool)>,
    now: Instant,
) {
    let key = FourTuple { local: e.local, remote: e.peer };
    if let Some(id) = net.tcp.lookup_established(&key) {
        let Some(mut cb) = net.tcp.take(id) else { return };
        let fate = tcp_err_sock(net, q, umem, &mut cb, e, convert, now);
        finish(net, id, cb, fate);
        return;
    }
    if net.tcp.tw.contains_key(&key) {
        return;
    }
    if !tcp_req_err(net, e) {
        net.mib.IcmpInErrors += 1;
    }
}

/// `tcp_req_err`: an ICMP error about the SYN-ACK of a request sock. Its
/// sequence number must be our ISN (else `TcpExtOutOfWindowIcmps`); a
/// parameter problem, time exceeded, or network or host unreachable drops
/// the request (`tcp_listendrop`: `TcpExtListenDrops`), silently: accept()
/// must not return network errors (POSIX). False when there is no such
/// request sock.
fn tcp_req_err(net: &mut Net, e: &TcpIcmpErr) -> bool {
    let Some(lid) = net.tcp.lookup_listener(e.local.port()) else { return false };
    let Some(l) = net.tcp.get_mut(lid).and_then(|l| l.listener.as_mut()) else { return false };
    let Some(req) = l.syn_queue.get(&e.peer) else { return false };
    let abort = match e.msg_type {
        msg_type::PARAMETER_PROBLEM | msg_type::TIME_EXCEEDED => true,
        msg_type::DEST_UNREACH => matches!(e.code, unreach_code::NET_UNREACH | unreach_code::HOST_UNREACH),
        _ => false,
    };
    if e.seq != req.iss {
        net.mib.TcpExtOutOfWindowIcmps += 1;
    } else if abort {
        l.syn_queue.remove(&e.peer);
        net.mib.TcpExtListenDrops += 1;
    }
    true
}

/// `between(seq, a, b)`: `a` ≤ `seq` ≤ `b` in sequence space.
fn between(seq: u32, a: u32, b: u32) -> bool {
    b.wrapping_sub(a) >= seq.wrapping_sub(a)
}

/// `tcp_v4_err` for a connection: the sequence check, then by type.
fn tcp_err_sock(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    e: &TcpIcmpErr,
    convert: impl Fn(u8) -> Option<(Errno, bool)>,
    now: Instant,
) -> Fate {
    if cb.state == TcpState::Close {
        return Fate::Keep;
    }
    if cb.state != TcpState::Listen && !between(e.seq, cb.snd_una, cb.snd_nxt) {
        net.mib.TcpExtOutOfWindowIcmps += 1;
        return Fate::Keep;
    }
    if e.msg_type == msg_type::DEST_UNREACH && e.code == unreach_code::FRAG_NEEDED {
        if cb.state != TcpState::Listen {
            tcp_v4_mtu_reduced(net, q, umem, cb, usize::from(e.mtu), now);
        }
        return Fate::Keep;
    }
    let Some(err) = tcp_err_errno(e, convert) else { return Fate::Keep };
    if e.msg_type == msg_type::DEST_UNREACH && matches!(e.code, unreach_code::NET_UNREACH | unreach_code::HOST_UNREACH)
    {
        tcp_ld_rto_revert(cb, e.seq, now);
    }
    match cb.state {
        TcpState::SynSent | TcpState::SynRecv => {
            // tcp_done_with_error: the error, the queues purged, done.
            if !cb.orphan {
                cb.sock.set_err(err);
            }
            tcp_done(net, cb);
            Fate::Done
        }
        _ => {
            // Only an error on timeout (no IP_RECVERR).
            cb.sock.set_err_soft(Some(err));
            Fate::Keep
        }
    }
}

/// `tcp_v4_mtu_reduced`: the path MTU to the peer is lowered
/// (`__ip_rt_update_pmtu`: only down, never below `min_pmtu` 552, which
/// then locks it); when the MTU the ICMP gave is below what the path now
/// has, the packets will keep failing: `sk_err_soft` `EMSGSIZE`. Unless the
/// sock does `IP_PMTUDISC_DONT`, a path MTU below the one the MSS was cut
/// for lowers the MSS (`tcp_sync_mss`) and the segments in flight that are
/// now too big go again (`tcp_simple_retransmit`).
pub fn tcp_v4_mtu_reduced(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    mtu_info: usize,
    now: Instant,
) {
    if matches!(cb.state, TcpState::Listen | TcpState::Close) {
        return;
    }
    let peer = *cb.remote.ip();
    net.pmtu.update(peer, mtu_info, net.mtu, now);
    let dst_mtu = net.pmtu.get(peer, net.mtu, now).mtu;
    if mtu_info < dst_mtu {
        // ip_dont_fragment: TCP sends with DF unless IP_PMTUDISC_DONT.
        if cb.sock.pmtudisc() != crate::sock::PmtuDisc::Dont {
            cb.sock.set_err_soft(Some(Errno::EMSGSIZE));
        }
    }
    let cookie = if cb.pmtu_cookie == 0 { net.mtu as u32 } else { cb.pmtu_cookie };
    if cb.sock.pmtudisc() != crate::sock::PmtuDisc::Dont && cookie > dst_mtu as u32 {
        let old_mss = cb.mss;
        tcp_sync_mss(cb, dst_mtu as u32);
        tcp_simple_retransmit(net, q, umem, cb, old_mss, now);
    }
}

/// `tcp_sync_mss`: the MSS for a path MTU of `pmtu` bytes (`tcp_mtu_to_mss`:
/// less the IP and TCP headers and the timestamp option, never above the
/// MSS the peer allowed, never below `tcp_min_snd_mss`), remembered as the
/// MTU it was cut for (`icsk_pmtu_cookie`).
pub fn tcp_sync_mss(cb: &mut TcpCb, pmtu: u32) {
    let opts = if cb.ts.ok { super::ts_state::TCPOLEN_TSTAMP_ALIGNED } else { 0 };
    let mss = pmtu.saturating_sub(IP_TCP_HEADERS).max(TCP_MIN_SND_MSS).saturating_sub(opts);
    cb.mss = cb.mss.min(mss.max(TCP_MIN_SND_MSS));
    cb.pmtu_cookie = pmtu;
}

/// `tcp_simple_retransmit`: the segments in flight larger than the new MSS
/// were dropped on the way; they are lost and sent again at the new size,
/// without touching the congestion window (the data in the network did not
/// grow, only its units shrank): the connection enters Loss with its
/// ssthresh kept as `tcp_current_ssthresh` and no undo, everything in
/// flight is marked lost and goes again from `snd_una` as the window allows
/// (`tcp_xmit_retransmit_queue`, counted `TcpExtTCPSlowStartRetrans` as any
/// retransmission in Loss). xsknet keeps
/// sent data as bytes, not segments, cut at the MSS of the moment
/// (`old_mss`): when the MSS did not fall, or no more than the new MSS is in
/// flight, no segment can be too big and nothing happens; otherwise all
/// that is in flight goes again (Linux would spare the smaller segments of
/// a run of small writes).
fn tcp_simple_retransmit(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, old_mss: u32, now: Instant) {
    if !matches!(
        cb.state,
        TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::LastAck | TcpState::Closing
    ) {
        return;
    }
    let in_flight = cb.snd_nxt.wrapping_sub(cb.snd_una);
    if old_mss <= cb.mss || in_flight <= cb.mss {
        return;
    }
    if cb.ca_state != CaState::Loss {
        cb.high_seq = cb.snd_nxt;
        cb.ssthresh = cb.ssthresh.max(cb.cwnd / 2 + cb.cwnd / 4);
        cb.sack.prior_ssthresh = 0;
        cb.sack.undo_marker = None;
        cb.ca_state = CaState::Loss;
    }
    cb.sack.lost_end = cb.snd_max;
    cb.sack.high_rxt = cb.snd_una;
    cb.rtt_probe = None;
    // tcp_xmit_retransmit_queue, in Loss: what was just marked lost (not a
    // timeout's go-back-N); its retransmissions count as
    // TCPSlowStartRetrans, not TCPFastRetrans.
    let fast = net.mib.TcpExtTCPFastRetrans;
    super::output::xmit_marked_lost(net, q, umem, cb, false, now);
    let sent = net.mib.TcpExtTCPFastRetrans - fast;
    net.mib.TcpExtTCPFastRetrans = fast;
    net.mib.TcpExtTCPSlowStartRetrans += sent;
}

/// `tcp_ld_RTO_revert` (RFC 6069): a network or host unreachable for the
/// segment at `snd_una`, while it is being retransmitted with backoff,
/// says the path, not congestion, lost it: one backoff step is undone, and
/// the timer is set to the new RTO from the head's last transmission (at
/// once if that is past).
fn tcp_ld_rto_revert(cb: &mut TcpCb, seq: u32, now: Instant) {
    if seq != cb.snd_una || cb.retransmits == 0 || cb.backoff == 0 {
        return;
    }
    let Some(at) = cb.rto_at else { return };
    let sent = at.checked_sub(cb.rto_backed_off()).unwrap_or(now);
    cb.backoff -= 1;
    let remaining = (sent + cb.rto_backed_off()).max(now);
    cb.rto_at = Some(remaining);
}
