//! The kernel's tick, `HZ` (include/linux/jiffies.h): the unit of `jiffies`,
//! in which Linux's TCP keeps CUBIC's clock (`tcp_jiffies32`,
//! net/ipv4/tcp_cubic.c). `HZ` is fixed when the kernel is built
//! (`CONFIG_HZ`: 100, 250, 300 or 1000; Debian's and Ubuntu's kernels use
//! 250), and CUBIC's growth depends on it at short RTTs: the curve is
//! recomputed at most once a jiffy, and not for `HZ/32` jiffies while the
//! window stands still. xsknet takes it as a setting,
//! [`crate::StackConfig::hz`]; the xsknet binary uses the running kernel's
//! ([`host_hz`]), so that xsknet's TCP and the kernel's run on the same clock.

/// The tick when none is given: `CONFIG_HZ=1000` (1 ms).
pub const HZ_DEFAULT: u32 = 1000;

/// The tick `hz` stands for: itself, or [`HZ_DEFAULT`] for 0 (no tick given).
pub fn tick(hz: u32) -> u32 {
    if hz == 0 {
        HZ_DEFAULT
    } else {
        hz
    }
}

/// `usecs_to_jiffies`: `us` microseconds in jiffies of `hz` per second,
/// rounded up (so any time above 0 is at least one jiffy).
pub fn usecs_to_jiffies(us: u64, hz: u32) -> u64 {
    (u128::from(us) * u128::from(hz)).div_ceil(1_000_000).min(u128::from(u64::MAX)) as u64
}

/// Whole jiffies of `hz` per second in `us` microseconds (the count `jiffies`
/// advanced by), rounded down.
pub fn jiffies_in(us: u64, hz: u32) -> u64 {
    (u128::from(us) * u128::from(hz) / 1_000_000).min(u128::from(u64::MAX)) as u64
}

/// `d` rounded up to whole jiffies of `hz` per second (0: [`HZ_DEFAULT`]): how
/// long a timer armed for `usecs_to_jiffies(d)` waits.
pub fn round_up(d: std::time::Duration, hz: u32) -> std::time::Duration {
    let hz = tick(hz);
    let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
    let j = usecs_to_jiffies(us, hz);
    std::time::Duration::from_micros(
        (u128::from(j) * 1_000_000).div_ceil(u128::from(hz)).min(u128::from(u64::MAX)) as u64
    )
}

/// The running kernel's `HZ`: the resolution of `CLOCK_MONOTONIC_COARSE`
/// (`clock_getres(2)`), which the kernel reads from its tick (`TICK_NSEC`).
/// `None` when the clock cannot be read or its resolution is not a tick of
/// 24 to 10000 per second.
pub fn host_hz() -> Option<u32> {
    let res = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
    let ns =
        u64::try_from(res.tv_sec).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(res.tv_nsec).ok()?)?;
    if ns == 0 {
        return None;
    }
    let hz = (1_000_000_000 + ns / 2) / ns;
    (24..=10_000).contains(&hz).then_some(hz as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usecs_round_up_to_whole_jiffies() {
        assert_eq!(usecs_to_jiffies(0, 250), 0);
        assert_eq!(usecs_to_jiffies(1, 250), 1);
        assert_eq!(usecs_to_jiffies(4000, 250), 1);
        assert_eq!(usecs_to_jiffies(4001, 250), 2);
        assert_eq!(usecs_to_jiffies(2300, 1000), 3);
        assert_eq!(jiffies_in(7999, 250), 1);
        assert_eq!(jiffies_in(8000, 250), 2);
        let ms = std::time::Duration::from_millis;
        assert_eq!(round_up(std::time::Duration::from_micros(6700), 250), ms(8));
        assert_eq!(round_up(ms(8), 250), ms(8));
        assert_eq!(round_up(std::time::Duration::from_micros(6700), 1000), ms(7));
        // No tick given is the default one, not a timer that never waits.
        assert_eq!(round_up(std::time::Duration::from_micros(6700), 0), ms(7));
    }

    #[test]
    fn the_host_tick_is_one_of_the_kernel_s_rates() {
        let hz = host_hz().expect("CLOCK_MONOTONIC_COARSE has a resolution on Linux");
        assert!([100, 250, 300, 1000].contains(&hz), "CONFIG_HZ {hz}");
    }
}
