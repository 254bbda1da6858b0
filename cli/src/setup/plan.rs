//! The pure half of `lvs-hc setup`: the settings a machine should have and the state it was
//! seen in go in, the list of changes comes out. Nothing here touches the system, so every rule
//! is unit-tested without root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use lvs_hc_core::config::{is_interface_name, SyncSettings, VirtualService, INTERFACE_NAME_RULE};
use lvs_hc_core::sync::SyncRole;
use lvs_hc_core::table::{Family, Forward, ServiceKey};
use lvs_hc_core::Config;

/// An address with its prefix length, as `ip addr` writes it: `192.168.0.101/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfAddr {
    /// The address.
    pub ip: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl IfAddr {
    /// The address alone: /32 for IPv4, /128 for IPv6. A VIP is held as a host address so the
    /// machine does not also claim the rest of its subnet.
    pub fn host(ip: IpAddr) -> IfAddr {
        IfAddr {
            ip,
            prefix: Family::of(ip).max_prefix(),
        }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl FromStr for IfAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<IfAddr, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not ADDRESS/PREFIX"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("`{ip}` is not an address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= Family::of(ip).max_prefix())
            .ok_or_else(|| format!("`{prefix}` is not a prefix length for {ip}"))?;
        Ok(IfAddr { ip, prefix })
    }
}

/// Why an address cannot be a virtual IP that setup puts on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VipProblem {
    /// 0.0.0.0 or `::`.
    Unspecified,
    /// 127.0.0.0/8 or `::1`: on `lo` already, or leaking a local-only address onto another
    /// device.
    Loopback,
    /// 224.0.0.0/4 or ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
}

impl VipProblem {
    /// What is wrong with `ip` as a virtual IP, if anything. An IPv4-mapped IPv6 address is
    /// judged as the IPv4 address it maps.
    pub fn of(ip: IpAddr) -> Option<VipProblem> {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            Some(VipProblem::Unspecified)
        } else if ip.is_loopback() {
            Some(VipProblem::Loopback)
        } else if ip.is_multicast() {
            Some(VipProblem::Multicast)
        } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
            Some(VipProblem::Broadcast)
        } else {
            None
        }
    }

    /// `a loopback`, as in "a loopback VIP".
    pub fn kind(self) -> &'static str {
        match self {
            VipProblem::Unspecified => "an unspecified",
            VipProblem::Loopback => "a loopback",
            VipProblem::Multicast => "a multicast",
            VipProblem::Broadcast => "a broadcast",
        }
    }

    /// Why such an address is no VIP.
    pub fn reason(self) -> &'static str {
        match self {
            VipProblem::Unspecified => "0.0.0.0 and :: stand for no address in particular",
            VipProblem::Loopback => "127.0.0.0/8 and ::1 never leave this machine",
            VipProblem::Multicast => "224.0.0.0/4 and ff00::/8 name groups of hosts, not one",
            VipProblem::Broadcast => "255.255.255.255 reaches every host on the link",
        }
    }
}

/// A kernel setting under /proc/sys that setup manages, kept as its path there
/// (`net/ipv4/conf/all/arp_ignore`) and shown the way sysctl(8) names it
/// (`net.ipv4.conf.all.arp_ignore`).
///
/// Only the settings setup writes can be made: a [`ConfSetting`] of a device, a
/// [`GlobalSetting`] or an [`IpvsSetting`]; [`Sysctl::from_dotted`] accepts exactly those. A
/// device in the path is always an interface name, so the path is relative and never holds
/// `..`, an empty component or a NUL: joined to /proc/sys it stays there, whatever a state file
/// says.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sysctl(String);

/// A per-device IPv4 setting setup writes: `net.ipv4.conf.<device>.<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfSetting {
    /// Whether packets whose source is one of this machine's own addresses are accepted (the
    /// director, for replies to probes through the VIP).
    AcceptLocal,
    /// Which of this machine's addresses its ARP requests use as their source.
    ArpAnnounce,
    /// Which ARP requests are answered.
    ArpIgnore,
    /// Reverse-path filtering.
    RpFilter,
}

impl ConfSetting {
    /// Every per-device setting setup writes, and so every one a state file may name.
    pub const ALL: [ConfSetting; 4] = [
        ConfSetting::AcceptLocal,
        ConfSetting::ArpAnnounce,
        ConfSetting::ArpIgnore,
        ConfSetting::RpFilter,
    ];

    /// The file name under `net/ipv4/conf/<device>/`.
    pub fn name(self) -> &'static str {
        match self {
            ConfSetting::AcceptLocal => "accept_local",
            ConfSetting::ArpAnnounce => "arp_announce",
            ConfSetting::ArpIgnore => "arp_ignore",
            ConfSetting::RpFilter => "rp_filter",
        }
    }
}

/// A setting of the whole machine that setup writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GlobalSetting {
    /// `net.ipv4.ip_forward`.
    Ipv4Forward,
    /// `net.ipv6.conf.all.forwarding`.
    Ipv6Forwarding,
}

impl GlobalSetting {
    /// Every machine-wide setting setup writes, and so every one a state file may name.
    pub const ALL: [GlobalSetting; 2] = [GlobalSetting::Ipv4Forward, GlobalSetting::Ipv6Forwarding];

    /// The path under /proc/sys.
    fn path(self) -> &'static str {
        match self {
            GlobalSetting::Ipv4Forward => "net/ipv4/ip_forward",
            GlobalSetting::Ipv6Forwarding => "net/ipv6/conf/all/forwarding",
        }
    }
}

/// A setting of the kernel's IPVS that setup writes for one of a pair of directors, or for
/// directors that hash (`net.ipv4.vs.<name>`; [`pair_settings`] and [`hashing_settings`] say
/// why each). They exist once the ip_vs module is loaded, in every network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpvsSetting {
    /// `backup_only`: whether a director running the backup sync daemon stops balancing.
    BackupOnly,
    /// `expire_nodest_conn`: whether a connection to a removed server ends at its next packet.
    ExpireNodestConn,
    /// `expire_quiescent_template`: whether a persistence template to a server at weight 0
    /// expires when it would be used.
    ExpireQuiescentTemplate,
    /// `sloppy_sctp`: whether any SCTP packet, not only an INIT, may create a connection.
    SloppySctp,
    /// `sloppy_tcp`: whether any TCP packet, not only a SYN, may create a connection.
    SloppyTcp,
    /// `sync_persist_mode`: whether the connections of persistent services are synced (0) or
    /// only their templates (1).
    SyncPersistMode,
    /// `sync_refresh_period`: seconds after which a connection is synced again.
    SyncRefreshPeriod,
    /// `sync_threshold`: two integers, `threshold period`: a connection is synced when its
    /// incoming packets modulo `period` equal `threshold` (`period` 0: not by packets).
    SyncThreshold,
    /// `sync_version`: the sync protocol version sent.
    SyncVersion,
}

impl IpvsSetting {
    /// Every IPVS setting setup writes, and so every one a state file may name.
    pub const ALL: [IpvsSetting; 9] = [
        IpvsSetting::BackupOnly,
        IpvsSetting::ExpireNodestConn,
        IpvsSetting::ExpireQuiescentTemplate,
        IpvsSetting::SloppySctp,
        IpvsSetting::SloppyTcp,
        IpvsSetting::SyncPersistMode,
        IpvsSetting::SyncRefreshPeriod,
        IpvsSetting::SyncThreshold,
        IpvsSetting::SyncVersion,
    ];

    /// The file name under `net/ipv4/vs/`.
    pub fn name(self) -> &'static str {
        match self {
            IpvsSetting::BackupOnly => "backup_only",
            IpvsSetting::ExpireNodestConn => "expire_nodest_conn",
            IpvsSetting::ExpireQuiescentTemplate => "expire_quiescent_template",
            IpvsSetting::SloppySctp => "sloppy_sctp",
            IpvsSetting::SloppyTcp => "sloppy_tcp",
            IpvsSetting::SyncPersistMode => "sync_persist_mode",
            IpvsSetting::SyncRefreshPeriod => "sync_refresh_period",
            IpvsSetting::SyncThreshold => "sync_threshold",
            IpvsSetting::SyncVersion => "sync_version",
        }
    }

    /// How many integers its value holds: 2 for `sync_threshold`, 1 for the others.
    pub fn arity(self) -> usize {
        match self {
            IpvsSetting::SyncThreshold => 2,
            _ => 1,
        }
    }
}

/// The directory of the IPVS settings under /proc/sys, which the ip_vs module creates.
pub const IPVS_SYSCTL_DIR: &str = "net/ipv4/vs";

impl Sysctl {
    /// `net/ipv4/conf/<dev>/<setting>`.
    ///
    /// # Panics
    /// When `dev` is not an interface name (`all` and `default` are): setup passes only names
    /// of its own (`all`, `lo`, the tunnels), and a state file's go through
    /// [`Sysctl::from_dotted`].
    pub fn ipv4_conf(dev: &str, setting: ConfSetting) -> Sysctl {
        assert!(
            is_interface_name(dev),
            "`{dev}` is not an interface name ({INTERFACE_NAME_RULE})"
        );
        Sysctl(format!("net/ipv4/conf/{dev}/{}", setting.name()))
    }

    /// A machine-wide setting.
    pub fn global(setting: GlobalSetting) -> Sysctl {
        Sysctl(setting.path().to_string())
    }

    /// `net/ipv4/vs/<setting>`.
    pub fn ipvs(setting: IpvsSetting) -> Sysctl {
        Sysctl(format!("{IPVS_SYSCTL_DIR}/{}", setting.name()))
    }

    /// The IPVS setting this is, if it is one (it exists only while ip_vs is loaded).
    pub fn ipvs_setting(&self) -> Option<IpvsSetting> {
        IpvsSetting::ALL
            .into_iter()
            .find(|s| Sysctl::ipvs(*s) == *self)
    }

    /// How many integers its value holds, separated by one space (as `observe` reads it): 2
    /// for `net.ipv4.vs.sync_threshold`, 1 for the others.
    pub fn arity(&self) -> usize {
        self.ipvs_setting().map_or(1, IpvsSetting::arity)
    }

    /// The path under /proc/sys: relative, without `..` (see [`Sysctl`]).
    pub fn as_path(&self) -> &str {
        &self.0
    }

    /// The device of a per-device setting (`net/ipv4/conf/tunl0/rp_filter` → `tunl0`).
    pub fn device(&self) -> Option<&str> {
        let mut parts = self.0.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("net"), Some(_), Some("conf"), Some(dev)) if dev != "all" && dev != "default" => {
                Some(dev)
            }
            _ => None,
        }
    }

    /// The same setting of the `default` pseudo-device, whose values a new device starts with.
    pub fn for_new_device(&self) -> Option<Sysctl> {
        self.device()?;
        let mut parts: Vec<&str> = self.0.split('/').collect();
        parts[3] = "default";
        Some(Sysctl(parts.join("/")))
    }

    /// Parses a sysctl(8) name, in which a `.` inside a component is written `/`. Only the
    /// settings setup writes are accepted; the error says why a name is not one.
    pub fn from_dotted(name: &str) -> Result<Sysctl, String> {
        let sysctl = if let Some(g) = GlobalSetting::ALL
            .into_iter()
            .find(|g| Sysctl::global(*g).to_string() == name)
        {
            Sysctl::global(g)
        } else if let Some(s) = IpvsSetting::ALL
            .into_iter()
            .find(|s| Sysctl::ipvs(*s).to_string() == name)
        {
            Sysctl::ipvs(s)
        } else {
            let not_managed = || {
                let conf: Vec<&str> = ConfSetting::ALL.iter().map(|c| c.name()).collect();
                let ipvs: Vec<&str> = IpvsSetting::ALL.iter().map(|s| s.name()).collect();
                let global: Vec<String> = GlobalSetting::ALL
                    .iter()
                    .map(|g| Sysctl::global(*g).to_string())
                    .collect();
                format!(
                    "`{name}` is not a setting setup writes (it writes \
                     net.ipv4.conf.<device>.{{{}}}, net.ipv4.vs.{{{}}}, {})",
                    conf.join(","),
                    ipvs.join(","),
                    global.join(" and ")
                )
            };
            let (dev, setting) = name
                .strip_prefix("net.ipv4.conf.")
                .and_then(|rest| rest.rsplit_once('.'))
                .ok_or_else(not_managed)?;
            let setting = ConfSetting::ALL
                .into_iter()
                .find(|c| c.name() == setting)
                .ok_or_else(not_managed)?;
            let dev = match dev.contains('.') {
                true => None,
                false => Some(dev.replace('/', ".")),
            }
            .filter(|d| is_interface_name(d))
            .ok_or_else(|| {
                format!(
                    "`{name}`: `{dev}` is not an interface name ({INTERFACE_NAME_RULE}; a `.` \
                     in it is written `/`)"
                )
            })?;
            Sysctl::ipv4_conf(&dev, setting)
        };
        debug_assert_eq!(sysctl.to_string(), name);
        Ok(sysctl)
    }
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dotted: Vec<String> = self.0.split('/').map(|c| c.replace('.', "/")).collect();
        f.write_str(&dotted.join("."))
    }
}

/// A tunnel device `setup realserver --mode tun` may create.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TunnelKind {
    /// IPv4-in-IPv4 (`ip link add ... type ipip`): what IPVS sends to an IPv4 real server.
    Ipip,
    /// IPv6 tunnels (`type ip6tnl`): what IPVS sends to an IPv6 real server.
    Ip6tnl,
}

impl TunnelKind {
    /// Every kind, and so every device setup may create.
    pub const ALL: [TunnelKind; 2] = [TunnelKind::Ipip, TunnelKind::Ip6tnl];

    /// The `ip link` type name.
    pub fn link_type(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Ip6tnl => "ip6tnl",
        }
    }

    /// The device the kernel module creates in every namespace as it loads (its "fallback"
    /// device), which receives tunnelled packets from any source.
    pub fn device(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "tunl0",
            TunnelKind::Ip6tnl => "ip6tnl0",
        }
    }
}

/// The loopback device, which holds a real server's VIPs with direct routing.
pub const LOOPBACK: &str = "lo";

/// The devices setup creates: the tunnel modules' own ([`TunnelKind::device`]).
pub fn created_devices() -> impl Iterator<Item = &'static str> {
    TunnelKind::ALL.into_iter().map(TunnelKind::device)
}

/// The devices setup brings up: [`LOOPBACK`] for DR, the tunnels for TUN. The director's
/// interface is left as it is.
pub fn raised_devices() -> impl Iterator<Item = &'static str> {
    std::iter::once(LOOPBACK).chain(created_devices())
}

/// Whether a device is administratively up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// `ip link set ... up`.
    Up,
    /// `ip link set ... down`.
    Down,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
        })
    }
}

/// A device the settings need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkWant {
    /// Its name.
    pub name: String,
    /// `Some`: setup creates it when it is missing; `None`: it must exist already.
    pub create: Option<TunnelKind>,
    /// Whether setup brings it up (the director's own interface is left as it is).
    pub raise: bool,
}

/// What a machine should look like.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Devices that must exist.
    pub links: Vec<LinkWant>,
    /// Addresses that must be on a device.
    pub addresses: Vec<(String, IfAddr)>,
    /// Settings and their values.
    pub sysctls: Vec<(Sysctl, String)>,
    /// Why a setting is wanted, for those whose reason the plan shows (a pair's:
    /// [`pair_settings`]).
    pub reasons: BTreeMap<Sysctl, &'static str>,
    /// Whether an address added is announced (gratuitous ARP; IPv6: unsolicited neighbour
    /// advertisement), so that neighbours' caches move to this machine: the director's VIPs.
    pub announce: bool,
}

/// What a machine looks like, for the devices and settings something asked about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Devices that exist; a missing name is a missing device.
    pub links: BTreeMap<String, LinkState>,
    /// Addresses per existing device.
    pub addresses: BTreeMap<String, Vec<IfAddr>>,
    /// Settings' current values (trimmed; the integers of a vector such as
    /// `net.ipv4.vs.sync_threshold` separated by one space). For a device that does not exist
    /// yet, the value it will start with (that of `default`); a missing key is a setting the
    /// kernel lacks.
    pub sysctls: BTreeMap<Sysctl, String>,
}

/// One change to the machine. `Display` says it in the past tense, as `setup` prints it after
/// making it; [`Change::drift`] says what differs, as `setup --check` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create a tunnel device.
    CreateLink {
        /// Its name.
        name: String,
        /// Its type.
        kind: TunnelKind,
    },
    /// Bring a device up or down.
    SetLink {
        /// Its name.
        name: String,
        /// The new state.
        state: LinkState,
    },
    /// Delete a device setup created.
    DeleteLink {
        /// Its name.
        name: String,
    },
    /// Add an address to a device.
    AddAddress {
        /// The device.
        dev: String,
        /// The address.
        addr: IfAddr,
    },
    /// Remove an address from a device.
    DelAddress {
        /// The device.
        dev: String,
        /// The address.
        addr: IfAddr,
    },
    /// Write a setting.
    SetSysctl {
        /// The setting.
        key: Sysctl,
        /// Its value before.
        from: String,
        /// Its value after.
        to: String,
        /// Why, when the plan says (the settings of one of a pair of directors).
        why: Option<&'static str>,
    },
}

impl Change {
    /// What differs, for `--check`: `192.168.0.101/32 is not on lo`.
    pub fn drift(&self) -> String {
        match self {
            Change::CreateLink { name, kind } => {
                format!("{name} ({}) does not exist", kind.link_type())
            }
            Change::SetLink { name, state } => format!("{name} is not {state}"),
            Change::DeleteLink { name } => format!("{name} exists"),
            Change::AddAddress { dev, addr } => format!("{addr} is not on {dev}"),
            Change::DelAddress { dev, addr } => format!("{addr} is on {dev}"),
            Change::SetSysctl { key, from, to, why } => {
                format!("{key} is {from}, should be {to}{}", Because(*why))
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateLink { name, kind } => write!(f, "created {name} ({})", kind.link_type()),
            Change::SetLink { name, state } => write!(f, "set {name} {state}"),
            Change::DeleteLink { name } => write!(f, "deleted {name}"),
            Change::AddAddress { dev, addr } => write!(f, "added {addr} to {dev}"),
            Change::DelAddress { dev, addr } => write!(f, "removed {addr} from {dev}"),
            Change::SetSysctl { key, from, to, why } => {
                write!(f, "{key}: {from} -> {to}{}", Because(*why))
            }
        }
    }
}

/// A change's reason as the plan prints it after the change: ` (reason)`, or nothing.
struct Because(Option<&'static str>);

impl fmt::Display for Because {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(why) => write!(f, " ({why})"),
            None => Ok(()),
        }
    }
}

/// Why the settings cannot be reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A device the settings need does not exist and setup does not create it.
    #[error("interface `{0}` does not exist (see `ip link`)")]
    NoSuchInterface(String),
    /// The kernel has no such setting (a module is missing, or IPv6 is disabled).
    #[error("the kernel has no setting {0} (/proc/sys/{path})", path = .0.as_path())]
    NoSuchSysctl(Sysctl),
    /// The IPVS settings are missing altogether: the ip_vs module is not loaded.
    #[error(
        "the kernel has no setting {0}: /proc/sys/{IPVS_SYSCTL_DIR} exists only once the ip_vs \
         module is loaded; load ip_vs first (`modprobe ip_vs`; at boot: a line `ip_vs` in \
         /etc/modules-load.d/ipvs.conf) and run setup again (nothing was changed)"
    )]
    IpvsNotLoaded(Sysctl),
    /// A `--vip` is no address a client can reach this server by: pass the VIP.
    #[error(
        "--vip {ip}: {kind} VIP cannot be set up on {dev} ({reason}); pass the address clients \
         connect to (nothing was changed)",
        kind = .problem.kind(),
        reason = .problem.reason()
    )]
    RealserverVip {
        /// The address.
        ip: IpAddr,
        /// The device it would go on.
        dev: String,
        /// What is wrong with it.
        problem: VipProblem,
    },
    /// A service's address is no address a client can reach: the daemon may run the service,
    /// but setup will not put the address on the director's interface.
    #[error(
        "service {service}: {kind} VIP cannot be set up on {dev} ({reason}); setup director puts \
         only addresses clients can reach on {dev} (nothing was changed)",
        kind = .problem.kind(),
        reason = .problem.reason()
    )]
    DirectorVip {
        /// The service, as [`VirtualService::label`] names it.
        service: String,
        /// The director's interface.
        dev: String,
        /// What is wrong with the address.
        problem: VipProblem,
    },
}

/// The changes that turn `observed` into `desired`, in a safe order: devices are created, then
/// settings written (ARP is suppressed before a VIP appears), then devices brought up, then
/// addresses added. An address already on its device with another prefix counts as present.
pub fn plan(desired: &Desired, observed: &Observed) -> Result<Vec<Change>, PlanError> {
    let mut created = Vec::new();
    let mut raised = Vec::new();
    for link in &desired.links {
        match (observed.links.get(&link.name), link.create) {
            (Some(state), _) => {
                if link.raise && *state == LinkState::Down {
                    raised.push(set_link(&link.name, LinkState::Up));
                }
            }
            (None, Some(kind)) => {
                created.push(Change::CreateLink {
                    name: link.name.clone(),
                    kind,
                });
                if link.raise {
                    raised.push(set_link(&link.name, LinkState::Up));
                }
            }
            (None, None) => return Err(PlanError::NoSuchInterface(link.name.clone())),
        }
    }
    let mut sysctls = Vec::new();
    // Not one IPVS setting: the module is not loaded (rather than a kernel without one).
    let ipvs_loaded = observed.sysctls.keys().any(|k| k.ipvs_setting().is_some());
    for (key, want) in &desired.sysctls {
        let have = observed.sysctls.get(key).ok_or_else(|| {
            if key.ipvs_setting().is_some() && !ipvs_loaded {
                PlanError::IpvsNotLoaded(key.clone())
            } else {
                PlanError::NoSuchSysctl(key.clone())
            }
        })?;
        if have != want {
            sysctls.push(Change::SetSysctl {
                key: key.clone(),
                from: have.clone(),
                to: want.clone(),
                why: desired.reasons.get(key).copied(),
            });
        }
    }
    let mut added = Vec::new();
    for (dev, addr) in &desired.addresses {
        let present = observed
            .addresses
            .get(dev)
            .is_some_and(|have| have.iter().any(|a| a.ip == addr.ip));
        if !present {
            added.push(Change::AddAddress {
                dev: dev.clone(),
                addr: *addr,
            });
        }
    }
    Ok([created, sysctls, raised, added].concat())
}

fn set_link(name: &str, state: LinkState) -> Change {
    Change::SetLink {
        name: name.to_string(),
        state,
    }
}

/// What setup changed on this machine, remembered so `--undo` reverts exactly that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Devices setup created.
    pub created_links: BTreeSet<String>,
    /// Devices setup brought up.
    pub raised_links: BTreeSet<String>,
    /// Addresses setup added (not those that were there before).
    pub addresses: BTreeSet<(String, IfAddr)>,
    /// Settings setup wrote, with the value each had before setup first wrote it.
    pub sysctls: BTreeMap<Sysctl, String>,
}

impl Record {
    /// Remembers a change made by setup. A setting's earlier value is kept from the first
    /// time: a rerun after someone changed it back must not make setup's value the original.
    pub fn remember(&mut self, change: &Change) {
        match change {
            Change::CreateLink { name, .. } => {
                self.created_links.insert(name.clone());
            }
            Change::SetLink {
                name,
                state: LinkState::Up,
            } => {
                self.raised_links.insert(name.clone());
            }
            Change::AddAddress { dev, addr } => {
                self.addresses.insert((dev.clone(), *addr));
            }
            Change::SetSysctl { key, from, .. } => {
                self.sysctls
                    .entry(key.clone())
                    .or_insert_with(|| from.clone());
            }
            Change::SetLink { .. } | Change::DeleteLink { .. } | Change::DelAddress { .. } => {}
        }
    }

    /// Whether setup changed nothing.
    pub fn is_empty(&self) -> bool {
        self.created_links.is_empty()
            && self.raised_links.is_empty()
            && self.addresses.is_empty()
            && self.sysctls.is_empty()
    }

    /// Every device the record names.
    pub fn devices(&self) -> BTreeSet<String> {
        let mut devs: BTreeSet<String> = self.created_links.clone();
        devs.extend(self.raised_links.iter().cloned());
        devs.extend(self.addresses.iter().map(|(d, _)| d.clone()));
        devs
    }
}

/// The changes that revert what `record` says setup did, as far as it is still in place:
/// addresses removed first, devices brought down, settings restored (ARP stays suppressed until
/// the VIPs are gone), created devices deleted last. What setup did not add is left alone.
pub fn plan_undo(record: &Record, observed: &Observed) -> Vec<Change> {
    let mut changes = Vec::new();
    for (dev, addr) in &record.addresses {
        let present = observed
            .addresses
            .get(dev)
            .is_some_and(|have| have.iter().any(|a| a.ip == addr.ip));
        if present {
            changes.push(Change::DelAddress {
                dev: dev.clone(),
                addr: *addr,
            });
        }
    }
    for name in &record.raised_links {
        if observed.links.get(name) == Some(&LinkState::Up) {
            changes.push(set_link(name, LinkState::Down));
        }
    }
    for (key, original) in &record.sysctls {
        let device_gone = key
            .device()
            .is_some_and(|d| !observed.links.contains_key(d));
        match observed.sysctls.get(key) {
            Some(now) if now != original && !device_gone => changes.push(Change::SetSysctl {
                key: key.clone(),
                from: now.clone(),
                to: original.clone(),
                why: None,
            }),
            _ => {}
        }
    }
    for name in &record.created_links {
        if observed.links.contains_key(name) {
            changes.push(Change::DeleteLink { name: name.clone() });
        }
    }
    changes
}

/// How the director forwards to real servers, for `setup realserver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealServerMode {
    /// Direct routing: VIPs on lo.
    Dr,
    /// IP-in-IP: VIPs on the tunnel device.
    Tun,
}

/// A real server's settings.
///
/// DR: each VIP on `lo` as a host address, and for IPv4 `arp_ignore=1` (answer ARP only for
/// addresses of the interface the request came in on, so not for the VIP on lo) and
/// `arp_announce=2` (never use the VIP as the source of this machine's own ARP requests), on
/// `all` and on `lo`. The kernel uses the larger of `all` and the device's value, so `all` is
/// what takes effect on every interface; `lo` is set too as the LVS-DR guides do, so the
/// intent stays visible per device. IPv6 needs nothing: neighbour discovery answers only for
/// addresses of the receiving interface.
///
/// TUN: the VIPs on `tunl0` (IPv4) or `ip6tnl0` (IPv6), which are created if missing and
/// brought up; for IPv4, `rp_filter=0` on the tunnel and on `all` (decapsulated packets come
/// from clients the routing table would not send back through the tunnel, and the kernel uses
/// the larger of the two values), plus the ARP settings on `all` and the tunnel.
///
/// A VIP that is unspecified, loopback, multicast or the broadcast address is refused
/// ([`VipProblem`]).
pub fn realserver(vips: &[IpAddr], mode: RealServerMode) -> Result<Desired, PlanError> {
    let vips: BTreeSet<IpAddr> = vips.iter().copied().collect();
    let device = |ip: &IpAddr| match (mode, ip) {
        (RealServerMode::Dr, _) => LOOPBACK,
        (RealServerMode::Tun, IpAddr::V4(_)) => TunnelKind::Ipip.device(),
        (RealServerMode::Tun, IpAddr::V6(_)) => TunnelKind::Ip6tnl.device(),
    };
    for ip in &vips {
        if let Some(problem) = VipProblem::of(*ip) {
            return Err(PlanError::RealserverVip {
                ip: *ip,
                dev: device(ip).to_string(),
                problem,
            });
        }
    }
    let has_v4 = vips.iter().any(IpAddr::is_ipv4);
    let has_v6 = vips.iter().any(IpAddr::is_ipv6);
    let mut d = Desired::default();
    let arp = |d: &mut Desired, dev: &str| {
        for dev in ["all", dev] {
            d.sysctls.push((
                Sysctl::ipv4_conf(dev, ConfSetting::ArpIgnore),
                "1".to_string(),
            ));
            d.sysctls.push((
                Sysctl::ipv4_conf(dev, ConfSetting::ArpAnnounce),
                "2".to_string(),
            ));
        }
    };
    match mode {
        RealServerMode::Dr => {
            d.links.push(LinkWant {
                name: LOOPBACK.to_string(),
                create: None,
                raise: true,
            });
            if has_v4 {
                arp(&mut d, LOOPBACK);
            }
            for ip in &vips {
                d.addresses
                    .push((device(ip).to_string(), IfAddr::host(*ip)));
            }
        }
        RealServerMode::Tun => {
            for (present, kind) in [(has_v4, TunnelKind::Ipip), (has_v6, TunnelKind::Ip6tnl)] {
                if present {
                    d.links.push(LinkWant {
                        name: kind.device().to_string(),
                        create: Some(kind),
                        raise: true,
                    });
                }
            }
            if has_v4 {
                let tun = TunnelKind::Ipip.device();
                arp(&mut d, tun);
                for dev in ["all", tun] {
                    d.sysctls.push((
                        Sysctl::ipv4_conf(dev, ConfSetting::RpFilter),
                        "0".to_string(),
                    ));
                }
            }
            for ip in &vips {
                d.addresses
                    .push((device(ip).to_string(), IfAddr::host(*ip)));
            }
        }
    }
    Ok(d)
}

/// The director's settings, and the services they leave out (fwmark services: netfilter marks
/// their packets, whatever addresses those are, so there is no one VIP to hold).
///
/// With `vips_on`, every service address on that interface as a host address, announced as it
/// is added; `None` leaves the VIPs to something else (keepalived's VRRP on a pair: see below).
/// `net.ipv4.ip_forward=1` when an IPv4 service has a NAT server (replies come back through
/// the director, which must route them), `net.ipv6.conf.all.forwarding=1` likewise for IPv6.
/// DR and TUN need no forwarding.
///
/// With probes through the VIP (`via_vip` on any check), on each interface of
/// `toward_servers` (where the replies of those servers come in): `accept_local=1` and
/// `rp_filter=0`, and `net.ipv4.conf.all.rp_filter=0`. A reply to such a probe comes from the
/// VIP, one of the director's own addresses, and the kernel's source validation
/// (`fib_validate_source` in net/ipv4/fib_frontend.c) drops it as a martian unless
/// `IN_DEV_ACCEPT_LOCAL`, which is `all` OR the interface: so the interface alone suffices.
/// With reverse-path filtering off (`IN_DEV_RPFILTER`, the MAX of `all` and the interface, is
/// 0) and accept_local, the kernel accepts such a source without a route lookup; with it on,
/// the packet takes the full reverse-path lookup, whose result depends on which device holds
/// the VIP: so both must be 0, and `all` is written only when it is not 0 already (a plan
/// writes only what differs). The other devices keep their filtering: see
/// `keep_reverse_path_filtering` in `setup/mod.rs`. IPv6 needs
/// nothing: it has neither setting, and its input path does not drop a packet for coming
/// from one of the machine's own addresses.
///
/// With `[sync]` the director is one of a pair, and IPVS's own settings matter
/// ([`pair_settings`], each with the reason the plan shows).
///
/// A service address that is unspecified, loopback, multicast or the broadcast address is
/// refused ([`VipProblem`]) when it would go on `vips_on`: the daemon can run a service on
/// 127.0.0.1, but there is nothing to set up for it on an interface.
pub fn director<'a>(
    config: &'a Config,
    vips_on: Option<&str>,
    toward_servers: &BTreeSet<String>,
) -> Result<(Desired, Vec<&'a VirtualService>), PlanError> {
    let mut d = Desired {
        announce: vips_on.is_some(),
        ..Desired::default()
    };
    let mut vips = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut nat = BTreeSet::new();
    for svc in &config.services {
        let uses_nat = svc
            .servers
            .iter()
            .chain(&svc.fallbacks)
            .any(|s| s.forward == Forward::Nat);
        if uses_nat {
            nat.insert(svc.key.family());
        }
        let Some(interface) = vips_on else {
            continue;
        };
        match svc.key {
            ServiceKey::Fwmark { .. } => skipped.push(svc),
            ServiceKey::Tcp(a) | ServiceKey::Udp(a) | ServiceKey::Sctp(a) => {
                if let Some(problem) = VipProblem::of(a.ip()) {
                    return Err(PlanError::DirectorVip {
                        service: svc.label(),
                        dev: interface.to_string(),
                        problem,
                    });
                }
                vips.insert(a.ip());
            }
        }
    }
    if let Some(interface) = vips_on {
        d.links.push(LinkWant {
            name: interface.to_string(),
            create: None,
            raise: false,
        });
        for ip in vips {
            d.addresses.push((interface.to_string(), IfAddr::host(ip)));
        }
    }
    if nat.contains(&Family::Ipv4) {
        d.sysctls
            .push((Sysctl::global(GlobalSetting::Ipv4Forward), "1".to_string()));
    }
    if nat.contains(&Family::Ipv6) {
        d.sysctls.push((
            Sysctl::global(GlobalSetting::Ipv6Forwarding),
            "1".to_string(),
        ));
    }
    if !via_vip_servers(config).is_empty() {
        d.sysctls.push((
            Sysctl::ipv4_conf("all", ConfSetting::RpFilter),
            "0".to_string(),
        ));
        for dev in toward_servers {
            d.links.push(LinkWant {
                name: dev.clone(),
                create: None,
                raise: false,
            });
            d.sysctls.push((
                Sysctl::ipv4_conf(dev, ConfSetting::AcceptLocal),
                "1".to_string(),
            ));
            d.sysctls.push((
                Sysctl::ipv4_conf(dev, ConfSetting::RpFilter),
                "0".to_string(),
            ));
        }
    }
    let mut ipvs = match &config.sync {
        Some(sync) => pair_settings(config, sync),
        None => Vec::new(),
    };
    ipvs.extend(hashing_settings(config));
    for (setting, value, why) in ipvs {
        let key = Sysctl::ipvs(setting);
        d.reasons.insert(key.clone(), why);
        d.sysctls.push((key, value.to_string()));
    }
    Ok((d, skipped))
}

/// What a director needs from IPVS when it runs a service with a hashing scheduler (`sh`,
/// `mh`), as (setting, value, reason): such services are how several directors share traffic
/// behind ECMP, and when the router moves a flow to another director (one left or joined),
/// the packets that director receives are mid-stream: with `sloppy_tcp` (`sloppy_sctp`) at
/// 0 IPVS creates a connection only for a SYN (an INIT) and the flow breaks; at 1 it
/// schedules the packet, and the hash sends it to the same real server as before
/// (`net/netfilter/ipvs/ip_vs_proto_tcp.c`, `tcp_conn_schedule`). TCP services set
/// `sloppy_tcp`, SCTP services `sloppy_sctp`, firewall-mark services (which may carry
/// either) both; UDP has no connection to start, so nothing. The settings are global: other
/// TCP services on the director schedule mid-stream packets too (which, for a flow that is
/// not theirs, is what a director behind ECMP wants as well).
pub fn hashing_settings(config: &Config) -> Vec<(IpvsSetting, &'static str, &'static str)> {
    let hashing = || {
        config
            .services
            .iter()
            .filter(|s| lvs_hc_core::table::hashes_over_order(&s.params.scheduler))
    };
    let tcp = hashing().any(|s| matches!(s.key, ServiceKey::Tcp(_) | ServiceKey::Fwmark { .. }));
    let sctp = hashing().any(|s| matches!(s.key, ServiceKey::Sctp(_) | ServiceKey::Fwmark { .. }));
    let mut settings = Vec::new();
    if tcp {
        settings.push((
            IpvsSetting::SloppyTcp,
            "1",
            "a TCP service uses sh or mh: a flow another director carried arrives mid-stream \
             (ECMP moved it), and is scheduled, to the same server, instead of dropped",
        ));
    }
    if sctp {
        settings.push((
            IpvsSetting::SloppySctp,
            "1",
            "an SCTP service uses sh or mh: an association another director carried arrives \
             mid-stream (ECMP moved it), and is scheduled, to the same server, instead of \
             dropped",
        ));
    }
    settings
}

/// What one of a pair of directors (`[sync]`) needs from IPVS, as (setting, value, reason):
/// the reason is what the plan prints beside the change. From the kernel's
/// Documentation/networking/ipvs-sysctl.rst and net/netfilter/ipvs/ip_vs_sync.c
/// (`ip_vs_sync_conn_needed`):
///
/// - A synced connection lives on the standby for its timeout from the last message (900 s
///   for an established TCP connection). By default (`sync_threshold` `3 50`) a connection is
///   synced at its 3rd incoming packet and every 50th after: one that sends less often than
///   every 18 s loses its copy on the standby, and fails over to nothing. So the master
///   syncs by time instead: `sync_threshold` `3 0` (no packet period) and
///   `sync_refresh_period` 10: a connection is synced at its first packet once established
///   and again at its first packet 10 s after its last sync, however seldom it sends; a busy
///   one costs one message each 10 s instead of one each 50 packets. State changes (closing)
///   are synced at once either way.
/// - `sync_version` 1: version 0 carries only IPv4, without firewall marks, persistence data
///   or timeouts. 1 is the kernel's default; it is written only where something set 0.
/// - `backup_only` 0 where a backup daemon runs: with 1 the kernel stops balancing on a
///   director whose backup daemon runs, and with `role = "both"` the active one runs it too.
/// - `expire_nodest_conn` 1: a connection to a server lvs-hc removed (its checks failed) ends
///   at its next packet, so the client reconnects to a live server instead of retransmitting
///   into nothing until it gives up. A drained server (weight 0) stays in the table and keeps
///   its connections.
/// - With persistence: `expire_quiescent_template` 1 (a client persistent to a server drained
///   to weight 0 is scheduled afresh at its next connection, rather than held there by its
///   template, which the standby receives too), and, where a master runs,
///   `sync_persist_mode` 0 (1 syncs only the templates of persistent services, not their
///   connections, which then break at failover).
///
/// Left alone: `conntrack` (it keeps netfilter's entries for IPVS connections for stateful
/// firewall rules; sync copies IPVS connections, not netfilter's, and failover does not need
/// them); `sync_retries` (a lost message is made good by the next refresh);
/// `sync_ports`, `sync_qlen_max`, `sync_sock_size` (throughput; `sync_ports` must be equal on
/// both directors, and is by default). The master-side settings are written only where the
/// master daemon runs, `backup_only` only where the backup daemon does.
pub fn pair_settings(
    config: &Config,
    sync: &SyncSettings,
) -> Vec<(IpvsSetting, &'static str, &'static str)> {
    let master = sync.roles.contains(&SyncRole::Master);
    let backup = sync.roles.contains(&SyncRole::Backup);
    let persistent = config
        .services
        .iter()
        .any(|s| s.params.persistence.is_some());
    let mut settings = Vec::new();
    if master {
        settings.push((
            IpvsSetting::SyncVersion,
            "1",
            "version 1 syncs IPv6 and firewall-mark connections, persistence data and \
             timeouts; version 0 does not",
        ));
        // Before the threshold: never a moment with neither a packet period nor a time.
        settings.push((
            IpvsSetting::SyncRefreshPeriod,
            "10",
            "a connection is synced again at its first packet 10 s after the last sync, however \
             seldom it sends, so the standby's copy never expires under a live connection",
        ));
        settings.push((
            IpvsSetting::SyncThreshold,
            "3 0",
            "sync_period 0: sync by time, not at every 50th packet, which a connection sending \
             less than every 18 s reaches after the standby's copy (900 s) expired",
        ));
    }
    if backup {
        settings.push((
            IpvsSetting::BackupOnly,
            "0",
            "with 1 a director running the backup sync daemon stops balancing, and with role \
             both the active one runs it too",
        ));
    }
    settings.push((
        IpvsSetting::ExpireNodestConn,
        "1",
        "a connection to a server lvs-hc removed ends at its next packet, so the client \
         reconnects instead of hanging; a drained server keeps its connections",
    ));
    if persistent {
        settings.push((
            IpvsSetting::ExpireQuiescentTemplate,
            "1",
            "a persistent client of a server drained to weight 0 goes to another server at its \
             next connection instead of being held by its template, which the standby has too",
        ));
        if master {
            settings.push((
                IpvsSetting::SyncPersistMode,
                "0",
                "mode 1 syncs only the templates of persistent services, not their connections, \
                 which would break at failover",
            ));
        }
    }
    settings
}

/// The IPv4 addresses of the servers probed through their VIP (`via_vip`), whose replies need
/// the director's `accept_local` and `rp_filter` settings ([`director`]).
pub fn via_vip_servers(config: &Config) -> BTreeSet<IpAddr> {
    config
        .services
        .iter()
        .flat_map(|s| s.servers.iter().chain(&s.fallbacks))
        .filter(|s| s.checks.iter().any(|c| c.via.is_some()))
        .map(|s| s.addr.ip())
        .filter(IpAddr::is_ipv4)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A fresh network namespace: lo down with 127.0.0.1/8, every setting at 0.
    fn fresh() -> Observed {
        let mut o = Observed::default();
        o.links.insert("lo".into(), LinkState::Down);
        o.addresses
            .insert("lo".into(), vec!["127.0.0.1/8".parse().unwrap()]);
        for dev in ["all", "default", "lo"] {
            for name in ConfSetting::ALL {
                o.sysctls.insert(Sysctl::ipv4_conf(dev, name), "0".into());
            }
        }
        o.sysctls
            .insert(Sysctl::ipv4_conf("all", ConfSetting::RpFilter), "2".into());
        o.sysctls
            .insert(Sysctl::global(GlobalSetting::Ipv4Forward), "0".into());
        o.sysctls
            .insert(Sysctl::global(GlobalSetting::Ipv6Forwarding), "0".into());
        o
    }

    /// `fresh()` as `observe` reads it for TUN before tunl0 exists: its settings read as
    /// `default`'s, which a new device starts with.
    fn fresh_without_tunl0() -> Observed {
        let mut o = fresh();
        for name in ConfSetting::ALL {
            let v = o.sysctls[&Sysctl::ipv4_conf("default", name)].clone();
            o.sysctls.insert(Sysctl::ipv4_conf("tunl0", name), v);
        }
        o
    }

    /// `fresh()` with `changes` made, as the kernel would.
    fn after(mut o: Observed, changes: &[Change]) -> Observed {
        for c in changes {
            match c {
                Change::CreateLink { name, .. } => {
                    o.links.insert(name.clone(), LinkState::Down);
                    o.addresses.insert(name.clone(), vec![]);
                }
                Change::SetLink { name, state } => {
                    o.links.insert(name.clone(), *state);
                }
                Change::DeleteLink { name } => {
                    o.links.remove(name);
                    o.addresses.remove(name);
                }
                Change::AddAddress { dev, addr } => {
                    o.addresses.get_mut(dev).unwrap().push(*addr);
                }
                Change::DelAddress { dev, addr } => {
                    o.addresses.get_mut(dev).unwrap().retain(|a| a != addr);
                }
                Change::SetSysctl { key, to, .. } => {
                    o.sysctls.insert(key.clone(), to.clone());
                }
            }
        }
        o
    }

    #[test]
    fn dr_puts_the_vip_on_lo_after_suppressing_arp() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Dr).unwrap();
        let changes = plan(&d, &fresh()).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "net.ipv4.conf.all.arp_ignore: 0 -> 1",
                "net.ipv4.conf.all.arp_announce: 0 -> 2",
                "net.ipv4.conf.lo.arp_ignore: 0 -> 1",
                "net.ipv4.conf.lo.arp_announce: 0 -> 2",
                "set lo up",
                "added 192.168.0.101/32 to lo",
            ]
        );
    }

    #[test]
    fn dr_in_place_plans_nothing() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Dr).unwrap();
        let done = after(fresh(), &plan(&d, &fresh()).unwrap());
        assert_eq!(plan(&d, &done).unwrap(), []);
    }

    #[test]
    fn a_vip_already_held_with_another_prefix_counts_as_present() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Dr).unwrap();
        let mut o = fresh();
        o.addresses
            .get_mut("lo")
            .unwrap()
            .push("192.168.0.101/24".parse().unwrap());
        assert!(!lines(&plan(&d, &o).unwrap())
            .iter()
            .any(|l| l.starts_with("added")));
    }

    #[test]
    fn ipv6_vip_is_a_128_and_needs_no_arp_settings() {
        let d = realserver(&[ip("2001:db8::101")], RealServerMode::Dr).unwrap();
        assert_eq!(
            lines(&plan(&d, &fresh()).unwrap()),
            ["set lo up", "added 2001:db8::101/128 to lo"]
        );
    }

    #[test]
    fn tun_creates_the_tunnel_relaxes_rp_filter_and_suppresses_arp() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Tun).unwrap();
        let changes = plan(&d, &fresh_without_tunl0()).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "created tunl0 (ipip)",
                "net.ipv4.conf.all.arp_ignore: 0 -> 1",
                "net.ipv4.conf.all.arp_announce: 0 -> 2",
                "net.ipv4.conf.tunl0.arp_ignore: 0 -> 1",
                "net.ipv4.conf.tunl0.arp_announce: 0 -> 2",
                "net.ipv4.conf.all.rp_filter: 2 -> 0",
                "set tunl0 up",
                "added 192.168.0.101/32 to tunl0",
            ]
        );
    }

    #[test]
    fn tun_for_ipv6_uses_ip6tnl0() {
        let d = realserver(&[ip("2001:db8::101")], RealServerMode::Tun).unwrap();
        let mut o = fresh();
        o.links.insert("ip6tnl0".into(), LinkState::Down);
        o.addresses.insert("ip6tnl0".into(), vec![]);
        assert_eq!(
            lines(&plan(&d, &o).unwrap()),
            ["set ip6tnl0 up", "added 2001:db8::101/128 to ip6tnl0"]
        );
    }

    #[test]
    fn check_wording_says_what_differs() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Tun).unwrap();
        let drift: Vec<String> = plan(&d, &fresh_without_tunl0())
            .unwrap()
            .iter()
            .map(Change::drift)
            .collect();
        assert_eq!(drift[0], "tunl0 (ipip) does not exist");
        assert_eq!(drift[1], "net.ipv4.conf.all.arp_ignore is 0, should be 1");
        assert_eq!(drift[6], "tunl0 is not up");
        assert_eq!(drift[7], "192.168.0.101/32 is not on tunl0");
    }

    #[test]
    fn undo_reverts_only_what_setup_changed() {
        let d = realserver(
            &[ip("192.168.0.101"), ip("192.168.0.102")],
            RealServerMode::Dr,
        )
        .unwrap();
        // .102 was there before setup, and lo was up.
        let mut before = fresh();
        before.links.insert("lo".into(), LinkState::Up);
        before
            .addresses
            .get_mut("lo")
            .unwrap()
            .push("192.168.0.102/32".parse().unwrap());
        before
            .sysctls
            .insert(Sysctl::ipv4_conf("lo", ConfSetting::ArpIgnore), "1".into());
        let changes = plan(&d, &before).unwrap();
        let mut record = Record::default();
        changes.iter().for_each(|c| record.remember(c));
        let done = after(before.clone(), &changes);
        assert_eq!(
            lines(&plan_undo(&record, &done)),
            [
                "removed 192.168.0.101/32 from lo",
                "net.ipv4.conf.all.arp_announce: 2 -> 0",
                "net.ipv4.conf.all.arp_ignore: 1 -> 0",
                "net.ipv4.conf.lo.arp_announce: 2 -> 0",
            ]
        );
        assert_eq!(after(done.clone(), &plan_undo(&record, &done)), before);
    }

    #[test]
    fn undo_deletes_a_created_tunnel_last() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Tun).unwrap();
        let changes = plan(&d, &fresh_without_tunl0()).unwrap();
        let mut record = Record::default();
        changes.iter().for_each(|c| record.remember(c));
        let done = after(fresh_without_tunl0(), &changes);
        let undo = lines(&plan_undo(&record, &done));
        assert_eq!(undo[0], "removed 192.168.0.101/32 from tunl0");
        assert_eq!(undo[1], "set tunl0 down");
        assert_eq!(undo.last().unwrap(), "deleted tunl0");
        assert_eq!(
            after(done.clone(), &plan_undo(&record, &done)).links,
            fresh_without_tunl0().links
        );
    }

    #[test]
    fn a_rerun_keeps_the_first_remembered_value() {
        let mut record = Record::default();
        let key = Sysctl::ipv4_conf("all", ConfSetting::ArpIgnore);
        record.remember(&Change::SetSysctl {
            key: key.clone(),
            from: "0".into(),
            to: "1".into(),
            why: None,
        });
        // Someone set it to 2 by hand; setup sets it back to 1.
        record.remember(&Change::SetSysctl {
            key: key.clone(),
            from: "2".into(),
            to: "1".into(),
            why: None,
        });
        assert_eq!(record.sysctls[&key], "0");
    }

    #[test]
    fn undo_after_someone_reverted_by_hand_plans_nothing() {
        let d = realserver(&[ip("192.168.0.101")], RealServerMode::Dr).unwrap();
        let changes = plan(&d, &fresh()).unwrap();
        let mut record = Record::default();
        changes.iter().for_each(|c| record.remember(c));
        assert_eq!(plan_undo(&record, &fresh()), []);
    }

    fn config(text: &str) -> Config {
        Config::from_toml(text, "test.toml").unwrap()
    }

    fn director_observed() -> Observed {
        let mut o = fresh();
        o.links.insert("eth0".into(), LinkState::Up);
        o.addresses
            .insert("eth0".into(), vec!["192.168.0.178/24".parse().unwrap()]);
        o
    }

    #[test]
    fn director_puts_each_vip_on_the_interface_once_and_no_forwarding_for_dr() {
        let cfg = config(
            r#"
[[service]]
address = "192.168.0.101:80"
[[service.server]]
address = "192.168.0.179:80"
[[service]]
address = "192.168.0.101:443"
[[service.server]]
address = "192.168.0.179:443"
[[service]]
address = "[2001:db8::101]:80"
[[service.server]]
address = "[2001:db8::179]:80"
"#,
        );
        let (d, skipped) = director(&cfg, Some("eth0"), &BTreeSet::new()).unwrap();
        assert!(skipped.is_empty());
        assert_eq!(
            lines(&plan(&d, &director_observed()).unwrap()),
            [
                "added 192.168.0.101/32 to eth0",
                "added 2001:db8::101/128 to eth0"
            ]
        );
    }

    #[test]
    fn director_turns_forwarding_on_for_nat_and_skips_fwmark_services() {
        let cfg = config(
            r#"
[[service]]
address = "192.168.0.101:80"
forward = "nat"
[[service.server]]
address = "10.0.0.2:8080"
[[service]]
fwmark = 7
[[service.check]]
type = "tcp"
port = 80
[[service.server]]
address = "192.168.0.179"
"#,
        );
        let (d, skipped) = director(&cfg, Some("eth0"), &BTreeSet::new()).unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(
            lines(&plan(&d, &director_observed()).unwrap()),
            [
                "net.ipv4.ip_forward: 0 -> 1",
                "added 192.168.0.101/32 to eth0"
            ]
        );
    }

    #[test]
    fn director_interface_must_exist() {
        let cfg = config(
            "[[service]]\naddress = \"192.168.0.101:80\"\n[[service.server]]\naddress = \"192.168.0.179:80\"\n",
        );
        let (d, _) = director(&cfg, Some("eth9"), &BTreeSet::new()).unwrap();
        assert_eq!(
            plan(&d, &director_observed()).unwrap_err().to_string(),
            "interface `eth9` does not exist (see `ip link`)"
        );
    }

    /// One of a pair: `[sync]` (both daemons unless `role` says otherwise) and the seed's
    /// service, `extra` added to the service.
    fn pair_config(sync: &str, extra: &str) -> Config {
        config(&format!(
            "[sync]\ninterface = \"eth1\"\n{sync}\n[[service]]\naddress = \"192.168.0.101:80\"\n\
             {extra}\n[[service.server]]\naddress = \"192.168.0.179:80\"\n"
        ))
    }

    /// `director_observed()` with ip_vs loaded: its settings at the kernel's defaults.
    fn ipvs_defaults() -> Observed {
        let mut o = director_observed();
        for (setting, value) in [
            (IpvsSetting::BackupOnly, "0"),
            (IpvsSetting::ExpireNodestConn, "0"),
            (IpvsSetting::ExpireQuiescentTemplate, "0"),
            (IpvsSetting::SyncPersistMode, "0"),
            (IpvsSetting::SyncRefreshPeriod, "0"),
            (IpvsSetting::SyncThreshold, "3 50"),
            (IpvsSetting::SyncVersion, "1"),
        ] {
            o.sysctls.insert(Sysctl::ipvs(setting), value.into());
        }
        o
    }

    /// The settings a pair's plan changes, without their reasons.
    fn keys_changed(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|c| match c {
                Change::SetSysctl { key, from, to, .. } => format!("{key}: {from} -> {to}"),
                other => other.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_pair_puts_no_vip_anywhere_and_syncs_connections_by_time() {
        let cfg = pair_config("", "");
        let (d, skipped) = director(&cfg, None, &BTreeSet::new()).unwrap();
        assert!(skipped.is_empty());
        assert!(d.links.is_empty() && d.addresses.is_empty(), "{d:?}");
        assert!(!d.announce);
        let changes = plan(&d, &ipvs_defaults()).unwrap();
        assert_eq!(
            lines(&changes),
            [
                "net.ipv4.vs.sync_refresh_period: 0 -> 10 (a connection is synced again at its \
                 first packet 10 s after the last sync, however seldom it sends, so the \
                 standby's copy never expires under a live connection)",
                "net.ipv4.vs.sync_threshold: 3 50 -> 3 0 (sync_period 0: sync by time, not at \
                 every 50th packet, which a connection sending less than every 18 s reaches \
                 after the standby's copy (900 s) expired)",
                "net.ipv4.vs.expire_nodest_conn: 0 -> 1 (a connection to a server lvs-hc \
                 removed ends at its next packet, so the client reconnects instead of \
                 hanging; a drained server keeps its connections)",
            ]
        );
        assert_eq!(
            changes[2].drift(),
            "net.ipv4.vs.expire_nodest_conn is 0, should be 1 (a connection to a server lvs-hc \
             removed ends at its next packet, so the client reconnects instead of hanging; a \
             drained server keeps its connections)"
        );
        // Every setting of a pair says why.
        for (key, _) in &d.sysctls {
            assert!(d.reasons.contains_key(key), "{key} has no reason");
        }
        assert_eq!(plan(&d, &after(ipvs_defaults(), &changes)).unwrap(), []);
    }

    #[test]
    fn a_pair_repairs_settings_that_break_sync_or_failover() {
        let cfg = pair_config("", "");
        let (d, _) = director(&cfg, None, &BTreeSet::new()).unwrap();
        let mut o = ipvs_defaults();
        o.sysctls
            .insert(Sysctl::ipvs(IpvsSetting::SyncVersion), "0".into());
        o.sysctls
            .insert(Sysctl::ipvs(IpvsSetting::BackupOnly), "1".into());
        let changes = keys_changed(&plan(&d, &o).unwrap());
        assert!(
            changes.contains(&"net.ipv4.vs.sync_version: 0 -> 1".to_string()),
            "{changes:?}"
        );
        assert!(
            changes.contains(&"net.ipv4.vs.backup_only: 1 -> 0".to_string()),
            "{changes:?}"
        );
    }

    #[test]
    fn a_pair_with_persistence_expires_quiescent_templates_and_syncs_connections() {
        let cfg = pair_config("", "persistence = \"300s\"");
        let (d, _) = director(&cfg, None, &BTreeSet::new()).unwrap();
        let mut o = ipvs_defaults();
        o.sysctls
            .insert(Sysctl::ipvs(IpvsSetting::SyncPersistMode), "1".into());
        assert_eq!(
            keys_changed(&plan(&d, &o).unwrap()),
            [
                "net.ipv4.vs.sync_refresh_period: 0 -> 10",
                "net.ipv4.vs.sync_threshold: 3 50 -> 3 0",
                "net.ipv4.vs.expire_nodest_conn: 0 -> 1",
                "net.ipv4.vs.expire_quiescent_template: 0 -> 1",
                "net.ipv4.vs.sync_persist_mode: 1 -> 0",
            ]
        );
    }

    #[test]
    fn a_pair_writes_the_settings_of_the_daemons_it_runs() {
        let written = |role: &str| -> Vec<String> {
            let cfg = pair_config(&format!("role = \"{role}\""), "persistence = \"300s\"");
            let (d, _) = director(&cfg, None, &BTreeSet::new()).unwrap();
            d.sysctls.iter().map(|(k, _)| k.to_string()).collect()
        };
        // A backup only receives: what the master sends is not its business.
        assert_eq!(
            written("backup"),
            [
                "net.ipv4.vs.backup_only",
                "net.ipv4.vs.expire_nodest_conn",
                "net.ipv4.vs.expire_quiescent_template",
            ]
        );
        // Without a backup daemon, backup_only has nothing to act on.
        assert_eq!(
            written("master"),
            [
                "net.ipv4.vs.sync_version",
                "net.ipv4.vs.sync_refresh_period",
                "net.ipv4.vs.sync_threshold",
                "net.ipv4.vs.expire_nodest_conn",
                "net.ipv4.vs.expire_quiescent_template",
                "net.ipv4.vs.sync_persist_mode",
            ]
        );
    }

    #[test]
    fn a_pair_without_ip_vs_loaded_is_told_to_load_it_first() {
        let cfg = pair_config("", "");
        let (d, _) = director(&cfg, None, &BTreeSet::new()).unwrap();
        assert_eq!(
            plan(&d, &director_observed()).unwrap_err().to_string(),
            "the kernel has no setting net.ipv4.vs.sync_version: /proc/sys/net/ipv4/vs exists \
             only once the ip_vs module is loaded; load ip_vs first (`modprobe ip_vs`; at boot: \
             a line `ip_vs` in /etc/modules-load.d/ipvs.conf) and run setup again (nothing was \
             changed)"
        );
        // With ip_vs loaded, a setting this kernel lacks is just that.
        let mut o = ipvs_defaults();
        o.sysctls
            .remove(&Sysctl::ipvs(IpvsSetting::ExpireNodestConn));
        assert_eq!(
            plan(&d, &o).unwrap_err(),
            PlanError::NoSuchSysctl(Sysctl::ipvs(IpvsSetting::ExpireNodestConn))
        );
    }

    #[test]
    fn a_pair_keeps_the_director_settings_nat_and_via_vip_need() {
        let cfg = config(
            r#"
[sync]
interface = "eth0"
[[service]]
address = "192.168.0.101:80"
forward = "nat"
[[service.check]]
type = "tcp"
via_vip = true
[[service.server]]
address = "10.0.0.2:8080"
"#,
        );
        let toward: BTreeSet<String> = ["eth1".to_string()].into();
        let (d, _) = director(&cfg, None, &toward).unwrap();
        let keys: Vec<String> = d.sysctls.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(
            keys[..4],
            [
                "net.ipv4.ip_forward",
                "net.ipv4.conf.all.rp_filter",
                "net.ipv4.conf.eth1.accept_local",
                "net.ipv4.conf.eth1.rp_filter",
            ]
        );
        assert!(d.addresses.is_empty());
    }

    #[test]
    fn ipvs_setting_names_read_like_sysctl8_and_are_no_device_settings() {
        for s in IpvsSetting::ALL {
            let k = Sysctl::ipvs(s);
            assert_eq!(k.to_string(), format!("net.ipv4.vs.{}", s.name()));
            assert_eq!(Sysctl::from_dotted(&k.to_string()), Ok(k.clone()));
            assert_eq!(k.device(), None);
            assert_eq!(k.for_new_device(), None);
            assert_eq!(k.ipvs_setting(), Some(s));
        }
        assert_eq!(Sysctl::ipvs(IpvsSetting::SyncThreshold).arity(), 2);
        assert_eq!(Sysctl::ipvs(IpvsSetting::SyncVersion).arity(), 1);
        assert_eq!(Sysctl::global(GlobalSetting::Ipv4Forward).arity(), 1);
        assert!(Sysctl::from_dotted("net.ipv4.vs.conntrack").is_err());
        assert!(Sysctl::from_dotted("net.ipv4.vs.sync_ports").is_err());
    }

    #[test]
    fn vips_that_would_hurt_are_told_apart_from_usable_ones() {
        for (addr, want) in [
            ("0.0.0.0", Some(VipProblem::Unspecified)),
            ("::", Some(VipProblem::Unspecified)),
            ("127.0.0.1", Some(VipProblem::Loopback)),
            ("127.255.255.254", Some(VipProblem::Loopback)),
            ("::1", Some(VipProblem::Loopback)),
            ("::ffff:127.0.0.1", Some(VipProblem::Loopback)),
            ("224.0.0.1", Some(VipProblem::Multicast)),
            ("239.255.255.255", Some(VipProblem::Multicast)),
            ("ff02::1", Some(VipProblem::Multicast)),
            ("255.255.255.255", Some(VipProblem::Broadcast)),
            ("::ffff:255.255.255.255", Some(VipProblem::Broadcast)),
            ("192.168.0.101", None),
            ("192.168.0.255", None),
            ("223.255.255.255", None),
            ("128.0.0.1", None),
            ("2001:db8::101", None),
        ] {
            assert_eq!(VipProblem::of(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn realserver_refuses_a_vip_that_would_hurt_naming_the_device_it_would_go_on() {
        let err = |vip: &str, mode| {
            realserver(&[ip("192.168.0.101"), ip(vip)], mode)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("127.0.0.2", RealServerMode::Dr),
            "--vip 127.0.0.2: a loopback VIP cannot be set up on lo (127.0.0.0/8 and ::1 never \
             leave this machine); pass the address clients connect to (nothing was changed)"
        );
        assert!(err("ff02::1", RealServerMode::Tun).starts_with(
            "--vip ff02::1: a multicast VIP cannot be set up on ip6tnl0 (224.0.0.0/4"
        ));
        assert!(err("255.255.255.255", RealServerMode::Tun)
            .starts_with("--vip 255.255.255.255: a broadcast VIP cannot be set up on tunl0"));
    }

    #[test]
    fn director_refuses_a_loopback_service_address_naming_the_service() {
        let cfg = config(
            r#"
[[service]]
address = "192.168.0.101:80"
[[service.server]]
address = "192.168.0.179:80"
[[service]]
name = "local"
address = "127.0.0.1:80"
[[service.server]]
address = "192.168.0.179:80"
"#,
        );
        assert_eq!(
            director(&cfg, Some("eth0"), &BTreeSet::new())
                .unwrap_err()
                .to_string(),
            "service local (TCP 127.0.0.1:80): a loopback VIP cannot be set up on eth0 \
             (127.0.0.0/8 and ::1 never leave this machine); setup director puts only addresses \
             clients can reach on eth0 (nothing was changed)"
        );
    }

    #[test]
    fn sysctl_names_read_like_sysctl8() {
        let k = Sysctl::ipv4_conf("eth0.100", ConfSetting::RpFilter);
        assert_eq!(k.to_string(), "net.ipv4.conf.eth0/100.rp_filter");
        assert_eq!(Sysctl::from_dotted(&k.to_string()), Ok(k.clone()));
        assert_eq!(k.device(), Some("eth0.100"));
        assert_eq!(
            k.for_new_device().unwrap().as_path(),
            "net/ipv4/conf/default/rp_filter"
        );
        assert_eq!(
            Sysctl::ipv4_conf("ipv4", ConfSetting::ArpIgnore)
                .for_new_device()
                .unwrap()
                .as_path(),
            "net/ipv4/conf/default/arp_ignore"
        );
        assert_eq!(
            Sysctl::ipv4_conf("all", ConfSetting::ArpIgnore).device(),
            None
        );
        for g in GlobalSetting::ALL {
            let s = Sysctl::global(g);
            assert_eq!(Sysctl::from_dotted(&s.to_string()), Ok(s));
        }
    }

    #[test]
    fn a_sysctl_name_that_would_leave_proc_sys_net_is_refused() {
        for name in [
            "//.//.etc.shadow",
            ".etc.shadow",
            "net.ipv4.conf.//.//.//.//.etc.arp_ignore",
            "net.ipv4.conf.//.arp_ignore",
            "net.ipv4.conf./.arp_ignore",
            "net.ipv4.conf..arp_ignore",
            "net.ipv4.conf.a\0b.arp_ignore",
            "net.ipv4.conf.eth0.100.arp_ignore",
            "net.ipv4.conf.all.forwarding",
            "net.ipv6.conf.eth0.forwarding",
            "kernel.core_pattern",
            "net.ipv4.ip_forward.",
            "",
        ] {
            assert!(Sysctl::from_dotted(name).is_err(), "{name:?} accepted");
        }
        assert_eq!(
            Sysctl::from_dotted("net.ipv4.conf.//.arp_ignore").unwrap_err(),
            "`net.ipv4.conf.//.arp_ignore`: `//` is not an interface name (1 to 15 bytes, not \
             `.` or `..`, no `/`, `:` or whitespace; a `.` in it is written `/`)"
        );
    }

    #[test]
    #[should_panic(expected = "`..` is not an interface name")]
    fn a_sysctl_of_a_device_that_is_no_interface_name_cannot_be_made() {
        Sysctl::ipv4_conf("..", ConfSetting::RpFilter);
    }
}
