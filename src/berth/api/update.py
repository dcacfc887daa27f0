"""``POST /containers/{id}/update``: Docker's ``UpdateConfig`` onto :class:`UpdateOptions`.

The docker CLI sends the whole ``Resources`` struct with Go's zero values for what the user
did not set, and dockerd reads a zero (``""``, ``null``) as "leave it as it is": so do we.
A non-zero value berth cannot apply is a 400 naming the field, never silently dropped.
"""

from __future__ import annotations

from typing import Any

from berth.errors import InvalidArgument

from .common import typed

# UpdateConfig fields berth cannot change (zero/empty is fine: that is "unchanged")
_UNSUPPORTED = ("BlkioWeight", "BlkioWeightDevice", "BlkioDeviceReadBps",
                "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
                "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetMems", "Devices",
                "DeviceCgroupRules", "DeviceRequests", "KernelMemory", "KernelMemoryTCP",
                "MemorySwappiness", "OomKillDisable", "Ulimits", "CpuCount", "CpuPercent",
                "IOMaximumIOps", "IOMaximumBandwidth", "CgroupParent")


def nano_cpus(body: dict[str, Any]) -> int:
    """``NanoCpus``, or ``CpuQuota``/``CpuPeriod`` as the same share of a CPU (berth's
    cgroup always uses a 100 ms period, so only the ratio is kept; both at once is
    Docker's conflict too)."""
    nano = typed(body, "NanoCpus", int, 0)
    quota = typed(body, "CpuQuota", int, 0)
    period = typed(body, "CpuPeriod", int, 0)
    if nano and (quota or period):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period/Quota cannot "
                              "both be set")
    if period and not 1000 <= period <= 1000000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or "
                              "larger than 1s (i.e. 1000000)")
    if quota and quota != -1:
        if quota < 1000:
            raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        return quota * 1_000_000_000 // (period or 100000)
    return nano


def update_options(body: dict[str, Any]) -> Any:
    """The request body as :class:`~berth.container.update.UpdateOptions` (400 on a wrong
    type, a field berth cannot apply, or nothing to change)."""
    from berth.container.update import UpdateOptions

    for key in _UNSUPPORTED:
        if body.get(key) not in (None, 0, "", [], False):
            raise InvalidArgument(f"berth cannot update {key} of a container")
    o = UpdateOptions()
    nano = nano_cpus(body)
    o.cpus = nano / 1e9 if nano else None
    o.cpu_shares = typed(body, "CpuShares", int, 0) or None
    o.cpuset_cpus = typed(body, "CpusetCpus", str, "") or None
    o.memory = typed(body, "Memory", int, 0) or None
    o.memory_swap = typed(body, "MemorySwap", int, 0) or None
    o.memory_reservation = typed(body, "MemoryReservation", int, 0) or None
    pids = typed(body, "PidsLimit", int, None)
    o.pids_limit = None if pids is None else (pids if pids > 0 else -1)
    rp = typed(body, "RestartPolicy", dict, {}) or {}
    name = typed(rp, "Name", str, "")
    if name:
        retries = typed(rp, "MaximumRetryCount", int, 0)
        o.restart = f"{name}:{retries}" if name == "on-failure" and retries else name
    return o
