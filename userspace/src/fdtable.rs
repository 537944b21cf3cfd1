//! The file descriptor table (`struct files_struct`, fs/file.c).
//!
//! `socket()` takes the lowest free descriptor, as `alloc_fd` does with its
//! open-fds bitmap; past the limit (`ulimit -n`, 1024 by default) it fails
//! with `EMFILE`. `close()` frees the number. These descriptors are ours: no
//! kernel descriptor is used per socket; one AF_XDP socket serves them all.

use std::sync::Arc;

use crate::errno::Errno;
use crate::sock::Sock;

/// A descriptor number, as `socket()` returns it.
pub type Fd = i32;

/// Linux's default `RLIMIT_NOFILE` soft limit.
pub const DEFAULT_MAX_FDS: usize = 1024;

pub struct FdTable {
    files: Vec<Option<Arc<Sock>>>,
    /// One bit per descriptor, set when open (`open_fds`).
    open_fds: Vec<u64>,
    max_fds: usize,
    /// Descriptors below this are all open (`next_fd`).
    next_fd: usize,
    open: usize,
}

impl FdTable {
    pub fn new(max_fds: usize) -> FdTable {
        FdTable { files: Vec::new(), open_fds: Vec::new(), max_fds, next_fd: 0, open: 0 }
    }

    /// Installs `sock` at the lowest free descriptor.
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
        self.files[fd] = Some(sock);
        self.next_fd = fd + 1;
        self.open += 1;
        Ok(fd as Fd)
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

    pub fn get(&self, fd: Fd) -> Result<&Arc<Sock>, Errno> {
        usize::try_from(fd).ok().and_then(|i| self.files.get(i)).and_then(Option::as_ref).ok_or(Errno::EBADF)
    }

    /// Frees the descriptor and returns its sock.
    pub fn close(&mut self, fd: Fd) -> Result<Arc<Sock>, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let sock = self.files.get_mut(i).and_then(Option::take).ok_or(Errno::EBADF)?;
        self.open_fds[i / 64] &= !(1 << (i % 64));
        self.next_fd = self.next_fd.min(i);
        self.open -= 1;
        Ok(sock)
    }

    pub fn open_count(&self) -> usize {
        self.open
    }

    pub fn max_fds(&self) -> usize {
        self.max_fds
    }

    pub fn iter(&self) -> impl Iterator<Item = (Fd, &Arc<Sock>)> {
        self.files.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i as Fd, s)))
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
            assert_eq!(t.alloc(sock()), Ok(want));
        }
        t.close(5).unwrap();
        t.close(130).unwrap();
        t.close(64).unwrap();
        assert_eq!(t.alloc(sock()), Ok(5));
        assert_eq!(t.alloc(sock()), Ok(64));
        assert_eq!(t.alloc(sock()), Ok(130));
        assert_eq!(t.alloc(sock()), Ok(200));
    }

    #[test]
    fn emfile_past_the_limit_and_after_close_again_ok() {
        let mut t = FdTable::new(70);
        for want in 0..70 {
            assert_eq!(t.alloc(sock()), Ok(want));
        }
        let e = t.alloc(sock()).unwrap_err();
        assert_eq!(e, Errno::EMFILE);
        assert_eq!(e.to_string(), "Too many open files");
        t.close(33).unwrap();
        assert_eq!(t.alloc(sock()), Ok(33));
        assert_eq!(t.open_count(), 70);
    }

    #[test]
    fn bad_descriptors() {
        let mut t = FdTable::new(8);
        assert_eq!(t.get(0).err(), Some(Errno::EBADF));
        assert_eq!(t.close(-1).err(), Some(Errno::EBADF));
        let fd = t.alloc(sock()).unwrap();
        t.close(fd).unwrap();
        assert_eq!(t.close(fd).err(), Some(Errno::EBADF));
    }
}
