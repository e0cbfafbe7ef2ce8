//! The built-in "image": the per-machine root filesystem made at create.
//!
//! The rootfs holds only what a machine may change (`/etc`, `/home`, `/root`,
//! `/tmp`, `/var`, ...). `/usr` is the host's, bind-mounted read-only at each
//! exec, and `/usr/local` is the machine's own `usr-local/` directory, so
//! programs come from the host while every machine keeps its own state.

use std::fs;
use std::io;
use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
use std::path::Path;

use crate::error::{os_text, Error, Result};

const NODE_UID: u32 = 1000;
const NODE_GID: u32 = 1000;
const SHADOW_GID: u32 = 42;

/// Host `/etc` entries the guest gets copies of: what PAM/runuser, login
/// shells, the dynamic linker (`ld.so.cache`), Debian's alternatives
/// symlinks (`awk`, `which`, `editor` go through `/etc/alternatives`), TLS
/// and name resolution need. Missing entries are skipped.
const HOST_ETC: &[&str] = &[
    "pam.d",
    "pam.conf",
    "security",
    "login.defs",
    "default",
    "environment",
    "profile",
    "profile.d",
    "bash.bashrc",
    "shells",
    "inputrc",
    "nsswitch.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "timezone",
    "os-release",
    "debian_version",
    "terminfo",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "resolv.conf",
    "gai.conf",
    "host.conf",
    "protocols",
    "services",
    "networks",
    "ethertypes",
    "rpc",
    "mime.types",
    "locale.alias",
    "magic",
    "magic.mime",
];

/// Top-level directories and their modes. `proc` and `dev` are mount points;
/// `usr` is one too, and must exist for `/usr/local` to be mounted on it.
const DIRS: &[(&str, u32)] = &[
    ("etc", 0o755),
    ("home", 0o755),
    ("home/node", 0o755),
    ("root", 0o700),
    ("tmp", 0o1777),
    ("var", 0o755),
    ("var/tmp", 0o1777),
    ("var/lib", 0o755),
    ("var/log", 0o755),
    ("var/cache", 0o755),
    ("usr", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("run", 0o755),
    ("mnt", 0o755),
    ("opt", 0o755),
    ("srv", 0o755),
];

/// The directories Debian ships in `/usr/local`.
const USR_LOCAL_DIRS: &[&str] = &[
    "bin", "etc", "games", "include", "lib", "sbin", "share", "src",
];

/// What the agent image ships as claude-code: a script that records how it
/// was run, so tests can check argv byte for byte, the user, the working
/// directory and whether stdin was a terminal.
const CLAUDE_STANDIN: &str = r#"#!/bin/sh
# claude stand-in (smolvm-standin): records how it was run
out="$HOME/.claude-standin"
mkdir -p "$out"
{ id -un; pwd; if [ -t 0 ]; then echo tty; else echo notty; fi; } > "$out/run"
: > "$out/argv"
for a do printf '%s\0' "$a" >> "$out/argv"; done
printf 'claude stand-in: %d arguments\n' "$#"
code=$(cat /tmp/claude-exit 2>/dev/null) || code=0
exit "${code:-0}"
"#;

fn fail(what: &str, path: &Path, err: &io::Error) -> Error {
    Error::new(format!("{what} {}: {}", path.display(), os_text(err)))
}

fn dir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir(path).map_err(|e| fail("create", path, &e))?;
    // Explicit chmod: create_dir's mode is filtered by the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| fail("chmod", path, &e))
}

fn file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::write(path, contents).map_err(|e| fail("write", path, &e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| fail("chmod", path, &e))
}

/// Builds `rootfs/` and `usr-local/` inside the (staging) machine directory.
pub fn build(machine_dir: &Path, name: &str) -> Result<()> {
    let root = machine_dir.join("rootfs");
    dir(&root, 0o755)?;
    for (path, mode) in DIRS {
        dir(&root.join(path), *mode)?;
    }
    chown(root.join("home/node"), Some(NODE_UID), Some(NODE_GID))
        .map_err(|e| fail("chown", &root.join("home/node"), &e))?;
    usr_merge_links(&root)?;
    etc(&root.join("etc"), name)?;
    copy_tree(
        Path::new("/etc/skel"),
        &root.join("home/node"),
        Some((NODE_UID, NODE_GID)),
    )?;
    copy_tree(Path::new("/etc/skel"), &root.join("root"), None)?;

    let usr_local = machine_dir.join("usr-local");
    dir(&usr_local, 0o755)?;
    for sub in USR_LOCAL_DIRS {
        dir(&usr_local.join(sub), 0o755)?;
    }
    file(&usr_local.join("bin/claude"), CLAUDE_STANDIN, 0o755)
}

/// Debian 12 is usr-merged: `/bin`, `/lib`, ... are symlinks into `/usr`.
/// Copy whichever of those the host has, so paths like `/bin/sh` resolve
/// through the host's `/usr` mounted in the guest.
fn usr_merge_links(root: &Path) -> Result<()> {
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let Ok(target) = fs::read_link(Path::new("/").join(top)) else {
            continue;
        };
        let target = target.to_string_lossy();
        let relative = target.trim_start_matches('/');
        if relative.starts_with("usr/") {
            let link = root.join(top);
            symlink(relative, &link).map_err(|e| fail("symlink", &link, &e))?;
        }
    }
    Ok(())
}

fn etc(etc: &Path, name: &str) -> Result<()> {
    for entry in HOST_ETC {
        let host = Path::new("/etc").join(entry);
        if fs::symlink_metadata(&host).is_ok() {
            copy_tree(&host, &etc.join(entry), None)?;
        }
    }
    file(
        &etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/bash\n\
         node:x:1000:1000::/home/node:/bin/bash\n\
         nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        0o644,
    )?;
    file(
        &etc.join("group"),
        "root:x:0:\nshadow:x:42:\nnode:x:1000:\nnogroup:x:65534:\n",
        0o644,
    )?;
    // `!` locks the password; runuser (as root) needs no password at all.
    file(
        &etc.join("shadow"),
        "root:!:19000:0:99999:7:::\nnode:!:19000:0:99999:7:::\nnobody:!:19000:0:99999:7:::\n",
        0o640,
    )?;
    file(
        &etc.join("gshadow"),
        "root:*::\nshadow:*::\nnode:!::\nnogroup:*::\n",
        0o640,
    )?;
    for secret in ["shadow", "gshadow"] {
        let path = etc.join(secret);
        chown(&path, Some(0), Some(SHADOW_GID)).map_err(|e| fail("chown", &path, &e))?;
    }
    file(&etc.join("hostname"), &format!("{name}\n"), 0o644)?;
    file(
        &etc.join("hosts"),
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n"
        ),
        0o644,
    )?;
    let mtab = etc.join("mtab");
    symlink("../proc/self/mounts", &mtab).map_err(|e| fail("symlink", &mtab, &e))
}

/// Copies a file, symlink or directory tree, keeping modes and symlink
/// targets; with `owner`, everything copied is chowned to it. Special files
/// are skipped: nothing in the copied parts of `/etc` needs them.
fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    let meta = fs::symlink_metadata(from).map_err(|e| fail("stat", from, &e))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(from).map_err(|e| fail("readlink", from, &e))?;
        symlink(&target, to).map_err(|e| fail("symlink", to, &e))?;
    } else if kind.is_dir() {
        if !to.exists() {
            dir(to, meta.permissions().mode() & 0o7777)?;
        }
        for entry in fs::read_dir(from).map_err(|e| fail("read", from, &e))? {
            let entry = entry.map_err(|e| fail("read", from, &e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()), owner)?;
        }
    } else if kind.is_file() {
        fs::copy(from, to).map_err(|e| fail("copy", from, &e))?;
    } else {
        return Ok(());
    }
    if let Some((uid, gid)) = owner {
        lchown(to, Some(uid), Some(gid)).map_err(|e| fail("chown", to, &e))?;
    }
    Ok(())
}
