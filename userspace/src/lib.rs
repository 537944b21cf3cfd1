//! xsknet: the Linux receive and send path, rebuilt in user space on AF_XDP.
//!
//! Each module is one stage of the path (see `docs/architecture.md`), named
//! with the kernel's word for it:
//!
//! | stage | module | owns |
//! |---|---|---|
//! | hard IRQ: the XDP program and its loader | [`xdp`] | the program, its maps and link; the guard (`xdp::guard`): allow/block lists and rate limits that drop a flood before the copy |
//! | the DMA area | [`umem`] | the UMEM mapping, move-only frames, the free list |
//! | the device queue | [`xsk`], [`netdevice`] | the AF_XDP socket and its four rings; the device trait and the in-memory device |
//! | softirq: the NAPI poll | [`softirq`] | the poller: device, frame cache ([`netdev_queue`]), rx batch |
//! | protocol state | [`net`] | addresses ([`route`]), neighbours ([`neighbour`]), counters ([`snmp`]), ICMP limits ([`ratelimit`]) |
//! | protocol handlers | [`ipv4`] (over [`wire`]) | IP in and out, UDP, TCP, ICMP, ARP; `udp_prot`, `tcp_prot` ([`proto`]) |
//! | socket tables | [`inet_hashtables`] | socks by what packets are addressed to |
//! | `sk_buff`, sock and its queues | [`skbuff`], [`sock`], [`stream`] | a frame with offsets; receive and write queues, wait queue; a TCP sock's byte buffers and state word |
//! | fd table | [`fdtable`] | descriptors, lowest free first |
//! | `epoll` | [`eventpoll`] | the interest and ready lists: which of many descriptors are ready, without a scan |
//! | socket API | [`socket`], [`handoff`] | the calls, run to completion or threaded; the threaded loop's hand-off of a shared core to the threads it woke |
//! | the composition | [`stack`] | the parts above, lent to each other per call |
//! | time | [`timer`], [`jiffies`] | deadlines per owner, run on time passed in; the kernel's tick (`HZ`) TCP's clocks copy |
//! | measurement | [`latency`], [`schedstat`] | the per-stage latency histograms; what the scheduler did to the loop's thread |
//! | what an operator sees | [`publish`], [`inet_diag`], [`control`] | the counters published without a lock; the socket listing (`ss`); the control endpoint of a running instance |
//! | the Prometheus endpoint | [`metrics`] | the counters named for Prometheus; `GET /metrics` served from threads of its own |
//! | bringing a device up | [`device`] | the program attached, the UMEM, the AF_XDP socket registered |
//! | the guard's adaptive mode | [`adaptive`] | when to tighten the XDP guard's per-source limits and when to relax them, on time passed in |
//! | the exit report | [`report`] | the counters by stage, drops by reason, the JSON |
//! | packet capture | [`capture`] | the tap: frames in, out and dropped, to a pcapng file by a writer thread |
//! | around the path | [`errno`], [`cli`], [`signal`], [`cpu`] | Linux's errno values; the options `xsknet` and the generator share; stop on SIGINT, SIGTERM or SIGHUP; which CPU a thread runs on |
//!
//! Dependencies point downstream only, and no two modules import each other
//! in a circle (a test, `tests/module_graph.rs`, reads every `use crate::`
//! and fails on a cycle): `wire` depends on nothing of ours; the sock layer
//! never touches rings; protocol handlers borrow the parts they need as
//! arguments.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod adaptive;
pub mod capture;
pub mod cli;
pub mod control;
pub mod cpu;
pub mod device;
pub mod errno;
pub mod eventpoll;
pub mod fdtable;
pub mod handoff;
pub mod inet_diag;
pub mod inet_hashtables;
pub mod ipv4;
pub mod jiffies;
pub mod latency;
pub mod metrics;
pub mod neighbour;
pub mod net;
pub mod netdev_queue;
pub mod netdevice;
pub mod proto;
pub mod publish;
pub mod ratelimit;
pub mod report;
pub mod route;
pub mod schedstat;
pub mod signal;
pub mod skbuff;
pub mod snmp;
pub mod sock;
pub mod socket;
pub mod softirq;
pub mod stack;
pub mod stream;
pub mod timer;
pub mod umem;
pub mod wire;
pub mod xdp;
pub mod xsk;

// Test support (namespaces, veth pairs): only with the `testing` feature.
#[cfg(feature = "testing")]
pub mod testing;

pub use errno::Errno;
pub use eventpoll::{EpollEvent, EpollFd, EpollOp};
pub use fdtable::Fd;
pub use ipv4::tcp::prot::Shutdown;
pub use sock::{PmtuDisc, SockType};
pub use socket::{PollFd, SockOpt, StackHandle, TcpInfo, ThreadedStack};
pub use stack::{Stack, StackConfig};
pub use stream::{CongAlgo, TcpState};
