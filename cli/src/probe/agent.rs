//! agent checks, in HAProxy's agent protocol: connect to the agent's port on the server, write
//! the check's `send` (if any), read one line, parse it ([`parse_agent_reply`]).
//!
//! An agent is advisory, as in HAProxy ("failure to connect to the agent is not considered an
//! error"): whatever keeps lvs-hc from hearing it (a refused or reset connection, silence, an
//! empty, overlong or meaningless reply) is [`ProbeOutcome::Inconclusive`], never a failure,
//! so an agent that cannot be heard changes nothing: the probe reads the agent as any probe
//! reads its server, and [`advisory`] turns its failures into no verdict, once, for every way
//! it can fail (the timeout included). Errors of the director itself stay
//! [`ProbeOutcome::DirectorFault`].

use lvs_hc_core::admin::parse_agent_reply;
use lvs_hc_core::config::AgentCheck;
use lvs_hc_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tcp::quote;
use super::{fail, io_outcome, Seen};

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
            return io_outcome(&e);
        }
    }
    let mut chunk = [0u8; LINE_MAX];
    let line = loop {
        let len = seen.borrow().len();
        let n = match stream.read(&mut chunk[..LINE_MAX - len]).await {
            Ok(n) => n,
            Err(e) => return io_outcome(&e),
        };
        // No borrow across an await: `seen` is the probe's reason if it times out.
        let mut reply = seen.borrow_mut();
        reply.extend_from_slice(&chunk[..n]);
        if let Some(end) = reply[len..].iter().position(|b| *b == b'\n') {
            break reply[..len + end].to_vec();
        }
        if n == 0 && reply.is_empty() {
            return fail("the connection closed without a reply");
        }
        if n == 0 {
            // A line without its ending, then the close: the line all the same.
            break reply.clone();
        }
        if reply.len() >= LINE_MAX {
            return fail(format!(
                "no line end within {LINE_MAX} bytes: got {}",
                quote(&reply)
            ));
        }
    };
    let line = String::from_utf8_lossy(&line);
    match parse_agent_reply(line.trim_end_matches('\r')) {
        Ok(report) => ProbeOutcome::Agent(report),
        Err(e) => fail(e.to_string()),
    }
}

/// An agent's result as the engine sees it: advisory, so what would fail another check (the
/// agent cannot be reached, stays silent, says nothing lvs-hc understands) is no verdict,
/// `agent: why`. Faults of the director stay faults of the director.
pub(super) fn advisory(outcome: ProbeOutcome) -> ProbeOutcome {
    match outcome {
        ProbeOutcome::Fail { reason } => ProbeOutcome::Inconclusive {
            reason: format!("agent: {reason}"),
        },
        other => other,
    }
}
