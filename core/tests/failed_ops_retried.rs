//! A failed IPVS operation is retried with growing backoff until the table converges.

mod harness;

use harness::{at, Harness};
use lvs_hc_core::EventKind;
use std::time::Duration;

#[test]
fn operations_failing_for_a_while_are_retried_until_the_table_converges() {
    let check = "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";
    let mut h = Harness::new(&harness::seed_config(check, ""), Default::default());
    h.fail_ops = true;
    h.run_until(at(4.0));
    assert!(h.kernel.is_empty());
    let retries: Vec<(u32, Duration)> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ApplyFailed {
                attempt,
                retry_in,
                op,
                ..
            } if op.to_string().starts_with("ipvsadm -A") => Some((*attempt, *retry_in)),
            _ => None,
        })
        .collect();
    assert!(retries.len() >= 3, "{retries:?}");
    assert_eq!(retries[0], (1, Duration::from_millis(250)));
    assert_eq!(retries[1], (2, Duration::from_millis(500)));
    assert_eq!(retries[2], (3, Duration::from_secs(1)));
    let failures = retries.len();

    h.fail_ops = false;
    h.run_until(at(12.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    assert_eq!(h.engine.pending_ops(), 0);
    assert!(failures < 10, "backoff keeps the retries few: {failures}");
}

#[test]
fn an_operation_no_longer_needed_forgets_its_failures() {
    let check = "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";
    let mut h = Harness::new(&harness::seed_config(check, ""), Default::default());
    // The service and RS2 get in; RS1's add keeps failing, its backoff growing.
    h.set("192.168.0.179:80", harness::Behaviour::Refused);
    h.run_until(at(2.0));
    h.set("192.168.0.179:80", harness::Behaviour::Healthy);
    h.fail_ops = true;
    h.run_until(at(6.0));
    // RS1 fails again: its add is no longer needed, and nothing is pending for it.
    h.set("192.168.0.179:80", harness::Behaviour::Refused);
    h.fail_ops = false;
    h.run_until(at(12.0));
    assert_eq!(h.dests(), ["192.168.0.180:80 w1"]);
    // Much later RS1 returns while operations fail once more: the first retry waits the
    // first backoff, not the grown one.
    let before = h.events.len();
    h.fail_ops = true;
    h.set("192.168.0.179:80", harness::Behaviour::Healthy);
    h.run_until(at(14.0));
    let first = h.events[before..].iter().find_map(|e| match &e.kind {
        EventKind::ApplyFailed {
            attempt,
            retry_in,
            op,
            ..
        } if op.to_string().contains("-r 192.168.0.179:80") => Some((*attempt, *retry_in)),
        _ => None,
    });
    assert_eq!(first, Some((1, Duration::from_millis(250))));
}
