//! Round trips, fuzzed: any text a caller hands the library arrives
//! unchanged where it is meant to go, through the stand-in's real
//! `runuser -l` and the guest user's real login shell.
//!
//! Each property runs first on a committed seed corpus (the inputs below,
//! which break naive quoting, option parsing or length limits), then on
//! random inputs: 128 cases per property by default, `PROPTEST_CASES=N` for
//! more (docs/RELIABILITY.md has the longer run). A failing random case is
//! shrunk and its seed appended to `tests/roundtrip.proptest-regressions`,
//! which every run replays first: commit it with the fix.

mod common;

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

use common::{tricky, Bottle, Machine};

/// The longest script, and the longest quoted claude command line, that
/// bottle.h allows: the kernel's limit for one argument.
const ARG_MAX_BYTES: usize = 131_071;

/// Cases per property when `PROPTEST_CASES` does not say: enough to hit
/// each kind of input many times, few enough for the normal test run.
const DEFAULT_CASES: u32 = 128;

fn runner() -> TestRunner {
    let mut config = Config::with_source_file(file!());
    config.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
        "proptest-regressions",
    )));
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    // Every shrinking step is a real exec; this bounds a failing run to
    // seconds and still ends at a small input.
    config.max_shrink_iters = 512;
    TestRunner::new(config)
}

/// Characters that mean something to a shell, to option parsers or to
/// terminals. proptest's own `any::<char>()` adds more of those, Latin-1,
/// and the whole of Unicode.
const SHELL_CHARS: &[char] = &[
    '\'', '"', '\\', '$', '`', '!', ' ', '\t', '\n', '\r', '-', '+', '*', '?', '[', ']', '{', '}',
    '(', ')', '~', '#', ';', '&', '|', '<', '>', '=', '%', ':', '.', '/', '^', '@', ',', '\u{1b}',
];

/// Prefixes that an argument parser would take for an option.
const OPTION_LIKE: &[&str] = &["-", "--", "+", "-c ", "-o posix ", "--rcfile=", "-x"];

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![prop::sample::select(SHELL_CHARS), any::<char>()]
        .prop_filter("a C string cannot hold NUL", |&c| c != '\0')
}

/// Any UTF-8 text without NUL: mostly short, often starting like an
/// option, sometimes one character repeated up to `max_run` times (at most
/// 4 bytes, or 4 bytes once single-quoted, per character).
fn any_text(max_run: usize) -> impl Strategy<Value = String> {
    let short = || vec(any_char(), 0..40).prop_map(String::from_iter);
    prop_oneof![
        5 => short(),
        2 => (prop::sample::select(OPTION_LIKE), short()).prop_map(|(o, s)| format!("{o}{s}")),
        1 => (any_char(), 1..=max_run).prop_map(|(c, n)| c.to_string().repeat(n)),
    ]
}

/// Runs `check` on every seed, then on random inputs from `strategy`.
fn round_trip<S: Strategy>(
    seeds: Vec<S::Value>,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    for seed in seeds {
        let shown = format!("{seed:?}");
        if let Err(e) = check(seed) {
            panic!("seed {}: {e}", abbreviate(&shown));
        }
    }
    if let Err(e) = runner().run(&strategy, check) {
        panic!("{e}");
    }
}

fn abbreviate(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}... ({} bytes)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}

fn failed(f: common::Failure) -> TestCaseError {
    TestCaseError::fail(format!("{:?}: {}", f.status, f.message))
}

/// node's login shell reads `~/.bash_profile` before it runs its `-c`
/// string. This one prints that string exactly as bash received it and
/// exits, so the text never runs and any text can travel, however it would
/// parse.
const ECHO_SCRIPT_PROFILE: &str = "printf %s \"$BASH_EXECUTION_STRING\"; exit 0\n";

fn script_seeds() -> Vec<String> {
    let mut seeds: Vec<String> = tricky().iter().map(|s| s.to_string()).collect();
    seeds.extend(
        [
            "-x",
            "--help",
            "+x",
            "-o posix",
            "-c",
            "--rcfile=/etc/passwd",
            "-\necho second line",
            "\u{feff}echo bom",
            "\u{202e}rtl",
            "trailing backslash\\",
            "crlf\r\nline\r\n",
            "\n\n\n",
            "exec 2>&1; echo",
        ]
        .map(str::to_owned),
    );
    seeds.push((1..=127u8).map(char::from).collect());
    seeds.push("-".repeat(ARG_MAX_BYTES));
    seeds.push("🙂".repeat(ARG_MAX_BYTES / 4));
    seeds
}

#[test]
fn the_login_shell_receives_any_script_unchanged() {
    let m = Machine::new("rt-script");
    std::fs::write(
        m.rootfs().join("home/node/.bash_profile"),
        ECHO_SCRIPT_PROFILE,
    )
    .unwrap();
    let b = m.open();
    round_trip(script_seeds(), any_text(30_000), |script| {
        let r = b.exec(&script, None).map_err(failed)?;
        let received = String::from_utf8_lossy(&r.stdout);
        prop_assert!(
            r.stdout == script.as_bytes() && r.exit_code == 0 && r.stderr.is_empty(),
            "exit {}, the shell received {:?}, stderr {:?}",
            r.exit_code,
            abbreviate(&received),
            abbreviate(&String::from_utf8_lossy(&r.stderr))
        );
        Ok(())
    });
}

/// A prompt path for `bottle_open` (absolute, so valid) and claude's argv.
type ClaudeCall = (Option<String>, Vec<String>);

fn argv_seeds() -> Vec<ClaudeCall> {
    let tricky: Vec<String> = tricky().iter().map(|s| s.to_string()).collect();
    // The longest arguments that fit `exec claude ARG` into one argument:
    // letters travel unquoted, and each `'` is quoted as the 4 bytes `'\''`.
    let longest = "a".repeat(ARG_MAX_BYTES - "exec claude ".len());
    let quotes = "'".repeat((ARG_MAX_BYTES - "exec claude ''".len()) / 4);
    let mut seeds: Vec<ClaudeCall> = vec![
        (None, vec![]),
        (None, vec![String::new()]),
        (None, vec![String::new(); 1000]),
        (None, vec!["--".into(), "-p".into(), "--".into()]),
        (None, vec!["-".into()]),
        (Some("/p/-x $(id) 'q' a:b".into()), vec!["-p".into()]),
        (Some(format!("/{}", "é".repeat(2000))), vec![]),
        (None, vec![longest]),
        (None, vec![quotes]),
    ];
    seeds.push((Some("/prompt file.md".into()), tricky.clone()));
    seeds.extend(tricky.into_iter().map(|t| (None, vec![t])));
    seeds
}

fn claude_call() -> impl Strategy<Value = ClaudeCall> {
    let prompt = prop::option::of(any_text(500).prop_map(|p| format!("/{p}")));
    (prompt, vec(any_text(3_000), 0..8))
}

#[test]
fn claude_receives_any_argv_unchanged() {
    let m = Machine::new("rt-argv");
    let recorded = m.rootfs().join("home/node/.claude-standin/argv");
    round_trip(argv_seeds(), claude_call(), |(prompt, args)| {
        // A claude that did not run must not pass on the last case's record.
        remove_if_present(&recorded);
        let b = Bottle::open(&m.name, prompt.as_deref()).map_err(failed)?;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let code = b.exec_claude(&refs, false).map_err(failed)?;
        prop_assert_eq!(code, 0);
        let expected: Vec<Vec<u8>> = prompt
            .iter()
            .flat_map(|p| ["--append-system-prompt-file", p.as_str()])
            .chain(refs)
            .map(|a| a.as_bytes().to_vec())
            .collect();
        let got = b.claude_argv();
        prop_assert!(
            got == expected,
            "claude received {} arguments, {:?}",
            got.len(),
            abbreviate(&format!(
                "{:?}",
                got.iter()
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
            ))
        );
        Ok(())
    });
}

fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("remove {path:?}: {e}"),
        _ => {}
    }
}
