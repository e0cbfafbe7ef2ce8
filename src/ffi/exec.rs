//! Running a script in the machine: `bottle_exec` and `bottle_exec_with`.

use std::ffi::c_char;

use super::boundary::{self, opt_str_arg, out_arg, ref_arg, str_arg};
use super::exec_options::{bottle_exec_options, Output};
use super::exec_result::bottle_exec_result;
use super::handle::bottle;
use super::status::bottle_status;
use crate::bottle::Bottle;
use crate::error::Error;
use crate::exec_options::ExecOptions;
use crate::ExecOutput;

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
/// running, as in any VM. Stdin bytes (`bottle_exec_options_set_stdin`)
/// are kept whole in an unlinked root-only file before the script starts,
/// so a script that reads less than it is given cannot stall smolvm's
/// agent. The guard needs `/bin/sh`, `mkfifo`, `mktemp`, `cat` and `setsid`
/// in the guest and a writable `$TMPDIR`, `/tmp` or `/dev/shm`; if it
/// cannot set itself up it prints a line starting `libbottle: cannot` and
/// the exit status is 125, with nothing of the script run. A fifo
/// `.bottle-guard-PID` may stay in that directory when a call is stopped
/// within the guard's first milliseconds. A script that moves itself out
/// of its process group (`setsid`, job control) escapes it.
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
/// closed; strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec(
    b: *const bottle,
    script: *const c_char,
    user: *const c_char,
    out: *mut bottle_exec_result,
) -> bottle_status {
    let run = |b: &Bottle, script: &str| {
        // SAFETY: `user` is NULL or NUL-terminated (the contract).
        let user = unsafe { opt_str_arg(user, "user") }?;
        b.exec(script, user)
    };
    // SAFETY: the pointers go on under this function's own contract.
    unsafe { exec_into(b, script, out, run) }
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
    let run = |b: &Bottle, script: &str| {
        let default = ExecOptions::default();
        // SAFETY: `opts` is NULL or live options (the contract).
        let (options, stdout, stderr) = match unsafe { opts.as_ref() } {
            Some(o) => (&o.inner, o.stdout, o.stderr),
            None => (&default, Output::CAPTURED, Output::CAPTURED),
        };
        let mut on_stdout = |chunk: &[u8]| stdout.call(chunk);
        let mut on_stderr = |chunk: &[u8]| stderr.call(chunk);
        b.exec_with(
            script,
            options,
            stdout.sink(&mut on_stdout),
            stderr.sink(&mut on_stderr),
        )
        .map_err(setter_names)
    };
    // SAFETY: the pointers go on under this function's own contract.
    unsafe { exec_into(b, script, out, run) }
}

/// What both exec calls share: `out` zeroed first, `b` and `script` checked,
/// then `run`'s output handed to C in `out`.
///
/// # Safety
/// `b` is NULL or an open bottle, `script` NULL or NUL-terminated, `out`
/// NULL or writable.
unsafe fn exec_into(
    b: *const bottle,
    script: *const c_char,
    out: *mut bottle_exec_result,
    run: impl FnOnce(&Bottle, &str) -> Result<ExecOutput, Error>,
) -> bottle_status {
    boundary::guard(|| {
        let out = out_arg(out, "out")?;
        // SAFETY: `out` is non-NULL (checked) and writable (the contract).
        unsafe { out.as_ptr().write(bottle_exec_result::EMPTY) };
        // SAFETY: `b` is NULL or live (the contract).
        let b = unsafe { ref_arg(b, "b") }?;
        // SAFETY: `script` is NULL or NUL-terminated (the contract).
        let script = unsafe { str_arg(script, "script") }?;
        let output = run(&b.inner, script)?;
        // SAFETY: as above.
        unsafe { out.as_ptr().write(bottle_exec_result::from_output(output)) };
        Ok(())
    })
}

/// The core names exec's variable lists after `ExecOptions`' fields; a C
/// caller knows them by the setters that fill them.
fn setter_names(e: Error) -> Error {
    match e {
        Error::InvalidArgument { arg, reason } if arg == "env" || arg == "secret_env" => {
            let setter = format!("bottle_exec_options_add_{arg}");
            Error::InvalidArgument {
                reason: reason.replacen(&format!("`{arg}`"), &setter, 1),
                arg,
            }
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_lists_are_named_by_their_setters() {
        let core = Error::invalid("secret_env", "the variables of `secret_env` take 9 bytes");
        assert_eq!(
            setter_names(core).to_string(),
            "secret_env: the variables of bottle_exec_options_add_secret_env take 9 bytes"
        );
        let other = Error::invalid("script", "the script is `env`");
        assert_eq!(
            setter_names(other).to_string(),
            "script: the script is `env`"
        );
    }
}
