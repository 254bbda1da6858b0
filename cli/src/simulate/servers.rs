//! The simulated real servers: a listener on every port a check probes, answering HTTP or
//! just accepting, as the server behaves at the time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
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
    /// Answers `500 Internal Server Error`.
    Error500,
    /// Answers 200 with the wrong page.
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
    /// What a healthy server answers on each path probed.
    pub(crate) pages: BTreeMap<String, Page>,
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
        let mut http: BTreeMap<(SocketAddr, String), Vec<HttpCheck>> = BTreeMap::new();
        for config in configs {
            for (server, check) in checks(config) {
                let target = target(server, check);
                probed.entry(target).or_default().insert(server.addr);
                let (CheckKind::Http(h) | CheckKind::Https(h)) = &check.kind else {
                    continue;
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
                pages: pages.remove(&target).unwrap_or_default(),
            };
            sites
                .hosts
                .entry(target.ip())
                .or_default()
                .insert(target.port(), Rc::new(listener));
        }
        sites
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

/// Why a configuration cannot be simulated.
pub fn unsupported(config: &Config) -> Option<String> {
    for svc in &config.services {
        for s in svc.servers.iter().chain(&svc.fallbacks) {
            if !s.addr.is_ipv4() {
                return Some(format!("{}: the simulator runs IPv4 servers only", s.addr));
            }
            for c in &s.checks {
                match &c.kind {
                    CheckKind::Exec(_) => {
                        return Some(format!(
                            "{}: exec checks run real programs and cannot be simulated",
                            s.addr
                        ))
                    }
                    CheckKind::Https(_) => {
                        return Some(format!(
                            "{}: https checks cannot be simulated yet; use http",
                            s.addr
                        ))
                    }
                    CheckKind::Http(h) if h.expect_body_regex.is_some() => {
                        return Some(format!(
                            "{}: expect_body_regex cannot be simulated; use expect_body",
                            s.addr
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    None
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
                    let _ = answer(world, listener, stream).await;
                });
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
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
