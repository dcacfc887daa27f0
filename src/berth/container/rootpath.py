"""Resolve paths *inside* a container's rootfs without ever taking the host's view of them.

``docker cp`` runs with host privileges against a tree the container controls. Resolving
``/data/x`` as ``<merged>/data/x`` with the host's path walk lets a process in the container
swap ``/data`` for a symlink to ``/`` between our check and our use, and we would read or
write the host's files (CVE-2018-15664). So every lookup here starts from an fd of the
container root and is resolved by the kernel with ``openat2(RESOLVE_IN_ROOT)``: absolute
symlinks and ``..`` are clamped to that root, atomically. Kernels without openat2 get a
component-by-component walk with ``O_NOFOLLOW`` that expands symlinks itself, also clamped.

``build`` needs two things openat2 cannot give: Docker's ``FollowSymlinkInScope`` (a
*dangling* link is followed to where its target would be inside the root) and creating a
destination's missing directories there. :func:`walk_scoped` is that walk — the same one
the openat2 fallback uses — and :func:`scoped_path`/:func:`open_dir` wrap it.

What callers get back is a :class:`Node`: an fd of the *parent directory* plus a name that
was not a symlink when looked up. Everything after that is done relative to the parent fd
with ``O_NOFOLLOW``, so a later swap makes the operation fail, never escape.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import deque
from dataclasses import dataclass

SYS_OPENAT2 = 437  # the same number on every architecture (syscalls after 5.1 are unified)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40
_openat2_state: list[object] = []  # [callable] once probed, [None] when unavailable


@dataclass
class Node:
    """One filesystem node: ``name`` inside the directory ``pfd`` (``"."`` for a root).

    ``path`` is what to show a user. The fd belongs to the node; :meth:`close` it.
    """

    pfd: int
    name: str
    st: os.stat_result
    path: str

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    def open_dir(self) -> int:
        """An ``O_PATH`` fd of this directory, reached without following a symlink."""
        return os.open(self.name, _PATH_DIR | os.O_NOFOLLOW, dir_fd=self.pfd)

    def close(self) -> None:
        if self.pfd >= 0:
            os.close(self.pfd)
            self.pfd = -1


def _openat2():  # type: ignore[no-untyped-def]
    """The openat2 syscall through ctypes, or None when the kernel lacks it."""
    if _openat2_state:
        return _openat2_state[0]
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                    ("resolve", ctypes.c_uint64)]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(dirfd: int, path: str, flags: int) -> int:
        how = OpenHow(flags | os.O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        raw = os.fsencode(path) or b"."
        for _ in range(64):  # EAGAIN: a concurrent rename made the kernel give up; retry
            fd = libc.syscall(SYS_OPENAT2, ctypes.c_int(dirfd), ctypes.c_char_p(raw),
                              ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
            if fd >= 0:
                return int(fd)
            err = ctypes.get_errno()
            if err != errno.EAGAIN:
                raise OSError(err, os.strerror(err), path)
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)

    probe = os.open("/", _PATH_DIR)
    try:
        os.close(call(probe, ".", os.O_PATH))
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.EPERM):  # old kernel, or seccomp said no
            _openat2_state.append(None)
            return None
    finally:
        os.close(probe)
    _openat2_state.append(call)
    return call


@dataclass
class DirAttrs:
    """Mode and owner for directories a walk creates (a COPY destination's parents)."""

    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass
class Scoped:
    """Where a path led inside a root: the open directories down to the deepest existing
    one (``stack``, the root first, ``names`` their names below it), a final existing
    non-directory (``leaf``), and the components past the first missing one (``tail``,
    taken lexically, as Docker's ``FollowSymlinkInScope`` does). :meth:`close` the fds."""

    stack: list[int]
    names: list[str]
    leaf: str | None = None
    tail: list[str] | None = None

    @property
    def path(self) -> str:
        """The canonical in-root path: every symlink met replaced by its target."""
        parts = [*self.names, *([self.leaf] if self.leaf else []), *(self.tail or [])]
        return "/" + "/".join(parts)

    def take_dir(self) -> int:
        """The fd of the deepest directory reached (the caller owns it)."""
        fd = self.stack.pop()
        return fd

    def close(self) -> None:
        while self.stack:
            os.close(self.stack.pop())


def walk_scoped(root_fd: int, path: str, *, follow_last: bool = True,
                create: DirAttrs | None = None) -> Scoped:
    """Resolve ``path`` under ``root_fd`` one component at a time, never leaving the root.

    Every component is looked at with ``O_NOFOLLOW`` relative to its parent's fd; ``..``
    pops our own stack of directory fds (never the kernel's ``..``, which a moved directory
    could take outside the root); a symlink is read and its target spliced into the queue,
    an absolute target restarting from the root. A *dangling* symlink is followed too: its
    target is a path inside the root that does not exist yet. With ``create`` every missing
    component is made there as a directory (so ``WORKDIR /app`` through ``/app -> /host``
    makes ``<root>/host``), otherwise the rest is kept lexically in ``tail``.
    This is the one walk behind openat2's fallback, ``cp`` and ``build``.
    """
    parts = deque(p for p in path.split("/") if p not in ("", "."))
    w = Scoped([os.dup(root_fd)], [], None, [])
    tail: list[str] = []
    links = 0
    try:
        while parts:
            name = parts.popleft()
            if tail:  # past a missing component: nothing left to look up
                if name == "..":
                    tail.pop()
                else:
                    tail.append(name)
                continue
            if name == "..":
                if len(w.stack) > 1:
                    os.close(w.stack.pop())
                    w.names.pop()
                continue
            try:
                st = os.stat(name, dir_fd=w.stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    tail.append(name)
                    continue
                try:
                    os.mkdir(name, create.mode, dir_fd=w.stack[-1])
                except FileExistsError:
                    pass  # made meanwhile: look again below
                else:  # owner and mode (undoing the umask) through an fd, never a name
                    dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                                  os.O_CLOEXEC, dir_fd=w.stack[-1])
                    try:
                        os.fchown(dfd, create.uid, create.gid)
                        os.fchmod(dfd, create.mode)
                    finally:
                        os.close(dfd)
                st = os.stat(name, dir_fd=w.stack[-1], follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and (parts or follow_last):
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=w.stack[-1])
                if target.startswith("/"):
                    while len(w.stack) > 1:
                        os.close(w.stack.pop())
                    w.names.clear()
                parts.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if stat.S_ISDIR(st.st_mode):
                w.stack.append(os.open(name, _PATH_DIR | os.O_NOFOLLOW, dir_fd=w.stack[-1]))
                w.names.append(name)
                continue
            if parts:
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            w.leaf = name
        w.tail = tail
        return w
    except BaseException:
        w.close()
        raise


def _walk(root_fd: int, path: str, flags: int) -> int:
    """Fallback for openat2: :func:`walk_scoped`, then open what it found."""
    w = walk_scoped(root_fd, path)
    try:
        if w.tail:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if w.leaf is not None:
            return os.open(w.leaf, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=w.stack[-1])
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=w.stack[-1])
    finally:
        w.close()


def scoped_path(root_fd: int, path: str, *, follow_last: bool = True) -> str:
    """Docker's ``FollowSymlinkInScope``: the in-root path ``path`` leads to, every symlink
    (dangling ones too) followed inside the root, the missing rest kept as written."""
    w = walk_scoped(root_fd, path, follow_last=follow_last)
    try:
        return w.path
    finally:
        w.close()


def open_dir(root_fd: int, path: str, *, create: DirAttrs | None = None) -> tuple[int, str]:
    """(``O_PATH`` fd, canonical path) of the directory ``path`` leads to inside the root;
    made there, parents too, when missing and ``create`` is given.

    Raises FileNotFoundError (missing, no ``create``) or NotADirectoryError (a file is in
    the way) — never an fd outside the root.
    """
    w = walk_scoped(root_fd, path, create=create)
    try:
        if w.tail:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if w.leaf is not None:
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        canonical = w.path
        return w.take_dir(), canonical
    finally:
        w.close()


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """Open ``path`` as if ``root_fd`` were ``/`` (symlinks followed, all clamped)."""
    call = _openat2()
    rel = path.lstrip("/") or "."
    if call is not None:
        return call(root_fd, rel, flags)
    return _walk(root_fd, rel, flags)


def clean(path: str) -> str:
    """Lexically cleaned absolute container path (Docker's ``filepath.Clean`` in scope)."""
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


class RootFS:
    """A container root filesystem seen from the host, with every lookup kept inside it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fd = os.open(root, _PATH_DIR)
        self._real = os.readlink(f"/proc/self/fd/{self.fd}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RootFS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _canonical(self, path: str) -> str:
        """Where ``path`` leads inside the root after following every symlink (in scope)."""
        fd = open_in_root(self.fd, path, os.O_PATH)
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        if real == self._real:
            return "/"
        if not real.startswith(self._real.rstrip("/") + "/"):
            raise OSError(errno.EXDEV, "path resolves outside the container", path)
        return "/" + real[len(self._real.rstrip("/")) + 1:]

    def host_path(self, path: str) -> str:
        """The host's real path of the existing node ``path`` leads to, every symlink
        followed inside the root: a path with no symlink left in it (OSError if missing)."""
        canonical = self._canonical(clean(path))
        return self._real if canonical == "/" else self._real.rstrip("/") + canonical

    def scoped(self, path: str, *, follow_last: bool = True) -> str:
        """:func:`scoped_path` in this root (dangling links followed, missing rest kept)."""
        return scoped_path(self.fd, path, follow_last=follow_last)

    def open(self, path: str, flags: int) -> int:
        """:func:`open_in_root` in this root: an existing node, or an OSError."""
        return open_in_root(self.fd, path, flags)

    def open_dir(self, path: str, *, create: DirAttrs | None = None) -> tuple[int, str]:
        """:func:`open_dir` in this root."""
        return open_dir(self.fd, path, create=create)

    def locate(self, path: str, *, follow: bool) -> Node:
        """The node at ``path``; with ``follow`` a final symlink is followed (in scope).

        Raises FileNotFoundError/NotADirectoryError like the host's lstat would.
        """
        path = clean(path)
        if follow and path != "/":
            path = self._canonical(path)
        if path == "/":
            pfd = os.dup(self.fd)
            name = "."
        else:
            parent, name = posixpath.split(path)
            pfd = open_in_root(self.fd, parent, _PATH_DIR)
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except BaseException:
            os.close(pfd)
            raise
        return Node(pfd, name, st, path)


class HostFS:
    """The host side of a copy: paths as the invoking user means them (the user's trust)."""

    root = "/"

    def locate(self, path: str, *, follow: bool) -> Node:
        shown = path
        path = os.path.abspath(path)
        if follow:
            path = os.path.realpath(path)
        if path == "/":
            pfd, name = os.open("/", _PATH_DIR), "."
        else:
            parent, name = os.path.split(path)
            pfd = os.open(parent, _PATH_DIR)
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except BaseException:
            os.close(pfd)
            raise
        return Node(pfd, name, st, shown)

    def close(self) -> None:
        pass
