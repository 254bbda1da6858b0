//! `slow_start`: a server returning to service (from failure, or enabled by an operator) ramps
//! from weight 1 to its full weight in at most ten steps, at most one a second; the ramp starts
//! again if it fails again; servers seen for the first time (lvs-hc starting) take their full
//! weight at once.

mod harness;

use std::time::Duration;

use harness::{at, Behaviour, Harness};
use lvs_hc_core::admin::{AdminSource, AdminState};
use lvs_hc_core::Table;

const CHECK: &str = r#"interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s""#;

const RS1: &str = "192.168.0.179:80";

fn config(slow_start: &str) -> String {
    harness::seed_config(CHECK, &format!("slow_start = \"{slow_start}\""))
        .replace("weight = 2", "weight = 100")
}

/// RS1's weight in each kernel edit (or addition) of it, in order.
fn rs1_weights(h: &Harness) -> Vec<(f64, u32)> {
    h.applied
        .iter()
        .filter_map(|(t, op)| match op {
            lvs_hc_core::Op::AddDest { dest, params, .. }
            | lvs_hc_core::Op::EditDest { dest, params, .. }
                if dest.to_string() == RS1 =>
            {
                Some((t.since_origin().as_secs_f64(), params.weight))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_server_seen_for_the_first_time_takes_its_full_weight_at_once() {
    let mut h = Harness::new(&config("30s"), Table::new());
    h.run_until(at(3.0));
    assert_eq!(h.weight_of(RS1), Some(100));
    assert!(h.engine.status().iter().all(|s| s.slow_start.is_none()));
}

#[test]
fn a_recovered_server_ramps_up_in_ten_steps_to_its_full_weight() {
    let mut h = Harness::new(&config("30s"), Table::new());
    h.run_until(at(3.0));
    h.set(RS1, Behaviour::Refused);
    h.run_until(at(6.0));
    assert_eq!(h.weight_of(RS1), None);
    h.set(RS1, Behaviour::Healthy);
    h.applied.clear();
    h.run_until(at(45.0));
    let ramp = rs1_weights(&h);
    let weights: Vec<u32> = ramp.iter().map(|(_, w)| *w).collect();
    assert_eq!(weights, [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    let start = ramp[0].0;
    for pair in ramp.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!((2.99..=3.01).contains(&gap), "steps 3 s apart: {ramp:?}");
    }
    assert!(
        (ramp[10].0 - start - 30.0).abs() < 0.01,
        "full weight after 30 s"
    );
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l.ends_with("slow start of 192.168.0.179:80 ended: full weight reached")));
}

#[test]
fn a_server_that_fails_while_ramping_starts_its_ramp_again() {
    let mut h = Harness::new(&config("10s"), Table::new());
    h.run_until(at(3.0));
    h.set(RS1, Behaviour::Refused);
    h.run_until(at(5.0));
    h.set(RS1, Behaviour::Healthy);
    h.run_until(at(10.5));
    let mid = h.weight_of(RS1).expect("in, ramping");
    assert!(mid > 1 && mid < 100, "part way: {mid}");
    h.set(RS1, Behaviour::Refused);
    h.run_until(at(12.5));
    assert_eq!(h.weight_of(RS1), None);
    h.set(RS1, Behaviour::Healthy);
    h.applied.clear();
    h.run_until(at(14.5));
    let weights: Vec<u32> = rs1_weights(&h).iter().map(|(_, w)| *w).collect();
    assert_eq!(
        weights[0], 1,
        "the ramp begins again at weight 1: {weights:?}"
    );
    let status = h.engine.status();
    let rs1 = status.iter().find(|s| s.server.to_string() == RS1).unwrap();
    assert!(rs1.slow_start.is_some());
    assert!(rs1.weight < 100);
}

#[test]
fn enabling_an_up_server_ramps_it_and_a_ramp_never_exceeds_the_configured_weight() {
    let mut h = Harness::new(&config("5s"), Table::new());
    h.run_until(at(3.0));
    h.admin(RS1, AdminSource::Operator, AdminState::Disabled, "");
    h.run_until(at(4.0));
    assert_eq!(h.weight_of(RS1), None);
    h.applied.clear();
    h.admin(RS1, AdminSource::Operator, AdminState::Enabled, "");
    h.run_until(at(12.0));
    let weights: Vec<u32> = rs1_weights(&h).iter().map(|(_, w)| *w).collect();
    assert_eq!(
        weights,
        [1, 20, 40, 60, 80, 100],
        "5 one-second steps, then full"
    );
    assert!(weights.iter().all(|w| *w <= 100));
}

#[test]
fn without_slow_start_a_recovered_server_returns_at_full_weight() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Table::new());
    h.run_until(at(3.0));
    h.set(RS1, Behaviour::Refused);
    h.run_until(at(6.0));
    h.set(RS1, Behaviour::Healthy);
    h.run_for(Duration::from_secs(3));
    assert_eq!(h.weight_of(RS1), Some(2));
}
