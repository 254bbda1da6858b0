//! Changes made to the table behind lvs-hc's back are repaired within one resync interval.

mod harness;

use harness::{addr, at, Harness};
use lvs_hc_core::{DestParams, Forward, Op, ServiceKey};
use std::time::Duration;

const CHECK: &str = r#"interval = "1s"
timeout = "100ms"
rise = 1
fall = 1"#;

fn vip() -> ServiceKey {
    ServiceKey::Tcp(addr("192.168.0.101:80"))
}

fn converged() -> Harness {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(3.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    h
}

fn assert_repaired_within_resync(h: &mut Harness) {
    let changed = h.now;
    h.run_for(Duration::from_secs(5) + Duration::from_millis(1));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w2", "192.168.0.180:80 w1"],
        "not repaired since {changed}"
    );
    assert!(
        h.events
            .iter()
            .any(|e| e.at > changed && e.kind.to_string().contains("table changed outside lvs-hc")),
        "{:?}",
        h.event_lines()
    );
}

#[test]
fn deleted_destination_is_restored() {
    let mut h = converged();
    h.kernel
        .apply(&Op::DelDest {
            service: vip(),
            dest: addr("192.168.0.179:80"),
        })
        .unwrap();
    assert_repaired_within_resync(&mut h);
}

#[test]
fn edited_weight_is_restored() {
    let mut h = converged();
    let params = DestParams::new(Forward::Dr, 50);
    h.kernel
        .apply(&Op::EditDest {
            service: vip(),
            dest: addr("192.168.0.180:80"),
            params,
        })
        .unwrap();
    assert_repaired_within_resync(&mut h);
}

#[test]
fn flushed_table_is_rebuilt() {
    let mut h = converged();
    h.kernel = Default::default();
    assert_repaired_within_resync(&mut h);
}

#[test]
fn foreign_destination_in_a_managed_service_is_removed() {
    let mut h = converged();
    let params = DestParams::new(Forward::Dr, 1);
    h.kernel
        .apply(&Op::AddDest {
            service: vip(),
            dest: addr("192.168.0.199:80"),
            params,
        })
        .unwrap();
    assert_repaired_within_resync(&mut h);
}
