"""Write image archives (``docker save`` and oci-archive) to a plain output stream.

The output may be a pipe (``berth save | gzip``), so the tar is written strictly in order
and every member's size must be known before its header: compressed layers bound for a
docker-archive are first decompressed to a temp file. Output is deterministic — names
sorted, mtime 0, uid/gid 0, canonical JSON — so saving the same images twice gives the
same bytes.

The docker-archive is the Docker 25+ layout (``blobs/sha256/...`` plus ``manifest.json``,
``index.json``, ``oci-layout`` and legacy ``repositories``), which old readers (that follow
``manifest.json`` paths) and new ones (that read the OCI index) both accept.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

from berth.errors import DigestMismatch, InvalidArgument
from berth.oci import mediatypes as mt
from berth.oci.archive_read import CONTAINERD_NAME, REF_NAME
from berth.oci.digest import CHUNK, DigestingReader, hex_of, sha256_bytes
from berth.oci.manifest import Descriptor, build_index, build_manifest
from berth.oci.reference import Reference, parse

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass
class ExportLayer:
    """A stored layer blob (possibly compressed) and the digest of its uncompressed tar."""

    media_type: str
    digest: str
    size: int
    diff_id: str
    open: Callable[[], BinaryIO]


@dataclass
class ExportImage:
    """Everything needed to write one image; ``repo_tags`` are names like busybox:latest."""

    config: bytes
    config_digest: str
    manifest: bytes
    manifest_digest: str
    manifest_media_type: str
    layers: list[ExportLayer]
    repo_tags: list[str]


@dataclass
class _Member:
    """A file to write: bytes in memory, or an opener with a size and digest to verify."""

    size: int
    data: bytes | None = None
    opener: Callable[[], BinaryIO] | None = None
    digest: str | None = None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _blob(digest: str) -> str:
    return f"blobs/sha256/{hex_of(digest)}"


def _refs(tags: list[str]) -> list[Reference]:
    """Parsed, tagged references; a name that does not parse is the caller's bug."""
    refs = []
    for t in tags:
        ref = parse(t)
        if ref.tag is None:
            if ref.digest is not None:
                continue  # a digest pins content, it is not a name an archive can carry
            ref = ref.with_default_tag()
        refs.append(ref)
    return refs


def _checked(data: bytes, digest: str, what: str) -> bytes:
    got = sha256_bytes(data)
    if got != digest:
        raise DigestMismatch(f"{what} digest mismatch: expected {digest}, got {got}")
    return data


def _index_entries(desc: Descriptor, refs: list[Reference]) -> list[Descriptor]:
    """One index entry per name, as Docker 25 and containerd write them."""
    if not refs:
        return [desc]
    return [Descriptor(desc.media_type, desc.digest, desc.size,
                       annotations={CONTAINERD_NAME: str(r), REF_NAME: r.tag or "latest"})
            for r in refs]


def _write_tar(out: BinaryIO, members: dict[str, _Member]) -> None:
    """Stream a sorted tar with fixed metadata; verify streamed members as they pass."""
    dirs = {"blobs", *(os.path.dirname(n) for n in members if n.startswith("blobs/"))}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(dirs | set(members)):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name not in members:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
                continue
            m = members[name]
            info.mode = 0o644
            info.size = m.size
            if m.data is not None:
                tf.addfile(info, io.BytesIO(m.data))
                continue
            assert m.opener is not None
            with m.opener() as raw:
                reader = DigestingReader(raw)
                try:
                    tf.addfile(info, reader)
                except OSError as e:
                    raise DigestMismatch(f"{name}: blob is shorter than its size: {e}") from None
                if m.digest is not None:
                    reader.verify(m.digest, m.size)


def _uncompressed(layer: ExportLayer, tmpdir: str, temps: list[str]) -> _Member:
    """The layer as an uncompressed tar of known size, spooling if it is compressed."""
    if layer.digest == layer.diff_id:
        return _Member(size=layer.size, opener=layer.open, digest=layer.diff_id)
    from berth.oci.compression import open_decompressed

    fd, path = tempfile.mkstemp(prefix="berth-save-", suffix=".tar", dir=tmpdir)
    temps.append(path)
    with layer.open() as raw, os.fdopen(fd, "wb") as f:
        reader = DigestingReader(open_decompressed(raw))
        shutil.copyfileobj(reader, f, CHUNK)
    if reader.digest != layer.diff_id:
        raise DigestMismatch(
            f"layer {layer.digest} decompresses to {reader.digest}, not {layer.diff_id}")
    return _Member(size=reader.size, opener=partial(_open_binary, path), digest=layer.diff_id)


def write_docker_archive(out: BinaryIO, images: list[ExportImage], tmpdir: str) -> None:
    """Write a ``docker save`` archive (Docker 25+ layout, uncompressed layers)."""
    members: dict[str, _Member] = {}
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    index: list[Descriptor] = []
    temps: list[str] = []
    try:
        for img in images:
            refs = _refs(img.repo_tags)
            cfg = _checked(img.config, img.config_digest, "config")
            members[_blob(img.config_digest)] = _Member(size=len(cfg), data=cfg)
            layer_descs = []
            for layer in img.layers:
                name = _blob(layer.diff_id)
                if name not in members:
                    members[name] = _uncompressed(layer, tmpdir, temps)
                layer_descs.append(Descriptor(mt.OCI_LAYER, layer.diff_id, members[name].size))
            manifest = build_manifest(
                Descriptor(mt.OCI_CONFIG, img.config_digest, len(cfg)), layer_descs)
            mdigest = sha256_bytes(manifest)
            members[_blob(mdigest)] = _Member(size=len(manifest), data=manifest)
            index += _index_entries(Descriptor(mt.OCI_MANIFEST, mdigest, len(manifest)), refs)
            manifest_json.append({
                "Config": _blob(img.config_digest),
                "RepoTags": [r.familiar for r in refs],
                "Layers": [_blob(layer.diff_id) for layer in img.layers],
            })
            if img.layers:
                for r in refs:
                    repositories.setdefault(r.familiar_repository, {})[r.tag or "latest"] = \
                        hex_of(img.layers[-1].diff_id)
        for name, data in (("index.json", build_index(index)),
                           ("manifest.json", _dumps(manifest_json)),
                           ("oci-layout", OCI_LAYOUT)):
            members[name] = _Member(size=len(data), data=data)
        if repositories:
            data = _dumps({k: dict(sorted(v.items())) for k, v in sorted(repositories.items())})
            members["repositories"] = _Member(size=len(data), data=data)
        _write_tar(out, members)
    finally:
        for path in temps:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def write_oci_archive(out: BinaryIO, images: list[ExportImage]) -> None:
    """Write an oci-archive: the OCI image layout, blobs exactly as stored."""
    members: dict[str, _Member] = {}
    index: list[Descriptor] = []
    for img in images:
        if not (mt.is_manifest(img.manifest_media_type)):
            raise InvalidArgument(f"cannot save manifest type {img.manifest_media_type}")
        cfg = _checked(img.config, img.config_digest, "config")
        man = _checked(img.manifest, img.manifest_digest, "manifest")
        members[_blob(img.config_digest)] = _Member(size=len(cfg), data=cfg)
        members[_blob(img.manifest_digest)] = _Member(size=len(man), data=man)
        for layer in img.layers:
            members.setdefault(_blob(layer.digest), _Member(
                size=layer.size, opener=layer.open, digest=layer.digest))
        desc = Descriptor(img.manifest_media_type, img.manifest_digest, len(man))
        index += _index_entries(desc, _refs(img.repo_tags))
    idx = build_index(index)
    members["index.json"] = _Member(size=len(idx), data=idx)
    members["oci-layout"] = _Member(size=len(OCI_LAYOUT), data=OCI_LAYOUT)
    _write_tar(out, members)


def _open_binary(path: str) -> BinaryIO:
    """``open(path, "rb")`` typed as the BinaryIO an archive member's opener returns."""
    return open(path, "rb")
