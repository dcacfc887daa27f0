"""Media types of image documents and blobs, OCI and Docker schema2 side by side.

The two families name the same things differently; we read both and write OCI unless a
caller asks for Docker. Keeping every string here (and the small mappings between the two
families) means no other module spells a media type by hand, so a typo cannot silently
make a layer "unknown".
"""

from __future__ import annotations

from typing import Literal

Compression = Literal["gzip", "zstd", "none"]

# --- OCI -----------------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_ND_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"

# --- Docker schema2 --------------------------------------------------------------------------
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
# Schema1 is obsolete and signed; recognised only so we can refuse it with a clear message.
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

_LAYER_COMPRESSION: dict[str, Compression] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND: "none",
    OCI_LAYER_ND_GZIP: "gzip",
    OCI_LAYER_ND_ZSTD: "zstd",
    DOCKER_LAYER: "none",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER: "gzip",
}
LAYER_TYPES = frozenset(_LAYER_COMPRESSION)

# Pairs that mean the same thing in both families (OCI, Docker).
_PAIRS: tuple[tuple[str, str], ...] = (
    (OCI_MANIFEST, DOCKER_MANIFEST),
    (OCI_INDEX, DOCKER_MANIFEST_LIST),
    (OCI_CONFIG, DOCKER_CONFIG),
    (OCI_LAYER, DOCKER_LAYER),
    (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP),
    (OCI_LAYER_ZSTD, DOCKER_LAYER_ZSTD),
    (OCI_LAYER_ND_GZIP, DOCKER_FOREIGN_LAYER),
)
_TO_DOCKER = dict(_PAIRS)
_TO_OCI = {d: o for o, d in _PAIRS}


def _base(mt: str | None) -> str:
    """Strip parameters (``; charset=...``) a Content-Type header may carry."""
    return (mt or "").split(";", 1)[0].strip().lower()


def is_manifest(mt: str | None) -> bool:
    """True for a single-platform image manifest (OCI or Docker schema2)."""
    return _base(mt) in MANIFEST_TYPES


def is_index(mt: str | None) -> bool:
    """True for a multi-platform index (OCI index or Docker manifest list)."""
    return _base(mt) in INDEX_TYPES


def is_config(mt: str | None) -> bool:
    """True for an image config blob media type."""
    return _base(mt) in CONFIG_TYPES


def is_layer(mt: str | None) -> bool:
    """True for any layer media type we know how to apply."""
    return _base(mt) in LAYER_TYPES


def is_nondistributable(mt: str | None) -> bool:
    """True for layers that must not be pushed to a registry (foreign/nondistributable)."""
    return _base(mt) in {OCI_LAYER_ND, OCI_LAYER_ND_GZIP, OCI_LAYER_ND_ZSTD, DOCKER_FOREIGN_LAYER}


def layer_compression(mt: str | None) -> Compression:
    """Compression implied by a layer media type.

    Unknown types answer ``"none"`` only if they end in ``.tar``; otherwise the suffix
    decides, so a vendor type such as ``...tar+gzip`` still decompresses correctly.
    """
    base = _base(mt)
    if base in _LAYER_COMPRESSION:
        return _LAYER_COMPRESSION[base]
    if base.endswith(("+gzip", ".gzip", ".gz")):
        return "gzip"
    if base.endswith(("+zstd", ".zstd", ".zst")):
        return "zstd"
    return "none"


def to_docker(mt: str) -> str:
    """The Docker schema2 name of an OCI media type (unchanged if it has none)."""
    return _TO_DOCKER.get(_base(mt), mt)


def to_oci(mt: str) -> str:
    """The OCI name of a Docker schema2 media type (unchanged if it has none)."""
    return _TO_OCI.get(_base(mt), mt)


def layer_type(compression: Compression, *, docker: bool = False) -> str:
    """The layer media type to write for a blob with ``compression``."""
    oci = {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]
    return to_docker(oci) if docker else oci
