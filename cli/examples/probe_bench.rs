//! Probe cost at scale, with real sockets on loopback (figures in docs/BENCHMARKS.md).
//!
//!   probe_bench serve PORT                  answer HTTP on every 127.0.0.0/8 address
//!   probe_bench run PORT SERVERS SECONDS [BASE] [--reuse-connection]
//!                                           run the real driver against SERVERS servers
//!   probe_bench floor PORT SERVERS SECONDS  the same traffic from bare sockets: no hyper,
//!                                           no driver, no engine
//!
//! `run` checks BASE+1.. (default 127.1.0.1..) up to SERVERS addresses with an HTTP check every
//! second (with `reuse_connection = true` when asked), against the in-memory IPVS table, for
//! SECONDS seconds; then prints probes by result, CPU time per probe, peak RSS, and how many
//! servers were ever declared down. `floor` opens a connection, sends the request, reads the
//! answer's head and resets, SERVERS times a second, evenly spread: what a fresh connection per
//! probe costs at the least. Run `serve` in another process first (`tests/bench/probe-cost`
//! does all of it, and the overload variant). The server keeps connections open unless the
//! request says `Connection: close`.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipvs_sys::memory::MemoryBackend;
use lvs_hc::driver::{run_with, Observer, RunOptions};
use lvs_hc::probe::TokioConnect;
use lvs_hc_core::{Config, Event, EventKind, Health, ProbeOutcome, ProbeRequest, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    let all: Vec<String> = std::env::args().collect();
    let reuse = all.iter().any(|a| a == "--reuse-connection");
    let threads = all
        .iter()
        .find_map(|a| a.strip_prefix("--probe-threads="))
        .map_or(1, |n| n.parse().expect("--probe-threads=N"));
    let args: Vec<String> = all.into_iter().filter(|a| !a.starts_with("--")).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("serve") => rt.block_on(serve(args[2].parse().expect("port"))),
        Some("run") => rt.block_on(bench(
            args[2].parse().expect("port"),
            args[3].parse().expect("servers"),
            args[4].parse().expect("seconds"),
            args.get(5)
                .map_or(Ipv4Addr::new(127, 1, 0, 0), |a| a.parse().expect("base")),
            reuse,
            threads,
        )),
        Some("floor") => rt.block_on(floor(
            args[2].parse().expect("port"),
            args[3].parse().expect("servers"),
            args[4].parse().expect("seconds"),
        )),
        _ => eprintln!(
            "usage: probe_bench serve PORT | run PORT SERVERS SECONDS [BASE] [--reuse-connection] \
             [--probe-threads=N] \
             | floor PORT SERVERS SECONDS"
        ),
    }
}

async fn serve(port: u16) {
    // Bound to every address of the host so that all of 127.0.0.0/8 reaches it; only loopback
    // addresses are ever probed.
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .expect("bind");
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut seen = Vec::new();
            loop {
                while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = seen.drain(..end + 4).collect();
                    let close = String::from_utf8_lossy(&head)
                        .to_ascii_lowercase()
                        .contains("connection: close");
                    let answer: &[u8] = if close {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    };
                    if stream.write_all(answer).await.is_err() || close {
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
}

/// The address of server `i`: `base` plus `i + 1` (127.1.0.1 and up by default).
fn addr(base: Ipv4Addr, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base) + i + 1)
}

#[derive(Default)]
struct Counts {
    pass: u64,
    fail: u64,
    inconclusive: u64,
    director_faults: u64,
    down: u64,
    max_backlog: usize,
    reasons: std::collections::BTreeMap<String, u64>,
}

impl Observer for Counts {
    fn on_probe(&mut self, _req: &ProbeRequest, outcome: &ProbeOutcome, _took: Duration) {
        match (outcome.verdict(), outcome) {
            (Some(Verdict::Pass), _) => self.pass += 1,
            (Some(Verdict::Fail(reason)), _) => {
                self.fail += 1;
                *self.reasons.entry(reason.to_string()).or_default() += 1;
            }
            (None, ProbeOutcome::DirectorFault { reason }) => {
                self.director_faults += 1;
                *self.reasons.entry(reason.clone()).or_default() += 1;
            }
            (None, _) => self.inconclusive += 1,
        }
    }
    fn on_event(&mut self, event: &Event) {
        if let EventKind::ServerHealth {
            to: Health::Down, ..
        } = event.kind
        {
            self.down += 1;
        }
    }
    fn on_backlog(&mut self, waiting: usize) {
        self.max_backlog = self.max_backlog.max(waiting);
    }
}

/// User time, system time and peak RSS (KiB) of this process so far.
fn rusage() -> (Duration, Duration, u64) {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime), u.ru_maxrss as u64)
}

async fn bench(
    port: u16,
    servers: u32,
    seconds: u64,
    base: Ipv4Addr,
    reuse: bool,
    probe_threads: usize,
) {
    let mut text = String::new();
    let per_service = 100;
    for s in 0..servers.div_ceil(per_service) {
        let _ = write!(
            text,
            "[[service]]\naddress = \"10.0.{}.{}:{port}\"\n[[service.check]]\ntype = \"http\"\ninterval = \"1s\"\ntimeout = \"1s\"\nreuse_connection = {reuse}\n",
            s / 250,
            s % 250 + 1
        );
        for i in s * per_service..((s + 1) * per_service).min(servers) {
            let _ = write!(
                text,
                "[[service.server]]\naddress = \"{}:{port}\"\n",
                addr(base, i)
            );
        }
    }
    let config = Config::from_toml(&text, "bench").expect("config");
    let (user0, sys0, _) = rusage();
    let stop = tokio::time::sleep(Duration::from_secs(seconds));
    let mut counts = Counts::default();
    let observer = CountsRef(&mut counts);
    let options = RunOptions {
        seed: Some(1),
        fd_budget: None,
        queries: None,
        admin: None,
        initial_admin: Vec::new(),
        reloads: None,
        probe_threads,
        announce: None,
        observer,
    };
    let engine = run_with(config, TokioConnect, MemoryBackend::new(), stop, options).await;
    let (user1, sys1, maxrss_kib) = rusage();
    let (user, sys) = (user1 - user0, sys1 - sys0);
    let cpu = user + sys;
    let probes = counts.pass + counts.fail + counts.inconclusive + counts.director_faults;
    let up = engine
        .status()
        .iter()
        .filter(|s| s.health == Health::Up)
        .count();
    println!("servers                {servers}");
    println!("seconds                {seconds}");
    println!("reuse_connection       {reuse}");
    println!(
        "probes                 {probes} ({} pass, {} fail, {} inconclusive, {} director faults)",
        counts.pass, counts.fail, counts.inconclusive, counts.director_faults
    );
    println!(
        "probes per second      {:.0}",
        probes as f64 / seconds as f64
    );
    println!(
        "cpu time               {:.2}s ({:.1}% of one core)",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / seconds as f64
    );
    let per_probe = |d: Duration| d.as_secs_f64() * 1e6 / probes.max(1) as f64;
    println!(
        "cpu per probe          {:.1} us ({:.1} us user, {:.1} us system)",
        per_probe(cpu),
        per_probe(user),
        per_probe(sys)
    );
    println!(
        "peak rss               {:.1} MiB",
        maxrss_kib as f64 / 1024.0
    );
    println!("largest probe backlog  {}", counts.max_backlog);
    println!("servers declared down  {}", counts.down);
    println!("servers up at the end  {up} of {servers}");
    for (reason, n) in &counts.reasons {
        println!("  failure: {reason} x{n}");
    }
}

struct CountsRef<'a>(&'a mut Counts);

impl Observer for CountsRef<'_> {
    fn on_probe(&mut self, req: &ProbeRequest, outcome: &ProbeOutcome, took: Duration) {
        self.0.on_probe(req, outcome, took)
    }
    fn on_event(&mut self, event: &Event) {
        self.0.on_event(event)
    }
    fn on_backlog(&mut self, waiting: usize) {
        self.0.on_backlog(waiting)
    }
}

/// Bare sockets: connect, request, read the answer's head, reset; `servers` times a second,
/// evenly spread, for `seconds`.
async fn floor(port: u16, servers: u32, seconds: u64) {
    async fn once(target: SocketAddr) -> bool {
        let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
            return false;
        };
        #[allow(deprecated)]
        let _ = socket.set_linger(Some(Duration::ZERO));
        let Ok(mut s) = socket.connect(target).await else {
            return false;
        };
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if s.write_all(request).await.is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        let mut n = 0;
        while n < buf.len() {
            match s.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
            if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
        }
        false
    }
    let base = Ipv4Addr::new(127, 1, 0, 0);
    let ok = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let total = u64::from(servers) * seconds;
    let (user0, sys0, _) = rusage();
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / servers.max(1));
            for i in 0..total {
                tick.tick().await;
                let target = SocketAddr::from((addr(base, (i % u64::from(servers)) as u32), port));
                let ok = ok.clone();
                tokio::task::spawn_local(async move {
                    if once(target).await {
                        ok.set(ok.get() + 1);
                    }
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await;
    let (user1, sys1, maxrss_kib) = rusage();
    let (user, sys) = (user1 - user0, sys1 - sys0);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / total.max(1) as f64;
    println!("servers                {servers}");
    println!("seconds                {seconds}");
    println!("exchanges              {total} ({} answered)", ok.get());
    println!(
        "cpu time               {:.2}s ({:.1}% of one core)",
        (user + sys).as_secs_f64(),
        100.0 * (user + sys).as_secs_f64() / seconds as f64
    );
    println!(
        "cpu per exchange       {:.1} us ({:.1} us user, {:.1} us system)",
        per(user + sys),
        per(user),
        per(sys)
    );
    println!(
        "peak rss               {:.1} MiB",
        maxrss_kib as f64 / 1024.0
    );
}
