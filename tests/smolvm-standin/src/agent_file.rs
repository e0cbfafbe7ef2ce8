//! File transfer for the stand-in guest agent (`machine cp`), with
//! smolvm-agent 1.9.2's behaviour in a bare VM: guest paths are made
//! absolute and may not contain `.` or `..` segments; a write creates the
//! missing parent directories, writes a staging file next to the target and
//! renames it into place, then applies the mode (default: as created,
//! 0644 under umask 022) and the owner; a read streams `DataChunk` frames.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use smolvm_protocol::{error_codes, AgentResponse};

use crate::agent::{send, Failure};

fn io_error(message: String) -> AgentResponse {
    AgentResponse::error(message, error_codes::FILE_IO_FAILED)
}

fn invalid(path: &str, reason: &str) -> AgentResponse {
    AgentResponse::error(
        format!("invalid guest path {path}: {reason}"),
        error_codes::INVALID_REQUEST,
    )
}

fn normalize(path: &str) -> Result<PathBuf, AgentResponse> {
    if path.is_empty() {
        return Err(invalid(path, "path is empty"));
    }
    let absolute = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    for component in Path::new(&absolute).components() {
        match component {
            Component::ParentDir => return Err(invalid(path, "parent traversal is not allowed")),
            Component::CurDir => return Err(invalid(path, "current-dir segments are not allowed")),
            _ => {}
        }
    }
    Ok(PathBuf::from(absolute))
}

/// A name next to the target that no other upload uses.
fn staging_path(target: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staged = format!("{name}.smolvm-upload.{}.{n}", std::process::id());
    match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join(staged),
        _ => PathBuf::from(staged),
    }
}

fn create_parent(target: &Path) -> Result<(), AgentResponse> {
    match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|e| {
                io_error(format!(
                    "failed to create directory {}: {e}",
                    parent.display()
                ))
            })
        }
        _ => Ok(()),
    }
}

/// Mode (best effort, as in smolvm-agent) and owner, after the rename.
fn finish(
    target: &Path,
    shown: &str,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> AgentResponse {
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode));
    }
    if uid.is_some() || gid.is_some() {
        if let Err(e) = std::os::unix::fs::chown(target, uid, gid) {
            return io_error(format!("failed to chown {shown}: {e}"));
        }
    }
    AgentResponse::Ok { data: None }
}

/// `FileWrite`: a whole file (up to 1 MiB) in one request.
pub fn write(
    path: &str,
    data: &[u8],
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
) -> AgentResponse {
    let target = match normalize(path) {
        Ok(target) => target,
        Err(response) => return response,
    };
    if let Err(response) = create_parent(&target) {
        return response;
    }
    let staged = staging_path(&target);
    if let Err(e) = std::fs::write(&staged, data) {
        let _ = std::fs::remove_file(&staged);
        return io_error(format!("failed to write {}: {e}", staged.display()));
    }
    if let Err(e) = std::fs::rename(&staged, &target) {
        let _ = std::fs::remove_file(&staged);
        return io_error(format!("failed to rename onto {path}: {e}"));
    }
    finish(&target, path, mode, uid, gid)
}

/// An upload in progress on one connection (`FileWriteBegin` and its
/// `FileWriteChunk`s). Dropping it before the last chunk removes the
/// staging file, so an interrupted copy leaves no partial target.
pub struct WriteSession {
    target: PathBuf,
    staged: PathBuf,
    file: std::fs::File,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    written: u64,
    total: u64,
}

impl Drop for WriteSession {
    fn drop(&mut self) {
        if !self.staged.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.staged);
        }
    }
}

pub fn begin(
    path: &str,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    total: u64,
) -> (Option<WriteSession>, AgentResponse) {
    let max = smolvm_protocol::FILE_TRANSFER_MAX_TOTAL;
    if total > max {
        let message = format!("total_size {total} exceeds maximum {max}");
        return (
            None,
            AgentResponse::error(message, error_codes::INVALID_REQUEST),
        );
    }
    let target = match normalize(path) {
        Ok(target) => target,
        Err(response) => return (None, response),
    };
    let staged = staging_path(&target);
    let opened = target
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&staged)
        });
    match opened {
        Ok(file) => (
            Some(WriteSession {
                target,
                staged,
                file,
                mode,
                uid,
                gid,
                written: 0,
                total,
            }),
            AgentResponse::Ok { data: None },
        ),
        Err(e) => (None, io_error(format!("failed to open staging file: {e}"))),
    }
}

pub fn chunk(
    session: Option<WriteSession>,
    data: &[u8],
    done: bool,
) -> (Option<WriteSession>, AgentResponse) {
    let Some(mut s) = session else {
        return (
            None,
            AgentResponse::error(
                "no FileWriteBegin issued on this connection",
                error_codes::INVALID_REQUEST,
            ),
        );
    };
    let written = s.written.saturating_add(data.len() as u64);
    if written > s.total {
        let message = format!(
            "chunk overflows declared total_size ({written} > {})",
            s.total
        );
        return (
            None,
            AgentResponse::error(message, error_codes::INVALID_REQUEST),
        );
    }
    if let Err(e) = s.file.write_all(data) {
        return (
            None,
            io_error(format!("failed to write chunk to staging file: {e}")),
        );
    }
    s.written = written;
    if !done {
        return (Some(s), AgentResponse::Ok { data: None });
    }
    if let Err(e) = s.file.sync_all() {
        return (None, io_error(format!("failed to sync staging file: {e}")));
    }
    let staged = std::mem::take(&mut s.staged);
    if let Err(e) = std::fs::rename(&staged, &s.target) {
        s.staged = staged;
        let message = format!("failed to rename onto {}: {e}", s.target.display());
        return (None, io_error(message));
    }
    let shown = s.target.display().to_string();
    (None, finish(&s.target, &shown, s.mode, s.uid, s.gid))
}

/// `FileRead`: the file as `DataChunk` frames of up to 16 MiB, the last
/// one empty with `done`.
pub fn read(stream: &mut UnixStream, path: &str) -> Result<(), Failure> {
    let target = match normalize(path) {
        Ok(target) => target,
        Err(response) => return send(stream, &response),
    };
    let mut file = match std::fs::File::open(&target) {
        Ok(file) => file,
        Err(e) => return send(stream, &io_error(format!("failed to open {path}: {e}"))),
    };
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return send(stream, &io_error(format!("not a regular file: {path}"))),
        Err(e) => return send(stream, &io_error(format!("failed to stat {path}: {e}"))),
    }
    let mut buf = vec![0u8; smolvm_protocol::LAYER_CHUNK_SIZE];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match file.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    send(stream, &io_error(format!("failed to read file: {e}")))?;
                    return Err(e.into());
                }
            }
        }
        let done = filled == 0;
        send(
            stream,
            &AgentResponse::DataChunk {
                data: buf[..filled].to_vec(),
                done,
            },
        )?;
        if done {
            return Ok(());
        }
    }
}
