//! Hashing schedulers (`sh`, `mh`): the kernel's destination list is kept ascending by address,
//! and an `mh` destination at weight 0 keeps its weight in service as its last weight (see the
//! `engine` module documentation). Each test shows the `ipvsadm` lines that do it.

mod harness;

use harness::{at, Behaviour, Harness};
use lvs_hc_core::{DestParams, Forward, Op, SchedFlags, ServiceKey, ServiceParams, Table};

fn config(scheduler: &str, policy: &str) -> String {
    let flags = if scheduler == "mh" {
        "sched_flags = [\"mh-fallback\"]"
    } else {
        ""
    };
    format!(
        r#"
[daemon]
resync_interval = "5s"

[[service]]
address = "192.168.0.101:80"
scheduler = "{scheduler}"
{flags}
{policy}

[[service.check]]
type = "tcp"
interval = "1s"
timeout = "300ms"
rise = 1
fall = 1
jitter = "0s"

[[service.server]]
address = "10.0.0.1:80"
weight = 3

[[service.server]]
address = "10.0.0.2:80"
weight = 1

[[service.server]]
address = "10.0.0.3:80"
weight = 2
"#
    )
}

fn key() -> ServiceKey {
    ServiceKey::Tcp("192.168.0.101:80".parse().unwrap())
}

/// The kernel's list of the service, head first.
fn order(h: &Harness) -> Vec<String> {
    let entry = &h.kernel.services[&key()];
    let order = entry.order().expect("known");
    order
        .iter()
        .map(|a| format!("{a} w{}", entry.dests[a].weight))
        .collect()
}

#[test]
fn servers_passing_together_are_added_largest_first_so_the_list_is_ascending() {
    let mut h = Harness::new(&config("mh", ""), Table::new());
    h.run_until(at(0.5));
    assert_eq!(
        h.applied_lines(),
        [
            "ipvsadm -A -t 192.168.0.101:80 -s mh -b mh-fallback",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 2",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.2:80 -g -w 1",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 3",
        ]
    );
    assert_eq!(
        order(&h),
        ["10.0.0.1:80 w3", "10.0.0.2:80 w1", "10.0.0.3:80 w2"]
    );
}

#[test]
fn a_returning_server_goes_to_the_head_and_the_smaller_ones_move_behind_it_one_at_a_time() {
    let mut h = Harness::new(&config("sh", ""), Table::new());
    h.run_until(at(0.5));
    h.set("10.0.0.3:80", Behaviour::Refused);
    h.run_until(at(3.0));
    assert_eq!(order(&h), ["10.0.0.1:80 w3", "10.0.0.2:80 w1"]);
    h.set("10.0.0.3:80", Behaviour::Healthy);
    let before = h.applied.len();
    h.run_until(at(6.0));
    let lines: Vec<String> = h.applied[before..]
        .iter()
        .map(|(_, op)| op.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 2",
            "ipvsadm -d -t 192.168.0.101:80 -r 10.0.0.2:80",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.2:80 -g -w 1",
            "ipvsadm -d -t 192.168.0.101:80 -r 10.0.0.1:80",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 3",
        ]
    );
    // Each delete is followed at once by its re-add: out for one operation's round trip.
    let times: Vec<_> = h.applied[before + 1..].iter().map(|(t, _)| *t).collect();
    assert!(times.windows(2).all(|w| w[0] == w[1]), "{times:?}");
    assert_eq!(
        order(&h),
        ["10.0.0.1:80 w3", "10.0.0.2:80 w1", "10.0.0.3:80 w2"]
    );
    let reasons: Vec<String> = h
        .event_lines()
        .into_iter()
        .filter(|l| l.contains("out of place"))
        .collect();
    assert_eq!(reasons.len(), 2, "{:?}", h.event_lines());
}

#[test]
fn order_is_left_alone_for_other_schedulers() {
    let mut h = Harness::new(&config("wlc", ""), Table::new());
    h.run_until(at(0.5));
    h.set("10.0.0.3:80", Behaviour::Refused);
    h.run_until(at(3.0));
    h.set("10.0.0.3:80", Behaviour::Healthy);
    let before = h.applied.len();
    h.run_until(at(6.0));
    let lines: Vec<String> = h.applied[before..]
        .iter()
        .map(|(_, op)| op.to_string())
        .collect();
    assert_eq!(
        lines,
        ["ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 2"]
    );
}

#[test]
fn a_failed_mh_server_keeps_its_last_weight_across_a_failure() {
    let mut h = Harness::new(&config("mh", "on_failure = \"zero\""), Table::new());
    h.run_until(at(0.5));
    h.set("10.0.0.3:80", Behaviour::Refused);
    let before = h.applied.len();
    h.run_until(at(3.0));
    let lines: Vec<String> = h.applied[before..]
        .iter()
        .map(|(_, op)| op.to_string())
        .collect();
    // Known: it was added at weight 2, so an edit to 0 keeps last_weight 2.
    assert_eq!(
        lines,
        ["ipvsadm -e -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 0"]
    );
}

#[test]
fn a_failed_mh_server_found_at_weight_zero_on_start_is_seated_at_its_weight_then_zeroed() {
    // lvs-hc starts on a table it did not write: server 3 at weight 0, last weight unknown.
    let mut kernel = Table::new();
    kernel
        .apply(&Op::AddService {
            key: key(),
            params: {
                let mut p = ServiceParams::new("mh");
                p.sched_flags = SchedFlags::FLAG1;
                p
            },
        })
        .unwrap();
    for (a, w) in [("10.0.0.3:80", 0), ("10.0.0.2:80", 1), ("10.0.0.1:80", 3)] {
        kernel
            .apply(&Op::AddDest {
                service: key(),
                dest: a.parse().unwrap(),
                params: DestParams::new(Forward::Dr, w),
            })
            .unwrap();
    }
    let mut h = Harness::new(&config("mh", "on_failure = \"zero\""), kernel);
    h.set("10.0.0.3:80", Behaviour::Refused);
    h.run_until(at(0.5));
    assert_eq!(
        h.applied_lines(),
        [
            "ipvsadm -e -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 2",
            "ipvsadm -e -t 192.168.0.101:80 -r 10.0.0.3:80 -g -w 0",
        ]
    );
    assert!(
        h.event_lines()
            .iter()
            .any(|l| l.contains("keeps its slots")),
        "{:?}",
        h.event_lines()
    );
    // Known from then on: nothing more.
    let before = h.applied.len();
    h.run_until(at(20.0));
    assert_eq!(h.applied.len(), before, "{:?}", h.applied_lines());
}

#[test]
fn a_misplaced_list_found_on_start_is_repaired_only_once_its_servers_have_verdicts() {
    // Added in ascending order by someone else: the kernel's list is descending.
    let mut kernel = Table::new();
    let mut params = ServiceParams::new("mh");
    params.sched_flags = SchedFlags::FLAG1;
    kernel
        .apply(&Op::AddService { key: key(), params })
        .unwrap();
    for (a, w) in [("10.0.0.1:80", 3), ("10.0.0.2:80", 1), ("10.0.0.3:80", 2)] {
        kernel
            .apply(&Op::AddDest {
                service: key(),
                dest: a.parse().unwrap(),
                params: DestParams::new(Forward::Dr, w),
            })
            .unwrap();
    }
    let mut h = Harness::new(&config("mh", ""), kernel);
    h.run_until(at(0.0005));
    // No verdict yet: deleted, a server would stay out until its verdict.
    assert_eq!(h.applied_lines(), Vec::<String>::new());
    h.run_until(at(0.5));
    assert_eq!(
        h.applied_lines(),
        [
            "ipvsadm -d -t 192.168.0.101:80 -r 10.0.0.2:80",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.2:80 -g -w 1",
            "ipvsadm -d -t 192.168.0.101:80 -r 10.0.0.1:80",
            "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 3",
        ]
    );
    assert_eq!(
        order(&h),
        ["10.0.0.1:80 w3", "10.0.0.2:80 w1", "10.0.0.3:80 w2"]
    );
}
