//! A weight reported by a dynamic-weight check replaces the configured one while it lasts.

mod harness;

use harness::{at, Behaviour, Harness};

const CONFIG: &str = r#"
[[service]]
address = "192.168.0.101:80"
[[service.check]]
type = "exec"
command = ["/usr/local/bin/load-weight", "{ip}"]
dynamic_weight = true
interval = "1s"
rise = 1
fall = 1
[[service.server]]
address = "192.168.0.179:80"
weight = 10
"#;

#[test]
fn reported_weight_is_applied_and_followed() {
    let mut h = Harness::new(CONFIG, Default::default());
    h.run_until(at(2.0));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w10"],
        "no report: the configured weight"
    );
    h.set("192.168.0.179:80", Behaviour::Weight(3));
    h.run_until(at(4.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w3"]);
    assert!(h
        .event_lines()
        .contains(&"192.168.0.179:80 reports weight 3".to_string()));
    h.set("192.168.0.179:80", Behaviour::Weight(0));
    h.run_until(at(6.0));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w0"],
        "weight 0 keeps the server in, quiescent"
    );
}
