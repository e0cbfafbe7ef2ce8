//! The bottle: a handle on one named smolvm machine, and every operation the
//! agent harness has on it. Each operation is listed here with its contract;
//! the work is done where its doc says: [`crate::machine`] runs commands in
//! the guest, [`crate::copy`] copies files, [`crate::launch`] creates,
//! tears down and reaps machines. Nothing here knows about C.

use std::path::Path;

use crate::cancel::{Bounds, Limits};
use crate::capture::Sink;
use crate::copy::{self, CopyOptions, OnProgress};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::exec_options::ExecOptions;
use crate::launch::{self, LaunchOptions};
use crate::machine::{ExecOutput, Host, Machine};
use crate::serve::Serve;
use crate::serve_launch;
use crate::smolvm::Smolvm;
use crate::validate;

/// A handle on a named smolvm machine. Opening one checks the arguments and
/// finds smolvm; it neither boots nor contacts the machine. A `Bottle` is
/// safe to share between threads: each operation is its own smolvm process.
///
/// A bottle from [`Bottle::launch`] owns its machine: [`Bottle::close`], or
/// dropping it, stops and deletes the machine.
#[derive(Debug)]
pub struct Bottle {
    machine: Machine,
    owns_machine: bool,
}

impl Bottle {
    /// A bottle on `machine`, a name by smolvm's rule (stated with
    /// [`bottle_open`](crate::ffi::bottle::bottle_open)), using the smolvm
    /// that `$BOTTLE_SMOLVM` or PATH names. `prompt_path`
    /// is the in-guest path of the agent's system-prompt file, passed to
    /// claude as `--append-system-prompt-file`.
    pub fn open(machine: &str, prompt_path: Option<&str>) -> Result<Self> {
        validate::machine_name(machine)?;
        if let Some(p) = prompt_path {
            validate::guest_path("prompt_path", p)?;
        }
        let machine = Machine::new(
            machine.to_owned(),
            Host::Cli(Smolvm::locate()?),
            prompt_path.map(str::to_owned),
            Vec::new(),
        );
        Ok(Bottle {
            machine,
            owns_machine: false,
        })
    }

    /// A bottle on `machine` at the `smolvm serve` of `ep`, as
    /// [`Bottle::open`] is through the CLI: nothing is contacted yet.
    pub fn open_at(ep: &Endpoint, machine: &str, prompt_path: Option<&str>) -> Result<Self> {
        validate::machine_name(machine)?;
        if let Some(p) = prompt_path {
            validate::guest_path("prompt_path", p)?;
        }
        let host = Host::Serve {
            serve: Serve::new(ep)?,
            machine_env: Vec::new(),
        };
        let machine = Machine::new(
            machine.to_owned(),
            host,
            prompt_path.map(str::to_owned),
            Vec::new(),
        );
        Ok(Bottle {
            machine,
            owns_machine: false,
        })
    }

    /// Creates a machine as `opts` says, starts it, and returns a bottle
    /// that owns it: closing or dropping the bottle stops and deletes it.
    /// If the start fails, the machine just created is deleted and the
    /// start error returned.
    ///
    /// A launch stopped by its limits during `create` or `start` deletes
    /// what it created, as a failed start does, giving that deletion 5 s of
    /// its own; a machine not deleted by then stays labelled as this
    /// process's, for [`Bottle::reap`] once the process has exited.
    pub fn launch(opts: &LaunchOptions) -> Result<Bottle> {
        Ok(Bottle {
            machine: launch::launch(opts)?,
            owns_machine: true,
        })
    }

    /// Releases the bottle; a launched bottle's machine is stopped and
    /// deleted, and a failure to do so is returned (the handle is gone
    /// either way).
    pub fn close(self) -> Result<()> {
        self.close_within(&Limits::default())
    }

    /// [`Bottle::close`] within `limits`: a teardown stopped by them leaves
    /// the machine as it is, still labelled for [`Bottle::reap`].
    pub fn close_within(mut self, limits: &Limits) -> Result<()> {
        if std::mem::take(&mut self.owns_machine) {
            launch::teardown(&self.machine, &limits.start())
        } else {
            Ok(())
        }
    }

    /// The machine's name.
    pub fn machine(&self) -> &str {
        self.machine.name()
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
    /// At the deadline, or when the token is tripped, smolvm is stopped,
    /// and with it the script and everything the script started in the
    /// guest.
    ///
    /// smolvm exits 1 both when it fails and when the script exits 1; its
    /// own failures are told by the message smolvm ends with, as
    /// [`bottle_exec`](crate::ffi::bottle::bottle_exec) describes.
    pub fn exec_with<'a>(
        &self,
        script: &str,
        opts: &'a ExecOptions,
        stdout: Sink<'a>,
        stderr: Sink<'a>,
    ) -> Result<ExecOutput> {
        self.machine.exec_with(script, opts, stdout, stderr)
    }

    /// Runs claude-code as `node` with exactly `args`, on the caller's
    /// terminal: stdout and stderr are inherited, and with `tty` stdin too
    /// (`-i -t`), because claude is interactive and decides what to do from
    /// whether its streams are a terminal. Returns claude's exit status.
    ///
    /// Without `tty`, smolvm still gets `-i`, with stdin at end-of-file:
    /// claude's output then streams as it is written, with no size cap, and
    /// nothing claude started outlives smolvm. With `tty` the guest terminal
    /// stays claude's controlling terminal, hung up when smolvm goes.
    pub fn exec_claude(&self, args: &[&str], tty: bool) -> Result<i32> {
        self.exec_claude_within(args, tty, &Limits::default())
    }

    /// [`Bottle::exec_claude`] stopped by `limits`: smolvm gets SIGTERM,
    /// then SIGKILL. With `tty`, smolvm shares the caller's process group
    /// (a background group could not read the terminal), so only smolvm
    /// itself is signalled; without, its whole process group is.
    pub fn exec_claude_within(&self, args: &[&str], tty: bool, limits: &Limits) -> Result<i32> {
        self.machine.exec_claude_within(args, tty, limits)
    }

    /// Copies the regular file `host_path` to `guest_path` in the machine,
    /// owned by root with mode 0644.
    pub fn cp_in(&self, host_path: &Path, guest_path: &str) -> Result<()> {
        copy::cp_in(&self.machine, host_path, guest_path)
    }

    /// Copies `host_path` into the machine at `guest_path` with `opts`: a
    /// regular file to that path, or a directory recursively, as a
    /// directory at that path (created if missing) holding the same tree.
    ///
    /// A directory is checked whole before anything is copied: every entry
    /// must be a regular file or a directory with a UTF-8 name (symbolic
    /// links, devices and sockets are refused). `progress` is called before
    /// the first file and after each one.
    ///
    /// `opts.limits` bound the whole copy; stopped, it leaves in the guest
    /// what was copied before, and the file being copied as smolvm left it.
    pub fn cp_in_with(
        &self,
        host_path: &Path,
        guest_path: &str,
        opts: &CopyOptions,
        progress: Option<OnProgress<'_>>,
    ) -> Result<()> {
        copy::cp_in_with(&self.machine, host_path, guest_path, opts, progress)
    }

    /// Copies the guest file `guest_path` to `host_path`. The host file is
    /// written under a temporary name beside it and renamed into place only
    /// when smolvm has succeeded: an existing file is replaced whole or not
    /// at all, and keeps its 0777 permission bits (not setuid, setgid or
    /// sticky, not its owner, nor other hard links to it). A symbolic link
    /// at `host_path` is replaced, not followed. A new file gets mode 0666
    /// less the process umask. Anything else at `host_path` (a directory, a
    /// device, a FIFO, a socket) is refused and left alone.
    pub fn cp_out(&self, guest_path: &str, host_path: &Path) -> Result<()> {
        self.cp_out_within(guest_path, host_path, &Limits::default())
    }

    /// [`Bottle::cp_out`] stopped by `limits`; stopped, it leaves the host
    /// file as it was.
    pub fn cp_out_within(&self, guest_path: &str, host_path: &Path, limits: &Limits) -> Result<()> {
        copy::cp_out_within(&self.machine, guest_path, host_path, limits)
    }

    /// Deletes every machine launched by this library whose owning process
    /// is gone, and returns their names in `removed`. A machine that cannot
    /// be deleted is reported in the error after the others have been
    /// tried; `removed` then still lists what was deleted. A machine that
    /// another reaper deleted first is neither listed nor an error.
    pub fn reap(removed: &mut Vec<String>) -> Result<()> {
        Self::reap_within(removed, &Limits::default())
    }

    /// [`Bottle::reap`] stopped by `limits`; `removed` lists what was
    /// deleted before.
    pub fn reap_within(removed: &mut Vec<String>, limits: &Limits) -> Result<()> {
        launch::reap_within(removed, limits)
    }

    /// [`Bottle::reap_within`] at an endpoint, whose serve keeps no labels:
    /// deletes the machines this user launched at `ep` from this host
    /// whose owning process is gone, as recorded on this host when they
    /// were launched (see [`crate::LaunchOptions::endpoint`]). Machines
    /// launched from other hosts are never touched.
    pub fn reap_at(ep: &Endpoint, removed: &mut Vec<String>, limits: &Limits) -> Result<()> {
        serve_launch::reap_at(ep, removed, limits)
    }
}

impl Drop for Bottle {
    /// A launched bottle dropped without [`Bottle::close`] still tears its
    /// machine down. A drop cannot report a failure: the machine then stays
    /// behind, labelled as this process's, for [`Bottle::reap`] once this
    /// process has exited.
    fn drop(&mut self) {
        if self.owns_machine {
            let _ = launch::teardown(&self.machine, &Bounds::default());
        }
    }
}
