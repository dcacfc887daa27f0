"""Find and kill a process tree by its cgroup, for when nothing else knows about it.

The OCI runtime's state (under the runroot, a tmpfs) is how berth normally reaches a
container's processes. When that state is gone — the runroot deleted while containers run,
or a build killed mid-RUN — the kernel still knows them: every process of a container sits
in the cgroup berth named in its spec (``/berth/<id>``). These helpers read and kill that
cgroup on v1, hybrid and v2 hosts alike, without the runtime.
"""

from __future__ import annotations

import os
import signal
import time

ROOT = "/sys/fs/cgroup"


def cgroup_mounts() -> list[str]:
    """Where cgroup filesystems (v1 hierarchies, the v2 tree) are mounted in our view.

    Only these count: a directory under ``/sys/fs/cgroup`` that is *not* a cgroup mount (a
    hierarchy unmounted in a private mount namespace, say) can hold a runtime's plain
    ``cgroup.procs`` file listing pids long dead, which would read as a live container.
    """
    out = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                try:
                    fstype = fields[fields.index("-") + 1]
                except (ValueError, IndexError):
                    continue
                if fstype in ("cgroup", "cgroup2"):
                    out.append(fields[4].replace("\\040", " "))
    except OSError:
        return [ROOT]
    return out


def cgroup_dirs(path: str) -> list[str]:
    """Every hierarchy's directory for the absolute cgroups path ``path`` that exists."""
    rel = path.strip("/")
    if not rel or ".." in rel.split("/"):
        return []
    out: list[str] = []
    cands = [os.path.join(m, rel) for m in cgroup_mounts()]
    for d in cands:
        if os.path.isfile(os.path.join(d, "cgroup.procs")) and d not in out:
            out.append(d)
    return out


def cgroup_pids(path: str) -> set[int]:
    """Pids of every process in the cgroup and its children, in any hierarchy."""
    pids: set[int] = set()
    for d in cgroup_dirs(path):
        for sub, _dirs, _files in os.walk(d):
            try:
                with open(os.path.join(sub, "cgroup.procs"), encoding="ascii") as f:
                    pids.update(int(x) for x in f.read().split())
            except (OSError, ValueError):
                continue
    return pids


def _thaw(path: str) -> None:
    """A paused (frozen) cgroup would hold SIGKILL pending forever: thaw it first."""
    for d in cgroup_dirs(path):
        for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            p = os.path.join(d, name)
            if os.path.exists(p):
                try:
                    with open(p, "w", encoding="ascii") as f:
                        f.write(value)
                except OSError:
                    pass


def kill_cgroup(path: str, timeout: float = 5.0) -> bool:
    """SIGKILL everything in the cgroup until it is empty; False if it did not empty."""
    deadline = time.monotonic() + timeout
    thawed = False
    while True:
        pids = cgroup_pids(path)
        if not pids:
            return True
        if not thawed:
            _thaw(path)
            thawed = True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() >= deadline:
            return not cgroup_pids(path)
        time.sleep(0.02)


def signal_cgroup(path: str, sig: int) -> int:
    """Send ``sig`` to every process of the cgroup; how many were signalled."""
    n = 0
    for pid in cgroup_pids(path):
        try:
            os.kill(pid, sig)
            n += 1
        except ProcessLookupError:
            pass
    return n


def remove_cgroup(path: str) -> None:
    """rmdir the (empty) cgroup directories, children first; leftovers are ignored."""
    for d in cgroup_dirs(path):
        for sub, _dirs, _files in sorted(os.walk(d), key=lambda w: -len(w[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass


def in_cgroup(pid: int, path: str) -> bool:
    """Whether ``pid`` lives in cgroup ``path`` (or below it) in some hierarchy."""
    want = "/" + path.strip("/")
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as f:
            for line in f:
                cg = line.rstrip("\n").split(":", 2)[-1]
                if cg == want or cg.startswith(want + "/"):
                    return True
    except OSError:
        return False
    return False
