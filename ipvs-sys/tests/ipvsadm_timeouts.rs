//! The ipvsadm backend never waits for a hung `ipvsadm` without bound: at the timeout the
//! program is killed, with anything it started, and the call fails saying so.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipvs_sys::ipvsadm::IpvsadmBackend;
use ipvs_sys::{IpvsBackend, IpvsError};
use lvs_hc_core::{DestParams, Forward, Op, ServiceKey};

const TIMEOUT: Duration = Duration::from_millis(300);

/// A stand-in for an ipvsadm that hangs: it never reads its input, and a child of its (which
/// holds its output open) records its pid, in a file named after the first argument, and sleeps.
const HUNG: &str =
    "#!/bin/sh\nsleep 10 &\necho $! > \"$(dirname \"$0\")/sleeper$1.pid\"\nwait\necho late\n";

/// The stand-in, written once per test process: a test that forks while another still has the
/// script open for writing would make that one's exec fail with "Text file busy".
fn hung() -> IpvsadmBackend {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("lvs-hc-hung-ipvsadm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ipvsadm");
        std::fs::write(&path, HUNG).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    });
    IpvsadmBackend::with_program(path).with_timeout(TIMEOUT)
}

fn program() -> PathBuf {
    std::env::temp_dir()
        .join(format!("lvs-hc-hung-ipvsadm-{}", std::process::id()))
        .join("ipvsadm")
}

/// Whether the sleeping child is dead within a second: gone, or a zombie (its orphan is left to
/// init, which does not reap at once everywhere).
fn sleeper_gone(first_argument: &str) -> bool {
    let pid_file = program().with_file_name(format!("sleeper{first_argument}.pid"));
    let pid = std::fs::read_to_string(pid_file).expect("the stand-in recorded its child");
    let status = format!("/proc/{}/status", pid.trim());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        match std::fs::read_to_string(&status) {
            Err(_) => return true,
            Ok(s)
                if s.lines()
                    .any(|l| l.starts_with("State:") && l.contains("zombie")) =>
            {
                return true
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

#[test]
fn hung_ipvsadm_is_killed_at_the_timeout_and_the_snapshot_fails() {
    let mut backend = hung();
    let start = Instant::now();
    let error = backend.snapshot().unwrap_err();
    let waited = start.elapsed();
    assert!(
        matches!(error, IpvsError::IpvsadmTimeout { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "`{} -S -n` did not finish within 300ms; it was killed",
            program().display()
        )
    );
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(
        sleeper_gone("-S"),
        "the hung program's child was killed too"
    );
}

#[test]
fn hung_ipvsadm_restore_fails_every_operation_of_the_batch() {
    let mut backend = hung();
    let svc = ServiceKey::Tcp("10.0.0.1:80".parse().unwrap());
    // More input than a pipe holds, so that writing it would block on a program not reading.
    let ops: Vec<Op> = (0..3000u32)
        .map(|i| Op::AddDest {
            service: svc,
            dest: std::net::SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250) as u8], 80)),
            params: DestParams::new(Forward::Dr, 1),
        })
        .collect();
    let start = Instant::now();
    let results = backend.apply_batch(&ops);
    let waited = start.elapsed();
    assert_eq!(results.len(), ops.len());
    for result in &results {
        let error = result.as_ref().unwrap_err().to_string();
        assert!(error.contains("-R` did not finish within 300ms"), "{error}");
    }
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(
        sleeper_gone("-R"),
        "the hung program's child was killed too"
    );
}
