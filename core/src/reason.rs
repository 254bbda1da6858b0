//! The engine's explanations in the operator's words: why an operation is needed (the `reason`
//! of [`EventKind::Applied`](crate::event::EventKind::Applied)) and what a reload changed (the
//! `summary` of [`EventKind::ConfigApplied`](crate::event::EventKind::ConfigApplied)).
//!
//! The engine states the facts as values; the sentences live here, beside the events that carry
//! them, so the state machine holds no prose and the wording can change in one place.

use std::fmt;
use std::net::SocketAddr;

use crate::health::Health;
use crate::text::plural;

/// Why an operation is needed, as the engine knows it when it emits the operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpReason<'a> {
    /// lvs-hc withdraws every service it manages ([`Input::Withdraw`](crate::Input::Withdraw)).
    Withdrawal,
    /// A reload removed the service from the configuration.
    Retired,
    /// The service is not in the configuration and lvs-hc owns the whole table.
    Unconfigured,
    /// The configuration names the service and the kernel lacks it.
    ServiceMissing,
    /// The service's settings in the kernel differ from the configuration.
    ServiceSettings,
    /// A configured service should not exist.
    ServiceUnwanted,
    /// A change to a fallback server.
    Fallback {
        /// Whether the service's fallbacks are in.
        fallback_in: bool,
        /// The service's quorum.
        quorum: usize,
        /// The fallback's health and why.
        health: Health,
        /// Why it is in that state.
        why: &'a str,
    },
    /// A change to a real server.
    Server {
        /// The server.
        dest: SocketAddr,
        /// What changes in an edit of it.
        change: DestChange,
        /// Its health.
        health: Health,
        /// Why it is in that state.
        why: &'a str,
        /// Whether it is draining.
        draining: bool,
        /// Its administrative state in force, in words (`disabled by admin: kernel patching`).
        admin: Option<String>,
        /// Its slow start: step and steps.
        ramp: Option<(u32, u32)>,
    },
    /// The destination is not in the configuration.
    UnknownDest,
}

/// What an operation on a real server changes, beyond adding or removing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DestChange {
    /// Its weight, from and to.
    Weight(u32, u32),
    /// Other settings (forwarding method, thresholds).
    Settings,
    /// Nothing to say: an addition or a removal.
    Presence,
}

impl fmt::Display for OpReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpReason::Withdrawal => f.write_str("cleanup on exit"),
            OpReason::Retired => f.write_str("service removed from the configuration"),
            OpReason::Unconfigured => {
                f.write_str("service not in the configuration (manage = \"all\")")
            }
            OpReason::ServiceMissing => {
                f.write_str("service in the configuration, not in the kernel")
            }
            OpReason::ServiceSettings => {
                f.write_str("service settings differ from the configuration")
            }
            OpReason::ServiceUnwanted => f.write_str("service not in the configuration"),
            OpReason::Fallback {
                fallback_in,
                quorum,
                health,
                why,
            } => {
                let state = if *fallback_in { "in" } else { "out" };
                write!(
                    f,
                    "fallback {state} (quorum {quorum}); fallback {health} {why}"
                )
            }
            OpReason::Server {
                dest,
                change,
                health,
                why,
                draining,
                admin,
                ramp,
            } => {
                match change {
                    DestChange::Weight(from, to) => write!(f, "weight {from} -> {to}; ")?,
                    DestChange::Settings => {
                        f.write_str("settings differ from the configuration; ")?
                    }
                    DestChange::Presence => {}
                }
                let extra = if *draining { ", draining" } else { "" };
                write!(f, "{dest} {health}{extra}: {why}")?;
                if let Some(admin) = admin {
                    write!(f, "; {admin}")?;
                }
                if let Some((step, steps)) = ramp {
                    write!(f, "; slow start, step {step} of {steps}")?;
                }
                Ok(())
            }
            OpReason::UnknownDest => f.write_str("destination not in the configuration"),
        }
    }
}

/// What a reload changed: services and probes, old and new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReloadSummary {
    /// Services in the new configuration.
    pub services: usize,
    /// Of those, how many the old one lacked.
    pub added: usize,
    /// Services of the old configuration the new one lacks.
    pub removed: usize,
    /// Distinct probes of the new configuration.
    pub probes: usize,
    /// Of those, how many carried their state over.
    pub kept: usize,
    /// Of those, how many start afresh.
    pub fresh: usize,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ReloadSummary {
            services,
            added,
            removed,
            probes,
            kept,
            fresh,
        } = *self;
        write!(
            f,
            "{} ({added} new, {removed} removed), {} ({kept} kept with their state, {fresh} new)",
            plural(services, "service", "services"),
            plural(probes, "probe", "probes"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_change_names_the_old_and_new_weight_then_the_server_state() {
        let reason = OpReason::Server {
            dest: "192.168.0.179:80".parse().unwrap(),
            change: DestChange::Weight(2, 0),
            health: Health::Down,
            why: "3 consecutive failures, last: connection refused",
            draining: true,
            admin: None,
            ramp: None,
        };
        assert_eq!(
            reason.to_string(),
            "weight 2 -> 0; 192.168.0.179:80 down, draining: 3 consecutive failures, last: \
             connection refused"
        );
    }

    #[test]
    fn an_administrative_state_and_a_slow_start_follow_the_health() {
        let reason = OpReason::Server {
            dest: "192.168.0.179:80".parse().unwrap(),
            change: DestChange::Weight(1, 5),
            health: Health::Up,
            why: "2 consecutive passes",
            draining: false,
            admin: Some("drain by admin: kernel patching".into()),
            ramp: Some((2, 10)),
        };
        assert_eq!(
            reason.to_string(),
            "weight 1 -> 5; 192.168.0.179:80 up: 2 consecutive passes; drain by admin: kernel \
             patching; slow start, step 2 of 10"
        );
    }

    #[test]
    fn a_reload_summary_counts_services_and_probes() {
        let summary = ReloadSummary {
            services: 1,
            added: 0,
            removed: 1,
            probes: 3,
            kept: 2,
            fresh: 1,
        };
        assert_eq!(
            summary.to_string(),
            "1 service (0 new, 1 removed), 3 probes (2 kept with their state, 1 new)"
        );
    }
}
