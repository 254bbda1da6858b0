//! Deterministic simulation of lvs-hc in turmoil: the real driver and probes, simulated real
//! servers that fail on a schedule drawn from a seed, and the strict in-memory IPVS table.
//!
//! One seed fixes everything: the fault schedule, the engine's jitter and turmoil's network
//! randomness. The same seed gives the same trace, byte for byte.
//!
//! A file per job:
//!
//! - `schedule.rs`: the scenarios, and the fault schedule each draws from a seed.
//! - `stand_ins.rs`: what runs in place of the checks the simulator cannot run as configured
//!   (exec programs, certificate verification, ...), each named in the report.
//! - `servers.rs`: the simulated real servers (HTTP, HTTPS, TCP, gRPC health, their agents)
//!   and how they misbehave.
//! - `world.rs`: what the simulated hosts and the controller share: the kernel table, each
//!   server's behaviour, the trace.
//! - `runner.rs`: the turmoil simulation itself, with the schedule applied step by step.
//! - `report.rs`: detection and recovery latencies, and the report `lvs-hc simulate` prints.
//!
//! This lives in the `lvs-hc` library, not in the `lvs-hc-sim` crate (`sim/`), because the
//! `lvs-hc simulate` command runs it and is built from the same package as the library: the
//! library cannot depend on `lvs-hc-sim`, which depends on the library. `sim/` holds the seed
//! sweeps with their safety and liveness checks, built on this module.

mod report;
mod runner;
mod schedule;
mod servers;
mod stand_ins;
mod world;

use std::time::Duration;

pub use report::{latencies, render, spread, Latencies, ReportFormat};
pub use runner::{run_schedule, TurmoilConnect, TurmoilDatagram, DIRECTOR};
pub use schedule::{Action, FaultSchedule, Scenario, ScheduleError, TimedAction, TooShort};
pub use servers::{AgentReply, Behaviour};
pub use stand_ins::StandIn;
pub use world::{
    KernelOps, ProbeRecord, ProbeVerdict, SimBackend, TimedEvent, TraceLine, World, WorldRef,
};

/// `12.345s`: simulated time as the reports print it.
pub fn fmt_t(t: Duration) -> String {
    format!("{}.{:03}s", t.as_secs(), t.subsec_millis())
}
