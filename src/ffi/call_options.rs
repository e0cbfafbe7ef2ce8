//! Options for the calls that take nothing but limits: `bottle_close_with`,
//! `bottle_reap_with`, `bottle_exec_claude_with`.

use super::boundary::{self, box_out, free_boxed, mut_arg, timeout_arg};
use super::cancel::{bottle_cancel, cancel_arg};
use super::status::bottle_status;
use crate::cancel::Limits;

/// Options for `bottle_close_with`, `bottle_reap_with` and
/// `bottle_exec_claude_with` (opaque): a timeout and a cancel token for the
/// whole call. Same rules as `bottle_exec_options`: extended only by new
/// setters; may be used by several calls at once, not changed during one.
pub struct bottle_call_options(pub(crate) Limits);

/// Makes call options with the defaults in `*out` (NULL on failure): no
/// timeout, no cancel token.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `out`.
/// Thread-safe.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_call_options_new(
    out: *mut *mut bottle_call_options,
) -> bottle_status {
    boundary::guard(|| box_out(out, || Ok(bottle_call_options(Limits::default()))))
}

/// Frees call options; NULL is ignored.
///
/// Not while a call or another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or from `bottle_call_options_new`, not yet freed, and not
/// in use by a running call.
#[no_mangle]
pub unsafe extern "C" fn bottle_call_options_free(opts: *mut bottle_call_options) {
    // SAFETY: `opts` is NULL or from its constructor, not yet freed (the contract).
    boundary::guard_void(|| unsafe { free_boxed(opts) });
}

/// How long the whole call may take, in milliseconds; 0 means no limit.
/// When it is up, the smolvm process running then, and every process in
/// its process group, is stopped (SIGTERM, SIGKILL half a second later)
/// and reaped, and the call returns `BOTTLE_ERR_TIMEOUT`.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_call_options_set_timeout_ms(
    opts: *mut bottle_call_options,
    timeout_ms: u64,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.0.timeout = timeout_arg(timeout_ms);
        Ok(())
    })
}

/// Attaches a cancel token (NULL detaches): tripped, it stops the call as
/// a timeout does, with `BOTTLE_ERR_CANCELLED`. The options keep their own
/// reference, so the token may be freed before them.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn bottle_call_options_set_cancel(
    opts: *mut bottle_call_options,
    cancel: *const bottle_cancel,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `cancel` is NULL or a live token (the contract).
        opts.0.cancel = unsafe { cancel_arg(cancel) };
        Ok(())
    })
}
