//! Running a child with both output pipes captured.
//!
//! stdout and stderr can both be large at the same time, so they are read
//! concurrently: one thread polls both pipes and reads whichever is ready,
//! straight into the spare capacity of growing buffers. Reading one pipe to
//! the end before the other would deadlock as soon as the child fills the
//! pipe that is not being read.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, Command, ExitStatus, Stdio};

/// The smallest free space a buffer has before a read; the kernel hands over
/// at most one pipe's worth (64 KiB by default) per read.
const READ_CHUNK: usize = 64 * 1024;

/// What a finished child left behind.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Spawns `cmd` with stdin from /dev/null, reads stdout and stderr until both
/// close, then reaps the child. Errors from `spawn` are returned as they are,
/// so the caller can tell "not found" from other failures.
pub fn run(cmd: &mut Command) -> io::Result<Captured> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let read = read_both(&mut child);
    if read.is_err() {
        // The child may be blocked on a full pipe nobody reads any more.
        let _ = child.kill();
    }
    let status = child.wait()?;
    let (stdout, stderr) = read?;
    Ok(Captured {
        status,
        stdout,
        stderr,
    })
}

fn read_both(child: &mut Child) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let out = child.stdout.take().expect("stdout is piped");
    let err = child.stderr.take().expect("stderr is piped");
    let mut bufs = [Vec::new(), Vec::new()];
    let mut fds = [
        libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: err.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // A negative fd is skipped by poll: that is how a closed pipe drops out.
    while fds.iter().any(|p| p.fd >= 0) {
        // SAFETY: `fds` is a valid array of two pollfd for the whole call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for (p, buf) in fds.iter_mut().zip(bufs.iter_mut()) {
            if p.fd >= 0 && p.revents != 0 && read_some(p.fd, buf)? == 0 {
                p.fd = -1;
            }
        }
    }
    // `out` and `err` are dropped here, closing the pipes after the last read.
    drop((out, err));
    let [stdout, stderr] = bufs;
    Ok((stdout, stderr))
}

/// One read from a ready pipe into the buffer's spare capacity; 0 at EOF.
fn read_some(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_CHUNK {
        buf.reserve(READ_CHUNK.max(buf.len()));
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

    #[test]
    fn captures_both_streams_and_status() {
        let c = run(Command::new("sh").args(["-c", "printf out; printf err >&2; exit 7"])).unwrap();
        assert_eq!(c.stdout, b"out");
        assert_eq!(c.stderr, b"err");
        assert_eq!(c.status.code(), Some(7));
    }

    #[test]
    fn large_output_on_both_pipes_does_not_deadlock() {
        let script = "head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2; \
                      head -c 1000000 /dev/zero";
        let c = run(Command::new("sh").args(["-c", script])).unwrap();
        assert_eq!(c.stdout.len(), 4_000_000);
        assert_eq!(c.stderr.len(), 2_000_000);
        assert!(c.stdout.iter().all(|&b| b == 0));
    }

    #[test]
    fn spawn_errors_are_returned_unchanged() {
        let e = run(&mut Command::new("/nonexistent/smolvm")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
