//! The connection sync daemons (`[sync]`), kept like the table: started at the first read,
//! started again when stopped by hand, replaced when they run with other settings, stopped
//! when a reload or a withdrawal takes them away, failures retried with backoff while health
//! checking goes on; daemons lvs-hc never ran and `[sync]` does not name are left alone.

mod harness;

use std::time::Duration;

use harness::{at, Harness};
use lvs_hc_core::{EventKind, SyncDaemon, SyncOp, SyncRole, SyncWhy, Table};

const CHECK: &str = "interval = \"1s\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1";

fn config(sync: &str) -> String {
    format!(
        r#"
[daemon]
resync_interval = "5s"
retry_backoff = "1s"
retry_backoff_max = "4s"

{sync}

[[service]]
address = "192.168.0.101:80"

[[service.check]]
type = "tcp"
{CHECK}

[[service.server]]
address = "192.168.0.179:80"
"#
    )
}

const BOTH: &str = "[sync]\ninterface = \"eth0\"\nsync_id = 7";

fn daemon(role: SyncRole, interface: &str, sync_id: u8) -> SyncDaemon {
    SyncDaemon {
        role,
        interface: interface.into(),
        sync_id,
        max_len: None,
        group: None,
        port: None,
        ttl: None,
    }
}

fn sync_lines(h: &Harness) -> Vec<String> {
    h.sync_applied
        .iter()
        .map(|(_, op)| op.to_string())
        .collect()
}

#[test]
fn both_daemons_start_at_the_first_read_and_a_table_without_them_is_not_needed() {
    let mut h = Harness::new(&config(BOTH), Table::new());
    h.run_until(at(2.0));
    assert_eq!(
        sync_lines(&h),
        [
            "ipvsadm --start-daemon master --mcast-interface eth0 --syncid 7",
            "ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 7",
        ]
    );
    assert_eq!(
        h.kernel.sync,
        [
            daemon(SyncRole::Master, "eth0", 7),
            daemon(SyncRole::Backup, "eth0", 7)
        ]
    );
    assert!(h.event_lines().contains(
        &"master sync daemon (interface eth0, sync id 7) started: [sync] asks for it".to_string()
    ));
    let status = h.engine.sync_status();
    assert_eq!(status.len(), 2);
    assert!(status.iter().all(|s| s.ok && s.error.is_none()));
    // Health checking went on beside them: the server is in.
    assert_eq!(h.dests(), ["192.168.0.179:80 w1"]);
}

#[test]
fn a_daemon_stopped_by_hand_is_started_again_at_the_next_read_and_the_event_says_so() {
    let mut h = Harness::new(&config(BOTH), Table::new());
    h.run_until(at(2.0));
    h.kernel
        .apply_sync(&SyncOp::Stop(SyncRole::Backup))
        .unwrap();
    h.run_until(at(4.9));
    assert_eq!(h.kernel.sync.len(), 1, "not before the next read (at 5s)");
    h.run_until(at(5.1));
    assert_eq!(h.kernel.sync.len(), 2, "{:?}", h.event_lines());
    let restarted = h.events.iter().find_map(|e| match &e.kind {
        EventKind::SyncDaemonStarted { daemon, why } if e.at > at(4.0) => {
            Some((daemon.role, why.clone()))
        }
        _ => None,
    });
    assert_eq!(restarted, Some((SyncRole::Backup, SyncWhy::Missing)));
    assert!(h.event_lines().iter().any(|l| {
        l == "backup sync daemon (interface eth0, sync id 7) started: it was stopped outside lvs-hc"
    }));
}

#[test]
fn a_daemon_with_other_settings_is_replaced_with_the_configured_one() {
    let mut kernel = Table::new();
    kernel.sync = vec![daemon(SyncRole::Master, "eth1", 3)];
    let mut h = Harness::new(&config(BOTH), kernel);
    h.run_until(at(2.0));
    assert_eq!(
        sync_lines(&h),
        [
            "ipvsadm --stop-daemon master",
            "ipvsadm --start-daemon master --mcast-interface eth0 --syncid 7",
            "ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 7",
        ]
    );
    assert!(h.event_lines().iter().any(|l| l
        == "master sync daemon stopped: it ran with other settings than [sync]'s (interface \
            eth1, sync id 3); it is started again with [sync]'s"));
    assert!(h.engine.sync_status().iter().all(|s| s.ok));
}

#[test]
fn settings_the_kernel_fills_in_satisfy_a_configuration_that_left_them_out() {
    let mut kernel = Table::new();
    let mut read = daemon(SyncRole::Master, "eth0", 7);
    read.port = Some(8848);
    read.ttl = Some(1);
    read.max_len = Some(1472);
    read.group = Some("224.0.0.81".parse().unwrap());
    kernel.sync = vec![read.clone()];
    let mut h = Harness::new(&config(BOTH), kernel);
    h.run_until(at(12.0));
    assert_eq!(
        sync_lines(&h),
        ["ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 7"],
        "the running master is kept"
    );
    assert_eq!(h.kernel.sync[0], read);
}

#[test]
fn a_failed_start_is_an_error_in_status_retried_with_backoff_while_probes_go_on() {
    let mut h = Harness::new(&config(BOTH), Table::new());
    h.fail_sync = Some("no such interface `eth0` for the sync daemon".into());
    h.run_until(at(6.5));
    let failures: Vec<(f64, Duration)> = h
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SyncDaemonFailed { op, retry_in, .. } => {
                assert_eq!(op.role(), SyncRole::Master);
                Some((e.at.saturating_since(at(0.0)).as_secs_f64(), *retry_in))
            }
            _ => None,
        })
        .collect();
    // 1s, 2s, 4s, then capped at 4s: tried at about 0, 1, 3 and 7.
    let waits: Vec<Duration> = failures.iter().map(|f| f.1).collect();
    assert_eq!(
        waits,
        [
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ],
        "{failures:?}"
    );
    let status = h.engine.sync_status();
    let error = status[0].error.as_ref().expect("the failure in status");
    assert_eq!(error.attempts, 3);
    assert!(error.error.contains("no such interface"), "{error:?}");
    assert!(!status[0].ok);
    // Health checking went on: the server was probed and is in the table.
    assert_eq!(h.dests(), ["192.168.0.179:80 w1"]);
    assert!(h.probes_sent.values().sum::<usize>() >= 5);
    // Fixed (the interface appeared): the next retry starts both.
    h.fail_sync = None;
    h.run_until(at(8.0));
    assert_eq!(h.kernel.sync.len(), 2);
    assert!(h
        .engine
        .sync_status()
        .iter()
        .all(|s| s.ok && s.error.is_none()));
}

#[test]
fn a_reload_that_drops_sync_stops_the_daemons_lvs_hc_ran_and_one_that_changes_it_replaces_them() {
    let mut h = Harness::new(&config(BOTH), Table::new());
    h.run_until(at(2.0));
    h.reload(&config(
        "[sync]\ninterface = \"eth0\"\nsync_id = 8\nrole = \"backup\"",
    ));
    h.run_until(at(3.0));
    assert_eq!(
        sync_lines(&h)[2..],
        [
            "ipvsadm --stop-daemon backup",
            "ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 8",
            "ipvsadm --stop-daemon master",
        ]
    );
    assert!(h
        .event_lines()
        .contains(&"master sync daemon stopped: [sync] no longer asks for it".to_string()));
    h.reload(&config(""));
    h.run_until(at(4.0));
    assert!(h.kernel.sync.is_empty());
    assert!(h.engine.sync_status().is_empty());
}

#[test]
fn daemons_lvs_hc_never_ran_are_left_alone_without_sync() {
    let mut kernel = Table::new();
    kernel.sync = vec![daemon(SyncRole::Master, "eth1", 3)];
    let mut h = Harness::new(&config(""), kernel);
    h.run_until(at(20.0));
    assert!(h.sync_applied.is_empty(), "{:?}", sync_lines(&h));
    assert_eq!(h.kernel.sync.len(), 1);
    assert_eq!(
        h.engine.sync_running().map(<[SyncDaemon]>::len),
        Some(1),
        "status still shows it"
    );
}

#[test]
fn a_role_sync_does_not_name_is_left_alone_when_lvs_hc_never_ran_it() {
    let mut kernel = Table::new();
    kernel.sync = vec![daemon(SyncRole::Backup, "eth1", 3)];
    let mut h = Harness::new(
        &config("[sync]\ninterface = \"eth0\"\nsync_id = 7\nrole = \"master\""),
        kernel,
    );
    h.run_until(at(12.0));
    assert_eq!(
        sync_lines(&h),
        ["ipvsadm --start-daemon master --mcast-interface eth0 --syncid 7"]
    );
    assert_eq!(h.kernel.sync[1], daemon(SyncRole::Backup, "eth1", 3));
}

#[test]
fn withdrawal_stops_the_daemons_lvs_hc_ran_and_is_complete_only_then() {
    let mut h = Harness::new(&config(BOTH), Table::new());
    h.run_until(at(2.0));
    h.fail_sync = Some("injected".into());
    h.withdraw();
    h.run_until(at(3.0));
    assert!(!h.engine.withdrawn(), "a daemon still runs");
    h.fail_sync = None;
    h.run_until(at(10.0));
    assert!(h.kernel.sync.is_empty(), "{:?}", h.event_lines());
    assert!(h.engine.withdrawn());
    assert!(h.event_lines().contains(
        &"backup sync daemon stopped: lvs-hc is leaving (--cleanup-on-exit)".to_string()
    ));
}

#[test]
fn a_reload_that_changes_sync_is_tried_at_once_not_after_the_backoff() {
    let mut h = Harness::new(&config(BOTH), Table::new());
    h.fail_sync = Some("no such interface `eth0` for the sync daemon".into());
    h.run_until(at(3.5));
    // Failed at about 0, 1 and 3: the next try waits until about 7.
    h.fail_sync = None;
    h.reload(&config("[sync]\ninterface = \"eth1\"\nsync_id = 7"));
    h.run_until(at(3.6));
    assert_eq!(
        sync_lines(&h),
        [
            "ipvsadm --start-daemon master --mcast-interface eth1 --syncid 7",
            "ipvsadm --start-daemon backup --mcast-interface eth1 --syncid 7",
        ],
        "the corrected configuration at once"
    );
}
