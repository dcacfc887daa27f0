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
    from berth.oci.layer_apply import apply_layer

    with store.ingesting():  # keeps GC from collecting the blobs meanwhile
        for r in rows:
            pending = store.layers.prepare()
            try:
                with store.content.open(r["blob_digest"]) as blob:
                    result = apply_layer(blob, pending.diff, expected_diff_id=r["diff_id"])
                with store.db.tx() as tx:
                    store.layers.finish_unpack(tx, pending, chain_id=r["chain_id"],
                                               size=result.unpacked_size)
            except BaseException:
                pending.discard()
                raise
