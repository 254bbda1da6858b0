//! What `lvs-hc table` prints in its list and JSON formats, for a known table with counters.

use ipvs_sys::{IpvsInfo, Snapshot};
use lvs_hc::table::{format_json, format_list, format_save};
use lvs_hc_core::{parse_save, DestCounters, ServiceKey, Stats};

fn snapshot() -> Snapshot {
    let table = parse_save(
        "-A -t 192.168.0.101:80 -s wlc -p 300 -M 255.255.255.0\n\
         -a -t 192.168.0.101:80 -r 192.168.0.179:80 -g -w 2\n\
         -a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1 -x 100 -y 10\n\
         -A -u [2001:db8::1]:53 -s sh -o -b sh-port\n\
         -a -u [2001:db8::1]:53 -r [2001:db8::2]:5353 -m -w 10\n\
         -A -f 7 -6 -s rr\n",
    )
    .unwrap();
    let mut snap = Snapshot {
        table,
        ..Default::default()
    };
    let key = ServiceKey::Tcp("192.168.0.101:80".parse().unwrap());
    snap.counters.dests.insert(
        (key, "192.168.0.179:80".parse().unwrap()),
        DestCounters {
            active: 12,
            inactive: 3,
            persistent: 4,
            stats: Stats {
                conns: 99,
                inbytes: 1 << 40,
                ..Default::default()
            },
        },
    );
    snap.counters.services.insert(
        key,
        Stats {
            conns: 120,
            cps: 5,
            ..Default::default()
        },
    );
    snap
}

const INFO: IpvsInfo = IpvsInfo {
    version: (1, 2, 1),
    conn_tab_size: 4096,
};

#[test]
fn list_reads_like_ipvsadm() {
    insta::assert_snapshot!(format_list(&INFO, &snapshot()));
}

#[test]
fn json_has_settings_and_counters() {
    insta::assert_snapshot!(format_json(&INFO, &snapshot()));
}

#[test]
fn save_leaves_thresholds_out_like_ipvsadm() {
    let save = format_save(&snapshot());
    assert!(
        save.contains("-a -t 192.168.0.101:80 -r 192.168.0.180:80 -g -w 1\n"),
        "{save}"
    );
}

#[test]
fn the_sync_daemons_follow_the_list_and_are_in_the_json_but_not_in_the_save_format() {
    let mut snap = snapshot();
    snap.table.sync = vec![
        lvs_hc_core::SyncDaemon {
            role: lvs_hc_core::SyncRole::Master,
            interface: "eth0".into(),
            sync_id: 1,
            max_len: Some(1472),
            group: Some("224.0.0.81".parse().unwrap()),
            port: Some(8848),
            ttl: Some(1),
        },
        lvs_hc_core::SyncDaemon {
            role: lvs_hc_core::SyncRole::Backup,
            interface: "eth0".into(),
            sync_id: 1,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        },
    ];
    let list = format_list(&INFO, &snap);
    assert!(
        list.ends_with(
            "master sync daemon (interface eth0, sync id 1, group 224.0.0.81, port 8848, ttl 1, \
             max length 1472)\nbackup sync daemon (interface eth0, sync id 1)\n"
        ),
        "{list}"
    );
    let json: serde_json::Value = serde_json::from_str(&format_json(&INFO, &snap)).unwrap();
    assert_eq!(json["sync_daemons"][0]["role"], "master");
    assert_eq!(json["sync_daemons"][0]["max_packet_len"], 1472);
    assert_eq!(json["sync_daemons"][1]["port"], serde_json::Value::Null);
    assert_eq!(format_save(&snap), format_save(&snapshot()));
}
