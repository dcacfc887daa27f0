"""Apply one OCI layer tar to a directory, safely, in one streaming pass.

A layer comes from outside and is hostile until proven otherwise. Every member is placed
through directory file descriptors opened with ``O_NOFOLLOW`` from the layer root down, so
no path the tar names — ``..``, absolute, through a symlink it planted itself, or a hard
link to a host file — can make us write outside ``dest``. Anything like that is refused
with :class:`UnsafeLayer` naming the member; a corrupt stream is :class:`InvalidArchive`.

Two whiteout modes, because the same layer is used two ways:

- ``overlay``: ``dest`` becomes one overlayfs lowerdir, so OCI whiteouts are turned into
  overlayfs' own markers (a 0/0 char device, the ``trusted.overlay.opaque`` xattr);
- ``flat``: ``dest`` is a whole rootfs built by applying layers in order (export, build
  without overlay), so whiteouts delete what earlier layers put there.

The uncompressed bytes are hashed as they stream past, so the diff_id is known (and
checked) without a second read of a possibly 200 MB layer.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal, cast

from berth.errors import BerthError, InvalidArchive, InvalidArgument, UnsafeLayer
from berth.oci.compression import open_decompressed
from berth.oci.digest import CHUNK, TAR_STREAM_BUFSIZE, DigestingReader, validate

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# Rootless stores mount overlay with ``userxattr`` (trusted.* needs host root): same marker
# under user.*. A layer may carry neither; both prefixes are overlayfs' private ones.
USER_OPAQUE_XATTR = "user.overlay.opaque"
OVERLAY_PRIVATE = ("trusted.overlay.", "user.overlay.")


def opaque_xattr() -> str:
    """The opaque-dir xattr overlay reads here: user.* in a user namespace (rootless)."""
    from berth.procs import in_userns

    return USER_OPAQUE_XATTR if in_userns() else OVERLAY_OPAQUE_XATTR
_PAX_XATTR = "SCHILY.xattr."
_BLOCK = 512
_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FD_CACHE_MAX = 512
# Errors from setxattr that mean "this filesystem/kernel will not hold that attribute":
# xattrs are best effort (an unprivileged or SELinux-less host cannot keep every one),
# while anything else (ENOSPC, EIO) is a real failure.
_XATTR_SKIP = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL,
               errno.E2BIG, errno.ERANGE}

Path = tuple[str, ...]


@dataclass
class ApplyResult:
    """What applying a layer learned: its identity and how much it put on disk."""

    diff_id: str  # sha256 of the uncompressed tar bytes, "sha256:..."
    size: int  # uncompressed tar byte count
    unpacked_size: int  # sum of regular file sizes written


def apply_layer(stream: BinaryIO, dest: str, *,
                whiteouts: Literal["overlay", "flat"] = "overlay",
                expected_diff_id: str | None = None,
                tap: Callable[[bytes], None] | None = None) -> ApplyResult:
    """Unpack the layer in ``stream`` (gzip, zstd or plain tar) into the directory ``dest``.

    On any error ``dest`` may hold part of the layer; the caller throws it away. Nothing is
    ever written outside it. ``tap`` sees every uncompressed byte in order (the store's
    tar-split record is made from them, see :mod:`berth.oci.tarsplit`).
    """
    if whiteouts not in ("overlay", "flat"):
        raise InvalidArgument(f"whiteouts must be 'overlay' or 'flat', not {whiteouts!r}")
    if expected_diff_id is not None:
        validate(expected_diff_id)
    reader = DigestingReader(tapped(open_decompressed(stream), tap))
    window = _TailWindow(reader)
    applier = _Applier(dest, flat=whiteouts == "flat")
    try:
        try:
            tf = tarfile.open(fileobj=cast(BinaryIO, window), mode="r|",
                              bufsize=TAR_STREAM_BUFSIZE)
            while (member := tf.next()) is not None:
                del tf.members[:]  # type: ignore[attr-defined]  # stream mode keeps every header otherwise
                applier.apply(tf, member)
            end = tf.offset
        except (tarfile.TarError, EOFError) as err:
            raise InvalidArchive(f"invalid layer tar: {err}") from None
        if not window.ends_cleanly(end):
            raise InvalidArchive(f"invalid layer tar: corrupt or truncated header at byte {end}")
        applier.finish()
    finally:
        applier.close()
    reader.drain()
    if expected_diff_id is not None:
        reader.verify(expected_diff_id)
    return ApplyResult(diff_id=reader.digest, size=reader.size,
                       unpacked_size=applier.unpacked_size)


class _Tapped:
    """A reader that shows every byte it returns to ``tap`` (read and readinto alike)."""

    def __init__(self, raw: BinaryIO, tap: Callable[[bytes], None]) -> None:
        self._raw = raw
        self._tap = tap

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._tap(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def tapped(raw: BinaryIO, tap: Callable[[bytes], None] | None) -> BinaryIO:
    """``raw`` itself without a tap, else a reader that feeds ``tap`` as it goes."""
    return raw if tap is None else cast(BinaryIO, _Tapped(raw, tap))


class _TailWindow:
    """Keeps the last reads (one buffer's worth plus two blocks) for a look back.

    In stream mode tarfile treats a corrupt header after the first one as the end of the
    archive and stops silently; looking at that block ourselves tells a real end (zeros or
    EOF) from a damaged layer that would otherwise apply half-way without a word. tarfile
    buffers at most one read, so the block it stopped at is always still in the window.
    """

    def __init__(self, raw: DigestingReader) -> None:
        self._raw = raw
        self._chunks: deque[bytes] = deque()
        self._start = 0  # stream offset of the first kept chunk
        self._kept = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._chunks.append(data)
            self._kept += len(data)
            while self._kept - len(self._chunks[0]) >= CHUNK + 2 * _BLOCK:
                first = self._chunks.popleft()
                self._kept -= len(first)
                self._start += len(first)
        return data

    def ends_cleanly(self, offset: int) -> bool:
        """True if the header block at ``offset`` is end-of-archive (zeros) or plain EOF."""
        start = self._start
        seen = b"".join(self._chunks)
        if offset < start:
            return False
        block = seen[offset - start: offset - start + _BLOCK]
        if len(block) < _BLOCK and offset - start + len(block) == len(seen):
            block += self._raw.read(_BLOCK - len(block))  # the rest was never asked for
        return not block or block == bytes(_BLOCK)


def _split(name: str, member: str, what: str = "path") -> Path:
    """Normalise a tar path to its components, refusing anything that climbs out."""
    shown = what if name == member else f"{what} {name!r}"
    if name.startswith("/"):
        raise UnsafeLayer(f"layer member {member!r}: absolute {shown}")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeLayer(f"layer member {member!r}: {shown} contains '..'")
    if any("\0" in p for p in parts):
        raise UnsafeLayer(f"layer member {member!r}: NUL byte in {what}")
    return parts


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(round(member.mtime * 1_000_000_000))


class _Applier:
    """State of one layer being applied: the root fd, a cache of safe dir fds, bookkeeping."""

    def __init__(self, dest: str, *, flat: bool) -> None:
        self.dest = dest
        self.flat = flat
        self.root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds: dict[Path, int] = {(): self.root}
        self.members: set[Path] = set()  # non-dirs this layer wrote: the only link targets
        self.added: set[Path] = set()  # everything this layer created (flat-mode opaque)
        self.dir_times: dict[Path, int] = {}
        self.unpacked_size = 0

    # -- directory fds -------------------------------------------------------------------

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _forget(self, prefix: Path = ()) -> None:
        """Drop cached dir fds at or under ``prefix``, so none points at a deleted directory."""
        n = len(prefix)
        for path, fd in list(self._fds.items()):
            if path and path[:n] == prefix:
                os.close(fd)
                del self._fds[path]

    def dir_fd(self, parts: Path, member: str, *, create: bool) -> int | None:
        """An fd for directory ``parts``, reached without following any symlink.

        Missing directories are made (0755, root) when ``create``; otherwise None.
        """
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        i = len(parts)
        while parts[:i] not in self._fds:
            i -= 1
        fd = self._fds[parts[:i]]
        for j in range(i, len(parts)):
            name = parts[j]
            if name.startswith(WHITEOUT_PREFIX):
                raise UnsafeLayer(f"layer member {member!r}: whiteout name used as a directory")
            try:
                fd = os.open(name, _DIR_PATH, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(name, 0o755, dir_fd=fd)
                os.chmod(name, 0o755, dir_fd=fd)  # undo the umask; we just made it, no link
                self.added.add(parts[: j + 1])
                fd = os.open(name, _DIR_PATH, dir_fd=fd)
            except (NotADirectoryError, OSError) as err:
                if err.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                what = "a symlink" if self._is_link(fd, name) else "not a directory"
                raise UnsafeLayer(
                    f"layer member {member!r}: parent {'/'.join(parts[: j + 1])!r} is {what}"
                ) from None
            self._fds[parts[: j + 1]] = fd
        return fd

    @staticmethod
    def _is_link(dir_fd: int, name: str) -> bool:
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    # -- members --------------------------------------------------------------------------

    def apply(self, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Place one member; every refusal names it."""
        if len(self._fds) > _FD_CACHE_MAX:  # between members no caller holds a cached fd
            self._forget()
        parts = _split(member.name, member.name)
        try:
            if not parts:
                self._root_entry(member)
            elif parts[-1].startswith(WHITEOUT_PREFIX):
                self._whiteout(parts, member.name)
            else:
                self._entry(tf, member, parts)
        except (BerthError, tarfile.TarError):
            raise
        except ValueError as err:  # e.g. a NUL inside a symlink target
            raise UnsafeLayer(f"layer member {member.name!r}: {err}") from None
        except OSError as err:
            raise BerthError(
                f"cannot apply layer member {member.name!r}: {err.strerror or err}") from None

    def _root_entry(self, member: tarfile.TarInfo) -> None:
        """``./`` itself: only a directory makes sense, and only its metadata applies."""
        if not member.isdir():
            raise UnsafeLayer(f"layer member {member.name!r}: the layer root must be a directory")
        os.chown(self.root, member.uid, member.gid)
        os.chmod(self.root, member.mode & 0o7777)
        self._xattrs_fd(self.root, member)
        self.dir_times[()] = _mtime_ns(member)

    def _entry(self, tf: tarfile.TarFile, member: tarfile.TarInfo, parts: Path) -> None:
        name = parts[-1]
        pfd = self.dir_fd(parts[:-1], member.name, create=True)
        assert pfd is not None
        if member.islnk():
            self._hardlink(member, parts, pfd)
            return
        existing = self._lstat(pfd, name)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                if existing is not None:
                    self._remove(pfd, parts, existing)
                    self.members.discard(parts)
                os.mkdir(name, 0o700, dir_fd=pfd)
                self.added.add(parts)
            elif self.flat:
                self.added.add(parts)
            dfd = os.open(name, _DIR_READ, dir_fd=pfd)
            try:
                os.chown(dfd, member.uid, member.gid)
                os.chmod(dfd, member.mode & 0o7777)
                self._xattrs_fd(dfd, member)
            except BaseException:
                os.close(dfd)
                raise
            old = self._fds.pop(parts, None)
            if old is not None:
                os.close(old)
            self._fds[parts] = dfd
            self.dir_times[parts] = _mtime_ns(member)
            return
        if existing is not None:
            self._remove(pfd, parts, existing)
        self.dir_times.pop(parts, None)
        if member.isreg():
            self._regular(tf, member, pfd, name)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=pfd)
            self._meta_path(member, pfd, name, chmod=False)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = (stat.S_IFCHR if member.ischr()
                    else stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
            dev = os.makedev(member.devmajor, member.devminor) if kind != stat.S_IFIFO else 0
            os.mknod(name, kind | 0o600, dev, dir_fd=pfd)
            self._meta_path(member, pfd, name, chmod=True)
        else:
            raise UnsafeLayer(f"layer member {member.name!r}: unsupported tar type {member.type!r}")
        self.members.add(parts)
        self.added.add(parts)

    def _regular(self, tf: tarfile.TarFile, member: tarfile.TarInfo, pfd: int, name: str) -> None:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=pfd)
        try:
            src = tf.extractfile(member)
            assert src is not None
            remaining = member.size
            while remaining > 0:
                buf = src.read(min(CHUNK, remaining))
                if not buf:
                    raise InvalidArchive(f"invalid layer tar: {member.name!r} is truncated")
                remaining -= len(buf)
                view = memoryview(buf)
                while view:
                    view = view[os.write(fd, view):]
            os.chown(fd, member.uid, member.gid)
            os.chmod(fd, member.mode & 0o7777)  # after chown, which clears setuid/setgid
            self._xattrs_fd(fd, member)
            ns = _mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)
        self.unpacked_size += member.size

    def _hardlink(self, member: tarfile.TarInfo, parts: Path, pfd: int) -> None:
        """Link to an earlier member of this same layer, never to anything else."""
        target = _split(member.linkname, member.name, "hard link target")
        if not target or target not in self.members:
            raise UnsafeLayer(f"layer member {member.name!r}: hard link target "
                              f"{member.linkname!r} is not an earlier file of this layer")
        if target == parts:
            raise UnsafeLayer(f"layer member {member.name!r}: hard link to itself")
        existing = self._lstat(pfd, parts[-1])
        if existing is not None:
            self._remove(pfd, parts, existing)
        tfd = self.dir_fd(target[:-1], member.name, create=False)
        tst = None if tfd is None else self._lstat(tfd, target[-1])
        if tfd is None or tst is None or stat.S_ISDIR(tst.st_mode):
            raise UnsafeLayer(f"layer member {member.name!r}: hard link target "
                              f"{member.linkname!r} is no longer a file of this layer")
        os.link(target[-1], parts[-1], src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        self.members.add(parts)
        self.added.add(parts)

    # -- whiteouts -----------------------------------------------------------------------

    def _whiteout(self, parts: Path, member: str) -> None:
        base = parts[-1]
        if base == OPAQUE_MARKER:
            self._opaque(parts[:-1], member)
            return
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name in (".", "..") or name.startswith(WHITEOUT_PREFIX):
            raise UnsafeLayer(f"layer member {member!r}: invalid whiteout name")
        pfd = self.dir_fd(parts[:-1], member, create=not self.flat)
        if pfd is None:
            return  # flat: nothing below to hide
        target = parts[:-1] + (name,)
        existing = self._lstat(pfd, name)
        if self.flat:
            # A whiteout hides only what earlier layers made, never its own layer's files.
            if existing is not None and target not in self.added:
                self._remove(pfd, target, existing)
            return
        if existing is not None:
            self._remove(pfd, target, existing)
        os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        self.members.discard(target)
        self.added.add(target)
        self.dir_times.pop(target, None)

    def _opaque(self, dparts: Path, member: str) -> None:
        dfd = self.dir_fd(dparts, member, create=True)
        assert dfd is not None
        if not self.flat:
            os.setxattr(f"/proc/self/fd/{dfd}", opaque_xattr(), b"y")
            return
        self.added.add(dparts)
        self._prune(dparts, dfd)

    def _prune(self, dparts: Path, dfd: int) -> None:
        """Flat opaque: drop what earlier layers put under ``dparts``, keep this layer's."""
        rfd = os.open(".", _DIR_READ, dir_fd=dfd)
        try:
            names = os.listdir(rfd)
        finally:
            os.close(rfd)
        for child in names:
            cparts = dparts + (child,)
            st = self._lstat(dfd, child)
            if st is None:
                continue
            if cparts not in self.added:
                self._remove(dfd, cparts, st)
            elif stat.S_ISDIR(st.st_mode):
                sub = os.open(child, _DIR_PATH, dir_fd=dfd)  # not cached: bounded by depth
                try:
                    self._prune(cparts, sub)
                finally:
                    os.close(sub)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _remove(self, dir_fd: int, parts: Path, st: os.stat_result) -> None:
        """Remove ``parts`` (in ``dir_fd``); a symlink is unlinked, never what it points to."""
        if stat.S_ISDIR(st.st_mode):
            self._forget(parts)
            shutil.rmtree(parts[-1], dir_fd=dir_fd)  # fd-based, never follows symlinks
        else:
            os.unlink(parts[-1], dir_fd=dir_fd)

    def _meta_path(self, member: tarfile.TarInfo, pfd: int, name: str, *, chmod: bool) -> None:
        """Owner, mode, xattrs and mtime for a node we cannot hold open (link, device, fifo)."""
        os.chown(name, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        if chmod:  # the node was created just now by mknod: it is not a symlink
            os.chmod(name, member.mode & 0o7777, dir_fd=pfd)
        for key, value in self._xattr_items(member):
            self._setxattr(f"/proc/self/fd/{pfd}/{name}", key, value, follow=False)
        ns = _mtime_ns(member)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def _xattrs_fd(self, fd: int, member: tarfile.TarInfo) -> None:
        for key, value in self._xattr_items(member):
            self._setxattr(fd, key, value, follow=True)

    @staticmethod
    def _xattr_items(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        """xattrs from PAX ``SCHILY.xattr.*``, minus overlayfs' private ones.

        ``trusted.overlay.*`` (``user.overlay.*`` rootless) would let a layer forge opaque dirs, redirects or metacopy
        files that overlayfs trusts; the layer format says those things with whiteouts.
        """
        out = []
        for key, value in member.pax_headers.items():
            if key.startswith(_PAX_XATTR):
                name = key[len(_PAX_XATTR):]
                if name and not name.startswith(OVERLAY_PRIVATE):
                    out.append((name, value.encode("utf-8", "surrogateescape")))
        return out

    @staticmethod
    def _setxattr(target: int | str, key: str, value: bytes, *, follow: bool) -> None:
        try:
            os.setxattr(target, key, value, follow_symlinks=follow)
        except OSError as err:
            if err.errno not in _XATTR_SKIP:
                raise

    def finish(self) -> None:
        """Set directory mtimes last: creating their children kept changing them."""
        for parts, ns in self.dir_times.items():
            if len(self._fds) > _FD_CACHE_MAX:
                self._forget()
            if not parts:
                os.utime(self.dest, ns=(ns, ns))
                continue
            try:
                pfd = self.dir_fd(parts[:-1], "/".join(parts), create=False)
            except UnsafeLayer:
                continue
            if pfd is None:
                continue
            st = self._lstat(pfd, parts[-1])
            if st is not None and stat.S_ISDIR(st.st_mode):
                os.utime(parts[-1], ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)
