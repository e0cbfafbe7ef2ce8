"""cp_in with mode, owner and progress, directories, cp_out, and paths as
str, bytes and os.PathLike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import bottle

from .conftest import sh


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    path = tmp_path / "host file: -x"
    path.write_bytes(b"payload\n\0\xff")
    return path


def test_cp_in_defaults(b, host_file):
    b.cp_in(host_file, "/tmp/copied")
    assert sh(b, "stat -c '%a %U:%G %s' /tmp/copied") == "644 root:root 10\n"
    assert b.exec("cat /tmp/copied").stdout == host_file.read_bytes()


@pytest.mark.parametrize("convert", [str, os.fsencode, Path], ids=["str", "bytes", "PathLike"])
def test_paths_as_str_bytes_pathlike(b, host_file, tmp_path, convert):
    b.cp_in(convert(host_file), convert("/tmp/in"))
    out = tmp_path / "out"
    b.cp_out(convert("/tmp/in"), convert(out))
    assert out.read_bytes() == host_file.read_bytes()


def test_non_utf8_host_path(b, tmp_path):
    path = os.fsencode(tmp_path) + b"/caf\xe9"
    with open(path, "wb") as f:
        f.write(b"latin-1 name\n")
    b.cp_in(path, "/tmp/cafe")
    assert sh(b, "cat /tmp/cafe") == "latin-1 name\n"


def test_mode_and_owner_by_name(b, host_file):
    b.cp_in(host_file, "/home/node/task", mode=0o600, owner="node")
    assert sh(b, "stat -c '%a %U:%G' /home/node/task") == "600 node:node\n"
    assert sh(b, "echo more >> ~/task && tail -c 5 ~/task") == "more\n"


def test_owner_by_ids(b, host_file):
    b.cp_in(host_file, "/tmp/ids", owner=(1234, 5678))
    assert sh(b, "stat -c '%u:%g' /tmp/ids") == "1234:5678\n"


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"mode": 0o10000}, bottle.InvalidArgument, "mode"),
        ({"mode": -1}, bottle.InvalidArgument, "mode: -1 is out of range"),
        ({"owner": (-1, 0)}, bottle.InvalidArgument, "uid: -1 is out of range"),
        ({"owner": (0, 2**32 - 1)}, bottle.InvalidArgument, "gid"),
        ({"owner": "nosuchuser"}, bottle.InvalidArgument, "nosuchuser"),
        ({"mode": "644"}, TypeError, "mode must be int"),
    ],
)
def test_bad_copy_options(b, host_file, kwargs, error, needle):
    with pytest.raises(error, match=needle):
        b.cp_in(host_file, "/tmp/never", **kwargs)
    assert b.exec("test -e /tmp/never").returncode == 1


def test_directory_with_progress(b, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"a\n")
    (tree / "sub" / "b.txt").write_bytes(b"bbb\n")
    seen: list[bottle.Progress] = []
    b.cp_in(tree, "/home/node/tree", owner="node", progress=seen.append)
    assert seen[0] == bottle.Progress(0, 2, 0, 6)
    assert seen[-1] == bottle.Progress(2, 2, 6, 6)
    assert len(seen) == 3
    assert sh(b, "cat ~/tree/a.txt ~/tree/sub/b.txt") == "a\nbbb\n"
    assert sh(b, "stat -c %U ~/tree/sub ~/tree/sub/b.txt") == "node\nnode\n"


def test_progress_that_raises_stops_the_copy_and_propagates(b, host_file):
    calls = 0

    def fail(_p):
        nonlocal calls
        calls += 1
        raise RuntimeError("progress failed")

    with pytest.raises(RuntimeError, match="progress failed") as caught:
        b.cp_in(host_file, "/tmp/progress", progress=fail)
    assert calls == 1
    assert isinstance(caught.value.__context__, bottle.Cancelled)
    # It raised before the first (only) file, so nothing was copied.
    assert b.exec("test -e /tmp/progress").returncode == 1


def test_missing_host_file_is_an_os_error(b, tmp_path):
    with pytest.raises(bottle.BottleIOError) as caught:
        b.cp_in(tmp_path / "missing", "/tmp/x")
    assert isinstance(caught.value, OSError)
    assert caught.value.status == 4


def test_cp_out_replaces_whole(b, tmp_path):
    sh(b, "printf 'from the guest' > /tmp/out.txt")
    target = tmp_path / "out.txt"
    target.write_bytes(b"old content that is longer")
    b.cp_out("/tmp/out.txt", target)
    assert target.read_bytes() == b"from the guest"
    with pytest.raises(bottle.SmolvmError):
        b.cp_out("/tmp/no-such-file", target)
    assert target.read_bytes() == b"from the guest"


def test_guest_path_rules(b, host_file):
    with pytest.raises(bottle.InvalidArgument, match="guest_path"):
        b.cp_in(host_file, "relative/path")
    with pytest.raises(bottle.InvalidArgument, match="guest_path"):
        b.cp_out("/tmp/a:b", host_file)
