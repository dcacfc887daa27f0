"""A container's network namespace, kept alive as a bind-mounted file.

The namespace is made *before* the container exists, so the veth can be plugged in and
the firewall set up while nothing runs yet; the OCI runtime then joins it through
``linux.namespaces: [{"type": "network", "path": <file>}]``. A namespace lives as long
as something references it; the bind mount of ``/proc/<pid>/ns/net`` onto a plain file
is that reference (the same trick ``ip netns add`` uses), so no helper process has to
stay behind.

Creation runs a throwaway *thread* that calls ``unshare(CLONE_NEWNET)`` and bind-mounts
its own namespace (``/proc/thread-self/ns/net``) onto the file. A network namespace is a
per-thread attribute in Linux, so the rest of the process never changes namespace, and
the thread ends right after. This replaced a forked child: a fork of the CLI costs a few
milliseconds of page-table copying on every bridge start. No pyroute2 needed.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading

from ..errors import BerthError, Conflict

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)


def netns_path(runroot: str, container_id: str) -> str:
    """Where a container's namespace file lives: ``<runroot>/netns/<id>``."""
    return os.path.join(runroot, "netns", container_id)


def is_netns(path: str) -> bool:
    """True when ``path`` is a live namespace mount (not just the empty placeholder file)."""
    # Every nsfs inode shares one device number, so comparing with a known one is enough.
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def create_netns(path: str) -> str:
    """Create a fresh, empty network namespace (only ``lo``, down) pinned at ``path``.

    Idempotent: if ``path`` already pins a namespace it is kept, so a retried start does
    not orphan the first one.
    """
    if is_netns(path):
        return path
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
        os.close(fd)
    except FileExistsError:
        pass  # an empty placeholder from a crash; reuse it as the mount point
    target = os.fsencode(path)
    failed: list[tuple[str, int]] = []

    def unshare_and_pin() -> None:  # two syscalls, in this thread only
        if _libc.unshare(CLONE_NEWNET) != 0:
            failed.append(("unshare", ctypes.get_errno()))
        elif _libc.mount(b"/proc/thread-self/ns/net", target, None, MS_BIND, None) != 0:
            failed.append(("bind mount", ctypes.get_errno()))

    t = threading.Thread(target=unshare_and_pin, name="berth-unshare", daemon=True)
    t.start()
    t.join()
    if failed:
        _unlink_quiet(path)
        step, err = failed[0]
        raise BerthError(f"creating network namespace {path}: {step}: {os.strerror(err)}")
    return path


def delete_netns(path: str) -> None:
    """Unpin and remove the namespace file; missing is fine (stop/rm may run twice).

    Devices still inside vanish with the namespace asynchronously, so callers that need the
    host side of a veth gone *now* delete it first (:func:`berth.network.veth.detach`).
    """
    target = os.fsencode(path)
    while is_netns(path):
        if _libc.umount2(target, MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                break
            raise Conflict(f"unmounting network namespace {path}: {os.strerror(err)}")
    _unlink_quiet(path)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def nsenter_argv(path: str) -> list[str]:
    """Prefix that runs a command inside the namespace (firewall tools, tests, benches)."""
    return ["nsenter", f"--net={path}", "--"]
