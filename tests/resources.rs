//! 2,000 execs leave nothing behind: no descriptor, thread or child process
//! more than before, and no memory beyond a small fixed slack. This file is
//! its own test binary with one test, so no other test's threads, children
//! or allocations blur the counts.

mod common;

use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, on_threads, Bottle, Holdings, Machine};

const CALLS: usize = 2_000;

/// The calls are shared by two threads, to use both cores of a small CI
/// machine; the threads end before the counts are taken.
const THREADS: usize = 2;

/// Bytes each exec writes to stdout and to stderr, so that a result whose
/// buffers were never freed would leak 8 KiB per call, 16 MiB in all: far
/// beyond the slack. (Leaks of a few bytes per call are valgrind's to find,
/// in `make test-valgrind`.)
const OUTPUT: usize = 4096;

/// Allocator caches and lazily touched pages may settle a little after the
/// warm-up; a fixed amount, not a ratio, so that growth per call shows.
const RSS_SLACK_KIB: u64 = 4 * 1024;

/// One round: an exec whose output and status are checked, and, every
/// tenth call, the failure paths too (a rejected argument, which runs
/// nothing, and an unknown machine, which runs smolvm twice and reports its
/// error).
fn round(b: &Bottle, missing: &Bottle, i: usize) {
    let code = i % 256;
    let script = format!("printf '%{OUTPUT}s' o; printf '%{OUTPUT}s' e >&2; exit {code}");
    let r = b.exec(&script, None).unwrap();
    assert_eq!(r.exit_code as usize, code);
    assert_eq!(r.stdout.len(), OUTPUT);
    assert_eq!(r.stderr.len(), OUTPUT);
    assert!(
        r.stdout.ends_with(b" o") && r.stderr.ends_with(b" e"),
        "{i}"
    );
    if i % 10 == 0 {
        assert_fails(
            b.exec("true", Some("-c")),
            BOTTLE_ERR_INVALID_ARGUMENT,
            "user: ",
        );
        assert_fails(
            missing.exec("true", None),
            BOTTLE_ERR_SMOLVM,
            "vm not found",
        );
    }
}

#[test]
fn two_thousand_execs_leave_nothing_behind() {
    let m = Machine::new("resources");
    let b = m.open();
    let missing = Bottle::open("no-such-machine-resources", None).unwrap();
    let rounds = |calls: usize| {
        on_threads(THREADS, |t| {
            for i in (t..calls).step_by(THREADS) {
                round(&b, &missing, i);
            }
        })
    };
    rounds(100);
    let before = Holdings::now();
    rounds(CALLS);
    let after = Holdings::now();
    assert_eq!(after.fds, before.fds, "open descriptors");
    assert_eq!(after.threads, before.threads, "threads");
    assert_eq!(after.children, Vec::<i32>::new(), "child processes");
    assert!(
        after.rss_kib <= before.rss_kib + RSS_SLACK_KIB,
        "resident memory grew from {} KiB to {} KiB over {CALLS} execs",
        before.rss_kib,
        after.rss_kib
    );
}
