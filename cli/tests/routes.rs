//! The rtnetlink route adapter and `lvs-hc withdraw` against a real kernel, in a network
//! namespace of their own (root needed: without it these fail, naming the command to run).
//! Each route is checked against what `ip route` shows, so the adapter makes what
//! `ip route add VIP/32 dev lo table T proto P` makes. (`ip -N`: numbers, as iproute2 names
//! protocol 99 `openr` and 4 `static`; type 1 is unicast, scope 253 link.)

mod common;

use std::process::Command;

use common::netns::Netns;
use common::TempDir;
use ipvs_sys::route::{NetlinkRoutes, RouteBackend};
use lvs_hc_core::announce::{Route, RouteOp};

fn route(vip: &str, table: u32) -> Route {
    Route {
        vip: vip.parse().unwrap(),
        table,
        protocol: 99,
    }
}

#[test]
fn routes_are_what_ip_route_add_makes_and_only_ours_are_read_or_deleted() {
    let ns = Netns::new("routes", "adapter");
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&[
        "route",
        "add",
        "10.0.0.9/32",
        "dev",
        "lo",
        "table",
        "100",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.0.0.0/24",
        "dev",
        "lo",
        "table",
        "100",
        "proto",
        "99",
    ]);
    ns.enter(async || {
        let mut r = NetlinkRoutes::connect().unwrap();
        r.apply(&RouteOp::Add(route("10.0.0.1", 100))).unwrap();
        r.apply(&RouteOp::Add(route("fd00::1", 100))).unwrap();
        r.apply(&RouteOp::Add(route("10.0.0.2", 100_000))).unwrap();
        let e = r
            .apply(&RouteOp::Add(route("10.0.0.9", 100)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("errno 17"),
            "another's route is not replaced: {e}"
        );
        let mut ours = r.routes(100, 99).unwrap();
        ours.sort();
        assert_eq!(ours, [route("10.0.0.1", 100), route("fd00::1", 100)]);
        assert_eq!(r.routes(100_000, 99).unwrap(), [route("10.0.0.2", 100_000)]);
        // Deleting what is gone is done.
        r.apply(&RouteOp::Del(route("10.0.0.3", 100))).unwrap();
    });
    assert_eq!(
        ns.ip(&["-N", "-d", "route", "show", "table", "100"]),
        "1 10.0.0.0/24 dev lo proto 99 scope 253 \n\
         1 10.0.0.1 dev lo proto 99 scope 253 \n\
         1 10.0.0.9 dev lo proto 4 scope 253 \n"
    );
    assert_eq!(
        ns.ip(&["-N", "-6", "route", "show", "table", "100"]),
        "fd00::1 dev lo proto 99 metric 1024 pref medium\n"
    );
    assert_eq!(
        ns.ip(&["-N", "route", "show", "table", "100000"]),
        "10.0.0.2 dev lo proto 99 scope 253 \n"
    );
    ns.enter(async || {
        let mut r = NetlinkRoutes::connect().unwrap();
        assert_eq!(r.withdraw_all(100, 99).unwrap(), 2);
    });
    assert_eq!(
        ns.ip(&["-N", "route", "show", "table", "100"]),
        "10.0.0.0/24 dev lo proto 99 scope 253 \n\
         10.0.0.9 dev lo proto 4 scope 253 \n",
        "host routes of ours went; another protocol's, and a prefix lvs-hc never adds, stay"
    );
    assert_eq!(ns.ip(&["-6", "route", "show", "table", "100"]), "");
}

#[test]
fn lvs_hc_withdraw_deletes_the_routes_of_the_configurations_table_and_protocol() {
    let ns = Netns::new("routes", "withdraw");
    let dir = TempDir::new("routes-withdraw");
    ns.ip(&["link", "set", "lo", "up"]);
    for (dst, proto) in [
        ("10.0.0.1/32", "200"),
        ("10.0.0.2/32", "200"),
        ("10.0.0.3/32", "99"),
    ] {
        ns.ip(&[
            "route", "add", dst, "dev", "lo", "table", "7", "proto", proto,
        ]);
    }
    let config = dir.path("lvs-hc.toml");
    std::fs::write(
        &config,
        "[announce]\ntable = 7\nprotocol = 200\n\n[[service]]\naddress = \"10.0.0.1:80\"\n\
         [[service.server]]\naddress = \"10.0.1.1:80\"\n",
    )
    .unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            env!("CARGO_BIN_EXE_lvs-hc"),
            "withdraw",
        ])
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "withdrew 2 route(s) of table 7 proto 200\n"
    );
    assert_eq!(
        ns.ip(&["-N", "route", "show", "table", "7"]),
        "10.0.0.3 dev lo proto 99 scope 253 \n"
    );
}
