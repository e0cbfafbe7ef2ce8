//! Starting the guest-side child: the first process of a fresh PID
//! namespace, tied to the stand-in so that it can never outlive it.
//!
//! Being init of its own PID namespace is what makes cleanup total: when
//! that process dies, the kernel kills everything else in the namespace,
//! including daemons that left the process group or session. So killing one
//! pid (on timeout, or when the stand-in is told to terminate) kills the
//! whole guest command tree, and `PR_SET_PDEATHSIG` does the same if the
//! stand-in is SIGKILLed.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::error::{os_text, Error, Result};
use crate::sys;

/// Report kinds a child sends before it exits or execs.
pub const SETUP_FAILED: u8 = b'E';
pub const EXEC_FAILED: u8 = b'X';
pub const DONE: u8 = b'K';

/// The write end of the report pipe, in the child. Reports are short, so
/// each is one atomic pipe write.
pub struct Reporter {
    fd: RawFd,
}

impl Reporter {
    pub fn send(&self, kind: u8, message: &str) {
        let mut buf = Vec::with_capacity(message.len() + 1);
        buf.push(kind);
        buf.extend_from_slice(message.as_bytes());
        let _ = sys::write_all(self.fd, &buf);
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

/// What a child reported, read by the parent once the pipe is at EOF.
pub struct Report {
    pub kind: u8,
    pub message: String,
}

impl Report {
    pub fn parse(bytes: &[u8]) -> Option<Report> {
        let (&kind, message) = bytes.split_first()?;
        Some(Report {
            kind,
            message: String::from_utf8_lossy(message).into_owned(),
        })
    }
}

pub struct Child {
    pub pid: libc::pid_t,
    /// Read end of the report pipe. It reaches EOF once every process holding
    /// the write end has exited or exec'd (the write end is close-on-exec).
    pub report: OwnedFd,
}

impl Child {
    /// Stops the signal handler from killing the child. Call before reaping:
    /// a reaped pid may be reused by an unrelated process.
    pub fn disarm(&self) {
        GUEST_INIT.store(0, Ordering::SeqCst);
    }
}

/// The guest init the signal handler must kill; 0 when there is none.
static GUEST_INIT: AtomicI32 = AtomicI32::new(0);

const FATAL_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Kills the guest and reaps it before dying of the same signal. Reaping
/// matters: a PID-namespace init becomes reapable only after every process
/// of its namespace is gone, so whoever sees the stand-in die sees no guest
/// process left. Only async-signal-safe calls here.
extern "C" fn on_fatal_signal(sig: libc::c_int) {
    unsafe {
        let pid = GUEST_INIT.load(Ordering::SeqCst);
        if pid > 0 {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn fatal_signal_set() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in FATAL_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// A signal the stand-in was started with ignored (as `nohup` or a shell's
/// `&` do) stays ignored.
fn install_handlers() {
    for sig in FATAL_SIGNALS {
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old);
            if old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Every signal back to its default action, none blocked: what a process
/// the guest agent starts would have. (Rust ignores SIGPIPE, and an ignored
/// signal would otherwise survive exec.)
pub fn reset_signals() {
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Forks `body` as init of a new PID namespace; its return value is the
/// child's exit status. The stand-in is single-threaded, so the child may
/// allocate freely. Call at most once per process.
pub fn spawn(body: impl FnOnce(&Reporter) -> i32) -> Result<Child> {
    let (report_read, report_write) =
        sys::pipe().map_err(|e| Error::new(format!("pipe: {}", os_text(&e))))?;
    sys::check(unsafe { libc::unshare(libc::CLONE_NEWPID) })
        .map_err(|e| Error::new(format!("unshare(CLONE_NEWPID): {}", os_text(&e))))?;

    // Blocked across fork, so no handler runs in the child before it resets
    // them, and none runs in the parent before GUEST_INIT is set.
    let fatal = fatal_signal_set();
    let mut saved: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &fatal, &mut saved) };
    install_handlers();
    let forked = sys::fork();
    if matches!(forked, Ok(0)) {
        drop(report_read);
        let reporter = Reporter {
            fd: report_write.as_raw_fd(),
        };
        let code = catch_unwind(AssertUnwindSafe(|| child_start(&reporter, body))).unwrap_or(1);
        unsafe { libc::_exit(code) };
    }
    if let Ok(pid) = forked {
        GUEST_INIT.store(pid, Ordering::SeqCst);
    }
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut()) };
    let pid = forked.map_err(|e| Error::new(format!("fork: {}", os_text(&e))))?;
    Ok(Child {
        pid,
        report: report_read,
    })
}

fn child_start(reporter: &Reporter, body: impl FnOnce(&Reporter) -> i32) -> i32 {
    reset_signals();
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    // The stand-in may have died before PDEATHSIG was armed. It holds the
    // only other end of the report pipe, so a pipe without readers tells.
    let mut pfd = libc::pollfd {
        fd: reporter.fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    if unsafe { libc::poll(&mut pfd, 1, 0) } < 0 || pfd.revents & libc::POLLERR != 0 {
        return 1;
    }
    body(reporter)
}
