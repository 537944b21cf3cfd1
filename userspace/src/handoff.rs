//! The threaded loop's hand-off of a core it shares with the threads it
//! wakes.
//!
//! A threaded loop ([`crate::socket::ThreadedStack`]) wakes application
//! threads asleep in `recv_from` as the kernel's softirq wakes a process. On a
//! core the two share, the woken thread runs only when the loop lets go of
//! the core, and a `sched_yield` does not always do that: under EEVDF
//! (kernel/sched/fair.c, `yield_task_fair`, `pick_eevdf`) only an *eligible*
//! task can be picked instead of the yielding one, and a reader that spun
//! before it slept may have run more than its share. So after a poll that
//! woke a thread, while that thread has not run, the loop *blocks* in
//! `ppoll()`: on the device's rx descriptor (a new frame still wakes it at
//! once) and on an eventfd of its own, for at most a short bound. The woken
//! thread has the core then; at its next `send_to` (or when it waits again)
//! it writes the eventfd, only when the loop is actually blocked.
//!
//! This module owns the pieces and their system calls (eventfd(2), ppoll(2),
//! sched_getcpu(3)):
//!
//! * [`Waiter`]: a thread that sleeps on a [`crate::sock::WaitQueue`], with a
//!   flag a waker sets once ([`Waiter::wake`]) and the thread clears when it
//!   runs again ([`Waiter::resumed`]). A thread woken twice before it runs (at
//!   the first datagram of a batch, `wake_up_seen`, and at its end,
//!   `wake_up`) is counted once.
//! * the loop's list of the threads it woke ([`become_loop`],
//!   [`woken_not_run`], [`forget_woken`]), on the loop's thread only.
//! * [`Handoff`]: where the loop blocks ([`Handoff::block`]) and how a thread
//!   wakes it ([`Handoff::release`]): one atomic load and a fence when the
//!   loop is not blocked, no system call.
//! * [`EventFd`]: the eventfd itself (also the in-memory device's "rx ring
//!   not empty" descriptor, [`crate::netdevice::MemDevice`]).
#![allow(unsafe_code)] // eventfd(2), read(2), write(2), ppoll(2), sched_getcpu(3); each with a SAFETY line

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

/// Woken by a loop, not run since.
const WOKEN: u8 = 1;
/// On a loop's list of the threads it woke (set and cleared by that loop).
const LISTED: u8 = 2;
/// A CPU number no CPU has.
const NO_CPU: u32 = u32::MAX;

/// The CPU the calling thread runs on (`sched_getcpu(3)`: rseq or the vDSO,
/// no system call on Linux 4.18+ with glibc 2.35+), or `NO_CPU`.
fn current_cpu() -> u32 {
    // SAFETY: sched_getcpu(3) takes no arguments and touches no memory of ours.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).unwrap_or(NO_CPU)
}

/// A thread that sleeps on wait queues: what a waker unparks.
#[derive(Debug)]
pub struct Waiter {
    thread: Thread,
    /// `WOKEN` and `LISTED`.
    state: AtomicU8,
    /// The CPU the thread last went to sleep on (`NO_CPU`: not known).
    cpu: AtomicU32,
}

thread_local! {
    /// The calling thread as a waiter (made at its first sleep).
    static CURRENT: Arc<Waiter> = Arc::new(Waiter {
        thread: std::thread::current(),
        state: AtomicU8::new(0),
        cpu: AtomicU32::new(NO_CPU),
    });
    /// On a threaded loop's thread ([`become_loop`]): the threads its
    /// wake-ups woke that had not run at the last look. `None` elsewhere:
    /// a wake-up from any other thread lists nothing.
    static WOKEN_BY_LOOP: RefCell<Option<Vec<Arc<Waiter>>>> = const { RefCell::new(None) };
}

impl Waiter {
    /// The calling thread.
    pub(crate) fn current() -> Arc<Waiter> {
        CURRENT.with(Arc::clone)
    }

    /// Whether this is the calling thread.
    pub(crate) fn is_current(&self) -> bool {
        self.thread.id() == std::thread::current().id()
    }

    /// Unparks the thread. On a threaded loop's thread, the thread is marked
    /// woken and, the first time since the loop last let it go, put on the
    /// loop's list: however many wake-ups reach it before it runs, it is
    /// waited for once. Marked before the unpark, so that the thread's own
    /// [`Self::resumed`] comes after the mark.
    pub(crate) fn wake(self: &Arc<Self>) {
        WOKEN_BY_LOOP.with(|l| {
            if let Some(list) = l.borrow_mut().as_mut() {
                if self.state.fetch_or(WOKEN | LISTED, Ordering::SeqCst) & LISTED == 0 {
                    list.push(self.clone());
                }
            }
        });
        self.thread.unpark();
    }

    /// The calling thread is about to sleep: notes the CPU it sleeps on, so
    /// that a loop hands over only a core it shares with it.
    pub(crate) fn sleeping(&self) {
        self.cpu.store(current_cpu(), Ordering::Relaxed);
    }

    /// The calling thread runs again (its park returned, or it stops
    /// waiting): whatever woke it has been answered.
    pub(crate) fn resumed(&self) {
        self.state.fetch_and(!WOKEN, Ordering::SeqCst);
    }

    /// Whether a loop woke the thread and it has not run since.
    pub fn woken(&self) -> bool {
        self.state.load(Ordering::SeqCst) & WOKEN != 0
    }
}

/// Makes the calling thread a threaded loop: from now on the threads its
/// wake-ups wake are listed until they have run ([`woken_not_run`]).
pub(crate) fn become_loop() {
    WOKEN_BY_LOOP.with(|l| *l.borrow_mut() = Some(Vec::with_capacity(16)));
}

/// On a loop's thread: drops from its list the threads that have run since
/// it woke them, and those that sleep on another CPU than the caller's (a
/// core of their own runs them at once; only a shared core is handed over).
/// Whether any is left. Costs a thread-local look when the list is empty.
pub(crate) fn woken_not_run() -> bool {
    WOKEN_BY_LOOP.with(|l| {
        let mut l = l.borrow_mut();
        let Some(list) = l.as_mut() else { return false };
        if list.is_empty() {
            return false;
        }
        let cpu = current_cpu();
        list.retain(|w| {
            let keep = w.woken() && w.cpu.load(Ordering::Relaxed) == cpu;
            if !keep {
                w.state.fetch_and(!LISTED, Ordering::SeqCst);
            }
            keep
        });
        !list.is_empty()
    })
}

/// On a loop's thread: whether a thread on its list has still not run (no
/// list is changed: the check of a loop about to block).
fn listed_woken() -> bool {
    WOKEN_BY_LOOP.with(|l| l.borrow().as_ref().is_some_and(|list| list.iter().any(|w| w.woken())))
}

/// On a loop's thread: lets go of every thread on its list (the hand-off
/// took as long as it may).
pub(crate) fn forget_woken() {
    WOKEN_BY_LOOP.with(|l| {
        if let Some(list) = l.borrow_mut().as_mut() {
            for w in list.drain(..) {
                w.state.fetch_and(!LISTED, Ordering::SeqCst);
            }
        }
    });
}

/// An eventfd (eventfd(2)), non-blocking: a counter a thread adds to and a
/// `poll()` sees as readable while it is not zero.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd at zero (`EFD_NONBLOCK | EFD_CLOEXEC`).
    ///
    /// # Errors
    ///
    /// eventfd(2)'s (`EMFILE`, `ENOMEM`).
    pub fn new() -> std::io::Result<EventFd> {
        // SAFETY: eventfd(2) takes two integers and returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd(2): open, and owned by nobody else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds one: the descriptor polls readable.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: write(2) of 8 bytes from a live u64 on our own open eventfd.
        // It fails only when the counter would overflow (EAGAIN), which one
        // per blocking cannot reach: the descriptor stays readable then.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets to zero; whether it was signalled.
    pub fn drain(&self) -> bool {
        let mut v: u64 = 0;
        // SAFETY: read(2) of 8 bytes into a live u64 on our own open eventfd
        // (non-blocking: EAGAIN when it is zero).
        let n = unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        n == 8
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// How a [`Handoff::block`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// It did not block: the woken threads had all run, or there was work.
    NotNeeded,
    /// A thread released the loop ([`Handoff::release`]).
    Released,
    /// The device has frames to receive.
    Rx,
    /// The bound passed.
    TimedOut,
}

/// Where a threaded loop blocks while a thread it woke has not run, and how
/// the application's threads wake it. One per loop.
#[derive(Debug)]
pub struct Handoff {
    /// The loop is blocked (or about to block) in [`Self::block`].
    blocked: AtomicBool,
    efd: EventFd,
    /// What the loop writes every poll, apart from `blocked`, which every
    /// application send reads.
    beat: LoopBeat,
}

/// The loop's polls and CPU ([`Handoff::beat`]), on a cache line of their
/// own: written every poll, they would otherwise take the line of
/// `blocked` away from an application thread on another core at each of
/// its sends.
#[derive(Debug)]
#[repr(align(64))]
struct LoopBeat {
    /// The loop's polls so far: a waiter that yielded and finds it
    /// unchanged knows the loop did not get the core.
    beats: AtomicU64,
    /// The CPU the loop last polled on (`NO_CPU` before it has).
    loop_cpu: AtomicU32,
}

impl Handoff {
    /// A hand-off with its eventfd.
    ///
    /// # Errors
    ///
    /// The eventfd's ([`EventFd::new`]).
    pub fn new() -> std::io::Result<Handoff> {
        Ok(Handoff {
            blocked: AtomicBool::new(false),
            efd: EventFd::new()?,
            beat: LoopBeat { beats: AtomicU64::new(0), loop_cpu: AtomicU32::new(NO_CPU) },
        })
    }

    /// On the loop's thread, once per poll: the loop ran, on this CPU. Plain
    /// stores (one writer), no read-modify-write; `sched_getcpu` reads the
    /// rseq area, no system call.
    #[inline]
    pub fn beat(&self) {
        let b = &self.beat;
        b.beats.store(b.beats.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        let cpu = current_cpu();
        if b.loop_cpu.load(Ordering::Relaxed) != cpu {
            b.loop_cpu.store(cpu, Ordering::Relaxed);
        }
    }

    /// The loop's polls so far.
    #[inline]
    pub fn beats(&self) -> u64 {
        self.beat.beats.load(Ordering::Relaxed)
    }

    /// Whether the calling thread runs on the CPU the loop last polled on:
    /// the two share a core.
    pub fn shares_loop_cpu(&self) -> bool {
        let cpu = current_cpu();
        cpu != NO_CPU && self.beat.loop_cpu.load(Ordering::Relaxed) == cpu
    }

    /// An application thread that needs the loop (it queued something to
    /// send, or it is about to wait for the loop's work): wakes the loop if
    /// it is blocked. A fence and one load when it is not. The fence orders
    /// what the caller stored before (the datagram it queued) before the look
    /// at `blocked`, as the loop raises `blocked` before it looks at its
    /// queues: one of the two sees the other.
    #[inline]
    pub fn release(&self) {
        fence(Ordering::SeqCst);
        if self.blocked.load(Ordering::Relaxed) {
            self.wake_loop();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_loop(&self) {
        if self.blocked.swap(false, Ordering::SeqCst) {
            self.efd.signal();
        }
    }

    /// Whether the loop is blocked in [`Self::block`] now.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::SeqCst)
    }

    /// On the loop's thread: blocks in `ppoll()` on `rx` (readable when the
    /// device has frames; `None`: a device that cannot say, waited for only
    /// by the bound) and on our eventfd, for at most `timeout`, unless, once
    /// `blocked` is raised, no thread on the loop's list is still unrun or
    /// `idle()` says there is work (the queue of socks to send from).
    pub(crate) fn block(&self, rx: Option<BorrowedFd<'_>>, timeout: Duration, idle: impl FnOnce() -> bool) -> Blocked {
        self.blocked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !listed_woken() || !idle() {
            self.blocked.store(false, Ordering::SeqCst);
            return Blocked::NotNeeded;
        }
        let mut fds = [
            libc::pollfd { fd: self.efd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: rx.map_or(-1, |f| f.as_raw_fd()), events: libc::POLLIN, revents: 0 },
        ];
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: ppoll(2) with a live array of two pollfds (a negative fd is
        // ignored), a live timespec and no signal mask; it writes only the
        // `revents` fields.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        self.blocked.store(false, Ordering::SeqCst);
        let released = fds[0].revents != 0 && self.efd.drain();
        if released {
            Blocked::Released
        } else if n > 0 && fds[1].revents != 0 {
            Blocked::Rx
        } else {
            // A timeout, or a signal (EINTR): the loop looks again either way.
            Blocked::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    /// Binds the test's thread to one CPU: the loop's check compares CPUs.
    fn stay_on_one_cpu() {
        let cpu = core_affinity::get_core_ids().expect("the CPUs we may use")[0];
        assert!(core_affinity::set_for_current(cpu));
    }

    /// A thread that a loop has woken and that has not run (it waits on a
    /// channel, not in a park): the loop lists it once however often it wakes
    /// it, blocks until the thread releases it, and lets it go once it ran.
    #[test]
    fn a_woken_thread_is_counted_once_and_the_loop_blocks_until_it_releases() {
        stay_on_one_cpu();
        let handoff = Arc::new(Handoff::new().unwrap());
        let (to_reader, reader_rx) = mpsc::channel::<()>();
        let (waiter_tx, waiter_rx) = mpsc::channel();
        let h = handoff.clone();
        let reader = std::thread::spawn(move || {
            let me = Waiter::current();
            waiter_tx.send(me.clone()).unwrap();
            reader_rx.recv().unwrap();
            // "Resumed", then a send: releases the blocked loop.
            me.resumed();
            h.release();
        });
        let w = waiter_rx.recv().unwrap();
        become_loop();
        // As if it slept on our CPU.
        w.cpu.store(current_cpu(), Ordering::Relaxed);
        w.wake();
        w.wake();
        assert_eq!(WOKEN_BY_LOOP.with(|l| l.borrow().as_ref().unwrap().len()), 1, "listed once");
        assert!(woken_not_run());
        let t0 = Instant::now();
        let blocker = {
            let h = handoff.clone();
            let (tx, rx) = mpsc::channel();
            // The loop blocks on its own thread; we release the reader once it has.
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !h.is_blocked() {
                        std::thread::yield_now();
                    }
                    to_reader.send(()).unwrap();
                    tx.send(()).unwrap();
                });
                let r = handoff.block(None, Duration::from_secs(30), || true);
                rx.recv().unwrap();
                r
            })
        };
        assert_eq!(blocker, Blocked::Released);
        assert!(t0.elapsed() < Duration::from_secs(30), "woken by the reader, not the bound");
        reader.join().unwrap();
        assert!(!woken_not_run(), "the thread ran: one resumption is enough");
        assert_eq!(handoff.block(None, Duration::from_secs(30), || true), Blocked::NotNeeded);
        WOKEN_BY_LOOP.with(|l| *l.borrow_mut() = None);
    }

    /// While blocked for a thread that has not run, the loop wakes for a
    /// frame (its rx descriptor readable), and for nothing but the bound
    /// otherwise; with work queued it does not block at all.
    #[test]
    fn the_loop_blocked_for_a_thread_wakes_for_a_frame_and_at_the_bound() {
        stay_on_one_cpu();
        let handoff = Handoff::new().unwrap();
        let rx = EventFd::new().unwrap();
        become_loop();
        let w =
            Arc::new(Waiter { thread: std::thread::current(), state: AtomicU8::new(0), cpu: AtomicU32::new(NO_CPU) });
        w.sleeping();
        w.wake();
        assert!(woken_not_run());
        assert_eq!(handoff.block(Some(rx.as_fd()), Duration::from_secs(30), || false), Blocked::NotNeeded, "work");
        let t0 = Instant::now();
        assert_eq!(handoff.block(Some(rx.as_fd()), Duration::from_millis(20), || true), Blocked::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(20));
        std::thread::scope(|s| {
            s.spawn(|| {
                while !handoff.is_blocked() {
                    std::thread::yield_now();
                }
                rx.signal();
            });
            assert_eq!(handoff.block(Some(rx.as_fd()), Duration::from_secs(30), || true), Blocked::Rx);
        });
        assert!(!handoff.is_blocked());
        assert!(woken_not_run(), "still not run");
        // A thread on another CPU than the loop's is not waited for.
        w.cpu.store(current_cpu().wrapping_add(1), Ordering::Relaxed);
        assert!(!woken_not_run());
        assert_eq!(w.state.load(Ordering::SeqCst), WOKEN, "let go of, still woken");
        w.resumed();
        WOKEN_BY_LOOP.with(|l| *l.borrow_mut() = None);
    }

    /// A release when the loop is not blocked writes nothing; a release while
    /// it is wakes it once.
    #[test]
    fn a_release_signals_only_a_blocked_loop() {
        let handoff = Handoff::new().unwrap();
        handoff.release();
        assert!(!handoff.efd.drain(), "no system call when not blocked");
        handoff.blocked.store(true, Ordering::SeqCst);
        handoff.release();
        handoff.release();
        assert!(!handoff.is_blocked());
        assert!(handoff.efd.drain());
        assert!(!handoff.efd.drain(), "signalled once");
    }
}
