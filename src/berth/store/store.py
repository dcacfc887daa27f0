"""The store as one object: paths, database, content store, layer store and locks.

Opening a store creates its directories (0700 root) and runs migrations; it also removes
temp files left by processes that no longer exist, which is the whole of crash recovery for
ingestion (see :mod:`berth.store.content` and :mod:`berth.store.layers`). The reserve file
(:mod:`berth.store.space`) keeps reads and removals working on a full disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from berth.procs import owner_alive
from berth.store.content import ContentStore
from berth.store.db import Database
from berth.store.fsutil import remove_tree
from berth.store.layers import LayerStore
from berth.store.locks import flock
from berth.store.space import Reserve

DEFAULT_ROOT = "/var/lib/berth"
# Kernel pseudo filesystems: a store there would write into /proc or /sys files or vanish.
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
_DEV_OK = ("/dev/shm",)
DEFAULT_RUNROOT = "/run/berth"


class Store:
    def __init__(self, root: str | None = None, runroot: str | None = None) -> None:
        self.root = os.path.abspath(root or os.environ.get("BERTH_ROOT") or DEFAULT_ROOT)
        self.runroot = os.path.abspath(
            runroot or os.environ.get("BERTH_RUNROOT") or DEFAULT_RUNROOT)
        for flag, d in (("--root", self.root), ("--runroot", self.runroot)):
            _make_store_dir(flag, d)
        self.tmp = os.path.join(self.root, "tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self.reserve = Reserve(self.root)
        # plain blobs of layers unpacked under a shared lock, deleted once the exclusive
        # lock can be had (berth.images.onecopy.drop_pending)
        self.pending_drops: set[str] = set()
        self.db = Database(os.path.join(self.root, "berth.db"), self.reserve.make_room,
                           self.reserve.take_back)
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
        """Close the database, then top the reserve up if it was used and there is room."""
        self.db.close()
        self.reserve.refill()


def _make_store_dir(flag: str, path: str) -> None:
    """Create the root or run root, or say in one line why ``path`` cannot be one.

    ``--root /dev/null`` or ``--runroot /proc/self`` must be refused before anything is
    written: the first is no directory, the second would put berth's state into procfs.
    """
    from berth.errors import InvalidArgument

    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidArgument(f'invalid {flag} "{path}": not a directory', exit_code=125)
    real = os.path.realpath(path)
    for pseudo in _PSEUDO_ROOTS:
        if (real == pseudo or real.startswith(pseudo + "/")) and \
                not any(real == ok or real.startswith(ok + "/") for ok in _DEV_OK):
            raise InvalidArgument(f'invalid {flag} "{path}": {pseudo} is a kernel pseudo '
                                  "filesystem, not a place for berth's state", exit_code=125)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise InvalidArgument(f'invalid {flag} "{path}": not a directory',
                              exit_code=125) from None
    except OSError as e:
        from berth.errors import is_no_space

        if is_no_space(e):
            raise
        raise InvalidArgument(f'invalid {flag} "{path}": {(e.strerror or str(e)).lower()}',
                              exit_code=125) from None
    if not os.path.isdir(path):
        raise InvalidArgument(f'invalid {flag} "{path}": not a directory', exit_code=125)
