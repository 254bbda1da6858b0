//! The laws of `diff`, for arbitrary tables: applying `diff(desired, actual)` to `actual` with
//! the kernel's strict rules gives `desired`; `diff(x, x)` is empty; no destination is touched
//! while its service is missing; and an edit is used wherever the key is kept.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use lvs_hc_core::{
    diff, DestParams, Forward, Op, Persistence, SchedFlags, ServiceEntry, ServiceKey,
    ServiceParams, Table,
};
use proptest::prelude::*;

fn service_key() -> impl Strategy<Value = ServiceKey> {
    // A small key space so desired and actual overlap often.
    prop_oneof![
        (0u8..4, 0u16..2).prop_map(|(h, p)| ServiceKey::Tcp(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, h)),
            80 + p
        ))),
        (0u8..2).prop_map(|h| ServiceKey::Udp(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, h)),
            53
        ))),
        (1u32..3).prop_map(|mark| ServiceKey::Fwmark {
            mark,
            family: lvs_hc_core::Family::Ipv4
        }),
    ]
}

fn service_params() -> impl Strategy<Value = ServiceParams> {
    (
        prop_oneof![Just("rr"), Just("wlc"), Just("sh")],
        proptest::option::of(1u32..1000),
        any::<bool>(),
    )
        .prop_map(|(sched, persist, flag)| ServiceParams {
            scheduler: sched.to_string(),
            persistence: persist.map(|timeout| Persistence {
                timeout,
                prefix: 32,
            }),
            one_packet: false,
            sched_flags: if flag {
                SchedFlags::FLAG1
            } else {
                SchedFlags::NONE
            },
            pe: None,
        })
}

fn dest_params() -> impl Strategy<Value = DestParams> {
    (
        0u32..4,
        prop_oneof![Just(Forward::Dr), Just(Forward::Nat), Just(Forward::Tun)],
        0u32..3,
    )
        .prop_map(|(weight, forward, upper)| DestParams {
            weight,
            forward,
            upper,
            lower: 0,
        })
}

fn table() -> impl Strategy<Value = Table> {
    proptest::collection::btree_map(
        service_key(),
        (
            service_params(),
            proptest::collection::btree_map(0u8..6, dest_params(), 0..5),
        ),
        0..5,
    )
    .prop_map(|services| Table {
        services: services
            .into_iter()
            .map(|(key, (params, dests))| {
                let dests: BTreeMap<SocketAddr, DestParams> = dests
                    .into_iter()
                    .map(|(h, p)| {
                        (
                            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 1, 0, h)), key.port()),
                            p,
                        )
                    })
                    .collect();
                (key, ServiceEntry::new(params, dests))
            })
            .collect(),
        sync: Vec::new(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn applying_the_diff_gives_the_desired_table(desired in table(), actual in table()) {
        let mut t = actual.clone();
        for op in diff(&desired, &actual) {
            // Strict kernel rules: an op on a missing service or an add of an existing entry fails.
            prop_assert_eq!(t.apply(&op), Ok(()), "{} failed", op);
        }
        prop_assert_eq!(t, desired);
    }

    #[test]
    fn diff_of_a_table_with_itself_is_empty(x in table()) {
        prop_assert!(diff(&x, &x).is_empty());
    }

    #[test]
    fn destinations_are_touched_only_while_their_service_exists(desired in table(), actual in table()) {
        let mut services: std::collections::BTreeSet<ServiceKey> = actual.services.keys().copied().collect();
        for op in diff(&desired, &actual) {
            match &op {
                Op::AddService { key, .. } => { services.insert(*key); }
                Op::DelService { key } => { services.remove(key); }
                Op::AddDest { service, .. } | Op::EditDest { service, .. } | Op::DelDest { service, .. } => {
                    prop_assert!(services.contains(service), "{} touches a missing service", op);
                }
                Op::EditService { key, .. } => prop_assert!(services.contains(key)),
            }
        }
    }

    #[test]
    fn kept_entries_are_edited_not_readded(desired in table(), actual in table()) {
        let ops = diff(&desired, &actual);
        for op in &ops {
            match op {
                Op::AddService { key, .. } => prop_assert!(!actual.services.contains_key(key)),
                Op::DelService { key } => prop_assert!(!desired.services.contains_key(key)),
                Op::AddDest { service, dest, .. } => prop_assert!(actual.dest(service, dest).is_none()),
                Op::DelDest { service, dest } => prop_assert!(desired.dest(service, dest).is_none()),
                _ => {}
            }
        }
        // Minimal: one operation per differing entry, no more.
        let mut targets: Vec<_> = ops.iter().map(|o| o.target()).collect();
        targets.sort();
        targets.dedup();
        prop_assert_eq!(targets.len(), ops.len());
    }
}
