//! libbottle: drive a sandboxed coding agent in a smolvm microVM, from C,
//! Go or any language with a C FFI.
//!
//! The crate has two layers. The safe core — [`Bottle`] and the types its
//! operations take and return — knows nothing of C: it validates arguments,
//! builds smolvm command lines and runs them. Its modules are private; what
//! a Rust program uses is re-exported here. The [`ffi`] layer is the C ABI
//! that `include/bottle.h` declares: it checks pointers and UTF-8, catches
//! panics and maps errors to `bottle_status` codes.
//!
//! ```no_run
//! let bottle = bottle::Bottle::open("agent", None)?;
//! let out = bottle.exec("echo hello", None)?;
//! assert_eq!(out.stdout, b"hello\n");
//! # Ok::<(), bottle::Error>(())
//! ```

// Only the re-exports below and the C ABI are the crate's API.
#![warn(unreachable_pub)]

mod bottle;
mod cancel;
mod capture;
mod copy;
mod endpoint;
mod error;
mod exec_options;
pub mod ffi;
mod guest_command;
mod guest_env;
mod launch;
mod machine;
mod serve;
mod serve_exec;
mod serve_launch;
mod serve_tty;
mod smolvm;
mod spawn;
mod validate;

pub use bottle::Bottle;
pub use cancel::{Cancel, Limits};
pub use capture::{OnChunk, Sink};
pub use copy::{CopyOptions, OnProgress, Owner, Progress};
pub use endpoint::Endpoint;
pub use error::{Error, Result};
pub use exec_options::ExecOptions;
pub use launch::{LaunchOptions, Volume};
pub use machine::ExecOutput;
pub use smolvm::SMOLVM_VAR;
