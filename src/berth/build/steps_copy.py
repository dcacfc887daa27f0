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
(``openat2(RESOLVE_IN_ROOT)``) and every node below it is replaced, not followed, when it
is in the way.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth.build.plan import Step
from berth.build.steps_meta import join_workdir
from berth.errors import BerthError, DockerfileError

if TYPE_CHECKING:  # pragma: no cover
    from berth.build.executor import BuildSession
    from berth.build.imagestate import ImageState
    from berth.images.ingest import IngestedLayer

_ARCHIVE_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


@dataclass
class Source:
    """One resolved source: ``name`` as the user wrote/matched it, ``path`` on the host,
    and how to list a directory's contents (relative name, host path), parents first."""

    name: str
    path: str
    listing: "Iterator[tuple[str, str]] | None" = None
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


def copy_step(s: "BuildSession", state: ImageState, step: Step, sources: list[Source],
              heredocs: list[tuple[str, bytes]]) -> IngestedLayer | None:
    """Do the copy on an overlay of ``state``; the layer it made (store lock held)."""
    from berth.build.workspace import Workspace, image_lowers

    ws = Workspace(s.store, image_lowers(s.store, state.image_id), kind="copy")
    try:
        merged = ws.mount()
        dest, as_dir = destination(step, state.config.get("WorkingDir"))
        owner = parse_chown((step.flags.get("chown") or [None])[-1], merged)
        mode = parse_chmod((step.flags.get("chmod") or [None])[-1])
        count = len(sources) + len(heredocs)
        if count > 1 and not as_dir:
            raise DockerfileError(f"Dockerfile:{step.line}: When using {step.name} with more "
                                  "than one source file, the destination must be a "
                                  "directory and end with a /")
        w = _Writer(merged, owner, mode)
        for name, data in heredocs:
            target = posixpath.join(dest, name) if as_dir else dest
            w.write_bytes(target, data)
        for src in sources:
            w.place(src, dest, as_dir)
        w.finish()
        return ws.layer(state.top_chain, epoch=s.epoch)
    finally:
        ws.close()


class _Writer:
    """Writes nodes under ``merged`` without following any symlink of the image."""

    def __init__(self, merged: str, owner: tuple[int, int], mode: int | None) -> None:
        self.merged = merged
        self.owner = owner
        self.mode = mode
        self.dir_times: list[tuple[str, int, int]] = []

    def resolve(self, path: str) -> str:
        return resolve_in_root(self.merged, path)

    def mkdirs(self, host: str) -> None:
        """Create ``host`` and missing parents (owned by --chown, 0755)."""
        missing = []
        p = host
        while not os.path.isdir(p) or os.path.islink(p):
            if os.path.lexists(p):
                os.unlink(p)  # a file or symlink where a directory must be
            missing.append(p)
            p = os.path.dirname(p)
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            os.chown(d, *self.owner)

    def _clear(self, host: str, want_dir: bool) -> bool:
        """Remove what is in the way; True when a directory already stands there."""
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if want_dir:
                return True
            import shutil

            shutil.rmtree(host)
            return False
        os.unlink(host)
        return False

    # -- writing --------------------------------------------------------------------
    def write_bytes(self, dest: str, data: bytes) -> None:
        host = self.resolve(dest)
        self.mkdirs(os.path.dirname(host))
        self._clear(host, False)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
        os.chown(host, *self.owner)
        os.chmod(host, self.mode if self.mode is not None else 0o644)

    def place(self, src: Source, dest: str, as_dir: bool) -> None:
        if src.extract:
            self._extract(src, self.resolve(dest))
            return
        if stat.S_ISDIR(os.stat(src.path).st_mode):
            host = self.resolve(dest)
            self.mkdirs(host)
            for rel, path in src.listing or iter(()):
                self._node(path, os.path.join(host, rel))
            return
        target = dest
        if as_dir or os.path.isdir(self.resolve(dest)):
            target = posixpath.join(dest, posixpath.basename(src.name.rstrip("/")) or "file")
        host = self.resolve(target)
        self.mkdirs(os.path.dirname(host))
        self._node(src.path, host, follow=True, mode=src.mode, mtime_ns=src.mtime_ns)

    def _node(self, path: str, host: str, *, follow: bool = False, mode: int | None = None,
              mtime_ns: int | None = None) -> None:
        st = os.stat(path) if follow else os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            if not self._clear(host, True):
                os.mkdir(host, 0o700)
            self._attrs(host, st, mode)
            self.dir_times.append((host, st.st_atime_ns, st.st_mtime_ns))
            return
        self._clear(host, False)
        if kind == stat.S_IFREG:
            _copy_file(path, host, follow)
        elif kind == stat.S_IFLNK:
            os.symlink(os.readlink(path), host)
            os.lchown(host, *self.owner)
            os.utime(host, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            return
        elif kind == stat.S_IFIFO:
            os.mkfifo(host)
        else:
            return  # sockets and devices do not belong in a build's COPY
        self._attrs(host, st, mode)
        mt = mtime_ns if mtime_ns is not None else st.st_mtime_ns
        os.utime(host, ns=(mt, mt), follow_symlinks=False)

    def _attrs(self, host: str, st: os.stat_result, mode: int | None) -> None:
        os.chown(host, *self.owner, follow_symlinks=False)
        m = mode if mode is not None else (self.mode if self.mode is not None
                                           else stat.S_IMODE(st.st_mode))
        os.chmod(host, m)

    def _extract(self, src: Source, host_dir: str) -> None:
        from berth.oci.layer_apply import apply_layer

        self.mkdirs(host_dir)
        with open(src.path, "rb") as raw:
            head = raw.read(6)
            raw.seek(0)
            if head.startswith(b"BZh"):
                import bz2

                stream = bz2.BZ2File(raw)
            elif head.startswith(b"\xfd7zXZ\x00"):
                import lzma

                stream = lzma.LZMAFile(raw)
            else:
                stream = raw  # type: ignore[assignment]
            apply_layer(stream, host_dir, whiteouts="flat")  # type: ignore[arg-type]

    def finish(self) -> None:
        """Directory mtimes last: writing their children moved them."""
        for host, atime, mtime in reversed(self.dir_times):
            os.utime(host, ns=(atime, mtime), follow_symlinks=False)


def resolve_in_root(root: str, path: str) -> str:
    """Host path for ``path`` inside ``root``: the existing prefix resolved in scope
    (symlinks followed but clamped to ``root``), the missing rest appended as written."""
    from berth.container.rootpath import open_in_root

    real_root = os.path.realpath(root)
    parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        done = "/"
        for i, part in enumerate(parts):
            cand = posixpath.join(done, part)
            try:
                fd = open_in_root(root_fd, cand, os.O_PATH)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return real_root + posixpath.join(cand, *parts[i + 1:])
                raise
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            if real != real_root and not real.startswith(real_root + "/"):
                raise BerthError(f"path {path} resolves outside the image")
            done = real[len(real_root):] or "/"
        return real_root + (done if done != "/" else "")
    finally:
        os.close(root_fd)


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


def _copy_file(src: str, dst: str, follow: bool) -> None:
    flags = os.O_RDONLY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    sfd = os.open(src, flags)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                      os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(sfd).st_size
            offset = 0
            while offset < size:
                n = os.sendfile(dfd, sfd, offset, min(size - offset, 1 << 30))
                if n == 0:
                    break
                offset += n
        finally:
            os.close(dfd)
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
