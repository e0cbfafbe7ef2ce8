//! Bottles at an endpoint: what a `smolvm serve` does differently from the
//! CLI, each handled, and mutual TLS for real. Each test starts the serves
//! it needs (the stand-in's, or the real one when the tests run through
//! `tests/real-smolvm`), over the same machines as the CLI.
//!
//! The suites of exec, copy, claude and the rest run at an endpoint too,
//! through `tests/with-serve` (see the Makefile's `test-serve`).

mod common;

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;
use std::time::Duration;

use ::bottle::ffi::bottle::{bottle, bottle_machine_name};
use ::bottle::ffi::endpoint::{bottle_endpoint_new, bottle_open_at};
use ::bottle::ffi::launch::{
    bottle_close_checked, bottle_launch, bottle_launch_options_add_env, bottle_launch_options_free,
    bottle_launch_options_new, bottle_launch_options_set_endpoint, bottle_reap_at,
};
use ::bottle::ffi::status::bottle_status::*;
use common::{assert_fails, check, cstr, make_endpoint, smolvm, Bottle, Endpoint, Machine};

/// A serve started for a test, stopped (SIGTERM, then waited for) on drop.
struct Serve {
    child: Child,
    url: String,
    tls: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// A serve on a unix socket; `env` is added to its environment.
    fn unix(env: &[(&str, &str)]) -> Serve {
        let dir = scratch("serve");
        let sock = dir.path().join("api.sock");
        let child = start_serve(&format!("unix://{}", sock.display()), env, None);
        let serve = Serve {
            child,
            url: format!("unix:{}", sock.display()),
            tls: None,
            _dir: dir,
        };
        serve.wait_up(|| sock.exists());
        serve
    }

    /// A serve on 127.0.0.1 with mutual TLS, its certificates in `certs`.
    fn tls(certs: &Certs) -> Serve {
        let port = free_port();
        let child = start_serve(&format!("127.0.0.1:{port}"), &[], Some(certs));
        let serve = Serve {
            child,
            url: format!("https://localhost:{port}"),
            tls: Some(certs.dir.path().to_owned()),
            _dir: scratch("tls-serve"),
        };
        serve.wait_up(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        serve
    }

    fn wait_up(&self, up: impl Fn() -> bool) {
        for _ in 0..200 {
            if up() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("serve did not come up at {}", self.url);
    }

    /// An endpoint for this serve, with its client certificate if TLS.
    fn endpoint(&self) -> Endpoint {
        let dir = self.tls.as_ref().map(|d| d.to_str().unwrap().to_owned());
        make_endpoint(&self.url, dir.as_deref())
    }

    fn open(&self, machine: &str) -> Bottle {
        open_at(&self.endpoint(), machine).expect("open_at")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn open_at(ep: &Endpoint, machine: &str) -> Result<Bottle, common::Failure> {
    let mut out = null_mut();
    check(unsafe { bottle_open_at(ep.0, cstr(machine).as_ptr(), null(), &mut out) })
        .map(|()| Bottle(out))
}

/// `serve start -l LISTEN` of the smolvm under test, dying with this
/// process.
fn start_serve(listen: &str, env: &[(&str, &str)], certs: Option<&Certs>) -> Child {
    let mut cmd = Command::new(common::standin());
    cmd.args(["serve", "start", "-l", listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(c) = certs {
        let f = |name: &str| c.dir.path().join(name);
        cmd.env("SMOLVM_SERVE_TLS_CERT", f("server.pem"))
            .env("SMOLVM_SERVE_TLS_KEY", f("server.key"))
            .env("SMOLVM_SERVE_TLS_CLIENT_CA", f("ca.pem"));
    }
    if common::real_cli() {
        // The real serve, through tests/real-smolvm: it shares the CLI's
        // records through the scratch HOME, and its rollout listener needs
        // a port of its own.
        let home = std::env::var("BOTTLE_REAL_SMOLVM_HOME").unwrap();
        cmd.env("SMOLVM_DATA_DIR", home)
            .env("SMOLVM_GUEST_ROLLOUT_HOST_PORT", free_port().to_string());
    }
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    };
    cmd.spawn().expect("start serve")
}

fn free_port() -> u16 {
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        // smolvm's TLS serve also listens on port + 1.
        if std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

fn scratch(label: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("bottle-{label}-"))
        .tempdir()
        .unwrap()
}

/// Test certificates: a CA with a server certificate for localhost and a
/// client certificate, and a second CA with a client certificate of its
/// own (an intruder to the first).
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = scratch("certs");
        let script = r#"set -e
ca() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" -keyout "$1.key" -out "$1.pem"; }
leaf() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.pem"
}
ca ca; ca otherca
leaf server ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client ca "extendedKeyUsage=clientAuth"
leaf intruder otherca "extendedKeyUsage=clientAuth"
"#;
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(dir.path())
            .output()
            .expect("openssl (the TLS tests need it)");
        assert!(out.status.success(), "openssl: {out:?}");
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn tls_endpoint(url: &str, ca: &Path, cert: &Path, key: &Path) -> Endpoint {
    let mut ep = null_mut();
    check(unsafe { bottle_endpoint_new(cstr(url).as_ptr(), &mut ep) }).unwrap();
    let p = |p: &Path| cstr(p.to_str().unwrap());
    check(unsafe {
        ::bottle::ffi::endpoint::bottle_endpoint_set_tls(
            ep,
            p(ca).as_ptr(),
            p(cert).as_ptr(),
            p(key).as_ptr(),
        )
    })
    .unwrap();
    Endpoint(ep)
}

/// Launch records go to a directory of this test run, not the caller's.
fn isolated_records() {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/serve-test-state")
            .join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("XDG_STATE_HOME", &dir);
        dir
    });
}

fn name_of(b: *const bottle) -> String {
    unsafe { CStr::from_ptr(bottle_machine_name(b)) }
        .to_str()
        .unwrap()
        .to_owned()
}

fn state(name: &str) -> Option<String> {
    let out = smolvm(&["machine", "status", "--name", name, "--json"]);
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(v["state"].as_str().unwrap().to_owned())
}

#[test]
fn mutual_tls_works_and_refuses_strangers_both_ways() {
    let certs = Certs::new();
    let serve = Serve::tls(&certs);
    let m = Machine::new("tls");
    let b = serve.open(&m.name);
    let r = b.exec("printf 'over tls \\377'", None).unwrap();
    assert_eq!(r.stdout, b"over tls \xff");

    // A client certificate from another CA: serve refuses the handshake.
    let intruder = tls_endpoint(
        &serve.url,
        &certs.path("ca.pem"),
        &certs.path("intruder.pem"),
        &certs.path("intruder.key"),
    );
    let b = open_at(&intruder, &m.name).unwrap();
    assert_fails(
        b.exec("true", None),
        BOTTLE_ERR_IO,
        "smolvm serve at https://localhost",
    );

    // A server whose certificate the client's CA did not sign.
    let wrong_ca = tls_endpoint(
        &serve.url,
        &certs.path("otherca.pem"),
        &certs.path("client.pem"),
        &certs.path("client.key"),
    );
    let b = open_at(&wrong_ca, &m.name).unwrap();
    assert_fails(
        b.exec("true", None),
        BOTTLE_ERR_IO,
        "smolvm serve at https://localhost",
    );

    // Without a client certificate the library does not even try.
    let mut bare = null_mut();
    check(unsafe { bottle_endpoint_new(cstr(&serve.url).as_ptr(), &mut bare) }).unwrap();
    assert_fails(
        open_at(&Endpoint(bare), &m.name),
        BOTTLE_ERR_INVALID_ARGUMENT,
        "ep: ",
    );
}

#[test]
fn a_stopped_machine_is_refused_and_not_booted() {
    let serve = Serve::unix(&[]);
    let m = Machine::new("stopped");
    let b = serve.open(&m.name);
    assert_eq!(b.sh("echo up"), "up\n");
    m.stop();
    assert_fails(b.exec("true", None), BOTTLE_ERR_SMOLVM, "is not running");
    assert_fails(
        b.cp_in(b"/etc/hostname", "/tmp/x"),
        BOTTLE_ERR_SMOLVM,
        "is not running",
    );
    assert_eq!(
        state(&m.name).as_deref(),
        Some("stopped"),
        "serve booted it"
    );
}

#[test]
fn a_machine_the_cli_made_after_serve_started_is_adopted() {
    let serve = Serve::unix(&[]);
    // Made (and started) by the CLI while serve runs: serve has no record.
    let m = Machine::new("adopted");
    let b = serve.open(&m.name);
    assert_eq!(b.sh("echo adopted"), "adopted\n");
}

#[test]
fn output_is_byte_exact_where_serve_streams_lossily() {
    let serve = Serve::unix(&[]);
    let m = Machine::new("bytes");
    let b = serve.open(&m.name);
    let r = b
        .exec(
            "printf 'a\\r\\nb\\377\\n'; printf '\\200\\0x' >&2; exit 7",
            None,
        )
        .unwrap();
    assert_eq!(
        (r.exit_code, &r.stdout[..], &r.stderr[..]),
        (7, &b"a\r\nb\xff\n"[..], &b"\x80\0x"[..])
    );
}

#[test]
fn a_command_outlasts_serves_request_timeout() {
    // The stand-in's serve with its 300 s request timeout cut to 3 s.
    let serve = Serve::unix(&[("SMOLVM_STANDIN_API_TIMEOUT_SECS", "3")]);
    let m = Machine::new("long");
    let b = serve.open(&m.name);
    let r = b.exec("sleep 5; echo done", None).unwrap();
    assert_eq!((r.exit_code, r.stdout_str()), (0, "done\n"));
}

#[test]
fn a_file_larger_than_one_upload_arrives_whole() {
    let serve = Serve::unix(&[]);
    let m = Machine::new("big");
    let b = serve.open(&m.name);
    let dir = scratch("big");
    let host = dir.path().join("big");
    // 130 MiB: over serve's 100 MiB upload cap, so it goes in parts.
    let data: Vec<u8> = (0..130u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&host, &data).unwrap();
    b.cp_in(host.to_str().unwrap().as_bytes(), "/tmp/big")
        .unwrap();
    let sum = |d: &[u8]| {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(d).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()[..64].to_owned()
    };
    let guest = b.sh(
        "sha256sum /tmp/big; stat -c '%a %U' /tmp/big; ls -a /tmp | grep -c bottle-copy || true",
    );
    assert_eq!(guest, format!("{}  /tmp/big\n644 root\n0\n", sum(&data)));
}

#[test]
fn claude_gets_its_argv_with_a_terminal_or_without() {
    let serve = Serve::unix(&[]);
    let m = Machine::new("claude");
    let b = serve.open(&m.name);
    let argv = ["-p", "it's \"quoted\"", "$HOME", "", "--flag", "\u{1b}[31m"];
    for tty in [false, true] {
        assert_eq!(b.exec_claude(&argv, tty).unwrap(), 0, "tty {tty}");
        let got = b.claude_argv();
        assert!(
            got.ends_with(&argv.map(|a| a.as_bytes().to_vec())),
            "tty {tty}: {got:?}"
        );
    }
    // The launcher of the terminal route removed itself.
    assert_eq!(b.sh("ls -a /tmp | grep -c bottle-claude || true"), "0\n");
}

#[test]
fn a_launched_machine_gets_its_environment_and_close_deletes_it() {
    isolated_records();
    let serve = Serve::unix(&[]);
    let ep = serve.endpoint();
    let mut opts = null_mut();
    check(unsafe { bottle_launch_options_new(&mut opts) }).unwrap();
    check(unsafe { bottle_launch_options_set_endpoint(opts, ep.0) }).unwrap();
    check(unsafe {
        bottle_launch_options_add_env(opts, cstr("GREETING").as_ptr(), cstr("hi there").as_ptr())
    })
    .unwrap();
    let mut raw = null_mut();
    check(unsafe { bottle_launch(opts, &mut raw) }).unwrap();
    unsafe { bottle_launch_options_free(opts) };
    let name = name_of(raw);
    let b = Bottle(raw);
    // serve does not apply a machine's variables to its execs: the
    // library sends them.
    assert_eq!(b.sh("echo \"$GREETING\""), "hi there\n");
    assert_eq!(state(&name).as_deref(), Some("running"));
    let raw = b.0;
    std::mem::forget(b);
    check(unsafe { bottle_close_checked(raw) }).unwrap();
    assert_eq!(state(&name), None, "close deletes the machine");
}

#[test]
fn reap_at_deletes_what_a_dead_owner_launched_there_and_nothing_else() {
    isolated_records();
    let serve = Serve::unix(&[]);
    let ep = serve.endpoint();
    let launch = || {
        let mut opts = null_mut();
        check(unsafe { bottle_launch_options_new(&mut opts) }).unwrap();
        check(unsafe { bottle_launch_options_set_endpoint(opts, ep.0) }).unwrap();
        let mut raw = null_mut();
        check(unsafe { bottle_launch(opts, &mut raw) }).unwrap();
        unsafe { bottle_launch_options_free(opts) };
        Bottle(raw)
    };
    let orphan = launch();
    let alive = launch();
    let (orphan_name, alive_name) = (name_of(orphan.0), name_of(alive.0));
    // The orphan's owner "dies": its record names a process that is gone.
    let records = std::env::var("XDG_STATE_HOME").unwrap() + "/libbottle/serve";
    let record = std::fs::read_dir(&records)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with(&orphan_name)
        })
        .expect("a record of the launch");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    json["owner"]["start"] = "1".into();
    std::fs::write(&record, serde_json::to_vec(&json).unwrap()).unwrap();
    // A machine the library did not launch is never a candidate.
    let foreign = Machine::new("foreign");
    std::mem::forget(orphan); // its handle would delete it on close

    let (status, names) = common::reaped(|r| unsafe { bottle_reap_at(ep.0, null(), r) });
    check(status).unwrap();
    assert_eq!(names, std::slice::from_ref(&orphan_name));
    assert_eq!(state(&orphan_name), None);
    assert!(!record.exists(), "the record goes with the machine");
    assert!(state(&alive_name).is_some() && state(&foreign.name).is_some());
    drop(alive);
    assert_eq!(state(&alive_name), None);
}
