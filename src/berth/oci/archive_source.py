"""Read members of an image archive in place: a tar file or an unpacked directory.

We never extract an archive. A tar is indexed once (``getmembers()``) and a member's bytes
are read through a fresh file handle positioned at its data offset and bounded to its size,
so a 200 MB layer streams straight from the archive and several layers can be read at once.
Every name asked for is normalised and refused if it is absolute or climbs out with
``..``; symlinks and hard links are followed only while they stay inside the archive.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from typing import BinaryIO, Protocol

from berth.errors import InvalidArchive

_MAX_LINK_HOPS = 40


def safe_name(name: str) -> str:
    """Normalise an archive-relative path; refuse absolute paths and ``..`` escapes."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise InvalidArchive(f"invalid archive: bad path {name!r}")
    if name.startswith("/"):
        raise InvalidArchive(f"invalid archive: absolute path {name!r} is not allowed")
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise InvalidArchive(f"invalid archive: path {name!r} escapes the archive")
    return norm


class BoundedReader(io.RawIOBase):
    """Reads at most ``size`` bytes from ``offset`` of a file it owns (closed with it)."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self._f = open(path, "rb")
        self._f.seek(offset)
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        n = self._f.readinto(memoryview(buf)[: min(len(buf), self._left)])
        if not n:
            raise InvalidArchive("invalid archive: member data is truncated")
        self._left -= n
        return n

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class Source(Protocol):
    """What the format readers need from an archive, whatever holds it."""

    def exists(self, name: str) -> bool: ...
    def size(self, name: str) -> int: ...
    def open(self, name: str) -> BinaryIO: ...
    def read(self, name: str, limit: int) -> bytes: ...
    def close(self) -> None: ...


class TarSource:
    """An uncompressed tar file, indexed by member name."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with tarfile.open(path, "r:") as tf:
                members = tf.getmembers()
        except (tarfile.TarError, EOFError) as e:
            raise InvalidArchive(f"invalid archive: not a tar file: {e}") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            if not m.name or m.name.startswith("/"):
                continue  # never addressable: absolute names are not archive members
            key = posixpath.normpath(m.name)
            if key != "." and key != ".." and not key.startswith("../"):
                self._members[key] = m  # a later duplicate wins, as in extraction

    def _resolve(self, name: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` ends at, following links inside the archive."""
        key = safe_name(name)
        for _ in range(_MAX_LINK_HOPS):
            m = self._members.get(key)
            if m is None:
                raise InvalidArchive(f"invalid archive: {name} not found in archive")
            if m.issym():
                if m.linkname.startswith("/"):
                    raise InvalidArchive(f"invalid archive: {name} links outside the archive")
                target = posixpath.join(posixpath.dirname(key), m.linkname)
                key = self._inside(target, name)
            elif m.islnk():
                key = self._inside(m.linkname, name)
            elif m.isreg() and not m.issparse():
                return m
            else:
                raise InvalidArchive(f"invalid archive: {name} is not a regular file")
        raise InvalidArchive(f"invalid archive: too many levels of links at {name}")

    @staticmethod
    def _inside(target: str, name: str) -> str:
        norm = posixpath.normpath(target.lstrip("/"))
        if norm == ".." or norm.startswith("../"):
            raise InvalidArchive(f"invalid archive: {name} links outside the archive")
        return norm

    def exists(self, name: str) -> bool:
        try:
            self._resolve(name)
        except InvalidArchive:
            return False
        return True

    def size(self, name: str) -> int:
        return self._resolve(name).size

    def open(self, name: str) -> BinaryIO:
        m = self._resolve(name)
        reader = io.BufferedReader(BoundedReader(self.path, m.offset_data, m.size))
        return reader

    def read(self, name: str, limit: int) -> bytes:
        m = self._resolve(name)
        if m.size > limit:
            raise InvalidArchive(f"invalid archive: {name} is too large ({m.size} bytes)")
        with self.open(name) as f:
            return f.read()

    def close(self) -> None:
        self._members.clear()


class DirSource:
    """An unpacked layout on disk; symlinks may not lead outside its root."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)

    def _path(self, name: str) -> str:
        real = os.path.realpath(os.path.join(self.root, safe_name(name)))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise InvalidArchive(f"invalid archive: {name} links outside the directory")
        if not os.path.isfile(real):
            raise InvalidArchive(f"invalid archive: {name} not found in directory")
        return real

    def exists(self, name: str) -> bool:
        try:
            self._path(name)
        except InvalidArchive:
            return False
        return True

    def size(self, name: str) -> int:
        return os.path.getsize(self._path(name))

    def open(self, name: str) -> BinaryIO:
        return open(self._path(name), "rb")

    def read(self, name: str, limit: int) -> bytes:
        path = self._path(name)
        if os.path.getsize(path) > limit:
            raise InvalidArchive(f"invalid archive: {name} is too large")
        with open(path, "rb") as f:
            return f.read()

    def close(self) -> None:
        pass
