//! With every real server down the fallback comes in; when one returns it goes out.

mod harness;

use harness::{at, Behaviour, Harness};

const CHECK: &str = r#"interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s""#;

#[test]
fn fallback_in_when_all_down_and_out_when_one_returns() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(2.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(4.5));
    assert_eq!(
        h.dests(),
        ["192.168.0.180:80 w1"],
        "one healthy server meets quorum 1"
    );
    h.set("192.168.0.180:80", Behaviour::Refused);
    h.run_until(at(6.5));
    assert_eq!(h.dests(), ["127.0.0.1:80 w5"]);
    // The fallback went in before the last server left: never an empty service.
    let lines = h.applied_lines();
    let fb = lines
        .iter()
        .position(|l| l.contains("-r 127.0.0.1:80"))
        .unwrap();
    let last = lines
        .iter()
        .position(|l| l == "ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.180:80")
        .unwrap();
    assert!(fb < last, "{lines:?}");
    assert!(h
        .event_lines()
        .contains(&"TCP 192.168.0.101:80: fallback in: 0 healthy, quorum 1".to_string()));

    h.set("192.168.0.180:80", Behaviour::Healthy);
    h.run_until(at(8.5));
    assert_eq!(h.dests(), ["192.168.0.180:80 w1"]);
    assert!(h
        .event_lines()
        .contains(&"TCP 192.168.0.101:80: fallback out: 1 healthy, quorum 1".to_string()));
}

#[test]
fn exclusive_fallback_replaces_healthy_servers_below_quorum() {
    let policy = "quorum = 2\nfallback_mode = \"exclusive\"";
    let mut h = Harness::new(&harness::seed_config(CHECK, policy), Default::default());
    h.run_until(at(2.5));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(4.5));
    assert_eq!(
        h.dests(),
        ["127.0.0.1:80 w5"],
        "below quorum only the fallback serves"
    );
}

#[test]
fn alongside_fallback_joins_the_remaining_healthy_servers() {
    let mut h = Harness::new(
        &harness::seed_config(CHECK, "quorum = 2"),
        Default::default(),
    );
    h.run_until(at(2.5));
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.run_until(at(4.5));
    assert_eq!(h.dests(), ["127.0.0.1:80 w5", "192.168.0.180:80 w1"]);
}

#[test]
fn restart_with_only_the_fallback_serving_never_empties_the_service() {
    let table = lvs_hc_core::parse_save(
        "-A -t 192.168.0.101:80 -s wlc\n-a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5\n",
    )
    .unwrap();
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), table);
    h.set("192.168.0.179:80", Behaviour::Blackhole);
    h.set("192.168.0.180:80", Behaviour::Blackhole);
    h.run_until(at(10.0));
    assert!(
        h.applied_lines()
            .iter()
            .all(|l| !l.contains("-d -t 192.168.0.101:80 -r 127.0.0.1:80")),
        "the serving fallback was removed: {:?}",
        h.applied_lines()
    );
    assert_eq!(h.dests(), ["127.0.0.1:80 w5"]);
}

#[test]
fn a_fallback_with_checks_is_kept_until_its_first_verdict() {
    let config = harness::seed_config(CHECK, "").replace(
        "[[service.fallback]]\naddress = \"127.0.0.1:80\"\nweight = 5",
        "[[service.fallback]]\naddress = \"127.0.0.1:80\"\nweight = 5\n[[service.fallback.check]]\ntype = \"tcp\"\ninterval = \"1s\"\ntimeout = \"800ms\"\nrise = 1\nfall = 1",
    );
    let table = lvs_hc_core::parse_save(
        "-A -t 192.168.0.101:80 -s wlc\n-a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5\n",
    )
    .unwrap();
    let mut h = Harness::new(&config, table);
    h.set("192.168.0.179:80", Behaviour::Refused);
    h.set("192.168.0.180:80", Behaviour::Refused);
    h.set("127.0.0.1:80", Behaviour::Blackhole);
    h.run_until(at(0.5));
    assert_eq!(
        h.dests(),
        ["127.0.0.1:80 w5"],
        "no verdict on the fallback yet: it stays"
    );
    h.run_until(at(3.0));
    assert_eq!(h.dests(), Vec::<String>::new(), "a failed fallback leaves");
}
