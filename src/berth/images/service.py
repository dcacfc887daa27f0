"""Naming, listing, tagging and deleting stored images (Docker's semantics).

Names resolve the way Docker resolves them: a reference (``busybox``, ``busybox:1``,
``repo@sha256:…``) first, then a full or abbreviated image ID. Deletion follows ``docker
rmi``: removing a tag untags; removing the last name of an image deletes it; an image used
by a container is never deleted. Unreferenced blobs and layers are then collected under the
exclusive store lock, so an import running at the same time never loses bytes it just wrote.
"""

from __future__ import annotations

import builtins
import json
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from berth.errors import Conflict, InvalidReference, NotFound
from berth.images.records import ImageRecord, RemoveResult
from berth.oci import reference
from berth.oci.digest import hex_of
from berth.store.db import Tx
from berth.store.fsutil import remove_tree
from berth.store.store import Store
from berth.testpoints import pause

_HEX_PREFIX = re.compile(r"^(?:sha256:)?([0-9a-f]{1,64})$")


class ImageService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # -- naming -------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        """Image ID for a reference, full ID or unique ID prefix; NotFound otherwise."""
        found = self._by_reference(name)
        if found:
            return found
        m = _HEX_PREFIX.match(name)
        if m:
            rows = self.db.query("SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2",
                                 (f"sha256:{m.group(1)}", f"sha256:{m.group(1)}g"))
            if len(rows) == 1:
                image_id: str = rows[0]["id"]
                return image_id
            if len(rows) > 1:
                raise Conflict(f"multiple IDs found with provided prefix: {name}")
        raise NotFound(f"No such image: {name}")

    def _by_reference(self, name: str) -> str | None:
        try:
            ref = reference.parse(name)
        except InvalidReference:
            return None
        if ref.digest:
            row = self.db.one("SELECT image_id FROM repo_digests WHERE repository=? AND digest=?",
                              (ref.repository, ref.digest))
            if row is None:
                row = self.db.one("SELECT id AS image_id FROM images WHERE manifest_digest=? "
                                  "OR id=?", (ref.digest, ref.digest))
            by_digest: str | None = row["image_id"] if row else None
            return by_digest
        row = self.db.one("SELECT image_id FROM tags WHERE name=?",
                          (str(ref.with_default_tag()),))
        by_tag: str | None = row["image_id"] if row else None
        return by_tag

    def get(self, name_or_id: str) -> ImageRecord:
        image_id = self.resolve(name_or_id)
        row = _found(self.db.one("SELECT * FROM images WHERE id=?", (image_id,)), name_or_id)
        rec = ImageRecord.from_row(row)
        rec.tags = [r["name"] for r in self.db.query(
            "SELECT name FROM tags WHERE image_id=? ORDER BY name", (image_id,))]
        rec.repo_digests = [f"{r['repository']}@{r['digest']}" for r in self.db.query(
            "SELECT repository, digest FROM repo_digests WHERE image_id=? ORDER BY 1",
            (image_id,))]
        rec.containers = self._container_count(image_id)
        return rec

    def list(self) -> list[ImageRecord]:
        """Every image with its tags, newest first, in three queries whatever the count."""
        recs = {r["id"]: ImageRecord.from_row(r) for r in self.db.query(
            "SELECT * FROM images ORDER BY created DESC, id")}
        for r in self.db.query("SELECT name, image_id FROM tags ORDER BY name"):
            recs[r["image_id"]].tags.append(r["name"])
        for r in self.db.query("SELECT repository, digest, image_id FROM repo_digests"):
            recs[r["image_id"]].repo_digests.append(f"{r['repository']}@{r['digest']}")
        for r in self.db.query("SELECT image_id, COUNT(*) AS n FROM containers "
                               "GROUP BY image_id"):
            if r["image_id"] in recs:
                recs[r["image_id"]].containers = r["n"]
        return list(recs.values())

    def config(self, image_id: str) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.store.content.read(image_id))
        return config

    def manifest(self, image_id: str) -> bytes:
        row = _found(self.db.one("SELECT manifest_digest FROM images WHERE id=?", (image_id,)),
                     image_id)
        return self.store.content.read(row["manifest_digest"])

    def layers(self, image_id: str) -> builtins.list[Any]:
        """Rows of image_layers joined with layers, bottom first."""
        return self.db.query(
            "SELECT il.*, l.diff_id, l.size, l.link FROM image_layers il JOIN layers l "
            "ON l.chain_id = il.chain_id WHERE il.image_id=? ORDER BY il.idx", (image_id,))

    def is_intermediate(self, rec: ImageRecord, parents: set[str]) -> bool:
        """An untagged image some other image was built on (hidden unless ``-a``)."""
        return rec.dangling and rec.id in parents

    def parent_ids(self) -> set[str]:
        return {r["parent"] for r in self.db.query(
            "SELECT DISTINCT parent FROM images WHERE parent IS NOT NULL")}

    # -- tags ---------------------------------------------------------------------------
    def tag(self, source: str, target: str) -> None:
        import time

        from berth.images.ingest import set_tag

        ref = reference.parse_named_tagged(target)  # Docker checks the new name first
        if ref.familiar_repository == "sha256":  # "sha256:abc" would read as an image ID
            raise InvalidReference("refusing to create an ambiguous tag using digest "
                                   "algorithm as name")
        image_id = self.resolve(source)
        if ref.digest:
            raise InvalidReference("refusing to create a tag with a digest reference")
        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM images WHERE id=?", (image_id,)) is None:
                raise NotFound(f"No such image: {source}")  # an rmi won the race
            set_tag(tx, ref, image_id, time.time())

    # -- containers using images (rows written by the container service) ------------------
    def users(self, image_id: str) -> builtins.list[Any]:
        return self.db.query("SELECT id, status FROM containers WHERE image_id=?", (image_id,))

    def _container_count(self, image_id: str) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM containers WHERE image_id=?", (image_id,))
        n: int = row["n"] if row is not None else 0  # COUNT(*) always yields a row
        return n

    # -- removal ------------------------------------------------------------------------
    def remove(self, names: builtins.list[str], *, force: bool = False,
               prune_parents: bool = True) -> tuple[RemoveResult, builtins.list[Exception]]:
        """``docker rmi``: each name is handled on its own; errors are collected, not fatal."""
        result = RemoveResult()
        errors: builtins.list[Exception] = []
        with self.store.collecting():
            for name in names:
                try:
                    self._remove_one(name, force, prune_parents, result)
                except (NotFound, Conflict, InvalidReference) as e:
                    errors.append(e)
            result.reclaimed += self.collect_garbage()
        return result, errors

    def _remove_one(self, name: str, force: bool, prune_parents: bool,
                    result: RemoveResult) -> None:
        if _HEX_PREFIX.match(name) is None:
            reference.parse(name)  # "Bad:Ref" is a reference error, not "No such image"
        image_id = self.resolve(name)
        by_tag = self._by_reference(name) == image_id and not _is_id_prefix(name, image_id)
        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM images WHERE id=?", (image_id,)) is None:
                raise NotFound(f"No such image: {name}")  # another rmi or prune won
            tags = [r["name"] for r in tx.query("SELECT name FROM tags WHERE image_id=?",
                                                (image_id,))]
            users = tx.query("SELECT id, status FROM containers WHERE image_id=?", (image_id,))
            if by_tag:
                ref = reference.parse(name).with_default_tag()
                if ref.digest:
                    tx.execute("DELETE FROM repo_digests WHERE repository=? AND digest=?",
                               (ref.repository, ref.digest))
                    result.untagged.append(ref.familiar)
                    remaining = tags
                else:
                    if len(tags) == 1 and users and not force:
                        raise Conflict(
                            f'conflict: unable to remove repository reference "{name}" '
                            f"(must force) - container {users[0]['id'][:12]} is using its "
                            f"referenced image {hex_of(image_id)[:12]}")
                    tx.execute("DELETE FROM tags WHERE name=?", (str(ref),))
                    result.untagged.append(ref.familiar)
                    remaining = [t for t in tags if t != str(ref)]
                if remaining:
                    return
            else:
                repos = {reference.parse(t).repository for t in tags}
                if len(repos) > 1 and not force:
                    raise Conflict(f"conflict: unable to delete {hex_of(image_id)[:12]} (must "
                                   "be forced) - image is referenced in multiple repositories")
                running = [u for u in users if u["status"] in ("running", "paused",
                                                               "restarting")]
                if running:
                    raise Conflict(f"conflict: unable to delete {hex_of(image_id)[:12]} "
                                   "(cannot be forced) - image is being used by running "
                                   f"container {running[0]['id'][:12]}")
                if users and not force:
                    raise Conflict(f"conflict: unable to delete {hex_of(image_id)[:12]} "
                                   "(must be forced) - image is being used by stopped "
                                   f"container {users[0]['id'][:12]}")
                for t in tags:
                    result.untagged.append(reference.parse(t).familiar)
                tx.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            if users:  # forced: names go, the image stays for its containers
                return
            self._delete_image_rows(tx, image_id, result, prune_parents)

    def _delete_image_rows(self, tx: Tx, image_id: str, result: RemoveResult,
                           prune_parents: bool) -> None:
        while image_id:
            row = tx.one("SELECT parent FROM images WHERE id=?", (image_id,))
            for d in tx.query("SELECT repository, digest FROM repo_digests WHERE image_id=?",
                              (image_id,)):
                result.untagged.append(f"{d['repository']}@{d['digest']}")
            tx.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            tx.execute("DELETE FROM images WHERE id=?", (image_id,))
            result.deleted.append(image_id)
            parent = row["parent"] if row else None
            if not (prune_parents and parent):
                return
            busy = tx.one(
                "SELECT 1 FROM tags WHERE image_id=? UNION ALL SELECT 1 FROM images WHERE "
                "parent=? UNION ALL SELECT 1 FROM containers WHERE image_id=? LIMIT 1",
                (parent, parent, parent))
            if busy or tx.one("SELECT 1 FROM images WHERE id=?", (parent,)) is None:
                return
            image_id = parent

    def prune(self, *, all_unused: bool = False, until: float | None = None,
              label_filters: Sequence[str] = ()) -> RemoveResult:
        """``image prune``: dangling images (or every unused one with ``all_unused``)."""
        from berth.images.filters import label_matches

        result = RemoveResult()
        with self.store.collecting():
            recs = self.list()
            parents = self.parent_ids()
            with self.db.tx() as tx:
                # read inside the transaction: a container created since ``list()`` keeps
                # its image (no FOREIGN KEY failure from deleting it under the container)
                used = {r["image_id"] for r in tx.query("SELECT image_id FROM containers")}
                for rec in recs:
                    if rec.id in used or (not all_unused and not rec.dangling):
                        continue
                    if not all_unused and rec.id in parents:
                        continue  # intermediate: goes with its child
                    if until is not None and rec.created >= until:
                        continue
                    if not all(label_matches(rec.labels, f) for f in label_filters):
                        continue
                    if not tx.one("SELECT 1 FROM images WHERE id=?", (rec.id,)):
                        continue  # already removed as a parent of another
                    tags = [r["name"] for r in tx.query(
                        "SELECT name FROM tags WHERE image_id=? ORDER BY name", (rec.id,))]
                    if tags and not all_unused:
                        continue  # tagged since list(): no longer dangling
                    for t in tags:
                        result.untagged.append(reference.parse(t).familiar)
                    tx.execute("DELETE FROM tags WHERE image_id=?", (rec.id,))
                    self._delete_image_rows(tx, rec.id, result, True)
            result.reclaimed += self.collect_garbage()
        return result

    # -- garbage collection --------------------------------------------------------------
    def collect_garbage(self) -> int:
        """Delete layers and blobs nothing references; caller holds the exclusive lock."""
        freed = 0
        trash: builtins.list[str] = []
        with self.db.tx() as tx:
            from berth.images.usage import LAYER_DISK_SQL

            rows = tx.query(f"SELECT chain_id, {LAYER_DISK_SQL} AS disk FROM layers WHERE "
                            "chain_id NOT IN (SELECT chain_id FROM image_layers)")
            dead = [r["chain_id"] for r in rows]
            freed += sum(r["disk"] for r in rows)  # what the disk gets back, not content
            # children first: a layer row's parent FK must not dangle mid-transaction
            for cid in sorted(dead, key=lambda c: -self._depth(tx, c)):
                trash += self.store.layers.unpublish(tx, cid)
        pause("gc-after-rows")
        for t in trash:  # only now that no row names them (crash-safe order)
            remove_tree(t)
        self.store.layers.sweep(self.db)
        live = self.referenced_blobs()
        for digest in list(self.store.content.list()):
            if digest not in live:
                freed += self.store.content.delete(digest)
        from berth.images.onecopy import drop_rebuildable_blobs

        reclaimed: int = freed + drop_rebuildable_blobs(self.store)
        return reclaimed

    def _depth(self, tx: Tx, chain_id: str | None) -> int:
        depth = 0
        while chain_id:
            row = tx.one("SELECT parent FROM layers WHERE chain_id=?", (chain_id,))
            chain_id = row["parent"] if row else None
            depth += 1
        return depth

    def referenced_blobs(self) -> set[str]:
        """Every blob some row points at (configs, manifests, layer blobs)."""
        live: set[str] = set()
        for r in self.db.query("SELECT id, manifest_digest FROM images"):
            live.add(r["id"])
            live.add(r["manifest_digest"])
        for r in self.db.query("SELECT DISTINCT blob_digest FROM image_layers"):
            live.add(r["blob_digest"])
        return live


def _found(row: sqlite3.Row | None, name: str) -> sqlite3.Row:
    """The row, or NotFound when the image went away (an rmi or prune won the race)."""
    if row is None:
        raise NotFound(f"No such image: {name}")
    return row


def _is_id_prefix(name: str, image_id: str) -> bool:
    """Whether ``name`` names the image by (a prefix of) its ID rather than by a tag.

    Docker's rule: ``rmi b2`` untags ``b2:latest`` although ``b2`` is valid hex, unless
    the image's ID really starts with it.
    """
    m = _HEX_PREFIX.match(name)
    return m is not None and hex_of(image_id).startswith(m.group(1))
