//! 64 threads × 50 execs on one bottle at once, every result checked: no
//! output, status or error crosses from one call to another, and nothing is
//! left behind.

mod common;

use std::sync::Barrier;

use common::{on_threads, Holdings, Machine};

const THREADS: usize = 64;
const CALLS: usize = 50;

/// Every seventh call writes this much to each stream: more than a pipe
/// holds, so those calls depend on both pipes being drained while dozens of
/// other captures are doing the same.
const LARGE: usize = 200_000;

/// Where `got` first departs from `want`, for a failure's message.
fn diff(got: &[u8], want: &str) -> String {
    let at = got.iter().zip(want.as_bytes()).position(|(a, b)| a != b);
    let at = at.unwrap_or(got.len().min(want.len()));
    let around = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(20)..b.len().min(at + 20)]).into_owned()
    };
    format!(
        "{} bytes, {} wanted; first difference at {at}: {:?} for {:?}",
        got.len(),
        want.len(),
        around(got),
        around(want.as_bytes())
    )
}

#[test]
fn sixty_four_threads_exec_on_one_bottle() {
    let m = Machine::new("concurrency");
    let b = m.open();
    let before = Holdings::now();
    let start = Barrier::new(THREADS);
    on_threads(THREADS, |t| {
        // Every eleventh call is refused for a user that is this thread's
        // own, so a message from another thread would show.
        let (bad, at) = ([';', ':', '|'][t / 31], 1 + t % 31);
        let refused = format!("{}{bad}", "u".repeat(at));
        let why = format!("user: character '{bad}' at byte {at} is not allowed");
        start.wait();
        for i in 0..CALLS {
            let n = t * CALLS + i;
            let size = if n % 7 == 0 { LARGE } else { 0 };
            let user = if n % 11 == 0 { &refused } else { "node" };
            let script = format!(
                "printf 'out %d\\n%{size}s' {n} ''; \
                 printf 'err %d\\n%{size}s' {n} '' >&2; exit {}",
                n % 256
            );
            match b.exec(&script, Some(user)) {
                Ok(r) => {
                    assert_ne!(n % 11, 0, "call {n} should have been rejected");
                    assert_eq!(r.exit_code as usize, n % 256, "call {n}");
                    let pad = " ".repeat(size);
                    let out = format!("out {n}\n{pad}");
                    let err = format!("err {n}\n{pad}");
                    assert!(
                        r.stdout == out.as_bytes(),
                        "call {n}: stdout: {}",
                        diff(&r.stdout, &out)
                    );
                    assert!(
                        r.stderr == err.as_bytes(),
                        "call {n}: stderr: {}",
                        diff(&r.stderr, &err)
                    );
                }
                Err(f) => {
                    assert_eq!(n % 11, 0, "call {n}: {f:?}");
                    assert!(f.message.starts_with(&why), "call {n}: {}", f.message);
                }
            }
        }
    });
    let mut after = Holdings::now();
    if common::endpoint().is_some() {
        // A bottle at an endpoint keeps up to 8 idle connections to serve
        // for its next calls: sockets, gone with the bottle.
        let pooled: Vec<i32> = after
            .fds
            .iter()
            .copied()
            .filter(|fd| !before.fds.contains(fd))
            .collect();
        assert!(pooled.len() <= 8, "pooled connections: {pooled:?}");
        for fd in &pooled {
            let what = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
            assert!(
                what.to_string_lossy().starts_with("socket:"),
                "fd {fd}: {what:?}"
            );
        }
        drop(b);
        after = Holdings::now();
    }
    assert_eq!(after.fds, before.fds, "open descriptors");
    assert_eq!(after.threads, before.threads, "threads");
    assert_eq!(after.children, Vec::<i32>::new(), "child processes");
}
