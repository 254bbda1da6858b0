//! The IPVS generic netlink messages: attributes, encoding and decoding, and the mapping
//! between them and lvs-hc's [`Op`], [`ServiceKey`] and table types. Pure: no sockets here.
//!
//! Layout (from `include/uapi/linux/ip_vs.h`): a request carries a nested
//! `IPVS_CMD_ATTR_SERVICE` naming the service (AF plus FWMARK, or PROTOCOL, ADDR and PORT; the
//! settings too when adding or editing), and for destination commands a nested
//! `IPVS_CMD_ATTR_DEST`. Ports are big-endian; addresses are 16-byte `nf_inet_addr` unions; an
//! IPv4 persistence netmask is a big-endian mask, an IPv6 one a prefix length in host order.
//!
//! The sync daemons have their own nested `IPVS_CMD_ATTR_DAEMON`: the state (1 master, 2
//! backup), interface and sync id as `ip_vs_genl_new_daemon` requires them, then what kernels
//! since 4.3 also take and report (`ip_vs_daemon_policy`): the longest message, the multicast
//! group (IPv4 big-endian as `nla_get_in_addr` reads it, or 16 IPv6 bytes), port and TTL. Unlike
//! a service's, a daemon's port is in host order (`nla_get_u16`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, NlasIterator, Parseable,
    ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use lvs_hc_core::{
    DestCounters, DestParams, Family, Forward, Op, Persistence, Protocol, SchedFlags, ServiceKey,
    ServiceParams, Stats, SyncDaemon, SyncOp, SyncRole,
};

/// The family name the kernel registers.
pub const FAMILY_NAME: &str = "IPVS";
/// The family version.
pub const FAMILY_VERSION: u8 = 1;

/// `IPVS_CMD_*`.
pub mod cmd {
    /// Add a service.
    pub const NEW_SERVICE: u8 = 1;
    /// Edit a service.
    pub const SET_SERVICE: u8 = 2;
    /// Delete a service.
    pub const DEL_SERVICE: u8 = 3;
    /// Get one service, or dump all.
    pub const GET_SERVICE: u8 = 4;
    /// Add a destination.
    pub const NEW_DEST: u8 = 5;
    /// Edit a destination.
    pub const SET_DEST: u8 = 6;
    /// Delete a destination.
    pub const DEL_DEST: u8 = 7;
    /// Dump the destinations of a service.
    pub const GET_DEST: u8 = 8;
    /// Start a sync daemon; also the command of each part of a GET_DAEMON dump.
    pub const NEW_DAEMON: u8 = 9;
    /// Stop a sync daemon.
    pub const DEL_DAEMON: u8 = 10;
    /// Dump the sync daemons running.
    pub const GET_DAEMON: u8 = 11;
    /// The reply to GET_INFO.
    pub const SET_INFO: u8 = 14;
    /// Version and connection table size.
    pub const GET_INFO: u8 = 15;
    /// Delete every service.
    pub const FLUSH: u8 = 17;
}

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
const CMD_ATTR_DAEMON: u16 = 3;

const SVC_AF: u16 = 1;
const SVC_PROTOCOL: u16 = 2;
const SVC_ADDR: u16 = 3;
const SVC_PORT: u16 = 4;
const SVC_FWMARK: u16 = 5;
const SVC_SCHED_NAME: u16 = 6;
const SVC_FLAGS: u16 = 7;
const SVC_TIMEOUT: u16 = 8;
const SVC_NETMASK: u16 = 9;
const SVC_STATS: u16 = 10;
const SVC_PE_NAME: u16 = 11;
const SVC_STATS64: u16 = 12;

const DEST_ADDR: u16 = 1;
const DEST_PORT: u16 = 2;
const DEST_FWD_METHOD: u16 = 3;
const DEST_WEIGHT: u16 = 4;
const DEST_U_THRESH: u16 = 5;
const DEST_L_THRESH: u16 = 6;
const DEST_ACTIVE_CONNS: u16 = 7;
const DEST_INACT_CONNS: u16 = 8;
const DEST_PERSIST_CONNS: u16 = 9;
const DEST_STATS: u16 = 10;
const DEST_ADDR_FAMILY: u16 = 11;
const DEST_STATS64: u16 = 12;

const DAEMON_STATE: u16 = 1;
const DAEMON_MCAST_IFN: u16 = 2;
const DAEMON_SYNC_ID: u16 = 3;
const DAEMON_SYNC_MAXLEN: u16 = 4;
const DAEMON_MCAST_GROUP: u16 = 5;
const DAEMON_MCAST_GROUP6: u16 = 6;
const DAEMON_MCAST_PORT: u16 = 7;
const DAEMON_MCAST_TTL: u16 = 8;

const INFO_VERSION: u16 = 1;
const INFO_CONN_TAB_SIZE: u16 = 2;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const IPPROTO_SCTP: u16 = 132;

const F_PERSISTENT: u32 = 0x1;
const F_HASHED: u32 = 0x2;
const F_ONEPACKET: u32 = 0x4;
const F_SCHED_SHIFT: u32 = 3;

const FWD_MASQ: u32 = 0;
const FWD_LOCALNODE: u32 = 1;
const FWD_TUNNEL: u32 = 2;
const FWD_DROUTE: u32 = 3;
const FWD_MASK: u32 = 0x7;

/// One IPVS generic netlink message (the payload after the genl header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    /// The `IPVS_CMD_*` command.
    pub cmd: u8,
    /// Its top-level attributes.
    pub attrs: Vec<Attr>,
}

/// A top-level attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr {
    /// `IPVS_CMD_ATTR_SERVICE`.
    Service(Vec<SvcAttr>),
    /// `IPVS_CMD_ATTR_DEST`.
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_DAEMON`.
    Daemon(Vec<DaemonAttr>),
    /// `IPVS_INFO_ATTR_VERSION` (in a SET_INFO reply).
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (in a SET_INFO reply).
    InfoConnTabSize(u32),
    /// Anything else, kept as raw bytes.
    Other(DefaultNla),
}

/// An attribute nested in `IPVS_CMD_ATTR_SERVICE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcAttr {
    /// Address family.
    Af(u16),
    /// IP protocol number.
    Protocol(u16),
    /// Address (16 bytes; IPv4 in the first 4).
    Addr([u8; 16]),
    /// Port, host order here, big-endian on the wire.
    Port(u16),
    /// Firewall mark.
    Fwmark(u32),
    /// Scheduler name.
    SchedName(String),
    /// Flags and the mask of flags being set.
    Flags {
        /// Flag bits.
        flags: u32,
        /// Which bits to set.
        mask: u32,
    },
    /// Persistence timeout in seconds.
    Timeout(u32),
    /// Persistence netmask: the raw 32-bit field as the kernel keeps it.
    Netmask([u8; 4]),
    /// Statistics (32-bit counters, 64-bit bytes).
    Stats(Vec<StatsAttr>),
    /// Persistence engine name.
    PeName(String),
    /// Statistics (all 64-bit).
    Stats64(Vec<StatsAttr>),
    /// Anything else.
    Other(DefaultNla),
}

/// An attribute nested in `IPVS_CMD_ATTR_DEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttr {
    /// Address (16 bytes).
    Addr([u8; 16]),
    /// Port, host order here.
    Port(u16),
    /// Forwarding method (connection flags; the low 3 bits matter).
    FwdMethod(u32),
    /// Weight.
    Weight(u32),
    /// Upper threshold.
    UThresh(u32),
    /// Lower threshold.
    LThresh(u32),
    /// Active connections.
    ActiveConns(u32),
    /// Inactive connections.
    InactConns(u32),
    /// Persistence templates.
    PersistConns(u32),
    /// Statistics.
    Stats(Vec<StatsAttr>),
    /// Address family of the destination.
    AddrFamily(u16),
    /// Statistics (64-bit).
    Stats64(Vec<StatsAttr>),
    /// Anything else (tunnel settings, newer attributes).
    Other(DefaultNla),
}

/// An attribute nested in `IPVS_CMD_ATTR_DAEMON`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAttr {
    /// `IP_VS_STATE_MASTER` (1) or `IP_VS_STATE_BACKUP` (2).
    State(u32),
    /// The interface name.
    McastIfn(String),
    /// The sync id (the kernel keeps the low 8 bits).
    SyncId(u32),
    /// Longest sync message, in bytes.
    SyncMaxlen(u16),
    /// IPv4 multicast group (big-endian on the wire).
    McastGroup(Ipv4Addr),
    /// IPv6 multicast group.
    McastGroup6(Ipv6Addr),
    /// UDP port, host order here and on the wire.
    McastPort(u16),
    /// Multicast TTL.
    McastTtl(u8),
    /// Anything else (a newer kernel's attribute).
    Other(DefaultNla),
}

/// A statistics counter: its `IPVS_STATS_ATTR_*` number and value (widened to 64 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsAttr {
    /// `IPVS_STATS_ATTR_*`.
    pub kind: u16,
    /// The value.
    pub value: u64,
    /// Whether it is 64 bits on the wire.
    pub wide: bool,
}

// ---- encoding ---------------------------------------------------------------------------

fn nested_len<T: Nla>(attrs: &[T]) -> usize {
    Emitable::buffer_len(&attrs)
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::Service(a) => nested_len(a),
            Attr::Dest(a) => nested_len(a),
            Attr::Daemon(a) => nested_len(a),
            Attr::InfoVersion(_) | Attr::InfoConnTabSize(_) => 4,
            Attr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            Attr::Service(_) => CMD_ATTR_SERVICE,
            Attr::Dest(_) => CMD_ATTR_DEST,
            Attr::Daemon(_) => CMD_ATTR_DAEMON,
            Attr::InfoVersion(_) => INFO_VERSION,
            Attr::InfoConnTabSize(_) => INFO_CONN_TAB_SIZE,
            Attr::Other(n) => n.kind(),
        }
    }
    fn is_nested(&self) -> bool {
        matches!(self, Attr::Service(_) | Attr::Dest(_) | Attr::Daemon(_))
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Attr::Service(a) => a.as_slice().emit(buf),
            Attr::Dest(a) => a.as_slice().emit(buf),
            Attr::Daemon(a) => a.as_slice().emit(buf),
            Attr::InfoVersion(v) | Attr::InfoConnTabSize(v) => {
                buf[..4].copy_from_slice(&v.to_ne_bytes())
            }
            Attr::Other(n) => n.emit_value(buf),
        }
    }
}

fn emit_str(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            SvcAttr::Af(_) | SvcAttr::Protocol(_) | SvcAttr::Port(_) => 2,
            SvcAttr::Addr(_) => 16,
            SvcAttr::Fwmark(_) | SvcAttr::Timeout(_) | SvcAttr::Netmask(_) => 4,
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => s.len() + 1,
            SvcAttr::Flags { .. } => 8,
            SvcAttr::Stats(a) | SvcAttr::Stats64(a) => nested_len(a),
            SvcAttr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            SvcAttr::Af(_) => SVC_AF,
            SvcAttr::Protocol(_) => SVC_PROTOCOL,
            SvcAttr::Addr(_) => SVC_ADDR,
            SvcAttr::Port(_) => SVC_PORT,
            SvcAttr::Fwmark(_) => SVC_FWMARK,
            SvcAttr::SchedName(_) => SVC_SCHED_NAME,
            SvcAttr::Flags { .. } => SVC_FLAGS,
            SvcAttr::Timeout(_) => SVC_TIMEOUT,
            SvcAttr::Netmask(_) => SVC_NETMASK,
            SvcAttr::Stats(_) => SVC_STATS,
            SvcAttr::PeName(_) => SVC_PE_NAME,
            SvcAttr::Stats64(_) => SVC_STATS64,
            SvcAttr::Other(n) => n.kind(),
        }
    }
    fn is_nested(&self) -> bool {
        matches!(self, SvcAttr::Stats(_) | SvcAttr::Stats64(_))
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            SvcAttr::Af(v) | SvcAttr::Protocol(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            SvcAttr::Port(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            SvcAttr::Addr(a) => buf[..16].copy_from_slice(a),
            SvcAttr::Fwmark(v) | SvcAttr::Timeout(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            SvcAttr::Netmask(m) => buf[..4].copy_from_slice(m),
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => emit_str(buf, s),
            SvcAttr::Flags { flags, mask } => {
                buf[..4].copy_from_slice(&flags.to_ne_bytes());
                buf[4..8].copy_from_slice(&mask.to_ne_bytes());
            }
            SvcAttr::Stats(a) | SvcAttr::Stats64(a) => a.as_slice().emit(buf),
            SvcAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(_) => 16,
            DestAttr::Port(_) | DestAttr::AddrFamily(_) => 2,
            DestAttr::Stats(a) | DestAttr::Stats64(a) => nested_len(a),
            DestAttr::Other(n) => n.value_len(),
            _ => 4,
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => DEST_ADDR,
            DestAttr::Port(_) => DEST_PORT,
            DestAttr::FwdMethod(_) => DEST_FWD_METHOD,
            DestAttr::Weight(_) => DEST_WEIGHT,
            DestAttr::UThresh(_) => DEST_U_THRESH,
            DestAttr::LThresh(_) => DEST_L_THRESH,
            DestAttr::ActiveConns(_) => DEST_ACTIVE_CONNS,
            DestAttr::InactConns(_) => DEST_INACT_CONNS,
            DestAttr::PersistConns(_) => DEST_PERSIST_CONNS,
            DestAttr::Stats(_) => DEST_STATS,
            DestAttr::AddrFamily(_) => DEST_ADDR_FAMILY,
            DestAttr::Stats64(_) => DEST_STATS64,
            DestAttr::Other(n) => n.kind(),
        }
    }
    fn is_nested(&self) -> bool {
        matches!(self, DestAttr::Stats(_) | DestAttr::Stats64(_))
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            DestAttr::Addr(a) => buf[..16].copy_from_slice(a),
            DestAttr::Port(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            DestAttr::AddrFamily(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            DestAttr::Stats(a) | DestAttr::Stats64(a) => a.as_slice().emit(buf),
            DestAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            DaemonAttr::State(_) | DaemonAttr::SyncId(_) | DaemonAttr::McastGroup(_) => 4,
            DaemonAttr::McastIfn(s) => s.len() + 1,
            DaemonAttr::SyncMaxlen(_) | DaemonAttr::McastPort(_) => 2,
            DaemonAttr::McastGroup6(_) => 16,
            DaemonAttr::McastTtl(_) => 1,
            DaemonAttr::Other(n) => n.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DaemonAttr::State(_) => DAEMON_STATE,
            DaemonAttr::McastIfn(_) => DAEMON_MCAST_IFN,
            DaemonAttr::SyncId(_) => DAEMON_SYNC_ID,
            DaemonAttr::SyncMaxlen(_) => DAEMON_SYNC_MAXLEN,
            DaemonAttr::McastGroup(_) => DAEMON_MCAST_GROUP,
            DaemonAttr::McastGroup6(_) => DAEMON_MCAST_GROUP6,
            DaemonAttr::McastPort(_) => DAEMON_MCAST_PORT,
            DaemonAttr::McastTtl(_) => DAEMON_MCAST_TTL,
            DaemonAttr::Other(n) => n.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            DaemonAttr::State(v) | DaemonAttr::SyncId(v) => {
                buf[..4].copy_from_slice(&v.to_ne_bytes())
            }
            DaemonAttr::McastIfn(s) => emit_str(buf, s),
            DaemonAttr::SyncMaxlen(v) | DaemonAttr::McastPort(v) => {
                buf[..2].copy_from_slice(&v.to_ne_bytes())
            }
            DaemonAttr::McastGroup(a) => buf[..4].copy_from_slice(&a.octets()),
            DaemonAttr::McastGroup6(a) => buf[..16].copy_from_slice(&a.octets()),
            DaemonAttr::McastTtl(v) => buf[0] = *v,
            DaemonAttr::Other(n) => n.emit_value(buf),
        }
    }
}

impl Nla for StatsAttr {
    fn value_len(&self) -> usize {
        if self.wide {
            8
        } else {
            4
        }
    }
    fn kind(&self) -> u16 {
        self.kind
    }
    fn emit_value(&self, buf: &mut [u8]) {
        if self.wide {
            buf[..8].copy_from_slice(&self.value.to_ne_bytes());
        } else {
            buf[..4].copy_from_slice(&(self.value as u32).to_ne_bytes());
        }
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

// ---- decoding ---------------------------------------------------------------------------

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    v.get(..N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| DecodeError::from(format!("{what}: expected {N} bytes, got {}", v.len())))
}

fn u16_ne(v: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_ne_bytes(fixed(v, what)?))
}
fn u32_ne(v: &[u8], what: &str) -> Result<u32, DecodeError> {
    Ok(u32::from_ne_bytes(fixed(v, what)?))
}
fn byte(v: &[u8], what: &str) -> Result<u8, DecodeError> {
    Ok(fixed::<1>(v, what)?[0])
}
fn port_be(v: &[u8], what: &str) -> Result<u16, DecodeError> {
    Ok(u16::from_be_bytes(fixed(v, what)?))
}
fn addr16(v: &[u8], what: &str) -> Result<[u8; 16], DecodeError> {
    // IPv4 may come as 4 bytes; anything up to 16 is zero-padded.
    if v.len() > 16 || v.is_empty() {
        return Err(DecodeError::from(format!(
            "{what}: bad address length {}",
            v.len()
        )));
    }
    let mut a = [0u8; 16];
    a[..v.len()].copy_from_slice(v);
    Ok(a)
}
fn string(v: &[u8], what: &str) -> Result<String, DecodeError> {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8(v[..end].to_vec())
        .map_err(|_| DecodeError::from(format!("{what}: not UTF-8")))
}

fn parse_nested<T>(
    value: &[u8],
    mut one: impl FnMut(&NlaBuffer<&[u8]>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    for nla in NlasIterator::new(value) {
        out.push(one(&nla?)?);
    }
    Ok(out)
}

fn parse_stats(value: &[u8]) -> Result<Vec<StatsAttr>, DecodeError> {
    parse_nested(value, |nla| {
        let v = nla.value();
        let (value, wide) = match v.len() {
            4 => (u64::from(u32::from_ne_bytes(fixed(v, "stats")?)), false),
            8 => (u64::from_ne_bytes(fixed(v, "stats")?), true),
            n => return Err(DecodeError::from(format!("stats attribute of {n} bytes"))),
        };
        Ok(StatsAttr {
            kind: nla.kind(),
            value,
            wide,
        })
    })
}

fn parse_svc_attr(nla: &NlaBuffer<&[u8]>) -> Result<SvcAttr, DecodeError> {
    let v = nla.value();
    Ok(match nla.kind() {
        SVC_AF => SvcAttr::Af(u16_ne(v, "service af")?),
        SVC_PROTOCOL => SvcAttr::Protocol(u16_ne(v, "service protocol")?),
        SVC_ADDR => SvcAttr::Addr(addr16(v, "service address")?),
        SVC_PORT => SvcAttr::Port(port_be(v, "service port")?),
        SVC_FWMARK => SvcAttr::Fwmark(u32_ne(v, "fwmark")?),
        SVC_SCHED_NAME => SvcAttr::SchedName(string(v, "scheduler")?),
        SVC_FLAGS => {
            let b: [u8; 8] = fixed(v, "service flags")?;
            SvcAttr::Flags {
                flags: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
                mask: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            }
        }
        SVC_TIMEOUT => SvcAttr::Timeout(u32_ne(v, "timeout")?),
        SVC_NETMASK => SvcAttr::Netmask(fixed(v, "netmask")?),
        SVC_STATS => SvcAttr::Stats(parse_stats(v)?),
        SVC_PE_NAME => SvcAttr::PeName(string(v, "pe name")?),
        SVC_STATS64 => SvcAttr::Stats64(parse_stats(v)?),
        _ => SvcAttr::Other(DefaultNla::parse(nla)?),
    })
}

fn parse_dest_attr(nla: &NlaBuffer<&[u8]>) -> Result<DestAttr, DecodeError> {
    let v = nla.value();
    Ok(match nla.kind() {
        DEST_ADDR => DestAttr::Addr(addr16(v, "destination address")?),
        DEST_PORT => DestAttr::Port(port_be(v, "destination port")?),
        DEST_FWD_METHOD => DestAttr::FwdMethod(u32_ne(v, "forwarding method")?),
        DEST_WEIGHT => DestAttr::Weight(u32_ne(v, "weight")?),
        DEST_U_THRESH => DestAttr::UThresh(u32_ne(v, "upper threshold")?),
        DEST_L_THRESH => DestAttr::LThresh(u32_ne(v, "lower threshold")?),
        DEST_ACTIVE_CONNS => DestAttr::ActiveConns(u32_ne(v, "active connections")?),
        DEST_INACT_CONNS => DestAttr::InactConns(u32_ne(v, "inactive connections")?),
        DEST_PERSIST_CONNS => DestAttr::PersistConns(u32_ne(v, "persistent connections")?),
        DEST_STATS => DestAttr::Stats(parse_stats(v)?),
        DEST_ADDR_FAMILY => DestAttr::AddrFamily(u16_ne(v, "destination af")?),
        DEST_STATS64 => DestAttr::Stats64(parse_stats(v)?),
        _ => DestAttr::Other(DefaultNla::parse(nla)?),
    })
}

fn parse_daemon_attr(nla: &NlaBuffer<&[u8]>) -> Result<DaemonAttr, DecodeError> {
    let v = nla.value();
    Ok(match nla.kind() {
        DAEMON_STATE => DaemonAttr::State(u32_ne(v, "sync daemon state")?),
        DAEMON_MCAST_IFN => DaemonAttr::McastIfn(string(v, "sync daemon interface")?),
        DAEMON_SYNC_ID => DaemonAttr::SyncId(u32_ne(v, "sync id")?),
        DAEMON_SYNC_MAXLEN => DaemonAttr::SyncMaxlen(u16_ne(v, "sync max length")?),
        DAEMON_MCAST_GROUP => {
            DaemonAttr::McastGroup(Ipv4Addr::from(fixed::<4>(v, "sync multicast group")?))
        }
        DAEMON_MCAST_GROUP6 => {
            DaemonAttr::McastGroup6(Ipv6Addr::from(fixed::<16>(v, "sync multicast group")?))
        }
        DAEMON_MCAST_PORT => DaemonAttr::McastPort(u16_ne(v, "sync port")?),
        DAEMON_MCAST_TTL => DaemonAttr::McastTtl(byte(v, "sync ttl")?),
        _ => DaemonAttr::Other(DefaultNla::parse(nla)?),
    })
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let info = header.cmd == cmd::SET_INFO;
        let attrs = parse_nested(buf, |nla| {
            let v = nla.value();
            Ok(match (info, nla.kind()) {
                (true, INFO_VERSION) => Attr::InfoVersion(u32_ne(v, "info version")?),
                (true, INFO_CONN_TAB_SIZE) => Attr::InfoConnTabSize(u32_ne(v, "conn table size")?),
                (false, CMD_ATTR_SERVICE) => Attr::Service(parse_nested(v, parse_svc_attr)?),
                (false, CMD_ATTR_DEST) => Attr::Dest(parse_nested(v, parse_dest_attr)?),
                (false, CMD_ATTR_DAEMON) => Attr::Daemon(parse_nested(v, parse_daemon_attr)?),
                _ => Attr::Other(DefaultNla::parse(nla)?),
            })
        })?;
        Ok(IpvsMessage {
            cmd: header.cmd,
            attrs,
        })
    }
}

// ---- lvs-hc values <-> attributes -------------------------------------------------------

fn af(family: Family) -> u16 {
    match family {
        Family::Ipv4 => AF_INET,
        Family::Ipv6 => AF_INET6,
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    let mut a = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => a[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => a = v6.octets(),
    }
    a
}

fn ip_from(bytes: [u8; 16], af: u16) -> Result<IpAddr, DecodeError> {
    match af {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(bytes))),
        other => Err(DecodeError::from(format!("unknown address family {other}"))),
    }
}

/// The attributes that name a service (enough for deletes, destination commands and dumps).
pub fn service_identity(key: &ServiceKey) -> Vec<SvcAttr> {
    match *key {
        ServiceKey::Fwmark { mark, family } => vec![SvcAttr::Af(af(family)), SvcAttr::Fwmark(mark)],
        _ => {
            let (proto, addr) = key.inet_parts().expect("address-based service");
            let number = match proto {
                Protocol::Tcp => IPPROTO_TCP,
                Protocol::Udp => IPPROTO_UDP,
                Protocol::Sctp => IPPROTO_SCTP,
            };
            vec![
                SvcAttr::Af(af(Family::of(addr.ip()))),
                SvcAttr::Protocol(number),
                SvcAttr::Addr(ip_bytes(addr.ip())),
                SvcAttr::Port(addr.port()),
            ]
        }
    }
}

/// The full attributes of a service: identity and every setting (the kernel needs them all to
/// add or edit one).
pub fn service_attrs(key: &ServiceKey, params: &ServiceParams) -> Vec<SvcAttr> {
    let family = key.family();
    let mut attrs = service_identity(key);
    attrs.push(SvcAttr::SchedName(params.scheduler.clone()));
    if let Some(pe) = &params.pe {
        attrs.push(SvcAttr::PeName(pe.clone()));
    }
    let mut flags = u32::from(params.sched_flags.bits()) << F_SCHED_SHIFT;
    if params.persistence.is_some() {
        flags |= F_PERSISTENT;
    }
    if params.one_packet {
        flags |= F_ONEPACKET;
    }
    attrs.push(SvcAttr::Flags {
        flags,
        mask: u32::MAX,
    });
    let (timeout, prefix) = match params.persistence {
        Some(p) => (p.timeout, p.prefix),
        None => (0, family.max_prefix()),
    };
    attrs.push(SvcAttr::Timeout(timeout));
    attrs.push(SvcAttr::Netmask(netmask_bytes(family, prefix)));
    attrs
}

fn netmask_bytes(family: Family, prefix: u8) -> [u8; 4] {
    match family {
        Family::Ipv4 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            mask.to_be_bytes()
        }
        Family::Ipv6 => u32::from(prefix).to_ne_bytes(),
    }
}

fn netmask_prefix(family: Family, raw: [u8; 4]) -> u8 {
    match family {
        Family::Ipv4 => u32::from_be_bytes(raw).leading_ones() as u8,
        Family::Ipv6 => u32::from_ne_bytes(raw).min(128) as u8,
    }
}

/// The full attributes of a destination.
pub fn dest_attrs(dest: &SocketAddr, params: Option<&DestParams>) -> Vec<DestAttr> {
    let mut attrs = vec![
        DestAttr::AddrFamily(af(Family::of(dest.ip()))),
        DestAttr::Addr(ip_bytes(dest.ip())),
        DestAttr::Port(dest.port()),
    ];
    if let Some(p) = params {
        let fwd = match p.forward {
            Forward::Dr => FWD_DROUTE,
            Forward::Nat => FWD_MASQ,
            Forward::Tun => FWD_TUNNEL,
        };
        attrs.extend([
            DestAttr::FwdMethod(fwd),
            DestAttr::Weight(p.weight),
            DestAttr::UThresh(p.upper),
            DestAttr::LThresh(p.lower),
        ]);
    }
    attrs
}

/// The request message for an operation.
pub fn op_message(op: &Op) -> IpvsMessage {
    let (cmd, attrs) = match op {
        Op::AddService { key, params } => (
            cmd::NEW_SERVICE,
            vec![Attr::Service(service_attrs(key, params))],
        ),
        Op::EditService { key, params } => (
            cmd::SET_SERVICE,
            vec![Attr::Service(service_attrs(key, params))],
        ),
        Op::DelService { key } => (cmd::DEL_SERVICE, vec![Attr::Service(service_identity(key))]),
        Op::AddDest {
            service,
            dest,
            params,
        } => (
            cmd::NEW_DEST,
            vec![
                Attr::Service(service_identity(service)),
                Attr::Dest(dest_attrs(dest, Some(params))),
            ],
        ),
        Op::EditDest {
            service,
            dest,
            params,
        } => (
            cmd::SET_DEST,
            vec![
                Attr::Service(service_identity(service)),
                Attr::Dest(dest_attrs(dest, Some(params))),
            ],
        ),
        Op::DelDest { service, dest } => (
            cmd::DEL_DEST,
            vec![
                Attr::Service(service_identity(service)),
                Attr::Dest(dest_attrs(dest, None)),
            ],
        ),
    };
    IpvsMessage { cmd, attrs }
}

/// The request that dumps every service.
pub fn dump_services() -> IpvsMessage {
    IpvsMessage {
        cmd: cmd::GET_SERVICE,
        attrs: Vec::new(),
    }
}

/// The request that dumps the destinations of `key`.
pub fn dump_dests(key: &ServiceKey) -> IpvsMessage {
    IpvsMessage {
        cmd: cmd::GET_DEST,
        attrs: vec![Attr::Service(service_identity(key))],
    }
}

/// The request for version and connection table size.
pub fn get_info() -> IpvsMessage {
    IpvsMessage {
        cmd: cmd::GET_INFO,
        attrs: Vec::new(),
    }
}

/// The request that deletes every service.
pub fn flush() -> IpvsMessage {
    IpvsMessage {
        cmd: cmd::FLUSH,
        attrs: Vec::new(),
    }
}

/// The attributes of a daemon to start: state, interface and sync id, then only the settings
/// it names (the kernel fills in the others: `start_sync_thread`).
pub fn daemon_attrs(daemon: &SyncDaemon) -> Vec<DaemonAttr> {
    let mut attrs = vec![
        DaemonAttr::State(daemon.role.state()),
        DaemonAttr::McastIfn(daemon.interface.clone()),
        DaemonAttr::SyncId(u32::from(daemon.sync_id)),
    ];
    if let Some(m) = daemon.max_len {
        attrs.push(DaemonAttr::SyncMaxlen(m));
    }
    match daemon.group {
        Some(IpAddr::V4(g)) => attrs.push(DaemonAttr::McastGroup(g)),
        Some(IpAddr::V6(g)) => attrs.push(DaemonAttr::McastGroup6(g)),
        None => {}
    }
    if let Some(p) = daemon.port {
        attrs.push(DaemonAttr::McastPort(p));
    }
    if let Some(t) = daemon.ttl {
        attrs.push(DaemonAttr::McastTtl(t));
    }
    attrs
}

/// The request for a sync daemon operation: `IPVS_CMD_NEW_DAEMON` with the daemon's
/// attributes, or `IPVS_CMD_DEL_DAEMON` with the state alone (all `ip_vs_genl_del_daemon`
/// reads).
pub fn sync_message(op: &SyncOp) -> IpvsMessage {
    let (cmd, attrs) = match op {
        SyncOp::Start(daemon) => (cmd::NEW_DAEMON, daemon_attrs(daemon)),
        SyncOp::Stop(role) => (cmd::DEL_DAEMON, vec![DaemonAttr::State(role.state())]),
    };
    IpvsMessage {
        cmd,
        attrs: vec![Attr::Daemon(attrs)],
    }
}

/// The request that dumps the sync daemons running.
pub fn dump_daemons() -> IpvsMessage {
    IpvsMessage {
        cmd: cmd::GET_DAEMON,
        attrs: Vec::new(),
    }
}

fn stats_from(attrs: &[StatsAttr]) -> Stats {
    let mut s = Stats::default();
    for a in attrs {
        let slot = match a.kind {
            1 => &mut s.conns,
            2 => &mut s.inpkts,
            3 => &mut s.outpkts,
            4 => &mut s.inbytes,
            5 => &mut s.outbytes,
            6 => &mut s.cps,
            7 => &mut s.inpps,
            8 => &mut s.outpps,
            9 => &mut s.inbps,
            10 => &mut s.outbps,
            _ => continue,
        };
        *slot = a.value;
    }
    s
}

/// A service as decoded from a dump reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedService {
    /// Its key.
    pub key: ServiceKey,
    /// Its settings.
    pub params: ServiceParams,
    /// Its statistics.
    pub stats: Stats,
}

/// Decodes the key of a service from its attributes (a dump reply's, or a request's).
pub fn decode_service_key(attrs: &[SvcAttr]) -> Result<ServiceKey, DecodeError> {
    let (mut family, mut proto, mut addr, mut port, mut mark) = (None, None, None, None, None);
    for a in attrs {
        match a {
            SvcAttr::Af(v) => family = Some(*v),
            SvcAttr::Protocol(v) => proto = Some(*v),
            SvcAttr::Addr(v) => addr = Some(*v),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => mark = Some(*v),
            _ => {}
        }
    }
    let af_num = family.ok_or("service without address family")?;
    let fam = match af_num {
        AF_INET => Family::Ipv4,
        AF_INET6 => Family::Ipv6,
        other => {
            return Err(DecodeError::from(format!(
                "service of unknown family {other}"
            )))
        }
    };
    Ok(match mark.filter(|m| *m != 0) {
        Some(mark) => ServiceKey::Fwmark { mark, family: fam },
        None => {
            let ip = ip_from(addr.ok_or("service without address")?, af_num)?;
            let sa = SocketAddr::new(ip, port.ok_or("service without port")?);
            let protocol = match proto.ok_or("service without protocol")? {
                IPPROTO_TCP => Protocol::Tcp,
                IPPROTO_UDP => Protocol::Udp,
                IPPROTO_SCTP => Protocol::Sctp,
                other => {
                    return Err(DecodeError::from(format!(
                        "service of unknown protocol {other}"
                    )))
                }
            };
            ServiceKey::inet(protocol, sa)
        }
    })
}

/// Decodes the service attributes of a dump reply.
pub fn decode_service(attrs: &[SvcAttr]) -> Result<DecodedService, DecodeError> {
    let key = decode_service_key(attrs)?;
    let fam = key.family();
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, 0u32, 0u32, None, None);
    let (mut stats, mut stats64) = (None, None);
    for a in attrs {
        match a {
            SvcAttr::SchedName(v) => sched = Some(v.clone()),
            SvcAttr::Flags { flags: f, .. } => flags = *f,
            SvcAttr::Timeout(v) => timeout = *v,
            SvcAttr::Netmask(v) => netmask = Some(*v),
            SvcAttr::PeName(v) => pe = Some(v.clone()).filter(|p| !p.is_empty()),
            SvcAttr::Stats(v) => stats = Some(stats_from(v)),
            SvcAttr::Stats64(v) => stats64 = Some(stats_from(v)),
            SvcAttr::Af(_)
            | SvcAttr::Protocol(_)
            | SvcAttr::Addr(_)
            | SvcAttr::Port(_)
            | SvcAttr::Fwmark(_)
            | SvcAttr::Other(_) => {}
        }
    }
    let flags = flags & !F_HASHED;
    let persistence = (flags & F_PERSISTENT != 0).then(|| Persistence {
        timeout,
        prefix: netmask.map_or(fam.max_prefix(), |m| netmask_prefix(fam, m)),
    });
    let params = ServiceParams {
        scheduler: sched.ok_or("service without scheduler")?,
        persistence,
        one_packet: flags & F_ONEPACKET != 0,
        sched_flags: SchedFlags::from_bits(((flags >> F_SCHED_SHIFT) & 7) as u8),
        pe,
    };
    Ok(DecodedService {
        key,
        params,
        stats: stats64.or(stats).unwrap_or_default(),
    })
}

/// A destination as decoded from a dump reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedDest {
    /// Its address.
    pub addr: SocketAddr,
    /// Its settings.
    pub params: DestParams,
    /// Its counters.
    pub counters: DestCounters,
}

/// Decodes the destination attributes of a dump reply, for a service of `service_family`.
pub fn decode_dest(attrs: &[DestAttr], service_family: Family) -> Result<DecodedDest, DecodeError> {
    let (mut addr, mut port, mut family) = (None, None, None);
    let mut params = DestParams::new(Forward::Dr, 0);
    let mut counters = DestCounters::default();
    let (mut stats, mut stats64) = (None, None);
    let mut fwd = None;
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::AddrFamily(v) => family = Some(*v),
            DestAttr::FwdMethod(v) => fwd = Some(*v & FWD_MASK),
            DestAttr::Weight(v) => params.weight = *v,
            DestAttr::UThresh(v) => params.upper = *v,
            DestAttr::LThresh(v) => params.lower = *v,
            DestAttr::ActiveConns(v) => counters.active = *v,
            DestAttr::InactConns(v) => counters.inactive = *v,
            DestAttr::PersistConns(v) => counters.persistent = *v,
            DestAttr::Stats(v) => stats = Some(stats_from(v)),
            DestAttr::Stats64(v) => stats64 = Some(stats_from(v)),
            DestAttr::Other(_) => {}
        }
    }
    let af_num = family
        .filter(|f| *f != 0)
        .unwrap_or_else(|| af(service_family));
    let ip = ip_from(addr.ok_or("destination without address")?, af_num)
        .map_err(|_| format!("destination of unknown address family {af_num}"))?;
    let addr = SocketAddr::new(ip, port.ok_or("destination without port")?);
    params.forward =
        match fwd.ok_or_else(|| format!("destination {addr} without forwarding method"))? {
            FWD_MASQ => Forward::Nat,
            FWD_TUNNEL => Forward::Tun,
            // ipvsadm shows a local node as -g too.
            FWD_DROUTE | FWD_LOCALNODE => Forward::Dr,
            other => {
                return Err(DecodeError::from(format!(
                    "destination {addr}: unknown forwarding method {other}"
                )))
            }
        };
    counters.stats = stats64.or(stats).unwrap_or_default();
    Ok(DecodedDest {
        addr,
        params,
        counters,
    })
}

/// The version and connection table size from a SET_INFO reply.
pub fn decode_info(msg: &IpvsMessage) -> Result<((u8, u8, u8), u32), DecodeError> {
    let mut version = None;
    let mut size = None;
    for a in &msg.attrs {
        match a {
            Attr::InfoVersion(v) => version = Some(*v),
            Attr::InfoConnTabSize(v) => size = Some(*v),
            _ => {}
        }
    }
    let v = version.ok_or("info without version")?;
    let version = (
        ((v >> 16) & 0xff) as u8,
        ((v >> 8) & 0xff) as u8,
        (v & 0xff) as u8,
    );
    Ok((version, size.ok_or("info without size")?))
}

/// Decodes the daemon attributes of a GET_DAEMON dump reply. A kernel before 4.3 reports only
/// the state, interface and sync id: the other settings are then `None`.
pub fn decode_daemon(attrs: &[DaemonAttr]) -> Result<SyncDaemon, DecodeError> {
    let (mut state, mut interface, mut sync_id) = (None, None, None);
    let (mut max_len, mut group, mut port, mut ttl) = (None, None, None, None);
    for a in attrs {
        match a {
            DaemonAttr::State(v) => state = Some(*v),
            DaemonAttr::McastIfn(v) => interface = Some(v.clone()),
            DaemonAttr::SyncId(v) => sync_id = Some(*v),
            DaemonAttr::SyncMaxlen(v) => max_len = Some(*v),
            DaemonAttr::McastGroup(v) => group = Some(IpAddr::V4(*v)),
            DaemonAttr::McastGroup6(v) => group = Some(IpAddr::V6(*v)),
            DaemonAttr::McastPort(v) => port = Some(*v),
            DaemonAttr::McastTtl(v) => ttl = Some(*v),
            DaemonAttr::Other(_) => {}
        }
    }
    let state = state.ok_or("sync daemon without state")?;
    let role = SyncRole::from_state(state)
        .ok_or_else(|| DecodeError::from(format!("sync daemon of unknown state {state}")))?;
    let interface = interface.ok_or_else(|| format!("{role} sync daemon without interface"))?;
    let sync_id = sync_id.ok_or_else(|| format!("{role} sync daemon without sync id"))?;
    let sync_id = u8::try_from(sync_id)
        .map_err(|_| format!("{role} sync daemon: sync id {sync_id} above 255"))?;
    Ok(SyncDaemon {
        role,
        interface,
        sync_id,
        max_len,
        group,
        port,
        ttl,
    })
}
