//! tcp send/expect: bytes sent on the connection, then the reply read until it holds what the
//! check expects, the server closes, or `reply_limit` bytes arrived. Without an expectation,
//! the bytes written pass (nothing is read).

use lvs_hc_core::config::{Exchange, Expect};
use lvs_hc_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{fail, io_outcome, Seen};

/// What a reason shows of a reply at most: the rest is counted, not shown.
const SHOWN: usize = 64;

/// Sends the exchange's bytes on `stream` and judges the reply, read within `limit` bytes.
/// What arrived so far is kept in `seen`, for the reason should the probe time out.
pub(super) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    x: &Exchange,
    limit: usize,
    seen: &Seen,
) -> ProbeOutcome {
    if !x.send.is_empty() {
        if let Err(e) = stream.write_all(&x.send).await {
            return io_outcome(&e);
        }
    }
    let Some(expect) = &x.expect else {
        return ProbeOutcome::Pass { weight: None };
    };
    let mut chunk = [0u8; 2048];
    loop {
        let len = seen.borrow().len();
        let n = match stream.read(&mut chunk[..(limit - len).min(2048)]).await {
            Ok(n) => n,
            Err(e) => {
                return match io_outcome(&e) {
                    ProbeOutcome::Fail { reason } if len > 0 => {
                        fail(format!("{reason} after {}", quote(&seen.borrow())))
                    }
                    other => other,
                }
            }
        };
        // The reply is kept in `seen` (no borrow across an await): the probe's reason if it
        // times out.
        let mut reply = seen.borrow_mut();
        reply.extend_from_slice(&chunk[..n]);
        if found(expect, &reply, len) {
            return ProbeOutcome::Pass { weight: None };
        }
        if n == 0 && reply.is_empty() {
            return fail("connection closed before any reply");
        }
        if n == 0 {
            return fail(format!(
                "connection closed after {}, which {}",
                quote(&reply),
                lacks(expect)
            ));
        }
        if reply.len() >= limit {
            return fail(format!(
                "{} within reply_limit ({limit} bytes): got {}",
                no_match(expect),
                quote(&reply)
            ));
        }
    }
}

/// Whether `reply`, of which the first `old` bytes were already searched, holds what is
/// expected. Bytes are searched only where a match could have begun since (a reply read in
/// many pieces is not searched over and over); a regular expression sees the whole reply.
fn found(expect: &Expect, reply: &[u8], old: usize) -> bool {
    match expect {
        Expect::Contains(needle) => {
            let from = old.saturating_sub(needle.len().saturating_sub(1));
            expect.is_match(&reply[from..])
        }
        Expect::Regex(_) => expect.is_match(reply),
    }
}

/// `"+PONG\r\n"` or `"-ERR wrong…" (1200 bytes)`: a reply escaped, at most [`SHOWN`] bytes of
/// it.
pub(super) fn quote(reply: &[u8]) -> String {
    if reply.len() <= SHOWN {
        format!("\"{}\"", reply.escape_ascii())
    } else {
        format!(
            "\"{}…\" ({} bytes)",
            reply[..SHOWN].escape_ascii(),
            reply.len()
        )
    }
}

/// `lacks "+PONG"` or `does not match /^\+PONG/`.
pub(super) fn lacks(expect: &Expect) -> String {
    match expect {
        Expect::Contains(_) => format!("lacks {expect}"),
        Expect::Regex(_) => format!("does not match {expect}"),
    }
}

/// `no "+PONG"` or `no match for /^\+PONG/`.
fn no_match(expect: &Expect) -> String {
    match expect {
        Expect::Contains(_) => format!("no {expect}"),
        Expect::Regex(_) => format!("no match for {expect}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_needle_split_across_reads_is_found_and_one_already_searched_is_not_sought_again() {
        let expect = Expect::Contains(b"+PONG".to_vec());
        // "+PO" arrived first, "NG" now: the search starts early enough to span both.
        assert!(found(&expect, b"xx+PONG", 5));
        assert!(!found(&expect, b"xx+PONX", 5));
        // Only bytes from where a match could begin are searched.
        assert!(!found(&expect, b"+PONGxxxxxxxx", 10));
    }

    #[test]
    fn long_replies_are_cut_and_escaped() {
        assert_eq!(quote(b"+PONG\r\n"), "\"+PONG\\r\\n\"");
        let long = vec![b'x'; 100];
        assert_eq!(quote(&long), format!("\"{}…\" (100 bytes)", "x".repeat(64)));
    }
}
