//! The sans-IO engine: inputs in, outputs out, time as a value.
//!
//! One hop is easy to miss: [`Engine::handle_input`] never emits an operation. It updates
//! health, the table as believed, retries and drains, and marks the services concerned dirty.
//! The operations appear in [`Engine::poll_output`], which reconciles the dirty services (their
//! desired entry against the table as believed) once the queued outputs are drained, so a burst
//! of inputs costs one pass per changed service. To follow a probe result to the `ipvsadm` line
//! it causes: `handle_probe_result` → `update_server_health` (marks dirty) → `poll_output` →
//! `reconcile_service` → [`Output::Apply`].
//!
//! # Identical tables for hashing schedulers
//!
//! Several directors behind ECMP must send a flow to the same real server, so every director's
//! table of an `sh` or `mh` service must hash the same. The kernel's lookup table depends on
//! more than the destinations and weights: `ip_vs_mh_populate` (`net/netfilter/ipvs/ip_vs_mh.c`)
//! walks the service's destination list in order, each destination claiming its next preferred
//! free slot in turn (the earlier in the list wins a contested slot), for a number of turns
//! taken from its `last_weight`, not its weight; `ip_vs_sh.c` walks the list in order as well.
//! The kernel adds a destination at the head of that list, and sets `last_weight` when a
//! destination is added and when it is edited to a weight other than 0. The engine keeps both
//! in a state that depends only on the configuration and the health verdicts:
//!
//! 1. Order: the list of an `sh` or `mh` service is kept ascending by destination address,
//!    head first. When the list read from the kernel (or as the engine's own operations left
//!    it) is otherwise, the engine deletes and re-adds, one at a time, the destinations that
//!    come before the first one in place: the largest of them first, its re-add emitted as soon
//!    as its delete is reported, so each is out of the table for one operation's round trip.
//!    Not while a destination awaits its first verdict (kept only because the kernel has it,
//!    it would not be re-added before that verdict).
//! 2. Last weights: an `mh` destination held at weight 0 by policy (failed with
//!    `on_failure = "zero"` or `"drain"`, drained by an operator) must have its weight in
//!    service as `last_weight`, so it keeps its slots (flows hashing there go to the
//!    `mh-fallback` rehash, the same on every director). It is added at that weight and then
//!    edited to 0; one whose `last_weight` the engine does not know (found at start, set to 0
//!    by someone else, its configured weight changed) is edited to its weight and back to 0.
//!    The engine remembers the `last_weight` of each destination from its own operations and
//!    from weights other than 0 read from the kernel (`last_weights`).
//!
//! Configuration rules finish the job (see [`crate::config`]): no `slow_start` on these
//! services (directors would ramp at different moments), and `mh` with `on_failure = "zero"`
//! or `"drain"` needs `mh-fallback`. Servers without a verdict yet are kept as the kernel has
//! them and not re-seated until their first verdict.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{
    self, AdminChange, AdminMark, AdminSource, AdminState, AgentAdmin, AgentReport, Ramp,
    DEFAULT_DRAIN_TIMEOUT,
};
use crate::announce::{plan, AnnounceKeeper, Route, RouteOp, ServiceReadiness, VipStatus};
use crate::config::Require;
use crate::config::{
    Check, CheckKind, Config, FailureAction, Manage, Server, Timing, VirtualService,
};
use crate::desired::{desired_service, AdminView, DesiredService, ServerRef, ServerView};
use crate::diff::{diff, diff_service};
use crate::event::{Event, EventKind};
use crate::health::{Health, Hysteresis, ProbeOutcome};
use crate::op::{ApplyError, Op, Target};
use crate::reason::{DestChange, OpReason, ReloadSummary};
use crate::rng::SplitMix64;
use crate::sync::{SyncDaemon, SyncKeeper, SyncOp, SyncStatus};
use crate::table::{
    hashes_by_last_weight, hashes_over_order, Counters, ServiceEntry, ServiceKey, SkippedService,
    Table,
};
use crate::time::Instant;

/// Hashes [`ProbeId`]s, which the engine hands out in sequence and looks up once per probe
/// result: a multiply spreads them over the table, where SipHash's protection against chosen
/// keys buys nothing (nobody outside the engine picks an id).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Identifies one probe request, so its result can find its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeId(pub u64);

/// A probe the driver must run now and report with [`Input::ProbeResult`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Echo this in the result.
    pub id: ProbeId,
    /// The server probed (the check's `port` may redirect the probe, see [`Self::target`]).
    pub server: SocketAddr,
    /// What to do.
    pub check: Arc<Check>,
}

impl ProbeRequest {
    /// The address to connect to: the server's, with the check's address and port if it has
    /// them; for a probe through the virtual address (`via_vip`), the virtual address, with the
    /// check's port if it has one.
    pub fn target(&self) -> SocketAddr {
        if let Some(via) = &self.check.via {
            return SocketAddr::new(via.vip.ip(), self.check.port.unwrap_or(via.vip.port()));
        }
        SocketAddr::new(
            self.check.ip.unwrap_or(self.server.ip()),
            self.check.port.unwrap_or(self.server.port()),
        )
    }

    /// The same probe to the server's own address: `via_vip` dropped (what a failure through
    /// the virtual address is compared with).
    pub fn direct(&self) -> ProbeRequest {
        let mut check = (*self.check).clone();
        check.via = None;
        ProbeRequest {
            id: self.id,
            server: self.server,
            check: Arc::new(check),
        }
    }

    /// The bound on the whole probe, from when it actually starts (the driver may queue it
    /// first: see `probe_concurrency`).
    pub fn timeout(&self) -> Duration {
        self.check.timing.timeout
    }
}

/// Everything the engine learns. Each input carries the time it happened.
#[derive(Clone, Debug)]
pub enum Input {
    /// The deadline from [`Output::Timeout`] (or any later time) has come.
    Timeout(Instant),
    /// A probe finished.
    ProbeResult {
        /// When it finished.
        now: Instant,
        /// The request's id.
        id: ProbeId,
        /// Its verdict.
        outcome: ProbeOutcome,
    },
    /// The kernel table as it is (answer to [`Output::ReadTable`], or unsolicited).
    Snapshot {
        /// When it was read.
        now: Instant,
        /// The services and destinations.
        table: Table,
        /// Their counters.
        counters: Counters,
        /// Services the kernel holds that the backend could not read: not in `table`, and
        /// never touched (not repaired, not deleted, not reported as drift) while unreadable.
        skipped: Vec<SkippedService>,
    },
    /// Reading the kernel table failed.
    SnapshotFailed {
        /// When.
        now: Instant,
        /// The backend's error.
        error: String,
    },
    /// An operation from [`Output::Apply`] was applied, or failed.
    Applied {
        /// When.
        now: Instant,
        /// The operation, as emitted.
        op: Op,
        /// Its result.
        result: Result<(), ApplyError>,
    },
    /// A new configuration; health of unchanged checks is kept.
    Reload {
        /// When.
        now: Instant,
        /// The new configuration (boxed: it is by far the largest input, and the rarest).
        config: Box<Config>,
    },
    /// lvs-hc is leaving and takes its services with it (`--cleanup-on-exit`): from now on the
    /// desired table holds none of the services it manages. Probing stops; the engine reads
    /// the table afresh, deletes every managed service it finds, retries failures with the
    /// usual backoff, and reports [`Engine::withdrawn`] once they are gone. There is no way
    /// back: a withdrawn engine is meant to be dropped.
    Withdraw {
        /// When.
        now: Instant,
    },
    /// A sync daemon operation from [`Output::Sync`] was carried out, or failed.
    SyncApplied {
        /// When.
        now: Instant,
        /// The operation, as emitted.
        op: SyncOp,
        /// Its result: the backend's error, as text.
        result: Result<(), String>,
    },
    /// lvs-hc's routes as read (answer to [`Output::ReadRoutes`]): the host routes of
    /// `[announce]`'s table and protocol, or the adapter's error.
    Routes {
        /// When they were read.
        now: Instant,
        /// The routes, or the error.
        result: Result<Vec<Route>, String>,
    },
    /// A route operation from [`Output::Route`] was carried out, or failed.
    RouteApplied {
        /// When.
        now: Instant,
        /// The operation, as emitted.
        op: RouteOp,
        /// Its result: the adapter's error, as text.
        result: Result<(), String>,
    },
    /// The driver's watchdog withdrew every route while the engine was silent longer than
    /// `[announce] stall_timeout`: the engine reads the routes again and announces afresh.
    Stalled {
        /// When the driver noticed (the engine runs again).
        now: Instant,
    },
    /// An operator's command or a maintenance file changes a server's administrative state
    /// (see [`crate::admin`]). A change for a server the configuration in force lacks is
    /// ignored ([`EventKind::AdminIgnored`]): check with [`crate::admin::select`] first.
    Admin {
        /// When.
        now: Instant,
        /// What.
        change: AdminChange,
    },
}

impl Input {
    /// When the input happened.
    pub fn now(&self) -> Instant {
        match self {
            Input::Timeout(now)
            | Input::ProbeResult { now, .. }
            | Input::Snapshot { now, .. }
            | Input::SnapshotFailed { now, .. }
            | Input::Applied { now, .. }
            | Input::Reload { now, .. }
            | Input::Withdraw { now }
            | Input::Admin { now, .. }
            | Input::SyncApplied { now, .. }
            | Input::Routes { now, .. }
            | Input::RouteApplied { now, .. }
            | Input::Stalled { now } => *now,
        }
    }
}

/// Everything the engine asks for or reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Run this probe.
    Probe(ProbeRequest),
    /// Apply this operation, in the order emitted, and report [`Input::Applied`].
    Apply(Op),
    /// Read the kernel table and report [`Input::Snapshot`] or [`Input::SnapshotFailed`].
    ReadTable,
    /// Start or stop a connection sync daemon, and report [`Input::SyncApplied`].
    Sync(SyncOp),
    /// Read lvs-hc's routes (`[announce]`'s table and protocol) and report [`Input::Routes`].
    ReadRoutes,
    /// Add or delete a route announcing a VIP, and report [`Input::RouteApplied`].
    Route(RouteOp),
    /// Something happened.
    Event(Event),
    /// Nothing more to do until this instant: feed [`Input::Timeout`] then (or any input
    /// before). This is always the last output of a drain.
    Timeout(Instant),
}

/// Longest wait before a probe through the virtual address looks again for its probe service
/// (see [`Engine::probe_route_ready`]).
const PROBE_ROUTE_HOLD: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
struct ProbeSlot {
    server: SocketAddr,
    check: Arc<Check>,
    hysteresis: Hysteresis,
    /// `Some` while scheduled (not in flight).
    due: Option<Instant>,
    in_flight: Option<(ProbeId, Instant)>,
    last_result: Option<(Instant, ProbeOutcome)>,
    /// When the probe last gave a verdict (a pass or a failure).
    last_verdict: Option<Instant>,
    /// Set while the probe cannot run because of the director (see
    /// [`ProbeOutcome::DirectorFault`]); cleared by its next verdict.
    fault: Option<Fault>,
    weight: Option<u32>,
    /// What the agent last said, for an agent check.
    agent: Option<AgentState>,
    /// The servers this probe speaks for.
    users: Vec<(usize, ServerRef)>,
}

/// What an agent (an `agent` check) asks for: its last report, and the administrative state
/// it set, which holds until it says `ready`.
#[derive(Clone, Debug)]
struct AgentState {
    report: AgentReport,
    /// `drain` or `maint`, since when, and the description it gave.
    admin: Option<(AgentAdmin, Instant, String)>,
}

impl AgentState {
    fn mark(&self) -> Option<AdminMark> {
        let (word, since, reason) = self.admin.as_ref()?;
        let state = match word {
            AgentAdmin::Drain => AdminState::Drain,
            AgentAdmin::Maint => AdminState::Disabled,
            AgentAdmin::Ready => return None,
        };
        Some(AdminMark {
            state,
            source: AdminSource::Agent,
            reason: reason.clone(),
            since: *since,
            drain_timeout: None,
        })
    }

    fn state(&self) -> Option<AdminState> {
        match self.admin.as_ref()?.0 {
            AgentAdmin::Drain => Some(AdminState::Drain),
            AgentAdmin::Maint => Some(AdminState::Disabled),
            AgentAdmin::Ready => None,
        }
    }
}

/// The administrative state in force and who set it; `None` when enabled.
type Effective = Option<(AdminState, AdminSource)>;

/// Whether `a` takes precedence over `b` (see [`admin::precedence`]).
fn stricter(a: (AdminState, AdminSource), b: (AdminState, AdminSource)) -> bool {
    admin::precedence(a.0, a.1) < admin::precedence(b.0, b.1)
}

#[derive(Clone, Debug)]
struct ServerSlot {
    addr: SocketAddr,
    probes: Vec<usize>,
    health: Health,
    since: Instant,
    reason: String,
}

#[derive(Clone, Debug)]
struct ServiceSlot {
    reals: Vec<ServerSlot>,
    fallbacks: Vec<ServerSlot>,
    fallback: FallbackState,
}

/// Whether a service's fallback servers are in, as last reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FallbackState {
    /// Not computed yet: the first answer is reported only if it brings the fallback in.
    Unknown,
    /// Out: enough real servers are healthy.
    Out,
    /// In: fewer than `quorum` real servers are healthy.
    In,
}

impl FallbackState {
    fn of(fallback_in: bool) -> FallbackState {
        if fallback_in {
            FallbackState::In
        } else {
            FallbackState::Out
        }
    }
}

/// Every server of `svc` with its reference: the real servers, then the fallbacks.
/// Where in time the first probe of a new check may start: within its `jitter`, unless more
/// checks start together than `burst` (`probe_concurrency`) lets run at once (the daemon
/// starting with a large fleet, a reload adding one): then over the whole interval, as the
/// steady state has them, so the start neither builds a backlog nor leaves the probes in one
/// lump that later intervals repeat.
fn start_window(timing: Timing, new: usize, burst: usize) -> Duration {
    if new > burst {
        timing.interval
    } else {
        timing.jitter
    }
}

fn servers_of(svc: &VirtualService) -> impl Iterator<Item = (ServerRef, &Server)> {
    let reals = svc.servers.iter().enumerate();
    let fallbacks = svc.fallbacks.iter().enumerate();
    reals
        .map(|(i, s)| (ServerRef::Real(i), s))
        .chain(fallbacks.map(|(i, s)| (ServerRef::Fallback(i), s)))
}

impl ProbeSlot {
    /// What this probe says of its server's health. An agent that has not answered yet (or
    /// never does) says nothing: it neither holds its server back nor lets it in; the other
    /// checks decide.
    fn health(&self) -> Health {
        match (self.hysteresis.state(), &self.check.kind) {
            (Health::Unknown, CheckKind::Agent(_)) => Health::Up,
            (state, _) => state,
        }
    }

    /// Whether this probe holds its server's fallback back until its first result (an agent
    /// does not: see [`ProbeSlot::health`]).
    fn awaited(&self) -> bool {
        self.last_verdict.is_none() && !matches!(self.check.kind, CheckKind::Agent(_))
    }

    fn new(server: SocketAddr, check: Arc<Check>) -> ProbeSlot {
        ProbeSlot {
            server,
            hysteresis: Hysteresis::new(check.timing.rise, check.timing.fall),
            check,
            due: None,
            in_flight: None,
            last_result: None,
            last_verdict: None,
            fault: None,
            weight: None,
            agent: None,
            users: Vec::new(),
        }
    }
}

impl ServiceSlot {
    fn server(&self, r: ServerRef) -> &ServerSlot {
        match r {
            ServerRef::Real(i) => &self.reals[i],
            ServerRef::Fallback(i) => &self.fallbacks[i],
        }
    }
    fn server_mut(&mut self, r: ServerRef) -> &mut ServerSlot {
        match r {
            ServerRef::Real(i) => &mut self.reals[i],
            ServerRef::Fallback(i) => &mut self.fallbacks[i],
        }
    }
}

/// A probe that cannot run because of something on the director.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Since when.
    pub since: Instant,
    /// The latest reason.
    pub reason: String,
}

/// A probe that cannot run because of the director, for status pages and `/healthz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeFaultStatus {
    /// The server probed.
    pub server: SocketAddr,
    /// The check's label.
    pub check: String,
    /// Since when and why.
    pub fault: Fault,
}

/// A failed operation: how many times in a row it failed, and whether it may go again.
#[derive(Clone, Copy, Debug)]
struct Retry {
    attempts: u32,
    backoff: Backoff,
}

/// Where a failed operation is in its backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backoff {
    /// Held back until then; its service is reconciled again at that time.
    Until(Instant),
    /// The wait is over: the next reconcile of its service emits it again if still needed.
    Over,
}

/// A failed real server at weight 0 (`on_failure = "drain"`), by service and address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Drain {
    /// Its connections may still end; it is deleted by this deadline at the latest.
    Running {
        /// The drain timeout from when it started.
        deadline: Instant,
    },
    /// Over (no connections left, timed out, or gone from the table): the server is deleted.
    /// Kept until the server's health changes, so the drain does not start again.
    Finished,
}

/// Which services the next [`Engine::poll_output`] reconciles.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Dirty {
    /// Every service, configured or in the table (after a snapshot, a reload or a withdrawal).
    All,
    /// These services (after probe results, applied operations, timers).
    Services(BTreeSet<ServiceKey>),
}

impl Dirty {
    fn clean() -> Dirty {
        Dirty::Services(BTreeSet::new())
    }

    fn mark(&mut self, key: ServiceKey) {
        if let Dirty::Services(keys) = self {
            keys.insert(key);
        }
    }

    fn is_clean(&self) -> bool {
        matches!(self, Dirty::Services(keys) if keys.is_empty())
    }
}

/// What the engine works towards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Duty {
    /// The table the probes justify.
    Serve,
    /// No managed service at all ([`Input::Withdraw`]).
    Withdraw,
}

/// Where each distinct (server, check) is among the probes.
type ProbeIndex = HashMap<(SocketAddr, Arc<Check>), usize>;

/// How many probes a new configuration kept with their state, and how many start afresh.
#[derive(Clone, Copy, Debug, Default)]
struct Carried {
    kept: usize,
    fresh: usize,
}

/// What the engine knows of one server, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// The service.
    pub service: ServiceKey,
    /// The server.
    pub server: SocketAddr,
    /// Whether it is a fallback.
    pub fallback: bool,
    /// Its combined health.
    pub health: Health,
    /// Since when.
    pub since: Instant,
    /// Why it is in this state.
    pub reason: String,
    /// Its weight while in service.
    pub weight: u32,
    /// Whether it is draining.
    pub draining: bool,
    /// The most recent probe result of each check: (check label, when, outcome).
    pub checks: Vec<(String, Option<(Instant, ProbeOutcome)>)>,
    /// Its administrative marks, strictest (the one in force) first; empty when enabled.
    pub admin: Vec<AdminMark>,
    /// Whether an administrative drain is over: the server is out until enabled.
    pub drained: bool,
    /// Its slow start, while it ramps up.
    pub slow_start: Option<Ramp>,
    /// What its agent last said (an `agent` check), if it has one that answered.
    pub agent: Option<AgentReport>,
}

/// The health-checking engine: configuration, probe schedule, health, and reconciliation of the
/// kernel table.
///
/// Drive it by feeding [`Input`]s to [`Engine::handle_input`] and draining
/// [`Engine::poll_output`] until it returns [`Output::Timeout`]. See the crate documentation for
/// the loop.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    now: Instant,
    rng: SplitMix64,
    probes: Vec<ProbeSlot>,
    schedule: BTreeSet<(Instant, usize)>,
    in_flight: HashMap<ProbeId, usize, BuildHasherDefault<IdHasher>>,
    next_probe_id: u64,
    services: Vec<ServiceSlot>,
    service_index: BTreeMap<ServiceKey, usize>,
    /// lvs-hc's own probe services (`via_vip`), by key: index into `config.probe_services`.
    probe_index: BTreeMap<ServiceKey, usize>,
    retiring: BTreeSet<ServiceKey>,
    /// Services named by a reload and not yet seen in a snapshot: left alone until then.
    unverified: BTreeSet<ServiceKey>,
    /// Services the kernel holds that the last snapshot could not read (see
    /// [`Input::Snapshot`]); `None` for those whose very key could not be read.
    unreadable: BTreeMap<Option<ServiceKey>, String>,
    believed: Option<Table>,
    counters: Counters,
    pending: HashMap<Target, String>,
    retries: HashMap<Target, Retry>,
    drains: HashMap<(ServiceKey, SocketAddr), Drain>,
    /// The kernel's `last_weight` of destinations, where known (see the module documentation).
    last_weights: HashMap<(ServiceKey, SocketAddr), u32>,
    /// Operators' and maintenance files' marks, by service and server.
    admin: HashMap<(ServiceKey, SocketAddr), Vec<AdminMark>>,
    /// Administrative drains, by service and server.
    admin_drains: HashMap<(ServiceKey, SocketAddr), Drain>,
    /// Real servers in slow start, by service and server.
    ramps: HashMap<(ServiceKey, SocketAddr), Ramp>,
    /// The earliest step of any ramp (never later; `FAR_FUTURE` with none): `tick`, on every
    /// input, looks at the ramps only from then on.
    ramp_due: Instant,
    dirty: Dirty,
    duty: Duty,
    resync_due: Instant,
    resync_outstanding: bool,
    snapshot_failures: u32,
    /// The connection sync daemons (`[sync]`).
    sync: SyncKeeper,
    /// The routes announcing the VIPs (`[announce]`).
    announce: AnnounceKeeper,
    /// A service was reconciled (or the configuration changed) since the VIPs' plans were last
    /// worked out.
    plans_stale: bool,
    /// A route read is asked for and not answered yet.
    routes_outstanding: bool,
    /// Consecutive failed route reads, and when the next may be asked for.
    routes_failures: u32,
    routes_due: Instant,
    outputs: VecDeque<Output>,
}

impl Engine {
    /// An engine for `config`, starting at `now`. `seed` fixes the jitter sequence.
    ///
    /// It asks for a table snapshot first and applies nothing before it has one.
    pub fn new(config: Config, now: Instant, seed: u64) -> Engine {
        let mut engine = Engine {
            config: Config {
                daemon: config.daemon.clone(),
                director: config.director.clone(),
                sync: None,
                announce: None,
                services: Vec::new(),
                probe_services: Vec::new(),
            },
            now,
            rng: SplitMix64::new(seed),
            probes: Vec::new(),
            schedule: BTreeSet::new(),
            in_flight: HashMap::default(),
            next_probe_id: 0,
            services: Vec::new(),
            service_index: BTreeMap::new(),
            probe_index: BTreeMap::new(),
            retiring: BTreeSet::new(),
            unverified: BTreeSet::new(),
            unreadable: BTreeMap::new(),
            believed: None,
            counters: Counters::default(),
            pending: HashMap::new(),
            retries: HashMap::new(),
            drains: HashMap::new(),
            last_weights: HashMap::new(),
            admin: HashMap::new(),
            admin_drains: HashMap::new(),
            ramps: HashMap::new(),
            ramp_due: Instant::FAR_FUTURE,
            dirty: Dirty::All,
            duty: Duty::Serve,
            resync_due: now,
            resync_outstanding: false,
            snapshot_failures: 0,
            sync: SyncKeeper::default(),
            announce: AnnounceKeeper::default(),
            plans_stale: true,
            routes_outstanding: false,
            routes_failures: 0,
            routes_due: now,
            outputs: VecDeque::new(),
        };
        engine.install(config);
        engine.tick();
        engine
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The latest time the engine has seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The kernel table as the engine believes it (managed services only), once it has read one.
    pub fn believed_table(&self) -> Option<&Table> {
        self.believed.as_ref()
    }

    /// What a configured service should look like in the kernel now (the entry the engine works
    /// towards), computed against the table as believed; `None` for a service not configured
    /// or before the first snapshot.
    pub fn desired(&self, key: &ServiceKey) -> Option<DesiredService> {
        let believed = self.believed.as_ref()?;
        let &si = self.service_index.get(key)?;
        Some(desired_service(
            &self.config.services[si],
            believed.services.get(key),
            |r| self.server_view(si, r),
        ))
    }

    /// The counters of the latest snapshot (connections per destination, service statistics).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Whether a first snapshot has been read.
    pub fn has_snapshot(&self) -> bool {
        self.believed.is_some()
    }

    /// Number of distinct probes (servers reached by several services with the same check count
    /// once).
    pub fn probe_count(&self) -> usize {
        self.probes.len()
    }

    /// Operations emitted and not yet reported back.
    pub fn pending_ops(&self) -> usize {
        self.pending.len()
    }

    /// Whether a withdrawal ([`Input::Withdraw`]) is complete: a table read since it began,
    /// with the operations applied since, holds none of the services lvs-hc manages, and no
    /// operation is outstanding. Always false before a withdrawal.
    pub fn withdrawn(&self) -> bool {
        self.duty == Duty::Withdraw
            && self.pending.is_empty()
            && self.sync.settled()
            && self
                .believed
                .as_ref()
                .is_some_and(|b| b.services.keys().all(|k| !self.manages(k)))
    }

    /// The probes that cannot run because of a problem on this director (see
    /// [`ProbeOutcome::DirectorFault`]), in server order. Their servers keep their state.
    pub fn probe_faults(&self) -> Vec<ProbeFaultStatus> {
        let mut out: Vec<ProbeFaultStatus> = self
            .probes
            .iter()
            .filter_map(|p| {
                p.fault.as_ref().map(|fault| ProbeFaultStatus {
                    server: p.server,
                    check: p.check.label(),
                    fault: fault.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.server, &a.check).cmp(&(b.server, &b.check)));
        out
    }

    /// How many probes cannot run because of a problem on this director.
    pub fn probe_fault_count(&self) -> usize {
        self.probes.iter().filter(|p| p.fault.is_some()).count()
    }

    /// How many probes cannot run because of a problem on this director, and the one among
    /// them that has been failing longest: cheap enough for a health check.
    pub fn probe_fault_summary(&self) -> (usize, Option<ProbeFaultStatus>) {
        let faulty = self.probes.iter().filter(|p| p.fault.is_some());
        let count = faulty.clone().count();
        let oldest = faulty
            .min_by_key(|p| p.fault.as_ref().map(|f| f.since))
            .and_then(|p| {
                Some(ProbeFaultStatus {
                    server: p.server,
                    check: p.check.label(),
                    fault: p.fault.clone()?,
                })
            });
        (count, oldest)
    }

    /// Feeds one input. Drain [`Engine::poll_output`] afterwards.
    pub fn handle_input(&mut self, input: Input) {
        self.now = self.now.max(input.now());
        match input {
            Input::Timeout(_) => {}
            Input::ProbeResult { id, outcome, .. } => self.handle_probe_result(id, outcome),
            Input::Snapshot {
                table,
                counters,
                skipped,
                ..
            } => self.handle_snapshot(table, counters, skipped),
            Input::SnapshotFailed { error, .. } => self.handle_snapshot_failed(error),
            Input::Applied { op, result, .. } => self.handle_applied(op, result),
            Input::Reload { config, .. } => self.handle_reload(*config),
            Input::Withdraw { .. } => self.handle_withdraw(),
            Input::Admin { change, .. } => self.handle_admin(change),
            Input::SyncApplied { op, result, .. } => self.handle_sync_applied(op, result),
            Input::Routes { result, .. } => self.handle_routes(result),
            Input::RouteApplied { op, result, .. } => self.handle_route_applied(op, result),
            Input::Stalled { .. } => self.announce.stall(),
        }
        self.tick();
    }

    /// The next output; [`Output::Timeout`] when there is nothing more to do for now.
    ///
    /// Reconciliation runs here, once the queued outputs are drained: this is where the
    /// operations for the services [`Engine::handle_input`] marked dirty are computed, so a
    /// burst of inputs fed before polling costs one pass over each changed service, not one
    /// per input.
    pub fn poll_output(&mut self) -> Output {
        if self.outputs.is_empty() {
            self.reconcile();
        }
        if self.outputs.is_empty() {
            if let Some((op, _)) = self.sync.next(self.now) {
                self.outputs.push_back(Output::Sync(op));
            }
        }
        if self.outputs.is_empty() && self.announce.settings().is_some() {
            self.poll_announce();
        }
        match self.outputs.pop_front() {
            Some(o) => o,
            None => Output::Timeout(self.next_deadline()),
        }
    }

    /// The administrative marks set by operators and maintenance files (not agents: those
    /// come back with the agent's next answer), by service and server, for the daemon to keep
    /// across restarts.
    pub fn admin_marks(&self) -> Vec<(ServiceKey, SocketAddr, AdminMark)> {
        let mut out: Vec<(ServiceKey, SocketAddr, AdminMark)> = self
            .admin
            .iter()
            .flat_map(|((key, addr), marks)| marks.iter().map(|m| (*key, *addr, m.clone())))
            .collect();
        out.sort_by_key(|a| (a.0, a.1, a.2.source));
        out
    }

    /// The state of every server, service by service in configuration order.
    pub fn status(&self) -> Vec<ServerStatus> {
        let mut out = Vec::new();
        for (si, svc) in self.config.services.iter().enumerate() {
            let slot = &self.services[si];
            let refs = (0..svc.servers.len())
                .map(ServerRef::Real)
                .chain((0..svc.fallbacks.len()).map(ServerRef::Fallback));
            for r in refs {
                let s = slot.server(r);
                let view = self.server_view(si, r);
                out.push(ServerStatus {
                    service: svc.key,
                    server: s.addr,
                    fallback: matches!(r, ServerRef::Fallback(_)),
                    health: s.health,
                    since: s.since,
                    reason: s.reason.clone(),
                    weight: view.weight,
                    draining: view.draining || view.admin == AdminView::Draining,
                    checks: s
                        .probes
                        .iter()
                        .map(|&p| {
                            (
                                self.probes[p].check.label(),
                                self.probes[p].last_result.clone(),
                            )
                        })
                        .collect(),
                    admin: self.marks_of(si, r),
                    drained: matches!(view.admin, AdminView::Out)
                        && self
                            .effective_admin(si, r)
                            .is_some_and(|e| e.0 == AdminState::Drain),
                    slow_start: match r {
                        ServerRef::Real(_) => self.ramps.get(&(svc.key, s.addr)).copied(),
                        ServerRef::Fallback(_) => None,
                    },
                    agent: s
                        .probes
                        .iter()
                        .find_map(|&p| self.probes[p].agent.as_ref().map(|a| a.report.clone())),
                });
            }
        }
        out
    }

    fn emit(&mut self, kind: EventKind) {
        self.outputs
            .push_back(Output::Event(Event { at: self.now, kind }));
    }

    fn config_server(&self, si: usize, r: ServerRef) -> &Server {
        let svc = &self.config.services[si];
        match r {
            ServerRef::Real(i) => &svc.servers[i],
            ServerRef::Fallback(i) => &svc.fallbacks[i],
        }
    }

    fn server_view(&self, si: usize, r: ServerRef) -> ServerView {
        let slot = self.services[si].server(r);
        let configured = self.config_server(si, r).weight;
        // One pass over the server's probes (this runs for every server of a service at each
        // of its reconciles): reported weight, agent percentage, first results awaited,
        // whether an agent asks for an administrative state.
        let (mut reported, mut percent) = (None::<u32>, None::<u32>);
        let (mut awaited, mut agent_admin) = (false, false);
        for &p in &slot.probes {
            let p = &self.probes[p];
            if let Some(w) = p.weight {
                reported = Some(reported.map_or(w, |r| r.min(w)));
            }
            awaited |= p.awaited();
            if let Some(a) = &p.agent {
                if let Some(pc) = a.report.weight_percent {
                    percent = Some(percent.map_or(pc, |x| x.min(pc)));
                }
                agent_admin |= a.state().is_some();
            }
        }
        let key = self.config.services[si].key;
        let draining = self.draining(key, slot.addr);
        let pending = slot.health == Health::Unknown && awaited;
        let base = reported.unwrap_or(configured);
        let ramp = match r {
            ServerRef::Real(_) if !self.ramps.is_empty() => self
                .ramps
                .get(&(key, slot.addr))
                .map(|ramp| (ramp.step, ramp.steps)),
            _ => None,
        };
        let weight = if percent.is_none() && ramp.is_none() {
            base
        } else {
            admin::weight(base, percent, ramp)
        };
        let effective = if self.admin.is_empty() && !agent_admin {
            None
        } else {
            self.effective_admin(si, r)
        };
        let admin = match effective {
            None => AdminView::InService,
            Some((AdminState::Drain, _)) => match self.admin_drains.get(&(key, slot.addr)) {
                Some(Drain::Running { .. }) => AdminView::Draining,
                _ => AdminView::Out,
            },
            Some(_) => AdminView::Out,
        };
        ServerView {
            health: slot.health,
            weight,
            draining,
            pending,
            admin,
        }
    }

    /// The administrative state in force for a server: the strictest of its operator's,
    /// maintenance file's and agent's marks. Cheap when there are none.
    fn effective_admin(&self, si: usize, r: ServerRef) -> Effective {
        let slot = self.services[si].server(r);
        let mut best: Effective = None;
        let mut consider = |candidate: (AdminState, AdminSource)| {
            if candidate.0 != AdminState::Enabled && best.is_none_or(|b| stricter(candidate, b)) {
                best = Some(candidate);
            }
        };
        if !self.admin.is_empty() {
            let key = self.config.services[si].key;
            for m in self.admin.get(&(key, slot.addr)).into_iter().flatten() {
                consider((m.state, m.source));
            }
        }
        for &p in &slot.probes {
            if let Some(state) = self.probes[p].agent.as_ref().and_then(AgentState::state) {
                consider((state, AdminSource::Agent));
            }
        }
        best
    }

    /// Every administrative mark of a server, strictest first.
    fn marks_of(&self, si: usize, r: ServerRef) -> Vec<AdminMark> {
        let slot = self.services[si].server(r);
        let key = self.config.services[si].key;
        let mut marks: Vec<AdminMark> = self
            .admin
            .get(&(key, slot.addr))
            .cloned()
            .unwrap_or_default();
        for &p in &slot.probes {
            if let Some(m) = self.probes[p].agent.as_ref().and_then(AgentState::mark) {
                if !marks.contains(&m) {
                    marks.push(m);
                }
            }
        }
        marks.sort_by_key(|m| admin::precedence(m.state, m.source));
        marks
    }

    /// A random time of at most `timing_jitter` (or any window).
    fn jitter(&mut self, timing_jitter: Duration) -> Duration {
        let max = u64::try_from(timing_jitter.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.up_to(max))
    }

    fn draining(&self, key: ServiceKey, addr: SocketAddr) -> bool {
        // Asked for every server of a service at each reconcile: the common case, no drain at
        // all, needs no lookup.
        !self.drains.is_empty()
            && matches!(self.drains.get(&(key, addr)), Some(Drain::Running { .. }))
    }

    fn manages(&self, key: &ServiceKey) -> bool {
        self.config.daemon.manage == Manage::All
            || self.service_index.contains_key(key)
            || self.retiring.contains(key)
            || self.config.daemon.via_vip_marks.owns(key)
    }

    /// Whether `key` is one of lvs-hc's probe services: configured, or a firewall-mark
    /// service in `via_vip_marks` left over from an earlier configuration or run.
    pub fn is_probe_service(&self, key: &ServiceKey) -> bool {
        self.probe_index.contains_key(key) || self.config.daemon.via_vip_marks.owns(key)
    }

    /// Whether the kernel (as believed) holds the probe service a probe through the virtual
    /// address needs, with its server: until then such a probe would fail for want of it.
    fn probe_route_ready(&self, via: &crate::config::ViaVip, server: SocketAddr) -> bool {
        let key = ServiceKey::Fwmark {
            mark: via.mark,
            family: crate::table::Family::of(via.vip.ip()),
        };
        self.believed
            .as_ref()
            .and_then(|b| b.services.get(&key))
            .is_some_and(|e| e.dests.contains_key(&server))
    }

    /// lvs-hc's probe services, each with whether the kernel (as believed) holds it as
    /// configured.
    pub fn probe_services(&self) -> Vec<(crate::config::ProbeService, bool)> {
        self.config
            .probe_services
            .iter()
            .map(|p| {
                let held = self
                    .believed
                    .as_ref()
                    .and_then(|b| b.services.get(&p.key))
                    .is_some_and(|e| *e == p.entry());
                (p.clone(), held)
            })
            .collect()
    }

    // ---- configuration -------------------------------------------------------------------

    /// Puts `config` in force: probes carried over, server slots rebuilt, probes scheduled.
    /// What a reload does beyond that is [`Engine::handle_reload`]'s.
    fn install(&mut self, config: Config) -> Carried {
        let (probes, index, carried) = self.carry_probes(&config);
        let services = self.rebuild_servers(&config, &probes, &index);
        let real_addrs: BTreeSet<(ServiceKey, SocketAddr)> = config
            .services
            .iter()
            .flat_map(|s| s.servers.iter().map(move |r| (s.key, r.addr)))
            .collect();
        self.drains.retain(|k, _| real_addrs.contains(k));
        let ramping: BTreeSet<ServiceKey> = config
            .services
            .iter()
            .filter(|s| s.slow_start.is_some())
            .map(|s| s.key)
            .collect();
        self.ramps
            .retain(|k, _| real_addrs.contains(k) && ramping.contains(&k.0));
        let all_addrs: BTreeSet<(ServiceKey, SocketAddr)> = config
            .services
            .iter()
            .flat_map(|s| {
                let fallbacks = s.fallbacks.iter().map(move |f| (s.key, f.addr));
                s.servers
                    .iter()
                    .map(move |r| (s.key, r.addr))
                    .chain(fallbacks)
            })
            .collect();
        self.admin_drains.retain(|k, _| all_addrs.contains(k));
        let mut forgotten = Vec::new();
        self.admin.retain(|k, marks| {
            let keep = all_addrs.contains(k);
            if !keep {
                forgotten.extend(marks.iter().map(|m| (*k, m.state, m.source)));
            }
            keep
        });
        for ((service, server), state, source) in forgotten {
            self.emit(EventKind::AdminForgotten {
                service,
                server,
                state,
                source,
            });
        }
        self.service_index = config
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        self.probe_index = config
            .probe_services
            .iter()
            .enumerate()
            .map(|(i, p)| (p.key, i))
            .collect();
        self.probes = probes;
        self.services = services;
        self.sync.configure(
            config
                .sync
                .as_ref()
                .map(|s| s.daemons())
                .unwrap_or_default(),
        );
        self.announce.configure(config.announce);
        self.plans_stale = true;
        self.config = config;
        self.reschedule();
        self.dirty = Dirty::All;
        carried
    }

    /// One probe per distinct (server, check) of `config`, in configuration order, each with
    /// the servers it speaks for. A probe the running configuration has too keeps its state:
    /// health, schedule, a request in flight.
    fn carry_probes(&mut self, config: &Config) -> (Vec<ProbeSlot>, ProbeIndex, Carried) {
        let mut old: HashMap<(SocketAddr, Arc<Check>), ProbeSlot> = self
            .probes
            .drain(..)
            .map(|p| ((p.server, p.check.clone()), p))
            .collect();
        // What agents said, by server and agent port: the agent speaks for its server, so an
        // agent check edited (its interval, say) keeps its agent's word.
        let agents: HashMap<(SocketAddr, Option<u16>), AgentState> = old
            .iter()
            .filter_map(|((server, check), p)| Some(((*server, check.port), p.agent.clone()?)))
            .collect();
        let mut index = ProbeIndex::new();
        let mut probes: Vec<ProbeSlot> = Vec::new();
        let mut carried = Carried::default();
        for (si, svc) in config.services.iter().enumerate() {
            for (r, server) in servers_of(svc) {
                for check in &server.checks {
                    let key = (server.addr, check.clone());
                    let pi = match index.get(&key) {
                        Some(&pi) => pi,
                        None => {
                            let slot = match old.remove(&key) {
                                Some(mut kept) => {
                                    kept.users.clear();
                                    carried.kept += 1;
                                    kept
                                }
                                None => {
                                    carried.fresh += 1;
                                    let mut slot = ProbeSlot::new(server.addr, check.clone());
                                    if matches!(check.kind, CheckKind::Agent(_)) {
                                        slot.agent =
                                            agents.get(&(server.addr, check.port)).cloned();
                                    }
                                    slot
                                }
                            };
                            probes.push(slot);
                            index.insert(key, probes.len() - 1);
                            probes.len() - 1
                        }
                    };
                    probes[pi].users.push((si, r));
                }
            }
        }
        (probes, index, carried)
    }

    /// The server slots of `config` over `probes`. A server the running configuration has in
    /// the same role keeps its `since` and `reason` while its health stays the same; a service
    /// keeps what was last reported of its fallback.
    fn rebuild_servers(
        &mut self,
        config: &Config,
        probes: &[ProbeSlot],
        index: &ProbeIndex,
    ) -> Vec<ServiceSlot> {
        let now = self.now;
        let mut old_servers: HashMap<(ServiceKey, SocketAddr, bool), ServerSlot> = HashMap::new();
        let mut old_fallback: HashMap<ServiceKey, FallbackState> = HashMap::new();
        for (svc, slot) in self.config.services.iter().zip(self.services.drain(..)) {
            old_fallback.insert(svc.key, slot.fallback);
            for s in slot.reals {
                old_servers.insert((svc.key, s.addr, false), s);
            }
            for s in slot.fallbacks {
                old_servers.insert((svc.key, s.addr, true), s);
            }
        }
        let mut services = Vec::with_capacity(config.services.len());
        for svc in &config.services {
            let mut slot = ServiceSlot {
                reals: Vec::new(),
                fallbacks: Vec::new(),
                fallback: old_fallback
                    .get(&svc.key)
                    .copied()
                    .unwrap_or(FallbackState::Unknown),
            };
            for (r, server) in servers_of(svc) {
                let is_fallback = matches!(r, ServerRef::Fallback(_));
                let probe_ids: Vec<usize> = server
                    .checks
                    .iter()
                    .map(|check| index[&(server.addr, check.clone())])
                    .collect();
                let health = Health::all(probe_ids.iter().map(|&p| probes[p].health()));
                let (since, reason) = match old_servers.remove(&(svc.key, server.addr, is_fallback))
                {
                    Some(old) if old.health == health => (old.since, old.reason),
                    _ if server.checks.is_empty() => (now, "no checks configured".to_string()),
                    _ => (now, "waiting for the first probe".to_string()),
                };
                let s = ServerSlot {
                    addr: server.addr,
                    probes: probe_ids,
                    health,
                    since,
                    reason,
                };
                if is_fallback {
                    slot.fallbacks.push(s);
                } else {
                    slot.reals.push(s);
                }
            }
            services.push(slot);
        }
        services
    }

    /// Rebuilds the schedule: a probe in flight keeps its id (its result is still expected), a
    /// scheduled one its time, and a new one is due after a random part of its start window
    /// (see [`start_window`]), so that probes added together do not all start at once. A
    /// withdrawing engine schedules nothing.
    fn reschedule(&mut self) {
        self.in_flight.clear();
        self.schedule.clear();
        let new = self
            .probes
            .iter()
            .filter(|p| p.in_flight.is_none() && p.due.is_none())
            .count();
        let burst = self.config.daemon.probe_concurrency;
        for pi in 0..self.probes.len() {
            if let Some((id, _)) = self.probes[pi].in_flight {
                self.in_flight.insert(id, pi);
                continue;
            }
            if self.duty == Duty::Withdraw {
                self.probes[pi].due = None;
                continue;
            }
            let due = match self.probes[pi].due {
                Some(due) => due,
                None => {
                    let window = start_window(self.probes[pi].check.timing, new, burst);
                    self.now + self.jitter(window)
                }
            };
            self.probes[pi].due = Some(due);
            self.schedule.insert((due, pi));
        }
    }

    /// A new configuration, with the health of unchanged probes kept (see
    /// [`Engine::install`]); services it no longer names are deleted, and those it newly names
    /// are looked at in the kernel before they are touched.
    fn handle_reload(&mut self, config: Config) {
        let old_keys: BTreeSet<ServiceKey> = self.service_index.keys().copied().collect();
        let new_keys = config.service_keys();
        // Under `manage = "all"` the table as believed already holds every service.
        let believed_all = self.config.daemon.manage == Manage::All;
        // The state in force of every server, before: a reload may change it (an agent check
        // edited or removed takes its agent's word with it), and such a change goes through
        // `admin_transition` like any other.
        let mut before: HashMap<(ServiceKey, SocketAddr), Effective> = HashMap::new();
        for (si, svc) in self.config.services.iter().enumerate() {
            for (r, server) in servers_of(svc) {
                before.insert((svc.key, server.addr), self.effective_admin(si, r));
            }
        }
        let old_probe_keys: Vec<ServiceKey> = self.probe_index.keys().copied().collect();
        let carried = self.install(config);
        // Probe services of the old configuration that the new one neither has nor owns (its
        // `via_vip_marks` moved): retired like a service the reload dropped.
        let orphans: Vec<ServiceKey> = old_probe_keys
            .into_iter()
            .filter(|k| !self.is_probe_service(k))
            .collect();
        self.retiring.extend(orphans);
        let mut changed = Vec::new();
        for (si, svc) in self.config.services.iter().enumerate() {
            for (r, server) in servers_of(svc) {
                let was = before.get(&(svc.key, server.addr)).copied().flatten();
                let is = self.effective_admin(si, r);
                if was.map(|w| w.0) != is.map(|i| i.0) {
                    changed.push((si, r, was, is));
                }
            }
        }
        for (si, r, was, is) in changed {
            self.admin_transition(si, r, was, is);
        }
        self.retire_services(&old_keys, &new_keys, believed_all);
        let summary = ReloadSummary {
            services: new_keys.len(),
            added: new_keys.difference(&old_keys).count(),
            removed: old_keys.difference(&new_keys).count(),
            probes: self.probes.len(),
            kept: carried.kept,
            fresh: carried.fresh,
        };
        self.emit(EventKind::ConfigApplied {
            summary: summary.to_string(),
        });
    }

    /// Services a reload dropped are retired (deleted, even under `manage = "configured"`,
    /// until a snapshot shows them gone); services it added are unverified until the next
    /// snapshot when the table as believed could not hold them.
    fn retire_services(
        &mut self,
        old_keys: &BTreeSet<ServiceKey>,
        new_keys: &BTreeSet<ServiceKey>,
        believed_all: bool,
    ) {
        self.retiring.extend(old_keys.difference(new_keys).copied());
        for k in new_keys {
            self.retiring.remove(k);
        }
        if believed_all {
            return;
        }
        // The kernel may already hold a newly named service; what we believe of it was
        // filtered out. Look before touching it.
        let added: Vec<ServiceKey> = new_keys.difference(old_keys).copied().collect();
        if !added.is_empty() {
            self.unverified.extend(added);
            if !self.resync_outstanding {
                self.resync_due = self.resync_due.min(self.now);
            }
        }
    }

    // ---- administrative states ------------------------------------------------------------

    /// Where `server` is in service `si`, as a real server or a fallback.
    fn find_server(&self, si: usize, server: SocketAddr) -> Option<ServerRef> {
        let svc = &self.config.services[si];
        if let Some(i) = svc.servers.iter().position(|s| s.addr == server) {
            return Some(ServerRef::Real(i));
        }
        svc.fallbacks
            .iter()
            .position(|s| s.addr == server)
            .map(ServerRef::Fallback)
    }

    fn handle_admin(&mut self, change: AdminChange) {
        let found = self
            .service_index
            .get(&change.service)
            .and_then(|&si| Some((si, self.find_server(si, change.server)?)));
        let Some((si, r)) = found else {
            self.emit(EventKind::AdminIgnored {
                service: change.service,
                server: change.server,
            });
            return;
        };
        let now = self.now;
        let before = self.effective_admin(si, r);
        let entry = (change.service, change.server);
        let marks = self.admin.entry(entry).or_default();
        let kept_since = marks
            .iter()
            .find(|m| m.source == change.source && m.state == change.state)
            .map(|m| m.since);
        marks.retain(|m| m.source != change.source);
        if change.state != AdminState::Enabled {
            marks.push(AdminMark {
                state: change.state,
                source: change.source,
                reason: change.reason.clone(),
                since: kept_since.unwrap_or(now),
                drain_timeout: change.drain_timeout,
            });
        }
        if marks.is_empty() {
            self.admin.remove(&entry);
        }
        let after = self.effective_admin(si, r);
        self.emit(EventKind::AdminChanged {
            service: change.service,
            server: change.server,
            source: change.source,
            state: change.state,
            effective: after.map_or(AdminState::Enabled, |a| a.0),
            reason: change.reason,
        });
        self.admin_transition(si, r, before, after);
    }

    /// What a change of a server's administrative state in force sets off: a drain begins
    /// (or, for a server already out, is over at once), a slow start begins when an up server
    /// is enabled, a ramp ends when the server is taken out.
    fn admin_transition(&mut self, si: usize, r: ServerRef, before: Effective, after: Effective) {
        let was = before.map_or(AdminState::Enabled, |b| b.0);
        let is = after.map_or(AdminState::Enabled, |a| a.0);
        let key = self.config.services[si].key;
        let addr = self.services[si].server(r).addr;
        self.dirty.mark(key);
        if was == is {
            return;
        }
        match is {
            AdminState::Drain => {
                // A server already out has nothing to drain. Before the first table read
                // (a drain restored at start) it may well be serving: drain it.
                let serving = was == AdminState::Enabled
                    && self
                        .believed
                        .as_ref()
                        .is_none_or(|b| b.dest(&key, &addr).is_some());
                if serving {
                    let timeout = self.admin_drain_timeout(si, r);
                    self.admin_drains.insert(
                        (key, addr),
                        Drain::Running {
                            deadline: self.now + timeout,
                        },
                    );
                    self.emit(EventKind::DrainStarted {
                        service: key,
                        server: addr,
                        timeout,
                    });
                } else {
                    self.admin_drains.insert((key, addr), Drain::Finished);
                }
                self.end_ramp(key, addr, "drained");
            }
            AdminState::Disabled => {
                self.admin_drains.remove(&(key, addr));
                self.end_ramp(key, addr, "disabled");
            }
            AdminState::Enabled => {
                self.admin_drains.remove(&(key, addr));
                if self.services[si].server(r).health == Health::Up {
                    self.begin_ramp(si, r);
                }
            }
        }
    }

    /// The drain timeout for an administrative drain of a server: its mark's, else the
    /// service's `drain_timeout`, else [`DEFAULT_DRAIN_TIMEOUT`].
    fn admin_drain_timeout(&self, si: usize, r: ServerRef) -> Duration {
        let slot = self.services[si].server(r);
        let svc = &self.config.services[si];
        let given = self
            .admin
            .get(&(svc.key, slot.addr))
            .into_iter()
            .flatten()
            .filter(|m| m.state == AdminState::Drain)
            .find_map(|m| m.drain_timeout);
        given.unwrap_or(match svc.on_failure {
            FailureAction::Drain { timeout } => timeout,
            _ => DEFAULT_DRAIN_TIMEOUT,
        })
    }

    /// Starts a slow start for a real server returning to service, if its service has one.
    fn begin_ramp(&mut self, si: usize, r: ServerRef) {
        let svc = &self.config.services[si];
        let (ServerRef::Real(_), Some(length)) = (r, svc.slow_start) else {
            return;
        };
        let key = svc.key;
        let addr = self.services[si].server(r).addr;
        let ramp = Ramp::new(self.now, length);
        self.ramp_due = self.ramp_due.min(ramp.next_change());
        self.ramps.insert((key, addr), ramp);
        self.emit(EventKind::SlowStartBegan {
            service: key,
            server: addr,
            over: length,
        });
    }

    fn end_ramp(&mut self, key: ServiceKey, addr: SocketAddr, why: &str) {
        if self.ramps.remove(&(key, addr)).is_some() {
            self.emit(EventKind::SlowStartEnded {
                service: key,
                server: addr,
                reason: format!("cut short: {why}"),
            });
        }
    }

    /// From now on no managed service is desired (see [`Input::Withdraw`]).
    fn handle_withdraw(&mut self) {
        self.duty = Duty::Withdraw;
        self.sync.withdraw();
        self.announce.withdraw();
        // Verdicts no longer matter: nothing more is probed, nothing drains.
        self.schedule.clear();
        for p in &mut self.probes {
            p.due = None;
        }
        self.drains.clear();
        self.admin_drains.clear();
        self.ramps.clear();
        // Look before deleting: the table may have changed since it was last read. Nothing is
        // applied before that read (as at the start).
        self.believed = None;
        if !self.resync_outstanding {
            self.resync_due = self.now;
        }
        self.dirty = Dirty::All;
    }

    // ---- probes --------------------------------------------------------------------------

    fn handle_probe_result(&mut self, id: ProbeId, outcome: ProbeOutcome) {
        let Some(pi) = self.in_flight.remove(&id) else {
            return;
        };
        if self.duty == Duty::Withdraw {
            // A verdict no longer matters, and the probe is not run again.
            self.probes[pi].in_flight = None;
            return;
        }
        let now = self.now;
        let p = &mut self.probes[pi];
        let started = p.in_flight.take().map_or(now, |(_, s)| s);
        let transition = p.hysteresis.record(&outcome);
        let mut weight_changed = None;
        if let ProbeOutcome::Pass { weight: Some(w) } = outcome {
            if p.weight != Some(w) {
                p.weight = Some(w);
                weight_changed = Some(w);
            }
        }
        // An agent's answer is news when it differs from its last (most do not).
        let agent_news = match &outcome {
            ProbeOutcome::Agent(report) if p.agent.as_ref().is_none_or(|a| a.report != *report) => {
                Some(report.clone())
            }
            _ => None,
        };
        let verdict = outcome.is_verdict();
        let first_result = verdict && p.last_verdict.is_none();
        let fault_change = match (&outcome, &mut p.fault) {
            (ProbeOutcome::DirectorFault { reason }, Some(fault)) => {
                fault.reason.clone_from(reason);
                None
            }
            (ProbeOutcome::DirectorFault { reason }, fault @ None) => {
                *fault = Some(Fault {
                    since: now,
                    reason: reason.clone(),
                });
                Some(EventKind::ProbeFault {
                    server: p.server,
                    check: p.check.label(),
                    reason: reason.clone(),
                })
            }
            (_, fault @ Some(_)) if verdict => {
                let since = fault.take().map_or(now, |f| f.since);
                Some(EventKind::ProbeFaultCleared {
                    server: p.server,
                    check: p.check.label(),
                    lasted: now.saturating_since(since),
                })
            }
            _ => None,
        };
        if verdict {
            p.last_verdict = Some(now);
        }
        p.last_result = Some((now, outcome));
        let timing = p.check.timing;
        let period = if p.hysteresis.failing() {
            timing.failing_interval
        } else {
            timing.interval
        };
        let jitter = self.jitter(timing.jitter);
        let due = (started + period + jitter).max(now);
        let p = &mut self.probes[pi];
        p.due = Some(due);
        self.schedule.insert((due, pi));
        if let Some(event) = fault_change {
            self.emit(event);
        }
        if let Some(report) = agent_news {
            self.agent_report(pi, report);
        }
        let p = &self.probes[pi];
        if !first_result && weight_changed.is_none() && transition.is_none() {
            // The common case, thousands of times a second: nothing changed.
            return;
        }
        let users = p.users.clone();
        let server = p.server;
        if first_result && transition.is_none() {
            // A server stops holding back its service's fallback once it has a result.
            for &(si, _) in &users {
                self.dirty.mark(self.config.services[si].key);
            }
        }
        if let Some(weight) = weight_changed {
            self.emit(EventKind::WeightReported { server, weight });
            for &(si, _) in &users {
                self.dirty.mark(self.config.services[si].key);
            }
        }
        if let Some(t) = transition {
            for (si, r) in users {
                self.update_server_health(si, r, &t.reason);
            }
        }
    }

    /// An agent's answer: its weight percentage and administrative words take effect for
    /// every server its probe speaks for.
    fn agent_report(&mut self, pi: usize, report: AgentReport) {
        let p = &self.probes[pi];
        let old = p.agent.as_ref();
        if old.is_some_and(|a| a.report == report) {
            return;
        }
        // Its words, not its description: an agent that writes `# load 0.53` is not news at
        // every probe.
        let words = |r: &AgentReport| (r.health, r.admin, r.weight_percent);
        let said_more = old.is_none_or(|a| words(&a.report) != words(&report));
        let percent_changed = old.and_then(|a| a.report.weight_percent) != report.weight_percent;
        let old_admin = old.and_then(|a| a.admin.clone());
        let admin = match report.admin {
            None => old_admin.clone(),
            Some(AgentAdmin::Ready) => None,
            Some(word) => match &old_admin {
                Some((w, since, reason)) if *w == word => Some((word, *since, reason.clone())),
                _ => Some((word, self.now, report.text.clone())),
            },
        };
        let admin_changed = admin.as_ref().map(|a| a.0) != old_admin.as_ref().map(|a| a.0);
        let users = p.users.clone();
        let server = p.server;
        let befores: Vec<Effective> = users
            .iter()
            .map(|&(si, r)| self.effective_admin(si, r))
            .collect();
        self.probes[pi].agent = Some(AgentState {
            report: report.clone(),
            admin,
        });
        if said_more {
            self.emit(EventKind::AgentReported { server, report });
        }
        for (&(si, r), before) in users.iter().zip(befores) {
            if admin_changed {
                let after = self.effective_admin(si, r);
                self.admin_transition(si, r, before, after);
            }
            if percent_changed {
                self.dirty.mark(self.config.services[si].key);
            }
        }
    }

    fn update_server_health(&mut self, si: usize, r: ServerRef, reason: &str) {
        let now = self.now;
        let slot = self.services[si].server(r);
        let health = Health::all(slot.probes.iter().map(|&p| self.probes[p].health()));
        if health == slot.health {
            return;
        }
        let from = slot.health;
        let checks = slot.probes.len();
        let label = if checks > 1 {
            let pi = slot
                .probes
                .iter()
                .copied()
                .find(|&p| self.probes[p].health() == health)
                .unwrap_or(slot.probes[0]);
            format!("{}: {reason}", self.probes[pi].check.label())
        } else {
            reason.to_string()
        };
        let addr = slot.addr;
        let key = self.config.services[si].key;
        let s = self.services[si].server_mut(r);
        s.health = health;
        s.since = now;
        s.reason = label.clone();
        self.emit(EventKind::ServerHealth {
            service: key,
            server: addr,
            fallback: matches!(r, ServerRef::Fallback(_)),
            from,
            to: health,
            reason: label,
        });
        match health {
            Health::Up if from == Health::Down && self.effective_admin(si, r).is_none() => {
                self.begin_ramp(si, r)
            }
            Health::Down => self.end_ramp(key, addr, "the server failed"),
            _ => {}
        }
        if let (ServerRef::Real(_), FailureAction::Drain { timeout }) =
            (r, self.config.services[si].on_failure)
        {
            match health {
                Health::Down => {
                    let present = self
                        .believed
                        .as_ref()
                        .is_some_and(|b| b.dest(&key, &addr).is_some());
                    if present {
                        self.drains.insert(
                            (key, addr),
                            Drain::Running {
                                deadline: now + timeout,
                            },
                        );
                        self.emit(EventKind::DrainStarted {
                            service: key,
                            server: addr,
                            timeout,
                        });
                    }
                }
                _ => {
                    self.drains.remove(&(key, addr));
                }
            }
        }
        self.dirty.mark(key);
    }

    // ---- the kernel table ----------------------------------------------------------------

    fn handle_snapshot(&mut self, table: Table, counters: Counters, skipped: Vec<SkippedService>) {
        let now = self.now;
        self.sync.observe(&table.sync);
        self.sync.adopt();
        let unreadable: BTreeMap<Option<ServiceKey>, String> =
            skipped.into_iter().map(|s| (s.key, s.error)).collect();
        for (key, error) in &unreadable {
            if self.unreadable.get(key) != Some(error) {
                self.emit(EventKind::ServiceUnreadable {
                    service: *key,
                    error: error.clone(),
                });
            }
        }
        self.unreadable = unreadable;
        let manage_all = self.config.daemon.manage == Manage::All;
        let scoped = if manage_all {
            table
        } else {
            table.filtered(|k| self.manages(k))
        };
        if let Some(old) = &self.believed {
            let changes: Vec<Op> = diff(&scoped, old)
                .into_iter()
                .filter(|op| !self.pending.contains_key(&op.target()))
                .filter(|op| !self.unverified.contains(&op.service()))
                .filter(|op| !self.unreadable.contains_key(&Some(op.service())))
                .collect();
            let (own, changes): (Vec<Op>, Vec<Op>) = changes
                .into_iter()
                .partition(|op| self.is_probe_service(&op.service()));
            if !changes.is_empty() {
                self.emit(EventKind::Drift { changes });
            }
            if !own.is_empty() {
                self.emit(EventKind::ProbeServicesRepaired { changes: own });
            }
        }
        self.unverified.clear();
        self.retiring.retain(|k| scoped.services.contains_key(k));
        self.learn_last_weights(&scoped);
        self.believed = Some(scoped);
        // Drains end when the kernel shows no connections left (or the server is gone).
        let believed = self.believed.as_ref();
        let over = |drains: &HashMap<(ServiceKey, SocketAddr), Drain>| {
            let mut finished = Vec::new();
            for ((key, addr), d) in drains {
                if *d == Drain::Finished {
                    continue;
                }
                let dest = believed.and_then(|b| b.dest(key, addr));
                let conns = counters.dests.get(&(*key, *addr)).map(|c| c.connections());
                match dest {
                    None => finished.push((*key, *addr, "no longer in the table")),
                    // Counted only once the kernel shows weight 0: before that, new
                    // connections could still arrive.
                    Some(p) if p.weight == 0 && conns == Some(0) => {
                        finished.push((*key, *addr, "connections reached 0"))
                    }
                    Some(_) => {}
                }
            }
            finished
        };
        let failed = over(&self.drains);
        let administrative = over(&self.admin_drains);
        for (key, addr, reason) in failed {
            self.drains.insert((key, addr), Drain::Finished);
            self.emit(EventKind::DrainFinished {
                service: key,
                server: addr,
                reason: reason.into(),
            });
        }
        for (key, addr, reason) in administrative {
            self.admin_drains.insert((key, addr), Drain::Finished);
            self.emit(EventKind::DrainFinished {
                service: key,
                server: addr,
                reason: reason.into(),
            });
        }
        self.counters = counters;
        self.resync_outstanding = false;
        self.snapshot_failures = 0;
        self.resync_due = now + self.config.daemon.resync_interval;
        self.dirty = Dirty::All;
    }

    /// What a table read from the kernel says of `last_weight`s: a destination at a weight
    /// other than 0 has that weight as `last_weight`; one at weight 0 keeps what the engine
    /// knew only if the engine saw it at 0 before too, or set it so itself (an operation on
    /// it is on its way): otherwise someone else may have changed it, and it is not known.
    fn learn_last_weights(&mut self, table: &Table) {
        let old = self.believed.as_ref();
        let pending = &self.pending;
        self.last_weights.retain(|(key, addr), _| {
            let now = table.dest(key, addr).map(|p| p.weight);
            let before = old.and_then(|b| b.dest(key, addr)).map(|p| p.weight);
            pending.contains_key(&Target::Dest(*key, *addr))
                || (now == Some(0) && before == Some(0))
        });
        // Only `mh` counts last weights: no entry for the destinations of other services.
        let by_last_weight = table
            .services
            .iter()
            .filter(|(_, e)| hashes_by_last_weight(&e.params.scheduler));
        for (key, entry) in by_last_weight {
            for (addr, p) in &entry.dests {
                if p.weight > 0 {
                    self.last_weights.insert((*key, *addr), p.weight);
                }
            }
        }
    }

    /// What an applied operation did to `last_weight`s, by the kernel's rule.
    fn note_last_weight(&mut self, op: &Op) {
        match op {
            Op::AddService { key, .. } | Op::DelService { key } => {
                self.last_weights.retain(|(k, _), _| k != key);
            }
            Op::AddDest {
                service,
                dest,
                params,
            } => {
                self.last_weights.insert((*service, *dest), params.weight);
            }
            Op::EditDest {
                service,
                dest,
                params,
            } if params.weight > 0 => {
                self.last_weights.insert((*service, *dest), params.weight);
            }
            Op::DelDest { service, dest } => {
                self.last_weights.remove(&(*service, *dest));
            }
            Op::EditService { .. } | Op::EditDest { .. } => {}
        }
    }

    fn handle_sync_applied(&mut self, op: SyncOp, result: Result<(), String>) {
        let error = result.as_ref().err().cloned();
        let d = &self.config.daemon;
        let (first, max) = (d.retry_backoff, d.retry_backoff_max);
        let backoff = |attempts: u32| doubling_backoff(first, max, attempts);
        match (self.sync.applied(self.now, &op, result, backoff), op) {
            (Ok(why), SyncOp::Start(daemon)) => {
                self.emit(EventKind::SyncDaemonStarted { daemon, why })
            }
            (Ok(why), SyncOp::Stop(role)) => self.emit(EventKind::SyncDaemonStopped { role, why }),
            (Err(retry_in), op) => self.emit(EventKind::SyncDaemonFailed {
                op,
                error: error.unwrap_or_default(),
                retry_in,
            }),
        }
    }

    /// Whether each configured service can serve, for announcing its VIP (`[announce]`): its
    /// real servers that are up and in service (not disabled, not draining, not at weight 0),
    /// and those in service still awaiting a first verdict, in configuration order. Fallbacks
    /// do not count.
    pub fn readiness(&self) -> Vec<ServiceReadiness> {
        self.config
            .services
            .iter()
            .enumerate()
            .map(|(si, svc)| {
                let (mut healthy, mut awaiting) = (0, 0);
                for i in 0..svc.servers.len() {
                    let v = self.server_view(si, ServerRef::Real(i));
                    if v.admin != AdminView::InService {
                        continue;
                    }
                    if v.health == Health::Up && !v.draining && v.weight > 0 {
                        healthy += 1;
                    } else if v.health == Health::Unknown {
                        awaiting += 1;
                    }
                }
                ServiceReadiness {
                    service: svc.key,
                    healthy,
                    servers: svc.servers.len(),
                    quorum: svc.quorum,
                    awaiting,
                }
            })
            .collect()
    }

    /// The wait before retrying an operation that failed `attempts` times in a row: the
    /// backoff of table operations (`retry_backoff`, doubling, at most `retry_backoff_max`),
    /// for the driver's own operations (routes).
    pub fn retry_backoff(&self, attempts: u32) -> Duration {
        self.backoff(attempts)
    }

    /// Per VIP of the address-based services: announced or not, and why (`[announce]`);
    /// empty without it.
    pub fn announce_status(&self) -> Vec<VipStatus> {
        self.announce.status(self.now)
    }

    /// Whether the routes are held back because the engine stalled (until they are read
    /// again).
    pub fn announce_stalled(&self) -> bool {
        self.announce.stalled()
    }

    /// Works out the VIPs' plans when inputs came since, then asks for a route read or the
    /// next route operation.
    fn poll_announce(&mut self) {
        if self.plans_stale {
            self.plans_stale = false;
            let require = self.config.announce.map_or(Require::Any, |a| a.require);
            self.announce.want(plan(&self.readiness(), require));
        }
        if self.announce.needs_read() {
            if !self.routes_outstanding && self.routes_due <= self.now {
                self.routes_outstanding = true;
                self.outputs.push_back(Output::ReadRoutes);
            }
            return;
        }
        if let Some(op) = self.announce.next(self.now) {
            self.outputs.push_back(Output::Route(op));
        }
    }

    fn handle_routes(&mut self, result: Result<Vec<Route>, String>) {
        self.routes_outstanding = false;
        match result {
            Ok(routes) => {
                self.routes_failures = 0;
                self.announce.observe(routes);
                self.announce.resume();
            }
            Err(error) => {
                self.routes_failures = self.routes_failures.saturating_add(1);
                let retry_in = self
                    .backoff(self.routes_failures)
                    .min(self.config.daemon.resync_interval);
                self.routes_due = self.now + retry_in;
                self.emit(EventKind::RoutesReadFailed { error, retry_in });
            }
        }
    }

    fn handle_route_applied(&mut self, op: RouteOp, result: Result<(), String>) {
        let error = result.as_ref().err().cloned();
        let d = &self.config.daemon;
        let (first, max) = (d.retry_backoff, d.retry_backoff_max);
        let backoff = |attempts: u32| doubling_backoff(first, max, attempts);
        match self.announce.applied(self.now, op, result, backoff) {
            Ok(()) => {
                let why = self
                    .announce
                    .status(self.now)
                    .into_iter()
                    .find(|v| v.vip == op.route().vip)
                    .map_or_else(|| "no service has this address".to_string(), |v| v.why);
                self.emit(EventKind::RouteChanged { op, why });
            }
            Err(retry_in) => self.emit(EventKind::RouteFailed {
                op,
                error: error.unwrap_or_default(),
                retry_in,
            }),
        }
    }

    /// Each configured sync daemon's state (`[sync]`), master first; empty without `[sync]`.
    pub fn sync_status(&self) -> Vec<SyncStatus> {
        self.sync.status()
    }

    /// The sync daemons running, as last read from the kernel (and changed by lvs-hc since);
    /// `None` before the first read.
    pub fn sync_running(&self) -> Option<&[SyncDaemon]> {
        self.sync.seen()
    }

    fn handle_snapshot_failed(&mut self, error: String) {
        self.snapshot_failures = self.snapshot_failures.saturating_add(1);
        let retry_in = self
            .backoff(self.snapshot_failures)
            .min(self.config.daemon.resync_interval);
        self.resync_outstanding = false;
        self.resync_due = self.now + retry_in;
        self.emit(EventKind::SnapshotFailed { error, retry_in });
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let d = &self.config.daemon;
        doubling_backoff(d.retry_backoff, d.retry_backoff_max, attempts)
    }

    fn handle_applied(&mut self, op: Op, result: Result<(), ApplyError>) {
        let target = op.target();
        let reason = self.pending.remove(&target).unwrap_or_default();
        self.dirty.mark(op.service());
        match result {
            Ok(()) => {
                if let Some(b) = self.believed.as_mut() {
                    b.apply_lenient(&op);
                }
                self.note_last_weight(&op);
                self.retries.remove(&target);
                self.emit(EventKind::Applied { op, reason });
            }
            Err(error) => {
                let attempts = self.retries.get(&target).map_or(0, |r| r.attempts) + 1;
                let retry_in = self.backoff(attempts);
                self.retries.insert(
                    target,
                    Retry {
                        attempts,
                        backoff: Backoff::Until(self.now + retry_in),
                    },
                );
                // The failure says our picture of the table may be wrong: look again soon.
                if !self.resync_outstanding {
                    self.resync_due = self.resync_due.min(self.now);
                }
                self.emit(EventKind::ApplyFailed {
                    op,
                    error,
                    attempt: attempts,
                    retry_in,
                });
            }
        }
    }

    // ---- time ----------------------------------------------------------------------------

    fn tick(&mut self) {
        let now = self.now;
        while let Some(&(due, pi)) = self.schedule.first() {
            if due > now {
                break;
            }
            self.schedule.pop_first();
            if let Some(via) = self.probes[pi].check.via {
                if !self.probe_route_ready(&via, self.probes[pi].server) {
                    // Held until its probe service is in the kernel (added at the next
                    // reconcile, or repaired at the next snapshot).
                    let hold = self.probes[pi].check.timing.interval.min(PROBE_ROUTE_HOLD);
                    self.probes[pi].due = Some(now + hold);
                    self.schedule.insert((now + hold, pi));
                    continue;
                }
            }
            let id = ProbeId(self.next_probe_id);
            self.next_probe_id += 1;
            let p = &mut self.probes[pi];
            p.due = None;
            p.in_flight = Some((id, now));
            self.in_flight.insert(id, pi);
            let request = ProbeRequest {
                id,
                server: p.server,
                check: p.check.clone(),
            };
            self.outputs.push_back(Output::Probe(request));
        }
        let mut timed_out = Vec::new();
        for ((key, addr), d) in self.drains.iter_mut().chain(self.admin_drains.iter_mut()) {
            if matches!(*d, Drain::Running { deadline } if deadline <= now) {
                *d = Drain::Finished;
                timed_out.push((*key, *addr));
            }
        }
        for (key, addr) in timed_out {
            self.dirty.mark(key);
            self.emit(EventKind::DrainFinished {
                service: key,
                server: addr,
                reason: "drain timeout passed".into(),
            });
        }
        if self.ramp_due <= now {
            let mut stepped = Vec::new();
            for (&(key, addr), ramp) in self.ramps.iter_mut() {
                match ramp.step_at(now) {
                    None => stepped.push((key, addr, true)),
                    Some(step) if step != ramp.step => {
                        ramp.step = step;
                        stepped.push((key, addr, false));
                    }
                    Some(_) => {}
                }
            }
            for (key, addr, over) in stepped {
                self.dirty.mark(key);
                if over {
                    self.ramps.remove(&(key, addr));
                    self.emit(EventKind::SlowStartEnded {
                        service: key,
                        server: addr,
                        reason: "full weight reached".into(),
                    });
                }
            }
            self.ramp_due = self
                .ramps
                .values()
                .map(Ramp::next_change)
                .min()
                .unwrap_or(Instant::FAR_FUTURE);
        }
        let mut expired = Vec::new();
        for (target, r) in self.retries.iter_mut() {
            if matches!(r.backoff, Backoff::Until(t) if t <= now) {
                r.backoff = Backoff::Over;
                expired.push(target.service());
            }
        }
        for key in expired {
            self.dirty.mark(key);
        }
        if !self.resync_outstanding && self.resync_due <= now {
            self.resync_outstanding = true;
            self.outputs.push_back(Output::ReadTable);
            // Our routes are read alongside the table: level-triggered, like it.
            if self.announce.settings().is_some() && !self.routes_outstanding {
                self.routes_outstanding = true;
                self.outputs.push_back(Output::ReadRoutes);
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = Instant::FAR_FUTURE;
        if let Some(&(due, _)) = self.schedule.first() {
            deadline = deadline.min(due);
        }
        for d in self.drains.values().chain(self.admin_drains.values()) {
            if let Drain::Running { deadline: end } = *d {
                deadline = deadline.min(end);
            }
        }
        if !self.ramps.is_empty() {
            deadline = deadline.min(self.ramp_due);
        }
        for r in self.retries.values() {
            if let Backoff::Until(t) = r.backoff {
                deadline = deadline.min(t);
            }
        }
        if !self.resync_outstanding {
            deadline = deadline.min(self.resync_due);
        }
        if let Some(at) = self.announce.retry_at() {
            deadline = deadline.min(at);
        }
        if self.announce.needs_read() && !self.routes_outstanding {
            deadline = deadline.min(self.routes_due);
        }
        if let Some(at) = self.sync.retry_at() {
            deadline = deadline.min(at);
        }
        deadline
    }

    // ---- reconciliation ------------------------------------------------------------------

    fn reconcile(&mut self) {
        if self.dirty.is_clean() {
            return;
        }
        // What makes a service dirty (a verdict, a weight, a drain, an administrative state, a
        // reload, a table read) is what its readiness to be announced depends on: the VIPs'
        // plans are recomputed then, not at every probe result.
        self.plans_stale = true;
        let Some(believed) = &self.believed else {
            return;
        };
        let keys: BTreeSet<ServiceKey> = match std::mem::replace(&mut self.dirty, Dirty::clean()) {
            Dirty::All => {
                let mut all: BTreeSet<ServiceKey> = self.service_index.keys().copied().collect();
                all.extend(self.probe_index.keys().copied());
                all.extend(believed.services.keys().copied());
                all
            }
            Dirty::Services(keys) => keys,
        };
        for key in keys {
            self.reconcile_service(key);
        }
    }

    fn reconcile_service(&mut self, key: ServiceKey) {
        if self.unverified.contains(&key) || self.unreadable.contains_key(&Some(key)) {
            return;
        }
        let Some(believed) = &self.believed else {
            return;
        };
        let actual = believed.services.get(&key);
        if self.is_probe_service(&key) {
            let probe = match (self.duty, self.probe_index.get(&key)) {
                (Duty::Serve, Some(&i)) => Some(&self.config.probe_services[i]),
                _ => None,
            };
            let desired = probe.map(|p| p.entry());
            let reason = match probe {
                Some(p) => format!(
                    "lvs-hc's probe service for {} of {} (via_vip)",
                    p.server, p.service
                ),
                None if self.duty == Duty::Withdraw => "cleanup on exit".to_string(),
                None => "lvs-hc's probe service, no longer needed (via_vip)".to_string(),
            };
            let mut ops = Vec::new();
            diff_service(&key, desired.as_ref(), actual, &mut ops);
            self.push_ops(key, ops, actual.is_some(), |_, _| reason.clone());
            return;
        }
        let desired = match (self.duty, self.service_index.get(&key)) {
            (Duty::Serve, Some(&si)) => {
                let d = desired_service(&self.config.services[si], actual, |r| {
                    self.server_view(si, r)
                });
                Some((si, d))
            }
            _ if self.manages(&key) => None,
            _ => return,
        };
        // Operations whose reason is the hashing rule, not a server's state.
        let mut hashing: HashMap<Target, String> = HashMap::new();
        let want = desired
            .as_ref()
            .map(|(_, d)| self.seated(key, d, &mut hashing));
        let mut ops = Vec::new();
        diff_service(&key, want.as_deref(), actual, &mut ops);
        if want
            .as_ref()
            .is_some_and(|w| hashes_over_order(&w.params.scheduler))
        {
            add_largest_first(&mut ops);
        }
        let awaiting = desired.as_ref().is_some_and(|(_, d)| d.awaiting_verdicts);
        if let (Some(want), Some(have), false) = (&want, actual, awaiting) {
            if let Some(dest) = self.misplaced(key, want, have, &ops) {
                let why = format!(
                    "{dest} is out of place in the kernel's list of {key}, which {} hashes over: \
                     deleted and added again to restore ascending address order",
                    want.params.scheduler
                );
                hashing.insert(Target::Dest(key, dest), why);
                ops.push(Op::DelDest { service: key, dest });
            }
        }
        let service_present = actual.is_some();
        if let Some((si, d)) = &desired {
            self.note_fallback(*si, d);
        }
        let si = desired.as_ref().map(|(si, _)| *si);
        self.push_ops(key, ops, service_present, |engine, op| {
            match hashing.get(&op.target()) {
                Some(why) => why.clone(),
                None => engine.reason(op, si),
            }
        });
    }

    /// The entry to work towards for `d`: itself, except that in an `mh` service a destination
    /// held at weight 0 whose `last_weight` is not (known to be) its weight in service is
    /// wanted at that weight first (added or edited so, then back to 0 once that is applied).
    /// The reasons for those operations go into `reasons`.
    fn seated<'d>(
        &self,
        key: ServiceKey,
        d: &'d DesiredService,
        reasons: &mut HashMap<Target, String>,
    ) -> Cow<'d, ServiceEntry> {
        if !hashes_by_last_weight(&d.entry.params.scheduler) {
            return Cow::Borrowed(&d.entry);
        }
        let mut entry = Cow::Borrowed(&d.entry);
        for (&addr, &seat) in &d.seats {
            if seat == 0 || self.last_weights.get(&(key, addr)) == Some(&seat) {
                continue;
            }
            if let Some(p) = entry.to_mut().dests.get_mut(&addr) {
                p.weight = seat;
                reasons.insert(
                    Target::Dest(key, addr),
                    format!(
                        "{addr} is held at weight 0 in {key} (mh): set to its weight {seat} \
                         first, so that it keeps its slots in the lookup table as on every \
                         director (the kernel keeps the last weight other than 0)"
                    ),
                );
            }
        }
        entry
    }

    /// The destination to delete (and add again) next to bring the kernel's list of a
    /// hashing service `key` into ascending address order, if it is not; `None` too while
    /// anything of the service is on its way or still to be added (one move at a time, each
    /// re-add before the next delete), or when the list order is not known.
    fn misplaced(
        &self,
        key: ServiceKey,
        want: &ServiceEntry,
        have: &ServiceEntry,
        ops: &[Op],
    ) -> Option<SocketAddr> {
        if !hashes_over_order(&want.params.scheduler) {
            return None;
        }
        let order = have.order()?;
        let adding = ops.iter().any(|op| {
            matches!(
                op,
                Op::AddService { .. } | Op::DelService { .. } | Op::AddDest { .. }
            )
        });
        if adding || self.pending.keys().any(|t| t.service() == key) {
            return None;
        }
        first_to_move(order, &want.dests)
    }

    /// Sends the operations of service `key` that are not already on their way or held back
    /// by a failure, services before their destinations; `reason` words each.
    fn push_ops(
        &mut self,
        key: ServiceKey,
        ops: Vec<Op>,
        service_present: bool,
        reason: impl Fn(&Engine, &Op) -> String,
    ) {
        // Retry counts belong to operations still needed; a later failure starts afresh.
        let needed: BTreeSet<Target> = ops.iter().map(Op::target).collect();
        self.retries
            .retain(|t, _| t.service() != key || needed.contains(t));
        let mut service_added = false;
        for op in ops {
            let target = op.target();
            if self.pending.contains_key(&target) {
                continue;
            }
            if self
                .retries
                .get(&target)
                .is_some_and(|r| r.backoff != Backoff::Over)
            {
                continue;
            }
            // Destinations only after their service: never while it is missing and its
            // addition is not on its way (pending, or held back by a failure).
            if matches!(target, Target::Dest(..)) && !service_present && !service_added {
                continue;
            }
            if matches!(op, Op::AddService { .. }) {
                service_added = true;
            }
            let reason = reason(self, &op);
            self.pending.insert(target, reason);
            self.outputs.push_back(Output::Apply(op));
        }
    }

    /// Records whether the fallback of service `si` is in, and reports a change (the first
    /// answer only when it brings the fallback in; never for a service without fallbacks).
    fn note_fallback(&mut self, si: usize, d: &DesiredService) {
        let svc = &self.config.services[si];
        let before = self.services[si].fallback;
        let now = FallbackState::of(d.fallback_in);
        if before == now {
            return;
        }
        self.services[si].fallback = now;
        let news = before != FallbackState::Unknown || now == FallbackState::In;
        if news && !svc.fallbacks.is_empty() {
            let (service, quorum) = (svc.key, svc.quorum);
            self.emit(EventKind::Fallback {
                service,
                active: d.fallback_in,
                healthy: d.healthy,
                quorum,
            });
        }
    }

    /// Why `op` is needed, in words (see [`OpReason`]); `si` is its service's index when the
    /// service is configured and served.
    fn reason(&self, op: &Op, si: Option<usize>) -> String {
        self.op_reason(op, si).to_string()
    }

    fn op_reason(&self, op: &Op, si: Option<usize>) -> OpReason<'_> {
        let Some(si) = si else {
            return if self.duty == Duty::Withdraw {
                OpReason::Withdrawal
            } else if self.retiring.contains(&op.service()) {
                OpReason::Retired
            } else {
                OpReason::Unconfigured
            };
        };
        let svc = &self.config.services[si];
        let dest = match op {
            Op::AddService { .. } => return OpReason::ServiceMissing,
            Op::EditService { .. } => return OpReason::ServiceSettings,
            Op::DelService { .. } => return OpReason::ServiceUnwanted,
            Op::AddDest { dest, .. } | Op::EditDest { dest, .. } | Op::DelDest { dest, .. } => {
                *dest
            }
        };
        let slot = &self.services[si];
        if let Some(i) = svc.fallbacks.iter().position(|f| f.addr == dest) {
            let s = &slot.fallbacks[i];
            return OpReason::Fallback {
                fallback_in: slot.fallback == FallbackState::In,
                quorum: svc.quorum,
                health: s.health,
                why: &s.reason,
            };
        }
        if let Some(i) = svc.servers.iter().position(|f| f.addr == dest) {
            let s = &slot.reals[i];
            let old = self.believed.as_ref().and_then(|b| b.dest(&svc.key, &dest));
            let change = match (op, old) {
                (Op::EditDest { params, .. }, Some(old)) if old.weight != params.weight => {
                    DestChange::Weight(old.weight, params.weight)
                }
                (Op::EditDest { .. }, Some(_)) => DestChange::Settings,
                _ => DestChange::Presence,
            };
            let r = ServerRef::Real(i);
            let admin = self.marks_of(si, r).first().map(|m| {
                let mut words = format!("{} by {}", m.state, m.source.label());
                if !m.reason.is_empty() {
                    words.push_str(&format!(": {}", m.reason));
                }
                words
            });
            return OpReason::Server {
                dest,
                change,
                health: s.health,
                why: &s.reason,
                draining: self.draining(svc.key, dest),
                admin,
                ramp: self
                    .ramps
                    .get(&(svc.key, dest))
                    .map(|ramp| (ramp.step, ramp.steps)),
            };
        }
        OpReason::UnknownDest
    }
}

/// Puts the additions of destinations in `ops` in descending address order (in their
/// places), so that destinations added together end up ascending in the kernel's list, each
/// going to its head.
fn add_largest_first(ops: &mut [Op]) {
    let places: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i], Op::AddDest { .. }))
        .collect();
    let mut adds: Vec<Op> = places.iter().map(|&i| ops[i].clone()).collect();
    adds.sort_by_key(|op| std::cmp::Reverse(op.target()));
    for (i, op) in places.into_iter().zip(adds) {
        ops[i] = op;
    }
}

/// Which destination to move to the head of `order` (the kernel's list, head first) next, so
/// that moving to the head (delete, add) only the destinations that must move, largest first,
/// leaves `wanted` in ascending order; `None` when the wanted destinations are in that order.
///
/// A destination never moved keeps its place relative to the others never moved, behind all
/// those moved: so the ones that stay are the largest `k` for the largest `k` whose members
/// already stand in ascending order, and the others (smaller) move, largest first.
/// Destinations in `order` that are not wanted (about to be deleted) do not count.
fn first_to_move<V>(order: &[SocketAddr], wanted: &BTreeMap<SocketAddr, V>) -> Option<SocketAddr> {
    let listed: Vec<SocketAddr> = order
        .iter()
        .filter(|a| wanted.contains_key(a))
        .copied()
        .collect();
    let mut bound = usize::MAX;
    for addr in wanted.keys().rev() {
        let pos = listed.iter().position(|a| a == addr)?;
        if pos > bound {
            return Some(*addr);
        }
        bound = pos;
    }
    None
}

/// The wait before attempt `attempts + 1`: `first`, doubling with each failure, at most `max`.
fn doubling_backoff(first: Duration, max: Duration, attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempts.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[u8]) -> Vec<SocketAddr> {
        list.iter()
            .map(|n| SocketAddr::from(([10, 0, 0, *n], 80)))
            .collect()
    }

    /// Moves `first_to_move` until it says none, as the engine's operations would.
    fn moves(order: &[u8]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
        let mut order = addrs(order);
        let wanted: BTreeMap<SocketAddr, ()> = order.iter().map(|a| (*a, ())).collect();
        let mut moved = Vec::new();
        while let Some(dest) = first_to_move(&order, &wanted) {
            order.retain(|a| *a != dest);
            order.insert(0, dest);
            moved.push(dest);
            assert!(moved.len() <= wanted.len(), "no progress: {moved:?}");
        }
        (order, moved)
    }

    #[test]
    fn only_destinations_before_the_misplaced_one_move_largest_first() {
        // A server returned (added at the head) in front of two smaller ones.
        assert_eq!(
            moves(&[3, 1, 2, 4, 5]),
            (addrs(&[1, 2, 3, 4, 5]), addrs(&[2, 1]))
        );
        assert_eq!(moves(&[1, 2, 3]), (addrs(&[1, 2, 3]), vec![]));
        assert_eq!(moves(&[5, 1, 6]), (addrs(&[1, 5, 6]), addrs(&[1])));
        // Added one by one in ascending order: the kernel's list is the reverse.
        assert_eq!(
            moves(&[4, 3, 2, 1]),
            (addrs(&[1, 2, 3, 4]), addrs(&[3, 2, 1]))
        );
    }

    #[test]
    fn destinations_about_to_leave_do_not_count() {
        let order = addrs(&[9, 1, 2]);
        let wanted: BTreeMap<SocketAddr, ()> =
            addrs(&[1, 2]).into_iter().map(|a| (a, ())).collect();
        assert_eq!(first_to_move(&order, &wanted), None);
    }
}
