//! The guest behind each request of `serve`, and the serve's side of the
//! agent protocol.
//!
//! smolvm's serve sends every exec and file operation to the guest agent of
//! a running VM over smolvm's agent protocol. The stand-in has no VM between
//! requests (its CLI runs each exec in a fresh guest), so the serve does the
//! same per request: it starts `smolvm-standin _api-guest --name N`, which
//! enters the machine (a new PID namespace chrooted into the same rootfs the
//! CLI uses) and runs the stand-in guest agent there (`agent.rs`, smolvm-agent
//! 1.9.2's semantics: output caps, timeouts, spawn failures, file writes).
//! The serve then speaks the protocol to it exactly as smolvm's serve does,
//! and ends the guest (and everything left running in it) when the request
//! is done.
//!
//! The agent's listening socket is bound and connected by the serve before
//! the guest starts, so there is no readiness race: the connection waits in
//! the backlog until the agent accepts it. It is an abstract socket, which
//! leaves nothing to clean up on disk.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use smolvm_protocol::{AgentRequest, AgentResponse};

use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::machine::Store;
use crate::spawn::{self, Report};
use crate::{agent, name, sys};

/// The environment of an API exec before the request's own `env`: the
/// stand-in CLI's base environment. The machine's create-time environment
/// is deliberately not added: smolvm's serve does not apply it to API execs.
const GUEST_ENV: [(&str, &str); 2] = [
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
];

/// smolvm's `MAX_FRAME_SIZE` for a frame from the agent.
const MAX_FRAME_SIZE: usize = smolvm_protocol::MAX_FRAME_SIZE as usize;

/// `_api-guest`: enter machine `name` and serve the agent protocol on the
/// listening socket inherited as stdin, until killed.
pub fn run(name: &str) -> Result<i32> {
    name::validate(name)?;
    let store = Store::open()?;
    let machine = store.load(name)?;
    let guest = Guest::new(&store, &machine)?;
    let env: Vec<(String, String)> = GUEST_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let child = spawn::spawn(|reporter| {
        if let Err(message) = guest.enter() {
            reporter.send(spawn::SETUP_FAILED, &message);
            return 1;
        }
        agent::serve(0, &env, || {
            reporter.send(spawn::DONE, "");
            unsafe { libc::close(reporter.fd()) };
        })
    })?;
    let report = sys::read_to_end(child.report.as_raw_fd())
        .map_err(|e| Error::new(format!("read: {}", os_text(&e))))?;
    if let Some(r) = Report::parse(&report) {
        if r.kind != spawn::DONE {
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
            child.disarm();
            let _ = sys::waitpid(child.pid);
            return Err(Error::new(r.message));
        }
    }
    let status = sys::waitpid(child.pid).map_err(|e| Error::new(format!("waitpid: {e}")));
    child.disarm();
    Ok(sys::exit_code(status?))
}

/// A connection to the agent of a fresh guest of one machine. Dropping it
/// ends the guest: SIGTERM makes `_api-guest` kill its init, which takes
/// every process of the guest with it, and reap it.
pub struct Session {
    stream: UnixStream,
    child: Child,
}

impl Session {
    /// Starts a guest for `name` (which must exist).
    pub fn open(name: &str) -> std::result::Result<Session, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let address = format!(
            "smolvm-standin-serve.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(address.as_bytes())
            .map_err(|e| format!("agent socket: {e}"))?;
        let listener = UnixListener::bind_addr(&addr).map_err(|e| format!("agent socket: {e}"))?;
        let stream = UnixStream::connect_addr(&addr).map_err(|e| format!("agent socket: {e}"))?;
        let mut command = Command::new("/proc/self/exe");
        command
            .args(["_api-guest", "--name", name])
            .stdin(Stdio::from(OwnedFd::from(listener)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // If the serve dies, its guests go too. The signal comes when the
        // forking *thread* ends, which is fine here: a session lives and
        // dies within the one blocking task that opened it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| format!("start guest: {e}"))?;
        Ok(Session { stream, child })
    }

    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn send(&mut self, request: &AgentRequest) -> std::result::Result<(), String> {
        send_on(&mut self.stream, request).map_err(|e| self.lost(&e.to_string()))
    }

    pub fn receive(&mut self) -> std::result::Result<AgentResponse, String> {
        let mut header = [0u8; 4];
        if let Err(e) = self.stream.read_exact(&mut header) {
            return Err(self.lost(&e.to_string()));
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME_SIZE {
            return Err(format!(
                "frame too large: {len} bytes (max: {MAX_FRAME_SIZE} bytes)"
            ));
        }
        let mut body = vec![0u8; len];
        if let Err(e) = self.stream.read_exact(&mut body) {
            return Err(self.lost(&e.to_string()));
        }
        serde_json::from_slice(&body).map_err(|e| format!("decode response: {e}"))
    }

    pub fn request(
        &mut self,
        request: &AgentRequest,
    ) -> std::result::Result<AgentResponse, String> {
        self.send(request)?;
        self.receive()
    }

    /// The reason a connection broke: what the guest said on its way out
    /// (a setup failure: the machine vanished, a volume is gone), else the
    /// socket's own error as smolvm words an I/O error (its reply deadline,
    /// a command's timeout + 5 s, ends as `io operation failed: Resource
    /// temporarily unavailable (os error 11)`).
    fn lost(&mut self, socket_error: &str) -> String {
        // The session is over either way; ending the guest first means its
        // stderr is complete when read.
        self.end();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        let text = text.trim();
        let text = text.strip_prefix("Error: ").unwrap_or(text);
        if text.is_empty() {
            format!("io operation failed: {socket_error}")
        } else {
            text.to_string()
        }
    }

    /// A second handle on the socket, for a writer thread.
    pub fn writer(&self) -> std::io::Result<UnixStream> {
        self.stream.try_clone()
    }
}

impl Session {
    fn end(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if matches!(self.child.try_wait(), Ok(None)) {
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}

/// Writes one request frame on `stream` (a writer thread's handle).
pub fn send_on(stream: &mut UnixStream, request: &AgentRequest) -> std::io::Result<()> {
    let json = serde_json::to_vec(request)?;
    stream.write_all(&(json.len() as u32).to_be_bytes())?;
    stream.write_all(&json)?;
    stream.flush()
}
