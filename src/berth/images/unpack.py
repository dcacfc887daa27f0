"""Unpack on first use: a pulled layer's files are written when a container first needs them.

A pull verifies and stores the compressed blobs (like ``skopeo copy`` to an OCI layout) and
records each layer with ``unpacked=0``. :func:`ensure_unpacked` — called before an image's
layers are mounted — applies the stored blob into a pending directory (checking every tar
member and the diff ID again) and publishes it in one transaction; two processes that race
each unpack privately and the loser's copy is dropped.
"""

from __future__ import annotations

from berth.store.store import Store


def ensure_unpacked(store: Store, image_id: str) -> None:
    """Make sure every layer of ``image_id`` has its files on disk (bottom layer first)."""
    rows = store.db.query(
        "SELECT il.chain_id, il.blob_digest, l.diff_id FROM image_layers il JOIN layers l "
        "ON l.chain_id = il.chain_id WHERE il.image_id=? AND l.unpacked=0 ORDER BY il.idx",
        (image_id,))
    if not rows:
        return
    from berth.images.onecopy import drop_pending, open_layer_blob
    from berth.oci.layer_apply import apply_layer
    from berth.oci.tarsplit import TarSplitter

    droppable = []
    with store.ingesting():  # keeps GC from collecting the blobs meanwhile
        for r in rows:
            pending = store.layers.prepare()
            # a plain tar (blob digest = diff ID, made by commit/build) is kept once:
            # tree + tar-split record, and its blob goes once the row says so
            plain = r["blob_digest"] == r["diff_id"]
            splitter = TarSplitter() if plain else None
            try:
                with open_layer_blob(store, r["blob_digest"], r["chain_id"]) as blob:
                    result = apply_layer(blob, pending.diff, expected_diff_id=r["diff_id"],
                                         tap=splitter.feed if splitter else None)
                record = splitter.finish() if splitter is not None else None
                split_size = pending.write_split(record) if record is not None else None
                with store.db.tx() as tx:
                    store.layers.finish_unpack(tx, pending, chain_id=r["chain_id"],
                                               size=result.unpacked_size,
                                               split_size=split_size)
            except BaseException:
                pending.discard()
                raise
            if split_size is not None:
                droppable.append(r["blob_digest"])
    if droppable:  # deleting takes the exclusive lock: now, or when the caller lets go
        store.pending_drops.update(droppable)
        drop_pending(store)
