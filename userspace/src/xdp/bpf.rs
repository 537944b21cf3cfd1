//! The few raw `bpf(2)` commands aya 0.14 does not offer publicly: opening a
//! link by id, reading its target interface, and `BPF_LINK_DETACH`, which
//! `--replace` needs to remove another process's link. Layouts from
//! `include/uapi/linux/bpf.h`.
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
