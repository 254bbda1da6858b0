//! What a finished run shows: how fast each server's faults and recoveries were noticed, and
//! the report `lvs-hc simulate` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use lvs_hc_core::{EventKind, Health};

use super::fmt_t;
use super::schedule::{Action, FaultSchedule};
use super::servers::Behaviour;
use super::world::World;

/// How `lvs-hc simulate` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// The schedule, the timeline and a latency table, for people.
    Text,
    /// The same as one JSON document, for programs.
    Json,
}

/// Detection and recovery latencies of one server, from a finished run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latencies {
    /// Time from a server going bad to lvs-hc declaring it down.
    pub detection: Vec<Duration>,
    /// Time from a server coming back to lvs-hc declaring it up.
    pub recovery: Vec<Duration>,
}

/// A change in a server's condition: scheduled, or seen by the engine.
struct Mark {
    at: Duration,
    by: Observer,
    server: SocketAddr,
    condition: Condition,
}

/// Who marks a change. At the same instant, the schedule's change comes first: the engine
/// can only have seen what had happened.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Observer {
    Schedule,
    Engine,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Condition {
    Good,
    Bad,
}

/// Matches each fault in the schedule with the transition that followed it.
pub fn latencies(schedule: &FaultSchedule, world: &World) -> BTreeMap<SocketAddr, Latencies> {
    let mut marks: Vec<Mark> = Vec::new();
    let condition = |good: bool| {
        if good {
            Condition::Good
        } else {
            Condition::Bad
        }
    };
    for a in &schedule.actions {
        if let Action::Set(server, b) = a.action {
            marks.push(Mark {
                at: a.at,
                by: Observer::Schedule,
                server,
                condition: condition(b == Behaviour::Healthy),
            });
        }
    }
    for e in &world.events {
        if let EventKind::ServerHealth {
            server,
            to,
            fallback: false,
            ..
        } = &e.event.kind
        {
            marks.push(Mark {
                at: e.at,
                by: Observer::Engine,
                server: *server,
                condition: condition(*to == Health::Up),
            });
        }
    }
    marks.sort_by_key(|m| (m.at, m.by));
    let mut out: BTreeMap<SocketAddr, Latencies> = BTreeMap::new();
    let mut bad_since: BTreeMap<SocketAddr, Duration> = BTreeMap::new();
    let mut good_since: BTreeMap<SocketAddr, Duration> = BTreeMap::new();
    let mut seen_down: BTreeSet<SocketAddr> = BTreeSet::new();
    for Mark {
        at,
        by,
        server: s,
        condition,
    } in marks
    {
        match (by, condition) {
            (Observer::Schedule, Condition::Bad) => {
                bad_since.entry(s).or_insert(at);
                good_since.remove(&s);
            }
            (Observer::Schedule, Condition::Good) => {
                if bad_since.remove(&s).is_some() {
                    good_since.insert(s, at);
                }
            }
            (Observer::Engine, Condition::Bad) => {
                if let Some(since) = bad_since.get(&s) {
                    if seen_down.insert(s) {
                        out.entry(s).or_default().detection.push(at - *since);
                    }
                }
            }
            (Observer::Engine, Condition::Good) => {
                seen_down.remove(&s);
                if let Some(since) = good_since.remove(&s) {
                    out.entry(s).or_default().recovery.push(at - since);
                }
            }
        }
    }
    out
}

/// Formats `[min, median, max]` of durations, or `-`.
pub fn spread(ds: &[Duration]) -> String {
    if ds.is_empty() {
        return "-".into();
    }
    let mut v = ds.to_vec();
    v.sort();
    format!(
        "{} / {} / {}",
        fmt_t(v[0]),
        fmt_t(v[v.len() / 2]),
        fmt_t(v[v.len() - 1])
    )
}

/// The report of a finished run: the schedule, the timeline and each server's latencies.
pub fn render(schedule: &FaultSchedule, world: &World, format: ReportFormat) -> String {
    let lat = latencies(schedule, world);
    match format {
        ReportFormat::Json => render_json(schedule, world, &lat),
        ReportFormat::Text => render_text(schedule, world, &lat),
    }
}

fn render_json(
    schedule: &FaultSchedule,
    world: &World,
    lat: &BTreeMap<SocketAddr, Latencies>,
) -> String {
    let timeline: Vec<serde_json::Value> = world
        .trace
        .iter()
        .map(|l| serde_json::json!({"t": l.at.as_secs_f64(), "what": l.text}))
        .collect();
    let secs = |v: &[Duration]| v.iter().map(Duration::as_secs_f64).collect::<Vec<_>>();
    let servers: Vec<serde_json::Value> = lat
        .iter()
        .map(|(s, l)| {
            serde_json::json!({
                "server": s.to_string(),
                "detection": secs(&l.detection),
                "recovery": secs(&l.recovery),
            })
        })
        .collect();
    let mut doc = serde_json::json!({
        "scenario": schedule.scenario.name(),
        "seed": schedule.seed,
        "duration": schedule.duration.as_secs_f64(),
        "healed_from": schedule.heal_at.as_secs_f64(),
        "timeline": timeline,
        "servers": servers,
    });
    if !schedule.stand_ins.is_empty() {
        let stand_ins: Vec<String> = schedule.stand_ins.iter().map(ToString::to_string).collect();
        doc["stand_ins"] = serde_json::json!(stand_ins);
    }
    serde_json::to_string_pretty(&doc).expect("plain JSON") + "\n"
}

fn render_text(
    schedule: &FaultSchedule,
    world: &World,
    lat: &BTreeMap<SocketAddr, Latencies>,
) -> String {
    let mut out = schedule.describe();
    let _ = writeln!(out, "timeline:");
    let mut trace = world.trace.clone();
    trace.sort_by_key(|l| l.at);
    for l in &trace {
        let _ = writeln!(out, "  t+{:>9}  {}", fmt_t(l.at), l.text);
    }
    let _ = writeln!(out, "latency per server (min / median / max):");
    out.push_str("  server                 faults  detection                      recovery\n");
    for (s, l) in lat {
        let _ = writeln!(
            out,
            "  {:<22} {:>6}  {:<30} {}",
            s.to_string(),
            l.detection.len(),
            spread(&l.detection),
            spread(&l.recovery)
        );
    }
    if lat.is_empty() {
        let _ = writeln!(out, "  (no server went down in this run)");
    }
    out
}
