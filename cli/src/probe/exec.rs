//! Exec checks: a program of the operator's, run without a shell, bounded in time, in output and
//! in what it leaves behind.
//!
//! - **Environment.** Cleared but for `PATH` (lvs-hc's own, or a standard one), `LANG` (if set),
//!   `LVS_HC_IP`, `LVS_HC_PORT`, `LVS_HC_VIP`, `LVS_HC_VIP_PORT`, `LVS_HC_MARK`,
//!   `LVS_HC_TIMEOUT_MS` and the check's `env` table.
//! - **Through the VIP.** lvs-hc cannot route a program's packets: with `via_vip`, the program
//!   is told the VIP and port to probe and the firewall mark to give its socket (`{vip}`,
//!   `{vip_port}`, `{mark}`, and the `LVS_HC_VIP*` and `LVS_HC_MARK` variables; empty without
//!   `via_vip`), and `{ip}` and `{port}` stay the server's own.
//! - **Output.** Standard output is read as it comes, and only its last [`OUTPUT_KEEP`] bytes are
//!   kept (a dynamic weight is on the last line); the rest is read and dropped, so a chatty
//!   program never blocks on a full pipe and never grows lvs-hc's memory. Standard error goes
//!   nowhere.
//! - **Verdict.** The program's exit status, as soon as it exits: a background child still holding
//!   standard output does not delay it. Whatever the program left running in its process group
//!   is killed then, and the whole group at the timeout.
//! - **Escapees.** A descendant that left the process group (`setsid`, `setpgid`) is not reached
//!   by the group kill. In the daemon, lvs-hc is the subreaper of its descendants
//!   ([`become_subreaper`]): once such a process's parent ends it becomes lvs-hc's child, and
//!   [`sweep_orphans`], run every second while exec checks run, kills it. What remains out of
//!   reach: a descendant whose own parent stays alive and keeps it (the parent is itself in the
//!   group, so it is killed, which hands the escapee over); and, outside the daemon (library
//!   users, tests), escapees are not swept.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use lvs_hc_core::config::ExecCheck;
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{ProbeOutcome, ProbeRequest};
use tokio::io::AsyncReadExt;

use super::fail;

/// How much of a program's standard output is kept (the end of it).
pub const OUTPUT_KEEP: usize = 64 * 1024;

/// `PATH` for check programs when lvs-hc itself has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long, after the program exited, its output is still read (what it wrote before exiting
/// is already in the pipe; this only waits for the pipe to be handed over).
const AFTER_EXIT: Duration = Duration::from_millis(100);

/// The pids of check programs lvs-hc started and has not reaped yet. Held while a program is
/// started, so a sweep never sees a new child before it is registered.
static RUNNING: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// How many check programs were started, for the sweeper to know whether to look.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// Runs `req`'s exec check: the argv with its placeholders replaced (see [`Placeholders`]), no
/// shell, in its own process group. A program that cannot be started is a fault of the
/// director, not of the server.
pub async fn exec(check: &ExecCheck, req: &ProbeRequest, timeout: Duration) -> ProbeOutcome {
    let Placeholders {
        ip,
        port,
        vip,
        vip_port,
        mark,
    } = Placeholders::of(req);
    let argv: Vec<String> = check
        .argv
        .iter()
        .map(|a| {
            a.replace("{ip}", &ip)
                .replace("{port}", &port)
                .replace("{vip}", &vip)
                .replace("{vip_port}", &vip_port)
                .replace("{mark}", &mark)
        })
        .collect();
    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
        )
        .env("LVS_HC_IP", &ip)
        .env("LVS_HC_PORT", &port)
        .env("LVS_HC_VIP", &vip)
        .env("LVS_HC_VIP_PORT", &vip_port)
        .env("LVS_HC_MARK", &mark)
        .env("LVS_HC_TIMEOUT_MS", timeout.as_millis().to_string())
        .envs(check.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(lang) = std::env::var_os("LANG") {
        cmd.env("LANG", lang);
    }
    let child = {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return ProbeOutcome::DirectorFault {
                    reason: format!("cannot start {}: {}", argv[0], super::errno_text(&e)),
                }
            }
        };
        if let Some(pid) = child.id() {
            running.insert(pid);
        }
        child
    };
    STARTED.fetch_add(1, Ordering::Relaxed);
    let mut run = Running {
        pid: child.id(),
        child,
    };
    let outcome = run.judge(check, timeout).await;
    run.end().await;
    outcome
}

/// What an exec check's placeholders become, and its `LVS_HC_*` variables hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placeholders {
    /// `{ip}`, `LVS_HC_IP`: the server's own address (the check's `ip` if it has one), even
    /// for a check through the VIP.
    pub ip: String,
    /// `{port}`, `LVS_HC_PORT`: the check's port, else the server's.
    pub port: String,
    /// `{vip}`, `LVS_HC_VIP`: the VIP, with `via_vip`; else empty.
    pub vip: String,
    /// `{vip_port}`, `LVS_HC_VIP_PORT`: the port to probe on the VIP (the check's, else the
    /// VIP's), with `via_vip`; else empty.
    pub vip_port: String,
    /// `{mark}`, `LVS_HC_MARK`: the firewall mark (decimal) that routes a packet to the VIP to
    /// this server alone, with `via_vip`; else empty.
    pub mark: String,
}

impl Placeholders {
    /// The values for `req`.
    pub fn of(req: &ProbeRequest) -> Placeholders {
        let check = &req.check;
        let own = SocketAddr::new(
            check.ip.unwrap_or(req.server.ip()),
            check.port.unwrap_or(req.server.port()),
        );
        let (vip, vip_port, mark) = match &check.via {
            // req.target() is the VIP with the port probed there.
            Some(via) => {
                let at = req.target();
                (
                    at.ip().to_string(),
                    at.port().to_string(),
                    via.mark.to_string(),
                )
            }
            None => Default::default(),
        };
        Placeholders {
            ip: own.ip().to_string(),
            port: own.port().to_string(),
            vip,
            vip_port,
            mark,
        }
    }
}

/// A started check program; [`Running::end`] kills what is left of its group and reaps it.
struct Running {
    pid: Option<u32>,
    child: tokio::process::Child,
}

impl Running {
    async fn judge(&mut self, check: &ExecCheck, timeout: Duration) -> ProbeOutcome {
        let mut stdout = self.child.stdout.take().expect("stdout is piped");
        let mut output = Tail::default();
        let mut buf = vec![0u8; 8192];
        let mut open = true;
        let deadline = tokio::time::Instant::now() + timeout;
        let exited = tokio::time::timeout_at(deadline, async {
            loop {
                tokio::select! {
                    status = self.child.wait() => return status,
                    n = stdout.read(&mut buf), if open => match n {
                        Ok(0) | Err(_) => open = false,
                        Ok(n) => output.push(&buf[..n]),
                    },
                }
            }
        })
        .await;
        let status = match exited {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                return ProbeOutcome::DirectorFault {
                    reason: format!("waiting for {} failed: {e}", check.argv[0]),
                }
            }
            Err(_) => return fail(format!("timed out after {}", format_duration(timeout))),
        };
        if !status.success() {
            use std::os::unix::process::ExitStatusExt;
            return fail(match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                _ => "failed".to_string(),
            });
        }
        if !check.dynamic_weight {
            return ProbeOutcome::Pass { weight: None };
        }
        // The program is gone; end what it left in its group, then take the rest of what it
        // wrote (already in the pipe unless something outside the group holds it open).
        self.kill_group();
        if open {
            let _ = tokio::time::timeout(AFTER_EXIT, async {
                while let Ok(n) = stdout.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    output.push(&buf[..n]);
                }
            })
            .await;
        }
        ProbeOutcome::Pass {
            weight: parse_weight(&output.bytes()),
        }
    }

    fn kill_group(&self) {
        if let Some(pgid) = self.pid {
            // SAFETY: kill(2) with a negative pid signals the group the program leads; the
            // program is not reaped yet, so its pid (the group's id) cannot have been reused.
            unsafe {
                libc::kill(-(pgid as i32), libc::SIGKILL);
            }
        }
    }

    /// Kills the whole process group (the program, if it still runs, and what it left) and
    /// reaps the program.
    async fn end(mut self) {
        self.kill_group();
        // SIGKILL ends it at once unless it is stuck in the kernel; then tokio reaps it later.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await;
        self.forget();
    }

    /// Takes the program off [`RUNNING`]; from now on its group is not signalled (once reaped,
    /// its id may belong to another group).
    fn forget(&mut self) {
        if let Some(pid) = self.pid.take() {
            RUNNING
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&pid);
        }
    }
}

impl Drop for Running {
    /// A probe dropped before its [`Running::end`] (the probe's own timeout fired a moment
    /// before this one, or the driver stopped) still ends the whole group: the child itself
    /// is killed on drop, and what it started in its group would otherwise run on.
    fn drop(&mut self) {
        self.kill_group();
        self.forget();
    }
}

/// The last [`OUTPUT_KEEP`] bytes of a stream.
#[derive(Default)]
struct Tail {
    bytes: std::collections::VecDeque<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(OUTPUT_KEEP)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(OUTPUT_KEEP);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes.iter().copied().collect()
    }
}

/// `weight=N` (0 to 65535) on the last non-empty line of output.
pub fn parse_weight(stdout: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let value = last.trim().strip_prefix("weight=")?;
    value.trim().parse::<u32>().ok().filter(|w| *w <= 65535)
}

/// Makes this process the subreaper of its descendants (`PR_SET_CHILD_SUBREAPER`): a process
/// whose parent ends becomes this process's child instead of init's, so [`sweep_orphans`] can
/// end what check programs leave behind. The daemon calls it at start.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with an integer option and argument; no memory is involved.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// How many check programs were started so far.
pub fn programs_started() -> u64 {
    STARTED.load(Ordering::Relaxed)
}

/// Kills and reaps the processes this process adopted as subreaper: its children that it did
/// not start as check programs and that are outside its own process group (what it starts
/// itself, `ipvsadm` or `modprobe`, stays in its group). Returns the pids killed.
pub fn sweep_orphans() -> io::Result<Vec<u32>> {
    let me = std::process::id();
    // SAFETY: getpgrp(2) takes nothing and cannot fail.
    let my_group = unsafe { libc::getpgrp() } as u32;
    let running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let mut killed = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if running.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // gone already
        };
        let Some((ppid, pgrp)) = parent_and_group(&stat) else {
            continue;
        };
        if ppid != me || pgrp == my_group {
            continue;
        }
        // SAFETY: kill(2) and waitpid(2) on a child of ours; no memory is passed but a null
        // status pointer.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
            libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG);
        }
        killed.push(pid);
    }
    Ok(killed)
}

/// The parent pid and process group from a `/proc/PID/stat` line (`pid (comm) state ppid
/// pgrp ...`; the command name may hold spaces and parentheses, so fields count from its end).
fn parent_and_group(stat: &str) -> Option<(u32, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_come_from_the_last_line() {
        assert_eq!(parse_weight(b"loading\nweight=7\n"), Some(7));
        assert_eq!(parse_weight(b"weight=7\nok\n"), None);
        assert_eq!(parse_weight(b"weight=70000\n"), None);
        assert_eq!(parse_weight(b""), None);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_only() {
        let mut t = Tail::default();
        t.push(&vec![b'x'; OUTPUT_KEEP - 3]);
        t.push(b"\nweight=9\n");
        let bytes = t.bytes();
        assert_eq!(bytes.len(), OUTPUT_KEEP);
        assert_eq!(parse_weight(&bytes), Some(9));
        t.push(&vec![b'y'; 3 * OUTPUT_KEEP]);
        assert_eq!(t.bytes(), vec![b'y'; OUTPUT_KEEP]);
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        assert_eq!(
            parent_and_group("4242 (sleep) S 17 4242 17 0 -1"),
            Some((17, 4242))
        );
        assert_eq!(
            parent_and_group("4243 (a) b (c)) R 1 99 1 0"),
            Some((1, 99))
        );
        assert_eq!(parent_and_group("garbage"), None);
    }
}
