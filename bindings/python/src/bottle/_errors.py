"""Exceptions: one class per ``bottle_status`` code, each also subclassing
the built-in exception a Python caller would catch for that kind of
failure."""

from __future__ import annotations

from ._native import lib

OK = 0
INVALID_ARGUMENT = 1
SMOLVM_NOT_FOUND = 2
SMOLVM = 3
IO = 4
PANIC = 5
TIMEOUT = 6
CANCELLED = 7
UNSUPPORTED = 8


class BottleError(Exception):
    """A libbottle call failed. ``status`` is the C ``bottle_status`` code,
    ``message`` the library's message (which, for a bad argument, starts
    with the argument's C name, as in ``user: must not be empty``), and
    ``op`` the operation, such as ``"exec"``."""

    status: int = -1

    def __init__(self, op: str, message: str, status: int | None = None) -> None:
        if status is not None:
            self.status = status
        self.op = op
        self.message = message
        description = lib.bottle_status_str(self.status).decode()
        super().__init__(f"{op}: {description}: {message}")


class InvalidArgument(BottleError, ValueError):
    """An argument was rejected before anything ran: a bad machine name,
    user, path, variable name or option, a NUL byte in a string, or a
    closed bottle."""

    status = INVALID_ARGUMENT


class SmolvmNotFound(BottleError, FileNotFoundError):
    """The smolvm executable cannot be found (``$BOTTLE_SMOLVM``, else
    ``smolvm`` on PATH) or started."""

    status = SMOLVM_NOT_FOUND

    def __str__(self) -> str:
        # OSError's own __str__ would print "[Errno None] ..." otherwise.
        return str(self.args[0])


class SmolvmError(BottleError):
    """smolvm itself failed: an unknown or stopped machine, a failed copy,
    a machine that did not start or could not be deleted. The message
    carries smolvm's own words."""

    status = SMOLVM


class BottleIOError(BottleError, OSError):
    """A host-side I/O error, such as a host file that cannot be opened."""

    status = IO

    def __str__(self) -> str:
        return str(self.args[0])


class Panic(BottleError):
    """A bug inside libbottle, caught at its boundary; the process goes
    on."""

    status = PANIC


class Timeout(BottleError, TimeoutError):
    """The call ran past its ``timeout``: smolvm (and, for ``exec``, the
    script) was stopped."""

    status = TIMEOUT

    def __str__(self) -> str:
        return str(self.args[0])


class Cancelled(BottleError):
    """The call was stopped: its ``Cancel`` was tripped, or an output or
    progress callback raised (that exception is then raised instead, with
    this one as its context)."""

    status = CANCELLED


class Unsupported(BottleError):
    """This build of libbottle cannot do this, and nothing was done. Today
    only ``Endpoint`` raises it, for TLS files given to a libbottle built
    without its ``tls`` cargo feature."""

    status = UNSUPPORTED


_BY_STATUS: dict[int, type[BottleError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        SmolvmNotFound,
        SmolvmError,
        BottleIOError,
        Panic,
        Timeout,
        Cancelled,
        Unsupported,
    )
}


def check(op: str, status: int) -> None:
    """Raises the exception for ``status`` unless it is ``BOTTLE_OK``. Call
    it on the thread that made the call, before any other libbottle call
    there: the message is that thread's ``bottle_last_error()``."""
    if status == OK:
        return
    raw = lib.bottle_last_error()
    message = raw.decode(errors="replace") if raw else ""
    cls = _BY_STATUS.get(status)
    if cls is None:
        # Status codes are only ever appended: a newer library's code is
        # still a failure.
        raise BottleError(op, message, status)
    raise cls(op, message)
