"""``stats``: a container's resource use, read straight from its cgroup and /proc.

One :class:`Sample` per container per instant; CPU % needs two, so :func:`collect` samples
every container, waits once, samples again and divides CPU time by wall time (Docker's
``cpuDelta / systemDelta * onlineCPUs`` is the same ratio). Memory usage subtracts the
inactive page cache as Docker's CLI does (``total_inactive_file`` on v1, ``inactive_file``
on v2); an unlimited cgroup shows the host's memory as its limit, like Docker.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from berth.container.cgroupfs import cgroup_dirs, controller_dir, read_int, read_keyed, read_text
from berth.container.cgroups import is_v2
from berth.container.records import ContainerRecord

_UNLIMITED = 1 << 62


@dataclass
class Sample:
    when: float
    cpu_ns: int = 0
    mem_usage: int = 0
    mem_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    blk_read: int = 0
    blk_write: int = 0
    pids: int = 0


def host_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def sample(pid: int | None) -> Sample:
    """Counters of the container whose init is ``pid`` (all zero when not running)."""
    s = Sample(time.monotonic())
    if not pid:
        return s
    dirs = cgroup_dirs(pid)
    if not dirs:
        return s
    v2 = is_v2()
    cpu = controller_dir(dirs, "cpuacct")
    mem = controller_dir(dirs, "memory")
    if v2:
        s.cpu_ns = read_keyed(cpu, "cpu.stat").get("usage_usec", 0) * 1000
        usage = read_int(mem, "memory.current") or 0
        inactive = read_keyed(mem, "memory.stat").get("inactive_file", 0)
        limit = read_int(mem, "memory.max")
    else:
        s.cpu_ns = read_int(cpu, "cpuacct.usage") or 0
        usage = read_int(mem, "memory.usage_in_bytes") or 0
        inactive = read_keyed(mem, "memory.stat").get("total_inactive_file", 0)
        limit = read_int(mem, "memory.limit_in_bytes")
    s.mem_usage = usage - inactive if inactive < usage else usage
    host = host_memory()
    s.mem_limit = host if limit is None or limit >= _UNLIMITED or (host and limit > host) \
        else limit
    s.pids = read_int(controller_dir(dirs, "pids"), "pids.current") or 0
    s.blk_read, s.blk_write = _block_io(controller_dir(dirs, "blkio"), v2)
    s.net_rx, s.net_tx = _net_io(pid)
    return s


def _block_io(directory: str | None, v2: bool) -> tuple[int, int]:
    read = write = 0
    if v2:
        for line in (read_text(directory, "io.stat") or "").splitlines():
            for field in line.split()[1:]:
                key, _, value = field.partition("=")
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
        return read, write
    for name in ("blkio.throttle.io_service_bytes_recursive", "blkio.io_service_bytes_recursive"):
        text = read_text(directory, name)
        if not text:
            continue
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                if parts[1] == "Read":
                    read += int(parts[2])
                else:
                    write += int(parts[2])
        if read or write:
            break
    return read, write


def _net_io(pid: int) -> tuple[int, int]:
    """Bytes received/sent on the container's interfaces (none when it shares the host's)."""
    try:
        if os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat("/proc/self/ns/net").st_ino:
            return 0, 0
        with open(f"/proc/{pid}/net/dev", encoding="ascii") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return 0, 0
    rx = tx = 0
    for line in lines:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = rest.split()
        if len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def collect(records: list[ContainerRecord], interval: float = 0.5) -> list[dict[str, Any]]:
    """One row per container in Docker's ``stats`` shape (numbers, not yet formatted)."""
    first = [sample(r.pid if r.running else None) for r in records]
    if any(r.running for r in records):
        time.sleep(interval)
    rows = []
    for rec, a in zip(records, first):
        b = sample(rec.pid if rec.running else None)
        wall = b.when - a.when
        cpu = (b.cpu_ns - a.cpu_ns) / (wall * 1e9) * 100.0 if rec.running and wall > 0 else 0.0
        rows.append({"record": rec, "cpu": max(cpu, 0.0), "sample": b})
    return rows


def format_row(row: dict[str, Any], shown: str, *, trunc: bool = True) -> dict[str, str]:
    """Docker's stats fields as strings: ``1.5MiB / 31.3GiB``, ``0.00%``."""
    from berth.units import bytes_size, human_size

    rec: ContainerRecord = row["record"]
    s: Sample = row["sample"]
    mem_pct = s.mem_usage / s.mem_limit * 100.0 if s.mem_limit else 0.0
    return {
        "Container": shown,
        "ID": rec.short_id if trunc else rec.id,
        "Name": rec.name,
        "CPUPerc": f"{row['cpu']:.2f}%",
        "MemUsage": f"{bytes_size(s.mem_usage)} / {bytes_size(s.mem_limit)}",
        "MemPerc": f"{mem_pct:.2f}%",
        "NetIO": f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
        "BlockIO": f"{human_size(s.blk_read)} / {human_size(s.blk_write)}",
        "PIDs": str(s.pids),
    }
