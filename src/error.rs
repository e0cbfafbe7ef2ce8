//! The one error type of the safe core. The C boundary maps each variant to a
//! `bottle_status` code and its message to `bottle_last_error`.

use std::io;

/// Everything that can go wrong in a bottle operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument was rejected before anything ran; `arg` is its name as
    /// the caller's layer knows it (`machine_name`, `user`, `workdir` in
    /// Rust, `dir` or `argv[2]` through the C API, ...).
    #[error("{arg}: {reason}")]
    InvalidArgument { arg: String, reason: String },

    /// The smolvm executable could not be found or started.
    #[error("{0}")]
    SmolvmNotFound(String),

    /// smolvm ran and failed: unknown or stopped machine, usage error, copy
    /// failure. The message carries smolvm's own words.
    #[error("{0}")]
    Smolvm(String),

    /// The command did not finish within its timeout; it has been stopped.
    #[error("{0}")]
    Timeout(String),

    /// The run was cancelled, by a cancel token or by an output callback
    /// that asked to stop; the command has been stopped.
    #[error("{0}")]
    Cancelled(String),

    /// The operation cannot be done where the bottle is (a transport that
    /// lacks what it needs); nothing was run.
    #[error("{0}")]
    Unsupported(String),

    /// A host-side I/O error while talking to smolvm or reading a host file.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(arg: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            arg: arg.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
