//! The probes: http, https, tcp and exec, each bounded by its timeout over the whole exchange.
//!
//! Network probes reach servers through a [`Connect`] implementation, so the daemon uses real
//! sockets ([`TokioConnect`]) and the simulator uses turmoil's. HTTP runs on hyper's connection
//! API; TLS on tokio-rustls with the `ring` provider.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use lvs_hc_core::config::{Check, CheckKind, ExecCheck, HttpCheck, HttpMethod, TlsSettings};
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
        let socket = match target {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        // A probe's connection ends with a reset, as HAProxy's checks do: no FIN exchange,
        // and no TIME_WAIT socket left on the director for each of thousands of probes.
        // (Deprecated in tokio because a non-zero linger blocks the thread in close; a zero
        // linger resets at once and never blocks.)
        #[allow(deprecated)]
        socket.set_linger(Some(std::time::Duration::ZERO))?;
        socket.connect(target).await
    }
}

/// How late a timer may fire before lvs-hc counts itself, not the server, as the slow one.
const LATE_TOLERANCE: Duration = Duration::from_millis(100);

/// Runs probes. Cheap to clone; TLS settings are built once per distinct check.
#[derive(Clone)]
pub struct Prober<C: Connect> {
    connect: C,
    tls: Arc<Mutex<HashMap<TlsSettings, Arc<rustls::ClientConfig>>>>,
}

impl<C: Connect> Prober<C> {
    /// Probes through `connect`.
    pub fn new(connect: C) -> Prober<C> {
        Prober {
            connect,
            tls: Arc::default(),
        }
    }

    /// Runs one probe to its verdict. Never takes much longer than the check's timeout.
    ///
    /// When the timeout fires, a reply that already arrived still counts (the probe is polled
    /// once more first). If the timer itself fired late, lvs-hc was starved of CPU, so the
    /// server did not get a fair timeout: the result is inconclusive, not a failure.
    pub async fn probe(&self, req: &ProbeRequest) -> ProbeOutcome {
        let timeout = req.timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let work = self.run(req);
        tokio::pin!(work);
        tokio::select! {
            biased;
            outcome = &mut work => outcome,
            _ = tokio::time::sleep_until(deadline) => {
                // Give the probe one last poll: data waiting in the socket is an answer.
                if let Some(outcome) = futures_util::FutureExt::now_or_never(&mut work) {
                    return outcome;
                }
                let late = tokio::time::Instant::now().saturating_duration_since(deadline);
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
                Err(e) => fail(io_reason(&e)),
            },
            CheckKind::Http(h) => {
                let stream = match self.connect.connect(target, check.source).await {
                    Ok(s) => s,
                    Err(e) => return fail(io_reason(&e)),
                };
                http_exchange(stream, h, target).await
            }
            CheckKind::Https(h) => {
                let stream = match self.connect.connect(target, check.source).await {
                    Ok(s) => s,
                    Err(e) => return fail(io_reason(&e)),
                };
                let settings = h.tls.clone().unwrap_or(TlsSettings {
                    sni: None,
                    verify: true,
                    ca_file: None,
                });
                let config = match self.tls_config(&settings) {
                    Ok(c) => c,
                    Err(e) => return fail(format!("TLS setup failed: {e}")),
                };
                let name = server_name(&settings, h, target);
                let connector = tokio_rustls::TlsConnector::from(config);
                match connector.connect(name, stream).await {
                    Ok(tls) => http_exchange(tls, h, target).await,
                    Err(e) => fail(format!("TLS handshake failed: {e}")),
                }
            }
            CheckKind::Exec(e) => exec(e, target, req.timeout()).await,
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

async fn http_exchange<S>(stream: S, h: &HttpCheck, target: SocketAddr) -> ProbeOutcome
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let stream = TokioIo::new(NoShutdown(stream));
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(stream).await {
        Ok(x) => x,
        Err(e) => return fail(format!("HTTP handshake failed: {e}")),
    };
    let method = match h.method {
        HttpMethod::Get => http::Method::GET,
        HttpMethod::Head => http::Method::HEAD,
    };
    let request = http::Request::builder()
        .method(method)
        .uri(h.path.as_str())
        .header(http::header::HOST, host_header(h, target))
        .header(
            http::header::USER_AGENT,
            concat!("lvs-hc/", env!("CARGO_PKG_VERSION")),
        )
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot build the request: {e}")),
    };
    let exchange = async move {
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => return fail(hyper_reason(&e)),
        };
        let status = response.status().as_u16();
        if !h.expect_status.contains(status) {
            return fail(format!("status {status} not in {}", h.expect_status));
        }
        if h.expect_body.is_none() && h.expect_body_regex.is_none() {
            return ProbeOutcome::Pass { weight: None };
        }
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while bytes.len() < h.body_limit {
            match body.frame().await {
                None => break,
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = h.body_limit - bytes.len();
                        bytes.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => {
                    return fail(format!("reading the body failed: {}", hyper_reason(&e)))
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
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
    };
    tokio::pin!(exchange);
    tokio::pin!(conn);
    tokio::select! {
        biased;
        outcome = &mut exchange => outcome,
        // The connection ended first (the server closed it): the exchange now resolves with
        // whatever was received.
        _ = &mut conn => exchange.await,
    }
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

/// Runs an exec check: the argv with `{ip}` and `{port}` replaced, no shell, in its own
/// process group, which is killed whole at the timeout.
async fn exec(check: &ExecCheck, target: SocketAddr, timeout: Duration) -> ProbeOutcome {
    let ip = target.ip().to_string();
    let port = target.port().to_string();
    let argv: Vec<String> = check
        .argv
        .iter()
        .map(|a| a.replace("{ip}", &ip).replace("{port}", &port))
        .collect();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("LVS_HC_IP", &ip)
        .env("LVS_HC_PORT", &port)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot run {}: {e}", argv[0])),
    };
    let pgid = child.id();
    let guard = KillGroup(pgid);
    let out = tokio::time::timeout(timeout, child.wait_with_output()).await;
    let out = match out {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return fail(format!("waiting for {} failed: {e}", argv[0])),
        // The guard kills the whole group as it drops.
        Err(_) => return fail(format!("timed out after {}", format_duration(timeout))),
    };
    drop(guard);
    if !out.status.success() {
        use std::os::unix::process::ExitStatusExt;
        return fail(match (out.status.code(), out.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "failed".to_string(),
        });
    }
    let weight = if check.dynamic_weight {
        parse_weight(&out.stdout)
    } else {
        None
    };
    ProbeOutcome::Pass { weight }
}

/// `weight=N` (0 to 65535) on the last non-empty line of output.
pub fn parse_weight(stdout: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let value = last.trim().strip_prefix("weight=")?;
    value.trim().parse::<u32>().ok().filter(|w| *w <= 65535)
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

/// Kills a process group when dropped (a timed-out exec check and all its children).
struct KillGroup(Option<u32>);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: kill(2) with a negative pid signals the group; no memory is involved.
            unsafe {
                libc::kill(-(pgid as i32), libc::SIGKILL);
            }
        }
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
    fn weights_come_from_the_last_line() {
        assert_eq!(parse_weight(b"loading\nweight=7\n"), Some(7));
        assert_eq!(parse_weight(b"weight=7\nok\n"), None);
        assert_eq!(parse_weight(b"weight=70000\n"), None);
        assert_eq!(parse_weight(b""), None);
    }

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
