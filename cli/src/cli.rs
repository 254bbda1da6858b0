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
    /// Validate a configuration and print a summary; exits non-zero with the precise error.
    Check {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a configuration through the deterministic simulator and print what lvs-hc would do.
    ///
    /// Simulated real servers fail on a schedule drawn from the seed; the real probes and
    /// engine run in simulated time against an in-memory IPVS table. Prints the plan, the
    /// timeline of events and operations, and per-server detection and recovery latency.
    /// The same seed gives the same output.
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
        /// Simulated time, e.g. 10m (default: long enough for several faults and recoveries).
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
