"""The aiohttp application: one catch-all route, a dispatch table, and the policy layer.

Everything under ``/v2/`` goes through :func:`_dispatch`, which parses the path itself
(repository names contain slashes) and picks a handler by (endpoint, method). A single
middleware applies the policy every endpoint shares — authentication, read-only mode —
and renders every failure as the spec's JSON error document, so a malformed request can
only ever produce a 4xx, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from berth.errors import BerthError, InvalidDigest
from berth.registry.server import blob_handlers as blobs
from berth.registry.server import listing_handlers as listing
from berth.registry.server import manifest_handlers as mans
from berth.registry.server.auth import CHALLENGE, Htpasswd
from berth.registry.server.context import REGISTRY, Registry, registry_of
from berth.registry.server.errors import ApiError
from berth.registry.server.manifests import MAX_MANIFEST
from berth.registry.server.paths import Route, route
from berth.registry.server.storage import Storage
from berth.registry.server.uploads import Uploads

log = logging.getLogger("berth.registry")

Handler = Callable[[web.Request, Route], Awaitable[web.StreamResponse]]


async def _base(request: web.Request, r: Route) -> web.StreamResponse:
    return web.json_response({})


_TABLE: dict[str, dict[str, Handler]] = {
    "base": {"GET": _base, "HEAD": _base},
    "catalog": {"GET": listing.catalog},
    "tags": {"GET": listing.list_tags},
    "referrers": {"GET": listing.referrers},
    "blob": {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    "uploads": {"POST": blobs.start_upload},
    "upload": {"GET": blobs.upload_status, "PATCH": blobs.patch_upload,
               "PUT": blobs.finish_upload, "DELETE": blobs.cancel_upload},
    "manifest": {"GET": mans.get_manifest, "HEAD": mans.get_manifest,
                 "PUT": mans.put_manifest, "DELETE": mans.delete_manifest},
}
_READS = frozenset({"GET", "HEAD"})


async def _dispatch(request: web.Request) -> web.StreamResponse:
    r = route(request.match_info.get("tail", ""))
    if r is None:
        raise ApiError(404, "UNSUPPORTED", "no such endpoint")
    handlers = _TABLE[r.kind]
    handler = handlers.get(request.method)
    if handler is None:
        raise ApiError(405, "UNSUPPORTED", f"{request.method} is not supported here",
                       headers={"Allow": ", ".join(sorted(handlers))})
    return await handler(request, r)


def _error_response(err: ApiError) -> web.Response:
    return web.Response(status=err.status, body=err.body(), content_type="application/json",
                        headers=err.headers)


@web.middleware
async def _policy(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    reg = registry_of(request)
    try:
        if reg.htpasswd is not None and not await reg.htpasswd.check(
                request.headers.get("Authorization")):
            raise ApiError(401, "UNAUTHORIZED", headers={"WWW-Authenticate": CHALLENGE})
        if reg.read_only and request.method not in _READS:
            raise ApiError(405, "UNSUPPORTED", "the registry is read-only",
                           headers={"Allow": "GET, HEAD"})
        return await handler(request)
    except ApiError as e:
        return _error_response(e)
    except InvalidDigest as e:
        return _error_response(ApiError(400, "DIGEST_INVALID", str(e)))
    except web.HTTPException:
        raise
    except (ConnectionError, TimeoutError):
        # The client went away mid-body (the upload was rolled back); nobody is left to
        # read an answer, and this is no server error worth a traceback in the log.
        return web.Response(status=400)
    except BerthError as e:
        if 400 <= e.http_status < 500:
            return _error_response(ApiError(e.http_status, "UNSUPPORTED", str(e)))
        raise
    except OSError as e:
        log.error("storage error on %s %s: %s", request.method, request.path, e)
        return web.json_response({"errors": [{"code": "UNKNOWN", "message": "storage error"}]},
                                 status=500)


async def _api_version_header(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Docker-Distribution-API-Version"] = "registry/2.0"


def make_app(storage_dir: str, *, htpasswd: Htpasswd | None = None,
             read_only: bool = False) -> web.Application:
    """A ready-to-run registry serving ``storage_dir``."""
    storage = Storage(storage_dir)
    app = web.Application(middlewares=[_policy], client_max_size=MAX_MANIFEST + 1)
    app[REGISTRY] = Registry(storage, Uploads(storage), htpasswd, read_only)
    app.router.add_route("*", "/v2", _dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", _dispatch)
    app.on_response_prepare.append(_api_version_header)
    return app
