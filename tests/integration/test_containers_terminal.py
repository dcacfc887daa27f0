"""What a user at a terminal sees: ``top -o`` and attach/detach through a real pty."""

from __future__ import annotations

import os
import time

import pytest
from tests.ptyterm import Term

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_top_with_ps_options_from_a_terminal(berth, busybox_image):
    """``ps -o`` alone lists the caller's terminal session; the container's pids are passed."""
    r = berth("run", "-d", "--name", "tp", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    pid = berth("inspect", "-f", "{{.State.Pid}}", "tp").stdout.strip()
    t = Term(["top", "tp", "-o", "pid,comm"])
    assert t.wait() == 0
    assert t.buf.decode().split() == ["PID", "COMMAND", pid, "sleep"]
    t = Term(["top", "tp", "axf"])   # f refuses -q: retried without it, then filtered
    assert t.wait() == 0
    lines = t.buf.decode().splitlines()
    assert lines[0].split()[0] == "PID" and len(lines) == 2 and lines[1].split()[0] == pid
    berth("rm", "-f", "tp")


def _running(berth, name):
    return berth("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_attach_after_detaching_from_run_it(berth, busybox_image):
    t = Term(["run", "-it", "--name", "at", "busybox", "sh"])
    t.expect(b"# ")
    t.send(b"\x10\x11")                       # ctrl-p ctrl-q
    assert t.wait() == 0
    assert b"read escape sequence" in t.buf
    assert _running(berth, "at") == "running"
    t = Term(["attach", "at"])
    t.send(b"echo hi$((1+2))\r")
    t.expect(b"hi3")                          # stdin stayed open for the tty
    t.send(b"\x10x\x11")                      # a broken sequence is typed through
    t.send(b"\x10\x11")
    assert t.wait() == 0
    assert _running(berth, "at") == "running"
    t = Term(["attach", "--detach-keys", "ctrl-a,d", "at"])
    t.send(b"\x10\x11echo still$((2+2))\r")  # the default keys are plain input here
    t.expect(b"still4")
    t.send(b"\x01d")
    assert t.wait() == 0 and b"read escape sequence" in t.buf
    t = Term(["attach", "at"])
    t.send(b"exit 5\r")
    assert t.wait() == 5
    assert berth("inspect", "-f", "{{.State.ExitCode}}", "at").stdout.strip() == "5"


def test_detach_keys_on_run_start_and_exec(berth, busybox_image):
    t = Term(["run", "-it", "--detach-keys", "ctrl-x,y", "--name", "dk", "busybox", "sh"])
    t.expect(b"# ")
    t.send(b"\x18y")
    assert t.wait() == 0 and _running(berth, "dk") == "running"
    t = Term(["exec", "-it", "--detach-keys", "ctrl-@", "dk", "sh"])
    t.expect(b"# ")
    t.send(b"\x00")
    assert t.wait() == 0 and b"read escape sequence" in t.buf
    berth("stop", "-t", "0", "dk")
    t = Term(["start", "-ai", "--detach-keys", "z", "dk"])
    t.send(b"\r")
    t.expect(b"# ")
    t.send(b"z")
    assert t.wait() == 0 and _running(berth, "dk") == "running"
    r = berth("run", "-it", "--detach-keys", "ctrl-", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr.strip() == "Error: Invalid detach keys (ctrl-) provided"
    berth("rm", "-f", "dk")


def test_detached_rm_container_is_removed_when_it_exits_later(berth, busybox_image):
    t = Term(["run", "-it", "--rm", "--name", "rmd", "busybox", "sh"])
    t.expect(b"# ")
    t.send(b"\x10\x11")
    assert t.wait() == 0 and _running(berth, "rmd") == "running"
    t = Term(["attach", "rmd"])
    t.send(b"exit 3\r")
    assert t.wait() == 3
    for _ in range(100):          # the exit command applies --rm
        if berth("ps", "-aq").stdout == "":
            break
        time.sleep(0.1)
    assert berth("ps", "-aq").stdout == ""
