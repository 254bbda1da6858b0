//! Both backends against a real kernel's IPVS table. These need root and the ip_vs modules, so
//! they are `#[ignore]`d in a plain `cargo test`; `tests/lab/run` boots a Debian kernel under
//! QEMU and runs them there with `--ignored`.

use std::net::SocketAddr;
use std::process::Command;

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::netlink::NetlinkBackend;
use ipvs_sys::{IpvsBackend, IpvsError};
use lvs_hc_core::{
    render_save, DestParams, Family, Forward, Op, Persistence, SchedFlags, ServiceKey,
    ServiceParams, SyncDaemon, SyncOp, SyncRole, Table,
};

const NEEDS_KERNEL: &str = "needs root and a kernel with IPVS: run tests/lab/run";

fn ipvsadm(args: &[&str]) -> String {
    let out = Command::new("ipvsadm")
        .args(args)
        .output()
        .expect("ipvsadm runs");
    assert!(
        out.status.success(),
        "ipvsadm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn backends() -> Vec<(&'static str, Box<dyn IpvsBackend>)> {
    vec![
        (
            "netlink",
            Box::new(NetlinkBackend::connect().expect("netlink backend")),
        ),
        ("ipvsadm", Box::new(IpvsadmBackend::default())),
    ]
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn tcp() -> ServiceKey {
    ServiceKey::Tcp(sa("192.168.0.101:80"))
}

/// Every kind of operation, over IPv4, IPv6, SCTP and fwmark services, with every setting.
fn script() -> Vec<Op> {
    let udp6 = ServiceKey::Udp(sa("[2001:db8::1]:53"));
    let sctp = ServiceKey::Sctp(sa("10.0.0.2:3868"));
    let fwm = ServiceKey::Fwmark {
        mark: 7,
        family: Family::Ipv4,
    };
    let fwm6 = ServiceKey::Fwmark {
        mark: 7,
        family: Family::Ipv6,
    };
    let rs1 = sa("192.168.0.179:80");
    let rs2 = sa("192.168.0.180:80");
    let persistent = |s: &str, timeout, prefix| ServiceParams {
        persistence: Some(Persistence { timeout, prefix }),
        ..ServiceParams::new(s)
    };
    vec![
        Op::AddService {
            key: tcp(),
            params: ServiceParams::new("wlc"),
        },
        Op::AddDest {
            service: tcp(),
            dest: rs1,
            params: DestParams::new(Forward::Dr, 2),
        },
        Op::AddDest {
            service: tcp(),
            dest: rs2,
            params: DestParams {
                weight: 1,
                forward: Forward::Dr,
                upper: 100,
                lower: 10,
            },
        },
        Op::AddDest {
            service: tcp(),
            dest: sa("127.0.0.1:80"),
            params: DestParams::new(Forward::Dr, 5),
        },
        Op::EditDest {
            service: tcp(),
            dest: rs1,
            params: DestParams {
                weight: 0,
                forward: Forward::Dr,
                upper: 50,
                lower: 0,
            },
        },
        Op::EditDest {
            service: tcp(),
            dest: rs2,
            params: DestParams::new(Forward::Tun, 3),
        },
        Op::EditService {
            key: tcp(),
            params: persistent("rr", 300, 24),
        },
        Op::EditService {
            key: tcp(),
            params: ServiceParams {
                sched_flags: SchedFlags::FLAG1.union(SchedFlags::FLAG2),
                ..ServiceParams::new("sh")
            },
        },
        Op::AddService {
            key: udp6,
            params: ServiceParams {
                one_packet: true,
                ..persistent("rr", 60, 64)
            },
        },
        Op::AddDest {
            service: udp6,
            dest: sa("[2001:db8::2]:5353"),
            params: DestParams::new(Forward::Nat, 10),
        },
        Op::AddDest {
            service: udp6,
            dest: sa("[2001:db8::3]:5353"),
            params: DestParams::new(Forward::Nat, 0),
        },
        Op::AddService {
            key: sctp,
            params: ServiceParams::new("lc"),
        },
        Op::AddDest {
            service: sctp,
            dest: sa("10.0.1.2:3868"),
            params: DestParams::new(Forward::Nat, 1),
        },
        Op::AddService {
            key: fwm,
            params: persistent("wlc", 600, 32),
        },
        Op::AddDest {
            service: fwm,
            dest: sa("10.0.1.3:0"),
            params: DestParams::new(Forward::Dr, 1),
        },
        Op::AddService {
            key: fwm6,
            params: ServiceParams::new("mh"),
        },
        Op::AddDest {
            service: fwm6,
            dest: sa("[2001:db8::4]:0"),
            params: DestParams::new(Forward::Tun, 4),
        },
        Op::DelDest {
            service: tcp(),
            dest: sa("127.0.0.1:80"),
        },
        Op::DelDest {
            service: udp6,
            dest: sa("[2001:db8::3]:5353"),
        },
        Op::DelService { key: sctp },
        Op::DelService { key: fwm },
    ]
}

fn strip_thresholds(t: &Table) -> Table {
    let mut t = t.clone();
    for s in t.services.values_mut() {
        for d in s.dests.values_mut() {
            d.upper = 0;
            d.lower = 0;
        }
    }
    t
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn every_operation_reads_back_and_matches_ipvsadm_save() {
    let _ = NEEDS_KERNEL;
    for (name, mut b) in backends() {
        b.flush().unwrap();
        let mut expected = Table::new();
        for op in script() {
            b.apply(&op).unwrap_or_else(|e| panic!("{name}: {op}: {e}"));
            expected.apply(&op).unwrap();
            let snap = b.snapshot().unwrap();
            assert_eq!(
                snap.table, expected,
                "{name}: after `{op}` the table read back differs"
            );
            let save = ipvsadm(&["-S", "-n"]);
            assert_eq!(
                render_save(&snap.table),
                save,
                "{name}: after `{op}`, ipvsadm-save -n differs"
            );
            assert_eq!(
                strip_thresholds(&lvs_hc_core::parse_save(&save).unwrap()),
                strip_thresholds(&expected)
            );
        }
        b.flush().unwrap();
        assert!(
            b.snapshot().unwrap().table.is_empty(),
            "{name}: flush left services"
        );
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn kernel_refusals_become_typed_errors() {
    for (name, mut b) in backends() {
        b.flush().unwrap();
        let rs1 = sa("192.168.0.179:80");
        let add_svc = Op::AddService {
            key: tcp(),
            params: ServiceParams::new("wlc"),
        };
        let add_dest = Op::AddDest {
            service: tcp(),
            dest: rs1,
            params: DestParams::new(Forward::Dr, 1),
        };
        let missing = ServiceKey::Tcp(sa("192.168.0.102:80"));
        let check = |r: Result<(), IpvsError>, want: &str, what: &str| {
            let e = r.expect_err(what);
            assert_eq!(
                format!("{e:?}").split(['(', ' ', '{']).next().unwrap(),
                want,
                "{name}: {what}: {e}"
            );
        };
        check(
            b.apply(&add_dest),
            "NoSuchService",
            "dest under a missing service",
        );
        b.apply(&add_svc).unwrap();
        check(b.apply(&add_svc), "ServiceExists", "duplicate service");
        b.apply(&add_dest).unwrap();
        check(b.apply(&add_dest), "DestExists", "duplicate destination");
        check(
            b.apply(&Op::DelService { key: missing }),
            "NoSuchService",
            "delete a missing service",
        );
        check(
            b.apply(&Op::DelDest {
                service: tcp(),
                dest: sa("192.168.0.199:80"),
            }),
            "NoSuchDest",
            "delete a missing destination",
        );
        check(
            b.apply(&Op::EditDest {
                service: tcp(),
                dest: sa("192.168.0.199:80"),
                params: DestParams::new(Forward::Dr, 1),
            }),
            "NoSuchDest",
            "edit a missing destination",
        );
        check(
            b.apply(&Op::AddService {
                key: missing,
                params: ServiceParams::new("nosuchsched"),
            }),
            "NoSuchScheduler",
            "unknown scheduler",
        );
        if name == "netlink" {
            // ipvsadm itself refuses this before asking the kernel.
            check(
                b.apply(&Op::EditDest {
                    service: tcp(),
                    dest: rs1,
                    params: DestParams {
                        weight: 1,
                        forward: Forward::Dr,
                        upper: 1,
                        lower: 5,
                    },
                }),
                "OutOfRange",
                "lower threshold above upper",
            );
        }
        b.flush().unwrap();
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn both_backends_read_identical_snapshots() {
    let mut nl = NetlinkBackend::connect().unwrap();
    nl.flush().unwrap();
    let ops: Vec<Op> = script()
        .into_iter()
        .filter(|op| !matches!(op, Op::DelService { .. } | Op::DelDest { .. }))
        .collect();
    for r in nl.apply_batch(&ops) {
        r.unwrap();
    }
    let a = nl.snapshot().unwrap();
    let b = IpvsadmBackend::default().snapshot().unwrap();
    assert_eq!(a.table, b.table);
    assert_eq!(a.counters, b.counters);
    assert_eq!(
        nl.info().unwrap(),
        IpvsadmBackend::default().info().unwrap()
    );
    nl.flush().unwrap();
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn batches_apply_in_order_through_both_backends() {
    for (name, mut b) in backends() {
        b.flush().unwrap();
        let mut ops = vec![Op::AddService {
            key: tcp(),
            params: ServiceParams::new("rr"),
        }];
        for i in 0..300u32 {
            let dest = SocketAddr::from(([10, 2, (i / 250) as u8, (i % 250) as u8 + 1], 80));
            ops.push(Op::AddDest {
                service: tcp(),
                dest,
                params: DestParams::new(Forward::Dr, i % 7),
            });
        }
        let results = b.apply_batch(&ops);
        assert!(
            results.iter().all(Result::is_ok),
            "{name}: {:?}",
            results.iter().find(|r| r.is_err())
        );
        let mut expected = Table::new();
        for op in &ops {
            expected.apply(op).unwrap();
        }
        assert_eq!(b.snapshot().unwrap().table, expected, "{name}");
        // A failing operation in a batch is reported; the others still apply.
        let again = b.apply_batch(&ops[..2]);
        assert!(
            again.iter().any(Result::is_err),
            "{name}: duplicates should fail"
        );
        b.flush().unwrap();
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn info_reports_version_and_table_size() {
    let info = NetlinkBackend::connect().unwrap().info().unwrap();
    assert_eq!(info.version, (1, 2, 1));
    assert!(info.conn_tab_size >= 4096, "{info}");
    let listing = ipvsadm(&["-L", "-n"]);
    assert_eq!(listing.lines().next().unwrap(), info.to_string());
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn lvs_hc_table_save_equals_ipvsadm_save() {
    let bin = std::env::var("LVS_HC_BIN").expect("LVS_HC_BIN names the lvs-hc binary");
    let mut nl = NetlinkBackend::connect().unwrap();
    nl.flush().unwrap();
    let ops: Vec<Op> = script()
        .into_iter()
        .filter(|op| !matches!(op, Op::DelService { .. }))
        .collect();
    for op in &ops {
        nl.apply(op).unwrap();
    }
    let want = Command::new("ipvsadm-save").arg("-n").output().unwrap();
    assert!(
        want.status.success(),
        "ipvsadm-save: {}",
        String::from_utf8_lossy(&want.stderr)
    );
    for backend in ["netlink", "ipvsadm"] {
        let got = Command::new(&bin)
            .args(["table", "--backend", backend, "--format", "save"])
            .output()
            .unwrap();
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&want.stdout),
            "{backend}"
        );
    }
    let list = Command::new(&bin)
        .args(["table", "--format", "list"])
        .output()
        .unwrap();
    let ipvsadm_list = ipvsadm(&["-L", "-n"]);
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        ipvsadm_list,
        "lvs-hc table --format list vs ipvsadm -Ln"
    );
    nl.flush().unwrap();
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn plan_against_the_live_table_then_apply_converges() {
    let bin = std::env::var("LVS_HC_BIN").expect("LVS_HC_BIN names the lvs-hc binary");
    let mut nl = NetlinkBackend::connect().unwrap();
    nl.flush().unwrap();
    let config = std::env::temp_dir().join("plan-kernel.toml");
    std::fs::write(
        &config,
        "[[service]]\naddress = \"192.168.0.101:80\"\n[[service.server]]\naddress = \"192.168.0.179:80\"\nweight = 2\n\
         [[service.server]]\naddress = \"192.168.0.180:80\"\n[[service.fallback]]\naddress = \"127.0.0.1:80\"\nweight = 5\n",
    )
    .unwrap();
    let plan = |down: &[&str]| {
        let mut args = vec![
            "plan",
            "--config",
            config.to_str().unwrap(),
            "--actual",
            "kernel",
        ];
        for d in down {
            args.extend(["--down", d]);
        }
        let out = Command::new(&bin).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let apply = |lines: &str| {
        for line in lines.lines() {
            let argv: Vec<&str> = line.split_whitespace().skip(1).collect();
            ipvsadm(&argv);
        }
    };
    let first = plan(&[]);
    assert_eq!(first.lines().count(), 3, "{first}");
    apply(&first);
    assert_eq!(
        plan(&[]),
        "",
        "after applying the plan nothing is left to do"
    );
    let down = plan(&["192.168.0.179:80", "192.168.0.180:80"]);
    assert_eq!(
        down,
        "ipvsadm -a -t 192.168.0.101:80 -r 127.0.0.1:80 -g -w 5\n\
         ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.179:80\n\
         ipvsadm -d -t 192.168.0.101:80 -r 192.168.0.180:80\n"
    );
    apply(&down);
    assert_eq!(plan(&["192.168.0.179:80", "192.168.0.180:80"]), "");
    nl.flush().unwrap();
}

// ---- sync daemons ---------------------------------------------------------------------------

/// One end of a veth pair the sync daemons run on, as a director's link would be: up, its peer
/// up, with an address. A master cannot reach its group through a link that is down
/// (`ENETUNREACH`). The kernel asks for no MULTICAST flag: `lo` takes both daemons too (its
/// backup's longest message then 65507 bytes, from lo's MTU).
const SYNC_LINK: &str = "lvs-sync0";
const SYNC_PEER: &str = "lvs-sync1";

/// The sync daemons of this network namespace and the veth pair, for one test: made on
/// creation, and on drop every daemon stopped and the pair deleted, so that no test sees
/// another's. The daemons are one per role in the whole namespace, so tests that use them
/// take turns.
struct SyncLab {
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl SyncLab {
    fn new() -> SyncLab {
        static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        stop_every_daemon();
        let _ = Command::new("ip").args(["link", "del", SYNC_LINK]).output();
        ip(&[
            "link", "add", SYNC_LINK, "type", "veth", "peer", "name", SYNC_PEER,
        ]);
        ip(&["addr", "add", "192.0.2.1/24", "dev", SYNC_LINK]);
        ip(&["link", "set", SYNC_LINK, "up"]);
        ip(&["link", "set", SYNC_PEER, "up"]);
        SyncLab { _turn: turn }
    }
}

impl Drop for SyncLab {
    fn drop(&mut self) {
        stop_every_daemon();
        let _ = Command::new("ip").args(["link", "del", SYNC_LINK]).output();
    }
}

fn stop_every_daemon() {
    for role in ["master", "backup"] {
        let _ = Command::new("ipvsadm")
            .args(["--stop-daemon", role])
            .output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A daemon on the lab's link with sync id 7, every setting left to the kernel.
fn sync_daemon(role: SyncRole) -> SyncDaemon {
    SyncDaemon {
        role,
        interface: SYNC_LINK.into(),
        sync_id: 7,
        max_len: None,
        group: None,
        port: None,
        ttl: None,
    }
}

/// What the kernel fills in for a daemon that leaves its settings out, on a link with an MTU
/// of 1500: the longest message that fits a 1500-byte packet after the IPv4 and UDP headers,
/// group 224.0.0.81, port 8848, TTL 1.
fn with_kernel_defaults(d: SyncDaemon) -> SyncDaemon {
    SyncDaemon {
        max_len: Some(1472),
        group: Some("224.0.0.81".parse().unwrap()),
        port: Some(8848),
        ttl: Some(1),
        ..d
    }
}

fn sync_of(b: &mut dyn IpvsBackend) -> Vec<SyncDaemon> {
    b.snapshot().expect("snapshot").table.sync
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn master_and_backup_run_at_once_and_read_back_with_the_kernels_defaults() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        for role in SyncRole::ALL {
            b.apply_sync(&SyncOp::Start(sync_daemon(role)))
                .unwrap_or_else(|e| panic!("{name}: start {role}: {e}"));
        }
        let want: Vec<SyncDaemon> = SyncRole::ALL
            .into_iter()
            .map(|role| with_kernel_defaults(sync_daemon(role)))
            .collect();
        assert_eq!(sync_of(&mut *b), want, "{name}");
        // The other backend reads the same.
        for (other, mut o) in backends() {
            assert_eq!(sync_of(&mut *o), want, "{name} started, {other} read");
        }
        for role in SyncRole::ALL {
            b.apply_sync(&SyncOp::Stop(role))
                .unwrap_or_else(|e| panic!("{name}: stop {role}: {e}"));
        }
        assert_eq!(sync_of(&mut *b), Vec::new(), "{name}: stopped both");
        assert_eq!(ipvsadm(&["-L", "--daemon"]), "", "{name}");
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn explicit_group_port_ttl_and_max_length_round_trip() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        let master = SyncDaemon {
            max_len: Some(1400),
            group: Some("239.1.2.3".parse().unwrap()),
            port: Some(9000),
            ttl: Some(3),
            ..sync_daemon(SyncRole::Master)
        };
        let backup = SyncDaemon {
            sync_id: 200,
            max_len: Some(1300),
            group: Some("ff02::8:1".parse().unwrap()),
            port: Some(9001),
            ttl: Some(4),
            ..sync_daemon(SyncRole::Backup)
        };
        for d in [&master, &backup] {
            b.apply_sync(&SyncOp::Start(d.clone()))
                .unwrap_or_else(|e| panic!("{name}: {d}: {e}"));
        }
        assert_eq!(
            sync_of(&mut *b),
            vec![master.clone(), backup.clone()],
            "{name}"
        );
        for (other, mut o) in backends() {
            assert_eq!(
                sync_of(&mut *o),
                vec![master.clone(), backup.clone()],
                "{name} started, {other} read"
            );
        }
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn starting_a_role_that_runs_is_sync_daemon_running_and_leaves_it_alone() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        b.apply_sync(&SyncOp::Start(sync_daemon(SyncRole::Master)))
            .unwrap();
        let again = SyncDaemon {
            sync_id: 8,
            ..sync_daemon(SyncRole::Master)
        };
        let e = b.apply_sync(&SyncOp::Start(again)).unwrap_err();
        assert!(
            matches!(e, IpvsError::SyncDaemonRunning(SyncRole::Master)),
            "{name}: {e:?}"
        );
        assert_eq!(
            sync_of(&mut *b),
            vec![with_kernel_defaults(sync_daemon(SyncRole::Master))],
            "{name}"
        );
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn a_daemon_on_a_missing_interface_is_no_such_interface() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        for role in SyncRole::ALL {
            let d = SyncDaemon {
                interface: "lvs-nosuch0".into(),
                ..sync_daemon(role)
            };
            let e = b.apply_sync(&SyncOp::Start(d)).unwrap_err();
            assert_eq!(
                format!("{e:?}"),
                "NoSuchInterface(\"lvs-nosuch0\")",
                "{name}: {role}: {e}"
            );
        }
        assert_eq!(sync_of(&mut *b), Vec::new(), "{name}");
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn stopping_a_role_that_does_not_run_is_no_such_sync_daemon() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        let e = b.apply_sync(&SyncOp::Stop(SyncRole::Backup)).unwrap_err();
        assert!(
            matches!(e, IpvsError::NoSuchSyncDaemon(SyncRole::Backup)),
            "{name}: {e:?}"
        );
        // With the other role running.
        b.apply_sync(&SyncOp::Start(sync_daemon(SyncRole::Backup)))
            .unwrap();
        let e = b.apply_sync(&SyncOp::Stop(SyncRole::Master)).unwrap_err();
        assert!(
            matches!(e, IpvsError::NoSuchSyncDaemon(SyncRole::Master)),
            "{name}: {e:?}"
        );
        assert_eq!(
            sync_of(&mut *b),
            vec![with_kernel_defaults(sync_daemon(SyncRole::Backup))],
            "{name}"
        );
    }
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn flush_leaves_the_daemons_running() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        for role in SyncRole::ALL {
            b.apply_sync(&SyncOp::Start(sync_daemon(role))).unwrap();
        }
        b.apply(&Op::AddService {
            key: tcp(),
            params: ServiceParams::new("rr"),
        })
        .unwrap();
        b.flush().unwrap();
        let snap = b.snapshot().unwrap();
        assert!(
            snap.table.services.is_empty(),
            "{name}: flush left services"
        );
        assert_eq!(
            snap.table.sync,
            SyncRole::ALL
                .into_iter()
                .map(|role| with_kernel_defaults(sync_daemon(role)))
                .collect::<Vec<_>>(),
            "{name}: flush stopped a daemon"
        );
    }
}

/// Not a typed error, but one an operator meets: the master's socket cannot reach its group
/// through a link that is down (`ENETUNREACH`); the backup's only listens, and starts.
#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn a_master_on_a_link_that_is_down_is_refused_and_a_backup_is_not() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        ip(&["link", "set", SYNC_LINK, "down"]);
        let e = b
            .apply_sync(&SyncOp::Start(sync_daemon(SyncRole::Master)))
            .unwrap_err();
        assert!(
            e.to_string().contains("Network is unreachable"),
            "{name}: {e}"
        );
        b.apply_sync(&SyncOp::Start(sync_daemon(SyncRole::Backup)))
            .unwrap();
        assert_eq!(
            sync_of(&mut *b),
            vec![with_kernel_defaults(sync_daemon(SyncRole::Backup))],
            "{name}"
        );
    }
}

/// The kernel refuses no longest message: it clamps it, to at least 1024 bytes for a backup
/// and at most what fits a 65535-byte packet. A configuration outside those bounds would never
/// read back as asked.
#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn a_max_length_out_of_the_kernels_range_is_clamped_not_refused() {
    for (name, mut b) in backends() {
        let _lab = SyncLab::new();
        let backup = SyncDaemon {
            max_len: Some(100),
            ..sync_daemon(SyncRole::Backup)
        };
        b.apply_sync(&SyncOp::Start(backup)).unwrap();
        let master = SyncDaemon {
            max_len: Some(65507),
            ..sync_daemon(SyncRole::Master)
        };
        b.apply_sync(&SyncOp::Start(master)).unwrap();
        let read: Vec<Option<u16>> = sync_of(&mut *b).iter().map(|d| d.max_len).collect();
        assert_eq!(read, vec![Some(65507), Some(1024)], "{name}");
    }
    // ipvsadm refuses more than 65507 itself; the kernel takes it and clamps.
    let _lab = SyncLab::new();
    let mut nl = NetlinkBackend::connect().unwrap();
    let master = SyncDaemon {
        max_len: Some(65535),
        ..sync_daemon(SyncRole::Master)
    };
    nl.apply_sync(&SyncOp::Start(master)).unwrap();
    assert_eq!(sync_of(&mut nl)[0].max_len, Some(65507));
}

/// No interface has a name that long; the kernel's netlink policy refuses it (`EINVAL`),
/// ipvsadm cuts it to 15 characters and asks for that interface.
#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn an_interface_name_over_15_characters_is_refused() {
    let _lab = SyncLab::new();
    let long = SyncDaemon {
        interface: format!("{SYNC_LINK}-and-more"),
        ..sync_daemon(SyncRole::Master)
    };
    let e = NetlinkBackend::connect()
        .unwrap()
        .apply_sync(&SyncOp::Start(long.clone()))
        .unwrap_err();
    assert!(matches!(e, IpvsError::Invalid(_)), "netlink: {e:?}");
    let e = IpvsadmBackend::default()
        .apply_sync(&SyncOp::Start(long.clone()))
        .unwrap_err();
    assert!(
        matches!(&e, IpvsError::NoSuchInterface(i) if *i == long.interface),
        "ipvsadm: {e:?}"
    );
}

// ---- hashing schedulers: the kernel's destination list order ---------------------------------

/// The destinations of `key` as `ipvsadm -Ln --nosort` lists them: the kernel's list, head first.
fn nosort_listing(key: &ServiceKey) -> Vec<SocketAddr> {
    let out = ipvsadm(&["-L", "-n", "--nosort", "-t", &key.to_string()[4..]]);
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
#[ignore = "needs root and a kernel with IPVS: run tests/lab/run"]
fn an_mh_list_reads_back_head_first_and_the_engine_puts_it_in_ascending_order() {
    use lvs_hc_core::{Config, Engine, Input, Instant, Output};
    let (one, two, three) = (sa("10.0.0.1:80"), sa("10.0.0.2:80"), sa("10.0.0.3:80"));
    let mut params = ServiceParams::new("mh");
    params.sched_flags = SchedFlags::FLAG1;
    for (name, mut b) in backends() {
        b.flush().unwrap();
        let mut ops = vec![Op::AddService {
            key: tcp(),
            params: params.clone(),
        }];
        // Added in ascending order: each goes to the head, so the list is descending.
        for dest in [one, two, three] {
            ops.push(Op::AddDest {
                service: tcp(),
                dest,
                params: DestParams::new(Forward::Dr, 1),
            });
        }
        let mut expected = Table::new();
        for op in &ops {
            b.apply(op).unwrap_or_else(|e| panic!("{name}: {op}: {e}"));
            expected.apply(op).unwrap();
        }
        let snap = b.snapshot().unwrap();
        assert_eq!(snap.table, expected, "{name}");
        let read = snap.table.services[&tcp()].order().map(<[_]>::to_vec);
        assert_eq!(
            read,
            Some(vec![three, two, one]),
            "{name}: read back head first"
        );
        assert_eq!(nosort_listing(&tcp()), [three, two, one], "{name}");
        assert_eq!(
            expected.services[&tcp()].order(),
            Some(&[three, two, one][..]),
            "{name}: the model adds at the head as the kernel does"
        );

        // The engine, started on this table, repairs it: 2 then 1 move behind 3.
        let config = Config::from_toml(
            "[[service]]\naddress = \"192.168.0.101:80\"\nscheduler = \"mh\"\n\
             sched_flags = [\"mh-fallback\"]\n\
             [[service.server]]\naddress = \"10.0.0.1:80\"\n\
             [[service.server]]\naddress = \"10.0.0.2:80\"\n\
             [[service.server]]\naddress = \"10.0.0.3:80\"\n",
            "kernel-mh.toml",
        )
        .unwrap();
        let mut engine = Engine::new(config, Instant::ZERO, 1);
        let mut applied = Vec::new();
        let mut idle = 0;
        while idle < 2 {
            match engine.poll_output() {
                Output::Apply(op) => {
                    idle = 0;
                    let result = b
                        .apply(&op)
                        .map_err(|e| lvs_hc_core::ApplyError::Other(e.to_string()));
                    assert!(result.is_ok(), "{name}: {op}: {result:?}");
                    applied.push(op.to_string());
                    let now = engine.now();
                    engine.handle_input(Input::Applied { now, op, result });
                }
                Output::ReadTable => {
                    let s = b.snapshot().unwrap();
                    let now = engine.now();
                    engine.handle_input(Input::Snapshot {
                        now,
                        table: s.table,
                        counters: s.counters,
                        skipped: s.skipped,
                    });
                }
                Output::Timeout(_) => {
                    // Read the table again: nothing more must follow from it.
                    idle += 1;
                    let s = b.snapshot().unwrap();
                    let now = engine.now();
                    engine.handle_input(Input::Snapshot {
                        now,
                        table: s.table,
                        counters: s.counters,
                        skipped: s.skipped,
                    });
                }
                _ => {}
            }
        }
        assert_eq!(
            applied,
            [
                "ipvsadm -d -t 192.168.0.101:80 -r 10.0.0.2:80",
                "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.2:80 -g -w 1",
                "ipvsadm -d -t 192.168.0.101:80 -r 10.0.0.1:80",
                "ipvsadm -a -t 192.168.0.101:80 -r 10.0.0.1:80 -g -w 1",
            ],
            "{name}"
        );
        let snap = b.snapshot().unwrap();
        let read = snap.table.services[&tcp()].order().map(<[_]>::to_vec);
        assert_eq!(read, Some(vec![one, two, three]), "{name}: ascending now");
        assert_eq!(nosort_listing(&tcp()), [one, two, three], "{name}");
        b.flush().unwrap();
    }
}
