//! Writes the seeds of the `netlink_decode` fuzz target: the datagrams the kernel sends back to
//! `NetlinkBackend` (service and destination dumps, an info reply, acknowledgements and errors),
//! built with this crate's encoder, one file each.
//!
//! ```sh
//! cargo run -p ipvs-sys --example netlink_seeds -- fuzz/seeds/netlink_decode
//! ```

use std::num::NonZeroI32;
use std::path::PathBuf;

use ipvs_sys::netlink::codec::{self, cmd, Attr, DestAttr, IpvsMessage, StatsAttr, SvcAttr};
use ipvs_sys::netlink::encode_request;
use lvs_hc_core::{
    DestParams, Family, Forward, Op, Persistence, SchedFlags, ServiceKey, ServiceParams,
};
use netlink_packet_core::{
    DoneMessage, ErrorMessage, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK,
    NLM_F_DUMP_INTR, NLM_F_MULTIPART, NLM_F_REQUEST,
};
use netlink_packet_generic::GenlMessage;

/// The family id the kernel gave IPVS (it varies; the golden tests use the same).
const FAMILY: u16 = 0x24;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: netlink_seeds DIR"));
    std::fs::create_dir_all(&dir).expect("creating the seed directory");
    let tcp = ServiceKey::Tcp("192.168.0.101:80".parse().unwrap());
    let seeds: [(&str, Vec<u8>); 8] = [
        (
            "service-dump",
            [
                dump_part(service(tcp, ServiceParams::new("wlc")), 1, 0),
                dump_part(service(udp6(), persistent_sh()), 1, 0),
                dump_part(service(fwmark(), mh()), 1, 0),
                done(1, 0),
            ]
            .concat(),
        ),
        (
            "dest-dump",
            [
                dump_part(
                    dest("192.168.0.179:80", DestParams::new(Forward::Dr, 2)),
                    2,
                    0,
                ),
                dump_part(dest("192.168.0.180:80", thresholds()), 2, 0),
                done(2, 0),
            ]
            .concat(),
        ),
        (
            "dump-interrupted",
            [
                dump_part(service(tcp, ServiceParams::new("rr")), 3, NLM_F_DUMP_INTR),
                done(3, NLM_F_DUMP_INTR),
            ]
            .concat(),
        ),
        ("dump-failed", dump_failed(4, libc::ENOMEM)),
        ("info-reply", [info_reply(5), ack(5, 0)].concat()),
        ("ack", ack(6, 0)),
        ("service-exists", ack(7, -libc::EEXIST)),
        (
            "add-dest-request",
            encode_request(
                codec::op_message(&Op::AddDest {
                    service: tcp,
                    dest: "192.168.0.179:80".parse().unwrap(),
                    params: DestParams::new(Forward::Dr, 2),
                }),
                FAMILY,
                8,
                NLM_F_REQUEST | NLM_F_ACK,
            ),
        ),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("writing a seed");
    }
}

fn udp6() -> ServiceKey {
    ServiceKey::Udp("[2001:db8::1]:53".parse().unwrap())
}

fn fwmark() -> ServiceKey {
    ServiceKey::Fwmark {
        mark: 7,
        family: Family::Ipv4,
    }
}

fn persistent_sh() -> ServiceParams {
    ServiceParams {
        persistence: Some(Persistence {
            timeout: 300,
            prefix: 64,
        }),
        sched_flags: SchedFlags::FLAG2,
        pe: Some("sip".into()),
        ..ServiceParams::new("sh")
    }
}

fn mh() -> ServiceParams {
    ServiceParams {
        one_packet: true,
        ..ServiceParams::new("mh")
    }
}

fn thresholds() -> DestParams {
    DestParams {
        weight: 0,
        forward: Forward::Nat,
        upper: 100,
        lower: 10,
    }
}

/// Traffic statistics as the kernel reports them: connections 32-bit, bytes 64-bit.
fn stats() -> Vec<StatsAttr> {
    [
        (1, 12, false),
        (2, 340, false),
        (4, 56_000, true),
        (6, 3, false),
    ]
    .into_iter()
    .map(|(kind, value, wide)| StatsAttr { kind, value, wide })
    .collect()
}

fn stats64() -> Vec<StatsAttr> {
    stats()
        .into_iter()
        .map(|s| StatsAttr { wide: true, ..s })
        .collect()
}

/// A service as a dump describes it: its settings, the kernel's HASHED flag, statistics.
fn service(key: ServiceKey, params: ServiceParams) -> IpvsMessage {
    let mut attrs = codec::service_attrs(&key, &params);
    for attr in &mut attrs {
        if let SvcAttr::Flags { flags, .. } = attr {
            *flags |= 0x2;
        }
    }
    attrs.extend([SvcAttr::Stats(stats()), SvcAttr::Stats64(stats64())]);
    IpvsMessage {
        cmd: cmd::NEW_SERVICE,
        attrs: vec![Attr::Service(attrs)],
    }
}

/// A destination as a dump describes it: its settings, connection counts, statistics.
fn dest(addr: &str, params: DestParams) -> IpvsMessage {
    let mut attrs = codec::dest_attrs(&addr.parse().unwrap(), Some(&params));
    attrs.extend([
        DestAttr::ActiveConns(4),
        DestAttr::InactConns(9),
        DestAttr::PersistConns(0),
        DestAttr::Stats(stats()),
        DestAttr::Stats64(stats64()),
    ]);
    IpvsMessage {
        cmd: cmd::NEW_DEST,
        attrs: vec![Attr::Dest(attrs)],
    }
}

fn info_reply(seq: u32) -> Vec<u8> {
    let msg = IpvsMessage {
        cmd: cmd::SET_INFO,
        attrs: vec![Attr::InfoVersion(0x01_02_01), Attr::InfoConnTabSize(4096)],
    };
    encode_request(msg, FAMILY, seq, 0)
}

fn dump_part(msg: IpvsMessage, seq: u32, flags: u16) -> Vec<u8> {
    encode_request(msg, FAMILY, seq, NLM_F_MULTIPART | flags)
}

/// The end of a dump.
fn done(seq: u32, flags: u16) -> Vec<u8> {
    control(
        seq,
        NLM_F_MULTIPART | flags,
        NetlinkPayload::Done(DoneMessage::default()),
    )
}

/// The end of a dump that failed: the negative errno in place of the usual 0.
fn dump_failed(seq: u32, errno: i32) -> Vec<u8> {
    let mut message = DoneMessage::default();
    message.code = -errno;
    control(seq, NLM_F_MULTIPART, NetlinkPayload::Done(message))
}

/// An acknowledgement (`errno` 0) or an error (a negative errno), echoing the request's header.
fn ack(seq: u32, errno: i32) -> Vec<u8> {
    let mut message = ErrorMessage::default();
    message.code = NonZeroI32::new(errno);
    message.header = request_header(seq);
    control(seq, 0, NetlinkPayload::Error(message))
}

fn request_header(seq: u32) -> Vec<u8> {
    let mut header = vec![0u8; 16];
    header[..4].copy_from_slice(&20u32.to_ne_bytes());
    header[4..6].copy_from_slice(&FAMILY.to_ne_bytes());
    header[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    header[8..12].copy_from_slice(&seq.to_ne_bytes());
    header
}

fn control(seq: u32, flags: u16, payload: NetlinkPayload<GenlMessage<IpvsMessage>>) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut message = NetlinkMessage::new(header, payload);
    message.finalize();
    let mut bytes = vec![0u8; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}
