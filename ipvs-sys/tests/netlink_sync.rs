//! The netlink backend and the sync daemons, against a scripted kernel: a snapshot reads them
//! from an `IPVS_CMD_GET_DAEMON` dump, and the kernel's refusals to start or stop one become
//! the typed errors of the daemons, not of services.

mod fake_kernel;

use std::time::Duration;

use fake_kernel::{
    ack, daemon_message, datagram, dest, dest_message, done, service, service_message, FakeKernel,
};
use ipvs_sys::netlink::codec::{self, cmd, DaemonAttr};
use ipvs_sys::{IpvsBackend, IpvsError};
use lvs_hc_core::{DestParams, Forward, Op, ServiceKey, SyncDaemon, SyncOp, SyncRole};

const TIMEOUT: Duration = Duration::from_millis(50);

fn key() -> ServiceKey {
    ServiceKey::Tcp("10.0.0.1:80".parse().unwrap())
}

/// A daemon as a 6.1 kernel reports one started with interface and sync id only.
fn reported(role: SyncRole) -> SyncDaemon {
    SyncDaemon {
        role,
        interface: "eth0".into(),
        sync_id: 7,
        max_len: Some(1472),
        group: Some("224.0.0.81".parse().unwrap()),
        port: Some(8848),
        ttl: Some(1),
    }
}

/// A kernel with one service, one destination under it, and the daemons `daemons` (one dump
/// part each, in that order).
fn kernel(daemons: Vec<Vec<DaemonAttr>>) -> FakeKernel {
    FakeKernel::new(move |req| match req.msg.cmd {
        cmd::GET_SERVICE => vec![
            datagram([service_message(req.seq, service(&key()))]),
            datagram([done(req.seq)]),
        ],
        cmd::GET_DEST => vec![
            datagram([dest_message(
                req.seq,
                dest("10.0.9.1:80", &DestParams::new(Forward::Dr, 1)),
            )]),
            datagram([done(req.seq)]),
        ],
        cmd::GET_DAEMON => vec![
            datagram(daemons.iter().map(|d| daemon_message(req.seq, d.clone()))),
            datagram([done(req.seq)]),
        ],
        other => panic!("unexpected command {other}"),
    })
}

#[test]
fn snapshot_reads_the_daemons_master_first_beside_the_services() {
    let k = kernel(vec![
        codec::daemon_attrs(&reported(SyncRole::Backup)),
        codec::daemon_attrs(&reported(SyncRole::Master)),
    ]);
    let snap = k.backend(TIMEOUT).snapshot().unwrap();
    assert_eq!(
        snap.table.sync,
        vec![reported(SyncRole::Master), reported(SyncRole::Backup)]
    );
    assert_eq!(
        snap.table.dest(&key(), &"10.0.9.1:80".parse().unwrap()),
        Some(&DestParams::new(Forward::Dr, 1))
    );
    let commands: Vec<u8> = k.requests().iter().map(|r| r.msg.cmd).collect();
    assert_eq!(
        commands,
        vec![cmd::GET_SERVICE, cmd::GET_DEST, cmd::GET_DAEMON]
    );
}

#[test]
fn snapshot_with_no_daemon_running_has_none() {
    let snap = kernel(Vec::new()).backend(TIMEOUT).snapshot().unwrap();
    assert!(snap.table.sync.is_empty());
    assert_eq!(snap.table.services.len(), 1);
}

#[test]
fn a_daemon_that_cannot_be_read_fails_the_snapshot() {
    let mut unknown = codec::daemon_attrs(&reported(SyncRole::Master));
    unknown[0] = DaemonAttr::State(3);
    let error = kernel(vec![unknown])
        .backend(TIMEOUT)
        .snapshot()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot decode the kernel's reply: a sync daemon: sync daemon of unknown state 3"
    );
}

#[test]
fn a_stalled_daemon_dump_fails_the_snapshot_saying_so() {
    let k = FakeKernel::new(|req| match req.msg.cmd {
        cmd::GET_SERVICE => vec![datagram([done(req.seq)])],
        // One daemon, then silence.
        cmd::GET_DAEMON => vec![datagram([daemon_message(
            req.seq,
            codec::daemon_attrs(&reported(SyncRole::Master)),
        )])],
        other => panic!("unexpected command {other}"),
    });
    let error = k.backend(TIMEOUT).snapshot().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the kernel did not answer within 50ms (reading the list of sync daemons)"
    );
}

fn start(role: SyncRole, interface: &str) -> SyncOp {
    SyncOp::Start(SyncDaemon {
        role,
        interface: interface.into(),
        sync_id: 7,
        max_len: None,
        group: None,
        port: None,
        ttl: None,
    })
}

/// What the kernel answers each operation with, and the error the backend makes of it, by
/// `Debug` (the variants hold no errors to compare).
#[test]
fn kernel_refusals_become_the_daemons_typed_errors() {
    let cases: Vec<(SyncOp, i32, &str)> = vec![
        (start(SyncRole::Master, "eth0"), 0, "Ok"),
        (
            start(SyncRole::Master, "eth0"),
            libc::EEXIST,
            "SyncDaemonRunning(Master)",
        ),
        (
            start(SyncRole::Backup, "eth9"),
            libc::ENODEV,
            "NoSuchInterface(\"eth9\")",
        ),
        (
            SyncOp::Stop(SyncRole::Backup),
            libc::ESRCH,
            "NoSuchSyncDaemon(Backup)",
        ),
        (
            start(SyncRole::Backup, "eth0"),
            libc::EPERM,
            "PermissionDenied",
        ),
        (
            start(SyncRole::Backup, "eth0"),
            libc::ENOMEM,
            "Kernel { errno: 12, message: \"Cannot allocate memory (os error 12)\" }",
        ),
    ];
    let answers: Vec<i32> = cases.iter().map(|(_, errno, _)| *errno).collect();
    let mut next = answers.into_iter();
    let k = FakeKernel::new(move |req| {
        assert!(
            matches!(req.msg.cmd, cmd::NEW_DAEMON | cmd::DEL_DAEMON),
            "{req:?}"
        );
        vec![datagram([ack(req.seq, next.next().unwrap())])]
    });
    let mut backend = k.backend(TIMEOUT);
    for (op, errno, want) in &cases {
        let got = match backend.apply_sync(op) {
            Ok(()) => "Ok".to_string(),
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(&got, want, "`{op}` refused with errno {errno}");
    }
    let sent: Vec<_> = k.requests().into_iter().map(|r| r.msg).collect();
    let wanted: Vec<_> = cases
        .iter()
        .map(|(op, ..)| codec::sync_message(op))
        .collect();
    assert_eq!(sent, wanted);
}

#[test]
fn an_invalid_daemon_names_the_command_and_the_kernels_reasons() {
    let k = FakeKernel::new(|req| vec![datagram([ack(req.seq, libc::EINVAL)])]);
    let op = SyncOp::Start(SyncDaemon {
        group: Some("10.1.2.3".parse().unwrap()),
        ..reported(SyncRole::Master)
    });
    let error = k.backend(TIMEOUT).apply_sync(&op).unwrap_err();
    assert!(matches!(error, IpvsError::Invalid(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "invalid argument (ipvsadm --start-daemon master --mcast-interface eth0 --syncid 7 \
         --sync-maxlen 1472 --mcast-group 10.1.2.3 --mcast-port 8848 --mcast-ttl 1: the kernel \
         refuses an interface name over 15 characters, a group that is not multicast, and sync \
         daemons while a service has destinations of the other address family)"
    );
}

/// The same errnos for a service keep their meaning for services.
#[test]
fn eexist_for_a_service_is_still_a_service_that_exists() {
    let k = FakeKernel::new(|req| vec![datagram([ack(req.seq, libc::EEXIST)])]);
    let op = Op::AddService {
        key: key(),
        params: lvs_hc_core::ServiceParams::new("wlc"),
    };
    let error = k.backend(TIMEOUT).apply(&op).unwrap_err();
    assert!(matches!(error, IpvsError::ServiceExists), "{error:?}");
}

#[test]
fn an_unanswered_stop_fails_after_the_timeout_naming_it() {
    let k = FakeKernel::new(|_| Vec::new());
    let error = k
        .backend(TIMEOUT)
        .apply_sync(&SyncOp::Stop(SyncRole::Master))
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the kernel did not answer within 50ms (reading the answer to \
         `ipvsadm --stop-daemon master`)"
    );
}
