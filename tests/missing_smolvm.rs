//! Finding smolvm. This file is its own test binary with one test, because
//! it changes the process environment, which other tests read.

mod common;

use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, Bottle, Machine};

#[test]
fn smolvm_is_found_through_bottle_smolvm_or_path() {
    let standin = common::standin();
    let m = Machine::new("find");
    let dir = std::env::temp_dir().join(format!("bottle-find-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("smolvm");
    std::fs::copy(&standin, &copy).unwrap();

    std::env::set_var("BOTTLE_SMOLVM", "/nonexistent/smolvm");
    assert_fails(
        Bottle::open(&m.name, None),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "BOTTLE_SMOLVM=",
    );
    let not_executable = dir.join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    std::env::set_var("BOTTLE_SMOLVM", &not_executable);
    assert_fails(
        Bottle::open(&m.name, None),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "Permission denied",
    );
    std::env::set_var("BOTTLE_SMOLVM", "/tmp");
    assert_fails(
        Bottle::open(&m.name, None),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "not a regular file",
    );

    // Unset (or empty) means `smolvm` on PATH.
    let path = std::env::var_os("PATH").unwrap();
    std::env::set_var("BOTTLE_SMOLVM", "");
    std::env::set_var("PATH", "/nonexistent");
    assert_fails(
        Bottle::open(&m.name, None),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "install smolvm",
    );
    std::env::remove_var("BOTTLE_SMOLVM");
    std::env::set_var("PATH", &dir);
    let on_path = Bottle::open(&m.name, None).unwrap();
    std::env::set_var("PATH", &path);
    assert_eq!(on_path.sh("echo via PATH"), "via PATH\n");

    // smolvm vanishing after open is reported as not found, not as an I/O error.
    std::fs::remove_file(&copy).unwrap();
    assert_fails(
        on_path.exec("true", None),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "cannot start smolvm",
    );
    assert_fails(
        on_path.exec_claude(&[], false),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "cannot start smolvm",
    );
    assert_fails(
        on_path.cp_in(b"/etc/hostname", "/tmp/h"),
        BOTTLE_ERR_SMOLVM_NOT_FOUND,
        "cannot start smolvm",
    );
    std::fs::remove_file(&not_executable).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    std::env::set_var("BOTTLE_SMOLVM", &standin);
}
