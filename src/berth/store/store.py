"""The store as one object: paths, database, content store, layer store and locks.

Opening a store creates its directories (0700 root) and runs migrations; it also removes
temp files left by processes that no longer exist, which is the whole of crash recovery for
ingestion (see :mod:`berth.store.content` and :mod:`berth.store.layers`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from berth.procs import owner_alive
from berth.store.content import ContentStore
from berth.store.db import Database
from berth.store.fsutil import remove_tree
from berth.store.layers import LayerStore
from berth.store.locks import flock

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_RUNROOT = "/run/berth"


class Store:
    def __init__(self, root: str | None = None, runroot: str | None = None) -> None:
        self.root = os.path.abspath(root or os.environ.get("BERTH_ROOT") or DEFAULT_ROOT)
        self.runroot = os.path.abspath(
            runroot or os.environ.get("BERTH_RUNROOT") or DEFAULT_RUNROOT)
        for d in (self.root, self.runroot):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self.tmp = os.path.join(self.root, "tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self.db = Database(os.path.join(self.root, "berth.db"))
        self.content = ContentStore(self.root, self.tmp)
        self.layers = LayerStore(self.root, self.tmp)
        self._lock_path = os.path.join(self.root, "store.lock")

    @property
    def lock_path(self) -> str:
        return self._lock_path

    @contextmanager
    def ingesting(self) -> Iterator[None]:
        """Held (shared) while writing bytes that no row references yet."""
        with flock(self._lock_path, exclusive=False):
            yield

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Held (exclusive) while deleting unreferenced bytes: no ingest runs meanwhile."""
        with flock(self._lock_path, exclusive=True):
            yield

    def clean_tmp(self) -> list[str]:
        """Remove temp entries whose owning process is gone; return what was removed."""
        removed = []
        for name in os.listdir(self.tmp):
            if owner_alive(name):
                continue
            remove_tree(os.path.join(self.tmp, name))
            removed.append(name)
        return removed

    def close(self) -> None:
        self.db.close()
