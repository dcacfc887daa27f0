"""cgroups for rootless containers: limits need a cgroup the user may write.

On cgroup v2 with systemd delegation a user owns a subtree; on cgroup v1 (and on v2
without delegation, as on this project's CI host) nothing is writable by the user, so
runc runs with ``--rootless true`` and no cgroup, and any limit is refused before the
container is created rather than silently ignored.
"""

from __future__ import annotations

import os


def delegated() -> bool:
    """True when cgroup v2 and the user owns (can write) its current cgroup's procs file."""
    if not os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return False
    try:
        with open("/proc/self/cgroup", encoding="ascii") as f:
            path = next((ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::")), "")
    except OSError:
        return False
    return bool(path) and os.access(f"/sys/fs/cgroup{path}/cgroup.procs", os.W_OK)


def limits_error(what: list[str]) -> str:
    """The one-line reason ``-m``/``--cpus``/``--pids-limit`` cannot apply here."""
    v = "v2 without a cgroup delegated to this user" \
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    return (f"{', '.join(what)} cannot be applied: rootless containers need a delegated "
            f"cgroup v2 subtree, and this host has cgroup {v}; run without resource limits "
            "or as root")


def pidns_members(pid: int) -> list[int]:
    """Every process in the pid namespace of ``pid`` (a rootless container's processes).

    Without a cgroup per container, the container's own pid namespace is what holds
    exactly its processes (``exec`` sessions join it too).
    """
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink(f"/proc/{d}/ns/pid") == ns:
                    out.append(int(d))
            except OSError:
                continue
    return sorted(out)


def stats_error() -> str:
    return ("stats need the container's cgroup, and rootless containers have none on this "
            "host (no delegated cgroup v2 subtree)")
