//! Network namespaces for tests that need a kernel of their own (addresses, sysctls, ARP),
//! created and deleted by the test: the host's network is never touched. Root is needed, and a
//! test without it fails, naming the command to run, rather than skipping.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace, with a scratch directory of its own; both are deleted when dropped.
pub struct Netns {
    /// Its name under /var/run/netns.
    pub name: String,
    /// A directory for the test's files (`setup`'s state directory, say), not created.
    pub state_dir: PathBuf,
}

impl Netns {
    /// A fresh namespace (`lo` down, as the kernel makes it), for a test of `suite` (the test file's name, said in
    /// the error without root); `role` tells it apart from the test's others.
    pub fn new(suite: &str, role: &str) -> Netns {
        assert!(
            // SAFETY: geteuid has no arguments and cannot fail.
            unsafe { libc::geteuid() } == 0,
            "the {suite} tests create network namespaces and need root: run them as root \
             (sudo -E cargo test -p lvs-hc --test {suite}), or in the lab (tests/lab/run)"
        );
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lvshc-{suite}-{}-{}-{role}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(Command::new("ip").args(["netns", "add", &name]));
        let state_dir = std::env::temp_dir().join(format!("{name}-state"));
        let _ = std::fs::remove_dir_all(&state_dir);
        Netns { name, state_dir }
    }

    /// Runs a program inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("running ip netns exec")
    }

    /// Runs a program inside the namespace; panics on failure; its standard output.
    pub fn run(&self, argv: &[&str]) -> String {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv))
    }

    /// `ip ARGS` inside the namespace; panics on failure; its standard output.
    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A setting under /proc/sys (`net/ipv4/conf/all/rp_filter`), trimmed.
    pub fn sysctl(&self, path: &str) -> String {
        self.run(&["cat", &format!("/proc/sys/{path}")])
            .trim()
            .to_string()
    }

    /// Writes a setting under /proc/sys.
    pub fn set_sysctl(&self, path: &str, value: &str) {
        self.run(&["sh", "-c", &format!("echo {value} > /proc/sys/{path}")]);
    }

    /// The addresses on `dev`, as `ADDR/PREFIX`.
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        self.ip(&["-o", "addr", "show", "dev", dev])
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet" || *w == "inet6")?;
                words.next().map(str::to_string)
            })
            .collect()
    }

    /// The MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> String {
        self.run(&["cat", &format!("/sys/class/net/{dev}/address")])
            .trim()
            .to_string()
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens live there), with a tokio
    /// runtime of its own.
    pub fn enter<T: Send>(&self, f: impl AsyncFnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(move || {
                let file = std::fs::File::open(&path).unwrap();
                // SAFETY: setns(2) on this thread only, with a namespace file we hold open.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(f())
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Runs `cmd`; panics on failure; its standard output.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
