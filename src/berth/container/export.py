"""``export``: the container's whole filesystem as one flat tar, written atomically.

The merged overlay mount already shows the filesystem the container sees (lower layers,
upper dir, whiteouts applied), so exporting is writing that tree as a plain tar with
:func:`berth.oci.layer_write.write_layer`, which walks by fd and never follows a symlink
the container may have planted. A file target is written to a temp file beside it and
renamed into place, so an interrupted export never leaves a truncated archive behind.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from berth.errors import BerthError
from berth.oci.layer_write import write_layer


def export_tree(merged: str, out: BinaryIO) -> int:
    """Write ``merged`` as a tar to ``out``; return the tar's size in bytes."""
    if not os.path.isdir(merged):
        raise BerthError("the container's filesystem is not mounted")
    return write_layer(merged, out, overlay_upper=False).size


def export_to_file(merged: str, path: str) -> int:
    """Export to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    target = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(target),
                       f".{os.path.basename(target)}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        with open(tmp, "xb") as f:
            size = export_tree(merged, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, target)
    except FileNotFoundError as err:
        _remove(tmp)
        raise BerthError(f"failed to export container: open {path}: "
                         f"{err.strerror.lower() if err.strerror else err}") from None
    except BaseException:
        _remove(tmp)
        raise
    return size


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
