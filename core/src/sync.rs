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
use std::time::Duration;

use crate::time::Instant;

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
    ///
    /// The longest message is a request, not a setting to compare: the kernel caps it to what
    /// the interface's MTU allows (1472 on a 1500-byte link) and raises a backup's to 1024, so
    /// the value read back may differ from the one asked for, and replacing the daemon for it
    /// would never end.
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

/// Why lvs-hc starts or stops a sync daemon: what the event and the log say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncWhy {
    /// The configuration asks for it and it was not running.
    Configured,
    /// It ran (lvs-hc had it running) and a table read shows it gone: stopped outside lvs-hc.
    Missing,
    /// It runs with other settings than the configuration's: stopped, to be started again
    /// with the configured ones.
    OtherSettings {
        /// The daemon as it ran.
        found: SyncDaemon,
    },
    /// A reload took the role away from `[sync]` (or `[sync]` itself): lvs-hc stops the
    /// daemon it ran.
    NoLongerConfigured,
    /// lvs-hc is leaving with `--cleanup-on-exit` and stops the daemons it ran.
    Withdrawing,
}

impl fmt::Display for SyncWhy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncWhy::Configured => f.write_str("[sync] asks for it"),
            SyncWhy::Missing => f.write_str("it was stopped outside lvs-hc"),
            SyncWhy::OtherSettings { found } => write!(
                f,
                "it ran with other settings than [sync]'s ({}); it is started again with \
                 [sync]'s",
                found.settings()
            ),
            SyncWhy::NoLongerConfigured => f.write_str("[sync] no longer asks for it"),
            SyncWhy::Withdrawing => f.write_str("lvs-hc is leaving (--cleanup-on-exit)"),
        }
    }
}

/// What lvs-hc knows of one configured sync daemon, for `status` and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncStatus {
    /// The daemon as configured.
    pub wanted: SyncDaemon,
    /// The daemon of that role as last read from the kernel (or as lvs-hc last started it);
    /// `None` when none runs, or before the first read.
    pub running: Option<SyncDaemon>,
    /// Whether `running` satisfies `wanted`.
    pub ok: bool,
    /// The last failure to start or stop it, while it lasts: the command, the error, when it
    /// is tried again.
    pub error: Option<SyncFailure>,
}

/// A failed start or stop of a sync daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncFailure {
    /// The operation that failed.
    pub op: SyncOp,
    /// The backend's error.
    pub error: String,
    /// Consecutive failures so far.
    pub attempts: u32,
    /// When it is tried again.
    pub retry_at: Instant,
}

/// Keeps the kernel's sync daemons as the configuration asks, level-triggered: from each table
/// read it works out the next start or stop, one at a time, and retries a failure with
/// backoff. Pure: the engine feeds it reads and results and asks it for the next operation.
///
/// The roles it *owns* are those it started or found running as configured. It stops a daemon
/// only to replace one with other settings, or when a reload (or a withdrawal) takes an owned
/// role away; a daemon of a role `[sync]` does not name, and that lvs-hc never ran, is left
/// alone.
#[derive(Clone, Debug, Default)]
pub struct SyncKeeper {
    wanted: Vec<SyncDaemon>,
    seen: Option<Vec<SyncDaemon>>,
    owned: Vec<SyncRole>,
    in_flight: Option<(SyncOp, SyncWhy)>,
    failure: Option<SyncFailure>,
    withdrawing: bool,
}

impl SyncKeeper {
    /// A keeper for the daemons `wanted` (empty: none).
    pub fn new(wanted: Vec<SyncDaemon>) -> SyncKeeper {
        SyncKeeper {
            wanted,
            ..SyncKeeper::default()
        }
    }

    /// The daemons asked for now.
    pub fn wanted(&self) -> &[SyncDaemon] {
        &self.wanted
    }

    /// A new configuration: the daemons asked for from now on. A failure's backoff is
    /// cleared, so that a corrected configuration is tried at once.
    pub fn configure(&mut self, wanted: Vec<SyncDaemon>) {
        if wanted != self.wanted {
            self.failure = None;
        }
        self.wanted = wanted;
    }

    /// lvs-hc is leaving and takes its daemons with it: nothing is wanted from now on.
    pub fn withdraw(&mut self) {
        self.wanted.clear();
        self.withdrawing = true;
        self.failure = None;
    }

    /// The daemons running as a table read shows them.
    pub fn observe(&mut self, running: &[SyncDaemon]) {
        self.seen = Some(running.to_vec());
    }

    /// The daemons running as last seen (a read, and lvs-hc's own changes since).
    pub fn seen(&self) -> Option<&[SyncDaemon]> {
        self.seen.as_deref()
    }

    /// Whether nothing is left to do: no operation in flight, every wanted daemon running as
    /// asked, and no daemon lvs-hc owns running unasked. False before the first read.
    pub fn settled(&self) -> bool {
        self.in_flight.is_none() && self.seen.is_some() && self.plan().is_none()
    }

    /// When a failed operation is tried again, while one is waiting.
    pub fn retry_at(&self) -> Option<Instant> {
        self.failure.as_ref().map(|f| f.retry_at)
    }

    /// The next operation to carry out at `now`, and why, if any: none while one is in
    /// flight, before the first read, or while a failure waits for its retry.
    pub fn next(&mut self, now: Instant) -> Option<(SyncOp, SyncWhy)> {
        if self.in_flight.is_some() || self.retry_at().is_some_and(|at| now < at) {
            return None;
        }
        let (op, why) = self.plan()?;
        self.in_flight = Some((op.clone(), why.clone()));
        Some((op, why))
    }

    fn plan(&self) -> Option<(SyncOp, SyncWhy)> {
        let seen = self.seen.as_ref()?;
        let running = |role: SyncRole| seen.iter().find(|d| d.role == role);
        for want in &self.wanted {
            match running(want.role) {
                None => {
                    let why = if self.owned.contains(&want.role) {
                        SyncWhy::Missing
                    } else {
                        SyncWhy::Configured
                    };
                    return Some((SyncOp::Start(want.clone()), why));
                }
                Some(found) if !found.satisfies(want) => {
                    let found = found.clone();
                    return Some((SyncOp::Stop(want.role), SyncWhy::OtherSettings { found }));
                }
                Some(_) => {}
            }
        }
        for &role in &self.owned {
            if !self.wanted.iter().any(|w| w.role == role) && running(role).is_some() {
                let why = if self.withdrawing {
                    SyncWhy::Withdrawing
                } else {
                    SyncWhy::NoLongerConfigured
                };
                return Some((SyncOp::Stop(role), why));
            }
        }
        None
    }

    /// The result of the operation [`SyncKeeper::next`] gave: on success, why it was done; on
    /// a failure, how long until it is tried again (`backoff` of the consecutive failures so
    /// far).
    pub fn applied(
        &mut self,
        now: Instant,
        op: &SyncOp,
        result: Result<(), String>,
        backoff: impl Fn(u32) -> Duration,
    ) -> Result<SyncWhy, Duration> {
        let why = match self.in_flight.take() {
            Some((o, why)) if o == *op => why,
            other => {
                self.in_flight = other;
                SyncWhy::Configured
            }
        };
        match result {
            Ok(()) => {
                self.failure = None;
                let seen = self.seen.get_or_insert_with(Vec::new);
                seen.retain(|d| d.role != op.role());
                match op {
                    SyncOp::Start(d) => {
                        seen.push(d.clone());
                        seen.sort_by_key(|d| d.role);
                        if !self.owned.contains(&d.role) {
                            self.owned.push(d.role);
                            self.owned.sort();
                        }
                    }
                    SyncOp::Stop(role) => {
                        if !self.wanted.iter().any(|w| w.role == *role) {
                            self.owned.retain(|r| r != role);
                        }
                    }
                }
                Ok(why)
            }
            Err(error) => {
                let attempts = self.failure.as_ref().map_or(0, |f| f.attempts) + 1;
                let retry_in = backoff(attempts);
                self.failure = Some(SyncFailure {
                    op: op.clone(),
                    error,
                    attempts,
                    retry_at: now + retry_in,
                });
                Err(retry_in)
            }
        }
    }

    /// Marks the wanted daemons that a read shows running as asked as owned (called after
    /// each read, once [`SyncKeeper::observe`] has run).
    pub fn adopt(&mut self) {
        let Some(seen) = &self.seen else { return };
        for want in &self.wanted {
            if seen.iter().any(|d| d.satisfies(want)) && !self.owned.contains(&want.role) {
                self.owned.push(want.role);
                self.owned.sort();
            }
        }
    }

    /// Each configured daemon's state, master first.
    pub fn status(&self) -> Vec<SyncStatus> {
        self.wanted
            .iter()
            .map(|want| {
                let running = self
                    .seen
                    .as_ref()
                    .and_then(|s| s.iter().find(|d| d.role == want.role).cloned());
                let ok = running.as_ref().is_some_and(|r| r.satisfies(want));
                let error = self.failure.clone().filter(|f| f.op.role() == want.role);
                SyncStatus {
                    wanted: want.clone(),
                    running,
                    ok,
                    error,
                }
            })
            .collect()
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
        let other_len = SyncDaemon {
            max_len: Some(9000),
            ..wanted.clone()
        };
        assert!(
            read.satisfies(&other_len),
            "the kernel caps the length to the MTU: not a reason to replace the daemon"
        );
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
        let other_interface = SyncDaemon {
            interface: "eth1".into(),
            ..wanted.clone()
        };
        assert!(!read.satisfies(&other_interface));
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
