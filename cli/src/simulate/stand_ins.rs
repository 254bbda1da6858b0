//! What runs in place of the checks the simulator cannot run as configured. Each stand-in is
//! named in the report, so a simulated figure is never mistaken for one of the real check.
//!
//! - An exec check runs a program of the director's, which the simulation does not have: it
//!   runs as a tcp check of the same server (a dynamic weight stays the configured weight).
//! - An https check, or an smtp check with STARTTLS, that verifies certificates would reject
//!   the simulated server's test certificate: it runs without verification (the handshake, SNI
//!   and the HTTP or SMTP dialogue are real).
//! - A ping check has no stand-in: the simulated network carries no ICMP, and a configuration
//!   with one is refused ([`unreachable`]).
//! - A check's `source` address is not the simulated director's: probes leave from its one
//!   address.
//! - A check through the virtual address (`via_vip`) goes straight to its server at the
//!   target's port: the simulated network has no IPVS and carries no firewall marks.
//! - A check's `ip` (another address to probe) is not simulated: faults are the server's, so
//!   its probes go to the server.
//! - A body regex the simulated page cannot match is left out; statuses no one page can
//!   satisfy together make the check fail throughout, as they would against a real server.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use lvs_hc_core::config::{
    Check, CheckKind, GrpcCheck, HttpCheck, Server, SmtpCheck, TcpCheck, TlsSettings,
};
use lvs_hc_core::Config;

use super::runner::DIRECTOR;
use super::servers::{target, Sites};

/// A check the simulation runs differently from the configuration, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StandIn {
    /// The server whose check it is.
    pub server: SocketAddr,
    /// The check as configured: its label (`exec /usr/local/bin/check`).
    pub check: String,
    /// What the simulation does instead, and what that leaves out.
    pub instead: String,
}

impl std::fmt::Display for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {} {}", self.check, self.server, self.instead)
    }
}

/// A configuration as the simulator runs it.
pub(crate) struct SimulatedConfig {
    /// The configuration with the stand-ins in place.
    pub(crate) config: Config,
    /// The stand-ins, in the configuration's order.
    pub(crate) stand_ins: Vec<StandIn>,
}

impl SimulatedConfig {
    /// `config` with a stand-in for every check the simulator cannot run as configured.
    pub(crate) fn of(mut config: Config) -> SimulatedConfig {
        let mut stand_ins = Vec::new();
        for svc in &mut config.services {
            for server in svc.servers.iter_mut().chain(svc.fallbacks.iter_mut()) {
                for i in 0..server.checks.len() {
                    let mut check = server.checks[i].clone();
                    let label = check.label();
                    let note = |instead: String| StandIn {
                        server: server.addr,
                        check: label.clone(),
                        instead,
                    };
                    if let Some(ip) = check.ip {
                        // Faults are simulated per server: the probes go to the server itself.
                        stand_ins.push(note(format!(
                            "probes the simulated server itself, not address {ip}"
                        )));
                        check = Arc::new(Check {
                            ip: None,
                            ..(*check).clone()
                        });
                        server.checks[i] = check.clone();
                    }
                    if let Some(source) = check.source.filter(|_| network(&check)) {
                        stand_ins.push(note(format!(
                            "sends its probes from the simulated director's address {DIRECTOR}, \
                             not from source {source}"
                        )));
                    }
                    if let Some(via) = check.via.filter(|_| network(&check)) {
                        let port = check.port.unwrap_or(via.vip.port());
                        stand_ins.push(note(format!(
                            "goes straight to the simulated server at {}, not through VIP {} \
                             with mark {:#x}: the simulated network has no IPVS and carries \
                             no marks",
                            SocketAddr::new(server.addr.ip(), port),
                            SocketAddr::new(via.vip.ip(), port),
                            via.mark
                        )));
                    }
                    let (replacement, instead) = match &check.kind {
                        CheckKind::Exec(e) => {
                            let tcp = Check {
                                kind: CheckKind::Tcp(TcpCheck::default()),
                                ip: None,
                                port: Some(exec_port(server, &check)),
                                source: None,
                                via: None,
                                timing: check.timing,
                            };
                            let mut instead =
                                format!("is simulated as a tcp check of {}", target(server, &tcp));
                            if e.dynamic_weight {
                                instead.push_str(&format!(
                                    "; its weight=N output is not simulated: the server keeps \
                                     weight {}",
                                    server.weight
                                ));
                            }
                            (tcp, instead)
                        }
                        CheckKind::Https(h) => {
                            let tls = h.tls.clone().unwrap_or(TlsSettings {
                                sni: None,
                                verify: true,
                                ca_file: None,
                            });
                            if !tls.verify {
                                continue;
                            }
                            let mut instead = "does not verify the simulated server's test \
                                               certificate (verify = true is simulated as false"
                                .to_string();
                            if let Some(ca) = &tls.ca_file {
                                instead.push_str(&format!(", and ca_file {ca} is not read"));
                            }
                            instead.push(')');
                            let h = HttpCheck {
                                tls: Some(TlsSettings {
                                    verify: false,
                                    ca_file: None,
                                    ..tls
                                }),
                                ..h.clone()
                            };
                            let https = Check {
                                kind: CheckKind::Https(h),
                                ..(*check).clone()
                            };
                            (https, instead)
                        }
                        CheckKind::Grpc(g) => {
                            let Some(tls) = g.tls.clone().filter(|t| t.verify) else {
                                continue;
                            };
                            let instead = unverified(&tls);
                            let g = GrpcCheck {
                                tls: Some(TlsSettings {
                                    verify: false,
                                    ca_file: None,
                                    ..tls
                                }),
                                ..g.clone()
                            };
                            let grpc = Check {
                                kind: CheckKind::Grpc(g),
                                ..(*check).clone()
                            };
                            (grpc, instead)
                        }
                        CheckKind::Smtp(m) => {
                            let Some(tls) = m.starttls.clone().filter(|t| t.verify) else {
                                continue;
                            };
                            let mut instead = "does not verify the simulated server's test \
                                               certificate after STARTTLS (verify = true is \
                                               simulated as false"
                                .to_string();
                            if let Some(ca) = &tls.ca_file {
                                instead.push_str(&format!(", and ca_file {ca} is not read"));
                            }
                            instead.push(')');
                            let m = SmtpCheck {
                                starttls: Some(TlsSettings {
                                    verify: false,
                                    ca_file: None,
                                    ..tls
                                }),
                                ..m.clone()
                            };
                            let smtp = Check {
                                kind: CheckKind::Smtp(m),
                                ..(*check).clone()
                            };
                            (smtp, instead)
                        }
                        // Refused before this (`unreachable`).
                        CheckKind::Ping => continue,
                        CheckKind::Http(_)
                        | CheckKind::Tcp(_)
                        | CheckKind::Dns(_)
                        | CheckKind::Udp(_)
                        | CheckKind::Agent(_) => continue,
                    };
                    stand_ins.push(note(instead));
                    server.checks[i] = Arc::new(replacement);
                }
            }
        }
        // What the simulated servers answer, now that every check is one they can: a check
        // their page cannot pass gets a stand-in or fails throughout.
        let sites = Sites::of([&config]);
        for svc in &mut config.services {
            for server in svc.servers.iter_mut().chain(svc.fallbacks.iter_mut()) {
                for i in 0..server.checks.len() {
                    let check = server.checks[i].clone();
                    let (CheckKind::Http(h) | CheckKind::Https(h)) = &check.kind else {
                        continue;
                    };
                    let at = target(server, &check);
                    let Some(page) = sites.page(at, &h.path) else {
                        continue;
                    };
                    let note = |instead: String| StandIn {
                        server: server.addr,
                        check: check.label(),
                        instead,
                    };
                    if !h.expect_status.contains(page.status) {
                        stand_ins.push(note(format!(
                            "expects status {}, which other checks of {at}{} rule out: the \
                             simulated server answers {} there, so this check fails throughout",
                            h.expect_status, h.path, page.status
                        )));
                    }
                    let Some(regex) = h.expect_body_regex.as_ref() else {
                        continue;
                    };
                    if regex.is_match(&page.body) {
                        continue;
                    }
                    stand_ins.push(note(format!(
                        "is simulated without expect_body_regex /{}/, which the simulated \
                         page {:?} does not match",
                        regex.as_str(),
                        page.body
                    )));
                    let h = HttpCheck {
                        expect_body_regex: None,
                        ..h.clone()
                    };
                    let kind = match &check.kind {
                        CheckKind::Https(_) => CheckKind::Https(h),
                        _ => CheckKind::Http(h),
                    };
                    server.checks[i] = Arc::new(Check {
                        kind,
                        ..(*check).clone()
                    });
                }
            }
        }
        SimulatedConfig { config, stand_ins }
    }
}

/// Why the simulated network cannot carry a configuration's probes, if it cannot: a ping check
/// (the simulated network has no ICMP, and a ping has no honest stand-in: a tcp connect would
/// pass or fail for other reasons than an echo reply), a checked server on the director's own
/// IPv6 loopback (the simulated director is IPv4), or at the simulated director's address.
pub(crate) fn unreachable(config: &Config) -> Option<String> {
    if let Some((server, _)) =
        super::servers::checks(config).find(|(_, c)| c.kind == CheckKind::Ping)
    {
        return Some(format!(
            "{} has a ping check, and the simulated network carries no ICMP: simulate a copy \
             of the configuration without ping checks; `lvs-hc run` pings with real sockets",
            server.addr
        ));
    }
    super::servers::checks(config)
        .map(|(server, _)| server.addr)
        .find(|a| a.ip() == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) || a.ip() == DIRECTOR)
        .map(|a| {
            format!(
                "{a}: the simulated director is {DIRECTOR}, with no IPv6 loopback; \
                 a server there cannot be simulated"
            )
        })
}

/// The stand-in note of a TLS check whose verification the simulator turns off.
fn unverified(tls: &TlsSettings) -> String {
    let mut instead = "does not verify the simulated server's test certificate (verify = true \
                       is simulated as false"
        .to_string();
    if let Some(ca) = &tls.ca_file {
        instead.push_str(&format!(", and ca_file {ca} is not read"));
    }
    instead.push(')');
    instead
}

/// Whether a check probes over the network (and so binds to its `source`).
fn network(check: &Check) -> bool {
    !matches!(check.kind, CheckKind::Exec(_))
}

/// The port an exec check's tcp stand-in connects to: the check's, else the server's, else
/// another check's of the server, else 1 (any port: the simulated server listens wherever a
/// check probes).
fn exec_port(server: &Server, check: &Check) -> u16 {
    check
        .port
        .or((server.addr.port() != 0).then_some(server.addr.port()))
        .or(server.checks.iter().find_map(|c| c.port))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulated(checks: &str) -> SimulatedConfig {
        let text = format!(
            "[[service]]\naddress = \"10.0.0.1:80\"\n{checks}\n\
             [[service.server]]\naddress = \"10.0.0.2:80\"\nweight = 4\n"
        );
        SimulatedConfig::of(Config::from_toml(&text, "stand-ins").unwrap())
    }

    fn check(s: &SimulatedConfig, i: usize) -> &Check {
        &s.config.services[0].servers[0].checks[i]
    }

    fn lines(s: &SimulatedConfig) -> Vec<String> {
        s.stand_ins.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_ping_check_cannot_be_simulated() {
        let text = "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntype = \"ping\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:80\"\n";
        let why = unreachable(&Config::from_toml(text, "ping").unwrap()).unwrap();
        assert!(
            why.starts_with(
                "10.0.0.2:80 has a ping check, and the simulated network carries no ICMP"
            ),
            "{why}"
        );
    }

    #[test]
    fn an_smtp_check_verifying_its_certificate_runs_without_verification() {
        let s = simulated(
            "[[service.check]]\ntype = \"smtp\"\nport = 25\nstarttls = true\nca_file = \"/ca.pem\"",
        );
        let CheckKind::Smtp(m) = &check(&s, 0).kind else {
            panic!("not smtp")
        };
        assert_eq!(m.starttls.as_ref().map(|t| t.verify), Some(false));
        assert_eq!(
            lines(&s),
            [
                "smtp (port 25) on 10.0.0.2:80 does not verify the simulated server's test \
              certificate after STARTTLS (verify = true is simulated as false, and ca_file \
              /ca.pem is not read)"
            ]
        );
    }

    #[test]
    fn checks_the_simulator_runs_as_configured_are_left_alone() {
        let text = "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntype = \"http\"\n\
                    expect_body_regex = \"^healthy$\"\n[[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:80\"\n";
        let config = Config::from_toml(text, "as-is").unwrap();
        let s = SimulatedConfig::of(config.clone());
        assert_eq!(lines(&s), Vec::<String>::new());
        // The very checks: kept connections are keyed by the check's `Arc`.
        let (before, after) = (
            &config.services[0].servers[0].checks,
            &s.config.services[0].servers[0].checks,
        );
        assert!(before.iter().zip(after).all(|(a, b)| Arc::ptr_eq(a, b)));
    }

    #[test]
    fn a_check_of_another_address_probes_the_simulated_server_itself() {
        let s = simulated("[[service.check]]\ntype = \"tcp\"\nip = \"10.0.0.9\"\nport = 8080");
        assert_eq!(
            lines(&s),
            [
                "tcp (10.0.0.9:8080) on 10.0.0.2:80 probes the simulated server itself, not \
              address 10.0.0.9"
            ]
        );
        assert_eq!(check(&s, 0).ip, None);
        assert_eq!(check(&s, 0).port, Some(8080));
    }

    #[test]
    fn an_exec_check_runs_as_a_tcp_check_of_the_same_server() {
        let s = simulated(
            "[[service.check]]\ntype = \"exec\"\ncommand = [\"/usr/local/bin/check\", \"{ip}\"]\n\
             dynamic_weight = true\ninterval = \"3s\"",
        );
        assert_eq!(
            lines(&s),
            [
                "exec /usr/local/bin/check on 10.0.0.2:80 is simulated as a tcp check of \
              10.0.0.2:80; its weight=N output is not simulated: the server keeps weight 4"
            ]
        );
        assert_eq!(check(&s, 0).kind, CheckKind::Tcp(TcpCheck::default()));
        assert_eq!(
            check(&s, 0).timing.interval,
            std::time::Duration::from_secs(3)
        );
    }

    #[test]
    fn https_verification_is_switched_off_and_said_so() {
        let s = simulated(
            "[[service.check]]\ntype = \"https\"\nca_file = \"/etc/ca.pem\"\nsni = \"www.example.com\"",
        );
        assert_eq!(
            lines(&s),
            ["https GET / on 10.0.0.2:80 does not verify the simulated server's test certificate \
              (verify = true is simulated as false, and ca_file /etc/ca.pem is not read)"]
        );
        let CheckKind::Https(h) = &check(&s, 0).kind else {
            panic!("still https")
        };
        let tls = h.tls.as_ref().unwrap();
        assert_eq!(
            (tls.verify, tls.ca_file.as_deref(), tls.sni.as_deref()),
            (false, None, Some("www.example.com"))
        );
        let unverified = simulated("[[service.check]]\ntype = \"https\"\nverify = false");
        assert_eq!(lines(&unverified), Vec::<String>::new());
    }

    #[test]
    fn a_body_regex_the_simulated_page_cannot_match_is_left_out() {
        let s = simulated(
            "[[service.check]]\ntype = \"http\"\nexpect_body = \"ok\"\n\
             expect_body_regex = \"^[0-9]+ requests$\"",
        );
        assert_eq!(
            lines(&s),
            [
                "http GET / on 10.0.0.2:80 is simulated without expect_body_regex \
              /^[0-9]+ requests$/, which the simulated page \"ok\" does not match"
            ]
        );
        let CheckKind::Http(h) = &check(&s, 0).kind else {
            panic!("still http")
        };
        assert!(h.expect_body_regex.is_none());
        assert_eq!(h.expect_body.as_deref(), Some("ok"));
    }

    #[test]
    fn statuses_no_one_page_satisfies_are_named() {
        let s = simulated(
            "[[service.check]]\ntype = \"http\"\nexpect_status = [201]\n\
             [[service.check]]\ntype = \"http\"\nexpect_status = [202]\nmethod = \"HEAD\"",
        );
        assert_eq!(
            lines(&s),
            [
                "http HEAD / on 10.0.0.2:80 expects status 202, which other checks of \
              10.0.0.2:80/ rule out: the simulated server answers 201 there, so this check \
              fails throughout"
            ]
        );
        // One that other checks allow is simply served.
        let one = simulated("[[service.check]]\ntype = \"http\"\nexpect_status = [\"300-302\"]");
        assert_eq!(lines(&one), Vec::<String>::new());
    }

    #[test]
    fn a_source_address_is_named_as_not_simulated() {
        let s = simulated("[[service.check]]\ntype = \"tcp\"\nsource = \"10.0.0.9\"");
        assert_eq!(
            lines(&s),
            [
                "tcp on 10.0.0.2:80 sends its probes from the simulated director's address \
              10.255.255.254, not from source 10.0.0.9"
            ]
        );
    }

    #[test]
    fn a_check_through_the_vip_is_named_as_going_straight_to_the_server() {
        let s = simulated("[[service.check]]\ntype = \"tcp\"\nvia_vip = true");
        let via = check(&s, 0)
            .via
            .expect("via kept: the engine holds probes by it");
        assert_eq!(
            lines(&s),
            [format!(
                "tcp through VIP 10.0.0.1:80 on 10.0.0.2:80 goes straight to the simulated \
                 server at 10.0.0.2:80, not through VIP 10.0.0.1:80 with mark {:#x}: the \
                 simulated network has no IPVS and carries no marks",
                via.mark
            )]
        );
    }
}
