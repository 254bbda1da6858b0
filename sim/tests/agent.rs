//! agent checks in the simulator: the shipped driver, agent probe and engine against simulated
//! agents whose replies a script changes over time, each server also checked by tcp. With
//! explicit seeds (`LVS_HC_SEED=n` replays one), each run asserts on the simulated kernel
//! table:
//!
//! - `50%` halves a server's weight, and `100%` restores it;
//! - `drain` takes the server to weight 0, then out once the kernel counts no connections to
//!   it, or once the drain timeout passes; it stays out until `ready`;
//! - `maint` takes it out at once while it is still probed; `ready` brings it back;
//! - `down` takes it out as a failed check would;
//! - an agent that cannot be heard (stopped, silent, talking nonsense) changes nothing: what
//!   it said last holds, and a server whose agent never answered serves as if it had none.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc::simulate::{run_schedule, Action, AgentReply, FaultSchedule, TimedAction, World};
use lvs_hc_core::{Config, EventKind, Health};

/// Seeds run when `LVS_HC_SEED` names none.
const SEEDS: [u64; 3] = [1, 2, 3];

/// The two real servers: weight 10 and weight 4.
const RS1: &str = "192.168.0.179:80";
const RS2: &str = "192.168.0.180:80";

/// One service of two servers, each with a tcp check and an agent check on port 5555 that
/// sends `hello\n` first; every check each second, rise 1, fall 1; the table read every
/// second. `service_extra`: more keys of the service.
fn config(service_extra: &str) -> Config {
    let text = format!(
        r#"
[daemon]
resync_interval = "1s"
retry_backoff = "100ms"
retry_backoff_max = "1s"

[[service]]
address = "192.168.0.101:80"
{service_extra}

[[service.check]]
type = "tcp"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 1

[[service.check]]
type = "agent"
port = 5555
send = "hello\n"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 1

[[service.server]]
address = "{RS1}"
weight = 10

[[service.server]]
address = "{RS2}"
weight = 4
"#
    );
    Config::from_toml(&text, "agent-sim.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn addr(a: &str) -> SocketAddr {
    a.parse().unwrap()
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `at` seconds: the server's agent answers so.
fn agent(at: f64, server: &str, reply: AgentReply) -> TimedAction {
    TimedAction {
        at: secs(at),
        action: Action::Agent(addr(server), reply),
    }
}

fn says(line: &str) -> AgentReply {
    AgentReply::Says(line.into())
}

/// `at` seconds: the kernel counts `n` active connections to the server.
fn connections(config: &Config, at: f64, server: &str, n: u32) -> TimedAction {
    TimedAction {
        at: secs(at),
        action: Action::Connections(config.services[0].key, addr(server), n),
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var("LVS_HC_SEED") {
        Ok(s) => vec![s.parse().expect("LVS_HC_SEED is a number")],
        Err(_) => SEEDS.to_vec(),
    }
}

/// Each server's weight in the kernel table over time: (from, weight; `None`: out).
type Timeline = BTreeMap<SocketAddr, Vec<(Duration, Option<u32>)>>;

/// A finished run: the table over time and the world at the end.
struct Run {
    timeline: Timeline,
    world: lvs_hc::simulate::WorldRef,
    trace: String,
}

impl Run {
    /// The server's weight from `from` to `to` (seconds) was `want` throughout.
    fn held(&self, server: &str, from: f64, to: f64, want: Option<u32>) -> Result<(), String> {
        let s = addr(server);
        let line = self.timeline.get(&s).map(Vec::as_slice).unwrap_or(&[]);
        let (from, to) = (secs(from), secs(to));
        let at_from = line.iter().rfind(|(t, _)| *t <= from).and_then(|(_, w)| *w);
        let during = line.iter().filter(|(t, _)| *t > from && *t <= to);
        if at_from == want && during.clone().all(|(_, w)| *w == want) {
            return Ok(());
        }
        let shown: Vec<String> = line
            .iter()
            .map(|(t, w)| match w {
                Some(w) => format!("t+{t:?} weight {w}"),
                None => format!("t+{t:?} out"),
            })
            .collect();
        Err(format!(
            "{server} from t+{from:?} to t+{to:?}: expected {}, the table had: {}\n{}",
            match want {
                Some(w) => format!("weight {w}"),
                None => "out of the table".into(),
            },
            shown.join(", "),
            self.trace
        ))
    }

    /// Probes of the server that finished between `from` and `to` (seconds).
    fn probes(&self, server: &str, from: f64, to: f64) -> usize {
        let (s, from, to) = (addr(server), secs(from), secs(to));
        self.world
            .borrow()
            .probes
            .iter()
            .filter(|p| p.server == s && p.at >= from && p.at <= to)
            .count()
    }

    /// The server's health changes to down, with their reasons.
    fn downs(&self, server: &str) -> Vec<String> {
        let s = addr(server);
        self.world
            .borrow()
            .events
            .iter()
            .filter_map(|e| match &e.event.kind {
                EventKind::ServerHealth {
                    server,
                    to: Health::Down,
                    reason,
                    ..
                } if *server == s => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Runs `config` for `duration` seconds with `actions`, for `seed`.
fn simulate(config: Config, duration: f64, actions: Vec<TimedAction>, seed: u64) -> Run {
    let key = config.services[0].key;
    let servers: Vec<SocketAddr> = config.services[0].servers.iter().map(|s| s.addr).collect();
    let schedule = FaultSchedule::scripted(config, seed, secs(duration), actions)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut timeline = Timeline::new();
    let record = |at: Duration, w: &World| {
        for s in &servers {
            let now = w.kernel.state.table.dest(&key, s).map(|d| d.weight);
            let line = timeline.entry(*s).or_default();
            if line.last().map(|(_, w)| *w) != Some(now) {
                line.push((at, now));
            }
        }
        Ok(())
    };
    let world = run_schedule(&schedule, None, record)
        .unwrap_or_else(|e| panic!("{e}\n{}", schedule.describe()));
    let trace = {
        let w = world.borrow();
        let mut lines = w.trace.clone();
        lines.sort_by_key(|l| l.at);
        let mut text = schedule.describe();
        for l in lines {
            text.push_str(&format!("  t+{:?} {}\n", l.at, l.text));
        }
        text
    };
    Run {
        timeline,
        world,
        trace,
    }
}

/// Runs `test` for every seed; a failure names the seed and how to replay it.
fn for_seeds(name: &str, test: impl Fn(u64) -> Result<(), String>) {
    for seed in seeds() {
        eprintln!("LVS_HC_SEED={seed}");
        if let Err(e) = test(seed) {
            panic!(
                "{name}, seed {seed}: {e}\nreproduce with: LVS_HC_SEED={seed} cargo test -p \
                 lvs-hc-sim --test agent {name}"
            );
        }
    }
}

#[test]
fn an_agent_reply_of_50_percent_halves_the_weight() {
    for_seeds("an_agent_reply_of_50_percent_halves_the_weight", |seed| {
        let actions = vec![agent(6.0, RS1, says("50%")), agent(13.0, RS1, says("100%"))];
        let run = simulate(config(""), 20.0, actions, seed);
        run.held(RS1, 3.0, 6.0, Some(10))?;
        run.held(RS1, 9.0, 13.0, Some(5))?;
        run.held(RS1, 16.0, 20.0, Some(10))?;
        run.held(RS2, 3.0, 20.0, Some(4))?;
        // What the agent check sends reaches the agent, on every connection.
        let w = run.world.borrow();
        let received = w
            .agent_received
            .get(&addr(RS1))
            .cloned()
            .unwrap_or_default();
        if received.len() < 10 || received.iter().any(|r| r != b"hello\n") {
            return Err(format!("RS1's agent received {received:?}"));
        }
        Ok(())
    });
}

#[test]
fn drain_takes_the_server_to_weight_0_then_out_once_its_connections_end() {
    for_seeds(
        "drain_takes_the_server_to_weight_0_then_out_once_its_connections_end",
        |seed| {
            let c = config("");
            let actions = vec![
                connections(&c, 1.0, RS1, 7),
                agent(6.0, RS1, says("drain")),
                connections(&c, 14.0, RS1, 0),
                agent(22.0, RS1, says("ready")),
            ];
            let run = simulate(c, 30.0, actions, seed);
            run.held(RS1, 3.0, 6.0, Some(10))?;
            // Weight 0 while the kernel still counts its connections.
            run.held(RS1, 9.0, 14.0, Some(0))?;
            // Out once they are gone, and out while the agent goes on saying drain.
            run.held(RS1, 17.0, 22.0, None)?;
            run.held(RS1, 25.0, 30.0, Some(10))?;
            run.held(RS2, 3.0, 30.0, Some(4))?;
            Ok(())
        },
    );
}

#[test]
fn drain_ends_at_the_drain_timeout_when_connections_never_end() {
    for_seeds(
        "drain_ends_at_the_drain_timeout_when_connections_never_end",
        |seed| {
            let c = config("on_failure = \"drain\"\ndrain_timeout = \"6s\"");
            let actions = vec![connections(&c, 1.0, RS1, 7), agent(6.0, RS1, says("drain"))];
            let run = simulate(c, 22.0, actions, seed);
            run.held(RS1, 3.0, 6.0, Some(10))?;
            run.held(RS1, 9.0, 11.5, Some(0))?;
            // Six seconds after the agent first said drain (however often it says it again),
            // with a probe interval and a table read to spare.
            run.held(RS1, 15.5, 22.0, None)?;
            Ok(())
        },
    );
}

#[test]
fn maint_takes_the_server_out_while_it_is_still_probed_and_ready_brings_it_back() {
    for_seeds(
        "maint_takes_the_server_out_while_it_is_still_probed_and_ready_brings_it_back",
        |seed| {
            let actions = vec![
                agent(6.0, RS1, says("maint # kernel update")),
                agent(14.0, RS1, says("ready")),
            ];
            let run = simulate(config(""), 22.0, actions, seed);
            run.held(RS1, 3.0, 6.0, Some(10))?;
            run.held(RS1, 9.0, 14.0, None)?;
            // Two checks a second: both go on while the server is out.
            let probed = run.probes(RS1, 9.0, 14.0);
            if probed < 8 {
                return Err(format!(
                    "RS1 was probed {probed} times while in maintenance, expected about 10\n{}",
                    run.trace
                ));
            }
            run.held(RS1, 17.0, 22.0, Some(10))?;
            run.held(RS2, 3.0, 22.0, Some(4))?;
            // Maintenance is no failure.
            if !run.downs(RS1).is_empty() {
                return Err(format!(
                    "RS1 went down: {:?}\n{}",
                    run.downs(RS1),
                    run.trace
                ));
            }
            Ok(())
        },
    );
}

#[test]
fn an_agent_saying_down_takes_the_server_out_as_a_failure() {
    for_seeds(
        "an_agent_saying_down_takes_the_server_out_as_a_failure",
        |seed| {
            let actions = vec![
                agent(6.0, RS1, says("down # disk full")),
                agent(12.0, RS1, says("up")),
            ];
            let run = simulate(config(""), 18.0, actions, seed);
            run.held(RS1, 3.0, 6.0, Some(10))?;
            run.held(RS1, 9.0, 12.0, None)?;
            run.held(RS1, 15.0, 18.0, Some(10))?;
            let downs = run.downs(RS1);
            if downs.len() != 1 || !downs[0].contains("disk full") {
                return Err(format!(
                    "expected RS1 down once for `disk full`, got {downs:?}\n{}",
                    run.trace
                ));
            }
            Ok(())
        },
    );
}

#[test]
fn an_agent_that_cannot_be_heard_changes_nothing() {
    for_seeds("an_agent_that_cannot_be_heard_changes_nothing", |seed| {
        let actions = vec![
            agent(5.0, RS1, says("50%")),
            // RS1's agent, once it said 50%, stops, falls silent, talks nonsense: RS1 keeps
            // the weight its agent last asked for.
            agent(10.0, RS1, AgentReply::Stopped),
            agent(15.0, RS1, AgentReply::Silent),
            agent(20.0, RS1, says("hello there")),
            agent(25.0, RS1, says("1001%")),
        ];
        let run = simulate(config(""), 30.0, actions, seed);
        run.held(RS1, 8.0, 30.0, Some(5))?;
        run.held(RS2, 3.0, 30.0, Some(4))?;
        if !run.downs(RS1).is_empty() {
            return Err(format!(
                "RS1 went down: {:?}\n{}",
                run.downs(RS1),
                run.trace
            ));
        }
        Ok(())
    });
}

#[test]
fn a_server_whose_agent_never_answers_serves_as_if_it_had_none() {
    for_seeds(
        "a_server_whose_agent_never_answers_serves_as_if_it_had_none",
        |seed| {
            // RS2's agent never runs; RS1's accepts and never says a word.
            let actions = vec![
                agent(0.0, RS2, AgentReply::Stopped),
                agent(0.0, RS1, AgentReply::Silent),
            ];
            let run = simulate(config(""), 12.0, actions, seed);
            run.held(RS1, 3.0, 12.0, Some(10))?;
            run.held(RS2, 3.0, 12.0, Some(4))?;
            Ok(())
        },
    );
}
