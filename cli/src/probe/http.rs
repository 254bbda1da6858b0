//! HTTP(S) checks: one request and its response, on the kept connection of a check with
//! `reuse_connection` when there is one, else on a fresh one.
//!
//! A probe is one request and one response, so it speaks HTTP/1.1 itself on `httparse` (the
//! parser hyper uses) rather than through hyper's client, whose connection set-up (three 8 KiB
//! buffers and a request channel per exchange) cost more than the rest of the probe: the request
//! is written whole, the head parsed as it arrives (informational 1xx answers skipped, at most
//! 16 KiB and 64 headers), and the body read as `Content-Length`, chunks or until the close
//! say, within `body_limit`. Over TLS the same, on the TLS stream.

use std::io;
use std::net::{IpAddr, SocketAddr};

use lvs_hc_core::config::{HttpCheck, HttpMethod};
use lvs_hc_core::{ProbeOutcome, ProbeRequest};
use md5::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pool::{BoxStream, Kept, PoolKey};
use super::{director_fault, fail, io_outcome, io_reason, Connect, Origin, Prober};

/// What carries an HTTP(S) check's fresh connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transport {
    /// TCP alone: `http` checks.
    Plain,
    /// TLS over TCP: `https` checks.
    Tls,
}

impl<C: Connect> Prober<C> {
    /// An HTTP(S) probe: on the server's kept connection when the check reuses connections and
    /// one is open, else on a fresh one. The Host header and the TLS name (unless the check
    /// gives them) are those of `named`, the target but for a direct probe compared with one
    /// through the VIP (see [`Prober::run`]): through the VIP, the VIP, as clients send.
    pub(super) async fn http(
        &self,
        req: &ProbeRequest,
        named: SocketAddr,
        h: &HttpCheck,
        transport: Transport,
    ) -> ProbeOutcome {
        let target = req.target();
        let origin = Origin::of(req);
        let reuse = if h.reuse_connection {
            Reuse::Keep
        } else {
            Reuse::Close
        };
        let key = (reuse == Reuse::Keep).then(|| PoolKey {
            target,
            origin,
            check: req.check.clone(),
        });
        if let Some(key) = &key {
            let kept = self.pool.borrow_mut().take(key);
            if let Some(Kept(stream)) = kept {
                match exchange(stream, h, named, Reuse::Keep).await {
                    Exchange::Done(outcome, kept) => {
                        if let Some(kept) = kept {
                            self.pool.borrow_mut().put(key.clone(), kept);
                        }
                        return outcome;
                    }
                    // No response on the kept connection (most often the server ended it
                    // while idle): not a verdict; a fresh connection decides.
                    Exchange::Closed(_) => {}
                }
            }
        }
        let stream = match self.open(target, origin, named, h, transport).await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        match exchange(stream, h, named, reuse).await {
            Exchange::Done(outcome, kept) => {
                if let (Some(key), Some(kept)) = (key, kept) {
                    self.pool.borrow_mut().put(key, kept);
                }
                outcome
            }
            Exchange::Closed(outcome) => outcome,
        }
    }

    /// A fresh stream for an HTTP(S) check: TCP to `target` from `origin`, then TLS for https
    /// (verifying the name of `named` unless the check gives one).
    async fn open(
        &self,
        target: SocketAddr,
        origin: Origin,
        named: SocketAddr,
        h: &HttpCheck,
        transport: Transport,
    ) -> Result<BoxStream, ProbeOutcome> {
        let stream = match self.connect.connect(target, origin).await {
            Ok(s) => s,
            Err(e) => return Err(io_outcome(&e)),
        };
        match transport {
            Transport::Plain => Ok(Box::new(stream)),
            Transport::Tls => {
                let host = h.host.as_deref();
                self.tls
                    .handshake(stream, h.tls.as_ref(), host, named)
                    .await
            }
        }
    }
}

/// What becomes of a connection after its exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reuse {
    /// Kept for the check's next probe: the body is read to its end (within `body_limit`), so
    /// the stream is left at a message boundary.
    Keep,
    /// Closed: the body is read only when the check judges it.
    Close,
}

/// How one exchange on a connection ended.
enum Exchange {
    /// A verdict, and the stream when it can carry another request.
    Done(ProbeOutcome, Option<Kept>),
    /// No response began: the connection was closed or reset, the request could not be
    /// written, or what came back was not a response to it. On a kept connection this is most
    /// often the server ending an idle keep-alive connection, so it is not a verdict there:
    /// the probe tries once more on a fresh connection, which decides.
    Closed(ProbeOutcome),
}

/// The most a response's head (status line and headers) may take.
const MAX_HEAD: usize = 16 * 1024;
/// The most headers a response may have.
const MAX_HEADERS: usize = 64;
/// The most a chunk-size line or a trailer line may take.
const MAX_LINE: usize = 4096;
/// What a probe reads at a time (and the buffer it starts with).
const READ_CHUNK: usize = 2048;

/// One request and its response on `stream`, judged against the check: HTTP/1.1 on
/// `httparse`, the request written whole, the head parsed as it arrives, the body read within
/// `body_limit` (to its end when the connection is to be kept).
async fn exchange(stream: BoxStream, h: &HttpCheck, target: SocketAddr, reuse: Reuse) -> Exchange {
    let mut conn = Conn {
        stream,
        buf: Vec::with_capacity(READ_CHUNK),
        pos: 0,
    };
    if let Err(e) = conn.stream.write_all(&request(h, target, reuse)).await {
        return Exchange::Closed(io_outcome(&e));
    }
    let head = match conn.read_head().await {
        Ok(head) => head,
        Err(outcome) => return Exchange::Closed(outcome),
    };
    let bad_status = (!h.expect_status.contains(head.status))
        .then(|| fail(format!("status {} not in {}", head.status, h.expect_status)));
    let want_body =
        h.expect_body.is_some() || h.expect_body_regex.is_some() || h.expect_body_md5.is_some();
    if reuse == Reuse::Close && (bad_status.is_some() || !want_body) {
        let verdict = bad_status.unwrap_or(ProbeOutcome::Pass { weight: None });
        return Exchange::Done(verdict, None);
    }
    // Read the body: to judge it, and, to keep the connection, to its end (the bytes are kept
    // only when judged).
    let framing = if h.method == HttpMethod::Head || matches!(head.status, 204 | 304) {
        Framing::Length(0)
    } else {
        head.framing
    };
    let mut body = Body {
        bytes: Vec::new(),
        read: 0,
        limit: h.body_limit,
        keep: want_body,
        truncated: false,
    };
    let complete = match conn.read_body(framing, &mut body).await {
        Ok(complete) => complete,
        Err(outcome) => return Exchange::Done(outcome, None),
    };
    let verdict =
        bad_status.unwrap_or_else(|| judge_body(h, &body.bytes, complete && !body.truncated));
    // The whole response was read and nothing more: the stream is at a message boundary and
    // can carry the next request.
    let reusable = reuse == Reuse::Keep
        && head.keep_alive
        && complete
        && framing != Framing::UntilClose
        && conn.pos == conn.buf.len();
    Exchange::Done(verdict, reusable.then(|| Kept(conn.stream)))
}

/// The request of an HTTP(S) check. To keep the connection it relies on HTTP/1.1's default;
/// otherwise it says `Connection: close`. (The path and the host were checked when the
/// configuration was read: no spaces, no control characters.)
fn request(h: &HttpCheck, target: SocketAddr, reuse: Reuse) -> Vec<u8> {
    // Written piece by piece rather than through `format!`: a probe sends one of these per
    // exchange, thousands a second, and the formatting machinery cost more than the rest of
    // building it.
    let method: &[u8] = match h.method {
        HttpMethod::Get => b"GET ",
        HttpMethod::Head => b"HEAD ",
    };
    let connection: &[u8] = match reuse {
        Reuse::Keep => b"",
        Reuse::Close => b"Connection: close\r\n",
    };
    let mut r = Vec::with_capacity(96 + h.path.len() + h.host.as_ref().map_or(0, String::len));
    r.extend_from_slice(method);
    r.extend_from_slice(h.path.as_bytes());
    r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    push_host(&mut r, h, target);
    r.extend_from_slice(
        concat!("\r\nUser-Agent: lvs-hc/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes(),
    );
    r.extend_from_slice(connection);
    r.extend_from_slice(b"\r\n");
    r
}

/// How a response's body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// After this many bytes (`Content-Length`, or none for HEAD, 204 and 304).
    Length(u64),
    /// At the last chunk (`Transfer-Encoding: chunked`).
    Chunked,
    /// When the server closes the connection (neither of the above).
    UntilClose,
}

/// What a probe needs of a response's head.
struct Head {
    status: u16,
    framing: Framing,
    /// HTTP/1.1 without `Connection: close` (HTTP/1.0 servers are not kept).
    keep_alive: bool,
}

/// The body as read so far.
struct Body {
    /// What was kept, when the check judges the body.
    bytes: Vec<u8>,
    /// How much of it was read (kept or not).
    read: usize,
    /// The most to read: `body_limit`.
    limit: usize,
    /// Whether to keep the bytes.
    keep: bool,
    /// Whether bytes beyond the limit were dropped.
    truncated: bool,
}

impl Body {
    /// Takes `data`; false once the limit is reached.
    fn take(&mut self, data: &[u8]) -> bool {
        let n = data.len().min(self.limit - self.read);
        self.truncated |= n < data.len();
        if self.keep {
            self.bytes.extend_from_slice(&data[..n]);
        }
        self.read += n;
        self.read < self.limit
    }
}

/// A connection and what was read from it and not used yet (`buf[pos..]`).
struct Conn {
    stream: BoxStream,
    buf: Vec<u8>,
    pos: usize,
}

/// Why reading ended early.
enum ReadEnd {
    /// The server closed the connection.
    Eof,
    /// The socket failed.
    Io(io::Error),
}

impl Conn {
    /// Reads more into the buffer; the number of bytes read.
    async fn fill(&mut self) -> Result<usize, ReadEnd> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK, 0);
        let n = self.stream.read(&mut self.buf[len..]).await;
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        match n {
            Ok(0) => Err(ReadEnd::Eof),
            Ok(n) => Ok(n),
            Err(e) => Err(ReadEnd::Io(e)),
        }
    }

    /// Reads the head of the response (skipping informational 1xx ones).
    async fn read_head(&mut self) -> Result<Head, ProbeOutcome> {
        loop {
            let parsed = {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf[self.pos..]) {
                    Ok(httparse::Status::Complete(len)) => Some((head_of(&response)?, len)),
                    Ok(httparse::Status::Partial) => None,
                    Err(e) => return Err(not_http(e)),
                }
            };
            match parsed {
                Some((head, len)) => {
                    self.pos += len;
                    if (100..200).contains(&head.status) && head.status != 101 {
                        continue;
                    }
                    return Ok(head);
                }
                None if self.buf.len() - self.pos >= MAX_HEAD => {
                    return Err(fail(format!(
                        "not an HTTP response (a head over {} KiB)",
                        MAX_HEAD / 1024
                    )))
                }
                None => match self.fill().await {
                    Ok(_) => {}
                    Err(ReadEnd::Eof) => return Err(closed_early()),
                    Err(ReadEnd::Io(e)) => return Err(io_outcome(&e)),
                },
            }
        }
    }

    /// Reads the body as `framing` says, within `body.limit`: whether it was read to its end.
    async fn read_body(&mut self, framing: Framing, body: &mut Body) -> Result<bool, ProbeOutcome> {
        match framing {
            Framing::Length(left) => self.read_exactly(left, body).await,
            Framing::UntilClose => loop {
                if self.pos < self.buf.len() {
                    let more = body.take(&self.buf[self.pos..]);
                    self.pos = self.buf.len();
                    if !more {
                        return Ok(false);
                    }
                }
                match self.fill().await {
                    Ok(_) => {}
                    Err(ReadEnd::Eof) => return Ok(true),
                    Err(ReadEnd::Io(e)) => return Err(body_failed(&e)),
                }
            },
            Framing::Chunked => loop {
                let line = self.line().await?;
                let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let size = std::str::from_utf8(size)
                    .ok()
                    .map(str::trim)
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .ok_or_else(|| {
                        fail("reading the body failed: not an HTTP response (invalid chunk size)")
                    })?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line().await?.is_empty() {}
                    return Ok(true);
                }
                if !self.read_exactly(size, body).await? {
                    return Ok(false);
                }
                if !self.line().await?.is_empty() {
                    return Err(fail(
                        "reading the body failed: not an HTTP response (invalid chunk end)",
                    ));
                }
            },
        }
    }

    /// Reads `left` bytes of body (or up to the limit): whether all were read.
    async fn read_exactly(&mut self, mut left: u64, body: &mut Body) -> Result<bool, ProbeOutcome> {
        while left > 0 {
            if self.pos == self.buf.len() {
                self.refill().await?;
            }
            let here = self.buf.len() - self.pos;
            let n = here.min(usize::try_from(left).unwrap_or(usize::MAX));
            let more = body.take(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            left -= n as u64;
            if !more && left > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// More bytes within a body, or why there are none.
    async fn refill(&mut self) -> Result<(), ProbeOutcome> {
        match self.fill().await {
            Ok(_) => Ok(()),
            Err(ReadEnd::Eof) => Err(fail(format!("reading the body failed: {}", CLOSED_EARLY))),
            Err(ReadEnd::Io(e)) => Err(body_failed(&e)),
        }
    }

    /// The next CRLF-ended line (without its end), within a chunked body.
    async fn line(&mut self) -> Result<Vec<u8>, ProbeOutcome> {
        loop {
            if let Some(i) = self.buf[self.pos..].windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 2;
                return Ok(line);
            }
            if self.buf.len() - self.pos > MAX_LINE {
                return Err(fail(
                    "reading the body failed: not an HTTP response (a chunk line too long)",
                ));
            }
            self.refill().await?;
        }
    }
}

/// The status, framing and persistence of a parsed head; a failure when they contradict each
/// other (two different lengths, a length that is no number).
fn head_of(response: &httparse::Response<'_, '_>) -> Result<Head, ProbeOutcome> {
    let status = response.code.unwrap_or(0);
    let http11 = response.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = false;
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("");
        if header.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| fail(format!("not an HTTP response (content-length `{value}`)")))?;
            if length.is_some_and(|l| l != n) {
                return Err(fail("not an HTTP response (two different content-lengths)"));
            }
            length = Some(n);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    };
    Ok(Head {
        status,
        framing,
        keep_alive: http11 && !close,
    })
}

/// What the server sent when the connection ended before a whole response.
const CLOSED_EARLY: &str = "connection closed before a complete response";

fn closed_early() -> ProbeOutcome {
    fail(CLOSED_EARLY)
}

fn not_http(e: httparse::Error) -> ProbeOutcome {
    fail(format!("not an HTTP response ({e})"))
}

fn body_failed(e: &io::Error) -> ProbeOutcome {
    match director_fault(e) {
        Some(reason) => ProbeOutcome::DirectorFault { reason },
        None => fail(format!("reading the body failed: {}", io_reason(e))),
    }
}

/// The Host header: the check's `host`, else the server's address, with its port unless it is
/// the scheme's default.
/// The `Host` header's value: the check's `host`, else the server's address (with its port
/// when not the scheme's default; IPv6 in brackets).
fn push_host(out: &mut Vec<u8>, h: &HttpCheck, target: SocketAddr) {
    if let Some(host) = &h.host {
        out.extend_from_slice(host.as_bytes());
        return;
    }
    match target.ip() {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u16::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let _ = write!(out, "[{v6}]");
        }
    }
    let default_port = if h.tls.is_some() { 443 } else { 80 };
    if target.port() != default_port {
        out.push(b':');
        push_decimal(out, target.port());
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Whether the body read so far (`whole`: all of it, to its end) has what the check
/// expects.
fn judge_body(h: &HttpCheck, bytes: &[u8], whole: bool) -> ProbeOutcome {
    if let Some(want) = &h.expect_body_md5 {
        if !whole {
            return fail(format!(
                "body longer than body_limit ({} bytes): its MD5 digest needs all of it",
                h.body_limit
            ));
        }
        let got: [u8; 16] = md5::Md5::digest(bytes).into();
        if &got != want {
            return fail(format!(
                "body's MD5 digest is {}, expected {}",
                hex(&got),
                hex(want)
            ));
        }
    }
    if h.expect_body.is_none() && h.expect_body_regex.is_none() {
        return ProbeOutcome::Pass { weight: None };
    }
    let text = String::from_utf8_lossy(bytes);
    if let Some(want) = &h.expect_body {
        if !text.contains(want.as_str()) {
            return fail(format!("body lacks {want:?}"));
        }
    }
    if let Some(re) = &h.expect_body_regex {
        if !re.is_match(&text) {
            return fail(format!("body does not match /{}/", re.as_str()));
        }
    }
    ProbeOutcome::Pass { weight: None }
}

/// Lowercase hexadecimal, as md5sum prints a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain http check of `method` on `path`, with `host` as its `Host` header if given.
    fn check(method: HttpMethod, path: &str, host: Option<&str>) -> HttpCheck {
        HttpCheck {
            method,
            path: path.into(),
            host: host.map(str::to_string),
            expect_status: lvs_hc_core::config::StatusSet::new(vec![(200, 299)]),
            expect_body: None,
            expect_body_regex: None,
            expect_body_md5: None,
            body_limit: 10,
            tls: None,
            reuse_connection: false,
        }
    }

    /// The `Host` header a probe of `h` sends to `target`.
    fn host_header(h: &HttpCheck, target: SocketAddr) -> String {
        let mut out = Vec::new();
        push_host(&mut out, h, target);
        String::from_utf8(out).expect("a host header is text")
    }

    #[test]
    fn host_headers_default_to_the_address() {
        let h = |host: Option<&str>| check(HttpMethod::Get, "/", host);
        assert_eq!(
            host_header(&h(None), "10.0.0.1:80".parse().unwrap()),
            "10.0.0.1"
        );
        assert_eq!(
            host_header(&h(None), "10.0.0.1:8080".parse().unwrap()),
            "10.0.0.1:8080"
        );
        assert_eq!(
            host_header(&h(None), "[2001:db8::1]:80".parse().unwrap()),
            "[2001:db8::1]"
        );
        assert_eq!(
            host_header(&h(Some("www.example.com")), "10.0.0.1:80".parse().unwrap()),
            "www.example.com"
        );
    }

    #[test]
    fn requests_are_written_whole() {
        let check = |method, host: Option<&str>| check(method, "/health?full=1", host);
        let agent = concat!("User-Agent: lvs-hc/", env!("CARGO_PKG_VERSION"));
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
        assert_eq!(
            text(request(
                &check(HttpMethod::Get, None),
                "255.0.10.9:65535".parse().unwrap(),
                Reuse::Close
            )),
            format!(
                "GET /health?full=1 HTTP/1.1\r\nHost: 255.0.10.9:65535\r\n{agent}\r\n\
                 Connection: close\r\n\r\n"
            )
        );
        assert_eq!(
            text(request(
                &check(HttpMethod::Head, Some("a.example")),
                "[2001:db8::1]:1".parse().unwrap(),
                Reuse::Keep
            )),
            format!("HEAD /health?full=1 HTTP/1.1\r\nHost: a.example\r\n{agent}\r\n\r\n")
        );
        for port in [1u16, 9, 10, 99, 100, 1000, 9999, 10000, 65535] {
            let mut out = Vec::new();
            push_decimal(&mut out, port);
            assert_eq!(text(out), port.to_string());
        }
    }
}
