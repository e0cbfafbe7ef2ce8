//! The guest of each running machine behind `serve`, and the serve's side
//! of the agent protocol.
//!
//! smolvm's serve sends every exec and file operation to the guest agent of
//! the machine's VM over smolvm's agent protocol, and the VM lives on
//! between requests: a process one exec leaves running, a later request
//! sees (same PID namespace, same files). The stand-in's serve keeps one
//! guest per running machine the same way. The first request that needs
//! machine N starts `smolvm-standin _api-guest --name N`, which enters the
//! machine (a new PID namespace chrooted into the same rootfs the CLI uses)
//! and runs the stand-in guest agent there (`agent.rs`, smolvm-agent 1.9.2's
//! semantics: at most 8 connections served at once, output caps, timeouts,
//! spawn failures, file writes). Every request, that one included, opens a
//! connection of its own to that agent and speaks the protocol exactly as
//! smolvm's serve does; closing it is the agent's "client gone".
//!
//! The guest ends (SIGTERM to `_api-guest`, which kills its init, so every
//! process of the guest goes with it, and is then reaped) when the machine
//! is stopped or deleted through the serve, and when the serve shuts down.
//! A guest that no longer matches the machine is stale and is ended too: its
//! process is gone, or the machine's record is gone, not running, or from a
//! later start (the CLI stopped, deleted or restarted it: `started_ns`
//! changes with every start). A request checks that before it connects (and
//! then starts a fresh guest, booting the machine first if it is not
//! running), and a sweep every second catches it in between.
//!
//! The agent's listening socket is an abstract socket (nothing to clean up
//! on disk) bound by the serve and handed to the guest as its stdin. Once
//! the agent is about to accept, `_api-guest` writes one byte on its stdout;
//! a guest that cannot start exits instead, with its reason on stderr.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, TryLockError};

use smolvm_protocol::{AgentRequest, AgentResponse};

use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::machine::{State as MachineState, Store};
use crate::serve::{agent_failure, ApiError};
use crate::spawn::{self, Report};
use crate::{agent, name, serve_machines, sys};

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
/// listening socket inherited as stdin, until killed. One byte on stdout
/// tells the serve that the agent is about to accept.
pub fn run(name: &str) -> Result<i32> {
    name::validate(name)?;
    let store = Store::open()?;
    let machine = store.load(name)?;
    let guest = Guest::new(&store, &machine)?;
    let env: Vec<(String, String)> = GUEST_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let null = sys::open(c"/dev/null", libc::O_RDWR, 0)
        .map_err(|e| Error::new(format!("open /dev/null: {}", os_text(&e))))?;
    let child = spawn::spawn(|reporter| {
        // The readiness pipe is this process's alone.
        let _ = sys::dup2(null.as_raw_fd(), 1);
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
        let _ = sys::write_all(1, b"R");
        let _ = sys::dup2(null.as_raw_fd(), 1);
    }
    let status = sys::waitpid(child.pid).map_err(|e| Error::new(format!("waitpid: {e}")));
    child.disarm();
    Ok(sys::exit_code(status?))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running `_api-guest` of one machine.
struct Running {
    /// The `started_ns` of the machine's record when the guest started:
    /// the boot it belongs to.
    started_ns: u128,
    address: SocketAddr,
    child: Mutex<Child>,
}

impl Running {
    /// Reaps the guest if it has exited.
    fn alive(&self) -> bool {
        matches!(lock(&self.child).try_wait(), Ok(None))
    }

    /// SIGTERM makes `_api-guest` kill its init, which takes every process
    /// of the guest with it, reap it and die; then it is reaped here.
    fn end(&self) {
        let mut child = lock(&self.child);
        if matches!(child.try_wait(), Ok(None)) {
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let _ = child.wait();
    }
}

/// The guest of one machine, if it has one; its lock is held while the
/// guest is started, replaced or ended.
type Slot = Arc<Mutex<Option<Arc<Running>>>>;

/// The serve's guests, one per machine at most.
#[derive(Default)]
pub struct Guests {
    slots: Mutex<HashMap<String, Slot>>,
    /// Set at shutdown: no guest starts after that.
    closed: AtomicBool,
}

impl Guests {
    /// A machine's slot; slots are never removed, so every guest started is
    /// in one `end_all` sees.
    fn slot(&self, name: &str) -> Slot {
        lock(&self.slots)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// A new connection to the agent of machine `name`'s guest, which is
    /// started first if the machine has none or a stale one. A machine that
    /// is not running is booted first, as smolvm's `ensure_running` does;
    /// the request routes did that already, but the CLI may have stopped
    /// it since.
    pub fn session(&self, name: &str) -> std::result::Result<Session, ApiError> {
        let slot = self.slot(name);
        let mut current = lock(&slot);
        let machine = match serve_machines::lookup(name) {
            Ok(machine) => machine,
            Err(e) => {
                end(&mut current);
                return Err(e);
            }
        };
        let machine = if machine.state == MachineState::Running {
            machine
        } else {
            end(&mut current);
            serve_machines::boot(name)?
        };
        let fresh = current
            .as_ref()
            .is_some_and(|g| g.started_ns == machine.started_ns && g.alive());
        if !fresh {
            end(&mut current);
            if self.closed.load(Ordering::SeqCst) {
                return Err(agent_failure("connect", "the server is shutting down"));
            }
            *current = Some(Arc::new(start(name, machine.started_ns)?));
        }
        let address = current.as_ref().map(|g| g.address.clone());
        drop(current);
        let stream = address
            .map(|a| UnixStream::connect_addr(&a))
            .expect("a guest was set above")
            .map_err(|e| agent_failure("connect", &format!("agent socket: {e}")))?;
        Ok(Session { stream })
    }

    /// Ends machine `name`'s guest, then runs `work` (its stop or delete)
    /// before any request can start another.
    pub fn end_then<T>(&self, name: &str, work: impl FnOnce() -> T) -> T {
        let slot = self.slot(name);
        let mut current = lock(&slot);
        end(&mut current);
        work()
    }

    /// Ends the guests that are stale (see the module header), and reaps
    /// any that died on their own. A slot busy with a request is left for
    /// the next sweep.
    pub fn sweep(&self) {
        let slots: Vec<(String, Slot)> = lock(&self.slots)
            .iter()
            .map(|(name, slot)| (name.clone(), slot.clone()))
            .collect();
        for (name, slot) in slots {
            let mut current = match slot.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            let Some(guest) = current.as_ref() else {
                continue;
            };
            let stale = !guest.alive()
                || match serve_machines::lookup(&name) {
                    Ok(m) => m.state != MachineState::Running || m.started_ns != guest.started_ns,
                    Err(ApiError::NotFound(_)) => true,
                    Err(_) => false,
                };
            if stale {
                end(&mut current);
            }
        }
    }

    /// Ends every guest, for good: at shutdown.
    pub fn end_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let slots: Vec<Slot> = lock(&self.slots).values().cloned().collect();
        for slot in slots {
            end(&mut lock(&slot));
        }
    }
}

fn end(current: &mut Option<Arc<Running>>) {
    if let Some(guest) = current.take() {
        guest.end();
    }
}

/// Runs `work` on a thread that lives as long as the serve. A guest is
/// forked there because `PR_SET_PDEATHSIG` fires when the *thread* that
/// forked it ends, and a guest must outlive the request (and the pooled
/// thread) that started it, not the serve.
fn on_keeper_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    type Job = Box<dyn FnOnce() + Send>;
    static KEEPER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (jobs, incoming) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("guest-keeper".into())
            .spawn(move || {
                for job in incoming {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .expect("start the guest keeper thread");
        jobs
    });
    let (reply, answer) = mpsc::sync_channel(1);
    keeper
        .send(Box::new(move || {
            let _ = reply.send(work());
        }))
        .expect("the guest keeper thread runs as long as the serve");
    answer
        .recv()
        .expect("the guest keeper thread answers every job")
}

/// Starts a guest for `name` and waits until its agent is about to accept.
fn start(name: &str, started_ns: u128) -> std::result::Result<Running, ApiError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let socket_failure =
        |e: std::io::Error| agent_failure("connect", &format!("agent socket: {e}"));
    let address = format!(
        "smolvm-standin-serve.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let address = SocketAddr::from_abstract_name(address.as_bytes()).map_err(socket_failure)?;
    let listener = UnixListener::bind_addr(&address).map_err(socket_failure)?;
    let mut command = Command::new("/proc/self/exe");
    command
        .args(["_api-guest", "--name", name])
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // If the serve dies, its guests go too.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = on_keeper_thread(move || command.spawn())
        .map_err(|e| agent_failure("connect", &format!("start guest: {e}")))?;
    let mut ready = [0u8; 1];
    let started = child
        .stdout
        .take()
        .is_some_and(|mut out| out.read_exact(&mut ready).is_ok());
    // Nothing more is read from it (were it kept, a guest that wrote more
    // could block on a full pipe).
    let stderr = child.stderr.take();
    if started {
        return Ok(Running {
            started_ns,
            address,
            child: Mutex::new(child),
        });
    }
    // It failed (the machine vanished, a volume is gone): its reason is
    // what it said on its way out.
    if matches!(child.try_wait(), Ok(None)) {
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    let _ = child.wait();
    let mut text = String::new();
    if let Some(mut stderr) = stderr {
        let _ = stderr.read_to_string(&mut text);
    }
    let text = text.trim();
    let text = text.strip_prefix("Error: ").unwrap_or(text);
    Err(if text.is_empty() {
        agent_failure("connect", "the guest exited before its agent was ready")
    } else {
        ApiError::Internal(text.to_string())
    })
}

/// One connection to a machine's guest agent. Dropping it closes the
/// connection (the agent's "client gone"); the guest lives on.
pub struct Session {
    stream: UnixStream,
}

impl Session {
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    pub fn send(&mut self, request: &AgentRequest) -> std::result::Result<(), String> {
        send_on(&mut self.stream, request).map_err(|e| lost(&e))
    }

    pub fn receive(&mut self) -> std::result::Result<AgentResponse, String> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).map_err(|e| lost(&e))?;
        let len = u32::from_be_bytes(header) as usize;
        if len > MAX_FRAME_SIZE {
            return Err(format!(
                "frame too large: {len} bytes (max: {MAX_FRAME_SIZE} bytes)"
            ));
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(|e| lost(&e))?;
        serde_json::from_slice(&body).map_err(|e| format!("decode response: {e}"))
    }

    pub fn request(
        &mut self,
        request: &AgentRequest,
    ) -> std::result::Result<AgentResponse, String> {
        self.send(request)?;
        self.receive()
    }

    /// A second handle on the socket, for a writer thread.
    pub fn writer(&self) -> std::io::Result<UnixStream> {
        self.stream.try_clone()
    }
}

/// A broken connection, as smolvm words an I/O error (its reply deadline,
/// a command's timeout + 5 s, ends as `io operation failed: Resource
/// temporarily unavailable (os error 11)`).
fn lost(socket_error: &std::io::Error) -> String {
    format!("io operation failed: {socket_error}")
}

impl Drop for Session {
    fn drop(&mut self) {
        // Also ends the connection for a writer thread's handle.
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Writes one request frame on `stream` (a writer thread's handle).
pub fn send_on(stream: &mut UnixStream, request: &AgentRequest) -> std::io::Result<()> {
    let json = serde_json::to_vec(request)?;
    stream.write_all(&(json.len() as u32).to_be_bytes())?;
    stream.write_all(&json)?;
    stream.flush()
}
