//! bottle_exec against the stand-in smolvm: who runs, what arrives, what
//! comes back.

mod common;

use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, tricky, Bottle, Machine};

#[test]
fn runs_as_node_in_a_login_shell() {
    let m = Machine::new("login");
    let b = m.open();
    let out = b.sh("id -un; echo \"$HOME\"; echo \"$USER\"; pwd; echo \"$PATH\"");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["node", "/home/node", "node", "/home/node"]);
    assert!(
        lines[4].split(':').any(|d| d == "/usr/bin"),
        "PATH {}",
        lines[4]
    );
}

#[test]
fn user_selects_who_runs() {
    let m = Machine::new("user");
    let b = m.open();
    assert_eq!(
        b.exec("id -un", Some("root")).unwrap().stdout_str(),
        "root\n"
    );
    assert_eq!(
        b.exec("id -un", Some("node")).unwrap().stdout_str(),
        "node\n"
    );
    let r = b.exec("echo hi", Some("nobody-here")).unwrap();
    assert_ne!(r.exit_code, 0, "runuser fails for an unknown user: {r:?}");
}

#[test]
fn exit_statuses_and_signals_are_reported() {
    let m = Machine::new("status");
    let b = m.open();
    for (script, code) in [
        ("true", 0),
        ("exit 1", 1),
        ("exit 255", 255),
        ("exit 256", 0),
        ("kill -KILL $$", 128 + 9),
        ("kill -TERM $$", 128 + 15),
    ] {
        assert_eq!(b.exec(script, None).unwrap().exit_code, code, "{script}");
    }
}

#[test]
fn a_script_that_looks_like_a_smolvm_failure_is_still_the_scripts() {
    let m = Machine::new("lookalike");
    let b = m.open();
    let r = b
        .exec(
            &format!("echo 'Error: vm not found: {}' >&2; exit 1", m.name),
            None,
        )
        .unwrap();
    assert_eq!(r.exit_code, 1);
    assert_eq!(
        r.stderr,
        format!("Error: vm not found: {}\n", m.name).as_bytes()
    );
    // A guest tool's own usage error is the script's exit, not smolvm's.
    let usage = "printf 'error: bad flag\\n\\nUsage: rg [OPTIONS]\\n\\n\
                 For more information, try '\\''--help'\\''.\\n' >&2; exit 2";
    let r = b.exec(usage, None).unwrap();
    assert_eq!(r.exit_code, 2);
    assert!(
        r.stderr.starts_with(b"error: bad flag\n\nUsage: rg"),
        "{r:?}"
    );
}

#[test]
fn script_text_reaches_the_guest_shell_unchanged() {
    let m = Machine::new("script");
    let b = m.open();
    for s in tricky() {
        // A quoted here-document prints its body without any expansion, so
        // the output is the script's text as the guest shell received it.
        let script = format!("cat <<'BOTTLE_END'\n{s}\nBOTTLE_END");
        let r = b.exec(&script, None).unwrap();
        assert_eq!(r.exit_code, 0, "{s:?}: {r:?}");
        assert_eq!(r.stdout, format!("{s}\n").as_bytes(), "{s:?}");
    }
    // And shell code is run as shell code: expansions happen in the guest.
    assert_eq!(b.sh("x='a  b'; printf '[%s]' $x \"$x\""), "[a][b][a  b]");
    assert_eq!(b.sh(""), "");
}

#[test]
fn output_is_binary_safe() {
    let m = Machine::new("binary");
    let b = m.open();
    let r = b
        .exec(
            "python3 -c 'import sys; b = bytes(range(256)) * 3; \
             sys.stdout.buffer.write(b); sys.stderr.buffer.write(b[::-1])'",
            None,
        )
        .unwrap();
    let expected: Vec<u8> = (0..=255u8).cycle().take(768).collect();
    assert_eq!(r.stdout, expected);
    assert_eq!(
        r.stderr,
        expected.iter().rev().copied().collect::<Vec<u8>>()
    );
}

#[test]
fn large_stdout_and_stderr_at_the_same_time() {
    const SIZE: usize = 64 << 20;
    let m = Machine::new("large");
    let b = m.open();
    // 1 MiB blocks to stdout and stderr in turn: both pipes fill together,
    // and a reader that drained only one would deadlock.
    let script = "for i in $(seq 64); do head -c 1048576 /dev/zero; \
                  head -c 1048576 /dev/zero | tr '\\0' e >&2; done";
    let r = b.exec(script, None).unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.stdout.len(), SIZE);
    assert_eq!(r.stderr.len(), SIZE);
    assert!(r.stdout.iter().all(|&c| c == 0), "stdout is all NULs");
    assert!(r.stderr.iter().all(|&c| c == b'e'), "stderr is all 'e'");
}

#[test]
fn stdin_is_empty() {
    let m = Machine::new("stdin");
    let b = m.open();
    assert_eq!(b.sh("cat; echo done"), "done\n");
}

#[test]
fn unknown_machine_is_smolvms_failure() {
    let _ = common::standin();
    let b = Bottle::open("no-such-machine-here", None).unwrap();
    assert_fails(
        b.exec("true", None),
        BOTTLE_ERR_SMOLVM,
        &common::not_found("no-such-machine-here"),
    );
    assert_fails(
        b.exec("exit 1", None),
        BOTTLE_ERR_SMOLVM,
        &common::not_found("no-such-machine-here"),
    );
}

#[test]
fn stopped_machine_is_smolvms_failure() {
    let m = Machine::new("stopped");
    let b = m.open();
    m.stop();
    let f = b.exec("echo hi", None).unwrap_err();
    assert_eq!(f.status, BOTTLE_ERR_SMOLVM, "{}", f.message);
    assert!(f.message.contains("is not running"), "{}", f.message);
    assert!(f.message.contains(&m.name), "{}", f.message);
    m.start();
    assert_eq!(b.sh("echo back"), "back\n");
}

#[test]
fn many_threads_share_one_bottle() {
    let m = Machine::new("threads");
    let b = m.open();
    std::thread::scope(|s| {
        for t in 0..16 {
            let b = &b;
            s.spawn(move || {
                for i in 0..4 {
                    let r = b
                        .exec(&format!("echo {t}-{i}; echo e{t} >&2; exit {t}"), None)
                        .unwrap();
                    assert_eq!(r.stdout_str(), format!("{t}-{i}\n"));
                    assert_eq!(r.stderr, format!("e{t}\n").as_bytes());
                    assert_eq!(r.exit_code, t);
                }
            });
        }
    });
}
