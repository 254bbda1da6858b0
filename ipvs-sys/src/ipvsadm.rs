//! The IPVS table through the `ipvsadm` program.
//!
//! Reading runs `ipvsadm -Sn` for the rules, then `-Ln` listings for what `-S` leaves out
//! (thresholds, connection counters, statistics and rates). The rules are read service by
//! service: one whose lines cannot be read (an option from a newer ipvsadm, say) is left out
//! and named in [`Snapshot::skipped`], with its counters. `ipvsadm -L --daemon` gives the sync
//! daemons. Changing runs the argv of each [`Op`] or [`SyncOp`] directly, without a shell; a
//! batch goes through one `ipvsadm -R`.
//!
//! Each run is bounded ([`crate::TIMEOUT`] by default): an `ipvsadm` that has not finished by
//! then is killed, with anything it started (it runs in its own process group), and the call
//! fails with [`IpvsError::IpvsadmTimeout`].

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lvs_hc_core::save::{parse_save, parse_socket};
use lvs_hc_core::{Family, Op, Protocol, ServiceKey, Stats, SyncDaemon, SyncOp, SyncRole, Table};

use crate::{IpvsBackend, IpvsError, IpvsInfo, SkippedService, Snapshot, TIMEOUT};

/// Runs `ipvsadm` (by default the one on `PATH`), each run bounded by a timeout ([`TIMEOUT`]
/// by default).
#[derive(Clone, Debug)]
pub struct IpvsadmBackend {
    program: PathBuf,
    timeout: Duration,
}

impl Default for IpvsadmBackend {
    fn default() -> Self {
        IpvsadmBackend::with_program("ipvsadm")
    }
}

impl IpvsadmBackend {
    /// A backend running `program`.
    pub fn with_program(program: impl Into<PathBuf>) -> IpvsadmBackend {
        IpvsadmBackend {
            program: program.into(),
            timeout: TIMEOUT,
        }
    }

    /// The same backend, killing any run of the program that takes longer than `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> IpvsadmBackend {
        IpvsadmBackend { timeout, ..self }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, IpvsError> {
        let command = format!("{} {}", self.program.display(), args.join(" "));
        let io_error = |what: &str| {
            let context = format!("{what} {command}");
            move |source| IpvsError::Io { context, source }
        };
        let deadline = Instant::now() + self.timeout;
        let child = Command::new(&self.program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(io_error("running"))?;
        let mut running = Running {
            child,
            reaped: false,
        };
        // Input and output go through threads, so that a program that neither reads nor
        // writes blocks none of them past the deadline.
        let (tx, rx) = mpsc::channel();
        let mut pending = 2;
        let stdout = running.child.stdout.take().expect("piped stdout");
        let stderr = running.child.stderr.take().expect("piped stderr");
        spawn_io(&tx, move || Pipe::Stdout(read_all(stdout))).map_err(io_error("running"))?;
        spawn_io(&tx, move || Pipe::Stderr(read_all(stderr))).map_err(io_error("running"))?;
        if let Some(input) = stdin {
            let mut pipe = running.child.stdin.take().expect("piped stdin");
            let input = input.to_string();
            spawn_io(&tx, move || Pipe::Stdin(pipe.write_all(input.as_bytes())))
                .map_err(io_error("running"))?;
            pending += 1;
        }
        let (mut out, mut err, mut written) = (None, None, None);
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Pipe::Stdout(r)) => out = Some(r),
                Ok(Pipe::Stderr(r)) => err = Some(r),
                Ok(Pipe::Stdin(r)) => written = Some(r),
                Err(_) => break,
            }
            pending -= 1;
        }
        // The pipes close when the program exits; it is reaped (or, past the deadline, killed
        // with its group when `running` drops).
        let status = match pending {
            0 => running.wait_until(deadline).map_err(io_error("running"))?,
            _ => None,
        };
        let (Some(status), Some(out), Some(err)) = (status, out, err) else {
            return Err(IpvsError::IpvsadmTimeout {
                command,
                after: self.timeout,
            });
        };
        if let Some(Err(source)) = written {
            return Err(IpvsError::Io {
                context: format!("writing to {command}"),
                source,
            });
        }
        let stdout = out.map_err(io_error("reading the output of"))?;
        let stderr = err.map_err(io_error("reading the output of"))?;
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        if !status.success() || (stdin.is_some() && !stderr.is_empty()) {
            return Err(classify(&command, stderr));
        }
        String::from_utf8(stdout)
            .map_err(|_| IpvsError::IpvsadmOutput(format!("{command}: not UTF-8")))
    }
}

/// A pipe of the running program, done with.
enum Pipe {
    Stdout(io::Result<Vec<u8>>),
    Stderr(io::Result<Vec<u8>>),
    Stdin(io::Result<()>),
}

fn spawn_io(
    tx: &mpsc::Sender<Pipe>,
    work: impl FnOnce() -> Pipe + Send + 'static,
) -> io::Result<()> {
    let tx = tx.clone();
    std::thread::Builder::new()
        .name("ipvsadm-io".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map(|_| ())
}

fn read_all(mut pipe: impl Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    pipe.read_to_end(&mut buf).map(|_| buf)
}

/// The program, in its own process group. Dropped before it was reaped, it is killed with its
/// whole group (anything it started too), then reaped.
struct Running {
    child: Child,
    reaped: bool,
}

impl Running {
    /// Its exit status, or `None` if it is still running at `deadline`.
    fn wait_until(&mut self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        // It has closed its output, so it is exiting: a short pause is usually enough.
        let mut pause = Duration::from_micros(200);
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.reaped = true;
                return Ok(Some(status));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: kill(2) with a negative pid signals the process group the child leads;
            // it is not reaped yet, so its pid (the group's id) cannot have been reused.
            unsafe {
                libc::kill(-(self.child.id() as i32), libc::SIGKILL);
            }
            let _ = self.child.wait();
        }
    }
}

/// Maps ipvsadm's error text to the typed error it means.
fn classify(command: &str, stderr: String) -> IpvsError {
    let s = stderr.to_ascii_lowercase();
    if s.contains("service already exists") {
        IpvsError::ServiceExists
    } else if s.contains("destination already exists") {
        IpvsError::DestExists
    } else if s.contains("no such service") || s.contains("service not defined") {
        IpvsError::NoSuchService
    } else if s.contains("no such destination") || s.contains("could not find destination") {
        IpvsError::NoSuchDest
    } else if s.contains("permission denied") {
        IpvsError::PermissionDenied
    } else if s.contains("protocol not available") || s.contains("can't initialize ipvs") {
        IpvsError::NotAvailable
    } else if s.contains("scheduler") && s.contains("not found") {
        let name = command
            .split_whitespace()
            .skip_while(|t| *t != "-s")
            .nth(1)
            .unwrap_or("?");
        IpvsError::NoSuchScheduler(name.to_string())
    } else {
        IpvsError::Ipvsadm {
            command: command.to_string(),
            stderr,
        }
    }
}

/// Maps what ipvsadm says when the kernel refuses a sync daemon operation (libipvs's
/// `ipvs_strerror`: its own words for `EEXIST` on start and `ESRCH` on stop, `strerror` for
/// `ENODEV`) to the typed error; anything else stays ipvsadm's words.
fn classify_sync(op: &SyncOp, error: IpvsError) -> IpvsError {
    let IpvsError::Ipvsadm { command, stderr } = error else {
        return error;
    };
    let s = stderr.to_ascii_lowercase();
    match op {
        SyncOp::Start(d) if s.contains("daemon has already run") => {
            IpvsError::SyncDaemonRunning(d.role)
        }
        SyncOp::Start(d) if s.contains("no such device") => {
            IpvsError::NoSuchInterface(d.interface.clone())
        }
        SyncOp::Stop(role) if s.contains("no daemon is running") => {
            IpvsError::NoSuchSyncDaemon(*role)
        }
        _ => IpvsError::Ipvsadm { command, stderr },
    }
}

/// Reads `ipvsadm -L --daemon`: a line for each daemon running, as ipvsadm 1.29 and later print
/// it on a kernel since 4.3,
/// `master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)`,
/// or with only `mcast` and `syncid` (older ipvsadm or kernels). Master first.
fn parse_daemons(text: &str) -> Result<Vec<SyncDaemon>, IpvsError> {
    let mut daemons: Vec<SyncDaemon> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let daemon = parse_daemon(line).ok_or_else(|| {
            IpvsError::IpvsadmOutput(format!("unexpected line `{line}` in `ipvsadm -L --daemon`"))
        })?;
        if daemons.iter().any(|d| d.role == daemon.role) {
            return Err(IpvsError::IpvsadmOutput(format!(
                "a second {} sync daemon in `ipvsadm -L --daemon`: `{line}`",
                daemon.role
            )));
        }
        daemons.push(daemon);
    }
    daemons.sort_by_key(|d| d.role);
    Ok(daemons)
}

/// One line of `ipvsadm -L --daemon`, or `None` if it is not one ipvsadm prints: an unknown
/// field, a field twice, a value out of range, or `mcast` or `syncid` missing.
fn parse_daemon(line: &str) -> Option<SyncDaemon> {
    fn set<T: std::str::FromStr>(slot: &mut Option<T>, value: &str) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(value.parse().ok()?);
        Some(())
    }
    let (role, fields) = line.split_once(" sync daemon (")?;
    let role = SyncRole::ALL.into_iter().find(|r| r.name() == role)?;
    let (mut interface, mut sync_id) = (None::<String>, None);
    let (mut max_len, mut group, mut port, mut ttl) = (None, None, None, None);
    // An interface name holds no whitespace, so ", " only ever separates fields.
    for field in fields.strip_suffix(')')?.split(", ") {
        let (key, value) = field.split_once('=')?;
        match key {
            "mcast" => set(&mut interface, value)?,
            "syncid" => set(&mut sync_id, value)?,
            "maxlen" => set(&mut max_len, value)?,
            "group" => set(&mut group, value)?,
            "port" => set(&mut port, value)?,
            "ttl" => set(&mut ttl, value)?,
            _ => return None,
        }
    }
    Some(SyncDaemon {
        role,
        interface: interface.filter(|i| !i.is_empty())?,
        sync_id: sync_id?,
        max_len,
        group,
        port,
        ttl,
    })
}

/// The rules of one service in `ipvsadm -Sn` output: its `-A` line and the `-a` lines naming
/// it, with their line numbers.
struct SaveGroup<'a> {
    key: Option<ServiceKey>,
    lines: Vec<(usize, &'a str)>,
}

/// Reads `ipvsadm -Sn` output service by service, with lvs-hc-core's `parse_save` on each
/// service's lines: a service whose lines cannot be read is skipped, the others are read.
fn parse_save_by_service(text: &str) -> (Table, Vec<SkippedService>) {
    let mut groups: Vec<SaveGroup<'_>> = Vec::new();
    for (idx, line) in text.lines().enumerate() {
        let tokens = rule_tokens(line);
        if tokens.is_empty() {
            continue;
        }
        let key = rule_key(&tokens);
        let is_service = tokens.iter().any(|t| *t == "-A" || *t == "--add-service");
        // A destination goes with the service it names; one whose service cannot be read, with
        // the service before it (ipvsadm prints each service's destinations after it).
        let existing = match key {
            Some(k) => groups.iter().position(|g| g.key == Some(k)),
            None if is_service => None,
            None => groups.len().checked_sub(1),
        };
        match existing {
            Some(i) => groups[i].lines.push((idx + 1, line)),
            None => groups.push(SaveGroup {
                key,
                lines: vec![(idx + 1, line)],
            }),
        }
    }
    let mut table = Table::new();
    let mut skipped = Vec::new();
    for group in groups {
        let text: String = group.lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        match parse_save(&text) {
            Ok(t) => table.services.extend(t.services),
            Err(e) => {
                let line = group
                    .lines
                    .get(e.line.wrapping_sub(1))
                    .map_or(0, |(n, _)| *n);
                skipped.push(SkippedService {
                    key: group.key,
                    error: format!("line {line}: {}", e.message),
                });
            }
        }
    }
    (table, skipped)
}

/// A save line's tokens, without its comment or a leading `ipvsadm` (as `parse_save` reads it).
fn rule_tokens(line: &str) -> Vec<&str> {
    let content = line.split('#').next().unwrap_or("");
    let mut tokens: Vec<&str> = content.split_whitespace().collect();
    if tokens.first() == Some(&"ipvsadm") {
        tokens.remove(0);
    }
    tokens
}

/// The service a save line names, if it names exactly one that can be read.
fn rule_key(tokens: &[&str]) -> Option<ServiceKey> {
    let mut keys = Vec::new();
    let mut ipv6 = false;
    let mut it = tokens.iter();
    while let Some(&t) = it.next() {
        let protocol = match t {
            "-t" | "--tcp-service" => Protocol::Tcp,
            "-u" | "--udp-service" => Protocol::Udp,
            "--sctp-service" => Protocol::Sctp,
            "-f" | "--fwmark-service" => {
                keys.push(it.next()?.parse::<u32>().ok().map(|mark| (mark, None)));
                continue;
            }
            "-6" | "--ipv6" => {
                ipv6 = true;
                continue;
            }
            _ => continue,
        };
        let addr = parse_socket(it.next()?, None).ok();
        keys.push(addr.map(|a| (0, Some(ServiceKey::inet(protocol, a)))));
    }
    match keys.as_slice() {
        [Some((_, Some(key)))] => Some(*key),
        [Some((mark, None))] if *mark != 0 => Some(ServiceKey::Fwmark {
            mark: *mark,
            family: if ipv6 { Family::Ipv6 } else { Family::Ipv4 },
        }),
        _ => None,
    }
}

/// One destination line's numbers from an `ipvsadm -Ln` listing, keyed by service and address.
type Rows = Vec<(ServiceKey, Option<SocketAddr>, Vec<u64>)>;

/// Parses an `ipvsadm -Ln` listing (any of its formats) into rows of numbers: each service line
/// and each `->` destination line with the numeric columns that follow the names. The
/// destinations of a service line it does not know (a newer protocol) are left out.
fn parse_listing(text: &str) -> Result<Rows, IpvsError> {
    let bad = |line: &str| IpvsError::IpvsadmOutput(format!("unexpected line `{line}`"));
    let mut rows = Vec::new();
    let mut current: Option<ServiceKey> = None;
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(&first) = tokens.first() else {
            continue;
        };
        let numbers = |from: usize| -> Vec<u64> {
            tokens
                .iter()
                .skip(from)
                .filter_map(|t| t.parse::<u64>().ok())
                .collect()
        };
        match first {
            "TCP" | "UDP" | "SCTP" => {
                let addr = parse_socket(tokens.get(1).ok_or_else(|| bad(line))?, None)
                    .map_err(|_| bad(line))?;
                let proto = match first {
                    "TCP" => Protocol::Tcp,
                    "UDP" => Protocol::Udp,
                    _ => Protocol::Sctp,
                };
                let key = ServiceKey::inet(proto, addr);
                current = Some(key);
                rows.push((key, None, numbers(2)));
            }
            "FWM" => {
                let mark = tokens
                    .get(1)
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| bad(line))?;
                let (family, skip) = if tokens.get(2) == Some(&"IPv6") {
                    (Family::Ipv6, 3)
                } else {
                    (Family::Ipv4, 2)
                };
                let key = ServiceKey::Fwmark { mark, family };
                current = Some(key);
                rows.push((key, None, numbers(skip)));
            }
            "->" => {
                let Some(key) = current else { continue };
                let Ok(addr) = parse_socket(tokens.get(1).ok_or_else(|| bad(line))?, None) else {
                    continue; // the column heading "-> RemoteAddress:Port"
                };
                rows.push((key, Some(addr), numbers(2)));
            }
            _ => current = None,
        }
    }
    Ok(rows)
}

impl IpvsBackend for IpvsadmBackend {
    fn snapshot(&mut self) -> Result<Snapshot, IpvsError> {
        let save = self.run(&["-S", "-n"], None)?;
        let (mut table, skipped) = parse_save_by_service(&save);
        let mut snap = Snapshot::default();
        // Thresholds and connections: "-> addr  Uthreshold Lthreshold ActiveConn InActConn".
        // `--nosort`: the destinations in the kernel's list order, which `sh` and `mh` hash
        // over (ipvsadm sorts them by address otherwise, and `-S` always does).
        let listing = self.run(&["-L", "-n", "--thresholds", "--nosort"], None)?;
        let mut orders: BTreeMap<ServiceKey, Vec<SocketAddr>> = BTreeMap::new();
        for (key, dest, n) in parse_listing(&listing)? {
            let (Some(dest), [upper, lower, active, inactive]) = (dest, n.as_slice()) else {
                continue;
            };
            orders.entry(key).or_default().push(dest);
            if let Some(d) = table
                .services
                .get_mut(&key)
                .and_then(|s| s.dests.get_mut(&dest))
            {
                d.upper = *upper as u32;
                d.lower = *lower as u32;
            }
            let c = snap.counters.dests.entry((key, dest)).or_default();
            c.active = *active as u32;
            c.inactive = *inactive as u32;
        }
        for (key, entry) in table.services.iter_mut() {
            let order = orders.remove(key).unwrap_or_default();
            let complete = order.len() == entry.dests.len()
                && order.iter().all(|a| entry.dests.contains_key(a));
            entry.order = complete.then_some(order);
        }
        // Persistence templates: "-> addr Forward Weight PersistConn ActiveConn InActConn".
        for (key, dest, n) in parse_listing(&self.run(&["-L", "-n", "--persistent-conn"], None)?)? {
            if let (Some(dest), [_, persist, _, _]) = (dest, n.as_slice()) {
                snap.counters
                    .dests
                    .entry((key, dest))
                    .or_default()
                    .persistent = *persist as u32;
            }
        }
        // Totals: "Conns InPkts OutPkts InBytes OutBytes"; rates: "CPS InPPS OutPPS InBPS OutBPS".
        let stats = parse_listing(&self.run(&["-L", "-n", "--stats", "--exact"], None)?)?;
        let rates = parse_listing(&self.run(&["-L", "-n", "--rate", "--exact"], None)?)?;
        for ((key, dest, s), (_, _, r)) in stats.into_iter().zip(rates) {
            let (Ok(s), Ok(r)) = (<[u64; 5]>::try_from(s), <[u64; 5]>::try_from(r)) else {
                continue;
            };
            let stats = Stats {
                conns: s[0],
                inpkts: s[1],
                outpkts: s[2],
                inbytes: s[3],
                outbytes: s[4],
                cps: r[0],
                inpps: r[1],
                outpps: r[2],
                inbps: r[3],
                outbps: r[4],
            };
            match dest {
                Some(d) => snap.counters.dests.entry((key, d)).or_default().stats = stats,
                None => {
                    snap.counters.services.insert(key, stats);
                }
            }
        }
        for key in skipped.iter().filter_map(|s| s.key) {
            snap.counters.services.remove(&key);
            snap.counters.dests.retain(|(svc, _), _| *svc != key);
        }
        table.sync = parse_daemons(&self.run(&["-L", "--daemon"], None)?)?;
        snap.table = table;
        snap.skipped = skipped;
        Ok(snap)
    }

    fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        let argv = op.ipvsadm_argv();
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.run(&args, None).map(|_| ())
    }

    fn apply_batch(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        if ops.is_empty() {
            return Vec::new();
        }
        let mut input = String::new();
        for op in ops {
            input.push_str(&op.ipvsadm_argv().join(" "));
            input.push('\n');
        }
        match self.run(&["-R"], Some(&input)) {
            Ok(_) => ops.iter().map(|_| Ok(())).collect(),
            // `ipvsadm -R` goes on after a failed line and cannot say which lines failed, so
            // every operation of the batch is reported failed: the engine re-reads the table
            // and retries only what is still missing.
            Err(e) => {
                let text = e.to_string();
                ops.iter()
                    .map(|_| {
                        Err(IpvsError::Ipvsadm {
                            command: "ipvsadm -R".into(),
                            stderr: text.clone(),
                        })
                    })
                    .collect()
            }
        }
    }

    fn info(&mut self) -> Result<IpvsInfo, IpvsError> {
        let out = self.run(&["-L", "-n"], None)?;
        parse_info(&out).ok_or_else(|| {
            IpvsError::IpvsadmOutput(format!(
                "no version line in `{}`",
                out.lines().next().unwrap_or("")
            ))
        })
    }

    fn flush(&mut self) -> Result<(), IpvsError> {
        self.run(&["-C"], None).map(|_| ())
    }

    fn apply_sync(&mut self, op: &SyncOp) -> Result<(), IpvsError> {
        let argv = op.ipvsadm_argv();
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.run(&args, None)
            .map(|_| ())
            .map_err(|e| classify_sync(op, e))
    }
}

/// Reads `IP Virtual Server version 1.2.1 (size=4096)`.
fn parse_info(listing: &str) -> Option<IpvsInfo> {
    let line = listing.lines().next()?;
    let rest = line.strip_prefix("IP Virtual Server version ")?;
    let (version, size) = rest.split_once(" (size=")?;
    let mut parts = version.split('.').map(|p| p.parse::<u8>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    let conn_tab_size = size.strip_suffix(')')?.parse().ok()?;
    Some(IpvsInfo {
        version,
        conn_tab_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_parse_into_rows() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n\
  -> RemoteAddress:Port\n\
TCP  192.168.0.101:80 wlc\n\
  -> 192.168.0.179:80             100        10         3          4\n\
FWM  7 IPv6 rr\n\
  -> [2001:db8::3]:0              0          0          0          0\n";
        let rows = parse_listing(text).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].1, Some("192.168.0.179:80".parse().unwrap()));
        assert_eq!(rows[1].2, vec![100, 10, 3, 4]);
        assert_eq!(
            rows[2].0,
            ServiceKey::Fwmark {
                mark: 7,
                family: Family::Ipv6
            }
        );
        assert_eq!(
            parse_info(text),
            Some(IpvsInfo {
                version: (1, 2, 1),
                conn_tab_size: 4096
            })
        );
    }

    /// What ipvsadm 1.31 prints on Debian 12's kernel (6.1) for both daemons started with
    /// interface and sync id only, then for settings of every kind (the backup with an IPv6
    /// group; its longest message shorter by the larger header).
    const DAEMONS: &str = "\
master sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)
backup sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)
";
    const DAEMONS_SET: &str = "\
master sync daemon (mcast=bond0.120, syncid=255, maxlen=1400, group=239.1.2.3, port=9000, ttl=3)
backup sync daemon (mcast=lvs-sync0, syncid=0, maxlen=1452, group=ff02::8:1, port=8848, ttl=1)
";

    fn daemon(role: SyncRole, interface: &str, sync_id: u8) -> SyncDaemon {
        SyncDaemon {
            role,
            interface: interface.into(),
            sync_id,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        }
    }

    #[test]
    fn daemon_listing_parses_with_the_kernels_settings() {
        let defaults = |role| SyncDaemon {
            max_len: Some(1472),
            group: Some("224.0.0.81".parse().unwrap()),
            port: Some(8848),
            ttl: Some(1),
            ..daemon(role, "eth0", 7)
        };
        assert_eq!(
            parse_daemons(DAEMONS).unwrap(),
            vec![defaults(SyncRole::Master), defaults(SyncRole::Backup)]
        );
        assert_eq!(
            parse_daemons(DAEMONS_SET).unwrap(),
            vec![
                SyncDaemon {
                    max_len: Some(1400),
                    group: Some("239.1.2.3".parse().unwrap()),
                    port: Some(9000),
                    ttl: Some(3),
                    ..daemon(SyncRole::Master, "bond0.120", 255)
                },
                SyncDaemon {
                    max_len: Some(1452),
                    group: Some("ff02::8:1".parse().unwrap()),
                    port: Some(8848),
                    ttl: Some(1),
                    ..daemon(SyncRole::Backup, "lvs-sync0", 0)
                },
            ]
        );
        assert_eq!(parse_daemons("").unwrap(), Vec::new());
    }

    /// ipvsadm before 1.29, or any ipvsadm on a kernel before 4.3, names interface and sync id
    /// only.
    #[test]
    fn daemon_listing_of_an_older_ipvsadm_has_interface_and_sync_id_only() {
        let text = "backup sync daemon (mcast=eth1, syncid=3)\nmaster sync daemon (mcast=eth0, syncid=2)\n";
        assert_eq!(
            parse_daemons(text).unwrap(),
            vec![
                daemon(SyncRole::Master, "eth0", 2),
                daemon(SyncRole::Backup, "eth1", 3)
            ]
        );
    }

    #[test]
    fn daemon_lines_this_parser_cannot_read_are_errors_naming_the_line() {
        for line in [
            "master sync daemon (mcast=eth0, syncid=7, flags=2)",
            "master sync daemon (mcast=eth0, syncid=256)",
            "master sync daemon (mcast=eth0, syncid=7, ttl=1, ttl=2)",
            "master sync daemon (mcast=eth0, syncid=7, group=eth0)",
            "master sync daemon (mcast=eth0, syncid=7, port=65536)",
            "master sync daemon (mcast=eth0, syncid=7",
            "master sync daemon (mcast=, syncid=7)",
            "master sync daemon (syncid=7)",
            "master sync daemon (mcast=eth0)",
            "standby sync daemon (mcast=eth0, syncid=7)",
            "Daemon has already run",
        ] {
            let e = parse_daemons(&format!("{line}\n")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot read ipvsadm output: unexpected line `{line}` in `ipvsadm -L --daemon`"
                )
            );
        }
        let twice = "master sync daemon (mcast=eth0, syncid=7)\nmaster sync daemon (mcast=eth1, syncid=7)\n";
        assert_eq!(
            parse_daemons(twice).unwrap_err().to_string(),
            "cannot read ipvsadm output: a second master sync daemon in `ipvsadm -L --daemon`: \
             `master sync daemon (mcast=eth1, syncid=7)`"
        );
    }

    /// What ipvsadm 1.31 says, exit status 255, for each refusal of the kernel.
    #[test]
    fn sync_daemon_refusals_become_typed() {
        let start = |role| SyncOp::Start(daemon(role, "eth9", 7));
        let failed = |stderr: &str| IpvsError::Ipvsadm {
            command: "ipvsadm --start-daemon ...".into(),
            stderr: stderr.into(),
        };
        let typed = |op: &SyncOp, stderr: &str| format!("{:?}", classify_sync(op, failed(stderr)));
        assert_eq!(
            typed(&start(SyncRole::Backup), "Daemon has already run"),
            "SyncDaemonRunning(Backup)"
        );
        assert_eq!(
            typed(&start(SyncRole::Master), "No such device"),
            "NoSuchInterface(\"eth9\")"
        );
        assert_eq!(
            typed(&SyncOp::Stop(SyncRole::Master), "No daemon is running"),
            "NoSuchSyncDaemon(Master)"
        );
        // Words that mean something else for the other operation, or nothing typed, stay
        // ipvsadm's.
        for (op, stderr) in [
            (SyncOp::Stop(SyncRole::Master), "Daemon has already run"),
            (start(SyncRole::Master), "No daemon is running"),
            (start(SyncRole::Master), "Network is unreachable"),
            (start(SyncRole::Master), "illegal sync-maxlen specified"),
        ] {
            let e = classify_sync(&op, failed(stderr));
            assert!(
                matches!(&e, IpvsError::Ipvsadm { stderr: s, .. } if s == stderr),
                "{op}: {e:?}"
            );
        }
        let timeout = IpvsError::IpvsadmTimeout {
            command: "ipvsadm --stop-daemon master".into(),
            after: Duration::from_secs(5),
        };
        assert!(matches!(
            classify_sync(&SyncOp::Stop(SyncRole::Master), timeout),
            IpvsError::IpvsadmTimeout { .. }
        ));
    }

    #[test]
    fn ipvsadm_errors_become_typed() {
        assert!(matches!(
            classify("ipvsadm -A", "Service already exists".into()),
            IpvsError::ServiceExists
        ));
        assert!(matches!(
            classify("ipvsadm -d", "No such destination".into()),
            IpvsError::NoSuchDest
        ));
        assert!(matches!(
            classify("ipvsadm -A -t 1.2.3.4:80 -s foo", "Scheduler or persistence engine not found".into()),
            IpvsError::NoSuchScheduler(s) if s == "foo"
        ));
    }
}
