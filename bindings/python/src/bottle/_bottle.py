"""The synchronous API: Bottle, Endpoint, launch, reap, reap_at, Cancel and the
result types."""

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
    """A cancel token. Pass it to any blocking call (``exec``,
    ``exec_claude``, ``cp_in``, ``cp_out``, ``close``, ``launch``, ``reap``,
    ``reap_at``; any number of calls, in any threads), then ``trip()`` it
    from another thread or a signal handler: each call using it stops its
    smolvm process (SIGTERM, then SIGKILL half a second later), reaps it
    and raises ``Cancelled``; calls started later raise at once. Tripping
    is permanent: make a new token for new work."""

    def __init__(self) -> None:
        handle = ctypes.c_void_p()
        check("cancel", lib.bottle_cancel_new(ctypes.byref(handle)))
        self._handle: int | None = handle.value
        # The tokens of the calls running with this one (see _call_token),
        # tripped with it. A set, not guarded by a lock: trip() must stay
        # safe in a signal handler, which a lock held by the interrupted
        # code would deadlock; set.add, set.discard and tuple(set) are each
        # atomic under the GIL.
        self._calls: set[Cancel] = set()

    def trip(self) -> None:
        """Trips the token. Idempotent; it only stores a flag and wakes the
        calls, so it is safe anywhere, a signal handler included."""
        lib.bottle_cancel_trip(self._handle)
        for call in tuple(self._calls):
            call.trip()

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


@contextmanager
def _call_token(cancel: Cancel | None) -> Iterator[Cancel]:
    """A token of the call's own, tripped whenever ``cancel`` is. The C
    options take one token, and a call must be able to stop itself (a
    ``progress`` callback that raises, Ctrl-C) without tripping the
    caller's token, which other calls may share."""
    token = Cancel()
    if cancel is None:
        yield token
        return
    cancel._calls.add(token)
    try:
        # Added before looking, so a trip() that ran before the add is seen
        # here and one that runs after it finds the token in the set.
        if cancel.tripped:
            token.trip()
        yield token
    finally:
        cancel._calls.discard(token)


def _timeout_ms(op: str, timeout: float | None) -> int:
    """``timeout`` seconds as the library's milliseconds, 0 (no limit) for
    ``None``; rounded up, so a tiny timeout is not taken for no limit."""
    if timeout is None:
        return 0
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise InvalidArgument(op, f"timeout: {timeout!r} is not a positive number of seconds")
    return math.ceil(timeout * 1000)


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
    kept, never allowed to unwind through the library, and stops the call:
    an output callback then returns non-zero, which stops the command; a
    progress callback trips ``stop``, the call's own token, so the copy
    ends before its next file. The exception is raised once the C call has
    returned (``check``)."""

    def __init__(self, stop: Cancel | None = None) -> None:
        self.error: BaseException | None = None
        self._stop = stop
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
                if self._stop is not None:
                    self._stop.trip()

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


def _main_thread_interruptible(
    call: Callable[[], T], cancel: Cancel, undo: Callable[[T], object] | None = None
) -> T:
    """Runs ``call`` here, or, on the main thread, on a helper thread while
    the main thread waits in a way Python can interrupt: signal handlers
    then run during the call (so one can trip a ``Cancel``), and Ctrl-C
    trips ``cancel``, waits until smolvm has been stopped, applies ``undo``
    to a result that arrived all the same (a launched machine is torn down
    again; if that fails, a RuntimeWarning says so), and raises
    KeyboardInterrupt. A C call itself cannot run Python
    signal handlers until it returns. Every blocking call goes through
    here, so all of them stop the same way."""
    if threading.current_thread() is not threading.main_thread():
        return call()
    outcome: list[Any] = []
    # Held while the call runs. Not Thread.join(): once interrupted, join
    # takes the thread for finished although it still runs.
    running = threading.Lock()
    running.acquire()
    # Taken once, by whichever comes first: the helper, to run the call, or
    # this thread, interrupted before the call began, so that it never
    # does. An interrupted Thread.start() may or may not have created the
    # thread, and one created may not have begun yet; the claim settles it.
    claim = threading.Lock()

    def work() -> None:
        if not claim.acquire(blocking=False):
            return
        try:
            outcome.append((True, call()))
        except BaseException as e:
            outcome.append((False, e))
        finally:
            running.release()

    try:
        # Inside the try: Ctrl-C may arrive during start(), after the
        # thread began the call, which must then be stopped like any other.
        threading.Thread(target=work, name="bottle-call", daemon=True).start()
        running.acquire()
    except BaseException as interrupt:
        if claim.acquire(blocking=False):
            # The call never began and now never will: nothing to stop,
            # so the caller's token is left alone.
            raise
        cancel.trip()
        while True:
            try:
                running.acquire()
                break
            except BaseException:  # a second Ctrl-C: smolvm is being stopped already
                continue
        if undo is not None and outcome[0][0]:
            try:
                undo(outcome[0][1])
            except BaseException as failed:
                # The interrupt is what the caller must see. A failed undo
                # (a teardown that failed, or was interrupted in turn) is
                # reported beside it, as Bottle.__exit__ reports a failed
                # close.
                warnings.warn(
                    f"bottle: undoing the call after {type(interrupt).__name__} failed: "
                    f"{type(failed).__name__}: {failed}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        raise
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class Endpoint:
    """A ``smolvm serve`` to talk to instead of the local smolvm CLI.

    A bottle opened or launched at an endpoint (``Bottle(name,
    endpoint=ep)``, ``launch(..., endpoint=ep)``) does every operation
    through serve's HTTP API, with the same results, except:

    - ``exec_claude`` with a tty runs claude on serve's interactive route:
      its argv byte for byte, this process's terminal in raw mode for the
      session, claude's stderr merged into its stdout, as on any terminal.
    - ``on_stdout`` and ``on_stderr`` get the output in pieces fetched about
      every 0.2 s, not as it is written.
    - A command whose caller vanished without stopping it (a killed
      process) is killed in the guest about a minute later, not at once.
    - ``reap()`` does not see machines launched at an endpoint: use
      ``reap_at(ep)``.

    ``url`` is one of:

    - ``unix:/path/to/smolvm.sock`` (or ``unix:///path``): the socket
      ``smolvm serve`` listens on by default;
    - ``https://host:port``: serve's TCP listener with mutual TLS, which
      needs ``ca_file`` (the CA serve's certificate must chain to; its host
      name must match the URL's), ``cert_file`` (this client's certificate
      chain, checked by serve against its ``SMOLVM_SERVE_TLS_CLIENT_CA``)
      and ``key_file`` (the client's private key), all PEM files, read
      here and now;
    - ``http://127.0.0.1:port``: plain HTTP, allowed only to a loopback
      address, since serve has no other authentication.

    Nothing is contacted here: an unreachable serve is reported by the
    first operation of a bottle at it. A bad ``url``, TLS files for an
    endpoint that is not ``https://``, or a file without the PEM it should
    hold raise ``InvalidArgument`` (naming ``url``, ``ca_file``, ...); an
    unreadable file raises ``BottleIOError``; TLS files given to a
    libbottle built without its ``tls`` cargo feature raise
    ``Unsupported``. An ``https://`` endpoint without its files is refused
    when a bottle is opened or launched at it.

    Bottles keep what they need: the endpoint may be closed as soon as
    ``Bottle()`` or ``launch()`` has returned. ``close()`` (or the end of a
    ``with`` block) frees it once calls using it have returned; an
    endpoint never closed is freed when it is garbage-collected. It may be
    used by many threads at once.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_file: StrPath | None = None,
        cert_file: StrPath | None = None,
        key_file: StrPath | None = None,
    ) -> None:
        op = "endpoint"
        url_c = _text(op, "url", url)
        files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
        given = [name for name, f in files.items() if f is not None]
        if given and len(given) < len(files):
            missing = next(name for name, f in files.items() if f is None)
            raise InvalidArgument(
                op, f"{missing}: required with {given[0]} (mutual TLS needs all three files)"
            )
        files_c = [None if f is None else _path(op, name, f) for name, f in files.items()]
        self._handle: int | None = None
        self._users = 0
        self._idle = threading.Condition()
        self._url = url
        handle = ctypes.c_void_p()
        check(op, lib.bottle_endpoint_new(url_c, ctypes.byref(handle)))
        self._handle = handle.value
        if given:
            try:
                check(op, lib.bottle_endpoint_set_tls(handle, *files_c))
            except BottleError:
                self.close()
                raise

    @property
    def url(self) -> str:
        """The URL the endpoint was made from."""
        return self._url

    @contextmanager
    def _using(self, op: str) -> Iterator[int]:
        """The C handle, kept alive until the block ends: ``close()``
        waits for every such block."""
        with self._idle:
            if self._handle is None:
                raise InvalidArgument(op, f"endpoint: {self._url}: the endpoint is closed")
            self._users += 1
            handle = self._handle
        try:
            yield handle
        finally:
            with self._idle:
                self._users -= 1
                if self._users == 0:
                    self._idle.notify_all()

    def close(self) -> None:
        """Frees the endpoint, once the calls using it have returned.
        Bottles opened or launched at it go on working. Idempotent."""
        with self._idle:
            handle, self._handle = self._handle, None
            while self._users:
                self._idle.wait()
        if handle is not None:
            lib.bottle_endpoint_free(handle)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self._handle is None

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Only memory: nothing to warn about, unlike an unclosed Bottle.
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            lib.bottle_endpoint_free(handle)

    def __repr__(self) -> str:
        closed = " closed" if self._handle is None else ""
        return f"<bottle.Endpoint {self._url!r}{closed}>"


@contextmanager
def _endpoint_handle(op: str, endpoint: Endpoint | None) -> Iterator[int | None]:
    """``endpoint``'s C handle for the block (``None`` for none: the CLI),
    kept alive until the block ends."""
    if endpoint is None:
        yield None
        return
    if not isinstance(endpoint, Endpoint):
        raise TypeError(f"{op}: endpoint must be Endpoint, not {type(endpoint).__name__}")
    with endpoint._using(op) as handle:
        yield handle


class Bottle:
    """A handle on one smolvm machine.

    ``Bottle(name)`` opens a machine someone else created and started
    (``bottle_open``): it checks the name and finds smolvm
    (``$BOTTLE_SMOLVM``, else ``smolvm`` on PATH) but does not contact the
    machine, and closing the bottle leaves the machine alone. ``launch()``
    returns a bottle that owns a machine of its own. ``prompt_path`` is the
    in-guest system-prompt file that ``exec_claude`` passes to claude.

    ``endpoint``: open the machine that this ``smolvm serve`` runs
    (``bottle_open_at``) and do every operation through its HTTP API
    instead of the smolvm CLI; see ``Endpoint`` for what differs there.
    Nor does this contact serve. The endpoint may be closed once this
    returns.

    A bottle may be used from many threads at once; every call is its own
    smolvm process and releases the GIL while it runs. ``close()`` waits
    for the calls still running. Use it as a context manager to close it
    whatever happens.
    """

    def __init__(
        self,
        name: str,
        prompt_path: StrPath | None = None,
        *,
        endpoint: Endpoint | None = None,
    ) -> None:
        op = "open"
        name_c = _text(op, "machine_name", name)
        prompt_c = None if prompt_path is None else _path(op, "prompt_path", prompt_path)
        handle = ctypes.c_void_p()
        with _endpoint_handle(op, endpoint) as ep:
            if ep is None:
                status = lib.bottle_open(name_c, prompt_c, ctypes.byref(handle))
            else:
                status = lib.bottle_open_at(ep, name_c, prompt_c, ctypes.byref(handle))
            check(op, status)
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
          Callbacks run on a thread of this call, one chunk at a time. At
          an ``Endpoint`` the output comes in pieces fetched about every
          0.2 s, not as it is written.
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
        timeout_ms = _timeout_ms(op, timeout)
        callbacks = _Callbacks()
        with _Options(op, "exec") as opts, _call_token(cancel) as token:
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
            check(op, lib.bottle_exec_options_set_timeout_ms(opts, timeout_ms))
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
            check(op, lib.bottle_exec_options_set_cancel(opts, token._handle))

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

            return _main_thread_interruptible(call, token if cancel is None else cancel)

    def exec_claude(
        self,
        argv: Sequence[str],
        tty: bool | None = None,
        *,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> int:
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
        claude's stdin is empty. At an ``Endpoint`` a tty runs claude on
        serve's interactive route, with the same argv: this process's
        terminal is in raw mode for the session (and put back after), and
        claude's stderr arrives merged into its stdout, as on any terminal.

        ``timeout`` (seconds) and ``cancel`` end the session: smolvm is
        stopped (without a tty, claude and everything it started go with
        it; with one, the guest hangs claude's terminal up; at an
        ``Endpoint`` a tty session is closed, which ends claude) and
        ``Timeout`` or ``Cancelled`` is raised. Ctrl-C on the main thread
        stops it as it stops ``exec``.
        """
        op = "exec_claude"
        args = [_text(op, f"argv[{i}]", a) for i, a in enumerate(argv)]
        timeout_ms = _timeout_ms(op, timeout)
        if tty is None:
            try:
                tty = os.isatty(sys.stdin.fileno())
            except (AttributeError, OSError, ValueError):
                tty = False
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        c_argv = (ctypes.c_char_p * len(args))(*args)
        with _Options(op, "call") as opts, _call_token(cancel) as token:
            check(op, lib.bottle_call_options_set_timeout_ms(opts, timeout_ms))
            check(op, lib.bottle_call_options_set_cancel(opts, token._handle))

            def call() -> int:
                code = ctypes.c_int32()
                with self._using(op) as handle:
                    status = lib.bottle_exec_claude_with(
                        handle, c_argv, len(args), bool(tty), opts, ctypes.byref(code)
                    )
                    check(op, status)
                return code.value

            return _main_thread_interruptible(call, token if cancel is None else cancel)

    def cp_in(
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
          after each one, on a thread of this call. If it raises, the copy
          stops before the next file (what was copied stays in the guest),
          the callback is not called again, and its exception propagates,
          with the library's ``Cancelled`` as its context.
        - ``timeout``: seconds for the whole copy; when they pass, smolvm is
          stopped and ``Timeout`` raised.
        - ``cancel``: a ``Cancel`` to stop the copy from elsewhere
          (``Cancelled``).

        A copy stopped part-way leaves in the guest the files copied before,
        the directories it created (still root's), and the file being copied
        as smolvm left it, possibly missing or partly written. Ctrl-C on the
        main thread stops the copy as it stops ``exec``.
        """
        op = "cp_in"
        host_c = _path(op, "host_path", host)
        guest_c = _path(op, "guest_path", guest)
        timeout_ms = _timeout_ms(op, timeout)
        with _Options(op, "copy") as opts, _call_token(cancel) as token:
            callbacks = _Callbacks(stop=token)
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
            check(op, lib.bottle_copy_options_set_timeout_ms(opts, timeout_ms))
            check(op, lib.bottle_copy_options_set_cancel(opts, token._handle))

            def call() -> None:
                with self._using(op) as handle:
                    status = lib.bottle_cp_in_with(handle, host_c, guest_c, opts)
                    callbacks.check(op, status)

            _main_thread_interruptible(call, token if cancel is None else cancel)

    def cp_out(
        self,
        guest: StrPath,
        host: StrPath,
        *,
        timeout: float | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        """Copies the guest file ``guest`` out to ``host``. The host file is
        written under a temporary name and renamed into place only when the
        copy has succeeded, so an existing file is replaced whole or left
        untouched; its directory must exist.

        ``timeout`` (seconds) and ``cancel`` stop the copy: smolvm is
        stopped, the temporary file removed and ``host`` left as it was,
        and ``Timeout`` or ``Cancelled`` is raised. Ctrl-C on the main
        thread stops the copy as it stops ``exec``."""
        op = "cp_out"
        guest_c = _path(op, "guest_path", guest)
        host_c = _path(op, "host_path", host)
        timeout_ms = _timeout_ms(op, timeout)
        with _Options(op, "copy") as opts, _call_token(cancel) as token:
            check(op, lib.bottle_copy_options_set_timeout_ms(opts, timeout_ms))
            check(op, lib.bottle_copy_options_set_cancel(opts, token._handle))

            def call() -> None:
                with self._using(op) as handle:
                    check(op, lib.bottle_cp_out_with(handle, guest_c, host_c, opts))

            _main_thread_interruptible(call, token if cancel is None else cancel)

    def close(self, *, timeout: float | None = None, cancel: Cancel | None = None) -> None:
        """Releases the handle, once the calls still running on it have
        returned. A launched bottle's machine is stopped and deleted, and a
        failure to do so raised as ``SmolvmError`` (the handle is released
        all the same); an opened machine is left as it is. Idempotent.

        ``timeout`` (seconds) and ``cancel`` bound the teardown, not the
        wait for running calls: stopped, it raises ``Timeout`` or
        ``Cancelled`` and leaves the machine as it is (perhaps stopped, not
        deleted), labelled as this process's, for ``reap()`` to delete once
        this process has exited. Ctrl-C on the main thread stops the
        teardown the same way and raises KeyboardInterrupt."""
        op = "close"
        timeout_ms = _timeout_ms(op, timeout)
        # Everything that can fail is made ready before the handle is taken
        # from the bottle: from then on only the C close may see it, and it
        # frees the handle whatever happens.
        with _Options(op, "call") as opts, _call_token(cancel) as token:
            check(op, lib.bottle_call_options_set_timeout_ms(opts, timeout_ms))
            check(op, lib.bottle_call_options_set_cancel(opts, token._handle))
            with self._idle:
                handle, self._handle = self._handle, None
                while self._users:
                    self._idle.wait()
            if handle is None:
                return
            _main_thread_interruptible(
                lambda: check(op, lib.bottle_close_with(handle, opts)),
                token if cancel is None else cancel,
            )

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
    *,
    endpoint: Endpoint | None = None,
    timeout: float | None = None,
    cancel: Cancel | None = None,
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
    - ``endpoint``: launch at this ``smolvm serve`` instead of through the
      local smolvm CLI (see ``Endpoint`` for what differs there). serve
      keeps no labels, so the machine is recorded on this host instead
      (under ``$XDG_STATE_HOME/libbottle/serve``, else
      ``~/.local/state/libbottle/serve``) for ``reap_at()``; a record that
      cannot be written fails the launch with ``BottleIOError``. ``env`` is
      then sent with every command, since serve does not apply it itself.
      The endpoint may be closed once this returns.
    - ``timeout``: seconds for the create and the start together; when they
      pass, smolvm is stopped, a machine already created is deleted again
      (with 5 seconds of its own for that), and ``Timeout`` is raised.
    - ``cancel``: a ``Cancel`` to stop the launch from elsewhere, with the
      same cleanup (``Cancelled``).

    The machine is labelled as libbottle's (at an endpoint: recorded), with
    this process as its owner, so that ``reap()`` (``reap_at()``) deletes
    it should this process die without closing it. If it is created but
    does not start, it is deleted again and the start's ``SmolvmError``
    raised. Blocks until the machine runs; Ctrl-C on the main thread stops
    the launch as it stops ``Bottle.exec``, and a machine that came up all
    the same is torn down again.
    """
    op = "launch"
    timeout_ms = _timeout_ms(op, timeout)
    with _Options(op, "launch") as opts, _call_token(cancel) as token:
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
        if endpoint is not None:
            with _endpoint_handle(op, endpoint) as ep:
                check(op, lib.bottle_launch_options_set_endpoint(opts, ep))
        check(op, lib.bottle_launch_options_set_timeout_ms(opts, timeout_ms))
        check(op, lib.bottle_launch_options_set_cancel(opts, token._handle))

        def call() -> Bottle:
            handle = ctypes.c_void_p()
            check(op, lib.bottle_launch(opts, ctypes.byref(handle)))
            return Bottle._from_handle(handle.value)

        return _main_thread_interruptible(
            call, token if cancel is None else cancel, undo=Bottle.close
        )


def _reap(
    op: str,
    reap_with: Callable[[ctypes.c_void_p, Any], int],
    timeout: float | None,
    cancel: Cancel | None,
) -> list[str]:
    """What ``reap`` and ``reap_at`` share: ``reap_with(options, names)``
    is the C call, run with the timeout and cancel token; the names it
    listed are returned, or attached to its exception as ``removed``."""
    timeout_ms = _timeout_ms(op, timeout)
    with _Options(op, "call") as opts, _call_token(cancel) as token:
        check(op, lib.bottle_call_options_set_timeout_ms(opts, timeout_ms))
        check(op, lib.bottle_call_options_set_cancel(opts, token._handle))

        def call() -> list[str]:
            names = NamesStruct()
            status = reap_with(opts, ctypes.byref(names))
            try:
                removed = [names.names[i].decode() for i in range(names.count)]
                try:
                    check(op, status)
                except BottleError as e:
                    e.removed = removed  # type: ignore[attr-defined]
                    raise
                return removed
            finally:
                lib.bottle_names_free(ctypes.byref(names))

        return _main_thread_interruptible(call, token if cancel is None else cancel)


def reap(*, timeout: float | None = None, cancel: Cancel | None = None) -> list[str]:
    """Deletes every machine that libbottle launched for a process that is
    gone (killed before it could close its bottles, or from before a
    reboot) and returns their names. Machines of live processes, and
    machines libbottle did not launch, are left alone. A machine that could
    not be deleted raises ``SmolvmError`` after the others were tried; its
    ``removed`` attribute lists the machines that were deleted.

    ``timeout`` (seconds) and ``cancel`` stop the reap: the smolvm process
    running then is stopped and ``Timeout`` or ``Cancelled`` raised, its
    ``removed`` listing the machines deleted before (one whose delete was
    stopped may be left for the next reap). Ctrl-C on the main thread
    stops it as it stops ``Bottle.exec``.

    It goes through the local smolvm CLI, and does not see machines
    launched at an ``Endpoint``: ``reap_at()`` deletes those."""
    return _reap("reap", lib.bottle_reap_with, timeout, cancel)


def reap_at(
    endpoint: Endpoint, *, timeout: float | None = None, cancel: Cancel | None = None
) -> list[str]:
    """``reap()`` at an endpoint: deletes the machines that this user
    launched at ``endpoint`` from this host and whose owning process is
    gone, and returns their names.

    serve keeps no labels, so it goes by the records ``launch(...,
    endpoint=...)`` wrote on this host. It never touches machines launched
    from another host or by another user, nor one made again under the
    same name since; a machine whose record was lost is not found.

    Raises ``SmolvmError`` (serve refused a delete; the others were tried),
    ``BottleIOError`` (serve unreachable, records unreadable), ``Timeout``
    or ``Cancelled``, each with ``removed`` as for ``reap()``; ``timeout``,
    ``cancel`` and Ctrl-C work as they do there. The endpoint cannot be
    closed while this runs (``close()`` waits)."""
    op = "reap_at"
    if not isinstance(endpoint, Endpoint):
        raise TypeError(f"{op}: endpoint must be Endpoint, not {type(endpoint).__name__}")

    def reap_with(opts: ctypes.c_void_p, names: Any) -> int:
        with endpoint._using(op) as ep:
            return int(lib.bottle_reap_at(ep, opts, names))

    return _reap(op, reap_with, timeout, cancel)


def version() -> str:
    """The version of the libbottle this package loaded."""
    return str(lib.bottle_version().decode())


__all__ = [
    "Bottle",
    "Cancel",
    "Endpoint",
    "ExecResult",
    "Owner",
    "Progress",
    "StrPath",
    "Volume",
    "launch",
    "reap",
    "reap_at",
    "version",
]
