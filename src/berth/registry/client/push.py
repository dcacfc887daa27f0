"""``push``: a stored image goes to a registry under its tag, byte for byte.

The manifest sent is the stored manifest, unchanged, so the digest the registry reports is
the image's own manifest digest and a later pull by that digest gets the same image. Blobs
go first (layers several at once, then the config), the manifest last — a registry refuses
a manifest whose blobs it lacks. For each blob, cheapest first:

1. ``HEAD`` — the repository has it already: ``Layer already exists``;
2. a cross-repository mount, when our ``blob_sources`` table knows another repository on
   the same registry holding it: ``Mounted from …``;
3. an upload: one ``PUT`` for small blobs; for blobs over :data:`CHUNKED_THRESHOLD`,
   ``PATCH`` chunks with ``Content-Range`` and a closing ``PUT``, so a large layer never
   needs one giant request (proxies and registries cap request sizes and times).

Blobs come from the content store, where they were verified when they entered, so they are
not hashed again on the way out. Layers stored uncompressed are compressed while they are
uploaded (:mod:`berth.registry.client.push_layers`): their compressed digest is known only
at the end, so they go as one streamed ``PATCH`` and a closing ``PUT ?digest=``, and the
manifest sent lists the compressed descriptors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import BinaryIO

from berth.errors import DigestMismatch, InvalidArgument, InvalidManifest, NotFound, RegistryError
from berth.images.onecopy import blob_opener, materialized
from berth.oci import mediatypes as mt
from berth.oci import reference
from berth.oci.digest import sha256_bytes
from berth.oci.manifest import Descriptor, Manifest, parse_manifest
from berth.oci.reference import Reference
from berth.registry.client import push_layers, sources
from berth.registry.client.auth import repository_scope
from berth.registry.client.body import Cancelled
from berth.registry.client.progress import NullProgress, Progress, short_id
from berth.registry.client.push_layers import Compression, LayerPlan
from berth.registry.client.session import Session
from berth.store.store import Store

DEFAULT_CONCURRENCY = 3
CHUNKED_THRESHOLD = 32 * 1024 * 1024
CHUNK_SIZE = 64 * 1024 * 1024
COMPRESSED_CHUNK = 16 * 1024 * 1024  # a compressed layer's PATCH size (held in memory)
_READ = 1024 * 1024


@dataclass
class PushResult:
    """One pushed tag: Docker's ``<tag>: digest: sha256:… size: N`` line."""

    reference: Reference
    digest: str
    size: int

    @property
    def line(self) -> str:
        return f"{self.reference.tag}: digest: {self.digest} size: {self.size}"


def local_tags(store: Store, name: str, *, all_tags: bool) -> list[tuple[Reference, str]]:
    """The (tag reference, image ID) pairs a push of ``name`` covers."""
    ref = reference.parse(name)
    if ref.digest:
        raise InvalidArgument("cannot push a digest reference")
    if all_tags:
        if ref.tag:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        rows = store.db.query("SELECT name, image_id FROM tags WHERE repository=? ORDER BY tag",
                              (ref.repository,))
        if not rows:
            raise NotFound(f"An image does not exist locally with the tag: "
                           f"{ref.familiar_repository}")
        return [(reference.parse(r["name"]), r["image_id"]) for r in rows]
    ref = ref.with_default_tag()
    row = store.db.one("SELECT image_id FROM tags WHERE name=?", (str(ref),))
    if row is None:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar}")
    return [(ref, row["image_id"])]


def push(store: Store, name: str, *, all_tags: bool = False, tls_verify: bool = True,
         progress: Progress | None = None, max_concurrent: int = DEFAULT_CONCURRENCY,
         compression: Compression | None = None) -> list[PushResult]:
    """Push ``name`` (or every tag of its repository with ``all_tags``) to its registry."""
    progress = progress or NullProgress()
    compression = (compression or Compression()).validated()
    targets = local_tags(store, name, all_tags=all_tags)
    repo = targets[0][0]
    progress.status(f"The push refers to repository [{repo.repository}]")
    with Session(repo.domain, root=store.root, tls_verify=tls_verify) as session:
        return [_Pusher(store, session, ref, image_id, progress, max_concurrent,
                        compression).run()
                for ref, image_id in targets]


class _Pusher:
    def __init__(self, store: Store, session: Session, ref: Reference, image_id: str,
                 progress: Progress, max_concurrent: int, compression: Compression) -> None:
        self.store = store
        self.compression = compression
        self.docker = False
        self.session = session
        self.ref = ref
        self.image_id = image_id
        self.progress = progress
        self.max_concurrent = max(1, max_concurrent)
        self.scopes = [repository_scope(ref.path, "pull,push")]
        self.cancel = threading.Event()
        self._paths: dict[str, str] = {}  # digest -> file to upload from (see _blob)
        self._openers: dict[str, Callable[[], BinaryIO]] = {}  # decided before the workers

    def _opener(self, digest: str) -> Callable[[], BinaryIO]:
        return self._openers.get(digest) or blob_opener(self.store, digest)

    def run(self) -> PushResult:
        row = self.store.db.one("SELECT manifest_digest, manifest_media_type FROM images "
                                "WHERE id=?", (self.image_id,))
        if row is None:
            raise NotFound(f"No such image: {self.image_id}")
        raw = self.store.content.read(row["manifest_digest"])
        doc = parse_manifest(raw, row["manifest_media_type"])
        if not isinstance(doc, Manifest):
            raise InvalidManifest("pushing an image index is not supported")
        layers = [d for d in doc.layers if not mt.is_nondistributable(d.media_type)]
        for d in (*layers, doc.config):
            try:  # how each blob is read is decided here, in the calling thread
                self._openers[d.digest] = blob_opener(self.store, d.digest)
            except NotFound:
                raise NotFound(f"blob {d.digest} of {self.ref.familiar} is missing from the "
                               "store (run 'berth system check')") from None
        for d in layers:
            self.progress.status("Preparing", short_id(d.digest))
        media_type = row["manifest_media_type"] or doc.media_type
        self.docker = push_layers.keeps_docker_types(media_type, self.compression)
        plans = [push_layers.plan(self.store, d, self.compression, docker=self.docker)
                 for d in layers]
        self._blobs(plans)
        self._blob(LayerPlan(doc.config), quiet=True)
        raw, media_type = push_layers.rewrite_manifest(raw, media_type, plans,
                                                       docker=self.docker)
        digest = self._manifest(raw, media_type)
        with self.store.db.tx() as tx:
            tx.execute("INSERT OR REPLACE INTO repo_digests(repository, digest, image_id) "
                       "VALUES (?,?,?)", (self.ref.repository, digest, self.image_id))
        sources.record(self.store, self.ref.domain, self.ref.path,
                       [doc.config.digest, *(p.sent.digest for p in plans)])
        return PushResult(self.ref, digest, len(raw))

    def _blobs(self, plans: list[LayerPlan]) -> None:
        unique = list({p.stored.digest: p for p in plans}.values())
        with ThreadPoolExecutor(max_workers=self.max_concurrent,
                                thread_name_prefix="berth-push") as pool:
            futures = [pool.submit(self._blob, d) for d in unique]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                if not all(f.done() for f in futures) or any(
                        f.exception() for f in futures if f.done()):
                    self.cancel.set()
        errors = [f.exception() for f in futures if f.exception() is not None]
        real = [e for e in errors if not isinstance(e, Cancelled)]
        if errors:
            raise (real or errors)[0]  # type: ignore[misc]

    # -- one blob ---------------------------------------------------------------------------
    def _blob(self, p: LayerPlan, *, quiet: bool = False) -> None:
        sid = short_id(p.stored.digest)
        known = p.stored if p.fmt is None else p.target
        if known is not None:
            if self._exists(known.digest):
                if not quiet:
                    self.progress.done(sid, "Layer already exists")
                return
            location = self._start_upload(known, sid, quiet)
            if location is None:
                return  # mounted
        else:
            location = self._start_upload(None, sid, quiet)
            assert location is not None
        if p.fmt is not None:
            self._upload_compressed(location, p, sid, quiet)
            return
        # sent as stored: a layer kept as tree + record is rebuilt (and verified) to a temp
        # file, since chunked uploads read it by ranges
        with materialized(self.store, p.stored.digest, self._opener(p.stored.digest)) \
                as blob_path:
            self._paths[p.stored.digest] = blob_path
            try:
                self._upload(p.stored, location, sid, quiet)
            finally:
                self._paths.pop(p.stored.digest, None)

    def _upload(self, desc: Descriptor, location: str, sid: str, quiet: bool) -> None:
        if not quiet:
            self.progress.layer_start(sid, "Pushing", desc.size)
        if desc.size > CHUNKED_THRESHOLD:
            location = self._patch_chunks(location, desc, sid, quiet)
            body: Callable[[], Iterator[bytes]] | bytes = b""
            length = 0
        else:
            body = self._reader(desc, 0, desc.size, sid, quiet)
            length = desc.size
        import httpx

        url = httpx.URL(self.session.transport.url(location)).copy_merge_params(
            {"digest": desc.digest})
        self._finish_upload(str(url), body, length, desc.digest)
        if not quiet:
            self.progress.done(sid, "Pushed")

    def _finish_upload(self, url: str, body: Callable[[], Iterator[bytes]] | bytes,
                       length: int | None, digest: str) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        resp = self.session.request("PUT", url, scopes=self.scopes, content=body,
                                    headers=headers)
        if resp.status_code not in (201, 204):
            raise self.session.fail(resp, f"uploading blob {digest}")
        resp.close()

    def _exists(self, digest: str) -> bool:
        resp = self.session.request("HEAD", f"/v2/{self.ref.path}/blobs/{digest}",
                                    scopes=self.scopes, follow_redirects=True)
        resp.close()
        if resp.status_code not in (200, 404):
            raise self.session.fail(resp, f"checking blob {digest}")
        return resp.status_code == 200

    def _upload_compressed(self, location: str, p: LayerPlan, sid: str, quiet: bool) -> None:
        """Compress ``p``'s stored blob while uploading it; PUT with the digest it made.

        The compressed size is unknown until the end, so the bytes go as chunked PATCHes
        of at most :data:`COMPRESSED_CHUNK` (each held in memory, so a 401 retry can send
        it again) and the digest closes the upload.
        """
        import hashlib

        import httpx

        from berth.oci.compression import open_decompressed
        from berth.oci.stream_compress import compress_stream

        assert p.fmt is not None
        if not quiet:
            self.progress.layer_start(sid, "Pushing", p.stored.size)
        h = hashlib.sha256()
        size = 0
        pending = bytearray()
        with self._opener(p.stored.digest)() as raw:  # tree + record: rebuilt
            src = raw if mt.layer_compression(p.stored.media_type) == "none" \
                else open_decompressed(raw)
            counted = _Counting(src, lambda n: None if quiet else
                                self.progress.advance(sid, n), self.cancel)
            for chunk in compress_stream(counted, p.fmt, p.level):
                h.update(chunk)
                pending += chunk
                while len(pending) >= COMPRESSED_CHUNK:
                    part = bytes(pending[:COMPRESSED_CHUNK])
                    del pending[:COMPRESSED_CHUNK]
                    location = self._patch(location, size, part, p.stored.digest)
                    size += len(part)
        if pending:
            location = self._patch(location, size, bytes(pending), p.stored.digest)
            size += len(pending)
        digest = "sha256:" + h.hexdigest()
        url = httpx.URL(self.session.transport.url(location)).copy_merge_params(
            {"digest": digest})
        self._finish_upload(str(url), b"", 0, digest)
        push_layers.record(self.store, p, digest, size, docker=self.docker)
        if not quiet:
            self.progress.done(sid, "Pushed")

    def _patch(self, location: str, start: int,
               content: bytes | Callable[[], Iterator[bytes]], digest: str,
               length: int | None = None) -> str:
        """One chunk of an upload at ``start``; the Location to continue at."""
        n = len(content) if isinstance(content, bytes) else length
        assert n is not None
        resp = self.session.request(
            "PATCH", location, scopes=self.scopes, content=content,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Range": f"{start}-{start + n - 1}",
                     "Content-Length": str(n)})
        resp.close()
        if resp.status_code != 202:
            raise self.session.fail(resp, f"uploading blob {digest}")
        return resp.headers.get("location") or location

    def _start_upload(self, desc: Descriptor | None, sid: str, quiet: bool) -> str | None:
        """POST an upload (trying a mount first); the Location to send bytes to, or None."""
        src = None if desc is None else sources.other_repository(
            self.store, self.ref.domain, desc.digest, self.ref.path)
        path = f"/v2/{self.ref.path}/blobs/uploads/"
        scopes = self.scopes
        if src is not None and desc is not None:
            import httpx

            path = str(httpx.URL(path, params={"mount": desc.digest, "from": src}))
            scopes = [*self.scopes, repository_scope(src, "pull")]
        resp = self.session.request("POST", path, scopes=scopes,
                                    headers={"Content-Length": "0"})
        resp.close()
        if resp.status_code == 201 and src is not None:
            if not quiet:
                self.progress.done(sid, f"Mounted from {src}")
            return None
        if resp.status_code != 202 or not resp.headers.get("location"):
            what = desc.digest if desc is not None else "a layer"
            raise self.session.fail(resp, f"starting upload of {what}")
        return resp.headers["location"]

    def _patch_chunks(self, location: str, desc: Descriptor, sid: str, quiet: bool) -> str:
        for start in range(0, desc.size, CHUNK_SIZE):
            end = min(start + CHUNK_SIZE, desc.size)
            location = self._patch(location, start, self._reader(desc, start, end, sid, quiet),
                                   desc.digest, length=end - start)
        return location

    def _reader(self, desc: Descriptor, start: int, end: int, sid: str,
                quiet: bool) -> Callable[[], Iterator[bytes]]:
        """A replayable body: bytes ``start:end`` of the stored blob, read as they are sent."""
        path = self._paths.get(desc.digest) or self.store.content.path(desc.digest)

        def gen() -> Iterator[bytes]:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                pos = start
                while pos < end:
                    if self.cancel.is_set():
                        raise Cancelled("cancelled")
                    data = os.pread(fd, min(_READ, end - pos), pos)
                    if not data:
                        raise RegistryError(f"blob {desc.digest} shrank while being pushed")
                    pos += len(data)
                    if not quiet:
                        self.progress.advance(sid, len(data))
                    yield data
            finally:
                os.close(fd)
        return gen

    # -- manifest ---------------------------------------------------------------------------
    def _manifest(self, raw: bytes, media_type: str) -> str:
        digest = sha256_bytes(raw)
        resp = self.session.request(
            "PUT", f"/v2/{self.ref.path}/manifests/{self.ref.tag}", scopes=self.scopes,
            content=raw, headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201, 202):
            raise self.session.fail(resp, f"pushing manifest for {self.ref.familiar}")
        announced = resp.headers.get("docker-content-digest")
        resp.close()
        if announced and announced.startswith("sha256:") and announced != digest:
            raise DigestMismatch(f"registry stored the manifest as {announced}, not {digest}")
        return digest


class _Counting:
    """A reader that reports how many bytes went through and stops when told to."""

    def __init__(self, raw: BinaryIO, advance: Callable[[int], None],
                 cancel: threading.Event) -> None:
        self._raw = raw
        self._advance = advance
        self._cancel = cancel

    def read(self, n: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Cancelled("cancelled")
        data = self._raw.read(n)
        self._advance(len(data))
        return data
