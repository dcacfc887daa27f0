"""``run -it`` and ``exec -it`` through a real pty: prompt, input, resize, Ctrl-D, exit code."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class Term:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(sys.executable, [sys.executable, "-m", "berth", *argv])
        self.buf = b""

    def expect(self, text: bytes, timeout=15.0) -> bytes:
        end = time.time() + timeout
        while text not in self.buf and time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.buf += chunk
        assert text in self.buf, self.buf
        return self.buf

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def resize(self, rows, cols) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, 28)  # SIGWINCH reaches the CLI's pty via the kernel too

    def wait(self) -> int:
        end = time.time() + 20
        while time.time() < end:
            try:
                while select.select([self.fd], [], [], 0.1)[0]:
                    if not os.read(self.fd, 4096):
                        break
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        raise AssertionError("CLI did not exit")


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
