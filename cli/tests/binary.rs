//! The `lvs-hc` binary as a user runs it: exit codes, standard input, and errors on stderr.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn lvs_hc(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lvs-hc"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_accepts_the_seed_example() {
    let out = lvs_hc(&["check", "--config", "examples/seed.toml"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("examples/seed.toml: valid\n"));
}

#[test]
fn check_rejects_a_bad_config_with_its_location() {
    let dir = std::env::temp_dir().join(format!("lvs-hc-bin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[service]]\naddress = \"192.168.0.101:80\"\nscheduler = 5\n",
    )
    .unwrap();
    let out = lvs_hc(&["check", "--config", path.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml:3:13: service[0].scheduler: expected a string, found integer 5"),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn check_names_a_missing_file() {
    let out = lvs_hc(&["check", "--config", "no/such.toml"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read no/such.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn plan_reads_the_actual_table_from_stdin() {
    let table =
        "-A -t 192.168.0.101:80 -s wlc\n-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n";
    let out = lvs_hc(
        &[
            "plan",
            "--config",
            "examples/seed.toml",
            "--actual",
            "-",
            "--down",
            "192.168.0.179:80",
        ],
        table,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ipvsadm -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1\n\
         ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80\n"
    );
}

#[test]
fn plan_with_nothing_to_do_prints_nothing_on_stdout() {
    let table =
        "-A -t 192.168.0.101:80 -s wlc\n-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n\
                 -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1\n";
    let out = lvs_hc(
        &["plan", "--config", "examples/seed.toml", "--actual", "-"],
        table,
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).contains("nothing to do"));
}

#[test]
fn plan_rejects_a_malformed_table_naming_the_line() {
    let out = lvs_hc(
        &["plan", "--config", "examples/seed.toml", "--actual", "-"],
        "-A -t 192.168.0.101:80\n-X\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("<stdin>: line 2: unknown or unsupported option `-X`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = lvs_hc(&["plan"], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_the_seed_example_is_deterministic_and_reports_latency() {
    let run = || {
        lvs_hc(
            &["simulate", "--config", "examples/seed.toml", "--seed", "7"],
            "",
        )
    };
    let a = run();
    assert!(a.status.success(), "{}", text(&a.stderr));
    let out = text(&a.stdout);
    assert!(out.starts_with("scenario kill seed 7 "), "{out}");
    assert!(out.contains("plan t+"), "{out}");
    assert!(
        out.contains("down: 1 consecutive failure, last: connection refused"),
        "{out}"
    );
    assert!(
        out.contains("latency per server (min / median / max):"),
        "{out}"
    );
    assert_eq!(text(&run().stdout), out, "same seed, same output");
    let other = lvs_hc(
        &["simulate", "--config", "examples/seed.toml", "--seed", "8"],
        "",
    );
    assert_ne!(text(&other.stdout), out);
}

#[test]
fn simulate_json() {
    let out = lvs_hc(
        &[
            "simulate",
            "--config",
            "examples/seed.toml",
            "--scenario",
            "flap",
            "--json",
            "--duration",
            "2m",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["scenario"], "flap");
    assert!(
        doc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["what"].as_str().unwrap().contains("becomes")),
        "{doc}"
    );
    assert!(doc.get("stand_ins").is_none(), "nothing stands in: {doc}");
}

/// Each server's detection times (seconds) from a JSON report.
fn detections(doc: &serde_json::Value) -> Vec<f64> {
    doc["servers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["detection"].as_array().unwrap().clone())
        .map(|d| d.as_f64().unwrap())
        .collect()
}

#[test]
fn simulate_blackhole_probes_time_out_where_killed_servers_refuse() {
    let run = |scenario: &str| {
        let out = lvs_hc(
            &[
                "simulate",
                "--config",
                "examples/seed.toml",
                "--scenario",
                scenario,
                "--json",
            ],
            "",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (blackhole, kill) = (run("blackhole"), run("kill"));
    let downs = |doc: &serde_json::Value| -> Vec<String> {
        doc["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["what"].as_str().unwrap().to_string())
            .filter(|l| l.starts_with("TCP ") && l.contains(" down: "))
            .collect()
    };
    // The seed example: every 5s, timeout 1s, fall 1.
    let black_holed = downs(&blackhole);
    assert!(!black_holed.is_empty());
    for line in &black_holed {
        assert!(
            line.ends_with("down: 1 consecutive failure, last: timed out after 1s"),
            "{line}"
        );
    }
    assert!(downs(&kill)
        .iter()
        .all(|l| l.ends_with("last: connection refused")));
    // A black hole is noticed only when a probe's whole timeout has passed (less the time a
    // probe already under way had been waiting: at most 0.4s in the simulated network); a
    // killed server as soon as a probe is refused.
    let slowest_exchange = 0.4;
    let (blackholed, killed) = (detections(&blackhole), detections(&kill));
    assert!(
        blackholed.iter().all(|d| *d >= 1.0 - slowest_exchange),
        "{blackholed:?}"
    );
    assert!(
        killed.iter().any(|d| *d < 1.0 - slowest_exchange),
        "{killed:?}"
    );
}

#[test]
fn simulate_duration_with_no_room_for_a_fault_is_a_usage_error() {
    let simulate = |duration: &str| {
        lvs_hc(
            &[
                "simulate",
                "--config",
                "examples/seed.toml",
                "--duration",
                duration,
            ],
            "",
        )
    };
    let short = simulate("30s");
    assert_eq!(short.status.code(), Some(2));
    assert!(text(&short.stdout).is_empty());
    let err = text(&short.stderr);
    assert!(
        err.starts_with("error: --duration 30s is too short for scenario kill: ")
            && err.contains("give at least 1m30s"),
        "{err}"
    );
    let enough = simulate("1m30s");
    assert!(enough.status.success(), "{}", text(&enough.stderr));
    assert!(text(&enough.stdout).contains("becomes killed"));
}

#[test]
fn simulate_runs_the_full_example_naming_what_stands_in_for_its_checks() {
    let run = || lvs_hc(&["simulate", "--config", "examples/full.toml"], "");
    let a = run();
    assert!(a.status.success(), "{}", text(&a.stderr));
    let out = text(&a.stdout);
    for stand_in in [
        "  stand-in: exec /usr/local/bin/check-dns on [2001:db8::1]:5353 is simulated as a tcp \
         check of [2001:db8::1]:5353; its weight=N output is not simulated: the server keeps \
         weight 10\n",
        "  stand-in: https GET /health (port 443) on 192.168.0.181:80 does not verify the \
         simulated server's test certificate (verify = true is simulated as false, and ca_file \
         /etc/lvs-hc/ca.pem is not read)\n",
        "  stand-in: http GET /.health.html (port 8080) on 192.168.0.179:80 sends its probes \
         from the simulated director's address 10.255.255.254, not from source 192.168.0.178\n",
    ] {
        assert!(out.contains(stand_in), "{stand_in}\n{out}");
    }
    // Every server passes its checks before any fault: https over the simulated TLS server,
    // the body regex against the simulated page, IPv6, port-less fwmark servers.
    for up in [
        "192.168.0.179:80 up: http GET /.health.html (port 8080): first probe passed",
        "192.168.0.181:80 up: first probe passed",
        "192.168.0.182:0 up: first probe passed",
        "[2001:db8::1]:5353 up: first probe passed",
    ] {
        assert!(out.contains(up), "{up}\n{out}");
    }
    assert!(!out.contains("no server went down"), "{out}");
    assert_eq!(text(&run().stdout), out, "same seed, same output");
}

#[test]
fn simulate_grpc_over_tls_follows_not_serving_servers() {
    // A grpc check over TLS with verification, as a real configuration would have it: the
    // simulator stands in an unverified one and its servers answer the health service over
    // TLS (ALPN h2), NOT_SERVING while "answering 500".
    let path = std::env::temp_dir().join(format!("lvs-hc-grpc-sim-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[service]]\naddress = \"192.168.0.101:80\"\n[[service.check]]\ntype = \"grpc\"\n\
         port = 50051\nservice = \"shop.Cart\"\ntls = true\nca_file = \"/etc/lvs-hc/ca.pem\"\n\
         interval = \"1s\"\ntimeout = \"800ms\"\nrise = 1\nfall = 2\n\
         [[service.server]]\naddress = \"192.168.0.179:80\"\n\
         [[service.server]]\naddress = \"192.168.0.180:80\"\n",
    )
    .unwrap();
    let out = lvs_hc(
        &[
            "simulate",
            "--config",
            path.to_str().unwrap(),
            "--scenario",
            "error500",
        ],
        "",
    );
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = text(&out.stdout);
    assert!(
        out.contains(
            "  stand-in: grpc shop.Cart (port 50051) on 192.168.0.179:80 does not verify the \
             simulated server's test certificate (verify = true is simulated as false, and \
             ca_file /etc/lvs-hc/ca.pem is not read)\n"
        ),
        "{out}"
    );
    let ups = out.lines().filter(|l| l.contains(" up: ")).count();
    let downs: Vec<&str> = out.lines().filter(|l| l.contains(" down: ")).collect();
    assert!(ups >= 2, "{out}");
    assert!(!downs.is_empty(), "{out}");
    for line in downs {
        assert!(
            line.ends_with("down: 2 consecutive failures, last: NOT_SERVING"),
            "{line}"
        );
    }
}

#[test]
fn import_keepalived_prints_toml_on_stdout_and_notes_on_stderr() {
    let out = lvs_hc(
        &[
            "import",
            "keepalived",
            "tests/fixtures/import/keepalived/tutorial/keepalived.conf",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("address = \"192.168.0.101:80\"\n"));
    assert_eq!(
        text(&out.stderr)
            .lines()
            .map(|l| l.split(": ").next().unwrap())
            .collect::<Vec<_>>(),
        [
            "tests/fixtures/import/keepalived/tutorial/keepalived.conf:4",
            "tests/fixtures/import/keepalived/tutorial/keepalived.conf:14",
            "2 lines not carried over or changed in meaning (see above and the comments in the output)",
        ]
    );
}

#[test]
fn import_output_file_passes_check() {
    let dir = std::env::temp_dir().join(format!("lvs-hc-import-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("out.toml");
    let out = lvs_hc(
        &[
            "import",
            "ldirectord",
            "tests/fixtures/import/ldirectord/tutorial.cf",
            "--output",
            path.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let check = lvs_hc(&["check", "--config", path.to_str().unwrap()], "");
    assert!(check.status.success(), "{}", text(&check.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn import_fails_on_unbalanced_braces_and_unreadable_files() {
    let dir = std::env::temp_dir().join(format!("lvs-hc-import-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n").unwrap();
    let out = lvs_hc(&["import", "keepalived", path.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {}:1: the `{{` of `virtual_server` is never closed\n",
            path.display()
        )
    );
    assert!(out.stdout.is_empty());
    let out = lvs_hc(&["import", "ldirectord", "/nonexistent/ldirectord.cf"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: cannot read /nonexistent/ldirectord.cf: "));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A configuration whose one server listens on loopback (so only the kernel can fail it).
fn doctor_config(dir: &str, port: u16) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lvs-hc-doctor-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lvs-hc.toml");
    std::fs::write(
        &path,
        format!(
            "[[service]]\naddress = \"192.0.2.1:{port}\"\n[[service.check]]\ntype = \"tcp\"\n\
             [[service.server]]\naddress = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn doctor_reports_missing_ipvs_with_its_fix_and_exits_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let path = doctor_config("ipvs", port);
    let out = lvs_hc(&["doctor", "--config", path.to_str().unwrap()], "");
    let report = text(&out.stdout);
    // The host decides which line is right: CI hosts have no IPVS, the QEMU lab has it.
    if std::path::Path::new("/proc/net/ip_vs").exists() {
        assert!(
            report.starts_with("ok    IPVS is in the kernel\n"),
            "{report}"
        );
        assert_eq!(out.status.code(), Some(0), "{report}");
    } else {
        assert!(
            report.starts_with(
                "FAIL  IPVS is not in the kernel (no netlink family IPVS, no /proc/net/ip_vs): \
                 `modprobe ip_vs` (and list ip_vs in /etc/modules-load.d/ to load it at boot)\n"
            ),
            "{report}"
        );
        assert_eq!(out.status.code(), Some(1), "{report}");
    }
    assert!(
        report.contains(&format!(
            "ok    127.0.0.1:{port} tcp on its own address passes\n"
        )),
        "{report}"
    );
    assert!(
        report.contains("warn  VIP 192.0.2.1 is not on this director: right on a standby"),
        "{report}"
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("FAIL")).count(),
        usize::from(out.status.code() == Some(1)),
        "{report}"
    );
}

#[test]
fn doctor_exits_78_on_a_bad_configuration() {
    let out = lvs_hc(&["doctor", "--config", "no/such.toml"], "");
    assert_eq!(out.status.code(), Some(78));
    assert!(text(&out.stderr).contains("cannot read no/such.toml"));
    assert!(text(&out.stdout).is_empty());
}
