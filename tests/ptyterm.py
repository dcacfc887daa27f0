"""Drive the berth CLI through a real pty, as a user at a terminal does."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


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
        """The CLI's exit code, once it exited (its remaining output lands in ``buf``)."""
        end = time.time() + 20
        while time.time() < end:
            try:
                while select.select([self.fd], [], [], 0.1)[0]:
                    chunk = os.read(self.fd, 4096)
                    if not chunk:
                        break
                    self.buf += chunk  # what the CLI printed last stays readable
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        raise AssertionError("CLI did not exit")
