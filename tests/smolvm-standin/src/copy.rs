//! `machine cp`: copy one file into or out of a machine, with smolvm
//! 1.9.2's checks, order and messages.
//!
//! The guest side of a copy runs in a child that has entered the machine
//! (guest.rs), so guest paths resolve inside its root: symlinks cannot
//! reach the host, and volumes appear where the guest sees them. The host
//! side stays in the stand-in: a host source is opened before the child
//! starts (so `/dev/fd/N` names the stand-in's own fd N).
//!
//! As in smolvm, a copy out creates (or truncates) the host file before the
//! guest file is read, and removes it when the guest side fails.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::cli::{parse_mode, CpArgs};
use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::machine::Store;
use crate::spawn::{self, Report, Reporter};
use crate::{name, sys};

fn agent_error(op: &str, why: impl std::fmt::Display) -> Error {
    Error::new(format!("agent operation failed: {op}: {why}"))
}

fn config_error(why: &str) -> Error {
    Error::new(format!("config operation failed: cp: {why}"))
}

/// A guest path as smolvm's agent takes it: not empty, made absolute, no
/// `..` component. Errors are the agent's text.
fn normalize(path: &str) -> std::result::Result<String, String> {
    if path.is_empty() {
        return Err(format!("invalid guest path {path}: path is empty"));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!(
            "invalid guest path {path}: parent traversal is not allowed"
        ));
    }
    Ok(if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    })
}

struct Endpoint<'a> {
    machine: &'a str,
    path: &'a str,
}

pub fn run(args: CpArgs) -> Result<i32> {
    // smolvm's rule, trap included: a `:` in SRC makes it the machine side,
    // even when DST has one too; only then is DST looked at.
    if let Some((machine, path)) = args.src.split_once(':') {
        if args.mode.is_some() || args.uid.is_some() || args.gid.is_some() {
            return Err(config_error(
                "--mode/--uid/--gid apply to uploads only (host -> machine)",
            ));
        }
        copy_out(&Endpoint { machine, path }, &args.dst)
    } else if let Some((machine, path)) = args.dst.split_once(':') {
        copy_in(&args.src, &Endpoint { machine, path }, &args)
    } else {
        Err(config_error(
            "one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)",
        ))
    }
}

fn enter(end: &Endpoint) -> Result<Guest> {
    name::validate(end.machine)?;
    let store = Store::open()?;
    let machine = store.load(end.machine)?;
    machine.ensure_running()?;
    Guest::new(&store, &machine)
}

/// Waits for the guest side to end; returns the byte count it reported or
/// the agent's message.
fn finish(child: &spawn::Child, op: &str) -> Result<u64> {
    let bytes = sys::read_to_end(child.report.as_raw_fd())
        .map_err(|e| Error::new(format!("read: {}", os_text(&e))))?;
    child.disarm();
    sys::waitpid(child.pid).map_err(|e| Error::new(format!("waitpid: {}", os_text(&e))))?;
    match Report::parse(&bytes) {
        Some(r) if r.kind == spawn::DONE => r
            .message
            .parse()
            .map_err(|_| agent_error(op, "bad report from guest")),
        Some(r) => Err(agent_error(op, r.message)),
        None => Err(agent_error(op, "guest side exited without a report")),
    }
}

fn guest_side(
    reporter: &Reporter,
    guest: &Guest,
    work: impl FnOnce() -> std::result::Result<u64, String>,
) -> i32 {
    let result = guest.enter().and_then(|()| work());
    match result {
        Ok(count) => {
            reporter.send(spawn::DONE, &count.to_string());
            0
        }
        Err(message) => {
            reporter.send(spawn::SETUP_FAILED, &message);
            1
        }
    }
}

fn c_path(path: &str) -> std::result::Result<std::ffi::CString, String> {
    sys::cstring(path).map_err(|e| e.to_string())
}

/// `mkdir -p` of the parents of `path`, inside the guest.
fn make_parents(path: &str) -> std::result::Result<(), String> {
    let mut prefix = String::new();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        prefix.push('/');
        prefix.push_str(part);
        let c = c_path(&prefix)?;
        if unsafe { libc::mkdir(c.as_ptr(), 0o755) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(format!("failed to create parent directory {prefix}: {err}"));
            }
        }
    }
    Ok(())
}

/// Writes `source` to `path` in the guest as smolvm's agent does: parents
/// created, a staging file beside the target renamed into place, then mode
/// and owner.
fn write_guest(
    source: RawFd,
    path: &str,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> std::result::Result<u64, String> {
    make_parents(path)?;
    let staging = format!("{path}.smolvm-standin-{}", std::process::id());
    let c_staging = c_path(&staging)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY;
    let dest = sys::open(&c_staging, flags, 0o600)
        .map_err(|e| format!("failed to open staging file: {e}"))?;
    let fd = dest.as_raw_fd();
    let result = (|| {
        let count = sys::copy(source, fd).map_err(|e| format!("failed to write {path}: {e}"))?;
        let fail = |e: std::io::Error| format!("failed to set attributes of {path}: {e}");
        // chown before chmod: chown clears setuid/setgid bits.
        if uid.is_some() || gid.is_some() {
            let (u, g) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX));
            sys::check(unsafe { libc::fchown(fd, u, g) }).map_err(fail)?;
        }
        sys::check(unsafe { libc::fchmod(fd, mode) }).map_err(fail)?;
        let c_target = c_path(path)?;
        if unsafe { libc::rename(c_staging.as_ptr(), c_target.as_ptr()) } != 0 {
            let err = std::io::Error::last_os_error();
            return Err(format!("failed to rename onto {path}: {err}"));
        }
        Ok(count)
    })();
    if result.is_err() {
        unsafe { libc::unlink(c_staging.as_ptr()) };
    }
    result
}

fn copy_in(host: &str, to: &Endpoint, args: &CpArgs) -> Result<i32> {
    let guest = enter(to)?;
    let mode = match &args.mode {
        Some(text) => parse_mode(text).map_err(Error::new)?,
        None => 0o644,
    };
    let source = open_host_source(host)?;
    let path = normalize(to.path).map_err(|why| agent_error("write file", why))?;
    let (uid, gid) = (args.uid, args.gid);
    let child = spawn::spawn(|reporter| {
        guest_side(reporter, &guest, || {
            write_guest(source.as_raw_fd(), &path, mode, uid, gid)
        })
    })?;
    let count = finish(&child, "write file")?;
    eprintln!(
        "Uploading {host} -> {}: {count} B / {count} B (100.0%)",
        to.path
    );
    Ok(0)
}

/// The host file to copy in. smolvm's CLI opens it, then fails on the first
/// read of a directory.
fn open_host_source(host: &str) -> Result<OwnedFd> {
    let read_local = |e: std::io::Error| agent_error("read local file", format!("{host}: {e}"));
    let c = sys::cstring(host)?;
    // Non-blocking open, so a FIFO without a writer does not hang here;
    // reads then block again.
    let fd =
        sys::open(&c, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0).map_err(read_local)?;
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) };
    let st = sys::fstat(fd.as_raw_fd())
        .map_err(|e| agent_error("stat local file", format!("{host}: {e}")))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let err = std::io::Error::from_raw_os_error(libc::EISDIR);
        return Err(agent_error("read source file", err));
    }
    Ok(fd)
}

fn copy_out(from: &Endpoint, host: &str) -> Result<i32> {
    let guest = enter(from)?;
    let path = normalize(from.path).map_err(|why| agent_error("read file", why))?;
    // Created (or truncated) before anything is read, as smolvm does.
    let c_host = sys::cstring(host)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOCTTY;
    let dest = sys::open(&c_host, flags, 0o644)
        .map_err(|e| agent_error("write local file", format!("{host}: {e}")))?;
    let remove_host = || unsafe {
        libc::unlink(c_host.as_ptr());
    };
    let (data_read, data_write) =
        sys::pipe().map_err(|e| Error::new(format!("pipe: {}", os_text(&e))))?;
    let write_fd = data_write.as_raw_fd();
    let child = spawn::spawn(|reporter| {
        guest_side(reporter, &guest, || {
            let c = c_path(&path)?;
            let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
            let source = sys::open(&c, flags, 0)
                .map_err(|e| format!("failed to open {}: {e}", from.path))?;
            let st = sys::fstat(source.as_raw_fd())
                .map_err(|e| format!("failed to stat {}: {e}", from.path))?;
            if !sys::is_regular(&st) {
                return Err(format!("not a regular file: {}", from.path));
            }
            sys::copy(source.as_raw_fd(), write_fd).map_err(|e| format!("failed to read file: {e}"))
        })
    })?;
    drop(data_write);
    let received = sys::copy(data_read.as_raw_fd(), dest.as_raw_fd())
        .map_err(|e| agent_error("write local file", e));
    if received.is_err() {
        unsafe { libc::kill(child.pid, libc::SIGKILL) };
    }
    let reported = finish(&child, "read file");
    if let Err(e) = reported.as_ref().map(drop).and(received.as_ref().map(drop)) {
        let message = e.to_string();
        remove_host();
        return Err(Error::new(message));
    }
    let count = reported?;
    let shown = std::path::Path::new(std::ffi::OsStr::from_bytes(host.as_bytes())).display();
    eprintln!("Downloading {} -> {shown}: {count} B", from.path);
    Ok(0)
}
