"""Reaching a container's processes when the runroot (runtime state, exit files) is gone.

The runtime's state and conmon's exit files live under the runroot, a tmpfs. If it is
emptied while containers run (or after a reboot, when pids may belong to someone else),
the row's pids alone prove nothing. Two facts kept under the root or in the kernel do:
the container's cgroup (``/berth/<id>``, named in its spec) and conmon's command line
(``-c <id>``). Everything here checks identity through them before trusting a pid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from ..cgroupprocs import (
    cgroup_pids,
    in_cgroup,
    kill_cgroup,
    remove_cgroup,
    signal_cgroup,
)
from ..procs import pid_alive
from .monitor import MonitorHandle, conmon_alive
from .records import ContainerRecord

__all__ = ["FREEZE_MARKER", "conmon_alive", "container_alive", "freeze_marker", "frozen_ids",
           "reap", "signal_all", "thaw_if_orphaned"]


def container_alive(h: MonitorHandle) -> bool:
    """The container's main process still runs (checked against its cgroup)."""
    if not pid_alive(h.container_pid):
        return h.cgroups_path is not None and bool(cgroup_pids(h.cgroups_path))
    return not h.cgroups_path or in_cgroup(h.container_pid, h.cgroups_path)


def signal_all(h: MonitorHandle, sig: int) -> bool:
    """Signal the container's processes without the runtime; False if none was found."""
    if h.cgroups_path and signal_cgroup(h.cgroups_path, sig):
        return True
    if pid_alive(h.container_pid) and (not h.cgroups_path
                                       or in_cgroup(h.container_pid, h.cgroups_path)):
        try:
            os.kill(h.container_pid, sig)
            return True
        except ProcessLookupError:
            return False
    return False


def reap(h: MonitorHandle) -> bool:
    """Last resort before a container's files go: kill what is left in its cgroup and
    remove the cgroup (the runtime's ``delete`` would have, had it known the container).
    True when nothing of it runs any more."""
    if not h.cgroups_path:
        return not container_alive(h)
    ok = kill_cgroup(h.cgroups_path)
    remove_cgroup(h.cgroups_path)
    return ok and not container_alive(h)


FREEZE_MARKER = "frozen-by"
FROZEN_DIR = "frozen"


def freeze_marker(rec: ContainerRecord) -> str:
    """Where ``commit`` notes its pid while it holds ``rec`` frozen: one directory for all
    containers (``<runroot>/frozen/<id>``), so a listing checks every container at once
    (:func:`frozen_ids`)."""
    return os.path.join(rec.runroot, FROZEN_DIR, rec.id)


def frozen_ids(runroot: str) -> set[str]:
    """IDs with a freeze marker (usually none: one ``listdir`` of an empty directory)."""
    try:
        return set(os.listdir(os.path.join(runroot, FROZEN_DIR)))
    except OSError:
        return set()


def thaw_if_orphaned(rec: ContainerRecord, runtime: Callable[[], Any]) -> None:
    """Resume a container that a killed ``commit`` left frozen (its marker's pid is dead).

    Cheap when there is no marker (failed ``open``s), so every lookup of a running
    container can afford it (:meth:`ContainerService.refresh`). The marker's older place,
    the container's run dir, is still honoured.
    """
    for marker in (freeze_marker(rec), os.path.join(rec.run_dir, FREEZE_MARKER)):
        try:
            with open(marker, encoding="ascii") as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid_alive(pid):
            return
        with suppress(Exception):
            runtime().resume(rec.id)
        with suppress(FileNotFoundError):
            os.unlink(marker)
        return
