//! The ipvsadm backend's reading of `ipvsadm` output, against a stand-in program that prints
//! what ipvsadm 1.31 prints for a known table: every column lands in the right field, the sync
//! daemons too, and ipvsadm's refusals become typed errors.

use std::path::PathBuf;
use std::sync::OnceLock;

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::IpvsBackend;
use ipvs_sys::IpvsError;
use lvs_hc_core::{DestParams, Forward, ServiceKey, SyncDaemon, SyncOp, SyncRole};

const FAKE: &str = r#"#!/bin/sh
case "$*" in
"-S -n") printf -- '-A -t 192.168.0.101:80 -s wlc\n-a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n' ;;
"-L -n --thresholds --nosort") printf 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n  -> RemoteAddress:Port\nTCP  192.168.0.101:80 wlc\n  -> 192.168.0.179:80             100        10         3          4\n' ;;
"-L -n --persistent-conn") printf 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port            Weight    PersistConn ActiveConn InActConn\n  -> RemoteAddress:Port\nTCP  192.168.0.101:80 wlc\n  -> 192.168.0.179:80             2         5           3          4\n' ;;
"-L -n --stats --exact") printf 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\nTCP  192.168.0.101:80                  11       12        0     1300        0\n  -> 192.168.0.179:80                  21       22        0     2300        0\n' ;;
"-L -n --rate --exact") printf 'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n  -> RemoteAddress:Port\nTCP  192.168.0.101:80                   1        2        0       30        0\n  -> 192.168.0.179:80                   6        7        0       80        0\n' ;;
"-L -n") printf 'IP Virtual Server version 1.2.1 (size=8192)\n' ;;
"-L --daemon") printf 'master sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\nbackup sync daemon (mcast=eth1, syncid=7, maxlen=1452, group=ff02::8:1, port=8849, ttl=2)\n' ;;
"--start-daemon backup --mcast-interface eth1 --syncid 7") echo "Daemon has already run" >&2; exit 255 ;;
"--start-daemon master --mcast-interface eth9 --syncid 7") echo "No such device" >&2; exit 255 ;;
"--stop-daemon master") echo "No daemon is running" >&2; exit 255 ;;
"--stop-daemon backup") ;;
*) echo "No such destination" >&2; exit 2 ;;
esac
"#;

/// The stand-in, written once per test process: a test that forks while another still has the
/// script open for writing would make that one's exec fail with "Text file busy".
fn fake() -> IpvsadmBackend {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lvs-hc-fake-ipvsadm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ipvsadm");
        std::fs::write(&path, FAKE).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    });
    IpvsadmBackend::with_program(path)
}

#[test]
fn every_listing_column_lands_in_its_field() {
    let snap = fake().snapshot().unwrap();
    let key = ServiceKey::Tcp("192.168.0.101:80".parse().unwrap());
    let rs = "192.168.0.179:80".parse().unwrap();
    assert_eq!(
        snap.table.dest(&key, &rs),
        Some(&DestParams {
            weight: 2,
            forward: Forward::Dr,
            upper: 100,
            lower: 10
        })
    );
    let c = snap.counters.dests[&(key, rs)];
    assert_eq!((c.active, c.inactive, c.persistent), (3, 4, 5));
    assert_eq!(
        (
            c.stats.conns,
            c.stats.inpkts,
            c.stats.inbytes,
            c.stats.cps,
            c.stats.inbps
        ),
        (21, 22, 2300, 6, 80)
    );
    assert_eq!(snap.counters.services[&key].conns, 11);
}

#[test]
fn info_and_errors_come_from_ipvsadm() {
    let mut b = fake();
    assert_eq!(b.info().unwrap().conn_tab_size, 8192);
    let op = lvs_hc_core::Op::DelDest {
        service: ServiceKey::Tcp("192.168.0.101:80".parse().unwrap()),
        dest: "192.168.0.9:80".parse().unwrap(),
    };
    assert!(matches!(b.apply(&op), Err(ipvs_sys::IpvsError::NoSuchDest)));
}

#[test]
fn the_sync_daemons_are_read_from_the_daemon_listing() {
    let snap = fake().snapshot().unwrap();
    assert_eq!(
        snap.table.sync,
        vec![
            SyncDaemon {
                role: SyncRole::Master,
                interface: "eth0".into(),
                sync_id: 7,
                max_len: Some(1472),
                group: Some("224.0.0.81".parse().unwrap()),
                port: Some(8848),
                ttl: Some(1),
            },
            SyncDaemon {
                role: SyncRole::Backup,
                interface: "eth1".into(),
                sync_id: 7,
                max_len: Some(1452),
                group: Some("ff02::8:1".parse().unwrap()),
                port: Some(8849),
                ttl: Some(2),
            },
        ]
    );
}

#[test]
fn sync_daemon_commands_run_as_argv_and_their_refusals_are_typed() {
    let mut b = fake();
    let start = |role, interface: &str| {
        SyncOp::Start(SyncDaemon {
            role,
            interface: interface.into(),
            sync_id: 7,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        })
    };
    b.apply_sync(&SyncOp::Stop(SyncRole::Backup)).unwrap();
    let e = b.apply_sync(&start(SyncRole::Backup, "eth1")).unwrap_err();
    assert!(
        matches!(e, IpvsError::SyncDaemonRunning(SyncRole::Backup)),
        "{e:?}"
    );
    let e = b.apply_sync(&start(SyncRole::Master, "eth9")).unwrap_err();
    assert!(
        matches!(&e, IpvsError::NoSuchInterface(i) if i == "eth9"),
        "{e:?}"
    );
    let e = b.apply_sync(&SyncOp::Stop(SyncRole::Master)).unwrap_err();
    assert!(
        matches!(e, IpvsError::NoSuchSyncDaemon(SyncRole::Master)),
        "{e:?}"
    );
}
