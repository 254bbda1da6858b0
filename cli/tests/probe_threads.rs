//! `probe_threads`: probes spread over threads of their own while the engine stays on the
//! driver's thread. Each server's probes always run on the same thread, so a kept connection
//! (`reuse_connection`) is reused there; results reach the engine as with one thread.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipvs_sys::memory::MemoryBackend;
use lvs_hc::driver::{run_with, Observer, RunOptions};
use lvs_hc::probe::{Connect, TokioConnect};
use lvs_hc_core::{Config, Health, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Connects like [`TokioConnect`] and notes which thread opened each connection.
#[derive(Clone, Default)]
struct NotingThreads(Arc<Mutex<Vec<(SocketAddr, String)>>>);

impl Connect for NotingThreads {
    type Stream = tokio::net::TcpStream;
    type Datagram = tokio::net::UdpSocket;

    async fn connect(
        &self,
        target: SocketAddr,
        origin: lvs_hc::probe::Origin,
    ) -> std::io::Result<Self::Stream> {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        self.0.lock().unwrap().push((target, thread));
        TokioConnect.connect(target, origin).await
    }

    async fn open_datagram(
        &self,
        target: SocketAddr,
        origin: lvs_hc::probe::Origin,
    ) -> std::io::Result<Self::Datagram> {
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        self.0.lock().unwrap().push((target, thread));
        TokioConnect.open_datagram(target, origin).await
    }
}

/// A keep-alive HTTP server answering 200 to every request; counts the connections it accepts.
async fn server(accepted: Arc<Mutex<HashMap<SocketAddr, usize>>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            *accepted.lock().unwrap().entry(addr).or_default() += 1;
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// Passes per server, as the driver's observer sees them (on the driver's thread).
#[derive(Clone, Default)]
struct Passes(
    std::rc::Rc<std::cell::RefCell<HashMap<SocketAddr, usize>>>,
    String,
);

impl Observer for Passes {
    fn on_probe(&mut self, req: &ProbeRequest, outcome: &ProbeOutcome, _took: Duration) {
        let here = std::thread::current().name().unwrap_or("?").to_string();
        assert_eq!(
            here, self.1,
            "results reach the engine on the driver's thread"
        );
        if matches!(outcome, ProbeOutcome::Pass { .. }) {
            *self.0.borrow_mut().entry(req.target()).or_default() += 1;
        }
    }
}

/// The driver's options for `config`: its probe threads, a fixed seed, `passes` watching.
fn options(config: &Config, passes: Passes) -> RunOptions<Passes> {
    RunOptions {
        seed: Some(1),
        fd_budget: None,
        reloads: None,
        queries: None,
        admin: None,
        initial_admin: Vec::new(),
        probe_threads: config.daemon.probe_threads,
        announce: None,
        observer: passes,
    }
}

#[tokio::test]
async fn probes_run_on_their_threads_each_server_on_one_with_its_kept_connection() {
    let accepted = Arc::new(Mutex::new(HashMap::new()));
    let mut servers = Vec::new();
    for _ in 0..24 {
        servers.push(server(accepted.clone()).await);
    }
    // The servers answer on their own runtime thread; the driver runs on this test's thread.
    let mut text = "[daemon]\nprobe_threads = 3\n[[service]]\naddress = \"10.0.0.1:80\"\n\
                    forward = \"nat\"\n[[service.check]]\ntype = \"http\"\ninterval = \"100ms\"\n\
                    timeout = \"2s\"\nallow_long_timeout = true\nreuse_connection = true\n\
                    rise = 1\n"
        .to_string();
    for s in &servers {
        text.push_str(&format!("[[service.server]]\naddress = \"{s}\"\n"));
    }
    let config = Config::from_toml(&text, "probe-threads-test").unwrap();
    assert_eq!(config.daemon.probe_threads, 3);
    let connect = NotingThreads::default();
    let driver_thread = std::thread::current().name().unwrap_or("?").to_string();
    let passes = Passes(Default::default(), driver_thread.clone());
    let seen = passes.0.clone();
    let want = servers.clone();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !want
            .iter()
            .all(|s| seen.borrow().get(s).copied().unwrap_or(0) >= 5)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not every server passed 5 probes in 30 s: {:?}",
                seen.borrow()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let options = options(&config, passes);
    let engine = run_with(config, connect.clone(), MemoryBackend::new(), stop, options).await;

    let statuses = engine.status();
    assert_eq!(statuses.len(), servers.len());
    assert!(
        statuses.iter().all(|s| s.health == Health::Up),
        "{statuses:?}"
    );
    assert_eq!(engine.believed_table().unwrap().dest_count(), servers.len());

    let connects = connect.0.lock().unwrap().clone();
    let threads: HashSet<&str> = connects.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        threads.iter().all(|t| t.starts_with("lvs-hc-probe-")),
        "probes ran on {threads:?}, the driver's thread is {driver_thread}"
    );
    // 24 servers over 3 threads: all on one would be a broken shard (a chance of 3 in 3^24).
    assert!(threads.len() >= 2, "every probe ran on {threads:?}");
    let mut thread_of: HashMap<SocketAddr, &str> = HashMap::new();
    for (target, thread) in &connects {
        let first = *thread_of.entry(*target).or_insert(thread);
        assert_eq!(first, thread, "{target} was probed from two threads");
    }
    // Each server's connection was kept and reused by its thread: one connection each for 5 or
    // more probes.
    let accepted = accepted.lock().unwrap();
    for s in &servers {
        assert_eq!(accepted.get(s), Some(&1), "connections accepted by {s}");
    }
}

/// Exec checks run on probe threads too: each program's exit decides, whichever runtime
/// started it and reaps it.
#[tokio::test]
async fn exec_checks_on_probe_threads_pass_and_fail_by_their_exit() {
    let mut text = "[daemon]\nprobe_threads = 2\n".to_string();
    for (vip, program) in [("10.0.0.1:80", "/bin/true"), ("10.0.0.2:80", "/bin/false")] {
        text.push_str(&format!(
            "[[service]]\naddress = \"{vip}\"\nforward = \"nat\"\n[[service.check]]\n\
             type = \"exec\"\ncommand = [\"{program}\"]\ninterval = \"100ms\"\ntimeout = \"5s\"\n\
             allow_long_timeout = true\nrise = 1\nfall = 1\n"
        ));
        for last in 1..=4 {
            text.push_str(&format!(
                "[[service.server]]\naddress = \"192.0.2.{last}:80\"\n"
            ));
        }
    }
    let config = Config::from_toml(&text, "exec-threads-test").unwrap();
    let passes = Passes(
        Default::default(),
        std::thread::current().name().unwrap_or("?").to_string(),
    );
    let seen = passes.0.clone();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while seen.borrow().values().sum::<usize>() < 12 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "too few passes in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Long enough for every /bin/false server's verdict too.
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let options = options(&config, passes);
    let engine = run_with(config, TokioConnect, MemoryBackend::new(), stop, options).await;
    let health: Vec<(String, Health, String)> = engine
        .status()
        .into_iter()
        .map(|s| (s.service.to_string(), s.health, s.reason))
        .collect();
    for (service, health, reason) in &health {
        if service.contains("10.0.0.1") {
            assert_eq!(*health, Health::Up, "{health:?}: {reason}");
        } else {
            assert_eq!(*health, Health::Down, "{health:?}: {reason}");
            assert!(reason.contains("exit status 1"), "{reason}");
        }
    }
    assert_eq!(health.len(), 8);
}
