//! Proportional rate reduction (RFC 6937) as Linux does it for every
//! window reduction in recovery (net/ipv4/tcp_input.c:
//! `tcp_init_cwnd_reduction`, `tcp_cwnd_reduction`): instead of dropping
//! cwnd to ssthresh at once (RFC 6675 §5), each ACK lets out data in
//! proportion to what it delivered — ssthresh/prior_cwnd of it while more
//! than ssthresh is in flight (the proportional part), and up to ssthresh
//! again once the flight has fallen below it (slow start's reduction bound,
//! PRR-SSRB) — so that the window reaches ssthresh as recovery ends, with no
//! burst and no stall. Segments are counted as Linux counts packets.

use super::cb::TcpCb;

/// `tcp_init_cwnd_reduction`: a reduction begins (recovery, or a loss a
/// tail loss probe repaired): `high_seq` = `snd_nxt`, ssthresh from the
/// algorithm, the window as it was kept as `prior_cwnd`, PRR's counts from
/// zero, and a pending loss probe forgotten (`tlp_high_seq` = 0).
pub fn tcp_init_cwnd_reduction(cb: &mut TcpCb) {
    cb.high_seq = cb.snd_max;
    cb.rack.tlp_high_seq = None;
    cb.cwnd_cnt = 0;
    cb.rack.prr_prior_cwnd = cb.cwnd.max(1);
    cb.rack.prr_delivered = 0;
    cb.rack.prr_out = 0;
    let cwnd = cb.cwnd;
    cb.ssthresh = cb.ca.ops().ssthresh(cwnd);
}

/// `tcp_cwnd_reduction`: an ACK in recovery delivered `newly_acked_sacked`
/// segments with `in_flight` segments now in the pipe
/// (`tcp_packets_in_flight`); `newly_lost` were found lost by it and
/// `una_advanced` says it moved `snd_una`. cwnd becomes the pipe plus what
/// may go now (`sndcnt`):
/// - pipe above ssthresh: ⌈ssthresh × prr_delivered / prior_cwnd⌉ − prr_out;
/// - else: max(prr_delivered − prr_out, newly delivered), one more for a
///   cumulative ACK that found nothing newly lost, at most ssthresh − pipe;
/// - at least one while nothing has gone yet (the fast retransmit).
pub fn tcp_cwnd_reduction(
    cb: &mut TcpCb,
    in_flight: u32,
    newly_acked_sacked: u32,
    newly_lost: u32,
    una_advanced: bool,
) {
    let r = &mut cb.rack;
    if newly_acked_sacked == 0 || r.prr_prior_cwnd == 0 {
        return;
    }
    r.prr_delivered += newly_acked_sacked;
    let delta = i64::from(cb.ssthresh) - i64::from(in_flight);
    let mut sndcnt = if delta < 0 {
        let dividend = u64::from(cb.ssthresh) * u64::from(r.prr_delivered) + u64::from(r.prr_prior_cwnd) - 1;
        (dividend / u64::from(r.prr_prior_cwnd)) as i64 - i64::from(r.prr_out)
    } else {
        let mut n = (i64::from(r.prr_delivered) - i64::from(r.prr_out)).max(i64::from(newly_acked_sacked));
        if una_advanced && newly_lost == 0 {
            n += 1;
        }
        n.min(delta)
    };
    if r.prr_out == 0 {
        sndcnt = sndcnt.max(1);
    }
    cb.cwnd = (i64::from(in_flight) + sndcnt.max(0)).max(1) as u32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::CongAlgo;

    fn cb() -> TcpCb {
        TcpCb::for_tests(CongAlgo::Reno)
    }

    /// RFC 6937 §3.1's example: cwnd 20, one segment lost, Reno's ssthresh
    /// 10; each duplicate ACK delivers one segment. PRR sends one segment
    /// for every second ACK while the pipe is above ssthresh (19, 18, …),
    /// so that the pipe comes down to ssthresh smoothly, and stays there.
    #[test]
    fn prr_sends_half_the_delivered_segments_as_rfc6937_shows() {
        let mut c = cb();
        c.cwnd = 20;
        tcp_init_cwnd_reduction(&mut c);
        assert_eq!((c.ssthresh, c.rack.prr_prior_cwnd), (10, 20));
        // The ACK that starts recovery: 19 in flight (one lost), the fast retransmit.
        let mut pipe = 19;
        tcp_cwnd_reduction(&mut c, pipe, 1, 1, false);
        assert_eq!(c.cwnd, pipe + 1, "the fast retransmit goes");
        c.rack.prr_out += 1; // the retransmission
        pipe += 1;
        let mut sent = Vec::new();
        for _ in 0..18 {
            // A duplicate ACK: one segment left the pipe.
            pipe -= 1;
            tcp_cwnd_reduction(&mut c, pipe, 1, 0, false);
            let n = c.cwnd.saturating_sub(pipe);
            sent.push(n);
            c.rack.prr_out += n;
            pipe += n;
        }
        // One for every second ACK until the pipe is down to ssthresh; then
        // (pipe = ssthresh) only what keeps it there.
        assert_eq!(sent, vec![0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0]);
        assert_eq!((c.rack.prr_out, pipe), (9, 10));
    }

    /// Below ssthresh (more lost than cwnd - ssthresh), PRR-SSRB sends what
    /// was delivered and one more per cumulative ACK, up to ssthresh.
    #[test]
    fn below_ssthresh_the_pipe_grows_back_by_slow_start() {
        let mut c = cb();
        c.cwnd = 20;
        tcp_init_cwnd_reduction(&mut c);
        c.rack.prr_out = 1;
        // 12 of 20 lost: 7 in flight after the fast retransmit's ACK.
        tcp_cwnd_reduction(&mut c, 7, 1, 0, true);
        assert_eq!(c.cwnd, 7 + 2, "delivered 1, plus 1 for the cumulative ACK");
        tcp_cwnd_reduction(&mut c, 9, 4, 0, true);
        assert_eq!(c.cwnd, 10, "never above ssthresh");
    }
}
