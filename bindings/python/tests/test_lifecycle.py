"""Open and close, launch and its teardown, reap."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import bottle

from .conftest import cli_only, launch, machine_status, open_bottle, sh, unique_name


def test_close_is_idempotent_and_leaves_an_opened_machine(machine):
    b = open_bottle(machine)
    assert b.name == machine
    assert repr(b) == f"<bottle.Bottle {machine!r}>"
    b.close()
    b.close()
    assert b.closed
    assert repr(b) == "<bottle.Bottle closed>"
    assert machine_status(machine) is not None
    with pytest.raises(bottle.InvalidArgument, match="closed"):
        b.cp_out("/etc/hostname", "/tmp/x")


def test_with_closes(machine):
    with open_bottle(machine) as b:
        assert sh(b, "echo in") == "in\n"
    assert b.closed


def test_launch_with_options_and_teardown():
    name = unique_name("launch")
    # A registry image is pulled over the network (smolvm refuses it without).
    with launch(
        name=name,
        cpus=2,
        memory_mib=1024,
        env={"MACHINE_VAR": "from launch"},
        image="agent:1",
        network=True,
    ) as b:
        assert b.name == name
        status = machine_status(name)
        assert status is not None
        assert status["state"] == "running"
        assert sh(b, 'echo "$MACHINE_VAR"') == "from launch\n"
    assert b.closed
    assert machine_status(name) is None


def test_launch_generates_a_name():
    with launch() as b:
        name = b.name
        assert name.startswith("bottle-")
        assert machine_status(name) is not None
    assert machine_status(name) is None


def test_launch_tears_down_on_exception():
    class Boom(Exception):
        pass

    name = unique_name("boom")
    launched: list[bottle.Bottle] = []

    def use_and_fail() -> None:
        with launch(name=name) as b:
            launched.append(b)
            assert machine_status(name) is not None
            raise Boom

    with pytest.raises(Boom):
        use_and_fail()
    assert launched[0].closed
    assert machine_status(name) is None


def test_launch_that_does_not_start_leaves_nothing():
    name = unique_name("fail")
    with pytest.raises(bottle.SmolvmError):
        # More memory than any host has: the machine does not start.
        launch(name=name, memory_mib=4_000_000_000)
    assert machine_status(name) is None


def test_launch_volume_and_prompt_path(tmp_path):
    (tmp_path / "shared.txt").write_text("shared\n")
    with launch(volumes=[(tmp_path, "/mnt/shared", True)], prompt_path="/p.md") as b:
        assert sh(b, "cat /mnt/shared/shared.txt", user="root") == "shared\n"
        assert b.exec_claude([], tty=False) == 0
        assert (
            sh(b, "tr '\\0' ' ' < ~/.claude-standin/argv") == "--append-system-prompt-file /p.md "
        )


@cli_only
def test_reap_deletes_the_machine_of_a_killed_process():
    name = unique_name("orphan")
    # A process that launches a machine and dies without closing it.
    script = textwrap.dedent(
        f"""
        import os, bottle
        b = bottle.launch(name={name!r})
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert machine_status(name) is not None
    with bottle.launch() as mine:
        removed = bottle.reap()
        assert name in removed
        assert mine.name not in removed
        assert machine_status(mine.name) is not None
    assert machine_status(name) is None
    assert name not in bottle.reap()


def test_an_unclosed_bottle_is_closed_when_collected():
    name = unique_name("dropped")
    b = launch(name=name)
    assert machine_status(name) is not None
    with pytest.warns(ResourceWarning, match="unclosed"):
        del b
    assert machine_status(name) is None
