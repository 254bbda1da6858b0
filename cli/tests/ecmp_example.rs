//! examples/ecmp, many directors behind ECMP: lvs-hc loads the directors' configuration,
//! Debian's BIRD 2 parses both BIRD configurations (`bird -p`, which reads a file without
//! running it), and the three files agree on the kernel table and protocol lvs-hc announces
//! with and BIRD learns from.
//!
//! BIRD is fetched like the other Debian peers (`common/peers.rs`): a host where that cannot
//! be done fails the test, naming the package, rather than skipping it.

mod common;

use std::path::PathBuf;

use common::peers::debian_program;
use lvs_hc_core::table::SchedFlags;
use lvs_hc_core::Config;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/ecmp")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(example(name)).unwrap()
}

/// Runs Debian's BIRD 2 in parse-only mode on `file`: whether it accepted it, and what it said.
fn bird_parse(file: &std::path::Path) -> (bool, String) {
    let bird = debian_program("bird2", "usr/sbin/bird");
    let out = std::process::Command::new(&bird.path)
        .env("LD_LIBRARY_PATH", &bird.library_path)
        .arg("-p")
        .arg("-c")
        .arg(file)
        .output()
        .expect("run bird");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn the_directors_configuration_hashes_with_mh_and_announces_in_table_100_proto_99() {
    let config = Config::from_toml(&read("lvs-hc.toml"), "examples/ecmp/lvs-hc.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    let svc = &config.services[0];
    assert_eq!(svc.params.scheduler, "mh");
    assert_eq!(
        svc.params.sched_flags,
        SchedFlags::FLAG1.union(SchedFlags::FLAG2),
        "mh-fallback and mh-port"
    );
    let announce = config.announce.expect("[announce]");
    assert_eq!((announce.table, announce.protocol), (100, 99));

    // BIRD learns from that table, and only routes of that protocol.
    let director = read("bird-director.conf");
    assert!(director.contains("kernel table 100;"), "{director}");
    assert!(
        director.contains("import where krt_source = 99;"),
        "{director}"
    );
}

#[test]
fn bird_parses_the_director_and_router_configurations() {
    for name in ["bird-director.conf", "bird-router.conf"] {
        let (ok, said) = bird_parse(&example(name));
        assert!(ok, "bird -p -c examples/ecmp/{name}:\n{said}");
    }
    // And it reads what the files say: BGP refuses a hold time under 3 s.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ecmp_example");
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.conf");
    std::fs::write(
        &broken,
        read("bird-director.conf").replace("hold time 3;", "hold time 2;"),
    )
    .unwrap();
    let (ok, said) = bird_parse(&broken);
    assert!(!ok, "accepted hold time 2:\n{said}");
}
