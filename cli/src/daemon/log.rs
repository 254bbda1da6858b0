//! Logs: the subscriber set-up, and the observer that turns engine events and probe results
//! into log lines and metrics.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lvs_hc_core::time::format_duration;
use lvs_hc_core::{Engine, Event, EventKind, Health, ProbeOutcome, ProbeRequest};
use tracing_subscriber::EnvFilter;

use super::notify::Notifier;
use super::Shared;
use crate::cli::LogFormat;
use crate::driver::Observer;

/// Sets up logging to standard error. `auto`: coloured text on a terminal; plain text without
/// timestamps under systemd's journal (which stamps lines itself); JSON lines otherwise.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| anyhow::anyhow!("RUST_LOG={v}: {e}"))?
        }
        _ => EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("--log-level {level}: {e}"))?,
    };
    let terminal = std::io::stderr().is_terminal();
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let format = match format {
        LogFormat::Auto if terminal || journal => LogFormat::Text,
        LogFormat::Auto => LogFormat::Json,
        f => f,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        // Text lines carry the message only: every message says it all, and the fields that
        // repeat it are for JSON consumers.
        _ if journal && !terminal => builder
            .fmt_fields(message_only())
            .with_ansi(false)
            .without_time()
            .try_init(),
        _ => builder
            .fmt_fields(message_only())
            .with_ansi(terminal)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("setting up logging: {e}"))
}

fn message_only() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(writer, "{value:?}")
        } else {
            Ok(())
        }
    })
}

/// A run of failures of one probe, summarised instead of logged one by one.
#[derive(Debug)]
struct Streak {
    failures: u64,
    reason: String,
    first: std::time::Instant,
    last_logged: std::time::Instant,
}

/// How often a probe that keeps failing the same way is mentioned again.
const STILL_FAILING_EVERY: Duration = Duration::from_secs(300);

/// The daemon's observer: logs, metrics, and readiness.
pub struct DaemonObserver {
    shared: Arc<Mutex<Shared>>,
    notifier: Arc<Notifier>,
    dry_run: bool,
    ready: bool,
    streaks: HashMap<(SocketAddr, usize), Streak>,
}

impl DaemonObserver {
    /// An observer writing into `shared`.
    pub fn new(shared: Arc<Mutex<Shared>>, notifier: Arc<Notifier>, dry_run: bool) -> Self {
        DaemonObserver {
            shared,
            notifier,
            dry_run,
            ready: false,
            streaks: HashMap::new(),
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Observer for DaemonObserver {
    fn on_event(&mut self, event: &Event) {
        let text = event.kind.to_string();
        match &event.kind {
            EventKind::ServerHealth {
                service,
                server,
                fallback,
                from,
                to,
                reason,
            } => {
                self.shared().metrics.transition(*to);
                let (service, server) = (service.to_string(), server.to_string());
                if *to == Health::Down {
                    tracing::warn!(%service, %server, fallback, %from, %to, %reason, "{text}");
                } else {
                    tracing::info!(%service, %server, fallback, %from, %to, %reason, "{text}");
                }
            }
            EventKind::Applied { op, reason } => {
                self.shared().metrics.operation(op.kind_name(), true);
                let op_text = op.to_string();
                if self.dry_run {
                    tracing::info!(op = %op_text, %reason, "dry run: would apply `{op}`: {reason}");
                } else {
                    tracing::info!(op = %op_text, %reason, "{text}");
                }
            }
            EventKind::ApplyFailed { op, .. } => {
                self.shared().metrics.operation(op.kind_name(), false);
                tracing::warn!(op = %op, "{text}");
            }
            EventKind::Drift { changes } => {
                {
                    let mut shared = self.shared();
                    shared.metrics.drift_events += 1;
                    shared.metrics.drift_changes += changes.len() as u64;
                }
                let all: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
                tracing::warn!(changes = ?all, "{text}");
            }
            EventKind::SnapshotFailed { .. } => tracing::warn!("{text}"),
            EventKind::Fallback { active: true, .. } => tracing::warn!("{text}"),
            _ => tracing::info!("{text}"),
        }
    }

    fn on_probe(&mut self, req: &ProbeRequest, outcome: &ProbeOutcome, took: Duration) {
        self.shared().metrics.probe(outcome, took);
        let key = (req.server, Arc::as_ptr(&req.check) as usize);
        let now = std::time::Instant::now();
        match outcome {
            ProbeOutcome::Fail { reason } => match self.streaks.get_mut(&key) {
                None => {
                    tracing::info!(
                        server = %req.server,
                        check = %req.check.label(),
                        %reason,
                        "probe of {} ({}) failed: {reason}",
                        req.server,
                        req.check.label()
                    );
                    self.streaks.insert(
                        key,
                        Streak {
                            failures: 1,
                            reason: reason.clone(),
                            first: now,
                            last_logged: now,
                        },
                    );
                }
                Some(streak) => {
                    streak.failures += 1;
                    let changed = streak.reason != *reason;
                    if changed || now.duration_since(streak.last_logged) >= STILL_FAILING_EVERY {
                        let how = if changed { "now fails" } else { "still fails" };
                        tracing::info!(
                            server = %req.server,
                            check = %req.check.label(),
                            %reason,
                            failures = streak.failures,
                            "probe of {} ({}) {how}: {reason} ({} failures in a row over {})",
                            req.server,
                            req.check.label(),
                            streak.failures,
                            format_duration(round(now.duration_since(streak.first)))
                        );
                        streak.reason.clone_from(reason);
                        streak.last_logged = now;
                    }
                }
            },
            ProbeOutcome::Pass { .. } => {
                if let Some(streak) = self.streaks.remove(&key) {
                    tracing::info!(
                        server = %req.server,
                        check = %req.check.label(),
                        failures = streak.failures,
                        "probe of {} ({}) passes again after {} failure{} over {}",
                        req.server,
                        req.check.label(),
                        streak.failures,
                        if streak.failures == 1 { "" } else { "s" },
                        format_duration(round(now.duration_since(streak.first)))
                    );
                }
            }
            ProbeOutcome::Inconclusive { reason } => {
                tracing::debug!(server = %req.server, %reason, "probe inconclusive: {reason}");
            }
        }
    }

    fn on_backlog(&mut self, waiting: usize) {
        let mut shared = self.shared();
        if shared.metrics.probes_waiting == 0 {
            shared.metrics.backlog_events += 1;
        }
        shared.metrics.probes_waiting = waiting;
    }

    fn on_engine(&mut self, engine: &Engine) {
        let _ = engine;
    }

    fn on_snapshot(&mut self, result: Result<(), &str>) {
        let shared = self.shared.clone();
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                shared.metrics.snapshots_ok += 1;
                shared.metrics.last_snapshot_ok = Some(SystemTime::now());
                shared.last_snapshot_ok = Some(std::time::Instant::now());
                shared.last_snapshot_error = None;
                if !self.ready {
                    self.ready = true;
                    drop(shared);
                    tracing::info!("IPVS table read; lvs-hc is ready");
                    self.notifier
                        .send("READY=1\nSTATUS=probing; the IPVS table follows the probes");
                }
            }
            Err(e) => {
                shared.metrics.snapshots_failed += 1;
                shared.last_snapshot_error = Some(e.to_string());
                if !self.ready {
                    drop(shared);
                    self.notifier
                        .send(&format!("STATUS=cannot read the IPVS table: {e}"));
                }
            }
        }
    }
}

/// Durations in logs to the millisecond.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
