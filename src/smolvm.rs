//! The smolvm command line: finding the executable, building each
//! subcommand's argv, running it, and reading smolvm's own failures.
//!
//! Every argv here puts `--` before positional arguments, and every value
//! placed before `--` (machine names) has been validated, so no caller string
//! can become a smolvm option or a different subcommand.

use std::env;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::cancel::{Bounds, Cancel};
use crate::capture::{self, Captured, Io, RunError, Stopped};
use crate::error::{Error, Result};

/// The variable that names the smolvm executable (a path, or a name looked
/// up on PATH). Unset or empty means `smolvm` on PATH.
pub const SMOLVM_VAR: &str = "BOTTLE_SMOLVM";

/// What smolvm's SQLite says when another smolvm holds its database.
const DATABASE_LOCKED: &str = "database is locked";

/// How often a bookkeeping subcommand is tried again for a locked database:
/// with pauses from 10 ms doubling to 0.5 s, about 4 s in all.
const DATABASE_LOCKED_RETRIES: usize = 12;

/// Up to `pause` more, different for each thread and time, so that smolvms
/// that collided once do not collide again in step.
fn jitter(pause: Duration) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    pause.mul_f64(f64::from(seed % 1000) / 1000.0)
}

/// A located smolvm executable.
#[derive(Debug, Clone)]
pub(crate) struct Smolvm {
    path: PathBuf,
}

/// What `smolvm machine status` says of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MachineState {
    /// The machine exists and reports this state (`running`, `stopped`, ...).
    Known(String),
    /// smolvm failed to report on it; its `Error:` message (`vm not found: N`).
    Unknown(String),
}

impl Smolvm {
    /// Finds smolvm through `$BOTTLE_SMOLVM`, else `smolvm` on PATH. The
    /// result is an absolute path, so later calls do not depend on the
    /// working directory or PATH.
    pub(crate) fn locate() -> Result<Self> {
        match env::var_os(SMOLVM_VAR).filter(|v| !v.is_empty()) {
            Some(name) => Self::resolve(&name, env::var_os("PATH"))
                .map_err(|why| Error::SmolvmNotFound(format!("{SMOLVM_VAR}={name:?}: {why}"))),
            None => Self::resolve(OsStr::new("smolvm"), env::var_os("PATH")).map_err(|why| {
                Error::SmolvmNotFound(format!(
                    "smolvm: {why}; install smolvm or set {SMOLVM_VAR} to its path"
                ))
            }),
        }
    }

    /// `program` as a path when it contains `/`, else the first executable
    /// file of that name in `search_path`.
    fn resolve(
        program: &OsStr,
        search_path: Option<OsString>,
    ) -> std::result::Result<Self, String> {
        if program.as_bytes().contains(&b'/') {
            let path = std::path::absolute(program).map_err(|e| e.to_string())?;
            return match executable_file(&path) {
                Ok(()) => Ok(Smolvm { path }),
                Err(e) => Err(e.to_string()),
            };
        }
        let search_path = search_path.unwrap_or_default();
        env::split_paths(&search_path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .find(|candidate| executable_file(candidate).is_ok())
            .map(|path| Smolvm { path })
            .ok_or_else(|| "not found on PATH".to_string())
    }

    /// A `Command` for smolvm with `args`; stdio is the caller's to set.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        // argv[0] is always `smolvm` (crate::spawn::ARGV0): clap names the
        // program after it, and smolvm's usage errors are recognised by
        // "Usage: smolvm", whatever the file is called here.
        let mut cmd = Command::new(&self.path);
        cmd.args(args);
        cmd
    }

    /// Runs `cmd` with stdin, output, deadline and cancel token as `io`
    /// says. A run stopped early is `Error::Timeout` or `Error::Cancelled`,
    /// smolvm having been stopped and reaped.
    pub(crate) fn capture_with(&self, cmd: &mut Command, io: Io<'_>) -> Result<Captured> {
        capture::run_with(cmd, io).map_err(|e| self.run_error(e))
    }

    /// A run that did not finish, as an error.
    fn run_error(&self, e: RunError) -> Error {
        match e {
            RunError::Spawn(e) => self.spawn_error(e),
            RunError::TooLarge { bytes, limit } => Error::invalid(
                "argv",
                format!(
                    "smolvm's arguments and environment would take {bytes} bytes; \
                     the kernel passes at most {limit} to a new program"
                ),
            ),
            RunError::Io(e) => {
                Error::io(format!("talking to smolvm at {}", self.path.display()), e)
            }
            RunError::Stopped(Stopped::DeadlinePassed) => {
                Error::Timeout("smolvm did not finish in time and was stopped".into())
            }
            RunError::Stopped(Stopped::Cancelled) => Error::Cancelled("cancelled".into()),
            RunError::Stopped(Stopped::Callback(stream)) => {
                Error::Cancelled(format!("the {} callback asked to stop", stream.name()))
            }
        }
    }

    /// Runs `cmd` with the caller's stdin (or with `empty_stdin`,
    /// /dev/null), stdout and stderr, stopped by `limits`; `own_group` as
    /// for [`capture::run_inheriting`].
    pub(crate) fn run_inheriting(
        &self,
        cmd: &mut Command,
        own_group: bool,
        empty_stdin: bool,
        limits: &Bounds,
    ) -> Result<ExitStatus> {
        capture::run_inheriting(
            cmd,
            own_group,
            empty_stdin,
            limits.deadline,
            limits.cancel(),
        )
        .map_err(|e| self.run_error(e))
    }

    fn spawn_error(&self, e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => Error::SmolvmNotFound(
                format!("cannot start smolvm at {}: {e}", self.path.display()),
            ),
            _ => Error::io(format!("running smolvm at {}", self.path.display()), e),
        }
    }

    /// Runs a bookkeeping subcommand (create, start, stop, delete, status,
    /// ls) with output captured, again while it fails for a locked machine
    /// database.
    ///
    /// smolvm 1.9 keeps its machines in SQLite, and when several smolvm
    /// processes change it at once one of them can fail at once with
    /// `database is locked` (a transaction that has read and must then
    /// write gets SQLITE_BUSY without waiting). Its change was rolled back,
    /// so the subcommand is tried again, a few times, with growing pauses.
    /// Only these subcommands: an exec or a copy may have done part of its
    /// work before such a failure.
    /// A try again is never started past `bounds`' deadline or after its
    /// token was tripped.
    pub(crate) fn capture_bookkeeping<I, S>(&self, args: I, bounds: &Bounds) -> Result<Captured>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let mut pause = Duration::from_millis(10);
        for _ in 0..DATABASE_LOCKED_RETRIES {
            let out = self.capture_with(&mut self.command(args.clone()), Io::within(bounds))?;
            if out.status.success() || !failure_message(&out).contains(DATABASE_LOCKED) {
                return Ok(out);
            }
            let pause_with_jitter = pause + jitter(pause);
            let past_deadline = bounds
                .deadline
                .is_some_and(|d| Instant::now() + pause_with_jitter >= d);
            if past_deadline || bounds.cancel().is_some_and(Cancel::is_tripped) {
                return Ok(out);
            }
            // A pause a trip cuts short; the next round sees the trip.
            match bounds.cancel() {
                Some(cancel) => cancel.wait(pause_with_jitter),
                None => std::thread::sleep(pause_with_jitter),
            }
            pause = (pause * 2).min(Duration::from_millis(500));
        }
        self.capture_with(&mut self.command(args), Io::within(bounds))
    }

    /// Runs a subcommand that prints nothing worth keeping (create, start,
    /// stop, delete), stopped by `bounds`; its failure carries smolvm's
    /// message.
    pub(crate) fn run_checked_within(
        &self,
        args: Vec<String>,
        subcommand: &str,
        machine: &str,
        bounds: &Bounds,
    ) -> Result<()> {
        let out = self.capture_bookkeeping(args, bounds).map_err(|e| {
            bounds.explain(&format!("smolvm machine {subcommand} on '{machine}'"), e)
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed(subcommand, machine, &failure_message(&out)))
        }
    }

    /// `smolvm machine status --name N --json`, read into a state, stopped
    /// by `bounds`.
    pub(crate) fn machine_state_within(
        &self,
        machine: &str,
        bounds: &Bounds,
    ) -> Result<MachineState> {
        let out = self
            .capture_bookkeeping(status_args(machine), bounds)
            .map_err(|e| bounds.explain(&format!("smolvm machine status on '{machine}'"), e))?;
        if !out.status.success() {
            return Ok(MachineState::Unknown(failure_message(&out)));
        }
        /// What the library reads of `machine status --json`.
        #[derive(Deserialize)]
        struct Status {
            state: String,
        }
        let status: Status = serde_json::from_slice(&out.stdout).map_err(|e| {
            Error::Smolvm(format!(
                "smolvm machine status printed no JSON object with a \"state\" for \
                 '{machine}': {e}"
            ))
        })?;
        Ok(MachineState::Known(status.state))
    }
}

impl MachineState {
    pub(crate) fn is_running(&self) -> bool {
        matches!(self, MachineState::Known(s) if s == "running")
    }

    /// Why the machine cannot run commands, in words for an error message.
    pub(crate) fn why_not_running(&self, machine: &str) -> String {
        match self {
            MachineState::Known(state) => {
                format!("machine '{machine}' is not running (state: {state})")
            }
            MachineState::Unknown(message) => message.clone(),
        }
    }
}

fn executable_file(path: &Path) -> io::Result<()> {
    let meta = path.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(rustix::fs::access(path, rustix::fs::Access::EXEC_OK)?)
}

/// The options of one `machine exec`.
#[derive(Debug, Default)]
pub(crate) struct ExecFlags<'a> {
    /// `-i`: keep stdin open for the guest command.
    pub stdin: bool,
    /// `-t`: allocate a guest terminal.
    pub tty: bool,
    /// `-e NAME=VALUE`: visible in smolvm's argv, so never for secrets.
    pub env: &'a [(String, String)],
    /// `--secret-env NAME=HOST_VAR`: smolvm reads the value from its own
    /// environment variable HOST_VAR, so it appears in no argv.
    pub secret_env: &'a [(String, String)],
}

/// `machine exec --name N [OPTIONS] -- GUEST...`
pub(crate) fn exec_args(machine: &str, flags: &ExecFlags<'_>, guest: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["machine", "exec", "--name", machine]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for (on, flag) in [(flags.stdin, "-i"), (flags.tty, "-t")] {
        if on {
            args.push(flag.to_owned());
        }
    }
    for (name, value) in flags.env {
        args.push("-e".into());
        args.push(format!("{name}={value}"));
    }
    for (name, host_var) in flags.secret_env {
        args.push("--secret-env".into());
        args.push(format!("{name}={host_var}"));
    }
    args.push("--".to_owned());
    args.extend_from_slice(guest);
    args
}

/// `machine cp [FLAGS] -- SRC DST`
pub(crate) fn cp_args(flags: &[String], src: &str, dst: &str) -> Vec<String> {
    let mut args = vec!["machine".to_owned(), "cp".to_owned()];
    args.extend_from_slice(flags);
    args.extend(["--", src, dst].map(str::to_owned));
    args
}

/// `machine start --name N`
pub(crate) fn start_args(machine: &str) -> Vec<String> {
    ["machine", "start", "--name", machine]
        .map(str::to_owned)
        .to_vec()
}

/// `machine stop --name N`
pub(crate) fn stop_args(machine: &str) -> Vec<String> {
    ["machine", "stop", "--name", machine]
        .map(str::to_owned)
        .to_vec()
}

/// `machine delete --name N -f`
pub(crate) fn delete_args(machine: &str) -> Vec<String> {
    ["machine", "delete", "--name", machine, "-f"]
        .map(str::to_owned)
        .to_vec()
}

/// `machine ls --json`
pub(crate) fn ls_args() -> [&'static str; 3] {
    ["machine", "ls", "--json"]
}

/// smolvm's failure of `subcommand` on `machine`, in its own words.
pub(crate) fn failed(subcommand: &str, machine: &str, message: &str) -> Error {
    Error::Smolvm(format!(
        "smolvm machine {subcommand} on '{machine}' failed: {message}"
    ))
}

/// `machine status --name N --json`
pub(crate) fn status_args(machine: &str) -> [String; 5] {
    ["machine", "status", "--name", machine, "--json"].map(str::to_owned)
}

/// smolvm's own account of a failure: the text after `Error: ` on its last
/// such line, else the exit status and whatever stderr said.
pub(crate) fn failure_message(out: &Captured) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr_tail);
    if let Some(msg) = stderr.lines().rev().find_map(|l| l.strip_prefix("Error: ")) {
        return msg.trim_end().to_owned();
    }
    let stderr = stderr.trim();
    let status = describe_status(out.status);
    if stderr.is_empty() {
        status
    } else {
        format!("{status}: {stderr}")
    }
}

/// If `out` is exactly what smolvm prints when it fails itself (one
/// `Error: ...` line on stderr, nothing on stdout, exit 1), the message.
/// A guest command can print the same, so this alone decides nothing.
pub(crate) fn lone_error_line(out: &Captured) -> Option<&str> {
    if out.status.code() != Some(1) || out.stdout_total != 0 {
        return None;
    }
    let stderr = std::str::from_utf8(out.whole_stderr()?).ok()?;
    let line = stderr.strip_suffix('\n').unwrap_or(stderr);
    if line.contains('\n') {
        return None;
    }
    line.strip_prefix("Error: ")
}

/// A usage error from smolvm's argument parser (clap): exit 2, nothing on
/// stdout, and on stderr `error: ...`, smolvm's own usage line and clap's
/// closing hint. Returns the first line. A guest tool's usage error names
/// that tool, not smolvm; only a guest command that prints smolvm's usage
/// error word for word is mistaken for one.
pub(crate) fn usage_error(out: &Captured) -> Option<&str> {
    if out.status.code() != Some(2) || out.stdout_total != 0 {
        return None;
    }
    let stderr = std::str::from_utf8(out.whole_stderr()?).ok()?;
    let clap_shape = stderr.starts_with("error: ")
        && stderr.contains("\nUsage: smolvm machine ")
        && stderr
            .trim_end()
            .ends_with("For more information, try '--help'.");
    if !clap_shape {
        return None;
    }
    stderr.lines().next()
}

/// How smolvm's own errors begin: the messages of smolvm 1.9's error kinds
/// (`src/data/errors.rs`), which it prints as `Error: MESSAGE` before it
/// exits 1.
const OWN_ERROR_KINDS: &[&str] = &[
    "agent operation failed: ",
    "vm not found: ",
    "vm creation failed: ",
    "invalid vm state: ",
    "hypervisor not available: ",
    "rootfs operation failed: ",
    "rootfs not found: ",
    "storage operation failed: ",
    "disk not found: ",
    "mount operation failed: ",
    "invalid mount path: ",
    "mount source not found: ",
    "config operation failed: ",
    "database operation failed: ",
    "database not available: ",
    "kvm not available: ",
    "kvm permission denied: ",
    "io operation failed: ",
];

/// smolvm's own failure, told by what smolvm says: exit status 1 and a last
/// stderr line `Error: ` followed by one of smolvm's error kinds
/// ([`OWN_ERROR_KINDS`]). smolvm prints it after whatever the guest command
/// wrote, so the output before it does not matter. Returns the message.
/// A script that ends its stderr with such a line itself and exits 1 is
/// taken for smolvm's failure; nothing else is.
pub(crate) fn own_failure(out: &Captured) -> Option<&str> {
    if out.status.code() != Some(1) {
        return None;
    }
    let tail = &out.stderr_tail;
    let tail = tail.strip_suffix(b"\n").unwrap_or(tail);
    let start = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if start == 0 && (tail.len() as u64) < out.stderr_total.saturating_sub(1) {
        // The tail holds no whole last line.
        return None;
    }
    let line = std::str::from_utf8(&tail[start..]).ok()?;
    let message = line.strip_prefix("Error: ")?;
    OWN_ERROR_KINDS
        .iter()
        .any(|kind| message.starts_with(kind))
        .then_some(message)
}

/// Whether smolvm's `message` about a machine's status says there is no
/// such machine: `vm not found: N`, or status's own
/// `config operation failed: machine status: machine 'N' not found`.
pub(crate) fn says_machine_is_gone(message: &str) -> bool {
    message.starts_with("vm not found: ")
        || (message.starts_with("config operation failed: machine status: ")
            && message.ends_with(" not found"))
}

/// Whether smolvm's `message` says the machine is missing or not running.
pub(crate) fn speaks_of_machine_state(message: &str) -> bool {
    message.starts_with("vm not found: ")
        || (message.starts_with("agent operation failed: connect: ")
            && message.contains(" is not running"))
}

pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("{status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(code: i32, stdout: &str, stderr: &str) -> Captured {
        Captured {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.into(),
            stderr: stderr.into(),
            stdout_total: stdout.len() as u64,
            stderr_total: stderr.len() as u64,
            stderr_tail: stderr.into(),
        }
    }

    #[test]
    fn own_failures_are_told_by_smolvms_error_kinds() {
        let not_running = "Error: agent operation failed: connect: machine 'm' is not running. \
                           Use 'smolvm machine start --name m' first.\n";
        assert_eq!(
            own_failure(&captured(1, "", not_running)),
            Some(
                "agent operation failed: connect: machine 'm' is not running. \
                 Use 'smolvm machine start --name m' first."
            )
        );
        // After output the guest wrote, as when the connection is lost.
        assert_eq!(
            own_failure(&captured(
                1,
                "partial",
                "warn\nError: agent operation failed: vm exec interactive: connection to VM lost\n"
            )),
            Some("agent operation failed: vm exec interactive: connection to VM lost")
        );
        assert_eq!(
            own_failure(&captured(1, "", "Error: vm not found: x")),
            Some("vm not found: x")
        );
        // Not smolvm's words, not smolvm's status, or not the last line.
        assert_eq!(
            own_failure(&captured(1, "", "Error: file not found\n")),
            None
        );
        assert_eq!(
            own_failure(&captured(124, "", "Error: vm not found: x\n")),
            None
        );
        assert_eq!(
            own_failure(&captured(0, "", "Error: vm not found: x\n")),
            None
        );
        assert_eq!(
            own_failure(&captured(1, "", "Error: vm not found: x\nlater\n")),
            None
        );
        // A last line longer than the tail kept is not judged.
        let mut cut = captured(1, "", "vm not found: x\n");
        cut.stderr_total = 100_000;
        assert_eq!(own_failure(&cut), None);
    }

    #[test]
    fn a_status_that_failed_says_whether_the_machine_is_gone() {
        assert!(says_machine_is_gone("vm not found: m"));
        assert!(says_machine_is_gone(
            "config operation failed: machine status: machine 'm' not found"
        ));
        assert!(!says_machine_is_gone(
            "database operation failed: get vm 'm': database is locked"
        ));
    }

    #[test]
    fn messages_of_a_missing_or_stopped_machine_are_known() {
        assert!(speaks_of_machine_state("vm not found: m"));
        assert!(speaks_of_machine_state(
            "agent operation failed: connect: machine 'm' is not running. Use 'smolvm machine \
             start --name m' first."
        ));
        assert!(!speaks_of_machine_state(
            "agent operation failed: vm exec interactive: failed to spawn command: x"
        ));
        assert!(!speaks_of_machine_state(
            "io operation failed: x is not running"
        ));
    }

    #[test]
    fn a_long_stderr_is_never_a_lone_error_line() {
        let mut out = captured(1, "", "Error: vm not found: x\n");
        out.stderr_total += 5000;
        assert_eq!(lone_error_line(&out), None);
    }

    #[test]
    fn argv_puts_double_dash_before_the_guest_command() {
        let guest = vec!["runuser".to_owned(), "-c".to_owned()];
        let interactive = ExecFlags {
            stdin: true,
            tty: true,
            ..ExecFlags::default()
        };
        assert_eq!(
            exec_args("m", &interactive, &guest),
            ["machine", "exec", "--name", "m", "-i", "-t", "--", "runuser", "-c"]
        );
        assert_eq!(
            exec_args("m", &ExecFlags::default(), &[]),
            ["machine", "exec", "--name", "m", "--"]
        );
        let env = [("A".to_owned(), "x y".to_owned())];
        let secret = [("TOKEN".to_owned(), "BOTTLE_SECRET_0".to_owned())];
        let all = ExecFlags {
            stdin: true,
            env: &env,
            secret_env: &secret,
            ..ExecFlags::default()
        };
        assert_eq!(
            exec_args("m", &all, &guest),
            [
                "machine",
                "exec",
                "--name",
                "m",
                "-i",
                "-e",
                "A=x y",
                "--secret-env",
                "TOKEN=BOTTLE_SECRET_0",
                "--",
                "runuser",
                "-c"
            ]
        );
        assert_eq!(
            cp_args(&[], "-a", "m:/b"),
            ["machine", "cp", "--", "-a", "m:/b"]
        );
        let mode = ["--mode".to_owned(), "600".to_owned()];
        assert_eq!(
            cp_args(&mode, "/dev/fd/3", "m:/b"),
            ["machine", "cp", "--mode", "600", "--", "/dev/fd/3", "m:/b"]
        );
    }

    #[test]
    fn failure_message_prefers_smolvms_error_line() {
        assert_eq!(
            failure_message(&captured(1, "", "progress\nError: vm not found: x\n")),
            "vm not found: x"
        );
        assert_eq!(
            failure_message(&captured(3, "", " boom \n")),
            "exit status 3: boom"
        );
        assert_eq!(failure_message(&captured(3, "", "")), "exit status 3");
    }

    #[test]
    fn lone_error_line_is_exact() {
        assert_eq!(
            lone_error_line(&captured(1, "", "Error: vm not found: x\n")),
            Some("vm not found: x")
        );
        assert_eq!(lone_error_line(&captured(1, "", "Error: x")), Some("x"));
        assert_eq!(lone_error_line(&captured(1, "out", "Error: x\n")), None);
        assert_eq!(lone_error_line(&captured(1, "", "a\nError: x\n")), None);
        assert_eq!(lone_error_line(&captured(2, "", "Error: x\n")), None);
    }

    #[test]
    fn usage_error_must_name_smolvm() {
        let smolvm = "error: unexpected argument '--x' found\n\n\
                      Usage: smolvm machine exec [OPTIONS] <COMMAND>...\n\n\
                      For more information, try '--help'.\n";
        assert_eq!(
            usage_error(&captured(2, "", smolvm)),
            Some("error: unexpected argument '--x' found")
        );
        let guest = "error: unexpected argument\n\nUsage: rg [OPTIONS]\n\n\
                     For more information, try '--help'.\n";
        assert_eq!(usage_error(&captured(2, "", guest)), None);
        let no_hint = "error: x\n\nUsage: smolvm machine exec\n";
        assert_eq!(usage_error(&captured(2, "", no_hint)), None);
        assert_eq!(usage_error(&captured(2, "", guest)), None);
        assert_eq!(usage_error(&captured(1, "", smolvm)), None);
    }

    #[test]
    fn resolve_finds_executables_on_the_search_path() {
        let found = Smolvm::resolve(OsStr::new("sh"), Some("/nonexistent:/bin".into())).unwrap();
        assert_eq!(found.path, Path::new("/bin/sh"));
        let missing = Smolvm::resolve(OsStr::new("sh"), Some("/nonexistent".into()));
        assert_eq!(missing.unwrap_err(), "not found on PATH");
        // A directory or a non-executable file is not smolvm.
        assert!(Smolvm::resolve(OsStr::new("/tmp"), None).is_err());
        assert!(Smolvm::resolve(OsStr::new("/etc/passwd"), None).is_err());
        assert!(Smolvm::resolve(OsStr::new("sh"), None).is_err());
    }
}
