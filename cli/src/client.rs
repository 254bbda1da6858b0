//! `lvs-hc status` and `lvs-hc reload`: clients of the running daemon's HTTP API.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use lvs_hc_core::config::ApiListen;
use lvs_hc_core::time::format_duration;
use serde_json::Value;

use crate::cli::ApiArgs;

/// The configuration `status` and `reload` read the API address from when given neither
/// `--api` nor `--config`.
pub const DEFAULT_CONFIG: &str = "/etc/lvs-hc/lvs-hc.toml";

/// Where the daemon's API is: `--api`, else `[daemon] api` of `--config` (or of
/// [`DEFAULT_CONFIG`] when it exists), else 127.0.0.1:9101.
pub fn resolve_api(args: &ApiArgs) -> anyhow::Result<ApiListen> {
    let listen = if let Some(text) = &args.api {
        ApiListen::parse(text).map_err(|e| anyhow::anyhow!("--api: {e}"))?
    } else if let Some(path) = &args.config {
        crate::load_config(path)?.daemon.api
    } else if Path::new(DEFAULT_CONFIG).exists() {
        crate::load_config(Path::new(DEFAULT_CONFIG))?.daemon.api
    } else {
        lvs_hc_core::config::DaemonSettings::default().api
    };
    if listen == ApiListen::Off {
        anyhow::bail!(
            "the daemon's API is switched off ([daemon] api = \"off\"); `lvs-hc status` and \
             `lvs-hc reload` need it (send SIGHUP to reload instead)"
        );
    }
    Ok(listen)
}

/// Sends one request to the API; returns status and body.
fn request(
    listen: &ApiListen,
    method: reqwest::Method,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy();
        let (client, url) = match listen {
            ApiListen::Tcp(addr) => (builder.build()?, format!("http://{addr}{path}")),
            ApiListen::Unix(sock) => (
                builder.unix_socket(sock.as_path()).build()?,
                format!("http://localhost{path}"),
            ),
            ApiListen::Off => unreachable!("resolve_api refuses off"),
        };
        let response = client.request(method, &url).send().await.map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            anyhow::anyhow!(
                "cannot reach lvs-hc at {listen}{cause} (is `lvs-hc run` running? does \
                     [daemon] api match?)"
            )
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.context("reading the answer")?;
        Ok((status, body))
    })
}

/// `lvs-hc reload`.
pub fn reload(api: &ApiArgs) -> anyhow::Result<ExitCode> {
    let listen = resolve_api(api)?;
    let (status, body) = request(&listen, reqwest::Method::POST, "/reload")?;
    match status {
        200 => {
            print!("{body}");
            Ok(ExitCode::SUCCESS)
        }
        422 => {
            eprint!("reload refused; the running configuration stays in force:\n{body}");
            Ok(ExitCode::FAILURE)
        }
        other => anyhow::bail!("lvs-hc answered {other}: {}", body.trim()),
    }
}

/// `lvs-hc status`.
pub fn status(api: &ApiArgs, json: bool) -> anyhow::Result<ExitCode> {
    let listen = resolve_api(api)?;
    let (code, body) = request(&listen, reqwest::Method::GET, "/status")?;
    if code != 200 {
        anyhow::bail!("lvs-hc answered {code}: {}", body.trim());
    }
    if json {
        print!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let value: Value = serde_json::from_str(&body).context("the daemon's /status is not JSON")?;
    print!("{}", render_status(&value));
    Ok(ExitCode::SUCCESS)
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
            let mut health = s["health"].as_str().unwrap_or("?").to_string();
            if s["draining"].as_bool() == Some(true) {
                health = "draining".to_string();
            }
            let _ = writeln!(
                out,
                "  -> {addr:<28} {:<7} {:<6} {:<10} {:<9} {health:<7} {:<8} {}",
                s["forward"].as_str().unwrap_or("-"),
                num(&s["kernel_weight"]),
                num(&s["active_conns"]),
                num(&s["inactive_conns"]),
                ago(&s["since_seconds_ago"]),
                s["reason"].as_str().unwrap_or(""),
            );
        }
    }
    out
}
