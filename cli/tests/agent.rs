//! agent checks against agents on loopback written here, in HAProxy's agent protocol: one line
//! of words, then the agent closes. What the agent says is a report; whatever keeps lvs-hc
//! from hearing it is no verdict (agents are advisory); faults of the director stay faults of
//! the director.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lvs_hc::probe::{Prober, TokioConnect};
use lvs_hc_core::admin::{AgentAdmin, AgentHealth, AgentReport};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How a test agent behaves on each connection.
#[derive(Clone, Copy)]
enum Script {
    /// Writes its reply at once, closes its side, and reads what the prober sent until the
    /// prober closes.
    Say(&'static [u8]),
    /// Reads one line from the prober first, then writes its reply and closes.
    HearThenSay(&'static [u8]),
    /// Writes its reply and then says nothing more, keeping the connection open.
    SayAndHang(&'static [u8]),
    /// Resets the connection as soon as it is accepted.
    Reset,
}

/// A test agent and the bytes it received, per connection.
struct Agent {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Agent {
    async fn start(script: Script) -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let heard = session(stream, script).await;
                    log.lock().unwrap().push(heard);
                });
            }
        });
        Agent { addr, received }
    }

    /// What the prober sent on each connection, once the connections ended (they end when the
    /// prober closes, which may come after its verdict): waits a second at most.
    async fn received(&self) -> Vec<Vec<u8>> {
        for _ in 0..100 {
            if !self.received.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received.lock().unwrap().clone()
    }
}

/// One connection; what the prober sent on it.
async fn session(mut stream: tokio::net::TcpStream, script: Script) -> Vec<u8> {
    let mut heard = Vec::new();
    let mut buf = [0u8; 256];
    match script {
        Script::Say(reply) => {
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
        Script::HearThenSay(reply) => {
            while !heard.contains(&b'\n') {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return heard,
                    Ok(n) => heard.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
        Script::SayAndHang(reply) => {
            let _ = stream.write_all(reply).await;
        }
        Script::Reset => {
            // A zero linger resets at once and never blocks (tokio deprecates linger for the
            // blocking kind).
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO)).unwrap();
            return heard;
        }
    }
    // Until the prober closes (a hanging agent waits for that too).
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return heard,
            Ok(n) => heard.extend_from_slice(&buf[..n]),
        }
    }
}

/// A probe request of an agent check on `agent`'s port (`extra`: more keys of the check),
/// for a server that also has a tcp check (a server's checks cannot all be agent checks).
fn request(agent: SocketAddr, extra: &str) -> ProbeRequest {
    let timeout = if extra.contains("timeout") {
        ""
    } else {
        "timeout = \"2s\"\n"
    };
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\n\
         [[service.check]]\ntype = \"tcp\"\n\
         [[service.check]]\ntype = \"agent\"\nport = {}\n{timeout}{extra}\n\
         [[service.server]]\naddress = \"127.0.0.1:80\"\nforward = \"nat\"\n",
        agent.port()
    );
    let config = Config::from_toml(&text, "agent-test").unwrap_or_else(|e| panic!("{e}"));
    ProbeRequest {
        id: ProbeId(1),
        server: config.services[0].servers[0].addr,
        check: config.services[0].servers[0].checks[1].clone(),
    }
}

async fn probe(agent: SocketAddr, extra: &str) -> ProbeOutcome {
    Prober::new(TokioConnect)
        .probe(&request(agent, extra))
        .await
}

/// What an agent that says `reply` is heard to say.
async fn heard(reply: &'static [u8]) -> ProbeOutcome {
    let agent = Agent::start(Script::Say(reply)).await;
    probe(agent.addr, "").await
}

fn report(
    health: Option<AgentHealth>,
    admin: Option<AgentAdmin>,
    weight_percent: Option<u32>,
    text: &str,
) -> ProbeOutcome {
    ProbeOutcome::Agent(AgentReport {
        health,
        admin,
        weight_percent,
        text: text.into(),
    })
}

fn inconclusive(reason: &str) -> ProbeOutcome {
    ProbeOutcome::Inconclusive {
        reason: reason.into(),
    }
}

#[tokio::test]
async fn an_agent_saying_up_and_a_percentage_is_heard() {
    assert_eq!(
        heard(b"up 75%\n").await,
        report(Some(AgentHealth::Up), None, Some(75), "")
    );
}

#[tokio::test]
async fn drain_maint_and_ready_are_heard_with_a_description() {
    assert_eq!(
        heard(b"drain\n").await,
        report(None, Some(AgentAdmin::Drain), None, "")
    );
    assert_eq!(
        heard(b"maint # patching\n").await,
        report(None, Some(AgentAdmin::Maint), None, "patching")
    );
    assert_eq!(
        heard(b"ready\n").await,
        report(None, Some(AgentAdmin::Ready), None, "")
    );
}

#[tokio::test]
async fn down_and_stopped_are_heard_as_down() {
    assert_eq!(
        heard(b"down\n").await,
        report(Some(AgentHealth::Down), None, None, "agent says down")
    );
    assert_eq!(
        heard(b"stopped\n").await,
        report(Some(AgentHealth::Down), None, None, "agent says stopped")
    );
}

#[tokio::test]
async fn a_line_without_its_ending_counts_when_the_agent_closes() {
    assert_eq!(
        heard(b"up 50%").await,
        report(Some(AgentHealth::Up), None, Some(50), "")
    );
}

#[tokio::test]
async fn a_crlf_line_ending_is_not_part_of_the_reply() {
    assert_eq!(
        heard(b"maint # patching\r\n").await,
        report(None, Some(AgentAdmin::Maint), None, "patching")
    );
    assert_eq!(heard(b"25%\r\n").await, report(None, None, Some(25), ""));
}

#[tokio::test]
async fn only_the_first_line_is_read() {
    assert_eq!(
        heard(b"drain\nmaint\n").await,
        report(None, Some(AgentAdmin::Drain), None, "")
    );
}

#[tokio::test]
async fn a_reply_without_a_word_lvs_hc_knows_is_no_verdict() {
    assert_eq!(
        heard(b"hello there\n").await,
        inconclusive(
            "agent: agent reply `hello there` has no word lvs-hc understands (up, down, ready, \
             drain, maint, N%)"
        )
    );
}

#[tokio::test]
async fn an_impossible_percentage_is_no_verdict() {
    assert_eq!(
        heard(b"1001%\n").await,
        inconclusive("agent: `1001%` is not a weight percentage (0% to 1000%)")
    );
}

#[tokio::test]
async fn an_empty_reply_is_no_verdict() {
    assert_eq!(
        heard(b"").await,
        inconclusive("agent: the connection closed without a reply")
    );
    assert_eq!(
        heard(b"\n").await,
        inconclusive(
            "agent: agent reply `` has no word lvs-hc understands (up, down, ready, drain, \
             maint, N%)"
        )
    );
}

#[tokio::test]
async fn a_line_longer_than_1_kib_is_no_verdict_at_once() {
    static LONG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let long = LONG.get_or_init(|| {
        let mut line = b"up ".to_vec();
        line.resize(2048, b'x');
        line.push(b'\n');
        line
    });
    let agent = Agent::start(Script::SayAndHang(long)).await;
    let started = Instant::now();
    let out = probe(agent.addr, "timeout = \"5s\"").await;
    assert_eq!(
        out,
        inconclusive(&format!(
            "agent: no line end within 1024 bytes: got \"up {}…\" (1024 bytes)",
            "x".repeat(61)
        ))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_line_of_exactly_1_kib_is_read() {
    static LINE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let line = LINE.get_or_init(|| {
        let mut line = b"up 80% # ".to_vec();
        line.resize(1023, b'x');
        line.push(b'\n');
        line
    });
    let agent = Agent::start(Script::SayAndHang(line)).await;
    assert_eq!(
        probe(agent.addr, "").await,
        report(Some(AgentHealth::Up), None, Some(80), &"x".repeat(1014))
    );
}

#[tokio::test]
async fn a_refused_agent_port_is_no_verdict() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    assert_eq!(
        probe(addr, "").await,
        inconclusive("agent: connection refused")
    );
}

#[tokio::test]
async fn a_reset_is_no_verdict() {
    let agent = Agent::start(Script::Reset).await;
    assert_eq!(
        probe(agent.addr, "").await,
        inconclusive("agent: connection reset")
    );
}

#[tokio::test]
async fn a_silent_agent_is_no_verdict_at_the_timeout() {
    let agent = Agent::start(Script::SayAndHang(b"")).await;
    let started = Instant::now();
    let out = probe(agent.addr, "timeout = \"300ms\"").await;
    let took = started.elapsed();
    assert_eq!(out, inconclusive("agent: no reply within 300ms"));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1300),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_line_cut_short_by_silence_is_no_verdict_showing_what_came() {
    let agent = Agent::start(Script::SayAndHang(b"up 5")).await;
    assert_eq!(
        probe(agent.addr, "timeout = \"300ms\"").await,
        inconclusive("agent: no reply within 300ms (got \"up 5\")")
    );
}

#[tokio::test]
async fn send_is_written_to_the_agent_before_its_line_is_read() {
    let agent = Agent::start(Script::HearThenSay(b"ready 60%\n")).await;
    let out = probe(agent.addr, "send = \"status web-1\\n\"").await;
    assert_eq!(out, report(None, Some(AgentAdmin::Ready), Some(60), ""));
    assert_eq!(agent.received().await, [b"status web-1\n".to_vec()]);
}

#[tokio::test]
async fn without_send_nothing_is_written() {
    let agent = Agent::start(Script::Say(b"up\n")).await;
    assert_eq!(
        probe(agent.addr, "").await,
        report(Some(AgentHealth::Up), None, None, "")
    );
    assert_eq!(agent.received().await, [Vec::<u8>::new()]);
}

#[tokio::test]
async fn a_source_address_the_director_lacks_is_a_fault_of_the_director() {
    // 192.0.2.77 (TEST-NET-1) is on no interface here: the bind fails before any packet.
    let agent = Agent::start(Script::Say(b"up\n")).await;
    assert_eq!(
        probe(agent.addr, "source = \"192.0.2.77\"").await,
        ProbeOutcome::DirectorFault {
            reason: "cannot bind to source 192.0.2.77: Cannot assign requested address \
                     (EADDRNOTAVAIL)"
                .into()
        }
    );
}

/// Connects nowhere: every connection fails with one errno.
#[derive(Clone, Copy)]
struct FailWith(i32);

impl lvs_hc::probe::Connect for FailWith {
    type Stream = tokio::net::TcpStream;
    type Datagram = tokio::net::UdpSocket;

    async fn connect(
        &self,
        _target: SocketAddr,
        _origin: lvs_hc::probe::Origin,
    ) -> std::io::Result<Self::Stream> {
        Err(std::io::Error::from_raw_os_error(self.0))
    }

    async fn open_datagram(
        &self,
        _target: SocketAddr,
        _origin: lvs_hc::probe::Origin,
    ) -> std::io::Result<Self::Datagram> {
        Err(std::io::Error::from_raw_os_error(self.0))
    }
}

#[tokio::test]
async fn no_descriptors_is_a_fault_of_the_director_and_a_network_error_is_no_verdict() {
    let req = request("127.0.0.1:1".parse().unwrap(), "");
    assert_eq!(
        Prober::new(FailWith(libc::EMFILE)).probe(&req).await,
        ProbeOutcome::DirectorFault {
            reason: "Too many open files (EMFILE)".into()
        }
    );
    assert_eq!(
        Prober::new(FailWith(libc::EHOSTUNREACH)).probe(&req).await,
        inconclusive("agent: no route to host")
    );
}
