//! Deterministic simulations of lvs-hc under failure, with safety and liveness checked.
//!
//! Each run takes one seed. From it come every knob of the scenario (check interval, rise,
//! fall, quorum, failure policy, connection reuse, http or https), the fault schedule, the engine's jitter and
//! turmoil's network randomness; they are printed before a single-seed run and with any
//! failure, with the line that replays it. The runs drive `lvs_hc::driver::run_with`, the
//! probes and the engine that ship, against simulated servers and the strict in-memory IPVS
//! table.
//!
//! - `LVS_HC_SEED=n` runs seed `n` only (and prints its schedule and trace).
//! - `LVS_HC_SEEDS=n` sweeps seeds `0..n` (default 200).
//!
//! The simulated world itself (the fault schedules, the simulated servers, the turmoil runner,
//! the latency figures) is not in this crate but in the `lvs-hc` library, as
//! `lvs_hc::simulate` (`cli/src/simulate/`, a file per job): the `lvs-hc simulate` command
//! runs it too, and that command is built from the same package as the library, which cannot
//! depend on this crate since this crate depends on it. This crate adds what only tests need:
//! the knobs drawn from a seed, and the safety and liveness checks of every run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc::simulate::{
    latencies, run_schedule, Action, Behaviour, FaultSchedule, ProbeVerdict, Scenario, TraceLine,
    World,
};
use lvs_hc_core::announce::Route;
use lvs_hc_core::rng::SplitMix64;
use lvs_hc_core::{Config, EventKind, Health, Op};

/// The knobs of one run, all drawn from its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// Check interval in milliseconds.
    pub interval_ms: u64,
    /// Consecutive passes to come back.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    /// Quorum for the fallback.
    pub quorum: usize,
    /// `remove` or `zero`.
    pub on_failure: &'static str,
    /// Whether the check keeps its connection between probes (HTTP keep-alive).
    pub reuse_connection: bool,
    /// What the check speaks.
    pub scheme: Scheme,
    /// Whether the check goes through the virtual address (`via_vip`): lvs-hc's probe
    /// services join the table, and the probes wait for theirs (the simulated network
    /// delivers them to the server: see the simulator's stand-ins).
    pub via_vip: bool,
}

/// What a check speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS, with a full handshake for each fresh connection.
    Https,
    /// The gRPC health service over cleartext HTTP/2 (h2c), a fresh connection per probe.
    /// Never drawn from a seed: the grpc sweeps ([`sweep_grpc`]) ask for it.
    Grpc,
}

/// Which checks the runs of a sweep use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// http or https, as each seed draws (the scenarios' sweeps).
    Drawn,
    /// grpc in every run.
    Grpc,
}

impl Knobs {
    /// The knobs of `seed` for runs with `checks`: grpc runs take every knob but the scheme
    /// from the seed, keep no connections (grpc checks never do) and, like https runs, have
    /// intervals of 800 ms or more.
    pub fn of(seed: u64, checks: Checks) -> Knobs {
        let mut knobs = Knobs::from_seed(seed);
        if checks == Checks::Grpc {
            knobs.scheme = Scheme::Grpc;
            knobs.reuse_connection = false;
            knobs.interval_ms = knobs.interval_ms.max(800);
        }
        knobs
    }

    /// The knobs of `seed`.
    pub fn from_seed(seed: u64) -> Knobs {
        let mut rng = SplitMix64::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5);
        let mut knobs = Knobs {
            interval_ms: 500 + 100 * rng.up_to(15),
            rise: 1 + rng.up_to(2) as u32,
            fall: 1 + rng.up_to(2) as u32,
            quorum: 1 + rng.up_to(1) as usize,
            on_failure: if rng.up_to(1) == 0 { "remove" } else { "zero" },
            reuse_connection: rng.up_to(1) == 1,
            // One run in four: handshakes cost CPU, and the sweep runs thousands.
            scheme: if rng.up_to(3) == 0 {
                Scheme::Https
            } else {
                Scheme::Http
            },
            via_vip: false,
        };
        // Drawn last, so that every other knob of a seed stays what it was.
        knobs.via_vip = rng.up_to(3) == 0;
        if knobs.scheme == Scheme::Https {
            // Room for the timeout (see `config`) to outlast the longest https exchange.
            knobs.interval_ms = knobs.interval_ms.max(800);
        }
        knobs
    }

    /// The seed topology (VIP .101, RS1 .179 weight 2, RS2 .180 weight 1, fallback 127.0.0.1)
    /// with these knobs.
    pub fn config(&self) -> Config {
        let text = format!(
            r#"
[daemon]
resync_interval = "2s"
retry_backoff = "100ms"
retry_backoff_max = "1s"

# One of a pair: lvs-hc keeps the kernel's sync daemons.
[sync]
interface = "eth0"
sync_id = 1

# One of many behind ECMP: lvs-hc announces the VIP while the service is ready.
[announce]
table = 100

[[service]]
address = "192.168.0.101:80"
scheduler = "wlc"
quorum = {quorum}
on_failure = "{on_failure}"

[[service.check]]
type = "{scheme}"{kind_keys}
via_vip = {via_vip}
interval = "{interval}ms"
failing_interval = "{fast}ms"
timeout = "{timeout}ms"
rise = {rise}
fall = {fall}
jitter = "{jitter}ms"

[[service.server]]
address = "192.168.0.179:80"
weight = 2

[[service.server]]
address = "192.168.0.180:80"
weight = 1

[[service.fallback]]
address = "127.0.0.1:80"
weight = 5
"#,
            quorum = self.quorum,
            on_failure = self.on_failure,
            via_vip = self.via_vip,
            interval = self.interval_ms,
            fast = self.interval_ms / 2,
            timeout = self.timeout().as_millis(),
            rise = self.rise,
            fall = self.fall,
            jitter = self.interval_ms / 10,
            scheme = match self.scheme {
                Scheme::Http => "http",
                Scheme::Https => "https",
                Scheme::Grpc => "grpc",
            },
            kind_keys = match self.scheme {
                Scheme::Http | Scheme::Https => format!(
                    "\npath = \"/\"\nexpect_body = \"server\"\nreuse_connection = {}{}",
                    self.reuse_connection,
                    // Nothing to verify the simulated servers' test certificate against.
                    if self.scheme == Scheme::Https {
                        "\nverify = false"
                    } else {
                        ""
                    }
                ),
                Scheme::Grpc => "\nservice = \"lvs.Web\"".to_string(),
            },
        );
        Config::from_toml(&text, "sim.toml").expect("the simulation's configuration is valid")
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    /// The knobs and fault schedule, as printed.
    pub description: String,
    /// The trace of schedule actions and engine events, in time order.
    pub trace: Vec<TraceLine>,
}

/// The fault schedule of `scenario` for the knobs of `seed`.
fn schedule(knobs: &Knobs, scenario: Scenario, seed: u64) -> FaultSchedule {
    FaultSchedule::new(knobs.config(), scenario, seed, None)
        .expect("the default duration has room for every scenario's faults")
}

/// The knobs and fault schedule of `scenario` with `seed`, as printed before a run.
pub fn describe(scenario: Scenario, seed: u64) -> String {
    describe_with(scenario, seed, Checks::Drawn)
}

/// [`describe`] for runs with `checks`.
pub fn describe_with(scenario: Scenario, seed: u64, checks: Checks) -> String {
    let knobs = Knobs::of(seed, checks);
    let schedule = schedule(&knobs, scenario, seed);
    format!("knobs: {knobs:?}\n{}", schedule.describe())
}

/// Runs `scenario` with `seed`, checking safety after every step and liveness at the end.
pub fn check(scenario: Scenario, seed: u64) -> Result<Outcome, String> {
    check_with(scenario, seed, Checks::Drawn)
}

/// [`check`] for runs with `checks`.
pub fn check_with(scenario: Scenario, seed: u64, checks: Checks) -> Result<Outcome, String> {
    let knobs = Knobs::of(seed, checks);
    let schedule = schedule(&knobs, scenario, seed);
    let description = describe_with(scenario, seed, checks);
    let initial = (scenario == Scenario::Restart).then(|| {
        // Start against a populated table, as a daemon restart would.
        lvs_hc_core::parse_save(
            "-A -t 192.168.0.101:80 -s wlc\n-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n\
             -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1\n",
        )
        .expect("valid table")
    });
    let mut checker = Checker::new(&schedule, &knobs);
    let world = run_schedule(&schedule, initial, |now, world| {
        checker.after_step(now, world)
    })
    .map_err(|e| format!("{e}\n{description}"))?;
    let world = world.borrow();
    checker
        .at_end(&schedule, &world)
        .map_err(|e| format!("{e}\n{description}"))?;
    let mut trace = world.trace.clone();
    trace.sort_by_key(|l| l.at);
    Ok(Outcome { description, trace })
}

/// Checks one run: safety after every step, liveness at the end.
struct Checker {
    interval: Duration,
    failing_interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
    resync: Duration,
    backoff_max: Duration,
    quorum: usize,
    seen_probes: usize,
    seen_events: usize,
    /// Per server: its run of failed probes.
    failures: BTreeMap<SocketAddr, FailureRun>,
    /// Per server: conclusive results in order, for the hysteresis check.
    results: BTreeMap<SocketAddr, Vec<ProbeVerdict>>,
    ever_failed: BTreeMap<SocketAddr, bool>,
    /// Times at which the schedule disturbs the table or the engine's memory.
    disturbances: Vec<Duration>,
    ops_fail_windows: Vec<Window>,
    restarts: Vec<Duration>,
    last_restart_seen: usize,
    scenario: Scenario,
    reuse_connection: bool,
    scheme: Scheme,
}

/// A server's consecutive failed probes so far.
#[derive(Clone, Copy, Default)]
struct FailureRun {
    /// How many in a row.
    count: u32,
    /// Once `fall` in a row: when it must be out of rotation.
    out_by: Option<Duration>,
}

/// A span of simulated time, ends included.
#[derive(Clone, Copy)]
struct Window {
    from: Duration,
    to: Duration,
}

impl Knobs {
    /// The check's timeout: two fifths of the interval, and for https four fifths, with the
    /// interval at least 800 ms: more than the 0.55 s a fresh https exchange can take in
    /// the simulated network ([`Scheme::longest_exchange`]), so no healthy server times out.
    /// (A fresh http exchange, 0.33 s at most, may outlast the shortest http timeouts: a
    /// healthy server then fails a probe now and then, as on a slow network.)
    pub fn timeout(&self) -> Duration {
        let fifths = match self.scheme {
            Scheme::Http => 2,
            Scheme::Https | Scheme::Grpc => 4,
        };
        Duration::from_millis(self.interval_ms * fifths / 5)
    }
}

impl Scheme {
    /// The most a fresh probe's exchange can take in the simulated network: turmoil's largest
    /// message latency (100 ms) and a tick for each flight of messages (SYN, request, answer;
    /// with TLS the ClientHello and the server's handshake flight besides). A probe under way
    /// when a server goes bad started at most this long before.
    fn longest_exchange(self) -> Duration {
        let flights = match self {
            Scheme::Http => 3,
            Scheme::Https => 5,
            // SYN; the preface, SETTINGS and request; the server's SETTINGS and answer; and
            // one spare for an acknowledgement the answer may follow.
            Scheme::Grpc => 4,
        };
        Duration::from_millis(110) * flights
    }
}

impl Checker {
    fn new(schedule: &FaultSchedule, knobs: &Knobs) -> Checker {
        let mut disturbances = Vec::new();
        let mut ops_fail_windows = Vec::new();
        let mut restarts = Vec::new();
        let mut fail_start = None;
        for a in &schedule.actions {
            match a.action {
                Action::DeleteDest(..)
                | Action::EditWeight(..)
                | Action::Flush
                | Action::StopSyncDaemon(_)
                | Action::Reload(_)
                // An agent's word moves weights and takes servers out; connections hold drains.
                | Action::Agent(..)
                | Action::Connections(..) => disturbances.push(a.at),
                Action::FailOps => fail_start = Some(a.at),
                Action::RestoreOps => {
                    if let Some(from) = fail_start.take() {
                        ops_fail_windows.push(Window { from, to: a.at });
                    }
                }
                Action::Restart => restarts.push(a.at),
                // Administrative states are wanted, not disturbances: the scenarios that use
                // them check their own invariants.
                Action::Set(..) | Action::Admin(_) => {}
            }
        }
        let timing = schedule.config.services[0].servers[0].checks[0].timing;
        Checker {
            interval: timing.interval,
            failing_interval: timing.failing_interval,
            timeout: timing.timeout,
            rise: timing.rise,
            fall: timing.fall,
            resync: schedule.config.daemon.resync_interval,
            backoff_max: schedule.config.daemon.retry_backoff_max,
            quorum: knobs.quorum,
            seen_probes: 0,
            seen_events: 0,
            failures: BTreeMap::new(),
            results: BTreeMap::new(),
            ever_failed: BTreeMap::new(),
            disturbances,
            ops_fail_windows,
            restarts,
            last_restart_seen: 0,
            scenario: schedule.scenario,
            reuse_connection: knobs.reuse_connection,
            scheme: knobs.scheme,
        }
    }

    /// Whether `now` is within `grace` after a moment when the table could not be (or was not)
    /// under lvs-hc's control: operations failing, a hand edit, a restart.
    fn disturbed(&self, now: Duration, grace: Duration) -> bool {
        self.ops_fail_windows
            .iter()
            .any(|w| now >= w.from && now <= w.to + grace)
            || self
                .disturbances
                .iter()
                .any(|t| now >= *t && now <= *t + grace)
            || self.restarts.iter().any(|t| now >= *t && now <= *t + grace)
    }

    fn after_step(&mut self, now: Duration, world: &World) -> Result<(), String> {
        self.check_announced(now, world)?;
        // A restart wipes the engine's counts: the new process starts from no verdict.
        while self.last_restart_seen < self.restarts.len()
            && self.restarts[self.last_restart_seen] <= now
        {
            self.last_restart_seen += 1;
            self.failures.clear();
        }
        for p in &world.probes[self.seen_probes..] {
            if p.verdict == ProbeVerdict::Inconclusive {
                continue;
            }
            // A black hole loses packets; it does not refuse them: a probe into one fails only
            // when its whole timeout has passed.
            if self.scenario == Scenario::Blackhole
                && p.verdict == ProbeVerdict::Fail
                && p.took < self.timeout
            {
                return Err(format!(
                    "honesty: at t+{:?} a probe of {} failed after {:?}, before its timeout of \
                     {:?}, though only black holes strike in this scenario",
                    p.at, p.server, p.took, self.timeout
                ));
            }
            self.results.entry(p.server).or_default().push(p.verdict);
            let run = self.failures.entry(p.server).or_default();
            if p.verdict == ProbeVerdict::Pass {
                *run = FailureRun::default();
            } else {
                self.ever_failed.insert(p.server, true);
                run.count += 1;
                if run.count >= self.fall && run.out_by.is_none() {
                    run.out_by = Some(p.at + self.interval);
                }
            }
        }
        self.seen_probes = world.probes.len();

        // Hysteresis: every transition is justified by the results just before it.
        for e in &world.events[self.seen_events..] {
            let t = e.at;
            match &e.event.kind {
                EventKind::ServerHealth {
                    server,
                    fallback: false,
                    from,
                    to,
                    reason,
                    ..
                } => {
                    let results = self.results.get(server).cloned().unwrap_or_default();
                    let (need, want) = match (from, to) {
                        (_, Health::Down) => (self.fall as usize, ProbeVerdict::Fail),
                        (Health::Down, Health::Up) => (self.rise as usize, ProbeVerdict::Pass),
                        (_, Health::Up) => (1, ProbeVerdict::Pass),
                        _ => continue,
                    };
                    let tail = &results[results.len().saturating_sub(need)..];
                    if tail.len() < need || tail.iter().any(|r| *r != want) {
                        return Err(format!(
                            "safety: at t+{t:?} {server} went {from} -> {to} after results {tail:?} (needs {need} x {want:?})"
                        ));
                    }
                    if self.scenario == Scenario::Blackhole
                        && *to == Health::Down
                        && world.behaviour_of(*server) == Behaviour::Blackholed
                        && !reason.contains("timed out")
                    {
                        return Err(format!(
                            "honesty: at t+{t:?} black-holed {server} went down with `{reason}`, \
                             not a timeout"
                        ));
                    }
                    // A grpc server's fault shows in the reason the probe gives (a server
                    // killed during an exchange resets its connection, or breaks it while the
                    // probe writes).
                    let expected: &[&str] = match (self.scheme, world.behaviour_of(*server)) {
                        (Scheme::Grpc, Behaviour::Error500) => &["NOT_SERVING"],
                        (Scheme::Grpc, Behaviour::WrongPage) => &["grpc-status 12 UNIMPLEMENTED"],
                        (Scheme::Grpc, Behaviour::Killed) => {
                            &["connection refused", "connection reset", "broken pipe"]
                        }
                        _ => &[],
                    };
                    if *to == Health::Down
                        && !expected.is_empty()
                        && !expected.iter().any(|want| reason.contains(want))
                    {
                        return Err(format!(
                            "honesty: at t+{t:?} {} {server} went down with `{reason}`, not \
                             one of {expected:?}",
                            world.behaviour_of(*server).label()
                        ));
                    }
                }
                EventKind::Applied { op, .. } => {
                    let removed = match op {
                        Op::DelDest { dest, .. } => Some(*dest),
                        Op::EditDest { dest, params, .. } if params.weight == 0 => Some(*dest),
                        _ => None,
                    };
                    if let Some(dest) = removed {
                        let configured = world.config.as_ref().is_some_and(|c| {
                            c.services
                                .iter()
                                .any(|s| s.servers.iter().any(|r| r.addr == dest))
                        });
                        if configured && !self.ever_failed.get(&dest).copied().unwrap_or(false) {
                            return Err(format!("safety: at t+{t:?} `{op}` took out {dest}, which never failed a probe"));
                        }
                    }
                }
                _ => {}
            }
        }
        self.seen_events = world.events.len();

        // Out of rotation within one interval of failing `fall` probes in a row.
        let grace = self.backoff_max + self.interval + self.timeout;
        if !self.disturbed(now, grace) {
            for (server, run) in &self.failures {
                let Some(out_by) = run.out_by else { continue };
                if now < out_by {
                    continue;
                }
                let in_rotation = configured_entries(world)
                    .any(|s| s.dests.get(server).is_some_and(|d| d.weight > 0));
                if in_rotation {
                    return Err(format!(
                        "safety: at t+{now:?} {server} is still in rotation, though it failed {} probes in a row by t+{:?}",
                        self.fall,
                        out_by - self.interval
                    ));
                }
            }
        }

        // The fallback is in exactly when fewer than `quorum` real servers are healthy, once
        // every server has a verdict and the table is settled.
        let settled = world.pending_ops == 0
            && world.has_snapshot
            && !self.disturbed(now, self.resync + grace)
            && world
                .status
                .iter()
                .all(|s| s.fallback || s.health != Health::Unknown);
        if settled && !world.status.is_empty() {
            let healthy = world
                .status
                .iter()
                .filter(|s| !s.fallback && s.health == Health::Up)
                .count();
            let fallback: SocketAddr = "127.0.0.1:80".parse().expect("address");
            let in_table = configured_entries(world).any(|s| s.dests.contains_key(&fallback));
            // The quorum in force: a reload may have changed it.
            let quorum = world
                .config
                .as_ref()
                .map_or(self.quorum, |c| c.services[0].quorum);
            if in_table != (healthy < quorum) {
                return Err(format!(
                    "safety: at t+{now:?} the fallback is {} with {healthy} healthy and quorum {quorum}",
                    if in_table { "in" } else { "out" },
                ));
            }
        }
        Ok(())
    }

    /// Safety of `[announce]`: a VIP is never announced while, as the engine sees its servers
    /// after its latest round, none of its services has `max(quorum, 1)` real servers up and
    /// in service (the route operations of a round are carried out within it).
    fn check_announced(&self, now: Duration, world: &World) -> Result<(), String> {
        let Some(config) = world.config.as_ref() else {
            return Ok(());
        };
        for route in world.routes.all() {
            let ready = config.services.iter().any(|svc| {
                svc.key.inet_parts().map(|(_, a)| a.ip()) == Some(route.vip) && {
                    let up = world
                        .status
                        .iter()
                        .filter(|s| {
                            s.service == svc.key
                                && !s.fallback
                                && s.health == Health::Up
                                && s.admin.is_empty()
                                && !s.draining
                                && s.weight > 0
                        })
                        .count();
                    up >= svc.quorum.max(1)
                }
            });
            if !ready {
                return Err(format!(
                    "safety ({}): at t+{now:?} {route} is announced, but no service of {} has \
                     its quorum of healthy servers: {:?}",
                    self.scenario.name(),
                    route.vip,
                    world
                        .status
                        .iter()
                        .map(|s| format!("{} {}", s.server, s.health))
                        .collect::<Vec<_>>()
                ));
            }
        }
        Ok(())
    }

    fn at_end(&self, schedule: &FaultSchedule, world: &World) -> Result<(), String> {
        // lvs-hc's probe services (via_vip) hold each server at weight 1 whatever its health:
        // they must be there, as the configuration says.
        if let Some(config) = world.config.as_ref() {
            for p in &config.probe_services {
                if world.kernel.state.table.services.get(&p.key) != Some(&p.entry()) {
                    return Err(format!(
                        "liveness ({}): after healing, probe service {} for {} is {:?}",
                        self.scenario.name(),
                        p.key,
                        p.server,
                        world.kernel.state.table.services.get(&p.key)
                    ));
                }
            }
        }
        // Liveness: faults ended long enough ago; the table must be what the configuration says.
        let config = world
            .config
            .as_ref()
            .ok_or("liveness: the engine never ran")?;
        let mut problems = Vec::new();
        // Connections: without reuse_connection every request has a connection of its own;
        // with it, kept connections carry most passing probes (a server's connection is
        // replaced only when a probe times out or the connection breaks or closes).
        let passes = world
            .probes
            .iter()
            .filter(|p| p.verdict == ProbeVerdict::Pass)
            .count();
        let reused = world.reused_answers;
        if !self.reuse_connection && reused != 0 {
            problems.push(format!(
                "{reused} requests answered on kept connections without reuse_connection"
            ));
        }
        if self.reuse_connection && reused * 2 < passes {
            problems.push(format!(
                "with reuse_connection only {reused} of {passes} passing probes used a kept \
                 connection"
            ));
        }
        if world.pending_ops != 0 {
            problems.push(format!("{} operations still pending", world.pending_ops));
        }
        // Healed, every real server is healthy: the VIP is announced, and only it.
        if let Some(a) = config.announce {
            let want: Vec<Route> = config
                .services
                .iter()
                .filter_map(|s| s.key.inet_parts().map(|(_, addr)| Route::of(addr.ip(), &a)))
                .collect();
            let have: Vec<Route> = world.routes_running.iter().copied().collect();
            if have != want {
                problems.push(format!("routes {have:?}, should be {want:?}"));
            }
            let left = world.routes.all();
            if !left.is_empty() {
                problems.push(format!("routes {left:?} left after the daemon stopped"));
            }
        }
        for want in config.sync.iter().flat_map(|s| s.daemons()) {
            let running = &world.kernel.state.table.sync;
            if !running.iter().any(|d| d.satisfies(&want)) {
                problems.push(format!("{want} not running (running: {running:?})"));
            }
        }
        for svc in &config.services {
            let Some(entry) = world.kernel.state.table.services.get(&svc.key) else {
                problems.push(format!("service {} missing", svc.key));
                continue;
            };
            for s in &svc.servers {
                match entry.dests.get(&s.addr) {
                    Some(d) if d.weight == s.weight => {}
                    other => problems.push(format!(
                        "{} should be in at weight {}, is {other:?}",
                        s.addr, s.weight
                    )),
                }
            }
            for f in &svc.fallbacks {
                if entry.dests.contains_key(&f.addr) {
                    problems.push(format!("fallback {} still in", f.addr));
                }
            }
            let extra: Vec<_> = entry
                .dests
                .keys()
                .filter(|a| {
                    !svc.servers
                        .iter()
                        .chain(&svc.fallbacks)
                        .any(|s| s.addr == **a)
                })
                .collect();
            if !extra.is_empty() {
                problems.push(format!("destinations not in the configuration: {extra:?}"));
            }
        }
        if self.scenario == Scenario::Blackhole {
            let fast = self.black_hole_detections(schedule, world);
            if !fast.is_empty() {
                return Err(format!("honesty: {}", fast.join("; ")));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "liveness ({}): after healing, {}",
                self.scenario.name(),
                problems.join("; ")
            ))
        }
    }

    /// Detections faster than a black hole allows: `fall` probes must each run to their
    /// timeout, one starting at most every `max(failing_interval, timeout)`, and the first may
    /// have started up to [`Scheme::longest_exchange`] before the black hole.
    fn black_hole_detections(&self, schedule: &FaultSchedule, world: &World) -> Vec<String> {
        let fastest = (self.timeout + self.failing_interval.max(self.timeout) * (self.fall - 1))
            .saturating_sub(self.scheme.longest_exchange());
        latencies(schedule, world)
            .into_iter()
            .flat_map(|(server, l)| l.detection.into_iter().map(move |d| (server, d)))
            .filter(|(_, d)| *d < fastest)
            .map(|(server, d)| {
                format!("black-holed {server} was detected after {d:?}, faster than {fastest:?}")
            })
            .collect()
    }
}

/// The seeds to run, from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seeds {
    /// `LVS_HC_SEED=n`: seed `n` alone, printed in full (knobs, schedule, trace).
    Replay(u64),
    /// `LVS_HC_SEEDS=n`: seeds `0..n` (200 when unset).
    Sweep(u64),
}

impl Seeds {
    /// The seeds `LVS_HC_SEED` or `LVS_HC_SEEDS` ask for.
    pub fn from_env() -> Seeds {
        if let Ok(s) = std::env::var("LVS_HC_SEED") {
            return Seeds::Replay(s.parse().expect("LVS_HC_SEED is a number"));
        }
        let n = std::env::var("LVS_HC_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        Seeds::Sweep(n)
    }

    /// Every seed, in order.
    pub fn list(&self) -> Vec<u64> {
        match *self {
            Seeds::Replay(seed) => vec![seed],
            Seeds::Sweep(n) => (0..n).collect(),
        }
    }
}

/// Sweeps the seeds for `scenario`; panics with the replay line on the first failure. Also
/// checks determinism: the first seeds, and the first of each [`Scheme`], run twice must give
/// identical traces.
pub fn sweep(scenario: Scenario, test_name: &str) {
    sweep_with(scenario, Checks::Drawn, "scenarios", test_name);
}

/// [`sweep`] with a grpc check in every run (the simulated servers' gRPC health service over
/// h2c), for the test `test_name` of sim/tests/grpc.rs.
pub fn sweep_grpc(scenario: Scenario, test_name: &str) {
    sweep_with(scenario, Checks::Grpc, "grpc", test_name);
}

fn sweep_with(scenario: Scenario, checks: Checks, test_file: &str, test_name: &str) {
    let seeds = Seeds::from_env();
    let replay_one = matches!(seeds, Seeds::Replay(_));
    let list = seeds.list();
    let mut out = String::new();
    let mut schemes_seen = Vec::new();
    for (i, &seed) in list.iter().enumerate() {
        let scheme = Knobs::of(seed, checks).scheme;
        let first_of_scheme = !schemes_seen.contains(&scheme);
        schemes_seen.push(scheme);
        let replay = format!("reproduce with: LVS_HC_SEED={seed} cargo test -p lvs-hc-sim --test {test_file} {test_name}");
        if replay_one {
            println!("{}", describe_with(scenario, seed, checks));
        }
        match check_with(scenario, seed, checks) {
            Err(e) => panic!(
                "scenario {} failed with seed {seed}:\n{e}\n{replay}",
                scenario.name()
            ),
            Ok(outcome) => {
                if replay_one {
                    for l in &outcome.trace {
                        let _ = writeln!(out, "t+{:>8.3}s {}", l.at.as_secs_f64(), l.text);
                    }
                    println!("{out}");
                }
                if i < 3 || first_of_scheme || replay_one {
                    let again =
                        check_with(scenario, seed, checks).expect("second run of a passing seed");
                    assert_eq!(
                        outcome.trace, again.trace,
                        "seed {seed} is not deterministic\n{replay}"
                    );
                }
            }
        }
    }
    println!("scenario {}: {} seeds passed", scenario.name(), list.len());
}

/// The kernel's entries of the configured services: lvs-hc's probe services (via_vip) hold
/// each server whatever its health, and carry no clients.
fn configured_entries(world: &World) -> impl Iterator<Item = &lvs_hc_core::ServiceEntry> {
    let config = world.config.as_ref();
    world
        .kernel
        .state
        .table
        .services
        .iter()
        .filter(move |(k, _)| config.is_none_or(|c| c.services.iter().any(|s| s.key == **k)))
        .map(|(_, e)| e)
}
