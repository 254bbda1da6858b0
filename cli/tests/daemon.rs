//! `lvs-hc run` as an operator runs it, on loopback with the in-memory table: readiness,
//! detection, reload (bad and good), the API, `lvs-hc status`, the lock, systemd notification,
//! signals and cleanup. The real-kernel version of this story runs in the QEMU lab.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixDatagram;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_lvs-hc");

/// A web server on a loopback port answering 200 "ok" until stopped.
struct Web {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Web {
    fn start() -> Web {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break; // dropping the listener: connections are refused from now on
                }
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        Web { addr, stop }
    }

    /// Stops answering: the listener closes after one last connection.
    fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

fn config(servers: &[(SocketAddr, u32)], extra: &str) -> String {
    let mut text = String::from(
        "[daemon]\nresync_interval = \"500ms\"\n\n[[service]]\nname = \"web\"\n\
         address = \"10.0.0.1:80\"\nforward = \"nat\"\n\n[[service.check]]\ntype = \"http\"\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 2\njitter = \"0s\"\n",
    );
    for (addr, weight) in servers {
        text.push_str(&format!(
            "\n[[service.server]]\naddress = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    text.push_str(extra);
    text
}

/// The daemon under test; killed if the test ends early. Its JSON log lines are collected.
struct Daemon {
    child: Child,
    api: String,
    control: std::path::PathBuf,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Daemon {
    fn start(dir: &TempDir, extra_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let api = format!("unix:{}", dir.path("api.sock").display());
        let mut cmd = Command::new(BIN);
        cmd.args([
            "run",
            "--backend",
            "memory",
            "--log-format",
            "json",
            "--api",
            &api,
        ])
        .arg("--config")
        .arg(dir.path("lvs-hc.toml"))
        .arg("--lock-file")
        .arg(dir.path("lvs-hc.lock"))
        .args(extra_args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
                sink.lock().unwrap().push(value);
            }
        });
        let daemon = Daemon {
            child,
            api,
            control: dir.path("lvs-hc.sock"),
            log,
        };
        daemon.wait_for("the first table read", Duration::from_secs(10), |d| {
            d.status()
                .is_some_and(|s| s["last_resync_seconds_ago"].is_number())
        });
        daemon
    }

    /// `lvs-hc ARGS`, pointed at this daemon: commands at its control socket (beside the lock
    /// file), the rest at its read-only API.
    fn lvs_hc(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        if args.first() == Some(&"reload") {
            cmd.arg("--control").arg(&self.control);
        } else {
            cmd.args(["--api", &self.api]);
        }
        cmd.output().unwrap()
    }

    fn status(&self) -> Option<Value> {
        let out = self.lvs_hc(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("status --json prints JSON"))
    }

    fn server(status: &Value, addr: SocketAddr) -> &Value {
        status["services"][0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["address"] == addr.to_string())
            .unwrap_or_else(|| panic!("{addr} not in status: {status}"))
    }

    /// Waits until `done` holds; returns how long it took.
    fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&Daemon) -> bool) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self) {
                return start.elapsed();
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what}: not within {limit:?}; log:\n{}",
            self.messages().join("\n")
        );
    }

    fn messages(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                v["fields"]["message"]
                    .as_str()
                    .or(v["message"].as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0);
    }

    /// SIGTERM; the exit status within `limit`, and every log message.
    fn stop(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                thread::sleep(Duration::from_millis(100));
                return (status, self.messages());
            }
            assert!(
                start.elapsed() < limit,
                "lvs-hc did not stop within {limit:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// A plain HTTP/1.0 GET over the daemon's unix socket.
fn http_get(api: &str, path: &str) -> String {
    let sock = api.strip_prefix("unix:").unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    body.to_string()
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
