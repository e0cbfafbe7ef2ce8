//! bottle_launch, bottle_close_checked and bottle_reap against the stand-in.

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use ::bottle::ffi::bottle::*;
use ::bottle::ffi::exec_options::bottle_exec_options_set_timeout_ms;
use ::bottle::ffi::launch::*;
use ::bottle::ffi::status::bottle_status::*;
use common::{
    assert_fails, assert_guest_clears, check, cstr, smolvm, Bottle, ExecOpts, LaunchOpts,
};

/// `machine status --json` of `name`, or None if smolvm does not know it.
fn status(name: &str) -> Option<serde_json::Value> {
    let out = smolvm(&["machine", "status", "--name", name, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("status prints JSON"))
}

fn name_of(b: *const bottle) -> String {
    unsafe { CStr::from_ptr(bottle_machine_name(b)) }
        .to_str()
        .unwrap()
        .to_owned()
}

fn launch(opts: &LaunchOpts) -> Result<Bottle, common::Failure> {
    let mut b = null_mut();
    check(unsafe { bottle_launch(opts.0, &mut b) }).map(|()| Bottle(b))
}

#[test]
fn launch_runs_a_labelled_machine_and_close_deletes_it() {
    let _ = common::standin();
    let mut raw = null_mut();
    check(unsafe { bottle_launch(null(), &mut raw) }).unwrap();
    let b = Bottle(raw);
    let name = name_of(b.0);
    assert!(
        name.starts_with(&format!("bottle-{}-", std::process::id())),
        "{name}"
    );
    let st = status(&name).expect("the machine exists");
    assert_eq!(st["state"], "running");
    assert_eq!(st["labels"]["libbottle"], "1");
    assert_eq!(
        st["labels"]["libbottle.pid"],
        std::process::id().to_string()
    );
    assert_eq!(b.sh("id -un"), "node\n");
    drop(b); // bottle_close
    assert!(status(&name).is_none(), "close deleted the machine");
}

/// An image machine's runtime (crun, in smolvm's guest) ends a timed-out
/// command by killing its whole tree and says so on stderr, where a bare
/// machine's agent says nothing: the timeout is the library's all the same.
#[test]
fn a_timeout_on_an_image_machine_is_a_timeout() {
    let _ = common::standin();
    let o = LaunchOpts::new();
    unsafe {
        check(bottle_launch_options_set_image(
            o.0,
            cstr("agent:latest").as_ptr(),
        ))
        .unwrap();
        // A registry image needs the network to be pulled.
        check(bottle_launch_options_set_network(o.0, true)).unwrap();
    }
    let b = launch(&o).unwrap();
    let e = ExecOpts::new();
    unsafe { check(bottle_exec_options_set_timeout_ms(e.0, 700)).unwrap() };
    assert_fails(
        b.exec_with("sleep 3561 & sleep 3562", &e),
        BOTTLE_ERR_TIMEOUT,
        "timed out after 700 ms",
    );
    assert_guest_clears(&b, "sleep 356[12]");
    let r = b.exec_with("exit 124", &e).unwrap();
    assert_eq!(r.exit_code, 124);
}

#[test]
fn launch_options_shape_the_machine() {
    let _ = common::standin();
    let host = std::env::temp_dir().join(format!("bottle-vol-{}", std::process::id()));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("shared.txt"), "from the host").unwrap();
    let name = format!("launch-opts-{}", std::process::id());
    let o = LaunchOpts::new();
    unsafe {
        check(bottle_launch_options_set_name(o.0, cstr(&name).as_ptr())).unwrap();
        check(bottle_launch_options_set_image(
            o.0,
            cstr("agent:latest").as_ptr(),
        ))
        .unwrap();
        check(bottle_launch_options_set_cpus(o.0, 2)).unwrap();
        check(bottle_launch_options_set_memory_mib(o.0, 1024)).unwrap();
        check(bottle_launch_options_set_network(o.0, true)).unwrap();
        let (h, g) = (cstr(host.to_str().unwrap()), cstr("/mnt/host"));
        check(bottle_launch_options_add_volume(
            o.0,
            h.as_ptr(),
            g.as_ptr(),
            true,
        ))
        .unwrap();
        check(bottle_launch_options_add_env(
            o.0,
            cstr("MODE").as_ptr(),
            cstr("test").as_ptr(),
        ))
        .unwrap();
        check(bottle_launch_options_set_prompt_path(
            o.0,
            cstr("/p.md").as_ptr(),
        ))
        .unwrap();
    }
    let b = launch(&o).unwrap();
    assert_eq!(name_of(b.0), name);
    let st = status(&name).unwrap();
    assert_eq!(
        (
            st["image"].as_str(),
            st["cpus"].as_u64(),
            st["memory_mib"].as_u64()
        ),
        (Some("agent:latest"), Some(2), Some(1024))
    );
    // smolvm 1.9.2's keys (docs/SMOLVM-CLI.md): `memory_mib`, `network`.
    assert_eq!(st["network"], true);
    assert_eq!(
        b.exec("cat /mnt/host/shared.txt", Some("root"))
            .unwrap()
            .stdout_str(),
        "from the host"
    );
    // The machine's environment survives the login shell of every command.
    assert_eq!(b.sh("echo \"$MODE\""), "test\n");
    let ro = b.exec("touch /mnt/host/new", Some("root")).unwrap();
    assert_ne!(ro.exit_code, 0, "the volume is read-only");
    b.exec_claude(&["x"], false).unwrap();
    assert_eq!(
        b.claude_argv()[..2],
        [b"--append-system-prompt-file".to_vec(), b"/p.md".to_vec()]
    );
    let closed = unsafe { bottle_close_checked(b.0) };
    std::mem::forget(b);
    check(closed).unwrap();
    assert!(status(&name).is_none());
    std::fs::remove_dir_all(&host).unwrap();
}

/// Memory (in MiB) that neither stand-in can give a guest: start fails.
const UNBOOTABLE_MIB: u32 = 4_000_000_000;

#[test]
fn a_failed_start_leaves_no_machine_behind() {
    let _ = common::standin();
    let name = format!("fail-start-{}", std::process::id());
    let o = LaunchOpts::new();
    unsafe {
        check(bottle_launch_options_set_name(o.0, cstr(&name).as_ptr())).unwrap();
        // More memory than any host has: no machine boots with it.
        check(bottle_launch_options_set_memory_mib(o.0, UNBOOTABLE_MIB)).unwrap();
    }
    assert_fails(launch(&o), BOTTLE_ERR_SMOLVM, "smolvm machine start on");
    assert!(status(&name).is_none(), "the created machine was deleted");
}

#[test]
fn close_checked_reports_a_failed_teardown() {
    let _ = common::standin();
    let b = launch(&LaunchOpts::new()).unwrap();
    let name = name_of(b.0);
    assert!(smolvm(&["machine", "delete", "--name", &name, "-f"])
        .status
        .success());
    let closed = unsafe { bottle_close_checked(b.0) };
    std::mem::forget(b);
    assert_fails(check(closed), BOTTLE_ERR_SMOLVM, "vm not found");
    // An opened (not launched) bottle's machine is left alone.
    let m = common::Machine::new("keep");
    let opened = m.open();
    check(unsafe { bottle_close_checked(opened.0) }).unwrap();
    std::mem::forget(opened);
    assert_eq!(status(&m.name).unwrap()["state"], "running");
    assert_fails(
        check(unsafe { bottle_close_checked(null_mut()) }),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "b: ",
    );
}

#[test]
fn reap_deletes_machines_of_dead_owners_only() {
    let _ = common::standin();
    // A process that has exited, and whose pid is not ours.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let orphan = format!("orphan-{}", std::process::id());
    let labels = [
        "libbottle=1".to_owned(),
        format!("libbottle.pid={dead_pid}"),
        "libbottle.start=12345".to_owned(),
        format!("libbottle.boot={}", boot.trim()),
        format!(
            "libbottle.pidns={}",
            std::fs::read_link("/proc/self/ns/pid").unwrap().display()
        ),
    ];
    let mut args = vec!["machine", "create", "--name", &orphan];
    for l in &labels {
        args.extend(["--label", l]);
    }
    assert!(smolvm(&args).status.success());
    let foreign = common::Machine::new("foreign");
    let ours = launch(&LaunchOpts::new()).unwrap();

    let (reap, names) = common::reaped(|removed| unsafe { bottle_reap(removed) });
    check(reap).unwrap();

    assert!(names.contains(&orphan), "reaped {names:?}");
    assert!(status(&orphan).is_none());
    assert!(!names.contains(&foreign.name) && status(&foreign.name).is_some());
    assert!(!names.contains(&name_of(ours.0)) && status(&name_of(ours.0)).is_some());
    assert_fails(
        check(unsafe { bottle_reap(null_mut()) }),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "removed: ",
    );
}

#[test]
fn bad_launch_options_are_refused_by_their_setters() {
    let o = LaunchOpts::new();
    unsafe {
        let o = o.0;
        let refused = |status, needle| {
            assert_fails(check(status), BOTTLE_ERR_INVALID_ARGUMENT, needle);
        };
        refused(
            bottle_launch_options_set_name(o, cstr("-x").as_ptr()),
            "machine_name: ",
        );
        refused(
            bottle_launch_options_set_image(o, cstr("--privileged").as_ptr()),
            "image: ",
        );
        refused(
            bottle_launch_options_set_image(o, cstr("a b").as_ptr()),
            "image: ",
        );
        let volume = |host: &str, guest: &str| {
            bottle_launch_options_add_volume(o, cstr(host).as_ptr(), cstr(guest).as_ptr(), false)
        };
        refused(volume("rel", "/g"), "host_path: ");
        refused(volume("/a:b", "/g"), "host_path: ");
        refused(volume("/a", "/g:ro"), "guest_path: ");
        refused(
            bottle_launch_options_add_env(o, cstr("1A").as_ptr(), cstr("v").as_ptr()),
            "name: ",
        );
        refused(
            bottle_launch_options_set_prompt_path(o, cstr("p").as_ptr()),
            "prompt_path: ",
        );
        refused(bottle_launch_options_set_cpus(null_mut(), 1), "opts: ");
        let mut out = 1 as *mut bottle;
        assert_fails(
            check(bottle_launch(o, null_mut())),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "out: ",
        );
        // The refused values were not kept: launching with these options works.
        check(bottle_launch(o, &mut out)).unwrap();
        check(bottle_close_checked(out)).unwrap();
    }
}
