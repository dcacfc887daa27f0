"""Disk accounting for images: what the store holds, and what a prune would really free.

Every figure comes from rows (layer sizes kept when layers are written) and one listing
of the blob directory, never from walking trees, so ``system df`` costs the same few
milliseconds with 1,000 images as with one.

Two kinds of size, as Docker has them:

* an image's SIZE is the content of its layers (bytes of regular files, the same whether a
  layer is unpacked yet or not); SHARED SIZE is the part in layers other images also use;
* the Images row of ``system df`` is *disk*: each layer once (its tree and tar-split
  record), plus every stored blob (compressed layers as pulled, packed layers, configs,
  manifests). RECLAIMABLE is that total minus what the images of containers keep alive —
  exactly what ``image prune -a`` would delete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from berth.store.store import Store

# disk bytes of a layer row: its tree when unpacked, plus its tar-split record
LAYER_DISK_SQL = "(CASE WHEN unpacked THEN size ELSE 0 END) + COALESCE(split_size, 0)"


@dataclass
class ImageUsage:
    id: str
    size: int
    shared_size: int
    containers: int

    @property
    def unique_size(self) -> int:
        return self.size - self.shared_size


@dataclass
class ImagesUsage:
    total_count: int = 0
    active: int = 0
    disk: int = 0
    reclaimable: int = 0
    images: list[ImageUsage] = field(default_factory=list)


def blob_sizes(store: Store) -> dict[str, int]:
    """Every stored blob's size, from one directory scan."""
    out: dict[str, int] = {}
    with os.scandir(store.content.dir) as it:
        for e in it:
            if len(e.name) == 64 and not e.name.startswith("."):
                try:
                    out["sha256:" + e.name] = e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
    return out


def _tuples(store: Store, sql: str) -> list[tuple[Any, ...]]:
    """Rows as plain tuples: a few times faster than ``sqlite3.Row`` for 5,000 rows."""
    cur = store.db.conn.cursor()
    cur.row_factory = None
    return cur.execute(sql).fetchall()


def images_usage(store: Store, *, per_image: bool = False) -> ImagesUsage:
    """The Images row of ``system df`` (and, with ``per_image``, its ``-v`` table).

    Four plain queries and set arithmetic in Python: about 10 ms for 1,000 images with
    5,000 layers, where joins over the same rows took 4-5 times that.
    """
    u = ImagesUsage()
    layer_disk = dict(_tuples(store, f"SELECT chain_id, {LAYER_DISK_SQL} FROM layers"))
    links = _tuples(store, "SELECT image_id, chain_id, blob_digest FROM image_layers")
    images = _tuples(store, "SELECT id, manifest_digest FROM images")
    used = {r[0] for r in _tuples(store, "SELECT DISTINCT image_id FROM containers")}
    blobs = blob_sizes(store)
    u.disk = sum(layer_disk.values()) + sum(blobs.values())
    u.total_count = len(images)
    live_blobs: set[str] = set()
    for iid, manifest in images:
        if iid in used:
            u.active += 1
            live_blobs.update((iid, manifest))
    live_chains: set[str] = set()
    for iid, chain, blob in links:
        if iid in used:
            live_chains.add(chain)
            live_blobs.add(blob)
    kept = sum(layer_disk.get(c, 0) for c in live_chains)
    kept += sum(blobs.get(b, 0) for b in live_blobs)
    u.reclaimable = max(0, u.disk - kept)
    if per_image:
        u.images = _per_image(store, links, images)
    return u


def _per_image(store: Store, links: list[tuple[Any, ...]],
               images: list[tuple[Any, ...]]) -> list[ImageUsage]:
    sizes = dict(_tuples(store, "SELECT chain_id, size FROM layers"))
    users: dict[str, set[str]] = {}
    for iid, chain, _ in links:
        users.setdefault(chain, set()).add(iid)
    by_image = {iid: ImageUsage(iid, 0, 0, 0) for iid, _ in images}
    for iid, chain, _ in links:
        iu = by_image.get(iid)
        if iu is None:
            continue
        iu.size += sizes.get(chain, 0)
        if len(users[chain]) > 1:
            iu.shared_size += sizes.get(chain, 0)
    for iid, n in _tuples(store, "SELECT image_id, COUNT(*) FROM containers GROUP BY image_id"):
        if iid in by_image:
            by_image[iid].containers = n
    return list(by_image.values())
