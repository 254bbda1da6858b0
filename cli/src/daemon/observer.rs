//! The daemon's observer: turns engine events and probe results into log lines, metrics and
//! readiness.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lvs_hc_core::time::format_duration;
use lvs_hc_core::{Engine, Event, EventKind, Health, ProbeOutcome, ProbeRequest, SyncOp, SyncWhy};

use super::notify::Notifier;
use super::DaemonState;
use crate::driver::Observer;

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
    state: Arc<Mutex<DaemonState>>,
    notifier: Arc<Notifier>,
    dry_run: bool,
    ready: bool,
    streaks: HashMap<(SocketAddr, usize), Streak>,
    faults: FaultLog,
}

/// How faults of the director reach the log: the first few each minute one by one, then a
/// summary a minute, so ten thousand probes that cannot run do not write ten thousand lines.
#[derive(Debug)]
struct FaultLog {
    /// Probes that cannot run now (as the engine last said).
    open: usize,
    /// Reports logged one by one in the current minute.
    logged: u32,
    /// Reports not logged one by one since the last summary.
    quiet: u64,
    /// The latest reason.
    latest: String,
    /// Start of the current minute.
    window: std::time::Instant,
    /// When the engine's count was last read.
    counted: std::time::Instant,
}

/// Fault reports logged one by one each minute.
const FAULTS_LOGGED_PER_MINUTE: u32 = 5;

impl DaemonObserver {
    /// An observer writing into `state`.
    pub fn new(state: Arc<Mutex<DaemonState>>, notifier: Arc<Notifier>, dry_run: bool) -> Self {
        DaemonObserver {
            state,
            notifier,
            dry_run,
            ready: false,
            streaks: HashMap::new(),
            faults: FaultLog {
                open: 0,
                logged: 0,
                quiet: 0,
                latest: String::new(),
                window: std::time::Instant::now(),
                counted: std::time::Instant::now(),
            },
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, DaemonState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
                self.state().metrics.transition(*to);
                let (service, server) = (service.to_string(), server.to_string());
                if *to == Health::Down {
                    tracing::warn!(%service, %server, fallback, %from, %to, %reason, "{text}");
                } else {
                    tracing::info!(%service, %server, fallback, %from, %to, %reason, "{text}");
                }
            }
            EventKind::Applied { op, reason } => {
                self.state().metrics.operation(op.kind_name(), true);
                let op_text = op.to_string();
                if self.dry_run {
                    tracing::info!(op = %op_text, %reason, "dry run: would apply `{op}`: {reason}");
                } else {
                    tracing::info!(op = %op_text, %reason, "{text}");
                }
            }
            EventKind::ApplyFailed { op, .. } => {
                self.state().metrics.operation(op.kind_name(), false);
                tracing::warn!(op = %op, "{text}");
            }
            EventKind::Drift { changes } => {
                {
                    let mut state = self.state();
                    state.metrics.drift_events += 1;
                    state.metrics.drift_changes += changes.len() as u64;
                }
                let all: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
                tracing::warn!(changes = ?all, "{text}");
            }
            EventKind::ProbeFault { reason, .. } => {
                self.faults.open += 1;
                self.faults.latest.clone_from(reason);
                self.fault_reported(&text);
            }
            EventKind::ProbeFaultCleared { .. } => {
                self.faults.open = self.faults.open.saturating_sub(1);
                if self.faults.logged < FAULTS_LOGGED_PER_MINUTE {
                    tracing::info!("{text}");
                }
                if self.faults.open == 0 {
                    tracing::info!("every probe runs again: no fault of this director is left");
                }
            }
            EventKind::SnapshotFailed { .. } | EventKind::ServiceUnreadable { .. } => {
                tracing::warn!("{text}")
            }
            EventKind::SyncDaemonStarted { why, .. } | EventKind::SyncDaemonStopped { why, .. } => {
                let op = if matches!(event.kind, EventKind::SyncDaemonStarted { .. }) {
                    "start"
                } else {
                    "stop"
                };
                self.state().metrics.sync_operation(op, true);
                match why {
                    _ if self.dry_run => tracing::info!("dry run: {text}"),
                    // Someone else changed them: a repair, as drift in the table is.
                    SyncWhy::Missing | SyncWhy::OtherSettings { .. } => tracing::warn!("{text}"),
                    _ => tracing::info!("{text}"),
                }
            }
            EventKind::SyncDaemonFailed { op, .. } => {
                let name = match op {
                    SyncOp::Start(_) => "start",
                    SyncOp::Stop(_) => "stop",
                };
                self.state().metrics.sync_operation(name, false);
                tracing::error!("{text}")
            }
            EventKind::RouteChanged { op, .. } => {
                self.state().metrics.announce_operation(op.name(), true);
                tracing::warn!("{text}")
            }
            EventKind::RouteFailed { op, .. } => {
                self.state().metrics.announce_operation(op.name(), false);
                tracing::error!("{text}")
            }
            EventKind::RoutesReadFailed { .. } => tracing::error!("{text}"),
            EventKind::Fallback { active: true, .. } => tracing::warn!("{text}"),
            // An operator's state lost with its server, or a command that came too late.
            EventKind::AdminForgotten { .. } | EventKind::AdminIgnored { .. } => {
                tracing::warn!("{text}")
            }
            _ => tracing::info!("{text}"),
        }
    }

    fn on_probe(&mut self, req: &ProbeRequest, outcome: &ProbeOutcome, took: Duration) {
        self.state().metrics.probe(outcome, took);
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
            // What an agent says is the engine's to report (`AgentReported`, transitions).
            ProbeOutcome::Agent(_) => {}
            ProbeOutcome::Inconclusive { reason } | ProbeOutcome::DirectorFault { reason } => {
                tracing::debug!(server = %req.server, %reason, "probe gave no verdict: {reason}");
            }
        }
    }

    fn on_backlog(&mut self, waiting: usize) {
        let mut state = self.state();
        if state.metrics.probes_waiting == 0 {
            state.metrics.backlog_events += 1;
        }
        state.metrics.probes_waiting = waiting;
    }

    fn on_engine(&mut self, engine: &Engine) {
        // Faults of probes a reload removed are never cleared by an event: take the engine's
        // count now and then while any is open.
        if self.faults.open > 0 && self.faults.counted.elapsed() >= Duration::from_secs(1) {
            self.faults.counted = std::time::Instant::now();
            self.faults.open = engine.probe_fault_count();
        }
        self.fault_summary();
    }

    fn on_snapshot(&mut self, result: Result<(), &str>) {
        let state = self.state.clone();
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                state.metrics.snapshots_ok += 1;
                state.metrics.last_snapshot_ok = Some(SystemTime::now());
                state.last_snapshot_ok = Some(std::time::Instant::now());
                state.last_snapshot_error = None;
                if !self.ready {
                    self.ready = true;
                    drop(state);
                    tracing::info!("IPVS table read; lvs-hc is ready");
                    self.notifier
                        .send("READY=1\nSTATUS=probing; the IPVS table follows the probes");
                }
            }
            Err(e) => {
                state.metrics.snapshots_failed += 1;
                state.last_snapshot_error = Some(e.to_string());
                if !self.ready {
                    drop(state);
                    self.notifier
                        .send(&format!("STATUS=cannot read the IPVS table: {e}"));
                }
            }
        }
    }
}

impl DaemonObserver {
    /// Logs a fault report, or counts it for the next summary.
    fn fault_reported(&mut self, text: &str) {
        let f = &mut self.faults;
        if f.window.elapsed() >= Duration::from_secs(60) {
            self.fault_summary();
        }
        let f = &mut self.faults;
        if f.logged < FAULTS_LOGGED_PER_MINUTE {
            f.logged += 1;
            tracing::warn!("{text}");
        } else {
            f.quiet += 1;
            tracing::debug!("{text}");
        }
    }

    /// Once a minute: how many probes cannot run, if reports went unlogged.
    fn fault_summary(&mut self) {
        let f = &mut self.faults;
        if f.window.elapsed() < Duration::from_secs(60) {
            return;
        }
        if f.quiet > 0 {
            tracing::warn!(
                probes = f.open,
                "{} probe(s) cannot run because of this director ({} more such report(s) in \
                 the last minute); the latest: {}; their servers keep their state",
                f.open,
                f.quiet,
                f.latest
            );
        }
        f.quiet = 0;
        f.logged = 0;
        f.window = std::time::Instant::now();
    }
}

/// Durations in logs to the millisecond.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
