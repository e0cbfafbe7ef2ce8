//! Options for `bottle_exec_with`.

use std::ffi::{c_char, c_int, c_void};

use super::boundary::{self, box_out, free_boxed, mut_arg, opt_str_arg, str_arg, timeout_arg};
use super::cancel::{bottle_cancel, cancel_arg};
use super::status::bottle_status;
use crate::capture::Sink;
use crate::error::Error;
use crate::exec_options::ExecOptions;
use crate::validate;

/// Receives output of `bottle_exec_with` as it arrives: `len` bytes at
/// `data`, valid only during the call. Return 0 to go on; any other value
/// stops the command, and `bottle_exec_with` returns `BOTTLE_ERR_CANCELLED`.
/// Called on the thread that called `bottle_exec_with`, one chunk at a
/// time, in order; options shared by calls on several threads call it from
/// each of them at once. It must return normally (no longjmp, no C++
/// exception).
pub type bottle_output_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, data: *const u8, len: usize) -> c_int>;

/// Options for `bottle_exec_with` (opaque).
///
/// Make one with `bottle_exec_options_new`, set what you need, pass it to any
/// number of calls, free it with `bottle_exec_options_free`. Options are
/// extended only by adding new setter functions, so code built against an
/// older header keeps working. An options object may be used by several
/// calls at once, but must not be changed while a call uses it.
pub struct bottle_exec_options {
    pub(crate) inner: ExecOptions,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
}

/// Where one output stream goes.
#[derive(Clone, Copy)]
pub(crate) struct Output {
    callback: bottle_output_fn,
    user_data: *mut c_void,
    capture: bool,
}

impl Output {
    pub(crate) const CAPTURED: Output = Output {
        callback: None,
        user_data: std::ptr::null_mut(),
        capture: true,
    };

    /// Hands `chunk` to the callback; false when it asks to stop.
    pub(crate) fn call(&self, chunk: &[u8]) -> bool {
        match self.callback {
            // SAFETY: the caller promised a callback that takes these
            // arguments; `chunk` is valid for the call.
            Some(f) => unsafe { f(self.user_data, chunk.as_ptr(), chunk.len()) == 0 },
            None => true,
        }
    }

    /// The sink for this stream; `on_chunk` is a closure around
    /// [`Output::call`], owned by the caller for the duration of the run.
    pub(crate) fn sink<'a>(&self, on_chunk: &'a mut dyn FnMut(&[u8]) -> bool) -> Sink<'a> {
        Sink {
            capture: self.capture,
            on_chunk: self.callback.map(|_| on_chunk),
        }
    }
}

/// Makes options with the defaults in `*out` (NULL on failure): user `node`,
/// no extra environment, the user's home as working directory, no timeout,
/// empty stdin, both outputs captured, no cancel token.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `out`.
/// Thread-safe.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_new(
    out: *mut *mut bottle_exec_options,
) -> bottle_status {
    boundary::guard(|| {
        box_out(out, || {
            Ok(bottle_exec_options {
                inner: ExecOptions::default(),
                stdout: Output::CAPTURED,
                stderr: Output::CAPTURED,
            })
        })
    })
}

/// Frees options; NULL is ignored. Calls that used them are unaffected.
///
/// Not while a call or another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or from `bottle_exec_options_new`, not yet freed, and not
/// in use by a running call.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_free(opts: *mut bottle_exec_options) {
    // SAFETY: `opts` is NULL or from its constructor, not yet freed (the contract).
    boundary::guard_void(|| unsafe { free_boxed(opts) });
}

/// The guest user the script runs as; NULL goes back to `node`. Same rules
/// as `user` of `bottle_exec`.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `user` that breaks those rules; a refused value leaves the options
/// as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `user` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_user(
    opts: *mut bottle_exec_options,
    user: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `user` is NULL or NUL-terminated (the contract).
        let user = unsafe { opt_str_arg(user, "user") }?;
        if let Some(u) = user {
            validate::user(u)?;
        }
        opts.inner.user = user.map(str::to_owned);
        Ok(())
    })
}

/// Adds the environment variable `name=value` for the script. `name`: an
/// ASCII letter or `_`, then letters, digits, `_`. `value`: UTF-8, may be
/// empty; `name=value` at most 131071 bytes, the value at most 131031. The
/// variable reaches the guest under a neutral name that the user's shell
/// renames, so no variable (`PATH`, `LD_PRELOAD`, ...) reaches the root
/// `runuser` by its own name. Those carrier names — `BOTTLE_ENV_N`,
/// `BOTTLE_SECRET_N`, `BOTTLE_MACHINE_ENV_N` for a number N — are refused
/// as `name`, as is `_` (the shell sets it itself): either would be lost.
/// The value travels on smolvm's command line (`-e`), where every local
/// user can read it while the command runs: use
/// `bottle_exec_options_add_secret_env` for secrets.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `name` or `value` that is NULL, not UTF-8 or refused; a refused
/// value leaves the options as they were. Not while another thread uses
/// `opts`.
///
/// # Safety
/// `opts` is NULL or live options; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_add_env(
    opts: *mut bottle_exec_options,
    name: *const c_char,
    value: *const c_char,
) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract.
    unsafe { add_pair(opts, name, value, |o| &mut o.env) }
}

/// Adds the environment variable `name=value` for the script, keeping the
/// value out of every process's command line on the host: smolvm is given
/// `--secret-env` and reads the value from its own environment. Same rules
/// as `bottle_exec_options_add_env`.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `name` or `value` that is NULL, not UTF-8 or refused; a refused
/// value leaves the options as they were. Not while another thread uses
/// `opts`.
///
/// # Safety
/// As for `bottle_exec_options_add_env`.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_add_secret_env(
    opts: *mut bottle_exec_options,
    name: *const c_char,
    value: *const c_char,
) -> bottle_status {
    // SAFETY: the arguments go on under this function's own contract.
    unsafe { add_pair(opts, name, value, |o| &mut o.secret_env) }
}

/// The guest directory the script starts in (absolute, UTF-8); NULL goes
/// back to the user's home. If it does not exist, the script does not run:
/// it exits 1 with the shell's `cd` message on stderr.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `dir` that is not an absolute UTF-8 path; a refused value leaves
/// the options as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `dir` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_workdir(
    opts: *mut bottle_exec_options,
    dir: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `dir` is NULL or NUL-terminated (the contract).
        let dir = unsafe { opt_str_arg(dir, "dir") }?;
        if let Some(d) = dir {
            validate::guest_path("dir", d)?;
        }
        opts.inner.workdir = dir.map(str::to_owned);
        Ok(())
    })
}

/// How long the script may run, in milliseconds; 0 means no limit. The
/// library keeps the time itself (smolvm gets no `--timeout`): when it is
/// up, it stops smolvm, the guest kills the script and everything it
/// started, and the call returns `BOTTLE_ERR_TIMEOUT` with no smolvm
/// process left behind.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_timeout_ms(
    opts: *mut bottle_exec_options,
    timeout_ms: u64,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.inner.timeout = timeout_arg(timeout_ms);
        Ok(())
    })
}

/// Bytes for the script's stdin: `len` bytes at `data`, copied (the caller
/// may free them at once). `data` may be NULL only when `len` is 0, which
/// gives an empty stdin, as the default does. smolvm passes the bytes on as
/// the script reads them, then their end. A script that exits without
/// reading all of it is not an error, and never raises SIGPIPE in the
/// calling process.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or NULL `data` with a non-zero `len`; a refused value leaves the options
/// as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `data` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_stdin(
    opts: *mut bottle_exec_options,
    data: *const u8,
    len: usize,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        let bytes = match (data.is_null(), len) {
            (_, 0) => Vec::new(),
            (true, _) => {
                return Err(Error::invalid(
                    "data",
                    format!("must not be NULL when len is {len}"),
                ))
            }
            // SAFETY: `data` points to `len` readable bytes per the contract.
            (false, _) => unsafe { std::slice::from_raw_parts(data, len) }.to_vec(),
        };
        opts.inner.stdin = Some(bytes);
        Ok(())
    })
}

/// Hands stdout to `callback` as it arrives (smolvm streams it), with
/// `user_data` as its first argument. With `capture` true the bytes are also
/// kept in the result; with false the result's stdout is empty. A NULL
/// callback goes back to plain capture.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `callback`, if set, is safe to call with
/// `user_data` for as long as the options are used.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_stdout_fn(
    opts: *mut bottle_exec_options,
    callback: bottle_output_fn,
    user_data: *mut c_void,
    capture: bool,
) -> bottle_status {
    // SAFETY: `opts` goes on under this function's own contract.
    unsafe { set_output(opts, |o| &mut o.stdout, callback, user_data, capture) }
}

/// As `bottle_exec_options_set_stdout_fn`, for stderr.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// As for `bottle_exec_options_set_stdout_fn`.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_stderr_fn(
    opts: *mut bottle_exec_options,
    callback: bottle_output_fn,
    user_data: *mut c_void,
    capture: bool,
) -> bottle_status {
    // SAFETY: `opts` goes on under this function's own contract.
    unsafe { set_output(opts, |o| &mut o.stderr, callback, user_data, capture) }
}

/// Attaches a cancel token (NULL detaches). The options keep their own
/// reference, so the token may be freed before them.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_options_set_cancel(
    opts: *mut bottle_exec_options,
    cancel: *const bottle_cancel,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: per the contract.
        opts.inner.cancel = unsafe { cancel_arg(cancel) };
        Ok(())
    })
}

/// Sets the stream `stream` picks to `callback`, or to plain capture for
/// NULL.
///
/// # Safety
/// `opts` is NULL or live options, used by no other thread.
unsafe fn set_output(
    opts: *mut bottle_exec_options,
    stream: fn(&mut bottle_exec_options) -> &mut Output,
    callback: bottle_output_fn,
    user_data: *mut c_void,
    capture: bool,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during
        // the call (the contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        *stream(opts) = match callback {
            Some(_) => Output {
                callback,
                user_data,
                capture,
            },
            None => Output::CAPTURED,
        };
        Ok(())
    })
}

/// Checks `name=value` and appends it to the list `list` picks.
///
/// # Safety
/// `opts` is NULL or live options; strings are NULL or NUL-terminated.
unsafe fn add_pair(
    opts: *mut bottle_exec_options,
    name: *const c_char,
    value: *const c_char,
    list: fn(&mut ExecOptions) -> &mut Vec<(String, String)>,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `name` and `value` are NULL or NUL-terminated (the contract).
        let pair = unsafe { env_pair(name, value) }?;
        list(&mut opts.inner).push(pair);
        Ok(())
    })
}

/// A checked `name=value` environment pair.
///
/// # Safety
/// Strings are NULL or NUL-terminated.
pub(crate) unsafe fn env_pair(
    name: *const c_char,
    value: *const c_char,
) -> Result<(String, String), Error> {
    // SAFETY: `name` is NULL or NUL-terminated (the contract).
    let name = unsafe { str_arg(name, "name") }?;
    // SAFETY: `value` is NULL or NUL-terminated (the contract).
    let value = unsafe { str_arg(value, "value") }?;
    validate::env_pair(name, value)?;
    Ok((name.to_owned(), value.to_owned()))
}
