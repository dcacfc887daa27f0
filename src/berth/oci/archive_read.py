"""Read image archives: ``docker save`` (classic and Docker 25+), oci-archive, OCI dirs.

The format is detected, not declared: a ``manifest.json`` makes it a docker-archive (Docker
25+ archives also carry ``index.json``/``oci-layout``, but ``docker load`` trusts
``manifest.json`` and so do we); otherwise ``oci-layout`` + ``index.json`` make it an OCI
layout. Everything small (manifests, configs) is read and verified here; layers are only
located and handed out as openers, because the store verifies them while it ingests them and
reading 200 MB twice would be waste.

Nothing is extracted; see :mod:`berth.oci.archive_source` for how members are read in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO

from berth.errors import ArchiveDigestMismatch, BerthError, InvalidArchive, InvalidDigest
from berth.oci import mediatypes as mt
from berth.oci.archive_source import DirSource, Source, TarSource, safe_name
from berth.oci.digest import CHUNK, validate
from berth.oci.image_config import MAX_CONFIG_SIZE, parse_config
from berth.oci.manifest import MAX_MANIFEST_SIZE, Descriptor, Index, Manifest, parse_manifest
from berth.oci.reference import parse

MAX_JSON_SIZE = 16 * 1024 * 1024
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_HEX_JSON_RE = re.compile(r"^(?:.*/)?([0-9a-f]{64})\.json$")
_BLOB_RE = re.compile(r"^blobs/([^/]+)/([^/]+)$")
_MAX_NESTING = 4


@dataclass
class ArchiveLayer:
    """One layer as found in the archive; ``open`` gives a fresh stream of its blob."""

    media_type: str
    digest: str | None
    size: int | None
    diff_id: str | None
    open: Callable[[], BinaryIO]


@dataclass
class ArchiveImage:
    """One image: verified config bytes (its digest is the image ID), layers, names."""

    config: bytes
    config_digest: str
    layers: list[ArchiveLayer]
    repo_tags: list[str]
    manifest: bytes | None
    manifest_media_type: str | None
    manifest_digest: str | None = None


@dataclass
class ImageArchive:
    """An opened archive. Use as a context manager; layer openers work until closed."""

    format: str
    images: list[ArchiveImage]
    _source: Source | None = field(default=None, repr=False)
    _tmp: str | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None

    def __enter__(self) -> ImageArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _load_json(src: Source, name: str, limit: int = MAX_JSON_SIZE) -> Any:
    raw = src.read(name, limit)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArchive(f"invalid archive: {name} is not valid JSON") from None


def _blob_name(digest: str) -> str:
    """The layout path of a digest; the digest is validated before it becomes a path."""
    try:
        validate(digest, algorithms=("sha256", "sha512"))
    except InvalidDigest:
        raise InvalidArchive(f"invalid archive: invalid digest {digest!r}") from None
    alg, hex_ = digest.split(":", 1)
    return f"blobs/{alg}/{hex_}"


def _digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _read_blob(src: Source, desc: Descriptor, limit: int) -> bytes:
    """Read a small blob named by a descriptor and check its size and digest."""
    name = _blob_name(desc.digest)
    if not src.exists(name):
        raise InvalidArchive(f"invalid archive: blob {desc.digest} is missing")
    data = src.read(name, limit)
    if len(data) != desc.size:
        raise ArchiveDigestMismatch(
            f"size mismatch for {desc.digest}: expected {desc.size}, got {len(data)}")
    got = _digest_of(data, desc.digest.split(":", 1)[0])
    if got != desc.digest:
        raise ArchiveDigestMismatch(f"digest mismatch: expected {desc.digest}, got {got}")
    return data


def _parse_cfg(raw: bytes, where: str) -> list[str]:
    """Validate a config and return its diff_ids; config errors become archive errors."""
    try:
        cfg = parse_config(raw)
    except BerthError as e:
        raise InvalidArchive(f"invalid archive: {where}: {e}") from None
    return list(cfg["rootfs"].get("diff_ids") or [])


def _sniff(src: Source, name: str) -> str:
    """A layer media type from the blob's magic bytes (docker-archive names none)."""
    from berth.oci.compression import detect

    with src.open(name) as f:
        prefix = f.read(4)
    return mt.layer_type(detect(prefix))  # type: ignore[arg-type]


def _implied_digest(name: str) -> str | None:
    """The digest a member's name promises: ``<hex>.json`` or ``blobs/<alg>/<hex>``."""
    m = _BLOB_RE.match(name)
    if m:
        digest = f"{m.group(1)}:{m.group(2)}"
        try:
            return validate(digest, algorithms=("sha256", "sha512"))
        except InvalidDigest:
            raise InvalidArchive(f"invalid archive: invalid digest in path {name!r}") from None
    m = _HEX_JSON_RE.match(name)
    return f"sha256:{m.group(1)}" if m else None


# --- docker-archive ---------------------------------------------------------------------------

def _docker_manifests(src: Source) -> dict[str, tuple[bytes, str, str]]:
    """Docker 25+ also stores real manifests; map config digest → (bytes, type, digest).

    Best effort only: ``manifest.json`` is authoritative, so a broken ``index.json`` here
    just means the image is loaded without its distribution manifest.
    """
    found: dict[str, tuple[bytes, str, str]] = {}
    if not src.exists("index.json"):
        return found
    try:
        index = parse_manifest(src.read("index.json", MAX_MANIFEST_SIZE))
        if not isinstance(index, Index):
            return found
        for desc in _manifest_descs(src, index, 0):
            raw = _read_blob(src, desc, MAX_MANIFEST_SIZE)
            doc = parse_manifest(raw, desc.media_type)
            if isinstance(doc, Manifest):
                found.setdefault(doc.config.digest, (raw, doc.media_type, desc.digest))
    except BerthError:
        return found
    return found


def _read_docker(src: Source) -> list[ArchiveImage]:
    entries = _load_json(src, "manifest.json")
    if not isinstance(entries, list):
        raise InvalidArchive("invalid archive: manifest.json must be a JSON list")
    manifests = _docker_manifests(src)
    images: list[ArchiveImage] = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("Config"), str):
            raise InvalidArchive(f"invalid archive: manifest.json entry {i} has no Config")
        tags = e.get("RepoTags") or []
        layer_names = e.get("Layers") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidArchive(f"invalid archive: manifest.json entry {i} has bad RepoTags")
        if not isinstance(layer_names, list) or not all(isinstance(n, str) for n in layer_names):
            raise InvalidArchive(f"invalid archive: manifest.json entry {i} has bad Layers")
        cfg_name = safe_name(e["Config"])
        config = src.read(cfg_name, MAX_CONFIG_SIZE)
        digest = _digest_of(config)
        implied = _implied_digest(cfg_name)
        if implied is not None and _digest_of(config, implied.split(":")[0]) != implied:
            raise ArchiveDigestMismatch(
                f"invalid archive: config {cfg_name} does not match its digest (got {digest})")
        diff_ids = _parse_cfg(config, cfg_name)
        if len(layer_names) != len(diff_ids):
            raise InvalidArchive(
                f"invalid archive: {cfg_name} has {len(diff_ids)} diff_ids but "
                f"manifest.json lists {len(layer_names)} layers")
        layers = []
        for name, diff_id in zip(layer_names, diff_ids):
            n = safe_name(name)
            size = src.size(n)
            layers.append(ArchiveLayer(media_type=_sniff(src, n), digest=_implied_digest(n),
                                       size=size, diff_id=diff_id, open=partial(src.open, n)))
        raw, mtype, mdigest = manifests.get(digest, (None, None, None))
        images.append(ArchiveImage(config, digest, layers, [_familiar(t) for t in tags], raw,
                                   mtype, mdigest))
    return _merge(images)


# --- OCI layout -------------------------------------------------------------------------------

def _manifest_descs(src: Source, index: Index, depth: int) -> list[Descriptor]:
    """Image manifests an index leads to; nested indexes resolve to the host platform."""
    out: list[Descriptor] = []
    for desc in index.manifests:
        if mt.is_manifest(desc.media_type):
            out.append(desc)
        elif mt.is_index(desc.media_type):
            if depth >= _MAX_NESTING:
                raise InvalidArchive("invalid archive: indexes nested too deeply")
            child = _parse_index(_read_blob(src, desc, MAX_MANIFEST_SIZE), desc.media_type)
            out.append(_pick(src, child, depth + 1, desc))
    return out


def _pick(src: Source, child: Index, depth: int, outer: Descriptor) -> Descriptor:
    """One manifest for this host out of a multi-platform index, keeping outer names."""
    plain = [d for d in child.manifests if mt.is_manifest(d.media_type) and not d.platform]
    try:
        chosen = child.select_platform()
    except BerthError as e:
        if len(plain) != 1:
            raise InvalidArchive(f"invalid archive: {e}") from None
        chosen = plain[0]
    return Descriptor(chosen.media_type, chosen.digest, chosen.size,
                      annotations=outer.annotations, platform=chosen.platform)


def _parse_index(raw: bytes, media_type: str | None) -> Index:
    try:
        doc = parse_manifest(raw, media_type)
    except BerthError as e:
        raise InvalidArchive(f"invalid archive: {e}") from None
    if not isinstance(doc, Index):
        raise InvalidArchive("invalid archive: expected an image index")
    return doc


def _familiar(name: str) -> str:
    """``docker.io/library/busybox:latest`` → ``busybox:latest``; unparsable names as given.

    Both archive formats then report names the same way, whoever wrote them.
    """
    try:
        ref = parse(name)
    except BerthError:
        return name
    return ref.with_default_tag().familiar


def _tags(annotations: dict[str, str] | None) -> list[str]:
    """Names from index annotations; a bare ref.name (``latest``) names no repository."""
    a = annotations or {}
    if a.get(CONTAINERD_NAME):
        return [_familiar(a[CONTAINERD_NAME])]
    ref = a.get(REF_NAME, "")
    return [_familiar(ref)] if any(c in ref for c in ":/@") else []


def _read_oci_image(src: Source, desc: Descriptor) -> ArchiveImage | None:
    raw = _read_blob(src, desc, MAX_MANIFEST_SIZE)
    try:
        doc = parse_manifest(raw, desc.media_type)
    except BerthError as e:
        raise InvalidArchive(f"invalid archive: manifest {desc.digest}: {e}") from None
    if not isinstance(doc, Manifest):
        raise InvalidArchive(f"invalid archive: {desc.digest} is not an image manifest")
    if not mt.is_config(doc.config.media_type):
        return None  # an artifact (signature, SBOM...), not an image
    config = _read_blob(src, doc.config, MAX_CONFIG_SIZE)
    diff_ids = _parse_cfg(config, f"config {doc.config.digest}")
    if len(doc.layers) != len(diff_ids):
        raise InvalidArchive(f"invalid archive: manifest {desc.digest} has {len(doc.layers)} "
                             f"layers but its config has {len(diff_ids)} diff_ids")
    layers = []
    for ld, diff_id in zip(doc.layers, diff_ids):
        if not mt.is_layer(ld.media_type):
            raise InvalidArchive(f"invalid archive: unsupported layer media type {ld.media_type}")
        name = _blob_name(ld.digest)
        if not src.exists(name):
            raise InvalidArchive(f"invalid archive: layer {ld.digest} is missing")
        if src.size(name) != ld.size:
            raise InvalidArchive(f"invalid archive: layer {ld.digest} has the wrong size")
        layers.append(ArchiveLayer(ld.media_type, ld.digest, ld.size, diff_id,
                                   partial(src.open, name)))
    return ArchiveImage(config, doc.config.digest, layers, _tags(desc.annotations), raw,
                        doc.media_type, desc.digest)


def _read_oci(src: Source) -> list[ArchiveImage]:
    layout = _load_json(src, "oci-layout", 64 * 1024)
    version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
    if not isinstance(version, str) or not version.startswith("1."):
        raise InvalidArchive(f"invalid archive: unsupported oci-layout version {version!r}")
    index = _parse_index(src.read("index.json", MAX_MANIFEST_SIZE), None)
    images = []
    for desc in _manifest_descs(src, index, 0):
        image = _read_oci_image(src, desc)
        if image is not None:
            images.append(image)
    return _merge(images)


def _merge(images: list[ArchiveImage]) -> list[ArchiveImage]:
    """One entry per image even when an archive lists it once per tag."""
    by_key: dict[tuple[str, str | None], ArchiveImage] = {}
    for img in images:
        key = (img.config_digest, img.manifest_digest)
        if key in by_key:
            by_key[key].repo_tags.extend(t for t in img.repo_tags
                                         if t not in by_key[key].repo_tags)
        else:
            by_key[key] = img
    return list(by_key.values())


# --- entry point ------------------------------------------------------------------------------

def _decompress_to_temp(path: str, tmpdir: str | None) -> str | None:
    """``docker load`` accepts compressed archives; spool them to a seekable temp tar."""
    with open(path, "rb") as f:
        prefix = f.read(6)
    from berth.oci.compression import detect, open_decompressed

    kind = detect(prefix)
    opener: Callable[[BinaryIO], BinaryIO] | None = None
    if kind != "none":
        opener = open_decompressed
    elif prefix.startswith(b"\xfd7zXZ\x00"):
        import lzma
        opener = lambda f: lzma.open(f)  # type: ignore[assignment,return-value]  # noqa: E731
    elif prefix.startswith(b"BZh"):
        import bz2
        opener = lambda f: bz2.open(f)  # type: ignore[assignment,return-value]  # noqa: E731
    if opener is None:
        return None
    fd, tmp = tempfile.mkstemp(prefix="berth-archive-", suffix=".tar",
                               dir=tmpdir or os.path.dirname(os.path.abspath(path)))
    try:
        with open(path, "rb") as raw, os.fdopen(fd, "wb") as out:
            stream = opener(raw)
            try:
                shutil.copyfileobj(stream, out, CHUNK)
            except (OSError, EOFError) as e:
                raise InvalidArchive(f"invalid archive: cannot decompress: {e}") from None
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def open_archive(path: str, *, tmpdir: str | None = None) -> ImageArchive:
    """Open a docker-archive or OCI archive (a tar file, maybe compressed) or OCI directory.

    ``tmpdir`` is where a compressed archive is spooled uncompressed (default: next to it).
    """
    if os.path.isdir(path):
        src: Source = DirSource(path)
        fmt = "docker-archive" if src.exists("manifest.json") else "oci-dir"
        tmp = None
    else:
        if not os.path.exists(path):
            raise InvalidArchive(f"invalid archive: {path}: no such file")
        tmp = _decompress_to_temp(path, tmpdir)
        try:
            src = TarSource(tmp or path)
        except BaseException:
            if tmp:
                os.unlink(tmp)
            raise
        fmt = "docker-archive" if src.exists("manifest.json") else "oci-archive"
    archive = ImageArchive(fmt, [], src, tmp)
    try:
        if fmt == "docker-archive":
            archive.images = _read_docker(src)
        elif src.exists("oci-layout") and src.exists("index.json"):
            archive.images = _read_oci(src)
        else:
            raise InvalidArchive("invalid archive: no manifest.json, and no oci-layout and "
                                 "index.json: not a docker-archive or OCI layout")
    except BaseException:
        archive.close()
        raise
    return archive
