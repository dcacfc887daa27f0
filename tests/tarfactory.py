"""Build layer tars in memory for tests, including ones no honest tool would write.

Tests describe members as small dicts so a malicious layer reads like a list of what it
does, e.g. ``[symlink("evil", "/etc"), file("evil/passwd", b"x")]``.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from typing import Any

_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def make_tar(members: list[dict[str, Any]], *, end: bool = True) -> bytes:
    """A PAX tar of ``members``; each dict has ``name`` and optionally ``type`` (a key of
    ``_TYPES``, default ``file``), ``data``, ``mode``, ``uid``, ``gid``, ``mtime``,
    ``linkname``, ``devmajor``, ``devminor``, ``xattrs`` ({name: bytes}) and ``pax``.

    ``end=False`` leaves off the end-of-archive blocks.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            kind = m.get("type", "file")
            ti = tarfile.TarInfo(m["name"])
            ti.type = _TYPES[kind]
            ti.mode = m.get("mode", 0o755 if kind == "dir" else 0o644)
            ti.uid = m.get("uid", 0)
            ti.gid = m.get("gid", 0)
            ti.mtime = m.get("mtime", 1_600_000_000)
            ti.linkname = m.get("linkname", "")
            ti.devmajor = m.get("devmajor", 0)
            ti.devminor = m.get("devminor", 0)
            pax = dict(m.get("pax", {}))
            for key, value in m.get("xattrs", {}).items():
                pax["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
            ti.pax_headers = pax
            data = m.get("data", b"")
            if kind == "file":
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
        body = tf.offset
    raw = buf.getvalue()
    return raw if end else raw[:body]


def file(name: str, data: bytes = b"", **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "file", "data": data, **kw}


def dir(name: str, **kw: Any) -> dict[str, Any]:  # noqa: A001 - reads well in member lists
    return {"name": name, "type": "dir", **kw}


def symlink(name: str, target: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "symlink", "linkname": target, **kw}


def hardlink(name: str, target: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "type": "hardlink", "linkname": target, **kw}


def whiteout(name: str) -> dict[str, Any]:
    """``.wh.`` + the last component of ``name``, in its directory."""
    head, _, base = name.rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}", mode=0)


def opaque(dirname: str) -> dict[str, Any]:
    return file(f"{dirname}/.wh..wh..opq", mode=0)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def zstded(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def snapshot(root: str, *, user_xattrs_only: bool = True) -> dict[str, tuple[Any, ...]]:
    """Everything a layer can carry about each node under ``root``, for tree comparisons.

    Times are whole seconds (what a tar keeps); content is compared by bytes; hard links
    show up as equal ``link group`` values (the first path seen with that inode).
    """
    import os
    import stat as st_

    out: dict[str, tuple[Any, ...]] = {}
    groups: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            s = os.lstat(path)
            kind = st_.S_IFMT(s.st_mode)
            extra: Any = None
            if st_.S_ISREG(s.st_mode):
                with open(path, "rb") as f:
                    extra = f.read()
            elif st_.S_ISLNK(s.st_mode):
                extra = os.readlink(path)
            elif st_.S_ISCHR(s.st_mode) or st_.S_ISBLK(s.st_mode):
                extra = (os.major(s.st_rdev), os.minor(s.st_rdev))
            group = None
            if not st_.S_ISDIR(s.st_mode) and s.st_nlink > 1:
                group = groups.setdefault((s.st_dev, s.st_ino), rel)
            try:
                keys = os.listxattr(path, follow_symlinks=False)
            except OSError:
                keys = []
            xattrs = tuple(sorted(
                (k, os.getxattr(path, k, follow_symlinks=False)) for k in keys
                if not user_xattrs_only or k.startswith("user.")))
            out[rel] = (kind, st_.S_IMODE(s.st_mode), s.st_uid, s.st_gid,
                        s.st_mtime_ns // 1_000_000_000, extra, group, xattrs)
    return out
