//! TCP output (net/ipv4/tcp_output.c): every segment we send. Data segments
//! are cut from the send buffer at their offset from `snd_una`
//! (`tcp_write_xmit`: congestion window, peer's window, Nagle, PSH); ACKs,
//! SYN, SYN-ACK, FIN and RST are built as Linux builds them. Each segment is
//! written into a fresh UMEM frame: Ethernet, IPv4 with DF, TCP with
//! options, payload, then `ip_output`.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ringbuf::traits::Consumer;

use super::cb::{RequestSock, TcpCb};
use super::timestamps;
use super::{after, before, TCP_RCV_WSCALE};
use crate::ipv4::ip_output::{ip_build_header_df, ip_output};
use crate::net::Net;
use crate::netdev_queue::NetdevQueue;
use crate::stream::TcpState;
use crate::umem::Umem;
use crate::wire::ethernet;
use crate::wire::ipv4::{self, protocol};
use crate::wire::tcp::{flags, TcpOptions, TcpPacket, TcpRepr};

/// Where the IP header of a segment we build starts in its frame.
const L3: usize = ethernet::HEADER_LEN;
/// Where its TCP header starts.
const L4: usize = L3 + ipv4::MIN_HEADER_LEN;

/// The MSS we offer on a 1500-byte MTU: 1500 − 20 − 20 (`tcp_mss_to_mtu`'s inverse).
pub const TCP_ADVMSS_1500: u32 = 1460;

/// Builds the segment `repr` from `src` to `dst` in a new frame, its payload
/// copied from `cb`'s send buffer at `data_off` bytes past the buffer's head,
/// and sends it. Returns false when no frame was free (counted) or there is
/// no route.
#[allow(clippy::too_many_arguments)]
fn xmit(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    repr: &TcpRepr,
    payload: Option<(&TcpCb, usize)>,
    now: Instant,
) -> bool {
    let Some(mut frame) = q.alloc_frame() else {
        net.mib.XskNoFreeFrames += 1;
        return false;
    };
    let hlen = repr.header_len();
    let seg_len = hlen + repr.payload_len;
    let buf = umem.frame_mut(&mut frame);
    if buf.len() < L4 + seg_len {
        // The MSS is chosen to fit a frame; this is a bug, not a drop.
        debug_assert!(false, "segment of {seg_len} bytes does not fit a frame");
        q.free_frame(frame);
        return false;
    }
    if let Some((cb, off)) = payload {
        let Some(bufs) = cb.bufs.as_ref() else {
            q.free_frame(frame);
            return false;
        };
        let (a, b) = bufs.snd.as_slices();
        let dst_buf = &mut buf[L4 + hlen..L4 + seg_len];
        // Copy [off, off + len) out of the ring's two slices.
        let len = repr.payload_len;
        let (mut o, mut w) = (off, 0);
        for part in [a, b] {
            if w == len {
                break;
            }
            if o >= part.len() {
                o -= part.len();
                continue;
            }
            let n = (part.len() - o).min(len - w);
            dst_buf[w..w + n].copy_from_slice(&part[o..o + n]);
            w += n;
            o = 0;
        }
        if w != len {
            debug_assert!(false, "send buffer shorter than the segment");
            q.free_frame(frame);
            return false;
        }
    }
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[L4..L4 + seg_len]), *src.ip(), *dst.ip());
    ip_build_header_df(net, &mut buf[L3..L4], *dst.ip(), protocol::TCP, seg_len, 0, true);
    ip_output(net, q, frame, L3, ipv4::MIN_HEADER_LEN + seg_len, *dst.ip(), now)
}

/// `tcp_select_initial_window`: the window of a SYN or SYN-ACK, never
/// scaled: the receive buffer, at most 65535, a multiple of the MSS.
pub fn initial_window(rcvbuf: usize, mss: u32) -> u32 {
    let space = (rcvbuf as u32).min(u32::from(u16::MAX));
    if space > mss {
        space - space % mss
    } else {
        space
    }
}

/// `__tcp_select_window`: the window the receive buffer allows now, bytes.
pub fn select_window_space(cb: &TcpCb) -> u32 {
    let full = cb.rcv_full_space();
    let mss = cb.rcv_mss.min(full).max(1);
    let free = cb.rcv_space().min(u32::from(u16::MAX) << cb.rcv_wscale);
    // Receiver-side silly window avoidance: below half the buffer, offer
    // nothing until an MSS (or 1/16 of the buffer) is free.
    if free < full / 2 && (free < full / 16 || free < mss) {
        return 0;
    }
    // The offer grows from the initial window (`rcv_ssthresh`).
    let room = free;
    let free = free.min(cb.rcv_ssthresh);
    if cb.rcv_wscale > 0 {
        // A multiple of the scale, rounded up as Linux does (`ALIGN`) while
        // that fits the free space, else down.
        let unit = (1u32 << cb.rcv_wscale) - 1;
        let up = free.saturating_add(unit) & !unit;
        if up <= room {
            up
        } else {
            free & !unit
        }
    } else if cb.rcv_wnd <= free.saturating_sub(mss) || cb.rcv_wnd > free {
        free - free % mss
    } else {
        cb.rcv_wnd
    }
}

/// `tcp_select_window`: the window field of an outgoing segment. Never
/// shrinks what was offered; records the offer (`rcv_wnd`, `rcv_wup`) and
/// counts the moves to and from a zero window.
pub fn tcp_select_window(net: &mut Net, cb: &mut TcpCb) -> u16 {
    // The counters compare with the window last advertised (`old_win =
    // tp->rcv_wnd`), the shrink test with what is left of it (`cur_win`).
    let prev_wnd = cb.rcv_wnd;
    let old_win = cb.receive_window();
    super::prune::tcp_select_window_under_pressure(net, cb);
    let mut new_win = select_window_space(cb);
    if new_win < old_win {
        if new_win == 0 {
            net.mib.TcpExtTCPWantZeroWindowAdv += 1;
        }
        let unit = (1u32 << cb.rcv_wscale) - 1;
        new_win = (old_win + unit) & !unit;
    }
    new_win = new_win.min(u32::from(u16::MAX) << cb.rcv_wscale);
    cb.rcv_wnd = new_win;
    cb.rcv_wup = cb.rcv_nxt;
    let field = new_win >> cb.rcv_wscale;
    if field == 0 {
        if prev_wnd != 0 {
            net.mib.TcpExtTCPToZeroWindowAdv += 1;
        }
    } else if prev_wnd == 0 {
        net.mib.TcpExtTCPFromZeroWindowAdv += 1;
    }
    field as u16
}

/// What an ACK we send says has been done: the delayed ACK is off, one
/// quick ACK is used up if an ACK was owed, and the last one takes the
/// delayed-ACK timeout back to [`super::TCP_ATO_MIN`] (`tcp_event_ack_sent`,
/// `tcp_dec_quickack_mode`: only ACKs of new data count; "leaving quickack
/// mode we deflate ATO").
fn ack_sent(cb: &mut TcpCb) {
    if cb.ack_pending && cb.quick > 0 {
        cb.quick -= 1;
        if cb.quick == 0 {
            cb.ato = super::TCP_ATO_MIN;
        }
    }
    cb.ack_pending = false;
    cb.ack_now = false;
    cb.ack_pushed = false;
    cb.ack_pushed2 = false;
    cb.delack_at = None;
    // Lowered only when up: every segment carries an ACK, and the flag's
    // line is the reader's too.
    let flag = &cb.tsk().stream.ack_on_read;
    if flag.load(std::sync::atomic::Ordering::Relaxed) {
        flag.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `tcp_transmit_skb` for a control block: a segment at `seq` with `flags`
/// (ACK added in synchronized states), `len` data bytes from the send
/// buffer at `seq`'s offset. Counts TcpOutSegs, or TcpRetransSegs for a
/// segment below `snd_max`.
#[allow(clippy::too_many_arguments)]
pub fn tcp_transmit(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    seq: u32,
    mut fl: u8,
    len: usize,
    now: Instant,
) -> bool {
    let syn = fl & flags::SYN != 0;
    if cb.state != TcpState::SynSent || !syn {
        fl |= flags::ACK;
    }
    let mut options = TcpOptions::default();
    let window = if syn {
        options.timestamp = timestamps::syn_option(&net.tcp.ts_clock, &mut cb.ts, now);
        options.mss = Some(cb.advmss as u16);
        options.sack_permitted = cb.state == TcpState::SynSent || cb.sack_ok;
        if cb.state == TcpState::SynSent || cb.rcv_wscale > 0 {
            options.window_scale = Some(cb.rcv_wscale);
        }
        cb.rcv_wnd.min(u32::from(u16::MAX)) as u16
    } else {
        options.timestamp = timestamps::established_option(&net.tcp.ts_clock, &cb.ts, now);
        let (blocks, n) = cb.sack_blocks();
        options.sack_blocks = blocks;
        options.sack_len = n;
        tcp_select_window(net, cb)
    };
    let repr = TcpRepr {
        src_port: cb.local.port(),
        dst_port: cb.remote.port(),
        seq,
        ack: if fl & flags::ACK != 0 { cb.rcv_nxt } else { 0 },
        flags: fl,
        window,
        urgent: 0,
        options,
        payload_len: len,
    };
    if cb.dst_pending_confirm {
        // sock_confirm_neigh, as ip_finish_output2 sends the segment.
        cb.dst_pending_confirm = false;
        if let Some(nexthop) = net.route.next_hop(*cb.remote.ip()) {
            net.neigh.neigh_confirm(nexthop, now);
        }
    }
    if len > 0 && cb.in_flight() == 0 {
        // Data with nothing in flight, after `idle` without sending: the
        // window restarts if it went unused longer than the RTO
        // (tcp_slow_start_after_idle_check, as tcp_skb_entail queues it),
        // and the algorithm hears of it (tcp_event_data_sent → CA_EVENT_TX_START).
        let idle = cb.lsndtime.map_or(std::time::Duration::ZERO, |t| now.saturating_duration_since(t));
        super::cong::tcp_cwnd_restart(cb, idle, net.tcp.slow_start_after_idle);
        cb.ca.ops().on_tx_start(idle, now);
    }
    let off = seq.wrapping_sub(cb.data_una()) as usize;
    // __tcp_transmit_skb: tcp_wstamp_ns = max(tcp_wstamp_ns, now).
    let prior_wstamp = super::pacing::tcp_wstamp_refresh(cb, now);
    let payload = (len > 0).then_some((&*cb, off));
    if !xmit(net, q, umem, cb.local, cb.remote, &repr, payload, now) {
        return false;
    }
    if len > 0 {
        super::pacing::tcp_update_skb_after_send(cb, len, prior_wstamp);
    }
    let end = seq.wrapping_add(repr.seg_len());
    // The D-SACK went out (`tcp_options_write` clears `rx_opt.dsack`).
    cb.sack.dsack_out = None;
    if repr.seg_len() > 0 && !syn {
        // tcp_update_skb_after_send: the send time RACK reads; PRR counts
        // what goes in recovery (`prr_out`).
        cb.rack.log.sent(seq, end, now, before(seq, cb.snd_max));
        if cb.ca_state == super::cb::CaState::Recovery {
            cb.rack.prr_out += 1;
        }
    }
    if before(seq, cb.snd_max) && repr.seg_len() > 0 {
        net.mib.TcpRetransSegs += 1;
        cb.total_retrans += 1;
        super::sack::on_retransmit(cb, seq, end, net.tcp.ts_clock.ms(now));
        if cb.ca_state == super::cb::CaState::Loss && after(end, cb.loss_rexmit_hi) {
            cb.loss_rexmit_hi = end;
        }
        if syn {
            net.mib.TcpExtTCPSynRetrans += 1;
        }
    } else {
        net.mib.TcpOutSegs += 1;
        // `tcp_event_new_data_sent`: a write-queue segment sent for the first
        // time, data or our FIN (the SYN is sent by `tcp_connect` directly).
        if len > 0 || fl & flags::FIN != 0 {
            net.mib.TcpExtTCPOrigDataSent += 1;
        }
    }
    cb.segs_out += 1;
    if len > 0 {
        cb.lsndtime = Some(now);
    }
    if len > 0 || fl & flags::FIN != 0 {
        if !before(seq, cb.snd_max) {
            cb.rtx_queue_add(end);
            if cb.sent_times.len() == super::cb::SENT_TIMES {
                cb.sent_times.pop_front();
            }
            cb.sent_times.push_back((end, now));
        } else {
            // Sent again: no RTT sample from it or what it covers (Karn).
            while cb.sent_times.front().is_some_and(|&(e, _)| !after(e, end)) {
                cb.sent_times.pop_front();
            }
        }
    }
    if fl & flags::ACK != 0 {
        ack_sent(cb);
    }
    if len > 0 && cb.lrcvtime.is_some_and(|t| now.saturating_duration_since(t) < cb.ato) {
        // Data sent within `ato` of the last data in: interactive mode, ACKs
        // ride on replies (`tcp_event_data_sent`).
        cb.pingpong = true;
    }
    if after(end, cb.snd_max) {
        cb.snd_max = end;
    }
    true
}

/// `tcp_acceptable_seq`: the sequence number of a segment without data. At
/// `snd_nxt`, unless the peer's window has shrunk below it by a window-scale
/// unit or more: then at the window's right edge, where the peer still
/// accepts it (an ACK beyond the window would be dropped).
fn tcp_acceptable_seq(cb: &TcpCb) -> u32 {
    let wnd_end = cb.snd_una.wrapping_add(cb.snd_wnd);
    if !before(wnd_end, cb.snd_nxt) || (cb.rcv_wscale > 0 && cb.snd_nxt.wrapping_sub(wnd_end) < (1 << cb.rcv_wscale)) {
        cb.snd_nxt
    } else {
        wnd_end
    }
}

/// `tcp_send_ack`: a pure ACK of `rcv_nxt` with our current window.
pub fn tcp_send_ack(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    let seq = tcp_acceptable_seq(cb);
    tcp_transmit(net, q, umem, cb, seq, flags::ACK, 0, now);
}

/// `tcp_send_active_reset`: RST|ACK at `snd_nxt`, when we abort.
pub fn tcp_send_active_reset(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    let seq = tcp_acceptable_seq(cb);
    if tcp_transmit(net, q, umem, cb, seq, flags::RST | flags::ACK, 0, now) {
        net.mib.TcpOutRsts += 1;
    }
}

/// Sends `repr` (no payload) from `local` to `remote` outside any control
/// block: the ACK of a TIME-WAIT or request sock. Counts TcpOutSegs.
pub fn send_bare(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    repr: &TcpRepr,
    now: Instant,
) {
    if xmit(net, q, umem, local, remote, repr, None, now) {
        net.mib.TcpOutSegs += 1;
    }
}

/// `tcp_v4_send_reset`: the answer to `seg` (from `remote` to `local`)
/// when no sock wants it: seq from its ACK field, or ACK = SEG.SEQ + SEG.LEN.
/// Never a RST for a RST.
pub fn tcp_v4_send_reset(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    seg: &TcpRepr,
    now: Instant,
) {
    if seg.flags & flags::RST != 0 {
        return;
    }
    let (seq, ack, fl) = if seg.flags & flags::ACK != 0 {
        (seg.ack, 0, flags::RST)
    } else {
        (0, seg.seq.wrapping_add(seg.seg_len()), flags::RST | flags::ACK)
    };
    let repr = TcpRepr {
        src_port: local.port(),
        dst_port: remote.port(),
        seq,
        ack,
        flags: fl,
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
        payload_len: 0,
    };
    if xmit(net, q, umem, local, remote, &repr, None, now) {
        net.mib.TcpOutSegs += 1;
        net.mib.TcpOutRsts += 1;
    }
}

/// `inet_csk_route_req` → `dst_metric_advmss` (`ipv4_default_advmss` on
/// `ipv4_mtu`, which reads the route's cached path MTU): the MSS a request
/// sock from `peer` offers in its SYN-ACK and its child takes: the
/// listener's `advmss` (the device MTU, the UMEM frame), lowered to the path
/// MTU less 40 when one was learnt for `peer` (ICMP fragmentation needed)
/// and has not expired.
pub fn req_advmss(net: &Net, advmss: u32, peer: std::net::Ipv4Addr, now: Instant) -> u32 {
    let mtu = net.pmtu.get(peer, net.mtu, now).mtu;
    let by_path = mtu.saturating_sub(ipv4::MIN_HEADER_LEN + crate::wire::tcp::HEADER_LEN) as u32;
    advmss.min(by_path).max(super::TCP_MIN_MSS)
}

/// `tcp_v4_send_synack` for a request sock on a listener at `local` whose
/// MSS is `advmss`: the SYN-ACK's MSS option, and the MSS its window is a
/// multiple of, follow the route to `remote` as it is at each send
/// ([`req_advmss`]: `tcp_make_synack` with the dst `inet_csk_route_req`
/// looks up). Counted in TcpOutSegs always (`tcp_make_synack`), and with
/// `retrans` as a retransmission too (`tcp_rtx_synack`).
#[allow(clippy::too_many_arguments)]
pub fn tcp_send_synack(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    req: &mut RequestSock,
    advmss: u32,
    rcvbuf: usize,
    retrans: bool,
    now: Instant,
) {
    let advmss = req_advmss(net, advmss, *remote.ip(), now);
    let clock = &net.tcp.ts_clock;
    let timestamp = req.ts.as_mut().map(|ts| timestamps::synack_option(clock, ts, now));
    let options = TcpOptions {
        mss: Some(advmss as u16),
        sack_permitted: req.sack_ok,
        window_scale: req.snd_wscale.map(|_| TCP_RCV_WSCALE),
        timestamp,
        ..TcpOptions::default()
    };
    let repr = TcpRepr {
        src_port: local.port(),
        dst_port: remote.port(),
        seq: req.iss,
        ack: req.irs.wrapping_add(1),
        flags: flags::SYN | flags::ACK,
        window: initial_window(rcvbuf, req.window_mss(advmss)) as u16,
        urgent: 0,
        options,
        payload_len: 0,
    };
    if xmit(net, q, umem, local, remote, &repr, None, now) {
        // `tcp_make_synack` counts every SYN-ACK in TcpOutSegs;
        // `tcp_rtx_synack` counts a retransmitted one again.
        net.mib.TcpOutSegs += 1;
        if retrans {
            net.mib.TcpRetransSegs += 1;
            net.mib.TcpExtTCPSynRetrans += 1;
        }
    }
}

/// `tcp_mss_split_point` and friends, simplified: how many bytes a segment
/// at `snd_nxt` may carry now (0: none may go), with Nagle applied.
fn next_segment_len(cb: &TcpCb, nodelay: bool) -> usize {
    let unsent = cb.write_seq().wrapping_sub(cb.snd_nxt);
    if unsent == 0 || (unsent as i32) < 0 {
        return 0;
    }
    let mss = cb.current_mss();
    // Congestion window (`tcp_cwnd_test`), in segments' worth of bytes.
    let cwnd_bytes = cb.cwnd.saturating_mul(cb.mss);
    let in_flight = cb.in_flight();
    // `tcp_packets_in_flight`: SACKed and lost data is not in flight.
    if super::sack::pipe(cb) >= cwnd_bytes {
        return 0;
    }
    // The peer's window (`tcp_snd_wnd_test`).
    let wnd_end = cb.snd_una.wrapping_add(cb.snd_wnd);
    if !after(wnd_end, cb.snd_nxt) {
        return 0;
    }
    let wnd_room = wnd_end.wrapping_sub(cb.snd_nxt);
    let len = unsent.min(mss).min(wnd_room);
    if len < mss && len < unsent {
        // Window-limited to a partial segment: wait for the window to open
        // unless nothing is in flight (then the zero-window probe or this
        // small segment keeps things moving, `tcp_snd_wnd_test`).
        if in_flight > 0 {
            return 0;
        }
    }
    // Nagle (RFC 896, with Minshall's variant as `tcp_nagle_check`): hold
    // a partial segment while a small one is unacknowledged, unless our FIN
    // rides on it (`tcp_nagle_test`: "or for the final FIN").
    let carries_fin = cb.fin_seq == Some(cb.snd_nxt.wrapping_add(len));
    if len < mss && !nodelay && !carries_fin && in_flight > 0 && after(cb.snd_sml, cb.snd_una) {
        return 0;
    }
    // Sent again after a timeout: up to the next SACKed range.
    len.min(super::sack::room_before_sacked(cb, cb.snd_nxt)) as usize
}

/// `tcp_nagle_test` under `TCP_CORK`: a partial segment of `len` bytes at
/// `snd_nxt` waits, unless our FIN rides on it (`tcp_nagle_check` with
/// `TCP_NAGLE_CORK`; a FIN always goes).
fn cork_holds(cb: &TcpCb, len: usize) -> bool {
    (len as u32) < cb.current_mss() && cb.fin_seq != Some(cb.snd_nxt.wrapping_add(len as u32))
}

/// `tcp_write_xmit`: sends what the windows allow from `snd_nxt` on, with
/// PSH where the application's last send ends (or when more than half the
/// peer's largest window is unpushed, `forced_push`), and our FIN after the
/// data once the application has shut down sending. Arms the retransmission
/// timer. Returns the segments sent.
pub fn tcp_write_xmit(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> usize {
    write_xmit(net, q, umem, cb, now, None)
}

/// [`tcp_write_xmit`]; with `probe` (`push_one` = 2 in Linux), one segment
/// whatever cwnd and Nagle say, and no new probe scheduled.
fn write_xmit(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    now: Instant,
    probe: Option<u32>,
) -> usize {
    // What the application wrote since the loop last looked is charged
    // before any of it goes (`tcp_stream_alloc_skb`'s `sk_wmem_schedule`).
    super::wmem::tcp_wmem_charge(net, cb, now);
    if !matches!(
        cb.state,
        TcpState::Established | TcpState::CloseWait | TcpState::FinWait1 | TcpState::LastAck | TcpState::Closing
    ) {
        return 0;
    }
    let tsk = cb.sock.tcp().expect("stream sock");
    let nodelay = tsk.nodelay.load(Ordering::Relaxed) || probe.is_some();
    let corked = tsk.cork.load(Ordering::Acquire) && probe.is_none();
    let pushed = tsk.stream.pushed.load(Ordering::Acquire);
    let data_start = cb.iss.wrapping_add(1);
    // The sequence number after the application's last pushed byte.
    let push_seq = data_start.wrapping_add(pushed as u32);
    // A sampled write waiting to be sent: the sequence number of its first byte.
    let mut tx_sample = match tsk.stream.tx_ns.load(Ordering::Acquire) {
        0 => None,
        t => Some((data_start.wrapping_add(tsk.stream.tx_off.load(Ordering::Relaxed) as u32), t)),
    };
    let mut sent = 0;
    let saved_cwnd = cb.cwnd;
    if let Some(pipe_segs) = probe {
        cb.cwnd = pipe_segs + 1;
    }
    loop {
        if probe.is_some() && sent == 1 {
            break;
        }
        if super::pacing::tcp_pacing_check(cb, now) {
            break;
        }
        super::sack::skip_sacked(cb);
        let len = next_segment_len(cb, nodelay);
        if len == 0 || corked && cork_holds(cb, len) {
            break;
        }
        let seq = cb.snd_nxt;
        let end = seq.wrapping_add(len as u32);
        let mut fl = flags::ACK;
        // forced_push: sequence space, so a retransmission below pushed_seq is not forced.
        let forced = after(end, cb.pushed_seq.wrapping_add(cb.max_window / 2));
        if (!before(end, push_seq) && before(seq, push_seq)) || forced {
            fl |= flags::PSH;
            cb.pushed_seq = end;
        }
        // Our FIN rides on the last data segment (`tcp_send_fin` merges it).
        if cb.fin_seq == Some(end) {
            fl |= flags::FIN;
        }
        let is_new = !before(seq, cb.snd_max);
        let backlog = q.tx_backlog();
        if !tcp_transmit(net, q, umem, cb, seq, fl, len, now) {
            break;
        }
        if let Some((sample_seq, tstamp)) = tx_sample {
            // The segment that carries the sampled write's first byte is
            // timed; a byte already sent another way (a probe) is not.
            if before(sample_seq, end) {
                if !before(sample_seq, seq) {
                    net.tx_stamps.queued(q, backlog, tstamp);
                }
                if let Some(t) = cb.sock.tcp() {
                    t.stream.tx_ns.store(0, Ordering::Release);
                }
                tx_sample = None;
            }
        }
        if !is_new && cb.ca_state == super::cb::CaState::Loss {
            // tcp_xmit_retransmit_queue after a timeout (the timer's own
            // retransmission of the head is not counted here).
            net.mib.TcpExtTCPSlowStartRetrans += 1;
        }
        sent += 1;
        let seg_end = if fl & flags::FIN != 0 { end.wrapping_add(1) } else { end };
        if (len as u32) < cb.current_mss() {
            cb.snd_sml = end;
        }
        // Time one new segment at a time; never a retransmitted one (Karn).
        if cb.rtt_probe.is_none() && is_new {
            cb.rtt_probe = Some((seg_end, now));
        }
        cb.snd_nxt = seg_end;
        if cb.rto_at.is_none() {
            cb.rto_at = Some(now + cb.rto_backed_off());
        }
    }
    // A FIN with no data left to carry it.
    if let Some(fin) = cb.fin_seq {
        if cb.snd_nxt == fin {
            let seq = cb.snd_nxt;
            if tcp_transmit(net, q, umem, cb, seq, flags::FIN | flags::ACK, 0, now) {
                sent += 1;
                cb.snd_nxt = fin.wrapping_add(1);
                if cb.rto_at.is_none() {
                    cb.rto_at = Some(now + cb.rto_backed_off());
                }
            }
        }
    }
    if probe.is_some() {
        cb.cwnd = saved_cwnd;
    } else if sent > 0 {
        // tcp_write_xmit → tcp_schedule_loss_probe.
        super::rack::tcp_schedule_loss_probe(cb, now, false, net.tcp.tlp(), net.tcp.hz);
    }
    // Data waits behind a zero window with nothing in flight: probe it.
    if cb.in_flight() == 0 && cb.write_seq() != cb.snd_nxt && cb.snd_wnd == 0 && cb.rto_at.is_none() {
        cb.rto_at = Some(now + cb.rto_backed_off());
    }
    sent
}

/// `tcp_send_syn` (`tcp_connect`): the SYN of an active open, or its
/// retransmission, with MSS, SACK-permitted and window scale.
pub fn tcp_send_syn(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> bool {
    let iss = cb.iss;
    let ok = tcp_transmit(net, q, umem, cb, iss, flags::SYN, 0, now);
    cb.snd_nxt = iss.wrapping_add(1);
    ok
}

/// The SYN-ACK of a simultaneous open (SYN-SENT → SYN-RECV), from the control block.
pub fn tcp_send_synack_cb(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> bool {
    let iss = cb.iss;
    let ok = tcp_transmit(net, q, umem, cb, iss, flags::SYN | flags::ACK, 0, now);
    cb.snd_nxt = iss.wrapping_add(1);
    ok
}

/// `tcp_xmit_probe_skb`: an ACK at `snd_una - 1`, old data the peer must
/// answer with an ACK of its own (RFC 9293 §3.8.4): its window, or that it
/// is alive. Returns whether it went.
pub fn tcp_xmit_probe_skb(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) -> bool {
    let seq = cb.snd_una.wrapping_sub(1);
    tcp_transmit(net, q, umem, cb, seq, flags::ACK, 0, now)
}

/// `tcp_send_probe0`: a zero-window probe (`TcpExtTCPWinProbe`).
pub fn tcp_send_probe0(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    if tcp_xmit_probe_skb(net, q, umem, cb, now) {
        net.mib.TcpExtTCPWinProbe += 1;
    }
}

/// Retransmits the segment at `snd_una` (`tcp_retransmit_skb` of the head),
/// at most one MSS, with our FIN if it ends there; the SYN or SYN-ACK while
/// connecting. Returns the sequence number after what it sent.
pub fn tcp_retransmit_head(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    now: Instant,
) -> Option<u32> {
    let seq = cb.snd_una;
    let sent = match cb.state {
        TcpState::SynSent => tcp_send_syn(net, q, umem, cb, now),
        TcpState::SynRecv => tcp_send_synack_cb(net, q, umem, cb, now),
        _ => {
            let data_end = cb.write_seq();
            let len = if after(data_end, seq) { data_end.wrapping_sub(seq).min(cb.mss) as usize } else { 0 };
            let end = seq.wrapping_add(len as u32);
            let mut fl = flags::ACK;
            if cb.fin_seq == Some(end) && after(cb.snd_max, end) {
                fl |= flags::FIN;
            }
            if len == 0 && fl & flags::FIN == 0 {
                return None;
            }
            if len > 0 && !before(end, data_end) {
                fl |= flags::PSH;
            }
            if !tcp_transmit(net, q, umem, cb, seq, fl, len, now) {
                return None;
            }
            return Some(end.wrapping_add(u32::from(fl & flags::FIN != 0)));
        }
    };
    sent.then_some(cb.snd_nxt)
}

impl TcpCb {
    /// The retransmission timeout with the current backoff, capped at `TCP_RTO_MAX`.
    pub fn rto_backed_off(&self) -> std::time::Duration {
        (self.rto * (1u32 << self.backoff.min(16))).min(super::TCP_RTO_MAX)
    }
}

/// `tcp_xmit_retransmit_queue`'s walk of the queue: from `from` (at least
/// `snd_una`), past what the peer SACKed (`TCPCB_SACKED_ACKED` skbs are
/// skipped), the sequence number to send again and how many data bytes: at
/// most one MSS, not past `limit`, the data or the next SACKed range (0
/// when `limit` is reached or no data is there).
fn next_unsacked(cb: &TcpCb, from: u32, limit: u32) -> (u32, u32) {
    let mut seq = if after(from, cb.snd_una) { from } else { cb.snd_una };
    while let Some(r) = cb.sack.holding(seq) {
        seq = r.right;
    }
    let data_end = cb.write_seq();
    if !before(seq, limit) || !after(data_end, seq) {
        return (seq, 0);
    }
    let len = data_end
        .wrapping_sub(seq)
        .min(cb.mss.max(1))
        .min(limit.wrapping_sub(seq))
        .min(super::sack::room_before_sacked(cb, seq));
    (seq, len)
}

/// `tcp_xmit_retransmit_queue`: the lost holes above `HighRxt`, lowest
/// first, while the pipe leaves room in cwnd (RFC 6675 §5 `NextSeg` rule 1);
/// `force` sends the first whatever the pipe (the fast retransmit).
/// Counts `TcpExtTCPFastRetrans`.
pub fn tcp_xmit_retransmit_queue(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    mut force: bool,
    now: Instant,
) {
    let mss = cb.mss.max(1);
    // Retransmissions RACK found lost again go first, lowest first.
    while let Some(&(s0, e)) = cb.rack.relost().first() {
        if super::pacing::tcp_pacing_check(cb, now) {
            return;
        }
        let (seq, len) = next_unsacked(cb, s0, e);
        if !before(seq, e) || len == 0 {
            cb.rack.pop_relost();
            continue;
        }
        if !force && super::sack::pipe(cb).saturating_add(len) > cb.cwnd.saturating_mul(mss) {
            return;
        }
        let end = seq.wrapping_add(len);
        let mut fl = flags::ACK;
        if cb.fin_seq == Some(end) && after(cb.snd_max, end) {
            fl |= flags::FIN;
        }
        cb.rack.pop_relost();
        if before(end, e) {
            cb.rack.add_relost(end, e);
        }
        if !tcp_transmit(net, q, umem, cb, seq, fl, len as usize, now) {
            return;
        }
        if cb.ca_state == super::cb::CaState::Loss {
            net.mib.TcpExtTCPSlowStartRetrans += 1;
        } else {
            net.mib.TcpExtTCPFastRetrans += 1;
        }
        force = false;
    }
    if cb.ca_state == super::cb::CaState::Loss {
        // After a timeout the rest goes again from `snd_nxt` (`tcp_write_xmit`).
        return;
    }
    xmit_marked_lost(net, q, umem, cb, force, now);
}

/// The second part of `tcp_xmit_retransmit_queue`: what is marked lost
/// (`snd_una` or `high_rxt` up to `lost_end`, SACKed ranges skipped), one
/// MSS at a time while cwnd allows (the first whatever cwnd says if
/// `force`), each counted in `TcpExtTCPFastRetrans`. `tcp_simple_retransmit`
/// calls it in the Loss state, where a timeout's go-back-N does not apply.
pub fn xmit_marked_lost(
    net: &mut Net,
    q: &mut NetdevQueue,
    umem: &Umem,
    cb: &mut TcpCb,
    mut force: bool,
    now: Instant,
) {
    let mss = cb.mss.max(1);
    loop {
        if super::pacing::tcp_pacing_check(cb, now) {
            return;
        }
        let (seq, len) = next_unsacked(cb, cb.sack.high_rxt, cb.sack.lost_end);
        if !before(seq, cb.sack.lost_end) || !before(seq, cb.snd_max) {
            return;
        }
        let end = seq.wrapping_add(len);
        let mut fl = flags::ACK;
        if cb.fin_seq == Some(end) && after(cb.snd_max, end) {
            fl |= flags::FIN;
        }
        if len == 0 && fl & flags::FIN == 0 {
            return;
        }
        if !force && super::sack::pipe(cb).saturating_add(len) > cb.cwnd.saturating_mul(mss) {
            return;
        }
        if !tcp_transmit(net, q, umem, cb, seq, fl, len as usize, now) {
            return;
        }
        net.mib.TcpExtTCPFastRetrans += 1;
        cb.sack.high_rxt = end.wrapping_add(u32::from(fl & flags::FIN != 0));
        force = false;
    }
}

/// `tcp_send_loss_probe` (RFC 8985 §7.3), when the probe timer fires: one
/// new segment if the peer's window lets it go (whatever cwnd says), else
/// the last segment sent, again (`tlp_retrans`); then `tlp_high_seq` =
/// `snd_nxt`, `TcpExtTCPLossProbes`, and the RTO restarts from now. Out of
/// the Open state nothing. While a probe is unresolved, or when nothing
/// went (pacing held the new segment back, `tcp_pacing_check`; no frame),
/// no probe: the retransmission timer is armed for the head's last
/// transmission plus the RTO instead (`rearm_timer`:
/// [`tcp_rearm_rto_from_head`]), and a new segment pacing releases
/// schedules the next probe (`tcp_write_xmit`). Linux never sends old data
/// instead of new data held back.
pub fn tcp_send_loss_probe(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    cb.rack.tlp_at = None;
    if cb.ca_state != super::cb::CaState::Open || cb.in_flight() == 0 || !cb.sack_ok {
        return;
    }
    if cb.rack.tlp_high_seq.is_some() {
        tcp_rearm_rto_from_head(cb, now);
        return;
    }
    cb.rack.tlp_retrans = false;
    let mss = cb.mss.max(1);
    let wnd_end = cb.snd_una.wrapping_add(cb.snd_wnd);
    let unsent = cb.write_seq().wrapping_sub(cb.snd_nxt);
    let mut probed = false;
    if cb.snd_nxt == cb.snd_max
        && unsent > 0
        && (unsent as i32) > 0
        && !before(wnd_end, cb.snd_nxt.wrapping_add(unsent.min(mss)))
    {
        // push_one = 2: the probe goes whatever cwnd allows.
        let pipe_segs = super::sack::pipe(cb).div_ceil(mss);
        if write_xmit(net, q, umem, cb, now, Some(pipe_segs)) == 0 {
            tcp_rearm_rto_from_head(cb, now);
            return;
        }
        probed = true;
    }
    if !probed {
        let data_end = match cb.fin_seq {
            Some(f) if after(cb.snd_max, f) => f,
            _ => cb.snd_max,
        };
        let len = data_end.wrapping_sub(cb.snd_una).min(mss);
        let seq = data_end.wrapping_sub(len);
        let mut fl = flags::ACK;
        if cb.fin_seq == Some(data_end) && after(cb.snd_max, data_end) {
            fl |= flags::FIN;
        }
        // `__tcp_retransmit_skb`, not `tcp_retransmit_skb`: the probe is
        // counted and marked as sent twice, but starts no undo clock
        // (`retrans_stamp`) and is no retransmission of an undo episode.
        let (stamp, undo_retrans) = (cb.sack.retrans_stamp, cb.sack.undo_retrans);
        if (len == 0 && fl & flags::FIN == 0) || !tcp_transmit(net, q, umem, cb, seq, fl, len as usize, now) {
            tcp_rearm_rto_from_head(cb, now);
            return;
        }
        (cb.sack.retrans_stamp, cb.sack.undo_retrans) = (stamp, undo_retrans);
        cb.rack.tlp_retrans = true;
    }
    cb.rack.tlp_high_seq = Some(cb.snd_nxt);
    net.mib.TcpExtTCPLossProbes += 1;
    cb.rto_at = Some(now + cb.rto_backed_off());
}

/// `tcp_rearm_rto` while the probe timer is the pending one
/// (`ICSK_TIME_LOSS_PROBE`): the retransmission timer fires the RTO after
/// the head segment's last transmission (`tcp_rto_delta_us`: its
/// `skb_mstamp` from the transmit log), at least a microsecond from now;
/// without a record of the head, the RTO already armed stays (or one from
/// now). Nothing in flight: no timer.
pub fn tcp_rearm_rto_from_head(cb: &mut TcpCb, now: Instant) {
    if cb.in_flight() == 0 {
        cb.rto_at = None;
        return;
    }
    let rto = cb.rto_backed_off();
    let una = cb.snd_una;
    let head = cb.rack.log.records().filter(|r| !before(una, r.seq) && before(una, r.end)).map(|r| r.sent).last();
    cb.rto_at = Some(match head {
        Some(sent) => (sent + rto).max(now + std::time::Duration::from_micros(1)),
        None => cb.rto_at.unwrap_or(now + rto),
    });
}

/// `tcp_pace_kick` → `tcp_tsq_write` (net/ipv4/tcp_output.c): the pacing timer fired, so
/// what pacing held back goes now: marked-lost data first while in recovery or after a
/// timeout (`tcp_xmit_retransmit_queue`, which stops at cwnd itself), then new data
/// (`tcp_write_xmit`), in the states that send data.
pub fn tcp_pace_kick(net: &mut Net, q: &mut NetdevQueue, umem: &Umem, cb: &mut TcpCb, now: Instant) {
    if !matches!(
        cb.state,
        TcpState::Established | TcpState::FinWait1 | TcpState::Closing | TcpState::CloseWait | TcpState::LastAck
    ) {
        return;
    }
    if cb.ca_state != super::cb::CaState::Open {
        tcp_xmit_retransmit_queue(net, q, umem, cb, false, now);
    }
    tcp_write_xmit(net, q, umem, cb, now);
}
