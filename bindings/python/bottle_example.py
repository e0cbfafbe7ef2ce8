"""libbottle from Python with nothing but the standard library's ctypes.

    python3 bottle_example.py MACHINE [SCRIPT]

Finds the library through $BOTTLE_LIB, else the in-tree build
(target/release/libbottle.so), else the system's libbottle.so.0.1.
"""

import ctypes
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
IN_TREE = os.path.join(HERE, "..", "..", "target", "release", "libbottle.so")


class ExecResult(ctypes.Structure):
    """struct bottle_exec_result. The buffers are bytes with a length, not
    C strings: read them with ctypes.string_at(ptr, len)."""

    _fields_ = [
        ("exit_code", ctypes.c_int32),
        ("stdout_data", ctypes.POINTER(ctypes.c_uint8)),
        ("stdout_len", ctypes.c_size_t),
        ("stderr_data", ctypes.POINTER(ctypes.c_uint8)),
        ("stderr_len", ctypes.c_size_t),
    ]


class BottleError(Exception):
    def __init__(self, lib, op, status):
        message = lib.bottle_last_error()
        self.status = status
        super().__init__(
            "%s: %s: %s"
            % (op, lib.bottle_status_str(status).decode(), message.decode() if message else "")
        )


def load(path=None):
    """The library with every function's signature declared, so ctypes
    converts and checks arguments instead of guessing."""
    if path is None:
        path = os.environ.get("BOTTLE_LIB") or (
            IN_TREE if os.path.exists(IN_TREE) else "libbottle.so.0.1"
        )
    lib = ctypes.CDLL(path)
    handle = ctypes.c_void_p
    status = ctypes.c_int
    lib.bottle_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(handle)]
    lib.bottle_open.restype = status
    lib.bottle_exec.argtypes = [handle, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ExecResult)]
    lib.bottle_exec.restype = status
    lib.bottle_exec_result_free.argtypes = [ctypes.POINTER(ExecResult)]
    lib.bottle_exec_result_free.restype = None
    lib.bottle_close.argtypes = [handle]
    lib.bottle_close.restype = None
    lib.bottle_last_error.argtypes = []
    lib.bottle_last_error.restype = ctypes.c_char_p
    lib.bottle_status_str.argtypes = [status]
    lib.bottle_status_str.restype = ctypes.c_char_p
    lib.bottle_version.argtypes = []
    lib.bottle_version.restype = ctypes.c_char_p
    return lib


def run(lib, machine, script, user=None):
    """Opens a bottle, runs `script`, and returns (exit_code, stdout, stderr)
    as Python values; the C handle and buffers are released on every path.
    ctypes releases the GIL during each call, and bottle_last_error() is read
    right after the failing call on the same thread, as the C API requires."""
    b = ctypes.c_void_p()
    status = lib.bottle_open(machine.encode(), None, ctypes.byref(b))
    if status != 0:
        raise BottleError(lib, "open", status)
    try:
        r = ExecResult()
        status = lib.bottle_exec(b, script.encode(), user.encode() if user else None, ctypes.byref(r))
        if status != 0:
            raise BottleError(lib, "exec", status)
        try:
            return (
                r.exit_code,
                ctypes.string_at(r.stdout_data, r.stdout_len),
                ctypes.string_at(r.stderr_data, r.stderr_len),
            )
        finally:
            lib.bottle_exec_result_free(ctypes.byref(r))
    finally:
        lib.bottle_close(b)


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    script = argv[2] if len(argv) == 3 else 'echo "hello from $(id -un)"; printf "\\001\\000\\377" >&2; exit 4'
    lib = load()
    print("libbottle", lib.bottle_version().decode())
    try:
        code, out, err = run(lib, argv[1], script)
    except BottleError as e:
        print("bottle:", e, file=sys.stderr)
        return 1
    print("exit code:", code)
    print("stdout:", repr(out))
    print("stderr:", repr(err))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
