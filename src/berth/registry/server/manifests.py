"""Reading a pushed manifest just enough to store it safely and answer referrers queries.

The registry stores manifests byte for byte; it parses them only to learn (a) what they
reference, so a push naming unknown blobs is refused with MANIFEST_BLOB_UNKNOWN instead of
producing an image nobody can pull, (b) their ``subject``, for the referrers API, and (c)
that they are well-formed JSON of the type announced. Unknown (artifact) media types are
accepted: the distribution spec is content-agnostic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from berth.registry.server.errors import ApiError
from berth.registry.server.paths import check_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
MAX_MANIFEST = 4 * 1024 * 1024


@dataclass
class Manifest:
    """What the registry needs to know about one manifest."""

    media_type: str
    blobs: list[str] = field(default_factory=list)      # config + layers: must be in the repo
    children: list[str] = field(default_factory=list)   # index entries: manifests in the repo
    subject: str | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def descriptor(self, digest: str, size: int) -> dict[str, Any]:
        """This manifest as an entry of a referrers index (artifactType rules of the spec)."""
        d: dict[str, Any] = {"mediaType": self.media_type, "size": size, "digest": digest}
        if self.artifact_type:
            d["artifactType"] = self.artifact_type
        if self.annotations:
            d["annotations"] = self.annotations
        return d


def invalid(message: str) -> ApiError:
    return ApiError(400, "MANIFEST_INVALID", message)


def _descriptor_digest(desc: Any, where: str) -> str:
    if not isinstance(desc, dict):
        raise invalid(f"{where}: descriptor must be an object")
    if not isinstance(desc.get("mediaType", ""), str):
        raise invalid(f"{where}: mediaType must be a string")
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid(f"{where}: size must be a non-negative integer")
    digest = desc.get("digest")
    if not isinstance(digest, str):
        raise invalid(f"{where}: digest missing")
    return check_digest(digest)


def _is_foreign(desc: dict[str, Any]) -> bool:
    """Layers served from elsewhere (``urls``) need not be in this registry."""
    return bool(desc.get("urls")) or "foreign" in str(desc.get("mediaType", ""))


def parse(body: bytes, content_type: str | None) -> Manifest:
    """Validate a pushed manifest and extract its references (raises 400 ApiErrors)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise invalid("manifest is not valid JSON") from None
    if not isinstance(doc, dict):
        raise invalid("manifest must be a JSON object")
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise invalid("mediaType must be a string")
    ctype = (content_type or "").split(";", 1)[0].strip().lower() or None
    if ctype in ("application/octet-stream", "application/json"):
        ctype = None  # a generic type says nothing; fall back to the document
    if ctype and declared and ctype != declared:
        raise invalid(f"mediaType {declared!r} does not match Content-Type {ctype!r}")
    media_type = ctype or declared or (
        OCI_INDEX if "manifests" in doc else OCI_MANIFEST if "config" in doc else None)
    if media_type is None:
        raise invalid("cannot tell the manifest's media type")
    if media_type in SCHEMA1:
        raise invalid("Docker schema1 manifests are not supported")

    m = Manifest(media_type)
    known = media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
    if known and doc.get("schemaVersion") != 2:
        raise invalid("schemaVersion must be 2")
    is_index = media_type in (OCI_INDEX, DOCKER_LIST) or (not known and "manifests" in doc)
    is_image = media_type in (OCI_MANIFEST, DOCKER_MANIFEST) or (not known and "config" in doc)
    if is_image:
        config = doc.get("config")
        m.blobs.append(_descriptor_digest(config, "config"))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise invalid("layers must be a list")
        for i, layer in enumerate(layers):
            digest = _descriptor_digest(layer, f"layers[{i}]")
            if not _is_foreign(layer):
                m.blobs.append(digest)
        m.artifact_type = doc.get("artifactType") or (config or {}).get("mediaType") or None
    elif is_index:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise invalid("manifests must be a list")
        for i, child in enumerate(children):
            m.children.append(_descriptor_digest(child, f"manifests[{i}]"))
        m.artifact_type = doc.get("artifactType") or None
    if "subject" in doc:
        m.subject = _descriptor_digest(doc["subject"], "subject")
    ann = doc.get("annotations")
    if ann is not None:
        if not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values()):
            raise invalid("annotations must map strings to strings")
        m.annotations = ann
    if m.artifact_type is not None and not isinstance(m.artifact_type, str):
        raise invalid("artifactType must be a string")
    return m
