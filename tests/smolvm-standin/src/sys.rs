//! Thin wrappers over the libc calls the stand-in makes, turning `-1` into
//! `io::Error` and retrying on EINTR where a call can be interrupted.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn retry(mut call: impl FnMut() -> libc::ssize_t) -> io::Result<usize> {
    loop {
        let ret = call();
        if ret >= 0 {
            return Ok(ret as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub fn cstring(text: impl Into<Vec<u8>>) -> Result<CString> {
    CString::new(text).map_err(|e| {
        Error::new(format!(
            "argument contains a NUL byte: {}",
            String::from_utf8_lossy(&e.into_vec())
        ))
    })
}

/// Both ends close on exec: a child keeps only what it `dup2`s into place.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let fd = loop {
        let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if fd >= 0 {
            break fd;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

pub fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    retry(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// Reads once, appending up to `chunk` bytes to `data`; 0 means end of file.
pub fn read_append(fd: RawFd, data: &mut Vec<u8>, chunk: usize) -> io::Result<usize> {
    data.reserve(chunk);
    let spare = data.spare_capacity_mut();
    let n = retry(|| unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) })?;
    unsafe { data.set_len(data.len() + n) };
    Ok(n)
}

pub fn read_to_end(fd: RawFd) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    while read_append(fd, &mut data, 4096)? > 0 {}
    Ok(data)
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })?;
        buf = &buf[n..];
    }
    Ok(())
}

/// Copies `from` to `to` until end of file; returns the byte count.
pub fn copy(from: RawFd, to: RawFd) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = read(from, &mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        write_all(to, &buf[..n])?;
        total += n as u64;
    }
}

pub fn fork() -> io::Result<libc::pid_t> {
    check(unsafe { libc::fork() })
}

pub fn waitpid(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(status);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The shell convention smolvm follows: the exit status, or 128 + signal.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

/// A descriptor that becomes readable when `pid` exits, so waiting for the
/// child can share one `poll` with its output pipes and a deadline.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn dup2(from: RawFd, to: RawFd) -> io::Result<()> {
    check(unsafe { libc::dup2(from, to) }).map(drop)
}

pub fn raw(fd: &Option<OwnedFd>) -> Option<RawFd> {
    fd.as_ref().map(AsRawFd::as_raw_fd)
}
