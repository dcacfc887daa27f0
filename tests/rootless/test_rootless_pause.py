"""The rootless pause process: ``system migrate`` stops it; its death does not strand
running containers (the next command rejoins their namespaces through their conmon)."""

from __future__ import annotations

import os
import signal
import time

SLEEPER = ("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done")


def _pause(u) -> int:  # type: ignore[no-untyped-def]
    with open(os.path.join(u.runroot, "pause.pid"), encoding="ascii") as f:
        return int(f.read().split()[0])


def _gone(pid: int) -> bool:
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_system_migrate_stops_containers_and_pause(rootless_busybox):
    u = rootless_busybox
    p = u.berth("run", "-d", "--name", "bg", "--network", "none", "busybox", *SLEEPER)
    assert p.returncode == 0, p.stderr
    old = _pause(u)
    old_ns = os.readlink(f"/proc/{old}/ns/user")
    p = u.berth("system", "migrate")
    assert p.returncode == 0, p.stderr
    assert p.stdout == p.stdout.strip()[:12] + "\n" and len(p.stdout) == 13, p.stdout
    assert _gone(old), "pause process still alive"
    assert not os.path.exists(os.path.join(u.runroot, "pause.pid"))
    p = u.berth("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert p.stdout == "bg exited\n", (p.stdout, p.stderr)
    new = _pause(u)
    assert new != old and os.readlink(f"/proc/{new}/ns/user") != old_ns
    assert u.berth("rm", "bg").returncode == 0
    assert u.berth("system", "migrate").stdout == ""   # nothing running: just the pause


def test_pause_death_keeps_running_containers_reachable(rootless_busybox):
    u = rootless_busybox
    p = u.berth("run", "-d", "--name", "bg", "--network", "none", "busybox", *SLEEPER)
    assert p.returncode == 0, p.stderr
    old = _pause(u)
    ns = os.readlink(f"/proc/{old}/ns/user")
    os.kill(old, signal.SIGKILL)
    assert _gone(old)
    p = u.berth("exec", "bg", "cat", "/proc/self/uid_map")
    assert p.returncode == 0 and p.stdout.split()[:2] == ["0", str(u.uid)], p.stderr
    new = _pause(u)
    assert new != old and os.readlink(f"/proc/{new}/ns/user") == ns  # rejoined, not new
    p = u.berth("stop", "bg")
    assert p.returncode == 0, p.stderr
    p = u.berth("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert p.stdout == "bg exited\n", (p.stdout, p.stderr)
    assert u.berth("rm", "bg").returncode == 0


def test_system_reset_stops_pause(rootless_busybox):
    u = rootless_busybox
    p = u.berth("run", "-d", "--name", "bg", "--network", "none", "busybox", *SLEEPER)
    assert p.returncode == 0, p.stderr
    old = _pause(u)
    p = u.berth("system", "reset", "-f")
    assert p.returncode == 0, p.stderr
    assert _gone(old), "pause process outlived system reset"
    assert not os.path.exists(os.path.join(u.runroot, "pause.pid"))
    assert not os.path.exists(u.store)


def test_system_migrate_as_root_leaves_containers_alone(berth, busybox_image):
    """Root has no pause process: ``migrate`` stops nothing."""
    p = berth("run", "-d", "--name", "rbg", "--network", "none", "busybox", *SLEEPER)
    assert p.returncode == 0, p.stderr
    p = berth("system", "migrate")
    assert (p.returncode, p.stdout) == (0, ""), p.stderr
    assert berth("ps", "--format", "{{.Names}}").stdout == "rbg\n"
    assert berth("rm", "-f", "rbg").returncode == 0
