"""Cross-process locks on the store, with ``flock`` so a killed process releases them.

``store.lock`` guards the one race the database cannot: bytes that exist on disk before a
row references them. Writers that ingest (import, load, pull, build) hold it *shared* for
their whole run; anything that deletes unreferenced blobs or layers (rmi, prune, GC,
repair) holds it *exclusive*, so it can never delete what an ingest is about to reference.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def flock(path: str, *, exclusive: bool) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(path: str) -> bool:
    """Whether some live process holds ``path`` locked (a missing file is not locked)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextmanager
def try_flock(path: str, *, exclusive: bool) -> Iterator[bool]:
    """Like :func:`flock` without waiting: yields whether the lock was taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
