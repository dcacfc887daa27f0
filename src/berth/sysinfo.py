"""The host facts of ``docker info``: the keys of the Engine API's ``SystemInfo``.

Scripts and tools read ``docker info --format '{{.NCPU}}'``, ``.MemTotal``, ``.OSType``,
``.CgroupDriver``...; a missing key is a template error, so berth fills every key of the
API spec's ``SystemInfo`` with what it can measure here and Docker's zero value for the
rest (no swarm, no cluster store, no plugins but its own drivers). Cheap reads only:
``info`` must stay fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from typing import Any


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _mem_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _os_version() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("VERSION_ID="):
            return line.split("=", 1)[1].strip('"')
    return ""


def _engine_id(root: str) -> str:
    """A stable ID per store, in Docker's ``XXXX:XXXX:...`` shape (12 groups of 4)."""
    h = hashlib.sha256(os.path.realpath(root).encode()).hexdigest().upper()[:48]
    return ":".join(h[i:i + 4] for i in range(0, 48, 4))


def _proxy(name: str) -> str:
    return os.environ.get(name) or os.environ.get(name.lower()) or ""


def system_info(root: str, base: dict[str, Any], runtimes: dict[str, str],
                default_runtime: str) -> dict[str, Any]:
    """Docker's ``SystemInfo`` keys around ``base`` (berth's own counts and names win)."""
    from berth.units import rfc3339_nano

    cgroup2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    nf = "/proc/sys/net/bridge/bridge-nf-call-"
    info: dict[str, Any] = {
        "ID": _engine_id(root),
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
        "ContainersStopped": 0, "Images": 0, "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                         ["Native Overlay Diff", "true"]],
        "DockerRootDir": root,
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["k8s-file", "json-file", "none"]},
        "MemoryLimit": True, "SwapLimit": os.path.exists("/sys/fs/cgroup/memory.swap.max")
        or os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        "KernelMemory": not cgroup2, "KernelMemoryTCP": not cgroup2,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
        "PidsLimit": True, "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
        "BridgeNfIptables": _read(nf + "iptables") == "1",
        "BridgeNfIp6tables": _read(nf + "ip6tables") == "1",
        "Debug": False, "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": not cgroup2, "NGoroutines": 1,
        "SystemTime": rfc3339_nano(time.time()),
        "LoggingDriver": "k8s-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if cgroup2 else "1", "NEventsListener": 0,
        "KernelVersion": os.uname().release, "OperatingSystem": "",
        "OSVersion": _os_version(), "OSType": "linux", "Architecture": os.uname().machine,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "IndexConfigs": {"docker.io": {
                               "Name": "docker.io", "Mirrors": [], "Secure": True,
                               "Official": True}},
                           "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
        "HttpProxy": _proxy("HTTP_PROXY"), "HttpsProxy": _proxy("HTTPS_PROXY"),
        "NoProxy": _proxy("NO_PROXY"), "Name": socket.gethostname(), "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": "", "ClusterStore": "",
        "ClusterAdvertise": "",
        "Runtimes": {name: {"path": path} for name, path in runtimes.items()},
        "DefaultRuntime": default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False, "Isolation": "",
        "InitBinary": "catatonit" if shutil.which("catatonit") else "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"]
        + (["name=cgroupns"] if cgroup2 else []),
        "ProductLicense": "", "DefaultAddressPools": [
            {"Base": "172.17.0.0/16", "Size": 16}, {"Base": "192.168.0.0/16", "Size": 20}],
        "Warnings": None,
    }
    info.update(base)
    return info


def runtimes_on_path() -> dict[str, str]:
    """The OCI runtimes berth can use here, name -> path."""
    return {n: p for n in ("crun", "runc") if (p := shutil.which(n))}
