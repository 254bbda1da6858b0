//! Probes through the virtual address (`via_vip`): each such server gets a firewall-mark probe
//! service of lvs-hc's own holding only it; the service is in the kernel before the first probe
//! that needs it; changes to it are repaired without being reported as drift; marks in the
//! range that the configuration does not explain are removed, other firewall-mark services are
//! left alone; a reload or the exit removes what is no longer needed.

mod harness;

use std::collections::BTreeSet;
use std::time::Duration;

use harness::{addr, at, Harness};
use lvs_hc_core::config::{MarkRange, ProbeService};
use lvs_hc_core::table::{DestParams, Family, Forward, ServiceEntry, ServiceParams};
use lvs_hc_core::{Config, EventKind, Op, ServiceKey, Table};

const RS1: &str = "192.168.0.179:80";
const RS2: &str = "192.168.0.180:80";

fn config(via: bool, extra_server: bool) -> String {
    let extra = if extra_server {
        "[[service.server]]\naddress = \"192.168.0.181:80\"\n"
    } else {
        ""
    };
    format!(
        r#"
[daemon]
resync_interval = "2s"

[[service]]
address = "192.168.0.101:80"

[[service.check]]
type = "http"
via_vip = {via}
interval = "1s"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0s"

[[service.server]]
address = "{RS1}"

[[service.server]]
address = "{RS2}"
{extra}
[[service.fallback]]
address = "127.0.0.1:80"
"#
    )
}

fn probe_services(h: &Harness) -> Vec<ProbeService> {
    h.engine.config().probe_services.clone()
}

fn fwmark(mark: u32) -> ServiceKey {
    ServiceKey::Fwmark {
        mark,
        family: Family::Ipv4,
    }
}

/// The destinations of the configured service only.
fn web_dests(h: &Harness) -> Vec<String> {
    let key = ServiceKey::Tcp(addr("192.168.0.101:80"));
    h.kernel.services.get(&key).map_or(Vec::new(), |s| {
        s.dests.keys().map(|a| a.to_string()).collect()
    })
}

#[test]
fn each_server_gets_a_probe_service_before_its_first_probe_through_the_vip() {
    let mut h = Harness::new(&config(true, false), Table::new());
    h.run_until(at(3.0));
    let probes = probe_services(&h);
    assert_eq!(probes.len(), 2, "one probe service a server: {probes:?}");
    let marks: BTreeSet<u32> = probes.iter().map(ProbeService::mark).collect();
    assert_eq!(marks.len(), 2, "distinct marks");
    for p in &probes {
        assert!(MarkRange::DEFAULT.contains(p.mark()), "{:#x}", p.mark());
        let entry = h
            .kernel
            .services
            .get(&p.key)
            .expect("probe service in the kernel");
        assert_eq!(entry.params.scheduler, "rr");
        assert_eq!(
            entry.dests.iter().collect::<Vec<_>>(),
            [(&p.server, &DestParams::new(Forward::Dr, 1))],
            "only its server, weight 1, direct routing as the service"
        );
        let added = h
            .applied
            .iter()
            .find(|(_, op)| matches!(op, Op::AddDest { service, .. } if *service == p.key))
            .map(|(t, _)| *t)
            .expect("its destination added");
        let probes_of: Vec<_> = h.requests.iter().filter(|r| r.1 == p.server).collect();
        assert!(!probes_of.is_empty(), "{} probed", p.server);
        for (t, _, target, mark) in probes_of {
            assert!(
                *t >= added,
                "a probe at {t:?} before its probe service at {added:?}"
            );
            assert_eq!(*target, addr("192.168.0.101:80"), "sent to the VIP");
            assert_eq!(*mark, Some(p.mark()), "marked for its own probe service");
        }
    }
    assert_eq!(
        web_dests(&h),
        [RS1, RS2],
        "both servers in after passing probes"
    );
    assert!(
        !h.event_lines()
            .iter()
            .any(|l| l.contains("changed outside")),
        "no drift reported: {:#?}",
        h.event_lines()
    );
}

#[test]
fn no_probe_goes_through_the_vip_while_its_probe_service_cannot_be_added() {
    let mut h = Harness::new(&config(true, false), Table::new());
    h.fail_ops = true;
    h.run_until(at(4.0));
    assert!(
        h.requests.is_empty(),
        "probes without their probe service: {:?}",
        h.requests
    );
    assert!(h.kernel.services.is_empty());
    h.fail_ops = false;
    h.run_until(at(12.0));
    assert!(
        !h.requests.is_empty(),
        "probes once the probe services are in"
    );
    for p in probe_services(&h) {
        assert_eq!(h.kernel.services.get(&p.key), Some(&p.entry()));
    }
    assert_eq!(web_dests(&h), [RS1, RS2]);
}

#[test]
fn probe_services_changed_by_hand_are_repaired_and_not_reported_as_drift() {
    let mut h = Harness::new(&config(true, false), Table::new());
    h.run_until(at(3.0));
    let p = probe_services(&h)[0].clone();
    h.kernel
        .apply(&Op::DelService { key: p.key })
        .expect("deleted by hand");
    h.run_until(at(8.0));
    assert_eq!(h.kernel.services.get(&p.key), Some(&p.entry()), "repaired");
    assert!(h
        .first_event(|k| matches!(k, EventKind::ProbeServicesRepaired { .. }))
        .is_some());
    assert!(
        h.first_event(|k| matches!(k, EventKind::Drift { .. }))
            .is_none(),
        "a probe service is not the operator's configuration: {:#?}",
        h.event_lines()
    );
}

#[test]
fn marks_in_the_range_the_configuration_does_not_explain_are_removed_others_are_left() {
    let mut kernel = Table::new();
    let entry = ServiceEntry::new(
        ServiceParams::new("rr"),
        [(addr("192.168.0.179:80"), DestParams::new(Forward::Dr, 1))]
            .into_iter()
            .collect(),
    );
    let stale = fwmark(0x4c48_abcd);
    let operators = fwmark(7);
    kernel.services.insert(stale, entry.clone());
    kernel.services.insert(operators, entry.clone());
    let mut h = Harness::new(&config(true, false), kernel);
    h.run_until(at(3.0));
    assert!(
        !probe_services(&h).iter().any(|p| p.key == stale),
        "the test's stale mark is not a configured one"
    );
    assert!(
        !h.kernel.services.contains_key(&stale),
        "stale probe service removed"
    );
    assert_eq!(
        h.kernel.services.get(&operators),
        Some(&entry),
        "left alone"
    );
}

#[test]
fn a_reload_keeps_the_marks_of_unchanged_servers_and_removes_probe_services_no_longer_needed() {
    let mut h = Harness::new(&config(true, false), Table::new());
    h.run_until(at(3.0));
    let before = probe_services(&h);
    h.reload(&config(true, true));
    h.run_until(at(6.0));
    let after = probe_services(&h);
    assert_eq!(after.len(), 3);
    for p in &before {
        assert!(after.contains(p), "{p:?} kept its mark across the reload");
        assert_eq!(h.kernel.services.get(&p.key), Some(&p.entry()));
    }
    assert_eq!(
        web_dests(&h).len(),
        3,
        "the new server probed through the VIP and in"
    );
    h.reload(&config(false, true));
    h.run_until(at(9.0));
    assert!(probe_services(&h).is_empty());
    for p in &after {
        assert!(!h.kernel.services.contains_key(&p.key), "{p:?} removed");
    }
    assert_eq!(web_dests(&h).len(), 3, "the servers stay, probed directly");
    assert!(h.requests.iter().any(|r| r.0 > at(7.0) && r.3.is_none()));
}

#[test]
fn a_reload_that_moves_the_mark_range_removes_the_probe_services_of_the_old_one() {
    let mut h = Harness::new(&config(true, false), Table::new());
    h.run_until(at(3.0));
    let before = probe_services(&h);
    let moved = config(true, false).replace(
        "resync_interval = \"2s\"",
        "resync_interval = \"2s\"\nvia_vip_marks = \"0x10000-0x1ffff\"",
    );
    h.reload(&moved);
    h.run_until(at(8.0));
    let after = probe_services(&h);
    assert_eq!(after.len(), 2);
    for p in &before {
        assert!(!h.kernel.services.contains_key(&p.key), "{p:?} left behind");
    }
    for p in &after {
        assert!((0x10000..=0x1ffff).contains(&p.mark()));
        assert_eq!(h.kernel.services.get(&p.key), Some(&p.entry()));
    }
    assert_eq!(web_dests(&h), [RS1, RS2]);
}

#[test]
fn exit_removes_the_probe_services() {
    let mut h = Harness::new(&config(true, false), Table::new());
    h.run_until(at(3.0));
    assert!(h.kernel.services.len() >= 3);
    h.withdraw();
    h.run_for(Duration::from_secs(1));
    assert!(h.engine.withdrawn());
    assert!(h.kernel.services.is_empty(), "{:?}", h.kernel.services);
}

#[test]
fn marks_depend_only_on_the_service_and_the_server() {
    let a = Config::from_toml(&config(true, true), "a.toml").unwrap();
    let b = Config::from_toml(&config(true, true), "b.toml").unwrap();
    assert_eq!(
        a.probe_services, b.probe_services,
        "the same on every director"
    );
    // The same servers in another order: each keeps its mark.
    let reordered = config(true, true)
        .replace(RS1, "SWAP")
        .replace(RS2, RS1)
        .replace("SWAP", RS2);
    let c = Config::from_toml(&reordered, "c.toml").unwrap();
    let by_server = |c: &Config| {
        let mut v: Vec<(String, u32)> = c
            .probe_services
            .iter()
            .map(|p| (p.server.to_string(), p.mark()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(by_server(&a), by_server(&c));
    // The check knows its mark and where it goes.
    let check = &a.services[0].servers[0].checks[0];
    let via = check.via.expect("via_vip");
    assert_eq!(via.vip, addr("192.168.0.101:80"));
    assert_eq!(
        Some(via.mark),
        a.probe_services
            .iter()
            .find(|p| p.server == addr(RS1))
            .map(|p| p.mark())
    );
    assert_eq!(check.label(), "http GET / through VIP 192.168.0.101:80");
}

#[test]
fn a_small_range_is_filled_and_then_refused() {
    let with_range = |range: &str| {
        config(true, true).replace(
            "resync_interval = \"2s\"",
            &format!("resync_interval = \"2s\"\nvia_vip_marks = \"{range}\""),
        )
    };
    let c = Config::from_toml(&with_range("10-12"), "t.toml").unwrap();
    let marks: BTreeSet<u32> = c.probe_services.iter().map(ProbeService::mark).collect();
    // Three real servers (the fallback has no checks: a service's checks are its real servers').
    assert_eq!(marks, [10, 11, 12].into_iter().collect());
    let e = Config::from_toml(&with_range("10-11"), "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("more servers are probed through their virtual address than [daemon] via_vip_marks (0xa-0xb) holds marks (2)"), "{e}");
}

#[test]
fn via_vip_is_refused_where_it_cannot_work() {
    let cases = [
        (
            "type = \"ping\"\nvia_vip = true",
            "not for this check: ICMP echo is not balanced by IPVS",
        ),
        (
            "type = \"agent\"\nport = 9999\nvia_vip = true",
            "not for this check: an agent is asked on the server's own address",
        ),
        (
            "type = \"tcp\"\nip = \"10.0.0.1\"\nvia_vip = true",
            "not for this check: `ip` sends the probe elsewhere",
        ),
    ];
    for (check, message) in cases {
        let text = format!(
            "[[service]]\naddress = \"192.168.0.101:80\"\n[[service.check]]\n{check}\n\
             [[service.check]]\ntype = \"tcp\"\n[[service.server]]\naddress = \"{RS1}\"\n"
        );
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains(message), "{check}: {e}");
        assert!(e.contains("service[0].check[0].via_vip"), "{e}");
    }
    let fwmark_service = "[[service]]\nfwmark = 5\n[[service.check]]\ntype = \"tcp\"\nport = 80\n\
        via_vip = true\n[[service.server]]\naddress = \"192.168.0.179\"\n";
    let e = Config::from_toml(fwmark_service, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("a firewall-mark service has no single virtual address"),
        "{e}"
    );
    let in_range =
        "[[service]]\nfwmark = 0x4c480001\n[[service.server]]\naddress = \"192.168.0.179\"\n";
    let e = Config::from_toml(in_range, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("is in [daemon] via_vip_marks (0x4c480000-0x4c48ffff)"),
        "{e}"
    );
    for bad in ["0-5", "9-3", "x-1", "7"] {
        let text = format!(
            "[daemon]\nvia_vip_marks = \"{bad}\"\n[[service]]\naddress = \"192.168.0.101:80\"\n\
             [[service.server]]\naddress = \"{RS1}\"\n"
        );
        let e = Config::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(e.contains("is not a range of firewall marks"), "{bad}: {e}");
    }
}

mod laws {
    use super::*;
    use harness::Behaviour;
    use proptest::prelude::*;

    /// The configured service's entry, or none.
    fn web(h: &Harness) -> Option<ServiceEntry> {
        h.kernel
            .services
            .get(&ServiceKey::Tcp(addr("192.168.0.101:80")))
            .cloned()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever the servers do and whatever is deleted by hand, once things settle the
        /// configured service is the same with via_vip as without (the probes only go another
        /// way), and every probe service is in the kernel as lvs-hc set it; no probe ever went
        /// out before its probe service was in.
        #[test]
        fn via_vip_changes_the_probes_path_not_the_table(
            steps in proptest::collection::vec(
                (0usize..3, prop_oneof![Just(Behaviour::Healthy), Just(Behaviour::Refused), Just(Behaviour::Blackhole)], any::<bool>()),
                1..8,
            ),
        ) {
            let servers = [RS1, RS2, "192.168.0.181:80"];
            let mut via = Harness::new(&config(true, true), Table::new());
            let mut plain = Harness::new(&config(false, true), Table::new());
            let mut t = 3.0;
            via.run_until(at(t));
            plain.run_until(at(t));
            for (server, behaviour, flush) in steps {
                for h in [&mut via, &mut plain] {
                    h.set(servers[server], behaviour);
                }
                if flush {
                    // `ipvsadm -C` on the director: everything, probe services included.
                    via.kernel = Table::new();
                    plain.kernel = Table::new();
                }
                t += 6.0;
                via.run_until(at(t));
                plain.run_until(at(t));
                prop_assert_eq!(web(&via), web(&plain));
                for p in &via.engine.config().probe_services {
                    prop_assert_eq!(via.kernel.services.get(&p.key), Some(&p.entry()));
                }
            }
        }
    }
}
