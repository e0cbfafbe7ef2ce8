//! A cancel token: tripped once, from any thread, it stops every run that
//! watches it; and the limits (timeout, token) any operation can be given.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
    /// An untripped token.
    pub fn new() -> io::Result<Self> {
        use rustix::event::{eventfd, EventfdFlags};
        Ok(Cancel {
            tripped: AtomicBool::new(false),
            event: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
        })
    }

    /// Trips the token. Idempotent; only an atomic store and a write(2) (a
    /// raw system call through rustix), so it is safe from any thread and
    /// from a signal handler.
    pub fn trip(&self) {
        if !self.tripped.swap(true, Ordering::SeqCst) {
            // It cannot fail short of a closed descriptor, which `self`
            // keeps open.
            let _ = rustix::io::write(&self.event, &1u64.to_ne_bytes());
        }
    }

    /// Whether the token has been tripped.
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }
}

impl AsFd for Cancel {
    /// A descriptor that becomes readable once the token is tripped, and
    /// stays so, for a poll loop to wait on.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }
}

impl Cancel {
    /// Waits `pause`, or less if the token is tripped meanwhile.
    pub(crate) fn wait(&self, pause: Duration) {
        let mut fds = [rustix::event::PollFd::new(
            self,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::event::Timespec {
            tv_sec: pause.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: pause.subsec_nanos().into(),
        };
        // An interrupted or failed poll only ends the pause early.
        let _ = rustix::event::poll(&mut fds, Some(&timeout));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tripping_makes_the_fd_readable_for_good() {
        let c = Cancel::new().unwrap();
        let readable = |c: &Cancel| {
            let mut p = [rustix::event::PollFd::new(c, rustix::event::PollFlags::IN)];
            let now = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            rustix::event::poll(&mut p, Some(&now)).unwrap() == 1
        };
        assert!(!c.is_tripped() && !readable(&c));
        c.trip();
        c.trip();
        assert!(c.is_tripped() && readable(&c) && readable(&c));
    }

    #[test]
    fn a_trip_cuts_a_wait_short() {
        let c = std::sync::Arc::new(Cancel::new().unwrap());
        let tripper = {
            let c = c.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                c.trip();
            })
        };
        let started = Instant::now();
        c.wait(Duration::from_secs(30));
        assert!(c.is_tripped());
        assert!(started.elapsed() < Duration::from_secs(20));
        tripper.join().unwrap();
    }
}
