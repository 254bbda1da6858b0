//! dns checks against a real DNS server, Debian's dnsmasq, on loopback (fetched by
//! `common::peers` when the host lacks it: a failure to get it fails these tests).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::peers::{free_port, Dnsmasq};
use common::{fail, PASS};
use lvs_hc::probe::{Prober, TokioConnect};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};

/// www.example.test is 192.0.2.7 and 2001:db8::7; other names under example.test do not
/// exist (NXDOMAIN); names elsewhere are refused (no upstream).
fn server() -> Dnsmasq {
    Dnsmasq::start(&[
        "--host-record=www.example.test,192.0.2.7,2001:db8::7",
        "--local=/example.test/",
    ])
}

async fn probe(server: SocketAddr, toml: &str) -> ProbeOutcome {
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:53\"\nprotocol = \"udp\"\n[[service.check]]\n\
         type = \"dns\"\ntimeout = \"1s\"\n{toml}\n[[service.server]]\naddress = \"127.0.0.1:53\"\n\
         forward = \"nat\"\n"
    );
    let config = Config::from_toml(&text, "dns-test").unwrap_or_else(|e| panic!("{e}"));
    let request = ProbeRequest {
        id: ProbeId(7),
        server,
        check: config.services[0].servers[0].checks[0].clone(),
    };
    Prober::new(TokioConnect).probe(&request).await
}

#[tokio::test]
async fn a_name_the_server_knows_passes_over_udp_and_tcp() {
    let dns = server();
    for transport in ["udp", "tcp"] {
        let check = format!("query_name = \"www.example.test\"\ntransport = \"{transport}\"");
        assert_eq!(probe(dns.addr, &check).await, PASS, "{transport}");
    }
}

#[tokio::test]
async fn an_unexpected_rcode_fails_and_names_both_codes() {
    let dns = server();
    let out = probe(dns.addr, "query_name = \"nope.example.test\"").await;
    assert_eq!(out, fail("rcode NXDOMAIN, expected NOERROR"));
    // Expecting it passes: a check that a name is absent.
    let check = "query_name = \"nope.example.test\"\nexpect_rcode = \"NXDOMAIN\"";
    assert_eq!(probe(dns.addr, check).await, PASS);
    let check =
        "query_name = \"nope.example.test\"\nexpect_rcode = \"NXDOMAIN\"\ntransport = \"tcp\"";
    assert_eq!(probe(dns.addr, check).await, PASS);
}

#[tokio::test]
async fn an_expected_address_must_be_in_the_answer() {
    let dns = server();
    let check =
        "query_name = \"www.example.test\"\nexpect_address = [\"192.0.2.9\", \"192.0.2.7\"]";
    assert_eq!(probe(dns.addr, check).await, PASS);
    let check = "query_name = \"www.example.test\"\nexpect_address = [\"192.0.2.9\"]";
    assert_eq!(
        probe(dns.addr, check).await,
        fail("no A record 192.0.2.9 in the answer (got 192.0.2.7)")
    );
    let check = "query_name = \"www.example.test\"\nquery_type = \"AAAA\"\n\
                 expect_address = [\"2001:db8::7\"]\ntransport = \"tcp\"";
    assert_eq!(probe(dns.addr, check).await, PASS);
    let check = "query_name = \"www.example.test\"\nquery_type = \"AAAA\"\n\
                 expect_address = [\"2001:db8::8\"]";
    assert_eq!(
        probe(dns.addr, check).await,
        fail("no AAAA record 2001:db8::8 in the answer (got 2001:db8::7)")
    );
}

#[tokio::test]
async fn a_server_gone_is_port_unreachable_over_udp_and_refused_over_tcp() {
    let dns = server();
    let addr = dns.addr;
    drop(dns);
    let out = probe(addr, "query_name = \"www.example.test\"").await;
    assert_eq!(out, fail("ICMP port unreachable"));
    let out = probe(
        addr,
        "query_name = \"www.example.test\"\ntransport = \"tcp\"",
    )
    .await;
    assert_eq!(out, fail("connection refused"));
}

#[tokio::test]
async fn a_server_that_never_answers_fails_at_the_timeout() {
    // A bound socket that reads nothing: no ICMP error, no answer.
    let silent = std::net::UdpSocket::bind(("127.0.0.1", free_port())).unwrap();
    let started = Instant::now();
    let out = probe(
        silent.local_addr().unwrap(),
        "query_name = \"www.example.test\"",
    )
    .await;
    assert_eq!(out, fail("timed out after 1s"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}
