"""Digests: validation before a digest becomes a path, and hashing while bytes stream.

A digest string from outside (a manifest, an archive, a URL) is untrusted until
:func:`validate` has checked it: only then may it be joined into a filesystem path.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from berth.errors import DigestMismatch, InvalidDigest

_HEX_LEN = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha512):([0-9a-f]+)$")
_ID_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
# tarfile's stream mode grows and slices its buffer with bytes concatenation, so each small
# member costs a copy of the whole buffer: keep it small (1 MiB made 5,000 files 8x slower).
TAR_STREAM_BUFSIZE = 64 << 10


def validate(digest: str, *, algorithms: tuple[str, ...] = ("sha256",)) -> str:
    """Return ``digest`` unchanged if it is well formed, else raise :class:`InvalidDigest`."""
    m = _DIGEST_RE.fullmatch(digest or "")  # not match: "$" lets a trailing "\n" through
    if not m or m.group(1) not in algorithms or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        raise InvalidDigest(f"invalid digest: {digest!r}")
    return digest


def is_digest(value: str) -> bool:
    """True when ``value`` is a well-formed sha256 digest."""
    try:
        validate(value)
    except InvalidDigest:
        return False
    return True


def hex_of(digest: str) -> str:
    """The hex part of a validated digest (safe to use as a file name)."""
    return validate(digest, algorithms=tuple(_HEX_LEN)).split(":", 1)[1]


def is_full_hex_id(value: str) -> bool:
    """True for a full 64-hex image/container ID without the ``sha256:`` prefix."""
    return bool(_ID_HEX_RE.fullmatch(value))


def sha256_bytes(data: bytes) -> str:
    """Digest of an in-memory blob."""
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def hasher(digest_or_algorithm: str = "sha256"):  # type: ignore[no-untyped-def]
    """A fresh hash object for the algorithm of a digest (``sha256`` or ``sha512``)."""
    import hashlib

    algo = digest_or_algorithm.split(":", 1)[0]
    if algo not in _HEX_LEN:
        raise InvalidDigest(f"unsupported digest algorithm: {algo}")
    return hashlib.new(algo)


def sha256_file(path: str) -> tuple[str, int]:
    """Digest and size of a file, streamed."""
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


class DigestingReader:
    """Wraps a readable stream and hashes every byte that passes through it.

    Used so that one pass over a layer stream can at the same time extract it, store it
    and learn its digest, instead of reading 200 MB three times.
    """

    def __init__(self, raw: BinaryIO, algorithm: str = "sha256") -> None:
        import hashlib

        self._raw = raw
        self._h = hashlib.new(algorithm)
        self._algo = algorithm
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._h.update(data)
            self.size += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        n = self._raw.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self._h.update(memoryview(buf)[:n])
            self.size += n
        return n or 0

    def drain(self) -> None:
        """Read to EOF so the digest covers padding a tar reader may leave unread."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return f"{self._algo}:{self._h.hexdigest()}"

    def verify(self, expected: str, size: int | None = None) -> None:
        """Raise :class:`DigestMismatch` unless what was read matches ``expected``."""
        if self.digest != expected:
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {self.digest}")
        if size is not None and size >= 0 and self.size != size:
            raise DigestMismatch(f"size mismatch for {expected}: expected {size}, got {self.size}")
