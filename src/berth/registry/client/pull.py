"""``pull``: a reference on a registry becomes a stored, tagged image.

How the bytes flow, and why this way. The image config is fetched first; its ``diff_ids``
give every layer's ChainID before any layer is read, so layers need not be processed in
order. Each layer's HTTP body is streamed into the content store while a second thread
inflates it, checks the diff ID and writes its files into the layer store
(:mod:`berth.registry.client.unpack`), on up to ``max_concurrent`` layers at once — as
containerd's pull with unpack does — so a ``run`` right after ``pull`` starts as fast as a
run of a local image, with no silent unpack on first use. The compressed blob is kept (and
counted) so a re-push sends the very same bytes. Only the final :func:`~berth.images.ingest.commit_image` is ordered: one
transaction that records all layers bottom-up with the config, manifest, tag and digest.

Resuming: a layer whose blob was committed to the content store by an interrupted pull is
not downloaded again — it is verified from the stored blob. The whole pull holds the shared
``store.ingesting()`` lock, so garbage collection cannot delete such blobs under our feet.
A failed pull cancels its sibling transfers and discards their work;
nothing half-written becomes visible.
"""

from __future__ import annotations

import io
import platform as _platform
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, BinaryIO

from berth.errors import InvalidArgument, InvalidManifest, RegistryError, RegistryUnreachable
from berth.images.ingest import IngestedLayer, chain_id_of, commit_image, discard, ingest_layer
from berth.oci import mediatypes as mt
from berth.oci import reference
from berth.oci.manifest import Descriptor, Index, Manifest, normalize_arch, parse_manifest
from berth.oci.reference import Reference
from berth.registry.client import fetch, sources
from berth.registry.client.auth import repository_scope
from berth.registry.client.body import BodyReader, Cancelled
from berth.registry.client.progress import NullProgress, Progress, short_id
from berth.registry.client.session import Session
from berth.registry.client.unpack import ingest_streamed
from berth.store.store import Store

DEFAULT_CONCURRENCY = 3  # Docker's max-concurrent-downloads
_RETRIES = 2  # extra attempts for a layer whose connection dropped mid-body


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str | None) -> Platform | None:
    """``linux/arm64/v8`` → Platform; None means "the host's"."""
    if not text:
        return None
    parts = text.strip().lower().split("/")
    if len(parts) == 1 or not all(parts) or len(parts) > 3:
        raise InvalidArgument(f'invalid platform "{text}": expected os/arch[/variant]')
    arch, implied = normalize_arch(parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else implied)


def host_platform() -> Platform:
    arch, variant = normalize_arch(_platform.machine())
    return Platform("linux", arch, variant)


@dataclass
class PullResult:
    """One pulled reference: what Docker's final ``Digest:``/``Status:`` lines report."""

    reference: Reference
    digest: str  # of the top-level manifest or index the reference named
    image_id: str
    up_to_date: bool
    layers_downloaded: int = 0

    @property
    def status(self) -> str:
        name = self.reference.familiar
        if self.up_to_date:
            return f"Image is up to date for {name}"
        return f"Downloaded newer image for {name}"


def pull(store: Store, name: str, *, platform: str | None = None, all_tags: bool = False,
         tls_verify: bool = True, progress: Progress | None = None,
         max_concurrent: int = DEFAULT_CONCURRENCY) -> list[PullResult]:
    """Pull ``name`` (by tag or digest; every tag with ``all_tags``) into ``store``."""
    progress = progress or NullProgress()
    ref = reference.parse(name)
    if all_tags and (ref.tag or ref.digest):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    want = parse_platform(platform)
    scopes = [repository_scope(ref.path, "pull")]
    with Session(ref.domain, root=store.root, tls_verify=tls_verify) as session:
        if all_tags:
            refs = [ref.with_tag(t) for t in fetch.tags(session, ref, scopes)]
            if not refs:
                raise RegistryError(f"no tags found in {ref.familiar_repository}")
        else:
            refs = [ref.with_default_tag()]
        with store.ingesting():
            return [_Puller(store, session, r, want, progress, max_concurrent).run()
                    for r in refs]


class _Puller:
    """One reference's pull; the shared session and store come from :func:`pull`."""

    def __init__(self, store: Store, session: Session, ref: Reference,
                 want: Platform | None, progress: Progress, max_concurrent: int) -> None:
        self.store = store
        self.session = session
        self.ref = ref
        self.want = want
        self.progress = progress
        self.max_concurrent = max(1, max_concurrent)
        self.scopes = [repository_scope(ref.path, "pull")]
        self.cancel = threading.Event()
        self.downloaded = 0
        self._count_lock = threading.Lock()

    def run(self) -> PullResult:
        ref = self.ref
        target = ref.digest or ref.tag or "latest"
        self.progress.status(f"{target}: Pulling from {ref.path}")
        top = fetch.manifest(self.session, ref, target, self.scopes)
        doc = parse_manifest(top.raw, top.media_type)
        raw, media_type = top.raw, top.media_type
        if isinstance(doc, Index):
            plat = self.want or host_platform()
            chosen = doc.select_platform(plat.os, plat.architecture, plat.variant)
            sub = fetch.manifest(self.session, ref, chosen.digest, self.scopes,
                                 expected_size=chosen.size)
            doc = parse_manifest(sub.raw, sub.media_type)
            raw, media_type = sub.raw, sub.media_type
            if not isinstance(doc, Manifest):
                raise InvalidManifest("invalid manifest: an index entry points at an index")
        assert isinstance(doc, Manifest)
        media_type = media_type if mt.is_manifest(media_type) else doc.media_type
        config = self._config(doc)
        layers = self._layers(doc, config)
        if ref.tag:  # Docker: "up to date" unless the tag is new or moved
            row = self.store.db.one("SELECT image_id FROM tags WHERE name=?", (str(ref),))
            up_to_date = row is not None and row["image_id"] == doc.config.digest
        else:
            up_to_date = self.store.db.one("SELECT 1 FROM images WHERE id=?",
                                           (doc.config.digest,)) is not None
        result = commit_image(
            self.store, layers, config, manifest=raw, manifest_media_type=media_type,
            tags=[ref] if ref.tag and not ref.digest else [],
            repo_digest=Reference(ref.domain, ref.path, None, top.digest))
        sources.record(self.store, ref.domain, ref.path,
                       [doc.config.digest, *(d.digest for d in doc.layers)])
        return PullResult(ref, top.digest, result.image_id, up_to_date=up_to_date,
                          layers_downloaded=self.downloaded)

    # -- config ---------------------------------------------------------------------------
    def _config(self, doc: Manifest) -> bytes:
        """The image config: from the store when we have it, else from the registry."""
        from berth.oci.image_config import parse_config

        desc = doc.config
        if not mt.is_config(desc.media_type):
            raise InvalidManifest(f"unsupported config media type {desc.media_type!r}: "
                                  "not a container image")
        if self.store.content.exists(desc.digest) and \
                self.store.content.size(desc.digest) == desc.size:
            raw = self.store.content.read(desc.digest)
        else:
            raw = fetch.small_blob(self.session, self.ref, desc.digest, desc.size, self.scopes)
            self.store.content.put(raw, desc.digest)  # kept for a resumed pull if this one fails
        cfg = parse_config(raw)
        if self.want is not None:
            os_, arch = cfg.get("os"), normalize_arch(str(cfg.get("architecture", "")))[0]
            if (os_, arch) != (self.want.os, self.want.architecture):
                raise InvalidManifest(
                    f"image with reference {self.ref.familiar} was found but does not match "
                    f"the specified platform: wanted {self.want}, actual: {os_}/{arch}")
        return raw

    # -- layers ---------------------------------------------------------------------------
    def _layers(self, doc: Manifest, config: bytes) -> list[IngestedLayer]:
        """Ingest every layer, several at once; all-or-nothing."""
        from berth.oci.image_config import parse_config

        diff_ids: list[str] = parse_config(config)["rootfs"]["diff_ids"]
        for d in doc.layers:
            if not mt.is_layer(d.media_type):
                raise InvalidManifest(f"unsupported layer media type {d.media_type!r}")
        if len(diff_ids) != len(doc.layers):
            raise InvalidManifest(f"invalid manifest: {len(doc.layers)} layers but the config "
                                  f"lists {len(diff_ids)} diff_ids")
        parents: list[str | None] = []
        chain: str | None = None
        for diff_id in diff_ids:
            parents.append(chain)
            chain = chain_id_of(chain, diff_id)
        for d, diff_id, parent in zip(doc.layers, diff_ids, parents):
            if not self._present(d, chain_id_of(parent, diff_id)):
                self.progress.status("Pulling fs layer", short_id(d.digest))
        futures: list[Future[IngestedLayer]] = []
        with ThreadPoolExecutor(max_workers=self.max_concurrent,
                                thread_name_prefix="berth-pull") as pool:
            for desc, diff_id, parent in zip(doc.layers, diff_ids, parents):
                futures.append(pool.submit(self._one_layer, desc, diff_id, parent))
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:  # a failure (or Ctrl-C here) stops the sibling transfers
                if any(f.done() and f.exception() for f in futures) or \
                        not all(f.done() for f in futures):
                    self.cancel.set()
        done = [f.result() for f in futures if f.exception() is None]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            discard(done)
            real = [e for e in errors if not isinstance(e, Cancelled)]
            raise (real or errors)[0]  # type: ignore[misc]
        return done

    def _one_layer(self, desc: Descriptor, diff_id: str, parent: str | None) -> IngestedLayer:
        sid = short_id(desc.digest)
        content = self.store.content
        chain = chain_id_of(parent, diff_id)
        if self._present(desc, chain):
            self.progress.done(sid, "Already exists")
            return self._ingest(io.BytesIO(b""), desc, diff_id, parent)
        if content.exists(desc.digest):  # left by an interrupted pull: unpack, don't fetch
            with content.open(desc.digest) as f:
                layer = self._ingest(f, desc, diff_id, parent, unpack=True)
            self.progress.done(sid, "Pull complete")
            return layer
        for attempt in range(_RETRIES + 1):
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            try:
                layer = self._download(desc, diff_id, parent, sid)
                break
            except RegistryUnreachable:
                if attempt == _RETRIES or self.cancel.is_set():
                    raise
                self.progress.status(f"Retrying in {attempt + 1} second", sid)
                self.cancel.wait(attempt + 1)
        self.progress.status("Download complete", sid)
        self.progress.done(sid, "Pull complete")
        with self._count_lock:
            self.downloaded += 1
        return layer

    def _present(self, desc: Descriptor, chain: str) -> bool:
        """Blob stored and layer unpacked: nothing to do but reuse it."""
        from berth.images.onecopy import has_layer_blob

        return has_layer_blob(self.store, desc.digest, chain) and self.store.db.one(
            "SELECT 1 FROM layers WHERE chain_id=?", (chain,)) is not None

    def _download(self, desc: Descriptor, diff_id: str, parent: str | None,
                  sid: str) -> IngestedLayer:
        resp = self.session.request("GET", f"/v2/{self.ref.path}/blobs/{desc.digest}",
                                    scopes=self.scopes, stream=True, follow_redirects=True)
        if resp.status_code != 200:
            if resp.status_code == 404:
                resp.close()
                raise RegistryError(f"blob {desc.digest} of {self.ref.familiar} not found: "
                                    "blob unknown: blob unknown to registry")
            raise self.session.fail(resp, f"fetching layer {desc.digest}")
        self.progress.layer_start(sid, "Downloading", desc.size)

        def reopen(offset: int) -> Any:
            return self.session.request(
                "GET", f"/v2/{self.ref.path}/blobs/{desc.digest}", scopes=self.scopes,
                stream=True, follow_redirects=True, headers={"Range": f"bytes={offset}-"})

        body = BodyReader(resp, limit=desc.size, what=f"layer {desc.digest}",
                          on_bytes=lambda n: self.progress.advance(sid, n), cancel=self.cancel,
                          reopen=reopen)
        try:
            if self.store.db.one("SELECT 1 FROM layers WHERE chain_id=?",
                                 (chain_id_of(parent, diff_id),)):
                return self._ingest(body, desc, diff_id, parent)  # type: ignore[arg-type]
            return ingest_streamed(self.store, body, parent=parent,  # type: ignore[arg-type]
                                   media_type=desc.media_type, expected_digest=desc.digest,
                                   expected_size=desc.size, expected_diff_id=diff_id,
                                   unpack=True)
        finally:
            body.close()

    def _ingest(self, stream: BinaryIO, desc: Descriptor, diff_id: str,
                parent: str | None, *, unpack: bool = False) -> IngestedLayer:
        return ingest_layer(self.store, stream, parent=parent, media_type=desc.media_type,
                            expected_digest=desc.digest, expected_size=desc.size,
                            expected_diff_id=diff_id, unpack=unpack)
