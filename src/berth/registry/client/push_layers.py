"""What ``push`` sends for each layer: the stored bytes, or a compressed form made on the fly.

Layers that berth made or imported are stored as plain tars. Sending them so would cost
2-3x the bytes on the wire and in the registry, so ``push`` compresses them (gzip by
default, as Docker and Podman do; ``--compression-format zstd`` on request). Layers that
arrived compressed are sent as they are, unless another format is asked for.

The compressed digest and size of each (stored blob, format, level) are remembered in the
``compressed_blobs`` table — Docker's "v2 metadata" — so a later push of the same layer,
to any repository or registry, first asks the registry whether it has that digest (HEAD)
or can mount it from a repository known to hold it, and compresses nothing when it can.
Compression is deterministic (:mod:`berth.oci.stream_compress`), so even a recompression
for a new registry gives the same digest, and a re-pushed image keeps its manifest digest.

When any layer changes form, the manifest sent is the stored one with those layer
descriptors replaced (and, for zstd, a Docker schema2 manifest becomes an OCI one, since
schema2 has no zstd layer type). The config — and so the image ID — never changes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

from berth.config import register_section
from berth.errors import InvalidArgument
from berth.oci import mediatypes as mt
from berth.oci.manifest import Descriptor
from berth.oci.stream_compress import check
from berth.store.store import Store


@dataclass(frozen=True)
class Compression:
    """The user's choice: ``fmt`` None means "gzip what is stored plain, keep the rest"."""

    fmt: str | None = None
    level: int | None = None

    def or_config(self, root: str) -> Compression:
        """Flags win; what they leave open comes from berth.toml's ``[push]`` section::

            [push]
            compression_format = "zstd"
            compression_level = 9
        """
        from berth import config

        section: Compression = config.current(root).section("push")
        return Compression(self.fmt or section.fmt,
                           self.level if self.level is not None else section.level)

    def validated(self) -> Compression:
        if self.fmt is None:
            if self.level is not None:
                check("gzip", self.level)
            return self
        check(self.fmt, self.level)
        return self


@dataclass
class LayerPlan:
    """One layer of the manifest and how it travels."""

    stored: Descriptor
    fmt: str | None = None       # compress into this format while uploading; None: as stored
    level: int = 0
    target: Descriptor | None = None  # the compressed descriptor, once known

    def compressed(self, digest: str, size: int, *, docker: bool) -> Descriptor:
        """The descriptor of this layer as ``fmt`` bytes with ``digest`` and ``size``."""
        assert self.fmt is not None
        return Descriptor(mt.layer_type(cast(mt.Compression, self.fmt), docker=docker),
                          digest, size, annotations=self.stored.annotations)

    @property
    def sent(self) -> Descriptor:
        """The descriptor the pushed manifest lists for this layer."""
        if self.fmt is None:
            return self.stored
        assert self.target is not None, "layer not uploaded yet"
        return self.target


def plan(store: Store, desc: Descriptor, choice: Compression, *, docker: bool) -> LayerPlan:
    """Decide how ``desc`` is pushed; fill in the compressed descriptor if it is known."""
    current = mt.layer_compression(desc.media_type)
    fmt = choice.fmt or ("gzip" if current == "none" else None)
    if fmt is None or fmt == current:
        return LayerPlan(desc)
    level = check(fmt, choice.level)
    p = LayerPlan(desc, fmt, level)
    row = store.db.one("SELECT digest, size FROM compressed_blobs WHERE source=? AND format=? "
                       "AND level=?", (desc.digest, fmt, level))
    if row is not None:
        p.target = p.compressed(row["digest"], row["size"], docker=docker)
    return p


def record(store: Store, p: LayerPlan, digest: str, size: int, *, docker: bool) -> None:
    """Remember what ``p``'s layer compressed to, and set its target descriptor."""
    p.target = p.compressed(digest, size, docker=docker)
    with store.db.tx() as tx:
        tx.execute("INSERT OR REPLACE INTO compressed_blobs(source, format, level, digest, "
                   "size, created) VALUES (?,?,?,?,?,?)",
                   (p.stored.digest, p.fmt, p.level, digest, size, time.time()))


def keeps_docker_types(manifest_media_type: str, choice: Compression) -> bool:
    """Whether a pushed manifest stays Docker schema2: it was one, and no layer becomes zstd
    (only a zstd choice makes zstd layers; schema2 has no zstd layer type)."""
    return manifest_media_type == mt.DOCKER_MANIFEST and choice.fmt != "zstd"


def rewrite_manifest(raw: bytes, media_type: str, plans: list[LayerPlan], *,
                     docker: bool) -> tuple[bytes, str]:
    """The manifest to push and its media type: ``raw`` unless a layer changed form.

    ``docker``: :func:`keeps_docker_types`; otherwise a schema2 manifest becomes OCI."""
    if all(p.fmt is None for p in plans):
        return raw, media_type
    doc: dict[str, Any] = json.loads(raw)
    by_digest = {p.stored.digest: p.sent for p in plans}
    to_oci = not docker
    layers = []
    for entry in doc.get("layers", []):
        new = by_digest.get(entry.get("digest"))
        if new is not None:
            entry = {**entry, **new.to_json()}
        if to_oci:
            entry["mediaType"] = mt.to_oci(entry["mediaType"])
        layers.append(entry)
    doc["layers"] = layers
    if to_oci and media_type == mt.DOCKER_MANIFEST:
        media_type = mt.OCI_MANIFEST
        doc["mediaType"] = mt.OCI_MANIFEST
        doc["config"] = {**doc["config"], "mediaType": mt.OCI_CONFIG}
    return json.dumps(doc, indent=3).encode(), media_type


def _push_section(table: dict[str, Any]) -> Compression:
    """berth.toml's ``[push]``: checked when the file is read, so a typo names the file."""
    fmt = table.get("compression_format")
    level = table.get("compression_level")
    if fmt is not None and not isinstance(fmt, str):
        raise ValueError("compression_format must be a string")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        raise ValueError("compression_level must be an integer")
    try:
        return Compression(fmt, level).validated()
    except InvalidArgument as e:
        raise ValueError(e.message) from None


register_section("push", _push_section)
