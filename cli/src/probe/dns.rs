//! dns checks: one query over UDP, or over TCP with each message after its two-byte length
//! (RFC 1035 4.2.2); the answer must carry the query's ID and the response flag, the expected
//! response code, and, when the check names addresses, one of them in an A or AAAA record of
//! its answer section. Messages are built and read by `hickory-proto`.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use lvs_hc_core::config::{DnsCheck, DnsRcode, DnsTransport, DnsType};
use lvs_hc_core::{ProbeOutcome, ProbeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::udp;
use super::{fail, io_outcome, Connect, Origin, Prober};

impl<C: Connect> Prober<C> {
    /// A dns probe: the query, the answer, and the verdict on it.
    pub(super) async fn dns(&self, req: &ProbeRequest, d: &DnsCheck) -> ProbeOutcome {
        let id = query_id(req);
        let query = match query(d, id) {
            Ok(q) => q,
            Err(reason) => return ProbeOutcome::DirectorFault { reason },
        };
        let answer = match d.transport {
            DnsTransport::Udp => self.dns_udp(req, &query).await,
            DnsTransport::Tcp => self.dns_tcp(req, &query).await,
        };
        match answer {
            Ok(bytes) => judge(d, id, &bytes),
            Err(outcome) => outcome,
        }
    }

    async fn dns_udp(&self, req: &ProbeRequest, query: &[u8]) -> Result<Vec<u8>, ProbeOutcome> {
        let socket = udp::send(&self.connect, req, query).await?;
        udp::reply(&socket).await
    }

    async fn dns_tcp(&self, req: &ProbeRequest, query: &[u8]) -> Result<Vec<u8>, ProbeOutcome> {
        let mut stream = self
            .connect
            .connect(req.target(), Origin::of(req))
            .await
            .map_err(|e| io_outcome(&e))?;
        let mut framed = Vec::with_capacity(2 + query.len());
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        stream
            .write_all(&framed)
            .await
            .map_err(|e| io_outcome(&e))?;
        let closed = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => fail("connection closed before the answer"),
            _ => io_outcome(&e),
        };
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(closed)?;
        let mut answer = vec![0u8; u16::from_be_bytes(len).into()];
        stream.read_exact(&mut answer).await.map_err(closed)?;
        Ok(answer)
    }
}

/// A query ID that differs from one probe to the next.
fn query_id(req: &ProbeRequest) -> u16 {
    // Consecutive probe numbers give unrelated IDs, the same in every replay of a simulation.
    lvs_hc_core::rng::SplitMix64::new(req.id.0).next_u64() as u16
}

/// The query's bytes. (The name was checked when the configuration was read, so an error here
/// is lvs-hc's.)
fn query(d: &DnsCheck, id: u16) -> Result<Vec<u8>, String> {
    let name = Name::from_ascii(&d.query_name)
        .map_err(|e| format!("cannot encode query name {}: {e}", d.query_name))?;
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name, RecordType::from(d.query_type.code())));
    m.to_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))
}

/// The verdict on an answer's bytes.
fn judge(d: &DnsCheck, id: u16, bytes: &[u8]) -> ProbeOutcome {
    let m = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(e) => return fail(format!("not a DNS message ({} bytes): {e}", bytes.len())),
    };
    if m.message_type() != MessageType::Response {
        return fail("the answer is a query (QR bit clear), not a response");
    }
    if m.id() != id {
        return fail(format!("answer ID {} does not match query ID {id}", m.id()));
    }
    let rcode = u16::from(m.response_code());
    if rcode != d.expect_rcode.code() {
        return fail(format!(
            "rcode {}, expected {}",
            rcode_name(rcode),
            d.expect_rcode.as_str()
        ));
    }
    if d.expect_address.is_empty() {
        return ProbeOutcome::Pass { weight: None };
    }
    let got: Vec<IpAddr> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    if d.expect_address.iter().any(|ip| got.contains(ip)) {
        return ProbeOutcome::Pass { weight: None };
    }
    let kind = match d.query_type {
        DnsType::A => "A",
        DnsType::Aaaa => "AAAA",
        _ => "A/AAAA",
    };
    let wanted: Vec<String> = d.expect_address.iter().map(IpAddr::to_string).collect();
    let seen = if got.is_empty() {
        "none".to_string()
    } else {
        got.iter()
            .map(IpAddr::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let truncated = if m.truncated() {
        "; the answer was truncated (TC): try transport = \"tcp\""
    } else {
        ""
    };
    fail(format!(
        "no {kind} record {} in the answer (got {seen}){truncated}",
        wanted.join(" or ")
    ))
}

/// `SERVFAIL`, or `rcode 9` for a code the configuration does not name.
fn rcode_name(code: u16) -> String {
    DnsRcode::ALL
        .into_iter()
        .find(|r| r.code() == code)
        .map_or_else(|| format!("rcode {code}"), |r| r.as_str().to_string())
}
