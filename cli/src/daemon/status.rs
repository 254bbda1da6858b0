//! `/status`: every service, server and check as JSON.

use lvs_hc_core::{Engine, ProbeOutcome};
use serde_json::{json, Value};

use super::metrics::result_name;

/// The engine's part of `/status`: `{"services": [...]}` with every server and check.
pub fn engine_status(engine: &Engine) -> Value {
    let now = engine.now();
    let table = engine.believed_table();
    let counters = engine.counters();
    let status = engine.status();
    let mut services = Vec::new();
    for svc in &engine.config().services {
        let entry = table.and_then(|t| t.services.get(&svc.key));
        let desired = engine.desired(&svc.key);
        let servers: Vec<Value> = status
            .iter()
            .filter(|s| s.service == svc.key)
            .map(|s| {
                let dest = entry.and_then(|e| e.dests.get(&s.server));
                let conns = counters.dests.get(&(svc.key, s.server));
                let checks: Vec<Value> = s
                    .checks
                    .iter()
                    .map(|(label, last)| {
                        let last = last.as_ref().map(|(at, outcome)| {
                            let reason = match outcome {
                                ProbeOutcome::Pass { .. } => None,
                                ProbeOutcome::Fail { reason }
                                | ProbeOutcome::Inconclusive { reason } => Some(reason.clone()),
                            };
                            json!({
                                "result": result_name(outcome),
                                "reason": reason,
                                "seconds_ago": now.saturating_since(*at).as_secs_f64(),
                            })
                        });
                        json!({ "check": label, "last": last })
                    })
                    .collect();
                json!({
                    "address": s.server.to_string(),
                    "fallback": s.fallback,
                    "health": s.health.as_str(),
                    "reason": s.reason,
                    "since_seconds_ago": now.saturating_since(s.since).as_secs_f64(),
                    "weight": s.weight,
                    "draining": s.draining,
                    "in_table": dest.is_some(),
                    "desired_weight": desired
                        .as_ref()
                        .and_then(|d| d.entry.dests.get(&s.server))
                        .map(|d| d.weight),
                    "kernel_weight": dest.map(|d| d.weight),
                    "forward": dest.map(|d| d.forward.label()),
                    "active_conns": conns.map(|c| c.active),
                    "inactive_conns": conns.map(|c| c.inactive),
                    "checks": checks,
                })
            })
            .collect();
        let fallback_active = svc
            .fallbacks
            .iter()
            .any(|f| entry.is_some_and(|e| e.dests.get(&f.addr).is_some_and(|d| d.weight > 0)));
        services.push(json!({
            "service": svc.key.to_string(),
            "name": svc.name,
            "scheduler": svc.params.scheduler,
            "in_table": entry.is_some(),
            "fallback_active": fallback_active,
            "quorum": svc.quorum,
            "servers": servers,
        }));
    }
    json!({
        "has_snapshot": engine.has_snapshot(),
        "pending_operations": engine.pending_ops(),
        "services": services,
    })
}
