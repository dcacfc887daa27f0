"""The user's subordinate ID ranges (``/etc/subuid``, ``/etc/subgid``) and the maps from them.

Container root is the user; container IDs 1..65535 are the first 65535 IDs of the user's
range, as Podman lays them out. Fewer than 65535 IDs would leave common image users
(``nobody`` = 65534) unmapped, so a short range is refused with the file to fix.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from ..errors import BerthError

NEEDED = 65535  # container IDs 1..65535
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"


class IdMapError(BerthError):
    """The user has no usable subordinate range; the message names the file to fix."""

    exit_code = 125


@dataclass(frozen=True)
class IdMap:
    """One line of a uid_map/gid_map: ``container`` maps to ``host`` for ``size`` IDs."""

    container: int
    host: int
    size: int

    def as_dict(self) -> dict[str, int]:
        return {"ContainerID": self.container, "HostID": self.host, "Size": self.size}


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def sub_range(path: str, uid: int) -> tuple[int, int] | None:
    """The first range for ``uid`` (by name or number) in a subid file, or None."""
    keys = {str(uid)}
    name = _user_name(uid)
    if name:
        keys.add(name)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in keys:
                    try:
                        start, count = int(parts[1]), int(parts[2])
                    except ValueError:
                        continue
                    if start >= 0 and count > 0:
                        return start, count
    except OSError:
        return None
    return None


def maps_for(path: str, kind: str, host_id: int, uid: int) -> list[IdMap]:
    """[0 -> host_id, 1..65535 -> subordinate range] or a one-line error naming ``path``."""
    name = _user_name(uid) or str(uid)
    got = sub_range(path, uid)
    fix = (f'add a line "{name}:100000:65536" to {path} '
           f"(usermod --add-sub{kind}s 100000-165535 {name})")
    if got is None:
        raise IdMapError(f"no subordinate {kind.upper()} range for user {name} in {path}: {fix}")
    start, count = got
    if count < NEEDED:
        raise IdMapError(f"subordinate {kind.upper()} range for user {name} in {path} has "
                         f"{count} IDs, {NEEDED} are needed: {fix}")
    return [IdMap(0, host_id, 1), IdMap(1, start, NEEDED)]


def user_maps(uid: int, gid: int) -> tuple[list[IdMap], list[IdMap]]:
    """The (uid maps, gid maps) a new namespace gets for this user."""
    return maps_for(SUBUID, "uid", uid, uid), maps_for(SUBGID, "gid", gid, uid)


def current_maps() -> tuple[list[IdMap], list[IdMap]]:
    """The maps of the namespace this process is in (for ``info``)."""
    def read(name: str) -> list[IdMap]:
        with open(f"/proc/self/{name}", encoding="ascii") as f:
            return [IdMap(*(int(x) for x in line.split())) for line in f if line.strip()]
    return read("uid_map"), read("gid_map")


def argv(tool: str, pid: int, maps: list[IdMap]) -> list[str]:
    """``newuidmap PID 0 UID 1 1 START 65535`` (the helper checks the ranges, not us)."""
    out = [tool, str(pid)]
    for m in maps:
        out += [str(m.container), str(m.host), str(m.size)]
    return out


def helper(name: str) -> str:
    """Path of ``newuidmap``/``newgidmap`` or a clear error (Debian package ``uidmap``)."""
    for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    raise IdMapError(f"{name} not found: install the uidmap package (it provides "
                     "newuidmap and newgidmap)")
