//! The file descriptor table (`struct files_struct`, fs/file.c).
//!
//! `socket()` takes the lowest free descriptor, as `alloc_fd` does with its
//! open-fds bitmap; past the limit (`ulimit -n`, 1024 by default) it fails
//! with `EMFILE`. `close()` frees the number. These descriptors are ours: no
//! kernel descriptor is used per socket; one AF_XDP socket serves them all.
//!
//! There is one table per stack, changed only by its owner (the thread that
//! runs the loop: `socket()` and `close()` are carried there in threaded
//! mode). Application threads look descriptors up through a published read
//! view ([`FdView`]), as Linux's `fdget` reads the table under RCU while
//! `alloc_fd`/`close_fd` change it under `files->file_lock`: the owner
//! updates the view on every change, readers never see a half-made entry.

use std::fmt;
use std::sync::{Arc, RwLock};

use crate::errno::Errno;
use crate::sock::Sock;

/// A descriptor number, as `socket()` returns it: a small non-negative
/// integer, lowest free first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fd(pub i32);

impl Fd {
    /// The number.
    pub fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Fd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The read side of an [`FdTable`], for threads other than its owner.
#[derive(Default)]
pub struct FdView {
    files: RwLock<Vec<Option<Arc<Sock>>>>,
}

impl FdView {
    /// The sock behind `fd`.
    ///
    /// # Errors
    ///
    /// `EBADF` when `fd` is not open.
    pub fn get(&self, fd: Fd) -> Result<Arc<Sock>, Errno> {
        let files = self.files.read().unwrap_or_else(|e| e.into_inner());
        usize::try_from(fd.0).ok().and_then(|i| files.get(i)).and_then(Option::clone).ok_or(Errno::EBADF)
    }

    /// Every open descriptor's sock (to wake them all when the loop stops).
    pub fn socks(&self) -> Vec<Arc<Sock>> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).iter().flatten().cloned().collect()
    }

    fn publish(&self, fd: usize, sock: Option<Arc<Sock>>) {
        let mut files = self.files.write().unwrap_or_else(|e| e.into_inner());
        if fd >= files.len() {
            files.resize_with(fd + 1, || None);
        }
        files[fd] = sock;
    }
}

/// Linux's default `RLIMIT_NOFILE` soft limit.
pub const DEFAULT_MAX_FDS: usize = 1024;

/// The descriptor table of one stack.
pub struct FdTable {
    files: Vec<Option<Arc<Sock>>>,
    /// The published read view, once another thread needs one.
    view: Option<Arc<FdView>>,
    /// One bit per descriptor, set when open (`open_fds`).
    open_fds: Vec<u64>,
    max_fds: usize,
    /// Descriptors below this are all open (`next_fd`).
    next_fd: usize,
    open: usize,
}

impl FdTable {
    /// A table of at most `max_fds` descriptors (`RLIMIT_NOFILE`).
    pub fn new(max_fds: usize) -> FdTable {
        FdTable { files: Vec::new(), view: None, open_fds: Vec::new(), max_fds, next_fd: 0, open: 0 }
    }

    /// The read view for other threads, made on first call and kept current
    /// from then on. It shows only socks that other threads may read
    /// (made for them: `Sock::shared`); the others stay with the owner.
    pub fn share(&mut self) -> Arc<FdView> {
        if let Some(v) = &self.view {
            return v.clone();
        }
        let view = Arc::new(FdView::default());
        for (fd, sock) in self.iter().filter(|(_, s)| s.shared()) {
            view.publish(fd.0 as usize, Some(sock.clone()));
        }
        self.view = Some(view.clone());
        view
    }

    /// Installs `sock` at the lowest free descriptor (`alloc_fd` + `fd_install`).
    ///
    /// # Errors
    ///
    /// `EMFILE` ("Too many open files") when every descriptor below the
    /// limit is open.
    pub fn alloc(&mut self, sock: Arc<Sock>) -> Result<Fd, Errno> {
        let fd = self.find_next_zero_bit(self.next_fd).ok_or(Errno::EMFILE)?;
        if fd >= self.files.len() {
            self.files.resize_with(fd + 1, || None);
        }
        let word = fd / 64;
        if word >= self.open_fds.len() {
            self.open_fds.resize(word + 1, 0);
        }
        self.open_fds[word] |= 1 << (fd % 64);
        if let Some(v) = self.view.as_ref().filter(|_| sock.shared()) {
            v.publish(fd, Some(sock.clone()));
        }
        self.files[fd] = Some(sock);
        self.next_fd = fd + 1;
        self.open += 1;
        Ok(Fd(fd as i32))
    }

    fn find_next_zero_bit(&self, from: usize) -> Option<usize> {
        let mut fd = from;
        while fd < self.max_fds {
            let word = fd / 64;
            let bits = self.open_fds.get(word).copied().unwrap_or(0) | ((1u64 << (fd % 64)) - 1);
            if bits != u64::MAX {
                let found = word * 64 + bits.trailing_ones() as usize;
                return (found < self.max_fds).then_some(found);
            }
            fd = (word + 1) * 64;
        }
        None
    }

    /// The sock behind `fd`.
    ///
    /// # Errors
    ///
    /// `EBADF` when `fd` is not open.
    #[inline]
    pub fn get(&self, fd: Fd) -> Result<&Arc<Sock>, Errno> {
        usize::try_from(fd.0).ok().and_then(|i| self.files.get(i)).and_then(Option::as_ref).ok_or(Errno::EBADF)
    }

    /// Frees the descriptor and returns its sock (`close_fd`).
    ///
    /// # Errors
    ///
    /// `EBADF` when `fd` is not open.
    pub fn close(&mut self, fd: Fd) -> Result<Arc<Sock>, Errno> {
        let i = usize::try_from(fd.0).map_err(|_| Errno::EBADF)?;
        let sock = self.files.get_mut(i).and_then(Option::take).ok_or(Errno::EBADF)?;
        if let Some(v) = &self.view {
            v.publish(i, None);
        }
        self.open_fds[i / 64] &= !(1 << (i % 64));
        self.next_fd = self.next_fd.min(i);
        self.open -= 1;
        Ok(sock)
    }

    /// Descriptors open now.
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// The limit.
    pub fn max_fds(&self) -> usize {
        self.max_fds
    }

    /// Every open descriptor and its sock, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (Fd, &Arc<Sock>)> {
        self.files.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (Fd(i as i32), s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock::SockType;

    fn sock() -> Arc<Sock> {
        Arc::new(Sock::new(SockType::Dgram, 4096, 4096, 2048))
    }

    #[test]
    fn lowest_free_descriptor_first() {
        let mut t = FdTable::new(DEFAULT_MAX_FDS);
        for want in 0..200 {
            assert_eq!(t.alloc(sock()), Ok(Fd(want)));
        }
        t.close(Fd(5)).unwrap();
        t.close(Fd(130)).unwrap();
        t.close(Fd(64)).unwrap();
        assert_eq!(t.alloc(sock()), Ok(Fd(5)));
        assert_eq!(t.alloc(sock()), Ok(Fd(64)));
        assert_eq!(t.alloc(sock()), Ok(Fd(130)));
        assert_eq!(t.alloc(sock()), Ok(Fd(200)));
    }

    #[test]
    fn emfile_past_the_limit_and_after_close_again_ok() {
        let mut t = FdTable::new(70);
        for want in 0..70 {
            assert_eq!(t.alloc(sock()), Ok(Fd(want)));
        }
        let e = t.alloc(sock()).unwrap_err();
        assert_eq!(e, Errno::EMFILE);
        assert_eq!(e.to_string(), "Too many open files");
        t.close(Fd(33)).unwrap();
        assert_eq!(t.alloc(sock()), Ok(Fd(33)));
        assert_eq!(t.open_count(), 70);
    }

    #[test]
    fn bad_descriptors() {
        let mut t = FdTable::new(8);
        assert_eq!(t.get(Fd(0)).err(), Some(Errno::EBADF));
        assert_eq!(t.close(Fd(-1)).err(), Some(Errno::EBADF));
        let fd = t.alloc(sock()).unwrap();
        t.close(fd).unwrap();
        assert_eq!(t.close(fd).err(), Some(Errno::EBADF));
    }

    #[test]
    fn the_view_follows_the_table() {
        let mut t = FdTable::new(8);
        let a = t.alloc(sock()).unwrap();
        let view = t.share();
        assert!(Arc::ptr_eq(&view.get(a).unwrap(), t.get(a).unwrap()), "made with what was open");
        let b = t.alloc(sock()).unwrap();
        assert!(Arc::ptr_eq(&view.get(b).unwrap(), t.get(b).unwrap()));
        t.close(a).unwrap();
        assert_eq!(view.get(a).err(), Some(Errno::EBADF));
        assert_eq!(view.get(Fd(-3)).err(), Some(Errno::EBADF));
        assert_eq!(view.socks().len(), 1);
        assert!(Arc::ptr_eq(&t.share(), &view), "one view per table");
    }
}
