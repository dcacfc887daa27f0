"""Blob upload sessions: stream request bodies to disk, hashing as the bytes pass.

An upload is an *ingestion*: ``uploads/<id>/data`` grows chunk by chunk (PATCH, or the
body of the closing PUT), a running hash follows it, and nothing is visible to pulls until
:meth:`Uploads.finish` has compared that hash with the digest the client claims and
renamed the file into the blob store. Each session owns its own file, so two clients
uploading the same blob at once never share bytes; the final rename is idempotent.

Bodies are never held whole in memory: we gather ~1 MiB from the socket, then hash and
write it on a worker thread while the event loop reads the next MiB (hashlib and
``os.write`` release the GIL), so one large push does not stall other clients.

Sessions live in memory for speed, with ``info.json`` beside the data so that a restarted
server can pick up a half-done upload (its hash is rebuilt from the data file).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.registry.server.errors import ApiError, digest_invalid, upload_unknown
from berth.registry.server.paths import ALGORITHMS
from berth.registry.server.storage import Storage

CHUNK = 1 << 20


@dataclass
class Upload:
    """One session: where its bytes go, how many arrived, and their running hash."""

    id: str
    name: str
    alg: str
    data: Path
    offset: int = 0
    hasher: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def range_header(self) -> str:
        """The spec's ``Range: 0-<last byte>`` (``0-0`` before the first byte, like Docker)."""
        return f"0-{max(self.offset - 1, 0)}"


def _write_all(fd: int, data: bytes, hasher: Any) -> None:
    """Worker-thread half of streaming: hash and write one gathered piece."""
    hasher.update(data)
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _hash_file(path: Path, alg: str) -> tuple[Any, int]:
    h = hashlib.new(alg)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h, size


class Uploads:
    """All live upload sessions of one registry."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._live: dict[str, Upload] = {}

    def start(self, name: str, alg: str = "sha256") -> Upload:
        """Open a new, empty session for repository ``name``."""
        if alg not in ALGORITHMS:
            raise digest_invalid(f"unsupported digest algorithm: {alg}")
        upload_id = uuid.uuid4().hex
        d = self.storage.upload_dir(upload_id)
        d.mkdir(parents=True)
        (d / "data").touch()
        (d / "info.json").write_text(json.dumps({"name": name, "alg": alg}))
        up = Upload(upload_id, name, alg, d / "data", 0, hashlib.new(alg))
        self._live[upload_id] = up
        return up

    async def get(self, name: str, upload_id: str) -> Upload:
        """The live session ``upload_id`` of ``name`` (reloaded from disk after a restart)."""
        up = self._live.get(upload_id)
        if up is None:
            up = await self._reload(upload_id)
        if up is None or up.name != name:
            raise upload_unknown(upload_id)
        return up

    async def _reload(self, upload_id: str) -> Upload | None:
        d = self.storage.upload_dir(upload_id)
        try:
            info = json.loads((d / "info.json").read_text())
            name, alg = str(info["name"]), str(info["alg"])
        except (OSError, ValueError, KeyError):
            return None
        if alg not in ALGORITHMS or not (d / "data").is_file():
            return None
        h, size = await asyncio.get_running_loop().run_in_executor(
            None, _hash_file, d / "data", alg)
        up = self._live.setdefault(upload_id, Upload(upload_id, name, alg, d / "data", size, h))
        return up

    async def append(self, up: Upload, stream: Any, expect: int | None = None) -> int:
        """Stream a request body onto the end of ``up``; return the bytes appended.

        On any failure (client gone, wrong length) the file and hash are rolled back to
        where they were, so a retry of the same chunk starts from a clean offset.
        """
        loop = asyncio.get_running_loop()
        start, saved = up.offset, up.hasher.copy()
        fd = os.open(up.data, os.O_WRONLY)
        pending: asyncio.Future[None] | None = None
        parts: list[bytes] = []
        gathered = total = 0
        try:
            os.lseek(fd, start, os.SEEK_SET)
            try:
                while True:
                    chunk = await stream.readany()
                    if not chunk:
                        break
                    parts.append(chunk)
                    gathered += len(chunk)
                    if gathered >= CHUNK:
                        if pending is not None:
                            await pending
                        pending = loop.run_in_executor(
                            None, _write_all, fd, b"".join(parts), up.hasher)
                        total += gathered
                        parts, gathered = [], 0
            finally:
                if pending is not None:  # never leave a worker writing to ``fd``
                    await asyncio.wait({pending})
            if pending is not None:
                pending.result()
            if parts:
                await loop.run_in_executor(None, _write_all, fd, b"".join(parts), up.hasher)
                total += gathered
            if expect is not None and total != expect:
                raise ApiError(400, "SIZE_INVALID",
                               f"expected {expect} bytes, received {total}")
        except BaseException:
            os.ftruncate(fd, start)
            up.hasher = saved
            raise
        finally:
            os.close(fd)
        up.offset = start + total
        return total

    async def finish(self, up: Upload, digest: str) -> None:
        """Verify ``digest`` against what arrived; on success the blob is stored and linked.

        A mismatch ends the session (its bytes are useless) with 400 DIGEST_INVALID.
        """
        alg = digest.split(":", 1)[0]
        if alg == up.alg:
            actual = f"{alg}:{up.hasher.hexdigest()}"
        else:  # client hashed with another algorithm than it announced: rehash the file
            h, _ = await asyncio.get_running_loop().run_in_executor(None, _hash_file, up.data, alg)
            actual = f"{alg}:{h.hexdigest()}"
        if actual != digest:
            self.cancel(up)
            raise digest_invalid("provided digest did not match uploaded content",
                                 detail={"expected": digest, "actual": actual})
        await asyncio.get_running_loop().run_in_executor(None, self._commit, up, digest)
        self.cancel(up)

    def _commit(self, up: Upload, digest: str) -> None:
        """Blocking half of :meth:`finish` (fsyncs): store the bytes unless already held."""
        if self.storage.blob_size(digest) is None:
            self.storage.commit_blob(up.data, digest)
        self.storage.link_blob(up.name, digest)

    def is_live(self, up: Upload) -> bool:
        return self._live.get(up.id) is up

    def cancel(self, up: Upload) -> None:
        """Forget a session and delete its bytes."""
        self._live.pop(up.id, None)
        self.storage.remove_upload(up.id)
