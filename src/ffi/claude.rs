//! Running claude-code in the machine on the caller's terminal.

use std::ffi::c_char;

use super::boundary::{self, out_arg, ref_arg, str_arg};
use super::call_options::bottle_call_options;
use super::handle::bottle;
use super::status::bottle_status;
use crate::cancel::Limits;
use crate::error::Error;

/// Runs claude-code in the machine, interactively, with exactly the
/// arguments given.
///
/// It runs as `node` (claude-code refuses `--dangerously-skip-permissions`
/// as root) through `runuser -l` running the script `exec claude
/// [--append-system-prompt-file PROMPT] ARGV...`, every piece single-quoted
/// for the login shell, so claude's argv is `argv[0..argc]` byte for byte,
/// whatever the strings contain. The caller's stdout and stderr are
/// inherited, not captured: claude talks to the caller's terminal. With
/// `tty` true smolvm is given `-i -t` (pass the caller's stdin on, allocate
/// a guest terminal); pass true when the caller's stdin is a terminal. With
/// `tty` false smolvm is given `-i` with an empty stdin: claude's stdin is
/// empty, its output streams to the caller as it is written, and it runs
/// under `bottle_exec`'s guard, so nothing it started outlives the call.
/// With `tty` true the guest terminal stays claude's controlling terminal;
/// if smolvm goes away, the guest hangs that terminal up (SIGHUP to
/// claude). The call blocks until claude exits. claude writes to the
/// caller's descriptors directly, so flush stdio buffers (`fflush(NULL)`)
/// before calling.
///
/// - `b`: required, an open bottle.
/// - `argv`: `argc` UTF-8 strings, each non-NULL (may be empty); NULL is
///   allowed only when `argc` is 0. The quoted command line must fit in
///   131071 bytes.
/// - `exit_code`: required; receives claude's exit status (128+N if it was
///   killed by signal N) on `BOTTLE_OK`, 0 otherwise.
///
/// The machine's state is checked first, so a missing or stopped machine is
/// `BOTTLE_ERR_SMOLVM` with smolvm's message before claude starts. Other
/// codes as for `bottle_exec`. Thread-safe, but two interactive sessions
/// sharing one terminal will fight over it.
///
/// # Safety
/// `b` is NULL or an open bottle; `argv` is NULL or points to `argc` string
/// pointers, each NULL or NUL-terminated; `exit_code` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_claude(
    b: *const bottle,
    argv: *const *const c_char,
    argc: usize,
    tty: bool,
    exit_code: *mut i32,
) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract,
    // which is `bottle_exec_claude_with`'s; NULL options are none.
    unsafe { bottle_exec_claude_with(b, argv, argc, tty, std::ptr::null(), exit_code) }
}

/// `bottle_exec_claude` with the timeout and cancel token of `opts` (NULL:
/// none, exactly `bottle_exec_claude`). When the timeout passes or the
/// token is tripped, smolvm is stopped (SIGTERM, SIGKILL half a second
/// later) and reaped, and the call returns `BOTTLE_ERR_TIMEOUT` or
/// `BOTTLE_ERR_CANCELLED` with `exit_code` 0. Without `tty`, smolvm runs in
/// a process group of its own and the whole group is stopped; with `tty`
/// it stays in the caller's process group, so that it can read the
/// terminal, and only smolvm itself is signalled; the caller's stdin is
/// then put back as it was before the call (file status flags and, for a
/// terminal, its settings), since a stopped smolvm cannot undo its raw
/// mode. Other codes, threading and safety as for `bottle_exec_claude`.
///
/// # Safety
/// As for `bottle_exec_claude`; `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_claude_with(
    b: *const bottle,
    argv: *const *const c_char,
    argc: usize,
    tty: bool,
    opts: *const bottle_call_options,
    exit_code: *mut i32,
) -> bottle_status {
    boundary::guard(|| {
        let exit_code = out_arg(exit_code, "exit_code")?;
        // SAFETY: `exit_code` is non-NULL and writable per the contract.
        unsafe { exit_code.as_ptr().write(0) };
        // SAFETY: `b` is NULL or live (the contract).
        let b = unsafe { ref_arg(b, "b") }?;
        // SAFETY: `argv` is NULL or holds `argc` pointers, each NULL or NUL-terminated (the
        // contract).
        let args = unsafe { argv_arg(argv, argc) }?;
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.0);
        let code = b.inner.exec_claude_within(&args, tty, limits)?;
        // SAFETY: `exit_code` is non-NULL (checked above) and writable (the contract).
        unsafe { exit_code.as_ptr().write(code) };
        Ok(())
    })
}

/// `argv[0..argc]` as UTF-8 strings, each checked and named in errors.
///
/// # Safety
/// As for `bottle_exec_claude`.
unsafe fn argv_arg<'a>(argv: *const *const c_char, argc: usize) -> Result<Vec<&'a str>, Error> {
    if argc == 0 {
        return Ok(Vec::new());
    }
    if argv.is_null() {
        return Err(Error::invalid(
            "argv",
            format!("must not be NULL when argc is {argc}"),
        ));
    }
    (0..argc)
        // SAFETY: `argv` is non-NULL here and holds `argc` pointers, each
        // NULL or NUL-terminated (the contract), and `i` < `argc`.
        .map(|i| unsafe { str_arg(*argv.add(i), &format!("argv[{i}]")) })
        .collect()
}
