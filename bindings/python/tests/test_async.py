"""AsyncBottle: coroutines that leave the event loop running, cancellation
that stops smolvm, launch as an async context manager."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import bottle

from .conftest import endpoint, machine_status, processes_with, unique_name
from .test_threads import RENDEZVOUS


def run(coroutine):
    return asyncio.run(coroutine)


def test_exec_does_not_block_the_loop(machine):
    async def main() -> tuple[bottle.ExecResult, int]:
        ticks = 0
        stop = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            r = await b.exec("sleep 0.5; echo done")
        stop.set()
        await ticker
        return r, ticks

    r, ticks = run(main())
    assert r == (0, b"done\n", b"")
    assert ticks > 10


def test_execs_run_concurrently(machine):
    async def main() -> tuple[bottle.ExecResult, bottle.ExecResult]:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            await b.exec("mkdir -p /tmp/rv && chmod 777 /tmp/rv")
            return await asyncio.gather(
                b.exec(RENDEZVOUS.format(me="a", other="b")),
                b.exec(RENDEZVOUS.format(me="b", other="a")),
            )

    assert [r.returncode for r in run(main())] == [0, 0]


def test_cancelling_the_task_stops_smolvm(machine):
    async def main() -> float:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            started = asyncio.Event()
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(
                b.exec(
                    "echo started; sleep 30",
                    on_stdout=lambda _: loop.call_soon_threadsafe(started.set),
                )
            )
            await started.wait()
            began = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - began

    assert run(main()) < 10
    assert not processes_with(machine)


def test_wait_for_times_out_and_stops_smolvm(machine):
    async def main() -> None:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(b.exec("sleep 30"), 0.3)

    run(main())
    assert not processes_with(machine)


def test_a_timed_out_call_leaves_the_shared_token_alone(machine):
    # Two calls share the caller's token; wait_for cancels one of them.
    # That must stop only that call: the other finishes, and the token
    # still serves new calls.
    async def main(shared: bottle.Cancel) -> tuple[bottle.ExecResult, ...]:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:

            async def timed_out() -> None:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(b.exec("sleep 30", cancel=shared), 0.3)

            _, survivor = await asyncio.gather(
                timed_out(), b.exec("sleep 2; echo survived", cancel=shared)
            )
            return survivor, await b.exec("echo later", cancel=shared)

    shared = bottle.Cancel()
    survivor, later = run(main(shared))
    assert survivor == (0, b"survived\n", b"")
    assert later == (0, b"later\n", b"")
    assert not shared.tripped
    assert not processes_with(machine)


def test_tripping_the_shared_token_stops_an_async_call(machine):
    async def main(shared: bottle.Cancel) -> None:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            loop = asyncio.get_running_loop()
            call = asyncio.create_task(
                b.exec(
                    "echo started; sleep 30",
                    on_stdout=lambda _: loop.call_soon_threadsafe(shared.trip),
                    cancel=shared,
                    timeout=20,
                )
            )
            with pytest.raises(bottle.Cancelled):
                await call

    run(main(bottle.Cancel()))
    assert not processes_with(machine)


def test_library_errors_and_timeouts_raise(machine):
    async def main() -> None:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            with pytest.raises(bottle.Timeout):
                await b.exec("sleep 30", timeout=0.2)
            with pytest.raises(bottle.InvalidArgument):
                await b.exec("true", user="")

    run(main())


def test_copies_and_claude(machine, tmp_path: Path):
    (tmp_path / "in").write_bytes(b"async copy\n")

    async def main() -> int:
        async with bottle.AsyncBottle(machine, endpoint=endpoint()) as b:
            progress: list[bottle.Progress] = []
            await b.cp_in(tmp_path / "in", "/tmp/in", mode=0o640, progress=progress.append)
            assert progress[-1] == bottle.Progress(1, 1, 11, 11)
            await b.cp_out("/tmp/in", tmp_path / "out")
            return await b.exec_claude(["-p", "x"], tty=False)

    assert run(main()) == 0
    assert (tmp_path / "out").read_bytes() == b"async copy\n"


def test_launch_as_async_context_manager_tears_down_on_exception():
    name = unique_name("alaunch")

    async def main() -> None:
        async with bottle.AsyncBottle.launch(name=name, endpoint=endpoint()) as b:
            assert b.name == name
            assert (await b.exec("echo up")).stdout == b"up\n"
            raise KeyError("inside")

    with pytest.raises(KeyError):
        run(main())
    assert machine_status(name) is None


def test_awaited_launch_and_areap():
    async def main() -> tuple[str, list[str]]:
        ep = endpoint()
        b = await bottle.AsyncBottle.launch(endpoint=ep)
        try:
            return b.name, await (bottle.areap() if ep is None else bottle.areap_at(ep))
        finally:
            await b.close()

    name, reaped = run(main())
    assert name not in reaped
    assert machine_status(name) is None
