//! GRO for TCP (net/ipv4/tcp_offload.c, `tcp_gro_receive`; net/core/gro.c):
//! which segments of one connection in an rx batch Linux would have merged
//! into one `sk_buff`, so that TCP decides about their ACK once, as Linux
//! does for an aggregate.
//!
//! A NIC driver hands its NAPI poll's frames to `napi_gro_receive`. Segments
//! of one flow that follow each other in sequence, with the same ACK number,
//! flags, window and options, are merged into one buffer of up to 64 KiB,
//! which `tcp_v4_rcv` then takes as one segment: one pass of
//! `tcp_rcv_established`, one `__tcp_ack_snd_check`. A bulk receiver behind
//! GRO therefore ACKs about once per aggregate, not once per two segments.
//!
//! xsknet does not merge the bytes: each segment is taken by `tcp_v4_rcv` as
//! it comes and its data copied into the receive queue at once. It keeps the
//! aggregate's boundaries ([`GroAggregate`]) and holds back the ACK decision
//! of a segment inside one until the aggregate ends: at a segment that does
//! not continue it, at one that ends it (PSH, FIN, URG, shorter than the
//! first), at 64 KiB, or at the end of the rx batch (`napi_gro_flush`).
//!
//! Where xsknet differs (docs/tcp.md, "GRO"): Linux flushes at the end of a
//! NAPI poll only aggregates a jiffy old when the poll used its whole budget
//! (`gro_flush_normal`); xsknet flushes every one at the end of every batch,
//! so it never holds an ACK past the poll that received its segment. Options
//! are compared parsed, with the header's length, not word by word. The IP
//! header's checks between segments (`gro_receive_network_flush`: TOS, TTL,
//! the IP ID's continuity) are not made; a datagram with IP options or
//! reassembled from fragments, which `inet_gro_receive` never merges, joins
//! and starts nothing (the caller's test). Linux keeps at most 8 aggregates
//! per hash bucket (`MAX_GRO_SKBS`); xsknet one per connection.

use crate::wire::tcp::{flags, TcpOptions, TcpRepr};

/// `GRO_LEGACY_MAX_SIZE` (`dev->gro_max_size`, 65536 by default): an
/// aggregate's IP datagram stays below it, headers and data
/// (`skb_gro_receive`: `p->len + len >= gro_max_size` refuses).
pub const GRO_MAX_SIZE: usize = 65536;

/// Flags that end an aggregate after the segment that carries them
/// (`tcp_gro_receive`'s `out_check_final`); a segment with one of them and
/// no aggregate to join goes up at once.
const FLUSH_FLAGS: u8 = flags::URG | flags::PSH | flags::RST | flags::SYN | flags::FIN;

/// Flags that may differ between the segments of an aggregate (the last one
/// carries PSH or FIN; CWR is checked on its own).
const MERGE_MASK: u8 = !(flags::CWR | flags::FIN | flags::PSH);

/// One aggregate being built for a connection in this rx batch: what its
/// segments have in common, as `tcp_gro_receive` compares them with the
/// aggregate's first (`th2`, the head of `p`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroAggregate {
    /// The sequence number after its last byte (`th2->seq + skb_gro_len(p)`).
    next_seq: u32,
    /// `ack_seq`, equal in all.
    ack: u32,
    /// The flags, less CWR, FIN and PSH, equal in all (`tcp_flag_word`).
    flags: u8,
    /// The window field, equal in all (it shares `tcp_flag_word`).
    window: u16,
    /// The options, the same in all (parsed).
    options: TcpOptions,
    /// The IP and TCP headers' length, the same in all: what the aggregate's
    /// datagram holds besides the data.
    hdr: usize,
    /// The first segment's data length (`gso_size`): a longer one does not
    /// join; a shorter one joins and ends the aggregate.
    mss: usize,
    /// Bytes of data in it (`skb_gro_len(p)`), at most [`GRO_MAX_SIZE`].
    len: usize,
    /// Segments in it (`NAPI_GRO_CB(p)->count`).
    segs: u16,
    /// Its last segment ended it: its ACK decision is due now.
    done: bool,
}

/// What [`GroAggregate::receive`] did with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroVerdict {
    /// The segment joined the aggregate; if it ended it,
    /// [`GroAggregate::is_done`] says so.
    Merged,
    /// The segment does not continue the aggregate, which ends before it
    /// (its ACK decision is due now); the segment may start a new one
    /// ([`GroAggregate::start`]).
    Flush,
}

impl GroAggregate {
    /// An aggregate started by the segment `repr` with `hdr` bytes of IP and
    /// TCP headers and `len` bytes of data, or `None` when the segment goes
    /// up on its own at once (no data, or a flag in [`FLUSH_FLAGS`]), as
    /// `tcp_gro_receive` with no aggregate to join (`mss` 1).
    pub fn start(repr: &TcpRepr, hdr: usize, len: usize) -> Option<GroAggregate> {
        if len == 0 || hdr + len >= GRO_MAX_SIZE || repr.flags & FLUSH_FLAGS != 0 {
            return None;
        }
        Some(GroAggregate {
            next_seq: repr.seq.wrapping_add(len as u32),
            ack: repr.ack,
            flags: repr.flags & MERGE_MASK,
            window: repr.window,
            options: repr.options,
            hdr,
            mss: len,
            len,
            segs: 1,
            done: false,
        })
    }

    /// `tcp_gro_receive` for the next segment of the same connection, with
    /// `hdr` bytes of IP and TCP headers and `len` of data: joins it when it
    /// continues the aggregate in sequence with the same ACK number, flags,
    /// window, options and header length, no more data than the first, no
    /// CWR, and room under [`GRO_MAX_SIZE`]; the aggregate is then done if
    /// the segment is shorter than the first or carries a flag of
    /// [`FLUSH_FLAGS`]. An aggregate already done takes nothing more.
    pub fn receive(&mut self, repr: &TcpRepr, hdr: usize, len: usize) -> GroVerdict {
        let joins = !self.done
            && len > 0
            && repr.flags & flags::CWR == 0
            && repr.flags & MERGE_MASK == self.flags
            && repr.ack == self.ack
            && repr.window == self.window
            && repr.options == self.options
            && hdr == self.hdr
            && len <= self.mss
            && repr.seq == self.next_seq
            && self.hdr + self.len + len < GRO_MAX_SIZE;
        if !joins {
            return GroVerdict::Flush;
        }
        self.next_seq = self.next_seq.wrapping_add(len as u32);
        self.len += len;
        self.segs = self.segs.saturating_add(1);
        self.done = len < self.mss || repr.flags & FLUSH_FLAGS != 0;
        GroVerdict::Merged
    }

    /// Whether the aggregate ended with its last segment.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Segments in it.
    pub fn segs(&self) -> u16 {
        self.segs
    }

    /// Bytes of data in it.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no data (never: an aggregate starts with data).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(seq: u32, fl: u8) -> TcpRepr {
        TcpRepr { seq, ack: 77, flags: fl, window: 512, ..TcpRepr::default() }
    }

    const MSS: usize = 1448;
    /// IP and TCP headers without options.
    const HDR: usize = 40;

    #[test]
    fn in_sequence_segments_merge_up_to_64_kib() {
        let mut g = GroAggregate::start(&seg(1000, flags::ACK), HDR, MSS).unwrap();
        let mut seq = 1000 + MSS as u32;
        let mut merged = 1;
        while g.receive(&seg(seq, flags::ACK), HDR, MSS) == GroVerdict::Merged {
            seq += MSS as u32;
            merged += 1;
        }
        // 40 + 45 × 1448 = 65200; the 46th would pass 65536.
        assert_eq!(merged, 45);
        assert_eq!(g.segs(), 45);
        assert_eq!(g.len(), 45 * MSS);
        assert!(!g.is_done());
    }

    #[test]
    fn psh_short_or_fin_segments_end_the_aggregate_after_joining_it() {
        for (fl, len) in [(flags::ACK | flags::PSH, MSS), (flags::ACK, 100), (flags::ACK | flags::FIN, MSS)] {
            let mut g = GroAggregate::start(&seg(0, flags::ACK), HDR, MSS).unwrap();
            assert_eq!(g.receive(&seg(MSS as u32, fl), HDR, len), GroVerdict::Merged, "{fl:#x} {len}");
            assert!(g.is_done());
            assert_eq!(g.receive(&seg(MSS as u32 + len as u32, flags::ACK), HDR, MSS), GroVerdict::Flush);
        }
    }

    #[test]
    fn a_segment_that_differs_flushes_the_aggregate() {
        let g = GroAggregate::start(&seg(0, flags::ACK), HDR, MSS).unwrap();
        let next = MSS as u32;
        let mut ts = seg(next, flags::ACK);
        ts.options.timestamp = Some((5, 6));
        let cases = [
            (seg(next + 1, flags::ACK), MSS, "out of sequence"),
            (TcpRepr { ack: 78, ..seg(next, flags::ACK) }, MSS, "another ACK number"),
            (TcpRepr { window: 511, ..seg(next, flags::ACK) }, MSS, "another window"),
            (ts, MSS, "other options (a new TSval)"),
            (seg(next, flags::ACK | flags::CWR), MSS, "CWR"),
            (seg(next, flags::ACK | flags::ECE), MSS, "other flags"),
            (seg(next, flags::ACK), MSS + 1, "longer than the first"),
            (seg(next, flags::ACK), 0, "no data"),
        ];
        let mut h = g;
        assert_eq!(h.receive(&seg(next, flags::ACK), HDR + 4, MSS), GroVerdict::Flush, "another header length");
        for (r, len, why) in cases {
            let mut h = g;
            assert_eq!(h.receive(&r, HDR, len), GroVerdict::Flush, "{why}");
        }
    }

    #[test]
    fn the_limit_counts_the_headers() {
        // 8 × 8188 = 65504 bytes of data: under 65536 alone, not with 40 bytes of headers.
        let mut g = GroAggregate::start(&seg(0, flags::ACK), HDR, 8188).unwrap();
        for i in 1..7u32 {
            assert_eq!(g.receive(&seg(i * 8188, flags::ACK), HDR, 8188), GroVerdict::Merged);
        }
        assert_eq!(g.receive(&seg(7 * 8188, flags::ACK), HDR, 8188), GroVerdict::Flush);
    }

    #[test]
    fn a_segment_without_data_or_with_a_flush_flag_starts_nothing() {
        assert!(GroAggregate::start(&seg(0, flags::ACK), HDR, 0).is_none());
        for fl in [flags::PSH, flags::FIN, flags::SYN, flags::RST, flags::URG] {
            assert!(GroAggregate::start(&seg(0, flags::ACK | fl), HDR, MSS).is_none(), "{fl:#x}");
        }
        assert!(GroAggregate::start(&seg(0, flags::ACK | flags::CWR), HDR, MSS).is_some());
    }
}
