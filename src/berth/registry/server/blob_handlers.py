"""Blob endpoints: pull (GET/HEAD with Range), delete, and the upload protocol.

Upload URLs are ``/v2/<name>/blobs/uploads/<id>``; every response about a session carries
``Location`` and ``Range`` so a client can resume after a 416 or a dropped connection.
"""

from __future__ import annotations

import re

from aiohttp import web

from berth.registry.server.context import registry_of
from berth.registry.server.errors import ApiError, blob_unknown, digest_invalid, upload_unknown
from berth.registry.server.paths import ALGORITHMS, Route, check_digest, check_name
from berth.registry.server.uploads import Upload

_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)")


def _blob_location(name: str, digest: str) -> str:
    return f"/v2/{name}/blobs/{digest}"


def _session_headers(up: Upload) -> dict[str, str]:
    return {"Location": f"/v2/{up.name}/blobs/uploads/{up.id}", "Range": up.range_header(),
            "Docker-Upload-UUID": up.id}


async def get_blob(request: web.Request, r: Route) -> web.StreamResponse:
    """GET/HEAD: stream the file (sendfile), with Range support from aiohttp."""
    reg = registry_of(request)
    if not reg.storage.is_linked(r.name, r.arg):
        raise blob_unknown(r.arg)
    path = reg.storage.blob_path(r.arg)
    if not path.is_file():
        raise blob_unknown(r.arg)
    return web.FileResponse(path, chunk_size=1 << 18, headers={
        "Docker-Content-Digest": r.arg, "Content-Type": "application/octet-stream",
        "Cache-Control": "max-age=31536000"})


async def delete_blob(request: web.Request, r: Route) -> web.StreamResponse:
    """Unlink the blob from the repository; shared bytes wait for ``registry gc``."""
    if not registry_of(request).storage.unlink_blob(r.name, r.arg):
        raise blob_unknown(r.arg)
    return web.Response(status=202, headers={"Docker-Content-Digest": r.arg})


async def start_upload(request: web.Request, r: Route) -> web.StreamResponse:
    """POST: cross-repo mount, single-request monolithic upload, or a new session."""
    reg = registry_of(request)
    q = request.query
    if "mount" in q:
        digest = check_digest(q["mount"])
        source = q.get("from")
        try:
            ok = (reg.storage.is_linked(check_name(source), digest) if source
                  else True) and reg.storage.blob_size(digest) is not None
        except ApiError:  # a bad ``from`` only means we cannot mount: fall back to upload
            ok = False
        if ok:
            reg.storage.link_blob(r.name, digest)
            return web.Response(status=201, headers={
                "Location": _blob_location(r.name, digest), "Docker-Content-Digest": digest})
    if "digest" in q:
        digest = check_digest(q["digest"])
        up = reg.uploads.start(r.name, digest.split(":", 1)[0])
        async with up.lock:
            try:
                await reg.uploads.append(up, request.content, request.content_length)
            except BaseException:
                reg.uploads.cancel(up)
                raise
            await reg.uploads.finish(up, digest)
        return web.Response(status=201, headers={
            "Location": _blob_location(r.name, digest), "Docker-Content-Digest": digest})
    alg = q.get("digest-algorithm", "sha256")
    if alg not in ALGORITHMS:
        raise digest_invalid(f"unsupported digest algorithm: {alg[:50]}")
    up = reg.uploads.start(r.name, alg)
    return web.Response(status=202, headers=_session_headers(up))


async def _live(request: web.Request, r: Route) -> Upload:
    return await registry_of(request).uploads.get(r.name, r.arg)


async def upload_status(request: web.Request, r: Route) -> web.StreamResponse:
    up = await _live(request, r)
    return web.Response(status=204, headers=_session_headers(up))


def _chunk_length(request: web.Request, up: Upload) -> int | None:
    """Check ``Content-Range`` (if any) against the session: in-order or 416."""
    header = request.headers.get("Content-Range")
    if header is None:
        return request.content_length
    m = _RANGE_RE.fullmatch(header.strip())
    if not m:
        raise ApiError(400, "BLOB_UPLOAD_INVALID", f"malformed Content-Range {header[:80]!r}")
    start, end = int(m.group(1)), int(m.group(2))
    length = end - start + 1
    if start != up.offset or end < start or (
            request.content_length is not None and request.content_length != length):
        raise ApiError(416, "BLOB_UPLOAD_INVALID",
                       f"chunk {start}-{end} does not continue the upload at {up.offset}",
                       headers=_session_headers(up))
    return length


def _still_live(request: web.Request, up: Upload) -> None:
    """A session cancelled while we waited for its lock is gone."""
    if not registry_of(request).uploads.is_live(up):
        raise upload_unknown(up.id)


async def patch_upload(request: web.Request, r: Route) -> web.StreamResponse:
    """PATCH: append one chunk (in order) or a streamed body without Content-Range."""
    reg = registry_of(request)
    up = await _live(request, r)
    async with up.lock:
        _still_live(request, up)
        expect = _chunk_length(request, up)
        await reg.uploads.append(up, request.content, expect)
    return web.Response(status=202, headers=_session_headers(up))


async def finish_upload(request: web.Request, r: Route) -> web.StreamResponse:
    """PUT ?digest=: optional last chunk, then verify and commit the whole blob."""
    reg = registry_of(request)
    if "digest" not in request.query:
        raise digest_invalid("digest query parameter missing")
    digest = check_digest(request.query["digest"])
    up = await _live(request, r)
    async with up.lock:
        _still_live(request, up)
        expect = _chunk_length(request, up)
        await reg.uploads.append(up, request.content, expect)
        await reg.uploads.finish(up, digest)
    return web.Response(status=201, headers={
        "Location": _blob_location(r.name, digest), "Docker-Content-Digest": digest})


async def cancel_upload(request: web.Request, r: Route) -> web.StreamResponse:
    reg = registry_of(request)
    up = await _live(request, r)
    async with up.lock:
        reg.uploads.cancel(up)
    return web.Response(status=204)
