//! A check changes state only after `rise` consecutive passes or `fall` consecutive failures,
//! whatever the sequence of results (from no verdict, the first pass is enough to go up).

use lvs_hc_core::health::{Health, Hysteresis, ProbeOutcome};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum R {
    Pass,
    Fail,
    Late,
}

fn outcome(r: R) -> ProbeOutcome {
    match r {
        R::Pass => ProbeOutcome::Pass { weight: None },
        R::Fail => ProbeOutcome::Fail {
            reason: "refused".into(),
        },
        R::Late => ProbeOutcome::Inconclusive {
            reason: "late".into(),
        },
    }
}

fn results() -> impl Strategy<Value = Vec<R>> {
    proptest::collection::vec(
        prop_oneof![4 => Just(R::Pass), 4 => Just(R::Fail), 1 => Just(R::Late)],
        0..200,
    )
}

/// The last `n` conclusive results, newest last.
fn last_conclusive(history: &[R], n: usize) -> Vec<R> {
    let conclusive: Vec<R> = history.iter().copied().filter(|r| *r != R::Late).collect();
    conclusive[conclusive.len().saturating_sub(n)..].to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn state_changes_only_after_rise_passes_or_fall_failures(
        rise in 1u32..5, fall in 1u32..5, start_up in any::<bool>(), seq in results()
    ) {
        let start = if start_up { Health::Up } else { Health::Unknown };
        let mut h = Hysteresis::starting(rise, fall, start);
        let mut history = Vec::new();
        for r in seq {
            let before = h.state();
            history.push(r);
            let t = h.record(&outcome(r));
            let after = h.state();
            prop_assert_eq!(t.is_some(), before != after);
            if r == R::Late {
                prop_assert_eq!(before, after, "an inconclusive result changed the state");
            }
            match (before, after) {
                (Health::Up | Health::Unknown, Health::Down) => {
                    let last = last_conclusive(&history, fall as usize);
                    prop_assert_eq!(last.len(), fall as usize);
                    prop_assert!(last.iter().all(|r| *r == R::Fail), "down without {} failures: {:?}", fall, history);
                }
                (Health::Down, Health::Up) => {
                    let last = last_conclusive(&history, rise as usize);
                    prop_assert_eq!(last.len(), rise as usize);
                    prop_assert!(last.iter().all(|r| *r == R::Pass), "up without {} passes: {:?}", rise, history);
                }
                (Health::Unknown, Health::Up) => prop_assert_eq!(r, R::Pass),
                (a, b) => prop_assert!(a == b || b != Health::Unknown, "went back to unknown"),
            }
        }
    }

    #[test]
    fn enough_consecutive_results_always_decide(rise in 1u32..5, fall in 1u32..5, seq in results()) {
        let mut h = Hysteresis::new(rise, fall);
        for r in seq {
            h.record(&outcome(r));
        }
        for _ in 0..fall {
            h.record(&outcome(R::Fail));
        }
        prop_assert_eq!(h.state(), Health::Down);
        for _ in 0..rise {
            h.record(&outcome(R::Pass));
        }
        prop_assert_eq!(h.state(), Health::Up);
    }
}
