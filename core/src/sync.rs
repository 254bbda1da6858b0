//! The kernel's connection synchronisation daemons, as values.
//!
//! IPVS copies its connection table from one director to another with two kernel threads per
//! network namespace: a *master* that multicasts the connections this director forwards, and a
//! *backup* that receives another director's and installs them. On kernels since 2.6.39 both
//! run at once, so each director of a pair runs both and no role has to change at failover.
//!
//! [`SyncDaemon`] is one daemon as configured or as read from the kernel; [`SyncOp`] is one
//! change to them. Like [`crate::Op`], a [`SyncOp`]'s `Display` is the `ipvsadm` command that
//! does the same thing.

use std::fmt;
use std::net::IpAddr;

/// Which of the two sync daemons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncRole {
    /// Sends this director's connections (`IP_VS_STATE_MASTER`, 1).
    Master,
    /// Receives another director's connections (`IP_VS_STATE_BACKUP`, 2).
    Backup,
}

impl SyncRole {
    /// Both roles, master first.
    pub const ALL: [SyncRole; 2] = [SyncRole::Master, SyncRole::Backup];

    /// `master` or `backup`, as ipvsadm spells it.
    pub fn name(self) -> &'static str {
        match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
        }
    }

    /// The kernel's state bit (`IP_VS_STATE_MASTER` or `IP_VS_STATE_BACKUP`).
    pub fn state(self) -> u32 {
        match self {
            SyncRole::Master => 1,
            SyncRole::Backup => 2,
        }
    }

    /// The role of a kernel state value (exactly one bit), or `None`.
    pub fn from_state(state: u32) -> Option<SyncRole> {
        match state {
            1 => Some(SyncRole::Master),
            2 => Some(SyncRole::Backup),
            _ => None,
        }
    }
}

impl fmt::Display for SyncRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One sync daemon: as the configuration asks for it, or as the kernel reports it.
///
/// The optional settings are `None` when the configuration leaves them to the kernel's
/// default (group 224.0.0.81, port 8848, TTL 1, the longest
/// packet the interface's MTU allows), or when an older kernel does not report them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncDaemon {
    /// Master or backup.
    pub role: SyncRole,
    /// The interface the sync messages go out on (master) or are received on (backup).
    pub interface: String,
    /// Which pair's messages these are (0–255): a backup ignores other ids.
    pub sync_id: u8,
    /// Longest sync message, in bytes (IPVS_DAEMON_ATTR_SYNC_MAXLEN).
    pub max_len: Option<u16>,
    /// Multicast group (IPVS_DAEMON_ATTR_MCAST_GROUP or _GROUP6).
    pub group: Option<IpAddr>,
    /// UDP port (IPVS_DAEMON_ATTR_MCAST_PORT).
    pub port: Option<u16>,
    /// Multicast TTL (IPVS_DAEMON_ATTR_MCAST_TTL).
    pub ttl: Option<u8>,
}

impl SyncDaemon {
    /// Whether this daemon, as the kernel reports it, is what `wanted` asks for: the same
    /// role, interface and sync id, and every setting `wanted` names equal (a setting the
    /// kernel does not report is taken as equal).
    pub fn satisfies(&self, wanted: &SyncDaemon) -> bool {
        fn same<T: PartialEq>(have: &Option<T>, want: &Option<T>) -> bool {
            match (have, want) {
                (Some(h), Some(w)) => h == w,
                _ => true,
            }
        }
        self.role == wanted.role
            && self.interface == wanted.interface
            && self.sync_id == wanted.sync_id
            && same(&self.max_len, &wanted.max_len)
            && same(&self.group, &wanted.group)
            && same(&self.port, &wanted.port)
            && same(&self.ttl, &wanted.ttl)
    }

    /// The settings without the role: `interface eth0, sync id 1, group 224.0.0.81, port 8848,
    /// ttl 1, max length 1472` (only those known).
    pub fn settings(&self) -> String {
        let mut s = format!("interface {}, sync id {}", self.interface, self.sync_id);
        if let Some(g) = self.group {
            s.push_str(&format!(", group {g}"));
        }
        if let Some(p) = self.port {
            s.push_str(&format!(", port {p}"));
        }
        if let Some(t) = self.ttl {
            s.push_str(&format!(", ttl {t}"));
        }
        if let Some(m) = self.max_len {
            s.push_str(&format!(", max length {m}"));
        }
        s
    }

    /// The arguments of `ipvsadm --start-daemon` for this daemon (after `ipvsadm`).
    pub fn start_argv(&self) -> Vec<String> {
        let mut argv = vec![
            "--start-daemon".to_string(),
            self.role.name().to_string(),
            "--mcast-interface".to_string(),
            self.interface.clone(),
            "--syncid".to_string(),
            self.sync_id.to_string(),
        ];
        if let Some(m) = self.max_len {
            argv.extend(["--sync-maxlen".to_string(), m.to_string()]);
        }
        if let Some(g) = self.group {
            argv.extend(["--mcast-group".to_string(), g.to_string()]);
        }
        if let Some(p) = self.port {
            argv.extend(["--mcast-port".to_string(), p.to_string()]);
        }
        if let Some(t) = self.ttl {
            argv.extend(["--mcast-ttl".to_string(), t.to_string()]);
        }
        argv
    }
}

impl fmt::Display for SyncDaemon {
    /// `master sync daemon (interface eth0, sync id 1, ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sync daemon ({})", self.role, self.settings())
    }
}

/// One change to the sync daemons.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncOp {
    /// Start a daemon (`IPVS_CMD_NEW_DAEMON`, `ipvsadm --start-daemon`).
    Start(SyncDaemon),
    /// Stop the daemon of a role (`IPVS_CMD_DEL_DAEMON`, `ipvsadm --stop-daemon`).
    Stop(SyncRole),
}

impl SyncOp {
    /// The role acted on.
    pub fn role(&self) -> SyncRole {
        match self {
            SyncOp::Start(d) => d.role,
            SyncOp::Stop(role) => *role,
        }
    }

    /// The arguments of the equivalent `ipvsadm` command (after `ipvsadm`).
    pub fn ipvsadm_argv(&self) -> Vec<String> {
        match self {
            SyncOp::Start(d) => d.start_argv(),
            SyncOp::Stop(role) => vec!["--stop-daemon".to_string(), role.name().to_string()],
        }
    }
}

impl fmt::Display for SyncOp {
    /// The equivalent command line: `ipvsadm --start-daemon master --mcast-interface eth0
    /// --syncid 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ipvsadm")?;
        for arg in self.ipvsadm_argv() {
            write!(f, " {arg}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(role: SyncRole) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: "eth0".into(),
            sync_id: 7,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        }
    }

    #[test]
    fn a_kernel_report_with_defaults_filled_in_satisfies_a_configuration_that_left_them_out() {
        let wanted = daemon(SyncRole::Master);
        let read = SyncDaemon {
            max_len: Some(1472),
            group: Some("224.0.0.81".parse().unwrap()),
            port: Some(8848),
            ttl: Some(1),
            ..wanted.clone()
        };
        assert!(read.satisfies(&wanted));
        let other_port = SyncDaemon {
            port: Some(8849),
            ..wanted.clone()
        };
        assert!(read.satisfies(&wanted));
        assert!(!read.satisfies(&other_port));
        assert!(!read.satisfies(&daemon(SyncRole::Backup)));
        let other_id = SyncDaemon {
            sync_id: 8,
            ..wanted.clone()
        };
        assert!(!read.satisfies(&other_id));
    }

    #[test]
    fn display_is_the_ipvsadm_command() {
        let mut d = daemon(SyncRole::Backup);
        d.port = Some(8849);
        assert_eq!(
            SyncOp::Start(d).to_string(),
            "ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 7 --mcast-port 8849"
        );
        assert_eq!(
            SyncOp::Stop(SyncRole::Master).to_string(),
            "ipvsadm --stop-daemon master"
        );
    }
}
