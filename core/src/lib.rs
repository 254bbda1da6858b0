//! The pure engine of lvs-hc.
//!
//! lvs-hc asks three questions in a loop: *what did the probes see?* → *what should the
//! kernel's IPVS table be?* → *which operations get it there?* This crate answers all three
//! with no IO, no clock, no async and no randomness of its own: time, probe results and kernel
//! snapshots come in as values ([`Input`]), and probe requests, IPVS operations, events and the
//! next deadline go out as values ([`Output`]).
//!
//! # The loop
//!
//! Mutate with [`Engine::handle_input`], then drain [`Engine::poll_output`] until it returns
//! [`Output::Timeout`]; sleep until that deadline or until the next input, whichever is first.
//!
//! `handle_input` only records what happened (a verdict, the table as read, an operation's
//! result) and marks the services it concerns dirty. The IPVS operations for those services are
//! worked out in `poll_output`, once the outputs already queued are drained: that is where
//! [`Output::Apply`] comes from, so several inputs fed before polling cost one reconciliation.
//!
//! ```
//! use lvs_hc_core::{Config, Engine, Input, Instant, Output, ProbeOutcome, Table, Counters};
//!
//! let config = Config::from_toml(r#"
//!     [[service]]
//!     address = "192.168.0.101:80"
//!     [[service.check]]
//!     type = "tcp"
//!     [[service.server]]
//!     address = "192.168.0.179:80"
//! "#, "inline").unwrap();
//! let mut engine = Engine::new(config, Instant::ZERO, 42);
//! let mut kernel = Table::new();
//! let mut now = Instant::ZERO;
//! let mut inputs = Vec::new();
//! for _ in 0..10 {
//!     loop {
//!         match engine.poll_output() {
//!             Output::ReadTable => inputs.push(Input::Snapshot {
//!                 now, table: kernel.clone(), counters: Counters::default(),
//!                 skipped: Vec::new(),
//!             }),
//!             Output::Probe(req) => inputs.push(Input::ProbeResult {
//!                 now, id: req.id, outcome: ProbeOutcome::Pass { weight: None },
//!             }),
//!             Output::Apply(op) => {
//!                 let result = kernel.apply(&op);
//!                 inputs.push(Input::Applied { now, op, result });
//!             }
//!             Output::Sync(op) => inputs.push(Input::SyncApplied {
//!                 now, result: kernel.apply_sync(&op).map_err(|e| e.to_string()), op,
//!             }),
//!             Output::ReadRoutes => inputs.push(Input::Routes { now, result: Ok(Vec::new()) }),
//!             Output::Route(op) => inputs.push(Input::RouteApplied { now, op, result: Ok(()) }),
//!             Output::Event(event) => println!("{event}"),
//!             Output::Timeout(deadline) => {
//!                 if inputs.is_empty() {
//!                     now = deadline;
//!                     inputs.push(Input::Timeout(now));
//!                 }
//!                 break;
//!             }
//!         }
//!     }
//!     for input in inputs.drain(..) {
//!         engine.handle_input(input);
//!     }
//! }
//! assert_eq!(kernel.dest_count(), 1, "the server passed its probe and entered the table");
//! ```
//!
//! The kernel side is reconciled level-triggered: every snapshot is compared afresh with the
//! desired table, so entries changed by anyone else are repaired, and a failed operation is
//! retried with backoff until the table converges.
#![warn(missing_docs)]

pub mod admin;
pub mod announce;
pub mod config;
pub mod desired;
pub mod diff;
pub mod engine;
pub mod event;
pub mod health;
pub mod op;
mod reason;
pub mod rng;
pub mod save;
pub mod sync;
pub mod table;
pub mod text;
pub mod time;
pub mod what_if;

pub use config::{Config, ConfigError};
pub use diff::diff;
pub use engine::{
    Engine, Fault, Input, Output, ProbeFaultStatus, ProbeId, ProbeRequest, ServerStatus,
};
pub use event::{Event, EventKind};
pub use health::{Health, ProbeOutcome, Verdict};
pub use op::{ApplyError, Op, Target};
pub use save::{parse_save, render_save};
pub use sync::{SyncDaemon, SyncOp, SyncRole, SyncStatus, SyncWhy};
pub use table::{
    Counters, DestCounters, DestParams, Family, Forward, Persistence, Protocol, SchedFlags,
    ServiceEntry, ServiceKey, ServiceParams, SkippedService, Stats, SyncRefusal, Table,
};
pub use time::Instant;
pub use what_if::what_if;
