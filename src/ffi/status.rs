//! Status codes, error messages and the library version.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};

use crate::error::Error;

thread_local! {
    /// The message of this thread's last failed call.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `message` as this thread's last error.
pub(crate) fn set_last_error(message: &str) {
    // A message from smolvm could hold a NUL; C would cut it short there.
    let message = CString::new(message.replace('\0', "\\0")).expect("NULs were replaced");
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(message));
}

/// The outcome of a libbottle call. `BOTTLE_OK` is zero; every other code is
/// a failure, with a message from `bottle_last_error()`. Later versions only
/// append codes: existing numbers never change, so treat unknown non-zero
/// codes as failures.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bottle_status {
    /// Success.
    BOTTLE_OK = 0,
    /// An argument was rejected before anything ran: NULL where not
    /// allowed, not UTF-8, a bad machine name, user or path. The message
    /// names the argument.
    BOTTLE_ERR_INVALID_ARGUMENT = 1,
    /// The smolvm executable cannot be found or started.
    BOTTLE_ERR_SMOLVM_NOT_FOUND = 2,
    /// smolvm itself failed: unknown or stopped machine, usage error, copy
    /// failed. The message carries smolvm's own words.
    BOTTLE_ERR_SMOLVM = 3,
    /// A host-side I/O error (pipes, files).
    BOTTLE_ERR_IO = 4,
    /// A bug inside the library, caught at the boundary; the process goes on.
    BOTTLE_ERR_PANIC = 5,
    /// The command did not finish within its timeout and was stopped.
    BOTTLE_ERR_TIMEOUT = 6,
    /// The call was cancelled (a tripped `bottle_cancel`, or an output
    /// callback that returned non-zero) and the command was stopped.
    BOTTLE_ERR_CANCELLED = 7,
    /// This build or transport cannot do it (each function's doc says
    /// where); nothing was run. Today: `bottle_endpoint_set_tls` of a
    /// library built without its `tls` feature.
    BOTTLE_ERR_UNSUPPORTED = 8,
}

/// `bottle_status` as the C caller may pass it: any int. Declared as the
/// enum in the header; read as an int here, so that an out-of-range value
/// from C is a described error, not undefined behaviour.
pub type BottleStatusCode = c_int;

impl bottle_status {
    const ALL: [Self; 9] = [
        Self::BOTTLE_OK,
        Self::BOTTLE_ERR_INVALID_ARGUMENT,
        Self::BOTTLE_ERR_SMOLVM_NOT_FOUND,
        Self::BOTTLE_ERR_SMOLVM,
        Self::BOTTLE_ERR_IO,
        Self::BOTTLE_ERR_PANIC,
        Self::BOTTLE_ERR_TIMEOUT,
        Self::BOTTLE_ERR_CANCELLED,
        Self::BOTTLE_ERR_UNSUPPORTED,
    ];

    fn from_code(code: BottleStatusCode) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| *s as BottleStatusCode == code)
    }

    fn description(self) -> &'static CStr {
        match self {
            Self::BOTTLE_OK => c"ok",
            Self::BOTTLE_ERR_INVALID_ARGUMENT => c"invalid argument",
            Self::BOTTLE_ERR_SMOLVM_NOT_FOUND => c"smolvm not found",
            Self::BOTTLE_ERR_SMOLVM => c"smolvm failed",
            Self::BOTTLE_ERR_IO => c"I/O error",
            Self::BOTTLE_ERR_PANIC => c"internal error (panic) in libbottle",
            Self::BOTTLE_ERR_TIMEOUT => c"timed out",
            Self::BOTTLE_ERR_CANCELLED => c"cancelled",
            Self::BOTTLE_ERR_UNSUPPORTED => c"not supported by this build of libbottle",
        }
    }

    pub(crate) fn from_error(e: &Error) -> Self {
        match e {
            Error::InvalidArgument { .. } => Self::BOTTLE_ERR_INVALID_ARGUMENT,
            Error::SmolvmNotFound(_) => Self::BOTTLE_ERR_SMOLVM_NOT_FOUND,
            Error::Smolvm(_) => Self::BOTTLE_ERR_SMOLVM,
            Error::Io { .. } => Self::BOTTLE_ERR_IO,
            Error::Timeout(_) => Self::BOTTLE_ERR_TIMEOUT,
            Error::Cancelled(_) => Self::BOTTLE_ERR_CANCELLED,
            Error::Unsupported(_) => Self::BOTTLE_ERR_UNSUPPORTED,
        }
    }
}

/// This thread's message for its last failed libbottle call, or NULL if no
/// call has failed on this thread yet.
///
/// The message is UTF-8 and names what went wrong (for a bad argument, the
/// argument's name comes first, as in `user: must not be empty`). The
/// string belongs to the library: do not free it. It stays valid until the
/// next libbottle call on the same thread; copy it to keep it longer.
/// Successful calls do not clear it, so read it only after a call returned
/// a status other than `BOTTLE_OK`. Each thread has its own message.
#[no_mangle]
pub extern "C" fn bottle_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |m| m.as_ptr())
    })
}

/// A short, static description of a status code, such as
/// `"smolvm failed"`. Never NULL: unknown codes give `"unknown status"`.
/// The string is static: do not free it. Thread-safe.
#[no_mangle]
pub extern "C" fn bottle_status_str(status: BottleStatusCode) -> *const c_char {
    bottle_status::from_code(status)
        .map_or(c"unknown status", bottle_status::description)
        .as_ptr()
}

/// The library's version, such as `"0.1.0"`. The string is static: do not
/// free it. Thread-safe.
#[no_mangle]
pub extern "C" fn bottle_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(p: *const c_char) -> &'static str {
        // SAFETY: the functions above return static NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_str().unwrap()
    }

    #[test]
    fn every_code_has_a_description() {
        for (i, s) in bottle_status::ALL.into_iter().enumerate() {
            assert_eq!(s as c_int, i as c_int, "codes are dense and in order");
            assert_ne!(
                text(bottle_status_str(s as c_int)),
                "unknown status",
                "{s:?}"
            );
        }
        assert_eq!(text(bottle_status_str(9)), "unknown status");
        assert_eq!(text(bottle_status_str(-1)), "unknown status");
    }

    #[test]
    fn version_is_the_crate_version() {
        assert_eq!(text(bottle_version()), env!("CARGO_PKG_VERSION"));
    }
}
