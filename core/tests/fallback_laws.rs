//! With a fallback configured, it is in the desired table exactly when fewer than `quorum` real
//! servers are healthy (servers not probed at all yet hold a fallback back, but never remove one
//! that serves); failed servers follow the failure policy; unknown servers are kept as the
//! kernel has them.

use std::collections::BTreeMap;

use lvs_hc_core::config::{Config, FailureAction, NewServers};
use lvs_hc_core::desired::{desired_service, ServerRef, ServerView};
use lvs_hc_core::{DestParams, Forward, Health, ServiceEntry, ServiceParams};
use proptest::prelude::*;

fn config(servers: usize, quorum: usize, action: &str) -> Config {
    let mut text = format!(
        "[[service]]\naddress = \"192.168.0.101:80\"\nquorum = {quorum}\non_failure = \"{action}\"\n"
    );
    for i in 0..servers {
        text.push_str(&format!(
            "[[service.server]]\naddress = \"10.0.0.{}:80\"\nweight = {}\n",
            i + 1,
            i + 1
        ));
    }
    text.push_str("[[service.fallback]]\naddress = \"127.0.0.1:80\"\nweight = 5\n");
    Config::from_toml(&text, "prop.toml").unwrap()
}

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![Just(Health::Up), Just(Health::Down), Just(Health::Unknown)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fallback_in_exactly_when_healthy_below_quorum(
        states in proptest::collection::vec((health(), any::<bool>(), 0u32..3, any::<bool>()), 1..8),
        quorum_pick in 0usize..8,
        action in prop_oneof![Just("remove"), Just("zero"), Just("drain")],
        fallback_serving in any::<bool>(),
    ) {
        let n = states.len();
        let quorum = quorum_pick % n + 1;
        let cfg = config(n, quorum, action);
        let svc = &cfg.services[0];
        // What the kernel holds: some servers present, at some weight.
        let mut dests = BTreeMap::new();
        for (i, (_, present, w, _)) in states.iter().enumerate() {
            if *present {
                dests.insert(svc.servers[i].addr, DestParams::new(Forward::Dr, *w));
            }
        }
        if fallback_serving {
            dests.insert("127.0.0.1:80".parse().unwrap(), DestParams::new(Forward::Dr, 5));
        }
        let believed = ServiceEntry { params: ServiceParams::new("wlc"), dests };
        let view = |r: ServerRef| match r {
            ServerRef::Real(i) => ServerView {
                health: states[i].0,
                weight: svc.servers[i].weight,
                draining: states[i].1,
                pending: states[i].3,
            },
            ServerRef::Fallback(_) => ServerView { health: Health::Up, weight: 5, draining: false, pending: false },
        };
        let d = desired_service(svc, Some(&believed), view);

        let counts = |(h, present, w, _): &(Health, bool, u32, bool)| {
            *h == Health::Up || (*h == Health::Unknown && *present && *w > 0)
        };
        let healthy = states.iter().filter(|s| counts(s)).count();
        let not_yet_probed = states.iter().filter(|s| !counts(s) && s.3).count();
        prop_assert_eq!(d.healthy, healthy);
        let fallback = "127.0.0.1:80".parse().unwrap();
        // Servers not probed yet hold the fallback back, but never take out a serving one.
        let below = healthy < quorum && (healthy + not_yet_probed < quorum || fallback_serving);
        prop_assert_eq!(d.entry.dests.contains_key(&fallback), below);
        prop_assert_eq!(d.fallback_in, below);

        for (i, (h, present, w, _)) in states.iter().enumerate() {
            let s = &svc.servers[i];
            let got = d.entry.dests.get(&s.addr).map(|p| p.weight);
            let want = match h {
                Health::Up => Some(s.weight),
                Health::Unknown => present.then_some(*w),
                Health::Down => match svc.on_failure {
                    FailureAction::Remove => None,
                    FailureAction::Zero => Some(0),
                    FailureAction::Drain { .. } => states[i].1.then_some(0),
                },
            };
            prop_assert_eq!(got, want, "server {} in state {:?}", s.addr, h);
        }
        prop_assert_eq!(svc.new_servers, NewServers::Wait);
    }
}
