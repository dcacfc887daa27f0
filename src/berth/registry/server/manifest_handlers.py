"""Manifest endpoints: push (PUT), pull (GET/HEAD) and delete, by tag or by digest.

Manifests are stored byte for byte with the media type they were pushed with, so a pull
returns exactly what was pushed and the digest a client computed stays valid.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

from aiohttp import web

from berth.registry.server import manifests
from berth.registry.server.context import Registry, registry_of
from berth.registry.server.errors import ApiError, digest_invalid, manifest_unknown, name_unknown
from berth.registry.server.paths import Route, check_reference, check_tag, is_digest_ref


def _resolve(reg: Registry, r: Route) -> tuple[str, str, bytes]:
    """(digest, media type, bytes) of the manifest a route names, or 404."""
    ref = check_reference(r.arg)
    if not reg.storage.repo_exists(r.name):
        raise name_unknown(r.name)
    digest = ref if is_digest_ref(ref) else reg.storage.get_tag(r.name, ref)
    found = reg.storage.get_manifest(r.name, digest) if digest else None
    if digest is None or found is None:
        raise manifest_unknown(ref)
    media_type, path = found
    try:
        return digest, media_type, path.read_bytes()
    except FileNotFoundError:
        raise manifest_unknown(ref) from None


async def get_manifest(request: web.Request, r: Route) -> web.StreamResponse:
    """GET/HEAD: the stored bytes, their type and digest (aiohttp drops the body on HEAD)."""
    digest, media_type, body = _resolve(registry_of(request), r)
    return web.Response(body=body, headers={
        "Content-Type": media_type, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'})


async def _read_limited(request: web.Request) -> bytes:
    """The request body, refusing (413) anything over the manifest size cap."""
    cap = manifests.MAX_MANIFEST
    too_big = ApiError(413, "SIZE_INVALID", f"manifest exceeds {cap} bytes")
    if request.content_length is not None and request.content_length > cap:
        raise too_big
    parts: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > cap:
            raise too_big
        parts.append(chunk)
    return b"".join(parts)


def _missing_references(reg: Registry, name: str, m: manifests.Manifest) -> list[str]:
    st = reg.storage
    missing = [d for d in m.blobs if not st.is_linked(name, d) or st.blob_size(d) is None]
    missing += [d for d in m.children if st.get_manifest(name, d) is None]
    return missing


async def put_manifest(request: web.Request, r: Route) -> web.StreamResponse:
    """PUT: validate, check references exist in the repository, store, tag, index subject."""
    reg = registry_of(request)
    ref = check_reference(r.arg)
    body = await _read_limited(request)
    m = manifests.parse(body, request.headers.get("Content-Type"))
    if is_digest_ref(ref):
        alg = ref.split(":", 1)[0]
        digest = f"{alg}:{hashlib.new(alg, body).hexdigest()}"
        if digest != ref:
            raise digest_invalid("manifest digest did not match the reference",
                                 detail={"expected": ref, "actual": digest})
    else:
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
    missing = _missing_references(reg, r.name, m)
    if missing:
        raise ApiError(400, "MANIFEST_BLOB_UNKNOWN", detail={"digests": missing})
    tags = ([check_tag(t) for t in request.query.getall("tag", [])] if is_digest_ref(ref)
            else [ref])
    st = reg.storage

    def store() -> None:  # fsyncs: keep them off the event loop
        st.put_manifest(r.name, digest, m.media_type, body)
        for tag in tags:
            st.set_tag(r.name, tag, digest)
        if m.subject:
            st.add_referrer(r.name, m.subject, m.descriptor(digest, len(body)))

    await asyncio.get_running_loop().run_in_executor(None, store)
    headers = {"Location": f"/v2/{r.name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if m.subject:
        headers["OCI-Subject"] = m.subject
    resp = web.Response(status=201, headers=headers)
    if is_digest_ref(ref) and tags:
        resp.headers["OCI-Tag"] = ", ".join(tags)
    return resp


async def delete_manifest(request: web.Request, r: Route) -> web.StreamResponse:
    """DELETE by tag removes the tag; by digest the revision, its tags and referrer entry."""
    reg = registry_of(request)
    ref = check_reference(r.arg)
    st = reg.storage
    if not st.repo_exists(r.name):
        raise name_unknown(r.name)
    if not is_digest_ref(ref):
        if not st.delete_tag(r.name, ref):
            raise manifest_unknown(ref)
        return web.Response(status=202)
    found = st.get_manifest(r.name, ref)
    if found is None:
        raise manifest_unknown(ref)
    media_type, path = found
    try:
        subject = manifests.parse(path.read_bytes(), media_type).subject
    except (ApiError, OSError, json.JSONDecodeError):
        subject = None
    if subject:
        st.remove_referrer(r.name, subject, ref)
    st.delete_manifest(r.name, ref)
    return web.Response(status=202)
