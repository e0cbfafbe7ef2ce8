//! The bad-input matrix: every function of the C API against every kind of
//! input that trips wrappers like this one (NULL, empty, not UTF-8,
//! over-long, `-`, `:`, spaces, `..`, shell metacharacters, host paths that
//! smolvm would misread). Each row says what the call returns and, when it
//! is accepted, what it does; the test runs every row through the C ABI and
//! checks that, and that no row runs anything it should not.
//!
//! docs/BAD-INPUT.md is this table, rendered: the test fails when the file
//! differs, and `BOTTLE_UPDATE_DOCS=1 cargo test --test bad_input_matrix`
//! rewrites it.
//!
//! "Runs nothing" is checked at the source: smolvm is a wrapper that records
//! each of its invocations and then runs the stand-in, so a rejected call
//! must leave no record at all. The wrapper is installed through
//! `BOTTLE_SMOLVM`, and the test works in a directory of its own, which is
//! why this binary holds a single test.

mod common;

use std::ffi::{c_char, c_int, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};

use ::bottle::ffi::bottle::*;
use ::bottle::ffi::exec_result::{bottle_exec_result, bottle_exec_result_free};
use ::bottle::ffi::status::bottle_status::{self, *};
use ::bottle::ffi::status::bottle_status_str;
use common::{check, cstr, Bottle, Exec, Failure, Machine, NOT_UTF8};

/// What a call is given for the argument under test.
#[derive(Debug)]
enum Input {
    Null,
    Text(String),
    Bytes(&'static [u8]),
}

impl Input {
    fn c_string(&self) -> Option<CString> {
        match self {
            Input::Null => None,
            Input::Text(s) => Some(cstr(s)),
            Input::Bytes(b) => Some(CString::new(*b).unwrap()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Null => b"",
            Input::Text(s) => s.as_bytes(),
            Input::Bytes(b) => b,
        }
    }
}

/// What a row expects.
#[derive(Debug)]
enum Expect {
    /// This status, and a message that starts with this text, where `…`
    /// stands for any text. smolvm is never started.
    Rejected(bottle_status, &'static str),
    /// `BOTTLE_OK` (or no status at all), and this happens.
    Accepted(Effect),
}

#[derive(Debug)]
enum Effect {
    /// `bottle_open` returns a handle; nothing runs until it is used.
    Opened,
    /// claude receives exactly these arguments (for a `bottle_open` row:
    /// when the new handle runs it with no arguments of its own).
    ClaudeArgv(Vec<String>),
    /// The script exits with this status, with exactly this stdout and a
    /// stderr that contains this text.
    Exit(i32, &'static str, &'static str),
    /// The host file arrives, byte for byte, at this guest path.
    Copied(&'static str),
    /// A function without a status returns, and nothing happens.
    Nothing,
    /// The function returns this string.
    Returns(&'static str),
}

struct Row {
    function: &'static str,
    argument: &'static str,
    kind: &'static str,
    input: Input,
    /// How the docs show the input, when not as the literal itself.
    shown: Option<&'static str>,
    expect: Expect,
}

/// Shell code in the inputs touches this file, relative or absolute: if
/// any shell on the host or in the guest ran it, the file exists.
const PWNED: &str = "bottle-pwned";

/// What every host file of the `host_path` rows holds.
const HOST_BYTES: &[u8] = b"copied\0bytes\n";

/// Where the `host_path` rows copy to.
const GUEST_DEST: &str = "/tmp/copied";

/// The host file the rows not about `host_path` copy.
const HOST_FILE: &str = "host-file";

fn invalid(message: &'static str) -> Expect {
    Expect::Rejected(BOTTLE_ERR_INVALID_ARGUMENT, message)
}

fn claude(args: &[&str]) -> Expect {
    Expect::Accepted(Effect::ClaudeArgv(
        args.iter().map(|a| a.to_string()).collect(),
    ))
}

fn prompt(path: &str) -> Expect {
    claude(&["--append-system-prompt-file", path])
}

fn exits(code: i32, stdout: &'static str, stderr: &'static str) -> Expect {
    Expect::Accepted(Effect::Exit(code, stdout, stderr))
}

fn copied(guest: &'static str) -> Expect {
    Expect::Accepted(Effect::Copied(guest))
}

/// The matrix. One line per row, so that it reads as the table it is.
#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use Input::{Bytes, Null};
    let text = |s: &str| Input::Text(s.to_owned());
    let long = |prefix: &str, c: &str, n: usize| Input::Text(format!("{prefix}{}", c.repeat(n)));
    let not_utf8 = || Bytes(&NOT_UTF8[..NOT_UTF8.len() - 1]);
    let mut rows = Vec::new();
    let mut add = |function, argument, kind, input, shown, expect| {
        rows.push(Row { function, argument, kind, input, shown, expect })
    };

    let f = "bottle_open";
    let a = "machine_name";
    add(f, a, "NULL", Null, None, invalid("machine_name: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("machine_name: must not be empty"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("machine_name: is not valid UTF-8"));
    add(f, a, "over-long", long("", "n", 129), Some("`\"n\"` × 129"), invalid("machine_name: is 129 bytes long; smolvm allows at most 128"));
    add(f, a, "`-`", text("-x"), None, invalid("machine_name: must start with an ASCII letter or digit"));
    add(f, a, "`-`", text("--name"), None, invalid("machine_name: must start with an ASCII letter or digit"));
    add(f, a, "`-`", text("a-"), None, invalid("machine_name: must not end with '-'"));
    add(f, a, "`-`", text("a--b"), None, invalid("machine_name: must not contain \"--\""));
    add(f, a, "`-`", text("agent-1"), None, Expect::Accepted(Effect::Opened));
    add(f, a, "`:`", text("a:b"), None, invalid("machine_name: character ':' at byte 1 is not allowed"));
    add(f, a, "spaces", text("a b"), None, invalid("machine_name: character ' ' at byte 1 is not allowed"));
    add(f, a, "`..`", text(".."), None, invalid("machine_name: character '.' at byte 0 is not allowed"));
    add(f, a, "`..`", text("../x"), None, invalid("machine_name: character '.' at byte 0 is not allowed"));
    add(f, a, "shell metacharacters", text("a;touch bottle-pwned"), None, invalid("machine_name: character ';' at byte 1 is not allowed"));
    add(f, a, "shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("machine_name: character '$' at byte 0 is not allowed"));
    add(f, a, "control characters", text("a\nb"), None, invalid("machine_name: character U+000A at byte 1 is not allowed"));
    add(f, a, "non-ASCII", text("é"), None, invalid("machine_name: character U+00E9 at byte 0 is not allowed"));
    let a = "prompt_path";
    add(f, a, "NULL", Null, None, claude(&[]));
    add(f, a, "empty", text(""), None, invalid("prompt_path: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", Bytes(b"/p\xff"), None, invalid("prompt_path: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "p", 4095), Some("`\"/\"` + `\"p\"` × 4095"), invalid("prompt_path: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "`-`", text("-p"), None, invalid("prompt_path: \"-p\" is not an absolute guest path"));
    add(f, a, "`-`", text("/-p"), None, prompt("/-p"));
    add(f, a, "`:`", text("/home/node/a:b"), None, prompt("/home/node/a:b"));
    add(f, a, "spaces", text("/home/node/my prompt.md"), None, prompt("/home/node/my prompt.md"));
    add(f, a, "`..`", text("/../../etc/passwd"), None, prompt("/../../etc/passwd"));
    add(f, a, "shell metacharacters", text("/p/$(touch /tmp/bottle-pwned);`id`'\"|&"), None, prompt("/p/$(touch /tmp/bottle-pwned);`id`'\"|&"));
    add(f, "out", "NULL", Null, None, invalid("out: must not be NULL"));

    let f = "bottle_exec";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    let a = "script";
    add(f, a, "NULL", Null, None, invalid("script: must not be NULL"));
    add(f, a, "empty", text(""), None, exits(0, "", ""));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("script: is not valid UTF-8"));
    add(f, a, "over-long", long("#", "x", 131_071), Some("`\"#\"` + `\"x\"` × 131071"), invalid("script: the script is 131072 bytes; the kernel passes at most 131071 bytes in one argument"));
    add(f, a, "longest", long("#", "x", 131_070), Some("`\"#\"` + `\"x\"` × 131070"), exits(0, "", ""));
    add(f, a, "`-`", text("-x"), None, exits(127, "", "-x: command not found"));
    add(f, a, "`-`", text("--rcfile=/etc/passwd"), None, exits(127, "", "--rcfile=/etc/passwd: No such file or directory"));
    add(f, a, "shell metacharacters", text("echo $((6*7)) 'a;b' \"$USER\" `echo x`"), None, exits(0, "42 a;b node x\n", ""));
    let a = "user";
    add(f, a, "NULL", Null, None, exits(0, "node\n", ""));
    add(f, a, "empty", text(""), None, invalid("user: must not be empty"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("user: is not valid UTF-8"));
    add(f, a, "over-long", long("", "u", 33), Some("`\"u\"` × 33"), invalid("user: is 33 bytes long; at most 32 are allowed"));
    add(f, a, "`-`", text("-c"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`-`", text("--login"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`-`", text("-"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`-`", text("www-data"), None, exits(1, "", "user www-data does not exist"));
    add(f, a, "`:`", text("a:b"), None, invalid("user: character ':' at byte 1 is not allowed"));
    add(f, a, "spaces", text("no de"), None, invalid("user: character ' ' at byte 2 is not allowed"));
    add(f, a, "`..`", text(".."), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "shell metacharacters", text("node;touch bottle-pwned"), None, invalid("user: character ';' at byte 4 is not allowed"));
    add(f, a, "shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "non-ASCII", text("nöde"), None, invalid("user: character U+00F6 at byte 1 is not allowed"));
    add(f, a, "valid", text("root"), None, exits(0, "root\n", ""));
    add(f, "out", "NULL", Null, None, invalid("out: must not be NULL"));

    let f = "bottle_exec_claude";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    add(f, "argv", "NULL, argc 2", Null, None, invalid("argv: must not be NULL when argc is 2"));
    add(f, "argv", "NULL, argc 0", Null, None, claude(&[]));
    let a = "argv[1]";
    add(f, a, "NULL", Null, None, invalid("argv[1]: must not be NULL"));
    add(f, a, "empty", text(""), None, claude(&["first", ""]));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("argv[1]: is not valid UTF-8"));
    add(f, a, "over-long", long("", "y", 131_072), Some("`\"y\"` × 131072"), invalid("argv: the quoted claude command line is 131090 bytes; the kernel passes at most 131071 bytes in one argument"));
    for arg in ["-p", "--dangerously-skip-permissions", "--", "-"] {
        add(f, a, "`-`", text(arg), None, claude(&["first", arg]));
    }
    add(f, a, "`:`", text("a:b"), None, claude(&["first", "a:b"]));
    add(f, a, "spaces", text(" two  words "), None, claude(&["first", " two  words "]));
    add(f, a, "`..`", text("../../etc/passwd"), None, claude(&["first", "../../etc/passwd"]));
    let meta = "$(touch bottle-pwned);`touch /tmp/bottle-pwned`|&>x'\"\\";
    add(f, a, "shell metacharacters", text(meta), None, claude(&["first", meta]));
    add(f, a, "control characters", text("a\nb\r\t\u{1b}[31m"), None, claude(&["first", "a\nb\r\t\u{1b}[31m"]));
    add(f, "exit_code", "NULL", Null, None, invalid("exit_code: must not be NULL"));

    let f = "bottle_cp_in";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    let a = "host_path";
    add(f, a, "NULL", Null, None, invalid("host_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("host_path: must not be empty"));
    add(f, a, "not UTF-8", Bytes(b"caf\xe9"), None, copied(GUEST_DEST));
    add(f, a, "over-long", long("", "h", 5000), Some("`\"h\"` × 5000"), Expect::Rejected(BOTTLE_ERR_IO, "host_path …: cannot open: File name too long"));
    add(f, a, "missing", text("missing"), None, Expect::Rejected(BOTTLE_ERR_IO, "host_path missing: cannot open: No such file or directory"));
    add(f, a, "directory", text("dir"), None, invalid("host_path: dir is a directory; only regular files can be copied"));
    add(f, a, "starts with `-`", text("-file"), None, copied(GUEST_DEST));
    add(f, a, "starts with `-`", text("--help"), None, copied(GUEST_DEST));
    add(f, a, "contains `:`", text("default:etc:passwd"), None, copied(GUEST_DEST));
    add(f, a, "contains `:`", text("dir/default:/etc/passwd"), None, copied(GUEST_DEST));
    add(f, a, "spaces", text("a file with spaces"), None, copied(GUEST_DEST));
    add(f, a, "`..`", text("dir/../dots"), None, copied(GUEST_DEST));
    add(f, a, "shell metacharacters", text("x;$(touch bottle-pwned)`touch bottle-pwned`|&"), None, copied(GUEST_DEST));
    let a = "guest_path";
    add(f, a, "NULL", Null, None, invalid("guest_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("guest_path: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("guest_path: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "g", 4095), Some("`\"/\"` + `\"g\"` × 4095"), invalid("guest_path: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "`-`", text("-x"), None, invalid("guest_path: \"-x\" is not an absolute guest path"));
    add(f, a, "`-`", text("/tmp/-x"), None, copied("/tmp/-x"));
    add(f, a, "`:`", text("/tmp/a:b"), None, invalid("guest_path: \"/tmp/a:b\" contains ':', which smolvm's cp reads as MACHINE:PATH"));
    add(f, a, "`:`", text("default:/tmp/x"), None, invalid("guest_path: \"default:/tmp/x\" is not an absolute guest path"));
    add(f, a, "spaces", text("/tmp/a b"), None, copied("/tmp/a b"));
    add(f, a, "`..`", text("/tmp/../tmp/dots"), None, copied("/tmp/dots"));
    add(f, a, "`..`", text("/../../../tmp/up"), None, copied("/tmp/up"));
    add(f, a, "shell metacharacters", text("/tmp/$(touch bottle-pwned);`id`|&<>*"), None, copied("/tmp/$(touch bottle-pwned);`id`|&<>*"));

    add("bottle_close", "b", "NULL", Null, None, Expect::Accepted(Effect::Nothing));
    let f = "bottle_exec_result_free";
    add(f, "result", "NULL", Null, None, Expect::Accepted(Effect::Nothing));
    add(f, "result", "all zeros", Null, Some("`{0}`"), Expect::Accepted(Effect::Nothing));
    add(f, "result", "freed twice", Null, Some("a result of `bottle_exec`"), Expect::Accepted(Effect::Nothing));
    let f = "bottle_status_str";
    // Codes are only ever appended, so these stay unknown.
    for (code, shown) in [(-1, "`-1`"), (1000, "`1000`"), (c_int::MAX, "`INT_MAX`")] {
        add(f, "status", "out of range", text(&code.to_string()), Some(shown), Expect::Accepted(Effect::Returns("unknown status")));
    }
    rows
}

/// The machine the rows run against, the record of smolvm's invocations,
/// and a private working directory holding the `host_path` rows' files.
struct Fixture {
    bottle: Bottle,
    machine: Machine,
    dir: PathBuf,
    log: PathBuf,
    cwd: PathBuf,
}

impl Fixture {
    fn new(rows: &[Row]) -> Self {
        let standin = std::fs::canonicalize(common::standin()).unwrap();
        let machine = Machine::new("matrix");
        let dir = std::env::temp_dir().join(format!("bottle-matrix-{}", std::process::id()));
        let log = dir.join("smolvm-log");
        let work = dir.join("work");
        std::fs::create_dir_all(&log).unwrap();
        std::fs::create_dir_all(work.join("dir")).unwrap();
        std::fs::write(work.join(HOST_FILE), HOST_BYTES).unwrap();
        let wrapper = dir.join("smolvm");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'/$$\nexec '{}' \"$@\"\n",
                log.display(),
                standin.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        for row in rows {
            if row.argument == "host_path" && matches!(row.expect, Expect::Accepted(_)) {
                let path = work.join(OsStr::from_bytes(row.input.bytes()));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, HOST_BYTES).unwrap();
            }
        }
        // Only this test runs in this binary, so nothing reads the
        // environment or the working directory while they change. The
        // stand-in resolves a relative state directory from its own working
        // directory, which is about to change.
        let home = std::fs::canonicalize(std::env::var_os("SMOLVM_STANDIN_HOME").unwrap()).unwrap();
        std::env::set_var("SMOLVM_STANDIN_HOME", home);
        std::env::set_var("BOTTLE_SMOLVM", &wrapper);
        let cwd = std::env::current_dir().unwrap();
        std::env::set_current_dir(&work).unwrap();
        let bottle = machine.open();
        Fixture {
            bottle,
            machine,
            dir,
            log,
            cwd,
        }
    }

    /// smolvm's invocations since the last look, each as its arguments.
    fn invocations(&self) -> Vec<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.log).unwrap() {
            let path = entry.unwrap().path();
            let args = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            found.push(args.split(|&b| b == 0).map(<[u8]>::to_vec).collect());
        }
        found
    }

    fn in_guest(&self, path: &str) -> PathBuf {
        self.machine.rootfs().join(path.trim_start_matches('/'))
    }

    /// Where a shell that ran the inputs' `touch` would have left its mark.
    fn marks(&self) -> Vec<PathBuf> {
        let guest = ["/", "/root", "/home/node", "/tmp"].map(|d| self.in_guest(d).join(PWNED));
        let host = [Path::new(".").join(PWNED), Path::new("/tmp").join(PWNED)];
        guest
            .into_iter()
            .chain(host)
            .filter(|p| p.exists())
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.cwd);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a call did, to be held against the row's expectation.
enum Seen {
    Opened(Bottle),
    Ran(Exec),
    ClaudeRan(i32),
    Done,
    Returned(String),
}

fn run(fx: &Fixture, row: &Row) -> Result<Seen, Failure> {
    let input = row.input.c_string();
    let p = input.as_ref().map_or(null(), |s| s.as_ptr());
    let b: *const bottle = fx.bottle.0;
    let name = cstr(&fx.machine.name);
    let first = cstr("first");
    let id = cstr("id -un");
    let dest = cstr(GUEST_DEST);
    let host = cstr(HOST_FILE);
    match (row.function, row.argument) {
        ("bottle_open", arg) => {
            let (name, prompt) = match arg {
                "machine_name" => (p, null()),
                "prompt_path" => (name.as_ptr(), p),
                _ => (name.as_ptr(), null()),
            };
            let mut out = 1 as *mut bottle;
            let out_ptr = if arg == "out" { null_mut() } else { &mut out };
            let result = check(unsafe { bottle_open(name, prompt, out_ptr) });
            if result.is_err() && arg != "out" {
                assert!(out.is_null(), "out must be NULL after a failure");
            }
            result.map(|()| Seen::Opened(Bottle(out)))
        }
        ("bottle_exec", "b") => exec_unwrapped(null(), id.as_ptr(), null(), false),
        ("bottle_exec", "out") => exec_unwrapped(b, id.as_ptr(), null(), true),
        ("bottle_exec", "script") => fx.bottle.exec_raw(p, null()).map(Seen::Ran),
        ("bottle_exec", _) => fx.bottle.exec_raw(id.as_ptr(), p).map(Seen::Ran),
        ("bottle_exec_claude", arg) => {
            let argv = [first.as_ptr(), p];
            let (b, argv, argc) = match (arg, row.kind) {
                ("b", _) => (null(), argv.as_ptr(), 2),
                ("argv", "NULL, argc 2") => (b, null(), 2),
                ("argv", _) => (b, null(), 0),
                _ => (b, argv.as_ptr(), 2),
            };
            let mut code = -7;
            let code_ptr = if arg == "exit_code" {
                null_mut()
            } else {
                &mut code
            };
            let result = check(unsafe { bottle_exec_claude(b, argv, argc, false, code_ptr) });
            if result.is_err() && arg != "exit_code" {
                assert_eq!(code, 0, "exit_code must be 0 after a failure");
            }
            result.map(|()| Seen::ClaudeRan(code))
        }
        ("bottle_cp_in", arg) => {
            let (b, host, guest) = match arg {
                "b" => (null(), host.as_ptr(), dest.as_ptr()),
                "host_path" => (b, p, dest.as_ptr()),
                _ => (b, host.as_ptr(), p),
            };
            check(unsafe { bottle_cp_in(b, host, guest) }).map(|()| Seen::Done)
        }
        ("bottle_close", _) => {
            unsafe { bottle_close(null_mut()) };
            Ok(Seen::Done)
        }
        ("bottle_exec_result_free", _) => {
            free_result(fx, row.kind);
            Ok(Seen::Done)
        }
        ("bottle_status_str", _) => {
            let code: c_int = std::str::from_utf8(row.input.bytes())
                .unwrap()
                .parse()
                .unwrap();
            let s = unsafe { CStr::from_ptr(bottle_status_str(code)) };
            Ok(Seen::Returned(s.to_str().unwrap().to_owned()))
        }
        other => panic!("the matrix has no way to call {other:?}"),
    }
}

/// `bottle_exec` with a NULL bottle or a NULL `out`, which the `Bottle`
/// wrapper cannot express.
fn exec_unwrapped(
    b: *const bottle,
    script: *const c_char,
    user: *const c_char,
    null_out: bool,
) -> Result<Seen, Failure> {
    let mut r = garbage_result();
    let out = if null_out { null_mut() } else { &mut r };
    let result = check(unsafe { bottle_exec(b, script, user, out) });
    if !null_out {
        assert!(result.is_err(), "a NULL bottle cannot run");
        assert!(is_zero(&r), "out must be all zeros after a failure");
    }
    result.map(|()| Seen::Done)
}

fn garbage_result() -> bottle_exec_result {
    bottle_exec_result {
        exit_code: 5,
        stdout_data: 1 as *mut u8,
        stdout_len: 1,
        stderr_data: 1 as *mut u8,
        stderr_len: 1,
    }
}

fn is_zero(r: &bottle_exec_result) -> bool {
    r.exit_code == 0
        && r.stdout_data.is_null()
        && r.stdout_len == 0
        && r.stderr_data.is_null()
        && r.stderr_len == 0
}

fn free_result(fx: &Fixture, kind: &str) {
    let mut r = garbage_result();
    unsafe {
        match kind {
            "NULL" => bottle_exec_result_free(null_mut()),
            "all zeros" => {
                r = bottle_exec_result {
                    exit_code: 0,
                    stdout_data: null_mut(),
                    stdout_len: 0,
                    stderr_data: null_mut(),
                    stderr_len: 0,
                };
                bottle_exec_result_free(&mut r);
            }
            _ => {
                let script = cstr("echo out; echo err >&2");
                check(bottle_exec(fx.bottle.0, script.as_ptr(), null(), &mut r)).unwrap();
                bottle_exec_result_free(&mut r);
                bottle_exec_result_free(&mut r);
            }
        }
    }
    if kind != "NULL" {
        assert!(is_zero(&r), "a freed result is all zeros");
    }
}

/// Whether `message` is `pattern`, where `…` in the pattern stands for any
/// text, followed by anything.
fn matches(pattern: &str, message: &str) -> bool {
    let mut pieces = pattern.split('…');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = message.strip_prefix(first) else {
        return false;
    };
    for piece in pieces {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Runs one row; the mismatches, if any.
fn verify(fx: &Fixture, row: &Row) -> Vec<String> {
    let mut wrong = Vec::new();
    // A claude that did not run must not pass on an earlier row's record,
    // and only this row's smolvm invocations count.
    let _ = std::fs::remove_file(fx.in_guest("/home/node/.claude-standin/argv"));
    fx.invocations();
    let result = run(fx, row);
    let ran = fx.invocations();
    match (&row.expect, result) {
        (Expect::Rejected(status, pattern), Err(f)) => {
            if f.status != *status || !matches(pattern, &f.message) {
                wrong.push(format!("returned {:?}: {}", f.status, f.message));
            }
            if !ran.is_empty() {
                wrong.push(format!("was rejected, yet smolvm ran {} times", ran.len()));
            }
        }
        (Expect::Rejected(..), Ok(_)) => wrong.push("was accepted".into()),
        (Expect::Accepted(_), Err(f)) => {
            wrong.push(format!("returned {:?}: {}", f.status, f.message))
        }
        (Expect::Accepted(effect), Ok(seen)) => {
            if let Err(e) = check_effect(fx, effect, seen) {
                wrong.push(e);
            }
        }
    }
    let host = row.input.bytes();
    if row.argument == "host_path" && !host.is_empty() {
        let seen_by_smolvm = ran
            .iter()
            .flatten()
            .any(|a| a.windows(host.len()).any(|w| w == host));
        if seen_by_smolvm {
            wrong.push("the host path reached smolvm's command line".into());
        }
    }
    let marks = fx.marks();
    if !marks.is_empty() {
        wrong.push(format!("shell code in the input ran: {marks:?}"));
        for m in marks {
            std::fs::remove_file(m).unwrap();
        }
    }
    wrong
}

fn check_effect(fx: &Fixture, effect: &Effect, seen: Seen) -> Result<(), String> {
    match (effect, seen) {
        (Effect::Opened, Seen::Opened(_)) | (Effect::Nothing, Seen::Done) => Ok(()),
        (Effect::ClaudeArgv(expected), seen) => {
            let code = match &seen {
                Seen::Opened(b) => b.exec_claude(&[], false).map_err(|f| f.message)?,
                Seen::ClaudeRan(code) => *code,
                _ => return Err("claude was not run".into()),
            };
            let got: Vec<String> = fx
                .bottle
                .claude_argv()
                .into_iter()
                .map(|a| String::from_utf8(a).unwrap())
                .collect();
            if code != 0 || got != *expected {
                return Err(format!("claude exited {code} with argv {got:?}"));
            }
            Ok(())
        }
        (Effect::Exit(code, stdout, stderr), Seen::Ran(r)) => {
            let err = String::from_utf8_lossy(&r.stderr);
            if r.exit_code != *code || r.stdout != stdout.as_bytes() || !err.contains(stderr) {
                let out = String::from_utf8_lossy(&r.stdout);
                let err: String = err.chars().take(200).collect();
                return Err(format!(
                    "exit status {}, stdout {out:?}, stderr {err:?}",
                    r.exit_code
                ));
            }
            Ok(())
        }
        (Effect::Copied(guest), Seen::Done) => {
            let path = fx.in_guest(guest);
            let found = std::fs::read(&path);
            let _ = std::fs::remove_file(&path);
            match found {
                Ok(bytes) if bytes == HOST_BYTES => Ok(()),
                other => Err(format!("{guest} in the guest: {other:?}")),
            }
        }
        (Effect::Returns(expected), Seen::Returned(s)) if s == *expected => Ok(()),
        (_, Seen::Returned(s)) => Err(format!("returned {s:?}")),
        _ => Err("did something else".into()),
    }
}

/// A Markdown code span holding `s`, safe inside a table cell.
fn code(s: &str) -> String {
    let longest_run = s
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or_default();
    let fence = "`".repeat(longest_run + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}").replace('|', "\\|")
}

fn shown_input(row: &Row) -> String {
    if let Some(shown) = row.shown {
        return shown.to_owned();
    }
    match &row.input {
        Input::Null => "`NULL`".to_owned(),
        Input::Text(s) => code(&format!("{s:?}")),
        Input::Bytes(b) => code(&format!("b\"{}\"", b.escape_ascii())),
    }
}

fn shown_outcome(row: &Row) -> (String, String) {
    let ok = if row.function.ends_with("_free")
        || row.function == "bottle_close"
        || row.function == "bottle_status_str"
    {
        "—".to_owned()
    } else {
        "`BOTTLE_OK`".to_owned()
    };
    match &row.expect {
        Expect::Rejected(status, message) => (format!("`{status:?}`"), code(message)),
        Expect::Accepted(effect) => (
            ok,
            match effect {
                Effect::Opened => "a handle; nothing runs until it is used".to_owned(),
                Effect::ClaudeArgv(args) if row.function == "bottle_open" => format!(
                    "with no arguments of its own, claude receives exactly {}",
                    code(&format!("{args:?}"))
                ),
                Effect::ClaudeArgv(args) => {
                    format!("claude receives exactly {}", code(&format!("{args:?}")))
                }
                Effect::Exit(status, stdout, stderr) => {
                    let mut s = format!(
                        "exit status {status}, stdout {}",
                        code(&format!("{stdout:?}"))
                    );
                    if !stderr.is_empty() {
                        s += &format!(", stderr contains {}", code(stderr));
                    }
                    s
                }
                Effect::Copied(guest) => {
                    format!("copied, byte for byte, to {} in the guest", code(guest))
                }
                Effect::Nothing => "returns; nothing happens".to_owned(),
                Effect::Returns(s) => format!("returns {}", code(&format!("{s:?}"))),
            },
        ),
    }
}

const DOC_HEAD: &str = "# Bad input

<!-- Generated by tests/bad_input_matrix.rs; do not edit. Rewrite it with
     BOTTLE_UPDATE_DOCS=1 cargo test --test bad_input_matrix -->

Every function of the C API (v0.1) against the inputs that trip wrappers of
command-line tools: NULL, empty strings, bytes that are not UTF-8, over-long
strings, names and users with `-`, `:`, spaces or `..`, shell
metacharacters, and host paths that start with `-` or contain `:`.
`tests/bad_input_matrix.rs` runs every row below through the C ABI against
the stand-in smolvm, and fails when this page and the test disagree.

- **Rejected** rows return the status shown, and `bottle_last_error()`
  starts with the message shown (`…` stands for any text). smolvm is never
  started: the test runs smolvm through a wrapper that records every
  invocation, and a rejected call leaves no record. Out-parameters are
  NULL or zero.
- **Accepted** rows return `BOTTLE_OK` (or, for functions without a status,
  simply return) and do what the last column says.
- In every row, the shell code in the inputs (`touch bottle-pwned`) runs
  nowhere: no `bottle-pwned` appears on the host or in the guest. In
  `bottle_cp_in` rows, the host path never appears in smolvm's command
  line.
- Inputs are Rust literals: `\"...\"` is a UTF-8 string, `b\"...\"` bytes.
  `bottle_exec` rows run `id -un` when the row is not about the script;
  `bottle_exec_claude` rows pass `argv = {\"first\", INPUT}`; `bottle_cp_in`
  rows copy to `/tmp/copied` and read host paths relative to a private
  working directory.
";

fn render(rows: &[Row]) -> String {
    let mut doc = DOC_HEAD.to_owned();
    let mut function = "";
    for row in rows {
        if row.function != function {
            function = row.function;
            doc += &format!(
                "\n## `{function}`\n\n| argument | kind | input | returns | message or effect |\n| --- | --- | --- | --- | --- |\n"
            );
        }
        let (status, outcome) = shown_outcome(row);
        doc += &format!(
            "| `{}` | {} | {} | {status} | {outcome} |\n",
            row.argument,
            row.kind,
            shown_input(row)
        );
    }
    doc
}

#[test]
fn every_function_with_every_bad_input() {
    let rows = rows();
    let fx = Fixture::new(&rows);
    let wrong: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            verify(&fx, row).into_iter().map(move |why| {
                let input = shown_input(row);
                let input: String = input.chars().take(80).collect();
                format!(
                    "{}({}) with {} {input}: {why}",
                    row.function, row.argument, row.kind
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    let doc = render(&rows);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BAD-INPUT.md");
    if std::env::var_os("BOTTLE_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, doc).expect("write docs/BAD-INPUT.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == doc,
        "docs/BAD-INPUT.md differs from the matrix in tests/bad_input_matrix.rs; \
         run `BOTTLE_UPDATE_DOCS=1 cargo test --test bad_input_matrix` and commit it"
    );
}
