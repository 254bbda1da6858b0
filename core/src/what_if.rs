//! What would lvs-hc do to this table if these servers were down? The question behind
//! `lvs-hc plan`, put to the [`Engine`] itself so that the answer follows the daemon's rules
//! (failure policy, quorum and fallback, `new_servers`, `manage`, ordering) by construction.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Check, CheckKind, Config, FailureAction, Timing};
use crate::diff::diff;
use crate::engine::{Engine, Input, Output, ProbeRequest};
use crate::health::{Health, ProbeOutcome};
use crate::op::{Op, Target};
use crate::table::{Counters, Table};
use crate::time::Instant;

/// The engine's jitter seed: any fixed value, so the same question gets the same answer.
const SEED: u64 = 0;

/// A bound on the deadlines the engine is driven through. Every configuration settles within
/// `fall` probes of its slowest check, a few dozen deadlines; the bound only keeps an engine
/// bug from hanging the command.
const MAX_DEADLINES: usize = 100_000;

/// The operations that turn `actual` into the table the engine settles on when every real
/// server in `down` fails every probe and every other server passes.
///
/// The engine runs in simulated time against a copy of `actual`, answered as the driver answers
/// it: it reads the copy, its probes are answered without delay, the operations it emits are
/// applied to the copy (strictly, as the kernel would) and reported back, and time jumps to
/// each deadline it asks for, until every server has its verdict and no operation is
/// outstanding. The result is the ordered, minimal [`diff`] from `actual` to that copy: the
/// engine may take more steps to get there (a `new_servers = "in"` server added, then removed
/// after `fall` failures), which a script of `ipvsadm` commands has no use for.
///
/// Without live counters a drain cannot end but by its timeout, and the question is the table
/// once the verdicts are in: a down server that the policy drains and that is in `actual` is
/// planned at weight 0, its drain in progress.
pub fn what_if(config: &Config, actual: &Table, down: &BTreeSet<SocketAddr>) -> Vec<Op> {
    let mut engine = Engine::new(as_asked(config, down), Instant::ZERO, SEED);
    let mut table = actual.clone();
    let mut failing: BTreeSet<Target> = BTreeSet::new();
    let mut now = Instant::ZERO;
    let mut inputs = Vec::new();
    for _ in 0..MAX_DEADLINES {
        let deadline = loop {
            match engine.poll_output() {
                // Read at once, as the driver does: a verdict may start a drain only on a
                // table that has been read.
                Output::ReadTable => engine.handle_input(Input::Snapshot {
                    now,
                    table: table.clone(),
                    counters: Counters::default(),
                    skipped: Vec::new(),
                }),
                Output::Probe(req) => inputs.push(Input::ProbeResult {
                    now,
                    id: req.id,
                    outcome: verdict(&req, down),
                }),
                Output::Apply(op) => {
                    let result = table.apply(&op);
                    if result.is_ok() {
                        failing.remove(&op.target());
                    } else {
                        failing.insert(op.target());
                    }
                    inputs.push(Input::Applied { now, op, result });
                }
                // The plan is the table's; the sync daemons are taken as started.
                Output::Sync(op) => inputs.push(Input::SyncApplied {
                    now,
                    op,
                    result: Ok(()),
                }),
                // Nor are routes: taken as none, and changed as asked.
                Output::ReadRoutes => inputs.push(Input::Routes {
                    now,
                    result: Ok(Vec::new()),
                }),
                Output::Route(op) => inputs.push(Input::RouteApplied {
                    now,
                    op,
                    result: Ok(()),
                }),
                Output::Event(_) => {}
                Output::Timeout(deadline) => break deadline,
            }
        };
        if !inputs.is_empty() {
            for input in inputs.drain(..) {
                engine.handle_input(input);
            }
            continue;
        }
        if settled(&engine) && failing.is_empty() {
            break;
        }
        now = deadline;
        engine.handle_input(Input::Timeout(now));
    }
    diff(&table, actual)
}

/// A down server fails; every other server passes.
fn verdict(req: &ProbeRequest, down: &BTreeSet<SocketAddr>) -> ProbeOutcome {
    if down.contains(&req.server) {
        ProbeOutcome::Fail {
            reason: "down (what if)".into(),
        }
    } else {
        ProbeOutcome::Pass { weight: None }
    }
}

/// Every server has its verdict and every operation has been answered.
fn settled(engine: &Engine) -> bool {
    engine.pending_ops() == 0 && engine.status().iter().all(|s| s.health != Health::Unknown)
}

/// `config` as the question puts it: drains never time out (see [`what_if`]), and every
/// server in `down` that has no check gets one, a TCP check that fails and takes the server out
/// at its first failure (a server without checks is always healthy to the engine, but the
/// question names it as failed).
fn as_asked(config: &Config, down: &BTreeSet<SocketAddr>) -> Config {
    let failing = Arc::new(Check {
        kind: CheckKind::Tcp(crate::config::TcpCheck::default()),
        ip: None,
        port: None,
        source: None,
        via: None,
        timing: Timing {
            interval: Duration::from_secs(1),
            failing_interval: Duration::from_secs(1),
            timeout: Duration::from_millis(100),
            rise: 1,
            fall: 1,
            jitter: Duration::ZERO,
        },
    });
    let mut config = config.clone();
    for svc in &mut config.services {
        if let FailureAction::Drain { timeout } = &mut svc.on_failure {
            *timeout = Duration::MAX;
        }
        for server in svc.servers.iter_mut().chain(svc.fallbacks.iter_mut()) {
            if server.checks.is_empty() && down.contains(&server.addr) {
                server.checks.push(failing.clone());
            }
        }
    }
    config
}
