"""The build context: the files COPY and ADD may read, and nothing else.

Three shapes arrive from the CLI — a directory, a tar on stdin, or a bare Dockerfile on
stdin (no files at all) — and all three answer the same two questions the executor asks:
*which context paths does this COPY source pattern name?* (:meth:`resolve_sources`) and
*has anything those paths would copy changed?* (:meth:`content_hash`).

Safety: sources can never leave the context. ``..`` that climbs above the root is an
error; symlinks met while resolving a source are followed *inside* the root (an absolute
target is re-rooted, ``..`` stops at the root), like Docker's FollowSymlinkInScope. A tar
context is unpacked by our own member walk that refuses absolute names, ``..``, writing
through a symlinked parent and hard links that point outside the archive.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO

from berth.build.dockerignore import IgnoreMatcher, clean_path, read_context_file, read_dockerignore
from berth.errors import DockerfileError, InvalidArchive

__all__ = ["BuildContext", "ContextError"]

_MAGIC = re.compile(r"[*?\[\\]")


class ContextError(DockerfileError):
    """A COPY/ADD source that is missing, ignored or outside the build context."""


def _go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match`` for one path component."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                return False
            body = pattern[i + 1:end]
            body = "^" + body[1:] if body.startswith("^") else body
            out.append("[" + body.replace("[", "\\[") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.fullmatch("".join(out), name, re.DOTALL) is not None


class BuildContext:
    """A build context rooted at a host directory (``root=None``: no context at all)."""

    def __init__(self, root: str | None, ignore: IgnoreMatcher | None = None, *,
                 owns_root: bool = False, dockerfile_text: str | None = None) -> None:
        self.root = os.path.realpath(root) if root is not None else None
        self.ignore = ignore if ignore is not None else IgnoreMatcher([])
        self._owns_root = owns_root
        self.dockerfile_text = dockerfile_text

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | os.PathLike[str],
                 ignore: IgnoreMatcher | list[str] | None = None,
                 dockerfile_name: str = "Dockerfile") -> BuildContext:
        """A directory context; ``ignore=None`` reads its .dockerignore rules."""
        root = os.fspath(path)
        if not os.path.isdir(root):
            raise ContextError(f"unable to prepare context: path {root!r} not found")
        if ignore is None:
            ignore = read_dockerignore(root, dockerfile_name)
        elif isinstance(ignore, list):
            ignore = IgnoreMatcher(ignore)
        return cls(root, ignore)

    @classmethod
    def from_tar(cls, stream: IO[bytes], dockerfile_name: str = "Dockerfile",
                 tmp_dir: str | None = None) -> BuildContext:
        """A tar (optionally gzip/bzip2/xz) context from a stream, unpacked safely into a
        temporary directory that :meth:`close` removes. Its .dockerignore applies."""
        root = tempfile.mkdtemp(prefix="berth-context-", dir=tmp_dir)
        try:
            _safe_extract(stream, root)
            ignore = read_dockerignore(root, dockerfile_name)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, ignore, owns_root=True)

    @classmethod
    def from_dockerfile_only(cls, text: str) -> BuildContext:
        """``berth build - < Dockerfile``: the Dockerfile is all there is; COPY may only
        use ``--from``."""
        return cls(None, dockerfile_text=text)

    def close(self) -> None:
        """Remove an unpacked tar context (a directory context is left alone)."""
        if self._owns_root and self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self._owns_root = False

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------------------
    def read_dockerfile(self, name: str = "Dockerfile") -> str:
        """The Dockerfile text. It is read even when .dockerignore excludes it: the rules
        only limit what COPY/ADD see."""
        if self.dockerfile_text is not None:
            return self.dockerfile_text
        text = None
        if self.root is not None or os.path.isabs(name):
            text = read_context_file(self.root or "/", name)
        if text is None:
            raise ContextError(f"failed to read dockerfile: open {name}: "
                               "no such file or directory")
        return text

    def host_path(self, rel: str) -> str:
        """The host path for a context-relative name, symlinks followed inside the root."""
        if self.root is None:
            raise ContextError(_not_found(rel))
        return self._scoped(rel, follow_last=True)

    def _scoped(self, rel: str, *, follow_last: bool) -> str:
        """Host path of context name ``rel``: its symlinks followed inside the context
        (the one in-root walk of :mod:`berth.container.rootpath`), so the path returned
        holds no symlink except a final one when ``follow_last`` is false."""
        from berth.container.rootpath import scoped_path

        assert self.root is not None
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            canonical = scoped_path(fd, clean_path("/" + rel), follow_last=follow_last)
        except NotADirectoryError:
            raise ContextError(_not_found(rel)) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ContextError(f"too many levels of symbolic links: {rel}") from None
            raise
        finally:
            os.close(fd)
        return self.root if canonical == "/" else self.root.rstrip("/") + canonical

    # -- COPY / ADD sources -----------------------------------------------------------
    def resolve_sources(self, patterns: list[str], instruction: str = "COPY") -> list[str]:
        """Context-relative names (``.`` is the root) that COPY/ADD source patterns name.

        Patterns use Go ``filepath.Match`` per component (``**`` spans directories); a
        leading ``/`` and trailing ``/`` are ignored; climbing above the root is an error;
        ignored files are invisible, as if absent.
        """
        out: list[str] = []
        for pattern in patterns:
            cleaned = clean_path(pattern)
            if cleaned == ".." or cleaned.startswith("../"):
                raise ContextError(f"forbidden path outside the build context: {pattern}")
            cleaned = cleaned.lstrip("/") or "."
            if not _MAGIC.search(cleaned):
                if not self._visible(cleaned):
                    raise ContextError(_not_found(pattern))
                found = [cleaned]
            else:
                found = self._glob(cleaned)
                if not found:
                    raise ContextError(f"{instruction} failed: no source files were specified")
            for name in found:
                if name not in out:
                    out.append(name)
        return out

    def _visible(self, rel: str) -> bool:
        if self.root is None:
            return False
        if rel == ".":
            return True
        if self.ignore.matches(rel):
            return False
        try:
            return os.path.lexists(self._scoped(rel, follow_last=False))
        except ContextError:
            return False

    def _glob(self, pattern: str) -> list[str]:
        if self.root is None:
            return []
        candidates = [""]
        for part in pattern.split("/"):
            nxt: list[str] = []
            for base in candidates:
                try:
                    host = self._scoped(base, follow_last=True) if base else self.root
                except ContextError:
                    continue
                if part == "**":
                    nxt.append(base)
                    nxt.extend(self._descendants(base, host))
                    continue
                if not _MAGIC.search(part):
                    child = f"{base}/{part}" if base else part
                    if os.path.lexists(os.path.join(host, part)):
                        nxt.append(child)
                    continue
                try:
                    names = sorted(os.listdir(host))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                nxt.extend(f"{base}/{n}" if base else n for n in names if _go_match(part, n))
            candidates = list(dict.fromkeys(nxt))
        return [c for c in candidates if c and not self.ignore.matches(c)]

    def _descendants(self, base: str, host: str) -> list[str]:
        out: list[str] = []
        for dirpath, dirnames, filenames in os.walk(host):
            rel_dir = os.path.relpath(dirpath, host)
            prefix = base if rel_dir == "." else (f"{base}/{rel_dir}" if base else rel_dir)
            for name in sorted(dirnames) + sorted(filenames):
                out.append(f"{prefix}/{name}" if prefix else name)
        return out

    # -- change detection ---------------------------------------------------------
    def iter_files(self, source: str) -> Iterator[tuple[str, str]]:
        """``(context-relative name, host path)`` for a source and, for a directory,
        everything under it that .dockerignore does not hide — sorted, symlinks not
        followed (except the source itself, resolved inside the root)."""
        top = self.host_path(source)
        if not os.path.lexists(top):  # a link whose target is not in the context
            raise ContextError(_not_found(source))
        yield source, top
        if not os.path.isdir(top):
            return
        yield from self._walk(source, top)

    def _walk(self, rel: str, host: str) -> Iterator[tuple[str, str]]:
        try:
            names = sorted(os.listdir(host))
        except OSError:
            return
        for name in names:
            child_rel = name if rel in (".", "") else f"{rel}/{name}"
            child = os.path.join(host, name)
            is_dir = os.path.isdir(child) and not os.path.islink(child)
            if is_dir and self.ignore.can_skip_dir(child_rel):
                continue
            if not self.ignore.matches(child_rel):
                yield child_rel, child
            if is_dir:
                yield from self._walk(child_rel, child)

    def content_hash(self, sources: list[str]) -> str:
        """sha256 over everything the sources would copy: sorted names, file type, mode,
        uid/gid, symlink target and file bytes — never mtimes, so touching a file keeps
        the cache and changing one byte (through any hard link) breaks it."""
        h = hashlib.sha256()
        entries: dict[str, str] = {}
        for source in sources:
            for rel, host in self.iter_files(source):
                entries.setdefault(rel, host)
        for rel in sorted(entries):
            h.update(_entry_record(rel, entries[rel]))
        return "sha256:" + h.hexdigest()

    def __repr__(self) -> str:
        return f"BuildContext(root={self.root!r})"


def _not_found(pattern: str) -> str:
    return ("file not found in build context or excluded by .dockerignore: "
            f"stat {pattern}: file does not exist")


def _entry_record(rel: str, host: str) -> bytes:
    st = os.lstat(host)
    kind = stat.S_IFMT(st.st_mode)
    head = [rel, f"{kind:o}", f"{stat.S_IMODE(st.st_mode):o}", str(st.st_uid), str(st.st_gid)]
    if stat.S_ISLNK(st.st_mode):
        head.append(os.readlink(host))
    elif stat.S_ISREG(st.st_mode):
        fh = hashlib.sha256()
        with open(host, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                fh.update(chunk)
        head += [str(st.st_size), fh.hexdigest()]
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        head.append(f"{os.major(st.st_rdev)},{os.minor(st.st_rdev)}")
    return ("\0".join(head) + "\n").encode("utf-8", "surrogateescape")


def _safe_extract(stream: IO[bytes], root: str) -> None:
    """Unpack a context tar under ``root`` without ever writing outside it."""
    dir_modes: list[tuple[str, int]] = []
    as_root = os.geteuid() == 0
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.TarError as exc:
        raise InvalidArchive(f"invalid build context archive: {exc}") from None
    with tf:
        try:
            for member in tf:
                rel = _member_path(member.name)
                if rel is None:
                    continue
                path = _prepare_parent(root, rel)
                if member.isdir():
                    if os.path.lexists(path) and not os.path.isdir(path):
                        os.unlink(path)
                    if not os.path.lexists(path):
                        os.mkdir(path, 0o700)
                    dir_modes.append((path, member.mode & 0o7777))
                    continue
                _remove(path)
                if member.isreg():
                    src = tf.extractfile(member)
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o600)
                    with os.fdopen(fd, "wb") as out:
                        if src is not None:
                            shutil.copyfileobj(src, out)
                    os.chmod(path, member.mode & 0o7777)
                elif member.issym():
                    os.symlink(member.linkname, path)
                elif member.islnk():
                    target_rel = _member_path(member.linkname)
                    if target_rel is None:
                        raise InvalidArchive(f"invalid hard link in context: {member.name}")
                    target = _prepare_parent(root, target_rel, create=False)
                    if not os.path.isfile(target) or os.path.islink(target):
                        raise InvalidArchive(
                            f"hard link {member.name} points at a missing file")
                    os.link(target, path, follow_symlinks=False)
                    continue
                else:
                    continue  # devices and fifos have no place in a build context
                if as_root:
                    os.lchown(path, member.uid, member.gid)
                os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        except tarfile.TarError as exc:
            raise InvalidArchive(f"invalid build context archive: {exc}") from None
    for path, mode in reversed(dir_modes):
        os.chmod(path, mode | 0o700)


def _member_path(name: str) -> str | None:
    """A member name as a safe relative path; refuses absolute names and ``..``."""
    if name.startswith("/"):
        raise InvalidArchive(f"invalid build context archive: absolute path {name!r}")
    parts = [p for p in name.split("/") if p and p != "."]
    if any(p == ".." for p in parts):
        raise InvalidArchive(f"invalid build context archive: path {name!r} leaves the context")
    return "/".join(parts) or None


def _prepare_parent(root: str, rel: str, *, create: bool = True) -> str:
    """Ensure every parent of ``rel`` is a real directory (never a symlink) under root."""
    current = root
    parts = rel.split("/")
    for part in parts[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise InvalidArchive(
                f"invalid build context archive: {rel!r} would be written through a symlink")
        if not os.path.exists(current):
            if not create:
                break
            os.mkdir(current, 0o755)
        elif not os.path.isdir(current):
            raise InvalidArchive(f"invalid build context archive: {rel!r} has a file parent")
    return os.path.join(root, *parts)


def _remove(path: str) -> None:
    if os.path.islink(path) or os.path.isfile(path) or os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
