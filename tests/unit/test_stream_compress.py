"""Push-side compression: valid streams, equal bytes for equal input, levels checked."""

from __future__ import annotations

import gzip
import io
import os

import pytest
import zstandard

from berth.errors import InvalidArgument
from berth.oci import stream_compress
from berth.oci.stream_compress import compress_stream

# compressible text plus incompressible noise, over several 1 MiB blocks
DATA = (b"berth layer line\n" * 150_000) + os.urandom(700_000) + b"tail" * 1000


def _decompress(fmt: str, data: bytes) -> bytes:
    if fmt == "gzip":
        return gzip.decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.parametrize("fmt,level", [("gzip", 1), ("gzip", 3), ("gzip", 6), ("gzip", 9),
                                       ("zstd", 3), ("zstd", 19)])
def test_round_trip_and_same_bytes_every_time(fmt: str, level: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    one = b"".join(compress_stream(io.BytesIO(DATA), fmt, level))
    assert _decompress(fmt, one) == DATA
    monkeypatch.setattr(stream_compress, "_threads", lambda: 1)  # another machine's cores
    assert b"".join(compress_stream(io.BytesIO(DATA), fmt, level)) == one
    if fmt == "gzip":
        assert one[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no mtime, no name


def test_empty_input_is_a_valid_empty_stream() -> None:
    for fmt, level in (("gzip", 2), ("gzip", 7), ("zstd", 3)):
        assert _decompress(fmt, b"".join(compress_stream(io.BytesIO(b""), fmt, level))) == b""


def test_levels_and_formats_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="gzip compression level must be 1..9, not 10"):
        list(compress_stream(io.BytesIO(b""), "gzip", 10))
    with pytest.raises(InvalidArgument, match="zstd compression level must be 1..22, not 0"):
        stream_compress.check("zstd", 0)
    with pytest.raises(InvalidArgument, match="unsupported compression format 'lz4'"):
        stream_compress.check("lz4", None)
    assert stream_compress.check("gzip", None) == 3
