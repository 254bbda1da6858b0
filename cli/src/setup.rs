//! `lvs-hc setup realserver|director`: addresses, ARP and forwarding settings.

use std::process::ExitCode;

use crate::cli::SetupRole;

/// Runs `lvs-hc setup`.
pub fn main(role: SetupRole) -> anyhow::Result<ExitCode> {
    let _ = role;
    anyhow::bail!("lvs-hc setup is not built yet")
}
