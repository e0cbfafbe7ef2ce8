//! What runs inside the guest, built as an argv for `smolvm machine exec --`.
//!
//! smolvm runs guest commands as root, but the agent image's user is `node`
//! and claude-code refuses `--dangerously-skip-permissions` as root. So every
//! command goes through `runuser -l USER` with SCRIPT: `-l` also gives USER's
//! login environment (`$HOME`, `$USER`, `$PATH`), and `runuser -l root` is a
//! harmless switch when root is wanted.

use std::borrow::Cow;

/// The user commands run as when the caller names none.
pub(crate) const DEFAULT_USER: &str = "node";

/// `runuser -l [-w NAME,...] --session-command -- -- USER SCRIPT` as
/// separate arguments.
///
/// runuser hands its command to the login shell right after the shell's
/// own `-c`, where bash and dash still parse options: a script such as `-x`
/// or `--help` would be taken for one. So runuser's command is `--`, which
/// ends the shell's options, and SCRIPT reaches the shell as runuser's
/// extra argument, unchanged, after a second `--` that ends runuser's own
/// options. USER has been validated as well, so it cannot be an option
/// either. A login shell starts from a clean environment, so the variables
/// smolvm sets for runuser (`-e`, `--secret-env`) survive only when named
/// in `-w` (`--whitelist-environment`).
///
/// `--session-command` is `-c` without runuser's `setsid`: with `-c` the
/// login shell starts a session of its own, out of reach of whoever stops
/// the command by its process group (smolvm's agent on a timeout, the
/// [`tied_to_call`] guard, a terminal's hangup), and goes on running as an
/// orphan after runuser is killed.
pub(crate) fn runuser_command(user: &str, keep_env: &[&str], script: &str) -> Vec<String> {
    let mut argv: Vec<String> = vec!["runuser".into(), "-l".into()];
    if !keep_env.is_empty() {
        argv.push("-w".into());
        argv.push(keep_env.join(","));
    }
    argv.extend(["--session-command", "--", "--", user, script].map(str::to_owned));
    argv
}

/// The guard: a root `/bin/sh` script that runs its arguments as a command
/// in a new session and stops that whole session if the guard itself dies
/// before the command has finished.
///
/// smolvm's agent stops a command it runs with `-i` (on a timeout, or when
/// the smolvm client goes away) by killing that one process; everything
/// the command started lives on in the guest. Here the process the agent
/// kills is this shell. A watcher in a session of its own holds the read
/// end of a fifo; its writers are this shell and, until it has written its
/// process group there, the command. When this shell exits normally it
/// writes `done` first, and the watcher leaves everything alone, so a
/// daemon the script started on purpose stays, as it would in any VM. When
/// this shell is killed, the watcher reads end-of-file instead and kills
/// the command's process group, which runuser's `--session-command` keeps
/// the login shell and all its children in. The command writes its own
/// process group before it lets go of the fifo, so the watcher cannot see
/// end-of-file without knowing what to kill. This shell waits for the
/// watcher as well: smolvm's agent, the guest's pid 1, reaps nothing it
/// did not start, and an orphaned watcher would stay a zombie.
///
/// The command runs in the foreground, so that it gets this shell's stdin
/// and signals as they are (a background job starts with SIGINT and
/// SIGQUIT ignored). Its first argument says what stdin is: `-` for none,
/// `+` for bytes that are first kept whole in an unlinked file. smolvm's
/// agent writes stdin to the command with a blocking write on the thread
/// that also forwards output and notices a vanished client, so a command
/// that reads less stdin than it is given while writing more than a pipe
/// holds would stall the agent, and with it the call's stop.
///
/// The fifo is opened read-write here first, so no open blocks on the
/// other side, and the watcher unlinks it once it holds it. Its name is
/// tried without a `mktemp` first: `mkfifo` refuses an existing name and
/// follows no symlink, so a name planted by a guest user costs only the
/// fallback. dash's `kill` takes a process group only as `-9 -PGID`.
const GUARD: &str = r#"case $1 in
+) i=$(mktemp 2>/dev/null || mktemp -p /dev/shm) && cat >"$i" && exec 0<"$i" && rm -f "$i" || {
     echo "libbottle: cannot keep the script's stdin in a file" >&2; exit 125; } ;;
*) exec 0</dev/null ;;
esac
shift
f=
for d in "${TMPDIR:-/tmp}" /dev/shm; do
  mkfifo -m 600 "$d/.bottle-guard-$$" 2>/dev/null && { f=$d/.bottle-guard-$$; break; }
done
[ -n "$f" ] || { f=$(mktemp -u) && mkfifo -m 600 "$f"; } || {
  echo "libbottle: cannot make the fifo that ties the command to its call" >&2; exit 125; }
exec 9<>"$f" 8<"$f"
setsid /bin/sh -c 'rm -f "$1"; read -r g; read -r s; [ "$s" = done ] || kill -9 "-$g"' sh "$f" \
  <&8 >/dev/null 2>&1 8<&- 9>&- &
w=$!
exec 8<&-
setsid /bin/sh -c 'echo $$ >&9; exec 9>&- "$@"' sh "$@"
s=$?
echo done >&9
exec 9>&-
wait "$w"
exit "$s""#;

/// `command`, run by [`GUARD`]: when the call that started it is stopped,
/// by a timeout, a cancel or the death of smolvm, the command and
/// everything it started stop too. With `stdin`, the command reads what
/// smolvm passes on; without, it reads nothing.
pub(crate) fn tied_to_call(command: Vec<String>, stdin: bool) -> Vec<String> {
    let mode = if stdin { "+" } else { "-" };
    let mut argv: Vec<String> = ["/bin/sh", "-c", GUARD, "sh", mode]
        .map(str::to_owned)
        .to_vec();
    argv.extend(command);
    argv
}

/// `script` with variables exported first. Each variable reaches the guest
/// under a neutral carrier name (`BOTTLE_ENV_0`, ...) and is renamed here,
/// in the user's own shell: a caller's `PATH` or `LD_PRELOAD` must never
/// reach `runuser`, which runs as root until it switches user. The names
/// are validated identifiers and the values are only expanded, never
/// parsed, so nothing here can become code. Same line, so the script's line
/// numbers stay its own.
pub(crate) fn with_exports(exports: &[(&str, &str)], script: &str) -> String {
    if exports.is_empty() {
        return script.to_owned();
    }
    let mut prefix = String::from("export");
    for (name, carrier) in exports {
        prefix.push_str(&format!(" {name}=\"${carrier}\""));
    }
    prefix.push_str("; unset");
    for (_, carrier) in exports {
        prefix.push(' ');
        prefix.push_str(carrier);
    }
    format!("{prefix}; {script}")
}

/// `script` run in `dir`. A login shell always starts in the user's home
/// (smolvm's own `-w` is undone by it), so the script changes directory
/// itself; on the same line, so the script's line numbers stay its own.
pub(crate) fn in_workdir(dir: &str, script: &str) -> String {
    format!(
        "cd -- {} || exit 1; {script}",
        shell_escape::unix::escape(Cow::Borrowed(dir))
    )
}

/// The login-shell script that starts claude with exactly `args`:
/// `exec claude [--append-system-prompt-file PROMPT] ARG...`. Every piece is
/// single-quoted for the shell, so each element arrives as one argument,
/// byte for byte, whatever it contains. `exec` replaces the shell, so
/// claude's exit status is the command's. Its size is checked where it is
/// sent, with the variables exported before it.
pub(crate) fn claude_script(prompt_path: Option<&str>, args: &[&str]) -> String {
    let mut script = String::from("exec claude");
    let prompt = prompt_path.map(|p| ["--append-system-prompt-file", p]);
    for arg in prompt.iter().flatten().chain(args) {
        script.push(' ');
        script.push_str(&shell_escape::unix::escape(Cow::Borrowed(arg)));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runuser_keeps_the_script_as_one_argument() {
        let argv = runuser_command("node", &[], "echo 'a b'; exit 3");
        assert_eq!(
            argv,
            [
                "runuser",
                "-l",
                "--session-command",
                "--",
                "--",
                "node",
                "echo 'a b'; exit 3"
            ]
        );
        let argv = runuser_command("root", &["A", "B_2"], "env");
        assert_eq!(
            argv,
            [
                "runuser",
                "-l",
                "-w",
                "A,B_2",
                "--session-command",
                "--",
                "--",
                "root",
                "env"
            ]
        );
    }

    /// Runs `script` under the guard with `sh -c`, as the guest would, with
    /// stdin passed on.
    fn guarded(script: &str) -> std::process::Command {
        let argv = tied_to_call(vec!["sh".into(), "-c".into(), script.into()], true);
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    fn alive(pid: i32) -> bool {
        // A zombie has finished: only a process still running counts.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
    }

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < until, "gave up waiting: {what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn the_guard_passes_stdin_output_and_status_through() {
        use std::io::Write;
        let mut child = guarded("cat; echo err >&2; exit 7")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"in\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(out.stdout, b"in\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn killing_the_guard_stops_everything_the_command_started() {
        let dir = std::env::temp_dir().join(format!("bottle-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pids = dir.join("pids");
        let script = format!(
            "sleep 60 & echo $! > {p}.tmp; echo $$ >> {p}.tmp; mv {p}.tmp {p}; wait",
            p = pids.display()
        );
        let mut guard = guarded(&script).spawn().unwrap();
        wait_until("the command to start", || pids.exists());
        let started: Vec<i32> = std::fs::read_to_string(&pids)
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(started.len(), 2);
        assert!(started.iter().all(|&p| alive(p)));
        guard.kill().unwrap();
        guard.wait().unwrap();
        wait_until("the command and its child to be killed", || {
            started.iter().all(|&p| !alive(p))
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_command_gets_sigint_and_sigquit_at_their_defaults() {
        // A background job of a shell starts with them ignored.
        let out = guarded("exec grep '^SigIgn:' /proc/self/status")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let ignored = u64::from_str_radix(text.trim().trim_start_matches("SigIgn:\t"), 16)
            .unwrap_or_else(|_| panic!("no SigIgn line: {text:?}"));
        let int_and_quit = (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGQUIT - 1));
        assert_eq!(ignored & int_and_quit, 0, "{text}");
    }

    #[test]
    fn without_stdin_the_command_reads_nothing() {
        use std::io::Write;
        let argv = tied_to_call(
            vec!["sh".into(), "-c".into(), "cat; echo end".into()],
            false,
        );
        let mut child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Never closed until the guard is done: the command must not wait.
        // (A guard already gone makes the write fail: that is fine too.)
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"ignored\n");
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        assert_eq!(out.stdout, b"end\n");
    }

    #[test]
    fn stdin_larger_than_a_pipe_is_taken_whole_before_the_command_runs() {
        use std::io::Write;
        // The command writes more than a pipe holds before reading: with
        // stdin handed over as a pipe, whoever writes it would block.
        let mut child = guarded("head -c 200000 /dev/zero; wc -c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&[b'x'; 300_000]));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(out.stdout.len(), 200_000 + "300000\n".len());
        assert!(out.stdout.ends_with(b"300000\n"));
    }

    #[test]
    fn a_guard_killed_while_starting_leaves_nothing_running() {
        // Killed at every moment of its start: whatever it started is
        // killed too, never left running.
        for attempt in 0..40u64 {
            let marker = format!("sleep 61{:02}", attempt % 100);
            let mut guard = guarded(&format!("exec {marker}"))
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_micros(attempt * 100));
            guard.kill().unwrap();
            guard.wait().unwrap();
            wait_until("the command to be killed", || !running_with(&marker));
        }
    }

    /// Whether a running process has exactly `cmdline` (arguments joined
    /// by spaces).
    fn running_with(cmdline: &str) -> bool {
        std::fs::read_dir("/proc").unwrap().flatten().any(|d| {
            let Ok(pid) = d.file_name().to_string_lossy().parse::<i32>() else {
                return false;
            };
            let args = std::fs::read(d.path().join("cmdline")).unwrap_or_default();
            let args = String::from_utf8_lossy(&args).replace('\0', " ");
            args.trim_end() == cmdline && alive(pid)
        })
    }

    #[test]
    fn a_command_that_finishes_keeps_what_it_left_running() {
        let out = guarded("sleep 60 >/dev/null 2>&1 & echo $!")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let pid: i32 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The watcher has had its `done`; give it time to misbehave.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            alive(pid),
            "a background process of a finished command was killed"
        );
        let pid = rustix::process::Pid::from_raw(pid).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    }

    #[test]
    fn exports_rename_carriers_in_the_users_shell() {
        assert_eq!(with_exports(&[], "env"), "env");
        assert_eq!(
            with_exports(
                &[("PATH", "BOTTLE_ENV_0"), ("TOKEN", "BOTTLE_SECRET_0")],
                "env"
            ),
            r#"export PATH="$BOTTLE_ENV_0" TOKEN="$BOTTLE_SECRET_0"; unset BOTTLE_ENV_0 BOTTLE_SECRET_0; env"#
        );
    }

    #[test]
    fn workdir_is_quoted_and_keeps_line_numbers() {
        assert_eq!(
            in_workdir("/w/it's here", "echo $LINENO"),
            r#"cd -- '/w/it'\''s here' || exit 1; echo $LINENO"#
        );
    }

    #[test]
    fn claude_script_quotes_every_argument() {
        let s = claude_script(Some("/p/prompt file.md"), &["-p", "it's $HOME", ""]);
        assert_eq!(
            s,
            r#"exec claude --append-system-prompt-file '/p/prompt file.md' -p 'it'\''s $HOME' ''"#
        );
        assert_eq!(claude_script(None, &[]), "exec claude");
    }
}
