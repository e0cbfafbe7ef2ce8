//! The bottle: a handle on one named smolvm machine, and the operations the
//! agent harness needs on it. Nothing here knows about C.

use std::borrow::Cow;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::cancel::{Bounds, Limits};
use crate::capture::{Captured, Io, Sink};
use crate::error::{Error, Result};
use crate::exec_options::ExecOptions;
use crate::guest_command::{
    claude_script, in_workdir, runuser_command, tied_to_call, with_exports, DEFAULT_USER,
};
use crate::guest_env::GuestEnv;
use crate::smolvm::{self, ExecFlags, Smolvm};
use crate::{spawn, validate};

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
    /// smolvm runs it with `-i`: its output then streams, with no cap on
    /// its size (without `-i` smolvm's agent keeps at most 11 MiB of each
    /// stream and fails beyond), and stdin reaches the script with its end.
    /// The library keeps the time itself and gives smolvm no `--timeout`:
    /// at the deadline it stops smolvm, which stops the command, and
    /// [`tied_to_call`] makes sure that means everything the script started
    /// (smolvm's agent would kill only the command's first process, and
    /// ends a timed-out command with exit 124, which a script can exit with
    /// as well).
    ///
    /// smolvm exits 1 both when it fails and when the script exits 1; its
    /// own failures are told by the message smolvm ends with
    /// ([`smolvm::own_failure`]).
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
            stdin: true,
            // The stand-in smolvm streams only with --stream; the real one
            // streams with -i and ignores --stream beside it.
            stream: stdout.on_chunk.is_some() || stderr.on_chunk.is_some(),
            env: &vars.plain,
            secret_env: &vars.secret,
            ..ExecFlags::default()
        };
        let guest = tied_to_call(runuser_command(user, &vars.carriers(), &script));
        let mut cmd = self
            .smolvm
            .command(smolvm::exec_args(&self.machine, &flags, &guest));
        // Each secret reaches smolvm only as a variable of its environment.
        for ((_, carrier), (_, value)) in vars.secret.iter().zip(&opts.secret_env) {
            cmd.env(carrier, value);
        }
        self.check_size(&cmd, opts, script.len())?;

        let io = Io {
            stdin: opts.stdin.as_deref(),
            stdout,
            stderr,
            deadline: opts
                .timeout
                .map(|t| Instant::now() + t)
                .into_iter()
                .chain(opts.deadline)
                .min(),
            cancel: opts.cancel.as_deref(),
            pass_fd: None,
        };
        let out = self
            .smolvm
            .capture_with(&mut cmd, io)
            .map_err(|e| self.stopped("exec", opts.timeout, e))?;
        let bounds = Bounds {
            deadline: opts.deadline,
            timeout: None,
            cancel: opts.cancel.clone(),
        };
        self.check_own_failure("exec", &out, &bounds)?;
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
    /// Without `tty`, smolvm still gets `-i`, with stdin at end-of-file:
    /// claude's output then streams as it is written, with no size cap, and
    /// claude runs under [`tied_to_call`] so that nothing it started
    /// outlives smolvm. With `tty` claude needs the guest terminal as its
    /// controlling terminal, which a new session would take away; when
    /// smolvm goes, the agent closes that terminal and the kernel hangs up
    /// claude's session (SIGHUP).
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
        let claude = runuser_command(DEFAULT_USER, &vars.carriers(), &script);
        let guest = if tty { claude } else { tied_to_call(claude) };
        let flags = ExecFlags {
            stdin: true,
            tty,
            ..ExecFlags::default()
        };
        let mut cmd = self
            .smolvm
            .command(smolvm::exec_args(&self.machine, &flags, &guest));
        // Without a terminal claude's stdin is empty, and smolvm's group is
        // its own, so that a stop reaches all of it.
        let status = self.smolvm.run_inheriting(&mut cmd, !tty, !tty, bounds)?;
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

    /// smolvm's own failure in `out`, if it is one: a usage error, or a
    /// last `Error:` line of the kinds smolvm's errors have
    /// ([`smolvm::own_failure`]). A script can end the same way, so where
    /// smolvm's message speaks of the machine being gone or stopped (the
    /// lines a script is likeliest to echo) it is believed only when the
    /// machine is indeed missing or not running; a lone `Error:` line in
    /// other words counts on such a machine too, which could not have run
    /// a script. Everything else, above all the agent's failures on a
    /// running machine, is smolvm's as it says.
    fn check_own_failure(&self, subcommand: &str, out: &Captured, bounds: &Bounds) -> Result<()> {
        if let Some(usage) = smolvm::usage_error(out) {
            return Err(self.failed(subcommand, usage));
        }
        let message = match smolvm::own_failure(out) {
            Some(message) if !smolvm::speaks_of_machine_state(message) => {
                return Err(self.failed(subcommand, message));
            }
            Some(message) => message,
            None => match smolvm::lone_error_line(out) {
                Some(message) => message,
                None => return Ok(()),
            },
        };
        if self
            .smolvm
            .machine_state_within(&self.machine, bounds)?
            .is_running()
        {
            Ok(())
        } else {
            Err(self.failed(subcommand, message))
        }
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
