//! Shared fixtures for the integration tests: the stand-in smolvm, machines
//! that delete themselves, and safe wrappers over the C API.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use ::bottle::ffi::bottle::{
    bottle, bottle_close, bottle_cp_in, bottle_exec, bottle_exec_claude, bottle_open,
};
use ::bottle::ffi::endpoint::{
    bottle_endpoint, bottle_endpoint_new, bottle_endpoint_set_tls, bottle_open_at,
};
use ::bottle::ffi::exec_result::{bottle_exec_result, bottle_exec_result_free};
use ::bottle::ffi::status::{bottle_last_error, bottle_status};

/// The smolvm the library is pointed at (`$BOTTLE_SMOLVM`): the stand-in
/// CLI, or `tests/real-smolvm`, the real smolvm CLI driving the stand-in
/// guest. Fails loudly, with the reason, when the tests cannot run here.
pub fn standin() -> PathBuf {
    static STANDIN: OnceLock<PathBuf> = OnceLock::new();
    STANDIN.get_or_init(find_standin).clone()
}

fn find_standin() -> PathBuf {
    let path = PathBuf::from(std::env::var_os("BOTTLE_SMOLVM").expect(
        "BOTTLE_SMOLVM is not set: run the tests with `make test` or plain `cargo test`, \
         which sets it through .cargo/config.toml",
    ));
    assert!(
        path.is_file(),
        "the smolvm under test, {}, is missing: build the stand-in with \
         `cargo build -p smolvm-standin` (make test does)",
        path.display()
    );
    if path.file_name() == Some(std::ffi::OsStr::new("real-smolvm")) {
        pin_real_smolvm_paths();
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the stand-in smolvm needs root (mount namespaces and chroot); these tests cannot run \
         as a normal user"
    );
    path
}

/// `tests/real-smolvm` finds the real smolvm, the stand-in guest and its
/// scratch HOME beside itself unless told; a test that copies it elsewhere
/// (to find it on PATH) needs them told, as absolute paths.
fn pin_real_smolvm_paths() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (var, default) in [
        (
            "BOTTLE_REAL_SMOLVM",
            repo.join("../shared/smolvm-1.9.2/smolvm"),
        ),
        (
            "BOTTLE_REAL_SMOLVM_HOME",
            repo.join("target/real-smolvm-home"),
        ),
        ("BOTTLE_STANDIN", repo.join("target/debug/smolvm-standin")),
    ] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, default);
        }
    }
}

/// An endpoint (`bottle_endpoint`), shared by the tests of a run.
pub struct Endpoint(pub *mut bottle_endpoint);

// SAFETY: an endpoint is only read once made; the C API allows that from
// any thread.
unsafe impl Send for Endpoint {}
unsafe impl Sync for Endpoint {}

/// The `smolvm serve` the tests go through instead of the CLI, when
/// `BOTTLE_TEST_ENDPOINT` names one (`tests/with-serve` sets it, with
/// `BOTTLE_TEST_TLS_DIR` holding `ca.pem`, `client.pem` and `client.key`
/// for an `https://` one).
pub fn endpoint() -> Option<&'static Endpoint> {
    static EP: OnceLock<Option<Endpoint>> = OnceLock::new();
    EP.get_or_init(|| {
        let url = std::env::var("BOTTLE_TEST_ENDPOINT").ok()?;
        Some(make_endpoint(
            &url,
            std::env::var("BOTTLE_TEST_TLS_DIR").ok().as_deref(),
        ))
    })
    .as_ref()
}

/// A new endpoint for `url`, with the TLS files of `tls_dir` if given.
pub fn make_endpoint(url: &str, tls_dir: Option<&str>) -> Endpoint {
    let mut ep = std::ptr::null_mut();
    check(unsafe { bottle_endpoint_new(cstr(url).as_ptr(), &mut ep) }).expect("endpoint");
    if let Some(dir) = tls_dir {
        let file = |f: &str| cstr(&format!("{dir}/{f}"));
        check(unsafe {
            bottle_endpoint_set_tls(
                ep,
                file("ca.pem").as_ptr(),
                file("client.pem").as_ptr(),
                file("client.key").as_ptr(),
            )
        })
        .expect("endpoint TLS");
    }
    Endpoint(ep)
}

/// How smolvm says it has no machine `name`: the CLI's words, or serve's.
pub fn not_found(name: &str) -> String {
    match endpoint() {
        Some(_) => format!("machine '{name}' not found"),
        None => format!("vm not found: {name}"),
    }
}

/// Whether a process a script leaves running outlives its exec, as in a VM:
/// true for a real smolvm (with the stand-in guest or a real one) and for
/// a serve (whose guests live from request to request), false for the
/// stand-in CLI, which gives every exec a PID namespace that ends with it.
pub fn guest_outlives_exec() -> bool {
    endpoint().is_some() || real_cli()
}

/// Whether the smolvm under test is a real smolvm CLI, not the stand-in's.
pub fn real_cli() -> bool {
    static REAL: OnceLock<bool> = OnceLock::new();
    *REAL.get_or_init(|| {
        let out = smolvm(&["--version"]);
        assert!(out.status.success(), "smolvm --version: {out:?}");
        !String::from_utf8_lossy(&out.stdout).contains("standin")
    })
}

/// Runs the smolvm under test directly (setup and checks that bypass the
/// library).
///
/// The real smolvm can fail at once with `database is locked` when several
/// smolvms change its machine database together (the library waits that
/// out the same way): tried again then.
pub fn smolvm(args: &[&str]) -> std::process::Output {
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        let out = Command::new(standin())
            .args(args)
            .output()
            .expect("run the smolvm under test");
        let locked = String::from_utf8_lossy(&out.stderr).contains("database is locked");
        if !locked || pause > std::time::Duration::from_secs(2) {
            return out;
        }
        std::thread::sleep(pause);
        pause *= 2;
    }
}

/// A running stand-in machine, deleted (with everything in it) on drop.
pub struct Machine {
    pub name: String,
}

impl Machine {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}-{}-{label}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let created = smolvm(&["machine", "create", "--name", &name]);
        assert!(created.status.success(), "create {name}: {created:?}");
        let machine = Machine { name };
        machine.start();
        machine
    }

    pub fn start(&self) {
        let out = smolvm(&["machine", "start", "--name", &self.name]);
        assert!(out.status.success(), "start {}: {out:?}", self.name);
    }

    pub fn stop(&self) {
        let out = smolvm(&["machine", "stop", "--name", &self.name]);
        assert!(out.status.success(), "stop {}: {out:?}", self.name);
    }

    /// The machine's root filesystem as the host sees it.
    /// The machine's root filesystem on the host: the stand-in CLI keeps
    /// it in its state directory, the stand-in guest of `tests/real-smolvm`
    /// in the VM's data directory (named by the first 8 bytes of the
    /// SHA-256 of the machine name, as smolvm does).
    pub fn rootfs(&self) -> PathBuf {
        if !real_cli() {
            let home = std::env::var_os("SMOLVM_STANDIN_HOME").expect("SMOLVM_STANDIN_HOME is set");
            return PathBuf::from(home).join(&self.name).join("rootfs");
        }
        let home = std::env::var_os("BOTTLE_REAL_SMOLVM_HOME").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/real-smolvm-home"),
            PathBuf::from,
        );
        let digest = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(self.name.as_bytes())?;
                child.wait_with_output()
            })
            .expect("sha256sum");
        let hex = String::from_utf8(digest.stdout).unwrap();
        home.join(".cache/smolvm/vms")
            .join(&hex[..16])
            .join("standin/rootfs")
    }

    pub fn open(&self) -> Bottle {
        Bottle::open(&self.name, None).expect("open")
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let out = smolvm(&["machine", "delete", "--name", &self.name, "-f"]);
        let deleted = out.status.success();
        // A second panic while a failed test unwinds would abort the run.
        if !deleted && !std::thread::panicking() {
            panic!("delete {}: {out:?}", self.name);
        }
    }
}

/// A failed call: its status and `bottle_last_error()`.
#[derive(Debug)]
pub struct Failure {
    pub status: bottle_status,
    pub message: String,
}

fn failure(status: bottle_status) -> Failure {
    let msg = bottle_last_error();
    assert!(!msg.is_null(), "a failed call must leave a message");
    // SAFETY: the library returns a NUL-terminated string valid until the
    // next call on this thread.
    let message = unsafe { CStr::from_ptr(msg) }.to_str().unwrap().to_owned();
    Failure { status, message }
}

pub fn check(status: bottle_status) -> Result<(), Failure> {
    match status {
        bottle_status::BOTTLE_OK => Ok(()),
        s => Err(failure(s)),
    }
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// An owned copy of a `bottle_exec_result`.
#[derive(Debug, PartialEq, Eq)]
pub struct Exec {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Exec {
    pub fn stdout_str(&self) -> &str {
        std::str::from_utf8(&self.stdout).unwrap()
    }
}

/// A C bottle handle, closed on drop. Every method goes through the C ABI.
#[derive(Debug)]
pub struct Bottle(pub *mut bottle);

// SAFETY: the C API documents bottles as usable from many threads at once.
unsafe impl Send for Bottle {}
unsafe impl Sync for Bottle {}

impl Bottle {
    /// `bottle_open`, or `bottle_open_at` the endpoint under test.
    pub fn open(machine: &str, prompt: Option<&str>) -> Result<Self, Failure> {
        let machine = cstr(machine);
        let prompt = prompt.map(cstr);
        let prompt = prompt.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
        let mut out = std::ptr::null_mut();
        let status = match endpoint() {
            Some(ep) => unsafe { bottle_open_at(ep.0, machine.as_ptr(), prompt, &mut out) },
            None => unsafe { bottle_open(machine.as_ptr(), prompt, &mut out) },
        };
        check(status).map(|()| {
            assert!(!out.is_null());
            Bottle(out)
        })
    }

    pub fn exec_raw(&self, script: *const c_char, user: *const c_char) -> Result<Exec, Failure> {
        let mut r = bottle_exec_result {
            exit_code: -7,
            stdout_data: 1 as *mut u8,
            stdout_len: 9,
            stderr_data: 1 as *mut u8,
            stderr_len: 9,
        };
        let status = unsafe { bottle_exec(self.0, script, user, &mut r) };
        if let Err(f) = check(status) {
            assert!(
                r.stdout_data.is_null() && r.stderr_data.is_null(),
                "zeroed on failure"
            );
            assert_eq!((r.exit_code, r.stdout_len, r.stderr_len), (0, 0, 0));
            return Err(f);
        }
        assert!(!r.stdout_data.is_null() && !r.stderr_data.is_null());
        unsafe {
            assert_eq!(
                *r.stdout_data.add(r.stdout_len),
                0,
                "stdout is NUL-terminated"
            );
            assert_eq!(
                *r.stderr_data.add(r.stderr_len),
                0,
                "stderr is NUL-terminated"
            );
        }
        let owned = unsafe { take_result(&mut r) };
        assert!(
            r.stdout_data.is_null() && r.stderr_data.is_null(),
            "free zeroes"
        );
        Ok(owned)
    }

    pub fn exec(&self, script: &str, user: Option<&str>) -> Result<Exec, Failure> {
        let script = cstr(script);
        let user = user.map(cstr);
        self.exec_raw(
            script.as_ptr(),
            user.as_ref().map_or(std::ptr::null(), |u| u.as_ptr()),
        )
    }

    /// Runs `script` as node and returns its stdout, asserting exit 0.
    pub fn sh(&self, script: &str) -> String {
        let r = self.exec(script, None).expect("exec");
        assert_eq!(r.exit_code, 0, "{script}: {r:?}");
        String::from_utf8(r.stdout).unwrap()
    }

    pub fn exec_claude(&self, args: &[&str], tty: bool) -> Result<i32, Failure> {
        let owned: Vec<CString> = args.iter().map(|a| cstr(a)).collect();
        let ptrs: Vec<*const c_char> = owned.iter().map(|a| a.as_ptr()).collect();
        let mut code = -7;
        let status =
            unsafe { bottle_exec_claude(self.0, ptrs.as_ptr(), ptrs.len(), tty, &mut code) };
        check(status)
            .map(|()| code)
            .inspect_err(|_| assert_eq!(code, 0))
    }

    pub fn cp_in(&self, host: &[u8], guest: &str) -> Result<(), Failure> {
        let host = CString::new(host).unwrap();
        let guest = cstr(guest);
        check(unsafe { bottle_cp_in(self.0, host.as_ptr(), guest.as_ptr()) })
    }

    /// The argv the claude stand-in last recorded, split at its NULs.
    pub fn claude_argv(&self) -> Vec<Vec<u8>> {
        let r = self
            .exec("cat ~/.claude-standin/argv", None)
            .expect("read argv");
        assert_eq!(r.exit_code, 0, "{r:?}");
        let mut args: Vec<Vec<u8>> = r.stdout.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
        assert_eq!(args.pop(), Some(Vec::new()), "argv ends with a NUL");
        args
    }
}

impl Drop for Bottle {
    fn drop(&mut self) {
        unsafe { bottle_close(self.0) };
    }
}

/// Asserts a failure's status and that its message contains `needle`.
pub fn assert_fails<T: std::fmt::Debug>(
    r: Result<T, Failure>,
    status: bottle_status,
    needle: &str,
) {
    let f = r.expect_err("the call should fail");
    assert_eq!(f.status, status, "{}", f.message);
    assert!(
        f.message.contains(needle),
        "message {:?} does not contain {needle:?}",
        f.message
    );
}

/// Strings that break naive quoting: spaces, both quotes, `$`, backticks,
/// newlines, globs, backslashes, non-ASCII text, empty strings, leading
/// dashes. The C and Go tests read the same file (tests/data/README.md).
pub fn tricky() -> &'static [&'static str] {
    static TRICKY: OnceLock<Vec<&'static str>> = OnceLock::new();
    TRICKY.get_or_init(|| {
        let file = include_str!("../data/tricky-strings.txt");
        file.lines()
            .map(|line| &*Box::leak(unescape(line).into_boxed_str()))
            .collect()
    })
}

/// A line of tests/data/tricky-strings.txt: `\\`, `\n`, `\t` and `\xHH`
/// are escapes, nothing else is.
fn unescape(line: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = line.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        if b != b'\\' {
            bytes.push(b);
            continue;
        }
        let (escaped, tail) = rest.split_first().expect("an escape at the end of a line");
        rest = tail;
        bytes.push(match escaped {
            b'\\' => b'\\',
            b'n' => b'\n',
            b't' => b'\t',
            b'x' => {
                let (hex, tail) = rest.split_at(2);
                rest = tail;
                u8::from_str_radix(std::str::from_utf8(hex).unwrap(), 16).expect("\\xHH")
            }
            other => panic!("unknown escape \\{}", *other as char),
        });
    }
    String::from_utf8(bytes).expect("tricky strings are UTF-8")
}

/// Exec options through the C ABI, freed on drop.
pub struct ExecOpts(pub *mut ::bottle::ffi::exec_options::bottle_exec_options);

impl ExecOpts {
    pub fn new() -> Self {
        let mut p = std::ptr::null_mut();
        check(unsafe { ::bottle::ffi::exec_options::bottle_exec_options_new(&mut p) }).unwrap();
        ExecOpts(p)
    }
}

impl Default for ExecOpts {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ExecOpts {
    fn drop(&mut self) {
        unsafe { ::bottle::ffi::exec_options::bottle_exec_options_free(self.0) };
    }
}

impl Bottle {
    /// bottle_exec_with, its result copied out and freed.
    pub fn exec_with(&self, script: &str, opts: &ExecOpts) -> Result<Exec, Failure> {
        let script = cstr(script);
        let mut r = bottle_exec_result {
            exit_code: 0,
            stdout_data: std::ptr::null_mut(),
            stdout_len: 0,
            stderr_data: std::ptr::null_mut(),
            stderr_len: 0,
        };
        let status = unsafe {
            ::bottle::ffi::bottle::bottle_exec_with(self.0, script.as_ptr(), opts.0, &mut r)
        };
        check(status)?;
        Ok(unsafe { take_result(&mut r) })
    }
}

/// Every process whose command line contains `needle`, as "pid: cmdline".
pub fn processes_with(needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

/// A NUL-terminated C string that is not UTF-8.
pub const NOT_UTF8: &[u8] = b"ab\xff\xfecd\0";

pub fn not_utf8() -> *const c_char {
    NOT_UTF8.as_ptr().cast()
}

/// What this process holds that a leak would make grow, read from /proc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holdings {
    /// Open descriptor numbers (the one used to list them is not counted).
    pub fds: Vec<i32>,
    pub threads: usize,
    /// Processes whose parent is this one, zombies included.
    pub children: Vec<i32>,
    /// Resident memory, in KiB.
    pub rss_kib: u64,
}

impl Holdings {
    pub fn now() -> Self {
        let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
            .expect("read /proc/self/fd")
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect();
        // The listing's own descriptor is closed by now: drop it.
        let fds = listed
            .into_iter()
            .filter(|fd| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok())
            .collect();
        let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
        let me = std::process::id() as i32;
        let children = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&pid| parent_of(pid) == Some(me))
            .collect();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix(" kB")?.trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        Holdings {
            fds,
            threads,
            children,
            rss_kib,
        }
    }
}

/// The parent pid from /proc/PID/stat; None if the process is gone.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may itself hold spaces and ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `work(0)` to `work(n - 1)` on `n` threads at once and returns once
/// the threads are gone. A join returns when a thread has finished, a moment
/// before the kernel removes it from /proc/self/task; a count taken in
/// between would blame the library for a thread that is already over.
pub fn on_threads(n: usize, work: impl Fn(usize) + Sync) {
    let tids = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..n {
            let (work, tids) = (&work, &tids);
            s.spawn(move || {
                // SAFETY: gettid has no preconditions.
                tids.lock().unwrap().push(unsafe { libc::gettid() });
                work(t);
            });
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for tid in tids.into_inner().unwrap() {
        let task = format!("/proc/self/task/{tid}");
        while std::path::Path::new(&task).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "thread {tid} was joined but still exists"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Copy options through the C ABI, freed on drop.
pub struct CopyOpts(pub *mut ::bottle::ffi::copy_options::bottle_copy_options);

impl CopyOpts {
    pub fn new() -> Self {
        let mut p = std::ptr::null_mut();
        check(unsafe { ::bottle::ffi::copy_options::bottle_copy_options_new(&mut p) }).unwrap();
        CopyOpts(p)
    }
}

impl Default for CopyOpts {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CopyOpts {
    fn drop(&mut self) {
        unsafe { ::bottle::ffi::copy_options::bottle_copy_options_free(self.0) };
    }
}

/// Launch options through the C ABI, freed on drop.
pub struct LaunchOpts(pub *mut ::bottle::ffi::launch::bottle_launch_options);

impl LaunchOpts {
    pub fn new() -> Self {
        let mut p = std::ptr::null_mut();
        check(unsafe { ::bottle::ffi::launch::bottle_launch_options_new(&mut p) }).unwrap();
        LaunchOpts(p)
    }
}

impl Default for LaunchOpts {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for LaunchOpts {
    fn drop(&mut self) {
        unsafe { ::bottle::ffi::launch::bottle_launch_options_free(self.0) };
    }
}

/// Copies a successful result out of C memory, then frees it.
///
/// # Safety
/// `r` was filled by a successful `bottle_exec` or `bottle_exec_with`.
pub unsafe fn take_result(r: &mut bottle_exec_result) -> Exec {
    let owned = unsafe {
        Exec {
            exit_code: r.exit_code,
            stdout: std::slice::from_raw_parts(r.stdout_data, r.stdout_len).to_vec(),
            stderr: std::slice::from_raw_parts(r.stderr_data, r.stderr_len).to_vec(),
        }
    };
    unsafe { bottle_exec_result_free(r) };
    owned
}

/// How many processes in the guest have a command line that the regular
/// expression `pattern` matches, seen from a new exec. A pattern with a
/// bracket (`sleep 12[3]`) does not match the scan's own command line.
pub fn guest_processes_with(b: &Bottle, pattern: &str) -> usize {
    let script = format!(
        "for d in /proc/[0-9]*; do tr '\\0' ' ' < $d/cmdline 2>/dev/null; echo; done \
         | grep -c -- '{pattern}' || true"
    );
    let r = b.exec(&script, Some("root")).unwrap();
    r.stdout_str().trim().parse().unwrap()
}

/// Waits until no guest process matches `pattern`; the guest stops what is
/// left of a stopped call a moment after smolvm has gone.
pub fn assert_guest_clears(b: &Bottle, pattern: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = guest_processes_with(b, pattern);
        if left == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "{left} guest processes of the stopped script still run ({pattern})"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Calls `reap` (`bottle_reap` or `bottle_reap_with`) and returns its status
/// and the names it listed, freeing them (and checking the free zeroed the
/// list).
pub fn reaped(
    reap: impl FnOnce(*mut ::bottle::ffi::launch::bottle_names) -> bottle_status,
) -> (bottle_status, Vec<String>) {
    use ::bottle::ffi::launch::{bottle_names, bottle_names_free};
    let mut removed = bottle_names {
        names: std::ptr::null_mut(),
        count: 0,
    };
    let status = reap(&mut removed);
    let names = (0..removed.count)
        .map(|i| {
            // SAFETY: reap filled `count` NUL-terminated names.
            unsafe { CStr::from_ptr(*removed.names.add(i)) }
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    // SAFETY: `removed` came from reap; freeing twice is allowed.
    unsafe { bottle_names_free(&mut removed) };
    assert!(removed.names.is_null() && removed.count == 0);
    unsafe { bottle_names_free(&mut removed) };
    (status, names)
}
