//! The simulated real servers: a listener on every port a check probes, answering HTTP, HTTPS
//! (with a test certificate), the gRPC health service (h2c, or TLS with ALPN h2) or just
//! accepting, as the server behaves at the time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lvs_hc_core::config::{Check, CheckKind, HttpCheck, Server};
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
    /// gets TLS (one that does not, plain HTTP).
    pub(crate) tls: bool,
    /// What a healthy server answers on each path probed.
    pub(crate) pages: BTreeMap<String, Page>,
    /// Whether a grpc check probes it: it then speaks HTTP/2 and the gRPC health service
    /// only (every service SERVING while healthy), not HTTP/1.
    pub(crate) grpc: bool,
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
        let mut grpc: BTreeSet<SocketAddr> = BTreeSet::new();
        let mut http: BTreeMap<(SocketAddr, String), Vec<HttpCheck>> = BTreeMap::new();
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
                    CheckKind::Grpc(g) => {
                        grpc.insert(target);
                        if g.tls.is_some() {
                            https.insert(target);
                        }
                        continue;
                    }
                    CheckKind::Tcp | CheckKind::Exec(_) => continue,
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
            let listener = Listener {
                server: *servers.first().expect("a target has a server"),
                tls: https.contains(&target),
                pages: pages.remove(&target).unwrap_or_default(),
                grpc: grpc.contains(&target),
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
    let each = listeners
        .into_iter()
        .map(|(port, listener)| serve(world.clone(), ip, port, listener));
    futures_util::future::try_join_all(each).await?;
    Ok(())
}

/// Listens on `port` while the listener's server is not killed.
async fn serve(world: WorldRef, ip: IpAddr, port: u16, listener: Rc<Listener>) -> turmoil::Result {
    // The director's own loopback, or every address of the host.
    let bind = match ip {
        ip if ip.is_loopback() => SocketAddr::new(ip, port),
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        IpAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    };
    let mut socket = None;
    loop {
        if world.borrow().behaviour_of(listener.server) == Behaviour::Killed {
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
