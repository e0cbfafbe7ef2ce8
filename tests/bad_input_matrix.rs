//! The bad-input matrix: every function of the C API against every kind of
//! input that trips wrappers like this one (NULL, empty, not UTF-8,
//! over-long, `-`, `:`, spaces, `..`, shell metacharacters, control
//! characters, host paths that smolvm would misread). Each row says what
//! the call returns and, when it is accepted, what it does; the test runs
//! every row through the C ABI and checks that, and that no row runs
//! anything it should not.
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
//!
//! Adding to the matrix:
//!
//! - A row is one `add(function, argument, kind, input, shown, expect)`
//!   line in `rows()`: the function and the argument as the header names
//!   them, the kind of input, the input (`Null`, `text(..)`, `Bytes(..)`,
//!   or `Input::Default`, the argument's valid default), how the docs show
//!   it when not as a literal, and what the call must return and do
//!   (`invalid(..)`, `exits(..)`, `copied(..)`, ...). The call's other
//!   arguments keep their defaults.
//! - A function is one arm in `call()`: the call with every argument valid.
//!   Each argument goes through `c` under its name (`c.ptr("b", b)`,
//!   `c.cstr("script", "id -un")`, `c.num("timeout_ms", 1000)`,
//!   `c.out("out", ..)`), which passes the row's input instead when the row
//!   is about it. A setter's arm sets its value on fresh options through
//!   `c.exec_with`, `c.copied_in`, `c.launched` or `c.called_with`, which
//!   then use the options. A function without an arm, or a row about an
//!   argument that its arm does not pass through `c`, fails the test.
//! - A new kind of outcome is an `Effect`, checked in `check_effect` and
//!   described in `shown_outcome`.
//!
//! Then rewrite docs/BAD-INPUT.md, as above.

mod common;

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ::bottle::ffi::bottle::*;
use ::bottle::ffi::call_options::*;
use ::bottle::ffi::cancel::*;
use ::bottle::ffi::copy_options::*;
use ::bottle::ffi::endpoint::*;
use ::bottle::ffi::exec_options::*;
use ::bottle::ffi::exec_result::{bottle_exec_result, bottle_exec_result_free};
use ::bottle::ffi::launch::*;
use ::bottle::ffi::status::bottle_status::{self, *};
use ::bottle::ffi::status::bottle_status_str;
use common::{check, cstr, Bottle, Exec, Failure, Machine, NOT_UTF8};

/// What a call is given for the argument under test.
#[derive(Debug)]
enum Input {
    Null,
    Text(String),
    Bytes(&'static [u8]),
    /// The argument's valid default from its function's arm in `call()`
    /// (an open bottle, a zeroed struct): the row checks the function
    /// takes it.
    Default,
}

impl Input {
    fn c_string(&self) -> Option<CString> {
        match self {
            Input::Null | Input::Default => None,
            Input::Text(s) => Some(cstr(s)),
            Input::Bytes(b) => Some(CString::new(*b).unwrap()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Null | Input::Default => b"",
            Input::Text(s) => s.as_bytes(),
            Input::Bytes(b) => b,
        }
    }

    fn text(&self) -> &str {
        std::str::from_utf8(self.bytes()).unwrap()
    }
}

/// What a row expects.
#[derive(Debug)]
enum Expect {
    /// This status, and a message that starts with this text, where `…`
    /// stands for any text. smolvm is never started.
    Rejected(bottle_status, &'static str),
    /// As `Rejected`, for what only the guest can tell (a guest user that
    /// does not exist): smolvm runs exactly one `machine exec`, the
    /// documented lookup, and nothing else.
    RejectedAfterLookup(bottle_status, &'static str),
    /// `BOTTLE_OK` (or no status at all), and this happens.
    Accepted(Effect),
}

#[derive(Debug)]
enum Effect {
    /// `bottle_open` returns a handle; nothing runs until it is used.
    Opened,
    /// claude receives exactly these arguments (for a `bottle_open` or
    /// prompt-path row: when the new handle runs it with no arguments of
    /// its own).
    ClaudeArgv(Vec<String>),
    /// The script exits with this status, with exactly this stdout and a
    /// stderr that contains this text.
    Exit(i32, &'static str, &'static str),
    /// The host file arrives, byte for byte, at this guest path.
    Copied(&'static str),
    /// A function without a status returns, and nothing happens: smolvm is
    /// not started.
    Nothing,
    /// The function returns this string.
    Returns(&'static str),
    /// The function returns NULL.
    ReturnsNull,
    /// The function returns this boolean.
    ReturnsBool(bool),
    /// The script's variable (`$V`, or in a `name` row the name given)
    /// holds exactly the value given (`"v"` in a `name` row).
    EnvReached,
    /// As `Copied`, and the guest file has this mode, uid and gid.
    CopiedAs(&'static str, u32, u32, u32),
    /// The host directory arrives whole (`TREE_FILES`) under this guest
    /// path.
    CopiedTree(&'static str),
    /// The guest file arrives, byte for byte, at the row's host path, and
    /// no temporary file is left beside it.
    CopiedOut,
    /// The machine launches and `smolvm machine status --json` holds this
    /// text, where `…` stands for any text.
    Status(&'static str),
    /// The machine launches under exactly the name given.
    NamedAsGiven,
    /// The machine launches, and smolvm's `machine create` was not given
    /// this flag, so smolvm's default applies.
    NoFlag(&'static str),
    /// The machine launches through smolvm's CLI (its `machine create`
    /// ran), not at an endpoint.
    ThroughCli,
    /// `bottle_launch` goes to the endpoint's serve (the test's socket,
    /// which hangs up at once) and fails with this status and message;
    /// smolvm's CLI does not run, and no launch record is left behind.
    AtServe(bottle_status, &'static str),
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

/// Where `bottle_cp_in_with` copies a directory to.
const TREE_DEST: &str = "/tmp/copied-tree";

/// The files of every host tree that `bottle_cp_in_with` accepts.
const TREE_FILES: &[&str] = &["-rf", "..x/y", "sub dir/$(touch bottle-pwned);`id`|&"];

/// What every guest file `bottle_cp_out` copies holds.
const GUEST_BYTES: &[u8] = b"guest\0bytes\r\n";

/// The guest file the `bottle_cp_out` rows not about `guest_path` copy.
const OUT_SOURCE: &str = "/tmp/out/source";

/// The guest files the `bottle_cp_out` rows read.
const OUT_FILES: &[&str] = &[
    OUT_SOURCE,
    "/tmp/out/-x",
    "/tmp/out/a b",
    "/tmp/out/dots",
    "/tmp/out/up",
    "/tmp/out/$(touch bottle-pwned);`id`|&<>*",
];

/// The host file the `bottle_cp_out` rows not about `host_path` write.
const OUT_HOST: &str = "copied-out";

/// The guest directories the accepted `dir` rows start in.
const WORKDIRS: &[&str] = &[
    "/tmp/wd/-x",
    "/tmp/wd/a:b",
    "/tmp/wd/a b",
    "/tmp/wd/it's \"q\"",
    "/tmp/wd/dots",
    "/tmp/wd/$(touch bottle-pwned);`id`|&",
    "/tmp/wd/a\nb",
];

/// The variable and value of the environment rows not about them.
const ENV_NAME: &str = "V";
const ENV_VALUE: &str = "v";

/// The guest path of the volume rows not about it, and what the shared
/// directory's `vol-file` holds.
const VOLUME_GUEST: &str = "/mnt/vol";
const VOLUME_BYTES: &str = "volume\n";

/// The PEM files of the endpoint rows, in the working directory: one
/// self-signed EC certificate, as the CA's and as the client's, and its
/// key. They never reach a handshake: no row contacts a serve over TLS.
const CA_FILE: &str = "ca.pem";
const CERT_FILE: &str = "client.pem";
const KEY_FILE: &str = "client.key";
const TLS_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhzCCAS2gAwIBAgIUfgzOqBcS33SiYjYbRfrm79CxVHUwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNYm90dGxlLW1hdHJpeDAgFw0yNjEyMDQxODM0MTdaGA8yMTI2
MTExMDE4MzQxN1owGDEWMBQGA1UEAwwNYm90dGxlLW1hdHJpeDBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABFm2DmnlUxigB2PgjCO4lZFD+BV2xJiZvm+e6l2e+6bo
mlcjwHbWCFHczgjlqmJl9kTl0KSDrZRJpiOfvwSwdaWjUzBRMB0GA1UdDgQWBBRS
H+kTBbe6km3fZt2fogKIwxv92TAfBgNVHSMEGDAWgBRSH+kTBbe6km3fZt2fogKI
wxv92TAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDvZSehLZOE
OT4CILCuK0uxwAXOTKUKLYMcXDMXLitx5AIgAxJpIFbVLfIFOykPenhAwJjS0ars
fxZHXQgkpWxnlA0=
-----END CERTIFICATE-----
";
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIWeZdHsHiBzqbQ3l
V6wDfvh23QhP/4XRhgwsxFhKLEChRANCAARZtg5p5VMYoAdj4IwjuJWRQ/gVdsSY
mb5vnupdnvum6JpXI8B21ghR3M4I5apiZfZE5dCkg62USaYjn78EsHWl
-----END PRIVATE KEY-----
";
/// A PEM block that is not base64, and a file holding two keys.
const BAD_PEM: &str = "bad.pem";
const BAD_PEM_TEXT: &str = "-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
const TWO_KEYS: &str = "two.key";

/// The `https://` endpoint of the rows not about the URL; no row
/// connects to it.
const HTTPS_URL: &str = "https://localhost:1";

/// The private working directory: host paths of the rows are relative to
/// it, and launch rows share directories from it.
fn work_dir() -> PathBuf {
    std::env::temp_dir()
        .join(format!("bottle-matrix-{}", std::process::id()))
        .join("work")
}

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

fn copied_as(mode: u32, uid: u32, gid: u32) -> Expect {
    Expect::Accepted(Effect::CopiedAs(GUEST_DEST, mode, uid, gid))
}

fn accepted(effect: Effect) -> Expect {
    Expect::Accepted(effect)
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

    // bottle_open_at takes machine names by the same rules.
    let machine_names = || vec![
        ("NULL", Null, None, invalid("machine_name: must not be NULL")),
        ("empty", text(""), None, invalid("machine_name: must not be empty")),
        ("not UTF-8", not_utf8(), None, invalid("machine_name: is not valid UTF-8")),
        ("over-long", long("", "n", 129), Some("`\"n\"` × 129"), invalid("machine_name: is 129 bytes long; smolvm allows at most 128")),
        ("`-`", text("-x"), None, invalid("machine_name: must start with an ASCII letter or digit")),
        ("`-`", text("--name"), None, invalid("machine_name: must start with an ASCII letter or digit")),
        ("`-`", text("a-"), None, invalid("machine_name: must not end with '-'")),
        ("`-`", text("a--b"), None, invalid("machine_name: must not contain \"--\"")),
        ("`-`", text("agent-1"), None, Expect::Accepted(Effect::Opened)),
        ("`:`", text("a:b"), None, invalid("machine_name: character ':' at byte 1 is not allowed")),
        ("spaces", text("a b"), None, invalid("machine_name: character ' ' at byte 1 is not allowed")),
        ("`..`", text(".."), None, invalid("machine_name: character '.' at byte 0 is not allowed")),
        ("`..`", text("../x"), None, invalid("machine_name: character '.' at byte 0 is not allowed")),
        ("shell metacharacters", text("a;touch bottle-pwned"), None, invalid("machine_name: character ';' at byte 1 is not allowed")),
        ("shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("machine_name: character '$' at byte 0 is not allowed")),
        ("control characters", text("a\nb"), None, invalid("machine_name: character U+000A at byte 1 is not allowed")),
        ("non-ASCII", text("é"), None, invalid("machine_name: character U+00E9 at byte 0 is not allowed")),
    ];
    let f = "bottle_open";
    let a = "machine_name";
    for (kind, input, shown, expect) in machine_names() {
        add(f, a, kind, input, shown, expect);
    }
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
    add(f, a, "`..`", text("/tmp/../tmp/dots"), None, invalid("guest_path: \"/tmp/../tmp/dots\" has a '..' component, which smolvm's agent refuses"));
    add(f, a, "`..`", text("/../../../tmp/up"), None, invalid("guest_path: \"/../../../tmp/up\" has a '..' component, which smolvm's agent refuses"));
    add(f, a, "shell metacharacters", text("/tmp/$(touch bottle-pwned);`id`|&<>*"), None, copied("/tmp/$(touch bottle-pwned);`id`|&<>*"));

    add("bottle_close", "b", "NULL", Null, None, Expect::Accepted(Effect::Nothing));
    let f = "bottle_exec_result_free";
    add(f, "result", "NULL", Null, None, Expect::Accepted(Effect::Nothing));
    add(f, "result", "all zeros", Input::Default, Some("`{0}`"), Expect::Accepted(Effect::Nothing));
    add(f, "result", "freed twice", Input::Default, Some("a result of `bottle_exec`"), Expect::Accepted(Effect::Nothing));
    let f = "bottle_status_str";
    // Codes are only ever appended, so these stay unknown.
    for (code, shown) in [(-1, "`-1`"), (1000, "`1000`"), (c_int::MAX, "`INT_MAX`")] {
        add(f, "status", "out of range", text(&code.to_string()), Some(shown), Expect::Accepted(Effect::Returns("unknown status")));
    }

    // Since v0.1: options, cancel tokens, copies both ways, launch, reap.
    let nothing = || Expect::Accepted(Effect::Nothing);
    let opts_null = || invalid("opts: must not be NULL");
    let env = || accepted(Effect::EnvReached);
    let control = "a\nb\r\t\u{1b}[31m";

    let f = "bottle_exec_with";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    let a = "script";
    add(f, a, "NULL", Null, None, invalid("script: must not be NULL"));
    add(f, a, "empty", text(""), None, exits(0, "", ""));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("script: is not valid UTF-8"));
    add(f, a, "over-long", long("#", "x", 131_071), Some("`\"#\"` + `\"x\"` × 131071"), invalid("script: the script is 131072 bytes; the kernel passes at most 131071 bytes in one argument"));
    add(f, a, "`-`", text("-x"), None, exits(127, "", "-x: command not found"));
    add(f, a, "shell metacharacters", text("echo $((6*7)) 'a;b' \"$USER\" `echo x`"), None, exits(0, "42 a;b node x\n", ""));
    add(f, "opts", "NULL", Null, None, exits(0, "node\n", ""));
    add(f, "out", "NULL", Null, None, invalid("out: must not be NULL"));

    add("bottle_exec_options_new", "out", "NULL", Null, None, invalid("out: must not be NULL"));
    add("bottle_exec_options_free", "opts", "NULL", Null, None, nothing());

    let f = "bottle_exec_options_set_user";
    let a = "user";
    add(f, a, "NULL", Null, None, exits(0, "node\n", ""));
    add(f, a, "empty", text(""), None, invalid("user: must not be empty"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("user: is not valid UTF-8"));
    add(f, a, "over-long", long("", "u", 33), Some("`\"u\"` × 33"), invalid("user: is 33 bytes long; at most 32 are allowed"));
    add(f, a, "`-`", text("-c"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`-`", text("--login"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`-`", text("www-data"), None, exits(1, "", "user www-data does not exist"));
    add(f, a, "`:`", text("a:b"), None, invalid("user: character ':' at byte 1 is not allowed"));
    add(f, a, "spaces", text("no de"), None, invalid("user: character ' ' at byte 2 is not allowed"));
    add(f, a, "`..`", text(".."), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "shell metacharacters", text("node;touch bottle-pwned"), None, invalid("user: character ';' at byte 4 is not allowed"));
    add(f, a, "shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "control characters", text("no\nde"), None, invalid("user: character U+000A at byte 2 is not allowed"));
    add(f, a, "non-ASCII", text("nöde"), None, invalid("user: character U+00F6 at byte 1 is not allowed"));
    add(f, a, "valid", text("root"), None, exits(0, "root\n", ""));
    add(f, "opts", "NULL", Null, None, opts_null());

    for f in ["bottle_exec_options_add_env", "bottle_exec_options_add_secret_env"] {
        let a = "name";
        add(f, a, "NULL", Null, None, invalid("name: must not be NULL"));
        add(f, a, "empty", text(""), None, invalid("name: \"\" is not a valid environment variable name (use ASCII letters, digits and '_', not starting with a digit)"));
        add(f, a, "not UTF-8", not_utf8(), None, invalid("name: is not valid UTF-8"));
        add(f, a, "over-long", long("N", "N", 131_069), Some("`\"N\"` × 131070"), invalid("name: …"));
        add(f, a, "`-`", text("-e"), None, invalid("name: \"-e\" is not a valid environment variable name"));
        add(f, a, "`-`", text("A-B"), None, invalid("name: \"A-B\" is not a valid environment variable name"));
        add(f, a, "`:`", text("A:B"), None, invalid("name: \"A:B\" is not a valid environment variable name"));
        add(f, a, "`=`", text("A=B"), None, invalid("name: \"A=B\" is not a valid environment variable name"));
        add(f, a, "spaces", text("A B"), None, invalid("name: \"A B\" is not a valid environment variable name"));
        add(f, a, "`..`", text(".."), None, invalid("name: \"..\" is not a valid environment variable name"));
        add(f, a, "starts with a digit", text("1A"), None, invalid("name: \"1A\" is not a valid environment variable name"));
        add(f, a, "shell metacharacters", text("A;touch bottle-pwned"), None, invalid("name: \"A;touch bottle-pwned\" is not a valid environment variable name"));
        add(f, a, "shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("name: \"$(touch bottle-pwned)\" is not a valid environment variable name"));
        add(f, a, "control characters", text("A\nB"), None, invalid("name: \"A\\nB\" is not a valid environment variable name"));
        add(f, a, "non-ASCII", text("É"), None, invalid("name: \"É\" is not a valid environment variable name"));
        add(f, a, "carrier name", text("BOTTLE_ENV_0"), None, invalid("name: \"BOTTLE_ENV_0\" is reserved"));
        add(f, a, "carrier name", text("BOTTLE_SECRET_1"), None, invalid("name: \"BOTTLE_SECRET_1\" is reserved"));
        add(f, a, "carrier name", text("BOTTLE_MACHINE_ENV_0"), None, invalid("name: \"BOTTLE_MACHINE_ENV_0\" is reserved"));
        add(f, a, "`_`", text("_"), None, invalid("name: \"_\" cannot be set"));
        add(f, a, "valid", text("_Ab9"), None, env());
        let a = "value";
        add(f, a, "NULL", Null, None, invalid("value: must not be NULL"));
        add(f, a, "empty", text(""), None, env());
        add(f, a, "not UTF-8", not_utf8(), None, invalid("value: is not valid UTF-8"));
        // The value also travels as BOTTLE_..._N=VALUE, under a carrier name.
        add(f, a, "over-long", long("", "v", 131_032), Some("`\"v\"` × 131032"), invalid("value: the value under its carrier name (BOTTLE_..._N=VALUE) is 131072 bytes; the kernel passes at most 131071 bytes in one argument"));
        add(f, a, "longest", long("", "v", 131_031), Some("`\"v\"` × 131031"), env());
        add(f, a, "`-`", text("-x"), None, env());
        add(f, a, "`-`", text("--help"), None, env());
        add(f, a, "`:`", text("a:b"), None, env());
        add(f, a, "`=`", text("a=b=c"), None, env());
        add(f, a, "spaces", text(" two  words "), None, env());
        add(f, a, "`..`", text("../../etc/passwd"), None, env());
        add(f, a, "shell metacharacters", text(meta), None, env());
        add(f, a, "control characters", text(control), None, env());
        add(f, a, "non-ASCII", text("héllo ✓"), None, env());
        add(f, "opts", "NULL", Null, None, opts_null());
    }

    let f = "bottle_exec_options_set_workdir";
    let a = "dir";
    add(f, a, "NULL", Null, None, exits(0, "/home/node\n", ""));
    add(f, a, "empty", text(""), None, invalid("dir: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("dir: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "d", 4095), Some("`\"/\"` + `\"d\"` × 4095"), invalid("dir: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "relative", text("tmp"), None, invalid("dir: \"tmp\" is not an absolute guest path"));
    add(f, a, "`-`", text("-x"), None, invalid("dir: \"-x\" is not an absolute guest path"));
    add(f, a, "`-`", text("/tmp/wd/-x"), None, exits(0, "/tmp/wd/-x\n", ""));
    add(f, a, "`:`", text("/tmp/wd/a:b"), None, exits(0, "/tmp/wd/a:b\n", ""));
    add(f, a, "spaces", text("/tmp/wd/a b"), None, exits(0, "/tmp/wd/a b\n", ""));
    add(f, a, "quotes", text("/tmp/wd/it's \"q\""), None, exits(0, "/tmp/wd/it's \"q\"\n", ""));
    add(f, a, "`..`", text("/tmp/wd/../wd/dots"), None, exits(0, "/tmp/wd/dots\n", ""));
    add(f, a, "shell metacharacters", text("/tmp/wd/$(touch bottle-pwned);`id`|&"), None, exits(0, "/tmp/wd/$(touch bottle-pwned);`id`|&\n", ""));
    add(f, a, "control characters", text("/tmp/wd/a\nb"), None, exits(0, "/tmp/wd/a\nb\n", ""));
    add(f, a, "missing", text("/tmp/wd/missing"), None, exits(1, "", "/tmp/wd/missing: No such file or directory"));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_exec_options_set_timeout_ms";
    let a = "timeout_ms";
    add(f, a, "0 (no limit)", text("0"), Some("`0`"), exits(0, "node\n", ""));
    add(f, a, "largest", text("u64::MAX"), Some("`UINT64_MAX`"), exits(0, "node\n", ""));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_exec_options_set_stdin";
    let a = "data";
    add(f, a, "NULL, len 5", Null, None, invalid("data: must not be NULL when len is 5"));
    add(f, a, "NULL, len 0", Null, None, exits(0, "", ""));
    add(f, a, "NUL and control bytes", Bytes(b"a\0b\r\n\x1b[31m"), None, exits(0, "a\0b\r\n\x1b[31m", ""));
    add(f, "opts", "NULL", Null, None, opts_null());

    for f in ["bottle_exec_options_set_stdout_fn", "bottle_exec_options_set_stderr_fn"] {
        add(f, "callback", "NULL", Null, None, exits(0, "node\n", "err"));
        add(f, "opts", "NULL", Null, None, opts_null());
    }

    let f = "bottle_exec_options_set_cancel";
    add(f, "cancel", "NULL", Null, None, exits(0, "node\n", ""));
    add(f, "opts", "NULL", Null, None, opts_null());

    add("bottle_cancel_new", "out", "NULL", Null, None, invalid("out: must not be NULL"));
    add("bottle_cancel_trip", "cancel", "NULL", Null, None, nothing());
    add("bottle_cancel_is_tripped", "cancel", "NULL", Null, None, accepted(Effect::ReturnsBool(false)));
    add("bottle_cancel_free", "cancel", "NULL", Null, None, nothing());

    let f = "bottle_cp_in_with";
    let tree = || accepted(Effect::CopiedTree(TREE_DEST));
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    let a = "host_path";
    add(f, a, "NULL", Null, None, invalid("host_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("host_path: must not be empty"));
    add(f, a, "not UTF-8", Bytes(b"caf\xe9"), None, copied(GUEST_DEST));
    add(f, a, "over-long", long("", "h", 5000), Some("`\"h\"` × 5000"), Expect::Rejected(BOTTLE_ERR_IO, "host_path …: cannot stat: File name too long"));
    add(f, a, "missing", text("missing"), None, Expect::Rejected(BOTTLE_ERR_IO, "host_path missing: cannot stat: No such file or directory"));
    add(f, a, "FIFO", text("fifo"), None, invalid("host_path: fifo is not a regular file; only regular files can be copied"));
    add(f, a, "directory", text("src-tree"), None, tree());
    add(f, a, "directory, symbolic link inside", text("link-tree"), None, invalid("host_path: link-tree/link is a symbolic link; a directory copy takes only regular files and directories"));
    add(f, a, "directory, FIFO inside", text("fifo-tree"), None, invalid("host_path: fifo-tree/fifo is a special file; a directory copy takes only regular files and directories"));
    add(f, a, "directory, name with `:` inside", text("colon-tree"), None, invalid("host_path: colon-tree/a:b: guest_path: \"/tmp/copied-tree/a:b\" contains ':', which smolvm's cp reads as MACHINE:PATH"));
    add(f, a, "directory, name not UTF-8 inside", text("latin1-tree"), None, invalid("host_path: latin1-tree/caf… has a name that is not UTF-8, which smolvm cannot take"));
    add(f, a, "starts with `-`", text("-file"), None, copied(GUEST_DEST));
    add(f, a, "starts with `-`", text("--help"), None, copied(GUEST_DEST));
    add(f, a, "contains `:`", text("default:etc:passwd"), None, copied(GUEST_DEST));
    add(f, a, "contains `:`", text("dir/default:/etc/passwd"), None, copied(GUEST_DEST));
    add(f, a, "directory, contains `:`", text("tree:x"), None, tree());
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
    add(f, a, "`..`", text("/tmp/../tmp/dots"), None, invalid("guest_path: \"/tmp/../tmp/dots\" has a '..' component, which smolvm's agent refuses"));
    add(f, a, "`..`", text("/../../../tmp/up"), None, invalid("guest_path: \"/../../../tmp/up\" has a '..' component, which smolvm's agent refuses"));
    add(f, a, "shell metacharacters", text("/tmp/$(touch bottle-pwned);`id`|&<>*"), None, copied("/tmp/$(touch bottle-pwned);`id`|&<>*"));
    add(f, "opts", "NULL", Null, None, copied_as(0o644, 0, 0));

    add("bottle_copy_options_new", "out", "NULL", Null, None, invalid("out: must not be NULL"));
    add("bottle_copy_options_free", "opts", "NULL", Null, None, nothing());

    let f = "bottle_copy_options_set_mode";
    let a = "mode";
    add(f, a, "0", text("0"), Some("`0`"), copied_as(0, 0, 0));
    add(f, a, "largest", text("0o7777"), Some("`07777`"), copied_as(0o7777, 0, 0));
    add(f, a, "over 07777", text("0o10000"), Some("`010000`"), invalid("mode: 0o10000 has bits beyond 07777"));
    add(f, a, "over 07777", text("u32::MAX"), Some("`UINT32_MAX`"), invalid("mode: 0o37777777777 has bits beyond 07777"));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_copy_options_set_owner_ids";
    let a = "uid, gid";
    add(f, a, "root", text("0, 0"), Some("`0, 0`"), copied_as(0o644, 0, 0));
    add(f, a, "valid", text("1000, 1000"), Some("`1000, 1000`"), copied_as(0o644, 1000, 1000));
    add(f, a, "unknown to the guest", text("4242, 4343"), Some("`4242, 4343`"), copied_as(0o644, 4242, 4343));
    add(f, a, "`(uid_t)-1`", text("u32::MAX, u32::MAX"), Some("`UINT32_MAX, UINT32_MAX`"), invalid("uid: 4294967295 is (uid_t)-1, which chown reads as \"leave unchanged\""));
    add(f, a, "largest", text("4294967294, 4294967294"), Some("`UINT32_MAX - 1` twice"), copied_as(0o644, u32::MAX - 1, u32::MAX - 1));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_copy_options_set_owner_user";
    let a = "user";
    add(f, a, "NULL", Null, None, copied_as(0o644, 0, 0));
    add(f, a, "empty", text(""), None, invalid("user: must not be empty"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("user: is not valid UTF-8"));
    add(f, a, "over-long", long("", "u", 33), Some("`\"u\"` × 33"), invalid("user: is 33 bytes long; at most 32 are allowed"));
    add(f, a, "`-`", text("-c"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`-`", text("--login"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "`:`", text("a:b"), None, invalid("user: character ':' at byte 1 is not allowed"));
    add(f, a, "spaces", text("no de"), None, invalid("user: character ' ' at byte 2 is not allowed"));
    add(f, a, "`..`", text(".."), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "shell metacharacters", text("node;touch bottle-pwned"), None, invalid("user: character ';' at byte 4 is not allowed"));
    add(f, a, "shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("user: must start with an ASCII letter or '_'"));
    add(f, a, "control characters", text("no\nde"), None, invalid("user: character U+000A at byte 2 is not allowed"));
    add(f, a, "non-ASCII", text("nöde"), None, invalid("user: character U+00F6 at byte 1 is not allowed"));
    add(f, a, "unknown to the guest", text("www-data"), None, Expect::RejectedAfterLookup(BOTTLE_ERR_INVALID_ARGUMENT, "user: no user \"www-data\" in the guest"));
    add(f, a, "valid", text("node"), None, copied_as(0o644, 1000, 1000));
    add(f, a, "valid", text("root"), None, copied_as(0o644, 0, 0));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_copy_options_set_progress_fn";
    add(f, "callback", "NULL", Null, None, copied_as(0o644, 0, 0));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_cp_out";
    let out = || accepted(Effect::CopiedOut);
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    let a = "guest_path";
    add(f, a, "NULL", Null, None, invalid("guest_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("guest_path: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("guest_path: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "g", 4095), Some("`\"/\"` + `\"g\"` × 4095"), invalid("guest_path: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "`-`", text("-x"), None, invalid("guest_path: \"-x\" is not an absolute guest path"));
    add(f, a, "`-`", text("/tmp/out/-x"), None, out());
    add(f, a, "`:`", text("/tmp/out/a:b"), None, invalid("guest_path: \"/tmp/out/a:b\" contains ':', which smolvm's cp reads as MACHINE:PATH"));
    add(f, a, "`:`", text("default:/tmp/out/source"), None, invalid("guest_path: \"default:/tmp/out/source\" is not an absolute guest path"));
    add(f, a, "spaces", text("/tmp/out/a b"), None, out());
    add(f, a, "`..`", text("/tmp/out/../out/dots"), None, invalid("guest_path: \"/tmp/out/../out/dots\" has a '..' component, which smolvm's agent refuses"));
    add(f, a, "`..`", text("/../../../tmp/out/up"), None, invalid("guest_path: \"/../../../tmp/out/up\" has a '..' component, which smolvm's agent refuses"));
    add(f, a, "shell metacharacters", text("/tmp/out/$(touch bottle-pwned);`id`|&<>*"), None, out());
    let a = "host_path";
    add(f, a, "NULL", Null, None, invalid("host_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("host_path: must not be empty"));
    add(f, a, "not UTF-8", Bytes(b"out\xe9"), None, out());
    add(f, a, "over-long", long("", "h", 5000), Some("`\"h\"` × 5000"), Expect::Rejected(BOTTLE_ERR_IO, "host_path …: cannot create a file beside it: File name too long"));
    add(f, a, "directory", text("dir"), None, invalid("host_path: dir is a directory; name the file to write"));
    add(f, a, "missing directory", text("missing/out"), None, Expect::Rejected(BOTTLE_ERR_IO, "host_path missing/out: cannot create a file beside it: No such file or directory"));
    add(f, a, "starts with `-`", text("-out"), None, out());
    add(f, a, "starts with `-`", text("--help-out"), None, out());
    add(f, a, "contains `:`", text("default:out:passwd"), None, out());
    add(f, a, "contains `:`", text("dir/default:/out"), None, out());
    add(f, a, "spaces", text("an out file"), None, out());
    add(f, a, "`..`", text("dir/../out-dots"), None, out());
    add(f, a, "shell metacharacters", text("o;$(touch bottle-pwned)`touch bottle-pwned`|&"), None, out());

    add("bottle_launch_options_new", "out", "NULL", Null, None, invalid("out: must not be NULL"));
    add("bottle_launch_options_free", "opts", "NULL", Null, None, nothing());

    let pid = std::process::id();
    let work = work_dir().display().to_string();
    let f = "bottle_launch_options_set_name";
    let a = "machine_name";
    add(f, a, "empty", text(""), None, invalid("machine_name: must not be empty"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("machine_name: is not valid UTF-8"));
    add(f, a, "over-long", long("", "n", 129), Some("`\"n\"` × 129"), invalid("machine_name: is 129 bytes long; smolvm allows at most 128"));
    add(f, a, "`-`", text("-x"), None, invalid("machine_name: must start with an ASCII letter or digit"));
    add(f, a, "`-`", text("a-"), None, invalid("machine_name: must not end with '-'"));
    add(f, a, "`-`", text("a--b"), None, invalid("machine_name: must not contain \"--\""));
    add(f, a, "`-`", Input::Text(format!("m{pid}-a_1")), Some("`\"mPID-a_1\"`"), accepted(Effect::NamedAsGiven));
    add(f, a, "`:`", text("a:b"), None, invalid("machine_name: character ':' at byte 1 is not allowed"));
    add(f, a, "spaces", text("a b"), None, invalid("machine_name: character ' ' at byte 1 is not allowed"));
    add(f, a, "`..`", text("../x"), None, invalid("machine_name: character '.' at byte 0 is not allowed"));
    add(f, a, "shell metacharacters", text("$(touch bottle-pwned)"), None, invalid("machine_name: character '$' at byte 0 is not allowed"));
    add(f, a, "control characters", text("a\nb"), None, invalid("machine_name: character U+000A at byte 1 is not allowed"));
    add(f, a, "non-ASCII", text("é"), None, invalid("machine_name: character U+00E9 at byte 0 is not allowed"));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_launch_options_set_image";
    let a = "image";
    add(f, a, "empty", text(""), None, invalid("image: \"\" is not an image reference (printable ASCII without spaces, not starting with '-')"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("image: is not valid UTF-8"));
    add(f, a, "`-`", text("-x"), None, invalid("image: \"-x\" is not an image reference"));
    add(f, a, "`-`", text("--privileged"), None, invalid("image: \"--privileged\" is not an image reference"));
    add(f, a, "spaces", text("agent latest"), None, invalid("image: \"agent latest\" is not an image reference"));
    add(f, a, "control characters", text("agent\n--net"), None, invalid("image: \"agent\\n--net\" is not an image reference"));
    add(f, a, "non-ASCII", text("agënt"), None, invalid("image: \"agënt\" is not an image reference"));
    add(f, a, "valid, `:`", text("ghcr.io/x/agent:1"), None, accepted(Effect::Status("\"image\":\"ghcr.io/x/agent:1\"")));
    add(f, a, "shell metacharacters", text("x;$(touch${IFS}bottle-pwned)`id`|&"), None, accepted(Effect::Status("\"image\":\"x;$(touch${IFS}bottle-pwned)`id`|&\"")));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_launch_options_set_cpus";
    add(f, "cpus", "0 (default)", text("0"), Some("`0`"), accepted(Effect::NoFlag("--cpus")));
    add(f, "opts", "NULL", Null, None, opts_null());
    let f = "bottle_launch_options_set_memory_mib";
    add(f, "mib", "0 (default)", text("0"), Some("`0`"), accepted(Effect::NoFlag("--mem")));
    add(f, "opts", "NULL", Null, None, opts_null());
    add("bottle_launch_options_set_network", "opts", "NULL", Null, None, opts_null());

    let f = "bottle_launch_options_add_volume";
    let vol = || exits(0, VOLUME_BYTES, "");
    let a = "host_path";
    add(f, a, "NULL", Null, None, invalid("host_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("host_path: \"\" must be an absolute path without ':'"));
    add(f, a, "relative", text("vol"), None, invalid("host_path: \"vol\" must be an absolute path without ':'"));
    add(f, a, "starts with `-`", text("-v"), None, invalid("host_path: \"-v\" must be an absolute path without ':'"));
    add(f, a, "contains `:`", text("/tmp/vol:/etc"), None, invalid("host_path: \"/tmp/vol:/etc\" must be an absolute path without ':'"));
    add(f, a, "not UTF-8", Bytes(b"/tmp/vol\xff"), None, invalid("host_path: /tmp/vol… is not UTF-8"));
    add(f, a, "shell metacharacters", Input::Text(format!("{work}/$(touch bottle-pwned);`id`|&")), Some("``\"WORK/$(touch bottle-pwned);`id`\\|&\"``"), vol());
    let a = "guest_path";
    add(f, a, "NULL", Null, None, invalid("guest_path: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("guest_path: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("guest_path: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "g", 4095), Some("`\"/\"` + `\"g\"` × 4095"), invalid("guest_path: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "relative", text("mnt"), None, invalid("guest_path: \"mnt\" is not an absolute guest path"));
    add(f, a, "`-`", text("-v"), None, invalid("guest_path: \"-v\" is not an absolute guest path"));
    add(f, a, "`:`", text("/mnt/vol:ro"), None, invalid("guest_path: \"/mnt/vol:ro\" must not contain ':'"));
    add(f, a, "shell metacharacters", text("/mnt/$(touch bottle-pwned);`id`|&"), None, vol());
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_launch_options_add_env";
    let a = "name";
    add(f, a, "NULL", Null, None, invalid("name: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid("name: \"\" is not a valid environment variable name"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("name: is not valid UTF-8"));
    add(f, a, "`-`", text("-e"), None, invalid("name: \"-e\" is not a valid environment variable name"));
    add(f, a, "`=`", text("A=B"), None, invalid("name: \"A=B\" is not a valid environment variable name"));
    add(f, a, "shell metacharacters", text("A;touch bottle-pwned"), None, invalid("name: \"A;touch bottle-pwned\" is not a valid environment variable name"));
    let a = "value";
    add(f, a, "NULL", Null, None, invalid("value: must not be NULL"));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("value: is not valid UTF-8"));
    add(f, a, "over-long", long("", "v", 131_070), Some("`\"v\"` × 131070"), invalid("value: NAME=VALUE is 131072 bytes; the kernel passes at most 131071 bytes in one argument"));
    add(f, a, "shell metacharacters", text(meta), None, env());
    add(f, a, "control characters", text(control), None, env());
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_launch_options_set_prompt_path";
    let a = "prompt_path";
    add(f, a, "empty", text(""), None, invalid("prompt_path: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", Bytes(b"/p\xff"), None, invalid("prompt_path: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "p", 4095), Some("`\"/\"` + `\"p\"` × 4095"), invalid("prompt_path: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "`-`", text("-p"), None, invalid("prompt_path: \"-p\" is not an absolute guest path"));
    add(f, a, "shell metacharacters", text("/p/$(touch /tmp/bottle-pwned);`id`'\"|&"), None, prompt("/p/$(touch /tmp/bottle-pwned);`id`'\"|&"));
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_launch";
    add(f, "opts", "NULL", Null, None, accepted(Effect::Status("\"name\":\"bottle-…-…-…\",\"state\":\"running\"")));
    add(f, "out", "NULL", Null, None, invalid("out: must not be NULL"));

    add("bottle_machine_name", "b", "NULL", Null, None, accepted(Effect::ReturnsNull));
    let f = "bottle_close_checked";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    add(f, "b", "from `bottle_open`", Input::Default, Some("an open bottle"), nothing());
    add("bottle_reap", "removed", "NULL", Null, None, invalid("removed: must not be NULL"));
    let f = "bottle_names_free";
    add(f, "names", "NULL", Null, None, nothing());
    add(f, "names", "all zeros", Input::Default, Some("`{0}`"), nothing());

    // The calls and setters that bound an operation by time and token.
    add("bottle_call_options_new", "out", "NULL", Null, None, invalid("out: must not be NULL"));
    add("bottle_call_options_free", "opts", "NULL", Null, None, nothing());
    for f in [
        "bottle_call_options_set_timeout_ms",
        "bottle_call_options_set_cancel",
        "bottle_copy_options_set_timeout_ms",
        "bottle_copy_options_set_cancel",
        "bottle_launch_options_set_timeout_ms",
        "bottle_launch_options_set_cancel",
    ] {
        add(f, "opts", "NULL", Null, None, invalid("opts: must not be NULL"));
    }
    let f = "bottle_cp_out_with";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    add(f, "guest_path", "NULL", Null, None, invalid("guest_path: must not be NULL"));
    add(f, "host_path", "NULL", Null, None, invalid("host_path: must not be NULL"));
    add("bottle_close_with", "b", "NULL", Null, None, invalid("b: must not be NULL"));
    add("bottle_reap_with", "removed", "NULL", Null, None, invalid("removed: must not be NULL"));
    let f = "bottle_exec_claude_with";
    add(f, "b", "NULL", Null, None, invalid("b: must not be NULL"));
    add(f, "exit_code", "NULL", Null, None, invalid("exit_code: must not be NULL"));

    // Endpoints: bottles at a `smolvm serve` instead of the CLI. The
    // default endpoint is the test's socket, which no row may contact
    // unless it says so.
    let serve_url = format!("unix:{work}/serve.sock");
    let serve_shown = Some("an endpoint of `\"unix:WORK/serve.sock\"`");
    let no_tls = Some("an endpoint of `\"https://localhost:1\"`, no certificates");
    let needs_tls = || invalid("ep: https://localhost:1: an https endpoint needs its certificates set first (smolvm serve speaks only mutual TLS)");
    let ep_null = || invalid("ep: must not be NULL");
    let opened = || accepted(Effect::Opened);

    let f = "bottle_endpoint_new";
    let a = "url";
    let not_endpoint = |url: &str| format!("url: {url:?} is not an endpoint: use unix:/path/to/smolvm.sock, https://host:port or http://127.0.0.1:port");
    let unix_relative = |url: &str| format!("url: {url:?}: a unix socket is named by an absolute path, as in unix:/run/smolvm.sock");
    let plain_http = |url: &str| format!("url: {url:?}: plain http is allowed only to a loopback address (serve has no authentication); use https:// with mutual TLS for another host");
    let bad_url = |url: &str, why: &str| format!("url: {url:?}: {why}");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let no_path = "an endpoint is scheme://host:port, with no path, query or user";
    let bad_port = "the port must be a number from 1 to 65535";
    let no_host = "needs a host name or address";
    add(f, a, "NULL", Null, None, invalid("url: must not be NULL"));
    add(f, a, "empty", text(""), None, invalid(leak(not_endpoint(""))));
    add(f, a, "not UTF-8", not_utf8(), None, invalid("url: is not valid UTF-8"));
    for url in ["/run/smolvm.sock", "localhost:8443", "-h", "ftp://h:1", "HTTPS://h:1", "unix//run/smolvm.sock"] {
        add(f, a, "no scheme it knows", text(url), None, invalid(leak(not_endpoint(url))));
    }
    add(f, a, "unix, valid", Input::Text(serve_url.clone()), Some("`\"unix:WORK/serve.sock\"`"), opened());
    add(f, a, "unix, valid", text("unix:///run/smolvm.sock"), None, opened());
    for url in ["unix:relative.sock", "unix:", "unix://relative.sock", "unix:../run/smolvm.sock", "unix:-x"] {
        add(f, a, "unix, relative", text(url), None, invalid(leak(unix_relative(url))));
    }
    add(f, a, "unix, spaces and `:`", text("unix:/run/a b:c.sock"), None, opened());
    add(f, a, "unix, shell metacharacters", text("unix:/tmp/$(touch bottle-pwned);`id`|&"), None, opened());
    add(f, a, "unix, longest", long("unix:/", "s", 106), Some("`\"unix:/\"` + `\"s\"` × 106"), opened());
    add(f, a, "unix, over-long", long("unix:/", "s", 107), Some("`\"unix:/\"` + `\"s\"` × 107"), invalid("url: the socket path is 108 bytes long; a unix socket's path holds at most 107"));
    add(f, a, "https, valid", text("https://localhost:8443"), None, opened());
    add(f, a, "https, valid", text("https://vm-host/"), None, opened());
    add(f, a, "https, valid", text("https://[fd00::1]:9"), None, opened());
    add(f, a, "https, shell metacharacters", text("https://$(touch${IFS}bottle-pwned)`id`:1"), None, opened());
    for port in ["0", "65536", "-1", "x", ""] {
        let url = format!("https://h:{port}");
        add(f, a, "port out of range", Input::Text(url.clone()), None, invalid(leak(bad_url(&url, bad_port))));
    }
    for url in ["https://h:1/api", "https://h:1/?x=1", "https://h:1?x=1", "https://h:1#f", "https://u@h:1", "https://u:p@h:1"] {
        add(f, a, "path, query or user", text(url), None, invalid(leak(bad_url(url, no_path))));
    }
    for url in ["https://", "https://:1", "https://a b:1", "https://h\n:1"] {
        add(f, a, "no host", text(url), None, invalid(leak(bad_url(url, no_host))));
    }
    add(f, a, "IPv6 without `]`", text("https://[::1"), None, invalid(leak(bad_url("https://[::1", "an IPv6 address needs its closing ']'"))));
    for url in ["http://127.0.0.1:8080", "http://127.0.0.2:1", "http://[::1]:8080", "http://localhost:8080"] {
        add(f, a, "http, loopback", text(url), None, opened());
    }
    for url in ["http://10.0.0.1:80", "http://0.0.0.0:80", "http://[::]:80", "http://example.com:80", "http://localhost.example.com:80"] {
        add(f, a, "http, not loopback", text(url), None, invalid(leak(plain_http(url))));
    }
    add(f, a, "http, path", text("http://127.0.0.1:8080/api"), None, invalid(leak(bad_url("http://127.0.0.1:8080/api", no_path))));
    add(f, "out", "NULL", Null, None, invalid("out: must not be NULL"));
    add("bottle_endpoint_free", "ep", "NULL", Null, None, nothing());

    let f = "bottle_endpoint_set_tls";
    add(f, "ep", "NULL", Null, None, ep_null());
    add(f, "ep", "unix", Input::Text(serve_url.clone()), serve_shown, invalid("ep: unix:…: TLS is set only on an https:// endpoint"));
    add(f, "ep", "http, loopback", text("http://127.0.0.1:8080"), Some("an endpoint of `\"http://127.0.0.1:8080\"`"), invalid("ep: http://127.0.0.1:8080: TLS is set only on an https:// endpoint"));
    add(f, "ep", "https", Input::Default, Some("an endpoint of `\"https://localhost:1\"`"), opened());
    for (a, file, holds) in [("ca_file", "ca.pem", "certificate"), ("cert_file", "client.pem", "certificate"), ("key_file", "client.key", "private key")] {
        let io = |message: String| Expect::Rejected(BOTTLE_ERR_IO, leak(message));
        add(f, a, "NULL", Null, None, invalid(leak(format!("{a}: must not be NULL"))));
        add(f, a, "empty", text(""), None, invalid(leak(format!("{a}: must not be empty"))));
        add(f, a, "missing", text("missing.pem"), None, io(format!("{a} missing.pem: cannot read: No such file or directory")));
        add(f, a, "directory", text("dir"), None, io(format!("{a} dir: cannot read: Is a directory")));
        add(f, a, "over-long", long("", "p", 5000), Some("`\"p\"` × 5000"), io(format!("{a} …: cannot read: File name too long")));
        add(f, a, "no PEM", text(HOST_FILE), None, invalid(leak(format!("{a}: {HOST_FILE} holds no PEM {holds}"))));
        let other = if a == "key_file" { "client.pem" } else { "client.key" };
        add(f, a, "the other PEM", text(other), None, invalid(leak(format!("{a}: {other} holds no PEM {holds}"))));
        add(f, a, "bad PEM", text(BAD_PEM), None, invalid(leak(format!("{a}: {BAD_PEM}: not PEM: …"))));
        add(f, a, "valid", text(file), None, opened());
        add(f, a, "not UTF-8", Bytes(Box::leak([b"\xe9", file.as_bytes()].concat().into_boxed_slice())), None, opened());
        add(f, a, "starts with `-`", Input::Text(format!("-{file}")), None, opened());
        add(f, a, "contains `:`", Input::Text(format!("default:{file}")), None, opened());
    }
    add(f, "key_file", "two keys", text(TWO_KEYS), None, invalid(leak(format!("key_file: {TWO_KEYS} holds more than one private key"))));

    let f = "bottle_open_at";
    add(f, "ep", "NULL", Null, None, ep_null());
    add(f, "ep", "unix", Input::Default, serve_shown, opened());
    add(f, "ep", "https, no certificates", text(HTTPS_URL), no_tls, needs_tls());
    add(f, "ep", "http, loopback", text("http://127.0.0.1:8080"), Some("an endpoint of `\"http://127.0.0.1:8080\"`"), opened());
    let a = "machine_name";
    for (kind, input, shown, expect) in machine_names() {
        add(f, a, kind, input, shown, expect);
    }
    let a = "prompt_path";
    add(f, a, "NULL", Null, None, opened());
    add(f, a, "empty", text(""), None, invalid("prompt_path: \"\" is not an absolute guest path (it must start with '/')"));
    add(f, a, "not UTF-8", Bytes(b"/p\xff"), None, invalid("prompt_path: is not valid UTF-8"));
    add(f, a, "over-long", long("/", "p", 4095), Some("`\"/\"` + `\"p\"` × 4095"), invalid("prompt_path: is 4096 bytes long; a path may have at most 4095"));
    add(f, a, "relative", text("prompt.md"), None, invalid("prompt_path: \"prompt.md\" is not an absolute guest path"));
    add(f, a, "`-`", text("-p"), None, invalid("prompt_path: \"-p\" is not an absolute guest path"));
    add(f, a, "spaces", text("/home/node/my prompt.md"), None, opened());
    add(f, "out", "NULL", Null, None, invalid("out: must not be NULL"));

    let f = "bottle_launch_options_set_endpoint";
    add(f, "ep", "NULL", Null, None, accepted(Effect::ThroughCli));
    add(f, "ep", "unix", Input::Default, serve_shown, accepted(Effect::AtServe(BOTTLE_ERR_IO, "talking to smolvm serve at unix:…/serve.sock: …")));
    add(f, "ep", "https, no certificates", text(HTTPS_URL), no_tls, needs_tls());
    add(f, "opts", "NULL", Null, None, opts_null());

    let f = "bottle_reap_at";
    add(f, "ep", "NULL", Null, None, ep_null());
    add(f, "ep", "unix, nothing launched there", Input::Default, serve_shown, nothing());
    add(f, "ep", "https, no certificates", text(HTTPS_URL), no_tls, needs_tls());
    add(f, "opts", "NULL", Null, None, nothing());
    add(f, "removed", "NULL", Null, None, invalid("removed: must not be NULL"));
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
    serve: ServeTrap,
}

/// Where a serve would listen, for the endpoint rows: a unix socket that
/// counts the connections made to it and hangs up on each at once, so that
/// a call that must not contact serve is caught, and one that does fails
/// at once.
struct ServeTrap {
    url: String,
    contacts: Arc<AtomicUsize>,
}

impl ServeTrap {
    fn new(path: &Path) -> Self {
        let listener = UnixListener::bind(path).unwrap();
        let contacts = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&contacts);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        ServeTrap {
            url: format!("unix:{}", path.display()),
            contacts,
        }
    }

    fn contacts(&self) -> usize {
        self.contacts.load(Ordering::SeqCst)
    }
}

impl Fixture {
    fn new(rows: &[Row]) -> Self {
        let standin = std::fs::canonicalize(common::standin()).unwrap();
        let machine = Machine::new("matrix");
        let work = work_dir();
        let dir = work.parent().unwrap().to_path_buf();
        let log = dir.join("smolvm-log");
        std::fs::create_dir_all(&log).unwrap();
        std::fs::create_dir_all(work.join("dir")).unwrap();
        std::fs::write(work.join(HOST_FILE), HOST_BYTES).unwrap();
        for (file, pem) in [
            (CA_FILE, TLS_CERT),
            (CERT_FILE, TLS_CERT),
            (KEY_FILE, TLS_KEY),
            (BAD_PEM, BAD_PEM_TEXT),
            (TWO_KEYS, format!("{TLS_KEY}{TLS_KEY}").as_str()),
        ] {
            std::fs::write(work.join(file), pem).unwrap();
        }
        let serve = ServeTrap::new(&work.join("serve.sock"));
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
            let path = work.join(OsStr::from_bytes(row.input.bytes()));
            match (row.function, row.argument, &row.expect) {
                (_, "host_path", Expect::Accepted(Effect::Copied(_))) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, HOST_BYTES).unwrap();
                }
                (_, "host_path", Expect::Accepted(Effect::CopiedOut)) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                }
                ("bottle_launch_options_add_volume", "host_path", Expect::Accepted(_)) => {
                    shared_dir(&path);
                }
                ("bottle_endpoint_set_tls", "key_file", Expect::Accepted(_)) => {
                    std::fs::write(path, TLS_KEY).unwrap();
                }
                ("bottle_endpoint_set_tls", "ca_file" | "cert_file", Expect::Accepted(_)) => {
                    std::fs::write(path, TLS_CERT).unwrap();
                }
                _ => {}
            }
        }
        shared_dir(&work.join("vol"));
        for top in ["src-tree", "tree:x"] {
            for file in TREE_FILES {
                let path = work.join(top).join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, HOST_BYTES).unwrap();
            }
        }
        let bad_trees: [(&str, &[u8]); 4] = [
            ("link-tree", b"link"),
            ("fifo-tree", b"fifo"),
            ("colon-tree", b"a:b"),
            ("latin1-tree", b"caf\xe9"),
        ];
        for (top, name) in bad_trees {
            std::fs::create_dir_all(work.join(top)).unwrap();
            std::fs::write(work.join(top).join("file"), HOST_BYTES).unwrap();
            let path = work.join(top).join(OsStr::from_bytes(name));
            match top {
                "link-tree" => std::os::unix::fs::symlink(work.join(HOST_FILE), path).unwrap(),
                "fifo-tree" => mkfifo(&path),
                _ => std::fs::write(path, HOST_BYTES).unwrap(),
            }
        }
        mkfifo(&work.join("fifo"));
        for guest in OUT_FILES {
            let path = machine.rootfs().join(guest.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, GUEST_BYTES).unwrap();
        }
        for guest in WORKDIRS {
            std::fs::create_dir_all(machine.rootfs().join(guest.trim_start_matches('/'))).unwrap();
        }
        // Only this test runs in this binary, so nothing reads the
        // environment or the working directory while they change. The
        // stand-in resolves a relative state directory from its own working
        // directory, which is about to change.
        let home = std::fs::canonicalize(std::env::var_os("SMOLVM_STANDIN_HOME").unwrap()).unwrap();
        std::env::set_var("SMOLVM_STANDIN_HOME", home);
        std::env::set_var("BOTTLE_SMOLVM", &wrapper);
        // Launches at an endpoint record their machines here, for
        // bottle_reap_at.
        std::env::set_var("XDG_STATE_HOME", dir.join("state"));
        let cwd = std::env::current_dir().unwrap();
        std::env::set_current_dir(&work).unwrap();
        let bottle = machine.open();
        Fixture {
            bottle,
            machine,
            dir,
            log,
            cwd,
            serve,
        }
    }

    /// The records of launches at an endpoint (`XDG_STATE_HOME`).
    fn launch_records(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("state/libbottle/serve")) else {
            return Vec::new();
        };
        dir.map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect()
    }

    /// smolvm's invocations since the last look, each as its arguments.
    fn invocations(&self) -> Vec<Vec<Vec<u8>>> {
        let found = self.peek_invocations();
        for entry in std::fs::read_dir(&self.log).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        found
    }

    /// smolvm's invocations since the last look, left for the next look.
    fn peek_invocations(&self) -> Vec<Vec<Vec<u8>>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.log).unwrap() {
            let args = std::fs::read(entry.unwrap().path()).unwrap();
            found.push(args.split(|&b| b == 0).map(<[u8]>::to_vec).collect());
        }
        found
    }

    /// A new handle on the machine, for a call that closes it.
    fn open(&self) -> *mut bottle {
        std::mem::ManuallyDrop::new(self.machine.open()).0
    }

    fn in_guest(&self, path: &str) -> PathBuf {
        self.machine.rootfs().join(path.trim_start_matches('/'))
    }

    /// Where a shell that ran the inputs' `touch` would have left its mark.
    fn marks(&self) -> Vec<PathBuf> {
        let host = [Path::new(".").join(PWNED), Path::new("/tmp").join(PWNED)];
        guest_marks(&self.machine.rootfs())
            .into_iter()
            .chain(host.into_iter().filter(|p| p.exists()))
            .collect()
    }

    /// Temporary files of `bottle_cp_out` left in the working directory.
    fn leftover_temps(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut pending = vec![self.dir.join("work")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                } else if name.as_bytes().starts_with(b".")
                    && name.as_bytes().windows(8).any(|w| w == b".bottle-")
                {
                    found.push(entry.path());
                }
            }
        }
        found
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::env::set_current_dir(&self.cwd);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Marks of the inputs' `touch` in a machine's root filesystem.
fn guest_marks(rootfs: &Path) -> Vec<PathBuf> {
    ["", "root", "home/node", "tmp"]
        .map(|d| rootfs.join(d).join(PWNED))
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}

/// A host directory to share into a launched machine, holding `vol-file`.
fn shared_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::write(path.join("vol-file"), VOLUME_BYTES).unwrap();
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {path:?}"
    );
}

/// What a call did, to be held against the row's expectation.
enum Seen {
    Opened(Bottle),
    Ran(Exec),
    ClaudeRan(i32),
    /// claude's exit status and the argv it recorded, in a launched machine.
    ClaudeSaw(i32, Vec<Vec<u8>>),
    Done,
    Returned(String),
    ReturnedNull,
    Bool(bool),
    /// `bottle_cp_out` wrote this host file.
    Wrote(PathBuf),
    /// A machine was launched: its name, `machine status --json`, and the
    /// arguments of its `machine create`.
    Launched {
        name: String,
        status: String,
        create: Vec<String>,
    },
    /// `bottle_launch` failed after a setter that succeeded.
    LaunchFailed(Failure),
    /// The call returned as it should, but something around it went wrong.
    Wrong(String),
}

/// What a call did, or how it failed.
type Called = Result<Seen, Failure>;

/// A call that returns a status, checked.
type Checked = Result<(), Failure>;

/// A `bottle_*_new` and its `bottle_*_free`.
type New<T> = unsafe extern "C" fn(*mut *mut T) -> bottle_status;
type Free<T> = unsafe extern "C" fn(*mut T);

/// How to call each function of the C API, one arm per function. Every
/// argument goes through `c`, named as the rows name it: `c` hands over the
/// row's input for the row's argument and the default written here for
/// every other, so that only the row's argument can make the call fail.
/// The arm returns what the call did.
///
/// A setter works on fresh options (`c.exec_with`, `c.copied_in`,
/// `c.launched`, `c.called_with`), which are then used. Where the arm calls
/// `c.preset`, a row whose value is NULL or 0 first sets another value, so
/// that the row is seen to undo it.
#[rustfmt::skip]
fn call(c: &Args) -> Called {
    const IGNORE: bottle_output_fn = Some(ignore_output);
    const COUNT: bottle_progress_fn = Some(count_progress);
    let b = c.fx.bottle.0;
    let opened = || c.fx.open();
    // SAFETY: every pointer is valid for its call, or NULL where a row says so.
    unsafe {
        match c.row.function {
            "bottle_open" => {
                let name = c.cstr("machine_name", &c.fx.machine.name);
                let prompt = c.cstr_or_null("prompt_path");
                let out = c.out("out", 1 as *mut bottle, |out| bottle_open(name, prompt, out), |p| p.is_null())?;
                Ok(Seen::Opened(Bottle(out)))
            }
            "bottle_close" => { bottle_close(c.ptr_with("b", opened)); Ok(Seen::Done) }
            "bottle_close_checked" => done(bottle_close_checked(c.ptr_with("b", opened))),
            "bottle_close_with" => done(bottle_close_with(c.ptr_with("b", opened), c.ptr("opts", null_mut()))),
            "bottle_machine_name" => Ok(returned(bottle_machine_name(c.ptr("b", b)))),
            "bottle_status_str" => Ok(returned(bottle_status_str(c.num("status", 0) as c_int))),

            "bottle_exec" => c.ran(|out| bottle_exec(c.ptr("b", b), c.cstr("script", "id -un"), c.cstr_or_null("user"), out)),
            "bottle_exec_with" => c.ran(|out| bottle_exec_with(c.ptr("b", b), c.cstr("script", "id -un"), c.ptr("opts", null_mut()), out)),
            "bottle_exec_result_free" => {
                let mut r: bottle_exec_result = std::mem::zeroed();
                if c.row.kind == "freed twice" {
                    check(bottle_exec(b, c"echo out; echo err >&2".as_ptr(), null(), &mut r)).unwrap();
                    bottle_exec_result_free(&mut r);
                }
                bottle_exec_result_free(c.ptr("result", &mut r));
                assert!(is_zero(&r), "a freed result is all zeros");
                Ok(Seen::Done)
            }
            "bottle_exec_claude" => {
                let argv = [c"first".as_ptr(), c.cstr("argv[1]", "second")];
                let (argv, argc) = c.array("argv", &argv);
                c.claude(|code| bottle_exec_claude(c.ptr("b", b), argv, argc, false, code))
            }
            "bottle_exec_claude_with" => {
                let (argv, argc) = c.array::<*const c_char>("argv", &[]);
                c.claude(|code| bottle_exec_claude_with(c.ptr("b", b), argv, argc, false, c.ptr("opts", null_mut()), code))
            }

            "bottle_cp_in" => done(bottle_cp_in(c.ptr("b", b), c.cstr("host_path", HOST_FILE), c.cstr("guest_path", GUEST_DEST))),
            "bottle_cp_in_with" => {
                let tree = c.given("host_path").is_some_and(|h| Path::new(OsStr::from_bytes(h.bytes())).is_dir());
                let dest = if tree { TREE_DEST } else { GUEST_DEST };
                done(bottle_cp_in_with(c.ptr("b", b), c.cstr("host_path", HOST_FILE), c.cstr("guest_path", dest), c.ptr("opts", null_mut())))
            }
            "bottle_cp_out" => c.wrote(|host| bottle_cp_out(c.ptr("b", b), c.cstr("guest_path", OUT_SOURCE), host)),
            "bottle_cp_out_with" => c.wrote(|host| bottle_cp_out_with(c.ptr("b", b), c.cstr("guest_path", OUT_SOURCE), host, c.ptr("opts", null_mut()))),

            "bottle_cancel_new" => c.made(bottle_cancel_new, bottle_cancel_free),
            "bottle_cancel_free" => { bottle_cancel_free(c.ptr_with("cancel", || fresh(bottle_cancel_new))); Ok(Seen::Done) }
            "bottle_cancel_trip" => { bottle_cancel_trip(c.ptr_with("cancel", || c.owned(bottle_cancel_new, bottle_cancel_free))); Ok(Seen::Done) }
            "bottle_cancel_is_tripped" => Ok(Seen::Bool(bottle_cancel_is_tripped(c.ptr_with("cancel", || c.owned(bottle_cancel_new, bottle_cancel_free))))),

            "bottle_exec_options_new" => c.made(bottle_exec_options_new, bottle_exec_options_free),
            "bottle_exec_options_free" => { bottle_exec_options_free(c.ptr_with("opts", || fresh(bottle_exec_options_new))); Ok(Seen::Done) }
            "bottle_exec_options_set_user" => c.exec_with("id -un", |o| {
                c.preset(|| bottle_exec_options_set_user(o, c"root".as_ptr()))?;
                check(bottle_exec_options_set_user(c.ptr("opts", o), c.cstr_or_null("user")))
            }),
            "bottle_exec_options_add_env" => c.exec_with(&env_script(c.row), |o| {
                check(bottle_exec_options_add_env(c.ptr("opts", o), c.cstr("name", ENV_NAME), c.cstr("value", ENV_VALUE)))
            }),
            "bottle_exec_options_add_secret_env" => c.exec_with(&env_script(c.row), |o| {
                check(bottle_exec_options_add_secret_env(c.ptr("opts", o), c.cstr("name", ENV_NAME), c.cstr("value", ENV_VALUE)))
            }),
            "bottle_exec_options_set_workdir" => c.exec_with("pwd", |o| {
                c.preset(|| bottle_exec_options_set_workdir(o, c"/tmp".as_ptr()))?;
                check(bottle_exec_options_set_workdir(c.ptr("opts", o), c.cstr_or_null("dir")))
            }),
            "bottle_exec_options_set_timeout_ms" => c.exec_with("id -un", |o| {
                // So short that `id -un` cannot finish in it.
                c.preset(|| bottle_exec_options_set_timeout_ms(o, 1))?;
                check(bottle_exec_options_set_timeout_ms(c.ptr("opts", o), c.num("timeout_ms", 1000)))
            }),
            "bottle_exec_options_set_stdin" => c.exec_with("cat", |o| {
                let (data, len) = c.data("data");
                check(bottle_exec_options_set_stdin(c.ptr("opts", o), data, len))
            }),
            // Presets without capture: should one stay, the output is lost.
            "bottle_exec_options_set_stdout_fn" => c.exec_with("id -un; echo err >&2", |o| {
                c.preset(|| bottle_exec_options_set_stdout_fn(o, IGNORE, null_mut(), false))?;
                check(bottle_exec_options_set_stdout_fn(c.ptr("opts", o), c.callback("callback", IGNORE), null_mut(), true))
            }),
            "bottle_exec_options_set_stderr_fn" => c.exec_with("id -un; echo err >&2", |o| {
                c.preset(|| bottle_exec_options_set_stderr_fn(o, IGNORE, null_mut(), false))?;
                check(bottle_exec_options_set_stderr_fn(c.ptr("opts", o), c.callback("callback", IGNORE), null_mut(), true))
            }),
            "bottle_exec_options_set_cancel" => c.exec_with("id -un", |o| {
                c.preset(|| {
                    let tripped = c.owned(bottle_cancel_new, bottle_cancel_free);
                    bottle_cancel_trip(tripped);
                    bottle_exec_options_set_cancel(o, tripped)
                })?;
                check(bottle_exec_options_set_cancel(c.ptr("opts", o), c.ptr("cancel", null_mut())))
            }),

            "bottle_copy_options_new" => c.made(bottle_copy_options_new, bottle_copy_options_free),
            "bottle_copy_options_free" => { bottle_copy_options_free(c.ptr_with("opts", || fresh(bottle_copy_options_new))); Ok(Seen::Done) }
            "bottle_copy_options_set_mode" => c.copied_in(|o| {
                check(bottle_copy_options_set_mode(c.ptr("opts", o), c.num("mode", 0o600) as u32))
            }),
            "bottle_copy_options_set_owner_ids" => c.copied_in(|o| {
                let [uid, gid] = c.nums("uid, gid", [1000, 1000]);
                check(bottle_copy_options_set_owner_ids(c.ptr("opts", o), uid as u32, gid as u32))
            }),
            "bottle_copy_options_set_owner_user" => c.copied_in(|o| {
                c.preset(|| bottle_copy_options_set_owner_user(o, c"node".as_ptr()))?;
                check(bottle_copy_options_set_owner_user(c.ptr("opts", o), c.cstr_or_null("user")))
            }),
            "bottle_copy_options_set_progress_fn" => {
                // The preset counts apart from the default: once replaced, it
                // must not be called.
                let (preset, kept) = (AtomicUsize::new(0), AtomicUsize::new(0));
                let counter = |n: &AtomicUsize| n as *const AtomicUsize as *mut c_void;
                let seen = c.copied_in(|o| {
                    c.preset(|| bottle_copy_options_set_progress_fn(o, COUNT, counter(&preset)))?;
                    check(bottle_copy_options_set_progress_fn(c.ptr("opts", o), c.callback("callback", COUNT), counter(&kept)))
                })?;
                Ok(match preset.into_inner() {
                    0 => seen,
                    n => Seen::Wrong(format!("the removed progress callback was called {n} times")),
                })
            }
            "bottle_copy_options_set_timeout_ms" => c.copied_in(|o| {
                check(bottle_copy_options_set_timeout_ms(c.ptr("opts", o), c.num("timeout_ms", 60_000)))
            }),
            "bottle_copy_options_set_cancel" => c.copied_in(|o| {
                check(bottle_copy_options_set_cancel(c.ptr("opts", o), c.ptr("cancel", null_mut())))
            }),

            "bottle_launch" => c.launch(c.ptr("opts", null_mut()), Then::Status),
            "bottle_launch_options_new" => c.made(bottle_launch_options_new, bottle_launch_options_free),
            "bottle_launch_options_free" => { bottle_launch_options_free(c.ptr_with("opts", || fresh(bottle_launch_options_new))); Ok(Seen::Done) }
            "bottle_launch_options_set_name" => c.launched(Then::Status, |o| {
                check(bottle_launch_options_set_name(c.ptr("opts", o), c.cstr_or_null("machine_name")))
            }),
            "bottle_launch_options_set_image" => c.launched(Then::Status, |o| {
                // smolvm pulls a registry image only over the network.
                check(bottle_launch_options_set_network(o, true))?;
                check(bottle_launch_options_set_image(c.ptr("opts", o), c.cstr_or_null("image")))
            }),
            "bottle_launch_options_set_cpus" => c.launched(Then::Status, |o| {
                c.preset(|| bottle_launch_options_set_cpus(o, 3))?;
                check(bottle_launch_options_set_cpus(c.ptr("opts", o), c.num("cpus", 1) as u32))
            }),
            "bottle_launch_options_set_memory_mib" => c.launched(Then::Status, |o| {
                c.preset(|| bottle_launch_options_set_memory_mib(o, 3))?;
                check(bottle_launch_options_set_memory_mib(c.ptr("opts", o), c.num("mib", 512) as u32))
            }),
            "bottle_launch_options_set_network" => c.launched(Then::Status, |o| {
                check(bottle_launch_options_set_network(c.ptr("opts", o), false))
            }),
            "bottle_launch_options_add_volume" => {
                // The shared directory's file, read where the volume is.
                let at = c.given("guest_path").map_or(VOLUME_GUEST, |g| std::str::from_utf8(g.bytes()).unwrap_or_default());
                let shared = work_dir().join("vol").display().to_string();
                c.launched(Then::Exec(format!("cat -- {}/vol-file", sh_quote(at))), |o| {
                    check(bottle_launch_options_add_volume(c.ptr("opts", o), c.cstr("host_path", &shared), c.cstr("guest_path", VOLUME_GUEST), false))
                })
            }
            "bottle_launch_options_add_env" => c.launched(Then::Exec(env_script(c.row)), |o| {
                check(bottle_launch_options_add_env(c.ptr("opts", o), c.cstr("name", ENV_NAME), c.cstr("value", ENV_VALUE)))
            }),
            "bottle_launch_options_set_prompt_path" => c.launched(Then::Claude, |o| {
                check(bottle_launch_options_set_prompt_path(c.ptr("opts", o), c.cstr_or_null("prompt_path")))
            }),
            "bottle_launch_options_set_timeout_ms" => c.launched(Then::Status, |o| {
                check(bottle_launch_options_set_timeout_ms(c.ptr("opts", o), c.num("timeout_ms", 60_000)))
            }),
            "bottle_launch_options_set_cancel" => c.launched(Then::Status, |o| {
                check(bottle_launch_options_set_cancel(c.ptr("opts", o), c.ptr("cancel", null_mut())))
            }),
            "bottle_reap" => c.reaped(|removed| bottle_reap(removed)),
            "bottle_reap_with" => c.reaped(|removed| bottle_reap_with(c.ptr("opts", null_mut()), removed)),
            "bottle_names_free" => {
                let mut names: bottle_names = std::mem::zeroed();
                bottle_names_free(c.ptr("names", &mut names));
                Ok(match (names.names.is_null(), names.count) {
                    (true, 0) => Seen::Done,
                    _ => Seen::Wrong("the list is no longer all zeros".into()),
                })
            }

            "bottle_call_options_new" => c.made(bottle_call_options_new, bottle_call_options_free),
            "bottle_call_options_free" => { bottle_call_options_free(c.ptr_with("opts", || fresh(bottle_call_options_new))); Ok(Seen::Done) }
            "bottle_call_options_set_timeout_ms" => c.called_with(|o| {
                check(bottle_call_options_set_timeout_ms(c.ptr("opts", o), c.num("timeout_ms", 60_000)))
            }),
            "bottle_call_options_set_cancel" => c.called_with(|o| {
                check(bottle_call_options_set_cancel(c.ptr("opts", o), c.ptr("cancel", null_mut())))
            }),

            "bottle_endpoint_new" => {
                let url = c.cstr("url", &c.fx.serve.url);
                let https = c.given("url").is_some_and(|u| u.bytes().starts_with(b"https://"));
                let ep = c.out("out", 1 as *mut bottle_endpoint, |out| bottle_endpoint_new(url, out), |p| p.is_null())?;
                c.frees.borrow_mut().push(Box::new(move || bottle_endpoint_free(ep)));
                if https {
                    set_tls(ep)?;
                }
                c.opened_at(ep)
            }
            "bottle_endpoint_free" => { bottle_endpoint_free(c.ptr_with("ep", || endpoint(&c.fx.serve.url))); Ok(Seen::Done) }
            "bottle_endpoint_set_tls" => {
                let ep = c.endpoint("ep", || c.owned_endpoint(HTTPS_URL));
                check(bottle_endpoint_set_tls(ep, c.cstr("ca_file", CA_FILE), c.cstr("cert_file", CERT_FILE), c.cstr("key_file", KEY_FILE)))?;
                c.opened_at(ep)
            }
            "bottle_open_at" => {
                let ep = c.endpoint("ep", || c.owned_endpoint(&c.fx.serve.url));
                let name = c.cstr("machine_name", &c.fx.machine.name);
                let prompt = c.cstr_or_null("prompt_path");
                let out = c.out("out", 1 as *mut bottle, |out| bottle_open_at(ep, name, prompt, out), |p| p.is_null())?;
                Ok(Seen::Opened(Bottle(out)))
            }
            "bottle_launch_options_set_endpoint" => {
                let o = c.owned(bottle_launch_options_new, bottle_launch_options_free);
                let serve = c.owned_endpoint(&c.fx.serve.url);
                c.preset(|| bottle_launch_options_set_endpoint(o, serve))?;
                let ep = c.endpoint("ep", || serve);
                check(bottle_launch_options_set_endpoint(c.ptr("opts", o), ep))?;
                if ep.is_null() {
                    return c.launch(o, Then::Status);
                }
                let mut b = null_mut();
                Ok(match check(bottle_launch(o, &mut b)) {
                    Ok(()) => {
                        bottle_close(b);
                        Seen::Wrong("bottle_launch succeeded at a serve that hangs up".into())
                    }
                    Err(f) => Seen::LaunchFailed(f),
                })
            }
            "bottle_reap_at" => c.reaped(|removed| {
                bottle_reap_at(c.endpoint("ep", || c.owned_endpoint(&c.fx.serve.url)), c.ptr("opts", null_mut()), removed)
            }),
            other => panic!("the matrix has no way to call {other}: give it an arm in call()"),
        }
    }
}

/// One row's arguments, for its function's arm in `call`: the row's input
/// for the argument the row is about, the arm's default for every other.
/// What it makes for the call (strings, objects) lives until the row is
/// done.
struct Args<'a> {
    fx: &'a Fixture,
    row: &'a Row,
    /// Whether the arm asked for the row's argument: a row about an
    /// argument that the arm does not pass through `Args` is a mistake.
    asked: Cell<bool>,
    strings: RefCell<Vec<CString>>,
    frees: RefCell<Vec<Box<dyn FnOnce()>>>,
}

impl Drop for Args<'_> {
    fn drop(&mut self) {
        for free in self.frees.take() {
            free();
        }
    }
}

impl Args<'_> {
    /// The row's input, if the row is about `name` and gives more than the
    /// default.
    fn given(&self, name: &str) -> Option<&Input> {
        if name != self.row.argument {
            return None;
        }
        self.asked.set(true);
        Some(&self.row.input).filter(|i| !matches!(i, Input::Default))
    }

    fn cstr(&self, name: &str, default: &str) -> *const c_char {
        let s = self
            .given(name)
            .map_or(Some(cstr(default)), Input::c_string);
        self.keep(s)
    }

    fn cstr_or_null(&self, name: &str) -> *const c_char {
        self.keep(self.given(name).and_then(Input::c_string))
    }

    fn keep(&self, s: Option<CString>) -> *const c_char {
        let p = s.as_ref().map_or(null(), |s| s.as_ptr());
        self.strings.borrow_mut().extend(s);
        p
    }

    /// A number (see `number`).
    fn num(&self, name: &str, default: u64) -> u64 {
        let [n] = self.nums(name, [default]);
        n
    }

    /// Numbers passed together, which a row gives as `"uid, gid"`.
    fn nums<const N: usize>(&self, name: &str, default: [u64; N]) -> [u64; N] {
        self.given(name).map_or(default, |i| {
            let n: Vec<u64> = i.text().split(", ").map(number).collect();
            n.try_into().unwrap()
        })
    }

    fn ptr<T>(&self, name: &str, valid: *mut T) -> *mut T {
        self.ptr_with(name, || valid)
    }

    /// A pointer whose valid value is made only when it is used.
    fn ptr_with<T>(&self, name: &str, valid: impl FnOnce() -> *mut T) -> *mut T {
        match self.given(name) {
            None => valid(),
            Some(Input::Null) => null_mut(),
            Some(other) => panic!("{name}: a row gives a pointer NULL, not {other:?}"),
        }
    }

    /// An endpoint: in a row about `name`, NULL or one made from the URL
    /// the row gives (without certificates); else `valid()`.
    fn endpoint(
        &self,
        name: &str,
        valid: impl FnOnce() -> *mut bottle_endpoint,
    ) -> *mut bottle_endpoint {
        match self.given(name) {
            None => valid(),
            Some(Input::Null) => null_mut(),
            Some(Input::Text(url)) => self.owned_endpoint(url),
            Some(other) => panic!("{name}: a row gives an endpoint NULL or a URL, not {other:?}"),
        }
    }

    /// A new endpoint for `url`, freed when the row is done.
    fn owned_endpoint(&self, url: &str) -> *mut bottle_endpoint {
        let ep = endpoint(url);
        let free = move || unsafe { bottle_endpoint_free(ep) };
        self.frees.borrow_mut().push(Box::new(free));
        ep
    }

    /// A bottle on the row's machine at `ep`, as an endpoint row's call
    /// leaves it.
    fn opened_at(&self, ep: *const bottle_endpoint) -> Called {
        let name = cstr(&self.fx.machine.name);
        let mut out = null_mut();
        check(unsafe { bottle_open_at(ep, name.as_ptr(), null(), &mut out) })?;
        Ok(Seen::Opened(Bottle(out)))
    }

    /// A callback: `valid`, or none where the row says so.
    fn callback<F>(&self, name: &str, valid: Option<F>) -> Option<F> {
        match self.given(name) {
            None => valid,
            Some(Input::Null) => None,
            Some(other) => panic!("{name}: a row gives a callback NULL, not {other:?}"),
        }
    }

    /// An array and its length; a row about it gives NULL, with the length
    /// its kind ends with (`NULL, argc 2`). An empty array is NULL and 0.
    fn array<T>(&self, name: &str, items: &[T]) -> (*const T, usize) {
        let len = || self.row.kind.rsplit(' ').next()?.parse().ok();
        match self.given(name) {
            Some(Input::Null) => (null(), len().expect("the kind ends with the length")),
            Some(other) => panic!("{name}: a row gives an array NULL, not {other:?}"),
            None if items.is_empty() => (null(), 0),
            None => (items.as_ptr(), items.len()),
        }
    }

    /// Bytes and their length, NULL and 0 by default.
    fn data(&self, name: &str) -> (*const u8, usize) {
        match self.given(name) {
            Some(Input::Bytes(b)) => (b.as_ptr(), b.len()),
            _ => self.array(name, &[]),
        }
    }

    /// Calls `call` with the out-parameter `name` (NULL in a row about it)
    /// pointing at `slot`, and returns what it left there. A failure must
    /// leave it `cleared`; a NULL out-parameter must be refused.
    fn out<T>(
        &self,
        name: &str,
        mut slot: T,
        call: impl FnOnce(*mut T) -> bottle_status,
        cleared: impl FnOnce(&T) -> bool,
    ) -> Result<T, Failure> {
        if self.given(name).is_some() {
            check(call(null_mut()))?;
            let message = format!("BOTTLE_OK with a NULL {name}");
            return Err(Failure {
                status: BOTTLE_OK,
                message,
            });
        }
        let status = call(&mut slot);
        let function = self.row.function;
        check(status).inspect_err(|_| assert!(cleared(&slot), "{function} left {name} set"))?;
        Ok(slot)
    }

    /// Runs `set` (a setter with another value) in a row whose value is
    /// NULL or 0, so that the row's value is seen to replace it.
    fn preset(&self, set: impl FnOnce() -> bottle_status) -> Checked {
        let zero = matches!(&self.row.input, Input::Null)
            || matches!(&self.row.input, Input::Text(t) if t == "0");
        if zero && self.row.argument != "opts" {
            return check(set());
        }
        Ok(())
    }

    /// A new object, freed when the row is done.
    fn owned<T: 'static>(&self, make: New<T>, free: Free<T>) -> *mut T {
        let p = fresh(make);
        let free = move || unsafe { free(p) };
        self.frees.borrow_mut().push(Box::new(free));
        p
    }

    /// A constructor's row: `make`, and `free` for what it made.
    fn made<T>(&self, make: New<T>, free: Free<T>) -> Called {
        let p = self.out("out", null_mut(), |o| unsafe { make(o) }, |p| p.is_null())?;
        unsafe { free(p) };
        Ok(Seen::Done)
    }

    /// A call that fills a `bottle_exec_result` (`out`).
    fn ran(&self, call: impl FnOnce(*mut bottle_exec_result) -> bottle_status) -> Called {
        let garbage = bottle_exec_result {
            exit_code: 5,
            stdout_data: 1 as *mut u8,
            stdout_len: 1,
            stderr_data: 1 as *mut u8,
            stderr_len: 1,
        };
        let mut r = self.out("out", garbage, call, is_zero)?;
        assert!(!r.stdout_data.is_null() && !r.stderr_data.is_null());
        // SAFETY: a successful call leaves two NUL-terminated buffers.
        unsafe {
            let ends = (
                *r.stdout_data.add(r.stdout_len),
                *r.stderr_data.add(r.stderr_len),
            );
            assert_eq!(ends, (0, 0), "stdout and stderr are NUL-terminated");
            Ok(Seen::Ran(common::take_result(&mut r)))
        }
    }

    /// A call that runs claude and gives its exit status (`exit_code`).
    fn claude(&self, call: impl FnOnce(*mut i32) -> bottle_status) -> Called {
        let code = self.out("exit_code", -7, call, |code| *code == 0)?;
        Ok(Seen::ClaudeRan(code))
    }

    /// A call that writes the host file `host_path`.
    fn wrote(&self, call: impl FnOnce(*const c_char) -> bottle_status) -> Called {
        let host = self
            .given("host_path")
            .map_or(OUT_HOST.as_bytes(), Input::bytes);
        let written = PathBuf::from(OsStr::from_bytes(host));
        check(call(self.cstr("host_path", OUT_HOST)))?;
        Ok(Seen::Wrote(written))
    }

    /// A call that fills a `bottle_names` (`removed`).
    fn reaped(&self, call: impl FnOnce(*mut bottle_names) -> bottle_status) -> Called {
        let zeros = unsafe { std::mem::zeroed() };
        let cleared = |n: &bottle_names| n.names.is_null() && n.count == 0;
        let mut names = self.out("removed", zeros, call, cleared)?;
        let count = names.count;
        unsafe { bottle_names_free(&mut names) };
        Ok(match count {
            0 => Seen::Done,
            n => Seen::Wrong(format!("{n} machines were reaped")),
        })
    }

    /// An exec options setter's row: `set` on fresh options, then
    /// `bottle_exec_with` runs `script` with them.
    fn exec_with(
        &self,
        script: &str,
        set: impl FnOnce(*mut bottle_exec_options) -> Checked,
    ) -> Called {
        let o = self.owned(bottle_exec_options_new, bottle_exec_options_free);
        set(o)?;
        let script = cstr(script);
        self.ran(|out| unsafe { bottle_exec_with(self.fx.bottle.0, script.as_ptr(), o, out) })
    }

    /// A copy options setter's row: `set` on fresh options, then
    /// `bottle_cp_in_with` copies the host file with them.
    fn copied_in(&self, set: impl FnOnce(*mut bottle_copy_options) -> Checked) -> Called {
        let o = self.owned(bottle_copy_options_new, bottle_copy_options_free);
        set(o)?;
        let (host, dest) = (cstr(HOST_FILE), cstr(GUEST_DEST));
        done(unsafe { bottle_cp_in_with(self.fx.bottle.0, host.as_ptr(), dest.as_ptr(), o) })
    }

    /// A call options setter's row: `set` on fresh options, then
    /// `bottle_exec_claude_with` runs claude with them.
    fn called_with(&self, set: impl FnOnce(*mut bottle_call_options) -> Checked) -> Called {
        let o = self.owned(bottle_call_options_new, bottle_call_options_free);
        set(o)?;
        let b = self.fx.bottle.0;
        self.claude(|code| unsafe { bottle_exec_claude_with(b, null(), 0, false, o, code) })
    }

    /// A launch options setter's row: `set` on fresh options, then
    /// `bottle_launch` with them.
    fn launched(
        &self,
        then: Then,
        set: impl FnOnce(*mut bottle_launch_options) -> Checked,
    ) -> Called {
        let o = self.owned(bottle_launch_options_new, bottle_launch_options_free);
        set(o)?;
        self.launch(o, then)
    }

    /// Launches a machine with `opts` (`out`), does `then` with it, and
    /// closes it with `bottle_close_checked`, which must succeed and leave
    /// no machine behind.
    fn launch(&self, opts: *const bottle_launch_options, then: Then) -> Called {
        let launch = |out| unsafe { bottle_launch(opts, out) };
        let out = self.out("out", 1 as *mut bottle, launch, |p| p.is_null())?;
        // A Bottle, so that a panic below still closes it.
        let b = Bottle(out);
        let name = unsafe { CStr::from_ptr(bottle_machine_name(b.0)) };
        let name = name.to_str().unwrap().to_owned();
        let seen = match then {
            Then::Status => {
                let status = common::smolvm(&["machine", "status", "--name", &name, "--json"]);
                let invocations = self.fx.peek_invocations();
                let create = invocations
                    .iter()
                    .find(|a| a.get(1).is_some_and(|a| a == b"create"));
                Ok(Seen::Launched {
                    name: name.clone(),
                    status: status_line(&status.stdout),
                    create: create
                        .into_iter()
                        .flatten()
                        .map(|a| String::from_utf8_lossy(a).into())
                        .collect(),
                })
            }
            Then::Exec(script) => b.exec(&script, None).map(Seen::Ran),
            Then::Claude => b
                .exec_claude(&[], false)
                .map(|code| Seen::ClaudeSaw(code, b.claude_argv())),
        };
        let home = PathBuf::from(std::env::var_os("SMOLVM_STANDIN_HOME").unwrap());
        let marks = guest_marks(&home.join(&name).join("rootfs"));
        let closed = check(unsafe { bottle_close_checked(std::mem::ManuallyDrop::new(b).0) });
        let left = common::smolvm(&["machine", "status", "--name", &name]);
        let wrong = match closed {
            Err(f) => format!(
                "bottle_close_checked returned {:?}: {}",
                f.status, f.message
            ),
            Ok(()) if left.status.success() => {
                format!("machine {name} is still there after bottle_close_checked")
            }
            Ok(()) if !marks.is_empty() => {
                format!("shell code in the input ran in the launched machine: {marks:?}")
            }
            Ok(()) => return seen,
        };
        Ok(Seen::Wrong(wrong))
    }
}

/// What a launch row does with the machine before closing it.
enum Then {
    /// Reads `machine status --json` and the `machine create` arguments.
    Status,
    /// Runs this script as node.
    Exec(String),
    /// Runs claude with no arguments and reads the argv it recorded.
    Claude,
}

/// Runs one row's call.
fn run(fx: &Fixture, row: &Row) -> Called {
    let args = Args {
        fx,
        row,
        asked: Cell::new(false),
        strings: RefCell::default(),
        frees: RefCell::default(),
    };
    let seen = call(&args);
    let (f, a) = (row.function, row.argument);
    assert!(args.asked.get(), "{f}: its arm in call() does not pass {a}");
    seen
}

/// A new endpoint for `url`.
fn endpoint(url: &str) -> *mut bottle_endpoint {
    let mut ep = null_mut();
    check(unsafe { bottle_endpoint_new(cstr(url).as_ptr(), &mut ep) }).unwrap();
    ep
}

/// Gives `ep` the working directory's certificates.
fn set_tls(ep: *mut bottle_endpoint) -> Checked {
    let [ca, cert, key] = [CA_FILE, CERT_FILE, KEY_FILE].map(cstr);
    check(unsafe { bottle_endpoint_set_tls(ep, ca.as_ptr(), cert.as_ptr(), key.as_ptr()) })
}

/// A new object from a `bottle_*_new`.
fn fresh<T>(make: New<T>) -> *mut T {
    let mut p = null_mut();
    check(unsafe { make(&mut p) }).unwrap();
    p
}

fn done(status: bottle_status) -> Called {
    check(status).map(|()| Seen::Done)
}

fn returned(s: *const c_char) -> Seen {
    if s.is_null() {
        return Seen::ReturnedNull;
    }
    Seen::Returned(unsafe { CStr::from_ptr(s) }.to_string_lossy().into())
}

/// A number as a row gives it: decimal (maybe negative), `0o` octal, or
/// `u32::MAX` / `u64::MAX`.
fn number(text: &str) -> u64 {
    match text {
        "u32::MAX" => u32::MAX.into(),
        "u64::MAX" => u64::MAX,
        t => match t.strip_prefix("0o") {
            Some(octal) => u64::from_str_radix(octal, 8).unwrap(),
            None => t.parse::<i64>().unwrap() as u64,
        },
    }
}

/// The script of an environment row: prints the variable under test.
fn env_script(row: &Row) -> String {
    let name = match row.argument {
        "name" => std::str::from_utf8(row.input.bytes()).unwrap_or(ENV_NAME),
        _ => ENV_NAME,
    };
    format!("printf %s \"${{{name}}}\"")
}

/// The value an environment row's variable must hold.
fn env_value(row: &Row) -> &[u8] {
    match row.argument {
        "value" => row.input.bytes(),
        _ => ENV_VALUE.as_bytes(),
    }
}

/// `s` single-quoted for the shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// An output callback that ignores what it is given.
unsafe extern "C" fn ignore_output(_: *mut c_void, _: *const u8, _: usize) -> c_int {
    0
}

/// A progress callback that counts its calls in the `AtomicUsize` at
/// `user_data`.
unsafe extern "C" fn count_progress(user_data: *mut c_void, _: *const bottle_progress) {
    unsafe { &*(user_data as *const AtomicUsize) }.fetch_add(1, Ordering::Relaxed);
}

fn is_zero(r: &bottle_exec_result) -> bool {
    r.exit_code == 0
        && r.stdout_data.is_null()
        && r.stdout_len == 0
        && r.stderr_data.is_null()
        && r.stderr_len == 0
}

/// Whether `message` is `pattern`, where `…` in the pattern stands for any
/// text, followed by anything.
fn matches(pattern: &str, message: &str) -> bool {
    let (first, rest) = pattern.split_once('…').unwrap_or((pattern, ""));
    message.strip_prefix(first).is_some_and(|m| holds(rest, m))
}

/// The fields of `machine status --json` the rows look at, on one line
/// in a fixed order (`{"name":..,"state":..,"image":..,"cpus":..,
/// "memory_mib":..,"network":..}`), whatever order and layout smolvm
/// prints them in.
fn status_line(json: &[u8]) -> String {
    let Ok(serde_json::Value::Object(all)) = serde_json::from_slice(json) else {
        return String::from_utf8_lossy(json).into_owned();
    };
    let fields: Vec<String> = ["name", "state", "image", "cpus", "memory_mib", "network"]
        .iter()
        .filter_map(|key| all.get(*key).map(|value| format!("\"{key}\":{value}")))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// Whether `text` holds `pattern` anywhere, where `…` in the pattern stands
/// for any text.
fn holds(pattern: &str, text: &str) -> bool {
    let mut rest = text;
    for piece in pattern.split('…') {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Whether `needle` is part of any argument smolvm was given.
fn on_command_line(ran: &[Vec<Vec<u8>>], needle: &[u8]) -> bool {
    ran.iter()
        .flatten()
        .any(|a| a.windows(needle.len()).any(|w| w == needle))
}

/// Runs one row; the mismatches, if any.
fn verify(fx: &Fixture, row: &Row) -> Vec<String> {
    let mut wrong = Vec::new();
    // A claude that did not run must not pass on an earlier row's record,
    // and only this row's smolvm invocations count.
    let _ = std::fs::remove_file(fx.in_guest("/home/node/.claude-standin/argv"));
    fx.invocations();
    let contacts = fx.serve.contacts();
    let result = run(fx, row);
    let contacted = fx.serve.contacts() - contacts;
    let ran = fx.invocations();
    let subcommands: Vec<String> = ran
        .iter()
        .map(|a| String::from_utf8_lossy(a.get(1).map_or(&[][..], |s| s)).into_owned())
        .collect();
    match (&row.expect, result) {
        (Expect::Rejected(status, pattern), Err(f)) => {
            if f.status != *status || !matches(pattern, &f.message) {
                wrong.push(format!("returned {:?}: {}", f.status, f.message));
            }
            if !ran.is_empty() {
                wrong.push(format!(
                    "was rejected, yet smolvm ran {} times: {subcommands:?}",
                    ran.len()
                ));
            }
        }
        (Expect::RejectedAfterLookup(status, pattern), Err(f)) => {
            if f.status != *status || !matches(pattern, &f.message) {
                wrong.push(format!("returned {:?}: {}", f.status, f.message));
            }
            if subcommands != ["exec"] {
                wrong.push(format!("smolvm ran {subcommands:?}, not the one lookup"));
            }
        }
        (Expect::Rejected(..) | Expect::RejectedAfterLookup(..), Ok(_)) => {
            wrong.push("was accepted".into())
        }
        (Expect::Accepted(_), Err(f)) => {
            wrong.push(format!("returned {:?}: {}", f.status, f.message))
        }
        (Expect::Accepted(effect), Ok(seen)) => {
            if let Err(e) = check_effect(fx, row, effect, seen) {
                wrong.push(e);
            }
            // Freeing a result twice needs one from a run first.
            let no_run = matches!(effect, Effect::Nothing | Effect::AtServe(..))
                && row.function != "bottle_exec_result_free";
            if no_run && !ran.is_empty() {
                wrong.push(format!("smolvm ran {} times: {subcommands:?}", ran.len()));
            }
        }
    }
    // Only a launch at the endpoint reaches serve.
    let at_serve = matches!(row.expect, Expect::Accepted(Effect::AtServe(..)));
    if at_serve && contacted == 0 {
        wrong.push("serve was not contacted".into());
    } else if !at_serve && contacted > 0 {
        wrong.push(format!("serve was contacted {contacted} times"));
    }
    // Inputs that smolvm's command line must never show.
    let hidden = match (row.function, row.argument) {
        ("bottle_cp_in" | "bottle_cp_in_with" | "bottle_cp_out", "host_path") => "the host path",
        ("bottle_exec_options_add_secret_env", "value") => "the secret",
        _ => "",
    };
    let given = row.input.bytes();
    if !hidden.is_empty() && !given.is_empty() && on_command_line(&ran, given) {
        wrong.push(format!("{hidden} reached smolvm's command line"));
    }
    if row.function == "bottle_cp_out" {
        let temps = fx.leftover_temps();
        if !temps.is_empty() {
            wrong.push(format!("temporary files were left behind: {temps:?}"));
            for t in temps {
                std::fs::remove_file(t).unwrap();
            }
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

fn check_effect(fx: &Fixture, row: &Row, effect: &Effect, seen: Seen) -> Result<(), String> {
    match (effect, seen) {
        (_, Seen::Wrong(why)) => Err(why),
        (Effect::Opened, Seen::Opened(_)) | (Effect::Nothing, Seen::Done) => Ok(()),
        (Effect::ClaudeArgv(expected), seen) => {
            let (code, argv) = match &seen {
                Seen::Opened(b) => (
                    b.exec_claude(&[], false).map_err(|f| f.message)?,
                    fx.bottle.claude_argv(),
                ),
                Seen::ClaudeRan(code) => (*code, fx.bottle.claude_argv()),
                Seen::ClaudeSaw(code, argv) => (*code, argv.clone()),
                _ => return Err("claude was not run".into()),
            };
            let got: Vec<String> = argv
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
                let (out, err) = (lossy(&r.stdout, usize::MAX), lossy(&r.stderr, 200));
                let code = r.exit_code;
                return Err(format!(
                    "exit status {code}, stdout {out:?}, stderr {err:?}"
                ));
            }
            Ok(())
        }
        (Effect::EnvReached, Seen::Ran(r)) => {
            if r.exit_code != 0 || r.stdout != env_value(row) {
                let (out, err) = (lossy(&r.stdout, 80), lossy(&r.stderr, 200));
                let (code, len) = (r.exit_code, r.stdout.len());
                return Err(format!(
                    "exit status {code}, the variable holds {out:?} ({len} bytes), stderr {err:?}"
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
        (Effect::CopiedAs(guest, mode, uid, gid), Seen::Done) => {
            let path = fx.in_guest(guest);
            let found = std::fs::read(&path);
            let meta = std::fs::symlink_metadata(&path);
            let _ = std::fs::remove_file(&path);
            match (found, meta) {
                (Ok(bytes), Ok(m))
                    if bytes == HOST_BYTES
                        && m.mode() & 0o7777 == *mode
                        && (m.uid(), m.gid()) == (*uid, *gid) =>
                {
                    Ok(())
                }
                (Ok(bytes), Ok(m)) if bytes == HOST_BYTES => Err(format!(
                    "{guest} in the guest has mode {:04o}, owned by {}:{}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                )),
                (other, _) => Err(format!("{guest} in the guest: {other:?}")),
            }
        }
        (Effect::CopiedTree(guest), Seen::Done) => {
            let root = fx.in_guest(guest);
            let missing: Vec<&str> = TREE_FILES
                .iter()
                .copied()
                .filter(|f| std::fs::read(root.join(f)).ok().as_deref() != Some(HOST_BYTES))
                .collect();
            let _ = std::fs::remove_dir_all(&root);
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{guest} in the guest lacks {missing:?}"))
            }
        }
        (Effect::CopiedOut, Seen::Wrote(host)) => {
            let found = std::fs::read(&host);
            let _ = std::fs::remove_file(&host);
            match found {
                Ok(bytes) if bytes == GUEST_BYTES => Ok(()),
                other => Err(format!("{} on the host: {other:?}", host.display())),
            }
        }
        (
            effect,
            Seen::Launched {
                name,
                status,
                create,
            },
        ) => {
            let ok = status.contains("\"state\":\"running\"")
                && match effect {
                    Effect::Status(pattern) => holds(pattern, &status),
                    Effect::NamedAsGiven => {
                        name.as_bytes() == row.input.bytes()
                            && status.contains(&format!("\"name\":\"{name}\""))
                    }
                    Effect::NoFlag(flag) => !create.is_empty() && !create.iter().any(|a| a == flag),
                    Effect::ThroughCli => !create.is_empty(),
                    _ => false,
                };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "launched {name:?}: status {}, created with {create:?}",
                    status.trim()
                ))
            }
        }
        (Effect::AtServe(status, pattern), Seen::LaunchFailed(f)) => {
            let records = fx.launch_records();
            if f.status != *status || !matches(pattern, &f.message) {
                Err(format!(
                    "bottle_launch returned {:?}: {}",
                    f.status, f.message
                ))
            } else if !records.is_empty() {
                Err(format!("launch records were left behind: {records:?}"))
            } else {
                Ok(())
            }
        }
        (_, Seen::LaunchFailed(f)) => Err(format!(
            "bottle_launch returned {:?}: {}",
            f.status, f.message
        )),
        (Effect::Returns(expected), Seen::Returned(s)) if s == *expected => Ok(()),
        (Effect::ReturnsNull, Seen::ReturnedNull) => Ok(()),
        (Effect::ReturnsBool(expected), Seen::Bool(b)) if b == *expected => Ok(()),
        (_, Seen::Returned(s)) => Err(format!("returned {s:?}")),
        (_, Seen::Bool(b)) => Err(format!("returned {b}")),
        (_, Seen::Ran(r)) => Err(format!(
            "ran: exit status {}, stdout {:?}",
            r.exit_code,
            String::from_utf8_lossy(&r.stdout)
        )),
        _ => Err("did something else".into()),
    }
}

/// The first `n` characters of `bytes`, as text.
fn lossy(bytes: &[u8], n: usize) -> String {
    String::from_utf8_lossy(bytes).chars().take(n).collect()
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
        Input::Default => "a valid value".to_owned(),
    }
}

/// Whether a function returns a status (the others return a value or
/// nothing).
fn has_status(function: &str) -> bool {
    !(function.ends_with("_free")
        || [
            "bottle_close",
            "bottle_status_str",
            "bottle_cancel_trip",
            "bottle_cancel_is_tripped",
            "bottle_machine_name",
        ]
        .contains(&function))
}

fn shown_outcome(row: &Row) -> (String, String) {
    let ok = if has_status(row.function) {
        "`BOTTLE_OK`".to_owned()
    } else {
        "—".to_owned()
    };
    match &row.expect {
        Expect::Rejected(status, message) => (format!("`{status:?}`"), code(message)),
        Expect::RejectedAfterLookup(status, message) => (
            format!("`{status:?}`"),
            format!(
                "{}, from `bottle_cp_in_with`: the one `machine exec` that looks the user up runs, nothing is copied",
                code(message)
            ),
        ),
        Expect::Accepted(effect) => (
            ok,
            match effect {
                Effect::Opened if row.function == "bottle_endpoint_new" => {
                    "an endpoint that `bottle_open_at` takes (an `https://` one once its certificates are set); nothing is contacted".to_owned()
                }
                Effect::Opened if row.function == "bottle_endpoint_set_tls" => {
                    "`bottle_open_at` then takes the endpoint; nothing is contacted".to_owned()
                }
                Effect::Opened if row.function == "bottle_open_at" => {
                    "a handle; serve is not contacted until it is used".to_owned()
                }
                Effect::Opened => "a handle; nothing runs until it is used".to_owned(),
                Effect::ClaudeArgv(args)
                    if row.function == "bottle_open"
                        || row.function == "bottle_launch_options_set_prompt_path" =>
                {
                    format!(
                        "with no arguments of its own, claude receives exactly {}",
                        code(&format!("{args:?}"))
                    )
                }
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
                Effect::Nothing if row.function == "bottle_reap_at" => {
                    "`removed` is empty: no launch is recorded for the endpoint, so serve is not contacted".to_owned()
                }
                Effect::Nothing => "returns; nothing happens".to_owned(),
                Effect::Returns(s) => format!("returns {}", code(&format!("{s:?}"))),
                Effect::ReturnsNull => "returns `NULL`".to_owned(),
                Effect::ReturnsBool(b) => format!("returns `{b}`"),
                Effect::EnvReached if row.argument == "name" => format!(
                    "the script's {} is `\"v\"`",
                    code(&format!("${}", String::from_utf8_lossy(row.input.bytes())))
                ),
                Effect::EnvReached => "the script's `$V` holds exactly the value".to_owned(),
                Effect::CopiedAs(guest, mode, uid, gid) => format!(
                    "copied to {} with mode {}, owned by {}",
                    code(guest),
                    code(&format!("{mode:04o}")),
                    code(&format!("{uid}:{gid}"))
                ),
                Effect::CopiedTree(guest) => {
                    format!("the whole tree is copied under {}", code(guest))
                }
                Effect::CopiedOut => {
                    "the guest file is written there, byte for byte; no temporary file is left"
                        .to_owned()
                }
                Effect::Status(pattern) => format!(
                    "launches; `smolvm machine status --json` shows {}",
                    code(pattern)
                ),
                Effect::NamedAsGiven => {
                    "launches a machine of exactly that name (`bottle_machine_name`, `machine status`)"
                        .to_owned()
                }
                Effect::NoFlag(flag) => format!(
                    "launches with smolvm's default: `machine create` gets no {}",
                    code(flag)
                ),
                Effect::ThroughCli => {
                    "`bottle_launch` then launches through smolvm's CLI (`machine create` runs), not at the endpoint set before".to_owned()
                }
                Effect::AtServe(status, message) => format!(
                    "`bottle_launch` then goes to serve at the endpoint, which hangs up: `{status:?}`, {}; smolvm's CLI does not run, no launch record is left",
                    code(message)
                ),
            },
        ),
    }
}

const DOC_HEAD: &str = "# Bad input

<!-- Generated by tests/bad_input_matrix.rs; do not edit. Rewrite it with
     BOTTLE_UPDATE_DOCS=1 cargo test --test bad_input_matrix -->

Every function of the C API against the inputs that trip wrappers of
command-line tools: NULL, empty strings, bytes that are not UTF-8, over-long
strings, names, users, paths and values with `-`, `:`, spaces or `..`, shell
metacharacters, control characters, and host paths that start with `-` or
contain `:`. `tests/bad_input_matrix.rs` runs every row below through the C
ABI against the stand-in smolvm, and fails when this page and the test
disagree.

- **Rejected** rows return the status shown, and `bottle_last_error()`
  starts with the message shown (`…` stands for any text). smolvm is never
  started: the test runs smolvm through a wrapper that records every
  invocation, and a rejected call leaves no record. Out-parameters are
  NULL or zero. The one exception says so in its row: a guest user that
  the guest does not know can only be found out in the guest.
- **Accepted** rows return `BOTTLE_OK` (or, for functions without a status,
  simply return) and do what the last column says. \"Nothing happens\"
  includes: smolvm is not started.
- In every row, the shell code in the inputs (`touch bottle-pwned`) runs
  nowhere: no `bottle-pwned` appears on the host, in the guest or in a
  launched machine. In `bottle_cp_in`, `bottle_cp_in_with` and
  `bottle_cp_out` rows, the host path never appears in smolvm's command
  line, and `bottle_cp_out` leaves no temporary file behind. In
  `bottle_exec_options_add_secret_env` rows, the value never appears in
  smolvm's command line.
- Inputs are Rust literals: `\"...\"` is a UTF-8 string, `b\"...\"` bytes.
  `PID` is the test's process id, `WORK` its private working directory,
  which relative host paths are read from.
  `bottle_exec` rows run `id -un` when the row is not about the script;
  `bottle_exec_claude` rows pass `argv = {\"first\", INPUT}`; `bottle_cp_in`
  rows copy to `/tmp/copied`.
- A row of an options setter shows the setter's own status; a value it
  accepts is then used, on options that hold nothing else. A `NULL` (or
  `0`) row first sets another value, so the default has to come back.
  - Exec options: `bottle_exec_with` runs `id -un`, except in `dir` rows
    (`pwd`), `data` rows (`cat`), `callback` rows (`id -un; echo err >&2`)
    and environment rows (`printf %s \"$V\"`, or in a `name` row that name,
    set to `\"v\"`).
  - Copy options: `bottle_cp_in_with` copies `host-file` to `/tmp/copied`.
  - Launch options: `bottle_launch` starts a machine; environment rows then
    run the same `printf` in it, volume rows `cat GUEST/vol-file` (every
    shared directory holds `vol-file`, `\"volume\\n\"`; the other side of
    the volume is `WORK/vol` or `/mnt/vol`), prompt rows run claude with no
    arguments. The machine is then closed with `bottle_close_checked`,
    which must succeed and leave no machine behind.
- `bottle_cp_in_with` rows copy a file to `/tmp/copied` and a directory to
  `/tmp/copied-tree`. Its good trees hold `-rf`, `..x/y` and
  ``sub dir/$(touch bottle-pwned);`id`|&``; each bad one holds `file` and
  one bad entry: a symbolic link `link`, a FIFO `fifo`, a file `a:b` or a
  file `caf\\xe9`.
- `bottle_cp_out` rows copy `/tmp/out/source` (in `guest_path` rows: the
  guest path given) to `copied-out` (in `host_path` rows: the host path
  given).
- Endpoint rows need no `smolvm serve`. Their endpoint, unless the row is
  about it, is `unix:WORK/serve.sock`, where the test listens, counts
  every connection and hangs up at once: no row connects to it unless it
  says so. An `ep` row showing a URL passes an endpoint made from it,
  without certificates; `https://` endpoints are otherwise given `ca.pem`,
  `client.pem` and `client.key` (one self-signed EC certificate, as the
  CA's and the client's, and its key) from `WORK`, where `bad.pem` holds a
  certificate block that is not base64 and `two.key` two keys. Launches at
  an endpoint record their machines under a private `XDG_STATE_HOME`,
  where `bottle_reap_at` finds none for the test's endpoint.
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
    let mut wrong: Vec<String> = rows
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

    // The page shows what the matrix expects, so it is written (or checked)
    // whatever the library does: a row the library fails still fails below.
    let doc = render(&rows);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/BAD-INPUT.md");
    if std::env::var_os("BOTTLE_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, doc).expect("write docs/BAD-INPUT.md");
    } else if std::fs::read_to_string(&path).unwrap_or_default() != doc {
        wrong.push(
            "docs/BAD-INPUT.md differs from the matrix in tests/bad_input_matrix.rs; \
             run `BOTTLE_UPDATE_DOCS=1 cargo test --test bad_input_matrix` and commit it"
                .into(),
        );
    }
    assert!(
        wrong.is_empty(),
        "{} mismatches:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
