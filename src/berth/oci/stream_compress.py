"""Compress a layer on several cores into a stream of chunks, with the same bytes every time.

``push`` compresses layers that are stored uncompressed while it uploads them, so the
compressor must (a) stream — no second full copy on disk, the upload reads what comes out;
(b) use every core, as pigz and Podman's pgzip do, because a single-threaded deflate of a
600 MB layer takes longer than sending it; and (c) be deterministic: the same layer, format
and level always give the same bytes, so a re-push finds the blob by digest (HEAD or a
cross-repository mount) and the manifest digest does not change.

* gzip levels 1-3 use ISA-L's threaded igzip (its output does not depend on the thread count);
* gzip levels 4-9 deflate 1 MiB blocks with zlib in a thread pool, each block primed with
  the previous 32 KiB as its dictionary and ended with a sync flush, as pigz does; the
  blocks concatenate into one valid deflate stream;
* zstd uses the library's own worker threads (output independent of their number).

Every gzip header is fixed (mtime 0, no name, OS "unknown"), so nothing but the input and
the level decides the output.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from berth.errors import InvalidArgument

FORMATS = ("gzip", "zstd")
DEFAULT_LEVELS = {"gzip": 3, "zstd": 3}
LEVEL_RANGES = {"gzip": (1, 9), "zstd": (1, 22)}
BLOCK = 1 << 20
_WINDOW = 32 * 1024
_READ = 1 << 20
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, OS 255


class Readable(Protocol):
    """What the compressors read from: anything with ``read(n)``."""

    def read(self, n: int = -1, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...


def check(fmt: str, level: int | None) -> int:
    """Validate a format and level (``None``: the format's default); the level to use."""
    if fmt not in FORMATS:
        raise InvalidArgument(f"unsupported compression format {fmt!r} "
                              f"(expected {' or '.join(FORMATS)})")
    lvl = DEFAULT_LEVELS[fmt] if level is None else level
    lo, hi = LEVEL_RANGES[fmt]
    if not lo <= lvl <= hi:
        raise InvalidArgument(f"{fmt} compression level must be {lo}..{hi}, not {lvl}")
    return lvl


def _threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


class _Sink:
    """Collects what a compressor writes (maybe from its own threads) until drained."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._lock = threading.Lock()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        with self._lock:
            self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        with self._lock:
            out, self._parts = b"".join(self._parts), []
        return out


def compress_stream(src: Readable, fmt: str, level: int | None = None) -> Iterator[bytes]:
    """Yield the compressed form of everything ``src`` reads, chunk by chunk."""
    lvl = check(fmt, level)
    if fmt == "zstd":
        return _zstd(src, lvl)
    if lvl <= 3:
        return _igzip(src, lvl)
    return _parallel_deflate(src, lvl)


def _pump(src: Readable, writer: Writable, sink: _Sink) -> Iterator[bytes]:
    while chunk := src.read(_READ):
        writer.write(chunk)
        if out := sink.drain():
            yield out
    writer.close()
    if out := sink.drain():
        yield out


def _igzip(src: Readable, level: int) -> Iterator[bytes]:
    from isal import igzip_threaded

    sink = _Sink()
    writer = igzip_threaded.open(  # type: ignore[no-untyped-call]
        sink, "wb", compresslevel=level, threads=_threads(), block_size=BLOCK)
    # igzip writes its own header with the current time; replace it with the fixed one
    first = True
    for out in _pump(src, writer, sink):
        if first:
            out = _GZIP_HEADER + out[10:]
            first = False
        yield out


def _zstd(src: Readable, level: int) -> Iterator[bytes]:
    import zstandard

    sink = _Sink()
    cctx = zstandard.ZstdCompressor(level=level, threads=_threads())
    writer = cctx.stream_writer(sink, closefd=False)  # type: ignore[arg-type]
    yield from _pump(src, writer, sink)


def _deflate_block(block: bytes, zdict: bytes, level: int, last: bool) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY,
                         zdict) if zdict else zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _parallel_deflate(src: Readable, level: int) -> Iterator[bytes]:
    """pigz's scheme: independent blocks primed with the previous block's last 32 KiB."""
    threads = _threads()
    crc, size = 0, 0
    pending: deque[Future[bytes]] = deque()
    yield _GZIP_HEADER
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="berth-deflate") as pool:
        prev_tail = b""
        block = _read_block(src)
        while True:
            nxt = _read_block(src) if block else b""
            last = not nxt
            crc = zlib.crc32(block, crc)
            size += len(block)
            pending.append(pool.submit(_deflate_block, block, prev_tail, level, last))
            prev_tail = block[-_WINDOW:]
            while len(pending) > 2 * threads or (pending and pending[0].done()):
                yield pending.popleft().result()
            if last:
                break
            block = nxt
        while pending:
            yield pending.popleft().result()
    yield struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


def _read_block(src: Readable) -> bytes:
    parts, n = [], 0
    while n < BLOCK:
        data = src.read(BLOCK - n)
        if not data:
            break
        parts.append(data)
        n += len(data)
    return b"".join(parts)
