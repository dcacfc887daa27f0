"""What ``berth info`` adds for a rootless store: the flag, the ID maps, what is limited."""

from __future__ import annotations

import os
from typing import Any

from . import idmaps


def info() -> dict[str, Any]:
    """``Rootless``, ``IDMappings`` (Podman's field names) and warnings about limits."""
    umaps, gmaps = idmaps.current_maps()
    warnings = []
    from .cgroups import delegated

    if not delegated():
        warnings.append("rootless: no delegated cgroup (cgroup v1, or v2 without a "
                        "delegated subtree): -m, --cpus and --pids-limit are refused")
    if not tun_usable():
        warnings.append("rootless: /dev/net/tun is not usable by this user, so pasta/"
                        "slirp4netns networking is unavailable (only --network none|host)")
    return {"Rootless": True,
            "IDMappings": {"UIDMap": [m.as_dict() for m in umaps],
                           "GIDMap": [m.as_dict() for m in gmaps]},
            "RootlessWarnings": warnings}


def tun_usable() -> bool:
    """Whether the user (not namespace root) may open /dev/net/tun read-write."""
    try:
        st = os.stat("/dev/net/tun")
    except OSError:
        return False
    return bool(st.st_mode & 0o006 == 0o006)


def format_maps(data: dict[str, Any]) -> list[str]:
    """Lines for the plain ``info`` output."""
    out = [" Rootless: true", " ID Mappings:"]
    for kind in ("UIDMap", "GIDMap"):
        for m in data["IDMappings"][kind]:
            out.append(f"  {kind}: container {m['ContainerID']} -> host {m['HostID']} "
                       f"(size {m['Size']})")
    return out
