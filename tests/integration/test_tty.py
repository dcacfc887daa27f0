"""``run -it`` and ``exec -it`` through a real pty: prompt, input, resize, Ctrl-D, exit code."""

from __future__ import annotations

import os
import time

import pytest
from tests.ptyterm import Term

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_run_it(berth, busybox_image):
    t = Term(["run", "-it", "--name", "tt", "busybox", "sh"])
    t.expect(b"# ")
    t.send(b"echo hi$((1+1))\r")
    t.expect(b"hi2")
    t.resize(33, 101)
    time.sleep(0.5)
    t.send(b"stty size\r")
    t.expect(b"33 101")
    t.send(b"exit 7\r")
    assert t.wait() == 7
    assert berth("inspect", "-f", "{{.State.ExitCode}}", "tt").stdout.strip() == "7"


def test_run_it_ctrl_d(berth, busybox_image):
    t = Term(["run", "-it", "--rm", "busybox", "sh"])
    t.expect(b"# ")
    t.send(b"\x04")
    assert t.wait() == 0
    assert berth("ps", "-aq").stdout == ""


def test_exec_it(berth, busybox_image):
    berth("run", "-d", "--name", "ex", "busybox", "sleep", "60")
    t = Term(["exec", "-it", "ex", "sh"])
    t.expect(b"# ")
    t.send(b"tty; echo $TERM\r")
    t.expect(b"xterm")
    t.resize(20, 70)
    time.sleep(0.5)
    t.send(b"stty size\r")
    t.expect(b"20 70")
    t.send(b"exit 3\r")
    assert t.wait() == 3
    assert berth("rm", "-f", "ex").returncode == 0
