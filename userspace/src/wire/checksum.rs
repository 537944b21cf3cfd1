//! The Internet checksum (RFC 1071): the 16-bit one's-complement sum that IPv4, ICMP and UDP
//! carry, plus the pseudo-header sum of RFC 768 and the incremental update of RFC 1624.
//!
//! This module owns the arithmetic only; which bytes a header covers is decided by the
//! protocol modules. Sums are kept unfolded in a `u64` so that pieces (a pseudo-header, a
//! header, a payload) can be chained with [`sum`] and folded once with [`fold`] at the end, as
//! Linux does with `csum_partial()` / `csum_fold()` (`include/net/checksum.h`).
//!
//! Every `u64` sum in this module is in "big-endian word" terms: folding it gives the
//! one's-complement sum of the data read as big-endian 16-bit words, whatever the host byte
//! order. The fast loop inside [`sum`] adds native-order 64-bit words and byte-swaps once at the
//! end (RFC 1071 §2(B): the sum is byte-order independent up to that swap).

use std::net::Ipv4Addr;

/// Adds `b` to `a` with end-around carry, the one's-complement way.
#[inline(always)]
fn add_carry(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// The native-order 64-bit word at the start of `bytes` (at least 8 long).
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    u64::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]])
}

/// One's-complement sum of `data`, read as big-endian 16-bit words (an odd last byte is padded
/// with a zero byte on its right), added to `initial`. Not folded, not inverted.
///
/// `initial` is itself an unfolded sum from this module (for example
/// [`pseudo_header_sum`]), so pieces chain: `sum(sum(0, a), b) ≡ sum(0, a ++ b)` when `a` has
/// even length. Compare only after [`fold`]: the `u64` values themselves are not canonical.
#[inline]
pub fn sum(initial: u64, data: &[u8]) -> u64 {
    // Headers and small payloads (under 32 bytes) skip the block loop and its registers.
    let (mut wide, mut rest) = if data.len() >= 32 { sum_blocks(data) } else { (0, data) };
    if rest.len() >= 16 {
        wide += u128::from(word(&rest[0..8])) + u128::from(word(&rest[8..16]));
        rest = &rest[16..];
    }
    if rest.len() >= 8 {
        wide += u128::from(word(&rest[0..8]));
        rest = &rest[8..];
    }
    // The high half counts carries out of bit 63, which weigh 2^64 ≡ 1 (mod 0xFFFF).
    let mut acc = add_carry(wide as u64, (wide >> 64) as u64);
    // The last 0..=7 bytes, each piece starting at an even offset so it adds as whole 16-bit
    // words (a native u32 is two native u16 words modulo 0xFFFF, in either byte order). An odd
    // final byte is padded with a zero on its right, which is its position in memory.
    let mut t: u64 = 0;
    if let [a, b, c, d, tail @ ..] = rest {
        t += u64::from(u32::from_ne_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    if let [a, b, tail @ ..] = rest {
        t += u64::from(u16::from_ne_bytes([*a, *b]));
        rest = tail;
    }
    if let [a] = rest {
        t += u64::from(u16::from_ne_bytes([*a, 0]));
    }
    acc = add_carry(acc, t);
    // Native-order words -> big-endian words: a byte swap of the whole 64-bit sum on
    // little-endian hosts. It swaps the bytes inside each 16-bit lane (what turns a native
    // word into a big-endian one) and reverses the lanes' order, which a sum modulo 0xFFFF
    // does not see (2^16 ≡ 1). No fold needed before it.
    add_carry(initial, u64::from_be(acc))
}

/// The native-order 64-bit words of `data`'s 32-byte blocks, summed without end-around carry
/// (the high half of the result counts the carries), and the bytes after the last block.
///
/// Four 128-bit accumulators: a `u128 += u64` is an add and an adc whose carry goes to the
/// high half, off the low half's dependency chain, so each accumulator takes a word per cycle
/// and four keep the ALUs busy; an end-around carry per word (`add_carry`) would chain two
/// instructions per word instead. 1472 bytes: 50 ns with two end-around-carry accumulators,
/// 28 ns with this. Out of line: short data does not pay for its registers.
#[inline(never)]
fn sum_blocks(data: &[u8]) -> (u128, &[u8]) {
    let (mut a, mut b, mut c, mut d) = (0u128, 0u128, 0u128, 0u128);
    let mut blocks = data.chunks_exact(32);
    for x in &mut blocks {
        a += u128::from(word(&x[0..8]));
        b += u128::from(word(&x[8..16]));
        c += u128::from(word(&x[16..24]));
        d += u128::from(word(&x[24..32]));
    }
    // Each accumulator has taken fewer than 2^61 words: their sum cannot overflow.
    ((a + b) + (c + d), blocks.remainder())
}

/// Folds an unfolded sum to 16 bits with end-around carry. Not inverted.
///
/// Returns 0 only for a sum of all-zero data; any other data folds into `1..=0xFFFF`.
#[inline]
pub fn fold(sum: u64) -> u16 {
    // 2^32 ≡ 2^16 ≡ 1 (mod 0xFFFF): add the halves with end-around carry, twice. Neither
    // step can turn a non-zero sum into zero.
    let (s, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(carry);
    let (s, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    s + u16::from(carry)
}

/// The checksum to store in a header whose checksum field is zero in `data`:
/// `!fold(sum(0, data))`. Over data that includes a correct checksum field it returns 0,
/// which is how receivers verify (Linux: `ip_fast_csum() == 0`).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Unfolded sum of the RFC 768 / RFC 793 IPv4 pseudo-header: source and destination address,
/// zero, protocol, and `length` (the L4 length: UDP header + payload). Chain it into [`sum`].
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u64 {
    // Adding the 32-bit addresses whole is fine: fold() reduces modulo 0xFFFF.
    u64::from(u32::from(src)) + u64::from(u32::from(dst)) + u64::from(protocol) + u64::from(length)
}

/// True when the checksum field inside `segment` (a UDP datagram or TCP segment, header and
/// payload, exactly its length) verifies over the IPv4 pseudo-header (`src`, `dst`,
/// `protocol`, `segment.len()`) and `segment`. False for a segment longer than 65535 bytes.
/// Protocol rules on top (UDP's "0 means none") are the caller's.
#[inline]
pub fn verify_pseudo(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> bool {
    let Ok(len) = u16::try_from(segment.len()) else {
        return false;
    };
    fold(sum(pseudo_header_sum(src, dst, protocol, len), segment)) == 0xFFFF
}

/// The checksum to store in a UDP or TCP header whose checksum field is zero in `segment`:
/// the inverted sum of the IPv4 pseudo-header (`src`, `dst`, `protocol`, `segment.len()`) and
/// `segment`. May return 0; UDP sends that as 0xFFFF (RFC 768).
///
/// `segment` must be at most 65535 bytes (checked in debug builds; the length is truncated).
#[inline]
pub fn compute_pseudo(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, segment: &[u8]) -> u16 {
    debug_assert!(segment.len() <= usize::from(u16::MAX));
    !fold(sum(pseudo_header_sum(src, dst, protocol, segment.len() as u16), segment))
}

/// RFC 1624 incremental update (eqn. 3, `HC' = ~(~HC + ~m + m')`, as Linux `csum_replace2()`):
/// the new checksum after one 16-bit word covered by `checksum` changes from `old` to `new`.
///
/// This equals a full recompute except when the data becomes all zeros, where a recompute
/// gives 0xFFFF and eqn. 3 gives 0x0000 (RFC 1624 §3, §5). Callers whose data can become all
/// zero must handle that case (see [`super::icmp::IcmpPacket::echo_request_to_reply`]).
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    let s = u64::from(!checksum) + u64::from(!old) + u64::from(new);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 done the obvious way: big-endian 16-bit words, u32 accumulator, fold.
    fn naive_fold(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
            s = (s & 0xFFFF) + (s >> 16);
            i += 2;
        }
        if i < data.len() {
            s += u32::from(data[i]) << 8;
            s = (s & 0xFFFF) + (s >> 16);
        }
        s as u16
    }

    /// Deterministic xorshift64*, so failures reproduce without a proptest dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    /// The IPv4 header from RFC 1071-era examples (and Wikipedia's "IPv4 header checksum"),
    /// with its checksum 0xB861 in place.
    const PACKET_BYTES: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
        0x00, 0xc7,
    ];

    #[test]
    fn known_header_checksum() {
        assert_eq!(checksum(&PACKET_BYTES), 0);
        let mut zeroed = PACKET_BYTES;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xB861);
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &data)), 0xDDF2);
        assert_eq!(checksum(&data), !0xDDF2);
    }

    #[test]
    fn matches_naive_on_every_length_and_alignment() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut buf = [0u8; 208];
        for _round in 0..20 {
            rng.fill(&mut buf);
            for offset in 0..8 {
                for len in 0..200 {
                    let data = &buf[offset..offset + len];
                    assert_eq!(fold(sum(0, data)), naive_fold(data), "len {len} offset {offset}");
                    assert_eq!(checksum(data), !naive_fold(data));
                }
            }
        }
    }

    #[test]
    fn all_ones_does_not_overflow() {
        // Worst case for the carry chains.
        let data = [0xFFu8; 199];
        assert_eq!(fold(sum(0, &data)), naive_fold(&data));
        assert_eq!(fold(sum(u64::MAX, &data)), naive_fold(&data));
        assert_eq!(fold(u64::MAX), 0xFFFF);
    }

    #[test]
    fn long_data_matches_naive() {
        // Many 32-byte blocks, every remainder length, and the all-ones worst case for carries.
        let mut rng = Rng(0x5EED);
        let mut buf = vec![0u8; 9000 + 64];
        rng.fill(&mut buf);
        for len in (1440..1540).chain([4096, 9000]) {
            for offset in [0, 1, 6] {
                let data = &buf[offset..offset + len];
                assert_eq!(fold(sum(0, data)), naive_fold(data), "len {len} offset {offset}");
            }
        }
        let ones = vec![0xFFu8; 9001];
        assert_eq!(fold(sum(0, &ones)), naive_fold(&ones));
        assert_eq!(fold(sum(u64::MAX, &ones[..1472])), naive_fold(&ones[..1472]));
    }

    #[test]
    fn empty_and_zero_data() {
        assert_eq!(fold(sum(0, &[])), 0);
        assert_eq!(checksum(&[]), 0xFFFF);
        assert_eq!(checksum(&[0; 7]), 0xFFFF);
    }

    #[test]
    fn chaining_equals_one_pass() {
        let mut rng = Rng(7);
        let mut buf = [0u8; 150];
        rng.fill(&mut buf);
        for split in (0..150).step_by(2) {
            let (a, b) = buf.split_at(split);
            assert_eq!(fold(sum(sum(0, a), b)), fold(sum(0, &buf)), "split {split}");
        }
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(10, 255, 254, 253);
        let bytes = [192, 168, 0, 1, 10, 255, 254, 253, 0, 17, 0x01, 0x23];
        assert_eq!(fold(pseudo_header_sum(src, dst, 17, 0x0123)), naive_fold(&bytes));
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut rng = Rng(42);
        let mut buf = [0u8; 64];
        for _ in 0..10_000 {
            rng.fill(&mut buf);
            buf[10] = 0;
            buf[11] = 0;
            let before = checksum(&buf);
            let word = 2 * (rng.next() as usize % 32);
            if word == 10 {
                continue;
            }
            let old = u16::from_be_bytes([buf[word], buf[word + 1]]);
            let new = rng.next() as u16;
            buf[word..word + 2].copy_from_slice(&new.to_be_bytes());
            assert_eq!(update(before, old, new), checksum(&buf));
        }
    }
}
