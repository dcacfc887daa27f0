"""One copy of each layer: a layer's tar blob is served from its tree when not stored.

A plain (uncompressed) layer that is unpacked keeps no tar blob: its tree plus its
tar-split record (:mod:`berth.oci.tarsplit`) rebuild the exact tar, so the blob digest
(which is the diff ID for a plain tar) still names it. Everyone who reads a layer blob —
``save``, ``push``, ``system check``, an ingest asking whether it is already stored — goes
through :func:`open_layer_blob` / :func:`has_layer_blob`, which take the stored blob when
there is one and rebuild it otherwise. A rebuilt stream is hashed as it is read and fails
unless it matches, so a damaged tree can never pass for the layer.

Compressed blobs (pulled layers) stay as they are: they are what a re-push must send
byte for byte, and the accounting counts them.

Stores made before this existed hold both copies; :func:`convert_store` turns them into
the one-copy layout the first time a new berth opens them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from berth.errors import BerthError, NotFound
from berth.store.locks import try_flock
from berth.store.store import Store

FORMAT_KEY = "layer_format"
FORMAT = "tar-split-1"


def _split_chain(store: Store, digest: str, chain_id: str | None = None) -> str | None:
    """A chain whose tree + record rebuild the plain tar ``digest`` (None if none)."""
    if chain_id is not None:
        row = store.db.one("SELECT chain_id FROM layers WHERE chain_id=? AND diff_id=? AND "
                           "unpacked=1 AND split_size IS NOT NULL", (chain_id, digest))
        if row is not None:
            return str(row["chain_id"])
    row = store.db.one("SELECT chain_id FROM layers WHERE diff_id=? AND unpacked=1 AND "
                       "split_size IS NOT NULL LIMIT 1", (digest,))
    return str(row["chain_id"]) if row is not None else None


def has_layer_blob(store: Store, digest: str, chain_id: str | None = None) -> bool:
    """Whether the layer blob ``digest`` can be read: stored, or rebuildable."""
    return store.content.exists(digest) or _split_chain(store, digest, chain_id) is not None


def layer_blob_size(store: Store, digest: str) -> int:
    """Length of a layer blob, stored or rebuildable (rows record it for the latter)."""
    try:
        return store.content.size(digest)
    except NotFound:
        row = store.db.one("SELECT blob_size FROM image_layers WHERE blob_digest=? LIMIT 1",
                           (digest,))
        if row is None:
            raise
        return int(row["blob_size"])


def open_layer_blob(store: Store, digest: str, chain_id: str | None = None) -> BinaryIO:
    """The bytes of layer blob ``digest``: the stored file, else rebuilt from a tree."""
    return blob_opener(store, digest, chain_id)()


def blob_opener(store: Store, digest: str,
                chain_id: str | None = None) -> Callable[[], BinaryIO]:
    """Decide now (one query at most) how blob ``digest`` will be read; the opener then
    touches no database, so worker threads (push) open no connections of their own."""
    if store.content.exists(digest):
        return lambda: _open_stored_or_rebuilt(store, digest, chain_id)
    chain = _split_chain(store, digest, chain_id)
    if chain is None:
        raise NotFound(f"blob {digest} not found")
    return lambda: rebuild(store, chain, digest)


def _open_stored_or_rebuilt(store: Store, digest: str, chain_id: str | None) -> BinaryIO:
    try:
        return store.content.open(digest)
    except NotFound:  # dropped since (its layer was unpacked): rebuild it
        chain = _split_chain(store, digest, chain_id)
        if chain is None:
            raise
        return rebuild(store, chain, digest)


def rebuild(store: Store, chain_id: str, diff_id: str) -> BinaryIO:
    """The exact tar of ``chain_id`` from its tree and record, verified against ``diff_id``."""
    from typing import cast

    from berth.oci.tarsplit import RebuiltTar

    record = open(store.layers.split_path(chain_id), "rb")  # noqa: SIM115 - RebuiltTar closes
    return cast(BinaryIO, RebuiltTar(
        record, lambda rel: store.layers.open_file(chain_id, rel), diff_id))


@contextmanager
def materialized(store: Store, digest: str,
                 opener: Callable[[], BinaryIO] | None = None) -> Iterator[str]:
    """A path holding blob ``digest`` for random access (push uploads in ranges).

    A stored blob is used in place; a rebuilt one is written (and verified) to a temp file
    in the store's tmp dir for the duration, then removed. ``opener`` (from
    :func:`blob_opener`) spares a database query in the calling thread.
    """
    if store.content.exists(digest):
        yield store.content.path(digest)
        return
    path = os.path.join(store.tmp, f"rebuild-{os.getpid()}-{os.urandom(6).hex()}")
    try:
        with store.ingesting(), (opener or blob_opener(store, digest))() as src, \
                open(path, "xb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        yield path
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def drop_blob_if_rebuildable(store: Store, digest: str) -> int:
    """Delete a plain layer blob once every chain of that diff ID is tree + record.

    A packed chain (``unpacked=0``) of the same diff ID still needs the blob to unpack
    from, so it stays then. Returns the bytes freed.
    """
    rows = store.db.query("SELECT unpacked, split_size FROM layers WHERE diff_id=?", (digest,))
    if not rows or any(not r["unpacked"] or r["split_size"] is None for r in rows):
        return 0
    with store.db.tx() as tx:  # row first: a crash before the unlink leaves a blob GC drops
        tx.execute("UPDATE layers SET blob_kept=0 WHERE diff_id=?", (digest,))
    return store.content.delete(digest)


def drop_pending(store: Store) -> None:
    """Delete the blobs in ``store.pending_drops`` if the exclusive lock is free now.

    A caller still holding the shared lock (a build, a ``create``) makes this a no-op;
    the engine calls it again after letting go, and any GC drops what is left.
    """
    with try_flock(store.lock_path, exclusive=True) as locked:
        if not locked:
            return
        for digest in sorted(store.pending_drops):
            drop_blob_if_rebuildable(store, digest)
        store.pending_drops.clear()


def verify_rebuilds(store: Store) -> list[str]:
    """Chains whose tree + record no longer rebuild their diff ID (``system check``)."""
    bad = []
    for r in store.db.query("SELECT chain_id, diff_id FROM layers WHERE unpacked=1 AND "
                            "split_size IS NOT NULL"):
        try:
            with rebuild(store, r["chain_id"], r["diff_id"]) as tar:
                while tar.read(1 << 20):
                    pass
        except (OSError, BerthError):
            bad.append(str(r["chain_id"]))
    return bad


def drop_rebuildable_blobs(store: Store) -> int:
    """Delete every plain blob that trees + records can rebuild (under the exclusive lock):
    what an unpack could not drop because the store was busy then."""
    freed = 0
    for r in store.db.query("SELECT DISTINCT diff_id FROM layers WHERE split_size IS NOT NULL"):
        if store.content.exists(r["diff_id"]):
            freed += drop_blob_if_rebuildable(store, r["diff_id"])
    return freed


def make_record_from_blob(store: Store, chain_id: str, digest: str) -> int | None:
    """Convert one layer of an old store: record from its stored blob, checked by a rebuild.

    Returns the record's size, or None when the tree cannot rebuild the blob exactly (the
    blob then stays). Called under the exclusive store lock.
    """
    from berth.oci.tarsplit import TarSplitter
    from berth.store.fsutil import atomic_write

    sp = TarSplitter()
    with store.content.open(digest) as f:
        while chunk := f.read(1 << 20):
            sp.feed(chunk)
    record = sp.finish()
    if record is None:
        return None
    path = store.layers.split_path(chain_id)
    atomic_write(path, record, 0o600)
    try:
        with rebuild(store, chain_id, digest) as r:
            while r.read(1 << 20):
                pass
    except Exception:  # noqa: BLE001 - any mismatch: keep the blob, drop the record
        os.unlink(path)
        return None
    return len(record)


def convert_store(store: Store) -> int:
    """Bring a store made before one-copy layers to the new layout; bytes freed.

    Idempotent and crash-safe: each layer's record is written (atomically) and checked
    before its row says so, and a blob is deleted only after that row commits. The
    store is marked converted at the end, so a killed conversion resumes next time.
    """
    if not needs_conversion(store):
        return 0
    freed = 0
    with try_flock(store.lock_path, exclusive=True) as locked:
        if not locked:
            return 0  # someone is ingesting or collecting: convert another time
        rows = store.db.query(
            "SELECT chain_id, diff_id FROM layers WHERE unpacked=1 AND split_size IS NULL")
        for r in rows:
            if not store.content.exists(r["diff_id"]):
                continue  # only plain blobs (digest = diff ID) can be dropped
            size = make_record_from_blob(store, r["chain_id"], r["diff_id"])
            if size is None:
                continue
            with store.db.tx() as tx:
                tx.execute("UPDATE layers SET split_size=? WHERE chain_id=?",
                           (size, r["chain_id"]))
        for digest in {r["diff_id"] for r in rows}:
            freed += drop_blob_if_rebuildable(store, digest)
        with store.db.tx() as tx:
            tx.execute("INSERT OR REPLACE INTO store_meta(key, value) VALUES (?,?)",
                       (FORMAT_KEY, FORMAT))
    return freed


def needs_conversion(store: Store) -> bool:
    """Cheap check at open: the store is not marked converted yet."""
    return store.db.one("SELECT 1 FROM store_meta WHERE key=?", (FORMAT_KEY,)) is None
