//! The few raw `bpf(2)` commands aya 0.14 does not offer publicly: opening a
//! link by id, reading its target interface, `BPF_LINK_DETACH`, which
//! `--replace` needs to remove another process's link, and
//! `BPF_MAP_LOOKUP_BATCH`, which reads the guard's table of sources in a few
//! calls instead of two per entry. Layouts from `include/uapi/linux/bpf.h`.
//!
//! Each command has its own typed, safe function; the one `unsafe fn`,
//! `sys_bpf`, is private and each caller states why its attribute is sound.
#![allow(unsafe_code)] // bpf(2), each call with a SAFETY line

use std::{
    io,
    os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

use aya::programs::links::LinkType;

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_LINK_TYPE_XDP: u32 = 6;

/// `union bpf_attr` for `BPF_LINK_GET_FD_BY_ID`.
#[repr(C)]
struct GetFdById {
    link_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
struct GetInfo {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_link_info` up to `xdp.ifindex`. The kernel copies
/// at most `info_len` bytes, so a prefix is enough.
#[repr(C)]
#[derive(Default)]
struct LinkInfoXdp {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    ifindex: u32,
    _pad2: u32,
}

/// `union bpf_attr` for `BPF_MAP_*_BATCH` (`struct { ... } batch`).
#[repr(C)]
struct MapBatch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_LINK_DETACH`.
#[repr(C)]
struct LinkDetach {
    link_fd: u32,
}

/// bpf(2) with `attr` as the command's attribute.
///
/// # Safety
/// `T` must be a `repr(C)` prefix of `union bpf_attr` as `cmd` reads it, and
/// every pointer it holds (as a `u64`) must point to a live buffer, writable for
/// the length the attribute gives it, for the duration of the call. The kernel
/// then reads and writes only inside `attr` and those buffers.
///
/// # Errors
/// The negated errno the kernel returns.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is live and exclusively borrowed, and its exact size is
    // passed; the caller vouches for its layout and the pointers inside it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A bpf_link opened by id.
#[derive(Debug)]
pub struct LinkFd(OwnedFd);

impl LinkFd {
    /// The link's descriptor.
    pub fn as_fd_ref(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// `BPF_LINK_GET_FD_BY_ID`: `Ok(None)` when the link is gone.
fn link_fd_by_id(link_id: u32) -> io::Result<Option<OwnedFd>> {
    let mut attr = GetFdById { link_id, next_id: 0, open_flags: 0 };
    // SAFETY: `GetFdById` is the command's attribute layout and holds no pointers.
    match unsafe { sys_bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) } {
        // SAFETY: BPF_LINK_GET_FD_BY_ID returned a new descriptor that nothing else owns.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a link: its type, program and (for XDP) interface.
fn link_info(fd: BorrowedFd<'_>) -> io::Result<LinkInfoXdp> {
    let mut link = LinkInfoXdp::default();
    let mut attr = GetInfo {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<LinkInfoXdp>() as u32,
        info: (&mut link as *mut LinkInfoXdp) as u64,
    };
    // SAFETY: `GetInfo` is the command's attribute layout; `info` points to
    // `link`, live and writable for `info_len` bytes until the call returns.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok(link)
}

/// The XDP bpf_links on `ifindex` (in this namespace) that hold `prog_id`.
///
/// # Errors
/// `bpf(2)` errors other than a link vanishing while listed.
pub fn xdp_links(ifindex: u32, prog_id: u32) -> io::Result<Vec<LinkFd>> {
    let mut found = Vec::new();
    for info in aya::programs::loaded_links() {
        let Ok(info) = info else { continue };
        if info.program_id() != prog_id || !matches!(info.link_type(), Ok(LinkType::Xdp)) {
            continue;
        }
        // Gone since it was listed.
        let Some(fd) = link_fd_by_id(info.id())? else { continue };
        let link = link_info(fd.as_fd())?;
        // Interface indices are per namespace; the program id narrows it to
        // the link that holds the program netlink reported on our interface.
        if link.link_type == BPF_LINK_TYPE_XDP && link.ifindex == ifindex && link.prog_id == prog_id {
            found.push(LinkFd(fd));
        }
    }
    Ok(found)
}

/// Whether an XDP bpf_link holds program `program_id`.
///
/// # Errors
/// None today (links that vanish while listed are skipped); kept fallible for
/// the listing's own errors.
pub fn is_xdp_link(program_id: u32) -> io::Result<bool> {
    for info in aya::programs::loaded_links() {
        // A link can vanish between listing its id and opening it: skip those.
        let Ok(info) = info else { continue };
        if info.program_id() == program_id && matches!(info.link_type(), Ok(LinkType::Xdp)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The id of the XDP bpf_link that holds program `program_id`, if one does.
///
/// # Errors
/// None today (links that vanish while listed are skipped); kept fallible as
/// [`is_xdp_link`] is.
pub fn xdp_link_id(program_id: u32) -> io::Result<Option<u32>> {
    for info in aya::programs::loaded_links() {
        let Ok(info) = info else { continue };
        if info.program_id() == program_id && matches!(info.link_type(), Ok(LinkType::Xdp)) {
            return Ok(Some(info.id()));
        }
    }
    Ok(None)
}

/// The interface the XDP bpf_link `link_id` attaches its program to now:
/// `Ok(Some(ifindex))` while attached, `Ok(Some(0))` once detached (another
/// process's `BPF_LINK_DETACH`, as `--replace` does, or the interface
/// removed: the kernel clears the link's device, `bpf_xdp_link_fill_link_info`
/// in net/core/dev.c), `Ok(None)` when the link itself is gone.
/// Three system calls: open by id, `BPF_OBJ_GET_INFO_BY_FD`, close.
///
/// # Errors
/// `bpf(2)` failures other than the link being gone (`EPERM` without `CAP_SYS_ADMIN`).
pub fn xdp_link_ifindex(link_id: u32) -> io::Result<Option<u32>> {
    let Some(fd) = link_fd_by_id(link_id)? else { return Ok(None) };
    let info = link_info(fd.as_fd())?;
    Ok(Some(if info.link_type == BPF_LINK_TYPE_XDP { info.ifindex } else { 0 }))
}

/// A process that holds a bpf_link open: its pid and name (`/proc/PID/comm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkHolder {
    /// The process.
    pub pid: u32,
    /// Its name, as `ps` shows it.
    pub comm: String,
}

/// The processes holding a bpf_link of program `prog_id` open, found as
/// `bpftool link show` finds them: every descriptor that reads
/// `anon_inode:bpf_link` in `/proc/PID/fd`, and its `prog_id` in
/// `/proc/PID/fdinfo/FD` (`bpf_link_show_fdinfo`, kernel/bpf/syscall.c).
/// Processes that end while looked at are skipped; those of other PID
/// namespaces are not seen.
pub fn link_holders(prog_id: u32) -> Vec<LinkHolder> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == "anon_inode:bpf_link")
                && std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name()))
                    .is_ok_and(|info| fdinfo_prog_id(&info) == Some(prog_id))
        });
        if holds {
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default().trim().to_string();
            out.push(LinkHolder { pid, comm });
        }
    }
    out
}

/// The `prog_id:` line of a bpf_link's fdinfo.
fn fdinfo_prog_id(fdinfo: &str) -> Option<u32> {
    fdinfo.lines().find_map(|l| l.strip_prefix("prog_id:")).and_then(|v| v.trim().parse().ok())
}

/// `BPF_LINK_DETACH`: the program leaves the interface; the link stays, defunct,
/// until its owner closes it.
///
/// # Errors
/// The kernel's refusal (`EPERM` without `CAP_NET_ADMIN`).
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkDetach { link_fd: link.as_raw_fd() as u32 };
    // SAFETY: `LinkDetach` is the command's attribute layout and holds no pointers.
    unsafe { sys_bpf(BPF_LINK_DETACH, &mut attr) }.map(drop)
}

/// Entries asked for per `BPF_MAP_LOOKUP_BATCH` call. A hash map's batch
/// must hold at least the largest bucket (`ENOSPC` otherwise); thousands do.
const BATCH_ENTRIES: usize = 4096;

/// Every entry of a (non-per-CPU) hash map, `BPF_MAP_LOOKUP_BATCH` after
/// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6), [`BATCH_ENTRIES`] at a time: a map of
/// n entries costs n / 4096 + 2 system calls (one more asks the map's key and
/// value sizes, which must be those of `K` and `V`, as aya's typed maps check).
///
/// Entries that come and go while the map is read may be missed or seen
/// twice, as with any walk of a live hash map.
///
/// # Errors
/// `InvalidInput` when `K` or `V` is not the size of the map's key or value;
/// the kernel's refusal (`EINVAL` for a map type without batch support).
pub(crate) fn hash_lookup_batch<K: aya::Pod, V: aya::Pod>(map: &aya::maps::MapData) -> io::Result<Vec<(K, V)>> {
    let info = map.info().map_err(io::Error::other)?;
    if info.key_size() as usize != std::mem::size_of::<K>() || info.value_size() as usize != std::mem::size_of::<V>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "map has {}-byte keys and {}-byte values, not {} and {}",
                info.key_size(),
                info.value_size(),
                std::mem::size_of::<K>(),
                std::mem::size_of::<V>()
            ),
        ));
    }
    let map = map.fd().as_fd();
    let mut out = Vec::new();
    let mut keys: Vec<K> = Vec::with_capacity(BATCH_ENTRIES);
    let mut values: Vec<V> = Vec::with_capacity(BATCH_ENTRIES);
    // The hash map's cursor is a bucket index (u32); a u64 holds it.
    let mut in_batch: u64 = 0;
    let mut out_batch: u64 = 0;
    let mut first = true;
    loop {
        let mut attr = MapBatch {
            in_batch: if first { 0 } else { (&mut in_batch as *mut u64) as u64 },
            out_batch: (&mut out_batch as *mut u64) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: BATCH_ENTRIES as u32,
            map_fd: map.as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `MapBatch` is the command's attribute layout; `in_batch` and
        // `out_batch` point to live u64s, `keys` and `values` to buffers with
        // room for `count` entries of the map's key and value sizes (checked
        // above), all live until the call returns.
        let done = match unsafe { sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) } {
            Ok(_) => false,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
            Err(e) => return Err(e),
        };
        let got = (attr.count as usize).min(BATCH_ENTRIES);
        // SAFETY: the kernel wrote `got` entries into each buffer (at most
        // their capacity), and `K`, `V` are `Pod`: any bytes are valid values.
        unsafe {
            keys.set_len(got);
            values.set_len(got);
        }
        out.extend(keys.drain(..).zip(values.drain(..)));
        if done {
            return Ok(out);
        }
        in_batch = out_batch;
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_of_a_link_is_read_from_its_fdinfo() {
        // As Linux 6.x prints an XDP link (kernel/bpf/syscall.c, net/core/dev.c).
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1063\nlink_type:\txdp\nlink_id:\t7\n\
                    prog_tag:\t4e2c1a6d9f0f9c41\nprog_id:\t42\nifindex:\t3\n";
        assert_eq!(fdinfo_prog_id(info), Some(42));
        assert_eq!(fdinfo_prog_id("link_type:\txdp\nlink_id:\t7\n"), None);
        // No process holds a link of a program that does not exist.
        assert!(link_holders(u32::MAX).is_empty());
    }
}
