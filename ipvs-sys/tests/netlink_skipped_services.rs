//! A service the netlink backend cannot represent (a newer kernel's forwarding method, an
//! unknown family or protocol, a missing or malformed attribute) is left out of the snapshot
//! and named in `Snapshot::skipped`; the rest of the table is read as usual.

mod fake_kernel;

use std::time::Duration;

use fake_kernel::{datagram, dest, dest_message, done, service, service_message, FakeKernel};
use ipvs_sys::netlink::codec::{cmd, DestAttr, SvcAttr};
use ipvs_sys::{IpvsBackend, SkippedService};
use lvs_hc_core::{DestParams, Forward, Op, ServiceKey, ServiceParams, Table};

fn key(addr: &str) -> ServiceKey {
    ServiceKey::Tcp(addr.parse().unwrap())
}

/// A kernel whose service dump is `services` (one message each, one datagram) and whose
/// destination dumps give every service one destination, 10.0.9.1:80, unless `dests` names
/// the service's attributes for the destination.
fn kernel(
    services: Vec<Vec<SvcAttr>>,
    dests: impl Fn(ServiceKey) -> Vec<DestAttr> + Send + 'static,
) -> FakeKernel {
    FakeKernel::new(move |req| match req.msg.cmd {
        cmd::GET_SERVICE => vec![
            datagram(services.iter().map(|s| service_message(req.seq, s.clone()))),
            datagram([done(req.seq)]),
        ],
        cmd::GET_DEST => {
            let svc = req.service().expect("a destination dump names its service");
            vec![
                datagram([dest_message(req.seq, dests(svc))]),
                datagram([done(req.seq)]),
            ]
        }
        cmd::GET_DAEMON => vec![datagram([done(req.seq)])],
        other => panic!("unexpected command {other}"),
    })
}

fn rs() -> DestParams {
    DestParams::new(Forward::Dr, 1)
}

fn table_of(services: &[ServiceKey]) -> Table {
    let mut t = Table::new();
    for &key in services {
        t.apply(&Op::AddService {
            key,
            params: ServiceParams::new("wlc"),
        })
        .unwrap();
        t.apply(&Op::AddDest {
            service: key,
            dest: "10.0.9.1:80".parse().unwrap(),
            params: rs(),
        })
        .unwrap();
    }
    t
}

#[test]
fn service_with_a_destination_of_unknown_forwarding_method_is_skipped_whole() {
    let (a, b, c) = (key("10.0.0.1:80"), key("10.0.0.2:80"), key("10.0.0.3:80"));
    let k = kernel(vec![service(&a), service(&b), service(&c)], move |svc| {
        let mut attrs = dest("10.0.9.1:80", &rs());
        if svc == b {
            // A forwarding method from a newer kernel.
            for attr in &mut attrs {
                if let DestAttr::FwdMethod(m) = attr {
                    *m = 5;
                }
            }
        }
        attrs
    });
    let snap = k
        .backend(Duration::from_secs(1))
        .snapshot()
        .expect("one undecodable service does not fail the snapshot");
    assert_eq!(snap.table, table_of(&[a, c]));
    assert_eq!(
        snap.skipped,
        vec![SkippedService {
            key: Some(b),
            error: "destination 10.0.9.1:80: unknown forwarding method 5".into(),
        }]
    );
    assert!(!snap.counters.services.contains_key(&b));
    assert!(snap.counters.dests.keys().all(|(svc, _)| *svc != b));
    assert_eq!(
        snap.skipped[0].to_string(),
        "TCP 10.0.0.2:80: destination 10.0.9.1:80: unknown forwarding method 5"
    );
}

#[test]
fn service_of_unknown_family_is_skipped_without_a_key() {
    let (a, c) = (key("10.0.0.1:80"), key("10.0.0.3:80"));
    let mut unknown = service(&key("10.0.0.2:80"));
    for attr in &mut unknown {
        if let SvcAttr::Af(af) = attr {
            *af = 99;
        }
    }
    let k = kernel(vec![service(&a), unknown, service(&c)], |_| {
        dest("10.0.9.1:80", &rs())
    });
    let snap = k.backend(Duration::from_secs(1)).snapshot().unwrap();
    assert_eq!(snap.table, table_of(&[a, c]));
    assert_eq!(
        snap.skipped,
        vec![SkippedService {
            key: None,
            error: "service of unknown family 99".into(),
        }]
    );
    assert_eq!(
        snap.skipped[0].to_string(),
        "a service whose key cannot be read: service of unknown family 99"
    );
}

#[test]
fn services_of_unknown_protocol_or_without_a_scheduler_are_skipped() {
    let (a, b, c) = (key("10.0.0.1:80"), key("10.0.0.2:80"), key("10.0.0.3:80"));
    let mut unknown_protocol = service(&a);
    for attr in &mut unknown_protocol {
        if let SvcAttr::Protocol(p) = attr {
            *p = 33; // DCCP
        }
    }
    let mut no_scheduler = service(&b);
    no_scheduler.retain(|attr| !matches!(attr, SvcAttr::SchedName(_)));
    let k = kernel(vec![unknown_protocol, no_scheduler, service(&c)], |_| {
        dest("10.0.9.1:80", &rs())
    });
    let snap = k.backend(Duration::from_secs(1)).snapshot().unwrap();
    assert_eq!(snap.table, table_of(&[c]));
    assert_eq!(
        snap.skipped,
        vec![
            SkippedService {
                key: None,
                error: "service of unknown protocol 33".into(),
            },
            SkippedService {
                key: Some(b),
                error: "service without scheduler".into(),
            },
        ]
    );
}

#[test]
fn malformed_service_message_is_skipped_and_the_rest_of_its_datagram_read() {
    let (a, c) = (key("10.0.0.1:80"), key("10.0.0.3:80"));
    // An address family attribute one byte long: the message cannot be parsed at all.
    let mut malformed = service(&key("10.0.0.2:80"));
    malformed.insert(
        0,
        SvcAttr::Other(netlink_packet_core::DefaultNla::new(1, vec![2])),
    );
    let k = kernel(vec![service(&a), malformed, service(&c)], |_| {
        dest("10.0.9.1:80", &rs())
    });
    let snap = k.backend(Duration::from_secs(1)).snapshot().unwrap();
    assert_eq!(snap.table, table_of(&[a, c]));
    assert_eq!(snap.skipped.len(), 1, "{:?}", snap.skipped);
    assert_eq!(snap.skipped[0].key, None);
    assert!(
        snap.skipped[0].error.contains("service af"),
        "{}",
        snap.skipped[0].error
    );
}
