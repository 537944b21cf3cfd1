//! `epoll`: which of many descriptors are ready, without looking at each
//! (`fs/eventpoll.c`).
//!
//! `poll` ([`crate::Stack::poll_fds`]) tests every descriptor it is given on
//! every call; a server with ten thousand connections, most of them idle,
//! would test ten thousand per poll of the loop. An epoll instance
//! ([`EventPoll`]) instead keeps an *interest list* (the descriptors added
//! with `epoll_ctl`, each with the events it asks for and a user word) and a
//! *ready list*. Each descriptor it watches has a callback on its sock's wait
//! queue ([`crate::sock::WaitQueue`]), as `ep_poll_callback` sits on
//! `sk_wq`: every wake-up the loop raises for that sock (`sk_data_ready`,
//! `sk_write_space`, `sk_state_change`, `sk_error_report`) puts the
//! descriptor on the ready list, once. `epoll_wait` then tests only what is
//! on the ready list (`ep_send_events`): a descriptor still ready is
//! reported, and, level-triggered, put back on the list for the next call,
//! as Linux puts it back; one no longer ready leaves the list.
//!
//! What this copies from Linux, and what not:
//!
//! * events: `EPOLLIN`, `EPOLLOUT`, `EPOLLRDHUP`, `EPOLLERR` and `EPOLLHUP`
//!   (the last two always reported, whether asked for or not), with the
//!   flags `EPOLLET` (edge-triggered: reported once per wake-up) and
//!   `EPOLLONESHOT` (reported once, then disabled until `EPOLL_CTL_MOD`);
//!   the same values as Linux's (`include/uapi/linux/eventpoll.h`);
//! * `epoll_ctl` errors as `epoll_ctl(2)`: `EEXIST` to add a descriptor
//!   twice, `ENOENT` to change or remove one not added, `EBADF` for a
//!   descriptor not open; and, where Linux accepts them, `EINVAL` for the
//!   bits this module does not implement (`EPOLLPRI`, `EPOLLRDNORM`,
//!   `EPOLLEXCLUSIVE`, `EPOLLWAKEUP`, …): refused rather than ignored;
//! * closing a descriptor removes it from every instance
//!   (`eventpoll_release`);
//! * an instance is not a descriptor of the fd table but an [`EpollFd`] of
//!   its own, closed with [`crate::Stack::epoll_close`]; instances cannot
//!   watch each other. Epoll is for the run-to-completion stack (the
//!   thread that owns the [`crate::Stack`]); a threaded stack's readers
//!   block per socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::errno::Errno;
use crate::fdtable::Fd;
use crate::sock::{Sock, WakeCallback, WAKE_ANY};

/// Data to read, a connection to accept, or the end of the stream.
pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
/// Room to write.
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
/// Nothing more will be received (`RCV_SHUTDOWN`): the peer's FIN came,
/// `shutdown(SHUT_RD)` or `close()` here, or the connection ended
/// (`tcp_done`: a RST, a refused or timed-out connect): reads reach the end.
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
/// An error is pending (always reported).
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;
/// Shut down both ways, or a stream socket in CLOSE, a fresh one included
/// (`tcp_poll`; always reported).
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
/// Edge-triggered: reported once per wake-up, not while it stays ready.
pub const EPOLLET: u32 = libc::EPOLLET as u32;
/// Reported once, then disabled until `EPOLL_CTL_MOD` arms it again.
pub const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// The events a sock can report.
const EP_EVENTS: u32 = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLERR | EPOLLHUP;
/// Everything `epoll_ctl` takes here.
const EP_ACCEPTED: u32 = EP_EVENTS | EPOLLET | EPOLLONESHOT;

/// One event (`struct epoll_event`): what is ready, and the word given with
/// `epoll_ctl` for that descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpollEvent {
    /// The events (`EPOLLIN`, …): asked for with `epoll_ctl`, ready in what
    /// `epoll_wait` fills in.
    pub events: u32,
    /// The caller's word, handed back as given (`epoll_data_t`).
    pub data: u64,
}

impl EpollEvent {
    /// Asks for `events` on a descriptor, with `data` handed back.
    pub fn new(events: u32, data: u64) -> EpollEvent {
        EpollEvent { events, data }
    }
}

/// What `epoll_ctl` does (`EPOLL_CTL_ADD`, `EPOLL_CTL_MOD`, `EPOLL_CTL_DEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpollOp {
    /// Watch a descriptor.
    Add,
    /// Change what a watched descriptor asks for (and re-arm a one-shot).
    Mod,
    /// Stop watching it.
    Del,
}

/// An epoll instance of a [`crate::Stack`] (`epoll_create1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EpollFd(pub u32);

/// Descriptors whose sock was woken and not yet looked at (`rdllist`): each
/// at most once, in the order they were woken, with the id of the item that
/// queued it (a descriptor removed and added again while on the list is a
/// new item: the old entry is passed over, as Linux unlinks it).
#[derive(Default)]
struct ReadyList {
    fds: Mutex<Vec<(Fd, u64)>>,
    /// Whether `fds` may hold any: read without the lock, so that an
    /// `epoll_wait` that finds nothing costs one load.
    nonempty: AtomicBool,
}

impl ReadyList {
    fn push(&self, fd: Fd, id: u64) {
        let mut fds = self.fds.lock().unwrap_or_else(|e| e.into_inner());
        fds.push((fd, id));
        self.nonempty.store(true, Ordering::Release);
    }

    /// Everything on the list, which is left empty; `spare` (emptied) takes its place.
    fn take(&self, spare: &mut Vec<(Fd, u64)>) {
        spare.clear();
        if !self.nonempty.load(Ordering::Acquire) {
            return;
        }
        let mut fds = self.fds.lock().unwrap_or_else(|e| e.into_inner());
        self.nonempty.store(false, Ordering::Relaxed);
        std::mem::swap(&mut *fds, spare);
    }
}

/// The callback on a watched sock's wait queue (`ep_poll_callback`).
struct EpHook {
    ready: Arc<ReadyList>,
    fd: Fd,
    /// This item's number in its instance, never reused.
    id: u64,
    /// The events asked for: a write-space wake-up does not queue a
    /// descriptor that asked only for input. 0 while a one-shot is spent.
    events: AtomicU32,
    /// On the ready list now (`ep_is_linked`).
    queued: AtomicBool,
}

impl WakeCallback for EpHook {
    fn wake(&self, key: u32) {
        let events = self.events.load(Ordering::Relaxed);
        // A disabled one-shot, or a wake-up for events not asked for (as
        // `ep_poll_callback` filters on the key).
        if events & EP_EVENTS == 0 || (key != WAKE_ANY && key & events == 0) {
            return;
        }
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.push(self.fd, self.id);
        }
    }
}

/// A watched descriptor (`struct epitem`).
struct EpItem {
    sock: Arc<Sock>,
    /// The events and flags asked for.
    events: u32,
    data: u64,
    hook: Arc<EpHook>,
}

impl EpItem {
    fn callback(&self) -> Arc<dyn WakeCallback> {
        self.hook.clone()
    }
}

/// What is ready on `sock` now (`sock_poll` → `udp_poll`, `tcp_poll`), as
/// event bits; the same bits `poll(2)` reports for the first four.
pub(crate) fn sock_poll(sock: &Sock) -> u32 {
    let mut r = 0;
    if sock.poll_in() {
        r |= EPOLLIN;
    }
    if sock.writable() {
        r |= EPOLLOUT;
    }
    if sock.has_err() {
        r |= EPOLLERR;
    }
    if sock.hung_up() {
        r |= EPOLLHUP;
    }
    if sock.peer_shut() {
        r |= EPOLLRDHUP;
    }
    r
}

/// One epoll instance (`struct eventpoll`): the interest list and the ready list.
#[derive(Default)]
pub struct EventPoll {
    items: HashMap<Fd, EpItem>,
    ready: Arc<ReadyList>,
    /// The ready list as last taken, kept for its allocation.
    spare: Vec<(Fd, u64)>,
    /// Level-triggered descriptors reported by the last call, kept for the
    /// allocation: they go back on the list after what did not fit.
    requeue: Vec<(Fd, u64)>,
    /// The id of the next item added.
    next_id: u64,
}

impl EventPoll {
    /// `EPOLL_CTL_ADD`, `EPOLL_CTL_MOD`, `EPOLL_CTL_DEL` for `fd`, whose
    /// sock is `sock`. A descriptor ready when it is added or changed goes
    /// on the ready list at once (`ep_insert`, `ep_modify`).
    ///
    /// # Errors
    ///
    /// `EEXIST` to add `fd` twice; `ENOENT` to change or remove an `fd` not
    /// added; `EINVAL` for events other than those this module knows.
    pub(crate) fn ctl(&mut self, op: EpollOp, fd: Fd, sock: &Arc<Sock>, event: EpollEvent) -> Result<(), Errno> {
        if op != EpollOp::Del && event.events & !EP_ACCEPTED != 0 {
            return Err(Errno::EINVAL);
        }
        // EPOLLERR and EPOLLHUP are always reported (`ep_insert`, `ep_modify`).
        let events = event.events | EPOLLERR | EPOLLHUP;
        match op {
            EpollOp::Add => {
                if self.items.contains_key(&fd) {
                    return Err(Errno::EEXIST);
                }
                self.next_id += 1;
                let hook = Arc::new(EpHook {
                    ready: self.ready.clone(),
                    fd,
                    id: self.next_id,
                    events: AtomicU32::new(events),
                    queued: AtomicBool::new(false),
                });
                let item = EpItem { sock: sock.clone(), events, data: event.data, hook };
                sock.wq.add_callback(item.callback());
                self.items.insert(fd, item);
            }
            EpollOp::Mod => {
                let item = self.items.get_mut(&fd).ok_or(Errno::ENOENT)?;
                item.events = events;
                item.data = event.data;
                item.hook.events.store(events, Ordering::Relaxed);
            }
            EpollOp::Del => {
                let item = self.items.remove(&fd).ok_or(Errno::ENOENT)?;
                item.sock.wq.remove_callback(&item.callback());
                return Ok(());
            }
        }
        // Ready already: on the list now, not at the next wake-up.
        if let Some(item) = self.items.get(&fd) {
            if sock_poll(&item.sock) & item.events != 0 {
                item.hook.wake(WAKE_ANY);
            }
        }
        Ok(())
    }

    /// Forgets `fd` if it is watched (its descriptor was closed: `eventpoll_release`).
    pub(crate) fn forget(&mut self, fd: Fd) {
        if let Some(item) = self.items.remove(&fd) {
            item.sock.wq.remove_callback(&item.callback());
        }
    }

    /// Fills `events` from the ready list (`ep_send_events`): each
    /// descriptor on it that is still ready for what it asked, at most
    /// `events.len()`; returns how many. Level-triggered descriptors that
    /// were reported go back on the list (so the next call tests them
    /// again), one-shot ones are disabled, and what did not fit stays for
    /// the next call.
    pub(crate) fn send_events(&mut self, events: &mut [EpollEvent]) -> usize {
        let mut taken = std::mem::take(&mut self.spare);
        self.ready.take(&mut taken);
        if taken.is_empty() {
            self.spare = taken;
            return 0;
        }
        let mut n = 0;
        for &(fd, id) in &taken {
            // Closed or removed since it was woken (and perhaps added again: a new item).
            let Some(item) = self.items.get_mut(&fd).filter(|i| i.hook.id == id) else { continue };
            if n == events.len() {
                // No room: it waits for the next call, still queued, ahead of
                // the level-triggered ones reported now (`ep_send_events`
                // splices the rest back at the head), so all take turns.
                self.ready.push(fd, id);
                continue;
            }
            // Off the list before the look, so that a wake-up from now on queues it again.
            item.hook.queued.store(false, Ordering::SeqCst);
            let revents = sock_poll(&item.sock) & item.events;
            if revents == 0 {
                continue;
            }
            events[n] = EpollEvent { events: revents, data: item.data };
            n += 1;
            if item.events & EPOLLONESHOT != 0 {
                item.events &= !EP_EVENTS;
                item.hook.events.store(item.events, Ordering::Relaxed);
            } else if item.events & EPOLLET == 0 && !item.hook.queued.swap(true, Ordering::AcqRel) {
                // Level-triggered: looked at again next time, at the tail.
                self.requeue.push((fd, id));
            }
        }
        for &(fd, id) in &self.requeue {
            self.ready.push(fd, id);
        }
        self.requeue.clear();
        self.spare = taken;
        n
    }

    /// Stops watching everything (the instance is closed).
    fn release(&mut self) {
        for (_, item) in self.items.drain() {
            item.sock.wq.remove_callback(&item.callback());
        }
    }
}

/// A stack's epoll instances, by [`EpollFd`].
#[derive(Default)]
pub struct EpollTable {
    instances: Vec<Option<EventPoll>>,
}

impl EpollTable {
    /// A new instance, in the lowest free slot (`epoll_create1`).
    pub(crate) fn create(&mut self) -> EpollFd {
        let slot = self.instances.iter().position(Option::is_none).unwrap_or_else(|| {
            self.instances.push(None);
            self.instances.len() - 1
        });
        self.instances[slot] = Some(EventPoll::default());
        EpollFd(slot as u32)
    }

    /// The instance `ep`.
    ///
    /// # Errors
    ///
    /// `EBADF` when `ep` is not open.
    pub(crate) fn get_mut(&mut self, ep: EpollFd) -> Result<&mut EventPoll, Errno> {
        self.instances.get_mut(ep.0 as usize).and_then(Option::as_mut).ok_or(Errno::EBADF)
    }

    /// Closes `ep`: every descriptor it watched is let go.
    ///
    /// # Errors
    ///
    /// `EBADF` when `ep` is not open.
    pub(crate) fn close(&mut self, ep: EpollFd) -> Result<(), Errno> {
        let mut e = self.instances.get_mut(ep.0 as usize).and_then(Option::take).ok_or(Errno::EBADF)?;
        e.release();
        Ok(())
    }

    /// `fd` was closed: no instance watches it any more.
    pub(crate) fn forget(&mut self, fd: Fd) {
        for e in self.instances.iter_mut().flatten() {
            e.forget(fd);
        }
    }
}

impl Drop for EpollTable {
    fn drop(&mut self) {
        for e in self.instances.iter_mut().flatten() {
            e.release();
        }
    }
}
