//! Copies in and out of the machine.

use std::ffi::c_char;

use super::boundary::{self, path_arg, ref_arg, str_arg};
use super::copy_options::bottle_copy_options;
use super::handle::bottle;
use super::status::bottle_status;
use crate::cancel::Limits;

/// Copies the host file `host_path` into the machine at `guest_path`.
///
/// - `host_path`: required; a regular file the calling process can read. Any
///   bytes are accepted (it need not be UTF-8), including a leading `-` or a
///   `:`, because smolvm never sees the path: the library opens the file and
///   hands smolvm the open descriptor. Directories, devices and FIFOs are
///   `BOTTLE_ERR_INVALID_ARGUMENT`; a file that cannot be opened is
///   `BOTTLE_ERR_IO`.
/// - `guest_path`: required; an absolute UTF-8 path in the guest, without
///   `:` (smolvm's cp would read it as a machine separator). The file is
///   created or replaced there, owned by root with mode 0644; its parent
///   directory must exist.
///
/// `BOTTLE_ERR_SMOLVM` means smolvm failed (unknown or stopped machine,
/// missing guest directory, ...), with smolvm's message. Thread-safe. The
/// call blocks until the copy is done.
///
/// # Safety
/// `b` is NULL or an open bottle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_cp_in(
    b: *const bottle,
    host_path: *const c_char,
    guest_path: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `b` is NULL or live (the contract).
        let b = unsafe { ref_arg(b, "b") }?;
        // SAFETY: `host_path` is NULL or NUL-terminated (the contract).
        let host = unsafe { path_arg(host_path, "host_path") }?;
        // SAFETY: `guest_path` is NULL or NUL-terminated (the contract).
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
        b.inner.cp_in(host, guest)
    })
}

/// Copies `host_path` into the machine at `guest_path` with the options in
/// `opts` (NULL: as `bottle_cp_in`): mode, owner and a progress callback.
///
/// `host_path` may be a regular file, copied to `guest_path`, or a
/// directory, copied recursively: `guest_path` becomes a directory (created
/// if missing, with its parents) holding the same tree. The whole tree is
/// checked before anything is copied: every entry must be a regular file or
/// a directory whose name is UTF-8 without `:`; symbolic links and special
/// files are refused with `BOTTLE_ERR_INVALID_ARGUMENT`. Without a mode,
/// files keep their host permission bits except setuid, setgid and sticky.
/// Directories are created as root with one `exec`, and a symbolic link in
/// the guest where a directory goes stops the copy (`BOTTLE_ERR_SMOLVM`)
/// rather than being followed. Each file is then copied with `smolvm
/// machine cp`; only then are the directories the copy created given to
/// the owner, so no guest user can swap one for a link while root writes
/// through it. Existing directories keep their owner. `machine cp`, like
/// `cp`, writes through a link at a file's own path: do not copy into a
/// directory an untrusted guest user can already write. A failure part-way
/// leaves what was already copied in the guest.
///
/// With a timeout or cancel token in `opts` (see
/// `bottle_copy_options_set_timeout_ms`), the whole copy is bounded:
/// stopped, it returns `BOTTLE_ERR_TIMEOUT` or `BOTTLE_ERR_CANCELLED`.
///
/// Codes as for `bottle_cp_in`. Thread-safe. Blocks until done.
///
/// # Safety
/// As for `bottle_cp_in`; `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_cp_in_with(
    b: *const bottle,
    host_path: *const c_char,
    guest_path: *const c_char,
    opts: *const bottle_copy_options,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `b` is NULL or live (the contract).
        let b = unsafe { ref_arg(b, "b") }?;
        // SAFETY: `host_path` is NULL or NUL-terminated (the contract).
        let host = unsafe { path_arg(host_path, "host_path") }?;
        // SAFETY: `guest_path` is NULL or NUL-terminated (the contract).
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
        // SAFETY: `opts` is NULL or live (the contract).
        match unsafe { opts.as_ref() } {
            Some(o) => {
                let mut report = |p| o.report(p);
                b.inner.cp_in_with(host, guest, &o.inner, Some(&mut report))
            }
            None => b.inner.cp_in_with(host, guest, &Default::default(), None),
        }
    })
}

/// Copies the guest file `guest_path` out of the machine to `host_path`.
///
/// - `guest_path`: required; an absolute UTF-8 path without `:`, naming a
///   regular file.
/// - `host_path`: required; any bytes, like `bottle_cp_in`'s. Its directory
///   must exist. The file is written under a temporary name in that
///   directory and renamed over `host_path` only once smolvm has succeeded,
///   so an existing file is replaced whole or left untouched; it keeps its
///   0777 permission bits (not setuid, setgid or sticky, not its owner or
///   other hard links). A symbolic link at `host_path` is replaced, not
///   followed. A new file gets mode 0666 less the umask. Anything else there — a directory (or a link to one),
///   a device node, a FIFO, a socket — is `BOTTLE_ERR_INVALID_ARGUMENT`
///   and left untouched.
///
/// Codes as for `bottle_cp_in` (`BOTTLE_ERR_IO` when the host directory is
/// missing or not writable). Thread-safe. Blocks until done.
///
/// # Safety
/// `b` is NULL or an open bottle; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_cp_out(
    b: *const bottle,
    guest_path: *const c_char,
    host_path: *const c_char,
) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract,
    // which is `bottle_cp_out_with`'s; NULL options are none.
    unsafe { bottle_cp_out_with(b, guest_path, host_path, std::ptr::null()) }
}

/// `bottle_cp_out` with the timeout and cancel token of `opts` (NULL: none,
/// exactly `bottle_cp_out`; the options' mode, owner and progress callback
/// do not apply to a copy out). Stopped, it returns `BOTTLE_ERR_TIMEOUT` or
/// `BOTTLE_ERR_CANCELLED` with smolvm and its process group stopped and
/// reaped, and the host file untouched: nothing half-written is left at
/// `host_path`, and the temporary file is removed. Other codes, threading
/// and safety as for `bottle_cp_out`.
///
/// # Safety
/// As for `bottle_cp_out`; `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_cp_out_with(
    b: *const bottle,
    guest_path: *const c_char,
    host_path: *const c_char,
    opts: *const bottle_copy_options,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `b` is NULL or live (the contract).
        let b = unsafe { ref_arg(b, "b") }?;
        // SAFETY: `guest_path` is NULL or NUL-terminated (the contract).
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
        // SAFETY: `host_path` is NULL or NUL-terminated (the contract).
        let host = unsafe { path_arg(host_path, "host_path") }?;
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.inner.limits);
        b.inner.cp_out_within(guest, host, limits)
    })
}
