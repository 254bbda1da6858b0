//! `lvs-hc run` as an operator runs it, on loopback with the in-memory table: readiness,
//! detection, reload (bad and good), the API, `lvs-hc status`, the lock, systemd notification,
//! signals and cleanup. The real-kernel version of this story runs in the QEMU lab.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{config, http_get, Daemon, Web, BIN};
use common::TempDir;

fn kernel_weight(status: &Value, addr: SocketAddr) -> Option<u64> {
    Daemon::server(status, addr)["kernel_weight"].as_u64()
}

#[test]
fn detects_a_dead_server_survives_a_bad_reload_and_applies_a_good_one() {
    let dir = TempDir::new("story");
    let (a, b) = (Web::start(), Web::start());
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&[(a.addr, 2), (b.addr, 1)], ""),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);

    d.wait_for("both servers in the table", Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| {
            kernel_weight(&s, a.addr) == Some(2) && kernel_weight(&s, b.addr) == Some(1)
        })
    });

    // fall 2 × interval 200ms + timeout 150ms = 550ms after the kill, plus polling slack.
    b.kill();
    let took = d.wait_for(
        "the dead server out of the table",
        Duration::from_secs(5),
        |d| {
            d.status().is_some_and(|s| {
                kernel_weight(&s, b.addr).is_none()
                    && Daemon::server(&s, b.addr)["health"] == "down"
            })
        },
    );
    eprintln!("dead server out after {took:?}");
    let s = d.status().unwrap();
    assert_eq!(kernel_weight(&s, a.addr), Some(2), "the live server stays");
    assert_eq!(Daemon::server(&s, a.addr)["desired_weight"], 2);
    assert!(Daemon::server(&s, b.addr)["desired_weight"].is_null());
    let reason = Daemon::server(&s, b.addr)["reason"].as_str().unwrap();
    assert!(reason.contains("2 consecutive failures"), "{reason}");

    // A broken configuration: refused, reported in /status and `lvs-hc status`, the old one runs.
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&[(a.addr, 7)], "\n[[service.server]]\nadress = \"x\"\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for("the reload error in /status", Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| s["config_error"].is_string())
    });
    let s = d.status().unwrap();
    let error = s["config_error"].as_str().unwrap();
    assert!(
        error.contains("lvs-hc.toml:21:1: service[0].server[1]: missing key `address`"),
        "{error}"
    );
    assert_eq!(
        kernel_weight(&s, a.addr),
        Some(2),
        "the old configuration still rules"
    );
    let text = String::from_utf8(d.lvs_hc(&["status"]).stdout).unwrap();
    assert!(text.contains("the last reload was refused"), "{text}");
    assert!(d
        .messages()
        .iter()
        .any(|m| m.contains("reload (SIGHUP) failed")));

    // `lvs-hc reload` with the same bad file: exit 1 and the error.
    let out = d.lvs_hc(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing key `address`"));

    // A good one: the weight changes, the error clears, the removed server leaves.
    std::fs::write(dir.path("lvs-hc.toml"), config(&[(a.addr, 7)], "")).unwrap();
    let out = d.lvs_hc(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("accepted: 1 service, 1 server"));
    d.wait_for("the new weight", Duration::from_secs(5), |d| {
        d.status()
            .is_some_and(|s| kernel_weight(&s, a.addr) == Some(7) && s["config_error"].is_null())
    });

    // Metrics and health.
    let metrics = http_get(&d.api, "/metrics");
    for needle in [
        "lvs_hc_transitions_total{to=\"down\"} 1",
        "lvs_hc_reloads_total{result=\"failed\"} 2",
        "lvs_hc_reloads_total{result=\"ok\"} 1",
        "lvs_hc_config_error 0",
        &format!(
            "lvs_hc_server_kernel_weight{{service=\"TCP 10.0.0.1:80\",server=\"{}\",role=\"real\"}} 7",
            a.addr
        ),
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
    assert!(metrics.contains("lvs_hc_operations_total{op=\"add-dest\",result=\"ok\"} 2"));
    assert_eq!(http_get(&d.api, "/healthz"), "ok\n");

    // Repeated failures of the dead server are logged once, not once per probe.
    let messages = d.messages();
    let failed = messages
        .iter()
        .filter(|m| m.starts_with(&format!("probe of {} ", b.addr)) && m.contains("failed"))
        .count();
    assert_eq!(failed, 1, "{messages:#?}");
    let downs = messages
        .iter()
        .filter(|m| m.starts_with(&format!("TCP 10.0.0.1:80: {} down:", b.addr)))
        .count();
    assert_eq!(downs, 1, "{messages:#?}");

    let (status, messages) = d.stop(Duration::from_secs(3));
    assert!(status.success());
    assert!(
        messages
            .iter()
            .any(|m| m.contains("table is left as it is")),
        "{messages:#?}"
    );
}

#[test]
fn a_second_instance_names_the_first_and_exits() {
    let dir = TempDir::new("lock");
    let a = Web::start();
    std::fs::write(dir.path("lvs-hc.toml"), config(&[(a.addr, 1)], "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    let out = Command::new(BIN)
        .args(["run", "--backend", "memory", "--api", "off", "--config"])
        .arg(dir.path("lvs-hc.toml"))
        .arg("--lock-file")
        .arg(dir.path("lvs-hc.lock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pid {} holds the lock", d.child.id())),
        "{err}"
    );
    // The kernel releases the lock however the holder ends: no stale lock after a crash.
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let again = Daemon::start(&dir, &[], &[]);
    assert!(again.stop(Duration::from_secs(3)).0.success());
}

#[test]
fn tells_systemd_ready_watchdog_and_stopping_and_cleans_up_when_asked() {
    let dir = TempDir::new("notify");
    let a = Web::start();
    std::fs::write(dir.path("lvs-hc.toml"), config(&[(a.addr, 1)], "")).unwrap();
    let sock_path = dir.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let notify = sock_path.to_str().unwrap();
    let d = Daemon::start(
        &dir,
        &["--cleanup-on-exit"],
        &[("NOTIFY_SOCKET", notify), ("WATCHDOG_USEC", "200000")],
    );
    let recv = || {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification within 5s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut seen = Vec::new();
    // Half the watchdog period: a ping every 100ms; three of them within a second or so.
    while seen
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 3
    {
        seen.push(recv());
        assert!(seen.len() < 50, "{seen:?}");
    }
    assert!(
        seen[0].starts_with("READY=1\n"),
        "READY=1 comes first: {seen:?}"
    );
    let (status, messages) = d.stop(Duration::from_secs(3));
    assert!(status.success());
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut after = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = sock.recv(&mut buf) {
        after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(after.iter().any(|m| m == "STOPPING=1"), "{after:?}");
    assert!(
        messages
            .iter()
            .any(|m| m == "applied `ipvsadm -D -t 10.0.0.1:80`: cleanup on exit"),
        "{messages:#?}"
    );
}

#[test]
fn dry_run_logs_each_operation_once_and_applies_none() {
    let dir = TempDir::new("dry");
    let a = Web::start();
    std::fs::write(dir.path("lvs-hc.toml"), config(&[(a.addr, 3)], "")).unwrap();
    let d = Daemon::start(&dir, &["--dry-run"], &[]);
    let add = format!(
        "dry run: would apply `ipvsadm -a -t 10.0.0.1:80 -r {} -m -w 3`",
        a.addr
    );
    d.wait_for("the would-be add", Duration::from_secs(5), |d| {
        d.messages().iter().any(|m| m.starts_with(&add))
    });
    // Several resyncs (every 500ms) later, still logged once: the dry run remembers.
    thread::sleep(Duration::from_millis(1600));
    let (status, messages) = d.stop(Duration::from_secs(3));
    assert!(status.success());
    assert_eq!(
        messages.iter().filter(|m| m.starts_with(&add)).count(),
        1,
        "{messages:#?}"
    );
    assert!(
        !messages.iter().any(|m| m.starts_with("applied ")),
        "a dry run applies nothing: {messages:#?}"
    );
}

#[test]
fn probes_through_the_vip_with_the_memory_backend_are_no_verdict_and_said_so() {
    // The memory backend puts the probe services in no kernel: a marked probe would meet
    // whatever the kernel has for the VIP instead. No verdict, a fault of the director.
    let dir = TempDir::new("via-memory");
    let web = Web::start();
    let text = config(&[(web.addr, 3)], "")
        .replace("type = \"http\"\n", "type = \"http\"\nvia_vip = true\n");
    std::fs::write(dir.path("lvs-hc.toml"), text).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    d.wait_for("the probe fault", Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| {
            s["probe_faults"][0]["reason"].as_str()
                == Some(
                    "the memory backend puts no probe services in the kernel, so probes \
                     through the VIP (via_vip) cannot run: no verdict",
                )
        })
    });
    let status = d.status().unwrap();
    assert_eq!(
        kernel_weight(&status, web.addr),
        None,
        "a new server waits for a verdict it cannot get"
    );
    assert_eq!(status["probe_services"][0]["server"], web.addr.to_string());
    assert_eq!(
        status["probe_services"][0]["in_table"], true,
        "in the backend's table"
    );
    let text = d.lvs_hc(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("-> {} for TCP 10.0.0.1:80", web.addr)),
        "{text}"
    );
}

#[test]
fn probes_through_the_vip_in_a_dry_run_are_no_verdict_and_said_so() {
    // A dry run keeps the probe services in its own copy of the table, not in the kernel.
    let dir = TempDir::new("via-dry-run");
    let web = Web::start();
    let text = config(&[(web.addr, 3)], "")
        .replace("type = \"http\"\n", "type = \"http\"\nvia_vip = true\n");
    std::fs::write(dir.path("lvs-hc.toml"), text).unwrap();
    let d = Daemon::start(&dir, &["--dry-run"], &[]);
    d.wait_for("the probe fault", Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| {
            s["probe_faults"][0]["reason"].as_str()
                == Some(
                    "a dry run does not put lvs-hc's probe services in the kernel, so probes \
                     through the VIP (via_vip) cannot run: no verdict",
                )
        })
    });
}

/// `[sync]` on the memory backend: both daemons run, `/status`, `lvs-hc status` and `/metrics`
/// show them, and whether this director holds the VIP.
#[test]
fn sync_daemons_and_the_directors_role_in_status_and_metrics() {
    let dir = TempDir::new("sync");
    let a = Web::start();
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(
            &[(a.addr, 1)],
            "\n[sync]\ninterface = \"eth0\"\nsync_id = 5\n",
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    d.wait_for("both sync daemons running", Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| {
            let daemons = s["sync"]["daemons"].as_array().cloned().unwrap_or_default();
            daemons.len() == 2 && daemons.iter().all(|d| d["state"] == "running")
        })
    });
    let s = d.status().unwrap();
    assert_eq!(s["sync"]["daemons"][0]["role"], "master");
    assert_eq!(
        s["sync"]["daemons"][1]["running"],
        "interface eth0, sync id 5"
    );
    let vip = &s["director"]["vips"][0];
    assert_eq!(vip["address"], "10.0.0.1");
    let held = vip["held"].as_bool().expect("whether the VIP is held");
    let role = if held { "active" } else { "standby" };
    assert_eq!(s["director"]["role"], role, "{s}");

    let text = String::from_utf8(d.lvs_hc(&["status"]).stdout).unwrap();
    assert!(text.contains("sync daemons ([sync]):\n"), "{text}");
    assert!(
        text.contains("  backup  running         interface eth0, sync id 5\n"),
        "{text}"
    );
    assert!(text.contains(&format!("director: {role} (")), "{text}");

    let metrics = http_get(&d.api, "/metrics");
    for needle in [
        "lvs_hc_sync_daemon_up{role=\"master\",interface=\"eth0\",sync_id=\"5\"} 1",
        "lvs_hc_sync_daemon_up{role=\"backup\",interface=\"eth0\",sync_id=\"5\"} 1",
        "lvs_hc_sync_daemon_running{role=\"backup\"} 1",
        "lvs_hc_sync_daemon_operations_total{op=\"start\",result=\"ok\"} 2",
        &format!("lvs_hc_vip_held{{address=\"10.0.0.1\"}} {}", u8::from(held)),
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
    assert!(
        d.messages()
            .iter()
            .any(|m| m
                == "master sync daemon (interface eth0, sync id 5) started: [sync] asks for it")
    );
    let (status, _) = d.stop(Duration::from_secs(3));
    assert!(status.success());
}

/// `[announce]` on the memory backend (routes in memory): the VIP is announced while its
/// server passes, withdrawn when it fails, and `/status`, `lvs-hc status` and `/metrics` say so
/// and why.
#[test]
fn announce_follows_the_services_readiness_in_status_and_metrics() {
    let dir = TempDir::new("announce");
    let a = Web::start();
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&[(a.addr, 1)], "\n[announce]\ntable = 100\n"),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    d.wait_for("the VIP announced", Duration::from_secs(5), |d| {
        d.status()
            .is_some_and(|s| s["announce"]["vips"][0]["announced"] == true)
    });
    let s = d.status().unwrap();
    assert_eq!(s["announce"]["table"], 100);
    assert_eq!(s["announce"]["vips"][0]["why"], "1 of 1 services ready");
    assert_eq!(
        s["announce"]["services"][0]["why"],
        "1 healthy of 1 (quorum 1)"
    );
    let text = String::from_utf8(d.lvs_hc(&["status"]).stdout).unwrap();
    assert!(
        text.contains(
            "announced ([announce], table 100 proto 99):\n  10.0.0.1  announced      1 of 1 \
             services ready\n"
        ),
        "{text}"
    );
    let metrics = http_get(&d.api, "/metrics");
    for needle in [
        "lvs_hc_vip_announced{vip=\"10.0.0.1\"} 1",
        "lvs_hc_service_ready{service=\"TCP 10.0.0.1:80\"} 1",
        "lvs_hc_announce_operations_total{op=\"add\",result=\"ok\"} 1",
        "lvs_hc_announce_stalled 0",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }

    a.kill();
    d.wait_for("the VIP withdrawn", Duration::from_secs(5), |d| {
        d.status()
            .is_some_and(|s| s["announce"]["vips"][0]["announced"] == false)
    });
    let s = d.status().unwrap();
    assert_eq!(
        s["announce"]["vips"][0]["why"],
        "TCP 10.0.0.1:80 has 0 healthy of 1 (quorum 1)"
    );
    assert!(d.messages().iter().any(|m| m
        == "`ip route del 10.0.0.1/32 dev lo table 100 proto 99`: TCP 10.0.0.1:80 has 0 \
            healthy of 1 (quorum 1)"));
    let (status, _) = d.stop(Duration::from_secs(3));
    assert!(status.success());
}
