//! Rise/fall hysteresis: how raw probe results become a state.

use std::fmt;

use crate::admin::{AgentHealth, AgentReport};
use crate::text::plural;

/// The state of one check, or of a server (all its checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// No verdict yet: the check has neither passed once nor failed `fall` times in a row.
    Unknown,
    /// Passing.
    Up,
    /// Failing.
    Down,
}

impl Health {
    /// `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }

    /// The combined state of several checks: down if any is down, up if all are up (or there
    /// are none), unknown otherwise.
    pub fn all(states: impl IntoIterator<Item = Health>) -> Health {
        let mut result = Health::Up;
        for s in states {
            match s {
                Health::Down => return Health::Down,
                Health::Unknown => result = Health::Unknown,
                Health::Up => {}
            }
        }
        result
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A probe's verdict as the driver reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The server answered as the check expects. `weight` is a dynamic weight it reported.
    Pass {
        /// A weight reported by an exec check with `dynamic_weight`.
        weight: Option<u32>,
    },
    /// The server did not: `reason` says how ("connection refused", "timed out after 1s").
    Fail {
        /// Why, in words for the operator.
        reason: String,
    },
    /// No verdict: lvs-hc itself could not give the server its full timeout (it was starved of
    /// CPU, or shutting down). Counts neither way.
    Inconclusive {
        /// Why, in words for the operator.
        reason: String,
    },
    /// No verdict: the probe could not run because of something on this director, not the
    /// server: out of file descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS), no local
    /// port or `source` address (EADDRNOTAVAIL, a failed bind), an exec check's program that
    /// cannot be started, a probe that panicked. Counts neither way, like
    /// [`ProbeOutcome::Inconclusive`], but the engine reports it as a problem of the director
    /// until the probe runs again.
    DirectorFault {
        /// What went wrong on the director, in words for the operator.
        reason: String,
    },
    /// An agent (an `agent` check) answered: a verdict, a failure if it says `down` (`fail`,
    /// `stopped`) and a pass otherwise, with what it asks for besides. An agent that cannot be
    /// reached is [`ProbeOutcome::Inconclusive`]: agents are advisory, as in HAProxy.
    Agent(AgentReport),
}

/// What a probe's result says of its server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// It passed (an agent that does not say `down` passes).
    Pass,
    /// It failed, and why (an agent's `down` with its description).
    Fail(&'a str),
}

impl ProbeOutcome {
    /// What this result says of the server: a pass, a failure, or (`None`) no verdict. The
    /// one reading of an outcome that health, metrics and the simulator share.
    pub fn verdict(&self) -> Option<Verdict<'_>> {
        match self {
            ProbeOutcome::Pass { .. } => Some(Verdict::Pass),
            ProbeOutcome::Fail { reason } => Some(Verdict::Fail(reason)),
            ProbeOutcome::Agent(r) if r.health == Some(AgentHealth::Down) => {
                Some(Verdict::Fail(&r.text))
            }
            ProbeOutcome::Agent(_) => Some(Verdict::Pass),
            ProbeOutcome::Inconclusive { .. } | ProbeOutcome::DirectorFault { .. } => None,
        }
    }

    /// Whether this result says something about the server (a pass or a failure), as opposed
    /// to no verdict.
    pub fn is_verdict(&self) -> bool {
        self.verdict().is_some()
    }
}

/// A transition of a check's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: Health,
    /// State after.
    pub to: Health,
    /// Why, e.g. `3 consecutive failures, last: connection refused`.
    pub reason: String,
}

/// Rise/fall counting for one check.
///
/// From `Unknown`, the first pass is enough to go up (a new server waits for one passing probe,
/// not `rise`), and `fall` consecutive failures go down. From `Up`, `fall` consecutive failures
/// go down; from `Down`, `rise` consecutive passes go up. Results that are no verdict
/// (inconclusive, a fault of the director) change nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    rise: u32,
    fall: u32,
    state: Health,
    passes: u32,
    failures: u32,
}

impl Hysteresis {
    /// A check in state `Unknown` with these thresholds (each at least 1).
    pub fn new(rise: u32, fall: u32) -> Hysteresis {
        Hysteresis {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            passes: 0,
            failures: 0,
        }
    }

    /// A check that starts in `state`.
    pub fn starting(rise: u32, fall: u32, state: Health) -> Hysteresis {
        Hysteresis {
            state,
            ..Hysteresis::new(rise, fall)
        }
    }

    /// The current state.
    pub fn state(&self) -> Health {
        self.state
    }

    /// Whether the check is failing or recovering: down, or its latest conclusive result was a
    /// failure. Probes run at the faster failing interval then.
    pub fn failing(&self) -> bool {
        self.state == Health::Down || self.failures > 0
    }

    /// Counts one result; returns the transition it caused, if any.
    pub fn record(&mut self, outcome: &ProbeOutcome) -> Option<Transition> {
        let from = self.state;
        match outcome.verdict() {
            None => return None,
            Some(Verdict::Pass) => {
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                let needed = if from == Health::Unknown {
                    1
                } else {
                    self.rise
                };
                if from != Health::Up && self.passes >= needed {
                    self.state = Health::Up;
                    let reason = if from == Health::Unknown {
                        "first probe passed".to_string()
                    } else {
                        plural(
                            self.passes as usize,
                            "consecutive pass",
                            "consecutive passes",
                        )
                    };
                    return Some(Transition {
                        from,
                        to: Health::Up,
                        reason,
                    });
                }
            }
            Some(Verdict::Fail(reason)) => {
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                if from != Health::Down && self.failures >= self.fall {
                    self.state = Health::Down;
                    let reason = format!(
                        "{}, last: {reason}",
                        plural(
                            self.failures as usize,
                            "consecutive failure",
                            "consecutive failures"
                        )
                    );
                    return Some(Transition {
                        from,
                        to: Health::Down,
                        reason,
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass() -> ProbeOutcome {
        ProbeOutcome::Pass { weight: None }
    }
    fn fail(r: &str) -> ProbeOutcome {
        ProbeOutcome::Fail { reason: r.into() }
    }

    #[test]
    fn down_after_fall_consecutive_failures_with_the_last_reason() {
        let mut h = Hysteresis::starting(2, 3, Health::Up);
        assert_eq!(h.record(&fail("timed out after 1s")), None);
        assert_eq!(h.record(&fail("timed out after 1s")), None);
        let t = h.record(&fail("connection refused")).unwrap();
        assert_eq!(t.to, Health::Down);
        assert_eq!(t.reason, "3 consecutive failures, last: connection refused");
    }

    #[test]
    fn a_pass_resets_the_failure_count() {
        let mut h = Hysteresis::starting(2, 2, Health::Up);
        h.record(&fail("x"));
        h.record(&pass());
        assert_eq!(h.record(&fail("x")), None);
        assert_eq!(h.state(), Health::Up);
    }

    #[test]
    fn first_pass_brings_a_new_check_up_but_recovery_needs_rise() {
        let mut h = Hysteresis::new(3, 1);
        assert_eq!(h.record(&pass()).unwrap().reason, "first probe passed");
        h.record(&fail("refused"));
        assert_eq!(h.state(), Health::Down);
        assert_eq!(h.record(&pass()), None);
        assert_eq!(h.record(&pass()), None);
        assert_eq!(h.record(&pass()).unwrap().reason, "3 consecutive passes");
    }

    #[test]
    fn inconclusive_results_count_neither_way() {
        let mut h = Hysteresis::starting(1, 2, Health::Up);
        h.record(&fail("x"));
        h.record(&ProbeOutcome::Inconclusive {
            reason: "late".into(),
        });
        assert!(
            h.record(&fail("x")).is_some(),
            "the two failures are still consecutive"
        );
    }

    #[test]
    fn director_faults_count_neither_way() {
        let mut h = Hysteresis::starting(1, 3, Health::Up);
        h.record(&fail("x"));
        for _ in 0..10 {
            let fault = ProbeOutcome::DirectorFault {
                reason: "too many open files".into(),
            };
            assert_eq!(h.record(&fault), None);
        }
        assert_eq!(h.state(), Health::Up);
        assert!(h.failing(), "the failure before the faults still counts");
        // A fault neither added a failure (two are still needed) nor reset the count (the
        // second failure is not the first of a new run).
        assert_eq!(h.record(&fail("x")), None, "faults added no failure");
        let t = h.record(&fail("x")).expect("the third failure in a row");
        assert_eq!(t.reason, "3 consecutive failures, last: x");
    }

    #[test]
    fn combined_health_is_down_if_any_check_is_down() {
        assert_eq!(
            Health::all([Health::Up, Health::Down, Health::Unknown]),
            Health::Down
        );
        assert_eq!(Health::all([Health::Up, Health::Unknown]), Health::Unknown);
        assert_eq!(Health::all([]), Health::Up);
    }
}
