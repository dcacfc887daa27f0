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
from typing import TYPE_CHECKING

from berth.procs import owner_alive
from berth.store.content import ContentStore
from berth.store.db import Database
from berth.store.layers import LayerStore
from berth.store.locks import flock
from berth.store.space import Reserve

if TYPE_CHECKING:  # pragma: no cover
    from berth.store.events import EventLog

DEFAULT_ROOT = "/var/lib/berth"
# Kernel pseudo filesystems: a store there would write into /proc or /sys files or vanish.
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
_DEV_OK = ("/dev/shm",)
DEFAULT_RUNROOT = "/run/berth"


class Store:
    def __init__(self, root: str | None = None, runroot: str | None = None) -> None:
        if not (root or os.environ.get("BERTH_ROOT")) or \
                not (runroot or os.environ.get("BERTH_RUNROOT")):
            root, runroot = _defaults(root, runroot)
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
        """Held (shared) while writing bytes that no row references yet.

        Every blob published meanwhile is noted in a journal ``tmp/journal-<pid>-…``,
        removed when the ingest ends. A journal whose owner was killed names blobs that
        may never get a row: :meth:`clean_tmp` deletes those that nothing references.
        """
        with flock(self._lock_path, exclusive=False):
            if self.content.journal is not None:  # nested: the outer journal notes it
                yield
                return
            path = os.path.join(self.tmp, f"journal-{os.getpid()}-{os.urandom(6).hex()}")
            with open(path, "x", encoding="ascii") as journal:
                self.content.journal = journal
                try:
                    yield
                finally:  # a failure that we live through keeps its blobs (a pull
                    self.content.journal = None  # resumes from them; GC takes the rest)
                    os.unlink(path)

    @contextmanager
    def collecting(self) -> Iterator[None]:
        """Held (exclusive) while deleting unreferenced bytes: no ingest runs meanwhile."""
        with flock(self._lock_path, exclusive=True):
            yield

    def clean_tmp(self) -> list[str]:
        """Release temp entries whose owning process is gone; return what was removed.

        An entry may hold mounts and a running container of a killed build step:
        :func:`berth.store.tmpclean.release` stops and unmounts them first, and an entry
        it cannot remove is left for later rather than failing the command at hand.
        """
        removed: list[str] = []
        try:
            names = os.listdir(self.tmp)
        except OSError:
            return removed
        for name in names:
            if owner_alive(name):
                continue
            path = os.path.join(self.tmp, name)
            if name.startswith("journal-"):
                if self._drop_journal(path):
                    removed.append(name)
                continue
            from berth.store.tmpclean import release  # only when there is work

            if release(path):
                removed.append(name)
        return removed

    @property
    def events(self) -> EventLog:
        """The event log every writer appends to (cheap: a path, no file is opened)."""
        from berth.store.events import EventLog

        return EventLog(self.root)

    def _drop_journal(self, path: str) -> bool:
        """Delete the unreferenced blobs a dead ingest noted, if no ingest runs now."""
        import fcntl

        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # an ingest may be about to reference them: next time
            try:
                with open(path, encoding="ascii", errors="replace") as f:
                    digests = {line.strip() for line in f if line.strip()}
            except OSError:
                return False
            for digest in digests:
                if not self.blob_referenced(digest):
                    try:
                        self.content.delete(digest)
                    except Exception:  # noqa: BLE001 - a malformed line: skip it
                        continue
            os.unlink(path)
            return True
        finally:
            os.close(fd)

    def blob_referenced(self, digest: str) -> bool:
        """Whether an image row names ``digest`` (config, manifest or layer blob)."""
        return self.db.one("SELECT 1 FROM images WHERE id=? OR manifest_digest=? UNION ALL "
                           "SELECT 1 FROM image_layers WHERE blob_digest=? LIMIT 1",
                           (digest, digest, digest)) is not None

    def close(self) -> None:
        """Close the database, then top the reserve up if it was used and there is room."""
        self.db.close()
        self.reserve.refill()


def _defaults(root: str | None, runroot: str | None) -> tuple[str | None, str | None]:
    """Root's paths for root; a rootless user's (and its namespace's) XDG paths otherwise."""
    from berth.procs import rootless  # reads /proc/self/uid_map once

    if not rootless():
        return root, runroot
    from berth.rootless.paths import resolve

    return resolve(root, runroot)


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
