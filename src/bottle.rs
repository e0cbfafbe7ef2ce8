//! The bottle: a handle on one named smolvm machine, and the operations the
//! agent harness needs on it. Nothing here knows about C.

use std::borrow::Cow;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::cancel::{Bounds, Limits};
use crate::capture::{Io, Sink};
use crate::error::{Error, Result};
use crate::exec_options::ExecOptions;
use crate::guest_command::{
    claude_script, in_workdir, runuser_command, with_exports, DEFAULT_USER,
};
use crate::guest_env::GuestEnv;
use crate::smolvm::{self, ExecFlags, Smolvm};
use crate::{spawn, validate};

/// How long after an exec's timeout the library stops a smolvm that has not
/// returned by itself (smolvm's own --timeout should have ended it).
const TIMEOUT_GRACE: Duration = Duration::from_secs(1);

/// A handle on a named smolvm machine. Opening one checks the arguments and
/// finds smolvm; it neither boots nor contacts the machine. A `Bottle` is
/// safe to share between threads: each operation is its own smolvm process.
///
/// A bottle from [`Bottle::launch`] owns its machine: [`Bottle::close`], or
/// dropping it, stops and deletes the machine.
#[derive(Debug)]
pub struct Bottle {
    machine: String,
    prompt_path: Option<String>,
    smolvm: Smolvm,
    owns_machine: bool,
    /// Names of the variables the machine was created with, in order: the
    /// machine holds them under carrier names, which every command renames.
    machine_env: Vec<String>,
}

/// The result of a command that ran in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Bottle {
    /// A bottle on `machine`, using the smolvm that `$BOTTLE_SMOLVM` or PATH
    /// names. `prompt_path` is the in-guest path of the agent's system-prompt
    /// file, passed to claude as `--append-system-prompt-file`.
    pub fn open(machine: &str, prompt_path: Option<&str>) -> Result<Self> {
        validate::machine_name(machine)?;
        if let Some(p) = prompt_path {
            validate::guest_path("prompt_path", p)?;
        }
        Ok(Bottle::new(
            machine.to_owned(),
            prompt_path.map(str::to_owned),
            Smolvm::locate()?,
            false,
            Vec::new(),
        ))
    }

    pub(crate) fn new(
        machine: String,
        prompt_path: Option<String>,
        smolvm: Smolvm,
        owns_machine: bool,
        machine_env: Vec<String>,
    ) -> Self {
        Bottle {
            machine,
            prompt_path,
            smolvm,
            owns_machine,
            machine_env,
        }
    }

    /// Releases the bottle; a launched bottle's machine is stopped and
    /// deleted, and a failure to do so is returned (the handle is gone
    /// either way).
    pub fn close(self) -> Result<()> {
        self.close_within(&Limits::default())
    }

    /// [`Bottle::close`] within `limits`: a teardown stopped by them leaves
    /// the machine as it is, still labelled for [`crate::launch::reap`].
    pub fn close_within(mut self, limits: &Limits) -> Result<()> {
        let owned = std::mem::take(&mut self.owns_machine);
        if owned {
            crate::launch::teardown(&self.smolvm, &self.machine, &limits.start())
        } else {
            Ok(())
        }
    }

    pub fn machine(&self) -> &str {
        &self.machine
    }

    pub fn smolvm(&self) -> &Smolvm {
        &self.smolvm
    }

    /// Runs `script` in `user`'s login shell (default `node`) and captures
    /// its exit status, stdout and stderr. A non-zero exit of the script is
    /// an `Ok` result; only smolvm's own failures are errors.
    pub fn exec(&self, script: &str, user: Option<&str>) -> Result<ExecOutput> {
        let opts = ExecOptions {
            user: user.map(str::to_owned),
            ..ExecOptions::default()
        };
        self.exec_with(script, &opts, Sink::default(), Sink::default())
    }

    /// Runs `script` as [`Bottle::exec`] does, with the options in `opts`,
    /// and stdout and stderr going where the sinks say (captured, handed to
    /// a callback as they arrive, or both).
    ///
    /// smolvm exits 1 both when it fails and when the script exits 1. When
    /// the output is exactly what a smolvm failure looks like (one `Error:`
    /// line on stderr, nothing on stdout), smolvm is asked for the machine's
    /// state: a machine that is missing or not running could not have run
    /// the script, so the exit is smolvm's; on a running machine it is the
    /// script's.
    pub fn exec_with<'a>(
        &self,
        script: &str,
        opts: &'a ExecOptions,
        stdout: Sink<'a>,
        stderr: Sink<'a>,
    ) -> Result<ExecOutput> {
        opts.validate()?;
        let user = opts.user.as_deref().unwrap_or(DEFAULT_USER);
        let vars = GuestEnv::new(&self.machine_env, opts);
        let original_len = script.len();
        let script = match &opts.workdir {
            Some(dir) => Cow::Owned(in_workdir(dir, script)),
            None => Cow::Borrowed(script),
        };
        let script = with_exports(&vars.exports(), &script);
        let what = if script.len() == original_len {
            "the script"
        } else {
            "the script with its environment and working directory"
        };
        validate::single_argument("script", what, script.len())?;

        let flags = ExecFlags {
            stdin: opts.stdin.is_some(),
            stream: stdout.on_chunk.is_some() || stderr.on_chunk.is_some(),
            timeout: opts.timeout,
            env: &vars.plain,
            secret_env: &vars.secret,
            ..ExecFlags::default()
        };
        let guest = runuser_command(user, &vars.carriers(), &script);
        let mut cmd = self
            .smolvm
            .command(smolvm::exec_args(&self.machine, &flags, &guest));
        // Each secret reaches smolvm only as a variable of its environment.
        for ((_, carrier), (_, value)) in vars.secret.iter().zip(&opts.secret_env) {
            cmd.env(carrier, value);
        }
        self.check_size(&cmd, opts, script.len())?;

        let started = Instant::now();
        let own_deadline = opts.timeout.map(|t| started + t + TIMEOUT_GRACE);
        let io = Io {
            stdin: opts.stdin.as_deref(),
            stdout,
            stderr,
            deadline: own_deadline.into_iter().chain(opts.deadline).min(),
            cancel: opts.cancel.as_deref(),
            pass_fd: None,
        };
        let out = self
            .smolvm
            .capture_with(&mut cmd, io)
            .map_err(|e| self.stopped("exec", opts.timeout, e))?;
        if let Some(usage) = smolvm::usage_error(&out) {
            return Err(self.failed("exec", usage));
        }
        if let Some(message) = smolvm::lone_error_line(&out) {
            if !self.smolvm.machine_state(&self.machine)?.is_running() {
                return Err(self.failed("exec", message));
            }
        }
        if let Some(timeout) = opts.timeout {
            if smolvm::reports_timeout(&out) && started.elapsed() >= timeout {
                return Err(self.timed_out("exec", timeout));
            }
        }
        let exit_code = self.guest_exit_code(out.status)?;
        Ok(ExecOutput {
            exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs claude-code as `node` with exactly `args`, on the caller's
    /// terminal: stdout and stderr are inherited, and with `tty` stdin too
    /// (`-i -t`), because claude is interactive and decides what to do from
    /// whether its streams are a terminal. Returns claude's exit status.
    ///
    /// smolvm's `Error:` line would go straight to the caller's stderr, so
    /// the machine is checked first, and an exit of 1 is checked again the
    /// same way as for [`Bottle::exec`].
    pub fn exec_claude(&self, args: &[&str], tty: bool) -> Result<i32> {
        self.exec_claude_within(args, tty, &Limits::default())
    }

    /// [`Bottle::exec_claude`] stopped by `limits`: smolvm gets SIGTERM,
    /// then SIGKILL. With `tty`, smolvm shares the caller's process group
    /// (a background group could not read the terminal), so only smolvm
    /// itself is signalled; without, its whole process group is.
    pub fn exec_claude_within(&self, args: &[&str], tty: bool, limits: &Limits) -> Result<i32> {
        let bounds = limits.start();
        let what = format!("smolvm machine exec on '{}'", self.machine);
        self.exec_claude_bounded(args, tty, &bounds)
            .map_err(|e| bounds.explain(&what, e))
    }

    fn exec_claude_bounded(&self, args: &[&str], tty: bool, bounds: &Bounds) -> Result<i32> {
        let vars = GuestEnv::new(&self.machine_env, &ExecOptions::default());
        let script = with_exports(
            &vars.exports(),
            &claude_script(self.prompt_path.as_deref(), args)?,
        );
        validate::single_argument("argv", "the quoted claude command line", script.len())?;
        self.require_running_within(bounds)?;
        let guest = runuser_command(DEFAULT_USER, &vars.carriers(), &script);
        let flags = ExecFlags {
            stdin: tty,
            tty,
            ..ExecFlags::default()
        };
        let mut cmd = self
            .smolvm
            .command(smolvm::exec_args(&self.machine, &flags, &guest));
        let status = self.smolvm.run_inheriting(&mut cmd, !tty, bounds)?;
        if status.code() == Some(1) {
            let state = self.smolvm.machine_state_within(&self.machine, bounds)?;
            if !state.is_running() {
                return Err(self.failed(
                    "exec",
                    &format!(
                        "exit status 1 and {} (smolvm's message went to stderr)",
                        state.why_not_running(&self.machine)
                    ),
                ));
            }
        }
        self.guest_exit_code(status)
    }

    fn require_running_within(&self, bounds: &Bounds) -> Result<()> {
        let state = self.smolvm.machine_state_within(&self.machine, bounds)?;
        if state.is_running() {
            Ok(())
        } else {
            Err(self.failed("exec", &state.why_not_running(&self.machine)))
        }
    }

    /// Refuses an exec whose smolvm command line and environment the kernel
    /// would not take, naming the caller's largest part, before anything
    /// runs.
    fn check_size(
        &self,
        cmd: &std::process::Command,
        opts: &ExecOptions,
        script: usize,
    ) -> Result<()> {
        let (bytes, limit) = (spawn::command_size(cmd), spawn::exec_size_limit());
        if bytes <= limit {
            return Ok(());
        }
        let sum =
            |pairs: &[(String, String)]| pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        Err(validate::too_large(
            &[
                (
                    "env",
                    "the variables of bottle_exec_options_add_env (on smolvm's command line)",
                    sum(&opts.env),
                ),
                (
                    "secret_env",
                    "the variables of bottle_exec_options_add_secret_env (in smolvm's environment)",
                    sum(&opts.secret_env),
                ),
                ("script", "the script", script),
            ],
            bytes,
            limit,
        ))
    }

    /// smolvm reports the guest command's exit status as its own; a smolvm
    /// killed by a signal reports nothing about the guest.
    fn guest_exit_code(&self, status: ExitStatus) -> Result<i32> {
        match status.code() {
            Some(code) => Ok(code),
            None => Err(self.failed(
                "exec",
                &format!(
                    "smolvm was killed by signal {}",
                    status.signal().unwrap_or_default()
                ),
            )),
        }
    }

    /// A run stopped early, described with this bottle's machine.
    fn stopped(&self, subcommand: &str, timeout: Option<Duration>, e: Error) -> Error {
        match (e, timeout) {
            (Error::Timeout(_), Some(timeout)) => self.timed_out(subcommand, timeout),
            (Error::Cancelled(why), _) => Error::Cancelled(format!(
                "smolvm machine {subcommand} on '{}' was stopped: {why}",
                self.machine
            )),
            (other, _) => other,
        }
    }

    fn timed_out(&self, subcommand: &str, timeout: Duration) -> Error {
        Error::Timeout(format!(
            "smolvm machine {subcommand} on '{}' timed out after {} ms and was stopped",
            self.machine,
            timeout.as_millis()
        ))
    }

    pub(crate) fn failed(&self, subcommand: &str, message: &str) -> Error {
        smolvm::failed(subcommand, &self.machine, message)
    }
}

impl Drop for Bottle {
    /// A launched bottle dropped without [`Bottle::close`] still tears its
    /// machine down. A drop cannot report a failure: the machine then stays
    /// behind, labelled as this process's, for [`crate::launch::reap`] once
    /// this process has exited.
    fn drop(&mut self) {
        if self.owns_machine {
            let _ = crate::launch::teardown(&self.smolvm, &self.machine, &Bounds::default());
        }
    }
}
