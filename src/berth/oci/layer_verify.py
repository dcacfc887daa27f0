"""Check a layer stream against its diff ID without unpacking it.

A pull verifies every layer when it arrives — the compressed blob against the manifest
digest, the uncompressed tar against the config's diff ID — but writes only the blob; the
files are unpacked on first use (see :func:`berth.images.unpack.ensure_unpacked`), where
:func:`~berth.oci.layer_apply.apply_layer` checks the tar's members.
"""

from __future__ import annotations

from typing import BinaryIO

from berth.oci.compression import open_decompressed
from berth.oci.digest import CHUNK, DigestingReader
from berth.oci.layer_apply import ApplyResult, tapped
from berth.oci.tarsplit import TarSplitter


def verify_layer(stream: BinaryIO, *, expected_diff_id: str | None = None) -> ApplyResult:
    """Inflate and hash ``stream`` to EOF; ``size`` is the uncompressed tar's length and
    ``unpacked_size`` the sum of its regular files' sizes, the same figure
    :func:`~berth.oci.layer_apply.apply_layer` reports once the layer is unpacked."""
    counter = TarSplitter(record=False)
    reader = DigestingReader(tapped(open_decompressed(stream), counter.feed))
    while reader.read(CHUNK):
        pass
    if expected_diff_id is not None:
        reader.verify(expected_diff_id)
    return ApplyResult(diff_id=reader.digest, size=reader.size,
                       unpacked_size=counter.content_size)
