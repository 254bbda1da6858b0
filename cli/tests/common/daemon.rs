//! A daemon under test and the web servers it probes, for the tests that run `lvs-hc run`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_lvs-hc");

/// A web server on a loopback port answering 200 "ok" until stopped.
pub struct Web {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Web {
    pub fn start() -> Web {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break; // dropping the listener: connections are refused from now on
                }
                let Ok(mut s) = stream else { continue };
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        Web { addr, stop }
    }

    /// Stops answering: the listener closes after one last connection.
    pub fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

pub fn config(servers: &[(SocketAddr, u32)], extra: &str) -> String {
    let mut text = String::from(
        "[daemon]\nresync_interval = \"500ms\"\n\n[[service]]\nname = \"web\"\n\
         address = \"10.0.0.1:80\"\nforward = \"nat\"\n\n[[service.check]]\ntype = \"http\"\n\
         interval = \"200ms\"\ntimeout = \"150ms\"\nrise = 1\nfall = 2\njitter = \"0s\"\n",
    );
    for (addr, weight) in servers {
        text.push_str(&format!(
            "\n[[service.server]]\naddress = \"{addr}\"\nweight = {weight}\n"
        ));
    }
    text.push_str(extra);
    text
}

/// Gives the test's configuration its own `state_dir` in the test's directory, unless it names
/// one: a daemon under test never reads (or prunes) this host's `/var/lib/lvs-hc`.
pub fn own_state_dir(dir: &TempDir) {
    let path = dir.path("lvs-hc.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    if text.contains("state_dir") {
        return;
    }
    let line = format!("state_dir = \"{}\"\n", dir.path("state").display());
    let text = match text.find("[daemon]\n") {
        Some(at) => {
            let end = at + "[daemon]\n".len();
            format!("{}{line}{}", &text[..end], &text[end..])
        }
        None => format!("[daemon]\n{line}\n{text}"),
    };
    std::fs::write(&path, text).unwrap();
}

/// The daemon under test; killed if the test ends early. Its JSON log lines are collected.
pub struct Daemon {
    pub child: Child,
    pub api: String,
    pub control: std::path::PathBuf,
    pub log: Arc<Mutex<Vec<Value>>>,
}

/// How to start a [`Daemon`] beyond its defaults.
#[derive(Default)]
pub struct Options<'a> {
    /// More arguments for `lvs-hc run`.
    pub args: &'a [&'a str],
    /// More environment.
    pub env: &'a [(&'a str, &'a str)],
    /// The API (`--api`); default a unix socket in the test's directory.
    pub api: Option<String>,
    /// `RLIMIT_NOFILE` (soft and hard) for the daemon.
    pub nofile: Option<u64>,
    /// The network namespace to run the daemon in (`ip netns exec`; needs root).
    pub netns: Option<&'a str>,
}

impl Daemon {
    pub fn start(dir: &TempDir, extra_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(
            dir,
            Options {
                args: extra_args,
                env,
                ..Options::default()
            },
        )
    }

    pub fn start_with(dir: &TempDir, options: Options<'_>) -> Daemon {
        own_state_dir(dir);
        let (extra_args, env) = (options.args, options.env);
        let api = options
            .api
            .unwrap_or_else(|| format!("unix:{}", dir.path("api.sock").display()));
        let mut cmd = match options.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, BIN]);
                cmd
            }
            None => Command::new(BIN),
        };
        if let Some(n) = options.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit(2) between fork and exec touches only the child's limits.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.args([
            "run",
            "--backend",
            "memory",
            "--log-format",
            "json",
            "--api",
            &api,
        ])
        .arg("--config")
        .arg(dir.path("lvs-hc.toml"))
        .arg("--lock-file")
        .arg(dir.path("lvs-hc.lock"))
        .args(extra_args)
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
                sink.lock().unwrap().push(value);
            }
        });
        let daemon = Daemon {
            child,
            api,
            control: dir.path("lvs-hc.sock"),
            log,
        };
        daemon.wait_for("the first table read", Duration::from_secs(10), |d| {
            d.status()
                .is_some_and(|s| s["last_resync_seconds_ago"].is_number())
        });
        daemon
    }

    /// `lvs-hc ARGS`, pointed at this daemon: commands at its control socket (beside the lock
    /// file), the rest at its read-only API.
    pub fn lvs_hc(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args);
        if matches!(args.first(), Some(&"reload" | &"server")) {
            cmd.arg("--control").arg(&self.control);
        } else {
            cmd.args(["--api", &self.api]);
        }
        cmd.output().unwrap()
    }

    pub fn status(&self) -> Option<Value> {
        let out = self.lvs_hc(&["status", "--json"]);
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("status --json prints JSON"))
    }

    pub fn server(status: &Value, addr: SocketAddr) -> &Value {
        status["services"][0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["address"] == addr.to_string())
            .unwrap_or_else(|| panic!("{addr} not in status: {status}"))
    }

    /// Waits until `done` holds; returns how long it took.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Daemon) -> bool,
    ) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self) {
                return start.elapsed();
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what}: not within {limit:?}; log:\n{}",
            self.messages().join("\n")
        );
    }

    pub fn messages(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                v["fields"]["message"]
                    .as_str()
                    .or(v["message"].as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0);
    }

    /// SIGTERM; the exit status within `limit`, and every log message.
    pub fn stop(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                thread::sleep(Duration::from_millis(100));
                return (status, self.messages());
            }
            assert!(
                start.elapsed() < limit,
                "lvs-hc did not stop within {limit:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET on the daemon's API: `unix:PATH` or `ADDR:PORT`.
pub fn http_get(api: &str, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    if let Some(sock) = api.strip_prefix("unix:") {
        let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.read_to_string(&mut text).unwrap();
    } else {
        let mut s = std::net::TcpStream::connect(api).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.read_to_string(&mut text).unwrap();
    }
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    body.to_string()
}
