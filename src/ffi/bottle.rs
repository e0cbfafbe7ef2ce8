//! The bottle handle and its operations.

use std::ffi::{c_char, CString};

use super::boundary::{self, box_out, opt_str_arg, out_arg, path_arg, ref_arg, str_arg};
use super::call_options::bottle_call_options;
use super::copy_options::bottle_copy_options;
use super::exec_options::{bottle_exec_options, Output};
use super::exec_result::bottle_exec_result;
use super::status::bottle_status;
use crate::bottle::Bottle;
use crate::cancel::Limits;
use crate::error::Error;
use crate::exec_options::ExecOptions;

/// An open handle on one smolvm machine (opaque).
///
/// Get one from `bottle_open` (a machine someone else runs) or
/// `bottle_launch` (a machine the bottle owns), release it with
/// `bottle_close` or `bottle_close_checked`. A bottle holds no mutable
/// state: any number of threads may run operations on the same bottle at
/// once; each call runs its own smolvm process. Only closing must not race
/// with other calls on the same bottle.
pub struct bottle {
    inner: Bottle,
    /// The machine name as C sees it, kept for `bottle_machine_name`.
    name: CString,
}

impl bottle {
    pub(crate) fn new(inner: Bottle) -> Self {
        let name = CString::new(inner.machine()).expect("machine names have no NUL");
        bottle { inner, name }
    }
}

/// Opens a handle on the smolvm machine named `machine_name`.
///
/// This checks the arguments and finds the smolvm executable; it does not
/// boot, start or even contact the machine, so a machine that is missing or
/// stopped is only reported by the first operation on it. smolvm is found
/// through the environment variable `BOTTLE_SMOLVM` (a path, or a name
/// looked up on PATH) when it is set and non-empty, else as `smolvm` on
/// PATH; the path found is kept for the bottle's lifetime.
///
/// - `machine_name`: required, UTF-8, by smolvm's rules: 1 to 128 ASCII
///   letters, digits, `-` and `_`, starting with a letter or digit, not
///   ending with `-`, without `--`.
/// - `prompt_path`: the in-guest path of the agent's system-prompt file,
///   which `bottle_exec_claude` passes as `--append-system-prompt-file`; an
///   absolute UTF-8 path, or NULL for none. It is not checked for existence.
/// - `out`: required; receives the new bottle, or NULL on failure.
///
/// Returns `BOTTLE_OK`, `BOTTLE_ERR_INVALID_ARGUMENT` (message names the
/// argument) or `BOTTLE_ERR_SMOLVM_NOT_FOUND`. The strings are copied: the
/// caller may free them as soon as this returns. Thread-safe.
///
/// # Safety
/// Every non-NULL pointer must be valid: strings NUL-terminated, `out`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_open(
    machine_name: *const c_char,
    prompt_path: *const c_char,
    out: *mut *mut bottle,
) -> bottle_status {
    boundary::guard(|| {
        box_out(out, || {
            let machine = unsafe { str_arg(machine_name, "machine_name") }?;
            let prompt = unsafe { opt_str_arg(prompt_path, "prompt_path") }?;
            Bottle::open(machine, prompt).map(bottle::new)
        })
    })
}

/// Runs `script` in the machine as `user` and captures what it did.
///
/// The script is shell code for the user's login shell, run as
/// `smolvm machine exec --name NAME -i -- /bin/sh -c GUARD sh runuser -l
/// --session-command -- -- USER SCRIPT` (the login shell gets
/// `-c -- SCRIPT`, so even a script starting with `-` is run, not read as a
/// shell option): it gets the user's login environment (`$HOME`, `$USER`,
/// `$PATH`) and is passed as one argument, unchanged, so quote inside it
/// what the shell should not expand. The call blocks until the script
/// exits; its stdin is empty. Output of any size is captured: smolvm
/// passes it on as it is produced (`-i`).
///
/// GUARD, a short root `/bin/sh` script, ties the script to the call: if
/// the call is stopped (a timeout, a cancel, smolvm killed) the script and
/// everything it started in the guest are killed (SIGKILL to its process
/// group); a script that finishes leaves what it started in the background
/// running, as in any VM. It needs `/bin/sh`, `mkfifo` and `setsid` in the
/// guest and a writable `$TMPDIR` or `/tmp`; if it cannot make its fifo it
/// prints `libbottle: cannot make the fifo ...` and the exit status is 125,
/// with nothing of the script run. A script that moves itself out of its
/// process group (`setsid`, job control) escapes it.
///
/// - `b`: required, an open bottle.
/// - `script`: required, UTF-8, at most 131071 bytes (the kernel's limit
///   for one argument); may be empty.
/// - `user`: NULL means `node`, the agent image's user; otherwise 1 to 32
///   ASCII letters, digits, `_`, `.`, `-`, starting with a letter or `_`.
///   `"root"` runs as root.
/// - `out`: required. On `BOTTLE_OK` it holds the exit status and both
///   outputs, to be released with `bottle_exec_result_free`; on any failure
///   it is all zeros. Its previous contents are overwritten, not freed.
///
/// A script that exits non-zero is still `BOTTLE_OK`, with `exit_code` set.
/// `BOTTLE_ERR_SMOLVM` means smolvm itself failed: the machine is unknown or
/// not running, its agent failed, or smolvm rejected the command line;
/// `bottle_last_error()` has smolvm's message. smolvm exits 1 both when it
/// fails and when the script exits 1; it is smolvm's failure when stderr
/// ends with a line `Error: ` followed by one of smolvm's own kinds of
/// error (`agent operation failed: `, `vm not found: `, `io operation
/// failed: `, ...), printed after whatever the script wrote. Where that
/// message says the machine is missing or not running, or stdout is empty
/// and stderr is one `Error:` line in other words, the library asks smolvm
/// for the machine's state and calls it smolvm's failure only if the
/// machine is indeed missing or not running. So a script that prints
/// `Error: x` to stderr and exits 1 gets `BOTTLE_OK` with `exit_code` 1;
/// only a script whose stderr ends with smolvm's own words for an agent
/// failure, and exits 1, is taken for smolvm. Other codes:
/// `BOTTLE_ERR_INVALID_ARGUMENT`, `BOTTLE_ERR_SMOLVM_NOT_FOUND`,
/// `BOTTLE_ERR_IO`.
///
/// The output is what smolvm wrote before it exited: once it has exited,
/// the call reads what its pipes already hold and returns, so a process it
/// left behind holding them open neither delays the call nor adds to the
/// result (at most one pipe's worth of its writes may be included).
///
/// smolvm gets only its stdio (no other descriptor of the process), every
/// signal at its default action, a process group of its own, and SIGTERM
/// if the calling thread dies; a command line and environment larger than
/// the kernel takes are `BOTTLE_ERR_INVALID_ARGUMENT` before anything runs.
///
/// Thread-safe: many threads may exec on one bottle at once. The library
/// spawns and reaps smolvm itself: the process must not ignore SIGCHLD or
/// reap children it did not start (`waitpid(-1, ...)`); if it does, the
/// call fails with `BOTTLE_ERR_IO` saying so.
///
/// # Safety
/// `b` is NULL or a bottle from `bottle_open` or `bottle_launch`, not yet
/// closed; strings are
/// NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec(
    b: *const bottle,
    script: *const c_char,
    user: *const c_char,
    out: *mut bottle_exec_result,
) -> bottle_status {
    boundary::guard(|| {
        let out = out_arg(out, "out")?;
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.as_ptr().write(bottle_exec_result::EMPTY) };
        let b = unsafe { ref_arg(b, "b") }?;
        let script = unsafe { str_arg(script, "script") }?;
        let user = unsafe { opt_str_arg(user, "user") }?;
        let output = b.inner.exec(script, user)?;
        unsafe { out.as_ptr().write(bottle_exec_result::from_output(output)) };
        Ok(())
    })
}

/// Runs `script` as `bottle_exec` does, with the options in `opts` (NULL:
/// the defaults, which make it exactly `bottle_exec` with user NULL): user,
/// environment and secrets, working directory, timeout, stdin bytes,
/// streaming callbacks for stdout and stderr, and a cancel token. See the
/// `bottle_exec_options_*` functions.
///
/// Besides `bottle_exec`'s codes: `BOTTLE_ERR_TIMEOUT` when the timeout
/// passed, `BOTTLE_ERR_CANCELLED` when the cancel token was tripped or a
/// callback returned non-zero. In both cases smolvm has been stopped and
/// reaped, no smolvm process is left, the guest kills the script and
/// everything it started (see `bottle_exec`), and `out` is all zeros;
/// output that reached a callback before then stays delivered. A script
/// that exits 124 (the status smolvm's own timeout uses) within its time
/// is a plain result. Callbacks run on the calling thread. The stderr
/// callback sees smolvm's stderr, which is the guest command's plus
/// smolvm's own messages: when smolvm itself fails it also gets smolvm's
/// `Error: ...` line before the call returns `BOTTLE_ERR_SMOLVM` with the
/// same message. Thread-safe as `bottle_exec`.
///
/// # Safety
/// As for `bottle_exec`; `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_with(
    b: *const bottle,
    script: *const c_char,
    opts: *const bottle_exec_options,
    out: *mut bottle_exec_result,
) -> bottle_status {
    boundary::guard(|| {
        let out = out_arg(out, "out")?;
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { out.as_ptr().write(bottle_exec_result::EMPTY) };
        let b = unsafe { ref_arg(b, "b") }?;
        let script = unsafe { str_arg(script, "script") }?;
        let default = ExecOptions::default();
        // SAFETY: per the contract.
        let (options, stdout, stderr) = match unsafe { opts.as_ref() } {
            Some(o) => (&o.inner, o.stdout, o.stderr),
            None => (&default, Output::CAPTURED, Output::CAPTURED),
        };
        let mut on_stdout = |chunk: &[u8]| stdout.call(chunk);
        let mut on_stderr = |chunk: &[u8]| stderr.call(chunk);
        let output = b.inner.exec_with(
            script,
            options,
            stdout.sink(&mut on_stdout),
            stderr.sink(&mut on_stderr),
        )?;
        unsafe { out.as_ptr().write(bottle_exec_result::from_output(output)) };
        Ok(())
    })
}

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
/// claude). The call blocks until claude exits. claude writes to the caller's descriptors
/// directly, so flush stdio buffers (`fflush(NULL)`) before calling.
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
    boundary::guard(|| {
        let exit_code = out_arg(exit_code, "exit_code")?;
        // SAFETY: `exit_code` is non-NULL and writable per the contract.
        unsafe { exit_code.as_ptr().write(0) };
        let b = unsafe { ref_arg(b, "b") }?;
        let args = unsafe { argv_arg(argv, argc) }?;
        let code = b.inner.exec_claude(&args, tty)?;
        unsafe { exit_code.as_ptr().write(code) };
        Ok(())
    })
}

/// `bottle_exec_claude` with the timeout and cancel token of `opts` (NULL:
/// none, exactly `bottle_exec_claude`). When the timeout passes or the
/// token is tripped, smolvm is stopped (SIGTERM, SIGKILL half a second
/// later) and reaped, and the call returns `BOTTLE_ERR_TIMEOUT` or
/// `BOTTLE_ERR_CANCELLED` with `exit_code` 0. Without `tty`, smolvm runs in
/// a process group of its own and the whole group is stopped; with `tty`
/// it stays in the caller's process group, so that it can read the
/// terminal, and only smolvm itself is signalled. Other codes, threading
/// and safety as for `bottle_exec_claude`.
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
        let b = unsafe { ref_arg(b, "b") }?;
        let args = unsafe { argv_arg(argv, argc) }?;
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.0);
        let code = b.inner.exec_claude_within(&args, tty, limits)?;
        unsafe { exit_code.as_ptr().write(code) };
        Ok(())
    })
}

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
        let b = unsafe { ref_arg(b, "b") }?;
        let host = unsafe { path_arg(host_path, "host_path") }?;
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
        let b = unsafe { ref_arg(b, "b") }?;
        let host = unsafe { path_arg(host_path, "host_path") }?;
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
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
///   other hard links). A symbolic link
///   at `host_path` is replaced, not followed. A new file gets mode 0666
///   less the umask. Anything else there — a directory (or a link to one),
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
    boundary::guard(|| {
        let b = unsafe { ref_arg(b, "b") }?;
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
        let host = unsafe { path_arg(host_path, "host_path") }?;
        b.inner.cp_out(guest, host)
    })
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
        let b = unsafe { ref_arg(b, "b") }?;
        let guest = unsafe { str_arg(guest_path, "guest_path") }?;
        let host = unsafe { path_arg(host_path, "host_path") }?;
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.inner.limits);
        b.inner.cp_out_within(guest, host, limits)
    })
}

/// The name of the bottle's machine (for a launched bottle, the generated
/// one unless a name was set). The string belongs to the bottle and lives as
/// long as it; NULL for a NULL bottle. Thread-safe.
///
/// # Safety
/// `b` is NULL or an open bottle.
#[no_mangle]
pub unsafe extern "C" fn bottle_machine_name(b: *const bottle) -> *const c_char {
    // SAFETY: per the contract.
    unsafe { b.as_ref() }.map_or(std::ptr::null(), |b| b.name.as_ptr())
}

/// Releases a bottle and reports what happened to its machine: for a bottle
/// from `bottle_launch`, the machine is stopped and deleted, and a failure
/// of either is returned as `BOTTLE_ERR_SMOLVM` (deletion is tried even if
/// the stop failed); for a bottle from `bottle_open` nothing happens to the
/// machine and the result is `BOTTLE_OK`. The handle is freed in every case
/// and must not be used again. NULL is `BOTTLE_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `b` is NULL or an open bottle, used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn bottle_close_checked(b: *mut bottle) -> bottle_status {
    unsafe { bottle_close_with(b, std::ptr::null()) }
}

/// `bottle_close_checked` with the timeout and cancel token of `opts`
/// (NULL: none, exactly `bottle_close_checked`). A teardown stopped by them
/// returns `BOTTLE_ERR_TIMEOUT` or `BOTTLE_ERR_CANCELLED`, with smolvm and
/// its process group stopped and reaped; the machine is then left as it
/// is (perhaps stopped, not deleted), still labelled as this process's,
/// for `bottle_reap` once this process has exited. The handle is freed in
/// every case. Not for a bottle another thread is using.
///
/// # Safety
/// `b` is NULL or an open bottle, used by no other thread; `opts` is NULL
/// or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_close_with(
    b: *mut bottle,
    opts: *const bottle_call_options,
) -> bottle_status {
    boundary::guard(|| {
        if b.is_null() {
            return Err(Error::invalid("b", "must not be NULL"));
        }
        // SAFETY: `b` came from `box_out` in `bottle_open` or `bottle_launch`.
        let handle = unsafe { Box::from_raw(b) };
        let default = Limits::default();
        // SAFETY: per the contract.
        let limits = unsafe { opts.as_ref() }.map_or(&default, |o| &o.0);
        handle.inner.close_within(limits)
    })
}

/// Releases a bottle. NULL is ignored. A bottle from `bottle_open` leaves
/// its machine as it is: its lifecycle belongs to whoever started it. A
/// bottle from `bottle_launch` stops and deletes its machine; a failure to
/// do so is not reported (use `bottle_close_checked` to see it), and the
/// machine then stays behind, labelled as this process's, for `bottle_reap`
/// to delete once this process has exited. No other thread may be using the
/// bottle, and it must not be used afterwards.
///
/// # Safety
/// `b` is NULL or a bottle from `bottle_open` or `bottle_launch`, not yet
/// closed.
#[no_mangle]
pub unsafe extern "C" fn bottle_close(b: *mut bottle) {
    boundary::guard_void(|| {
        if !b.is_null() {
            // SAFETY: `b` came from `box_out` in `bottle_open` or `bottle_launch`.
            drop(unsafe { Box::from_raw(b) });
        }
    });
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
        .map(|i| unsafe { str_arg(*argv.add(i), &format!("argv[{i}]")) })
        .collect()
}
