//! The scenarios, and the fault schedule each draws from a seed: which server misbehaves how,
//! and when, and what else happens to the table and the daemon.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use lvs_hc_core::admin::{AdminChange, AdminState};
use lvs_hc_core::config::Server;
use lvs_hc_core::rng::SplitMix64;
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{Config, ServiceKey, SyncRole};

use super::fmt_t;
use super::servers::{AgentReply, Behaviour};
use super::stand_ins::{unreachable, SimulatedConfig, StandIn};

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
    /// Nothing drawn from the seed: only the actions a test scripts
    /// ([`FaultSchedule::scripted`]). Not offered by `lvs-hc simulate`.
    Scripted,
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
            Scenario::Scripted => "scripted",
        }
    }

    /// The scenario of a command-line name.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// How late after the warm-up this scenario's first fault may start, and how much of the
    /// faulty phase it needs after that start: the loops in [`FaultSchedule::new`] draw no
    /// fault at all when the faulty phase ends sooner.
    fn first_fault(self, pace: &Pace) -> FirstFault {
        let cycle = pace.cycle();
        match self {
            Scenario::Flap => FirstFault {
                latest: pace.interval,
                then: Duration::ZERO,
            },
            Scenario::AllDown => FirstFault {
                latest: cycle,
                then: cycle * 2,
            },
            _ => FirstFault {
                latest: cycle,
                then: Duration::ZERO,
            },
        }
    }
}

/// When a scenario's first fault comes, relative to the end of the warm-up.
struct FirstFault {
    /// The latest it may start.
    latest: Duration,
    /// How long the faulty phase must go on after it starts.
    then: Duration,
}

/// A change the schedule makes at a point in simulated time.
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
    /// Someone stops a connection sync daemon (`ipvsadm --stop-daemon`).
    StopSyncDaemon(SyncRole),
    /// IPVS operations start failing.
    FailOps,
    /// IPVS operations work again.
    RestoreOps,
    /// The daemon is restarted.
    Restart,
    /// A new configuration is loaded.
    Reload(Box<Config>),
    /// An operator's command (or a maintenance file) changes a server's administrative state.
    /// Kept like the daemon's state file: a restart brings it back (see
    /// [`super::World::admin`]).
    Admin(AdminChange),
    /// A server's agent (its `agent` checks' peer) answers so from now on (a server's agent
    /// says `up` until told otherwise).
    Agent(SocketAddr, AgentReply),
    /// The kernel counts this many active connections to a destination (until the
    /// destination is removed): what holds a drain open.
    Connections(ServiceKey, SocketAddr, u32),
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
            Action::StopSyncDaemon(role) => write!(f, "by hand: ipvsadm --stop-daemon {role}"),
            Action::FailOps => write!(f, "IPVS operations start failing"),
            Action::RestoreOps => write!(f, "IPVS operations work again"),
            Action::Restart => write!(f, "lvs-hc restarts"),
            Action::Reload(_) => write!(f, "configuration reloaded"),
            Action::Admin(c) => {
                let by = c.source.label();
                match c.state {
                    AdminState::Enabled => write!(f, "{by}: enable {} in {}", c.server, c.service)?,
                    AdminState::Drain => write!(f, "{by}: drain {} in {}", c.server, c.service)?,
                    AdminState::Disabled => {
                        write!(f, "{by}: disable {} in {}", c.server, c.service)?
                    }
                }
                if !c.reason.is_empty() {
                    write!(f, " ({})", c.reason)?;
                }
                Ok(())
            }
            Action::Agent(s, reply) => write!(f, "{s}'s agent {reply}"),
            Action::Connections(k, d, n) => write!(
                f,
                "the kernel counts {n} active connections to {d} in {}",
                k.ipvsadm_args()
            ),
        }
    }
}

/// An action and when it happens.
#[derive(Clone, Debug, PartialEq)]
pub struct TimedAction {
    /// Simulated time since the start.
    pub at: Duration,
    /// What happens.
    pub action: Action,
}

/// A simulation: configuration, seed, duration, and the faults drawn from the seed.
#[derive(Clone, Debug)]
pub struct FaultSchedule {
    /// The configuration under test, as simulated: with the [`StandIn`]s in place.
    pub config: Config,
    /// The checks the simulation runs differently from the configuration, and how.
    pub stand_ins: Vec<StandIn>,
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Simulated time in all.
    pub duration: Duration,
    /// When every fault is over (the healed phase starts).
    pub heal_at: Duration,
    /// The timed actions, in order.
    pub actions: Vec<TimedAction>,
}

/// Why a simulation cannot be drawn.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The duration asked for leaves no room for a fault: ask for a longer one, or none.
    #[error(transparent)]
    TooShort(TooShort),
    /// A checked server the simulated network cannot reach (the director's own IPv6
    /// loopback, or the simulated director's address), or a ping check (the simulated network
    /// has no ICMP): the configuration cannot be simulated as it is.
    #[error("cannot simulate this configuration: {0}")]
    Unreachable(String),
}

/// A duration too short for any fault of a scenario: a simulation that would show nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is too short for scenario {}: {}, and the last {} stay fault-free so that \
     recovery shows; give at least {}, or leave it out ({} for this configuration)",
    format_duration(*.given),
    .scenario.name(),
    .why,
    format_duration(*.calm),
    format_duration(*.needed),
    format_duration(*.default),
)]
pub struct TooShort {
    /// The duration asked for.
    pub given: Duration,
    /// The scenario.
    pub scenario: Scenario,
    /// When its first fault comes.
    why: String,
    /// The fault-free end the duration must leave.
    calm: Duration,
    /// The shortest duration that has room for a fault, in whole seconds.
    pub needed: Duration,
    /// The duration used when none is given.
    pub default: Duration,
}

fn rand_duration(rng: &mut SplitMix64, lo: Duration, hi: Duration) -> Duration {
    let span = hi.saturating_sub(lo).as_millis() as u64;
    lo + Duration::from_millis(rng.up_to(span))
}

/// The real servers of a configuration, the ones faults strike (fallbacks never fail).
pub(crate) fn real_servers(config: &Config) -> Vec<SocketAddr> {
    let set: BTreeSet<SocketAddr> = config
        .services
        .iter()
        .flat_map(|s| s.servers.iter().map(|r| r.addr))
        .collect();
    set.into_iter().collect()
}

/// The pace of a configuration's checks: its longest interval and timeout, its largest rise
/// and fall.
struct Pace {
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
}

impl Pace {
    fn of(config: &Config) -> Pace {
        let mut pace = Pace {
            interval: Duration::from_secs(1),
            timeout: Duration::ZERO,
            rise: 1,
            fall: 1,
        };
        for s in config.services.iter().flat_map(|s| s.servers.iter()) {
            for c in &s.checks {
                pace.interval = pace.interval.max(c.timing.interval);
                pace.timeout = pace.timeout.max(c.timing.timeout);
                pace.rise = pace.rise.max(c.timing.rise);
                pace.fall = pace.fall.max(c.timing.fall);
            }
        }
        pace
    }

    /// Long enough for a server to go down and come back, with room to spare: the unit of the
    /// schedule's spells and gaps.
    fn cycle(&self) -> Duration {
        self.interval * (self.rise + self.fall + 2) + self.timeout
    }
}

/// How a run of `duration` splits: faults in the first part, then a fault-free end (the
/// healed phase), at least long enough to recover in.
struct Phases {
    duration: Duration,
    /// The fault-free end.
    calm: Duration,
}

impl Phases {
    fn new(duration: Duration, cycle: Duration, resync: Duration) -> Phases {
        Phases {
            duration,
            calm: (duration / 4).max(cycle * 2 + resync),
        }
    }

    fn heal_at(&self) -> Duration {
        self.duration.saturating_sub(self.calm)
    }
}

impl FaultSchedule {
    /// Draws the faults of `scenario` for `config` from `seed`, over `duration` or, when
    /// none is given, a duration long enough for several faults and recoveries at the
    /// configuration's own intervals. Checks the simulator cannot run as configured run as
    /// their [`StandIn`]s say. Fails when `duration` leaves no room for a fault, or when the
    /// simulated network cannot reach a checked server.
    pub fn new(
        config: Config,
        scenario: Scenario,
        seed: u64,
        duration: Option<Duration>,
    ) -> Result<FaultSchedule, ScheduleError> {
        if let Some(why) = unreachable(&config) {
            return Err(ScheduleError::Unreachable(why));
        }
        let SimulatedConfig { config, stand_ins } = SimulatedConfig::of(config);
        let mut rng = SplitMix64::new(seed ^ 0x5EED_F1A7_5EED_F1A7);
        let pace = Pace::of(&config);
        let (interval, cycle) = (pace.interval, pace.cycle());
        let resync = config.daemon.resync_interval;
        let default = cycle * 8 + resync * 2;
        let phases = Phases::new(duration.unwrap_or(default), cycle, resync);
        let (duration, heal_at) = (phases.duration, phases.heal_at());
        let warmup = cycle;
        let first = scenario.first_fault(&pace);
        // The loops below draw the first fault up to `first.latest` after the warm-up and go
        // on only while the faulty phase lasts long enough after it.
        let room = warmup + first.latest + first.then;
        if heal_at <= room {
            let mut needed = Duration::from_secs((room + phases.calm).as_secs() + 1);
            while Phases::new(needed, cycle, resync).heal_at() <= room {
                needed += Duration::from_secs(1);
            }
            let mut why = format!(
                "its first fault starts up to {} in (after a warm-up of {})",
                format_duration(warmup + first.latest),
                format_duration(warmup)
            );
            if !first.then.is_zero() {
                let _ = write!(
                    why,
                    " and needs {} more before healing",
                    format_duration(first.then)
                );
            }
            return Err(ScheduleError::TooShort(TooShort {
                given: duration,
                scenario,
                why,
                calm: phases.calm,
                needed,
                default,
            }));
        }
        let servers = real_servers(&config);
        let first_service = config.services[0].key;
        let mut actions = Vec::new();
        let mut push = |at: Duration, action: Action| actions.push(TimedAction { at, action });
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
                        push(t, Action::Set(*s, bad(scenario, &mut rng)));
                        let back = (t + spell).min(heal_at);
                        push(back, Action::Set(*s, Behaviour::Healthy));
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
                        push(t, Action::Set(*s, b));
                        t += rand_duration(&mut rng, interval / 5, interval * 3);
                    }
                    push(heal_at, Action::Set(*s, Behaviour::Healthy));
                }
            }
            Scenario::AllDown => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t + cycle * 2 < heal_at {
                    for s in &servers {
                        push(t, Action::Set(*s, bad(scenario, &mut rng)));
                    }
                    let back = t + rand_duration(&mut rng, cycle, cycle * 2);
                    let first = servers[rng.up_to(servers.len() as u64 - 1) as usize];
                    push(back, Action::Set(first, Behaviour::Healthy));
                    let all_back = (back + rand_duration(&mut rng, cycle, cycle * 2)).min(heal_at);
                    for s in &servers {
                        push(all_back, Action::Set(*s, Behaviour::Healthy));
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
                    push(t, action);
                    // One of a pair: now and then a sync daemon is stopped by hand too.
                    if config.sync.is_some() && rng.up_to(2) == 0 {
                        let role = SyncRole::ALL[rng.up_to(1) as usize];
                        push(t, Action::StopSyncDaemon(role));
                    }
                    t += rand_duration(&mut rng, resync * 2, resync * 4);
                }
            }
            Scenario::OpsFail => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t < heal_at {
                    push(t, Action::FailOps);
                    let s = servers[rng.up_to(servers.len() as u64 - 1) as usize];
                    push(t, Action::Set(s, bad(scenario, &mut rng)));
                    let back = (t + rand_duration(&mut rng, cycle / 2, cycle * 2)).min(heal_at);
                    push(back, Action::RestoreOps);
                    push(back, Action::Set(s, Behaviour::Healthy));
                    t = back + rand_duration(&mut rng, cycle, cycle * 2);
                }
            }
            Scenario::Restart => {
                let mut t = rand_duration(&mut rng, warmup, warmup + cycle);
                while t < heal_at {
                    push(t, Action::Restart);
                    t += rand_duration(&mut rng, cycle, cycle * 3);
                }
            }
            Scenario::Reload => {
                let t = rand_duration(&mut rng, warmup, warmup + cycle).min(heal_at);
                push(t, Action::Reload(Box::new(reloaded(&config, &mut rng))));
            }
            Scenario::Scripted => {}
        }
        actions.sort_by_key(|a| a.at);
        Ok(FaultSchedule {
            config,
            stand_ins,
            scenario,
            seed,
            duration,
            heal_at,
            actions,
        })
    }

    /// The schedule with an administrative change at `at` (an operator's command, or a
    /// maintenance file appearing or going), in time order among the other actions: how
    /// scenarios drain, disable and enable servers during faults.
    pub fn with_admin(mut self, at: Duration, change: AdminChange) -> FaultSchedule {
        let i = self.actions.partition_point(|a| a.at <= at);
        self.actions.insert(
            i,
            TimedAction {
                at,
                action: Action::Admin(change),
            },
        );
        self
    }

    /// A schedule of `duration` with exactly `actions` and nothing drawn ([`Scenario::Scripted`]):
    /// `seed` still fixes the engine's jitter and the network's randomness. Healed from the
    /// last action on. Fails when the simulated network cannot reach a checked server.
    pub fn scripted(
        config: Config,
        seed: u64,
        duration: Duration,
        actions: Vec<TimedAction>,
    ) -> Result<FaultSchedule, ScheduleError> {
        if let Some(why) = unreachable(&config) {
            return Err(ScheduleError::Unreachable(why));
        }
        let SimulatedConfig { config, stand_ins } = SimulatedConfig::of(config);
        let mut actions = actions;
        actions.sort_by_key(|a| a.at);
        let heal_at = actions.last().map_or(Duration::ZERO, |a| a.at);
        Ok(FaultSchedule {
            config,
            stand_ins,
            scenario: Scenario::Scripted,
            seed,
            duration,
            heal_at,
            actions,
        })
    }

    /// Every real server the simulation must run (including ones a reload adds).
    pub fn server_addrs(&self) -> Vec<SocketAddr> {
        let mut set: BTreeSet<SocketAddr> = real_servers(&self.config).into_iter().collect();
        for c in self.configs().skip(1) {
            set.extend(real_servers(c));
        }
        set.into_iter().collect()
    }

    /// The configuration at the start, then each one a reload brings in.
    pub fn configs(&self) -> impl Iterator<Item = &Config> {
        std::iter::once(&self.config).chain(self.actions.iter().filter_map(|a| match &a.action {
            Action::Reload(c) => Some(&**c),
            _ => None,
        }))
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
        for s in &self.stand_ins {
            let _ = writeln!(out, "  stand-in: {s}");
        }
        for a in &self.actions {
            let _ = writeln!(out, "  plan t+{:>9}  {}", fmt_t(a.at), a.action);
        }
        out
    }
}

/// The reload scenario's new configuration: the first server's weight changed, the last one
/// removed, a new one added.
fn reloaded(config: &Config, rng: &mut SplitMix64) -> Config {
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
    added.addr.set_ip(match added.addr.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Ipv4Addr::new(o[0], o[1], o[2], o[3].wrapping_add(100)).into()
        }
        IpAddr::V6(v6) => {
            let mut s = v6.segments();
            s[7] = s[7].wrapping_add(100);
            Ipv6Addr::from(s).into()
        }
    });
    added.weight = 3;
    svc.servers.push(added);
    next.refresh_probe_services()
        .expect("as many probe services as before: one server out, one in");
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_example() -> Config {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/seed.toml"
        ))
        .unwrap();
        Config::from_toml(&text, "seed.toml").unwrap()
    }

    /// Whether the schedule makes anything go wrong.
    fn has_fault(s: &FaultSchedule) -> bool {
        s.actions
            .iter()
            .any(|a| !matches!(a.action, Action::Set(_, Behaviour::Healthy)))
    }

    #[test]
    fn the_shortest_duration_a_too_short_one_names_has_a_fault_for_every_seed() {
        for scenario in Scenario::ALL {
            let err =
                FaultSchedule::new(seed_example(), scenario, 1, Some(Duration::from_secs(30)))
                    .unwrap_err();
            let ScheduleError::TooShort(short) = err else {
                panic!("{scenario:?}: {err}")
            };
            for seed in 0..50 {
                let s =
                    FaultSchedule::new(seed_example(), scenario, seed, Some(short.needed)).unwrap();
                assert!(
                    has_fault(&s),
                    "{scenario:?} seed {seed} at {:?}",
                    short.needed
                );
                let shorter = short.needed - Duration::from_secs(1);
                let err = FaultSchedule::new(seed_example(), scenario, seed, Some(shorter));
                assert!(
                    matches!(err, Err(ScheduleError::TooShort(_))),
                    "{scenario:?} at {shorter:?}"
                );
            }
        }
    }

    #[test]
    fn too_short_says_when_faults_come_and_what_is_enough() {
        let err = FaultSchedule::new(
            seed_example(),
            Scenario::Kill,
            1,
            Some(Duration::from_secs(60)),
        )
        .unwrap_err();
        // The seed example: every 5s, timeout 1s, rise 1, fall 1: a cycle of 21s.
        assert_eq!(
            err.to_string(),
            "1m is too short for scenario kill: its first fault starts up to 42s in (after a \
             warm-up of 21s), and the last 47s stay fault-free so that recovery shows; give at \
             least 1m30s, or leave it out (2m58s for this configuration)"
        );
    }
}
