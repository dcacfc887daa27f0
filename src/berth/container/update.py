"""``update``: change the resources and restart policy of a container, live if it runs.

The new values go into the row's HostConfig (what inspect, restart and commit read), into
the bundle's ``config.json`` (what the next start uses) and, for a running container,
through ``<runtime> update`` into its cgroup, computed by the same code that made the
original spec (:func:`berth.container.spec.resources`) so the two cannot disagree.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgument
from . import restart

if TYPE_CHECKING:  # pragma: no cover
    from .records import ContainerRecord
    from .service import ContainerService


@dataclass
class UpdateOptions:
    """What ``docker update`` can change; None leaves a value as it is."""

    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    pids_limit: int | None = None
    restart: str | None = None

    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())


def _new_host(rec: ContainerRecord, o: UpdateOptions) -> dict[str, Any]:
    host = dict(rec.config.get("HostConfig", {}))
    if o.restart is not None:
        if host.get("AutoRemove"):
            raise InvalidArgument("Restart policy cannot be updated because AutoRemove is "
                                  "enabled for the container")
        host["RestartPolicy"] = restart.parse(o.restart).to_docker()
    if o.cpus is not None:
        host["NanoCpus"] = int(o.cpus * 1e9)
    if o.cpu_shares is not None:
        host["CpuShares"] = o.cpu_shares
    if o.cpuset_cpus is not None:
        from .host_options import check_cpuset

        host["CpusetCpus"] = check_cpuset(o.cpuset_cpus) if o.cpuset_cpus else ""
    if o.pids_limit is not None:
        host["PidsLimit"] = o.pids_limit if o.pids_limit > 0 else None
    if o.memory is not None:
        swap = o.memory_swap if o.memory_swap is not None else host.get("MemorySwap") or 0
        if o.memory and swap and swap != -1 and o.memory > swap:
            raise InvalidArgument("Memory limit should be smaller than already set "
                                  "memoryswap limit, update the memoryswap at the same time")
        host["Memory"] = o.memory
    if o.memory_swap is not None:
        host["MemorySwap"] = o.memory_swap
    if o.memory_reservation is not None:
        host["MemoryReservation"] = o.memory_reservation
    if host.get("MemoryReservation"):
        from .host_options import check_reservation

        check_reservation(host.get("Memory") or 0, host["MemoryReservation"])
    return host


def update(svc: ContainerService, name_or_id: str, o: UpdateOptions) -> None:
    from .spec import SpecOptions, resources

    if o.empty():
        raise InvalidArgument("you must provide one or more flags when using this command")
    rec = svc.get(name_or_id)
    with svc._lock(rec.id):
        rec = svc.refresh(svc._reload(rec.id) or rec)
        host = _new_host(rec, o)
        res = resources(SpecOptions(
            rootfs="", args=[], memory=host.get("Memory") or None,
            memory_swap=host.get("MemorySwap") or None,
            memory_reservation=host.get("MemoryReservation") or None,
            cpus=(host.get("NanoCpus") or 0) / 1e9 or None,
            cpu_shares=host.get("CpuShares") or None, pids_limit=host.get("PidsLimit"),
            cpuset_cpus=host.get("CpusetCpus") or ""))
        res.pop("devices", None)
        if rec.status in ("running", "paused") and rec.monitor:
            _apply_live(svc, rec, res)
        _patch_bundle(rec, res)
        config = dict(rec.config, HostConfig=host)
        with svc.db.tx() as tx:
            tx.execute("UPDATE containers SET config=? WHERE id=?",
                       (json.dumps(config), rec.id))


def _apply_live(svc: ContainerService, rec: ContainerRecord, res: dict[str, Any]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=rec.run_dir,
                                     delete=False) as f:
        json.dump(res, f)
    try:
        svc._runtime_of(rec).update(rec.id, f.name)
    finally:
        os.unlink(f.name)


def _patch_bundle(rec: ContainerRecord, res: dict[str, Any]) -> None:
    """The next start uses the new limits: ``linux.resources`` of the bundle, devices kept."""
    path = os.path.join(rec.bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        return
    old = spec.setdefault("linux", {}).get("resources") or {}
    for key in ("memory", "cpu", "pids"):
        old.pop(key, None)
    old.update(res)
    spec["linux"]["resources"] = old
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    os.replace(tmp, path)
