//! With a fallback configured, it is in the desired table exactly when fewer than `quorum` real
//! servers are healthy (servers not probed at all yet hold a fallback back, but never remove one
//! that serves); failed servers follow the failure policy; servers without a verdict are kept as
//! the kernel has them, or are in at once with `new_servers = "in"`. Servers an operator (or a
//! maintenance file, or an agent) disabled are out and those being drained at weight 0, whatever
//! their health, and neither counts towards the quorum.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use lvs_hc_core::config::{Config, FailureAction, NewServers};
use lvs_hc_core::desired::{desired_service, AdminView, ServerRef, ServerView};
use lvs_hc_core::{DestParams, Forward, Health, ServiceEntry, ServiceParams};
use proptest::prelude::*;

const FALLBACK: &str = "127.0.0.1:80";

/// One real server as the desired table sees it.
#[derive(Clone, Debug)]
struct Real {
    health: Health,
    /// Its weight in the kernel table, if it is there.
    in_kernel: Option<u32>,
    /// Whether it is failed and draining.
    draining: bool,
    /// Whether it has no probe result at all yet.
    unprobed: bool,
    /// What its administrative state leaves of it.
    admin: AdminView,
}

impl Real {
    /// Whether it counts towards the quorum: up, or without a verdict and either starting in
    /// or serving in the kernel.
    fn counts(&self, new_servers: NewServers) -> bool {
        if self.admin != AdminView::InService {
            return false;
        }
        match self.health {
            Health::Up => true,
            Health::Unknown => {
                new_servers == NewServers::In || self.in_kernel.is_some_and(|w| w > 0)
            }
            Health::Down => false,
        }
    }
}

fn real() -> impl Strategy<Value = Real> {
    (
        prop_oneof![Just(Health::Up), Just(Health::Down), Just(Health::Unknown)],
        proptest::option::of(0u32..3),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            6 => Just(AdminView::InService),
            1 => Just(AdminView::Draining),
            1 => Just(AdminView::Out),
        ],
    )
        .prop_map(|(health, in_kernel, draining, unprobed, admin)| Real {
            health,
            in_kernel,
            draining,
            unprobed,
            admin,
        })
}

fn config(servers: usize, quorum: usize, action: &str, new_servers: &str) -> Config {
    let mut text = format!(
        "[[service]]\naddress = \"192.168.0.101:80\"\nquorum = {quorum}\non_failure = \"{action}\"\n\
         new_servers = \"{new_servers}\"\n"
    );
    for i in 0..servers {
        text.push_str(&format!(
            "[[service.server]]\naddress = \"10.0.0.{}:80\"\nweight = {}\n",
            i + 1,
            i + 1
        ));
    }
    text.push_str(&format!(
        "[[service.fallback]]\naddress = \"{FALLBACK}\"\nweight = 5\n"
    ));
    Config::from_toml(&text, "prop.toml").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn fallback_in_exactly_when_healthy_below_quorum(
        reals in proptest::collection::vec(real(), 1..8),
        quorum_pick in 0usize..8,
        action in prop_oneof![Just("remove"), Just("zero"), Just("drain")],
        new_servers in prop_oneof![Just("wait"), Just("in")],
        fallback_serving in any::<bool>(),
    ) {
        let quorum = quorum_pick % reals.len() + 1;
        let cfg = config(reals.len(), quorum, action, new_servers);
        let svc = &cfg.services[0];
        let fallback: SocketAddr = FALLBACK.parse().unwrap();
        let mut dests = BTreeMap::new();
        for (r, server) in reals.iter().zip(&svc.servers) {
            if let Some(w) = r.in_kernel {
                dests.insert(server.addr, DestParams::new(Forward::Dr, w));
            }
        }
        if fallback_serving {
            dests.insert(fallback, DestParams::new(Forward::Dr, 5));
        }
        let believed = ServiceEntry::new(ServiceParams::new("wlc"), dests);
        let view = |r: ServerRef| match r {
            ServerRef::Real(i) => ServerView {
                health: reals[i].health,
                weight: svc.servers[i].weight,
                draining: reals[i].draining,
                pending: reals[i].unprobed,
                admin: reals[i].admin,
            },
            ServerRef::Fallback(_) => ServerView {
                health: Health::Up,
                weight: 5,
                draining: false,
                pending: false,
                admin: AdminView::InService,
            },
        };
        let d = desired_service(svc, Some(&believed), view);

        let healthy = reals.iter().filter(|r| r.counts(svc.new_servers)).count();
        let not_yet_probed = reals
            .iter()
            .filter(|r| {
                !r.counts(svc.new_servers) && r.unprobed && r.admin == AdminView::InService
            })
            .count();
        prop_assert_eq!(d.healthy, healthy);
        // Servers not probed yet hold the fallback back, but never take out a serving one.
        let below = healthy < quorum && (healthy + not_yet_probed < quorum || fallback_serving);
        prop_assert_eq!(d.entry.dests.get(&fallback).map(|p| p.weight), below.then_some(5));
        prop_assert_eq!(d.fallback_in, below);

        for (r, server) in reals.iter().zip(&svc.servers) {
            let got = d.entry.dests.get(&server.addr).map(|p| p.weight);
            let want = match (r.admin, r.health) {
                (AdminView::Out, _) => None,
                (AdminView::Draining, Health::Down) => match svc.on_failure {
                    FailureAction::Remove => None,
                    FailureAction::Zero => Some(0),
                    FailureAction::Drain { .. } => r.draining.then_some(0),
                },
                (AdminView::Draining, _) => Some(0),
                (AdminView::InService, health) => match health {
                Health::Up => Some(server.weight),
                Health::Unknown => match svc.new_servers {
                    NewServers::In => Some(server.weight),
                    NewServers::Wait => r.in_kernel,
                },
                Health::Down => match svc.on_failure {
                    FailureAction::Remove => None,
                    FailureAction::Zero => Some(0),
                    FailureAction::Drain { .. } => r.draining.then_some(0),
                },
                },
            };
            prop_assert_eq!(got, want, "server {} as {:?}", server.addr, r);
        }
    }
}
