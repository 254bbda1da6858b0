//! udp checks: one datagram sent, and the reply judged; silence passes only when the check
//! says so, and an ICMP port unreachable never does.

use std::io;

use lvs_hc_core::config::UdpCheck;
use lvs_hc_core::{ProbeOutcome, ProbeRequest};

use super::tcp::{lacks, quote};
use super::{director_fault, fail, io_outcome, io_reason, Connect, Datagram};

/// Sends the check's datagram and waits for the target's reply, until `deadline` when silence
/// passes (else until [`super::Prober::probe`] times it out).
pub(super) async fn udp<C: Connect>(
    connect: &C,
    req: &ProbeRequest,
    u: &UdpCheck,
    deadline: tokio::time::Instant,
) -> ProbeOutcome {
    let socket = match connect.open_datagram(req.target(), req.check.source).await {
        Ok(s) => s,
        Err(e) => return io_outcome(&e),
    };
    if let Err(e) = socket.send(&u.exchange.send).await {
        return datagram_outcome(&e);
    }
    // A datagram's largest payload: a reply is never cut short.
    let mut buf = vec![0u8; 65_535];
    let received = if u.silence_passes {
        tokio::select! {
            biased;
            r = socket.recv(&mut buf) => r,
            _ = tokio::time::sleep_until(deadline) => {
                return ProbeOutcome::Pass { weight: None };
            }
        }
    } else {
        socket.recv(&mut buf).await
    };
    let n = match received {
        Ok(n) => n,
        Err(e) => return datagram_outcome(&e),
    };
    let reply = &buf[..n];
    match &u.exchange.expect {
        Some(expect) if !expect.is_match(reply) => {
            fail(format!("reply {} {}", quote(reply), lacks(expect)))
        }
        _ => ProbeOutcome::Pass { weight: None },
    }
}

/// What an error of a connected UDP socket means: the kernel reports the target's ICMP errors
/// on it, port unreachable as ECONNREFUSED.
pub(super) fn datagram_outcome(e: &io::Error) -> ProbeOutcome {
    if director_fault(e).is_some() {
        return io_outcome(e);
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => fail("ICMP port unreachable"),
        _ => fail(io_reason(e)),
    }
}
