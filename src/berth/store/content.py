"""Content store: blobs (layers, configs, manifests) addressed by their sha256 digest.

Lifecycle of a blob, as in containerd:
  * a write is an *ingestion*: bytes go to a private temp file under ``tmp/`` while they
    are hashed; nothing is visible yet;
  * :meth:`Ingestion.commit` checks size and digest against what was expected, fsyncs and
    renames the file to ``blobs/sha256/<hex>``; only then can it be read or referenced;
  * an aborted or crashed ingestion leaves only a temp file, which :func:`Store.clean_tmp`
    removes once its owner process is gone;
  * blobs are deleted only by garbage collection under the exclusive store lock.
The directory is a valid OCI layout ``blobs/`` tree, so it can be served or archived as is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from berth.errors import DigestMismatch, NotFound
from berth.oci.digest import CHUNK, hex_of, validate
from berth.store.fsutil import fsync_dir, start_writeback
from berth.testpoints import pause

WRITEBACK_STEP = 8 << 20  # start writeback every 8 MiB so the final fsync is short


class ContentStore:
    """Read, ingest, list and delete blobs under ``<root>/blobs``."""

    def __init__(self, root: str, tmp: str) -> None:
        self.dir = os.path.join(root, "blobs", "sha256")
        self.tmp = tmp
        self._local = threading.local()
        os.makedirs(self.dir, exist_ok=True)

    @property
    def journal(self) -> TextIO | None:
        """Set by ``Store.ingesting()`` (per thread: an API server ingests in several):
        where each newly published digest is noted, so that a killed ingest's blobs (no
        row will ever name them) are found and removed."""
        j: TextIO | None = getattr(self._local, "journal", None)
        return j

    @journal.setter
    def journal(self, value: TextIO | None) -> None:
        self._local.journal = value

    def path(self, digest: str) -> str:
        """Path of a blob; the digest is validated before it becomes part of a path."""
        validate(digest)
        return os.path.join(self.dir, hex_of(digest))

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def ingest(self, expected: str | None = None, size: int | None = None, *,
               writeback: bool = True) -> Ingestion:
        """Start writing a blob; ``expected`` is verified at commit when given.

        ``writeback=False`` for a blob that will probably be dropped after verification
        (a layer kept as its tree): its pages are then not pushed to disk early.
        """
        if expected is not None:
            validate(expected)
        return Ingestion(self, expected, size, writeback=writeback)

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store an in-memory blob (config, manifest) and return its digest."""
        with self.ingest(expected, len(data)) as w:
            w.write(data)
            return w.commit()

    def put_stream(self, stream: BinaryIO, expected: str | None = None,
                   size: int | None = None) -> tuple[str, int]:
        with self.ingest(expected, size) as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
            digest = w.commit()
            return digest, w.size

    def list(self) -> Iterator[str]:
        for name in os.listdir(self.dir):
            if len(name) == 64 and not name.startswith("."):
                yield "sha256:" + name

    def delete(self, digest: str) -> int:
        """Remove a blob; return the bytes freed (0 if it was already gone)."""
        p = self.path(digest)
        try:
            n = os.stat(p).st_size
            os.unlink(p)
            return n
        except FileNotFoundError:
            return 0

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob: False when its bytes no longer match its name."""
        import hashlib

        h = hashlib.sha256()
        with self.open(digest) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        return "sha256:" + h.hexdigest() == digest


class Ingestion:
    """A blob being written: invisible until :meth:`commit` verifies and renames it.

    Also usable as a file-like sink (``write``) so it can sit at the end of a tee.
    """

    def __init__(self, store: ContentStore, expected: str | None, size: int | None, *,
                 writeback: bool = True) -> None:
        import hashlib

        self._store = store
        self._expected = expected
        self._expected_size = size
        self._h = hashlib.sha256()
        self.size = 0
        self.tmp_path = os.path.join(store.tmp, f"ingest-{os.getpid()}-{os.urandom(6).hex()}")
        self._f = open(self.tmp_path, "xb")  # noqa: SIM115 - closed in commit/abort
        self._written_back = 0
        self._writeback = writeback
        self._done = False

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self._h.update(data)
        self.size += len(data)
        if self._writeback and self.size - self._written_back >= WRITEBACK_STEP:
            self._f.flush()
            start_writeback(self._f.fileno(), self._written_back,
                            self.size - self._written_back)
            self._written_back = self.size
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def _verify(self) -> str:
        digest = self.digest
        if self._expected is not None and digest != self._expected:
            raise DigestMismatch(f"digest mismatch: expected {self._expected}, got {digest}")
        if self._expected_size is not None and self._expected_size >= 0 \
                and self.size != self._expected_size:
            raise DigestMismatch(f"size mismatch for {digest}: expected "
                                 f"{self._expected_size} bytes, got {self.size}")
        return digest

    def verify_and_drop(self) -> str:
        """Check digest and size like :meth:`commit`, but keep nothing; return the digest.

        For a blob whose bytes the store keeps another way (a layer's tree + record).
        """
        try:
            digest = self._verify()
        finally:
            self.abort()
        pause("after-blob")  # fault tests: the layer's bytes are in, no row names them yet
        return digest

    def commit(self) -> str:
        """Verify, fsync and publish the blob; return its digest."""
        try:
            digest = self._verify()
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            final = self._store.path(digest)
            if os.path.exists(final):
                os.unlink(self.tmp_path)  # same bytes already stored
            else:
                journal = self._store.journal
                if journal is not None:
                    journal.write(digest + "\n")
                    journal.flush()
                os.rename(self.tmp_path, final)
                fsync_dir(self._store.dir)
        except BaseException:
            self.abort()
            raise
        self._done = True
        pause("after-blob")  # fault tests: a blob is stored, no row names it yet
        return digest

    def abort(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()  # flushes what is buffered: fails again on a full disk
            except OSError:
                pass
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
        self._done = True

    def __enter__(self) -> Ingestion:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()
