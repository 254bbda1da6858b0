//! A fault of the director (no descriptors, no memory, a check program that cannot start) is no
//! verdict on the server: however long it lasts, nothing leaves or enters the table, the fault
//! is reported once when it starts and once when it ends, and the engine lists it meanwhile.

mod harness;

use harness::{at, Behaviour, Harness};
use lvs_hc_core::EventKind;

const CHECK: &str = r#"interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
jitter = "0s""#;

#[test]
fn healthy_servers_stay_while_their_probes_cannot_run() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(5.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    let before = h.applied.len();
    h.set("192.168.0.179:80", Behaviour::DirectorFault);
    h.set("192.168.0.180:80", Behaviour::DirectorFault);
    h.run_until(at(65.0));
    assert_eq!(
        h.applied.len(),
        before,
        "a minute of faults changed the table: {:?}",
        &h.applied_lines()[before..]
    );
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    let faults = h.engine.probe_faults();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert_eq!(faults[0].server, harness::addr("192.168.0.179:80"));
    assert_eq!(faults[0].fault.reason, "too many open files (EMFILE)");
    assert!(faults[0].fault.since > at(5.0) && faults[0].fault.since <= at(6.1));
    let statuses = h.engine.status();
    assert!(statuses
        .iter()
        .filter(|s| !s.fallback)
        .all(|s| s.health == lvs_hc_core::Health::Up));
    let reported: Vec<String> = h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ProbeFault { .. }))
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(
        reported,
        [
            "probe of 192.168.0.179:80 (http GET /) cannot run on this director: too many open \
             files (EMFILE); no verdict, 192.168.0.179:80 keeps its state",
            "probe of 192.168.0.180:80 (http GET /) cannot run on this director: too many open \
             files (EMFILE); no verdict, 192.168.0.180:80 keeps its state",
        ],
        "reported once each, not once per probe"
    );

    h.set("192.168.0.179:80", Behaviour::Healthy);
    h.set("192.168.0.180:80", Behaviour::Healthy);
    h.run_until(at(70.0));
    assert_eq!(h.engine.probe_fault_count(), 0);
    let cleared: Vec<String> = h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ProbeFaultCleared { .. }))
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert!(
        cleared[0].starts_with("probe of 192.168.0.179:80 (http GET /) runs again after 1m"),
        "{cleared:?}"
    );
    assert_eq!(h.applied.len(), before);
}

#[test]
fn faults_between_failures_neither_add_nor_reset_them() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    // Probes start at whole seconds and end 1ms later; a behaviour applies to probes sent after
    // it is set.
    h.run_until(at(5.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(6.5)); // one failure, at 6s
    h.set("192.168.0.179:80", Behaviour::DirectorFault);
    h.run_until(at(30.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(31.5));
    assert_eq!(
        h.dests(),
        ["192.168.0.180:80 w1"],
        "the failure before the faults and the one after are 2 in a row (fall 2)"
    );
}

#[test]
fn a_new_server_whose_probes_cannot_run_holds_the_fallback_back() {
    // Both servers' first probes cannot run: no verdict, so neither counts as down and the
    // fallback stays out (as for servers not probed yet); the table gets no real server either.
    let config = harness::seed_config(CHECK, "quorum = 1");
    let mut h = Harness::new(&config, Default::default());
    h.set("192.168.0.179:80", Behaviour::DirectorFault);
    h.set("192.168.0.180:80", Behaviour::DirectorFault);
    h.run_until(at(20.0));
    assert_eq!(h.dests(), Vec::<String>::new(), "{:?}", h.applied_lines());
    assert!(h
        .first_event(|k| matches!(k, EventKind::Fallback { active: true, .. }))
        .is_none());
    h.set("192.168.0.180:80", Behaviour::Healthy);
    h.run_until(at(25.0));
    assert_eq!(h.dests(), ["192.168.0.180:80 w1"]);
}
