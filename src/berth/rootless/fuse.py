"""``fuse-overlayfs``: the rootless overlay where the kernel refuses one in a user namespace.

Kernels before 5.11 (and some distributions' policies) do not allow overlayfs mounts by a
user namespace's root. fuse-overlayfs (Debian ``fuse-overlayfs``) takes the same options,
reads the same whiteouts and ``user.overlay.opaque`` markers, and is unmounted the same
way (its daemon exits with the mount). ``BERTH_OVERLAY=fuse-overlayfs`` forces it, like
containers/storage's ``mount_program``. It needs ``/dev/fuse`` usable by the user.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import RuntimeFailure


def mount_fuse_overlay(opts: str, target: str, *, readonly: bool = False) -> None:
    """Mount with the kernel's overlay option string (``userxattr`` dropped) at ``target``.

    Runs in the caller's working directory, so short relative lower names keep working.
    """
    prog = shutil.which("fuse-overlayfs")
    if prog is None:
        raise RuntimeFailure("the kernel refuses overlay in a user namespace and "
                             "fuse-overlayfs is not installed (Debian package fuse-overlayfs)")
    fopts = ",".join(o for o in opts.split(",") if o != "userxattr")
    if readonly:
        fopts += ",ro"
    p = subprocess.run([prog, "-o", fopts, target], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or ["failed"])[-1]
        hint = "" if os.access("/dev/fuse", os.R_OK | os.W_OK) else \
            " (/dev/fuse is not usable by this user; Debian's default mode is 0666)"
        raise RuntimeFailure(f"fuse-overlayfs at {target}: {msg}{hint}")
