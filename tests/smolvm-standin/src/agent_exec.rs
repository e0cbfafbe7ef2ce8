//! Running commands for the stand-in guest agent, with smolvm-agent 1.9.2's
//! semantics, path by path (the details are the contract libbottle's fixes
//! rely on, so each is stated where it is done):
//!
//! - **bare, buffered** (`VmExec`, the default of `machine exec`): the
//!   command starts in a new session; output is captured up to 11 MiB per
//!   stream; on timeout or client disconnect the command's *process group*
//!   is SIGKILLed (a descendant that called `setsid` survives), and the
//!   response waits until every holder of the output pipes has closed them.
//! - **image, buffered** (`Run` of an `--image` machine): as smolvm's
//!   keep-alive container path, where crun runs the command: on timeout or
//!   disconnect the command's whole *process tree* is stopped and SIGKILLed
//!   (setsid or not), and the reply waits at most 5 s for the output pipes.
//! - **interactive** (`-i`, `-t`, or `--stream` without them): output goes
//!   out as `Stdout`/`Stderr` frames; on timeout or disconnect only the
//!   command process itself is SIGKILLed.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smolvm_protocol::{error_codes, AgentRequest, AgentResponse};

use crate::agent::{read_frame, send, Failure, Frame};

/// smolvm-agent's `MAX_EXEC_OUTPUT`: captured bytes per stream.
pub const MAX_EXEC_OUTPUT: usize = 11 * 1024 * 1024;
/// smolvm-agent's budget for both streams of an image exec's reply.
const IMAGE_OUTPUT_BUDGET: usize = 20 * 1024 * 1024;
const TIMEOUT_EXIT_CODE: i32 = 124;
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const POLL_INTERVAL: Duration = Duration::from_millis(10);
const INTERACTIVE_POLL_MS: u128 = 100;
const IO_BUFFER_SIZE: usize = 4096;
const IMAGE_READER_WAIT: Duration = Duration::from_secs(5);

/// A command to run, as the request gave it.
pub struct Spec {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    /// `Run` of an image machine rather than `VmExec` of a bare one.
    pub image: bool,
}

impl Spec {
    /// A bare exec inherits the agent's environment (the VM init's) plus
    /// the request's. An image exec gets the container's: only the
    /// request's (which the CLI built from the image config and the
    /// machine), plus `PATH` and `HOME` when missing, as crun supplies them.
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..]);
        if self.image {
            cmd.env_clear();
        }
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        if self.image {
            for (key, value) in [("PATH", GUEST_PATH), ("HOME", "/root")] {
                if !self.env.iter().any(|(k, _)| k == key) {
                    cmd.env(key, value);
                }
            }
        }
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        cmd
    }
}

fn empty_command() -> AgentResponse {
    AgentResponse::error("command cannot be empty", error_codes::INVALID_REQUEST)
}

/// Whether the client on `fd` has gone: smolvm-agent's test, a
/// non-blocking one-byte peek (0 = orderly close; an error other than
/// EAGAIN = gone).
pub fn peer_closed(fd: RawFd) -> bool {
    let mut byte = 0u8;
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => true,
        n if n < 0 => std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN),
        _ => false,
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Commands started with `-d`: the agent reaps them from its accept loop
/// (it has no reaper for anything else, so other orphans stay zombies
/// until the VM stops, as in smolvm's guest).
static BACKGROUND: Mutex<Vec<u32>> = Mutex::new(Vec::new());

pub fn reap_background() {
    let mut pids = BACKGROUND.lock().unwrap_or_else(|e| e.into_inner());
    pids.retain(|&pid| {
        let mut status = 0;
        unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) == 0 }
    });
}

fn spawn_detached(spec: &Spec) -> std::io::Result<u32> {
    let child = spec
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    BACKGROUND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pid);
    Ok(pid)
}

/// `exec -d`: start, answer with the pid, never wait.
pub fn background(spec: &Spec) -> AgentResponse {
    if spec.command.is_empty() {
        return empty_command();
    }
    match spawn_detached(spec) {
        Ok(pid) => AgentResponse::Completed {
            exit_code: 0,
            stdout: pid.to_string().into_bytes(),
            stderr: Vec::new(),
        },
        Err(e) => AgentResponse::error(
            format!("failed to spawn background command: {e}"),
            error_codes::SPAWN_FAILED,
        ),
    }
}

/// An image machine's workload command, started at `machine start`; the
/// reply carries a container id.
pub fn detached(spec: &Spec, image: &str) -> AgentResponse {
    match spawn_detached(spec) {
        Ok(pid) => AgentResponse::Completed {
            exit_code: 0,
            stdout: format!("standin-{pid}").into_bytes(),
            stderr: Vec::new(),
        },
        Err(e) => AgentResponse::error(
            format!("failed to start workload of {image}: {e}"),
            error_codes::RUN_FAILED,
        ),
    }
}

enum End {
    Exited(i32),
    TimedOut,
    Disconnected,
}

/// Polls every 10 ms, as smolvm-agent does, for the command's exit, the
/// deadline and the client's departure; `abort` kills on the latter two.
fn wait(
    child: &mut Child,
    deadline: Option<Instant>,
    client_fd: RawFd,
    abort: impl Fn(&mut Child),
) -> std::io::Result<End> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(End::Exited(exit_code(status)));
        }
        if peer_closed(client_fd) {
            abort(child);
            return Ok(End::Disconnected);
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            abort(child);
            return Ok(End::TimedOut);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn feed_stdin(child: &mut Child, data: Option<String>) {
    if let (Some(data), Some(mut stdin)) = (data, child.stdin.take()) {
        // Its own thread: a command that never reads must not block the
        // timeout and disconnect checks. Closing the pipe gives it EOF.
        std::thread::spawn(move || {
            let _ = stdin.write_all(data.as_bytes());
        });
    }
}

/// A non-interactive exec: output captured, one `Completed` reply.
pub fn buffered(
    spec: &Spec,
    timeout_ms: Option<u64>,
    stdin_data: Option<String>,
    client_fd: RawFd,
) -> AgentResponse {
    if spec.command.is_empty() {
        return empty_command();
    }
    let mut cmd = spec.command();
    cmd.stdin(if stdin_data.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // The command leads a new session and process group, which is what a
    // bare exec's timeout and disconnect kill.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if spec.image => return image_spawn_failure(&spec.command[0], &e),
        Err(e) => {
            return AgentResponse::error(
                format!("failed to spawn command: {e}"),
                error_codes::SPAWN_FAILED,
            )
        }
    };
    let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    if spec.image {
        image_buffered(child, deadline, timeout_ms, stdin_data, client_fd)
    } else {
        bare_buffered(child, deadline, stdin_data, client_fd)
    }
}

fn bare_buffered(
    mut child: Child,
    deadline: Option<Instant>,
    stdin_data: Option<String>,
    client_fd: RawFd,
) -> AgentResponse {
    // One byte past the cap tells "exactly at the cap" from "over it".
    // Dropping the pipe at the cap makes the writer die of SIGPIPE.
    let capture = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|pipe| {
            std::thread::spawn(move || {
                let mut data = Vec::new();
                let _ = pipe.take(MAX_EXEC_OUTPUT as u64 + 1).read_to_end(&mut data);
                data
            })
        })
    };
    let stdout = capture(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = capture(child.stderr.take().map(|p| Box::new(p) as _));
    feed_stdin(&mut child, stdin_data);

    let kill_group = |child: &mut Child| {
        unsafe { libc::killpg(child.id() as libc::pid_t, libc::SIGKILL) };
        let _ = child.kill();
        let _ = child.wait();
    };
    let code = match wait(&mut child, deadline, client_fd, kill_group) {
        Ok(End::Exited(code)) => code,
        Ok(End::TimedOut) => TIMEOUT_EXIT_CODE,
        // Never sent: the client is gone. 129 is what smolvm-agent records.
        Ok(End::Disconnected) => 129,
        Err(e) => {
            return AgentResponse::error(
                format!("failed to check process status: {e}"),
                error_codes::WAIT_FAILED,
            )
        }
    };
    // Waits for end of file on both pipes: a process outside the killed
    // group that still holds them (one that called setsid) delays the reply
    // until it exits or closes them, exactly as in smolvm's guest.
    let join = |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let (stdout, stderr) = (join(stdout), join(stderr));
    if stdout.len() > MAX_EXEC_OUTPUT || stderr.len() > MAX_EXEC_OUTPUT {
        return AgentResponse::error(
            format!(
                "command output exceeded {MAX_EXEC_OUTPUT} bytes and was truncated. \
                 Use streaming exec (exec_stream / execStream) for large output."
            ),
            error_codes::EXEC_FAILED,
        );
    }
    AgentResponse::Completed {
        exit_code: code,
        stdout,
        stderr,
    }
}

/// Reads a pipe in 64 KiB chunks into a shared buffer until end of file or
/// until the cap is reached (then the pipe is dropped), as smolvm-agent's
/// keep-alive exec path does.
fn image_reader(
    pipe: Option<impl Read + Send + 'static>,
) -> (Arc<Mutex<Vec<u8>>>, Option<JoinHandle<()>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let handle = pipe.map(|mut pipe| {
        let buf = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            let mut total = 0;
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
                total += n;
                if total >= MAX_EXEC_OUTPUT {
                    break;
                }
            }
        })
    });
    (buf, handle)
}

fn image_buffered(
    mut child: Child,
    deadline: Option<Instant>,
    timeout_ms: Option<u64>,
    stdin_data: Option<String>,
    client_fd: RawFd,
) -> AgentResponse {
    let (stdout, out_reader) = image_reader(child.stdout.take());
    let (stderr, err_reader) = image_reader(child.stderr.take());
    feed_stdin(&mut child, stdin_data);
    let kill = |child: &mut Child| {
        kill_tree(child.id() as libc::pid_t);
        let _ = child.kill();
        let _ = child.wait();
    };
    let end = match wait(&mut child, deadline, client_fd, kill) {
        Ok(end) => end,
        Err(e) => return AgentResponse::error(e.to_string(), error_codes::RUN_FAILED),
    };
    if let End::Exited(_) = end {
        let until = Instant::now() + IMAGE_READER_WAIT;
        while Instant::now() < until
            && [&out_reader, &err_reader]
                .iter()
                .any(|h| h.as_ref().is_some_and(|h| !h.is_finished()))
        {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    let take = |buf: &Arc<Mutex<Vec<u8>>>| {
        std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
    };
    let (stdout, mut stderr) = (take(&stdout), take(&stderr));
    let exit_code = match end {
        End::Exited(code) => code,
        End::TimedOut => {
            let ms = timeout_ms.unwrap_or(0);
            stderr.extend_from_slice(format!("\ncommand timed out after {ms}ms").as_bytes());
            TIMEOUT_EXIT_CODE
        }
        End::Disconnected => {
            stderr.extend_from_slice(b"\nclient disconnected");
            137
        }
    };
    let total = stdout.len() + stderr.len();
    if total > IMAGE_OUTPUT_BUDGET {
        return AgentResponse::error(
            format!(
                "command output too large ({total} bytes; limit {IMAGE_OUTPUT_BUDGET}). \
                 Redirect large output to a file and download it via the files \
                 API — streaming exec is capped at the same output budget."
            ),
            error_codes::EXEC_FAILED,
        );
    }
    AgentResponse::Completed {
        exit_code,
        stdout,
        stderr,
    }
}

/// In an image machine crun runs the command, so a command that cannot be
/// started is crun's failure (its message, status 127), not the agent's.
fn image_spawn_failure(program: &str, err: &std::io::Error) -> AgentResponse {
    let reason = crate::error::os_text(err);
    let message = if err.kind() == std::io::ErrorKind::NotFound && !program.contains('/') {
        format!("crun: executable file `{program}` not found in $PATH: {reason}\n")
    } else {
        format!("crun: exec `{program}`: {reason}\n")
    };
    AgentResponse::Completed {
        exit_code: 127,
        stdout: Vec::new(),
        stderr: message.into_bytes(),
    }
}

/// smolvm-agent's kill of an image exec: stop the process, walk and stop
/// its descendants (via `/proc/PID/task/PID/children`), then SIGKILL them
/// children first.
fn kill_tree(root: libc::pid_t) {
    if unsafe { libc::kill(root, libc::SIGSTOP) } != 0 {
        return;
    }
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            if child > 1 && !found.contains(&child) {
                unsafe { libc::kill(child, libc::SIGSTOP) };
                found.push(child);
                pending.push(child);
            }
        }
    }
    for pid in found.into_iter().rev() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    unsafe { libc::kill(root, libc::SIGKILL) };
}

/// A pseudo-terminal master, for `-t`.
struct Pty(File);

impl Pty {
    /// Opens a pair sized 80x24 (the host sends its size next).
    fn open() -> std::io::Result<(Pty, OwnedFd)> {
        let (mut master, mut slave) = (0, 0);
        let size = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let ret = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        if ret != 0 {
            return Err(std::io::Error::last_os_error());
        }
        for fd in [master, slave] {
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Ok(unsafe { (Pty(File::from_raw_fd(master)), OwnedFd::from_raw_fd(slave)) })
    }

    fn resize(&self, cols: u16, rows: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        unsafe { libc::ioctl(self.0.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    }
}

fn set_nonblocking(fd: RawFd) {
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

fn spawn_interactive(spec: &Spec, tty: bool) -> std::io::Result<(Child, Option<Pty>)> {
    let mut cmd = spec.command();
    if !tty {
        // No new session: as with smolvm-agent, the command stays in the
        // agent's session and process group.
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        return Ok((cmd.spawn()?, None));
    }
    let (pty, slave) = Pty::open()?;
    let raw = slave.as_raw_fd();
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(raw, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(slave);
    Ok((child, Some(pty)))
}

/// An interactive exec (`Started`, then `Stdout`/`Stderr` frames, then
/// `Exited`), with `Stdin` and `Resize` frames from the client.
pub fn interactive(stream: &mut UnixStream, request: AgentRequest) -> Result<(), Failure> {
    let (spec, timeout_ms, tty) = match request {
        AgentRequest::VmExec {
            command,
            env,
            workdir,
            timeout_ms,
            tty,
            ..
        } => (
            Spec {
                command,
                env,
                workdir,
                image: false,
            },
            timeout_ms,
            tty,
        ),
        AgentRequest::Run {
            command,
            env,
            workdir,
            timeout_ms,
            tty,
            ..
        } => (
            Spec {
                command,
                env,
                workdir,
                image: true,
            },
            timeout_ms,
            tty,
        ),
        _ => unreachable!("only exec requests are interactive"),
    };
    if spec.command.is_empty() {
        return send(stream, &empty_command());
    }
    let (mut child, pty) = match spawn_interactive(&spec, tty) {
        Ok(spawned) => spawned,
        Err(e) => {
            return send(
                stream,
                &AgentResponse::from_err(e, error_codes::SPAWN_FAILED),
            )
        }
    };
    send(stream, &AgentResponse::Started)?;
    let deadline = timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
    let result = match pty {
        Some(pty) => pty_loop(stream, &mut child, pty, deadline),
        None => pipe_loop(stream, &mut child, deadline),
    };
    let exit_code = match result {
        Ok(code) => code,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    send(
        stream,
        &AgentResponse::Exited {
            exit_code,
            oom: false,
        },
    )
}

/// What smolvm-agent does when the client goes away mid-session: SIGKILL
/// the command process only.
fn kill_child(child: &mut Child) -> i32 {
    let _ = child.kill();
    let _ = child.wait();
    TIMEOUT_EXIT_CODE
}

fn poll_ms(deadline: Option<Instant>) -> libc::c_int {
    let left = deadline.map_or(INTERACTIVE_POLL_MS, |at| {
        at.saturating_duration_since(Instant::now()).as_millis()
    });
    left.min(INTERACTIVE_POLL_MS) as libc::c_int
}

fn poll(fds: &mut [libc::pollfd], ms: libc::c_int) {
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

enum Incoming {
    Stdin(Vec<u8>),
    Resize(u16, u16),
    Other,
    Gone,
}

/// One frame from the client; a failed read means the client is gone.
fn incoming(stream: &mut UnixStream) -> Result<Incoming, Failure> {
    let raw = match read_frame(stream) {
        Ok(Frame::Payload(raw)) => raw,
        Ok(Frame::TooLarge(len)) => return Err(format!("message too large: {len} bytes").into()),
        Ok(Frame::End) | Err(_) => return Ok(Incoming::Gone),
    };
    Ok(match serde_json::from_slice::<AgentRequest>(&raw)? {
        AgentRequest::Stdin { data } => Incoming::Stdin(data),
        AgentRequest::Resize { cols, rows } => Incoming::Resize(cols, rows),
        _ => Incoming::Other,
    })
}

/// Forwards what is readable on `pipe` as frames; `Ok(false)` when the
/// client is gone. The pipe is dropped at end of file.
fn forward(
    stream: &mut UnixStream,
    pipe: &mut Option<impl Read>,
    frame: fn(Vec<u8>) -> AgentResponse,
) -> Result<bool, Failure> {
    let mut buf = [0u8; IO_BUFFER_SIZE];
    while let Some(reader) = pipe {
        match reader.read(&mut buf) {
            Ok(0) => *pipe = None,
            Ok(n) => {
                if send(stream, &frame(buf[..n].to_vec())).is_err() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => *pipe = None,
        }
    }
    Ok(true)
}

fn stdout_frame(data: Vec<u8>) -> AgentResponse {
    AgentResponse::Stdout { data }
}

fn stderr_frame(data: Vec<u8>) -> AgentResponse {
    AgentResponse::Stderr { data }
}

fn pipe_loop(
    stream: &mut UnixStream,
    child: &mut Child,
    deadline: Option<Instant>,
) -> Result<i32, Failure> {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut stdin = child.stdin.take();
    for fd in [
        stdout.as_ref().map(|p| p.as_raw_fd()),
        stderr.as_ref().map(|p| p.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd);
    }
    loop {
        if let Some(status) = child.try_wait()? {
            // What is already in the pipes; a descendant still writing to
            // them is not waited for.
            forward(stream, &mut stdout, stdout_frame)?;
            forward(stream, &mut stderr, stderr_frame)?;
            return Ok(exit_code(status));
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            return Ok(kill_child(child));
        }
        let raw = |p: Option<RawFd>| p.unwrap_or(-1);
        let mut fds = [
            pollfd(raw(stdout.as_ref().map(|p| p.as_raw_fd()))),
            pollfd(raw(stderr.as_ref().map(|p| p.as_raw_fd()))),
            pollfd(stream.as_raw_fd()),
        ];
        poll(&mut fds, poll_ms(deadline));
        if fds[0].revents != 0 && !forward(stream, &mut stdout, stdout_frame)? {
            return Ok(kill_child(child));
        }
        if fds[1].revents != 0 && !forward(stream, &mut stderr, stderr_frame)? {
            return Ok(kill_child(child));
        }
        if fds[2].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            match incoming(stream)? {
                Incoming::Gone => return Ok(kill_child(child)),
                // Empty data is the client's end of input.
                Incoming::Stdin(data) if data.is_empty() => stdin = None,
                Incoming::Stdin(data) => {
                    if let Some(pipe) = stdin.as_mut() {
                        let _ = pipe.write_all(&data);
                    }
                }
                Incoming::Resize(..) | Incoming::Other => {}
            }
        }
    }
}

fn pty_loop(
    stream: &mut UnixStream,
    child: &mut Child,
    mut pty: Pty,
    deadline: Option<Instant>,
) -> Result<i32, Failure> {
    set_nonblocking(pty.0.as_raw_fd());
    let mut buf = [0u8; IO_BUFFER_SIZE];
    loop {
        if let Some(status) = child.try_wait()? {
            while let Ok(n) = pty.0.read(&mut buf) {
                if n == 0 {
                    break;
                }
                send(stream, &stdout_frame(buf[..n].to_vec()))?;
            }
            return Ok(exit_code(status));
        }
        if deadline.is_some_and(|at| Instant::now() >= at) {
            return Ok(kill_child(child));
        }
        let mut fds = [pollfd(pty.0.as_raw_fd()), pollfd(stream.as_raw_fd())];
        poll(&mut fds, poll_ms(deadline));
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            let mut slave_closed = false;
            loop {
                match pty.0.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if send(stream, &stdout_frame(buf[..n].to_vec())).is_err() {
                            return Ok(kill_child(child));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // EIO: the slave side is closed, the command is ending.
                    Err(_) => {
                        slave_closed = true;
                        break;
                    }
                }
            }
            if slave_closed {
                return Ok(exit_code(child.wait()?));
            }
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            match incoming(stream)? {
                Incoming::Gone => return Ok(kill_child(child)),
                // A terminal has no half-close: end of input is VEOF, twice
                // in case the last line had no newline.
                Incoming::Stdin(data) if data.is_empty() => {
                    let _ = pty.0.write_all(&[0x04, 0x04]);
                }
                Incoming::Stdin(data) => {
                    let _ = pty.0.write_all(&data);
                }
                Incoming::Resize(cols, rows) => pty.resize(cols, rows),
                Incoming::Other => {}
            }
        }
    }
}
