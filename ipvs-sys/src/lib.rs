//! lvs-hc's kernel adapters: one [`IpvsBackend`] trait for the IPVS table, with three
//! implementations.
//!
//! - [`netlink::NetlinkBackend`] talks to the kernel's IPVS generic netlink family directly,
//!   with an in-house codec ([`netlink::codec`]) built on the rust-netlink packet crates.
//! - [`ipvsadm::IpvsadmBackend`] runs the `ipvsadm` program: `ipvsadm -Sn`, `-Ln` and
//!   `-L --daemon` to read, the argv of each [`Op`] or [`SyncOp`] (no shell) to change, one
//!   `ipvsadm -R` for a batch.
//! - [`memory::MemoryBackend`] keeps a table in memory with the kernel's strict semantics
//!   (duplicate adds and missing entries fail), for tests and simulations.

pub mod ipvsadm;
pub mod memory;
pub mod netlink;
pub mod route;

use std::time::Duration;

use lvs_hc_core::{ApplyError, Counters, Op, SyncOp, SyncRefusal, SyncRole, Table};

/// How long a backend waits for the kernel to answer (each receive on the netlink socket), or
/// for one `ipvsadm` run to finish, before giving up with [`IpvsError::Timeout`] or
/// [`IpvsError::IpvsadmTimeout`]. The kernel answers in milliseconds even for large tables; a
/// wait this long means it will not answer, and the daemon's loop must not stall on it.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The IPVS table as read at one moment, with its counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Services and destinations with their settings.
    pub table: Table,
    /// Connection counters and traffic statistics.
    pub counters: Counters,
    /// Services in the kernel that this backend could not represent (a forwarding method,
    /// family or protocol from a newer kernel, a missing or malformed attribute, a line
    /// ipvsadm prints that cannot be read). Each is left out of [`Snapshot::table`] and
    /// [`Snapshot::counters`] whole, even when only one of its destinations was unreadable: a
    /// partial service would make a caller re-add what it cannot see. A caller must leave
    /// these services alone: the table does not show them, yet they exist.
    pub skipped: Vec<SkippedService>,
}

pub use lvs_hc_core::SkippedService;

/// What the kernel says about IPVS itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpvsInfo {
    /// IPVS version as (major, minor, patch), e.g. (1, 2, 1).
    pub version: (u8, u8, u8),
    /// Size of the connection hash table.
    pub conn_tab_size: u32,
}

impl std::fmt::Display for IpvsInfo {
    /// `IP Virtual Server version 1.2.1 (size=4096)`, as `ipvsadm -Ln` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b, c) = self.version;
        write!(
            f,
            "IP Virtual Server version {a}.{b}.{c} (size={})",
            self.conn_tab_size
        )
    }
}

/// Why a backend could not read or change the table. Each variant says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpvsError {
    /// The kernel has no IPVS: the module is not loaded (or not built).
    #[error("IPVS is not available: load the ip_vs module (modprobe ip_vs)")]
    NotAvailable,
    /// The process lacks the capability to change (or read) IPVS.
    #[error("permission denied: lvs-hc needs CAP_NET_ADMIN (run as root or grant the capability)")]
    PermissionDenied,
    /// Adding a service that exists.
    #[error("service exists")]
    ServiceExists,
    /// The service named does not exist.
    #[error("no such service")]
    NoSuchService,
    /// Adding a destination that exists.
    #[error("destination exists")]
    DestExists,
    /// The destination named does not exist.
    #[error("no such destination")]
    NoSuchDest,
    /// The kernel could not load the scheduler (no `ip_vs_<name>` module).
    #[error("scheduler `{0}` is not available: load the ip_vs_{0} module")]
    NoSuchScheduler(String),
    /// A weight or threshold the kernel refuses (e.g. lower threshold above upper).
    #[error("value out of range (weight, or lower threshold above upper)")]
    OutOfRange,
    /// The kernel refused the request as malformed.
    #[error("invalid argument ({0})")]
    Invalid(String),
    /// Another kernel error.
    #[error("kernel error {errno} ({message})")]
    Kernel {
        /// The errno.
        errno: i32,
        /// Its text.
        message: String,
    },
    /// The kernel did not answer within the timeout ([`TIMEOUT`] unless set otherwise). It may
    /// still have carried out the request: re-read the table, then retry.
    #[error("the kernel did not answer within {} ({what})", human(after))]
    Timeout {
        /// How long it was waited for.
        after: Duration,
        /// What was being read, e.g. `reading the list of services`.
        what: String,
    },
    /// A kernel reply could not be decoded.
    #[error("cannot decode the kernel's reply: {0}")]
    Decode(String),
    /// Talking to the kernel (or running ipvsadm) failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// ipvsadm failed.
    #[error("`{command}` failed: {stderr}")]
    Ipvsadm {
        /// The command line run.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// ipvsadm did not finish within the timeout ([`TIMEOUT`] unless set otherwise) and was
    /// killed. It may have changed part of the table: re-read it, then retry.
    #[error("`{command}` did not finish within {}; it was killed", human(after))]
    IpvsadmTimeout {
        /// The command line run.
        command: String,
        /// How long it was given.
        after: Duration,
    },
    /// ipvsadm printed something this backend cannot read.
    #[error("cannot read ipvsadm output: {0}")]
    IpvsadmOutput(String),
    /// Starting a sync daemon of a role that already runs (`EEXIST`).
    #[error("a {0} sync daemon already runs (ipvsadm -L --daemon shows it; stop it with ipvsadm --stop-daemon {0})")]
    SyncDaemonRunning(SyncRole),
    /// Stopping a sync daemon that does not run (`ESRCH`).
    #[error("no {0} sync daemon runs")]
    NoSuchSyncDaemon(SyncRole),
    /// A sync daemon's interface does not exist (`ENODEV`).
    #[error("no such interface `{0}` for the sync daemon")]
    NoSuchInterface(String),
}

/// `5s`, `1.5s`, `50ms`: a timeout as an operator would write it.
fn human(d: &Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if *d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

impl From<ApplyError> for IpvsError {
    /// The kernel's refusals as a strict in-memory table reports them.
    fn from(e: ApplyError) -> IpvsError {
        match e {
            ApplyError::ServiceExists => IpvsError::ServiceExists,
            ApplyError::NoSuchService => IpvsError::NoSuchService,
            ApplyError::DestExists => IpvsError::DestExists,
            ApplyError::NoSuchDest => IpvsError::NoSuchDest,
            other => IpvsError::Invalid(other.to_string()),
        }
    }
}

impl From<SyncRefusal> for IpvsError {
    /// The kernel's refusals of sync daemon operations as a table in memory reports them.
    fn from(e: SyncRefusal) -> IpvsError {
        match e {
            SyncRefusal::Running(role) => IpvsError::SyncDaemonRunning(role),
            SyncRefusal::NotRunning(role) => IpvsError::NoSuchSyncDaemon(role),
        }
    }
}

impl IpvsError {
    /// The error as the engine sees a failed operation.
    pub fn to_apply_error(&self) -> ApplyError {
        match self {
            IpvsError::ServiceExists => ApplyError::ServiceExists,
            IpvsError::NoSuchService => ApplyError::NoSuchService,
            IpvsError::DestExists => ApplyError::DestExists,
            IpvsError::NoSuchDest => ApplyError::NoSuchDest,
            other => ApplyError::Other(other.to_string()),
        }
    }

    /// Maps a kernel errno for `op` to the typed error the kernel means by it.
    pub fn from_errno(errno: i32, op: Option<&Op>) -> IpvsError {
        let is_dest = matches!(
            op,
            Some(Op::AddDest { .. } | Op::EditDest { .. } | Op::DelDest { .. })
        );
        match errno {
            libc::EPERM | libc::EACCES => IpvsError::PermissionDenied,
            libc::EEXIST if is_dest => IpvsError::DestExists,
            libc::EEXIST => IpvsError::ServiceExists,
            libc::ESRCH => IpvsError::NoSuchService,
            libc::ENOENT if is_dest => IpvsError::NoSuchDest,
            libc::ENOENT => match op {
                Some(Op::AddService { params, .. } | Op::EditService { params, .. }) => {
                    IpvsError::NoSuchScheduler(params.scheduler.clone())
                }
                _ => IpvsError::NoSuchService,
            },
            libc::ERANGE => IpvsError::OutOfRange,
            libc::EINVAL => {
                IpvsError::Invalid(op.map_or_else(|| "request".to_string(), |o| o.to_string()))
            }
            _ => IpvsError::Kernel {
                errno,
                message: std::io::Error::from_raw_os_error(errno).to_string(),
            },
        }
    }

    /// Maps a kernel errno for a sync daemon operation to the typed error the kernel means by
    /// it: `start_sync_thread` fails with `ENODEV` for an unknown interface (looked up before
    /// the role) and `EEXIST` for a role already running; `stop_sync_thread` with `ESRCH` for a
    /// role not running; the daemon policy and `ip_vs_genl_new_daemon` with `EINVAL` for an
    /// interface name over 15 characters, a group that is not multicast, or while a service has
    /// destinations of the other address family.
    pub fn from_sync_errno(errno: i32, op: &SyncOp) -> IpvsError {
        match (errno, op) {
            (libc::EPERM | libc::EACCES, _) => IpvsError::PermissionDenied,
            (libc::EEXIST, SyncOp::Start(d)) => IpvsError::SyncDaemonRunning(d.role),
            (libc::ENODEV, SyncOp::Start(d)) => IpvsError::NoSuchInterface(d.interface.clone()),
            (libc::ESRCH, SyncOp::Stop(role)) => IpvsError::NoSuchSyncDaemon(*role),
            (libc::EINVAL, _) => IpvsError::Invalid(format!(
                "{op}: the kernel refuses an interface name over 15 characters, a group that is \
                 not multicast, and sync daemons while a service has destinations of the other \
                 address family"
            )),
            _ => IpvsError::Kernel {
                errno,
                message: std::io::Error::from_raw_os_error(errno).to_string(),
            },
        }
    }
}

/// The IPVS table, however it is reached.
pub trait IpvsBackend {
    /// Reads every service and destination with their settings and counters, and the sync
    /// daemons running ([`Table::sync`], master first).
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError>;

    /// Applies one operation.
    fn apply(&mut self, op: &Op) -> Result<(), IpvsError>;

    /// Applies operations in order; one result per operation. A failed operation does not stop
    /// the ones after it (each is independent to the kernel; the engine retries failures).
    fn apply_batch(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        ops.iter().map(|op| self.apply(op)).collect()
    }

    /// IPVS version and connection table size.
    fn info(&mut self) -> Result<IpvsInfo, IpvsError>;

    /// Deletes every service (`ipvsadm -C`). The sync daemons are left running.
    fn flush(&mut self) -> Result<(), IpvsError>;

    /// Starts or stops a connection sync daemon. [`IpvsBackend::snapshot`] reports the
    /// daemons running in [`Table::sync`].
    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError>;
}

impl<B: IpvsBackend + ?Sized> IpvsBackend for Box<B> {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        (**self).snapshot()
    }
    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        (**self).apply(op)
    }
    fn apply_batch(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        (**self).apply_batch(ops)
    }
    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        (**self).info()
    }
    fn flush(&mut self) -> Result<(), IpvsError> {
        (**self).flush()
    }
    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        (**self).apply_sync(op)
    }
}

impl<B: IpvsBackend + ?Sized> IpvsBackend for &mut B {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        (**self).snapshot()
    }
    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        (**self).apply(op)
    }
    fn apply_batch(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        (**self).apply_batch(ops)
    }
    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        (**self).info()
    }
    fn flush(&mut self) -> Result<(), IpvsError> {
        (**self).flush()
    }
    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        (**self).apply_sync(op)
    }
}
