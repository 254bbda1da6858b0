//! `lvs-hc run`: the daemon around the driver — lock file, signals, reloads, logs, the HTTP
//! API, systemd notification, and cleanup on exit.

mod api;
mod dryrun;
mod lock;
mod log;
mod metrics;
mod notify;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::IpvsBackend;
use lvs_hc_core::config::ApiListen;
use lvs_hc_core::{Config, Engine, Op};
use tokio::sync::{mpsc, oneshot};

use crate::cli::{BackendKind, RunArgs, RunBackend};
use crate::driver::{self, Query, RunOptions};
use crate::probe::TokioConnect;

pub use dryrun::DryRun;
pub use lock::{default_lock_path, LockFile};
pub use metrics::Metrics;

/// What the daemon's parts share: the HTTP API reads it, the observer and reloads write it.
#[derive(Debug)]
pub struct Shared {
    /// The configuration file.
    pub config_path: PathBuf,
    /// Whether operations are only logged.
    pub dry_run: bool,
    /// Which backend.
    pub backend: &'static str,
    /// When the daemon started.
    pub started: SystemTime,
    /// `[daemon] api` of the configuration in force (changes need a restart).
    pub api: ApiListen,
    /// `[daemon] lock_file` of the configuration in force (changes need a restart).
    pub lock_file: Option<PathBuf>,
    /// The resync interval in force (for `/healthz`).
    pub resync_interval: Duration,
    /// The error of the last reload, if it failed; cleared by a good one.
    pub config_error: Option<String>,
    /// When the configuration in force was loaded.
    pub config_loaded: SystemTime,
    /// When a table snapshot last succeeded.
    pub last_snapshot_ok: Option<std::time::Instant>,
    /// The error of the last snapshot, if it failed.
    pub last_snapshot_error: Option<String>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}

/// A handle on the running driver for the API and the watchdog: ask the engine a question,
/// hand it a new configuration.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Mutex<Shared>>,
    queries: mpsc::UnboundedSender<Query>,
    reloads: mpsc::UnboundedSender<Config>,
    notifier: Arc<notify::Notifier>,
}

/// How long the main loop may take to answer before `/healthz` calls it stuck.
const LOOP_ANSWER_DEADLINE: Duration = Duration::from_secs(2);

impl Handle {
    /// Runs `f` on the engine between two rounds of the main loop; `None` if the loop does not
    /// answer within [`LOOP_ANSWER_DEADLINE`].
    pub async fn ask<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let query: Query = Box::new(move |engine| {
            let _ = tx.send(f(engine));
        });
        self.queries.send(query).ok()?;
        tokio::time::timeout(LOOP_ANSWER_DEADLINE, rx)
            .await
            .ok()?
            .ok()
    }

    /// The shared state, locked.
    pub fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rereads the configuration file. A good one goes to the engine (which keeps the health
    /// of unchanged servers); a bad one is logged and recorded, and the running one stays.
    pub fn reload(&self, why: &str) -> Result<String, String> {
        let path = self.shared().config_path.clone();
        self.notifier.send("RELOADING=1");
        let result = match crate::load_config(&path) {
            Ok(config) => {
                let summary = summary(&config);
                let mut shared = self.shared();
                if shared.api != config.daemon.api || shared.lock_file != config.daemon.lock_file {
                    tracing::warn!(
                        "[daemon] api and lock_file take effect at the next start, not on reload"
                    );
                }
                shared.api = config.daemon.api.clone();
                shared.lock_file = config.daemon.lock_file.clone();
                shared.resync_interval = config.daemon.resync_interval;
                shared.config_error = None;
                shared.config_loaded = SystemTime::now();
                shared.metrics.reloads_ok += 1;
                drop(shared);
                if self.reloads.send(config).is_err() {
                    Err("lvs-hc is stopping".to_string())
                } else {
                    tracing::info!(
                        config = %path.display(),
                        "configuration reread ({why}): {summary}"
                    );
                    Ok(format!("{} accepted: {summary}", path.display()))
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                let mut shared = self.shared();
                shared.config_error = Some(text.clone());
                shared.metrics.reloads_failed += 1;
                drop(shared);
                tracing::error!(
                    config = %path.display(),
                    "configuration reload ({why}) failed; the running configuration stays in \
                     force: {text}"
                );
                Err(text)
            }
        };
        self.notifier.send("READY=1");
        result
    }
}

/// `2 services, 5 servers, 1 fallback`.
fn summary(config: &Config) -> String {
    let servers: usize = config.services.iter().map(|s| s.servers.len()).sum();
    let fallbacks: usize = config.services.iter().map(|s| s.fallbacks.len()).sum();
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "{}, {}, {}",
        plural(config.services.len(), "service"),
        plural(servers, "server"),
        plural(fallbacks, "fallback")
    )
}

/// The exit status of `lvs-hc run` when the configuration cannot be read or is invalid at
/// start (`EX_CONFIG` of sysexits.h). Restarting cannot fix it, so the systemd unit names it in
/// `RestartPreventExitStatus=`; every other failure exits with 1 and is restarted.
pub const EX_CONFIG: u8 = 78;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    log::init(args.log_format, &args.log_level)?;
    let config = match crate::load_config(&args.config) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(
                config = %args.config.display(),
                "not starting: {:#}",
                anyhow::Error::from(e)
            );
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let lock_path = match (&args.lock_file, &config.daemon.lock_file) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => default_lock_path(&args.config),
    };
    let api = match &args.api {
        Some(text) => ApiListen::parse(text).map_err(|e| anyhow::anyhow!("--api: {e}"))?,
        None => config.daemon.api.clone(),
    };
    let _lock = LockFile::acquire(&lock_path)?;

    let backend: Box<dyn IpvsBackend> = match args.backend {
        RunBackend::Netlink => open_netlink()?,
        RunBackend::Ipvsadm => crate::table::open_backend(BackendKind::Ipvsadm)?,
        RunBackend::Memory => Box::new(MemoryBackend::new()),
    };
    let backend: Box<dyn IpvsBackend> = if args.dry_run {
        Box::new(DryRun::new(backend))
    } else {
        backend
    };
    let backend_name = match args.backend {
        RunBackend::Netlink => "netlink",
        RunBackend::Ipvsadm => "ipvsadm",
        RunBackend::Memory => "memory",
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let shared = Arc::new(Mutex::new(Shared {
        config_path: args.config.clone(),
        dry_run: args.dry_run,
        backend: backend_name,
        started: SystemTime::now(),
        api: config.daemon.api.clone(),
        lock_file: config.daemon.lock_file.clone(),
        resync_interval: config.daemon.resync_interval,
        config_error: None,
        config_loaded: SystemTime::now(),
        last_snapshot_ok: None,
        last_snapshot_error: None,
        metrics: Metrics::default(),
    }));
    let result = runtime.block_on(serve(config, backend, shared, api, &args));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The netlink backend; like ipvsadm, loads ip_vs first if the kernel does not have it yet.
fn open_netlink() -> anyhow::Result<Box<dyn IpvsBackend>> {
    match crate::table::open_backend(BackendKind::Netlink) {
        Err(ipvs_sys::IpvsError::NotAvailable) => {
            tracing::info!("IPVS is not loaded; running `modprobe ip_vs`");
            match std::process::Command::new("modprobe").arg("ip_vs").status() {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!("`modprobe ip_vs` failed ({s})"),
                Err(e) => tracing::warn!("cannot run modprobe: {e}"),
            }
            crate::table::open_backend(BackendKind::Netlink)
                .context("opening the IPVS netlink interface")
        }
        other => other.context("opening the IPVS netlink interface"),
    }
}

async fn serve(
    config: Config,
    mut backend: Box<dyn IpvsBackend>,
    shared: Arc<Mutex<Shared>>,
    api: ApiListen,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).context("installing signal handlers")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing signal handlers")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing signal handlers")?;

    let notifier = Arc::new(notify::Notifier::from_env());
    let (query_tx, query_rx) = mpsc::unbounded_channel();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let handle = Handle {
        shared: shared.clone(),
        queries: query_tx,
        reloads: reload_tx,
        notifier: notifier.clone(),
    };

    let _api_guard = match &api {
        ApiListen::Off => None,
        listen => Some(api::start(listen, handle.clone()).await?),
    };
    if let Some(interval) = notifier.watchdog_interval() {
        tokio::spawn(watchdog(handle.clone(), interval));
    }
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            while sighup.recv().await.is_some() {
                let _ = handle.reload("SIGHUP");
            }
        });
    }

    tracing::info!(
        config = %args.config.display(),
        backend = shared.lock().map(|s| s.backend).unwrap_or("?"),
        dry_run = args.dry_run,
        api = %api,
        version = env!("CARGO_PKG_VERSION"),
        "lvs-hc starting: {}{}",
        summary(&config),
        if args.dry_run { " (dry run: no change will be applied)" } else { "" }
    );
    let shutdown = async {
        let name = tokio::select! {
            _ = sigterm.recv() => "SIGTERM",
            _ = sigint.recv() => "SIGINT",
        };
        tracing::info!("{name} received, stopping");
    };
    let observer = log::DaemonObserver::new(shared.clone(), notifier.clone(), args.dry_run);
    let options = RunOptions {
        seed: None,
        reloads: Some(reload_rx),
        queries: Some(query_rx),
        observer,
    };
    let engine = driver::run_with(config, TokioConnect, &mut backend, shutdown, options).await;
    notifier.send("STOPPING=1");
    if args.cleanup_on_exit {
        cleanup(&engine, &mut backend, args.dry_run).await;
    } else {
        tracing::info!(
            "the IPVS table is left as it is (--cleanup-on-exit removes lvs-hc's services)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Deletes the services lvs-hc manages, retrying each a few times.
async fn cleanup(engine: &Engine, backend: &mut Box<dyn IpvsBackend>, dry_run: bool) {
    let keys = engine.config().service_keys();
    for attempt in 1..=5u32 {
        let snap = match backend.snapshot() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cleanup: reading the table failed ({e}), attempt {attempt}");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                continue;
            }
        };
        let ops: Vec<Op> = keys
            .iter()
            .filter(|k| snap.table.services.contains_key(k))
            .map(|&key| Op::DelService { key })
            .collect();
        if ops.is_empty() {
            tracing::info!("cleanup: lvs-hc's services are gone from the table");
            return;
        }
        if dry_run {
            for op in &ops {
                tracing::info!("dry run: would apply `{op}` (cleanup on exit)");
            }
            return;
        }
        let mut failed = 0;
        for (op, result) in ops.iter().zip(backend.apply_batch(&ops)) {
            match result {
                Ok(()) => tracing::info!("applied `{op}`: cleanup on exit"),
                Err(e) => {
                    failed += 1;
                    tracing::warn!("cleanup: `{op}` failed ({e}), attempt {attempt}");
                }
            }
        }
        if failed == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    tracing::error!("cleanup: some services could not be deleted; the table may still hold them");
}

/// Tells systemd's watchdog we are alive, as long as the main loop answers and the table was
/// read recently enough.
async fn watchdog(handle: Handle, interval: Duration) {
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        match health(&handle).await {
            Ok(()) => handle.notifier.send("WATCHDOG=1"),
            Err(reason) => tracing::warn!("not telling the watchdog we are alive: {reason}"),
        }
    }
}

/// lvs-hc's own health: the main loop answers, and a table snapshot succeeded recently.
pub async fn health(handle: &Handle) -> Result<(), String> {
    if handle.ask(|_| ()).await.is_none() {
        return Err(format!(
            "the main loop did not answer within {}s",
            LOOP_ANSWER_DEADLINE.as_secs()
        ));
    }
    let shared = handle.shared();
    let allowed = (shared.resync_interval * 3).max(Duration::from_secs(10));
    let since = match shared.last_snapshot_ok {
        Some(t) => t.elapsed(),
        None => {
            let up = shared.started.elapsed().unwrap_or_default();
            if up < allowed {
                return Ok(());
            }
            up
        }
    };
    if since > allowed {
        let why = shared
            .last_snapshot_error
            .clone()
            .unwrap_or_else(|| "no snapshot attempted".to_string());
        return Err(format!(
            "no good read of the IPVS table for {:.0}s (allowed {}s): {why}",
            since.as_secs_f64(),
            allowed.as_secs()
        ));
    }
    Ok(())
}

/// The API address a client should use: `--api`, else the configuration's `[daemon] api`.
pub fn api_of(config_path: &Path) -> anyhow::Result<ApiListen> {
    Ok(crate::load_config(config_path)?.daemon.api)
}
