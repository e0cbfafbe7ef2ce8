//! Exec routes of `serve`: buffered (`POST .../exec`), Server-Sent Events
//! (`POST .../exec/stream`) and the interactive WebSocket
//! (`GET .../exec/interactive`), each sending smolvm's agent request for
//! that route on a connection of its own to the machine's guest
//! (serve_guest.rs).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use axum::Json;
use futures_util::{SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use smolvm_protocol::{AgentRequest, AgentResponse, SecretRef};

use crate::machine::State as MachineState;
use crate::serve::{agent_failure, blocking, ApiError, Shared};
use crate::serve_guest::send_on;
use crate::serve_machines::{self, validate_env, validate_secrets, EnvVar};

/// smolvm's cap on what one streaming exec relays (stdout and stderr
/// together), and its message when the cap is hit.
const MAX_STREAMING_EXEC_OUTPUT: usize = 11 * 1024 * 1024;
/// smolvm's client waits this much longer than an exec's own timeout for
/// the agent's reply before giving up on the socket.
const TIMEOUT_BUFFER: Duration = Duration::from_secs(5);
/// The exit code an interactive session reports when its WebSocket client
/// went away first, and when the session failed.
const DISCONNECT_EXIT_CODE: i32 = 130;
const FAILED_EXIT_CODE: i32 = -1;

/// smolvm's `ExecRequest`, field for field and in its order (serde names the
/// expected fields in this order when it rejects an unknown one).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecRequest {
    command: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretRef>,
    #[serde(default)]
    workdir: Option<String>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    /// Text, not base64: it reaches the command's stdin as its UTF-8 bytes.
    #[serde(default)]
    stdin: Option<String>,
    #[serde(default)]
    background: bool,
}

/// smolvm's `ExecResponse`: lossy UTF-8 text and byte-exact base64.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResponse {
    exit_code: i32,
    stdout: String,
    stderr: String,
    #[serde(with = "smolvm_protocol::base64_bytes")]
    stdout_b64: Vec<u8>,
    #[serde(with = "smolvm_protocol::base64_bytes")]
    stderr_b64: Vec<u8>,
}

/// What every exec route does first, in smolvm's order: the command must
/// not be empty, the machine must be in the registry, and a machine that is
/// not running is booted without a word (smolvm's `ensure_running`).
async fn prepare(state: &Shared, id: &str, command: &[String]) -> Result<(), ApiError> {
    if command.is_empty() {
        return Err(ApiError::BadRequest("command cannot be empty".into()));
    }
    ensure_running(state, id).await
}

pub async fn ensure_running(state: &Shared, id: &str) -> Result<(), ApiError> {
    state.registered(id)?;
    let name = id.to_string();
    blocking(move || {
        let machine = serve_machines::lookup(&name)?;
        if machine.state != MachineState::Running {
            serve_machines::boot(&name)?;
        }
        Ok(())
    })
    .await
}

fn env_pairs(env: &[EnvVar]) -> Vec<(String, String)> {
    env.iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect()
}

pub async fn exec(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Json(req): Json<ExecRequest>,
) -> Result<Json<ExecResponse>, ApiError> {
    prepare(&state, &id, &req.command).await?;
    validate_secrets(&req.secrets)?;
    validate_env(&req.env)?;
    let timeout = req.timeout_secs.map(Duration::from_secs);
    let request = AgentRequest::VmExec {
        command: req.command,
        env: env_pairs(&req.env),
        workdir: req.workdir,
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
        interactive: false,
        tty: false,
        background: req.background,
        stdin_data: if req.background { None } else { req.stdin },
    };
    let background = req.background;
    // On a blocking thread that the request timeout does not stop: as in
    // smolvm, a 408 leaves the command running to its end.
    let (exit_code, stdout, stderr) = blocking(move || {
        let mut session = state.guests.session(&id)?;
        // smolvm's client: no socket deadline without a timeout.
        let deadline = timeout.map(|t| t + TIMEOUT_BUFFER);
        let _ = session.stream().set_read_timeout(deadline);
        let operation = if background {
            "vm exec background"
        } else {
            "vm exec"
        };
        match session.request(&request) {
            Ok(AgentResponse::Completed {
                exit_code,
                stdout,
                stderr,
            }) => Ok((exit_code, stdout, stderr)),
            Ok(AgentResponse::Error { message, .. }) => Err(agent_failure(operation, &message)),
            Ok(_) => Err(agent_failure(operation, "unexpected response type")),
            Err(e) => Err(ApiError::Internal(e)),
        }
    })
    .await?;
    if background {
        let pid = String::from_utf8_lossy(&stdout).trim().to_string();
        let text = format!("pid={pid}\n");
        return Ok(Json(ExecResponse {
            exit_code: 0,
            stdout_b64: text.clone().into_bytes(),
            stdout: text,
            stderr: String::new(),
            stderr_b64: Vec::new(),
        }));
    }
    Ok(Json(ExecResponse {
        exit_code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_b64: stdout,
        stderr_b64: stderr,
    }))
}

enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Error(String),
}

/// The streaming exec's agent session, feeding `events` as frames arrive.
/// A failure before the command started comes back as `Err`, which smolvm
/// reports in an `error` event with the `Debug` form of its API error
/// (`Internal("agent operation failed: ...")`).
fn stream_session(
    state: &Shared,
    id: &str,
    request: &AgentRequest,
    timeout: Option<Duration>,
    events: &tokio::sync::mpsc::UnboundedSender<ExecEvent>,
) -> Result<(), ApiError> {
    const OPERATION: &str = "streaming exec";
    let mut session = state.guests.session(id)?;
    let _ = session
        .stream()
        .set_read_timeout(timeout.map(|t| t + TIMEOUT_BUFFER));
    session.send(request).map_err(ApiError::Internal)?;
    match session.receive().map_err(ApiError::Internal)? {
        AgentResponse::Started => {}
        AgentResponse::Error { message, .. } => return Err(agent_failure(OPERATION, &message)),
        _ => return Err(agent_failure(OPERATION, "expected Started")),
    }
    let mut total = 0usize;
    loop {
        // A client that went away is not our concern: as in smolvm, the
        // command runs to its end.
        match session.receive() {
            Ok(AgentResponse::Stdout { data }) => {
                total = total.saturating_add(data.len());
                let _ = events.send(ExecEvent::Stdout(data));
            }
            Ok(AgentResponse::Stderr { data }) => {
                total = total.saturating_add(data.len());
                let _ = events.send(ExecEvent::Stderr(data));
            }
            Ok(AgentResponse::Exited { exit_code, .. }) => {
                let _ = events.send(ExecEvent::Exit(exit_code));
                return Ok(());
            }
            Ok(AgentResponse::Error { message, .. }) => {
                let _ = events.send(ExecEvent::Error(message));
                return Ok(());
            }
            Ok(_) => {}
            Err(e) => {
                let _ = events.send(ExecEvent::Error(e));
                return Ok(());
            }
        }
        if total >= MAX_STREAMING_EXEC_OUTPUT {
            let _ = events.send(ExecEvent::Error(format!(
                "streaming output exceeded {MAX_STREAMING_EXEC_OUTPUT} byte cap; \
                 exec terminated (output truncated)"
            )));
            return Ok(());
        }
    }
}

pub async fn exec_stream(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Json(req): Json<ExecRequest>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    prepare(&state, &id, &req.command).await?;
    validate_secrets(&req.secrets)?;
    validate_env(&req.env)?;
    let timeout = req.timeout_secs.map(Duration::from_secs);
    // smolvm's streaming exec sends no stdin and ignores `background`.
    let request = AgentRequest::VmExec {
        command: req.command,
        env: env_pairs(&req.env),
        workdir: req.workdir,
        timeout_ms: timeout.map(|t| t.as_millis() as u64),
        interactive: true,
        tty: false,
        background: false,
        stdin_data: None,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = stream_session(&state, &id, &request, timeout, &tx) {
            let _ = tx.send(ExecEvent::Error(format!("{e:?}")));
        }
    });
    let stream = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|event| {
        // smolvm's framing, lossiness included: output is decoded as UTF-8
        // (invalid bytes become U+FFFD) and SSE splits it into lines.
        Ok(match event {
            ExecEvent::Stdout(data) => Event::default()
                .event("stdout")
                .data(String::from_utf8_lossy(&data)),
            ExecEvent::Stderr(data) => Event::default()
                .event("stderr")
                .data(String::from_utf8_lossy(&data)),
            ExecEvent::Exit(code) => Event::default()
                .event("exit")
                .data(format!("{{\"exitCode\":{code}}}")),
            // Not JSON-escaped, exactly as smolvm builds it.
            ExecEvent::Error(message) => Event::default()
                .event("error")
                .data(format!("{{\"message\":\"{message}\"}}")),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[derive(Deserialize)]
pub struct InteractiveQuery {
    cmd: Option<String>,
    cols: Option<u16>,
    rows: Option<u16>,
}

enum Input {
    Stdin(Vec<u8>),
    Resize { cols: u16, rows: u16 },
    Eof,
}

/// The interactive session's agent side, on a blocking thread: smolvm's
/// `vm_exec_interactive_io` with a pty, its input from `input` and its
/// output (stdout and stderr alike) to `output`. Returns the exit code.
fn interactive_session(
    state: &Shared,
    id: &str,
    program: String,
    input: mpsc::Receiver<Input>,
    output: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> i32 {
    let Ok(mut session) = state.guests.session(id) else {
        return FAILED_EXIT_CODE;
    };
    let request = AgentRequest::VmExec {
        command: vec![program],
        env: vec![("TERM".to_string(), "xterm-256color".to_string())],
        workdir: None,
        timeout_ms: None,
        interactive: true,
        tty: true,
        background: false,
        stdin_data: None,
    };
    if session.send(&request).is_err() {
        return FAILED_EXIT_CODE;
    }
    if !matches!(session.receive(), Ok(AgentResponse::Started)) {
        return FAILED_EXIT_CODE;
    }
    let Ok(mut writer) = session.writer() else {
        return FAILED_EXIT_CODE;
    };
    // Input goes to the agent from its own thread. When the WebSocket side
    // is gone, smolvm returns at once and drops the agent connection (which
    // kills the command); shutting the socket down does the same here.
    let disconnected = Arc::new(AtomicBool::new(false));
    let gone = disconnected.clone();
    let pump = std::thread::spawn(move || {
        let mut eof_sent = false;
        loop {
            let frame = match input.recv() {
                Ok(Input::Stdin(data)) => AgentRequest::Stdin { data },
                Ok(Input::Resize { cols, rows }) => AgentRequest::Resize { cols, rows },
                Ok(Input::Eof) if !eof_sent => {
                    eof_sent = true;
                    AgentRequest::Stdin { data: Vec::new() }
                }
                Ok(Input::Eof) => continue,
                Err(_) => {
                    gone.store(true, Ordering::SeqCst);
                    let _ = writer.shutdown(std::net::Shutdown::Both);
                    return;
                }
            };
            if send_on(&mut writer, &frame).is_err() {
                return;
            }
        }
    });
    let code = loop {
        match session.receive() {
            Ok(AgentResponse::Stdout { data }) | Ok(AgentResponse::Stderr { data }) => {
                if output.blocking_send(data).is_err() {
                    break DISCONNECT_EXIT_CODE;
                }
            }
            Ok(AgentResponse::Exited { exit_code, .. }) => break exit_code,
            Ok(AgentResponse::Error { .. }) => break FAILED_EXIT_CODE,
            Ok(_) => {}
            Err(_) if disconnected.load(Ordering::SeqCst) => break DISCONNECT_EXIT_CODE,
            Err(_) => break FAILED_EXIT_CODE,
        }
    };
    drop(session);
    // The pump ends once the WebSocket side drops its sender.
    drop(pump);
    code
}

pub async fn exec_interactive(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(query): Query<InteractiveQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    ensure_running(&state, &id).await?;
    let program = query.cmd.unwrap_or_else(|| "/bin/sh".to_string());
    let size = (query.cols.unwrap_or(80), query.rows.unwrap_or(24));
    Ok(ws.on_upgrade(move |socket| relay(socket, state, id, program, size)))
}

async fn relay(
    socket: WebSocket,
    state: Shared,
    id: String,
    program: String,
    (cols, rows): (u16, u16),
) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (in_tx, in_rx) = mpsc::channel::<Input>();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
    let _ = in_tx.send(Input::Resize { cols, rows });
    let session = tokio::task::spawn_blocking(move || {
        interactive_session(&state, &id, program, in_rx, out_tx)
    });

    // WebSocket → command. Binary frames are stdin; a text frame is a JSON
    // control message (`resize`, or `stdin` with text `data`), or else stdin
    // itself. A Close frame is end of input, immediately followed by the
    // disconnect: the sender is dropped when this task ends.
    let input = tokio::spawn(async move {
        while let Some(Ok(message)) = ws_rx.next().await {
            let event = match message {
                Message::Binary(data) => Input::Stdin(data.to_vec()),
                Message::Text(text) => {
                    match serde_json::from_str::<serde_json::Value>(text.as_str()) {
                        Ok(v) if v["type"] == "resize" => Input::Resize {
                            cols: v["cols"].as_u64().unwrap_or(80) as u16,
                            rows: v["rows"].as_u64().unwrap_or(24) as u16,
                        },
                        Ok(v) if v["type"] == "stdin" => match v["data"].as_str() {
                            Some(data) => Input::Stdin(data.as_bytes().to_vec()),
                            None => continue,
                        },
                        _ => Input::Stdin(text.as_bytes().to_vec()),
                    }
                }
                Message::Close(_) => {
                    let _ = in_tx.send(Input::Eof);
                    break;
                }
                _ => continue,
            };
            if in_tx.send(event).is_err() {
                break;
            }
        }
    });

    // Command → WebSocket, until the session ends.
    while let Some(data) = out_rx.recv().await {
        if ws_tx.send(Message::Binary(data.into())).await.is_err() {
            break;
        }
    }
    let code = session.await.unwrap_or(FAILED_EXIT_CODE);
    let _ = ws_tx
        .send(Message::Text(
            format!("{{\"type\":\"exit\",\"code\":{code}}}").into(),
        ))
        .await;
    let _ = ws_tx.send(Message::Close(None)).await;
    input.abort();
}
