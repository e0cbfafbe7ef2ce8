//! bottle_cp_out and bottle_cp_in_with: files both ways, modes, owners,
//! directories and progress.

mod common;

use std::ffi::{c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::null_mut;

use ::bottle::ffi::bottle::{bottle_cp_in_with, bottle_cp_out};
use ::bottle::ffi::copy_options::*;
use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, check, cstr, Bottle, CopyOpts, Failure, Machine};

/// A private host directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("bottle-copy-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn cp_out(b: &Bottle, guest: &str, host: &Path) -> Result<(), Failure> {
    check(unsafe { bottle_cp_out(b.0, cstr(guest).as_ptr(), c_path(host).as_ptr()) })
}

fn cp_in_with(b: &Bottle, host: &Path, guest: &str, o: &CopyOpts) -> Result<(), Failure> {
    check(unsafe { bottle_cp_in_with(b.0, c_path(host).as_ptr(), cstr(guest).as_ptr(), o.0) })
}

unsafe extern "C" fn record(user_data: *mut c_void, p: *const bottle_progress) {
    let seen = unsafe { &mut *(user_data as *mut Vec<bottle_progress>) };
    seen.push(unsafe { *p });
}

#[test]
fn cp_out_copies_and_replaces_whole_or_not_at_all() {
    let m = Machine::new("out");
    let b = m.open();
    let dir = Scratch::new("out");
    b.sh("head -c 3000000 /dev/urandom > /tmp/blob; printf new > /tmp/small");
    let blob = dir.0.join("blob:with colon");
    cp_out(&b, "/tmp/blob", &blob).unwrap();
    let guest_sum = b.sh("sha256sum < /tmp/blob");
    let host_sum = std::process::Command::new("sha256sum")
        .stdin(std::fs::File::open(&blob).unwrap())
        .output()
        .unwrap();
    assert_eq!(guest_sum.as_bytes(), host_sum.stdout, "the same 3 MB");

    let existing = dir.0.join("caf\u{e9}-\u{1F642}");
    std::fs::write(&existing, "old").unwrap();
    assert_fails(
        cp_out(&b, "/tmp/missing", &existing),
        BOTTLE_ERR_SMOLVM,
        "smolvm machine cp",
    );
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        b"old",
        "a failed copy leaves the file"
    );
    cp_out(&b, "/tmp/small", &existing).unwrap();
    assert_eq!(std::fs::read(&existing).unwrap(), b"new");
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary files left: {names:?}");

    assert_fails(
        cp_out(&b, "/tmp/small", &dir.0),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "is a directory",
    );
    assert_fails(
        cp_out(&b, "/tmp/small", &dir.0.join("no/such/dir/f")),
        BOTTLE_ERR_IO,
        "host_path",
    );
    assert_fails(
        cp_out(&b, "tmp/small", &blob),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "guest_path: ",
    );
    assert_fails(
        cp_out(&b, "/tmp/a:b", &blob),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "guest_path: ",
    );
}

#[test]
fn cp_in_with_sets_mode_and_owner() {
    let m = Machine::new("mode");
    let b = m.open();
    let dir = Scratch::new("mode");
    let host = dir.0.join("f");
    std::fs::write(&host, "data").unwrap();
    let o = CopyOpts::new();
    unsafe {
        check(bottle_copy_options_set_mode(o.0, 0o600)).unwrap();
        check(bottle_copy_options_set_owner_ids(o.0, 1234, 4321)).unwrap();
    }
    cp_in_with(&b, &host, "/tmp/f", &o).unwrap();
    assert_eq!(
        b.exec("stat -c '%u:%g %a' /tmp/f", Some("root"))
            .unwrap()
            .stdout_str(),
        "1234:4321 600\n"
    );

    let node = CopyOpts::new();
    unsafe {
        check(bottle_copy_options_set_owner_user(
            node.0,
            cstr("node").as_ptr(),
        ))
        .unwrap()
    };
    cp_in_with(&b, &host, "/home/node/given", &node).unwrap();
    assert_eq!(
        b.sh("echo more >> ~/given && cat ~/given && stat -c %U ~/given"),
        "datamore\nnode\n"
    );

    unsafe {
        let bad = |status, needle| assert_fails(check(status), BOTTLE_ERR_INVALID_ARGUMENT, needle);
        bad(bottle_copy_options_set_mode(o.0, 0o10000), "mode: ");
        bad(
            bottle_copy_options_set_owner_user(o.0, cstr("-x").as_ptr()),
            "user: ",
        );
        bad(bottle_copy_options_set_mode(null_mut(), 0o644), "opts: ");
    }
    let ghost = CopyOpts::new();
    unsafe {
        check(bottle_copy_options_set_owner_user(
            ghost.0,
            cstr("ghost").as_ptr(),
        ))
        .unwrap()
    };
    assert_fails(
        cp_in_with(&b, &host, "/tmp/g", &ghost),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "no user \"ghost\"",
    );
}

#[test]
fn cp_in_with_copies_directories_and_reports_progress() {
    let m = Machine::new("tree");
    let b = m.open();
    let dir = Scratch::new("tree");
    let root = dir.0.join("project");
    std::fs::create_dir_all(root.join("src/deep dir")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("README"), "top").unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
    std::fs::write(root.join("src/deep dir/it's.txt"), "quoted").unwrap();
    std::fs::set_permissions(
        root.join("README"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();

    let mut seen: Vec<bottle_progress> = Vec::new();
    let o = CopyOpts::new();
    unsafe {
        check(bottle_copy_options_set_owner_user(
            o.0,
            cstr("node").as_ptr(),
        ))
        .unwrap();
        let p = &mut seen as *mut Vec<bottle_progress> as *mut c_void;
        check(bottle_copy_options_set_progress_fn(o.0, Some(record), p)).unwrap();
    }
    cp_in_with(&b, &root, "/home/node/project", &o).unwrap();
    let listing = b.sh("cd ~/project && find . | sort && cat \"src/deep dir/it's.txt\" && stat -c '%U %a' README src && touch src/new");
    assert_eq!(
        listing,
        ".\n./README\n./empty\n./src\n./src/deep dir\n./src/deep dir/it's.txt\n./src/main.rs\nquoted\
         node 640\nnode 755\n"
    );
    assert_eq!(seen.len(), 4, "before the first file and after each of 3");
    assert_eq!((seen[0].files_done, seen[0].bytes_done), (0, 0));
    let last = seen[3];
    assert_eq!((last.files_done, last.files_total), (3, 3));
    assert_eq!((last.bytes_done, last.bytes_total), (21, 21));

    std::os::unix::fs::symlink("/etc/shadow", root.join("src/link")).unwrap();
    assert_fails(
        cp_in_with(&b, &root, "/home/node/again", &o),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "is a symbolic link",
    );
    assert_eq!(
        b.exec("test -e ~/again", None).unwrap().exit_code,
        1,
        "nothing was copied"
    );
}

#[test]
fn directory_copies_never_hand_out_privileges() {
    let m = Machine::new("privs");
    let b = m.open();
    let dir = Scratch::new("privs");
    let root = dir.0.join("tree");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("tool"), "#!/bin/sh\n").unwrap();
    std::fs::write(root.join("sub/f"), "f").unwrap();
    let setuid = std::os::unix::fs::PermissionsExt::from_mode(0o4755);
    std::fs::set_permissions(root.join("tool"), setuid).unwrap();
    let node = CopyOpts::new();
    unsafe {
        check(bottle_copy_options_set_owner_user(
            node.0,
            cstr("node").as_ptr(),
        ))
        .unwrap()
    };

    // No setuid bit without an explicit mode.
    cp_in_with(&b, &root, "/home/node/t", &node).unwrap();
    assert_eq!(b.sh("stat -c %a ~/t/tool"), "755\n");

    // A link the agent planted where a directory goes is refused, and what
    // it points to is neither written into nor given away.
    b.sh("mkdir ~/p && ln -s /etc ~/p/sub");
    assert_fails(
        cp_in_with(&b, &root, "/home/node/p", &node),
        BOTTLE_ERR_SMOLVM,
        "refusing to copy through the symbolic link /home/node/p/sub",
    );
    let etc = b
        .exec("stat -c %U /etc; test -e /etc/f", Some("root"))
        .unwrap();
    assert_eq!((etc.stdout_str(), etc.exit_code), ("root\n", 1));

    // An existing directory keeps its owner.
    cp_in_with(&b, &root, "/tmp", &node).unwrap();
    assert_eq!(b.sh("stat -c %U /tmp /tmp/sub"), "root\nnode\n");
}

#[test]
fn cp_out_keeps_the_mode_of_the_file_it_replaces() {
    let m = Machine::new("keepmode");
    let b = m.open();
    let dir = Scratch::new("keepmode");
    let private = dir.0.join("private");
    std::fs::write(&private, "old").unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    b.sh("printf new > /tmp/new");
    cp_out(&b, "/tmp/new", &private).unwrap();
    let meta = std::fs::metadata(&private).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o600
    );
    assert_eq!(std::fs::read(&private).unwrap(), b"new");
}
