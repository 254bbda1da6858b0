//! The same seed and inputs give the same outputs; another seed spreads probes differently.

mod harness;

use harness::{at, Behaviour, Harness};

fn run(seed: u64) -> (Vec<String>, Vec<String>) {
    let check = "interval = \"1s\"\ntimeout = \"300ms\"\nrise = 2\nfall = 2\njitter = \"500ms\"";
    let mut h = Harness::with_seed(&harness::seed_config(check, ""), Default::default(), seed);
    h.run_until(at(5.0));
    h.set("192.168.0.179:80", Behaviour::Blackhole);
    h.run_until(at(12.0));
    h.set("192.168.0.179:80", Behaviour::Healthy);
    h.run_until(at(20.0));
    let ops = h
        .applied
        .iter()
        .map(|(t, op)| format!("{t} {op}"))
        .collect();
    let events = h.events.iter().map(ToString::to_string).collect();
    (ops, events)
}

#[test]
fn same_seed_same_trace() {
    assert_eq!(run(11), run(11));
}

#[test]
fn different_seeds_jitter_differently() {
    assert_ne!(run(11).1, run(12).1);
}
