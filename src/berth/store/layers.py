"""Layer store: unpacked layers (overlay lowerdirs) keyed by chain ID, shared by images.

Lifecycle of a layer:
  * :meth:`LayerStore.prepare` gives a private directory under ``tmp/`` to unpack into;
  * :meth:`LayerStore.publish`, called inside a database write transaction, renames it to
    ``layers/<chain-hex>/diff``, makes the short link ``layers/l/<link>`` and inserts the
    row — or discards it when another process published the same chain first. A directory
    without a row (a crash between rename and commit) is stale and replaced;
  * :meth:`LayerStore.unpublish`, also inside a transaction, deletes the row; the caller
    removes the files after the commit. What a crash leaves between the two (files no row
    names) is removed by :meth:`LayerStore.sweep` at the next garbage collection.
The short links keep overlay mount options under one page even for deep images, the way
Docker's ``overlay2/l/`` does.

One copy of each layer: beside ``diff/`` a layer may hold ``tar-split.z``, the record from
which its exact tar is rebuilt (:mod:`berth.oci.tarsplit`); it is written into the pending
directory, so it appears with the tree in the same rename, and the tree is never written
again after that (containers write to their own overlay upper dirs).
"""

from __future__ import annotations

import os
import stat
import time
from typing import BinaryIO

from berth.oci.digest import hex_of
from berth.store.db import Tx
from berth.store.fsutil import remove_tree, syncfs

LINK_LEN = 16
SPLIT_NAME = "tar-split.z"


class PendingLayer:
    """A layer being unpacked in ``tmp/``; :attr:`diff` is where the files go."""

    def __init__(self, tmp: str) -> None:
        self.dir = os.path.join(tmp, f"layer-{os.getpid()}-{os.urandom(6).hex()}")
        self.diff = os.path.join(self.dir, "diff")
        os.makedirs(self.diff)
        os.chmod(self.diff, 0o755)

    def write_split(self, record: bytes) -> int:
        """Store the layer's tar-split record beside its tree; returns its size."""
        with open(os.path.join(self.dir, SPLIT_NAME), "xb") as f:
            f.write(record)
        return len(record)

    def discard(self) -> None:
        remove_tree(self.dir)


class LayerStore:
    def __init__(self, root: str, tmp: str) -> None:
        self.dir = os.path.join(root, "layers")
        self.links = os.path.join(self.dir, "l")
        self.tmp = tmp
        os.makedirs(self.links, exist_ok=True)

    def layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.dir, hex_of(chain_id))

    def diff_dir(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir(chain_id), "diff")

    def split_path(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir(chain_id), SPLIT_NAME)

    def open_file(self, chain_id: str, rel: bytes) -> BinaryIO:
        """Open the regular file ``rel`` of a layer's tree, resolved inside the tree.

        Each component is opened with ``O_NOFOLLOW`` from the tree's root, so a symlink
        in the tree can never lead the read outside it.
        """
        parts = [p for p in rel.split(b"/") if p not in (b"", b".")]
        if not parts or b".." in parts:
            raise FileNotFoundError(f"bad layer path {rel!r}")
        fd = os.open(self.diff_dir(chain_id), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for p in parts[:-1]:
                nfd = os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=fd)
                os.close(fd)
                fd = nfd
            ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(os.fstat(ffd).st_mode):
            os.close(ffd)
            raise FileNotFoundError(f"layer path {rel!r} is not a regular file")
        return os.fdopen(ffd, "rb")

    def prepare(self) -> PendingLayer:
        return PendingLayer(self.tmp)

    @staticmethod
    def exists(tx_or_db, chain_id: str) -> bool:  # type: ignore[no-untyped-def]
        return tx_or_db.one("SELECT 1 FROM layers WHERE chain_id=?", (chain_id,)) is not None

    def publish(self, tx: Tx, pending: PendingLayer, *, chain_id: str, diff_id: str,
                parent: str | None, size: int, split_size: int | None = None,
                blob_kept: int = 0) -> None:
        """Make a prepared layer visible (inside ``tx``), or drop it if already there."""
        if self.exists(tx, chain_id):
            pending.discard()
            return
        final = self.layer_dir(chain_id)
        if os.path.lexists(final):  # stale: renamed by a process that died before commit
            remove_tree(final)
        syncfs(pending.diff)
        os.rename(pending.dir, final)
        link = self._make_link(chain_id)
        tx.execute("INSERT INTO layers(chain_id, diff_id, parent, link, size, created, "
                   "split_size, blob_kept) VALUES (?,?,?,?,?,?,?,?)",
                   (chain_id, diff_id, parent, link, size, time.time(), split_size, blob_kept))

    def publish_packed(self, tx: Tx, *, chain_id: str, diff_id: str, parent: str | None,
                       size: int, blob_kept: int = 0) -> None:
        """Record a verified layer whose files are not unpacked yet (``unpacked=0``)."""
        if self.exists(tx, chain_id):
            return
        final = self.layer_dir(chain_id)
        if os.path.lexists(final):
            remove_tree(final)
        link = self._make_link(chain_id)
        tx.execute("INSERT INTO layers(chain_id, diff_id, parent, link, size, created, unpacked,"
                   " blob_kept) VALUES (?,?,?,?,?,?,0,?)",
                   (chain_id, diff_id, parent, link, size, time.time(), blob_kept))

    def finish_unpack(self, tx: Tx, pending: PendingLayer, *, chain_id: str, size: int,
                      split_size: int | None = None) -> None:
        """Publish the files of a packed layer (inside ``tx``), or drop them if beaten to it."""
        row = tx.one("SELECT unpacked FROM layers WHERE chain_id=?", (chain_id,))
        if row is None or row["unpacked"]:
            pending.discard()
            return
        final = self.layer_dir(chain_id)
        if os.path.lexists(final):  # stale: a process died between rename and commit
            remove_tree(final)
        syncfs(pending.diff)
        os.rename(pending.dir, final)
        tx.execute("UPDATE layers SET unpacked=1, size=?, split_size=? WHERE chain_id=?",
                   (size, split_size, chain_id))

    def _make_link(self, chain_id: str) -> str:
        while True:
            link = os.urandom(LINK_LEN // 2).hex()
            path = os.path.join(self.links, link)
            if not os.path.lexists(path):
                break
        tmp = os.path.join(self.links, f".tmp-{link}")
        os.symlink(os.path.join("..", hex_of(chain_id), "diff"), tmp)
        os.rename(tmp, path)
        return link

    def unpublish(self, tx: Tx, chain_id: str) -> list[str]:
        """Delete a layer's row (inside ``tx``); return its dir and link to remove *after*
        the commit.

        Files go only once no row names them: a crash before the commit keeps the layer
        whole, a crash after it leaves unnamed files that :meth:`sweep` removes.
        """
        row = tx.one("SELECT link FROM layers WHERE chain_id=?", (chain_id,))
        if row is None:
            return []
        tx.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))
        return [os.path.join(self.links, row["link"]), self.layer_dir(chain_id)]

    def sweep(self, tx_or_db) -> list[str]:  # type: ignore[no-untyped-def]
        """Remove layer dirs and short links that no row names (left by a crash).

        Only safe under the exclusive store lock: an ingest renames a layer into place
        inside its transaction, before its row is visible.
        """
        dirs, links = set(), set()
        for r in tx_or_db.query("SELECT chain_id, link FROM layers"):
            dirs.add(hex_of(r["chain_id"]))
            links.add(r["link"])
        removed = []
        for name in os.listdir(self.dir):
            if name != "l" and name not in dirs:
                remove_tree(os.path.join(self.dir, name))
                removed.append(name)
        for name in os.listdir(self.links):
            if name not in links:
                remove_tree(os.path.join(self.links, name))
                removed.append(f"l/{name}")
        return removed

    def link_names(self, tx_or_db, chain_ids: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
        """``l/<link>`` names (relative to :attr:`dir`) for overlay lowerdir, in the given order."""
        out = []
        for cid in chain_ids:
            row = tx_or_db.one("SELECT link FROM layers WHERE chain_id=?", (cid,))
            out.append(os.path.join("l", row["link"]))
        return out
