//! The C ABI: thin functions that check pointers and UTF-8, catch panics,
//! call the safe core and translate its results. Every `extern "C"` body goes
//! through [`boundary::guard`], so no entry point is special.

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
