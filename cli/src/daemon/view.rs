//! What the API shows of the engine: a plain copy ([`EngineView`]) taken on the engine's loop
//! at most once every [`VIEW_MAX_AGE`], and turned into `/status` JSON and `/metrics` text on
//! the API's own thread, so that no amount of API traffic costs the probes more than one copy
//! a second.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lvs_hc_core::admin::{AdminMark, AgentReport};
use lvs_hc_core::{Engine, Health, ProbeOutcome, SyncDaemon, SyncStatus};
use serde_json::{json, Value};

use super::metrics::result_name;

/// How old a view may be and still answer a request.
pub const VIEW_MAX_AGE: Duration = Duration::from_secs(1);

/// How many of the probes that cannot run `/status` lists one by one (all are counted).
const FAULTS_LISTED: usize = 100;

/// The engine as it was at one moment. Ages are as of [`EngineView::taken`].
#[derive(Debug)]
pub struct EngineView {
    /// When the copy was taken.
    pub taken: std::time::Instant,
    /// Whether the engine has read the table once.
    pub has_snapshot: bool,
    /// Operations emitted and not yet answered.
    pub pending_operations: usize,
    /// Every configured service.
    pub services: Vec<ServiceView>,
    /// The first probes that cannot run because of the director.
    pub probe_faults: Vec<FaultView>,
    /// How many probes cannot run because of the director.
    pub probe_fault_count: usize,
    /// lvs-hc's own probe services (`via_vip`), apart from the configured ones.
    pub probe_services: Vec<ProbeServiceView>,
    /// Each sync daemon `[sync]` asks for, master first; empty without `[sync]`.
    pub sync: Vec<SyncStatus>,
    /// The sync daemons running as last read (lvs-hc's or not); `None` before the first read.
    pub sync_running: Option<Vec<SyncDaemon>>,
    /// The virtual addresses of the configured services (firewall-mark services have none),
    /// in order: whether this director holds them tells an active director from a standby.
    pub vips: Vec<IpAddr>,
    /// `[announce]`: its table and protocol, per VIP announced or not and why, per service
    /// ready or not and why; `None` without `[announce]`.
    pub announce: Option<AnnounceView>,
    /// The engine's clock when the copy was taken (for the sync daemons' retry times).
    pub engine_now: lvs_hc_core::Instant,
}

/// What `[announce]` does, as the engine sees it.
#[derive(Clone, Debug)]
pub struct AnnounceView {
    /// The routing table.
    pub table: u32,
    /// The routes' protocol.
    pub protocol: u8,
    /// Whether the routes are held back after a stall (until read again).
    pub stalled: bool,
    /// Per VIP: announced or not, and why.
    pub vips: Vec<lvs_hc_core::announce::VipStatus>,
    /// Per service: ready or not, and why.
    pub services: Vec<lvs_hc_core::announce::ServiceReadiness>,
}

/// One of lvs-hc's probe services (`via_vip`).
#[derive(Debug)]
pub struct ProbeServiceView {
    /// Its firewall mark.
    pub mark: u32,
    /// The configured service it probes for.
    pub service: String,
    /// The one server it holds.
    pub server: SocketAddr,
    /// Whether the kernel holds it as lvs-hc set it.
    pub in_table: bool,
}

/// One service.
#[derive(Debug)]
pub struct ServiceView {
    /// `TCP 192.168.0.101:80`.
    pub key: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its scheduler.
    pub scheduler: String,
    /// Whether the kernel table has it.
    pub in_table: bool,
    /// Whether a fallback server is in with a weight.
    pub fallback_active: bool,
    /// Its quorum.
    pub quorum: usize,
    /// Real servers counted healthy for the quorum (up, or serving while not yet probed;
    /// never one an operator, a file or an agent took out); `None` before the first table
    /// read.
    pub healthy: Option<usize>,
    /// Its real and fallback servers.
    pub servers: Vec<ServerView>,
}

/// One server of a service.
#[derive(Debug)]
pub struct ServerView {
    /// Its address.
    pub address: SocketAddr,
    /// Whether it is a fallback.
    pub fallback: bool,
    /// Its health.
    pub health: Health,
    /// Why.
    pub reason: String,
    /// How long it has been in this state.
    pub since: Duration,
    /// Its weight while in service.
    pub weight: u32,
    /// Whether it drains.
    pub draining: bool,
    /// The weight the engine wants in the kernel, if any.
    pub desired_weight: Option<u32>,
    /// The kernel's weight, when it is in the table.
    pub kernel_weight: Option<u32>,
    /// Its forwarding method in the kernel.
    pub forward: Option<&'static str>,
    /// Active connections.
    pub active: Option<u32>,
    /// Inactive connections.
    pub inactive: Option<u32>,
    /// Each check's last result.
    pub checks: Vec<CheckView>,
    /// Its administrative marks, strictest (the one in force) first, each with how long ago it
    /// was set; empty when enabled.
    pub admin: Vec<(AdminMark, Duration)>,
    /// Whether an administrative drain is over (out until enabled).
    pub drained: bool,
    /// Its slow start while it ramps: step, steps, and how long until the full weight.
    pub slow_start: Option<(u32, u32, Duration)>,
    /// What its agent last said.
    pub agent: Option<AgentReport>,
}

/// One check of a server and its last result.
#[derive(Debug)]
pub struct CheckView {
    /// The check's label.
    pub label: String,
    /// Its last result: how long ago, the result's name, and the reason for anything but a
    /// pass.
    pub last: Option<(Duration, &'static str, Option<String>)>,
}

/// A probe that cannot run because of the director.
#[derive(Debug)]
pub struct FaultView {
    /// The server probed.
    pub server: SocketAddr,
    /// The check.
    pub check: String,
    /// Why.
    pub reason: String,
    /// Since how long.
    pub since: Duration,
}

impl EngineView {
    /// Copies what the API shows; runs on the engine's loop.
    pub fn capture(engine: &Engine) -> EngineView {
        let now = engine.now();
        let table = engine.believed_table();
        let counters = engine.counters();
        let status = engine.status();
        let mut statuses = status.into_iter().peekable();
        let mut services = Vec::with_capacity(engine.config().services.len());
        for svc in &engine.config().services {
            let entry = table.and_then(|t| t.services.get(&svc.key));
            let desired = engine.desired(&svc.key);
            let mut servers = Vec::new();
            while let Some(s) = statuses.next_if(|s| s.service == svc.key) {
                let dest = entry.and_then(|e| e.dests.get(&s.server));
                let conns = counters.dests.get(&(svc.key, s.server));
                let checks = s
                    .checks
                    .into_iter()
                    .map(|(label, last)| CheckView {
                        label,
                        last: last.map(|(at, outcome)| {
                            let reason = match &outcome {
                                ProbeOutcome::Pass { .. } => None,
                                ProbeOutcome::Agent(r) => Some(agent_words(r)),
                                ProbeOutcome::Fail { reason }
                                | ProbeOutcome::Inconclusive { reason }
                                | ProbeOutcome::DirectorFault { reason } => Some(reason.clone()),
                            };
                            (now.saturating_since(at), result_name(&outcome), reason)
                        }),
                    })
                    .collect();
                let slow_start = s.slow_start.and_then(|r| {
                    r.step_at(now)
                        .map(|step| (step, r.steps, r.end().saturating_since(now)))
                });
                let admin = s
                    .admin
                    .into_iter()
                    .map(|m| {
                        let ago = now.saturating_since(m.since);
                        (m, ago)
                    })
                    .collect();
                servers.push(ServerView {
                    admin,
                    drained: s.drained,
                    slow_start,
                    agent: s.agent,
                    address: s.server,
                    fallback: s.fallback,
                    health: s.health,
                    reason: s.reason,
                    since: now.saturating_since(s.since),
                    weight: s.weight,
                    draining: s.draining,
                    desired_weight: desired
                        .as_ref()
                        .and_then(|d| d.entry.dests.get(&s.server))
                        .map(|d| d.weight),
                    kernel_weight: dest.map(|d| d.weight),
                    forward: dest.map(|d| d.forward.label()),
                    active: conns.map(|c| c.active),
                    inactive: conns.map(|c| c.inactive),
                    checks,
                });
            }
            let fallback_active = svc
                .fallbacks
                .iter()
                .any(|f| entry.is_some_and(|e| e.dests.get(&f.addr).is_some_and(|d| d.weight > 0)));
            services.push(ServiceView {
                key: svc.key.to_string(),
                name: svc.name.clone(),
                scheduler: svc.params.scheduler.clone(),
                in_table: entry.is_some(),
                fallback_active,
                quorum: svc.quorum,
                healthy: desired.as_ref().map(|d| d.healthy),
                servers,
            });
        }
        let faults = engine.probe_faults();
        let probe_services = engine
            .probe_services()
            .into_iter()
            .map(|(p, in_table)| ProbeServiceView {
                mark: p.mark(),
                service: p.service.to_string(),
                server: p.server,
                in_table,
            })
            .collect();
        let mut vips: Vec<IpAddr> = engine
            .config()
            .services
            .iter()
            .filter_map(|s| s.key.inet_parts().map(|(_, a)| a.ip()))
            .collect();
        vips.sort();
        vips.dedup();
        let announce = engine.config().announce.map(|a| AnnounceView {
            table: a.table,
            protocol: a.protocol,
            stalled: engine.announce_stalled(),
            vips: engine.announce_status(),
            services: engine.readiness(),
        });
        EngineView {
            announce,
            sync: engine.sync_status(),
            sync_running: engine.sync_running().map(<[SyncDaemon]>::to_vec),
            vips,
            engine_now: now,
            probe_services,
            taken: std::time::Instant::now(),
            has_snapshot: engine.has_snapshot(),
            pending_operations: engine.pending_ops(),
            services,
            probe_fault_count: faults.len(),
            probe_faults: faults
                .into_iter()
                .take(FAULTS_LISTED)
                .map(|f| FaultView {
                    server: f.server,
                    check: f.check,
                    reason: f.fault.reason,
                    since: now.saturating_since(f.fault.since),
                })
                .collect(),
        }
    }

    /// The `/status` document, compact, one server a line: `top` holds the daemon's own fields
    /// (version, pid, ...). Built a server at a time, so its memory is the text's and little
    /// more.
    pub fn status_json(&self, top: serde_json::Map<String, Value>) -> String {
        let age = self.taken.elapsed();
        let secs = |d: Duration| (d + age).as_secs_f64();
        let mut head = top;
        head.insert("has_snapshot".into(), json!(self.has_snapshot));
        head.insert("pending_operations".into(), json!(self.pending_operations));
        head.insert("probe_fault_count".into(), json!(self.probe_fault_count));
        let faults: Vec<Value> = self
            .probe_faults
            .iter()
            .map(|f| {
                json!({
                    "server": f.server.to_string(),
                    "check": f.check,
                    "reason": f.reason,
                    "since_seconds_ago": secs(f.since),
                })
            })
            .collect();
        head.insert("probe_faults".into(), Value::Array(faults));
        let probe_services: Vec<Value> = self
            .probe_services
            .iter()
            .map(|p| {
                json!({
                    "mark": format!("{:#x}", p.mark),
                    "service": p.service,
                    "server": p.server.to_string(),
                    "in_table": p.in_table,
                })
            })
            .collect();
        head.insert("probe_services".into(), Value::Array(probe_services));
        head.insert("director".into(), self.director_json());
        head.insert("sync".into(), self.sync_json(secs(Duration::ZERO)));
        head.insert("announce".into(), self.announce_json());
        let mut out = open_object(&Value::Object(head));
        out.push_str(",\"services\":[");
        for (i, svc) in self.services.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            let head = json!({
                "service": svc.key,
                "name": svc.name,
                "scheduler": svc.scheduler,
                "in_table": svc.in_table,
                "fallback_active": svc.fallback_active,
                "quorum": svc.quorum,
            });
            out.push_str(&open_object(&head));
            out.push_str(",\"servers\":[");
            for (j, s) in svc.servers.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                out.push('\n');
                let checks: Vec<Value> = s
                    .checks
                    .iter()
                    .map(|c| {
                        let last = c.last.as_ref().map(|(ago, result, reason)| {
                            json!({
                                "result": result,
                                "reason": reason,
                                "seconds_ago": secs(*ago),
                            })
                        });
                        json!({ "check": c.label, "last": last })
                    })
                    .collect();
                let server = json!({
                    "address": s.address.to_string(),
                    "fallback": s.fallback,
                    "health": s.health.as_str(),
                    "reason": s.reason,
                    "since_seconds_ago": secs(s.since),
                    "weight": s.weight,
                    "draining": s.draining,
                    "in_table": s.kernel_weight.is_some(),
                    "desired_weight": s.desired_weight,
                    "kernel_weight": s.kernel_weight,
                    "forward": s.forward,
                    "active_conns": s.active,
                    "inactive_conns": s.inactive,
                    "checks": checks,
                    "admin": admin_json(s, secs),
                    "slow_start": s.slow_start.map(|(step, steps, left)| json!({
                        "step": step,
                        "steps": steps,
                        "remaining_seconds": left.as_secs_f64(),
                    })),
                    "agent": s.agent.as_ref().map(|r| json!({
                        "said": agent_said(r),
                        "health": r.health.map(|h| match h {
                            lvs_hc_core::admin::AgentHealth::Up => "up",
                            lvs_hc_core::admin::AgentHealth::Down => "down",
                        }),
                        "admin": r.admin.map(|a| match a {
                            lvs_hc_core::admin::AgentAdmin::Ready => "ready",
                            lvs_hc_core::admin::AgentAdmin::Drain => "drain",
                            lvs_hc_core::admin::AgentAdmin::Maint => "maint",
                        }),
                        "weight_percent": r.weight_percent,
                        "text": r.text,
                    })),
                });
                out.push_str(&server.to_string());
            }
            out.push_str("]}");
        }
        out.push_str("\n]}\n");
        out
    }

    /// Whether this director holds each virtual address (an active director of a pair holds
    /// them, a standby does not; both holding one is a split brain), read from the interfaces
    /// now. `role` sums it up: `active` (all held), `standby` (none), `partial`.
    fn director_json(&self) -> Value {
        let (vips, role) = match crate::arp::interfaces_holding(&self.vips) {
            Ok(held) => {
                let vips: Vec<Value> = self
                    .vips
                    .iter()
                    .zip(&held)
                    .map(|(vip, on)| {
                        json!({"address": vip.to_string(), "held": on.is_some(), "interface": on})
                    })
                    .collect();
                let role = if held.is_empty() {
                    "unknown"
                } else if held.iter().all(Option::is_some) {
                    "active"
                } else if held.iter().all(Option::is_none) {
                    "standby"
                } else {
                    "partial"
                };
                (vips, role)
            }
            Err(e) => {
                let error = e.to_string();
                let vips = self
                    .vips
                    .iter()
                    .map(|vip| json!({"address": vip.to_string(), "held": null, "error": error}))
                    .collect();
                (vips, "unknown")
            }
        };
        json!({"role": role, "vips": vips})
    }

    /// `[announce]`: per VIP announced or not and why, per service ready or not and why.
    fn announce_json(&self) -> Value {
        let Some(a) = &self.announce else {
            return json!({"configured": false});
        };
        let vips: Vec<Value> = a
            .vips
            .iter()
            .map(|v| json!({"vip": v.vip.to_string(), "announced": v.announced, "why": v.why}))
            .collect();
        let services: Vec<Value> = a
            .services
            .iter()
            .map(|s| {
                json!({
                    "service": s.service.to_string(),
                    "ready": s.ready(),
                    "announceable": s.vip().is_some(),
                    "why": s.why(),
                })
            })
            .collect();
        json!({
            "configured": true,
            "table": a.table,
            "protocol": a.protocol,
            "stalled": a.stalled,
            "vips": vips,
            "services": services,
        })
    }

    /// The sync daemons: those `[sync]` asks for with their state, and those running that it
    /// does not name. `age` is the view's age in seconds, added to nothing but subtracted from
    /// a retry's wait.
    fn sync_json(&self, age: f64) -> Value {
        let daemons: Vec<Value> = self
            .sync
            .iter()
            .map(|s| {
                let state = match (&s.running, s.ok) {
                    (_, true) => "running",
                    (None, false) if self.sync_running.is_none() => "unknown",
                    (None, false) => "not running",
                    (Some(_), false) => "other settings",
                };
                let error = s.error.as_ref().map(|f| {
                    json!({
                        "command": f.op.to_string(),
                        "error": f.error,
                        "attempts": f.attempts,
                        "retry_in_seconds":
                            (f.retry_at.saturating_since(self.engine_now).as_secs_f64() - age).max(0.0),
                    })
                });
                json!({
                    "role": s.wanted.role.name(),
                    "state": state,
                    "wanted": s.wanted.settings(),
                    "running": s.running.as_ref().map(SyncDaemon::settings),
                    "error": error,
                })
            })
            .collect();
        let unmanaged: Vec<Value> = self
            .sync_running
            .iter()
            .flatten()
            .filter(|d| !self.sync.iter().any(|s| s.wanted.role == d.role))
            .map(|d| json!({"role": d.role.name(), "running": d.settings()}))
            .collect();
        json!({"configured": !self.sync.is_empty(), "daemons": daemons, "unmanaged": unmanaged})
    }

    /// Per-server gauges: health state, administrative state, whether the server is in the
    /// kernel table, its kernel and desired weight, its slow start; per-service gauges: quorum,
    /// healthy servers, fallback; and the count of probes that cannot run.
    pub fn render_metrics(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP lvs_hc_probe_director_faults Probes that cannot run because of a problem on \
             this director (no descriptors, no memory, no source address, a check program that \
             cannot start); their servers keep their state.\n\
             # TYPE lvs_hc_probe_director_faults gauge\nlvs_hc_probe_director_faults {}",
            self.probe_fault_count
        );
        if !self.sync.is_empty() {
            let _ = writeln!(
                out,
                "# HELP lvs_hc_sync_daemon_up Whether each sync daemon [sync] asks for runs \
                 with its settings (1) or not (0).\n# TYPE lvs_hc_sync_daemon_up gauge"
            );
            for s in &self.sync {
                let _ = writeln!(
                    out,
                    "lvs_hc_sync_daemon_up{{role=\"{}\",interface=\"{}\",sync_id=\"{}\"}} {}",
                    s.wanted.role,
                    s.wanted.interface,
                    s.wanted.sync_id,
                    u8::from(s.ok)
                );
            }
        }
        if let Some(a) = &self.announce {
            let _ = writeln!(
                out,
                "# HELP lvs_hc_vip_announced Whether the route announcing each VIP ([announce]) \
                 is in the kernel (1) or not (0).\n# TYPE lvs_hc_vip_announced gauge"
            );
            for v in &a.vips {
                let _ = writeln!(
                    out,
                    "lvs_hc_vip_announced{{vip=\"{}\"}} {}",
                    v.vip,
                    u8::from(v.announced)
                );
            }
            let _ = writeln!(
                out,
                "# HELP lvs_hc_service_ready Whether each service has max(quorum, 1) healthy \
                 real servers (1), which announces its VIP ([announce]); firewall-mark services \
                 are never announced.\n# TYPE lvs_hc_service_ready gauge"
            );
            for s in &a.services {
                let _ = writeln!(
                    out,
                    "lvs_hc_service_ready{{service=\"{}\"}} {}",
                    s.service,
                    u8::from(s.ready())
                );
            }
        }
        if let Some(running) = &self.sync_running {
            let _ = writeln!(
                out,
                "# HELP lvs_hc_sync_daemon_running Sync daemons running in the kernel, by role \
                 (lvs-hc's or not).\n# TYPE lvs_hc_sync_daemon_running gauge"
            );
            for role in lvs_hc_core::SyncRole::ALL {
                let _ = writeln!(
                    out,
                    "lvs_hc_sync_daemon_running{{role=\"{role}\"}} {}",
                    u8::from(running.iter().any(|d| d.role == role))
                );
            }
        }
        if !self.vips.is_empty() {
            let _ = writeln!(
                out,
                "# HELP lvs_hc_vip_held Whether this director holds each virtual address (1: \
                 active, 0: standby; a pair with both at 1 is a split brain).\n\
                 # TYPE lvs_hc_vip_held gauge"
            );
            // Left out, rather than guessed, when the interfaces cannot be read.
            let held = crate::arp::interfaces_holding(&self.vips).unwrap_or_default();
            for (vip, on) in self.vips.iter().zip(held) {
                let _ = writeln!(
                    out,
                    "lvs_hc_vip_held{{address=\"{vip}\"}} {}",
                    u8::from(on.is_some())
                );
            }
        }
        let servers = || {
            self.services.iter().flat_map(|svc| {
                svc.servers.iter().map(move |s| {
                    let role = if s.fallback { "fallback" } else { "real" };
                    (
                        format!(
                            "service=\"{}\",server=\"{}\",role=\"{role}\"",
                            svc.key, s.address
                        ),
                        s,
                    )
                })
            })
        };
        let _ = writeln!(
            out,
            "# HELP lvs_hc_server_state Health of each server (1 for its current state).\n\
             # TYPE lvs_hc_server_state gauge"
        );
        for (labels, s) in servers() {
            let _ = writeln!(
                out,
                "lvs_hc_server_state{{{labels},state=\"{}\"}} 1",
                s.health
            );
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_server_in_table Whether the server is in the kernel table (as last \
             read and changed).\n# TYPE lvs_hc_server_in_table gauge"
        );
        for (labels, s) in servers() {
            let _ = writeln!(
                out,
                "lvs_hc_server_in_table{{{labels}}} {}",
                u8::from(s.kernel_weight.is_some())
            );
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_server_kernel_weight The server's weight in the kernel table (absent \
             when it is not in the table).\n# TYPE lvs_hc_server_kernel_weight gauge"
        );
        for (labels, s) in servers() {
            if let Some(w) = s.kernel_weight {
                let _ = writeln!(out, "lvs_hc_server_kernel_weight{{{labels}}} {w}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_server_desired_weight The weight lvs-hc wants the server to have in \
             the kernel table (absent when it should be out): health, administrative state, \
             agent and slow start applied.\n# TYPE lvs_hc_server_desired_weight gauge"
        );
        for (labels, s) in servers() {
            if let Some(w) = s.desired_weight {
                let _ = writeln!(out, "lvs_hc_server_desired_weight{{{labels}}} {w}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_server_admin_state The server's administrative state in force (1): \
             enabled, drain or disabled, and who set it (none, operator, maintenance, agent).\n\
             # TYPE lvs_hc_server_admin_state gauge"
        );
        for (labels, s) in servers() {
            let (state, source) = match s.admin.first() {
                Some((m, _)) => (m.state.as_str(), m.source.as_str()),
                None => ("enabled", "none"),
            };
            let _ = writeln!(
                out,
                "lvs_hc_server_admin_state{{{labels},state=\"{state}\",source=\"{source}\"}} 1"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_server_slow_start_remaining_seconds Time until a returning server \
             reaches its full weight (slow_start); 0 when it is not ramping.\n\
             # TYPE lvs_hc_server_slow_start_remaining_seconds gauge"
        );
        for (labels, s) in servers() {
            if s.fallback {
                continue;
            }
            let left = s.slow_start.map_or(0.0, |(_, _, left)| left.as_secs_f64());
            let _ = writeln!(
                out,
                "lvs_hc_server_slow_start_remaining_seconds{{{labels}}} {left}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_service_quorum Real servers a service needs healthy before its \
             fallback leaves.\n# TYPE lvs_hc_service_quorum gauge"
        );
        for svc in &self.services {
            let _ = writeln!(
                out,
                "lvs_hc_service_quorum{{service=\"{}\"}} {}",
                svc.key, svc.quorum
            );
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_service_healthy_servers Real servers counted healthy for the quorum \
             (not those taken out by an operator, a maintenance file or an agent).\n\
             # TYPE lvs_hc_service_healthy_servers gauge"
        );
        for svc in &self.services {
            if let Some(h) = svc.healthy {
                let _ = writeln!(
                    out,
                    "lvs_hc_service_healthy_servers{{service=\"{}\"}} {h}",
                    svc.key
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP lvs_hc_service_fallback_active Whether a fallback server of the service is \
             in the kernel table with a weight.\n# TYPE lvs_hc_service_fallback_active gauge"
        );
        for svc in &self.services {
            let _ = writeln!(
                out,
                "lvs_hc_service_fallback_active{{service=\"{}\"}} {}",
                svc.key,
                u8::from(svc.fallback_active)
            );
        }
    }
}

/// A JSON object's text without its closing brace, to append more members to.
fn open_object(v: &Value) -> String {
    let mut text = v.to_string();
    let closing = text.pop();
    debug_assert!(closing == Some('}') && text.len() > 1, "a non-empty object");
    text
}

/// A server's `admin` in `/status`: the mark in force and every source's, or null when
/// enabled. `secs` turns an age into seconds ago at the time of the answer.
fn admin_json(s: &ServerView, secs: impl Fn(Duration) -> f64) -> Value {
    let mark = |(m, ago): &(AdminMark, Duration)| {
        json!({
            "state": m.state.as_str(),
            "source": m.source.as_str(),
            "reason": m.reason,
            "since_seconds_ago": secs(*ago),
            "drain_timeout_seconds": m.drain_timeout.map(|t| t.as_secs_f64()),
        })
    };
    let Some(first) = s.admin.first() else {
        return Value::Null;
    };
    let mut v = mark(first);
    v["drained"] = json!(s.drained);
    v["marks"] = Value::Array(s.admin.iter().map(mark).collect());
    v
}

/// An agent's reply in its own words, prefixed: `agent: up 75%`.
fn agent_words(r: &AgentReport) -> String {
    format!("agent: {}", agent_said(r))
}

/// An agent's reply in its own words: `up 75%`, `drain (kernel patching)`.
fn agent_said(r: &AgentReport) -> String {
    use lvs_hc_core::admin::{AgentAdmin, AgentHealth};
    let mut words = Vec::new();
    match r.health {
        Some(AgentHealth::Up) => words.push("up".to_string()),
        Some(AgentHealth::Down) => words.push("down".to_string()),
        None => {}
    }
    match r.admin {
        Some(AgentAdmin::Ready) => words.push("ready".to_string()),
        Some(AgentAdmin::Drain) => words.push("drain".to_string()),
        Some(AgentAdmin::Maint) => words.push("maint".to_string()),
        None => {}
    }
    if let Some(p) = r.weight_percent {
        words.push(format!("{p}%"));
    }
    let mut text = words.join(" ");
    if !r.text.is_empty() {
        text.push_str(&format!(" ({})", r.text));
    }
    text
}
