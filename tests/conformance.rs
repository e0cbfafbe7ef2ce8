//! The stand-in answers as the real smolvm does: the same command lines go
//! to both CLIs — the stand-in (`target/debug/smolvm-standin`, its machines
//! under `target/`) and the real smolvm 1.9.2 (`tests/real-smolvm`, driving
//! the stand-in guest) — and their exit statuses, `Error:`/`error:` lines
//! (machine name normalised) and, where deterministic, stdout must agree.
//!
//! Without the real smolvm (`BOTTLE_REAL_SMOLVM` unset and
//! `../shared/smolvm-1.9.2/smolvm` absent) this fails under `CI` and is
//! reported NOT RUN otherwise. Each test has its own machine and both CLIs
//! have a scratch home of this process, so the tests may run in parallel;
//! the real smolvm's SQLite may then say `database is locked`, which is
//! tried again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// smolvm's output limit for one exec (docs/SMOLVM-CLI.md).
const CAP: usize = 11_534_336;

struct Setup {
    standin: PathBuf,
    real: PathBuf,
    wrapper: PathBuf,
    /// Scratch directory of this process: both homes and host files.
    scratch: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `None` (after saying so) when the real smolvm is not there to compare.
fn setup() -> Option<&'static Setup> {
    static SETUP: OnceLock<Option<Setup>> = OnceLock::new();
    SETUP
        .get_or_init(|| {
            let real = std::env::var_os("BOTTLE_REAL_SMOLVM")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join("../shared/smolvm-1.9.2/smolvm"));
            if !real.exists() {
                if std::env::var_os("CI").is_some() {
                    panic!("real smolvm missing at {}: conformance cannot run", real.display());
                }
                eprintln!(
                    "\n*** NOT RUN: conformance: real smolvm missing at {} (set BOTTLE_REAL_SMOLVM) ***\n",
                    real.display()
                );
                return None;
            }
            let standin = repo().join("target/debug/smolvm-standin");
            assert!(
                standin.exists(),
                "{} missing: build it with `make standin`",
                standin.display()
            );
            // Scratch directories of earlier runs whose process is gone (a
            // run cannot remove its own: tests have no common end).
            if let Ok(entries) = std::fs::read_dir(repo().join("target")) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(pid) = name.strip_prefix("conformance-") {
                        if !Path::new(&format!("/proc/{pid}")).exists() {
                            let _ = std::fs::remove_dir_all(entry.path());
                        }
                    }
                }
            }
            let scratch = repo().join(format!("target/conformance-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(scratch.join("host")).unwrap();
            Some(Setup {
                standin,
                real,
                wrapper: repo().join("tests/real-smolvm"),
                scratch,
            })
        })
        .as_ref()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cli {
    Standin,
    Real,
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// smolvm's own complaints, the machine name replaced by `N`.
    fn errors(&self, name: &str) -> Vec<String> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("Error:") || l.starts_with("error:"))
            .map(|l| {
                if name.is_empty() {
                    l.to_string()
                } else {
                    l.replace(name, "N")
                }
            })
            .collect()
    }
}

fn run(s: &Setup, cli: Cli, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut pause = Duration::from_millis(50);
    loop {
        let mut cmd = match cli {
            Cli::Standin => {
                let mut c = Command::new(&s.standin);
                c.env("SMOLVM_STANDIN_HOME", s.scratch.join("standin-home"));
                c
            }
            Cli::Real => {
                let mut c = Command::new(&s.wrapper);
                c.env("BOTTLE_REAL_SMOLVM", &s.real)
                    .env("BOTTLE_REAL_SMOLVM_HOME", s.scratch.join("real-home"))
                    .env("BOTTLE_STANDIN", &s.standin)
                    .env_remove("BOTTLE_REAL_GUEST");
                c
            }
        };
        // Variables some cases forward into the guest.
        cmd.args(args)
            .env("CONF_FORWARDED", "forwarded")
            .env("CONF_SECRET", "s3cret")
            .env_remove("CONF_UNSET")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn smolvm");
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        let out = child.wait_with_output().expect("wait for smolvm");
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // Concurrent writers of the real smolvm's database: it changed
        // nothing, and the same command works when tried again.
        if cli == Cli::Real
            && out.stderr.contains("database is locked")
            && pause < Duration::from_secs(3)
        {
            std::thread::sleep(pause);
            pause *= 2;
            continue;
        }
        return out;
    }
}

/// The same command line to both CLIs at once.
fn both(s: &Setup, args: &[&str], stdin: Option<&[u8]>) -> (Out, Out) {
    std::thread::scope(|scope| {
        let standin = scope.spawn(|| run(s, Cli::Standin, args, stdin));
        let real = run(s, Cli::Real, args, stdin);
        (standin.join().unwrap(), real)
    })
}

/// Exit statuses and `Error:` lines must agree; returns both for more.
fn same(s: &Setup, name: &str, args: &[&str]) -> (Out, Out) {
    same_with(s, name, args, None)
}

fn same_with(s: &Setup, name: &str, args: &[&str], stdin: Option<&[u8]>) -> (Out, Out) {
    let (standin, real) = both(s, args, stdin);
    assert_eq!(
        (standin.code, standin.errors(name)),
        (real.code, real.errors(name)),
        "{args:?}: stand-in (left) and real smolvm (right) differ\n\
         stand-in stderr: {}\nreal stderr: {}",
        standin.stderr,
        real.stderr
    );
    (standin, real)
}

/// As `same`, and stdout must be identical too.
fn same_output(s: &Setup, name: &str, args: &[&str]) -> (Out, Out) {
    let (standin, real) = same(s, name, args);
    assert_eq!(standin.stdout(), real.stdout(), "{args:?}: stdout differs");
    (standin, real)
}

/// A machine on both CLIs, deleted (and so stopped) at the end.
struct Machine<'a> {
    s: &'a Setup,
    name: String,
}

impl<'a> Machine<'a> {
    fn create(s: &'a Setup, name: &str, extra: &[&str]) -> Machine<'a> {
        let mut args = vec!["machine", "create", "--name", name];
        args.extend_from_slice(extra);
        let (standin, real) = same(s, name, &args);
        assert_eq!((standin.code, real.code), (0, 0), "{}", real.stderr);
        Machine {
            s,
            name: name.to_string(),
        }
    }

    fn started(s: &'a Setup, name: &str, extra: &[&str]) -> Machine<'a> {
        let m = Machine::create(s, name, extra);
        let (standin, real) = same(s, name, &["machine", "start", "--name", name]);
        assert_eq!((standin.code, real.code), (0, 0), "{}", real.stderr);
        m
    }

    /// `machine exec --name N FLAGS... -- ARGV...`
    fn exec(&self, flags: &[&str], argv: &[&str]) -> Vec<String> {
        let mut args = vec!["machine", "exec", "--name", &self.name];
        args.extend_from_slice(flags);
        args.push("--");
        args.extend_from_slice(argv);
        args.into_iter().map(str::to_string).collect()
    }
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        both(
            self.s,
            &["machine", "delete", "-f", "--name", &self.name],
            None,
        );
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The top-level keys of a pretty-printed JSON object (two spaces deep).
fn top_keys(json: &str) -> Vec<String> {
    json.lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once('"').map(|(k, _)| k.to_string()))
        .collect()
}

/// The line of one top-level key.
fn json_line<'j>(json: &'j str, key: &str) -> Option<&'j str> {
    let prefix = format!("  \"{key}\": ");
    json.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

#[test]
fn lifecycle_and_names() {
    let Some(s) = setup() else { return };
    let n = "conf-life";
    // Unknown machine, each subcommand.
    for args in [
        &["machine", "status", "--name", n][..],
        &["machine", "status", "--name", n, "--json"],
        &["machine", "start", "--name", n],
        &["machine", "stop", "--name", n],
        &["machine", "delete", "-f", "--name", n],
        &["machine", "delete", "--name", n],
        &["machine", "exec", "--name", n, "--", "true"],
        &["machine", "cp", "/etc/hostname", "conf-life:/tmp/x"],
        &["machine", "cp", "conf-life:/etc/hostname", "/dev/null"],
    ] {
        let (standin, _) = same(s, n, args);
        assert_eq!(standin.code, 1, "{args:?}");
    }
    // Names smolvm refuses, each subcommand (some check, some look up).
    let long = "a".repeat(129);
    for bad in ["a!b", "", "-", "a-", "a--b", "a/b", "_a", long.as_str()] {
        for args in [
            &["machine", "create", "--name", bad][..],
            &["machine", "status", "--name", bad],
            &["machine", "start", "--name", bad],
            &["machine", "stop", "--name", bad],
            &["machine", "delete", "-f", "--name", bad],
            &["machine", "exec", "--name", bad, "--", "true"],
        ] {
            same(s, "", args);
        }
        let dst = format!("{bad}:/tmp/x");
        same(s, "", &["machine", "cp", "/etc/hostname", &dst]);
    }

    let m = Machine::create(
        s,
        n,
        &["--label", "bottle=1", "--label", "k=v", "--cpus", "2"],
    );
    same(s, n, &["machine", "create", "--name", n]);
    same(
        s,
        n,
        &[
            "machine",
            "create",
            "--name",
            "conf-bad-label",
            "--label",
            "nokey",
        ],
    );
    same(
        s,
        n,
        &[
            "machine",
            "create",
            "--name",
            "conf-bad-cpus",
            "--cpus",
            "0",
        ],
    );
    same(
        s,
        n,
        &["machine", "create", "--name", "conf-bad-mem", "--mem", "10"],
    );
    same(
        s,
        n,
        &[
            "machine",
            "create",
            "--name",
            "conf-bad-vol",
            "-v",
            "/nonexistent-conf:/x",
        ],
    );
    same(
        s,
        n,
        &["machine", "create", "--name", "conf-bad-vol", "-v", "/tmp"],
    );

    // Not running: created, then stopped.
    for state in ["created", "stopped"] {
        same(s, n, &strs(&m.exec(&[], &["true"])));
        same(
            s,
            n,
            &strs(&m.exec(&["--secret-env", "A=CONF_UNSET"], &["true"])),
        );
        same(
            s,
            n,
            &["machine", "cp", "/etc/hostname", "conf-life:/tmp/x"],
        );
        same(
            s,
            n,
            &["machine", "cp", "conf-life:/etc/hostname", "/dev/null"],
        );
        let (standin, real) = same(s, n, &["machine", "status", "--name", n, "--json"]);
        for out in [&standin, &real] {
            assert_eq!(
                json_line(&out.stdout(), "state"),
                Some(&*format!("\"{state}\","))
            );
        }
        // The key set, and the values libbottle reads.
        let (sj, rj) = (standin.stdout(), real.stdout());
        assert_eq!(top_keys(&sj), top_keys(&rj));
        assert!(top_keys(&rj).len() >= 30, "{rj}");
        for key in [
            "name",
            "state",
            "image",
            "cpus",
            "memory_mib",
            "network",
            "labels",
        ] {
            assert_eq!(json_line(&sj, key), json_line(&rj, key), "{key}");
        }
        for json in [&sj, &rj] {
            let created = json_line(json, "created_at").unwrap();
            assert!(
                created.trim_end_matches(',').parse::<u64>().is_ok(),
                "{created}"
            );
        }
        same(s, n, &["machine", "stop", "--name", n]);
        if state == "created" {
            same(s, n, &["machine", "start", "--name", n]);
            same(s, n, &["machine", "start", "--name", n]);
            same(s, n, &["machine", "stop", "--name", n]);
        }
    }
    // Without -f smolvm asks; no "y" keeps the machine.
    same_with(s, n, &["machine", "delete", "--name", n], Some(b"n\n"));
    same_with(s, n, &["machine", "delete", "--name", n], None);
    let (standin, real) = same(s, n, &["machine", "ls", "--json"]);
    assert!(standin.stdout().contains("\"conf-life\"") && real.stdout().contains("\"conf-life\""));
    same(s, n, &["machine", "delete", "-f", "--name", n]);
    same(s, n, &["machine", "status", "--name", n, "--json"]);
}

#[test]
fn exec_statuses_failures_and_environment() {
    let Some(s) = setup() else { return };
    let n = "conf-exec";
    let m = Machine::started(s, n, &["-e", "FROM_MACHINE=m", "-e", "OVER=machine"]);
    let ex = |flags: &[&str], argv: &[&str]| m.exec(flags, argv);

    // Statuses and output.
    for argv in [
        &["sh", "-c", "exit 3"][..],
        &["sh", "-c", "kill -9 $$"],
        &["sh", "-c", "kill -TERM $$"],
        &["sh", "-c", "printf 'out\\0bin'; printf err >&2; exit 7"],
        &["pwd"],
    ] {
        for flags in [&[][..], &["--stream"], &["-i"]] {
            same_output(s, n, &strs(&ex(flags, argv)));
        }
    }
    // stdin: forwarded and closed with -i, /dev/null without flags.
    same_output(s, n, &strs(&ex(&[], &["cat"])));
    let (standin, real) = same_with(s, n, &strs(&ex(&["-i"], &["cat"])), Some(b"hello"));
    assert_eq!(
        (standin.stdout(), real.stdout()),
        ("hello".into(), "hello".into())
    );
    // --stream never closes it: cat waits until the timeout.
    let (standin, _) = same(s, n, &strs(&ex(&["--stream", "--timeout", "1s"], &["cat"])));
    assert_eq!(standin.code, 124);

    // Commands that cannot be started, in each mode, and bad -w.
    for flags in [&[][..], &["--stream"], &["-i"]] {
        for argv in [&["no-such-command"][..], &["/etc/passwd"], &[""]] {
            let (standin, _) = same(s, n, &strs(&ex(flags, argv)));
            assert_eq!(standin.code, 1);
        }
        for dir in ["/no-such-dir", "/etc/passwd"] {
            let mut f = flags.to_vec();
            f.extend(["-w", dir]);
            same(s, n, &strs(&ex(&f, &["pwd"])));
        }
    }
    same_output(s, n, &strs(&ex(&["-w", "tmp"], &["pwd"])));

    // Environment: the base, then the machine's, the secrets, exec's -e.
    let masked = |out: &Out| {
        let mut lines: Vec<String> = out
            .stdout()
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, _)) if k == "SMOLVM_HOST_TIME_NS" || k == "SMOLVM_READY_MARKER" => {
                    format!("{k}=*")
                }
                _ => l.to_string(),
            })
            .collect();
        lines.sort();
        lines
    };
    for flags in [
        &[][..],
        &[
            "-e",
            "A=1",
            "-e",
            "CONF_FORWARDED",
            "-e",
            "CONF_UNSET",
            "-e",
            "=x",
            "-e",
            "OVER=exec",
        ],
        &["--secret-env", "S=CONF_SECRET", "-e", "HOME=/elsewhere"],
        &["--secret-env", "OVER=CONF_SECRET"],
        &["--secret-env", "OVER=CONF_SECRET", "-e", "OVER=exec"],
        &["-t"],
    ] {
        let (standin, real) = same(s, n, &strs(&ex(flags, &["env"])));
        assert_eq!(masked(&standin), masked(&real), "{flags:?}");
    }
    for flags in [
        &["--secret-env", "S=CONF_UNSET"][..],
        &["--secret-env", "S"],
        &["--secret-env", "=CONF_SECRET"],
        &[
            "--secret-env",
            "S=CONF_SECRET",
            "--secret-env",
            "S=CONF_SECRET",
        ],
        &["--timeout", "1"],
        &["--timeout", "1x"],
    ] {
        let (standin, _) = same(s, n, &strs(&ex(flags, &["true"])));
        assert_ne!(standin.code, 0, "{flags:?}");
    }

    // Timeouts: 124, what was written so far, nothing added.
    for flags in [&[][..], &["--stream"], &["-i"]] {
        let mut f = flags.to_vec();
        f.extend(["--timeout", "1s"]);
        let (standin, _) =
            same_output(s, n, &strs(&ex(&f, &["sh", "-c", "echo so-far; sleep 10"])));
        assert_eq!(standin.code, 124);
    }
}

#[test]
fn exec_output_caps() {
    let Some(s) = setup() else { return };
    let n = "conf-caps";
    let m = Machine::started(s, n, &[]);
    let bytes = |count: usize| format!("head -c {count} /dev/zero");
    let cases = [
        // Buffered: each stream may hold the cap, not a byte more.
        (&[][..], bytes(CAP), Some(CAP)),
        (&[][..], bytes(CAP + 1), None),
        (&[][..], format!("{} >&2", bytes(CAP + 1)), None),
        // --stream: the CLI gives up once the total reaches the cap.
        (&["--stream"][..], bytes(CAP), None),
        (&["--stream"][..], bytes(CAP - 1), Some(CAP - 1)),
        // -i: no cap.
        (&["-i"][..], bytes(CAP + 1), Some(CAP + 1)),
    ];
    for (flags, script, whole) in cases {
        let (standin, real) = same(s, n, &strs(&m.exec(flags, &["sh", "-c", &script])));
        if let Some(len) = whole {
            assert_eq!(
                (standin.code, standin.stdout.len()),
                (0, len),
                "{flags:?} {script}"
            );
            assert_eq!(real.stdout.len(), len);
        } else {
            assert_eq!(standin.code, 1, "{flags:?} {script}");
            assert_eq!(standin.errors(n).len(), 1);
        }
    }
}

#[test]
fn cp_in_out_and_failures() {
    let Some(s) = setup() else { return };
    let n = "conf-cp";
    let _m = Machine::started(s, n, &[]);
    let host = s.scratch.join("host");
    let file = host.join("file");
    std::fs::write(&file, b"payload\n").unwrap();
    let f = file.to_str().unwrap();
    let h = |name: &str| host.join(name).to_str().unwrap().to_string();
    let g = |path: &str| format!("{n}:{path}");

    // In, then out again, through relative and absolute guest paths.
    same(s, n, &["machine", "cp", f, &g("/tmp/in")]);
    same(
        s,
        n,
        &["machine", "cp", "--mode", "0o600", f, &g("tmp/rel/deep")],
    );
    same_output(
        s,
        n,
        &[
            "machine",
            "exec",
            "--name",
            n,
            "--",
            "stat",
            "-c",
            "%a %s",
            "/tmp/in",
            "/tmp/rel/deep",
        ],
    );
    for (out, src) in [("out-s", "/tmp/in"), ("out-r", "tmp/rel/deep")] {
        let (standin, real) = both(s, &["machine", "cp", &g(src), &h(out)], None);
        assert_eq!((standin.code, real.code), (0, 0), "{}", real.stderr);
        assert_eq!(std::fs::read(h(out)).unwrap(), b"payload\n");
    }

    let missing_dir = h("no-such-dir/x");
    for args in [
        // Host side.
        vec!["machine", "cp", "/no-such-conf-file", &g("/tmp/x")],
        vec!["machine", "cp", host.to_str().unwrap(), &g("/tmp/x")],
        vec!["machine", "cp", &g("/tmp/in"), host.to_str().unwrap()],
        vec!["machine", "cp", &g("/tmp/in"), &missing_dir],
        // Guest side.
        vec!["machine", "cp", f, &g("/tmp")],
        vec!["machine", "cp", f, &g("/tmp/../etc/x")],
        vec!["machine", "cp", f, &g("")],
        vec!["machine", "cp", &g("/no-such-guest-file"), &h("never")],
        vec!["machine", "cp", &g("/tmp"), &h("never")],
        vec!["machine", "cp", &g("/tmp/../etc/passwd"), &h("never")],
        // The command line.
        vec!["machine", "cp", f, &h("both-host")],
        vec!["machine", "cp", "--mode", "644", &g("/tmp/in"), &h("x")],
        vec!["machine", "cp", "--mode", "999", f, &g("/tmp/x")],
        vec!["machine", "cp", f, "conf-cp-unknown:/tmp/x"],
        vec!["machine", "cp", f, ":/tmp/x"],
    ] {
        // Host paths are the same for both CLIs, so they stay in the text.
        let (standin, _) = same(s, n, &args);
        assert_eq!(standin.code, 1, "{args:?}");
    }
    // A failed copy out leaves no host file behind, on either CLI.
    assert!(!Path::new(&h("never")).exists());
}
