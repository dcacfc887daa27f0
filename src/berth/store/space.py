"""Room to work on a full disk: a small reserve file the store gives back when space runs out.

On a full disk SQLite cannot even *read* a WAL database: opening it creates the 32 KiB
shared-memory index (``berth.db-shm``) and the WAL, and a removal's transaction appends its
pages to the WAL before a checkpoint can shrink anything. So ``ps``, ``images``, ``rm`` and
``rmi`` -- the very commands that would free space -- would all fail.

The store therefore keeps ``<root>/reserve``, up to :data:`RESERVE_BYTES` of allocated
blocks that belong to nobody else, and lends them to the database only for the moment it
needs them:

* :meth:`Reserve.make_room` deletes the file when the filesystem has less than
  :data:`LOW_WATER` free (one ``statvfs`` when a connection opens and before each write
  transaction); :class:`~berth.store.db.Database` also forces it when SQLite reports the
  disk full and then retries once, since quotas (EDQUOT) do not show in ``statvfs``;
* :meth:`Reserve.refill` takes the space back right after (all that is free but
  :data:`SLACK`), so the command that borrowed it cannot spend it on bytes: a write on a
  full disk still hits ENOSPC, removes what it wrote and fails with ``no space left on
  device``, and the next ``rm`` finds the reserve where it was;
* when the store closes the reserve is topped up to :data:`RESERVE_BYTES`, leaving
  :data:`LOW_WATER` free, so it never turns a nearly full disk into a full one.

Chosen over "removal that does not grow the WAL" because SQLite has no such mode with WAL
journaling (every commit appends pages first) and over ``SQLITE_FCNTL_PERSIST_WAL``, which
Python's sqlite3 cannot set and which would not cover the WAL's growth anyway.
"""

from __future__ import annotations

import errno
import os

RESERVE_BYTES = 4 << 20
LOW_WATER = 1 << 20
SLACK = 0


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer could still allocate on the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Reserve:
    """The reserve file of one store root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, "reserve")
        self.lent = False  # released by this process and not refilled yet

    def release(self) -> bool:
        """Give the reserve's blocks back; True when there was one to give."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        self.lent = True
        return True

    def make_room(self, force: bool = False) -> bool:
        """Release the reserve if the filesystem is (nearly) full, or always when ``force``."""
        if not force:
            try:
                if free_bytes(self.root) >= LOW_WATER:
                    return False
            except OSError:
                return False
        return self.release()

    def take_back(self) -> None:
        """After the database used what it needed: re-take the rest of the lent space."""
        if self.lent:
            self.lent = False
            self.refill(SLACK)

    def refill(self, keep_free: int = LOW_WATER) -> int:
        """Grow the reserve towards :data:`RESERVE_BYTES`, leaving ``keep_free`` free.

        Best effort and never an error: the store works without a reserve until space
        comes back. Returns the reserve's size afterwards.
        """
        try:
            cur = os.stat(self.path).st_size
        except FileNotFoundError:
            cur = 0
        except OSError:
            return 0
        if cur >= RESERVE_BYTES:
            return cur
        try:
            target = min(RESERVE_BYTES, cur + free_bytes(self.root) - keep_free)
            if target <= cur:
                return cur
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                _allocate(fd, cur, target)
            finally:
                os.close(fd)
        except OSError:
            pass
        try:
            return os.stat(self.path).st_size
        except OSError:
            return 0


def _allocate(fd: int, start: int, end: int) -> None:
    """Really allocate ``[start, end)`` (a sparse file would hold no space in reserve)."""
    try:
        os.posix_fallocate(fd, start, end - start)
        return
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    os.lseek(fd, start, os.SEEK_SET)
    left = end - start
    while left > 0:
        left -= os.write(fd, b"\0" * min(left, 1 << 20))
