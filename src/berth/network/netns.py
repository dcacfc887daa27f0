"""A container's network namespace, kept alive as a bind-mounted file.

The namespace is made *before* the container exists, so the veth can be plugged in and
the firewall set up while nothing runs yet; the OCI runtime then joins it through
``linux.namespaces: [{"type": "network", "path": <file>}]``. A namespace lives as long
as something references it; the bind mount of ``/proc/<pid>/ns/net`` onto a plain file
is that reference (the same trick ``ip netns add`` uses), so no helper process has to
stay behind.

Creation forks a child that calls ``unshare(CLONE_NEWNET)`` and bind-mounts its own
namespace onto the file: the parent's network namespace is never changed, which matters
because Python threads share it. The child only makes two libc calls before ``_exit``,
so forking a threaded process is safe here. No pyroute2 needed.
"""

from __future__ import annotations

import ctypes
import errno
import os

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
    pid = os.fork()
    if pid == 0:  # child: two syscalls, then leave without running any Python cleanup
        rc = 0
        if _libc.unshare(CLONE_NEWNET) != 0:
            rc = 10 + ctypes.get_errno() % 100
        elif _libc.mount(b"/proc/self/ns/net", target, None, MS_BIND, None) != 0:
            rc = 110 + ctypes.get_errno() % 100
        os._exit(rc)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        _unlink_quiet(path)
        step = "unshare" if code < 110 else "bind mount"
        err = (code - 10) % 100
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
