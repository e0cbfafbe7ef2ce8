//! How to run a script: everything beyond the script itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::validate;

/// Options for [`crate::Bottle::exec_with`]. The default runs as `node`
/// with empty stdin, no extra environment, no timeout.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The guest user; `None` is `node`.
    pub user: Option<String>,
    /// Variables set for the script. Their values travel on smolvm's
    /// command line (`-e`), visible to every local user while it runs.
    pub env: Vec<(String, String)>,
    /// Variables whose values must stay out of every process list: they
    /// reach smolvm through its environment (`--secret-env`).
    pub secret_env: Vec<(String, String)>,
    /// The guest directory the script starts in; `None` is the user's home.
    pub workdir: Option<String>,
    /// How long the script may run. The library stops smolvm then, and with
    /// it the script and everything the script started.
    pub timeout: Option<Duration>,
    /// Bytes for the script's stdin; `None` is empty stdin.
    pub stdin: Option<Vec<u8>>,
    /// Tripped from any thread, it stops the run.
    pub cancel: Option<Arc<Cancel>>,
    /// The deadline of an operation this exec is part of (a copy's):
    /// smolvm is stopped then, whatever `timeout` says.
    pub deadline: Option<Instant>,
}

impl ExecOptions {
    /// When a run starting now must stop: its own timeout, or the deadline
    /// of the operation it is part of, whichever comes first.
    pub(crate) fn deadline_from_now(&self) -> Option<Instant> {
        self.timeout
            .map(|t| Instant::now() + t)
            .into_iter()
            .chain(self.deadline)
            .min()
    }

    /// Checks every field; messages name the field, or the variable's
    /// `name` or `value`. (The C setters check each value as it is set,
    /// under the header's names.)
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(user) = &self.user {
            validate::user(user)?;
        }
        for (name, value) in self.env.iter().chain(&self.secret_env) {
            validate::env_pair(name, value)?;
        }
        if let Some(dir) = &self.workdir {
            validate::guest_path("workdir", dir)?;
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid("timeout", "must be greater than 0"));
        }
        Ok(())
    }
}
