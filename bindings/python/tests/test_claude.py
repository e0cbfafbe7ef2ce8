"""exec_claude: claude's argv byte for byte, the prompt file, the tty, the
exit status."""

from __future__ import annotations

import pytest

import bottle

from .conftest import open_bottle, sh

# Strings that break naive quoting (the same list as the C, Go and Rust tests).
TRICKY = [
    "",
    " ",
    "two words",
    "it's",
    'say "hi"',
    "'\"'\"",
    "$HOME ${USER} $(id -u)",
    "`id`",
    "line one\nline two\n",
    "*",
    "back\\slash\\\\ \\n \\",
    "héllo wörld ✓ 日本語 🙂",
    "-p",
    "--dangerously-skip-permissions",
    "--",
    "a;b|c&d>e<f",
    "~",
    "#comment",
    "\x7f\x01\x1b[31m",
]


def recorded_argv(b: bottle.Bottle) -> list[str]:
    out = sh(b, "cat ~/.claude-standin/argv")
    assert out == "" or out.endswith("\0"), out
    return out.split("\0")[:-1]


def test_argv_reaches_claude_byte_for_byte(b, capfd):
    code = b.exec_claude(["-p", "hi", *TRICKY], tty=False)
    assert code == 0
    assert recorded_argv(b) == ["-p", "hi", *TRICKY]
    assert f"claude stand-in: {len(TRICKY) + 2} arguments" in capfd.readouterr().out


def test_a_tty_still_passes_argv_byte_for_byte(b, capfd):
    # Through the CLI smolvm gets -t; at an endpoint claude runs on serve's
    # interactive route (test_endpoint.py checks that it has a terminal).
    assert b.exec_claude(["a b", "'"], tty=True) == 0
    assert recorded_argv(b) == ["a b", "'"]
    assert b.exec_claude(["-p", "hi", *TRICKY], tty=True) == 0
    assert recorded_argv(b) == ["-p", "hi", *TRICKY]
    sh(b, "echo 5 > /tmp/claude-exit", user="root")
    assert b.exec_claude([], tty=True) == 5
    assert recorded_argv(b) == []
    assert f"claude stand-in: {len(TRICKY) + 2} arguments" in capfd.readouterr().out


def test_prompt_path_comes_first(machine, capfd):
    with open_bottle(machine, prompt_path="/home/node/prompt.md") as b:
        assert b.exec_claude(["-p", "go"], tty=False) == 0
        assert recorded_argv(b) == [
            "--append-system-prompt-file",
            "/home/node/prompt.md",
            "-p",
            "go",
        ]


def test_exit_status_and_user_and_no_tty(b, capfd):
    sh(b, "echo 7 > /tmp/claude-exit", user="root")
    assert b.exec_claude([]) == 7  # tty=None: pytest's stdin is no terminal
    run = sh(b, "cat ~/.claude-standin/run")
    assert "node" in run
    assert "notty" in run
    assert recorded_argv(b) == []


def test_bad_argument_is_named(b):
    with pytest.raises(bottle.InvalidArgument, match=r"argv\[1\]: contains a NUL byte"):
        b.exec_claude(["ok", "bad\0"], tty=False)
