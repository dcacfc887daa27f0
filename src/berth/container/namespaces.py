"""``--pid``/``--ipc`` ``container:NAME``: joining another container's namespaces.

The OCI config names a namespace to join by a path, ``/proc/PID/ns/KIND`` of that
container's init. The PID changes whenever the other container restarts, so the path is
resolved at create (a stopped peer is an error, as in Docker) and again at every start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Conflict

if TYPE_CHECKING:  # pragma: no cover
    from .records import ContainerRecord

Find = Callable[[str], "ContainerRecord"]
_MODES = (("pid", "PidMode"), ("ipc", "IpcMode"))


def ns_path(kind: str, mode: str, find: Find) -> str:
    """``container:NAME`` -> that running container's namespace file; others as given."""
    if not mode.startswith("container:"):
        return "" if mode in ("private", "shareable") else mode
    other = find(mode.partition(":")[2])
    if other.status != "running" or not other.pid:
        raise Conflict(f"cannot join {kind.upper()} of a non running container: {other.id}")
    return f"/proc/{other.pid}/ns/{kind}"


def spec_options(host: dict[str, Any], find: Find) -> dict[str, Any]:
    """SpecOptions of the rarer HostConfig keys: rlimits, devices, sysctls, namespaces."""
    return {"ulimits": host.get("Ulimits") or [], "devices": host.get("Devices") or [],
            "sysctls": host.get("Sysctls") or {},
            "pid_ns": ns_path("pid", host.get("PidMode") or "", find),
            "ipc_ns": ns_path("ipc", host.get("IpcMode") or "", find)}


def rejoin(bundle: str, host: dict[str, Any], find: Find) -> None:
    """Point the bundle's shared namespaces at the peers' current processes."""
    shared = {kind: ns_path(kind, host.get(key) or "", find) for kind, key in _MODES
              if (host.get(key) or "").startswith("container:")}
    if not shared:
        return
    path = os.path.join(bundle, "config.json")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    for ns in spec["linux"]["namespaces"]:
        if ns["type"] in shared:
            ns["path"] = shared[ns["type"]]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    os.replace(tmp, path)
