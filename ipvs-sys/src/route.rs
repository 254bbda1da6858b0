//! The routes announcing the VIPs (`[announce]`): one [`RouteBackend`] trait, over rtnetlink
//! ([`NetlinkRoutes`], an in-house codec of `RTM_NEWROUTE` / `RTM_DELROUTE` / `RTM_GETROUTE`)
//! and in memory ([`MemoryRoutes`], for tests and the simulator).
//!
//! A route is what `ip route add 10.0.0.1/32 dev lo table 100 proto 99` makes: a unicast host
//! route out of `lo` (scope link for IPv4, universe for IPv6, as `ip` picks them), in the
//! table and with the `rtm_protocol` of [`Route`]. Reading returns only the host routes of one
//! table and one protocol: routes of other protocols are never seen, so never touched.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_hc_core::announce::{Route, RouteOp};

use crate::netlink::{NetlinkSocket, Transport};
use crate::TIMEOUT;

/// A failed route read or change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// A socket call failed: lvs-hc cannot talk rtnetlink (sandboxed?). Check the unit's
    /// `RestrictAddressFamilies=` allows `AF_NETLINK`.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The kernel refused: the errno and its text (`EPERM`: lvs-hc needs CAP_NET_ADMIN;
    /// `EEXIST` on an add: a route to that address with another protocol is in the table).
    #[error("{what}: {message} (errno {errno})")]
    Kernel {
        /// What was asked.
        what: String,
        /// The errno.
        errno: i32,
        /// Its text.
        message: String,
    },
    /// The kernel did not answer in time (it may still have done it: the next read tells).
    #[error("{what}: the kernel did not answer within {}s", after.as_secs())]
    Timeout {
        /// What was asked.
        what: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// An answer that could not be read: a bug, or a kernel newer than this codec.
    #[error("{what}: unreadable answer: {detail}")]
    Decode {
        /// What was asked.
        what: String,
        /// What was wrong.
        detail: String,
    },
}

/// Where lvs-hc's routes live: read them, change them.
pub trait RouteBackend: Send {
    /// The host routes (`/32`, `/128`) of `protocol` in `table`.
    fn routes(&mut self, table: u32, protocol: u8) -> Result<Vec<Route>, RouteError>;

    /// Adds or deletes one route. Deleting a route that is gone succeeds (someone else's
    /// withdrawal got there first); adding one that exists fails.
    fn apply(&mut self, op: &RouteOp) -> Result<(), RouteError>;

    /// Deletes every host route of `protocol` in `table` (the watchdog, `lvs-hc withdraw`,
    /// the exit): returns how many went, or the first failure (the others are still tried).
    fn withdraw_all(&mut self, table: u32, protocol: u8) -> Result<usize, RouteError> {
        let mut gone = 0;
        let mut first = None;
        for route in self.routes(table, protocol)? {
            match self.apply(&RouteOp::Del(route)) {
                Ok(()) => gone += 1,
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(gone), Err)
    }
}

/// Routes in memory with the kernel's strictness (adding a route that exists fails), shared
/// between clones: the driver and its watchdog see the same routes, as they would the kernel's.
#[derive(Clone, Debug, Default)]
pub struct MemoryRoutes {
    routes: Arc<Mutex<BTreeSet<Route>>>,
    fail: Arc<Mutex<Option<String>>>,
}

impl MemoryRoutes {
    /// No routes.
    pub fn new() -> MemoryRoutes {
        MemoryRoutes::default()
    }

    /// Every route held, of any table and protocol.
    pub fn all(&self) -> BTreeSet<Route> {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adds a route directly (someone else's, or one left from a previous run).
    pub fn insert(&self, route: Route) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(route);
    }

    /// Changes fail with `error` while it is set (reads still work).
    pub fn fail_with(&self, error: Option<String>) {
        *self.fail.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

impl RouteBackend for MemoryRoutes {
    fn routes(&mut self, table: u32, protocol: u8) -> Result<Vec<Route>, RouteError> {
        Ok(self
            .all()
            .into_iter()
            .filter(|r| r.table == table && r.protocol == protocol)
            .collect())
    }

    fn apply(&mut self, op: &RouteOp) -> Result<(), RouteError> {
        if let Some(message) = self.fail.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(RouteError::Kernel {
                what: op.to_string(),
                errno: libc::EPERM,
                message,
            });
        }
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        match *op {
            RouteOp::Add(r) => {
                // One route per destination and table, whatever its protocol, as the kernel.
                if routes.iter().any(|x| x.vip == r.vip && x.table == r.table) {
                    return Err(RouteError::Kernel {
                        what: op.to_string(),
                        errno: libc::EEXIST,
                        message: "File exists".into(),
                    });
                }
                routes.insert(r);
            }
            RouteOp::Del(r) => {
                routes.remove(&r);
            }
        }
        Ok(())
    }
}

/// lvs-hc's routes over rtnetlink.
pub struct NetlinkRoutes {
    transport: Box<dyn Transport + Send>,
    seq: u32,
    timeout: Duration,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NetlinkRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkRoutes").finish_non_exhaustive()
    }
}

impl NetlinkRoutes {
    /// Opens an rtnetlink socket.
    pub fn connect() -> Result<NetlinkRoutes, RouteError> {
        let socket =
            NetlinkSocket::open_protocol(netlink_sys::protocols::NETLINK_ROUTE).map_err(|e| {
                RouteError::Io {
                    context: "opening an rtnetlink socket".into(),
                    source: io::Error::other(e.to_string()),
                }
            })?;
        Ok(NetlinkRoutes::with_transport(Box::new(socket), TIMEOUT))
    }

    /// Over `transport` (a scripted kernel in tests), each receive waiting at most `timeout`.
    pub fn with_transport(transport: Box<dyn Transport + Send>, timeout: Duration) -> Self {
        NetlinkRoutes {
            transport,
            seq: 0,
            timeout,
            buf: vec![0; 64 * 1024],
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&mut self, what: &str, bytes: &[u8]) -> Result<(), RouteError> {
        self.transport.send(bytes).map_err(|source| RouteError::Io {
            context: format!("{what}: sending"),
            source,
        })
    }

    fn recv(&mut self, what: &str) -> Result<usize, RouteError> {
        self.transport
            .recv(&mut self.buf, self.timeout)
            .map_err(|source| match source.kind() {
                io::ErrorKind::TimedOut => RouteError::Timeout {
                    what: what.to_string(),
                    after: self.timeout,
                },
                _ => RouteError::Io {
                    context: format!("{what}: receiving"),
                    source,
                },
            })
    }
}

impl RouteBackend for NetlinkRoutes {
    fn routes(&mut self, table: u32, protocol: u8) -> Result<Vec<Route>, RouteError> {
        let what = format!("reading the routes of table {table}");
        let seq = self.next_seq();
        self.send(&what, &dump_request(seq))?;
        let mut out = Vec::new();
        loop {
            let n = self.recv(&what)?;
            for msg in split(&self.buf[..n]).map_err(|detail| decode(&what, detail))? {
                if msg.seq != seq {
                    continue;
                }
                match msg.kind {
                    NLMSG_DONE => return Ok(out),
                    NLMSG_ERROR => {
                        let code = error_code(msg.payload).map_err(|d| decode(&what, d))?;
                        if code != 0 {
                            return Err(kernel(&what, code));
                        }
                    }
                    RTM_NEWROUTE => {
                        let r = parse_route(msg.payload).map_err(|d| decode(&what, d))?;
                        if let Some(r) = r.filter(|r| r.table == table && r.protocol == protocol) {
                            out.push(r);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn apply(&mut self, op: &RouteOp) -> Result<(), RouteError> {
        let what = op.to_string();
        let lo = loopback_index().map_err(|source| RouteError::Io {
            context: format!("{what}: finding lo's interface index"),
            source,
        })?;
        let seq = self.next_seq();
        self.send(&what, &change_request(op, lo, seq))?;
        loop {
            let n = self.recv(&what)?;
            for msg in split(&self.buf[..n]).map_err(|d| decode(&what, d))? {
                if msg.seq != seq || msg.kind != NLMSG_ERROR {
                    continue;
                }
                let code = error_code(msg.payload).map_err(|d| decode(&what, d))?;
                return match (op, code) {
                    (_, 0) => Ok(()),
                    // Gone already: what a delete wants.
                    (RouteOp::Del(_), c) if -c == libc::ESRCH => Ok(()),
                    (_, c) => Err(kernel(&what, c)),
                };
            }
        }
    }
}

fn decode(what: &str, detail: String) -> RouteError {
    RouteError::Decode {
        what: what.to_string(),
        detail,
    }
}

fn kernel(what: &str, code: i32) -> RouteError {
    let errno = code.saturating_neg();
    RouteError::Kernel {
        what: what.to_string(),
        errno,
        message: io::Error::from_raw_os_error(errno).to_string(),
    }
}

/// lo's interface index (1 in every network namespace in practice; asked, not assumed).
fn loopback_index() -> io::Result<u32> {
    // SAFETY: the argument is a NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_TABLE: u16 = 15;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
/// `rtm_table` of a route whose table only `RTA_TABLE` can hold (above 255).
const RT_TABLE_UNSPEC: u8 = 0;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;
const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;

/// `RTM_GETROUTE` dump of every family (filtered by table and protocol here: without
/// `NETLINK_GET_STRICT_CHK` the kernel ignores filters in the request).
pub fn dump_request(seq: u32) -> Vec<u8> {
    let mut b = Vec::new();
    header(&mut b, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
    rtmsg(&mut b, 0, 0, 0, 0, 0, 0);
    finish(b)
}

/// `RTM_NEWROUTE` (create, exclusive) or `RTM_DELROUTE` of `op`'s route out of interface `lo`.
pub fn change_request(op: &RouteOp, lo: u32, seq: u32) -> Vec<u8> {
    let r = op.route();
    let (family, scope) = match r.vip {
        IpAddr::V4(_) => (AF_INET, RT_SCOPE_LINK),
        IpAddr::V6(_) => (AF_INET6, RT_SCOPE_UNIVERSE),
    };
    let table8 = u8::try_from(r.table).unwrap_or(RT_TABLE_UNSPEC);
    let mut b = Vec::new();
    match op {
        RouteOp::Add(_) => {
            header(
                &mut b,
                RTM_NEWROUTE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                seq,
            );
            rtmsg(
                &mut b,
                family,
                r.prefix_len(),
                table8,
                r.protocol,
                scope,
                RTN_UNICAST,
            );
        }
        RouteOp::Del(_) => {
            header(&mut b, RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq);
            // Scope "nowhere" and type 0 match any; the protocol must match: never delete
            // another's route to the same address.
            rtmsg(
                &mut b,
                family,
                r.prefix_len(),
                table8,
                r.protocol,
                RT_SCOPE_NOWHERE,
                0,
            );
        }
    }
    match r.vip {
        IpAddr::V4(a) => attr(&mut b, RTA_DST, &a.octets()),
        IpAddr::V6(a) => attr(&mut b, RTA_DST, &a.octets()),
    }
    attr(&mut b, RTA_OIF, &lo.to_ne_bytes());
    attr(&mut b, RTA_TABLE, &r.table.to_ne_bytes());
    finish(b)
}

fn header(b: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's is 0
}

fn rtmsg(b: &mut Vec<u8>, family: u8, dst_len: u8, table: u8, proto: u8, scope: u8, kind: u8) {
    b.extend_from_slice(&[family, dst_len, 0, 0, table, proto, scope, kind]);
    b.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
}

fn attr(b: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    b.extend_from_slice(&(len as u16).to_ne_bytes());
    b.extend_from_slice(&kind.to_ne_bytes());
    b.extend_from_slice(value);
    b.resize(b.len().next_multiple_of(4), 0);
}

fn finish(mut b: Vec<u8>) -> Vec<u8> {
    let len = (b.len() as u32).to_ne_bytes();
    b[..4].copy_from_slice(&len);
    b
}

/// One netlink message of a datagram.
struct Message<'a> {
    kind: u16,
    seq: u32,
    payload: &'a [u8],
}

fn split(mut buf: &[u8]) -> Result<Vec<Message<'_>>, String> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(format!(
                "message length {len} with {} bytes left",
                buf.len()
            ));
        }
        out.push(Message {
            kind: u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes")),
            seq: u32::from_ne_bytes(buf[8..12].try_into().expect("4 bytes")),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    Ok(out)
}

fn error_code(payload: &[u8]) -> Result<i32, String> {
    let raw = payload
        .get(..4)
        .ok_or_else(|| "short error message".to_string())?;
    Ok(i32::from_ne_bytes(raw.try_into().expect("4 bytes")))
}

/// The route of an `RTM_NEWROUTE` message when it is a unicast host route with a destination;
/// `None` for any other.
fn parse_route(payload: &[u8]) -> Result<Option<Route>, String> {
    if payload.len() < RTMSG_LEN {
        return Err(format!("route message of {} bytes", payload.len()));
    }
    let (family, dst_len, table8, protocol, kind) =
        (payload[0], payload[1], payload[4], payload[5], payload[7]);
    let mut table = u32::from(table8);
    let mut dst = None;
    let mut attrs = &payload[RTMSG_LEN..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return Err(format!(
                "attribute length {len} with {} bytes left",
                attrs.len()
            ));
        }
        let value = &attrs[4..len];
        match kind {
            RTA_TABLE if value.len() == 4 => {
                table = u32::from_ne_bytes(value.try_into().expect("4 bytes"))
            }
            RTA_DST => dst = Some(value),
            _ => {}
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    let vip = match (family, dst) {
        (AF_INET, Some(v)) if dst_len == 32 && v.len() == 4 => {
            IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(v).expect("4 bytes")))
        }
        (AF_INET6, Some(v)) if dst_len == 128 && v.len() == 16 => {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(v).expect("16 bytes")))
        }
        _ => return Ok(None),
    };
    if kind != RTN_UNICAST {
        return Ok(None);
    }
    Ok(Some(Route {
        vip,
        table,
        protocol,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(vip: &str, table: u32) -> Route {
        Route {
            vip: vip.parse().unwrap(),
            table,
            protocol: 99,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The bytes `ip route add 10.0.0.1/32 dev lo table 100 proto 99` sends (strace shows the
    /// same header flags and rtmsg), plus RTA_TABLE, which `ip` leaves out for a table below
    /// 256: header, rtmsg (inet, /32, table 100, proto 99, scope link, unicast), RTA_DST,
    /// RTA_OIF 1, RTA_TABLE 100.
    #[test]
    #[cfg(target_endian = "little")]
    fn an_ipv4_add_is_the_message_ip_route_sends() {
        let b = change_request(&RouteOp::Add(route("10.0.0.1", 100)), 1, 7);
        assert_eq!(
            hex(&b),
            concat!(
                "34000000", "1800", "0506", "07000000", "00000000", // nlmsghdr
                "02200000", "6463fd01", "00000000", // rtmsg
                "08000100", "0a000001", // RTA_DST
                "08000400", "01000000", // RTA_OIF
                "08000f00", "64000000", // RTA_TABLE
            )
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn a_delete_matches_any_scope_but_only_our_protocol_and_a_big_table_goes_in_rta_table() {
        let b = change_request(&RouteOp::Del(route("fd00::1", 100_000)), 1, 1);
        let rtmsg = &b[16..28];
        // inet6, /128, rtm_table unspec (100000 does not fit), proto 99, scope nowhere, type 0.
        assert_eq!(hex(rtmsg), "0a8000000063ff0000000000");
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), RTM_DELROUTE);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(hex(&b[b.len() - 8..]), "08000f00a0860100");
        assert_eq!(b.len(), 16 + 12 + 20 + 8 + 8);
    }

    #[test]
    fn a_dump_reply_gives_only_host_unicast_routes_with_the_table_from_rta_table() {
        let mut reply = Vec::new();
        for (dst, len, table) in [("10.0.0.1", 32, 100_000u32), ("10.0.0.0", 24, 100)] {
            let mut b = Vec::new();
            header(&mut b, RTM_NEWROUTE, 2, 5);
            rtmsg(&mut b, AF_INET, len, 0, 99, RT_SCOPE_LINK, RTN_UNICAST);
            let a: Ipv4Addr = dst.parse().unwrap();
            attr(&mut b, RTA_DST, &a.octets());
            attr(&mut b, RTA_TABLE, &table.to_ne_bytes());
            reply.extend(finish(b));
        }
        let msgs = split(&reply).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            parse_route(msgs[0].payload).unwrap(),
            Some(route("10.0.0.1", 100_000))
        );
        assert_eq!(
            parse_route(msgs[1].payload).unwrap(),
            None,
            "not a host route"
        );
        assert!(split(&[0x40, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn memory_routes_refuse_a_second_route_to_the_same_address_in_a_table() {
        let mut m = MemoryRoutes::new();
        m.insert(Route {
            protocol: 4,
            ..route("10.0.0.1", 100)
        });
        let e = m.apply(&RouteOp::Add(route("10.0.0.1", 100))).unwrap_err();
        assert!(e.to_string().contains("errno 17"), "{e}");
        m.apply(&RouteOp::Add(route("10.0.0.2", 100))).unwrap();
        assert_eq!(m.routes(100, 99).unwrap(), vec![route("10.0.0.2", 100)]);
        assert_eq!(m.withdraw_all(100, 99).unwrap(), 1);
        assert_eq!(m.all().len(), 1, "the static route stays");
    }
}
