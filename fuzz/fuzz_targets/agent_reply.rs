//! An agent's reply, arbitrary bytes: the parser (`parse_agent_reply`) on them as text, and
//! the agent probe on them as what an agent sends. The first byte sets the scene, the rest is
//! the reply:
//!
//! - bit 0: the agent closes after its reply (0), or keeps the connection open (1);
//! - bits 1-2: the pipe's capacity, from [`PIPE_SIZES`]: how finely the reply arrives.
//!
//! The parser never panics, and a report it returns says something (a health word, an
//! administrative word or a percentage of at most 1000). The probe never panics, ends within
//! its timeout, and gives a report or no verdict, never a pass, a failure or a fault of the
//! director: exactly the parser's report of the reply's first line when one arrives within
//! 1 KiB (or the whole reply when the agent closes without a line end). Time is tokio's paused
//! clock.

#![no_main]

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use lvs_hc::probe::{Connect, Origin, Prober};
use lvs_hc_core::admin::{parse_agent_reply, AGENT_PERCENT_MAX};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::LocalSet;

const PIPE_SIZES: [usize; 4] = [4096, 1, 7, 64];

/// The most of a reply the probe reads, its line end included (`probe/agent.rs`).
const LINE_MAX: usize = 1024;

static REQUEST: LazyLock<ProbeRequest> = LazyLock::new(|| {
    let text = "[[service]]\naddress = \"10.0.0.1:80\"\n\
                [[service.check]]\ntype = \"tcp\"\n\
                [[service.check]]\ntype = \"agent\"\nport = 5555\nsend = \"web\\n\"\ntimeout = \"1s\"\n\
                [[service.server]]\naddress = \"10.0.0.2:80\"\nforward = \"nat\"\n";
    let config = Config::from_toml(text, "fuzz").unwrap_or_else(|e| panic!("{e}"));
    ProbeRequest {
        id: ProbeId(1),
        server: config.services[0].servers[0].addr,
        check: config.services[0].servers[0].checks[1].clone(),
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&scene, reply)) = data.split_first() else {
        return;
    };
    if let Ok(r) = parse_agent_reply(&String::from_utf8_lossy(reply)) {
        assert!(
            r.health.is_some() || r.admin.is_some() || r.weight_percent.is_some(),
            "a report that says nothing: {r:?}"
        );
        assert!(
            r.weight_percent.is_none_or(|p| p <= AGENT_PERCENT_MAX),
            "{r:?}"
        );
    }

    let agent = FakeAgent {
        reply: Arc::from(reply),
        keep_open: scene & 1 != 0,
        pipe_size: PIPE_SIZES[usize::from(scene >> 1) % PIPE_SIZES.len()],
    };
    // The line the probe must judge, if it can: the first within LINE_MAX bytes, or what came
    // before the agent closed.
    let within = &reply[..reply.len().min(LINE_MAX)];
    let line = match within.iter().position(|b| *b == b'\n') {
        Some(end) => Some(&within[..end]),
        None if !agent.keep_open && reply.len() < LINE_MAX && !reply.is_empty() => Some(reply),
        None => None,
    };
    let expected = line.map(|l| {
        let text = String::from_utf8_lossy(l);
        match parse_agent_reply(text.trim_end_matches('\r')) {
            Ok(r) => Some(r),
            Err(_) => None,
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    // Local: the prober holds `Rc`s.
    LocalSet::new().block_on(&runtime, async {
        let started = tokio::time::Instant::now();
        let outcome = Prober::new(agent).probe(&REQUEST).await;
        let took = started.elapsed();
        assert!(
            took <= REQUEST.timeout(),
            "the probe took {took:?}, over its timeout"
        );
        match (outcome, expected) {
            (ProbeOutcome::Agent(r), Some(Some(want))) => assert_eq!(r, want),
            (ProbeOutcome::Inconclusive { .. }, None | Some(None)) => {}
            (outcome, expected) => {
                panic!("the probe gave {outcome:?}; the reply's line parses to {expected:?}")
            }
        }
    });
});

/// Connections to an agent that says the same bytes every time, over in-memory pipes.
#[derive(Clone)]
struct FakeAgent {
    reply: Arc<[u8]>,
    keep_open: bool,
    pipe_size: usize,
}

impl Connect for FakeAgent {
    type Stream = DuplexStream;
    type Datagram = tokio::net::UdpSocket;

    async fn connect(
        &self,
        _target: SocketAddr,
        _origin: Origin,
    ) -> io::Result<Self::Stream> {
        let (client, server) = tokio::io::duplex(self.pipe_size);
        tokio::task::spawn_local(self.clone().serve(server));
        Ok(client)
    }

    async fn open_datagram(
        &self,
        _target: SocketAddr,
        _origin: Origin,
    ) -> io::Result<Self::Datagram> {
        Err(io::Error::other(
            "this target fuzzes agent replies: no datagrams",
        ))
    }
}

impl FakeAgent {
    /// Says its reply at once while reading what the probe sends (a small pipe would
    /// otherwise block the probe's `send`), then closes its side unless it keeps it open.
    async fn serve(self, stream: DuplexStream) {
        let (mut read, mut write) = tokio::io::split(stream);
        let drain = async {
            let mut buf = [0u8; 64];
            while let Ok(n) = read.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let say = async {
            if write.write_all(&self.reply).await.is_ok() && !self.keep_open {
                let _ = write.shutdown().await;
            }
        };
        tokio::join!(drain, say);
    }
}
