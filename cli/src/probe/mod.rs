//! The probes: http, https, tcp, exec and grpc, each bounded by its timeout over the whole
//! exchange.
//!
//! Network probes reach servers through a [`Connect`] implementation, so the daemon uses real
//! sockets ([`TokioConnect`]) and the simulator uses turmoil's. This file has what every probe
//! shares: connecting, the timeout, and telling the director's faults from the server's
//! failures. HTTP/1.1 runs on `httparse` (`http.rs`), on connections kept between probes
//! (`pool.rs`) or fresh; TLS on tokio-rustls with the `ring` provider (`tls.rs`); exec checks in
//! [`exec`]; gRPC health checks on hyper's HTTP/2 client (`grpc.rs`).
//!
//! An error that says something about this director rather than the server (no descriptors, no
//! memory, no local port or source address, a program that cannot start) is no verdict:
//! [`ProbeOutcome::DirectorFault`], never a failure ([`io_outcome`]).

pub mod exec;
mod grpc;
mod http;
mod pool;
mod tls;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use lvs_hc_core::config::{Check, CheckKind, GrpcCheck};
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncRead, AsyncWrite};

use self::http::Transport;
use self::pool::Pool;
use self::tls::TlsConfigs;

/// Opens TCP connections for probes. `Send`, so that probe threads can each have one (the
/// streams it opens need not be).
pub trait Connect: Clone + Send + 'static {
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
    tls: Arc<TlsConfigs>,
    pool: Rc<RefCell<Pool>>,
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
            CheckKind::Http(h) => self.http(req, h, Transport::Plain).await,
            CheckKind::Https(h) => self.http(req, h, Transport::Tls).await,
            // Boxed: a child process's state is large and only exec probes need it.
            CheckKind::Exec(e) => Box::pin(exec::exec(e, target, req.timeout())).await,
            // Boxed: an HTTP/2 client's state is large and only grpc probes need it.
            CheckKind::Grpc(g) => Box::pin(self.grpc(g, target, check.source)).await,
        }
    }

    /// A grpc probe: a fresh connection, TLS when asked for, then the health check.
    async fn grpc(
        &self,
        g: &GrpcCheck,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> ProbeOutcome {
        let stream = match self.connect.connect(target, source).await {
            Ok(s) => s,
            Err(e) => return io_outcome(&e),
        };
        let stream: pool::BoxStream = match &g.tls {
            None => Box::new(stream),
            Some(settings) => {
                let tls = self
                    .tls
                    .handshake_h2(stream, settings, g.authority.as_deref(), target)
                    .await;
                match tls {
                    Ok(s) => s,
                    Err(outcome) => return outcome,
                }
            }
        };
        grpc::check(stream, g, target).await
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
