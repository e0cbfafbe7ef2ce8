//! Every entry point with bad input: the documented status, a message that
//! names the argument, and nothing run.

mod common;

use std::ffi::c_char;
use std::ptr::{null, null_mut};

use ::bottle::ffi::bottle::*;
use ::bottle::ffi::exec_result::{bottle_exec_result, bottle_exec_result_free};
use ::bottle::ffi::status::bottle_last_error;
use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, check, cstr, not_utf8, Bottle, Machine};

#[test]
fn last_error_is_null_until_a_call_fails_on_this_thread() {
    std::thread::spawn(|| {
        assert!(bottle_last_error().is_null());
        let _ = Bottle::open("", None);
        assert!(!bottle_last_error().is_null());
    })
    .join()
    .unwrap();
}

#[test]
fn open_rejects_bad_arguments() {
    let _ = common::standin();
    let mut out = 1 as *mut bottle;
    let name = cstr("ok");
    let s = unsafe { bottle_open(null(), null(), &mut out) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "machine_name: must not be NULL",
    );
    assert!(out.is_null(), "out is NULL on failure");
    let s = unsafe { bottle_open(name.as_ptr(), null(), null_mut()) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "out: must not be NULL",
    );
    let s = unsafe { bottle_open(not_utf8(), null(), &mut out) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "machine_name: is not valid UTF-8",
    );
    let s = unsafe { bottle_open(name.as_ptr(), not_utf8(), &mut out) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "prompt_path: is not valid UTF-8",
    );

    for bad in [
        "",
        "-x",
        "--name",
        "a b",
        "a:b",
        "..",
        "../x",
        "a/b",
        "a;touch /tmp/p",
        "$(id)",
        "a-",
        "a--b",
        "é",
        &"n".repeat(129),
    ] {
        assert_fails(
            Bottle::open(bad, None),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "machine_name: ",
        );
    }
    for bad in [
        "",
        "relative/prompt.md",
        "-p",
        &format!("/{}", "p".repeat(4096)),
    ] {
        assert_fails(
            Bottle::open("ok", Some(bad)),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "prompt_path: ",
        );
    }
}

#[test]
fn exec_rejects_bad_arguments_and_runs_nothing() {
    let m = Machine::new("badexec");
    let b = m.open();
    let canary = m.rootfs().join("tmp/canary");
    let touch = cstr("touch /tmp/canary");

    let mut r = bottle_exec_result {
        exit_code: 5,
        stdout_data: 1 as *mut u8,
        stdout_len: 1,
        stderr_data: 1 as *mut u8,
        stderr_len: 1,
    };
    let s = unsafe { bottle_exec(null(), touch.as_ptr(), null(), &mut r) };
    assert_fails(check(s), BOTTLE_ERR_INVALID_ARGUMENT, "b: must not be NULL");
    assert!(r.stdout_data.is_null() && r.stderr_data.is_null() && r.exit_code == 0);
    let s = unsafe { bottle_exec(b.0, touch.as_ptr(), null(), null_mut()) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "out: must not be NULL",
    );
    assert_fails(
        b.exec_raw(null(), null()),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "script: must not be NULL",
    );
    assert_fails(
        b.exec_raw(not_utf8(), null()),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "script: is not valid UTF-8",
    );
    assert_fails(
        b.exec_raw(touch.as_ptr(), not_utf8()),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "user: is not valid UTF-8",
    );
    for user in [
        "",
        "-c",
        "--session-command=touch /tmp/canary",
        "-",
        "..",
        "node;touch /tmp/canary",
        "no de",
        "a:b",
        "$(touch /tmp/canary)",
        "1node",
        "ü",
        &"u".repeat(33),
    ] {
        assert_fails(
            b.exec("touch /tmp/canary", Some(user)),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "user: ",
        );
    }
    let huge = format!("touch /tmp/canary #{}", "x".repeat(131072));
    assert_fails(
        b.exec(&huge, None),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "script: the script is",
    );
    assert!(!canary.exists(), "a rejected call must run nothing");
    b.exec("touch /tmp/canary", None).unwrap();
    assert!(canary.exists(), "the canary check can fail");
}

#[test]
fn exec_claude_rejects_bad_arguments_and_runs_nothing() {
    let m = Machine::new("badclaude");
    let b = m.open();
    let mut code = 9;
    let one = [cstr("x")];
    let argv: Vec<*const c_char> = one.iter().map(|a| a.as_ptr()).collect();
    let s = unsafe { bottle_exec_claude(null(), argv.as_ptr(), 1, false, &mut code) };
    assert_fails(check(s), BOTTLE_ERR_INVALID_ARGUMENT, "b: must not be NULL");
    assert_eq!(code, 0);
    let s = unsafe { bottle_exec_claude(b.0, argv.as_ptr(), 1, false, null_mut()) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "exit_code: must not be NULL",
    );
    let s = unsafe { bottle_exec_claude(b.0, null(), 2, false, &mut code) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "argv: must not be NULL when argc is 2",
    );
    let with_null = [argv[0], null()];
    let s = unsafe { bottle_exec_claude(b.0, with_null.as_ptr(), 2, false, &mut code) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "argv[1]: must not be NULL",
    );
    let with_bad = [argv[0], argv[0], not_utf8()];
    let s = unsafe { bottle_exec_claude(b.0, with_bad.as_ptr(), 3, false, &mut code) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "argv[2]: is not valid UTF-8",
    );
    let huge = "y".repeat(131072);
    assert_fails(
        b.exec_claude(&[&huge], false),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "argv: ",
    );
    let ran = b.exec("test -e ~/.claude-standin", None).unwrap();
    assert_eq!(ran.exit_code, 1, "claude must not have run");
    // NULL argv with argc 0 is a valid empty argv.
    let s = unsafe { bottle_exec_claude(b.0, null(), 0, false, &mut code) };
    check(s).unwrap();
}

#[test]
fn cp_in_rejects_bad_arguments() {
    let m = Machine::new("badcp");
    let b = m.open();
    let host = cstr("/etc/hostname");
    let guest = cstr("/tmp/x");
    let s = unsafe { bottle_cp_in(null(), host.as_ptr(), guest.as_ptr()) };
    assert_fails(check(s), BOTTLE_ERR_INVALID_ARGUMENT, "b: must not be NULL");
    let s = unsafe { bottle_cp_in(b.0, null(), guest.as_ptr()) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "host_path: must not be NULL",
    );
    let s = unsafe { bottle_cp_in(b.0, host.as_ptr(), null()) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "guest_path: must not be NULL",
    );
    let s = unsafe { bottle_cp_in(b.0, host.as_ptr(), not_utf8()) };
    assert_fails(
        check(s),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "guest_path: is not valid UTF-8",
    );
    assert_fails(
        b.cp_in(b"", "/tmp/x"),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "host_path: must not be empty",
    );
    for bad in [
        "",
        "tmp/x",
        "-x",
        "x:/tmp",
        "/tmp/a:b",
        &format!("/{}", "g".repeat(4096)),
    ] {
        assert_fails(
            b.cp_in(b"/etc/hostname", bad),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "guest_path: ",
        );
    }
    assert_eq!(b.exec("ls -A /tmp", Some("root")).unwrap().stdout_str(), "");
}

#[test]
fn close_and_free_accept_null_and_zeroed_results() {
    unsafe {
        bottle_close(null_mut());
        bottle_exec_result_free(null_mut());
        let mut zero = bottle_exec_result {
            exit_code: 0,
            stdout_data: null_mut(),
            stdout_len: 0,
            stderr_data: null_mut(),
            stderr_len: 0,
        };
        bottle_exec_result_free(&mut zero);
        bottle_exec_result_free(&mut zero);
    }
}
