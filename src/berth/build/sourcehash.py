"""Content hash of COPY/ADD sources for the cache key, without re-reading unchanged files.

The hash covers, for every path the sources would copy (sorted): its name, type, mode,
uid/gid, symlink target, and for a regular file its size and sha256 — never mtimes, so a
``touch`` keeps the cache while one changed byte (through any hard link) breaks it.

Reading a 50 MB file on every rebuild is most of a cached build's time, so a file's sha256
is remembered in ``build_file_hashes`` under its inode identity
``(dev, ino, size, mtime_ns, ctime_ns)``. Why that is safe: every write, truncate, chmod,
chown, rename onto or link/unlink of an inode sets its ``ctime`` to *now*, and user space
cannot set ctime back. A stored digest is only trusted when the file's ctime was already
at least :data:`RACY_NS` older than the moment we started reading it (git's "racy clean"
rule): a change made after that read would then carry a later ctime and miss. A change
landing within the same clock tick as the read cannot pass, because such a fresh file is
never trusted. What this does not cover: a clock stepped backwards, or a filesystem that
does not maintain ctime — for those, ``--no-cache`` or the ``BERTH_BUILD_HASH_ALL=1``
environment variable re-reads everything.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterable

from berth.build.cache import BuildCache

RACY_NS = 2_000_000_000
_CHUNK = 1 << 20


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


class SourceHasher:
    """Hashes sources for one build; new digests are saved in one write at :meth:`flush`."""

    def __init__(self, cache: BuildCache | None) -> None:
        self.cache = cache if not os.environ.get("BERTH_BUILD_HASH_ALL") else None
        self._new: list[tuple[os.stat_result, str, int]] = []
        self._memo: dict[tuple[int, int, int, int, int], str] = {}

    def _regular(self, path: str, st: os.stat_result) -> str:
        ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        got = self._memo.get(ident)
        if got is not None:
            return got
        if self.cache is not None:
            got = self.cache.file_digest(st)
        if got is None:
            began = time.time_ns()
            got = file_sha256(path)
            after = os.lstat(path)
            unchanged = (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) \
                == (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
            if unchanged and st.st_ctime_ns <= began - RACY_NS:
                self._new.append((st, got, began))
        self._memo[ident] = got
        return got

    def entry(self, rel: str, path: str) -> bytes:
        """One path's record (see the module docstring)."""
        st = os.lstat(path)
        head = [rel, f"{stat.S_IFMT(st.st_mode):o}", f"{stat.S_IMODE(st.st_mode):o}",
                str(st.st_uid), str(st.st_gid)]
        if stat.S_ISLNK(st.st_mode):
            head.append(os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            head += [str(st.st_size), self._regular(path, st)]
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            head.append(f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}")
        return ("\0".join(head) + "\n").encode("utf-8", "surrogateescape")

    def hash_entries(self, entries: Iterable[tuple[str, str]]) -> str:
        """``sha256:`` over (relative name, host path) pairs, in sorted name order."""
        by_name: dict[str, str] = {}
        for rel, path in entries:
            by_name.setdefault(rel, path)
        h = hashlib.sha256()
        for rel in sorted(by_name):
            h.update(self.entry(rel, by_name[rel]))
        return "sha256:" + h.hexdigest()

    def flush(self) -> None:
        if self.cache is not None and self._new:
            self.cache.remember_files(self._new)
        self._new = []
