//! The stand-in guest agent: serves smolvm's agent protocol (the
//! `smolvm-protocol` crate's length-prefixed JSON frames) on the VM's agent
//! socket, from inside the guest (pid 1 of its PID namespace, chrooted into
//! the machine's root filesystem).
//!
//! Connection handling follows smolvm-agent 1.9.2: one thread per
//! connection, at most 8 served at once (the accept loop blocks for a free
//! slot, so a ninth client is accepted but not answered until one ends);
//! interactive exec, file reads, streaming uploads and image pulls run on
//! their connection with several frames, everything else is one request,
//! one response. The exec and file semantics are in agent_exec.rs and
//! agent_file.rs.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Condvar, Mutex};

use smolvm_protocol::{error_codes, AgentRequest, AgentResponse, Envelope, ImageInfo};

use crate::agent_exec;
use crate::agent_file::{self, WriteSession};

/// smolvm-agent's `MAX_CONCURRENT_CONNECTIONS`.
const MAX_CONNECTIONS: usize = 8;
/// smolvm-agent's `MAX_MESSAGE_SIZE` for an incoming frame.
const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Counting semaphore bounding the connections served at once.
struct Slots(Mutex<usize>, Condvar);

struct Permit(Arc<Slots>);

impl Slots {
    fn acquire(self: &Arc<Self>) -> Permit {
        let mut free = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.1.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self.clone())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0 .1.notify_one();
    }
}

/// smolvm-agent syncs and exits on SIGTERM/SIGINT; as pid 1 of the guest
/// its exit ends every guest process.
extern "C" fn on_term(_sig: libc::c_int) {
    unsafe {
        libc::sync();
        libc::_exit(0);
    }
}

/// Runs the agent on an inherited listening socket; never returns unless
/// accepting fails for good. `ready` is called once the agent is set up and
/// about to accept, which is when smolvm's agent signals readiness.
pub fn serve(listen_fd: RawFd, env: &[(String, String)], ready: impl FnOnce()) -> i32 {
    unsafe {
        // A client that goes away must not kill the agent with SIGPIPE.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(
            libc::SIGTERM,
            on_term as extern "C" fn(libc::c_int) as usize,
        );
        libc::signal(libc::SIGINT, on_term as extern "C" fn(libc::c_int) as usize);
        libc::umask(0o022);
        libc::setgroups(0, std::ptr::null());
    }
    // Commands inherit the agent's environment, as in smolvm's guest; set
    // while still single-threaded.
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    for (key, value) in env {
        std::env::set_var(key, value);
    }
    let listener = unsafe { UnixListener::from_raw_fd(listen_fd) };
    let slots = Arc::new(Slots(Mutex::new(MAX_CONNECTIONS), Condvar::new()));
    ready();
    loop {
        agent_exec::reap_background();
        match listener.accept() {
            Ok((stream, _)) => {
                let permit = slots.acquire();
                std::thread::spawn(move || {
                    let _permit = permit;
                    let mut stream = stream;
                    let _ = handle_connection(&mut stream);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

pub fn send(stream: &mut impl Write, response: &AgentResponse) -> Result<(), Failure> {
    let json = serde_json::to_vec(response)?;
    stream.write_all(&(json.len() as u32).to_be_bytes())?;
    stream.write_all(&json)?;
    stream.flush()?;
    Ok(())
}

pub enum Frame {
    /// The client closed the connection between frames.
    End,
    /// Over `MAX_MESSAGE_SIZE`; as in smolvm-agent, the payload is left
    /// unread.
    TooLarge(usize),
    Payload(Vec<u8>),
}

pub fn read_frame(stream: &mut UnixStream) -> Result<Frame, Failure> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Frame::End),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_MESSAGE_SIZE {
        return Ok(Frame::TooLarge(len));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload)?;
    Ok(Frame::Payload(payload))
}

/// With `Envelope`'s flattening, serde can drop `timeout_ms` from exec
/// requests; smolvm-agent re-reads it from the raw JSON, and so does this.
fn patch_timeout(request: &mut AgentRequest, raw: &[u8]) {
    let slot = match request {
        AgentRequest::VmExec { timeout_ms, .. } | AgentRequest::Run { timeout_ms, .. } => {
            timeout_ms
        }
        _ => return,
    };
    if slot.is_none() {
        *slot = serde_json::from_slice::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.get("timeout_ms").and_then(serde_json::Value::as_u64));
    }
}

fn parse(raw: &[u8]) -> Result<AgentRequest, String> {
    match serde_json::from_slice::<Envelope<AgentRequest>>(raw) {
        Ok(envelope) => Ok(envelope.body),
        Err(_) => serde_json::from_slice::<AgentRequest>(raw).map_err(|e| e.to_string()),
    }
}

fn handle_connection(stream: &mut UnixStream) -> Result<(), Failure> {
    let mut session: Option<WriteSession> = None;
    loop {
        let raw = match read_frame(stream)? {
            Frame::End => return Ok(()),
            Frame::TooLarge(len) => {
                let message = format!("message size {len} exceeds maximum {MAX_MESSAGE_SIZE}");
                send(
                    stream,
                    &AgentResponse::error(message, error_codes::MESSAGE_TOO_LARGE),
                )?;
                continue;
            }
            Frame::Payload(raw) => raw,
        };
        let mut request = match parse(&raw) {
            Ok(request) => request,
            Err(e) => {
                let message = format!("invalid request: {e}");
                send(
                    stream,
                    &AgentResponse::error(message, error_codes::INVALID_REQUEST),
                )?;
                continue;
            }
        };
        patch_timeout(&mut request, &raw);

        match request {
            // Leftovers of an interactive session that already ended.
            AgentRequest::Stdin { .. } | AgentRequest::Resize { .. } => continue,
            AgentRequest::VmExec {
                interactive, tty, ..
            }
            | AgentRequest::Run {
                interactive, tty, ..
            } if interactive || tty => {
                agent_exec::interactive(stream, request)?;
                continue;
            }
            AgentRequest::Pull { image, .. } => {
                send(stream, &AgentResponse::ok_with_data(image_info(&image)))?;
                continue;
            }
            AgentRequest::FileRead { path } => {
                agent_file::read(stream, &path)?;
                continue;
            }
            AgentRequest::FileWriteBegin {
                path,
                mode,
                uid,
                gid,
                total_size,
            } => {
                // A new upload drops (and cleans up) any unfinished one first.
                drop(session.take());
                let (opened, response) = agent_file::begin(&path, mode, uid, gid, total_size);
                session = opened;
                send(stream, &response)?;
                continue;
            }
            AgentRequest::FileWriteChunk { data, done } => {
                let (open, response) = agent_file::chunk(session.take(), &data, done);
                session = open;
                send(stream, &response)?;
                continue;
            }
            _ => {}
        }
        session = None;

        let fd = stream.as_raw_fd();
        let response = handle_request(request, fd);
        if agent_exec::peer_closed(fd) {
            return Ok(());
        }
        if send(stream, &response).is_err() {
            return Ok(());
        }
        if let AgentResponse::Ok { data: Some(data) } = &response {
            if data.get("shutdown").and_then(serde_json::Value::as_bool) == Some(true) {
                return Ok(());
            }
        }
    }
}

/// The stand-in has no image store: every image "exists", with no layers and
/// no entrypoint, command, environment, working directory or user of its
/// own, and its commands run in the machine's one root filesystem.
fn image_info(image: &str) -> ImageInfo {
    ImageInfo {
        reference: image.to_string(),
        digest: format!("sha256:{}", "0".repeat(64)),
        size: 0,
        created: None,
        architecture: std::env::consts::ARCH.to_string(),
        os: "linux".to_string(),
        layer_count: 0,
        layers: Vec::new(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        env: Vec::new(),
        workdir: None,
        user: None,
    }
}

fn handle_request(request: AgentRequest, client_fd: RawFd) -> AgentResponse {
    match request {
        AgentRequest::Ping => AgentResponse::Pong {
            version: smolvm_protocol::PROTOCOL_VERSION,
            capabilities: vec![smolvm_protocol::forkpoint::WORKER_READY_CAPABILITY.to_string()],
        },
        AgentRequest::Shutdown => {
            unsafe { libc::sync() };
            AgentResponse::ok(Some(serde_json::json!({ "shutdown": true })))
        }
        AgentRequest::Query { image } => AgentResponse::ok_with_data(image_info(&image)),
        AgentRequest::ListImages => AgentResponse::ok_with_data(Vec::<ImageInfo>::new()),
        AgentRequest::VmExec {
            command,
            env,
            workdir,
            timeout_ms,
            background,
            stdin_data,
            ..
        } => {
            let spec = agent_exec::Spec {
                command,
                env,
                workdir,
                image: false,
            };
            if background {
                agent_exec::background(&spec)
            } else {
                agent_exec::buffered(&spec, timeout_ms, stdin_data, client_fd)
            }
        }
        AgentRequest::Run {
            image,
            command,
            env,
            workdir,
            timeout_ms,
            detached,
            background,
            stdin_data,
            ..
        } => {
            if detached && command.is_empty() {
                // What smolvm-agent answers for an image without entrypoint
                // or cmd; `machine start` then boots without a workload.
                return AgentResponse::error(
                    format!("no command given and image '{image}' defines no entrypoint or cmd"),
                    error_codes::INVALID_REQUEST,
                );
            }
            let spec = agent_exec::Spec {
                command,
                env,
                workdir,
                image: true,
            };
            if detached {
                agent_exec::detached(&spec, &image)
            } else if background {
                agent_exec::background(&spec)
            } else {
                agent_exec::buffered(&spec, timeout_ms, stdin_data, client_fd)
            }
        }
        AgentRequest::FileWrite {
            path,
            data,
            mode,
            uid,
            gid,
        } => agent_file::write(&path, &data, mode, uid, gid),
        other => AgentResponse::error(
            format!(
                "{} is not supported by the smolvm-standin guest",
                other.log_summary()
            ),
            error_codes::INTERNAL_ERROR,
        ),
    }
}
