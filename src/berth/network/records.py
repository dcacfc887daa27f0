"""Network and endpoint rows as typed records, and Docker's views of them.

A *network* row says what should exist on the host (bridge name, subnet, gateway); an
*endpoint* row is one container's seat on one network, held from ``create`` (or
``network connect``) until ``rm`` so the address, MAC and interface name stay the same
across restarts -- peers' hosts files and ARP caches stay right.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

PREDEFINED = ("bridge", "host", "none")
DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}


@dataclass
class NetworkRecord:
    id: str
    name: str
    driver: str                  # bridge | host | null
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Any) -> NetworkRecord:
        return cls(id=row["id"], name=row["name"], driver=row["driver"],
                   subnet=row["subnet"] or "", gateway=row["gateway"] or "",
                   internal=bool(row["internal"]), labels=json.loads(row["labels"]),
                   created=row["created"], options=json.loads(row["options"]))

    @property
    def bridge(self) -> str:
        """The Linux bridge device (stored, so a later naming change cannot orphan it)."""
        return str(self.options.get("bridge", ""))

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def is_default(self) -> bool:
        """The default ``bridge``: no name resolution between peers (Docker's rule)."""
        return self.name == "bridge"

    @property
    def prefixlen(self) -> int:
        return IPv4Network(self.subnet).prefixlen if self.subnet else 0


@dataclass
class EndpointRecord:
    container_id: str
    network_id: str
    ip: str
    mac: str
    aliases: list[str]
    ifname: str
    created: float

    @classmethod
    def from_row(cls, row: Any) -> EndpointRecord:
        return cls(container_id=row["container_id"], network_id=row["network_id"],
                   ip=row["ip"], mac=row["mac"], aliases=json.loads(row["aliases"]),
                   ifname=row["ifname"], created=row["created"])

    @property
    def endpoint_id(self) -> str:
        return hashlib.sha256(f"{self.container_id}/{self.network_id}".encode()).hexdigest()


def _ts(t: float) -> str:
    from ..units import rfc3339_nano

    return rfc3339_nano(t)


def inspect_network(net: NetworkRecord, members: list[tuple[EndpointRecord, str]]
                    ) -> dict[str, Any]:
    """``docker network inspect`` for one network; ``members`` are (endpoint, name)."""
    ipam_cfg = []
    if net.subnet:
        cfg = {"Subnet": net.subnet, "Gateway": net.gateway}
        if net.options.get("ip_range"):
            cfg["IPRange"] = net.options["ip_range"]
        ipam_cfg.append(cfg)
    opts: dict[str, str] = dict(net.options.get("driver_opts") or {})
    if net.is_default:
        opts.update({"com.docker.network.bridge.default_bridge": "true",
                     "com.docker.network.bridge.enable_icc": "true",
                     "com.docker.network.bridge.enable_ip_masquerade": "true",
                     "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                     "com.docker.network.bridge.name": net.bridge})
    containers = {
        ep.container_id: {"Name": name, "EndpointID": ep.endpoint_id,
                          "MacAddress": ep.mac,
                          "IPv4Address": f"{ep.ip}/{net.prefixlen}", "IPv6Address": ""}
        for ep, name in members}
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": _ts(net.created),
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if net.predefined else {},
                 "Config": ipam_cfg},
        "Internal": net.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": opts,
        "Labels": dict(net.labels),
    }


def ls_row(net: NetworkRecord, *, trunc: bool) -> dict[str, str]:
    """One ``network ls`` row (Docker's field names, usable in ``--format``)."""
    from ..units import rfc3339_nano

    return {"ID": net.id[:12] if trunc else net.id, "Name": net.name, "Driver": net.driver,
            "Scope": "local", "IPv6": "false", "Internal": str(net.internal).lower(),
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(net.labels.items())),
            "CreatedAt": rfc3339_nano(net.created)}
