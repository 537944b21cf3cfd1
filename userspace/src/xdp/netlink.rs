//! rtnetlink for the hard-IRQ stage's loader: `RTM_GETLINK` by name (index,
//! MAC address, attached XDP programs), `RTM_SETLINK` with `IFLA_XDP` (detach a
//! netlink-attached program) and the `RTM_GETROUTE` dump [`super::route`] reads.
//!
//! Messages are built and parsed by `netlink-packet-route`; the socket is
//! `netlink-sys`'s. What is ours is the request/reply loop and reading the
//! kernel's extended-ack text (`NETLINK_EXT_ACK`, `include/uapi/linux/netlink.h`),
//! which `netlink-packet-core` leaves as raw bytes. Every socket is opened in the
//! calling *thread's* network namespace.

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NlasIterator, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use netlink_packet_route::{
    address::{AddressAttribute, AddressMessage},
    link::{LinkAttribute, LinkMessage, LinkXdp, XdpAttached},
    route::RouteMessage,
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::{XdpError, XdpState};

/// `IFNAMSIZ` (include/uapi/linux/if.h), the terminating NUL included.
const IFNAMSIZ: usize = 16;
/// `NLMSGERR_ATTR_MSG` (include/uapi/linux/netlink.h): the extended ack's text.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;

/// `XDP_FLAGS_SKB_MODE` (include/uapi/linux/if_link.h).
pub(crate) const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`.
pub(crate) const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
/// `XDP_FLAGS_HW_MODE`.
pub(crate) const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// The parts of `RTM_NEWLINK` the loader uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkDetails {
    /// `ifi_index`: the interface's index in the caller's namespace.
    pub index: u32,
    /// `IFLA_ADDRESS`, when it is a 6-byte (Ethernet) address.
    pub mac: Option<[u8; 6]>,
    /// `IFLA_XDP`: the programs attached.
    pub xdp: XdpState,
}

/// A failed request: the errno and the kernel's extended-ack message, if any.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NlError {
    pub(crate) errno: i32,
    pub(crate) ext_ack: Option<String>,
}

impl NlError {
    pub(crate) fn into_io(self) -> io::Error {
        let os = io::Error::from_raw_os_error(self.errno);
        match self.ext_ack {
            // Keep the raw errno (for NotPermitted) when there is no message.
            None => os,
            Some(msg) => io::Error::new(os.kind(), format!("{os}: {msg}")),
        }
    }
}

/// What one reply datagram said.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Messages of the reply (a dump continues in the next datagram).
    Messages(Vec<RouteNetlinkMessage>),
    /// The ack, or the `NLMSG_DONE` ending a dump.
    Done,
    /// A negative `NLMSG_ERROR`.
    Failed(NlError),
}

/// Parses one reply datagram (one or more netlink messages).
///
/// # Errors
/// `InvalidData` when a message does not parse.
pub(crate) fn parse_reply(mut datagram: &[u8]) -> io::Result<Reply> {
    let mut messages = Vec::new();
    while datagram.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(datagram[..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink message"));
        }
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[..len])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let flags = msg.header.flags;
        match msg.payload {
            NetlinkPayload::Error(e) => {
                let Some(code) = e.code else { return Ok(Reply::Done) };
                let ext_ack = (flags & NLM_F_ACK_TLVS != 0).then(|| ext_ack_text(&e.header, flags)).flatten();
                return Ok(Reply::Failed(NlError { errno: -code.get(), ext_ack }));
            }
            NetlinkPayload::Done(_) => return Ok(Reply::Done),
            NetlinkPayload::InnerMessage(m) => messages.push(m),
            _ => {}
        }
        datagram = datagram.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    if messages.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "empty netlink reply"));
    }
    Ok(Reply::Messages(messages))
}

/// The `NLMSGERR_ATTR_MSG` text after `struct nlmsgerr`'s echoed request: only
/// its header with `NLM_F_CAPPED`, else the whole request (its length is in
/// the echoed header).
fn ext_ack_text(echoed: &[u8], flags: u16) -> Option<String> {
    let skip = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        (u32::from_ne_bytes(echoed.get(..4)?.try_into().ok()?) as usize).next_multiple_of(4)
    };
    NlasIterator::new(echoed.get(skip..)?)
        .filter_map(Result::ok)
        .find(|nla| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| String::from_utf8_lossy(nla.value()).trim_end_matches('\0').to_owned())
}

/// One request on a fresh `NETLINK_ROUTE` socket; collects the messages of the
/// reply (all parts of a dump) until the ack or `NLMSG_DONE`.
///
/// # Errors
/// The socket's errors; a negative `NLMSG_ERROR` as [`NlError`] inside `Ok`.
fn request(message: RouteNetlinkMessage, flags: u16) -> io::Result<Result<Vec<RouteNetlinkMessage>, NlError>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    // Failure only loses the kernel's error text.
    let _ = socket.set_ext_ack(true);
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;

    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut buf = vec![0u8; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut out = Vec::new();
    loop {
        let (datagram, _) = match socket.recv_from_full() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        match parse_reply(&datagram)? {
            Reply::Messages(m) => {
                out.extend(m);
                // A plain GET answers with one message and no ack.
                if flags & (NLM_F_DUMP | NLM_F_ACK) == 0 {
                    return Ok(Ok(out));
                }
            }
            Reply::Done => return Ok(Ok(out)),
            Reply::Failed(e) => return Ok(Err(e)),
        }
    }
}

/// `RTM_GETLINK` by name, in the calling thread's namespace.
///
/// # Errors
/// [`XdpError::NoSuchInterface`] for a name the kernel does not know (or that
/// cannot be an interface name); [`XdpError::Syscall`] otherwise.
pub fn get_link(ifname: &str) -> Result<LinkDetails, XdpError> {
    let no_such = || XdpError::NoSuchInterface { ifname: ifname.to_owned() };
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains(['/', '\0']) {
        return Err(no_such());
    }
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(ifname.to_owned()));
    let call = || format!("RTM_GETLINK {ifname}");
    match request(RouteNetlinkMessage::GetLink(msg), 0).map_err(|e| XdpError::syscall(call(), e))? {
        Ok(replies) => replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link_details(&link)),
                _ => None,
            })
            .ok_or_else(|| XdpError::syscall(call(), io::Error::new(io::ErrorKind::InvalidData, "reply without link"))),
        Err(NlError { errno: libc::ENODEV, .. }) => Err(no_such()),
        Err(e) => Err(XdpError::syscall(call(), e.into_io())),
    }
}

/// The index, MAC address and XDP state of an `RTM_NEWLINK` message.
pub(crate) fn link_details(link: &LinkMessage) -> LinkDetails {
    let mut out = LinkDetails { index: link.header.index, mac: None, xdp: XdpState::default() };
    for attr in &link.attributes {
        match attr {
            LinkAttribute::Address(a) => out.mac = a.as_slice().try_into().ok(),
            LinkAttribute::Xdp(xdp) => {
                for x in xdp {
                    match *x {
                        LinkXdp::Attached(a) => out.xdp.attached = attached_u8(a),
                        LinkXdp::ProgId(id) => out.xdp.prog_id = id,
                        LinkXdp::DrvProgId(id) => out.xdp.drv_prog_id = id,
                        LinkXdp::SkbProgId(id) => out.xdp.skb_prog_id = id,
                        LinkXdp::HwProgId(id) => out.xdp.hw_prog_id = id,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `XDP_ATTACHED_*` as the kernel numbers them.
fn attached_u8(a: XdpAttached) -> u8 {
    match a {
        XdpAttached::None => 0,
        XdpAttached::Driver => XdpState::ATTACHED_DRV,
        XdpAttached::SocketBuffer => XdpState::ATTACHED_SKB,
        XdpAttached::Hardware => XdpState::ATTACHED_HW,
        XdpAttached::Multiple => 4,
        XdpAttached::Other(n) => n,
        _ => 0,
    }
}

/// `RTM_SETLINK` with `IFLA_XDP { FD, FLAGS }`: `fd = -1` detaches the
/// netlink-attached program of the mode in `flags` (`XDP_FLAGS_*_MODE`).
///
/// # Errors
/// The socket's errors, or the kernel's refusal with its extended-ack text.
pub fn set_xdp_fd(ifindex: u32, fd: i32, flags: u32) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(vec![LinkXdp::Fd(fd), LinkXdp::Flags(flags)]));
    match request(RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)? {
        Ok(_) => Ok(()),
        Err(e) => Err(e.into_io()),
    }
}

/// The IPv4 addresses the kernel holds on interface `ifindex`, and the
/// broadcast address of each (`RTM_GETADDR` dump: `IFA_LOCAL` and
/// `IFA_BROADCAST`), in the order the kernel lists them, without repeats.
///
/// # Errors
/// The socket's errors, or the kernel's refusal.
pub fn ipv4_addrs(ifindex: u32) -> io::Result<Vec<std::net::Ipv4Addr>> {
    dump_ipv4_addrs(ifindex, true)
}

/// The IPv4 addresses the kernel holds on interface `ifindex` (`IFA_LOCAL`
/// only), in the order the kernel lists them.
///
/// # Errors
/// The socket's errors, or the kernel's refusal.
pub fn ipv4_local_addrs(ifindex: u32) -> io::Result<Vec<std::net::Ipv4Addr>> {
    dump_ipv4_addrs(ifindex, false)
}

fn dump_ipv4_addrs(ifindex: u32, broadcast: bool) -> io::Result<Vec<std::net::Ipv4Addr>> {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    let replies = match request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)? {
        Ok(replies) => replies,
        Err(e) => return Err(e.into_io()),
    };
    let mut out = Vec::new();
    for m in replies {
        let RouteNetlinkMessage::NewAddress(a) = m else { continue };
        if a.header.index != ifindex || a.header.family != AddressFamily::Inet {
            continue;
        }
        for attr in &a.attributes {
            let addr = match attr {
                AddressAttribute::Local(std::net::IpAddr::V4(v)) => *v,
                AddressAttribute::Broadcast(v) if broadcast => *v,
                _ => continue,
            };
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    Ok(out)
}

/// `RTM_GETROUTE` dump of one address family, every table.
///
/// # Errors
/// The socket's errors, or the kernel's refusal (`EAFNOSUPPORT` when the family
/// is compiled out is returned as an empty list).
pub fn dump_routes(family: AddressFamily) -> io::Result<Vec<RouteMessage>> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = family;
    match request(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)? {
        Ok(replies) => Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .collect()),
        Err(NlError { errno: libc::EAFNOSUPPORT, .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into_io()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newlink(attrs: Vec<LinkAttribute>) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = 9;
        link.attributes = attrs;
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
        );
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        buf
    }

    fn only_link(datagram: &[u8]) -> LinkDetails {
        match parse_reply(datagram).unwrap() {
            Reply::Messages(m) => match m.as_slice() {
                [RouteNetlinkMessage::NewLink(l)] => link_details(l),
                other => panic!("unexpected {other:?}"),
            },
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_link_with_xdp() {
        let msg = newlink(vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Xdp(vec![LinkXdp::Attached(XdpAttached::Driver), LinkXdp::ProgId(42)]),
        ]);
        let link = only_link(&msg);
        assert_eq!(link.index, 9);
        assert_eq!(link.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(link.xdp.any_prog_id(), Some(42));
        assert_eq!(link.xdp.attachments(), [(42, XDP_FLAGS_DRV_MODE)]);

        let link = only_link(&newlink(vec![LinkAttribute::IfName("lo".into())]));
        assert_eq!(link.mac, None);
        assert_eq!(link.xdp.any_prog_id(), None);
        assert!(link.xdp.attachments().is_empty());
    }

    /// The request `set_xdp_fd` sends: `IFLA_XDP` nested, `FD` then `FLAGS`.
    #[test]
    fn setlink_request_layout() {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.attributes.push(LinkAttribute::Xdp(vec![LinkXdp::Fd(-1), LinkXdp::Flags(4)]));
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(RouteNetlinkMessage::SetLink(link)));
        packet.finalize();
        let mut msg = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut msg);
        assert_eq!(msg.len(), 16 + 16 + 4 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), msg.len() as u32);
        assert_eq!(u16::from_ne_bytes(msg[4..6].try_into().unwrap()), 19);
        assert_eq!(u16::from_ne_bytes(msg[6..8].try_into().unwrap()), 0x5);
        assert_eq!(u32::from_ne_bytes(msg[20..24].try_into().unwrap()), 7);
        // IFLA_XDP, 20 bytes long, holding the two attributes. The crate leaves
        // NLA_F_NESTED clear, which the kernel accepts for IFLA_XDP (its policy
        // entry predates strict checking: net/core/rtnetlink.c, ifla_policy).
        assert_eq!(u16::from_ne_bytes(msg[32..34].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(msg[34..36].try_into().unwrap()) & netlink_packet_core::NLA_TYPE_MASK, 43);
        let inner: Vec<_> =
            NlasIterator::new(&msg[36..]).map(|n| n.unwrap()).map(|n| (n.kind(), n.value().to_vec())).collect();
        assert_eq!(inner, [(1, (-1i32).to_ne_bytes().to_vec()), (3, 4u32.to_ne_bytes().to_vec())]);
    }

    fn tlv(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    #[test]
    fn parses_error_with_ext_ack() {
        // nlmsgerr: error, echoed request header (capped, 16 bytes), then TLVs.
        let mut m = Vec::new();
        let tlv = tlv(1, b"Can't replace active BPF XDP link\0");
        let len = (16 + 4 + 16 + tlv.len()) as u32;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        m.extend_from_slice(&0x300u16.to_ne_bytes()); // NLM_F_CAPPED | NLM_F_ACK_TLVS
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(-libc::EBUSY).to_ne_bytes());
        m.extend_from_slice(&16u32.to_ne_bytes()); // echoed nlmsg_len
        m.extend_from_slice(&[0; 12]);
        m.extend_from_slice(&tlv);
        match parse_reply(&m).unwrap() {
            Reply::Failed(e) => {
                assert_eq!(e.errno, libc::EBUSY);
                assert_eq!(e.ext_ack.as_deref(), Some("Can't replace active BPF XDP link"));
                assert!(e.into_io().to_string().contains("Can't replace active BPF XDP link"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ack_and_truncated_replies() {
        let mut ack = Vec::new();
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&2u16.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&[0; 8]);
        ack.extend_from_slice(&0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert!(matches!(parse_reply(&ack), Ok(Reply::Done)));
        assert!(parse_reply(&ack[..10]).is_err());
        assert!(parse_reply(&[]).is_err());
        // A header that claims more than the datagram holds.
        assert!(parse_reply(&ack[..20]).is_err());
    }

    #[test]
    fn multi_mode_lists_each_program() {
        let state = XdpState { attached: 4, prog_id: 0, drv_prog_id: 5, skb_prog_id: 6, hw_prog_id: 0 };
        assert_eq!(state.attachments(), [(5, XDP_FLAGS_DRV_MODE), (6, XDP_FLAGS_SKB_MODE)]);
    }
}
