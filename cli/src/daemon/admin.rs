//! Operators' administrative states: `lvs-hc server drain|disable|enable` as the control
//! socket takes it ([`AdminRequest`]), and the state file that keeps them across restarts and
//! reloads ([`StateFile`], `admin.json` in `[daemon] state_dir`).
//!
//! A command is resolved against the configuration in force, written to the state file, and
//! only then handed to the engine: when the file cannot be written the command fails and
//! nothing changes, so what the engine holds is never more than what a restart brings back.
//! Only the operator's marks are kept: maintenance files are read again, agents answer again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lvs_hc_core::admin::{
    select, AdminChange, AdminSource, AdminState, SelectError, SelectedServer, ServerSelector,
};
use lvs_hc_core::config::VirtualService;
use lvs_hc_core::time::format_duration;
use lvs_hc_core::{Config, ServerStatus, ServiceKey};
use serde_json::{json, Value};

/// The version of the state file's format this lvs-hc writes and reads.
pub const STATE_FILE_VERSION: u64 = 1;

/// The largest state file read (a mark is about 200 bytes: tens of thousands of servers).
pub const MAX_STATE_FILE: u64 = 8 * 1024 * 1024;

/// The largest request body `POST /server/...` takes.
pub const MAX_REQUEST_BODY: usize = 4096;

/// The longest reason, in characters.
pub const MAX_REASON: usize = 200;

/// The shortest and longest `--timeout` of a drain.
pub const DRAIN_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3600));

/// The word of a command: `enable`, `drain` or `disable`.
pub fn command_name(state: AdminState) -> &'static str {
    match state {
        AdminState::Enabled => "enable",
        AdminState::Drain => "drain",
        AdminState::Disabled => "disable",
    }
}

/// The command of a word (the last part of `POST /server/WORD`).
pub fn command_of(word: &str) -> Option<AdminState> {
    match word {
        "enable" => Some(AdminState::Enabled),
        "drain" => Some(AdminState::Drain),
        "disable" => Some(AdminState::Disabled),
        _ => None,
    }
}

// ---- the request ---------------------------------------------------------------------------

/// An operator's command: what `lvs-hc server` sends as JSON, `{address, service?, all?,
/// reason?, timeout?}`, to `POST /server/drain|disable|enable`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRequest {
    /// What to do: [`AdminState::Enabled`] clears the operator's mark.
    pub state: AdminState,
    /// Which servers.
    pub selector: ServerSelector,
    /// Why (may be empty).
    pub reason: String,
    /// For a drain: how long it may take (`None`: the service's `drain_timeout`, else
    /// [`lvs_hc_core::admin::DEFAULT_DRAIN_TIMEOUT`]).
    pub timeout: Option<Duration>,
}

impl AdminRequest {
    /// The request's JSON body.
    pub fn to_json(&self) -> Value {
        let address = match self.selector.port {
            Some(p) => SocketAddr::new(self.selector.ip, p).to_string(),
            None => self.selector.ip.to_string(),
        };
        let mut body = json!({ "address": address });
        if let Some(s) = &self.selector.service {
            body["service"] = json!(s);
        }
        if self.selector.all {
            body["all"] = json!(true);
        }
        if !self.reason.is_empty() {
            body["reason"] = json!(self.reason);
        }
        if let Some(t) = self.timeout {
            body["timeout"] = json!(format_duration(t));
        }
        body
    }

    /// Reads a request's JSON body for the command `state`; the error says what is wrong in
    /// the client's terms.
    pub fn from_json(state: AdminState, body: &[u8]) -> Result<AdminRequest, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the request is not JSON: {e}"))?;
        let Value::Object(fields) = value else {
            return Err("the request is not a JSON object".into());
        };
        let mut address = None;
        let mut request = AdminRequest {
            state,
            selector: ServerSelector {
                ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
                port: None,
                service: None,
                all: false,
            },
            reason: String::new(),
            timeout: None,
        };
        for (key, v) in &fields {
            let text = || {
                v.as_str()
                    .ok_or_else(|| format!("`{key}` must be a string"))
                    .map(str::to_string)
            };
            match key.as_str() {
                "address" => address = Some(text()?),
                "service" => request.selector.service = Some(text()?),
                "all" => {
                    request.selector.all = v
                        .as_bool()
                        .ok_or_else(|| "`all` must be true or false".to_string())?
                }
                "reason" => request.reason = check_reason(&text()?)?,
                "timeout" => request.timeout = Some(parse_drain_timeout(&text()?)?),
                other => {
                    return Err(format!(
                        "unknown field `{other}`: a request has address, and optionally \
                         service, all, reason and timeout"
                    ))
                }
            }
        }
        let address = address.ok_or_else(|| "the request has no `address`".to_string())?;
        let (ip, port) = ServerSelector::parse_server(&address)?;
        request.selector.ip = ip;
        request.selector.port = port;
        if request.timeout.is_some() && state != AdminState::Drain {
            return Err(format!(
                "a timeout is for drain only, not {}",
                command_name(state)
            ));
        }
        Ok(request)
    }
}

/// A reason as given, if it is one line of at most [`MAX_REASON`] characters.
pub fn check_reason(text: &str) -> Result<String, String> {
    if text.chars().count() > MAX_REASON {
        return Err(format!("the reason is longer than {MAX_REASON} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("the reason must be one line of text, without control characters".into());
    }
    Ok(text.trim().to_string())
}

/// A drain's `--timeout`: a duration from 1s to 24h.
pub fn parse_drain_timeout(text: &str) -> Result<Duration, String> {
    let d = lvs_hc_core::time::parse_duration(text).map_err(|e| format!("timeout: {e}"))?;
    let (min, max) = DRAIN_TIMEOUT_RANGE;
    if d < min || d > max {
        return Err(format!(
            "timeout: {} is not between {} and {}",
            format_duration(d),
            format_duration(min),
            format_duration(max)
        ));
    }
    Ok(d)
}

// ---- resolving and describing ---------------------------------------------------------------

/// The servers a command names in `config`, each with its service's label (`web (TCP
/// 192.168.0.101:80)`).
pub fn resolve(
    config: &Config,
    selector: &ServerSelector,
) -> Result<Vec<(SelectedServer, String)>, SelectError> {
    Ok(select(config, selector)?
        .into_iter()
        .map(|s| (s, service_label(config, s.service)))
        .collect())
}

fn service_label(config: &Config, key: ServiceKey) -> String {
    config
        .services
        .iter()
        .find(|s| s.key == key)
        .map_or_else(|| key.to_string(), VirtualService::label)
}

/// One line per server of what holds now: `192.168.0.179:80 in web (TCP 192.168.0.101:80):
/// drain by admin (kernel patching); health: up`.
pub fn describe(status: &[ServerStatus], servers: &[(SelectedServer, String)]) -> String {
    let mut out = String::new();
    for (s, label) in servers {
        let _ = write!(out, "{} in {label}: ", s.server);
        match status
            .iter()
            .find(|st| st.service == s.service && st.server == s.server)
        {
            Some(st) => {
                match st.admin.first() {
                    None => out.push_str("enabled"),
                    Some(m) => {
                        let _ = write!(out, "{} by {}", m.state, m.source.label());
                        if !m.reason.is_empty() {
                            let _ = write!(out, " ({})", m.reason);
                        }
                        if st.drained {
                            out.push_str(", drained: out until enabled");
                        }
                    }
                }
                let _ = writeln!(out, "; health: {}", st.health.as_str());
            }
            None => out.push_str("not in the configuration in force any more\n"),
        }
    }
    out
}

// ---- the state file -------------------------------------------------------------------------

/// An operator's mark as the state file keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptMark {
    /// Drain or disabled.
    pub state: AdminState,
    /// Why.
    pub reason: String,
    /// A drain's timeout, if the command gave one.
    pub drain_timeout: Option<Duration>,
    /// When it was set, in seconds since the Unix epoch.
    pub set_at_unix: u64,
}

/// The operators' marks by service and server: what the state file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdminBook {
    marks: BTreeMap<(ServiceKey, SocketAddr), KeptMark>,
}

impl AdminBook {
    /// Sets (or, with [`AdminState::Enabled`], clears) the mark of `server` in `service`.
    pub fn set(&mut self, service: ServiceKey, server: SocketAddr, mark: KeptMark) {
        if mark.state == AdminState::Enabled {
            self.marks.remove(&(service, server));
        } else {
            self.marks.insert((service, server), mark);
        }
    }

    /// Whether it holds no mark.
    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The changes that give an engine these marks (at start, after [`Engine::new`]).
    ///
    /// [`Engine::new`]: lvs_hc_core::Engine::new
    pub fn changes(&self) -> Vec<AdminChange> {
        self.marks
            .iter()
            .map(|((service, server), m)| AdminChange {
                service: *service,
                server: *server,
                source: AdminSource::Operator,
                state: m.state,
                reason: m.reason.clone(),
                drain_timeout: m.drain_timeout,
            })
            .collect()
    }

    /// Drops the marks of servers `config` does not have; returns what was dropped, in words.
    pub fn prune(&mut self, config: &Config) -> Vec<String> {
        let mut dropped = Vec::new();
        self.marks.retain(|(service, server), m| {
            let svc = config.services.iter().find(|s| s.key == *service);
            let keep = svc.is_some_and(|svc| {
                svc.servers
                    .iter()
                    .chain(&svc.fallbacks)
                    .any(|s| s.addr == *server)
            });
            if !keep {
                let why = if svc.is_none() {
                    "its service is no longer configured"
                } else {
                    "it is no longer a server of its service"
                };
                dropped.push(format!("{server} in {service} ({}: {why})", m.state));
            }
            keep
        });
        dropped
    }

    /// The file's text: `{"version":1,"servers":[{service, server, state, reason,
    /// timeout_ms?, set_at_unix}]}`.
    pub fn to_json(&self) -> String {
        let servers: Vec<Value> = self
            .marks
            .iter()
            .map(|((service, server), m)| {
                let mut entry = json!({
                    "service": service.to_string(),
                    "server": server.to_string(),
                    "state": m.state.as_str(),
                    "reason": m.reason,
                    "set_at_unix": m.set_at_unix,
                });
                if let Some(t) = m.drain_timeout {
                    entry["timeout_ms"] = json!(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
                }
                entry
            })
            .collect();
        let doc = json!({ "version": STATE_FILE_VERSION, "servers": servers });
        let mut text = format!("{doc:#}");
        text.push('\n');
        text
    }

    /// Reads a state file's text against the configuration in force: entries naming a
    /// service or server `config` lacks are returned apart, in words. The error says what is
    /// wrong and where (`servers[2].state: ...`).
    pub fn from_json(text: &str, config: &Config) -> Result<(AdminBook, Vec<String>), String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match doc.get("version").and_then(Value::as_u64) {
            Some(STATE_FILE_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "version {v}, which this lvs-hc does not know (it reads version \
                     {STATE_FILE_VERSION}): was it written by a newer lvs-hc?"
                ))
            }
            None => return Err("no \"version\" number".into()),
        }
        let entries = doc
            .get("servers")
            .and_then(Value::as_array)
            .ok_or("no \"servers\" list")?;
        let mut book = AdminBook::default();
        let mut dropped = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let at = |what: &str| format!("servers[{i}].{what}");
            let text = |key: &str| {
                e.get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{}: missing, or not a string", at(key)))
            };
            let service = text("service")?;
            let server: SocketAddr = text("server")?
                .parse()
                .map_err(|_| format!("{}: not ADDR:PORT", at("server")))?;
            let state = match AdminState::parse(text("state")?) {
                Some(s @ (AdminState::Drain | AdminState::Disabled)) => s,
                _ => return Err(format!("{}: not \"drain\" or \"disabled\"", at("state"))),
            };
            let reason = text("reason")?.to_string();
            let set_at_unix = e
                .get("set_at_unix")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("{}: missing, or not a number", at("set_at_unix")))?;
            let drain_timeout = match e.get("timeout_ms") {
                None | Some(Value::Null) => None,
                Some(v) => Some(Duration::from_millis(v.as_u64().ok_or_else(|| {
                    format!("{}: not a number of milliseconds", at("timeout_ms"))
                })?)),
            };
            let Some(svc) = config
                .services
                .iter()
                .find(|s| s.key.to_string() == service)
            else {
                dropped.push(format!(
                    "{server} in {service} ({state}: its service is not configured)"
                ));
                continue;
            };
            if !svc
                .servers
                .iter()
                .chain(&svc.fallbacks)
                .any(|s| s.addr == server)
            {
                dropped.push(format!(
                    "{server} in {service} ({state}: not a server of its service)"
                ));
                continue;
            }
            book.set(
                svc.key,
                server,
                KeptMark {
                    state,
                    reason,
                    drain_timeout,
                    set_at_unix,
                },
            );
        }
        Ok((book, dropped))
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file is there but cannot be read: lvs-hc does not start, lest a server disabled
    /// by an operator come back; fix its permissions, or remove it.
    #[error(
        "cannot read {}: {error}; it holds the servers operators drained or disabled, and \
         lvs-hc does not start without it: fix it, or remove it to forget every \
         administrative state",
        path.display()
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The file's content is not a state file lvs-hc understands: lvs-hc does not start, lest
    /// a server disabled by an operator come back; fix it, or remove it.
    #[error(
        "{}: {problem}; it holds the servers operators drained or disabled, and lvs-hc does \
         not start without it: fix it, or remove it to forget every administrative state",
        path.display()
    )]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The states would make a file larger than lvs-hc reads at start: the command is refused
    /// and nothing changes.
    #[error(
        "the state file {} would be {size} bytes, more than the {MAX_STATE_FILE} lvs-hc reads \
         at start: fewer administrative states, or shorter reasons",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The size it would have.
        size: usize,
    },
    /// The file could not be written: the command is refused and nothing changes. Check that
    /// `[daemon] state_dir` exists and is writable by lvs-hc.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file (or its temporary copy, or its directory).
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
}

/// The state file: `admin.json` in `[daemon] state_dir`, or `<stem>.admin.json` for a
/// configuration file not named `lvs-hc.toml` (as its lock file is `<stem>.lock`), so that
/// instances with different configurations do not share (and prune) each other's marks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateFile {
    /// Its path.
    pub path: PathBuf,
    /// A dry run reads the file but never writes it: a trial daemon must not change (or
    /// prune) the states the real one keeps.
    pub read_only: bool,
}

impl StateFile {
    /// The state file of the daemon that runs `config_path`.
    pub fn of(config: &Config, config_path: &Path) -> StateFile {
        let stem = config_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = if stem.is_empty() || stem == "lvs-hc" {
            "admin.json".to_string()
        } else {
            format!("{stem}.admin.json")
        };
        StateFile {
            path: config.daemon.state_dir.join(name),
            read_only: false,
        }
    }

    /// Reads the marks kept, against the configuration in force: none when there is no file;
    /// an error when it cannot be read or understood. Marks of servers `config` lacks are
    /// returned apart, in words.
    pub fn load(&self, config: &Config) -> Result<(AdminBook, Vec<String>), StateError> {
        use crate::load::LoadError;
        let path = self.path.clone();
        // The configuration's reader: a regular file (never a FIFO that would hang the
        // start), bounded, UTF-8 with the place of a bad byte.
        let text = match crate::load::read_text_file(&path, MAX_STATE_FILE) {
            Ok(text) => text,
            Err(LoadError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok((AdminBook::default(), Vec::new()))
            }
            Err(LoadError::Read { source, .. }) => {
                return Err(StateError::Read {
                    path,
                    error: source,
                })
            }
            Err(other) => {
                return Err(StateError::Content {
                    path,
                    problem: other.to_string(),
                })
            }
        };
        AdminBook::from_json(&text, config).map_err(|problem| StateError::Content { path, problem })
    }

    /// Replaces the file with `book`, atomically: a temporary file in the same directory,
    /// written and flushed to disk, renamed over the file, and the directory flushed, so
    /// that after a crash the file is the old one or the new one, whole. Mode 0600; the
    /// directory is created (0700) if missing.
    pub fn write(&self, book: &AdminBook) -> Result<(), StateError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if self.read_only {
            tracing::info!(
                file = %self.path.display(),
                "dry run: the state file is not written; administrative states last until \
                 this run ends"
            );
            return Ok(());
        }
        let text = book.to_json();
        // What the next start would refuse to read is never written.
        if text.len() as u64 > MAX_STATE_FILE {
            return Err(StateError::TooLarge {
                path: self.path.clone(),
                size: text.len(),
            });
        }
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Write { path, source }
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("/"));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err(dir))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| -> Result<(), StateError> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err(&tmp))?;
            file.write_all(text.as_bytes()).map_err(err(&tmp))?;
            file.sync_all().map_err(err(&tmp))?;
            std::fs::rename(&tmp, &self.path).map_err(err(&self.path))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err(dir))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let text = "[[service]]\nname = \"web\"\naddress = \"10.0.0.1:80\"\n\
                    [[service.check]]\ntype = \"tcp\"\n\
                    [[service.server]]\naddress = \"10.0.0.2:80\"\n\
                    [[service.server]]\naddress = \"10.0.0.3:80\"\n";
        Config::from_toml(text, "admin-test").unwrap()
    }

    fn mark(state: AdminState) -> KeptMark {
        KeptMark {
            state,
            reason: "kernel patching".into(),
            drain_timeout: Some(Duration::from_secs(90)),
            set_at_unix: 1_765_000_000,
        }
    }

    #[test]
    fn a_book_reads_back_what_it_wrote() {
        let config = config();
        let key = config.services[0].key;
        let mut book = AdminBook::default();
        book.set(key, "10.0.0.2:80".parse().unwrap(), mark(AdminState::Drain));
        book.set(
            key,
            "10.0.0.3:80".parse().unwrap(),
            mark(AdminState::Disabled),
        );
        let (back, dropped) = AdminBook::from_json(&book.to_json(), &config).unwrap();
        assert_eq!(back, book);
        assert!(dropped.is_empty());
        book.set(
            key,
            "10.0.0.3:80".parse().unwrap(),
            mark(AdminState::Enabled),
        );
        assert_eq!(book.changes().len(), 1, "enable clears the mark");
    }

    #[test]
    fn marks_of_servers_not_configured_are_dropped_and_named() {
        let config = config();
        let text = r#"{"version":1,"servers":[
            {"service":"TCP 10.0.0.1:80","server":"10.0.0.9:80","state":"disabled",
             "reason":"","set_at_unix":1},
            {"service":"TCP 10.0.0.7:80","server":"10.0.0.2:80","state":"drain",
             "reason":"","set_at_unix":1},
            {"service":"TCP 10.0.0.1:80","server":"10.0.0.2:80","state":"disabled",
             "reason":"x","set_at_unix":1}]}"#;
        let (book, dropped) = AdminBook::from_json(text, &config).unwrap();
        assert_eq!(book.changes().len(), 1);
        assert_eq!(
            dropped,
            [
                "10.0.0.9:80 in TCP 10.0.0.1:80 (disabled: not a server of its service)",
                "10.0.0.2:80 in TCP 10.0.0.7:80 (drain: its service is not configured)"
            ]
        );
    }

    #[test]
    fn a_state_file_that_says_something_else_is_an_error_naming_where() {
        let config = config();
        for (text, problem) in [
            ("{", "not JSON"),
            (r#"{"servers":[]}"#, "no \"version\" number"),
            (r#"{"version":2,"servers":[]}"#, "version 2"),
            (r#"{"version":1}"#, "no \"servers\" list"),
            (
                r#"{"version":1,"servers":[{"service":"TCP 10.0.0.1:80","server":"10.0.0.2:80",
                "state":"enabled","reason":"","set_at_unix":1}]}"#,
                "servers[0].state: not \"drain\" or \"disabled\"",
            ),
            (
                r#"{"version":1,"servers":[{"service":"TCP 10.0.0.1:80","server":"10.0.0.2",
                "state":"drain","reason":"","set_at_unix":1}]}"#,
                "servers[0].server: not ADDR:PORT",
            ),
        ] {
            let e = AdminBook::from_json(text, &config).unwrap_err();
            assert!(e.contains(problem), "{e} should say {problem}");
        }
    }

    #[test]
    fn requests_round_trip_and_bad_ones_say_why() {
        let req = AdminRequest {
            state: AdminState::Drain,
            selector: ServerSelector {
                ip: "10.0.0.2".parse().unwrap(),
                port: Some(80),
                service: Some("web".into()),
                all: true,
            },
            reason: "kernel patching".into(),
            timeout: Some(Duration::from_secs(600)),
        };
        let body = req.to_json().to_string();
        assert_eq!(
            AdminRequest::from_json(AdminState::Drain, body.as_bytes()).unwrap(),
            req
        );
        for (body, problem) in [
            (r#"{"adress":"10.0.0.2"}"#, "unknown field `adress`"),
            (r#"{}"#, "no `address`"),
            (r#"{"address":"host"}"#, "not a server address"),
            (
                r#"{"address":"10.0.0.2","reason":"a\nb"}"#,
                "one line of text",
            ),
            (
                r#"{"address":"10.0.0.2","timeout":"0s"}"#,
                "is not between 1s and 24h",
            ),
        ] {
            let e = AdminRequest::from_json(AdminState::Drain, body.as_bytes()).unwrap_err();
            assert!(e.contains(problem), "{e} should say {problem}");
        }
        let e = AdminRequest::from_json(
            AdminState::Disabled,
            br#"{"address":"10.0.0.2","timeout":"5m"}"#,
        )
        .unwrap_err();
        assert_eq!(e, "a timeout is for drain only, not disable");
    }

    #[test]
    fn a_dry_runs_state_file_is_read_and_never_written() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-admin-dry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = config();
        let file = StateFile {
            path: dir.join("admin.json"),
            read_only: true,
        };
        let mut book = AdminBook::default();
        book.set(
            config.services[0].key,
            "10.0.0.2:80".parse().unwrap(),
            KeptMark {
                state: AdminState::Disabled,
                reason: "dry".into(),
                drain_timeout: None,
                set_at_unix: 1,
            },
        );
        file.write(&book).unwrap();
        assert!(!dir.exists(), "a dry run wrote {}", dir.display());
    }

    #[test]
    fn a_state_file_too_large_to_read_back_is_never_written() {
        let dir = std::env::temp_dir().join(format!("lvs-hc-admin-big-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = config();
        let file = StateFile {
            path: dir.join("admin.json"),
            read_only: false,
        };
        let mut book = AdminBook::default();
        for i in 0..50_000u32 {
            let server = std::net::SocketAddr::from(([10, 2, (i >> 8) as u8, i as u8], 80));
            book.set(
                config.services[0].key,
                server,
                KeptMark {
                    state: AdminState::Disabled,
                    reason: "r".repeat(200),
                    drain_timeout: None,
                    set_at_unix: 1,
                },
            );
        }
        let err = file.write(&book).unwrap_err();
        assert!(matches!(err, StateError::TooLarge { .. }), "{err}");
        assert!(!file.path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_state_file_is_written_whole_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("lvs-hc-admin-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = config();
        let file = StateFile {
            path: dir.join("sub/admin.json"),
            read_only: false,
        };
        assert_eq!(file.load(&config).unwrap().0, AdminBook::default());
        let mut book = AdminBook::default();
        book.set(
            config.services[0].key,
            "10.0.0.2:80".parse().unwrap(),
            mark(AdminState::Disabled),
        );
        file.write(&book).unwrap();
        assert_eq!(file.load(&config).unwrap().0, book);
        let mode = std::fs::metadata(&file.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.join("sub")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        std::fs::write(&file.path, "garbage").unwrap();
        let e = file.load(&config).unwrap_err().to_string();
        assert!(
            e.contains("remove it to forget every administrative state"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
