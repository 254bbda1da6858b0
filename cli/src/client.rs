//! `lvs-hc status` and `lvs-hc reload`: clients of the running daemon's HTTP API.

use std::process::ExitCode;

use crate::cli::ApiArgs;

/// `lvs-hc reload`.
pub fn reload(api: &ApiArgs) -> anyhow::Result<ExitCode> {
    let _ = api;
    anyhow::bail!("not built yet")
}

/// `lvs-hc status`.
pub fn status(api: &ApiArgs, json: bool) -> anyhow::Result<ExitCode> {
    let _ = (api, json);
    anyhow::bail!("not built yet")
}
