//! udp checks and tcp send/expect checks against small servers on loopback.

mod common;

use common::{fail, PASS};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lvs_hc::probe::{Prober, TokioConnect};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

async fn probe(server: SocketAddr, toml: &str) -> ProbeOutcome {
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\ntimeout = \"500ms\"\n{toml}\n\
         [[service.server]]\naddress = \"127.0.0.1:80\"\nforward = \"nat\"\n"
    );
    let config = Config::from_toml(&text, "exchange-test").unwrap_or_else(|e| panic!("{e}"));
    let request = ProbeRequest {
        id: ProbeId(1),
        server,
        check: config.services[0].servers[0].checks[0].clone(),
    };
    Prober::new(TokioConnect).probe(&request).await
}

/// A UDP server answering every datagram `ping` with `reply` (and anything else with
/// `what?`); `None`: it reads and never answers.
async fn udp_server(reply: Option<&'static [u8]>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let answer: &[u8] = match reply {
                None => continue,
                Some(r) if &buf[..n] == b"ping" => r,
                Some(_) => b"what?",
            };
            let _ = socket.send_to(answer, from).await;
        }
    });
    addr
}

#[tokio::test]
async fn udp_passes_on_the_expected_reply() {
    let s = udp_server(Some(b"pong 1")).await;
    assert_eq!(
        probe(s, "type = \"udp\"\nsend = \"ping\"\nexpect = \"pong\"").await,
        PASS
    );
    let out = probe(
        s,
        "type = \"udp\"\nsend_hex = \"70 69 6e 67\"\nexpect_hex = \"706f6e67\"",
    )
    .await;
    assert_eq!(out, PASS);
    // Without an expectation any reply passes.
    assert_eq!(probe(s, "type = \"udp\"\nsend = \"hello\"").await, PASS);
}

#[tokio::test]
async fn udp_fails_on_a_wrong_reply_and_shows_it() {
    let s = udp_server(Some(b"pang\r\n")).await;
    assert_eq!(
        probe(s, "type = \"udp\"\nsend = \"ping\"\nexpect = \"pong\"").await,
        fail("reply \"pang\\r\\n\" lacks \"pong\"")
    );
}

#[tokio::test]
async fn udp_regex_matches_the_reply() {
    let s = udp_server(Some(b"pong 12")).await;
    let check = "type = \"udp\"\nsend = \"ping\"\nexpect_regex = \"^pong [0-9]+$\"";
    assert_eq!(probe(s, check).await, PASS);
    let check = "type = \"udp\"\nsend = \"ping\"\nexpect_regex = \"^pong [a-z]+$\"";
    assert_eq!(
        probe(s, check).await,
        fail("reply \"pong 12\" does not match /^pong [a-z]+$/")
    );
}

#[tokio::test]
async fn udp_silence_fails_at_the_timeout_unless_silence_passes() {
    let s = udp_server(None).await;
    let started = Instant::now();
    assert_eq!(
        probe(s, "type = \"udp\"\nsend = \"ping\"").await,
        fail("timed out after 500ms")
    );
    let check = "type = \"udp\"\nsend = \"ping\"\nsilence_passes = true";
    assert_eq!(probe(s, check).await, PASS);
    // Both bounded by the check's timeout.
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn udp_port_unreachable_fails_even_when_silence_passes() {
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    assert_eq!(
        probe(closed, "type = \"udp\"\nsend = \"ping\"").await,
        fail("ICMP port unreachable")
    );
    let check = "type = \"udp\"\nsend = \"ping\"\nsilence_passes = true";
    assert_eq!(probe(closed, check).await, fail("ICMP port unreachable"));
}

/// A Redis-like TCP server: to `PING\r\n` it answers `pong`, then does what `then` says.
async fn line_server(pong: &'static [u8], then: Then) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 256];
                while !seen.ends_with(b"\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                if seen != b"PING\r\n" {
                    let _ = s.write_all(b"-ERR unknown command\r\n").await;
                    return;
                }
                let _ = s.write_all(pong).await;
                match then {
                    Then::Close => {}
                    Then::Stay => tokio::time::sleep(Duration::from_secs(10)).await,
                }
            });
        }
    });
    addr
}

#[derive(Clone, Copy)]
enum Then {
    Close,
    Stay,
}

const PING: &str = "type = \"tcp\"\nsend = \"PING\\r\\n\"";

#[tokio::test]
async fn tcp_send_expect_passes_on_the_expected_reply() {
    // The server keeps the connection open: the match alone ends the read.
    let s = line_server(b"+PONG\r\n", Then::Stay).await;
    let started = Instant::now();
    assert_eq!(probe(s, &format!("{PING}\nexpect = \"+PONG\"")).await, PASS);
    assert_eq!(
        probe(s, &format!("{PING}\nexpect_regex = \"^\\\\+PONG\\r\\n$\"")).await,
        PASS
    );
    assert_eq!(
        probe(s, &format!("{PING}\nexpect_hex = \"2b504f4e47\"")).await,
        PASS
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn tcp_send_expect_fails_on_a_wrong_reply_and_shows_it() {
    let s = line_server(b"-LOADING dataset\r\n", Then::Close).await;
    assert_eq!(
        probe(s, &format!("{PING}\nexpect = \"+PONG\"")).await,
        fail("connection closed after \"-LOADING dataset\\r\\n\", which lacks \"+PONG\"")
    );
    // A server that keeps the connection open with the wrong answer fails at the timeout,
    // and the reason shows what it said.
    let s = line_server(b"-LOADING dataset\r\n", Then::Stay).await;
    assert_eq!(
        probe(s, &format!("{PING}\nexpect = \"+PONG\"")).await,
        fail("timed out after 500ms (got \"-LOADING dataset\\r\\n\")")
    );
}

#[tokio::test]
async fn tcp_send_expect_fails_when_the_server_closes_before_replying() {
    let s = line_server(b"", Then::Close).await;
    assert_eq!(
        probe(s, &format!("{PING}\nexpect = \"+PONG\"")).await,
        fail("connection closed before any reply")
    );
}

#[tokio::test]
async fn tcp_send_expect_reads_no_more_than_reply_limit() {
    static LONG: [u8; 300] = [b'a'; 300];
    let s = line_server(&LONG, Then::Stay).await;
    let out = probe(s, &format!("{PING}\nexpect = \"+PONG\"\nreply_limit = 100")).await;
    assert_eq!(
        out,
        fail(&format!(
            "no \"+PONG\" within reply_limit (100 bytes): got \"{}…\" (100 bytes)",
            "a".repeat(64)
        ))
    );
}

#[tokio::test]
async fn tcp_expect_without_send_checks_a_banner() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"220 mail.example.test ESMTP\r\n").await;
        }
    });
    assert_eq!(probe(addr, "type = \"tcp\"\nexpect = \"220 \"").await, PASS);
    assert_eq!(
        probe(addr, "type = \"tcp\"\nexpect_regex = \"^554\"").await,
        fail("connection closed after \"220 mail.example.test ESMTP\\r\\n\", which does not match /^554/")
    );
}
