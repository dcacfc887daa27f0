"""Engine records in the API's JSON shapes (``ContainerSummary``, ``ImageSummary``, ...)."""

from __future__ import annotations

from typing import Any


def container_summary(eng: Any, rec: Any, *, size: bool = False) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    import time

    from berth.container.views import command_of, mounts, status_text

    hc = rec.config.get("HostConfig", {})
    mode = hc.get("NetworkMode") or "default"
    ports = []
    networks: dict[str, Any] = {}
    if eng._has_netns(rec):
        if rec.status in ("running", "paused"):
            for p in eng.network_service.display_ports(rec):
                entry: dict[str, Any] = {"PrivatePort": p.private_port, "Type": p.type}
                if p.public_port:
                    entry.update(IP=p.ip or "0.0.0.0", PublicPort=p.public_port)
                ports.append(entry)
        networks = eng.network_service.settings(rec).get("Networks") or {}
    out = {
        "Id": rec.id, "Names": ["/" + rec.name], "Image": rec.image_name,
        "ImageID": rec.image_id, "Command": command_of(rec), "Created": int(rec.created),
        "Ports": ports, "Labels": rec.labels, "State": rec.status,
        "Status": status_text(rec, time.time()),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks},
        "Mounts": [{"Type": m.get("Type", "bind"), "Name": m.get("Name", ""),
                    "Source": m.get("Source", ""), "Destination": m.get("Destination", ""),
                    "Driver": m.get("Driver", ""), "Mode": m.get("Mode", ""),
                    "RW": m.get("RW", True), "Propagation": m.get("Propagation", "")}
                   for m in mounts(rec)],
    }
    if size:
        from berth.store.fsutil import tree_size

        out["SizeRw"] = tree_size(rec.upper)
        try:  # Docker's "virtual" size: the image's plus the container's own
            out["SizeRootFs"] = eng.image(rec.image_id).size + out["SizeRw"]
        except Exception:  # noqa: BLE001 - the image may be gone (rmi -f): no virtual size
            out["SizeRootFs"] = out["SizeRw"]
    return out


def image_summary(rec: Any) -> dict[str, Any]:
    """One entry of ``GET /images/json`` (familiar names, as dockerd shows them)."""
    from berth.oci import reference

    def familiar(name: str) -> str:
        try:
            return reference.parse(name).familiar
        except Exception:  # noqa: BLE001 - a stored name always parses; be safe anyway
            return name

    tags = [familiar(t) for t in rec.tags]
    digests = [familiar(d) for d in rec.repo_digests]
    return {"Id": rec.id, "ParentId": rec.parent or "",
            "RepoTags": tags or (["<none>:<none>"] if not digests else []),
            "RepoDigests": digests or (["<none>@<none>"] if not tags else []),
            "Created": int(rec.created), "Size": rec.size, "VirtualSize": rec.size,
            "SharedSize": -1, "Labels": rec.labels or None, "Containers": -1}
