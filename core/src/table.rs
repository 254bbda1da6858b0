//! The IPVS table as values: services keyed by [`ServiceKey`], destinations keyed by address.
//!
//! A [`Table`] holds only what an operator configures (scheduler, flags, weights, forwarding,
//! thresholds). Connection counters and traffic statistics live apart in [`Counters`], so two
//! tables compare equal exactly when the kernel would route the same way: statistics can never
//! count as a difference.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::op::{ApplyError, Op};
use crate::sync::{SyncDaemon, SyncOp, SyncRole};

/// The transport protocol of an address-based virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP, ipvsadm `-t`.
    Tcp,
    /// UDP, ipvsadm `-u`.
    Udp,
    /// SCTP, ipvsadm `--sctp-service`.
    Sctp,
}

impl Protocol {
    /// The name ipvsadm prints in listings: `TCP`, `UDP`, `SCTP`.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 (`AF_INET`).
    Ipv4,
    /// IPv6 (`AF_INET6`).
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// The longest prefix length of this family: 32 or 128.
    pub fn max_prefix(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// What identifies a virtual service in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    /// A TCP service on an address and port.
    Tcp(SocketAddr),
    /// A UDP service on an address and port.
    Udp(SocketAddr),
    /// An SCTP service on an address and port.
    Sctp(SocketAddr),
    /// A firewall-mark service: packets marked `mark` by netfilter, of one address family.
    Fwmark {
        /// The netfilter mark, never 0.
        mark: u32,
        /// IPv4 and IPv6 fwmark services with the same mark are distinct.
        family: Family,
    },
}

impl ServiceKey {
    /// An address-based key for `protocol`.
    pub fn inet(protocol: Protocol, addr: SocketAddr) -> ServiceKey {
        match protocol {
            Protocol::Tcp => ServiceKey::Tcp(addr),
            Protocol::Udp => ServiceKey::Udp(addr),
            Protocol::Sctp => ServiceKey::Sctp(addr),
        }
    }

    /// The protocol and address, for address-based services.
    pub fn inet_parts(&self) -> Option<(Protocol, SocketAddr)> {
        match *self {
            ServiceKey::Tcp(a) => Some((Protocol::Tcp, a)),
            ServiceKey::Udp(a) => Some((Protocol::Udp, a)),
            ServiceKey::Sctp(a) => Some((Protocol::Sctp, a)),
            ServiceKey::Fwmark { .. } => None,
        }
    }

    /// The address family of the service.
    pub fn family(&self) -> Family {
        match *self {
            ServiceKey::Tcp(a) | ServiceKey::Udp(a) | ServiceKey::Sctp(a) => Family::of(a.ip()),
            ServiceKey::Fwmark { family, .. } => family,
        }
    }

    /// The service's port, 0 for firewall-mark services.
    pub fn port(&self) -> u16 {
        self.inet_parts().map_or(0, |(_, a)| a.port())
    }

    /// The ipvsadm arguments naming this service: `-t 192.168.0.101:80`, `-f 1`.
    ///
    /// An IPv6 firewall-mark service needs `-6` as well; it is printed where ipvsadm-save
    /// prints it, by the callers that render whole command lines.
    pub fn ipvsadm_args(&self) -> String {
        match *self {
            ServiceKey::Tcp(a) => format!("-t {a}"),
            ServiceKey::Udp(a) => format!("-u {a}"),
            ServiceKey::Sctp(a) => format!("--sctp-service {a}"),
            ServiceKey::Fwmark { mark, .. } => format!("-f {mark}"),
        }
    }
}

impl fmt::Display for ServiceKey {
    /// `TCP 192.168.0.101:80`, `FWM 1`, `FWM 1 IPv6`: as `ipvsadm -Ln` names services.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ServiceKey::Fwmark {
                mark,
                family: Family::Ipv4,
            } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark {
                mark,
                family: Family::Ipv6,
            } => write!(f, "FWM {mark} IPv6"),
            _ => {
                let (p, a) = self.inet_parts().expect("address-based service");
                write!(f, "{} {a}", p.label())
            }
        }
    }
}

/// How the director forwards packets to a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Forward {
    /// Direct routing ("gatewaying", `-g`): the real server holds the VIP on a non-ARPing device.
    Dr,
    /// NAT ("masquerading", `-m`): the director rewrites addresses; replies must route back via it.
    Nat,
    /// IP-in-IP tunnelling (`-i`).
    Tun,
}

impl Forward {
    /// The ipvsadm flag: `-g`, `-m` or `-i`.
    pub fn ipvsadm_flag(self) -> &'static str {
        match self {
            Forward::Dr => "-g",
            Forward::Nat => "-m",
            Forward::Tun => "-i",
        }
    }

    /// The name `ipvsadm -Ln` prints: `Route`, `Masq`, `Tunnel`.
    pub fn label(self) -> &'static str {
        match self {
            Forward::Dr => "Route",
            Forward::Nat => "Masq",
            Forward::Tun => "Tunnel",
        }
    }

    /// The configuration name: `dr`, `nat`, `tun`.
    pub fn config_name(self) -> &'static str {
        match self {
            Forward::Dr => "dr",
            Forward::Nat => "nat",
            Forward::Tun => "tun",
        }
    }
}

/// Persistence: connections from one client (network) stick to one destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Persistence {
    /// Seconds a persistence template outlives its last connection (ipvsadm `-p`).
    pub timeout: u32,
    /// Client addresses are grouped by this prefix length (ipvsadm `-M`): 32 or 128 means
    /// per address.
    pub prefix: u8,
}

/// Scheduler flags (ipvsadm `-b`), whose meaning depends on the scheduler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SchedFlags(u8);

impl SchedFlags {
    /// No flags.
    pub const NONE: SchedFlags = SchedFlags(0);
    /// `IP_VS_SVC_F_SCHED1`: `flag-1`, `sh-fallback`, `mh-fallback`.
    pub const FLAG1: SchedFlags = SchedFlags(1);
    /// `IP_VS_SVC_F_SCHED2`: `flag-2`, `sh-port`, `mh-port`.
    pub const FLAG2: SchedFlags = SchedFlags(2);
    /// `IP_VS_SVC_F_SCHED3`: `flag-3`.
    pub const FLAG3: SchedFlags = SchedFlags(4);

    /// Flags from the three low bits (1 = flag-1, 2 = flag-2, 4 = flag-3).
    pub fn from_bits(bits: u8) -> SchedFlags {
        SchedFlags(bits & 7)
    }

    /// The three low bits.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets of flags.
    pub fn union(self, other: SchedFlags) -> SchedFlags {
        SchedFlags(self.0 | other.0)
    }

    /// Parses one flag name as ipvsadm accepts it: `flag-1`..`flag-3`, `sh-fallback`,
    /// `sh-port`, `mh-fallback`, `mh-port`.
    pub fn parse_name(name: &str) -> Option<SchedFlags> {
        match name {
            "flag-1" | "sh-fallback" | "mh-fallback" => Some(SchedFlags::FLAG1),
            "flag-2" | "sh-port" | "mh-port" => Some(SchedFlags::FLAG2),
            "flag-3" => Some(SchedFlags::FLAG3),
            _ => None,
        }
    }

    /// The flag names as ipvsadm prints them for `scheduler`, comma separated.
    pub fn names(self, scheduler: &str) -> String {
        let mut out = Vec::new();
        for (bit, n) in [(1u8, 1), (2, 2), (4, 3)] {
            if self.0 & bit == 0 {
                continue;
            }
            let name = match (scheduler, n) {
                ("sh", 1) => "sh-fallback".to_string(),
                ("sh", 2) => "sh-port".to_string(),
                ("mh", 1) => "mh-fallback".to_string(),
                ("mh", 2) => "mh-port".to_string(),
                _ => format!("flag-{n}"),
            };
            out.push(name);
        }
        out.join(",")
    }
}

/// What can be set on a virtual service besides its key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceParams {
    /// Scheduler name: `rr`, `wrr`, `lc`, `wlc`, `sh`, `mh`, ... (any the kernel has).
    pub scheduler: String,
    /// Persistence, if the service is persistent.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (ipvsadm `-o`, UDP only).
    pub one_packet: bool,
    /// Scheduler flags (ipvsadm `-b`).
    pub sched_flags: SchedFlags,
    /// Persistence engine name (ipvsadm `--pe`), e.g. `sip`.
    pub pe: Option<String>,
}

impl ServiceParams {
    /// A service with this scheduler and nothing else set.
    pub fn new(scheduler: impl Into<String>) -> ServiceParams {
        ServiceParams {
            scheduler: scheduler.into(),
            persistence: None,
            one_packet: false,
            sched_flags: SchedFlags::NONE,
            pe: None,
        }
    }
}

/// What can be set on a destination (real server) besides its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DestParams {
    /// Scheduling weight; 0 sends no new connections (quiescent).
    pub weight: u32,
    /// The forwarding method.
    pub forward: Forward,
    /// Upper connection threshold (ipvsadm `-x`), 0 for none.
    pub upper: u32,
    /// Lower connection threshold (ipvsadm `-y`), 0 for none.
    pub lower: u32,
}

impl DestParams {
    /// A destination with this forwarding method and weight and no thresholds.
    pub fn new(forward: Forward, weight: u32) -> DestParams {
        DestParams {
            weight,
            forward,
            upper: 0,
            lower: 0,
        }
    }
}

/// One virtual service with its destinations.
///
/// Two entries compare equal when their settings and destinations are equal: [`Self::order`]
/// is left out, so a desired entry (which has no order) can equal an entry read from the
/// kernel. Where the order matters (hashing schedulers, see [`hashes_over_order`]), compare
/// it explicitly with [`Self::order_is_canonical`] or [`Self::order`].
#[derive(Clone, Debug)]
pub struct ServiceEntry {
    /// The service's settings.
    pub params: ServiceParams,
    /// Its destinations by address (the port is 0 under firewall-mark services only when the
    /// operator gave none).
    pub dests: BTreeMap<SocketAddr, DestParams>,
    /// The kernel's list of the destinations, head first (the order a netlink dump and
    /// `ipvsadm -Ln` give, and the order `sh` and `mh` hash over), when known: every key of
    /// [`Self::dests`] once. `None` when not known (an entry built by hand or desired).
    /// [`Table::apply`] and [`Table::apply_lenient`] keep a known order as the kernel does: an
    /// added destination goes to the head.
    pub order: Option<Vec<SocketAddr>>,
}

impl PartialEq for ServiceEntry {
    fn eq(&self, other: &ServiceEntry) -> bool {
        self.params == other.params && self.dests == other.dests
    }
}

impl Eq for ServiceEntry {}

impl ServiceEntry {
    /// An entry with these settings and destinations, their order not known.
    pub fn new(params: ServiceParams, dests: BTreeMap<SocketAddr, DestParams>) -> ServiceEntry {
        ServiceEntry {
            params,
            dests,
            order: None,
        }
    }

    /// An entry with these settings and no destinations (whose order is then known: empty).
    pub fn empty(params: ServiceParams) -> ServiceEntry {
        ServiceEntry {
            params,
            dests: BTreeMap::new(),
            order: Some(Vec::new()),
        }
    }

    /// The kernel's list order, head first, if known.
    pub fn order(&self) -> Option<&[SocketAddr]> {
        self.order.as_deref()
    }

    /// Whether the list order is known and canonical: ascending by address, head first (the
    /// order lvs-hc keeps for hashing schedulers). `false` when not known.
    pub fn order_is_canonical(&self) -> bool {
        self.order
            .as_ref()
            .is_some_and(|o| o.iter().zip(self.dests.keys()).all(|(a, b)| a == b))
    }

    /// Records that `dest` was added: the kernel puts it at the head of its list.
    fn note_added(&mut self, dest: SocketAddr) {
        if let Some(order) = &mut self.order {
            order.retain(|a| *a != dest);
            order.insert(0, dest);
        }
    }

    /// Records that `dest` was deleted.
    fn note_deleted(&mut self, dest: &SocketAddr) {
        if let Some(order) = &mut self.order {
            order.retain(|a| a != dest);
        }
    }
}

/// Whether `scheduler` maps flows to destinations by walking the kernel's destination list
/// in order (`sh`, `mh`): the same destinations in another order give another mapping, so
/// lvs-hc keeps their order canonical (see [`crate::engine`]'s module documentation).
pub fn hashes_over_order(scheduler: &str) -> bool {
    matches!(scheduler, "sh" | "mh")
}

/// Whether `scheduler` counts a destination by its `last_weight` (the last weight other than 0
/// it was given), which dumps do not show (`mh`): lvs-hc then seats a destination held at
/// weight 0 at its weight first (see [`crate::engine`]'s module documentation).
pub fn hashes_by_last_weight(scheduler: &str) -> bool {
    scheduler == "mh"
}

/// Why [`Table::apply_sync`] refused a sync daemon operation, as the kernel would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRefusal {
    /// A daemon of the role runs already (`EEXIST`).
    Running(SyncRole),
    /// No daemon of the role runs (`ESRCH`).
    NotRunning(SyncRole),
}

impl fmt::Display for SyncRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncRefusal::Running(role) => write!(f, "a {role} sync daemon already runs"),
            SyncRefusal::NotRunning(role) => write!(f, "no {role} sync daemon runs"),
        }
    }
}

/// A whole IPVS table (or the part of one lvs-hc manages).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    /// Services in key order.
    pub services: BTreeMap<ServiceKey, ServiceEntry>,
    /// The connection sync daemons running, master first (at most one of each role). Part of
    /// a table as read from the kernel; [`Table::apply`] and the `ipvsadm-save` text leave it
    /// alone, as `ipvsadm -S` does.
    pub sync: Vec<SyncDaemon>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Table {
        Table::default()
    }

    /// Whether the table has no services.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Number of destinations over all services.
    pub fn dest_count(&self) -> usize {
        self.services.values().map(|s| s.dests.len()).sum()
    }

    /// The destination `dest` of `service`, if both exist.
    pub fn dest(&self, service: &ServiceKey, dest: &SocketAddr) -> Option<&DestParams> {
        self.services.get(service)?.dests.get(dest)
    }

    /// The services whose keys `keep` accepts, with their destinations (and the sync daemons).
    pub fn filtered(&self, mut keep: impl FnMut(&ServiceKey) -> bool) -> Table {
        Table {
            services: self
                .services
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            sync: self.sync.clone(),
        }
    }

    /// Starts or stops a sync daemon in [`Table::sync`] with the kernel's rules: one daemon
    /// per role, starting a role that runs fails, stopping one that does not run fails. The
    /// table is unchanged on error.
    pub fn apply_sync(&mut self, op: &SyncOp) -> Result<(), SyncRefusal> {
        let running = self.sync.iter().position(|d| d.role == op.role());
        match (op, running) {
            (SyncOp::Start(_), Some(_)) => Err(SyncRefusal::Running(op.role())),
            (SyncOp::Start(d), None) => {
                self.sync.push(d.clone());
                self.sync.sort_by_key(|d| d.role);
                Ok(())
            }
            (SyncOp::Stop(role), None) => Err(SyncRefusal::NotRunning(*role)),
            (SyncOp::Stop(_), Some(i)) => {
                self.sync.remove(i);
                Ok(())
            }
        }
    }

    /// Applies `op` with the kernel's rules: adding what exists, or changing what does not,
    /// fails, and destinations exist only under a service. The table is unchanged on error.
    pub fn apply(&mut self, op: &Op) -> Result<(), ApplyError> {
        match op {
            Op::AddService { key, params } => {
                if self.services.contains_key(key) {
                    return Err(ApplyError::ServiceExists);
                }
                self.services
                    .insert(*key, ServiceEntry::empty(params.clone()));
            }
            Op::EditService { key, params } => {
                let svc = self
                    .services
                    .get_mut(key)
                    .ok_or(ApplyError::NoSuchService)?;
                svc.params = params.clone();
            }
            Op::DelService { key } => {
                self.services.remove(key).ok_or(ApplyError::NoSuchService)?;
            }
            Op::AddDest {
                service,
                dest,
                params,
            } => {
                let svc = self
                    .services
                    .get_mut(service)
                    .ok_or(ApplyError::NoSuchService)?;
                if svc.dests.contains_key(dest) {
                    return Err(ApplyError::DestExists);
                }
                svc.dests.insert(*dest, *params);
                svc.note_added(*dest);
            }
            Op::EditDest {
                service,
                dest,
                params,
            } => {
                let svc = self
                    .services
                    .get_mut(service)
                    .ok_or(ApplyError::NoSuchService)?;
                let d = svc.dests.get_mut(dest).ok_or(ApplyError::NoSuchDest)?;
                *d = *params;
            }
            Op::DelDest { service, dest } => {
                let svc = self
                    .services
                    .get_mut(service)
                    .ok_or(ApplyError::NoSuchService)?;
                svc.dests.remove(dest).ok_or(ApplyError::NoSuchDest)?;
                svc.note_deleted(dest);
            }
        }
        Ok(())
    }

    /// Applies `op` as far as it can: an add over an existing entry replaces it, a change of a
    /// missing entry creates it where possible, a delete of a missing entry does nothing.
    ///
    /// This is how the engine updates its belief after an operation succeeded: the kernel table
    /// may already have reflected the operation in a snapshot taken while it was in flight.
    pub fn apply_lenient(&mut self, op: &Op) {
        match op {
            Op::AddService { key, params } | Op::EditService { key, params } => {
                self.services
                    .entry(*key)
                    .and_modify(|s| s.params = params.clone())
                    .or_insert_with(|| ServiceEntry::empty(params.clone()));
            }
            Op::DelService { key } => {
                self.services.remove(key);
            }
            Op::AddDest {
                service,
                dest,
                params,
            }
            | Op::EditDest {
                service,
                dest,
                params,
            } => {
                if let Some(svc) = self.services.get_mut(service) {
                    if svc.dests.insert(*dest, *params).is_none() {
                        svc.note_added(*dest);
                    }
                }
            }
            Op::DelDest { service, dest } => {
                if let Some(svc) = self.services.get_mut(service) {
                    svc.dests.remove(dest);
                    svc.note_deleted(dest);
                }
            }
        }
    }
}

/// Traffic statistics of a service or destination, as the kernel keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub inpkts: u64,
    /// Packets out.
    pub outpkts: u64,
    /// Bytes in.
    pub inbytes: u64,
    /// Bytes out.
    pub outbytes: u64,
    /// Connections per second (rate estimate).
    pub cps: u64,
    /// Packets in per second.
    pub inpps: u64,
    /// Packets out per second.
    pub outpps: u64,
    /// Bytes in per second.
    pub inbps: u64,
    /// Bytes out per second.
    pub outbps: u64,
}

/// Connection counters of one destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounters {
    /// Active (established) connections.
    pub active: u32,
    /// Inactive connections (e.g. TIME_WAIT, or UDP).
    pub inactive: u32,
    /// Persistence templates pointing at this destination.
    pub persistent: u32,
    /// Traffic statistics.
    pub stats: Stats,
}

impl DestCounters {
    /// Connections that still flow to this destination: active plus inactive. Persistence
    /// templates are not connections and do not hold a drain open.
    pub fn connections(&self) -> u64 {
        u64::from(self.active) + u64::from(self.inactive)
    }
}

/// Counters and statistics read with a table snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Per-service statistics.
    pub services: BTreeMap<ServiceKey, Stats>,
    /// Per-destination counters.
    pub dests: BTreeMap<(ServiceKey, SocketAddr), DestCounters>,
}

/// A service the kernel holds but a backend could not read (a snapshot leaves it out), and
/// why. The engine never touches it: see `Input::Snapshot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedService {
    /// Its key, when that much could be read; `None` when not even the key could be (an
    /// unknown family or protocol, say).
    pub key: Option<ServiceKey>,
    /// What could not be read, e.g. `destination 10.0.0.2:80: unknown forwarding method 5`.
    pub error: String,
}

impl std::fmt::Display for SkippedService {
    /// `TCP 192.168.0.101:80: <error>`, or `a service whose key cannot be read: <error>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.error),
            None => write!(f, "a service whose key cannot be read: {}", self.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ServiceKey {
        ServiceKey::Tcp("192.168.0.101:80".parse().unwrap())
    }

    #[test]
    fn strict_apply_fails_like_the_kernel() {
        let mut t = Table::new();
        let rs: SocketAddr = "192.168.0.179:80".parse().unwrap();
        let add_dest = Op::AddDest {
            service: key(),
            dest: rs,
            params: DestParams::new(Forward::Dr, 2),
        };
        assert_eq!(t.apply(&add_dest), Err(ApplyError::NoSuchService));
        let add_svc = Op::AddService {
            key: key(),
            params: ServiceParams::new("wlc"),
        };
        assert_eq!(t.apply(&add_svc), Ok(()));
        assert_eq!(t.apply(&add_svc), Err(ApplyError::ServiceExists));
        assert_eq!(t.apply(&add_dest), Ok(()));
        assert_eq!(t.apply(&add_dest), Err(ApplyError::DestExists));
        let del_other = Op::DelDest {
            service: key(),
            dest: "192.168.0.180:80".parse().unwrap(),
        };
        assert_eq!(t.apply(&del_other), Err(ApplyError::NoSuchDest));
        assert_eq!(t.dest_count(), 1);
    }

    #[test]
    fn service_keys_print_like_ipvsadm_listings() {
        assert_eq!(key().to_string(), "TCP 192.168.0.101:80");
        let v6 = ServiceKey::Udp("[2001:db8::1]:53".parse().unwrap());
        assert_eq!(v6.to_string(), "UDP [2001:db8::1]:53");
        assert_eq!(v6.ipvsadm_args(), "-u [2001:db8::1]:53");
        let fw = ServiceKey::Fwmark {
            mark: 7,
            family: Family::Ipv6,
        };
        assert_eq!(fw.to_string(), "FWM 7 IPv6");
        assert_eq!(fw.ipvsadm_args(), "-f 7");
    }

    #[test]
    fn sched_flag_names_follow_the_scheduler() {
        let f = SchedFlags::FLAG1.union(SchedFlags::FLAG2);
        assert_eq!(f.names("sh"), "sh-fallback,sh-port");
        assert_eq!(f.names("mh"), "mh-fallback,mh-port");
        assert_eq!(f.names("rr"), "flag-1,flag-2");
        assert_eq!(SchedFlags::parse_name("sh-port"), Some(SchedFlags::FLAG2));
    }
}
