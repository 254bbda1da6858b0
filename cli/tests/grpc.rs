//! grpc checks against a real gRPC health server on loopback: hyper's HTTP/2 server speaking
//! the `grpc.health.v1.Health` protocol, over h2c and over TLS (ALPN h2), with a status per
//! service; and against servers that are not what a grpc check wants.

mod common;

use common::{fail, tls_acceptor, PASS, TLS_FIXTURES};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use lvs_hc::probe::{Prober, TokioConnect};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SERVING: u8 = 1;
const NOT_SERVING: u8 = 2;
const SERVICE_UNKNOWN: u8 = 3;

/// What the test server answers.
#[derive(Clone)]
enum Health {
    /// The health service, with these statuses by service name ("" is the server); a name
    /// not here gets grpc-status 5 NOT_FOUND, as the reference implementation answers.
    Statuses(BTreeMap<String, u8>),
    /// No health service: every call gets grpc-status 12 UNIMPLEMENTED.
    Absent,
}

/// What the server saw of the latest request.
#[derive(Clone, Debug, Default)]
struct Seen {
    authority: String,
    content_type: String,
    te: String,
    service: String,
}

/// A gRPC health server on loopback, h2c or TLS.
struct GrpcServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
}

impl GrpcServer {
    async fn start(health: Health, tls: bool) -> GrpcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let health = health.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        answer(health.clone(), seen.clone(), req)
                    });
                    let builder = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    if tls {
                        let Ok(s) = tls_acceptor(&[b"h2"]).accept(s).await else {
                            return;
                        };
                        let io = hyper_util::rt::TokioIo::new(s);
                        let _ = builder.serve_connection(io, service).await;
                    } else {
                        let io = hyper_util::rt::TokioIo::new(s);
                        let _ = builder.serve_connection(io, service).await;
                    }
                });
            }
        });
        GrpcServer { addr, seen }
    }

    fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }
}

type Body =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// One call of the health service.
async fn answer(
    health: Health,
    seen: Arc<Mutex<Seen>>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut s = Seen {
        authority: req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        content_type: header("content-type"),
        te: header("te"),
        service: String::new(),
    };
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    // The request's one message: 5 bytes of framing, then field 1 (the name) when not empty.
    assert!(body.len() >= 5 && body[0] == 0, "framed request: {body:?}");
    let message = &body[5..];
    if !message.is_empty() {
        assert_eq!(message[0], 0x0a, "field 1, length-delimited");
        assert_eq!(usize::from(message[1]), message.len() - 2, "a short name");
        s.service = String::from_utf8(message[2..].to_vec()).unwrap();
    }
    let service = s.service.clone();
    *seen.lock().unwrap() = s;
    let statuses = match health {
        Health::Statuses(s) if path == "/grpc.health.v1.Health/Check" => s,
        _ => return Ok(trailers_only(12, "unknown service grpc.health.v1.Health")),
    };
    let Some(&status) = statuses.get(&service) else {
        return Ok(trailers_only(5, "unknown service"));
    };
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    let frames = vec![
        Ok(Frame::data(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))),
        Ok(Frame::trailers(trailers)),
    ];
    Ok(http::Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap())
}

/// An error answer with no message: the status in the headers (gRPC's "Trailers-Only").
fn trailers_only(code: u32, message: &str) -> http::Response<Body> {
    http::Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string())
        .header("grpc-message", message.replace(' ', "%20"))
        .body(StreamBody::new(futures_util::stream::iter(Vec::new())))
        .unwrap()
}

fn statuses(list: &[(&str, u8)]) -> Health {
    Health::Statuses(list.iter().map(|(n, s)| (n.to_string(), *s)).collect())
}

async fn probe(server: SocketAddr, check: &str) -> ProbeOutcome {
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntype = \"grpc\"\n{check}\n\
         [[service.server]]\naddress = \"127.0.0.1:80\"\nforward = \"nat\"\n"
    );
    let cfg = Config::from_toml(&text, "grpc-test").unwrap_or_else(|e| panic!("{e}"));
    let req = ProbeRequest {
        id: ProbeId(1),
        server,
        check: cfg.services[0].servers[0].checks[0].clone(),
    };
    Prober::new(TokioConnect).probe(&req).await
}

#[tokio::test]
async fn serving_server_passes_over_h2c() {
    let server = GrpcServer::start(statuses(&[("", SERVING)]), false).await;
    assert_eq!(probe(server.addr, "").await, PASS);
    let seen = server.seen();
    assert_eq!(seen.authority, server.addr.to_string());
    assert_eq!(seen.content_type, "application/grpc");
    assert_eq!(seen.te, "trailers");
    assert_eq!(seen.service, "");
}

#[tokio::test]
async fn serving_service_passes_over_tls_with_its_authority() {
    let server = GrpcServer::start(statuses(&[("shop.Cart", SERVING)]), true).await;
    let check = format!(
        "service = \"shop.Cart\"\nauthority = \"localhost:50051\"\ntls = true\nca_file = \"{TLS_FIXTURES}/cert.pem\""
    );
    assert_eq!(probe(server.addr, &check).await, PASS);
    let seen = server.seen();
    assert_eq!(seen.service, "shop.Cart");
    assert_eq!(seen.authority, "localhost:50051");
}

#[tokio::test]
async fn not_serving_fails_with_its_name() {
    let server = GrpcServer::start(
        statuses(&[("", SERVING), ("shop.Cart", NOT_SERVING)]),
        false,
    )
    .await;
    assert_eq!(
        probe(server.addr, "service = \"shop.Cart\"").await,
        fail("NOT_SERVING")
    );
    // The server as a whole still serves: the service name reached it.
    assert_eq!(probe(server.addr, "").await, PASS);
}

#[tokio::test]
async fn service_unknown_fails_over_tls() {
    let server = GrpcServer::start(statuses(&[("old.Api", SERVICE_UNKNOWN)]), true).await;
    let check = format!("service = \"old.Api\"\ntls = true\nca_file = \"{TLS_FIXTURES}/cert.pem\"");
    assert_eq!(probe(server.addr, &check).await, fail("SERVICE_UNKNOWN"));
}

#[tokio::test]
async fn a_service_the_server_does_not_know_fails_not_found() {
    let server = GrpcServer::start(statuses(&[("", SERVING)]), false).await;
    assert_eq!(
        probe(server.addr, "service = \"nobody\"").await,
        fail("grpc-status 5 NOT_FOUND: unknown service (the server does not know the service)")
    );
}

#[tokio::test]
async fn a_server_without_the_health_service_fails_unimplemented() {
    let server = GrpcServer::start(Health::Absent, false).await;
    assert_eq!(
        probe(server.addr, "").await,
        fail(
            "grpc-status 12 UNIMPLEMENTED: unknown service grpc.health.v1.Health (the server \
             has no health service)"
        )
    );
}

/// A server that reads a little and answers `response` (HTTP/1, whatever was asked).
async fn raw_server(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_plain_http1_server_fails_clearly() {
    let addr = raw_server(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n").await;
    let out = probe(addr, "").await;
    match &out {
        ProbeOutcome::Fail { reason } => assert!(
            reason
                .ends_with("the server answered HTTP/1, not HTTP/2 (a gRPC server speaks HTTP/2)"),
            "{reason}"
        ),
        other => panic!("an HTTP/1 server passed: {other:?}"),
    }
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_tls_handshake() {
    let server = GrpcServer::start(statuses(&[("", SERVING)]), true).await;
    let out = probe(server.addr, "tls = true").await;
    match &out {
        ProbeOutcome::Fail { reason } => assert!(
            reason.starts_with("TLS handshake failed: invalid peer certificate"),
            "{reason}"
        ),
        other => panic!("an untrusted certificate passed: {other:?}"),
    }
    // Without verification the same server passes.
    assert_eq!(probe(server.addr, "tls = true\nverify = false").await, PASS);
}

#[tokio::test]
async fn a_refused_connection_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert_eq!(probe(addr, "").await, fail("connection refused"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    assert_eq!(
        probe(addr, "timeout = \"300ms\"").await,
        fail("timed out after 300ms")
    );
    let _ = Duration::ZERO;
}
