"""Find and read a running container's cgroup files, on cgroup v1 or v2.

The cgroup a container lives in is read from ``/proc/<pid>/cgroup`` of its init process:
that is where the runtime actually put it, whatever the ``cgroupsPath`` spelling (cgroupfs
or systemd) or the runtime, so ``stats`` and ``top`` need no agreement with the code that
created the container.
"""

from __future__ import annotations

import os

from berth.container.cgroups import ROOT, is_v2


def cgroup_dirs(pid: int) -> dict[str, str]:
    """Controller -> absolute cgroup directory of ``pid``; v2 uses the key ``""``.

    Empty when the process is gone.
    """
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    out: dict[str, str] = {}
    v2 = is_v2()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if not controllers:
            if v2:
                out[""] = os.path.join(ROOT, rel)
            continue
        for c in controllers.split(","):
            if c.startswith("name="):
                continue
            base = os.path.join(ROOT, c)
            if not os.path.isdir(base):
                base = os.path.join(ROOT, controllers)
            out[c] = os.path.join(base, rel)
    return out


def controller_dir(dirs: dict[str, str], controller: str) -> str | None:
    """The directory holding ``controller``'s files (v2: the one unified directory)."""
    return dirs.get("") if is_v2() else dirs.get(controller)


def read_text(directory: str | None, name: str) -> str | None:
    if directory is None:
        return None
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def read_int(directory: str | None, name: str) -> int | None:
    text = read_text(directory, name)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def read_keyed(directory: str | None, name: str) -> dict[str, int]:
    """A ``key value`` per line file (memory.stat, cpu.stat) as a dict."""
    out: dict[str, int] = {}
    for line in (read_text(directory, name) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def procs(dirs: dict[str, str]) -> list[int]:
    """Every pid in the container's cgroup, and in its sub-cgroups (sorted)."""
    base = controller_dir(dirs, "pids") or controller_dir(dirs, "memory") \
        or next(iter(dirs.values()), None)
    if base is None:
        return []
    found: set[int] = set()
    for top, _, _ in os.walk(base):
        for line in (read_text(top, "cgroup.procs") or "").split():
            if line.isdigit():
                found.add(int(line))
    return sorted(found)
