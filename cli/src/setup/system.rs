//! The machine `lvs-hc setup` reads and changes: the [`System`] trait and its real
//! implementation, which runs iproute2's `ip` (argument vectors, never a shell) and reads and
//! writes /proc/sys.

use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use super::plan::{Change, IfAddr, LinkState, Sysctl, TunnelKind};
use super::SetupError;

/// Reads and changes network devices, addresses and kernel settings. In tests, `MockSystem`
/// (mockall) is a machine whose every call is an expectation.
#[cfg_attr(test, mockall::automock)]
pub trait System {
    /// Whether a device exists, and if so whether it is up.
    fn link(&mut self, name: &str) -> Result<Option<LinkState>, SetupError>;
    /// Whether an existing device has multicast on (`MULTICAST` among its flags).
    fn multicast(&mut self, name: &str) -> Result<bool, SetupError>;
    /// The addresses on an existing device.
    fn addresses(&mut self, dev: &str) -> Result<Vec<IfAddr>, SetupError>;
    /// Adds an address to a device.
    fn add_address(&mut self, dev: &str, addr: IfAddr) -> Result<(), SetupError>;
    /// Removes an address from a device.
    fn del_address(&mut self, dev: &str, addr: IfAddr) -> Result<(), SetupError>;
    /// Brings a device up or down.
    fn set_link(&mut self, name: &str, state: LinkState) -> Result<(), SetupError>;
    /// Creates a tunnel device (succeeds if the module's own device of that name appeared).
    fn create_tunnel(&mut self, name: &str, kind: TunnelKind) -> Result<(), SetupError>;
    /// Deletes a device.
    fn delete_link(&mut self, name: &str) -> Result<(), SetupError>;
    /// A setting's value, trimmed, the integers of a vector (`net.ipv4.vs.sync_threshold`, which
    /// the kernel writes tab-separated) separated by one space; `None` if the kernel has no
    /// such setting.
    fn sysctl(&mut self, key: &Sysctl) -> Result<Option<String>, SetupError>;
    /// Writes a setting.
    fn set_sysctl(&mut self, key: &Sysctl, value: &str) -> Result<(), SetupError>;
    /// Fails, before anything changes, when changes would be refused.
    fn require_privileges(&mut self) -> Result<(), SetupError>;
    /// The interface the route to `to` leaves by (`ip route get`), `None` without a route.
    fn route_interface(&mut self, to: IpAddr) -> Result<Option<String>, SetupError>;
    /// The devices with IPv4 settings (`net.ipv4.conf.<device>`), `default` included, `all`
    /// not.
    fn conf_devices(&mut self) -> Result<Vec<String>, SetupError>;
    /// Tells the neighbours on `dev` that `ip` is here now (gratuitous ARP; IPv6: unsolicited
    /// neighbour advertisement). A failure is reported, never fatal: the address is in place
    /// and neighbours' caches expire by themselves.
    fn announce(&mut self, dev: &str, ip: IpAddr) -> Result<(), String>;
}

/// Makes one change.
pub fn apply(sys: &mut dyn System, change: &Change) -> Result<(), SetupError> {
    match change {
        Change::CreateLink { name, kind } => sys.create_tunnel(name, *kind),
        Change::SetLink { name, state } => sys.set_link(name, *state),
        Change::DeleteLink { name } => sys.delete_link(name),
        Change::AddAddress { dev, addr } => sys.add_address(dev, *addr),
        Change::DelAddress { dev, addr } => sys.del_address(dev, *addr),
        Change::SetSysctl { key, to, .. } => sys.set_sysctl(key, to),
    }
}

/// The real machine, through `ip` and /proc/sys.
#[derive(Debug)]
pub struct IpCommand {
    program: PathBuf,
    proc_sys: PathBuf,
}

impl Default for IpCommand {
    fn default() -> Self {
        IpCommand {
            program: PathBuf::from("ip"),
            proc_sys: PathBuf::from("/proc/sys"),
        }
    }
}

impl IpCommand {
    /// The real machine, with settings read and written under `proc_sys` instead of /proc/sys
    /// (for tests: what a settings file write would reach).
    #[cfg(test)]
    pub(crate) fn with_proc_sys(proc_sys: PathBuf) -> IpCommand {
        IpCommand {
            proc_sys,
            ..IpCommand::default()
        }
    }

    fn run(&self, args: &[&str]) -> Result<String, SetupError> {
        let command = || {
            let mut line = self.program.display().to_string();
            for a in args {
                line.push(' ');
                line.push_str(a);
            }
            line
        };
        let out = Command::new(&self.program)
            .args(args)
            .output()
            .map_err(|source| match source.kind() {
                ErrorKind::NotFound => SetupError::IpMissing,
                _ => SetupError::Run {
                    command: command(),
                    source,
                },
            })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("Operation not permitted") {
            return Err(SetupError::NeedsRoot);
        }
        Err(SetupError::Ip {
            command: command(),
            stderr,
        })
    }

    /// `ip -j ARGS...` as JSON.
    pub(crate) fn json(&self, args: &[&str]) -> Result<serde_json::Value, SetupError> {
        let mut argv = vec!["-j"];
        argv.extend_from_slice(args);
        let out = self.run(&argv)?;
        serde_json::from_str(&out).map_err(|e| SetupError::IpOutput {
            command: format!("ip {}", argv.join(" ")),
            message: e.to_string(),
        })
    }

    /// Whether an existing device's flags (`ip -j link show`) include `flag`; `None` when
    /// the device does not exist.
    fn has_flag(&self, name: &str, flag: &str) -> Result<Option<bool>, SetupError> {
        Ok(self.show("link", name)?.map(|link| {
            link["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f == flag))
        }))
    }

    /// `ip -j ... show dev NAME` as JSON; `None` when the device does not exist.
    fn show(&self, what: &str, dev: &str) -> Result<Option<serde_json::Value>, SetupError> {
        match self.run(&["-j", what, "show", "dev", dev]) {
            Ok(out) => {
                let json: serde_json::Value =
                    serde_json::from_str(&out).map_err(|e| SetupError::IpOutput {
                        command: format!("ip -j {what} show dev {dev}"),
                        message: e.to_string(),
                    })?;
                Ok(json.as_array().and_then(|a| a.first()).cloned())
            }
            Err(SetupError::Ip { stderr, .. }) if stderr.contains("does not exist") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl System for IpCommand {
    fn link(&mut self, name: &str) -> Result<Option<LinkState>, SetupError> {
        Ok(self
            .has_flag(name, "UP")?
            .map(|up| if up { LinkState::Up } else { LinkState::Down }))
    }

    fn multicast(&mut self, name: &str) -> Result<bool, SetupError> {
        self.has_flag(name, "MULTICAST")?
            .ok_or_else(|| SetupError::NoSuchInterface(name.to_string()))
    }

    fn addresses(&mut self, dev: &str) -> Result<Vec<IfAddr>, SetupError> {
        let Some(link) = self.show("addr", dev)? else {
            return Err(SetupError::NoSuchInterface(dev.to_string()));
        };
        let mut addrs = Vec::new();
        for info in link["addr_info"].as_array().into_iter().flatten() {
            let ip = info["local"].as_str().and_then(|s| s.parse().ok());
            let prefix = info["prefixlen"]
                .as_u64()
                .and_then(|p| u8::try_from(p).ok());
            if let (Some(ip), Some(prefix)) = (ip, prefix) {
                addrs.push(IfAddr { ip, prefix });
            }
        }
        Ok(addrs)
    }

    fn add_address(&mut self, dev: &str, addr: IfAddr) -> Result<(), SetupError> {
        let a = addr.to_string();
        if addr.ip.is_ipv6() {
            // No duplicate address detection: a VIP is meant to be held by several machines
            // (and DAD would leave it "tentative", unusable, for a second or more).
            self.run(&["addr", "add", &a, "dev", dev, "nodad"])?;
        } else {
            self.run(&["addr", "add", &a, "dev", dev])?;
        }
        Ok(())
    }

    fn del_address(&mut self, dev: &str, addr: IfAddr) -> Result<(), SetupError> {
        self.run(&["addr", "del", &addr.to_string(), "dev", dev])
            .map(drop)
    }

    fn set_link(&mut self, name: &str, state: LinkState) -> Result<(), SetupError> {
        let state = state.to_string();
        self.run(&["link", "set", "dev", name, &state]).map(drop)
    }

    fn create_tunnel(&mut self, name: &str, kind: TunnelKind) -> Result<(), SetupError> {
        match self.run(&["link", "add", "name", name, "type", kind.link_type()]) {
            Ok(_) => Ok(()),
            // Loading the module (which `ip link add` triggers) creates its fallback device
            // of this very name in every namespace.
            Err(SetupError::Ip { stderr, .. })
                if stderr.contains("File exists") && self.link(name)?.is_some() =>
            {
                Ok(())
            }
            Err(SetupError::Ip { stderr, .. })
                if stderr.contains("Unknown device type") || stderr.contains("not supported") =>
            {
                Err(SetupError::NoTunnelSupport {
                    kind: kind.link_type(),
                    stderr,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn delete_link(&mut self, name: &str) -> Result<(), SetupError> {
        self.run(&["link", "del", "dev", name]).map(drop)
    }

    fn conf_devices(&mut self) -> Result<Vec<String>, SetupError> {
        let dir = self.proc_sys.join("net/ipv4/conf");
        let entries = std::fs::read_dir(&dir).map_err(|source| SetupError::Sysctl {
            path: dir.clone(),
            source,
        })?;
        let mut devices: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|d| d != "all" && lvs_hc_core::config::is_interface_name(d))
            .collect();
        devices.sort();
        Ok(devices)
    }

    fn sysctl(&mut self, key: &Sysctl) -> Result<Option<String>, SetupError> {
        let path = self.proc_sys.join(key.as_path());
        match std::fs::read_to_string(&path) {
            Ok(v) => Ok(Some(v.split_whitespace().collect::<Vec<_>>().join(" "))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SetupError::Sysctl { path, source }),
        }
    }

    fn set_sysctl(&mut self, key: &Sysctl, value: &str) -> Result<(), SetupError> {
        let path = self.proc_sys.join(key.as_path());
        std::fs::write(&path, format!("{value}\n")).map_err(|source| {
            if source.kind() == ErrorKind::PermissionDenied {
                SetupError::NeedsRoot
            } else {
                SetupError::Sysctl { path, source }
            }
        })
    }

    fn route_interface(&mut self, to: IpAddr) -> Result<Option<String>, SetupError> {
        let to = to.to_string();
        match self.json(&["route", "get", &to]) {
            Ok(routes) => Ok(routes
                .as_array()
                .and_then(|a| a.first())
                .and_then(|r| r["dev"].as_str())
                .map(str::to_string)),
            // "RTNETLINK answers: Network is unreachable" and the like: no route.
            Err(SetupError::Ip { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn announce(&mut self, dev: &str, ip: IpAddr) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        runtime
            .block_on(crate::arp::announce(dev, ip))
            .map_err(|e| e.to_string())
    }

    fn require_privileges(&mut self) -> Result<(), SetupError> {
        const CAP_NET_ADMIN: u32 = 12;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok());
        match effective {
            Some(caps) if caps & (1 << CAP_NET_ADMIN) == 0 => Err(SetupError::NeedsRoot),
            _ => Ok(()),
        }
    }
}
