//! The C ABI: thin functions that check pointers and UTF-8, catch panics,
//! call the safe core and translate its results; one file per exported
//! concept.
//!
//! Every entry point that can fail, allocate or call into the core runs
//! its body through the boundary's `guard` (or `guard_void`), which turns
//! an error or a panic into a status and the thread's last error. Six do
//! not, because they cannot panic and must not touch the last error:
//! `bottle_last_error`, `bottle_status_str`, `bottle_version`,
//! `bottle_machine_name` and `bottle_cancel_is_tripped` only read, and
//! `bottle_cancel_trip` must stay safe in a signal handler, where recording
//! a panic would allocate.

// The C names of the API are the Rust names: cbindgen emits them as written.
#![allow(non_camel_case_types)]

pub mod bottle;
mod boundary;
pub mod call_options;
pub mod cancel;
pub mod copy_options;
pub mod exec_options;
pub mod exec_result;
pub mod launch;
pub mod status;
