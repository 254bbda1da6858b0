//! One-shot planning: what would the engine do to this table if these servers were down?

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::config::{Config, FailureAction, Manage};
use crate::desired::{desired_service, ServerRef, ServerView};
use crate::diff::diff_service;
use crate::health::Health;
use crate::op::Op;
use crate::table::Table;

/// The operations that make `actual` match `config` when every real server is healthy except
/// those in `down` (fallbacks are taken as healthy).
///
/// A down server that the policy drains and that is still in `actual` is planned at weight 0:
/// without live counters the drain is taken to be in progress.
pub fn plan(config: &Config, actual: &Table, down: &BTreeSet<SocketAddr>) -> Vec<Op> {
    let mut ops = Vec::new();
    for svc in &config.services {
        let have = actual.services.get(&svc.key);
        let view = |r: ServerRef| {
            let server = match r {
                ServerRef::Real(i) => &svc.servers[i],
                ServerRef::Fallback(i) => &svc.fallbacks[i],
            };
            let is_down = matches!(r, ServerRef::Real(_)) && down.contains(&server.addr);
            let draining = is_down
                && matches!(svc.on_failure, FailureAction::Drain { .. })
                && have.is_some_and(|h| h.dests.contains_key(&server.addr));
            ServerView {
                health: if is_down { Health::Down } else { Health::Up },
                weight: server.weight,
                draining,
                pending: false,
            }
        };
        let desired = desired_service(svc, have, view);
        diff_service(&svc.key, Some(&desired.entry), have, &mut ops);
    }
    if config.daemon.manage == Manage::All {
        let keys = config.service_keys();
        for (key, entry) in &actual.services {
            if !keys.contains(key) {
                diff_service(key, None, Some(entry), &mut ops);
            }
        }
    }
    ops
}
