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

// The order of the modules is the order of the header's functions, as a C
// reader reads: cbindgen writes them as it meets them. (Each group is its
// own block, so that rustfmt keeps the order.)

// Status codes, the last error, the version.
pub mod status;

// The bottle: opening one on a machine, its name.
pub mod bottle;

// Endpoints: a smolvm serve instead of the local CLI.
pub mod endpoint;

// Running a script, and its options.
pub mod exec;
pub mod exec_options;

// Running claude.
pub mod claude;

// Copies in and out, and their options.
pub mod copy;
pub mod copy_options;

// Launching, closing and reaping.
pub mod launch;

// The cancel token.
pub mod cancel;

// Options for calls that take only limits.
pub mod call_options;

// Results the caller frees.
pub mod exec_result;

mod boundary;
mod handle;
