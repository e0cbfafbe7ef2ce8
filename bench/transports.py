"""The two transports side by side: one machine, driven through the smolvm
CLI and through `smolvm serve` on its unix socket.

Prints Markdown tables: per-exec wall time of `true` as node (median, p99)
and the host CPU each exec costs: the caller's own, and smolvm's (the CLI
processes the caller starts, or the serve process); then execs per second
from 1 to 16 threads sharing one bottle. Run by scripts/bench.sh as
`python3 bench/transports.py LIBBOTTLE.so SMOLVM CALLS SCALING_CALLS`, with
SMOLVM the stand-in or tests/real-smolvm (the real smolvm 1.9.2 and the
stand-in guest, which runs as a process of its own: then smolvm's CPU is
all host overhead; with the stand-in CLI it includes the guest's work).
"""

import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

lib_path, smolvm, calls, scaling_calls = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
machine = "bench-transports"
# The CLI transport finds smolvm here when the bottle is opened.
os.environ["BOTTLE_SMOLVM"] = smolvm


class Result(ctypes.Structure):
    _fields_ = [
        ("exit_code", ctypes.c_int),
        ("stdout_data", ctypes.c_void_p),
        ("stdout_len", ctypes.c_size_t),
        ("stderr_data", ctypes.c_void_p),
        ("stderr_len", ctypes.c_size_t),
    ]


lib = ctypes.CDLL(lib_path)
P = ctypes.POINTER(ctypes.c_void_p)
lib.bottle_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, P]
lib.bottle_endpoint_new.argtypes = [ctypes.c_char_p, P]
lib.bottle_open_at.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, P]
lib.bottle_exec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Result)]
lib.bottle_exec_result_free.argtypes = [ctypes.POINTER(Result)]
lib.bottle_close.argtypes = [ctypes.c_void_p]
lib.bottle_endpoint_free.argtypes = [ctypes.c_void_p]
lib.bottle_last_error.restype = ctypes.c_char_p


def smolvm_run(*args):
    return subprocess.run([smolvm, *args], capture_output=True, check=False)


def exec_true(b):
    r = Result()
    if lib.bottle_exec(b, b"true", None, ctypes.byref(r)) != 0 or r.exit_code != 0:
        sys.exit(f"bench: bottle_exec failed: {lib.bottle_last_error()!r}")
    lib.bottle_exec_result_free(ctypes.byref(r))


def cpu_seconds(who):
    u = resource.getrusage(who)
    return u.ru_utime + u.ru_stime


def proc_cpu(pid):
    """CPU seconds of process `pid` itself (not its guests)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:13]) / tick


def per_call(b, n, serve_pid):
    for _ in range(max(1, n // 10)):
        exec_true(b)
    samples = []
    self0 = cpu_seconds(resource.RUSAGE_SELF)
    children0 = cpu_seconds(resource.RUSAGE_CHILDREN)
    serve0 = proc_cpu(serve_pid)
    for _ in range(n):
        t = time.perf_counter()
        exec_true(b)
        samples.append((time.perf_counter() - t) * 1000)
    own = cpu_seconds(resource.RUSAGE_SELF) - self0
    smolvm_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - children0 + proc_cpu(serve_pid) - serve0
    samples.sort()
    return (statistics.median(samples), samples[int(len(samples) * 0.99) - 1],
            own / n * 1000, smolvm_cpu / n * 1000)


def throughput(b, threads, total):
    each = total // threads

    def work():
        for _ in range(each):
            exec_true(b)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    t = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return each * threads / (time.perf_counter() - t)


def main():
    smolvm_run("machine", "delete", "--name", machine, "-f")
    for args in (("machine", "create", "--name", machine), ("machine", "start", "--name", machine)):
        out = smolvm_run(*args)
        if out.returncode != 0:
            sys.exit(f"bench: {' '.join(args)}: {out.stderr.decode()}")
    work = tempfile.mkdtemp(prefix="bottle-bench-")
    sock = os.path.join(work, "serve.sock")
    env = dict(os.environ)
    if smolvm.endswith("real-smolvm"):
        # The real serve shares the CLI's records through the scratch HOME;
        # its rollout listener needs a port of its own.
        import socket
        env["SMOLVM_DATA_DIR"] = os.environ.get("BOTTLE_REAL_SMOLVM_HOME") or os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(smolvm))), "target/real-smolvm-home")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            env["SMOLVM_GUEST_ROLLOUT_HOST_PORT"] = str(s.getsockname()[1])
    serve = subprocess.Popen([smolvm, "serve", "start", "-l", f"unix://{sock}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        cli, at = ctypes.c_void_p(), ctypes.c_void_p()
        ep = ctypes.c_void_p()
        assert lib.bottle_open(machine.encode(), None, ctypes.byref(cli)) == 0
        assert lib.bottle_endpoint_new(f"unix:{sock}".encode(), ctypes.byref(ep)) == 0
        assert lib.bottle_open_at(ep, machine.encode(), None, ctypes.byref(at)) == 0
        lib.bottle_endpoint_free(ep)

        print("| exec of `true` as node | median | p99 | caller's CPU per exec | smolvm's CPU per exec | host CPU per exec |")
        print("| --- | --- | --- | --- | --- | --- |")
        rows = []
        for name, b in (("CLI (a smolvm process per exec)", cli), ("serve, unix socket", at)):
            med, p99, own, smolvm_cpu = per_call(b, calls, serve.pid)
            rows.append(own + smolvm_cpu)
            print(f"| {name} | {med:.1f} ms | {p99:.1f} ms | {own:.2f} ms | {smolvm_cpu:.2f} ms "
                  f"| {own + smolvm_cpu:.2f} ms |")
        print()
        print(f"serve's host CPU per exec is {rows[1] / rows[0]:.2f} of the CLI's.")
        print()
        print("| threads | CLI execs/s | serve execs/s |")
        print("| --- | --- | --- |")
        for threads in (1, 2, 4, 8, 16):
            c = throughput(cli, threads, scaling_calls)
            s = throughput(at, threads, scaling_calls)
            print(f"| {threads} | {c:.0f} | {s:.0f} |")
        lib.bottle_close(cli)
        lib.bottle_close(at)
    finally:
        serve.terminate()
        serve.wait()
        smolvm_run("machine", "delete", "--name", machine, "-f")


main()
