//! Hostile and careless local input, replayed against the binary: each attack on a root daemon
//! from the hardening issue, and the outcome lvs-hc must show. Every test here failed on the
//! code before the hardening (the reason is in each test's comment).
//!
//! The attacks that need lvs-hc's insides are tested beside the code they attack:
//! - a probe that panics: `a_probe_that_panics_frees_its_slot_and_gives_no_verdict` in
//!   `cli/tests/probes.rs`; exec checks' output, environment and exit in the same file;
//! - a fault of the director in the engine: `core/tests/director_faults.rs`;
//! - values that would hurt, and VIPs: `tests/tests/config_errors.rs` (snapshots);
//! - a netlink dump that stalls, a service the decoder cannot represent: `ipvs-sys/tests/`;
//! - setup's state file and VIPs, the lock file: `cli/src/setup/` and `cli/src/daemon/lock.rs`;
//! - arbitrary bytes for every parser: the fuzz targets in `fuzz/`.
//!
//! Some need root (to act as another user, or to raise the test's own descriptor limit), like
//! `cli/tests/setup.rs`: without it they fail saying so; they never skip.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::daemon::{config, http_get, own_state_dir, Daemon, Options, Web, BIN};
use common::TempDir;

fn require_root(what: &str) {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "{what} needs root (run the tests as root, as CI does); it never skips"
    );
}

/// Open file descriptors of `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Sets the soft `RLIMIT_NOFILE` of `pid`; returns the old one.
fn set_soft_nofile(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit(2) reads `old` with the current limits first, then sets the new ones.
    unsafe {
        assert_eq!(
            libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: soft,
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()),
            0,
            "prlimit: {}",
            std::io::Error::last_os_error()
        );
    }
    old.rlim_cur
}

/// `VmHWM` of `pid`: its peak resident memory, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// An HTTP/1.1 connection to a unix socket, kept open between requests: it needs no new
/// descriptor in the daemon, so it still answers when the daemon can open nothing.
struct Kept(std::os::unix::net::UnixStream);

impl Kept {
    fn connect(api: &str) -> Kept {
        let path = api.strip_prefix("unix:").unwrap_or(api);
        let s = std::os::unix::net::UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Kept(s)
    }

    /// Status code and body.
    fn get(&mut self, path: &str) -> (u16, String) {
        write!(self.0, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            self.0
                .read_exact(&mut byte)
                .expect("an answer on the kept connection");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let code = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("a content-length");
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).unwrap();
        (code, String::from_utf8(body).unwrap())
    }

    fn status(&mut self) -> Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn in_table(status: &Value) -> usize {
    status["services"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["in_table"] == true)
        .count()
}

fn removals(d: &Daemon) -> Vec<String> {
    d.messages()
        .into_iter()
        .filter(|m| m.starts_with("applied `ipvsadm -d") || m.contains(" down: "))
        .collect()
}

fn servers(n: usize) -> Vec<Web> {
    (0..n).map(|_| Web::start()).collect()
}

fn weights(webs: &[Web]) -> Vec<(std::net::SocketAddr, u32)> {
    webs.iter().map(|w| (w.addr, 1)).collect()
}

#[test]
fn starved_of_descriptors_the_daemon_removes_no_healthy_server() {
    // Before: every probe failed with "Too many open files" and, after `fall` of them, the
    // engine removed every healthy server.
    let dir = TempDir::new("starve");
    let webs = servers(20);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    d.wait_for("all 20 servers in", Duration::from_secs(10), |d| {
        d.status().is_some_and(|s| in_table(&s) == 20)
    });
    let mut kept = Kept::connect(&d.api);
    assert_eq!(in_table(&kept.status()), 20);

    // Nothing new can be opened now: no socket for a probe, no connection accepted.
    let pid = d.child.id();
    let before = set_soft_nofile(pid, 3);
    let starved = Instant::now();
    let mut saw_fault = None;
    // fall 2 × interval 200ms: ten times what removal takes.
    while starved.elapsed() < Duration::from_secs(4) {
        let s = kept.status();
        assert_eq!(in_table(&s), 20, "a server left while starved: {s}");
        if s["probe_fault_count"].as_u64().unwrap_or(0) > 0 {
            saw_fault = Some(s["probe_faults"][0]["reason"].to_string());
        }
        thread::sleep(Duration::from_millis(300));
    }
    let reason = saw_fault.expect("status shows the probes that cannot run");
    assert!(reason.contains("EMFILE"), "{reason}");
    let (code, body) = kept.get("/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("cannot run because of this director") && body.contains("EMFILE"),
        "{body}"
    );

    set_soft_nofile(pid, before);
    let back = Instant::now();
    while kept.get("/healthz").0 != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "/healthz still unhealthy 5s after the descriptors came back"
        );
        thread::sleep(Duration::from_millis(100));
    }
    // /status answers from a copy of the engine up to a second old.
    let mut s = kept.status();
    while s["probe_fault_count"] != 0 && back.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(200));
        s = kept.status();
    }
    assert_eq!(s["probe_fault_count"], 0, "{s}");
    assert_eq!(in_table(&s), 20);
    assert_eq!(removals(&d), Vec::<String>::new());
    assert!(d
        .messages()
        .iter()
        .any(|m| m.contains("cannot run on this director") && m.contains("EMFILE")));
    assert!(d
        .messages()
        .iter()
        .any(|m| m.starts_with("every probe runs again")));
}

#[test]
fn a_flood_of_idle_api_connections_starves_nothing() {
    // Before: the API accepted every connection, and 60 idle ones under `ulimit -n 48` left
    // the probes without descriptors (healthy servers removed). Now at most 64 are served at
    // once; the rest wait in the kernel's backlog, holding none of the daemon's descriptors.
    require_root("raising the test's own descriptor limit for 2,000 connections");
    let mut lim = libc::rlimit {
        rlim_cur: 8192,
        rlim_max: 8192,
    };
    // SAFETY: setrlimit on this process, reading a struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.max(8192);
        lim.rlim_max = lim.rlim_cur;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let dir = TempDir::new("flood");
    let webs = servers(20);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("127.0.0.1:{port}");
    let d = Daemon::start_with(
        &dir,
        Options {
            api: Some(api.clone()),
            nofile: Some(256),
            ..Options::default()
        },
    );
    d.wait_for("all 20 servers in", Duration::from_secs(10), |d| {
        d.status().is_some_and(|s| in_table(&s) == 20)
    });
    let probes_before = probes_total(&d);
    let mut flood = Vec::new();
    let mut refused = 0;
    let addr = api.parse().unwrap();
    // Until 2,000 are open or the kernel's backlog takes no more.
    while flood.len() < 2000 && refused < 20 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(20)) {
            Ok(s) => flood.push(s),
            Err(_) => refused += 1,
        }
    }
    // 64 served, the kernel's backlog (128) full; the code before accepted them all.
    eprintln!("{} idle connections open", flood.len());
    assert!(
        flood.len() >= 150,
        "only {} connections opened",
        flood.len()
    );
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(3) {
        assert!(
            open_fds(d.child.id()) < 256,
            "the daemon holds {} descriptors",
            open_fds(d.child.id())
        );
        thread::sleep(Duration::from_millis(200));
    }
    // The control socket answers meanwhile (its own limit), and nothing was removed.
    let s = control_status(&d);
    assert_eq!(in_table(&s), 20, "{s}");
    assert_eq!(s["probe_fault_count"], 0, "{s}");
    assert_eq!(removals(&d), Vec::<String>::new());
    let probes = probes_total(&d) - probes_before;
    // 20 servers every 200ms for more than 3s: about 300; at least half of them ran.
    assert!(probes >= 150, "only {probes} probes ran during the flood");
    drop(flood);
    d.wait_for("the API answers again", Duration::from_secs(8), |d| {
        d.status().is_some()
    });
}

/// `lvs_hc_probes_total` over every result, through the control socket.
fn probes_total(d: &Daemon) -> u64 {
    let text = http_get(&format!("unix:{}", d.control.display()), "/metrics");
    text.lines()
        .filter(|l| l.starts_with("lvs_hc_probes_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

fn control_status(d: &Daemon) -> Value {
    let out = Command::new(BIN)
        .args(["status", "--json", "--control"])
        .arg(&d.control)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn slow_and_idle_api_clients_are_cut_off() {
    // Before: no header or idle timeout; a client could hold a connection forever.
    let dir = TempDir::new("slowloris");
    let webs = servers(1);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    let path = d.api.strip_prefix("unix:").unwrap().to_string();
    let slow = thread::spawn(move || {
        let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // A head that never ends.
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n").unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        t.elapsed()
    });
    let mut kept = Kept::connect(&d.api);
    assert_eq!(kept.get("/healthz").0, 200);
    let t = Instant::now();
    let mut buf = [0u8; 1];
    // Idle after an answer: closed (EOF) once the idle limit passes.
    assert_eq!(
        kept.0.read(&mut buf).unwrap(),
        0,
        "the idle connection stays"
    );
    let idle = t.elapsed();
    let slow = slow.join().unwrap();
    for (what, took) in [
        ("an unfinished request head", slow),
        ("an idle client", idle),
    ] {
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(9),
            "{what} was cut off after {took:?}, not about 5s"
        );
    }
}

#[test]
fn commands_are_taken_only_on_the_control_socket_and_only_from_those_allowed() {
    // Before: `POST /reload` for any local user, on the one API.
    require_root("acting as another user");
    let dir = TempDir::new("control");
    let webs = servers(1);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    // The read-only API refuses commands, naming where they go.
    let path = d.api.strip_prefix("unix:").unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    write!(s, "POST /reload HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 403"), "{answer}");
    assert!(
        answer.contains(&format!("control socket {}", d.control.display())),
        "{answer}"
    );
    // The control socket is root's alone by default.
    let meta = std::fs::metadata(&d.control).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // Another user is refused, clearly; the daemon reloads nothing.
    let dir_mode = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.dir(), dir_mode).unwrap();
    let out = Command::new(BIN)
        .args(["reload", "--control"])
        .arg(&d.control)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied on the control socket"),
        "{err}"
    );
    // Root may, and the log names who asked.
    let out = d.lvs_hc(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d
        .messages()
        .iter()
        .any(|m| m.contains("configuration reread (control socket, uid 0, pid ")));
    assert!(!d
        .messages()
        .iter()
        .any(|m| m.contains("uid 65534") && m.contains("reread")));
}

#[test]
fn the_control_socket_takes_the_configured_mode_and_group() {
    let dir = TempDir::new("control-group");
    let webs = servers(1);
    std::fs::write(
        dir.path("lvs-hc.toml"),
        config(&weights(&webs), "").replacen(
            "[daemon]\n",
            "[daemon]\ncontrol_mode = \"0660\"\ncontrol_group = \"65534\"\n",
            1,
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    let meta = std::fs::metadata(&d.control).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 65534);
}

#[test]
fn a_file_at_a_socket_path_is_never_removed() {
    // Before: the socket path was removed at start whatever it was.
    let dir = TempDir::new("socket-path");
    let webs = servers(1);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    own_state_dir(&dir);
    for (name, args) in [
        ("precious", vec!["--control", "PATH"]),
        ("precious-api", vec!["--api", "unix:PATH"]),
    ] {
        let victim = dir.path(name);
        std::fs::write(&victim, "keep me\n").unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("PATH", victim.to_str().unwrap()))
            .collect();
        let out = Command::new(BIN)
            .args([
                "run",
                "--backend",
                "memory",
                "--log-format",
                "text",
                "--config",
            ])
            .arg(dir.path("lvs-hc.toml"))
            .arg("--lock-file")
            .arg(dir.path("lvs-hc.lock"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{} exists and is a regular file: lvs-hc replaces only a socket",
                victim.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    }
}

#[test]
fn a_socket_another_process_listens_on_is_not_taken_over() {
    let dir = TempDir::new("socket-live");
    let webs = servers(1);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    own_state_dir(&dir);
    let other = std::os::unix::net::UnixListener::bind(dir.path("other.sock")).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--backend", "memory", "--config"])
        .arg(dir.path("lvs-hc.toml"))
        .arg("--lock-file")
        .arg(dir.path("lvs-hc.lock"))
        .arg("--control")
        .arg(dir.path("other.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another process listens on"));
    drop(other);
}

#[test]
fn an_exec_check_that_never_stops_talking_costs_bounded_memory() {
    // Before: the whole output was kept: /usr/bin/yes took the daemon to 392 MB.
    let dir = TempDir::new("yes");
    let webs = servers(1);
    let text = config(&weights(&webs), "").replace(
        "type = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"",
        "type = \"exec\"\ncommand = [\"/usr/bin/yes\"]\ninterval = \"1s\"\ntimeout = \"1s\"",
    );
    assert!(text.contains("/usr/bin/yes"));
    std::fs::write(dir.path("lvs-hc.toml"), text).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    // Four seconds of output at least (at a gigabyte a second, unbounded output would show),
    // and until a probe has timed out (later on a loaded machine).
    thread::sleep(Duration::from_secs(4));
    d.wait_for(
        "a timed-out probe of /usr/bin/yes",
        Duration::from_secs(20),
        |d| {
            d.messages()
                .iter()
                .any(|m| m.contains("(exec /usr/bin/yes) failed: timed out after 1s"))
        },
    );
    let peak = peak_rss_kib(d.child.id());
    eprintln!("peak RSS with /usr/bin/yes as a check: {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn what_an_exec_check_leaves_outside_its_process_group_is_ended() {
    // Before: a descendant that called setsid outlived the check (reparented to init).
    let dir = TempDir::new("escapee");
    let webs = servers(1);
    // A sleep no other process runs: found by its argument, whatever pid setsid leaves it.
    let marker = format!("9{}", std::process::id());
    let script = format!("setsid sleep {marker} & exit 0");
    let text = config(&weights(&webs), "").replace(
        "type = \"http\"\ninterval = \"200ms\"\ntimeout = \"150ms\"",
        &format!(
            "type = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{script}\"]\ninterval = \"1h\"\n\
             timeout = \"5s\""
        ),
    );
    std::fs::write(dir.path("lvs-hc.toml"), text).unwrap();
    let running = |marker: &str| -> Vec<u32> {
        let want = format!("sleep\0{marker}\0");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
            })
            .collect()
    };
    let d = Daemon::start(&dir, &[], &[]);
    d.wait_for(
        "the check started its escapee",
        Duration::from_secs(5),
        |_| {
            !running(&marker).is_empty()
                || d.messages().iter().any(|m| {
                    m.contains("that exec checks left running outside their process group")
                })
        },
    );
    d.wait_for(
        "the escapee ended and said so",
        Duration::from_secs(5),
        |d| {
            running(&marker).is_empty()
                && d.messages().iter().any(|m| {
                    m.contains("that exec checks left running outside their process group")
                })
        },
    );
}

#[test]
fn configuration_files_that_are_not_files_or_too_large_or_not_text_are_refused() {
    // Before: a FIFO hung the reader, a 50 MB file was read whole, invalid UTF-8 had no line.
    let dir = TempDir::new("config-files");
    let fifo = dir.path("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let big = dir.path("big.toml");
    std::fs::write(&big, "#".repeat(50 * 1024 * 1024)).unwrap();
    let latin1 = dir.path("latin1.toml");
    std::fs::write(
        &latin1,
        b"[[service]]\naddress = \"10.0.0.1:80\"\nname = \"caf\xe9\"\n",
    )
    .unwrap();
    let cases = [
        (
            &fifo,
            "fifo.toml is a FIFO (named pipe), not a regular file".to_string(),
        ),
        (
            &big,
            "big.toml is 52428800 bytes; a configuration may be at most 16777216 bytes".to_string(),
        ),
        (
            &latin1,
            "latin1.toml:3:12: not UTF-8 text (byte 0xe9)".to_string(),
        ),
        (
            &dir.dir().to_path_buf(),
            "is a directory, not a regular file".to_string(),
        ),
    ];
    for (path, want) in &cases {
        let t = Instant::now();
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(path)
            .output()
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{want}: it hung");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want.as_str()), "{err}");
        // At start, `run` says the same and exits 78 (a configuration error: no restart loop).
        let out = Command::new(BIN)
            .args([
                "run",
                "--backend",
                "memory",
                "--log-format",
                "text",
                "--config",
            ])
            .arg(path)
            .arg("--lock-file")
            .arg(dir.path("x.lock"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78));
        assert!(String::from_utf8_lossy(&out.stderr).contains(want.as_str()));
    }

    // On reload the running configuration stays, and the refusal is prompt.
    let webs = servers(1);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    d.wait_for("the server in", Duration::from_secs(5), |d| {
        d.status().is_some_and(|s| in_table(&s) == 1)
    });
    std::fs::rename(&big, dir.path("lvs-hc.toml")).unwrap();
    let t = Instant::now();
    let out = d.lvs_hc(&["reload"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a configuration may be at most"));
    let s = d.status().unwrap();
    assert_eq!(in_table(&s), 1, "the old configuration still runs: {s}");
}

#[test]
fn values_that_would_hurt_are_refused_with_where_and_why() {
    // Before: `interval = "1ns"` gave 73,000 probes a second to one server; a multicast or
    // unspecified VIP went to the kernel.
    let dir = TempDir::new("values");
    let base = config(&[("127.0.0.1:8080".parse().unwrap(), 1)], "");
    let cases = [
        (
            base.replace("interval = \"200ms\"", "interval = \"1ns\""),
            "interval: must be from 100ms to 24h, found 1ns",
        ),
        (
            base.replace("timeout = \"150ms\"", "timeout = \"10s\""),
            "timeout 10s is longer than interval 200ms",
        ),
        (
            base.replace("10.0.0.1:80", "239.1.1.1:80"),
            "239.1.1.1 cannot be a virtual address: it is a multicast address",
        ),
        (
            base.replace("10.0.0.1:80", "0.0.0.0:80"),
            "0.0.0.0 cannot be a virtual address: it is the unspecified address",
        ),
        (
            base.replace("[daemon]\n", "[daemon]\ncontrol_mode = \"0666\"\n"),
            "0666 lets every local user write to the control socket",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path("bad.toml"), &text).unwrap();
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(dir.path("bad.toml"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "accepted:\n{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.toml:") && err.contains(want), "{err}");
    }
}

#[test]
fn a_burst_of_status_requests_costs_the_engine_one_copy() {
    // Before: every /status was built on the engine's own thread, each from scratch.
    let dir = TempDir::new("burst");
    let webs = servers(5);
    std::fs::write(dir.path("lvs-hc.toml"), config(&weights(&webs), "")).unwrap();
    let d = Daemon::start(&dir, &[], &[]);
    let views = |d: &Daemon| -> u64 {
        let text = http_get(&d.api, "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix("lvs_hc_api_views_total "))
            .and_then(|v| v.parse().ok())
            .expect("lvs_hc_api_views_total")
    };
    let before = views(&d);
    let api = d.api.clone();
    let t = Instant::now();
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let api = api.clone();
            thread::spawn(move || http_get(&api, "/status"))
        })
        .collect();
    for c in clients {
        let body: Value = serde_json::from_str(&c.join().unwrap()).unwrap();
        assert_eq!(body["services"][0]["servers"].as_array().unwrap().len(), 5);
    }
    let elapsed = t.elapsed();
    let copies = views(&d) - before;
    // One copy a second at most (the /metrics read above counts too).
    let bound = 2 + elapsed.as_secs();
    assert!(
        copies <= bound,
        "{copies} copies of the engine for 16 requests in {elapsed:?}"
    );
}
