"""Layer compression: sniff, decompress and compress streams without ever seeking.

Layers arrive from registries, archives and pipes, so everything here works on
non-seekable streams: the magic bytes are read once and handed back in front of the
rest, and decompression is incremental so a 200 MB layer never sits in memory.
``zstandard`` is imported only when a zstd stream is actually met, to keep the
``run`` path's imports light.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO, cast

from berth.errors import InvalidArchive, InvalidArgument
from berth.oci.digest import CHUNK

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
KINDS = ("gzip", "zstd", "none")
DEFAULT_GZIP_LEVEL = 3  # deflate's fast path: layers are written far more than they are shrunk
DEFAULT_ZSTD_LEVEL = 3


def detect(prefix: bytes) -> str:
    """Name the compression of a stream from its first bytes: ``gzip``, ``zstd`` or ``none``."""
    if prefix.startswith(GZIP_MAGIC):
        return "gzip"
    if prefix.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class _Prefixed(io.RawIOBase):
    """The sniffed bytes followed by the rest of the stream: peeking without seek."""

    def __init__(self, prefix: bytes, raw: BinaryIO) -> None:
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n is None or n < 0:
                data, self._prefix = self._prefix + self._raw.read(), b""
                return data
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data
        return self._raw.read(n)


class _FramedReader(io.RawIOBase):
    """Incremental decompression of a stream of concatenated frames (gzip members, zstd frames).

    Written out rather than using :class:`gzip.GzipFile` or zstandard's stream reader so
    that a truncated or corrupt stream always surfaces as :class:`InvalidArchive` where it
    is met (zstandard's reader silently stops at a cut frame), and so that output per step
    stays bounded: a small crafted input cannot balloon into gigabytes in one call.
    """

    magic = b""
    name = ""
    feed = CHUNK

    def __init__(self, raw: io.RawIOBase | BinaryIO) -> None:
        self._raw = raw
        self._z = self._new()
        self._buf = b""  # compressed bytes read but not yet fed, from _pos on
        self._pos = 0
        self._pending = b""
        self._eof = False
        self._in_frame = True  # the sniffed magic guarantees a first frame

    def _new(self) -> _Decompressor:
        raise NotImplementedError

    def _decompress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def _unfed(self) -> bytes:
        """Input the last step did not consume (zlib's bounded output leaves some)."""
        return b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._eof:
            self._step()
        n = min(len(buf), len(self._pending))
        if n == len(self._pending):
            buf[:n], self._pending = self._pending, b""
        else:
            buf[:n] = self._pending[:n]
            self._pending = self._pending[n:]
        return n

    def _step(self) -> None:
        data = self._unfed()
        if not data:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._raw.read(CHUNK), 0
            data = self._buf[self._pos:self._pos + self.feed]
            self._pos += len(data)
        if not data:
            if self._in_frame:
                raise InvalidArchive(f"truncated {self.name} stream")
            self._eof = True
            return
        if not self._in_frame:
            if not data.startswith(self.magic[: len(data)]):
                # Trailing bytes that are not another frame: ignored, as gzip(1) does.
                self._eof = True
                return
            self._z = self._new()
            self._in_frame = True
        try:
            self._pending = self._decompress(data)
        except Exception as err:  # zlib.error / zstandard.ZstdError
            raise InvalidArchive(f"corrupt {self.name} stream: {err}") from None
        if self._z.eof:
            self._in_frame = False
            self._buf, self._pos = self._z.unused_data + self._buf[self._pos:], 0


class _Decompressor:
    """What both zlib's and zstandard's decompress objects offer (for the type checker)."""

    eof: bool
    unused_data: bytes


class _GzipReader(_FramedReader):
    magic = GZIP_MAGIC
    name = "gzip"

    def _new(self) -> _Decompressor:
        return cast(_Decompressor, zlib.decompressobj(16 + zlib.MAX_WBITS))

    def _decompress(self, data: bytes) -> bytes:
        return cast(bytes, self._z.decompress(data, CHUNK))  # type: ignore[attr-defined]

    def _unfed(self) -> bytes:
        return cast(bytes, self._z.unconsumed_tail)  # type: ignore[attr-defined]


class _ZstdReader(_FramedReader):
    magic = ZSTD_MAGIC
    name = "zstd"
    feed = 4096  # zstd can expand ~32768x; 4 KiB in keeps one step under ~128 MiB out

    def _new(self) -> _Decompressor:
        import zstandard  # lazy: only zstd layers pay for the import

        return cast(_Decompressor, zstandard.ZstdDecompressor().decompressobj())

    def _decompress(self, data: bytes) -> bytes:
        return cast(bytes, self._z.decompress(data))  # type: ignore[attr-defined]


def open_decompressed(stream: BinaryIO) -> BinaryIO:
    """A readable stream of the uncompressed bytes of ``stream`` (gzip, zstd or plain).

    Only reads forward, so pipes and HTTP bodies work as well as files.
    """
    prefix = b""
    while len(prefix) < len(ZSTD_MAGIC):
        more = stream.read(len(ZSTD_MAGIC) - len(prefix))
        if not more:
            break
        prefix += more
    kind = detect(prefix)
    raw = _Prefixed(prefix, stream)
    if kind == "none":
        return cast(BinaryIO, raw)
    inner: io.RawIOBase = _GzipReader(raw) if kind == "gzip" else _ZstdReader(raw)
    return cast(BinaryIO, io.BufferedReader(inner, buffer_size=CHUNK))


class _Passthrough(io.RawIOBase):
    """Writes straight to ``out``; close() flushes it but leaves it open for the caller."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._out.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._out.flush()
        super().close()


class _ZstdWriter(io.RawIOBase):
    """Ends the zstd frame on close() without closing ``out``."""

    def __init__(self, out: BinaryIO, level: int) -> None:
        import zstandard  # lazy: only zstd writers pay for the import

        self._out = out
        self._w = zstandard.ZstdCompressor(level=level).stream_writer(
            out, closefd=False, write_return_read=True)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._w.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._w.close()  # type: ignore[no-untyped-call]
            self._out.flush()
        super().close()


class _GzipWriter(io.RawIOBase):
    """GzipFile with a fixed header (mtime 0, no name) so equal input gives equal bytes."""

    def __init__(self, out: BinaryIO, level: int) -> None:
        self._out = out
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=out,
                                 compresslevel=level, mtime=0)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._gz.write(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._gz.close()  # writes the trailer; GzipFile never closes a passed fileobj
            self._out.flush()
        super().close()


def open_compressor(kind: str, out: BinaryIO, level: int | None = None) -> BinaryIO:
    """A writable that compresses into ``out``; its close() finishes the stream, not ``out``."""
    if kind == "none":
        return cast(BinaryIO, _Passthrough(out))
    if kind == "gzip":
        lvl = DEFAULT_GZIP_LEVEL if level is None else level
        if not 1 <= lvl <= 9:
            raise InvalidArgument(f"gzip compression level must be 1..9, not {lvl}")
        return cast(BinaryIO, _GzipWriter(out, lvl))
    if kind == "zstd":
        return cast(BinaryIO, _ZstdWriter(out, DEFAULT_ZSTD_LEVEL if level is None else level))
    raise InvalidArgument(f"unknown compression {kind!r} (expected one of {', '.join(KINDS)})")
