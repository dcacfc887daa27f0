"""``ADD <http(s) URL>``: download once per build into the store's tmp dir.

The download happens before the cache lookup, because the cache key must change when the
remote bytes change (Docker does the same: it fetches, then compares checksums). The file
lands with mode 0600 and the server's Last-Modified time, as Docker documents.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from berth.errors import BerthError, DigestMismatch

_CHUNK = 1 << 20


@dataclass
class Download:
    url: str
    path: str         # temp file; the caller removes it
    digest: str       # sha256:...
    name: str         # file name from the URL path
    mtime_ns: int


def fetch(url: str, tmp_dir: str, checksum: str | None = None,
          timeout: float = 60.0) -> Download:
    """Fetch ``url`` to a temp file; verify ``checksum`` (``sha256:...``) when given."""
    name = posixpath.basename(urllib.parse.urlsplit(url).path.rstrip("/")) or "index.html"
    path = os.path.join(tmp_dir, f"build-{os.getpid()}-dl-{os.urandom(6).hex()}")
    h = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "berth-build"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, \
                open(path, "xb") as out:
            modified = resp.headers.get("Last-Modified")
            while chunk := resp.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
    except BerthError:
        raise
    except Exception as e:  # noqa: BLE001 - URLError, HTTPError, timeouts: one message
        _unlink(path)
        raise BerthError(f"failed to download {url}: {e}") from None
    digest = "sha256:" + h.hexdigest()
    if checksum and checksum != digest:
        _unlink(path)
        raise DigestMismatch(f"digest mismatch for {url}: expected {checksum}, got {digest}")
    mtime = time.time_ns()
    if modified:
        try:
            mtime = int(parsedate_to_datetime(modified).timestamp()) * 1_000_000_000
        except (TypeError, ValueError):
            pass
    return Download(url, path, digest, name, mtime)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
