//! The netlink codec: golden bytes for every request kind, decode round trips, and a decoder
//! that never panics on arbitrary bytes.

use std::fmt::Write as _;
use std::net::SocketAddr;

use ipvs_sys::netlink::codec::{self, Attr, DestAttr, IpvsMessage, StatsAttr, SvcAttr};
use ipvs_sys::netlink::{decode_datagram, encode_request, Reply};
use lvs_hc_core::{
    DestParams, Family, Forward, Op, Persistence, SchedFlags, ServiceKey, ServiceParams,
};
use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use proptest::prelude::*;

const FAMILY: u16 = 0x24;

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:04x}:", i * 16);
        for b in chunk {
            let _ = write!(out, " {b:02x}");
        }
        out.push('\n');
    }
    out
}

fn golden(op: &Op) -> String {
    format!(
        "{op}\n{}",
        hex(&encode_request(
            codec::op_message(op),
            FAMILY,
            7,
            NLM_F_REQUEST | NLM_F_ACK
        ))
    )
}

fn tcp() -> ServiceKey {
    ServiceKey::Tcp("192.168.0.101:80".parse().unwrap())
}
fn v6() -> ServiceKey {
    ServiceKey::Udp("[2001:db8::1]:53".parse().unwrap())
}
fn fwm() -> ServiceKey {
    ServiceKey::Fwmark {
        mark: 7,
        family: Family::Ipv4,
    }
}
fn persistent(scheduler: &str, timeout: u32, prefix: u8) -> ServiceParams {
    let mut p = ServiceParams::new(scheduler);
    p.persistence = Some(Persistence { timeout, prefix });
    p
}

#[test]
fn golden_service_requests() {
    let ops = [
        Op::AddService {
            key: tcp(),
            params: ServiceParams::new("wlc"),
        },
        Op::AddService {
            key: tcp(),
            params: persistent("rr", 300, 24),
        },
        Op::EditService {
            key: v6(),
            params: persistent("sh", 60, 64),
        },
        Op::DelService { key: fwm() },
        Op::AddService {
            key: ServiceKey::Fwmark {
                mark: 9,
                family: Family::Ipv6,
            },
            params: ServiceParams {
                one_packet: true,
                sched_flags: SchedFlags::FLAG2,
                ..ServiceParams::new("mh")
            },
        },
    ];
    let text: Vec<String> = ops.iter().map(golden).collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn golden_destination_requests() {
    let rs: SocketAddr = "192.168.0.179:80".parse().unwrap();
    let rs6: SocketAddr = "[2001:db8::2]:5353".parse().unwrap();
    let ops = [
        Op::AddDest {
            service: tcp(),
            dest: rs,
            params: DestParams::new(Forward::Dr, 2),
        },
        Op::EditDest {
            service: tcp(),
            dest: rs,
            params: DestParams {
                weight: 0,
                forward: Forward::Dr,
                upper: 100,
                lower: 10,
            },
        },
        Op::DelDest {
            service: tcp(),
            dest: rs,
        },
        Op::AddDest {
            service: v6(),
            dest: rs6,
            params: DestParams::new(Forward::Nat, 10),
        },
        Op::AddDest {
            service: fwm(),
            dest: "10.0.0.3:0".parse().unwrap(),
            params: DestParams::new(Forward::Tun, 1),
        },
    ];
    let text: Vec<String> = ops.iter().map(golden).collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn golden_reads() {
    let text = [
        (
            "dump services",
            encode_request(
                codec::dump_services(),
                FAMILY,
                1,
                NLM_F_REQUEST | NLM_F_DUMP,
            ),
        ),
        (
            "dump dests of TCP 192.168.0.101:80",
            encode_request(
                codec::dump_dests(&tcp()),
                FAMILY,
                2,
                NLM_F_REQUEST | NLM_F_DUMP,
            ),
        ),
        (
            "get info",
            encode_request(codec::get_info(), FAMILY, 3, NLM_F_REQUEST | NLM_F_ACK),
        ),
        (
            "flush",
            encode_request(codec::flush(), FAMILY, 4, NLM_F_REQUEST | NLM_F_ACK),
        ),
    ]
    .iter()
    .map(|(name, bytes)| format!("{name}\n{}", hex(bytes)))
    .collect::<Vec<_>>()
    .join("\n");
    insta::assert_snapshot!(text);
}

/// A netlink control message (`NLMSG_ERROR`, `NLMSG_DONE`) with sequence number 9.
fn control(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
    bytes.extend(kind.to_ne_bytes());
    bytes.extend(0u16.to_ne_bytes());
    bytes.extend(9u32.to_ne_bytes());
    bytes.extend(0u32.to_ne_bytes());
    bytes.extend(payload);
    bytes
}

/// Found by fuzz/ (netlink_decode): an error code of i32::MIN, which no errno negates to,
/// overflowed the negation.
#[test]
fn error_codes_beyond_any_errno_are_errors() {
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    let code = i32::MIN.to_ne_bytes();
    let error = [&code[..], &[0; 16]].concat(); // the code, then the request's header
    for bytes in [control(NLMSG_ERROR, &error), control(NLMSG_DONE, &code)] {
        assert_eq!(
            decode_datagram(&bytes).unwrap(),
            vec![Reply::Ack {
                seq: 9,
                errno: i32::MAX
            }]
        );
    }
}

fn service_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (any::<[u8; 4]>(), 1u16..)
            .prop_map(|(ip, port)| ServiceKey::Tcp(SocketAddr::from((ip, port)))),
        (any::<[u8; 16]>(), 1u16..)
            .prop_map(|(ip, port)| ServiceKey::Udp(SocketAddr::from((ip, port)))),
        (any::<[u8; 4]>(), 1u16..)
            .prop_map(|(ip, port)| ServiceKey::Sctp(SocketAddr::from((ip, port)))),
        (1u32.., any::<bool>()).prop_map(|(mark, v6)| ServiceKey::Fwmark {
            mark,
            family: if v6 { Family::Ipv6 } else { Family::Ipv4 }
        }),
    ]
}

fn service_params(family: Family) -> impl Strategy<Value = ServiceParams> {
    let max = family.max_prefix();
    (
        "[a-z]{1,15}",
        proptest::option::of((1u32..=86400 * 31, 1u8..=max)),
        any::<bool>(),
        0u8..8,
        proptest::option::of("[a-z]{1,15}"),
    )
        .prop_map(|(scheduler, pers, one_packet, flags, pe)| ServiceParams {
            scheduler,
            persistence: pers.map(|(timeout, prefix)| Persistence { timeout, prefix }),
            one_packet,
            sched_flags: SchedFlags::from_bits(flags),
            pe,
        })
}

fn dest_params() -> impl Strategy<Value = DestParams> {
    (
        0u32..=65535,
        prop_oneof![Just(Forward::Dr), Just(Forward::Nat), Just(Forward::Tun)],
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(weight, forward, upper, lower)| DestParams {
            weight,
            forward,
            upper,
            lower,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// What we send is what the kernel's dump would describe: service attributes decode back
    /// to the same key and settings, destination attributes to the same address and settings.
    #[test]
    fn services_and_dests_round_trip(
        (key, params) in service_key().prop_flat_map(|k| (Just(k), service_params(k.family()))),
        dest_params in dest_params(),
        port in any::<u16>(),
    ) {
        let mut attrs = codec::service_attrs(&key, &params);
        attrs.push(SvcAttr::Flags { flags: 0x2, mask: 0 }); // the kernel adds HASHED; ignored
        attrs.retain(|a| !matches!(a, SvcAttr::Flags { mask: 0, .. }));
        let decoded = codec::decode_service(&attrs).unwrap();
        prop_assert_eq!(decoded.key, key);
        prop_assert_eq!(decoded.params, params);

        let ip = match key.family() {
            Family::Ipv4 => "10.1.2.3".parse().unwrap(),
            Family::Ipv6 => "2001:db8::9".parse().unwrap(),
        };
        let dest = SocketAddr::new(ip, port);
        let d = codec::decode_dest(&codec::dest_attrs(&dest, Some(&dest_params)), key.family()).unwrap();
        prop_assert_eq!(d.addr, dest);
        prop_assert_eq!(d.params, dest_params);
    }

    /// Every message survives encoding into a datagram and decoding back.
    #[test]
    fn datagrams_round_trip(
        key in service_key(),
        conns in any::<u32>(),
        bytes in any::<u64>(),
        seq in any::<u32>(),
    ) {
        let stats = vec![
            StatsAttr { kind: 1, value: u64::from(conns), wide: false },
            StatsAttr { kind: 4, value: bytes, wide: true },
        ];
        let mut svc = codec::service_identity(&key);
        svc.push(SvcAttr::Stats(stats.clone()));
        let msg = IpvsMessage {
            cmd: codec::cmd::NEW_DEST,
            attrs: vec![
                Attr::Service(svc),
                Attr::Dest(vec![DestAttr::ActiveConns(conns), DestAttr::Stats64(stats)]),
            ],
        };
        let bytes = encode_request(msg.clone(), FAMILY, seq, NLM_F_REQUEST);
        let replies = decode_datagram(&bytes).unwrap();
        prop_assert_eq!(replies, vec![Reply::Message { seq, interrupted: false, msg }]);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_datagram(&bytes);
    }

    /// Nor do valid messages with bytes flipped or cut short.
    #[test]
    fn decoder_never_panics_on_damaged_messages(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let op = Op::AddDest {
            service: tcp(),
            dest: "192.168.0.179:80".parse().unwrap(),
            params: DestParams::new(Forward::Dr, 2),
        };
        let mut bytes = encode_request(codec::op_message(&op), FAMILY, 1, NLM_F_REQUEST);
        for (at, value) in flips {
            let i = at % bytes.len();
            bytes[i] = value;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        if let Ok(replies) = decode_datagram(&bytes) {
            for r in replies {
                if let Reply::Message { msg, .. } = r {
                    for a in msg.attrs {
                        if let Attr::Service(s) = a { let _ = codec::decode_service(&s); }
                    }
                }
            }
        }
    }
}
