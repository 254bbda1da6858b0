//! `[announce]`: what the configuration accepts, and which VIPs the engine's health verdicts
//! make ready (a service needs `max(quorum, 1)` healthy real servers; fallbacks do not count;
//! firewall-mark services are never announced).

mod harness;

use std::time::Duration;

use harness::{Behaviour, Harness};
use lvs_hc_core::announce::{plan, Route, VipPlan};
use lvs_hc_core::config::Require;
use lvs_hc_core::event::EventKind;
use lvs_hc_core::health::Health;
use lvs_hc_core::{Config, Table};

const CHECK: &str = "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";

fn config(announce: &str) -> String {
    format!(
        r#"
{announce}

[[service]]
address = "10.0.0.1:80"
[[service.check]]
type = "tcp"
{CHECK}
[[service.server]]
address = "192.168.0.2:80"
[[service.server]]
address = "192.168.0.3:80"
[[service.fallback]]
address = "127.0.0.1:80"

[[service]]
address = "10.0.0.2:80"
quorum = 2
[[service.check]]
type = "tcp"
{CHECK}
[[service.server]]
address = "192.168.0.4:80"
[[service.server]]
address = "192.168.0.5:80"

[[service]]
fwmark = 7
[[service.check]]
type = "tcp"
port = 80
{CHECK}
[[service.server]]
address = "192.168.0.6:80"
"#
    )
}

fn error(announce: &str) -> String {
    Config::from_toml(&config(announce), "t.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn defaults_are_protocol_99_a_five_second_stall_and_any() {
    let c = Config::from_toml(&config("[announce]\ntable = 100"), "t.toml").unwrap();
    let a = c.announce.expect("[announce]");
    assert_eq!(
        (a.table, a.protocol, a.stall_timeout, a.require),
        (100, 99, Duration::from_secs(5), Require::Any)
    );
    let c = Config::from_toml(
        &config(
            "[announce]\ntable = 4294967295\nprotocol = 200\nstall_timeout = \"2s\"\n\
             require = \"all\"",
        ),
        "t.toml",
    )
    .unwrap();
    let a = c.announce.unwrap();
    assert_eq!(
        (a.table, a.protocol, a.stall_timeout, a.require),
        (u32::MAX, 200, Duration::from_secs(2), Require::All)
    );
    assert!(Config::from_toml(&config(""), "t.toml")
        .unwrap()
        .announce
        .is_none());
}

#[test]
fn the_kernels_tables_and_protocols_are_refused_with_where_and_why() {
    let e = error("[announce]\ntable = 254");
    assert!(e.contains("t.toml:3:9"), "{e}");
    assert!(e.contains("announce.table"), "{e}");
    assert!(e.contains("table 254 is the kernel's `main` table"), "{e}");
    assert!(error("[announce]\ntable = 255").contains("`local`"));
    assert!(error("[announce]\ntable = 253").contains("`default`"));
    assert!(error("[announce]\ntable = 0").contains("expected an integer from 1 to 4294967295"));
    let e = error("[announce]\ntable = 100\nprotocol = 4");
    assert!(e.contains("announce.protocol"), "{e}");
    assert!(e.contains("protocol 4 is the kernel's own"), "{e}");
    assert!(error("[announce]\ntable = 100\nprotocol = 256").contains("from 0 to 255"));
    assert!(error("[announce]\nprotocol = 99").contains("table"));
    assert!(error("[announce]\ntable = 100\nstall_timeout = \"100ms\"").contains("must be from"));
    assert!(error("[announce]\ntable = 100\nrequire = \"most\"").contains("\"any\", \"all\""));
    assert!(error("[announce]\ntable = 100\ntabel = 1").contains("tabel"));
}

fn plans(h: &Harness) -> Vec<VipPlan> {
    plan(&h.engine.readiness(), Require::Any)
}

#[test]
fn a_vip_is_ready_while_its_service_has_its_quorum_of_healthy_servers() {
    let mut h = Harness::new(&config("[announce]\ntable = 100"), Table::new());
    for s in [
        "192.168.0.2:80",
        "192.168.0.3:80",
        "192.168.0.4:80",
        "192.168.0.5:80",
    ] {
        h.set(s, Behaviour::Healthy);
    }
    h.set("192.168.0.6:80", Behaviour::Healthy);
    h.set("127.0.0.1:80", Behaviour::Healthy);
    h.run_for(Duration::from_secs(3));
    let p = plans(&h);
    assert_eq!(p.len(), 2, "the fwmark service has no VIP: {p:?}");
    assert!(p.iter().all(|p| p.ready), "{p:?}");
    assert_eq!(p[0].why, "1 of 1 services ready");

    // 10.0.0.2 needs 2 (quorum 2): one failing is enough to withdraw it.
    h.set("192.168.0.5:80", Behaviour::Refused);
    // 10.0.0.1 on its fallback only: the sorry server does not count.
    h.set("192.168.0.2:80", Behaviour::Refused);
    h.set("192.168.0.3:80", Behaviour::Refused);
    h.run_for(Duration::from_secs(3));
    let p = plans(&h);
    assert!(!p[0].ready && !p[1].ready, "{p:?}");
    assert_eq!(p[0].why, "TCP 10.0.0.1:80 has 0 healthy of 2 (quorum 1)");
    assert_eq!(p[1].why, "TCP 10.0.0.2:80 has 1 healthy of 2 (quorum 2)");
    let fwm = &h.engine.readiness()[2];
    assert!(!fwm.ready() && fwm.healthy == 1);

    h.set("192.168.0.3:80", Behaviour::Healthy);
    h.run_for(Duration::from_secs(3));
    assert!(plans(&h)[0].ready);
}

#[test]
fn nothing_is_ready_before_the_first_verdicts() {
    let h = Harness::new(&config("[announce]\ntable = 100"), Table::new());
    assert!(plans(&h).iter().all(|p| !p.ready));
}

/// A director that just started announces a VIP only once it has a verdict on every server
/// of its service: before that its table may lack a server the other directors have, and with
/// `mh` the flows it attracts would go elsewhere.
#[test]
fn a_vip_waits_for_a_verdict_on_every_server_of_its_service() {
    let mut h = Harness::new(&config("[announce]\ntable = 100"), Table::new());
    for s in ["192.168.0.2:80", "192.168.0.4:80", "192.168.0.5:80"] {
        h.set(s, Behaviour::Healthy);
    }
    // Its first probe fails only at the check's timeout (100 ms).
    h.set("192.168.0.3:80", Behaviour::Blackhole);
    let verdict = |h: &Harness, server: &str, to: Health| {
        let server = harness::addr(server);
        h.first_event(|e| {
            matches!(e, EventKind::ServerHealth { server: s, to: t, .. } if *s == server && *t == to)
        })
    };
    let mut ready_at = None;
    while ready_at.is_none() && h.now < harness::at(3.0) {
        let next = h.now + Duration::from_millis(5);
        h.run_until(next);
        if plans(&h)[0].ready {
            ready_at = Some(h.now);
        }
    }
    let ready_at = ready_at.expect("10.0.0.1 ready within 3 s");
    let up = verdict(&h, "192.168.0.2:80", Health::Up).expect("192.168.0.2 up");
    let down = verdict(&h, "192.168.0.3:80", Health::Down).expect("192.168.0.3 down");
    assert!(
        up < down,
        "the case this test is about: one server up while the other awaits its verdict \
         (up at {up:?}, down at {down:?})"
    );
    assert!(
        ready_at >= down,
        "ready at {ready_at:?}, before 192.168.0.3's verdict at {down:?}"
    );
}

fn route(vip: &str, protocol: u8) -> Route {
    Route {
        vip: vip.parse().unwrap(),
        table: 100,
        protocol,
    }
}

fn healthy_harness() -> Harness {
    let mut h = Harness::new(&config("[announce]\ntable = 100"), Table::new());
    for s in [
        "192.168.0.2:80",
        "192.168.0.3:80",
        "192.168.0.4:80",
        "192.168.0.5:80",
        "192.168.0.6:80",
        "127.0.0.1:80",
    ] {
        h.set(s, Behaviour::Healthy);
    }
    h
}

fn ops(h: &Harness) -> Vec<String> {
    h.route_ops.iter().map(|(_, l)| l.clone()).collect()
}

#[test]
fn ready_vips_are_announced_and_withdrawn_when_their_servers_fail() {
    let mut h = healthy_harness();
    h.run_for(Duration::from_secs(3));
    assert_eq!(
        ops(&h),
        [
            "ip route add 10.0.0.1/32 dev lo table 100 proto 99",
            "ip route add 10.0.0.2/32 dev lo table 100 proto 99"
        ]
    );
    let st = h.engine.announce_status();
    assert!(st.iter().all(|v| v.announced), "{st:?}");
    assert_eq!(st[0].why, "1 of 1 services ready");
    assert!(h.event_lines().iter().any(
        |e| e == "`ip route add 10.0.0.1/32 dev lo table 100 proto 99`: 1 of 1 services ready"
    ));

    h.set("192.168.0.5:80", Behaviour::Refused);
    h.run_for(Duration::from_secs(3));
    assert_eq!(
        ops(&h)[2..],
        ["ip route del 10.0.0.2/32 dev lo table 100 proto 99"]
    );
    let st = h.engine.announce_status();
    assert!(!st[1].announced);
    assert_eq!(st[1].why, "TCP 10.0.0.2:80 has 1 healthy of 2 (quorum 2)");

    h.set("192.168.0.5:80", Behaviour::Healthy);
    h.run_for(Duration::from_secs(3));
    assert!(h.routes.contains(&route("10.0.0.2", 99)));
}

#[test]
fn routes_of_ours_are_repaired_at_the_next_read_and_others_are_left_alone() {
    let mut h = healthy_harness();
    // Left from a previous run: ours, for an address no service has. Someone else's: static.
    h.routes.insert(route("10.9.9.9", 99));
    h.routes.insert(route("10.9.9.8", 4));
    h.run_for(Duration::from_secs(3));
    assert_eq!(
        ops(&h)[0],
        "ip route del 10.9.9.9/32 dev lo table 100 proto 99"
    );
    assert!(h.routes.contains(&route("10.9.9.8", 4)));
    // Deleted by hand: back after the next resync read (5s by default).
    h.routes.remove(&route("10.0.0.1", 99));
    h.run_for(Duration::from_secs(6));
    assert!(h.routes.contains(&route("10.0.0.1", 99)));
}

#[test]
fn a_failed_route_add_is_retried_with_backoff_and_shown() {
    let mut h = healthy_harness();
    h.fail_routes = Some("EPERM".into());
    h.run_for(Duration::from_secs(3));
    assert!(h.routes.is_empty());
    assert!(
        h.event_lines()
            .iter()
            .any(|e| e.starts_with("reading lvs-hc's routes failed (EPERM), retrying in")),
        "{:?}",
        h.event_lines()
    );
    h.fail_routes = None;
    h.run_for(Duration::from_secs(6));
    assert_eq!(h.routes.len(), 2);
}

#[test]
fn a_stall_rereads_the_routes_and_announces_afresh() {
    let mut h = healthy_harness();
    h.run_for(Duration::from_secs(3));
    // The watchdog withdrew everything while the engine was silent.
    h.routes.clear();
    h.engine
        .handle_input(lvs_hc_core::Input::Stalled { now: h.now });
    assert!(h.engine.announce_stalled());
    assert_eq!(
        h.engine.announce_status()[0].why,
        "engine stalled: withdrawn by the watchdog"
    );
    h.run_for(Duration::from_millis(10));
    assert!(!h.engine.announce_stalled());
    assert_eq!(h.routes.len(), 2);
}

#[test]
fn withdrawing_deletes_the_routes() {
    let mut h = healthy_harness();
    h.run_for(Duration::from_secs(3));
    h.withdraw();
    h.run_for(Duration::from_secs(1));
    assert!(h.routes.is_empty());
}
