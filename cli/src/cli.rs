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
    /// Print the ipvsadm commands that would make a table match the configuration.
    ///
    /// Every real server is taken as healthy except those given with --down. The output is one
    /// complete `ipvsadm ...` command per line, so `lvs-hc plan ... | sh` applies it.
    Plan {
        /// The configuration file (TOML).
        #[arg(long, short = 'c', value_name = "FILE")]
        config: PathBuf,
        /// The current table in `ipvsadm-save -n` format: a file, or `-` for standard input.
        /// Without it the table is taken as empty.
        #[arg(long, value_name = "FILE|-")]
        actual: Option<PathBuf>,
        /// Take this real server as failed (ADDR:PORT, or ADDR for every port). Repeatable.
        #[arg(long, value_name = "ADDR:PORT")]
        down: Vec<String>,
    },
}
