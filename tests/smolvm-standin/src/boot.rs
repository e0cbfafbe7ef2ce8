//! `_boot-vm CONFIG_JSON`: the stand-in's VM process for the real smolvm
//! CLI, which runs `$SMOLVM_BOOT_BINARY _boot-vm CONFIG_JSON` from
//! `machine start`.
//!
//! Where smolvm's boot process starts libkrun, this one brings up a guest
//! made of namespaces: the same per-machine root filesystem as the stand-in
//! CLI's machines, kept in the VM's data directory (next to the agent
//! socket) so that it survives stop/start as a disk would, and the guest
//! agent (agent.rs) serving the smolvm protocol on the config's
//! `vsock_socket`. The agent is pid 1 of the guest's PID namespace and lives
//! as long as the VM: what one exec leaves running stays until stop.
//!
//! Lifetime: smolvm stops a VM by sending the agent `Shutdown` and then
//! SIGTERM (later SIGKILL) to this process. SIGTERM kills the guest init and
//! waits for the whole namespace to be gone (spawn.rs); SIGKILL takes the
//! guest down through the init's `PR_SET_PDEATHSIG`. Either way nothing of
//! the guest outlives this process.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::error::{os_text, Error, Result};
use crate::guest::Guest;
use crate::spawn::{self, Report};
use crate::{agent, rootfs, sys};

/// What the stand-in needs from smolvm's boot config (`BootConfig` in
/// smolvm's `src/agent/boot_config.rs`); other fields are ignored.
struct BootConfig {
    vsock_socket: PathBuf,
    startup_error_log: PathBuf,
    network: bool,
    memory_mib: u64,
    /// (host source, guest target, read-only)
    mounts: Vec<(String, String, bool)>,
}

fn field<'a>(json: &'a serde_json::Value, key: &str) -> Result<&'a serde_json::Value> {
    json.get(key)
        .ok_or_else(|| Error::new(format!("boot config: missing field '{key}'")))
}

fn path_field(json: &serde_json::Value, key: &str) -> Result<PathBuf> {
    field(json, key)?
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| Error::new(format!("boot config: '{key}' is not a string")))
}

impl BootConfig {
    fn parse(bytes: &[u8]) -> Result<BootConfig> {
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::new(format!("boot config: {e}")))?;
        let resources = field(&json, "resources")?;
        let network = resources
            .get("network")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        let memory_mib = field(resources, "memory_mib")?
            .as_u64()
            .ok_or_else(|| Error::new("boot config: 'memory_mib' is not a number"))?;
        let mut mounts = Vec::new();
        for mount in field(&json, "mounts")?.as_array().into_iter().flatten() {
            let text = |key: &str| -> Result<String> {
                Ok(field(mount, key)?.as_str().unwrap_or_default().to_string())
            };
            let read_only = mount
                .get("read_only")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            mounts.push((text("source")?, text("target")?, read_only));
        }
        Ok(BootConfig {
            vsock_socket: path_field(&json, "vsock_socket")?,
            startup_error_log: path_field(&json, "startup_error_log")?,
            network,
            memory_mib,
            mounts,
        })
    }
}

/// smolvm reports a boot process that dies before the agent is ready with
/// the last line of this log, so failures end up in `machine start`'s error.
fn log_failure(config: &BootConfig, message: &str) {
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&config.startup_error_log)
    {
        let _ = writeln!(log, "Error: smolvm-standin guest: {message}");
    }
}

/// The machine's own root filesystem: `<vm data dir>/standin/{rootfs,
/// usr-local}`, built on first boot (in a staging directory, renamed into
/// place) and reused by every later boot.
fn ensure_rootfs(vm_dir: &Path, name: &str) -> Result<PathBuf> {
    let dir = vm_dir.join("standin");
    if dir.join("rootfs").is_dir() {
        return Ok(dir);
    }
    let staging = vm_dir.join(format!("standin.staging-{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| Error::new(format!("{what}: {}", os_text(&e)));
    std::fs::create_dir(&staging).map_err(|e| fail("create rootfs staging", e))?;
    let built = rootfs::build(&staging, name)
        .and_then(|()| std::fs::rename(&staging, &dir).map_err(|e| fail("rename rootfs", e)));
    if built.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    built.map(|()| dir)
}

/// smolvm writes the machine name next to the agent socket; the launcher
/// passes it to the guest as `SMOLVM_MACHINE_NAME`.
fn machine_name(vm_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(vm_dir.join("name")).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The environment smolvm's launcher gives the guest's init (and so the
/// agent, whose commands inherit it): see `launch_agent_vm` in smolvm's
/// `src/agent/launcher.rs`.
fn agent_env(config: &BootConfig, name: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        ("HOME".to_string(), "/root".to_string()),
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("TERM".to_string(), "xterm-256color".to_string()),
    ];
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        env.push((
            smolvm_protocol::guest_env::HOST_TIME_NS.to_string(),
            now.as_nanos().to_string(),
        ));
    }
    if let Some(name) = name {
        env.push((
            smolvm_protocol::guest_env::MACHINE_NAME.to_string(),
            name.to_string(),
        ));
    }
    for (i, (_, target, read_only)) in config.mounts.iter().enumerate() {
        let access = if *read_only { "ro" } else { "rw" };
        env.push((
            format!("SMOLVM_MOUNT_{i}"),
            format!("smolvm{i}:{target}:{access}"),
        ));
    }
    if !config.mounts.is_empty() {
        env.push((
            "SMOLVM_MOUNT_COUNT".to_string(),
            config.mounts.len().to_string(),
        ));
    }
    let marker = smolvm_protocol::guest_env::READY_MARKER;
    if let Ok(value) = std::env::var(marker) {
        env.push((marker.to_string(), value));
    }
    env
}

pub fn run(config_path: &Path) -> Result<i32> {
    let bytes = std::fs::read(config_path).map_err(|e| {
        Error::new(format!(
            "read boot config {}: {}",
            config_path.display(),
            os_text(&e)
        ))
    })?;
    // smolvm's boot process removes its config once read; so does this one.
    let _ = std::fs::remove_file(config_path);
    let config = BootConfig::parse(&bytes)?;
    match boot(&config) {
        Ok(code) => Ok(code),
        Err(e) => {
            log_failure(&config, &e.to_string());
            Err(e)
        }
    }
}

/// A machine asks for more memory than the host has: no VM could boot, and
/// neither does the stand-in's, so that tests have a start that fails on
/// both the stand-in CLI and the real one.
pub fn check_memory(memory_mib: u64) -> Result<()> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| Error::new(format!("read /proc/meminfo: {}", os_text(&e))))?;
    let host_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .ok_or_else(|| Error::new("/proc/meminfo has no MemTotal"))?;
    if memory_mib > host_mib {
        return Err(Error::new(format!(
            "cannot give the guest {memory_mib} MiB of memory: the host has {host_mib} MiB"
        )));
    }
    Ok(())
}

fn boot(config: &BootConfig) -> Result<i32> {
    check_memory(config.memory_mib)?;
    let vm_dir = config
        .vsock_socket
        .parent()
        .ok_or_else(|| Error::new("vsock_socket has no parent directory"))?;
    let name = machine_name(vm_dir);
    let hostname = name.clone().unwrap_or_else(|| "smolvm".to_string());
    let dir = ensure_rootfs(vm_dir, &hostname)?;
    let guest = Guest::for_vm(
        &dir.join("rootfs"),
        &dir.join("usr-local"),
        &hostname,
        !config.network,
        &config.mounts,
    )?;
    let env = agent_env(config, name.as_deref());

    // Bound here, in the host's mount namespace, where the socket path
    // exists; the agent inherits the listening descriptor.
    let _ = std::fs::remove_file(&config.vsock_socket);
    let listener = UnixListener::bind(&config.vsock_socket).map_err(|e| {
        Error::new(format!(
            "bind {}: {}",
            config.vsock_socket.display(),
            os_text(&e)
        ))
    })?;

    let child = spawn::spawn(|reporter| {
        if let Err(message) = guest.enter() {
            reporter.send(spawn::SETUP_FAILED, &message);
            return 1;
        }
        agent::serve(listener.as_raw_fd(), &env, || {
            reporter.send(spawn::DONE, "");
            // The only write end left: the boot process sees EOF now.
            unsafe { libc::close(reporter.fd()) };
        })
    })?;
    drop(listener);

    let report = sys::read_to_end(child.report.as_raw_fd())
        .map_err(|e| Error::new(format!("read: {}", os_text(&e))))?;
    match Report::parse(&report) {
        Some(r) if r.kind == spawn::DONE => {
            // The readiness doorbell smolvm's host side listens on (the guest
            // agent dials it over vsock when its init is complete).
            let _ = UnixStream::connect(config.vsock_socket.with_extension("ready"));
        }
        Some(r) => {
            unsafe { libc::kill(child.pid, libc::SIGKILL) };
            child.disarm();
            let _ = sys::waitpid(child.pid);
            return Err(Error::new(r.message));
        }
        None => {}
    }
    let status = sys::waitpid(child.pid).map_err(|e| Error::new(format!("waitpid: {e}")));
    child.disarm();
    Ok(sys::exit_code(status?))
}
