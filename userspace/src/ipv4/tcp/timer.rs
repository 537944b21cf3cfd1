//! TCP timers (net/ipv4/tcp_timer.c) on time passed in: retransmission
//! (`tcp_retransmit_timer`, with `tcp_write_timeout`'s give-up rule), the
//! zero-window probe (`tcp_probe_timer`), the delayed ACK
//! (`tcp_delack_timer_handler`), a listener's SYN-ACK retransmission
//! (`reqsk_timer_handler`), keepalive (`tcp_keepalive_timer`, with
//! `TCP_USER_TIMEOUT`) and the end of TIME-WAIT (`tw_timer_handler`).

use std::time::{Duration, Instant};

use super::cb::{CaState, TcpCb};
use super::cong;
use super::input::{finish, tcp_done, Fate};
use super::output::{
    tcp_retransmit_head, tcp_send_ack, tcp_send_active_reset, tcp_send_probe0, tcp_send_synack, tcp_xmit_probe_skb,
};
use super::{
    TCP_RESOURCE_PROBE_INTERVAL, TCP_RETRIES2, TCP_RTO_MAX, TCP_RTO_MIN, TCP_SYNACK_RETRIES, TCP_SYN_LINEAR_TIMEOUTS,
    TCP_SYN_RETRIES,
};
use crate::errno::Errno;
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::stream::TcpState;
use crate::umem::Umem;

/// Runs every TCP timer due at `now`.
pub fn tcp_timers(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, now: Instant) {
    while let Some((at, id)) = net.tcp.timers.pop_expired(now) {
        let Some(mut cb) = net.tcp.take(id) else { continue };
        if cb.timer_pending == Some(at) {
            cb.timer_pending = None;
        }
        let mut fate = Fate::Keep;
        if cb.delack_at.is_some_and(|t| t <= now) {
            delack_timer(net, q, umem, &mut cb, now);
        }
        if cb.synack_at.is_some_and(|t| t <= now) {
            synack_timer(net, q, umem, &mut cb, now);
        }
        if cb.rack.reo_at.is_some_and(|t| t <= now) {
            rack_reo_timer(net, q, umem, &mut cb, now);
        }
        if cb.rack.tlp_at.is_some_and(|t| t <= now) && cb.rto_at.is_none_or(|t| t > now) {
            super::output::tcp_send_loss_probe(net, q, umem, &mut cb, now);
        }
        if super::pacing::pacing_timer_due(&mut cb, now) {
            super::output::tcp_pace_kick(net, q, umem, &mut cb, now);
        }
        if cb.rto_at.is_some_and(|t| t <= now) {
            fate = retransmit_timer(net, q, umem, &mut cb, now);
        }
        if fate == Fate::Keep && cb.keepalive_at.is_some_and(|t| t <= now) {
            fate = keepalive_timer(net, q, umem, &mut cb, now);
        }
        finish(net, id, cb, fate);
    }
    while let Some((_, key)) = net.tcp.tw_timers.pop_expired(now) {
        match net.tcp.tw.get(&key).map(|tw| tw.expires) {
            Some(expires) if expires <= now => {
                net.tcp.tw.remove(&key);
                net.mib.TcpExtTW += 1;
            }
            Some(expires) => {
                let mut pending = None;
                net.tcp.tw_timers.arm(key, expires, &mut pending);
            }
            None => {}
        }
    }
}

/// `tcp_delack_timer_handler`: the owed ACK goes. A missed delayed ACK
/// doubles `ato` (up to the RTO), or, in interactive mode, ends that mode
/// and takes `ato` back to its minimum.
fn delack_timer(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    cb.delack_at = None;
    if !cb.ack_pending || cb.state == TcpState::Close {
        return;
    }
    if cb.pingpong {
        cb.pingpong = false;
        cb.ato = super::TCP_ATO_MIN;
    } else {
        cb.ato = (cb.ato * 2).min(cb.rto_backed_off());
    }
    tcp_send_ack(net, q, umem, cb, now);
    net.mib.TcpExtDelayedACKs += 1;
}

/// `tcp_rack_reo_timeout`: the reordering window of data RACK held back
/// has passed; what is now lost starts recovery (from the Open state, with
/// PRR's first count) and goes again.
fn rack_reo_timer(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    cb.rack.reo_at = None;
    if !cb.sack_ok || cb.in_flight() == 0 {
        return;
    }
    cb.rack.newly_lost = 0;
    super::rack::detect_loss(&mut net.mib, cb, now);
    let lost = cb.rack.newly_lost;
    if lost == 0 {
        return;
    }
    if cb.ca_state == CaState::Open {
        super::sack::enter_recovery(&mut net.mib, cb);
        let in_flight = super::sack::pipe(cb).div_ceil(cb.mss.max(1));
        super::prr::tcp_cwnd_reduction(cb, in_flight, 1, lost, false);
    }
    super::output::tcp_xmit_retransmit_queue(net, q, umem, cb, false, now);
}

/// `retransmits_timed_out`: whether the time since the first retransmitted
/// segment went out reaches what `boundary` retransmissions with
/// exponential backoff from `rto_base` (capped at `TCP_RTO_MAX`) take.
fn retransmits_timed_out(cb: &TcpCb, boundary: u32, rto_base: Duration, now: Instant) -> bool {
    let Some(start) = cb.retrans_stamp else { return false };
    let thresh = (TCP_RTO_MAX.as_millis() / rto_base.as_millis()).ilog2();
    let timeout = if boundary <= thresh {
        rto_base * ((2u32 << boundary) - 1)
    } else {
        rto_base * ((2u32 << thresh) - 1) + TCP_RTO_MAX * (boundary - thresh)
    };
    now.saturating_duration_since(start) >= timeout
}

/// Retransmissions of an orphan (closed by the application) before it is
/// given up (`tcp_orphan_retries`, whose default 0 means 8).
const TCP_ORPHAN_RETRIES: u32 = 8;

/// `tcp_write_err`: give up with the soft error an ICMP left
/// (`sk_err_soft`, e.g. `EHOSTUNREACH`), else `ETIMEDOUT`.
fn tcp_write_err(net: &mut Net, cb: &mut TcpCb) -> Fate {
    if !cb.orphan {
        cb.sock.set_err(cb.sock.err_soft().unwrap_or(Errno::ETIMEDOUT));
    }
    net.mib.TcpExtTCPAbortOnTimeout += 1;
    tcp_done(net, cb);
    Fate::Done
}

/// `tcp_retransmit_timer` (and `tcp_probe_timer` when the peer's window is
/// zero with nothing in flight).
fn retransmit_timer(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> Fate {
    cb.rto_at = None;
    let connecting = matches!(cb.state, TcpState::SynSent | TcpState::SynRecv);
    if !connecting && cb.in_flight() == 0 {
        let unsent = cb.write_seq() != cb.snd_nxt;
        if unsent && cb.snd_wnd == 0 {
            return probe_timer(net, q, umem, cb, now);
        }
        return Fate::Keep;
    }
    // Counted before the give-up test, as tcp_retransmit_timer does.
    net.mib.TcpExtTCPTimeouts += 1;
    // tcp_write_timeout: a handshake gives up after a count of
    // retransmissions (the linear ones on top for SYN-SENT) or, with
    // TCP_USER_TIMEOUT, once that long has passed; a connection after the
    // time its retransmissions would take, or, with TCP_USER_TIMEOUT, after
    // that time instead (`retransmits_timed_out` with a timeout ignores the
    // count).
    let user_timeout = cb.tsk().user_timeout();
    if cb.orphan && !connecting {
        // tcp_write_timeout for a dead sock: reset unless the RTO is at its
        // ceiling and the retries are spent.
        let alive = cb.rto_backed_off() < TCP_RTO_MAX;
        let spent = match user_timeout {
            Some(u) => user_timeout_elapsed(cb.retrans_stamp, u, now),
            None => retransmits_timed_out(cb, TCP_ORPHAN_RETRIES, TCP_RTO_MIN, now),
        };
        if tcp_out_of_resources(net, q, umem, cb, alive || !spent, now) {
            return Fate::Done;
        }
    }
    let timed_out = |boundary: u32| match user_timeout {
        Some(u) => user_timeout_elapsed(cb.retrans_stamp, u, now),
        None => retransmits_timed_out(cb, boundary, TCP_RTO_MIN, now),
    };
    let user_timed_out = user_timeout.is_some_and(|u| user_timeout_elapsed(cb.retrans_stamp, u, now));
    let give_up = match cb.state {
        TcpState::SynSent => cb.retransmits >= TCP_SYN_RETRIES + TCP_SYN_LINEAR_TIMEOUTS || user_timed_out,
        TcpState::SynRecv => cb.retransmits >= TCP_SYN_RETRIES || user_timed_out,
        // `tcp_orphan_retries`: 0 by default, which means 8.
        _ if cb.orphan => timed_out(TCP_ORPHAN_RETRIES),
        _ => timed_out(TCP_RETRIES2),
    };
    if give_up {
        return tcp_write_err(net, cb);
    }
    if cb.retrans_stamp.is_none() {
        // The time of the first retransmission (tcp_retransmit_skb: "Save
        // stamp of the first (attempted) retransmit").
        cb.retrans_stamp = Some(now);
    }
    if !connecting {
        // tcp_enter_loss: F-RTO unless a recovery other than a timeout on
        // the same data was under way (RFC 5682 §3.1 step 1, §3.2).
        let new_recovery = cb.ca_state == CaState::Open;
        super::sack::enter_loss(&mut net.mib, cb);
        cong::enter_loss(cb, now);
        cb.frto = cb.sack_ok && (new_recovery || cb.retransmits > 0);
        cb.frto_gap = None;
        cb.loss_rexmit_hi = cb.snd_una;
        // Everything in flight is sent again from snd_una.
        cb.snd_nxt = cb.snd_una;
    }
    if let Some(end) = tcp_retransmit_head(net, q, umem, cb, now) {
        if !connecting && super::after(end, cb.snd_nxt) {
            cb.snd_nxt = end;
        }
    }
    cb.retransmits += 1;
    // A SYN's first retransmissions keep the initial RTO
    // (`tcp_syn_linear_timeouts`), then backoff doubles it.
    if cb.state != TcpState::SynSent || cb.retransmits > TCP_SYN_LINEAR_TIMEOUTS {
        cb.backoff += 1;
    }
    cb.rto_at = Some(now + clamp_rto_to_user_timeout(cb, user_timeout, now));
    Fate::Keep
}

/// `tcp_out_of_resources` for an orphan: when TCP memory is over
/// `tcp_mem[2]` and it still queues data ([`super::wmem::tcp_out_of_memory`];
/// xsknet has no `tcp_max_orphans`, the other half of `tcp_check_oom`), it
/// ends (`TcpExtTCPAbortOnMemory`), with a reset if `do_reset`, or if it sent
/// within `TCP_TIMEWAIT_LEN`, or its window is shut with nothing in flight.
fn tcp_out_of_resources(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    mut do_reset: bool,
    now: Instant,
) -> bool {
    if !super::wmem::tcp_out_of_memory(net, cb) {
        return false;
    }
    let sent_recently = cb.lsndtime.is_some_and(|t| now.saturating_duration_since(t) <= super::TCP_TIMEWAIT_LEN);
    if sent_recently || (cb.snd_wnd == 0 && cb.in_flight() == 0) {
        do_reset = true;
    }
    if do_reset {
        tcp_send_active_reset(net, q, umem, cb, now);
    }
    tcp_done(net, cb);
    net.mib.TcpExtTCPAbortOnMemory += 1;
    true
}

/// Whether `user_timeout` has passed since `start` (none yet: no).
fn user_timeout_elapsed(start: Option<Instant>, user_timeout: Duration, now: Instant) -> bool {
    start.is_some_and(|s| now.saturating_duration_since(s) >= user_timeout)
}

/// `tcp_clamp_rto_to_user_timeout`: the backed-off RTO, cut to what is left
/// of `TCP_USER_TIMEOUT`, so that the connection fails on time (at once,
/// 1 ms, once it has passed).
fn clamp_rto_to_user_timeout(cb: &TcpCb, user_timeout: Option<Duration>, now: Instant) -> Duration {
    let rto = cb.rto_backed_off();
    match (user_timeout, cb.retrans_stamp) {
        (Some(u), Some(start)) => {
            let left = u.saturating_sub(now.saturating_duration_since(start));
            if left.is_zero() {
                Duration::from_millis(1)
            } else {
                rto.min(left)
            }
        }
        _ => rto,
    }
}

/// `tcp_probe_timer`: a zero-window probe with backoff; give up after
/// `tcp_retries2` unanswered ones.
fn probe_timer(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> Fate {
    // TCP_USER_TIMEOUT: the probes may go unanswered that long, counted
    // from the first (`icsk_probes_tstamp`).
    // The first probe's time is kept whether or not a user timeout is set
    // (one set later counts from it).
    let user_timeout = cb.tsk().user_timeout();
    match cb.probes_tstamp {
        None => cb.probes_tstamp = Some(now),
        Some(_) if user_timeout.is_some_and(|u| user_timeout_elapsed(cb.probes_tstamp, u, now)) => {
            return tcp_write_err(net, cb)
        }
        Some(_) => {}
    }
    cb.probes_out += 1;
    if cb.probes_out > TCP_RETRIES2 {
        return tcp_write_err(net, cb);
    }
    tcp_send_probe0(net, q, umem, cb, now);
    cb.backoff += 1;
    // tcp_clamp_probe0_to_user_timeout: no later than the user timeout
    // (TCP_TIMEOUT_MIN, 2 ms, at the least).
    let mut when = cb.rto_backed_off();
    if let (Some(u), Some(start)) = (user_timeout, cb.probes_tstamp) {
        let left = u.saturating_sub(now.saturating_duration_since(start)).max(Duration::from_millis(2));
        when = when.min(left);
    }
    cb.rto_at = Some(now + when);
    Fate::Keep
}

/// `keepalive_time_elapsed`: how long the connection has been idle: since
/// the last data or ACK from the peer, whichever came last.
fn keepalive_time_elapsed(cb: &TcpCb, now: Instant) -> Duration {
    let last = [cb.lrcvtime, cb.rcv_tstamp].into_iter().flatten().max();
    last.map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
}

/// `tcp_set_keepalive` and `TCP_KEEPIDLE`'s re-arm (net/ipv4/tcp.c), after
/// `setsockopt`: off deletes the timer; on arms it `TCP_KEEPIDLE` from now
/// unless it runs already; a new `TCP_KEEPIDLE` counts from the last time
/// the peer was heard. Not for a closed or listening sock.
pub fn tcp_keepalive_rearm(cb: &mut TcpCb, idle_changed: bool, now: Instant) {
    if matches!(cb.state, TcpState::Close | TcpState::Listen) {
        return;
    }
    let t = cb.tsk();
    if !t.keepalive.load(std::sync::atomic::Ordering::Relaxed) {
        cb.keepalive_at = None;
    } else if idle_changed {
        let left = t.keepalive_time().saturating_sub(keepalive_time_elapsed(cb, now));
        cb.keepalive_at = Some(now + left);
    } else if cb.keepalive_at.is_none() {
        cb.keepalive_at = Some(now + t.keepalive_time());
    }
}

/// `tcp_keepalive_timer`: after `TCP_KEEPIDLE` of silence with nothing
/// outstanding, a probe (an ACK at `snd_una - 1`, `TcpExtTCPKeepAlive`)
/// every `TCP_KEEPINTVL`; after `TCP_KEEPCNT` unanswered ones (or, with
/// `TCP_USER_TIMEOUT`, once that long has passed with a probe out) a reset
/// and `ETIMEDOUT`. Any ACK from the peer answers (`tcp_ack` clears
/// `probes_out`). A connection with data in flight or waiting to go is
/// alive without it: the timer just runs again.
fn keepalive_timer(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> Fate {
    cb.keepalive_at = None;
    let t = cb.tsk();
    if !t.keepalive.load(std::sync::atomic::Ordering::Relaxed)
        || matches!(cb.state, TcpState::Close | TcpState::SynSent | TcpState::Listen)
    {
        return Fate::Keep;
    }
    let (when, intvl, probes, user_timeout) =
        (t.keepalive_time(), t.keepalive_intvl(), t.keepalive_probes(), t.user_timeout());
    if cb.in_flight() > 0 || cb.write_seq() != cb.snd_nxt {
        cb.keepalive_at = Some(now + when);
        return Fate::Keep;
    }
    let elapsed = keepalive_time_elapsed(cb, now);
    let next = if elapsed >= when {
        let dead = match user_timeout {
            Some(u) => elapsed >= u && cb.probes_out > 0,
            None => cb.probes_out >= probes,
        };
        if dead {
            tcp_send_active_reset(net, q, umem, cb, now);
            return tcp_write_err(net, cb);
        }
        if tcp_xmit_probe_skb(net, q, umem, cb, now) {
            net.mib.TcpExtTCPKeepAlive += 1;
            cb.probes_out += 1;
            intvl
        } else {
            // No frame for the probe: try again soon.
            TCP_RESOURCE_PROBE_INTERVAL
        }
    } else {
        when - elapsed
    };
    cb.keepalive_at = Some(now + next);
    Fate::Keep
}

/// `reqsk_timer_handler`: each request sock whose SYN-ACK timer ran out gets
/// the SYN-ACK again with backoff, up to `tcp_synack_retries`, then goes.
fn synack_timer(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, l: &mut TcpCb, now: Instant) {
    l.synack_at = None;
    let (local, advmss) = (l.local, l.advmss);
    let rcvbuf = l.tsk().rcvbuf.load(std::sync::atomic::Ordering::Relaxed);
    let Some(lst) = l.listener.as_mut() else { return };
    let mut next: Option<Instant> = None;
    lst.syn_queue.retain(|remote, req| {
        if req.expires <= now {
            net.mib.TcpExtTCPTimeouts += 1;
            if req.num_timeout >= TCP_SYNACK_RETRIES {
                return false;
            }
            tcp_send_synack(net, q, umem, local, *remote, req, advmss, rcvbuf, true, now);
            req.num_timeout += 1;
            req.expires = now + req.timeout();
        }
        next = Some(next.map_or(req.expires, |t| t.min(req.expires)));
        true
    });
    l.synack_at = next;
}
