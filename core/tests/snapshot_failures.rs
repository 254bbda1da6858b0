//! Reading the table can fail; the engine applies nothing blind and retries the read.

mod harness;

use harness::{at, Harness};

#[test]
fn nothing_is_applied_until_a_read_succeeds() {
    let check = "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";
    let mut h = Harness::new(&harness::seed_config(check, ""), Default::default());
    h.fail_reads = true;
    h.run_until(at(10.0));
    assert!(h.applied.is_empty(), "{:?}", h.applied_lines());
    let failures = h
        .event_lines()
        .iter()
        .filter(|l| l.starts_with("reading the IPVS table failed"))
        .count();
    assert!(
        (3..=20).contains(&failures),
        "retried with backoff, not in a loop: {failures}"
    );
    h.fail_reads = false;
    h.run_until(at(16.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
}
