//! The bottle: opening one on a machine someone else runs, and its name.
//! The handle itself is in `handle`, and each operation on a bottle has its
//! own file (exec, claude, copy, launch for close); they are re-exported
//! here, so that `ffi::bottle` names the handle and every call that takes
//! it.

use std::ffi::c_char;

use super::boundary::{self, box_out, opt_str_arg, str_arg};
use super::status::bottle_status;
use crate::bottle::Bottle;

pub use super::handle::bottle;

pub use super::claude::{bottle_exec_claude, bottle_exec_claude_with};
pub use super::copy::{bottle_cp_in, bottle_cp_in_with, bottle_cp_out, bottle_cp_out_with};
pub use super::exec::{bottle_exec, bottle_exec_with};
pub use super::launch::{bottle_close, bottle_close_checked, bottle_close_with};

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
            // SAFETY: `machine_name` is NULL or NUL-terminated (the contract).
            let machine = unsafe { str_arg(machine_name, "machine_name") }?;
            // SAFETY: `prompt_path` is NULL or NUL-terminated (the contract).
            let prompt = unsafe { opt_str_arg(prompt_path, "prompt_path") }?;
            Bottle::open(machine, prompt).map(bottle::new)
        })
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
