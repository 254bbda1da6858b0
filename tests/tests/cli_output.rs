//! What `lvs-hc check` and `lvs-hc plan` print for the bundled examples.

use std::collections::BTreeSet;
use std::path::PathBuf;

use lvs_hc::commands::{check_summary, plan_lines, resolve_down};
use lvs_hc::load_config;
use lvs_hc_core::{parse_save, Table};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn plan(name: &str, actual: &str, down: &[&str]) -> String {
    let config = load_config(&example(name)).unwrap();
    let actual = parse_save(actual).unwrap();
    let down: Vec<String> = down.iter().map(ToString::to_string).collect();
    let down = resolve_down(&config, &down).unwrap();
    plan_lines(&config, &actual, &down)
}

#[test]
fn check_summaries() {
    for name in ["seed.toml", "full.toml"] {
        let config = load_config(&example(name)).unwrap();
        insta::assert_snapshot!(
            format!("check_{name}"),
            check_summary(&config, &format!("examples/{name}"))
        );
    }
}

#[test]
fn plan_seed_on_an_empty_table() {
    insta::assert_snapshot!(plan("seed.toml", "", &[]));
}

const SEED_TABLE: &str = "\
-A -t 192.168.0.101:80 -s wlc
-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2
-a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1
";

#[test]
fn plan_seed_with_rs1_down() {
    insta::assert_snapshot!(plan("seed.toml", SEED_TABLE, &["192.168.0.179:80"]));
}

#[test]
fn plan_seed_with_both_down_brings_the_fallback_in_first() {
    insta::assert_snapshot!(plan(
        "seed.toml",
        SEED_TABLE,
        &["192.168.0.179:80", "192.168.0.180"]
    ));
}

#[test]
fn plan_seed_against_a_matching_table_is_empty() {
    assert_eq!(plan("seed.toml", SEED_TABLE, &[]), "");
}

#[test]
fn plan_full_on_an_empty_table() {
    insta::assert_snapshot!(plan("full.toml", "", &[]));
}

#[test]
fn plan_full_with_a_drained_server_sets_weight_zero() {
    let full_table = "\
-A -t 192.168.0.101:80 -s wlc -p 300 -M 255.255.255.0
-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2
-a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1
";
    insta::assert_snapshot!(plan("full.toml", full_table, &["192.168.0.179:80"]));
}

#[test]
fn down_must_name_a_configured_server() {
    let config = load_config(&example("seed.toml")).unwrap();
    let err = resolve_down(&config, &["192.168.0.190:80".to_string()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--down 192.168.0.190:80: no real server has this address; the real servers are 192.168.0.179:80, 192.168.0.180:80"
    );
    let none: BTreeSet<_> = resolve_down(&config, &[]).unwrap();
    assert!(none.is_empty());
}

#[test]
fn plan_output_replays_into_the_desired_table() {
    // `lvs-hc plan | sh` semantics: the printed lines, parsed back as ipvsadm -R input and
    // applied to the starting table, leave nothing more to plan.
    let config = load_config(&example("full.toml")).unwrap();
    let mut table = Table::new();
    let lines = plan_lines(&config, &table, &BTreeSet::new());
    let replay = parse_save(&lines).unwrap();
    for (key, entry) in replay.services {
        table.services.insert(key, entry);
    }
    assert_eq!(plan_lines(&config, &table, &BTreeSet::new()), "");
}
