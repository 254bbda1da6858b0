//! The probes: http, https, tcp (connect, or send/expect), udp, dns, smtp, ping, grpc, exec
//! and agent, each bounded by its timeout over the whole exchange.
//!
//! Network probes reach servers through a [`Connect`] implementation, so the daemon uses real
//! sockets ([`TokioConnect`]) and the simulator uses turmoil's. This file has what every probe
//! shares: connecting, the timeout, and telling the director's faults from the server's
//! failures. HTTP/1.1 runs on `httparse` (`http.rs`), on connections kept between probes
//! (`pool.rs`) or fresh; TLS on tokio-rustls with the `ring` provider (`tls.rs`); exec checks in
//! [`exec`]; tcp send/expect in `tcp.rs`, dns (messages by `hickory-proto`) in `dns.rs`, udp in
//! `udp.rs`; SMTP in [`smtp`]. Pings ([`ping`]) use the kernel's ICMP sockets directly, not
//! [`Connect`]: they have no simulated counterpart.
//! gRPC health checks on hyper's HTTP/2 client (`grpc.rs`). Agent checks (`agent.rs`) read
//! one line in HAProxy's agent protocol; an agent lvs-hc cannot hear is no verdict.
//!
//! An error that says something about this director rather than the server (no descriptors, no
//! memory, no local port or source address, a program that cannot start) is no verdict:
//! [`ProbeOutcome::DirectorFault`], never a failure ([`io_outcome`]).

mod agent;
mod dns;
pub mod exec;
mod grpc;
mod http;
pub mod ping;
mod pool;
pub mod smtp;
mod tcp;
mod tls;
mod udp;

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

/// Opens TCP connections and UDP sockets for probes. `Send`, so that probe threads can each
/// have one (the streams and sockets it opens need not be).
pub trait Connect: Clone + Send + 'static {
    /// The connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + 'static;
    /// A UDP socket aimed at one target.
    type Datagram: Datagram;

    /// Connects to `target`, from `source` when given.
    fn connect(
        &self,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> impl Future<Output = io::Result<Self::Stream>>;

    /// Opens a UDP socket that sends to `target` and hears only from it, bound to `source`
    /// when given.
    fn open_datagram(
        &self,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> impl Future<Output = io::Result<Self::Datagram>>;
}

/// A UDP socket aimed at one target (see [`Connect::open_datagram`]).
pub trait Datagram: 'static {
    /// Sends one datagram to the target.
    fn send(&self, datagram: &[u8]) -> impl Future<Output = io::Result<()>>;

    /// Receives the next datagram from the target into `buf` (the excess of a longer one is
    /// lost); its length. An ICMP error the target's host sent back about an earlier datagram
    /// is an error here: port unreachable is [`io::ErrorKind::ConnectionRefused`].
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>>;
}

/// Real TCP sockets through tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioConnect;

impl Connect for TokioConnect {
    type Stream = tokio::net::TcpStream;
    type Datagram = tokio::net::UdpSocket;

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

    async fn open_datagram(
        &self,
        target: SocketAddr,
        source: Option<IpAddr>,
    ) -> io::Result<Self::Datagram> {
        let local = match (source, target) {
            (Some(ip), _) => SocketAddr::new(ip, 0),
            (None, SocketAddr::V4(_)) => SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
            (None, SocketAddr::V6(_)) => SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(|e| match source {
                Some(ip) => DirectorError::wrap(&format!("cannot bind to source {ip}"), &e),
                None => DirectorError::wrap("cannot open a UDP socket", &e),
            })?;
        // Connected: the kernel drops datagrams from anyone else, and reports the target's
        // ICMP errors (port unreachable: ECONNREFUSED) on this socket.
        socket.connect(target).await?;
        Ok(socket)
    }
}

impl Datagram for tokio::net::UdpSocket {
    async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        tokio::net::UdpSocket::send(self, datagram).await.map(drop)
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        tokio::net::UdpSocket::recv(self, buf).await
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
        let outcome = self.probe_once(req).await;
        match req.check.kind {
            // Agents are advisory: what would fail another check is no verdict from an agent.
            CheckKind::Agent(_) => agent::advisory(outcome),
            _ => outcome,
        }
    }

    async fn probe_once(&self, req: &ProbeRequest) -> ProbeOutcome {
        self.pool.borrow_mut().sweep();
        let timeout = req.timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let seen = Seen::default();
        let work = self.run(req, deadline, &seen);
        tokio::pin!(work);
        tokio::select! {
            biased;
            outcome = &mut work => outcome,
            _ = tokio::time::sleep_until(deadline) => {
                // What the probe received, quoted for the reason.
                let got = || {
                    let got = seen.borrow();
                    if got.is_empty() { String::new() } else { format!(" (got {})", tcp::quote(&got)) }
                };
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
                } else if let CheckKind::Agent(_) = req.check.kind {
                    ProbeOutcome::Fail { reason: format!("no reply within {}{}", format_duration(timeout), got()) }
                } else if req.check.kind == CheckKind::Ping {
                    ProbeOutcome::Fail { reason: format!("no echo reply within {}", format_duration(timeout)) }
                } else {
                    ProbeOutcome::Fail { reason: format!("timed out after {}{}", format_duration(timeout), got()) }
                }
            }
        }
    }

    /// The probe itself; `deadline` is when [`Prober::probe`] gives up on it (a udp check
    /// whose silence passes waits for a reply until then).
    async fn run(
        &self,
        req: &ProbeRequest,
        deadline: tokio::time::Instant,
        seen: &Seen,
    ) -> ProbeOutcome {
        let check: &Check = &req.check;
        let target = req.target();
        match &check.kind {
            CheckKind::Tcp(t) => match self.connect.connect(target, check.source).await {
                Ok(stream) => match &t.exchange {
                    None => ProbeOutcome::Pass { weight: None },
                    Some(x) => tcp::exchange(stream, x, t.reply_limit, seen).await,
                },
                Err(e) => io_outcome(&e),
            },
            CheckKind::Dns(d) => self.dns(req, d).await,
            CheckKind::Udp(u) => udp::udp(&self.connect, req, u, deadline).await,
            CheckKind::Http(h) => self.http(req, h, Transport::Plain).await,
            CheckKind::Https(h) => self.http(req, h, Transport::Tls).await,
            CheckKind::Smtp(m) => match self.connect.connect(target, check.source).await {
                // Boxed: the dialogue's state (with a TLS handshake's) is large.
                Ok(stream) => Box::pin(smtp::smtp(stream, m, target, &self.tls)).await,
                Err(e) => io_outcome(&e),
            },
            // Real ICMP sockets whatever `Connect` is: the simulator refuses ping checks.
            CheckKind::Ping => ping::ping(target.ip(), check.source, req.timeout()).await,
            // Boxed: a child process's state is large and only exec probes need it.
            CheckKind::Exec(e) => Box::pin(exec::exec(e, target, req.timeout())).await,
            // Boxed: an HTTP/2 client's state is large and only grpc probes need it.
            CheckKind::Grpc(g) => Box::pin(self.grpc(g, target, check.source)).await,
            CheckKind::Agent(a) => match self.connect.connect(target, check.source).await {
                Ok(stream) => agent::agent(stream, a, seen).await,
                Err(e) => io_outcome(&e),
            },
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

/// What a probe received so far, for the reason of a probe that times out after a reply that
/// did not satisfy it (tcp send/expect reads its reply into it); quoted only then.
type Seen = RefCell<Vec<u8>>;

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
