//! Running a child with its stdin fed and both output pipes read, under an
//! optional deadline and cancel token.
//!
//! stdout and stderr can both be large at the same time, so they are read
//! concurrently: one thread polls every descriptor and serves whichever is
//! ready, reading straight into the spare capacity of growing buffers.
//! Reading one pipe to the end before the other would deadlock as soon as
//! the child fills the pipe that is not being read; writing all of stdin
//! before reading would deadlock the same way.
//!
//! The child is started by [`crate::spawn`], in its own process group, so a
//! stop reaches whatever it started as well.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

use crate::cancel::{Bounds, Cancel};
use crate::spawn::{self, Plan, SpawnError};

/// The smallest free space a buffer has before a read; the kernel hands over
/// at most one pipe's worth (64 KiB by default) per read.
const READ_CHUNK: usize = 64 * 1024;

/// How much of stderr is kept for reading the child's own messages, even
/// when stderr is not captured.
const TAIL_BYTES: usize = 4096;

/// How often the exit of a child is checked on kernels without pidfd_open.
const EXIT_CHECK: Duration = Duration::from_millis(20);

/// What a finished child left behind.
#[derive(Debug)]
pub(crate) struct Captured {
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
    pub(crate) fn whole_stderr(&self) -> Option<&[u8]> {
        (self.stderr_total == self.stderr_tail.len() as u64).then_some(&self.stderr_tail)
    }
}

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Io<'a> {
    /// Bytes for the child's stdin; `None` gives it /dev/null.
    pub stdin: Option<&'a [u8]>,
    pub stdout: Sink<'a>,
    pub stderr: Sink<'a>,
    /// When to stop the child if it has not finished.
    pub deadline: Option<Instant>,
    pub cancel: Option<&'a Cancel>,
    /// A descriptor the child keeps at the same number (a copy's file).
    pub pass_fd: Option<RawFd>,
}

impl<'a> Io<'a> {
    /// A run's stdio left at its defaults, under `bounds`.
    pub(crate) fn within(bounds: &'a Bounds) -> Self {
        Io {
            deadline: bounds.deadline,
            cancel: bounds.cancel(),
            ..Io::default()
        }
    }
}

/// Why a run ended without the child finishing on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    DeadlinePassed,
    Cancelled,
    Callback(Stream),
}

/// A run that did not finish. Except for `Spawn`, the child has been
/// stopped and reaped.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The child could not be started.
    Spawn(io::Error),
    /// Its command line and environment exceed what the kernel passes to a
    /// new program; nothing was started.
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    /// Talking to the child failed.
    Io(io::Error),
    Stopped(Stopped),
}

/// Spawns `cmd` and serves its stdin, stdout and stderr as `io` says until
/// the child has exited, then reaps it. A deadline, the cancel token or a
/// callback asking to stop end the run early: the child and its process
/// group get SIGTERM, then SIGKILL, and the child is reaped before this
/// returns.
///
/// Once the child has exited, what is already in the pipes is read and the
/// run ends: a process it left behind holding the pipes neither holds up
/// the caller nor adds to the result.
pub(crate) fn run_with(cmd: &mut Command, io: Io<'_>) -> Result<Captured, RunError> {
    if io.cancel.is_some_and(Cancel::is_tripped) {
        return Err(RunError::Stopped(Stopped::Cancelled));
    }
    // stdin is one end of a socket pair rather than a pipe, so that writing
    // after the child has gone fails with EPIPE instead of raising SIGPIPE,
    // which would kill a host process that keeps the default disposition.
    let (child_stdin, stdin) = match io.stdin {
        Some(data) => {
            let (ours, theirs) = UnixStream::pair().map_err(RunError::Spawn)?;
            ours.set_nonblocking(true).map_err(RunError::Spawn)?;
            let writer = Writer {
                socket: Some(ours),
                data,
            };
            (OwnedFd::from(theirs), Some(writer))
        }
        None => (
            OwnedFd::from(File::open("/dev/null").map_err(RunError::Spawn)?),
            None,
        ),
    };
    let (stdout_read, stdout_write) = pipe().map_err(RunError::Spawn)?;
    let (stderr_read, stderr_write) = pipe().map_err(RunError::Spawn)?;
    let child_stdio = [child_stdin, stdout_write, stderr_write]
        .map(above_stdio)
        .into_iter()
        .collect::<io::Result<Vec<_>>>()
        .map_err(RunError::Spawn)?;
    let plan = Plan {
        stdio: Some([0, 1, 2].map(|i| child_stdio[i].as_raw_fd())),
        pass_fd: io.pass_fd,
        own_group: true,
    };
    let mut child = spawn::spawn(cmd, &plan).map_err(|e| match e {
        SpawnError::Io(e) => RunError::Spawn(e),
        SpawnError::TooLarge { bytes, limit } => RunError::TooLarge { bytes, limit },
    })?;
    // The child's ends: once closed here, its exit shows as EOF and EPIPE.
    drop(child_stdio);

    let mut session = Session {
        stdout: Reader::new(Some(stdout_read), io.stdout, Stream::Stdout),
        stderr: Reader::new(Some(stderr_read), io.stderr, Stream::Stderr),
        stdin,
        exited: pidfd_open(child.id()),
        deadline: io.deadline,
        cancel: io.cancel,
        child: child.id(),
    };
    let served = session.serve();
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
            let _ = child.stop();
            Err(e)
        }
    }
}

/// The caller's stdin as it was before a child that shares it ran: its
/// file status flags and, for a terminal, its settings.
pub(crate) struct SharedStdin {
    flags: Option<rustix::fs::OFlags>,
    termios: Option<rustix::termios::Termios>,
}

impl SharedStdin {
    pub(crate) fn save() -> Self {
        let fd = io::stdin();
        SharedStdin {
            flags: rustix::fs::fcntl_getfl(&fd).ok(),
            termios: rustix::termios::tcgetattr(&fd).ok(),
        }
    }

    /// Puts a terminal on stdin in raw mode (no echo, no line editing, no
    /// signals from keys): what a program on a remote terminal needs.
    pub(crate) fn make_raw(&self) {
        if let Some(termios) = &self.termios {
            let mut raw = termios.clone();
            raw.make_raw();
            let _ = rustix::termios::tcsetattr(
                io::stdin(),
                rustix::termios::OptionalActions::Now,
                &raw,
            );
        }
    }

    /// Puts stdin back as it was; what cannot be restored is left.
    pub(crate) fn restore(&self) {
        let fd = io::stdin();
        if let Some(flags) = self.flags {
            let _ = rustix::fs::fcntl_setfl(&fd, flags);
        }
        if let Some(termios) = &self.termios {
            let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, termios);
        }
    }
}

/// Runs `cmd` on the caller's own stdin, stdout and stderr until it exits,
/// or until the deadline or the cancel token stop it. With `empty_stdin`
/// its stdin is /dev/null instead. `own_group` puts it in a process group
/// of its own, which a child that must read the caller's terminal cannot
/// have (it would be stopped by SIGTTIN); without one, a stop reaches the
/// child alone.
pub(crate) fn run_inheriting(
    cmd: &mut Command,
    own_group: bool,
    empty_stdin: bool,
    deadline: Option<Instant>,
    cancel: Option<&Cancel>,
) -> Result<ExitStatus, RunError> {
    if cancel.is_some_and(Cancel::is_tripped) {
        return Err(RunError::Stopped(Stopped::Cancelled));
    }
    // The child's descriptors are handed over above 2; these live until
    // the spawn has copied them into place.
    let stdio = if empty_stdin {
        let above = |fd: OwnedFd| above_stdio(fd).map_err(RunError::Spawn);
        let copy = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map_err(RunError::Spawn);
        Some([
            above(OwnedFd::from(
                File::open("/dev/null").map_err(RunError::Spawn)?,
            ))?,
            above(copy(io::stdout().as_fd())?)?,
            above(copy(io::stderr().as_fd())?)?,
        ])
    } else {
        None
    };
    let plan = Plan {
        stdio: stdio
            .as_ref()
            .map(|fds| fds.each_ref().map(AsRawFd::as_raw_fd)),
        pass_fd: None,
        own_group,
    };
    // A child on the caller's own stdin may change it (smolvm puts a
    // terminal in raw mode and the descriptor in non-blocking mode) and
    // restores it only when it exits on its own.
    let stdin = (!empty_stdin).then(SharedStdin::save);
    let mut child = spawn::spawn(cmd, &plan).map_err(|e| match e {
        SpawnError::Io(e) => RunError::Spawn(e),
        SpawnError::TooLarge { bytes, limit } => RunError::TooLarge { bytes, limit },
    })?;
    if deadline.is_none() && cancel.is_none() {
        return child.wait().map_err(RunError::Io);
    }
    let exited = pidfd_open(child.id());
    let stop = |child: &mut spawn::Process, why: Stopped| {
        let _ = child.stop();
        if let Some(stdin) = &stdin {
            stdin.restore();
        }
        Err(RunError::Stopped(why))
    };
    loop {
        if cancel.is_some_and(Cancel::is_tripped) {
            return stop(&mut child, Stopped::Cancelled);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return stop(&mut child, Stopped::DeadlinePassed);
        }
        if let Some(status) = child.try_wait().map_err(RunError::Io)? {
            return Ok(status);
        }
        let mut fds = Vec::with_capacity(2);
        if let Some(fd) = &exited {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        if let Some(cancel) = cancel {
            fds.push(PollFd::new(cancel, PollFlags::IN));
        }
        let wait = if exited.is_some() {
            None
        } else {
            Some(EXIT_CHECK)
        };
        let until = deadline.map(|d| d - now).into_iter().chain(wait).min();
        // Whatever woke it (or an EINTR), the loop looks again.
        let _ = rustix::event::poll(&mut fds, poll_timeout(until).as_ref());
    }
}

/// A poll timeout, rounded up to the next whole millisecond and then some,
/// so that a loop waiting for a deadline never wakes just short of it and
/// spins.
fn poll_timeout(until: Option<Duration>) -> Option<Timespec> {
    until.map(|d| {
        let ms = d.as_millis().saturating_add(1);
        Timespec {
            tv_sec: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            tv_nsec: (ms % 1000 * 1_000_000) as _,
        }
    })
}

/// A pipe, both ends close-on-exec: (read, write).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// `fd`, moved above 2 if it is one of the standard descriptors (a host
/// that closed its stdin gets 0 back from pipe), so that placing the
/// child's stdio never overwrites a descriptor still to be placed.
pub(crate) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 3)?)
}

/// A descriptor that becomes readable when the child exits, so the poll loop
/// can wait for exit, output, a deadline and a cancel token at once. `None`
/// on kernels without pidfd_open (before 5.3): then the loop looks every
/// few milliseconds.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // Once the kernel (or valgrind) has said it has no pidfd_open, stop asking.
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    let pid = rustix::process::Pid::from_raw(pid.try_into().ok()?)?;
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Some(fd),
        Err(e) => {
            if e == Errno::NOSYS {
                UNSUPPORTED.store(true, Ordering::Relaxed);
            }
            None
        }
    }
}

/// The state of one run's descriptors.
struct Session<'a> {
    stdout: Reader<'a>,
    stderr: Reader<'a>,
    stdin: Option<Writer<'a>>,
    /// The child's pidfd.
    exited: Option<OwnedFd>,
    deadline: Option<Instant>,
    cancel: Option<&'a Cancel>,
    /// The child's pid, for when there is no pidfd.
    child: u32,
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
        let mut ready: Vec<Slot> = Vec::with_capacity(5);
        loop {
            if self.cancel.is_some_and(Cancel::is_tripped) {
                return Err(RunError::Stopped(Stopped::Cancelled));
            }
            let now = Instant::now();
            if self.deadline.is_some_and(|d| d <= now) {
                return Err(RunError::Stopped(Stopped::DeadlinePassed));
            }
            if self.exited.is_none() && spawn::has_exited(self.child) {
                return self.drain();
            }
            let check = self.exited.is_none().then_some(EXIT_CHECK);
            let timeout = poll_timeout(
                self.deadline
                    .map(|d| d - now)
                    .into_iter()
                    .chain(check)
                    .min(),
            );
            self.poll(timeout, &mut ready)?;
            for slot in &ready {
                match slot {
                    Slot::Stdout => self.stdout.on_ready()?,
                    Slot::Stderr => self.stderr.on_ready()?,
                    Slot::Stdin => self.stdin.as_mut().expect("watched").on_ready()?,
                    Slot::Exit => return self.drain(),
                    // Seen at the top of the loop.
                    Slot::Cancel => {}
                }
            }
        }
    }
}

impl Session<'_> {
    /// Waits until a descriptor is ready or `timeout` passes, and puts the
    /// slots that are ready in `ready` (none after a timeout or EINTR).
    fn poll(&self, timeout: Option<Timespec>, ready: &mut Vec<Slot>) -> Result<(), RunError> {
        let mut watched: Vec<(BorrowedFd<'_>, PollFlags, Slot)> = Vec::with_capacity(5);
        if let Some(fd) = &self.stdout.fd {
            watched.push((fd.as_fd(), PollFlags::IN, Slot::Stdout));
        }
        if let Some(fd) = &self.stderr.fd {
            watched.push((fd.as_fd(), PollFlags::IN, Slot::Stderr));
        }
        if let Some(socket) = self.stdin.as_ref().and_then(|w| w.socket.as_ref()) {
            watched.push((socket.as_fd(), PollFlags::OUT, Slot::Stdin));
        }
        if let Some(fd) = &self.exited {
            watched.push((fd.as_fd(), PollFlags::IN, Slot::Exit));
        }
        if let Some(cancel) = self.cancel {
            watched.push((cancel.as_fd(), PollFlags::IN, Slot::Cancel));
        }
        let mut fds: Vec<PollFd<'_>> = watched
            .iter()
            .map(|&(fd, events, _)| PollFd::from_borrowed_fd(fd, events))
            .collect();
        ready.clear();
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(Errno::INTR) => return Ok(()),
            Err(e) => return Err(RunError::Io(e.into())),
        }
        ready.extend(
            fds.iter()
                .zip(&watched)
                .filter(|(fd, _)| !fd.revents().is_empty())
                .map(|(_, &(_, _, slot))| slot),
        );
        Ok(())
    }

    /// Once the child has exited: reads what the pipes hold now, which is
    /// everything the child wrote, and ends the run. Whoever else still
    /// holds the pipes is not the child; what they write is not part of
    /// this run, and at most one pipe's worth of it is read.
    fn drain(&mut self) -> Result<(), RunError> {
        for reader in [&mut self.stdout, &mut self.stderr] {
            reader.drain()?;
        }
        Ok(())
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

    /// Reads what the pipe holds right now and closes it.
    fn drain(&mut self) -> Result<(), RunError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        let pending = rustix::io::ioctl_fionread(fd).map_err(|e| RunError::Io(e.into()))?;
        let mut left = usize::try_from(pending).unwrap_or(usize::MAX);
        while left > 0 && self.fd.is_some() {
            let before = self.total;
            self.on_ready_at_most(left)?;
            let read = (self.total - before) as usize;
            if read == 0 {
                break;
            }
            left = left.saturating_sub(read);
        }
        self.fd = None;
        Ok(())
    }

    fn on_ready(&mut self) -> Result<(), RunError> {
        self.on_ready_at_most(usize::MAX)
    }

    fn on_ready_at_most(&mut self, limit: usize) -> Result<(), RunError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        let start = self.buf.len();
        if read_some(fd.as_fd(), &mut self.buf, limit).map_err(RunError::Io)? == 0 {
            self.fd = None;
            return Ok(());
        }
        if let Some(on_chunk) = self.sink.on_chunk.as_mut() {
            if !on_chunk(&self.buf[start..]) {
                return Err(RunError::Stopped(Stopped::Callback(self.stream)));
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
            let flags = rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT;
            let n = match rustix::net::send(socket, self.data, flags) {
                Ok(n) => n,
                Err(Errno::AGAIN | Errno::INTR) => return Ok(()),
                // The child stopped reading: what it did not read is its
                // business, not an error of the run.
                Err(Errno::PIPE | Errno::CONNRESET) => {
                    self.socket = None;
                    return Ok(());
                }
                Err(e) => return Err(RunError::Io(e.into())),
            };
            self.data = &self.data[n..];
        }
        if self.data.is_empty() {
            // Closing our end is the child's end of input.
            self.socket = None;
        }
        Ok(())
    }
}

/// One read of at most `limit` bytes from a ready pipe into the buffer's
/// spare capacity; 0 at EOF.
fn read_some(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK {
        // Output can outgrow memory; that must be an error, not an abort.
        buf.try_reserve(READ_CHUNK.max(buf.len()))
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    }
    loop {
        let read = if limit >= buf.capacity() - buf.len() {
            rustix::io::read(fd, rustix::buffer::spare_capacity(buf))
        } else {
            // Only a drain reads less than there is room for: at most what
            // the pipe held when the child exited.
            let mut part = vec![0; limit.min(READ_CHUNK)];
            rustix::io::read(fd, &mut part[..]).inspect(|&n| buf.extend_from_slice(&part[..n]))
        };
        match read {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn a_stopped_child_on_the_callers_stdin_leaves_it_as_it_was() {
        use rustix::fs::{fcntl_getfl, OFlags};
        // stdin is this process's for the length of the test: a pipe, which
        // the child sets non-blocking (as smolvm does) and is then stopped.
        let saved = rustix::io::dup(io::stdin()).unwrap();
        let (read, _write) = rustix::pipe::pipe().unwrap();
        let onto_stdin = |fd: &OwnedFd| {
            // SAFETY: dup2 onto 0 replaces this process's stdin, which no
            // other test reads.
            assert_eq!(unsafe { libc::dup2(fd.as_raw_fd(), 0) }, 0);
        };
        onto_stdin(&read);
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args([
            "-c",
            "import fcntl, os, time; fcntl.fcntl(0, fcntl.F_SETFL, os.O_NONBLOCK); time.sleep(60)",
        ]);
        let deadline = Instant::now() + Duration::from_millis(700);
        let stopped = run_inheriting(&mut cmd, false, false, Some(deadline), None);
        let flags = fcntl_getfl(io::stdin()).unwrap();
        onto_stdin(&saved);
        assert!(
            matches!(stopped, Err(RunError::Stopped(Stopped::DeadlinePassed))),
            "{stopped:?}"
        );
        assert!(
            !flags.contains(OFlags::NONBLOCK),
            "stdin was left non-blocking"
        );
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
            matches!(e, RunError::Stopped(Stopped::Callback(Stream::Stderr))),
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
