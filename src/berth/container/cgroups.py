"""Host cgroup layout facts: v1, v2 or hybrid, and where a container's files live.

Spec building (cgroup namespace, swap), runtime selection (crun refuses hybrid) and OOM
detection all depend on the same few filesystem facts, so they are read here once.
"""

from __future__ import annotations

import os
from functools import cache

ROOT = "/sys/fs/cgroup"


@cache
def is_v2() -> bool:
    """Unified mode: /sys/fs/cgroup itself is cgroup2 (only then has cgroup.controllers)."""
    return os.path.exists(os.path.join(ROOT, "cgroup.controllers"))


def hybrid_v2_controllers() -> list[str]:
    """Controllers attached to the v2 hierarchy in a hybrid (v1 + unified) layout.

    crun 1.8 refuses to run at all when this list is non-empty; runc copes.
    """
    if is_v2():
        return []
    try:
        with open(os.path.join(ROOT, "unified", "cgroup.controllers"), encoding="ascii") as f:
            return f.read().split()
    except OSError:
        return []


def swap_accounting() -> bool:
    """Whether a swap limit can be applied (v1 needs memsw, i.e. swapaccount=1)."""
    if is_v2():
        return True
    return os.path.exists(os.path.join(ROOT, "memory", "memory.memsw.limit_in_bytes"))


def memory_dir(cgroups_path: str) -> str:
    """Directory holding the memory files of an absolute ``cgroupsPath``."""
    rel = cgroups_path.lstrip("/")
    return os.path.join(ROOT, rel) if is_v2() else os.path.join(ROOT, "memory", rel)


def oom_events(cgroups_path: str) -> int:
    """OOM-kill count of a live cgroup (0 when unknown): v2 memory.events, v1 oom_control."""
    d = memory_dir(cgroups_path)
    name, key = ("memory.events", "oom_kill") if is_v2() else ("memory.oom_control", "oom_kill")
    try:
        with open(os.path.join(d, name), encoding="ascii") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
    except (OSError, ValueError):
        pass
    return 0
