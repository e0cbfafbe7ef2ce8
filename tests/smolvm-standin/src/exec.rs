//! `machine exec`: run a command in a machine, as root, with argv passed
//! through untouched.
//!
//! Process layout: stand-in → guest init (pid 1 of a new PID namespace,
//! enters the machine, reaps) → the command (new session, exec'd). Init
//! exits with the command's status, or 128 + signal, and its exit takes
//! every other guest process with it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::cli::ExecArgs;
use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::machine::{self, Machine, State, Store};
use crate::spawn::{self, Report, Reporter};
use crate::{name, sys};

/// smolvm's limit on the output of one exec: per stream for a buffered
/// exec (in its agent), in total for `--stream` (in its CLI).
pub const OUTPUT_CAP: usize = 11_534_336;

const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Read size for captured output; large reads keep 64 MiB outputs cheap.
const CHUNK: usize = 1 << 20;

/// The guest's environment: start empty, later settings replace earlier
/// ones. Values are bytes because `--secret-env` values come from this
/// process's environment, which need not be UTF-8.
#[derive(Default)]
struct Env(Vec<(String, Vec<u8>)>);

impl Env {
    fn set(&mut self, key: &str, value: &[u8]) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_vec(),
            None => self.0.push((key.to_string(), value.to_vec())),
        }
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn to_c(&self) -> Result<Vec<CString>> {
        self.0
            .iter()
            .map(|(k, v)| sys::cstring([k.as_bytes(), b"=", v].concat()))
            .collect()
    }
}

/// The environment smolvm's launcher gives a bare machine's guest, which
/// its commands inherit: `HOME`, `PATH`, `TERM`, the host's clock at boot,
/// the machine's name, the boot's readiness marker and the volumes.
fn base_env(machine: &Machine) -> Env {
    let mut env = Env::default();
    env.set("HOME", b"/root");
    env.set("PATH", GUEST_PATH.as_bytes());
    env.set("TERM", b"xterm-256color");
    env.set(
        "SMOLVM_HOST_TIME_NS",
        machine.started_ns.to_string().as_bytes(),
    );
    env.set("SMOLVM_MACHINE_NAME", machine.name.as_bytes());
    // smolvm draws the marker at random per boot; the stand-in derives it
    // from the start time, so it too changes with each start.
    let marker = format!(".smolvm-ready.{:016x}", mix(machine.started_ns as u64));
    env.set("SMOLVM_READY_MARKER", marker.as_bytes());
    for (i, v) in machine.volumes.iter().enumerate() {
        let access = if v.read_only { "ro" } else { "rw" };
        let value = format!("smolvm{i}:{}:{access}", v.guest);
        env.set(&format!("SMOLVM_MOUNT_{i}"), value.as_bytes());
    }
    if !machine.volumes.is_empty() {
        let count = machine.volumes.len().to_string();
        env.set("SMOLVM_MOUNT_COUNT", count.as_bytes());
    }
    env
}

/// splitmix64's finaliser: spreads a start time over 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn secret_error(why: String) -> Error {
    Error::new(format!("config operation failed: --secret-env: {why}"))
}

/// `--secret-env GUEST=HOST`, as smolvm takes them: every spec is checked
/// first (shape, name, repeats), then the values are read from this
/// process's environment in the order of the guest names.
fn secrets(specs: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut refs: BTreeMap<String, String> = BTreeMap::new();
    for spec in specs {
        let (key, host) = spec
            .split_once('=')
            .ok_or_else(|| secret_error(format!("expected KEY=VALUE, got '{spec}'")))?;
        if key.is_empty() {
            return Err(secret_error(format!("empty secret name in '{spec}'")));
        }
        if refs.insert(key.to_string(), host.to_string()).is_some() {
            return Err(secret_error(format!(
                "secret '{key}' specified more than once"
            )));
        }
    }
    refs.into_iter()
        .map(|(key, host)| match std::env::var_os(&host) {
            Some(value) if !host.is_empty() => Ok((key, value.as_bytes().to_vec())),
            _ => Err(Error::new(format!(
                "config operation failed: resolve secret '{key}': env_unset"
            ))),
        })
        .collect()
}

/// The guest's environment: the base, then the machine's create-time `-e`,
/// then the secrets, then exec's `-e` (later settings of a name win), as
/// smolvm layers them.
fn guest_env(args: &ExecArgs, machine: &Machine) -> Result<Env> {
    let mut env = base_env(machine);
    for (k, v) in &machine.env {
        env.set(k, v.as_bytes());
    }
    for (k, v) in secrets(&args.secret_env)? {
        env.set(&k, &v);
    }
    for text in &args.env {
        if let Some((k, v)) = machine::parse_env_spec(text) {
            env.set(&k, v.as_bytes());
        }
    }
    Ok(env)
}

/// The paths execvp would try, in order, for `program` under `path`.
fn candidates(program: &str, path: &[u8]) -> Result<Vec<CString>> {
    if program.is_empty() {
        // Nothing to try: execution fails with ENOENT, as execvp("") does.
        return Ok(Vec::new());
    }
    if program.contains('/') {
        return Ok(vec![sys::cstring(program)?]);
    }
    path.split(|b| *b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            sys::cstring([dir, b"/", program.as_bytes()].concat())
        })
        .collect()
}

/// The three ways smolvm runs an exec (docs/SMOLVM-CLI.md).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No flags: output kept whole, written when the command has ended.
    Buffered,
    /// `--stream`: output passed on as produced, capped in total; stdin a
    /// pipe that never gets data nor end of file.
    Stream,
    /// `-i` or `-t`: output passed on as produced, uncapped; stdin ours.
    Interactive,
}

impl Mode {
    /// The operation name smolvm puts before a failure to start the command.
    fn spawn_failure(self, errno: i32) -> String {
        let err = std::io::Error::from_raw_os_error(errno);
        match self {
            Mode::Buffered => {
                format!("agent operation failed: vm exec: failed to spawn command: {err}")
            }
            Mode::Stream => format!("agent operation failed: streaming exec: {err}"),
            Mode::Interactive => format!("agent operation failed: vm exec interactive: {err}"),
        }
    }
}

/// What a timeout kills, as smolvm's agent does for each way of running.
#[derive(Clone, Copy)]
enum Kill {
    /// The command's process group (a buffered exec; the command leads a
    /// new session).
    Group,
    /// The command's first process only (`--stream`, `-i`).
    Process,
    /// Every process of the command (an image machine, where the container
    /// runtime stops the whole tree): the guest init, so its namespace.
    Everything,
}

/// Signals the stand-in sends the guest init to have it kill the command:
/// the init knows the command's pid in its namespace, the stand-in does not.
const KILL_GROUP: libc::c_int = libc::SIGUSR1;
const KILL_PROCESS: libc::c_int = libc::SIGUSR2;

/// In the guest init: the command's pid (0 until it is forked), and a kill
/// request that arrived before that.
static COMMAND_PID: AtomicI32 = AtomicI32::new(0);
static PENDING_KILL: AtomicI32 = AtomicI32::new(0);

fn kill_command(request: libc::c_int, pid: libc::pid_t) {
    let target = if request == KILL_GROUP { -pid } else { pid };
    unsafe { libc::kill(target, libc::SIGKILL) };
}

/// Only async-signal-safe calls here.
extern "C" fn on_kill_request(sig: libc::c_int) {
    let pid = COMMAND_PID.load(Ordering::SeqCst);
    if pid > 0 {
        kill_command(sig, pid);
    } else {
        PENDING_KILL.store(sig, Ordering::SeqCst);
    }
}

/// A namespace's init gets a signal from outside only if it has a handler
/// for it; until this runs, the stand-in's requests are lost, which is why
/// it repeats them.
fn install_kill_handlers() {
    for sig in [KILL_GROUP, KILL_PROCESS] {
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_kill_request as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// What the command child needs, all prepared before fork.
struct Command {
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    workdir: CString,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    /// The stand-in's read ends of the output pipes. The guest init must
    /// not keep them open: once the stand-in stops reading a capped stream,
    /// the command's next write has to fail, as in smolvm.
    readers: [Option<RawFd>; 2],
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Command {
    /// In the command process; returns only on failure, having reported
    /// the errno (the caller words it as smolvm does for the mode).
    fn exec(&self, reporter: &Reporter) -> i32 {
        unsafe { libc::setsid() };
        spawn::reset_signals();
        for (from, to) in [(self.stdin, 0), (self.stdout, 1), (self.stderr, 2)] {
            if let Some(fd) = from {
                if let Err(e) = sys::dup2(fd, to) {
                    reporter.send(spawn::SETUP_FAILED, &format!("dup2: {}", os_text(&e)));
                    return 1;
                }
            }
        }
        unsafe {
            libc::umask(0o022);
            libc::setgroups(0, std::ptr::null());
        }
        // A working directory that cannot be entered fails the spawn, as
        // in smolvm's agent (std's Command does the chdir).
        if unsafe { libc::chdir(self.workdir.as_ptr()) } != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            reporter.send(spawn::EXEC_FAILED, &errno.to_string());
            return 1;
        }
        // Nothing the stand-in inherited (a caller's fd 7, say) reaches the
        // guest. Close-on-exec rather than close: the report pipe must stay
        // open until execve succeeds.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        let argv = null_terminated(&self.argv);
        let envp = null_terminated(&self.envp);
        // execvp's rules: skip entries that do not exist, remember EACCES.
        let mut error = libc::ENOENT;
        for candidate in &self.candidates {
            unsafe { libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            match errno {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => error = libc::EACCES,
                other => {
                    error = other;
                    break;
                }
            }
        }
        reporter.send(spawn::EXEC_FAILED, &error.to_string());
        127
    }
}

/// Guest init: enter the machine, start the command, reap until it exits.
fn guest_init(guest: &Guest, command: &Command, reporter: &Reporter) -> i32 {
    install_kill_handlers();
    for fd in command.readers.into_iter().flatten() {
        unsafe { libc::close(fd) };
    }
    if let Err(message) = guest.enter() {
        reporter.send(spawn::SETUP_FAILED, &message);
        return 1;
    }
    let pid = match sys::fork() {
        Ok(0) => unsafe { libc::_exit(command.exec(reporter)) },
        Ok(pid) => pid,
        Err(e) => {
            reporter.send(spawn::SETUP_FAILED, &format!("fork: {}", os_text(&e)));
            return 1;
        }
    };
    COMMAND_PID.store(pid, Ordering::SeqCst);
    let early = PENDING_KILL.swap(0, Ordering::SeqCst);
    if early != 0 {
        kill_command(early, pid);
    }
    // Init must not hold pipe ends, or EOF would wait for init's own exit.
    for fd in [
        command.stdin,
        command.stdout,
        command.stderr,
        Some(reporter.fd()),
    ]
    .into_iter()
    .flatten()
    {
        unsafe { libc::close(fd) };
    }
    loop {
        let mut status = 0;
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped == pid {
            return sys::exit_code(status);
        }
        if reaped < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 1;
        }
    }
}

/// The machine, checked as smolvm checks it before connecting: an exec
/// without `--name` is worded differently.
fn running_machine(store: &Store, args: &ExecArgs) -> Result<Machine> {
    let explicit = args.name.is_some();
    let name = args.name.as_deref().unwrap_or("default");
    name::validate(name)?;
    let machine = match store.load(name) {
        Err(_) if !explicit && !store.machine_dir(name).exists() => {
            return Err(Error::new(format!(
                "agent operation failed: connect: machine '{name}' not found"
            )))
        }
        other => other?,
    };
    if machine.state != State::Running && !explicit {
        return Err(Error::new(format!(
            "agent operation failed: connect: machine '{name}' is not running. \
             Use 'smolvm machine start' first."
        )));
    }
    machine.ensure_running()?;
    Ok(machine)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    sys::pipe().map_err(|e| Error::new(format!("pipe: {}", os_text(&e))))
}

pub fn run(args: ExecArgs) -> Result<i32> {
    let store = Store::open()?;
    let machine = running_machine(&store, &args)?;
    let env = guest_env(&args, &machine)?;
    let guest = Guest::new(&store, &machine)?;
    let program = args.command[0].clone();
    let workdir = args.workdir.clone().unwrap_or_else(|| "/".to_string());
    let image = machine.image.is_some();
    let mode = if args.interactive || args.tty {
        Mode::Interactive
    } else if args.stream {
        Mode::Stream
    } else {
        Mode::Buffered
    };
    let kill = match mode {
        _ if image => Kill::Everything,
        Mode::Buffered => Kill::Group,
        Mode::Stream | Mode::Interactive => Kill::Process,
    };

    // -i and -t hand the command our own stdio: passed on as produced,
    // uncapped, stdin ours until its end. The other modes go through pipes.
    let (out_read, out_write, err_read, err_write) = if mode == Mode::Interactive {
        (None, None, None, None)
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        (Some(out_r), Some(out_w), Some(err_r), Some(err_w))
    };
    for fd in [&out_read, &err_read].into_iter().flatten() {
        // Fewer wakeups for big outputs; the default 64 KiB works too.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    }
    // `--stream`: smolvm's CLI neither writes to the command's stdin nor
    // closes it, so the write end stays open, unused, until the exec ends.
    let (stdin_read, _stdin_write) = match mode {
        Mode::Interactive => (None, None),
        Mode::Stream => {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        }
        Mode::Buffered => {
            let path = sys::cstring("/dev/null")?;
            let null = sys::open(&path, libc::O_RDONLY, 0)
                .map_err(|e| Error::new(format!("open /dev/null: {}", os_text(&e))))?;
            (Some(null), None)
        }
    };

    let command = Command {
        candidates: candidates(&program, env.get("PATH").unwrap_or_default())?,
        argv: args
            .command
            .iter()
            .map(|a| sys::cstring(a.as_str()))
            .collect::<Result<_>>()?,
        envp: env.to_c()?,
        workdir: sys::cstring(workdir.as_str())?,
        stdin: sys::raw(&stdin_read),
        stdout: sys::raw(&out_write),
        stderr: sys::raw(&err_write),
        readers: [sys::raw(&out_read), sys::raw(&err_read)],
    };

    let child = spawn::spawn(|reporter| guest_init(&guest, &command, reporter))?;
    drop((out_write, err_write, stdin_read));
    let mut outcome = supervise(&child, mode, out_read, err_read, args.timeout, kill)?;

    if outcome.capped {
        // The CLI gave up; its agent then kills the command as for a
        // vanished client (and the stand-in ends the whole guest anyway).
        eprintln!(
            "error: streaming output exceeded {OUTPUT_CAP} byte cap; exec terminated (output truncated)"
        );
        return Ok(1);
    }
    if let Some(report) = Report::parse(&outcome.report) {
        if report.kind == spawn::EXEC_FAILED {
            let errno: i32 = report.message.parse().unwrap_or(libc::EIO);
            if image {
                // In an image machine the container runtime starts the
                // command: its failure is crun's message and status 127.
                let err = std::io::Error::from_raw_os_error(errno);
                eprintln!(
                    "crun: executable file `{program}` not found in $PATH: {}",
                    os_text(&err)
                );
                return Ok(127);
            }
            return Err(Error::new(mode.spawn_failure(errno)));
        }
        return Err(Error::new(report.message));
    }
    if mode == Mode::Buffered
        && (outcome.stdout.len() > OUTPUT_CAP || outcome.stderr.len() > OUTPUT_CAP)
    {
        return Err(Error::new(format!(
            "agent operation failed: vm exec: command output exceeded {OUTPUT_CAP} bytes and \
             was truncated. Use streaming exec (exec_stream / execStream) for large output."
        )));
    }
    if outcome.timed_out && image {
        let ms = args.timeout.map_or(0, |t| t.as_millis());
        let note = format!("\ncommand timed out after {ms}ms");
        if mode == Mode::Buffered {
            outcome.stderr.extend_from_slice(note.as_bytes());
        } else {
            let _ = sys::write_all(2, note.as_bytes());
        }
    }
    // A buffered exec's output comes once the command is done, as smolvm
    // writes it: all of stdout, then all of stderr. A reader that went away
    // is not our error.
    let _ = sys::write_all(1, &outcome.stdout);
    let _ = sys::write_all(2, &outcome.stderr);
    // On a bare machine a timeout prints nothing: only the status tells.
    if outcome.timed_out {
        return Ok(124);
    }
    Ok(sys::exit_code(outcome.status))
}

struct Outcome {
    status: libc::c_int,
    timed_out: bool,
    /// `--stream` output reached the cap; the guest has been ended.
    capped: bool,
    /// A buffered exec's output (at most one byte over the cap each).
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    report: Vec<u8>,
}

/// How often a kill request is repeated until the guest init is gone: the
/// init may not have its handlers yet when the first one is sent.
const KILL_REPEAT: Duration = Duration::from_millis(100);

/// Waits for the guest while draining its report pipe and (unless
/// interactive) both output pipes in one poll loop, so neither pipe can fill
/// up and block the command. A buffered exec keeps each stream up to one
/// byte over the cap and then stops reading it (the command's next write
/// fails, as in smolvm); `--stream` passes output on as it comes and gives
/// up once the total reaches the cap. On timeout, what `kill` says is
/// killed; what was written until then is still delivered.
fn supervise(
    child: &spawn::Child,
    mode: Mode,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    timeout: Option<Duration>,
    kill: Kill,
) -> Result<Outcome> {
    let os = |what: &str, e: std::io::Error| Error::new(format!("{what}: {}", os_text(&e)));
    let pidfd = sys::pidfd_open(child.pid).map_err(|e| os("pidfd_open", e))?;
    let mut deadline = timeout.map(|t| Instant::now() + t);
    let report_fd = child.report.as_raw_fd();
    // (fd, where its data goes: 0 keep as report, 1/2 our stdout/stderr)
    let mut sources: [(Option<OwnedFd>, RawFd, Vec<u8>); 2] =
        [(stdout, 1, Vec::new()), (stderr, 2, Vec::new())];
    let mut report_open = true;
    let mut report = Vec::new();
    let mut exited = false;
    let mut timed_out = false;
    let mut capped = false;
    let mut relayed = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while !exited || report_open || sources.iter().any(|(fd, _, _)| fd.is_some()) {
        let mut pfds: Vec<libc::pollfd> = std::iter::once(if report_open { report_fd } else { -1 })
            .chain(
                sources
                    .iter()
                    .map(|(fd, _, _)| fd.as_ref().map_or(-1, |f| f.as_raw_fd())),
            )
            .chain(std::iter::once(if exited { -1 } else { pidfd.as_raw_fd() }))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let wait_ms = match deadline {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Round up, or a sub-millisecond rest spins with timeout 0.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
            }
        };
        let ready = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, wait_ms) };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(os("poll", err));
        }
        if ready == 0 {
            timed_out = true;
            deadline = if exited {
                None
            } else {
                let request = match kill {
                    Kill::Group => KILL_GROUP,
                    Kill::Process => KILL_PROCESS,
                    Kill::Everything => libc::SIGKILL,
                };
                unsafe { libc::kill(child.pid, request) };
                Some(Instant::now() + KILL_REPEAT)
            };
            continue;
        }
        if report_open
            && pfds[0].revents != 0
            && sys::read_append(report_fd, &mut report, 4096).map_err(|e| os("read", e))? == 0
        {
            report_open = false;
        }
        for ((fd, target, data), pfd) in sources.iter_mut().zip(&pfds[1..3]) {
            let Some(raw) = fd.as_ref().map(|f| f.as_raw_fd()) else {
                continue;
            };
            if pfd.revents == 0 {
                continue;
            }
            if mode == Mode::Buffered {
                let n = sys::read_append(raw, data, CHUNK).map_err(|e| os("read", e))?;
                if n == 0 || data.len() > OUTPUT_CAP {
                    *fd = None;
                }
                continue;
            }
            let n = sys::read(raw, &mut buf).map_err(|e| os("read", e))?;
            if n == 0 {
                *fd = None;
                continue;
            }
            let _ = sys::write_all(*target, &buf[..n]);
            relayed += n;
            if relayed >= OUTPUT_CAP {
                capped = true;
            }
        }
        if capped {
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
            break;
        }
        if pfds[3].revents != 0 {
            exited = true;
        }
    }
    child.disarm();
    let status = sys::waitpid(child.pid).map_err(|e| os("waitpid", e))?;
    let [(_, _, stdout), (_, _, stderr)] = sources;
    Ok(Outcome {
        status,
        timed_out,
        capped,
        stdout,
        stderr,
        report,
    })
}
