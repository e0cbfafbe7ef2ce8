//! bottle_exec_with: environment, secrets, working directory, timeout,
//! stdin, streaming and cancellation, through the C ABI.

mod common;

use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use ::bottle::ffi::cancel::*;
use ::bottle::ffi::exec_options::*;
use ::bottle::ffi::status::bottle_status::*;
use common::{
    assert_fails, assert_guest_clears, check, cstr, guest_processes_with, processes_with, ExecOpts,
    Machine,
};

#[test]
fn null_options_behave_like_exec() {
    let m = Machine::new("nullopts");
    let b = m.open();
    let r = b
        .exec_with("id -un; exit 4", &ExecOpts(std::ptr::null_mut()))
        .unwrap();
    assert_eq!((r.exit_code, r.stdout_str()), (4, "node\n"));
}

#[test]
fn env_user_and_workdir_reach_the_script() {
    let m = Machine::new("env");
    let b = m.open();
    let o = ExecOpts::new();
    let (k, v) = (cstr("GREETING"), cstr("hello 'there' $HOME"));
    unsafe {
        check(bottle_exec_options_add_env(o.0, k.as_ptr(), v.as_ptr())).unwrap();
        check(bottle_exec_options_set_user(o.0, cstr("root").as_ptr())).unwrap();
        check(bottle_exec_options_set_workdir(o.0, cstr("/tmp").as_ptr())).unwrap();
    }
    let r = b
        .exec_with(
            "printf '%s|' \"$GREETING\" \"$(id -un)\" \"$PWD\" $LINENO",
            &o,
        )
        .unwrap();
    assert_eq!(r.stdout_str(), "hello 'there' $HOME|root|/tmp|1|");

    let missing = ExecOpts::new();
    unsafe {
        check(bottle_exec_options_set_workdir(
            missing.0,
            cstr("/no/such").as_ptr(),
        ))
        .unwrap()
    };
    let r = b.exec_with("echo ran", &missing).unwrap();
    assert_eq!(r.exit_code, 1);
    assert!(r.stdout.is_empty(), "the script did not run");
}

#[test]
fn the_callers_variables_reach_only_the_users_shell() {
    let m = Machine::new("rootenv");
    let b = m.open();
    let o = ExecOpts::new();
    unsafe {
        for (k, v) in [("PATH", "/nowhere"), ("LD_PRELOAD", "/nowhere/evil.so")] {
            check(bottle_exec_options_add_env(
                o.0,
                cstr(k).as_ptr(),
                cstr(v).as_ptr(),
            ))
            .unwrap();
        }
    }
    // Under their own names, PATH would hide runuser from smolvm and
    // LD_PRELOAD would load into root runuser (and warn on stderr).
    // Builtins only: an external command would now load the preload.
    let script = "printf '%s|%s|%s' \"$PATH\" \"$LD_PRELOAD\" \"${!BOTTLE_*}\"";
    let r = b.exec_with(script, &o).unwrap();
    assert_eq!(
        r.stdout_str(),
        "/nowhere|/nowhere/evil.so|",
        "no carrier left"
    );
    assert_eq!(r.stderr, b"", "nothing was preloaded before the script");
    assert_eq!(r.exit_code, 0);
}

#[test]
fn secrets_reach_the_script_but_no_command_line() {
    let m = Machine::new("secret");
    let b = m.open();
    let secret = format!("s3cr3t-{}-value", std::process::id());
    let o = ExecOpts::new();
    let (k, v) = (cstr("TOKEN"), cstr(&secret));
    unsafe {
        check(bottle_exec_options_add_secret_env(
            o.0,
            k.as_ptr(),
            v.as_ptr(),
        ))
        .unwrap()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut scans = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let seen = processes_with(secret.as_bytes());
                assert!(seen.is_empty(), "secret in a command line: {seen:?}");
                scans += 1;
            }
            scans
        });
        let r = b.exec_with("sleep 2; printf '%s' \"$TOKEN\"", &o).unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(r.stdout_str(), secret, "the secret reached the script");
        assert!(
            watcher.join().unwrap() >= 5,
            "the process list was scanned while it ran"
        );
    });
}

#[test]
fn stdin_of_16_mib_round_trips_through_cat() {
    let m = Machine::new("stdin");
    let b = m.open();
    let input: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let o = ExecOpts::new();
    unsafe {
        check(bottle_exec_options_set_stdin(
            o.0,
            input.as_ptr(),
            input.len(),
        ))
        .unwrap()
    };
    let r = b.exec_with("cat", &o).unwrap();
    assert_eq!(r.exit_code, 0);
    assert!(r.stdout == input, "16 MiB came back unchanged");
    // A script that reads none of it is not an error.
    let r = b.exec_with("echo ignored", &o).unwrap();
    assert_eq!(r.stdout_str(), "ignored\n");
}

#[test]
fn a_timeout_stops_the_command_and_leaves_no_smolvm_behind() {
    let m = Machine::new("timeout");
    let b = m.open();
    let o = ExecOpts::new();
    unsafe { check(bottle_exec_options_set_timeout_ms(o.0, 500)).unwrap() };
    let started = Instant::now();
    assert_fails(
        b.exec_with("sleep 60", &o),
        BOTTLE_ERR_TIMEOUT,
        "timed out after 500 ms",
    );
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2500),
        "returned {took:?} after a 500 ms deadline"
    );
    assert_eq!(smolvms_of(&m), Vec::<String>::new());
    // Fast commands are unaffected.
    assert_eq!(
        b.exec_with("echo quick", &o).unwrap().stdout_str(),
        "quick\n"
    );
}

/// Host processes that name the machine: smolvm CLIs left running. (At an
/// endpoint, serve's guest of the machine is the machine, not one of them.)
fn smolvms_of(m: &Machine) -> Vec<String> {
    processes_with(m.name.as_bytes())
        .into_iter()
        .filter(|p| !p.contains("_api-guest"))
        .collect()
}

#[test]
fn a_timed_out_script_leaves_nothing_running_in_the_guest() {
    let m = Machine::new("leftover-timeout");
    let b = m.open();
    let o = ExecOpts::new();
    unsafe { check(bottle_exec_options_set_timeout_ms(o.0, 700)).unwrap() };
    // A child in the background, one in the foreground, one that ignores
    // SIGTERM and SIGHUP: all are the script's.
    let script = "sleep 3571 & (trap '' TERM HUP; sleep 3572) & sleep 3573; echo never";
    assert_fails(b.exec_with(script, &o), BOTTLE_ERR_TIMEOUT, "timed out");
    assert_guest_clears(&b, "sleep 357[123]");
}

#[test]
fn a_script_that_exits_124_in_time_is_not_a_timeout() {
    let m = Machine::new("exit124");
    let b = m.open();
    let o = ExecOpts::new();
    unsafe { check(bottle_exec_options_set_timeout_ms(o.0, 60_000)).unwrap() };
    let r = b.exec_with("echo out; exit 124", &o).unwrap();
    assert_eq!(r.exit_code, 124);
    assert_eq!(r.stdout_str(), "out\n");
}

/// smolvm's agent is the guest's pid 1 and reaps nothing it did not start:
/// whatever an exec leaves orphaned stays a zombie until the machine stops.
#[test]
fn execs_leave_no_zombies_in_the_guest() {
    let m = Machine::new("zombies");
    let b = m.open();
    let zombies = || {
        b.exec(
            "grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l",
            Some("root"),
        )
        .unwrap()
        .stdout_str()
        .trim()
        .parse::<usize>()
        .unwrap()
    };
    let before = zombies();
    for _ in 0..5 {
        assert_eq!(b.exec("true", None).unwrap().exit_code, 0);
    }
    assert_eq!(zombies(), before, "execs that finished left zombies");
}

#[test]
fn what_a_finished_script_leaves_running_stays() {
    let m = Machine::new("daemon");
    let b = m.open();
    let r = b
        .exec("nohup sleep 3591 >/dev/null 2>&1 & echo started", None)
        .unwrap();
    assert_eq!(r.stdout_str(), "started\n");
    // The scan sees a process that runs while it looks.
    let r = b
        .exec(
            "n=3592; sleep $n & for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline; echo; done \
             | grep -c 'sleep 359[2]'; kill $!",
            None,
        )
        .unwrap();
    assert_eq!(r.stdout_str(), "1\n");
    // The stand-in smolvm ends each exec's processes with the exec; a VM
    // (and the stand-in guest) keeps them, and the guard must too.
    if common::guest_outlives_exec() {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(guest_processes_with(&b, "sleep 359[1]"), 1);
    }
}

#[test]
fn smolvms_failures_are_still_seen_with_options() {
    let m = Machine::new("failures");
    let b = m.open();
    m.stop();
    // With a timeout and an uncaptured stderr, smolvm's own failure is
    // still told by its message.
    let o = ExecOpts::new();
    let mut sink = Collector {
        bytes: Vec::new(),
        calls: 0,
        stop_after: usize::MAX,
    };
    unsafe {
        check(bottle_exec_options_set_timeout_ms(o.0, 60_000)).unwrap();
        let p = &mut sink as *mut Collector as *mut c_void;
        check(bottle_exec_options_set_stderr_fn(
            o.0,
            Some(collect),
            p,
            false,
        ))
        .unwrap();
    }
    assert_fails(b.exec_with("true", &o), BOTTLE_ERR_SMOLVM, "is not running");
    if common::endpoint().is_none() {
        assert!(
            sink.bytes.starts_with(b"Error: "),
            "the callback saw smolvm's message"
        );
    } else {
        // At an endpoint the machine's state is read before anything runs.
        assert_eq!(sink.bytes, b"", "nothing ran");
    }
}

#[test]
fn a_script_that_fails_in_time_is_not_a_timeout() {
    let m = Machine::new("intime");
    let b = m.open();
    let o = ExecOpts::new();
    unsafe { check(bottle_exec_options_set_timeout_ms(o.0, 60_000)).unwrap() };
    let r = b
        .exec_with("echo 'Error: timed out, says the script' >&2; exit 3", &o)
        .unwrap();
    assert_eq!(r.exit_code, 3);
}

/// A cancel from another thread stops the command and everything it
/// started in the guest.
#[test]
fn a_cancel_from_another_thread_stops_the_command() {
    let m = Machine::new("cancel");
    let b = m.open();
    let mut cancel = std::ptr::null_mut();
    check(unsafe { bottle_cancel_new(&mut cancel) }).unwrap();
    let o = ExecOpts::new();
    unsafe { check(bottle_exec_options_set_cancel(o.0, cancel)).unwrap() };
    let token = cancel as usize;
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            std::thread::sleep(Duration::from_millis(700));
            unsafe { bottle_cancel_trip(token as *mut bottle_cancel) };
        });
        assert_fails(
            b.exec_with("sleep 3581 & sleep 3582", &o),
            BOTTLE_ERR_CANCELLED,
            "cancelled",
        );
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(unsafe { bottle_cancel_is_tripped(cancel) });
    assert_eq!(smolvms_of(&m), Vec::<String>::new());
    assert_guest_clears(&b, "sleep 358[12]");
    // The options outlive the caller's token; a tripped token fails at once.
    unsafe { bottle_cancel_free(cancel) };
    assert_fails(b.exec_with("true", &o), BOTTLE_ERR_CANCELLED, "cancelled");
}

/// Collects every chunk a callback sees; stops after `stop_after` bytes.
struct Collector {
    bytes: Vec<u8>,
    calls: usize,
    stop_after: usize,
}

unsafe extern "C" fn collect(user_data: *mut c_void, data: *const u8, len: usize) -> c_int {
    let c = unsafe { &mut *(user_data as *mut Collector) };
    c.bytes
        .extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    c.calls += 1;
    (c.bytes.len() >= c.stop_after) as c_int
}

/// smolvm's `--stream` stops at 11 MiB; a callback gets any size.
#[test]
fn callbacks_get_output_beyond_smolvms_stream_cap() {
    const SIZE: usize = 20 << 20;
    let m = Machine::new("stream-big");
    let b = m.open();
    let mut out = Collector {
        bytes: Vec::new(),
        calls: 0,
        stop_after: usize::MAX,
    };
    let o = ExecOpts::new();
    unsafe {
        let p = &mut out as *mut Collector as *mut c_void;
        check(bottle_exec_options_set_stdout_fn(
            o.0,
            Some(collect),
            p,
            false,
        ))
        .unwrap();
    }
    let r = b
        .exec_with(&format!("head -c {SIZE} /dev/zero | tr '\\0' s"), &o)
        .unwrap();
    assert_eq!(r.exit_code, 0, "{:?}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(out.bytes.len(), SIZE);
    assert!(out.bytes.iter().all(|&c| c == b's'));
    assert!(r.stdout.is_empty(), "stdout went to the callback only");
}

#[test]
fn streaming_callbacks_get_output_as_it_arrives() {
    let m = Machine::new("stream");
    let b = m.open();
    let mut out = Collector {
        bytes: Vec::new(),
        calls: 0,
        stop_after: usize::MAX,
    };
    let mut err = Collector {
        bytes: Vec::new(),
        calls: 0,
        stop_after: usize::MAX,
    };
    let o = ExecOpts::new();
    unsafe {
        let out_p = &mut out as *mut Collector as *mut c_void;
        let err_p = &mut err as *mut Collector as *mut c_void;
        check(bottle_exec_options_set_stdout_fn(
            o.0,
            Some(collect),
            out_p,
            false,
        ))
        .unwrap();
        check(bottle_exec_options_set_stderr_fn(
            o.0,
            Some(collect),
            err_p,
            true,
        ))
        .unwrap();
    }
    let r = b
        .exec_with(
            "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.1; done",
            &o,
        )
        .unwrap();
    assert_eq!(out.bytes, b"out1\nout2\nout3\n");
    assert!(
        out.calls >= 3,
        "stdout arrived in {} chunks, not at the end",
        out.calls
    );
    assert!(r.stdout.is_empty(), "stdout was not captured");
    assert_eq!(err.bytes, b"err1\nerr2\nerr3\n");
    assert_eq!(r.stderr, err.bytes, "stderr was captured as well");

    let mut stopper = Collector {
        bytes: Vec::new(),
        calls: 0,
        stop_after: 1,
    };
    let o = ExecOpts::new();
    unsafe {
        let p = &mut stopper as *mut Collector as *mut c_void;
        check(bottle_exec_options_set_stdout_fn(
            o.0,
            Some(collect),
            p,
            true,
        ))
        .unwrap();
    }
    assert_fails(
        b.exec_with("echo first; sleep 60", &o),
        BOTTLE_ERR_CANCELLED,
        "stdout callback",
    );
    assert_eq!(stopper.bytes, b"first\n");
}

#[test]
fn bad_options_are_refused_by_their_setters() {
    let o = ExecOpts::new();
    unsafe {
        assert_fails(
            check(bottle_exec_options_set_user(o.0, cstr("-c").as_ptr())),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "user: ",
        );
        assert_fails(
            check(bottle_exec_options_add_env(
                o.0,
                cstr("A=B").as_ptr(),
                cstr("v").as_ptr(),
            )),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "name: ",
        );
        assert_fails(
            check(bottle_exec_options_add_secret_env(
                o.0,
                cstr("").as_ptr(),
                cstr("v").as_ptr(),
            )),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "name: ",
        );
        assert_fails(
            check(bottle_exec_options_add_env(
                o.0,
                cstr("A").as_ptr(),
                std::ptr::null(),
            )),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "value: must not be NULL",
        );
        assert_fails(
            check(bottle_exec_options_set_workdir(o.0, cstr("rel").as_ptr())),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "dir: ",
        );
        assert_fails(
            check(bottle_exec_options_set_stdin(o.0, std::ptr::null(), 3)),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "data: must not be NULL when len is 3",
        );
        assert_fails(
            check(bottle_exec_options_set_user(
                std::ptr::null_mut(),
                std::ptr::null(),
            )),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "opts: must not be NULL",
        );
        let mut none = 1 as *mut bottle_exec_options;
        check(bottle_exec_options_new(&mut none)).unwrap();
        bottle_exec_options_free(none);
        bottle_exec_options_free(std::ptr::null_mut());
        bottle_cancel_free(std::ptr::null_mut());
        bottle_cancel_trip(std::ptr::null_mut());
        assert!(!bottle_cancel_is_tripped(std::ptr::null()));
    }
}
