//! The helpers every entry point uses: panic catching, and turning C
//! pointers into Rust references and strings.

use std::any::Any;
use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::NonNull;
use std::time::Duration;

use super::status::{bottle_status, set_last_error};
use crate::error::Error;

/// Runs an entry point's body: `Ok` is `BOTTLE_OK`; an error or a panic
/// becomes its status, with its message stored for `bottle_last_error`.
pub(super) fn guard(body: impl FnOnce() -> Result<(), Error>) -> bottle_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => bottle_status::BOTTLE_OK,
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            bottle_status::from_error(&e)
        }
        Err(payload) => {
            set_last_error(&format!(
                "internal error in libbottle (please report it): {}",
                panic_message(&*payload)
            ));
            bottle_status::BOTTLE_ERR_PANIC
        }
    }
}

/// For entry points that return nothing (`bottle_close`, frees): a panic is
/// caught and recorded, never unwound into C.
pub(super) fn guard_void(body: impl FnOnce()) {
    let _status = guard(|| {
        body();
        Ok(())
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic with a non-string payload")
}

/// A required C string argument as UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(super) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Error> {
    let bytes = bytes_arg(ptr, name)?;
    std::str::from_utf8(bytes).map_err(|e| {
        Error::invalid(
            name,
            format!(
                "is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// An optional C string argument: NULL is `None`.
///
/// # Safety
/// As for [`str_arg`].
pub(super) unsafe fn opt_str_arg<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        Ok(None)
    } else {
        str_arg(ptr, name).map(Some)
    }
}

/// A required C string argument as raw bytes (host paths need not be UTF-8).
///
/// # Safety
/// As for [`str_arg`].
unsafe fn bytes_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a [u8], Error> {
    if ptr.is_null() {
        return Err(Error::invalid(name, "must not be NULL"));
    }
    Ok(CStr::from_ptr(ptr).to_bytes())
}

/// A required host path argument: any bytes, as Linux paths are, since
/// only the library opens it and smolvm never parses it.
///
/// # Safety
/// As for [`str_arg`].
pub(super) unsafe fn path_arg<'a>(ptr: *const c_char, name: &str) -> Result<&'a Path, Error> {
    bytes_arg(ptr, name).map(|b| Path::new(OsStr::from_bytes(b)))
}

/// A required pointer argument as a reference.
///
/// # Safety
/// `ptr` is NULL or points to a valid `T` that outlives `'a`.
pub(super) unsafe fn ref_arg<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Error> {
    ptr.as_ref()
        .ok_or_else(|| Error::invalid(name, "must not be NULL"))
}

/// A required pointer argument the call may change.
///
/// # Safety
/// `ptr` is NULL or points to a valid `T`, used by no one else during the
/// call, that outlives `'a`.
pub(super) unsafe fn mut_arg<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, Error> {
    ptr.as_mut()
        .ok_or_else(|| Error::invalid(name, "must not be NULL"))
}

/// A timeout in milliseconds as the setters take it: 0 is none.
pub(super) fn timeout_arg(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// Stores `value` in a new heap object and hands it to C through `out`
/// (NULL first, so a failure leaves NULL behind).
pub(super) fn box_out<T>(
    out: *mut *mut T,
    value: impl FnOnce() -> Result<T, Error>,
) -> Result<(), Error> {
    let out = out_arg(out, "out")?;
    // SAFETY: `out` is non-NULL and writable per every caller's contract.
    unsafe { out.as_ptr().write(std::ptr::null_mut()) };
    let boxed = Box::into_raw(Box::new(value()?));
    // SAFETY: as above.
    unsafe { out.as_ptr().write(boxed) };
    Ok(())
}

/// Frees an object made by [`box_out`]; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from [`box_out`] and has not been freed.
pub(super) unsafe fn free_boxed<T>(ptr: *mut T) {
    if !ptr.is_null() {
        drop(Box::from_raw(ptr));
    }
}

/// A required out-parameter. It is only ever written with `ptr::write`,
/// never read or dropped, as the caller's memory may be uninitialised.
pub(super) fn out_arg<T>(ptr: *mut T, name: &str) -> Result<NonNull<T>, Error> {
    NonNull::new(ptr).ok_or_else(|| Error::invalid(name, "must not be NULL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_message() -> String {
        // SAFETY: non-NULL pointers from bottle_last_error are C strings.
        unsafe { CStr::from_ptr(super::super::status::bottle_last_error()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn panics_become_a_status_and_a_message() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, bottle_status::BOTTLE_ERR_PANIC);
        assert!(last_message().ends_with("boom 42"), "{}", last_message());
        guard_void(|| panic!("static boom"));
        assert!(last_message().ends_with("static boom"));
    }

    #[test]
    fn errors_keep_their_message_with_nuls_made_visible() {
        let status = guard(|| Err(Error::Smolvm("bad\0byte".into())));
        assert_eq!(status, bottle_status::BOTTLE_ERR_SMOLVM);
        assert_eq!(last_message(), "bad\\0byte");
        assert_eq!(guard(|| Ok(())), bottle_status::BOTTLE_OK);
        assert_eq!(last_message(), "bad\\0byte", "success leaves the message");
    }
}
