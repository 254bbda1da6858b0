//! Whatever operators, maintenance files, agents and the servers' health do, in any order: a
//! disabled server is never in the kernel table, a draining one never has weight above 0, and
//! no weight (ramping or not) exceeds what the weight rule gives the server at full weight.

mod harness;

use std::time::Duration;

use harness::{addr, Behaviour, Harness};
use lvs_hc_core::admin::{self, AdminSource, AdminState};
use lvs_hc_core::{DestCounters, ServiceKey, Table};
use proptest::prelude::*;

const SERVERS: [&str; 2] = ["192.168.0.179:80", "192.168.0.180:80"];
const CONFIGURED: [u32; 2] = [40, 7];

#[derive(Clone, Debug)]
enum Step {
    Health(usize, bool),
    Admin(usize, AdminSource, AdminState),
    Agent(usize, Option<&'static str>),
    Connections(usize, u32),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let server = 0usize..2;
    let source = prop_oneof![Just(AdminSource::Operator), Just(AdminSource::Maintenance)];
    let state = prop_oneof![
        Just(AdminState::Enabled),
        Just(AdminState::Drain),
        Just(AdminState::Disabled)
    ];
    let line = prop_oneof![
        Just(None),
        Just(Some("up")),
        Just(Some("down")),
        Just(Some("drain")),
        Just(Some("maint")),
        Just(Some("ready")),
        Just(Some("25%")),
        Just(Some("ready 150%")),
        Just(Some("0%")),
    ];
    prop_oneof![
        (server.clone(), any::<bool>()).prop_map(|(s, up)| Step::Health(s, up)),
        (server.clone(), source, state).prop_map(|(s, src, st)| Step::Admin(s, src, st)),
        (server.clone(), line).prop_map(|(s, l)| Step::Agent(s, l)),
        (server, 0u32..3).prop_map(|(s, c)| Step::Connections(s, c)),
        (1u64..20_000).prop_map(Step::Wait),
    ]
}

fn config() -> String {
    let checks = r#"interval = "1s"
timeout = "100ms"
rise = 2
fall = 2
jitter = "100ms"

[[service.check]]
type = "agent"
port = 5555
interval = "1s"
timeout = "100ms"
jitter = "100ms""#;
    harness::seed_config(
        checks,
        "slow_start = \"8s\"\non_failure = \"drain\"\ndrain_timeout = \"15s\"",
    )
    .replace("weight = 2", "weight = 40")
    .replace("weight = 1\n", "weight = 7\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn administrative_states_and_ramps_hold_whatever_happens(
        steps in proptest::collection::vec(step(), 1..40),
        seed in any::<u64>(),
    ) {
        let mut h = Harness::with_seed(&config(), Table::new(), seed);
        let service = ServiceKey::Tcp(addr("192.168.0.101:80"));
        for s in &steps {
            match *s {
                Step::Health(i, up) => h.set(
                    SERVERS[i],
                    if up { Behaviour::Healthy } else { Behaviour::Refused },
                ),
                Step::Admin(i, source, state) => h.admin(SERVERS[i], source, state, "law"),
                Step::Agent(i, line) => {
                    h.agents.insert(addr(SERVERS[i]), line.map(str::to_string));
                }
                Step::Connections(i, active) => {
                    h.counters.dests.insert(
                        (service, addr(SERVERS[i])),
                        DestCounters { active, ..Default::default() },
                    );
                }
                Step::Wait(ms) => h.run_for(Duration::from_millis(ms)),
            }
            // Let the engine act on what just happened (operations apply at once here).
            h.run_for(Duration::from_millis(5));
            let status = h.engine.status();
            for (i, server) in SERVERS.iter().enumerate() {
                let st = status.iter().find(|x| x.server == addr(server)).unwrap();
                let kernel = h.weight_of(server);
                match st.admin.first().map(|m| m.state) {
                    Some(AdminState::Disabled) => prop_assert_eq!(
                        kernel, None, "{} disabled but in the table: {:?}", server, st.admin
                    ),
                    Some(AdminState::Drain) => prop_assert!(
                        kernel.is_none_or(|w| w == 0),
                        "{} draining at weight {:?}", server, kernel
                    ),
                    _ => {}
                }
                let percent = st.agent.as_ref().and_then(|a| a.weight_percent);
                let full = admin::weight(CONFIGURED[i], percent, None);
                if let Some(w) = kernel {
                    prop_assert!(
                        w <= full,
                        "{} at weight {} above its full weight {}", server, w, full
                    );
                }
                if let Some(ramp) = st.slow_start {
                    prop_assert!(st.weight <= full, "ramping at {} above {}", st.weight, full);
                    prop_assert!(ramp.steps <= 10 && ramp.step >= 1 && ramp.step <= ramp.steps);
                }
            }
        }
    }
}
