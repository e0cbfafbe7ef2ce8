"""Every status code is an exception class that also is the matching
built-in; messages and statuses come from the library."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

import bottle
from bottle import _errors

from .conftest import not_found, open_bottle, smolvm

HEADER = Path(__file__).resolve().parents[3] / "include" / "bottle.h"


def test_hierarchy():
    assert issubclass(bottle.InvalidArgument, ValueError)
    assert issubclass(bottle.SmolvmNotFound, FileNotFoundError)
    assert issubclass(bottle.BottleIOError, OSError)
    assert issubclass(bottle.Timeout, TimeoutError)
    for cls in (
        bottle.InvalidArgument,
        bottle.SmolvmNotFound,
        bottle.SmolvmError,
        bottle.BottleIOError,
        bottle.Panic,
        bottle.Timeout,
        bottle.Cancelled,
        bottle.Unsupported,
    ):
        assert issubclass(cls, bottle.BottleError)


def test_every_status_in_the_header_has_its_class():
    codes = dict(re.findall(r"^\s+BOTTLE_(\w+) = (\d+),", HEADER.read_text(), re.M))
    assert codes.pop("OK") == "0"
    classes = {
        "ERR_INVALID_ARGUMENT": bottle.InvalidArgument,
        "ERR_SMOLVM_NOT_FOUND": bottle.SmolvmNotFound,
        "ERR_SMOLVM": bottle.SmolvmError,
        "ERR_IO": bottle.BottleIOError,
        "ERR_PANIC": bottle.Panic,
        "ERR_TIMEOUT": bottle.Timeout,
        "ERR_CANCELLED": bottle.Cancelled,
        "ERR_UNSUPPORTED": bottle.Unsupported,
    }
    assert set(codes) == set(classes), "a status code without an exception class"
    for name, number in codes.items():
        assert classes[name].status == int(number), name


def test_unsupported_is_mapped_from_its_status():
    # What Endpoint raises for TLS files with a libbottle built without TLS.
    with pytest.raises(bottle.Unsupported) as caught:
        _errors.check("endpoint", 8)
    assert caught.value.status == 8
    assert str(caught.value).startswith("endpoint: not supported by this build of libbottle")


def test_an_unknown_status_is_still_a_bottle_error():
    with pytest.raises(bottle.BottleError) as caught:
        _errors.check("future", 99)
    assert type(caught.value) is bottle.BottleError
    assert caught.value.status == 99
    assert "unknown status" in str(caught.value)


def test_invalid_argument_names_the_argument():
    with pytest.raises(bottle.InvalidArgument) as caught:
        bottle.Bottle("-rm")
    e = caught.value
    assert e.status == 1
    assert e.op == "open"
    assert e.message.startswith("machine_name: ")
    assert str(e) == f"open: invalid argument: {e.message}"
    with pytest.raises(bottle.InvalidArgument, match="prompt_path"):
        bottle.Bottle("ok", prompt_path="relative.md")
    with pytest.raises(TypeError, match="machine_name must be str"):
        bottle.Bottle(b"bytes-name")  # type: ignore[arg-type]


def test_smolvm_not_found(monkeypatch):
    monkeypatch.setenv("BOTTLE_SMOLVM", "/nonexistent/smolvm")
    with pytest.raises(bottle.SmolvmNotFound) as caught:
        bottle.Bottle("agent-1")
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.status == 2
    assert "/nonexistent/smolvm" in str(caught.value)
    with pytest.raises(bottle.SmolvmNotFound):
        bottle.reap()


def test_missing_and_stopped_machines_are_smolvm_errors(machine):
    with open_bottle("py-no-such-machine") as b:
        with pytest.raises(bottle.SmolvmError, match=not_found("py-no-such-machine")) as caught:
            b.exec("true")
        assert caught.value.status == 3
    assert smolvm("machine", "stop", "--name", machine).returncode == 0
    with open_bottle(machine) as b, pytest.raises(bottle.SmolvmError, match="not running"):
        b.exec_claude([], tty=False)


def test_messages_are_per_thread(b):
    """Each failure carries its own thread's message, read right after the
    call, though both fail at the same time."""
    messages: dict[str, set[str]] = {"user": set(), "host": set()}
    barrier = threading.Barrier(2)

    def fail(kind: str) -> None:
        barrier.wait()
        for _ in range(50):
            try:
                if kind == "user":
                    b.exec("true", user="-x")
                else:
                    b.cp_in("/nonexistent/file", "/tmp/x")
            except bottle.BottleError as e:
                messages[kind].add(e.message)

    threads = [threading.Thread(target=fail, args=(k,)) for k in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(messages["user"]) == 1
    assert next(iter(messages["user"])).startswith("user:")
    assert len(messages["host"]) == 1
    assert "/nonexistent/file" in next(iter(messages["host"]))
