//! udp checks: one datagram sent, and the reply judged; silence passes only when the check
//! says so, and an ICMP port unreachable never does.

use std::io;

use lvs_hc_core::config::UdpCheck;
use lvs_hc_core::{ProbeOutcome, ProbeRequest};

use super::tcp::{lacks, quote};
use super::{director_fault, fail, io_outcome, io_reason, Connect, Datagram, Origin};

/// Sends the check's datagram and waits for the target's reply, until `deadline` when silence
/// passes (else until [`super::Prober::probe`] times it out).
pub(super) async fn udp<C: Connect>(
    connect: &C,
    req: &ProbeRequest,
    u: &UdpCheck,
    deadline: tokio::time::Instant,
) -> ProbeOutcome {
    let socket = match send(connect, req, &u.exchange.send).await {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let received = if u.silence_passes {
        tokio::select! {
            biased;
            r = reply(&socket) => r,
            _ = tokio::time::sleep_until(deadline) => {
                return ProbeOutcome::Pass { weight: None };
            }
        }
    } else {
        reply(&socket).await
    };
    let buf = match received {
        Ok(buf) => buf,
        Err(outcome) => return outcome,
    };
    match &u.exchange.expect {
        Some(expect) if !expect.is_match(&buf) => {
            fail(format!("reply {} {}", quote(&buf), lacks(expect)))
        }
        _ => ProbeOutcome::Pass { weight: None },
    }
}

/// Opens a UDP socket aimed at the check's target and sends `payload` on it (udp and dns
/// checks).
pub(super) async fn send<C: Connect>(
    connect: &C,
    req: &ProbeRequest,
    payload: &[u8],
) -> Result<C::Datagram, ProbeOutcome> {
    let socket = connect
        .open_datagram(req.target(), Origin::of(req))
        .await
        .map_err(|e| io_outcome(&e))?;
    socket
        .send(payload)
        .await
        .map_err(|e| datagram_outcome(&e))?;
    Ok(socket)
}

/// The next datagram from the target, whole: the buffer holds a datagram's largest payload,
/// so a reply is never cut short.
pub(super) async fn reply<D: Datagram>(socket: &D) -> Result<Vec<u8>, ProbeOutcome> {
    let mut buf = vec![0u8; 65_535];
    let n = socket
        .recv(&mut buf)
        .await
        .map_err(|e| datagram_outcome(&e))?;
    buf.truncate(n);
    Ok(buf)
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
