"""The container's filesystem as the container sees it, mounts included, for ``cp``.

A container's volumes, bind mounts, tmpfs and ``/etc/hosts`` are mounts in its own mount
namespace, over the overlay rootfs; the overlay alone hides them (and shows what lies
beneath). ``cp`` must see what the container sees, so:

* a **running** container is reached through ``/proc/PID/root``: lookups relative to that
  directory walk the container's own mount table, exactly as its processes do;
* a **stopped** container has no mount namespace left, so the copy runs in a short-lived
  child process that makes a private mount namespace, binds the bundle's bind mounts
  (volumes, binds, the ``/etc`` files) over the mounted rootfs as the runtime would, and
  copies there. Nothing of it can leak: the namespace dies with the child.

Either way the copy code itself still resolves every path with ``RESOLVE_IN_ROOT``
(:mod:`berth.container.rootpath`) below that root, so a symlink inside a volume is clamped
to the container's root like any other.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import BerthError
from .rootpath import open_in_root

if TYPE_CHECKING:  # pragma: no cover
    from .records import ContainerRecord

T = TypeVar("T")
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def in_container_view(rec: ContainerRecord, merged: str, fn: Callable[[str], T]) -> T:
    """``fn(root)`` with ``root`` showing the container's files and mounts."""
    root = _live_root(rec)
    if root is not None:
        return fn(root)
    mounts = _bind_mounts(rec)
    if not mounts:
        return fn(merged)

    def mounted() -> T:
        _mount_all(merged, mounts)
        return fn(merged)

    return _in_child(mounted)


def _live_root(rec: ContainerRecord) -> str | None:
    """``/proc/PID/root`` of the container's init, if it runs (and is still its init)."""
    if rec.status not in ("running", "paused") or not rec.pid:
        return None
    try:
        with open(f"/proc/{rec.pid}/cgroup", encoding="ascii") as f:
            if rec.id not in f.read():   # the pid was reused: not our container any more
                return None
    except OSError:
        return None
    return f"/proc/{rec.pid}/root"


def _bind_mounts(rec: ContainerRecord) -> list[tuple[str, str, bool]]:
    """(destination, host source, read-only) of the bundle's bind mounts, parents first."""
    try:
        with open(os.path.join(rec.bundle, "config.json"), encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return []
    out = []
    for m in spec.get("mounts") or []:
        opts = m.get("options") or []
        if m.get("type") != "bind" and "bind" not in opts and "rbind" not in opts:
            continue
        dst = os.path.normpath(m.get("destination") or "")
        if not dst.startswith("/") or dst == "/":
            continue
        out.append((dst, m["source"], "ro" in opts))
    return sorted(out, key=lambda x: x[0].count("/"))


def _mount_all(root: str, mounts: list[tuple[str, str, bool]]) -> None:
    """Bind each source over its destination inside ``root`` (child process only)."""
    from .rootfs import _c, _err

    libc = _c()
    if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        raise OSError(_err(), "cannot make the mount namespace private")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for dst, src, ro in mounts:
            try:
                src_fd = os.open(src, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue       # a source gone since the start: the container would not see it
            try:
                try:
                    dst_fd = open_in_root(root_fd, dst, os.O_PATH)
                except OSError:
                    continue   # never started: no mount point yet, nothing was mounted there
                try:
                    target = f"/proc/self/fd/{dst_fd}".encode()
                    if libc.mount(f"/proc/self/fd/{src_fd}".encode(), target, None,
                                  _MS_BIND | _MS_REC, None) != 0:
                        raise OSError(_err(), f"cannot mount {src} on {dst}")
                    if ro:
                        _remount_ro(libc, root_fd, dst)
                finally:
                    os.close(dst_fd)
            finally:
                os.close(src_fd)
    finally:
        os.close(root_fd)


def _remount_ro(libc: object, root_fd: int, dst: str) -> None:
    from .rootfs import _err

    fd = open_in_root(root_fd, dst, os.O_PATH)   # now the mounted source's root
    try:
        if libc.mount(None, f"/proc/self/fd/{fd}".encode(), None,  # type: ignore[attr-defined]
                      _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None) != 0:
            raise OSError(_err(), f"cannot make {dst} read-only")
    finally:
        os.close(fd)


def _in_child(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a forked child in its own mount namespace; its result or its error."""
    from .rootfs import _c, _err

    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 0
        try:
            os.close(r)
            if _c().unshare(_CLONE_NEWNS) != 0:
                raise OSError(_err(), "unshare(CLONE_NEWNS) failed")
            payload = pickle.dumps(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - handed to the parent
            code = 1
            try:
                payload = pickle.dumps(("err", e))
            except Exception:  # noqa: BLE001 - unpicklable: keep the message
                payload = pickle.dumps(("err", BerthError(str(e))))
        try:
            with open(w, "wb") as f:
                f.write(payload)
        finally:
            os._exit(code)
    os.close(w)
    with open(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise BerthError("cp: the copy process died")
    kind, value = pickle.loads(data)
    if kind == "err":
        if isinstance(value, OSError) and value.errno == errno.EROFS:
            raise BerthError(f"{value.strerror}") from None
        raise value
    return value  # type: ignore[no-any-return]
