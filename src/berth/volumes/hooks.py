"""Where the container lifecycle meets volumes: the only module the container code imports.

Four calls, each made lazily by the container side only when a container has mounts:

* :func:`planned_mounts` (from ``create_options.merge``): flags + image VOLUMEs -> the
  binds and volume mounts stored in the container's config; bad input fails here, before
  any row or directory exists;
* :func:`inherit_volumes` (from ``ContainerService.create``, before the row is inserted):
  ``--volumes-from`` needs other containers' configs, which ``merge`` cannot see;
* :func:`attach` (from ``ContainerService._prepare``, rootfs mounted): create the volumes,
  record the container's use of them, seed empty ones from the image, and return the OCI
  spec mounts in Docker's order (parents before children);
* :func:`release` (after ``rm -v`` / ``--rm`` removed the container): drop its anonymous
  volumes unless another container still uses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument, NotFound
from . import specs

if TYPE_CHECKING:  # pragma: no cover
    from ..container.create_options import CreateOptions
    from ..container.records import ContainerRecord
    from ..store.store import Store


def planned_mounts(opts: CreateOptions, image_config: dict[str, Any]
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(binds for ``HostConfig.Mounts``, volume and tmpfs mounts for its ``VolumeMounts``)."""
    tmpfs = [t.partition(":")[0] for t in opts.tmpfs]
    planned = specs.plan(list(opts.volumes), list(getattr(opts, "mounts", []) or []),
                         image_config.get("Volumes"), tmpfs)
    for b in planned.binds:
        if b.get("Strict") and not os.path.exists(b["Source"]):
            raise InvalidArgument("invalid mount config for type \"bind\": bind source path "
                                  f"does not exist: {b['Source']}")
    for v in planned.volumes:
        if v["Type"] == "volume" and v.get("Driver", "local") != "local":
            raise NotFound(f"create {v['Name']}: error looking up volume plugin "
                           f"{v['Driver']}: plugin \"{v['Driver']}\" not found")
    return planned.binds, planned.volumes


def inherit_volumes(config: dict[str, Any], find: Callable[[str], ContainerRecord]
                    ) -> None:
    """Apply ``HostConfig.VolumesFrom`` to ``config`` in place (sources must exist)."""
    host = config["HostConfig"]
    binds = list(host.get("Mounts") or [])
    volumes = list(host.get("VolumeMounts") or [])
    for spec in host.get("VolumesFrom") or []:
        name, mode = specs.parse_volumes_from(spec)
        src = find(name)
        specs.inherit(binds, volumes, src.config.get("HostConfig", {}), mode)
    host["Mounts"] = binds
    host["VolumeMounts"] = volumes or None
    if binds:
        host["Binds"] = [f"{b['Source']}:{b['Destination']}" +
                         (f":{b['Mode']}" if b.get("Mode") else "") for b in binds]


def attach(store: Store, rec: ContainerRecord, mounts: list[dict[str, Any]]
           ) -> list[dict[str, Any]]:
    """Make the container's volumes usable; ``mounts`` plus theirs, parents first.

    On failure the volumes made here are removed again, so a failed create leaves none.
    """
    from .service import VolumeService

    svc = VolumeService(store)
    wanted = rec.config.get("HostConfig", {}).get("VolumeMounts") or []
    created: list[str] = []
    out: list[dict[str, Any]] = []
    try:
        used = []
        for m in wanted:
            if m["Type"] == "tmpfs":
                out.append({"type": "tmpfs", "destination": m["Destination"],
                            "options": list(m.get("Options") or [])})
                continue
            vol, made = svc.create(m["Name"], driver=m.get("Driver", "local"),
                                   labels=m.get("Labels"), options=m.get("DriverOpts"),
                                   anonymous=bool(m.get("Anonymous")))
            if made:
                created.append(vol.name)
            used.append((vol, m))
        svc.attach(rec.id, [(v.name, m["Destination"], bool(m["RW"])) for v, m in used])
        for vol, m in used:
            if not vol.options and not m.get("NoCopy"):
                from .seed import seed

                seed(rec.merged, m["Destination"], vol.mountpoint)
            out.append(_spec_mount(vol.mountpoint, vol.options, m))
    except BaseException:
        _undo(store, rec.id, created)
        raise
    return sorted([*mounts, *out], key=lambda m: specs.depth(m["destination"]))


def _spec_mount(mountpoint: str, options: dict[str, str], m: dict[str, Any]
                ) -> dict[str, Any]:
    """One volume as an OCI mount: a bind of ``_data``, or what the local driver's opts say."""
    ro = not m["RW"]
    if options.get("type") == "tmpfs":
        o = [x for x in options.get("o", "").split(",") if x]
        return {"type": "tmpfs", "destination": m["Destination"],
                "options": o + (["ro"] if ro else [])}
    if options:
        return {"type": "bind", "source": options["device"], "destination": m["Destination"],
                "ro": ro}
    return {"type": "bind", "source": mountpoint, "destination": m["Destination"], "ro": ro}


def _undo(store: Store, cid: str, created: list[str]) -> None:
    from .service import VolumeService

    with store.db.tx() as tx:
        tx.execute("DELETE FROM container_volumes WHERE container_id=?", (cid,))
    svc = VolumeService(store)
    for name in created:
        try:
            svc.remove(name, force=True)
        except Conflict:
            pass  # someone else started using it meanwhile: it is theirs now


def release(store: Store, rec: ContainerRecord) -> list[str]:
    """Remove a removed container's anonymous volumes that nobody else uses; their names."""
    from .service import VolumeService

    svc = VolumeService(store)
    gone = []
    for m in rec.config.get("HostConfig", {}).get("VolumeMounts") or []:
        if m["Type"] != "volume" or not m.get("Anonymous"):
            continue
        try:
            if svc.remove(m["Name"], force=True):
                gone.append(m["Name"])
        except Conflict:
            continue  # still mounted by another container (--volumes-from): Docker keeps it
    return gone
