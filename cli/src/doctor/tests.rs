//! `diagnose` against machines in memory: each finding, its wording, and the exit status.

use std::collections::{BTreeMap, BTreeSet};

use super::system::MockDoctorSystem;
use super::*;

/// A director in memory: `eth0` holds its own address and (by default) the VIP; every probe
/// passes unless told otherwise.
struct Fake {
    ipvs: Ipvs,
    interfaces: Vec<Interface>,
    routes: BTreeMap<IpAddr, String>,
    sysctls: BTreeMap<String, String>,
    arp: Result<Vec<ArpAnswer>, Unable>,
    own: BTreeMap<IpAddr, ProbeOutcome>,
    via: BTreeMap<IpAddr, ProbeOutcome>,
    /// Probe services in the kernel.
    kernel: BTreeSet<ServiceKey>,
    /// Every probe service added, and every one removed, in order.
    added: Vec<ServiceKey>,
    removed: Vec<ServiceKey>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fail(reason: &str) -> ProbeOutcome {
    ProbeOutcome::Fail {
        reason: reason.into(),
    }
}

impl Fake {
    fn healthy() -> Fake {
        let mut sysctls = BTreeMap::new();
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.accept_local", "0"),
            ("net.ipv4.conf.eth0.accept_local", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.eth0.rp_filter", "0"),
        ] {
            sysctls.insert(k.to_string(), v.to_string());
        }
        let mut routes = BTreeMap::new();
        for s in ["192.168.0.179", "192.168.0.180"] {
            routes.insert(ip(s), "eth0".to_string());
        }
        Fake {
            ipvs: Ipvs::Present,
            interfaces: vec![
                Interface {
                    name: "lo".into(),
                    mtu: 65536,
                    addrs: vec![ip("127.0.0.1")],
                },
                Interface {
                    name: "eth0".into(),
                    mtu: 1500,
                    addrs: vec![ip("192.168.0.178"), ip("192.168.0.101")],
                },
            ],
            routes,
            sysctls,
            arp: Ok(vec![]),
            own: BTreeMap::new(),
            via: BTreeMap::new(),
            kernel: BTreeSet::new(),
            added: vec![],
            removed: vec![],
        }
    }

    fn set(&mut self, key: &str, value: &str) {
        self.sysctls.insert(key.into(), value.into());
    }

    fn drop_vip(&mut self) {
        self.interfaces[1]
            .addrs
            .retain(|a| *a != ip("192.168.0.101"));
    }
}

impl DoctorSystem for Fake {
    fn ipvs(&mut self) -> Ipvs {
        self.ipvs.clone()
    }
    fn interfaces(&mut self) -> Result<Vec<Interface>, String> {
        Ok(self.interfaces.clone())
    }
    fn route_interface(&mut self, to: IpAddr) -> Option<String> {
        self.routes.get(&to).cloned()
    }
    fn sysctl(&mut self, key: &Sysctl) -> Option<String> {
        self.sysctls.get(&key.to_string()).cloned()
    }
    fn arp_answers(&mut self, _: &str, _: IpAddr) -> Result<Vec<ArpAnswer>, Unable> {
        self.arp.clone()
    }
    fn probe(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome> {
        reqs.iter()
            .map(|r| {
                assert!(r.check.via.is_none(), "an own-address probe carries via");
                let pass = ProbeOutcome::Pass { weight: None };
                self.own.get(&r.server.ip()).cloned().unwrap_or(pass)
            })
            .collect()
    }
    fn probe_via(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome> {
        reqs.iter()
            .map(|r| {
                let mark = r
                    .check
                    .via
                    .expect("a probe through the VIP without via")
                    .mark;
                assert!(
                    self.kernel.iter().any(|k| matches!(k,
                        ServiceKey::Fwmark { mark: m, .. } if *m == mark)),
                    "probed through the VIP before its probe service was in the kernel"
                );
                let pass = ProbeOutcome::Pass { weight: None };
                self.via.get(&r.server.ip()).cloned().unwrap_or(pass)
            })
            .collect()
    }
    fn add_probe_services(&mut self, wanted: &[ProbeService]) -> Result<Vec<ServiceKey>, Unable> {
        let mut added = vec![];
        for p in wanted {
            if self.kernel.insert(p.key) {
                added.push(p.key);
            }
        }
        self.added.extend(&added);
        Ok(added)
    }
    fn remove_probe_services(&mut self, added: &[ServiceKey]) -> Result<(), String> {
        for k in added {
            assert!(self.kernel.remove(k), "ENOENT: {k}");
        }
        self.removed.extend(added);
        Ok(())
    }
}

/// A DR service with a via_vip check on two servers, the VIPs on eth0.
const DR: &str = r#"
[director]
interface = "eth0"
[[service]]
address = "192.168.0.101:80"
[[service.check]]
type = "tcp"
via_vip = true
[[service.server]]
address = "192.168.0.179:80"
[[service.server]]
address = "192.168.0.180:80"
"#;

fn config(text: &str) -> Config {
    Config::from_toml(text, "test.toml").unwrap()
}

fn report(text: &str, sys: &mut dyn DoctorSystem) -> (String, ExitCode) {
    let findings = diagnose(&config(text), sys);
    (render(&findings), exit_code(&findings))
}

fn lines_with<'a>(report: &'a str, level: &str) -> Vec<&'a str> {
    report.lines().filter(|l| l.starts_with(level)).collect()
}

#[test]
fn a_healthy_director_reports_only_ok_lines_and_exits_0() {
    let mut sys = Fake::healthy();
    let (text, code) = report(DR, &mut sys);
    insta::assert_snapshot!(text);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(lines_with(&text, "warn").is_empty() && lines_with(&text, "FAIL").is_empty());
}

#[test]
fn missing_ipvs_fails_with_modprobe_and_skips_the_probes_through_the_vip() {
    let mut sys = Fake::healthy();
    sys.ipvs = Ipvs::Absent;
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(
        lines_with(&text, "FAIL"),
        [
            "FAIL  IPVS is not in the kernel (no netlink family IPVS, no /proc/net/ip_vs): \
          `modprobe ip_vs` (and list ip_vs in /etc/modules-load.d/ to load it at boot)"
        ]
    );
    assert!(text.contains(
        "warn  2 checks not run through the VIP: IPVS is not in the kernel: `modprobe ip_vs`"
    ));
    assert!(sys.added.is_empty());
}

#[test]
fn a_vip_missing_fails_when_setup_holds_it_and_warns_when_something_else_may() {
    let mut sys = Fake::healthy();
    sys.drop_vip();
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::from(1));
    assert!(text.contains(
        "FAIL  VIP 192.168.0.101 is not on this director: `ip addr add 192.168.0.101/32 dev \
         eth0`, or `lvs-hc setup director`\n"
    ));
    let unmanaged = DR.replace("[director]\ninterface = \"eth0\"\n", "");
    let mut sys = Fake::healthy();
    sys.drop_vip();
    let (text, code) = report(&unmanaged, &mut sys);
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(text.contains(
        "warn  VIP 192.168.0.101 is not on this director: right on a standby whose master \
         holds it (keepalived)"
    ));
    // Not held here: no ARP to watch for it.
    assert!(!text.contains("ARP"), "{text}");
}

#[test]
fn nat_without_ip_forward_fails() {
    let nat = r#"
[[service]]
address = "192.168.0.101:80"
forward = "nat"
[[service.server]]
address = "10.0.0.2:8080"
"#;
    let mut sys = Fake::healthy();
    sys.set("net.ipv4.ip_forward", "0");
    let (text, code) = report(nat, &mut sys);
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(
        lines_with(&text, "FAIL"),
        [
            "FAIL  net.ipv4.ip_forward is 0: NAT replies are not routed back to the clients: \
          `sysctl -w net.ipv4.ip_forward=1`, or `lvs-hc setup director`"
        ]
    );
    sys.set("net.ipv4.ip_forward", "1");
    let (text, _) = report(nat, &mut sys);
    assert!(text.contains("ok    net.ipv4.ip_forward is 1 (NAT)\n"));
}

#[test]
fn source_validation_that_drops_the_vips_replies_fails_and_holds_back_those_probes() {
    let mut sys = Fake::healthy();
    sys.set("net.ipv4.conf.eth0.accept_local", "0");
    // The kernel takes the larger of `all` and the interface.
    sys.set("net.ipv4.conf.all.rp_filter", "2");
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(
        lines_with(&text, "FAIL"),
        [
            "FAIL  net.ipv4.conf.eth0.accept_local is 0 (should be 1), rp_filter on eth0 is 2 \
          (the larger of `all` and eth0; should be 0): replies to probes through the VIP are \
          dropped as martians: `lvs-hc setup director`"
        ]
    );
    assert!(!text.contains("through VIP"), "{text}");
    assert!(sys.added.is_empty());
}

#[test]
fn accept_local_on_all_is_enough() {
    let mut sys = Fake::healthy();
    sys.set("net.ipv4.conf.eth0.accept_local", "0");
    sys.set("net.ipv4.conf.all.accept_local", "1");
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
}

#[test]
fn an_arp_conflict_fails_naming_the_mac_and_the_ip() {
    let mut sys = Fake::healthy();
    sys.arp = Ok(vec![
        ArpAnswer {
            mac: "52:54:00:12:34:56".into(),
            ip: Some(ip("192.168.0.180")),
        },
        ArpAnswer {
            mac: "52:54:00:ab:cd:ef".into(),
            ip: None,
        },
    ]);
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(
        lines_with(&text, "FAIL"),
        [
            "FAIL  192.168.0.180 (52:54:00:12:34:56) answers ARP for VIP 192.168.0.101 on eth0: \
             set arp_ignore=1 and arp_announce=2 on it, or run `lvs-hc setup realserver`",
            "FAIL  52:54:00:ab:cd:ef answers ARP for VIP 192.168.0.101 on eth0: set \
             arp_ignore=1 and arp_announce=2 on it, or run `lvs-hc setup realserver`",
        ]
    );
}

#[test]
fn arp_that_cannot_be_checked_is_a_warning_never_a_pass() {
    let mut sys = Fake::healthy();
    sys.arp = Err(Unable("Operation not permitted (os error 1)".into()));
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(text.contains(
        "warn  ARP for VIP 192.168.0.101 on eth0 not checked: Operation not permitted (os error 1)"
    ));
    assert!(!text.contains("no other machine answers ARP"));
}

#[test]
fn a_server_that_answers_on_its_own_address_but_not_through_the_vip_is_named() {
    let mut sys = Fake::healthy();
    sys.via
        .insert(ip("192.168.0.180"), fail("timed out after 1s"));
    let (text, code) = report(DR, &mut sys);
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(
        lines_with(&text, "FAIL"),
        [
            "FAIL  192.168.0.180 answers on its own address but not for VIP 192.168.0.101:80 (is \
          the VIP on its lo?): run `lvs-hc setup realserver --vip 192.168.0.101` on it"
        ]
    );
    assert!(text.contains("ok    192.168.0.180:80 tcp on its own address passes\n"));
}

#[test]
fn a_server_down_on_its_own_address_is_not_probed_through_the_vip() {
    let mut sys = Fake::healthy();
    sys.own
        .insert(ip("192.168.0.179"), fail("connection refused"));
    sys.via
        .insert(ip("192.168.0.179"), fail("connection refused"));
    let (text, _) = report(DR, &mut sys);
    assert_eq!(
        lines_with(&text, "FAIL"),
        [
            "FAIL  192.168.0.179:80 tcp on its own address fails: connection refused: the server \
          or its service is down, or a firewall is in the way: try it from this director \
          (`curl`, `nc -vz 192.168.0.179 80`)"
        ]
    );
    assert!(!text.contains("192.168.0.179:80 tcp through"), "{text}");
}

#[test]
fn probe_services_are_added_only_where_missing_and_removed_after() {
    let cfg = config(DR);
    let mut sys = Fake::healthy();
    // The daemon holds one already.
    sys.kernel.insert(cfg.probe_services[0].key);
    diagnose(&cfg, &mut sys);
    assert_eq!(sys.added, [cfg.probe_services[1].key]);
    assert_eq!(sys.removed, sys.added);
    assert_eq!(sys.kernel, BTreeSet::from([cfg.probe_services[0].key]));
}

#[test]
fn probe_services_are_removed_after_the_probes_through_the_vip_and_never_before() {
    let cfg = config(DR);
    let mut sys = MockDoctorSystem::new();
    let mut seq = mockall::Sequence::new();
    let healthy = Fake::healthy();
    let ifs = healthy.interfaces.clone();
    let sysctls = healthy.sysctls.clone();
    sys.expect_ipvs().return_const(Ipvs::Present);
    sys.expect_interfaces().returning(move || Ok(ifs.clone()));
    sys.expect_route_interface()
        .returning(|_| Some("eth0".into()));
    sys.expect_sysctl()
        .returning(move |k| sysctls.get(&k.to_string()).cloned());
    sys.expect_arp_answers().returning(|_, _| Ok(vec![]));
    sys.expect_probe()
        .returning(|r| vec![ProbeOutcome::Pass { weight: None }; r.len()]);
    let keys: Vec<ServiceKey> = cfg.probe_services.iter().map(|p| p.key).collect();
    let added = keys.clone();
    sys.expect_add_probe_services()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| Ok(added.clone()));
    sys.expect_probe_via()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|r| vec![ProbeOutcome::Pass { weight: None }; r.len()]);
    sys.expect_remove_probe_services()
        .withf(move |k| k == keys.as_slice())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let findings = diagnose(&cfg, &mut sys);
    assert_eq!(exit_code(&findings), ExitCode::SUCCESS);
}

#[test]
fn probes_through_the_vip_that_cannot_run_are_a_warning() {
    let cfg = config(DR);
    let mut sys = Fake::healthy();
    struct NoVia(Fake);
    impl DoctorSystem for NoVia {
        fn ipvs(&mut self) -> Ipvs {
            self.0.ipvs()
        }
        fn interfaces(&mut self) -> Result<Vec<Interface>, String> {
            self.0.interfaces()
        }
        fn route_interface(&mut self, to: IpAddr) -> Option<String> {
            self.0.route_interface(to)
        }
        fn sysctl(&mut self, key: &Sysctl) -> Option<String> {
            self.0.sysctl(key)
        }
        fn arp_answers(&mut self, i: &str, vip: IpAddr) -> Result<Vec<ArpAnswer>, Unable> {
            self.0.arp_answers(i, vip)
        }
        fn probe(&mut self, reqs: &[ProbeRequest]) -> Vec<ProbeOutcome> {
            self.0.probe(reqs)
        }
        fn probe_via(&mut self, _: &[ProbeRequest]) -> Vec<ProbeOutcome> {
            unreachable!("no probe services, no probes through the VIP")
        }
        fn add_probe_services(&mut self, _: &[ProbeService]) -> Result<Vec<ServiceKey>, Unable> {
            Err(Unable("Operation not permitted (os error 1)".into()))
        }
        fn remove_probe_services(&mut self, _: &[ServiceKey]) -> Result<(), String> {
            unreachable!("nothing was added")
        }
    }
    sys.arp = Ok(vec![]);
    let findings = diagnose(&cfg, &mut NoVia(sys));
    assert_eq!(exit_code(&findings), ExitCode::SUCCESS);
    assert!(render(&findings).contains(
        "warn  2 checks not run through the VIP: Operation not permitted (os error 1): run \
         doctor as root (it adds the probe services), with the configuration the daemon \
         runs\n"
    ));
}

#[test]
fn servers_without_via_vip_are_named_once_as_not_probed_through_the_vip() {
    let plain = DR.replace("via_vip = true\n", "");
    let mut sys = Fake::healthy();
    let (text, code) = report(&plain, &mut sys);
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(
        lines_with(&text, "warn"),
        [
            "warn  not probed through the VIP: 192.168.0.179:80, 192.168.0.180:80 (a VIP missing \
          from a real server goes unseen): set `via_vip = true` on a check of each, then run \
          `lvs-hc setup director`"
        ]
    );
    // No via_vip: the source-validation settings do not matter.
    assert!(!text.contains("accept_local"), "{text}");
}

#[test]
fn tun_warns_of_the_room_the_tunnel_header_leaves() {
    let tun = DR.replace(
        "address = \"192.168.0.179:80\"\n",
        "address = \"192.168.0.179:80\"\nforward = \"tun\"\n",
    );
    let mut sys = Fake::healthy();
    let (text, _) = report(&tun, &mut sys);
    assert_eq!(
        lines_with(&text, "warn"),
        [
            "warn  TUN to 192.168.0.179 leaves by eth0 (MTU 1500): the tunnel header takes 20 \
          bytes, so a client's packet over 1480 bytes is fragmented, or dropped when it may not \
          be: lower the clients' MSS to 1440 (iptables TCPMSS), raise the MTU of the path to \
          the real servers, or set the real servers' tunl0 MTU to 1480"
        ]
    );
}

#[test]
fn a_director_with_every_problem_reports_each_with_its_fix() {
    let mixed = r#"
[director]
interface = "eth0"
[[service]]
address = "192.168.0.101:80"
[[service.check]]
type = "http"
path = "/health"
via_vip = true
[[service.server]]
address = "192.168.0.179:80"
[[service.server]]
address = "192.168.0.180:80"
[[service]]
address = "192.168.0.102:443"
forward = "nat"
[[service.check]]
type = "tcp"
[[service.server]]
address = "10.0.0.2:8443"
"#;
    let mut sys = Fake::healthy();
    sys.set("net.ipv4.ip_forward", "0");
    sys.routes.insert(ip("10.0.0.2"), "eth1".into());
    sys.own.insert(ip("10.0.0.2"), fail("connection refused"));
    sys.via
        .insert(ip("192.168.0.180"), fail("timed out after 1s"));
    sys.arp = Ok(vec![ArpAnswer {
        mac: "52:54:00:12:34:56".into(),
        ip: Some(ip("192.168.0.180")),
    }]);
    let (text, code) = report(mixed, &mut sys);
    insta::assert_snapshot!(text);
    assert_eq!(code, ExitCode::from(1));
}
