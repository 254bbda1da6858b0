//! `what_if` (the engine behind `lvs-hc plan`) answers what the daemon would do: for any
//! configuration, table and set of down servers, its operations applied to the table give the
//! table the engine converges to when it runs for a long while with the same servers failing
//! (drains aside: `what_if` stops while they are in progress, a long run sees them end).

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;

use harness::{addr, at, Behaviour, Harness};
use lvs_hc_core::config::FailureAction;
use lvs_hc_core::{
    what_if, Config, DestParams, Forward, ServiceEntry, ServiceKey, ServiceParams, Table,
};
use proptest::prelude::*;

/// Real servers are drawn from this pool, so services can share them.
const POOL: [&str; 4] = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"];
const FALLBACK: &str = "127.0.0.1:80";
/// A destination no configuration names.
const STRAY: &str = "10.0.9.9:80";
/// A service no configuration names.
const OTHER: &str = "10.0.0.200:80";

/// When probes run, and how results count.
#[derive(Clone, Debug)]
struct Timing {
    interval_s: u32,
    failing_s: u32,
    rise: u32,
    fall: u32,
    jitter_ms: u32,
}

/// One real server of a service.
#[derive(Clone, Debug)]
struct RealServer {
    pool: usize,
    weight: u32,
    /// Its own check, with other timing than the service's.
    own_check: Option<Timing>,
}

/// One configured service.
#[derive(Clone, Debug)]
struct Service {
    servers: Vec<RealServer>,
    /// A fallback, with a check of its own or none.
    fallback: Option<Option<Timing>>,
    quorum_pick: usize,
    on_failure: &'static str,
    new_servers: &'static str,
    fallback_mode: &'static str,
    check: Timing,
}

/// What the kernel holds of one service: its scheduler and destinations with their weights.
#[derive(Clone, Debug)]
struct KernelService {
    scheduler: &'static str,
    /// Per pool address, then the fallback, then a stray destination.
    dests: Vec<Option<u32>>,
}

#[derive(Clone, Debug)]
struct Scenario {
    manage_all: bool,
    services: Vec<Service>,
    /// Per configured service (by index), then one service no configuration names.
    kernel: Vec<Option<KernelService>>,
    down: Vec<bool>,
}

fn timing() -> impl Strategy<Value = Timing> {
    (
        1u32..=3,
        1u32..=3,
        1u32..=3,
        1u32..=3,
        prop_oneof![Just(0u32), Just(300)],
    )
        .prop_map(|(interval_s, failing, rise, fall, jitter_ms)| Timing {
            interval_s,
            failing_s: failing.min(interval_s),
            rise,
            fall,
            jitter_ms,
        })
}

fn service() -> impl Strategy<Value = Service> {
    let servers = proptest::sample::subsequence((0..POOL.len()).collect::<Vec<_>>(), 1..=3)
        .prop_flat_map(|pools| {
            let n = pools.len();
            (
                Just(pools),
                proptest::collection::vec((0u32..=3, proptest::option::weighted(0.3, timing())), n),
            )
        })
        .prop_map(|(pools, rest)| {
            pools
                .into_iter()
                .zip(rest)
                .map(|(pool, (weight, own_check))| RealServer {
                    pool,
                    weight,
                    own_check,
                })
                .collect::<Vec<_>>()
        });
    (
        servers,
        proptest::option::of(proptest::option::of(timing())),
        0usize..3,
        prop_oneof![Just("remove"), Just("zero"), Just("drain")],
        prop_oneof![Just("wait"), Just("in")],
        prop_oneof![Just("alongside"), Just("exclusive")],
        timing(),
    )
        .prop_map(
            |(servers, fallback, quorum_pick, on_failure, new_servers, fallback_mode, check)| {
                Service {
                    servers,
                    fallback,
                    quorum_pick,
                    on_failure,
                    new_servers,
                    fallback_mode,
                    check,
                }
            },
        )
}

fn kernel_service() -> impl Strategy<Value = Option<KernelService>> {
    proptest::option::of(
        (
            prop_oneof![Just("wlc"), Just("rr")],
            proptest::collection::vec(proptest::option::of(0u32..=3), POOL.len() + 2),
        )
            .prop_map(|(scheduler, dests)| KernelService { scheduler, dests }),
    )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<bool>(),
        proptest::collection::vec(service(), 1..=2),
        proptest::collection::vec(kernel_service(), 3),
        proptest::collection::vec(any::<bool>(), POOL.len()),
    )
        .prop_map(|(manage_all, services, kernel, down)| Scenario {
            manage_all,
            services,
            kernel,
            down,
        })
}

fn vip(i: usize) -> String {
    format!("192.168.0.{}:80", 101 + i)
}

fn check_toml(table: &str, t: &Timing) -> String {
    format!(
        "[[{table}]]\ntype = \"tcp\"\ninterval = \"{}s\"\nfailing_interval = \"{}s\"\n\
         timeout = \"100ms\"\nrise = {}\nfall = {}\njitter = \"{}ms\"\n",
        t.interval_s, t.failing_s, t.rise, t.fall, t.jitter_ms
    )
}

impl Scenario {
    fn config_toml(&self) -> String {
        let mut text = String::new();
        let manage = if self.manage_all { "all" } else { "configured" };
        let _ = writeln!(text, "[daemon]\nmanage = \"{manage}\"\n");
        for (i, s) in self.services.iter().enumerate() {
            let _ = writeln!(
                text,
                "[[service]]\naddress = \"{}\"\nscheduler = \"wlc\"\nquorum = {}\n\
                 on_failure = \"{}\"\nnew_servers = \"{}\"\nfallback_mode = \"{}\"",
                vip(i),
                s.quorum_pick % s.servers.len() + 1,
                s.on_failure,
                s.new_servers,
                s.fallback_mode
            );
            if s.on_failure == "drain" {
                text.push_str("drain_timeout = \"3s\"\n");
            }
            text.push_str(&check_toml("service.check", &s.check));
            for r in &s.servers {
                let _ = writeln!(
                    text,
                    "[[service.server]]\naddress = \"{}\"\nweight = {}",
                    POOL[r.pool], r.weight
                );
                if let Some(t) = &r.own_check {
                    text.push_str(&check_toml("service.server.check", t));
                }
            }
            if let Some(check) = &s.fallback {
                let _ = writeln!(
                    text,
                    "[[service.fallback]]\naddress = \"{FALLBACK}\"\nweight = 5"
                );
                if let Some(t) = check {
                    text.push_str(&check_toml("service.fallback.check", t));
                }
            }
        }
        text
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        for (i, k) in self.kernel.iter().enumerate() {
            let Some(k) = k else { continue };
            let key = if i < self.services.len() {
                ServiceKey::Tcp(addr(&vip(i)))
            } else if i == self.kernel.len() - 1 {
                ServiceKey::Tcp(addr(OTHER))
            } else {
                continue;
            };
            let names = POOL.iter().chain([&FALLBACK, &STRAY]);
            let dests: BTreeMap<SocketAddr, DestParams> = names
                .zip(&k.dests)
                .filter_map(|(a, w)| Some((addr(a), DestParams::new(Forward::Dr, (*w)?))))
                .collect();
            let params = ServiceParams::new(k.scheduler);
            table.services.insert(key, ServiceEntry::new(params, dests));
        }
        table
    }

    fn down(&self) -> BTreeSet<SocketAddr> {
        POOL.iter()
            .zip(&self.down)
            .filter(|(_, d)| **d)
            .map(|(a, _)| addr(a))
            .collect()
    }
}

/// `ops` applied one by one, as the kernel would (each must succeed).
fn replay(table: &Table, ops: &[lvs_hc_core::Op]) -> Result<Table, String> {
    let mut table = table.clone();
    for op in ops {
        table.apply(op).map_err(|e| format!("`{op}` fails: {e}"))?;
    }
    Ok(table)
}

/// `table` once the drains in progress have ended: the down real servers of draining
/// services leave (each must be at weight 0 until then).
fn drains_ended(config: &Config, down: &BTreeSet<SocketAddr>, table: &Table) -> Table {
    let mut table = table.clone();
    for svc in &config.services {
        if !matches!(svc.on_failure, FailureAction::Drain { .. }) {
            continue;
        }
        let Some(entry) = table.services.get_mut(&svc.key) else {
            continue;
        };
        for server in &svc.servers {
            if !down.contains(&server.addr) {
                continue;
            }
            if let Some(p) = entry.dests.remove(&server.addr) {
                assert_eq!(p.weight, 0, "{} drains at weight 0", server.addr);
            }
        }
    }
    table
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_if_gives_the_table_a_long_run_converges_to(s in scenario()) {
        let text = s.config_toml();
        let config = Config::from_toml(&text, "prop.toml").unwrap_or_else(|e| panic!("{e}"));
        let table = s.table();
        let down = s.down();

        let ops = what_if(&config, &table, &down);
        let planned = replay(&table, &ops).map_err(TestCaseError::fail)?;
        let planned = drains_ended(&config, &down, &planned);

        let mut run = Harness::new(&text, table.clone());
        for d in &down {
            run.set(&d.to_string(), Behaviour::Refused);
        }
        run.run_until(at(120.0));
        let lines: Vec<String> = ops.iter().map(ToString::to_string).collect();
        prop_assert_eq!(
            &planned,
            &run.kernel,
            "config:\n{}\nplanned: {:#?}\nthe long run applied: {:#?}",
            text,
            lines,
            run.applied_lines()
        );
    }
}

const TWO_TIMINGS: &str = r#"
[[service]]
address = "192.168.0.101:80"
on_failure = "drain"
drain_timeout = "1s"
new_servers = "in"
[[service.check]]
type = "tcp"
interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s"
[[service.server]]
address = "10.0.0.1:80"
[[service.server]]
address = "10.0.0.2:80"
[[service.server.check]]
type = "tcp"
interval = "10s"
timeout = "100ms"
fall = 5
jitter = "0s"
[[service.server]]
address = "10.0.0.3:80"
[[service.server]]
address = "10.0.0.4:80"
"#;

fn plan_lines(config: &str, table: &str, down: &[&str]) -> Vec<String> {
    let config = Config::from_toml(config, "t.toml").unwrap();
    let table = lvs_hc_core::parse_save(table).unwrap();
    let down: BTreeSet<SocketAddr> = down.iter().map(|d| addr(d)).collect();
    what_if(&config, &table, &down)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_drain_in_progress_stays_a_drain_even_past_its_timeout() {
    // 10.0.0.1 is down after one probe, 10.0.0.2 only after five at 10s: the first drain's
    // timeout (1s) passes long before the second verdict. Both are planned at weight 0.
    let table = "-A -t 192.168.0.101:80 -s wlc\n\
                 -a -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 1\n\
                 -a -t 192.168.0.101:80 -r 10.0.0.2:80 -g -w 1\n\
                 -a -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 1\n\
                 -a -t 192.168.0.101:80 -r 10.0.0.4:80 -g -w 1\n";
    assert_eq!(
        plan_lines(TWO_TIMINGS, table, &["10.0.0.1:80", "10.0.0.2:80"]),
        [
            "ipvsadm -e -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 0",
            "ipvsadm -e -t 192.168.0.101:80 -r 10.0.0.2:80 -g -w 0",
        ]
    );
}

#[test]
fn a_down_server_that_would_start_in_is_not_planned_at_all() {
    // With new_servers = "in" the engine adds 10.0.0.2 at once and removes it when its fifth
    // probe fails: the plan shows neither step, only where the table ends.
    let remove = TWO_TIMINGS.replace("on_failure = \"drain\"\ndrain_timeout = \"1s\"", "");
    assert_ne!(remove, TWO_TIMINGS);
    assert_eq!(
        plan_lines(&remove, "", &["10.0.0.2:80"]),
        [
            "ipvsadm -A -t 192.168.0.101:80 -s wlc",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 1",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 1",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.4:80 -g -w 1",
        ]
    );
}
