//! The daemon's HTTP endpoints, on a thread of their own.
//!
//! - The **API** (`[daemon] api`, loopback TCP 127.0.0.1:9101 by default, or a unix socket) is
//!   read-only: `GET /healthz`, `/status`, `/metrics`. Any local user can reach it.
//! - The **control socket** (`[daemon] control`, a unix socket beside the lock file, mode 0600
//!   by default: root only; `control_mode` and `control_group` open it to a group) serves the
//!   same and the commands that change something: `POST /reload`, `POST
//!   /server/drain|disable|enable`. Who is allowed is who can
//!   write to the socket file; the peer's uid and pid are logged with every command.
//!
//! Neither can starve the daemon: each endpoint takes at most [`MAX_API_CONNECTIONS`] (or
//! [`MAX_CONTROL_CONNECTIONS`]) connections at once and leaves the rest waiting in the kernel's
//! backlog; a request's headers must arrive within [`HEADER_TIMEOUT`], which is also the
//! longest a kept-alive connection may sit idle between requests; a connection lives at most
//! [`CONNECTION_LIFETIME`]; request heads are bounded by [`MAX_REQUEST_HEAD`]; at most
//! [`MAX_HEAVY`] `/status` or `/metrics` answers are built at once, from a copy of the engine
//! taken at most once a second, on threads other than the engine's, which run at the lowest
//! priority (nice 19) so that on a busy core the answers wait and the probes do not.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use lvs_hc_core::config::ApiListen;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, Semaphore};

use super::{admin, arpwatch, health, metrics, Handle};

/// Connections the read-only API serves at once.
pub const MAX_API_CONNECTIONS: usize = 64;
/// Connections the control socket serves at once.
pub const MAX_CONTROL_CONNECTIONS: usize = 16;
/// How long a client may take to send a request's head, and stay idle between requests.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection is served, however busy.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The largest request head read (hyper's smallest buffer).
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// `/status` and `/metrics` answers built at once; more wait their turn.
pub const MAX_HEAVY: usize = 2;
/// The API thread's nice value: the lowest priority, so that answering it never delays a
/// probe on a busy core.
const API_NICE: libc::c_int = 19;
/// The mode of a unix socket for the read-only API: like loopback TCP, any local user.
const API_SOCKET_MODE: u32 = 0o666;

/// Why the API or the control socket could not be set up. The daemon does not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The API's address is taken (another lvs-hc, or another program) or not this machine's:
    /// set another in `[daemon] api`, or switch the API off with `--api off`.
    #[error("cannot listen on {addr} for the API (in use? set [daemon] api, or --api off)")]
    ApiAddress {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// A socket path names no directory (`/`): give the socket's whole path.
    #[error("{} has no directory", path.display())]
    NoDirectory {
        /// The socket path.
        path: PathBuf,
    },
    /// A socket path names no file (it ends in `..`): give the socket's whole path.
    #[error("{} has no file name", path.display())]
    NoFileName {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket's directory could not be created: run as root, or choose another path.
    #[error("cannot create {}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// What is at a socket path could not be looked at: check the directory's permissions.
    #[error("cannot look at {}", path.display())]
    Inspect {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process listens on the socket path: is another lvs-hc running with it? Give
    /// this one its own (`[daemon] control`, `api`).
    #[error(
        "another process listens on {}: is another lvs-hc running with this socket? Give this \
         one its own ([daemon] control / api)",
        path.display()
    )]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket is at the socket path: remove it or choose another path.
    #[error(
        "{} exists and is {kind}: lvs-hc replaces only a socket (one left by an earlier run); \
         remove it or choose another path",
        path.display()
    )]
    NotASocket {
        /// The socket path.
        path: PathBuf,
        /// What is there: `a regular file`, `a directory`, ...
        kind: &'static str,
    },
    /// A socket left by an earlier run could not be removed: check the directory's permissions.
    #[error("cannot remove the stale socket {}", path.display())]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The socket could not be bound (under its temporary name): check the directory's
    /// permissions.
    #[error("cannot listen on {}", path.display())]
    Bind {
        /// The temporary path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The socket's mode could not be set.
    #[error("cannot set the mode of {}", path.display())]
    Mode {
        /// The temporary path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The socket could not be given to `control_group`: lvs-hc needs root (CAP_CHOWN) for that.
    #[error("cannot give {} to group {gid}", path.display())]
    Group {
        /// The temporary path.
        path: PathBuf,
        /// The group's id.
        gid: u32,
        /// What the OS said.
        source: io::Error,
    },
    /// The socket could not be moved from its temporary name into place.
    #[error("cannot move {} to {}", from.display(), to.display())]
    Rename {
        /// The temporary path.
        from: PathBuf,
        /// The socket path.
        to: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A listening socket could not be made non-blocking.
    #[error(transparent)]
    Nonblocking(io::Error),
    /// `control_group` holds a NUL byte (the configuration's rules keep it from doing so).
    #[error("a group name without NUL")]
    GroupName(#[source] std::ffi::NulError),
    /// `control_group` names no group of this machine: create it, or give another.
    #[error("control_group: no group named `{group}` on this machine")]
    NoSuchGroup {
        /// The name given.
        group: String,
    },
    /// The API's thread or its runtime could not start: the machine is out of threads,
    /// memory or descriptors.
    #[error("starting the API's {what}")]
    Start {
        /// `runtime` or `thread`.
        what: &'static str,
        /// What the OS said.
        source: io::Error,
    },
}

/// What an endpoint lets its clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read: `/healthz`, `/status`, `/metrics`.
    ReadOnly,
    /// Read and command: also `POST /reload` and `POST /server/drain|disable|enable`.
    Control,
}

/// A bound endpoint, not yet served.
pub struct Endpoint {
    listener: Listener,
    access: Access,
    /// `http://127.0.0.1:9101` or `unix:/run/lvs-hc/lvs-hc.sock`, for logs.
    name: String,
    /// The socket file to remove when the daemon ends.
    socket: Option<PathBuf>,
}

enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Binds the read-only API; `None` when it is off. A TCP address that is not loopback is
/// allowed but warned about: every host that reaches it can read the status.
pub fn bind_api(listen: &ApiListen) -> Result<Option<Endpoint>, ApiError> {
    match listen {
        ApiListen::Off => Ok(None),
        ApiListen::Tcp(addr) => {
            let listener =
                std::net::TcpListener::bind(addr).map_err(|source| ApiError::ApiAddress {
                    addr: *addr,
                    source,
                })?;
            listener
                .set_nonblocking(true)
                .map_err(ApiError::Nonblocking)?;
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "the API listens on {addr}, which is not a loopback address: every host \
                     that can reach it can read the status and metrics (it takes no commands; \
                     those are on the control socket)"
                );
            }
            Ok(Some(Endpoint {
                listener: Listener::Tcp(listener),
                access: Access::ReadOnly,
                name: format!("http://{addr}"),
                socket: None,
            }))
        }
        ApiListen::Unix(path) => {
            let listener = bind_unix(path, API_SOCKET_MODE, None)?;
            Ok(Some(Endpoint {
                listener: Listener::Unix(listener),
                access: Access::ReadOnly,
                name: format!("unix:{}", path.display()),
                socket: Some(path.clone()),
            }))
        }
    }
}

/// Binds the control socket at `path` with `mode`, owned by `group` when given.
pub fn bind_control(path: &Path, mode: u32, group: Option<&str>) -> Result<Endpoint, ApiError> {
    let gid = group.map(group_id).transpose()?;
    let listener = bind_unix(path, mode, gid)?;
    Ok(Endpoint {
        listener: Listener::Unix(listener),
        access: Access::Control,
        name: format!("unix:{}", path.display()),
        socket: Some(path.to_path_buf()),
    })
}

/// Binds a unix socket at `path` with exactly `mode` (and group `gid`) from the first moment
/// clients can reach it: bound under a temporary name in the same directory, given its mode,
/// then renamed into place. Something already at `path` is replaced only if it is a socket
/// that no one listens on (a stale one); anything else is an error.
fn bind_unix(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<std::os::unix::net::UnixListener, ApiError> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| ApiError::NoDirectory {
            path: path.to_path_buf(),
        })?;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| ApiError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
    }
    let stale = |p: &Path| -> Result<(), ApiError> {
        let path = p.to_path_buf();
        match std::fs::symlink_metadata(p) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ApiError::Inspect { path, source }),
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(p).is_ok() {
                    return Err(ApiError::InUse { path });
                }
                std::fs::remove_file(p).map_err(|source| ApiError::RemoveStale { path, source })
            }
            Ok(meta) => Err(ApiError::NotASocket {
                path,
                kind: crate::load::file_kind(&meta.file_type()),
            }),
        }
    };
    stale(path)?;
    let name = path.file_name().ok_or_else(|| ApiError::NoFileName {
        path: path.to_path_buf(),
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    stale(&tmp)?;
    let listener =
        std::os::unix::net::UnixListener::bind(&tmp).map_err(|source| ApiError::Bind {
            path: tmp.clone(),
            source,
        })?;
    let placed = (|| -> Result<(), ApiError> {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(
            |source| ApiError::Mode {
                path: tmp.clone(),
                source,
            },
        )?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid)).map_err(|source| ApiError::Group {
                path: tmp.clone(),
                gid,
                source,
            })?;
        }
        stale(path)?;
        std::fs::rename(&tmp, path).map_err(|source| ApiError::Rename {
            from: tmp.clone(),
            to: path.to_path_buf(),
            source,
        })
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    listener
        .set_nonblocking(true)
        .map_err(ApiError::Nonblocking)?;
    Ok(listener)
}

/// A group's id from its name or number.
fn group_id(group: &str) -> Result<u32, ApiError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).map_err(ApiError::GroupName)?;
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: getgrnam_r writes into `grp` and `buf`, both ours and sized as passed.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return Err(ApiError::NoSuchGroup {
            group: group.to_string(),
        });
    }
    Ok(grp.gr_gid)
}

/// The thread serving the endpoints; stopping it (dropping it) removes their socket files.
pub struct ApiThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    sockets: Vec<PathBuf>,
}

impl Drop for ApiThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for path in &self.sockets {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves `endpoints` on a thread of their own until the returned [`ApiThread`] is dropped.
pub fn spawn(endpoints: Vec<Endpoint>, handle: Handle) -> Result<ApiThread, ApiError> {
    let sockets = endpoints.iter().filter_map(|e| e.socket.clone()).collect();
    let (stop_tx, stop_rx) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_HEAVY + 2)
        .build()
        .map_err(|source| ApiError::Start {
            what: "runtime",
            source,
        })?;
    let thread = std::thread::Builder::new()
        .name("lvs-hc-api".into())
        .spawn(move || {
            // The probes come first: on a busy core the API's answers wait, the probes do not.
            // (Threads of the API's blocking pool are started from here and inherit this.)
            // SAFETY: setpriority(2) on this thread's own id; no memory is involved.
            unsafe {
                let tid = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, API_NICE);
            }
            runtime.block_on(async move {
                let heavy = Arc::new(Semaphore::new(MAX_HEAVY));
                for endpoint in endpoints {
                    tracing::info!(
                        "{} listening on {} ({})",
                        match endpoint.access {
                            Access::ReadOnly => "API",
                            Access::Control => "control socket",
                        },
                        endpoint.name,
                        match endpoint.access {
                            Access::ReadOnly => "GET /status, /metrics, /healthz",
                            Access::Control =>
                                "the API, POST /reload and /server/drain|disable|enable",
                        }
                    );
                    tokio::spawn(serve(endpoint, handle.clone(), heavy.clone()));
                }
                let _ = stop_rx.await;
            });
            runtime.shutdown_timeout(Duration::from_millis(200));
        })
        .map_err(|source| ApiError::Start {
            what: "thread",
            source,
        })?;
    Ok(ApiThread {
        stop: Some(stop_tx),
        thread: Some(thread),
        sockets,
    })
}

/// Accepts connections while fewer than the endpoint's limit are open.
async fn serve(endpoint: Endpoint, handle: Handle, heavy: Arc<Semaphore>) {
    let limit = match endpoint.access {
        Access::ReadOnly => MAX_API_CONNECTIONS,
        Access::Control => MAX_CONTROL_CONNECTIONS,
    };
    let slots = Arc::new(Semaphore::new(limit));
    let access = endpoint.access;
    let listener = match endpoint.listener {
        Listener::Tcp(l) => tokio::net::TcpListener::from_std(l).map(Either::Tcp),
        Listener::Unix(l) => tokio::net::UnixListener::from_std(l).map(Either::Unix),
    };
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot serve {}: {e}", endpoint.name);
            return;
        }
    };
    let mut full_since: Option<std::time::Instant> = None;
    loop {
        // At the limit, connections wait in the kernel's backlog, holding none of our
        // descriptors, until one ends.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => {
                full_since = None;
                s
            }
            Err(_) => {
                if full_since.is_none() {
                    full_since = Some(std::time::Instant::now());
                    tracing::warn!(
                        "{} has {limit} connections open, its most; more wait until one ends \
                         (idle ones end after {}s)",
                        endpoint.name,
                        HEADER_TIMEOUT.as_secs()
                    );
                }
                match slots.clone().acquire_owned().await {
                    Ok(s) => s,
                    Err(_) => return,
                }
            }
        };
        let accepted = match &listener {
            Either::Tcp(l) => l.accept().await.map(|(s, _)| (Either::Tcp(s), None)),
            Either::Unix(l) => l.accept().await.map(|(s, _)| {
                let peer = s.peer_cred().ok().map(|c| (c.uid(), c.pid()));
                (Either::Unix(s), peer)
            }),
        };
        match accepted {
            Ok((Either::Tcp(s), _)) => {
                tokio::spawn(connection(
                    s,
                    handle.clone(),
                    access,
                    None,
                    heavy.clone(),
                    slot,
                ));
            }
            Ok((Either::Unix(s), peer)) => {
                tokio::spawn(connection(
                    s,
                    handle.clone(),
                    access,
                    peer,
                    heavy.clone(),
                    slot,
                ));
            }
            Err(e) => {
                // Out of descriptors, most likely: the probes report that themselves; wait a
                // little rather than spin.
                tracing::warn!("{}: accept failed: {e}", endpoint.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

enum Either<T, U> {
    Tcp(T),
    Unix(U),
}

/// Who is on the other end of a unix socket: uid and pid.
type Peer = Option<(u32, Option<i32>)>;

async fn connection<S>(
    stream: S,
    handle: Handle,
    access: Access,
    peer: Peer,
    heavy: Arc<Semaphore>,
    _slot: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let handle = handle.clone();
        let heavy = heavy.clone();
        async move { Ok::<_, Infallible>(respond(req, &handle, access, peer, &heavy).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("API connection ended: {e}"),
        Err(_) => tracing::debug!(
            "API connection closed after {}s",
            CONNECTION_LIFETIME.as_secs()
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .expect("a valid response")
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn respond(
    req: Request<Incoming>,
    handle: &Handle,
    access: Access,
    peer: Peer,
    heavy: &Semaphore,
) -> Response<Full<Bytes>> {
    if let Some(word) = req.uri().path().strip_prefix("/server/") {
        let word = word.to_string();
        return server_command(req, &word, handle, access, peer).await;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => match health(handle).await {
            Ok(()) => reply(StatusCode::OK, TEXT, "ok\n"),
            Err(reason) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{reason}\n")),
        },
        (&Method::GET, "/status") => {
            let Ok(_turn) = heavy.acquire().await else {
                return stuck();
            };
            let Some(view) = handle.view().await else {
                return stuck();
            };
            let top = status_head(handle);
            match tokio::task::spawn_blocking(move || view.status_json(top)).await {
                Ok(text) => reply(StatusCode::OK, "application/json", text),
                Err(_) => stuck(),
            }
        }
        (&Method::GET, "/metrics") => {
            let Ok(_turn) = heavy.acquire().await else {
                return stuck();
            };
            let Some(view) = handle.view().await else {
                return stuck();
            };
            let mut head = String::new();
            {
                let state = handle.state();
                state.metrics.render(&mut head);
                metrics::render_config_error(state.config_error.is_some(), &mut head);
                arpwatch::render_metrics(&state.arp_conflicts, &mut head);
                if let Some(dog) = &state.announce_watchdog {
                    metrics::render_announce_stalled(dog.stalled(), dog.stalls(), &mut head);
                }
            }
            let text = tokio::task::spawn_blocking(move || {
                let mut out = head;
                view.render_metrics(&mut out);
                out
            })
            .await;
            match text {
                Ok(text) => reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                ),
                Err(_) => stuck(),
            }
        }
        (&Method::POST, "/reload") if access == Access::Control => {
            match handle.reload_off_loop(peer_words(peer)).await {
                Ok(summary) => reply(StatusCode::OK, TEXT, format!("{summary}\n")),
                Err(error) => reply(StatusCode::UNPROCESSABLE_ENTITY, TEXT, format!("{error}\n")),
            }
        }
        (&Method::POST, "/reload") => control_only(
            handle,
            "lvs-hc reload",
            ", or by SIGHUP",
            "; reload with SIGHUP",
        ),
        (_, "/healthz" | "/status" | "/metrics" | "/reload") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "GET /healthz, /status, /metrics; POST /reload, /server/drain|disable|enable\n",
        ),
        _ => not_found(),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    reply(
        StatusCode::NOT_FOUND,
        TEXT,
        "lvs-hc API: GET /healthz, /status, /metrics; POST /reload, \
         /server/drain|disable|enable (control socket)\n",
    )
}

/// `control socket, uid 0, pid 1234`: who sent a command, for the log.
fn peer_words(peer: Peer) -> String {
    match peer {
        Some((uid, Some(pid))) => format!("control socket, uid {uid}, pid {pid}"),
        Some((uid, None)) => format!("control socket, uid {uid}"),
        None => "control socket".to_string(),
    }
}

/// 403 for a command sent to the read-only API: where commands go instead. `also` follows
/// the control socket's path (`, or by SIGHUP`); `when_off` follows the news that it is off
/// (`; reload with SIGHUP`).
fn control_only(
    handle: &Handle,
    command: &str,
    also: &str,
    when_off: &str,
) -> Response<Full<Bytes>> {
    let control = handle.state().control_socket.clone();
    let hint = match control {
        Some(p) => format!(
            "commands are taken only on the control socket {} (`{command}`, as a user allowed \
             to write to it){also}",
            p.display(),
        ),
        None => format!(
            "commands are taken only on the control socket, which is off ([daemon] \
             control){when_off}"
        ),
    };
    reply(StatusCode::FORBIDDEN, TEXT, format!("{hint}\n"))
}

/// How long a command's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// `POST /server/drain|disable|enable` with `{address, service?, all?, reason?, timeout?}`
/// (see [`admin::AdminRequest`]): on the control socket only.
async fn server_command(
    req: Request<Incoming>,
    word: &str,
    handle: &Handle,
    access: Access,
    peer: Peer,
) -> Response<Full<Bytes>> {
    use http_body_util::BodyExt;
    let Some(state) = admin::command_of(word) else {
        return not_found();
    };
    if *req.method() != Method::POST {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "POST /server/drain|disable|enable\n",
        );
    }
    if access != Access::Control {
        return control_only(handle, &format!("lvs-hc server {word}"), "", "");
    }
    let body = http_body_util::Limited::new(req.into_body(), admin::MAX_REQUEST_BODY).collect();
    let body = match tokio::time::timeout(BODY_TIMEOUT, body).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            return reply(
                StatusCode::BAD_REQUEST,
                TEXT,
                format!(
                    "reading the request: {e} (at most {} bytes)\n",
                    admin::MAX_REQUEST_BODY
                ),
            )
        }
        Err(_) => {
            return reply(
                StatusCode::REQUEST_TIMEOUT,
                TEXT,
                format!(
                    "the request's body did not arrive within {}s\n",
                    BODY_TIMEOUT.as_secs()
                ),
            )
        }
    };
    let request = match admin::AdminRequest::from_json(state, &body) {
        Ok(r) => r,
        Err(e) => {
            handle
                .state()
                .metrics
                .admin_command(admin::command_name(state), false);
            return reply(StatusCode::BAD_REQUEST, TEXT, format!("{e}\n"));
        }
    };
    match handle.admin_command(request, &peer_words(peer)).await {
        Ok(text) => reply(StatusCode::OK, TEXT, text),
        Err(refusal) => reply(
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            TEXT,
            format!("{}\n", refusal.message),
        ),
    }
}

/// The daemon's own fields of `/status`.
fn status_head(handle: &Handle) -> serde_json::Map<String, serde_json::Value> {
    let state = handle.state();
    let head = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "config": state.config_path.display().to_string(),
        "config_error": state.config_error,
        "config_loaded_seconds_ago": state.config_loaded.elapsed().unwrap_or_default().as_secs_f64(),
        "backend": state.backend,
        "dry_run": state.dry_run,
        "uptime_seconds": state.started.elapsed().unwrap_or_default().as_secs_f64(),
        "last_resync_seconds_ago": state.last_snapshot_ok.map(|t| t.elapsed().as_secs_f64()),
        "last_resync_error": state.last_snapshot_error,
        "control_socket": state.control_socket.as_ref().map(|p| p.display().to_string()),
        "fd_limit": state.fd_limit,
        "warnings": state.arp_conflicts.iter().map(|c| c.warning()).collect::<Vec<_>>(),
    });
    match head {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("an object"),
    }
}

fn stuck() -> Response<Full<Bytes>> {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        TEXT,
        "the main loop did not answer in time\n",
    )
}
