//! Who answers ARP for a VIP, gratuitous ARP, and the daemon's ARP watch, on real links: each
//! test makes two network namespaces, "director" and "rs", joined by a veth pair (`eth0` on
//! both sides), and deletes them when it ends, however it ends.
//!
//! They need root and fail, never skip, without it: `sudo -E cargo test -p lvs-hc --test arp`.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::daemon::{http_get, Daemon, Options};
use common::netns::Netns;
use common::TempDir;
use lvs_hc::arp;

const DIRECTOR_IP: &str = "10.201.0.1";
const RS_IP: &str = "10.201.0.2";
const VIP: &str = "10.201.0.100";
const VIP6: &str = "fd00:201::100";

/// A namespace for these tests: `lo` up, and no duplicate address detection, so link-local addresses are
/// usable at once, and the VIP may be on both sides.
fn namespace(role: &str) -> Netns {
    let ns = Netns::new("arp", role);
    ns.ip(&["link", "set", "lo", "up"]);
    ns.set_sysctl("net/ipv6/conf/all/accept_dad", "0");
    ns.set_sysctl("net/ipv6/conf/default/accept_dad", "0");
    ns
}

/// The director (10.201.0.1/24 and the VIP on eth0, unless `director_addrs` says otherwise)
/// and a real server (10.201.0.2/24 on eth0), linked.
struct Lab {
    director: Netns,
    rs: Netns,
}

impl Lab {
    fn new(director_addrs: &[&str]) -> Lab {
        let lab = Lab {
            director: namespace("d"),
            rs: namespace("r"),
        };
        lab.director.ip(&[
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &lab.rs.name,
        ]);
        for a in director_addrs {
            lab.director.ip(&["addr", "add", a, "dev", "eth0"]);
        }
        lab.rs
            .ip(&["addr", "add", &format!("{RS_IP}/24"), "dev", "eth0"]);
        lab.director.ip(&["link", "set", "eth0", "up"]);
        lab.rs.ip(&["link", "set", "eth0", "up"]);
        lab
    }

    /// The IPv6 lab: the director fd00:201::1/64 and the VIP fd00:201::100, the real server
    /// fd00:201::2/64.
    fn ipv6() -> Lab {
        let lab = Lab::new(&[]);
        lab.director
            .ip(&["addr", "add", "fd00:201::1/64", "dev", "eth0", "nodad"]);
        lab.director.ip(&[
            "addr",
            "add",
            &format!("{VIP6}/128"),
            "dev",
            "eth0",
            "nodad",
        ]);
        lab.rs
            .ip(&["addr", "add", "fd00:201::2/64", "dev", "eth0", "nodad"]);
        lab
    }

    fn who_answers6(&self) -> Vec<arp::Answer> {
        self.director.enter(async || {
            arp::who_answers("eth0", VIP6.parse().unwrap(), Duration::from_millis(500))
                .await
                .unwrap()
        })
    }

    fn standard() -> Lab {
        Lab::new(&[&format!("{DIRECTOR_IP}/24"), &format!("{VIP}/32")])
    }

    /// Sends the real server a datagram from the director and waits until the director's
    /// neighbour table knows its MAC (the machine may have no `ping`).
    fn ping_rs(&self) {
        self.director.enter(async || {
            let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
            socket.send_to(b"hello", (RS_IP, 9)).unwrap();
        });
        let start = Instant::now();
        loop {
            let entry = self.director.ip(&["neigh", "show", RS_IP, "dev", "eth0"]);
            if entry.contains("lladdr") {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3),
                "the director did not learn the real server's MAC: {entry:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn who_answers(&self) -> Vec<arp::Answer> {
        self.director.enter(async || {
            arp::who_answers("eth0", vip(), Duration::from_millis(500))
                .await
                .unwrap()
        })
    }
}

fn vip() -> IpAddr {
    VIP.parse().unwrap()
}

fn macs(answers: &[arp::Answer]) -> Vec<String> {
    answers.iter().map(|a| a.mac.to_string()).collect()
}

#[test]
fn a_real_server_with_the_vip_on_its_interface_answers_with_its_mac_and_address() {
    let lab = Lab::standard();
    lab.rs
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "eth0"]);
    lab.ping_rs();
    let answers = lab.who_answers();
    assert_eq!(
        answers,
        vec![arp::Answer {
            mac: lab.rs.mac("eth0").parse().unwrap(),
            ip: Some(RS_IP.parse().unwrap()),
        }]
    );
}

#[test]
fn the_vip_on_lo_answers_with_arp_ignore_0_and_not_with_arp_ignore_1() {
    let lab = Lab::standard();
    lab.rs
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
        lab.rs
            .set_sysctl(&format!("net/ipv4/conf/all/{key}"), value);
        lab.rs.set_sysctl(&format!("net/ipv4/conf/lo/{key}"), value);
    }
    assert_eq!(lab.who_answers(), vec![], "arp_ignore=1 on the real server");

    lab.rs.set_sysctl("net/ipv4/conf/all/arp_ignore", "0");
    lab.rs.set_sysctl("net/ipv4/conf/lo/arp_ignore", "0");
    // The neighbour table does not know the real server yet: the MAC alone.
    assert_eq!(
        lab.who_answers(),
        vec![arp::Answer {
            mac: lab.rs.mac("eth0").parse().unwrap(),
            ip: None,
        }],
        "arp_ignore=0 on the real server"
    );
}

#[test]
fn a_director_holding_only_the_vip_asks_from_0_0_0_0_and_still_hears_the_answer() {
    let lab = Lab::new(&[&format!("{VIP}/24")]);
    lab.rs
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "eth0"]);
    assert_eq!(macs(&lab.who_answers()), vec![lab.rs.mac("eth0")]);
}

#[test]
fn nobody_answers_when_only_the_director_holds_the_vip() {
    let lab = Lab::standard();
    lab.ping_rs();
    assert_eq!(lab.who_answers(), vec![]);
}

#[test]
fn the_interface_holding_the_vip_is_found_by_its_name_not_its_label() {
    let lab = Lab::standard();
    lab.director.ip(&[
        "addr",
        "add",
        "10.201.0.101/32",
        "dev",
        "eth0",
        "label",
        "eth0:vip",
    ]);
    let found = lab.director.enter(async || {
        [VIP, "10.201.0.101", "10.201.0.102", "127.0.0.1"]
            .map(|a| arp::interface_holding(a.parse().unwrap()).unwrap())
    });
    assert_eq!(
        found,
        [
            Some("eth0".into()),
            Some("eth0".into()),
            None,
            Some("lo".into())
        ]
    );
}

#[test]
fn a_gratuitous_arp_replaces_a_stale_entry_in_the_real_servers_neighbour_table() {
    let lab = Lab::standard();
    lab.rs.ip(&[
        "neigh",
        "replace",
        VIP,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    let director_mac = lab.director.mac("eth0");
    lab.director
        .enter(async || arp::announce("eth0", vip()).await.unwrap());
    let start = Instant::now();
    loop {
        let entry = lab.rs.ip(&["neigh", "show", VIP, "dev", "eth0"]);
        if entry.contains(&director_mac) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the real server still has {entry:?}, not {director_mac}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ipv6_a_real_server_with_the_vip_on_its_interface_advertises_it() {
    let lab = Lab::ipv6();
    lab.rs.ip(&[
        "addr",
        "add",
        &format!("{VIP6}/128"),
        "dev",
        "eth0",
        "nodad",
    ]);
    // The director's ARP table knows the server's MAC by an IPv4 address: an IPv6 answer
    // names no address of the other family.
    lab.director
        .ip(&["addr", "add", &format!("{DIRECTOR_IP}/24"), "dev", "eth0"]);
    lab.ping_rs();
    let answers = lab.who_answers6();
    assert_eq!(macs(&answers), vec![lab.rs.mac("eth0")]);
    assert_eq!(answers[0].ip, None, "{:?}", answers[0]);
}

#[test]
fn ipv6_a_real_server_with_the_vip_on_lo_does_not_advertise_it() {
    let lab = Lab::ipv6();
    lab.rs
        .ip(&["addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
    assert_eq!(lab.who_answers6(), vec![]);
    // Not for want of a link: the real server's own address answers.
    let own = lab.director.enter(async || {
        arp::who_answers(
            "eth0",
            "fd00:201::2".parse().unwrap(),
            Duration::from_millis(500),
        )
        .await
        .unwrap()
    });
    assert_eq!(macs(&own), vec![lab.rs.mac("eth0")]);
}

#[test]
fn ipv6_an_unsolicited_advert_replaces_a_stale_entry_in_the_real_servers_neighbour_table() {
    let lab = Lab::ipv6();
    lab.rs.ip(&[
        "-6",
        "neigh",
        "replace",
        VIP6,
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);
    let director_mac = lab.director.mac("eth0");
    lab.director
        .enter(async || arp::announce("eth0", VIP6.parse().unwrap()).await.unwrap());
    let start = Instant::now();
    loop {
        let entry = lab.rs.ip(&["-6", "neigh", "show", VIP6, "dev", "eth0"]);
        if entry.contains(&director_mac) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the real server still has {entry:?}, not {director_mac}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_reports_an_answering_real_server_in_status_metrics_and_log_then_its_fix() {
    let lab = Lab::standard();
    lab.rs
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "eth0"]);
    lab.ping_rs();
    let rs_mac = lab.rs.mac("eth0");
    let dir = TempDir::new("arp-watch");
    std::fs::write(
        dir.path("lvs-hc.toml"),
        format!(
            "[daemon]\narp_watch = \"1s\"\nresync_interval = \"500ms\"\n\n\
             [[service]]\nname = \"web\"\naddress = \"{VIP}:80\"\nforward = \"dr\"\n\n\
             [[service.check]]\ntype = \"tcp\"\ninterval = \"1s\"\ntimeout = \"200ms\"\n\n\
             [[service.server]]\naddress = \"{RS_IP}:80\"\n"
        ),
    )
    .unwrap();
    let d = Daemon::start_with(
        &dir,
        Options {
            netns: Some(&lab.director.name),
            ..Options::default()
        },
    );
    let warning = format!(
        "{RS_IP} ({rs_mac}) answers ARP for VIP {VIP} on eth0: set arp_ignore=1 and \
         arp_announce=2 on it, or run `lvs-hc setup realserver`"
    );
    d.wait_for("the warning in /status", Duration::from_secs(2), |d| {
        d.status()
            .is_some_and(|s| s["warnings"] == serde_json::json!([warning]))
    });
    let metrics = http_get(&d.api, "/metrics");
    let series = format!("lvs_hc_arp_conflict{{vip=\"{VIP}\",mac=\"{rs_mac}\",ip=\"{RS_IP}\"}} 1");
    assert!(
        metrics.lines().any(|l| l == series),
        "{series} not in:\n{metrics}"
    );
    let text = d.lvs_hc(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines().any(|l| l == format!("warning: {warning}")),
        "{text}"
    );
    assert_eq!(
        d.messages().iter().filter(|m| **m == warning).count(),
        1,
        "one log line, when first seen"
    );

    // The real server is fixed: the warning goes, with an info line.
    lab.rs
        .ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    d.wait_for(
        "the warning gone from /status",
        Duration::from_secs(3),
        |d| {
            d.status()
                .is_some_and(|s| s["warnings"] == serde_json::json!([]))
        },
    );
    assert!(!http_get(&d.api, "/metrics").contains("lvs_hc_arp_conflict{"));
    let gone = format!("{RS_IP} ({rs_mac}) no longer answers ARP for VIP {VIP} on eth0");
    d.wait_for("the info line", Duration::from_secs(1), |d| {
        d.messages().contains(&gone)
    });
}
