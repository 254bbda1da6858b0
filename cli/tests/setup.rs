//! `lvs-hc setup` against a real kernel, inside network namespaces these tests create and
//! delete (/proc/sys/net and the devices are per namespace, so the host is never touched).
//!
//! They need root and fail, never skip, without it: `sudo -E cargo test -p lvs-hc --test setup`.
//! The TUN test also needs the ipip module, which the QEMU lab has (`tests/lab/run`).

mod common;

use std::process::{Command, Output};

use common::netns::Netns;

/// `lvs-hc setup ...` inside a namespace, with its state directory.
trait Setup {
    fn setup(&self, args: &[&str]) -> Output;
}

impl Setup for Netns {
    fn setup(&self, args: &[&str]) -> Output {
        let bin = binary();
        let state = self.state_dir.display().to_string();
        let mut argv = vec![bin.as_str(), "setup"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["--state-dir", &state]);
        self.exec(&argv)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and returns stdout.
/// The changes `setup director` printed, with the line after each added VIP that says whether
/// it was announced (gratuitous ARP: sent, or a note saying why not) checked and dropped.
fn director_changes(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        kept.push(lines[i]);
        if let Some(rest) = lines[i].strip_prefix("added ") {
            let (addr, dev) = rest.split_once(" to ").unwrap();
            let ip = addr.split('/').next().unwrap();
            let next = lines.get(i + 1).copied().unwrap_or("");
            assert!(
                next == format!("announced {ip} on {dev}")
                    || next.starts_with(&format!("note: {ip} not announced on {dev} (")),
                "no word on announcing {ip} after `{}`:\n{out}",
                lines[i]
            );
            i += 1;
        }
        i += 1;
    }
    kept.iter().map(|l| format!("{l}\n")).collect()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

const ARP: [(&str, &str); 4] = [
    ("net/ipv4/conf/all/arp_ignore", "1"),
    ("net/ipv4/conf/all/arp_announce", "2"),
    ("net/ipv4/conf/lo/arp_ignore", "1"),
    ("net/ipv4/conf/lo/arp_announce", "2"),
];

#[test]
fn realserver_dr_puts_the_vip_on_lo_and_suppresses_arp_and_a_rerun_changes_nothing() {
    let ns = Netns::new("setup", "dr");
    let out = ok(ns.setup(&[
        "realserver",
        "--vip",
        "192.168.0.101",
        "--vip",
        "2001:db8::101",
    ]));
    assert!(out.contains("added 192.168.0.101/32 to lo\n"), "{out}");
    assert!(out.contains("added 2001:db8::101/128 to lo\n"), "{out}");
    assert!(
        out.contains("net.ipv4.conf.all.arp_ignore: 0 -> 1\n"),
        "{out}"
    );
    assert!(
        out.contains("net.ipv4.conf.lo.arp_announce: 0 -> 2\n"),
        "{out}"
    );
    assert!(out.contains("set lo up\n"), "{out}");
    let addrs = ns.addresses("lo");
    assert!(addrs.contains(&"192.168.0.101/32".to_string()), "{addrs:?}");
    assert!(
        addrs.contains(&"2001:db8::101/128".to_string()),
        "{addrs:?}"
    );
    for (path, want) in ARP {
        assert_eq!(ns.sysctl(path), want, "{path}");
    }
    assert_eq!(
        ok(ns.setup(&[
            "realserver",
            "--vip",
            "192.168.0.101",
            "--vip",
            "2001:db8::101"
        ])),
        "nothing to change\n"
    );
}

#[test]
fn check_lists_drift_with_status_1_then_0_after_setup_and_changes_nothing() {
    let ns = Netns::new("setup", "check");
    let out = ns.setup(&["realserver", "--vip", "192.168.0.101", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let drift = text(&out.stdout);
    assert!(drift.contains("192.168.0.101/32 is not on lo\n"), "{drift}");
    assert!(
        drift.contains("net.ipv4.conf.all.arp_ignore is 0, should be 1\n"),
        "{drift}"
    );
    assert!(!ns.addresses("lo").contains(&"192.168.0.101/32".to_string()));
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "0");
    assert!(!ns.state_dir.exists(), "--check wrote state");

    ok(ns.setup(&["realserver", "--vip", "192.168.0.101"]));
    let out = ns.setup(&["realserver", "--vip", "192.168.0.101", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "in place: nothing to change\n");
}

#[test]
fn undo_restores_earlier_values_and_keeps_a_vip_that_was_there_before() {
    let ns = Netns::new("setup", "undo");
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["addr", "add", "192.168.0.102/32", "dev", "lo"]);
    ns.set_sysctl("net/ipv4/conf/lo/arp_announce", "1");
    let before_lo = ns.addresses("lo");
    let vips = [
        "realserver",
        "--vip",
        "192.168.0.101",
        "--vip",
        "192.168.0.102",
    ];
    let out = ok(ns.setup(&vips));
    assert!(!out.contains("192.168.0.102"), "{out}");
    assert!(
        out.contains("net.ipv4.conf.lo.arp_announce: 1 -> 2\n"),
        "{out}"
    );

    // Someone changes a setting by hand; the rerun must not take its value as the original.
    ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "2");
    assert_eq!(
        ok(ns.setup(&vips)),
        "net.ipv4.conf.all.arp_ignore: 2 -> 1\n"
    );

    let out = ok(ns.setup(&["realserver", "--undo"]));
    assert!(out.contains("removed 192.168.0.101/32 from lo\n"), "{out}");
    assert!(
        out.contains("net.ipv4.conf.all.arp_ignore: 1 -> 0\n"),
        "{out}"
    );
    assert_eq!(ns.addresses("lo"), before_lo);
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/lo/arp_announce"), "1");
    // lo was up before setup: undo leaves it up.
    assert!(!out.contains("set lo"), "{out}");
    assert!(ns.ip(&["link", "show", "lo"]).contains(",UP"));
    assert!(ok(ns.setup(&["realserver", "--undo"])).starts_with("nothing to undo"));
}

#[test]
fn undo_refuses_a_state_file_naming_a_device_setup_never_creates() {
    let ns = Netns::new("setup", "crafted");
    ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0-peer",
    ]);
    std::fs::create_dir_all(&ns.state_dir).unwrap();
    let file = ns.state_dir.join("setup-realserver.json");
    let crafted = "{\n  \"created_links\": [\"eth0\"]\n}\n";
    std::fs::write(&file, crafted).unwrap();
    let out = ns.setup(&["realserver", "--undo"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: state file {}:2: `created_links` names `eth0`, a device setup never creates",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        ns.exec(&["ip", "link", "show", "eth0"]).status.success(),
        "undo deleted eth0"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), crafted);
}

#[test]
fn realserver_refuses_vips_that_would_hurt_before_changing_anything() {
    let ns = Netns::new("setup", "badvip");
    let lo = ns.ip(&["-o", "addr", "show", "dev", "lo"]);
    let cases = [
        (
            "127.0.0.2",
            "a loopback",
            "127.0.0.0/8 and ::1 never leave this machine",
        ),
        (
            "::1",
            "a loopback",
            "127.0.0.0/8 and ::1 never leave this machine",
        ),
        (
            "0.0.0.0",
            "an unspecified",
            "0.0.0.0 and :: stand for no address in particular",
        ),
        (
            "::",
            "an unspecified",
            "0.0.0.0 and :: stand for no address in particular",
        ),
        (
            "224.0.0.1",
            "a multicast",
            "224.0.0.0/4 and ff00::/8 name groups of hosts, not one",
        ),
        (
            "ff02::1",
            "a multicast",
            "224.0.0.0/4 and ff00::/8 name groups of hosts, not one",
        ),
        (
            "255.255.255.255",
            "a broadcast",
            "255.255.255.255 reaches every host on the link",
        ),
    ];
    for (vip, kind, why) in cases {
        for (extra, status) in [(None, 1), (Some("--check"), 2)] {
            let mut args = vec!["realserver", "--vip", "192.168.0.101", "--vip", vip];
            args.extend(extra);
            let out = ns.setup(&args);
            assert_eq!(out.status.code(), Some(status), "{args:?}");
            assert_eq!(text(&out.stdout), "", "{args:?}");
            assert_eq!(
                text(&out.stderr),
                format!(
                    "error: --vip {vip}: {kind} VIP cannot be set up on lo ({why}); pass the \
                     address clients connect to (nothing was changed)\n"
                ),
                "{args:?}"
            );
        }
    }
    assert_eq!(ns.ip(&["-o", "addr", "show", "dev", "lo"]), lo);
    assert!(!ns.ip(&["link", "show", "lo"]).contains(",UP"));
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "0");
    assert!(!ns.state_dir.exists(), "state written");
}

#[test]
fn director_refuses_a_loopback_service_address_the_daemon_accepts() {
    let ns = Netns::new("setup", "dirlo");
    ns.ip(&[
        "link",
        "add",
        "vip0",
        "type",
        "veth",
        "peer",
        "name",
        "vip0-peer",
    ]);
    let config = write_config(
        &ns,
        "lo.toml",
        r#"
[director]
interface = "vip0"

[[service]]
address = "192.168.0.101:80"
[[service.server]]
address = "192.168.0.179:80"

[[service]]
address = "127.0.0.1:80"
[[service.server]]
address = "192.168.0.179:80"
"#,
    );
    ok(Command::new(binary())
        .args(["check", "--config", &config])
        .output()
        .unwrap());
    let want = "error: service TCP 127.0.0.1:80: a loopback VIP cannot be set up on vip0 \
                (127.0.0.0/8 and ::1 never leave this machine); setup director puts only \
                addresses clients can reach on vip0 (nothing was changed)\n";
    for (extra, status) in [(None, 1), (Some("--check"), 2)] {
        let mut args = vec!["director", "--config", &config];
        args.extend(extra);
        let out = ns.setup(&args);
        assert_eq!(out.status.code(), Some(status), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert_eq!(text(&out.stderr), want, "{args:?}");
    }
    assert_eq!(ns.addresses("vip0"), Vec::<String>::new());
    assert!(!ns.state_dir.join("setup-director.json").exists());
}

fn write_config(ns: &Netns, name: &str, body: &str) -> String {
    std::fs::create_dir_all(&ns.state_dir).unwrap();
    let path = ns.state_dir.join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

const DR_CONFIG: &str = r#"
[director]
interface = "vip0"

[[service]]
address = "192.168.0.101:80"
[[service.server]]
address = "192.168.0.179:80"

[[service]]
address = "192.168.0.101:443"
[[service.server]]
address = "192.168.0.179:443"

[[service]]
address = "[2001:db8::101]:80"
[[service.server]]
address = "[2001:db8::179]:80"
"#;

#[test]
fn director_puts_every_vip_on_the_configured_interface_without_forwarding_for_dr() {
    let ns = Netns::new("setup", "dir");
    ns.ip(&[
        "link",
        "add",
        "vip0",
        "type",
        "veth",
        "peer",
        "name",
        "vip0-peer",
    ]);
    ns.set_sysctl("net/ipv4/ip_forward", "0");
    let config = write_config(&ns, "dr.toml", DR_CONFIG);
    let out = ok(ns.setup(&["director", "--config", &config]));
    assert_eq!(
        director_changes(&out),
        "added 192.168.0.101/32 to vip0\nadded 2001:db8::101/128 to vip0\n"
    );
    let addrs = ns.addresses("vip0");
    assert!(addrs.contains(&"192.168.0.101/32".to_string()), "{addrs:?}");
    assert!(
        addrs.contains(&"2001:db8::101/128".to_string()),
        "{addrs:?}"
    );
    assert_eq!(ns.sysctl("net/ipv4/ip_forward"), "0");
    assert_eq!(
        ok(ns.setup(&["director", "--config", &config])),
        "nothing to change\n"
    );
    ok(ns.setup(&["director", "--config", &config, "--undo"]));
    assert_eq!(ns.addresses("vip0"), Vec::<String>::new());
}

#[test]
fn director_nat_turns_forwarding_on_and_undo_turns_it_off() {
    let ns = Netns::new("setup", "nat");
    ns.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0-peer",
    ]);
    ns.set_sysctl("net/ipv4/ip_forward", "0");
    ns.set_sysctl("net/ipv6/conf/all/forwarding", "0");
    let config = write_config(
        &ns,
        "nat.toml",
        r#"
[[service]]
address = "192.168.0.101:80"
forward = "nat"
[[service.server]]
address = "10.0.0.2:8080"
"#,
    );
    let out = ns.setup(&[
        "director",
        "--config",
        &config,
        "--interface",
        "eth0",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("net.ipv4.ip_forward is 0, should be 1\n"));
    let out = ok(ns.setup(&["director", "--config", &config, "--interface", "eth0"]));
    assert_eq!(
        director_changes(&out),
        "net.ipv4.ip_forward: 0 -> 1\nadded 192.168.0.101/32 to eth0\n"
    );
    assert_eq!(ns.sysctl("net/ipv4/ip_forward"), "1");
    assert_eq!(ns.sysctl("net/ipv6/conf/all/forwarding"), "0");
    let out = ok(ns.setup(&["director", "--config", &config, "--undo"]));
    assert_eq!(
        out,
        "removed 192.168.0.101/32 from eth0\nnet.ipv4.ip_forward: 1 -> 0\n"
    );
    assert_eq!(ns.sysctl("net/ipv4/ip_forward"), "0");
}

#[test]
fn director_errors_name_the_interface_and_the_config_key() {
    let ns = Netns::new("setup", "err");
    let config = write_config(&ns, "dr.toml", DR_CONFIG);
    let out = ns.setup(&["director", "--config", &config]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: interface `vip0` (from `[director] interface` in {config}) does not exist \
             (see `ip link`)\n"
        )
    );
    let out = ns.setup(&[
        "director",
        "--config",
        &config,
        "--interface",
        "eth9",
        "--check",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--check exits 2 when it cannot tell"
    );
    assert_eq!(
        text(&out.stderr),
        "error: interface `eth9` (from --interface) does not exist (see `ip link`)\n"
    );

    let out = ns.setup(&["director", "--config", &config, "--interface", "bad/name"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--interface: `bad/name` is not an interface name"),
        "{}",
        text(&out.stderr)
    );

    let bare = write_config(
        &ns,
        "bare.toml",
        &DR_CONFIG.replace("interface = \"vip0\"", ""),
    );
    let out = ns.setup(&["director", "--config", &bare, "--check"]);
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: {bare}: no interface for the virtual IPs: set `interface` in the \
             `[director]` table or pass --interface\n"
        )
    );
    assert!(!ns.state_dir.join("setup-director.json").exists());
}

#[test]
#[ignore = "needs the ipip module: run in the QEMU lab (tests/lab/run)"]
fn realserver_tun_brings_up_tunl0_with_the_vip_and_relaxes_rp_filter() {
    let ns = Netns::new("setup", "tun");
    let probe = ns.exec(&["ip", "link", "show", "tunl0"]);
    let added = if probe.status.success() {
        false
    } else {
        let out = ns.exec(&["ip", "link", "add", "name", "tunl0", "type", "ipip"]);
        let exists = ns.exec(&["ip", "link", "show", "tunl0"]).status.success();
        assert!(
            exists,
            "this kernel cannot make ipip tunnels ({}): run in the QEMU lab (tests/lab/run), \
             which loads tunnel4, ip_tunnel and ipip",
            text(&out.stderr).trim()
        );
        out.status.success()
    };
    // Whatever made tunl0 exist, start from the module's own device, down.
    if added {
        ns.ip(&["link", "del", "tunl0"]);
    }
    ns.set_sysctl("net/ipv4/conf/all/rp_filter", "1");
    let tun = [
        "realserver",
        "--mode",
        "tun",
        "--vip",
        "192.168.0.101",
        "--vip",
        "2001:db8::101",
    ];
    let out = ok(ns.setup(&tun));
    assert!(out.contains("set tunl0 up\n"), "{out}");
    assert!(out.contains("added 192.168.0.101/32 to tunl0\n"), "{out}");
    assert!(
        out.contains("added 2001:db8::101/128 to ip6tnl0\n"),
        "{out}"
    );
    assert!(
        out.contains("net.ipv4.conf.all.rp_filter: 1 -> 0\n"),
        "{out}"
    );
    assert!(ns
        .addresses("tunl0")
        .contains(&"192.168.0.101/32".to_string()));
    assert!(ns
        .addresses("ip6tnl0")
        .contains(&"2001:db8::101/128".to_string()));
    assert!(ns.ip(&["link", "show", "tunl0"]).contains(",UP"));
    assert!(ns.ip(&["link", "show", "ip6tnl0"]).contains(",UP"));
    assert_eq!(ns.sysctl("net/ipv4/conf/tunl0/rp_filter"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/rp_filter"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/tunl0/arp_ignore"), "1");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "2");
    assert_eq!(ok(ns.setup(&tun)), "nothing to change\n");
    let mut check = tun.to_vec();
    check.push("--check");
    let out = ns.setup(&check);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = ok(ns.setup(&["realserver", "--undo"]));
    assert!(
        out.contains("removed 192.168.0.101/32 from tunl0\n"),
        "{out}"
    );
    assert_eq!(ns.sysctl("net/ipv4/conf/all/rp_filter"), "1");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "0");
    for dev in ["tunl0", "ip6tnl0"] {
        let gone = !ns.exec(&["ip", "link", "show", dev]).status.success();
        assert!(
            gone || ns.addresses(dev).is_empty(),
            "{dev} keeps addresses"
        );
        assert!(
            gone || !ns.ip(&["link", "show", dev]).contains(",UP"),
            "{dev} is up"
        );
    }
}

/// The lvs-hc binary: `LVS_HC_BIN` in the QEMU lab (where cargo's path does not exist), else
/// the one cargo built.
fn binary() -> String {
    std::env::var("LVS_HC_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lvs-hc").to_string())
}

#[test]
fn director_with_via_vip_accepts_local_sources_on_the_interface_the_route_to_the_servers_takes() {
    let ns = Netns::new("setup", "via");
    for (dev, addr) in [("eth0", "192.168.0.178/24"), ("eth1", "10.0.0.1/24")] {
        let peer = format!("{dev}-peer");
        ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        ns.ip(&["addr", "add", addr, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
        ns.ip(&["link", "set", &peer, "up"]);
    }
    // A distribution's defaults: strict filtering everywhere.
    for dev in ["all", "eth0", "eth1"] {
        ns.set_sysctl(&format!("net/ipv4/conf/{dev}/rp_filter"), "1");
        ns.set_sysctl(&format!("net/ipv4/conf/{dev}/accept_local"), "0");
    }
    let config = write_config(
        &ns,
        "via.toml",
        r#"
[director]
interface = "eth0"
[[service]]
address = "192.168.0.101:80"
[[service.check]]
type = "tcp"
via_vip = true
[[service.server]]
address = "10.0.0.5:80"
"#,
    );
    // The other devices that have their filtering from `all` alone: the peers, `default`, and
    // whatever the kernel gives every namespace (tunl0 and ip6tnl0 where the tunnel modules
    // are loaded, as in the lab).
    let listed = ns.exec(&["ls", "/proc/sys/net/ipv4/conf"]);
    let mut relying: Vec<String> = text(&listed.stdout)
        .split_whitespace()
        .filter(|d| !["all", "lo", "eth0", "eth1"].contains(d))
        .filter(|d| ns.sysctl(&format!("net/ipv4/conf/{d}/rp_filter")) == "0")
        .map(str::to_string)
        .collect();
    relying.sort();
    for d in ["default", "eth0-peer", "eth1-peer"] {
        assert!(relying.iter().any(|r| r == d), "{d} in {relying:?}");
    }
    let kept: String = relying
        .iter()
        .map(|d| format!("net.ipv4.conf.{d}.rp_filter: 0 -> 1\n"))
        .collect();
    let out = ok(ns.setup(&["director", "--config", &config]));
    assert_eq!(
        director_changes(&out),
        format!(
            "net.ipv4.conf.all.rp_filter: 1 -> 0\n\
             net.ipv4.conf.eth1.accept_local: 0 -> 1\n\
             net.ipv4.conf.eth1.rp_filter: 1 -> 0\n\
             {kept}added 192.168.0.101/32 to eth0\n"
        )
    );
    for d in &relying {
        assert_eq!(
            ns.sysctl(&format!("net/ipv4/conf/{d}/rp_filter")),
            "1",
            "{d}"
        );
    }
    // The devices that had their filtering from `all` keep it (the peers and `default`
    // relied on it; eth0 has its own).
    assert_eq!(ns.sysctl("net/ipv4/conf/eth0-peer/rp_filter"), "1");
    assert_eq!(ns.sysctl("net/ipv4/conf/default/rp_filter"), "1");
    // The interface toward the clients keeps its filtering.
    assert_eq!(ns.sysctl("net/ipv4/conf/eth0/rp_filter"), "1");
    assert_eq!(ns.sysctl("net/ipv4/conf/eth0/accept_local"), "0");
    let out = ok(ns.setup(&["director", "--config", &config, "--undo"]));
    // Undo restores in the order of the settings' names.
    let mut restored: Vec<String> = relying
        .iter()
        .map(|d| format!("net.ipv4.conf.{d}.rp_filter: 1 -> 0"))
        .collect();
    restored.push("net.ipv4.conf.eth1.accept_local: 1 -> 0".into());
    restored.push("net.ipv4.conf.eth1.rp_filter: 0 -> 1".into());
    restored.sort_by_key(|l| l.replace('.', "/"));
    assert_eq!(
        out,
        format!(
            "removed 192.168.0.101/32 from eth0\n\
             net.ipv4.conf.all.rp_filter: 0 -> 1\n{}\n",
            restored.join("\n")
        )
    );
    for d in &relying {
        assert_eq!(
            ns.sysctl(&format!("net/ipv4/conf/{d}/rp_filter")),
            "0",
            "{d} restored"
        );
    }
}

/// One of a pair: `[sync]` over `sync0`, the seed's service, `director` (lines of the
/// `[director]` table) added.
fn pair_config(ns: &Netns, director: &str) -> String {
    write_config(
        ns,
        "ha.toml",
        &format!(
            "[director]\n{director}\n[sync]\ninterface = \"sync0\"\nsync_id = 51\n\n\
             [[service]]\naddress = \"192.168.0.101:80\"\n\
             [[service.server]]\naddress = \"192.168.0.179:80\"\n"
        ),
    )
}

/// A namespace with `sync0` (up, with an address: what the sync daemons need) and `vip0`.
fn pair_namespace(role: &str) -> Netns {
    let ns = Netns::new("setup", role);
    for dev in ["sync0", "vip0"] {
        let peer = format!("{dev}-peer");
        ns.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        ns.ip(&["link", "set", dev, "up"]);
    }
    ns.ip(&["addr", "add", "10.1.0.1/24", "dev", "sync0"]);
    ns
}

#[test]
fn director_of_a_pair_refuses_to_put_the_vips_on_an_interface_and_changes_nothing() {
    let ns = pair_namespace("pairvip");
    let config = pair_config(&ns, "interface = \"vip0\"");
    let split_brain = |interface: &str, from: &str, fix: &str| {
        format!(
            "error: {config}: with `[sync]` this director is one of a pair, whose VIPs belong \
             to VRRP (keepalived's `virtual_ipaddress`), which holds them on the active \
             director only; putting them on `{interface}` (from {from}) as well would hold \
             them on both directors at once, a split brain. {fix} (nothing was changed)\n"
        )
    };
    for (extra, status) in [(None, 1), (Some("--check"), 2)] {
        let mut args = vec!["director", "--config", &config];
        args.extend(extra);
        let out = ns.setup(&args);
        assert_eq!(out.status.code(), Some(status), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert_eq!(
            text(&out.stderr),
            split_brain(
                "vip0",
                &format!("`[director] interface` in {config}"),
                "Remove `interface` from the `[director]` table."
            ),
            "{args:?}"
        );
    }
    let config = pair_config(&ns, "");
    let out = ns.setup(&["director", "--config", &config, "--interface", "vip0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        split_brain("vip0", "--interface", "Leave out --interface.")
    );
    assert_eq!(ns.addresses("vip0"), Vec::<String>::new());
    assert!(!ns.state_dir.join("setup-director.json").exists());
}

/// The IPVS settings of a pair, as a fresh namespace has them (the kernel's defaults) and as
/// setup leaves them.
const PAIR_SETTINGS: [(&str, &str, &str); 5] = [
    ("net/ipv4/vs/sync_version", "1", "1"),
    ("net/ipv4/vs/sync_refresh_period", "0", "10"),
    ("net/ipv4/vs/sync_threshold", "3\t50", "3\t0"),
    ("net/ipv4/vs/backup_only", "0", "0"),
    ("net/ipv4/vs/expire_nodest_conn", "0", "1"),
];

#[test]
#[ignore = "needs ip_vs (its settings are per namespace, but the module is the host's): run in \
            the QEMU lab (tests/lab/run)"]
fn director_of_a_pair_sets_ipvs_up_for_sync_and_failover_and_undo_restores_it() {
    let ns = pair_namespace("pair");
    let loaded = ns.exec(&["test", "-d", "/proc/sys/net/ipv4/vs"]);
    assert!(
        loaded.status.success(),
        "/proc/sys/net/ipv4/vs does not exist: ip_vs is not loaded; run in the QEMU lab \
         (tests/lab/run), which loads it"
    );
    for (path, before, _) in PAIR_SETTINGS {
        assert_eq!(ns.sysctl(path), before, "{path} in a fresh namespace");
    }
    let config = pair_config(&ns, "");
    let refresh = "(a connection is synced again at its first packet 10 s after the last sync, \
                   however seldom it sends, so the standby's copy never expires under a live \
                   connection)";
    let threshold = "(sync_period 0: sync by time, not at every 50th packet, which a connection \
                     sending less than every 18 s reaches after the standby's copy (900 s) \
                     expired)";
    let nodest = "(a connection to a server lvs-hc removed ends at its next packet, so the \
                  client reconnects instead of hanging; a drained server keeps its connections)";

    let out = ns.setup(&["director", "--config", &config, "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "net.ipv4.vs.sync_refresh_period is 0, should be 10 {refresh}\n\
             net.ipv4.vs.sync_threshold is 3 50, should be 3 0 {threshold}\n\
             net.ipv4.vs.expire_nodest_conn is 0, should be 1 {nodest}\n"
        )
    );
    assert_eq!(text(&out.stderr), "");
    assert!(
        !ns.state_dir.join("setup-director.json").exists(),
        "--check wrote state"
    );

    let out = ok(ns.setup(&["director", "--config", &config]));
    assert_eq!(
        out,
        format!(
            "net.ipv4.vs.sync_refresh_period: 0 -> 10 {refresh}\n\
             net.ipv4.vs.sync_threshold: 3 50 -> 3 0 {threshold}\n\
             net.ipv4.vs.expire_nodest_conn: 0 -> 1 {nodest}\n"
        )
    );
    for (path, _, after) in PAIR_SETTINGS {
        assert_eq!(ns.sysctl(path), after, "{path}");
    }
    // No VIP: VRRP holds it.
    assert_eq!(ns.addresses("vip0"), Vec::<String>::new());
    assert_eq!(
        ok(ns.setup(&["director", "--config", &config])),
        "nothing to change\n"
    );
    let out = ns.setup(&["director", "--config", &config, "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = ok(ns.setup(&["director", "--config", &config, "--undo"]));
    assert_eq!(
        out,
        "net.ipv4.vs.expire_nodest_conn: 1 -> 0\n\
         net.ipv4.vs.sync_refresh_period: 10 -> 0\n\
         net.ipv4.vs.sync_threshold: 3 0 -> 3 50\n"
    );
    for (path, before, _) in PAIR_SETTINGS {
        assert_eq!(ns.sysctl(path), before, "{path} restored");
    }
    assert!(!ns.state_dir.join("setup-director.json").exists());
}

#[test]
#[ignore = "needs ip_vs (its settings are per namespace, but the module is the host's): run in \
            the QEMU lab (tests/lab/run)"]
fn director_hashing_with_mh_schedules_mid_stream_packets_and_undo_restores_it() {
    let ns = pair_namespace("hashing");
    let loaded = ns.exec(&["test", "-d", "/proc/sys/net/ipv4/vs"]);
    assert!(
        loaded.status.success(),
        "/proc/sys/net/ipv4/vs does not exist: ip_vs is not loaded; run in the QEMU lab \
         (tests/lab/run), which loads it"
    );
    for path in ["net/ipv4/vs/sloppy_tcp", "net/ipv4/vs/sloppy_sctp"] {
        assert_eq!(ns.sysctl(path), "0", "{path} in a fresh namespace");
    }
    let config = write_config(
        &ns,
        "ecmp.toml",
        "[director]\ninterface = \"vip0\"\n\n\
         [[service]]\naddress = \"192.168.0.101:80\"\nscheduler = \"mh\"\n\
         sched_flags = [\"mh-fallback\", \"mh-port\"]\n\
         [[service.server]]\naddress = \"192.168.0.179:80\"\n",
    );
    let why = "(a TCP service uses sh or mh: a flow another director carried arrives \
               mid-stream (ECMP moved it), and is scheduled, to the same server, instead of \
               dropped)";
    let out = ns.setup(&["director", "--config", &config, "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("net.ipv4.vs.sloppy_tcp is 0, should be 1 {why}\n")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        ns.sysctl("net/ipv4/vs/sloppy_tcp"),
        "0",
        "--check changed it"
    );

    let out = ok(ns.setup(&["director", "--config", &config]));
    assert!(
        out.contains(&format!("net.ipv4.vs.sloppy_tcp: 0 -> 1 {why}\n")),
        "{out}"
    );
    assert_eq!(ns.sysctl("net/ipv4/vs/sloppy_tcp"), "1");
    assert_eq!(ns.sysctl("net/ipv4/vs/sloppy_sctp"), "0", "no SCTP service");
    let out = ns.setup(&["director", "--config", &config, "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let out = ok(ns.setup(&["director", "--config", &config, "--undo"]));
    assert!(out.contains("net.ipv4.vs.sloppy_tcp: 1 -> 0\n"), "{out}");
    assert_eq!(ns.sysctl("net/ipv4/vs/sloppy_tcp"), "0", "restored");
    assert!(!ns.state_dir.join("setup-director.json").exists());
}
