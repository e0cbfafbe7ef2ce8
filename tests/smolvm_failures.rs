//! Telling smolvm's own failures from the script's by what smolvm says,
//! with smolvms that print what the real smolvm 1.9 prints. This file is its
//! own test binary with one test, because it changes `BOTTLE_SMOLVM`, which
//! other tests read.

mod common;

use std::path::Path;

use ::bottle::ffi::bottle::bottle_close_checked;
use ::bottle::ffi::launch::{
    bottle_launch, bottle_launch_options_free, bottle_launch_options_new,
    bottle_launch_options_set_name, bottle_launch_options_set_timeout_ms,
};
use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, check, Bottle};

/// A smolvm that answers `machine exec` with `body` (a shell script) and
/// `machine status` with a running machine.
fn fake_smolvm(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\n\
         case \"$2\" in\n\
         status) echo '{{\"name\":\"m\",\"state\":\"running\",\"labels\":{{}}}}'; exit 0;;\n\
         esac\n\
         {body}\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

#[test]
fn smolvms_failures_are_told_by_its_words_on_a_running_machine() {
    let dir = std::env::temp_dir().join(format!("bottle-failures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let open = |body: &str, name: &str| {
        std::env::set_var("BOTTLE_SMOLVM", fake_smolvm(&dir, name, body));
        Bottle::open("m", None).unwrap()
    };

    // The agent cannot spawn the command: smolvm's failure, although the
    // machine runs.
    let b = open(
        "echo 'Error: agent operation failed: vm exec interactive: failed to spawn command: \
         No such file or directory (os error 2)' >&2; exit 1",
        "spawn",
    );
    assert_fails(
        b.exec("true", None),
        BOTTLE_ERR_SMOLVM,
        "agent operation failed: vm exec interactive: failed to spawn command",
    );

    // The connection is lost after the guest wrote: smolvm's message is
    // last, after the guest's output.
    let b = open(
        "printf 'partial'; echo 'the guest said' >&2; \
         echo 'Error: agent operation failed: vm exec interactive: connection to VM lost' >&2; \
         exit 1",
        "lost",
    );
    assert_fails(
        b.exec("true", None),
        BOTTLE_ERR_SMOLVM,
        "connection to VM lost",
    );

    // The agent's buffered-output cap, should a smolvm apply it.
    let b = open(
        "echo 'Error: agent operation failed: vm exec: command output exceeded 11534336 bytes \
         and was truncated. Use streaming exec (exec_stream / execStream) for large output.' >&2; \
         exit 1",
        "cap",
    );
    assert_fails(
        b.exec("true", None),
        BOTTLE_ERR_SMOLVM,
        "exceeded 11534336 bytes",
    );

    // Exit 124 with nothing said is the script's own status: the library
    // keeps the time itself.
    let b = open("echo out; exit 124", "exit124");
    let r = b.exec("true", None).unwrap();
    assert_eq!(r.exit_code, 124);
    assert_eq!(r.stdout_str(), "out\n");

    // A line that merely looks like smolvm's, in words smolvm does not use,
    // on a running machine, is the script's.
    let b = open("echo 'Error: file not found' >&2; exit 1", "lookalike");
    let r = b.exec("true", None).unwrap();
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.stderr, b"Error: file not found\n");

    // A status that itself fails, not saying the machine is gone, decides
    // nothing: a lone `Error:` line stays the script's.
    let status_fails = dir.join("status-fails");
    std::fs::write(
        &status_fails,
        "#!/bin/sh\n[ \"$2\" = exec ] && { echo 'Error: x' >&2; exit 1; }\n\
         echo 'Error: io operation failed: Broken pipe (os error 32)' >&2; exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &status_fails,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::env::set_var("BOTTLE_SMOLVM", &status_fails);
    let b = Bottle::open("m", None).unwrap();
    let r = b.exec("true", None).unwrap();
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.stderr, b"Error: x\n");

    // A locked machine database (several smolvms changing it at once) is
    // waited out for bookkeeping: create fails twice, then works.
    let tries = dir.join("creates");
    let locked = fake_smolvm(
        &dir,
        "locked",
        &format!(
            "if [ \"$2\" = create ]; then echo x >> '{tries}'; \
               if [ $(wc -l < '{tries}') -le 2 ]; then \
                 echo \"Error: database operation failed: reserve vm 'x': database is locked\" >&2; \
                 exit 1; fi; fi; exit 0",
            tries = tries.display()
        ),
    );
    std::env::set_var("BOTTLE_SMOLVM", &locked);
    let mut launched = std::ptr::null_mut();
    check(unsafe { bottle_launch(std::ptr::null(), &mut launched) }).unwrap();
    assert_eq!(std::fs::read_to_string(&tries).unwrap(), "x\nx\nx\n");
    check(unsafe { bottle_close_checked(launched) }).unwrap();

    // A launch stopped during create does not delete a machine of that
    // name that is not labelled as this process's: it may be another's.
    let deletes = dir.join("deletes");
    let slow_create = fake_smolvm(
        &dir,
        "slow-create",
        &format!(
            "case \"$2\" in \
               create) exec sleep 60;; \
               ls) echo '[{{\"name\":\"taken\",\"labels\":{{\"owner\":\"another\"}}}}]';; \
               delete) echo \"$@\" >> '{deletes}';; \
             esac; exit 0",
            deletes = deletes.display()
        ),
    );
    std::env::set_var("BOTTLE_SMOLVM", &slow_create);
    let mut opts = std::ptr::null_mut();
    check(unsafe { bottle_launch_options_new(&mut opts) }).unwrap();
    let name = std::ffi::CString::new("taken").unwrap();
    check(unsafe { bottle_launch_options_set_name(opts, name.as_ptr()) }).unwrap();
    check(unsafe { bottle_launch_options_set_timeout_ms(opts, 300) }).unwrap();
    let mut launched = std::ptr::null_mut();
    let stopped = unsafe { bottle_launch(opts, &mut launched) };
    unsafe { bottle_launch_options_free(opts) };
    assert_eq!(stopped, BOTTLE_ERR_TIMEOUT);
    assert!(
        !deletes.exists(),
        "deleted a machine that was not this launch's"
    );

    std::fs::remove_dir_all(&dir).unwrap();
}
