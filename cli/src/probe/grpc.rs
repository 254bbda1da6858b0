//! grpc checks: the standard gRPC health checking protocol (`grpc.health.v1.Health/Check`)
//! over HTTP/2, cleartext with prior knowledge (h2c) or TLS with ALPN `h2`.
//!
//! One connection per probe, closed after it: a health check every few seconds gains little
//! from keeping an HTTP/2 connection, and a fresh one tests what a new client would meet.
//! HTTP/2 is hyper's client. Probes run on a current-thread runtime whose streams need not be
//! `Send`, so hyper's background work (the connection and each request's task) goes to a
//! [`LocalExec`] that this probe polls itself beside the request: no runtime spawning, and
//! nothing outlives the probe.
//!
//! The two protobuf messages are written and read here rather than through prost or tonic:
//! each has one field (a string out, an enum back), and a few dozen lines of careful code
//! with tests of malformed input cost less than a code generator, a protobuf runtime and
//! tonic's transport stack in a daemon that only ever sends this one request.

use std::cell::RefCell;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use lvs_hc_core::config::GrpcCheck;
use lvs_hc_core::ProbeOutcome;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::pool::BoxStream;
use super::{director_fault, fail, io_reason};

/// The health service's method.
const PATH: &str = "/grpc.health.v1.Health/Check";

/// Most bytes of response body read: a `HealthCheckResponse` is 2 bytes and its framing 5.
const MAX_BODY: usize = 4096;

/// Most bytes of response headers or trailers accepted.
const MAX_HEADERS: u32 = 16 * 1024;

/// Most characters of `grpc-message` put in a reason.
const MAX_MESSAGE: usize = 200;

/// Runs the health check over `stream`, a fresh connection to `target` (TLS already done
/// when the check asks for it).
pub(super) async fn check(stream: BoxStream, g: &GrpcCheck, target: SocketAddr) -> ProbeOutcome {
    let first = Rc::new(RefCell::new(FirstBytes::default()));
    let io = hyper_util::rt::TokioIo::new(Recording {
        inner: stream,
        first: first.clone(),
    });
    let exec = LocalExec::default();
    // Flow-control windows just over the largest answer judged: the server cannot make the
    // connection buffer more (hyper's defaults are megabytes).
    let window = (MAX_BODY + 1024) as u32;
    let handshake = hyper::client::conn::http2::Builder::new(exec.clone())
        .max_header_list_size(MAX_HEADERS)
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .handshake::<_, Full<Bytes>>(io)
        .await;
    let (mut sender, connection) = match handshake {
        Ok(pair) => pair,
        Err(e) => return hyper_failure("HTTP/2 handshake failed", &e, &first.borrow()),
    };
    // The authority was checked when the configuration was read: a request that cannot be
    // built is lvs-hc's failing, no verdict on the server.
    let request = match request(g, target) {
        Ok(r) => r,
        Err(reason) => return ProbeOutcome::DirectorFault { reason },
    };
    let exchange = async {
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => return hyper_failure("HTTP/2 request failed", &e, &first.borrow()),
        };
        judge(response).await
    };
    let background = Background {
        connection: Some(connection),
        exec,
        tasks: FuturesUnordered::new(),
    };
    tokio::pin!(exchange);
    tokio::select! {
        biased;
        outcome = &mut exchange => outcome,
        never = background => match never {},
    }
}

/// The request: `POST /grpc.health.v1.Health/Check` with one `HealthCheckRequest`.
fn request(g: &GrpcCheck, target: SocketAddr) -> Result<http::Request<Full<Bytes>>, String> {
    let scheme = if g.tls.is_some() { "https" } else { "http" };
    let authority = match &g.authority {
        Some(a) => a.clone(),
        None => match target.ip() {
            IpAddr::V4(ip) => format!("{ip}:{}", target.port()),
            IpAddr::V6(ip) => format!("[{ip}]:{}", target.port()),
        },
    };
    let uri = format!("{scheme}://{authority}{PATH}");
    http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(
            http::header::USER_AGENT,
            concat!("lvs-hc/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(frame(&encode_request(&g.service))))
        .map_err(|e| format!("cannot build the request: {e}"))
}

/// Reads the response and judges it: HTTP status, content type, the one message, then the
/// `grpc-status` (from the trailers, or the headers of a trailers-only response) and the
/// serving status.
async fn judge(response: http::Response<hyper::body::Incoming>) -> ProbeOutcome {
    let status = response.status();
    if status != http::StatusCode::OK {
        return fail(format!(
            "HTTP status {} (a gRPC server answers 200)",
            status.as_u16()
        ));
    }
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !is_grpc_content_type(content_type) {
        return fail(format!(
            "content-type {content_type:?}, not application/grpc: not a gRPC server"
        ));
    }
    // Trailers-only: an error with no message, as servers answer an unknown method.
    if let Some(outcome) = grpc_status(response.headers()) {
        return match outcome {
            Ok(()) => fail("grpc-status 0 OK without a response message"),
            Err(reason) => fail(reason),
        };
    }
    let mut body = response.into_body();
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return hyper_failure("reading the response failed", &e, &FirstBytes::default())
            }
        };
        match frame.into_data() {
            Ok(d) => {
                if data.len() + d.len() > MAX_BODY {
                    return fail(format!(
                        "a response body over {MAX_BODY} bytes: not a health check response"
                    ));
                }
                data.extend_from_slice(&d);
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    match trailers.as_ref().and_then(grpc_status) {
        None => return fail("no grpc-status trailer: the response ended without a verdict"),
        Some(Err(reason)) => return fail(reason),
        Some(Ok(())) => {}
    }
    let message = match unframe(&data) {
        Ok(m) => m,
        Err(reason) => return fail(reason),
    };
    match decode_response(message) {
        Ok(ServingStatus::Serving) => ProbeOutcome::Pass { weight: None },
        Ok(other) => fail(other.name()),
        Err(e) => fail(format!("malformed HealthCheckResponse: {e}")),
    }
}

/// `application/grpc`, alone or with a subtype (`application/grpc+proto`).
fn is_grpc_content_type(value: &str) -> bool {
    let base = value.split(';').next().unwrap_or("").trim();
    base.eq_ignore_ascii_case("application/grpc")
        || base
            .get(..17)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc+"))
}

/// The verdict of `grpc-status` in `headers`, if it is there: `Ok` for 0, else the reason.
fn grpc_status(headers: &http::HeaderMap) -> Option<Result<(), String>> {
    let value = headers.get("grpc-status")?;
    let code = value.to_str().ok().and_then(|v| v.parse::<u32>().ok());
    let Some(code) = code else {
        return Some(Err(format!("grpc-status {value:?} is not a number")));
    };
    if code == 0 {
        return Some(Ok(()));
    }
    let mut reason = format!("grpc-status {code} {}", status_name(code));
    if let Some(m) = headers.get("grpc-message") {
        let text = percent_decode(m.as_bytes());
        let text: String = text.chars().take(MAX_MESSAGE).collect();
        if !text.is_empty() {
            reason.push_str(": ");
            reason.push_str(&text);
        }
    }
    match code {
        12 => reason.push_str(" (the server has no health service)"),
        5 => reason.push_str(" (the server does not know the service)"),
        _ => {}
    }
    Some(Err(reason))
}

/// The name of a gRPC status code.
fn status_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "(unknown code)",
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses"); a malformed escape
/// stays as written, and the result is read as lossy UTF-8 without control characters.
fn percent_decode(raw: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A message in gRPC's length-prefixed framing: flag 0 (uncompressed), 4-byte big-endian
/// length, the message.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// The one message of a response body in gRPC's framing.
fn unframe(body: &[u8]) -> Result<&[u8], String> {
    if body.is_empty() {
        return Err("grpc-status 0 OK without a response message".into());
    }
    let Some((head, rest)) = body.split_first_chunk::<5>() else {
        return Err(format!(
            "a truncated gRPC message ({} bytes, the prefix alone is 5)",
            body.len()
        ));
    };
    match head[0] {
        0 => {}
        1 => return Err("a compressed gRPC message, though lvs-hc asked for none".into()),
        flag => return Err(format!("a gRPC message with flag {flag}, not 0")),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(format!(
            "a truncated gRPC message ({} of {len} bytes)",
            rest.len()
        )),
        std::cmp::Ordering::Greater => Err("more than one message in a unary response".into()),
        std::cmp::Ordering::Equal => Ok(rest),
    }
}

/// `HealthCheckRequest { string service = 1; }` in protobuf's wire format. The empty string
/// is the default, which proto3 leaves out.
fn encode_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(1 << 3 | WIRE_LEN);
        push_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// The serving status of a `HealthCheckResponse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    /// A value the protocol does not define (proto3 enums are open).
    Other(u64),
}

impl ServingStatus {
    fn name(self) -> String {
        match self {
            ServingStatus::Unknown => "UNKNOWN".into(),
            ServingStatus::Serving => "SERVING".into(),
            ServingStatus::NotServing => "NOT_SERVING".into(),
            ServingStatus::ServiceUnknown => "SERVICE_UNKNOWN".into(),
            ServingStatus::Other(n) => format!("serving status {n} (not one the protocol defines)"),
        }
    }
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_I32: u8 = 5;

/// `HealthCheckResponse { ServingStatus status = 1; }` from protobuf's wire format. Other
/// fields are skipped, as protobuf requires; when `status` appears more than once the last
/// wins; when absent it is the default, UNKNOWN.
fn decode_response(mut bytes: &[u8]) -> Result<ServingStatus, String> {
    let mut status = 0u64;
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        if field == 0 {
            return Err("field number 0".into());
        }
        match wire {
            WIRE_VARINT => {
                let v = read_varint(&mut bytes)?;
                if field == 1 {
                    status = v;
                }
            }
            WIRE_I64 => skip(&mut bytes, 8)?,
            WIRE_I32 => skip(&mut bytes, 4)?,
            WIRE_LEN => {
                if field == 1 {
                    return Err("field 1 (status) is not a varint".into());
                }
                let len = read_varint(&mut bytes)?;
                skip(&mut bytes, usize::try_from(len).unwrap_or(usize::MAX))?;
            }
            other => return Err(format!("wire type {other} (groups and unknown types)")),
        }
    }
    // An enum is an int32 on the wire: negative values arrive as 10-byte varints.
    Ok(match status as i32 as i64 {
        0 => ServingStatus::Unknown,
        1 => ServingStatus::Serving,
        2 => ServingStatus::NotServing,
        3 => ServingStatus::ServiceUnknown,
        _ => ServingStatus::Other(status),
    })
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut n = 0u64;
    for i in 0..10 {
        let Some((&b, rest)) = bytes.split_first() else {
            return Err("a truncated varint".into());
        };
        *bytes = rest;
        if i == 9 && b > 1 {
            return Err("a varint over 64 bits".into());
        }
        n |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("a varint over 10 bytes".into())
}

fn skip(bytes: &mut &[u8], n: usize) -> Result<(), String> {
    if bytes.len() < n {
        return Err("a truncated field".into());
    }
    *bytes = &bytes[n..];
    Ok(())
}

/// A failure of hyper's HTTP/2 client as a verdict: a fault of this director when the socket
/// says so; a server that answered HTTP/1 when its first bytes say so; else `context` and
/// hyper's chain of causes.
fn hyper_failure(context: &str, e: &hyper::Error, first: &FirstBytes) -> ProbeOutcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        // h2 keeps its socket error to itself (its `source` skips it): ask it.
        let io = s
            .downcast_ref::<std::io::Error>()
            .or_else(|| s.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        if let Some(io) = io {
            if let Some(reason) = director_fault(io) {
                return ProbeOutcome::DirectorFault { reason };
            }
            // An HTTP/1 server's answer ends in a closed or reset connection: the answer
            // says more.
            if !first.is_http1() {
                return fail(format!("{context}: {}", io_reason(io)));
            }
        }
        source = s.source();
    }
    if first.is_http1() {
        return fail(format!(
            "{context}: the server answered HTTP/1, not HTTP/2 (a gRPC server speaks HTTP/2)"
        ));
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    fail(format!("{context}: {text}"))
}

/// The first bytes the server sent, to tell an HTTP/1 answer from a broken HTTP/2 one.
#[derive(Default)]
struct FirstBytes {
    bytes: [u8; 5],
    len: usize,
}

impl FirstBytes {
    /// Whether the server began an HTTP/1 response.
    fn is_http1(&self) -> bool {
        self.bytes[..self.len].starts_with(b"HTTP/")
    }
}

/// A stream that keeps the first bytes read from it.
struct Recording {
    inner: BoxStream,
    first: Rc<RefCell<FirstBytes>>,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let mut first = self.first.borrow_mut();
        let new = &buf.filled()[before..];
        let n = new.len().min(first.bytes.len() - first.len);
        let at = first.len;
        first.bytes[at..at + n].copy_from_slice(&new[..n]);
        first.len += n;
        polled
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type LocalTask = Pin<Box<dyn Future<Output = ()>>>;

/// hyper's executor for one probe: it queues what hyper spawns, for [`Background`] to poll.
#[derive(Clone, Default)]
struct LocalExec(Rc<RefCell<Vec<LocalTask>>>);

impl<F: Future<Output = ()> + 'static> hyper::rt::Executor<F> for LocalExec {
    fn execute(&self, fut: F) {
        self.0.borrow_mut().push(Box::pin(fut));
    }
}

/// The connection and hyper's spawned tasks, polled beside the request; never finishes (the
/// request's future ends the probe, with an error when the connection failed).
struct Background<C> {
    connection: Option<C>,
    exec: LocalExec,
    tasks: FuturesUnordered<LocalTask>,
}

/// What never happens.
enum Never {}

impl<C: Future + Unpin> Future for Background<C> {
    type Output = Never;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Never> {
        let this = &mut *self;
        if let Some(c) = this.connection.as_mut() {
            if Pin::new(c).poll(cx).is_ready() {
                this.connection = None;
            }
        }
        loop {
            let spawned: Vec<LocalTask> = std::mem::take(&mut *this.exec.0.borrow_mut());
            let none_new = spawned.is_empty();
            this.tasks.extend(spawned);
            // Drain what is ready; new tasks spawned meanwhile go round again.
            while let Poll::Ready(Some(())) = this.tasks.poll_next_unpin(cx) {}
            if none_new && this.exec.0.borrow().is_empty() {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_encode_the_service_name() {
        assert_eq!(encode_request(""), Vec::<u8>::new());
        assert_eq!(encode_request("a.B"), b"\x0a\x03a.B".to_vec());
        let long = "x".repeat(300);
        let encoded = encode_request(&long);
        assert_eq!(&encoded[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(encoded.len(), 3 + 300);
        assert_eq!(&frame(b"\x0a\x01s")[..], b"\x00\x00\x00\x00\x03\x0a\x01s");
    }

    #[test]
    fn responses_decode_every_serving_status() {
        assert_eq!(decode_response(b""), Ok(ServingStatus::Unknown));
        assert_eq!(decode_response(b"\x08\x00"), Ok(ServingStatus::Unknown));
        assert_eq!(decode_response(b"\x08\x01"), Ok(ServingStatus::Serving));
        assert_eq!(decode_response(b"\x08\x02"), Ok(ServingStatus::NotServing));
        assert_eq!(
            decode_response(b"\x08\x03"),
            Ok(ServingStatus::ServiceUnknown)
        );
        assert_eq!(decode_response(b"\x08\x07"), Ok(ServingStatus::Other(7)));
        // The last occurrence wins; unknown fields of every wire type are skipped.
        assert_eq!(
            decode_response(b"\x08\x02\x10\x05\x19\0\0\0\0\0\0\0\0\x22\x02hi\x2d\0\0\0\0\x08\x01"),
            Ok(ServingStatus::Serving)
        );
        // A negative enum value: ten bytes on the wire.
        let mut neg = vec![0x08];
        push_varint(&mut neg, -1i64 as u64);
        assert_eq!(neg.len(), 11);
        assert_eq!(decode_response(&neg), Ok(ServingStatus::Other(u64::MAX)));
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        for bad in [
            &b"\x08"[..],                                        // no value
            b"\x08\x81",                                         // truncated varint
            b"\x0a\x01\x01",                                     // field 1 as bytes
            b"\x12\x05ab",                                       // length past the end
            b"\x12\xff\xff\xff\xff\x0f",                         // huge length
            b"\x19\0\0",                                         // truncated fixed64
            b"\x1d\0",                                           // truncated fixed32
            b"\x0b",                                             // start group
            b"\x0e",                                             // wire type 6
            b"\x00\x01",                                         // field 0
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",     // over 64 bits
            b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", // over 10 bytes
        ] {
            assert!(decode_response(bad).is_err(), "{bad:?} decoded");
        }
        // Every prefix of a valid message is a valid message or an error, never a panic.
        let full = b"\x22\x03abc\x08\x96\x01";
        for n in 0..full.len() {
            let _ = decode_response(&full[..n]);
        }
    }

    #[test]
    fn frames_are_checked() {
        assert_eq!(unframe(b"\0\0\0\0\x02\x08\x01"), Ok(&b"\x08\x01"[..]));
        assert_eq!(unframe(b"\0\0\0\0\0"), Ok(&b""[..]));
        assert!(unframe(b"")
            .unwrap_err()
            .contains("without a response message"));
        assert!(unframe(b"\0\0\0").unwrap_err().contains("truncated"));
        assert!(unframe(b"\0\0\0\0\x03\x08\x01")
            .unwrap_err()
            .contains("truncated"));
        assert!(unframe(b"\x01\0\0\0\x02\x08\x01")
            .unwrap_err()
            .contains("compressed"));
        assert!(unframe(b"\x02\0\0\0\x02\x08\x01")
            .unwrap_err()
            .contains("flag 2"));
        assert!(unframe(b"\0\0\0\0\x02\x08\x01\0\0\0\0\0")
            .unwrap_err()
            .contains("more than one message"));
    }

    #[test]
    fn grpc_statuses_read_as_names_with_their_message() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(grpc_status(&h), Some(Ok(())));
        h.insert("grpc-status", "12".parse().unwrap());
        h.insert(
            "grpc-message",
            "unknown%20service%3A health".parse().unwrap(),
        );
        assert_eq!(
            grpc_status(&h),
            Some(Err(
                "grpc-status 12 UNIMPLEMENTED: unknown service: health (the server has no \
                 health service)"
                    .into()
            ))
        );
        h.insert("grpc-status", "x".parse().unwrap());
        assert!(grpc_status(&h)
            .unwrap()
            .unwrap_err()
            .contains("not a number"));
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
        assert_eq!(percent_decode(b"a%0Ab"), "a b");
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("application/grpc+proto"));
        assert!(is_grpc_content_type("Application/GRPC; charset=x"));
        assert!(!is_grpc_content_type("application/grpcx"));
        assert!(!is_grpc_content_type("text/html"));
        assert!(!is_grpc_content_type(""));
    }
}
