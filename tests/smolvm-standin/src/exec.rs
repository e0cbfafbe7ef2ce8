//! `machine exec`: run a command in a machine, as root, with argv passed
//! through untouched.
//!
//! Process layout: stand-in → guest init (pid 1 of a new PID namespace,
//! enters the machine, reaps) → the command (new session, exec'd). Init
//! exits with the command's status, or 128 + signal, and its exit takes
//! every other guest process with it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use crate::cli::ExecArgs;
use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::machine::{self, Store};
use crate::spawn::{self, Report, Reporter};
use crate::{name, sys};

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

fn guest_env(args: &ExecArgs, machine_env: &[(String, String)]) -> Result<Env> {
    let mut env = Env::default();
    env.set("PATH", GUEST_PATH.as_bytes());
    env.set("HOME", b"/root");
    if args.tty {
        // Before the -e settings, so that an explicit TERM wins.
        let term = std::env::var_os("TERM").filter(|t| !t.is_empty());
        env.set(
            "TERM",
            term.as_ref().map_or(b"xterm".as_slice(), |t| t.as_bytes()),
        );
    }
    for (k, v) in machine_env {
        env.set(k, v.as_bytes());
    }
    for text in &args.env {
        let (k, v) = machine::parse_pair("environment variable", text)?;
        env.set(&k, v.as_bytes());
    }
    for text in &args.secret_env {
        let (guest, host) = match text.split_once('=') {
            Some((g, h)) if !g.is_empty() && !h.is_empty() => (g, h),
            _ => {
                return Err(Error::new(format!(
                    "invalid --secret-env '{text}': expected GUEST_VAR=HOST_VAR"
                )))
            }
        };
        let value = std::env::var_os(host)
            .ok_or_else(|| Error::new(format!("secret env var {host} is not set")))?;
        env.set(guest, value.as_bytes());
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

/// What the command child needs, all prepared before fork.
struct Command {
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    workdir: CString,
    display_workdir: String,
    program: String,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Command {
    /// In the command process; returns only on failure.
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
        if unsafe { libc::chdir(self.workdir.as_ptr()) } != 0 {
            let err = std::io::Error::last_os_error();
            reporter.send(
                spawn::SETUP_FAILED,
                &format!(
                    "cannot change to working directory '{}': {}",
                    self.display_workdir,
                    os_text(&err)
                ),
            );
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
        let err = std::io::Error::from_raw_os_error(error);
        reporter.send(
            spawn::EXEC_FAILED,
            &format!("{}: {}", self.program, os_text(&err)),
        );
        127
    }
}

/// Guest init: enter the machine, start the command, reap until it exits.
fn guest_init(guest: &Guest, command: &Command, reporter: &Reporter) -> i32 {
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
    // Init must not hold pipe ends, or EOF would wait for init's own exit.
    for fd in [command.stdout, command.stderr, Some(reporter.fd())]
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

pub fn run(args: ExecArgs) -> Result<i32> {
    let name = &args.machine.name;
    name::validate(name)?;
    let store = Store::open()?;
    let machine = store.load(name)?;
    machine.ensure_running()?;
    let env = guest_env(&args, &machine.env)?;
    let guest = Guest::new(&store, &machine)?;
    let program = args.command[0].clone();
    let workdir = args.workdir.clone().unwrap_or_else(|| "/".to_string());
    let stream = args.stream || args.tty;

    let pipe_err = |e: std::io::Error| Error::new(format!("pipe: {}", os_text(&e)));
    let (out_read, out_write) = if stream {
        (None, None)
    } else {
        let (r, w) = sys::pipe().map_err(pipe_err)?;
        (Some(r), Some(w))
    };
    let (err_read, err_write) = if stream {
        (None, None)
    } else {
        let (r, w) = sys::pipe().map_err(pipe_err)?;
        (Some(r), Some(w))
    };
    for fd in [&out_read, &err_read].into_iter().flatten() {
        // Fewer wakeups for big outputs; the default 64 KiB works too.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    }
    let devnull = if args.interactive {
        None
    } else {
        let path = sys::cstring("/dev/null")?;
        Some(
            sys::open(&path, libc::O_RDONLY, 0)
                .map_err(|e| Error::new(format!("open /dev/null: {}", os_text(&e))))?,
        )
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
        display_workdir: workdir,
        program,
        stdin: sys::raw(&devnull),
        stdout: sys::raw(&out_write),
        stderr: sys::raw(&err_write),
    };

    let child = spawn::spawn(|reporter| guest_init(&guest, &command, reporter))?;
    drop((out_write, err_write, devnull));
    let outcome = supervise(
        &child,
        out_read,
        err_read,
        args.timeout.as_ref().map(|t| t.duration),
    )?;

    // Output first, as smolvm writes it once the command is done: all of
    // stdout, then all of stderr. A reader that went away is not our error.
    let _ = sys::write_all(1, &outcome.stdout);
    let _ = sys::write_all(2, &outcome.stderr);
    if let Some(report) = Report::parse(&outcome.report) {
        if report.kind == spawn::EXEC_FAILED {
            eprintln!("Error: exec failed: {}", report.message);
            return Ok(127);
        }
        return Err(Error::new(report.message));
    }
    if outcome.timed_out {
        let text = &args
            .timeout
            .as_ref()
            .expect("timed out without a timeout")
            .text;
        eprintln!("Error: command timed out after {text}");
        return Ok(124);
    }
    Ok(sys::exit_code(outcome.status))
}

struct Outcome {
    status: libc::c_int,
    timed_out: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    report: Vec<u8>,
}

/// Waits for the guest while draining its report pipe and (unless
/// streaming) both output pipes in one poll loop, so neither pipe can fill
/// up and block the command. On timeout, kills guest init and keeps
/// draining: what was written until then is still delivered.
fn supervise(
    child: &spawn::Child,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    timeout: Option<std::time::Duration>,
) -> Result<Outcome> {
    let os = |what: &str, e: std::io::Error| Error::new(format!("{what}: {}", os_text(&e)));
    let pidfd = sys::pidfd_open(child.pid).map_err(|e| os("pidfd_open", e))?;
    let mut deadline = timeout.map(|t| Instant::now() + t);
    let mut sources: [(Option<RawFd>, Vec<u8>); 3] = [
        (Some(child.report.as_raw_fd()), Vec::new()),
        (sys::raw(&stdout), Vec::new()),
        (sys::raw(&stderr), Vec::new()),
    ];
    let mut exited = false;
    let mut timed_out = false;
    while !exited || sources.iter().any(|(fd, _)| fd.is_some()) {
        let mut pfds: Vec<libc::pollfd> = sources
            .iter()
            .map(|(fd, _)| fd.unwrap_or(-1))
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
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
            timed_out = true;
            deadline = None;
            continue;
        }
        for ((fd, data), pfd) in sources.iter_mut().zip(&pfds) {
            if let Some(raw) = *fd {
                if pfd.revents != 0
                    && sys::read_append(raw, data, CHUNK).map_err(|e| os("read", e))? == 0
                {
                    *fd = None;
                }
            }
        }
        if pfds[3].revents != 0 {
            exited = true;
        }
    }
    child.disarm();
    let status = sys::waitpid(child.pid).map_err(|e| os("waitpid", e))?;
    let [(_, report), (_, stdout), (_, stderr)] = sources;
    Ok(Outcome {
        status,
        timed_out,
        stdout,
        stderr,
        report,
    })
}
