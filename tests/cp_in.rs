//! bottle_cp_in: a host file reaches the guest, byte for byte, and only the
//! file named.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, Bottle, Machine};

/// A private host directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("bottle-cp-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &[u8], contents: &[u8]) -> PathBuf {
        let path = self.0.join(std::ffi::OsStr::from_bytes(name));
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

#[test]
fn a_file_reaches_the_guest_only_through_cp_in() {
    let m = Machine::new("cp");
    let b = m.open();
    let dir = TempDir::new("basic");
    let contents: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let host = dir.file(b"payload.bin", &contents);

    assert_eq!(
        b.exec("test -e /home/node/payload.bin", None)
            .unwrap()
            .exit_code,
        1
    );
    b.cp_in(path_bytes(&host), "/home/node/payload.bin")
        .unwrap();
    let r = b.exec("cat /home/node/payload.bin", None).unwrap();
    assert_eq!(r.stdout, contents);
    assert_eq!(
        b.sh("stat -c '%U:%G %a' /home/node/payload.bin"),
        "root:root 644\n"
    );
    // Replacing an existing file.
    let small = dir.file(b"small", b"v2");
    b.cp_in(path_bytes(&small), "/home/node/payload.bin")
        .unwrap();
    assert_eq!(b.sh("cat /home/node/payload.bin"), "v2");
}

#[test]
fn host_paths_smolvm_would_misread_are_copied() {
    let m = Machine::new("odd");
    let b = m.open();
    let dir = TempDir::new("odd");
    // `:` would make smolvm read the source as MACHINE:PATH.
    let colon = dir.file(format!("{}:etc:passwd", m.name).as_bytes(), b"colon");
    b.cp_in(path_bytes(&colon), "/tmp/colon").unwrap();
    assert_eq!(b.sh("cat /tmp/colon"), "colon");
    // Not UTF-8: fine, smolvm never sees the path.
    let latin1 = dir.file(b"caf\xe9 -x", b"latin1");
    b.cp_in(path_bytes(&latin1), "/tmp/latin1").unwrap();
    assert_eq!(b.sh("cat /tmp/latin1"), "latin1");
    // A relative path that starts with `-` would be an option of smolvm.
    let dash = format!("-bottle-cp-{}", std::process::id());
    std::fs::write(&dash, b"dash").unwrap();
    let copied = b.cp_in(dash.as_bytes(), "/tmp/dash");
    std::fs::remove_file(&dash).unwrap();
    copied.unwrap();
    assert_eq!(b.sh("cat /tmp/dash"), "dash");
    // Guest paths with spaces and quotes are fine.
    b.cp_in(path_bytes(&colon), "/tmp/a b 'c'").unwrap();
    assert_eq!(b.sh("cat \"/tmp/a b 'c'\""), "colon");
}

#[test]
fn what_cannot_be_copied_is_refused() {
    let m = Machine::new("refuse");
    let b = m.open();
    let dir = TempDir::new("refuse");
    assert_fails(
        b.cp_in(path_bytes(&dir.0), "/tmp/x"),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "is a directory",
    );
    let missing = dir.0.join("missing");
    assert_fails(
        b.cp_in(path_bytes(&missing), "/tmp/x"),
        BOTTLE_ERR_IO,
        "cannot open",
    );
    // A FIFO must be refused without blocking on its open.
    let fifo = dir.0.join("fifo");
    let c = std::ffi::CString::new(path_bytes(&fifo)).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_fails(
        b.cp_in(path_bytes(&fifo), "/tmp/x"),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "not a regular file",
    );

    let ok = dir.file(b"ok", b"ok");
    assert_fails(
        b.cp_in(path_bytes(&ok), "tmp/x"),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "guest_path: ",
    );
    assert_fails(
        b.cp_in(path_bytes(&ok), "/tmp/a:b"),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "contains ':'",
    );
    // Nothing of the refused copies reached the guest.
    assert_eq!(b.exec("ls /tmp", Some("root")).unwrap().stdout_str(), "");
    // A missing guest directory is no refusal: smolvm's agent creates it.
    b.cp_in(path_bytes(&ok), "/no/such/dir/x").unwrap();
    let copied = b.exec("cat /no/such/dir/x", Some("root")).unwrap();
    assert_eq!(copied.stdout_str(), "ok");
}

#[test]
fn unknown_and_stopped_machines_are_smolvms_failures() {
    let dir = TempDir::new("machines");
    let ok = dir.file(b"ok", b"ok");
    let _ = common::standin();
    let b = Bottle::open("no-such-machine-cp", None).unwrap();
    assert_fails(
        b.cp_in(path_bytes(&ok), "/tmp/x"),
        BOTTLE_ERR_SMOLVM,
        &common::not_found("no-such-machine-cp"),
    );
    let m = Machine::new("stopped");
    let b = m.open();
    m.stop();
    assert_fails(
        b.cp_in(path_bytes(&ok), "/tmp/x"),
        BOTTLE_ERR_SMOLVM,
        "is not running",
    );
}
