//! Deterministic simulation of lvs-hc in turmoil: the real driver and probes, simulated real
//! servers that fail on a schedule drawn from a seed, and the strict in-memory IPVS table.
//!
//! One seed fixes everything: the fault plan, the engine's jitter and turmoil's network
//! randomness. The same seed gives the same trace, byte for byte.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};
use lvs_hc_core::config::{CheckKind, Server};
use lvs_hc_core::rng::SplitMix64;
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{
    Config, DestParams, Engine, Event, EventKind, Health, Op, ProbeOutcome, ProbeRequest,
    ServerStatus, ServiceKey,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::driver::{run_with, Observer, RunOptions};
use crate::probe::Connect;

/// How a simulated server behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers as the check expects.
    Healthy,
    /// Killed: connections are refused.
    Killed,
    /// Unreachable: packets are dropped, so probes time out.
    Blackholed,
    /// Accepts and answers only after far longer than any timeout.
    Slow,
    /// Answers `500 Internal Server Error`.
    Error500,
    /// Answers 200 with the wrong page.
    WrongPage,
}

impl Behaviour {
    fn label(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Killed => "killed",
            Behaviour::Blackholed => "black-holed",
            Behaviour::Slow => "slow",
            Behaviour::Error500 => "answering 500",
            Behaviour::WrongPage => "serving the wrong page",
        }
    }
}

/// The scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// Servers killed and restarted.
    Kill,
    /// Servers black-holed and reachable again.
    Blackhole,
    /// Servers slower than the timeout.
    Slow,
    /// Servers answering 500.
    Error500,
    /// Servers serving the wrong page.
    WrongPage,
    /// Servers flapping at random periods, shorter and longer than the interval.
    Flap,
    /// Every server down, then one back.
    AllDown,
    /// The table changed behind lvs-hc's back.
    Drift,
    /// IPVS operations failing for a while.
    OpsFail,
    /// The daemon restarted against its own populated table.
    Restart,
    /// The configuration reloaded mid-run: a server added, one removed, a weight changed.
    Reload,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 11] = [
        Scenario::Kill,
        Scenario::Blackhole,
        Scenario::Slow,
        Scenario::Error500,
        Scenario::WrongPage,
        Scenario::Flap,
        Scenario::AllDown,
        Scenario::Drift,
        Scenario::OpsFail,
        Scenario::Restart,
        Scenario::Reload,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Kill => "kill",
            Scenario::Blackhole => "blackhole",
            Scenario::Slow => "slow",
            Scenario::Error500 => "error500",
            Scenario::WrongPage => "wrong-page",
            Scenario::Flap => "flap",
            Scenario::AllDown => "all-down",
            Scenario::Drift => "drift",
            Scenario::OpsFail => "ops-fail",
            Scenario::Restart => "restart",
            Scenario::Reload => "reload",
        }
    }

    /// The scenario of a command-line name.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A change the plan makes at a point in simulated time.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A server starts behaving so.
    Set(SocketAddr, Behaviour),
    /// Someone deletes a destination by hand.
    DeleteDest(ServiceKey, SocketAddr),
    /// Someone edits a destination's weight by hand.
    EditWeight(ServiceKey, SocketAddr, u32),
    /// Someone flushes the table (`ipvsadm -C`).
    Flush,
    /// IPVS operations start (true) or stop (false) failing.
    OpsFail(bool),
    /// The daemon is restarted.
    Restart,
    /// A new configuration is loaded.
    Reload(Box<Config>),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Set(s, b) => write!(f, "{s} becomes {}", b.label()),
            Action::DeleteDest(k, d) => {
                write!(f, "by hand: ipvsadm -d {} -r {d}", k.ipvsadm_args())
            }
            Action::EditWeight(k, d, w) => {
                write!(f, "by hand: ipvsadm -e {} -r {d} -w {w}", k.ipvsadm_args())
            }
            Action::Flush => write!(f, "by hand: ipvsadm -C"),
            Action::OpsFail(true) => write!(f, "IPVS operations start failing"),
            Action::OpsFail(false) => write!(f, "IPVS operations work again"),
            Action::Restart => write!(f, "lvs-hc restarts"),
            Action::Reload(_) => write!(f, "configuration reloaded"),
        }
    }
}

/// A simulation: configuration, seed, duration, and the plan drawn from the seed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The configuration under test.
    pub config: Config,
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Simulated time in all.
    pub duration: Duration,
    /// When every fault is over (the healed phase starts).
    pub heal_at: Duration,
    /// The timed actions, in order.
    pub actions: Vec<(Duration, Action)>,
}

fn rand_duration(rng: &mut SplitMix64, lo: Duration, hi: Duration) -> Duration {
    let span = hi.saturating_sub(lo).as_millis() as u64;
    lo + Duration::from_millis(rng.up_to(span))
}

/// The real servers the simulation can run (address services with network checks).
pub fn simulated_servers(config: &Config) -> Vec<SocketAddr> {
    let set: BTreeSet<SocketAddr> = config
        .services
        .iter()
        .flat_map(|s| s.servers.iter().map(|r| r.addr))
        .collect();
    set.into_iter().collect()
}

/// Why a configuration cannot be simulated.
pub fn unsupported(config: &Config) -> Option<String> {
    for svc in &config.services {
        for s in svc.servers.iter().chain(&svc.fallbacks) {
            if !s.addr.is_ipv4() {
                return Some(format!("{}: the simulator runs IPv4 servers only", s.addr));
            }
            for c in &s.checks {
                match &c.kind {
                    CheckKind::Exec(_) => {
                        return Some(format!(
                            "{}: exec checks run real programs and cannot be simulated",
                            s.addr
                        ))
                    }
                    CheckKind::Https(_) => {
                        return Some(format!(
                            "{}: https checks cannot be simulated yet; use http",
                            s.addr
                        ))
                    }
                    CheckKind::Http(h) if h.expect_body_regex.is_some() => {
                        return Some(format!(
                            "{}: expect_body_regex cannot be simulated; use expect_body",
                            s.addr
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    None
}

/// The longest check interval and timeout of a configuration, and its largest rise and fall.
fn timing_bounds(config: &Config) -> (Duration, Duration, u32, u32) {
    let mut interval = Duration::from_secs(1);
    let mut timeout = Duration::ZERO;
    let (mut rise, mut fall) = (1, 1);
    for s in config.services.iter().flat_map(|s| s.servers.iter()) {
        for c in &s.checks {
            interval = interval.max(c.timing.interval);
            timeout = timeout.max(c.timing.timeout);
            rise = rise.max(c.timing.rise);
            fall = fall.max(c.timing.fall);
        }
    }
    (interval, timeout, rise, fall)
}

impl Plan {
    /// Draws the plan of `scenario` for `config` from `seed`. `duration` of zero picks one long
    /// enough for several faults and recoveries at the configuration's own intervals.
    pub fn new(config: Config, scenario: Scenario, seed: u64, duration: Duration) -> Plan {
        let mut rng = SplitMix64::new(seed ^ 0x5EED_F1A7_5EED_F1A7);
        let (interval, timeout, rise, fall) = timing_bounds(&config);
        let cycle = interval * (rise + fall + 2) + timeout;
        let duration = if duration.is_zero() {
            cycle * 8 + config.daemon.resync_interval * 2
        } else {
            duration
        };
        // The last quarter (at least long enough to recover) is fault-free: the healed phase.
        let heal_at =
            duration.saturating_sub((duration / 4).max(cycle * 2 + config.daemon.resync_interval));
        let servers = simulated_servers(&config);
        let first_service = config.services[0].key;
        let mut actions = Vec::new();
        let bad = |scenario: Scenario, rng: &mut SplitMix64| match scenario {
            Scenario::Kill => Behaviour::Killed,
            Scenario::Blackhole => Behaviour::Blackholed,
            Scenario::Slow => Behaviour::Slow,
            Scenario::Error500 => Behaviour::Error500,
            Scenario::WrongPage => Behaviour::WrongPage,
            _ => [
                Behaviour::Killed,
                Behaviour::Blackholed,
                Behaviour::Error500,
            ][rng.up_to(2) as usize],
        };
        let warmup = cycle;
        match scenario {
            Scenario::Kill
            | Scenario::Blackhole
            | Scenario::Slow
            | Scenario::Error500
            | Scenario::WrongPage => {
                // Each server fails at random moments for random spells, not all at once.
                for s in &servers {
                    let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                    while t < heal_at {
                        let spell = rand_duration(&mut rng, cycle / 2, cycle * 2);
                        actions.push((t, Action::Set(*s, bad(scenario, &mut rng))));
                        let back = (t + spell).min(heal_at);
                        actions.push((back, Action::Set(*s, Behaviour::Healthy)));
                        t = back + rand_duration(&mut rng, cycle, cycle * 3);
                    }
                }
            }
            Scenario::Flap => {
                for s in &servers {
                    let mut t = rand_duration(&mut rng, warmup, warmup + interval);
                    let mut down = false;
                    // Periods from a fifth of the interval to three intervals.
                    while t < heal_at {
                        down = !down;
                        let b = if down {
                            bad(scenario, &mut rng)
                        } else {
                            Behaviour::Healthy
                        };
                        actions.push((t, Action::Set(*s, b)));
                        t += rand_duration(&mut rng, interval / 5, interval * 3);
                    }
                    actions.push((heal_at, Action::Set(*s, Behaviour::Healthy)));
                }
            }
            Scenario::AllDown => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t + cycle * 2 < heal_at {
                    for s in &servers {
                        actions.push((t, Action::Set(*s, bad(scenario, &mut rng))));
                    }
                    let back = t + rand_duration(&mut rng, cycle, cycle * 2);
                    let first = servers[rng.up_to(servers.len() as u64 - 1) as usize];
                    actions.push((back, Action::Set(first, Behaviour::Healthy)));
                    let all_back = (back + rand_duration(&mut rng, cycle, cycle * 2)).min(heal_at);
                    for s in &servers {
                        actions.push((all_back, Action::Set(*s, Behaviour::Healthy)));
                    }
                    t = all_back + rand_duration(&mut rng, cycle, cycle * 2);
                }
            }
            Scenario::Drift => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t < heal_at {
                    let s = servers[rng.up_to(servers.len() as u64 - 1) as usize];
                    let service = config
                        .services
                        .iter()
                        .find(|v| v.servers.iter().any(|r| r.addr == s))
                        .map_or(first_service, |v| v.key);
                    let action = match rng.up_to(2) {
                        0 => Action::DeleteDest(service, s),
                        1 => Action::EditWeight(service, s, 1 + rng.up_to(40) as u32),
                        _ => Action::Flush,
                    };
                    actions.push((t, action));
                    t += rand_duration(
                        &mut rng,
                        config.daemon.resync_interval * 2,
                        config.daemon.resync_interval * 4,
                    );
                }
            }
            Scenario::OpsFail => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t < heal_at {
                    actions.push((t, Action::OpsFail(true)));
                    let s = servers[rng.up_to(servers.len() as u64 - 1) as usize];
                    actions.push((t, Action::Set(s, bad(scenario, &mut rng))));
                    let back = (t + rand_duration(&mut rng, cycle / 2, cycle * 2)).min(heal_at);
                    actions.push((back, Action::OpsFail(false)));
                    actions.push((back, Action::Set(s, Behaviour::Healthy)));
                    t = back + rand_duration(&mut rng, cycle, cycle * 2);
                }
            }
            Scenario::Restart => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t < heal_at {
                    actions.push((t, Action::Restart));
                    t += rand_duration(&mut rng, cycle, cycle * 3);
                }
            }
            Scenario::Reload => {
                let t = rand_duration(&mut rng, warmup, warmup + cycle).min(heal_at);
                let mut next = config.clone();
                let svc = &mut next.services[0];
                if let Some(s) = svc.servers.first_mut() {
                    s.weight = s.weight % 100 + 1 + rng.up_to(5) as u32;
                }
                if svc.servers.len() > 1 {
                    svc.servers.pop();
                    svc.quorum = svc.quorum.min(svc.servers.len());
                }
                let mut added: Server = svc.servers[0].clone();
                let base = match added.addr.ip() {
                    IpAddr::V4(v4) => v4.octets(),
                    IpAddr::V6(_) => [10, 0, 0, 1],
                };
                added.addr = SocketAddr::new(
                    Ipv4Addr::new(base[0], base[1], base[2], base[3].wrapping_add(100)).into(),
                    added.addr.port(),
                );
                added.weight = 3;
                svc.servers.push(added);
                actions.push((t, Action::Reload(Box::new(next))));
            }
        }
        actions.sort_by_key(|(t, _)| *t);
        Plan {
            config,
            scenario,
            seed,
            duration,
            heal_at,
            actions,
        }
    }

    /// Every address the simulation must run a server for (including ones a reload adds).
    pub fn server_addrs(&self) -> Vec<SocketAddr> {
        let mut set: BTreeSet<SocketAddr> = simulated_servers(&self.config).into_iter().collect();
        for (_, a) in &self.actions {
            if let Action::Reload(c) = a {
                set.extend(simulated_servers(c));
            }
        }
        set.into_iter().collect()
    }

    /// The knobs drawn from the seed, for printing before a run.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {} seed {} duration {} healed from t+{}",
            self.scenario.name(),
            self.seed,
            format_duration(self.duration),
            format_duration(self.heal_at)
        );
        for (t, a) in &self.actions {
            let _ = writeln!(out, "  plan t+{:>9}  {a}", fmt_t(*t));
        }
        out
    }
}

/// `12.345s`: simulated time as the reports print it.
pub fn fmt_t(t: Duration) -> String {
    format!("{}.{:03}s", t.as_secs(), t.subsec_millis())
}

/// What the simulation shares between its hosts and its controller.
#[derive(Default)]
pub struct World {
    /// The kernel table.
    pub kernel: MemoryBackend,
    /// Whether IPVS operations fail now.
    pub ops_fail: bool,
    /// Each server's behaviour now.
    pub behaviour: BTreeMap<SocketAddr, Behaviour>,
    /// When each server last changed behaviour.
    pub changed_at: BTreeMap<SocketAddr, Duration>,
    /// The trace: timestamped lines (plan actions, events).
    pub trace: Vec<(Duration, String)>,
    /// Every engine event with its simulated time.
    pub events: Vec<(Duration, Event)>,
    /// Every probe result: when, which server, and whether it passed (None: inconclusive).
    pub probes: Vec<(Duration, SocketAddr, Option<bool>)>,
    /// The engine's view after its latest round.
    pub status: Vec<ServerStatus>,
    /// Operations in flight after the latest round.
    pub pending_ops: usize,
    /// Whether the engine has read the table at least once (in its current life).
    pub has_snapshot: bool,
    /// Set to restart the daemon.
    pub restart: bool,
    /// The configuration in force.
    pub config: Option<Config>,
    /// Connections the simulated servers accepted.
    pub connections: usize,
    /// Requests answered on a connection that had answered one before (keep-alive).
    pub reused_answers: usize,
}

/// A shared handle on the world.
pub type Shared = Rc<RefCell<World>>;

/// Connections through turmoil's simulated network.
#[derive(Clone, Copy, Debug, Default)]
pub struct TurmoilConnect;

impl Connect for TurmoilConnect {
    type Stream = turmoil::net::TcpStream;

    async fn connect(
        &self,
        target: SocketAddr,
        _source: Option<IpAddr>,
    ) -> std::io::Result<Self::Stream> {
        turmoil::net::TcpStream::connect(target).await
    }
}

/// The in-memory kernel table, failing operations while the plan says so.
#[derive(Clone)]
pub struct SimBackend(pub Shared);

impl IpvsBackend for SimBackend {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        self.0.borrow_mut().kernel.snapshot()
    }
    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        let mut w = self.0.borrow_mut();
        if w.ops_fail {
            return Err(IpvsError::Invalid("simulated kernel failure".into()));
        }
        w.kernel.apply(op)
    }
    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        self.0.borrow_mut().kernel.info()
    }
    fn flush(&mut self) -> Result<(), IpvsError> {
        self.0.borrow_mut().kernel.flush()
    }
}

struct SimObserver {
    world: Shared,
    origin: tokio::time::Instant,
}

impl SimObserver {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

impl Observer for SimObserver {
    fn on_event(&mut self, event: &Event) {
        let t = self.now();
        let mut w = self.world.borrow_mut();
        w.trace.push((t, event.kind.to_string()));
        w.events.push((t, event.clone()));
    }
    fn on_probe(&mut self, req: &ProbeRequest, outcome: &ProbeOutcome, _took: Duration) {
        let t = self.now();
        let verdict = match outcome {
            ProbeOutcome::Pass { .. } => Some(true),
            ProbeOutcome::Fail { .. } => Some(false),
            ProbeOutcome::Inconclusive { .. } | ProbeOutcome::DirectorFault { .. } => None,
        };
        self.world
            .borrow_mut()
            .probes
            .push((t, req.server, verdict));
    }
    fn on_engine(&mut self, engine: &Engine) {
        let mut w = self.world.borrow_mut();
        w.status = engine.status();
        w.pending_ops = engine.pending_ops();
        w.has_snapshot = engine.has_snapshot();
        w.config = Some(engine.config().clone());
    }
}

async fn serve(world: Shared, addr: SocketAddr, body: String) -> turmoil::Result {
    let listener =
        turmoil::net::TcpListener::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port()))
            .await?;
    let mut listener = Some(listener);
    loop {
        let behaviour = world
            .borrow()
            .behaviour
            .get(&addr)
            .copied()
            .unwrap_or(Behaviour::Healthy);
        if behaviour == Behaviour::Killed {
            // A dead process: nothing listens, connections are refused.
            listener = None;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if listener.is_none() {
            listener = Some(
                turmoil::net::TcpListener::bind(SocketAddr::new(
                    Ipv4Addr::UNSPECIFIED.into(),
                    addr.port(),
                ))
                .await?,
            );
        }
        let l = listener.as_ref().expect("listening");
        tokio::select! {
            biased;
            accepted = l.accept() => {
                let (stream, _) = accepted?;
                world.borrow_mut().connections += 1;
                let world = world.clone();
                let body = body.clone();
                tokio::task::spawn_local(async move {
                    let _ = answer(world, addr, stream, body).await;
                });
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

/// Answers the requests of one connection as the server behaves at the time, keeping the
/// connection open between requests unless the request says `Connection: close` (probes with
/// `reuse_connection` keep it). A killed server's open connections close with it.
async fn answer(
    world: Shared,
    addr: SocketAddr,
    mut stream: turmoil::net::TcpStream,
    body: String,
) -> std::io::Result<()> {
    let behaviour = |world: &Shared| {
        world
            .borrow()
            .behaviour
            .get(&addr)
            .copied()
            .unwrap_or(Behaviour::Healthy)
    };
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let mut answered = false;
    loop {
        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
            // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
            let read = tokio::select! {
                biased;
                n = stream.read(&mut buf) => Some(n?),
                _ = tokio::time::sleep(Duration::from_millis(10)) => None,
            };
            match read {
                Some(0) => return Ok(()),
                Some(n) => seen.extend_from_slice(&buf[..n]),
                None if behaviour(&world) == Behaviour::Killed => return Ok(()),
                None => {}
            }
            continue;
        };
        let request: Vec<u8> = seen.drain(..end + 4).collect();
        let head = request.starts_with(b"HEAD ");
        let close = String::from_utf8_lossy(&request)
            .to_ascii_lowercase()
            .contains("connection: close");
        let (status, text) = match behaviour(&world) {
            Behaviour::Healthy => ("200 OK", body.clone()),
            Behaviour::Error500 => ("500 Internal Server Error", "oops".to_string()),
            Behaviour::WrongPage => ("200 OK", "<html>default page</html>".to_string()),
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                ("200 OK", body.clone())
            }
            Behaviour::Blackholed | Behaviour::Killed => return Ok(()),
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n",
            text.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if !head {
            response.push_str(&text);
        }
        stream.write_all(response.as_bytes()).await?;
        if answered {
            world.borrow_mut().reused_answers += 1;
        }
        answered = true;
        if close {
            return stream.shutdown().await;
        }
    }
}

/// The director's address in the simulation (any address no server uses).
pub const DIRECTOR: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 254);

/// Runs a plan to its end; `after_step` sees the world after every simulation step and may
/// stop the run by returning an error (a violated invariant).
pub fn run_plan(
    plan: &Plan,
    initial_table: Option<lvs_hc_core::Table>,
    mut after_step: impl FnMut(Duration, &World) -> Result<(), String>,
) -> Result<Shared, String> {
    let world: Shared = Rc::new(RefCell::new(World::default()));
    if let Some(t) = initial_table {
        world.borrow_mut().kernel.state.table = t;
    }
    let mut sim = turmoil::Builder::new()
        .rng_seed(plan.seed)
        .simulation_duration(plan.duration + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(5))
        .build();
    for (i, addr) in plan.server_addrs().into_iter().enumerate() {
        let body =
            expected_body(&plan.config, addr).unwrap_or_default() + &format!(" server-{}", i + 1);
        let w = world.clone();
        sim.host(addr.ip(), move || serve(w.clone(), addr, body.clone()));
    }
    let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let world = world.clone();
        let config = plan.config.clone();
        let seed = plan.seed;
        let end = plan.duration;
        sim.client(DIRECTOR, async move {
            let origin = tokio::time::Instant::now();
            let mut config = config;
            let mut reloads = Some(reload_rx);
            let mut life = 0u64;
            loop {
                let w = world.clone();
                let stop = async move {
                    loop {
                        if origin.elapsed() >= end || w.borrow().restart {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                };
                let options = RunOptions {
                    fd_budget: None,
                    seed: Some(seed.wrapping_add(life)),
                    queries: None,
                    reloads: reloads.take(),
                    observer: SimObserver {
                        world: world.clone(),
                        origin,
                    },
                };
                let backend = SimBackend(world.clone());
                let engine = run_with(config.clone(), TurmoilConnect, backend, stop, options).await;
                config = engine.config().clone();
                let restart = std::mem::take(&mut world.borrow_mut().restart);
                if !restart || origin.elapsed() >= end {
                    return Ok(());
                }
                life += 1;
                world.borrow_mut().has_snapshot = false;
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Config>();
                // Reloads after a restart are not part of any plan; keep the channel shape.
                drop(tx);
                reloads = Some(rx);
            }
        });
    }
    let mut actions = plan.actions.iter().peekable();
    loop {
        let now = sim.elapsed();
        while let Some((t, action)) = actions.peek() {
            if *t > now {
                break;
            }
            let mut w = world.borrow_mut();
            w.trace.push((*t, format!("plan: {action}")));
            match action {
                Action::Set(s, b) => {
                    let before = w.behaviour.insert(*s, *b).unwrap_or(Behaviour::Healthy);
                    if before != *b {
                        w.changed_at.insert(*s, *t);
                    }
                    drop(w);
                    if *b == Behaviour::Blackholed {
                        sim.partition(DIRECTOR, s.ip());
                    } else if before == Behaviour::Blackholed {
                        sim.repair(DIRECTOR, s.ip());
                    }
                }
                Action::DeleteDest(k, d) => {
                    let _ = w.kernel.apply(&Op::DelDest {
                        service: *k,
                        dest: *d,
                    });
                }
                Action::EditWeight(k, d, weight) => {
                    let cur = w.kernel.state.table.dest(k, d).copied();
                    if let Some(p) = cur {
                        let _ = w.kernel.apply(&Op::EditDest {
                            service: *k,
                            dest: *d,
                            params: DestParams {
                                weight: *weight,
                                ..p
                            },
                        });
                    }
                }
                Action::Flush => {
                    let _ = w.kernel.flush();
                }
                Action::OpsFail(on) => w.ops_fail = *on,
                Action::Restart => w.restart = true,
                Action::Reload(c) => {
                    let _ = reload_tx.send((**c).clone());
                }
            }
            actions.next();
        }
        let finished = sim.step().map_err(|e| format!("simulation error: {e}"))?;
        if let Err(e) = after_step(sim.elapsed(), &world.borrow()) {
            let w = world.borrow();
            let mut trace = w.trace.clone();
            trace.sort_by_key(|(t, _)| *t);
            let mut tail = String::new();
            for (t, line) in &trace[trace.len().saturating_sub(25)..] {
                let _ = writeln!(tail, "  t+{:>9}  {line}", fmt_t(*t));
            }
            return Err(format!(
                "{e}
the trace up to then (last 25 lines):
{tail}"
            ));
        }
        if finished || sim.elapsed() >= plan.duration + Duration::from_millis(50) {
            break;
        }
    }
    Ok(world)
}

fn expected_body(config: &Config, addr: SocketAddr) -> Option<String> {
    config
        .services
        .iter()
        .flat_map(|s| s.servers.iter())
        .filter(|s| s.addr == addr)
        .flat_map(|s| s.checks.iter())
        .find_map(|c| match &c.kind {
            CheckKind::Http(h) => h.expect_body.clone(),
            _ => None,
        })
}

/// Detection and recovery latencies per server, from a finished run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latencies {
    /// Time from a server going bad to lvs-hc declaring it down.
    pub detection: Vec<Duration>,
    /// Time from a server coming back to lvs-hc declaring it up.
    pub recovery: Vec<Duration>,
}

/// Matches each fault in the plan with the transition that followed it.
pub fn latencies(plan: &Plan, world: &World) -> BTreeMap<SocketAddr, Latencies> {
    let mut out: BTreeMap<SocketAddr, Latencies> = BTreeMap::new();
    let mut bad_since: BTreeMap<SocketAddr, Duration> = BTreeMap::new();
    let mut good_since: BTreeMap<SocketAddr, Duration> = BTreeMap::new();
    let mut marks: Vec<(Duration, u8, SocketAddr, bool)> = Vec::new();
    for (t, a) in &plan.actions {
        if let Action::Set(s, b) = a {
            marks.push((*t, 0, *s, *b == Behaviour::Healthy));
        }
    }
    for (t, e) in &world.events {
        if let EventKind::ServerHealth {
            server,
            to,
            fallback: false,
            ..
        } = &e.kind
        {
            marks.push((*t, 1, *server, *to == Health::Up));
        }
    }
    marks.sort_by_key(|(t, order, _, _)| (*t, *order));
    let mut seen_down: BTreeSet<SocketAddr> = BTreeSet::new();
    for (t, kind, s, good) in marks {
        match (kind, good) {
            (0, false) => {
                bad_since.entry(s).or_insert(t);
                good_since.remove(&s);
            }
            (0, true) => {
                if bad_since.remove(&s).is_some() {
                    good_since.insert(s, t);
                }
            }
            (_, false) => {
                if let Some(since) = bad_since.get(&s) {
                    if seen_down.insert(s) {
                        out.entry(s).or_default().detection.push(t - *since);
                    }
                }
            }
            (_, true) => {
                seen_down.remove(&s);
                if let Some(since) = good_since.remove(&s) {
                    out.entry(s).or_default().recovery.push(t - since);
                }
            }
        }
    }
    out
}

/// Formats `[min, median, max]` of durations, or `-`.
pub fn spread(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "-".into();
    }
    let mut v = ds.to_vec();
    v.sort();
    format!(
        "{} / {} / {}",
        fmt_t(v[0]),
        fmt_t(v[v.len() / 2]),
        fmt_t(v[v.len() - 1])
    )
}
