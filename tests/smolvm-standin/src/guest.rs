//! Entering a machine: what the guest-side child does before it runs a
//! command or touches a file.
//!
//! The child is init of a fresh PID namespace (see spawn.rs). It unshares
//! the mount, UTS and IPC namespaces (and the network namespace unless the
//! machine was created with `--net`), makes every mount private so nothing
//! propagates to the host, chroots into the machine's rootfs and builds the
//! guest's mounts from inside it:
//!
//! - `/proc`: a fresh procfs, showing only the guest's processes;
//!   `/proc/sys` read-only, so the guest cannot retune the host kernel;
//! - `/usr`: the host's, read-only; `/usr/local`: the machine's own, writable;
//! - `/dev`: a small tmpfs with the host's null, zero, full, random, urandom
//!   and tty bound in, a private devpts and `/dev/shm`, never the host's
//!   `/dev` (where `rm -rf /` in a guest would delete host device nodes);
//! - each `-v HOST:GUEST[:ro]` volume.
//!
//! Sources outside the root (host `/usr`, `/dev/null`, volumes) are opened
//! before the chroot and mounted through `/proc/self/fd/N`, so every *target*
//! is resolved inside the chroot: a symlink or `..` the guest planted in its
//! rootfs cannot redirect a mount or a `mkdir` to a host path. The fds are
//! opened after `unshare`, because a bind source must belong to the caller's
//! own mount namespace.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{os_text, Result};
use crate::machine::{Machine, Store};
use crate::sys;

/// Host device nodes bound into the guest's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

struct GuestVolume {
    host: CString,
    guest: CString,
    read_only: bool,
}

/// Everything needed to enter one machine, prepared before fork.
pub struct Guest {
    root: CString,
    usr_local: CString,
    hostname: Vec<u8>,
    own_network: bool,
    volumes: Vec<GuestVolume>,
}

type Step = std::result::Result<(), String>;

/// `what` is formatted only on failure: these calls are on every exec's path.
fn step(ret: libc::c_int, what: impl FnOnce() -> String) -> Step {
    sys::check(ret)
        .map(drop)
        .map_err(|e| format!("{}: {}", what(), os_text(&e)))
}

fn lossy(path: &CStr) -> String {
    path.to_string_lossy().into_owned()
}

fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Step {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    let ret = unsafe {
        libc::mount(
            ptr(source),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    step(ret, || format!("mount {}", lossy(target)))
}

/// Binds an fd opened before the chroot onto `target` inside it.
fn bind_fd(fd: RawFd, target: &CStr, read_only: bool) -> Step {
    let source = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
    mount(
        Some(&source),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    if read_only {
        // A bind mount takes MS_RDONLY only on a remount of itself.
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        mount(None, target, None, flags, None)?;
    }
    Ok(())
}

fn open_path(path: &CStr) -> std::result::Result<OwnedFd, String> {
    sys::open(path, libc::O_PATH, 0).map_err(|e| format!("open {}: {}", lossy(path), os_text(&e)))
}

/// mkdir that accepts an existing entry: the rootfs has the fixed mount
/// points already, unless the guest removed one.
fn ensure_dir(path: &CStr, mode: libc::mode_t) -> Step {
    match sys::check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(format!("mkdir {}: {}", lossy(path), os_text(&e)))
        }
        _ => Ok(()),
    }
}

fn ensure_file(path: &CStr) -> Step {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_NOCTTY | libc::O_NONBLOCK;
    sys::open(path, flags, 0o644)
        .map(drop)
        .map_err(|e| format!("create {}: {}", lossy(path), os_text(&e)))
}

fn symlink(target: &CStr, link: &CStr) -> Step {
    let ret = unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) };
    step(ret, || format!("symlink {}", lossy(link)))
}

fn c(text: &str) -> CString {
    CString::new(text).expect("no NUL")
}

/// `mkdir -p` inside the chroot, for volume mount points.
fn make_parents(path: &[u8], last_is_dir: bool) -> Step {
    let mut prefix = Vec::new();
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(b'/');
        prefix.extend_from_slice(part);
        let current = CString::new(prefix.clone()).expect("no NUL");
        if i + 1 < parts.len() || last_is_dir {
            ensure_dir(&current, 0o755)?;
        } else {
            ensure_file(&current)?;
        }
    }
    Ok(())
}

impl Guest {
    pub fn new(store: &Store, machine: &Machine) -> Result<Guest> {
        let mut volumes = Vec::new();
        for v in &machine.volumes {
            volumes.push(GuestVolume {
                host: sys::cstring(v.host.as_str())?,
                guest: sys::cstring(v.guest.as_str())?,
                read_only: v.read_only,
            });
        }
        // The kernel limits host names to 64 bytes; machine names go to 128.
        let mut hostname = machine.name.as_bytes().to_vec();
        hostname.truncate(64);
        Ok(Guest {
            root: sys::cstring(store.rootfs(&machine.name).as_os_str().as_bytes())?,
            usr_local: sys::cstring(store.usr_local(&machine.name).as_os_str().as_bytes())?,
            hostname,
            own_network: !machine.net,
            volumes,
        })
    }

    /// A machine of the real smolvm CLI, booted by `_boot-vm`: the paths and
    /// settings come from its boot config instead of the stand-in's store.
    pub fn for_vm(
        root: &Path,
        usr_local: &Path,
        name: &str,
        own_network: bool,
        volumes: &[(String, String, bool)],
    ) -> Result<Guest> {
        let mut hostname = name.as_bytes().to_vec();
        hostname.truncate(64);
        Ok(Guest {
            root: sys::cstring(root.as_os_str().as_bytes())?,
            usr_local: sys::cstring(usr_local.as_os_str().as_bytes())?,
            hostname,
            own_network,
            volumes: volumes
                .iter()
                .map(|(host, guest, read_only)| {
                    Ok(GuestVolume {
                        host: sys::cstring(host.as_str())?,
                        guest: sys::cstring(guest.as_str())?,
                        read_only: *read_only,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Enters the machine: afterwards the calling process sees the guest's
    /// filesystem from its root, with `/` as working directory.
    pub fn enter(&self) -> Step {
        let mut namespaces = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
        if self.own_network {
            namespaces |= libc::CLONE_NEWNET;
        }
        step(unsafe { libc::unshare(namespaces) }, || "unshare".into())?;
        mount(None, &c("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?;
        let ret = unsafe { libc::sethostname(self.hostname.as_ptr().cast(), self.hostname.len()) };
        step(ret, || "sethostname".into())?;

        let usr = open_path(&c("/usr"))?;
        let usr_local = open_path(&self.usr_local)?;
        let mut devices = Vec::new();
        for name in DEVICES {
            devices.push((name, open_path(&c(&format!("/dev/{name}")))?));
        }
        let mut volumes = Vec::new();
        for v in &self.volumes {
            let fd = open_path(&v.host)?;
            let is_dir = sys::fstat(fd.as_raw_fd())
                .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
                .map_err(|e| format!("stat {}: {}", lossy(&v.host), os_text(&e)))?;
            volumes.push((v, fd, is_dir));
        }

        let ret = unsafe { libc::chroot(self.root.as_ptr()) };
        step(ret, || format!("chroot {}", lossy(&self.root)))?;
        step(unsafe { libc::chdir(c("/").as_ptr()) }, || "chdir /".into())?;

        let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        ensure_dir(&c("/proc"), 0o555)?;
        mount(
            Some(&c("proc")),
            &c("/proc"),
            Some(&c("proc")),
            nosuid_nodev_noexec,
            None,
        )?;
        bind_fd(usr.as_raw_fd(), &c("/usr"), true)?;
        bind_fd(usr_local.as_raw_fd(), &c("/usr/local"), false)?;
        make_dev(&devices)?;
        let sys_dir = c("/proc/sys");
        mount(Some(&sys_dir), &sys_dir, None, libc::MS_BIND, None)?;
        let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | nosuid_nodev_noexec;
        mount(None, &sys_dir, None, ro, None)?;

        for (v, fd, is_dir) in &volumes {
            make_parents(v.guest.as_bytes(), *is_dir)?;
            bind_fd(fd.as_raw_fd(), &v.guest, v.read_only)?;
        }
        if self.own_network {
            loopback_up()?;
        }
        Ok(())
    }
}

fn make_dev(devices: &[(&str, OwnedFd)]) -> Step {
    ensure_dir(&c("/dev"), 0o755)?;
    let small_tmpfs = |path: &str, options: &str, flags| {
        mount(
            Some(&c("tmpfs")),
            &c(path),
            Some(&c("tmpfs")),
            flags,
            Some(&c(options)),
        )
    };
    small_tmpfs("/dev", "mode=755,size=64k", libc::MS_NOSUID)?;
    for (name, fd) in devices {
        let target = c(&format!("/dev/{name}"));
        ensure_file(&target)?;
        bind_fd(fd.as_raw_fd(), &target, false)?;
    }
    ensure_dir(&c("/dev/pts"), 0o755)?;
    mount(
        Some(&c("devpts")),
        &c("/dev/pts"),
        Some(&c("devpts")),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(&c("newinstance,ptmxmode=0666,mode=0620")),
    )?;
    ensure_dir(&c("/dev/shm"), 0o1777)?;
    small_tmpfs("/dev/shm", "mode=1777", libc::MS_NOSUID | libc::MS_NODEV)?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        symlink(&c(target), &c(link))?;
    }
    Ok(())
}

/// A new network namespace starts with `lo` down; a VM without `--net`
/// still has a working loopback.
fn loopback_up() -> Step {
    let fail = |what: &str| format!("{what} lo: {}", os_text(&io::Error::last_os_error()));
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(fail("socket for"));
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) < 0 {
            result = Err(fail("get flags of"));
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) < 0 {
                result = Err(fail("bring up"));
            }
        }
        libc::close(sock);
        result
    }
}
