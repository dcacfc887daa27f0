"""COPY and ADD: put files from the context, another stage/image, a here-doc or a URL into
the image, with Docker's destination rules.

Rules (Dockerfile reference): a relative destination is taken from WORKDIR; several
sources (or a wildcard matching several) need a destination ending in ``/``; a directory
source copies its *contents*; a file goes *into* a destination that ends in ``/`` or is an
existing directory, else becomes that path; owners are 0:0 unless ``--chown`` (a lone user
or uid means the same number for the group); modes and mtimes are kept unless ``--chmod``;
ADD unpacks a local tar (plain, gzip, bzip2, xz) and downloads http(s) URLs (mode 0600).

Writes go through the step's overlay (merged view), never through the image's own
symlinks to the host: the destination is resolved inside the rootfs first
(:mod:`berth.container.rootpath`: symlinks, dangling ones too, followed as Docker's
``FollowSymlinkInScope`` does but clamped to the root; missing directories made there),
and every node below it is created through directory fds and replaced, not followed,
when it is in the way.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, cast

from berth.build.plan import Step
from berth.build.steps_meta import join_workdir
from berth.container.rootpath import DirAttrs, RootFS
from berth.errors import DockerfileError

if TYPE_CHECKING:  # pragma: no cover
    from berth.build.executor import BuildSession
    from berth.build.imagestate import ImageState
    from berth.images.ingest import IngestedLayer

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Source:
    """One resolved source: ``name`` as the user wrote/matched it, ``path`` on the host,
    and how to list a directory's contents (relative name, host path), parents first."""

    name: str
    path: str
    listing: Iterator[tuple[str, str]] | None = None
    mode: int | None = None      # force this mode (downloads)
    mtime_ns: int | None = None  # force this mtime (downloads)
    extract: bool = False        # ADD of a local archive


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def destination(step: Step, workdir: str | None) -> tuple[str, bool]:
    """(absolute destination, whether it names a directory)."""
    raw = step.args[-1]
    as_dir = raw.endswith("/") or raw in (".", "..") or raw.endswith(("/.", "/.."))
    return join_workdir(workdir, raw), as_dir


def parse_chown(spec: str | None, rootfs: str) -> tuple[int, int]:
    """``--chown`` → (uid, gid); names from the image's passwd/group."""
    from berth.container.users import resolve_user

    if not spec:
        return 0, 0
    user, _, group = spec.partition(":")
    uid = int(user) if user.isdigit() else resolve_user(rootfs, user).uid
    if not group:
        return uid, uid
    gid = int(group) if group.isdigit() else resolve_user(rootfs, f"0:{group}").gid
    return uid, gid


def parse_chmod(spec: str | None) -> int | None:
    if not spec:
        return None
    try:
        mode = int(spec, 8)
    except ValueError:
        raise DockerfileError(f"invalid chmod parameter: {spec!r} (an octal mode)") from None
    if mode > 0o7777:
        raise DockerfileError(f"invalid chmod parameter: {spec!r}")
    return mode


def copy_step(s: BuildSession, state: ImageState, step: Step, sources: list[Source],
              heredocs: list[tuple[str, bytes]]) -> IngestedLayer | None:
    """Do the copy on an overlay of ``state``; the layer it made (store lock held)."""
    from berth.build.workspace import Workspace, image_lowers
    from berth.container.rootpath import RootFS

    ws = Workspace(s.store, image_lowers(s.store, state.image_id), kind="copy")
    try:
        merged = ws.mount()
        dest, as_dir = destination(step, state.config.get("WorkingDir"))
        owner = parse_chown(_last(step.flags.get("chown")), merged)
        mode = parse_chmod(_last(step.flags.get("chmod")))
        count = len(sources) + len(heredocs)
        if count > 1 and not as_dir:
            raise DockerfileError(f"Dockerfile:{step.line}: When using {step.name} with more "
                                  "than one source file, the destination must be a "
                                  "directory and end with a /")
        with RootFS(merged) as root:
            w = _Writer(root, owner, mode)
            try:
                for name, data in heredocs:
                    target = posixpath.join(dest, name) if as_dir else dest
                    w.write_bytes(target, data)
                for src in sources:
                    w.place(src, dest, as_dir)
                w.finish()
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    raise
                raise DockerfileError(f"{step.name} failed: cannot copy to {dest}: "
                                      f"{e.strerror or e}") from None
        return ws.layer(state.top_chain, epoch=s.epoch)
    finally:
        ws.close()


class _Writer:
    """Writes nodes into an image's rootfs through directory fds, never through a path.

    Destinations are resolved with :mod:`berth.container.rootpath` as Docker's builder
    does (symlinks followed, dangling ones too, but always inside the root; missing
    directories made there); below that every node is created relative to its parent's fd
    with ``O_NOFOLLOW``/``O_EXCL``, and whatever stands in the way is replaced, not followed.
    """

    def __init__(self, root: RootFS, owner: tuple[int, int], mode: int | None) -> None:
        self.root = root
        self.owner = owner
        self.mode = mode
        self.parents = DirAttrs(0o755, *owner)
        self.dir_times: list[tuple[str, int, int]] = []  # canonical in-root path, times

    def _parent(self, dest: str) -> tuple[int, str, str]:
        """(fd of the parent directory, name, canonical path) for a non-directory
        destination: a final symlink is followed inside the root, parents are made."""
        canonical = self.root.scoped(dest)
        parent, name = posixpath.split(canonical)
        if not name:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), dest)
        fd, _ = self.root.open_dir(parent, create=self.parents)
        return fd, name, canonical

    def _is_dir(self, dest: str) -> bool:
        try:
            fd = self.root.open(dest, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return False
        os.close(fd)
        return True

    def _clear(self, pfd: int, name: str, want_dir: bool) -> bool:
        """Remove what is in the way; True when a directory already stands there."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return True
            import shutil

            shutil.rmtree(name, dir_fd=pfd)
            return False
        os.unlink(name, dir_fd=pfd)
        return False

    # -- writing --------------------------------------------------------------------
    def write_bytes(self, dest: str, data: bytes) -> None:
        pfd, name, _ = self._parent(dest)
        try:
            self._clear(pfd, name, False)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600, dir_fd=pfd)
            with open(fd, "wb") as f:
                f.write(data)
                os.fchown(fd, *self.owner)
                os.fchmod(fd, self.mode if self.mode is not None else 0o644)
        finally:
            os.close(pfd)

    def place(self, src: Source, dest: str, as_dir: bool) -> None:
        if src.extract:
            fd, _ = self.root.open_dir(dest, create=self.parents)
            try:
                self._extract(src, f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            return
        if stat.S_ISDIR(os.stat(src.path).st_mode):
            fd, canonical = self.root.open_dir(dest, create=self.parents)
            dirs = _DirStack(self.root, canonical, fd, self.parents)
            try:
                for rel, path in src.listing or iter(()):
                    parent, name = posixpath.split(rel)
                    self._node(path, dirs.get(parent), name, posixpath.join(canonical, rel))
            finally:
                dirs.close()
            return
        target = dest
        if as_dir or self._is_dir(dest):
            target = posixpath.join(dest, posixpath.basename(src.name.rstrip("/")) or "file")
        pfd, name, canonical = self._parent(target)
        try:
            self._node(src.path, pfd, name, canonical, follow=True, mode=src.mode,
                       mtime_ns=src.mtime_ns)
        finally:
            os.close(pfd)

    def _node(self, path: str, pfd: int, name: str, canonical: str, *, follow: bool = False,
              mode: int | None = None, mtime_ns: int | None = None) -> None:
        """Copy the host node ``path`` to ``name`` in the directory ``pfd``."""
        st = os.stat(path) if follow else os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            if not self._clear(pfd, name, True):
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_OPEN, dir_fd=pfd)
            try:
                self._attrs(fd, st, mode)
            finally:
                os.close(fd)
            self.dir_times.append((canonical, st.st_atime_ns, st.st_mtime_ns))
            return
        self._clear(pfd, name, False)
        mt = mtime_ns if mtime_ns is not None else st.st_mtime_ns
        if kind == stat.S_IFREG:
            fd = _copy_file(path, pfd, name, follow)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(path), name, dir_fd=pfd)
            os.chown(name, *self.owner, dir_fd=pfd, follow_symlinks=False)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=pfd,
                     follow_symlinks=False)
            return
        elif kind == stat.S_IFIFO:
            os.mkfifo(name, 0o600, dir_fd=pfd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            try:  # an O_PATH fd takes no fchmod: go through its /proc link (no name lookup)
                if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                    raise FileExistsError(errno.EEXIST, "replaced while copying", name)
                self._attrs(f"/proc/self/fd/{fd}", st, mode)
                os.utime(f"/proc/self/fd/{fd}", ns=(mt, mt))
            finally:
                os.close(fd)
            return
        else:
            return  # sockets and devices do not belong in a build's COPY
        try:
            self._attrs(fd, st, mode)
            os.utime(fd, ns=(mt, mt))
        finally:
            os.close(fd)

    def _attrs(self, fd: int | str, st: os.stat_result, mode: int | None) -> None:
        os.chown(fd, *self.owner)
        m = mode if mode is not None else (self.mode if self.mode is not None
                                           else stat.S_IMODE(st.st_mode))
        os.chmod(fd, m)

    def _extract(self, src: Source, host_dir: str) -> None:
        from berth.oci.layer_apply import apply_layer

        with open(src.path, "rb") as raw:
            head = raw.read(6)
            raw.seek(0)
            if head.startswith(b"BZh"):
                import bz2

                stream = cast(BinaryIO, bz2.BZ2File(raw))
            elif head.startswith(b"\xfd7zXZ\x00"):
                import lzma

                stream = cast(BinaryIO, lzma.LZMAFile(raw))
            else:
                stream = raw
            apply_layer(stream, host_dir, whiteouts="flat")  # type: ignore[arg-type]

    def finish(self) -> None:
        """Directory mtimes last: writing their children moved them."""
        for canonical, atime, mtime in reversed(self.dir_times):
            parent, name = posixpath.split(canonical)
            try:  # a later source may have put something else there: then skip it
                pfd, _ = self.root.open_dir(parent)
                try:
                    fd = os.open(name or ".", _DIR_OPEN, dir_fd=pfd)
                finally:
                    os.close(pfd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as e:
                if e.errno == errno.ELOOP:
                    continue
                raise
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)


class _DirStack:
    """fds of the directories a tree copy writes into, the deepest last.

    Sources are listed depth-first, parents first, so the directory an entry goes into is
    the top of the stack or a child of it; one ``O_NOFOLLOW`` open per directory. A parent
    the listing skipped (hidden by .dockerignore, its child kept) is found, or made,
    through the root walk like any destination.
    """

    def __init__(self, root: RootFS, base: str, fd: int, attrs: DirAttrs) -> None:
        self.root = root
        self.base = base
        self.attrs = attrs
        self.stack: list[tuple[str, int]] = [("", fd)]

    def get(self, rel: str) -> int:
        while len(self.stack) > 1:
            top = self.stack[-1][0]
            if rel == top or rel.startswith(top + "/"):
                break
            os.close(self.stack.pop()[1])
        top, fd = self.stack[-1]
        if rel == top:
            return fd
        rest = rel[len(top) + 1:] if top else rel
        try:
            for part in rest.split("/"):
                fd = os.open(part, _DIR_PATH, dir_fd=fd)
                top = f"{top}/{part}" if top else part
                self.stack.append((top, fd))
        except OSError:
            fd, _ = self.root.open_dir(posixpath.join(self.base, rel), create=self.attrs)
            self.stack.append((rel, fd))
        return fd

    def close(self) -> None:
        while self.stack:
            os.close(self.stack.pop()[1])


def walk_tree(top: str, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(relative name, host path) under ``top``, sorted, parents first, links not followed."""
    try:
        names = sorted(os.listdir(top))
    except OSError:
        return
    for name in names:
        path = os.path.join(top, name)
        yield prefix + name, path
        if os.path.isdir(path) and not os.path.islink(path):
            yield from walk_tree(path, prefix + name + "/")


def _copy_file(src: str, pfd: int, name: str, follow: bool) -> int:
    """Copy the host file ``src`` to a new ``name`` in ``pfd``; the new file's fd."""
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    sfd = os.open(src, flags)
    try:
        dfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                      os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            size = os.fstat(sfd).st_size
            offset = 0
            while offset < size:
                n = os.sendfile(dfd, sfd, offset, min(size - offset, 1 << 30))
                if n == 0:
                    break
                offset += n
        except BaseException:
            os.close(dfd)
            raise
        return dfd
    finally:
        os.close(sfd)


def is_archive(path: str) -> bool:
    """ADD unpacks local tars: gzip, bzip2, xz by magic, or a plain tar's ustar header."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if any(head.startswith(m) for m in _ARCHIVE_MAGIC):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _last(values: list[str] | None) -> str | None:
    """The last of a repeated flag's values (``--chown a --chown b`` means b), or None."""
    return values[-1] if values else None
