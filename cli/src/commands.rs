//! The commands, as functions from inputs to text, so tests can run them without a process.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use lvs_hc_core::config::{CheckKind, FailureAction, FallbackMode, NewServers, Server};
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{what_if, Config, Table};

/// `lvs-hc check`: a summary of a valid configuration.
pub fn check_summary(config: &Config, origin: &str) -> String {
    let mut out = String::new();
    let mut reals = 0;
    let mut fallbacks = 0;
    let mut probes = BTreeSet::new();
    let _ = writeln!(out, "{origin}: valid");
    for svc in &config.services {
        let name = svc
            .name
            .as_deref()
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        let mut policy = vec![svc.params.scheduler.clone()];
        if let Some(p) = svc.params.persistence {
            policy.push(format!("persistent {}s /{}", p.timeout, p.prefix));
        }
        if svc.params.one_packet {
            policy.push("one-packet".into());
        }
        if !svc.params.sched_flags.is_empty() {
            policy.push(format!(
                "flags {}",
                svc.params.sched_flags.names(&svc.params.scheduler)
            ));
        }
        policy.push(format!("quorum {}", svc.quorum));
        policy.push(match svc.on_failure {
            FailureAction::Remove => "failed servers removed".to_string(),
            FailureAction::Zero => "failed servers kept at weight 0".to_string(),
            FailureAction::Drain { timeout } => {
                format!(
                    "failed servers drained (at most {})",
                    format_duration(timeout)
                )
            }
        });
        policy.push(match svc.new_servers {
            NewServers::Wait => "new servers wait for a passing probe".to_string(),
            NewServers::In => "new servers start in".to_string(),
        });
        let _ = writeln!(out, "{}{name}: {}", svc.key, policy.join(", "));
        for s in &svc.servers {
            reals += 1;
            write_server(&mut out, "->", s, &mut probes);
        }
        let mode = match svc.fallback_mode {
            FallbackMode::Alongside => "beside healthy servers",
            FallbackMode::Exclusive => "alone",
        };
        for s in &svc.fallbacks {
            fallbacks += 1;
            write_server(&mut out, &format!("fallback ({mode}) ->"), s, &mut probes);
        }
    }
    if !config.probe_services.is_empty() {
        let _ = writeln!(
            out,
            "probe services of lvs-hc's own (via_vip, marks {}):",
            config.daemon.via_vip_marks
        );
        for p in &config.probe_services {
            let _ = writeln!(
                out,
                "  FWM {:#x} -> {} {} for {}",
                p.mark(),
                p.server,
                p.forward.config_name(),
                p.service
            );
        }
    }
    if let Some(a) = &config.announce {
        let mut vips: Vec<_> = config
            .services
            .iter()
            .filter_map(|s| s.key.inet_parts().map(|(_, addr)| addr.ip()))
            .collect();
        vips.sort();
        vips.dedup();
        let _ = writeln!(
            out,
            "announce: a host route per VIP in table {} proto {} while {} of its services \
             {} ready (a verdict on every real server, max(quorum, 1) of them healthy); withdrawn after {} of engine \
             silence",
            a.table,
            a.protocol,
            a.require.name(),
            if a.require == lvs_hc_core::config::Require::Any {
                "is"
            } else {
                "are"
            },
            format_duration(a.stall_timeout)
        );
        for vip in vips {
            let prefix = if vip.is_ipv4() { 32 } else { 128 };
            let _ = writeln!(
                out,
                "  ip route add {vip}/{prefix} dev lo table {} proto {}",
                a.table, a.protocol
            );
        }
        if config.services.iter().any(|s| s.key.inet_parts().is_none()) {
            let _ = writeln!(
                out,
                "  (firewall-mark services have no address: never announced)"
            );
        }
    }
    use lvs_hc_core::text::plural;
    let _ = writeln!(
        out,
        "{}, {}, {}, {}",
        plural(config.services.len(), "service", "services"),
        plural(reals, "real server", "real servers"),
        plural(fallbacks, "fallback", "fallbacks"),
        plural(probes.len(), "distinct probe", "distinct probes"),
    );
    out
}

fn write_server(
    out: &mut String,
    arrow: &str,
    s: &Server,
    probes: &mut BTreeSet<(SocketAddr, String)>,
) {
    let mut extra = String::new();
    if s.upper != 0 || s.lower != 0 {
        extra = format!(", thresholds {}..{}", s.lower, s.upper);
    }
    let _ = writeln!(
        out,
        "  {arrow} {} {} weight {}{extra}",
        s.addr,
        s.forward.config_name(),
        s.weight
    );
    if s.checks.is_empty() {
        let _ = writeln!(out, "       no checks: always healthy");
    }
    for c in &s.checks {
        probes.insert((s.addr, format!("{c:?}")));
        let what = match &c.kind {
            CheckKind::Http(h) | CheckKind::Https(h) => {
                let mut w = format!("{}, expect {}", c.label(), h.expect_status);
                if let Some(b) = &h.expect_body {
                    let _ = write!(w, " and body containing {b:?}");
                }
                if let Some(r) = &h.expect_body_regex {
                    let _ = write!(w, " and body matching /{}/", r.as_str());
                }
                w
            }
            CheckKind::Smtp(m) => {
                let tls = if m.starttls.is_some() {
                    " and STARTTLS"
                } else {
                    ""
                };
                format!("{}, EHLO {}{tls}", c.label(), m.helo_name)
            }
            CheckKind::Agent(a) if !a.send.is_empty() => {
                format!("{}, sending \"{}\"", c.label(), a.send.escape_ascii())
            }
            _ => c.label(),
        };
        let _ = writeln!(out, "       {what}: {}", c.timing);
    }
}

/// A `--down` argument that names no configured real server.
#[derive(Debug, thiserror::Error)]
#[error("--down {given}: {problem}")]
pub struct DownError {
    given: String,
    problem: String,
}

/// Resolves `--down` arguments (ADDR:PORT, or ADDR for every port) to configured real servers.
pub fn resolve_down(config: &Config, args: &[String]) -> Result<BTreeSet<SocketAddr>, DownError> {
    let reals = config.real_server_addrs();
    let mut down = BTreeSet::new();
    for given in args {
        let matched: Vec<SocketAddr> = if let Ok(sa) = given.parse::<SocketAddr>() {
            reals.iter().copied().filter(|r| *r == sa).collect()
        } else if let Ok(ip) = given
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            reals.iter().copied().filter(|r| r.ip() == ip).collect()
        } else {
            return Err(DownError {
                given: given.clone(),
                problem: "not an address; write ADDR:PORT, [V6]:PORT or ADDR".into(),
            });
        };
        if matched.is_empty() {
            let list: Vec<String> = reals.iter().map(ToString::to_string).collect();
            return Err(DownError {
                given: given.clone(),
                problem: format!(
                    "no real server has this address; the real servers are {}",
                    list.join(", ")
                ),
            });
        }
        down.extend(matched);
    }
    Ok(down)
}

/// `lvs-hc plan`: the operations the engine would apply to `actual` with the servers in `down`
/// failing (see [`what_if`]), one `ipvsadm` command per line.
pub fn plan_lines(config: &Config, actual: &Table, down: &BTreeSet<SocketAddr>) -> String {
    let mut out = String::new();
    for op in what_if(config, actual, down) {
        let _ = writeln!(out, "{op}");
    }
    out
}

/// `lvs-hc simulate`: runs a fault schedule and renders its report.
pub fn simulate_report(
    schedule: &crate::simulate::FaultSchedule,
    format: crate::simulate::ReportFormat,
) -> Result<String, String> {
    use crate::simulate::{render, run_schedule};
    let world = run_schedule(schedule, None, |_, _| Ok(()))?;
    let report = render(schedule, &world.borrow(), format);
    Ok(report)
}

#[cfg(test)]
mod announce_tests {
    use super::*;

    #[test]
    fn check_names_the_routes_announce_would_add() {
        let text = "[announce]\ntable = 100\n\n[[service]]\naddress = \"10.0.0.1:80\"\n\
                    [[service.server]]\naddress = \"10.0.1.1:80\"\n\
                    [[service]]\naddress = \"10.0.0.1:443\"\n\
                    [[service.server]]\naddress = \"10.0.1.1:443\"\n\
                    [[service]]\naddress = \"[fd00::1]:80\"\n\
                    [[service.server]]\naddress = \"[fd00:1::1]:80\"\n\
                    [[service]]\nfwmark = 3\n[[service.server]]\naddress = \"10.0.1.2:80\"\n";
        let config = Config::from_toml(text, "t.toml").unwrap();
        insta::assert_snapshot!(check_summary(&config, "t.toml"));
    }
}
