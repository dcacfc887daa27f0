"""A real unprivileged user, and berth run as that user (rootless berth tests' helpers).

``rootless_user`` makes the user with ``useradd`` (which gives it a ``/etc/subuid`` and
``/etc/subgid`` range, as on any Debian machine) and deletes it at teardown: its pause
process and every process it still has are killed (a leftover fails the test), then
``userdel -r`` removes the user, its home with the store in it, and its subordinate ranges.
berth runs through ``runuser`` with this checkout's venv, which other users can read.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def runroot(self) -> str:
        return f"/tmp/berth-{self.uid}"

    @property
    def store(self) -> str:
        return os.path.join(self.home, ".local/share/berth")

    def berth(self, *args: str, input: bytes | str | None = None, timeout: float = 120,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """``berth ARGS`` as this user, in a clean environment (no BERTH_* of the tests)."""
        e = {"HOME": self.home, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
             "USER": self.name, **self.env, **(env or {})}
        argv = ["runuser", "-u", self.name, "--", "env", "-i",
                *(f"{k}={v}" for k, v in e.items()), sys.executable, "-m", "berth", *args]
        return subprocess.run(argv, input=input, capture_output=True, timeout=timeout,
                              text=not isinstance(input, bytes), cwd="/")

    def sh(self, cmd: str) -> subprocess.CompletedProcess:
        """A shell command as this user on the host (outside any namespace)."""
        return subprocess.run(["runuser", "-u", self.name, "--", "sh", "-c", cmd],
                              capture_output=True, text=True, timeout=60, cwd="/")

    def pids(self) -> list[int]:
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    if os.stat(f"/proc/{d}").st_uid == self.uid:
                        out.append(int(d))
                except OSError:
                    pass
        return out


def make_user(*, subids: bool = True) -> RootlessUser:
    name = "brl" + os.urandom(3).hex()
    argv = ["useradd", "-m", "-s", "/bin/sh"]
    if not subids:
        argv += ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
    for _ in range(20):  # /etc/passwd lock held by a parallel test
        p = subprocess.run([*argv, name], capture_output=True, text=True)
        if p.returncode == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"useradd failed: {p.stderr}")
    pw = pwd.getpwnam(name)
    return RootlessUser(name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def remove_user(u: RootlessUser) -> list[str]:
    """Kill what the user still runs (pause process expected, anything else a leak)."""
    leaks = []
    pause = Path(u.runroot, "pause.pid")
    if pause.exists():
        try:
            os.kill(int(pause.read_text().split()[0]), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    for _ in range(30):
        left = [p for p in u.pids()
                if not Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"]
        if not left:
            break
        time.sleep(0.1)
    for pid in left:
        try:
            leaks.append(f"process {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}")
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass
    for _ in range(20):
        if subprocess.run(["userdel", "-r", u.name], capture_output=True).returncode in (0, 12):
            break
        time.sleep(0.2)
    shutil.rmtree(u.runroot, ignore_errors=True)
    shutil.rmtree(u.home, ignore_errors=True)
    return leaks
