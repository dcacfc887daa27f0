"""What a user at a terminal sees: ``top -o`` and attach/detach through a real pty."""

from __future__ import annotations

import os

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
