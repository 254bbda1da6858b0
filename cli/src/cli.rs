//! The command line, as clap definitions (also the source of the man page and completions).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Health checks for Linux Virtual Server: keeps the IPVS table equal to what the probes justify.
#[derive(Debug, Parser)]
#[command(name = "lvs-hc", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: probe every real server and keep the IPVS table as the probes justify.
    ///
    /// Adopts the table as it finds it (nothing is flushed). SIGHUP rereads the configuration
    /// (a bad one is reported and the running one kept); SIGTERM and SIGINT stop, leaving the
    /// table as it is unless --cleanup-on-exit is given.
    ///
    /// Exit status: 0 after SIGTERM or SIGINT; 78 (EX_CONFIG) when the configuration cannot be
    /// read or is invalid at start, which the systemd unit does not restart on; 1 for any other
    /// failure.
    Run(RunArgs),
    /// Ask the running daemon to reread its configuration; prints what changed or the error.
    Reload {
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Take a real server out of service by hand, or put it back: drain, disable, enable.
    ///
    /// The state is kept apart from health (a disabled server is still probed) and survives
    /// restarts and reloads (in `[daemon] state_dir`). Sent to the running daemon's control
    /// socket; prints, for each server, what now holds.
    ///
    /// Exit status: 0 when done; 1 when the daemon cannot be reached or refuses (an unknown
    /// service or server, an address in several services without --service or --all, a
    /// state file that cannot be written), and then nothing changed.
    Server {
        /// What to do.
        #[command(subcommand)]
        action: ServerAction,
    },
    /// Print the running daemon's view: the table like `ipvsadm -Ln`, with health, reason and
    /// time since the last change.
    Status {
        #[command(flatten)]
        api: ApiArgs,
        /// Print the daemon's JSON status as it is.
        #[arg(long)]
        json: bool,
    },
    /// Prepare a real server or the director (addresses, ARP and forwarding settings).
    ///
    /// Idempotent: prints each change it makes, nothing when there is nothing to do.
    Setup {
        /// Which machine.
        #[command(subcommand)]
        role: SetupRole,
    },
    /// Look for what keeps a configuration from working on this director, and say how to fix
    /// it.
    ///
    /// Checks IPVS is in the kernel, the VIPs are on this machine, the forwarding and
    /// source-validation settings each forwarding method and `via_vip` need, the MTU for TUN,
    /// who else answers ARP for a VIP, and each real server's checks on its own address and
    /// (with `via_vip`) through the VIP, adding the probe services this needs for the duration.
    /// Prints one line per finding: `ok`, `warn ...: fix`, `FAIL ...: fix`. Needs no running
    /// daemon; run as root.
    ///
    /// Exit status: 0 when nothing failed (warnings allowed); 1 when something did; 78
    /// (EX_CONFIG) when the configuration cannot be read or is invalid.
    Doctor {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Delete every route lvs-hc announces VIPs with (`[announce]`): all routes of its
    /// protocol in its table, whoever added them; routes of other protocols are left.
    ///
    /// For the systemd unit's `ExecStopPost=`: when the daemon crashes or is killed without
    /// withdrawing, the router must stop sending this director traffic. Does nothing (and says
    /// so) when the configuration has no `[announce]`.
    ///
    /// Exit status: 0 when the routes are gone (or there is no `[announce]`); 1 when they could
    /// not be read or deleted; 78 (EX_CONFIG) when the configuration cannot be read or is
    /// invalid.
    Withdraw {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration and print a summary; exits non-zero with the precise error.
    Check {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a configuration through the deterministic simulator and print what lvs-hc would do.
    ///
    /// Simulated real servers fail on a schedule drawn from the seed; the real probes and
    /// engine run in simulated time against an in-memory IPVS table. Prints the fault
    /// schedule, the timeline of events and operations, and per-server detection and recovery
    /// latency. The same seed gives the same output.
    Simulate {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// What goes wrong.
        #[arg(long, default_value = "kill", value_parser = scenario_names())]
        scenario: String,
        /// The seed: the same seed, the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Simulated time, e.g. 10m (default: long enough for several faults and recoveries); a
        /// duration with no room for a fault is refused (exit status 2).
        #[arg(long, value_name = "DURATION")]
        duration: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the live IPVS table.
    Table {
        /// How to read the kernel table.
        #[arg(long, value_enum, default_value = "netlink")]
        backend: BackendKind,
        /// Output format.
        #[arg(long, value_enum, default_value = "list")]
        format: TableFormat,
    },
    /// Print the ipvsadm commands that would make a table match the configuration.
    ///
    /// Every real server is taken as healthy except those given with --down. The output is one
    /// complete `ipvsadm ...` command per line, so `lvs-hc plan ... | sh` applies it.
    Plan {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The current table: a file in `ipvsadm-save -n` format, `-` for standard input, or
        /// `kernel` for the live table. Without it the table is taken as empty.
        #[arg(long, value_name = "FILE|-|kernel")]
        actual: Option<PathBuf>,
        /// How to read the live table with `--actual kernel`.
        #[arg(long, value_enum, default_value = "netlink")]
        backend: BackendKind,
        /// Take this real server as failed (ADDR:PORT, or ADDR for every port). Repeatable.
        #[arg(long, value_name = "ADDR:PORT")]
        down: Vec<String>,
    },
    /// Convert a keepalived or ldirectord configuration to lvs-hc's TOML.
    ///
    /// Prints the TOML (or writes it to --output), with a comment wherever lvs-hc behaves
    /// differently. Every input line that could not be carried over, or changed meaning, is
    /// listed on standard error as FILE:LINE: why, followed by a count. Exit status: 0 when the
    /// input was read (with or without such lines); 1 when it cannot be read, has a syntax error
    /// (e.g. unbalanced braces), or names no service that could be carried over.
    Import {
        /// Which program's configuration.
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (roff) into a directory.
    #[command(hide = true)]
    Manpages {
        /// The directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `lvs-hc server` commands.
#[derive(Debug, Subcommand)]
pub enum ServerAction {
    /// Weight 0 now (no new connections), out of the table once its connections reach 0 or
    /// the drain timeout passes; it stays out until enabled.
    Drain {
        #[command(flatten)]
        target: ServerTarget,
        /// The longest the drain may take, e.g. 10m (default: the service's drain_timeout
        /// when on_failure = "drain", else 5m).
        #[arg(long, value_name = "DURATION", value_parser = drain_timeout)]
        timeout: Option<std::time::Duration>,
    },
    /// Out of the table now; still probed, so `status` shows its health.
    Disable {
        #[command(flatten)]
        target: ServerTarget,
    },
    /// Back to health-checked service (with slow start when the service has it). A
    /// maintenance file or the server's agent may still hold it out: the output says so.
    Enable {
        #[command(flatten)]
        target: ServerTarget,
    },
}

/// Which server `lvs-hc server` acts on, why, and where the daemon is.
#[derive(Debug, clap::Args)]
pub struct ServerTarget {
    /// The server: ADDR or ADDR:PORT ([ADDR]:PORT for IPv6). Without a port, every port of
    /// the address in the service.
    #[arg(value_name = "ADDR[:PORT]", value_parser = server_address)]
    pub server: (std::net::IpAddr, Option<u16>),
    /// The service, when the server is in several: its name, or VIP:PORT (or `fwmark:N`).
    #[arg(long, value_name = "NAME|VIP:PORT")]
    pub service: Option<String>,
    /// Every service that has the server (instead of an error when there are several).
    #[arg(long)]
    pub all: bool,
    /// Why, for `status`, the log and whoever comes next (one line, at most 200 characters).
    #[arg(long, value_name = "TEXT", value_parser = reason)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub control: ControlArgs,
}

fn server_address(text: &str) -> Result<(std::net::IpAddr, Option<u16>), String> {
    lvs_hc_core::admin::ServerSelector::parse_server(text)
}

fn drain_timeout(text: &str) -> Result<std::time::Duration, String> {
    crate::daemon::admin::parse_drain_timeout(text)
}

fn reason(text: &str) -> Result<String, String> {
    crate::daemon::admin::check_reason(text)
}

/// The configurations `lvs-hc import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// keepalived.conf: its virtual_server sections and their checkers (includes followed;
    /// VRRP sections are reported as kept in keepalived).
    Keepalived(ImportArgs),
    /// ldirectord.cf: its virtual sections, global settings and checks.
    Ldirectord(ImportArgs),
}

/// The arguments of `lvs-hc import keepalived|ldirectord`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The configuration file to read.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the TOML here instead of standard output.
    #[arg(long, short = 'o', value_name = "OUT")]
    pub output: Option<PathBuf>,
}

/// `lvs-hc run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file (TOML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// How to read and change the kernel table.
    #[arg(long, value_enum, default_value = "netlink")]
    pub backend: RunBackend,
    /// Probe and log the operations that would be applied; apply none.
    #[arg(long)]
    pub dry_run: bool,
    /// On SIGTERM or SIGINT, delete the services lvs-hc manages (default: leave the table).
    #[arg(long)]
    pub cleanup_on_exit: bool,
    /// The lock file (default: `[daemon] lock_file`, else /run/lvs-hc/<config stem>.lock).
    #[arg(long, value_name = "FILE")]
    pub lock_file: Option<PathBuf>,
    /// Where the read-only HTTP API listens: ADDR:PORT, unix:/PATH or off (default: `[daemon]
    /// api`).
    #[arg(long, value_name = "ADDR")]
    pub api: Option<String>,
    /// The control socket (reload, commands): a path or off (default: `[daemon] control`, else
    /// the lock file's path ending in .sock).
    #[arg(long, value_name = "PATH")]
    pub control: Option<String>,
    /// Log format: text on a terminal and under systemd's journal, JSON lines otherwise.
    #[arg(long, value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Log level filter (error, warn, info, debug, trace, or a tracing directive). RUST_LOG
    /// overrides it.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    pub log_level: String,
}

/// Where `lvs-hc status` finds the daemon.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// The daemon's read-only API: ADDR:PORT or unix:/PATH.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["config", "control"])]
    pub api: Option<String>,
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub control: Option<PathBuf>,
    /// Find the daemon through this configuration: its control socket when this user may use
    /// it, else its API (default: /etc/lvs-hc/lvs-hc.toml if it exists, else 127.0.0.1:9101).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where `lvs-hc reload` finds the daemon's control socket.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The daemon's control socket.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub control: Option<PathBuf>,
    /// Find the control socket through this configuration (`[daemon] control`, else beside its
    /// lock file; default: /etc/lvs-hc/lvs-hc.toml, else /run/lvs-hc/lvs-hc.sock).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The kernel adapters `lvs-hc run` can drive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RunBackend {
    /// The kernel's IPVS generic netlink family (no external program).
    Netlink,
    /// The `ipvsadm` program.
    Ipvsadm,
    /// A table in lvs-hc's own memory: try lvs-hc without IPVS or root.
    Memory,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text on a terminal or under journald, JSON otherwise.
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `lvs-hc setup` targets.
#[derive(Debug, Subcommand)]
pub enum SetupRole {
    /// A real server: the VIP on lo (DR) or on a tunnel device (TUN), ARP settings.
    Realserver {
        /// A virtual IP this server answers for. Repeatable (not needed with --undo).
        #[arg(long, value_name = "ADDR", required_unless_present = "undo")]
        vip: Vec<std::net::IpAddr>,
        /// Forwarding method the director uses towards this server.
        #[arg(long, value_enum, default_value = "dr")]
        mode: SetupMode,
        /// Report what differs and exit 1 if anything does (2 on errors); change nothing.
        #[arg(long, conflicts_with = "undo")]
        check: bool,
        /// Revert what `setup realserver` changed (as the state file records it).
        #[arg(long)]
        undo: bool,
        /// Where earlier settings are remembered so --undo can restore them.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/lvs-hc")]
        state_dir: PathBuf,
    },
    /// The director: the configured VIPs on `[director] interface` (announced by gratuitous
    /// ARP as they are added); IP forwarding for NAT; with `via_vip` checks, `accept_local=1`
    /// and `rp_filter=0` on the interfaces toward those servers (and `all.rp_filter=0`).
    ///
    /// One of a pair of directors (`[sync]`) gets no VIPs, which VRRP holds on the active
    /// director, but the IPVS settings connection sync and failover need (`net.ipv4.vs.*`,
    /// each printed with its reason; ip_vs must be loaded).
    ///
    /// With `sh` or `mh` services (many directors behind ECMP), `net.ipv4.vs.sloppy_tcp` and
    /// `sloppy_sctp` = 1, so that a flow moved to this director mid-stream is scheduled.
    Director {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// Put the VIPs on this interface (overrides `[director] interface`; refused with
        /// `[sync]`).
        #[arg(long, value_name = "IFACE")]
        interface: Option<String>,
        /// Report what differs and exit 1 if anything does (2 on errors); change nothing.
        #[arg(long, conflicts_with = "undo")]
        check: bool,
        /// Revert what `setup director` changed (as the state file records it; the
        /// configuration is not read).
        #[arg(long)]
        undo: bool,
        /// Where earlier settings are remembered so --undo can restore them.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/lvs-hc")]
        state_dir: PathBuf,
    },
}

/// How the director forwards to a real server (for `setup realserver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SetupMode {
    /// Direct routing: the VIP on lo, ARP for it suppressed.
    Dr,
    /// IP-in-IP tunnelling: the VIP on the tunnel device, reverse-path filtering relaxed.
    Tun,
}

/// Which kernel adapter to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// The kernel's IPVS generic netlink family (no external program).
    Netlink,
    /// The `ipvsadm` program.
    Ipvsadm,
}

/// How `lvs-hc table` prints the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// `ipvsadm-save -n` format, byte for byte.
    Save,
    /// Like `ipvsadm -Ln`.
    List,
    /// JSON with every setting and counter.
    Json,
}

fn scenario_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::simulate::Scenario::ALL.map(|s| s.name()))
}
