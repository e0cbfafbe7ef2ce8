//! Starting smolvm so that it gets exactly what it should and nothing of the
//! host's, and stopping it with everything it started.
//!
//! The child gets:
//! - its stdio and, for a copy, the one descriptor it is handed; every other
//!   descriptor of the host is closed, close-on-exec or not;
//! - every signal at its default action and none blocked, whatever the host
//!   ignores or blocks (an ignored SIGTERM would make every stop wait for
//!   SIGKILL);
//! - its own process group, unless it must share the caller's terminal, so
//!   a stop reaches the processes smolvm started too;
//! - SIGTERM when the thread that started it dies (`PR_SET_PDEATHSIG`), so
//!   a host killed mid-call leaves no smolvm behind: smolvm stops its guest
//!   command on SIGTERM. The death signal follows the spawning *thread*,
//!   which is safe because that thread waits for the child before it
//!   returns.
//!
//! Only the death signal needs code in the child, and that rules out
//! `posix_spawn`; a `pre_exec` closure would make `Command` fork, whose
//! page-table copy costs tens of milliseconds in a host with gigabytes
//! resident (BENCHMARKS.md). So the child is started the way `posix_spawn`
//! itself does it: `clone(CLONE_VM | CLONE_VFORK)`, sharing the parent's
//! memory on a stack of its own, with the parent suspended until the child
//! has exec'd. The child makes raw system calls only, on data prepared
//! before the clone, with every signal blocked so no handler of the host
//! runs in it.
//!
//! That is why this file, alone in the core, still calls `libc` in
//! `unsafe` blocks: the clone itself, the signal mask around it (the raw
//! `rt_sigprocmask` reaches glibc's internal signals, which neither
//! `sigprocmask` nor a safe wrapper will touch), and the child's code. In
//! the child every call is one from POSIX's list of async-signal-safe
//! functions or a raw `syscall`, so what it may do can be checked call by
//! call; a safe wrapper crate would hide whether a call goes through libc,
//! allocates or touches state the parent owns. The parent's side (pids,
//! limits, waiting, signalling) uses rustix's safe calls.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitIdOptions, WaitOptions};

/// smolvm names itself after argv[0] in its usage errors, which the library
/// recognises by `Usage: smolvm`; every child is smolvm.
pub(crate) const ARGV0: &str = "smolvm";

/// The signal a child gets when the thread that started it dies.
const DEATH_SIGNAL: libc::c_int = libc::SIGTERM;

/// The child's stack: it only makes system calls.
const CHILD_STACK: usize = 64 * 1024;

/// How long a child that is being stopped gets after SIGTERM (smolvm uses
/// it to stop the guest command) before SIGKILL.
pub(crate) const TERM_GRACE: Duration = Duration::from_millis(500);

/// What the child gets besides its command line.
pub(crate) struct Plan {
    /// The child's descriptors 0, 1 and 2, each above 2; `None` keeps the
    /// caller's own stdio.
    pub stdio: Option<[RawFd; 3]>,
    /// One more descriptor the child keeps, at the same number (above 2).
    pub pass_fd: Option<RawFd>,
    /// Start the child in a process group of its own.
    pub own_group: bool,
}

/// Why a child was not started.
#[derive(Debug)]
pub(crate) enum SpawnError {
    Io(io::Error),
    /// The command line and environment together exceed what the kernel
    /// passes to a new program.
    TooLarge {
        bytes: usize,
        limit: usize,
    },
}

/// A started child, not yet reaped.
#[derive(Debug)]
pub(crate) struct Process {
    pid: libc::pid_t,
    own_group: bool,
    status: Option<ExitStatus>,
}

/// Everything the child reads, prepared before the clone: it must not
/// allocate.
struct ChildData {
    path: CString,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    stdio: [RawFd; 3],
    pass_fd: RawFd,
    own_group: bool,
    parent: libc::pid_t,
    /// Where the fallback stops closing descriptors.
    fd_limit: libc::c_int,
    /// The errno of the step that failed in the child; 0 once it exec'd.
    error: AtomicI32,
}

/// The strings `argv` and `envp` point into.
struct Strings {
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// Starts `cmd` (program, arguments and environment changes; nothing else
/// of it is used) as `plan` says. The program is a path, not looked up on
/// PATH: smolvm's was made absolute when it was found.
pub(crate) fn spawn(cmd: &Command, plan: &Plan) -> Result<Process, SpawnError> {
    let strings = strings(cmd).map_err(SpawnError::Io)?;
    let path = cstring(cmd.get_program()).map_err(SpawnError::Io)?;
    check_size(&path, &strings)?;
    let mut data = ChildData {
        path,
        argv: pointers(&strings.argv),
        envp: pointers(&strings.envp),
        stdio: plan.stdio.unwrap_or([-1; 3]),
        pass_fd: plan.pass_fd.unwrap_or(-1),
        own_group: plan.own_group,
        parent: rustix::process::getpid().as_raw_pid(),
        fd_limit: fd_limit(),
        error: AtomicI32::new(0),
    };
    let mut stack = vec![0u8; CHILD_STACK];
    // The stack grows down on every architecture Linux runs this on that
    // matters here; 16-byte alignment is the strictest ABI's.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;

    let blocked = block_all_signals();
    // SAFETY: `child_main` only makes async-signal-safe system calls on
    // `data`, which outlives the child's use of it: with CLONE_VFORK the
    // parent resumes only once the child has exec'd or exited. `top` is
    // the aligned end of `stack`, which lives until after the clone
    // returns, and nothing else uses that memory.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut data as *mut ChildData).cast(),
        )
    };
    let clone_error = io::Error::last_os_error();
    restore_signals(&blocked);
    drop(stack);
    if pid < 0 {
        return Err(SpawnError::Io(clone_error));
    }
    let mut process = Process {
        pid,
        own_group: plan.own_group,
        status: None,
    };
    match data.error.load(Ordering::SeqCst) {
        0 => Ok(process),
        errno => {
            // The child has exited with 127; reap it.
            let _ = process.wait();
            Err(SpawnError::Io(io::Error::from_raw_os_error(errno)))
        }
    }
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// argv (with [`ARGV0`]) and the environment: the host's, with `cmd`'s
/// changes applied.
fn strings(cmd: &Command) -> io::Result<Strings> {
    let argv = std::iter::once(OsStr::new(ARGV0))
        .chain(cmd.get_args())
        .map(cstring)
        .collect::<io::Result<_>>()?;
    let envp = environment(cmd)
        .into_iter()
        .map(|(mut n, v)| {
            n.push("=");
            n.push(v);
            cstring(&n)
        })
        .collect::<io::Result<_>>()?;
    Ok(Strings { argv, envp })
}

/// The host's environment with `cmd`'s changes applied.
fn environment(cmd: &Command) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    for (name, value) in cmd.get_envs() {
        env.retain(|(n, _)| n != name);
        if let Some(value) = value {
            env.push((name.to_owned(), value.to_owned()));
        }
    }
    env
}

/// What execve will take: the strings, the program's path and a pointer per
/// string must fit in a quarter of the stack limit (at least 128 KiB, at
/// most 6 MiB), as the kernel counts them.
fn check_size(path: &CString, strings: &Strings) -> Result<(), SpawnError> {
    let count = strings.argv.len() + strings.envp.len();
    let bytes = strings
        .argv
        .iter()
        .chain(&strings.envp)
        .chain(std::iter::once(path))
        .map(|s| s.as_bytes_with_nul().len())
        .sum::<usize>()
        + count * std::mem::size_of::<*const libc::c_char>();
    let limit = exec_size_limit();
    if bytes > limit {
        return Err(SpawnError::TooLarge { bytes, limit });
    }
    Ok(())
}

/// What [`spawn`] would hand execve for `cmd`, counted as the kernel counts
/// it, without preparing anything.
pub(crate) fn command_size(cmd: &Command) -> usize {
    let ptr = std::mem::size_of::<*const libc::c_char>();
    let arg = |s: &OsStr| s.len() + 1 + ptr;
    let env = environment(cmd);
    arg(OsStr::new(ARGV0))
        + cmd.get_args().map(arg).sum::<usize>()
        + env
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2 + ptr)
            .sum::<usize>()
        + cmd.get_program().len()
        + 1
}

/// The kernel's limit on argv and environment together (bprm_stack_limits).
pub(crate) fn exec_size_limit() -> usize {
    const MIN: usize = 128 * 1024;
    const MAX: usize = 6 * 1024 * 1024;
    // No limit (None) is RLIM_INFINITY, which the kernel divides as well.
    let stack = rustix::process::getrlimit(rustix::process::Resource::Stack).current;
    let quarter = usize::try_from(stack.unwrap_or(u64::MAX) / 4).unwrap_or(usize::MAX);
    quarter.clamp(MIN, MAX)
}

/// Where closing descriptors one by one may stop, for kernels without
/// close_range (before 5.9): the soft RLIMIT_NOFILE, under which every
/// descriptor of the process lies unless the limit was lowered after it
/// was opened.
fn fd_limit() -> libc::c_int {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    nofile.map_or(libc::c_int::MAX, |n| {
        libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX)
    })
}

/// The kernel's signal mask, as rt_sigprocmask takes it.
type KernelSigset = u64;

/// Blocks every signal in this thread, glibc's internal ones included
/// (sigprocmask would leave those), and returns the previous mask.
fn block_all_signals() -> KernelSigset {
    let all: KernelSigset = !0;
    let mut old: KernelSigset = 0;
    // SAFETY: rt_sigprocmask reads one kernel sigset from `all` and writes
    // one to `old`, both live locals of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const KernelSigset,
            &mut old as *mut KernelSigset,
            std::mem::size_of::<KernelSigset>(),
        )
    };
    old
}

fn restore_signals(old: &KernelSigset) {
    // SAFETY: rt_sigprocmask reads one kernel sigset from `old`, a live
    // reference of the size passed, and writes nothing (NULL).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            old as *const KernelSigset,
            std::ptr::null_mut::<KernelSigset>(),
            std::mem::size_of::<KernelSigset>(),
        )
    };
}

/// The child, between clone and exec. System calls only: it shares the
/// parent's memory, and the parent thread may hold any lock.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's ChildData, alive until this exec's
    // (CLONE_VFORK), and only read here; its `error` is atomic.
    let data = unsafe { &*(arg as *const ChildData) };
    let fail = |data: &ChildData| -> libc::c_int {
        let errno = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        data.error.store(errno.max(1), Ordering::SeqCst);
        // SAFETY: _exit never returns and is async-signal-safe.
        unsafe { libc::_exit(127) }
    };
    // SAFETY (the block): each call is an async-signal-safe system call on
    // data prepared by the parent.
    unsafe {
        // Every disposition back to its default: one the host ignores would
        // survive exec. (Handlers would be reset by exec anyway; resetting
        // them here also keeps them from running in this child.) The raw
        // system call reaches glibc's internal signals too, which its
        // sigaction refuses; an all-zero kernel sigaction is SIG_DFL with
        // no flags and an empty mask on every architecture. SIGKILL and
        // SIGSTOP cannot be changed.
        let dfl = [0u64; 4];
        for sig in 1..=64 {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                std::mem::size_of::<KernelSigset>(),
            );
        }
        if data.own_group && libc::setpgid(0, 0) != 0 {
            return fail(data);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, DEATH_SIGNAL) != 0 {
            return fail(data);
        }
        // The parent may have died before the death signal was armed.
        if libc::getppid() != data.parent {
            libc::_exit(127);
        }
        for (target, &fd) in data.stdio.iter().enumerate() {
            if fd >= 0 && libc::dup2(fd, target as libc::c_int) < 0 {
                return fail(data);
            }
        }
        close_other_fds(data.pass_fd, data.fd_limit);
        if data.pass_fd >= 0 && libc::fcntl(data.pass_fd, libc::F_SETFD, 0) < 0 {
            return fail(data);
        }
        let none: KernelSigset = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &none as *const KernelSigset,
            std::ptr::null_mut::<KernelSigset>(),
            std::mem::size_of::<KernelSigset>(),
        );
        libc::execve(data.path.as_ptr(), data.argv.as_ptr(), data.envp.as_ptr());
    }
    fail(data)
}

/// Closes every descriptor above 2 but `keep` (negative: none).
///
/// # Safety
/// In the child only: it closes descriptors that other code may own.
unsafe fn close_other_fds(keep: RawFd, fd_limit: libc::c_int) {
    let ranges: [(libc::c_uint, libc::c_uint); 2] = if keep >= 3 {
        [
            (3, keep as libc::c_uint - 1),
            (keep as libc::c_uint + 1, !0),
        ]
    } else {
        [(3, !0), (1, 0)]
    };
    for (first, last) in ranges {
        if first > last {
            continue;
        }
        if libc::syscall(libc::SYS_close_range, first, last, 0) != 0 {
            // No close_range (before Linux 5.9): one by one.
            let end = (last as i64).min(fd_limit as i64 - 1);
            for fd in first as i64..=end {
                libc::close(fd as libc::c_int);
            }
        }
    }
}

impl Process {
    pub(crate) fn id(&self) -> u32 {
        self.pid as u32
    }

    /// The exit status if the child has exited, without waiting; reaps it.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.waitpid(WaitOptions::NOHANG)
    }

    /// Waits for the child to exit and reaps it.
    pub(crate) fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.waitpid(WaitOptions::empty())? {
                return Ok(status);
            }
        }
    }

    fn waitpid(&mut self, flags: WaitOptions) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match rustix::process::waitpid(Some(self.pid()), flags) {
            Ok(None) | Err(Errno::INTR) => Ok(None),
            Ok(Some((_, raw))) => {
                let status = ExitStatus::from_raw(raw.as_raw());
                self.status = Some(status);
                Ok(Some(status))
            }
            Err(Errno::CHILD) => {
                // Nothing can be done about it now: the exit status is lost.
                self.status = Some(ExitStatus::from_raw(0x7f00));
                Err(io::Error::new(
                    io::Error::from(Errno::CHILD).kind(),
                    "the exit status of smolvm is lost (No child processes): \
                     the process must not ignore SIGCHLD or reap children it \
                     did not start",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.pid).expect("clone returned a positive pid")
    }

    /// Whether the child has exited, without reaping it: while it is a
    /// zombie its pid, and so its process group id, cannot be reused.
    pub(crate) fn has_exited(&self) -> bool {
        self.status.is_some() || has_exited(self.pid as u32)
    }

    /// Sends `sig` to the child's process group, or to the child alone if it
    /// has none of its own. Only before the child is reaped.
    fn signal(&self, sig: Signal) {
        // An unreaped child's pid, and so its group's id, cannot have been
        // reused.
        if self.status.is_some() {
            return;
        }
        let _ = if self.own_group {
            rustix::process::kill_process_group(self.pid(), sig)
        } else {
            rustix::process::kill_process(self.pid(), sig)
        };
    }

    /// Stops the child and everything in its process group: SIGTERM, up to
    /// [`TERM_GRACE`] for the child to exit, then SIGKILL to whatever of the
    /// group is left, while the exited child still holds the group's id.
    /// Always reaps the child.
    pub(crate) fn stop(&mut self) -> io::Result<ExitStatus> {
        self.signal(Signal::TERM);
        let give_up = Instant::now() + TERM_GRACE;
        while Instant::now() < give_up && !self.has_exited() {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.signal(Signal::KILL);
        self.wait()
    }
}

/// Whether our child `pid` has exited (or cannot be waited for), without
/// reaping it.
pub(crate) fn has_exited(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return true;
    };
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    let id = rustix::process::WaitId::Pid(pid);
    !matches!(rustix::process::waitid(id, options), Ok(None))
}

impl Drop for Process {
    /// A child still running when its handle goes (a panic in a callback)
    /// is stopped, so no smolvm outlives the call.
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.stop();
        }
    }
}
