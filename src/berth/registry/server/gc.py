"""``registry gc``: mark everything some manifest reaches, sweep the rest.

Mark: every manifest revision of every repository is live, and so is everything it names —
config, layers, index children, subject. Sweep: blobs nobody marked, repository links that
point at bytes which no longer exist, revisions whose bytes are gone, and upload or
staging files abandoned long ago. Deleting a blob through the API only unlinks it; this is
where bytes are actually reclaimed.

Run it while the server is stopped or ``--read-only``: a blob uploaded but not yet named by
a manifest looks exactly like garbage (Docker's registry has the same rule).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from berth.registry.server.errors import ApiError
from berth.registry.server.paths import check_digest
from berth.registry.server.storage import Storage

UPLOAD_MAX_AGE = 24 * 3600
TMP_MAX_AGE = 3600


@dataclass
class GcReport:
    """What was (or, with dry run, would be) removed."""

    removed: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, what, bytes)

    @property
    def reclaimed(self) -> int:
        return sum(n for _, _, n in self.removed)


def _referenced(doc: Any) -> Iterator[str]:
    """Digests a stored manifest names, read loosely (it was validated at push time)."""
    if not isinstance(doc, dict):
        return
    descs: list[Any] = [doc.get("config"), doc.get("subject")]
    for key in ("layers", "manifests", "blobs"):
        if isinstance(doc.get(key), list):
            descs.extend(doc[key])
    for d in descs:
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            try:
                yield check_digest(d["digest"])
            except ApiError:
                continue


def _mark(st: Storage) -> set[str]:
    live: set[str] = set()
    for repo in st.list_repositories():
        for digest, _ in st.iter_links(repo, "_manifests"):
            live.add(digest)
            try:
                doc = json.loads(st.blob_path(digest).read_bytes())
            except (OSError, ValueError):
                continue
            live.update(_referenced(doc))
    return live


def _old_entries(d: os.PathLike[str] | str, max_age: float) -> Iterator[os.DirEntry[str]]:
    cutoff = time.time() - max_age
    for entry in os.scandir(d):
        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
            yield entry


def _size_of(path: str) -> int:
    if os.path.isfile(path):
        return os.lstat(path).st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def collect_garbage(storage_dir: str, *, dry_run: bool = False) -> GcReport:
    """Remove unreferenced blobs and dangling links from ``storage_dir``."""
    st = Storage(storage_dir)
    report = GcReport()
    live = _mark(st)
    gone: set[str] = set()
    for digest, size in sorted(st.iter_blobs()):
        if digest not in live:
            report.removed.append(("blob", digest, size))
            gone.add(digest)
            if not dry_run:
                st.delete_blob(digest)
    for repo in st.list_repositories(("_manifests", "_blobs")):
        for kind, label in (("_blobs", "link"), ("_manifests", "manifest")):
            for digest, link in st.iter_links(repo, kind):
                if digest in gone or not st.blob_path(digest).is_file():
                    report.removed.append((label, f"{repo}@{digest}", 0))
                    if not dry_run:
                        link.unlink(missing_ok=True)
    for entry in _old_entries(st.uploads, UPLOAD_MAX_AGE):
        report.removed.append(("upload", entry.name, _size_of(entry.path)))
        if not dry_run:
            if entry.is_dir(follow_symlinks=False):
                st.remove_upload(entry.name)
            else:
                os.unlink(entry.path)
    for entry in _old_entries(st.tmp, TMP_MAX_AGE):
        report.removed.append(("tmp", entry.name, _size_of(entry.path)))
        if not dry_run:
            os.unlink(entry.path)
    return report
