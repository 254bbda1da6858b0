//! Started against a table that already holds the configured servers, the engine removes
//! nothing that is not known to be failed and adds nothing that has not passed.

mod harness;

use harness::{at, Behaviour, Harness};
use lvs_hc_core::parse_save;

const CHECK: &str = r#"interval = "2s"
timeout = "1s"
rise = 2
fall = 3"#;

const TABLE: &str = "\
-A -t 192.168.0.101:80 -s wlc
-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2
-a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1
";

#[test]
fn restart_with_healthy_servers_changes_nothing() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), parse_save(TABLE).unwrap());
    h.run_until(at(60.0));
    assert_eq!(h.applied_lines(), Vec::<String>::new());
    assert!(
        h.event_lines()
            .iter()
            .all(|l| !l.contains("changed outside")),
        "{:?}",
        h.event_lines()
    );
}

#[test]
fn restart_removes_only_a_server_known_to_be_down() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), parse_save(TABLE).unwrap());
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(3.0));
    assert_eq!(
        h.applied_lines(),
        Vec::<String>::new(),
        "one failure is not a verdict"
    );
    h.run_until(at(60.0));
    assert_eq!(
        h.applied_lines(),
        ["ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80"]
    );
}

#[test]
fn restart_with_a_stale_weight_keeps_it_until_the_server_passes() {
    let table = TABLE.replace("-r 192.168.0.180:80 -g -w 1", "-r 192.168.0.180:80 -g -w 0");
    let mut h = Harness::new(
        &harness::seed_config(CHECK, ""),
        parse_save(&table).unwrap(),
    );
    h.set("192.168.0.180:80", Behaviour::Blackhole);
    h.run_until(at(4.0));
    assert_eq!(
        h.dests(),
        ["192.168.0.179:80 w2", "192.168.0.180:80 w0"],
        "unknown: left as found"
    );
    h.set("192.168.0.180:80", Behaviour::Healthy);
    h.run_until(at(10.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
}

#[test]
fn nothing_is_applied_before_the_first_snapshot() {
    let config = lvs_hc_core::Config::from_toml(&harness::seed_config(CHECK, ""), "t").unwrap();
    let mut engine = lvs_hc_core::Engine::new(config, lvs_hc_core::Instant::ZERO, 1);
    let mut saw_read = false;
    loop {
        match engine.poll_output() {
            lvs_hc_core::Output::Apply(op) => panic!("applied {op} before reading the table"),
            lvs_hc_core::Output::ReadTable => saw_read = true,
            lvs_hc_core::Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert!(saw_read);
}
