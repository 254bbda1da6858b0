//! examples/ha, the pair of directors: Debian's keepalived checks both VRRP configurations
//! (`keepalived --config-test`, in a network namespace with the `eth0` they name, since it
//! refuses an interface that does not exist), and the three files agree with one another.
//!
//! keepalived is fetched like the other Debian peers (`common/peers.rs`). The namespace needs
//! root: without it the keepalived test fails, naming the command to run, rather than skipping.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use common::netns::Netns;
use common::peers::debian_program;
use lvs_hc_core::table::ServiceKey;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/ha")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(example(name)).unwrap()
}

/// A keepalived configuration's directives: comments (`#`, `!`) and blank lines dropped, each
/// line trimmed.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(['#', '!']).next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The value of the directive `key` (`priority 150` → `150`), which must be there once.
fn value<'a>(lines: &'a [String], key: &str) -> &'a str {
    let found: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .collect();
    assert_eq!(found.len(), 1, "`{key}` in {lines:?}");
    found[0].trim()
}

/// The lines inside the block `name { ... }`.
fn block<'a>(lines: &'a [String], name: &str) -> &'a [String] {
    let start = lines
        .iter()
        .position(|l| *l == format!("{name} {{"))
        .unwrap_or_else(|| panic!("no `{name} {{` in {lines:?}"));
    let len = lines[start + 1..]
        .iter()
        .position(|l| l == "}")
        .expect("the block ends");
    &lines[start + 1..start + 1 + len]
}

/// Runs Debian's keepalived on `file` inside `ns`: its exit status and what it printed.
fn config_test(ns: &Netns, file: &std::path::Path) -> (bool, String) {
    let keepalived = debian_program("keepalived", "usr/sbin/keepalived");
    let library_path = format!("LD_LIBRARY_PATH={}", keepalived.library_path);
    let out = ns.exec(&[
        "env",
        &library_path,
        keepalived.path.to_str().unwrap(),
        "--config-test",
        "-f",
        file.to_str().unwrap(),
    ]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[test]
fn keepalived_accepts_both_configurations_of_the_pair() {
    let ns = Netns::new("ha_example", "keepalived");
    // The check can fail: without the interface the files name, keepalived refuses them.
    let (passed, printed) = config_test(&ns, &example("keepalived-A.conf"));
    assert!(!passed, "accepted without eth0:\n{printed}");
    assert!(printed.contains("interface eth0"), "{printed}");

    ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0-peer",
    ]);
    for name in ["keepalived-A.conf", "keepalived-B.conf"] {
        let (passed, printed) = config_test(&ns, &example(name));
        assert!(
            passed,
            "keepalived --config-test -f examples/ha/{name}:\n{printed}"
        );
    }

    // And it reads what the files say: a router id out of range is refused.
    std::fs::create_dir_all(&ns.state_dir).unwrap();
    let broken = ns.state_dir.join("broken.conf");
    std::fs::write(
        &broken,
        read("keepalived-A.conf").replace("virtual_router_id 51", "virtual_router_id 256"),
    )
    .unwrap();
    let (passed, printed) = config_test(&ns, &broken);
    assert!(!passed, "accepted virtual_router_id 256:\n{printed}");
    assert!(printed.contains("256"), "{printed}");
}

#[test]
fn the_pair_runs_vrrp_only_with_the_same_instance_on_both_directors() {
    let a = directives(&read("keepalived-A.conf"));
    let b = directives(&read("keepalived-B.conf"));
    for (name, lines) in [("A", &a), ("B", &b)] {
        for key in [
            "virtual_server",
            "lvs_sync_daemon",
            "vrrp_strict",
            "authentication",
        ] {
            assert!(
                !lines.iter().any(|l| l.starts_with(key)),
                "keepalived-{name}.conf has `{key}`"
            );
        }
        assert_eq!(
            value(lines, "state"),
            "BACKUP",
            "{name}: nopreempt needs it"
        );
        assert!(lines.iter().any(|l| l == "nopreempt"), "{name}");
    }
    // The same instance but for who they are.
    let differing: Vec<(&String, &String)> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
    assert_eq!(a.len(), b.len());
    assert_eq!(
        differing,
        [
            (
                &"router_id lvs-a".to_string(),
                &"router_id lvs-b".to_string()
            ),
            (&"priority 150".to_string(), &"priority 100".to_string()),
        ]
    );
}

#[test]
fn the_vrrp_addresses_are_the_vips_of_lvs_hc_toml_and_the_pair_shares_one_id() {
    let config = lvs_hc::load_config(&example("lvs-hc.toml")).unwrap();
    let sync = config.sync.as_ref().expect("[sync]");
    assert_eq!(config.director.interface, None, "VRRP holds the VIPs");
    assert_eq!(sync.roles.len(), 2, "both sync daemons on both directors");

    let a = directives(&read("keepalived-A.conf"));
    let vrrp: BTreeSet<IpAddr> = block(&a, "virtual_ipaddress")
        .iter()
        .map(|l| {
            let address = l.split(['/', ' ']).next().unwrap();
            address.parse().unwrap_or_else(|_| panic!("`{l}`"))
        })
        .collect();
    let vips: BTreeSet<IpAddr> = config
        .services
        .iter()
        .filter_map(|s| match s.key {
            ServiceKey::Tcp(a) | ServiceKey::Udp(a) | ServiceKey::Sctp(a) => Some(a.ip()),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    assert_eq!(vrrp, vips);
    assert_eq!(
        block(&a, "virtual_ipaddress"),
        ["192.168.0.101/24 dev eth0"]
    );
    assert_eq!(value(&a, "interface"), sync.interface);
    assert_eq!(value(&a, "virtual_router_id"), sync.sync_id.to_string());
    assert_eq!(value(&a, "advert_int"), "1");
}
