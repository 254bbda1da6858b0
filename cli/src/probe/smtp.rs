//! SMTP checks: the server's 220 banner, `EHLO` answered 250, with `starttls` the upgrade to
//! TLS and a second `EHLO` over it, then `QUIT`.
//!
//! Replies are read line by line within bounds (a line, the lines of one reply), so a server
//! that sends an endless multi-line reply or a line without end fails instead of holding the
//! probe until its timeout or growing a buffer. Every failure quotes the server's reply line,
//! escaped and shortened.

use std::net::SocketAddr;

use lvs_hc_core::config::SmtpCheck;
use lvs_hc_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::tls::TlsConfigs;
use super::{fail, io_outcome};

/// The longest reply line read (RFC 5321 allows 512 bytes; servers that exceed it a little
/// still pass).
pub const MAX_LINE: usize = 2048;
/// The most lines one reply may have (an EHLO reply lists a line per extension: a few dozen
/// at most in practice).
pub const MAX_REPLY_LINES: usize = 128;
/// The most characters of a reply line quoted in a reason.
const QUOTED: usize = 100;

/// Runs the SMTP dialogue of `check` on `stream`, a fresh connection to `target`.
pub(super) async fn smtp<S>(
    stream: S,
    check: &SmtpCheck,
    target: SocketAddr,
    tls: &TlsConfigs,
) -> ProbeOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    match dialogue(stream, check, target, tls).await {
        Ok(()) => ProbeOutcome::Pass { weight: None },
        Err(outcome) => outcome,
    }
}

async fn dialogue<S>(
    stream: S,
    check: &SmtpCheck,
    target: SocketAddr,
    tls: &TlsConfigs,
) -> Result<(), ProbeOutcome>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut smtp = Session::new(stream);
    let banner = smtp.reply("the banner").await?;
    if banner.code != 220 {
        return Err(fail(format!("banner {}: expected 220", banner.quoted())));
    }
    let ehlo = smtp.ehlo(&check.helo_name, "EHLO").await?;
    let Some(settings) = &check.starttls else {
        return smtp.quit().await;
    };
    if !ehlo.offers("STARTTLS") {
        return Err(fail("STARTTLS not offered"));
    }
    smtp.send("STARTTLS").await?;
    let answer = smtp.reply("STARTTLS").await?;
    if answer.code != 220 {
        return Err(fail(format!(
            "STARTTLS answered {}: expected 220",
            answer.quoted()
        )));
    }
    let stream = smtp.into_inner()?;
    let stream = tls.handshake(stream, Some(settings), None, target).await?;
    let mut smtp = Session::new(stream);
    smtp.ehlo(&check.helo_name, "EHLO after STARTTLS").await?;
    smtp.quit().await
}

/// One SMTP reply: its code and lines.
#[derive(Debug)]
struct Reply {
    /// The reply code (`220`).
    code: u16,
    /// The lines, without their line ends, each starting with the code.
    lines: Vec<Vec<u8>>,
}

impl Reply {
    /// The first line as a reason quotes it: escaped and shortened.
    fn quoted(&self) -> String {
        quote(&self.lines[0])
    }

    /// Whether an EHLO reply lists `keyword` among its extensions (lines after the first).
    fn offers(&self, keyword: &str) -> bool {
        self.lines.iter().skip(1).any(|line| {
            line.get(4..)
                .and_then(|rest| rest.split(|b| *b == b' ').next())
                .is_some_and(|word| word.eq_ignore_ascii_case(keyword.as_bytes()))
        })
    }
}

/// A server's reply line for a reason: lossy UTF-8 with control characters escaped, at most
/// [`QUOTED`] characters, then `...`.
pub fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == QUOTED {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The client side of an SMTP session: commands out, replies in, within bounds.
struct Session<S> {
    stream: S,
    /// Bytes received and not yet taken as a line.
    buf: Vec<u8>,
    /// Whether the server closed the connection at a line boundary.
    closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S) -> Session<S> {
        Session {
            stream,
            buf: Vec::new(),
            closed: false,
        }
    }

    /// Sends `EHLO name` and reads its 250 reply; `what` names the step in a failure.
    async fn ehlo(&mut self, name: &str, what: &str) -> Result<Reply, ProbeOutcome> {
        self.send(&format!("EHLO {name}")).await?;
        let reply = self.reply(what).await?;
        if reply.code != 250 {
            return Err(fail(format!(
                "{what} answered {}: expected 250",
                reply.quoted()
            )));
        }
        Ok(reply)
    }

    /// Ends the session: `QUIT`, answered 221 or by the server closing the connection.
    async fn quit(&mut self) -> Result<(), ProbeOutcome> {
        self.send("QUIT").await?;
        match self.reply("QUIT").await {
            Ok(reply) if reply.code == 221 => Ok(()),
            Ok(reply) => Err(fail(format!(
                "QUIT answered {}: expected 221",
                reply.quoted()
            ))),
            // The server ended the session as asked, only without a word.
            Err(_) if self.closed => Ok(()),
            Err(outcome) => Err(outcome),
        }
    }

    /// Writes one command line.
    async fn send(&mut self, command: &str) -> Result<(), ProbeOutcome> {
        let mut line = Vec::with_capacity(command.len() + 2);
        line.extend_from_slice(command.as_bytes());
        line.extend_from_slice(b"\r\n");
        self.stream
            .write_all(&line)
            .await
            .map_err(|e| io_outcome(&e))?;
        self.stream.flush().await.map_err(|e| io_outcome(&e))
    }

    /// Reads one whole reply (every line of a multi-line one); `what` names the step in a
    /// failure (`the banner`, `EHLO`).
    async fn reply(&mut self, what: &str) -> Result<Reply, ProbeOutcome> {
        let mut lines = Vec::new();
        loop {
            let line = self.line(what).await?;
            let (code, more) = parse_line(&line).ok_or_else(|| {
                fail(format!(
                    "{} is not an SMTP reply line: {}",
                    capitalised(what),
                    quote(&line)
                ))
            })?;
            lines.push(line);
            if !more {
                return Ok(Reply { code, lines });
            }
            if lines.len() == MAX_REPLY_LINES {
                return Err(fail(format!(
                    "{} runs past {MAX_REPLY_LINES} lines (first: {})",
                    reply_to(what),
                    quote(&lines[0])
                )));
            }
        }
    }

    /// Reads one line, without its line end.
    async fn line(&mut self, what: &str) -> Result<Vec<u8>, ProbeOutcome> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(fail(format!(
                    "{} has a line longer than {MAX_LINE} bytes: {}",
                    reply_to(what),
                    quote(&self.buf)
                )));
            }
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| io_outcome(&e))?;
            if n == 0 {
                self.closed = self.buf.is_empty();
                return Err(fail(format!(
                    "the server closed the connection before {}{}",
                    reply_to(what),
                    match self.buf.is_empty() {
                        true => String::new(),
                        false => format!(" ended (got {})", quote(&self.buf)),
                    }
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The connection, for the TLS handshake after STARTTLS. Bytes the server sent after its
    /// 220 and before the handshake would be taken as if they came over TLS by a careless
    /// client (the STARTTLS command injection of CVE-2011-0411's kind): they fail the check.
    fn into_inner(self) -> Result<S, ProbeOutcome> {
        if !self.buf.is_empty() {
            return Err(fail(format!(
                "the server sent {} before the TLS handshake, after its STARTTLS reply: {}",
                lvs_hc_core::text::plural(self.buf.len(), "byte", "bytes"),
                quote(&self.buf)
            )));
        }
        Ok(self.stream)
    }
}

/// A reply line's code and whether more lines follow (`250-`), or `None` when it is no reply
/// line (three digits, then a space, a dash or the end).
fn parse_line(line: &[u8]) -> Option<(u16, bool)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None | Some(b' ') => Some((code, false)),
        Some(b'-') => Some((code, true)),
        Some(_) => None,
    }
}

/// `the banner` stays; a command names its reply: `EHLO` → `the EHLO reply`.
fn reply_to(what: &str) -> String {
    if what.starts_with("the ") {
        what.to_string()
    } else {
        format!("the {what} reply")
    }
}

fn capitalised(what: &str) -> String {
    let text = reply_to(what);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_give_their_code_and_whether_more_follow() {
        assert_eq!(parse_line(b"220 mx ESMTP"), Some((220, false)));
        assert_eq!(parse_line(b"250-PIPELINING"), Some((250, true)));
        assert_eq!(parse_line(b"250"), Some((250, false)));
        assert_eq!(parse_line(b"HTTP/1.1 200 OK"), None);
        assert_eq!(parse_line(b"25"), None);
        assert_eq!(parse_line(b"2500"), None);
        assert_eq!(parse_line(b"999 nine"), None);
    }

    #[test]
    fn quoted_lines_are_escaped_and_shortened() {
        assert_eq!(quote(b"554 no\tway\x1b[31m"), "554 no\\tway\\u{1b}[31m");
        let long = [b'x'; 300];
        assert_eq!(quote(&long), format!("{}...", "x".repeat(QUOTED)));
    }

    #[test]
    fn ehlo_keywords_are_matched_whole_and_without_case() {
        let reply = Reply {
            code: 250,
            lines: vec![
                b"250-mx.example.com".to_vec(),
                b"250-starttls".to_vec(),
                b"250 SIZE 1000".to_vec(),
            ],
        };
        assert!(reply.offers("STARTTLS"));
        assert!(reply.offers("SIZE"));
        assert!(!reply.offers("START"));
        let first_only = Reply {
            code: 250,
            lines: vec![b"250 STARTTLS".to_vec()],
        };
        // The first line is the server's greeting, not an extension.
        assert!(!first_only.offers("STARTTLS"));
    }
}
