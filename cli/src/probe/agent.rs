//! agent checks, in HAProxy's agent protocol: connect to the agent's port on the server, write
//! the check's `send` (if any), read one line, parse it ([`parse_agent_reply`]).
//!
//! An agent is advisory, as in HAProxy ("failure to connect to the agent is not considered an
//! error"): whatever keeps lvs-hc from hearing it (a refused or reset connection, silence, an
//! empty, overlong or meaningless reply) is [`ProbeOutcome::Inconclusive`], never a failure,
//! so an agent that cannot be heard changes nothing. Errors of the director itself stay
//! [`ProbeOutcome::DirectorFault`] ([`director_fault`]).

use lvs_hc_core::admin::parse_agent_reply;
use lvs_hc_core::config::AgentCheck;
use lvs_hc_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tcp::quote;
use super::{director_fault, io_reason, Seen};

/// The longest reply line read, its line ending included: an agent's line is a few words.
pub const LINE_MAX: usize = 1024;

/// Writes the check's `send` to the agent on `stream` and reads its line. What arrived so far
/// is kept in `seen`, for the reason should the probe time out.
pub(super) async fn agent<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    check: &AgentCheck,
    seen: &Seen,
) -> ProbeOutcome {
    if !check.send.is_empty() {
        if let Err(e) = stream.write_all(&check.send).await {
            return unheard(&e);
        }
    }
    let mut chunk = [0u8; LINE_MAX];
    let line = loop {
        let len = seen.borrow().len();
        let n = match stream.read(&mut chunk[..LINE_MAX - len]).await {
            Ok(n) => n,
            Err(e) => return unheard(&e),
        };
        // No borrow across an await: `seen` is the probe's reason if it times out.
        let mut reply = seen.borrow_mut();
        reply.extend_from_slice(&chunk[..n]);
        if let Some(end) = reply[len..].iter().position(|b| *b == b'\n') {
            break reply[..len + end].to_vec();
        }
        if n == 0 && reply.is_empty() {
            return inconclusive("the connection closed without a reply".into());
        }
        if n == 0 {
            // A line without its ending, then the close: the line all the same.
            break reply.clone();
        }
        if reply.len() >= LINE_MAX {
            return inconclusive(format!(
                "no line end within {LINE_MAX} bytes: got {}",
                quote(&reply)
            ));
        }
    };
    let line = String::from_utf8_lossy(&line);
    match parse_agent_reply(line.trim_end_matches('\r')) {
        Ok(report) => ProbeOutcome::Agent(report),
        Err(e) => inconclusive(e.to_string()),
    }
}

/// What an error connecting to, writing to or reading from the agent means: a fault of the
/// director, or an agent lvs-hc cannot hear (no verdict).
pub(super) fn unheard(e: &std::io::Error) -> ProbeOutcome {
    match director_fault(e) {
        Some(reason) => ProbeOutcome::DirectorFault { reason },
        None => inconclusive(io_reason(e)),
    }
}

/// No verdict: `agent: why`.
pub(super) fn inconclusive(why: String) -> ProbeOutcome {
    ProbeOutcome::Inconclusive {
        reason: format!("agent: {why}"),
    }
}
