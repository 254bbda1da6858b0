//! `lvs-hc doctor`: what an operator runs on the director when "it doesn't work". It looks at
//! the kernel (IPVS, the VIPs, forwarding and source-validation settings, the MTU for TUN),
//! the network (who else answers ARP for a VIP) and the real servers (each check on the
//! server's own address, and through the VIP where a check has `via_vip`), and prints one line
//! per finding with its fix. It needs no running daemon.
//!
//! [`diagnose`] holds every rule and reaches the machine only through a [`DoctorSystem`], so
//! tests run it against a fake; [`render`] words the findings.

pub mod system;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use lvs_hc_core::config::{Check, ProbeService};
use lvs_hc_core::engine::{ProbeId, ProbeRequest};
use lvs_hc_core::table::{Family, Forward, ServiceKey};
use lvs_hc_core::{Config, ProbeOutcome, Verdict};

use crate::setup::plan::{ConfSetting, GlobalSetting, Sysctl};
pub use system::{ArpAnswer, DoctorSystem, Host, Interface, Ipvs, Unable};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// As it should be.
    Ok,
    /// Worth a look; nothing is known to be broken (or it could not be checked).
    Warn,
    /// Broken: traffic or probes fail because of it.
    Fail,
}

/// One line of `doctor`'s report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How bad.
    pub level: Level,
    /// What was found.
    pub what: String,
    /// What to do about it (none for what is fine).
    pub fix: Option<String>,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            what: what.into(),
            fix: None,
        }
    }

    fn warn(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Warn,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            level: Level::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Finding {
    /// `ok    what`, `warn  what: fix`, `FAIL  what: fix`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag:<6}{}", self.what)?;
        if let Some(fix) = &self.fix {
            write!(f, ": {fix}")?;
        }
        Ok(())
    }
}

/// The report: one line per finding.
pub fn render(findings: &[Finding]) -> String {
    findings.iter().map(|f| format!("{f}\n")).collect()
}

/// 1 when any finding is a failure, 0 otherwise.
pub fn exit_code(findings: &[Finding]) -> ExitCode {
    match findings.iter().any(|f| f.level == Level::Fail) {
        true => ExitCode::from(1),
        false => ExitCode::SUCCESS,
    }
}

/// Runs `lvs-hc doctor --config FILE` on this machine and prints the report. A configuration
/// that cannot be used exits 78 (EX_CONFIG), as `lvs-hc run` does, so it is never mistaken
/// for a failed finding (1).
pub fn main(config: &Path) -> ExitCode {
    let cfg = match crate::load_config(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}", crate::Chain(&e));
            return ExitCode::from(crate::daemon::EX_CONFIG);
        }
    };
    let mut host = match Host::new() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot start the probes' runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let findings = diagnose(&cfg, &mut host);
    // The probe services doctor added are gone (removed by `diagnose`, or by `host`'s drop)
    // before the report says so.
    drop(host);
    print!("{}", render(&findings));
    exit_code(&findings)
}

/// Every finding for `config` on the machine `sys`, in the order an operator fixes them: the
/// kernel, the director's addresses and settings, the network, the real servers.
pub fn diagnose(config: &Config, sys: &mut dyn DoctorSystem) -> Vec<Finding> {
    let mut out = Vec::new();
    let ipvs = sys.ipvs();
    out.push(match &ipvs {
        Ipvs::Present => Finding::ok("IPVS is in the kernel"),
        Ipvs::Absent => Finding::fail(
            "IPVS is not in the kernel (no netlink family IPVS, no /proc/net/ip_vs)",
            "`modprobe ip_vs` (and list ip_vs in /etc/modules-load.d/ to load it at boot)",
        ),
        Ipvs::Unknown(why) => Finding::warn(
            format!("cannot tell whether IPVS is in the kernel ({why})"),
            "run doctor as root; `lsmod | grep ip_vs` shows whether the module is loaded",
        ),
    });
    let interfaces = match sys.interfaces() {
        Ok(i) => Some(i),
        Err(e) => {
            out.push(Finding::warn(
                format!("cannot list this machine's interfaces ({e})"),
                "install iproute2 (`ip`); the VIPs, ARP and MTU were not checked",
            ));
            None
        }
    };
    let vips = vips(config);
    let mut held = BTreeMap::new();
    if let Some(interfaces) = &interfaces {
        for vip in vips.keys() {
            let holder = interfaces
                .iter()
                .find(|i| i.addrs.contains(vip))
                .map(|i| i.name.clone());
            out.push(vip_finding(*vip, holder.as_deref(), config));
            if let Some(dev) = holder {
                held.insert(*vip, dev);
            }
        }
    }
    forwarding(config, sys, &mut out);
    if let Some(interfaces) = &interfaces {
        tun_mtu(config, sys, interfaces, &mut out);
    }
    let unfit = via_vip_settings(config, sys, &mut out);
    for (vip, forwards) in &vips {
        let Some(dev) = held.get(vip) else { continue };
        if forwards.contains(&Forward::Dr) || forwards.contains(&Forward::Tun) {
            arp(*vip, dev, sys, &mut out);
        }
    }
    servers(config, sys, &ipvs, &unfit, &mut out);
    out
}

/// Each VIP of the address services, with the forwarding methods of its servers.
fn vips(config: &Config) -> BTreeMap<IpAddr, BTreeSet<Forward>> {
    let mut vips: BTreeMap<IpAddr, BTreeSet<Forward>> = BTreeMap::new();
    for svc in &config.services {
        if let ServiceKey::Tcp(a) | ServiceKey::Udp(a) | ServiceKey::Sctp(a) = svc.key {
            vips.entry(a.ip())
                .or_default()
                .extend(svc.servers.iter().chain(&svc.fallbacks).map(|s| s.forward));
        }
    }
    vips
}

/// Where a VIP is held. Without `[director] interface` the configuration leaves the VIPs to
/// something else (keepalived's VRRP, say), and on the standby director a missing VIP is
/// right: so it is a warning then, and a failure only when setup is meant to hold it.
fn vip_finding(vip: IpAddr, holder: Option<&str>, config: &Config) -> Finding {
    let host = Family::of(vip).max_prefix();
    match (holder, &config.director.interface) {
        (Some(dev), _) => Finding::ok(format!("VIP {vip} is on {dev}")),
        (None, Some(dev)) => Finding::fail(
            format!("VIP {vip} is not on this director"),
            format!("`ip addr add {vip}/{host} dev {dev}`, or `lvs-hc setup director`"),
        ),
        (None, None) => Finding::warn(
            format!("VIP {vip} is not on this director"),
            format!(
                "right on a standby whose master holds it (keepalived); otherwise `ip addr add \
                 {vip}/{host} dev IFACE`, or set `[director] interface` and run `lvs-hc setup \
                 director`"
            ),
        ),
    }
}

/// NAT needs the director to route the servers' replies back to the clients.
fn forwarding(config: &Config, sys: &mut dyn DoctorSystem, out: &mut Vec<Finding>) {
    let nat: BTreeSet<Family> = config
        .services
        .iter()
        .filter(|s| {
            s.servers
                .iter()
                .chain(&s.fallbacks)
                .any(|s| s.forward == Forward::Nat)
        })
        .map(|s| s.key.family())
        .collect();
    for family in nat {
        let key = Sysctl::global(match family {
            Family::Ipv4 => GlobalSetting::Ipv4Forward,
            Family::Ipv6 => GlobalSetting::Ipv6Forwarding,
        });
        out.push(match sys.sysctl(&key).as_deref() {
            Some("1") => Finding::ok(format!("{key} is 1 (NAT)")),
            Some(v) => Finding::fail(
                format!("{key} is {v}: NAT replies are not routed back to the clients"),
                format!("`sysctl -w {key}=1`, or `lvs-hc setup director`"),
            ),
            None => Finding::fail(
                format!("the kernel has no {key} (is IPv6 disabled?)"),
                "enable the address family NAT services use",
            ),
        });
    }
}

/// TUN wraps each packet in another IP header: the interface toward the servers leaves that
/// much less room for the client's packet, once per interface.
fn tun_mtu(
    config: &Config,
    sys: &mut dyn DoctorSystem,
    interfaces: &[Interface],
    out: &mut Vec<Finding>,
) {
    let mut seen = BTreeSet::new();
    let tun = config
        .services
        .iter()
        .flat_map(|s| s.servers.iter().chain(&s.fallbacks))
        .filter(|s| s.forward == Forward::Tun);
    for server in tun {
        let ip = server.addr.ip();
        let Some(dev) = sys.route_interface(ip) else {
            continue;
        };
        let Some(mtu) = interfaces.iter().find(|i| i.name == dev).map(|i| i.mtu) else {
            continue;
        };
        // The outer header, and the inner IP and TCP headers a client's MSS leaves out.
        let (outer, inner, tunnel) = match ip {
            IpAddr::V4(_) => (20, 40, "tunl0"),
            IpAddr::V6(_) => (40, 60, "ip6tnl0"),
        };
        if !seen.insert((dev.clone(), outer)) {
            continue;
        }
        let room = mtu.saturating_sub(outer);
        out.push(Finding::warn(
            format!(
                "TUN to {ip} leaves by {dev} (MTU {mtu}): the tunnel header takes {outer} bytes, \
                 so a client's packet over {room} bytes is fragmented, or dropped when it may \
                 not be"
            ),
            format!(
                "lower the clients' MSS to {mss} (iptables TCPMSS), raise the MTU of the path to \
                 the real servers, or set the real servers' {tunnel} MTU to {room}",
                mss = room.saturating_sub(inner)
            ),
        ));
    }
}

/// For probes through the VIP, the replies come from the VIP, one of the director's own
/// addresses: the interface they arrive on must accept that (`accept_local`, which the kernel
/// takes as `all` OR the interface) without reverse-path filtering (`rp_filter`, the larger of
/// `all` and the interface, must be 0). See `setup::plan::director` for the kernel's rule.
/// Returns the servers behind an interface that drops those replies (their probes through the
/// VIP would fail for the director's sake, not theirs).
fn via_vip_settings(
    config: &Config,
    sys: &mut dyn DoctorSystem,
    out: &mut Vec<Finding>,
) -> BTreeSet<IpAddr> {
    let mut by_dev: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for ip in crate::setup::plan::via_vip_servers(config) {
        match sys
            .route_interface(ip)
            .or_else(|| config.director.interface.clone())
        {
            // A server on this very machine: its replies never come in from outside.
            Some(dev) if dev == crate::setup::plan::LOOPBACK => {}
            Some(dev) => by_dev.entry(dev).or_default().push(ip),
            None => out.push(Finding::warn(
                format!("no route to {ip}, probed through the VIP"),
                "add a route to it",
            )),
        }
    }
    let mut unfit = BTreeSet::new();
    let read = |sys: &mut dyn DoctorSystem, dev: &str, s: ConfSetting| {
        sys.sysctl(&Sysctl::ipv4_conf(dev, s))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    for (dev, ips) in by_dev {
        let accept_local = read(sys, "all", ConfSetting::AcceptLocal) != 0
            || read(sys, &dev, ConfSetting::AcceptLocal) != 0;
        let rp_filter =
            read(sys, "all", ConfSetting::RpFilter).max(read(sys, &dev, ConfSetting::RpFilter));
        let mut wrong = Vec::new();
        if !accept_local {
            wrong.push(format!(
                "net.ipv4.conf.{dev}.accept_local is 0 (should be 1)"
            ));
        }
        if rp_filter != 0 {
            wrong.push(format!(
                "rp_filter on {dev} is {rp_filter} (the larger of `all` and {dev}; should be 0)"
            ));
        }
        if wrong.is_empty() {
            out.push(Finding::ok(format!(
                "{dev} accepts replies from the VIP to probes through it (accept_local 1, \
                 rp_filter 0)"
            )));
        } else {
            out.push(Finding::fail(
                format!(
                    "{}: replies to probes through the VIP are dropped as martians",
                    wrong.join(", ")
                ),
                "`lvs-hc setup director`",
            ));
            unfit.extend(ips);
        }
    }
    unfit
}

/// Who else answers ARP for a VIP this director holds: a real server without `arp_ignore`
/// steals the VIP's traffic.
fn arp(vip: IpAddr, dev: &str, sys: &mut dyn DoctorSystem, out: &mut Vec<Finding>) {
    match sys.arp_answers(dev, vip) {
        Ok(answers) if answers.is_empty() => {
            out.push(Finding::ok(format!(
                "no other machine answers ARP for VIP {vip} on {dev}"
            )));
        }
        Ok(answers) => {
            for a in answers {
                let who = match a.ip {
                    Some(ip) => format!("{ip} ({})", a.mac),
                    None => a.mac.clone(),
                };
                out.push(Finding::fail(
                    format!("{who} answers ARP for VIP {vip} on {dev}"),
                    "set arp_ignore=1 and arp_announce=2 on it, or run `lvs-hc setup realserver`",
                ));
            }
        }
        Err(e) => out.push(Finding::warn(
            format!("ARP for VIP {vip} on {dev} not checked: {e}"),
            "`arping -I DEV VIP` lists who answers",
        )),
    }
}

/// Each distinct check of each server, on the server's own address; for checks with
/// `via_vip`, through the VIP too.
///
/// Servers of address services none of whose checks has `via_vip` are not probed through the
/// VIP, and one warning names them: such a probe needs the director's `accept_local` and
/// `rp_filter` settings, which `setup director` makes only for a configuration with `via_vip`,
/// so probing them anyway would mostly report the director's settings, not the servers.
fn servers(
    config: &Config,
    sys: &mut dyn DoctorSystem,
    ipvs: &Ipvs,
    unfit: &BTreeSet<IpAddr>,
    out: &mut Vec<Finding>,
) {
    let mut distinct: Vec<(SocketAddr, Arc<Check>)> = Vec::new();
    let mut unvia: Vec<SocketAddr> = Vec::new();
    for svc in &config.services {
        let address = !matches!(svc.key, ServiceKey::Fwmark { .. });
        for server in svc.servers.iter().chain(&svc.fallbacks) {
            if address
                && !server.checks.is_empty()
                && !server.checks.iter().any(|c| c.via.is_some())
            {
                unvia.push(server.addr);
            }
            for check in &server.checks {
                distinct.push((server.addr, Arc::clone(check)));
            }
        }
    }
    // A server behind several services is probed once per distinct check, as the daemon does.
    distinct.sort();
    distinct.dedup();
    let reqs: Vec<ProbeRequest> = distinct
        .into_iter()
        .enumerate()
        .map(|(i, (server, check))| ProbeRequest {
            id: ProbeId(i as u64),
            server,
            check,
        })
        .collect();
    let direct: Vec<ProbeRequest> = reqs.iter().map(ProbeRequest::direct).collect();
    let own = sys.probe(&direct);
    for (req, outcome) in direct.iter().zip(&own) {
        out.push(own_finding(req, outcome));
    }
    // Through the VIP: only where the own-address probe gave no failure (a failure there says
    // it all) and the director accepts the replies.
    let via: Vec<(usize, &ProbeRequest)> = reqs
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            r.check.via.is_some()
                && !matches!(own[*i].verdict(), Some(Verdict::Fail(_)))
                && !unfit.contains(&r.server.ip())
        })
        .collect();
    if !via.is_empty() {
        through_vip(config, sys, ipvs, &via, &own, out);
    }
    unvia.sort();
    unvia.dedup();
    if !unvia.is_empty() {
        const SHOWN: usize = 5;
        let mut names: Vec<String> = unvia.iter().take(SHOWN).map(|a| a.to_string()).collect();
        if unvia.len() > SHOWN {
            names.push(format!("and {} more", unvia.len() - SHOWN));
        }
        out.push(Finding::warn(
            format!(
                "not probed through the VIP: {} (a VIP missing from a real server goes unseen)",
                names.join(", ")
            ),
            "set `via_vip = true` on a check of each, then run `lvs-hc setup director`",
        ));
    }
}

fn own_finding(req: &ProbeRequest, outcome: &ProbeOutcome) -> Finding {
    let what = format!("{} {} on its own address", req.server, req.check.label());
    match outcome.verdict() {
        Some(Verdict::Pass) => Finding::ok(format!("{what} passes")),
        Some(Verdict::Fail(reason)) => Finding::fail(
            format!("{what} fails: {reason}"),
            format!(
                "the server or its service is down, or a firewall is in the way: try it from \
                 this director (`curl`, `nc -vz {} {}`)",
                req.target().ip(),
                req.target().port()
            ),
        ),
        None => no_verdict(what, outcome),
    }
}

fn no_verdict(what: String, outcome: &ProbeOutcome) -> Finding {
    let reason = match outcome {
        ProbeOutcome::Inconclusive { reason } | ProbeOutcome::DirectorFault { reason } => {
            reason.as_str()
        }
        _ => "",
    };
    Finding::warn(
        format!("{what}: no verdict ({reason})"),
        "a problem of this director, not the server: see the reason",
    )
}

/// Probes through the VIP, with the probe services they need put in the kernel for the
/// duration (those the kernel lacks: with the daemon running, it holds them already).
fn through_vip(
    config: &Config,
    sys: &mut dyn DoctorSystem,
    ipvs: &Ipvs,
    via: &[(usize, &ProbeRequest)],
    own: &[ProbeOutcome],
    out: &mut Vec<Finding>,
) {
    let count = via.len();
    if *ipvs != Ipvs::Present {
        out.push(Finding::warn(
            format!("{count} checks not run through the VIP: IPVS is not in the kernel"),
            "`modprobe ip_vs`",
        ));
        return;
    }
    let marks: BTreeSet<u32> = via
        .iter()
        .filter_map(|(_, r)| r.check.via.map(|v| v.mark))
        .collect();
    let wanted: Vec<ProbeService> = config
        .probe_services
        .iter()
        .filter(|p| marks.contains(&p.mark()))
        .cloned()
        .collect();
    let added = match sys.add_probe_services(&wanted) {
        Ok(added) => added,
        Err(e) => {
            out.push(Finding::warn(
                format!("{count} checks not run through the VIP: {e}"),
                "run doctor as root (it adds the probe services), with the configuration the daemon runs",
            ));
            return;
        }
    };
    let reqs: Vec<ProbeRequest> = via.iter().map(|(_, r)| (*r).clone()).collect();
    let outcomes = sys.probe_via(&reqs);
    for ((i, req), outcome) in via.iter().zip(&outcomes) {
        out.push(via_finding(req, &own[*i], outcome));
    }
    if !added.is_empty() {
        if let Err(e) = sys.remove_probe_services(&added) {
            let marks: Vec<String> = added
                .iter()
                .filter_map(|k| match k {
                    ServiceKey::Fwmark { mark, .. } => Some(format!("`ipvsadm -D -f {mark}`")),
                    _ => None,
                })
                .collect();
            out.push(Finding::fail(
                format!("probe services doctor added are left in the kernel: {e}"),
                format!("delete them: {}", marks.join(", ")),
            ));
        }
    }
}

/// A probe through the VIP, told apart from the same probe on the server's own address.
fn via_finding(req: &ProbeRequest, own: &ProbeOutcome, outcome: &ProbeOutcome) -> Finding {
    let vip = req.target();
    let direct = req.direct();
    let what = format!("{} {} through VIP {vip}", req.server, direct.check.label());
    let forward = req.check.via.map_or(Forward::Dr, |v| v.forward);
    match (own.verdict(), outcome.verdict()) {
        (_, Some(Verdict::Pass)) => Finding::ok(format!("{what} passes")),
        (Some(Verdict::Pass), Some(Verdict::Fail(_))) => Finding::fail(
            crate::probe::not_for_vip(req.server.ip(), vip, forward),
            fix(forward, vip.ip()),
        ),
        (_, Some(Verdict::Fail(reason))) => {
            Finding::fail(format!("{what} fails: {reason}"), fix(forward, vip.ip()))
        }
        (_, None) => no_verdict(what, outcome),
    }
}

fn fix(forward: Forward, vip: IpAddr) -> String {
    match forward {
        Forward::Dr => format!("run `lvs-hc setup realserver --vip {vip}` on it"),
        Forward::Tun => format!("run `lvs-hc setup realserver --mode tun --vip {vip}` on it"),
        Forward::Nat => "let the director's forwarded traffic (to its port, from the director's address) through its firewall".to_string(),
    }
}

#[cfg(test)]
mod tests;
