//! `what_if` on cases an operator asks `lvs-hc plan` about, with the exact answer.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use lvs_hc_core::{parse_save, what_if, Config};

const SEED_TOPOLOGY: &str = "[[service]]\naddress = \"192.168.0.101:80\"\n\
    [[service.server]]\naddress = \"192.168.0.179:80\"\nweight = 2\n\
    [[service.server]]\naddress = \"192.168.0.180:80\"\n\
    [[service.fallback]]\naddress = \"127.0.0.1:80\"\nweight = 5\n";

const SERVING: &str = "-A -t 192.168.0.101:80 -s wlc\n\
    -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n\
    -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1\n";

fn plan(config: &str, actual: &str, down: &[&str]) -> Vec<String> {
    let config = Config::from_toml(config, "what-if.toml").unwrap();
    let actual = parse_save(actual).unwrap();
    let down: BTreeSet<SocketAddr> = down.iter().map(|d| d.parse().unwrap()).collect();
    what_if(&config, &actual, &down)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_real_server_down_in_a_serving_table_brings_the_fallback_in() {
    assert_eq!(
        plan(
            SEED_TOPOLOGY,
            SERVING,
            &["192.168.0.179:80", "192.168.0.180:80"]
        ),
        [
            "ipvsadm -a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5",
            "ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80",
            "ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.180:80",
        ]
    );
}

#[test]
fn one_server_down_in_a_serving_table_leaves() {
    assert_eq!(
        plan(SEED_TOPOLOGY, SERVING, &["192.168.0.180:80"]),
        ["ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.180:80"]
    );
}

#[test]
fn nothing_down_in_a_serving_table_is_nothing_to_do() {
    assert!(plan(SEED_TOPOLOGY, SERVING, &[]).is_empty());
}

#[test]
fn an_empty_table_gets_the_service_and_the_servers_that_pass() {
    assert_eq!(
        plan(SEED_TOPOLOGY, "", &["192.168.0.179:80"]),
        [
            "ipvsadm -A -t 192.168.0.101:80 -s wlc",
            "ipvsadm -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1",
        ]
    );
}
