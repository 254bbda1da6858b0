//! Backend benchmark on a real kernel (run inside the lab: `tests/lab/run --bench`).
//!
//! Side by side in one run: 1,000 destination adds through netlink (one request at a time and
//! pipelined), through one `ipvsadm` process per operation, and through one `ipvsadm -R`; and a
//! full snapshot of 10,000 destinations through netlink against `ipvsadm -Sn`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::netlink::NetlinkBackend;
use ipvs_sys::IpvsBackend;
use lvs_hc_core::{DestParams, Forward, Op, ServiceKey, ServiceParams};

fn ops(service: ServiceKey, n: u32, offset: u32) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let i = i + offset;
            let dest = SocketAddr::from((
                [
                    10,
                    100 + (i / 62500) as u8,
                    ((i / 250) % 250) as u8,
                    (i % 250) as u8 + 1,
                ],
                80,
            ));
            Op::AddDest {
                service,
                dest,
                params: DestParams::new(Forward::Dr, 1),
            }
        })
        .collect()
}

fn fresh(nl: &mut NetlinkBackend, service: ServiceKey) {
    nl.flush().unwrap();
    nl.apply(&Op::AddService {
        key: service,
        params: ServiceParams::new("wlc"),
    })
    .unwrap();
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn main() {
    let service = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
    let mut nl = NetlinkBackend::connect().expect("netlink");
    let mut adm = IpvsadmBackend::default();
    let batch = ops(service, 1000, 0);

    fresh(&mut nl, service);
    let nl_each = time(|| batch.iter().for_each(|op| nl.apply(op).unwrap()));
    fresh(&mut nl, service);
    let nl_pipe = time(|| assert!(nl.apply_batch(&batch).iter().all(Result::is_ok)));
    fresh(&mut nl, service);
    let adm_each = time(|| batch.iter().for_each(|op| adm.apply(op).unwrap()));
    fresh(&mut nl, service);
    let adm_restore = time(|| assert!(adm.apply_batch(&batch).iter().all(Result::is_ok)));

    fresh(&mut nl, service);
    let big = ops(service, 10_000, 0);
    assert!(nl.apply_batch(&big).iter().all(Result::is_ok));
    let mut dests = 0;
    let nl_snap = time(|| dests = nl.snapshot().unwrap().table.dest_count());
    assert_eq!(dests, 10_000);
    let mut lines = 0;
    let adm_save = time(|| {
        let out = Command::new("ipvsadm").args(["-S", "-n"]).output().unwrap();
        lines = out.stdout.iter().filter(|b| **b == b'\n').count();
    });
    assert_eq!(lines, 10_001);
    nl.flush().unwrap();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| measurement | time |");
    println!("| --- | --- |");
    println!(
        "| 1,000 adds, netlink, one request at a time | {:.1} ms |",
        ms(nl_each)
    );
    println!(
        "| 1,000 adds, netlink, pipelined (`apply_batch`) | {:.1} ms |",
        ms(nl_pipe)
    );
    println!(
        "| 1,000 adds, one `ipvsadm` process per add | {:.1} ms |",
        ms(adm_each)
    );
    println!(
        "| 1,000 adds, one `ipvsadm -R` | {:.1} ms |",
        ms(adm_restore)
    );
    println!(
        "| snapshot of 10,000 destinations, netlink | {:.1} ms |",
        ms(nl_snap)
    );
    println!(
        "| snapshot of 10,000 destinations, `ipvsadm -Sn` | {:.1} ms |",
        ms(adm_save)
    );
    let speedup = adm_each.as_secs_f64() / nl_each.as_secs_f64();
    println!();
    println!("netlink (one at a time) vs one process per add: {speedup:.0}x (goal: at least 50x)");
    println!(
        "netlink pipelined vs ipvsadm -R: {:.2}x the time (goal: no slower, at most 1.00x)",
        nl_pipe.as_secs_f64() / adm_restore.as_secs_f64()
    );
    println!(
        "snapshot, netlink vs ipvsadm -Sn: {:.2}x the time",
        nl_snap.as_secs_f64() / adm_save.as_secs_f64()
    );
}
