"""Images in and out of tar files: ``import`` (a rootfs), ``load`` and ``save`` (archives).

Each function holds the shared ingest lock for its whole run and commits every image in a
single transaction, so a ``load`` killed at any point leaves either the image complete or
nothing but temp files (removed at the next start).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from berth.errors import InvalidArchive, InvalidReference, NotFound
from berth.images.ingest import (
    CommitResult,
    commit_image,
    discard,
    ingest_layer,
    parse_tag,
)
from berth.images.onecopy import open_layer_blob
from berth.oci import reference
from berth.store.store import Store


def _rfc3339(ts: float) -> str:
    from berth.units import rfc3339_nano

    return rfc3339_nano(ts)


def import_rootfs(store: Store, src: BinaryIO, *, ref: str | None = None,
                  changes: Sequence[str] = (), message: str = "",
                  platform_os: str = "linux", architecture: str | None = None) -> CommitResult:
    """A rootfs tarball (plain, gzip or zstd) becomes a one-layer image."""
    from berth.oci.image_config import apply_changes, new_config

    tags = [parse_tag(ref)] if ref else []
    config: dict[str, Any] = apply_changes({}, list(changes)) if changes else {}
    with store.ingesting():
        layer = ingest_layer(store, src, parent=None)
        now = _rfc3339(time.time())
        history = [{"created": now, "created_by": "berth import", **(
            {"comment": message} if message else {})}]
        try:
            cfg = new_config(diff_ids=[layer.diff_id], architecture=architecture,
                             os=platform_os, created=now, config=config, history=history)
        except BaseException:
            discard([layer])
            raise
        return commit_image(store, [layer], cfg, tags=tags)


@dataclass
class LoadResult:
    images: list[CommitResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for r in self.images:
            if r.tagged:
                out += [f"Loaded image: {t}" for t in r.tagged]
            else:
                out.append(f"Loaded image ID: {r.image_id}")
        return out


def spool(store: Store, stream: BinaryIO) -> str:
    """Copy a non-seekable input (stdin) to a temp file the archive reader can seek in."""
    path = os.path.join(store.tmp, f"spool-{os.getpid()}-{os.urandom(6).hex()}")
    try:
        with open(path, "xb") as f:
            shutil.copyfileobj(stream, f, 1 << 20)
    except BaseException:
        try:
            os.unlink(path)  # a full disk must not leave the partial copy behind
        except FileNotFoundError:
            pass
        raise
    return path


def load(store: Store, path: str) -> LoadResult:
    """``docker load``: a docker-archive or OCI archive (or OCI layout dir) into the store."""
    from berth.oci.archive_read import open_archive

    result = LoadResult()
    with store.ingesting(), open_archive(path) as archive:
        if not archive.images:
            raise InvalidArchive("no images found in the archive")
        # every name is checked before a byte is written: a bad one loads nothing
        tags_of = {id(img): [_archive_tag(t) for t in img.repo_tags]
                   for img in archive.images}
        for img in archive.images:
            layers = []
            try:
                parent = None
                for layer in img.layers:
                    with layer.open() as stream:
                        ing = ingest_layer(store, stream, parent=parent,
                                           media_type=None, expected_digest=layer.digest,
                                           expected_size=layer.size,
                                           expected_diff_id=layer.diff_id)
                    layers.append(ing)
                    parent = ing.chain_id
            except BaseException:
                discard(layers)
                raise
            result.images.append(commit_image(store, layers, img.config,
                                              tags=tags_of[id(img)]))
    return result


def _archive_tag(text: object) -> reference.Reference:
    """A ``RepoTags`` entry as a tag: a string, a valid name, a tag and no digest."""
    if not isinstance(text, str):
        raise InvalidArchive(f"invalid archive: RepoTags entry {text!r} is not a string")
    try:
        return parse_tag(text)
    except InvalidReference as e:
        raise InvalidArchive(f"invalid archive: invalid tag {text!r}: {e}") from None


def save(store: Store, images: list[tuple[str, list[str]]], out: BinaryIO,
         fmt: str = "docker-archive") -> None:
    """Write images (id, familiar tags) as a docker-archive or oci-archive to ``out``."""
    from berth.oci.archive_write import (
        ExportImage,
        ExportLayer,
        write_docker_archive,
        write_oci_archive,
    )
    from berth.oci.digest import sha256_bytes

    exports = []
    for image_id, tags in images:
        row = store.db.one("SELECT manifest_digest, manifest_media_type FROM images "
                           "WHERE id=?", (image_id,))
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        layers = []
        for lr in store.db.query(
                "SELECT il.blob_digest, il.blob_size, il.media_type, il.chain_id, l.diff_id FROM "
                "image_layers il JOIN layers l ON l.chain_id=il.chain_id "
                "WHERE il.image_id=? ORDER BY il.idx", (image_id,)):
            layers.append(ExportLayer(
                media_type=lr["media_type"], digest=lr["blob_digest"], size=lr["blob_size"],
                diff_id=lr["diff_id"],
                open=_blob_opener(store, lr["blob_digest"], lr["chain_id"])))
        manifest = store.content.read(row["manifest_digest"])
        exports.append(ExportImage(
            config=store.content.read(image_id), config_digest=image_id, manifest=manifest,
            manifest_digest=sha256_bytes(manifest),
            manifest_media_type=row["manifest_media_type"], layers=layers, repo_tags=tags))
    if fmt == "oci-archive":
        write_oci_archive(out, exports)
    else:
        write_docker_archive(out, exports, store.tmp)


def _blob_opener(store: Store, digest: str, chain_id: str) -> Callable[[], BinaryIO]:
    """Opens one layer's blob when the writer gets to it (bound now, not late in a loop)."""
    return lambda: open_layer_blob(store, digest, chain_id)
