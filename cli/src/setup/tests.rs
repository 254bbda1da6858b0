//! The driver against an in-memory machine: what is printed, the exit status, the state file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::plan::{
    ConfSetting, IfAddr, IpvsSetting, LinkState, RealServerMode, Sysctl, TunnelKind,
};
use super::system::MockSystem;
use super::*;

/// A machine in memory that fails like the kernel does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Fake {
    links: BTreeMap<String, (LinkState, Vec<IfAddr>)>,
    sysctls: BTreeMap<Sysctl, String>,
    privileged: bool,
    /// The interface of the route to each address (none: no route).
    routes: BTreeMap<IpAddr, String>,
    /// What was announced, in order; `Some(reason)` makes announcing fail.
    announced: Vec<(String, IpAddr)>,
    announce_fails: Option<String>,
    /// Devices with multicast off.
    multicast_off: Vec<String>,
}

impl Fake {
    fn realserver() -> Fake {
        let mut f = Fake {
            privileged: true,
            ..Fake::default()
        };
        f.links.insert(
            "lo".into(),
            (LinkState::Up, vec!["127.0.0.1/8".parse().unwrap()]),
        );
        for dev in ["all", "default", "lo"] {
            for name in [ConfSetting::ArpIgnore, ConfSetting::ArpAnnounce] {
                f.sysctls.insert(Sysctl::ipv4_conf(dev, name), "0".into());
            }
        }
        f
    }

    fn dev(&mut self, name: &str) -> Result<&mut (LinkState, Vec<IfAddr>), SetupError> {
        self.links
            .get_mut(name)
            .ok_or_else(|| SetupError::NoSuchInterface(name.into()))
    }
}

impl System for Fake {
    fn link(&mut self, name: &str) -> Result<Option<LinkState>, SetupError> {
        Ok(self.links.get(name).map(|l| l.0))
    }
    fn multicast(&mut self, name: &str) -> Result<bool, SetupError> {
        self.dev(name)?;
        Ok(!self.multicast_off.iter().any(|d| d == name))
    }
    fn addresses(&mut self, dev: &str) -> Result<Vec<IfAddr>, SetupError> {
        Ok(self.dev(dev)?.1.clone())
    }
    fn add_address(&mut self, dev: &str, addr: IfAddr) -> Result<(), SetupError> {
        let addrs = &mut self.dev(dev)?.1;
        assert!(!addrs.contains(&addr), "EEXIST: {addr} on {dev}");
        addrs.push(addr);
        Ok(())
    }
    fn del_address(&mut self, dev: &str, addr: IfAddr) -> Result<(), SetupError> {
        let addrs = &mut self.dev(dev)?.1;
        assert!(addrs.contains(&addr), "EADDRNOTAVAIL: {addr} on {dev}");
        addrs.retain(|a| *a != addr);
        Ok(())
    }
    fn set_link(&mut self, name: &str, state: LinkState) -> Result<(), SetupError> {
        self.dev(name)?.0 = state;
        Ok(())
    }
    fn create_tunnel(&mut self, name: &str, _: TunnelKind) -> Result<(), SetupError> {
        assert!(!self.links.contains_key(name), "EEXIST: {name}");
        self.links.insert(name.into(), (LinkState::Down, vec![]));
        Ok(())
    }
    fn delete_link(&mut self, name: &str) -> Result<(), SetupError> {
        assert!(self.links.remove(name).is_some(), "ENODEV: {name}");
        Ok(())
    }
    fn sysctl(&mut self, key: &Sysctl) -> Result<Option<String>, SetupError> {
        Ok(self.sysctls.get(key).cloned())
    }
    fn set_sysctl(&mut self, key: &Sysctl, value: &str) -> Result<(), SetupError> {
        assert!(self.sysctls.contains_key(key), "ENOENT: {key}");
        self.sysctls.insert(key.clone(), value.into());
        Ok(())
    }
    fn require_privileges(&mut self) -> Result<(), SetupError> {
        if self.privileged {
            Ok(())
        } else {
            Err(SetupError::NeedsRoot)
        }
    }
    fn route_interface(&mut self, to: IpAddr) -> Result<Option<String>, SetupError> {
        Ok(self.routes.get(&to).cloned())
    }
    fn conf_devices(&mut self) -> Result<Vec<String>, SetupError> {
        let mut devices: Vec<String> = self.links.keys().cloned().collect();
        devices.push("default".into());
        devices.sort();
        Ok(devices)
    }
    fn announce(&mut self, dev: &str, ip: IpAddr) -> Result<(), String> {
        if let Some(e) = &self.announce_fails {
            return Err(e.clone());
        }
        self.announced.push((dev.to_string(), ip));
        Ok(())
    }
}

struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        let dir = std::env::temp_dir().join(format!("lvs-hc-setup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        StateDir(dir)
    }
    fn file(&self) -> PathBuf {
        Role::Realserver.state_file(&self.0)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn go(sys: &mut Fake, desired: &Desired, action: Action, state: &StateDir) -> (Outcome, String) {
    let mut out = Vec::new();
    let outcome = run(sys, desired, action, &state.file(), &mut out).unwrap();
    (outcome, String::from_utf8(out).unwrap())
}

fn vip(s: &str) -> Desired {
    plan::realserver(&[s.parse::<IpAddr>().unwrap()], RealServerMode::Dr).unwrap()
}

#[test]
fn check_exits_non_zero_on_drift_and_zero_once_in_place() {
    let state = StateDir::new("check");
    let mut sys = Fake::realserver();
    let d = vip("192.168.0.101");
    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(
        (outcome, outcome.exit_code()),
        (Outcome::Drift, ExitCode::from(1))
    );
    assert!(text.contains("192.168.0.101/32 is not on lo\n"), "{text}");
    assert_eq!(sys, Fake::realserver(), "--check changed something");
    assert!(!state.file().exists());

    go(&mut sys, &d, Action::Apply, &state);
    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(
        (outcome, outcome.exit_code()),
        (Outcome::InPlace, ExitCode::SUCCESS)
    );
    assert_eq!(text, "in place: nothing to change\n");
}

#[test]
fn setup_prints_each_change_then_nothing_to_change() {
    let state = StateDir::new("rerun");
    let mut sys = Fake::realserver();
    let d = vip("192.168.0.101");
    let (outcome, text) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert_eq!(
        text,
        "net.ipv4.conf.all.arp_ignore: 0 -> 1\nnet.ipv4.conf.all.arp_announce: 0 -> 2\n\
         net.ipv4.conf.lo.arp_ignore: 0 -> 1\nnet.ipv4.conf.lo.arp_announce: 0 -> 2\n\
         added 192.168.0.101/32 to lo\n"
    );
    assert_eq!(
        go(&mut sys, &d, Action::Apply, &state).1,
        "nothing to change\n"
    );
}

#[test]
fn undo_restores_the_machine_and_removes_the_state_file() {
    let state = StateDir::new("undo");
    let mut sys = Fake::realserver();
    sys.links
        .get_mut("lo")
        .unwrap()
        .1
        .push("192.168.0.102/32".parse().unwrap());
    let before = sys.clone();
    let d = plan::realserver(
        &[
            "192.168.0.101".parse().unwrap(),
            "192.168.0.102".parse().unwrap(),
        ],
        RealServerMode::Dr,
    )
    .unwrap();
    go(&mut sys, &d, Action::Apply, &state);
    assert!(state.file().exists());
    let (outcome, text) = go(&mut sys, &Desired::default(), Action::Undo, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert!(
        text.starts_with("removed 192.168.0.101/32 from lo\n"),
        "{text}"
    );
    assert!(!text.contains("192.168.0.102"), "{text}");
    assert_eq!(sys, before);
    assert!(!state.file().exists());
    let (_, text) = go(&mut sys, &Desired::default(), Action::Undo, &state);
    assert!(text.starts_with("nothing to undo"), "{text}");
}

#[test]
fn a_rerun_after_manual_changes_keeps_the_original_values_for_undo() {
    let state = StateDir::new("orig");
    let mut sys = Fake::realserver();
    let before = sys.clone();
    let d = vip("192.168.0.101");
    go(&mut sys, &d, Action::Apply, &state);
    let key = Sysctl::ipv4_conf("all", ConfSetting::ArpIgnore);
    sys.sysctls.insert(key.clone(), "8".into());
    assert_eq!(
        go(&mut sys, &d, Action::Apply, &state).1,
        "net.ipv4.conf.all.arp_ignore: 8 -> 1\n"
    );
    go(&mut sys, &Desired::default(), Action::Undo, &state);
    assert_eq!(sys, before);
}

#[test]
fn without_privileges_nothing_changes_and_the_error_says_check_works() {
    let state = StateDir::new("priv");
    let mut sys = Fake {
        privileged: false,
        ..Fake::realserver()
    };
    let mut out = Vec::new();
    let err = run(
        &mut sys,
        &vip("192.168.0.101"),
        Action::Apply,
        &state.file(),
        &mut out,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "needs root (CAP_NET_ADMIN) to change addresses and settings; --check works without \
         changing anything"
    );
    assert!(!state.file().exists());
    assert_eq!(
        go(&mut sys, &vip("192.168.0.101"), Action::Check, &state).0,
        Outcome::Drift
    );
}

/// Writes the state file by hand, as something other than setup might.
fn craft(state: &StateDir, text: &str) {
    std::fs::create_dir_all(&state.0).unwrap();
    std::fs::write(state.file(), text).unwrap();
}

/// Runs `--undo`, which must fail before printing (so before changing) anything.
fn undo_error(sys: &mut dyn System, state: &StateDir) -> String {
    let mut out = Vec::new();
    let result = run(
        sys,
        &Desired::default(),
        Action::Undo,
        &state.file(),
        &mut out,
    );
    let printed = String::from_utf8(out).unwrap();
    match result {
        Ok(outcome) => panic!("undo of a crafted state file succeeded ({outcome:?}):\n{printed}"),
        Err(e) => {
            assert_eq!(printed, "", "undo printed changes before failing");
            format!("{e:#}")
        }
    }
}

#[test]
fn undo_refuses_a_state_file_setting_outside_proc_sys_and_writes_nothing() {
    let state = StateDir::new("escape");
    let proc_sys = state.0.join("proc-sys");
    std::fs::create_dir_all(&proc_sys).unwrap();
    let victim = state.0.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    // In a sysctl(8) name `/` stands for a `.` inside a component, so `//` is `..`: this key
    // is the path `../victim`, which leaves the settings directory.
    let crafted = "{\n  \"sysctls\": {\n    \"//.victim\": \"0\"\n  }\n}\n";
    craft(&state, crafted);
    let mut sys = IpCommand::with_proc_sys(proc_sys);
    let err = undo_error(&mut sys, &state);
    let at = format!("state file {}:3: ", state.file().display());
    assert!(
        err.starts_with(&format!("{at}`//.victim` is not a setting setup writes")),
        "{err}"
    );
    assert!(err.ends_with("(nothing was changed)"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(std::fs::read_to_string(state.file()).unwrap(), crafted);
}

#[test]
fn undo_refuses_entries_setup_never_writes_and_changes_nothing() {
    let cases = [
        (
            "{\n  \"created_links\": [\n    \"tunl0\",\n    \"eth0\"\n  ]\n}\n",
            "4: `created_links` names `eth0`, a device setup never creates (it creates only \
             tunl0 and ip6tnl0)",
        ),
        (
            "{\n  \"raised_links\": [\"eth0\"]\n}\n",
            "2: `raised_links` names `eth0`, a device setup never brings up (it brings up only lo, \
             tunl0 and ip6tnl0)",
        ),
        (
            "{\n  \"addresses\": [\n    {\"dev\": \"eth0\", \"address\": \
             \"192.168.0.179/24\"}\n  ]\n}\n",
            "3: `192.168.0.179/24` is not a host address (/32 or /128), and setup adds only \
             those",
        ),
        (
            "{\n  \"addresses\": [\n    {\n      \"dev\": \"../eth0\",\n      \"address\": \
             \"192.168.0.101/32\"\n    }\n  ]\n}\n",
            "4: `../eth0` is not an interface name",
        ),
        (
            "{\n  \"addresses\": [\n    {\"dev\": \"lo\", \"address\": \"127.0.0.2/32\"}\n  \
             ]\n}\n",
            "3: `127.0.0.2/32` is a loopback address, which setup never sets up (127.0.0.0/8 and \
             ::1 never leave this machine)",
        ),
        (
            "{\n  \"sysctls\": {\n    \"net.ipv4.conf.all.arp_ignore\": \"1; reboot\"\n  }\n}\n",
            "3: net.ipv4.conf.all.arp_ignore: `1; reboot` is not an earlier value setup would \
             have recorded (an integer of at most 20 digits)",
        ),
        (
            "{\n  \"sysctls\": {\n    \"net.ipv4.conf.eth0.forwarding\": \"0\"\n  }\n}\n",
            "3: `net.ipv4.conf.eth0.forwarding` is not a setting setup writes",
        ),
        (
            "{\n  \"about\": \"x\",\n  \"commands\": []\n}\n",
            "3: `commands` is not a key setup writes",
        ),
    ];
    for (crafted, want) in cases {
        let state = StateDir::new("crafted");
        let mut sys = Fake::realserver();
        sys.links.insert(
            "eth0".into(),
            (LinkState::Up, vec!["192.168.0.179/24".parse().unwrap()]),
        );
        sys.links
            .get_mut("lo")
            .unwrap()
            .1
            .push("127.0.0.2/32".parse().unwrap());
        let before = sys.clone();
        craft(&state, crafted);
        let err = undo_error(&mut sys, &state);
        let want = format!("state file {}:{want}", state.file().display());
        assert!(
            err.starts_with(&want),
            "{crafted}\nwant: {want}\ngot:  {err}"
        );
        assert_eq!(sys, before, "{crafted}");
        assert_eq!(std::fs::read_to_string(state.file()).unwrap(), crafted);
        // Setting up refuses it as well: it would add to the record.
        let mut out = Vec::new();
        let applied = run(
            &mut sys,
            &vip("192.168.0.101"),
            Action::Apply,
            &state.file(),
            &mut out,
        );
        assert!(applied.is_err(), "{crafted}");
        assert_eq!(sys, before, "{crafted}");
    }
}

// `MockSystem` (the trait's automock) is a machine whose every call is an expectation: a write
// nobody expected fails the test, and a `Sequence` fixes the order of those that were. The
// `Fake` above says where a machine ends up; this says which writes got it there, and in what
// order.

/// Expects `set_sysctl(key, value)` once, next in `seq`.
fn expect_setting(sys: &mut MockSystem, seq: &mut mockall::Sequence, key: &Sysctl, value: &str) {
    let (key, value) = (key.clone(), value.to_string());
    sys.expect_set_sysctl()
        .withf(move |k, v| *k == key && v == value)
        .times(1)
        .in_sequence(seq)
        .returning(|_, _| Ok(()));
}

#[test]
fn undo_writes_the_inverse_of_each_write_of_setup_once_in_reverse_order() {
    // `setup realserver --mode tun` for one IPv4 VIP, on a machine without tunl0: it creates
    // the device, writes six settings, brings the device up and adds the VIP. Undo must write
    // the inverse of each, once, and nothing else, in the reverse order: the VIP goes before
    // its device is brought down (ARP stays suppressed while it is there), and the device it
    // created goes last. The settings, which do not depend on one another, go in key order.
    use ConfSetting::{ArpAnnounce, ArpIgnore, RpFilter};
    let state = StateDir::new("mock-undo");
    let vip = IfAddr::host("192.168.0.101".parse().unwrap());
    let desired = plan::realserver(&[vip.ip], RealServerMode::Tun).unwrap();
    // Each setting setup writes: the value it finds (for tunl0, which does not exist yet, that
    // of `default`), and the one it writes, in the order it writes them.
    let settings: Vec<(Sysctl, &str, &str)> = vec![
        (Sysctl::ipv4_conf("all", ArpIgnore), "0", "1"),
        (Sysctl::ipv4_conf("all", ArpAnnounce), "0", "2"),
        (Sysctl::ipv4_conf("tunl0", ArpIgnore), "0", "1"),
        (Sysctl::ipv4_conf("tunl0", ArpAnnounce), "0", "2"),
        (Sysctl::ipv4_conf("all", RpFilter), "1", "0"),
        (Sysctl::ipv4_conf("tunl0", RpFilter), "1", "0"),
    ];

    let mut setup = MockSystem::new();
    let found: BTreeMap<Sysctl, String> = settings
        .iter()
        .map(|(key, before, _)| {
            (
                key.for_new_device().unwrap_or(key.clone()),
                before.to_string(),
            )
        })
        .collect();
    setup.expect_link().returning(|_| Ok(None));
    setup
        .expect_sysctl()
        .returning(move |key| Ok(found.get(key).cloned()));
    setup.expect_require_privileges().returning(|| Ok(()));
    let mut seq = mockall::Sequence::new();
    setup
        .expect_create_tunnel()
        .withf(|name, kind| name == "tunl0" && *kind == TunnelKind::Ipip)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    for (key, _, after) in &settings {
        expect_setting(&mut setup, &mut seq, key, after);
    }
    setup
        .expect_set_link()
        .withf(|name, state| name == "tunl0" && *state == LinkState::Up)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    setup
        .expect_add_address()
        .withf(move |dev, addr| dev == "tunl0" && *addr == vip)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut out = Vec::new();
    let outcome = run(&mut setup, &desired, Action::Apply, &state.file(), &mut out).unwrap();
    assert_eq!(outcome, Outcome::Changed);
    setup.checkpoint();

    let mut undo = MockSystem::new();
    let now: BTreeMap<Sysctl, String> = settings
        .iter()
        .map(|(key, _, after)| (key.clone(), after.to_string()))
        .collect();
    undo.expect_link()
        .returning(|name| Ok((name == "tunl0").then_some(LinkState::Up)));
    undo.expect_addresses().returning(move |_| Ok(vec![vip]));
    undo.expect_sysctl()
        .returning(move |key| Ok(now.get(key).cloned()));
    undo.expect_require_privileges().returning(|| Ok(()));
    let mut seq = mockall::Sequence::new();
    undo.expect_del_address()
        .withf(move |dev, addr| dev == "tunl0" && *addr == vip)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    undo.expect_set_link()
        .withf(|name, state| name == "tunl0" && *state == LinkState::Down)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    let mut restored = settings.clone();
    restored.sort();
    for (key, before, _) in &restored {
        expect_setting(&mut undo, &mut seq, key, before);
    }
    undo.expect_delete_link()
        .withf(|name| name == "tunl0")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    let outcome = run(
        &mut undo,
        &Desired::default(),
        Action::Undo,
        &state.file(),
        &mut out,
    )
    .unwrap();
    assert_eq!(outcome, Outcome::Changed);
    undo.checkpoint();
}

/// A director with eth0 (holding its own address) toward the VIPs' clients, eth1 toward
/// 10.0.0.0/24, and the settings a distribution leaves: `rp_filter` 1 on `all`, 2 on eth0.
fn director_machine() -> Fake {
    let mut f = Fake {
        privileged: true,
        ..Fake::default()
    };
    f.links.insert(
        "eth0".into(),
        (LinkState::Up, vec!["192.168.0.178/24".parse().unwrap()]),
    );
    f.links.insert(
        "eth1".into(),
        (LinkState::Up, vec!["10.0.0.1/24".parse().unwrap()]),
    );
    for dev in ["all", "default", "eth0", "eth1"] {
        for name in ConfSetting::ALL {
            f.sysctls.insert(Sysctl::ipv4_conf(dev, name), "0".into());
        }
    }
    f.sysctls
        .insert(Sysctl::ipv4_conf("all", ConfSetting::RpFilter), "1".into());
    f.sysctls
        .insert(Sysctl::ipv4_conf("eth0", ConfSetting::RpFilter), "2".into());
    f.routes
        .insert("192.168.0.179".parse().unwrap(), "eth0".into());
    f.routes.insert("10.0.0.5".parse().unwrap(), "eth1".into());
    f
}

fn director_config(via_vip: bool) -> lvs_hc_core::Config {
    let via = if via_vip { "via_vip = true\n" } else { "" };
    lvs_hc_core::Config::from_toml(
        &format!(
            "[[service]]\naddress = \"192.168.0.101:80\"\n[[service.check]]\ntype = \"tcp\"\n{via}\
             [[service.server]]\naddress = \"192.168.0.179:80\"\n[[service.server]]\n\
             address = \"10.0.0.5:80\"\n"
        ),
        "test.toml",
    )
    .unwrap()
}

fn director_desired(sys: &mut Fake, via_vip: bool) -> Desired {
    let cfg = director_config(via_vip);
    let toward = toward_servers(sys, &cfg, Some("eth0")).unwrap();
    let mut d = plan::director(&cfg, Some("eth0"), &toward).unwrap().0;
    keep_reverse_path_filtering(sys, &mut d, &toward).unwrap();
    d
}

#[test]
fn turning_all_rp_filter_off_keeps_the_other_devices_filtering() {
    let mut sys = director_machine();
    // A third interface (the public one, say) relied on `all` for its filtering.
    sys.links.insert("eth2".into(), (LinkState::Up, vec![]));
    for name in ConfSetting::ALL {
        sys.sysctls
            .insert(Sysctl::ipv4_conf("eth2", name), "0".into());
    }
    let before = sys.clone();
    let d = director_desired(&mut sys, true);
    let state = StateDir::new("director-keep-rp");
    let (outcome, _) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(outcome, Outcome::Changed);
    let rp =
        |sys: &Fake, dev: &str| sys.sysctls[&Sysctl::ipv4_conf(dev, ConfSetting::RpFilter)].clone();
    assert_eq!(rp(&sys, "all"), "0");
    assert_eq!(rp(&sys, "eth0"), "0", "toward the servers");
    assert_eq!(rp(&sys, "eth1"), "0", "toward the servers");
    assert_eq!(rp(&sys, "eth2"), "1", "keeps what it had from all");
    assert_eq!(rp(&sys, "default"), "1", "new devices too");
    // Run again: in place; undo: as before.
    let d = director_desired(&mut sys, true);
    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(
        (outcome, text.as_str()),
        (Outcome::InPlace, "in place: nothing to change\n")
    );
    go(&mut sys, &Desired::default(), Action::Undo, &state);
    sys.announced.clear();
    assert_eq!(sys, before);
}

#[test]
fn director_with_via_vip_accepts_local_sources_on_each_interface_toward_the_servers() {
    let mut sys = director_machine();
    let d = director_desired(&mut sys, true);
    let state = StateDir::new("director-via");
    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(outcome, Outcome::Drift);
    assert_eq!(
        text,
        "net.ipv4.conf.all.rp_filter is 1, should be 0\n\
         net.ipv4.conf.eth0.accept_local is 0, should be 1\n\
         net.ipv4.conf.eth0.rp_filter is 2, should be 0\n\
         net.ipv4.conf.eth1.accept_local is 0, should be 1\n\
         net.ipv4.conf.default.rp_filter is 0, should be 1\n\
         192.168.0.101/32 is not on eth0\n"
    );
}

#[test]
fn director_leaves_all_rp_filter_alone_when_it_is_already_0() {
    let mut sys = director_machine();
    sys.sysctls
        .insert(Sysctl::ipv4_conf("all", ConfSetting::RpFilter), "0".into());
    let d = director_desired(&mut sys, true);
    let state = StateDir::new("director-all-0");
    let (_, text) = go(&mut sys, &d, Action::Apply, &state);
    assert!(!text.contains("all.rp_filter"), "{text}");
    assert!(
        text.contains("net.ipv4.conf.eth1.accept_local: 0 -> 1"),
        "{text}"
    );
}

#[test]
fn director_without_via_vip_changes_no_source_validation_setting() {
    let mut sys = director_machine();
    let d = director_desired(&mut sys, false);
    let state = StateDir::new("director-no-via");
    let (_, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(text, "192.168.0.101/32 is not on eth0\n");
}

#[test]
fn director_announces_each_vip_it_adds_and_undo_restores_the_settings() {
    let before = director_machine();
    let mut sys = before.clone();
    let d = director_desired(&mut sys, true);
    let state = StateDir::new("director-announce");
    let (outcome, text) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert!(
        text.ends_with("added 192.168.0.101/32 to eth0\nannounced 192.168.0.101 on eth0\n"),
        "{text}"
    );
    assert_eq!(
        sys.announced,
        [("eth0".to_string(), "192.168.0.101".parse().unwrap())]
    );
    // Nothing added on a rerun: nothing announced.
    let (_, again) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(again, "nothing to change\n");
    assert_eq!(sys.announced.len(), 1);
    go(&mut sys, &Desired::default(), Action::Undo, &state);
    sys.announced.clear();
    assert_eq!(sys, before);
}

#[test]
fn a_failed_announcement_is_a_note_not_an_error() {
    let mut sys = director_machine();
    sys.announce_fails = Some("Network is down (os error 100)".into());
    let d = director_desired(&mut sys, false);
    let state = StateDir::new("director-announce-fails");
    let (outcome, text) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert_eq!(
        text,
        "added 192.168.0.101/32 to eth0\nnote: 192.168.0.101 not announced on eth0 (Network \
         is down (os error 100)); neighbours learn it as their caches expire\n"
    );
}

#[test]
fn a_realserver_never_announces_its_vip() {
    let mut sys = Fake::realserver();
    let state = StateDir::new("realserver-no-announce");
    go(&mut sys, &vip("192.168.0.101"), Action::Apply, &state);
    assert!(sys.announced.is_empty());
}

// One of a pair of directors (`[sync]`): no VIPs of setup's making, IPVS's settings with their
// reasons.

/// `director_machine()` with ip_vs loaded, its settings at the kernel's defaults.
fn pair_machine() -> Fake {
    let mut f = director_machine();
    for (setting, value) in [
        (IpvsSetting::BackupOnly, "0"),
        (IpvsSetting::ExpireNodestConn, "0"),
        (IpvsSetting::ExpireQuiescentTemplate, "0"),
        (IpvsSetting::SloppySctp, "0"),
        (IpvsSetting::SloppyTcp, "0"),
        (IpvsSetting::SyncPersistMode, "0"),
        (IpvsSetting::SyncRefreshPeriod, "0"),
        (IpvsSetting::SyncThreshold, "3 50"),
        (IpvsSetting::SyncVersion, "1"),
    ] {
        f.sysctls.insert(Sysctl::ipvs(setting), value.into());
    }
    f
}

/// The seed's service on one of a pair syncing over eth1, with `director` (the `[director]`
/// table's lines) added.
fn pair_config(director: &str) -> lvs_hc_core::Config {
    lvs_hc_core::Config::from_toml(
        &format!(
            "[director]\n{director}\n[sync]\ninterface = \"eth1\"\nsync_id = 51\n\
             [[service]]\naddress = \"192.168.0.101:80\"\n\
             [[service.server]]\naddress = \"192.168.0.179:80\"\n"
        ),
        "ha.toml",
    )
    .unwrap()
}

/// `setup director` for `config` on `sys`: the settings it wants, and the notes it wrote.
fn pair_desired(
    sys: &mut dyn System,
    config: &lvs_hc_core::Config,
    interface: Option<&str>,
) -> Result<(Desired, String), SetupError> {
    let mut notes = Vec::new();
    let d = director(
        sys,
        config,
        Path::new("ha.toml"),
        interface.map(str::to_string),
        &mut notes,
    )?;
    Ok((d, String::from_utf8(notes).unwrap()))
}

const PAIR_DRIFT: &str = "\
net.ipv4.vs.sync_refresh_period is 0, should be 10 (a connection is synced again at its first \
packet 10 s after the last sync, however seldom it sends, so the standby's copy never expires \
under a live connection)
net.ipv4.vs.sync_threshold is 3 50, should be 3 0 (sync_period 0: sync by time, not at every \
50th packet, which a connection sending less than every 18 s reaches after the standby's copy \
(900 s) expired)
net.ipv4.vs.expire_nodest_conn is 0, should be 1 (a connection to a server lvs-hc removed ends \
at its next packet, so the client reconnects instead of hanging; a drained server keeps its \
connections)
";

#[test]
fn a_pair_is_checked_set_up_and_undone_with_the_reasons_in_the_plan() {
    let before = pair_machine();
    let mut sys = before.clone();
    let cfg = pair_config("");
    let (d, notes) = pair_desired(&mut sys, &cfg, None).unwrap();
    assert_eq!(notes, "");
    let state = StateDir::new("pair");

    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!((outcome, text.as_str()), (Outcome::Drift, PAIR_DRIFT));
    assert_eq!(sys, before, "--check changed something");

    let (outcome, text) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert_eq!(
        text,
        PAIR_DRIFT
            .replace(" is 0, should be 10 (", ": 0 -> 10 (")
            .replace(" is 3 50, should be 3 0 (", ": 3 50 -> 3 0 (")
            .replace(" is 0, should be 1 (", ": 0 -> 1 (")
    );
    let vs = |sys: &Fake, s: IpvsSetting| sys.sysctls[&Sysctl::ipvs(s)].clone();
    assert_eq!(vs(&sys, IpvsSetting::SyncThreshold), "3 0");
    assert_eq!(vs(&sys, IpvsSetting::SyncRefreshPeriod), "10");
    assert_eq!(vs(&sys, IpvsSetting::ExpireNodestConn), "1");
    // No VIP anywhere, nothing announced: VRRP holds them.
    assert_eq!(sys.links, before.links);
    assert!(sys.announced.is_empty());

    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(
        (outcome, text.as_str()),
        (Outcome::InPlace, "in place: nothing to change\n")
    );
    let (outcome, text) = go(&mut sys, &Desired::default(), Action::Undo, &state);
    assert_eq!(outcome, Outcome::Changed);
    // Undo restores in the order of the settings' names, without reasons.
    assert_eq!(
        text,
        "net.ipv4.vs.expire_nodest_conn: 1 -> 0\nnet.ipv4.vs.sync_refresh_period: 10 -> 0\n\
         net.ipv4.vs.sync_threshold: 3 0 -> 3 50\n"
    );
    assert_eq!(sys, before);
    assert!(!state.file().exists());
}

#[test]
fn a_pair_refuses_to_hold_the_vips_itself_before_changing_anything() {
    let mut sys = pair_machine();
    let err = pair_desired(&mut sys, &pair_config("interface = \"eth0\""), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "ha.toml: with `[sync]` this director is one of a pair, whose VIPs belong to VRRP \
         (keepalived's `virtual_ipaddress`), which holds them on the active director only; \
         putting them on `eth0` (from `[director] interface` in ha.toml) as well would hold \
         them on both directors at once, a split brain. Remove `interface` from the \
         `[director]` table. (nothing was changed)"
    );
    let err = pair_desired(&mut sys, &pair_config(""), Some("eth0"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "putting them on `eth0` (from --interface) as well would hold them on both \
                      directors at once, a split brain. Leave out --interface."
        ),
        "{err}"
    );
    assert_eq!(sys, pair_machine());
}

#[test]
fn a_pair_needs_its_sync_interface_and_notes_what_keeps_the_daemons_from_it() {
    let mut sys = pair_machine();
    sys.links.remove("eth1");
    assert_eq!(
        pair_desired(&mut sys, &pair_config(""), None)
            .unwrap_err()
            .to_string(),
        "interface `eth1` (from `[sync] interface` in ha.toml) does not exist (see `ip link`)"
    );

    let mut sys = pair_machine();
    sys.links.insert("eth1".into(), (LinkState::Down, vec![]));
    sys.multicast_off.push("eth1".into());
    let (_, notes) = pair_desired(&mut sys, &pair_config(""), None).unwrap();
    assert_eq!(
        notes,
        "note: eth1 ([sync] interface) is down: the sync daemons send and receive nothing over \
         it until it is up (`ip link set eth1 up`)\n\
         note: eth1 ([sync] interface) has multicast off, and the sync messages are multicast: \
         `ip link set eth1 multicast on`\n\
         note: eth1 ([sync] interface) has no IPv4 address: the master sync daemon then sends \
         from another interface's address, which the other director's reverse-path filter may \
         drop; give eth1 an address on the link the directors share\n"
    );
}

#[test]
fn a_director_that_is_no_pair_still_needs_an_interface_for_its_vips() {
    let mut sys = director_machine();
    let err = pair_desired(&mut sys, &director_config(false), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "ha.toml: no interface for the virtual IPs: set `interface` in the `[director]` table \
         or pass --interface"
    );
}

#[test]
fn undo_of_a_pair_without_ip_vs_loaded_says_what_it_cannot_restore() {
    let mut sys = pair_machine();
    let (d, _) = pair_desired(&mut sys, &pair_config(""), None).unwrap();
    let state = StateDir::new("pair-unloaded");
    go(&mut sys, &d, Action::Apply, &state);
    // `modprobe -r ip_vs`: its settings are gone, and come back at the kernel's defaults.
    sys.sysctls.retain(|k, _| k.ipvs_setting().is_none());
    let (outcome, text) = go(&mut sys, &Desired::default(), Action::Undo, &state);
    assert_eq!(outcome, Outcome::InPlace);
    assert_eq!(
        text,
        "note: net.ipv4.vs.expire_nodest_conn not restored to 0: ip_vs is not loaded, and its \
         settings start from the kernel's defaults when it loads\n\
         note: net.ipv4.vs.sync_refresh_period not restored to 0: ip_vs is not loaded, and its \
         settings start from the kernel's defaults when it loads\n\
         note: net.ipv4.vs.sync_threshold not restored to 3 50: ip_vs is not loaded, and its \
         settings start from the kernel's defaults when it loads\n\
         nothing to undo\n"
    );
    assert!(!state.file().exists());
}

#[test]
fn a_pair_writes_only_the_ipvs_settings_that_differ_and_undo_writes_each_back_once() {
    // The mock machine: ip_vs at the kernel's defaults, eth1 up with an address. Setting up
    // must write exactly the three settings that differ, in the plan's order (the refresh
    // period before the threshold takes the packet period away), touch no address and
    // announce nothing; undo must write each back once, in the order of their names.
    let state = StateDir::new("pair-mock");
    let defaults: BTreeMap<Sysctl, String> = pair_machine()
        .sysctls
        .into_iter()
        .filter(|(k, _)| k.ipvs_setting().is_some())
        .collect();
    let cfg = pair_config("");
    let machine = |sys: &mut MockSystem, values: BTreeMap<Sysctl, String>| {
        sys.expect_link()
            .returning(|name| Ok((name == "eth1").then_some(LinkState::Up)));
        sys.expect_multicast().returning(|_| Ok(true));
        sys.expect_addresses()
            .returning(|_| Ok(vec!["10.1.0.1/24".parse().unwrap()]));
        sys.expect_sysctl()
            .returning(move |key| Ok(values.get(key).cloned()));
        sys.expect_require_privileges().returning(|| Ok(()));
    };
    let writes = [
        (IpvsSetting::SyncRefreshPeriod, "0", "10"),
        (IpvsSetting::SyncThreshold, "3 50", "3 0"),
        (IpvsSetting::ExpireNodestConn, "0", "1"),
    ];

    let mut setup = MockSystem::new();
    machine(&mut setup, defaults.clone());
    let mut seq = mockall::Sequence::new();
    for (setting, _, to) in writes {
        expect_setting(&mut setup, &mut seq, &Sysctl::ipvs(setting), to);
    }
    let (d, _) = pair_desired(&mut setup, &cfg, None).unwrap();
    let mut out = Vec::new();
    let outcome = run(&mut setup, &d, Action::Apply, &state.file(), &mut out).unwrap();
    assert_eq!(outcome, Outcome::Changed);
    setup.checkpoint();

    let mut undo = MockSystem::new();
    let mut now = defaults.clone();
    for (setting, _, to) in writes {
        now.insert(Sysctl::ipvs(setting), to.to_string());
    }
    machine(&mut undo, now);
    let mut seq = mockall::Sequence::new();
    let mut restored = writes.map(|(s, from, _)| (Sysctl::ipvs(s), from));
    restored.sort();
    for (key, from) in &restored {
        expect_setting(&mut undo, &mut seq, key, from);
    }
    let outcome = run(
        &mut undo,
        &Desired::default(),
        Action::Undo,
        &state.file(),
        &mut out,
    )
    .unwrap();
    assert_eq!(outcome, Outcome::Changed);
    undo.checkpoint();
}

#[test]
fn a_pair_on_a_kernel_without_ip_vs_loaded_is_told_to_load_it_and_nothing_changes() {
    // The real machine's reads, under a /proc/sys without net/ipv4/vs.
    let state = StateDir::new("pair-no-ipvs");
    let proc_sys = state.0.join("proc-sys");
    std::fs::create_dir_all(proc_sys.join("net/ipv4/conf/all")).unwrap();
    let mut sys = IpCommand::with_proc_sys(proc_sys);
    let d = plan::director(&pair_config(""), None, &Default::default())
        .unwrap()
        .0;
    for action in [Action::Check, Action::Apply] {
        let mut out = Vec::new();
        let err = run(&mut sys, &d, action, &state.file(), &mut out).unwrap_err();
        assert!(
            matches!(err, SetupError::Plan(plan::PlanError::IpvsNotLoaded(_))),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "the kernel has no setting net.ipv4.vs.sync_version: /proc/sys/net/ipv4/vs \
                 exists only once the ip_vs module is loaded; load ip_vs first (`modprobe \
                 ip_vs`"
            ),
            "{err}"
        );
        assert_eq!(out, b"");
    }
    assert!(!state.file().exists());
}

#[test]
fn the_sync_threshold_is_read_as_the_kernel_writes_it_and_written_back_whole() {
    let state = StateDir::new("threshold");
    let proc_sys = state.0.join("proc-sys");
    let dir = proc_sys.join("net/ipv4/vs");
    std::fs::create_dir_all(&dir).unwrap();
    // The kernel separates a vector's integers with a tab.
    std::fs::write(dir.join("sync_threshold"), "3\t50\n").unwrap();
    let mut sys = IpCommand::with_proc_sys(proc_sys);
    let key = Sysctl::ipvs(IpvsSetting::SyncThreshold);
    assert_eq!(sys.sysctl(&key).unwrap().as_deref(), Some("3 50"));
    sys.set_sysctl(&key, "3 0").unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("sync_threshold")).unwrap(),
        "3 0\n"
    );
}

// Directors behind ECMP (`sh`/`mh` services): IPVS schedules mid-stream packets.

/// A director (no `[sync]`, no VIPs of setup's making) with `services` (`[[service]]` tables).
fn hashing_config(services: &str) -> lvs_hc_core::Config {
    lvs_hc_core::Config::from_toml(services, "ecmp.toml").unwrap()
}

const MH_TCP: &str = "[[service]]\naddress = \"192.168.0.101:80\"\nscheduler = \"mh\"\n\
                      [[service.server]]\naddress = \"192.168.0.179:80\"\n";

#[test]
fn a_director_hashing_tcp_schedules_mid_stream_packets_checked_set_up_and_undone() {
    let before = pair_machine();
    let mut sys = before.clone();
    // No `--interface`: the VIPs are on lo or wherever the operator put them (what setup
    // does with them is as for any director); here only IPVS's settings.
    let d = plan::director(&hashing_config(MH_TCP), None, &Default::default())
        .unwrap()
        .0;
    let state = StateDir::new("hashing");
    let why = "(a TCP service uses sh or mh: a flow another director carried arrives \
               mid-stream (ECMP moved it), and is scheduled, to the same server, instead of \
               dropped)";

    let (outcome, text) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(outcome, Outcome::Drift);
    assert_eq!(
        text,
        format!("net.ipv4.vs.sloppy_tcp is 0, should be 1 {why}\n")
    );
    assert_eq!(sys, before, "--check changed something");

    let (outcome, text) = go(&mut sys, &d, Action::Apply, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert_eq!(text, format!("net.ipv4.vs.sloppy_tcp: 0 -> 1 {why}\n"));
    let vs = |sys: &Fake, s: IpvsSetting| sys.sysctls[&Sysctl::ipvs(s)].clone();
    assert_eq!(vs(&sys, IpvsSetting::SloppyTcp), "1");
    assert_eq!(vs(&sys, IpvsSetting::SloppySctp), "0");

    let (outcome, _) = go(&mut sys, &d, Action::Check, &state);
    assert_eq!(outcome, Outcome::InPlace);
    let (outcome, text) = go(&mut sys, &Desired::default(), Action::Undo, &state);
    assert_eq!(outcome, Outcome::Changed);
    assert_eq!(text, "net.ipv4.vs.sloppy_tcp: 1 -> 0\n");
    assert_eq!(sys, before);
}

#[test]
fn sloppy_settings_follow_the_protocols_of_the_hashing_services_only() {
    let sloppy = |services: &str| -> Vec<String> {
        plan::hashing_settings(&hashing_config(services))
            .into_iter()
            .map(|(s, v, _)| format!("{}={v}", s.name()))
            .collect()
    };
    let svc = |addr: &str, extra: &str| {
        format!(
            "[[service]]\n{addr}\n{extra}\n[[service.check]]\ntype = \"tcp\"\nport = 80\n\
             [[service.server]]\naddress = \"10.0.0.5:80\"\n"
        )
    };
    let tcp = "address = \"192.168.0.101:80\"";
    let sctp = "address = \"192.168.0.101:80\"\nprotocol = \"sctp\"";
    let udp = "address = \"192.168.0.101:80\"\nprotocol = \"udp\"";
    let fwm = "fwmark = 7";
    assert_eq!(
        sloppy(&svc(tcp, "scheduler = \"wlc\"")),
        Vec::<String>::new()
    );
    assert_eq!(sloppy(&svc(tcp, "scheduler = \"sh\"")), ["sloppy_tcp=1"]);
    assert_eq!(sloppy(&svc(sctp, "scheduler = \"mh\"")), ["sloppy_sctp=1"]);
    assert_eq!(
        sloppy(&svc(udp, "scheduler = \"mh\"")),
        Vec::<String>::new()
    );
    assert_eq!(
        sloppy(&svc(fwm, "scheduler = \"mh\"")),
        ["sloppy_tcp=1", "sloppy_sctp=1"]
    );
}

#[test]
fn a_hashing_director_without_ip_vs_loaded_is_told_to_load_it() {
    let state = StateDir::new("hashing-no-ipvs");
    let proc_sys = state.0.join("proc-sys");
    std::fs::create_dir_all(proc_sys.join("net/ipv4/conf/all")).unwrap();
    let mut sys = IpCommand::with_proc_sys(proc_sys);
    let d = plan::director(&hashing_config(MH_TCP), None, &Default::default())
        .unwrap()
        .0;
    let mut out = Vec::new();
    let err = run(&mut sys, &d, Action::Check, &state.file(), &mut out).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "the kernel has no setting net.ipv4.vs.sloppy_tcp: /proc/sys/net/ipv4/vs exists \
             only once the ip_vs module is loaded; load ip_vs first"
        ),
        "{err}"
    );
    assert!(!state.file().exists());
}
