"""Releasing what a dead process left in ``tmp/``: processes, mounts, then files.

A temp entry is named ``<kind>-<pid>-<random>`` (see :mod:`berth.procs`). Most are plain
files or trees, but a build step's workspace can also hold an overlay mount and a running
OCI container (the RUN command). If its owner is SIGKILLed, removing the tree would fail
with EBUSY and the container would run on, orphaned. So a workspace that starts processes
first writes a small ``release.json`` into itself (:func:`write_release`); the cleaner

  1. kills what that file names — through the OCI runtime, then by its cgroup in case the
     runtime's state is gone too — and deletes the runtime state;
  2. unmounts every mount at or under the entry, deepest first (lazily if busy);
  3. removes the tree.

Any failure leaves the entry for a later attempt (``system check`` lists it): cleaning up
after someone else must never make the command that happens to run next fail.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from berth.store.fsutil import atomic_write, remove_tree

RELEASE = "release.json"
_MNT_DETACH = 2


def write_release(entry_dir: str, *, runtime: list[str], container_id: str,
                  cgroup: str) -> None:
    """Record, before starting it, the container a workspace will run (for the cleaner)."""
    data = {"runtime": runtime, "id": container_id, "cgroup": cgroup}
    atomic_write(os.path.join(entry_dir, RELEASE), json.dumps(data).encode(), 0o600)


def release(path: str) -> bool:
    """Stop, unmount and remove the temp entry ``path``; False if something stayed."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            _stop_processes(os.path.join(path, RELEASE))
            unmount_under(path)
        remove_tree(path)
    except Exception:  # noqa: BLE001 - see module docstring: never fail the next command
        return False
    return not os.path.lexists(path)


def _stop_processes(release_file: str) -> None:
    try:
        with open(release_file, encoding="utf-8") as f:
            info: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return
    from berth.cgroupprocs import kill_cgroup, remove_cgroup

    runtime = [str(a) for a in info.get("runtime") or []]
    cid = str(info.get("id") or "")
    cgroup = str(info.get("cgroup") or "")
    if runtime and cid:
        _quiet([*runtime, "kill", "--all", cid, "KILL"])
    if cgroup:
        kill_cgroup(cgroup)
    if runtime and cid:
        _quiet([*runtime, "delete", "--force", cid])
    if cgroup:
        remove_cgroup(cgroup)


def _quiet(argv: list[str]) -> None:
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` in our mount namespace, deepest first."""
    base = os.path.realpath(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split(" ", 5)
            if len(parts) < 5:
                continue
            target = unescape(parts[4])
            if target == base or target.startswith(base + "/"):
                found.append(target)
    return sorted(set(found), key=lambda t: (-t.count("/"), t))


def unmount_under(path: str) -> None:
    """Unmount everything at or under ``path``; busy mounts are detached lazily."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(8):  # stacked mounts on one point need one call each
        targets = mounts_under(path)
        if not targets:
            return
        for t in targets:
            p = os.fsencode(t)
            if libc.umount2(p, 0) != 0:
                libc.umount2(p, _MNT_DETACH)
    if mounts_under(path):
        raise OSError(f"mounts under {path} could not be removed")


def unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo``."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
