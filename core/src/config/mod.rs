//! The validated configuration model.
//!
//! A [`Config`] is built only by [`Config::from_toml`], which checks everything, so a `Config`
//! that exists is valid: every service key is unique, every server belongs to its service's
//! address family, every check can run. The TOML format is documented in `examples/full.toml`.

mod load;
mod toml;

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use load::limits;
pub use toml::ConfigError;

use crate::sync::{SyncDaemon, SyncRole};
use crate::table::{DestParams, Forward, ServiceEntry, ServiceKey, ServiceParams};
use crate::time::format_duration;

/// A whole lvs-hc configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Settings of the daemon itself.
    pub daemon: DaemonSettings,
    /// How `lvs-hc setup director` prepares this machine.
    pub director: DirectorSettings,
    /// The kernel's connection sync daemons lvs-hc keeps running (`[sync]`), for a pair of
    /// directors; `None` leaves them alone.
    pub sync: Option<SyncSettings>,
    /// Routes announcing the virtual addresses of ready services (`[announce]`), for several
    /// directors behind ECMP; `None` announces nothing.
    pub announce: Option<AnnounceSettings>,
    /// The virtual services lvs-hc manages, in file order.
    pub services: Vec<VirtualService>,
    /// lvs-hc's own firewall-mark services, one per server probed through its virtual address
    /// (`via_vip`), derived from `services`: never the operator's, and never in `services`.
    pub probe_services: Vec<ProbeService>,
}

impl Config {
    /// Parses and validates a TOML configuration. `origin` names the source (a file path) in
    /// errors, which give its line, column and key.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        load::load(text, origin)
    }

    /// The keys of the services this configuration names.
    pub fn service_keys(&self) -> BTreeSet<ServiceKey> {
        self.services.iter().map(|s| s.key).collect()
    }

    /// Gives every server probed through its virtual address its probe service again, as the
    /// loader does: for a configuration edited as a value (the simulator's reloads) rather
    /// than read from a file. Fails when `[daemon] via_vip_marks` holds too few marks.
    pub fn refresh_probe_services(&mut self) -> Result<(), String> {
        self.probe_services =
            load::assign_probe_marks(&mut self.services, self.daemon.via_vip_marks)?;
        Ok(())
    }

    /// Every real server address over all services (fallbacks excluded).
    pub fn real_server_addrs(&self) -> BTreeSet<SocketAddr> {
        self.services
            .iter()
            .flat_map(|s| s.servers.iter().map(|r| r.addr))
            .collect()
    }
}

/// Settings of the daemon itself (`[daemon]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSettings {
    /// How often the kernel table is re-read to repair changes made outside lvs-hc.
    pub resync_interval: Duration,
    /// First delay before a failed operation is retried; it doubles per failure.
    pub retry_backoff: Duration,
    /// Longest delay between retries of a failed operation.
    pub retry_backoff_max: Duration,
    /// Which services lvs-hc owns in the kernel table.
    pub manage: Manage,
    /// Most probes in flight at once.
    pub probe_concurrency: usize,
    /// Threads that run probes (1: probes run on the driver's thread). Read at start: a reload
    /// that changes it takes effect at the next start.
    pub probe_threads: usize,
    /// Where the local HTTP API (`/metrics`, `/status`, `/healthz`) listens.
    pub api: ApiListen,
    /// The lock file that keeps a second instance from running with this configuration;
    /// `None`: `/run/lvs-hc/<configuration file stem>.lock`.
    pub lock_file: Option<PathBuf>,
    /// Where the control socket (reload and the operator's commands) listens.
    pub control: ControlListen,
    /// The control socket's permission bits (`control_mode`, default `0600`).
    pub control_mode: u32,
    /// The group the control socket belongs to (`control_group`, a name or a number), so its
    /// members may use it when `control_mode` lets the group write.
    pub control_group: Option<String>,
    /// Where the daemon keeps what must survive a restart: the operators' administrative
    /// states (`admin.json`). Default `/var/lib/lvs-hc` (systemd's `StateDirectory=lvs-hc`).
    pub state_dir: PathBuf,
    /// A directory whose files take servers out while they exist (`maintenance_dir`); `None`:
    /// off (the default).
    pub maintenance_dir: Option<PathBuf>,
    /// The marks of lvs-hc's probe services (`via_vip_marks`).
    pub via_vip_marks: MarkRange,
    /// How often the director asks who answers ARP (IPv6: neighbour discovery) for each
    /// virtual address of a DR or TUN service that it holds (`arp_watch`); `None`: never.
    pub arp_watch: Option<Duration>,
}

/// Where the control socket listens (`[daemon] control`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlListen {
    /// Beside the lock file, with its name ending in `.sock` instead of `.lock`
    /// (`/run/lvs-hc/lvs-hc.sock` for the default lock).
    BesideLock,
    /// No control socket: reload with SIGHUP.
    Off,
    /// This unix socket path.
    Path(PathBuf),
}

impl ControlListen {
    /// Parses `off` or an absolute path.
    pub fn parse(text: &str) -> Result<ControlListen, String> {
        if text == "off" {
            return Ok(ControlListen::Off);
        }
        let path = text.strip_prefix("unix:").unwrap_or(text);
        if !path.starts_with('/') {
            return Err(format!(
                "`{text}` is not `off` or an absolute path such as /run/lvs-hc/lvs-hc.sock"
            ));
        }
        Ok(ControlListen::Path(PathBuf::from(path)))
    }

    /// The socket's path for an instance whose lock file is `lock`; `None` when off.
    pub fn path(&self, lock: &std::path::Path) -> Option<PathBuf> {
        match self {
            ControlListen::Off => None,
            ControlListen::Path(p) => Some(p.clone()),
            ControlListen::BesideLock => Some(lock.with_extension("sock")),
        }
    }
}

/// Where the local HTTP API listens (`[daemon] api`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiListen {
    /// No API.
    Off,
    /// A TCP address (`"127.0.0.1:9101"`, the default).
    Tcp(SocketAddr),
    /// A unix socket (`"unix:/run/lvs-hc/api.sock"`).
    Unix(PathBuf),
}

impl ApiListen {
    /// The default: 127.0.0.1:9101.
    pub const DEFAULT_PORT: u16 = 9101;

    /// Parses `off`, `ADDR:PORT` or `unix:PATH`.
    pub fn parse(text: &str) -> Result<ApiListen, String> {
        if text == "off" {
            return Ok(ApiListen::Off);
        }
        if let Some(path) = text.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!("`{text}`: a unix socket needs an absolute path"));
            }
            return Ok(ApiListen::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>().map(ApiListen::Tcp).map_err(|_| {
            format!("`{text}` is not `off`, an ADDRESS:PORT (127.0.0.1:9101) or unix:/PATH")
        })
    }
}

impl fmt::Display for ApiListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiListen::Off => f.write_str("off"),
            ApiListen::Tcp(a) => write!(f, "{a}"),
            ApiListen::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// What [`is_interface_name`] accepts, for error messages.
pub const INTERFACE_NAME_RULE: &str = "1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace";

/// Whether the kernel would accept `name` as a network interface name.
///
/// The rule is the kernel's own (`dev_valid_name`): shorter than `IFNAMSIZ` (16, counting the
/// terminating NUL), not `.` or `..` (the name becomes a directory under /sys/class/net and
/// /proc/sys/net/ipv4/conf), and no `/`, `:` (alias labels such as `eth0:0` are not devices) or
/// whitespace.
pub fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

/// The connection sync daemons of a pair of directors (`[sync]`).
///
/// lvs-hc keeps the daemons of [`SyncSettings::roles`] running with these settings, as it
/// keeps the table: started when missing, replaced when they run with other settings, and
/// stopped when a reload takes a role away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// The interface the sync multicast goes over (`interface`, required).
    pub interface: String,
    /// The pair's sync id, 0–255 (`sync_id`, default 0): a backup ignores messages of other ids.
    pub sync_id: u8,
    /// Which daemons run (`role`: `"both"`, the default, `"master"` or `"backup"`).
    pub roles: Vec<SyncRole>,
    /// Multicast group (`group`; the kernel's default is 224.0.0.81).
    pub group: Option<IpAddr>,
    /// UDP port (`port`; the kernel's default is 8848).
    pub port: Option<u16>,
    /// Multicast TTL (`ttl`; the kernel's default is 1).
    pub ttl: Option<u8>,
    /// Longest sync message in bytes (`max_packet_len`; the kernel's default fits the
    /// interface's MTU).
    pub max_len: Option<u16>,
}

impl SyncSettings {
    /// The daemons these settings ask for, master first.
    pub fn daemons(&self) -> Vec<SyncDaemon> {
        self.roles
            .iter()
            .map(|&role| SyncDaemon {
                role,
                interface: self.interface.clone(),
                sync_id: self.sync_id,
                max_len: self.max_len,
                group: self.group,
                port: self.port,
                ttl: self.ttl,
            })
            .collect()
    }
}

/// Announcing the virtual addresses (`[announce]`): one host route per VIP in a routing table
/// lvs-hc owns, while the VIP's services are ready (see [`crate::announce`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnounceSettings {
    /// The kernel routing table lvs-hc owns (`table`, required): 1 to 4294967295 except the
    /// kernel's own 253 (default), 254 (main) and 255 (local).
    pub table: u32,
    /// The `rtm_protocol` lvs-hc marks its routes with (`protocol`, default 99): 5 to 255, as
    /// 0 to 4 are the kernel's own. Routes of other protocols in `table` are never touched.
    pub protocol: u8,
    /// How long the engine may be silent before a watchdog withdraws every route
    /// (`stall_timeout`, default 5 s).
    pub stall_timeout: Duration,
    /// Whether a VIP is announced while any (default) or all of its services are ready
    /// (`require`).
    pub require: Require,
}

impl AnnounceSettings {
    /// The default `protocol`.
    pub const DEFAULT_PROTOCOL: u8 = 99;
    /// The default `stall_timeout`.
    pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
}

/// How many of a VIP's services must be ready for it to be announced (`[announce] require`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Require {
    /// At least one.
    Any,
    /// Every one.
    All,
}

impl Require {
    /// `any` or `all`, as the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Require::Any => "any",
            Require::All => "all",
        }
    }
}

/// How `lvs-hc setup director` prepares the director (`[director]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectorSettings {
    /// The interface that carries the virtual IPs (the seed's `eth0`); `None` leaves VIPs to
    /// something else (keepalived's VRRP, say).
    pub interface: Option<String>,
}

impl DaemonSettings {
    /// The default `state_dir`.
    pub const DEFAULT_STATE_DIR: &'static str = "/var/lib/lvs-hc";
    /// The default `arp_watch` interval.
    pub const DEFAULT_ARP_WATCH: Duration = Duration::from_secs(10);
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            resync_interval: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(250),
            retry_backoff_max: Duration::from_secs(30),
            manage: Manage::Configured,
            probe_concurrency: 1024,
            probe_threads: 1,
            api: ApiListen::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                ApiListen::DEFAULT_PORT,
            )),
            lock_file: None,
            control: ControlListen::BesideLock,
            control_mode: 0o600,
            control_group: None,
            state_dir: PathBuf::from(DaemonSettings::DEFAULT_STATE_DIR),
            maintenance_dir: None,
            via_vip_marks: MarkRange::DEFAULT,
            arp_watch: Some(DaemonSettings::DEFAULT_ARP_WATCH),
        }
    }
}

/// Which services of the kernel table lvs-hc owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manage {
    /// Only the services the configuration names; others are left alone (the default).
    Configured,
    /// The whole table: services the configuration does not name are deleted.
    All,
}

/// One virtual service with its servers and policy (`[[service]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualService {
    /// An optional label for logs and status.
    pub name: Option<String>,
    /// The kernel key.
    pub key: ServiceKey,
    /// Scheduler, persistence and flags.
    pub params: ServiceParams,
    /// The real servers.
    pub servers: Vec<Server>,
    /// Fallback ("sorry") servers, in while fewer than `quorum` real servers are healthy.
    pub fallbacks: Vec<Server>,
    /// Fewest healthy real servers that keep the fallback out.
    pub quorum: usize,
    /// Whether healthy real servers stay in while the fallback is in.
    pub fallback_mode: FallbackMode,
    /// What a failed real server becomes.
    pub on_failure: FailureAction,
    /// Whether a new server waits for a passing probe before it enters the table.
    pub new_servers: NewServers,
    /// How long a returning real server takes to reach its full weight (`slow_start`); `None`:
    /// at once. See [`crate::admin::Ramp`].
    pub slow_start: Option<Duration>,
}

impl VirtualService {
    /// `web (TCP 192.168.0.101:80)`, or just the key when unnamed.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({})", self.key),
            None => self.key.to_string(),
        }
    }
}

/// What happens to the real servers while a fallback is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackMode {
    /// Healthy real servers keep serving beside the fallback (the default).
    Alongside,
    /// Only the fallback serves while it is in (keepalived's behaviour).
    Exclusive,
}

/// What a real server that failed its checks becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Deleted from the table (the seed's `ipvsadm -d`).
    Remove,
    /// Kept at weight 0: no new connections, existing ones continue.
    Zero,
    /// Weight 0, then deleted once its connections reach 0 or `timeout` passes.
    Drain {
        /// Longest time a failed server stays at weight 0 before it is deleted.
        timeout: Duration,
    },
}

/// How a server new to lvs-hc enters the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewServers {
    /// Out of the table until its first passing probe (the default).
    Wait,
    /// In the table at once; out after `fall` consecutive failures.
    In,
}

/// A real or fallback server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Where IPVS sends traffic.
    pub addr: SocketAddr,
    /// Configured weight.
    pub weight: u32,
    /// Forwarding method.
    pub forward: Forward,
    /// Upper connection threshold, 0 for none.
    pub upper: u32,
    /// Lower connection threshold, 0 for none.
    pub lower: u32,
    /// Checks that must all pass; none means always healthy.
    pub checks: Vec<Arc<Check>>,
}

impl Server {
    /// The destination settings for a given weight.
    pub fn dest_params(&self, weight: u32) -> DestParams {
        DestParams {
            weight,
            forward: self.forward,
            upper: self.upper,
            lower: self.lower,
        }
    }
}

/// One health check of a server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Check {
    /// What the probe does.
    pub kind: CheckKind,
    /// Probe this address instead of the server's (keepalived's `connect_ip`).
    pub ip: Option<IpAddr>,
    /// Probe this port instead of the server's.
    pub port: Option<u16>,
    /// Bind probes to this source address.
    pub source: Option<IpAddr>,
    /// Probe through the virtual address (`via_vip`): set per server by the loader.
    pub via: Option<ViaVip>,
    /// When probes run and how results count.
    pub timing: Timing,
}

/// A probe through the virtual address (`via_vip = true`): sent to the service's VIP from a
/// socket carrying `mark`, which selects the [`ProbeService`] holding only this server, so the
/// kernel forwards it the way it forwards clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViaVip {
    /// The service's virtual address and port.
    pub vip: SocketAddr,
    /// The firewall mark of the server's probe service.
    pub mark: u32,
    /// How the kernel forwards to the server (what a failure hints at depends on it).
    pub forward: Forward,
}

/// One of lvs-hc's own firewall-mark services: it holds a single real server, so a probe
/// socket carrying its mark reaches that server through the virtual address. Created,
/// repaired and removed by lvs-hc like the configured services, but reported apart from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeService {
    /// `Fwmark { mark, family }`, the mark in `[daemon] via_vip_marks`.
    pub key: ServiceKey,
    /// The configured service whose server it reaches.
    pub service: ServiceKey,
    /// The server, as the configured service holds it.
    pub server: SocketAddr,
    /// How the kernel forwards to it (the configured service's method for this server).
    pub forward: Forward,
}

impl ProbeService {
    /// The scheduler of every probe service (one destination: any scheduler would do).
    pub const SCHEDULER: &'static str = "rr";

    /// The entry the kernel should hold: no persistence, the one server at weight 1.
    pub fn entry(&self) -> ServiceEntry {
        let mut dests = std::collections::BTreeMap::new();
        dests.insert(self.server, DestParams::new(self.forward, 1));
        ServiceEntry::new(ServiceParams::new(ProbeService::SCHEDULER), dests)
    }

    /// The mark.
    pub fn mark(&self) -> u32 {
        match self.key {
            ServiceKey::Fwmark { mark, .. } => mark,
            _ => unreachable!("a probe service is a firewall-mark service"),
        }
    }
}

/// The firewall marks lvs-hc may give its probe services (`[daemon] via_vip_marks`), both
/// ends included. Firewall-mark services in this range belong to lvs-hc: the operator's may
/// not use it, and ones the configuration does not explain are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkRange {
    /// The first mark.
    pub first: u32,
    /// The last mark.
    pub last: u32,
}

impl MarkRange {
    /// The default: 0x4c480000 to 0x4c48ffff ("LH" for lvs-hc in the high half).
    pub const DEFAULT: MarkRange = MarkRange {
        first: 0x4c48_0000,
        last: 0x4c48_ffff,
    };

    /// Whether `mark` is in the range.
    pub fn contains(&self, mark: u32) -> bool {
        (self.first..=self.last).contains(&mark)
    }

    /// How many marks it holds.
    pub fn len(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }

    /// Never: a range holds at least one mark.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `key` is a firewall-mark service in the range.
    pub fn owns(&self, key: &ServiceKey) -> bool {
        matches!(key, ServiceKey::Fwmark { mark, .. } if self.contains(*mark))
    }
}

impl fmt::Display for MarkRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.first, self.last)
    }
}

impl Check {
    /// A short name for logs: `http GET /health`, `tcp`, `exec /usr/bin/check`.
    pub fn label(&self) -> String {
        let base = match &self.kind {
            CheckKind::Http(h) => format!("http {} {}", h.method.as_str(), h.path),
            CheckKind::Https(h) => format!("https {} {}", h.method.as_str(), h.path),
            CheckKind::Tcp(t) if t.exchange.is_some() => "tcp send/expect".to_string(),
            CheckKind::Tcp(_) => "tcp".to_string(),
            CheckKind::Exec(e) => format!("exec {}", e.argv[0]),
            CheckKind::Dns(d) => format!("dns {} {}", d.query_type.as_str(), d.query_name),
            CheckKind::Udp(_) => "udp".to_string(),
            CheckKind::Smtp(_) => "smtp".to_string(),
            CheckKind::Ping => "ping".to_string(),
            CheckKind::Grpc(g) if g.service.is_empty() => "grpc server".to_string(),
            CheckKind::Grpc(g) => format!("grpc {}", g.service),
            CheckKind::Agent(_) => "agent".to_string(),
        };
        if let Some(via) = &self.via {
            let port = self.port.unwrap_or(via.vip.port());
            return format!("{base} through VIP {}", SocketAddr::new(via.vip.ip(), port));
        }
        match (self.ip, self.port) {
            (Some(ip), Some(p)) => format!("{base} ({})", SocketAddr::new(ip, p)),
            (Some(ip), None) => format!("{base} (address {ip})"),
            (None, Some(p)) => format!("{base} (port {p})"),
            (None, None) => base,
        }
    }
}

/// When probes run and how results turn into state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timing {
    /// Time between probe starts.
    pub interval: Duration,
    /// Time between probe starts while the last probe failed.
    pub failing_interval: Duration,
    /// Bound on a whole probe: connect, request and response.
    pub timeout: Duration,
    /// Consecutive passes that bring a failed server back.
    pub rise: u32,
    /// Consecutive failures that take a server out.
    pub fall: u32,
    /// Up to this much random delay is added to each interval (and to the first probe, whose
    /// window grows when many checks start together: see the README).
    pub jitter: Duration,
}

/// What a probe does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckKind {
    /// An HTTP request.
    Http(HttpCheck),
    /// An HTTP request over TLS.
    Https(HttpCheck),
    /// A TCP connect, and optionally bytes sent and a reply expected on it.
    Tcp(TcpCheck),
    /// A program run without a shell.
    Exec(ExecCheck),
    /// A DNS query and its answer.
    Dns(DnsCheck),
    /// A UDP datagram and its reply.
    Udp(UdpCheck),
    /// An SMTP dialogue: banner, EHLO, optionally STARTTLS and EHLO again, QUIT.
    Smtp(SmtpCheck),
    /// An ICMP echo request (ping) to the server's address; no port.
    Ping,
    /// A gRPC health check (`grpc.health.v1.Health/Check`) over HTTP/2.
    Grpc(GrpcCheck),
    /// An agent on the server, in HAProxy's agent protocol: one line that says the weight it
    /// wants (`75%`), `drain`, `maint`, `ready`, `up` or `down`. Advisory: an agent that cannot
    /// be reached changes nothing, so a server needs another check beside it.
    Agent(AgentCheck),
}

/// An agent check's settings (its port is the check's `port`, which it requires).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentCheck {
    /// Written to the agent once connected, before its line is read (may be empty).
    pub send: Vec<u8>,
}

/// Bytes sent and what the reply must hold (tcp send/expect, udp).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Exchange {
    /// What is sent (nothing for a tcp check that only reads a banner).
    pub send: Vec<u8>,
    /// What the reply must hold; `None`: any reply passes.
    pub expect: Option<Expect>,
}

/// What a reply must hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expect {
    /// These bytes somewhere in the reply (`expect`, `expect_hex`).
    Contains(Vec<u8>),
    /// A regular expression matching the reply read as UTF-8, invalid sequences replaced
    /// (`expect_regex`).
    Regex(BodyRegex),
}

impl Expect {
    /// Whether `reply` holds what is expected.
    pub fn is_match(&self, reply: &[u8]) -> bool {
        match self {
            Expect::Contains(needle) => {
                needle.is_empty() || reply.windows(needle.len()).any(|w| w == needle.as_slice())
            }
            Expect::Regex(r) => r.is_match(&String::from_utf8_lossy(reply)),
        }
    }
}

impl fmt::Display for Expect {
    /// `"+PONG"` (bytes escaped as in Rust strings) or `/^\+PONG/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Contains(b) => write!(f, "\"{}\"", b.escape_ascii()),
            Expect::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// A tcp check: a connect, and with an [`Exchange`], bytes sent and a reply read until it
/// holds what is expected, the server closes, or `reply_limit` bytes arrived.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TcpCheck {
    /// What is sent and expected; `None`: the connect alone decides.
    pub exchange: Option<Exchange>,
    /// Most reply bytes read; the expectation must be met within them.
    pub reply_limit: usize,
}

impl Default for TcpCheck {
    /// A connect alone.
    fn default() -> Self {
        TcpCheck {
            exchange: None,
            reply_limit: 4096,
        }
    }
}

/// A udp check: a datagram sent, and a reply that holds what is expected.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdpCheck {
    /// The datagram (at least one byte) and what the reply must hold.
    pub exchange: Exchange,
    /// Whether no reply by the timeout passes (unless an ICMP error arrived): keepalived's
    /// UDP_CHECK without `require_reply`.
    pub silence_passes: bool,
}

/// A dns check: one query, and the answer's response code and, optionally, addresses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DnsCheck {
    /// The name asked for, as written (`www.example.com`).
    pub query_name: String,
    /// The record type asked for.
    pub query_type: DnsType,
    /// UDP or TCP.
    pub transport: DnsTransport,
    /// The response code that passes.
    pub expect_rcode: DnsRcode,
    /// When not empty, one of these must be in the answer section's A/AAAA records.
    pub expect_address: Vec<IpAddr>,
}

/// The record types a dns check can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DnsType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Mail exchanger.
    Mx,
    /// Name server.
    Ns,
    /// Pointer.
    Ptr,
    /// Start of authority.
    Soa,
    /// Service locator.
    Srv,
    /// Text.
    Txt,
    /// Any (`*`).
    Any,
}

impl DnsType {
    /// Every type, in the order the configuration lists them.
    pub const ALL: [DnsType; 10] = [
        DnsType::A,
        DnsType::Aaaa,
        DnsType::Cname,
        DnsType::Mx,
        DnsType::Ns,
        DnsType::Ptr,
        DnsType::Soa,
        DnsType::Srv,
        DnsType::Txt,
        DnsType::Any,
    ];

    /// The name the configuration and the reasons use: `A`, `AAAA`...
    pub fn as_str(self) -> &'static str {
        match self {
            DnsType::A => "A",
            DnsType::Aaaa => "AAAA",
            DnsType::Cname => "CNAME",
            DnsType::Mx => "MX",
            DnsType::Ns => "NS",
            DnsType::Ptr => "PTR",
            DnsType::Soa => "SOA",
            DnsType::Srv => "SRV",
            DnsType::Txt => "TXT",
            DnsType::Any => "ANY",
        }
    }

    /// The type's number on the wire (RFC 1035, 3596, 2782).
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Ptr => 12,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
            DnsType::Srv => 33,
            DnsType::Any => 255,
        }
    }
}

/// How a dns check's query travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DnsTransport {
    /// One datagram each way.
    Udp,
    /// A TCP connection, each message after a two-byte length (RFC 1035 4.2.2).
    Tcp,
}

/// The DNS response codes a dns check can expect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DnsRcode {
    /// No error.
    NoError,
    /// The server could not read the query.
    FormErr,
    /// The server failed.
    ServFail,
    /// The name does not exist.
    NxDomain,
    /// The server does not do this kind of query.
    NotImp,
    /// The server refuses to answer.
    Refused,
}

impl DnsRcode {
    /// Every code the configuration names.
    pub const ALL: [DnsRcode; 6] = [
        DnsRcode::NoError,
        DnsRcode::FormErr,
        DnsRcode::ServFail,
        DnsRcode::NxDomain,
        DnsRcode::NotImp,
        DnsRcode::Refused,
    ];

    /// `NOERROR`, `SERVFAIL`...
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRcode::NoError => "NOERROR",
            DnsRcode::FormErr => "FORMERR",
            DnsRcode::ServFail => "SERVFAIL",
            DnsRcode::NxDomain => "NXDOMAIN",
            DnsRcode::NotImp => "NOTIMP",
            DnsRcode::Refused => "REFUSED",
        }
    }

    /// The code's number on the wire.
    pub fn code(self) -> u16 {
        match self {
            DnsRcode::NoError => 0,
            DnsRcode::FormErr => 1,
            DnsRcode::ServFail => 2,
            DnsRcode::NxDomain => 3,
            DnsRcode::NotImp => 4,
            DnsRcode::Refused => 5,
        }
    }
}

impl CheckKind {
    /// Whether probes of this kind go to a port (exec programs and pings do not need one).
    pub fn needs_port(&self) -> bool {
        !matches!(self, CheckKind::Exec(_) | CheckKind::Ping)
    }
}

/// An SMTP check: the server's 220 banner, `EHLO helo_name` answered 250, and with `starttls`
/// a TLS handshake after `STARTTLS` and a second EHLO over TLS; then `QUIT`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SmtpCheck {
    /// The name sent with EHLO (`helo_name`, default `lvs-hc.localdomain`).
    pub helo_name: String,
    /// TLS settings when the check upgrades the connection with STARTTLS; `None`: plain.
    pub starttls: Option<TlsSettings>,
}

impl SmtpCheck {
    /// The EHLO name when the configuration gives none.
    pub const DEFAULT_HELO_NAME: &'static str = "lvs-hc.localdomain";
}

/// An HTTP(S) check.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HttpCheck {
    /// GET or HEAD.
    pub method: HttpMethod,
    /// Request path with query, starting with `/`.
    pub path: String,
    /// Host header; the server's address when absent.
    pub host: Option<String>,
    /// Statuses that pass.
    pub expect_status: StatusSet,
    /// A substring the body must contain.
    pub expect_body: Option<String>,
    /// A regular expression the body must match.
    pub expect_body_regex: Option<BodyRegex>,
    /// The MD5 digest the whole body must have (keepalived's `digest`).
    pub expect_body_md5: Option<[u8; 16]>,
    /// Most body bytes read; a match must occur within them, and a body with an expected
    /// digest must end within them.
    pub body_limit: usize,
    /// TLS settings (https only).
    pub tls: Option<TlsSettings>,
    /// Keep the connection open between probes (HTTP keep-alive) instead of a fresh
    /// connection per probe.
    pub reuse_connection: bool,
}

/// A gRPC health check: `grpc.health.v1.Health/Check` over HTTP/2, cleartext (h2c with prior
/// knowledge) or TLS (ALPN `h2`). It passes when the server answers `SERVING`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrpcCheck {
    /// The service asked about; empty for the server as a whole.
    pub service: String,
    /// The `:authority` of the request; the server's address when absent.
    pub authority: Option<String>,
    /// TLS settings; `None` for cleartext HTTP/2.
    pub tls: Option<TlsSettings>,
}

/// TLS settings of an https check, of an smtp check with STARTTLS or of a grpc check with TLS.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TlsSettings {
    /// Server name sent (SNI) and verified; when absent, an https check's Host header, else the
    /// server's address.
    pub sni: Option<String>,
    /// Whether the certificate is verified.
    pub verify: bool,
    /// PEM file of extra trusted roots.
    pub ca_file: Option<String>,
}

/// GET or HEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpMethod {
    /// GET: status and body are checked.
    Get,
    /// HEAD: only the status is checked.
    Head,
}

impl HttpMethod {
    /// `GET` or `HEAD`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// A set of HTTP statuses as inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// From inclusive ranges.
    pub fn new(ranges: Vec<(u16, u16)>) -> StatusSet {
        StatusSet(ranges)
    }

    /// Whether `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl fmt::Display for StatusSet {
    /// `200-299`, `200,204,301-302`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// A compiled body regex, compared by its source text.
#[derive(Clone, Debug)]
pub struct BodyRegex {
    source: String,
    regex: regex::Regex,
}

impl BodyRegex {
    /// Compiles `source`.
    pub fn new(source: &str) -> Result<BodyRegex, regex::Error> {
        Ok(BodyRegex {
            source: source.to_string(),
            regex: regex::Regex::new(source)?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for BodyRegex {}
impl PartialOrd for BodyRegex {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for BodyRegex {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.source.cmp(&other.source)
    }
}
impl std::hash::Hash for BodyRegex {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state)
    }
}

/// An exec check: a program run without a shell.
///
/// `{ip}` and `{port}` in the arguments become the server's address and (check) port, and the
/// same values are in the environment as `LVS_HC_IP` and `LVS_HC_PORT`. lvs-hc cannot route a
/// program's packets through the virtual address, so with `via_vip = true` the program is told
/// what to do itself: `{vip}`, `{vip_port}` and `{mark}` (`LVS_HC_VIP`, `LVS_HC_VIP_PORT`,
/// `LVS_HC_MARK`) are the VIP, the port to probe there and the firewall mark (decimal) whose
/// packets reach this server alone, for the program to give its socket (socat's
/// `setsockopt-int=1:36:{mark}`, `SOL_SOCKET` and `SO_MARK`); `{ip}` and `{port}` stay the
/// server's own. Without `via_vip` those three are empty. Exit status 0 passes,
/// anything else fails. With `dynamic_weight`, a passing run whose standard output's last line is
/// `weight=N` (0 to 65535) sets the server's weight to N until a later run says otherwise.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecCheck {
    /// Program and arguments; the program is `argv[0]`.
    pub argv: Vec<String>,
    /// Whether `weight=N` on standard output sets the server's weight.
    pub dynamic_weight: bool,
    /// Variables added to the program's environment (`env`), in file order. The rest of the
    /// environment is cleared but for `PATH`, `LANG` and the `LVS_HC_*` variables.
    pub env: Vec<(String, String)>,
}

impl fmt::Display for Timing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "every {}, timeout {}, rise {}, fall {}",
            format_duration(self.interval),
            format_duration(self.timeout),
            self.rise,
            self.fall
        )?;
        if self.failing_interval != self.interval {
            write!(
                f,
                ", every {} while failing",
                format_duration(self.failing_interval)
            )?;
        }
        if !self.jitter.is_zero() {
            write!(f, ", jitter {}", format_duration(self.jitter))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod interface_name_tests {
    use super::is_interface_name;

    #[test]
    fn interface_names_follow_the_kernel_rule() {
        for ok in [
            "eth0",
            "lo",
            "enp0s3",
            "tunl0",
            "eth0.100",
            "a",
            "fifteen-chars-x",
        ] {
            assert!(is_interface_name(ok), "{ok} rejected");
        }
        for bad in [
            "",
            ".",
            "..",
            "sixteen-chars-xx",
            "eth0:0",
            "a/b",
            "eth 0",
            "eth\t0",
        ] {
            assert!(!is_interface_name(bad), "{bad} accepted");
        }
    }
}
