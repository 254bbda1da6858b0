//! dns (over UDP and TCP), udp and tcp send/expect checks in the simulator: the shipped driver
//! and probes against simulated peers that are killed, black-holed, slow, answer with errors
//! or with the wrong content, on a schedule drawn from an explicit seed. `LVS_HC_SEED=n` runs
//! seed `n` only; a failure prints the line that replays it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc::simulate::{run_schedule, Action, Behaviour, FaultSchedule, ProbeVerdict, Scenario};
use lvs_hc_core::{Config, ServiceKey};

/// The seeds each scenario runs with (unless `LVS_HC_SEED` names one).
const SEEDS: [u64; 3] = [1, 2, 3];

/// Four services, two servers each on hosts of their own: dns over UDP, dns over TCP, udp and
/// tcp send/expect. Every check can tell every fault: the dns checks expect an address, the
/// others a reply.
const CONFIG: &str = r#"
[daemon]
resync_interval = "2s"

[[service]]
address = "192.168.0.101:53"
protocol = "udp"
forward = "nat"
[[service.check]]
type = "dns"
query_name = "www.example.test"
expect_address = ["192.0.2.7"]
interval = "1s"
timeout = "600ms"
rise = 2
fall = 2
[[service.server]]
address = "192.168.0.10:53"
[[service.server]]
address = "192.168.0.11:53"

[[service]]
address = "192.168.0.101:53"
forward = "nat"
[[service.check]]
type = "dns"
query_name = "www.example.test"
query_type = "AAAA"
transport = "tcp"
expect_address = ["2001:db8::7"]
interval = "1s"
timeout = "600ms"
rise = 2
fall = 2
[[service.server]]
address = "192.168.0.12:53"
[[service.server]]
address = "192.168.0.13:53"

[[service]]
address = "192.168.0.101:5000"
protocol = "udp"
forward = "nat"
[[service.check]]
type = "udp"
send = "ping"
expect = "pong"
interval = "1s"
timeout = "600ms"
rise = 2
fall = 2
[[service.server]]
address = "192.168.0.20:5000"
[[service.server]]
address = "192.168.0.21:5000"

[[service]]
address = "192.168.0.101:6379"
forward = "nat"
[[service.check]]
type = "tcp"
send = "PING\r\n"
expect = "+PONG"
interval = "1s"
timeout = "600ms"
rise = 2
fall = 2
[[service.server]]
address = "192.168.0.30:6379"
[[service.server]]
address = "192.168.0.31:6379"
"#;

/// How long before a probe ends a server's behaviour must have held for the probe to be
/// judged by it: the probe's own time and a margin for turmoil's latency.
const MARGIN: Duration = Duration::from_millis(250);

fn seeds() -> Vec<u64> {
    match std::env::var("LVS_HC_SEED") {
        Ok(s) => vec![s.parse().expect("LVS_HC_SEED is a number")],
        Err(_) => SEEDS.to_vec(),
    }
}

fn run(scenario: Scenario, name: &str) {
    for seed in seeds() {
        if let Err(e) = check(scenario, seed) {
            panic!(
                "{name}, seed {seed}: {e}\nreproduce with LVS_HC_SEED={seed} cargo test -p \
                 lvs-hc-sim --test check_kinds {name}"
            );
        }
    }
}

/// Each server's behaviour over time, from the schedule: (from, behaviour), in order.
type Timeline = BTreeMap<SocketAddr, Vec<(Duration, Behaviour)>>;

fn behaviour_between(
    t: &Timeline,
    server: SocketAddr,
    from: Duration,
    to: Duration,
) -> Option<Behaviour> {
    let spells = t.get(&server).map(Vec::as_slice).unwrap_or(&[]);
    let at = |when: Duration| {
        spells
            .iter()
            .rev()
            .find(|(f, _)| *f <= when)
            .map_or(Behaviour::Healthy, |(_, b)| *b)
    };
    let first = at(from);
    let steady = spells
        .iter()
        .filter(|(f, _)| *f > from && *f <= to)
        .all(|(_, b)| *b == first);
    steady.then_some(first)
}

fn check(scenario: Scenario, seed: u64) -> Result<(), String> {
    let config = Config::from_toml(CONFIG, "check_kinds.toml").map_err(|e| e.to_string())?;
    let members: Vec<(ServiceKey, SocketAddr)> = config
        .services
        .iter()
        .flat_map(|s| s.servers.iter().map(move |r| (s.key, r.addr)))
        .collect();
    let schedule = FaultSchedule::new(config, scenario, seed, None).map_err(|e| e.to_string())?;
    let mut timeline = Timeline::new();
    for a in &schedule.actions {
        if let Action::Set(s, b) = &a.action {
            timeline.entry(*s).or_default().push((a.at, *b));
        }
    }
    if timeline.is_empty() {
        return Err(format!(
            "the schedule has no fault:\n{}",
            schedule.describe()
        ));
    }
    // When each server was in the table (with a weight above 0), sampled after every step.
    let mut absent: BTreeMap<SocketAddr, Vec<Duration>> = BTreeMap::new();
    let world = run_schedule(&schedule, None, |now, world| {
        for (key, server) in &members {
            let serving = world
                .kernel
                .state
                .table
                .dest(key, server)
                .is_some_and(|d| d.weight > 0);
            if !serving {
                absent.entry(*server).or_default().push(now);
            }
        }
        Ok(())
    })?;
    let world = world.borrow();
    let describe = || schedule.describe();
    // Every probe judged by the behaviour that held throughout it: healthy passes, any fault
    // fails.
    let mut failures: BTreeMap<SocketAddr, Vec<Duration>> = BTreeMap::new();
    let mut judged_faults = 0;
    for p in &world.probes {
        let from = p.at.saturating_sub(p.took + MARGIN);
        let Some(b) = behaviour_between(&timeline, p.server, from, p.at) else {
            continue;
        };
        let want = if b == Behaviour::Healthy {
            ProbeVerdict::Pass
        } else {
            judged_faults += 1;
            ProbeVerdict::Fail
        };
        if p.verdict != want {
            return Err(format!(
                "{} probed at {:?} while {} for the whole probe: {:?}, expected {want:?}\n{}",
                p.server,
                p.at,
                b.label(),
                p.verdict,
                describe()
            ));
        }
        if p.verdict == ProbeVerdict::Fail {
            failures.entry(p.server).or_default().push(p.at);
        }
    }
    if judged_faults == 0 {
        return Err(format!("no probe saw a fault\n{}", describe()));
    }
    // A server that failed `fall` (2) probes in a row while faulty left the table soon after.
    let mut judged_removals = 0;
    for (server, spells) in &timeline {
        for (i, (from, b)) in spells.iter().enumerate() {
            if *b == Behaviour::Healthy {
                continue;
            }
            let to = spells.get(i + 1).map_or(schedule.heal_at, |(t, _)| *t);
            let fails: Vec<Duration> = failures
                .get(server)
                .map(|f| f.iter().copied().filter(|t| t > from && *t <= to).collect())
                .unwrap_or_default();
            let Some(second) = fails.get(1) else {
                continue;
            };
            judged_removals += 1;
            let out = absent
                .get(server)
                .is_some_and(|a| a.iter().any(|t| t >= second && *t <= to + MARGIN * 4));
            if !out {
                return Err(format!(
                    "{server} failed probes at {fails:?} while {} ({from:?} to {to:?}) but stayed \
                     in the table\n{}",
                    b.label(),
                    describe()
                ));
            }
        }
    }
    if judged_removals == 0 {
        return Err(format!(
            "no fault lasted two failed probes: the removal was never checked\n{}",
            describe()
        ));
    }
    // Healed: every server back in the table at the end.
    for (key, server) in &members {
        let serving = world
            .kernel
            .state
            .table
            .dest(key, server)
            .is_some_and(|d| d.weight > 0);
        if !serving {
            return Err(format!(
                "{server} is not back in {key} at the end\n{}",
                describe()
            ));
        }
    }
    Ok(())
}

#[test]
fn killed_peers_leave_the_table() {
    run(Scenario::Kill, "killed_peers_leave_the_table");
}

#[test]
fn blackholed_peers_leave_the_table() {
    run(Scenario::Blackhole, "blackholed_peers_leave_the_table");
}

#[test]
fn slow_peers_leave_the_table() {
    run(Scenario::Slow, "slow_peers_leave_the_table");
}

#[test]
fn peers_answering_errors_leave_the_table() {
    run(Scenario::Error500, "peers_answering_errors_leave_the_table");
}

#[test]
fn peers_answering_the_wrong_content_leave_the_table() {
    run(
        Scenario::WrongPage,
        "peers_answering_the_wrong_content_leave_the_table",
    );
}
