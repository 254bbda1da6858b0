//! smtp checks in the simulator: the shipped driver and smtp probe against simulated SMTP
//! servers that fail as each scenario says (killed: refused; black-holed: silence; slow: a
//! banner far too late; answering 500: a 554 banner; the wrong page: EHLO refused), plain and
//! with STARTTLS. With explicit seeds (`LVS_HC_SEED=n` replays one), each run asserts that
//!
//! - every server a fault strikes goes down, for the fault's own reason, and none goes down
//!   before a fault strikes it (the simulated peer is healthy while healthy);
//! - once the faults are over, every real server is back in the kernel table at its weight.
//!
//! Ping checks have no simulated counterpart (no ICMP in the simulated network): a
//! configuration with one is refused, with the reason.

use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc::simulate::{run_schedule, Action, Behaviour, FaultSchedule, Scenario};
use lvs_hc_core::{Config, EventKind, Health};

/// Seeds run when `LVS_HC_SEED` names none.
const SEEDS: [u64; 3] = [1, 7, 42];

/// The smtp check's variants.
#[derive(Clone, Copy, Debug)]
enum Tls {
    Plain,
    StartTls,
}

fn config(tls: Tls) -> Config {
    // STARTTLS adds a handshake and a second EHLO: about ten message flights of up to 110 ms
    // in the simulated network, so its timeout is longer.
    let (interval, timeout, starttls) = match tls {
        Tls::Plain => ("1500ms", "1200ms", ""),
        Tls::StartTls => ("2500ms", "2s", "starttls = true\nsni = \"localhost\"\n"),
    };
    let text = format!(
        r#"
[daemon]
resync_interval = "2s"
retry_backoff = "100ms"
retry_backoff_max = "1s"

[[service]]
address = "192.168.0.102:25"

[[service.check]]
type = "smtp"
helo_name = "director.example.com"
interval = "{interval}"
timeout = "{timeout}"
rise = 2
fall = 2
{starttls}
[[service.server]]
address = "192.168.0.179:25"
weight = 2

[[service.server]]
address = "192.168.0.180:25"
weight = 1
"#
    );
    Config::from_toml(&text, "smtp-sim.toml").expect("valid")
}

/// What the reason for going down must contain under each fault.
fn expected_reason(b: Behaviour) -> &'static str {
    match b {
        Behaviour::Killed => "connection refused",
        Behaviour::Blackholed | Behaviour::Slow => "timed out",
        Behaviour::Error500 => "banner 554 5.3.2 sim.invalid not accepting mail: expected 220",
        Behaviour::WrongPage => "EHLO answered 550 5.7.1",
        Behaviour::Healthy => unreachable!("no fault"),
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("LVS_HC_SEED") {
        Ok(s) => vec![s.parse().expect("LVS_HC_SEED is a number")],
        Err(_) => SEEDS.to_vec(),
    }
}

fn run(scenario: Scenario, tls: Tls, test_name: &str) {
    for seed in seeds() {
        let replay = format!(
            "reproduce with: LVS_HC_SEED={seed} cargo test -p lvs-hc-sim --test smtp {test_name}"
        );
        let schedule = FaultSchedule::new(config(tls), scenario, seed, None)
            .unwrap_or_else(|e| panic!("{e}\n{replay}"));
        if let Err(e) = check(&schedule) {
            panic!(
                "smtp ({tls:?}) scenario {} failed with seed {seed}:\n{e}\n{}\n{replay}",
                scenario.name(),
                schedule.describe()
            );
        }
    }
}

fn check(schedule: &FaultSchedule) -> Result<(), String> {
    let world = run_schedule(schedule, None, |_, _| Ok(()))?;
    let world = world.borrow();
    let mut trace = world.trace.clone();
    trace.sort_by_key(|l| l.at);
    let trace_text: String = trace
        .iter()
        .map(|l| format!("  t+{:?} {}\n", l.at, l.text))
        .collect();
    // Each server's faults: when each began and what it was.
    let mut faults: Vec<(Duration, SocketAddr, Behaviour)> = Vec::new();
    for a in &schedule.actions {
        if let Action::Set(server, b) = a.action {
            if b != Behaviour::Healthy {
                faults.push((a.at, server, b));
            }
        }
    }
    if faults.is_empty() {
        return Err("the schedule has no fault: nothing was tested".into());
    }
    let downs: Vec<(Duration, SocketAddr, String)> = world
        .events
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::ServerHealth {
                server,
                fallback: false,
                to: Health::Down,
                reason,
                ..
            } => Some((e.at, *server, reason.clone())),
            _ => None,
        })
        .collect();
    for (at, server, reason) in &downs {
        // The fault in force for this server when it went down: the latest begun before.
        let Some((_, _, b)) = faults.iter().rfind(|(t, s, _)| s == server && t <= at) else {
            return Err(format!(
                "{server} went down at t+{at:?} ({reason}) before any fault struck it\n{trace_text}"
            ));
        };
        if !reason.contains(expected_reason(*b)) {
            return Err(format!(
                "{server} went down at t+{at:?} {} with `{reason}`, expected `{}`\n{trace_text}",
                b.label(),
                expected_reason(*b)
            ));
        }
    }
    // Every server struck went down at some point (faults last several intervals).
    for (_, server, b) in &faults {
        if !downs.iter().any(|(_, s, _)| s == server) {
            return Err(format!(
                "{server} was {} but never went down\n{trace_text}",
                b.label()
            ));
        }
    }
    // Healed: both real servers are in the table at their weights.
    let key = schedule.config.services[0].key;
    for s in &schedule.config.services[0].servers {
        let in_table = world
            .kernel
            .state
            .table
            .dest(&key, &s.addr)
            .map(|d| d.weight);
        if in_table != Some(s.weight) {
            return Err(format!(
                "after healing, {} is {in_table:?} in the table, expected weight {}\n{trace_text}",
                s.addr, s.weight
            ));
        }
    }
    Ok(())
}

#[test]
fn smtp_killed_servers() {
    run(Scenario::Kill, Tls::Plain, "smtp_killed_servers");
}

#[test]
fn smtp_blackholed_servers() {
    run(Scenario::Blackhole, Tls::Plain, "smtp_blackholed_servers");
}

#[test]
fn smtp_slow_servers() {
    run(Scenario::Slow, Tls::Plain, "smtp_slow_servers");
}

#[test]
fn smtp_servers_answering_554() {
    run(Scenario::Error500, Tls::Plain, "smtp_servers_answering_554");
}

#[test]
fn smtp_servers_refusing_ehlo() {
    run(
        Scenario::WrongPage,
        Tls::Plain,
        "smtp_servers_refusing_ehlo",
    );
}

#[test]
fn smtp_starttls_killed_servers() {
    run(
        Scenario::Kill,
        Tls::StartTls,
        "smtp_starttls_killed_servers",
    );
}

#[test]
fn smtp_starttls_servers_refusing_ehlo() {
    run(
        Scenario::WrongPage,
        Tls::StartTls,
        "smtp_starttls_servers_refusing_ehlo",
    );
}

#[test]
fn a_configuration_with_a_ping_check_is_refused() {
    let text = r#"
[[service]]
address = "192.168.0.102:25"

[[service.check]]
type = "ping"

[[service.server]]
address = "192.168.0.179:25"
"#;
    let config = Config::from_toml(text, "ping.toml").expect("valid");
    match FaultSchedule::new(config, Scenario::Kill, 1, None) {
        Ok(_) => panic!("a ping check was simulated"),
        Err(e) => assert_eq!(
            e.to_string(),
            "cannot simulate this configuration: 192.168.0.179:25 has a ping check, and the \
             simulated network carries no ICMP: simulate a copy of the configuration without \
             ping checks; `lvs-hc run` pings with real sockets"
        ),
    }
}
