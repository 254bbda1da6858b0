//! The HTTP probe on arbitrary server answers. The first byte sets the scene, the rest is what
//! the server sends:
//!
//! - bit 0: the server closes after its answer (0), or keeps the connection and answers every
//!   request again (1);
//! - bit 1: it waits for the request (0), or speaks first, like a banner (1);
//! - bits 2-3: the check, from [`CHECKS`];
//! - bits 4-5: the pipe's capacity, from [`PIPE_SIZES`]: how finely the answer is cut.
//!
//! A probe never panics and ends with a verdict within its timeout. Time is tokio's paused
//! clock, so a server that never finishes costs a timer, not a second. A check that keeps
//! connections is probed twice, so the second probe can take the kept one.

#![no_main]

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use lvs_hc::probe::{Connect, Origin, Prober};
use lvs_hc_core::config::{Check, CheckKind};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::LocalSet;

/// The checks, as `[[service.check]]` tables.
const CHECKS: [&str; 4] = [
    // A fresh connection with `Connection: close`; the status decides.
    "type = \"http\"",
    // The body decides, within a small limit.
    "type = \"http\"\nexpect_body = \"ok\"\nbody_limit = 16",
    // A kept connection: the body is read to its end.
    "type = \"http\"\nreuse_connection = true\nexpect_body_regex = \"^server-[0-9]+$\"",
    // A kept connection for HEAD, whose response has no body whatever its headers say.
    "type = \"http\"\nmethod = \"HEAD\"\nreuse_connection = true\nexpect_status = [200, \"300-399\"]",
];

const PIPE_SIZES: [usize; 4] = [4096, 1, 7, 64];

static REQUESTS: LazyLock<Vec<ProbeRequest>> = LazyLock::new(|| {
    CHECKS
        .iter()
        .map(|check| ProbeRequest {
            id: ProbeId(1),
            server: SocketAddr::from(([10, 0, 0, 2], 80)),
            check: parse_check(check),
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&scene, answer)) = data.split_first() else {
        return;
    };
    let server = FakeServer {
        answer: Arc::from(answer),
        keep_open: scene & 1 != 0,
        speak_first: scene & 2 != 0,
        pipe_size: PIPE_SIZES[usize::from(scene >> 4) % PIPE_SIZES.len()],
    };
    let request = &REQUESTS[usize::from(scene >> 2) % CHECKS.len()];
    let probes = match &request.check.kind {
        CheckKind::Http(h) if h.reuse_connection => 2,
        _ => 1,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    // Local: the prober holds `Rc`s.
    LocalSet::new().block_on(&runtime, async {
        let prober = Prober::new(server);
        for _ in 0..probes {
            let started = tokio::time::Instant::now();
            match prober.probe(request).await {
                ProbeOutcome::Pass { .. }
                | ProbeOutcome::Fail { .. }
                | ProbeOutcome::Inconclusive { .. }
                | ProbeOutcome::DirectorFault { .. } => {}
                ProbeOutcome::Agent(r) => panic!("an http probe gave an agent's report: {r:?}"),
            }
            let took = started.elapsed();
            assert!(
                took <= request.timeout(),
                "the probe took {took:?}, over its timeout"
            );
        }
    });
});

fn parse_check(check: &str) -> Arc<Check> {
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\n[[service.check]]\n{check}\ntimeout = \"1s\"\n\
         [[service.server]]\naddress = \"10.0.0.2:80\"\nforward = \"nat\"\n"
    );
    let config = Config::from_toml(&text, "fuzz").unwrap_or_else(|e| panic!("{e}"));
    config.services[0].servers[0].checks[0].clone()
}

/// Connections to a server that answers with the same bytes every time, over in-memory pipes.
#[derive(Clone)]
struct FakeServer {
    answer: Arc<[u8]>,
    keep_open: bool,
    speak_first: bool,
    pipe_size: usize,
}

impl Connect for FakeServer {
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
        Err(io::Error::other("this target fuzzes HTTP responses: no datagrams"))
    }
}

impl FakeServer {
    /// Answers each request; dropping the stream closes the connection both ways, as close(2)
    /// does (what was sent can still be read).
    async fn serve(self, mut stream: DuplexStream) {
        let mut wait = !self.speak_first;
        loop {
            if wait && !request_head(&mut stream).await {
                return;
            }
            wait = true;
            if stream.write_all(&self.answer).await.is_err() || !self.keep_open {
                return;
            }
        }
    }
}

/// Reads a request up to the blank line that ends its head (probes send no body); false when
/// the client closed first.
async fn request_head(stream: &mut DuplexStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}
