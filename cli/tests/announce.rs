//! `[announce]` through the driver: routes follow the services' readiness, a stalled engine
//! loses them to the watchdog (a std thread) and gets them back when it runs again, and every
//! way out of the driver (shutdown, a panic) withdraws them.

use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::route::MemoryRoutes;
use lvs_hc::announce::{Announcer, Watchdog};
use lvs_hc::driver::{run_with, Query, RunOptions};
use lvs_hc::probe::TokioConnect;
use lvs_hc_core::announce::Route;
use lvs_hc_core::Config;
use tokio::sync::{mpsc, oneshot};

/// One service whose server has no checks (up at once, nothing probed); the engine stalls
/// after 1s of silence.
const CONFIG: &str = r#"
[announce]
table = 100
stall_timeout = "1s"

[[service]]
address = "10.0.0.1:80"

[[service.server]]
address = "10.0.1.1:80"
"#;

fn ours() -> Route {
    Route {
        vip: "10.0.0.1".parse().unwrap(),
        table: 100,
        protocol: 99,
    }
}

/// A driver on a thread of its own (a current-thread runtime, as the daemon's), with a
/// watchdog; returns the channels to stop it and to ask it things.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    queries: mpsc::UnboundedSender<Query>,
    done: std_mpsc::Receiver<thread::Result<()>>,
}

fn start(kernel: &MemoryRoutes) -> Running {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (query_tx, query_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = std_mpsc::channel();
    let config = Config::from_toml(CONFIG, "announce.toml").unwrap();
    let watchdog = Watchdog::new(Box::new(kernel.clone()), config.announce)
        .spawn()
        .unwrap();
    let routes = kernel.clone();
    thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let options = RunOptions {
                seed: Some(1),
                fd_budget: None,
                reloads: None,
                queries: Some(query_rx),
                admin: None,
                initial_admin: Vec::new(),
                probe_threads: 1,
                announce: Some(Announcer {
                    routes: Box::new(routes),
                    watchdog: Some(watchdog),
                }),
                observer: (),
            };
            let shutdown = async {
                let _ = stop_rx.await;
            };
            rt.block_on(run_with(
                config,
                TokioConnect,
                MemoryBackend::new(),
                shutdown,
                options,
            ));
        }));
        let _ = done_tx.send(result);
    });
    Running {
        stop: Some(stop_tx),
        queries: query_tx,
        done: done_rx,
    }
}

fn wait_for(what: &str, within: Duration, cond: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

#[test]
fn a_stalled_engine_loses_its_route_and_gets_it_back_when_it_runs() {
    let kernel = MemoryRoutes::new();
    let mut d = start(&kernel);
    wait_for("announced", Duration::from_secs(2), || {
        kernel.all().contains(&ours())
    });
    // Block the driver's only thread for 2.5s: the engine is silent.
    let stalled_at = Instant::now();
    d.queries
        .send(Box::new(|_| thread::sleep(Duration::from_millis(2500))))
        .unwrap();
    let gone = wait_for("withdrawn by the watchdog", Duration::from_secs(3), || {
        kernel.all().is_empty()
    });
    // The last beat may be up to one beat period (250ms) before the stall began.
    assert!(
        gone >= Duration::from_millis(750),
        "not before stall_timeout: {gone:?}"
    );
    // The driver runs again: announced again (ready as before).
    wait_for("announced again", Duration::from_secs(3), || {
        kernel.all().contains(&ours())
    });
    assert!(stalled_at.elapsed() >= Duration::from_millis(2500));
    let (tx, rx) = std_mpsc::channel();
    d.queries
        .send(Box::new(move |engine| {
            let _ = tx.send((engine.announce_status(), engine.announce_stalled()));
        }))
        .unwrap();
    let (status, stalled) = rx.recv_timeout(Duration::from_secs(2)).unwrap();
    assert!(!stalled);
    assert!(status[0].announced, "{status:?}");
    // Shutdown withdraws.
    d.stop.take().unwrap().send(()).unwrap();
    d.done
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert!(kernel.all().is_empty(), "{:?}", kernel.all());
}

#[test]
fn a_panic_through_the_driver_withdraws_the_routes() {
    let kernel = MemoryRoutes::new();
    let other = Route {
        protocol: 4,
        vip: "10.0.0.9".parse().unwrap(),
        table: 100,
    };
    kernel.insert(other);
    let d = start(&kernel);
    wait_for("announced", Duration::from_secs(2), || {
        kernel.all().contains(&ours())
    });
    d.queries
        .send(Box::new(|_| panic!("a bug in a status page")))
        .unwrap();
    let result = d.done.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(result.is_err(), "the driver panicked");
    assert_eq!(
        kernel.all().into_iter().collect::<Vec<_>>(),
        [other],
        "ours went, the static route stayed"
    );
}
