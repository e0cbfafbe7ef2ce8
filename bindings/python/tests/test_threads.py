"""Calls release the GIL: threads run execs on one bottle at once, and
Python keeps running meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

import bottle

from .conftest import open_bottle, sh

# Each script marks itself started, then waits (at most 10 s) to see the
# other's mark: both can exit 0 only if both ran at the same time.
RENDEZVOUS = """
touch /tmp/rv/{me}
i=0
while [ ! -e /tmp/rv/{other} ]; do
    i=$((i + 1)); [ "$i" -gt 200 ] && exit 9
    sleep 0.05
done
sleep 1
"""


def test_two_threads_run_execs_in_parallel(b):
    sh(b, "mkdir -p /tmp/rv && chmod 777 /tmp/rv")
    results: dict[str, bottle.ExecResult] = {}

    def run(me: str, other: str) -> None:
        results[me] = b.exec(RENDEZVOUS.format(me=me, other=other))

    threads = [
        threading.Thread(target=run, args=("a", "b")),
        threading.Thread(target=run, args=("b", "a")),
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert results["a"].returncode == 0, "the execs did not run at the same time"
    assert results["b"].returncode == 0, "the execs did not run at the same time"
    print(f"two execs with `sleep 1` took {elapsed:.2f} s together")


def test_python_runs_while_an_exec_waits(b):
    ticks = 0
    done = threading.Event()

    def exec_in_thread() -> None:
        b.exec("sleep 0.5")
        done.set()

    threading.Thread(target=exec_in_thread).start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.01)
    assert ticks > 10


def test_close_waits_for_running_calls(machine):
    b = open_bottle(machine)
    started = threading.Event()
    result: list[bottle.ExecResult] = []

    def run() -> None:
        result.append(b.exec("echo go; sleep 0.5; echo done", on_stderr=lambda _: None))
        started.set()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.2)
    b.close()  # must not free the handle under the running exec
    worker.join()
    assert result[0].stdout == b"go\ndone\n"
    assert b.closed
    with pytest.raises(bottle.InvalidArgument, match="the bottle is closed"):
        b.exec("true")
