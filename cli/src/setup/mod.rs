//! `lvs-hc setup realserver|director`: addresses, ARP and forwarding settings, which
//! `ipvsadm-save` does not keep.
//!
//! Plan, then apply: [`plan::realserver`] and [`plan::director`] say what the machine should
//! look like, [`observe`] reads what it looks like through a [`System`], [`plan::plan`] lists
//! the changes, and [`run`] prints them (`--check`) or makes them, remembering in a state file
//! what it changed so `--undo` ([`plan::plan_undo`]) reverts exactly that. The director's
//! VIPs are announced (gratuitous ARP) as they are added. One of a pair of directors (`[sync]`)
//! holds no VIPs of setup's making (VRRP moves them) and gets IPVS's sync and failover
//! settings instead ([`plan::pair_settings`]). A director with `sh` or `mh` services (several
//! directors behind ECMP) gets `sloppy_tcp`/`sloppy_sctp` ([`plan::hashing_settings`]).

pub mod plan;
pub mod state;
pub mod system;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use lvs_hc_core::config::{is_interface_name, SyncSettings, INTERFACE_NAME_RULE};
use lvs_hc_core::Config;

use crate::cli::{SetupMode, SetupRole};
pub use plan::{Change, Desired, Observed, Record};
pub use system::{IpCommand, System};

/// Why setup could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// Changing addresses and settings needs privileges this process lacks: run as root.
    #[error(
        "needs root (CAP_NET_ADMIN) to change addresses and settings; --check works without \
         changing anything"
    )]
    NeedsRoot,
    /// iproute2 is not installed.
    #[error("the `ip` program (iproute2) was not found in PATH: install iproute2")]
    IpMissing,
    /// `ip` could not be started.
    #[error("cannot run `{command}`")]
    Run {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `ip` failed: its message says why.
    #[error("`{command}` failed: {stderr}")]
    Ip {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// `ip` printed something that is not the JSON iproute2 prints (busybox `ip` has no `-j`).
    #[error("cannot read the output of `{command}` ({message}): is `ip` iproute2's?")]
    IpOutput {
        /// The command line.
        command: String,
        /// The parse error.
        message: String,
    },
    /// The kernel cannot make this kind of tunnel: load the module.
    #[error(
        "the kernel cannot create {kind} tunnels (load the module: `modprobe {kind}`): {stderr}"
    )]
    NoTunnelSupport {
        /// The `ip link` type.
        kind: &'static str,
        /// What `ip` said.
        stderr: String,
    },
    /// An interface does not exist.
    #[error("interface `{0}` does not exist (see `ip link`)")]
    NoSuchInterface(String),
    /// The interface the director's VIPs go on does not exist.
    #[error("interface `{name}` (from {from}) does not exist (see `ip link`)")]
    DirectorInterfaceMissing {
        /// The interface.
        name: String,
        /// Where the name came from.
        from: String,
    },
    /// A name given as an interface is not one.
    #[error("--interface: `{0}` is not an interface name ({INTERFACE_NAME_RULE})")]
    BadInterfaceName(String),
    /// One of a pair of directors (`[sync]`) was given an interface to hold the VIPs on: VRRP
    /// holds them on the active director only, so both would hold them. Remove the interface.
    #[error(
        "{config}: with `[sync]` this director is one of a pair, whose VIPs belong to VRRP \
         (keepalived's `virtual_ipaddress`), which holds them on the active director only; \
         putting them on `{interface}` (from {from}) as well would hold them on both directors \
         at once, a split brain. {fix} (nothing was changed)"
    )]
    PairVips {
        /// The configuration file.
        config: PathBuf,
        /// The interface named.
        interface: String,
        /// Where the name came from.
        from: String,
        /// What to do.
        fix: &'static str,
    },
    /// The director has no interface to put the VIPs on.
    #[error(
        "{config}: no interface for the virtual IPs: set `interface` in the `[director]` table \
         or pass --interface"
    )]
    NoInterface {
        /// The configuration file.
        config: PathBuf,
    },
    /// The settings cannot be reached.
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    /// The configuration (`setup director`) cannot be used: the message points at the line
    /// and key.
    #[error(transparent)]
    Config(#[from] crate::LoadError),
    /// Standard output (or standard error, for a note) could not be written (a reader that
    /// stopped reading): what was changed is in the state file, and `--check` shows where the
    /// machine stands.
    #[error(transparent)]
    Output(std::io::Error),
    /// A setting under /proc/sys could not be read or written.
    #[error("{path}: {source}")]
    Sysctl {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file could not be read or written: check --state-dir.
    #[error("state file {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file holds something setup never writes (or is not JSON): something else
    /// changed it. Check it, then correct or delete it; nothing was changed.
    #[error(
        "state file {path}:{line}: {message}; setup never writes that, so something else \
         changed the file: check it, then correct or delete it (nothing was changed)"
    )]
    StateFormat {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The state file is far larger than setup writes: something else wrote it.
    #[error(
        "state file {path} is larger than 1 MiB, which setup never writes: check what wrote \
         it, then correct or delete it (nothing was changed)"
    )]
    StateTooLarge {
        /// The file.
        path: PathBuf,
    },
}

/// What `setup` is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make the changes.
    Apply,
    /// Report what differs; change nothing.
    Check,
    /// Revert what earlier runs changed.
    Undo,
}

impl Action {
    fn of(check: bool, undo: bool) -> Action {
        match (check, undo) {
            (true, _) => Action::Check,
            (false, true) => Action::Undo,
            (false, false) => Action::Apply,
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was in place (or nothing was left to undo).
    InPlace,
    /// `--check` found differences.
    Drift,
    /// Changes were made.
    Changed,
}

impl Outcome {
    /// 1 for drift, 0 otherwise.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Drift => ExitCode::from(1),
            Outcome::InPlace | Outcome::Changed => ExitCode::SUCCESS,
        }
    }
}

/// Which machine, for the state file's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `setup realserver`.
    Realserver,
    /// `setup director`.
    Director,
}

impl Role {
    /// The state file in `dir`.
    pub fn state_file(self, dir: &Path) -> PathBuf {
        dir.join(match self {
            Role::Realserver => "setup-realserver.json",
            Role::Director => "setup-director.json",
        })
    }
}

/// Runs `lvs-hc setup`. With `--check`, an error exits 2 (as diff(1) does), so monitoring
/// tells "cannot tell" from "differs" (1).
pub fn main(role: SetupRole) -> Result<ExitCode, SetupError> {
    let check = match &role {
        SetupRole::Realserver { check, .. } | SetupRole::Director { check, .. } => *check,
    };
    match setup(role) {
        Err(e) if check => {
            eprintln!("error: {}", crate::Chain(&e));
            Ok(ExitCode::from(2))
        }
        result => result,
    }
}

fn setup(role: SetupRole) -> Result<ExitCode, SetupError> {
    let mut sys = IpCommand::default();
    let mut out = std::io::stdout().lock();
    let outcome = match role {
        SetupRole::Realserver {
            vip,
            mode,
            check,
            undo,
            state_dir,
        } => {
            let mode = match mode {
                SetupMode::Dr => plan::RealServerMode::Dr,
                SetupMode::Tun => plan::RealServerMode::Tun,
            };
            let action = Action::of(check, undo);
            let desired = if action == Action::Undo {
                if !vip.is_empty() {
                    eprintln!(
                        "note: --undo reverts all that the state file records; --vip is not used"
                    );
                }
                Desired::default()
            } else {
                plan::realserver(&vip, mode).map_err(SetupError::Plan)?
            };
            let state = Role::Realserver.state_file(&state_dir);
            run(&mut sys, &desired, action, &state, &mut out)?
        }
        SetupRole::Director {
            config,
            interface,
            check,
            undo,
            state_dir,
        } => {
            let action = Action::of(check, undo);
            let state = Role::Director.state_file(&state_dir);
            if action == Action::Undo {
                // Undo reverts what the state file says, whatever the configuration says now.
                run(&mut sys, &Desired::default(), action, &state, &mut out)?
            } else {
                let cfg = crate::load_config(&config)?;
                let notes = &mut std::io::stderr().lock();
                let desired = director(&mut sys, &cfg, &config, interface, notes)?;
                run(&mut sys, &desired, action, &state, &mut out)?
            }
        }
    };
    Ok(outcome.exit_code())
}

/// The settings `setup director` wants for `config` (read from `path`), checked against the
/// machine: the VIPs on `--interface` (`interface`) or `[director] interface`, or on no
/// interface for one of a pair; the interfaces named must exist. What setup leaves alone but
/// the operator should know of is written to `notes` (standard error), one `note:` a line.
pub fn director(
    sys: &mut dyn System,
    config: &Config,
    path: &Path,
    interface: Option<String>,
    notes: &mut dyn Write,
) -> Result<Desired, SetupError> {
    let vips_on = vip_interface(config, path, interface)?;
    if let Some((iface, from)) = &vips_on {
        if sys.link(iface)?.is_none() {
            return Err(SetupError::DirectorInterfaceMissing {
                name: iface.clone(),
                from: from.clone(),
            });
        }
    }
    if let Some(sync) = &config.sync {
        sync_interface(sys, sync, path, notes)?;
    }
    let iface = vips_on.as_ref().map(|(i, _)| i.as_str());
    let toward_servers = toward_servers(sys, config, iface)?;
    let (mut desired, skipped) =
        plan::director(config, iface, &toward_servers).map_err(SetupError::Plan)?;
    keep_reverse_path_filtering(sys, &mut desired, &toward_servers)?;
    // Only a director that holds its VIPs leaves services out.
    for svc in skipped {
        note(
            notes,
            format_args!(
                "{} left out: a fwmark service matches packets by firewall mark, not by one \
                 address, so its addresses are not put on {}",
                svc.label(),
                iface.unwrap_or("an interface")
            ),
        )?;
    }
    Ok(desired)
}

/// Where the director's VIPs go, and where that name came from: `--interface`, else
/// `[director] interface`. One of a pair (`[sync]`) puts them nowhere, and refuses either:
/// VRRP holds them on the active director only.
fn vip_interface(
    config: &Config,
    path: &Path,
    interface: Option<String>,
) -> Result<Option<(String, String)>, SetupError> {
    let from_config = || format!("`[director] interface` in {}", path.display());
    if config.sync.is_some() {
        let pair_vips = |interface: String, from: String, fix| SetupError::PairVips {
            config: path.to_path_buf(),
            interface,
            from,
            fix,
        };
        return match (interface, &config.director.interface) {
            (Some(i), _) => Err(pair_vips(
                i,
                "--interface".to_string(),
                "Leave out --interface.",
            )),
            (None, Some(i)) => Err(pair_vips(
                i.clone(),
                from_config(),
                "Remove `interface` from the `[director]` table.",
            )),
            (None, None) => Ok(None),
        };
    }
    match (interface, &config.director.interface) {
        (Some(i), _) if !is_interface_name(&i) => Err(SetupError::BadInterfaceName(i)),
        (Some(i), _) => Ok(Some((i, "--interface".to_string()))),
        (None, Some(i)) => Ok(Some((i.clone(), from_config()))),
        (None, None) => Err(SetupError::NoInterface {
            config: path.to_path_buf(),
        }),
    }
}

/// The interface of `[sync]` must exist. Setup does not change it (it may carry the
/// director's own traffic), so what keeps the sync daemons from working over it is a note:
/// down; multicast off (the messages are multicast); for an IPv4 group, no IPv4 address (the
/// kernel's master daemon then sends from another interface's address, which the other
/// director's reverse-path filter may drop).
fn sync_interface(
    sys: &mut dyn System,
    sync: &SyncSettings,
    path: &Path,
    notes: &mut dyn Write,
) -> Result<(), SetupError> {
    let dev = &sync.interface;
    let Some(state) = sys.link(dev)? else {
        return Err(SetupError::DirectorInterfaceMissing {
            name: dev.clone(),
            from: format!("`[sync] interface` in {}", path.display()),
        });
    };
    if state == plan::LinkState::Down {
        note(
            notes,
            format_args!(
                "{dev} ([sync] interface) is down: the sync daemons send and receive nothing \
                 over it until it is up (`ip link set {dev} up`)"
            ),
        )?;
    }
    if !sys.multicast(dev)? {
        note(
            notes,
            format_args!(
                "{dev} ([sync] interface) has multicast off, and the sync messages are \
                 multicast: `ip link set {dev} multicast on`"
            ),
        )?;
    }
    let ipv6_group = sync.group.is_some_and(|g| g.is_ipv6());
    if !ipv6_group && !sys.addresses(dev)?.iter().any(|a| a.ip.is_ipv4()) {
        note(
            notes,
            format_args!(
                "{dev} ([sync] interface) has no IPv4 address: the master sync daemon then \
                 sends from another interface's address, which the other director's \
                 reverse-path filter may drop; give {dev} an address on the link the \
                 directors share"
            ),
        )?;
    }
    Ok(())
}

/// Writes `note: TEXT` on `notes`.
fn note(notes: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), SetupError> {
    writeln!(notes, "note: {text}").map_err(SetupError::Output)
}

/// When the plan turns `net.ipv4.conf.all.rp_filter` off (for replies to probes through the
/// VIP) while it is on, every other device would lose the reverse-path filtering it had from
/// `all` (the kernel uses the larger of `all` and the device): each of them, `default` (what
/// new devices start with) included, is given `all`'s value itself where its own is lower, so
/// that only the devices toward the servers change. `--undo` restores them with the rest.
fn keep_reverse_path_filtering(
    sys: &mut dyn System,
    desired: &mut Desired,
    toward_servers: &std::collections::BTreeSet<String>,
) -> Result<(), SetupError> {
    let all = plan::Sysctl::ipv4_conf("all", plan::ConfSetting::RpFilter);
    if !desired.sysctls.iter().any(|(k, v)| *k == all && v == "0") {
        return Ok(());
    }
    let level = |v: Option<String>| v.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
    let now = level(sys.sysctl(&all)?);
    if now == 0 {
        return Ok(());
    }
    for dev in sys.conf_devices()? {
        if toward_servers.contains(&dev) || dev == plan::LOOPBACK {
            continue;
        }
        let key = plan::Sysctl::ipv4_conf(&dev, plan::ConfSetting::RpFilter);
        if level(sys.sysctl(&key)?) < now {
            desired.sysctls.push((key, now.to_string()));
        }
    }
    Ok(())
}

/// The interfaces the replies of the servers probed through their VIP come in by: the route
/// to each (`interface`, the VIPs' own, for one without a route, if setup puts them on one;
/// never `lo`, for a server on this very machine).
pub fn toward_servers(
    sys: &mut dyn System,
    config: &Config,
    interface: Option<&str>,
) -> Result<std::collections::BTreeSet<String>, SetupError> {
    let mut devs = std::collections::BTreeSet::new();
    for ip in plan::via_vip_servers(config) {
        match sys.route_interface(ip)? {
            Some(dev) if dev == plan::LOOPBACK => {}
            Some(dev) if is_interface_name(&dev) => {
                devs.insert(dev);
            }
            _ => {
                devs.extend(interface.map(str::to_string));
            }
        }
    }
    Ok(devs)
}

/// Reads what `desired` and `record` mention. A setting of a device that does not exist yet
/// reads as the `default` value it will start with.
pub fn observe(
    sys: &mut dyn System,
    desired: &Desired,
    record: &Record,
) -> Result<Observed, SetupError> {
    let mut obs = Observed::default();
    let mut devices = record.devices();
    // A device whose settings alone setup wrote (the director's interface toward servers
    // probed through the VIP): undo must see that it still exists.
    devices.extend(
        record
            .sysctls
            .keys()
            .filter_map(|k| k.device().map(str::to_string)),
    );
    devices.extend(desired.links.iter().map(|l| l.name.clone()));
    devices.extend(desired.addresses.iter().map(|(d, _)| d.clone()));
    for dev in devices {
        if let Some(state) = sys.link(&dev)? {
            obs.links.insert(dev.clone(), state);
            let addrs = sys.addresses(&dev)?;
            obs.addresses.insert(dev, addrs);
        }
    }
    let keys = desired
        .sysctls
        .iter()
        .map(|(k, _)| k)
        .chain(record.sysctls.keys());
    for key in keys {
        let mut value = sys.sysctl(key)?;
        if value.is_none() && key.device().is_some_and(|d| !obs.links.contains_key(d)) {
            if let Some(default) = key.for_new_device() {
                value = sys.sysctl(&default)?;
            }
        }
        if let Some(v) = value {
            obs.sysctls.insert(key.clone(), v);
        }
    }
    Ok(obs)
}

/// Checks, applies or undoes, printing one line per change (or drift) on `out`.
pub fn run(
    sys: &mut dyn System,
    desired: &Desired,
    action: Action,
    state: &Path,
    out: &mut dyn Write,
) -> Result<Outcome, SetupError> {
    match action {
        Action::Check => {
            let obs = observe(sys, desired, &Record::default())?;
            let changes = plan::plan(desired, &obs)?;
            if changes.is_empty() {
                line(out, "in place: nothing to change")?;
                return Ok(Outcome::InPlace);
            }
            for c in &changes {
                line(out, c.drift())?;
            }
            Ok(Outcome::Drift)
        }
        Action::Apply => {
            let before = state::load(state)?.unwrap_or_default();
            let obs = observe(sys, desired, &Record::default())?;
            let changes = plan::plan(desired, &obs)?;
            if changes.is_empty() {
                line(out, "nothing to change")?;
                return Ok(Outcome::InPlace);
            }
            sys.require_privileges()?;
            // Write ahead: the earlier values are on disk before anything changes, so an
            // interrupted run can still be undone.
            let mut ahead = before.clone();
            changes.iter().for_each(|c| ahead.remember(c));
            state::save(state, &ahead)?;
            let mut done = before;
            for c in &changes {
                if let Err(e) = system::apply(sys, c) {
                    state::save(state, &done)?;
                    return Err(e);
                }
                done.remember(c);
                line(out, c)?;
                if let (true, Change::AddAddress { dev, addr }) = (desired.announce, c) {
                    // Neighbours may still map the VIP to the machine that held it before.
                    match sys.announce(dev, addr.ip) {
                        Ok(()) => line(out, format_args!("announced {} on {dev}", addr.ip))?,
                        Err(e) => line(
                            out,
                            format_args!(
                                "note: {} not announced on {dev} ({e}); neighbours learn it \
                                 as their caches expire",
                                addr.ip
                            ),
                        )?,
                    }
                }
            }
            state::save(state, &done)?;
            Ok(Outcome::Changed)
        }
        Action::Undo => {
            let Some(record) = state::load(state)? else {
                line(
                    out,
                    format_args!(
                        "nothing to undo: {} does not exist (setup changed nothing here)",
                        state.display()
                    ),
                )?;
                return Ok(Outcome::InPlace);
            };
            let obs = observe(sys, &Desired::default(), &record)?;
            for (key, earlier) in &record.sysctls {
                if key.ipvs_setting().is_some() && !obs.sysctls.contains_key(key) {
                    line(
                        out,
                        format_args!(
                            "note: {key} not restored to {earlier}: ip_vs is not loaded, and \
                             its settings start from the kernel's defaults when it loads"
                        ),
                    )?;
                }
            }
            let changes = plan::plan_undo(&record, &obs);
            if changes.is_empty() {
                line(out, "nothing to undo")?;
            } else {
                sys.require_privileges()?;
            }
            for c in &changes {
                system::apply(sys, c)?;
                line(out, c)?;
            }
            state::save(state, &Record::default())?;
            Ok(if changes.is_empty() {
                Outcome::InPlace
            } else {
                Outcome::Changed
            })
        }
    }
}

/// Writes one line of what `run` reports on `out`.
fn line(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), SetupError> {
    writeln!(out, "{text}").map_err(SetupError::Output)
}

#[cfg(test)]
mod tests;
