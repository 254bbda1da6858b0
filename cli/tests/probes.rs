//! The probes against real sockets on loopback, and the driver end to end with an in-memory
//! IPVS table.

mod common;

use common::{fail, tls_acceptor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::IpvsBackend;
use lvs_hc::probe::{director_address, socket_mark, Connect, Origin, Prober, TokioConnect};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-purpose HTTP server: answers every request with `response` after `delay`, sending it
/// in `chunks` pieces spaced by `delay` (a trickle when chunks > 1).
async fn server(response: &'static str, delay: Duration, chunks: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let bytes = response.as_bytes();
                let size = bytes.len().div_ceil(chunks.max(1));
                for piece in bytes.chunks(size) {
                    tokio::time::sleep(delay).await;
                    if s.write_all(piece).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn check(toml: &str) -> Arc<lvs_hc_core::config::Check> {
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\n{toml}\n[[service.server]]\naddress = \"127.0.0.1:80\"\nforward = \"nat\"\n"
    );
    let cfg = Config::from_toml(&text, "probe-test").unwrap_or_else(|e| panic!("{e}"));
    cfg.services[0].servers[0].checks[0].clone()
}

async fn probe(server: SocketAddr, toml: &str) -> ProbeOutcome {
    Prober::new(TokioConnect)
        .probe(&request_to(server, toml))
        .await
}

fn request_to(server: SocketAddr, toml: &str) -> ProbeRequest {
    ProbeRequest {
        id: ProbeId(1),
        server,
        check: check(toml),
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nserver-1";

#[tokio::test]
async fn http_passes_on_the_expected_status_and_body() {
    let s = server(OK, Duration::ZERO, 1).await;
    let out = probe(
        s,
        "type = \"http\"\nexpect_body = \"server-1\"\ntimeout = \"1s\"",
    )
    .await;
    assert_eq!(out, ProbeOutcome::Pass { weight: None });
}

#[tokio::test]
async fn http_fails_on_a_status_outside_the_set() {
    let s = server(
        "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
        Duration::ZERO,
        1,
    )
    .await;
    assert_eq!(
        probe(s, "type = \"http\"").await,
        fail("status 503 not in 200-299")
    );
}

#[tokio::test]
async fn http_fails_on_the_wrong_page() {
    let s = server(OK, Duration::ZERO, 1).await;
    assert_eq!(
        probe(s, "type = \"http\"\nexpect_body = \"ok\"").await,
        fail("body lacks \"ok\"")
    );
    let out = probe(s, "type = \"http\"\nexpect_body_regex = \"^server-[2-9]$\"").await;
    assert_eq!(out, fail("body does not match /^server-[2-9]$/"));
}

#[tokio::test]
async fn http_checks_the_whole_body_s_md5_digest() {
    let s = server(OK, Duration::ZERO, 1).await;
    // `printf server-1 | md5sum`, and another digest.
    let right = "fa767f034cb523b80bf39cc29de32ea5";
    let digest = "6d0c9bfd5a7b1c1a0bf7d3f4c3f0a5a5";
    let ok = format!("type = \"http\"\nexpect_body_md5 = \"{right}\"");
    assert_eq!(probe(s, &ok).await, ProbeOutcome::Pass { weight: None });
    let upper = format!(
        "type = \"http\"\nexpect_body_md5 = \"{}\"",
        right.to_uppercase()
    );
    assert_eq!(probe(s, &upper).await, ProbeOutcome::Pass { weight: None });
    let wrong = format!("type = \"http\"\nexpect_body_md5 = \"{digest}\"");
    assert_eq!(
        probe(s, &wrong).await,
        fail(&format!("body's MD5 digest is {right}, expected {digest}"))
    );
    // A digest needs the whole body: one longer than body_limit cannot pass.
    let short = format!("type = \"http\"\nexpect_body_md5 = \"{right}\"\nbody_limit = 4");
    assert_eq!(
        probe(s, &short).await,
        fail("body longer than body_limit (4 bytes): its MD5 digest needs all of it")
    );
}

#[tokio::test]
async fn a_check_with_ip_probes_that_address_instead_of_the_server_s() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The configured server is 127.0.0.3, where nothing listens; the check's `ip` is where
    // its health is told.
    let server: SocketAddr = format!("127.0.0.3:{port}").parse().unwrap();
    assert_eq!(
        probe(server, "type = \"tcp\"\ntimeout = \"1s\"").await,
        fail("connection refused")
    );
    let out = probe(
        server,
        "type = \"tcp\"\nip = \"127.0.0.2\"\ntimeout = \"1s\"",
    )
    .await;
    assert_eq!(out, ProbeOutcome::Pass { weight: None });
    drop(listener);
    let out = probe(
        server,
        "type = \"tcp\"\nip = \"127.0.0.2\"\ntimeout = \"1s\"",
    )
    .await;
    assert_eq!(out, fail("connection refused"));
}

#[tokio::test]
async fn a_trickling_server_fails_at_the_timeout_over_the_whole_exchange() {
    // Each piece arrives well within the timeout; the whole answer does not.
    let s = server(OK, Duration::from_millis(120), 8).await;
    let started = std::time::Instant::now();
    let out = probe(
        s,
        "type = \"http\"\nexpect_body = \"server\"\ntimeout = \"300ms\"",
    )
    .await;
    assert_eq!(out, fail("timed out after 300ms"));
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    let s = server(OK, Duration::from_secs(30), 1).await;
    assert_eq!(
        probe(s, "type = \"http\"\ntimeout = \"200ms\"").await,
        fail("timed out after 200ms")
    );
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    assert_eq!(
        probe(addr, "type = \"http\"").await,
        fail("connection refused")
    );
    assert_eq!(
        probe(addr, "type = \"tcp\"").await,
        fail("connection refused")
    );
}

#[tokio::test]
async fn tcp_passes_on_connect() {
    let s = server(OK, Duration::ZERO, 1).await;
    assert_eq!(
        probe(s, "type = \"tcp\"").await,
        ProbeOutcome::Pass { weight: None }
    );
}

#[tokio::test]
async fn https_to_a_plain_server_fails_the_handshake() {
    // A plain HTTP server that speaks first: the TLS client reads HTTP where a record belongs.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            let _ = c.write_all(OK.as_bytes()).await;
        }
    });
    match probe(s, "type = \"https\"\nverify = false").await {
        ProbeOutcome::Fail { reason } => {
            assert!(reason.starts_with("TLS handshake failed: "), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn responses_are_framed_as_http_1_1_says() {
    // Each answer, sent in one piece and then as a trickle of 1-byte writes (the head and the
    // chunk lines arrive in parts), against `expect_body = "ok"` with a 16-byte body limit.
    let check = "type = \"http\"\nexpect_body = \"ok\"\nbody_limit = 16";
    let pass = ProbeOutcome::Pass { weight: None };
    let cases: [(&str, &'static str, ProbeOutcome); 9] = [
        (
            "chunks, an extension and a trailer",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\no\r\n1\r\nk\r\n0\r\nT: 1\r\n\r\n",
            pass.clone(),
        ),
        (
            "chunks without the page",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n",
            fail("body lacks \"ok\""),
        ),
        (
            "an informational answer first",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            pass.clone(),
        ),
        (
            "HTTP/1.0, the body until the close",
            "HTTP/1.0 200 OK\r\n\r\nok",
            pass.clone(),
        ),
        (
            "a body shorter than its length",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok",
            fail("reading the body failed: connection closed before a complete response"),
        ),
        (
            "the page past the body limit",
            "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n..................ok",
            fail("body lacks \"ok\""),
        ),
        (
            "two lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            fail("not an HTTP response (two different content-lengths)"),
        ),
        (
            "not HTTP",
            "SSH-2.0-OpenSSH_9.2\r\n",
            fail("not an HTTP response (invalid HTTP version)"),
        ),
        (
            "a head cut short",
            "HTTP/1.1 200 OK\r\nContent-Le",
            fail("connection closed before a complete response"),
        ),
    ];
    for (what, answer, want) in cases {
        for pieces in [1, answer.len()] {
            let s = server(answer, Duration::from_millis(u64::from(pieces > 1)), pieces).await;
            assert_eq!(probe(s, check).await, want, "{what}, in {pieces} pieces");
        }
    }
}

#[tokio::test]
async fn exec_passes_on_exit_0_and_reports_the_exit_status() {
    let s: SocketAddr = "127.0.0.1:80".parse().unwrap();
    assert_eq!(
        probe(s, "type = \"exec\"\ncommand = [\"/bin/true\"]").await,
        ProbeOutcome::Pass { weight: None }
    );
    assert_eq!(
        probe(
            s,
            "type = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 2\"]"
        )
        .await,
        fail("exit status 2")
    );
    // A program that cannot start says nothing about the server: no verdict.
    let missing = probe(s, "type = \"exec\"\ncommand = [\"/nonexistent/check\"]").await;
    assert_eq!(
        missing,
        ProbeOutcome::DirectorFault {
            reason: "cannot start /nonexistent/check: No such file or directory (ENOENT)".into()
        }
    );
}

#[tokio::test]
async fn exec_verdict_comes_at_exit_even_if_a_child_keeps_stdout_open() {
    // The background sleep inherits standard output; success is the exit, not the end of
    // output (today's code waited for the output's end: a timeout after 5s).
    let dir = std::env::temp_dir().join(format!("lvs-hc-exec-bg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("bg.pid");
    let script = format!("sleep 30 & echo $! > {}; exit 0", pidfile.display());
    let toml = format!(
        "type = \"exec\"\ninterval = \"5s\"\ntimeout = \"5s\"\ncommand = [\"/bin/sh\", \"-c\", \"{script}\"]"
    );
    let s: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let started = std::time::Instant::now();
    assert_eq!(probe(s, &toml).await, ProbeOutcome::Pass { weight: None });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the verdict waited for the background child: {:?}",
        started.elapsed()
    );
    // What the program left in its process group is ended with it.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        eventually(|| !runs(&pid)).await,
        "the background child still runs"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn exec_output_beyond_the_bound_is_read_and_dropped() {
    // 8 MiB of output, then the weight: the program is not blocked on a full pipe, and the
    // last line still counts.
    let s: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let toml = "type = \"exec\"\ndynamic_weight = true\ninterval = \"5s\"\ntimeout = \"5s\"\n\
                command = [\"/bin/sh\", \"-c\", \"head -c 8388608 /dev/zero; echo; echo weight=3\"]";
    assert_eq!(probe(s, toml).await, ProbeOutcome::Pass { weight: Some(3) });
}

#[tokio::test]
async fn exec_sees_a_cleared_environment_and_its_own_variables() {
    // CARGO_MANIFEST_DIR is in the test's environment (cargo sets it): the check must not
    // see it; PATH, the LVS_HC_* variables and the check's env table it must.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let s: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let script = "test -z \\\"$CARGO_MANIFEST_DIR\\\" && test -n \\\"$PATH\\\" && \
                  test \\\"$LVS_HC_IP:$LVS_HC_PORT\\\" = 127.0.0.1:8080 && \
                  test \\\"$LVS_HC_TIMEOUT_MS\\\" = 1000 && test \\\"$COLOUR\\\" = blue";
    let toml = format!(
        "type = \"exec\"\ntimeout = \"1s\"\nenv = {{ COLOUR = \"blue\" }}\n\
         command = [\"/bin/sh\", \"-c\", \"{script}\"]"
    );
    assert_eq!(probe(s, &toml).await, ProbeOutcome::Pass { weight: None });
}

#[tokio::test]
async fn a_source_address_the_director_lacks_is_a_fault_of_the_director() {
    // 192.0.2.77 (TEST-NET-1) is on no interface here: the bind fails before any packet.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let out = probe(addr, "type = \"tcp\"\nsource = \"192.0.2.77\"").await;
    assert_eq!(
        out,
        ProbeOutcome::DirectorFault {
            reason: "cannot bind to source 192.0.2.77: Cannot assign requested address \
                     (EADDRNOTAVAIL)"
                .into()
        }
    );
}

#[tokio::test]
async fn an_unreadable_ca_file_is_a_fault_of_the_director() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let out = probe(addr, "type = \"https\"\nca_file = \"/nonexistent/ca.pem\"").await;
    assert!(
        matches!(&out, ProbeOutcome::DirectorFault { reason } if reason.starts_with("TLS setup failed: cannot read ca_file /nonexistent/ca.pem")),
        "{out:?}"
    );
}

#[tokio::test]
async fn exec_substitutes_the_server_and_reports_a_dynamic_weight() {
    let s: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let toml = "type = \"exec\"\ndynamic_weight = true\ncommand = [\"/bin/sh\", \"-c\", \
                \"test $0 = 127.0.0.1 && test $1 = 8080 && test $LVS_HC_PORT = 8080 && echo weight=7\", \"{ip}\", \"{port}\"]";
    assert_eq!(probe(s, toml).await, ProbeOutcome::Pass { weight: Some(7) });
}

#[tokio::test]
async fn exec_timeout_kills_the_whole_process_group() {
    let dir = std::env::temp_dir().join(format!("lvs-hc-exec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("child.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let toml = format!(
        "type = \"exec\"\ntimeout = \"300ms\"\ncommand = [\"/bin/sh\", \"-c\", \"{script}\"]"
    );
    let s: SocketAddr = "127.0.0.1:80".parse().unwrap();
    assert_eq!(probe(s, &toml).await, fail("timed out after 300ms"));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(
        eventually(|| !runs(&pid)).await,
        "the grandchild still runs"
    );
}

#[tokio::test]
async fn an_exec_probe_dropped_before_its_end_still_ends_its_process_group() {
    // The driver stops, or the probe's timeout fires a moment before the program's own: the
    // probe is dropped midway, and what its program started must not run on.
    let dir = std::env::temp_dir().join(format!("lvs-hc-exec-drop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("child.pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let check = check(&format!(
        "type = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{script}\"]"
    ));
    let lvs_hc_core::config::CheckKind::Exec(exec) = &check.kind else {
        unreachable!("an exec check")
    };
    let req = ProbeRequest {
        id: ProbeId(1),
        server: "127.0.0.1:80".parse().unwrap(),
        check: check.clone(),
    };
    let written = || std::fs::read_to_string(&pidfile).is_ok_and(|p| p.ends_with('\n'));
    tokio::select! {
        outcome = lvs_hc::probe::exec::exec(exec, &req, Duration::from_secs(30)) => {
            panic!("the program ended before it was dropped: {outcome:?}")
        }
        started = eventually(written) => assert!(started, "the program did not start"),
    }
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert!(eventually(|| !runs(&pid)).await, "the grandchild runs on");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// How long a test waits on the wall clock for what it expects before it gives up: far longer
/// than anything here takes, so that a loaded machine (a build beside the tests) is not a
/// failure. Tests wait for what they expect to happen, never for a fixed time.
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `done` holds, looking every 10 ms; `false` if it still does not after
/// [`PATIENCE`].
async fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// Whether the process `pid` (as written in a pid file) runs: neither gone nor a zombie
/// waiting for init.
fn runs(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

struct Log(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl lvs_hc::driver::Observer for Log {
    fn on_event(&mut self, event: &lvs_hc_core::Event) {
        self.0.borrow_mut().push(event.kind.to_string());
    }
}

/// A TCP check every 100 ms whose timeout leaves a loaded machine a margin: a refused
/// connection fails at once, but a connection slow to be set up is not a failure.
const TCP_EVERY_100MS: &str = "[[service.check]]\ntype = \"tcp\"\ninterval = \"100ms\"\n\
                               timeout = \"2s\"\nallow_long_timeout = true\njitter = \"0s\"\n";

#[tokio::test]
async fn the_driver_adds_a_passing_server_and_removes_it_when_it_dies() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let text = format!(
        "[daemon]\nresync_interval = \"1s\"\n[[service]]\naddress = \"10.0.0.1:{port}\"\n\
         {TCP_EVERY_100MS}rise = 1\nfall = 2\n[[service.server]]\naddress = \"{addr}\"\nweight = 3\n",
        port = addr.port()
    );
    let config = Config::from_toml(&text, "driver-test").unwrap();
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let options = lvs_hc::driver::RunOptions {
        seed: Some(1),
        fd_budget: None,
        queries: None,
        admin: None,
        initial_admin: Vec::new(),
        reloads: None,
        probe_threads: 1,
        announce: None,
        observer: Log(log.clone()),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let driver = lvs_hc::driver::run_with(
        config,
        TokioConnect,
        MemoryBackend::new(),
        async {
            let _ = stop_rx.await;
        },
        options,
    );
    let add = format!(
        "applied `ipvsadm -a -t 10.0.0.1:{} -r {addr} -g -w 3`",
        addr.port()
    );
    let seen = |what: &dyn Fn(&str) -> bool| log.borrow().iter().any(|l| what(l));
    let script = async {
        if eventually(|| seen(&|l| l.starts_with(&add))).await {
            drop(listener); // the server dies: connections are refused from now on
            eventually(|| seen(&|l| l.contains(" down: "))).await;
        }
        stop_tx.send(()).unwrap();
    };
    let (engine, ()) = tokio::join!(driver, script);
    let lines = log.borrow().clone();
    assert!(lines.iter().any(|l| l.starts_with(&add)), "{lines:#?}");
    let down = format!("{addr} down: 2 consecutive failures, last: connection refused");
    assert!(lines.iter().any(|l| l.ends_with(&down)), "{lines:#?}");
    assert_eq!(engine.believed_table().unwrap().dest_count(), 0);
}

/// A memory backend the test can look into while the driver holds it.
#[derive(Clone, Default)]
struct Watched(std::rc::Rc<std::cell::RefCell<MemoryBackend>>);

impl IpvsBackend for Watched {
    fn snapshot(&mut self) -> Result<ipvs_sys::Snapshot, ipvs_sys::IpvsError> {
        self.0.borrow_mut().snapshot()
    }
    fn apply(&mut self, op: &lvs_hc_core::Op) -> Result<(), ipvs_sys::IpvsError> {
        self.0.borrow_mut().apply(op)
    }
    fn info(&mut self) -> Result<ipvs_sys::IpvsInfo, ipvs_sys::IpvsError> {
        self.0.borrow_mut().info()
    }
    fn apply_sync(&mut self, op: &lvs_hc_core::SyncOp) -> Result<(), ipvs_sys::IpvsError> {
        self.0.borrow_mut().apply_sync(op)
    }
    fn flush(&mut self) -> Result<(), ipvs_sys::IpvsError> {
        self.0.borrow_mut().flush()
    }
}

#[tokio::test]
async fn run_with_only_its_four_essentials_puts_an_answering_server_in_the_table() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = listener.local_addr().unwrap();
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"nat\"\n{TCP_EVERY_100MS}rise = 1\n\
         [[service.server]]\naddress = \"{live}\"\n[[service.server]]\naddress = \"{dead}\"\n"
    );
    let config = Config::from_toml(&text, "run-test").unwrap();
    let backend = Watched::default();
    let table = backend.0.clone();
    let engine = lvs_hc::driver::run(config, TokioConnect, backend, async {
        // The service and the answering server in the table; then a few more rounds, in which
        // the refusing server must stay out.
        eventually(|| {
            let t = table.borrow();
            t.log.len() >= 2 && t.state.table.dest_count() == 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    let table = table.borrow();
    let lines: Vec<String> = table.log.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "ipvsadm -A -t 10.0.0.1:80 -s wlc".to_string(),
            format!("ipvsadm -a -t 10.0.0.1:80 -r {live} -m -w 1"),
        ]
    );
    assert_eq!(engine.believed_table().unwrap(), &table.state.table);
}

/// Connects like [`TokioConnect`], but panics for one target: a bug in a probe.
#[derive(Clone)]
struct PanicFor(SocketAddr);

impl lvs_hc::probe::Connect for PanicFor {
    type Stream = tokio::net::TcpStream;
    type Datagram = tokio::net::UdpSocket;

    async fn connect(
        &self,
        target: SocketAddr,
        origin: lvs_hc::probe::Origin,
    ) -> std::io::Result<Self::Stream> {
        if target == self.0 {
            panic!("injected");
        }
        lvs_hc::probe::Connect::connect(&TokioConnect, target, origin).await
    }

    async fn open_datagram(
        &self,
        target: SocketAddr,
        origin: lvs_hc::probe::Origin,
    ) -> std::io::Result<Self::Datagram> {
        if target == self.0 {
            panic!("injected");
        }
        lvs_hc::probe::Connect::open_datagram(&TokioConnect, target, origin).await
    }
}

/// Counts finished probes per server.
struct Counted(std::rc::Rc<std::cell::RefCell<std::collections::HashMap<SocketAddr, usize>>>);

impl lvs_hc::driver::Observer for Counted {
    fn on_probe(&mut self, req: &ProbeRequest, _: &ProbeOutcome, _: Duration) {
        *self.0.borrow_mut().entry(req.server).or_default() += 1;
    }
}

#[tokio::test]
async fn a_probe_that_panics_frees_its_slot_and_gives_no_verdict() {
    // One probe at a time: a panicking probe that kept its slot would stop all probing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let healthy = listener.local_addr().unwrap();
    let buggy: SocketAddr = format!("127.0.0.2:{}", healthy.port()).parse().unwrap();
    let text = format!(
        "[daemon]\nprobe_concurrency = 1\n[[service]]\naddress = \"10.0.0.1:{port}\"\n\
         {TCP_EVERY_100MS}[[service.server]]\naddress = \"{buggy}\"\n[[service.server]]\naddress = \"{healthy}\"\n",
        port = healthy.port()
    );
    let config = Config::from_toml(&text, "panic-test").unwrap();
    let counts = std::rc::Rc::new(std::cell::RefCell::new(std::collections::HashMap::new()));
    let options = lvs_hc::driver::RunOptions {
        seed: Some(1),
        fd_budget: None,
        queries: None,
        admin: None,
        initial_admin: Vec::new(),
        reloads: None,
        probe_threads: 1,
        announce: None,
        observer: Counted(counts.clone()),
    };
    let probed = |server: &SocketAddr| counts.borrow().get(server).copied().unwrap_or(0);
    let engine = lvs_hc::driver::run_with(
        config,
        PanicFor(buggy),
        MemoryBackend::new(),
        async {
            eventually(|| probed(&healthy) >= 5 && probed(&buggy) >= 5).await;
        },
        options,
    )
    .await;
    drop(listener);
    let counts = counts.borrow();
    assert!(
        counts.get(&healthy).copied().unwrap_or(0) >= 5,
        "the healthy server was starved of probes: {counts:?}"
    );
    assert!(counts.get(&buggy).copied().unwrap_or(0) >= 5, "{counts:?}");
    let faults = engine.probe_faults();
    assert_eq!(faults.len(), 1, "{faults:?}");
    assert_eq!(faults[0].server, buggy);
    assert_eq!(faults[0].fault.reason, "the probe panicked: injected");
    assert_eq!(
        engine.believed_table().unwrap().dest_count(),
        1,
        "the healthy server is in, the buggy one neither added nor failed"
    );
}

#[tokio::test]
async fn probes_can_bind_a_source_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move { listener.accept().await.unwrap().1 });
    let out = probe(addr, "type = \"tcp\"\nsource = \"127.0.0.2\"").await;
    assert_eq!(out, ProbeOutcome::Pass { weight: None });
    assert_eq!(peer.await.unwrap().ip().to_string(), "127.0.0.2");
}

#[tokio::test]
async fn a_probe_ends_with_a_reset_not_a_half_close() {
    // Leaving no TIME_WAIT socket per probe and no FIN exchange is what keeps thousands of
    // probes a second cheap: after the answer, the server must see a reset, never end-of-file.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early");
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(OK.as_bytes()).await.unwrap();
        s.read(&mut buf).await
    });
    assert_eq!(
        probe(addr, "type = \"http\"\ntimeout = \"2s\"").await,
        ProbeOutcome::Pass { weight: None }
    );
    match seen.await.unwrap() {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("the server read {n} bytes (0 = an orderly close) instead of a reset"),
    }
}

/// What a keep-alive server answers and how it treats connections.
#[derive(Clone, Copy, PartialEq)]
enum KeepAlive {
    /// Answers every request on the connection, keeping it open.
    Keep,
    /// Answers, then closes the connection without saying so (no `Connection: close`): what a
    /// server ending an idle keep-alive connection looks like to the next request.
    CloseSilently,
    /// Answers with `Connection: close` and closes.
    SayClose,
    /// Answers the first request of a connection; closes it, unanswered, on the second: the
    /// race of a server ending an idle connection just as the next request goes out.
    CloseOnSecondRequest,
}

/// An HTTP/1.1 server that keeps connections (as `mode` says), answering `200 ok` or, while
/// `status` holds 503, `503 busy`. Counts connections and requests, keeps the request heads,
/// and stops when `kill` is set: listener and every connection closed, as when its process
/// dies.
struct KeepAliveServer {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    status: Arc<std::sync::atomic::AtomicU16>,
    kill: tokio::sync::watch::Sender<bool>,
}

impl KeepAliveServer {
    async fn start(mode: KeepAlive) -> KeepAliveServer {
        KeepAliveServer::start_with(mode, None).await
    }

    /// The same server speaking TLS with the certificate in tests/fixtures/tls.
    async fn start_tls(mode: KeepAlive) -> KeepAliveServer {
        KeepAliveServer::start_with(mode, Some(tls_acceptor(&[]))).await
    }

    async fn start_with(
        mode: KeepAlive,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> KeepAliveServer {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = KeepAliveServer {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            heads: Arc::default(),
            status: Arc::new(200.into()),
            kill: tokio::sync::watch::channel(false).0,
        };
        let (connections, heads, status) = (
            server.connections.clone(),
            server.heads.clone(),
            server.status.clone(),
        );
        let mut killed = server.kill.subscribe();
        tokio::spawn(async move {
            loop {
                let tcp = tokio::select! {
                    _ = killed.changed() => return,
                    a = listener.accept() => a.unwrap().0,
                };
                connections.fetch_add(1, SeqCst);
                let (heads, status, mut killed) = (heads.clone(), status.clone(), killed.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let mut s: Box<dyn Stream> = match tls {
                        None => Box::new(tcp),
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        },
                    };
                    let mut buf = [0u8; 1024];
                    let mut seen = Vec::new();
                    let mut answered = false;
                    loop {
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = seen.drain(..end + 4).collect();
                            heads
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&head).into());
                            if mode == KeepAlive::CloseOnSecondRequest && answered {
                                return;
                            }
                            answered = true;
                            let answer = match (status.load(SeqCst), mode) {
                                (503, _) => "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy",
                                (_, KeepAlive::SayClose) => {
                                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                                }
                                _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            };
                            let keeps =
                                matches!(mode, KeepAlive::Keep | KeepAlive::CloseOnSecondRequest);
                            let sent = s.write_all(answer.as_bytes()).await;
                            if sent.is_err() || s.flush().await.is_err() || !keeps {
                                return;
                            }
                        }
                        let n = tokio::select! {
                            _ = killed.changed() => return,
                            n = s.read(&mut buf) => n,
                        };
                        match n {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        server
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

const REUSE: &str = "type = \"http\"\nexpect_body = \"ok\"\nreuse_connection = true";

#[tokio::test]
async fn a_reused_connection_carries_every_probe_of_its_server() {
    let server = KeepAliveServer::start(KeepAlive::Keep).await;
    let prober = Prober::new(TokioConnect);
    let req = request_to(server.addr, REUSE);
    for _ in 0..5 {
        assert_eq!(
            prober.probe(&req).await,
            ProbeOutcome::Pass { weight: None }
        );
    }
    assert_eq!((server.connections(), server.requests()), (1, 5));
    let heads = server.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("connection: close")),
        "{heads:?}"
    );

    // Without reuse_connection: a fresh connection per probe, each saying so.
    let fresh = KeepAliveServer::start(KeepAlive::Keep).await;
    let req = request_to(fresh.addr, "type = \"http\"\nexpect_body = \"ok\"");
    for _ in 0..3 {
        assert_eq!(
            prober.probe(&req).await,
            ProbeOutcome::Pass { weight: None }
        );
    }
    assert_eq!((fresh.connections(), fresh.requests()), (3, 3));
    let heads = fresh.heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("connection: close")),
        "{heads:?}"
    );
}

#[tokio::test]
async fn a_server_ending_kept_connections_is_not_a_failure() {
    for mode in [
        KeepAlive::CloseSilently,
        KeepAlive::SayClose,
        KeepAlive::CloseOnSecondRequest,
    ] {
        let server = KeepAliveServer::start(mode).await;
        let prober = Prober::new(TokioConnect);
        let req = request_to(server.addr, REUSE);
        for _ in 0..4 {
            assert_eq!(
                prober.probe(&req).await,
                ProbeOutcome::Pass { weight: None }
            );
            // Give the server's close time to arrive, as between two real probes.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every probe needed its own connection, and none was counted against the server.
        let requests = match mode {
            KeepAlive::CloseOnSecondRequest => 7, // 3 of them unanswered on kept connections
            _ => 4,
        };
        assert_eq!((server.connections(), server.requests()), (4, requests));
    }
}

#[tokio::test]
async fn a_kept_connection_reports_what_the_server_answers_now() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = KeepAliveServer::start(KeepAlive::Keep).await;
    let prober = Prober::new(TokioConnect);
    let req = request_to(server.addr, REUSE);
    assert_eq!(
        prober.probe(&req).await,
        ProbeOutcome::Pass { weight: None }
    );
    server.status.store(503, SeqCst);
    assert_eq!(prober.probe(&req).await, fail("status 503 not in 200-299"));
    server.status.store(200, SeqCst);
    assert_eq!(
        prober.probe(&req).await,
        ProbeOutcome::Pass { weight: None }
    );
    assert_eq!((server.connections(), server.requests()), (1, 3));
}

#[tokio::test]
async fn a_killed_server_fails_even_with_a_kept_connection() {
    let server = KeepAliveServer::start(KeepAlive::Keep).await;
    let prober = Prober::new(TokioConnect);
    let req = request_to(server.addr, REUSE);
    assert_eq!(
        prober.probe(&req).await,
        ProbeOutcome::Pass { weight: None }
    );
    server.kill.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The kept connection is closed and nothing listens: the fresh connection decides.
    assert_eq!(prober.probe(&req).await, fail("connection refused"));
}

#[tokio::test]
async fn a_kept_connection_to_a_server_that_stops_answering_times_out() {
    // The server holds the connection open but never answers again: the probe fails at its
    // timeout, and the next one opens a fresh connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
            }
            held.push(s);
        }
    });
    let prober = Prober::new(TokioConnect);
    let req = request_to(addr, &format!("{REUSE}\ntimeout = \"200ms\""));
    assert_eq!(
        prober.probe(&req).await,
        ProbeOutcome::Pass { weight: None }
    );
    assert_eq!(prober.probe(&req).await, fail("timed out after 200ms"));
    assert_eq!(prober.probe(&req).await, fail("timed out after 200ms"));
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// Starts a probe of `server`, waits until the server has its request, then stalls the
/// runtime's thread for `stall` (lvs-hc starved of CPU) and returns the probe's verdict.
async fn probe_with_a_stall(server: &Threaded, toml: &str, stall: Duration) -> ProbeOutcome {
    let req = request_to(server.addr, toml);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let probe =
                tokio::task::spawn_local(
                    async move { Prober::new(TokioConnect).probe(&req).await },
                );
            assert!(
                eventually(|| server.requests() > 0).await,
                "the request never reached the server"
            );
            std::thread::sleep(stall);
            probe.await.unwrap()
        })
        .await
}

/// A server on its own thread, so that it answers while the runtime's thread is stalled.
struct Threaded {
    addr: SocketAddr,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl Threaded {
    /// Answers each request with `answer`, or holds the connection silently when it is `None`.
    fn start(answer: Option<&'static str>) -> Threaded {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Threaded {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
        };
        let requests = server.requests.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let mut s = stream.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Some(answer) = answer {
                    let _ = s.write_all(answer.as_bytes());
                }
                held.push(s);
            }
        });
        server
    }

    /// Requests read so far.
    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[tokio::test]
async fn an_answer_waiting_in_the_socket_when_the_timer_fires_counts() {
    // The answer arrives within milliseconds; lvs-hc only looks 1.5 s later, after its
    // 1 s timeout: the server answered in time, so the probe passes.
    let server = Threaded::start(Some(OK));
    let toml = "type = \"http\"\nexpect_body = \"server-1\"\ntimeout = \"1s\"";
    let out = probe_with_a_stall(&server, toml, Duration::from_millis(1500)).await;
    assert_eq!(out, ProbeOutcome::Pass { weight: None });
}

#[tokio::test]
async fn a_timer_that_fires_late_gives_no_verdict() {
    // No answer, and lvs-hc itself 700 ms late to notice the 300 ms timeout: the server did
    // not get a fair timeout, so the result counts neither way.
    let server = Threaded::start(None);
    let toml = "type = \"http\"\ntimeout = \"300ms\"";
    let out = probe_with_a_stall(&server, toml, Duration::from_secs(1)).await;
    match out {
        ProbeOutcome::Inconclusive { reason } => {
            assert!(reason.starts_with("lvs-hc ran "), "{reason}");
            assert!(reason.ends_with(" late: no verdict"), "{reason}");
        }
        other => panic!("expected no verdict, got {other:?}"),
    }
    // Without the stall, the same server fails at the timeout.
    let out = probe(server.addr, toml).await;
    assert_eq!(out, fail("timed out after 300ms"));
}

/// A server's connection, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

#[tokio::test]
async fn https_passes_and_reuses_its_tls_connection() {
    let server = KeepAliveServer::start_tls(KeepAlive::Keep).await;
    let addr = server.addr;
    let prober = Prober::new(TokioConnect);
    let fresh = request_to(
        addr,
        "type = \"https\"\nverify = false\nexpect_body = \"ok\"",
    );
    for _ in 0..2 {
        assert_eq!(
            prober.probe(&fresh).await,
            ProbeOutcome::Pass { weight: None }
        );
    }
    assert_eq!(server.connections(), 2);
    // With reuse_connection, one TLS handshake serves every probe.
    let kept = request_to(
        addr,
        "type = \"https\"\nverify = false\nexpect_body = \"ok\"\nreuse_connection = true",
    );
    for _ in 0..4 {
        assert_eq!(
            prober.probe(&kept).await,
            ProbeOutcome::Pass { weight: None }
        );
    }
    assert_eq!(server.connections(), 3);
    // Verification on: the certificate is self-signed and not trusted, so the check fails.
    let verified = request_to(addr, "type = \"https\"\nsni = \"localhost\"");
    match prober.probe(&verified).await {
        ProbeOutcome::Fail { reason } => {
            assert!(reason.starts_with("TLS handshake failed: "), "{reason}")
        }
        other => panic!("an untrusted certificate passed: {other:?}"),
    }
    // Trusted through ca_file, with the name it was issued for.
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/cert.pem");
    let trusted = request_to(
        addr,
        &format!("type = \"https\"\nsni = \"localhost\"\nca_file = \"{ca}\""),
    );
    assert_eq!(
        prober.probe(&trusted).await,
        ProbeOutcome::Pass { weight: None }
    );
}

/// A check of `toml` on `server` through the VIP `vip`, forwarded by direct routing when
/// their ports are the same, else by NAT.
fn via_request(vip: SocketAddr, server: SocketAddr, toml: &str) -> ProbeRequest {
    let forward = if vip.port() == server.port() {
        "dr"
    } else {
        "nat"
    };
    let text = format!(
        "[[service]]\naddress = \"{vip}\"\n[[service.check]]\n{toml}\nvia_vip = true\n\
         [[service.server]]\naddress = \"{server}\"\nforward = \"{forward}\"\n"
    );
    let cfg = Config::from_toml(&text, "via-test").unwrap_or_else(|e| panic!("{e}"));
    ProbeRequest {
        id: ProbeId(1),
        server,
        check: cfg.services[0].servers[0].checks[0].clone(),
    }
}

/// Whether this process may mark sockets (`SO_MARK` needs `CAP_NET_ADMIN`; root has it).
fn may_mark() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test]
async fn a_probe_through_the_vip_is_marked_and_leaves_from_the_director_s_own_address() {
    // On loopback: the "VIP" 127.0.0.3 listens; the server is 127.0.0.5, toward which this
    // machine's own address is 127.0.0.1.
    let vip_listener = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let vip = vip_listener.local_addr().unwrap();
    let server = SocketAddr::new([127, 0, 0, 5].into(), vip.port());
    let req = via_request(vip, server, "type = \"tcp\"");
    let mark = req.check.via.unwrap().mark;
    let origin = Origin::of(&req);
    let connected = TokioConnect.connect(vip, origin).await;
    let datagram = TokioConnect.open_datagram(vip, origin).await;
    if !may_mark() {
        // Without the capability the probe cannot be what it claims: no verdict, said why.
        for e in [connected.err().unwrap(), datagram.err().unwrap()] {
            let reason = lvs_hc::probe::director_fault(&e).expect("the director's fault");
            assert_eq!(
                reason,
                format!(
                    "cannot mark the probe's socket with {mark:#x} (SO_MARK needs \
                     CAP_NET_ADMIN): Operation not permitted (EPERM)"
                )
            );
        }
        return;
    }
    let stream = connected.unwrap();
    assert_eq!(socket_mark(&stream).unwrap(), mark);
    let (_, peer) = vip_listener.accept().await.unwrap();
    assert_eq!(peer.ip(), director_address(server.ip()).unwrap());
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    assert_eq!(socket_mark(&datagram.unwrap()).unwrap(), mark);
    // The same check without via_vip: no mark.
    let plain = TokioConnect.connect(vip, Origin::default()).await.unwrap();
    assert_eq!(socket_mark(&plain).unwrap(), 0);
}

#[tokio::test]
async fn a_director_whose_own_address_toward_the_server_is_the_vip_is_told_to_set_source() {
    // Toward 127.0.0.5 this machine's address is 127.0.0.1: here, the VIP itself.
    let vip: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let server: SocketAddr = "127.0.0.5:9".parse().unwrap();
    let out = Prober::new(TokioConnect)
        .probe(&via_request(vip, server, "type = \"tcp\""))
        .await;
    let ProbeOutcome::DirectorFault { reason } = &out else {
        panic!("{out:?}")
    };
    if may_mark() {
        assert_eq!(
            reason,
            "this director's address toward 127.0.0.5 is the VIP 127.0.0.1 itself, and the \
             server's replies to the VIP would stay on the server: set `source` on the check \
             to another address of this director"
        );
    } else {
        assert!(reason.contains("SO_MARK"), "{reason}");
    }
    // With a source, the operator's choice stands.
    let sourced = via_request(vip, server, "type = \"tcp\"\nsource = \"127.0.0.7\"");
    assert_eq!(
        Origin::of(&sourced).source,
        Some("127.0.0.7".parse().unwrap())
    );
}

#[tokio::test]
async fn exec_through_the_vip_is_given_the_vip_and_the_mark_and_keeps_the_server_s_address() {
    let vip: SocketAddr = "10.0.0.1:80".parse().unwrap();
    let server: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let script =
        "test $0:$1 = 127.0.0.1:8080 && test $2:$3 = 10.0.0.1:80 && test $4 = $LVS_HC_MARK \
                  && test $LVS_HC_IP:$LVS_HC_PORT = 127.0.0.1:8080 \
                  && test $LVS_HC_VIP:$LVS_HC_VIP_PORT = 10.0.0.1:80";
    let toml = format!(
        "type = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{script}\", \"{{ip}}\", \"{{port}}\", \
         \"{{vip}}\", \"{{vip_port}}\", \"{{mark}}\"]"
    );
    let req = via_request(vip, server, &toml);
    let mark = req.check.via.unwrap().mark;
    let places = lvs_hc::probe::exec::Placeholders::of(&req);
    assert_eq!(places.mark, mark.to_string());
    assert_eq!(
        Prober::new(TokioConnect).probe(&req).await,
        ProbeOutcome::Pass { weight: None }
    );
    // A program that fails through the VIP is not run again on the server's own address
    // (it would have no VIP and no mark there): its own failure stands.
    let failing = via_request(vip, server, "type = \"exec\"\ncommand = [\"/bin/false\"]");
    let out = Prober::new(TokioConnect).probe(&failing).await;
    let ProbeOutcome::Fail { reason } = &out else {
        panic!("{out:?}")
    };
    assert!(
        !reason.contains("own address"),
        "no comparison with the server's own address: {reason}"
    );
    // Without via_vip, the three are empty.
    let script =
        "test -z \\\"$0$1$2\\\" && test -z \\\"$LVS_HC_VIP$LVS_HC_VIP_PORT$LVS_HC_MARK\\\"";
    let toml = format!(
        "type = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"{script}\", \"{{vip}}\", \
         \"{{vip_port}}\", \"{{mark}}\"]"
    );
    assert_eq!(
        probe(server, &toml).await,
        ProbeOutcome::Pass { weight: None }
    );
}
