//! Commands run through `smolvm serve`: spooled in the guest, so that the
//! output arrives byte for byte, in any size, for as long as the command
//! runs, and the command can be stopped.
//!
//! serve's exec route answers only when its command has ended (at most
//! 300 s, with at most 11 MiB of each stream kept), its streaming route
//! loses bytes that are not UTF-8, and neither stops a command whose client
//! went away. So a command is started in the background of a first
//! request, in a session of its own, with stdin from a file and stdout and
//! stderr going to files in a root-only directory
//! `/tmp/.bottle-call-<random>`; each request then waits a while for the
//! command (never near serve's 300 s) and hands back what the files gained
//! since the last one, in the `*B64` fields that are byte-exact. The
//! request that sees the command's exit status and its last bytes removes
//! the directory (or, after more than one request, the caller does). A stop
//! (deadline, cancel token, a callback) kills the command's whole process
//! group in one more request.
//!
//! A command whose caller vanishes without stopping it is killed in the
//! guest once no request has asked after it for a minute (a watchdog
//! beside it); one still running after the first request leaves two
//! zombie process entries behind when it ends (its runner and watchdog),
//! because smolvm's agent, the guest's pid 1, reaps nothing it did not
//! start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cancel::{Bounds, Cancel};
use crate::capture::{Sink, Stream};
use crate::error::Error;
use crate::serve::{EnvVar, ExecReply, ExecRequest, Refused, Serve};

/// The longest a request waits in the guest for the command: well within
/// serve's 300 s route timeout, and often enough that the watchdog (one
/// minute without a request) never fires while the caller is there.
const ROUND: Duration = Duration::from_secs(20);

/// How long the first request waits when output is wanted as it comes.
const FIRST_STREAMING_ROUND: Duration = Duration::from_millis(50);

/// The most of each stream one answer carries: smolvm keeps at most
/// 11 MiB of each.
const CHUNK: usize = 4 << 20;

/// The largest piece of stdin uploaded at once: serve takes at most
/// 100 MiB per upload.
const STDIN_PART: usize = 64 << 20;

/// How long a stop may take: the kill request gets this much time of its
/// own once the call's deadline has passed.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// The end of every answer's stderr: `\n\0bottle:` and then `more`,
/// `exit:N`, `gone` (the spool is not there) or `lost` (the command is
/// gone without its status).
const TRAILER: &[u8] = b"\n\0bottle:";

/// Shared shell functions: `emit` prints what the files gained since
/// offsets `$o` and `$e` (at most `$m` bytes of each), then the trailer;
/// once the command's status is there and every byte handed over, it
/// removes the directory if `$1` is 1. (Only a request that surely
/// reaches the caller may: one whose answer serve dropped after its own
/// request timeout would take the output with it. The caller removes it
/// otherwise.)
const EMIT: &str = r#"emit() {
  s=; [ -e "$d/st" ] && s=$(cat "$d/st")
  so=$(wc -c <"$d/out") se=$(wc -c <"$d/err")
  tail -c +$((o+1)) "$d/out" | head -c "$m"
  tail -c +$((e+1)) "$d/err" | head -c "$m" >&2
  if [ -n "$s" ] && [ $((so-o)) -le "$m" ] && [ $((se-e)) -le "$m" ]; then
    [ "$1" = 1 ] && rm -rf "$d"; printf '\n\000bottle:exit:%s' "$s" >&2
  else printf '\n\000bottle:more' >&2; fi
}
"#;

/// The first request: `$1` the directory, `$2` the chunk size, `$3` and
/// `$4` how long to wait (`timeout` arguments, the first at most a second;
/// `0` for not at all), `$5` `+` when stdin was uploaded (the directory
/// exists then), `-` for none; the command follows. A directory with a
/// `stop` file in it means the call was stopped before this came: it is
/// removed, and nothing starts. The runner, in the
/// background, starts the command in a new session (whose id is its
/// process group, written to `pid`), waits for it, writes its status to
/// `st` and a byte to the fifo `done`, which this shell holds open, so
/// that the byte waits there for it. This shell waits for that byte (a
/// `read` under `timeout`) and emits, removing the directory if the
/// command ended within the first second: a request that short is not cut
/// off by serve's request timeout. If the command runs on, a watchdog is
/// left beside it that kills its process group once `lease` is a minute
/// old, and ends on its own once the status is there or the directory is
/// gone.
///
/// Nothing here signals a process by a pid it may have waited for
/// already: in a busy guest the number may belong to another process by
/// then.
const START: &str = r#"d=$1 m=$2 o=0 e=0
case $5 in
+) i=$d/in; if [ -e "$d/in.000000" ]; then cat "$d"/in.* >"$i" && rm -f "$d"/in.*; fi ;;
*) i=/dev/null; mkdir -m 700 "$d" 2>/dev/null || [ -e "$d/stop" ] || exit 125 ;;
esac
[ -e "$d/stop" ] && { rm -rf "$d"; exit 125; }
w1=$3 w2=$4
shift 5
: >"$d/lease" && : >"$d/out" && : >"$d/err" && mkfifo "$d/done" && exec 4<>"$d/done" || exit 125
(
  exec 4>&-
  setsid sh -c 'echo $$ >"$0/pid.t" && mv "$0/pid.t" "$0/pid" && [ ! -e "$0/stop" ] && exec "$@"; exit 137' "$d" "$@" <"$i" >"$d/out" 2>"$d/err" &
  wait $!; s=$?
  [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] || exit 0
  echo $s >"$d/st.t" && mv "$d/st.t" "$d/st"
  echo 1<>"$d/done"
  [ -e "$d/stop" ] && rm -rf "$d"
) </dev/null >/dev/null 2>&1 &
if [ "$w1" = 0 ] || ! timeout "$w1" sh -c 'read x' <&4; then
  : >"$d/slow"
  [ "$w2" = 0 ] || timeout "$w2" sh -c 'read x' <&4
fi
exec 4>&-
if [ ! -e "$d/st" ]; then
  (while sleep 5; do
    [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] && [ ! -e "$d/st" ] || exit 0
    if [ -n "$(find "$d/lease" -mmin +1 2>/dev/null)" ]; then
      [ -e "$d/st" ] || kill -9 -"$(cat "$d/pid")"; exit 0
    fi
  done) </dev/null >/dev/null 2>&1 &
fi
if [ -e "$d/slow" ]; then emit 0; else emit 1; fi
"#;

/// A later request: `$1` the directory, `$2` and `$3` the offsets already
/// handed over, `$4` the chunk size, `$5` how long to wait at most, in
/// milliseconds, `$6` `1` to return as soon as there is new output. Waits
/// for the status with growing pauses (up to 0.2 s), then emits. A
/// command whose process group is gone while no status came within half a
/// second of it is lost (its runner was killed with it).
const WAIT: &str = r#"d=$1 o=$2 e=$3 m=$4 w=$5
[ -d "$d" ] || { printf '\n\000bottle:gone' >&2; exit 0; }
: >"$d/lease"
n=0 p=2
while [ ! -e "$d/st" ] && [ $n -lt "$w" ]; do
  [ -d "$d" ] && [ ! -e "$d/stop" ] || { printf '\n\000bottle:gone' >&2; exit 0; }
  if [ -e "$d/pid" ] && ! kill -0 -"$(cat "$d/pid")" 2>/dev/null; then
    sleep 0.5; [ -e "$d/st" ] || { printf '\n\000bottle:lost' >&2; exit 0; }
  fi
  if [ "$6" = 1 ]; then
    [ "$(wc -c <"$d/out")" -gt "$o" ] || [ "$(wc -c <"$d/err")" -gt "$e" ] && break
  fi
  sleep "0.$(printf %03d $p)"
  n=$((n+p)); p=$((p*2)); [ $p -gt 200 ] && p=200
done
emit 0
"#;

/// Kills the command's process group and removes the directory. A
/// command not started yet is stopped by the `stop` file instead: it
/// writes its `pid` before it looks for `stop`, and this writes `stop`
/// before it looks for `pid`, so one of the two always sees the other
/// (the runner then removes the directory). The directory is made if it
/// is not there yet, so that a first request still on its way (serve may
/// run it after the caller gave up on it) finds `stop` and starts nothing.
const KILL: &str = r#"d=$1
mkdir -m 700 "$d" 2>/dev/null
[ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ] || exit 0
: >"$d/stop" || exit 0
if [ -e "$d/pid" ]; then
  [ -e "$d/st" ] || kill -9 -"$(cat "$d/pid")" 2>/dev/null
  n=0; while [ ! -e "$d/st" ] && [ $n -lt 100 ]; do sleep 0.01; n=$((n+1)); done
  rm -rf "$d"
fi
"#;

/// One command to run through serve.
pub(crate) struct Spooled<'a> {
    pub(crate) serve: &'a Serve,
    pub(crate) machine: &'a str,
    /// The guest command (`runuser ...`).
    pub(crate) argv: Vec<String>,
    /// (name, value) set for the command.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) stdin: Option<&'a [u8]>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) cancel: Option<&'a Cancel>,
}

/// How a spooled run ended.
pub(crate) struct Finished {
    pub(crate) exit_code: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// Why a run was stopped before its end.
#[derive(Debug)]
pub(crate) enum Stop {
    Deadline,
    Cancelled,
    Callback(Stream),
}

/// A run's failure: serve refused a request, or the run was stopped (and
/// its command killed), or something else went wrong.
pub(crate) enum Failure {
    Refused(Refused),
    Stopped(Stop),
    Error(Error),
}

/// A request's outcome as a [`Failure`]: a timeout is the deadline's.
pub(crate) fn outcome<T>(
    r: Result<std::result::Result<T, Refused>, Error>,
) -> std::result::Result<T, Failure> {
    match r {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(refused)) => Err(Failure::Refused(refused)),
        Err(Error::Timeout(_)) => Err(Failure::Stopped(Stop::Deadline)),
        Err(e) => Err(Failure::Error(e)),
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl Spooled<'_> {
    /// Runs the command to its end, handing its output to the sinks.
    pub(crate) fn run(
        &self,
        stdout: &mut Sink<'_>,
        stderr: &mut Sink<'_>,
    ) -> std::result::Result<Finished, Failure> {
        let dir = format!("/tmp/.bottle-call-{}", random_hex());
        let streaming = stdout.on_chunk.is_some() || stderr.on_chunk.is_some();
        let done = AtomicBool::new(false);
        let wake = Cancel::new().map_err(|e| Error::io("creating an eventfd", e))?;
        let result = std::thread::scope(|scope| {
            // A tripped token kills the command at once, from here, so that
            // the request waiting for it returns.
            if let Some(cancel) = self.cancel {
                let dir = &dir;
                let (done, wake) = (&done, &wake);
                scope.spawn(move || {
                    wait_either(cancel, wake);
                    if !done.load(Ordering::SeqCst) && cancel.is_tripped() {
                        self.kill(dir);
                    }
                });
            }
            /// Wakes the watcher however the rounds end, a panic included.
            struct Wake<'a>(&'a AtomicBool, &'a Cancel);
            impl Drop for Wake<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                    self.1.trip();
                }
            }
            let _wake = Wake(&done, &wake);
            self.rounds(&dir, streaming, stdout, stderr)
        });
        match result {
            Ok(finished) => Ok(finished),
            Err(Failure::Stopped(why)) => {
                if !matches!(why, Stop::Cancelled) {
                    self.kill(&dir);
                }
                Err(Failure::Stopped(why))
            }
            Err(other) => {
                self.kill(&dir);
                Err(other)
            }
        }
    }

    fn rounds(
        &self,
        dir: &str,
        streaming: bool,
        stdout: &mut Sink<'_>,
        stderr: &mut Sink<'_>,
    ) -> std::result::Result<Finished, Failure> {
        let has_stdin = match self.stdin {
            Some(data) => {
                self.upload_stdin(dir, data)?;
                true
            }
            None => false,
        };
        let mut out = Finished {
            exit_code: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        let (mut o, mut e) = (0u64, 0u64);
        let mut first = true;
        let mut round = ROUND;
        loop {
            self.check_stop()?;
            let wait = self.round_length(if first && streaming {
                FIRST_STREAMING_ROUND
            } else {
                round
            });
            let command: Vec<String> = if first {
                let head = wait.min(Duration::from_secs(1));
                let mut c = shell(
                    START,
                    &[
                        dir,
                        &CHUNK.to_string(),
                        &sleep_arg(head),
                        &sleep_arg(wait - head),
                    ],
                );
                c.push(if has_stdin { "+" } else { "-" }.into());
                c.extend(self.argv.iter().cloned());
                c
            } else {
                shell(
                    WAIT,
                    &[
                        dir,
                        &o.to_string(),
                        &e.to_string(),
                        &CHUNK.to_string(),
                        &wait.as_millis().to_string(),
                        if streaming { "1" } else { "0" },
                    ],
                )
            };
            let env = if first { &self.env[..] } else { &[] };
            let was_first = std::mem::replace(&mut first, false);
            let reply = match self.request(&command, env) {
                // Only the first request may be made again after serve
                // adopts the machine: later, the command is already running.
                Err(Failure::Refused(r)) if r.status == 404 && !was_first => {
                    return Err(Failure::Error(Error::Smolvm(format!(
                        "smolvm serve lost the machine while its command ran: {}",
                        r.describe()
                    ))))
                }
                // serve gave up on the request before the guest was done
                // waiting (a request timeout shorter than a round): the
                // command runs on; wait in shorter rounds.
                Err(Failure::Refused(r)) if r.status == 408 => {
                    round = (round / 2).max(Duration::from_secs(1));
                    continue;
                }
                other => other?,
            };
            if !reply.stderr.windows(TRAILER.len()).any(|w| w == TRAILER) {
                // The stop's kill may have kept the command from starting.
                self.check_stop()?;
            }
            let (err_chunk, state) = split_trailer(reply.stderr)
                .ok_or_else(|| Failure::Error(self.unexpected(reply.exit_code)))?;
            o += reply.stdout.len() as u64;
            e += err_chunk.len() as u64;
            deliver(stdout, Stream::Stdout, reply.stdout, &mut out.stdout)?;
            deliver(stderr, Stream::Stderr, err_chunk, &mut out.stderr)?;
            match state.as_slice() {
                b"more" => {}
                b"lost" => {
                    self.check_stop()?;
                    return Err(Failure::Error(Error::Smolvm(format!(
                        "the command ended in the guest without its exit status being \
                         recorded (was the machine restarted?); its spool is {dir}"
                    ))));
                }
                b"gone" => {
                    self.check_stop()?;
                    return Err(Failure::Error(Error::Smolvm(format!(
                        "the command's spool {dir} vanished from the guest before it ended"
                    ))));
                }
                status => {
                    let code = status
                        .strip_prefix(b"exit:")
                        .and_then(|s| std::str::from_utf8(s).ok())
                        .and_then(|s| s.trim().parse::<i32>().ok());
                    match code {
                        Some(code) => {
                            if !was_first {
                                self.remove(dir);
                            }
                            // The cancel's own kill may be what ended it.
                            self.check_stop()?;
                            out.exit_code = code;
                            return Ok(out);
                        }
                        None => return Err(Failure::Error(self.unexpected(reply.exit_code))),
                    }
                }
            }
        }
    }

    /// How long the next request may wait: `max`, or less if the deadline
    /// comes first.
    fn round_length(&self, max: Duration) -> Duration {
        match self.deadline {
            Some(d) => max.min(d.saturating_duration_since(Instant::now())),
            None => max,
        }
    }

    fn check_stop(&self) -> std::result::Result<(), Failure> {
        if self.cancel.is_some_and(Cancel::is_tripped) {
            return Err(Failure::Stopped(Stop::Cancelled));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Failure::Stopped(Stop::Deadline));
        }
        Ok(())
    }

    /// One request, given time beyond the call's deadline to come back on
    /// its own (its wait in the guest ends by then).
    fn request(
        &self,
        command: &[String],
        env: &[(String, String)],
    ) -> std::result::Result<ExecReply, Failure> {
        let req = ExecRequest {
            command,
            env: env
                .iter()
                .map(|(name, value)| EnvVar { name, value })
                .collect(),
            timeout_secs: None,
        };
        let bounds = Bounds {
            deadline: self.deadline.map(|d| d + STOP_GRACE),
            ..Bounds::default()
        };
        outcome(self.serve.exec(self.machine, &req, &bounds))
    }

    /// Uploads stdin into a new root-only directory, in parts if it is
    /// larger than one upload may be.
    fn upload_stdin(&self, dir: &str, data: &[u8]) -> std::result::Result<(), Failure> {
        let mkdir = ["mkdir", "-m", "700", "--", dir].map(str::to_owned);
        let made = self.request(&mkdir, &[])?;
        if made.exit_code != 0 {
            return Err(Failure::Error(Error::Smolvm(format!(
                "creating {dir} in the guest failed: {}",
                String::from_utf8_lossy(&made.stderr).trim()
            ))));
        }
        let bounds = Bounds {
            deadline: self.deadline,
            ..Bounds::default()
        };
        let parts: Vec<&[u8]> = if data.len() <= STDIN_PART {
            vec![data]
        } else {
            data.chunks(STDIN_PART).collect()
        };
        let single = parts.len() == 1;
        for (i, part) in parts.into_iter().enumerate() {
            self.check_stop()?;
            let path = if single {
                format!("{dir}/in")
            } else {
                format!("{dir}/in.{i:06}")
            };
            outcome(self.serve.upload(self.machine, &path, part, &bounds))?;
        }
        Ok(())
    }

    /// Kills the command and removes its directory, within
    /// [`STOP_GRACE`]; a failure leaves it to the guest's watchdog.
    fn kill(&self, dir: &str) {
        let req = ExecRequest {
            command: &shell(KILL, &[dir]),
            env: Vec::new(),
            timeout_secs: None,
        };
        let bounds = Bounds {
            deadline: Some(Instant::now() + STOP_GRACE),
            ..Bounds::default()
        };
        let _ = self.serve.exec(self.machine, &req, &bounds);
    }

    /// Removes the spool of a command that ended, within [`STOP_GRACE`];
    /// a failure leaves a directory of a few files behind.
    fn remove(&self, dir: &str) {
        let rm = ["rm", "-rf", "--", dir].map(str::to_owned);
        let req = ExecRequest {
            command: &rm,
            env: Vec::new(),
            timeout_secs: None,
        };
        let bounds = Bounds {
            deadline: Some(Instant::now() + STOP_GRACE),
            ..Bounds::default()
        };
        let _ = self.serve.exec(self.machine, &req, &bounds);
    }

    fn unexpected(&self, exit_code: i32) -> Error {
        Error::Smolvm(format!(
            "smolvm serve at {}: the library's guest script on '{}' failed (exit status \
             {exit_code}) without its report",
            self.serve.url(),
            self.machine
        ))
    }
}

/// `/bin/sh -c SCRIPT bottle-call ARGS...`, with the shared functions.
fn shell(script: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!("{EMIT}{script}"),
        "bottle-call".to_owned(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv
}

/// A duration as `sleep` takes it, in seconds with milliseconds.
fn sleep_arg(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".into()
    } else {
        format!("{}.{:03}", ms / 1000, ms % 1000)
    }
}

/// Splits an answer's stderr into the command's bytes and the state after
/// the trailer.
fn split_trailer(mut stderr: Vec<u8>) -> Option<(Vec<u8>, Vec<u8>)> {
    let at = stderr.windows(TRAILER.len()).rposition(|w| w == TRAILER)?;
    let state = stderr.split_off(at)[TRAILER.len()..].to_vec();
    Some((stderr, state))
}

/// Hands a chunk to its sink: to the callback, and kept if captured.
fn deliver(
    sink: &mut Sink<'_>,
    stream: Stream,
    chunk: Vec<u8>,
    kept: &mut Vec<u8>,
) -> std::result::Result<(), Failure> {
    if chunk.is_empty() {
        return Ok(());
    }
    if let Some(on_chunk) = sink.on_chunk.as_mut() {
        if !on_chunk(&chunk) {
            return Err(Failure::Stopped(Stop::Callback(stream)));
        }
    }
    if sink.capture {
        if kept.is_empty() {
            *kept = chunk;
        } else {
            kept.extend_from_slice(&chunk);
        }
    }
    Ok(())
}

/// Blocks until either token is tripped.
fn wait_either(a: &Cancel, b: &Cancel) {
    use rustix::event::{poll, PollFd, PollFlags};
    while !a.is_tripped() && !b.is_tripped() {
        let mut fds = [PollFd::new(a, PollFlags::IN), PollFd::new(b, PollFlags::IN)];
        let _ = poll(&mut fds, None);
    }
}

/// 128 random bits as hex: a name no one can guess.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // getrandom blocks only before the kernel's pool is seeded at boot.
    let _ = rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_is_the_last_one() {
        let mut err = b"a\n\0bottle:exit:3 fake".to_vec();
        err.extend_from_slice(b"\n\0bottle:more");
        let (chunk, state) = split_trailer(err).unwrap();
        assert_eq!(chunk, b"a\n\0bottle:exit:3 fake");
        assert_eq!(state, b"more");
        assert!(split_trailer(b"no trailer".to_vec()).is_none());
    }

    #[test]
    fn sleep_arguments_have_milliseconds() {
        assert_eq!(sleep_arg(Duration::ZERO), "0");
        assert_eq!(sleep_arg(Duration::from_millis(50)), "0.050");
        assert_eq!(sleep_arg(Duration::from_millis(20_001)), "20.001");
    }
}
