"""Write a directory tree as a deterministic OCI layer tar (for commit, build and export).

The same tree must give the same bytes, or the same build gives a new digest every time
and nothing dedupes. So the walk is sorted by the bytes of each name, headers are PAX
with no user/group names, times are whole seconds (clamped to ``SOURCE_DATE_EPOCH`` when
given) and xattrs are emitted in sorted order.

An overlayfs upper dir is the usual input: its whiteout char devices and opaque xattrs
(and, rootless, fuse-overlayfs' marker files: :mod:`berth.oci.fuse_upper`) are turned into
OCI ``.wh.`` entries here, so nothing above this module needs to know
how overlayfs marks deletions. Symlinks are never followed: every node is opened relative
to its parent's fd with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

from berth.errors import BerthError, InvalidArgument
from berth.oci import fuse_upper
from berth.oci.compression import open_compressor
from berth.oci.digest import CHUNK, TAR_STREAM_BUFSIZE
from berth.oci.layer_apply import OPAQUE_MARKER, OVERLAY_PRIVATE, WHITEOUT_PREFIX, opaque_xattr

_PAX_XATTR = "SCHILY.xattr."
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PRIVATE = (*OVERLAY_PRIVATE, fuse_upper.PRIVATE_XATTR)
_FILE_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


@dataclass
class WriteResult:
    """Identity of the layer as written: uncompressed (diff_id) and as stored (digest)."""

    diff_id: str
    size: int  # uncompressed tar bytes
    digest: str  # of the bytes written to ``out``
    compressed_size: int


class _Hashing(io.RawIOBase):
    """Hashes and counts bytes on their way to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def write_layer(src: str, out: BinaryIO, *, overlay_upper: bool = True,
                source_date_epoch: int | None = None, compression: str = "none",
                exclude: Callable[[str], bool] | None = None) -> WriteResult:
    """Write the tree under ``src`` (not ``src`` itself) to ``out`` as a layer tar.

    ``exclude`` gets each relative path (``a/b``) and skips it, and a directory's subtree,
    when it returns True. ``out`` is flushed but left open.
    """
    stored = _Hashing(out)
    compressor = open_compressor(compression, cast(BinaryIO, stored))
    plain = _Hashing(compressor)
    writer = _Writer(overlay_upper, source_date_epoch, exclude)
    tf = tarfile.open(fileobj=cast(BinaryIO, plain), mode="w|",
                      format=tarfile.PAX_FORMAT, bufsize=TAR_STREAM_BUFSIZE, encoding="utf-8",
                      errors="surrogateescape")
    tf.copybufsize = CHUNK  # type: ignore[attr-defined]
    try:
        root = os.open(src, _DIR_READ)
        try:
            writer.walk(tf, root, "")
        finally:
            os.close(root)
        tf.close()
        compressor.close()
    except BaseException as err:
        # Close the tar stream now, while ``out`` is open: left to the garbage collector it
        # would flush into a closed file and print "Exception ignored" (a full disk).
        with contextlib.suppress(Exception):
            tf.close()
        if isinstance(err, OSError):
            raise BerthError(f"cannot write a layer from {src}: {err}") from err
        raise
    return WriteResult(diff_id=plain.digest, size=plain.size,
                       digest=stored.digest, compressed_size=stored.size)


class _Writer:
    """One walk: options plus the inode table that turns repeats into hard links."""

    def __init__(self, overlay_upper: bool, epoch: int | None,
                 exclude: Callable[[str], bool] | None) -> None:
        self.overlay_upper = overlay_upper
        self.epoch = epoch
        self.exclude = exclude
        self.inodes: dict[tuple[int, int], str] = {}
        # fuse-overlayfs' marker files count as whiteouts only in the rootless namespace
        self.fuse = overlay_upper and fuse_upper.active()

    def _mtime(self, st: os.stat_result) -> int:
        secs = st.st_mtime_ns // 1_000_000_000
        return min(secs, self.epoch) if self.epoch is not None else secs

    def walk(self, tf: tarfile.TarFile, dfd: int, prefix: str) -> None:
        """Emit the children of ``dfd`` in byte order, each directory before its contents."""
        names = sorted(os.listdir(dfd), key=os.fsencode)
        whiteouts: set[str] = set()
        for name in names:
            rel = prefix + name
            if self.exclude is not None and self.exclude(rel):
                continue
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            mode = st.st_mode
            gone = fuse_upper.marker(name, st) if self.fuse else None
            if gone is not None or (self.overlay_upper and stat.S_ISCHR(mode)
                                    and st.st_rdev == 0):
                wh = prefix + WHITEOUT_PREFIX + (gone or name)
                if gone != fuse_upper.SKIP and wh not in whiteouts:
                    whiteouts.add(wh)  # fuse-overlayfs may mark one deletion both ways
                    tf.addfile(self._whiteout(wh, st))
                continue
            if name.startswith(WHITEOUT_PREFIX):
                raise InvalidArgument(
                    f"cannot put {rel!r} in a layer: names starting with {WHITEOUT_PREFIX!r} "
                    "are reserved for whiteouts")
            if stat.S_ISDIR(mode):
                self._dir(tf, dfd, name, rel, st)
            elif stat.S_ISSOCK(mode):
                continue  # a socket cannot live in a tar; Docker drops them too
            else:
                self._node(tf, dfd, name, rel, st)

    def _header(self, rel: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(rel)
        ti.type = kind
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = self._mtime(st)
        return ti

    def _whiteout(self, rel: str, st: os.stat_result) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(rel)
        ti.type = tarfile.REGTYPE
        ti.mode = 0
        ti.uname = ti.gname = ""
        ti.mtime = self._mtime(st)
        return ti

    def _dir(self, tf: tarfile.TarFile, pfd: int, name: str, rel: str,
             st: os.stat_result) -> None:
        fd = os.open(name, _DIR_READ, dir_fd=pfd)
        try:
            ti = self._header(rel, st, tarfile.DIRTYPE)
            xattrs = _xattrs(fd)
            opaque = (self.overlay_upper and xattrs.get(opaque_xattr()) == b"y") or \
                (self.fuse and fuse_upper.opaque(fd))
            ti.pax_headers = _pax(xattrs)
            tf.addfile(ti)
            if opaque:
                tf.addfile(self._whiteout(f"{rel}/{OPAQUE_MARKER}", st))
            self.walk(tf, fd, rel + "/")
        finally:
            os.close(fd)

    def _node(self, tf: tarfile.TarFile, pfd: int, name: str, rel: str,
              st: os.stat_result) -> None:
        mode = st.st_mode
        key = (st.st_dev, st.st_ino)
        first = self.inodes.get(key) if st.st_nlink > 1 else None
        if first is not None:
            ti = self._header(rel, st, tarfile.LNKTYPE)
            ti.linkname = first
            tf.addfile(ti)
            return
        if st.st_nlink > 1:
            self.inodes[key] = rel
        if stat.S_ISREG(mode):
            fd = os.open(name, _FILE_READ, dir_fd=pfd)
            with open(fd, "rb", buffering=0) as f:
                ti = self._header(rel, st, tarfile.REGTYPE)
                ti.size = st.st_size
                ti.pax_headers = _pax(_xattrs(fd))
                tf.addfile(ti, f)
            return
        if stat.S_ISLNK(mode):
            ti = self._header(rel, st, tarfile.SYMTYPE)
            ti.linkname = os.readlink(name, dir_fd=pfd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti = self._header(rel, st, tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti = self._header(rel, st, tarfile.FIFOTYPE)
        else:
            return
        ti.pax_headers = _pax(_xattrs(f"/proc/self/fd/{pfd}/{name}"))
        tf.addfile(ti)


def _xattrs(target: int | str) -> dict[str, bytes]:
    """All xattrs of a node (an open fd, or a /proc path read without following links)."""
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for key in names:
        try:
            out[key] = os.getxattr(target, key, follow_symlinks=follow)
        except OSError:
            continue  # vanished or unreadable: not part of the layer
    return out


def _pax(xattrs: dict[str, bytes]) -> dict[str, str]:
    """xattrs as sorted PAX records; overlayfs' own bookkeeping never leaves the host."""
    return {_PAX_XATTR + key: xattrs[key].decode("utf-8", "surrogateescape")
            for key in sorted(xattrs) if not key.startswith(_PRIVATE)}
