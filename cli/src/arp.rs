//! Who answers ARP for a virtual address, and gratuitous ARP.
//!
//! In direct routing and tunnelling the real servers hold the VIP too (on `lo`, or `tunl0`);
//! one that answers ARP for it (`arp_ignore` not set) steals the clients' traffic from the
//! director. [`who_answers`] asks the link who has the VIP, as any router would, and reports
//! every answer that is not the director's own; [`announce`] tells the link that the VIP is
//! here (after it moves, so stale caches learn).
//!
//! IPv4 packets go through an `AF_PACKET` datagram socket bound to the interface: the kernel
//! adds and strips the Ethernet header; what is sent and read here is the ARP packet itself
//! ([`ArpPacket`]). IPv6 uses neighbour discovery (RFC 4861) on a raw ICMPv6 socket bound to
//! the interface, hop limit 255: a neighbour solicitation to the VIP's solicited-node
//! multicast address, and the neighbour advertisements for the VIP that come back
//! ([`parse_neighbour_advert`]). Both need `CAP_NET_RAW`.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use crate::socket::{recv, set_int};

/// An Ethernet (MAC) address; shown as `52:54:00:12:34:56`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: Mac = Mac([0; 6]);
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    /// Six hexadecimal bytes separated by colons, as `/proc/net/arp` and `ip neigh` show them.
    fn from_str(s: &str) -> Result<Mac, String> {
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut bytes {
            let part = parts
                .next()
                .ok_or_else(|| format!("{s}: not a MAC address"))?;
            if part.is_empty() || part.len() > 2 {
                return Err(format!("{s}: not a MAC address"));
            }
            *b = u8::from_str_radix(part, 16).map_err(|_| format!("{s}: not a MAC address"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s}: not a MAC address"));
        }
        Ok(Mac(bytes))
    }
}

/// A machine that answered for the address asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Its MAC address.
    pub mac: Mac,
    /// Its own address, when this machine's neighbour table knows one for that MAC (other than
    /// the address asked about).
    pub ip: Option<IpAddr>,
}

/// `ar_op` of an ARP request.
pub const OP_REQUEST: u16 = 1;
/// `ar_op` of an ARP reply.
pub const OP_REPLY: u16 = 2;

/// An Ethernet/IPv4 ARP packet (RFC 826), without the Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// [`OP_REQUEST`], [`OP_REPLY`] or another operation.
    pub op: u16,
    /// The sender's hardware address.
    pub sender_mac: Mac,
    /// The sender's protocol address.
    pub sender_ip: Ipv4Addr,
    /// The target's hardware address (zero in a request).
    pub target_mac: Mac,
    /// The target's protocol address.
    pub target_ip: Ipv4Addr,
}

/// The length of an Ethernet/IPv4 ARP packet.
const ARP_LEN: usize = 28;
/// `ar_hrd` for Ethernet.
const HTYPE_ETHER: u16 = 1;
/// `ar_pro` for IPv4.
const PTYPE_IPV4: u16 = 0x0800;

impl ArpPacket {
    /// The packet's 28 bytes.
    pub fn to_bytes(&self) -> [u8; ARP_LEN] {
        let mut p = [0u8; ARP_LEN];
        p[0..2].copy_from_slice(&HTYPE_ETHER.to_be_bytes());
        p[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        p[4] = 6;
        p[5] = 4;
        p[6..8].copy_from_slice(&self.op.to_be_bytes());
        p[8..14].copy_from_slice(&self.sender_mac.0);
        p[14..18].copy_from_slice(&self.sender_ip.octets());
        p[18..24].copy_from_slice(&self.target_mac.0);
        p[24..28].copy_from_slice(&self.target_ip.octets());
        p
    }
}

/// Reads an Ethernet/IPv4 ARP packet (request, reply or any other operation); `None` for
/// anything else: too short, another hardware or protocol type, other address lengths.
/// Bytes after the 28 of the packet (Ethernet padding) are ignored.
pub fn parse_arp_reply(packet: &[u8]) -> Option<ArpPacket> {
    let p = packet.get(..ARP_LEN)?;
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let mac_at = |i: usize| {
        let mut m = [0u8; 6];
        m.copy_from_slice(&p[i..i + 6]);
        Mac(m)
    };
    let ip_at = |i: usize| Ipv4Addr::new(p[i], p[i + 1], p[i + 2], p[i + 3]);
    if u16_at(0) != HTYPE_ETHER || u16_at(2) != PTYPE_IPV4 || p[4] != 6 || p[5] != 4 {
        return None;
    }
    Some(ArpPacket {
        op: u16_at(6),
        sender_mac: mac_at(8),
        sender_ip: ip_at(14),
        target_mac: mac_at(18),
        target_ip: ip_at(24),
    })
}

/// The interface that holds `vip` on this machine (as `getifaddrs` lists it), or `None`. An
/// interface that is not a loopback is preferred when several hold it. IPv4 labels
/// (`eth0:vip`) are given as the interface's name (`eth0`).
pub fn interface_holding(vip: IpAddr) -> io::Result<Option<String>> {
    Ok(holder(&if_addrs()?, vip))
}

/// [`interface_holding`] for each of `vips`, in order, from one read of the interfaces.
pub fn interfaces_holding(vips: &[IpAddr]) -> io::Result<Vec<Option<String>>> {
    let addrs = if_addrs()?;
    Ok(vips.iter().map(|vip| holder(&addrs, *vip)).collect())
}

/// The interface of `addrs` that holds `vip`, one that is not a loopback first.
fn holder(addrs: &[IfAddr], vip: IpAddr) -> Option<String> {
    let mut found: Option<&IfAddr> = None;
    for a in addrs.iter().filter(|a| a.addr == vip) {
        match found {
            Some(f) if !f.loopback || a.loopback => {}
            _ => found = Some(a),
        }
    }
    found.map(|a| a.interface.clone())
}

/// One address of one interface, from `getifaddrs`.
struct IfAddr {
    interface: String,
    addr: IpAddr,
    loopback: bool,
}

/// Every IPv4 and IPv6 address of every interface, in the kernel's order (an interface's
/// primary IPv4 address before its secondaries).
fn if_addrs() -> io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs(3) fills `head` with a list we free below with freeifaddrs(3).
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: `ifa_addr` points at a sockaddr whose family says which one it is.
        let addr = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(sin6.sin6_addr.s6_addr)
                }
                _ => continue,
            }
        };
        // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        // An IPv4 address's label (`eth0:1`) names its interface before the colon, which a
        // device name cannot contain.
        let interface = name.split(':').next().unwrap_or(&name).to_string();
        out.push(IfAddr {
            interface,
            addr,
            loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// What ARP needs to know of an interface.
struct Link {
    index: i32,
    mac: Mac,
}

/// The interface's index and MAC address; `None` when it has no ARP (a loopback, a tunnel,
/// `NOARP`): nothing can answer ARP there.
fn link(fd: &OwnedFd, interface: &str) -> io::Result<Option<Link>> {
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{interface:?} is not an interface name"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    let ioctl = |req: &mut libc::ifreq, what: libc::Ioctl| {
        // SAFETY: these ioctls read the name and fill the union of a valid `ifreq`.
        if unsafe { libc::ioctl(fd.as_raw_fd(), what, req as *mut libc::ifreq) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("interface {interface}: {e}"),
            ));
        }
        Ok(())
    };
    ioctl(&mut req, libc::SIOCGIFFLAGS)?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    ioctl(&mut req, libc::SIOCGIFHWADDR)?;
    // SAFETY: SIOCGIFHWADDR filled `ifru_hwaddr`.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if flags & (libc::IFF_NOARP | libc::IFF_LOOPBACK) != 0 || hw.sa_family != libc::ARPHRD_ETHER {
        return Ok(None);
    }
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data) {
        *d = s as u8;
    }
    ioctl(&mut req, libc::SIOCGIFINDEX)?;
    // SAFETY: SIOCGIFINDEX filled `ifru_ifindex`.
    let index = unsafe { req.ifr_ifru.ifru_ifindex };
    Ok(Some(Link {
        index,
        mac: Mac(mac),
    }))
}

/// An `AF_PACKET` datagram socket for ARP on one interface, non-blocking.
fn arp_socket(interface: &str) -> io::Result<(OwnedFd, Option<Link>)> {
    // Protocol 0 receives nothing until bound: the socket never sees another interface's
    // packets.
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open a packet socket for ARP (lvs-hc needs CAP_NET_RAW): {e}"),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let Some(link) = link(&fd, interface)? else {
        return Ok((fd, None));
    };
    let addr = sockaddr_ll(link.index, Mac::ZERO);
    // SAFETY: `addr` is a valid sockaddr_ll of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot bind a packet socket to {interface}: {e}"),
        ));
    }
    Ok((fd, Some(link)))
}

fn sockaddr_ll(index: i32, to: Mac) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    addr.sll_ifindex = index;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&to.0);
    addr
}

/// Broadcasts `packet` on the interface of `link`.
fn send_broadcast(fd: &OwnedFd, link: &Link, packet: &ArpPacket) -> io::Result<()> {
    let addr = sockaddr_ll(link.index, Mac::BROADCAST);
    let bytes = packet.to_bytes();
    // SAFETY: the buffer and the address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("sending ARP: {e}")));
    }
    Ok(())
}

/// Asks who has `vip` on `interface` (an ARP request from the interface's own MAC and its
/// primary IPv4 address, or from 0.0.0.0 when its only address is the VIP) and collects every
/// answer for `listen`: a packet whose sender is the VIP and whose MAC is not the interface's
/// own. One answer per MAC, with the address the neighbour table knows for it. An interface
/// without ARP (loopback, tunnel) has no answers.
///
/// IPv6: a neighbour solicitation from the interface's link-local address; the answers are
/// the neighbour advertisements for the VIP that carry a MAC other than ours, without an
/// address (the IPv6 neighbour table is not read).
///
/// At most [`MAX_ANSWERS`] answers, whatever the link sends.
pub async fn who_answers(
    interface: &str,
    vip: IpAddr,
    listen: Duration,
) -> io::Result<Vec<Answer>> {
    let vip4 = match vip {
        IpAddr::V4(v) => v,
        IpAddr::V6(v) => return who_advertises(interface, v, listen).await,
    };
    let (fd, link) = arp_socket(interface)?;
    let Some(link) = link else {
        return Ok(Vec::new());
    };
    let source = if_addrs()?
        .into_iter()
        .filter(|a| a.interface == interface)
        .find_map(|a| match a.addr {
            IpAddr::V4(ip) if ip != vip4 => Some(ip),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    // SAFETY: the `OwnedFd` is open, and the `AsyncFd` owns it until it is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    let request = ArpPacket {
        op: OP_REQUEST,
        sender_mac: link.mac,
        sender_ip: source,
        target_mac: Mac::ZERO,
        target_ip: vip4,
    };
    send_broadcast(fd.get_ref(), &link, &request)?;
    let mut macs: Vec<Mac> = Vec::new();
    let deadline = tokio::time::Instant::now() + listen;
    let mut buf = [0u8; 128];
    // The deadline is checked before each packet too: a flood of ARP keeps the socket ready.
    while tokio::time::Instant::now() < deadline {
        let ready = tokio::time::timeout_at(deadline, fd.readable()).await;
        let Ok(ready) = ready else { break };
        let mut guard = ready?;
        match guard.try_io(|fd| recv(fd.get_ref(), &mut buf)) {
            Ok(Ok(n)) => {
                let Some(p) = parse_arp_reply(&buf[..n]) else {
                    continue;
                };
                if p.sender_ip == vip4 && p.sender_mac != link.mac {
                    note_answer(&mut macs, p.sender_mac);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    Ok(answers(macs, vip4, interface))
}

/// Most answers kept for one VIP: anything on the link can answer with any MAC, and each
/// answer becomes a warning, a `/status` line and a metric series.
pub const MAX_ANSWERS: usize = 16;

/// Keeps `mac` among the answers: once each, and no more than [`MAX_ANSWERS`].
fn note_answer(macs: &mut Vec<Mac>, mac: Mac) {
    if macs.len() < MAX_ANSWERS && !macs.contains(&mac) {
        macs.push(mac);
    }
}

/// One answer per MAC, with the address the ARP table gives it other than `vip`.
fn answers(macs: Vec<Mac>, vip: Ipv4Addr, interface: &str) -> Vec<Answer> {
    // /proc/net is the namespace of the process's first thread; thread-self that of the
    // calling thread (they differ only in tests, which enter namespaces by thread).
    let neighbours = std::fs::read_to_string("/proc/thread-self/net/arp")
        .or_else(|_| std::fs::read_to_string("/proc/net/arp"))
        .unwrap_or_default();
    macs.into_iter()
        .map(|mac| Answer {
            mac,
            ip: neighbour_ip(&neighbours, mac, vip, interface).map(IpAddr::V4),
        })
        .collect()
}

/// The address `/proc/net/arp` (`table`) gives `mac`, other than `vip`: on `interface` first,
/// then anywhere. Incomplete entries (flags 0) do not count.
fn neighbour_ip(table: &str, mac: Mac, vip: Ipv4Addr, interface: &str) -> Option<Ipv4Addr> {
    let entries: Vec<(Ipv4Addr, &str)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [ip, _hw_type, flags, hw, _mask, dev, ..] = f[..] else {
                return None;
            };
            let ip: Ipv4Addr = ip.parse().ok()?;
            let complete = flags != "0x0";
            (complete && ip != vip && hw.parse::<Mac>().ok()? == mac).then_some((ip, dev))
        })
        .collect();
    entries
        .iter()
        .find(|(_, dev)| *dev == interface)
        .or_else(|| entries.first())
        .map(|(ip, _)| *ip)
}

/// Gratuitous ARP for `vip` on `interface`: a broadcast request whose sender and target are
/// the VIP, from the interface's MAC, so that the link's caches point the VIP here. Nothing is
/// sent on an interface without ARP. IPv6: an unsolicited neighbour advertisement (override
/// flag, our MAC) to all nodes.
pub async fn announce(interface: &str, vip: IpAddr) -> io::Result<()> {
    // Three times, 100 ms apart (as keepalived repeats its own): one lost frame would leave
    // the stale caches this is for.
    for round in 0..ANNOUNCEMENTS {
        if round > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        announce_once(interface, vip)?;
    }
    Ok(())
}

/// How many times [`announce`] says it.
const ANNOUNCEMENTS: usize = 3;

fn announce_once(interface: &str, vip: IpAddr) -> io::Result<()> {
    let vip4 = match vip {
        IpAddr::V4(v) => v,
        IpAddr::V6(v) => return advertise(interface, v),
    };
    let (fd, link) = arp_socket(interface)?;
    let Some(link) = link else {
        return Ok(());
    };
    let packet = ArpPacket {
        op: OP_REQUEST,
        sender_mac: link.mac,
        sender_ip: vip4,
        target_mac: Mac::ZERO,
        target_ip: vip4,
    };
    send_broadcast(&fd, &link, &packet)
}

/// ICMPv6 type of a neighbour solicitation.
const ND_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// Option: source link-layer address.
const ND_OPT_SOURCE_LL: u8 = 1;
/// Option: target link-layer address.
const ND_OPT_TARGET_LL: u8 = 2;
/// `ICMP6_FILTER` (linux/icmpv6.h), which libc does not name.
const ICMP6_FILTER: libc::c_int = 1;

/// A neighbour advertisement: the address it is for and the MAC it gives (its target
/// link-layer address option), if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourAdvert {
    /// The target address.
    pub target: Ipv6Addr,
    /// The target link-layer address option's MAC.
    pub mac: Option<Mac>,
}

/// Reads an ICMPv6 neighbour advertisement (the ICMPv6 message, without the IPv6 header);
/// `None` for anything else or a malformed one (short, an option of length 0 or past the
/// end).
pub fn parse_neighbour_advert(packet: &[u8]) -> Option<NeighbourAdvert> {
    if packet.len() < 24 || packet[0] != ND_NEIGHBOR_ADVERT || packet[1] != 0 {
        return None;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&packet[8..24]);
    let mut mac = None;
    let mut options = &packet[24..];
    while !options.is_empty() {
        let kind = *options.first()?;
        let len = usize::from(*options.get(1)?) * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        if kind == ND_OPT_TARGET_LL && len >= 8 && mac.is_none() {
            let mut m = [0u8; 6];
            m.copy_from_slice(&options[2..8]);
            mac = Some(Mac(m));
        }
        options = &options[len..];
    }
    Some(NeighbourAdvert {
        target: Ipv6Addr::from(target),
        mac,
    })
}

/// An ICMPv6 neighbour discovery message: `kind`, 4 bytes of flags, the target, and one
/// link-layer address option.
fn nd_message(kind: u8, flags: u8, target: Ipv6Addr, option: u8, mac: Mac) -> [u8; 32] {
    let mut p = [0u8; 32];
    p[0] = kind;
    p[4] = flags;
    p[8..24].copy_from_slice(&target.octets());
    p[24] = option;
    p[25] = 1;
    p[26..32].copy_from_slice(&mac.0);
    // The checksum (bytes 2..4) is the kernel's: raw ICMPv6 sockets always compute it.
    p
}

/// The solicited-node multicast address of `addr` (ff02::1:ffXX:XXXX).
fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// A raw ICMPv6 socket for neighbour discovery on `interface`, non-blocking: bound to it, hop
/// limit 255 (receivers drop neighbour discovery with any other), our own multicast not looped
/// back, and only neighbour advertisements let in.
fn nd_socket(interface: &str) -> io::Result<(OwnedFd, Option<Link>)> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_ICMPV6,
        )
    };
    if raw < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot open an ICMPv6 socket for neighbour discovery (lvs-hc needs CAP_NET_RAW): {e}"),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let Some(link) = link(&fd, interface)? else {
        return Ok((fd, None));
    };
    let setup = || -> io::Result<()> {
        // SAFETY: the name and its length are valid.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                interface.as_ptr().cast(),
                interface.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, 255)?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, link.index)?;
        set_int(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 0)?;
        // Block every ICMPv6 type but neighbour advertisements (a set bit blocks).
        let mut filter = [u32::MAX; 8];
        filter[usize::from(ND_NEIGHBOR_ADVERT >> 5)] &= !(1u32 << (ND_NEIGHBOR_ADVERT & 31));
        // SAFETY: the filter is the 32 bytes the kernel reads.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_ICMPV6,
                ICMP6_FILTER,
                filter.as_ptr().cast(),
                std::mem::size_of_val(&filter) as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    setup().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot set up neighbour discovery on {interface}: {e}"),
        )
    })?;
    Ok((fd, Some(link)))
}

/// Sends an ICMPv6 message to `to` on the interface of `link`.
fn send_icmpv6(fd: &OwnedFd, link: &Link, to: Ipv6Addr, message: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_in6 is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    addr.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    addr.sin6_addr.s6_addr = to.octets();
    addr.sin6_scope_id = link.index as u32;
    // SAFETY: the buffer and the address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            &addr as *const libc::sockaddr_in6 as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("sending neighbour discovery: {e}"),
        ));
    }
    Ok(())
}

/// [`who_answers`] for IPv6.
async fn who_advertises(
    interface: &str,
    vip: Ipv6Addr,
    listen: Duration,
) -> io::Result<Vec<Answer>> {
    let (fd, link) = nd_socket(interface)?;
    let Some(link) = link else {
        return Ok(Vec::new());
    };
    // SAFETY: the `OwnedFd` is open, and the `AsyncFd` owns it until it is dropped.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)?;
    let solicit = nd_message(ND_NEIGHBOR_SOLICIT, 0, vip, ND_OPT_SOURCE_LL, link.mac);
    send_icmpv6(fd.get_ref(), &link, solicited_node(vip), &solicit)?;
    let mut macs: Vec<Mac> = Vec::new();
    let deadline = tokio::time::Instant::now() + listen;
    let mut buf = [0u8; 1500];
    while tokio::time::Instant::now() < deadline {
        let Ok(ready) = tokio::time::timeout_at(deadline, fd.readable()).await else {
            break;
        };
        let mut guard = ready?;
        match guard.try_io(|fd| recv(fd.get_ref(), &mut buf)) {
            Ok(Ok(n)) => {
                let Some(advert) = parse_neighbour_advert(&buf[..n]) else {
                    continue;
                };
                if let Some(mac) = advert
                    .mac
                    .filter(|m| advert.target == vip && *m != link.mac)
                {
                    note_answer(&mut macs, mac);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
    // The IP of an IPv6 answer would be the IPv6 neighbour table's (netlink); the IPv4 ARP
    // table's could name an address of another family: the MAC alone is said.
    Ok(macs
        .into_iter()
        .map(|mac| Answer { mac, ip: None })
        .collect())
}

/// [`announce`] for IPv6: an unsolicited neighbour advertisement to all nodes.
fn advertise(interface: &str, vip: Ipv6Addr) -> io::Result<()> {
    let (fd, link) = nd_socket(interface)?;
    let Some(link) = link else {
        return Ok(());
    };
    /// The override flag: receivers replace the MAC they had.
    const OVERRIDE: u8 = 0x20;
    let advert = nd_message(
        ND_NEIGHBOR_ADVERT,
        OVERRIDE,
        vip,
        ND_OPT_TARGET_LL,
        link.mac,
    );
    send_icmpv6(
        &fd,
        &link,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        &advert,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Mac = Mac([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    fn reply() -> ArpPacket {
        ArpPacket {
            op: OP_REPLY,
            sender_mac: Mac([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
            sender_ip: Ipv4Addr::new(192, 168, 0, 101),
            target_mac: ME,
            target_ip: Ipv4Addr::new(192, 168, 0, 2),
        }
    }

    #[test]
    fn answers_are_kept_once_per_mac_and_no_more_than_the_bound() {
        let mut macs = Vec::new();
        note_answer(&mut macs, ME);
        note_answer(&mut macs, ME);
        assert_eq!(macs, [ME]);
        for i in 0..=255u8 {
            note_answer(&mut macs, Mac([2, 0, 0, 0, 0, i]));
        }
        assert_eq!(
            macs.len(),
            MAX_ANSWERS,
            "a flood of MACs is cut at the bound"
        );
        assert_eq!(macs[0], ME, "the first answers are kept");
    }

    #[test]
    fn a_mac_shows_as_lowercase_colon_hex_and_reads_back() {
        assert_eq!(ME.to_string(), "52:54:00:12:34:56");
        assert_eq!(
            Mac([0xde, 0xad, 0xbe, 0xef, 0, 1]).to_string(),
            "de:ad:be:ef:00:01"
        );
        assert_eq!(
            "DE:AD:be:ef:0:01".parse::<Mac>(),
            Ok(Mac([0xde, 0xad, 0xbe, 0xef, 0, 1]))
        );
        for bad in [
            "",
            "de:ad:be:ef:00",
            "de:ad:be:ef:00:01:02",
            "de:ad:be:ef:00:xy",
            "dead:be:ef:00:01:0",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_packet_reads_back_what_was_written() {
        let p = reply();
        assert_eq!(parse_arp_reply(&p.to_bytes()), Some(p));
        // Ethernet pads ARP to 46 bytes: the padding is ignored.
        let mut padded = p.to_bytes().to_vec();
        padded.resize(46, 0);
        assert_eq!(parse_arp_reply(&padded), Some(p));
    }

    #[test]
    fn anything_but_ethernet_ipv4_arp_is_refused() {
        let good = reply().to_bytes();
        for n in 0..good.len() {
            assert_eq!(parse_arp_reply(&good[..n]), None, "{n} bytes");
        }
        for (at, value) in [(1, 6), (3, 0xdd), (4, 8), (5, 16)] {
            let mut bad = good;
            bad[at] = value;
            assert_eq!(parse_arp_reply(&bad), None, "byte {at} = {value}");
        }
    }

    #[test]
    fn any_bytes_parse_without_panicking() {
        // A small deterministic sweep standing in for a fuzzer: every length, varied content.
        let mut x: u32 = 0x1234_5678;
        for len in 0..64 {
            for _ in 0..50 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                let _ = parse_arp_reply(&bytes);
                let _ = parse_neighbour_advert(&bytes);
            }
        }
    }

    #[test]
    fn the_neighbour_table_gives_the_answering_macs_own_address() {
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     192.168.0.101    0x1         0x2         52:54:00:aa:bb:cc     *        eth0\n\
                     192.168.0.9      0x1         0x0         52:54:00:aa:bb:cc     *        eth0\n\
                     10.9.9.9         0x1         0x2         52:54:00:aa:bb:cc     *        eth1\n\
                     192.168.0.180    0x1         0x2         52:54:00:aa:bb:cc     *        eth0\n\
                     192.168.0.181    0x1         0x2         52:54:00:11:11:11     *        eth0\n";
        let mac = reply().sender_mac;
        let vip = Ipv4Addr::new(192, 168, 0, 101);
        assert_eq!(
            neighbour_ip(table, mac, vip, "eth0"),
            Some(Ipv4Addr::new(192, 168, 0, 180))
        );
        assert_eq!(
            neighbour_ip(table, mac, vip, "eth2"),
            Some(Ipv4Addr::new(10, 9, 9, 9))
        );
        assert_eq!(neighbour_ip(table, Mac([2; 6]), vip, "eth0"), None);
        assert_eq!(neighbour_ip("", mac, vip, "eth0"), None);
    }

    #[test]
    fn a_neighbour_advert_gives_its_target_and_mac() {
        let vip: Ipv6Addr = "2001:db8::101".parse().unwrap();
        let advert = nd_message(ND_NEIGHBOR_ADVERT, 0x60, vip, ND_OPT_TARGET_LL, ME);
        let want = NeighbourAdvert {
            target: vip,
            mac: Some(ME),
        };
        assert_eq!(parse_neighbour_advert(&advert), Some(want));
        // Without options: no MAC. Other options are skipped.
        assert_eq!(
            parse_neighbour_advert(&advert[..24]),
            Some(NeighbourAdvert {
                target: vip,
                mac: None
            })
        );
        let mut other_first = advert[..24].to_vec();
        other_first.extend_from_slice(&[ND_OPT_SOURCE_LL, 1, 9, 9, 9, 9, 9, 9]);
        other_first.extend_from_slice(&advert[24..]);
        assert_eq!(parse_neighbour_advert(&other_first), Some(want));
    }

    #[test]
    fn malformed_or_other_icmpv6_is_refused() {
        let vip: Ipv6Addr = "2001:db8::101".parse().unwrap();
        let advert = nd_message(ND_NEIGHBOR_ADVERT, 0, vip, ND_OPT_TARGET_LL, ME);
        for n in 0..24 {
            assert_eq!(parse_neighbour_advert(&advert[..n]), None, "{n} bytes");
        }
        let solicit = nd_message(ND_NEIGHBOR_SOLICIT, 0, vip, ND_OPT_SOURCE_LL, ME);
        assert_eq!(parse_neighbour_advert(&solicit), None);
        let mut zero_length = advert;
        zero_length[25] = 0;
        assert_eq!(parse_neighbour_advert(&zero_length), None);
        let mut past_the_end = advert;
        past_the_end[25] = 2;
        assert_eq!(parse_neighbour_advert(&past_the_end), None);
        assert_eq!(parse_neighbour_advert(&advert[..30]), None);
    }

    #[test]
    fn the_solicited_node_address_takes_the_last_24_bits() {
        let vip: Ipv6Addr = "2001:db8::aabb:ccdd".parse().unwrap();
        assert_eq!(
            solicited_node(vip),
            "ff02::1:ffbb:ccdd".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn the_loopback_holds_127_0_0_1() {
        assert_eq!(
            interface_holding("127.0.0.1".parse().unwrap())
                .unwrap()
                .as_deref(),
            Some("lo")
        );
        assert_eq!(
            interface_holding("192.0.2.254".parse().unwrap()).unwrap(),
            None
        );
        assert_eq!(
            interfaces_holding(&["192.0.2.254".parse().unwrap(), "127.0.0.1".parse().unwrap()])
                .unwrap(),
            [None, Some("lo".to_string())],
            "each in order, from one read"
        );
    }
}
