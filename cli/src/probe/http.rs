//! HTTP(S) checks: one request and its response on hyper's HTTP/1 connection API, on the kept
//! connection of a check with `reuse_connection` when there is one, else on a fresh one.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use lvs_hc_core::config::{HttpCheck, HttpMethod};
use lvs_hc_core::{ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::pool::{BoxStream, Kept, PoolKey};
use super::{director_fault, fail, io_outcome, io_reason, Connect, Prober};

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
    /// one is open, else on a fresh one.
    pub(super) async fn http(
        &self,
        req: &ProbeRequest,
        h: &HttpCheck,
        transport: Transport,
    ) -> ProbeOutcome {
        let target = req.target();
        let reuse = if h.reuse_connection {
            Reuse::Keep
        } else {
            Reuse::Close
        };
        let key = (reuse == Reuse::Keep).then(|| PoolKey(target, req.check.clone()));
        if let Some(key) = &key {
            let kept = self.pool.borrow_mut().take(key);
            if let Some(Kept(stream)) = kept {
                match exchange(stream, h, target, Reuse::Keep).await {
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
        let stream = match self.open(req, h, transport).await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        match exchange(stream, h, target, reuse).await {
            Exchange::Done(outcome, kept) => {
                if let (Some(key), Some(kept)) = (key, kept) {
                    self.pool.borrow_mut().put(key, kept);
                }
                outcome
            }
            Exchange::Closed(outcome) => outcome,
        }
    }

    /// A fresh stream for an HTTP(S) check: TCP, then TLS for https.
    async fn open(
        &self,
        req: &ProbeRequest,
        h: &HttpCheck,
        transport: Transport,
    ) -> Result<BoxStream, ProbeOutcome> {
        let target = req.target();
        let stream = match self.connect.connect(target, req.check.source).await {
            Ok(s) => s,
            Err(e) => return Err(io_outcome(&e)),
        };
        match transport {
            Transport::Plain => Ok(Box::new(stream)),
            Transport::Tls => self.tls.handshake(stream, h, target).await,
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

/// One request and its response on `stream`, judged against the check.
async fn exchange(stream: BoxStream, h: &HttpCheck, target: SocketAddr, reuse: Reuse) -> Exchange {
    let request = match build_request(h, target) {
        Ok(r) => r,
        Err(e) => return Exchange::Done(fail(e), None),
    };
    let io = TokioIo::new(NoShutdown(stream));
    let (mut sender, mut conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(x) => x,
        Err(e) => return Exchange::Done(fail(format!("HTTP handshake failed: {e}")), None),
    };
    let ((result, reusable), conn_ended) = {
        let work = async {
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(e) => return (Err(hyper_outcome(&e, "")), false),
            };
            let status = response.status().as_u16();
            let bad_status = (!h.expect_status.contains(status))
                .then(|| fail(format!("status {status} not in {}", h.expect_status)));
            let want_body = h.expect_body.is_some() || h.expect_body_regex.is_some();
            if reuse == Reuse::Close && (bad_status.is_some() || !want_body) {
                let verdict = bad_status.unwrap_or(ProbeOutcome::Pass { weight: None });
                return (Ok(verdict), false);
            }
            // Read the body: to judge it, and, to keep the connection, to its end (the bytes
            // are kept only when judged).
            let keep_alive = keep_alive(&response);
            let mut body = response.into_body();
            let mut bytes = Vec::new();
            let mut read = 0;
            let mut complete = false;
            while read < h.body_limit {
                match body.frame().await {
                    None => {
                        complete = true;
                        break;
                    }
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            let take = data.len().min(h.body_limit - read);
                            if want_body {
                                bytes.extend_from_slice(&data[..take]);
                            }
                            read += take;
                        }
                    }
                    Some(Err(e)) => {
                        return (Ok(hyper_outcome(&e, "reading the body failed: ")), false);
                    }
                }
            }
            complete = complete || hyper::body::Body::is_end_stream(&body);
            let verdict = bad_status.unwrap_or_else(|| judge_body(h, &bytes));
            (Ok(verdict), keep_alive && complete)
        };
        tokio::pin!(work);
        tokio::select! {
            biased;
            r = &mut work => (r, false),
            // The connection ended first (the server closed it): the exchange now resolves
            // with whatever was received.
            _ = &mut conn => (work.await, true),
        }
    };
    drop(sender);
    match result {
        Err(outcome) => Exchange::Closed(outcome),
        Ok(outcome) if !reusable || conn_ended => Exchange::Done(outcome, None),
        Ok(outcome) => {
            // The whole response was read and nothing more: the stream is at a message
            // boundary and can carry the next request without hyper's state.
            let parts = conn.into_parts();
            let kept = parts
                .read_buf
                .is_empty()
                .then(|| Kept(parts.io.into_inner().0));
            Exchange::Done(outcome, kept)
        }
    }
}

/// The request of an HTTP(S) check. With `reuse_connection` it asks to keep the connection
/// (HTTP/1.1's default); otherwise it says `Connection: close`.
fn build_request(h: &HttpCheck, target: SocketAddr) -> Result<http::Request<Empty<Bytes>>, String> {
    let method = match h.method {
        HttpMethod::Get => http::Method::GET,
        HttpMethod::Head => http::Method::HEAD,
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(h.path.as_str())
        .header(http::header::HOST, host_header(h, target))
        .header(
            http::header::USER_AGENT,
            concat!("lvs-hc/", env!("CARGO_PKG_VERSION")),
        );
    if !h.reuse_connection {
        request = request.header(http::header::CONNECTION, "close");
    }
    request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))
}

/// The Host header: the check's `host`, else the server's address, with its port unless it is
/// the scheme's default.
fn host_header(h: &HttpCheck, target: SocketAddr) -> String {
    if let Some(host) = &h.host {
        return host.clone();
    }
    let ip = match target.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let default_port = if h.tls.is_some() { 443 } else { 80 };
    if target.port() == default_port {
        ip
    } else {
        format!("{ip}:{}", target.port())
    }
}

/// Whether the server lets the connection stay open after `response`: HTTP/1.1 without
/// `Connection: close`. (HTTP/1.0 servers are not kept.)
fn keep_alive<B>(response: &http::Response<B>) -> bool {
    response.version() == http::Version::HTTP_11
        && !response
            .headers()
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
            })
}

/// Whether the body read so far has what the check expects.
fn judge_body(h: &HttpCheck, bytes: &[u8]) -> ProbeOutcome {
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

/// A failed exchange: a fault of this director when an I/O error under it says so, else a
/// failure of the server, its reason after `context`.
fn hyper_outcome(e: &hyper::Error, context: &str) -> ProbeOutcome {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(reason) = s.downcast_ref::<io::Error>().and_then(director_fault) {
            return ProbeOutcome::DirectorFault { reason };
        }
        source = s.source();
    }
    fail(format!("{context}{}", hyper_reason(e)))
}

fn hyper_reason(e: &hyper::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        source = s.source();
    }
    if e.is_incomplete_message() {
        return "connection closed before a complete response".into();
    }
    if e.is_parse() {
        return format!("not an HTTP response ({e})");
    }
    e.to_string()
}

/// A probe's stream without the half-close: hyper shuts the write side down once a
/// `Connection: close` response is read, which costs a FIN and, on the server, its handling, for
/// a connection about to be reset anyway (see [`TokioConnect`](super::TokioConnect)). Reads and writes pass through.
struct NoShutdown<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for NoShutdown<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoShutdown<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_default_to_the_address() {
        let h = |host: Option<&str>| HttpCheck {
            method: HttpMethod::Get,
            path: "/".into(),
            host: host.map(str::to_string),
            expect_status: lvs_hc_core::config::StatusSet::new(vec![(200, 299)]),
            expect_body: None,
            expect_body_regex: None,
            body_limit: 10,
            tls: None,
            reuse_connection: false,
        };
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
}
