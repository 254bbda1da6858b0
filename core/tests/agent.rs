//! What an agent (an `agent` check, HAProxy's agent protocol) says takes effect: `N%` scales
//! the weight, `drain` drains, `maint` takes the server out, `ready` ends either, `down` is a
//! failure; an agent that cannot be reached changes nothing.

mod harness;

use std::time::Duration;

use harness::{addr, at, Harness};
use lvs_hc_core::admin::{AdminSource, AdminState};
use lvs_hc_core::{DestCounters, EventKind, ServiceKey, Table};

const RS1: &str = "192.168.0.179:80";
const RS2: &str = "192.168.0.180:80";

fn config(extra: &str) -> String {
    let checks = r#"interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s"

[[service.check]]
type = "agent"
port = 5555
interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s""#;
    harness::seed_config(checks, extra).replace("weight = 2", "weight = 10")
}

fn says(h: &mut Harness, server: &str, line: Option<&str>) {
    h.agents.insert(addr(server), line.map(str::to_string));
}

#[test]
fn a_percentage_scales_the_configured_weight() {
    let mut h = Harness::new(&config(""), Table::new());
    says(&mut h, RS1, Some("up 50%"));
    h.run_until(at(3.0));
    assert_eq!(h.weight_of(RS1), Some(5));
    says(&mut h, RS1, Some("75%"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(8), "75% of 10, rounded");
    says(&mut h, RS1, Some("0%"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(0), "0% keeps it in at weight 0");
}

#[test]
fn drain_then_ready_and_maint_then_ready() {
    let mut h = Harness::new(&config(""), Table::new());
    let key = (ServiceKey::Tcp(addr("192.168.0.101:80")), addr(RS1));
    h.counters.dests.insert(
        key,
        DestCounters {
            active: 4,
            ..Default::default()
        },
    );
    h.run_until(at(3.0));
    assert_eq!(h.weight_of(RS1), Some(10));
    says(&mut h, RS1, Some("drain # deploying"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(0));
    let status = h.engine.status();
    let rs1 = status.iter().find(|s| s.server == addr(RS1)).unwrap();
    assert_eq!(rs1.admin[0].source, AdminSource::Agent);
    assert_eq!(rs1.admin[0].state, AdminState::Drain);
    assert_eq!(rs1.admin[0].reason, "deploying");
    // A reply without an administrative word leaves the drain in force.
    says(&mut h, RS1, Some("up"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(0));
    says(&mut h, RS1, Some("ready"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(10));
    says(&mut h, RS1, Some("maint"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), None, "maint takes it out");
    says(&mut h, RS1, Some("ready"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(10));
}

#[test]
fn an_agent_that_cannot_be_reached_changes_nothing() {
    let mut h = Harness::new(&config(""), Table::new());
    says(&mut h, RS1, Some("60%"));
    h.run_until(at(3.0));
    assert_eq!(h.weight_of(RS1), Some(6));
    says(&mut h, RS1, None);
    h.run_for(Duration::from_secs(10));
    assert_eq!(h.weight_of(RS1), Some(6), "the last word holds");
    says(&mut h, RS1, Some("what?"));
    h.run_for(Duration::from_secs(3));
    assert_eq!(
        h.weight_of(RS1),
        Some(6),
        "nor does a reply it cannot understand"
    );
}

#[test]
fn an_agent_that_says_down_fails_the_server() {
    let mut h = Harness::new(&config(""), Table::new());
    h.run_until(at(3.0));
    says(&mut h, RS2, Some("down # disk full"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS2), None);
    let status = h.engine.status();
    let rs2 = status.iter().find(|s| s.server == addr(RS2)).unwrap();
    assert_eq!(rs2.health, lvs_hc_core::Health::Down);
    assert!(rs2.reason.contains("disk full"), "{}", rs2.reason);
}

#[test]
fn an_operators_disable_outranks_the_agents_drain() {
    let mut h = Harness::new(&config(""), Table::new());
    h.run_until(at(3.0));
    says(&mut h, RS1, Some("drain"));
    h.run_for(Duration::from_secs(2));
    h.admin(RS1, AdminSource::Operator, AdminState::Disabled, "");
    h.run_for(Duration::from_millis(10));
    assert_eq!(h.weight_of(RS1), None);
    says(&mut h, RS1, Some("ready"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), None, "the operator's disable holds");
}

#[test]
fn agent_percentage_and_slow_start_combine_by_the_one_rule() {
    let mut h = Harness::new(&config("slow_start = \"10s\""), Table::new());
    says(&mut h, RS1, Some("50%"));
    h.run_until(at(3.0));
    assert_eq!(h.weight_of(RS1), Some(5));
    says(&mut h, RS1, Some("maint"));
    h.run_for(Duration::from_secs(2));
    says(&mut h, RS1, Some("ready 50%"));
    h.run_for(Duration::from_millis(1500));
    assert_eq!(h.weight_of(RS1), Some(1), "ramping from weight 1");
    h.run_for(Duration::from_secs(12));
    assert_eq!(h.weight_of(RS1), Some(5), "full weight is 50% of 10");
}

#[test]
fn a_server_whose_agent_never_answers_serves_on_its_other_checks() {
    let mut h = Harness::new(&config(""), Table::new());
    says(&mut h, RS1, None);
    says(&mut h, RS2, Some("nonsense"));
    h.run_until(at(3.0));
    assert_eq!(h.weight_of(RS1), Some(10), "in on its http check alone");
    assert_eq!(h.weight_of(RS2), Some(1));
    let status = h.engine.status();
    assert!(status
        .iter()
        .filter(|s| !s.fallback)
        .all(|s| s.health == lvs_hc_core::Health::Up));
}

#[test]
fn an_agent_check_edited_by_a_reload_keeps_its_agents_word() {
    let mut h = Harness::new(&config(""), Table::new());
    h.run_until(at(3.0));
    says(&mut h, RS1, Some("maint"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), None);
    h.applied.clear();
    // The agent check's interval changes: a new probe, the same agent.
    let edited = config("").replace(
        "port = 5555\ninterval = \"1s\"",
        "port = 5555\ninterval = \"2s\"",
    );
    assert_ne!(edited, config(""));
    h.reload(&edited);
    h.run_for(Duration::from_millis(10));
    assert!(
        h.applied_lines()
            .iter()
            .all(|l| !l.contains("192.168.0.179")),
        "the server in maintenance came back: {:?}",
        h.applied_lines()
    );
}

#[test]
fn an_agent_check_removed_by_a_reload_ends_its_drain_at_once() {
    let mut h = Harness::new(&config(""), Table::new());
    let key = (ServiceKey::Tcp(addr("192.168.0.101:80")), addr(RS1));
    h.counters.dests.insert(
        key,
        DestCounters {
            active: 4,
            ..Default::default()
        },
    );
    h.run_until(at(3.0));
    says(&mut h, RS1, Some("drain"));
    h.run_for(Duration::from_secs(2));
    assert_eq!(h.weight_of(RS1), Some(0));
    let without_agent = harness::seed_config(
        "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\njitter = \"0s\"",
        "",
    )
    .replace("weight = 2", "weight = 10");
    h.reload(&without_agent);
    h.run_for(Duration::from_millis(10));
    assert_eq!(h.weight_of(RS1), Some(10), "no agent, no drain");
    h.run_for(Duration::from_secs(400));
    assert!(
        h.event_lines()
            .iter()
            .all(|l| !l.contains("drain of 192.168.0.179:80 finished")),
        "a drain that ended with the reload reports no end later"
    );
}

#[test]
fn an_agents_changing_description_is_kept_but_not_reported_each_time() {
    let mut h = Harness::new(&config(""), Table::new());
    h.run_until(at(3.0));
    for load in 0..5 {
        says(&mut h, RS1, Some(&format!("up 50% # load 0.{load}")));
        h.run_for(Duration::from_secs(1));
    }
    h.run_for(Duration::from_secs(1));
    let reported = h
        .events
        .iter()
        .filter(
            |e| matches!(&e.kind, EventKind::AgentReported { server, .. } if *server == addr(RS1)),
        )
        .count();
    assert_eq!(
        reported,
        2,
        "`up` at first, then `up 50%`: {:?}",
        h.event_lines()
    );
    let status = h.engine.status();
    let rs1 = status.iter().find(|s| s.server == addr(RS1)).unwrap();
    assert_eq!(
        rs1.agent.as_ref().unwrap().text,
        "load 0.4",
        "the last words are kept"
    );
}
