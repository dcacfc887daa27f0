"""``/volumes/...``: list, create, inspect, remove, prune."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .common import (
    blocking,
    body_json,
    engine,
    filters,
    no_content,
    ok_json,
    qbool,
    typed,
)


async def list_(request: web.Request) -> web.Response:
    recs = await blocking(engine(request).volumes, filters=filters(request))
    return ok_json({"Volumes": [v.inspect() for v in recs], "Warnings": []})


async def create(request: web.Request) -> web.Response:
    body = await body_json(request)
    eng = engine(request)
    rec = await blocking(eng.volume_create, typed(body, "Name", str, None) or None,
                         driver=typed(body, "Driver", str, "local") or "local",
                         labels=typed(body, "Labels", dict, {}) or {},
                         options=typed(body, "DriverOpts", dict, {}) or {})
    return ok_json(rec.inspect(), 201)


async def inspect(request: web.Request) -> web.Response:
    return ok_json(await blocking(engine(request).volume_inspect, request.match_info["name"]))


async def remove(request: web.Request) -> web.Response:
    await blocking(engine(request).volume_remove, request.match_info["name"],
                   force=qbool(request, "force"))
    return no_content()


async def prune(request: web.Request) -> web.Response:
    removed, space = await blocking(engine(request).volume_prune, filters=filters(request))
    return ok_json({"VolumesDeleted": removed or None, "SpaceReclaimed": space})


def register(routes: Any) -> None:
    routes.add("GET", "/volumes", list_)
    routes.add("POST", "/volumes/create", create)
    routes.add("POST", "/volumes/prune", prune)
    routes.add("GET", "/volumes/{name}", inspect)
    routes.add("DELETE", "/volumes/{name}", remove)
