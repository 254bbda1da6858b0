//! Ping checks: an ICMP (or ICMPv6) echo request to the server's address, passing on the
//! matching echo reply.
//!
//! The socket is an unprivileged ICMP socket (`SOCK_DGRAM`, `IPPROTO_ICMP`/`IPPROTO_ICMPV6`)
//! when `net.ipv4.ping_group_range` (which governs IPv6 too) holds one of this process's
//! groups, else a raw socket, which needs `CAP_NET_RAW`. Which one is used, and why, is logged
//! the first time for each address family. Neither available is a fault of this director, not
//! of the server.
//!
//! On a datagram socket the kernel sets the echo identifier itself and hands the socket only
//! replies to it; a raw socket sees every ICMP packet of its family, so a reply is matched by
//! identifier there too. Both match the sequence number and the payload, a token drawn for the
//! probe. Three requests are sent, a third of the timeout apart (a lost packet alone fails no
//! check); any matching reply passes. A destination unreachable or time exceeded error about
//! one of them fails the probe with the error's words; no answer at all fails at the timeout
//! (the [`Prober`](super::Prober) says "no echo reply").
//!
//! Pings use real sockets always: the simulated network has no ICMP, and `lvs-hc simulate`
//! refuses configurations with ping checks.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use lvs_hc_core::ProbeOutcome;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{errno_text, fail, io_reason, DirectorError};
use crate::socket::{recv, set_int};

/// The kind of ICMP socket a ping uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpSocket {
    /// An unprivileged ICMP socket (`SOCK_DGRAM`), allowed by `net.ipv4.ping_group_range`.
    Datagram,
    /// A raw socket (`SOCK_RAW`), allowed by `CAP_NET_RAW`.
    Raw,
}

/// Requests sent per probe, spread over its timeout.
const REQUESTS: u32 = 3;
/// Bytes after the ICMP header: a token drawn for the probe, then `lvs-hc`.
const PAYLOAD: usize = 16;

/// Sends echo requests to `ip` (from `source` when given) until a matching reply or an error
/// about them arrives. Runs until then: the prober's timeout bounds it.
pub async fn ping(ip: IpAddr, source: Option<IpAddr>, timeout: Duration) -> ProbeOutcome {
    ping_with(ip, source, timeout).await.0
}

/// [`ping`], also saying which kind of socket it used (`None`: it could open none).
pub async fn ping_with(
    ip: IpAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> (ProbeOutcome, Option<IcmpSocket>) {
    let (fd, kind) = match open(ip) {
        Ok(s) => s,
        Err(reason) => return (ProbeOutcome::DirectorFault { reason }, None),
    };
    let outcome = match exchange(fd, kind, ip, source, timeout).await {
        Ok(outcome) => outcome,
        Err(e) => match super::director_fault(&e) {
            Some(reason) => ProbeOutcome::DirectorFault { reason },
            None => fail(io_reason(&e)),
        },
    };
    (outcome, Some(kind))
}

/// Opens an ICMP socket for `ip`'s family: a datagram one if allowed, else a raw one.
fn open(ip: IpAddr) -> Result<(OwnedFd, IcmpSocket), String> {
    let (domain, protocol, family) = match ip {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP, Family::V4),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6, Family::V6),
    };
    let dgram = socket(domain, libc::SOCK_DGRAM, protocol);
    let dgram_err = match dgram {
        Ok(fd) => {
            family.log_once(IcmpSocket::Datagram, || {
                "net.ipv4.ping_group_range includes one of this process's groups".into()
            });
            return Ok((fd, IcmpSocket::Datagram));
        }
        Err(e) => e,
    };
    if !denied(&dgram_err) {
        return Err(format!(
            "cannot open an unprivileged {} socket: {}",
            family.icmp(),
            errno_text(&dgram_err)
        ));
    }
    match socket(domain, libc::SOCK_RAW, protocol) {
        Ok(fd) => {
            family.log_once(IcmpSocket::Raw, || {
                format!(
                    "net.ipv4.ping_group_range ({}) excludes this process's groups, and it has \
                     CAP_NET_RAW",
                    ping_group_range()
                )
            });
            Ok((fd, IcmpSocket::Raw))
        }
        Err(e) if denied(&e) => Err(format!(
            "cannot open an {} socket: unprivileged ICMP sockets are not allowed for this \
             process's groups (net.ipv4.ping_group_range is {}) and it lacks CAP_NET_RAW for a \
             raw socket ({}); set net.ipv4.ping_group_range to include lvs-hc's group \
             (sysctl -w net.ipv4.ping_group_range=\"0 2147483647\") or grant CAP_NET_RAW \
             (AmbientCapabilities=CAP_NET_RAW in the systemd unit)",
            family.icmp(),
            ping_group_range(),
            errno_text(&e)
        )),
        Err(e) => Err(format!(
            "cannot open a raw {} socket: {}",
            family.icmp(),
            errno_text(&e)
        )),
    }
}

/// Whether a socket could not be opened for want of permission.
fn denied(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the descriptor it returns is ours alone.
    let fd = unsafe {
        libc::socket(
            domain,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `net.ipv4.ping_group_range` as the kernel shows it (`1 0`: no group).
pub fn ping_group_range() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn icmp(self) -> &'static str {
        match self {
            Family::V4 => "ICMP",
            Family::V6 => "ICMPv6",
        }
    }

    /// Logs the socket kind chosen, once per family and kind (`why` is asked only then: it
    /// may read /proc).
    fn log_once(self, kind: IcmpSocket, why: impl FnOnce() -> String) {
        static LOGGED: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];
        let i = (self as usize) * 2 + (kind as usize);
        if !LOGGED[i].swap(true, Ordering::Relaxed) {
            let kind = match kind {
                IcmpSocket::Datagram => "unprivileged datagram",
                IcmpSocket::Raw => "raw",
            };
            tracing::info!("ping checks use {kind} {} sockets: {}", self.icmp(), why());
        }
    }
}

/// The next probe's sequence numbers and token.
fn draw() -> (u16, [u8; PAYLOAD]) {
    static SEQUENCE: AtomicU16 = AtomicU16::new(0);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seq = SEQUENCE.fetch_add(REQUESTS as u16, Ordering::Relaxed);
    // Unpredictable enough that no stray reply matches: the clock, the process and a count.
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = clock
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let x = lvs_hc_core::rng::SplitMix64::new(seed).next_u64();
    let mut payload = [0u8; PAYLOAD];
    payload[..8].copy_from_slice(&x.to_be_bytes());
    payload[8..14].copy_from_slice(b"lvs-hc");
    (seq, payload)
}

/// What one received packet means for the probe.
#[derive(Debug, PartialEq, Eq)]
enum Received {
    /// The reply to one of our requests.
    Reply,
    /// An ICMP error about one of our requests, in the operator's words.
    Error(String),
    /// Something else (another process's ping, a stray packet).
    Other,
}

async fn exchange(
    fd: OwnedFd,
    kind: IcmpSocket,
    ip: IpAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<ProbeOutcome> {
    let v6 = ip.is_ipv6();
    if let Some(src) = source {
        bind(&fd, SocketAddr::new(src, 0))
            .map_err(|e| DirectorError::wrap(&format!("cannot bind to source {src}"), &e))?;
    }
    if kind == IcmpSocket::Datagram {
        // ICMP errors about our requests reach a datagram socket only through its error
        // queue (a raw socket sees them as packets).
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
        } else {
            (libc::IPPROTO_IP, libc::IP_RECVERR)
        };
        set_int(&fd, level, name, 1)
            .map_err(|e| DirectorError::wrap("cannot set IP_RECVERR", &e))?;
    }
    // SAFETY: the `OwnedFd` is open, and the `AsyncFd` owns it until it is dropped.
    let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::ERROR) }
        .map_err(|e| DirectorError::wrap("cannot register the ICMP socket", &e.into()))?;
    let (first_seq, payload) = draw();
    // The identifier a raw socket's replies carry (a datagram socket's is the kernel's).
    let id = u16::from_be_bytes([payload[0], payload[1]]);
    let spacing = timeout / REQUESTS;
    let mut sent = 0u32;
    let mut next_send = tokio::time::Instant::now();
    let mut buf = [0u8; 1500];
    loop {
        if sent < REQUESTS && tokio::time::Instant::now() >= next_send {
            let seq = first_seq.wrapping_add(sent as u16);
            let packet = echo_request(v6, id, seq, &payload);
            match send_to(afd.get_ref(), &packet, ip) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Ok(send_error(&e)),
            }
            sent += 1;
            next_send += spacing;
        }
        let wait = async {
            if sent < REQUESTS {
                tokio::time::sleep_until(next_send).await;
                None
            } else {
                std::future::pending::<Option<()>>().await
            }
        };
        let mut guard = tokio::select! {
            ready = afd.ready(Interest::READABLE | Interest::ERROR) => ready?,
            _ = wait => continue,
        };
        // Errors queued for a datagram socket first, then packets, until none is left or
        // `DRAIN` were taken: a raw socket sees every ICMP packet the host receives, so a flood
        // must not keep this task from yielding (and the probe's timeout from firing).
        let mut pending_errors = 0;
        let mut drained = 0;
        loop {
            drained += 1;
            if drained > DRAIN {
                // Readiness is kept: the rest is read after a turn of the runtime.
                tokio::task::yield_now().await;
                break;
            }
            if kind == IcmpSocket::Datagram {
                match queued_error(afd.get_ref(), v6, first_seq) {
                    Ok(Some(reason)) => return Ok(fail(reason)),
                    Ok(None) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            match recv(afd.get_ref(), &mut buf) {
                Ok(n) => {
                    let packet = &buf[..n];
                    let icmp = match (kind, v6) {
                        // A raw IPv4 socket gets the IP header too.
                        (IcmpSocket::Raw, false) => strip_ipv4_header(packet),
                        _ => Some(packet),
                    };
                    let Some(icmp) = icmp else { continue };
                    let want_id = (kind == IcmpSocket::Raw).then_some(id);
                    match classify(icmp, v6, want_id, first_seq, &payload) {
                        Received::Reply => return Ok(ProbeOutcome::Pass { weight: None }),
                        Received::Error(reason) => return Ok(fail(reason)),
                        Received::Other => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                // The socket's pending error, reported once (the queued one is read above);
                // bounded, should an error ever repeat.
                Err(_) if kind == IcmpSocket::Datagram && pending_errors < 8 => {
                    pending_errors += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A failure to send: the local routing's verdict (no route, a prohibit route), or the
/// director's fault.
fn send_error(e: &io::Error) -> ProbeOutcome {
    if let Some(reason) = super::director_fault(e) {
        return ProbeOutcome::DirectorFault { reason };
    }
    fail(format!("cannot send an echo request: {}", io_reason(e)))
}

/// Most packets or queued errors read from the socket before the probe yields.
const DRAIN: u32 = 64;

/// Whether `seq` is one of this probe's.
fn ours(seq: u16, first: u16) -> bool {
    seq.wrapping_sub(first) < REQUESTS as u16
}

/// An echo request: type, code, checksum, identifier, sequence, payload. The checksum is
/// computed for ICMP; the kernel computes ICMPv6's (it covers a pseudo-header).
fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload.len());
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message of an IPv4 packet.
fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    packet.get(ihl..).filter(|_| ihl >= 20)
}

/// What an ICMP message means for a probe that sent `REQUESTS` requests from `first_seq` with
/// `payload`, and on a raw socket identifier `want_id`.
fn classify(
    icmp: &[u8],
    v6: bool,
    want_id: Option<u16>,
    first_seq: u16,
    payload: &[u8],
) -> Received {
    if icmp.len() < 8 {
        return Received::Other;
    }
    let (kind, code) = (icmp[0], icmp[1]);
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
    let reply = if v6 { 129 } else { 0 };
    if kind == reply {
        let matches = want_id.is_none_or(|w| w == id)
            && ours(seq, first_seq)
            && icmp[8..].starts_with(payload);
        return if matches {
            Received::Reply
        } else {
            Received::Other
        };
    }
    let Some(what) = error_words(v6, kind, code) else {
        return Received::Other;
    };
    // An error quotes the packet it is about: its IP header, then our echo request's first
    // 8 bytes at least.
    let quoted = &icmp[8..];
    let echo = if v6 {
        quoted.get(40..)
    } else {
        strip_ipv4_header(quoted)
    };
    let Some(echo) = echo.filter(|e| e.len() >= 8) else {
        return Received::Other;
    };
    let request = if v6 { 128 } else { 8 };
    let echo_id = u16::from_be_bytes([echo[4], echo[5]]);
    let echo_seq = u16::from_be_bytes([echo[6], echo[7]]);
    if echo[0] == request && want_id.is_none_or(|w| w == echo_id) && ours(echo_seq, first_seq) {
        Received::Error(what)
    } else {
        Received::Other
    }
}

/// The operator's words for an ICMP error, or `None` when `kind` is no error about a packet
/// sent.
fn error_words(v6: bool, kind: u8, code: u8) -> Option<String> {
    let text = if v6 {
        match (kind, code) {
            (1, 0) => "destination unreachable (no route to destination)",
            (1, 1) => "destination unreachable (administratively prohibited)",
            (1, 2) => "destination unreachable (beyond scope of source address)",
            (1, 3) => "destination unreachable (address unreachable)",
            (1, 4) => "destination unreachable (port unreachable)",
            (1, 5) => "destination unreachable (source address failed policy)",
            (1, 6) => "destination unreachable (reject route)",
            (1, c) => return Some(format!("destination unreachable (code {c})")),
            (3, 0) => "time exceeded (hop limit exceeded in transit)",
            (3, c) => return Some(format!("time exceeded (code {c})")),
            _ => return None,
        }
    } else {
        match (kind, code) {
            (3, 0) => "destination unreachable (network unreachable)",
            (3, 1) => "destination unreachable (host unreachable)",
            (3, 2) => "destination unreachable (protocol unreachable)",
            (3, 3) => "destination unreachable (port unreachable)",
            (3, 4) => "destination unreachable (fragmentation needed)",
            (3, 5) => "destination unreachable (source route failed)",
            (3, 6) => "destination unreachable (network unknown)",
            (3, 7) => "destination unreachable (host unknown)",
            (3, 9 | 10 | 13) => "destination unreachable (administratively prohibited)",
            (3, c) => return Some(format!("destination unreachable (code {c})")),
            (11, 0) => "time exceeded (TTL exceeded in transit)",
            (11, c) => return Some(format!("time exceeded (code {c})")),
            _ => return None,
        }
    };
    Some(text.to_string())
}

/// The next error in a datagram socket's error queue: `Ok(Some(reason))` for an ICMP error
/// about one of our requests, `Ok(None)` for another, `WouldBlock` when the queue is empty.
fn queued_error(fd: &OwnedFd, v6: bool, first_seq: u16) -> io::Result<Option<String>> {
    let mut data = [0u8; 1500];
    // u64s: the control messages' headers need cmsghdr's alignment.
    let mut control = [0u64; 64];
    let mut from: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as u32;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control);
    // SAFETY: msg points at live buffers of the sizes it states.
    let n = unsafe {
        libc::recvmsg(
            fd.as_raw_fd(),
            &mut msg,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // The data is our request as sent (the kernel's identifier in it); its sequence says
    // whether it was this probe's.
    let request = &data[..n as usize];
    if request.len() < 8 || !ours(u16::from_be_bytes([request[6], request[7]]), first_seq) {
        return Ok(None);
    }
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, within
    // msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let is_err = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            if is_err {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let icmp_origin = if v6 {
                    libc::SO_EE_ORIGIN_ICMP6
                } else {
                    libc::SO_EE_ORIGIN_ICMP
                };
                if ee.ee_origin == icmp_origin {
                    if let Some(words) = error_words(v6, ee.ee_type, ee.ee_code) {
                        return Ok(Some(words));
                    }
                }
                let e = io::Error::from_raw_os_error(ee.ee_errno as i32);
                // Not from the network (the director's own stack: no buffer space, say): the
                // caller tells a fault of the director from a failure.
                if super::director_fault(&e).is_some() {
                    return Err(e);
                }
                return Ok(Some(io_reason(&e)));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(None)
}

fn send_to(fd: &OwnedFd, packet: &[u8], ip: IpAddr) -> io::Result<()> {
    let (addr, len) = sockaddr(SocketAddr::new(ip, 0));
    // SAFETY: packet and addr are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            libc::MSG_DONTWAIT,
            (&addr as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bind(fd: &OwnedFd, at: SocketAddr) -> io::Result<()> {
    let (addr, len) = sockaddr(at);
    // SAFETY: addr is valid for len bytes.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `at` as a C socket address.
fn sockaddr(at: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match at {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_checksums_to_zero() {
        let p = echo_request(false, 0x1234, 7, b"lvs-hc token!!");
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(checksum(&p), 0);
        // ICMPv6's checksum is the kernel's.
        assert_eq!(&echo_request(true, 1, 2, b"x")[..4], &[128, 0, 0, 0]);
    }

    #[test]
    fn replies_match_on_sequence_payload_and_on_raw_sockets_identifier() {
        let payload = b"0123456789abcdef";
        let mut reply = echo_request(false, 0x1234, 101, payload);
        reply[0] = 0;
        assert_eq!(classify(&reply, false, None, 100, payload), Received::Reply);
        assert_eq!(
            classify(&reply, false, Some(0x1234), 100, payload),
            Received::Reply
        );
        // Another process's ping: another identifier on a raw socket.
        assert_eq!(
            classify(&reply, false, Some(0x9999), 100, payload),
            Received::Other
        );
        // A sequence number not ours, or another payload.
        assert_eq!(classify(&reply, false, None, 200, payload), Received::Other);
        assert_eq!(
            classify(&reply, false, None, 100, b"fedcba9876543210"),
            Received::Other
        );
        // Our own request, as a raw socket on loopback sees it.
        let request = echo_request(false, 0x1234, 101, payload);
        assert_eq!(
            classify(&request, false, Some(0x1234), 100, payload),
            Received::Other
        );
    }

    #[test]
    fn an_unreachable_error_about_our_request_fails_with_its_words() {
        let payload = b"0123456789abcdef";
        let request = echo_request(false, 0x1234, 5, payload);
        // ICMP type 3 code 1, then the IPv4 header and our request.
        let mut error = vec![3, 1, 0, 0, 0, 0, 0, 0];
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        error.extend_from_slice(&ip);
        error.extend_from_slice(&request[..8]);
        assert_eq!(
            classify(&error, false, Some(0x1234), 5, payload),
            Received::Error("destination unreachable (host unreachable)".into())
        );
        // About someone else's request.
        assert_eq!(
            classify(&error, false, Some(0x4321), 5, payload),
            Received::Other
        );
        assert_eq!(
            error_words(true, 1, 3).as_deref(),
            Some("destination unreachable (address unreachable)")
        );
    }
}
