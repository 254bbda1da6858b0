//! The probes: http, https, tcp and exec, each bounded by its timeout over the whole exchange.
//!
//! Network probes reach servers through a [`Connect`] implementation, so the daemon uses real
//! sockets ([`TokioConnect`]) and the simulator uses turmoil's. HTTP runs on hyper's connection
//! API; TLS on tokio-rustls with the `ring` provider; exec checks in [`exec`].
//!
//! An error that says something about this director rather than the server (no descriptors, no
//! memory, no local port or source address, a program that cannot start) is no verdict:
//! [`ProbeOutcome::DirectorFault`], never a failure ([`io_outcome`]).

pub mod exec;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use lvs_hc_core::config::{Check, CheckKind, HttpCheck, HttpMethod, TlsSettings};
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Opens TCP connections for probes.
pub trait Connect: Clone + 'static {
    /// The connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;

    /// Connects to `target`, from `source` when given.
    fn connect(
        &self,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> impl Future<Output = io::Result<Self::Stream>>;
}

/// Real TCP sockets through tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioConnect;

impl Connect for TokioConnect {
    type Stream = tokio::net::TcpStream;

    async fn connect(
        &self,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> io::Result<Self::Stream> {
        // Everything before the connect itself is the director's business: its errors are
        // faults of the director whatever their errno.
        let socket = match target {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(|e| DirectorError::wrap("cannot open a socket", &e))?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| DirectorError::wrap(&format!("cannot bind to source {ip}"), &e))?;
        }
        // A probe's connection ends with a reset, as HAProxy's checks do: no FIN exchange,
        // and no TIME_WAIT socket left on the director for each of thousands of probes.
        // (Deprecated in tokio because a non-zero linger blocks the thread in close; a zero
        // linger resets at once and never blocks.)
        #[allow(deprecated)]
        socket
            .set_linger(Some(std::time::Duration::ZERO))
            .map_err(|e| DirectorError::wrap("cannot set SO_LINGER", &e))?;
        socket.connect(target).await
    }
}

/// An error of this director, not of the server, carried inside an [`io::Error`] so that a
/// [`Connect`] implementation can say so (a failed `bind` to the check's `source`, a socket
/// that cannot be opened). Probes turn it into [`ProbeOutcome::DirectorFault`].
#[derive(Debug)]
pub struct DirectorError(pub String);

impl DirectorError {
    /// `context: what the OS said`, as an [`io::Error`] of the same kind.
    pub fn wrap(context: &str, e: &io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            DirectorError(format!("{context}: {}", errno_text(e))),
        )
    }
}

impl std::fmt::Display for DirectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DirectorError {}

/// What an error of a probe's socket means: a fault of this director (see [`director_fault`]),
/// or a failure of the server.
pub fn io_outcome(e: &io::Error) -> ProbeOutcome {
    match director_fault(e) {
        Some(reason) => ProbeOutcome::DirectorFault { reason },
        None => fail(io_reason(e)),
    }
}

/// Why `e` is a fault of this director rather than the server, if it is: a [`DirectorError`],
/// or no descriptors (EMFILE, ENFILE), no memory (ENOMEM, ENOBUFS), no local address or port
/// (EADDRNOTAVAIL).
pub fn director_fault(e: &io::Error) -> Option<String> {
    if let Some(d) = e.get_ref().and_then(|i| i.downcast_ref::<DirectorError>()) {
        return Some(d.0.clone());
    }
    let errno = e.raw_os_error()?;
    matches!(
        errno,
        libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::EADDRNOTAVAIL
    )
    .then(|| errno_text(e))
}

/// The OS's words and the errno's name: `Too many open files (EMFILE)`.
pub fn errno_text(e: &io::Error) -> String {
    let Some(errno) = e.raw_os_error() else {
        return e.to_string();
    };
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let name = match errno {
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOMEM => "ENOMEM",
        libc::ENOBUFS => "ENOBUFS",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EAGAIN => "EAGAIN",
        libc::EINVAL => "EINVAL",
        _ => return format!("{text} (errno {errno})"),
    };
    format!("{text} ({name})")
}

/// How late a timer may fire before lvs-hc counts itself, not the server, as the slow one.
const LATE_TOLERANCE: Duration = Duration::from_millis(100);

/// Runs probes. Cheap to clone; TLS settings are built once per distinct check.
#[derive(Clone)]
pub struct Prober<C: Connect> {
    connect: C,
    tls: Arc<Mutex<HashMap<TlsSettings, Arc<rustls::ClientConfig>>>>,
    pool: Rc<RefCell<Pool>>,
}

/// The connections kept between probes of checks with `reuse_connection`: one per target and
/// check, out of the pool while a probe uses it. A connection idle longer than [`MAX_IDLE`] is
/// not reused (a stateful firewall or NAT between director and server may have forgotten it
/// and would drop the request silently). Every [`Pool::SWEEP_EVERY`], at the start of any
/// probe, connections idle longer than that, or longer than twice their check's interval plus
/// its timeout (their server or check left the configuration, or stopped reusing), are closed.
#[derive(Default)]
struct Pool {
    idle: HashMap<PoolKey, (Kept, tokio::time::Instant)>,
    swept: Option<tokio::time::Instant>,
}

/// The longest a kept connection may sit idle and still carry a probe.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// A target and the very check (not an equal one) that probes it. The engine hands out the
/// same `Arc` for every probe of a check, so comparing addresses is exact and cheap; the key
/// holds the `Arc`, so its address cannot be reused while the entry lives. A reload that
/// rebuilds the check starts a fresh connection.
#[derive(Clone)]
struct PoolKey(SocketAddr, Arc<Check>);

impl PartialEq for PoolKey {
    fn eq(&self, other: &PoolKey) -> bool {
        self.0 == other.0 && Arc::ptr_eq(&self.1, &other.1)
    }
}

impl Eq for PoolKey {}

impl std::hash::Hash for PoolKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        Arc::as_ptr(&self.1).hash(state);
    }
}

impl Pool {
    /// How often the pool looks for connections nobody will use again.
    const SWEEP_EVERY: Duration = Duration::from_secs(10);

    fn take(&mut self, key: &PoolKey) -> Option<Kept> {
        let (c, since) = self.idle.remove(key)?;
        (since.elapsed() <= MAX_IDLE).then_some(c)
    }

    fn put(&mut self, key: PoolKey, c: Kept) {
        self.idle.insert(key, (c, tokio::time::Instant::now()));
    }

    /// Closes the connections nobody will use again, at most every [`Self::SWEEP_EVERY`]. They
    /// close in a fixed order (by address, then age), as each close sends a packet and the
    /// simulator's network draws its randomness in sending order.
    fn sweep(&mut self) {
        if self.idle.is_empty() {
            return;
        }
        let now = tokio::time::Instant::now();
        let swept = *self.swept.get_or_insert(now);
        if now.duration_since(swept) < Self::SWEEP_EVERY {
            return;
        }
        self.swept = Some(now);
        let mut expired: Vec<(SocketAddr, tokio::time::Instant, PoolKey)> = self
            .idle
            .iter()
            .filter(|(PoolKey(_, check), (_, since))| {
                let t = check.timing;
                let unused = 2 * t.interval.max(t.failing_interval) + t.timeout;
                now.duration_since(*since) > unused.min(MAX_IDLE)
            })
            .map(|(key, (_, since))| (key.0, *since, key.clone()))
            .collect();
        expired.sort_by_key(|(addr, since, _)| (*addr, *since));
        for (_, _, key) in expired {
            self.idle.remove(&key);
        }
    }
}

impl<C: Connect> Prober<C> {
    /// Probes through `connect`.
    pub fn new(connect: C) -> Prober<C> {
        Prober {
            connect,
            tls: Arc::default(),
            pool: Rc::default(),
        }
    }

    /// Runs one probe to its verdict. Never takes much longer than the check's timeout.
    ///
    /// When the timeout fires, a reply that already arrived still counts (the probe is polled
    /// once more first, after the runtime has taken in pending socket events). If the timer
    /// itself fired late, lvs-hc was starved of CPU, so the server did not get a fair timeout:
    /// the result is inconclusive, not a failure.
    pub async fn probe(&self, req: &ProbeRequest) -> ProbeOutcome {
        self.pool.borrow_mut().sweep();
        let timeout = req.timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let work = self.run(req);
        tokio::pin!(work);
        tokio::select! {
            biased;
            outcome = &mut work => outcome,
            _ = tokio::time::sleep_until(deadline) => {
                // How late the timer fired: lvs-hc's own delay, not the yield's below.
                let late = tokio::time::Instant::now().saturating_duration_since(deadline);
                // A last chance, as an answer already waiting in the socket is an answer: let
                // the runtime take in the socket events that arrived by now (a yield lasts one
                // turn of its I/O driver), then poll the probe once more, outside tokio's
                // cooperative budget (with its budget spent, a task sees a ready socket as
                // empty).
                tokio::task::yield_now().await;
                let last = tokio::task::unconstrained(work.as_mut());
                if let Some(outcome) = futures_util::FutureExt::now_or_never(last) {
                    return outcome;
                }
                if late > LATE_TOLERANCE {
                    ProbeOutcome::Inconclusive {
                        reason: format!("lvs-hc ran {} late: no verdict", format_duration(round_ms(late))),
                    }
                } else {
                    ProbeOutcome::Fail { reason: format!("timed out after {}", format_duration(timeout)) }
                }
            }
        }
    }

    async fn run(&self, req: &ProbeRequest) -> ProbeOutcome {
        let check: &Check = &req.check;
        let target = req.target();
        match &check.kind {
            CheckKind::Tcp => match self.connect.connect(target, check.source).await {
                Ok(_) => ProbeOutcome::Pass { weight: None },
                Err(e) => io_outcome(&e),
            },
            CheckKind::Http(h) => self.http(req, h, false).await,
            CheckKind::Https(h) => self.http(req, h, true).await,
            // Boxed: a child process's state is large and only exec probes need it.
            CheckKind::Exec(e) => Box::pin(exec::exec(e, target, req.timeout())).await,
        }
    }

    /// An HTTP(S) probe: on the server's kept connection when the check reuses connections and
    /// one is open, else on a fresh one.
    async fn http(&self, req: &ProbeRequest, h: &HttpCheck, tls: bool) -> ProbeOutcome {
        let target = req.target();
        let key = h
            .reuse_connection
            .then(|| PoolKey(target, req.check.clone()));
        if let Some(key) = &key {
            let kept = self.pool.borrow_mut().take(key);
            if let Some(Kept(stream)) = kept {
                match exchange(stream, h, target, true).await {
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
        let stream = match self.open(req, h, tls).await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        match exchange(stream, h, target, key.is_some()).await {
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
        tls: bool,
    ) -> Result<BoxStream, ProbeOutcome> {
        let target = req.target();
        let stream = match self.connect.connect(target, req.check.source).await {
            Ok(s) => s,
            Err(e) => return Err(io_outcome(&e)),
        };
        if !tls {
            return Ok(Box::new(stream));
        }
        let settings = h.tls.clone().unwrap_or(TlsSettings {
            sni: None,
            verify: true,
            ca_file: None,
        });
        // A CA file that cannot be read is this director's problem, not the server's.
        let config = match self.tls_config(&settings) {
            Ok(c) => c,
            Err(e) => {
                return Err(ProbeOutcome::DirectorFault {
                    reason: format!("TLS setup failed: {e}"),
                })
            }
        };
        let name = server_name(&settings, h, target);
        let connector = tokio_rustls::TlsConnector::from(config);
        // Boxed: the handshake's state is large and only https probes need it.
        match Box::pin(connector.connect(name, stream)).await {
            Ok(tls) => Ok(Box::new(tls)),
            Err(e) => Err(match director_fault(&e) {
                Some(reason) => ProbeOutcome::DirectorFault { reason },
                None => fail(format!("TLS handshake failed: {e}")),
            }),
        }
    }

    fn tls_config(&self, settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut cache = self.tls.lock().expect("TLS cache lock");
        if let Some(c) = cache.get(settings) {
            return Ok(c.clone());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = if settings.verify {
            let mut roots = rustls::RootCertStore::empty();
            for cert in system_roots() {
                let _ = roots.add(cert.clone());
            }
            if let Some(path) = &settings.ca_file {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("cannot read ca_file {path}: {e}"))?;
                for cert in certs {
                    roots
                        .add(cert.map_err(|e| format!("ca_file {path}: {e}"))?)
                        .map_err(|e| e.to_string())?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        };
        let config = Arc::new(config);
        cache.insert(settings.clone(), config.clone());
        Ok(config)
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

fn fail(reason: impl Into<String>) -> ProbeOutcome {
    ProbeOutcome::Fail {
        reason: reason.into(),
    }
}

/// The operator's words for a socket error.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::TimedOut => "connection timed out".into(),
        io::ErrorKind::HostUnreachable => "no route to host".into(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".into(),
        io::ErrorKind::AddrNotAvailable => "source address not available".into(),
        _ => e.to_string(),
    }
}

fn system_roots() -> &'static [rustls_pki_types::CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<rustls_pki_types::CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

fn server_name(
    settings: &TlsSettings,
    h: &HttpCheck,
    target: SocketAddr,
) -> rustls_pki_types::ServerName<'static> {
    let name = settings
        .sni
        .clone()
        .or_else(|| h.host.clone().map(|h| strip_port(&h)));
    match name.and_then(|n| rustls_pki_types::ServerName::try_from(n).ok()) {
        Some(n) => n,
        None => rustls_pki_types::ServerName::IpAddress(target.ip().into()),
    }
}

fn strip_port(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h.to_string(),
        _ => host.to_string(),
    }
}

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

/// A probe's byte stream, plain or TLS, behind one type so kept connections of both kinds
/// share the pool.
trait ProbeStream: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> ProbeStream for T {}

type BoxStream = Box<dyn ProbeStream>;

/// A stream kept between probes, with the HTTP state of the last exchange dropped: an idle
/// keep-alive connection holds no more than its socket. Whether the server closed it while it
/// was idle shows at the next exchange, which hyper starts with a read: a closed connection
/// ends before any response, and the probe then connects afresh (see [`Exchange::Closed`]).
struct Kept(BoxStream);

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

/// One request and its response on `stream`, judged against the check. When `keep` is set,
/// the body is read to its end (within `body_limit`) so the stream can be kept.
async fn exchange(stream: BoxStream, h: &HttpCheck, target: SocketAddr, keep: bool) -> Exchange {
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
            if !keep && (bad_status.is_some() || !want_body) {
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
/// a connection about to be reset anyway (see [`TokioConnect`]). Reads and writes pass through.
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

/// Accepts any certificate: `verify = false`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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

    fn check_every(interval: &str) -> Arc<Check> {
        let text = format!(
            "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntype = \"http\"\n\
             reuse_connection = true\ninterval = \"{interval}\"\ntimeout = \"1s\"\n\
             [[service.server]]\naddress = \"10.0.0.2:80\"\n"
        );
        let config = lvs_hc_core::Config::from_toml(&text, "pool-test").unwrap();
        config.services[0].servers[0].checks[0].clone()
    }

    fn idle_conn() -> Kept {
        let (stream, _peer) = tokio::io::duplex(64);
        Kept(Box::new(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn kept_connections_nobody_probes_any_more_are_closed() {
        let target = |last: u8| SocketAddr::from(([10, 0, 0, last], 80));
        let (every_1s, every_30s) = (check_every("1s"), check_every("30s"));
        let mut pool = Pool::default();
        pool.put(PoolKey(target(2), every_1s.clone()), idle_conn());
        pool.sweep(); // the first sweep only starts the clock
        tokio::time::advance(Duration::from_secs(5)).await;
        pool.put(PoolKey(target(3), every_30s.clone()), idle_conn());
        pool.put(PoolKey(target(5), every_30s.clone()), idle_conn());
        tokio::time::advance(Duration::from_secs(6)).await;
        pool.put(PoolKey(target(4), every_1s.clone()), idle_conn());
        // 11 s on: the 1 s check's first connection is past 2 × 1 s + 1 s and goes; the 30 s
        // check's are not.
        pool.sweep();
        let mut kept: Vec<SocketAddr> = pool.idle.keys().map(|k| k.0).collect();
        kept.sort();
        assert_eq!(kept, vec![target(3), target(4), target(5)]);
        assert!(pool.take(&PoolKey(target(3), every_30s.clone())).is_some());
        assert!(
            pool.take(&PoolKey(target(4), every_30s.clone())).is_none(),
            "keyed by check too"
        );
        // An equal check rebuilt by a reload is another check.
        assert!(pool.take(&PoolKey(target(4), check_every("1s"))).is_none());
        assert!(pool.take(&PoolKey(target(4), every_1s)).is_some());
        // Idle for more than MAX_IDLE, a connection is not reused, even before a sweep.
        tokio::time::advance(MAX_IDLE).await;
        assert!(pool.take(&PoolKey(target(5), every_30s)).is_none());
    }
}
