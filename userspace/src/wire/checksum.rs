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

/// One's-complement sum of `data`, read as big-endian 16-bit words (an odd last byte is padded
/// with a zero byte on its right), added to `initial`. Not folded, not inverted.
///
/// `initial` is itself an unfolded sum from this module (for example
/// [`pseudo_header_sum`]), so pieces chain: `sum(sum(0, a), b) ≡ sum(0, a ++ b)` when `a` has
/// even length. Compare only after [`fold`]: the `u64` values themselves are not canonical.
#[inline]
pub fn sum(initial: u64, data: &[u8]) -> u64 {
    // Native-order 64-bit words with end-around carry: one add + adc per 8 bytes. Two
    // accumulators let the CPU overlap the carry chains.
    let mut acc0: u64 = 0;
    let mut acc1: u64 = 0;
    let mut pairs = data.chunks_exact(16);
    for chunk in &mut pairs {
        let (a, b) = chunk.split_at(8);
        acc0 = add_carry(acc0, u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]));
        acc1 = add_carry(acc1, u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    }
    let mut acc = add_carry(acc0, acc1);
    let rest = pairs.remainder();
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        acc = add_carry(acc, u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]));
    }
    // The last 0..=7 bytes, each piece starting at an even offset so it adds as whole 16-bit
    // words (a native u32 is two native u16 words modulo 0xFFFF, in either byte order). An odd
    // final byte is padded with a zero on its right, which is its position in memory.
    let mut tail = words.remainder();
    let mut t: u64 = 0;
    if let [a, b, c, d, rest @ ..] = tail {
        t += u64::from(u32::from_ne_bytes([*a, *b, *c, *d]));
        tail = rest;
    }
    if let [a, b, rest @ ..] = tail {
        t += u64::from(u16::from_ne_bytes([*a, *b]));
        tail = rest;
    }
    if let [a] = tail {
        t += u64::from(u16::from_ne_bytes([*a, 0]));
    }
    acc = add_carry(acc, t);
    // Native-order 16-bit sum -> big-endian-word sum: a byte swap on little-endian hosts.
    let native = fold(acc);
    add_carry(initial, u64::from(u16::from_be(native)))
}

/// Folds an unfolded sum to 16 bits with end-around carry. Not inverted.
///
/// Returns 0 only for a sum of all-zero data; any other data folds into `1..=0xFFFF`.
#[inline]
pub fn fold(sum: u64) -> u16 {
    // 2^32 ≡ 2^16 ≡ 1 (mod 0xFFFF), so high halves can be added into low halves.
    let s = (sum & 0xFFFF_FFFF) + (sum >> 32); // < 2^33
    let s = (s & 0xFFFF) + (s >> 16); // < 2^18
    let s = (s & 0xFFFF) + (s >> 16); // < 2^16 + 4
    let s = (s & 0xFFFF) + (s >> 16); // <= 0xFFFF
    s as u16
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

/// RFC 1624 incremental update (eqn. 3, `HC' = ~(~HC + ~m + m')`, as Linux `csum_replace2()`):
/// the new checksum after one 16-bit word covered by `checksum` changes from `old` to `new`.
///
/// This equals a full recompute except when the data becomes all zeros, where a recompute
/// gives 0xFFFF and eqn. 3 gives 0x0000 (RFC 1624 §3, §5). Callers whose data can become all
/// zero must handle that case (see [`super::icmp::echo_request_to_reply`]).
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
