//! `lvs-hc run`: the daemon around the driver.

use std::process::ExitCode;

use crate::cli::RunArgs;

/// Runs the daemon until SIGTERM or SIGINT.
pub fn main(args: RunArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not built yet")
}
