//! A named smolvm machine and the commands run in it: what [`Bottle`]'s
//! exec and claude calls do, and how smolvm's own failures are told from
//! the guest command's.
//!
//! [`Bottle`]: crate::Bottle

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
use crate::serve::{ExecReply, ExecRequest, Lifecycle, Serve};
use crate::serve_exec::{outcome, random_hex, Failure, Spooled, Stop, STOP_GRACE};
use crate::serve_tty;
use crate::smolvm::{self, ExecFlags, MachineState, Smolvm};
use crate::{spawn, validate};

/// How a machine is reached: the local smolvm CLI, or a `smolvm serve`.
#[derive(Debug)]
pub(crate) enum Host {
    Cli(Smolvm),
    Serve {
        serve: Serve,
        /// The values of the machine's own variables (`env`'s names), which
        /// serve does not apply to its execs: every command is sent them.
        machine_env: Vec<String>,
    },
}

/// A machine as the operations reach it: its name, how it is reached, and
/// what every command in it gets.
#[derive(Debug)]
pub(crate) struct Machine {
    name: String,
    host: Host,
    /// The in-guest system-prompt file claude is given.
    prompt_path: Option<String>,
    /// Names of the variables the machine was created with, in order: the
    /// machine holds them under carrier names, which every command renames.
    env: Vec<String>,
}

/// The result of a command that ran in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit status: 0 to 255, where 128+N means it was
    /// killed by signal N.
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Machine {
    pub(crate) fn new(
        name: String,
        host: Host,
        prompt_path: Option<String>,
        env: Vec<String>,
    ) -> Self {
        Machine {
            name,
            host,
            prompt_path,
            env,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    /// [`Bottle::exec_with`](crate::Bottle::exec_with): the script under
    /// `runuser -l` and [`tied_to_call`], with `-i`, so that its output
    /// streams with no cap on its size (without `-i` smolvm's agent keeps
    /// at most 11 MiB of each stream and fails beyond) and stdin reaches
    /// the script with its end. The library keeps the time itself and
    /// gives smolvm no `--timeout`: smolvm's agent would kill only the
    /// command's first process, and ends a timed-out command with exit 124,
    /// which a script can exit with as well.
    pub(crate) fn exec_with<'a>(
        &self,
        script: &str,
        opts: &'a ExecOptions,
        stdout: Sink<'a>,
        stderr: Sink<'a>,
    ) -> Result<ExecOutput> {
        opts.validate()?;
        let user = opts.user.as_deref().unwrap_or(DEFAULT_USER);
        let vars = GuestEnv::new(&self.env, &opts.env, &opts.secret_env);
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
        let smolvm = match &self.host {
            Host::Cli(smolvm) => smolvm,
            Host::Serve { serve, machine_env } => {
                let argv = runuser_command(user, &vars.carriers(), &script);
                let env = vars.values(machine_env, &opts.secret_env);
                return self.exec_served(serve, argv, env, opts, stdout, stderr);
            }
        };

        let flags = ExecFlags {
            // -i streams output of any size and passes stdin on with its
            // end; smolvm's --stream alone would cap it at 11 MiB and never
            // close stdin.
            stdin: true,
            env: &vars.plain,
            secret_env: &vars.secret,
            ..ExecFlags::default()
        };
        let guest = tied_to_call(
            runuser_command(user, &vars.carriers(), &script),
            opts.stdin.is_some(),
        );
        let mut cmd = smolvm.command(smolvm::exec_args(&self.name, &flags, &guest));
        cmd.envs(vars.secret_values(&opts.secret_env));
        self.check_size(&cmd, opts, script.len())?;

        let deadline = opts.deadline_from_now();
        let io = Io {
            stdin: opts.stdin.as_deref(),
            stdout,
            stderr,
            deadline,
            cancel: opts.cancel.as_deref(),
            pass_fd: None,
        };
        let out = smolvm
            .capture_with(&mut cmd, io)
            .map_err(|e| self.stopped("exec", opts.timeout, e))?;
        // Asking smolvm for the machine's state is part of the exec, and
        // within its time.
        let bounds = Bounds {
            deadline,
            timeout: opts.timeout,
            cancel: opts.cancel.clone(),
        };
        self.check_own_failure(smolvm, "exec", &out, &bounds)
            .map_err(|e| self.stopped("exec", opts.timeout, e))?;
        let exit_code = self.guest_exit_code(out.status)?;
        Ok(ExecOutput {
            exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// [`Bottle::exec_claude_within`](crate::Bottle::exec_claude_within).
    /// With `tty`, claude needs the guest terminal as its controlling
    /// terminal, which the new session of [`tied_to_call`] would take away:
    /// when smolvm goes, the agent closes that terminal and the kernel hangs
    /// up claude's session (SIGHUP). smolvm's `Error:` line would go
    /// straight to the caller's stderr, so the machine is checked first,
    /// and an exit of 1 is checked again.
    pub(crate) fn exec_claude_within(
        &self,
        args: &[&str],
        tty: bool,
        limits: &Limits,
    ) -> Result<i32> {
        let bounds = limits.start();
        let what = format!("smolvm machine exec on '{}'", self.name);
        self.exec_claude_bounded(args, tty, &bounds)
            .map_err(|e| bounds.explain(&what, e))
    }

    fn exec_claude_bounded(&self, args: &[&str], tty: bool, bounds: &Bounds) -> Result<i32> {
        let vars = GuestEnv::new(&self.env, &[], &[]);
        let script = with_exports(
            &vars.exports(),
            &claude_script(self.prompt_path.as_deref(), args),
        );
        // Checked once, as it will travel: with the machine's exports.
        validate::single_argument("argv", "the quoted claude command line", script.len())?;
        let claude = runuser_command(DEFAULT_USER, &vars.carriers(), &script);
        let smolvm = match &self.host {
            Host::Cli(smolvm) => smolvm,
            Host::Serve { serve, machine_env } => {
                let env = vars.values(machine_env, &[]);
                return self.claude_served(serve, claude, env, tty, bounds);
            }
        };
        self.require_running_within(smolvm, bounds)?;
        let guest = if tty {
            claude
        } else {
            tied_to_call(claude, false)
        };
        let flags = ExecFlags {
            stdin: true,
            tty,
            ..ExecFlags::default()
        };
        let mut cmd = smolvm.command(smolvm::exec_args(&self.name, &flags, &guest));
        // Without a terminal claude's stdin is empty, and smolvm's group is
        // its own, so that a stop reaches all of it.
        let status = smolvm.run_inheriting(&mut cmd, !tty, !tty, bounds)?;
        if status.code() == Some(1) {
            let state = smolvm.machine_state_within(&self.name, bounds)?;
            if !state.is_running() {
                return Err(self.failed(
                    "exec",
                    &format!(
                        "exit status 1 and {} (smolvm's message went to stderr)",
                        state.why_not_running(&self.name)
                    ),
                ));
            }
        }
        self.guest_exit_code(status)
    }

    /// [`Machine::exec_with`] through serve ([`crate::serve_exec`]). The
    /// machine must be running, as for the CLI (serve would boot a stopped
    /// one); a machine serve does not know yet because the CLI created it
    /// is adopted (`POST .../start` on a running machine) and the request
    /// made again.
    fn exec_served<'a>(
        &self,
        serve: &Serve,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        opts: &'a ExecOptions,
        mut stdout: Sink<'a>,
        mut stderr: Sink<'a>,
    ) -> Result<ExecOutput> {
        let deadline = opts.deadline_from_now();
        let bounds = Bounds {
            deadline,
            timeout: opts.timeout,
            cancel: opts.cancel.clone(),
        };
        let size = argv.iter().map(|a| a.len() + 1).sum::<usize>()
            + env
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum::<usize>();
        let limit = spawn::exec_size_limit();
        if size > limit {
            let sum =
                |pairs: &[(String, String)]| pairs.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
            return Err(validate::too_large(
                &[
                    ("env", "the variables of `env`", sum(&opts.env)),
                    (
                        "secret_env",
                        "the variables of `secret_env`",
                        sum(&opts.secret_env),
                    ),
                    ("script", "the script", argv.last().map_or(0, String::len)),
                ],
                size,
                limit,
            ));
        }
        let run = Spooled {
            serve,
            machine: &self.name,
            argv,
            env,
            stdin: opts.stdin.as_deref(),
            deadline,
            cancel: opts.cancel.as_deref(),
        };
        let done = self
            .served(serve, "exec", &bounds, || run.run(&mut stdout, &mut stderr))
            .map_err(|e| self.stopped("exec", opts.timeout, e))?;
        Ok(ExecOutput {
            exit_code: done.exit_code,
            stdout: done.stdout,
            stderr: done.stderr,
        })
    }

    /// claude through serve. Without a terminal it is a spooled command
    /// whose output goes to the caller's stdout and stderr as it comes;
    /// serve's only terminal is its WebSocket, which takes no arguments.
    fn claude_served(
        &self,
        serve: &Serve,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        tty: bool,
        bounds: &Bounds,
    ) -> Result<i32> {
        if tty {
            self.require_served(serve, "exec", bounds)?;
            return self.claude_on_terminal(serve, &argv, &env, bounds);
        }
        let run = Spooled {
            serve,
            machine: &self.name,
            argv,
            env,
            stdin: None,
            deadline: bounds.deadline,
            cancel: bounds.cancel(),
        };
        let mut out = |chunk: &[u8]| {
            use std::io::Write;
            let mut fd = std::io::stdout().lock();
            // A caller whose stdout is gone still gets claude's status.
            let _ = fd.write_all(chunk).and_then(|()| fd.flush());
            true
        };
        let mut err = |chunk: &[u8]| {
            use std::io::Write;
            let _ = std::io::stderr().write_all(chunk);
            true
        };
        let mut stdout = Sink {
            capture: false,
            on_chunk: Some(&mut out),
        };
        let mut stderr = Sink {
            capture: false,
            on_chunk: Some(&mut err),
        };
        let done = self.served(serve, "exec", bounds, || run.run(&mut stdout, &mut stderr))?;
        Ok(done.exit_code)
    }

    /// claude on the caller's terminal through serve's interactive route
    /// ([`crate::serve_tty`]): a launcher that runs `argv` with `env` is
    /// put in a new root-only directory first, since the route takes a
    /// program without arguments.
    fn claude_on_terminal(
        &self,
        serve: &Serve,
        argv: &[String],
        env: &[(String, String)],
        bounds: &Bounds,
    ) -> Result<i32> {
        let quote = |s: &str| shell_escape::unix::escape(s.into()).into_owned();
        let dir = format!("/tmp/.bottle-claude-{}", random_hex());
        let launcher = format!("{dir}/run");
        let mut script = format!("#!/bin/sh\nrm -rf -- {}\n", quote(&dir));
        for (name, value) in env {
            script.push_str(&format!("export {name}={}\n", quote(value)));
        }
        script.push_str("exec");
        for arg in argv {
            script.push(' ');
            script.push_str(&quote(arg));
        }
        script.push('\n');
        let root = |argv: &[&str], what: &str| -> Result<()> {
            let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
            let reply = self.served_command(serve, "exec", &argv, bounds)?;
            if reply.exit_code == 0 {
                return Ok(());
            }
            Err(self.failed(
                "exec",
                &format!(
                    "{what} failed (exit status {}): {}",
                    reply.exit_code,
                    String::from_utf8_lossy(&reply.stderr).trim()
                ),
            ))
        };
        root(
            &["mkdir", "-m", "700", "--", &dir],
            "creating the launcher's directory",
        )?;
        let placed = self
            .served(serve, "exec", bounds, || {
                outcome(serve.upload(&self.name, &launcher, script.as_bytes(), bounds))
            })
            .and_then(|()| {
                root(
                    &["chmod", "700", "--", &launcher],
                    "making the launcher runnable",
                )
            });
        let ran = placed.and_then(|()| serve_tty::run(serve, &self.name, &launcher, bounds));
        if ran.is_err() {
            // The launcher removes its directory when it starts; if it did
            // not start, this does.
            let cleanup = Bounds {
                deadline: Some(Instant::now() + STOP_GRACE),
                timeout: Some(STOP_GRACE),
                cancel: None,
            };
            let rm = ["rm", "-rf", "--", &dir].map(str::to_owned);
            let _ = self.served_command(serve, "exec", &rm, &cleanup);
        }
        ran
    }

    /// Runs `op` against a machine serve must find running: `Ok` with what
    /// it returned, or the failure as this library's error. A refusal of
    /// `op` with 404 (serve has no record of a machine the CLI created
    /// after it started) adopts a running machine and tries once more.
    pub(crate) fn served<T>(
        &self,
        serve: &Serve,
        subcommand: &str,
        bounds: &Bounds,
        mut op: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> Result<T> {
        self.require_served(serve, subcommand, bounds)?;
        let mut adopted = false;
        loop {
            return match op() {
                Ok(value) => Ok(value),
                Err(Failure::Refused(r)) if r.status == 404 && !adopted => {
                    adopted = true;
                    match serve.lifecycle(Lifecycle::Start, &self.name, bounds)? {
                        Ok(()) => continue,
                        Err(r) => Err(self.failed(subcommand, &r.describe())),
                    }
                }
                Err(Failure::Refused(r)) => Err(self.failed(subcommand, &r.describe())),
                Err(Failure::Stopped(Stop::Deadline)) => {
                    Err(Error::Timeout("the deadline passed".into()))
                }
                Err(Failure::Stopped(Stop::Cancelled)) => Err(Error::Cancelled("cancelled".into())),
                Err(Failure::Stopped(Stop::Callback(stream))) => Err(Error::Cancelled(format!(
                    "the {} callback asked to stop",
                    stream.name()
                ))),
                Err(Failure::Error(e)) => Err(e),
            };
        }
    }

    /// Runs `argv` as root through serve and returns what it printed: for
    /// short commands of the library's own (a copy's), which need no
    /// spool.
    pub(crate) fn served_command(
        &self,
        serve: &Serve,
        subcommand: &str,
        argv: &[String],
        bounds: &Bounds,
    ) -> Result<ExecReply> {
        let req = ExecRequest {
            command: argv,
            env: Vec::new(),
            timeout_secs: None,
        };
        self.served(serve, subcommand, bounds, || {
            outcome(serve.exec(&self.name, &req, bounds))
        })
    }

    /// Refuses a machine serve has no record of, or one not running.
    pub(crate) fn require_served(
        &self,
        serve: &Serve,
        subcommand: &str,
        bounds: &Bounds,
    ) -> Result<()> {
        match serve.machine(&self.name, bounds)? {
            None => Err(self.failed(subcommand, &format!("machine '{}' not found", self.name))),
            Some(info) if info.state == "running" => Ok(()),
            Some(info) => Err(self.failed(
                subcommand,
                &MachineState::Known(info.state).why_not_running(&self.name),
            )),
        }
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
    fn check_own_failure(
        &self,
        smolvm: &Smolvm,
        subcommand: &str,
        out: &Captured,
        bounds: &Bounds,
    ) -> Result<()> {
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
        // Only a machine smolvm says is missing or not running makes the
        // failure smolvm's: a status that itself failed for another reason
        // (a database still locked) decides nothing, and the exit stays
        // the script's.
        match smolvm.machine_state_within(&self.name, bounds)? {
            state if state.is_running() => Ok(()),
            MachineState::Unknown(why) if !smolvm::says_machine_is_gone(&why) => Ok(()),
            _ => Err(self.failed(subcommand, message)),
        }
    }

    fn require_running_within(&self, smolvm: &Smolvm, bounds: &Bounds) -> Result<()> {
        let state = smolvm.machine_state_within(&self.name, bounds)?;
        if state.is_running() {
            Ok(())
        } else {
            Err(self.failed("exec", &state.why_not_running(&self.name)))
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
                    "the variables of `env` (on smolvm's command line)",
                    sum(&opts.env),
                ),
                (
                    "secret_env",
                    "the variables of `secret_env` (in smolvm's environment)",
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
                self.name
            )),
            (other, _) => other,
        }
    }

    fn timed_out(&self, subcommand: &str, timeout: Duration) -> Error {
        Error::Timeout(format!(
            "smolvm machine {subcommand} on '{}' timed out after {} ms and was stopped",
            self.name,
            timeout.as_millis()
        ))
    }

    pub(crate) fn failed(&self, subcommand: &str, message: &str) -> Error {
        smolvm::failed(subcommand, &self.name, message)
    }
}
