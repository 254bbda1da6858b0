//! Benchmarks of the pure core: the diff of two 10,000-destination tables, and engine
//! throughput in probe results per second. Results: docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lvs_hc_core::{
    diff, Config, Counters, DestParams, Engine, Forward, Input, Instant, Output, ProbeOutcome,
    ServiceEntry, ServiceKey, ServiceParams, Table,
};

const SERVICES: u32 = 100;
const PER_SERVICE: u32 = 100;

fn vip(s: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, (s / 250) as u8, (s % 250) as u8 + 1)),
        80,
    )
}

fn rs(s: u32, d: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(
            10,
            1 + (s / 200) as u8,
            (s % 200) as u8,
            d as u8 + 1,
        )),
        80,
    )
}

/// 100 services × 100 destinations; `variant` changes weights of every 10th destination and
/// swaps one destination per service for another.
fn table(variant: bool) -> Table {
    let mut t = Table::new();
    for s in 0..SERVICES {
        let mut dests = BTreeMap::new();
        for d in 0..PER_SERVICE {
            let weight = if variant && d % 10 == 0 { 7 } else { 1 };
            let addr = if variant && d == 0 {
                rs(s, 150)
            } else {
                rs(s, d)
            };
            dests.insert(addr, DestParams::new(Forward::Dr, weight));
        }
        t.services.insert(
            ServiceKey::Tcp(vip(s)),
            ServiceEntry::new(ServiceParams::new("wlc"), dests),
        );
    }
    t
}

fn bench_diff(c: &mut Criterion) {
    let a = table(false);
    let b = table(true);
    let mut g = c.benchmark_group("diff_10k_destinations");
    g.throughput(Throughput::Elements(u64::from(SERVICES * PER_SERVICE)));
    g.bench_function("identical", |bench| bench.iter(|| diff(&a, &a)));
    g.bench_function("ten_percent_changed", |bench| bench.iter(|| diff(&b, &a)));
    g.finish();
}

fn config_10k(rise_fall: u32) -> Config {
    let mut text = String::new();
    for s in 0..SERVICES {
        let _ = write!(
            text,
            "[[service]]\naddress = \"{}\"\n[[service.check]]\ntype = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nrise = {rise_fall}\nfall = {rise_fall}\n",
            vip(s)
        );
        for d in 0..PER_SERVICE {
            let _ = write!(text, "[[service.server]]\naddress = \"{}\"\n", rs(s, d));
        }
    }
    Config::from_toml(&text, "bench.toml").unwrap()
}

/// One simulated second: the engine is woken at each of its deadlines, every due probe is
/// answered at once, and every operation and table read is answered. Returns the number of
/// probe results fed.
fn one_second(
    engine: &mut Engine,
    now: &mut Instant,
    kernel: &mut Table,
    outcome: &dyn Fn(SocketAddr) -> ProbeOutcome,
) -> u64 {
    let end = *now + Duration::from_secs(1);
    let mut results = 0;
    let mut inputs = Vec::new();
    loop {
        match engine.poll_output() {
            Output::Probe(req) => {
                results += 1;
                inputs.push(Input::ProbeResult {
                    now: *now,
                    id: req.id,
                    outcome: outcome(req.server),
                });
            }
            Output::Apply(op) => {
                let result = kernel.apply(&op);
                inputs.push(Input::Applied {
                    now: *now,
                    op,
                    result,
                });
            }
            Output::ReadTable => inputs.push(Input::Snapshot {
                now: *now,
                table: kernel.clone(),
                counters: Counters::default(),
                skipped: Vec::new(),
            }),
            Output::Sync(op) => inputs.push(Input::SyncApplied {
                now: *now,
                op,
                result: Ok(()),
            }),
            Output::ReadRoutes => inputs.push(Input::Routes {
                now: *now,
                result: Ok(Vec::new()),
            }),
            Output::Route(op) => inputs.push(Input::RouteApplied {
                now: *now,
                op,
                result: Ok(()),
            }),
            Output::Event(_) => {}
            Output::Timeout(deadline) => {
                if inputs.is_empty() {
                    if deadline > end {
                        *now = end;
                        return results;
                    }
                    *now = deadline.max(*now);
                    engine.handle_input(Input::Timeout(*now));
                }
                for input in inputs.drain(..) {
                    engine.handle_input(input);
                }
            }
        }
    }
}

fn warmed_engine(rise_fall: u32) -> (Engine, Instant, Table) {
    let mut engine = Engine::new(config_10k(rise_fall), Instant::ZERO, 1);
    let mut now = Instant::ZERO;
    let mut kernel = Table::new();
    for _ in 0..3 {
        one_second(&mut engine, &mut now, &mut kernel, &|_| {
            ProbeOutcome::Pass { weight: None }
        });
    }
    // Steady state: every probe has run at least once since the table filled.
    assert_eq!(kernel.dest_count(), 10_000);
    (engine, now, kernel)
}

fn bench_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_10k_servers");
    g.throughput(Throughput::Elements(u64::from(SERVICES * PER_SERVICE)));
    g.sample_size(20);
    g.bench_function("probe_results_steady", |bench| {
        bench.iter_batched_ref(
            || warmed_engine(2),
            |(engine, now, kernel)| {
                one_second(engine, now, kernel, &|_| ProbeOutcome::Pass {
                    weight: None,
                })
            },
            BatchSize::LargeInput,
        )
    });
    // With rise = fall = 1, every 10th server fails this round: 1,000 transitions, 1,000
    // destination deletes and the kernel round trips they need.
    g.bench_function("probe_results_10pct_transitions", |bench| {
        bench.iter_batched_ref(
            || warmed_engine(1),
            |(engine, now, kernel)| {
                one_second(engine, now, kernel, &|server| {
                    if server.ip().to_string().ends_with('1') {
                        ProbeOutcome::Fail {
                            reason: "refused".into(),
                        }
                    } else {
                        ProbeOutcome::Pass { weight: None }
                    }
                })
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_diff, bench_engine);
criterion_main!(benches);
