//! A runtime-free harness: the engine, a strict in-memory kernel table, and scripted servers.
//! Time jumps straight to the next deadline or probe completion.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc_core::admin::{parse_agent_reply, AdminChange, AdminSource, AdminState};
use lvs_hc_core::announce::{Route, RouteOp};
use lvs_hc_core::config::CheckKind;
use lvs_hc_core::{
    ApplyError, Config, Counters, Engine, Event, EventKind, Input, Instant, Op, Output,
    ProbeOutcome, SyncOp, Table,
};

/// How a scripted server answers probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Passes after 1ms.
    Healthy,
    /// Fails after 1ms: connection refused.
    Refused,
    /// Fails at the check's timeout.
    Blackhole,
    /// Passes after 1ms, reporting a dynamic weight.
    Weight(u32),
    /// The probe cannot run on the director (out of file descriptors) after 1ms.
    DirectorFault,
}

pub struct Harness {
    pub engine: Engine,
    pub now: Instant,
    pub kernel: Table,
    pub counters: Counters,
    pub behaviour: HashMap<SocketAddr, Behaviour>,
    pub events: Vec<Event>,
    pub applied: Vec<(Instant, Op)>,
    /// Operations fail (with "injected") while this is true.
    pub fail_ops: bool,
    /// Table reads fail while this is true.
    pub fail_reads: bool,
    /// Sync daemon operations fail with this error while it is set.
    pub fail_sync: Option<String>,
    /// Sync daemon operations carried out, with when.
    pub sync_applied: Vec<(Instant, SyncOp)>,
    /// The routes in the kernel (`[announce]`), of every table and protocol.
    pub routes: std::collections::BTreeSet<Route>,
    /// Route reads and changes fail with this error while it is set.
    pub fail_routes: Option<String>,
    /// Route operations carried out, with when, as `ip route` lines.
    pub route_ops: Vec<(Instant, String)>,
    /// Services every table read reports as unreadable.
    pub skipped: Vec<lvs_hc_core::SkippedService>,
    pub probes_sent: HashMap<SocketAddr, usize>,
    /// What each server's agent answers (an `agent` check): a reply line, or `None` for an
    /// agent that cannot be reached. `up` when not set.
    pub agents: HashMap<SocketAddr, Option<String>>,
    /// Every probe request, as sent: when, the server, where it connects, and its mark.
    pub requests: Vec<(Instant, SocketAddr, SocketAddr, Option<u32>)>,
    probes: Vec<(Instant, Input)>,
    immediate: Vec<Input>,
}

pub fn at(secs_f: f64) -> Instant {
    Instant::from_nanos((secs_f * 1e9).round() as u64)
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Harness {
    pub fn new(config_toml: &str, kernel: Table) -> Harness {
        Harness::with_seed(config_toml, kernel, 7)
    }

    pub fn with_seed(config_toml: &str, kernel: Table, seed: u64) -> Harness {
        let config = Config::from_toml(config_toml, "test.toml").unwrap_or_else(|e| panic!("{e}"));
        let engine = Engine::new(config, Instant::ZERO, seed);
        Harness {
            engine,
            now: Instant::ZERO,
            kernel,
            counters: Counters::default(),
            behaviour: HashMap::new(),
            events: Vec::new(),
            applied: Vec::new(),
            fail_ops: false,
            fail_reads: false,
            fail_sync: None,
            routes: Default::default(),
            fail_routes: None,
            route_ops: Vec::new(),
            sync_applied: Vec::new(),
            skipped: Vec::new(),
            probes_sent: HashMap::new(),
            agents: HashMap::new(),
            requests: Vec::new(),
            probes: Vec::new(),
            immediate: Vec::new(),
        }
    }

    pub fn set(&mut self, server: &str, b: Behaviour) {
        self.behaviour.insert(addr(server), b);
    }

    /// Runs until `until`, answering every output.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let deadline = self.drain();
            if !self.immediate.is_empty() {
                for input in std::mem::take(&mut self.immediate) {
                    self.engine.handle_input(input);
                }
                continue;
            }
            let next_probe = self
                .probes
                .iter()
                .map(|(t, _)| *t)
                .min()
                .unwrap_or(Instant::FAR_FUTURE);
            let next = deadline.min(next_probe);
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (ready, rest): (Vec<_>, Vec<_>) =
                self.probes.drain(..).partition(|(t, _)| *t <= now);
            self.probes = rest;
            let mut ready = ready;
            ready.sort_by_key(|(t, _)| *t);
            for (_, input) in ready {
                self.engine.handle_input(input);
            }
            self.engine.handle_input(Input::Timeout(now));
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn drain(&mut self) -> Instant {
        loop {
            match self.engine.poll_output() {
                Output::Probe(req) if matches!(req.check.kind, CheckKind::Agent(_)) => {
                    let line = self
                        .agents
                        .get(&req.server)
                        .cloned()
                        .unwrap_or(Some("up".into()));
                    let outcome = match line {
                        Some(l) => match parse_agent_reply(&l) {
                            Ok(report) => ProbeOutcome::Agent(report),
                            Err(e) => ProbeOutcome::Inconclusive {
                                reason: e.to_string(),
                            },
                        },
                        None => ProbeOutcome::Inconclusive {
                            reason: "agent: connection refused".into(),
                        },
                    };
                    let done = self.now + Duration::from_millis(1);
                    self.probes.push((
                        done,
                        Input::ProbeResult {
                            now: done,
                            id: req.id,
                            outcome,
                        },
                    ));
                }
                Output::Probe(req) => {
                    *self.probes_sent.entry(req.server).or_default() += 1;
                    self.requests.push((
                        self.now,
                        req.server,
                        req.target(),
                        req.check.via.map(|v| v.mark),
                    ));
                    let b = self
                        .behaviour
                        .get(&req.server)
                        .copied()
                        .unwrap_or(Behaviour::Healthy);
                    let (delay, outcome) = match b {
                        Behaviour::Healthy => (
                            Duration::from_millis(1),
                            ProbeOutcome::Pass { weight: None },
                        ),
                        Behaviour::Refused => (
                            Duration::from_millis(1),
                            ProbeOutcome::Fail {
                                reason: "connection refused".into(),
                            },
                        ),
                        Behaviour::Weight(w) => (
                            Duration::from_millis(1),
                            ProbeOutcome::Pass { weight: Some(w) },
                        ),
                        Behaviour::DirectorFault => (
                            Duration::from_millis(1),
                            ProbeOutcome::DirectorFault {
                                reason: "too many open files (EMFILE)".into(),
                            },
                        ),
                        Behaviour::Blackhole => (
                            req.timeout(),
                            ProbeOutcome::Fail {
                                reason: format!("timed out after {:?}", req.timeout()),
                            },
                        ),
                    };
                    let done = self.now + delay;
                    self.probes.push((
                        done,
                        Input::ProbeResult {
                            now: done,
                            id: req.id,
                            outcome,
                        },
                    ));
                }
                Output::Apply(op) => {
                    let result = if self.fail_ops {
                        Err(ApplyError::Other("injected".into()))
                    } else {
                        self.kernel.apply(&op)
                    };
                    if result.is_ok() {
                        self.applied.push((self.now, op.clone()));
                    }
                    self.immediate.push(Input::Applied {
                        now: self.now,
                        op,
                        result,
                    });
                }
                Output::ReadTable if self.fail_reads => {
                    self.immediate.push(Input::SnapshotFailed {
                        now: self.now,
                        error: "netlink: injected".into(),
                    })
                }
                Output::ReadTable => self.immediate.push(Input::Snapshot {
                    now: self.now,
                    table: self.kernel.clone(),
                    counters: self.counters.clone(),
                    skipped: self.skipped.clone(),
                }),
                Output::Sync(op) => {
                    let result = match &self.fail_sync {
                        Some(e) => Err(e.clone()),
                        None => self.kernel.apply_sync(&op).map_err(|e| e.to_string()),
                    };
                    if result.is_ok() {
                        self.sync_applied.push((self.now, op.clone()));
                    }
                    self.immediate.push(Input::SyncApplied {
                        now: self.now,
                        op,
                        result,
                    });
                }
                Output::ReadRoutes => {
                    let result = match &self.fail_routes {
                        Some(e) => Err(e.clone()),
                        None => Ok(self.routes.iter().copied().collect()),
                    };
                    self.immediate.push(Input::Routes {
                        now: self.now,
                        result,
                    })
                }
                Output::Route(op) => {
                    let result = match &self.fail_routes {
                        Some(e) => Err(e.clone()),
                        None => {
                            match op {
                                RouteOp::Add(r) => self.routes.insert(r),
                                RouteOp::Del(r) => self.routes.remove(&r),
                            };
                            self.route_ops.push((self.now, op.to_string()));
                            Ok(())
                        }
                    };
                    self.immediate.push(Input::RouteApplied {
                        now: self.now,
                        op,
                        result,
                    });
                }
                Output::Event(e) => self.events.push(e),
                Output::Timeout(t) => return t,
            }
        }
    }

    /// The destinations of the only service, as `addr weight` strings.
    pub fn dests(&self) -> Vec<String> {
        self.kernel
            .services
            .values()
            .flat_map(|s| s.dests.iter().map(|(a, p)| format!("{a} w{}", p.weight)))
            .collect()
    }

    pub fn applied_lines(&self) -> Vec<String> {
        self.applied.iter().map(|(_, op)| op.to_string()).collect()
    }

    pub fn event_lines(&self) -> Vec<String> {
        self.events.iter().map(|e| e.kind.to_string()).collect()
    }

    /// When the first event matching `pred` happened.
    pub fn first_event(&self, pred: impl Fn(&EventKind) -> bool) -> Option<Instant> {
        self.events.iter().find(|e| pred(&e.kind)).map(|e| e.at)
    }

    /// When `op_line` was applied.
    pub fn applied_at(&self, op_line: &str) -> Option<Instant> {
        self.applied
            .iter()
            .find(|(_, op)| op.to_string() == op_line)
            .map(|(t, _)| *t)
    }
}

/// The seed topology with the given check settings.
pub fn seed_config(check: &str, policy: &str) -> String {
    format!(
        r#"
[daemon]
resync_interval = "5s"

[[service]]
address = "192.168.0.101:80"
scheduler = "wlc"
{policy}

[[service.check]]
type = "http"
{check}

[[service.server]]
address = "192.168.0.179:80"
weight = 2

[[service.server]]
address = "192.168.0.180:80"
weight = 1

[[service.fallback]]
address = "127.0.0.1:80"
weight = 5
"#
    )
}

impl Harness {
    /// Feeds a new configuration now.
    pub fn reload(&mut self, config_toml: &str) {
        let config =
            Config::from_toml(config_toml, "reload.toml").unwrap_or_else(|e| panic!("{e}"));
        self.engine.handle_input(Input::Reload {
            now: self.now,
            config: Box::new(config),
        });
    }
}

impl Harness {
    /// Asks the engine, now, to withdraw every service it manages (cleanup on exit).
    pub fn withdraw(&mut self) {
        self.engine.handle_input(Input::Withdraw { now: self.now });
    }
}

impl Harness {
    /// An administrative change, now, for `server` of the only service.
    pub fn admin(&mut self, server: &str, source: AdminSource, state: AdminState, reason: &str) {
        let service = *self
            .engine
            .config()
            .services
            .iter()
            .find(|s| {
                s.servers
                    .iter()
                    .chain(&s.fallbacks)
                    .any(|x| x.addr == addr(server))
            })
            .map(|s| &s.key)
            .expect("a configured server");
        self.engine.handle_input(Input::Admin {
            now: self.now,
            change: AdminChange {
                service,
                server: addr(server),
                source,
                state,
                reason: reason.into(),
                drain_timeout: None,
            },
        });
    }

    /// The weight of `server` in the kernel table, if it is there.
    pub fn weight_of(&self, server: &str) -> Option<u32> {
        self.kernel
            .services
            .values()
            .find_map(|s| s.dests.get(&addr(server)).map(|p| p.weight))
    }
}
