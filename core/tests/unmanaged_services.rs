//! Only the services the configuration names are managed, unless it claims the whole table.

mod harness;

use harness::{at, Harness};
use lvs_hc_core::parse_save;

const CONFIG: &str = r#"
MANAGE
[[service]]
address = "192.168.0.101:80"
[[service.server]]
address = "192.168.0.179:80"
"#;

const OTHER: &str = "-A -u 10.0.0.1:53 -s rr\n-a -u 10.0.0.1:53 -r 10.0.0.2:53 -m -w 1\n";

#[test]
fn services_not_in_the_configuration_are_left_alone() {
    let mut h = Harness::new(&CONFIG.replace("MANAGE", ""), parse_save(OTHER).unwrap());
    h.run_until(at(30.0));
    assert_eq!(h.kernel.services.len(), 2);
    assert!(
        h.applied_lines().iter().all(|l| !l.contains("10.0.0.1")),
        "{:?}",
        h.applied_lines()
    );
}

#[test]
fn manage_all_deletes_services_not_in_the_configuration() {
    let mut h = Harness::new(
        &CONFIG.replace("MANAGE", "[daemon]\nmanage = \"all\""),
        parse_save(OTHER).unwrap(),
    );
    h.run_until(at(1.0));
    assert_eq!(h.kernel.services.len(), 1);
    assert!(h
        .applied_lines()
        .contains(&"ipvsadm -D -u 10.0.0.1:53".to_string()));
}
