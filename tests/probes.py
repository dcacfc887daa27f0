"""Small probes the integration tests share: wait for a condition, read a cgroup file.

A module of its own, not conftest: sub-folders have conftests too, so ``from conftest
import`` would find whichever was imported last.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def until(pred: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> bool:
    """Poll ``pred`` until it is true (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return False


def cgroup_file(pid: int | str, controller: str, filename: str) -> str:
    """A cgroup file of ``pid``'s cgroup, read on the host: the v1 hierarchy of
    ``controller`` where there is one, else the v2 tree."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                with open(f"/sys/fs/cgroup/{controller}{path}/{filename}") as g:
                    return g.read().strip()
    with open(f"/sys/fs/cgroup{path}/{filename}") as g:   # cgroup v2
        return g.read().strip()
