//! smtp checks against an SMTP server on loopback written here: real SMTP over TCP, STARTTLS
//! with the test certificate of tests/fixtures/tls (localhost and 127.0.0.1), and servers that
//! misbehave each in one way.

mod common;

use common::{fail, tls_acceptor, PASS, TLS_FIXTURES};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvs_hc::probe::{Prober, TokioConnect};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the test server behaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    /// A well-behaved server; `starttls` says whether EHLO offers STARTTLS.
    Good { starttls: bool },
    /// Greets with a multi-line 220 banner, then behaves.
    MultiLineBanner,
    /// Greets with 554 (and a control character in its text).
    Banner554,
    /// Refuses EHLO.
    EhloRefused,
    /// Closes the connection on reading EHLO.
    CloseAtEhlo,
    /// Answers EHLO with continuation lines that never end.
    EndlessReply,
    /// Answers EHLO with one line that never ends.
    EndlessLine,
    /// Accepts and never says a word.
    Silent,
    /// Sends plaintext after its STARTTLS 220, before the handshake.
    InjectAfterStartTls,
}

/// A test SMTP server and the commands it received.
struct Server {
    addr: SocketAddr,
    commands: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(script: Script) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let log = commands.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = session(stream, script, log).await;
                });
            }
        });
        Server { addr, commands }
    }

    fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    let banner: &[u8] = match script {
        Script::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        Script::Banner554 => b"554 5.3.2 no\x07 service here\r\n",
        Script::MultiLineBanner => {
            b"220-mx.test ESMTP\r\n220-No UCE\r\n220 mx.test ready when you are\r\n"
        }
        _ => b"220 mx.test ESMTP test server\r\n",
    };
    stream.write_all(banner).await?;
    let Some(stream) = dialogue(stream, script, &log, Phase::Plain).await? else {
        return Ok(());
    };
    let tls = tls_acceptor(&[]).accept(stream.into_inner()).await?;
    dialogue(BufReader::new(tls), script, &log, Phase::Tls).await?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Plain,
    Tls,
}

/// Answers commands; returns the stream when STARTTLS was accepted.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: BufReader<S>,
    script: Script,
    log: &Mutex<Vec<String>>,
    phase: Phase,
) -> std::io::Result<Option<BufReader<S>>> {
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let command = line.trim_end().to_string();
        let tag = match phase {
            Phase::Plain => command.clone(),
            Phase::Tls => format!("(TLS) {command}"),
        };
        log.lock().unwrap().push(tag);
        let verb = command.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match (script, verb.as_str()) {
            (_, "QUIT") => {
                stream.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(None);
            }
            (Script::EhloRefused, "EHLO") => {
                stream.write_all(b"550 5.7.1 go away\r\n").await?;
            }
            (Script::CloseAtEhlo, "EHLO") => return Ok(None),
            (Script::EndlessReply, "EHLO") => loop {
                stream.write_all(b"250-X-PADDING lots of it\r\n").await?;
            },
            (Script::EndlessLine, "EHLO") => {
                stream.write_all(b"250-").await?;
                loop {
                    stream.write_all(&[b'x'; 1024]).await?;
                }
            }
            (_, "EHLO") => {
                let starttls = match script {
                    Script::Good { starttls } => starttls,
                    Script::InjectAfterStartTls => true,
                    _ => false,
                };
                let offer = starttls && phase == Phase::Plain;
                let reply = format!(
                    "250-mx.test greets {}\r\n250-PIPELINING\r\n{}250 8BITMIME\r\n",
                    command.get(5..).unwrap_or(""),
                    if offer { "250-STARTTLS\r\n" } else { "" }
                );
                stream.write_all(reply.as_bytes()).await?;
            }
            (_, "STARTTLS") if phase == Phase::Plain => {
                if script == Script::InjectAfterStartTls {
                    stream
                        .write_all(b"220 2.0.0 go ahead\r\n250 injected\r\n")
                        .await?;
                    // Keep the connection until the client gives up on it.
                    let mut rest = String::new();
                    let _ = stream.read_line(&mut rest).await;
                    return Ok(None);
                }
                stream.write_all(b"220 2.0.0 go ahead\r\n").await?;
                return Ok(Some(stream));
            }
            _ => stream.write_all(b"502 5.5.2 what?\r\n").await?,
        }
    }
}

fn request(server: SocketAddr, toml: &str) -> ProbeRequest {
    let timeout = if toml.contains("timeout") {
        ""
    } else {
        "timeout = \"2s\"\n"
    };
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:25\"\n[[service.check]]\ntype = \"smtp\"\n\
         {timeout}{toml}\n[[service.server]]\naddress = \"127.0.0.1:25\"\nforward = \"nat\"\n"
    );
    let config = Config::from_toml(&text, "smtp-test").unwrap_or_else(|e| panic!("{e}"));
    ProbeRequest {
        id: ProbeId(1),
        server,
        check: config.services[0].servers[0].checks[0].clone(),
    }
}

async fn probe(server: &Server, toml: &str) -> ProbeOutcome {
    Prober::new(TokioConnect)
        .probe(&request(server.addr, toml))
        .await
}

#[tokio::test]
async fn smtp_passes_on_banner_and_ehlo_and_quits() {
    let server = Server::start(Script::Good { starttls: false }).await;
    assert_eq!(probe(&server, "").await, PASS);
    assert_eq!(server.commands(), ["EHLO lvs-hc.localdomain", "QUIT"]);
}

#[tokio::test]
async fn smtp_reads_multi_line_banners_and_sends_its_helo_name() {
    let server = Server::start(Script::MultiLineBanner).await;
    let out = probe(&server, "helo_name = \"director.example.com\"").await;
    assert_eq!(out, PASS);
    assert_eq!(server.commands(), ["EHLO director.example.com", "QUIT"]);
}

#[tokio::test]
async fn smtp_fails_on_a_554_banner_quoting_it_escaped() {
    let server = Server::start(Script::Banner554).await;
    assert_eq!(
        probe(&server, "").await,
        fail("banner 554 5.3.2 no\\u{7} service here: expected 220")
    );
    assert_eq!(server.commands(), Vec::<String>::new());
}

#[tokio::test]
async fn smtp_fails_when_ehlo_is_refused() {
    let server = Server::start(Script::EhloRefused).await;
    assert_eq!(
        probe(&server, "").await,
        fail("EHLO answered 550 5.7.1 go away: expected 250")
    );
}

#[tokio::test]
async fn smtp_with_starttls_passes_after_a_verified_handshake_and_a_second_ehlo() {
    let server = Server::start(Script::Good { starttls: true }).await;
    let toml = format!("starttls = true\nca_file = \"{TLS_FIXTURES}/cert.pem\"");
    assert_eq!(probe(&server, &toml).await, PASS);
    assert_eq!(
        server.commands(),
        [
            "EHLO lvs-hc.localdomain",
            "STARTTLS",
            "(TLS) EHLO lvs-hc.localdomain",
            "(TLS) QUIT"
        ]
    );
}

#[tokio::test]
async fn smtp_with_starttls_fails_when_the_server_does_not_offer_it() {
    let server = Server::start(Script::Good { starttls: false }).await;
    let toml = format!("starttls = true\nca_file = \"{TLS_FIXTURES}/cert.pem\"");
    assert_eq!(probe(&server, &toml).await, fail("STARTTLS not offered"));
    // Without starttls, the same server passes.
    assert_eq!(probe(&server, "").await, PASS);
}

#[tokio::test]
async fn smtp_with_starttls_fails_on_a_certificate_it_cannot_verify() {
    let server = Server::start(Script::Good { starttls: true }).await;
    // The test certificate is self-signed: the system's roots do not vouch for it.
    let out = probe(&server, "starttls = true").await;
    match &out {
        ProbeOutcome::Fail { reason } => assert!(
            reason.starts_with("TLS handshake failed: invalid peer certificate"),
            "{reason}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // A name the certificate does not carry fails even with the certificate trusted.
    let toml =
        format!("starttls = true\nsni = \"mx.example.com\"\nca_file = \"{TLS_FIXTURES}/cert.pem\"");
    match probe(&server, &toml).await {
        ProbeOutcome::Fail { reason } => assert!(
            reason.starts_with("TLS handshake failed: invalid peer certificate: certificate not valid for name \"mx.example.com\""),
            "{reason}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // verify = false accepts it.
    assert_eq!(
        probe(&server, "starttls = true\nverify = false").await,
        PASS
    );
}

#[tokio::test]
async fn smtp_fails_when_the_server_closes_mid_dialogue() {
    let server = Server::start(Script::CloseAtEhlo).await;
    assert_eq!(
        probe(&server, "").await,
        fail("the server closed the connection before the EHLO reply")
    );
}

#[tokio::test]
async fn an_endless_multi_line_reply_fails_at_its_bound_not_the_timeout() {
    let server = Server::start(Script::EndlessReply).await;
    let started = Instant::now();
    assert_eq!(
        probe(&server, "").await,
        fail("the EHLO reply runs past 128 lines (first: 250-X-PADDING lots of it)")
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_reply_line_fails_at_its_bound_not_the_timeout() {
    let server = Server::start(Script::EndlessLine).await;
    let started = Instant::now();
    let out = probe(&server, "").await;
    let quoted = format!("250-{}...", "x".repeat(96));
    assert_eq!(
        out,
        fail(&format!(
            "the EHLO reply has a line longer than 2048 bytes: {quoted}"
        ))
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_silent_server_fails_at_the_timeout() {
    let server = Server::start(Script::Silent).await;
    let started = Instant::now();
    assert_eq!(
        probe(&server, "timeout = \"300ms\"").await,
        fail("timed out after 300ms")
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn plaintext_after_the_starttls_reply_fails_the_check() {
    let server = Server::start(Script::InjectAfterStartTls).await;
    assert_eq!(
        probe(&server, "starttls = true\nverify = false").await,
        fail(
            "the server sent 14 bytes before the TLS handshake, after its STARTTLS reply: \
             250 injected\\r\\n"
        )
    );
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let out = Prober::new(TokioConnect).probe(&request(addr, "")).await;
    assert_eq!(out, fail("connection refused"));
}
