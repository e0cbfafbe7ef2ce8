//! Running a child with its stdin fed and both output pipes read, under an
//! optional deadline and cancel token.
//!
//! stdout and stderr can both be large at the same time, so they are read
//! concurrently: one thread polls every descriptor and serves whichever is
//! ready, reading straight into the spare capacity of growing buffers.
//! Reading one pipe to the end before the other would deadlock as soon as
//! the child fills the pipe that is not being read; writing all of stdin
//! before reading would deadlock the same way.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

/// The smallest free space a buffer has before a read; the kernel hands over
/// at most one pipe's worth (64 KiB by default) per read.
const READ_CHUNK: usize = 64 * 1024;

/// How long a child stopped early gets to exit after SIGTERM (smolvm uses
/// it to stop the guest command) before SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(500);

/// How much of stderr is kept for reading the child's own messages, even
/// when stderr is not captured.
const TAIL_BYTES: usize = 4096;

/// How long output may still arrive after the child has exited: a process
/// it left behind holding the pipes must not hold up the caller for ever.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What a finished child left behind.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    /// stdout, if captured.
    pub stdout: Vec<u8>,
    /// stderr, if captured.
    pub stderr: Vec<u8>,
    /// Bytes written to stdout, captured or not.
    pub stdout_total: u64,
    /// Bytes written to stderr, captured or not.
    pub stderr_total: u64,
    /// The last bytes of stderr (at most 4 KiB), captured or not.
    pub stderr_tail: Vec<u8>,
}

impl Captured {
    /// All of stderr, if it was short enough to be kept whole.
    pub fn whole_stderr(&self) -> Option<&[u8]> {
        (self.stderr_total == self.stderr_tail.len() as u64).then_some(&self.stderr_tail)
    }
}

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Receives output as it arrives; returning `false` stops the child.
pub type OnChunk<'a> = &'a mut dyn FnMut(&[u8]) -> bool;

/// What to do with one output stream.
pub struct Sink<'a> {
    /// Keep the bytes in the result.
    pub capture: bool,
    /// Also hand each chunk to this callback, in order, as it is read.
    pub on_chunk: Option<OnChunk<'a>>,
}

impl Default for Sink<'_> {
    fn default() -> Self {
        Sink {
            capture: true,
            on_chunk: None,
        }
    }
}

/// Everything about a run beyond the command itself.
#[derive(Default)]
pub struct Io<'a> {
    /// Bytes for the child's stdin; `None` gives it /dev/null.
    pub stdin: Option<&'a [u8]>,
    pub stdout: Sink<'a>,
    pub stderr: Sink<'a>,
    /// When to stop the child if it has not finished.
    pub deadline: Option<Instant>,
    pub cancel: Option<&'a Cancel>,
}

/// Why a run ended without the child finishing on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    DeadlinePassed,
    Cancelled,
    CallbackStopped(Stream),
}

/// A run that did not finish. Except for `Spawn`, the child has been
/// stopped and reaped.
#[derive(Debug)]
pub enum RunError {
    /// The child could not be started.
    Spawn(io::Error),
    /// Talking to the child failed.
    Io(io::Error),
    Stopped(Stopped),
}

/// Spawns `cmd` and serves its stdin, stdout and stderr as `io` says until
/// the child has exited and closed its outputs, then reaps it. A deadline,
/// the cancel token or a callback asking to stop end the run early: the
/// child gets SIGTERM, then SIGKILL, and is reaped before this returns.
pub fn run_with(cmd: &mut Command, io: Io<'_>) -> Result<Captured, RunError> {
    if io.cancel.is_some_and(Cancel::is_tripped) {
        return Err(RunError::Stopped(Stopped::Cancelled));
    }
    // stdin is one end of a socket pair rather than a pipe, so that writing
    // after the child has gone fails with EPIPE instead of raising SIGPIPE,
    // which would kill a host process that keeps the default disposition.
    let stdin = match io.stdin {
        Some(data) => {
            let (ours, theirs) = UnixStream::pair().map_err(RunError::Spawn)?;
            ours.set_nonblocking(true).map_err(RunError::Spawn)?;
            cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
            Some(Writer {
                socket: Some(ours),
                data,
            })
        }
        None => {
            cmd.stdin(Stdio::null());
            None
        }
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let spawned = cmd.spawn();
    // The Command still holds the child's end of the socket; close it here so
    // that the child's exit shows as EPIPE on ours.
    cmd.stdin(Stdio::null());
    let mut child = ChildGuard(Some(spawned.map_err(RunError::Spawn)?));
    let running = child.0.as_mut().expect("just spawned");

    let mut session = Session {
        stdout: Reader::new(
            running.stdout.take().map(OwnedFd::from),
            io.stdout,
            Stream::Stdout,
        ),
        stderr: Reader::new(
            running.stderr.take().map(OwnedFd::from),
            io.stderr,
            Stream::Stderr,
        ),
        stdin,
        exited: pidfd_open(running.id()),
        drain_until: None,
        deadline: io.deadline,
        cancel: io.cancel,
    };
    let served = session.serve();
    let mut child = child.0.take().expect("still owned");
    match served {
        Ok(()) => {
            let status = child.wait().map_err(RunError::Io)?;
            let (stdout, stdout_total, _) = session.stdout.finish();
            let (stderr, stderr_total, stderr_tail) = session.stderr.finish();
            Ok(Captured {
                status,
                stdout,
                stderr,
                stdout_total,
                stderr_total,
                stderr_tail,
            })
        }
        Err(e) => {
            // The caller needs `e`; stopping can only fail if the child was
            // reaped behind our back, and then there is nothing left to stop.
            let _ = terminate(&mut child);
            Err(e)
        }
    }
}

/// Stops and reaps the child if the run is left by a panic (from a
/// callback), so no smolvm outlives it.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = terminate(child);
        }
    }
}

/// Stops a child that is still running: SIGTERM, a grace period, SIGKILL.
/// Always reaps it.
fn terminate(child: &mut Child) -> io::Result<ExitStatus> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: a pid we spawned and have not reaped, so it cannot be reused.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let give_up = Instant::now() + TERM_GRACE;
    while Instant::now() < give_up {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?;
    child.wait()
}

/// A descriptor that becomes readable when the child exits, so the poll loop
/// can wait for exit, output, a deadline and a cancel token at once. `None`
/// on kernels without pidfd_open (before 5.3): then the loop ends when the
/// outputs close and the exit is waited for without a deadline.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // Once the kernel (or valgrind) has said it has no pidfd_open, stop asking.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor,
    // close-on-exec, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The state of one run's descriptors.
struct Session<'a> {
    stdout: Reader<'a>,
    stderr: Reader<'a>,
    stdin: Option<Writer<'a>>,
    /// The child's pidfd until it has exited.
    exited: Option<OwnedFd>,
    /// Once the child has exited: when to stop waiting for its outputs.
    drain_until: Option<Instant>,
    deadline: Option<Instant>,
    cancel: Option<&'a Cancel>,
}

/// What a slot in the poll set stands for.
#[derive(Clone, Copy)]
enum Slot {
    Stdout,
    Stderr,
    Stdin,
    Cancel,
    Exit,
}

impl Session<'_> {
    fn serve(&mut self) -> Result<(), RunError> {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(5);
        let mut slots: Vec<Slot> = Vec::with_capacity(5);
        loop {
            if self.cancel.is_some_and(Cancel::is_tripped) {
                return Err(RunError::Stopped(Stopped::Cancelled));
            }
            fds.clear();
            slots.clear();
            let mut watch = |fd: RawFd, events: libc::c_short, slot: Slot| {
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                slots.push(slot);
            };
            let outputs_open = self.stdout.fd.is_some() || self.stderr.fd.is_some();
            if let Some(fd) = &self.stdout.fd {
                watch(fd.as_raw_fd(), libc::POLLIN, Slot::Stdout);
            }
            if let Some(fd) = &self.stderr.fd {
                watch(fd.as_raw_fd(), libc::POLLIN, Slot::Stderr);
            }
            if let Some(socket) = self.stdin.as_ref().and_then(|w| w.socket.as_ref()) {
                watch(socket.as_raw_fd(), libc::POLLOUT, Slot::Stdin);
            }
            if let Some(fd) = &self.exited {
                watch(fd.as_raw_fd(), libc::POLLIN, Slot::Exit);
            }
            // Done once the outputs are closed and the child has exited (or
            // its exit cannot be watched): the caller reaps it.
            if !outputs_open && self.exited.is_none() {
                return Ok(());
            }
            if let Some(cancel) = self.cancel {
                watch(cancel.fd(), libc::POLLIN, Slot::Cancel);
            }

            let now = Instant::now();
            if self.deadline.is_some_and(|d| d <= now) {
                return Err(RunError::Stopped(Stopped::DeadlinePassed));
            }
            if self.drain_until.is_some_and(|d| d <= now) {
                // Whoever still holds the pipes is not the child, which has
                // exited; what they write later is not part of this run.
                return Ok(());
            }
            let timeout = match self.deadline.into_iter().chain(self.drain_until).min() {
                None => -1,
                // Round up, so the loop never spins on a 0 ms timeout.
                Some(until) => (until - now)
                    .as_millis()
                    .saturating_add(1)
                    .min(i32::MAX as u128) as i32,
            };
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(RunError::Io(e));
            }
            for (p, slot) in fds.iter().zip(&slots) {
                if p.revents == 0 {
                    continue;
                }
                match slot {
                    Slot::Stdout => self.stdout.on_ready()?,
                    Slot::Stderr => self.stderr.on_ready()?,
                    Slot::Stdin => self.stdin.as_mut().expect("watched").on_ready()?,
                    Slot::Exit => {
                        self.exited = None;
                        self.drain_until = Some(Instant::now() + DRAIN_AFTER_EXIT);
                    }
                    // Seen at the top of the loop.
                    Slot::Cancel => {}
                }
            }
        }
    }
}

/// One output pipe and what to do with its bytes.
struct Reader<'a> {
    fd: Option<OwnedFd>,
    sink: Sink<'a>,
    /// The captured bytes, or with capture off, a scratch buffer.
    buf: Vec<u8>,
    /// With capture off: the latest bytes, for [`Captured::stderr_tail`].
    tail: Vec<u8>,
    total: u64,
    stream: Stream,
}

impl<'a> Reader<'a> {
    fn new(fd: Option<OwnedFd>, sink: Sink<'a>, stream: Stream) -> Self {
        Reader {
            fd,
            sink,
            buf: Vec::new(),
            tail: Vec::new(),
            total: 0,
            stream,
        }
    }

    /// The captured bytes (empty when not captured), the total written, and
    /// the last `TAIL_BYTES` of them.
    fn finish(self) -> (Vec<u8>, u64, Vec<u8>) {
        let (captured, mut tail) = if self.sink.capture {
            let start = self.buf.len().saturating_sub(TAIL_BYTES);
            let tail = self.buf[start..].to_vec();
            (self.buf, tail)
        } else {
            (Vec::new(), self.tail)
        };
        tail.drain(..tail.len().saturating_sub(TAIL_BYTES));
        (captured, self.total, tail)
    }

    fn on_ready(&mut self) -> Result<(), RunError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        let start = self.buf.len();
        if read_some(fd.as_raw_fd(), &mut self.buf).map_err(RunError::Io)? == 0 {
            self.fd = None;
            return Ok(());
        }
        if let Some(on_chunk) = self.sink.on_chunk.as_mut() {
            if !on_chunk(&self.buf[start..]) {
                return Err(RunError::Stopped(Stopped::CallbackStopped(self.stream)));
            }
        }
        self.total += (self.buf.len() - start) as u64;
        if !self.sink.capture {
            self.tail.extend_from_slice(&self.buf[start..]);
            if self.tail.len() > 2 * TAIL_BYTES {
                self.tail.drain(..self.tail.len() - TAIL_BYTES);
            }
            self.buf.clear();
        }
        Ok(())
    }
}

/// The child's stdin and the bytes still to send.
struct Writer<'a> {
    socket: Option<UnixStream>,
    data: &'a [u8],
}

impl Writer<'_> {
    fn on_ready(&mut self) -> Result<(), RunError> {
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        if !self.data.is_empty() {
            // SAFETY: sends from a live slice of `data.len()` bytes.
            let n = unsafe {
                libc::send(
                    socket.as_raw_fd(),
                    self.data.as_ptr().cast(),
                    self.data.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(()),
                    // The child stopped reading: what it did not read is
                    // its business, not an error of the run.
                    Some(libc::EPIPE) | Some(libc::ECONNRESET) => {
                        self.socket = None;
                        Ok(())
                    }
                    _ => Err(RunError::Io(e)),
                };
            }
            self.data = &self.data[n as usize..];
        }
        if self.data.is_empty() {
            // Closing our end is the child's end of input.
            self.socket = None;
        }
        Ok(())
    }
}

/// One read from a ready pipe into the buffer's spare capacity; 0 at EOF.
fn read_some(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK {
        // Output can outgrow memory; that must be an error, not an abort.
        buf.try_reserve(READ_CHUNK.max(buf.len()))
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    }
    loop {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by
        // `buf`; read writes at most that many.
        let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: read initialised the first `n` spare bytes.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn captures_both_streams_and_status() {
        let c = run_with(&mut sh("printf out; printf err >&2; exit 7"), Io::default()).unwrap();
        assert_eq!(c.stdout, b"out");
        assert_eq!(c.stderr, b"err");
        assert_eq!(c.status.code(), Some(7));
    }

    #[test]
    fn large_output_on_both_pipes_does_not_deadlock() {
        let script = "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2; \
                      head -c 1000000 /dev/zero";
        let c = run_with(&mut sh(script), Io::default()).unwrap();
        assert_eq!(c.stdout.len(), 4_000_000);
        assert_eq!(c.stderr.len(), 2_000_000);
        assert!(c.stdout.iter().all(|&b| b == 0));
    }

    #[test]
    fn spawn_errors_are_returned_unchanged() {
        match run_with(&mut Command::new("/nonexistent/smolvm"), Io::default()) {
            Err(RunError::Spawn(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stdin_is_fed_while_output_is_read() {
        let input: Vec<u8> = (0..=255u8).cycle().take(3 << 20).collect();
        let io = Io {
            stdin: Some(&input),
            ..Io::default()
        };
        let c = run_with(&mut sh("cat; cat >&2 </dev/null"), io).unwrap();
        assert!(c.stdout == input);
    }

    #[test]
    fn a_child_that_ignores_stdin_does_not_break_the_run() {
        let input = vec![b'x'; 8 << 20];
        let io = Io {
            stdin: Some(&input),
            ..Io::default()
        };
        let c = run_with(&mut sh("exec 0<&-; echo done"), io).unwrap();
        assert_eq!(c.stdout, b"done\n");
    }

    #[test]
    fn the_deadline_stops_and_reaps_the_child() {
        let io = Io {
            deadline: Some(Instant::now() + Duration::from_millis(100)),
            ..Io::default()
        };
        let e = run_with(&mut sh("exec sleep 30"), io).unwrap_err();
        assert!(
            matches!(e, RunError::Stopped(Stopped::DeadlinePassed)),
            "{e:?}"
        );
    }

    #[test]
    fn the_deadline_holds_after_the_outputs_close() {
        let io = Io {
            deadline: Some(Instant::now() + Duration::from_millis(100)),
            ..Io::default()
        };
        let e = run_with(&mut sh("exec >&- 2>&-; sleep 30"), io).unwrap_err();
        assert!(
            matches!(e, RunError::Stopped(Stopped::DeadlinePassed)),
            "{e:?}"
        );
    }

    #[test]
    fn a_tripped_token_stops_the_child() {
        let cancel = Cancel::new().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                cancel.trip();
            });
            let io = Io {
                cancel: Some(&cancel),
                ..Io::default()
            };
            let e = run_with(&mut sh("exec sleep 30"), io).unwrap_err();
            assert!(matches!(e, RunError::Stopped(Stopped::Cancelled)), "{e:?}");
        });
    }

    #[test]
    fn callbacks_see_every_chunk_and_can_stop_the_run() {
        let mut seen = Vec::new();
        let mut on_out = |chunk: &[u8]| {
            seen.extend_from_slice(chunk);
            true
        };
        let io = Io {
            stdout: Sink {
                capture: false,
                on_chunk: Some(&mut on_out),
            },
            ..Io::default()
        };
        let c = run_with(&mut sh("head -c 1000000 /dev/zero"), io).unwrap();
        assert!(c.stdout.is_empty(), "not captured");
        assert_eq!(seen.len(), 1_000_000);

        let mut stop = |_: &[u8]| false;
        let io = Io {
            stderr: Sink {
                capture: true,
                on_chunk: Some(&mut stop),
            },
            ..Io::default()
        };
        let e = run_with(&mut sh("echo x >&2; exec sleep 30"), io).unwrap_err();
        assert!(
            matches!(
                e,
                RunError::Stopped(Stopped::CallbackStopped(Stream::Stderr))
            ),
            "{e:?}"
        );
    }

    #[test]
    fn uncaptured_stderr_still_leaves_its_tail_and_size() {
        let mut on_err = |_: &[u8]| true;
        let io = Io {
            stderr: Sink {
                capture: false,
                on_chunk: Some(&mut on_err),
            },
            ..Io::default()
        };
        let c = run_with(
            &mut sh("head -c 100000 /dev/zero >&2; echo 'Error: last' >&2"),
            io,
        )
        .unwrap();
        assert!(c.stderr.is_empty());
        assert_eq!(c.stderr_total, 100_012);
        assert_eq!(c.stderr_tail.len(), TAIL_BYTES);
        assert!(c.stderr_tail.ends_with(b"\0Error: last\n"));
        assert_eq!(c.whole_stderr(), None);
        assert_eq!(c.stdout_total, 0);
    }

    #[test]
    fn a_token_tripped_before_the_run_starts_nothing() {
        let cancel = Cancel::new().unwrap();
        cancel.trip();
        let marker = std::env::temp_dir().join(format!("bottle-never-{}", std::process::id()));
        let io = Io {
            cancel: Some(&cancel),
            ..Io::default()
        };
        let e = run_with(&mut sh(&format!("touch {}", marker.display())), io).unwrap_err();
        assert!(matches!(e, RunError::Stopped(Stopped::Cancelled)), "{e:?}");
        assert!(!marker.exists(), "the command never ran");
    }

    #[test]
    fn output_held_open_after_exit_does_not_hold_up_the_run() {
        // The background sleep keeps both pipes open for 30 s after sh exits.
        let c = run_with(&mut sh("sleep 30 & echo done"), Io::default()).unwrap();
        assert_eq!(c.stdout, b"done\n");
        assert!(c.status.success());
    }
}
