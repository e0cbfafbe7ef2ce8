//! The cancel token.

use std::sync::Arc;

use super::boundary::{self, box_out, free_boxed};
use super::status::bottle_status;
use crate::cancel::Cancel;
use crate::error::Error;

/// A cancel token (opaque): attach it to options with one of the
/// `*_set_cancel` setters, then trip it from any thread to stop every
/// running and future call that uses it. Tripping is permanent: make a new
/// token for new work.
///
/// The token is reference-counted inside the library: the setters take a
/// `const bottle_cancel *`, since attaching a token does not change it
/// (the options keep their own reference, as copying a const shared
/// pointer would), while `bottle_cancel_trip`, which does, takes a
/// non-const one.
pub struct bottle_cancel(pub(crate) Arc<Cancel>);

/// Makes a new, untripped token in `*out` (NULL on failure). Free it with
/// `bottle_cancel_free`; options it was attached to keep their own
/// reference, so freeing it early is safe.
///
/// Returns `BOTTLE_OK`, `BOTTLE_ERR_INVALID_ARGUMENT` for NULL `out`, or
/// `BOTTLE_ERR_IO` if the process is out of descriptors. Thread-safe.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bottle_cancel_new(out: *mut *mut bottle_cancel) -> bottle_status {
    boundary::guard(|| {
        box_out(out, || {
            Cancel::new()
                .map(|c| bottle_cancel(Arc::new(c)))
                .map_err(|e| Error::io("creating the cancel token's eventfd", e))
        })
    })
}

/// Trips the token: every call using it stops its smolvm process (SIGTERM,
/// then SIGKILL after half a second), reaps it, and returns
/// `BOTTLE_ERR_CANCELLED`; calls started later fail the same way at once.
/// Idempotent. Safe from any thread, and from a signal handler (it only
/// stores a flag and writes to an eventfd). NULL is ignored.
///
/// The pointer is not `const`, because tripping changes the token for
/// every holder of it. It used to be declared `const`: the ABI is the same,
/// and a caller passing the `bottle_cancel *` of `bottle_cancel_new` needs
/// no change.
///
/// # Safety
/// `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn bottle_cancel_trip(cancel: *mut bottle_cancel) {
    // No guard: nothing here can panic, and a signal handler must not
    // allocate, which recording a panic would.
    // SAFETY: per the contract.
    if let Some(c) = unsafe { cancel.as_ref() } {
        c.0.trip();
    }
}

/// Whether the token has been tripped. NULL gives false. Thread-safe.
///
/// # Safety
/// `cancel` is NULL or a live token.
#[no_mangle]
pub unsafe extern "C" fn bottle_cancel_is_tripped(cancel: *const bottle_cancel) -> bool {
    // SAFETY: per the contract.
    unsafe { cancel.as_ref() }.is_some_and(|c| c.0.is_tripped())
}

/// Frees the caller's reference to the token. NULL is ignored.
///
/// # Safety
/// `cancel` is NULL or a token from `bottle_cancel_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bottle_cancel_free(cancel: *mut bottle_cancel) {
    // SAFETY: `cancel` is NULL or from its constructor, not yet freed (the contract).
    boundary::guard_void(|| unsafe { free_boxed(cancel) });
}

/// The options' own reference to a token, for the `*_set_cancel` setters;
/// NULL is none.
///
/// # Safety
/// `cancel` is NULL or a live token.
pub(crate) unsafe fn cancel_arg(cancel: *const bottle_cancel) -> Option<Arc<Cancel>> {
    // SAFETY: `cancel` is NULL or a live token (the contract).
    unsafe { cancel.as_ref() }.map(|c| c.0.clone())
}
