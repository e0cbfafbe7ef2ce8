//! `serve start`: smolvm 1.9.2's HTTP API (`smolvm serve start`) for the
//! routes a bottle uses, over the stand-in's own machines, so one machine
//! can be driven through the CLI and the API at once. See README.md
//! ("serve") for what it reproduces and where it differs.
//!
//! Layout as in smolvm: `/health`, then under `/api/v1/machines` the
//! lifecycle, exec, file and interactive routes. Every route except the
//! interactive WebSocket runs under a request timeout (smolvm's
//! `API_REQUEST_TIMEOUT_SECS`, 300 s: a bare 408 when it expires);
//! `SMOLVM_STANDIN_API_TIMEOUT_SECS` overrides it so tests need not wait
//! five minutes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::timeout::TimeoutLayer;

use crate::cli::ServeStartArgs;
use crate::error::{Error, Result};
use crate::machine::{State as MachineState, Store};
use crate::serve_guest::Guests;
use crate::{serve_exec, serve_files, serve_machines, serve_tls};

/// How often stale guests are looked for (serve_guest.rs).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// smolvm's `API_REQUEST_TIMEOUT_SECS`.
const REQUEST_TIMEOUT_SECS: u64 = 300;
const TIMEOUT_VAR: &str = "SMOLVM_STANDIN_API_TIMEOUT_SECS";
/// smolvm's `MAX_FILE_UPLOAD_BYTES`: the body limit of the upload route
/// (other routes keep axum's 2 MiB default, as in smolvm).
const MAX_FILE_UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// What `/health` reports as the server version.
const VERSION: &str = "1.9.0-standin";

/// The serve's view of the machines, as smolvm's serve has it: the machine
/// records are the stand-in's store (smolvm's database), but exec, file and
/// interactive routes answer only for machines in `known` (smolvm's
/// in-memory registry). It is filled at startup from the store and by
/// create and start; a machine the CLI creates later is unknown to those
/// routes until `POST .../start` adopts it.
pub struct ApiState {
    known: Mutex<HashSet<String>>,
    started: Instant,
    /// The running machines' guests (serve_guest.rs).
    pub guests: Guests,
}

impl ApiState {
    pub fn knows(&self, name: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    pub fn adopt(&self, name: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
    }

    pub fn forget(&self, name: &str) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// smolvm's `state.get_machine`: the registry lookup the exec, file and
    /// interactive routes start with.
    pub fn registered(&self, name: &str) -> std::result::Result<(), ApiError> {
        if self.knows(name) {
            Ok(())
        } else {
            Err(ApiError::NotFound(format!("machine '{name}' not found")))
        }
    }
}

pub type Shared = Arc<ApiState>;

/// smolvm's `ApiError`: a status and a JSON body `{"error", "code"}`.
#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    Conflict(String),
    BadRequest(String),
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
    code: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, error) = match self {
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "NOT_FOUND", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "CONFLICT", m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "BAD_REQUEST", m),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", m),
        };
        (status, Json(ErrorBody { error, code })).into_response()
    }
}

/// smolvm's `Error::Agent` display: how failures reported by (or on the way
/// to) the guest agent read in a 500 body.
pub fn agent_failure(operation: &str, reason: &str) -> ApiError {
    ApiError::Internal(format!("agent operation failed: {operation}: {reason}"))
}

/// Runs blocking work (the store, the guest's agent connection) off the
/// async workers, as smolvm's handlers do with `spawn_blocking`.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("task failed: {e}")))?
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    machines: Option<Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uptime_seconds: Option<u64>,
}

#[derive(Serialize)]
struct Counts {
    total: usize,
    running: usize,
}

async fn health(State(state): State<Shared>) -> Json<Health> {
    let machines = blocking(|| {
        let all = Store::open()
            .and_then(|s| s.list())
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Counts {
            total: all.len(),
            running: all
                .iter()
                .filter(|m| m.state == MachineState::Running)
                .count(),
        })
    })
    .await
    .ok();
    Json(Health {
        status: "ok",
        version: VERSION,
        machines,
        uptime_seconds: Some(state.started.elapsed().as_secs()),
    })
}

fn request_timeout() -> Result<Duration> {
    match std::env::var(TIMEOUT_VAR) {
        Ok(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                Error::new(format!(
                    "invalid {TIMEOUT_VAR} '{text}': expected a whole number of seconds"
                ))
            }),
        Err(_) => Ok(Duration::from_secs(REQUEST_TIMEOUT_SECS)),
    }
}

fn router(state: Shared, timeout: Duration) -> Router {
    // Outlives the request timeout, as in smolvm.
    let interactive =
        Router::new().route("/{id}/exec/interactive", get(serve_exec::exec_interactive));
    let timed = Router::new()
        .route("/", post(serve_machines::create).get(serve_machines::list))
        .route(
            "/{id}",
            get(serve_machines::get).delete(serve_machines::delete),
        )
        .route("/{id}/start", post(serve_machines::start))
        .route("/{id}/stop", post(serve_machines::stop))
        .route("/{id}/exec", post(serve_exec::exec))
        .route("/{id}/exec/stream", post(serve_exec::exec_stream))
        .route(
            "/{id}/files/{*path}",
            put(serve_files::upload)
                .layer(DefaultBodyLimit::max(MAX_FILE_UPLOAD_BYTES))
                .get(serve_files::download),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    Router::new()
        .route("/health", get(health))
        .nest("/api/v1/machines", interactive.merge(timed))
        .with_state(state)
}

enum ListenTarget {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// smolvm's startup failures read `config operation failed: OPERATION: REASON`.
fn config_error(operation: &str, reason: impl std::fmt::Display) -> Error {
    Error::new(format!("config operation failed: {operation}: {reason}"))
}

impl ListenTarget {
    /// smolvm's rules: an `ADDR:PORT`, else a path (with or without
    /// `unix://`); something with a `:` that is neither is an error.
    fn parse(value: &str) -> Result<ListenTarget> {
        if let Ok(addr) = value.parse::<SocketAddr>() {
            return Ok(ListenTarget::Tcp(addr));
        }
        if !value.starts_with("unix://") && !value.starts_with('/') && value.contains(':') {
            return Err(config_error(
                "parse listen address",
                format!("invalid address '{value}': expected a valid ADDR:PORT or a unix:// path"),
            ));
        }
        let path = value.strip_prefix("unix://").unwrap_or(value);
        Ok(ListenTarget::Unix(PathBuf::from(path)))
    }
}

/// smolvm's default listen value: `$XDG_RUNTIME_DIR/smolvm.sock`, else
/// `/tmp/smolvm.sock`.
pub fn default_listen() -> String {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    format!("unix://{}", dir.join("smolvm.sock").display())
}

pub fn run(args: ServeStartArgs) -> Result<i32> {
    let target = ListenTarget::parse(&args.listen)?;
    let timeout = request_timeout()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::new(format!("tokio runtime: {e}")))?;
    let code = runtime.block_on(serve(target, timeout));
    // Requests still running (an exec past its 408, a streaming exec whose
    // client left) are not waited for: their guests are gone already.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn io(e: std::io::Error) -> Error {
    Error::new(e.to_string())
}

async fn serve(target: ListenTarget, timeout: Duration) -> Result<i32> {
    if let ListenTarget::Tcp(addr) = &target {
        if addr.ip().is_unspecified() {
            eprintln!(
                "WARNING: Server is listening on all interfaces ({}).",
                addr.ip()
            );
            eprintln!("         The API has no authentication - any network client can control this host.");
            eprintln!("         Consider using the default Unix socket or --listen 127.0.0.1:8080 for local-only access.");
        }
    }
    // smolvm's registry starts as every recorded machine.
    let known: Vec<String> = Store::open()?.list()?.into_iter().map(|m| m.name).collect();
    if !known.is_empty() {
        println!(
            "Reconnected to {} existing machine(es): {}",
            known.len(),
            known.join(", ")
        );
    }
    let state = Arc::new(ApiState {
        known: Mutex::new(known.into_iter().collect()),
        started: Instant::now(),
        guests: Guests::default(),
    });
    let tls = serve_tls::resolve().map_err(|e| config_error("serve tls", e))?;
    let sweeper = tokio::spawn(sweep(state.clone()));
    let served = listen(target, tls, state.clone(), timeout).await;
    // Unlike smolvm's VMs, the guests are the serve's processes: they end
    // with it.
    sweeper.abort();
    let _ = tokio::task::spawn_blocking(move || state.guests.end_all()).await;
    served.map(|()| 0)
}

/// Ends stale guests every `SWEEP_INTERVAL`, until aborted.
async fn sweep(state: Shared) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        interval.tick().await;
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || state.guests.sweep()).await;
    }
}

async fn listen(
    target: ListenTarget,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Shared,
    timeout: Duration,
) -> Result<()> {
    match target {
        ListenTarget::Tcp(addr) => match tls {
            Some(config) => serve_tls(addr, state, timeout, config).await?,
            None => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
                println!("smolvm API server listening on http://{addr}");
                axum::serve(listener, router(state, timeout))
                    .with_graceful_shutdown(shutdown_signal())
                    .await
                    .map_err(io)?;
            }
        },
        ListenTarget::Unix(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                _ => {}
            }
            let listener = tokio::net::UnixListener::bind(&path).map_err(io)?;
            println!("smolvm API server listening on unix://{}", path.display());
            let served = axum::serve(listener, router(state, timeout))
                .with_graceful_shutdown(shutdown_signal())
                .await;
            let _ = std::fs::remove_file(&path);
            served.map_err(io)?;
        }
    }
    Ok(())
}

/// HTTPS with mutual TLS through axum-server's rustls acceptor, as smolvm
/// does, plus its plain loopback listener for health checks.
async fn serve_tls(
    addr: SocketAddr,
    state: Shared,
    timeout: Duration,
    config: Arc<rustls::ServerConfig>,
) -> Result<()> {
    if let Some(local) =
        serve_tls::local_plain_addr(addr).map_err(|e| config_error("serve local addr", e))?
    {
        let listener = tokio::net::TcpListener::bind(local).await.map_err(io)?;
        println!("smolvm local API (loopback, plain) on http://{local}");
        let door = Router::new()
            .route("/health", get(health))
            .route("/readyz", get(|| async { StatusCode::OK }))
            .with_state(state.clone());
        // Ends with the process.
        tokio::spawn(async move { axum::serve(listener, door).await });
    }
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    println!("smolvm API server listening on https://{addr} (mTLS)");
    axum_server::bind_rustls(
        addr,
        axum_server::tls_rustls::RustlsConfig::from_config(config),
    )
    .handle(handle)
    .serve(router(state, timeout).into_make_service())
    .await
    .map_err(io)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("\nShutting down server (VMs continue running)...");
}
