//! The stand-in's own failures.

use std::fmt;
use std::io;

/// A failure of the stand-in itself (not of a guest command). `main` prints
/// it as the single line `Error: <message>` and exits 1, as smolvm does.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// An OS error as C tools print it: std appends " (os error N)", which
/// smolvm's messages (produced by its Linux guest agent) do not carry.
pub fn os_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" (os error ") {
        Some((head, _)) => head.to_string(),
        None => text,
    }
}
