"""Streams in and out of containers: ``logs -f``, ``attach``, ``exec`` flags, ``start -i``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from probes import until as _until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _berth_popen(*args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "berth", *args], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)




# the container waits for a go file, so the follower is attached before the output starts
TALKER = ("while [ ! -e /tmp/go ]; do sleep 0.05; done; for i in 1 2 3; do echo out$i; "
          "sleep 0.2; done; echo err1 >&2; exit 4")


def _start_talker(berth, name: str) -> None:  # type: ignore[no-untyped-def]
    r = berth("run", "-d", "--name", name, "busybox", "sh", "-c", TALKER)
    assert r.returncode == 0, r.stderr


def _go(berth, name: str) -> None:  # type: ignore[no-untyped-def]
    assert berth("exec", name, "touch", "/tmp/go").returncode == 0


def test_logs_follow_streams_until_exit(berth, busybox_image):
    _start_talker(berth, "lf")
    p = _berth_popen("logs", "-f", "lf")
    time.sleep(0.5)
    assert p.poll() is None  # following, not done
    _go(berth, "lf")
    out, err = p.communicate(timeout=30)
    # everything written after the follower started, in order, split by stream; and it
    # ends by itself when the container exits
    assert (p.returncode, out, err) == (0, "out1\nout2\nout3\n", "err1\n")


def test_logs_follow_with_tail_of_a_live_container(berth, busybox_image):
    r = berth("run", "-d", "--name", "lt", "busybox", "sh", "-c",
              "echo old1; echo old2; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
              "echo new; sleep 300")
    assert r.returncode == 0
    assert _until(lambda: berth("logs", "lt").stdout == "old1\nold2\n")
    p = _berth_popen("logs", "-f", "--tail", "1", "lt")
    time.sleep(0.5)
    _go(berth, "lt")
    assert _until(lambda: berth("logs", "lt").stdout.endswith("new\n"))
    time.sleep(0.5)
    assert p.poll() is None  # still following a running container
    berth("rm", "-f", "lt")
    out, _ = p.communicate(timeout=30)
    assert out == "old2\nnew\n"


def test_attach_streams_output_and_returns_the_exit_code(berth, busybox_image):
    _start_talker(berth, "at")
    p = _berth_popen("attach", "at")
    time.sleep(0.5)
    _go(berth, "at")
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out, err) == (4, "out1\nout2\nout3\n", "err1\n")


def test_exec_env_user_workdir(berth, busybox_image):
    assert berth("run", "-d", "--name", "ex", "-e", "FROM_RUN=1", "busybox", "sleep",
                 "300").returncode == 0
    r = berth("exec", "-e", "FOO=bar baz", "-u", "nobody", "-w", "/tmp", "ex", "sh", "-c",
              'echo "$FOO|$FROM_RUN"; id -u; id -g; pwd')
    assert (r.returncode, r.stdout) == (0, "bar baz|1\n65534\n65534\n/tmp\n"), r.stderr
    r = berth("exec", "-u", "0:65534", "ex", "sh", "-c", "id -u; id -g")
    assert r.stdout == "0\n65534\n"
    r = berth("exec", "ex", "sh", "-c", "id -u; pwd")  # defaults: the container's
    assert r.stdout == "0\n/\n"
    r = berth("exec", "-w", "/nonexistent", "ex", "pwd")
    assert r.returncode == 127 and r.stderr.startswith("Error: exec failed: ") and \
        '("/nonexistent")' in r.stderr, r.stderr
    r = berth("exec", "-u", "nosuchuser", "ex", "true")
    assert (r.returncode, r.stderr) == (
        125, "Error: unable to find user nosuchuser: no matching entries in passwd file\n")
    berth("rm", "-f", "ex")


def test_exec_exit_code(berth, busybox_image):
    assert berth("run", "-d", "--name", "ec", "busybox", "sleep", "300").returncode == 0
    r = berth("exec", "ec", "sh", "-c", "echo o; echo e >&2; exit 5")
    assert (r.returncode, r.stdout, r.stderr) == (5, "o\n", "e\n")
    berth("rm", "-f", "ec")


def test_exec_interactive_forwards_stdin_only_with_i(berth, busybox_image):
    assert berth("run", "-d", "--name", "ei", "busybox", "sleep", "300").returncode == 0
    r = berth("exec", "-i", "ei", "sh", "-c", "cat; echo end", input="hello\nworld\n")
    assert (r.returncode, r.stdout) == (0, "hello\nworld\nend\n"), r.stderr
    r = berth("exec", "ei", "sh", "-c", "cat; echo end", input="hello\n")
    assert (r.returncode, r.stdout) == (0, "end\n"), r.stderr  # stdin not attached
    berth("rm", "-f", "ei")


def test_exec_detached(berth, busybox_image):
    assert berth("run", "-d", "--name", "ed", "busybox", "sleep", "300").returncode == 0
    t0 = time.monotonic()
    r = berth("exec", "-d", "ed", "sh", "-c", "sleep 2; echo done > /tmp/detached")
    assert (r.returncode, r.stdout) == (0, "")
    assert time.monotonic() - t0 < 2  # did not wait for the process
    assert berth("exec", "ed", "cat", "/tmp/detached").returncode != 0  # not yet
    assert _until(lambda: berth("exec", "ed", "cat", "/tmp/detached").stdout == "done\n")
    berth("rm", "-f", "ed")


def test_start_interactive(berth, busybox_image):
    r = berth("create", "--name", "si", "-i", "busybox", "sh", "-c",
              "read x; echo got-$x; echo to-err >&2; exit 3")
    assert r.returncode == 0, r.stderr
    r = berth("start", "-i", "si", input="abc\n")
    assert (r.returncode, r.stdout, r.stderr) == (3, "got-abc\n", "to-err\n")
    st = json.loads(berth("inspect", "si").stdout)[0]["State"]
    assert (st["Status"], st["ExitCode"]) == ("exited", 3)
    # a second start -i runs it again, with new input
    r = berth("start", "-i", "si", input="def\n")
    assert (r.returncode, r.stdout) == (3, "got-def\n")
    berth("rm", "si")
