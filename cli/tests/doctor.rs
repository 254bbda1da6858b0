//! `lvs-hc doctor`'s probes on this machine (`doctor::Host`): however many servers the
//! configuration has, only so many probes run at once, so doctor never runs the director out
//! of descriptors (which would read as faults of the director, not verdicts).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lvs_hc::doctor::{DoctorSystem, Host};
use lvs_hc_core::{Config, ProbeId, ProbeOutcome, ProbeRequest};

#[test]
fn doctor_runs_a_bounded_number_of_probes_at_once() {
    // A server that holds each connection 200 ms before it answers, counting how many it
    // holds at once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    {
        let (open, most) = (open.clone(), most.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (open, most) = (open.clone(), most.clone());
                std::thread::spawn(move || {
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = conn.write_all(b"ok\n");
                    let _ = conn.read(&mut [0u8; 16]);
                });
            }
        });
    }
    let text = format!(
        "[[service]]\naddress = \"10.0.0.1:80\"\nforward = \"nat\"\n[[service.check]]\n\
         type = \"tcp\"\nexpect = \"ok\"\ntimeout = \"3s\"\ninterval = \"5s\"\n\
         [[service.server]]\naddress = \"{addr}\"\n"
    );
    let config = Config::from_toml(&text, "doctor-test").unwrap();
    let req = ProbeRequest {
        id: ProbeId(1),
        server: addr,
        check: config.services[0].servers[0].checks[0].clone(),
    };
    let reqs = vec![req; 300];
    let mut host = Host::new().unwrap();
    let outcomes = host.probe(&reqs);
    assert_eq!(outcomes.len(), 300);
    assert!(
        outcomes
            .iter()
            .all(|o| *o == ProbeOutcome::Pass { weight: None }),
        "{:?}",
        outcomes
            .iter()
            .find(|o| **o != ProbeOutcome::Pass { weight: None })
    );
    let most = most.load(Ordering::SeqCst);
    assert!(
        (2..=128).contains(&most),
        "{most} connections at once: at most 128, and more than one"
    );
}
