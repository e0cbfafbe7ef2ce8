"""Loading libbottle and declaring its C functions for ctypes.

The package loads exactly one library: the file named by the environment
variable ``BOTTLE_LIBRARY`` when it is set, else the ``_libbottle`` shared
library built into this package by ``pip install``. It never searches the
system's library path, so a different libbottle installed elsewhere cannot
be picked up by accident, and a library of another ABI version is refused.

Every function gets its argument and result types declared: ctypes then
converts and checks arguments instead of guessing, and, because the library
is loaded with ``ctypes.CDLL``, releases the GIL for the length of each call.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from pathlib import Path

PACKAGE_VERSION = "0.1.0"

LIBRARY_ENV = "BOTTLE_LIBRARY"


class ExecResultStruct(ctypes.Structure):
    """``struct bottle_exec_result``: two library-owned byte buffers with
    their lengths, released with ``bottle_exec_result_free``."""

    _fields_ = [
        ("exit_code", ctypes.c_int32),
        ("stdout_data", ctypes.POINTER(ctypes.c_uint8)),
        ("stdout_len", ctypes.c_size_t),
        ("stderr_data", ctypes.POINTER(ctypes.c_uint8)),
        ("stderr_len", ctypes.c_size_t),
    ]


class ProgressStruct(ctypes.Structure):
    """``struct bottle_progress``. Later library versions may append fields;
    reading only these through a pointer stays correct."""

    _fields_ = [
        ("files_done", ctypes.c_uint64),
        ("files_total", ctypes.c_uint64),
        ("bytes_done", ctypes.c_uint64),
        ("bytes_total", ctypes.c_uint64),
    ]


class NamesStruct(ctypes.Structure):
    """``struct bottle_names``: ``count`` library-owned C strings."""

    _fields_ = [
        ("names", ctypes.POINTER(ctypes.c_char_p)),
        ("count", ctypes.c_size_t),
    ]


OUTPUT_FN = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t
)
PROGRESS_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ProgressStruct))

_handle = ctypes.c_void_p
_status = ctypes.c_int
_str = ctypes.c_char_p
_out_handle = ctypes.POINTER(ctypes.c_void_p)

# name: (result type, argument types), in the header's order.
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "bottle_open": (_status, [_str, _str, _out_handle]),
    "bottle_endpoint_new": (_status, [_str, _out_handle]),
    "bottle_endpoint_set_tls": (_status, [_handle, _str, _str, _str]),
    "bottle_endpoint_free": (None, [_handle]),
    "bottle_open_at": (_status, [_handle, _str, _str, _out_handle]),
    "bottle_exec_with": (
        _status,
        [_handle, _str, _handle, ctypes.POINTER(ExecResultStruct)],
    ),
    "bottle_exec_claude_with": (
        _status,
        [
            _handle,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_size_t,
            ctypes.c_bool,
            _handle,
            ctypes.POINTER(ctypes.c_int32),
        ],
    ),
    "bottle_cp_in_with": (_status, [_handle, _str, _str, _handle]),
    "bottle_cp_out_with": (_status, [_handle, _str, _str, _handle]),
    "bottle_machine_name": (_str, [_handle]),
    "bottle_close_checked": (_status, [_handle]),
    "bottle_close_with": (_status, [_handle, _handle]),
    "bottle_call_options_new": (_status, [_out_handle]),
    "bottle_call_options_free": (None, [_handle]),
    "bottle_call_options_set_timeout_ms": (_status, [_handle, ctypes.c_uint64]),
    "bottle_call_options_set_cancel": (_status, [_handle, _handle]),
    "bottle_cancel_new": (_status, [_out_handle]),
    "bottle_cancel_trip": (None, [_handle]),
    "bottle_cancel_is_tripped": (ctypes.c_bool, [_handle]),
    "bottle_cancel_free": (None, [_handle]),
    "bottle_copy_options_new": (_status, [_out_handle]),
    "bottle_copy_options_free": (None, [_handle]),
    "bottle_copy_options_set_mode": (_status, [_handle, ctypes.c_uint32]),
    "bottle_copy_options_set_owner_ids": (_status, [_handle, ctypes.c_uint32, ctypes.c_uint32]),
    "bottle_copy_options_set_owner_user": (_status, [_handle, _str]),
    "bottle_copy_options_set_progress_fn": (_status, [_handle, PROGRESS_FN, ctypes.c_void_p]),
    "bottle_copy_options_set_timeout_ms": (_status, [_handle, ctypes.c_uint64]),
    "bottle_copy_options_set_cancel": (_status, [_handle, _handle]),
    "bottle_exec_options_new": (_status, [_out_handle]),
    "bottle_exec_options_free": (None, [_handle]),
    "bottle_exec_options_set_user": (_status, [_handle, _str]),
    "bottle_exec_options_add_env": (_status, [_handle, _str, _str]),
    "bottle_exec_options_add_secret_env": (_status, [_handle, _str, _str]),
    "bottle_exec_options_set_workdir": (_status, [_handle, _str]),
    "bottle_exec_options_set_timeout_ms": (_status, [_handle, ctypes.c_uint64]),
    "bottle_exec_options_set_stdin": (
        _status,
        [_handle, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t],
    ),
    "bottle_exec_options_set_stdout_fn": (
        _status,
        [_handle, OUTPUT_FN, ctypes.c_void_p, ctypes.c_bool],
    ),
    "bottle_exec_options_set_stderr_fn": (
        _status,
        [_handle, OUTPUT_FN, ctypes.c_void_p, ctypes.c_bool],
    ),
    "bottle_exec_options_set_cancel": (_status, [_handle, _handle]),
    "bottle_exec_result_free": (None, [ctypes.POINTER(ExecResultStruct)]),
    "bottle_launch_options_new": (_status, [_out_handle]),
    "bottle_launch_options_free": (None, [_handle]),
    "bottle_launch_options_set_name": (_status, [_handle, _str]),
    "bottle_launch_options_set_image": (_status, [_handle, _str]),
    "bottle_launch_options_set_cpus": (_status, [_handle, ctypes.c_uint32]),
    "bottle_launch_options_set_memory_mib": (_status, [_handle, ctypes.c_uint32]),
    "bottle_launch_options_set_network": (_status, [_handle, ctypes.c_bool]),
    "bottle_launch_options_add_volume": (_status, [_handle, _str, _str, ctypes.c_bool]),
    "bottle_launch_options_add_env": (_status, [_handle, _str, _str]),
    "bottle_launch_options_set_prompt_path": (_status, [_handle, _str]),
    "bottle_launch_options_set_endpoint": (_status, [_handle, _handle]),
    "bottle_launch_options_set_timeout_ms": (_status, [_handle, ctypes.c_uint64]),
    "bottle_launch_options_set_cancel": (_status, [_handle, _handle]),
    "bottle_launch": (_status, [_handle, _out_handle]),
    "bottle_reap_with": (_status, [_handle, ctypes.POINTER(NamesStruct)]),
    "bottle_reap_at": (_status, [_handle, _handle, ctypes.POINTER(NamesStruct)]),
    "bottle_names_free": (None, [ctypes.POINTER(NamesStruct)]),
    "bottle_last_error": (_str, []),
    "bottle_status_str": (_str, [_status]),
    "bottle_version": (_str, []),
}


def bundled_library() -> Path | None:
    """The library ``pip install`` built into this package, if present.
    setuptools names it like an extension module (``_libbottle`` plus the
    interpreter's extension suffix), though it holds no Python code."""
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_libbottle{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _abi_version(version: str) -> tuple[str, ...]:
    """The part of a version that must match: major.minor while the major
    is 0 (a 0.x library may change its ABI in any minor release, as its
    soname says), else the major."""
    parts = version.split(".")
    return tuple(parts[:2]) if parts[0] == "0" else tuple(parts[:1])


def load() -> ctypes.CDLL:
    """Loads libbottle as the module docstring says, or raises ImportError
    naming what is missing."""
    named = os.environ.get(LIBRARY_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ImportError(
                f"bottle: {LIBRARY_ENV}={named} does not name a file; point it at a "
                "libbottle.so (make lib builds target/release/libbottle.so) or unset it "
                "to use the library built into this package"
            )
    else:
        found = bundled_library()
        if found is None:
            raise ImportError(
                f"bottle: this package has no libbottle: {Path(__file__).parent}/_libbottle"
                f"{importlib.machinery.EXTENSION_SUFFIXES[0]} is missing. Install the package "
                "with `pip install ./bindings/python` (which builds the library with cargo), "
                f"or set {LIBRARY_ENV} to the path of a libbottle.so"
            )
        path = found
    try:
        lib = ctypes.CDLL(str(path.resolve()))
    except OSError as e:
        raise ImportError(f"bottle: cannot load libbottle from {path}: {e}") from e
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            function = getattr(lib, name)
        except AttributeError:
            raise ImportError(
                f"bottle: {path} has no {name}: it is not libbottle {PACKAGE_VERSION} "
                "or a compatible version"
            ) from None
        function.restype = restype
        function.argtypes = argtypes
    version = lib.bottle_version().decode()
    if _abi_version(version) != _abi_version(PACKAGE_VERSION):
        raise ImportError(
            f"bottle: {path} is libbottle {version}, but this package needs "
            f"{'.'.join(_abi_version(PACKAGE_VERSION))}.x"
        )
    return lib


lib = load()
