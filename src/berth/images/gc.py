"""The storage budget: what the store may use, and the LRU collection that keeps it there.

The budget is the smaller of ``[storage] max_size`` and what ``min_free`` leaves of the
filesystem (see :mod:`berth.config`). *Use* is layers once (tree, tar-split record and the
blob kept beside them: compressed or packed ones) plus containers' writable layers as
measured at their exit; triggers keep the totals, so reading it costs one row.

A pass removes, least recently used first, until use is below 90% of the budget:

1. build cache entries nothing reachable needs (``[gc] build_cache``);
2. dangling images (untagged, no container, no tagged descendant);
3. with ``images = "unused"``, tagged images no container uses;
4. with ``containers_after``, stopped containers that exited longer ago than that — and
   then the images they alone kept.

It never touches a volume, an image a container (of any state) uses or descends from, or
anything used within ``keep_duration``. What each removal frees is known beforehand from
reference counts over layers and blobs, so a pass deletes rows in one transaction and
then collects the unreferenced bytes once. It runs under the exclusive store lock, the
one every ingest holds shared: a build or pull in progress can never lose a layer to it,
and a pass killed at any point leaves rows and bytes that ``system check`` accepts (rows
go before bytes, in one transaction).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from berth.config import Config
from berth.images.usage import LAYER_DISK_SQL
from berth.store.store import Store

TARGET = 0.9


def store_use(store: Store) -> int:
    """Bytes the budget counts: layers (tree, record, kept blob) and stopped containers'
    writable layers, as totals the database keeps by trigger (one row read)."""
    row = store.db.one("SELECT COALESCE(SUM(bytes), 0) AS n FROM usage_totals")
    return int(row["n"]) if row is not None else 0


def budget(store: Store, cfg: Config, use: int | None = None) -> int | None:
    """The byte budget (None when the config sets none)."""
    st = cfg.storage
    limits = []
    if st.max_size is not None:
        limits.append(st.max_size.resolve(store.root))
    if st.min_free is not None:
        fs = os.statvfs(store.root)
        free = fs.f_bavail * fs.f_frsize
        limits.append((store_use(store) if use is None else use) + free
                      - st.min_free.resolve(store.root))
    return max(0, min(limits)) if limits else None


def budget_text(cfg: Config) -> str:
    st = cfg.storage
    parts = [st.max_size.text] if st.max_size else []
    if st.min_free:
        parts.append(f"min_free {st.min_free.text}")
    return ", ".join(parts)


@dataclass
class Victim:
    kind: str  # "build cache" | "image" | "container"
    id: str
    name: str
    last_used: float
    freed: int


@dataclass
class GcResult:
    removed: list[Victim] = field(default_factory=list)
    freed: int = 0
    before: int = 0
    after: int = 0
    limit: int | None = None
    dry_run: bool = False


@dataclass
class _Img:
    id: str
    parent: str | None
    tagged: bool
    used: int  # containers
    cached: bool
    last_used: float
    chains: list[str]
    blobs: set[str]
    children: int = 0


class _Model:
    """Reference counts over layers and blobs, to know what a removal frees."""

    def __init__(self, store: Store) -> None:
        db = store.db
        self.store = store
        self.chain_disk = {r["chain_id"]: int(r["d"]) for r in db.query(
            f"SELECT chain_id, {LAYER_DISK_SQL} AS d FROM layers")}
        stored = {r["blob_digest"]: int(r["blob_size"]) for r in db.query(
            "SELECT DISTINCT il.blob_digest, il.blob_size FROM image_layers il JOIN layers l "
            "ON l.chain_id = il.chain_id WHERE il.blob_digest != l.diff_id OR "
            "l.unpacked = 0 OR l.split_size IS NULL")}
        self.blob_size = stored
        tagged = {r["image_id"] for r in db.query(
            "SELECT image_id FROM tags UNION SELECT image_id FROM repo_digests")}
        used: dict[str, int] = {r["image_id"]: r["n"] for r in db.query(
            "SELECT image_id, COUNT(*) AS n FROM containers GROUP BY image_id")}
        cache_used = {r["image_id"]: r["t"] for r in db.query(
            "SELECT image_id, MAX(last_used) AS t FROM build_cache GROUP BY image_id")}
        self.images: dict[str, _Img] = {}
        for r in db.query("SELECT id, parent, added, last_used, manifest_digest FROM images"):
            iid = r["id"]
            last = max(r["last_used"] or 0, r["added"] or 0, cache_used.get(iid) or 0)
            self.images[iid] = _Img(iid, r["parent"], iid in tagged, used.get(iid, 0),
                                    iid in cache_used, last, [], {iid, r["manifest_digest"]})
        for r in db.query("SELECT image_id, chain_id, blob_digest FROM image_layers"):
            img = self.images.get(r["image_id"])
            if img is not None:
                img.chains.append(r["chain_id"])
                if r["blob_digest"] in stored:
                    img.blobs.add(r["blob_digest"])
        self.chain_refs: dict[str, int] = {}
        self.blob_refs: dict[str, int] = {}
        for img in self.images.values():
            for c in set(img.chains):
                self.chain_refs[c] = self.chain_refs.get(c, 0) + 1
            for b in img.blobs:
                self.blob_refs[b] = self.blob_refs.get(b, 0) + 1
            if img.parent in self.images:
                self.images[img.parent].children += 1

    def _small_blob(self, digest: str) -> int:
        try:
            return os.stat(self.store.content.path(digest)).st_size
        except (FileNotFoundError, ValueError):
            return 0

    def remove(self, iid: str) -> int:
        """Drop an image from the model; the bytes that frees."""
        img = self.images.pop(iid)
        freed = 0
        for c in set(img.chains):
            self.chain_refs[c] -= 1
            if self.chain_refs[c] == 0:
                freed += self.chain_disk.get(c, 0)
        for b in img.blobs:
            self.blob_refs[b] -= 1
            if self.blob_refs[b] == 0:
                freed += self.blob_size.get(b) or self._small_blob(b)
        if img.parent in self.images:
            self.images[img.parent].children -= 1
        return freed

    def kept(self) -> set[str]:
        """Images a container or a tag keeps: those and all their ancestors."""
        out: set[str] = set()
        for img in self.images.values():
            if img.used or img.tagged:
                cur: str | None = img.id
                while cur and cur in self.images and cur not in out:
                    out.add(cur)
                    cur = self.images[cur].parent
        return out


class Collector:
    """One GC pass over a store; ``remove_container(id)`` comes from the engine (the
    container service lives above this layer) and returns the bytes it freed."""

    def __init__(self, store: Store, cfg: Config,
                 remove_container: Callable[[str], int] | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.remove_container = remove_container

    def limit(self, use: int | None = None) -> int | None:
        return budget(self.store, self.cfg, use)

    def run(self, *, dry_run: bool = False, force: bool = False,
            target: int | None = None) -> GcResult:
        """Collect down to ``target`` (90% of the budget; everything collectable when
        ``force`` — ``system gc`` with no budget set). Caller holds the exclusive lock."""
        res = GcResult(dry_run=dry_run)
        res.before = use = store_use(self.store)
        res.limit = self.limit(use)
        if target is None:
            target = int(res.limit * TARGET) if res.limit is not None else (0 if force else use)
        model = _Model(self.store)
        now = time.time()
        doomed: list[Victim] = []
        for v in self._candidates(model, now):
            if use <= target:
                break
            doomed.append(v)
            use -= v.freed
        if not dry_run and doomed:
            self._delete(doomed)
            from berth.images.service import ImageService

            ImageService(self.store).collect_garbage()
        res.removed = doomed
        res.after = store_use(self.store) if not dry_run else use
        res.freed = max(0, res.before - res.after) if not dry_run else sum(
            v.freed for v in doomed)
        if not dry_run:
            self._record(res, now)
        return res

    # -- choosing ------------------------------------------------------------------------
    def _candidates(self, model: _Model, now: float) -> Iterator[Victim]:
        gc = self.cfg.gc
        fresh = now - gc.keep_duration
        if gc.build_cache:
            yield from self._images(model, fresh, lambda i, kept: i.cached and i.id not in kept,
                                    "build cache")
        yield from self._images(model, fresh, lambda i, kept: not i.cached and i.id not in kept,
                                "image")
        if gc.images == "unused":
            yield from self._images(model, fresh, lambda i, kept: not i.used and not any(
                c.parent == i.id for c in model.images.values()), "image", untag=True)
        if gc.containers_after is not None and self.remove_container is not None:
            cutoff = now - gc.containers_after
            for r in self.store.db.query(
                    "SELECT id, name, image_id, finished_at, size_rw FROM containers WHERE "
                    "status IN ('exited', 'created', 'dead') AND COALESCE(finished_at, "
                    "created) < ? ORDER BY COALESCE(finished_at, created)", (cutoff,)):
                yield Victim("container", r["id"], r["name"], r["finished_at"] or 0,
                             int(r["size_rw"] or 0))
                img = model.images.get(r["image_id"])
                if img is not None:
                    img.used -= 1
            yield from self._images(model, fresh, lambda i, kept: i.id not in kept, "image")
            if gc.images == "unused":
                yield from self._images(model, fresh, lambda i, kept: not i.used and not any(
                    c.parent == i.id for c in model.images.values()), "image", untag=True)

    def _images(self, model: _Model, fresh: float, pick: Callable[[_Img, set[str]], bool],
                kind: str, untag: bool = False) -> Iterator[Victim]:
        """Leaves matching ``pick``, least recently used first; parents become leaves."""
        while True:
            kept = set() if untag else model.kept()
            leaves = [i for i in model.images.values() if i.children == 0 and not i.used
                      and i.last_used < fresh and pick(i, kept)]
            if not leaves:
                return
            leaves.sort(key=lambda i: i.last_used)
            for img in leaves:
                if img.id not in model.images or model.images[img.id].children:
                    continue
                name = "untagged" if not img.tagged else "tagged"
                yield Victim(kind if not untag else "tagged image", img.id, name,
                             img.last_used, model.remove(img.id))

    # -- removing ------------------------------------------------------------------------
    def _delete(self, doomed: list[Victim]) -> None:
        for v in doomed:
            if v.kind == "container" and self.remove_container is not None:
                self.remove_container(v.id)
        with self.store.db.tx() as tx:
            for v in doomed:
                if v.kind == "container":
                    continue
                tx.execute("DELETE FROM tags WHERE image_id=?", (v.id,))
                tx.execute("DELETE FROM repo_digests WHERE image_id=?", (v.id,))
                tx.execute("DELETE FROM images WHERE id=?", (v.id,))

    def _record(self, res: GcResult, now: float) -> None:
        info = {"time": now, "freed": res.freed, "removed": len(res.removed),
                "use": res.after}
        with self.store.db.tx() as tx:
            tx.execute("INSERT OR REPLACE INTO store_meta(key, value) VALUES ('last_gc', ?)",
                       (json.dumps(info),))


def last_gc(store: Store) -> dict[str, float] | None:
    row = store.db.one("SELECT value FROM store_meta WHERE key='last_gc'")
    return json.loads(row["value"]) if row is not None else None
