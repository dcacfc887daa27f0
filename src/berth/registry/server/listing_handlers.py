"""Content discovery: tag lists, the catalog, and the referrers API.

Tag and catalog lists page with ``n`` and ``last`` and advertise the next page in an
RFC 5988 ``Link`` header, the way the spec prefers clients to paginate.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from aiohttp import web

from berth.registry.server import manifests
from berth.registry.server.context import Registry, registry_of
from berth.registry.server.errors import ApiError, name_unknown
from berth.registry.server.paths import Route


def _page(request: web.Request, items: list[str], base: str) -> tuple[list[str], str | None]:
    """Apply ``n``/``last`` to a sorted list; return the page and its ``Link`` (if more)."""
    q = request.query
    last = q.get("last")
    if last:
        items = [i for i in items if i > last]
    if "n" not in q:
        return items, None
    try:
        n = int(q["n"])
    except ValueError:
        n = -1
    if n < 0:
        raise ApiError(400, "UNSUPPORTED", "n must be a non-negative integer")
    if n == 0:
        return [], None  # the spec: an empty list and no Link header
    page = items[:n]
    if len(items) > n:
        return page, f'<{base}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
    return page, None


def _json(doc: object, link: str | None = None, content_type: str = "application/json",
          extra: dict[str, str] | None = None) -> web.Response:
    headers = {"Link": link} if link else {}
    headers.update(extra or {})
    return web.Response(body=json.dumps(doc).encode(), content_type=content_type,
                        headers=headers)


async def list_tags(request: web.Request, r: Route) -> web.StreamResponse:
    st = registry_of(request).storage
    if not st.repo_exists(r.name):
        raise name_unknown(r.name)
    tags, link = _page(request, st.list_tags(r.name), f"/v2/{r.name}/tags/list")
    return _json({"name": r.name, "tags": tags}, link)


async def catalog(request: web.Request, r: Route) -> web.StreamResponse:
    repos, link = _page(request, registry_of(request).storage.list_repositories(),
                        "/v2/_catalog")
    return _json({"repositories": repos}, link)


def _referrers(reg: Registry, name: str, subject: str) -> list[dict]:
    """Indexed referrers, plus any listed in a pre-existing referrers-tag index.

    The spec asks registries to honour the tag-schema fallback (``<alg>-<hex>``) that
    clients used against registries without this API, as long as each listed manifest
    exists here and really names ``subject``.
    """
    st = reg.storage
    if not st.repo_exists(name):
        return []
    found = st.list_referrers(name, subject)
    seen = {d.get("digest") for d in found}
    alg, _, hexpart = subject.partition(":")
    tagged = st.get_tag(name, f"{alg}-{hexpart[:64]}")
    listed = st.get_manifest(name, tagged) if tagged else None
    if listed is None:
        return found
    try:
        entries = json.loads(listed[1].read_bytes()).get("manifests") or []
    except (OSError, ValueError, AttributeError):
        return found
    for entry in entries:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or digest in seen:
            continue
        try:
            rev = st.get_manifest(name, digest)
            if rev is None:
                continue
            m = manifests.parse(rev[1].read_bytes(), rev[0])
        except (ApiError, OSError, ValueError):
            continue
        if m.subject == subject:
            found.append(m.descriptor(digest, rev[1].stat().st_size))
            seen.add(digest)
    return found


async def referrers(request: web.Request, r: Route) -> web.StreamResponse:
    """Always 200 with an image index (never 404: that would send clients to fallbacks)."""
    found = _referrers(registry_of(request), r.name, r.arg)
    extra = {}
    want = request.query.get("artifactType")
    if want:
        found = [d for d in found if d.get("artifactType") == want]
        extra["OCI-Filters-Applied"] = "artifactType"
    doc = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": found}
    return _json(doc, content_type=manifests.OCI_INDEX, extra=extra)
