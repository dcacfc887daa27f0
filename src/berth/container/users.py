"""Resolve ``--user`` against the image's own /etc/passwd and /etc/group.

The rootfs belongs to an untrusted image: an ``/etc/passwd`` that is a symlink to
``/etc/shadow`` of the *host* must not be followed. Every path is therefore resolved by
:mod:`berth.container.rootpath` (``openat2(RESOLVE_IN_ROOT)``, or its fd walk): symlinks
are re-rooted at the rootfs (the way the kernel would see them after pivot_root), so
nothing outside the rootfs is ever read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from ..errors import InvalidArgument

_MAX_FILE = 4 << 20  # passwd/group beyond 4 MiB is hostile, not a user database


@dataclass
class ResolvedUser:
    """What the OCI ``process.user`` and ``HOME`` need."""

    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def open_in_root(root: str, path: str, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` as if ``root`` were ``/``; symlinks cannot climb out of ``root``
    (:func:`berth.container.rootpath.open_in_root`: openat2 ``RESOLVE_IN_ROOT``)."""
    from .rootpath import open_in_root as _open

    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _open(root_fd, path, flags)
    finally:
        os.close(root_fd)


def read_in_root(root: str, path: str) -> str | None:
    """Text of a regular file inside ``root``, or None when it is absent or not a file."""
    try:
        fd = open_in_root(root, path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(_MAX_FILE).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _entries(text: str | None) -> list[list[str]]:
    if not text:
        return []
    return [line.split(":") for line in text.splitlines()
            if line and not line.startswith("#") and line.count(":") >= 2]


def _int(s: str) -> int | None:
    return int(s) if s.isdigit() else None


def resolve_user(rootfs: str, user: str | None) -> ResolvedUser:
    """Docker's rules: names resolve via passwd/group; a numeric uid need not exist.

    The user's supplementary groups come from /etc/group membership, and HOME from passwd,
    because programs in the image rely on them exactly as on a normal login.
    """
    spec = (user or "").strip() or "0"
    uspec, _, gspec = spec.partition(":")
    passwd = _entries(read_in_root(rootfs, "/etc/passwd"))
    groups = _entries(read_in_root(rootfs, "/etc/group"))

    entry = None
    for e in passwd:
        if len(e) >= 4 and (e[0] == uspec or (_int(uspec) is not None and e[2] == uspec)):
            entry = e
            break
    if entry is not None and _int(entry[2]) is not None:
        uid = int(entry[2])
        gid = _int(entry[3]) or 0
        name, home = entry[0], (entry[5] if len(entry) > 5 and entry[5] else "/")
    elif _int(uspec) is not None:
        uid, gid, name, home = int(uspec), 0, None, "/"
    else:
        raise InvalidArgument(
            f"unable to find user {uspec}: no matching entries in passwd file",
            exit_code=125)

    if gspec:
        g = _int(gspec)
        if g is None:
            match = [e for e in groups if e[0] == gspec and _int(e[2]) is not None]
            if not match:
                raise InvalidArgument(
                    f"unable to find group {gspec}: no matching entries in group file",
                    exit_code=125)
            g = int(match[0][2])
        gid = g

    extra: list[int] = []
    if name is not None and not gspec:
        for e in groups:
            members = e[3].split(",") if len(e) > 3 else []
            g = _int(e[2])
            if g is not None and name in members and g != gid and g not in extra:
                extra.append(g)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=extra, home=home)
