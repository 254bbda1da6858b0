//! `[daemon] maintenance_dir`: servers taken out by files, for configuration-management tools
//! (ldirectord's `maintenancedir`).
//!
//! Every regular file in the directory names servers: `ADDR`, `ADDR:PORT`, `[V6ADDR]:PORT`
//! or a bare IPv6 address, optionally after `SERVICE@` (a service's name or `VIP:PORT`, as
//! `lvs-hc server --service` takes). While the file exists its servers are disabled, or
//! drained when its first line starts with the word `drain`; the rest of that line (or the
//! whole line) is the reason. Unlike `lvs-hc server`, a file naming an address that several
//! services hold applies to all of them: a machine in maintenance is out everywhere.
//!
//! The directory is read every [`POLL`]; hidden files and editors' and package managers'
//! temporary files are ignored; a file that names nothing known, or cannot be read, is warned
//! about once (again only if what is wrong with it changes). Only the first [`MAX_READ`]
//! bytes of a file are read, and at most [`MAX_FILES`] files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lvs_hc_core::admin::{select, AdminChange, AdminSource, AdminState, ServerSelector};
use lvs_hc_core::{Config, ServiceKey};
use tokio::sync::mpsc;

use super::admin::MAX_REASON;
use super::Handle;

/// How often the directory is read.
pub const POLL: Duration = Duration::from_secs(1);
/// The most of a file read: its first line is all that counts.
pub const MAX_READ: u64 = 4096;
/// The most files looked at in the directory.
pub const MAX_FILES: usize = 10_000;

/// A server in a service.
type Key = (ServiceKey, SocketAddr);

/// What one file asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAsk {
    /// The servers it names.
    pub selector: ServerSelector,
    /// Drain or disabled.
    pub state: AdminState,
    /// Why: the file's words, else its path.
    pub reason: String,
}

/// What a file wants of one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// Drain or disabled.
    pub state: AdminState,
    /// Why.
    pub reason: String,
    /// The file.
    pub file: String,
}

/// The directory as read once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// What each file asks, by file name.
    pub asks: BTreeMap<String, FileAsk>,
    /// Files that ask nothing lvs-hc understands, and why.
    pub problems: BTreeMap<String, String>,
    /// The directory itself could not be read (other than not existing): the marks in force
    /// stay as they are.
    pub unreadable: Option<String>,
}

/// Whether a file name is one to leave alone: hidden files, and the temporary and backup
/// files editors, package managers and configuration tools leave.
pub fn ignored(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || (name.starts_with('#') && name.ends_with('#'))
        || [
            ".swp",
            ".swx",
            ".swo",
            ".tmp",
            ".temp",
            ".bak",
            ".orig",
            ".rej",
            ".dpkg-new",
            ".dpkg-old",
            ".dpkg-dist",
            ".dpkg-tmp",
            ".rpmnew",
            ".rpmsave",
            ".ucf-new",
            ".ucf-old",
            ".ucf-dist",
        ]
        .iter()
        .any(|s| name.ends_with(s))
}

/// The servers a file's name names: `[SERVICE@]ADDR[:PORT]`, every service that holds them.
pub fn parse_name(name: &str) -> Result<ServerSelector, String> {
    let (service, address) = match name.rsplit_once('@') {
        Some((s, a)) if !s.is_empty() => (Some(s.to_string()), a),
        Some(_) => return Err("nothing before `@`: write SERVICE@ADDR[:PORT]".into()),
        None => (None, name),
    };
    let (ip, port) = ServerSelector::parse_server(address)?;
    Ok(ServerSelector {
        ip,
        port,
        service,
        all: true,
    })
}

/// What a file's first line asks: `drain [reason]` drains, anything else disables with the
/// line as the reason. An empty reason becomes `path`.
pub fn parse_content(bytes: &[u8], path: &str) -> (AdminState, String) {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let (state, reason) = match line.split_once(char::is_whitespace) {
        Some((first, rest)) if first.eq_ignore_ascii_case("drain") => (AdminState::Drain, rest),
        None if line.eq_ignore_ascii_case("drain") => (AdminState::Drain, ""),
        _ => (AdminState::Disabled, line),
    };
    let reason: String = reason
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON)
        .collect();
    if reason.is_empty() {
        (state, path.to_string())
    } else {
        (state, reason)
    }
}

/// Reads the directory.
pub fn scan(dir: &Path) -> Scan {
    let mut out = Scan::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.unreadable = Some(format!("cannot read {}: {e}", dir.display()));
            return out;
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.unreadable = Some(format!("cannot read {}: {e}", dir.display()));
                return out;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if ignored(&name) {
            continue;
        }
        if names.len() == MAX_FILES {
            // Which files would be read would follow the directory's order: read none, and
            // leave every server as it was.
            out.unreadable = Some(format!(
                "{} holds more than {MAX_FILES} files",
                dir.display()
            ));
            return out;
        }
        names.push(name);
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        match read_first_bytes(&path) {
            Ok(None) => {}
            Ok(Some(bytes)) => match parse_name(&name) {
                Ok(selector) => {
                    let (state, reason) = parse_content(&bytes, &path.display().to_string());
                    out.asks.insert(
                        name,
                        FileAsk {
                            selector,
                            state,
                            reason,
                        },
                    );
                }
                Err(e) => {
                    out.problems.insert(name, e);
                }
            },
            Err(Unread::Kind(e)) => {
                out.problems.insert(name, e);
            }
            // A file there that cannot be read (EACCES, EIO, no descriptors left) is a fault
            // of this director: its servers stay as they are, not back in service.
            Err(Unread::Io(e)) => {
                out.unreadable = Some(format!("cannot read {}: {e}", path.display()));
                return out;
            }
        }
    }
    out
}

/// Why a maintenance file was not read.
enum Unread {
    /// It is not a regular file (a link, a pipe): the operator's to fix; it counts as absent.
    Kind(String),
    /// Reading it failed: the directory's marks stay as they are.
    Io(String),
}

/// The first [`MAX_READ`] bytes of a regular file; `None` for a directory (left alone); an
/// error for anything else (a link, a pipe: never followed or opened for long).
fn read_first_bytes(path: &Path) -> Result<Option<Vec<u8>>, Unread> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Unread::Io(format!("cannot look at it: {e}"))),
    };
    if meta.is_dir() {
        return Ok(None);
    }
    if !meta.is_file() {
        return Err(Unread::Kind(format!(
            "{}, not a regular file",
            crate::load::file_kind(&meta.file_type())
        )));
    }
    // No waiting on a pipe put there in between, no following a link.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a link put there in between.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Unread::Kind("a symbolic link, not a regular file".into()))
        }
        Err(e) => return Err(Unread::Io(format!("cannot read it: {e}"))),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(Unread::Kind("not a regular file".into())),
        Err(e) => return Err(Unread::Io(format!("cannot read it: {e}"))),
    }
    let mut bytes = Vec::new();
    file.take(MAX_READ)
        .read_to_end(&mut bytes)
        .map_err(|e| Unread::Io(format!("cannot read it: {e}")))?;
    Ok(Some(bytes))
}

/// The files' asks resolved against a configuration.
#[derive(Debug, Default)]
pub struct Resolved {
    /// What is wanted of each server: the strictest of the files that name it.
    pub desired: BTreeMap<Key, Want>,
    /// Files that name nothing in the configuration, and why.
    pub problems: BTreeMap<String, String>,
    /// Of the servers asked about, those the configuration no longer has.
    pub gone: BTreeSet<Key>,
}

/// Resolves `scan` against `config`; `applied` are the servers marked so far, to tell which
/// of them left the configuration.
pub fn resolve(config: &Config, scan: &Scan, applied: &BTreeSet<Key>) -> Resolved {
    let mut out = Resolved {
        problems: scan.problems.clone(),
        ..Resolved::default()
    };
    for (name, ask) in &scan.asks {
        match select(config, &ask.selector) {
            Ok(servers) => {
                for s in servers {
                    let want = Want {
                        state: ask.state,
                        reason: ask.reason.clone(),
                        file: name.clone(),
                    };
                    let stricter = out
                        .desired
                        .get(&(s.service, s.server))
                        .is_none_or(|w| want.state > w.state);
                    if stricter {
                        out.desired.insert((s.service, s.server), want);
                    }
                }
            }
            Err(e) => {
                out.problems.insert(name.clone(), e.to_string());
            }
        }
    }
    for key in applied {
        let configured = config.services.iter().any(|s| {
            s.key == key.0
                && s.servers
                    .iter()
                    .chain(&s.fallbacks)
                    .any(|r| r.addr == key.1)
        });
        if !configured {
            out.gone.insert(*key);
        }
    }
    out
}

/// What the directory has asked of the engine so far, and what it has warned about.
#[derive(Debug, Default)]
pub struct Watcher {
    /// The directory.
    pub dir: PathBuf,
    applied: BTreeMap<Key, Want>,
    warned: BTreeMap<String, String>,
    dir_warned: Option<String>,
}

impl Watcher {
    /// A watcher of `dir` that has asked nothing yet.
    pub fn new(dir: PathBuf) -> Watcher {
        Watcher {
            dir,
            ..Watcher::default()
        }
    }

    /// The servers marked so far.
    pub fn applied(&self) -> BTreeSet<Key> {
        self.applied.keys().copied().collect()
    }

    /// The changes that bring the engine from what was asked before to what `resolved`
    /// wants; logs each, and each new problem once.
    pub fn changes(&mut self, scan: &Scan, resolved: Resolved) -> Vec<AdminChange> {
        if let Some(why) = &scan.unreadable {
            if self.dir_warned.as_ref() != Some(why) {
                tracing::warn!(
                    "maintenance_dir: {why}; the servers it took out stay out until it can be \
                     read"
                );
                self.dir_warned = Some(why.clone());
            }
            return Vec::new();
        }
        if self.dir_warned.take().is_some() {
            tracing::info!("maintenance_dir {} can be read again", self.dir.display());
        }
        self.warned.retain(|f, _| resolved.problems.contains_key(f));
        for (file, problem) in &resolved.problems {
            if self.warned.get(file) != Some(problem) {
                tracing::warn!(
                    file = %self.dir.join(file).display(),
                    "maintenance file {} ignored: {problem}",
                    self.dir.join(file).display()
                );
                self.warned.insert(file.clone(), problem.clone());
            }
        }
        let mut changes = Vec::new();
        for ((service, server), want) in &resolved.desired {
            // Another file asking the same is no change.
            let same = self
                .applied
                .get(&(*service, *server))
                .is_some_and(|w| w.state == want.state && w.reason == want.reason);
            if same {
                continue;
            }
            tracing::info!(
                file = %self.dir.join(&want.file).display(),
                "maintenance file {}: {server} in {service} {}",
                self.dir.join(&want.file).display(),
                match want.state {
                    AdminState::Drain => "drains",
                    _ => "is disabled",
                }
            );
            changes.push(AdminChange {
                service: *service,
                server: *server,
                source: AdminSource::Maintenance,
                state: want.state,
                reason: want.reason.clone(),
                drain_timeout: None,
            });
        }
        for ((service, server), was) in &self.applied {
            if resolved.desired.contains_key(&(*service, *server))
                || resolved.gone.contains(&(*service, *server))
            {
                continue;
            }
            tracing::info!(
                "maintenance file {} is gone: {server} in {service} is no longer held out by it",
                self.dir.join(&was.file).display()
            );
            changes.push(AdminChange {
                service: *service,
                server: *server,
                source: AdminSource::Maintenance,
                state: AdminState::Enabled,
                reason: String::new(),
                drain_timeout: None,
            });
        }
        self.applied = resolved.desired;
        changes
    }
}

/// Reads the directory once and resolves it against `config`, for the changes to apply
/// before the engine's first output (so a server in maintenance at start is never added).
pub fn initial(watcher: &mut Watcher, config: &Config) -> Vec<AdminChange> {
    let scan = scan(&watcher.dir);
    let resolved = resolve(config, &scan, &watcher.applied());
    watcher.changes(&scan, resolved)
}

/// Reads the directory every [`POLL`] and hands the changes to the engine, until the daemon
/// stops.
pub async fn watch(
    mut watcher: Watcher,
    handle: Handle,
    changes: mpsc::UnboundedSender<AdminChange>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // The scan and the configuration last resolved: the same directory against the same
    // configuration asks the engine nothing (most seconds, on most directors).
    let mut last: Option<(std::sync::Arc<Scan>, u64)> = None;
    loop {
        tick.tick().await;
        let dir = watcher.dir.clone();
        let Ok(scan) = tokio::task::spawn_blocking(move || scan(&dir)).await else {
            continue;
        };
        // Read before asking: a configuration counted here is already on its way to the
        // engine, which takes it before the question below.
        let loaded = handle.state().config_generation;
        if last
            .as_ref()
            .is_some_and(|(s, at)| **s == scan && *at == loaded)
        {
            continue;
        }
        let applied = watcher.applied();
        let scan = std::sync::Arc::new(scan);
        let asked = scan.clone();
        let Some(resolved) = handle
            .ask(move |engine| resolve(engine.config(), &asked, &applied))
            .await
        else {
            continue;
        };
        for change in watcher.changes(&scan, resolved) {
            if changes.send(change).is_err() {
                return;
            }
        }
        last = Some((scan, loaded));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[[service]]\nname = \"web\"\naddress = \"10.0.0.1:80\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:80\"\n\
                    [[service.server]]\naddress = \"10.0.0.3:80\"\n\
                    [[service]]\nname = \"tls\"\naddress = \"10.0.0.1:443\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:443\"\n";
        Config::from_toml(text, "maintenance-test").unwrap()
    }

    fn scan_of(files: &[(&str, &str)]) -> Scan {
        let mut scan = Scan::default();
        for (name, content) in files {
            match parse_name(name) {
                Ok(selector) => {
                    let (state, reason) = parse_content(content.as_bytes(), name);
                    scan.asks.insert(
                        name.to_string(),
                        FileAsk {
                            selector,
                            state,
                            reason,
                        },
                    );
                }
                Err(e) => {
                    scan.problems.insert(name.to_string(), e);
                }
            }
        }
        scan
    }

    fn step(w: &mut Watcher, config: &Config, files: &[(&str, &str)]) -> Vec<String> {
        let scan = scan_of(files);
        let resolved = resolve(config, &scan, &w.applied());
        w.changes(&scan, resolved)
            .into_iter()
            .map(|c| format!("{} {} {} {}", c.server, c.service, c.state, c.reason))
            .collect()
    }

    #[test]
    fn names_and_first_lines() {
        let s = parse_name("web@10.0.0.2:80").unwrap();
        assert_eq!(s.service.as_deref(), Some("web"));
        assert_eq!(s.port, Some(80));
        assert!(s.all);
        let s = parse_name("10.0.0.1:443@[2001:db8::1]:443").unwrap();
        assert_eq!(s.service.as_deref(), Some("10.0.0.1:443"));
        assert!(parse_name("2001:db8::1").unwrap().port.is_none());
        assert!(parse_name("@10.0.0.2").is_err());
        assert!(parse_name("README").is_err());
        assert_eq!(
            parse_content(b"drain kernel patching\nmore", "f"),
            (AdminState::Drain, "kernel patching".into())
        );
        assert_eq!(
            parse_content(b"DRAIN", "f"),
            (AdminState::Drain, "f".into())
        );
        assert_eq!(
            parse_content(b"  disk swap  \n", "f"),
            (AdminState::Disabled, "disk swap".into())
        );
        assert_eq!(
            parse_content(b"", "/m/f"),
            (AdminState::Disabled, "/m/f".into())
        );
        assert_eq!(
            parse_content(b"drainage works", "f"),
            (AdminState::Disabled, "drainage works".into())
        );
        for name in [
            ".x",
            "10.0.0.2~",
            "#10.0.0.2#",
            "10.0.0.2.swp",
            "a.dpkg-new",
        ] {
            assert!(ignored(name), "{name}");
        }
        assert!(!ignored("10.0.0.2"));
    }

    #[test]
    fn a_file_takes_its_servers_out_of_every_service_while_it_exists() {
        let config = config();
        let mut w = Watcher::new("/m".into());
        assert_eq!(
            step(&mut w, &config, &[("10.0.0.2", "")]),
            [
                "10.0.0.2:80 TCP 10.0.0.1:80 disabled 10.0.0.2",
                "10.0.0.2:443 TCP 10.0.0.1:443 disabled 10.0.0.2"
            ]
        );
        assert!(
            step(&mut w, &config, &[("10.0.0.2", "")]).is_empty(),
            "no repeat"
        );
        assert_eq!(
            step(&mut w, &config, &[("10.0.0.2", "drain new disk")]),
            [
                "10.0.0.2:80 TCP 10.0.0.1:80 drain new disk",
                "10.0.0.2:443 TCP 10.0.0.1:443 drain new disk"
            ]
        );
        assert_eq!(
            step(&mut w, &config, &[("web@10.0.0.2", "drain new disk")]),
            ["10.0.0.2:443 TCP 10.0.0.1:443 enabled "],
            "narrowed to one service: the other is enabled again"
        );
        assert_eq!(
            step(&mut w, &config, &[]),
            ["10.0.0.2:80 TCP 10.0.0.1:80 enabled "]
        );
    }

    #[test]
    fn the_strictest_file_wins_and_files_naming_nothing_are_problems() {
        let config = config();
        let mut w = Watcher::new("/m".into());
        let scan = scan_of(&[
            ("10.0.0.3", "drain"),
            ("web@10.0.0.3:80", "reimage"),
            ("10.0.0.9", ""),
            ("nope@10.0.0.3", ""),
            ("notes.txt", ""),
        ]);
        let resolved = resolve(&config, &scan, &w.applied());
        let mut problems: Vec<_> = resolved.problems.keys().cloned().collect();
        problems.sort();
        assert_eq!(problems, ["10.0.0.9", "nope@10.0.0.3", "notes.txt"]);
        let changes = w.changes(&scan, resolved);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].state, AdminState::Disabled);
        assert_eq!(changes[0].reason, "reimage");
    }

    #[test]
    fn a_server_that_left_the_configuration_is_not_enabled_again() {
        let config = config();
        let mut w = Watcher::new("/m".into());
        step(&mut w, &config, &[("10.0.0.3", "")]);
        let fewer = Config::from_toml(
            "[[service]]\nname = \"web\"\naddress = \"10.0.0.1:80\"\n\
             [[service.check]]\ntype = \"tcp\"\n\
             [[service.server]]\naddress = \"10.0.0.2:80\"\n",
            "fewer",
        )
        .unwrap();
        assert!(step(&mut w, &fewer, &[]).is_empty());
        assert!(w.applied().is_empty());
    }

    #[test]
    fn a_directory_that_cannot_be_read_changes_nothing() {
        let config = config();
        let mut w = Watcher::new("/m".into());
        step(&mut w, &config, &[("10.0.0.3", "")]);
        let scan = Scan {
            unreadable: Some("cannot read /m: permission denied".into()),
            ..Scan::default()
        };
        let resolved = resolve(&config, &scan, &w.applied());
        assert!(w.changes(&scan, resolved).is_empty());
        assert_eq!(w.applied().len(), 1);
    }

    #[test]
    fn scanning_reads_regular_files_only_and_the_first_bytes() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-maint-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(
            dir.join("10.0.0.2"),
            "drain ".to_string() + &"x".repeat(9000),
        )
        .unwrap();
        std::fs::write(dir.join(".10.0.0.3"), "").unwrap();
        std::os::unix::fs::symlink(dir.join("10.0.0.2"), dir.join("10.0.0.3")).unwrap();
        let s = scan(&dir);
        assert_eq!(s.asks.len(), 1);
        assert_eq!(s.asks["10.0.0.2"].state, AdminState::Drain);
        assert_eq!(s.asks["10.0.0.2"].reason.len(), MAX_REASON);
        assert_eq!(
            s.problems["10.0.0.3"],
            "a symbolic link, not a regular file"
        );
        assert!(scan(&dir.join("missing")).asks.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn a_directory_too_full_to_read_leaves_every_server_as_it_was() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-maint-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..=MAX_FILES {
            std::fs::write(dir.join(format!("10.1.{}.{}", i / 250, i % 250)), "").unwrap();
        }
        let s = scan(&dir);
        assert!(s.asks.is_empty());
        let why = s.unreadable.expect("too many files: unreadable");
        assert!(why.contains("more than"), "{why}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
