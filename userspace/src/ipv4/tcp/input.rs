//! TCP input: `tcp_v4_rcv` (net/ipv4/tcp_ipv4.c) and the state machine of
//! net/ipv4/tcp_input.c and tcp_minisocks.c.
//!
//! Checks in Linux's order: header length, checksum, then the lookup
//! (established 4-tuple, then TIME-WAIT, then the listener by port), then the
//! state: a listener makes request socks (`tcp_conn_request`) and children
//! (`tcp_check_req`); SYN-SENT completes an active open
//! (`tcp_rcv_synsent_state_process`); the synchronized states validate the
//! segment as RFC 9293 with RFC 5961 (`tcp_validate_incoming`), process the
//! ACK (`tcp_ack`), queue data (`tcp_data_queue`) and the FIN (`tcp_fin`),
//! then send what is due (`tcp_data_snd_check`, `tcp_ack_snd_check`).

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ringbuf::traits::{Consumer, Producer};

use super::cb::{CaState, OfoSeg, RequestSock, TcpCb};
use super::output::{
    initial_window, tcp_retransmit_head, tcp_send_ack, tcp_send_synack, tcp_send_synack_cb, tcp_v4_send_reset,
    tcp_write_xmit,
};
use super::syncookies::TcpSyncookies;
use super::table::{CbId, FourTuple, TimeWaitSock};
use super::timestamps::{self, Paws};
use super::{
    after, before, cong, TCP_INVALID_RATELIMIT, TCP_MAX_QUICKACKS, TCP_MAX_WSCALE, TCP_MIN_MSS, TCP_MSS_DEFAULT,
    TCP_RCV_WSCALE, TCP_TIMEOUT_INIT, TCP_TIMEWAIT_LEN,
};
use crate::errno::Errno;
use crate::ipv4::{Reassembled, RxIp};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::snmp::MibCounter;
use crate::sock::{Sock, SockType};
use crate::stream::{RingGrow, TcpState};
use crate::umem::{Frame, Umem};
use crate::wire::ethernet::PktType;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::tcp::{self, flags, TcpOptions, TcpPacket, TcpRepr};

/// A received segment: its header and its data.
pub struct Segment<'a> {
    /// The parsed header.
    pub repr: TcpRepr,
    /// The data.
    pub data: &'a [u8],
    /// The header's length as sent (data offset × 4), options included.
    pub doff: usize,
    /// The IP header's length when GRO could have merged the datagram (20:
    /// no IP options, not reassembled from fragments, `inet_gro_receive`),
    /// else 0.
    pub gro_ip_hl: usize,
}

impl Segment<'_> {
    fn has(&self, f: u8) -> bool {
        self.repr.flags & f != 0
    }
    fn seq(&self) -> u32 {
        self.repr.seq
    }
    /// `end_seq`: sequence number after the segment, SYN and FIN counted.
    fn end_seq(&self) -> u32 {
        self.repr.seq.wrapping_add(self.repr.seg_len())
    }
}

/// `tcp_v4_rcv`: the TCP segment described by `ip` in `frame`. The frame is
/// freed here: data is copied into the receive buffer.
pub fn tcp_v4_rcv(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, frame: Frame, ip: &RxIp, now: Instant) {
    let bytes = &umem.frame(&frame)[ip.l4..ip.l4 + ip.l4_len];
    // GRO merges only datagrams without IP options (`iph->ihl == 5`).
    let gro_ip_hl = if ip.l4 - ip.l3 == crate::wire::ipv4::MIN_HEADER_LEN { ip.l4 - ip.l3 } else { 0 };
    match tcp_v4_rcv_bytes(net, q, umem, bytes, &ip.hdr, gro_ip_hl, now) {
        Some(reason) => q.kfree_skb_reason(frame, reason),
        None => q.free_frame(frame),
    }
}

/// `tcp_v4_rcv` for a segment that came in IP fragments (`r`, reassembled):
/// its bytes are copied out of the chain into `scratch` (the stack's 64 KiB
/// buffer, no allocation once grown) and go the same way as a segment in
/// one frame; the chain's frames are freed, with the drop reason if any.
/// One whose first fragment was not to our MAC, or sent to a broadcast
/// address, is dropped as in one frame (`XskTcpInNotHost`, `XskTcpInBcast`).
pub fn tcp_v4_rcv_reassembled(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    r: Reassembled,
    scratch: &mut Vec<u8>,
    now: Instant,
) {
    if r.ip.pkt_type != PktType::Host {
        net.mib.XskTcpInNotHost += 1;
        return r.skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskTcpInNotHost));
    }
    if r.ip.route.is_bcast() {
        net.mib.XskTcpInBcast += 1;
        return r.skb.free(umem, |f| q.kfree_skb_reason(f, MibCounter::XskTcpInBcast));
    }
    scratch.resize(crate::ipv4::inet_fragment::IP_MAX_MTU, 0);
    let n = r.skb.copy_to(umem, scratch);
    // Never merged by GRO: a fragment is not (`inet_gro_receive`).
    let reason = tcp_v4_rcv_bytes(net, q, umem, &scratch[..n], &r.ip.hdr, 0, now);
    match reason {
        Some(reason) => r.skb.free(umem, |f| q.kfree_skb_reason(f, reason)),
        None => r.skb.free(umem, |f| q.free_frame(f)),
    }
}

/// The segment `bytes` (TCP header and data) from `hdr`'s source: checked,
/// then to its connection, TIME-WAIT sock or listener, or answered with a
/// reset. `gro_ip_hl` is the IP header's length if GRO could merge the
/// datagram, else 0 ([`Segment::gro_ip_hl`]). Returns the drop reason of a
/// segment dropped (for the caller to free its frames with), `None`
/// otherwise.
#[allow(clippy::too_many_arguments)]
fn tcp_v4_rcv_bytes(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    bytes: &[u8],
    hdr: &Ipv4Repr,
    gro_ip_hl: usize,
    now: Instant,
) -> Option<MibCounter> {
    net.mib.TcpInSegs += 1;
    if bytes.len() < tcp::HEADER_LEN {
        return None;
    }
    let pkt = TcpPacket::new_unchecked(bytes);
    let doff = pkt.header_len();
    if doff < tcp::HEADER_LEN {
        net.mib.TcpInErrs += 1;
        return Some(MibCounter::TcpInErrs);
    }
    if doff > bytes.len() {
        return None;
    }
    if !pkt.verify_checksum(hdr.src, hdr.dst) {
        net.mib.TcpInCsumErrors += 1;
        net.mib.TcpInErrs += 1;
        return Some(MibCounter::TcpInCsumErrors);
    }
    let repr = TcpRepr::parse(&pkt);
    let seg = Segment { repr, data: &bytes[doff..], doff, gro_ip_hl };
    let local = SocketAddrV4::new(hdr.dst, seg.repr.dst_port);
    let remote = SocketAddrV4::new(hdr.src, seg.repr.src_port);
    let key = FourTuple { local, remote };
    // The handlers below count a drop without the frame (the caller frees
    // it): for a drop capture, which counter moved says why (Linux's
    // tcp_rcv_state_process returns the reason instead).
    let before = q.drop_capture_on().then(|| TCP_SEG_DROPS.map(|c| net.mib.value(c)));
    if let Some(id) = net.tcp.lookup_established(&key) {
        tcp_rcv(net, q, umem, id, &seg, now);
    } else if net.tcp.tw.contains_key(&key) {
        tcp_timewait_rcv(net, q, umem, key, &seg, now);
    } else if let Some(lid) = net.tcp.lookup_listener(local.port()) {
        tcp_listen_rcv(net, q, umem, lid, key, &seg, None, now);
    } else {
        tcp_v4_send_reset(net, q, umem, local, remote, &seg.repr, now);
    }
    before.and_then(|b| TCP_SEG_DROPS.into_iter().zip(b).find(|(c, v)| net.mib.value(*c) != *v)).map(|(c, _)| c)
}

/// The counters of a segment dropped after the lookup, most specific first.
const TCP_SEG_DROPS: [MibCounter; 11] = [
    MibCounter::TcpExtPAWSEstab,
    MibCounter::TcpExtPAWSOldAck,
    MibCounter::TcpExtPAWSTimewait,
    MibCounter::TcpExtTSEcrRejected,
    MibCounter::TcpExtPAWSActive,
    MibCounter::TcpExtListenOverflows,
    MibCounter::TcpExtTCPReqQFullDrop,
    MibCounter::TcpExtTCPOFODrop,
    MibCounter::TcpExtTCPZeroWindowDrop,
    MibCounter::TcpExtTCPRcvQDrop,
    MibCounter::TcpInErrs,
];

/// What became of a control block after a segment or a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It lives on.
    Keep,
    /// It is over (`tcp_done`, or moved to TIME-WAIT): free it.
    Done,
}

/// Puts a control block back after work on it, or frees it.
pub fn finish(net: &mut Net, id: CbId, mut cb: Box<TcpCb>, fate: Fate) {
    if fate == Fate::Done || cb.state == TcpState::Close {
        // Whatever way it closed, its pages go back (`inet_sock_destruct`).
        net.tcp.ofo_bufs.give_all(&mut cb.ofo);
        super::prune::tcp_mem_release(net, &mut cb);
        net.tcp.remove(id, &cb);
        return;
    }
    net.tcp.rearm(id, &mut cb);
    net.tcp.put(id, cb);
}

/// `tcp_set_state`: the new state, with Linux's gauge and counters, told to
/// the application and its sleepers.
pub fn tcp_set_state(net: &mut Net, cb: &mut TcpCb, new: TcpState) {
    let old = cb.state;
    if old == new {
        return;
    }
    let live = |s: TcpState| matches!(s, TcpState::Established | TcpState::CloseWait);
    match new {
        TcpState::Established => net.mib.TcpCurrEstab += 1,
        TcpState::CloseWait if old == TcpState::SynRecv => net.mib.TcpCurrEstab += 1,
        TcpState::CloseWait => {}
        _ => {
            if new == TcpState::Close && live(old) {
                net.mib.TcpEstabResets += 1;
            }
            if live(old) {
                net.mib.TcpCurrEstab = net.mib.TcpCurrEstab.saturating_sub(1);
            }
        }
    }
    cb.state = new;
    cb.tsk().stream.set_state(new);
    cb.sock.wq.wake_up();
}

/// `tcp_done`: the connection is over. Counts a failed attempt, stops the
/// timers, wakes the application.
pub fn tcp_done(net: &mut Net, cb: &mut TcpCb) {
    if matches!(cb.state, TcpState::SynSent | TcpState::SynRecv) {
        net.mib.TcpAttemptFails += 1;
    }
    // SHUTDOWN_MASK, seen by whoever the state change wakes.
    cb.tsk().stream.done.store(true, Ordering::Release);
    tcp_set_state(net, cb, TcpState::Close);
    cb.rto_at = None;
    cb.delack_at = None;
    cb.synack_at = None;
    cb.bufs = None;
    net.tcp.ofo_bufs.give_all(&mut cb.ofo);
    cb.ofo_bytes = 0;
    super::prune::tcp_mem_release(net, cb);
}

/// `tcp_reset`: a RST came (or we give up): the error by state, then done.
pub fn tcp_reset(net: &mut Net, cb: &mut TcpCb) {
    let err = match cb.state {
        TcpState::SynSent => Errno::ECONNREFUSED,
        TcpState::CloseWait => Errno::EPIPE,
        _ => Errno::ECONNRESET,
    };
    if !cb.orphan {
        cb.sock.set_err(err);
    }
    tcp_done(net, cb);
}

/// `tcp_time_wait`: the control block ends and a TIME-WAIT sock (or an
/// orphaned FIN-WAIT-2, `substate`) takes its place for `timeo`.
pub fn tcp_time_wait(net: &mut Net, cb: &mut TcpCb, substate: TcpState, timeo: std::time::Duration, now: Instant) {
    let tw = TimeWaitSock {
        substate,
        snd_nxt: cb.snd_nxt,
        rcv_nxt: cb.rcv_nxt,
        rcv_wnd: cb.rcv_wnd,
        rcv_wscale: cb.rcv_wscale,
        ts_recent: cb.ts.recent,
        ts_recent_stamp: if cb.ts.ok { cb.ts.recent_stamp } else { None },
        ts_offset: cb.ts.offset,
        expires: now + timeo,
    };
    let key = FourTuple { local: cb.local, remote: cb.remote };
    // The sock itself goes to CLOSE (not a reset); the 4-tuple stays taken,
    // unless tcp_max_tw_buckets TIME-WAIT socks exist already: then it is
    // closed outright (inet_twsk_alloc fails, TCPTimeWaitOverflow).
    tcp_done(net, cb);
    if net.tcp.tw.len() >= net.tcp.max_tw_buckets {
        net.mib.TcpExtTCPTimeWaitOverflow += 1;
        return;
    }
    net.tcp.time_wait(key, tw);
}

/// `tcp_init_transfer` for a connection just ESTABLISHED: its congestion
/// control starts (`tcp_init_congestion_control`, the sock's
/// `TCP_CONGESTION`), the ACK engine's last-receive time is now, the send
/// buffer is sized for the first window (`tcp_init_buffer_space`'s
/// `tcp_sndbuf_expand`), and with `SO_KEEPALIVE` its keepalive timer is
/// armed `TCP_KEEPIDLE` from now (`tcp_finish_connect`,
/// `tcp_create_openreq_child`).
fn tcp_init_transfer(net: &mut Net, cb: &mut TcpCb, now: Instant) {
    cb.ca = cong::Congestion::new(cb.tsk().congestion(), cb.snd_nxt, now, net.tcp.hz);
    // The listener's or the socket's SO_MAX_PACING_RATE (sk_clone_lock copies it), and the
    // first pacing rate (tcp_rcv_state_process: tcp_update_pacing_rate on ESTABLISHED).
    let (rate, needed) = cb.tsk().max_pacing_rate();
    cb.pacing.set_max_rate(rate);
    cb.pacing.needed |= needed;
    super::pacing::tcp_update_pacing_rate(cb);
    cb.rcv_tstamp = Some(now);
    cb.lrcvtime = Some(now);
    // tcp_init_buffer_space: receive-buffer autotuning's first measurement.
    let copied_seq = cb.copied_seq();
    let (ssthresh, wnd, advmss) = (cb.rcv_ssthresh, cb.rcv_wnd, cb.advmss);
    cb.rcvq.init(copied_seq, ssthresh, wnd, advmss, now);
    super::wmem::tcp_sndbuf_expand(net, cb);
    let t = cb.tsk();
    cb.keepalive_at = t.keepalive.load(Ordering::Relaxed).then(|| now + t.keepalive_time());
}

/// The segments of a connection (not a listener, not TIME-WAIT).
fn tcp_rcv(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, id: CbId, seg: &Segment<'_>, now: Instant) {
    let Some(mut cb) = net.tcp.take(id) else { return };
    cb.segs_in += 1;
    let fate = match cb.state {
        TcpState::SynSent => rcv_synsent(net, q, umem, &mut cb, seg, now),
        _ => {
            tcp_gro_receive(net, q, umem, id, &mut cb, seg, now);
            let fate = rcv_state_process(net, q, umem, &mut cb, seg, now);
            if fate == Fate::Keep && cb.gro.is_some_and(|g| g.is_done()) {
                cb.gro = None;
                tcp_ack_snd_check(net, q, umem, &mut cb, now);
            }
            fate
        }
    };
    finish(net, id, cb, fate);
}

/// GRO before `tcp_v4_rcv` (`napi_gro_receive` → `tcp_gro_receive`,
/// [`super::offload`]): the segment joins the connection's open aggregate,
/// or that aggregate ends here (its ACK decided now, before this segment)
/// and the segment may start the next. While `cb.gro` is set,
/// [`rcv_state_process`] leaves the ACK decision to the aggregate's end.
#[allow(clippy::too_many_arguments)]
fn tcp_gro_receive(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    id: CbId,
    cb: &mut TcpCb,
    seg: &Segment<'_>,
    now: Instant,
) {
    use super::offload::{GroAggregate, GroVerdict};
    // A datagram GRO would not take at all (IP options, a fragment) has no
    // TCP header it compares: it continues nothing and starts nothing.
    let hdr = if seg.gro_ip_hl == 0 { None } else { Some(seg.gro_ip_hl + seg.doff) };
    if let Some(mut g) = cb.gro.take() {
        if hdr.is_some_and(|h| g.receive(&seg.repr, h, seg.data.len()) == GroVerdict::Merged) {
            net.mib.XskTcpGroMerged += 1;
            cb.gro = Some(g);
            return;
        }
        tcp_ack_snd_check(net, q, umem, cb, now);
    }
    if let (true, Some(h)) = (net.tcp.gro, hdr) {
        cb.gro = GroAggregate::start(&seg.repr, h, seg.data.len());
        if cb.gro.is_some() {
            net.tcp.gro_held.push(id);
        }
    }
}

/// `napi_gro_flush` at the end of an rx batch: the ACK decision of every
/// aggregate still open ([`super::offload`]).
pub fn napi_gro_flush(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, now: Instant) {
    let mut held = std::mem::take(&mut net.tcp.gro_held);
    for id in held.drain(..) {
        let Some(mut cb) = net.tcp.take(id) else { continue };
        if cb.gro.take().is_some() {
            tcp_ack_snd_check(net, q, umem, &mut cb, now);
        }
        finish(net, id, cb, Fate::Keep);
    }
    net.tcp.gro_held = held;
}

/// `tcp_oow_rate_limited`: at most one out-of-window ACK per 500 ms per
/// connection (or request sock, `last`), for segments that occupy no
/// sequence space or carry a SYN (others are never part of an ACK loop).
/// True when this one must not be answered.
fn tcp_oow_rate_limited(last: &mut Option<Instant>, seg: &Segment<'_>, now: Instant) -> bool {
    if seg.end_seq() != seg.seq() && !seg.has(flags::SYN) {
        return false;
    }
    if last.is_some_and(|t| now.saturating_duration_since(t) < TCP_INVALID_RATELIMIT) {
        return true;
    }
    *last = Some(now);
    false
}

/// [`tcp_oow_rate_limited`] for a connection's out-of-window segment,
/// counted in `TCPACKSkippedSeq` (`tcp_validate_incoming`).
fn oow_rate_limited(net: &mut Net, cb: &mut TcpCb, seg: &Segment<'_>, now: Instant) -> bool {
    let limited = tcp_oow_rate_limited(&mut cb.last_oow_ack, seg, now);
    if limited {
        net.mib.TcpExtTCPACKSkippedSeq += 1;
    }
    limited
}

/// `tcp_send_challenge_ack` (RFC 5961 §3.2, §4.2, §5.2).
fn send_challenge_ack(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    if cb.last_oow_ack.is_some_and(|t| now.saturating_duration_since(t) < TCP_INVALID_RATELIMIT) {
        net.mib.TcpExtTCPACKSkippedChallenge += 1;
        return;
    }
    cb.last_oow_ack = Some(now);
    // Then the host-wide limit (off unless tcp_challenge_ack_limit is set).
    if !net.tcp.challenge_ack_allowed(now) {
        return;
    }
    net.mib.TcpExtTCPChallengeACK += 1;
    tcp_send_ack(net, q, umem, cb, now);
}

/// `tcp_send_dupack`: an old or out-of-window segment gets our ACK again.
fn send_dupack(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, seg: &Segment<'_>, now: Instant) {
    if seg.end_seq() != seg.seq() && before(seg.seq(), cb.rcv_nxt) {
        net.mib.TcpExtDelayedACKLost += 1;
        cb.enter_quickack_mode(TCP_MAX_QUICKACKS);
        let end = if after(seg.end_seq(), cb.rcv_nxt) { cb.rcv_nxt } else { seg.end_seq() };
        super::sack::dsack_set(&mut net.mib, cb, seg.seq(), end);
    }
    tcp_send_ack(net, q, umem, cb, now);
}

/// The MSS a peer's offer gives us (`tcp_mss_clamp` and `TCP_MIN_MSS`).
fn clamp_mss(offer: Option<u16>, advmss: u32) -> u32 {
    u32::from(offer.unwrap_or(TCP_MSS_DEFAULT as u16)).clamp(TCP_MIN_MSS, advmss.max(TCP_MIN_MSS))
}

/// `tcp_rcv_synsent_state_process`.
fn rcv_synsent(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    seg: &Segment<'_>,
    now: Instant,
) -> Fate {
    let r = &seg.repr;
    if seg.has(flags::ACK) {
        // RFC 9293 §3.10.7.3: an unacceptable ACK gets a RST (unless it is one).
        if !after(r.ack, cb.iss) || after(r.ack, cb.snd_nxt) {
            tcp_v4_send_reset(net, q, umem, cb.local, cb.remote, r, now);
            return Fate::Keep;
        }
        if timestamps::synsent_tsecr_bad(cb, &net.tcp.ts_clock, r.options.timestamp, now) {
            net.mib.TcpExtPAWSActive += 1;
            tcp_v4_send_reset(net, q, umem, cb.local, cb.remote, r, now);
            return Fate::Keep;
        }
        if seg.has(flags::RST) {
            tcp_reset(net, cb);
            return Fate::Done;
        }
        if !seg.has(flags::SYN) {
            return Fate::Keep;
        }
        // SYN-ACK: the connection is established.
        cb.irs = r.seq;
        cb.rcv_nxt = r.seq.wrapping_add(1);
        cb.rcv_wup = cb.rcv_nxt;
        cb.snd_una = r.ack;
        let ts_ok = timestamps::synsent_agree(cb, &net.tcp.ts_clock, r.options.timestamp, now);
        if cb.retransmits == 0 {
            if let Some((_, sent)) = cb.rtt_probe.take() {
                cong::handshake_rtt_sample(cb, now.saturating_duration_since(sent), net.tcp.hz);
            }
        } else if let Some(rtt) = ts_ok.then(|| timestamps::ack_rtt(cb, &net.tcp.ts_clock, r, now)).flatten() {
            // The SYN was sent again (Karn): its echoed TSval times it.
            cong::handshake_rtt_sample(cb, rtt, net.tcp.hz);
        }
        cb.rtt_probe = None;
        cong::no_handshake_sample(cb);
        match r.options.window_scale {
            Some(ws) => {
                cb.snd_wscale = ws.min(TCP_MAX_WSCALE);
                cb.rcv_wscale = TCP_RCV_WSCALE;
            }
            None => {
                cb.snd_wscale = 0;
                cb.rcv_wscale = 0;
            }
        }
        cb.sack_ok = r.options.sack_permitted;
        cb.snd_wnd = u32::from(r.window);
        cb.max_window = cb.snd_wnd;
        cb.snd_wl1 = r.seq;
        cb.snd_wl2 = r.ack;
        cb.mss = clamp_mss(r.options.mss, cb.advmss);
        timestamps::shrink_mss(cb, true);
        cb.rto_at = None;
        cb.backoff = 0;
        cb.retransmits = 0;
        cb.retrans_stamp = None;
        cb.pushed_seq = cb.snd_una;
        cb.snd_sml = cb.snd_una;
        tcp_set_state(net, cb, TcpState::Established);
        tcp_init_transfer(net, cb, now);
        // tcp_ack of the SYN-ACK acknowledged our SYN (forward progress):
        // the ACK that follows confirms the neighbour (sk_dst_confirm).
        cb.dst_pending_confirm = true;
        if cb.pingpong {
            // "Save one ACK": in interactive mode (TCP_QUICKACK 0 before
            // connect) the ACK waits, at most TCP_DELACK_MAX, for the first
            // data to carry it; quick-ACK mode from here on.
            cb.ack_pending = true;
            cb.enter_quickack_mode(TCP_MAX_QUICKACKS);
            cb.delack_at = Some(now + super::TCP_DELACK_MAX);
        } else {
            tcp_send_ack(net, q, umem, cb, now);
        }
        tcp_write_xmit(net, q, umem, cb, now);
        return Fate::Keep;
    }
    if seg.has(flags::RST) {
        return Fate::Keep;
    }
    if seg.has(flags::SYN) {
        // Simultaneous open (RFC 9293 §3.5 figure 7): SYN-RECEIVED, and our
        // SYN again with an ACK.
        cb.irs = r.seq;
        cb.rcv_nxt = r.seq.wrapping_add(1);
        cb.rcv_wup = cb.rcv_nxt;
        cb.snd_wnd = u32::from(r.window);
        cb.max_window = cb.snd_wnd;
        cb.snd_wl1 = r.seq;
        if r.options.window_scale.is_none() {
            cb.snd_wscale = 0;
            cb.rcv_wscale = 0;
        } else {
            cb.snd_wscale = r.options.window_scale.unwrap_or(0).min(TCP_MAX_WSCALE);
        }
        cb.mss = clamp_mss(r.options.mss, cb.advmss);
        if timestamps::synsent_agree(cb, &net.tcp.ts_clock, r.options.timestamp, now) {
            timestamps::shrink_mss(cb, false);
        }
        cb.sack_ok = r.options.sack_permitted;
        tcp_set_state(net, cb, TcpState::SynRecv);
        tcp_send_synack_cb(net, q, umem, cb, now);
    }
    Fate::Keep
}

/// `tcp_sequence`: the segment overlaps the window we offer.
fn tcp_sequence(cb: &TcpCb, seq: u32, end_seq: u32) -> bool {
    !before(end_seq, cb.rcv_wup) && !after(seq, cb.rcv_nxt.wrapping_add(cb.receive_window()))
}

/// `tcp_rcv_state_process` for the synchronized states (and SYN-RECEIVED of
/// a simultaneous open).
fn rcv_state_process(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    seg: &Segment<'_>,
    now: Instant,
) -> Fate {
    let r = &seg.repr;
    if !seg.has(flags::ACK) && !seg.has(flags::RST) && !seg.has(flags::SYN) {
        return Fate::Keep;
    }
    // tcp_validate_incoming. H1: PAWS (RFC 7323 §5.3); a RST is taken whatever its timestamp.
    let paws = timestamps::paws_discard(cb, r, now);
    if paws != Paws::Accept && !seg.has(flags::RST) {
        if seg.has(flags::SYN) {
            if cb.state == TcpState::Established {
                net.mib.TcpInErrs += 1;
            }
            net.mib.TcpExtTCPSYNChallenge += 1;
            send_challenge_ack(net, q, umem, cb, now);
        } else if paws == Paws::OldAck {
            net.mib.TcpExtPAWSOldAck += 1;
        } else {
            net.mib.TcpExtPAWSEstab += 1;
            if tcp_oow_rate_limited(&mut cb.last_oow_ack, seg, now) {
                net.mib.TcpExtTCPACKSkippedPAWS += 1;
            } else {
                send_dupack(net, q, umem, cb, seg, now);
            }
        }
        return Fate::Keep;
    }
    // Step 1: sequence number.
    if !tcp_sequence(cb, seg.seq(), seg.end_seq()) {
        if !seg.has(flags::RST) {
            if seg.has(flags::SYN) {
                // syn_inerr: only tcp_rcv_established counts TcpInErrs.
                if cb.state == TcpState::Established {
                    net.mib.TcpInErrs += 1;
                }
                net.mib.TcpExtTCPSYNChallenge += 1;
                send_challenge_ack(net, q, umem, cb, now);
            } else if !oow_rate_limited(net, cb, seg, now) {
                send_dupack(net, q, umem, cb, seg, now);
            }
        }
        return Fate::Keep;
    }
    // Step 2: RST (RFC 5961 §3.2): only an exact match resets.
    if seg.has(flags::RST) {
        if seg.seq() == cb.rcv_nxt {
            tcp_reset(net, cb);
            return Fate::Done;
        }
        send_challenge_ack(net, q, umem, cb, now);
        return Fate::Keep;
    }
    // Step 4: SYN in a synchronized state (RFC 5961 §4.2), except the
    // peer's SYN-ACK answering ours in a simultaneous open, which
    // tcp_validate_incoming lets pass; tcp_data_queue then takes its SYN
    // as a retransmission and ACKs at once.
    let simopen_synack = cb.state == TcpState::SynRecv
        && seg.has(flags::ACK)
        && seg.end_seq() == seg.seq().wrapping_add(1)
        && seg.end_seq() == cb.rcv_nxt
        && r.ack == cb.snd_nxt;
    if simopen_synack {
        net.mib.TcpExtDelayedACKLost += 1;
        cb.enter_quickack_mode(TCP_MAX_QUICKACKS);
        cb.ack_pending = true;
        cb.ack_now = true;
    } else if seg.has(flags::SYN) {
        if cb.state == TcpState::Established {
            net.mib.TcpInErrs += 1;
        }
        net.mib.TcpExtTCPSYNChallenge += 1;
        send_challenge_ack(net, q, umem, cb, now);
        return Fate::Keep;
    }
    // Step 5: ACK.
    let acceptable = tcp_ack(net, q, umem, cb, seg, now);
    if cb.state == TcpState::SynRecv {
        if acceptable.is_err() {
            tcp_v4_send_reset(net, q, umem, cb.local, cb.remote, r, now);
            return Fate::Keep;
        }
        cb.snd_wnd = u32::from(r.window) << cb.snd_wscale;
        cb.max_window = cb.max_window.max(cb.snd_wnd);
        cb.snd_wl1 = r.seq;
        cb.pushed_seq = cb.snd_una;
        cb.snd_sml = cb.snd_una;
        tcp_set_state(net, cb, TcpState::Established);
        timestamps::synrecv_advmss(cb);
        tcp_init_transfer(net, cb, now);
    } else if acceptable.is_err() {
        // RFC 5961 §5.2: a challenge ACK in every synchronized state
        // (`tcp_ack` sends it in ESTABLISHED, `tcp_rcv_state_process` in
        // the others; SYN-RECV passes FLAG_NO_CHALLENGE_ACK and resets).
        send_challenge_ack(net, q, umem, cb, now);
        return Fate::Keep;
    }
    let fin_acked = cb.fin_seq.is_some_and(|f| after(cb.snd_una, f));
    match cb.state {
        TcpState::FinWait1 if fin_acked => {
            tcp_set_state(net, cb, TcpState::FinWait2);
            cb.rto_at = None;
            if cb.orphan && !seg.has(flags::FIN) {
                // An orphan waits for the peer's FIN as a TIME-WAIT sock in
                // FIN-WAIT-2 (`tcp_fin_time`), unless data comes after close.
                if seg.end_seq() != seg.seq() && after(seg.end_seq(), cb.rcv_nxt) {
                    net.mib.TcpExtTCPAbortOnData += 1;
                    tcp_done(net, cb);
                    tcp_v4_send_reset(net, q, umem, cb.local, cb.remote, r, now);
                    return Fate::Done;
                }
                tcp_time_wait(net, cb, TcpState::FinWait2, super::TCP_FIN_TIMEOUT, now);
                return Fate::Done;
            }
        }
        TcpState::Closing if fin_acked => {
            tcp_time_wait(net, cb, TcpState::TimeWait, TCP_TIMEWAIT_LEN, now);
            return Fate::Done;
        }
        TcpState::LastAck if fin_acked => {
            tcp_done(net, cb);
            return Fate::Done;
        }
        _ => {}
    }
    if cb.state == TcpState::Established {
        tcp_rcv_rtt_measure_ts(net, cb, seg, now);
    }
    // Step 7: data (and step 8: FIN, inside tcp_data_queue).
    let rcv_shutdown = cb.orphan || cb.tsk().stream.rd_shut.load(Ordering::Relaxed);
    let mut queue = true;
    match cb.state {
        TcpState::CloseWait | TcpState::Closing | TcpState::LastAck if !before(seg.seq(), cb.rcv_nxt) => {
            queue = false;
        }
        TcpState::CloseWait
        | TcpState::Closing
        | TcpState::LastAck
        | TcpState::FinWait1
        | TcpState::FinWait2
        | TcpState::Established => {
            // RFC 1122 §4.2.2.13: data after we closed for reading is reset.
            if rcv_shutdown
                && seg.end_seq() != seg.seq()
                && after(seg.end_seq().wrapping_sub(u32::from(seg.has(flags::FIN))), cb.rcv_nxt)
            {
                net.mib.TcpExtTCPAbortOnData += 1;
                let (local, remote) = (cb.local, cb.remote);
                tcp_reset(net, cb);
                tcp_v4_send_reset(net, q, umem, local, remote, r, now);
                return Fate::Done;
            }
        }
        _ => queue = false,
    }
    if queue {
        tcp_data_queue(net, q, umem, cb, seg, now);
    }
    if cb.state == TcpState::Close {
        return Fate::Done;
    }
    if cb.state == TcpState::TimeWait {
        return Fate::Done;
    }
    // tcp_data_snd_check (tcp_push_pending_frames, then tcp_check_space),
    // then tcp_ack_snd_check (for a segment of a GRO aggregate, at the
    // aggregate's end: `tcp_rcv`, `napi_gro_flush`).
    tcp_write_xmit(net, q, umem, cb, now);
    super::wmem::tcp_new_space(net, cb);
    if cb.gro.is_none() {
        tcp_ack_snd_check(net, q, umem, cb, now);
    }
    Fate::Keep
}

/// Why `tcp_ack` refused an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckError {
    /// It acknowledges data we never sent.
    UnsentData,
    /// It is older than the peer's largest window allows (RFC 5961 §5.2).
    TooOld,
}

/// `tcp_ack`: the ACK field of an acceptable segment. Frees acknowledged
/// bytes, takes an RTT sample, updates the peer's window, runs congestion
/// control and fast retransmit. An ACK of unsent data, or one older than
/// `min(max_window, bytes_acked)` below SND.UNA (RFC 5961 §5.2), is refused;
/// the caller sends the challenge ACK.
fn tcp_ack(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    seg: &Segment<'_>,
    now: Instant,
) -> Result<(), AckError> {
    let r = &seg.repr;
    let ack = r.ack;
    let prior_una = cb.snd_una;
    if before(ack, prior_una) {
        // Never older than the bytes acknowledged so far: no ACK for bytes
        // we never sent.
        let max_window = cb.max_window.min(u32::try_from(cb.bytes_acked).unwrap_or(u32::MAX));
        if before(ack, prior_una.wrapping_sub(max_window)) {
            return Err(AckError::TooOld);
        }
        // An old ACK: ignored, the segment's data still counts; its SACK
        // blocks are still news (`tcp_ack`'s `old_ack`).
        let tag = super::sack::tcp_sacktag(&mut net.mib, cb, &r.options, prior_una, ack);
        super::rack::tcp_rack_update(cb, &tag.delivered, tag.tsecr, &net.tcp.ts_clock, now, net.tcp.hz);
        return Ok(());
    }
    if after(ack, cb.snd_max) {
        return Err(AckError::UnsentData);
    }
    // ts_recent moves only once the segment is known acceptable.
    timestamps::ack_update_ts_recent(cb, r, now);
    // tcp_ack_update_window (RFC 9293 §3.10.7.4, SND.WL1/WL2).
    let nwin = u32::from(r.window) << cb.snd_wscale;
    let prior_wnd = cb.snd_wnd;
    let win_update =
        after(ack, cb.snd_una) || after(r.seq, cb.snd_wl1) || (r.seq == cb.snd_wl1 && (nwin > cb.snd_wnd || nwin == 0));
    // sk_dst_confirm: the ACK shows the peer reachable when it acknowledges
    // new data (FLAG_FORWARD_PROGRESS) or is a duplicate (no data, no window
    // update: !FLAG_NOT_DUP), and something was in flight (else tcp_ack
    // leaves by `no_queue`, before the confirmation).
    let acks_new = after(ack, prior_una);
    if cb.in_flight() > 0 && (acks_new || (seg.repr.seg_len() == 0 && !win_update)) {
        cb.dst_pending_confirm = true;
    }
    if win_update {
        cb.snd_wl1 = r.seq;
        cb.snd_wl2 = ack;
        cb.snd_wnd = nwin;
        cb.max_window = cb.max_window.max(nwin);
    }
    // Any acceptable ACK answers our zero-window and keepalive probes
    // (tcp_ack: icsk_probes_out = 0, rcv_tstamp), and while the window stays
    // shut the probe timer starts again from now (tcp_ack_probe).
    cb.probes_out = 0;
    cb.rcv_tstamp = Some(now);
    // "We passed data and got it acked, remove any soft error log."
    if cb.sock.err_soft().is_some() {
        cb.sock.set_err_soft(None);
    }
    if cb.snd_wnd > 0 {
        cb.probes_tstamp = None;
    }
    if cb.snd_wnd > 0 && prior_wnd == 0 {
        if cb.in_flight() == 0 {
            cb.rto_at = None;
            cb.backoff = 0;
        }
    } else if cb.snd_wnd == 0 && cb.in_flight() == 0 && cb.write_seq() != cb.snd_nxt {
        cb.rto_at = Some(now + cb.rto_backed_off());
    }
    let tag = super::sack::tcp_sacktag(&mut net.mib, cb, &r.options, prior_una, ack);
    let acked = ack.wrapping_sub(prior_una);
    if acked == 0 {
        // RFC 5681 §2: a duplicate ACK carries no data, moves no window and
        // finds data outstanding. One that reports SACK blocks is a duplicate
        // whatever its window (RFC 6675 counts SACKed segments towards
        // DupThresh; until the scoreboard comes, each such ACK counts one).
        let dup = seg.data.is_empty()
            && !seg.has(flags::SYN)
            && !seg.has(flags::FIN)
            && (nwin == prior_wnd || (cb.sack_ok && r.options.sack_len > 0))
            && cb.in_flight() > 0;
        if cb.sack_ok {
            super::rack::tcp_rack_update(cb, &tag.delivered, tag.tsecr, &net.tcp.ts_clock, now, net.tcp.hz);
            let pure_dupack = seg.data.is_empty() && !win_update && !tag.data_sacked;
            rack_tlp_ack(net, cb, &tag, ack, pure_dupack);
            // tcp_ack_is_dubious → tcp_fastretrans_alert.
            if dup {
                cb.dupacks += 1;
            }
            if dup || tag.alert() || cb.ca_state != CaState::Open {
                if let Some(force) = super::sack::fastretrans_alert(net, cb, prior_una, &tag, dup, now) {
                    super::sack::prr_on_ack(cb, &tag, prior_una);
                    super::output::tcp_xmit_retransmit_queue(net, q, umem, cb, force, now);
                }
            }
            return Ok(());
        }
        if dup {
            cb.dupacks += 1;
            match cb.ca_state {
                CaState::Open if cb.dupacks == super::TCP_FASTRETRANS_THRESH => {
                    cong::enter_recovery(cb);
                    net.mib.TcpExtTCPRenoRecovery += 1;
                    cb.rtt_probe = None;
                    if tcp_retransmit_head(net, q, umem, cb, now).is_some() {
                        net.mib.TcpExtTCPFastRetrans += 1;
                    }
                }
                CaState::Recovery => cong::recovery_dupack(cb),
                _ => {}
            }
        }
        return Ok(());
    }
    // New data acknowledged (`tcp_clean_rtx_queue`).
    let prior_in_flight = cb.in_flight();
    if before(cb.snd_nxt, ack) {
        // After a timeout snd_nxt went back to snd_una; the peer had more.
        cb.snd_nxt = ack;
    }
    let data_acked = acked.min(cb.snd_buffered() + u32::from(cb.fin_seq.is_some()));
    let bytes = data_acked.min(cb.snd_buffered()) as usize;
    if let Some(b) = cb.bufs.as_mut() {
        b.snd.skip(bytes);
    }
    // sk_wmem_free_skb, sk_mem_reclaim.
    super::wmem::tcp_wmem_free(net, cb, bytes, now);
    cb.bytes_acked += bytes as u64;
    cb.snd_una = ack;
    cb.rtx_queue_clean();
    // The congestion control's sample: the newest segment this ACK covers
    // that was sent once (`ca_rtt_us`), if any.
    let mut newest = None;
    while let Some(&(end, sent)) = cb.sent_times.front() {
        if after(end, ack) {
            break;
        }
        newest = Some(sent);
        cb.sent_times.pop_front();
    }
    // tcp_ack_update_rtt: without a sample from the ACK's timing (the
    // data was sent again, or is not the one being timed), TSecr gives one.
    let ts_rtt = timestamps::ack_rtt(cb, &net.tcp.ts_clock, r, now);
    if let Some(rtt) = newest.map(|sent| now.saturating_duration_since(sent)).or(ts_rtt) {
        cong::pkts_acked(cb, rtt, now, &mut net.mib);
    }
    let mut sampled = false;
    if let Some((end, sent)) = cb.rtt_probe {
        if !before(ack, end) {
            cong::rtt_sample(cb, now.saturating_duration_since(sent), net.tcp.hz);
            cb.rtt_probe = None;
            // RFC 6298 §5.7 (tcp_ack_update_rtt): only a valid RTT
            // measurement resets the backoff.
            cb.backoff = 0;
            sampled = true;
        }
    }
    if let (false, Some(rtt)) = (sampled, ts_rtt) {
        cong::rtt_sample(cb, rtt, net.tcp.hz);
        cb.backoff = 0;
    }
    cb.retransmits = 0;
    cb.probes_out = 0;
    cb.retrans_stamp = None;
    // tcp_rearm_rto: stop when nothing is outstanding, else restart with
    // the RTO as it stands (backed off until a sample says otherwise).
    cb.rto_at = if cb.snd_una == cb.snd_max { None } else { Some(now + cb.rto_backed_off()) };
    let mss = cb.mss.max(1);
    let acked_segs = acked.div_ceil(mss);
    if cb.sack_ok {
        let prior_state = cb.ca_state;
        super::rack::tcp_rack_update(cb, &tag.delivered, tag.tsecr, &net.tcp.ts_clock, now, net.tcp.hz);
        rack_tlp_ack(net, cb, &tag, ack, false);
        // Data SACKed and outstanding is Linux's Disorder state: dubious too.
        if tag.alert() || cb.ca_state != CaState::Open || !cb.sack.ranges().is_empty() {
            if let Some(force) = super::sack::fastretrans_alert(net, cb, prior_una, &tag, false, now) {
                super::sack::prr_on_ack(cb, &tag, prior_una);
                super::output::tcp_xmit_retransmit_queue(net, q, umem, cb, force, now);
            }
        }
        // tcp_set_xmit_timer: the probe timer, in the Open state.
        super::rack::tcp_schedule_loss_probe(cb, now, true, net.tcp.tlp(), net.tcp.hz);
        // tcp_cong_control: no growth while the window is being reduced,
        // nor on the ACK that ends the reduction (as the NewReno path).
        match cb.ca_state {
            _ if prior_state == CaState::Recovery => {}
            CaState::Open => {
                cb.dupacks = 0;
                let cwnd_limited = prior_in_flight >= cb.cwnd.saturating_mul(mss) / 2;
                cong::cong_avoid(cb, acked_segs, cwnd_limited, now);
            }
            CaState::Recovery => {}
            CaState::Loss => cong::cong_avoid(cb, acked_segs, true, now),
        }
    } else {
        newreno_ack(net, q, umem, cb, ack, acked_segs, prior_in_flight, now);
    }
    // tcp_cong_control's last step: the pacing rate for the window and RTT as they are now.
    super::pacing::tcp_update_pacing_rate(cb);
    if bytes > 0 {
        // tcp_check_space → tcp_new_space → sk_write_space: room in the send
        // buffer, a wake-up keyed EPOLLOUT for the writers (and pollers), not
        // the readers: an edge-triggered EPOLLIN watcher is not told again.
        super::wmem::tcp_check_space(net, cb);
        cb.sock.wq.wake_up_write_space();
    }
    Ok(())
}

/// `tcp_process_tlp_ack` for an ACK whose SACK option gave `tag`: a
/// D-SACK reaching `tlp_high_seq` shows the probe was not needed.
fn rack_tlp_ack(net: &mut Net, cb: &mut TcpCb, tag: &super::sack::SackTag, ack: u32, pure_dupack: bool) {
    let dsack_tlp = match (tag.dsack_end, cb.rack.tlp_high_seq) {
        (Some(end), Some(high)) => !before(end, high),
        _ => false,
    };
    super::rack::tcp_process_tlp_ack(&mut net.mib, cb, ack, dsack_tlp, pure_dupack);
}

/// NewReno (RFC 6582) for a peer without SACK: the ACK of new data in each
/// recovery state.
#[allow(clippy::too_many_arguments)]
fn newreno_ack(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    ack: u32,
    acked_segs: u32,
    prior_in_flight: u32,
    now: Instant,
) {
    let mss = cb.mss.max(1);
    match cb.ca_state {
        CaState::Open => {
            cb.dupacks = 0;
            let cwnd_limited = prior_in_flight >= cb.cwnd.saturating_mul(mss) / 2;
            cong::cong_avoid(cb, acked_segs, cwnd_limited, now);
        }
        CaState::Recovery => {
            if !before(ack, cb.high_seq) {
                cong::exit_recovery(cb);
            } else {
                // NewReno partial ACK: the next hole goes at once.
                cong::recovery_partial_ack(cb, acked_segs);
                if tcp_retransmit_head(net, q, umem, cb, now).is_some() {
                    net.mib.TcpExtTCPFastRetrans += 1;
                }
            }
        }
        CaState::Loss => {
            if !before(ack, cb.high_seq) {
                cong::exit_recovery(cb);
            }
            cong::cong_avoid(cb, acked_segs, true, now);
        }
    }
}

/// `tcp_data_queue`: in-order data to the receive buffer (then whatever the
/// out-of-order queue now continues), out-of-order data to that queue, old
/// data answered at once.
fn tcp_data_queue(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, seg: &Segment<'_>, now: Instant) {
    let fin = seg.has(flags::FIN);
    let mut data = seg.data;
    let mut seq = seg.seq();
    super::prune::tcp_rcvq_reclaim(net, cb, now);
    if data.is_empty() && !fin {
        return;
    }
    let end = seq.wrapping_add(data.len() as u32);
    if !after(end.wrapping_add(u32::from(fin)), cb.rcv_nxt) {
        // All of it came before: a retransmission. Our ACK was lost or late.
        net.mib.TcpExtDelayedACKLost += 1;
        super::sack::dsack_set(&mut net.mib, cb, seq, end.wrapping_add(u32::from(fin)));
        cb.enter_quickack_mode(TCP_MAX_QUICKACKS);
        cb.ack_pending = true;
        cb.ack_now = true;
        return;
    }
    let wnd = cb.receive_window();
    if !before(seq, cb.rcv_nxt.wrapping_add(wnd)) && !data.is_empty() {
        // Beyond the window.
        if wnd == 0 {
            net.mib.TcpExtTCPZeroWindowDrop += 1;
        }
        cb.enter_quickack_mode(TCP_MAX_QUICKACKS);
        cb.ack_pending = true;
        cb.ack_now = true;
        return;
    }
    if before(seq, cb.rcv_nxt) {
        // Partly old: keep the new part, report the old one.
        let rcv_nxt = cb.rcv_nxt;
        super::sack::dsack_set(&mut net.mib, cb, seq, rcv_nxt);
        data = &data[cb.rcv_nxt.wrapping_sub(seq) as usize..];
        seq = cb.rcv_nxt;
    }
    if seq != cb.rcv_nxt {
        tcp_data_queue_ofo(net, cb, seq, data, fin, now);
        return;
    }
    if wnd == 0 && !data.is_empty() {
        net.mib.TcpExtTCPZeroWindowDrop += 1;
        cb.enter_quickack_mode(TCP_MAX_QUICKACKS);
        cb.ack_pending = true;
        cb.ack_now = true;
        return;
    }
    // tcp_rcv_space_adjust, which Linux runs after the application's
    // read: what it has read by now.
    tcp_rcv_space_adjust(net, cb, now);
    // Whatever lies beyond the window is not ours to keep.
    let take = data.len().min(wnd as usize);
    let fin = fin && take == data.len();
    if !super::prune::tcp_rmem_schedule_rcvq(net, cb, seq, take, now) {
        net.mib.TcpExtTCPRcvQDrop += 1;
        cb.sock.wq.wake_up();
        return;
    }
    let n = match cb.bufs.as_mut() {
        Some(b) => b.rcv.push_slice(&data[..take]),
        None => 0,
    };
    super::prune::tcp_charge_rcvq(cb, n);
    if n < take {
        net.mib.TcpExtTCPRcvQDrop += 1;
    }
    tcp_event_data_recv(cb, seg, n, net.tcp.mem.under_pressure(), now);
    cb.rcv_nxt = cb.rcv_nxt.wrapping_add(n as u32);
    if n > 0 {
        // tcp_event_data_recv: tcp_rcv_rtt_measure.
        let (rcv_nxt, rcv_wnd) = (cb.rcv_nxt, cb.rcv_wnd);
        cb.rcvq.rcv_rtt_measure(rcv_nxt, rcv_wnd, now);
    }
    cb.bytes_received += n as u64;
    cb.ack_pending = true;
    if fin && n == take {
        tcp_fin(net, q, umem, cb, now);
    }
    if !cb.ofo.is_empty() {
        tcp_ofo_queue(net, q, umem, cb, now);
        if cb.ofo.is_empty() {
            cb.ack_now = true;
        }
    }
    if n > 0 {
        cb.tsk().stream.stamp_rx(net.rx_sampler.batch_stamp());
        // tcp_data_ready: the reader is woken (the sock's SO_RCVLOWAT is
        // checked by the reader's readiness test).
        cb.sock.wq.wake_up();
    }
}

/// `tcp_rcv_rtt_measure_ts`: a segment's TSecr times a round trip for
/// receive-buffer autotuning (`super::rcvbuf`).
fn tcp_rcv_rtt_measure_ts(net: &Net, cb: &mut TcpCb, seg: &Segment<'_>, now: Instant) {
    let Some(rx) = super::ts_state::saw_tstamp(&cb.ts, seg.repr.options.timestamp) else { return };
    let queue_empty = cb.copied_seq() == cb.rcv_nxt;
    let len = seg.end_seq().wrapping_sub(seg.seq());
    let rcv_mss = cb.rcv_mss;
    cb.rcvq.rcv_rtt_measure_ts(rx.tsecr, net.tcp.ts_clock.ms(now), len, rcv_mss, queue_empty);
}

/// `tcp_rcv_space_adjust`: once a round trip, what the application read in
/// it; the receive buffer grows when that was more than before
/// ([`tcp_rcvbuf_grow`]). A growth the application's read held off is tried
/// again here.
fn tcp_rcv_space_adjust(net: &mut Net, cb: &mut TcpCb, now: Instant) {
    let (rcv_nxt, copied_seq) = (cb.rcv_nxt, cb.copied_seq());
    match cb.rcvq.space_adjust(rcv_nxt, copied_seq, now) {
        Some((old, new)) => tcp_rcvbuf_grow(net, cb, old, new),
        None if cb.rcvbuf_want > 0 => tcp_rcvbuf_try_grow(net, cb),
        None => {}
    }
}

/// `tcp_rcvbuf_grow`: the receive buffer for a round trip that delivered
/// `new` bytes after one that delivered `old`
/// ([`super::rcvbuf::rcvbuf_grow_target`]), unless `tcp_moderate_rcvbuf` is
/// off or `SO_RCVBUF` was set (`SOCK_RCVBUF_LOCK`). Not past
/// `tcp_rmem[2]` nor past the largest window the window scale can offer,
/// and not under TCP memory pressure (the ring is memory once data has gone
/// round it; Linux's buffer is only a limit). A growth at least doubles the
/// ring (it is reallocated and copied, where Linux sets a number).
fn tcp_rcvbuf_grow(net: &mut Net, cb: &mut TcpCb, old: u32, new: u32) {
    if !net.tcp.moderate_rcvbuf || net.tcp.mem.under_pressure() || cb.tsk().rcvbuf_lock.load(Ordering::Relaxed) {
        return;
    }
    let ofo_span = cb.ofo.last().map_or(0, |o| o.end().wrapping_sub(cb.rcv_nxt));
    let cap = super::rcvbuf::TCP_RMEM_MAX.min((u32::from(u16::MAX) as usize) << cb.rcv_wscale);
    let target = super::rcvbuf::rcvbuf_grow_target(old, new, ofo_span, cap);
    let full = cb.rcv_full_space() as usize;
    if target > full && target > cb.rcvbuf_want {
        // Linux's sk_rcvbuf is a number; ours is a ring, reallocated and
        // copied to grow. The out-of-order queue asks for one segment more
        // with each segment behind a hole, so growing to the target alone
        // would reallocate at every segment of a loss episode: the ring at
        // least doubles instead, a handful of growths in a connection's life.
        cb.rcvbuf_want = target.max(full.saturating_mul(2)).min(cap);
        tcp_rcvbuf_try_grow(net, cb);
    }
}

/// Makes the receive ring the size autotuning asked for (`rcvbuf_want`),
/// keeping `TCP_RCV_SLACK` beyond it; `sk_rcvbuf` follows. Left pending
/// when the application holds the ring.
///
/// What rings have grown by, all connections together, stays under
/// `tcp_mem`'s pressure threshold (`super::mem::RingsGrown`): a growth
/// past it is refused (`XskTcpRcvbufGrowRefused`) and the ring keeps its size,
/// as it does when the allocator refuses the new ring.
fn tcp_rcvbuf_try_grow(net: &mut Net, cb: &mut TcpCb) {
    let want = cb.rcvbuf_want;
    let grow = want.saturating_sub(cb.rcv_full_space() as usize);
    let limit = net.tcp.mem.rings_growth_limit();
    if !net.tcp.rings_grown.fits(grow, limit) {
        net.mib.XskTcpRcvbufGrowRefused += 1;
        cb.rcvbuf_want = 0;
        return;
    }
    let (Some(tsk), Some(bufs)) = (cb.sock.tcp(), cb.bufs.as_mut()) else { return };
    match tsk.stream.grow_rcv(bufs, want + super::TCP_RCV_SLACK) {
        RingGrow::Done => {
            tsk.rcvbuf.store(want, Ordering::Relaxed);
            cb.rcvbuf_want = 0;
            net.tcp.rings_grown.charge(&mut cb.rcvbuf_charge, grow, usize::MAX);
            net.mib.XskTcpRcvbufGrown += 1;
        }
        RingGrow::Busy => {}
        RingGrow::NoRing => cb.rcvbuf_want = 0,
        RingGrow::NoMemory => {
            net.mib.XskTcpRcvbufGrowRefused += 1;
            cb.rcvbuf_want = 0;
        }
    }
}

/// `tcp_event_data_recv`: the delayed-ACK engine starts with quick ACKs;
/// the peer's segment size is learnt (`tcp_measure_rcv_mss`).
fn tcp_event_data_recv(cb: &mut TcpCb, seg: &Segment<'_>, len: usize, memory_pressure: bool, now: Instant) {
    if len == 0 {
        return;
    }
    tcp_measure_rcv_mss(cb, seg);
    if cb.ato.is_zero() {
        // The first data: the delayed-ACK engine starts, in quick-ACK mode.
        cb.incr_quickack(TCP_MAX_QUICKACKS);
        cb.ato = super::TCP_ATO_MIN;
    } else if let Some(last) = cb.lrcvtime {
        // The timeout follows the time between segments.
        // `icsk_rto`: the RTO as the timer would arm it, backoff included.
        let rto = cb.rto_backed_off();
        let m = now.saturating_duration_since(last);
        if m <= super::TCP_ATO_MIN / 2 {
            cb.ato = cb.ato / 2 + super::TCP_ATO_MIN / 2;
        } else if m < cb.ato {
            cb.ato = (cb.ato / 2 + m).min(rto);
        } else if m > rto {
            // A long gap: the sender did not restart its window, ACK quickly.
            cb.incr_quickack(TCP_MAX_QUICKACKS);
        }
    }
    cb.lrcvtime = Some(now);
    let len = len as u32;
    // tcp_grow_window: data is copied out of the frame, so its truesize is
    // its length and the window grows by two segments; not under memory
    // pressure.
    if len >= 128 && cb.rcv_ssthresh < cb.rcv_full_space() && cb.rcv_ssthresh < cb.rcv_space() && !memory_pressure {
        cb.rcv_ssthresh = (cb.rcv_ssthresh + 2 * cb.advmss).min(cb.rcv_full_space());
    }
}

/// `tcp_measure_rcv_mss`: the peer's segment size as our ACK engine sees it
/// (`icsk_ack.rcv_mss`): a segment at least as long sets it (up to our
/// `advmss`); two shorter ones alike in a row, long enough to be full
/// segments of a smaller MSS, set it too. A full one with PSH, or a short
/// one otherwise, marks the end of a write (`ICSK_ACK_PUSHED`).
fn tcp_measure_rcv_mss(cb: &mut TcpCb, seg: &Segment<'_>) {
    let lss = std::mem::take(&mut cb.last_seg_size);
    let len = seg.data.len() as u32;
    if len >= cb.rcv_mss {
        cb.rcv_mss = len.min(cb.advmss);
        if seg.has(flags::PSH) {
            cb.ack_pushed = true;
        }
        return;
    }
    // The length with the header, which SACK blocks do not vary past the
    // fixed part (`tcp_header_len`: 20, 32 with timestamps).
    let hdr = tcp::HEADER_LEN as u32;
    let with_hdr = len + seg.doff as u32;
    let remnant = flags::FIN | flags::URG | flags::SYN | flags::PSH;
    if with_hdr >= TCP_MSS_DEFAULT + hdr || (with_hdr >= TCP_MIN_MSS + hdr && seg.repr.flags & remnant == 0) {
        let l = with_hdr - (hdr + if cb.ts.ok { 12 } else { 0 });
        cb.last_seg_size = l;
        if l == lss {
            cb.rcv_mss = l;
            return;
        }
    }
    if cb.ack_pushed {
        cb.ack_pushed2 = true;
    }
    cb.ack_pushed = true;
}

/// `tcp_data_queue_ofo`: keeps data that arrived ahead of a gap (trimmed to
/// the window), without the bytes already held; the ACK goes at once.
fn tcp_data_queue_ofo(net: &mut Net, cb: &mut TcpCb, seq: u32, data: &[u8], fin: bool, now: Instant) {
    if !super::prune::tcp_rmem_schedule_ofo(net, cb, seq, data.len(), now) {
        net.mib.TcpExtTCPOFODrop += 1;
        cb.sock.wq.wake_up();
        return;
    }
    net.mib.TcpExtTCPOFOQueue += 1;
    cb.sack_recent = seq;
    cb.ack_pending = true;
    cb.ack_now = true;
    let wnd_end = cb.rcv_nxt.wrapping_add(cb.receive_window());
    let keep = data.len().min(wnd_end.wrapping_sub(seq) as usize);
    let fin = fin && keep == data.len();
    let e = seq.wrapping_add(keep as u32);
    // The parts of [seq, e) no queued segment holds yet.
    let mut pieces = std::mem::take(&mut net.tcp.ofo_bufs.pieces);
    pieces.clear();
    let mut cur = seq;
    let mut overlapped = false;
    let mut dup = None;
    for o in &cb.ofo {
        if !after(e, o.seq) {
            break;
        }
        if !after(o.end(), cur) {
            continue;
        }
        overlapped = true;
        if before(cur, o.seq) {
            pieces.push((cur, o.seq));
        }
        // The bytes already held are a duplicate (`tcp_dsack_set`, then
        // `tcp_dsack_extend` for the next segments covered when they touch).
        let dup_l = if after(o.seq, seq) { o.seq } else { seq };
        let dup_r = if before(o.end(), e) { o.end() } else { e };
        if after(dup_r, dup_l) {
            dup = match dup {
                None => Some((dup_l, dup_r)),
                Some((l, r)) if !after(dup_l, r) => Some((l, dup_r)),
                d => d,
            };
        }
        cur = o.end();
        if !before(cur, e) {
            break;
        }
    }
    if before(cur, e) {
        pieces.push((cur, e));
    }
    if overlapped {
        net.mib.TcpExtTCPOFOMerge += 1;
    }
    if let Some((l, r)) = dup {
        super::sack::dsack_set(&mut net.mib, cb, l, r);
    }
    let new_bytes: usize = pieces.iter().map(|(a, b)| b.wrapping_sub(*a) as usize).sum();
    if cb.ofo_bytes + new_bytes > cb.rcv_full_space() as usize {
        net.mib.TcpExtTCPOFODrop += 1;
        net.tcp.ofo_bufs.pieces = pieces;
        return;
    }
    let fin_placed = fin && pieces.last().is_some_and(|&(_, b)| b == e);
    for &(a, b) in &pieces {
        let off = a.wrapping_sub(seq) as usize;
        let bytes = net.tcp.ofo_bufs.copy_of(&data[off..off + b.wrapping_sub(a) as usize]);
        let piece = OfoSeg { seq: a, data: bytes, fin: fin && b == e };
        let at = cb.ofo.iter().position(|o| after(o.seq, a)).unwrap_or(cb.ofo.len());
        cb.ofo.insert(at, piece);
    }
    net.tcp.ofo_bufs.pieces = pieces;
    cb.ofo_bytes += new_bytes;
    super::prune::tcp_charge_ofo(cb, new_bytes);
    if fin && !fin_placed {
        // The FIN follows bytes already queued, or comes alone.
        match cb.ofo.iter_mut().find(|o| o.end() == e) {
            Some(o) => o.fin = true,
            None => {
                let at = cb.ofo.iter().position(|o| after(o.seq, e)).unwrap_or(cb.ofo.len());
                cb.ofo.insert(at, OfoSeg { seq: e, data: Vec::new(), fin: true });
            }
        }
    }
    // tcp_rcvbuf_grow with the space as it is: room for what the
    // out-of-order queue now spans (not for an orphan: nobody reads).
    if !cb.orphan {
        let space = cb.rcvq.space;
        tcp_rcvbuf_grow(net, cb, space, space);
    }
}

/// `tcp_ofo_queue`: moves out-of-order data that is now in order.
fn tcp_ofo_queue(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    while let Some(first) = cb.ofo.first() {
        if after(first.seq, cb.rcv_nxt) {
            break;
        }
        let o = cb.ofo.remove(0);
        cb.ofo_bytes -= o.data.len();
        let fin_now = o.fin && !before(o.end(), cb.rcv_nxt);
        if !after(o.end(), cb.rcv_nxt) && !fin_now {
            // Already delivered.
            super::prune::tcp_ofo_moved(net, cb, o.data.len(), 0, now);
            net.tcp.ofo_bufs.give(o.data);
            continue;
        }
        let skip = (cb.rcv_nxt.wrapping_sub(o.seq) as usize).min(o.data.len());
        let part = &o.data[skip..];
        let n = match cb.bufs.as_mut() {
            Some(b) => b.rcv.push_slice(part),
            None => 0,
        };
        super::prune::tcp_ofo_moved(net, cb, o.data.len(), n, now);
        if n < part.len() {
            net.mib.TcpExtTCPRcvQDrop += 1;
        }
        cb.rcv_nxt = cb.rcv_nxt.wrapping_add(n as u32);
        cb.bytes_received += n as u64;
        let whole = n == part.len();
        net.tcp.ofo_bufs.give(o.data);
        if o.fin && whole {
            tcp_fin(net, q, umem, cb, now);
            break;
        }
    }
}

/// `tcp_fin`: the peer's FIN, in sequence.
fn tcp_fin(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    cb.ack_pending = true;
    cb.rcv_nxt = cb.rcv_nxt.wrapping_add(1);
    cb.tsk().stream.fin_rcvd.store(true, Ordering::Release);
    match cb.state {
        TcpState::SynRecv | TcpState::Established => {
            tcp_set_state(net, cb, TcpState::CloseWait);
            cb.pingpong = true;
        }
        TcpState::FinWait1 => {
            // Simultaneous close.
            tcp_send_ack(net, q, umem, cb, now);
            tcp_set_state(net, cb, TcpState::Closing);
        }
        TcpState::FinWait2 => {
            tcp_send_ack(net, q, umem, cb, now);
            tcp_time_wait(net, cb, TcpState::TimeWait, TCP_TIMEWAIT_LEN, now);
        }
        _ => {}
    }
    // Data after a FIN is nothing.
    super::prune::tcp_ofo_purge(net, cb, now);
    cb.sock.wq.wake_up();
}

/// `__tcp_ack_snd_check`: the ACK goes now (a second full segment since the
/// last one, quick-ACK mode, out-of-order data, or a one-off "now"), or on
/// the delayed-ACK timer.
pub fn tcp_ack_snd_check(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    if !cb.ack_pending {
        return;
    }
    // More than one full segment since the last ACK, and the window this ACK
    // would offer does not fall short of what is left of the last offer
    // (Linux compares with the whole last offer, `__tcp_select_window(sk) >=
    // tp->rcv_wnd`; its buffer is megabytes and read as segments arrive,
    // ours is a ring that a batch of segments fills before the application
    // reads, so that test would hold back every ACK of the batch).
    let two_segments = cb.rcv_nxt.wrapping_sub(cb.rcv_wup) > cb.rcv_mss
        && super::output::select_window_space(cb) >= cb.receive_window();
    if two_segments || cb.in_quickack_mode() || cb.ack_now || !cb.ofo.is_empty() {
        tcp_send_ack(net, q, umem, cb, now);
    } else {
        tcp_send_delayed_ack(net, q, umem, cb, now);
    }
}

/// `tcp_send_delayed_ack`: the delayed-ACK timer, `ato` from now, bounded
/// when `ato` has grown: by half a second, or [`super::TCP_DELACK_MAX`] in
/// interactive mode or after the end of a write, and by the smoothed RTT
/// (at least [`super::TCP_DELACK_MIN`]); never past
/// [`super::TCP_DELACK_MAX`]. A timer already armed keeps its earlier
/// deadline, and one due within a quarter of `ato` sends the ACK now.
pub fn tcp_send_delayed_ack(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    let mut ato = cb.ato.max(super::TCP_ATO_MIN);
    if ato > super::TCP_DELACK_MIN {
        let mut max_ato = std::time::Duration::from_millis(500);
        if cb.pingpong || cb.ack_pushed {
            max_ato = super::TCP_DELACK_MAX;
        }
        if cb.srtt_us != 0 {
            let srtt = crate::jiffies::round_up(std::time::Duration::from_micros(u64::from(cb.srtt_us)), net.tcp.hz);
            max_ato = max_ato.min(srtt.max(super::TCP_DELACK_MIN));
        }
        ato = ato.min(max_ato);
    }
    ato = ato.min(super::TCP_DELACK_MAX);
    let mut timeout = now + ato;
    if let Some(armed) = cb.delack_at {
        if armed <= now + ato / 4 {
            tcp_send_ack(net, q, umem, cb, now);
            return;
        }
        timeout = timeout.min(armed);
    }
    cb.delack_at = Some(timeout);
    // A read that drains the buffer may send it sooner (`tcp_cleanup_rbuf`).
    cb.tsk().stream.ack_on_read.store(true, Ordering::SeqCst);
    // A reader on another thread may have drained it already, before the
    // flag was up (in Linux the read comes after the softirq's decision):
    // then the ACK that read would have sent goes now.
    if cb.drained_after_push() {
        tcp_send_ack(net, q, umem, cb, now);
    }
}

/// A listener's segment (`tcp_v4_do_rcv` → `tcp_rcv_state_process` in
/// LISTEN, or `tcp_check_req` for a request sock). `isn` is the ISN a SYN
/// that reopened a TIME-WAIT 4-tuple must use.
#[allow(clippy::too_many_arguments)]
fn tcp_listen_rcv(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    lid: CbId,
    key: FourTuple,
    seg: &Segment<'_>,
    isn: Option<u32>,
    now: Instant,
) {
    let Some(mut l) = net.tcp.take(lid) else { return };
    l.segs_in += 1;
    let has_req = l.listener.as_ref().is_some_and(|x| x.syn_queue.contains_key(&key.remote));
    if has_req {
        tcp_check_req(net, q, umem, &mut l, key, seg, now);
    } else if seg.has(flags::RST) {
        // Ignored.
    } else if seg.has(flags::ACK) && !seg.has(flags::SYN) && cookie_v4_check(net, q, umem, &mut l, key, seg, now) {
        // A connection made from a SYN cookie, or the ACK dropped.
    } else if seg.has(flags::ACK) {
        tcp_v4_send_reset(net, q, umem, key.local, key.remote, &seg.repr, now);
    } else if seg.has(flags::SYN) && !seg.has(flags::FIN) {
        // SYN|FIN is dropped (`tcp_rcv_state_process` in LISTEN).
        tcp_conn_request(net, q, umem, &mut l, key, seg, isn, now);
    }
    finish(net, lid, l, Fate::Keep);
}

/// `tcp_conn_request`: a SYN for a listener makes a request sock and gets a
/// SYN-ACK. With its SYN queue full, the SYN-ACK carries a SYN cookie and no
/// request sock is kept (`tcp_syncookies` 1, the default; 2 always), or
/// the SYN is dropped (`tcp_syncookies` 0); with the accept queue full it
/// is dropped (counted).
#[allow(clippy::too_many_arguments)]
fn tcp_conn_request(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    l: &mut TcpCb,
    key: FourTuple,
    seg: &Segment<'_>,
    isn: Option<u32>,
    now: Instant,
) {
    let tsk = l.sock.tcp().expect("stream sock");
    let max_backlog = tsk.max_backlog.load(Ordering::Relaxed);
    let qlen = l.listener.as_ref().map_or(0, |x| x.syn_queue.len());
    // inet_csk_reqsk_queue_is_full (`qlen > sk_max_ack_backlog`, as the
    // accept queue's test), then tcp_syn_flood_action.
    let syncookies = net.tcp.syncookies;
    let mut want_cookie = false;
    if isn.is_none() && (syncookies == TcpSyncookies::Always || qlen > max_backlog) {
        if syncookies == TcpSyncookies::Off {
            net.mib.TcpExtTCPReqQFullDrop += 1;
            net.mib.TcpExtListenDrops += 1;
            return;
        }
        want_cookie = true;
        net.mib.TcpExtTCPReqQFullDoCookies += 1;
    }
    if tsk.acceptq_is_full() {
        net.mib.TcpExtListenOverflows += 1;
        net.mib.TcpExtListenDrops += 1;
        return;
    }
    let r = &seg.repr;
    let mut req = RequestSock {
        iss: isn.unwrap_or_else(|| net.tcp.isn(key.local, key.remote, now)),
        irs: r.seq,
        mss: clamp_mss(r.options.mss, l.advmss) as u16,
        snd_wscale: r.options.window_scale.map(|w| w.min(TCP_MAX_WSCALE)),
        sack_ok: r.options.sack_permitted,
        snd_wnd: r.window,
        num_timeout: 0,
        num_retrans: 0,
        expires: now + TCP_TIMEOUT_INIT,
        acked: false,
        sent_at: now,
        last_oow_ack: None,
        from_cookie: false,
        ts: timestamps::req_init(&net.tcp.ts_clock, &key, r.options.timestamp),
    };
    let rcvbuf = tsk.rcvbuf.load(Ordering::Relaxed);
    if want_cookie {
        // cookie_v4_init_sequence: the MSS in the ISN; the window scale and
        // SACK in the low bits of TSval (cookie_init_timestamp), or, without
        // timestamps, not at all (tcp_clear_options). The request sock goes
        // with the SYN-ACK.
        let (cookie, _) =
            net.tcp.cookies.init_sequence(&(key.local, key.remote), r.seq, r.options.mss.unwrap_or(536), now);
        req.iss = cookie;
        match req.ts.as_mut() {
            Some(ts) => {
                let ts_now = net.tcp.ts_clock.ms(now);
                ts.cookie_ts = Some(timestamps::cookie_init_timestamp(req.snd_wscale, req.sack_ok, ts_now));
            }
            None => {
                req.snd_wscale = None;
                req.sack_ok = false;
            }
        }
        net.mib.TcpExtSyncookiesSent += 1;
        if let Some(x) = l.listener.as_mut() {
            // tcp_synq_overflow: at most once a second.
            if x.last_overflow.is_none_or(|t| now.saturating_duration_since(t) > std::time::Duration::from_secs(1)) {
                x.last_overflow = Some(now);
            }
        }
        tcp_send_synack(net, q, umem, key.local, key.remote, &mut req, l.advmss, rcvbuf, false, now);
        return;
    }
    tcp_send_synack(net, q, umem, key.local, key.remote, &mut req, l.advmss, rcvbuf, false, now);
    l.synack_at = Some(l.synack_at.map_or(req.expires, |t| t.min(req.expires)));
    if let Some(x) = l.listener.as_mut() {
        x.syn_queue.insert(key.remote, req);
    }
}

/// `cookie_v4_check`: an ACK for a listener with no request sock, while
/// the listener sent SYN cookies within `TCP_SYNCOOKIE_VALID`: a good cookie
/// makes the connection as the request sock would have (`SyncookiesRecv`;
/// dropped with `ListenOverflows` when the accept queue is full) and
/// returns true; a bad one counts `SyncookiesFailed` and returns false (the
/// listener then resets it), as does any ACK when no cookie went lately.
#[allow(clippy::too_many_arguments)]
fn cookie_v4_check(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    l: &mut TcpCb,
    key: FourTuple,
    seg: &Segment<'_>,
    now: Instant,
) -> bool {
    let recent = l
        .listener
        .as_ref()
        .and_then(|x| x.last_overflow)
        .is_some_and(|t| now.saturating_duration_since(t) <= super::syncookies::TCP_SYNCOOKIE_VALID);
    if net.tcp.syncookies == TcpSyncookies::Off || !recent {
        return false;
    }
    let r = &seg.repr;
    let (sseq, cookie) = (r.seq.wrapping_sub(1), r.ack.wrapping_sub(1));
    let Some(mss) = net.tcp.cookies.check(&(key.local, key.remote), sseq, cookie, now) else {
        net.mib.TcpExtSyncookiesFailed += 1;
        return false;
    };
    net.mib.TcpExtSyncookiesRecv += 1;
    if l.tsk().acceptq_is_full() {
        net.mib.TcpExtListenOverflows += 1;
        net.mib.TcpExtListenDrops += 1;
        return true;
    }
    // cookie_timestamp_decode: the window scale and SACK from the echoed
    // TSval, less our offset.
    let clock = &net.tcp.ts_clock;
    let ts = timestamps::req_init(clock, &key, r.options.timestamp);
    let tsecr = ts.zip(r.options.timestamp).map(|(t, (_, e))| if e == 0 { 0 } else { e.wrapping_sub(t.off) });
    let Some(opts) = timestamps::cookie_timestamp_decode(clock.mode, tsecr) else { return false };
    let req = RequestSock {
        iss: cookie,
        irs: sseq,
        mss: mss.min(l.advmss as u16),
        snd_wscale: opts.snd_wscale,
        sack_ok: opts.sack_ok,
        snd_wnd: r.window,
        num_timeout: 0,
        num_retrans: 0,
        expires: now,
        acked: false,
        sent_at: now,
        last_oow_ack: None,
        from_cookie: true,
        ts,
    };
    tcp_child_process(net, q, umem, l, key, &req, seg, now);
    true
}

/// `tcp_in_window`: the segment `[seq, end_seq)` overlaps `[s_win, e_win)`.
fn tcp_in_window(seq: u32, end_seq: u32, s_win: u32, e_win: u32) -> bool {
    if seq == s_win {
        return true;
    }
    if after(end_seq, s_win) && before(seq, e_win) {
        return true;
    }
    seq == e_win && seq == end_seq
}

/// `tcp_check_req`: a segment for a request sock. The final ACK makes the
/// child (`tcp_v4_syn_recv_sock`) and queues it for `accept()`.
#[allow(clippy::too_many_arguments)]
fn tcp_check_req(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    l: &mut TcpCb,
    key: FourTuple,
    seg: &Segment<'_>,
    now: Instant,
) {
    let r = &seg.repr;
    let Some(mut req) = l.listener.as_ref().and_then(|x| x.syn_queue.get(&key.remote)).cloned() else { return };
    let flg = r.flags & (flags::RST | flags::SYN | flags::ACK);
    let tsc = timestamps::req_check(&net.tcp.ts_clock, req.ts.as_ref(), req.timeout(), r, now);
    let rcvbuf = l.tsk().rcvbuf.load(Ordering::Relaxed);
    // The request's answers to repeated and out-of-window segments are
    // rate-limited like a connection's (`TCPACKSkippedSynRecv`).
    let req_oow_rate_limited = |net: &mut Net, l: &mut TcpCb| {
        let limited = l
            .listener
            .as_mut()
            .and_then(|x| x.syn_queue.get_mut(&key.remote))
            .is_some_and(|x| tcp_oow_rate_limited(&mut x.last_oow_ack, seg, now));
        if limited {
            net.mib.TcpExtTCPACKSkippedSynRecv += 1;
        }
        limited
    };
    // A retransmitted SYN: the SYN-ACK again.
    if r.seq == req.irs && flg == flags::SYN && !tsc.paws_reject {
        if !req_oow_rate_limited(net, l) {
            let advmss = l.advmss;
            // The request's timer starts again from now (mod_timer_pending
            // with reqsk_timeout); inet_rtx_syn_ack counts it (num_retrans).
            if let Some(x) = l.listener.as_mut().and_then(|x| x.syn_queue.get_mut(&key.remote)) {
                tcp_send_synack(net, q, umem, key.local, key.remote, x, advmss, rcvbuf, true, now);
                x.expires = now + x.timeout();
                x.num_retrans += 1;
            }
        }
        return;
    }
    // An ACK of something else than our SYN-ACK: the listener resets it.
    if seg.has(flags::ACK) && r.ack != req.iss.wrapping_add(1) {
        tcp_v4_send_reset(net, q, umem, key.local, key.remote, r, now);
        return;
    }
    let rcv_nxt = req.irs.wrapping_add(1);
    let wnd = initial_window(rcvbuf, req.window_mss(super::output::req_advmss(net, l.advmss, *key.remote.ip(), now)));
    if tsc.paws_reject || tsc.tsecr_reject || !tcp_in_window(r.seq, seg.end_seq(), rcv_nxt, rcv_nxt.wrapping_add(wnd)) {
        if !seg.has(flags::RST) && !req_oow_rate_limited(net, l) {
            // The request's ACK again (`tcp_v4_reqsk_send_ack`).
            let (recent, off) = req.ts.map_or((0, 0), |t| (t.recent, t.off));
            let ack = TcpRepr {
                src_port: key.local.port(),
                dst_port: key.remote.port(),
                seq: req.iss.wrapping_add(1),
                ack: rcv_nxt,
                flags: flags::ACK,
                window: wnd as u16,
                urgent: 0,
                options: TcpOptions {
                    timestamp: timestamps::bare_ack_option(&net.tcp.ts_clock, recent, off, now),
                    ..TcpOptions::default()
                },
                payload_len: 0,
            };
            super::output::send_bare(net, q, umem, key.local, key.remote, &ack, now);
        }
        if tsc.paws_reject {
            net.mib.TcpExtPAWSEstab += 1;
        } else if tsc.tsecr_reject {
            net.mib.TcpExtTSEcrRejected += 1;
        }
        return;
    }
    // In sequence, PAWS is OK: the segment's TSval is the next to echo.
    if let (Some(tsval), Some(ts)) = (tsc.tsval, req.ts.as_mut()) {
        if !after(r.seq, rcv_nxt) {
            ts.recent = tsval;
            if let Some(x) = l.listener.as_mut().and_then(|x| x.syn_queue.get_mut(&key.remote)) {
                x.ts = req.ts;
            }
        }
    }
    if seg.has(flags::RST) || seg.has(flags::SYN) {
        // A failed attempt, then embryonic_reset.
        net.mib.TcpAttemptFails += 1;
        if !seg.has(flags::RST) {
            tcp_v4_send_reset(net, q, umem, key.local, key.remote, r, now);
        }
        if let Some(x) = l.listener.as_mut() {
            x.syn_queue.remove(&key.remote);
        }
        net.mib.TcpExtEmbryonicRsts += 1;
        return;
    }
    if !seg.has(flags::ACK) {
        return;
    }
    // tcp_v4_syn_recv_sock: a full accept queue drops the ACK; the request
    // stays and its SYN-ACK timer sends the SYN-ACK again.
    if l.tsk().acceptq_is_full() {
        net.mib.TcpExtListenOverflows += 1;
        net.mib.TcpExtListenDrops += 1;
        if let Some(x) = l.listener.as_mut().and_then(|x| x.syn_queue.get_mut(&key.remote)) {
            x.acked = true;
        }
        return;
    }
    if let Some(x) = l.listener.as_mut() {
        x.syn_queue.remove(&key.remote);
    }
    tcp_child_process(net, q, umem, l, key, &req, seg, now);
}

/// The child of `req` made (`create_openreq_child`), then `tcp_child_process`:
/// the rest of the segment (data, FIN) in the child; the listener's
/// waiters woken for `accept()`.
#[allow(clippy::too_many_arguments)]
fn tcp_child_process(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    l: &TcpCb,
    key: FourTuple,
    req: &RequestSock,
    seg: &Segment<'_>,
    now: Instant,
) {
    let child_id = create_openreq_child(net, l, key, req, seg, now);
    if let Some(mut child) = net.tcp.take(child_id) {
        child.segs_in += 1;
        let fate = if seg.data.is_empty() && !seg.has(flags::FIN) {
            Fate::Keep
        } else {
            rcv_state_process(net, q, umem, &mut child, seg, now)
        };
        finish(net, child_id, child, fate);
    }
    l.sock.wq.wake_up();
}

/// `tcp_create_openreq_child` + `inet_csk_complete_hashdance`: the child
/// of a completed handshake, ESTABLISHED, hashed and on the accept queue.
fn create_openreq_child(
    net: &mut Net,
    l: &TcpCb,
    key: FourTuple,
    req: &RequestSock,
    seg: &Segment<'_>,
    now: Instant,
) -> CbId {
    let ltsk = l.tsk();
    let rcvbuf = ltsk.rcvbuf.load(Ordering::Relaxed);
    let sndbuf = ltsk.sndbuf.load(Ordering::Relaxed);
    let sock = Arc::new(Sock::with_readers(SockType::Stream, 0, 0, 1, l.sock.readers()));
    sock.wq.set_busy_poll(l.sock.wq.busy_poll());
    sock.set_local(key.local);
    sock.set_remote(key.remote);
    let tsk = sock.tcp().expect("stream sock");
    tsk.nodelay.store(ltsk.nodelay.load(Ordering::Relaxed), Ordering::Relaxed);
    tsk.cork.store(ltsk.cork.load(Ordering::Relaxed), Ordering::Relaxed);
    tsk.rcvbuf.store(rcvbuf, Ordering::Relaxed);
    tsk.sndbuf.store(sndbuf, Ordering::Relaxed);
    tsk.sndbuf_lock.store(ltsk.sndbuf_lock.load(Ordering::Relaxed), Ordering::Relaxed);
    tsk.rcvbuf_lock.store(ltsk.rcvbuf_lock.load(Ordering::Relaxed), Ordering::Relaxed);
    tsk.rcvlowat.store(ltsk.rcvlowat.load(Ordering::Relaxed), Ordering::Relaxed);
    tsk.inherit_keepalive(ltsk);
    let bufs = tsk.stream.attach_bufs(rcvbuf + super::TCP_RCV_SLACK, sndbuf);
    // tcp_v4_syn_recv_sock: advmss from the route (`dst_metric_advmss`), the
    // MSS synced to its MTU (`tcp_sync_mss`, which keeps the MTU as the
    // PMTU cookie).
    let path_mtu = net.pmtu.get(*key.remote.ip(), net.mtu, now).mtu;
    let advmss = super::output::req_advmss(net, l.advmss, *key.remote.ip(), now);
    let mut cb = TcpCb::new(sock.clone(), key.local, key.remote, advmss);
    // sk_clone_lock copies the listener's icsk_ack: TCP_QUICKACK 0 set on it
    // after listen() (which resets it, inet_csk_delack_init) holds for its
    // children from their first data, before accept().
    cb.pingpong = l.pingpong;
    if path_mtu < net.mtu {
        cb.pmtu_cookie = path_mtu as u32;
    }
    cb.bufs = Some(bufs);
    cb.iss = req.iss;
    cb.snd_una = req.iss.wrapping_add(1);
    cb.snd_nxt = cb.snd_una;
    cb.snd_max = cb.snd_una;
    cb.pushed_seq = cb.snd_una;
    cb.snd_sml = cb.snd_una;
    cb.irs = req.irs;
    cb.rcv_nxt = req.irs.wrapping_add(1);
    cb.rcv_wup = cb.rcv_nxt;
    match req.snd_wscale {
        Some(ws) => {
            cb.snd_wscale = ws;
            cb.rcv_wscale = TCP_RCV_WSCALE;
        }
        None => {
            cb.snd_wscale = 0;
            cb.rcv_wscale = 0;
        }
    }
    cb.sack_ok = req.sack_ok;
    cb.mss = u32::from(req.mss).min(cb.advmss);
    timestamps::child_init(&mut cb, req.ts.as_ref(), now);
    timestamps::shrink_mss(&mut cb, false);
    cb.rcv_wnd = initial_window(rcvbuf, req.window_mss(cb.advmss));
    cb.rcv_ssthresh = cb.rcv_wnd;
    cb.snd_wnd = u32::from(seg.repr.window) << cb.snd_wscale;
    cb.max_window = cb.snd_wnd;
    cb.snd_wl1 = seg.repr.seq;
    cb.snd_wl2 = seg.repr.ack;
    // tcp_synack_rtt_meas: no sample from a SYN-ACK sent more than once
    // (Karn), nor from a cookie (no record of when its SYN-ACK went).
    if req.num_timeout == 0 && req.num_retrans == 0 && !req.from_cookie {
        cong::handshake_rtt_sample(&mut cb, now.saturating_duration_since(req.sent_at), net.tcp.hz);
    } else if let Some(rtt) = timestamps::ack_rtt(&cb, &net.tcp.ts_clock, &seg.repr, now) {
        // The SYN-ACK's echoed TSval times it (a cookie's, or one sent again).
        cong::handshake_rtt_sample(&mut cb, rtt, net.tcp.hz);
    }
    cong::no_handshake_sample(&mut cb);
    net.mib.TcpPassiveOpens += 1;
    cb.state = TcpState::SynRecv;
    tcp_set_state(net, &mut cb, TcpState::Established);
    timestamps::synrecv_advmss(&mut cb);
    tcp_init_transfer(net, &mut cb, now);
    let id = net.tcp.insert(cb);
    net.tcp.hash_established(key, id);
    let _ = ltsk.accept_queue().push(sock);
    id
}

/// `tcp_timewait_state_process`: a segment for a TIME-WAIT (or orphaned
/// FIN-WAIT-2) 4-tuple: strays are ACKed, a RST ends it, a new SYN with a
/// higher sequence number reopens it through the listener.
fn tcp_timewait_rcv(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, key: FourTuple, seg: &Segment<'_>, now: Instant) {
    let Some(mut tw) = net.tcp.tw.get(&key).copied() else { return };
    let r = &seg.repr;
    let (tsval, paws_reject) = timestamps::tw_check(&net.tcp.ts_clock, &tw, r, now);
    enum Act {
        Nothing,
        Ack,
        Rst,
        Syn(u32),
        Kill,
    }
    let act = if tw.substate == TcpState::FinWait2 {
        let wnd_end = tw.rcv_nxt.wrapping_add(tw.rcv_wnd);
        if paws_reject || !tcp_in_window(r.seq, seg.end_seq(), tw.rcv_nxt, wnd_end) {
            Act::Ack
        } else if seg.has(flags::RST) {
            Act::Kill
        } else if seg.has(flags::SYN) && !before(r.seq, tw.rcv_nxt) {
            Act::Rst
        } else if !seg.has(flags::ACK) || !after(seg.end_seq(), tw.rcv_nxt) || seg.end_seq() == r.seq {
            Act::Nothing
        } else if !seg.has(flags::FIN) || seg.end_seq() != tw.rcv_nxt.wrapping_add(1) {
            Act::Rst
        } else {
            tw.substate = TcpState::TimeWait;
            tw.rcv_nxt = seg.end_seq();
            tw.expires = now + TCP_TIMEWAIT_LEN;
            if let Some(v) = tsval {
                tw.ts_recent = v;
                tw.ts_recent_stamp = Some(now);
            }
            Act::Ack
        }
    } else if !paws_reject && r.seq == tw.rcv_nxt && (seg.end_seq() == r.seq || seg.has(flags::RST)) {
        if seg.has(flags::RST) {
            Act::Kill
        } else {
            tw.expires = now + TCP_TIMEWAIT_LEN;
            if let Some(v) = tsval {
                tw.ts_recent = v;
                tw.ts_recent_stamp = Some(now);
            }
            Act::Nothing
        }
    } else if seg.has(flags::SYN)
        && !seg.has(flags::RST)
        && !seg.has(flags::ACK)
        && !paws_reject
        && (after(r.seq, tw.rcv_nxt) || tsval.is_some_and(|v| (tw.ts_recent.wrapping_sub(v) as i32) < 0))
    {
        // A new SYN: a higher sequence number, or a newer timestamp
        // (RFC 6191), reopens the 4-tuple.
        let isn = tw.snd_nxt.wrapping_add(65535 + 2);
        Act::Syn(if isn == 0 { 1 } else { isn })
    } else {
        if paws_reject {
            net.mib.TcpExtPAWSTimewait += 1;
        }
        if seg.has(flags::RST) {
            Act::Nothing
        } else {
            if paws_reject || seg.has(flags::ACK) {
                tw.expires = now + TCP_TIMEWAIT_LEN;
            }
            Act::Ack
        }
    };
    match act {
        Act::Kill => {
            net.tcp.tw.remove(&key);
            return;
        }
        Act::Syn(isn) => {
            if let Some(lid) = net.tcp.lookup_listener(key.local.port()) {
                net.tcp.tw.remove(&key);
                tcp_listen_rcv(net, q, umem, lid, key, seg, Some(isn), now);
                return;
            }
            send_tw_ack(net, q, umem, key, &tw, now);
        }
        Act::Ack => send_tw_ack(net, q, umem, key, &tw, now),
        Act::Rst => {
            // TCP_TW_RST (tcp_v4_rcv): the reset goes and the sock with it.
            tcp_v4_send_reset(net, q, umem, key.local, key.remote, r, now);
            net.tcp.tw.remove(&key);
            return;
        }
        Act::Nothing => {}
    }
    let expires_changed = net.tcp.tw.get(&key).is_some_and(|old| old.expires != tw.expires);
    net.tcp.tw.insert(key, tw);
    if expires_changed {
        let mut pending = None;
        net.tcp.tw_timers.arm(key, tw.expires, &mut pending);
    }
}

/// `tcp_v4_timewait_ack`.
fn send_tw_ack(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, key: FourTuple, tw: &TimeWaitSock, now: Instant) {
    let repr = TcpRepr {
        src_port: key.local.port(),
        dst_port: key.remote.port(),
        seq: tw.snd_nxt,
        ack: tw.rcv_nxt,
        flags: flags::ACK,
        window: (tw.rcv_wnd >> tw.rcv_wscale).min(u32::from(u16::MAX)) as u16,
        urgent: 0,
        options: TcpOptions {
            timestamp: timestamps::bare_ack_option(&net.tcp.ts_clock, tw.ts_recent, tw.ts_offset, now),
            ..TcpOptions::default()
        },
        payload_len: 0,
    };
    super::output::send_bare(net, q, umem, key.local, key.remote, &repr, now);
}
