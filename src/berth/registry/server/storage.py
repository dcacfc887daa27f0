"""The registry's on-disk layout: content-addressed blobs plus per-repository links.

Lifecycle: bytes enter through an upload (``uploads/<id>/data``), are verified against
their digest, and only then renamed into ``blobs/<alg>/<hex>`` — the one copy every
repository shares. A repository *sees* a blob only through a link file; deleting a blob or
a manifest from a repository removes links, never shared bytes. Unlinked bytes are garbage
that :mod:`gc` reclaims. Every file that becomes visible is written elsewhere first
(``tmp/`` on the same filesystem), fsynced, then renamed: a crash never leaves a
half-written blob, link or tag where a reader could find it.

    <root>/blobs/<alg>/<hex>                              blob and manifest bytes
    <root>/repositories/<name>/_blobs/<alg>/<hex>         repo may serve this blob
    <root>/repositories/<name>/_manifests/<alg>/<hex>     manifest revision (holds media type)
    <root>/repositories/<name>/_tags/<tag>                tag (holds a digest)
    <root>/repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>   descriptor of a referrer
    <root>/uploads/<id>/                                  upload sessions in progress
    <root>/tmp/                                           staging for atomic writes

Names, tags and digests reaching this module were validated by :mod:`paths`; we check
names again (cheaply) because a path traversal here would be the worst bug we could have.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from berth.registry.server.paths import NAME_RE, TAG_RE, check_digest
from berth.store.fsutil import atomic_write, fsync_dir


def _split(digest: str) -> tuple[str, str]:
    alg, _, hexpart = digest.partition(":")
    return alg, hexpart


class Storage:
    """Blobs, links, manifests, tags and referrers of one registry directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.repos = self.root / "repositories"
        self.uploads = self.root / "uploads"
        self.tmp = self.root / "tmp"
        for d in (self.blobs / "sha256", self.blobs / "sha512", self.repos,
                  self.uploads, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    # -- atomic writes -------------------------------------------------------------------

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` so that readers see all of it or nothing."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(str(path), data, tmp_dir=str(self.tmp))

    # -- blobs ---------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        alg, hexpart = _split(check_digest(digest))
        return self.blobs / alg / hexpart

    def blob_size(self, digest: str) -> int | None:
        """Size of a stored blob, or None when the registry does not hold it."""
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def commit_blob(self, src: Path, digest: str) -> None:
        """Move verified bytes into the blob store (blocking: fsyncs; run in a thread).

        Two uploads of the same blob may finish together; each renames its own file over
        the same name with identical bytes, so the last rename wins harmlessly.
        """
        with open(src, "rb") as f:
            os.fsync(f.fileno())
        dest = self.blob_path(digest)
        os.replace(src, dest)
        fsync_dir(str(dest.parent))

    def put_blob_bytes(self, data: bytes, digest: str) -> None:
        """Store a small, already verified blob (a manifest) under its digest."""
        path = self.blob_path(digest)
        if not path.exists():
            self.write_atomic(path, data)

    def delete_blob(self, digest: str) -> int:
        """Remove shared bytes (GC only); return the bytes reclaimed."""
        path = self.blob_path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def iter_blobs(self) -> Iterator[tuple[str, int]]:
        """Every stored blob as (digest, size)."""
        for alg in ("sha256", "sha512"):
            d = self.blobs / alg
            for entry in os.scandir(d):
                if entry.is_file():
                    yield f"{alg}:{entry.name}", entry.stat().st_size

    # -- repositories --------------------------------------------------------------------

    def repo_dir(self, name: str) -> Path:
        if not NAME_RE.fullmatch(name):  # defence in depth: never a traversal
            raise ValueError(f"invalid repository name {name!r}")
        return self.repos / name

    def repo_exists(self, name: str) -> bool:
        return self.repo_dir(name).is_dir()

    def list_repositories(self, markers: tuple[str, ...] = ("_manifests",)) -> list[str]:
        """Names of repositories holding any of ``markers`` (default: a manifest), sorted."""
        out: list[str] = []
        for dirpath, dirnames, _ in os.walk(self.repos):
            if any(m in dirnames for m in markers):
                out.append(os.path.relpath(dirpath, self.repos).replace(os.sep, "/"))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(out)

    def _link(self, name: str, kind: str, digest: str) -> Path:
        alg, hexpart = _split(check_digest(digest))
        return self.repo_dir(name) / kind / alg / hexpart

    def link_blob(self, name: str, digest: str) -> None:
        path = self._link(name, "_blobs", digest)
        if not path.exists():
            self.write_atomic(path, digest.encode())

    def is_linked(self, name: str, digest: str) -> bool:
        return self._link(name, "_blobs", digest).is_file()

    def unlink_blob(self, name: str, digest: str) -> bool:
        try:
            self._link(name, "_blobs", digest).unlink()
            return True
        except FileNotFoundError:
            return False

    def iter_links(self, name: str, kind: str = "_blobs") -> Iterator[tuple[str, Path]]:
        """(digest, link path) of one repository's blob links or manifest revisions."""
        for alg in ("sha256", "sha512"):
            d = self.repo_dir(name) / kind / alg
            if d.is_dir():
                for entry in os.scandir(d):
                    yield f"{alg}:{entry.name}", Path(entry.path)

    # -- manifests -----------------------------------------------------------------------

    def put_manifest(self, name: str, digest: str, media_type: str, body: bytes) -> None:
        """Store manifest bytes exactly as pushed, then make the revision visible."""
        self.put_blob_bytes(body, digest)
        self.write_atomic(self._link(name, "_manifests", digest), media_type.encode())

    def get_manifest(self, name: str, digest: str) -> tuple[str, Path] | None:
        """(media type, path of the bytes) of a revision in ``name``, or None."""
        try:
            media_type = self._link(name, "_manifests", digest).read_text()
        except FileNotFoundError:
            return None
        path = self.blob_path(digest)
        return (media_type, path) if path.is_file() else None

    def delete_manifest(self, name: str, digest: str) -> bool:
        """Drop a revision and every tag of ``name`` that points at it."""
        try:
            self._link(name, "_manifests", digest).unlink()
        except FileNotFoundError:
            return False
        for tag in self.list_tags(name):
            if self.get_tag(name, tag) == digest:
                self.delete_tag(name, tag)
        return True

    # -- tags ----------------------------------------------------------------------------

    def _tag(self, name: str, tag: str) -> Path:
        if not TAG_RE.fullmatch(tag):
            raise ValueError(f"invalid tag {tag!r}")
        return self.repo_dir(name) / "_tags" / tag

    def set_tag(self, name: str, tag: str, digest: str) -> None:
        self.write_atomic(self._tag(name, tag), digest.encode())

    def get_tag(self, name: str, tag: str) -> str | None:
        try:
            return self._tag(name, tag).read_text().strip()
        except FileNotFoundError:
            return None

    def delete_tag(self, name: str, tag: str) -> bool:
        try:
            self._tag(name, tag).unlink()
            return True
        except FileNotFoundError:
            return False

    def list_tags(self, name: str) -> list[str]:
        """Tags in Go's ``sort.Strings`` order (byte-wise), as the spec asks."""
        d = self.repo_dir(name) / "_tags"
        try:
            return sorted(os.listdir(d))
        except FileNotFoundError:
            return []

    # -- referrers -----------------------------------------------------------------------

    def _referrer(self, name: str, subject: str, digest: str) -> Path:
        salg, shex = _split(check_digest(subject))
        alg, hexpart = _split(check_digest(digest))
        return self.repo_dir(name) / "_referrers" / salg / shex / f"{alg}-{hexpart}"

    def add_referrer(self, name: str, subject: str, descriptor: dict[str, Any]) -> None:
        path = self._referrer(name, subject, descriptor["digest"])
        self.write_atomic(path, json.dumps(descriptor).encode())

    def remove_referrer(self, name: str, subject: str, digest: str) -> None:
        path = self._referrer(name, subject, digest)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        try:
            path.parent.rmdir()
        except OSError:
            pass

    def list_referrers(self, name: str, subject: str) -> list[dict[str, Any]]:
        """Descriptors of manifests in ``name`` whose ``subject`` is ``subject``."""
        d = self._referrer(name, subject, subject).parent
        out: list[dict[str, Any]] = []
        try:
            entries = sorted(os.listdir(d))
        except FileNotFoundError:
            return out
        for entry in entries:
            try:
                out.append(json.loads((d / entry).read_bytes()))
            except (FileNotFoundError, ValueError):
                continue
        return out

    # -- uploads -------------------------------------------------------------------------

    def upload_dir(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def remove_upload(self, upload_id: str) -> None:
        shutil.rmtree(self.upload_dir(upload_id), ignore_errors=True)
