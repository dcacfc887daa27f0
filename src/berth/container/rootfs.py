"""Overlay mounts for container root filesystems.

The overlay options string must fit in one page (4096 bytes including the NUL). A deep
image with absolute layer paths blows past that around 40 layers, so lower layers can be
named by short symlinks (``<links_dir>/<id>`` -> layer diff dir) and the mount(2) call made
from inside ``links_dir`` with relative names, the way containers/storage does it.
"""

from __future__ import annotations

import errno
import os

from ..errors import RuntimeFailure

PAGE = 4096
MNT_DETACH = 2
_libc = None


def _c():
    """libc through ctypes, loaded on first use only (ctypes costs ~ms at import)."""
    global _libc
    if _libc is None:
        import ctypes
        # CDLL(None) is the already-loaded libc: no ctypes.util (which imports tempfile
        # and may run ldconfig) on the run path.
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _err() -> int:
    import ctypes
    return ctypes.get_errno()


def short_lowers(links_dir: str, lowerdirs: list[str]) -> list[str]:
    """Map each lower dir to the name of its symlink in ``links_dir`` (relative names).

    Raises when a layer has no link, since a silent absolute fallback would only fail later
    with an opaque EINVAL from the kernel.
    """
    by_target: dict[str, str] = {}
    with os.scandir(links_dir) as it:
        for e in it:
            if e.is_symlink():
                t = os.readlink(e.path)
                t = os.path.realpath(t if t.startswith("/") else os.path.join(links_dir, t))
                by_target[t] = e.name
    out = []
    for d in lowerdirs:
        name = by_target.get(os.path.realpath(d))
        if name is None:
            raise RuntimeFailure(f"no short link for layer {d} in {links_dir}")
        out.append(name)
    return out


def overlay_options(lowerdirs: list[str], upper: str | None, work: str | None) -> str:
    opts = "lowerdir=" + ":".join(d.replace(":", "\\:").replace(",", "\\,") for d in lowerdirs)
    if upper and work:
        opts += f",upperdir={upper},workdir={work}"
    from ..procs import in_userns

    if in_userns():  # rootless: trusted.* xattrs need host root (berth.rootless)
        opts += ",userxattr"
    return opts


def mount_overlay(lowerdirs: list[str], upper: str | None, work: str | None, target: str,
                  *, links_dir: str | None = None, readonly: bool = False) -> None:
    """Mount an overlay at ``target``; lowerdirs are ordered topmost first (kernel order).

    With ``links_dir`` the lower dirs are given by their short link names and the mount is
    made from inside ``links_dir``; otherwise absolute paths are used, and the short form is
    tried automatically when the absolute options would not fit in a page.
    Without upper/work the overlay is read-only (enough for ``image mount``-like uses).
    """
    if not lowerdirs:
        raise RuntimeFailure("overlay needs at least one lower layer")
    cwd = None
    opts = overlay_options(lowerdirs, upper, work)
    if links_dir or len(opts) >= PAGE:
        if not links_dir:
            raise RuntimeFailure(f"overlay options for {len(lowerdirs)} layers exceed a page "
                                 "and no short links directory was given")
        opts = overlay_options(short_lowers(links_dir, lowerdirs),
                               os.path.abspath(upper) if upper else None,
                               os.path.abspath(work) if work else None)
        cwd = links_dir
    if len(opts) >= PAGE:
        raise RuntimeFailure(f"overlay options too long ({len(opts)} bytes) for "
                             f"{len(lowerdirs)} layers")
    flags = 1 if readonly else 0  # MS_RDONLY
    old = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if cwd else -1
    try:
        if cwd:
            os.chdir(cwd)
        from ..procs import in_userns

        rc, e = -1, errno.EPERM
        if not (in_userns() and os.environ.get("BERTH_OVERLAY") == "fuse-overlayfs"):
            rc = _c().mount(b"overlay", os.fsencode(target), b"overlay", flags, opts.encode())
            e = _err() if rc != 0 else 0
        if rc != 0 and in_userns() and e in (errno.EPERM, errno.EINVAL, errno.ENODEV):
            # rootless on a kernel refusing overlay in a user namespace (berth.rootless)
            from ..rootless.fuse import mount_fuse_overlay

            mount_fuse_overlay(opts, target, readonly=readonly)
            rc = 0
    finally:
        if old >= 0:
            os.fchdir(old)
            os.close(old)
    if rc != 0:
        raise RuntimeFailure(f"mounting overlay at {target}: {os.strerror(e)}")


def unmount(target: str) -> None:
    """Unmount ``target``; busy mounts are lazily detached, non-mounts are ignored."""
    c = _c()
    path = os.fsencode(target)
    if c.umount2(path, 0) == 0:
        return
    e = _err()
    if e == errno.EBUSY:
        if c.umount2(path, MNT_DETACH) == 0:
            return
        e = _err()
    if e in (errno.EINVAL, errno.ENOENT):
        return  # not a mount point (any more)
    raise RuntimeFailure(f"unmounting {target}: {os.strerror(e)}")


def is_mounted(target: str) -> bool:
    """Whether ``target`` is a mount point in our mount namespace."""
    from ..store.tmpclean import unescape

    want = os.path.realpath(target)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            parts = line.split(" ", 5)
            if len(parts) > 4 and unescape(parts[4]) == want:
                return True
    return False
