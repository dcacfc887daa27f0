"""fuse-overlayfs' own marks in an upper dir, read as the kernel overlay's ones.

Rootless berth falls back to fuse-overlayfs (:mod:`berth.rootless.fuse`), whose upper dir
differs from the kernel's: an opaque directory holds a ``.wh..wh..opq`` file (the xattr it
tries first needs privileges the user namespace lacks), a deletion is a 0/0 char device or,
where mknod is refused, an empty ``.wh.NAME`` file, and it leaves 0/0 devices named
``.wh.*`` that white out its own marker names. The layer writer and ``diff`` ask this module
so those files become OCI whiteouts, exactly like kernel overlay's, and never a regular file
in a layer. Only a process inside the rootless user namespace reads an upper dir this way:
root's kernel-overlay uppers keep refusing ``.wh.`` names a container made.
"""

from __future__ import annotations

import os
import stat

from berth.oci.layer_apply import OPAQUE_MARKER, WHITEOUT_PREFIX

# fuse-overlayfs tries these in turn (the first two need privileges a user namespace lacks)
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque")
PRIVATE_XATTR = "user.fuseoverlayfs."  # its bookkeeping (origin, opaque): never in a layer
SKIP = ""


def active() -> bool:
    """Whether upper dirs here may be fuse-overlayfs ones: only in the rootless namespace."""
    from berth.procs import in_userns

    return in_userns()


def marker(name: str, st: os.stat_result) -> str | None:
    """For a ``.wh.``-named entry: the name it whites out, :data:`SKIP`, or None (not ours).

    ``.wh..wh..opq`` and 0/0 devices with a ``.wh.`` name are bookkeeping (:data:`SKIP`;
    the opaque file is read by :func:`opaque`); an empty regular ``.wh.NAME`` deletes NAME.
    """
    if not name.startswith(WHITEOUT_PREFIX):
        return None
    if name == OPAQUE_MARKER or (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):
        return SKIP
    target = name[len(WHITEOUT_PREFIX):]
    if stat.S_ISREG(st.st_mode) and st.st_size == 0 and target not in ("", ".", ".."):
        return target
    return None


def opaque(dfd: int) -> bool:
    """Whether the open directory ``dfd`` is opaque by fuse-overlayfs' marker file or xattr."""
    try:
        st = os.stat(OPAQUE_MARKER, dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISREG(st.st_mode):
            return True
    except OSError:
        pass
    for key in OPAQUE_XATTRS:
        try:
            if os.getxattr(dfd, key) == b"y":
                return True
        except OSError:
            continue
    return False
