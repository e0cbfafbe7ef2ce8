//! Options for `bottle_cp_in_with` and `bottle_cp_out_with`.

use std::ffi::{c_char, c_void};

use super::boundary::{self, box_out, free_boxed, mut_arg, opt_str_arg, timeout_arg};
use super::cancel::{bottle_cancel, cancel_arg};
use super::status::bottle_status;
use crate::copy::{CopyOptions, Owner, Progress};
use crate::validate;

/// How far a copy has got: files and bytes done out of the totals, which
/// are known before the first file is copied. The library allocates it and
/// passes it to the callback, so later versions may add fields at its end:
/// read only the fields you know.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bottle_progress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Called by `bottle_cp_in_with` before the first file and after each file
/// copied, on the calling thread. `progress` is valid only during the call.
pub type bottle_progress_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, progress: *const bottle_progress)>;

/// Options for `bottle_cp_in_with` and `bottle_cp_out_with` (opaque); a
/// copy out uses only the timeout and the cancel token. Same rules as
/// `bottle_exec_options`: extended only by new setters; shareable between
/// calls, not changed during one.
pub struct bottle_copy_options {
    pub(crate) inner: CopyOptions,
    pub(crate) progress: bottle_progress_fn,
    pub(crate) progress_data: *mut c_void,
}

impl bottle_copy_options {
    /// Reports `p` to the callback, if one is set.
    pub(crate) fn report(&self, p: Progress) {
        if let Some(f) = self.progress {
            let c = bottle_progress {
                files_done: p.files_done,
                files_total: p.files_total,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
            };
            // SAFETY: the caller promised a callback taking these arguments.
            unsafe { f(self.progress_data, &c) };
        }
    }
}

/// Makes copy options with the defaults in `*out` (NULL on failure): mode
/// 0644 for a single file (in a directory, each file's host permission
/// bits, without setuid, setgid and sticky), owned by root, no progress
/// callback, no timeout, no cancel token.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `out`.
/// Thread-safe.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_new(
    out: *mut *mut bottle_copy_options,
) -> bottle_status {
    boundary::guard(|| {
        box_out(out, || {
            Ok(bottle_copy_options {
                inner: CopyOptions::default(),
                progress: None,
                progress_data: std::ptr::null_mut(),
            })
        })
    })
}

/// Frees copy options; NULL is ignored.
///
/// Not while a call or another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or from `bottle_copy_options_new`, not yet freed, and not
/// in use by a running call.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_free(opts: *mut bottle_copy_options) {
    // SAFETY: `opts` is NULL or from its constructor, not yet freed (the contract).
    boundary::guard_void(|| unsafe { free_boxed(opts) });
}

/// Permission bits (at most 07777) for every file copied, as in `chmod`.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `mode` beyond 07777; a refused value leaves the options as they
/// were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_set_mode(
    opts: *mut bottle_copy_options,
    mode: u32,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        validate::mode(mode)?;
        opts.inner.mode = Some(mode);
        Ok(())
    })
}

/// Gives everything copied to numeric `uid` and `gid` in the guest. Neither
/// may be `(uid_t)-1`, which chown reads as "leave unchanged".
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or `(uid_t)-1` as either id; a refused value leaves the options as they
/// were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_set_owner_ids(
    opts: *mut bottle_copy_options,
    uid: u32,
    gid: u32,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        validate::owner_ids(uid, gid)?;
        opts.inner.owner = Owner::Ids { uid, gid };
        Ok(())
    })
}

/// Gives everything copied to the guest user `user` and its primary group,
/// looked up in the guest at copy time (one `exec` as root); pass `"node"`
/// so the agent can write what it was given. A user the guest does not
/// know makes the copy fail with `BOTTLE_ERR_INVALID_ARGUMENT` before any
/// file is copied. NULL goes back to root.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`,
/// or a `user` that breaks `bottle_exec`'s rules for it; a refused value
/// leaves the options as they were. Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `user` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_set_owner_user(
    opts: *mut bottle_copy_options,
    user: *const c_char,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `user` is NULL or NUL-terminated (the contract).
        let user = unsafe { opt_str_arg(user, "user") }?;
        opts.inner.owner = match user {
            Some(u) => {
                validate::user(u)?;
                Owner::User(u.to_owned())
            }
            None => Owner::Root,
        };
        Ok(())
    })
}

/// Reports progress to `callback` with `user_data`; NULL removes it.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `callback`, if set, is safe to call with
/// `user_data` for as long as the options are used.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_set_progress_fn(
    opts: *mut bottle_copy_options,
    callback: bottle_progress_fn,
    user_data: *mut c_void,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.progress = callback;
        opts.progress_data = user_data;
        Ok(())
    })
}

/// How long the whole copy may take, in milliseconds; 0 means no limit.
/// When it is up, the smolvm process running then, and every process in
/// its process group, is stopped (SIGTERM, SIGKILL half a second later)
/// and reaped, and the copy returns `BOTTLE_ERR_TIMEOUT`. A copy out leaves
/// the host file untouched. A copy in leaves in the guest what was copied
/// before, the directories it created (root's, not yet given to the
/// owner), and the file being copied as smolvm left it: possibly missing
/// or partly written.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_set_timeout_ms(
    opts: *mut bottle_copy_options,
    timeout_ms: u64,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        opts.inner.limits.timeout = timeout_arg(timeout_ms);
        Ok(())
    })
}

/// Attaches a cancel token (NULL detaches): tripped, it stops the copy as
/// the timeout does, with `BOTTLE_ERR_CANCELLED`. The options keep their
/// own reference, so the token may be freed before them.
///
/// Returns `BOTTLE_OK`, or `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `opts`.
/// Not while another thread uses `opts`.
///
/// # Safety
/// `opts` is NULL or live options; `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn bottle_copy_options_set_cancel(
    opts: *mut bottle_copy_options,
    cancel: *const bottle_cancel,
) -> bottle_status {
    boundary::guard(|| {
        // SAFETY: `opts` is NULL or live, and used by no other thread during the call (the
        // contract).
        let opts = unsafe { mut_arg(opts, "opts") }?;
        // SAFETY: `cancel` is NULL or a live token (the contract).
        opts.inner.limits.cancel = unsafe { cancel_arg(cancel) };
        Ok(())
    })
}
