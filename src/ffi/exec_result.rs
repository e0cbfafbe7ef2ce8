//! The exec result as C sees it, and the buffers it owns.

use std::ptr;

use super::boundary;
use crate::ExecOutput;

/// What a script run by `bottle_exec` left behind.
///
/// The two buffers are owned by the library: release them with
/// `bottle_exec_result_free`, never with `free()`. Each holds the bytes
/// exactly as the guest wrote them (any bytes, NUL included) and is followed
/// by one extra NUL byte that `*_len` does not count, so text output can be
/// used directly as a C string. After a successful `bottle_exec` both
/// pointers are non-NULL, even for empty output; after a failure, and after
/// `bottle_exec_result_free`, the struct is all zeros.
///
/// The caller allocates it, so its size and fields are fixed for good: new
/// data about a run comes through new functions (see the top of this
/// header).
#[repr(C)]
pub struct bottle_exec_result {
    /// The guest command's exit status: 0 to 255, where 128+N means the
    /// command was killed by signal N.
    pub exit_code: i32,
    /// The command's standard output.
    pub stdout_data: *mut u8,
    /// Bytes in `stdout_data`, not counting the trailing NUL.
    pub stdout_len: usize,
    /// The command's standard error.
    pub stderr_data: *mut u8,
    /// Bytes in `stderr_data`, not counting the trailing NUL.
    pub stderr_len: usize,
}

impl bottle_exec_result {
    pub(crate) const EMPTY: Self = Self {
        exit_code: 0,
        stdout_data: ptr::null_mut(),
        stdout_len: 0,
        stderr_data: ptr::null_mut(),
        stderr_len: 0,
    };

    pub(crate) fn from_output(out: ExecOutput) -> Self {
        let (stdout_data, stdout_len) = into_c_buffer(out.stdout);
        let (stderr_data, stderr_len) = into_c_buffer(out.stderr);
        Self {
            exit_code: out.exit_code,
            stdout_data,
            stdout_len,
            stderr_data,
            stderr_len,
        }
    }
}

/// Hands `bytes` to C with a trailing NUL. The allocation is exactly
/// `len + 1` bytes, which is what [`free_c_buffer`] rebuilds it from.
fn into_c_buffer(mut bytes: Vec<u8>) -> (*mut u8, usize) {
    let len = bytes.len();
    bytes.push(0);
    let boxed: Box<[u8]> = bytes.into_boxed_slice();
    (Box::into_raw(boxed).cast(), len)
}

/// # Safety
/// `data` is NULL or came from [`into_c_buffer`] with this `len`, and has not
/// been freed.
unsafe fn free_c_buffer(data: *mut u8, len: usize) {
    if !data.is_null() {
        drop(Box::from_raw(ptr::slice_from_raw_parts_mut(data, len + 1)));
    }
}

/// Frees the buffers of a result filled by `bottle_exec` and sets the whole
/// struct to zeros. NULL-safe, and safe to call twice on the same struct or
/// on a zero-initialised one. Do not call it on a struct that was never
/// initialised, or on a copy of a result whose original was already freed.
/// Thread-safe for distinct results.
///
/// # Safety
/// `result` is NULL or points to a `bottle_exec_result` that is all zeros or
/// was filled by `bottle_exec` and not freed since.
#[no_mangle]
pub unsafe extern "C" fn bottle_exec_result_free(result: *mut bottle_exec_result) {
    boundary::guard_void(|| {
        // SAFETY: per this function's contract.
        if let Some(r) = unsafe { result.as_mut() } {
            // SAFETY: the buffers are NULL or came from `into_c_buffer`
            // with these lengths and were not freed since (the contract:
            // freeing zeroes the struct, so a second call sees NULL).
            unsafe {
                free_c_buffer(r.stdout_data, r.stdout_len);
                free_c_buffer(r.stderr_data, r.stderr_len);
            }
            *r = bottle_exec_result::EMPTY;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_nul_terminated_and_freed_once() {
        let mut r = bottle_exec_result::from_output(ExecOutput {
            exit_code: 3,
            stdout: b"out\0put".to_vec(),
            stderr: Vec::new(),
        });
        assert_eq!(r.stdout_len, 7);
        // SAFETY: the buffers were just made with len + 1 bytes.
        let out = unsafe { std::slice::from_raw_parts(r.stdout_data, 8) };
        assert_eq!(out, b"out\0put\0");
        assert!(!r.stderr_data.is_null());
        // SAFETY: an empty buffer is one NUL byte.
        assert_eq!(unsafe { *r.stderr_data }, 0);
        // SAFETY: the arguments go on under this function's own contract.
        unsafe { bottle_exec_result_free(&mut r) };
        assert!(r.stdout_data.is_null() && r.stderr_data.is_null());
        assert_eq!((r.exit_code, r.stdout_len, r.stderr_len), (0, 0, 0));
        // SAFETY: the arguments go on under this function's own contract.
        unsafe { bottle_exec_result_free(&mut r) };
        // SAFETY: the arguments go on under this function's own contract.
        unsafe { bottle_exec_result_free(ptr::null_mut()) };
    }
}
