//! Directors behind ECMP hash alike: two engines with the same configuration, driven through
//! different histories of health verdicts, restarts and reloads, leave two faithful kernels
//! ([`MemoryBackend`]: destinations added at the head of the list, `last_weight` kept as
//! `__ip_vs_update_dest` keeps it) whose hashing services are identical once the final verdicts
//! are the same and the engines have settled.
//!
//! What is compared, and why it is enough. `ip_vs_mh.c` builds an `mh` service's lookup table
//! (`ip_vs_mh_reassign` → `ip_vs_mh_populate`) from nothing but the service's destination list:
//! it walks the list in order, head first, and each destination with turns left claims its next
//! preferred free slot (its offset and skip come from `hsiphash` of its address and port with
//! fixed keys, so they are the same on every host); where two want the same slot, the one
//! earlier in the list wins. The turns come from `last_weight` (divided by the gcd of the
//! last weights and shifted, `ip_vs_mh_gcd_weight`/`ip_vs_mh_shift_weight`), not `weight`;
//! `weight` then decides at lookup time whether a slot's destination is available (weight 0:
//! not, and with `mh-fallback` the flow is rehashed over the same table). So two services with
//! the same flags and the same (address, weight, last_weight) list in the same order have the
//! same lookup table and send every flow to the same server. `ip_vs_sh.c` likewise assigns its
//! buckets walking the list in order, by weight (it has no `last_weight`): for `sh` the
//! (address, weight) list in order is compared.
//!
//! The histories are random (proptest with a fixed seed, so a run replays): servers fail and
//! return in different orders and at different times, the engine restarts on the table the
//! previous one left (knowing nothing of the last weights), and reloads add a server, remove
//! one, or change a weight, before both end on the same configuration and verdicts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ipvs_sys::memory::MemoryBackend;
use ipvs_sys::IpvsBackend;
use lvs_hc_core::{Config, Engine, Input, Instant, Output, ProbeOutcome, ServiceKey};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

/// The servers the configurations may name (`10.0.0.n:80`); the fallback of the `mh` service
/// is `10.0.0.9:80`, above them all, so bringing it in puts a destination at the head that
/// belongs at the tail.
const SERVERS: [u8; 5] = [1, 2, 3, 4, 5];

fn server(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 80))
}

fn mh() -> ServiceKey {
    ServiceKey::Tcp("192.168.0.101:80".parse().unwrap())
}

fn sh() -> ServiceKey {
    ServiceKey::Tcp("192.168.0.102:80".parse().unwrap())
}

/// A configuration variant: which servers it names, and server 3's weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// All five; the one both histories end on.
    Full,
    /// Without server 5 (a reload adds it).
    WithoutFive,
    /// Without server 2 (a reload removes it).
    WithoutTwo,
    /// All five, server 3 at weight 4 instead of 2.
    HeavierThree,
}

fn config(variant: Variant, on_failure: &str) -> Config {
    let weights = [(1, 3), (2, 1), (3, 2), (4, 5), (5, 1)];
    let mut servers = String::new();
    for (n, w) in weights {
        let w = if n == 3 && variant == Variant::HeavierThree {
            4
        } else {
            w
        };
        let left_out = (n == 5 && variant == Variant::WithoutFive)
            || (n == 2 && variant == Variant::WithoutTwo);
        if !left_out {
            servers.push_str(&format!(
                "[[service.server]]\naddress = \"{}\"\nweight = {w}\n\n",
                server(n)
            ));
        }
    }
    let drain = if on_failure == "drain" {
        "drain_timeout = \"3s\"\n"
    } else {
        ""
    };
    let check = "[[service.check]]\ntype = \"tcp\"\ninterval = \"1s\"\ntimeout = \"300ms\"\n\
                 rise = 2\nfall = 2\njitter = \"500ms\"\n";
    let text = format!(
        r#"[daemon]
resync_interval = "5s"

[[service]]
address = "{mh}"
scheduler = "mh"
sched_flags = ["mh-fallback", "mh-port"]
on_failure = "{on_failure}"
{drain}
{check}
{servers}[[service.fallback]]
address = "10.0.0.9:80"
weight = 1

[[service]]
address = "{sh}"
scheduler = "sh"
on_failure = "zero"

{check}
{servers}"#,
        mh = "192.168.0.101:80",
        sh = "192.168.0.102:80",
    );
    Config::from_toml(&text, "identical.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// An `mh` service's list as it hashes: (address, weight, last weight), head first.
type MhList = Vec<(SocketAddr, u32, Option<u32>)>;
/// An `sh` service's list as it hashes: (address, weight), head first.
type ShList = Vec<(SocketAddr, u32)>;

/// One step of a director's history.
#[derive(Clone, Debug)]
enum Step {
    /// Server `SERVERS[i]` starts passing (`true`) or failing its probes.
    Verdict(usize, bool),
    /// Time passes.
    Wait(Duration),
    /// lvs-hc restarts: a new engine on the table the old one left.
    Restart,
    /// A reload to this configuration.
    Reload(Variant),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..SERVERS.len(), any::<bool>()).prop_map(|(i, up)| Step::Verdict(i, up)),
        4 => (1u64..6000).prop_map(|ms| Step::Wait(Duration::from_millis(ms))),
        1 => Just(Step::Restart),
        1 => prop_oneof![
            Just(Variant::Full),
            Just(Variant::WithoutFive),
            Just(Variant::WithoutTwo),
            Just(Variant::HeavierThree),
        ]
        .prop_map(Step::Reload),
    ]
}

/// One director: an engine, its kernel, and what its servers answer.
struct Director {
    engine: Engine,
    kernel: MemoryBackend,
    now: Instant,
    up: BTreeMap<SocketAddr, bool>,
    /// Probe results due, with when.
    results: Vec<(Instant, Input)>,
    on_failure: &'static str,
    variant: Variant,
    seed: u64,
}

impl Director {
    fn new(on_failure: &'static str, seed: u64) -> Director {
        let variant = Variant::Full;
        Director {
            engine: Engine::new(config(variant, on_failure), Instant::ZERO, seed),
            kernel: MemoryBackend::new(),
            now: Instant::ZERO,
            up: BTreeMap::new(),
            results: Vec::new(),
            on_failure,
            variant,
            seed,
        }
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Verdict(i, up) => {
                self.up.insert(server(SERVERS[i]), up);
            }
            Step::Wait(d) => self.run_for(d),
            Step::Restart => {
                self.seed += 1;
                self.results.clear();
                let config = config(self.variant, self.on_failure);
                self.engine = Engine::new(config, self.now, self.seed);
            }
            Step::Reload(variant) => {
                self.variant = variant;
                self.engine.handle_input(Input::Reload {
                    now: self.now,
                    config: Box::new(config(variant, self.on_failure)),
                });
            }
        }
    }

    /// Answers every output until `d` has passed: operations go to the kernel at once,
    /// probes answer after 1 ms as the server's verdict says.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            let deadline = loop {
                match self.engine.poll_output() {
                    Output::Apply(op) => {
                        let result = self
                            .kernel
                            .apply(&op)
                            .map_err(|e| lvs_hc_core::ApplyError::Other(format!("{e}")));
                        let now = self.now;
                        self.engine.handle_input(Input::Applied { now, op, result });
                    }
                    Output::ReadTable => {
                        let snap = self.kernel.snapshot().unwrap();
                        self.engine.handle_input(Input::Snapshot {
                            now: self.now,
                            table: snap.table,
                            counters: snap.counters,
                            skipped: snap.skipped,
                        });
                    }
                    Output::Probe(req) => {
                        let done = self.now + Duration::from_millis(1);
                        let outcome = if self.up.get(&req.server).copied().unwrap_or(true) {
                            ProbeOutcome::Pass { weight: None }
                        } else {
                            ProbeOutcome::Fail {
                                reason: "connection refused".into(),
                            }
                        };
                        self.results.push((
                            done,
                            Input::ProbeResult {
                                now: done,
                                id: req.id,
                                outcome,
                            },
                        ));
                    }
                    // No [sync] or [announce] in these configurations: nothing to answer.
                    Output::Sync(_) | Output::Event(_) | Output::ReadRoutes | Output::Route(_) => {}
                    Output::Timeout(t) => break t,
                }
            };
            let next_result = self.results.iter().map(|(t, _)| *t).min();
            let next = next_result.map_or(deadline, |r| r.min(deadline));
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            let (ready, rest): (Vec<_>, Vec<_>) =
                self.results.drain(..).partition(|(t, _)| *t <= now);
            self.results = rest;
            for (_, input) in ready {
                self.engine.handle_input(input);
            }
            self.engine.handle_input(Input::Timeout(now));
        }
    }

    /// What the `mh` service hashes over (address, weight, last weight, in list order) and what
    /// the `sh` service does (address, weight, in list order).
    fn hashed(&self) -> (MhList, ShList) {
        let mh = self
            .kernel
            .dest_list(&mh())
            .expect("the mh service, its order known");
        let sh = self
            .kernel
            .dest_list(&sh())
            .expect("the sh service, its order known");
        (
            mh.iter()
                .map(|d| (d.addr, d.weight, d.last_weight))
                .collect(),
            sh.iter().map(|d| (d.addr, d.weight)).collect(),
        )
    }
}

/// Runs `history`, then the common ending: the full configuration, `last` verdicts, and a
/// minute to settle.
fn settle(on_failure: &'static str, seed: u64, history: &[Step], last: &[bool]) -> Director {
    let mut d = Director::new(on_failure, seed);
    for step in history {
        d.apply(step);
    }
    d.apply(&Step::Reload(Variant::Full));
    for (i, up) in last.iter().enumerate() {
        d.apply(&Step::Verdict(i, *up));
    }
    d.run_for(Duration::from_secs(60));
    d
}

fn on_failure() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("remove"), Just("zero"), Just("drain")]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        rng_seed: RngSeed::Fixed(13),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn same_configuration_and_verdicts_give_identical_hashing_tables(
        on_failure in on_failure(),
        a in proptest::collection::vec(step(), 0..30),
        b in proptest::collection::vec(step(), 0..30),
        last in proptest::collection::vec(any::<bool>(), SERVERS.len()),
    ) {
        let one = settle(on_failure, 1, &a, &last);
        let two = settle(on_failure, 2, &b, &last);
        let (mh_one, sh_one) = one.hashed();
        let (mh_two, sh_two) = two.hashed();
        prop_assert_eq!(&mh_one, &mh_two, "mh: (address, weight, last_weight) in list order");
        prop_assert_eq!(&sh_one, &sh_two, "sh: (address, weight) in list order");
        // And the order is the canonical one: ascending, head first.
        let ascending = |v: &[SocketAddr]| v.windows(2).all(|w| w[0] < w[1]);
        prop_assert!(ascending(&mh_one.iter().map(|d| d.0).collect::<Vec<_>>()), "{:?}", mh_one);
        prop_assert!(ascending(&sh_one.iter().map(|d| d.0).collect::<Vec<_>>()), "{:?}", sh_one);
    }
}

/// A history this test must tell apart: server 2 fails and returns on one director only
/// (`on_failure = "remove"`, so it comes back at the head of the list), and server 4 fails on
/// both, but on one director lvs-hc restarts while it is down (at weight 0, its last weight
/// unknown). A test that would pass without the rule cannot pass here.
#[test]
fn a_returning_server_and_a_restart_over_a_failed_one_end_identical() {
    let last = [true, true, true, false, true];
    let down2 = [
        Step::Wait(Duration::from_secs(2)),
        Step::Verdict(1, false),
        Step::Wait(Duration::from_secs(5)),
        Step::Verdict(1, true),
        Step::Wait(Duration::from_secs(5)),
    ];
    let one = settle("remove", 1, &down2, &last);
    let two = settle("remove", 2, &[], &last);
    assert_eq!(one.hashed(), two.hashed());
    let restart = [
        Step::Wait(Duration::from_secs(2)),
        Step::Reload(Variant::HeavierThree),
        Step::Verdict(2, false),
        Step::Wait(Duration::from_secs(5)),
        Step::Restart,
        Step::Wait(Duration::from_secs(5)),
    ];
    let one = settle("zero", 1, &restart, &[true, true, false, true, true]);
    let two = settle("zero", 2, &[], &[true, true, false, true, true]);
    assert_eq!(one.hashed(), two.hashed());
    let (mh, _) = one.hashed();
    assert!(mh.contains(&(server(3), 0, Some(2))), "{mh:?}");
}
