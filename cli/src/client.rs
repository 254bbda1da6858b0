//! `lvs-hc status`, `lvs-hc reload` and `lvs-hc server`: clients of the running daemon's
//! read-only API and control socket.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lvs_hc_core::config::ApiListen;
use lvs_hc_core::time::format_duration;
use serde_json::Value;

use crate::cli::{ApiArgs, ControlArgs, ServerAction};

/// The configuration `status` and `reload` read the daemon's addresses from when given none.
pub const DEFAULT_CONFIG: &str = "/etc/lvs-hc/lvs-hc.toml";

/// Why `lvs-hc status` or `lvs-hc reload` could not get the daemon's answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration the daemon's addresses are read from cannot be used.
    #[error(transparent)]
    Config(#[from] crate::LoadError),
    /// `--api` is not an address: give `ADDRESS:PORT` or `unix:/PATH`.
    #[error("--api: {0}")]
    BadApi(String),
    /// `--api off` leaves nothing to ask: give the API's address.
    #[error("--api off: give an address")]
    ApiOff,
    /// The configuration switches the control socket off, so `reload` cannot reach the daemon:
    /// reload it with SIGHUP.
    #[error(
        "the daemon's control socket is switched off ([daemon] control = \"off\" in {}): \
         reload it with SIGHUP (systemctl reload lvs-hc)",
        config.display()
    )]
    ControlOff {
        /// The configuration file.
        config: PathBuf,
    },
    /// The configuration switches both the API and the control socket off, so `status` has
    /// nothing to ask: switch one on.
    #[error(
        "the daemon's API and control socket are both switched off ([daemon] api and \
         control); `lvs-hc status` needs one of them"
    )]
    NothingToAsk,
    /// This user may not write to the control socket: run as root, or be given its group.
    #[error(
        "permission denied on the control socket {}: commands need root, or membership of \
         its group with control_group and control_mode = \"0660\"",
        path.display()
    )]
    ControlDenied {
        /// The socket.
        path: PathBuf,
    },
    /// Nothing is at the control socket's path: is the daemon running, with this socket?
    #[error(
        "no control socket at {} (is `lvs-hc run` running? with another --control or \
         [daemon] control?)",
        path.display()
    )]
    NoControlSocket {
        /// The socket.
        path: PathBuf,
    },
    /// The control socket is there but nobody answers on it: is the daemon running?
    #[error(
        "cannot reach lvs-hc at unix:{}: {error} (is `lvs-hc run` running?)",
        path.display()
    )]
    ControlUnreachable {
        /// The socket.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The client's runtime could not start: the machine is out of threads or descriptors.
    #[error(transparent)]
    Runtime(io::Error),
    /// The HTTP client could not be set up.
    #[error(transparent)]
    Http(reqwest::Error),
    /// The daemon did not answer: is it running, and does `[daemon] api` match?
    #[error(
        "cannot reach lvs-hc at {target}{} (is `lvs-hc run` running? does [daemon] api \
         match?)",
        cause_of(error)
    )]
    Unreachable {
        /// Where it was asked.
        target: Target,
        /// What went wrong.
        error: reqwest::Error,
    },
    /// The daemon's answer broke off.
    #[error("reading the answer")]
    Answer(#[source] reqwest::Error),
    /// The daemon refused the request: its answer says why.
    #[error("lvs-hc answered {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer, trimmed.
        body: String,
    },
    /// What answered at the API is not lvs-hc's `/status` (another program on that port?).
    #[error("the daemon's /status is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// Standard output could not be written.
    #[error("writing to standard output")]
    Stdout(#[source] io::Error),
}

/// `: why`, from the first cause of a failed request; empty when it has none.
fn cause_of(error: &reqwest::Error) -> String {
    std::error::Error::source(error)
        .map(|s| format!(": {s}"))
        .unwrap_or_default()
}

/// Where a client reaches the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The read-only API.
    Api(ApiListen),
    /// The control socket.
    Control(PathBuf),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Api(listen) => write!(f, "{listen}"),
            Target::Control(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The configuration a client reads addresses from: `--config`, else [`DEFAULT_CONFIG`] when
/// it exists.
fn client_config(
    config: &Option<PathBuf>,
) -> Result<Option<(lvs_hc_core::Config, PathBuf)>, ClientError> {
    let path = match config {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok(None),
    };
    Ok(Some((crate::load_config(&path)?, path)))
}

/// The control socket: `--control`, else that of `--config` (or [`DEFAULT_CONFIG`]), else
/// /run/lvs-hc/lvs-hc.sock.
pub fn resolve_control(args: &ControlArgs) -> Result<PathBuf, ClientError> {
    if let Some(path) = &args.control {
        return Ok(path.clone());
    }
    match client_config(&args.config)? {
        Some((config, path)) => crate::daemon::control_socket_of(&config, &path)
            .ok_or(ClientError::ControlOff { config: path }),
        None => Ok(PathBuf::from("/run/lvs-hc/lvs-hc.sock")),
    }
}

/// Where `lvs-hc status` may reach the daemon, in order of preference: `--api` or `--control`
/// alone; else the control socket and the API of `--config` (or [`DEFAULT_CONFIG`]); else the
/// default control socket and 127.0.0.1:9101.
pub fn resolve_status(args: &ApiArgs) -> Result<Vec<Target>, ClientError> {
    if let Some(text) = &args.api {
        let listen = ApiListen::parse(text).map_err(ClientError::BadApi)?;
        if listen == ApiListen::Off {
            return Err(ClientError::ApiOff);
        }
        return Ok(vec![Target::Api(listen)]);
    }
    if let Some(path) = &args.control {
        return Ok(vec![Target::Control(path.clone())]);
    }
    let mut targets = Vec::new();
    match client_config(&args.config)? {
        Some((config, path)) => {
            if let Some(control) = crate::daemon::control_socket_of(&config, &path) {
                targets.push(Target::Control(control));
            }
            if config.daemon.api != ApiListen::Off {
                targets.push(Target::Api(config.daemon.api));
            }
        }
        None => {
            targets.push(Target::Control(PathBuf::from("/run/lvs-hc/lvs-hc.sock")));
            targets.push(Target::Api(
                lvs_hc_core::config::DaemonSettings::default().api,
            ));
        }
    }
    if targets.is_empty() {
        return Err(ClientError::NothingToAsk);
    }
    Ok(targets)
}

/// Whether this user can talk to the control socket at `path` (it exists, someone listens, and
/// the socket's mode lets us write); the reason when not.
fn control_reachable(path: &Path) -> Result<(), ClientError> {
    let path = path.to_path_buf();
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(ClientError::ControlDenied { path })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ClientError::NoControlSocket { path }),
        Err(error) => Err(ClientError::ControlUnreachable { path, error }),
    }
}

/// Sends one request to the daemon; returns status and body.
fn request(
    target: &Target,
    method: reqwest::Method,
    path: &str,
) -> Result<(u16, String), ClientError> {
    request_with(target, method, path, None)
}

/// [`request`] with a JSON body.
fn request_with(
    target: &Target,
    method: reqwest::Method,
    path: &str,
    json: Option<String>,
) -> Result<(u16, String), ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    runtime.block_on(async {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy();
        let (builder, url) = match target {
            Target::Api(ApiListen::Tcp(addr)) => (builder, format!("http://{addr}{path}")),
            Target::Api(ApiListen::Unix(sock)) | Target::Control(sock) => (
                builder.unix_socket(sock.as_path()),
                format!("http://localhost{path}"),
            ),
            Target::Api(ApiListen::Off) => unreachable!("resolve_status refuses off"),
        };
        let client = builder.build().map_err(ClientError::Http)?;
        let mut request = client.request(method, &url);
        if let Some(body) = json {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| ClientError::Unreachable {
                target: target.clone(),
                error,
            })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(ClientError::Answer)?;
        Ok((status, body))
    })
}

/// `lvs-hc reload`, through the control socket.
pub fn reload(args: &ControlArgs) -> Result<ExitCode, ClientError> {
    let path = resolve_control(args)?;
    control_reachable(&path)?;
    let (status, body) = request(&Target::Control(path), reqwest::Method::POST, "/reload")?;
    match status {
        200 => {
            write_stdout(&body)?;
            Ok(ExitCode::SUCCESS)
        }
        422 => {
            eprint!("reload refused; the running configuration stays in force:\n{body}");
            Ok(ExitCode::FAILURE)
        }
        status => Err(ClientError::Refused {
            status,
            body: body.trim().to_string(),
        }),
    }
}

/// `lvs-hc server drain|disable|enable`, through the control socket: prints what now holds
/// for each server named; a refusal (unknown server or service, an ambiguous address, a state
/// file that cannot be written) goes to standard error with exit status 1, and nothing
/// changed.
pub fn server(action: &ServerAction) -> Result<ExitCode, ClientError> {
    use crate::daemon::admin::{command_name, AdminRequest};
    use lvs_hc_core::admin::{AdminState, ServerSelector};
    let (state, target, timeout) = match action {
        ServerAction::Drain { target, timeout } => (AdminState::Drain, target, *timeout),
        ServerAction::Disable { target } => (AdminState::Disabled, target, None),
        ServerAction::Enable { target } => (AdminState::Enabled, target, None),
    };
    let request = AdminRequest {
        state,
        selector: ServerSelector {
            ip: target.server.0,
            port: target.server.1,
            service: target.service.clone(),
            all: target.all,
        },
        reason: target.reason.clone().unwrap_or_default(),
        timeout,
    };
    let path = resolve_control(&target.control)?;
    control_reachable(&path)?;
    let command = command_name(state);
    let (status, body) = request_with(
        &Target::Control(path),
        reqwest::Method::POST,
        &format!("/server/{command}"),
        Some(request.to_json().to_string()),
    )?;
    match status {
        200 => {
            write_stdout(&body)?;
            Ok(ExitCode::SUCCESS)
        }
        400 | 422 | 500 | 503 => {
            eprint!("lvs-hc server {command}: {body}");
            Ok(ExitCode::FAILURE)
        }
        status => Err(ClientError::Refused {
            status,
            body: body.trim().to_string(),
        }),
    }
}

/// `lvs-hc status`.
pub fn status(api: &ApiArgs, json: bool) -> Result<ExitCode, ClientError> {
    let targets = resolve_status(api)?;
    // The control socket first when this user may use it: the read-only API can be crowded
    // by other local users, the control socket only by those allowed on it.
    let target = targets
        .iter()
        .find(|t| match t {
            Target::Control(path) => targets.len() == 1 || control_reachable(path).is_ok(),
            Target::Api(_) => true,
        })
        .unwrap_or(&targets[0]);
    if let Target::Control(path) = target {
        control_reachable(path)?;
    }
    let (status, body) = request(target, reqwest::Method::GET, "/status")?;
    if status != 200 {
        return Err(ClientError::Refused {
            status,
            body: body.trim().to_string(),
        });
    }
    let value: Value = serde_json::from_str(&body).map_err(ClientError::NotJson)?;
    let mut text = if json {
        // A JSON value's alternate form is serde_json's pretty printing (to_string_pretty).
        format!("{value:#}")
    } else {
        render_status(&value)
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    write_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes to standard output; a reader that stopped reading (`| head`, `| grep -m 1`) is not
/// an error.
fn write_stdout(text: &str) -> Result<(), ClientError> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(ClientError::Stdout),
    }
}

fn ago(v: &Value) -> String {
    match v.as_f64() {
        Some(s) => format_duration(Duration::from_secs(s.max(0.0) as u64)),
        None => "-".to_string(),
    }
}

/// The status as a table like `ipvsadm -Ln`, with health, time since the last change and the
/// reason.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "lvs-hc {} (pid {}), {}, up {}, backend {}",
        v["version"].as_str().unwrap_or("?"),
        v["pid"],
        v["config"].as_str().unwrap_or("?"),
        ago(&v["uptime_seconds"]),
        v["backend"].as_str().unwrap_or("?"),
    );
    if v["dry_run"].as_bool() == Some(true) {
        out.push_str(", DRY RUN");
    }
    out.push('\n');
    match v["last_resync_seconds_ago"].as_f64() {
        Some(s) => {
            let _ = writeln!(out, "last table read {:.1}s ago", s);
        }
        None => {
            let _ = writeln!(out, "the table has not been read yet");
        }
    }
    if let Some(e) = v["last_resync_error"].as_str() {
        let _ = writeln!(out, "reading the table fails: {e}");
    }
    if let Some(e) = v["config_error"].as_str() {
        let _ = writeln!(
            out,
            "the last reload was refused; the previous configuration runs:\n  {}",
            e.replace('\n', "\n  ")
        );
    }
    for w in v["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "warning: {}", w.as_str().unwrap_or("?"));
    }
    render_director(&v["director"], &mut out);
    render_sync(&v["sync"], &mut out);
    render_announce(&v["announce"], &mut out);
    if let Some(n) = v["probe_fault_count"].as_u64().filter(|n| *n > 0) {
        let _ =
            writeln!(
            out,
            "{n} probe{} cannot run because of this director (no verdict: {} keep their state):",
            if n == 1 { "" } else { "s" },
            if n == 1 { "its server" } else { "their servers" }
        );
        let listed = v["probe_faults"]
            .as_array()
            .map_or(&[][..], |a| a.as_slice());
        for f in listed.iter().take(5) {
            let _ = writeln!(
                out,
                "  {} ({}): {} (for {})",
                f["server"].as_str().unwrap_or("?"),
                f["check"].as_str().unwrap_or("?"),
                f["reason"].as_str().unwrap_or("?"),
                ago(&f["since_seconds_ago"])
            );
        }
        if n > 5 {
            let _ = writeln!(out, "  and {} more", n - 5);
        }
    }
    out.push_str("Prot LocalAddress:Port Scheduler\n");
    out.push_str(
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn Health  Since    Reason\n",
    );
    for svc in v["services"].as_array().into_iter().flatten() {
        let key = svc["service"].as_str().unwrap_or("?");
        let (proto, addr) = key.split_once(' ').unwrap_or((key, ""));
        let _ = write!(
            out,
            "{proto:<4} {addr} {}",
            svc["scheduler"].as_str().unwrap_or("?")
        );
        if let Some(name) = svc["name"].as_str() {
            let _ = write!(out, "  ({name})");
        }
        if svc["in_table"].as_bool() == Some(false) {
            out.push_str("  [not in the kernel table]");
        }
        if svc["fallback_active"].as_bool() == Some(true) {
            out.push_str("  [FALLBACK IN]");
        }
        out.push('\n');
        for s in svc["servers"].as_array().into_iter().flatten() {
            let mut addr = s["address"].as_str().unwrap_or("?").to_string();
            if s["fallback"].as_bool() == Some(true) {
                addr.push_str(" (fallback)");
            }
            let num = |x: &Value| x.as_u64().map_or("-".to_string(), |n| n.to_string());
            let (health, reason) = server_words(s);
            let _ = writeln!(
                out,
                "  -> {addr:<28} {:<7} {:<6} {:<10} {:<9} {health:<7} {:<8} {reason}",
                s["forward"].as_str().unwrap_or("-"),
                num(&s["kernel_weight"]),
                num(&s["active_conns"]),
                num(&s["inactive_conns"]),
                ago(&s["since_seconds_ago"]),
            );
        }
    }
    let probes = v["probe_services"]
        .as_array()
        .map_or(&[][..], |a| a.as_slice());
    if !probes.is_empty() {
        let _ = writeln!(
            out,
            "lvs-hc's probe services (via_vip: probes reach each server through its VIP):"
        );
        for p in probes {
            let held = if p["in_table"].as_bool() == Some(true) {
                ""
            } else {
                "  [not in the kernel table yet]"
            };
            let _ = writeln!(
                out,
                "  FWM  {:<10} -> {} for {}{held}",
                p["mark"].as_str().unwrap_or("?"),
                p["server"].as_str().unwrap_or("?"),
                p["service"].as_str().unwrap_or("?"),
            );
        }
    }
    out
}

/// `director: active (holds 192.168.0.101 on eth0)`: whether this director holds its virtual
/// addresses, so that a standby, an active director and a split brain are told apart.
fn render_director(d: &Value, out: &mut String) {
    let Some(vips) = d["vips"].as_array().filter(|v| !v.is_empty()) else {
        return;
    };
    let words: Vec<String> = vips
        .iter()
        .map(|vip| {
            let address = vip["address"].as_str().unwrap_or("?");
            match (vip["held"].as_bool(), vip["interface"].as_str()) {
                (Some(true), Some(on)) => format!("holds {address} on {on}"),
                (Some(false), _) => format!("does not hold {address}"),
                _ => format!(
                    "cannot tell whether it holds {address} ({})",
                    vip["error"].as_str().unwrap_or("?")
                ),
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "director: {} ({})",
        d["role"].as_str().unwrap_or("?"),
        words.join(", ")
    );
}

/// The sync daemons `[sync]` asks for, each with its state (and the failure that keeps one
/// from running), then those running that lvs-hc leaves alone.
fn render_sync(s: &Value, out: &mut String) {
    let daemons = s["daemons"].as_array().map_or(&[][..], |a| a.as_slice());
    if !daemons.is_empty() {
        out.push_str("sync daemons ([sync]):\n");
    }
    for d in daemons {
        let state = d["state"].as_str().unwrap_or("?");
        let settings = match (state, d["running"].as_str()) {
            ("running", Some(running)) => running.to_string(),
            (_, Some(running)) => format!(
                "runs with {running}; [sync] asks for {}",
                d["wanted"].as_str().unwrap_or("?")
            ),
            (_, None) => format!("[sync] asks for {}", d["wanted"].as_str().unwrap_or("?")),
        };
        let _ = writeln!(
            out,
            "  {:<7} {:<15} {settings}",
            d["role"].as_str().unwrap_or("?"),
            if state == "running" {
                state.to_string()
            } else {
                state.to_uppercase()
            }
        );
        if let Some(e) = d["error"].as_object() {
            let _ = writeln!(
                out,
                "          `{}` failed: {} (attempt {}, again in {})",
                e["command"].as_str().unwrap_or("?"),
                e["error"].as_str().unwrap_or("?"),
                e["attempts"],
                ago(&e["retry_in_seconds"])
            );
        }
    }
    for d in s["unmanaged"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "sync daemon not lvs-hc's: {} ({})",
            d["role"].as_str().unwrap_or("?"),
            d["running"].as_str().unwrap_or("?")
        );
    }
}

/// `[announce]`: each VIP announced or not and why, then each service ready or not and why.
fn render_announce(a: &Value, out: &mut String) {
    if a["configured"].as_bool() != Some(true) {
        return;
    }
    let _ = writeln!(
        out,
        "announced ([announce], table {} proto {}){}:",
        a["table"],
        a["protocol"],
        if a["stalled"].as_bool() == Some(true) {
            ", ENGINE STALLED: routes withdrawn by the watchdog"
        } else {
            ""
        }
    );
    let vips = a["vips"].as_array().map_or(&[][..], |v| v.as_slice());
    let width = vips
        .iter()
        .filter_map(|v| v["vip"].as_str().map(str::len))
        .max()
        .unwrap_or(0);
    for v in vips {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<13}  {}",
            v["vip"].as_str().unwrap_or("?"),
            if v["announced"].as_bool() == Some(true) {
                "announced"
            } else {
                "NOT ANNOUNCED"
            },
            v["why"].as_str().unwrap_or("?"),
        );
    }
    let services = a["services"].as_array().map_or(&[][..], |v| v.as_slice());
    if !services.is_empty() {
        out.push_str("services ready to announce (a verdict on every real server, max(quorum, 1) of them healthy):\n");
    }
    let width = services
        .iter()
        .filter_map(|s| s["service"].as_str().map(str::len))
        .max()
        .unwrap_or(0);
    for s in services {
        let state = match (s["announceable"].as_bool(), s["ready"].as_bool()) {
            (Some(false), _) => "never",
            (_, Some(true)) => "ready",
            _ => "NOT READY",
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {state:<9}  {}",
            s["service"].as_str().unwrap_or("?"),
            s["why"].as_str().unwrap_or("?"),
        );
    }
}

/// A server's Health and Reason columns: its health (or, when an administrative state holds,
/// that state: `disabled`, `draining`, `drained`), and the reason: `disabled by admin: kernel
/// patching; health: up`, with `slow start 3/10, 21s left` while it ramps up.
fn server_words(s: &Value) -> (String, String) {
    let health = s["health"].as_str().unwrap_or("?");
    let reason = s["reason"].as_str().unwrap_or("");
    let admin = &s["admin"];
    let mut parts = Vec::new();
    let column = match admin["state"].as_str() {
        Some(state) => {
            let word = match state {
                "drain" if admin["drained"].as_bool() == Some(true) => "drained",
                "drain" => "draining",
                other => other,
            };
            let source = match admin["source"].as_str() {
                Some("operator") => "admin",
                Some("maintenance") => "maintenance file",
                Some(other) => other,
                None => "?",
            };
            let mut text = format!("{word} by {source}");
            if let Some(why) = admin["reason"].as_str().filter(|r| !r.is_empty()) {
                let _ = write!(text, ": {why}");
            }
            if word == "drained" {
                text.push_str(" (out until enabled)");
            }
            let _ = write!(text, "; health: {health}");
            if !reason.is_empty() {
                let _ = write!(text, " ({reason})");
            }
            parts.push(text);
            word.to_string()
        }
        None => {
            if !reason.is_empty() {
                parts.push(reason.to_string());
            }
            if s["draining"].as_bool() == Some(true) {
                "draining".to_string()
            } else {
                health.to_string()
            }
        }
    };
    let ramp = &s["slow_start"];
    if let (Some(step), Some(steps)) = (ramp["step"].as_u64(), ramp["steps"].as_u64()) {
        parts.push(format!(
            "slow start {step}/{steps}, {} left",
            ago(&ramp["remaining_seconds"])
        ));
    }
    (column, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_show_the_administrative_state_beside_health_and_the_ramp() {
        let server = |admin: Value, ramp: Value| {
            serde_json::json!({
                "health": "up", "reason": "", "draining": false,
                "admin": admin, "slow_start": ramp,
            })
        };
        let disabled = serde_json::json!({
            "state": "disabled", "source": "operator", "reason": "kernel patching",
            "drained": false,
        });
        assert_eq!(
            server_words(&server(disabled, Value::Null)),
            (
                "disabled".to_string(),
                "disabled by admin: kernel patching; health: up".to_string()
            )
        );
        let agent = serde_json::json!({
            "state": "drain", "source": "agent", "reason": "", "drained": false,
        });
        assert_eq!(
            server_words(&server(agent, Value::Null)).1,
            "draining by agent; health: up"
        );
        let drained = serde_json::json!({
            "state": "drain", "source": "maintenance", "reason": "/m/10.0.0.2", "drained": true,
        });
        assert_eq!(
            server_words(&server(drained, Value::Null)),
            (
                "drained".to_string(),
                "drained by maintenance file: /m/10.0.0.2 (out until enabled); health: up"
                    .to_string()
            )
        );
        let ramp = serde_json::json!({"step": 3, "steps": 10, "remaining_seconds": 21.4});
        assert_eq!(
            server_words(&server(Value::Null, ramp)),
            ("up".to_string(), "slow start 3/10, 21s left".to_string())
        );
    }

    #[test]
    fn status_text_prints_each_warning_on_its_own_line() {
        let v = serde_json::json!({
            "version": "1", "pid": 1, "config": "/etc/lvs-hc/lvs-hc.toml", "uptime_seconds": 5.0,
            "backend": "netlink", "last_resync_seconds_ago": 0.5,
            "warnings": [
                "52:54:00:12:34:56 answers ARP for VIP 192.168.0.101 on eth0: set arp_ignore=1 \
                 and arp_announce=2 on it, or run `lvs-hc setup realserver`"
            ],
            "services": [],
        });
        let text = render_status(&v);
        assert!(
            text.lines().any(|l| l
                == "warning: 52:54:00:12:34:56 answers ARP for VIP 192.168.0.101 on eth0: set \
                    arp_ignore=1 and arp_announce=2 on it, or run `lvs-hc setup realserver`"),
            "{text}"
        );
    }

    #[test]
    fn status_text_shows_the_directors_role_and_the_sync_daemons_with_their_failure() {
        let v = serde_json::json!({
            "version": "1", "pid": 1, "config": "/etc/lvs-hc/lvs-hc.toml", "uptime_seconds": 5.0,
            "backend": "netlink", "last_resync_seconds_ago": 0.5, "services": [],
            "director": {"role": "standby", "vips": [
                {"address": "192.168.0.101", "held": false, "interface": null}
            ]},
            "sync": {"configured": true, "daemons": [
                {"role": "master", "state": "running", "wanted": "interface eth0, sync id 1",
                 "running": "interface eth0, sync id 1, port 8848", "error": null},
                {"role": "backup", "state": "not running", "wanted": "interface eth9, sync id 1",
                 "running": null, "error": {
                    "command": "ipvsadm --start-daemon backup --mcast-interface eth9 --syncid 1",
                    "error": "no such interface `eth9` for the sync daemon",
                    "attempts": 3, "retry_in_seconds": 2.0}}
            ], "unmanaged": []},
        });
        let text = render_status(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&"director: standby (does not hold 192.168.0.101)"),
            "{text}"
        );
        assert!(
            lines.contains(&"  master  running         interface eth0, sync id 1, port 8848"),
            "{text}"
        );
        assert!(
            lines.contains(&"  backup  NOT RUNNING     [sync] asks for interface eth9, sync id 1"),
            "{text}"
        );
        assert!(
            lines.contains(
                &"          `ipvsadm --start-daemon backup --mcast-interface eth9 --syncid 1` \
                  failed: no such interface `eth9` for the sync daemon (attempt 3, again in 2s)"
            ),
            "{text}"
        );
    }

    #[test]
    fn status_text_shows_each_vip_announced_or_not_and_each_service_ready_or_not_with_why() {
        let v = serde_json::json!({
            "version": "1", "pid": 1, "config": "c", "uptime_seconds": 5.0,
            "backend": "netlink", "last_resync_seconds_ago": 0.5, "services": [],
            "announce": {"configured": true, "table": 100, "protocol": 99, "stalled": false,
                "vips": [
                    {"vip": "10.0.0.1", "announced": true, "why": "1 of 1 services ready"},
                    {"vip": "10.0.0.2", "announced": false,
                     "why": "TCP 10.0.0.2:80 has 1 healthy of 2 (quorum 2)"}
                ],
                "services": [
                    {"service": "TCP 10.0.0.1:80", "ready": true, "announceable": true,
                     "why": "2 healthy of 2 (quorum 1)"},
                    {"service": "TCP 10.0.0.2:80", "ready": false, "announceable": true,
                     "why": "1 healthy of 2 (quorum 2)"},
                    {"service": "FWM 7", "ready": false, "announceable": false,
                     "why": "a firewall-mark service has no address to announce"}
                ]},
        });
        insta::assert_snapshot!(render_announce_only(&v));
        let stalled = serde_json::json!({"configured": true, "table": 100, "protocol": 99,
            "stalled": true, "vips": [], "services": []});
        let mut out = String::new();
        render_announce(&stalled, &mut out);
        assert_eq!(
            out,
            "announced ([announce], table 100 proto 99), ENGINE STALLED: routes withdrawn by \
             the watchdog:\n"
        );
        let mut out = String::new();
        render_announce(&serde_json::json!({"configured": false}), &mut out);
        assert_eq!(out, "");
    }

    fn render_announce_only(v: &Value) -> String {
        let mut out = String::new();
        render_announce(&v["announce"], &mut out);
        assert!(render_status(v).contains(&out));
        out
    }

    #[test]
    fn status_text_says_when_a_director_holds_its_vip_and_names_daemons_it_leaves_alone() {
        let v = serde_json::json!({
            "version": "1", "pid": 1, "config": "c", "uptime_seconds": 5.0,
            "backend": "netlink", "last_resync_seconds_ago": 0.5, "services": [],
            "director": {"role": "active", "vips": [
                {"address": "192.168.0.101", "held": true, "interface": "eth0"}
            ]},
            "sync": {"configured": false, "daemons": [], "unmanaged": [
                {"role": "master", "running": "interface eth1, sync id 3"}
            ]},
        });
        let text = render_status(&v);
        assert!(
            text.contains("director: active (holds 192.168.0.101 on eth0)\n"),
            "{text}"
        );
        assert!(
            text.contains("sync daemon not lvs-hc's: master (interface eth1, sync id 3)\n"),
            "{text}"
        );
        assert!(!text.contains("sync daemons ([sync])"), "{text}");
    }
}
