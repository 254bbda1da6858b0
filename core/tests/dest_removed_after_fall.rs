//! A server that stops answering leaves the table after `fall` failures: within
//! fall × interval (+ timeout) of its death, and not before `fall` probes have failed.

mod harness;

use harness::{at, Behaviour, Harness};
use std::time::Duration;

const CHECK: &str = r#"interval = "1s"
timeout = "500ms"
rise = 2
fall = 3
jitter = "0s""#;

fn converged() -> Harness {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(5.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    h
}

#[test]
fn refused_server_leaves_after_fall_consecutive_failures() {
    let mut h = converged();
    let killed = at(10.5);
    h.run_until(killed);
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(20.0));
    let removed = h
        .applied_at("ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80")
        .expect("removed");
    let fall_probes_later = killed + Duration::from_secs(2);
    assert!(
        removed > fall_probes_later,
        "removed at {removed}, before the 3rd failing probe could run"
    );
    assert!(
        removed <= killed + Duration::from_secs(3) + Duration::from_millis(500),
        "removed late: {removed}"
    );
    assert_eq!(h.dests(), ["192.168.0.180:80 w1"]);
    let down = h
        .event_lines()
        .into_iter()
        .find(|l| l.contains("down"))
        .unwrap();
    assert_eq!(
        down,
        "TCP 192.168.0.101:80: 192.168.0.179:80 down: 3 consecutive failures, last: connection refused"
    );
}

#[test]
fn blackholed_server_leaves_within_fall_intervals_plus_timeout() {
    let mut h = converged();
    let killed = at(10.5);
    h.run_until(killed);
    h.set("192.168.0.180:80", Behaviour::Blackhole);
    h.run_until(at(20.0));
    let removed = h
        .applied_at("ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.180:80")
        .expect("removed");
    assert!(
        removed <= killed + Duration::from_secs(3) + Duration::from_millis(500),
        "removed late: {removed}"
    );
    assert!(removed >= killed + Duration::from_secs(2) + Duration::from_millis(500));
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l.ends_with("last: timed out after 500ms")));
}

#[test]
fn a_single_failure_below_fall_removes_nothing() {
    let mut h = converged();
    h.run_until(at(10.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(11.5));
    h.set("192.168.0.179:80", Behaviour::Healthy);
    h.run_until(at(12.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(14.2));
    h.set("192.168.0.179:80", Behaviour::Healthy);
    h.run_until(at(30.0));
    let real_deletes = h
        .applied_lines()
        .into_iter()
        .filter(|l| l.starts_with("ipvsadm -d") && l.contains("-r 192.168.0.1"));
    assert_eq!(real_deletes.collect::<Vec<_>>(), Vec::<String>::new());
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
}
