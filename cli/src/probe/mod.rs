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
//! A probe through the virtual address (`via_vip`) goes to the VIP from a socket carrying the
//! mark of lvs-hc's probe service for its server ([`Origin`], [`TokioConnect`]), so the kernel
//! forwards it as it forwards clients; when it fails, [`Prober::probe`] asks the server's own
//! address too, to say which of the two is broken.
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
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lvs_hc_core::config::{Check, CheckKind, GrpcCheck, ViaVip};
use lvs_hc_core::time::format_duration;
use lvs_hc_core::Forward;
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

    /// Connects to `target` from `origin` (its source address, its firewall mark).
    fn connect(
        &self,
        target: SocketAddr,
        origin: Origin,
    ) -> impl Future<Output = io::Result<Self::Stream>>;

    /// Opens a UDP socket that sends to `target` and hears only from it, from `origin`.
    fn open_datagram(
        &self,
        target: SocketAddr,
        origin: Origin,
    ) -> impl Future<Output = io::Result<Self::Datagram>>;

    /// Whether this director takes in the replies to probes through the virtual address sent
    /// from `origin` to the VIP `target`; `Err` says why not (its settings drop them). Asked
    /// only after such a probe failed while the server's own address answered: the fault is
    /// then the director's, not every server's.
    fn accepts_via_replies(&self, target: SocketAddr, origin: Origin) -> Result<(), String> {
        let _ = (target, origin);
        Ok(())
    }
}

/// Where a probe's packets leave from: the check's `source`, and for a probe through the
/// virtual address (`via_vip`), the mark that routes it to one server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The address to bind to (the check's `source`), if any.
    pub source: Option<IpAddr>,
    /// The route through the virtual address, for a `via_vip` check.
    pub via: Option<ViaRoute>,
}

/// A probe through the virtual address: its socket carries `mark`, which selects the probe
/// service of lvs-hc's own that holds only `server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViaRoute {
    /// The firewall mark (`SO_MARK`) of the socket.
    pub mark: u32,
    /// The real server the mark leads to.
    pub server: SocketAddr,
}

impl Origin {
    /// The origin of `req`'s probe: the check's `source`, and its `via` with the server.
    pub fn of(req: &ProbeRequest) -> Origin {
        Origin {
            source: req.check.source,
            via: req.check.via.map(|v| ViaRoute {
                mark: v.mark,
                server: req.server,
            }),
        }
    }
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
///
/// A probe through the virtual address (`via_vip`) carries its mark (`SO_MARK`, which needs
/// `CAP_NET_ADMIN`) from before its connect, and leaves from the check's `source` or else
/// from this director's own address toward the server ([`director_address`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioConnect;

impl Connect for TokioConnect {
    type Stream = tokio::net::TcpStream;
    type Datagram = tokio::net::UdpSocket;

    fn accepts_via_replies(&self, target: SocketAddr, origin: Origin) -> Result<(), String> {
        let Ok(Some(own)) = local_address(target, origin) else {
            return Ok(());
        };
        via_replies_accepted(own, |key| {
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{key}"))
                .ok()
                .and_then(|v| v.trim().parse().ok())
        })
    }

    async fn connect(&self, target: SocketAddr, origin: Origin) -> io::Result<Self::Stream> {
        // Everything before the connect itself is the director's business: its errors are
        // faults of the director whatever their errno.
        let socket = match target {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(|e| DirectorError::wrap("cannot open a socket", &e))?;
        if let Some(via) = origin.via {
            set_mark(&socket, via.mark)?;
        }
        if let Some(ip) = local_address(target, origin)? {
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
        origin: Origin,
    ) -> io::Result<Self::Datagram> {
        let local = match (local_address(target, origin)?, target) {
            (Some(ip), _) => SocketAddr::new(ip, 0),
            (None, SocketAddr::V4(_)) => SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
            (None, SocketAddr::V6(_)) => SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), 0),
        };
        let socket = tokio::net::UdpSocket::bind(local).await.map_err(|e| {
            if local.ip().is_unspecified() {
                DirectorError::wrap("cannot open a UDP socket", &e)
            } else {
                DirectorError::wrap(&format!("cannot bind to source {}", local.ip()), &e)
            }
        })?;
        if let Some(via) = origin.via {
            set_mark(&socket, via.mark)?;
        }
        // Connected: the kernel drops datagrams from anyone else, and reports the target's
        // ICMP errors (port unreachable: ECONNREFUSED) on this socket.
        socket.connect(target).await?;
        Ok(socket)
    }
}

/// Why a server that answers on its own address fails through `vip`, with what it most
/// likely lacks for its forwarding method (the probe's and `doctor`'s words).
pub fn not_for_vip(server: IpAddr, vip: SocketAddr, forward: Forward) -> String {
    let hint = match forward {
        Forward::Dr => "is the VIP on its lo?",
        Forward::Tun => "is the VIP on its tunl0, with ipip loaded?",
        Forward::Nat => "is a firewall on it dropping what the director forwards?",
    };
    format!("{server} answers on its own address but not for VIP {vip} ({hint})")
}

/// A [`Connect`] that may refuse probes through the virtual address: for a run whose probe
/// services are not in the kernel (a dry run keeps them in its own copy of the table; the
/// memory backend has no kernel). Sent anyway, a marked probe would meet the VIP's own
/// service instead, which balances it to any server (or none): such a probe is a fault of
/// the director, no verdict, with `blocked` as the reason.
#[derive(Clone, Copy, Debug)]
pub struct ViaGate<C> {
    /// What probes go through.
    pub inner: C,
    /// Why probes through the VIP cannot run, if they cannot.
    pub blocked: Option<&'static str>,
}

impl<C: Connect> ViaGate<C> {
    fn check(&self, origin: Origin) -> io::Result<()> {
        match (self.blocked, origin.via) {
            (Some(why), Some(_)) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                DirectorError(why.to_string()),
            )),
            _ => Ok(()),
        }
    }
}

impl<C: Connect> Connect for ViaGate<C> {
    type Stream = C::Stream;
    type Datagram = C::Datagram;

    async fn connect(&self, target: SocketAddr, origin: Origin) -> io::Result<Self::Stream> {
        self.check(origin)?;
        self.inner.connect(target, origin).await
    }

    async fn open_datagram(
        &self,
        target: SocketAddr,
        origin: Origin,
    ) -> io::Result<Self::Datagram> {
        self.check(origin)?;
        self.inner.open_datagram(target, origin).await
    }

    fn accepts_via_replies(&self, target: SocketAddr, origin: Origin) -> Result<(), String> {
        self.inner.accepts_via_replies(target, origin)
    }
}

/// The address a probe's socket binds to: the check's `source`; for a probe through the
/// virtual address without one, this director's own address toward the server; else none
/// (the kernel picks).
///
/// Why not let the kernel pick for a probe through the VIP: the VIP is an address of this
/// director, so the kernel would send the probe from the VIP itself. The real server holds
/// the VIP too (on its `lo` for DR, its `tunl0` for TUN), so its reply to the VIP is
/// delivered locally there and never comes back. A reply to this director's own address does
/// come back: its source is the VIP, one of this director's addresses, which the director
/// accepts with `accept_local = 1` and `rp_filter = 0` (`lvs-hc setup director` sets both).
fn local_address(target: SocketAddr, origin: Origin) -> io::Result<Option<IpAddr>> {
    let (None, Some(via)) = (origin.source, origin.via) else {
        return Ok(origin.source);
    };
    let own = director_address(via.server.ip())?;
    if own == target.ip() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            DirectorError(format!(
                "this director's address toward {} is the VIP {own} itself, and the server's \
                 replies to the VIP would stay on the server: set `source` on the check to \
                 another address of this director",
                via.server.ip()
            )),
        ));
    }
    Ok(Some(own))
}

/// Whether replies from the VIP to this director's address `own` get in: the reply's source
/// is the VIP, one of this director's own addresses, which the kernel takes only with
/// `accept_local` (on `all` or the interface holding `own`) and without reverse-path
/// filtering (the larger of `all` and the interface). `sysctl` reads
/// `net.ipv4.conf.<key>` (`eth0/accept_local`). IPv6 has neither check.
fn via_replies_accepted(own: IpAddr, sysctl: impl Fn(&str) -> Option<u32>) -> Result<(), String> {
    if own.is_ipv6() {
        return Ok(());
    }
    let interface = match crate::arp::interface_holding(own) {
        Ok(Some(interface)) => interface,
        // Not an address of this director any more (a route or address changed since the
        // probe left): nothing here to blame.
        Ok(None) => return Ok(()),
        // The director cannot even tell: no verdict on the server either.
        Err(e) => {
            return Err(format!(
                "cannot tell whether this director takes the replies to probes through the \
                 VIP (listing its addresses: {e})"
            ))
        }
    };
    let value = |c: &str, key: &str| sysctl(&format!("{c}/{key}"));
    let accept_local = value("all", "accept_local").unwrap_or(0) != 0
        || value(&interface, "accept_local").unwrap_or(0) != 0;
    let rp_filter = value("all", "rp_filter")
        .unwrap_or(0)
        .max(value(&interface, "rp_filter").unwrap_or(0));
    if accept_local && rp_filter == 0 {
        return Ok(());
    }
    let mut wrong = Vec::new();
    if !accept_local {
        wrong.push(format!("accept_local is 0 on {interface}"));
    }
    if rp_filter != 0 {
        wrong.push(format!("rp_filter is {rp_filter} on {interface} (or all)"));
    }
    Err(format!(
        "this director drops the replies to probes through the VIP ({}): run `lvs-hc setup \
         director`, or set net.ipv4.conf.{interface}.accept_local=1 and rp_filter=0",
        wrong.join(", ")
    ))
}

/// How long [`director_address`] trusts an address it found: a changed route or address is
/// taken up within this.
const DIRECTOR_ADDRESS_TTL: Duration = Duration::from_secs(30);

/// This director's own address toward `server`: the source the kernel picks for a packet to
/// it, found by connecting a UDP socket (a route lookup: no packet is sent). Kept for
/// [`DIRECTOR_ADDRESS_TTL`] per server, for every probe thread (the answer is the machine's,
/// not a connector's); the entries are the configured servers' at most, as expired ones go
/// whenever another is added.
pub fn director_address(server: IpAddr) -> io::Result<IpAddr> {
    static FOUND: Mutex<BTreeMap<IpAddr, (IpAddr, std::time::Instant)>> =
        Mutex::new(BTreeMap::new());
    let now = std::time::Instant::now();
    let fresh = |at: std::time::Instant| now.duration_since(at) < DIRECTOR_ADDRESS_TTL;
    if let Some((own, at)) = FOUND.lock().unwrap_or_else(|e| e.into_inner()).get(&server) {
        if fresh(*at) {
            return Ok(*own);
        }
    }
    let unspecified: IpAddr = match server {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let lookup = std::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .map_err(|e| DirectorError::wrap("cannot open a socket", &e))?;
    // Any port: a UDP connect only looks the route up. Its errors (no route to the server)
    // are the server's as much as a probe's own connect would be.
    lookup.connect(SocketAddr::new(server, 9))?;
    let own = lookup.local_addr()?.ip();
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    found.retain(|_, (_, at)| fresh(*at));
    found.insert(server, (own, now));
    Ok(own)
}

/// Gives `socket`'s packets the firewall mark `mark` (`SO_MARK`). A failure (EPERM without
/// `CAP_NET_ADMIN`) is the director's.
fn set_mark(socket: &impl AsRawFd, mark: u32) -> io::Result<()> {
    // The kernel reads the option as an unsigned int: the same bits.
    crate::socket::set_int(socket, libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int).map_err(
        |e| {
            DirectorError::wrap(
                &format!(
                    "cannot mark the probe's socket with {mark:#x} (SO_MARK needs CAP_NET_ADMIN)"
                ),
                &e,
            )
        },
    )
}

/// The firewall mark (`SO_MARK`) of `socket`, 0 for none: what [`TokioConnect`] gave a probe
/// through the virtual address.
pub fn socket_mark(socket: &impl AsRawFd) -> io::Result<u32> {
    let mut value: libc::c_uint = 0;
    let mut len = std::mem::size_of::<libc::c_uint>() as libc::socklen_t;
    // SAFETY: getsockopt(2) on a descriptor the socket owns, writing at most `len` bytes into
    // a c_uint that lives across the call.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
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

    /// Runs one probe to its verdict. Never takes much longer than the check's timeout (twice
    /// it for a failing probe through the virtual address, see below).
    ///
    /// When the timeout fires, a reply that already arrived still counts (the probe is polled
    /// once more first, after the runtime has taken in pending socket events). If the timer
    /// itself fired late, lvs-hc was starved of CPU, so the server did not get a fair timeout:
    /// the result is inconclusive, not a failure.
    ///
    /// A probe through the virtual address (`via_vip`) that fails is run once more on the
    /// server's own address ([`ProbeRequest::direct`]), naming the server as the first one did
    /// (Host, TLS name, gRPC authority), so that only the path differs. When that passes, the
    /// failure says the server answers but not for the VIP, with what to look at for its
    /// forwarding method; when it fails too, its own reason is the one given. Whatever else
    /// comes of either probe leaves the first failure as it was.
    pub async fn probe(&self, req: &ProbeRequest) -> ProbeOutcome {
        let named = req.target();
        let outcome = self.probe_once(req, named).await;
        let outcome = match (&req.check.via, outcome) {
            // A program gets the VIP and the mark only through the VIP: run on the server's
            // own address it would have neither, so there is nothing to compare with.
            (Some(_), outcome) if matches!(req.check.kind, CheckKind::Exec(_)) => outcome,
            (Some(via), ProbeOutcome::Fail { reason }) => {
                self.compare_direct(req, via, named, reason).await
            }
            (_, outcome) => outcome,
        };
        match req.check.kind {
            // Agents are advisory: what would fail another check is no verdict from an agent.
            CheckKind::Agent(_) => agent::advisory(outcome),
            _ => outcome,
        }
    }

    /// After `req`'s probe through the VIP failed with `reason`: the verdict, given what the
    /// same probe on the server's own address says.
    async fn compare_direct(
        &self,
        req: &ProbeRequest,
        via: &ViaVip,
        named: SocketAddr,
        reason: String,
    ) -> ProbeOutcome {
        // Kept connections of its own, dropped with it: the direct probe's check is a copy
        // made for this comparison alone, and a connection kept for it would never be used.
        let direct_prober = Prober {
            connect: self.connect.clone(),
            tls: self.tls.clone(),
            pool: Rc::default(),
        };
        let direct = req.direct();
        match direct_prober.probe_once(&direct, named).await {
            ProbeOutcome::Pass { .. } => {
                match self.connect.accepts_via_replies(named, Origin::of(req)) {
                    // Every server would fail so: the director's fault, no verdict on any.
                    Err(why) => ProbeOutcome::DirectorFault { reason: why },
                    Ok(()) => fail(not_for_vip(req.server.ip(), named, via.forward)),
                }
            }
            ProbeOutcome::Fail { reason } => {
                fail(format!("through VIP and on its own address: {reason}"))
            }
            // No verdict on the server's own address says nothing more than the first one.
            _ => fail(reason),
        }
    }

    /// One probe of `req`, naming the server as `named` (see [`Prober::run`]), bounded by its
    /// timeout.
    async fn probe_once(&self, req: &ProbeRequest, named: SocketAddr) -> ProbeOutcome {
        self.pool.borrow_mut().sweep();
        let timeout = req.timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let seen = Seen::default();
        let work = self.run(req, named, deadline, &seen);
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
    /// whose silence passes waits for a reply until then). `named` is the address the probe
    /// names the server by where its protocol does (an HTTP Host header, a TLS name, a gRPC
    /// authority, unless the check gives them): the target, but for the direct probe compared
    /// with a failed one through the VIP, the VIP as that one named it.
    async fn run(
        &self,
        req: &ProbeRequest,
        named: SocketAddr,
        deadline: tokio::time::Instant,
        seen: &Seen,
    ) -> ProbeOutcome {
        let check: &Check = &req.check;
        let target = req.target();
        let origin = Origin::of(req);
        match &check.kind {
            CheckKind::Tcp(t) => match self.connect.connect(target, origin).await {
                Ok(stream) => match &t.exchange {
                    None => ProbeOutcome::Pass { weight: None },
                    Some(x) => tcp::exchange(stream, x, t.reply_limit, seen).await,
                },
                Err(e) => io_outcome(&e),
            },
            CheckKind::Dns(d) => self.dns(req, d).await,
            CheckKind::Udp(u) => udp::udp(&self.connect, req, u, deadline).await,
            CheckKind::Http(h) => self.http(req, named, h, Transport::Plain).await,
            CheckKind::Https(h) => self.http(req, named, h, Transport::Tls).await,
            CheckKind::Smtp(m) => match self.connect.connect(target, origin).await {
                // Boxed: the dialogue's state (with a TLS handshake's) is large.
                Ok(stream) => Box::pin(smtp::smtp(stream, m, named, &self.tls)).await,
                Err(e) => io_outcome(&e),
            },
            // Real ICMP sockets whatever `Connect` is: the simulator refuses ping checks.
            CheckKind::Ping => ping::ping(target.ip(), check.source, req.timeout()).await,
            // Boxed: a child process's state is large and only exec probes need it.
            CheckKind::Exec(e) => Box::pin(exec::exec(e, req, req.timeout())).await,
            // Boxed: an HTTP/2 client's state is large and only grpc probes need it.
            CheckKind::Grpc(g) => Box::pin(self.grpc(g, target, named, origin)).await,
            CheckKind::Agent(a) => match self.connect.connect(target, origin).await {
                Ok(stream) => agent::agent(stream, a, seen).await,
                Err(e) => io_outcome(&e),
            },
        }
    }

    /// A grpc probe: a fresh connection, TLS when asked for, then the health check, naming
    /// the server `named` (see [`Prober::run`]).
    async fn grpc(
        &self,
        g: &GrpcCheck,
        target: SocketAddr,
        named: SocketAddr,
        origin: Origin,
    ) -> ProbeOutcome {
        let stream = match self.connect.connect(target, origin).await {
            Ok(s) => s,
            Err(e) => return io_outcome(&e),
        };
        let stream: pool::BoxStream = match &g.tls {
            None => Box::new(stream),
            Some(settings) => {
                let tls = self
                    .tls
                    .handshake_h2(stream, settings, g.authority.as_deref(), named)
                    .await;
                match tls {
                    Ok(s) => s,
                    Err(outcome) => return outcome,
                }
            }
        };
        grpc::check(stream, g, named).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_hc_core::ProbeId;

    /// Whether a connection to a target from an origin is made: the one decision a fake
    /// [`Connect`] needs, mocked.
    #[mockall::automock]
    trait Dial {
        fn dial(&self, target: SocketAddr, origin: Origin) -> io::Result<()>;
    }

    /// A [`Connect`] whose connections are in-memory pipes, made or refused as its [`Dial`]
    /// says.
    #[derive(Clone)]
    struct Fake(Arc<MockDial>, Option<&'static str>);

    impl Connect for Fake {
        type Stream = tokio::io::DuplexStream;
        type Datagram = NoDatagram;

        async fn connect(&self, target: SocketAddr, origin: Origin) -> io::Result<Self::Stream> {
            self.0.dial(target, origin)?;
            Ok(tokio::io::duplex(64).0)
        }

        async fn open_datagram(&self, _: SocketAddr, _: Origin) -> io::Result<NoDatagram> {
            unreachable!("tcp checks only")
        }

        fn accepts_via_replies(&self, _: SocketAddr, _: Origin) -> Result<(), String> {
            self.1.map_or(Ok(()), |why| Err(why.to_string()))
        }
    }

    struct NoDatagram;

    impl Datagram for NoDatagram {
        async fn send(&self, _: &[u8]) -> io::Result<()> {
            unreachable!("tcp checks only")
        }

        async fn recv(&self, _: &mut [u8]) -> io::Result<usize> {
            unreachable!("tcp checks only")
        }
    }

    const VIP: &str = "192.168.0.101:80";
    const SERVER: &str = "192.168.0.179:80";

    /// A tcp check of [`SERVER`] through [`VIP`], forwarded by `forward`.
    fn via_request(forward: &str) -> ProbeRequest {
        let text = format!(
            "[[service]]\naddress = \"{VIP}\"\n[[service.check]]\ntype = \"tcp\"\n\
             via_vip = true\ntimeout = \"1s\"\n[[service.server]]\naddress = \"{SERVER}\"\n\
             forward = \"{forward}\"\n"
        );
        let config = lvs_hc_core::Config::from_toml(&text, "via-test").unwrap();
        ProbeRequest {
            id: ProbeId(1),
            server: SERVER.parse().unwrap(),
            check: config.services[0].servers[0].checks[0].clone(),
        }
    }

    fn refused() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionRefused)
    }

    /// Expects one marked connection to the VIP, answered by `through`.
    fn expect_through(
        dial: &mut MockDial,
        times: usize,
        through: impl Fn() -> io::Result<()> + Send + 'static,
    ) {
        dial.expect_dial()
            .withf(|target, origin| {
                *target == VIP.parse().unwrap()
                    && origin.via.map(|v| v.server) == Some(SERVER.parse().unwrap())
            })
            .times(times)
            .returning(move |_, _| through());
    }

    /// Expects `times` unmarked connections to the server's own address, answered by `direct`.
    fn expect_direct(
        dial: &mut MockDial,
        times: usize,
        direct: impl Fn() -> io::Result<()> + Send + 'static,
    ) {
        dial.expect_dial()
            .withf(|target, origin| {
                *target == SERVER.parse().unwrap() && *origin == Origin::default()
            })
            .times(times)
            .returning(move |_, _| direct());
    }

    async fn probe(dial: MockDial, req: &ProbeRequest) -> ProbeOutcome {
        Prober::new(Fake(Arc::new(dial), None)).probe(req).await
    }

    #[tokio::test]
    async fn a_director_that_drops_the_replies_from_the_vip_is_a_fault_of_the_director() {
        let mut dial = MockDial::new();
        expect_through(&mut dial, 1, || {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        });
        expect_direct(&mut dial, 1, || Ok(()));
        let why =
            "this director drops the replies to probes through the VIP (accept_local is 0 on eth0)";
        let outcome = Prober::new(Fake(Arc::new(dial), Some(why)))
            .probe(&via_request("dr"))
            .await;
        assert_eq!(outcome, ProbeOutcome::DirectorFault { reason: why.into() });
    }

    #[test]
    fn replies_from_the_vip_need_accept_local_and_no_reverse_path_filter() {
        let own: IpAddr = "127.0.0.1".parse().unwrap();
        let with = |values: &'static [(&'static str, u32)]| {
            via_replies_accepted(own, move |key| {
                values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
            })
        };
        assert_eq!(with(&[("lo/accept_local", 1)]), Ok(()));
        assert_eq!(
            with(&[("all/accept_local", 1), ("lo/rp_filter", 0)]),
            Ok(())
        );
        let e = with(&[]).unwrap_err();
        assert!(
            e.contains("(accept_local is 0 on lo): run `lvs-hc setup director`"),
            "{e}"
        );
        let e = with(&[("lo/accept_local", 1), ("all/rp_filter", 2)]).unwrap_err();
        assert!(e.contains("(rp_filter is 2 on lo (or all))"), "{e}");
        let e = with(&[("lo/rp_filter", 1)]).unwrap_err();
        assert!(
            e.contains("accept_local is 0 on lo, rp_filter is 1 on lo (or all)"),
            "{e}"
        );
        assert_eq!(
            via_replies_accepted("::1".parse().unwrap(), |_| None),
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_server_answering_on_its_own_address_but_not_the_vip_is_told_what_to_look_at() {
        for (forward, hint) in [
            ("dr", "is the VIP on its lo?"),
            ("tun", "is the VIP on its tunl0, with ipip loaded?"),
            (
                "nat",
                "is a firewall on it dropping what the director forwards?",
            ),
        ] {
            let mut dial = MockDial::new();
            expect_through(&mut dial, 1, || Err(refused()));
            expect_direct(&mut dial, 1, || Ok(()));
            assert_eq!(
                probe(dial, &via_request(forward)).await,
                fail(format!(
                    "192.168.0.179 answers on its own address but not for VIP \
                     192.168.0.101:80 ({hint})"
                ))
            );
        }
    }

    #[tokio::test]
    async fn a_server_failing_on_its_own_address_too_fails_for_that_reason() {
        let mut dial = MockDial::new();
        expect_through(&mut dial, 1, || {
            Err(io::Error::from(io::ErrorKind::TimedOut))
        });
        expect_direct(&mut dial, 1, || Err(refused()));
        assert_eq!(
            probe(dial, &via_request("dr")).await,
            fail("through VIP and on its own address: connection refused")
        );
    }

    #[tokio::test]
    async fn a_probe_passing_through_the_vip_is_not_repeated() {
        let mut dial = MockDial::new();
        expect_through(&mut dial, 1, || Ok(()));
        expect_direct(&mut dial, 0, || Ok(()));
        assert_eq!(
            probe(dial, &via_request("dr")).await,
            ProbeOutcome::Pass { weight: None }
        );
    }

    #[tokio::test]
    async fn a_fault_of_the_director_through_the_vip_is_no_verdict_and_not_repeated() {
        let mut dial = MockDial::new();
        expect_through(&mut dial, 1, || {
            Err(DirectorError::wrap(
                "cannot mark the probe's socket",
                &io::Error::from_raw_os_error(libc::EPERM),
            ))
        });
        expect_direct(&mut dial, 0, || Ok(()));
        assert_eq!(
            probe(dial, &via_request("dr")).await,
            ProbeOutcome::DirectorFault {
                reason: "cannot mark the probe's socket: Operation not permitted (EPERM)".into()
            }
        );
    }

    #[tokio::test]
    async fn no_verdict_on_the_server_s_own_address_leaves_the_failure_through_the_vip() {
        let mut dial = MockDial::new();
        expect_through(&mut dial, 1, || Err(refused()));
        expect_direct(&mut dial, 1, || {
            Err(io::Error::from_raw_os_error(libc::EMFILE))
        });
        assert_eq!(
            probe(dial, &via_request("dr")).await,
            fail("connection refused")
        );
    }

    #[test]
    fn the_origin_of_a_probe_through_the_vip_carries_its_mark_and_server() {
        let req = via_request("dr");
        let mark = req.check.via.unwrap().mark;
        assert_eq!(
            Origin::of(&req),
            Origin {
                source: None,
                via: Some(ViaRoute {
                    mark,
                    server: SERVER.parse().unwrap()
                })
            }
        );
        assert_eq!(Origin::of(&req.direct()), Origin::default());
    }
}
