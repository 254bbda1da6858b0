//! `lvs-hc import`: realistic keepalived.conf and ldirectord.cf files (tests/fixtures/import)
//! converted to lvs-hc TOML. Each has a snapshot of the TOML and the notes, and a test that the
//! TOML loads with `Config::from_toml` and holds the expected services, servers and checks.
//!
//! The fixtures are read into a `MemFs` under /etc, so notes name the paths an operator would
//! see, whatever the checkout's location.

use std::path::{Path, PathBuf};

use lvs_hc::import::{keepalived, ldirectord, Imported, MemFs};
use lvs_hc_core::config::{FailureAction, FallbackMode, NewServers};
use lvs_hc_core::Config;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/import")
}

/// Every file under `dir`, placed under `root` in a `MemFs`.
fn load_dir(fs: &mut MemFs, dir: &Path, root: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let target = root.join(path.file_name().unwrap());
        if path.is_dir() {
            load_dir(fs, &path, &target);
        } else {
            fs.files
                .insert(target, std::fs::read_to_string(&path).unwrap());
        }
    }
}

fn import_keepalived(fixture_dir: &str, file: &str) -> Imported {
    let mut fs = MemFs::default();
    load_dir(
        &mut fs,
        &fixtures().join(fixture_dir),
        Path::new("/etc/keepalived"),
    );
    keepalived::import(&fs, &Path::new("/etc/keepalived").join(file)).unwrap()
}

fn import_ldirectord(file: &str) -> Imported {
    let mut fs = MemFs::default();
    load_dir(
        &mut fs,
        &fixtures().join("ldirectord"),
        Path::new("/etc/ha.d"),
    );
    ldirectord::import(&fs, &Path::new("/etc/ha.d").join(file)).unwrap()
}

/// The TOML, then the notes as `lvs-hc import` prints them.
fn snapshot_text(imported: &Imported) -> String {
    let mut out = imported.toml.clone();
    out.push_str("\n# ---- standard error ----\n");
    out.push_str(&lvs_hc::import::report(imported));
    out
}

fn load(imported: &Imported) -> Config {
    match Config::from_toml(&imported.toml, "imported.toml") {
        Ok(c) => c,
        Err(e) => panic!("the imported TOML does not load: {e}\n{}", imported.toml),
    }
}

/// One line per service, server and check: what the test asserts on.
fn shape(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for svc in &config.services {
        out.push(format!(
            "{} {} quorum {}",
            svc.key, svc.params.scheduler, svc.quorum
        ));
        for s in &svc.servers {
            out.push(format!(
                "  -> {} {:?} weight {}",
                s.addr, s.forward, s.weight
            ));
            for c in &s.checks {
                out.push(format!(
                    "     {} every {:?} timeout {:?} rise {} fall {}",
                    c.label(),
                    c.timing.interval,
                    c.timing.timeout,
                    c.timing.rise,
                    c.timing.fall
                ));
            }
        }
        for f in &svc.fallbacks {
            out.push(format!("  fallback {}", f.addr));
        }
    }
    out
}

#[test]
fn keepalived_tutorial_snapshot() {
    insta::assert_snapshot!(
        "import_keepalived_tutorial",
        snapshot_text(&import_keepalived("keepalived/tutorial", "keepalived.conf"))
    );
}

#[test]
fn keepalived_tutorial_loads_as_the_tutorials_director() {
    let imported = import_keepalived("keepalived/tutorial", "keepalived.conf");
    let config = load(&imported);
    assert_eq!(
        shape(&config),
        [
            "TCP 192.168.0.101:80 wrr quorum 1",
            "  -> 192.168.0.179:80 Dr weight 3",
            "     tcp (port 80) every 6s timeout 10s rise 1 fall 4",
            "  -> 192.168.0.180:80 Dr weight 3",
            "     tcp (port 80) every 6s timeout 10s rise 1 fall 4",
            "  fallback 127.0.0.1:80",
        ]
    );
    let svc = &config.services[0];
    assert_eq!(svc.fallback_mode, FallbackMode::Exclusive);
    assert_eq!(svc.new_servers, NewServers::In);
    assert_eq!(svc.params.persistence.unwrap().timeout, 50);
    // The VRRP side is reported, not dropped, with the file and line of each section.
    let notes: Vec<String> = imported.notes.iter().map(ToString::to_string).collect();
    assert!(
        notes[0].starts_with("/etc/keepalived/keepalived.conf:4: `global_defs` kept in keepalived")
    );
    assert!(notes[1]
        .starts_with("/etc/keepalived/keepalived.conf:14: `vrrp_instance` kept in keepalived"));
    assert_eq!(notes.len(), 2);
}

#[test]
fn keepalived_fwmark_group_snapshot() {
    insta::assert_snapshot!(
        "import_keepalived_fwmark_group",
        snapshot_text(&import_keepalived("keepalived", "fwmark-group.conf"))
    );
}

#[test]
fn keepalived_group_expands_to_a_service_per_member() {
    let config = load(&import_keepalived("keepalived", "fwmark-group.conf"));
    let keys: Vec<String> = config.services.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "TCP 10.0.0.1:80",
            "TCP 10.0.0.2:80",
            "TCP 10.0.0.3:80",
            "FWM 5",
            "FWM 1"
        ]
    );
    for svc in &config.services[..4] {
        assert_eq!(svc.quorum, 2, "quorum weight 2 over servers of weight 1");
        assert_eq!(svc.on_failure, FailureAction::Zero);
        assert_eq!(svc.new_servers, NewServers::Wait, "alpha");
        assert_eq!(svc.params.persistence.unwrap().prefix, 24);
        assert_eq!(svc.servers.len(), 2);
        for s in &svc.servers {
            let labels: Vec<String> = s.checks.iter().map(|c| c.label()).collect();
            assert_eq!(labels.len(), 2, "one check per url");
            assert!(labels[0].starts_with("http GET /health"), "{labels:?}");
            assert!(labels[1].starts_with("http GET /ready"), "{labels:?}");
            assert!(s
                .checks
                .iter()
                .all(|c| c.timing.fall == 3 && c.timing.rise == 1));
        }
    }
    // The fwmark member's servers have no port; the checks connect to the real_server's.
    let fwm5 = &config.services[3];
    assert_eq!(fwm5.servers[0].addr.port(), 0);
    assert!(fwm5.servers[0].checks.iter().all(|c| c.port == Some(8080)));
    let fwm1 = &config.services[4];
    assert_eq!(fwm1.quorum, 2, "quorum 3 of weights 2 and 1: both servers");
    assert_eq!(fwm1.fallback_mode, FallbackMode::Exclusive);
    assert_eq!(fwm1.servers[0].checks[0].label(), "https GET / (port 443)");
}

#[test]
fn keepalived_every_checker_snapshot() {
    insta::assert_snapshot!(
        "import_keepalived_every_checker",
        snapshot_text(&import_keepalived("keepalived", "every-checker.conf"))
    );
}

/// Needs the check kinds merged from the other issue 14 branches (dns, udp, smtp, ping) and
/// `ip` and `expect_body_md5` from main.
#[test]
fn keepalived_every_checker_loads_with_every_check_kind() {
    let config = load(&import_keepalived("keepalived", "every-checker.conf"));
    let kinds: Vec<Vec<String>> = config
        .services
        .iter()
        .map(|s| s.servers[0].checks.iter().map(|c| c.label()).collect())
        .collect();
    assert_eq!(kinds[0].len(), 6, "{kinds:?}");
    assert!(kinds[0][0].starts_with("http GET /index.html"));
    assert!(kinds[0][2].starts_with("exec /usr/local/bin/check_web"));
    assert!(kinds[0][3].starts_with("exec /bin/sh"));
    assert!(kinds[0][5].starts_with("ping"));
    assert!(
        kinds[1][0].starts_with("dns A www.example.com"),
        "{kinds:?}"
    );
    assert!(kinds[1][1].starts_with("udp"));
    assert!(kinds[2][0].starts_with("smtp"));
    assert!(kinds[2][1].starts_with("https GET /status%20page"));
}

#[test]
fn ldirectord_tutorial_snapshot() {
    insta::assert_snapshot!(
        "import_ldirectord_tutorial",
        snapshot_text(&import_ldirectord("tutorial.cf"))
    );
}

#[test]
fn ldirectord_tutorial_loads_as_the_tutorials_director() {
    let imported = import_ldirectord("tutorial.cf");
    let config = load(&imported);
    assert_eq!(
        shape(&config),
        [
            "TCP 192.168.0.101:80 rr quorum 1",
            "  -> 192.168.0.179:80 Dr weight 1",
            "     http GET /index.html every 1s timeout 30s rise 1 fall 1",
            "  -> 192.168.0.180:80 Dr weight 1",
            "     http GET /index.html every 1s timeout 30s rise 1 fall 1",
            "  fallback 127.0.0.1:80",
        ]
    );
    let svc = &config.services[0];
    assert_eq!(svc.on_failure, FailureAction::Zero, "quiescent = yes");
    let check = &svc.servers[0].checks[0];
    let lvs_hc_core::config::CheckKind::Http(h) = &check.kind else {
        panic!("an http check: {check:?}")
    };
    assert_eq!(
        h.expect_body_regex.as_ref().map(|r| r.as_str()),
        Some("Test Page")
    );
}

#[test]
fn ldirectord_every_check_snapshot() {
    insta::assert_snapshot!(
        "import_ldirectord_every_check",
        snapshot_text(&import_ldirectord("every-check.cf"))
    );
}

/// Needs the check kinds merged from the other issue 14 branches (smtp, dns, tcp send/expect,
/// ping).
#[test]
fn ldirectord_every_check_loads_with_every_check_kind() {
    let config = load(&import_ldirectord("every-check.cf"));
    let keys: Vec<String> = config.services.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(
        keys,
        [
            "TCP 10.2.0.10:443",
            "FWM 7",
            "TCP 10.2.0.25:25",
            "UDP 10.2.0.53:53",
            "TCP 10.2.0.70:7000",
            "TCP 10.2.0.80:8080",
            "TCP 10.2.0.81:21",
            "TCP 10.2.0.82:80",
            "TCP 10.2.0.84:3389",
        ],
        "checktype = off is not carried over"
    );
    assert_eq!(
        config.services[1].servers.len(),
        3,
        "the real range 10.2.2.1->10.2.2.3"
    );
    assert!(
        config.services[7].servers[0].checks.is_empty(),
        "checktype = on"
    );
    assert_eq!(
        config.services[2].servers[0].checks.len(),
        2,
        "checktype = 3"
    );
}

#[test]
fn keepalived_digest_connect_ip_and_bindto_load_as_md5_ip_and_source() {
    let fs = MemFs::new(&[(
        "/etc/keepalived/keepalived.conf",
        "virtual_server 10.1.0.10 80 {\n  protocol TCP\n  real_server 10.1.1.1 80 {\n    \
         HTTP_GET {\n      url {\n        path /index.html\n        \
         digest 9B3A0C85A887A256D6939DA88AABD8CD\n      }\n      connect_ip 10.1.2.1\n      \
         connect_port 8080\n      bindto 10.1.0.2\n    }\n  }\n}\n",
    )]);
    let imported = keepalived::import(&fs, Path::new("/etc/keepalived/keepalived.conf")).unwrap();
    let config = load(&imported);
    let check = &config.services[0].servers[0].checks[0];
    assert_eq!(check.ip, Some("10.1.2.1".parse().unwrap()));
    assert_eq!(check.port, Some(8080));
    assert_eq!(check.source, Some("10.1.0.2".parse().unwrap()));
    let lvs_hc_core::config::CheckKind::Http(h) = &check.kind else {
        panic!("an http check: {check:?}")
    };
    assert_eq!(
        h.expect_body_md5,
        Some([
            0x9b, 0x3a, 0x0c, 0x85, 0xa8, 0x87, 0xa2, 0x56, 0xd6, 0x93, 0x9d, 0xa8, 0x8a, 0xab,
            0xd8, 0xcd
        ])
    );
    // keepalived's default lb_kind (NAT) is written out, lvs-hc's default being DR.
    assert_eq!(
        config.services[0].servers[0].forward,
        lvs_hc_core::Forward::Nat
    );
}

/// The keepalived configurations the real-kernel import proof (tests/lab/import-proof) runs
/// under keepalived and under lvs-hc: every one imports with nothing unknown and loads.
#[test]
fn the_lab_import_proof_configurations_import_and_load() {
    let lab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lab/import");
    for case in ["seed", "nat-fwmark", "misc-udp"] {
        let mut fs = MemFs::default();
        // Where the lab puts them: includes name absolute paths there.
        let root = Path::new("/lab/import").join(case);
        load_dir(&mut fs, &lab.join(case), &root);
        let imported = keepalived::import(&fs, &root.join("keepalived.conf")).unwrap();
        let unknown: Vec<String> = imported
            .notes
            .iter()
            .filter(|n| n.text.contains("unknown"))
            .map(ToString::to_string)
            .collect();
        assert!(unknown.is_empty(), "{case}: {unknown:?}");
        let config = load(&imported);
        assert!(!config.services.is_empty(), "{case}");
    }
}
