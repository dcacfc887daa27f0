"""``-p``/``-P`` for rootless containers: the host ports pasta forwards, decided at start.

The requests are root's (:func:`berth.network.portbindings.requests_of`: fixed ports, port
ranges paired one to one, ``HOSTRANGE:PORT`` = one free port of the range, ``-P`` = every
exposed port to a random ephemeral one) and so is the allocator, which probes by binding as
the user. What differs: pasta binds the host sockets as the user, so ports below
``net.ipv4.ip_unprivileged_port_start`` are refused up front, with the sysctl quoted; and
the decision lives in ``<netns>.ports`` next to pasta's pid file (there is no sandbox row),
read back by ``port``/``ps`` and removed with the namespace.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import InvalidArgument


def unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def _requests(config: dict[str, Any]) -> list[Any]:
    from ..network.portbindings import requests_of

    host = config.get("HostConfig") or {}
    return requests_of(host, (config.get("ExposedPorts") or {}).keys())


def check(config: dict[str, Any]) -> None:
    """Refuse, at create, host ports a user cannot bind (exit 125, sysctl quoted)."""
    low = unprivileged_port_start()
    for r in _requests(config):
        if r.host_port_first and r.host_port_first < low:
            hp = str(r.host_port_first) if r.host_port_first == r.host_port_last else \
                f"{r.host_port_first}-{r.host_port_last}"
            raise InvalidArgument(
                f"cannot publish host port {hp} rootless: ports below {low} need root "
                f"(net.ipv4.ip_unprivileged_port_start={low})", exit_code=125)


def decide(config: dict[str, Any], ns: str) -> list[Any]:
    """Pick the host ports now (free ones), record them beside ``ns``; the mappings."""
    check(config)
    reqs = _requests(config)
    if not reqs:
        return []
    from ..network.ports import allocate

    maps = allocate(reqs)
    os.makedirs(os.path.dirname(ns), mode=0o700, exist_ok=True)
    tmp = ns + ".ports.tmp"
    with open(tmp, "w", encoding="ascii") as f:
        json.dump([[m.container_port, m.proto, m.host_ip, m.host_port] for m in maps], f)
    os.replace(tmp, ns + ".ports")
    return maps


def recorded(ns: str) -> list[Any]:
    """The mappings :func:`decide` recorded for a running container ([] when none)."""
    from ..network.ports import PortMapping

    try:
        with open(ns + ".ports", encoding="ascii") as f:
            return [PortMapping(int(c), str(p), str(i), int(h)) for c, p, i, h in json.load(f)]
    except (OSError, ValueError, TypeError):
        return []


def pasta_args(maps: list[Any]) -> list[str]:
    """pasta ``-t``/``-u`` options forwarding exactly ``maps`` (``none`` for no forward)."""
    tcp = [f"{m.host_ip + '/' if m.host_ip else ''}{m.host_port}:{m.container_port}"
           for m in maps if m.proto == "tcp"]
    udp = [f"{m.host_ip + '/' if m.host_ip else ''}{m.host_port}:{m.container_port}"
           for m in maps if m.proto == "udp"]
    if any(m.proto not in ("tcp", "udp") for m in maps):
        raise InvalidArgument("rootless publishing forwards tcp and udp only (pasta)",
                              exit_code=125)
    return ["-t", ",".join(tcp) or "none", "-u", ",".join(udp) or "none"]
