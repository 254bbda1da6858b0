//! A reloaded configuration converges, keeping the health of unchanged servers.

mod harness;

use harness::{at, Behaviour, Harness};

const CHECK: &str = r#"interval = "1s"
timeout = "100ms"
rise = 2
fall = 2
jitter = "0s""#;

fn config(servers: &str) -> String {
    format!(
        r#"
[[service]]
address = "192.168.0.101:80"
[[service.check]]
type = "tcp"
{CHECK}
{servers}
"#
    )
}

const BEFORE: &str = r#"
[[service.server]]
address = "192.168.0.179:80"
weight = 2
[[service.server]]
address = "192.168.0.180:80"
weight = 1
"#;

const AFTER: &str = r#"
[[service.server]]
address = "192.168.0.179:80"
weight = 4
[[service.server]]
address = "192.168.0.181:80"
weight = 1
"#;

#[test]
fn reload_adds_removes_and_reweighs_keeping_health() {
    let mut h = Harness::new(&config(BEFORE), Default::default());
    h.run_until(at(3.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    let events_before = h.events.len();
    h.reload(&config(AFTER));
    h.run_until(at(6.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w4", "192.168.0.181:80 w1"]);
    let after: Vec<String> = h.events[events_before..]
        .iter()
        .map(|e| e.kind.to_string())
        .collect();
    assert!(
        after
            .iter()
            .all(|l| !l.starts_with("TCP 192.168.0.101:80: 192.168.0.179:80")),
        "an unchanged server keeps its state: {after:?}"
    );
    assert!(after
        .iter()
        .any(|l| l.contains("192.168.0.181:80 up: first probe passed")));
    assert!(after
        .iter()
        .any(|l| l.starts_with("configuration applied: 1 service (")));
}

#[test]
fn a_failed_server_stays_failed_across_a_reload() {
    let mut h = Harness::new(&config(BEFORE), Default::default());
    h.set("192.168.0.180:80", Behaviour::Refused);
    h.run_until(at(3.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2"]);
    let weight_change = BEFORE.replace("weight = 2", "weight = 3");
    h.reload(&config(&weight_change));
    h.set("192.168.0.180:80", Behaviour::Healthy);
    h.run_until(at(4.6));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w3"],
        "one pass does not bring a failed server back"
    );
    h.run_until(at(6.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w3", "192.168.0.180:80 w1"]);
}

#[test]
fn a_service_removed_from_the_config_is_deleted() {
    let two = format!(
        "{}\n[[service]]\naddress = \"192.168.0.102:443\"\n[[service.server]]\naddress = \"192.168.0.179:443\"\n",
        config(BEFORE)
    );
    let mut h = Harness::new(&two, Default::default());
    h.run_until(at(3.5));
    assert_eq!(h.kernel.services.len(), 2);
    h.reload(&config(BEFORE));
    h.run_until(at(4.0));
    assert_eq!(h.kernel.services.len(), 1);
    assert!(h
        .applied_lines()
        .contains(&"ipvsadm -D -t 192.168.0.102:443".to_string()));
}

#[test]
fn a_service_added_by_reload_that_already_exists_is_adopted() {
    let extra = "\n[[service]]\naddress = \"192.168.0.102:443\"\n[[service.server]]\naddress = \"192.168.0.179:443\"\n";
    let table = lvs_hc_core::parse_save(
        "-A -t 192.168.0.102:443 -s wlc\n-a -t 192.168.0.102:443 -r 192.168.0.179:443 -g -w 1\n",
    )
    .unwrap();
    let mut h = Harness::new(&config(BEFORE), table);
    h.run_until(at(3.5));
    h.reload(&format!("{}{extra}", config(BEFORE)));
    h.run_until(at(8.0));
    let lines = h.event_lines();
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("failed") && !l.contains("changed outside")),
        "{lines:?}"
    );
    assert!(
        h.applied_lines()
            .iter()
            .all(|l| !l.contains("192.168.0.102")),
        "{:?}",
        h.applied_lines()
    );
}
