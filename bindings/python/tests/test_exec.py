"""exec: the result, every option, callbacks, timeout and cancel."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest

import bottle

from .conftest import processes_with, sh


def test_result_is_returncode_stdout_stderr_as_bytes(b):
    r = b.exec("echo hello from $(id -un); printf '\\001\\000\\377' >&2; exit 4")
    assert isinstance(r, bottle.ExecResult)
    assert r == (4, b"hello from node\n", b"\x01\x00\xff")
    assert (r.returncode, r.stdout, r.stderr) == (4, b"hello from node\n", b"\x01\x00\xff")
    assert isinstance(r.stdout, bytes)
    assert isinstance(r.stderr, bytes)


def test_nonzero_exit_and_signal_are_results(b):
    assert b.exec("exit 1").returncode == 1
    assert b.exec("kill -9 $$").returncode == 137


def test_script_is_passed_whole(b):
    script = "printf '%s|' \"$HOME\" '$HOME' \"it's\" -- -x; echo"
    assert sh(b, script) == "/home/node|$HOME|it's|--|-x|\n"


def test_user(b):
    assert sh(b, "id -un") == "node\n"
    assert sh(b, "id -un", user="root") == "root\n"
    assert b.exec("id -un", "root").stdout == b"root\n"


def test_env_and_secret_env(b):
    out = sh(
        b,
        'printf "%s|%s|%s" "$PLAIN" "$SECRET" "$EMPTY"',
        env={"PLAIN": "a b $c", "EMPTY": ""},
        secret_env={"SECRET": "s3cr3t-value"},
    )
    assert out == "a b $c|s3cr3t-value|"


def test_secret_env_is_on_no_command_line(b):
    secret = b"py-secret-on-no-argv-42"
    seen: list[list[str]] = []

    def look(_chunk):
        # While the script runs: smolvm, runuser and the shell are all up.
        with_secret = []
        for entry in Path("/proc").iterdir():
            try:
                if secret in (entry / "cmdline").read_bytes():
                    with_secret.append(entry.name)
            except OSError:
                pass
        seen.append(with_secret)

    r = b.exec(
        'echo "$SECRET" | wc -c; sleep 0.3', secret_env={"SECRET": secret.decode()}, on_stdout=look
    )
    assert r.returncode == 0
    assert seen == [[]], f"the secret is on a command line: {seen}"


def test_workdir(b):
    assert sh(b, "pwd", workdir="/tmp") == "/tmp\n"
    r = b.exec("pwd", workdir="/no/such/dir")
    assert r.returncode == 1
    assert r.stdout == b""


def test_stdin_bytes_and_str(b):
    data = bytes(range(256)) * 1000
    r = b.exec("cat", stdin=data)
    assert r.stdout == data
    assert sh(b, "cat", stdin="héllo\n") == "héllo\n"
    assert sh(b, "wc -c", stdin=memoryview(b"abc")).strip() == "3"


def test_streaming_callbacks_get_output_not_kept_in_result(b):
    out: list[bytes] = []
    err: list[bytes] = []
    r = b.exec(
        "echo one; echo two >&2; echo three",
        on_stdout=out.append,
        on_stderr=err.append,
    )
    assert r == (0, b"", b"")
    assert b"".join(out) == b"one\nthree\n"
    assert b"".join(err) == b"two\n"


def test_streaming_one_stream_keeps_the_other(b):
    err: list[bytes] = []
    r = b.exec("echo out; echo err >&2", on_stderr=err.append)
    assert r == (0, b"out\n", b"")
    assert err == [b"err\n"]


def test_callback_that_raises_stops_the_script_and_propagates(b, machine):
    class Stop(Exception):
        pass

    calls = 0

    def fail(_chunk):
        nonlocal calls
        calls += 1
        raise Stop("enough")

    started = time.monotonic()
    with pytest.raises(Stop, match="enough") as caught:
        b.exec("echo first; sleep 30; echo never", on_stdout=fail)
    assert time.monotonic() - started < 10
    assert calls == 1
    assert isinstance(caught.value.__context__, bottle.Cancelled)
    assert not processes_with(machine)


def test_timeout_raises_timeout(b, machine):
    started = time.monotonic()
    with pytest.raises(bottle.Timeout) as caught:
        b.exec("sleep 30", timeout=0.3)
    assert time.monotonic() - started < 10
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.status == 6
    assert "timed out" in str(caught.value)
    assert not processes_with(machine)
    assert sh(b, "echo fine", timeout=30) == "fine\n"


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_timeout_must_be_positive(b, timeout):
    with pytest.raises(bottle.InvalidArgument, match="timeout"):
        b.exec("true", timeout=timeout)


def test_cancel_from_another_thread(b, machine):
    cancel = bottle.Cancel()
    assert not cancel.tripped
    out: list[bytes] = []

    def trip_once_started(chunk):
        out.append(chunk)
        threading.Thread(target=cancel.trip).start()

    started = time.monotonic()
    with pytest.raises(bottle.Cancelled):
        b.exec("echo started; sleep 30", on_stdout=trip_once_started, cancel=cancel)
    assert time.monotonic() - started < 10
    assert cancel.tripped
    assert out == [b"started\n"]
    assert not processes_with(machine)
    with pytest.raises(bottle.Cancelled):
        b.exec("true", cancel=cancel)


def test_cancel_from_a_signal_handler_on_the_main_thread(b, machine):
    assert threading.current_thread() is threading.main_thread()
    cancel = bottle.Cancel()
    previous = signal.signal(signal.SIGALRM, lambda *_: cancel.trip())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(bottle.Cancelled):
            b.exec("sleep 30", cancel=cancel)
        assert time.monotonic() - started < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not processes_with(machine)


def test_an_exception_from_a_signal_handler_stops_the_script(b, machine):
    class Interrupted(Exception):
        pass

    def interrupt(*_):
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            b.exec("sleep 30")
        assert time.monotonic() - started < 10
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not processes_with(machine)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"script": "echo a\0b"}, "script: contains a NUL byte at offset 6"),
        ({"script": "true", "user": "-root"}, "user:"),
        ({"script": "true", "env": {"1BAD": "x"}}, "name:"),
        ({"script": "true", "env": {"A": "x\0"}}, "value: contains a NUL byte"),
        ({"script": "true", "secret_env": {"A-B": "x"}}, "name:"),
        ({"script": "true", "workdir": "relative"}, "dir:"),
        ({"script": "\udcff"}, "script: not valid UTF-8"),
    ],
)
def test_bad_arguments_are_invalid_argument(b, kwargs, needle):
    with pytest.raises(bottle.InvalidArgument, match=needle.replace("$", r"\$")) as caught:
        b.exec(**kwargs)
    assert isinstance(caught.value, ValueError)
    assert caught.value.status == 1
