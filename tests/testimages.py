"""Test images made locally (never pulled): the busybox rootfs tar the fast tests use.

A module of its own, not conftest: sub-folders have conftests too, so ``from conftest
import`` would find whichever was imported last.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def busybox_rootfs_tar(path: Path) -> Path:
    """A minimal rootfs: busybox-static with its applets, passwd/group, /tmp, /root."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from make_busybox_rootfs import build
    finally:
        sys.path.pop(0)
    build(str(path))
    return path
