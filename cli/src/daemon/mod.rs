//! `lvs-hc run`: the daemon around the driver — lock file, signals, reloads, logs, the HTTP
//! API and control socket, systemd notification, and cleanup on exit.
//!
//! Threads: the driver (engine, probes, kernel table) runs on the main thread; the API and the
//! control socket on one of their own ([`api`]), which reaches the engine only through a copy
//! taken at most once a second ([`view`]) and small questions ([`Handle::ask`]); reloads read
//! and parse the file on a blocking-pool thread, and only the parsed configuration reaches
//! the engine's loop.

pub mod admin;
pub mod api;
mod arpwatch;
mod dryrun;
mod lock;
mod log;
mod maintenance;
mod metrics;
mod notify;
mod observer;
pub mod view;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::{IpvsBackend, IpvsError};
use lvs_hc_core::admin::AdminChange;
use lvs_hc_core::config::ApiListen;
use lvs_hc_core::{Config, Engine, Input};
use tokio::sync::{mpsc, oneshot};

use crate::cli::{BackendKind, RunArgs, RunBackend};
use crate::driver::{self, Query, RunOptions};
use crate::limits::FdBudget;
use crate::probe::{TokioConnect, ViaGate};

pub use api::ApiError;
pub use dryrun::DryRun;
pub use lock::{default_lock_path, LockError, LockFile};
pub use metrics::Metrics;
use view::{EngineView, VIEW_MAX_AGE};

/// Why `lvs-hc run` could not start or had to stop. A configuration that cannot be read or is
/// invalid at start is no error: it is logged, and `run` exits with [`EX_CONFIG`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// `RUST_LOG` or `--log-level` is not a log filter: give a level (`info`, `debug`) or
    /// tracing's directives.
    #[error("{setting}: {error}")]
    LogFilter {
        /// `RUST_LOG=...` or `--log-level ...`.
        setting: String,
        /// What is wrong with it.
        error: tracing_subscriber::filter::ParseError,
    },
    /// Logging could not be set up (something set up another logger first).
    #[error("setting up logging: {0}")]
    Logging(Box<dyn std::error::Error + Send + Sync>),
    /// A command-line option's value cannot be used: its message says what is allowed.
    #[error("{option}: {message}")]
    BadOption {
        /// `--api` or `--control`.
        option: &'static str,
        /// What is wrong with the value.
        message: String,
    },
    /// The lock that keeps a second instance away could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The kernel's IPVS netlink interface could not be opened (even after `modprobe ip_vs`):
    /// the message says why.
    #[error("opening the IPVS netlink interface")]
    Netlink(#[source] IpvsError),
    /// `[announce]` is set and lvs-hc cannot reach the kernel's routes (rtnetlink) or start
    /// its watchdog thread: the message says which.
    #[error("[announce]: {0}")]
    Announce(String),
    /// The async runtime could not start: the machine is out of threads, memory or
    /// descriptors.
    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),
    /// The handlers of SIGTERM, SIGINT and SIGHUP could not be installed.
    #[error("installing signal handlers")]
    Signals(#[source] io::Error),
    /// The API or the control socket could not be set up.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The exit status of `lvs-hc run` when the state file of administrative states cannot be
/// read or understood: as for a bad configuration, restarting cannot fix it.
const EX_STATE: u8 = EX_CONFIG;

/// What the daemon's parts share: the HTTP API reads it, the observer and reloads write it.
#[derive(Debug)]
pub struct DaemonState {
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
    /// `[daemon] probe_threads` the daemon started with (changes need a restart).
    pub probe_threads: usize,
    /// `[daemon] state_dir` and `maintenance_dir` the daemon started with (changes need a
    /// restart).
    pub admin_dirs: (PathBuf, Option<PathBuf>),
    /// The control socket in use, if any.
    pub control_socket: Option<PathBuf>,
    /// The soft `RLIMIT_NOFILE` in force.
    pub fd_limit: Option<u64>,
    /// The resync interval in force (for `/healthz`).
    pub resync_interval: Duration,
    /// The error of the last reload, if it failed; cleared by a good one.
    pub config_error: Option<String>,
    /// When the configuration in force was loaded.
    pub config_loaded: SystemTime,
    /// How many configurations have been handed to the engine since start, counted once
    /// each is on its way (the engine takes it before any later question): what the
    /// maintenance directory's watcher resolved against.
    pub config_generation: u64,
    /// When a table snapshot last succeeded.
    pub last_snapshot_ok: Option<std::time::Instant>,
    /// The error of the last snapshot, if it failed.
    pub last_snapshot_error: Option<String>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Machines other than this director answering ARP for its VIPs, as the ARP watch last
    /// saw them.
    pub arp_conflicts: Vec<arpwatch::Conflict>,
    /// The route watchdog (`[announce]`), for `lvs_hc_announce_stalled`.
    pub announce_watchdog: Option<Arc<crate::announce::Watchdog>>,
}

/// A handle on the running driver for the API and the watchdog: ask the engine a question,
/// hand it a new configuration.
#[derive(Clone)]
pub struct Handle {
    state: Arc<Mutex<DaemonState>>,
    queries: mpsc::UnboundedSender<Query>,
    reloads: mpsc::UnboundedSender<Config>,
    notifier: Arc<notify::Notifier>,
    /// The latest copy of the engine for the API; refreshed at most every [`VIEW_MAX_AGE`].
    view: Arc<tokio::sync::Mutex<Option<Arc<EngineView>>>>,
    /// One reload at a time, whoever asks.
    reload_lock: Arc<Mutex<()>>,
    /// The operators' administrative states: the state file and the way to the engine.
    admin: Arc<AdminKeeper>,
}

/// The operators' marks as the state file holds them; its lock lets one administrative
/// command (or reload) at a time change them.
pub struct AdminKeeper {
    file: admin::StateFile,
    book: tokio::sync::Mutex<admin::AdminBook>,
    changes: mpsc::UnboundedSender<AdminChange>,
}

/// Why an administrative command was refused: an HTTP status and the message for the operator.
#[derive(Debug)]
pub struct AdminRefusal {
    /// 422: the command names nothing (or not one thing); 500: the state file could not be
    /// written; 503: the daemon did not answer or is stopping.
    pub status: u16,
    /// What and where.
    pub message: String,
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

    /// A copy of the engine no older than [`VIEW_MAX_AGE`]; `None` if the main loop does not
    /// answer. However many ask at once, the engine is asked at most once per period.
    pub async fn view(&self) -> Option<Arc<EngineView>> {
        let mut cached = self.view.lock().await;
        if let Some(v) = cached.as_ref().filter(|v| v.taken.elapsed() < VIEW_MAX_AGE) {
            return Some(v.clone());
        }
        let fresh = Arc::new(self.ask(EngineView::capture).await?);
        self.state().metrics.api_views += 1;
        *cached = Some(fresh.clone());
        Some(fresh)
    }

    /// The daemon's state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, DaemonState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Handle::reload`] on a blocking-pool thread, so neither the engine's loop nor the API's
    /// waits for the file to be read and parsed.
    pub async fn reload_off_loop(&self, why: String) -> Result<String, String> {
        let handle = self.clone();
        tokio::task::spawn_blocking(move || handle.reload(&why))
            .await
            .unwrap_or_else(|e| Err(format!("the reload failed: {e}")))
    }

    /// Rereads the configuration file. A good one goes to the engine (which keeps the health
    /// of unchanged servers); a bad one is logged and recorded, and the running one stays.
    /// Blocks while it reads and parses: call it off the engine's loop.
    pub fn reload(&self, why: &str) -> Result<String, String> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.state().config_path.clone();
        self.notifier.send("RELOADING=1");
        let result = match crate::load_config(&path) {
            Ok(config) => {
                let summary = summary(&config);
                let mut state = self.state();
                if state.api != config.daemon.api || state.lock_file != config.daemon.lock_file {
                    tracing::warn!(
                        "[daemon] api, control and lock_file take effect at the next start, not \
                         on reload"
                    );
                }
                let dirs = (
                    config.daemon.state_dir.clone(),
                    config.daemon.maintenance_dir.clone(),
                );
                if state.admin_dirs != dirs {
                    tracing::warn!(
                        "[daemon] state_dir and maintenance_dir take effect at the next start, \
                         not on reload"
                    );
                }
                if state.probe_threads != config.daemon.probe_threads {
                    tracing::warn!(
                        "[daemon] probe_threads = {} takes effect at the next start; {} \
                         thread(s) keep running probes",
                        config.daemon.probe_threads,
                        state.probe_threads
                    );
                }
                state.api = config.daemon.api.clone();
                state.lock_file = config.daemon.lock_file.clone();
                state.resync_interval = config.daemon.resync_interval;
                state.config_error = None;
                state.config_loaded = SystemTime::now();
                state.metrics.reloads_ok += 1;
                drop(state);
                // Marks of servers the new configuration lacks are forgotten (the engine says
                // so too); the lock keeps administrative commands out until the engine has
                // the new configuration.
                let mut book = self.admin.book.blocking_lock();
                let dropped = book.prune(&config);
                if !dropped.is_empty() {
                    tracing::warn!(
                        file = %self.admin.file.path.display(),
                        "administrative states forgotten, their servers left the \
                         configuration: {}",
                        dropped.join("; ")
                    );
                    if let Err(e) = self.admin.file.write(&book) {
                        tracing::error!(
                            "{}; the next start drops these marks again",
                            crate::Chain(&e)
                        );
                    }
                }
                if self.reloads.send(config).is_err() {
                    Err("lvs-hc is stopping".to_string())
                } else {
                    self.state().config_generation += 1;
                    tracing::info!(
                        config = %path.display(),
                        "configuration reread ({why}): {summary}"
                    );
                    Ok(format!("{} accepted: {summary}", path.display()))
                }
            }
            Err(e) => {
                let text = format!("{e:#}");
                let mut state = self.state();
                state.config_error = Some(text.clone());
                state.metrics.reloads_failed += 1;
                drop(state);
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

    /// `lvs-hc server drain|disable|enable`: resolves the servers on the engine's
    /// configuration, writes the state file, and only then hands the changes to the engine;
    /// answers with what holds for each server afterwards. One at a time. `who` names the
    /// client, for the log.
    pub async fn admin_command(
        &self,
        request: admin::AdminRequest,
        who: &str,
    ) -> Result<String, AdminRefusal> {
        let command = admin::command_name(request.state);
        let result = self.admin_command_inner(&request, who).await;
        let ok = result.is_ok();
        self.state().metrics.admin_command(command, ok);
        if let Err(refusal) = &result {
            tracing::warn!("server {command} ({who}) refused: {}", refusal.message);
        }
        result
    }

    async fn admin_command_inner(
        &self,
        request: &admin::AdminRequest,
        who: &str,
    ) -> Result<String, AdminRefusal> {
        let stuck = || AdminRefusal {
            status: 503,
            message: "the daemon's main loop did not answer in time; nothing changed".into(),
        };
        let mut book = self.admin.book.lock().await;
        let selector = request.selector.clone();
        let servers = self
            .ask(move |engine| admin::resolve(engine.config(), &selector))
            .await
            .ok_or_else(stuck)?
            .map_err(|e| AdminRefusal {
                status: 422,
                message: format!("{e}; nothing changed"),
            })?;
        let mut next = book.clone();
        let set_at_unix = admin::unix_now();
        for (s, _) in &servers {
            next.set(
                s.service,
                s.server,
                admin::KeptMark {
                    state: request.state,
                    reason: request.reason.clone(),
                    drain_timeout: request.timeout,
                    set_at_unix,
                },
            );
        }
        if next != *book {
            let file = self.admin.file.clone();
            let written = {
                let next = next.clone();
                tokio::task::spawn_blocking(move || file.write(&next)).await
            };
            match written {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(AdminRefusal {
                        status: 500,
                        message: format!(
                            "{}; nothing changed (check [daemon] state_dir)",
                            crate::Chain(&e)
                        ),
                    })
                }
                Err(e) => {
                    return Err(AdminRefusal {
                        status: 500,
                        message: format!("writing the state file failed: {e}; nothing changed"),
                    })
                }
            }
        }
        *book = next;
        for (s, label) in &servers {
            let change = AdminChange {
                service: s.service,
                server: s.server,
                source: lvs_hc_core::admin::AdminSource::Operator,
                state: request.state,
                reason: request.reason.clone(),
                drain_timeout: request.timeout,
            };
            if self.admin.changes.send(change).is_err() {
                return Err(AdminRefusal {
                    status: 503,
                    message: "lvs-hc is stopping; the state file has the change, which the \
                              next start applies"
                        .into(),
                });
            }
            let reason = if request.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", request.reason)
            };
            tracing::info!(
                command = admin::command_name(request.state),
                server = %s.server,
                service = %s.service,
                "server {} ({who}): {} in {label}{reason}",
                admin::command_name(request.state),
                s.server
            );
        }
        drop(book);
        // Asked after the changes were sent: the loop takes changes before questions.
        let answer = self
            .ask(move |engine| admin::describe(&engine.status(), &servers))
            .await;
        Ok(answer.unwrap_or_else(|| {
            "done; the daemon's main loop did not answer in time to say what holds now\n"
                .to_string()
        }))
    }
}

/// `2 services, 5 servers, 1 fallback`.
fn summary(config: &Config) -> String {
    let servers: usize = config.services.iter().map(|s| s.servers.len()).sum();
    let fallbacks: usize = config.services.iter().map(|s| s.fallbacks.len()).sum();
    use lvs_hc_core::text::plural;
    format!(
        "{}, {}, {}",
        plural(config.services.len(), "service", "services"),
        plural(servers, "server", "servers"),
        plural(fallbacks, "fallback", "fallbacks")
    )
}

/// The exit status of `lvs-hc run` when the configuration cannot be read or is invalid at
/// start (`EX_CONFIG` of sysexits.h). Restarting cannot fix it, so the systemd unit names it in
/// `RestartPreventExitStatus=`; every other failure exits with 1 and is restarted.
pub const EX_CONFIG: u8 = 78;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn main(args: RunArgs) -> Result<ExitCode, DaemonError> {
    log::init(args.log_format, &args.log_level)?;
    let config = match crate::load_config(&args.config) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(
                config = %args.config.display(),
                "not starting: {}",
                crate::Chain(&e)
            );
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    let lock_path = match (&args.lock_file, &config.daemon.lock_file) {
        (Some(p), _) | (None, Some(p)) => p.clone(),
        (None, None) => default_lock_path(&args.config),
    };
    let api = match &args.api {
        Some(text) => ApiListen::parse(text).map_err(|message| DaemonError::BadOption {
            option: "--api",
            message,
        })?,
        None => config.daemon.api.clone(),
    };
    let control = match &args.control {
        Some(text) => lvs_hc_core::config::ControlListen::parse(text).map_err(|message| {
            DaemonError::BadOption {
                option: "--control",
                message,
            }
        })?,
        None => config.daemon.control.clone(),
    };
    let control_path = control.path(&lock_path);
    // What lvs-hc creates (the lock, sockets before their mode is set) is its own alone.
    // SAFETY: umask(2) only sets the process's file mode mask.
    unsafe {
        libc::umask(0o077);
    }
    let _lock = LockFile::acquire(&lock_path)?;
    // The operators' marks, before anything reaches the table: a server disabled before a
    // restart is never put back in between.
    let mut state_file = admin::StateFile::of(&config, &args.config);
    state_file.read_only = args.dry_run;
    let book = match state_file.load(&config) {
        Ok((book, dropped)) => {
            if !dropped.is_empty() {
                tracing::warn!(
                    file = %state_file.path.display(),
                    "administrative states forgotten, their servers are not in the \
                     configuration: {}",
                    dropped.join("; ")
                );
                if let Err(e) = state_file.write(&book) {
                    tracing::warn!("{}", crate::Chain(&e));
                }
            }
            book
        }
        Err(e) => {
            tracing::error!(
                file = %state_file.path.display(),
                "not starting: {}",
                crate::Chain(&e)
            );
            return Ok(ExitCode::from(EX_STATE));
        }
    };
    let fd_limit = match crate::limits::raise_nofile_limit() {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!("cannot read RLIMIT_NOFILE ({e}); probe_concurrency is not checked");
            None
        }
    };
    if let Err(e) = crate::probe::exec::become_subreaper() {
        tracing::warn!(
            "cannot become the subreaper of exec checks' descendants ({e}): what they start \
             outside their process group may outlive them"
        );
    }

    let backend: Box<dyn IpvsBackend> = match args.backend {
        RunBackend::Netlink => open_netlink()?,
        RunBackend::Ipvsadm => Box::new(IpvsadmBackend::default()),
        RunBackend::Memory => Box::new(MemoryBackend::new()),
    };
    let backend: Box<dyn IpvsBackend> = if args.dry_run {
        Box::new(DryRun::new(backend))
    } else {
        backend
    };
    let announcer = open_announcer(args.backend, args.dry_run, &config)?;
    let backend_name = match args.backend {
        RunBackend::Netlink => "netlink",
        RunBackend::Ipvsadm => "ipvsadm",
        RunBackend::Memory => "memory",
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let state = Arc::new(Mutex::new(DaemonState {
        config_path: args.config.clone(),
        dry_run: args.dry_run,
        backend: backend_name,
        started: SystemTime::now(),
        api: config.daemon.api.clone(),
        lock_file: config.daemon.lock_file.clone(),
        probe_threads: config.daemon.probe_threads,
        admin_dirs: (
            config.daemon.state_dir.clone(),
            config.daemon.maintenance_dir.clone(),
        ),
        control_socket: control_path.clone(),
        fd_limit,
        resync_interval: config.daemon.resync_interval,
        config_error: None,
        config_loaded: SystemTime::now(),
        config_generation: 0,
        last_snapshot_ok: None,
        last_snapshot_error: None,
        metrics: Metrics::default(),
        arp_conflicts: Vec::new(),
        announce_watchdog: announcer.as_ref().and_then(|a| a.watchdog.clone()),
    }));
    let endpoints = Endpoints {
        api,
        control: control_path,
    };
    let kept = Kept {
        file: state_file,
        book,
    };
    let result = runtime.block_on(serve(
        config, backend, announcer, state, endpoints, kept, &args,
    ));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The operators' marks read at start, and their file.
struct Kept {
    file: admin::StateFile,
    book: admin::AdminBook,
}

/// Where the daemon listens.
struct Endpoints {
    /// The read-only API.
    api: ApiListen,
    /// The control socket's path, if on.
    control: Option<PathBuf>,
}

/// The netlink backend; like ipvsadm, loads ip_vs first if the kernel does not have it yet.
fn open_netlink() -> Result<Box<dyn IpvsBackend>, DaemonError> {
    match crate::table::open_backend(BackendKind::Netlink) {
        Err(ipvs_sys::IpvsError::NotAvailable) => {
            tracing::info!("IPVS is not loaded; running `modprobe ip_vs`");
            match std::process::Command::new("modprobe").arg("ip_vs").status() {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!("`modprobe ip_vs` failed ({s})"),
                Err(e) => tracing::warn!("cannot run modprobe: {e}"),
            }
            crate::table::open_backend(BackendKind::Netlink).map_err(DaemonError::Netlink)
        }
        other => other.map_err(DaemonError::Netlink),
    }
}

async fn serve(
    config: Config,
    mut backend: Box<dyn IpvsBackend>,
    announcer: Option<crate::announce::Announcer>,
    state: Arc<Mutex<DaemonState>>,
    endpoints: Endpoints,
    kept: Kept,
    args: &RunArgs,
) -> Result<ExitCode, DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;

    let notifier = Arc::new(notify::Notifier::from_env());
    let (query_tx, query_rx) = mpsc::unbounded_channel();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let (admin_tx, admin_rx) = mpsc::unbounded_channel();
    let mut initial_admin = kept.book.changes();
    if !initial_admin.is_empty() {
        tracing::info!(
            file = %kept.file.path.display(),
            "{} administrative state(s) kept from before: {}",
            initial_admin.len(),
            initial_admin
                .iter()
                .map(|c| format!("{} {} in {}", c.state, c.server, c.service))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let admin = Arc::new(AdminKeeper {
        file: kept.file,
        book: tokio::sync::Mutex::new(kept.book),
        changes: admin_tx.clone(),
    });
    let handle = Handle {
        state: state.clone(),
        queries: query_tx,
        reloads: reload_tx,
        notifier: notifier.clone(),
        view: Arc::default(),
        reload_lock: Arc::default(),
        admin,
    };

    let mut listeners = Vec::new();
    if let Some(endpoint) = api::bind_api(&endpoints.api)? {
        listeners.push(endpoint);
    }
    if let Some(path) = &endpoints.control {
        let d = &config.daemon;
        listeners.push(api::bind_control(
            path,
            d.control_mode,
            d.control_group.as_deref(),
        )?);
    }
    let _api_thread = api::spawn(listeners, handle.clone())?;
    if let Some(interval) = notifier.watchdog_interval() {
        tokio::spawn(watchdog(handle.clone(), interval));
    }
    {
        let handle = handle.clone();
        tokio::spawn(async move {
            while sighup.recv().await.is_some() {
                let _ = handle.reload_off_loop("SIGHUP".into()).await;
            }
        });
    }
    tokio::spawn(sweep_orphans());
    // Read-only (it sends ARP requests): it runs in dry runs and with every backend too.
    tokio::spawn(arpwatch::watch(handle.clone()));
    if let Some(dir) = &config.daemon.maintenance_dir {
        // Read once before the engine starts, so that a server in maintenance is never added.
        let mut watcher = maintenance::Watcher::new(dir.clone());
        initial_admin.extend(maintenance::initial(&mut watcher, &config));
        tracing::info!(
            "maintenance_dir {}: a file named ADDR, ADDR:PORT or SERVICE@ADDR[:PORT] disables \
             its servers while it exists (drains them with `drain` as its first word)",
            dir.display()
        );
        tokio::spawn(maintenance::watch(watcher, handle.clone(), admin_tx));
    }

    tracing::info!(
        config = %args.config.display(),
        backend = state.lock().map(|s| s.backend).unwrap_or("?"),
        dry_run = args.dry_run,
        api = %endpoints.api,
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
    let observer = observer::DaemonObserver::new(state.clone(), notifier.clone(), args.dry_run);
    let fd_budget = state
        .lock()
        .ok()
        .and_then(|s| s.fd_limit)
        .map(|limit| FdBudget { limit });
    let options = RunOptions {
        seed: None,
        fd_budget,
        reloads: Some(reload_rx),
        queries: Some(query_rx),
        admin: Some(admin_rx),
        initial_admin,
        probe_threads: config.daemon.probe_threads,
        announce: announcer,
        observer,
    };
    // Probes through the VIP need lvs-hc's probe services in the kernel, which a dry run
    // and the memory backend never write.
    let connect = ViaGate {
        inner: TokioConnect,
        blocked: match (args.dry_run, args.backend) {
            (true, _) => Some(
                "a dry run does not put lvs-hc's probe services in the kernel, so probes \
                 through the VIP (via_vip) cannot run: no verdict",
            ),
            (false, RunBackend::Memory) => Some(
                "the memory backend puts no probe services in the kernel, so probes through \
                 the VIP (via_vip) cannot run: no verdict",
            ),
            (false, _) => None,
        },
    };
    let engine = driver::run_with(config, connect, &mut backend, shutdown, options).await;
    notifier.send("STOPPING=1");
    if args.cleanup_on_exit {
        cleanup(engine, &mut backend, args.dry_run).await;
    } else {
        tracing::info!(
            "the IPVS table is left as it is (--cleanup-on-exit removes lvs-hc's services)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The routes `[announce]` keeps, and their watchdog: over rtnetlink, or in memory with the
/// memory backend or a dry run (which must not change the kernel). Without `[announce]` a
/// failure to open them is no error (a reload that adds it will say, in status, that route
/// operations fail).
fn open_announcer(
    backend: RunBackend,
    dry_run: bool,
    config: &Config,
) -> Result<Option<crate::announce::Announcer>, DaemonError> {
    use crate::announce::{Announcer, Watchdog};
    use ipvs_sys::route::{MemoryRoutes, NetlinkRoutes, RouteBackend};
    /// The driver's adapter and the watchdog's (each its own socket).
    type Pair = (Box<dyn RouteBackend>, Box<dyn RouteBackend>);
    let open = || -> Result<Pair, String> {
        if dry_run || backend == RunBackend::Memory {
            let m = MemoryRoutes::new();
            return Ok((Box::new(m.clone()), Box::new(m)));
        }
        let a = NetlinkRoutes::connect().map_err(|e| e.to_string())?;
        let b = NetlinkRoutes::connect().map_err(|e| e.to_string())?;
        Ok((Box::new(a), Box::new(b)))
    };
    let (routes, dog_routes) = match open() {
        Ok(r) => r,
        Err(e) if config.announce.is_some() => return Err(DaemonError::Announce(e)),
        Err(e) => {
            tracing::debug!("no route adapter ({e}); [announce] is not set");
            return Ok(None);
        }
    };
    let watchdog = Watchdog::new(dog_routes, config.announce)
        .spawn()
        .map_err(|e| DaemonError::Announce(format!("starting the watchdog thread: {e}")))?;
    Ok(Some(Announcer {
        routes,
        watchdog: Some(watchdog),
    }))
}

/// Withdraws the services lvs-hc manages ([`Input::Withdraw`]): the engine reads the table,
/// deletes each managed service and retries failures with its backoff, as while running,
/// until they are gone or 5 seconds have passed. In a dry run the operations are logged, not
/// applied.
async fn cleanup(mut engine: Engine, backend: &mut Box<dyn IpvsBackend>, dry_run: bool) {
    /// How long cleanup on exit may take (systemd waits 90s before it kills).
    const CLEANUP_DEADLINE: Duration = Duration::from_secs(5);
    /// Logs what the engine does while it withdraws.
    struct CleanupLog {
        dry_run: bool,
    }
    impl driver::Observer for CleanupLog {
        fn on_event(&mut self, event: &lvs_hc_core::Event) {
            use lvs_hc_core::EventKind;
            match &event.kind {
                EventKind::Applied { op, reason } if self.dry_run => {
                    tracing::info!("dry run: would apply `{op}`: {reason}")
                }
                EventKind::ApplyFailed { .. } | EventKind::SnapshotFailed { .. } => {
                    tracing::warn!("cleanup: {}", event.kind)
                }
                EventKind::Applied { .. } => tracing::info!("{}", event.kind),
                _ => tracing::debug!("cleanup: {}", event.kind),
            }
        }
    }
    // The engine's clock goes on from where the run left it.
    let origin = tokio::time::Instant::now();
    let start = engine.now();
    let now = move || start + origin.elapsed();
    engine.handle_input(Input::Withdraw { now: now() });
    let mut log = CleanupLog { dry_run };
    let mut no_probes = std::collections::VecDeque::new();
    loop {
        let deadline =
            driver::answer_outputs(&mut engine, backend, None, &mut no_probes, &now, &mut log);
        if engine.withdrawn() && dry_run {
            tracing::info!("cleanup (dry run): the table is left as it is");
            return;
        }
        if engine.withdrawn() {
            tracing::info!("cleanup: lvs-hc's services are gone from the table");
            return;
        }
        let wait = deadline.saturating_since(now());
        if origin.elapsed() + wait >= CLEANUP_DEADLINE {
            tracing::error!(
                "cleanup: some services could not be deleted within {}s; the table may still \
                 hold them",
                CLEANUP_DEADLINE.as_secs()
            );
            return;
        }
        tokio::time::sleep(wait).await;
        engine.handle_input(Input::Timeout(now()));
    }
}

/// Ends, every second, what exec checks left behind outside their process groups (see
/// [`crate::probe::exec`]), once any exec check has run.
async fn sweep_orphans() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if crate::probe::exec::programs_started() == 0 {
            continue;
        }
        match crate::probe::exec::sweep_orphans() {
            Ok(killed) if !killed.is_empty() => tracing::warn!(
                pids = ?killed,
                "killed {} process(es) that exec checks left running outside their process \
                 group: {killed:?}",
                killed.len()
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!("cannot look for processes left by exec checks: {e}"),
        }
    }
}

/// Tells systemd's watchdog we are alive, as long as the main loop answers and the table was
/// read recently enough (not for probes that cannot run: a restart would not help them, and
/// `/healthz` reports those).
async fn watchdog(handle: Handle, interval: Duration) {
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        match liveness(&handle).await {
            Ok(()) => handle.notifier.send("WATCHDOG=1"),
            Err(reason) => tracing::warn!("not telling the watchdog we are alive: {reason}"),
        }
    }
}

/// lvs-hc's own health, for `/healthz`: [`liveness`], and every probe can run (none is
/// blocked by a fault of this director: no descriptors, no memory, no source address...).
pub async fn health(handle: &Handle) -> Result<(), String> {
    liveness(handle).await?;
    let (count, oldest) = handle
        .ask(|engine| engine.probe_fault_summary())
        .await
        .ok_or_else(|| "the main loop did not answer in time".to_string())?;
    match oldest {
        Some(f) if count > 0 => Err(format!(
            "{count} probe{} cannot run because of this director, so {} no verdict: {} \
             (the oldest: {} {}, for {})",
            if count == 1 { "" } else { "s" },
            if count == 1 { "it gives" } else { "they give" },
            f.fault.reason,
            f.server,
            f.check,
            lvs_hc_core::time::format_duration(Duration::from_secs(
                handle
                    .ask(move |engine| engine.now().saturating_since(f.fault.since).as_secs())
                    .await
                    .unwrap_or(0)
            ))
        )),
        _ => Ok(()),
    }
}

/// Whether the daemon works at all: the main loop answers, and a table snapshot succeeded
/// recently.
pub async fn liveness(handle: &Handle) -> Result<(), String> {
    if handle.ask(|_| ()).await.is_none() {
        return Err(format!(
            "the main loop did not answer within {}s",
            LOOP_ANSWER_DEADLINE.as_secs()
        ));
    }
    let state = handle.state();
    let allowed = (state.resync_interval * 3).max(Duration::from_secs(10));
    let since = match state.last_snapshot_ok {
        Some(t) => t.elapsed(),
        None => {
            let up = state.started.elapsed().unwrap_or_default();
            if up < allowed {
                return Ok(());
            }
            up
        }
    };
    if since > allowed {
        let why = state
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

/// The control socket of the daemon that runs `config` (at `config_path`), as `lvs-hc run
/// --config config_path` without `--lock-file` or `--control` would use: `None` when off.
pub fn control_socket_of(config: &Config, config_path: &Path) -> Option<PathBuf> {
    let lock = match &config.daemon.lock_file {
        Some(p) => p.clone(),
        None => default_lock_path(config_path),
    };
    config.daemon.control.path(&lock)
}
