"""The synchronous API: Bottle, launch, reap, Cancel and the result types."""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, NamedTuple, TypeVar, Union

from ._errors import BottleError, InvalidArgument, check
from ._native import (
    OUTPUT_FN,
    PROGRESS_FN,
    ExecResultStruct,
    NamesStruct,
    lib,
)

StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
"""A path: ``str``, ``bytes`` or ``os.PathLike``. Host paths may be any
bytes; guest paths must be UTF-8."""

Owner = Union[str, "tuple[int, int]"]
"""A copy's owner in the guest: a user name such as ``"node"`` (with its
primary group), or numeric ``(uid, gid)``."""

Volume = Union["tuple[StrPath, StrPath]", "tuple[StrPath, StrPath, bool]"]
"""A shared directory: ``(host_path, guest_path)`` or ``(host_path,
guest_path, read_only)``."""

T = TypeVar("T")


class ExecResult(NamedTuple):
    """What a script left behind: its exit status (128+N if signal N killed
    it) and its complete output, bytes exactly as the guest wrote them."""

    returncode: int
    stdout: bytes
    stderr: bytes


class Progress(NamedTuple):
    """How far a copy has got; the totals are known before the first file
    is copied."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


class Cancel:
    """A cancel token. Pass it to ``exec`` (any number of calls, in any
    threads), then ``trip()`` it from another thread or a signal handler:
    each call using it stops its smolvm process (SIGTERM, then SIGKILL half
    a second later), reaps it and raises ``Cancelled``; calls started later
    raise at once. Tripping is permanent: make a new token for new work."""

    def __init__(self) -> None:
        handle = ctypes.c_void_p()
        check("cancel", lib.bottle_cancel_new(ctypes.byref(handle)))
        self._handle: int | None = handle.value

    def trip(self) -> None:
        """Trips the token. Idempotent; it only stores a flag and wakes the
        calls, so it is safe anywhere, a signal handler included."""
        lib.bottle_cancel_trip(self._handle)

    @property
    def tripped(self) -> bool:
        """Whether ``trip()`` has been called."""
        return bool(lib.bottle_cancel_is_tripped(self._handle))

    def __del__(self) -> None:
        # Calls hold their own reference to the C token, so freeing ours
        # cannot pull it from under one.
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            lib.bottle_cancel_free(handle)


def _no_nul(op: str, name: str, value: bytes) -> bytes:
    at = value.find(b"\0")
    if at >= 0:
        raise InvalidArgument(
            op, f"{name}: contains a NUL byte at offset {at}, which a C string cannot carry"
        )
    return value


def _text(op: str, name: str, value: str) -> bytes:
    """``value`` as the UTF-8 C string the library wants."""
    if not isinstance(value, str):
        raise TypeError(f"{op}: {name} must be str, not {type(value).__name__}")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(op, f"{name}: not valid UTF-8 ({e.reason})") from None
    return _no_nul(op, name, encoded)


def _path(op: str, name: str, value: StrPath) -> bytes:
    """A path as bytes: ``str`` and ``os.PathLike`` through
    ``os.fsencode``, like the ``os`` module does."""
    return _no_nul(op, name, os.fsencode(value))


def _u32(op: str, name: str, value: int) -> int:
    """``value`` checked to fit a C ``uint32_t`` (ctypes would wrap it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be int, not {type(value).__name__}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise InvalidArgument(op, f"{name}: {value} is out of range (0 to 4294967295)")
    return value


class _Options:
    """A C options object freed when the ``with`` block ends."""

    def __init__(self, op: str, kind: str) -> None:
        self._free = getattr(lib, f"bottle_{kind}_options_free")
        handle = ctypes.c_void_p()
        check(op, getattr(lib, f"bottle_{kind}_options_new")(ctypes.byref(handle)))
        self.handle = handle

    def __enter__(self) -> ctypes.c_void_p:
        return self.handle

    def __exit__(self, *exc: object) -> None:
        self._free(self.handle)


class _Callbacks:
    """Python callbacks made callable from C. An exception raised in one is
    kept, never allowed to unwind through the library: an output callback
    then returns non-zero, which stops the command; the exception is raised
    once the C call has returned (``reraise``)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        # ctypes callback objects must outlive the C call that uses them.
        self._keep: list[object] = []

    def output(self, fn: Callable[[bytes], object]) -> Any:
        def call(_user_data: object, data: Any, length: int) -> int:
            if self.error is not None:
                return 1
            try:
                fn(ctypes.string_at(data, length))
            except BaseException as e:
                self.error = e
                return 1
            return 0

        wrapped = OUTPUT_FN(call)
        self._keep.append(wrapped)
        return wrapped

    def progress(self, fn: Callable[[Progress], object]) -> Any:
        def call(_user_data: object, p: Any) -> None:
            if self.error is not None:
                return
            c = p.contents
            try:
                fn(Progress(c.files_done, c.files_total, c.bytes_done, c.bytes_total))
            except BaseException as e:
                self.error = e

        wrapped = PROGRESS_FN(call)
        self._keep.append(wrapped)
        return wrapped

    def check(self, op: str, status: int) -> None:
        """``check(op, status)``, except that a callback's exception wins:
        it is what stopped the call (with the library's ``Cancelled`` as its
        context)."""
        if self.error is None:
            check(op, status)
            return
        error, self.error = self.error, None
        try:
            check(op, status)
        except BottleError:
            raise error from None
        raise error


def _main_thread_interruptible(call: Callable[[], T], cancel: Cancel) -> T:
    """Runs ``call`` here, or, on the main thread, on a helper thread while
    the main thread waits in a way Python can interrupt: signal handlers
    then run during the call (so one can trip a ``Cancel``), and Ctrl-C
    trips ``cancel``, waits until smolvm has been stopped, and raises
    KeyboardInterrupt. A C call itself cannot run Python signal handlers
    until it returns."""
    if threading.current_thread() is not threading.main_thread():
        return call()
    outcome: list[Any] = []
    # Held while the call runs. Not Thread.join(): once interrupted, join
    # takes the thread for finished although it still runs.
    running = threading.Lock()
    running.acquire()

    def work() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as e:
            outcome.append((False, e))
        finally:
            running.release()

    threading.Thread(target=work, name="bottle-call", daemon=True).start()
    try:
        running.acquire()
    except BaseException:
        cancel.trip()
        while True:
            try:
                running.acquire()
                break
            except BaseException:  # a second Ctrl-C: smolvm is being stopped already
                continue
        raise
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Bottle:
    """A handle on one smolvm machine.

    ``Bottle(name)`` opens a machine someone else created and started
    (``bottle_open``): it checks the name and finds smolvm
    (``$BOTTLE_SMOLVM``, else ``smolvm`` on PATH) but does not contact the
    machine, and closing the bottle leaves the machine alone. ``launch()``
    returns a bottle that owns a machine of its own. ``prompt_path`` is the
    in-guest system-prompt file that ``exec_claude`` passes to claude.

    A bottle may be used from many threads at once; every call is its own
    smolvm process and releases the GIL while it runs. ``close()`` waits
    for the calls still running. Use it as a context manager to close it
    whatever happens.
    """

    def __init__(self, name: str, prompt_path: StrPath | None = None) -> None:
        handle = ctypes.c_void_p()
        check(
            "open",
            lib.bottle_open(
                _text("open", "machine_name", name),
                None if prompt_path is None else _path("open", "prompt_path", prompt_path),
                ctypes.byref(handle),
            ),
        )
        self._adopt(handle.value)

    @classmethod
    def _from_handle(cls, handle: int | None) -> Bottle:
        bottle = cls.__new__(cls)
        bottle._adopt(handle)
        return bottle

    def _adopt(self, handle: int | None) -> None:
        self._handle = handle
        self._users = 0
        self._idle = threading.Condition()

    @contextmanager
    def _using(self, op: str) -> Iterator[int | None]:
        """The C handle, kept open until the block ends: ``close()`` waits
        for every such block, so no call ever sees a freed handle."""
        with self._idle:
            if self._handle is None:
                raise InvalidArgument(op, "the bottle is closed")
            self._users += 1
            handle = self._handle
        try:
            yield handle
        finally:
            with self._idle:
                self._users -= 1
                if self._users == 0:
                    self._idle.notify_all()

    @property
    def name(self) -> str:
        """The machine's name (generated by ``launch()`` unless given)."""
        with self._using("name") as handle:
            return str(lib.bottle_machine_name(handle).decode())

    def exec(
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
        """Runs ``script`` in the guest and returns its exit status and
        output.

        The script is shell code for ``user``'s login shell (``node``, the
        agent image's user, by default; ``"root"`` for root), run by
        ``runuser -l`` inside ``smolvm machine exec``: it gets that user's
        login environment (``$HOME``, ``$PATH``) and starts in its home. It
        is passed as one argument, unchanged, so quote inside it what the
        shell should not expand. A script that exits non-zero is a result,
        not an exception.

        - ``env``: variables for the script. They travel on smolvm's command
          line, which every local user can read while the script runs.
        - ``secret_env``: variables kept off every host command line (smolvm
          reads them from its own environment): API keys go here.
        - ``workdir``: the guest directory to start in; if it is missing the
          script does not run and exits 1.
        - ``timeout``: seconds; when it passes, the script and smolvm are
          stopped and ``Timeout`` is raised.
        - ``stdin``: bytes for the script's stdin (``str`` is encoded as
          UTF-8); default empty.
        - ``on_stdout``, ``on_stderr``: called with each chunk of output as
          it arrives; that stream is then not kept in the result. A callback
          that raises stops the script, and its exception propagates.
          Callbacks run on a thread of this call, one chunk at a time.
        - ``cancel``: a ``Cancel`` to stop the call from elsewhere
          (``Cancelled``).

        On the main thread, Ctrl-C (or any exception from a signal handler)
        stops the script and smolvm before it propagates; it trips
        ``cancel`` if one was given.

        Raises ``InvalidArgument``, ``SmolvmNotFound``, ``SmolvmError`` (the
        machine is missing or stopped), ``BottleIOError``, ``Timeout``,
        ``Cancelled``.
        """
        op = "exec"
        script_c = _text(op, "script", script)
        if cancel is None:
            cancel = Cancel()
        callbacks = _Callbacks()
        with _Options(op, "exec") as opts:
            if user is not None:
                check(op, lib.bottle_exec_options_set_user(opts, _text(op, "user", user)))
            for name, value in (env or {}).items():
                check(
                    op,
                    lib.bottle_exec_options_add_env(
                        opts, _text(op, "name", name), _text(op, "value", value)
                    ),
                )
            for name, value in (secret_env or {}).items():
                check(
                    op,
                    lib.bottle_exec_options_add_secret_env(
                        opts, _text(op, "name", name), _text(op, "value", value)
                    ),
                )
            if workdir is not None:
                check(op, lib.bottle_exec_options_set_workdir(opts, _path(op, "dir", workdir)))
            if timeout is not None:
                if not (
                    isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0
                ):
                    raise InvalidArgument(
                        op, f"timeout: {timeout!r} is not a positive number of seconds"
                    )
                check(op, lib.bottle_exec_options_set_timeout_ms(opts, math.ceil(timeout * 1000)))
            if stdin is not None:
                data = stdin.encode("utf-8") if isinstance(stdin, str) else bytes(stdin)
                buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
                check(op, lib.bottle_exec_options_set_stdin(opts, buffer, len(data)))
            if on_stdout is not None:
                check(
                    op,
                    lib.bottle_exec_options_set_stdout_fn(
                        opts, callbacks.output(on_stdout), None, False
                    ),
                )
            if on_stderr is not None:
                check(
                    op,
                    lib.bottle_exec_options_set_stderr_fn(
                        opts, callbacks.output(on_stderr), None, False
                    ),
                )
            check(op, lib.bottle_exec_options_set_cancel(opts, cancel._handle))

            def call() -> ExecResult:
                with self._using(op) as handle:
                    result = ExecResultStruct()
                    status = lib.bottle_exec_with(handle, script_c, opts, ctypes.byref(result))
                    callbacks.check(op, status)
                try:
                    return ExecResult(
                        result.exit_code,
                        ctypes.string_at(result.stdout_data, result.stdout_len),
                        ctypes.string_at(result.stderr_data, result.stderr_len),
                    )
                finally:
                    lib.bottle_exec_result_free(ctypes.byref(result))

            return _main_thread_interruptible(call, cancel)

    def exec_claude(self, argv: Sequence[str], tty: bool | None = None) -> int:
        """Runs claude-code in the guest with exactly ``argv`` and returns
        its exit status.

        It runs as ``node`` (claude refuses
        ``--dangerously-skip-permissions`` as root) as ``exec claude
        [--append-system-prompt-file PROMPT] ARGV...``, every argument
        quoted for the login shell, so claude sees ``argv`` byte for byte.
        claude talks to this process's own terminal: its stdout and stderr
        are inherited, not captured (Python's buffers are flushed first).
        ``tty``: give claude this process's stdin and a guest terminal;
        ``None`` decides by whether stdin is a terminal. Without a tty
        claude's stdin is empty.
        """
        op = "exec_claude"
        args = [_text(op, f"argv[{i}]", a) for i, a in enumerate(argv)]
        if tty is None:
            try:
                tty = os.isatty(sys.stdin.fileno())
            except (AttributeError, OSError, ValueError):
                tty = False
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        c_argv = (ctypes.c_char_p * len(args))(*args)
        code = ctypes.c_int32()
        with self._using(op) as handle:
            check(
                op,
                lib.bottle_exec_claude(handle, c_argv, len(args), bool(tty), ctypes.byref(code)),
            )
        return code.value

    def cp_in(
        self,
        host: StrPath,
        guest: StrPath,
        mode: int | None = None,
        owner: Owner | None = None,
        progress: Callable[[Progress], object] | None = None,
    ) -> None:
        """Copies the host file or directory ``host`` into the guest at
        ``guest``.

        A file is created or replaced at ``guest`` (its parent directory
        must exist), owned by root with mode 0644 unless told otherwise. A
        directory is copied recursively: ``guest`` becomes a directory
        holding the same tree; files keep their host permission bits.
        smolvm never parses ``host``: the library opens it and hands smolvm
        the open descriptor, so any host path works.

        - ``mode``: permission bits for every file copied (e.g. ``0o600``).
        - ``owner``: ``"node"`` (a guest user and its primary group, looked
          up in the guest) or numeric ``(uid, gid)``, so the agent can write
          what it was given.
        - ``progress``: called with a ``Progress`` before the first file and
          after each one. If it raises, the exception propagates once the
          copy has ended (the library cannot stop a copy part-way); it is
          not called again.
        """
        op = "cp_in"
        host_c = _path(op, "host_path", host)
        guest_c = _path(op, "guest_path", guest)
        callbacks = _Callbacks()
        with _Options(op, "copy") as opts:
            if mode is not None:
                check(op, lib.bottle_copy_options_set_mode(opts, _u32(op, "mode", mode)))
            if isinstance(owner, str):
                check(op, lib.bottle_copy_options_set_owner_user(opts, _text(op, "user", owner)))
            elif owner is not None:
                uid, gid = owner
                check(
                    op,
                    lib.bottle_copy_options_set_owner_ids(
                        opts, _u32(op, "uid", uid), _u32(op, "gid", gid)
                    ),
                )
            if progress is not None:
                check(
                    op,
                    lib.bottle_copy_options_set_progress_fn(
                        opts, callbacks.progress(progress), None
                    ),
                )
            with self._using(op) as handle:
                status = lib.bottle_cp_in_with(handle, host_c, guest_c, opts)
                callbacks.check(op, status)

    def cp_out(self, guest: StrPath, host: StrPath) -> None:
        """Copies the guest file ``guest`` out to ``host``. The host file is
        written under a temporary name and renamed into place only when the
        copy has succeeded, so an existing file is replaced whole or left
        untouched; its directory must exist."""
        op = "cp_out"
        guest_c = _path(op, "guest_path", guest)
        host_c = _path(op, "host_path", host)
        with self._using(op) as handle:
            check(op, lib.bottle_cp_out(handle, guest_c, host_c))

    def close(self) -> None:
        """Releases the handle, once the calls still running on it have
        returned. A launched bottle's machine is stopped and deleted, and a
        failure to do so raised as ``SmolvmError`` (the handle is released
        all the same); an opened machine is left as it is. Idempotent."""
        with self._idle:
            handle, self._handle = self._handle, None
            while self._users:
                self._idle.wait()
        if handle is not None:
            check("close", lib.bottle_close_checked(handle))

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self._handle is None

    def __enter__(self) -> Bottle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # The block's own exception is the one to see; a failed teardown
        # on top of it becomes a warning instead of replacing it.
        try:
            self.close()
        except BottleError as teardown:
            warnings.warn(
                f"bottle: closing after {type(exc).__name__} failed: {teardown}",
                RuntimeWarning,
                stacklevel=2,
            )

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            warnings.warn(f"bottle: unclosed {self!r}", ResourceWarning, stacklevel=2)
            lib.bottle_close_checked(handle)

    def __repr__(self) -> str:
        if self._handle is None:
            return "<bottle.Bottle closed>"
        return f"<bottle.Bottle {lib.bottle_machine_name(self._handle).decode()!r}>"


def launch(
    image: str | None = None,
    name: str | None = None,
    cpus: int | None = None,
    memory_mib: int | None = None,
    env: Mapping[str, str] | None = None,
    network: bool = False,
    volumes: Iterable[Volume] = (),
    prompt_path: StrPath | None = None,
) -> Bottle:
    """Creates and starts a machine and returns a ``Bottle`` that owns it:
    closing the bottle (or leaving its ``with`` block, also on an exception)
    stops and deletes the machine.

    - ``image``: the image to boot, such as the agent image; default
      smolvm's.
    - ``name``: the machine's name; default a generated ``bottle-PID-N-HEX``.
    - ``cpus``, ``memory_mib``: resources; default smolvm's.
    - ``env``: variables for every command in the machine (visible on
      smolvm's command line while it is created: no secrets).
    - ``network``: outbound network for the guest.
    - ``volumes``: host directories shared into the guest, as ``(host,
      guest)`` or ``(host, guest, read_only)``.
    - ``prompt_path``: as for ``Bottle``.

    The machine is labelled as libbottle's, with this process as its owner,
    so that ``reap()`` deletes it should this process die without closing
    it. If it is created but does not start, it is deleted again and the
    start's ``SmolvmError`` raised. Blocks until the machine runs.
    """
    op = "launch"
    with _Options(op, "launch") as opts:
        if name is not None:
            check(op, lib.bottle_launch_options_set_name(opts, _text(op, "machine_name", name)))
        if image is not None:
            check(op, lib.bottle_launch_options_set_image(opts, _text(op, "image", image)))
        if cpus is not None:
            check(op, lib.bottle_launch_options_set_cpus(opts, _u32(op, "cpus", cpus)))
        if memory_mib is not None:
            check(op, lib.bottle_launch_options_set_memory_mib(opts, _u32(op, "mib", memory_mib)))
        if network:
            check(op, lib.bottle_launch_options_set_network(opts, True))
        for volume in volumes:
            host, guest, *rest = volume
            check(
                op,
                lib.bottle_launch_options_add_volume(
                    opts,
                    _path(op, "host_path", host),
                    _path(op, "guest_path", guest),
                    bool(rest and rest[0]),
                ),
            )
        for var, value in (env or {}).items():
            check(
                op,
                lib.bottle_launch_options_add_env(
                    opts, _text(op, "name", var), _text(op, "value", value)
                ),
            )
        if prompt_path is not None:
            check(
                op,
                lib.bottle_launch_options_set_prompt_path(opts, _path(op, "path", prompt_path)),
            )
        handle = ctypes.c_void_p()
        check(op, lib.bottle_launch(opts, ctypes.byref(handle)))
    return Bottle._from_handle(handle.value)


def reap() -> list[str]:
    """Deletes every machine that libbottle launched for a process that is
    gone (killed before it could close its bottles, or from before a
    reboot) and returns their names. Machines of live processes, and
    machines libbottle did not launch, are left alone. A machine that could
    not be deleted raises ``SmolvmError`` after the others were tried; its
    ``removed`` attribute lists the machines that were deleted."""
    names = NamesStruct()
    status = lib.bottle_reap(ctypes.byref(names))
    try:
        removed = [names.names[i].decode() for i in range(names.count)]
        try:
            check("reap", status)
        except BottleError as e:
            e.removed = removed  # type: ignore[attr-defined]
            raise
        return removed
    finally:
        lib.bottle_names_free(ctypes.byref(names))


def version() -> str:
    """The version of the libbottle this package loaded."""
    return str(lib.bottle_version().decode())


__all__ = [
    "Bottle",
    "Cancel",
    "ExecResult",
    "Owner",
    "Progress",
    "StrPath",
    "Volume",
    "launch",
    "reap",
    "version",
]
