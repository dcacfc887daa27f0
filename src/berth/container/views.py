"""What users and scripts see of a container: Docker's inspect JSON, ps rows and filters.

Kept apart from the lifecycle so the formats can follow Docker closely (field names,
``"0001-01-01T00:00:00Z"`` for never, ``/name``) without cluttering the service.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgument
from .create_options import argv_of
from .records import ContainerRecord

ZERO_TIME = "0001-01-01T00:00:00Z"
PS_FILTERS = {"status", "name", "id", "ancestor", "label", "exited", "before", "since",
              "volume", "network", "health", "publish", "expose", "is-task"}
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _ts(t: float | None) -> str:
    from ..units import rfc3339_nano

    return rfc3339_nano(t) if t else ZERO_TIME


def mounts(rec: ContainerRecord) -> list[dict[str, Any]]:
    out = [{"Type": "bind", "Source": b["Source"], "Destination": b["Destination"],
            "Mode": b.get("Mode", ""), "RW": b["RW"], "Propagation": "rprivate"}
           for b in rec.config.get("HostConfig", {}).get("Mounts") or []]
    volume_mounts = rec.config.get("HostConfig", {}).get("VolumeMounts")
    if volume_mounts:
        from ..volumes.specs import inspect_mounts

        out += inspect_mounts(volume_mounts, rec.root)
    return out


def _host_config(stored: dict[str, Any], runtime: str) -> dict[str, Any]:
    """Every key of Docker 20.10's ``HostConfig`` (the API spec's set), stored values
    first, Docker's zero values for the rest: scripts index keys berth never sets."""
    from .spec import MASKED_PATHS, READONLY_PATHS

    host = dict(stored)
    host.pop("Mounts", None)
    host.pop("VolumeMounts", None)  # berth's own record; shown as the top-level Mounts
    if not host.get("Runtime"):
        host["Runtime"] = runtime
    priv = bool(host.get("Privileged"))
    defaults: dict[str, Any] = {
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "k8s-file", "Config": {}},
        "NetworkMode": "default", "PortBindings": {},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}, "AutoRemove": False,
        "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
        "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
        "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
        "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None,
        "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": runtime,
        "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
        "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
        "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
        "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None,
        "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0,
        "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None,
        "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
        "MaskedPaths": None if priv else list(MASKED_PATHS),
        "ReadonlyPaths": None if priv else list(READONLY_PATHS),
    }
    out = {k: host[k] if k in host else v for k, v in defaults.items()}
    out.update({k: v for k, v in host.items() if k not in out})  # berth's extras last
    return out


def inspect(rec: ContainerRecord, image_lowers: list[str] | None = None, *,
            size: tuple[int, int] | None = None) -> dict[str, Any]:
    """``docker container inspect`` for one container; ``size`` = (rw, rootfs) for -s."""
    cfg = {k: v for k, v in rec.config.items() if k != "HostConfig"}
    host = _host_config(rec.config.get("HostConfig", {}), rec.runtime or "")
    args = argv_of(rec.config)
    running = rec.status in ("running", "paused", "restarting")
    return {
        "Id": rec.id,
        "Created": _ts(rec.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": rec.status,
            "Running": rec.status in ("running", "paused"),
            "Paused": rec.status == "paused",
            "Restarting": rec.status == "restarting",
            "OOMKilled": rec.oom_killed,
            "Dead": rec.status == "dead",
            "Pid": (rec.pid or 0) if rec.status in ("running", "paused") else 0,
            "ExitCode": (rec.exit_code or 0) if not running or rec.status == "restarting"
            else 0,
            "Error": rec.error,
            "StartedAt": _ts(rec.started_at),
            "FinishedAt": _ts(rec.finished_at),
            **({"Health": _health(rec)} if rec.health is not None else {}),
        },
        "Image": rec.image_id,
        "ResolvConfPath": f"{rec.dir}/resolv.conf",
        "HostnamePath": f"{rec.dir}/hostname",
        "HostsPath": f"{rec.dir}/hosts",
        "LogPath": rec.log_path,
        "Name": "/" + rec.name,
        "RestartCount": rec.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host,
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(image_lowers or []), "UpperDir": rec.upper,
            "WorkDir": rec.work, "MergedDir": rec.merged}},
        **({"SizeRw": size[0], "SizeRootFs": size[1]} if size is not None else {}),
        "Mounts": mounts(rec),
        "Config": cfg,
        "NetworkSettings": {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
                            "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
                            "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
                            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                            "MacAddress": "", "Networks": {}},
    }


def _health(rec: ContainerRecord) -> dict[str, Any]:
    h = rec.health or {}
    return {"Status": h.get("Status", "starting"), "FailingStreak": h.get("FailingStreak", 0),
            "Log": h.get("Log") or []}


def health_status(rec: ContainerRecord) -> str:
    """``starting``/``healthy``/``unhealthy``, or ``none`` without a health check."""
    if rec.health is None or not rec.config.get("Healthcheck"):
        return "none"
    return str(rec.health.get("Status", "starting"))


# -- ps ------------------------------------------------------------------------------------
def command_of(rec: ContainerRecord) -> str:
    """Docker's list Command: Path plus args, args with spaces in single quotes."""
    args = argv_of(rec.config)
    if not args:
        return ""
    rest = [f"'{a}'" if " " in a else a for a in args[1:]]
    return " ".join([args[0], *rest])


def ellipsis(s: str, width: int) -> str:
    """Docker's formatter.Ellipsis: cut to ``width`` characters ending in ``…``."""
    if len(s) <= width:
        return s
    return s[:width - 1] + "…"


def go_quote(s: str) -> str:
    """strconv.Quote for the printable text a command is."""
    return json.dumps(s, ensure_ascii=False)


def status_text(rec: ContainerRecord, now: float) -> str:
    from ..units import human_duration

    if rec.status in ("running", "paused"):
        up = "Up " + human_duration(now - (rec.started_at or now))
        if rec.status == "paused":
            return up + " (Paused)"
        health = health_status(rec)
        if health != "none":
            return up + (" (health: starting)" if health == "starting" else f" ({health})")
        return up
    if rec.status == "restarting":
        return (f"Restarting ({rec.exit_code or 0}) "
                f"{human_duration(now - (rec.finished_at or now))} ago")
    if rec.status == "exited":
        if not rec.finished_at:
            return f"Exited ({rec.exit_code or 0})"
        return f"Exited ({rec.exit_code or 0}) {human_duration(now - rec.finished_at)} ago"
    if rec.status == "removing":
        return "Removal In Progress"
    if rec.status == "dead":
        return "Dead"
    return "Created"


def ps_row(rec: ContainerRecord, image: str, *, trunc: bool, now: float,
           size: Callable[[ContainerRecord], str] | None = None) -> dict[str, Any]:
    from ..units import time_ago

    cmd = command_of(rec)
    return {
        "ID": rec.short_id if trunc else rec.id,
        "Image": image,
        "Command": go_quote(ellipsis(cmd, 20) if trunc else cmd),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(rec.created)),
        "RunningFor": time_ago(rec.created, now),
        "Ports": "",
        "State": rec.status,
        "Status": status_text(rec, now),
        "Size": size(rec) if size else "",
        "Names": rec.name,
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(rec.labels.items())),
        "Mounts": ",".join(m["Source"] for m in mounts(rec)),
        "Networks": rec.config.get("HostConfig", {}).get("NetworkMode", ""),
        "LocalVolumes": "0",
    }


def label_match(labels: dict[str, str], wanted: list[str]) -> bool:
    """``label=k``, ``label=k=v`` all must hold; ``label!=...`` must not (prune's form)."""
    for w in wanted:
        neg = w.startswith("!")
        w = w[1:] if neg else w
        k, eq, v = w.partition("=")
        hit = k in labels and (not eq or labels[k] == v)
        if hit == neg:
            return False
    return True


def build_filter(filters: dict[str, list[str]], find: Callable[[str], ContainerRecord],
                 image_ids: Callable[[str], set[str]]) -> Callable[[ContainerRecord], bool]:
    """One predicate for ``ps --filter``; values of one key OR together, keys AND."""
    for s in filters.get("status", []):
        if s not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={s}'")
    exited = []
    for e in filters.get("exited", []):
        try:
            exited.append(int(e))
        except ValueError:
            raise InvalidArgument(f"invalid filter 'exited={e}'") from None
    before = [find(b).created for b in filters.get("before", [])]
    since = [find(s).created for s in filters.get("since", [])]
    ancestors: set[str] = set()
    for a in filters.get("ancestor", []):
        ancestors |= image_ids(a)
    names = [re.compile(n) for n in filters.get("name", [])]
    for h in filters.get("health", []):
        if h not in ("starting", "healthy", "unhealthy", "none"):
            raise InvalidArgument(f"Unrecognised filter value for health: {h}")

    def pred(rec: ContainerRecord) -> bool:
        if "status" in filters and rec.status not in filters["status"]:
            return False
        if "id" in filters and not any(rec.id.startswith(i) for i in filters["id"]):
            return False
        if names and not any(n.search(rec.name) for n in names):
            return False
        if "label" in filters and not label_match(rec.labels, filters["label"]):
            return False
        if exited and (rec.status != "exited" or rec.exit_code not in exited):
            return False
        if before and not all(rec.created < b for b in before):
            return False
        if since and not all(rec.created > s for s in since):
            return False
        if "ancestor" in filters and rec.image_id not in ancestors:
            return False
        if "health" in filters and health_status(rec) not in filters["health"]:
            return False
        for k in ("volume", "network", "publish", "expose"):
            if k in filters:
                if k == "network" and rec.config.get("HostConfig", {}).get(
                        "NetworkMode") in filters[k]:
                    continue
                if k == "volume" and any(m["Source"] in filters[k] or m["Destination"] in
                                         filters[k] or m.get("Name") in filters[k]
                                         for m in mounts(rec)):
                    continue
                return False
        return True

    return pred
