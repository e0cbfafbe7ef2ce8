//! Files in and out of a bottle, through `smolvm machine cp`, or through
//! serve's file routes for a bottle at an endpoint.
//!
//! `machine cp` reads any `:` in its source as `MACHINE:PATH` and a leading
//! `-` as an option, so a host path never reaches smolvm: the library opens
//! the host file itself and smolvm reads or writes it as `/dev/fd/N`. That
//! also means the file copied in is the very file that was checked, and a
//! copy out lands in a temporary file that replaces the destination only
//! once smolvm has succeeded, so a failed copy destroys nothing.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::cancel::{Bounds, Limits};
use crate::capture::Io;
use crate::error::{Error, Result};
use crate::exec_options::ExecOptions;
use crate::machine::{Host, Machine};
use crate::serve::Serve;
use crate::serve_exec::{outcome, random_hex, STOP_GRACE};
use crate::smolvm::{self, Smolvm};
use crate::validate;

/// Who owns what `cp_in_with` creates in the guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Owner {
    /// root:root, as smolvm does by default.
    #[default]
    Root,
    /// These numeric ids.
    Ids { uid: u32, gid: u32 },
    /// This guest user and its primary group, looked up in the guest (for
    /// example `node`, so the agent can write what it was given).
    User(String),
}

/// Options for [`Bottle::cp_in_with`](crate::Bottle::cp_in_with).
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Permission bits for copied files. `None`: 0644 for a single file;
    /// each file's own host permissions (0777 bits only) in a directory copy.
    pub mode: Option<u32>,
    pub owner: Owner,
    /// What may stop the copy, every step of it.
    pub limits: Limits,
}

/// How far a copy has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// Called before the first file and after each file copied.
pub type OnProgress<'a> = &'a mut dyn FnMut(Progress);

/// What a directory copy will do, worked out before anything is copied.
struct Tree {
    /// Guest directories to create, parents first (the top one included).
    dirs: Vec<String>,
    /// (host file, guest path, size, host permission bits)
    files: Vec<(PathBuf, String, u64, u32)>,
}

/// [`Bottle::cp_in`](crate::Bottle::cp_in).
pub(crate) fn cp_in(m: &Machine, host_path: &Path, guest_path: &str) -> Result<()> {
    check_host_path(host_path)?;
    let file = open_regular_file(host_path, Links::Follow)?;
    validate::cp_guest_path(guest_path)?;
    copy_file_in(m, &file, guest_path, Some(0o644), None, &Bounds::default())
}

/// [`Bottle::cp_in_with`](crate::Bottle::cp_in_with). A directory's
/// directories are created in one `exec` as root (`mkdir -p`, then `chown`
/// to the owner), then each file is copied with `machine cp`.
pub(crate) fn cp_in_with(
    m: &Machine,
    host_path: &Path,
    guest_path: &str,
    opts: &CopyOptions,
    progress: Option<OnProgress<'_>>,
) -> Result<()> {
    let bounds = opts.limits.start();
    let what = format!("copying into '{}'", m.name());
    cp_in_bounded(m, host_path, guest_path, opts, progress, &bounds)
        .map_err(|e| bounds.explain(&what, e))
}

fn cp_in_bounded(
    m: &Machine,
    host_path: &Path,
    guest_path: &str,
    opts: &CopyOptions,
    mut progress: Option<OnProgress<'_>>,
    bounds: &Bounds,
) -> Result<()> {
    if let Some(mode) = opts.mode {
        validate::mode(mode)?;
    }
    validate::cp_guest_path(guest_path)?;
    check_host_path(host_path)?;
    // The caller named this path: a link to a directory copies that
    // directory (links inside a tree are refused by the walk).
    let meta = fs::metadata(host_path)
        .map_err(|e| Error::io(format!("host_path {}: cannot stat", host_path.display()), e))?;
    let owner = owner_ids(m, &opts.owner, bounds)?;
    let mut report = |p: Progress| {
        if let Some(progress) = progress.as_mut() {
            progress(p);
        }
    };

    if !meta.is_dir() {
        let file = open_regular_file(host_path, Links::Follow)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut p = Progress {
            files_done: 0,
            files_total: 1,
            bytes_done: 0,
            bytes_total: size,
        };
        report(p);
        let mode = Some(opts.mode.unwrap_or(0o644));
        copy_file_in(m, &file, guest_path, mode, owner, bounds)?;
        p.files_done = 1;
        p.bytes_done = size;
        report(p);
        return Ok(());
    }

    let tree = walk(host_path, guest_path)?;
    let mut p = Progress {
        files_done: 0,
        files_total: tree.files.len() as u64,
        bytes_done: 0,
        bytes_total: tree.files.iter().map(|f| f.2).sum(),
    };
    report(p);
    let created = make_guest_dirs(m, &tree.dirs, bounds)?;
    for (host, guest, size, host_mode) in &tree.files {
        // The walk saw a regular file; should it have been swapped for
        // a link since, the open fails instead of following it.
        let file = open_regular_file(host, Links::Refuse)?;
        let mode = Some(opts.mode.unwrap_or(*host_mode));
        copy_file_in(m, &file, guest, mode, owner, bounds)?;
        p.files_done += 1;
        p.bytes_done += size;
        report(p);
    }
    match owner {
        Some(ids) => give_dirs(m, created, ids, bounds),
        None => Ok(()),
    }
}

/// [`Bottle::cp_out_within`](crate::Bottle::cp_out_within).
pub(crate) fn cp_out_within(
    m: &Machine,
    guest_path: &str,
    host_path: &Path,
    limits: &Limits,
) -> Result<()> {
    validate::cp_guest_path(guest_path)?;
    check_host_path(host_path)?;
    check_replaceable(host_path)?;
    let bounds = limits.start();
    let (temp, temp_path) = create_temp_beside(host_path)?;
    let copied = match m.host() {
        Host::Cli(smolvm) => run_cp(
            m,
            smolvm,
            &[],
            &format!("{}:{guest_path}", m.name()),
            &fd_path(&temp),
            temp.as_raw_fd(),
            &bounds,
        ),
        Host::Serve { serve, .. } => download(m, serve, guest_path, &temp, &bounds),
    }
    .map_err(|e| bounds.explain(&format!("copying out of '{}'", m.name()), e));
    // Replacing a file keeps its permissions, as writing into it would
    // (set after smolvm, which may set its own on the file it wrote).
    let kept_mode = fs::symlink_metadata(host_path)
        .ok()
        .filter(|old| old.is_file())
        // Not setuid, setgid or sticky: the content is the guest's now.
        .map(|old| fs::Permissions::from_mode(old.mode() & 0o777));
    let result = copied
        .and_then(|()| match kept_mode {
            Some(mode) => temp.set_permissions(mode).map_err(|e| {
                Error::io(
                    format!("host_path {}: cannot keep its mode", host_path.display()),
                    e,
                )
            }),
            None => Ok(()),
        })
        .map(|()| temp_path);
    drop(temp);
    // On any failure, dropping the temporary path removes only our own
    // file: nothing the caller had is lost.
    result?.persist(host_path).map_err(|e| {
        Error::io(
            format!("host_path {}: cannot replace", host_path.display()),
            e.error,
        )
    })
}

/// Copies one open host file to `guest_path`, a path already checked.
fn copy_file_in(
    m: &Machine,
    file: &File,
    guest_path: &str,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    bounds: &Bounds,
) -> Result<()> {
    let smolvm = match m.host() {
        Host::Cli(smolvm) => smolvm,
        Host::Serve { serve, .. } => {
            return upload(m, serve, file, guest_path, mode, owner, bounds)
        }
    };
    let mut flags = Vec::new();
    if let Some(mode) = mode {
        flags.extend(["--mode".to_owned(), format!("{mode:o}")]);
    }
    if let Some((uid, gid)) = owner {
        flags.extend([
            "--uid".to_owned(),
            uid.to_string(),
            "--gid".to_owned(),
            gid.to_string(),
        ]);
    }
    run_cp(
        m,
        smolvm,
        &flags,
        &fd_path(file),
        &format!("{}:{guest_path}", m.name()),
        file.as_raw_fd(),
        bounds,
    )
}

/// `machine cp [FLAGS] -- SRC DST`, with `fd` passed on to smolvm: the
/// one descriptor it gets beyond its stdio.
fn run_cp(
    m: &Machine,
    smolvm: &Smolvm,
    flags: &[String],
    src: &str,
    dst: &str,
    fd: RawFd,
    bounds: &Bounds,
) -> Result<()> {
    let mut cmd = smolvm.command(smolvm::cp_args(flags, src, dst));
    let io = Io {
        pass_fd: Some(fd),
        ..Io::within(bounds)
    };
    let out = smolvm.capture_with(&mut cmd, io)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(m.failed("cp", &smolvm::failure_message(&out)))
    }
}

/// The largest piece of a file uploaded at once: serve takes at most
/// 100 MiB per upload, and holds each whole in memory.
const UPLOAD_PART: u64 = 64 << 20;

/// Copies one open host file in through serve, whose uploads take no mode
/// or owner and may be too small for the file: its parts go into a new
/// root-only directory, where one root command joins them, gives the file
/// its mode and owner, and moves it into place (creating the parents, as
/// smolvm's copy does). Until then no guest user can read it.
fn upload(
    m: &Machine,
    serve: &Serve,
    file: &File,
    guest_path: &str,
    mode: Option<u32>,
    owner: Option<(u32, u32)>,
    bounds: &Bounds,
) -> Result<()> {
    let dir = format!("/tmp/.bottle-copy-{}", random_hex());
    let mkdir = ["mkdir", "-m", "700", "--", &dir].map(str::to_owned);
    check_root(m, serve, &mkdir, "creating a spool directory", bounds)?;
    let sent = send_parts(m, serve, file, &dir, bounds);
    let finish = r#"d=$1 t=$2
if [ -e "$d/p.000001" ]; then cat "$d"/p.* >"$d/f"; else mv -- "$d/p.000000" "$d/f"; fi &&
chmod -- "$3" "$d/f" && { [ -z "$4" ] || chown -- "$4" "$d/f"; } &&
mkdir -p -- "$(dirname -- "$t")" && mv -fT -- "$d/f" "$t"; s=$?
rm -rf -- "$d"; exit $s"#;
    let argv: Vec<String> = match sent {
        Ok(()) => vec![
            "/bin/sh".into(),
            "-c".into(),
            finish.into(),
            "bottle-copy".into(),
            dir,
            guest_path.into(),
            format!("{:o}", mode.unwrap_or(0o644)),
            owner.map_or(String::new(), |(u, g)| format!("{u}:{g}")),
        ],
        Err(e) => {
            let rm = ["rm", "-rf", "--", &dir].map(str::to_owned);
            let _ = m.served_command(serve, "cp", &rm, &cleanup_bounds());
            return Err(e);
        }
    };
    check_root(m, serve, &argv, "putting the file in place", bounds)
}

/// Sends `file` to `dir/p.NNNNNN`, one part at a time.
fn send_parts(m: &Machine, serve: &Serve, file: &File, dir: &str, bounds: &Bounds) -> Result<()> {
    use std::io::Read;
    let mut part = Vec::new();
    for i in 0.. {
        part.clear();
        file.take(UPLOAD_PART)
            .read_to_end(&mut part)
            .map_err(|e| Error::io("reading the host file", e))?;
        if i > 0 && part.is_empty() {
            return Ok(());
        }
        let path = format!("{dir}/p.{i:06}");
        m.served(serve, "cp", bounds, || {
            outcome(serve.upload(m.name(), &path, &part, bounds))
        })?;
        if (part.len() as u64) < UPLOAD_PART {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads `guest_path` through serve into `temp`.
fn download(
    m: &Machine,
    serve: &Serve,
    guest_path: &str,
    mut temp: &File,
    bounds: &Bounds,
) -> Result<()> {
    use std::io::Write;
    let data = m.served(serve, "cp", bounds, || {
        outcome(serve.download(m.name(), guest_path, bounds))
    })?;
    temp.write_all(&data)
        .map_err(|e| Error::io("writing the host file", e))
}

/// A root command of a copy through serve that must succeed.
fn check_root(
    m: &Machine,
    serve: &Serve,
    argv: &[String],
    what: &str,
    bounds: &Bounds,
) -> Result<()> {
    let reply = m.served_command(serve, "cp", argv, bounds)?;
    if reply.exit_code == 0 {
        return Ok(());
    }
    Err(m.failed(
        "cp",
        &format!(
            "{what} failed (exit status {}): {}",
            reply.exit_code,
            String::from_utf8_lossy(&reply.stderr).trim()
        ),
    ))
}

/// The bounds of a cleanup after a failure: a few seconds of its own.
fn cleanup_bounds() -> Bounds {
    Bounds {
        deadline: Some(std::time::Instant::now() + STOP_GRACE),
        timeout: Some(STOP_GRACE),
        cancel: None,
    }
}

/// The numeric ids for `owner`; `None` leaves smolvm's default (root).
fn owner_ids(m: &Machine, owner: &Owner, bounds: &Bounds) -> Result<Option<(u32, u32)>> {
    let user = match owner {
        Owner::Root => return Ok(None),
        Owner::Ids { uid, gid } => {
            validate::owner_ids(*uid, *gid)?;
            return Ok(Some((*uid, *gid)));
        }
        Owner::User(user) => user,
    };
    validate::user(user)?;
    let root = ExecOptions {
        user: Some("root".into()),
        cancel: bounds.cancel.clone(),
        deadline: bounds.deadline,
        ..ExecOptions::default()
    };
    let out = m.exec_with(
        &format!("id -u -- {user} && id -g -- {user}"),
        &root,
        Default::default(),
        Default::default(),
    )?;
    // The last two lines: root's login profile may print before them.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ids = text.lines().rev().map(|l| l.trim().parse::<u32>());
    match (out.exit_code, ids.next(), ids.next()) {
        (0, Some(Ok(gid)), Some(Ok(uid))) => Ok(Some((uid, gid))),
        _ => Err(Error::invalid(
            "user",
            format!(
                "no user {user:?} in the guest: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        )),
    }
}

/// Creates the tree's directories in the guest as root, `dirs[0]` with
/// its parents and the others one level at a time, and returns the ones
/// it created, NUL-separated. A symbolic link where a directory is
/// expected stops it, so a guest user who can write there cannot point
/// the root-run `mkdir` elsewhere. The directories stay root's until the
/// files are in (see [`give_dirs`]). The names go through stdin,
/// NUL-separated, so none is parsed by a shell and no command line grows
/// with the tree.
fn make_guest_dirs(m: &Machine, dirs: &[String], bounds: &Bounds) -> Result<Vec<u8>> {
    let Some((root, subdirs)) = dirs.split_first() else {
        return Ok(Vec::new());
    };
    let refuse = "{ echo \"refusing to copy through the symbolic link $d\" >&2; exit 1; }";
    // Double quotes: this also goes inside the single-quoted `sh -c`.
    let made = r#"printf "%s\0" "$d""#;
    let script = format!(
        "d={root}\n\
         [ -L \"$d\" ] && {refuse}\n\
         if [ ! -d \"$d\" ]; then mkdir -p -- \"$d\" && {made} || exit 1; fi\n\
         xargs -0 sh -c 'for d do [ -L \"$d\" ] && {refuse}; \
         if [ ! -d \"$d\" ]; then mkdir -- \"$d\" && {made} || exit 1; fi; done' sh",
        root = shell_escape::unix::escape(root.into()),
    );
    let out = run_as_root(
        m,
        &script,
        nul_list(subdirs),
        "creating the guest directories",
        bounds,
    )?;
    Ok(out)
}

/// Gives the directories a copy created (NUL-separated) to `owner`, once
/// the files are in: until then they were root's, so no guest user could
/// swap one for a link while root wrote through it. `chown -h` never
/// follows a link.
fn give_dirs(m: &Machine, created: Vec<u8>, (uid, gid): (u32, u32), bounds: &Bounds) -> Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    let script = format!("xargs -0 chown -h -- {uid}:{gid}");
    run_as_root(
        m,
        &script,
        created,
        "giving the guest directories to their owner",
        bounds,
    )
    .map(drop)
}

/// Runs `script` as root with `stdin`, returning its stdout; a non-zero
/// exit is a failure described as `what`.
fn run_as_root(
    m: &Machine,
    script: &str,
    stdin: Vec<u8>,
    what: &str,
    bounds: &Bounds,
) -> Result<Vec<u8>> {
    let opts = ExecOptions {
        user: Some("root".into()),
        stdin: Some(stdin),
        cancel: bounds.cancel.clone(),
        deadline: bounds.deadline,
        ..ExecOptions::default()
    };
    let out = m.exec_with(script, &opts, Default::default(), Default::default())?;
    if out.exit_code == 0 {
        Ok(out.stdout)
    } else {
        Err(m.failed(
            "exec",
            &format!(
                "{what} failed (exit status {}): {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ))
    }
}

/// Names as a NUL-separated list, for `xargs -0`.
fn nul_list(names: &[String]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.extend_from_slice(name.as_bytes());
        list.push(0);
    }
    list
}

/// What may be at a copy's host destination: nothing, a regular file, or
/// a symbolic link (replaced, never followed). Writing a device node, a
/// FIFO or a socket would be replaced by a regular file — as root, a
/// system device node — so those are refused, as a directory is.
fn check_replaceable(path: &Path) -> Result<()> {
    // Through a link too, as ever: a link to a directory is refused.
    if path.is_dir() {
        return Err(Error::invalid(
            "host_path",
            format!("{} is a directory; name the file to write", path.display()),
        ));
    }
    // Nothing there, or nothing that can be looked at: creating the file
    // beside it says what is wrong.
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    let kind = meta.file_type();
    if kind.is_file() || kind.is_symlink() {
        return Ok(());
    }
    Err(Error::invalid(
        "host_path",
        format!(
            "{} is a device, FIFO or socket, which a copy would replace with a regular \
             file; only a regular file or a symbolic link is replaced",
            path.display()
        ),
    ))
}

fn check_host_path(path: &Path) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("host_path", "must not be empty"));
    }
    Ok(())
}

/// Every directory and file under `root`, mapped to guest paths under
/// `guest_root`, refusing what cannot be copied before anything is.
fn walk(root: &Path, guest_root: &str) -> Result<Tree> {
    let mut tree = Tree {
        dirs: vec![guest_root.to_owned()],
        files: Vec::new(),
    };
    let mut pending = vec![(
        root.to_path_buf(),
        guest_root.trim_end_matches('/').to_owned(),
    )];
    while let Some((host_dir, guest_dir)) = pending.pop() {
        let read = |e| Error::io(format!("host_path {}: cannot read", host_dir.display()), e);
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(&host_dir)
            .map_err(read)?
            .collect::<io::Result<_>>()
            .map_err(read)?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let host = entry.path();
            let file_name = entry.file_name();
            let name = utf8_name(&host, &file_name)?;
            let guest = format!("{guest_dir}/{name}");
            validate::cp_guest_path(&guest)
                .map_err(|e| Error::invalid("host_path", format!("{}: {e}", host.display())))?;
            let meta = entry
                .metadata()
                .map_err(|e| Error::io(format!("host_path {}: cannot stat", host.display()), e))?;
            if meta.is_dir() {
                tree.dirs.push(guest.clone());
                pending.push((host, guest));
            } else if meta.is_file() {
                // Without an explicit mode, a file keeps its permission bits
                // but never setuid, setgid or sticky: copied as root, those
                // would hand every guest user a root-owned setuid file.
                tree.files
                    .push((host, guest, meta.len(), meta.mode() & 0o777));
            } else {
                return Err(Error::invalid(
                    "host_path",
                    format!(
                        "{} is {}; a directory copy takes only regular files and directories",
                        host.display(),
                        if meta.is_symlink() {
                            "a symbolic link"
                        } else {
                            "a special file"
                        }
                    ),
                ));
            }
        }
    }
    Ok(tree)
}

fn utf8_name<'a>(host: &Path, name: &'a OsStr) -> Result<&'a str> {
    name.to_str().ok_or_else(|| {
        Error::invalid(
            "host_path",
            format!(
                "{} has a name that is not UTF-8, which smolvm cannot take",
                host.display()
            ),
        )
    })
}

/// Whether opening a host file may follow a symbolic link.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Links {
    /// The caller named this path: a link to a file is what they meant.
    Follow,
    /// An entry of a walked tree, already seen not to be a link.
    Refuse,
}

/// Opens `path` for reading and checks it is a regular file. O_NONBLOCK keeps
/// a FIFO from blocking the open; it has no effect on a regular file.
fn open_regular_file(path: &Path, links: Links) -> Result<File> {
    let shown = path.display();
    let nofollow = if links == Links::Refuse {
        libc::O_NOFOLLOW
    } else {
        0
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | nofollow)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if links == Links::Refuse => Error::invalid(
                "host_path",
                format!("{shown} is a symbolic link; a directory copy takes only regular files and directories"),
            ),
            _ => Error::io(format!("host_path {shown}: cannot open"), e),
        })?;
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
    above_stdio(file, path)
}

/// A new file beside `path`, for writing, under a name no one else uses
/// (`.NAME.bottle-RANDOM`), created with O_EXCL so that nothing already
/// there, a symbolic link least of all, is opened; its mode is 0666 less
/// the umask, as a file the caller created would have. The file is removed
/// when the returned path is dropped, unless it was persisted over `path`.
fn create_temp_beside(path: &Path) -> Result<(File, TempPath)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or(OsStr::new("file")));
    prefix.push(".bottle-");
    let temp = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(16)
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| {
            Error::io(
                format!(
                    "host_path {}: cannot create a file beside it",
                    path.display()
                ),
                e,
            )
        })?;
    let (file, temp_path) = temp.into_parts();
    Ok((above_stdio(file, &temp_path)?, temp_path))
}

/// The path smolvm opens to reach `file`.
fn fd_path(file: &File) -> String {
    format!("/dev/fd/{}", file.as_raw_fd())
}

/// Keeps a descriptor that is handed to smolvm above 0, 1 and 2, which the
/// child's own stdio replaces (a host that closed its stdin gets fd 0 back
/// from open).
fn above_stdio(file: File, path: &Path) -> Result<File> {
    crate::capture::above_stdio(OwnedFd::from(file))
        .map(File::from)
        .map_err(|e| {
            Error::io(
                format!("host_path {}: cannot duplicate descriptor", path.display()),
                e,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_maps_a_tree_and_refuses_links() {
        let root = std::env::temp_dir().join(format!("bottle-walk-{}", std::process::id()));
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("top.txt"), "1").unwrap();
        fs::write(root.join("a/b/deep.txt"), "22").unwrap();
        let tree = walk(&root, "/g/").unwrap();
        assert_eq!(tree.dirs, ["/g/", "/g/a", "/g/a/b"]);
        let files: Vec<(&str, u64)> = tree.files.iter().map(|f| (f.1.as_str(), f.2)).collect();
        assert_eq!(files, [("/g/top.txt", 1), ("/g/a/b/deep.txt", 2)]);

        std::os::unix::fs::symlink("/etc/passwd", root.join("a/link")).unwrap();
        let e = walk(&root, "/g").err().unwrap().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        fs::remove_file(root.join("a/link")).unwrap();
        fs::write(root.join("a/x:y"), "").unwrap();
        let e = walk(&root, "/g").err().unwrap().to_string();
        assert!(e.contains("contains ':'"), "{e}");
        fs::remove_dir_all(&root).unwrap();
    }
}
