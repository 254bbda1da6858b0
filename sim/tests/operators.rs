//! Operators drain, disable and enable servers while the servers flap, and the daemon is
//! restarted now and then: the shipped driver in simulated time, swept over seeds
//! (`LVS_HC_SEEDS`, default 200; `LVS_HC_SEED=n` replays one). After every step: a disabled
//! server is never in the table, a draining one never has a weight above 0, no weight exceeds
//! the configured one (slow start included); at the end, with every server healthy and enabled,
//! every server is back at its full weight.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc::simulate::{run_schedule, Action, FaultSchedule, Scenario, TimedAction};
use lvs_hc_core::admin::{AdminChange, AdminSource, AdminState};
use lvs_hc_core::rng::SplitMix64;
use lvs_hc_core::{Config, ServiceKey};
use lvs_hc_sim::Seeds;

const CONFIG: &str = r#"
[daemon]
resync_interval = "1s"

[[service]]
name = "web"
address = "192.168.0.101:80"
forward = "nat"
slow_start = "4s"
on_failure = "drain"
drain_timeout = "3s"
[[service.check]]
type = "http"
interval = "500ms"
timeout = "300ms"
rise = 2
fall = 2
[[service.server]]
address = "192.168.0.10:80"
weight = 30
[[service.server]]
address = "192.168.0.11:80"
weight = 7
[[service.server]]
address = "192.168.0.12:80"
weight = 1
[[service.fallback]]
address = "192.168.0.20:80"
weight = 5
"#;

/// How long an operation may take to reach the simulated kernel after its cause.
const GRACE: Duration = Duration::from_millis(300);
const LENGTH: Duration = Duration::from_secs(60);

/// Flapping servers (the simulator's `flap` scenario), a restart or two, and operators
/// changing administrative states at random times; every server enabled again before the end.
fn schedule(seed: u64) -> FaultSchedule {
    let config = Config::from_toml(CONFIG, "operators").unwrap();
    let key = config.services[0].key;
    let servers: Vec<SocketAddr> = config.services[0].servers.iter().map(|s| s.addr).collect();
    let mut schedule = FaultSchedule::new(config, Scenario::Flap, seed, Some(LENGTH)).unwrap();
    let heal = schedule.heal_at;
    assert!(
        schedule.duration >= heal + Duration::from_secs(10),
        "the healed phase leaves room for rise, a slow start and a resync"
    );
    let mut rng = SplitMix64::new(seed ^ 0x0a11_ab1e);
    let span = |rng: &mut SplitMix64, from: Duration, to: Duration| {
        from + Duration::from_millis(rng.up_to((to - from).as_millis() as u64))
    };
    let restarts = rng.up_to(2);
    for _ in 0..restarts {
        let at = span(
            &mut rng,
            Duration::from_secs(5),
            heal - Duration::from_secs(3),
        );
        let i = schedule.actions.partition_point(|a| a.at <= at);
        schedule.actions.insert(
            i,
            TimedAction {
                at,
                action: Action::Restart,
            },
        );
    }
    let changes = 4 + rng.up_to(8);
    for _ in 0..changes {
        let at = span(
            &mut rng,
            Duration::from_secs(2),
            heal - Duration::from_secs(1),
        );
        let server = servers[rng.up_to(servers.len() as u64 - 1) as usize];
        let state = match rng.up_to(2) {
            0 => AdminState::Drain,
            1 => AdminState::Disabled,
            _ => AdminState::Enabled,
        };
        schedule = schedule.with_admin(at, change(key, server, state));
    }
    for server in servers {
        schedule = schedule.with_admin(heal, change(key, server, AdminState::Enabled));
    }
    schedule
}

fn change(service: ServiceKey, server: SocketAddr, state: AdminState) -> AdminChange {
    AdminChange {
        service,
        server,
        source: AdminSource::Operator,
        state,
        reason: "patching".into(),
        drain_timeout: None,
    }
}

fn run(seed: u64) -> Result<(), String> {
    let schedule = schedule(seed);
    let key = schedule.config.services[0].key;
    let configured: BTreeMap<SocketAddr, u32> = schedule.config.services[0]
        .servers
        .iter()
        .map(|s| (s.addr, s.weight))
        .collect();
    // The operator's state of each server, with when it took effect.
    let changes: Vec<(Duration, SocketAddr, AdminState)> = schedule
        .actions
        .iter()
        .filter_map(|a| match &a.action {
            Action::Admin(c) => Some((a.at, c.server, c.state)),
            _ => None,
        })
        .collect();
    let state_at = |t: Duration, server: SocketAddr| {
        let mut state = (AdminState::Enabled, Duration::ZERO);
        for (at, s, st) in &changes {
            if *at <= t && *s == server {
                state = (*st, *at);
            }
        }
        state
    };
    let healed = schedule.heal_at;
    let world = run_schedule(&schedule, None, |t, w| {
        let table = &w.kernel.state.table;
        for (&server, &full) in &configured {
            let weight = table.dest(&key, &server).map(|d| d.weight);
            let (state, since) = state_at(t, server);
            let settled = t > since + GRACE;
            match (state, weight) {
                (AdminState::Disabled, Some(w)) if settled => {
                    return Err(format!(
                        "t+{t:?}: {server} disabled since t+{since:?} is in the table (weight {w})"
                    ))
                }
                (AdminState::Drain, Some(w)) if settled && w > 0 => {
                    return Err(format!(
                        "t+{t:?}: {server} draining since t+{since:?} has weight {w}"
                    ))
                }
                (_, Some(w)) if w > full => {
                    return Err(format!(
                        "t+{t:?}: {server} at weight {w}, above its configured {full}"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    // Healed and all enabled: every server back at full weight once the slowest path is over:
    // rise probes, a slow start, a resync.
    let w = world.borrow();
    let table = &w.kernel.state.table;
    for (&server, &full) in &configured {
        let weight = table.dest(&key, &server).map(|d| d.weight);
        if weight != Some(full) {
            return Err(format!(
                "at the end (healed and all enabled from t+{healed:?}): {server} at weight \
                 {weight:?}, not its full {full}"
            ));
        }
    }
    Ok(())
}

#[test]
fn operators_during_flapping_failures_and_restarts() {
    let mut failures = Vec::new();
    for seed in Seeds::from_env().list() {
        if let Err(e) = run(seed) {
            failures.push(format!(
                "seed {seed}: {e}\n{}\nreplay: LVS_HC_SEED={seed} cargo test -p lvs-hc-sim --test \
                 operators",
                schedule(seed).describe()
            ));
            if failures.len() >= 3 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
