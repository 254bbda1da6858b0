//! Announcing the virtual addresses (`[announce]`), as values.
//!
//! Several directors behind a router that spreads flows over them by ECMP each announce a VIP
//! (over BGP, through BIRD) only while they can serve it. lvs-hc's part is a host route per VIP
//! (`/32` or `/128`, `dev lo`) in a kernel routing table it owns, marked with its own
//! `rtm_protocol`: BIRD's kernel protocol (`kernel table 100; learn;`) imports exactly these and
//! a BGP export filter passes them on.
//!
//! - [`ServiceReadiness`]: a service is *ready* while at least `max(quorum, 1)` of its real
//!   servers are healthy and in service (fallbacks do not count: a service on its sorry server
//!   is not ready). Firewall-mark services have no address and are never announced.
//! - [`plan`]: per VIP of the address-based services, whether it should be announced (`any`
//!   or `all` of its services ready, [`Require`]) and why, in words.
//! - [`AnnounceKeeper`]: from the routes read from the kernel (only ours: our table and our
//!   protocol), the next route to add or delete, one at a time, a failure retried with the
//!   engine's doubling backoff. Level-triggered like the IPVS table: a route of ours that
//!   should not be there is deleted, whoever added it; routes of other protocols are never
//!   read, so never touched.
//!
//! The driver, not the engine, carries out route operations: they change nothing the engine
//! decides, and the daemon must be able to withdraw them without the engine (its watchdog,
//! when the engine stalls; `lvs-hc withdraw` after a crash). The keeper stays pure: the driver
//! feeds it plans, reads and results, and the current time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::{AnnounceSettings, Require};
use crate::table::ServiceKey;
use crate::time::{format_duration, Instant};

/// Whether one configured service can serve, for announcing its VIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceReadiness {
    /// The service.
    pub service: ServiceKey,
    /// Its real servers that are healthy and in service (not disabled, not draining).
    pub healthy: usize,
    /// Its real servers (fallbacks not counted).
    pub servers: usize,
    /// Its configured quorum.
    pub quorum: usize,
    /// Its real servers in service that have no verdict yet (lvs-hc just started, or just
    /// learned of them). While any has none, the service is not ready: the table may still
    /// lack a server the other directors have, and with `sh` or `mh` a director whose table
    /// differs sends the flows it attracts to other servers.
    pub awaiting: usize,
}

impl ServiceReadiness {
    /// Healthy servers needed: `max(quorum, 1)`.
    pub fn needed(&self) -> usize {
        self.quorum.max(1)
    }

    /// The VIP this service is announced under; `None` for a firewall-mark service.
    pub fn vip(&self) -> Option<IpAddr> {
        self.service.inet_parts().map(|(_, a)| a.ip())
    }

    /// Whether it is ready: address-based, with at least [`ServiceReadiness::needed`] healthy
    /// servers and a verdict on every server in service.
    pub fn ready(&self) -> bool {
        self.vip().is_some() && self.awaiting == 0 && self.healthy >= self.needed()
    }

    /// Why it is or is not ready: `2 healthy of 2 (quorum 1)`, or for a firewall-mark service
    /// that it is never announced.
    pub fn why(&self) -> String {
        if self.vip().is_none() {
            return "a firewall-mark service has no address to announce".to_string();
        }
        let counted = format!(
            "{} healthy of {} (quorum {})",
            self.healthy,
            self.servers,
            self.needed()
        );
        match self.awaiting {
            0 => counted,
            n => format!("{counted}, {n} awaiting a first verdict"),
        }
    }
}

/// Whether one VIP should be announced, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipPlan {
    /// The virtual address.
    pub vip: IpAddr,
    /// Whether its services justify announcing it.
    pub ready: bool,
    /// Why, in words: `2 of 2 services ready`, `TCP 10.0.0.1:80 has 0 healthy of 2 (quorum 1)`.
    pub why: String,
}

/// Per VIP of the address-based services in `services`, in address order: whether it should be
/// announced under `require`, and why.
pub fn plan(services: &[ServiceReadiness], require: Require) -> Vec<VipPlan> {
    let mut by_vip: BTreeMap<IpAddr, Vec<&ServiceReadiness>> = BTreeMap::new();
    for s in services {
        if let Some(vip) = s.vip() {
            by_vip.entry(vip).or_default().push(s);
        }
    }
    by_vip
        .into_iter()
        .map(|(vip, svcs)| {
            let ready = svcs.iter().filter(|s| s.ready()).count();
            let ok = match require {
                Require::Any => ready > 0,
                Require::All => ready == svcs.len(),
            };
            let why = if ok {
                format!("{ready} of {} services ready", svcs.len())
            } else {
                let not: Vec<String> = svcs
                    .iter()
                    .filter(|s| !s.ready())
                    .map(|s| format!("{} has {}", s.service, s.why()))
                    .collect();
                if svcs.len() == 1 {
                    not.join("")
                } else {
                    format!(
                        "{ready} of {} services ready ({} needed): {}",
                        svcs.len(),
                        require.name(),
                        not.join("; ")
                    )
                }
            };
            VipPlan {
                vip,
                ready: ok,
                why,
            }
        })
        .collect()
}

/// One host route lvs-hc announces a VIP with: `<vip>/32` (or `/128`) `dev lo` in `table`,
/// marked with `protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    /// The VIP (the route's destination, a host prefix).
    pub vip: IpAddr,
    /// The routing table.
    pub table: u32,
    /// The `rtm_protocol`.
    pub protocol: u8,
}

impl Route {
    /// The route of `vip` under `settings`.
    pub fn of(vip: IpAddr, settings: &AnnounceSettings) -> Route {
        Route {
            vip,
            table: settings.table,
            protocol: settings.protocol,
        }
    }

    /// The prefix length of a host route: 32 or 128.
    pub fn prefix_len(&self) -> u8 {
        match self.vip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }
}

impl fmt::Display for Route {
    /// `10.0.0.1/32 dev lo table 100 proto 99`, as `ip route` takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} dev lo table {} proto {}",
            self.vip,
            self.prefix_len(),
            self.table,
            self.protocol
        )
    }
}

/// One change to the announced routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteOp {
    /// Add the route (`RTM_NEWROUTE` with `NLM_F_CREATE | NLM_F_EXCL`).
    Add(Route),
    /// Delete the route (`RTM_DELROUTE`).
    Del(Route),
}

impl RouteOp {
    /// The route acted on.
    pub fn route(&self) -> Route {
        match *self {
            RouteOp::Add(r) | RouteOp::Del(r) => r,
        }
    }

    /// `add` or `del`: the `op` label of `lvs_hc_announce_operations_total`.
    pub fn name(&self) -> &'static str {
        match self {
            RouteOp::Add(_) => "add",
            RouteOp::Del(_) => "del",
        }
    }
}

impl fmt::Display for RouteOp {
    /// The equivalent command: `ip route add 10.0.0.1/32 dev lo table 100 proto 99`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip route {} {}", self.name(), self.route())
    }
}

/// A failed route operation, while it waits for its retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteFailure {
    /// The operation that failed.
    pub op: RouteOp,
    /// The adapter's error.
    pub error: String,
    /// Consecutive failures so far.
    pub attempts: u32,
    /// When it is tried again.
    pub retry_at: Instant,
}

/// What lvs-hc shows of one VIP: announced or not, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipStatus {
    /// The virtual address.
    pub vip: IpAddr,
    /// Whether its route is in the kernel (as last read, and changed by lvs-hc since).
    pub announced: bool,
    /// Why: the plan's reason, or what keeps the route from matching it.
    pub why: String,
}

/// Keeps lvs-hc's routes as the plans ask, level-triggered: from each read of our routes it
/// works out the next add or delete, one at a time, and retries a failure with backoff.
#[derive(Clone, Debug, Default)]
pub struct AnnounceKeeper {
    settings: Option<AnnounceSettings>,
    plans: Vec<VipPlan>,
    seen: Option<BTreeSet<Route>>,
    in_flight: Option<RouteOp>,
    failure: Option<RouteFailure>,
    mode: Mode,
}

/// What the keeper works towards, beyond the plans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// The plans.
    #[default]
    Plans,
    /// Nothing: the watchdog withdrew everything while the engine was silent; the plans apply
    /// again once the driver says the engine runs ([`AnnounceKeeper::resume`]).
    Stalled,
    /// Nothing: lvs-hc is leaving.
    Withdrawing,
}

impl AnnounceKeeper {
    /// A keeper for `settings` (`None`: announce nothing, and delete nothing either).
    pub fn new(settings: Option<AnnounceSettings>) -> AnnounceKeeper {
        AnnounceKeeper {
            settings,
            ..AnnounceKeeper::default()
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> Option<&AnnounceSettings> {
        self.settings.as_ref()
    }

    /// A reload: new settings. With another table or protocol the routes read so far are
    /// not ours any more: the routes of the old ones must be deleted by the caller (it still
    /// knows them), and the next read decides again. A failure's backoff is cleared.
    pub fn configure(&mut self, settings: Option<AnnounceSettings>) {
        let same_place = |a: &Option<AnnounceSettings>, b: &Option<AnnounceSettings>| {
            a.map(|s| (s.table, s.protocol)) == b.map(|s| (s.table, s.protocol))
        };
        if !same_place(&self.settings, &settings) {
            self.seen = None;
            self.in_flight = None;
        }
        if self.settings != settings {
            self.failure = None;
        }
        self.settings = settings;
    }

    /// What the services justify now (see [`plan`]).
    pub fn want(&mut self, plans: Vec<VipPlan>) {
        self.plans = plans;
    }

    /// The engine stalled and the watchdog withdrew every route behind the keeper's back:
    /// nothing is wanted until [`AnnounceKeeper::resume`], and the routes must be read again.
    pub fn stall(&mut self) {
        if self.mode == Mode::Plans {
            self.mode = Mode::Stalled;
        }
        self.seen = None;
        self.in_flight = None;
    }

    /// The engine runs again: the plans apply.
    pub fn resume(&mut self) {
        if self.mode == Mode::Stalled {
            self.mode = Mode::Plans;
        }
    }

    /// Whether the keeper holds routes back because the engine stalled.
    pub fn stalled(&self) -> bool {
        self.mode == Mode::Stalled
    }

    /// lvs-hc is leaving: every route goes.
    pub fn withdraw(&mut self) {
        self.mode = Mode::Withdrawing;
        self.failure = None;
    }

    /// Our routes as a read shows them. Routes of another table or protocol are not ours and
    /// are ignored, should a reader pass them on.
    pub fn observe(&mut self, routes: impl IntoIterator<Item = Route>) {
        let Some(s) = self.settings else {
            return;
        };
        self.seen = Some(
            routes
                .into_iter()
                .filter(|r| r.table == s.table && r.protocol == s.protocol)
                .collect(),
        );
    }

    /// Whether a read is due: none since the start, a stall or a reload.
    pub fn needs_read(&self) -> bool {
        self.settings.is_some() && self.seen.is_none()
    }

    /// Whether nothing is left to do: read, nothing in flight, the routes as wanted.
    pub fn settled(&self) -> bool {
        self.settings.is_none()
            || (self.in_flight.is_none() && self.seen.is_some() && self.next_op().is_none())
    }

    /// When a failed operation is tried again, while one waits.
    pub fn retry_at(&self) -> Option<Instant> {
        self.failure.as_ref().map(|f| f.retry_at)
    }

    /// The failure waiting for its retry, if any.
    pub fn failure(&self) -> Option<&RouteFailure> {
        self.failure.as_ref()
    }

    /// The routes wanted now: one per ready VIP, none while stalled or withdrawing.
    pub fn wanted(&self) -> BTreeSet<Route> {
        let Some(settings) = &self.settings else {
            return BTreeSet::new();
        };
        if self.mode != Mode::Plans {
            return BTreeSet::new();
        }
        self.plans
            .iter()
            .filter(|p| p.ready)
            .map(|p| Route::of(p.vip, settings))
            .collect()
    }

    /// The next operation to carry out at `now`: none while one is in flight, before the
    /// first read, or while a failure waits for its retry. Deletes come before adds.
    pub fn next(&mut self, now: Instant) -> Option<RouteOp> {
        if self.in_flight.is_some() || self.retry_at().is_some_and(|at| now < at) {
            return None;
        }
        let op = self.next_op()?;
        self.in_flight = Some(op);
        Some(op)
    }

    fn next_op(&self) -> Option<RouteOp> {
        let seen = self.seen.as_ref()?;
        let wanted = self.wanted();
        if let Some(r) = seen.difference(&wanted).next() {
            return Some(RouteOp::Del(*r));
        }
        wanted.difference(seen).next().map(|r| RouteOp::Add(*r))
    }

    /// The result of the operation [`AnnounceKeeper::next`] gave: on a failure, how long until
    /// it is tried again (`backoff` of the consecutive failures so far). An add that finds the
    /// route there (`EEXIST`) or a delete that finds it gone (`ESRCH`) is the caller's to
    /// report as success.
    pub fn applied(
        &mut self,
        now: Instant,
        op: RouteOp,
        result: Result<(), String>,
        backoff: impl Fn(u32) -> Duration,
    ) -> Result<(), Duration> {
        if self.in_flight == Some(op) {
            self.in_flight = None;
        }
        match result {
            Ok(()) => {
                self.failure = None;
                if let Some(seen) = self.seen.as_mut() {
                    match op {
                        RouteOp::Add(r) => seen.insert(r),
                        RouteOp::Del(r) => seen.remove(&r),
                    };
                }
                Ok(())
            }
            Err(error) => {
                let attempts = match &self.failure {
                    Some(f) if f.op == op => f.attempts.saturating_add(1),
                    _ => 1,
                };
                let retry_in = backoff(attempts);
                self.failure = Some(RouteFailure {
                    op,
                    error,
                    attempts,
                    retry_at: now + retry_in,
                });
                Err(retry_in)
            }
        }
    }

    /// Per VIP: announced or not, and why. Empty without `[announce]`.
    pub fn status(&self, now: Instant) -> Vec<VipStatus> {
        let Some(settings) = &self.settings else {
            return Vec::new();
        };
        self.plans
            .iter()
            .map(|p| {
                let route = Route::of(p.vip, settings);
                let announced = self.seen.as_ref().is_some_and(|s| s.contains(&route));
                let failed = self.failure.as_ref().filter(|f| f.op.route() == route);
                let why = match (self.mode, failed) {
                    (Mode::Stalled, _) => "engine stalled: withdrawn by the watchdog".to_string(),
                    (Mode::Withdrawing, _) => "lvs-hc is leaving".to_string(),
                    (Mode::Plans, Some(f)) => format!(
                        "{}; route {} failed: {} (attempt {}, again in {})",
                        p.why,
                        f.op.name(),
                        f.error,
                        f.attempts,
                        format_duration(f.retry_at.saturating_since(now))
                    ),
                    (Mode::Plans, None) if self.seen.is_none() => {
                        format!("{}; routes not read yet", p.why)
                    }
                    (Mode::Plans, None) => p.why.clone(),
                };
                VipStatus {
                    vip: p.vip,
                    announced,
                    why,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Protocol;

    fn settings() -> AnnounceSettings {
        AnnounceSettings {
            table: 100,
            protocol: 99,
            stall_timeout: Duration::from_secs(5),
            require: Require::Any,
        }
    }

    fn tcp(addr: &str, healthy: usize, servers: usize, quorum: usize) -> ServiceReadiness {
        ServiceReadiness {
            service: ServiceKey::inet(Protocol::Tcp, addr.parse().unwrap()),
            healthy,
            servers,
            quorum,
            awaiting: 0,
        }
    }

    fn route(vip: &str) -> Route {
        Route::of(vip.parse().unwrap(), &settings())
    }

    fn backoff(attempts: u32) -> Duration {
        Duration::from_secs(1) * attempts
    }

    #[test]
    fn a_service_needs_one_healthy_server_even_with_quorum_zero() {
        assert!(!tcp("10.0.0.1:80", 0, 2, 0).ready());
        assert!(tcp("10.0.0.1:80", 1, 2, 0).ready());
        assert!(!tcp("10.0.0.1:80", 1, 3, 2).ready());
        assert_eq!(
            tcp("10.0.0.1:80", 1, 3, 2).why(),
            "1 healthy of 3 (quorum 2)"
        );
    }

    #[test]
    fn a_service_waits_for_a_verdict_on_every_server_before_it_is_ready() {
        let waiting = ServiceReadiness {
            awaiting: 1,
            ..tcp("10.0.0.1:80", 3, 4, 1)
        };
        assert!(!waiting.ready());
        assert_eq!(
            waiting.why(),
            "3 healthy of 4 (quorum 1), 1 awaiting a first verdict"
        );
    }

    #[test]
    fn a_firewall_mark_service_is_never_ready_and_has_no_vip() {
        let fwm = ServiceReadiness {
            service: ServiceKey::Fwmark {
                mark: 1,
                family: crate::table::Family::Ipv4,
            },
            healthy: 3,
            servers: 3,
            quorum: 1,
            awaiting: 0,
        };
        assert!(!fwm.ready());
        assert!(plan(std::slice::from_ref(&fwm), Require::Any).is_empty());
        assert_eq!(
            fwm.why(),
            "a firewall-mark service has no address to announce"
        );
    }

    #[test]
    fn any_announces_a_vip_with_one_ready_service_and_all_needs_every_one() {
        let svcs = [tcp("10.0.0.1:80", 2, 2, 1), tcp("10.0.0.1:443", 0, 2, 1)];
        let any = plan(&svcs, Require::Any);
        assert_eq!(
            any,
            vec![VipPlan {
                vip: "10.0.0.1".parse().unwrap(),
                ready: true,
                why: "1 of 2 services ready".into()
            }]
        );
        let all = plan(&svcs, Require::All);
        assert!(!all[0].ready);
        assert_eq!(
            all[0].why,
            "1 of 2 services ready (all needed): TCP 10.0.0.1:443 has 0 healthy of 2 (quorum 1)"
        );
        let one = plan(&[tcp("10.0.0.2:80", 0, 2, 1)], Require::Any);
        assert_eq!(one[0].why, "TCP 10.0.0.2:80 has 0 healthy of 2 (quorum 1)");
    }

    #[test]
    fn route_op_reads_as_the_ip_route_command() {
        assert_eq!(
            RouteOp::Add(route("10.0.0.1")).to_string(),
            "ip route add 10.0.0.1/32 dev lo table 100 proto 99"
        );
        assert_eq!(
            RouteOp::Del(route("fd00::1")).to_string(),
            "ip route del fd00::1/128 dev lo table 100 proto 99"
        );
    }

    fn keeper(ready: &[(&str, bool)]) -> AnnounceKeeper {
        let mut k = AnnounceKeeper::new(Some(settings()));
        k.want(
            ready
                .iter()
                .map(|(vip, ready)| VipPlan {
                    vip: vip.parse().unwrap(),
                    ready: *ready,
                    why: String::new(),
                })
                .collect(),
        );
        k
    }

    #[test]
    fn nothing_is_done_before_the_first_read() {
        let mut k = keeper(&[("10.0.0.1", true)]);
        assert!(k.needs_read());
        assert_eq!(k.next(Instant::ZERO), None);
    }

    #[test]
    fn stray_routes_go_first_then_ready_vips_are_added_one_at_a_time() {
        let mut k = keeper(&[("10.0.0.1", true), ("10.0.0.2", false)]);
        k.observe([route("10.0.0.2"), route("10.0.0.9")]);
        let t = Instant::ZERO;
        let op = k.next(t).unwrap();
        assert_eq!(op, RouteOp::Del(route("10.0.0.2")));
        assert_eq!(k.next(t), None, "one in flight");
        k.applied(t, op, Ok(()), backoff).unwrap();
        let op = k.next(t).unwrap();
        assert_eq!(op, RouteOp::Del(route("10.0.0.9")));
        k.applied(t, op, Ok(()), backoff).unwrap();
        let op = k.next(t).unwrap();
        assert_eq!(op, RouteOp::Add(route("10.0.0.1")));
        k.applied(t, op, Ok(()), backoff).unwrap();
        assert_eq!(k.next(t), None);
        assert!(k.settled());
        let st = k.status(t);
        assert!(st[0].announced && !st[1].announced);
    }

    #[test]
    fn a_failed_add_is_retried_after_a_doubling_backoff() {
        let mut k = keeper(&[("10.0.0.1", true)]);
        k.observe([]);
        let t0 = Instant::ZERO;
        let op = k.next(t0).unwrap();
        assert_eq!(
            k.applied(t0, op, Err("EPERM".into()), backoff),
            Err(Duration::from_secs(1))
        );
        assert_eq!(k.next(t0), None, "waits for its retry");
        let t1 = t0 + Duration::from_secs(1);
        assert!(k.status(t0)[0]
            .why
            .contains("route add failed: EPERM (attempt 1"));
        let op = k.next(t1).unwrap();
        assert_eq!(
            k.applied(t1, op, Err("EPERM".into()), backoff),
            Err(Duration::from_secs(2))
        );
        let t2 = t1 + Duration::from_secs(2);
        let op = k.next(t2).unwrap();
        k.applied(t2, op, Ok(()), backoff).unwrap();
        assert!(k.failure().is_none());
        assert!(k.status(t2)[0].announced);
    }

    #[test]
    fn a_stall_wants_nothing_until_the_engine_resumes() {
        let mut k = keeper(&[("10.0.0.1", true)]);
        k.observe([route("10.0.0.1")]);
        k.stall();
        assert!(
            k.needs_read(),
            "the watchdog changed the routes: read again"
        );
        k.observe([]);
        assert_eq!(k.next(Instant::ZERO), None);
        assert_eq!(
            k.status(Instant::ZERO)[0].why,
            "engine stalled: withdrawn by the watchdog"
        );
        k.resume();
        assert_eq!(k.next(Instant::ZERO), Some(RouteOp::Add(route("10.0.0.1"))));
    }

    #[test]
    fn withdrawing_deletes_every_route_of_ours() {
        let mut k = keeper(&[("10.0.0.1", true), ("10.0.0.2", true)]);
        k.observe([route("10.0.0.1"), route("10.0.0.2")]);
        k.withdraw();
        let mut ops = Vec::new();
        while let Some(op) = k.next(Instant::ZERO) {
            k.applied(Instant::ZERO, op, Ok(()), backoff).unwrap();
            ops.push(op.to_string());
        }
        assert_eq!(
            ops,
            [
                "ip route del 10.0.0.1/32 dev lo table 100 proto 99",
                "ip route del 10.0.0.2/32 dev lo table 100 proto 99"
            ]
        );
    }
}
