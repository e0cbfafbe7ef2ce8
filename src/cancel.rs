//! A cancel token: tripped once, from any thread, it stops every run that
//! watches it; and the limits (timeout, token) any operation can be given.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;

/// What may stop an operation, as the caller sets it: a timeout for the
/// whole operation, every smolvm process it runs included, and a token.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub timeout: Option<Duration>,
    pub cancel: Option<Arc<Cancel>>,
}

impl Limits {
    /// The bounds of an operation starting now.
    pub(crate) fn start(&self) -> Bounds {
        Bounds {
            deadline: self.timeout.map(|t| Instant::now() + t),
            timeout: self.timeout,
            cancel: self.cancel.clone(),
        }
    }
}

/// The limits of one operation under way: its deadline fixed when it
/// started, shared by every smolvm process it runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bounds {
    pub(crate) deadline: Option<Instant>,
    /// The timeout the deadline came from, for messages.
    pub(crate) timeout: Option<Duration>,
    pub(crate) cancel: Option<Arc<Cancel>>,
}

impl Bounds {
    pub(crate) fn cancel(&self) -> Option<&Cancel> {
        self.cancel.as_deref()
    }

    /// A stop of `what` described for the caller; other errors unchanged.
    pub(crate) fn explain(&self, what: &str, e: Error) -> Error {
        match e {
            Error::Timeout(_) => Error::Timeout(match self.timeout {
                Some(t) => format!(
                    "{what} did not finish within {} ms; smolvm was stopped",
                    t.as_millis()
                ),
                None => format!("{what} did not finish in time; smolvm was stopped"),
            }),
            Error::Cancelled(why) => Error::Cancelled(format!("{what} was stopped: {why}")),
            other => other,
        }
    }
}

/// A flag plus an eventfd: the flag answers "was it tripped?" cheaply, and
/// the eventfd wakes every poll loop that includes it. The eventfd is never
/// read, so once written it stays readable for every run that watches it.
#[derive(Debug)]
pub struct Cancel {
    tripped: AtomicBool,
    event: OwnedFd,
}

impl Cancel {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Cancel {
            tripped: AtomicBool::new(false),
            // SAFETY: `fd` is a new descriptor owned by nothing else.
            event: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Trips the token. Idempotent; only an atomic store and a write(2), so
    /// it is safe from any thread and from a signal handler.
    pub fn trip(&self) {
        if !self.tripped.swap(true, Ordering::SeqCst) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64. It cannot fail short
            // of a closed descriptor, which `self` keeps open.
            unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Readable once the token is tripped.
    pub fn fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tripping_makes_the_fd_readable_for_good() {
        let c = Cancel::new().unwrap();
        let readable = |c: &Cancel| {
            let mut p = libc::pollfd {
                fd: c.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!c.is_tripped() && !readable(&c));
        c.trip();
        c.trip();
        assert!(c.is_tripped() && readable(&c) && readable(&c));
    }
}
