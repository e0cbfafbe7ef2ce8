"""Every blocking call stops the same way: at its timeout, when its Cancel
is tripped from another thread, on Ctrl-C on the main thread, and (async)
when its task is cancelled; each time with smolvm stopped and reaped.

A fake smolvm makes a call slow on purpose: a shell script whose one
subcommand hangs in ``sleep MARKER`` (the number unique to the test, so
that the processes it leaves, if any, can be told from everyone else's),
while the others succeed at once. The library finds smolvm through
``BOTTLE_SMOLVM`` when a bottle is opened and when ``launch`` and ``reap``
run, so the variable stays set for the whole test.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bottle

from .conftest import processes_with, sh

_markers = itertools.count()


@dataclass
class Slow:
    """A bottle whose smolvm hangs in one subcommand."""

    b: bottle.Bottle
    marker: str
    tmp: Path

    def running(self) -> bool:
        return bool(processes_with(self.marker))

    def wait_running(self) -> None:
        deadline = time.monotonic() + 20
        while not self.running():
            assert time.monotonic() < deadline, f"sleep {self.marker} never started"
            time.sleep(0.01)

    def assert_none_left(self) -> None:
        # smolvm itself is reaped before the call returns; its background
        # child, killed with its process group, may take a moment to go.
        deadline = time.monotonic() + 5
        while self.running():
            assert time.monotonic() < deadline, processes_with(self.marker)
            time.sleep(0.01)


# What each call needs: the smolvm subcommand it hangs in, and the call,
# given the bottle, a scratch directory and the timeout/cancel keywords.
Call = Callable[[bottle.Bottle, Path, dict[str, Any]], object]


def _launch_and_close(_b: bottle.Bottle, _tmp: Path, kw: dict[str, Any]) -> None:
    launched = bottle.launch()  # create and start succeed; stop hangs
    launched.close(**kw)


CALLS: dict[str, tuple[str, Call]] = {
    "exec": ("exec", lambda b, _t, kw: b.exec("true", **kw)),
    "exec_claude": ("exec", lambda b, _t, kw: b.exec_claude(["-p", "hi"], tty=False, **kw)),
    "cp_in": ("cp", lambda b, t, kw: b.cp_in(t / "in", "/tmp/in", **kw)),
    "cp_out": ("cp", lambda b, t, kw: b.cp_out("/tmp/in", t / "out", **kw)),
    "launch": ("create", lambda _b, _t, kw: bottle.launch(**kw)),
    "close": ("stop", _launch_and_close),
    "reap": ("ls", lambda _b, _t, kw: bottle.reap(**kw)),
}


async def _async_launch_and_close(_b: bottle.AsyncBottle, kw: dict[str, Any]) -> None:
    launched = await bottle.AsyncBottle.launch()
    await launched.close(**kw)


ASYNC_CALLS: dict[str, Callable[[bottle.AsyncBottle, Path, dict[str, Any]], Any]] = {
    "exec": lambda b, _t, kw: b.exec("true", **kw),
    "exec_claude": lambda b, _t, kw: b.exec_claude(["-p", "hi"], tty=False, **kw),
    "cp_in": lambda b, t, kw: b.cp_in(t / "in", "/tmp/in", **kw),
    "cp_out": lambda b, t, kw: b.cp_out("/tmp/in", t / "out", **kw),
    "launch": lambda _b, _t, kw: bottle.AsyncBottle.launch(**kw),
    "close": lambda b, _t, kw: _async_launch_and_close(b, kw),
    "reap": lambda _b, _t, kw: bottle.areap(**kw),
}


@pytest.fixture
def slow(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Slow]:
    """A Slow for the call named by the test's ``call`` parameter."""
    subcommand = CALLS[request.node.callspec.params["call"]][0]
    marker = f"{900_000 + os.getpid() % 100_000}{next(_markers):03d}"
    smolvm = tmp_path / "smolvm"
    smolvm.write_text(
        "#!/bin/sh\n"
        # smolvm is run as `smolvm machine SUBCOMMAND ...`. The background
        # sleep holds smolvm's output open, as a guest child would: the
        # call must stop the whole process group, not only smolvm.
        f'if [ "$2" = {subcommand} ]; then sleep {marker} & exec sleep {marker}; fi\n'
        '[ "$2" = ls ] && echo "[]"\n'
        '[ "$2" = status ] && echo \'{"state": "running"}\'\n'
        "exit 0\n"
    )
    smolvm.chmod(0o755)
    (tmp_path / "in").write_bytes(b"in\n")
    monkeypatch.setenv("BOTTLE_SMOLVM", str(smolvm))
    with bottle.Bottle("m") as b:
        yield Slow(b, marker, tmp_path)
    assert not (tmp_path / "out").exists(), "a stopped cp_out left a host file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "smolvm"], (
        "a stopped call left a file behind"
    )


# Each test also bounds its call by the other means (a timeout when it
# tests the cancel token, a token tripped late when it tests the timeout),
# so a stop that does not work fails the test instead of hanging it.
BACKSTOP = 10.0


@contextmanager
def backstop_token() -> Iterator[bottle.Cancel]:
    token = bottle.Cancel()
    timer = threading.Timer(BACKSTOP, token.trip)
    timer.start()
    try:
        yield token
    finally:
        timer.cancel()


@pytest.mark.parametrize("call", CALLS)
def test_timeout_stops_the_call(slow: Slow, call: str) -> None:
    started = time.monotonic()
    with backstop_token() as backstop, pytest.raises(bottle.Timeout) as caught:
        CALLS[call][1](slow.b, slow.tmp, {"timeout": 0.1, "cancel": backstop})
    assert time.monotonic() - started < BACKSTOP
    assert caught.value.op == call
    assert "100 ms" in caught.value.message
    slow.assert_none_left()


@pytest.mark.parametrize("call", CALLS)
def test_cancel_from_another_thread_stops_the_call(slow: Slow, call: str) -> None:
    cancel = bottle.Cancel()

    def trip_once_running() -> None:
        slow.wait_running()
        cancel.trip()

    tripper = threading.Thread(target=trip_once_running)
    tripper.start()
    try:
        with pytest.raises(bottle.Cancelled) as caught:
            CALLS[call][1](slow.b, slow.tmp, {"cancel": cancel, "timeout": BACKSTOP})
    finally:
        tripper.join()
    assert caught.value.op == call
    slow.assert_none_left()
    # A tripped token stops a new call before smolvm runs.
    with pytest.raises(bottle.Cancelled):
        CALLS[call][1](slow.b, slow.tmp, {"cancel": cancel, "timeout": BACKSTOP})
    assert not slow.running()


@pytest.mark.parametrize("call", CALLS)
def test_ctrl_c_stops_smolvm_and_raises_keyboard_interrupt(slow: Slow, call: str) -> None:
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupt_once_running() -> None:
        slow.wait_running()
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_running)
    interrupter.start()
    started = time.monotonic()
    try:
        # Python runs the SIGINT handler only between bytecodes: were the C
        # call not interruptible, KeyboardInterrupt would come only when the
        # backstop timeout ended it.
        with pytest.raises(KeyboardInterrupt):
            CALLS[call][1](slow.b, slow.tmp, {"timeout": BACKSTOP})
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < BACKSTOP / 2
    slow.assert_none_left()


@pytest.mark.parametrize("call", CALLS)
def test_async_timeout_and_task_cancellation(slow: Slow, call: str) -> None:
    async def main() -> None:
        b = bottle.AsyncBottle("m")  # BOTTLE_SMOLVM still names the fake
        with backstop_token() as backstop, pytest.raises(bottle.Timeout):
            await ASYNC_CALLS[call](b, slow.tmp, {"timeout": 0.1, "cancel": backstop})
        slow.assert_none_left()

        task = asyncio.ensure_future(ASYNC_CALLS[call](b, slow.tmp, {"timeout": BACKSTOP}))
        await asyncio.get_running_loop().run_in_executor(None, slow.wait_running)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await b.close()

    asyncio.run(main())
    slow.assert_none_left()


@pytest.mark.parametrize("call", CALLS)
def test_task_cancellation_leaves_the_callers_token_alone(slow: Slow, call: str) -> None:
    # The token may be shared by other calls: cancelling one task stops
    # that task's call alone, with a token of the call's own.
    shared = bottle.Cancel()

    async def main() -> None:
        b = bottle.AsyncBottle("m")
        task = asyncio.ensure_future(
            ASYNC_CALLS[call](b, slow.tmp, {"cancel": shared, "timeout": BACKSTOP})
        )
        await asyncio.get_running_loop().run_in_executor(None, slow.wait_running)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await b.close()

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < BACKSTOP
    assert not shared.tripped
    slow.assert_none_left()


@pytest.mark.parametrize("call", CALLS)
def test_tripping_the_callers_token_stops_an_async_call(slow: Slow, call: str) -> None:
    shared = bottle.Cancel()

    async def main() -> None:
        b = bottle.AsyncBottle("m")
        task = asyncio.ensure_future(
            ASYNC_CALLS[call](b, slow.tmp, {"cancel": shared, "timeout": BACKSTOP})
        )
        await asyncio.get_running_loop().run_in_executor(None, slow.wait_running)
        shared.trip()
        with pytest.raises(bottle.Cancelled):
            await task
        await b.close()

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < BACKSTOP
    slow.assert_none_left()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "1"])
def test_timeout_must_be_a_positive_number(timeout: object) -> None:
    with pytest.raises(bottle.InvalidArgument, match="timeout"):
        bottle.reap(timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(bottle.InvalidArgument, match="timeout"):
        bottle.launch(timeout=timeout)  # type: ignore[arg-type]


def _tree(root: Path, files: int) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(files):
        (root / ("sub" if i % 2 else "") / f"f{i}").write_bytes(b"x" * (i + 1))
    return root


def test_progress_that_raises_stops_a_directory_copy_part_way(b, tmp_path):
    tree = _tree(tmp_path / "tree", 6)
    seen: list[bottle.Progress] = []

    def two_then_fail(p: bottle.Progress) -> None:
        seen.append(p)
        if p.files_done == 2:
            raise RuntimeError("enough")

    # The caller's token is shared with other work: the copy stops itself
    # with a token of its own and leaves this one alone.
    shared = bottle.Cancel()
    with pytest.raises(RuntimeError, match="enough") as caught:
        b.cp_in(tree, "/tmp/tree", progress=two_then_fail, cancel=shared)
    assert isinstance(caught.value.__context__, bottle.Cancelled)
    assert [p.files_done for p in seen] == [0, 1, 2]
    assert sh(b, "find /tmp/tree -type f | wc -l").strip() == "2"
    assert not shared.tripped
    assert sh(b, "echo still usable", cancel=shared) == "still usable\n"


def test_tripping_the_callers_token_stops_a_copy_started_with_it(b, tmp_path):
    tree = _tree(tmp_path / "tree", 4)
    shared = bottle.Cancel()

    def trip_after_first(p: bottle.Progress) -> None:
        if p.files_done == 1:
            shared.trip()

    with pytest.raises(bottle.Cancelled):
        b.cp_in(tree, "/tmp/tree", progress=trip_after_first, cancel=shared)
    assert sh(b, "find /tmp/tree -type f | wc -l").strip() == "1"


# On the main thread a call runs on a helper thread while this one waits
# interruptibly (_main_thread_interruptible). Where exactly a Ctrl-C lands
# cannot be timed from outside, so these tests raise KeyboardInterrupt from
# a patched Thread.start() at the two moments that matter: after the
# helper has begun the call, and before it has.
interruptible = bottle._bottle._main_thread_interruptible


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + BACKSTOP
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_ctrl_c_during_thread_start_still_stops_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cancel = bottle.Cancel()
    began = threading.Event()
    ended: list[str] = []

    def call() -> None:
        began.set()
        ended.append("stopped" if _wait_for(lambda: cancel.tripped) else "never stopped")

    real_start = threading.Thread.start

    def start_then_interrupt(self: threading.Thread) -> None:
        real_start(self)
        if self.name == "bottle-call":
            assert began.wait(BACKSTOP)
            raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        interruptible(call, cancel)
    # The interrupt tripped the token and waited for the call to end.
    assert ended == ["stopped"]


def test_ctrl_c_before_the_call_began_means_it_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cancel = bottle.Cancel()
    ran: list[str] = []
    helpers: list[threading.Thread] = []
    real_start = threading.Thread.start

    def interrupt_then_start_late(self: threading.Thread) -> None:
        if self.name != "bottle-call":
            real_start(self)
            return
        # The thread was created but runs only after the interrupt has
        # been handled, as when start() is interrupted just as it returns.
        helpers.append(self)
        threading.Timer(0.2, real_start, [self]).start()
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", interrupt_then_start_late)
    with pytest.raises(KeyboardInterrupt):
        interruptible(lambda: ran.append("ran"), cancel)
    assert _wait_for(lambda: helpers[0].ident is not None)
    helpers[0].join(BACKSTOP)
    assert not helpers[0].is_alive()
    assert ran == []
    # Nothing was running to stop: the caller's token is left alone.
    assert not cancel.tripped


def test_an_undo_that_raises_does_not_replace_keyboard_interrupt() -> None:
    assert threading.current_thread() is threading.main_thread()
    cancel = bottle.Cancel()
    began = threading.Event()

    def call() -> str:
        began.set()
        # Finishes all the same once stopped, as a launch may.
        _wait_for(lambda: cancel.tripped)
        return "launched"

    undone: list[str] = []

    def undo(value: str) -> None:
        undone.append(value)
        raise RuntimeError("teardown failed")

    def interrupt_once_running() -> None:
        began.wait(BACKSTOP)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupter = threading.Thread(target=interrupt_once_running)
    interrupter.start()
    try:
        with (
            pytest.warns(RuntimeWarning, match="RuntimeError: teardown failed"),
            pytest.raises(KeyboardInterrupt),
        ):
            interruptible(call, cancel, undo)
    finally:
        interrupter.join()
        signal.signal(signal.SIGINT, previous)
    assert undone == ["launched"]
    assert cancel.tripped
