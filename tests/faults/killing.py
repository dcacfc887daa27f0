"""Helpers for the fault tests: kill a berth command at a named point or at random.

A named point is a :func:`berth.testpoints.pause` call: the command started with
``BERTH_TEST_PAUSE=<point>`` writes a marker when it gets there and sleeps, so the SIGKILL
lands exactly inside the work. Random delays add the points nobody thought of.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(args: list[str], *, point: str | None = None, marker: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    e = dict(os.environ)
    e.update(env or {})
    if point:
        assert marker is not None
        e["BERTH_TEST_PAUSE"] = point
        e["BERTH_TEST_PAUSE_MARKER"] = str(marker)
    return subprocess.Popen([sys.executable, "-m", "berth", *args], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def kill_at(args: list[str], point: str, tmp: Path, *, env: dict[str, str] | None = None,
            timeout: float = 60) -> None:
    """Run ``berth ARGS`` until it pauses at ``point``, then SIGKILL it there."""
    marker = tmp / f"marker-{os.urandom(4).hex()}"
    p = start(args, point=point, marker=marker, env=env)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if p.poll() is not None:
            out, err = p.communicate()
            raise AssertionError(f"berth {' '.join(args)} ended (rc {p.returncode}) before "
                                 f"point {point}: {err.decode(errors='replace')[-800:]}")
        if time.monotonic() > deadline:
            p.kill()
            p.communicate()
            raise AssertionError(f"point {point} not reached in {timeout}s")
        time.sleep(0.01)
    name, _pid = marker.read_text().split()
    assert name == point.partition("#")[0]
    p.send_signal(signal.SIGKILL)
    p.communicate()
    assert p.returncode == -signal.SIGKILL


def kill_after(args: list[str], delay: float, *, env: dict[str, str] | None = None) -> bool:
    """Run ``berth ARGS`` and SIGKILL it after ``delay`` s; False if it finished first."""
    p = start(args, env=env)
    try:
        p.wait(delay)
        p.communicate()
        return False
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.communicate()
        return True


def check(berth, *, garbage_ok: bool = True) -> str:  # type: ignore[no-untyped-def]
    """``system check`` must work and find nothing damaged (and no garbage if asked)."""
    r = berth("system", "check")
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    m = re.search(r"\((\d+) damaged, (\d+) garbage\)", r.stdout)
    assert m, (r.stdout, r.stderr)
    assert m.group(1) == "0", r.stdout
    if not garbage_ok:
        assert m.group(2) == "0", r.stdout
    return r.stdout


def ok(r) -> None:  # type: ignore[no-untyped-def]
    """A command that must have worked, with no traceback or EBUSY anywhere."""
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "busy" not in r.stderr.lower(), r.stderr


def mounts(path: str) -> list[str]:
    """Mount points at or under ``path`` (read by the tests' own leak check, not by berth)."""
    from leaks import mounts_under

    return mounts_under(path)


def procs_in_cgroup_prefix(prefix: str) -> list[int]:
    """Pids whose cgroup path starts with ``prefix`` (e.g. ``/berth/berth-build-``)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cgroup") as f:
                text = f.read()
            with open(f"/proc/{name}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue  # exited, only waits to be reaped
        except (OSError, IndexError):
            continue
        if any(line.split(":", 2)[-1].startswith(prefix) for line in text.splitlines()):
            found.append(int(name))
    return found
