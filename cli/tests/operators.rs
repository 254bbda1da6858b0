//! The operator's side of administrative states, with the real binary on loopback and the
//! in-memory table: `lvs-hc server drain|disable|enable` through the control socket, the state
//! file across restarts and reloads, the maintenance directory, and what `status` shows.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::daemon::{http_get, Daemon, Web, BIN};
use common::TempDir;

/// A configuration: service `web` (TCP 10.0.0.1:80) with `servers`, and service `tls` (TCP
/// 10.0.0.1:443) with `tls_servers` when there are any; the state directory in `dir`, and
/// `daemon` added to `[daemon]`.
fn config(
    dir: &TempDir,
    servers: &[SocketAddr],
    tls_servers: &[SocketAddr],
    daemon: &str,
) -> String {
    let mut text = format!(
        "[daemon]\nresync_interval = \"500ms\"\nstate_dir = \"{}\"\n{daemon}\n",
        dir.path("state").display()
    );
    for (name, vip, list) in [
        ("web", "10.0.0.1:80", servers),
        ("tls", "10.0.0.1:443", tls_servers),
    ] {
        if list.is_empty() {
            continue;
        }
        text.push_str(&format!(
            "\n[[service]]\nname = \"{name}\"\naddress = \"{vip}\"\nforward = \"nat\"\n\n\
             [[service.check]]\ntype = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
             rise = 1\nfall = 2\njitter = \"0s\"\n"
        ));
        for addr in list {
            text.push_str(&format!(
                "\n[[service.server]]\naddress = \"{addr}\"\nweight = 3\n"
            ));
        }
    }
    text
}

fn server_of(status: &Value, service: usize, addr: SocketAddr) -> &Value {
    status["services"][service]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} not in status: {status}"))
}

fn kernel_weight(status: &Value, addr: SocketAddr) -> Option<u64> {
    server_of(status, 0, addr)["kernel_weight"].as_u64()
}

fn admin_state(status: &Value, addr: SocketAddr) -> Option<String> {
    server_of(status, 0, addr)["admin"]["state"]
        .as_str()
        .map(str::to_string)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn state_file(dir: &TempDir) -> Option<Value> {
    let bytes = std::fs::read(dir.path("state/admin.json")).ok()?;
    Some(serde_json::from_slice(&bytes).expect("the state file is JSON"))
}

/// `lvs-hc server ARGS --control SOCKET`.
fn server(d: &Daemon, args: &[&str]) -> Output {
    let mut all = vec!["server"];
    all.extend_from_slice(args);
    d.lvs_hc(&all)
}

/// A daemon over two web servers in one service, started in a fresh directory `name`.
fn two_servers(name: &str) -> (TempDir, Web, Web, Daemon) {
    let dir = TempDir::new(name);
    let (a, b) = (Web::start(), Web::start());
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&dir, &[a.addr, b.addr], &[], ""),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    (dir, a, b, d)
}

fn wait_status(d: &Daemon, what: &str, done: impl Fn(&Value) -> bool) {
    d.wait_for(what, Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| done(&s))
    });
}

#[test]
fn disable_enable_and_drain_through_the_control_socket() {
    let (dir, a, b, d) = two_servers("operators");
    wait_status(&d, "both servers in", |s| {
        kernel_weight(s, a.addr) == Some(3) && kernel_weight(s, b.addr) == Some(3)
    });

    // Disable: out of the table now, still probed, and said so.
    let out = server(
        &d,
        &[
            "disable",
            &a.addr.to_string(),
            "--reason",
            "kernel patching",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{} in web (TCP 10.0.0.1:80): disabled by admin (kernel patching); health: up\n",
            a.addr
        )
    );
    wait_status(&d, "the disabled server out", |s| {
        kernel_weight(s, a.addr).is_none() && admin_state(s, a.addr).as_deref() == Some("disabled")
    });
    let s = d.status().unwrap();
    let admin = &server_of(&s, 0, a.addr)["admin"];
    assert_eq!(admin["source"], "operator");
    assert_eq!(admin["reason"], "kernel patching");
    assert_eq!(admin["marks"].as_array().unwrap().len(), 1);
    assert_eq!(server_of(&s, 0, a.addr)["health"], "up", "still probed");
    assert_eq!(kernel_weight(&s, b.addr), Some(3), "the other server stays");
    let probed = server_of(&s, 0, a.addr)["checks"][0]["last"]["seconds_ago"]
        .as_f64()
        .unwrap();
    assert!(probed < 1.0, "probed {probed}s ago");
    let status_text = text(&d.lvs_hc(&["status"]).stdout);
    assert!(
        status_text.contains("disabled by admin: kernel patching; health: up"),
        "{status_text}"
    );
    let kept = state_file(&dir).expect("a state file");
    assert_eq!(kept["version"], 1);
    assert_eq!(kept["servers"][0]["service"], "TCP 10.0.0.1:80");
    assert_eq!(kept["servers"][0]["server"], a.addr.to_string());
    assert_eq!(kept["servers"][0]["state"], "disabled");
    assert_eq!(kept["servers"][0]["reason"], "kernel patching");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path("state/admin.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Enable: back, and the state file forgets it.
    let out = server(&d, &["enable", &a.addr.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("{} in web (TCP 10.0.0.1:80): enabled; health: up\n", a.addr)
    );
    wait_status(&d, "the enabled server back", |s| {
        kernel_weight(s, a.addr) == Some(3) && server_of(s, 0, a.addr)["admin"].is_null()
    });
    assert_eq!(state_file(&dir).unwrap()["servers"], serde_json::json!([]));

    // Drain: weight 0 first, then out when the kernel shows no connections or at the
    // timeout (the memory table counts no connections, so the timeout ends it here), and out
    // until enabled.
    let out = server(&d, &["drain", &b.addr.to_string(), "--timeout", "1s"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "{} in web (TCP 10.0.0.1:80): drain by admin; health: up\n",
            b.addr
        )
    );
    let zero = format!("-r {} -m -w 0`", b.addr);
    d.wait_for(
        "the drained server at weight 0",
        Duration::from_secs(2),
        |d| d.messages().iter().any(|m| m.contains(&zero)),
    );
    // (`/status` answers from a copy of the engine up to a second old.)
    wait_status(&d, "the drain in /status", |s| {
        let admin = &server_of(s, 0, b.addr)["admin"];
        admin["state"] == "drain" && admin["drain_timeout_seconds"] == 1.0
    });
    wait_status(&d, "the drained server out", |s| {
        kernel_weight(s, b.addr).is_none() && server_of(s, 0, b.addr)["admin"]["drained"] == true
    });
    let status_text = text(&d.lvs_hc(&["status"]).stdout);
    assert!(
        status_text.contains("drained by admin (out until enabled); health: up"),
        "{status_text}"
    );
    assert_eq!(state_file(&dir).unwrap()["servers"][0]["timeout_ms"], 1000);

    let metrics = http_get(&d.api, "/metrics");
    for needle in [
        "lvs_hc_admin_commands_total{command=\"disable\",result=\"ok\"} 1",
        "lvs_hc_admin_commands_total{command=\"enable\",result=\"ok\"} 1",
        "lvs_hc_admin_commands_total{command=\"drain\",result=\"ok\"} 1",
        "lvs_hc_admin_commands_total{command=\"drain\",result=\"error\"} 0",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
    let logged = d.messages();
    assert!(
        logged
            .iter()
            .any(|m| m.contains("server disable (control socket, uid ")
                && m.contains(&format!(
                    "{} in web (TCP 10.0.0.1:80): kernel patching",
                    a.addr
                ))),
        "{logged:#?}"
    );
}

#[test]
fn bad_commands_say_what_and_where_and_change_nothing() {
    let dir = TempDir::new("operators-bad");
    let a = Web::start();
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&dir, &[a.addr], &[a.addr], ""),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    let sock = d.control.display().to_string();
    let shown = |out: &Output| {
        format!(
            "exit {:?}\nstdout: {}stderr: {}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr)
        )
        .replace(&a.addr.to_string(), "[SERVER]")
        .replace(&dir.dir().display().to_string(), "[DIR]")
    };
    let cases = [
        server(&d, &["disable", "127.0.0.9"]),
        server(&d, &["disable", &a.addr.to_string()]),
        server(&d, &["drain", &a.addr.to_string(), "--service", "nope"]),
        server(&d, &["disable", "127.0.0.1:1", "--service", "web"]),
        Command::new(BIN)
            .args(["server", "enable", "127.0.0.1", "--control"])
            .arg(dir.path("nothing.sock"))
            .output()
            .unwrap(),
    ];
    let mut all = String::new();
    for out in &cases {
        assert_eq!(out.status.code(), Some(1), "{}", shown(out));
        all.push_str(&shown(out));
        all.push_str("--\n");
    }
    assert_eq!(
        all,
        "exit Some(1)\nstdout: stderr: lvs-hc server disable: no server 127.0.0.9 in any \
         service of the configuration in force; nothing changed\n--\n\
         exit Some(1)\nstdout: stderr: lvs-hc server disable: [SERVER] is in several services: \
         [SERVER] in web (TCP 10.0.0.1:80), [SERVER] in tls (TCP 10.0.0.1:443); say which with \
         --service NAME|VIP:PORT (or --all for every one); nothing changed\n--\n\
         exit Some(1)\nstdout: stderr: lvs-hc server drain: no service `nope` in the \
         configuration in force; services: web (TCP 10.0.0.1:80), tls (TCP 10.0.0.1:443); \
         nothing changed\n--\n\
         exit Some(1)\nstdout: stderr: lvs-hc server disable: no server 127.0.0.1:1 in web \
         (TCP 10.0.0.1:80); nothing changed\n--\n\
         exit Some(1)\nstdout: stderr: error: no control socket at [DIR]/nothing.sock (is \
         `lvs-hc run` running? with another --control or [daemon] control?)\n--\n"
    );
    assert!(state_file(&dir).is_none(), "no state file was written");

    // Refused by clap before anything is sent: exit status 2.
    for args in [
        vec!["server", "disable", "web1.example"],
        vec!["server", "drain", "127.0.0.1", "--timeout", "0s"],
        vec!["server", "drain", "127.0.0.1", "--reason", "two\nlines"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--control")
            .arg(&sock)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    // --all takes every service; the state file has both, and a refused command after it
    // leaves the file as it was.
    let out = server(&d, &["disable", &a.addr.to_string(), "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        2,
        "{}",
        text(&out.stdout)
    );
    let before = std::fs::read(dir.path("state/admin.json")).unwrap();
    assert_eq!(
        state_file(&dir).unwrap()["servers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = server(&d, &["enable", "127.0.0.9"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(dir.path("state/admin.json")).unwrap(), before);

    // The read-only API takes no command.
    let api = d.api.strip_prefix("unix:").unwrap();
    let answer = post(
        Path::new(api),
        "/server/disable",
        "{\"address\":\"127.0.0.9\"}",
    );
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("commands are taken only on the control socket"),
        "{answer}"
    );

    // Bad JSON on the control socket: 400 with the reason.
    let answer = post(&d.control, "/server/drain", "{\"adress\":\"127.0.0.9\"}");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("unknown field `adress`"), "{answer}");

    let metrics = http_get(&d.api, "/metrics");
    for needle in [
        "lvs_hc_admin_commands_total{command=\"disable\",result=\"error\"} 3",
        "lvs_hc_admin_commands_total{command=\"drain\",result=\"error\"} 2",
        "lvs_hc_admin_commands_total{command=\"disable\",result=\"ok\"} 1",
        "lvs_hc_admin_commands_total{command=\"enable\",result=\"error\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} not in\n{metrics}");
    }
}

#[test]
fn a_state_file_that_cannot_be_written_refuses_the_command_and_changes_nothing() {
    let dir = TempDir::new("operators-unwritable");
    let a = Web::start();
    std::fs::write(dir.path("lvs-hc.toml"), config(&dir, &[a.addr], &[], "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    wait_status(&d, "the server in", |s| kernel_weight(s, a.addr) == Some(3));
    // A directory where the daemon writes its temporary copy: not even root can write there.
    let tmp = dir.path(&format!("state/.admin.json.{}.tmp", d.child.id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = server(&d, &["disable", &a.addr.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "lvs-hc server disable: cannot write {}: Is a directory (os error 21); nothing \
             changed (check [daemon] state_dir)\n",
            tmp.display()
        )
    );
    assert!(state_file(&dir).is_none());
    // Longer than `/status`'s copy of the engine may be old.
    std::thread::sleep(Duration::from_millis(1200));
    let s = d.status().unwrap();
    assert!(
        server_of(&s, 0, a.addr)["admin"].is_null(),
        "the engine was not told"
    );
    assert_eq!(kernel_weight(&s, a.addr), Some(3));
}

#[test]
fn a_disabled_server_stays_out_across_a_restart_from_the_first_table_write() {
    let (dir, a, b, d) = two_servers("operators-restart");
    let out = server(&d, &["disable", &a.addr.to_string(), "--reason", "reimage"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(d.stop(Duration::from_secs(3)).0.success());

    let d = Daemon::start(&dir, &[], &[]);
    wait_status(&d, "the other server in", |s| {
        kernel_weight(s, b.addr) == Some(3)
    });
    let s = d.status().unwrap();
    assert_eq!(kernel_weight(&s, a.addr), None);
    assert_eq!(admin_state(&s, a.addr).as_deref(), Some("disabled"));
    assert_eq!(server_of(&s, 0, a.addr)["admin"]["reason"], "reimage");
    let messages = d.messages();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("1 administrative state(s) kept from before")),
        "{messages:#?}"
    );
    let added = format!("-r {} ", a.addr);
    assert!(
        !messages
            .iter()
            .any(|m| m.contains("ipvsadm -a") && m.contains(&added)),
        "the disabled server was added: {messages:#?}"
    );
}

#[test]
fn a_reload_without_the_server_forgets_its_state_with_a_note() {
    let (dir, a, b, d) = two_servers("operators-reload");
    let out = server(&d, &["disable", &a.addr.to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        state_file(&dir).unwrap()["servers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    std::fs::write(dir.path("lvs-hc.toml"), config(&dir, &[b.addr], &[], "")).unwrap();
    let out = d.lvs_hc(&["reload"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(state_file(&dir).unwrap()["servers"], serde_json::json!([]));
    let note = format!(
        "{} in TCP 10.0.0.1:80 (disabled: it is no longer a server",
        a.addr
    );
    d.wait_for("the note", Duration::from_secs(2), |d| {
        d.messages().iter().any(|m| {
            m.starts_with("administrative states forgotten, their servers left")
                && m.contains(&note)
        })
    });
    // The engine says so too.
    d.wait_for("the engine's note", Duration::from_secs(2), |d| {
        d.messages().iter().any(|m| {
            m.contains(&format!(
                "{} left the configuration; its disabled state",
                a.addr
            ))
        })
    });
}

#[test]
fn a_state_file_that_cannot_be_read_keeps_the_daemon_from_starting() {
    let dir = TempDir::new("operators-badstate");
    let a = Web::start();
    std::fs::write(dir.path("lvs-hc.toml"), config(&dir, &[a.addr], &[], "")).unwrap();
    std::fs::create_dir_all(dir.path("state")).unwrap();
    std::fs::write(
        dir.path("state/admin.json"),
        "{\"version\":1,\"servers\":[{}]}",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "run",
            "--backend",
            "memory",
            "--api",
            "off",
            "--log-format",
            "text",
            "--config",
        ])
        .arg(dir.path("lvs-hc.toml"))
        .arg("--lock-file")
        .arg(dir.path("lvs-hc.lock"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "not starting: {}: servers[0].service: missing, or not a string; it holds the \
             servers operators drained or disabled, and lvs-hc does not start without it: fix \
             it, or remove it to forget every administrative state",
            dir.path("state/admin.json").display()
        )),
        "{err}"
    );

    // Entries for servers the configuration lacks are dropped with a warning, and the file
    // is rewritten without them.
    std::fs::write(
        dir.path("state/admin.json"),
        "{\"version\":1,\"servers\":[{\"service\":\"TCP 10.0.0.1:80\",\"server\":\
         \"127.0.0.1:1\",\"state\":\"disabled\",\"reason\":\"\",\"set_at_unix\":1}]}",
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    assert_eq!(state_file(&dir).unwrap()["servers"], serde_json::json!([]));
    assert!(
        d.messages().iter().any(|m| m.starts_with(
            "administrative states forgotten, their servers are not in the configuration: \
             127.0.0.1:1 in TCP 10.0.0.1:80"
        )),
        "{:#?}",
        d.messages()
    );
}

#[test]
fn a_maintenance_file_takes_its_server_out_while_it_exists() {
    let dir = TempDir::new("operators-maint");
    let (a, b) = (Web::start(), Web::start());
    let maint = dir.path("maintenance");
    std::fs::create_dir_all(&maint).unwrap();
    let daemon = format!("maintenance_dir = \"{}\"", maint.display());
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&dir, &[a.addr, b.addr], &[], &daemon),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    wait_status(&d, "both in", |s| {
        kernel_weight(s, a.addr) == Some(3) && kernel_weight(s, b.addr) == Some(3)
    });

    let file = maint.join(a.addr.ip().to_string());
    std::fs::write(&file, "").unwrap();
    std::fs::write(maint.join("no-such-server"), "").unwrap();
    std::fs::write(maint.join(".hidden"), "").unwrap();
    // Both servers share 127.0.0.1: the file names the address, so both go.
    d.wait_for("the file's servers out", Duration::from_secs(3), |d| {
        d.status().is_some_and(|s| {
            [a.addr, b.addr].iter().all(|x| {
                kernel_weight(&s, *x).is_none()
                    && server_of(&s, 0, *x)["admin"]["source"] == "maintenance"
            })
        })
    });
    let s = d.status().unwrap();
    assert_eq!(
        server_of(&s, 0, a.addr)["admin"]["reason"],
        file.display().to_string()
    );

    std::fs::remove_file(&file).unwrap();
    let named = maint.join(format!("web@{}", a.addr));
    std::fs::write(&named, "drain new disks\n").unwrap();
    d.wait_for(
        "one drains, the other is back",
        Duration::from_secs(3),
        |d| {
            d.status().is_some_and(|s| {
                admin_state(&s, a.addr).as_deref() == Some("drain")
                    && server_of(&s, 0, a.addr)["admin"]["reason"] == "new disks"
                    && kernel_weight(&s, b.addr) == Some(3)
            })
        },
    );

    std::fs::remove_file(&named).unwrap();
    wait_status(&d, "back when the file is gone", |s| {
        kernel_weight(s, a.addr) == Some(3) && server_of(s, 0, a.addr)["admin"].is_null()
    });
    let warned = d
        .messages()
        .iter()
        .filter(|m| m.contains("no-such-server ignored"))
        .count();
    assert_eq!(warned, 1, "warned once: {:#?}", d.messages());
    assert!(
        !d.messages().iter().any(|m| m.contains(".hidden")),
        "hidden files are ignored"
    );
}

/// A raw `POST PATH` with a JSON body over a unix socket; the whole answer.
fn post(sock: &Path, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    // One write: `write!` would send the pieces one by one, and a server that answers after
    // the head (403) and closes could see the rest arrive on a closed socket (EPIPE here).
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}
