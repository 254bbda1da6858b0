//! The simulated real servers: a listener on every port a check probes, answering HTTP, HTTPS
//! (with a test certificate), DNS (over UDP and TCP), UDP datagrams, a tcp send/expect
//! exchange, SMTP (with STARTTLS when a check asks for it), the gRPC health service (h2c, or TLS
//! with ALPN h2), an agent (HAProxy's agent protocol: the line the schedule gives it) or just
//! accepting, as the server behaves at the time.
//!
//! Turmoil models no ICMP: a killed server's UDP port drops datagrams in silence, so a udp or
//! dns probe of it times out instead of seeing "ICMP port unreachable".

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use lvs_hc_core::config::{
    Check, CheckKind, DnsCheck, DnsRcode, DnsTransport, DnsType, Expect, HttpCheck, Server,
};
use lvs_hc_core::Config;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::world::WorldRef;

/// How a simulated server behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers as the check expects.
    Healthy,
    /// Killed: connections are refused.
    Killed,
    /// Unreachable: the network between the director and the server loses every packet, so
    /// probes time out. The server itself is fine.
    Blackholed,
    /// Accepts and answers only after far longer than any timeout.
    Slow,
    /// Answers `500 Internal Server Error` (a gRPC health service: `NOT_SERVING`).
    Error500,
    /// Answers 200 with the wrong page (a gRPC server: `UNIMPLEMENTED`, no health service).
    WrongPage,
}

impl Behaviour {
    /// How the schedule and the trace name it.
    pub fn label(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Killed => "killed",
            Behaviour::Blackholed => "black-holed",
            Behaviour::Slow => "slow",
            Behaviour::Error500 => "answering 500",
            Behaviour::WrongPage => "serving the wrong page",
        }
    }
}

/// How a server's simulated agent answers (see [`Action::Agent`](super::Action::Agent)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentReply {
    /// It says this line (without its line ending).
    Says(String),
    /// It accepts connections and never answers: probes of it time out.
    Silent,
    /// It is not running: its port refuses connections.
    Stopped,
}

impl std::fmt::Display for AgentReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentReply::Says(line) => write!(f, "says \"{}\"", line.escape_debug()),
            AgentReply::Silent => f.write_str("falls silent"),
            AgentReply::Stopped => f.write_str("stops (its port refuses)"),
        }
    }
}

/// Every simulated host and what it listens on, from every configuration of a run (the
/// first, and any a reload brings in): real servers and fallbacks with checks.
#[derive(Debug, Default)]
pub(crate) struct Sites {
    /// Each host's listeners by port.
    pub(crate) hosts: BTreeMap<IpAddr, BTreeMap<u16, Rc<Listener>>>,
}

/// One port of a simulated host.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The server whose behaviour it follows: the first, by address, that a check probes
    /// here (a check's `port` can send probes of two servers of one host to the same port).
    pub(crate) server: SocketAddr,
    /// Whether an https check probes it: a connection that starts with a TLS handshake then
    /// gets TLS (one that does not, plain HTTP). On an SMTP listener: whether EHLO offers
    /// STARTTLS.
    pub(crate) tls: bool,
    /// Whether an smtp check probes it: it speaks SMTP, not HTTP (a port probed by both is
    /// a configuration no real server answers either).
    pub(crate) smtp: bool,
    /// What a healthy server answers on each path probed.
    pub(crate) pages: BTreeMap<String, Page>,
    /// Whether a grpc check probes it: it then speaks HTTP/2 and the gRPC health service
    /// only (every service SERVING while healthy), not HTTP/1.
    pub(crate) grpc: bool,
    /// The names a dns check asks this port for, and what a healthy server answers.
    pub(crate) zone: BTreeMap<String, ZoneEntry>,
    /// Whether a dns check asks over TCP: connections then speak DNS.
    pub(crate) dns_tcp: bool,
    /// What a healthy server answers a udp check's datagram with, if one probes here.
    pub(crate) udp_reply: Option<Vec<u8>>,
    /// What a healthy server answers a tcp send/expect check with, if one probes here.
    pub(crate) line: Option<Line>,
    /// Whether a dns check asks over UDP.
    pub(crate) dns_udp: bool,
    /// Whether an agent check probes it, and what that check sends: connections then get the
    /// server's agent (see [`AgentReply`]), whatever other checks probe the same port.
    pub(crate) agent: Option<Vec<u8>>,
}

impl Listener {
    /// Whether a UDP socket serves this port: a udp check, or a dns check over UDP, probes it.
    fn datagrams(&self) -> bool {
        self.udp_reply.is_some() || self.dns_udp
    }
}

/// What a healthy DNS server answers for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ZoneEntry {
    /// The response code.
    pub(crate) rcode: DnsRcode,
    /// The addresses of its A and AAAA records.
    pub(crate) addresses: Vec<IpAddr>,
}

/// What a healthy server answers a tcp send/expect check with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// Whether it speaks first (the check sends nothing: a banner).
    pub(crate) banner: bool,
    /// The reply.
    pub(crate) reply: Vec<u8>,
}

/// The addresses a server serving the wrong page answers with instead.
const WRONG_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfe)),
];

/// The reply of a server answering with an error, to udp and tcp send/expect checks.
const ERROR_REPLY: &[u8] = b"-ERR internal error\r\n";
/// The reply of a server serving the wrong page, to udp and tcp send/expect checks.
const WRONG_REPLY: &[u8] = b"+WRONG\r\n";

/// The reply that passes an expectation, as far as the simulator can tell one: its bytes, or
/// a literal regex's text; else something that passes no expectation but an empty one.
fn reply_for(expect: Option<&Expect>) -> Vec<u8> {
    match expect {
        None => b"+OK\r\n".to_vec(),
        Some(Expect::Contains(b)) => b.clone(),
        Some(Expect::Regex(r)) => literal(r.as_str())
            .map(String::into_bytes)
            .unwrap_or_else(|| r.as_str().as_bytes().to_vec()),
    }
}

/// The zone name a query or check names: lower case, no final dot.
fn zone_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// What a healthy server answers to a request for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// The status: one every check of the path accepts, if there is one.
    pub(crate) status: u16,
    /// The body: every `expect_body` of the path's checks, and when they set none, the text
    /// of a literal `expect_body_regex`.
    pub(crate) body: String,
}

/// The page a wrong-page server serves instead: no check's `expect_body`.
const WRONG_PAGE: &str = "<html>default page</html>";

impl Sites {
    /// The hosts, listeners and pages that answer every check of `configs` when healthy, as
    /// far as one page per path can.
    pub(crate) fn of<'a>(configs: impl IntoIterator<Item = &'a Config>) -> Sites {
        // Per target: the servers that probe it, and the http(s) checks per path.
        let mut probed: BTreeMap<SocketAddr, BTreeSet<SocketAddr>> = BTreeMap::new();
        let mut https: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut smtp: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut grpc: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut agents: BTreeMap<SocketAddr, Vec<u8>> = BTreeMap::new();
        let mut http: BTreeMap<(SocketAddr, String), Vec<HttpCheck>> = BTreeMap::new();
        let mut dns: BTreeMap<SocketAddr, Vec<DnsCheck>> = BTreeMap::new();
        let mut udp_replies: BTreeMap<SocketAddr, Vec<u8>> = BTreeMap::new();
        let mut lines: BTreeMap<SocketAddr, Line> = BTreeMap::new();
        for config in configs {
            for (server, check) in checks(config) {
                let target = target(server, check);
                probed.entry(target).or_default().insert(server.addr);
                let h = match &check.kind {
                    CheckKind::Http(h) => h,
                    CheckKind::Https(h) => {
                        https.insert(target);
                        h
                    }
                    CheckKind::Dns(d) => {
                        dns.entry(target).or_default().push(d.clone());
                        continue;
                    }
                    CheckKind::Udp(u) => {
                        udp_replies
                            .entry(target)
                            .or_insert_with(|| reply_for(u.exchange.expect.as_ref()));
                        continue;
                    }
                    CheckKind::Tcp(t) => {
                        if let Some(x) = &t.exchange {
                            lines.entry(target).or_insert_with(|| Line {
                                banner: x.send.is_empty(),
                                reply: reply_for(x.expect.as_ref()),
                            });
                        }
                        continue;
                    }
                    CheckKind::Smtp(m) => {
                        smtp.insert(target);
                        if m.starttls.is_some() {
                            https.insert(target);
                        }
                        continue;
                    }
                    CheckKind::Grpc(g) => {
                        grpc.insert(target);
                        if g.tls.is_some() {
                            https.insert(target);
                        }
                        continue;
                    }
                    CheckKind::Agent(a) => {
                        agents.entry(target).or_insert_with(|| a.send.clone());
                        continue;
                    }
                    CheckKind::Exec(_) | CheckKind::Ping => continue,
                };
                let same = http.entry((target, h.path.clone())).or_default();
                if !same.contains(h) {
                    same.push(h.clone());
                }
            }
        }
        let mut pages: BTreeMap<SocketAddr, BTreeMap<String, Page>> = BTreeMap::new();
        for ((target, path), checks) in &http {
            pages
                .entry(*target)
                .or_default()
                .insert(path.clone(), page_for(checks));
        }
        let mut sites = Sites::default();
        for (target, servers) in probed {
            let dns_checks = dns.remove(&target).unwrap_or_default();
            let mut zone = BTreeMap::new();
            for d in &dns_checks {
                zone.entry(zone_name(&d.query_name))
                    .or_insert_with(|| ZoneEntry {
                        rcode: d.expect_rcode,
                        addresses: d.expect_address.clone(),
                    });
            }
            let listener = Listener {
                server: *servers.first().expect("a target has a server"),
                tls: https.contains(&target),
                smtp: smtp.contains(&target),
                pages: pages.remove(&target).unwrap_or_default(),
                zone,
                dns_tcp: dns_checks.iter().any(|d| d.transport == DnsTransport::Tcp),
                dns_udp: dns_checks.iter().any(|d| d.transport == DnsTransport::Udp),
                udp_reply: udp_replies.remove(&target),
                line: lines.remove(&target),
                grpc: grpc.contains(&target),
                agent: agents.remove(&target),
            };
            sites
                .hosts
                .entry(target.ip())
                .or_default()
                .insert(target.port(), Rc::new(listener));
        }
        sites
    }

    /// The page a healthy server answers a check's request with.
    pub(crate) fn page(&self, target: SocketAddr, path: &str) -> Option<&Page> {
        self.hosts
            .get(&target.ip())?
            .get(&target.port())?
            .pages
            .get(path)
    }
}

/// Every server of a configuration (fallbacks too) with each of its checks.
pub(crate) fn checks(config: &Config) -> impl Iterator<Item = (&Server, &Check)> {
    config
        .services
        .iter()
        .flat_map(|svc| svc.servers.iter().chain(&svc.fallbacks))
        .flat_map(|s| s.checks.iter().map(move |c| (s, &**c)))
}

/// Where a check of a server sends its probes.
pub(crate) fn target(server: &Server, check: &Check) -> SocketAddr {
    SocketAddr::new(server.addr.ip(), check.port.unwrap_or(server.addr.port()))
}

/// The page that passes as many of `checks` (all for one path of one target) as one page can.
fn page_for(checks: &[HttpCheck]) -> Page {
    let mut bodies: Vec<&str> = Vec::new();
    for b in checks.iter().filter_map(|h| h.expect_body.as_deref()) {
        if !bodies.contains(&b) {
            bodies.push(b);
        }
    }
    let mut candidates = vec![bodies.join(" ")];
    if bodies.is_empty() {
        candidates.extend(
            checks
                .iter()
                .filter_map(|h| h.expect_body_regex.as_ref())
                .filter_map(|r| literal(r.as_str())),
        );
    }
    let passes = |body: &str| {
        checks
            .iter()
            .filter_map(|h| h.expect_body_regex.as_ref())
            .all(|r| r.is_match(body))
    };
    let body = candidates
        .iter()
        .find(|b| passes(b))
        .unwrap_or(&candidates[0])
        .clone();
    // 200 if every check takes it, else the first status all take that may carry a body.
    let statuses = std::iter::once(200)
        .chain(200..600)
        .filter(|s| !matches!(s, 204 | 205 | 304));
    let accepted_by = |s: u16| {
        checks
            .iter()
            .filter(|h| h.expect_status.contains(s))
            .count()
    };
    let status = statuses
        .clone()
        .find(|s| accepted_by(*s) == checks.len())
        .unwrap_or_else(|| {
            // None is accepted by all: the status most of them accept.
            let best = statuses.clone().map(accepted_by).max().unwrap_or(0);
            statuses
                .clone()
                .find(|s| accepted_by(*s) == best)
                .unwrap_or(200)
        });
    Page { status, body }
}

/// The text a regular expression matches and nothing else, if it is a literal (anchors
/// allowed): `^healthy$` is `healthy`.
fn literal(regex: &str) -> Option<String> {
    let inner = regex.strip_prefix('^').unwrap_or(regex);
    let inner = match inner.strip_suffix('$') {
        Some(i) if !i.ends_with('\\') => i,
        _ => inner,
    };
    let special = |c: char| "\\.+*?()|[]{}^$".contains(c);
    (!inner.is_empty() && !inner.contains(special)).then(|| inner.to_string())
}

/// Runs a simulated host: all its listeners, in one task.
pub(crate) async fn serve_host(
    world: WorldRef,
    ip: IpAddr,
    listeners: BTreeMap<u16, Rc<Listener>>,
) -> turmoil::Result {
    let datagrams: Vec<_> = listeners
        .iter()
        .filter(|(_, l)| l.datagrams())
        .map(|(port, l)| serve_datagrams(world.clone(), ip, *port, l.clone()))
        .collect();
    let each = listeners
        .into_iter()
        .map(|(port, listener)| serve(world.clone(), ip, port, listener));
    futures_util::future::try_join(
        futures_util::future::try_join_all(each),
        futures_util::future::try_join_all(datagrams),
    )
    .await?;
    Ok(())
}

/// Where a simulated server binds `port`: the director's own loopback, or every address of
/// the host.
fn bind_address(ip: IpAddr, port: u16) -> SocketAddr {
    match ip {
        ip if ip.is_loopback() => SocketAddr::new(ip, port),
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    }
}

/// Answers datagrams on UDP `port` (dns and udp checks) while the listener's server is not
/// killed; a killed server's port drops them (turmoil has no ICMP to say so).
async fn serve_datagrams(
    world: WorldRef,
    ip: IpAddr,
    port: u16,
    listener: Rc<Listener>,
) -> turmoil::Result {
    let behaviour = |world: &WorldRef| world.borrow().behaviour_of(listener.server);
    let mut socket = None;
    let mut buf = vec![0u8; 65_535];
    loop {
        if behaviour(&world) == Behaviour::Killed {
            socket = None;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if socket.is_none() {
            socket = Some(turmoil::net::UdpSocket::bind(bind_address(ip, port)).await?);
        }
        let s = socket.as_ref().expect("bound");
        // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
        let (n, from) = tokio::select! {
            biased;
            r = s.recv_from(&mut buf) => r?,
            _ = tokio::time::sleep(Duration::from_millis(10)) => continue,
        };
        // See `answer`: the director's loopback is no link, so a black hole waits here.
        while behaviour(&world) == Behaviour::Blackholed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let b = behaviour(&world);
        let reply = if listener.dns_udp {
            dns_answer(&listener.zone, &buf[..n], b)
        } else {
            listener.udp_reply.as_ref().map(|r| datagram_reply(r, b))
        };
        match (b, reply) {
            // A slow server's answer comes long after any timeout: none within it.
            (Behaviour::Slow | Behaviour::Killed, _) | (_, None) => {}
            (_, Some(reply)) => {
                s.send_to(&reply, from).await?;
            }
        }
    }
}

/// A udp peer's reply as the server behaves.
fn datagram_reply(healthy: &[u8], b: Behaviour) -> Vec<u8> {
    match b {
        Behaviour::Error500 => ERROR_REPLY.to_vec(),
        Behaviour::WrongPage => WRONG_REPLY.to_vec(),
        _ => healthy.to_vec(),
    }
}

/// A DNS server's answer to `query` as the server behaves: the zone's rcode and addresses
/// when healthy, SERVFAIL for an error, other addresses for the wrong page. `None` for what is
/// not a query.
fn dns_answer(zone: &BTreeMap<String, ZoneEntry>, query: &[u8], b: Behaviour) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let question = q.queries().first()?.clone();
    let mut m = Message::new();
    m.set_id(q.id())
        .set_message_type(MessageType::Response)
        .set_op_code(q.op_code())
        .set_recursion_desired(q.recursion_desired())
        .set_authoritative(true)
        .add_query(question.clone());
    let entry = zone.get(&zone_name(&question.name().to_ascii()));
    let rcode = match (b, entry) {
        (Behaviour::Error500, _) => DnsRcode::ServFail,
        (_, Some(e)) => e.rcode,
        (_, None) => DnsRcode::NxDomain,
    };
    m.set_response_code(ResponseCode::from(0, rcode.code() as u8));
    if rcode == DnsRcode::NoError {
        let addresses = match (b, entry) {
            (Behaviour::WrongPage, _) => WRONG_ADDRESSES.to_vec(),
            (_, Some(e)) => e.addresses.clone(),
            (_, None) => Vec::new(),
        };
        let wants = |t: DnsType| {
            let qt = question.query_type();
            qt == RecordType::from(t.code()) || qt == RecordType::ANY
        };
        for ip in addresses {
            let rdata = match ip {
                IpAddr::V4(v4) if wants(DnsType::A) => RData::A(A(v4)),
                IpAddr::V6(v6) if wants(DnsType::Aaaa) => RData::AAAA(AAAA(v6)),
                _ => continue,
            };
            m.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
        }
    }
    m.to_vec().ok()
}

/// Listens on `port` while the listener's server is not killed.
async fn serve(world: WorldRef, ip: IpAddr, port: u16, listener: Rc<Listener>) -> turmoil::Result {
    let bind = bind_address(ip, port);
    let mut socket = None;
    let dead = |world: &WorldRef| {
        let w = world.borrow();
        w.behaviour_of(listener.server) == Behaviour::Killed
            || (listener.agent.is_some() && w.agent_of(listener.server) == AgentReply::Stopped)
    };
    loop {
        if dead(&world) {
            // A dead process: nothing listens, connections are refused.
            socket = None;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        if socket.is_none() {
            socket = Some(turmoil::net::TcpListener::bind(bind).await?);
        }
        let l = socket.as_ref().expect("listening");
        tokio::select! {
            biased;
            accepted = l.accept() => {
                let (stream, _) = accepted?;
                world.borrow_mut().connections += 1;
                let world = world.clone();
                let listener = listener.clone();
                tokio::task::spawn_local(async move {
                    let _ = connection(world, listener, stream).await;
                });
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
}

/// One accepted connection: TLS when the listener serves it and the client starts a
/// handshake, else plain HTTP. (A tcp check's connection just ends.)
async fn connection(
    world: WorldRef,
    listener: Rc<Listener>,
    mut stream: turmoil::net::TcpStream,
) -> std::io::Result<()> {
    if listener.agent.is_some() {
        return agent(world, listener, stream).await;
    }
    if listener.smtp {
        return smtp(world, listener, stream).await;
    }
    if listener.dns_tcp {
        return dns_over_tcp(world, listener, stream).await;
    }
    if listener.line.is_some() {
        return line(world, listener, stream).await;
    }
    if !listener.tls {
        return respond(world, listener, stream).await;
    }
    let mut first = [0u8; 1];
    // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
    let peeked = loop {
        tokio::select! {
            biased;
            n = stream.peek(&mut first) => break n?,
            _ = tokio::time::sleep(Duration::from_millis(10)) => {
                if world.borrow().behaviour_of(listener.server) == Behaviour::Killed {
                    return Ok(());
                }
            }
        }
    };
    // 22: a TLS handshake record.
    if peeked == 0 || first[0] != 22 {
        return respond(world, listener, stream).await;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls_config());
    let tls = acceptor.accept(stream).await?;
    respond(world, listener, tls).await
}

/// Answers a connection in the listener's protocol: the gRPC health service, or HTTP/1.
async fn respond<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    world: WorldRef,
    listener: Rc<Listener>,
    stream: S,
) -> std::io::Result<()> {
    if listener.grpc {
        answer_grpc(world, listener, stream).await;
        Ok(())
    } else {
        answer(world, listener, stream).await
    }
}

/// Serves the gRPC health service over HTTP/2 (hyper's server) on one connection, as the
/// server behaves at the time of each call: healthy SERVING, answering 500 NOT_SERVING,
/// serving the wrong page UNIMPLEMENTED (a server without the health service), slow far too
/// late; a black hole holds the answer; a killed server's connections close with it.
async fn answer_grpc<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    world: WorldRef,
    listener: Rc<Listener>,
    stream: S,
) {
    let service = {
        let world = world.clone();
        let server = listener.server;
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let world = world.clone();
            async move {
                use http_body_util::BodyExt as _;
                // The request's message is not judged: every service a check names is one
                // this server has.
                let _ = req.into_body().collect().await;
                let behaviour = |world: &WorldRef| world.borrow().behaviour_of(server);
                while behaviour(&world) == Behaviour::Blackholed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let status = match behaviour(&world) {
                    Behaviour::Healthy | Behaviour::Blackholed | Behaviour::Killed => 1,
                    Behaviour::Error500 => 2,
                    Behaviour::WrongPage => return Ok(grpc_unimplemented()),
                    Behaviour::Slow => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        1
                    }
                };
                Ok::<_, std::convert::Infallible>(grpc_health(status))
            }
        })
    };
    let io = hyper_util::rt::TokioIo::new(stream);
    let serving =
        hyper::server::conn::http2::Builder::new(SpawnLocal).serve_connection(io, service);
    let killed = async {
        while world.borrow().behaviour_of(listener.server) != Behaviour::Killed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
    tokio::select! {
        biased;
        _ = serving => {}
        _ = killed => {}
    }
}

/// A simulated gRPC answer's body: data frames, then trailers.
type GrpcBody = http_body_util::StreamBody<
    futures_util::stream::Iter<
        std::vec::IntoIter<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>,
    >,
>;

/// `HealthCheckResponse { status }` (field 1, a varint) in gRPC's framing, then
/// `grpc-status: 0`.
fn grpc_health(status: u8) -> http::Response<GrpcBody> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = vec![
        Ok(hyper::body::Frame::data(bytes::Bytes::from(vec![
            0, 0, 0, 0, 2, 0x08, status,
        ]))),
        Ok(hyper::body::Frame::trailers(trailers)),
    ];
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
        .expect("a valid response")
}

/// A server without the health service: grpc-status 12 in the headers, no message.
fn grpc_unimplemented() -> http::Response<GrpcBody> {
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("grpc-status", "12")
        .header("grpc-message", "unknown%20service%20grpc.health.v1.Health")
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(
            Vec::new(),
        )))
        .expect("a valid response")
}

/// hyper's executor for the simulated hosts: their tasks run on the host's local set.
#[derive(Clone, Copy)]
struct SpawnLocal;

impl<F: std::future::Future + 'static> hyper::rt::Executor<F> for SpawnLocal {
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

/// Reads from `stream` until `done` says what arrived is enough, the peer closes (`None`), or
/// the server is killed (`None`).
async fn read_until<S: AsyncRead + Unpin>(
    world: &WorldRef,
    listener: &Listener,
    stream: &mut S,
    seen: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Option<()>> {
    let mut buf = [0u8; 1024];
    while !done(seen) {
        // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
        let read = tokio::select! {
            biased;
            n = stream.read(&mut buf) => Some(n?),
            _ = tokio::time::sleep(Duration::from_millis(10)) => None,
        };
        match read {
            Some(0) => return Ok(None),
            Some(n) => seen.extend_from_slice(&buf[..n]),
            None if world.borrow().behaviour_of(listener.server) == Behaviour::Killed => {
                return Ok(None)
            }
            None => {}
        }
    }
    Ok(Some(()))
}

/// Waits out a black hole on the director's loopback (see `answer`), then the server's
/// behaviour; `None` when it is killed or slow (a slow answer comes after any timeout).
async fn respond_as(world: &WorldRef, listener: &Listener) -> Option<Behaviour> {
    let behaviour = || world.borrow().behaviour_of(listener.server);
    while behaviour() == Behaviour::Blackholed {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match behaviour() {
        Behaviour::Killed => None,
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
        b => Some(b),
    }
}

/// A tcp send/expect peer: reads the probe's bytes (a banner peer speaks first), answers as
/// the server behaves, and keeps the connection until the probe ends it.
async fn line(
    world: WorldRef,
    listener: Rc<Listener>,
    mut stream: turmoil::net::TcpStream,
) -> std::io::Result<()> {
    let l = listener.line.clone().expect("a line peer");
    let mut seen = Vec::new();
    if !l.banner
        && read_until(&world, &listener, &mut stream, &mut seen, |s| !s.is_empty())
            .await?
            .is_none()
    {
        return Ok(());
    }
    let Some(b) = respond_as(&world, &listener).await else {
        return Ok(());
    };
    stream.write_all(&datagram_reply(&l.reply, b)).await?;
    // Until the probe closes, or the server is killed.
    let _ = read_until(&world, &listener, &mut stream, &mut seen, |_| false).await?;
    Ok(())
}

/// An agent, in HAProxy's agent protocol: it reads what the check sends (if it sends anything),
/// says its line (however the server's service misbehaves: the agent is a process of its own),
/// closes its side, and keeps what the probe sent until the probe closes; or says nothing, as
/// the schedule has it. What each connection brought is recorded in the world. It shares the server's fate otherwise: a
/// killed server's agent port refuses, a black hole holds its line, a slow server's agent
/// answers far too late.
async fn agent(
    world: WorldRef,
    listener: Rc<Listener>,
    mut stream: turmoil::net::TcpStream,
) -> std::io::Result<()> {
    let send = listener.agent.clone().unwrap_or_default();
    let mut seen = Vec::new();
    // What the check sends, first, as an agent that answers what it is asked would: a probe
    // that has its answer closes at once, and in turmoil that reset can arrive before the
    // bytes the probe sent.
    let heard = read_until(&world, &listener, &mut stream, &mut seen, |s| {
        s.len() >= send.len()
    })
    .await;
    let answer = match heard {
        Ok(Some(())) => respond_as(&world, &listener).await,
        Ok(None) | Err(_) => None,
    };
    let reply = match answer {
        Some(_) => world.borrow().agent_of(listener.server),
        None => AgentReply::Stopped,
    };
    match reply {
        AgentReply::Says(line) => {
            stream.write_all(format!("{line}\n").as_bytes()).await?;
            stream.shutdown().await?;
        }
        AgentReply::Silent => {}
        // Killed, or stopped since the connection came in: it goes with the process.
        AgentReply::Stopped => {
            record_agent(&world, &listener, seen);
            return heard.map(drop);
        }
    }
    // Until the probe closes, or the server is killed.
    let closed = read_until(&world, &listener, &mut stream, &mut seen, |_| false).await;
    record_agent(&world, &listener, seen);
    closed.map(drop)
}

/// Keeps what a connection to the agent brought.
fn record_agent(world: &WorldRef, listener: &Listener, seen: Vec<u8>) {
    world
        .borrow_mut()
        .agent_received
        .entry(listener.server)
        .or_default()
        .push(seen);
}

/// DNS over TCP: each message after its two-byte length, answered as over UDP.
async fn dns_over_tcp(
    world: WorldRef,
    listener: Rc<Listener>,
    mut stream: turmoil::net::TcpStream,
) -> std::io::Result<()> {
    let mut seen = Vec::new();
    loop {
        let whole =
            |s: &[u8]| s.len() >= 2 && s.len() >= 2 + usize::from(u16::from_be_bytes([s[0], s[1]]));
        if read_until(&world, &listener, &mut stream, &mut seen, whole)
            .await?
            .is_none()
        {
            return Ok(());
        }
        let len = usize::from(u16::from_be_bytes([seen[0], seen[1]]));
        let query: Vec<u8> = seen.drain(..2 + len).skip(2).collect();
        let Some(b) = respond_as(&world, &listener).await else {
            return Ok(());
        };
        let Some(answer) = dns_answer(&listener.zone, &query, b) else {
            return Ok(());
        };
        let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&answer);
        stream.write_all(&framed).await?;
    }
}

/// The servers' TLS settings: the test certificate, and no session resumption, so every
/// probe makes a full handshake and runs replay alike.
fn tls_config() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            use rustls_pki_types::pem::PemObject;
            use rustls_pki_types::{CertificateDer, PrivateKeyDer};
            let pem = include_bytes!("test-server.pem");
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .expect("the test certificate parses");
            let key = PrivateKeyDer::from_pem_slice(pem).expect("the test key parses");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("the test certificate and key match");
            config.send_tls13_tickets = 0;
            // HTTP/2 for grpc checks (they offer only h2); https checks offer nothing and
            // get HTTP/1.1 as before.
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            Arc::new(config)
        })
        .clone()
}

/// Answers the requests of one connection as the server behaves at the time, keeping the
/// connection open between requests unless the request says `Connection: close` (probes with
/// `reuse_connection` keep it). A killed server's open connections close with it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    world: WorldRef,
    listener: Rc<Listener>,
    mut stream: S,
) -> std::io::Result<()> {
    let behaviour = |world: &WorldRef| world.borrow().behaviour_of(listener.server);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    let mut answered = false;
    loop {
        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
            // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
            let read = tokio::select! {
                biased;
                n = stream.read(&mut buf) => Some(n?),
                _ = tokio::time::sleep(Duration::from_millis(10)) => None,
            };
            match read {
                Some(0) => return Ok(()),
                Some(n) => seen.extend_from_slice(&buf[..n]),
                None if behaviour(&world) == Behaviour::Killed => return Ok(()),
                None => {}
            }
            continue;
        };
        let request: Vec<u8> = seen.drain(..end + 4).collect();
        let text = String::from_utf8_lossy(&request);
        let head = text.starts_with("HEAD ");
        let close = text.to_ascii_lowercase().contains("connection: close");
        let path = text.split(' ').nth(1).unwrap_or("/");
        let page = listener.pages.get(path);
        // On the network the link holds a black hole's packets (see the runner), so nothing
        // arrives while it lasts; this wait covers the director's own loopback, which no link
        // carries.
        while behaviour(&world) == Behaviour::Blackholed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, body) = match (behaviour(&world), page) {
            (Behaviour::Healthy | Behaviour::Blackholed, Some(p)) => (p.status, p.body.as_str()),
            (Behaviour::Healthy | Behaviour::Blackholed, None) => (404, "no such page"),
            (Behaviour::Error500, _) => (500, "oops"),
            (Behaviour::WrongPage, _) => (200, WRONG_PAGE),
            (Behaviour::Slow, _) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                page.map_or((404, "no such page"), |p| (p.status, p.body.as_str()))
            }
            (Behaviour::Killed, _) => return Ok(()),
        };
        let reason = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Status");
        let mut response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if !head {
            response.push_str(body);
        }
        stream.write_all(response.as_bytes()).await?;
        if answered {
            world.borrow_mut().reused_answers += 1;
        }
        answered = true;
        if close {
            return stream.shutdown().await;
        }
    }
}

/// Which part of an SMTP session runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SmtpPhase {
    /// From the banner, in the clear.
    Plain,
    /// After STARTTLS, over TLS: no banner, no STARTTLS offered.
    Tls,
}

/// What became of an SMTP session's phase.
enum SmtpEnd<S> {
    /// The session ended (QUIT, a close, or a killed server).
    Done,
    /// The client asked for STARTTLS and was told to go ahead: the handshake follows.
    StartTls(S),
}

/// An SMTP session as the server behaves: healthy servers greet with 220 and answer EHLO with
/// 250 (offering STARTTLS when a check uses it), a server answering 500 greets with 554, one
/// serving the wrong page refuses EHLO, a slow one greets far too late.
async fn smtp(
    world: WorldRef,
    listener: Rc<Listener>,
    stream: turmoil::net::TcpStream,
) -> std::io::Result<()> {
    if let SmtpEnd::StartTls(stream) =
        smtp_phase(&world, &listener, stream, SmtpPhase::Plain).await?
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config());
        let tls = acceptor.accept(stream).await?;
        smtp_phase(&world, &listener, tls, SmtpPhase::Tls).await?;
    }
    Ok(())
}

async fn smtp_phase<S: AsyncRead + AsyncWrite + Unpin>(
    world: &WorldRef,
    listener: &Listener,
    mut stream: S,
    phase: SmtpPhase,
) -> std::io::Result<SmtpEnd<S>> {
    let behaviour = |world: &WorldRef| world.borrow().behaviour_of(listener.server);
    // See `answer`: the director's own loopback has no link to hold packets.
    let wait_out_black_hole = || async {
        while behaviour(world) == Behaviour::Blackholed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if phase == SmtpPhase::Plain {
        wait_out_black_hole().await;
        let banner = match behaviour(world) {
            Behaviour::Killed => return Ok(SmtpEnd::Done),
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "220 sim.invalid ESMTP late\r\n"
            }
            Behaviour::Error500 => "554 5.3.2 sim.invalid not accepting mail\r\n",
            _ => "220 sim.invalid ESMTP simulated\r\n",
        };
        stream.write_all(banner.as_bytes()).await?;
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let Some(end) = seen.iter().position(|b| *b == b'\n') else {
            // Biased: an unbiased select draws from tokio's thread-local RNG, not the seed.
            let read = tokio::select! {
                biased;
                n = stream.read(&mut buf) => Some(n?),
                _ = tokio::time::sleep(Duration::from_millis(10)) => None,
            };
            match read {
                Some(0) => return Ok(SmtpEnd::Done),
                Some(n) => seen.extend_from_slice(&buf[..n]),
                None if behaviour(world) == Behaviour::Killed => return Ok(SmtpEnd::Done),
                None => {}
            }
            continue;
        };
        let line: Vec<u8> = seen.drain(..=end).collect();
        let command = String::from_utf8_lossy(&line)
            .trim_end()
            .to_ascii_uppercase();
        wait_out_black_hole().await;
        let verb = command.split(' ').next().unwrap_or("");
        let reply = match (behaviour(world), verb) {
            (Behaviour::Killed, _) => return Ok(SmtpEnd::Done),
            (Behaviour::Slow, _) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "250 late\r\n".to_string()
            }
            (_, "QUIT") => {
                stream.write_all(b"221 2.0.0 bye\r\n").await?;
                stream.shutdown().await?;
                return Ok(SmtpEnd::Done);
            }
            (Behaviour::WrongPage, "EHLO" | "HELO") => {
                "550 5.7.1 sim.invalid does not talk to you\r\n".to_string()
            }
            (Behaviour::Error500, _) => "503 5.5.1 not accepting mail\r\n".to_string(),
            (_, "EHLO") => {
                let starttls = listener.tls && phase == SmtpPhase::Plain;
                format!(
                    "250-sim.invalid\r\n{}250 8BITMIME\r\n",
                    if starttls { "250-STARTTLS\r\n" } else { "" }
                )
            }
            (_, "STARTTLS") if listener.tls && phase == SmtpPhase::Plain => {
                stream
                    .write_all(b"220 2.0.0 ready to start TLS\r\n")
                    .await?;
                return Ok(SmtpEnd::StartTls(stream));
            }
            _ => "502 5.5.2 command not recognised\r\n".to_string(),
        };
        stream.write_all(reply.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_regexes_give_their_text() {
        assert_eq!(literal("^healthy$").as_deref(), Some("healthy"));
        assert_eq!(literal("ok").as_deref(), Some("ok"));
        assert_eq!(literal("^ok( |$)"), None);
        assert_eq!(literal(r"^a\$"), None);
        assert_eq!(literal("^$"), None);
    }
}
