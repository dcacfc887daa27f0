"""The last steps of ``system reset``: nothing of a store stays on the host.

Containers, networks and volumes are taken down by their services first (they know which
bridges, rules, namespaces and proxies are theirs); what is left here is found by *path*
alone, so it works even for state no row remembers: processes whose command line names
the store (conmon exit commands, a killed CLI's children), mounts under the root or the run
root, and then the two directory trees themselves. Only the user's own ``berth.toml`` in the
root survives: it is configuration, not store data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from berth.procs import cmdlines, pid_alive
from berth.store.fsutil import remove_tree

KEEP = ("berth.toml",)


def processes_naming(paths: list[str]) -> list[int]:
    """Pids (not ours, not our parents') of berth's own programs (the CLI, exit commands,
    the port proxy, conmon) whose command line contains one of ``paths``. Anything else
    that merely names the path — an editor open on ``berth.toml`` — is not berth's to end.
    """
    me = {os.getpid(), os.getppid()}
    needles = [p.encode() + b"\0" for p in paths] + [p.encode() + b"/" for p in paths]
    return [pid for pid, cmd in cmdlines() if pid not in me
            and any(n in cmd for n in needles) and (b"berth" in cmd or b"conmon" in cmd)]


def stop_processes(paths: list[str], *, grace: float = 5.0) -> list[int]:
    """Wait up to ``grace`` seconds for processes naming the store to end, then SIGKILL them.

    conmon's exit command (``berth --root R container cleanup``) may still run after its
    container was removed; were it to outlive the reset it would make the root again.
    """
    deadline = time.monotonic() + grace
    pids = processes_naming(paths)
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [p for p in pids if pid_alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def mounts_under(paths: list[str]) -> list[str]:
    """Mount points at or below any of ``paths``, deepest first."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            for p in paths:
                p = p.rstrip("/")
                if target == p or target.startswith(p + "/"):
                    out.append(target)
    return sorted(set(out), key=lambda m: (-m.count("/"), m))


def unmount_all(paths: list[str]) -> list[str]:
    """Detach every mount below ``paths`` (lazily if busy); return what was mounted."""
    found = mounts_under(paths)
    for m in found:
        r = subprocess.run(["umount", m], capture_output=True, check=False)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", m], capture_output=True, check=False)
    return found


def remove_store_dirs(root: str, runroot: str) -> None:
    """Delete the run root and the root; a ``berth.toml`` in the root is kept (with it)."""
    remove_tree(runroot)
    if not os.path.isdir(root):
        return
    kept = False
    for name in os.listdir(root):
        if name in KEEP:
            kept = True
            continue
        remove_tree(os.path.join(root, name))
    if not kept:
        os.rmdir(root)
