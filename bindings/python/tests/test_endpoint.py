"""Endpoints: making one, what it refuses, its lifetime; and, with a
``smolvm serve`` (``BOTTLE_TEST_ENDPOINT``, see tests/with-serve), opening,
launching and reaping at it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import bottle

from .conftest import at_endpoint, endpoint, machine_status, open_bottle, sh, unique_name
from .test_claude import TRICKY, recorded_argv

needs_serve = pytest.mark.skipif(
    not at_endpoint(),
    reason="needs a smolvm serve: run under tests/with-serve (BOTTLE_TEST_ENDPOINT)",
)


def serve() -> bottle.Endpoint:
    ep = endpoint()
    assert ep is not None
    return ep


@pytest.mark.parametrize(
    "url",
    [
        "",
        "smolvm.sock",
        "unix:relative/smolvm.sock",
        "ftp://127.0.0.1:1",
        "https://host:99999",
        "https://host:1/path",
        # Plain http only to a loopback address: serve has no other
        # authentication.
        "http://192.0.2.1:8080",
    ],
)
def test_a_bad_url_is_invalid_argument_naming_url(url):
    with pytest.raises(bottle.InvalidArgument) as caught:
        bottle.Endpoint(url)
    assert caught.value.op == "endpoint"
    assert caught.value.message.startswith("url: "), caught.value.message


def test_good_urls_contact_nothing():
    for url in (
        "unix:/nonexistent/smolvm.sock",
        "unix:///nonexistent/smolvm.sock",
        "http://127.0.0.1:1",
        "https://localhost:1",
    ):
        with bottle.Endpoint(url) as ep:
            assert ep.url == url
            assert repr(ep) == f"<bottle.Endpoint {url!r}>"


def test_tls_on_a_unix_endpoint_is_refused(tmp_path):
    pem = tmp_path / "x.pem"
    pem.write_text("not used\n")
    with pytest.raises(bottle.InvalidArgument, match=r"TLS is set only on an https:// endpoint"):
        bottle.Endpoint("unix:/nonexistent/smolvm.sock", ca_file=pem, cert_file=pem, key_file=pem)
    with pytest.raises(bottle.InvalidArgument, match=r"TLS is set only on an https:// endpoint"):
        bottle.Endpoint("http://127.0.0.1:1", ca_file=pem, cert_file=pem, key_file=pem)


def test_tls_files_come_all_three_or_none(tmp_path):
    pem = tmp_path / "x.pem"
    with pytest.raises(bottle.InvalidArgument) as c:
        bottle.Endpoint("https://localhost:1", ca_file=pem)
    assert c.value.message.startswith("cert_file: required with ca_file")
    with pytest.raises(bottle.InvalidArgument) as c:
        bottle.Endpoint("https://localhost:1", cert_file=pem, key_file=pem)
    assert c.value.message.startswith("ca_file: required with cert_file")


def test_tls_files_are_read_at_once(tmp_path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(bottle.BottleIOError, match="ca_file") as caught:
        bottle.Endpoint("https://localhost:1", ca_file=missing, cert_file=missing, key_file=missing)
    assert str(missing) in caught.value.message
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    with pytest.raises(bottle.InvalidArgument) as refused:
        bottle.Endpoint("https://localhost:1", ca_file=not_pem, cert_file=not_pem, key_file=not_pem)
    assert refused.value.message.startswith("ca_file: ")


def test_https_without_its_files_is_refused_before_anything_runs():
    ep = bottle.Endpoint("https://localhost:1")
    with pytest.raises(bottle.InvalidArgument, match="needs its certificates"):
        bottle.Bottle("m", endpoint=ep)
    with pytest.raises(bottle.InvalidArgument, match="needs its certificates"):
        bottle.launch(endpoint=ep)


def test_an_unreachable_serve_is_an_io_error_at_the_first_operation():
    ep = bottle.Endpoint("unix:/nonexistent/smolvm.sock")
    with bottle.Bottle("m", endpoint=ep) as b:
        with pytest.raises(bottle.BottleIOError) as caught:
            b.exec("true")
        assert caught.value.op == "exec"
        assert "unix:/nonexistent/smolvm.sock" in caught.value.message


def test_close_is_idempotent_and_a_closed_endpoint_is_refused():
    ep = bottle.Endpoint("unix:/nonexistent/smolvm.sock")
    ep.close()
    ep.close()
    assert ep.closed
    assert repr(ep) == "<bottle.Endpoint 'unix:/nonexistent/smolvm.sock' closed>"
    with pytest.raises(bottle.InvalidArgument, match="endpoint is closed"):
        bottle.Bottle("m", endpoint=ep)
    with pytest.raises(bottle.InvalidArgument, match="endpoint is closed"):
        bottle.launch(endpoint=ep)
    with pytest.raises(bottle.InvalidArgument, match="endpoint is closed"):
        bottle.reap_at(ep)
    with bottle.Endpoint("unix:/nonexistent/smolvm.sock") as ep:
        pass
    assert ep.closed


def test_endpoint_must_be_an_endpoint():
    with pytest.raises(TypeError, match="endpoint must be Endpoint, not str"):
        bottle.Bottle("m", endpoint="unix:/x.sock")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="endpoint must be Endpoint, not str"):
        bottle.launch(endpoint="unix:/x.sock")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="endpoint must be Endpoint, not NoneType"):
        bottle.reap_at(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="url must be str"):
        bottle.Endpoint(b"unix:/x.sock")  # type: ignore[arg-type]


# What every test below checks is done at the serve of tests/with-serve.

EVERY_BYTE = bytes(range(256))


@needs_serve
def test_open_at_the_endpoint_and_exec_byte_exact(machine):
    # An endpoint of its own, closed at once: the bottle keeps what it
    # needs.
    url = os.environ["BOTTLE_TEST_ENDPOINT"]
    tls = os.environ.get("BOTTLE_TEST_TLS_DIR")
    files = (
        {}
        if not tls
        else {
            "ca_file": Path(tls) / "ca.pem",
            "cert_file": Path(tls) / "client.pem",
            "key_file": Path(tls) / "client.key",
        }
    )
    with bottle.Endpoint(url, **files) as ep:
        b = bottle.Bottle(machine, endpoint=ep)
    with b:
        r = b.exec("cat; printf '\\377\\000x' >&2; exit 3", stdin=EVERY_BYTE * 3)
        assert r == (3, EVERY_BYTE * 3, b"\xff\x00x")
        script = "printf '" + "".join(f"\\{c:03o}" for c in EVERY_BYTE) + "'"
        assert b.exec(script).stdout == EVERY_BYTE
        assert sh(b, "id -un; pwd") == "node\n/home/node\n"


@needs_serve
def test_launch_at_the_endpoint_and_close():
    name = unique_name("eplaunch")
    with bottle.launch(name=name, env={"MACHINE_VAR": "at serve"}, endpoint=serve()) as b:
        assert b.name == name
        status = machine_status(name)
        assert status is not None
        assert status["state"] == "running"
        assert sh(b, 'echo "$MACHINE_VAR"') == "at serve\n"
    assert b.closed
    assert machine_status(name) is None


@needs_serve
def test_async_launch_at_the_endpoint():
    name = unique_name("eplaunch")

    async def main() -> bottle.ExecResult:
        async with bottle.AsyncBottle.launch(name=name, endpoint=serve()) as b:
            return await b.exec("echo up")

    assert asyncio.run(main()) == (0, b"up\n", b"")
    assert machine_status(name) is None


@needs_serve
def test_claude_on_a_tty_runs_on_serves_terminal_with_its_argv(machine, capfd):
    with open_bottle(machine, prompt_path="/home/node/prompt.md") as b:
        assert b.exec_claude(["-p", "hi", *TRICKY], tty=True) == 0
        assert recorded_argv(b) == [
            "--append-system-prompt-file",
            "/home/node/prompt.md",
            "-p",
            "hi",
            *TRICKY,
        ]
        # As node, on a guest terminal (through the CLI, the stand-in's -t
        # allocates none), its output on this process's stdout.
        assert sh(b, "cat ~/.claude-standin/run") == "node\n/home/node\ntty\n"
        assert f"claude stand-in: {len(TRICKY) + 4} arguments" in capfd.readouterr().out
        sh(b, "echo 9 > /tmp/claude-exit", user="root")
        assert b.exec_claude([], tty=True) == 9
        assert recorded_argv(b) == ["--append-system-prompt-file", "/home/node/prompt.md"]
        # Without a tty, as through the CLI.
        assert b.exec_claude(["x"], tty=False) == 9
        assert "notty" in sh(b, "cat ~/.claude-standin/run")


@needs_serve
def test_reap_at_deletes_the_machine_of_a_killed_process(tmp_path, monkeypatch):
    # The launch records live under $XDG_STATE_HOME: the test's own.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    name = unique_name("eporphan")
    # A process that launches a machine at the serve and dies without
    # closing it (it makes its endpoint from the same variables).
    script = textwrap.dedent(
        f"""
        import os, bottle
        from tests.conftest import endpoint
        b = bottle.launch(name={name!r}, endpoint=endpoint())
        os._exit(0)
        """
    )
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert machine_status(name) is not None
    assert (tmp_path / "state" / "libbottle" / "serve").is_dir()
    ep = serve()
    with bottle.launch(endpoint=ep) as mine:
        removed = bottle.reap_at(ep)
        assert name in removed
        assert mine.name not in removed
        assert machine_status(mine.name) is not None
    assert machine_status(name) is None
    assert name not in bottle.reap_at(ep, timeout=30)
    assert asyncio.run(bottle.areap_at(ep)) == []
