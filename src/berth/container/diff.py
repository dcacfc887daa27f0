"""``diff``: what a container changed, read from its overlay upper dir against its image.

The upper dir already *is* the change set; only the verdict per path needs the image's
layers: a path also present below is Changed (``C``), otherwise Added (``A``); an overlay
whiteout (a 0/0 char device) is Deleted (``D``). An opaque directory (``trusted.overlay.
opaque=y``) means "everything below me was replaced": the directory is ``C``, what the
image had inside it and the upper dir does not is ``D``, and its new children are ``A``
(or ``C`` when the image had a node of that name too). Rootless, fuse-overlayfs' marker
files mean the same (:mod:`berth.oci.fuse_upper`) and are never listed themselves.

The upper dir belongs to the container, so it is walked through directory fds with
``O_NOFOLLOW``: a symlink swapped in mid-walk is listed as a symlink, never entered.
Lower layers are the store's, immutable, and probed one component at a time.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ..oci import fuse_upper
from ..oci.layer_apply import WHITEOUT_PREFIX, opaque_xattr

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

ADDED, CHANGED, DELETED = "A", "C", "D"
_KIND_CODE = {CHANGED: 0, ADDED: 1, DELETED: 2}  # the API's ``Kind`` numbers


@dataclass(frozen=True)
class Change:
    kind: str  # "A" | "C" | "D"
    path: str  # absolute, as the container sees it

    @property
    def code(self) -> int:
        return _KIND_CODE[self.kind]

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(target: int | str) -> bool:
    try:
        if isinstance(target, int):
            return os.getxattr(target, opaque_xattr()) == b"y"
        return os.getxattr(target, opaque_xattr(), follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class Lowers:
    """The image's layers, topmost first, answering "does the image have this path?"."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs

    def has(self, parts: tuple[str, ...]) -> bool:
        for layer in self.dirs:
            verdict = self._probe(layer, parts)
            if verdict is not None:
                return verdict
        return False

    @staticmethod
    def _probe(layer: str, parts: tuple[str, ...]) -> bool | None:
        """True/False when this layer decides; None to ask the layer below."""
        path = layer
        for i, name in enumerate(parts):
            parent = path
            path = os.path.join(path, name)
            st = _lstat(path)
            if st is None:
                return False if i and _opaque(parent) else None
            if is_whiteout(st):
                return False
            if i == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False  # a file here hides anything deeper in the layers below
        return None

    def children(self, parts: tuple[str, ...]) -> set[str]:
        """Names the image shows inside directory ``parts`` (union over visible layers)."""
        names: set[str] = set()
        for layer in self.dirs:
            d = os.path.join(layer, *parts)
            try:
                entries = os.listdir(d)
            except OSError:
                continue
            names.update(n for n in entries if self.has(parts + (n,)))
        return names


def changes(upper: str, lowers: list[str], *, exclude: set[str] | None = None) -> list[Change]:
    """Every change in ``upper`` relative to ``lowers`` (topmost first), sorted by path.

    ``exclude`` holds container paths (``/etc/hosts``) that are skipped when they are
    only mount-point placeholders: absent from the image and empty.
    """
    walker = _Walker(Lowers(lowers), exclude or set())
    fd = os.open(upper, _DIR)
    try:
        walker.walk(fd, (), new=False)
    finally:
        os.close(fd)
    return sorted(walker.out, key=lambda c: c.path)


class _Walker:
    def __init__(self, lowers: Lowers, exclude: set[str]) -> None:
        self.lowers = lowers
        self.exclude = exclude
        self.out: list[Change] = []
        self.fuse = fuse_upper.active()  # rootless: the upper may be fuse-overlayfs'
        self._gone: set[str] = set()

    def deleted(self, _dfd: int, parts: tuple[str, ...], name: str) -> None:
        """Report ``name`` deleted once (fuse-overlayfs may mark it by device and file)."""
        path = "/" + "/".join(parts + (name,))
        if path not in self._gone:
            self._gone.add(path)
            self.out.append(Change(DELETED, path))

    def walk(self, dfd: int, parts: tuple[str, ...], *, new: bool) -> int:
        """Report the entries of directory ``dfd``; ``new``: nothing below existed before.

        Returns how many entries were skipped as placeholders, so a directory the
        runtime only copied up to hold a mount point does not show as changed.
        """
        skipped = 0
        for entry in os.scandir(dfd):
            name = entry.name
            cparts = parts + (name,)
            path = "/" + "/".join(cparts)
            st = entry.stat(follow_symlinks=False)
            gone = fuse_upper.marker(name, st) if self.fuse else None
            if gone is not None or is_whiteout(st):
                if gone != fuse_upper.SKIP:
                    self.deleted(dfd, parts, gone or name)
                continue
            existed = not new and self.lowers.has(cparts)
            if path in self.exclude and not existed and _placeholder(dfd, name, st):
                skipped += 1
                continue
            mark = len(self.out)
            self.out.append(Change(CHANGED if existed else ADDED, path))
            if not stat.S_ISDIR(st.st_mode):
                continue
            fd = os.open(name, _DIR, dir_fd=dfd)
            try:
                opaque = existed and (_opaque(fd) or (self.fuse and fuse_upper.opaque(fd)))
                if opaque:
                    present = set(os.listdir(fd))
                    if self.fuse:  # fuse-overlayfs' ``.wh.NAME`` files: NAME is reported
                        present |= {n[len(WHITEOUT_PREFIX):] for n in present
                                    if n.startswith(WHITEOUT_PREFIX)}
                    for gone in sorted(self.lowers.children(cparts) - present):
                        self.out.append(Change(DELETED, f"{path}/{gone}"))
                hidden = self.walk(fd, cparts, new=new or not existed)
            finally:
                os.close(fd)
            if existed and not opaque and hidden and len(self.out) == mark + 1:
                del self.out[mark]  # copied up only to hold mount placeholders
        return skipped


def _placeholder(dfd: int, name: str, st: os.stat_result) -> bool:
    """An empty file or directory, as the runtime leaves for a bind mount target."""
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    if not stat.S_ISDIR(st.st_mode):
        return False
    fd = os.open(name, _DIR, dir_fd=dfd)
    try:
        return not os.listdir(fd)
    finally:
        os.close(fd)


DEFAULT_MOUNT_TARGETS = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")


def mount_targets(bundle: str) -> set[str]:
    """Where the bundle mounts things: the runtime may leave empty placeholders there.

    Docker keeps such placeholders in a hidden init layer, so they never show in ``diff``
    nor land in a ``commit``; reading them from the bundle does the same here.
    """
    import json

    out = set(DEFAULT_MOUNT_TARGETS)
    try:
        with open(os.path.join(bundle, "config.json"), encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return out
    for m in spec.get("mounts") or []:
        dest = m.get("destination")
        if isinstance(dest, str) and dest.startswith("/"):
            out.add(os.path.normpath(dest))
    return out


def placeholders(upper: str, lowers: list[str], targets: set[str]) -> set[str]:
    """The mount targets that are mere placeholders in ``upper`` (relative, no ``/``)."""
    found = set()
    below = Lowers(lowers)
    for target in targets:
        parts = tuple(p for p in target.split("/") if p)
        if not parts or below.has(parts):
            continue
        try:
            pfd = os.open(os.path.join(upper, *parts[:-1]), _DIR)
        except OSError:
            continue
        try:
            st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
            if _placeholder(pfd, parts[-1], st):
                found.add("/".join(parts))
        except OSError:
            continue
        finally:
            os.close(pfd)
    return found
