"""A blob's HTTP body as a readable stream, bounded by its descriptor and cancellable.

Layer bytes go from the socket straight into :func:`berth.images.ingest.ingest_layer`
(hash, store and unpack in one pass), which wants a file-like ``read(n)``. This adapter
gives it one over httpx's raw chunk iterator, and on the way

* refuses to read past the size the manifest announced, so a hostile registry cannot fill
  the disk before the digest check at the end would catch it;
* reports every chunk to the progress callback;
* stops promptly when a sibling download failed (``cancel`` is set), so a failed pull does
  not keep downloading the other layers;
* resumes a dropped connection where it broke: when the registry said ``Accept-Ranges:
  bytes`` and the caller can re-request, it asks for ``Range: bytes=N-`` from the bytes
  already received — and already hashed by the reader downstream, so the digest check at
  the end still covers every byte — instead of fetching the whole layer again;
* turns a connection that cannot be resumed into a :class:`RegistryUnreachable` with a
  plain message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from berth.errors import BerthError, DigestMismatch, RegistryUnreachable

if TYPE_CHECKING:  # pragma: no cover
    import httpx


class Cancelled(BerthError):
    """Another transfer of the same operation failed; this one stopped on purpose."""


class ChunkReader:
    """File-like ``read(n)``/``readinto`` over a source of chunks (``_next``; b"" at EOF).

    Reads are exact: fewer bytes than asked only at EOF, which tar readers rely on.
    """

    _pending = b""

    def _next(self) -> bytes:  # pragma: no cover - subclasses say where chunks come from
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._pending]
            while chunk := self._next():
                parts.append(chunk)
            self._pending = b""
            return b"".join(parts)
        if not self._pending:
            self._pending = self._next()
        if len(self._pending) >= n:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        parts, have = [self._pending], len(self._pending)
        while have < n and (chunk := self._next()):
            parts.append(chunk)
            have += len(chunk)
        joined = b"".join(parts)
        data, self._pending = joined[:n], joined[n:]
        return data

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


MAX_RESUMES = 5


class BodyReader(ChunkReader):
    """``read(n)`` over a streamed response; exact reads (fewer bytes only at EOF).

    ``reopen(offset)`` re-requests the blob with ``Range: bytes=offset-``; it is used only
    if the first response advertised ``Accept-Ranges: bytes``.
    """

    def __init__(self, resp: httpx.Response, *, limit: int, what: str,
                 on_bytes: Callable[[int], None] | None = None,
                 cancel: threading.Event | None = None,
                 reopen: Callable[[int], httpx.Response] | None = None) -> None:
        self._resp = resp
        ranges = resp.headers.get("accept-ranges", "").lower() == "bytes"
        self._reopen = reopen if ranges else None
        self._resumes = 0
        self._it: Iterator[bytes] = resp.iter_raw()
        self._limit = limit
        self._what = what
        self._on_bytes = on_bytes
        self._cancel = cancel
        self._pending = b""
        self._eof = False
        self.received = 0

    def _next(self) -> bytes:
        if self._eof:
            return b""
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled("cancelled")
        import httpx

        while True:
            try:
                chunk = next(self._it, b"")
                break
            except httpx.TransportError as e:
                self._resume(e)
        if not chunk:
            self._eof = True
            return b""
        self.received += len(chunk)
        if self.received > self._limit:
            raise DigestMismatch(f"{self._what}: registry sent more than the "
                                 f"{self._limit} bytes its descriptor announces")
        if self._on_bytes is not None:
            self._on_bytes(len(chunk))
        return chunk

    def _resume(self, err: Exception) -> None:
        """Continue after a dropped connection with a Range request, or raise."""
        from berth.registry.client.transport import describe

        lost = RegistryUnreachable(f"error reading {self._what}: connection lost: "
                                   f"{describe(err)}")
        if self._reopen is None or self._resumes >= MAX_RESUMES:
            raise lost from None
        self._resumes += 1
        self._resp.close()
        try:
            resp = self._reopen(self.received)
        except RegistryUnreachable:
            raise lost from None
        self._resp = resp
        expect = f"bytes {self.received}-"
        if resp.status_code == 206 and resp.headers.get("content-range", "").startswith(expect):
            self._it = resp.iter_raw()
            return
        resp.close()
        raise lost from None

    def close(self) -> None:
        self._resp.close()
