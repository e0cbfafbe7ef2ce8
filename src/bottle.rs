//! The bottle: a handle on one named smolvm machine, and the operations the
//! agent harness needs on it. Nothing here knows about C.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::ExitStatus;

use crate::error::{Error, Result};
use crate::guest_command::{claude_script, runuser_command, DEFAULT_USER};
use crate::smolvm::{self, Smolvm};
use crate::validate;

/// A handle on a named smolvm machine. Opening one checks the arguments and
/// finds smolvm; it neither boots nor contacts the machine. A `Bottle` holds
/// no mutable state and is safe to share between threads: each operation is
/// its own smolvm process.
#[derive(Debug, Clone)]
pub struct Bottle {
    machine: String,
    prompt_path: Option<String>,
    smolvm: Smolvm,
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
        Ok(Bottle {
            machine: machine.to_owned(),
            prompt_path: prompt_path.map(str::to_owned),
            smolvm: Smolvm::locate()?,
        })
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
    ///
    /// smolvm exits 1 both when it fails and when the script exits 1. When
    /// the output is exactly what a smolvm failure looks like (one `Error:`
    /// line on stderr, nothing on stdout), smolvm is asked for the machine's
    /// state: a machine that is missing or not running could not have run
    /// the script, so the exit is smolvm's; on a running machine it is the
    /// script's.
    pub fn exec(&self, script: &str, user: Option<&str>) -> Result<ExecOutput> {
        let user = user.unwrap_or(DEFAULT_USER);
        validate::user(user)?;
        validate::single_argument("script", "the script", script.len())?;
        let args = smolvm::exec_args(&self.machine, false, &runuser_command(user, script));
        let out = self.smolvm.capture(&mut self.smolvm.command(args))?;
        if let Some(usage) = smolvm::usage_error(&out) {
            return Err(self.failed("exec", usage));
        }
        if let Some(message) = smolvm::lone_error_line(&out) {
            if !self.smolvm.machine_state(&self.machine)?.is_running() {
                return Err(self.failed("exec", message));
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
    /// terminal: stdin, stdout and stderr are inherited (with `-i -t` when
    /// `tty`), because claude is interactive and decides what to do from
    /// whether its streams are a terminal. Returns claude's exit status.
    ///
    /// smolvm's `Error:` line would go straight to the caller's stderr, so
    /// the machine is checked first, and an exit of 1 is checked again the
    /// same way as for [`Bottle::exec`].
    pub fn exec_claude(&self, args: &[&str], tty: bool) -> Result<i32> {
        let script = claude_script(self.prompt_path.as_deref(), args)?;
        self.require_running()?;
        let guest = runuser_command(DEFAULT_USER, &script);
        let mut cmd = self
            .smolvm
            .command(smolvm::exec_args(&self.machine, tty, &guest));
        let status = self.smolvm.run_inheriting(&mut cmd)?;
        if status.code() == Some(1) {
            let state = self.smolvm.machine_state(&self.machine)?;
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

    /// Copies the regular file `host_path` to `guest_path` in the machine.
    ///
    /// `machine cp` reads any `:` in its source as `MACHINE:PATH` and a
    /// leading `-` as an option, so the host path itself never reaches
    /// smolvm: the file is opened here and smolvm reads it as `/dev/fd/N`.
    /// That also means the file copied is the very file that was checked.
    pub fn cp_in(&self, host_path: &Path, guest_path: &str) -> Result<()> {
        validate::guest_path("guest_path", guest_path)?;
        if guest_path.contains(':') {
            return Err(Error::invalid(
                "guest_path",
                format!("{guest_path:?} contains ':', which smolvm's cp reads as MACHINE:PATH"),
            ));
        }
        let file = open_regular_file(host_path)?;
        let fd = file.as_raw_fd();
        let mut cmd = self.smolvm.command(smolvm::cp_args(
            &format!("/dev/fd/{fd}"),
            &format!("{}:{guest_path}", self.machine),
        ));
        // SAFETY: the closure only calls fcntl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || inherit_fd(fd));
        }
        let out = self.smolvm.capture(&mut cmd)?;
        drop(file);
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed("cp", &smolvm::failure_message(&out)))
        }
    }

    fn require_running(&self) -> Result<()> {
        let state = self.smolvm.machine_state(&self.machine)?;
        if state.is_running() {
            Ok(())
        } else {
            Err(self.failed("exec", &state.why_not_running(&self.machine)))
        }
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

    fn failed(&self, subcommand: &str, message: &str) -> Error {
        Error::Smolvm(format!(
            "smolvm machine {subcommand} on '{}' failed: {message}",
            self.machine
        ))
    }
}

/// Opens `path` for reading and checks it is a regular file. O_NONBLOCK keeps
/// a FIFO from blocking the open; it has no effect on a regular file. The
/// descriptor is kept above stdio, which the child's own stdio would replace.
fn open_regular_file(path: &Path) -> Result<File> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("host_path {shown}: cannot open"), e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("host_path {shown}: cannot stat"), e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(Error::invalid(
            "host_path",
            format!("{shown} is {kind}; only regular files can be copied"),
        ));
    }
    if file.as_raw_fd() > 2 {
        return Ok(file);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let dup = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Err(Error::io(
            format!("host_path {shown}: cannot duplicate descriptor"),
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(dup) }))
}

/// In the child between fork and exec: let `fd` survive exec. Every
/// descriptor the library opens is close-on-exec, so no other thread's files
/// leak into smolvm; this one is cleared in the child only.
fn inherit_fd(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor the child inherited; async-signal-safe.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
