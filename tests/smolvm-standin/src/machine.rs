//! Machine records and the state home: `<home>/<name>/` holds `state` (a
//! line file), `rootfs/` and `usr-local/` (the guest's own `/usr/local`).
//!
//! Many stand-in processes share one home. A machine appears by renaming a
//! fully built staging directory into place (never half built), and vanishes
//! by renaming it away before removal; `state` is replaced by rename, so
//! `exec` and `status` read it without locking. start/stop/delete take an
//! exclusive flock on the machine directory so their read-modify-write
//! sequences do not interleave.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{os_text, Error, Result};
use crate::{name, rootfs, sys};

pub const HOME_VAR: &str = "SMOLVM_STANDIN_HOME";
const DEFAULT_HOME: &str = "/tmp/smolvm-standin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Stopped => "stopped",
        }
    }

    fn parse(text: &str) -> Option<State> {
        [State::Created, State::Running, State::Stopped]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub host: String,
    pub guest: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub name: String,
    pub state: State,
    pub image: Option<String>,
    pub cpus: u8,
    pub mem: u32,
    pub net: bool,
    pub volumes: Vec<Volume>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// Nanoseconds since the Unix epoch of the last `start` (0: never
    /// started): the guest's `SMOLVM_HOST_TIME_NS`, as smolvm's launcher
    /// passes the host's clock at boot.
    pub started_ns: u128,
}

impl Machine {
    /// The check smolvm's agent connection makes before exec and cp.
    pub fn ensure_running(&self) -> Result<()> {
        if self.state == State::Running {
            return Ok(());
        }
        let n = &self.name;
        Err(Error::new(format!(
            "agent operation failed: connect: machine '{n}' is not running. \
             Use 'smolvm machine start --name {n}' first."
        )))
    }

    fn to_state_file(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: &str| {
            out.push_str(key);
            out.push('=');
            out.push_str(&escape(value));
            out.push('\n');
        };
        line("state", self.state.as_str());
        if let Some(image) = &self.image {
            line("image", image);
        }
        line("cpus", &self.cpus.to_string());
        line("mem", &self.mem.to_string());
        line("net", if self.net { "true" } else { "false" });
        line("created_at", &self.created_at.to_string());
        line("started_ns", &self.started_ns.to_string());
        for v in &self.volumes {
            let access = if v.read_only { "ro" } else { "rw" };
            line("volume", &format!("{access}\t{}\t{}", v.host, v.guest));
        }
        for (k, v) in &self.env {
            line("env", &format!("{k}={v}"));
        }
        for (k, v) in &self.labels {
            line("label", &format!("{k}={v}"));
        }
        out
    }

    fn from_state_file(name: &str, text: &str) -> Option<Machine> {
        let mut m = Machine {
            name: name.to_string(),
            state: State::Created,
            image: None,
            cpus: 0,
            mem: 0,
            net: false,
            volumes: Vec::new(),
            env: Vec::new(),
            labels: Vec::new(),
            created_at: 0,
            started_ns: 0,
        };
        for line in text.lines() {
            let (key, raw) = line.split_once('=')?;
            let value = unescape(raw);
            match key {
                "state" => m.state = State::parse(&value)?,
                "image" => m.image = Some(value),
                "cpus" => m.cpus = value.parse().ok()?,
                "mem" => m.mem = value.parse().ok()?,
                "net" => m.net = value == "true",
                "created_at" => m.created_at = value.parse().ok()?,
                "started_ns" => m.started_ns = value.parse().ok()?,
                "volume" => {
                    let mut parts = value.splitn(3, '\t');
                    let (access, host, guest) = (parts.next()?, parts.next()?, parts.next()?);
                    m.volumes.push(Volume {
                        host: host.to_string(),
                        guest: guest.to_string(),
                        read_only: access == "ro",
                    });
                }
                "env" => m.env.push(split_pair(&value)?),
                "label" => m.labels.push(split_pair(&value)?),
                _ => {}
            }
        }
        Some(m)
    }
}

fn split_pair(text: &str) -> Option<(String, String)> {
    let (k, v) = text.split_once('=')?;
    Some((k.to_string(), v.to_string()))
}

/// Values may hold any character; only the line and field separators and the
/// escape character itself need escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

pub fn not_found(name: &str) -> Error {
    Error::new(format!("vm not found: {name}"))
}

fn io_error(what: &str, path: &Path, err: &io::Error) -> Error {
    Error::new(format!("{what} {}: {}", path.display(), os_text(err)))
}

/// Held while a start/stop/delete changes a machine; released on drop.
pub struct Lock {
    _dir: OwnedFd,
}

pub struct Store {
    home: PathBuf,
}

impl Store {
    /// The home need not exist yet: only `create` makes it.
    pub fn open() -> Result<Store> {
        let home = std::env::var_os(HOME_VAR)
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HOME));
        // The root path is used after fork and in chroot, where a relative
        // path would depend on the working directory.
        let home = if home.is_absolute() {
            home
        } else {
            std::env::current_dir()
                .map_err(|e| Error::new(format!("current directory: {}", os_text(&e))))?
                .join(home)
        };
        Ok(Store { home })
    }

    pub fn machine_dir(&self, name: &str) -> PathBuf {
        self.home.join(name)
    }

    pub fn rootfs(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join("rootfs")
    }

    pub fn usr_local(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join("usr-local")
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.machine_dir(name).join("state")
    }

    /// `name` must already be validated.
    pub fn load(&self, name: &str) -> Result<Machine> {
        let path = self.state_path(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(name)),
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        Machine::from_state_file(name, &text)
            .ok_or_else(|| Error::new(format!("corrupt state file {}", path.display())))
    }

    pub fn save(&self, machine: &Machine) -> Result<()> {
        write_state(&self.machine_dir(&machine.name), machine)
    }

    pub fn lock(&self, name: &str) -> Result<Lock> {
        let dir = self.machine_dir(name);
        let path = sys::cstring(dir.as_os_str().as_bytes())?;
        let fd = match sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(name)),
            Err(e) => return Err(io_error("open", &dir, &e)),
        };
        loop {
            match sys::check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) }) {
                Ok(_) => return Ok(Lock { _dir: fd }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error("lock", &dir, &e)),
            }
        }
    }

    /// Machines sorted by name; directories that are not (or no longer)
    /// machines are skipped.
    pub fn list(&self) -> Result<Vec<Machine>> {
        let entries = match fs::read_dir(&self.home) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("read", &self.home, &e)),
        };
        let mut machines = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("read", &self.home, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name::check(&name).is_err() {
                continue;
            }
            match self.load(&name) {
                Ok(m) => machines.push(m),
                Err(_) if !self.state_path(&name).exists() => {}
                Err(e) => return Err(e),
            }
        }
        machines.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(machines)
    }

    pub fn create(&self, machine: &Machine) -> Result<()> {
        let name = &machine.name;
        let target = self.machine_dir(name);
        if target.exists() {
            return Err(already_exists(name));
        }
        fs::create_dir_all(&self.home).map_err(|e| io_error("create", &self.home, &e))?;
        // Dot names can never be machine names, so `ls` never sees these.
        let staging = self
            .home
            .join(format!(".staging-{name}-{}", std::process::id()));
        // Left over only if a process with our pid crashed mid-create.
        let _ = fs::remove_dir_all(&staging);
        let built = fs::create_dir(&staging)
            .map_err(|e| io_error("create", &staging, &e))
            .and_then(|()| rootfs::build(&staging, name))
            .and_then(|()| write_state(&staging, machine))
            .and_then(|()| rename_noreplace(&staging, &target, name));
        if built.is_err() {
            let _ = fs::remove_dir_all(&staging);
        }
        built
    }

    /// The caller holds the machine's lock and has loaded its state.
    pub fn delete(&self, name: &str) -> Result<()> {
        let dir = self.machine_dir(name);
        let doomed = self
            .home
            .join(format!(".deleting-{name}-{}", std::process::id()));
        fs::rename(&dir, &doomed).map_err(|e| io_error("rename", &dir, &e))?;
        fs::remove_dir_all(&doomed).map_err(|e| io_error("remove", &doomed, &e))
    }
}

fn already_exists(name: &str) -> Error {
    Error::new(format!(
        "config operation failed: create machine: machine '{name}' already exists or is being created"
    ))
}

fn write_state(dir: &Path, machine: &Machine) -> Result<()> {
    let tmp = dir.join(format!("state.tmp-{}", std::process::id()));
    let path = dir.join("state");
    fs::write(&tmp, machine.to_state_file()).map_err(|e| io_error("write", &tmp, &e))?;
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error("rename", &tmp, &e)
    })
}

/// Two creates of one name may race past the `exists` check; the kernel
/// lets exactly one rename win.
fn rename_noreplace(from: &Path, to: &Path, name: &str) -> Result<()> {
    let c_from = sys::cstring(from.as_os_str().as_bytes())?;
    let c_to = sys::cstring(to.as_os_str().as_bytes())?;
    let ret = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    match sys::check(ret) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(already_exists(name)),
        Err(e) => Err(io_error("rename", from, &e)),
    }
}

/// One `-e` as smolvm reads it: `KEY=VALUE`; `KEY` alone takes this
/// process's KEY (Docker's `-e KEY`), nothing if unset; an empty key or an
/// empty spec is dropped.
pub fn parse_env_spec(text: &str) -> Option<(String, String)> {
    match text.split_once('=') {
        Some(("", _)) => None,
        Some((k, v)) => Some((k.to_string(), v.to_string())),
        None if text.is_empty() => None,
        None => std::env::var(text).ok().map(|v| (text.to_string(), v)),
    }
}

/// Adds or replaces, keeping first-seen order: later settings win, as with
/// repeated `-e` in smolvm.
pub fn set_pair(pairs: &mut Vec<(String, String)>, pair: (String, String)) {
    match pairs.iter_mut().find(|(k, _)| *k == pair.0) {
        Some(slot) => slot.1 = pair.1,
        None => pairs.push(pair),
    }
}

/// Parses `HOST:GUEST[:ro]`. The host path must exist now; it is recorded
/// absolute and resolved so later execs do not depend on this process's cwd.
pub fn parse_volume(text: &str) -> Result<Volume> {
    let bad = |why: &str| Error::new(format!("invalid mount path: {why}"));
    let parts: Vec<&str> = text.split(':').collect();
    let (host, guest, read_only) = match parts.as_slice() {
        [host, guest] => (*host, *guest, false),
        [host, guest, "ro"] => (*host, *guest, true),
        [host, guest, "rw"] => (*host, *guest, false),
        _ => {
            return Err(bad(&format!(
                "invalid format '{text}' (expected host:guest[:ro|:rw])"
            )))
        }
    };
    if host.is_empty() {
        return Err(bad("empty host path"));
    }
    if !guest.starts_with('/') || guest.split('/').all(str::is_empty) {
        return Err(bad("guest path must be absolute and not /"));
    }
    let host = fs::canonicalize(host)
        .map_err(|_| Error::new(format!("mount source not found: {host}")))?;
    let host = host
        .to_str()
        .ok_or_else(|| bad("host path is not UTF-8"))?
        .to_string();
    Ok(Volume {
        host,
        guest: guest.to_string(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trip() {
        let m = Machine {
            name: "m1".into(),
            state: State::Running,
            image: Some("img\nwith\\odd\tchars=".into()),
            cpus: 2,
            mem: 1024,
            net: true,
            volumes: vec![Volume {
                host: "/h:x".into(),
                guest: "/g".into(),
                read_only: true,
            }],
            env: vec![("A".into(), "b=c\nd".into())],
            labels: vec![("bottle".into(), "".into())],
            created_at: 1_700_000_000,
            started_ns: 1_700_000_000_123_456_789,
        };
        let text = m.to_state_file();
        assert_eq!(Machine::from_state_file("m1", &text), Some(m));
    }

    #[test]
    fn pairs() {
        assert_eq!(parse_env_spec("a=b=c"), Some(("a".into(), "b=c".into())));
        assert_eq!(parse_env_spec("=b"), None);
        assert_eq!(parse_env_spec(""), None);
        assert_eq!(parse_env_spec("SMOLVM_STANDIN_SURELY_UNSET"), None);
        let mut pairs = vec![("A".to_string(), "1".to_string())];
        set_pair(&mut pairs, ("B".into(), "2".into()));
        set_pair(&mut pairs, ("A".into(), "3".into()));
        assert_eq!(
            pairs,
            vec![("A".into(), "3".into()), ("B".into(), "2".into())]
        );
    }

    #[test]
    fn volumes() {
        let v = parse_volume("/tmp:/work:ro").unwrap();
        assert_eq!(
            (v.host.as_str(), v.guest.as_str(), v.read_only),
            ("/tmp", "/work", true)
        );
        for bad in [
            "/tmp",
            "/tmp:work",
            "/tmp:/",
            "/tmp:/w:rx",
            ":/w",
            "/nonexistent-xyz:/w",
        ] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
    }
}
