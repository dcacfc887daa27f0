"""From bytes to a stored image: one pass per layer, then one transaction per image.

A layer stream is read once: the raw (possibly compressed) bytes are teed into a content
store ingestion while the decompressed tar is unpacked into a pending layer directory, so
the blob digest, the diff ID and the unpacked tree all come out of a single read. Nothing
becomes visible until :func:`commit_image` publishes layers and rows together in one
database transaction; a crash before that leaves only temp files.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from berth.errors import DigestMismatch, InvalidReference
from berth.images.onecopy import has_layer_blob, layer_blob_size
from berth.oci import mediatypes as mt
from berth.oci.compression import detect
from berth.oci.digest import CHUNK, sha256_bytes, validate
from berth.oci.reference import Reference
from berth.oci.tarsplit import TarSplitter
from berth.store.layers import PendingLayer
from berth.store.store import Store
from berth.testpoints import pause


def chain_id_of(parent: str | None, diff_id: str) -> str:
    """OCI ChainID: the diff ID for a base layer, else sha256(parent + " " + diff_id)."""
    return diff_id if parent is None else sha256_bytes(f"{parent} {diff_id}".encode())


@dataclass
class IngestedLayer:
    chain_id: str
    diff_id: str
    blob_digest: str
    blob_size: int
    media_type: str
    size: int
    pending: PendingLayer | None = None
    packed: bool = False  # verified but not unpacked: unpacked on first use
    split_size: int | None = None  # kept as tree + tar-split record: no blob stored


class _Tee:
    """A reader that copies everything it reads into a sink (a content ingestion)."""

    def __init__(self, raw: BinaryIO, sink) -> None:  # type: ignore[no-untyped-def]
        self._raw = raw
        self._sink = sink
        self.head = b""

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._sink.write(data)
        return data

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class _Peek:
    """Lets us look at the first bytes of a non-seekable stream to pick a media type."""

    def __init__(self, raw: BinaryIO, n: int = 8) -> None:
        self._raw = raw
        self._buf = raw.read(n)
        self.head = self._buf

    def read(self, n: int = -1) -> bytes:
        if self._buf:
            if n < 0:
                data, self._buf = self._buf + self._raw.read(), b""
                return data
            data, self._buf = self._buf[:n], self._buf[n:]
            if len(data) < n:
                data += self._raw.read(n - len(data))
            return data
        return self._raw.read(n)


def media_type_for(head: bytes) -> str:
    return {"gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}.get(detect(head), mt.OCI_LAYER)


def ingest_layer(store: Store, raw: BinaryIO, *, parent: str | None,
                 media_type: str | None = None, expected_digest: str | None = None,
                 expected_size: int | None = None,
                 expected_diff_id: str | None = None, unpack: bool = True) -> IngestedLayer:
    """Store one layer blob and unpack it (unless its chain is already known).

    With ``unpack=False`` the tar is only verified against its diff ID; the layer is
    unpacked on first use. The caller must hold ``store.ingesting()`` and later pass the
    result to :func:`commit_image` (or :func:`discard`) — until then nothing is visible.
    """
    from berth.oci.layer_apply import apply_layer
    from berth.oci.layer_verify import verify_layer

    if expected_diff_id is not None:
        validate(expected_diff_id)
        known_chain = chain_id_of(parent, expected_diff_id)
        row = store.db.one("SELECT size FROM layers WHERE chain_id=?", (known_chain,))
        if row is not None and expected_digest and has_layer_blob(store, expected_digest,
                                                                  known_chain):
            return IngestedLayer(known_chain, expected_diff_id, expected_digest,
                                 layer_blob_size(store, expected_digest),
                                 media_type or mt.OCI_LAYER, row["size"])
    else:
        row = None
    peek = _Peek(raw)
    media_type = media_type or media_type_for(peek.head)
    pending: PendingLayer | None = None
    # A plain tar that is unpacked now is kept once: tree + tar-split record, no blob.
    splitter = TarSplitter() if (unpack and row is None
                                 and detect(peek.head) == "none") else None
    split_size: int | None = None
    with store.content.ingest(expected_digest, expected_size,
                              writeback=splitter is None) as blob:
        tee = _Tee(peek, blob)  # type: ignore[arg-type]
        try:
            if row is not None:  # known already: only the blob is missing
                tee.drain()
                diff_id, size = expected_diff_id, row["size"]
            elif not unpack:
                result = verify_layer(tee, expected_diff_id=expected_diff_id)  # type: ignore[arg-type]
                tee.drain()
                diff_id, size = result.diff_id, result.unpacked_size
            else:
                pending = store.layers.prepare()
                result = apply_layer(tee, pending.diff,  # type: ignore[arg-type]
                                     expected_diff_id=expected_diff_id,
                                     tap=splitter.feed if splitter else None)
                tee.drain()
                diff_id, size = result.diff_id, result.unpacked_size
            record = splitter.finish() if splitter is not None else None
            if record is not None and pending is not None:
                digest = blob.verify_and_drop()
                split_size = pending.write_split(record)
            else:
                digest = blob.commit()
        except BaseException:
            if pending is not None:
                pending.discard()
            raise
    assert diff_id is not None
    return IngestedLayer(chain_id_of(parent, diff_id), diff_id, digest, blob.size,
                         media_type, size, pending, packed=row is None and not unpack,
                         split_size=split_size)


def discard(layers: list[IngestedLayer]) -> None:
    """Drop pending layer dirs of an ingest that will not be committed."""
    for layer in layers:
        if layer.pending is not None:
            layer.pending.discard()


@dataclass
class CommitResult:
    image_id: str
    tagged: list[str] = field(default_factory=list)
    untagged_from: dict[str, str] = field(default_factory=dict)  # tag -> previous image


def commit_image(store: Store, layers: list[IngestedLayer], config: bytes, *,
                 manifest: bytes | None = None, manifest_media_type: str | None = None,
                 tags: list[Reference] = (), repo_digest: Reference | None = None,  # type: ignore[assignment]
                 parent: str | None = None) -> CommitResult:
    """Publish layers, config, manifest and rows for one image in one transaction."""
    from berth.oci.image_config import parse_config
    from berth.oci.manifest import Descriptor, build_manifest

    try:
        cfg = parse_config(config)
        diff_ids = cfg["rootfs"]["diff_ids"]
        if diff_ids != [layer.diff_id for layer in layers]:
            raise DigestMismatch("image config diff_ids do not match the layers")
        config_digest = store.content.put(config)
        if manifest is None:
            manifest = build_manifest(
                Descriptor(mt.OCI_CONFIG, config_digest, len(config)),
                [Descriptor(layer.media_type, layer.blob_digest, layer.blob_size)
                 for layer in layers])
            manifest_media_type = mt.OCI_MANIFEST
        manifest_digest = store.content.put(manifest)
    except BaseException:
        discard(layers)
        raise
    created = _parse_created(cfg.get("created"))
    labels = json.dumps(((cfg.get("config") or {}).get("Labels")) or {})
    now = time.time()
    result = CommitResult(config_digest)
    pause("before-commit")
    try:
        with store.db.tx() as tx:
            size = 0
            for layer in layers:
                if layer.pending is not None:
                    store.layers.publish(tx, layer.pending, chain_id=layer.chain_id,
                                         diff_id=layer.diff_id,
                                         parent=_parent_chain(layers, layer), size=layer.size,
                                         split_size=layer.split_size,
                                         blob_kept=0 if layer.split_size else layer.blob_size)
                elif layer.packed:
                    store.layers.publish_packed(tx, chain_id=layer.chain_id,
                                                diff_id=layer.diff_id,
                                                parent=_parent_chain(layers, layer),
                                                size=layer.size, blob_kept=layer.blob_size)
                row = tx.one("SELECT size FROM layers WHERE chain_id=?", (layer.chain_id,))
                if row is None:
                    raise DigestMismatch(f"layer {layer.chain_id} vanished during commit")
                size += row["size"]
            exists = tx.one("SELECT 1 FROM images WHERE id=?", (config_digest,))
            if not exists:
                tx.execute(
                    "INSERT INTO images(id, manifest_digest, manifest_media_type, created, "
                    "added, size, labels, parent, top_layer) VALUES (?,?,?,?,?,?,?,?,?)",
                    (config_digest, manifest_digest, manifest_media_type, created, now, size,
                     labels, parent, layers[-1].chain_id if layers else None))
                tx.executemany(
                    "INSERT INTO image_layers(image_id, idx, chain_id, blob_digest, blob_size,"
                    " media_type) VALUES (?,?,?,?,?,?)",
                    [(config_digest, i, layer.chain_id, layer.blob_digest, layer.blob_size,
                      layer.media_type) for i, layer in enumerate(layers)])
            for ref in tags:
                prev = set_tag(tx, ref, config_digest, now)
                result.tagged.append(ref.familiar)
                if prev and prev != config_digest:
                    result.untagged_from[ref.familiar] = prev
            if repo_digest is not None:
                tx.execute("INSERT OR REPLACE INTO repo_digests(repository, digest, image_id) "
                           "VALUES (?,?,?)", (repo_digest.repository, repo_digest.digest,
                                              config_digest))
    except BaseException:
        discard(layers)
        raise
    return result


def parse_tag(text: str) -> Reference:
    """A name to tag an image with: a valid reference with a tag (default ``latest``) and
    no digest. Callers check it before writing any byte, so a bad name leaves nothing."""
    from berth.oci import reference

    ref = reference.parse_named_tagged(text)
    if ref.digest or not ref.tag:
        raise InvalidReference(f"refusing to create a tag with a digest reference: {text}")
    return ref


def set_tag(tx, ref: Reference, image_id: str, now: float) -> str | None:  # type: ignore[no-untyped-def]
    """Point ``ref`` (with a tag) at ``image_id``; return the image it pointed at before.

    A reference with a digest is no tag (Docker: "refusing to create a tag with a digest
    reference"); checked here, the one place every tag is written, so no caller can store
    a row that names a digest or has no tag.
    """
    ref = ref.with_default_tag()
    if ref.digest or not ref.tag:
        raise InvalidReference(f"refusing to create a tag with a digest reference: {ref}")
    prev = tx.one("SELECT image_id FROM tags WHERE name=?", (str(ref),))
    tx.execute("INSERT OR REPLACE INTO tags(name, repository, tag, image_id, tagged) "
               "VALUES (?,?,?,?,?)", (str(ref), ref.repository, ref.tag, image_id, now))
    return prev["image_id"] if prev else None


def _parent_chain(layers: list[IngestedLayer], layer: IngestedLayer) -> str | None:
    i = layers.index(layer)
    return layers[i - 1].chain_id if i else None


def _parse_created(value: str | None) -> float:
    """RFC 3339 (with nanoseconds) → epoch seconds; 0 when absent or unreadable."""
    if not value:
        return 0.0
    from datetime import datetime

    v = value.strip().replace("Z", "+00:00")
    if "." in v:  # Python parses at most microseconds
        head, _, rest = v.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits):]
        v = f"{head}.{digits[:6]}{tz}"
    try:
        return datetime.fromisoformat(v).timestamp()
    except ValueError:
        return 0.0
