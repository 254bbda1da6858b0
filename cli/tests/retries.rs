//! A failed IPVS operation is retried by the driver on the configured backoff, and the backend
//! is asked for nothing else: no flush, no other operation, one re-read of the table after each
//! failure. A mock says this where a fake cannot (a fake answers whatever it is asked); the
//! strict in-memory fake stays the better tool for what the table ends up as.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipvs_sys::{IpvsBackend, IpvsError, IpvsInfo, Snapshot};
use lvs_hc::driver::{run_with, RunOptions};
use lvs_hc::probe::TokioConnect;
use lvs_hc_core::{parse_save, Config, Op, SyncOp};

mockall::mock! {
    Backend {}
    impl IpvsBackend for Backend {
        fn snapshot(&mut self) -> Result<Snapshot, IpvsError>;
        fn apply(&mut self, op: &Op) -> Result<(), IpvsError>;
        fn info(&mut self) -> Result<IpvsInfo, IpvsError>;
        fn flush(&mut self) -> Result<(), IpvsError>;
        fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError>;
    }
}

/// One service, one server without checks (so it is up at once and nothing is probed), and
/// a backoff of 250ms doubling up to 1s. No resync within the run but after failures.
const CONFIG: &str = r#"
[daemon]
resync_interval = "1m"
retry_backoff = "250ms"
retry_backoff_max = "1s"

[[service]]
address = "10.0.0.1:80"
forward = "nat"

[[service.server]]
address = "10.0.1.1:80"
"#;

/// The kernel holds the service without its server.
const TABLE: &str = "-A -t 10.0.0.1:80 -s wlc\n";
const ADD: &str = "ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1";

/// The backend's calls, with when they happened (ms since the start).
type Calls = Arc<Mutex<Vec<(u128, String)>>>;

#[tokio::test(start_paused = true)]
async fn a_failed_add_is_retried_on_the_backoff_and_nothing_else_is_called() {
    let start = tokio::time::Instant::now();
    let calls: Calls = Arc::default();
    let since = move || start.elapsed().as_millis();
    let mut backend = MockBackend::new();

    let log = calls.clone();
    backend.expect_snapshot().returning(move || {
        log.lock().unwrap().push((since(), "snapshot".into()));
        Ok(Snapshot {
            table: parse_save(TABLE).unwrap(),
            ..Snapshot::default()
        })
    });
    let log = calls.clone();
    let mut failures_left = 4;
    backend
        .expect_apply()
        .withf(|op| op.to_string() == ADD)
        .returning(move |op| {
            log.lock().unwrap().push((since(), op.to_string()));
            if failures_left == 0 {
                return Ok(());
            }
            failures_left -= 1;
            Err(IpvsError::Kernel {
                errno: 12,
                message: "Cannot allocate memory".into(),
            })
        });
    backend.expect_flush().never();
    backend.expect_info().never();

    let config = Config::from_toml(CONFIG, "retries.toml").unwrap();
    let options = RunOptions {
        seed: Some(1),
        fd_budget: None,
        reloads: None,
        queries: None,
        admin: None,
        initial_admin: Vec::new(),
        probe_threads: 1,
        announce: None,
        observer: (),
    };
    let shutdown = tokio::time::sleep(Duration::from_secs(10));
    run_with(config, TokioConnect, &mut backend, shutdown, options).await;
    backend.checkpoint();

    let calls = calls.lock().unwrap().clone();
    let expected: Vec<(u128, String)> = [
        (0, "snapshot"),
        (0, ADD),
        // Each failure: the table is read again at once, the operation waits its backoff.
        (0, "snapshot"),
        (250, ADD),
        (250, "snapshot"),
        (750, ADD),
        (750, "snapshot"),
        (1750, ADD),
        (1750, "snapshot"),
        // The fourth wait is capped at retry_backoff_max (1s, not 2s); then it succeeds, and
        // nothing more is asked before the resync interval.
        (2750, ADD),
    ]
    .into_iter()
    .map(|(t, what)| (t, what.to_string()))
    .collect();
    assert_eq!(calls, expected);
}
