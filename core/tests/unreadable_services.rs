//! A service the kernel holds but the backend cannot read (a setting of a newer kernel, say)
//! is left alone: not added again, not deleted, not reported as drift, whatever the
//! configuration says; it is reported once. Readable again, it is managed again.

mod harness;

use harness::{at, Harness};
use lvs_hc_core::{EventKind, ServiceKey, SkippedService};

const CHECK: &str = r#"interval = "1s"
timeout = "500ms"
jitter = "0s""#;

fn vip() -> ServiceKey {
    ServiceKey::inet(
        lvs_hc_core::Protocol::Tcp,
        harness::addr("192.168.0.101:80"),
    )
}

#[test]
fn an_unreadable_configured_service_is_left_alone_and_reported_once() {
    let mut h = Harness::new(&harness::seed_config(CHECK, ""), Default::default());
    h.run_until(at(5.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
    let before = h.applied.len();
    // From now on the backend cannot read the service: the table it hands over lacks it.
    let hidden = h.kernel.clone();
    h.kernel = Default::default();
    h.skipped = vec![SkippedService {
        key: Some(vip()),
        error: "destination 192.168.0.179:80: unknown forwarding method 5".into(),
    }];
    h.run_until(at(30.0));
    assert_eq!(
        h.applied_lines()[before..].to_vec(),
        Vec::<String>::new(),
        "an unreadable service was touched"
    );
    let reported: Vec<String> = h
        .events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ServiceUnreadable { .. }))
        .map(|e| e.kind.to_string())
        .collect();
    assert_eq!(
        reported,
        [
            "TCP 192.168.0.101:80: cannot read this service from the kernel (destination \
          192.168.0.179:80: unknown forwarding method 5); lvs-hc leaves it alone while it stays \
          so"
        ],
    );
    assert!(
        h.first_event(|k| matches!(k, EventKind::Drift { .. }))
            .is_none(),
        "a service that cannot be read is no drift"
    );

    // Readable again, with a weight changed meanwhile: repaired as usual.
    h.kernel = hidden;
    h.kernel
        .services
        .get_mut(&vip())
        .unwrap()
        .dests
        .get_mut(&harness::addr("192.168.0.180:80"))
        .unwrap()
        .weight = 9;
    h.skipped.clear();
    h.run_until(at(40.0));
    assert_eq!(h.dests(), ["192.168.0.179:80 w2", "192.168.0.180:80 w1"]);
}
