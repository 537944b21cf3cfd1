//! xsknet: the Linux receive and send path, rebuilt in user space on AF_XDP.
//!
//! Each module is one stage of the path (see `docs/architecture.md`), named
//! with the kernel's word for it:
//!
//! | stage | module |
//! |---|---|
//! | hard IRQ: the XDP program and its loader | [`xdp`] |
//! | the DMA area: UMEM and frames | [`umem`] |
//! | the device queue: AF_XDP socket and rings | [`xsk`], [`netdevice`] |
//! | softirq: the NAPI poll loop | [`softirq`], [`stack`] |
//! | protocol handlers | [`ipv4`] (over [`wire`]), [`neighbour`] |
//! | `sk_buff`, sock and its queues | [`skbuff`], [`sock`] |
//! | fd table | [`fdtable`] |
//! | socket API | [`socket`] |
//! | counters | [`snmp`] |
//!
//! Dependencies point downstream only: `wire` depends on nothing of ours;
//! the sock layer never touches rings.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod errno;
pub mod fdtable;
pub mod ipv4;
pub mod neighbour;
pub mod netdevice;
pub mod signal;
pub mod skbuff;
pub mod snmp;
pub mod sock;
pub mod socket;
pub mod softirq;
pub mod stack;
pub mod umem;
pub mod wire;
pub mod xdp;
pub mod xsk;

#[doc(hidden)]
pub mod testing;

pub use errno::Errno;
pub use fdtable::Fd;
pub use sock::SockType;
pub use socket::{PollFd, StackHandle, ThreadedStack};
pub use stack::{Stack, StackConfig};
