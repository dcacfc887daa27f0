"""The three files every container and RUN step gets in ``/etc``, bound in from outside.

``hosts``, ``hostname`` and ``resolv.conf`` are written beside the bundle (or a build
step's workspace) and bind-mounted over the image's own, as Docker does. They are written
*in place* (same inode): a networked container's hosts file is rewritten while it runs, and
an atomic rename would leave the container looking at the old inode forever. Mode 0644,
whatever the umask, like Docker's.

A top-level module, not part of ``network/``: containers without a network (``--network
none``) and build steps write the same files without loading any network code.
"""

from __future__ import annotations

import os
from collections.abc import Container, Mapping
from typing import Any


def write_in_place(path: str, text: str) -> None:
    """Truncate-and-write keeping the inode; 0644."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def bind_etc_files(directory: str, files: Mapping[str, str], *,
                   read_only: Container[str] | None = None) -> list[dict[str, Any]]:
    """Write ``files`` (name -> text) into ``directory``; the bind mounts onto ``/etc``.

    With ``read_only`` every mount says whether it is read-only (the names in it are).
    """
    mounts = []
    for name, text in files.items():
        path = os.path.join(directory, name)
        write_in_place(path, text)
        m: dict[str, Any] = {"type": "bind", "source": path, "destination": f"/etc/{name}"}
        if read_only is not None:
            m["ro"] = name in read_only
        mounts.append(m)
    return mounts
