//! The table there should be: from configuration, health and policy, one service at a time.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::{FailureAction, FallbackMode, NewServers, VirtualService};
use crate::health::Health;
use crate::table::ServiceEntry;

/// Which server of a service: a real server or a fallback, by index in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerRef {
    /// `servers[i]`.
    Real(usize),
    /// `fallbacks[i]`.
    Fallback(usize),
}

/// What the desired table needs to know of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerView {
    /// Its combined health.
    pub health: Health,
    /// Its weight while in service: configured, or reported by a dynamic-weight check.
    pub weight: u32,
    /// Whether it is failed and still draining (weight 0 until its connections end).
    pub draining: bool,
    /// Whether it has no verdict and no probe result at all yet (lvs-hc just started or just
    /// learned of it). Such a server holds back the fallback until its first result: it may
    /// well be healthy, and a sorry page for the first milliseconds helps nobody.
    pub pending: bool,
    /// What its administrative state leaves of it (see [`crate::admin`]).
    pub admin: AdminView,
}

/// What a server's administrative state leaves of it, whatever its health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminView {
    /// Enabled: in or out by health.
    InService,
    /// Drained by an operator, a maintenance file or its agent, connections not yet ended:
    /// weight 0, not counted healthy.
    Draining,
    /// Disabled, or its drain is over: out, not counted healthy.
    Out,
}

/// A service's desired entry, and how many real servers counted as healthy for the quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// The entry the kernel should hold.
    pub entry: ServiceEntry,
    /// Real servers counted as healthy: up, or (waiting for a first verdict) already serving in
    /// the kernel table, or starting in with `new_servers = "in"`.
    pub healthy: usize,
    /// Whether the fallback servers are in.
    pub fallback_in: bool,
    /// The destinations of [`Self::entry`] held at weight 0 by policy (failed, draining,
    /// drained by an operator), with their weight in service: the `last_weight` an `mh`
    /// service must give them on every director (see [`crate::engine`]). Destinations kept at
    /// weight 0 only because the kernel has them so (no verdict yet) are not here.
    pub seats: BTreeMap<SocketAddr, u32>,
    /// Whether some destination of [`Self::entry`] is there only because the kernel has it
    /// (a server or fallback without a verdict yet): deleted, it would not come back before
    /// its verdict, so nothing that deletes and re-adds may touch the service meanwhile.
    pub awaiting_verdicts: bool,
}

/// What `svc` should look like in the kernel.
///
/// - Servers an operator, a maintenance file or an agent took out are out, or at weight 0
///   while they drain (unless they fail meanwhile: the failure policy applies then), and are
///   not counted healthy, whatever their health.
/// - Up servers are in at their weight.
/// - Servers without a verdict yet stay as the kernel has them (`believed`): nothing is removed
///   that is not known to be failed, nothing added that has not passed (restart safety). With
///   `new_servers = "in"` they are in.
/// - Failed servers are removed, kept at weight 0, or kept at weight 0 while draining.
/// - Fallbacks (those that are up, or have no checks) are in exactly when fewer than `quorum`
///   real servers are healthy, counting servers not yet probed at all as healthy; with
///   `fallback_mode = "exclusive"` the real servers leave then.
pub fn desired_service(
    svc: &VirtualService,
    believed: Option<&ServiceEntry>,
    view: impl Fn(ServerRef) -> ServerView,
) -> DesiredService {
    let mut reals = Vec::with_capacity(svc.servers.len());
    let mut seats = BTreeMap::new();
    let mut awaiting_verdicts = false;
    let mut healthy = 0;
    let mut pending = 0;
    for (i, server) in svc.servers.iter().enumerate() {
        let v = view(ServerRef::Real(i));
        match v.admin {
            AdminView::InService => {}
            // Weight 0 while its connections end, unless it fails meanwhile: then the
            // failure policy applies, as to any failed server (a dead server is not drained).
            AdminView::Draining => {
                let params = match (v.health, svc.on_failure) {
                    (Health::Down, FailureAction::Remove) => None,
                    (Health::Down, FailureAction::Drain { .. }) if !v.draining => None,
                    _ => Some(server.dest_params(0)),
                };
                if params.is_some() {
                    seats.insert(server.addr, v.weight);
                }
                reals.push((server.addr, params));
                continue;
            }
            AdminView::Out => {
                reals.push((server.addr, None));
                continue;
            }
        }
        let counted_before = healthy;
        let params = match v.health {
            Health::Up => {
                healthy += 1;
                Some(server.dest_params(v.weight))
            }
            Health::Unknown => match svc.new_servers {
                NewServers::In => {
                    healthy += 1;
                    Some(server.dest_params(v.weight))
                }
                NewServers::Wait => {
                    let kept = believed.and_then(|b| b.dests.get(&server.addr)).copied();
                    awaiting_verdicts |= kept.is_some();
                    if kept.is_some_and(|p| p.weight > 0) {
                        healthy += 1;
                    }
                    kept
                }
            },
            Health::Down => {
                let params = match svc.on_failure {
                    FailureAction::Remove => None,
                    FailureAction::Zero => Some(server.dest_params(0)),
                    FailureAction::Drain { .. } => v.draining.then(|| server.dest_params(0)),
                };
                if params.is_some() {
                    seats.insert(server.addr, v.weight);
                }
                params
            }
        };
        if v.pending && healthy == counted_before {
            pending += 1;
        }
        reals.push((server.addr, params));
    }

    let mut dests = BTreeMap::new();
    let mut fallback_in = false;
    // Servers not probed yet hold the fallback back, but never take out one that serves.
    let serving = |addr| {
        believed
            .and_then(|b: &ServiceEntry| b.dests.get(addr))
            .copied()
    };
    let fallback_serving = svc.fallbacks.iter().any(|f| serving(&f.addr).is_some());
    if healthy < svc.quorum && (healthy + pending < svc.quorum || fallback_serving) {
        for (i, fb) in svc.fallbacks.iter().enumerate() {
            let v = view(ServerRef::Fallback(i));
            match v.admin {
                AdminView::InService => {}
                // Drained: weight 0 while its connections end; no sorry page from it.
                AdminView::Draining => {
                    dests.insert(fb.addr, fb.dest_params(0));
                    seats.insert(fb.addr, v.weight);
                    continue;
                }
                AdminView::Out => continue,
            }
            let params = match v.health {
                Health::Up => Some(fb.dest_params(v.weight)),
                // No verdict yet on a fallback with checks: keep it as the kernel has it.
                Health::Unknown => {
                    awaiting_verdicts |= serving(&fb.addr).is_some();
                    serving(&fb.addr)
                }
                Health::Down => None,
            };
            if let Some(p) = params {
                dests.insert(fb.addr, p);
                fallback_in = true;
            }
        }
    }
    let exclusive = fallback_in && svc.fallback_mode == FallbackMode::Exclusive;
    if !exclusive {
        for (addr, params) in reals {
            if let Some(p) = params {
                dests.insert(addr, p);
            }
        }
    }
    seats.retain(|addr, _| dests.get(addr).is_some_and(|p| p.weight == 0));
    DesiredService {
        entry: ServiceEntry::new(svc.params.clone(), dests),
        healthy,
        fallback_in,
        seats,
        awaiting_verdicts,
    }
}
