//! Administrative states, apart from health: an operator (or a maintenance file) drains,
//! disables and enables servers; a disabled server is still probed; the strictest mark wins;
//! marks set before the first table read hold from the first operation on; a reload that
//! drops a server forgets its marks.

mod harness;

use harness::{addr, at, Harness};
use lvs_hc_core::admin::{AdminSource, AdminState};
use lvs_hc_core::{DestCounters, EventKind, ServiceKey, Table};

const CHECK: &str = r#"interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s""#;

const RS1: &str = "192.168.0.179:80";
const RS2: &str = "192.168.0.180:80";
const OPERATOR: AdminSource = AdminSource::Operator;

fn connections(h: &mut Harness, server: &str, active: u32) {
    let key = (ServiceKey::Tcp(addr("192.168.0.101:80")), addr(server));
    h.counters.dests.insert(
        key,
        DestCounters {
            active,
            ..Default::default()
        },
    );
}

fn seed(policy: &str) -> Harness {
    Harness::new(&harness::seed_config(CHECK, policy), Table::new())
}

#[test]
fn a_disabled_server_leaves_at_once_is_still_probed_and_returns_when_enabled() {
    let mut h = seed("");
    h.run_until(at(2.5));
    assert_eq!(h.dests(), [format!("{RS1} w2"), format!("{RS2} w1")]);
    h.admin(RS1, OPERATOR, AdminState::Disabled, "kernel patching");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(h.dests(), [format!("{RS2} w1")], "out at once");
    let probed = h.probes_sent[&addr(RS1)];
    h.run_until(at(10.0));
    assert!(
        h.probes_sent[&addr(RS1)] >= probed + 5,
        "a disabled server is still probed"
    );
    let status = h.engine.status();
    let rs1 = status.iter().find(|s| s.server == addr(RS1)).unwrap();
    assert_eq!(rs1.health, lvs_hc_core::Health::Up);
    assert_eq!(rs1.admin[0].state, AdminState::Disabled);
    assert_eq!(rs1.admin[0].reason, "kernel patching");
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l == "TCP 192.168.0.101:80: 192.168.0.179:80 disabled by admin: kernel patching"));
    h.admin(RS1, OPERATOR, AdminState::Enabled, "");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(h.dests(), [format!("{RS1} w2"), format!("{RS2} w1")]);
    assert!(h.engine.admin_marks().is_empty());
}

#[test]
fn a_drain_holds_weight_0_until_the_connections_end_and_the_server_stays_out() {
    let mut h = seed("");
    connections(&mut h, RS1, 12);
    h.run_until(at(2.5));
    h.admin(RS1, OPERATOR, AdminState::Drain, "patching");
    h.run_until(at(8.0));
    assert_eq!(
        h.weight_of(RS1),
        Some(0),
        "weight 0 while connections remain"
    );
    let status = h.engine.status();
    assert!(
        status
            .iter()
            .find(|s| s.server == addr(RS1))
            .unwrap()
            .draining
    );
    connections(&mut h, RS1, 0);
    h.run_until(at(14.0));
    assert_eq!(
        h.weight_of(RS1),
        None,
        "out once the kernel shows 0 connections"
    );
    assert!(h
        .event_lines()
        .iter()
        .any(|l| l.ends_with("drain of 192.168.0.179:80 finished: connections reached 0")));
    let status = h.engine.status();
    let rs1 = status.iter().find(|s| s.server == addr(RS1)).unwrap();
    assert!(rs1.drained && !rs1.draining);
    h.run_until(at(30.0));
    assert_eq!(
        h.weight_of(RS1),
        None,
        "a finished drain stays out until enabled"
    );
    h.admin(RS1, OPERATOR, AdminState::Enabled, "");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(h.weight_of(RS1), Some(2));
}

#[test]
fn a_drain_ends_at_the_services_drain_timeout() {
    let mut h = seed("on_failure = \"drain\"\ndrain_timeout = \"20s\"");
    connections(&mut h, RS1, 12);
    h.run_until(at(2.5));
    h.admin(RS1, OPERATOR, AdminState::Drain, "");
    h.run_until(at(21.0));
    assert_eq!(h.weight_of(RS1), Some(0));
    h.run_until(at(23.0));
    assert_eq!(
        h.weight_of(RS1),
        None,
        "out after drain_timeout despite connections"
    );
}

#[test]
fn disabled_and_draining_servers_do_not_count_for_the_quorum() {
    let mut h = seed("");
    h.run_until(at(2.5));
    h.admin(RS1, OPERATOR, AdminState::Disabled, "");
    h.admin(RS2, OPERATOR, AdminState::Drain, "");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(
        h.dests(),
        ["127.0.0.1:80 w5".to_string(), format!("{RS2} w0")],
        "the fallback is in: no real server counts"
    );
}

#[test]
fn the_strictest_mark_is_in_force_and_each_source_clears_only_its_own() {
    let mut h = seed("");
    h.run_until(at(2.5));
    h.admin(RS1, OPERATOR, AdminState::Drain, "operator drain");
    h.admin(RS1, AdminSource::Maintenance, AdminState::Disabled, "file");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(h.weight_of(RS1), None, "disabled beats drain");
    h.admin(RS1, AdminSource::Maintenance, AdminState::Enabled, "");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(
        h.weight_of(RS1),
        None,
        "the operator's drain still holds, and a server that was out has nothing to drain"
    );
    let marks = h.engine.admin_marks();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].2.source, marks[0].2.state),
        (OPERATOR, AdminState::Drain)
    );
    h.admin(RS1, OPERATOR, AdminState::Enabled, "");
    h.run_for(std::time::Duration::from_millis(10));
    assert_eq!(h.weight_of(RS1), Some(2));
}

#[test]
fn marks_restored_before_the_first_table_read_hold_from_the_first_operation() {
    // lvs-hc restarts: the kernel still has both servers; RS1 was disabled, RS2 draining.
    let kernel = lvs_hc_core::parse_save(
        "-A -t 192.168.0.101:80 -s wlc\n\
         -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n\
         -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1\n",
    )
    .unwrap();
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), kernel);
    connections(&mut h, RS2, 3);
    h.admin(RS1, OPERATOR, AdminState::Disabled, "");
    h.admin(RS2, OPERATOR, AdminState::Drain, "");
    h.run_until(at(3.0));
    let lines = h.applied_lines();
    assert_eq!(
        lines,
        [
            "ipvsadm -a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5",
            "ipvsadm -e -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 0",
            "ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80",
        ],
        "RS1 deleted, RS2 drained (so the fallback is in): neither back in between"
    );
}

#[test]
fn a_reload_that_drops_a_server_forgets_its_marks() {
    let mut h = seed("");
    h.run_until(at(2.5));
    h.admin(RS1, OPERATOR, AdminState::Disabled, "");
    let without_rs1 = harness::seed_config(CHECK, "").replace(
        "[[service.server]]\naddress = \"192.168.0.179:80\"\nweight = 2\n",
        "",
    );
    h.reload(&without_rs1);
    h.run_for(std::time::Duration::from_millis(10));
    assert!(h.engine.admin_marks().is_empty());
    assert!(h.events.iter().any(|e| matches!(
        &e.kind,
        EventKind::AdminForgotten { server, state: AdminState::Disabled, .. } if *server == addr(RS1)
    )));
    // Put back, it is an ordinary server again.
    h.reload(&harness::seed_config(CHECK, ""));
    h.run_until(at(6.0));
    assert_eq!(h.weight_of(RS1), Some(2));
}

#[test]
fn a_change_for_a_server_not_configured_is_ignored_and_said() {
    let mut h = seed("");
    h.run_until(at(2.5));
    h.engine.handle_input(lvs_hc_core::Input::Admin {
        now: h.now,
        change: lvs_hc_core::admin::AdminChange {
            service: ServiceKey::Tcp(addr("192.168.0.101:80")),
            server: addr("10.9.9.9:80"),
            source: OPERATOR,
            state: AdminState::Disabled,
            reason: String::new(),
            drain_timeout: None,
        },
    });
    h.run_for(std::time::Duration::from_millis(10));
    assert!(h.engine.admin_marks().is_empty());
    assert!(h
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::AdminIgnored { .. })));
    assert_eq!(h.dests().len(), 2);
}

#[test]
fn a_server_that_fails_while_drained_by_hand_follows_the_failure_policy() {
    let mut h = seed("");
    connections(&mut h, RS1, 12);
    h.run_until(at(2.5));
    h.admin(RS1, OPERATOR, AdminState::Drain, "patching");
    h.run_until(at(4.0));
    assert_eq!(h.weight_of(RS1), Some(0));
    h.set(RS1, harness::Behaviour::Refused);
    h.run_until(at(7.0));
    assert_eq!(
        h.weight_of(RS1),
        None,
        "on_failure = \"remove\": a dead server is removed"
    );
}
