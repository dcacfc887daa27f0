"""``system check``: prove every reference between rows, blobs and layer dirs holds.

Problems are of two kinds. *Garbage* (a blob or layer dir nothing references, a temp file
of a dead process) is what a crash legitimately leaves; ``--repair`` removes it. *Damage*
(a row pointing at a missing or corrupt blob or layer) should never happen; ``--repair``
removes the images that depend on it, since their bytes are gone or untrustworthy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from berth.images.onecopy import has_layer_blob, verify_rebuilds
from berth.images.service import ImageService
from berth.oci.digest import hex_of
from berth.procs import owner_alive
from berth.store.fsutil import remove_tree
from berth.store.store import Store


@dataclass
class CheckReport:
    damage: list[str] = field(default_factory=list)
    garbage: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    blobs_checked: int = 0
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.damage


def check(store: Store, *, repair: bool = False, verify_blobs: bool = True) -> CheckReport:
    """Verify the store (under the exclusive lock, so no ingest runs meanwhile)."""
    rep = CheckReport()
    with store.collecting():
        broken_images: set[str] = set()
        bad_blobs: set[str] = set()
        for digest in store.content.list():
            rep.blobs_checked += 1
            if verify_blobs and not store.content.verify(digest):
                bad_blobs.add(digest)
                rep.damage.append(f"blob {digest}: content does not match its digest")
        db = store.db
        for img in db.query("SELECT id, manifest_digest, top_layer FROM images"):
            rep.images_checked += 1
            for what, d in (("config", img["id"]), ("manifest", img["manifest_digest"])):
                if d in bad_blobs or not store.content.exists(d):
                    rep.damage.append(f"image {img['id']}: {what} blob {d} missing or corrupt")
                    broken_images.add(img["id"])
            for il in db.query("SELECT chain_id, blob_digest FROM image_layers WHERE image_id=?",
                               (img["id"],)):
                if il["blob_digest"] in bad_blobs or not has_layer_blob(
                        store, il["blob_digest"], il["chain_id"]):
                    rep.damage.append(f"image {img['id']}: layer blob {il['blob_digest']} "
                                      "missing or corrupt")
                    broken_images.add(img["id"])
                if db.one("SELECT 1 FROM layers WHERE chain_id=?", (il["chain_id"],)) is None:
                    rep.damage.append(f"image {img['id']}: layer {il['chain_id']} has no row")
                    broken_images.add(img["id"])
        known_dirs: set[str] = set()
        known_links: set[str] = set()
        for layer in db.query("SELECT chain_id, link, unpacked FROM layers"):
            d = store.layers.diff_dir(layer["chain_id"])
            known_dirs.add(os.path.basename(os.path.dirname(d)))
            known_links.add(layer["link"])
            link = os.path.join(store.layers.links, layer["link"])
            if layer["unpacked"] and not os.path.isdir(d):
                rep.damage.append(f"layer {layer['chain_id']}: directory {d} missing")
                for r in db.query("SELECT image_id FROM image_layers WHERE chain_id=?",
                                  (layer["chain_id"],)):
                    broken_images.add(r["image_id"])
            # a packed layer (pulled or committed, unpacked on first use) already has its
            # link, pointing where its files will go: dangling until then, and correct
            if not _links_to(link, layer["chain_id"]):
                rep.damage.append(f"layer {layer['chain_id']}: short link {link} is wrong")
                if repair:
                    _relink(link, layer["chain_id"])
                    rep.repaired.append(f"relinked {link}")
        if verify_blobs:  # layers kept as tree + record: the rebuilt tar must match
            for bad in verify_rebuilds(store):
                rep.damage.append(f"layer {bad}: its files no longer rebuild its tar "
                                  "(digest mismatch)")
                for r in db.query("SELECT image_id FROM image_layers WHERE chain_id=?",
                                  (bad,)):
                    broken_images.add(r["image_id"])
        for r in db.query("SELECT name, image_id FROM tags WHERE image_id NOT IN "
                          "(SELECT id FROM images)"):
            rep.damage.append(f"tag {r['name']} points at missing image {r['image_id']}")
        # garbage: things on disk nothing references
        for name in os.listdir(store.layers.dir):
            if name != "l" and name not in known_dirs:
                rep.garbage.append(f"layer dir {name} has no row")
                if repair:
                    remove_tree(os.path.join(store.layers.dir, name))
        for name in os.listdir(store.layers.links):
            if name not in known_links:  # only links no layer row names are garbage
                rep.garbage.append(f"short link l/{name} belongs to no layer")
                if repair:
                    os.unlink(os.path.join(store.layers.links, name))
        for name in os.listdir(store.tmp):
            if not owner_alive(name):  # a live process's entry is work in progress
                rep.garbage.append(f"temp entry tmp/{name}")
        if repair:
            svc = ImageService(store)
            with db.tx() as tx:
                tx.execute("DELETE FROM tags WHERE image_id NOT IN (SELECT id FROM images)")
                for image_id in broken_images:
                    tx.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
                    tx.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
                    tx.execute("DELETE FROM images WHERE id=?", (image_id,))
                    rep.repaired.append(f"removed damaged image {image_id}")
            for digest in bad_blobs:
                store.content.delete(digest)
            store.clean_tmp()
            svc.collect_garbage()
            unref = set(store.content.list()) - svc.referenced_blobs()
            rep.repaired += [f"removed unreferenced blob {d}" for d in unref]
        else:
            unref = set(store.content.list()) - _referenced(store)
            rep.garbage += [f"blob {d} is not referenced" for d in sorted(unref)]
    return rep


def _referenced(store: Store) -> set[str]:
    return ImageService(store).referenced_blobs()


def _links_to(link: str, chain_id: str) -> bool:
    """Whether short link ``link`` names the diff dir of ``chain_id`` (existing or not)."""
    try:
        return os.readlink(link) == os.path.join("..", hex_of(chain_id), "diff")
    except OSError:
        return False


def _relink(link: str, chain_id: str) -> None:
    tmp = link + ".tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("..", hex_of(chain_id), "diff"), tmp)
    os.replace(tmp, link)
