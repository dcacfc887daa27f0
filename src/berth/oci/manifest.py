"""Image manifests and indexes (OCI and Docker schema2): parse strictly, build canonically.

Parsing is where untrusted documents from registries and archives first meet us, so every
field another module will rely on is checked here once — digests are validated before any
of them can become a path, sizes are non-negative integers, and the document is bounded in
size — and every failure is a one-line :class:`InvalidManifest`.

Building is deterministic (fixed key order, compact separators): the same inputs give the
same bytes and so the same manifest digest, which is what makes ``save`` reproducible and
lets a pushed manifest keep its digest.
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from berth.errors import InvalidDigest, InvalidManifest
from berth.oci import mediatypes as mt
from berth.oci.digest import validate

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
_DIGEST_ALGOS = ("sha256", "sha512")

# Python's platform.machine() names → Go's GOARCH (+ variant), as registries label images.
_ARCH_MAP: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64": ("mips64", None),
    "loongarch64": ("loong64", None),
}
# Variants that mean "the baseline", so an entry without a variant matches them.
_DEFAULT_VARIANT = {"arm64": "v8", "amd64": "v1"}


def normalize_arch(machine: str) -> tuple[str, str | None]:
    """Map a kernel machine name (``uname -m``) to Go's (GOARCH, variant)."""
    return _ARCH_MAP.get(machine.lower(), (machine.lower(), None))


def host_arch() -> str:
    """The host architecture as image configs and indexes spell it (``amd64``, ``arm64``)."""
    return normalize_arch(_platform.machine())[0]


def host_variant() -> str | None:
    """The host CPU variant when it matters for selection (only 32-bit arm)."""
    return normalize_arch(_platform.machine())[1]


def _fail(msg: str) -> InvalidManifest:
    return InvalidManifest(msg)


def _check_annotations(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _fail(f"invalid manifest: {where}.annotations must map strings to strings")
    return dict(value)


def _check_platform(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(f"invalid manifest: {where}.platform must be an object")
    for key in ("architecture", "os"):
        if not isinstance(value.get(key), str):
            raise _fail(f"invalid manifest: {where}.platform.{key} must be a string")
    for key in ("variant", "os.version"):
        if key in value and not isinstance(value[key], str):
            raise _fail(f"invalid manifest: {where}.platform.{key} must be a string")
    feats = value.get("os.features")
    if feats is not None and (not isinstance(feats, list)
                              or not all(isinstance(f, str) for f in feats)):
        raise _fail(f"invalid manifest: {where}.platform.os.features must be a list of strings")
    return dict(value)


def _platform_json(p: dict[str, Any]) -> dict[str, Any]:
    """Platform in the Go struct's field order, so built documents are byte-stable."""
    out: dict[str, Any] = {"architecture": p["architecture"], "os": p["os"]}
    for key in ("os.version", "os.features", "variant", "features"):
        if p.get(key):
            out[key] = p[key]
    return out


@dataclass
class Descriptor:
    """A pointer to content: what it is (media type), what hashes to it, and how big."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None
    artifact_type: str | None = None
    urls: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON object in the order Go's ``ocispec.Descriptor`` marshals."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform:
            out["platform"] = _platform_json(self.platform)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "descriptor") -> Descriptor:
        """Validate and convert one descriptor object; ``where`` names it in errors."""
        if not isinstance(obj, dict):
            raise _fail(f"invalid manifest: {where} must be an object")
        media_type = obj.get("mediaType")
        if not isinstance(media_type, str) or "/" not in media_type:
            raise _fail(f"invalid manifest: {where}.mediaType is missing or invalid")
        digest = obj.get("digest")
        if not isinstance(digest, str):
            raise _fail(f"invalid manifest: {where}.digest is missing")
        try:
            validate(digest, algorithms=_DIGEST_ALGOS)
        except InvalidDigest:
            raise _fail(f"invalid manifest: {where}.digest is invalid: {digest!r}") from None
        size = obj.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _fail(f"invalid manifest: {where}.size must be a non-negative integer")
        urls = obj.get("urls")
        if urls is not None and (not isinstance(urls, list)
                                 or not all(isinstance(u, str) for u in urls)):
            raise _fail(f"invalid manifest: {where}.urls must be a list of strings")
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise _fail(f"invalid manifest: {where}.artifactType must be a string")
        return cls(media_type=media_type, digest=digest, size=size,
                   annotations=_check_annotations(obj.get("annotations"), where),
                   platform=_check_platform(obj.get("platform"), where),
                   artifact_type=artifact_type, urls=urls)


@dataclass
class Manifest:
    """A single-platform image: one config and an ordered list of layers."""

    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def is_docker(self) -> bool:
        return self.media_type == mt.DOCKER_MANIFEST


@dataclass
class Index:
    """A multi-platform image (OCI index or Docker manifest list)."""

    media_type: str
    manifests: list[Descriptor]
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = field(default=None)

    def select_platform(self, os: str = "linux", arch: str | None = None,
                        variant: str | None = None) -> Descriptor:
        """Pick the manifest for one platform, as ``docker pull`` does.

        Without an explicit variant, entries naming the baseline variant (or none) are
        preferred, then any variant of the architecture. Entries without a platform (and
        attestation entries, which say ``unknown/unknown``) never match.
        """
        if arch is None:
            arch, host_var = normalize_arch(_platform.machine())
            variant = variant or host_var
        arch, implied = normalize_arch(arch)
        variant = variant or implied
        default = _DEFAULT_VARIANT.get(arch)
        exact: list[Descriptor] = []
        loose: list[Descriptor] = []
        for desc in self.manifests:
            p = desc.platform
            if not p or p.get("os") != os or normalize_arch(p.get("architecture", ""))[0] != arch:
                continue
            have = p.get("variant") or default
            if variant:
                if have == (variant or default):
                    exact.append(desc)
            elif have == default:
                exact.append(desc)
            else:
                loose.append(desc)
        if exact or loose:
            return (exact or loose)[0]
        want = f"{os}/{arch}" + (f"/{variant}" if variant else "")
        raise InvalidManifest(f"no matching manifest for {want} in the manifest list entries")


def _detect_type(doc: dict[str, Any], header: str | None) -> str:
    """Decide what a document is from the header, its own mediaType, and its shape."""
    body = doc.get("mediaType")
    if body is not None and not isinstance(body, str):
        raise _fail("invalid manifest: mediaType must be a string")
    header = (header or "").split(";", 1)[0].strip() or None
    if header in ("application/json", "application/octet-stream", "text/plain"):
        header = None
    if header and body and header != body:
        raise _fail(f"invalid manifest: mediaType {body!r} does not match {header!r}")
    kind = header or body
    if kind in (mt.DOCKER_MANIFEST_V1, mt.DOCKER_MANIFEST_V1_SIGNED):
        raise _fail("unsupported manifest: Docker schema1 manifests are no longer supported")
    if kind is None:
        if "manifests" in doc and ("layers" in doc or "config" in doc):
            raise _fail("invalid manifest: ambiguous document has both manifests and layers")
        if "manifests" in doc:
            return mt.OCI_INDEX
        if "config" in doc or "layers" in doc:
            return mt.OCI_MANIFEST
        raise _fail("invalid manifest: cannot tell whether it is a manifest or an index")
    if not (mt.is_manifest(kind) or mt.is_index(kind)):
        raise _fail(f"unsupported manifest media type: {kind}")
    return kind


def parse_manifest(raw: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or index; ``media_type`` is the Content-Type header, if any."""
    if len(raw) > MAX_MANIFEST_SIZE:
        raise _fail(f"manifest too large: {len(raw)} bytes (limit {MAX_MANIFEST_SIZE})")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail(f"invalid manifest: not valid JSON: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise _fail("invalid manifest: top level must be a JSON object")
    version = doc.get("schemaVersion")
    if isinstance(version, bool):
        raise _fail(f"invalid manifest: schemaVersion must be 2, got {version!r}")
    if version == 1:
        raise _fail("unsupported manifest: Docker schema1 manifests are no longer supported")
    if version != 2:
        raise _fail(f"invalid manifest: schemaVersion must be 2, got {version!r}")
    kind = _detect_type(doc, media_type)
    annotations = _check_annotations(doc.get("annotations"), "manifest")
    subject = (Descriptor.from_json(doc["subject"], "subject")
               if doc.get("subject") is not None else None)
    if mt.is_index(kind):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _fail("invalid manifest: index has no manifests list")
        manifests = [Descriptor.from_json(e, f"manifests[{i}]") for i, e in enumerate(entries)]
        return Index(kind, manifests, annotations, subject)
    if "manifests" in doc:
        raise _fail("invalid manifest: image manifest must not have a manifests list")
    if "config" not in doc:
        raise _fail("invalid manifest: config is missing")
    config = Descriptor.from_json(doc["config"], "config")
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list):
        raise _fail("invalid manifest: layers must be a list")
    layers = [Descriptor.from_json(e, f"layers[{i}]") for i, e in enumerate(layers_raw)]
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _fail("invalid manifest: artifactType must be a string")
    return Manifest(kind, config, layers, annotations, subject, artifact_type)


def _dumps(obj: Any) -> bytes:
    """The one canonical encoding: compact, key order as built, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def build_manifest(config: Descriptor, layers: list[Descriptor], *, docker: bool = False,
                   annotations: dict[str, str] | None = None,
                   subject: Descriptor | None = None) -> bytes:
    """Serialise an image manifest; media types are converted to the chosen family.

    Docker schema2 has no annotations or subject, so with ``docker=True`` those are refused
    rather than silently dropped (dropping would change what the caller meant to publish).
    """
    conv = mt.to_docker if docker else mt.to_oci
    if docker and (annotations or subject):
        raise InvalidManifest("Docker schema2 manifests cannot carry annotations or a subject")

    def desc(d: Descriptor) -> dict[str, Any]:
        out = d.to_json()
        out["mediaType"] = conv(d.media_type)
        return out

    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": desc(config),
        "layers": [desc(d) for d in layers],
    }
    if subject is not None:
        doc["subject"] = subject.to_json()
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return _dumps(doc)


def build_index(manifests: list[Descriptor], *, docker: bool = False,
                annotations: dict[str, str] | None = None) -> bytes:
    """Serialise an index (or Docker manifest list) over ``manifests``, in the given order."""
    if docker and annotations:
        raise InvalidManifest("Docker manifest lists cannot carry annotations")
    conv = mt.to_docker if docker else mt.to_oci
    entries = []
    for d in manifests:
        out = d.to_json()
        out["mediaType"] = conv(d.media_type)
        entries.append(out)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST if docker else mt.OCI_INDEX,
        "manifests": entries,
    }
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return _dumps(doc)
