//! Withdrawal (the daemon's cleanup on exit): every managed service is deleted, after a fresh
//! read of the table, with failed deletions retried on the usual backoff; probing stops and
//! services lvs-hc does not manage are left alone.

mod harness;

use std::time::Duration;

use harness::{at, Harness};
use lvs_hc_core::{parse_save, EventKind, Instant};

const CHECK: &str = "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";
const OTHER: &str = "-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.0.0.2:53 -m -w 1\n";
const DELETE: &str = "ipvsadm -D -t 192.168.0.101:80";

/// The failures of `op_line` from `since` on: when, which attempt, and the wait before the
/// next.
fn failures(h: &Harness, op_line: &str, since: Instant) -> Vec<(Instant, u32, Duration)> {
    h.events
        .iter()
        .filter(|e| e.at >= since)
        .filter_map(|e| match &e.kind {
            EventKind::ApplyFailed {
                op,
                attempt,
                retry_in,
                ..
            } if op.to_string() == op_line => Some((e.at, *attempt, *retry_in)),
            _ => None,
        })
        .collect()
}

#[test]
fn failed_deletions_are_retried_with_backoff_until_the_services_are_gone() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), parse_save(OTHER).unwrap());
    h.run_until(at(3.0));
    assert_eq!(
        h.dests(),
        [
            "192.168.0.179:80 w2",
            "192.168.0.180:80 w1",
            "10.0.0.2:53 w1"
        ]
    );
    let probes_before: usize = h.probes_sent.values().sum();
    let applied_before = h.applied.len();

    h.fail_ops = true;
    h.withdraw();
    h.run_until(at(5.0));
    let t0 = at(3.0);
    let ms = |n: u64| t0 + Duration::from_millis(n);
    assert_eq!(
        failures(&h, DELETE, t0),
        [
            (ms(0), 1, Duration::from_millis(250)),
            (ms(250), 2, Duration::from_millis(500)),
            (ms(750), 3, Duration::from_secs(1)),
            (ms(1750), 4, Duration::from_secs(2)),
        ],
        "{:#?}",
        h.event_lines()
    );
    assert!(!h.engine.withdrawn());
    assert_eq!(h.kernel.services.len(), 2);

    h.fail_ops = false;
    h.run_until(at(8.0));
    assert!(h.engine.withdrawn());
    assert_eq!(
        h.applied_lines()[applied_before..],
        [DELETE],
        "nothing but the deletion"
    );
    assert_eq!(
        h.applied_at(DELETE),
        Some(ms(3750)),
        "applied at the fifth attempt, when its backoff ended"
    );
    assert_eq!(h.dests(), ["10.0.0.2:53 w1"], "the unmanaged service stays");
    assert!(h
        .event_lines()
        .contains(&format!("applied `{DELETE}`: cleanup on exit")));
    let probes_after: usize = h.probes_sent.values().sum();
    assert!(
        probes_after == probes_before,
        "probing stops: {probes_before} -> {probes_after}"
    );
}

#[test]
fn withdrawal_reads_the_table_before_deleting() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(3.0));
    let applied_before = h.applied.len();
    // Deleted by hand since the last read: nothing is left to delete, and no deletion fails.
    h.kernel.services.clear();
    h.withdraw();
    h.run_until(at(4.0));
    assert!(h.engine.withdrawn());
    assert_eq!(h.applied_lines()[applied_before..], [] as [String; 0]);
    assert_eq!(failures(&h, DELETE, at(3.0)), []);
}

#[test]
fn an_engine_serving_is_not_withdrawn() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(3.0));
    h.kernel.services.clear();
    h.run_until(at(10.0));
    assert!(!h.engine.withdrawn());
    assert_eq!(
        h.kernel.services.len(),
        1,
        "the service was repaired, not withdrawn"
    );
}

#[test]
fn a_probe_in_flight_when_withdrawal_begins_is_not_run_again() {
    let check = format!("{CHECK}\njitter = \"0s\"");
    let mut h = Harness::new(&harness::seed_config(&check, ""), Default::default());
    // RS1's probes take their whole timeout: the one started at 3s is in flight until 3.1s.
    h.set("192.168.0.179:80", harness::Behaviour::Blackhole);
    h.run_until(at(3.05));
    let sent = h.probes_sent[&harness::addr("192.168.0.179:80")];
    h.withdraw();
    h.run_until(at(10.0));
    assert_eq!(h.probes_sent[&harness::addr("192.168.0.179:80")], sent);
    assert!(h.engine.withdrawn());
}
