//! A failed server returns after `rise` consecutive passes, at its configured weight, and the
//! faster failing interval shortens the wait.

mod harness;

use harness::{at, Behaviour, Harness};
use std::time::Duration;

#[test]
fn failed_server_returns_after_rise_passes_at_its_weight() {
    let check = r#"interval = "2s"
failing_interval = "500ms"
timeout = "200ms"
rise = 3
fall = 2
jitter = "0s""#;
    let mut h = Harness::new(&harness::seed_config(check, ""), Default::default());
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(10.0));
    assert_eq!(
        h.dests(),
        ["192.168.0.180:80 w1"],
        "never passed, never added"
    );
    let healed = at(10.1);
    h.run_until(healed);
    h.set("192.168.0.179:80", Behaviour::Healthy);
    h.run_until(at(20.0));
    let added = h
        .applied_at("ipvsadm -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2")
        .expect("added");
    // Probes run every 500ms while the server is down, so three passes take at most
    // 3 × 500ms after healing.
    assert!(
        added > healed + Duration::from_millis(500),
        "added at {added}: before 3 passes"
    );
    assert!(
        added <= healed + Duration::from_millis(1502),
        "added late at {added}"
    );
    let up = h
        .event_lines()
        .into_iter()
        .find(|l| l.contains(" up: ") && l.contains("179"))
        .unwrap();
    assert_eq!(
        up,
        "TCP 192.168.0.101:80: 192.168.0.179:80 up: 3 consecutive passes"
    );
}

#[test]
fn recovery_after_being_up_needs_rise_passes() {
    let check = r#"interval = "1s"
timeout = "100ms"
rise = 3
fall = 1
jitter = "0s""#;
    let mut h = Harness::new(&harness::seed_config(check, ""), Default::default());
    h.run_until(at(3.5));
    h.set("192.168.0.180:80", Behaviour::Refused);
    h.run_until(at(6.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2"]);
    h.set("192.168.0.180:80", Behaviour::Healthy);
    h.run_until(at(8.2));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w2"],
        "two passes are not enough"
    );
    h.run_until(at(9.2));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l.ends_with("192.168.0.180:80 up: 3 consecutive passes")));
}
