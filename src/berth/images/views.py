"""Docker-shaped views of images: ``image inspect`` JSON and ``history`` rows."""

from __future__ import annotations

from typing import Any

from berth.images.records import ImageRecord
from berth.images.service import ImageService
from berth.oci import reference

# Docker's container.Config: every field it always prints, in its order, and the
# ``omitempty`` ones it prints only when set
_CONFIG_FIELDS: list[tuple[str, Any]] = [
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", ...), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", "list"), ("Cmd", "list"),
    ("Healthcheck", ...), ("ArgsEscaped", ...), ("Image", ""), ("Volumes", "map"),
    ("WorkingDir", ""), ("Entrypoint", "list"), ("NetworkDisabled", ...),
    ("MacAddress", ...), ("OnBuild", "list"), ("Labels", "map"), ("StopSignal", ...),
    ("StopTimeout", ...), ("Shell", ...),
]


def container_config(stored: dict[str, Any] | None) -> dict[str, Any]:
    """An image config's ``config`` as Docker's image inspect prints it: all fields,
    nil maps/slices where unset (JSON ``null``, ``map[]`` in templates)."""
    from berth.gotypes import nil_list, nil_map

    src = stored or {}
    out: dict[str, Any] = {}
    for key, zero in _CONFIG_FIELDS:
        if zero is ...:
            if src.get(key) not in (None, "", False, [], {}):
                out[key] = src[key]
        elif zero == "list":
            out[key] = nil_list(src.get(key))
        elif zero == "map":
            out[key] = nil_map(src.get(key))
        else:
            out[key] = src.get(key, zero)
    out.update({k: v for k, v in src.items() if k not in out and k not in dict(_CONFIG_FIELDS)})
    return out


def _familiar(names: list[str]) -> list[str]:
    return [reference.parse(n).familiar for n in names]


def inspect(svc: ImageService, rec: ImageRecord) -> dict[str, Any]:
    """The object ``docker image inspect`` prints, from the stored config and rows."""
    from berth.units import rfc3339_nano

    cfg = svc.config(rec.id)
    layers = svc.layers(rec.id)
    diff_dirs = [svc.store.layers.diff_dir(r["chain_id"]) for r in layers]
    tagged = svc.db.one("SELECT MAX(tagged) AS t FROM tags WHERE image_id=?", (rec.id,))
    last_tag = tagged["t"] if tagged is not None else None  # MAX() always yields a row
    return {
        "Id": rec.id,
        "RepoTags": _familiar(rec.tags),
        "RepoDigests": [_familiar_digest(d) for d in rec.repo_digests],
        "Parent": rec.parent or "",
        "Comment": _comment(cfg),
        "Created": cfg.get("created") or rfc3339_nano(rec.created),
        "Container": cfg.get("container", ""),
        "ContainerConfig": container_config(cfg.get("container_config")),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": container_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": rec.size,
        "VirtualSize": rec.size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": ":".join(reversed(diff_dirs[:-1])) or None,
                "UpperDir": diff_dirs[-1] if diff_dirs else None,
            },
        },
        "RootFS": {"Type": "layers", "Layers": [r["diff_id"] for r in layers]},
        "Metadata": {"LastTagTime": rfc3339_nano(last_tag) if last_tag else
                     "0001-01-01T00:00:00Z"},
        "Descriptor": {"mediaType": rec.manifest_media_type, "digest": rec.manifest_digest,
                       "size": svc.store.content.size(rec.manifest_digest)},
    }


def _familiar_digest(d: str) -> str:
    repo, _, digest = d.partition("@")
    return f"{reference.parse(repo).familiar_repository}@{digest}"


def _comment(cfg: dict[str, Any]) -> str:
    hist = cfg.get("history") or []
    return (hist[-1].get("comment") or "") if hist else ""


def history(svc: ImageService, rec: ImageRecord) -> list[dict[str, Any]]:
    """``docker history`` rows, newest first; only the top row carries the image ID."""
    from berth.units import parse_timestamp

    cfg = svc.config(rec.id)
    sizes = [r["size"] for r in svc.layers(rec.id)]
    hist = cfg.get("history") or [{"created": cfg.get("created", "")} for _ in sizes]
    rows = []
    li = 0
    for h in hist:
        empty = bool(h.get("empty_layer"))
        size = 0 if empty or li >= len(sizes) else sizes[li]
        if not empty:
            li += 1
        try:
            created = parse_timestamp(h["created"]) if h.get("created") else 0.0
        except Exception:  # noqa: BLE001 - a malformed time in a foreign image
            created = 0.0
        rows.append({"ID": "<missing>", "Created": created, "CreatedBy": h.get("created_by", ""),
                     "Size": size, "Comment": h.get("comment", ""), "Tags": []})
    rows.reverse()
    _ancestor_ids(svc, rec, rows, len(hist))
    return rows


def _ancestor_ids(svc: ImageService, rec: ImageRecord, rows: list[dict[str, Any]],
                  count: int) -> None:
    """Name each row after the local image whose newest history entry it is.

    Walks the ``parent`` chain a build records (as Docker's classic builder does); an
    ancestor names the row of its own last history entry, so a step that added no entry
    (``build --label``) cannot shift the others. Rows of images not here stay
    ``<missing>``.
    """
    from berth.errors import NotFound

    img: ImageRecord | None = rec
    seen: set[str] = set()
    while img is not None and img.id not in seen:
        seen.add(img.id)
        own = len(svc.config(img.id).get("history") or []) if img is not rec else count
        i = count - own
        if 0 <= i < len(rows) and rows[i]["ID"] == "<missing>":
            rows[i]["ID"] = img.id
            rows[i]["Tags"] = _familiar(img.tags)
        if not img.parent:
            break
        try:
            img = svc.get(img.parent)
        except NotFound:
            img = None
