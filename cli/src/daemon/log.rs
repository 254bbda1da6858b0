//! Logs: the subscriber set-up (the observer in `observer.rs` writes the lines).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::DaemonError;
use crate::cli::LogFormat;

/// Sets up logging to standard error. `auto`: coloured text on a terminal; plain text without
/// timestamps under systemd's journal (which stamps lines itself); JSON lines otherwise.
pub fn init(format: LogFormat, level: &str) -> Result<(), DaemonError> {
    let filter = |setting: String, directives: &str| {
        EnvFilter::try_new(directives).map_err(|error| DaemonError::LogFilter { setting, error })
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => filter(format!("RUST_LOG={v}"), &v)?,
        _ => filter(format!("--log-level {level}"), level)?,
    };
    let terminal = std::io::stderr().is_terminal();
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let format = match format {
        LogFormat::Auto if terminal || journal => LogFormat::Text,
        LogFormat::Auto => LogFormat::Json,
        f => f,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        // Text lines carry the message only: every message says it all, and the fields that
        // repeat it are for JSON consumers.
        _ if journal && !terminal => builder
            .fmt_fields(message_only())
            .with_ansi(false)
            .without_time()
            .try_init(),
        _ => builder
            .fmt_fields(message_only())
            .with_ansi(terminal)
            .try_init(),
    };
    result.map_err(DaemonError::Logging)
}

fn message_only() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        if field.name() == "message" {
            write!(writer, "{value:?}")
        } else {
            Ok(())
        }
    })
}
