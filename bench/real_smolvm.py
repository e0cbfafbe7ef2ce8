"""Per-exec cost through the real smolvm CLI driving the stand-in guest.

Prints a Markdown table: the median wall time of one exec of `true` as
node, run four ways, and of a 20 MiB capture. Run by scripts/bench.sh as
`python3 bench/real_smolvm.py LIBBOTTLE.so REAL_SMOLVM_WRAPPER CALLS`.

- v0.1's command: buffered exec of `runuser -l -c` (no guard);
- `-i` alone: the same through `-i`, which streams output of any size;
- `-i` and `--session-command`: what the guard needs from runuser;
- bottle_exec: all of that plus the guard, through the library.
"""

import ctypes
import statistics
import subprocess
import sys
import time

lib_path, smolvm, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
machine = "bench-real"


def run(args, stdin=subprocess.DEVNULL):
    return subprocess.run([smolvm, *args], stdin=stdin, capture_output=True, check=False)


def median_ms(fn, n):
    for _ in range(max(1, n // 10)):
        fn()
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


class Result(ctypes.Structure):
    _fields_ = [
        ("exit_code", ctypes.c_int),
        ("stdout_data", ctypes.c_void_p),
        ("stdout_len", ctypes.c_size_t),
        ("stderr_data", ctypes.c_void_p),
        ("stderr_len", ctypes.c_size_t),
    ]


def main():
    run(["machine", "delete", "--name", machine, "-f"])
    for args in (["machine", "create", "--name", machine], ["machine", "start", "--name", machine]):
        out = run(args)
        if out.returncode != 0:
            sys.exit(f"bench: {' '.join(args)}: {out.stderr.decode()}")
    try:
        lib = ctypes.CDLL(lib_path)
        lib.bottle_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.bottle_exec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Result)]
        lib.bottle_exec_result_free.argtypes = [ctypes.POINTER(Result)]
        lib.bottle_close.argtypes = [ctypes.c_void_p]
        b = ctypes.c_void_p()
        if lib.bottle_open(machine.encode(), None, ctypes.byref(b)) != 0:
            sys.exit("bench: bottle_open failed")

        def bottle_exec(script):
            r = Result()
            if lib.bottle_exec(b, script, None, ctypes.byref(r)) != 0 or r.exit_code != 0:
                sys.exit(f"bench: bottle_exec {script!r} failed")
            size = r.stdout_len
            lib.bottle_exec_result_free(ctypes.byref(r))
            return size

        exec_ = ["machine", "exec", "--name", machine]
        rows = [
            ("v0.1's command: buffered `runuser -l -c`",
             lambda: run([*exec_, "--", "runuser", "-l", "-c", "--", "--", "node", "true"])),
            ("`-i`, `runuser -l -c`",
             lambda: run([*exec_, "-i", "--", "runuser", "-l", "-c", "--", "--", "node", "true"])),
            ("`-i`, `runuser -l --session-command`",
             lambda: run([*exec_, "-i", "--", "runuser", "-l", "--session-command", "--", "--",
                          "node", "true"])),
            ("bottle_exec (`-i`, guard, `--session-command`)", lambda: bottle_exec(b"true")),
        ]
        print("| exec of `true` as node | median |")
        print("| --- | --- |")
        for name, fn in rows:
            print(f"| {name} | {median_ms(fn, calls):.1f} ms |")
        size = 20 << 20
        big = f"head -c {size} /dev/zero".encode()
        ms = median_ms(lambda: bottle_exec(big), 5)
        print(f"| bottle_exec of a 20 MiB stdout (buffered smolvm stops at 11 MiB) | {ms:.0f} ms "
              f"({size / (1 << 20) / (ms / 1000):.0f} MiB/s) |")
        lib.bottle_close(b)
    finally:
        run(["machine", "delete", "--name", machine, "-f"])


main()
