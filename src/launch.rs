//! Machines the library creates and tears down itself, and finding the ones
//! a dead process left behind.
//!
//! Every machine launched here carries smolvm labels that say it is
//! libbottle's and which process owns it: the pid, that process's start time
//! (so a reused pid is not mistaken for the owner), the boot id (so is a pid
//! from before a reboot) and the pid namespace (a pid means nothing in
//! another one, so a reaper there leaves the machine alone).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cancel::{Bounds, Limits};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::guest_env;
use crate::machine::{Host, Machine};
use crate::smolvm::{self, Smolvm};
use crate::validate;

/// The label that marks a machine as libbottle's.
const LABEL: &str = "libbottle";
const LABEL_PID: &str = "libbottle.pid";
const LABEL_START: &str = "libbottle.start";
const LABEL_BOOT: &str = "libbottle.boot";
const LABEL_PIDNS: &str = "libbottle.pidns";

/// A host directory shared into the guest (`-v HOST:GUEST[:ro]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub guest: String,
    pub read_only: bool,
}

/// What to launch. The default is smolvm's default image, CPUs and memory,
/// no network, and a generated name.
#[derive(Debug, Clone, Default)]
pub struct LaunchOptions {
    /// The machine name; `None` generates a unique one (`bottle-PID-N-HEX`).
    pub name: Option<String>,
    pub image: Option<String>,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u32>,
    pub network: bool,
    pub volumes: Vec<Volume>,
    /// Variables for every command the bottle runs, claude included; they
    /// travel on smolvm's command line, visible to local users while
    /// `create` runs. The machine holds them under carrier names
    /// (`BOTTLE_MACHINE_ENV_N`), so they reach no root process by their
    /// own names.
    pub env: Vec<(String, String)>,
    /// The in-guest system-prompt file for claude, as in
    /// [`Bottle::open`](crate::Bottle::open).
    pub prompt_path: Option<String>,
    /// What may stop the launch (create and start together).
    pub limits: Limits,
    /// The `smolvm serve` to launch at; `None` is the local smolvm CLI.
    pub endpoint: Option<Endpoint>,
}

impl LaunchOptions {
    /// Checks every field; messages name the field. (The C setters check
    /// each value as it is set, under the header's names.)
    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            validate::machine_name(name)?;
        }
        if let Some(image) = &self.image {
            validate::image(image)?;
        }
        if self.cpus == Some(0) {
            return Err(Error::invalid("cpus", "must be at least 1"));
        }
        if self.memory_mib == Some(0) {
            return Err(Error::invalid("memory_mib", "must be at least 1"));
        }
        for v in &self.volumes {
            validate::volume(&v.host, &v.guest, ("volumes.host", "volumes.guest"))?;
        }
        for (name, value) in &self.env {
            validate::env_pair(name, value)?;
        }
        if let Some(p) = &self.prompt_path {
            validate::guest_path("prompt_path", p)?;
        }
        Ok(())
    }

    /// `machine create` in the forms of smolvm's documented command line.
    /// Each value has been validated not to start with `-`, so none can be
    /// read as an option: names and variables start with a letter, volume
    /// paths with `/`, images are checked, numbers are numbers.
    fn create_args(&self, name: &str, owner: &ProcessId) -> Vec<String> {
        let mut args: Vec<String> = ["machine", "create", "--name", name]
            .map(str::to_owned)
            .to_vec();
        let mut option = |flag: &str, value: String| {
            args.push(flag.to_owned());
            args.push(value);
        };
        if let Some(image) = &self.image {
            option("--image", image.clone());
        }
        if let Some(cpus) = self.cpus {
            option("--cpus", cpus.to_string());
        }
        if let Some(mib) = self.memory_mib {
            option("--mem", mib.to_string());
        }
        for v in &self.volumes {
            let ro = if v.read_only { ":ro" } else { "" };
            option("-v", format!("{}:{}{ro}", v.host.display(), v.guest));
        }
        for (i, (_, v)) in self.env.iter().enumerate() {
            option("-e", format!("{}={v}", guest_env::machine_carrier(i)));
        }
        for (k, v) in owner.labels() {
            option("--label", format!("{k}={v}"));
        }
        if self.network {
            args.push("--net".into());
        }
        args
    }
}

/// Which process owns a machine, as recorded in its labels (or, at an
/// endpoint, in its record on this host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessId {
    pub(crate) pid: u32,
    start: String,
    boot: String,
    pidns: String,
}

impl ProcessId {
    pub(crate) fn current() -> Result<Self> {
        let pid = std::process::id();
        Ok(ProcessId {
            pid,
            start: start_time(pid).ok_or_else(|| {
                Error::io(
                    "reading /proc/self/stat",
                    std::io::Error::other("unreadable"),
                )
            })?,
            boot: boot_id()?,
            pidns: pid_namespace()?,
        })
    }

    fn labels(&self) -> [(&'static str, String); 5] {
        [
            (LABEL, "1".into()),
            (LABEL_PID, self.pid.to_string()),
            (LABEL_START, self.start.clone()),
            (LABEL_BOOT, self.boot.clone()),
            (LABEL_PIDNS, self.pidns.clone()),
        ]
    }

    /// Whether this owner is known to be gone, as seen by `here` (the
    /// current process): from an earlier boot, or its pid no longer names
    /// the process that started then. An owner in another pid namespace
    /// cannot be looked up, so it is never taken for gone.
    pub(crate) fn is_gone(&self, here: &ProcessId) -> bool {
        if self.boot != here.boot {
            return true;
        }
        self.pidns == here.pidns && start_time(self.pid).as_deref() != Some(self.start.as_str())
    }
}

/// A live process's start time in clock ticks since boot (field 22 of
/// /proc/PID/stat), or `None` if there is no such process or it has exited
/// and waits to be reaped (state Z, or X): under a PID 1 that never reaps,
/// such a zombie stays for good, and it is as dead as an owner can be.
fn start_time(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')'.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(rest.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    rest.nth(18).map(str::to_owned)
}

/// The pid namespace, as the kernel names it (`pid:[4026531836]`).
fn pid_namespace() -> Result<String> {
    fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| Error::io("reading /proc/self/ns/pid", e))
}

fn boot_id() -> Result<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::io("reading /proc/sys/kernel/random/boot_id", e))
}

/// How long a launch with limits gives the deletion of a machine it made
/// but could not finish starting.
pub(crate) const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// Creates a machine as `opts` says and starts it: the work of
/// [`Bottle::launch`](crate::Bottle::launch), which owns what this returns.
///
/// A launch stopped by its limits during `create` or `start` deletes what
/// it created, as a failed start does. With limits, that deletion gets
/// [`CLEANUP_GRACE`] of its own (not the spent limits, so that it can run
/// at all) and is then given up: the call returns soon after its deadline,
/// and a machine left behind stays labelled as this process's, for reap
/// once the process has exited.
pub(crate) fn launch(opts: &LaunchOptions) -> Result<Machine> {
    opts.validate()?;
    if let Some(ep) = &opts.endpoint {
        return crate::serve_launch::launch(opts, ep);
    }
    let bounds = opts.limits.start();
    let smolvm = Smolvm::locate()?;
    let owner = ProcessId::current()?;
    let name = opts
        .name
        .clone()
        .unwrap_or_else(|| generated_name(owner.pid));
    let limited = bounds.deadline.is_some() || bounds.cancel.is_some();
    let cleanup = || Bounds {
        deadline: limited.then(|| Instant::now() + CLEANUP_GRACE),
        timeout: limited.then_some(CLEANUP_GRACE),
        cancel: None,
    };
    let delete = |bounds: &Bounds| {
        smolvm.run_checked_within(smolvm::delete_args(&name), "delete", &name, bounds)
    };
    let created =
        smolvm.run_checked_within(opts.create_args(&name, &owner), "create", &name, &bounds);
    if let Err(create) = created {
        // A create that failed made nothing (and the name may be another
        // machine's); one that was stopped may have made the machine, or
        // been stopped before smolvm said the name was taken: only a
        // machine labelled as this process's is deleted.
        if matches!(create, Error::Timeout(_) | Error::Cancelled(_)) {
            let bounds = cleanup();
            let ours = machines(&smolvm, &bounds).is_ok_and(|all| {
                all.iter()
                    .any(|m| m.name == name && m.owner().as_ref() == Some(&owner))
            });
            if ours {
                let _ = delete(&bounds);
            }
        }
        return Err(create);
    }
    let started = smolvm.run_checked_within(smolvm::start_args(&name), "start", &name, &bounds);
    if let Err(start) = started {
        return Err(match delete(&cleanup()) {
            Ok(()) => start,
            Err(delete) => Error::Smolvm(format!(
                "{start}; deleting the machine afterwards failed too: {delete}"
            )),
        });
    }
    let env = opts.env.iter().map(|(k, _)| k.clone()).collect();
    Ok(Machine::new(
        name,
        Host::Cli(smolvm),
        opts.prompt_path.clone(),
        env,
    ))
}

/// Stops and deletes `machine`. Deletion is tried even when the stop fails,
/// and the first failure is returned; a teardown stopped by `bounds` goes
/// no further.
pub(crate) fn teardown(machine: &Machine, bounds: &Bounds) -> Result<()> {
    let (smolvm, machine) = match machine.host() {
        Host::Cli(smolvm) => (smolvm, machine.name()),
        Host::Serve { serve, .. } => {
            return crate::serve_launch::teardown(serve, machine.name(), bounds)
        }
    };
    let stopped = smolvm.run_checked_within(smolvm::stop_args(machine), "stop", machine, bounds);
    if let Err(e @ (Error::Timeout(_) | Error::Cancelled(_))) = stopped {
        return Err(e);
    }
    let deleted =
        smolvm.run_checked_within(smolvm::delete_args(machine), "delete", machine, bounds);
    stopped.and(deleted)
}

/// Deletes every machine launched by this library whose owning process is
/// gone: the work of [`Bottle::reap_within`](crate::Bottle::reap_within).
pub(crate) fn reap_within(removed: &mut Vec<String>, limits: &Limits) -> Result<()> {
    let bounds = limits.start();
    let smolvm = Smolvm::locate()?;
    let list = machines(&smolvm, &bounds)?;
    let here = ProcessId::current()?;
    let mut failures = Vec::new();
    for machine in &list {
        // Only names smolvm itself would accept are acted on.
        let name = machine.name.as_str();
        if validate::machine_name(name).is_err() {
            continue;
        }
        let Some(owner) = machine.owner() else {
            continue;
        };
        if !owner.is_gone(&here) {
            continue;
        }
        match smolvm.run_checked_within(smolvm::delete_args(name), "delete", name, &bounds) {
            Ok(()) => removed.push(name.to_owned()),
            Err(e @ (Error::Timeout(_) | Error::Cancelled(_))) => return Err(e),
            Err(e) => failures.push((name.to_owned(), e.to_string())),
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    // Another reaper may have deleted some first: a machine that is gone
    // has been reaped, whoever did it.
    let left = machines(&smolvm, &bounds)?;
    let still_there = |name: &str| left.iter().any(|m| m.name == name);
    let failures: Vec<String> = failures
        .into_iter()
        .filter(|(name, _)| still_there(name))
        .map(|(_, e)| e)
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Smolvm(failures.join("; ")))
    }
}

/// One machine of `smolvm machine ls --json`, as far as reaping needs it;
/// smolvm's other fields are ignored.
#[derive(Debug, Deserialize)]
struct Listed {
    name: String,
    #[serde(default)]
    labels: HashMap<String, String>,
}

impl Listed {
    /// The owner recorded in the machine's labels, if it is libbottle's.
    fn owner(&self) -> Option<ProcessId> {
        let label = |k: &str| self.labels.get(k).map(String::as_str);
        if label(LABEL) != Some("1") {
            return None;
        }
        Some(ProcessId {
            pid: label(LABEL_PID)?.parse().ok()?,
            start: label(LABEL_START)?.to_owned(),
            boot: label(LABEL_BOOT)?.to_owned(),
            pidns: label(LABEL_PIDNS)?.to_owned(),
        })
    }
}

/// `smolvm machine ls --json`: every machine, as smolvm describes it.
fn machines(smolvm: &Smolvm, bounds: &Bounds) -> Result<Vec<Listed>> {
    let out = smolvm
        .capture_bookkeeping(smolvm::ls_args(), bounds)
        .map_err(|e| bounds.explain("smolvm machine ls", e))?;
    if !out.status.success() {
        return Err(Error::Smolvm(format!(
            "smolvm machine ls failed: {}",
            smolvm::failure_message(&out)
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Smolvm(format!(
            "smolvm machine ls printed no JSON list of machines: {e}"
        ))
    })
}

pub(crate) fn generated_name(pid: u32) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut bytes = [0u8; 4];
    // Should it fail, the pid and counter alone still make the name unique
    // in this process.
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("bottle-{pid}-{n}-{:08x}", u32::from_ne_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_process_is_alive_and_a_dead_one_is_not() {
        let me = ProcessId::current().unwrap();
        assert!(!me.is_gone(&me));
        let reused_pid = ProcessId {
            start: "1".into(),
            ..me.clone()
        };
        assert!(reused_pid.is_gone(&me));
        let earlier_boot = ProcessId {
            boot: "another-boot".into(),
            ..me.clone()
        };
        assert!(earlier_boot.is_gone(&me));
        let other_namespace = ProcessId {
            pidns: "pid:[1]".into(),
            ..reused_pid
        };
        assert!(!other_namespace.is_gone(&me), "cannot be judged from here");
    }

    #[test]
    fn owners_are_read_back_from_labels() {
        let me = ProcessId::current().unwrap();
        let labels: HashMap<&str, String> = me.labels().into_iter().collect();
        let read = |v: serde_json::Value| serde_json::from_value::<Listed>(v).unwrap();
        let machine = read(serde_json::json!({ "name": "m", "labels": labels }));
        assert_eq!(machine.owner(), Some(me));
        let foreign = read(serde_json::json!({ "name": "m", "labels": { "app": "x" } }));
        assert_eq!(foreign.owner(), None);
        let unlabelled = read(serde_json::json!({ "name": "m", "state": "running" }));
        assert_eq!(unlabelled.owner(), None);
    }

    #[test]
    fn create_args_keep_values_out_of_option_position() {
        let opts = LaunchOptions {
            image: Some("ghcr.io/x/agent:1".into()),
            cpus: Some(2),
            memory_mib: Some(1024),
            network: true,
            volumes: vec![Volume {
                host: "/srv/work".into(),
                guest: "/work".into(),
                read_only: true,
            }],
            env: vec![("A".into(), "-x y".into())],
            ..LaunchOptions::default()
        };
        opts.validate().unwrap();
        let owner = ProcessId {
            pid: 7,
            start: "99".into(),
            boot: "b".into(),
            pidns: "pid:[9]".into(),
        };
        assert_eq!(
            opts.create_args("m1", &owner),
            [
                "machine",
                "create",
                "--name",
                "m1",
                "--image",
                "ghcr.io/x/agent:1",
                "--cpus",
                "2",
                "--mem",
                "1024",
                "-v",
                "/srv/work:/work:ro",
                "-e",
                "BOTTLE_MACHINE_ENV_0=-x y",
                "--label",
                "libbottle=1",
                "--label",
                "libbottle.pid=7",
                "--label",
                "libbottle.start=99",
                "--label",
                "libbottle.boot=b",
                "--label",
                "libbottle.pidns=pid:[9]",
                "--net"
            ]
        );
    }

    #[test]
    fn bad_launch_options_name_their_argument() {
        let bad = |opts: LaunchOptions, arg: &str| {
            let e = opts.validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("{arg}: ")), "{e}");
        };
        bad(
            LaunchOptions {
                name: Some("-x".into()),
                ..Default::default()
            },
            "machine_name",
        );
        bad(
            LaunchOptions {
                image: Some("--privileged".into()),
                ..Default::default()
            },
            "image",
        );
        bad(
            LaunchOptions {
                image: Some("a b".into()),
                ..Default::default()
            },
            "image",
        );
        bad(
            LaunchOptions {
                cpus: Some(0),
                ..Default::default()
            },
            "cpus",
        );
        let vol = |host: &str, guest: &str| Volume {
            host: host.into(),
            guest: guest.into(),
            read_only: false,
        };
        bad(
            LaunchOptions {
                volumes: vec![vol("rel", "/g")],
                ..Default::default()
            },
            "volumes.host",
        );
        bad(
            LaunchOptions {
                volumes: vec![vol("/a:b", "/g")],
                ..Default::default()
            },
            "volumes.host",
        );
        bad(
            LaunchOptions {
                volumes: vec![vol("/a", "/g:ro")],
                ..Default::default()
            },
            "volumes.guest",
        );
        bad(
            LaunchOptions {
                memory_mib: Some(0),
                ..Default::default()
            },
            "memory_mib",
        );
        bad(
            LaunchOptions {
                env: vec![("1X".into(), "v".into())],
                ..Default::default()
            },
            "name",
        );
    }

    #[test]
    fn generated_names_are_valid_and_distinct() {
        let a = generated_name(42);
        let b = generated_name(42);
        validate::machine_name(&a).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("bottle-42-"));
    }
}
