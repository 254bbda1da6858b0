//! `on_failure = "drain"`: a failed server goes to weight 0 and is deleted once its connections
//! end, or when the drain timeout passes.

mod harness;

use harness::{addr, at, Behaviour, Harness};
use lvs_hc_core::{DestCounters, ServiceKey};

const CHECK: &str = r#"interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s""#;

fn counters(h: &mut Harness, active: u32) {
    let key = (
        ServiceKey::Tcp(addr("192.168.0.101:80")),
        addr("192.168.0.179:80"),
    );
    h.counters.dests.insert(
        key,
        DestCounters {
            active,
            ..Default::default()
        },
    );
}

#[test]
fn drained_server_is_deleted_when_its_connections_end() {
    let policy = "on_failure = \"drain\"\ndrain_timeout = \"1m\"";
    let mut h = Harness::new(&harness::seed_config(CHECK, policy), Default::default());
    counters(&mut h, 7);
    h.run_until(at(2.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(10.0));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w0", "192.168.0.180:80 w1"],
        "draining at weight 0"
    );
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l.contains("draining 192.168.0.179:80")));
    counters(&mut h, 0);
    h.run_until(at(16.0));
    assert_eq!(h.dests(), ["192.168.0.180:80 w1"]);
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l.ends_with("drain of 192.168.0.179:80 finished: connections reached 0")));
}

#[test]
fn drain_ends_at_its_timeout_even_with_connections() {
    let policy = "on_failure = \"drain\"\ndrain_timeout = \"20s\"";
    let mut h = Harness::new(&harness::seed_config(CHECK, policy), Default::default());
    counters(&mut h, 7);
    h.run_until(at(2.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(22.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w0", "192.168.0.180:80 w1"]);
    h.run_until(at(24.0));
    assert_eq!(h.dests(), ["192.168.0.180:80 w1"]);
}

#[test]
fn recovered_server_returns_from_drain_at_its_weight() {
    let policy = "on_failure = \"drain\"";
    let mut h = Harness::new(&harness::seed_config(CHECK, policy), Default::default());
    counters(&mut h, 7);
    h.run_until(at(2.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(5.5));
    h.set("192.168.0.179:80", Behaviour::Healthy);
    h.run_until(at(7.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
}

#[test]
fn zero_policy_keeps_a_failed_server_at_weight_zero() {
    let mut h = Harness::new(
        &harness::seed_config(CHECK, "on_failure = \"zero\""),
        Default::default(),
    );
    h.run_until(at(2.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(60.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w0", "192.168.0.180:80 w1"]);
}
