//! A service whose `ipvsadm -Sn` lines the ipvsadm backend cannot read (an option or protocol
//! from a newer ipvsadm) is left out of the snapshot and named in `Snapshot::skipped`; the rest
//! of the table, and the counters of the rest, are read as usual.

use std::path::PathBuf;
use std::sync::OnceLock;

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::{IpvsBackend, SkippedService};
use lvs_hc_core::{parse_save, ServiceKey};

/// Four services: the second has a destination with an option this parser does not know, the
/// fourth a protocol it does not know (so not even its key can be read). In the listings the
/// fourth's destination has the same address as the third's, with other numbers.
const FAKE: &str = r#"#!/bin/sh
head='IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n  -> RemoteAddress:Port\n'
case "$*" in
"-S -n") printf -- '-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 10.0.9.1:80 -g -w 1
-A -t 10.0.0.2:80 -s wlc
-a -t 10.0.0.2:80 -r 10.0.9.1:80 --newfwd -w 1
-A -t 10.0.0.3:80 -s wlc
-a -t 10.0.0.3:80 -r 10.0.9.1:80 -g -w 3
-A --dccp-service 10.0.0.4:80 -s wlc
-a --dccp-service 10.0.0.4:80 -r 10.0.9.1:80 -g -w 1
' ;;
"-L -n --thresholds --nosort") printf "$head"'TCP  10.0.0.1:80 wlc
  -> 10.0.9.1:80  0 0 1 1
TCP  10.0.0.2:80 wlc
  -> 10.0.9.1:80  0 0 2 2
TCP  10.0.0.3:80 wlc
  -> 10.0.9.1:80  30 3 3 3
DCCP 10.0.0.4:80 wlc
  -> 10.0.9.1:80  40 4 4 4
' ;;
"-L -n --persistent-conn") printf "$head"'TCP  10.0.0.1:80 wlc
  -> 10.0.9.1:80  1 0 1 1
TCP  10.0.0.2:80 wlc
  -> 10.0.9.1:80  1 0 2 2
TCP  10.0.0.3:80 wlc
  -> 10.0.9.1:80  3 3 3 3
DCCP 10.0.0.4:80 wlc
  -> 10.0.9.1:80  1 4 4 4
' ;;
"-L -n --stats --exact"|"-L -n --rate --exact") printf "$head"'TCP  10.0.0.1:80 1 1 1 1 1
  -> 10.0.9.1:80  1 1 1 1 1
TCP  10.0.0.2:80 2 2 2 2 2
  -> 10.0.9.1:80  2 2 2 2 2
TCP  10.0.0.3:80 3 3 3 3 3
  -> 10.0.9.1:80  3 3 3 3 3
DCCP 10.0.0.4:80 4 4 4 4 4
  -> 10.0.9.1:80  4 4 4 4 4
' ;;
"-L --daemon") ;;
*) echo "unexpected: $*" >&2; exit 2 ;;
esac
"#;

/// The stand-in, written once per test process: a test that forks while another still has the
/// script open for writing would make that one's exec fail with "Text file busy".
fn fake() -> IpvsadmBackend {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lvs-hc-newer-ipvsadm-{}", std::process::id()));
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
fn unreadable_services_are_skipped_and_the_rest_read_with_their_counters() {
    let snap = fake()
        .snapshot()
        .expect("unreadable services do not fail the snapshot");
    let want = parse_save(
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.0.9.1:80 -g -w 1\n\
         -A -t 10.0.0.3:80 -s wlc\n-a -t 10.0.0.3:80 -r 10.0.9.1:80 -g -w 3 -x 30 -y 3\n",
    )
    .unwrap();
    assert_eq!(snap.table, want);
    let middle = ServiceKey::Tcp("10.0.0.2:80".parse().unwrap());
    assert_eq!(
        snap.skipped,
        vec![
            SkippedService {
                key: Some(middle),
                error: "line 4: unknown or unsupported option `--newfwd`".into(),
            },
            SkippedService {
                key: None,
                error: "line 7: unknown or unsupported option `--dccp-service`".into(),
            },
        ]
    );
    // The skipped service has no counters; the third keeps its own, not the fourth's.
    assert!(!snap.counters.services.contains_key(&middle));
    assert!(snap.counters.dests.keys().all(|(svc, _)| *svc != middle));
    let third = ServiceKey::Tcp("10.0.0.3:80".parse().unwrap());
    let c = snap.counters.dests[&(third, "10.0.9.1:80".parse().unwrap())];
    assert_eq!(
        (c.active, c.inactive, c.persistent, c.stats.conns),
        (3, 3, 3, 3)
    );
    assert_eq!(snap.counters.services.len(), 2);
    assert_eq!(snap.counters.dests.len(), 2);
}
