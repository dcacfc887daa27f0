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
not hashed again on the way out.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Iterator

from berth.errors import DigestMismatch, InvalidArgument, InvalidManifest, NotFound, RegistryError
from berth.oci import mediatypes as mt
from berth.oci import reference
from berth.oci.digest import sha256_bytes
from berth.oci.manifest import Descriptor, Manifest, parse_manifest
from berth.oci.reference import Reference
from berth.registry.client import sources
from berth.registry.client.auth import repository_scope
from berth.registry.client.body import Cancelled
from berth.registry.client.progress import NullProgress, Progress, short_id
from berth.registry.client.session import Session
from berth.store.store import Store

DEFAULT_CONCURRENCY = 3
CHUNKED_THRESHOLD = 32 * 1024 * 1024
CHUNK_SIZE = 64 * 1024 * 1024
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
         progress: Progress | None = None,
         max_concurrent: int = DEFAULT_CONCURRENCY) -> list[PushResult]:
    """Push ``name`` (or every tag of its repository with ``all_tags``) to its registry."""
    progress = progress or NullProgress()
    targets = local_tags(store, name, all_tags=all_tags)
    repo = targets[0][0]
    progress.status(f"The push refers to repository [{repo.repository}]")
    with Session(repo.domain, root=store.root, tls_verify=tls_verify) as session:
        return [_Pusher(store, session, ref, image_id, progress, max_concurrent).run()
                for ref, image_id in targets]


class _Pusher:
    def __init__(self, store: Store, session: Session, ref: Reference, image_id: str,
                 progress: Progress, max_concurrent: int) -> None:
        self.store = store
        self.session = session
        self.ref = ref
        self.image_id = image_id
        self.progress = progress
        self.max_concurrent = max(1, max_concurrent)
        self.scopes = [repository_scope(ref.path, "pull,push")]
        self.cancel = threading.Event()
        self._paths: dict[str, str] = {}  # digest -> file to upload from (see _blob)

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
        from berth.images.onecopy import has_layer_blob

        for d in (*layers, doc.config):
            if not has_layer_blob(self.store, d.digest):
                raise NotFound(f"blob {d.digest} of {self.ref.familiar} is missing from the "
                               "store (run 'berth system check')")
        for d in layers:
            self.progress.status("Preparing", short_id(d.digest))
        self._blobs(layers)
        self._blob(doc.config, quiet=True)
        digest = self._manifest(raw, row["manifest_media_type"] or doc.media_type)
        with self.store.db.tx() as tx:
            tx.execute("INSERT OR REPLACE INTO repo_digests(repository, digest, image_id) "
                       "VALUES (?,?,?)", (self.ref.repository, digest, self.image_id))
        sources.record(self.store, self.ref.domain, self.ref.path,
                       [doc.config.digest, *(d.digest for d in layers)])
        return PushResult(self.ref, digest, len(raw))

    def _blobs(self, layers: list[Descriptor]) -> None:
        unique = list({d.digest: d for d in layers}.values())
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
    def _blob(self, desc: Descriptor, *, quiet: bool = False) -> None:
        sid = short_id(desc.digest)
        path = f"/v2/{self.ref.path}/blobs/{desc.digest}"
        resp = self.session.request("HEAD", path, scopes=self.scopes, follow_redirects=True)
        resp.close()
        if resp.status_code == 200:
            if not quiet:
                self.progress.done(sid, "Layer already exists")
            return
        if resp.status_code not in (404,):
            raise self.session.fail(resp, f"checking blob {desc.digest}")
        location = self._start_upload(desc, sid, quiet)
        if location is None:
            return  # mounted
        from berth.images.onecopy import materialized

        # a layer kept as tree + record is rebuilt (and verified) to a temp file to upload
        with materialized(self.store, desc.digest) as blob_path:
            self._paths[desc.digest] = blob_path
            try:
                self._upload(desc, location, sid, quiet)
            finally:
                self._paths.pop(desc.digest, None)

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
        resp = self.session.request(
            "PUT", str(url), scopes=self.scopes, content=body,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(length)})
        if resp.status_code not in (201, 204):
            raise self.session.fail(resp, f"uploading blob {desc.digest}")
        resp.close()
        if not quiet:
            self.progress.done(sid, "Pushed")

    def _start_upload(self, desc: Descriptor, sid: str, quiet: bool) -> str | None:
        """POST an upload (trying a mount first); the Location to send bytes to, or None."""
        src = sources.other_repository(self.store, self.ref.domain, desc.digest, self.ref.path)
        path = f"/v2/{self.ref.path}/blobs/uploads/"
        scopes = self.scopes
        if src is not None:
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
            raise self.session.fail(resp, f"starting upload of {desc.digest}")
        return resp.headers["location"]

    def _patch_chunks(self, location: str, desc: Descriptor, sid: str, quiet: bool) -> str:
        for start in range(0, desc.size, CHUNK_SIZE):
            end = min(start + CHUNK_SIZE, desc.size)
            resp = self.session.request(
                "PATCH", location, scopes=self.scopes,
                content=self._reader(desc, start, end, sid, quiet),
                headers={"Content-Type": "application/octet-stream",
                         "Content-Range": f"{start}-{end - 1}",
                         "Content-Length": str(end - start)})
            resp.close()
            if resp.status_code != 202:
                raise self.session.fail(resp, f"uploading blob {desc.digest}")
            location = resp.headers.get("location") or location
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
