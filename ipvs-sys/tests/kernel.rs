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
    ServiceParams, Table,
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
