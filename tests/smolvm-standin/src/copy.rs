//! `machine cp`: copy one regular file into or out of a machine.
//!
//! The guest side of a copy runs in a child that has entered the machine
//! (guest.rs), so guest paths resolve inside its root: `..` and symlinks
//! cannot reach the host, and volumes appear where the guest sees them.
//! The host side stays in the stand-in: a host source is opened before the
//! child starts (so `/dev/fd/N` names the stand-in's own fd N), and a host
//! destination is created only once the guest file is known to be readable.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::cli::CpArgs;
use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::machine::Store;
use crate::spawn::{self, Report, Reporter};
use crate::{name, sys};

fn failed(path: &str, why: &str) -> String {
    format!("copy failed: {path}: {why}")
}

fn not_regular(path: &str) -> String {
    failed(path, "not a regular file")
}

/// Opens a file to write without truncating it first, so that a directory
/// or a FIFO is refused (O_NONBLOCK: opening a FIFO must not block) before
/// anything is destroyed.
fn open_destination(path: &str, mode: libc::mode_t) -> std::result::Result<OwnedFd, String> {
    let c_path = sys::cstring(path).map_err(|e| e.to_string())?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = match sys::open(&c_path, flags, mode) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => return Err(not_regular(path)),
        Err(e) => return Err(failed(path, &os_text(&e))),
    };
    let st = sys::fstat(fd.as_raw_fd()).map_err(|e| failed(path, &os_text(&e)))?;
    if !sys::is_regular(&st) {
        return Err(not_regular(path));
    }
    sys::check(unsafe { libc::ftruncate(fd.as_raw_fd(), 0) })
        .map_err(|e| failed(path, &os_text(&e)))?;
    Ok(fd)
}

fn open_source(path: &str) -> std::result::Result<OwnedFd, String> {
    let c_path = sys::cstring(path).map_err(|e| e.to_string())?;
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = sys::open(&c_path, flags, 0).map_err(|e| failed(path, &os_text(&e)))?;
    let st = sys::fstat(fd.as_raw_fd()).map_err(|e| failed(path, &os_text(&e)))?;
    if !sys::is_regular(&st) {
        return Err(not_regular(path));
    }
    Ok(fd)
}

struct Endpoint<'a> {
    machine: &'a str,
    path: &'a str,
}

pub fn run(args: CpArgs) -> Result<i32> {
    // smolvm's rule, trap included: a `:` in SRC makes it the machine side,
    // even when DST has one too; only then is DST looked at.
    if let Some((machine, path)) = args.src.split_once(':') {
        let from = Endpoint { machine, path };
        copy_out(&from, &args.dst)
    } else if let Some((machine, path)) = args.dst.split_once(':') {
        let to = Endpoint { machine, path };
        copy_in(&args.src, &to, &args)
    } else {
        Err(Error::new("one of SRC or DST must be MACHINE:PATH"))
    }
}

fn enter(end: &Endpoint) -> Result<Guest> {
    name::validate(end.machine)?;
    if !end.path.starts_with('/') {
        return Err(Error::new(format!(
            "copy failed: guest path must be absolute: '{}'",
            end.path
        )));
    }
    let store = Store::open()?;
    let machine = store.load(end.machine)?;
    machine.ensure_running()?;
    Guest::new(&store, &machine)
}

/// Waits for the guest side to end; returns the byte count it reported.
fn finish(child: &spawn::Child) -> Result<u64> {
    let bytes = sys::read_to_end(child.report.as_raw_fd())
        .map_err(|e| Error::new(format!("read: {}", os_text(&e))))?;
    child.disarm();
    sys::waitpid(child.pid).map_err(|e| Error::new(format!("waitpid: {}", os_text(&e))))?;
    match Report::parse(&bytes) {
        Some(r) if r.kind == spawn::DONE => r
            .message
            .parse()
            .map_err(|_| Error::new("copy failed: bad report from guest")),
        Some(r) => Err(Error::new(r.message)),
        None => Err(Error::new(
            "copy failed: guest side exited without a report",
        )),
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

fn copy_in(host: &str, to: &Endpoint, args: &CpArgs) -> Result<i32> {
    let guest = enter(to)?;
    let source = open_source(host).map_err(Error::new)?;
    let (mode, uid, gid) = (args.mode, args.uid.unwrap_or(0), args.gid.unwrap_or(0));
    let child = spawn::spawn(|reporter| {
        guest_side(reporter, &guest, || {
            // Created private, then given its final owner and mode.
            let dest = open_destination(to.path, 0o600)?;
            let fd = dest.as_raw_fd();
            let fail = |e: std::io::Error| failed(to.path, &os_text(&e));
            // chown before chmod: chown clears setuid/setgid bits.
            sys::check(unsafe { libc::fchown(fd, uid, gid) }).map_err(fail)?;
            sys::check(unsafe { libc::fchmod(fd, mode) }).map_err(fail)?;
            sys::copy(source.as_raw_fd(), fd).map_err(fail)
        })
    })?;
    let count = finish(&child)?;
    eprintln!("Copied {count} bytes to {}:{}", to.machine, to.path);
    Ok(0)
}

fn copy_out(from: &Endpoint, host: &str) -> Result<i32> {
    let guest = enter(from)?;
    let (data_read, data_write) =
        sys::pipe().map_err(|e| Error::new(format!("pipe: {}", os_text(&e))))?;
    let write_fd = data_write.as_raw_fd();
    let child = spawn::spawn(|reporter| {
        guest_side(reporter, &guest, || {
            let source = open_source(from.path)?;
            sys::copy(source.as_raw_fd(), write_fd).map_err(|e| failed(from.path, &os_text(&e)))
        })
    })?;
    drop(data_write);
    let received = receive(data_read.as_raw_fd(), host);
    if received.is_err() {
        unsafe { libc::kill(child.pid, libc::SIGKILL) };
    }
    let reported = finish(&child);
    let dest = received.map_err(Error::new)?;
    let count = reported?;
    // The guest file may be empty: then no data arrived to trigger creation.
    let dest = match dest {
        Some(fd) => fd,
        None => open_destination(host, 0o644).map_err(Error::new)?,
    };
    let fail = |e: std::io::Error| Error::new(failed(host, &os_text(&e)));
    sys::check(unsafe { libc::fchmod(dest.as_raw_fd(), 0o644) }).map_err(fail)?;
    eprintln!(
        "Copied {count} bytes from {}:{} to {host}",
        from.machine, from.path
    );
    Ok(0)
}

/// Streams the guest's data into `host`, creating it on the first byte, so
/// a failed guest open leaves the host untouched.
fn receive(data: RawFd, host: &str) -> std::result::Result<Option<OwnedFd>, String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut dest: Option<OwnedFd> = None;
    loop {
        let n = sys::read(data, &mut buf).map_err(|e| format!("read: {}", os_text(&e)))?;
        if n == 0 {
            return Ok(dest);
        }
        let fd = match &dest {
            Some(fd) => fd.as_raw_fd(),
            None => dest.insert(open_destination(host, 0o644)?).as_raw_fd(),
        };
        sys::write_all(fd, &buf[..n]).map_err(|e| failed(host, &os_text(&e)))?;
    }
}
