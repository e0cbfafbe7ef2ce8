"""Which library the package loads, its version, and the README examples."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bottle
from bottle import _native

ROOT = Path(__file__).resolve().parents[3]


def cargo_version() -> str:
    found = re.search(r'^version = "(.+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    assert found
    return found.group(1)


def test_versions_agree():
    assert bottle.version() == cargo_version()
    assert bottle.__version__ == cargo_version()
    pyproject = (ROOT / "bindings/python/pyproject.toml").read_text()
    assert f'\nversion = "{cargo_version()}"\n' in pyproject


def test_the_bundled_library_is_used_and_has_no_debug_info():
    bundled = _native.bundled_library()
    assert bundled is not None
    assert bundled.parent == Path(bottle.__file__).parent
    if not os.environ.get(_native.LIBRARY_ENV):
        maps = Path("/proc/self/maps").read_text()
        assert str(bundled.resolve()) in maps
    sections = subprocess.run(
        ["readelf", "-S", "-W", str(bundled)], capture_output=True, text=True, check=True
    ).stdout
    assert ".dynsym" in sections
    assert ".debug_info" not in sections


def load_with(library: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, _native.LIBRARY_ENV: library}
    return subprocess.run(
        [sys.executable, "-c", "import bottle; print(bottle.version())"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_bottle_library_names_the_library():
    in_tree = ROOT / "target/release/libbottle.so"
    if not in_tree.is_file():
        pytest.fail("target/release/libbottle.so is missing: run `make lib` first")
    done = load_with(str(in_tree))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{cargo_version()}\n"


def test_a_missing_library_is_named():
    done = load_with("/nonexistent/libbottle.so")
    assert done.returncode == 1
    assert "ImportError: bottle: BOTTLE_LIBRARY=/nonexistent/libbottle.so does not name a file" in (
        done.stderr
    )


def test_another_library_is_refused():
    libc = next(
        p for p in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6") if Path(p).exists()
    )
    done = load_with(libc)
    assert done.returncode == 1
    assert "has no bottle_open: it is not libbottle" in done.stderr


def test_abi_versions():
    assert _native._abi_version("0.1.7") == ("0", "1")
    assert _native._abi_version("0.2.0") != _native._abi_version("0.1.0")
    assert _native._abi_version("1.4.2") == ("1",)


@pytest.mark.parametrize("readme", ["README.md", "bindings/python/README.md"])
def test_readme_example_runs(readme, machine):
    text = (ROOT / readme).read_text()
    example = re.search(r"```python\n(.*?)```", text, re.S)
    assert example, f"{readme} has no Python example"
    code = example.group(1)
    assert '"agent-1"' in code
    done = subprocess.run(
        [sys.executable, "-c", code.replace('"agent-1"', repr(machine))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "hello from node" in done.stdout
