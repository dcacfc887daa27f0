"""Is a process still there? One answer for the store, the monitor and the volumes.

Temp entries are named ``<kind>-<pid>-<random>`` so that whoever finds one can tell
whether its writer still runs; monitors and containers are checked by pid. A zombie counts
as gone: it has exited and only waits to be reaped.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator


@functools.cache
def in_userns() -> bool:
    """True inside a user namespace other than the initial one (its uid_map is not identity).

    Rootless berth (:mod:`berth.rootless`) runs as uid 0 in the store's user namespace;
    the few low layers that differ there (overlay's xattr namespace) ask this.
    """
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def rootless() -> bool:
    """A rootless berth: a non-root user, or (its children) inside the store's namespace."""
    return os.geteuid() != 0 or in_userns()


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs (not for a zombie or a pid that does not exist)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def owner_pid(name: str) -> int | None:
    """The writer's pid in a ``<kind>-<pid>-<random>`` temp name (leading dots ignored)."""
    parts = name.lstrip(".").split("-")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None


def owner_alive(name: str) -> bool:
    """True when the process that made temp entry ``name`` still runs (or is us)."""
    pid = owner_pid(name)
    return pid is not None and (pid == os.getpid() or pid_alive(pid))


def cmdlines() -> Iterator[tuple[int, bytes]]:
    """``(pid, raw command line)`` of every process we can read (NUL-separated arguments):
    the one walk of ``/proc`` that finds processes by what they were started with."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                yield int(name), f.read()
        except OSError:
            continue
