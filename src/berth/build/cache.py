"""The build cache: step key → the image that step made, and file digests by inode.

A cache entry is a row in ``build_cache`` naming an image; the image (an intermediate one,
with ``parent`` set) is what keeps the layers alive, and the row goes when the image goes
(``ON DELETE CASCADE``). So the cache never holds bytes of its own and can never point at
something half-deleted.

``builder prune`` deletes the cached images that nothing *reachable* needs — reachable
meaning a tagged image or a container's image, or an ancestor of one — and with ``-a`` it
also forgets every remaining entry (their images stay: tagged images still need their
parents' rows). ``build_file_hashes`` lets a cached rebuild skip re-reading unchanged
COPY sources; see :mod:`berth.build.sourcehash` for when a stored digest is trusted.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from berth.store.store import Store


@dataclass
class PruneResult:
    removed: list[str] = field(default_factory=list)   # cache keys dropped
    deleted_images: list[str] = field(default_factory=list)
    reclaimed: int = 0


class BuildCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        self._used: list[str] = []

    # -- step entries -----------------------------------------------------------------
    def lookup(self, key: str) -> str | None:
        """The image a step with this key made, if it still exists."""
        row = self.db.one("SELECT image_id FROM build_cache WHERE key=?", (key,))
        if row is None:
            return None
        self._used.append(key)
        return row["image_id"]

    def record(self, key: str, image_id: str) -> None:
        now = time.time()
        with self.db.tx() as tx:
            tx.execute("INSERT OR REPLACE INTO build_cache(key, image_id, created, last_used) "
                       "VALUES (?,?,?,?)", (key, image_id, now, now))

    def touch_used(self) -> None:
        """One write at the end of a build for every hit (``last_used``), not one per hit."""
        if not self._used:
            return
        now = time.time()
        with self.db.tx() as tx:
            tx.executemany("UPDATE build_cache SET last_used=? WHERE key=?",
                           [(now, k) for k in self._used])
        self._used.clear()

    # -- file digests -----------------------------------------------------------------
    def file_digest(self, st: os.stat_result) -> str | None:
        row = self.db.one("SELECT size, mtime_ns, ctime_ns, digest, recorded_ns FROM "
                          "build_file_hashes WHERE dev=? AND ino=?", (st.st_dev, st.st_ino))
        if row is None:
            return None
        if (row["size"], row["mtime_ns"], row["ctime_ns"]) != (
                st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return None
        return row["digest"]

    def remember_files(self, rows: list[tuple[os.stat_result, str, int]]) -> None:
        """Store (stat, digest, time the read began) for files hashed in this build."""
        if not rows:
            return
        with self.db.tx() as tx:
            tx.executemany(
                "INSERT OR REPLACE INTO build_file_hashes(dev, ino, size, mtime_ns, ctime_ns, "
                "digest, recorded_ns) VALUES (?,?,?,?,?,?,?)",
                [(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, d, t)
                 for st, d, t in rows])

    # -- accounting ---------------------------------------------------------------------
    def _reachable(self) -> set[str]:
        """Tagged images, containers' images, and every ancestor of those."""
        parent = {r["id"]: r["parent"] for r in self.db.query("SELECT id, parent FROM images")}
        roots = {r["image_id"] for r in self.db.query(
            "SELECT image_id FROM tags UNION SELECT image_id FROM containers "
            "UNION SELECT image_id FROM repo_digests")}
        seen: set[str] = set()
        for image_id in roots:
            while image_id and image_id not in seen and image_id in parent:
                seen.add(image_id)
                image_id = parent[image_id]
        return seen

    def _own_layers(self) -> dict[str, tuple[str, int]]:
        """Per cached image: the layer its step added (chain, size), if it added one."""
        rows = self.db.query(
            "SELECT b.image_id, i.top_layer, p.top_layer AS parent_top, l.size FROM "
            "build_cache b JOIN images i ON i.id = b.image_id LEFT JOIN images p ON "
            "p.id = i.parent LEFT JOIN layers l ON l.chain_id = i.top_layer")
        return {r["image_id"]: (r["top_layer"], r["size"] or 0) for r in rows
                if r["top_layer"] and r["top_layer"] != r["parent_top"]}

    def usage(self) -> dict[str, int]:
        """``system df``'s Build Cache row: entries, in use, their layers' bytes, reclaimable."""
        keys = self.db.query("SELECT image_id FROM build_cache")
        if not keys:  # the common case costs one query, not a walk of every image
            return {"TotalCount": 0, "Active": 0, "Size": 0, "Reclaimable": 0}
        reachable = self._reachable()
        own = self._own_layers()
        live_chains = {r["chain_id"] for r in self.db.query(
            "SELECT DISTINCT chain_id FROM image_layers WHERE image_id IN "
            "(SELECT image_id FROM tags UNION SELECT image_id FROM containers)")}
        size = sum({c: s for c, s in own.values()}.values())
        dead = {c: s for image_id, (c, s) in own.items()
                if image_id not in reachable and c not in live_chains}
        return {"TotalCount": len(keys),
                "Active": sum(1 for r in keys if r["image_id"] in reachable),
                "Size": size, "Reclaimable": sum(dead.values())}

    def entries(self) -> list[dict[str, object]]:
        """``system df -v``'s build cache table: one row per step entry, newest use first."""
        own = self._own_layers()
        reachable = self._reachable()
        rows = self.db.query("SELECT key, image_id, created, last_used FROM build_cache "
                             "ORDER BY last_used DESC")
        return [{"ID": r["key"].split(":", 1)[-1][:12], "CacheType": "regular",
                 "Size": own.get(r["image_id"], ("", 0))[1], "CreatedAt": r["created"],
                 "LastUsedAt": r["last_used"], "InUse": False,
                 "Shared": r["image_id"] in reachable} for r in rows]

    # -- pruning ------------------------------------------------------------------------
    def prune(self, *, all_entries: bool = False, mounts_dir: str | None = None) -> PruneResult:
        """Delete unreachable cached images (and, with ``all_entries``, every entry)."""
        from berth.images.service import ImageService
        from berth.store.fsutil import remove_tree

        result = PruneResult()
        with self.store.collecting():
            reachable = self._reachable()
            rows = self.db.query("SELECT key, image_id FROM build_cache")
            victims = {r["image_id"] for r in rows if r["image_id"] not in reachable}
            result.removed = [r["key"] for r in rows
                              if all_entries or r["image_id"] in victims]
            with self.db.tx() as tx:
                # children before parents: an image is deleted once no image names it
                pending = set(victims)
                while pending:
                    progress = False
                    for image_id in sorted(pending):
                        if tx.one("SELECT 1 FROM images WHERE parent=? LIMIT 1", (image_id,)):
                            continue
                        tx.execute("DELETE FROM images WHERE id=?", (image_id,))
                        result.deleted_images.append(image_id)
                        pending.discard(image_id)
                        progress = True
                    if not progress:
                        break  # the rest have children outside the victims: keep them
                if all_entries:
                    tx.execute("DELETE FROM build_cache")
                    tx.execute("DELETE FROM build_file_hashes")
            result.reclaimed += ImageService(self.store).collect_garbage()
            if all_entries and mounts_dir and os.path.isdir(mounts_dir):
                from berth.store.fsutil import tree_size

                result.reclaimed += tree_size(mounts_dir)
                remove_tree(mounts_dir)
        return result
