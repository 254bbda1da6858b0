//! The local HTTP API: `/status` (JSON), `/metrics` (Prometheus text), `/healthz`, and
//! `POST /reload`. Listens on TCP (127.0.0.1:9101 by default) or a unix socket.

use std::convert::Infallible;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lvs_hc_core::config::ApiListen;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{health, metrics, status, Handle};

/// Removes the unix socket when the daemon ends.
pub struct ApiGuard {
    socket: Option<PathBuf>,
}

impl Drop for ApiGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.socket {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds the API and serves it in the background.
pub async fn start(listen: &ApiListen, handle: Handle) -> anyhow::Result<ApiGuard> {
    match listen {
        ApiListen::Off => Ok(ApiGuard { socket: None }),
        ApiListen::Tcp(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                format!(
                    "cannot listen on {addr} for the API (in use? set [daemon] api, or --api off)"
                )
            })?;
            tracing::info!("API listening on http://{addr} (/status, /metrics, /healthz)");
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => serve_connection(stream, handle.clone()),
                        Err(e) => {
                            tracing::warn!("API accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            Ok(ApiGuard { socket: None })
        }
        ApiListen::Unix(path) => {
            // We hold the instance lock, so a socket file left here is a stale one.
            if std::fs::symlink_metadata(path).is_ok() {
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let listener = tokio::net::UnixListener::bind(path)
                .with_context(|| format!("cannot listen on {} for the API", path.display()))?;
            tracing::info!("API listening on unix:{}", path.display());
            tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => serve_connection(stream, handle.clone()),
                        Err(e) => {
                            tracing::warn!("API accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            Ok(ApiGuard {
                socket: Some(path.clone()),
            })
        }
    }
}

fn serve_connection<S>(stream: S, handle: Handle)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |req| {
            let handle = handle.clone();
            async move { Ok::<_, Infallible>(respond(req, &handle).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        if let Err(e) = conn.await {
            tracing::debug!("API connection ended: {e}");
        }
    });
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn respond(req: Request<Incoming>, handle: &Handle) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => match health(handle).await {
            Ok(()) => reply(StatusCode::OK, TEXT, "ok\n"),
            Err(reason) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{reason}\n")),
        },
        (&Method::GET, "/status") => match handle.ask(status::engine_status).await {
            Some(mut body) => {
                let shared = handle.shared();
                let started = shared.started;
                let extra = json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "pid": std::process::id(),
                    "config": shared.config_path.display().to_string(),
                    "config_error": shared.config_error,
                    "config_loaded_seconds_ago": shared.config_loaded.elapsed().unwrap_or_default().as_secs_f64(),
                    "backend": shared.backend,
                    "dry_run": shared.dry_run,
                    "uptime_seconds": started.elapsed().unwrap_or_default().as_secs_f64(),
                    "last_resync_seconds_ago": shared.last_snapshot_ok.map(|t| t.elapsed().as_secs_f64()),
                    "last_resync_error": shared.last_snapshot_error,
                });
                drop(shared);
                if let (Some(obj), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                    for (k, v) in extra {
                        obj.insert(k.clone(), v.clone());
                    }
                }
                let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
                text.push('\n');
                reply(StatusCode::OK, "application/json", text)
            }
            None => stuck(),
        },
        (&Method::GET, "/metrics") => {
            let servers = handle
                .ask(|engine| {
                    let mut out = String::new();
                    metrics::render_servers(engine, &mut out);
                    out
                })
                .await;
            match servers {
                Some(servers) => {
                    let mut out = String::new();
                    handle.shared().metrics.render(&mut out);
                    out.push_str(&servers);
                    let _ = std::fmt::Write::write_fmt(
                        &mut out,
                        format_args!(
                            "# HELP lvs_hc_config_error Whether the last reload was refused (the previous configuration runs).\n# TYPE lvs_hc_config_error gauge\nlvs_hc_config_error {}\n",
                            u8::from(handle.shared().config_error.is_some())
                        ),
                    );
                    reply(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        out,
                    )
                }
                None => stuck(),
            }
        }
        (&Method::POST, "/reload") => match handle.reload("API request") {
            Ok(summary) => reply(StatusCode::OK, TEXT, format!("{summary}\n")),
            Err(error) => reply(StatusCode::UNPROCESSABLE_ENTITY, TEXT, format!("{error}\n")),
        },
        (_, "/healthz" | "/status" | "/metrics" | "/reload") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "GET /healthz, /status, /metrics; POST /reload\n",
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "lvs-hc API: GET /healthz, /status, /metrics; POST /reload\n",
        ),
    }
}

fn stuck() -> Response<Full<Bytes>> {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        TEXT,
        "the main loop did not answer in time\n",
    )
}
