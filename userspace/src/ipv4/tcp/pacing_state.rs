//! A connection's pacing state (`sk_pacing_rate`, `sk_max_pacing_rate`, `sk_pacing_status`,
//! `tcp_wstamp_ns`, the pacing hrtimer of net/ipv4/tcp_output.c): the numbers the control
//! block keeps for [`super::pacing`], which owns the stage (when the next segment may
//! leave). Apart from it so that the control block can hold it without importing the code
//! that works on the control block.

use std::time::{Duration, Instant};

/// `sk_pacing_rate` and `sk_max_pacing_rate` when unset: `~0UL`, no limit.
pub const PACING_RATE_UNLIMITED: u64 = u64::MAX;
/// `GSO_LEGACY_MAX_SIZE`: the `gso_ipv4_max_size` of a device that does not say otherwise
/// (a veth: `ip -d link` shows `gso_max_size 65536`).
pub const GSO_LEGACY_MAX_SIZE: u64 = 65536;
/// `MAX_TCP_HEADER` (include/net/tcp.h): `L1_CACHE_ALIGN(128 + MAX_HEADER)`, with
/// `MAX_HEADER` = `LL_MAX_HEADER` 32 (include/linux/netdevice.h: a kernel without WLAN,
/// AX.25, Hyper-V networking or IP tunnels, as the one the benchmarks ran on) and 64-byte
/// cache lines: 192. A kernel with WLAN and tunnels has 320.
pub const MAX_TCP_HEADER: u64 = 192;
/// `sk_gso_max_size` of a Linux TCP socket on such a device (net/core/sock.c
/// `sk_dst_gso_max_size`: `gso_ipv4_max_size - (MAX_TCP_HEADER + 1)`, 65343), what
/// `hystart_ack_delay` divides by the pacing rate. A TCP socket has it with the device's GSO
/// off too: `sk_setup_caps` gives every TCP socket `NETIF_F_GSO`, and the stack segments
/// in software what the device does not. xsknet sends MTU-sized frames; HyStart's ACK-train
/// threshold is Linux's all the same.
pub const SK_GSO_MAX_SIZE: u64 = GSO_LEGACY_MAX_SIZE - (MAX_TCP_HEADER + 1);

/// A connection's pacing state (`sk_pacing_rate`, `sk_pacing_status`, `tcp_wstamp_ns`, the
/// pacing hrtimer).
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// `sk_pacing_rate`, bytes per second ([`PACING_RATE_UNLIMITED`] until the first ACK
    /// computes it, as `sk_pacing_rate` starts at `~0`).
    pub rate: u64,
    /// `sk_max_pacing_rate` (`SO_MAX_PACING_RATE`), bytes per second.
    pub max_rate: u64,
    /// `sk_pacing_status == SK_PACING_NEEDED`: TCP paces itself.
    pub needed: bool,
    /// `tcp_wstamp_ns`: the earliest time the next segment may leave (`None`: nothing sent yet).
    pub wstamp: Option<Instant>,
    /// The pacing timer: when it fires (`None`: not armed).
    pub timer_at: Option<Instant>,
    /// `data_segs_out`: data segments sent, retransmissions included.
    pub data_segs_out: u64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            rate: PACING_RATE_UNLIMITED,
            max_rate: PACING_RATE_UNLIMITED,
            needed: false,
            wstamp: None,
            timer_at: None,
            data_segs_out: 0,
        }
    }
}

impl Pacing {
    /// `SO_MAX_PACING_RATE` (net/core/sock.c `sk_setsockopt`): the cap, bytes per second;
    /// any value but [`PACING_RATE_UNLIMITED`] turns internal pacing on for good
    /// (`SK_PACING_NONE` → `SK_PACING_NEEDED`); the current rate drops to the cap at once.
    pub fn set_max_rate(&mut self, max_rate: u64) {
        if max_rate != PACING_RATE_UNLIMITED {
            self.needed = true;
        }
        self.max_rate = max_rate;
        self.rate = self.rate.min(max_rate);
    }

    /// `hystart_ack_delay` (net/ipv4/tcp_cubic.c): how much later than the minimum RTT an
    /// ACK train may end because of pacing: `min(1 ms, 4 · sk_gso_max_size / rate)`
    /// ([`SK_GSO_MAX_SIZE`]); zero
    /// while no rate is known. Linux then halves the train threshold when the socket does
    /// not pace (`SK_PACING_NONE`), see [`Self::needed`].
    pub fn hystart_ack_delay(&self) -> Duration {
        if self.rate == 0 || self.rate == PACING_RATE_UNLIMITED {
            return Duration::ZERO;
        }
        let us = (SK_GSO_MAX_SIZE * 4 * 1_000_000) / self.rate;
        Duration::from_micros(us.min(1000))
    }
}
