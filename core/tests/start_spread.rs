//! When more checks start together than `probe_concurrency` lets run at once (the daemon
//! starting, a reload adding a fleet), their first probes spread over the interval instead of
//! all starting within the jitter, so the start builds no backlog and the probes stay evenly
//! spread afterwards. Fewer still start within their jitter.

use std::time::Duration;

use lvs_hc_core::{Config, Engine, Input, Instant, Output, Table};

fn config(servers: u32, probe_concurrency: usize) -> Config {
    let mut text = format!(
        "[daemon]\nprobe_concurrency = {probe_concurrency}\n[[service]]\naddress = \
         \"10.0.0.1:80\"\n[[service.check]]\ntype = \"tcp\"\ninterval = \"2s\"\ntimeout = \
         \"1s\"\njitter = \"100ms\"\n"
    );
    for i in 0..servers {
        text.push_str(&format!(
            "[[service.server]]\naddress = \"10.{}.{}.{}:80\"\n",
            1 + i / 65536,
            (i / 256) % 256,
            i % 256
        ));
    }
    Config::from_toml(&text, "start-spread.toml").unwrap()
}

/// The times (since the start) of the probes the engine asks for in its first `horizon`, none
/// of them answered; the table read is answered with an empty table.
fn first_probes(mut engine: Engine, horizon: Duration) -> Vec<Duration> {
    let start = Instant::ZERO;
    let mut now = start;
    let mut starts = Vec::new();
    loop {
        let deadline = loop {
            match engine.poll_output() {
                Output::Probe(_) => starts.push(now.saturating_since(start)),
                Output::ReadTable => engine.handle_input(Input::Snapshot {
                    now,
                    table: Table::default(),
                    counters: Default::default(),
                    skipped: Vec::new(),
                }),
                Output::Apply(op) => engine.handle_input(Input::Applied {
                    now,
                    op,
                    result: Ok(()),
                }),
                Output::Sync(op) => engine.handle_input(Input::SyncApplied {
                    now,
                    op,
                    result: Ok(()),
                }),
                Output::ReadRoutes => engine.handle_input(Input::Routes {
                    now,
                    result: Ok(Vec::new()),
                }),
                Output::Route(op) => engine.handle_input(Input::RouteApplied {
                    now,
                    op,
                    result: Ok(()),
                }),
                Output::Event(_) => {}
                Output::Timeout(deadline) => break deadline,
            }
        };
        if deadline > start + horizon {
            return starts;
        }
        now = deadline;
        engine.handle_input(Input::Timeout(now));
    }
}

#[test]
fn a_fleet_starting_together_spreads_its_first_probes_over_the_interval() {
    let servers = 4096;
    let engine = Engine::new(config(servers, 1024), Instant::ZERO, 11);
    let starts = first_probes(engine, Duration::from_millis(1999));
    assert_eq!(
        starts.len(),
        servers as usize,
        "every first probe within the interval"
    );
    // Ten slices of 200 ms: each holds about a tenth (409.6) of the probes.
    let mut slices = [0usize; 10];
    for t in &starts {
        slices[(t.as_millis() / 200) as usize] += 1;
    }
    for (i, n) in slices.iter().enumerate() {
        assert!(
            (300..=520).contains(n),
            "slice {i} (from {} ms) holds {n} first probes of {servers}: {slices:?}",
            i * 200
        );
    }
}

#[test]
fn a_few_checks_start_within_their_jitter() {
    let engine = Engine::new(config(8, 1024), Instant::ZERO, 11);
    let starts = first_probes(engine, Duration::from_millis(1999));
    assert_eq!(starts.len(), 8);
    let last = starts.iter().max().unwrap();
    assert!(
        *last <= Duration::from_millis(100),
        "the last of 8 first probes started at {last:?}, after the 100 ms jitter"
    );
}

#[test]
fn as_many_as_may_run_at_once_start_within_their_jitter() {
    let engine = Engine::new(config(1024, 1024), Instant::ZERO, 11);
    let starts = first_probes(engine, Duration::from_millis(1999));
    assert_eq!(starts.len(), 1024);
    assert!(starts.iter().all(|t| *t <= Duration::from_millis(100)));
    // One more than probe_concurrency: spread over the interval.
    let engine = Engine::new(config(1025, 1024), Instant::ZERO, 11);
    let starts = first_probes(engine, Duration::from_millis(1999));
    assert_eq!(starts.len(), 1025);
    let late = starts
        .iter()
        .filter(|t| **t > Duration::from_secs(1))
        .count();
    assert!(
        (400..=620).contains(&late),
        "{late} of 1025 first probes in the second half of the interval"
    );
}
