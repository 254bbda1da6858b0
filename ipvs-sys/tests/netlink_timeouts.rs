//! The netlink backend never waits for the kernel without bound: a request or dump the kernel
//! stops answering fails after the timeout, and answers that arrive late for it are ignored.

mod fake_kernel;

use std::time::{Duration, Instant};

use fake_kernel::{ack, datagram, dest, dest_message, done, service, service_message, FakeKernel};
use ipvs_sys::netlink::codec::cmd;
use ipvs_sys::netlink::{NetlinkSocket, Transport};
use ipvs_sys::{IpvsBackend, IpvsError};
use lvs_hc_core::{DestParams, Forward, Op, ServiceKey, ServiceParams, Table};

const TIMEOUT: Duration = Duration::from_millis(50);

fn key(addr: &str) -> ServiceKey {
    ServiceKey::Tcp(addr.parse().unwrap())
}

fn add_service(key: ServiceKey) -> Op {
    Op::AddService {
        key,
        params: ServiceParams::new("wlc"),
    }
}

fn add_dest(service: ServiceKey, dest: &str) -> Op {
    Op::AddDest {
        service,
        dest: dest.parse().unwrap(),
        params: DestParams::new(Forward::Dr, 1),
    }
}

#[test]
fn stalled_dump_fails_and_its_late_parts_do_not_leak_into_the_next_snapshot() {
    let (a, b, c, d) = (
        key("10.0.0.1:80"),
        key("10.0.0.2:80"),
        key("10.0.0.3:80"),
        key("10.0.0.4:80"),
    );
    let rs = DestParams::new(Forward::Dr, 1);
    let mut dumps = 0;
    let mut stalled_seq = 0;
    let kernel = FakeKernel::new(move |req| match req.msg.cmd {
        cmd::GET_SERVICE => {
            dumps += 1;
            if dumps == 1 {
                // Two services, then silence: no more parts, no end of dump.
                stalled_seq = req.seq;
                vec![datagram([
                    service_message(req.seq, service(&a)),
                    service_message(req.seq, service(&b)),
                ])]
            } else {
                // The stalled dump's remaining parts and its end arrive first, then the answer
                // to this dump: services a and d only.
                vec![
                    datagram([service_message(stalled_seq, service(&c)), done(stalled_seq)]),
                    datagram([
                        service_message(req.seq, service(&a)),
                        service_message(req.seq, service(&d)),
                    ]),
                    datagram([done(req.seq)]),
                ]
            }
        }
        cmd::GET_DEST if req.service() == Some(a) => vec![
            datagram([dest_message(req.seq, dest("10.0.1.1:80", &rs))]),
            datagram([done(req.seq)]),
        ],
        cmd::GET_DEST => vec![datagram([done(req.seq)])],
        cmd::GET_DAEMON => vec![datagram([done(req.seq)])],
        other => panic!("unexpected command {other}"),
    });
    let mut backend = kernel.backend(TIMEOUT);

    let error = backend.snapshot().unwrap_err();
    assert!(matches!(error, IpvsError::Timeout { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the kernel did not answer within 50ms (reading the list of services)"
    );

    let snap = backend.snapshot().unwrap();
    let mut want = Table::new();
    for op in [add_service(a), add_dest(a, "10.0.1.1:80"), add_service(d)] {
        want.apply(&op).unwrap();
    }
    assert_eq!(snap.table, want);
    assert!(kernel.timeouts().iter().all(|t| *t == TIMEOUT));
}

#[test]
fn stalled_destination_dump_fails_the_snapshot() {
    let a = key("10.0.0.1:80");
    let rs = DestParams::new(Forward::Dr, 1);
    let kernel = FakeKernel::new(move |req| match req.msg.cmd {
        cmd::GET_SERVICE => vec![
            datagram([service_message(req.seq, service(&a))]),
            datagram([done(req.seq)]),
        ],
        // One destination, then silence.
        cmd::GET_DEST => vec![datagram([dest_message(req.seq, dest("10.0.1.1:80", &rs))])],
        other => panic!("unexpected command {other}"),
    });
    let error = kernel.backend(TIMEOUT).snapshot().unwrap_err();
    assert_eq!(
        error.to_string(),
        "the kernel did not answer within 50ms (reading the destinations of TCP 10.0.0.1:80)"
    );
}

#[test]
fn unanswered_batch_reports_every_operation_failed() {
    let svc = key("10.0.0.1:80");
    let ops: Vec<Op> = std::iter::once(add_service(svc))
        .chain((1..=99).map(|i| add_dest(svc, &format!("10.0.1.{i}:80"))))
        .collect();
    let kernel = FakeKernel::new(|_| Vec::new());
    let results = kernel.backend(TIMEOUT).apply_batch(&ops);
    assert_eq!(results.len(), ops.len());
    for (op, result) in ops.iter().zip(&results) {
        let error = result.as_ref().expect_err("no acknowledgement came");
        assert!(
            matches!(error, IpvsError::Timeout { .. }),
            "{op}: {error:?}"
        );
    }
    assert_eq!(
        results[0].as_ref().unwrap_err().to_string(),
        "the kernel did not answer within 50ms (reading the acknowledgement of \
         `ipvsadm -A -t 10.0.0.1:80 -s wlc`)"
    );
    // Once the kernel stops answering, the rest of the batch is not sent at all.
    assert_eq!(kernel.requests().len(), 64);
    assert_eq!(
        results[99].as_ref().unwrap_err().to_string(),
        "the kernel did not answer within 50ms (`ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.99:80 -g -w 1` \
         was not sent: the kernel stopped answering earlier in the batch)"
    );
}

#[test]
fn partly_answered_batch_reports_the_answered_operations() {
    let svc = key("10.0.0.1:80");
    let ops = [
        add_service(svc),
        add_dest(svc, "10.0.1.1:80"),
        add_dest(svc, "10.0.1.2:80"),
    ];
    // The service is acknowledged, the first destination refused, the second never answered.
    let mut dests = 0;
    let kernel = FakeKernel::new(move |req| match req.msg.cmd {
        cmd::NEW_SERVICE => vec![datagram([ack(req.seq, 0)])],
        cmd::NEW_DEST => {
            dests += 1;
            if dests == 1 {
                vec![datagram([ack(req.seq, libc::EEXIST)])]
            } else {
                Vec::new()
            }
        }
        other => panic!("unexpected command {other}"),
    });
    let results = kernel.backend(TIMEOUT).apply_batch(&ops);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(IpvsError::DestExists)));
    assert!(matches!(results[2], Err(IpvsError::Timeout { .. })));
}

#[test]
fn unanswered_request_fails_and_its_late_answer_is_ignored() {
    let svc = key("10.0.0.1:80");
    let mut requests = 0;
    let mut first_seq = 0;
    let kernel = FakeKernel::new(move |req| {
        requests += 1;
        if requests == 1 {
            first_seq = req.seq;
            Vec::new()
        } else {
            // The late refusal of the first request comes before this one's acknowledgement.
            vec![
                datagram([ack(first_seq, libc::EEXIST)]),
                datagram([ack(req.seq, 0)]),
            ]
        }
    });
    let mut backend = kernel.backend(TIMEOUT);
    let error = backend.apply(&add_service(svc)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the kernel did not answer within 50ms (reading the answer to \
         `ipvsadm -A -t 10.0.0.1:80 -s wlc`)"
    );
    backend.apply(&add_dest(svc, "10.0.1.1:80")).unwrap();
}

#[test]
fn netlink_socket_receive_times_out() {
    let mut socket = NetlinkSocket::open().expect("a generic netlink socket opens without IPVS");
    // The receive runs on its own thread so that one that never returns fails the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let start = Instant::now();
        let result = socket.recv(&mut buf, Duration::from_millis(100));
        let _ = tx.send((result.map_err(|e| e.kind()), start.elapsed()));
    });
    let (result, waited) = rx
        .recv_timeout(Duration::from_secs(3))
        .expect("the receive returns within 3s");
    assert_eq!(result, Err(std::io::ErrorKind::TimedOut));
    assert!(waited >= Duration::from_millis(90), "{waited:?}");
}
