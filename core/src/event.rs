//! What happened, and why: the engine's account of itself for logs, metrics and status.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::admin::{AdminSource, AdminState, AgentAdmin, AgentHealth, AgentReport};
use crate::announce::RouteOp;
use crate::health::Health;
use crate::op::{ApplyError, Op};
use crate::sync::{SyncDaemon, SyncOp, SyncRole, SyncWhy};
use crate::table::ServiceKey;
use crate::text::plural;
use crate::time::{format_duration, Instant};

/// One thing that happened at a point in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: Instant,
    /// What.
    pub kind: EventKind,
}

/// The kinds of events.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A server's combined health changed.
    ServerHealth {
        /// The service it belongs to.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// Whether it is a fallback server.
        fallback: bool,
        /// Health before.
        from: Health,
        /// Health now.
        to: Health,
        /// Why: `3 consecutive failures, last: connection refused`.
        reason: String,
    },
    /// A dynamic-weight check reported a new weight.
    WeightReported {
        /// The server.
        server: SocketAddr,
        /// The new weight.
        weight: u32,
    },
    /// The fallback servers of a service went in or out.
    Fallback {
        /// The service.
        service: ServiceKey,
        /// In (true) or out.
        active: bool,
        /// Real servers counted healthy.
        healthy: usize,
        /// The quorum.
        quorum: usize,
    },
    /// A server went to weight 0 to drain: it failed (`on_failure = "drain"`), or an operator,
    /// a maintenance file or its agent asked for a drain.
    DrainStarted {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// Longest the drain may take.
        timeout: Duration,
    },
    /// A drain ended; the server will be deleted (and, drained by an operator, stays out until
    /// enabled).
    DrainFinished {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// `connections reached 0` or `drain timeout passed`.
        reason: String,
    },
    /// An operation succeeded.
    Applied {
        /// The operation.
        op: Op,
        /// Why it was needed.
        reason: String,
    },
    /// An operation failed and will be retried.
    ApplyFailed {
        /// The operation.
        op: Op,
        /// The kernel's (or backend's) error.
        error: ApplyError,
        /// How many times in a row it failed.
        attempt: u32,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// A snapshot showed changes lvs-hc did not make; they are being repaired.
    Drift {
        /// What was changed, as the operations that would make such a change.
        changes: Vec<Op>,
    },
    /// A snapshot showed changes to lvs-hc's own probe services (`via_vip`), made outside
    /// lvs-hc or left from an earlier run; they are being repaired. Not the operator's
    /// configuration, so not drift.
    ProbeServicesRepaired {
        /// What was changed, as the operations that would make such a change.
        changes: Vec<Op>,
    },
    /// lvs-hc started a connection sync daemon.
    SyncDaemonStarted {
        /// The daemon, as started.
        daemon: SyncDaemon,
        /// Why.
        why: SyncWhy,
    },
    /// lvs-hc stopped a connection sync daemon.
    SyncDaemonStopped {
        /// Its role.
        role: SyncRole,
        /// Why.
        why: SyncWhy,
    },
    /// Starting or stopping a sync daemon failed; it is tried again with backoff, and health
    /// checking goes on regardless.
    SyncDaemonFailed {
        /// What was tried.
        op: SyncOp,
        /// The backend's error.
        error: String,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// lvs-hc added or deleted a route announcing a VIP (`[announce]`).
    RouteChanged {
        /// What was done.
        op: RouteOp,
        /// Why: the VIP's plan (`1 of 1 services ready`, `TCP ... has 0 healthy of 2`).
        why: String,
    },
    /// Adding or deleting a route failed; it is tried again with backoff.
    RouteFailed {
        /// What was tried.
        op: RouteOp,
        /// The adapter's error.
        error: String,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// Reading lvs-hc's routes failed; nothing is changed until a read succeeds.
    RoutesReadFailed {
        /// The adapter's error.
        error: String,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// Reading the kernel table failed.
    SnapshotFailed {
        /// The backend's error.
        error: String,
        /// When it is tried again.
        retry_in: Duration,
    },
    /// A probe could not run because of a problem on this director (out of file descriptors
    /// or memory, no source address, a check program that cannot start, a panic): no verdict,
    /// so its server keeps its state. Reported once when it starts; see
    /// [`EventKind::ProbeFaultCleared`].
    ProbeFault {
        /// The server probed.
        server: SocketAddr,
        /// The check's label.
        check: String,
        /// What went wrong on the director.
        reason: String,
    },
    /// A probe that could not run (see [`EventKind::ProbeFault`]) gave a verdict again.
    ProbeFaultCleared {
        /// The server probed.
        server: SocketAddr,
        /// The check's label.
        check: String,
        /// How long the probe could not run.
        lasted: Duration,
    },
    /// The kernel holds a service lvs-hc cannot read (a newer kernel's setting, say): it is
    /// left alone, neither repaired nor deleted, while it stays unreadable.
    ServiceUnreadable {
        /// The service, when its key could be read.
        service: Option<ServiceKey>,
        /// What could not be read.
        error: String,
    },
    /// A new configuration took effect.
    ConfigApplied {
        /// What changed, in words.
        summary: String,
    },
    /// One source's administrative state of a server changed (an operator's command, a
    /// maintenance file, the server's agent).
    AdminChanged {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// Who.
        source: AdminSource,
        /// That source's state now (`enabled`: it no longer asks for anything).
        state: AdminState,
        /// The state in force, the strictest of all sources.
        effective: AdminState,
        /// Why, as given.
        reason: String,
    },
    /// An administrative change named a server the configuration in force does not have (it
    /// was removed by a reload in between): nothing changed.
    AdminIgnored {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
    },
    /// A reload removed a server that had an administrative state: the state is forgotten.
    AdminForgotten {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// The state it had.
        state: AdminState,
        /// Who had set it.
        source: AdminSource,
    },
    /// A server returned to service and ramps up to its full weight (`slow_start`).
    SlowStartBegan {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// How long the ramp takes.
        over: Duration,
    },
    /// A slow start ended: at full weight, or cut short (the server failed or was taken out).
    SlowStartEnded {
        /// The service.
        service: ServiceKey,
        /// The server.
        server: SocketAddr,
        /// `full weight reached`, or why it was cut short.
        reason: String,
    },
    /// An agent check's reply changed what its agent asks for.
    AgentReported {
        /// The server.
        server: SocketAddr,
        /// What it said.
        report: AgentReport,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.at, self.kind)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::ServerHealth {
                service,
                server,
                fallback,
                to,
                reason,
                ..
            } => {
                let role = if *fallback { "fallback " } else { "" };
                write!(f, "{service}: {role}{server} {to}: {reason}")
            }
            EventKind::WeightReported { server, weight } => {
                write!(f, "{server} reports weight {weight}")
            }
            EventKind::Fallback {
                service,
                active,
                healthy,
                quorum,
            } => {
                let state = if *active { "in" } else { "out" };
                write!(
                    f,
                    "{service}: fallback {state}: {healthy} healthy, quorum {quorum}"
                )
            }
            EventKind::DrainStarted {
                service,
                server,
                timeout,
            } => write!(
                f,
                "{service}: draining {server} (weight 0 until its connections end, at most {})",
                format_duration(*timeout)
            ),
            EventKind::DrainFinished {
                service,
                server,
                reason,
            } => {
                write!(f, "{service}: drain of {server} finished: {reason}")
            }
            EventKind::Applied { op, reason } => write!(f, "applied `{op}`: {reason}"),
            EventKind::ApplyFailed {
                op,
                error,
                attempt,
                retry_in,
            } => write!(
                f,
                "`{op}` failed ({error}), attempt {attempt}, retrying in {}",
                format_duration(*retry_in)
            ),
            EventKind::Drift { changes } => {
                let count = plural(changes.len(), "difference", "differences");
                write!(f, "table changed outside lvs-hc ({count}), repairing")?;
                if let Some(first) = changes.first() {
                    write!(f, "; as if by `{first}`")?;
                }
                Ok(())
            }
            EventKind::ProbeServicesRepaired { changes } => {
                let count = plural(changes.len(), "difference", "differences");
                write!(f, "lvs-hc's probe services (via_vip) differ from what it set ({count}), repairing")?;
                if let Some(first) = changes.first() {
                    write!(f, "; as if by `{first}`")?;
                }
                Ok(())
            }
            EventKind::SyncDaemonStarted { daemon, why } => {
                write!(f, "{daemon} started: {why}")
            }
            EventKind::SyncDaemonStopped { role, why } => {
                write!(f, "{role} sync daemon stopped: {why}")
            }
            EventKind::SyncDaemonFailed {
                op,
                error,
                retry_in,
            } => write!(
                f,
                "`{op}` failed ({error}), retrying in {}; health checking goes on",
                format_duration(*retry_in)
            ),
            EventKind::RouteChanged { op, why } => write!(f, "`{op}`: {why}"),
            EventKind::RouteFailed {
                op,
                error,
                retry_in,
            } => write!(
                f,
                "`{op}` failed ({error}), retrying in {}",
                format_duration(*retry_in)
            ),
            EventKind::RoutesReadFailed { error, retry_in } => write!(
                f,
                "reading lvs-hc's routes failed ({error}), retrying in {}",
                format_duration(*retry_in)
            ),
            EventKind::SnapshotFailed { error, retry_in } => write!(
                f,
                "reading the IPVS table failed ({error}), retrying in {}",
                format_duration(*retry_in)
            ),
            EventKind::ProbeFault {
                server,
                check,
                reason,
            } => write!(
                f,
                "probe of {server} ({check}) cannot run on this director: {reason}; no verdict, \
                 {server} keeps its state"
            ),
            EventKind::ProbeFaultCleared {
                server,
                check,
                lasted,
            } => write!(
                f,
                "probe of {server} ({check}) runs again after {} of director faults",
                format_duration(*lasted)
            ),
            EventKind::ServiceUnreadable { service, error } => match service {
                Some(key) => write!(
                    f,
                    "{key}: cannot read this service from the kernel ({error}); lvs-hc leaves it \
                     alone while it stays so"
                ),
                None => write!(
                    f,
                    "the kernel holds a service lvs-hc cannot read ({error}); lvs-hc leaves it \
                     alone"
                ),
            },
            EventKind::ConfigApplied { summary } => write!(f, "configuration applied: {summary}"),
            EventKind::AdminChanged {
                service,
                server,
                source,
                state,
                effective,
                reason,
            } => {
                let by = source.label();
                match state {
                    AdminState::Enabled => write!(f, "{service}: {server} enabled by {by}")?,
                    AdminState::Drain => write!(f, "{service}: {server} drained by {by}")?,
                    AdminState::Disabled => write!(f, "{service}: {server} disabled by {by}")?,
                }
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                if effective != state {
                    write!(f, " (still {effective} by another source)")?;
                }
                Ok(())
            }
            EventKind::AdminIgnored { service, server } => write!(
                f,
                "{service}: administrative change for {server} ignored: not in the \
                 configuration in force"
            ),
            EventKind::AdminForgotten {
                service,
                server,
                state,
                source,
            } => write!(
                f,
                "{service}: {server} left the configuration; its {state} state (set by {}) is \
                 forgotten",
                source.label()
            ),
            EventKind::SlowStartBegan {
                service,
                server,
                over,
            } => write!(
                f,
                "{service}: {server} returns, ramping up to its full weight over {}",
                format_duration(*over)
            ),
            EventKind::SlowStartEnded {
                service,
                server,
                reason,
            } => write!(f, "{service}: slow start of {server} ended: {reason}"),
            EventKind::AgentReported { server, report } => {
                write!(f, "{server} agent says:")?;
                if let Some(h) = report.health {
                    write!(f, " {}", if h == AgentHealth::Up { "up" } else { "down" })?;
                }
                match report.admin {
                    Some(AgentAdmin::Ready) => f.write_str(" ready")?,
                    Some(AgentAdmin::Drain) => f.write_str(" drain")?,
                    Some(AgentAdmin::Maint) => f.write_str(" maint")?,
                    None => {}
                }
                if let Some(p) = report.weight_percent {
                    write!(f, " {p}%")?;
                }
                if !report.text.is_empty() {
                    write!(f, " ({})", report.text)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_counts_its_differences_and_shows_the_first() {
        let key = ServiceKey::Tcp("192.168.0.101:80".parse().unwrap());
        let del = |dest: &str| Op::DelDest {
            service: key,
            dest: dest.parse().unwrap(),
        };
        let one = EventKind::Drift {
            changes: vec![del("192.168.0.179:80")],
        };
        assert_eq!(
            one.to_string(),
            "table changed outside lvs-hc (1 difference), repairing; as if by `ipvsadm -d -t \
             192.168.0.101:80 -r 192.168.0.179:80`"
        );
        let two = EventKind::Drift {
            changes: vec![del("192.168.0.179:80"), del("192.168.0.180:80")],
        };
        assert!(two
            .to_string()
            .starts_with("table changed outside lvs-hc (2 differences), repairing; as if by"));
    }
}
