"""The asyncio API: AsyncBottle, whose calls run on threads of their own and
never block the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from ._bottle import (
    Bottle,
    Cancel,
    Endpoint,
    ExecResult,
    Owner,
    Progress,
    StrPath,
    Volume,
    _call_token,
    launch,
    reap,
    reap_at,
)

T = TypeVar("T")


async def _in_thread(
    call: Callable[[], T],
    on_cancel: Callable[[], object] | None = None,
    undo: Callable[[T], object] | None = None,
) -> T:
    """Awaits ``call()`` run on a new thread (not the loop's default
    executor, whose few workers would cap how many execs run at once).

    If the awaiting task is cancelled, ``on_cancel`` runs (``_with_token``
    trips the call's own token), the task still waits for the call to end,
    so nothing it started outlives it, then ``undo`` is applied to a result
    that arrived anyway (a launched machine is torn down), and
    CancelledError goes on.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not done.done():
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)

    def work() -> None:
        outcome: tuple[bool, Any]
        try:
            outcome = (True, call())
        except BaseException as e:
            outcome = (False, e)
        # A closed loop raises RuntimeError: nobody waits any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name="bottle-async-call", daemon=True).start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        if on_cancel is not None:
            on_cancel()
        while not done.done():
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        if undo is not None and not done.cancelled() and done.exception() is None:
            undo(done.result())
        raise


async def _with_token(
    call: Callable[[Cancel], T],
    cancel: Cancel | None,
    undo: Callable[[T], object] | None = None,
) -> T:
    """Awaits ``call(token)`` on a thread of its own (``_in_thread``), where
    ``token`` is the call's own, tripped whenever ``cancel`` is
    (``_call_token``). Cancelling the task trips only ``token``: ``cancel``
    is the caller's and may be shared by other calls, which a timed-out
    ``asyncio.wait_for`` around one of them must not stop."""
    # The link lasts until the call has ended: _in_thread waits for that
    # even when the task is cancelled.
    with _call_token(cancel) as token:
        return await _in_thread(lambda: call(token), on_cancel=token.trip, undo=undo)


class AsyncBottle:
    """``Bottle`` for asyncio: the same calls, as coroutines that run the
    blocking C call on a thread of its own, so the event loop keeps
    running. ``AsyncBottle(name)`` opens a machine (that step does not
    block: it only checks the name and finds smolvm), ``AsyncBottle(name,
    endpoint=ep)`` one that a ``smolvm serve`` runs (see ``Endpoint``);
    ``AsyncBottle.launch(...)`` launches one, awaitable or as ``async
    with``. Every call takes ``timeout`` and ``cancel`` as the
    synchronous one does, and cancelling the awaiting task stops the call
    as a tripped ``Cancel`` would, then waits until smolvm is gone. It
    trips a token of that call's own, never ``cancel``, so other calls
    sharing ``cancel`` go on.
    """

    def __init__(
        self,
        name: str,
        prompt_path: StrPath | None = None,
        *,
        endpoint: Endpoint | None = None,
    ) -> None:
        self.sync = Bottle(name, prompt_path, endpoint=endpoint)
        """The underlying ``Bottle``, for use outside the event loop."""

    @classmethod
    def _wrap(cls, sync: Bottle) -> AsyncBottle:
        bottle = cls.__new__(cls)
        bottle.sync = sync
        return bottle

    @staticmethod
    def launch(
        image: str | None = None,
        name: str | None = None,
        cpus: int | None = None,
        memory_mib: int | None = None,
        env: Mapping[str, str] | None = None,
        network: bool = False,
        volumes: Iterable[Volume] = (),
        prompt_path: StrPath | None = None,
        *,
        endpoint: Endpoint | None = None,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> _Launch:
        """``bottle.launch()`` for asyncio: ``b = await
        AsyncBottle.launch(...)``, or ``async with AsyncBottle.launch(...) as
        b:``, which tears the machine down when the block ends, also on an
        exception or a cancellation. Cancelling the task during the launch
        stops it; a machine that came up all the same is torn down.
        ``endpoint`` launches at a ``smolvm serve``, as for ``launch()``."""
        return _Launch(
            lambda token: launch(
                image,
                name,
                cpus,
                memory_mib,
                env,
                network,
                volumes,
                prompt_path,
                endpoint=endpoint,
                timeout=timeout,
                cancel=token,
            ),
            cancel,
        )

    @property
    def name(self) -> str:
        """The machine's name."""
        return self.sync.name

    async def exec(
        self,
        script: str,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
        workdir: StrPath | None = None,
        timeout: float | None = None,
        stdin: bytes | bytearray | memoryview | str | None = None,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
        cancel: Cancel | None = None,
    ) -> ExecResult:
        """``Bottle.exec``, awaitable. The callbacks run on the call's own
        thread, not in the event loop. Cancelling the task stops this call
        alone (``cancel`` is not tripped) and waits until smolvm is
        stopped."""
        return await _with_token(
            lambda token: self.sync.exec(
                script,
                user,
                env,
                secret_env,
                workdir,
                timeout,
                stdin,
                on_stdout,
                on_stderr,
                token,
            ),
            cancel,
        )

    async def exec_claude(
        self,
        argv: Sequence[str],
        tty: bool | None = None,
        *,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> int:
        """``Bottle.exec_claude``, awaitable; cancelling the task ends the
        session."""
        return await _with_token(
            lambda token: self.sync.exec_claude(argv, tty, timeout=timeout, cancel=token),
            cancel,
        )

    async def cp_in(
        self,
        host: StrPath,
        guest: StrPath,
        mode: int | None = None,
        owner: Owner | None = None,
        progress: Callable[[Progress], object] | None = None,
        *,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        """``Bottle.cp_in``, awaitable; ``progress`` runs on the call's own
        thread. Cancelling the task stops the copy."""
        await _with_token(
            lambda token: self.sync.cp_in(
                host, guest, mode, owner, progress, timeout=timeout, cancel=token
            ),
            cancel,
        )

    async def cp_out(
        self,
        guest: StrPath,
        host: StrPath,
        *,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        """``Bottle.cp_out``, awaitable. Cancelling the task stops the copy
        and leaves ``host`` as it was."""
        await _with_token(
            lambda token: self.sync.cp_out(guest, host, timeout=timeout, cancel=token),
            cancel,
        )

    async def close(self, *, timeout: float | None = None, cancel: Cancel | None = None) -> None:
        """``Bottle.close``, awaitable: waits for running calls, tears a
        launched machine down. Cancelling the task stops the teardown, as
        ``cancel`` would (without tripping it): the machine is then left for
        ``reap()``."""
        await _with_token(lambda token: self.sync.close(timeout=timeout, cancel=token), cancel)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self.sync.closed

    async def __aenter__(self) -> AsyncBottle:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The same policy as Bottle.__exit__, with the teardown on a thread.
        await _in_thread(lambda: self.sync.__exit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        return f"<bottle.AsyncBottle {self.sync!r}>"


class _Launch:
    """What ``AsyncBottle.launch`` returns: awaitable, and an async context
    manager that closes the bottle on the way out."""

    def __init__(self, start: Callable[[Cancel], Bottle], cancel: Cancel | None) -> None:
        self._start = start
        self._cancel = cancel
        self._bottle: AsyncBottle | None = None

    async def _launch(self) -> AsyncBottle:
        sync = await _with_token(self._start, self._cancel, undo=Bottle.close)
        return AsyncBottle._wrap(sync)

    def __await__(self) -> Generator[Any, None, AsyncBottle]:
        return self._launch().__await__()

    async def __aenter__(self) -> AsyncBottle:
        self._bottle = await self._launch()
        return self._bottle

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._bottle is not None
        await self._bottle.__aexit__(exc_type, exc, tb)


async def areap(*, timeout: float | None = None, cancel: Cancel | None = None) -> list[str]:
    """``bottle.reap()``, awaitable; cancelling the task stops the reap
    (without tripping ``cancel``)."""
    return await _with_token(lambda token: reap(timeout=timeout, cancel=token), cancel)


async def areap_at(
    endpoint: Endpoint, *, timeout: float | None = None, cancel: Cancel | None = None
) -> list[str]:
    """``bottle.reap_at()``, awaitable; cancelling the task stops the reap
    (without tripping ``cancel``)."""
    return await _with_token(lambda token: reap_at(endpoint, timeout=timeout, cancel=token), cancel)


__all__ = ["AsyncBottle", "areap", "areap_at"]
