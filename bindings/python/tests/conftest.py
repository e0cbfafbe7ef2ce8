"""Fixtures: the tests run against the stand-in smolvm
(tests/smolvm-standin), which runs each machine's commands for real in a
chroot with a node user and a recording claude. They fail, never skip, when
it is not there: `make test-python` from the repository root sets it up.

With ``BOTTLE_TEST_ENDPOINT`` set (``tests/with-serve`` sets it), the
bottles the tests open and launch are at that ``smolvm serve`` instead of
through the CLI, as in the Rust tests (tests/common/mod.rs); machines are
still made and inspected with the CLI, which shares them with the serve."""

from __future__ import annotations

import functools
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bottle

_counter = itertools.count()


def standin() -> str:
    """The stand-in smolvm's path, or a failure saying why the tests cannot
    run here."""
    path = os.environ.get("BOTTLE_SMOLVM")
    if not path:
        pytest.fail(
            "BOTTLE_SMOLVM is not set: run `make test-python` from the repository root, "
            "or set it to the stand-in smolvm, target/debug/smolvm-standin"
        )
    if not os.environ.get("SMOLVM_STANDIN_HOME"):
        pytest.fail("SMOLVM_STANDIN_HOME is not set: the stand-in keeps its machines there")
    if not Path(path).is_file():
        pytest.fail(f"the stand-in smolvm {path} is missing: cargo build -p smolvm-standin")
    if os.geteuid() != 0:
        pytest.fail("the stand-in smolvm needs root (mount namespaces and chroot)")
    return path


def at_endpoint() -> bool:
    """Whether the tests run at a ``smolvm serve`` (``BOTTLE_TEST_ENDPOINT``)."""
    return bool(os.environ.get("BOTTLE_TEST_ENDPOINT"))


@functools.cache
def endpoint() -> bottle.Endpoint | None:
    """The ``smolvm serve`` the tests go through instead of the CLI, when
    ``BOTTLE_TEST_ENDPOINT`` names one; for an ``https://`` one,
    ``BOTTLE_TEST_TLS_DIR`` holds ``ca.pem``, ``client.pem`` and
    ``client.key``. One endpoint serves the whole run."""
    url = os.environ.get("BOTTLE_TEST_ENDPOINT")
    if not url:
        return None
    tls = os.environ.get("BOTTLE_TEST_TLS_DIR")
    if not tls:
        return bottle.Endpoint(url)
    d = Path(tls)
    return bottle.Endpoint(
        url, ca_file=d / "ca.pem", cert_file=d / "client.pem", key_file=d / "client.key"
    )


cli_only = pytest.mark.skipif(
    at_endpoint(),
    reason="CLI only: bottle.reap() finds machines by smolvm labels, which serve does not keep "
    "(reap_at is tested in test_endpoint.py)",
)
"""Marks a test of labels-based reaping, which has no endpoint form."""


@pytest.fixture(autouse=True, scope="session")
def _own_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A launch at an endpoint records its machine under
    ``$XDG_STATE_HOME`` (for ``reap_at``): the run's own, so that the
    host's ``~/.local/state`` is left as it was."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


def open_bottle(name: str, prompt_path: str | None = None) -> bottle.Bottle:
    """``bottle.Bottle(name, prompt_path)``, at the endpoint under test if
    there is one."""
    return bottle.Bottle(name, prompt_path, endpoint=endpoint())


def launch(**kwargs: Any) -> bottle.Bottle:
    """``bottle.launch(**kwargs)``, at the endpoint under test if there is
    one."""
    return bottle.launch(endpoint=endpoint(), **kwargs)


def not_found(name: str) -> str:
    """How smolvm says it has no machine ``name``: the CLI's words, or
    serve's."""
    return f"machine '{name}' not found" if at_endpoint() else f"vm not found: {name}"


def smolvm(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the smolvm under test directly, for setup the package does not
    do. The real smolvm can fail at once with "database is locked" when
    several smolvms change its machine database together (the library
    waits that out too): tried again then."""
    pause = 0.01
    while True:
        done = subprocess.run([standin(), *args], capture_output=True, text=True, check=False)
        if "database is locked" not in done.stderr or pause > 2:
            return done
        time.sleep(pause)
        pause *= 2


def machine_status(name: str) -> dict[str, object] | None:
    """`smolvm machine status --json` of name, or None if smolvm does not
    know the machine."""
    done = smolvm("machine", "status", "--name", name, "--json")
    return json.loads(done.stdout) if done.returncode == 0 else None


def processes_with(needle: str, *, guests: bool = False) -> list[str]:
    """The processes with needle as one whole argument: smolvms left
    running for a machine. At an endpoint, serve's guest of the machine
    (the stand-in's ``_api-guest --name NAME``, kept across requests as
    long as the machine runs, as a VM would be) is the machine itself, not
    one of them; ``guests=True`` counts it too."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"\0" + needle.encode() + b"\0" not in b"\0" + cmdline:
            continue
        if not guests and b"\0_api-guest\0" in b"\0" + cmdline:
            continue
        shown = cmdline.replace(b"\0", b" ").decode(errors="replace")
        found.append(f"{entry.name}: {shown}")
    return found


def unique_name(kind: str = "m") -> str:
    return f"py-{os.getpid()}-{kind}{next(_counter)}"


@pytest.fixture
def machine() -> Iterator[str]:
    """A new running stand-in machine, deleted after the test."""
    name = unique_name()
    for step in ("create", "start"):
        done = smolvm("machine", step, "--name", name)
        assert done.returncode == 0, f"machine {step} {name}: {done.stderr}"
    yield name
    done = smolvm("machine", "delete", "--name", name, "-f")
    assert done.returncode == 0, f"delete {name}: {done.stderr}"
    assert not processes_with(name), "smolvm processes left behind"
    # serve sees the machine gone within a second or so, and ends its guest.
    deadline = time.monotonic() + 10
    while processes_with(name, guests=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(name, guests=True), "serve's guest outlived the machine"


@pytest.fixture
def b(machine: str) -> Iterator[bottle.Bottle]:
    """A Bottle on a new running machine (at the endpoint under test, if
    any), closed before the machine goes."""
    with open_bottle(machine) as opened:
        yield opened


def sh(b: bottle.Bottle, script: str, **kwargs: object) -> str:
    """Runs script, asserts exit 0, returns its stdout as text."""
    r = b.exec(script, **kwargs)  # type: ignore[arg-type]
    assert r.returncode == 0, f"{script!r}: exit {r.returncode}, stderr {r.stderr!r}"
    return r.stdout.decode()
