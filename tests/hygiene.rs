//! Process hygiene, as a hostile but legitimate host would test it: what
//! smolvm inherits (descriptors, ignored signals), what outlives a call (a
//! SIGKILLed host, a stopped smolvm's children), what a misbehaving smolvm
//! does to a call (output held open, SIGCHLD ignored), zombie owners and
//! racing reapers, device files as copy targets, clashing variable names,
//! oversized command lines, and deadlines and cancel tokens on every
//! operation.
//!
//! Every test takes [`serial`]: they change what the whole process shares
//! (`BOTTLE_SMOLVM` while a bottle is opened, signal dispositions, the set
//! of machines a reap sees).

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::bottle::ffi::bottle::{
    bottle, bottle_close_with, bottle_cp_in_with, bottle_cp_out, bottle_cp_out_with,
    bottle_exec_claude_with,
};
use ::bottle::ffi::call_options::{
    bottle_call_options, bottle_call_options_free, bottle_call_options_new,
    bottle_call_options_set_cancel, bottle_call_options_set_timeout_ms,
};
use ::bottle::ffi::cancel::{bottle_cancel_free, bottle_cancel_new, bottle_cancel_trip};
use ::bottle::ffi::copy_options::{
    bottle_copy_options_set_cancel, bottle_copy_options_set_timeout_ms,
};
use ::bottle::ffi::exec_options::{
    bottle_exec_options_add_env, bottle_exec_options_add_secret_env,
    bottle_exec_options_set_timeout_ms,
};
use ::bottle::ffi::launch::{
    bottle_launch, bottle_launch_options_add_env, bottle_launch_options_set_cancel,
    bottle_launch_options_set_timeout_ms, bottle_reap, bottle_reap_with,
};
use ::bottle::ffi::status::bottle_status::{self, *};
use common::{
    assert_fails, check, cstr, processes_with, reaped, Bottle, CopyOpts, ExecOpts, LaunchOpts,
};

static LOCK: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A directory of this test's own, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bottle-hygiene-{}-{}-{label}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A smolvm that is the shell script `body`.
    fn smolvm(&self, body: &str) -> PathBuf {
        let path = self.0.join("smolvm");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` with `BOTTLE_SMOLVM` naming `smolvm`: a bottle keeps the smolvm
/// it found when it was opened or launched.
fn with_smolvm<T>(smolvm: &Path, f: impl FnOnce() -> T) -> T {
    let standin = common::standin();
    std::env::set_var("BOTTLE_SMOLVM", smolvm);
    let out = f();
    std::env::set_var("BOTTLE_SMOLVM", standin);
    out
}

/// A bottle on machine `m` whose smolvm is the script `body`.
fn fake_bottle(scratch: &Scratch, body: &str) -> Bottle {
    let smolvm = scratch.smolvm(body);
    with_smolvm(&smolvm, || Bottle::open("m", None).unwrap())
}

/// A number for `sleep` that no other process on the machine uses, so
/// that `processes_with` finds exactly the processes of one test.
fn marker() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}{:03}",
        100_000 + std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Waits (generously) until no process runs `sleep MARKER`.
fn assert_none_left(marker: &str) {
    let needle = format!("sleep\0{marker}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_with(needle.as_bytes());
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still running: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (generously) until some process runs `sleep MARKER`.
fn wait_for(marker: &str) {
    let needle = format!("sleep\0{marker}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with(needle.as_bytes()).is_empty() {
        assert!(Instant::now() < deadline, "sleep {marker} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- 1. descriptors ----

#[test]
fn smolvm_gets_only_its_stdio_and_the_copy_descriptor() {
    let _serial = serial();
    let scratch = Scratch::new("fds");
    // Descriptors of the host without close-on-exec: a pipe, and a dup2 far
    // above it.
    let mut pipe = [0; 2];
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    let high = 700;
    assert_eq!(unsafe { libc::dup2(pipe[1], high) }, high);
    let leaked = format!("{} {} {high}", pipe[0], pipe[1]);
    let b = fake_bottle(
        &scratch,
        &format!(
            r#"found=""
for fd in {leaked}; do [ -e /proc/$$/fd/$fd ] && found="$found $fd"; done
if [ "$2" = cp ]; then
    for a; do src=$dst; dst=$a; done
    [ -e "$src" ] || found="$found (not given $src)"
    [ -z "$found" ] || {{ echo "Error: inherited$found" >&2; exit 1; }}
    exit 0
fi
echo "inherited:$found""#
        ),
    );
    let r = b.exec("true", None).unwrap();
    assert_eq!(r.stdout_str(), "inherited:\n");
    let host = scratch.0.join("in.txt");
    std::fs::write(&host, "x").unwrap();
    b.cp_in(host.as_os_str().as_encoded_bytes(), "/tmp/x")
        .unwrap();
    for fd in [pipe[0], pipe[1], high] {
        unsafe { libc::close(fd) };
    }
}

// ---- 2. a SIGKILLed host ----

/// Not a test of its own: the host that `smolvm_dies_with_a_sigkilled_host`
/// starts and kills. It runs only when that test sets the variable.
#[test]
fn sigkilled_host_helper() {
    let Ok(machine) = std::env::var("BOTTLE_HYGIENE_HOST_MACHINE") else {
        return;
    };
    let marker = std::env::var("BOTTLE_HYGIENE_HOST_MARKER").unwrap();
    let b = Bottle::open(&machine, None).unwrap();
    let _ = b.exec(&format!("sleep {marker}"), None);
    unreachable!("the host is killed while the exec runs");
}

#[test]
fn smolvm_dies_with_a_sigkilled_host() {
    let _serial = serial();
    let m = common::Machine::new("pdeath");
    let marker = marker();
    let mut host = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkilled_host_helper", "--nocapture"])
        .env("BOTTLE_HYGIENE_HOST_MACHINE", &m.name)
        .env("BOTTLE_HYGIENE_HOST_MARKER", &marker)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&marker);
    host.kill().unwrap();
    host.wait().unwrap();
    // smolvm got SIGTERM when its host died, and stopped the guest command.
    assert_none_left(&marker);
}

// ---- 3. a stop reaches smolvm's children ----

#[test]
fn a_timeout_stops_what_smolvm_started() {
    let _serial = serial();
    let scratch = Scratch::new("group");
    let marker = marker();
    // smolvm's child holds the output pipes; smolvm ignores --timeout.
    let b = fake_bottle(&scratch, &format!("sleep {marker} & exec sleep {marker}"));
    let opts = ExecOpts::new();
    check(unsafe { bottle_exec_options_set_timeout_ms(opts.0, 50) }).unwrap();
    assert_fails(b.exec_with("x", &opts), BOTTLE_ERR_TIMEOUT, "timed out");
    assert_none_left(&marker);
}

// ---- 4. ignored signals ----

#[test]
fn smolvm_gets_every_signal_at_its_default() {
    let _serial = serial();
    let scratch = Scratch::new("signals");
    // grep reads its own status, exec'd from smolvm's shell: the shell's
    // own mask says nothing, since dash blocks every signal for a moment
    // around each fork and wait, and grep may look just then.
    let b = fake_bottle(&scratch, "exec grep -E '^Sig(Ign|Blk):' /proc/self/status");
    let sigs = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];
    let old: Vec<libc::sighandler_t> = sigs
        .iter()
        .map(|&s| unsafe { libc::signal(s, libc::SIG_IGN) })
        .collect();
    let r = b.exec("true", None);
    for (&s, &h) in sigs.iter().zip(&old) {
        unsafe { libc::signal(s, h) };
    }
    assert_eq!(
        r.unwrap().stdout_str(),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

// ---- 5. variable names ----

#[test]
fn carrier_names_and_underscore_are_refused_by_the_setters() {
    let _serial = serial();
    let opts = ExecOpts::new();
    let launch = LaunchOpts::new();
    for name in [
        "BOTTLE_ENV_0",
        "BOTTLE_ENV_1",
        "BOTTLE_SECRET_0",
        "BOTTLE_MACHINE_ENV_0",
        "_",
    ] {
        let (n, v) = (cstr(name), cstr("value"));
        for status in unsafe {
            [
                bottle_exec_options_add_env(opts.0, n.as_ptr(), v.as_ptr()),
                bottle_exec_options_add_secret_env(opts.0, n.as_ptr(), v.as_ptr()),
                bottle_launch_options_add_env(launch.0, n.as_ptr(), v.as_ptr()),
            ]
        } {
            assert_fails(check(status), BOTTLE_ERR_INVALID_ARGUMENT, "name: ");
        }
    }
    // Names that merely look alike travel like any other.
    let m = common::Machine::new("names");
    let b = m.open();
    let opts = ExecOpts::new();
    for (name, value) in [("BOTTLE_ENV_X", "a"), ("BOTTLE_SECRET_", "b"), ("__", "c")] {
        check(unsafe {
            bottle_exec_options_add_secret_env(opts.0, cstr(name).as_ptr(), cstr(value).as_ptr())
        })
        .unwrap();
    }
    let r = b
        .exec_with(
            r#"printf '%s ' "$BOTTLE_ENV_X" "$BOTTLE_SECRET_" "$__""#,
            &opts,
        )
        .unwrap();
    assert_eq!(r.stdout_str(), "a b c ");
}

// ---- 6. special files as a copy's destination ----

#[test]
fn cp_out_leaves_devices_and_fifos_alone() {
    let _serial = serial();
    let m = common::Machine::new("special");
    let b = m.open();
    b.sh("echo guest > /tmp/out.txt");
    let scratch = Scratch::new("special");
    let dev = scratch.0.join("null");
    let c = cstr(dev.to_str().unwrap());
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) },
        0
    );
    let fifo = scratch.0.join("fifo");
    let f = cstr(fifo.to_str().unwrap());
    assert_eq!(unsafe { libc::mkfifo(f.as_ptr(), 0o600) }, 0);
    let link = scratch.0.join("link");
    std::os::unix::fs::symlink(&dev, &link).unwrap();

    let cp_out = |host: &Path| {
        let (g, h) = (cstr("/tmp/out.txt"), cstr(host.to_str().unwrap()));
        check(unsafe { bottle_cp_out(b.0, g.as_ptr(), h.as_ptr()) })
    };
    assert_fails(cp_out(&dev), BOTTLE_ERR_INVALID_ARGUMENT, "host_path: ");
    assert_fails(cp_out(&fifo), BOTTLE_ERR_INVALID_ARGUMENT, "host_path: ");
    let is_null_device = |p: &Path| {
        let meta = std::fs::symlink_metadata(p).unwrap();
        meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3)
    };
    assert!(is_null_device(&dev));
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    // A link is replaced, never followed: the device behind it survives.
    cp_out(&link).unwrap();
    assert_eq!(std::fs::read_to_string(&link).unwrap(), "guest\n");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert!(is_null_device(&dev));
}

// ---- 7 and 8. reaping ----

/// Labels that name `pid`, started at `start`, as a machine's owner here.
fn owner_labels(pid: u32, start: &str) -> Vec<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    vec![
        "libbottle=1".to_owned(),
        format!("libbottle.pid={pid}"),
        format!("libbottle.start={start}"),
        format!("libbottle.boot={}", boot.trim()),
        format!(
            "libbottle.pidns={}",
            std::fs::read_link("/proc/self/ns/pid").unwrap().display()
        ),
    ]
}

fn create_owned(name: &str, labels: &[String]) {
    let mut args = vec!["machine", "create", "--name", name];
    for l in labels {
        args.extend(["--label", l]);
    }
    assert!(common::smolvm(&args).status.success());
}

fn exists(name: &str) -> bool {
    common::smolvm(&["machine", "status", "--name", name, "--json"])
        .status
        .success()
}

#[test]
fn a_zombie_owner_is_dead() {
    let _serial = serial();
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let pid = child.id();
    // Exited, not yet waited for: a zombie, as under a PID 1 that never reaps.
    let stat = loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        if stat[stat.rfind(')').unwrap() + 2..].starts_with('Z') {
            break stat;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let start = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_owned();
    let name = format!("zombie-owned-{}", std::process::id());
    create_owned(&name, &owner_labels(pid, &start));
    let (status, names) = reaped(|r| unsafe { bottle_reap(r) });
    child.wait().unwrap();
    assert_eq!(status, BOTTLE_OK);
    assert!(names.contains(&name), "reaped {names:?}");
    assert!(!exists(&name));
}

#[test]
fn two_reapers_at_once_both_succeed() {
    let _serial = serial();
    let mut child = Command::new("/bin/true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let labels = owner_labels(dead, "1");
    let names: Vec<String> = (0..8)
        .map(|i| format!("orphan-race-{}-{i}", std::process::id()))
        .collect();
    for name in &names {
        create_owned(name, &labels);
    }
    let barrier = std::sync::Barrier::new(2);
    let results: Vec<(bottle_status, Vec<String>)> = std::thread::scope(|s| {
        let reapers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    reaped(|r| unsafe { bottle_reap(r) })
                })
            })
            .collect();
        reapers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (status, listed) in &results {
        assert_eq!(*status, BOTTLE_OK, "{listed:?}");
    }
    for name in &names {
        assert!(!exists(name), "{name} is left");
        let listed = results.iter().filter(|(_, l)| l.contains(name)).count();
        assert_eq!(listed, 1, "{name} listed by {listed} reapers");
    }
}

// ---- 9. output held open after smolvm exits ----

#[test]
fn output_after_smolvm_exits_is_neither_waited_for_nor_kept() {
    let _serial = serial();
    let scratch = Scratch::new("drain");
    // smolvm leaves a process behind that floods its stdout.
    let b = fake_bottle(&scratch, "echo hi; yes flood & exit 0");
    let r = b.exec("true", None).unwrap();
    assert!(r.stdout.starts_with(b"hi\n"));
    assert!(r.stdout.len() <= 1 << 20, "kept {} bytes", r.stdout.len());
}

// ---- 10. the total size of smolvm's command line ----

#[test]
fn a_command_line_too_large_in_total_is_refused_before_anything_runs() {
    let _serial = serial();
    let scratch = Scratch::new("e2big");
    let ran = scratch.0.join("ran");
    let b = fake_bottle(&scratch, &format!("touch {}", ran.display()));
    let opts = ExecOpts::new();
    // Each value fits one argument; together they exceed the kernel's
    // limit, whatever the stack limit (at most 6 MiB is counted).
    let value = cstr(&"v".repeat(120_000));
    for i in 0..60 {
        let name = cstr(&format!("V{i}"));
        check(unsafe { bottle_exec_options_add_env(opts.0, name.as_ptr(), value.as_ptr()) })
            .unwrap();
    }
    assert_fails(
        b.exec_with("true", &opts),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "env: ",
    );
    assert!(!ran.exists(), "smolvm ran");
}

// ---- SIGCHLD ignored ----

#[test]
fn an_ignored_sigchld_is_named_in_the_error() {
    let _serial = serial();
    let scratch = Scratch::new("sigchld");
    let b = fake_bottle(&scratch, "echo hi");
    let old = unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let r = b.exec("true", None);
    unsafe { libc::signal(libc::SIGCHLD, old) };
    assert_fails(r, BOTTLE_ERR_IO, "SIGCHLD");
}

// ---- deadlines and cancel tokens on every operation ----

/// A smolvm whose `SUBCOMMAND` hangs (holding its output through a child),
/// and whose other subcommands succeed (`ls` lists no machine).
fn hanging(scratch: &Scratch, subcommand: &str, marker: &str) -> PathBuf {
    scratch.smolvm(&format!(
        r#"if [ "$2" = {subcommand} ]; then sleep {marker} & exec sleep {marker}; fi
[ "$2" = ls ] && echo '[]'
[ "$2" = status ] && echo '{{"state": "running"}}'
exit 0"#
    ))
}

struct CallOpts(*mut bottle_call_options);

impl CallOpts {
    fn timeout(ms: u64) -> Self {
        let mut p = null_mut();
        check(unsafe { bottle_call_options_new(&mut p) }).unwrap();
        check(unsafe { bottle_call_options_set_timeout_ms(p, ms) }).unwrap();
        CallOpts(p)
    }
}

impl Drop for CallOpts {
    fn drop(&mut self) {
        unsafe { bottle_call_options_free(self.0) };
    }
}

#[test]
fn copies_stop_at_their_deadline_and_leave_the_host_file_whole() {
    let _serial = serial();
    let scratch = Scratch::new("cp-deadline");
    let marker = marker();
    let smolvm = hanging(&scratch, "cp", &marker);
    let b = with_smolvm(&smolvm, || Bottle::open("m", None).unwrap());
    let opts = CopyOpts::new();
    check(unsafe { bottle_copy_options_set_timeout_ms(opts.0, 100) }).unwrap();
    let host = scratch.0.join("file.txt");
    std::fs::write(&host, "before").unwrap();
    let (h, g) = (cstr(host.to_str().unwrap()), cstr("/tmp/f"));
    let status = unsafe { bottle_cp_in_with(b.0, h.as_ptr(), g.as_ptr(), opts.0) };
    assert_fails(check(status), BOTTLE_ERR_TIMEOUT, "100 ms");
    assert_none_left(&marker);

    // Cancelled from another thread while smolvm writes the host file.
    let mut token = null_mut();
    check(unsafe { bottle_cancel_new(&mut token) }).unwrap();
    let opts = CopyOpts::new();
    check(unsafe { bottle_copy_options_set_cancel(opts.0, token) }).unwrap();
    let token_addr = token as usize;
    let tripper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        unsafe { bottle_cancel_trip(token_addr as *mut _) };
    });
    let status = unsafe { bottle_cp_out_with(b.0, g.as_ptr(), h.as_ptr(), opts.0) };
    tripper.join().unwrap();
    unsafe { bottle_cancel_free(token) };
    assert_fails(check(status), BOTTLE_ERR_CANCELLED, "stopped");
    assert_none_left(&marker);
    assert_eq!(std::fs::read_to_string(&host).unwrap(), "before");
    let entries: Vec<_> = std::fs::read_dir(&scratch.0).unwrap().collect();
    assert_eq!(entries.len(), 2, "only smolvm and the file: {entries:?}");
}

#[test]
fn launch_close_reap_and_claude_stop_at_their_deadline() {
    let _serial = serial();
    let scratch = Scratch::new("lifecycle-deadline");
    let marker = marker();

    // A launch whose start hangs.
    let smolvm = hanging(&scratch, "start", &marker);
    let opts = LaunchOpts::new();
    check(unsafe { bottle_launch_options_set_timeout_ms(opts.0, 100) }).unwrap();
    let mut out: *mut bottle = null_mut();
    let status = with_smolvm(&smolvm, || unsafe { bottle_launch(opts.0, &mut out) });
    assert_fails(check(status), BOTTLE_ERR_TIMEOUT, "100 ms");
    assert!(out.is_null());
    assert_none_left(&marker);
    let mut token = null_mut();
    check(unsafe { bottle_cancel_new(&mut token) }).unwrap();
    unsafe { bottle_cancel_trip(token) };
    check(unsafe { bottle_launch_options_set_timeout_ms(opts.0, 0) }).unwrap();
    check(unsafe { bottle_launch_options_set_cancel(opts.0, token) }).unwrap();
    unsafe { bottle_cancel_free(token) };
    let status = with_smolvm(&smolvm, || unsafe { bottle_launch(opts.0, &mut out) });
    assert_fails(check(status), BOTTLE_ERR_CANCELLED, "cancelled");

    // A launched bottle whose teardown hangs.
    let smolvm = hanging(&scratch, "stop", &marker);
    let status = with_smolvm(&smolvm, || unsafe { bottle_launch(null_mut(), &mut out) });
    check(status).unwrap();
    let call = CallOpts::timeout(100);
    assert_fails(
        check(unsafe { bottle_close_with(out, call.0) }),
        BOTTLE_ERR_TIMEOUT,
        "100 ms",
    );
    assert_none_left(&marker);

    // A reap whose listing hangs.
    let smolvm = hanging(&scratch, "ls", &marker);
    let (status, names) = with_smolvm(&smolvm, || {
        reaped(|r| unsafe { bottle_reap_with(call.0, r) })
    });
    assert_eq!(status, BOTTLE_ERR_TIMEOUT);
    assert!(names.is_empty());
    assert_none_left(&marker);

    // claude, without a terminal, whose exec hangs.
    let smolvm = hanging(&scratch, "exec", &marker);
    let b = with_smolvm(&smolvm, || Bottle::open("m", None).unwrap());
    let mut code = -1;
    let status = unsafe { bottle_exec_claude_with(b.0, null_mut(), 0, false, call.0, &mut code) };
    assert_fails(check(status), BOTTLE_ERR_TIMEOUT, "100 ms");
    assert_eq!(code, 0);
    assert_none_left(&marker);
    let mut token = null_mut();
    check(unsafe { bottle_cancel_new(&mut token) }).unwrap();
    let call = CallOpts::timeout(0);
    check(unsafe { bottle_call_options_set_cancel(call.0, token) }).unwrap();
    let token_addr = token as usize;
    let tripper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        unsafe { bottle_cancel_trip(token_addr as *mut _) };
    });
    let status = unsafe { bottle_exec_claude_with(b.0, null_mut(), 0, false, call.0, &mut code) };
    tripper.join().unwrap();
    unsafe { bottle_cancel_free(token) };
    assert_fails(check(status), BOTTLE_ERR_CANCELLED, "stopped");
    assert_none_left(&marker);
}
