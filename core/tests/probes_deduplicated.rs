//! A server reached through several services with the same address, port and check is probed
//! once, not once per service.

mod harness;

use harness::{addr, at, Harness};

const SERVICE: &str = r#"
[[service]]
address = "VIP"
[[service.check]]
type = "tcp"
interval = "1s"
[[service.server]]
address = "192.168.0.179:80"
"#;

#[test]
fn shared_server_and_check_are_probed_once() {
    let one = SERVICE.replace("VIP", "192.168.0.101:80");
    let two = format!("{one}{}", SERVICE.replace("VIP", "192.168.0.102:80"));
    let mut single = Harness::new(&one, Default::default());
    let mut double = Harness::new(&two, Default::default());
    single.run_until(at(30.0));
    double.run_until(at(30.0));
    let rs = addr("192.168.0.179:80");
    assert_eq!(double.engine.probe_count(), 1);
    assert_eq!(double.probes_sent[&rs], single.probes_sent[&rs]);
    assert_eq!(
        double.kernel.dest_count(),
        2,
        "both services got the server"
    );
}

#[test]
fn different_checks_are_probed_separately() {
    let one = SERVICE.replace("VIP", "192.168.0.101:80");
    let other = SERVICE
        .replace("VIP", "192.168.0.102:80")
        .replace("interval = \"1s\"", "interval = \"2s\"");
    let h = Harness::new(&format!("{one}{other}"), Default::default());
    assert_eq!(h.engine.probe_count(), 2);
}
