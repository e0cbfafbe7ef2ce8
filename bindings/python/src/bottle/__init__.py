"""Drive a sandboxed coding agent in a smolvm microVM: libbottle for Python.

A ``Bottle`` is a handle on one named smolvm machine. Through it you run
shell scripts in the guest as the agent's user (``node`` by default) and get
their exit status and output, start claude-code on your own terminal with
exactly the arguments you give, and copy files in and out::

    import bottle

    with bottle.Bottle("agent-1") as b:
        r = b.exec("echo hello from $(id -un)")
        print(r.returncode, r.stdout)

``launch()`` makes a machine the bottle owns and tears it down on close;
``reap()`` deletes those of processes that died first. ``AsyncBottle`` is
the same for asyncio. Every failure is a ``BottleError``; a script's
non-zero exit is a result, not an exception.

A bottle runs the smolvm CLI, or, opened or launched with
``endpoint=bottle.Endpoint(url)``, talks to a ``smolvm serve`` over its
HTTP API instead (``reap_at()`` reaps there)::

    with bottle.Endpoint("unix:/path/to/smolvm.sock") as ep:
        b = bottle.Bottle("agent-1", endpoint=ep)

The package is a ctypes layer over libbottle's C ABI (``bottle.h``): every
rule about names, users, paths and quoting lives once, in the library, which
``pip install`` builds into this package (``BOTTLE_LIBRARY`` names another).
"""

from ._aio import AsyncBottle, areap, areap_at
from ._bottle import (
    Bottle,
    Cancel,
    Endpoint,
    ExecResult,
    Owner,
    Progress,
    StrPath,
    Volume,
    launch,
    reap,
    reap_at,
    version,
)
from ._errors import (
    BottleError,
    BottleIOError,
    Cancelled,
    InvalidArgument,
    Panic,
    SmolvmError,
    SmolvmNotFound,
    Timeout,
    Unsupported,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncBottle",
    "Bottle",
    "BottleError",
    "BottleIOError",
    "Cancel",
    "Cancelled",
    "Endpoint",
    "ExecResult",
    "InvalidArgument",
    "Owner",
    "Panic",
    "Progress",
    "SmolvmError",
    "SmolvmNotFound",
    "StrPath",
    "Timeout",
    "Unsupported",
    "Volume",
    "__version__",
    "areap",
    "areap_at",
    "launch",
    "reap",
    "reap_at",
    "version",
]
