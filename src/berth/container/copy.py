"""``cp`` between a container and the host, with Docker's path rules and no host escapes.

Every copy is a tar stream from a source tree to a destination directory, as in Docker:
the source is written by :class:`_TarOut` walking directory fds with ``O_NOFOLLOW``, and
the stream is unpacked by :func:`berth.oci.layer_apply.apply_layer`, which places every
member through fds below the destination and never follows a symlink. Container paths are
looked up through :mod:`berth.container.rootpath` (``openat2(RESOLVE_IN_ROOT)``), so a
symlink planted or swapped in by the container cannot send us to the host's files.

Which directory receives the stream, and under what top-level name, is decided by
:func:`_plan` from Docker's rules (dir into existing dir, ``/.`` for contents, file onto
file, rename on a new name). Ownership follows ``docker cp``: files land owned by the
destination's root (into a container) or the invoking user (onto the host), unless
``archive`` keeps the source's IDs.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from berth.container.rootpath import HostFS, Node, RootFS
from berth.errors import BerthError, InvalidArgument, NotFound

_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
# tarfile's stream buffer is a bytes object grown by ``+=`` and sliced per record: a 1 MiB
# buffer makes every small member copy ~1 MiB (8x slower on many small files); 64 KiB not.
_TAR_BUF = 1 << 16
_WHITEOUT = ".wh."

FS = RootFS | HostFS


@dataclass
class CopyResult:
    """What was copied: the bytes of the tar stream (Docker's ``Successfully copied``)."""

    size: int


# -- the source side: a tree as a tar stream ------------------------------------------------

class _Exact:
    """Reads exactly ``size`` bytes from a file that may shrink under us (pads with zeros)."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        n = self._left if n < 0 else min(n, self._left)
        data = os.read(self._fd, n) or bytes(n)
        self._left -= len(data)
        return data


class _TarOut:
    """Writes nodes to a tar; ``owner`` replaces every uid/gid unless None (archive mode)."""

    def __init__(self, tf: tarfile.TarFile, owner: tuple[int, int] | None) -> None:
        self.tf = tf
        self.owner = owner
        self.links: dict[tuple[int, int], str] = {}

    def _info(self, arc: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        if any(p.startswith(_WHITEOUT) for p in arc.split("/")):
            raise InvalidArgument(f"cannot copy {arc!r}: names starting with {_WHITEOUT!r} "
                                  "are reserved")
        ti = tarfile.TarInfo(arc)
        ti.type = kind
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = self.owner if self.owner is not None else (st.st_uid, st.st_gid)
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)
        return ti

    def add(self, pfd: int, name: str, arc: str, st: os.stat_result) -> None:
        """Add node ``name`` of dir ``pfd`` as ``arc`` (``""``: only its children)."""
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            fd = os.open(name, _DIR_READ, dir_fd=pfd)
            try:
                if arc:
                    ti = self._info(arc, os.fstat(fd), tarfile.DIRTYPE)
                    ti.pax_headers = _xattrs(fd)
                    self.tf.addfile(ti)
                for child in sorted(os.listdir(fd), key=os.fsencode):
                    try:
                        cst = os.stat(child, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while we walked: not part of the copy
                    self.add(fd, child, f"{arc}/{child}" if arc else child, cst)
            finally:
                os.close(fd)
            return
        if stat.S_ISSOCK(mode):
            return
        if st.st_nlink > 1 and not stat.S_ISDIR(mode):
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                ti = self._info(arc, st, tarfile.LNKTYPE)
                ti.linkname = first
                self.tf.addfile(ti)
                return
            self.links[(st.st_dev, st.st_ino)] = arc
        if stat.S_ISREG(mode):
            fd = os.open(name, _FILE_READ, dir_fd=pfd)
            try:
                fst = os.fstat(fd)
                if not stat.S_ISREG(fst.st_mode):
                    return  # swapped for something else since we looked: skip it
                ti = self._info(arc, fst, tarfile.REGTYPE)
                ti.size = fst.st_size
                ti.pax_headers = _xattrs(fd)
                self.tf.addfile(ti, _Exact(fd, fst.st_size))  # type: ignore[arg-type]
            finally:
                os.close(fd)
            return
        if stat.S_ISLNK(mode):
            ti = self._info(arc, st, tarfile.SYMTYPE)
            ti.linkname = os.readlink(name, dir_fd=pfd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti = self._info(arc, st, tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti = self._info(arc, st, tarfile.FIFOTYPE)
        else:
            return
        self.tf.addfile(ti)


def _xattrs(fd: int) -> dict[str, str]:
    """xattrs of an open node as PAX records (overlayfs' own never leave the host)."""
    out = {}
    try:
        names = sorted(os.listxattr(fd))
    except OSError:
        return {}
    for key in names:
        if key.startswith(("trusted.overlay.", "user.overlay.")):  # overlay's own
            continue
        try:
            out["SCHILY.xattr." + key] = os.getxattr(fd, key).decode("utf-8", "surrogateescape")
        except OSError:
            continue
    return out


def _tar_writer(node: Node, arc: str, owner: tuple[int, int] | None) -> Callable[[BinaryIO], None]:
    def write(out: BinaryIO) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                          bufsize=_TAR_BUF, encoding="utf-8", errors="surrogateescape") as tf:
            # undocumented TarFile attribute (also an __init__ argument), missing in typeshed
            tf.copybufsize = _CHUNK  # type: ignore[attr-defined]
            _TarOut(tf, owner).add(node.pfd, node.name, arc, node.st)
    return write


def _retar(src: BinaryIO, owner: tuple[int, int] | None) -> Callable[[BinaryIO], None]:
    """A user's tar (``cp - CTR:DEST``) with ownership set and reserved names refused."""
    def write(out: BinaryIO) -> None:
        try:
            with tarfile.open(fileobj=src, mode="r|*") as tin, \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT,
                                 bufsize=_TAR_BUF) as tout:
                for m in tin:
                    if any(p.startswith(_WHITEOUT) for p in m.name.split("/")):
                        raise InvalidArgument(f"cannot copy {m.name!r}: names starting with "
                                              f"{_WHITEOUT!r} are reserved")
                    if owner is not None:
                        m.uid, m.gid = owner
                    m.uname = m.gname = ""
                    tout.addfile(m, tin.extractfile(m) if m.isreg() else None)
                    # forget what was streamed (memory); TarFile.members is not in typeshed
                    del tin.members[:]  # type: ignore[attr-defined]
        except tarfile.TarError as err:
            raise InvalidArgument(f"invalid tar stream: {err}") from None
    return write


# -- moving the stream ----------------------------------------------------------------------

class _Counting:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        self.raw.write(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def _pump(write: Callable[[BinaryIO], None], dest_dir_fd: int) -> int:
    """Run ``write`` in a thread into a pipe that ``apply_layer`` unpacks at ``dest_dir_fd``."""
    import fcntl

    from berth.oci.layer_apply import apply_layer

    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:
        pass
    failure: list[BaseException] = []
    counter: list[_Counting] = []

    def produce() -> None:
        try:
            with open(w, "wb", buffering=_CHUNK) as raw:
                out = _Counting(raw)  # type: ignore[arg-type]
                counter.append(out)
                write(out)  # type: ignore[arg-type]
        except BaseException as err:  # noqa: BLE001 - handed to the caller below
            failure.append(err)

    t = threading.Thread(target=produce, name="cp-tar", daemon=True)
    t.start()
    try:
        with open(r, "rb", buffering=_CHUNK) as reader:
            try:
                apply_layer(reader, f"/proc/self/fd/{dest_dir_fd}", whiteouts="flat")
            finally:
                reader.close()  # a producer blocked on a full pipe now gets EPIPE
    except BaseException:
        t.join()
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise failure[0] from None
        raise
    t.join()
    if failure:
        raise failure[0]
    return counter[0].size if counter else 0


# -- Docker's path rules ----------------------------------------------------------------------

@dataclass
class _Plan:
    dest_dir: int  # O_PATH fd of the directory that receives the stream
    arc: str  # top-level name in the stream ("" = the source dir's contents)


def _split_trailing(path: str) -> tuple[str, bool, bool]:
    """(path, ends with a separator, ends with ``/.`` — i.e. "the contents of")."""
    contents = path == "." or path.endswith("/.")
    trailing = path.endswith("/") or contents
    return path, trailing, contents


def _locate(fs: FS, path: str, *, follow: bool) -> Node | None:
    try:
        return fs.locate(path, follow=follow)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise InvalidArgument(f"{path}: not a directory") from None
    except OSError as err:
        raise BerthError(f"{path}: {err.strerror}") from None


def _source(fs: FS, path: str, follow: bool, missing: str) -> tuple[Node, bool]:
    _, trailing, contents = _split_trailing(path)
    node = _locate(fs, path, follow=follow or trailing)
    if node is None:
        raise NotFound(missing)
    if trailing and not node.is_dir:
        node.close()
        raise InvalidArgument(f"{path}: not a directory")
    return node, contents


def _plan(fs: FS, dest: str, src: Node, contents: bool) -> _Plan:
    """Where to unpack ``src`` so that ``dest`` ends up as Docker's rules say."""
    _, trailing, _ = _split_trailing(dest)
    node = _locate(fs, dest, follow=True)  # a destination symlink is followed (in scope)
    src_name = "" if contents else _basename(src)
    try:
        if node is not None and node.is_dir:
            return _Plan(node.open_dir(), src_name)
        if node is not None:
            if src.is_dir:
                raise InvalidArgument(
                    f"cannot overwrite non-directory \"{dest}\" with directory \"{src.path}\"")
            if trailing:
                raise InvalidArgument(f"{dest}: not a directory")
            return _Plan(os.dup(node.pfd), node.name)
        if trailing and not src.is_dir:
            raise InvalidArgument(f"destination directory \"{dest}\" must exist")
        parent_path = posixpath.dirname(dest.rstrip("/")) or ("/" if dest.startswith("/") else ".")
        parent = _locate(fs, parent_path, follow=True)
        if parent is None or not parent.is_dir:
            if parent is not None:
                parent.close()
            raise NotFound(f"destination directory \"{parent_path}\" does not exist")
        try:
            return _Plan(parent.open_dir(), posixpath.basename(dest.rstrip("/")))
        finally:
            parent.close()
    finally:
        if node is not None:
            node.close()


def _basename(node: Node) -> str:
    """Top-level name of a source in the stream; ``""`` for a root (its contents)."""
    return "" if node.name == "." else node.name


def _owner_into_container() -> tuple[int, int]:
    return (0, 0)


# -- the four directions --------------------------------------------------------------------

def copy_from_container(merged: str, src: str, dest: str, *, follow: bool = False,
                        archive: bool = False, container: str = "") -> CopyResult:
    """``cp CTR:SRC DEST``: ``dest`` is a host path."""
    with RootFS(merged) as rootfs:
        node, contents = _source(rootfs, src, follow,
                                 f"Could not find the file {src} in container {container}")
        try:
            plan = _plan(HostFS(), dest, node, contents)
            owner = None if archive else (os.getuid(), os.getgid())
            try:
                return CopyResult(_pump(_tar_writer(node, plan.arc, owner), plan.dest_dir))
            finally:
                os.close(plan.dest_dir)
        finally:
            node.close()


def copy_to_container(merged: str, src: str, dest: str, *, follow: bool = False,
                      archive: bool = False, container: str = "") -> CopyResult:
    """``cp SRC CTR:DEST``: ``src`` is a host path."""
    node, contents = _source(HostFS(), src, follow,
                             f"lstat {os.path.abspath(src)}: no such file or directory")
    try:
        with RootFS(merged) as rootfs:
            plan = _plan(rootfs, dest, node, contents)
            owner = None if archive else _owner_into_container()
            try:
                return CopyResult(_pump(_tar_writer(node, plan.arc, owner), plan.dest_dir))
            finally:
                os.close(plan.dest_dir)
    finally:
        node.close()


def archive_from_container(merged: str, src: str, out: BinaryIO, *, follow: bool = False,
                           container: str = "") -> CopyResult:
    """``cp CTR:SRC -``: the source as a tar stream, entries named after its basename."""
    with RootFS(merged) as rootfs:
        node, contents = _source(rootfs, src, follow,
                                 f"Could not find the file {src} in container {container}")
        try:
            counted = _Counting(out)
            _tar_writer(node, "" if contents else _basename(node), None)(counted)  # type: ignore[arg-type]
            out.flush()
            return CopyResult(counted.size)
        finally:
            node.close()


def extract_to_container(merged: str, stream: BinaryIO, dest: str, *, archive: bool = False,
                         container: str = "") -> CopyResult:
    """``cp - CTR:DEST``: unpack a tar from ``stream`` into the directory ``dest``."""
    with RootFS(merged) as rootfs:
        node = _locate(rootfs, dest, follow=True)
        if node is None:
            raise NotFound(f"Could not find the file {dest} in container {container}")
        try:
            if not node.is_dir:
                raise InvalidArgument(f"extraction point is not a directory: {dest}")
            dest_dir = node.open_dir()
        finally:
            node.close()
        try:
            owner = None if archive else _owner_into_container()
            return CopyResult(_pump(_retar(stream, owner), dest_dir))
        finally:
            os.close(dest_dir)
