//! libbottle: drive a sandboxed coding agent in a smolvm microVM, from C,
//! Go or any language with a C FFI.
//!
//! The crate has two layers. The safe core ([`Bottle`], [`Error`] and the
//! modules behind them) knows nothing of C: it validates arguments, builds
//! smolvm command lines and runs them. The [`ffi`] layer is the C ABI that
//! `include/bottle.h` declares: it checks pointers and UTF-8, catches panics
//! and maps errors to `bottle_status` codes.

pub mod bottle;
pub mod cancel;
pub mod capture;
pub mod copy;
pub mod error;
pub mod exec_options;
pub mod ffi;
pub mod guest_command;
pub mod guest_env;
pub mod launch;
pub mod smolvm;
pub mod spawn;
pub mod validate;

pub use bottle::{Bottle, ExecOutput};
pub use cancel::Cancel;
pub use copy::{CopyOptions, Owner, Progress};
pub use error::{Error, Result};
pub use exec_options::ExecOptions;
pub use launch::{LaunchOptions, Volume};
