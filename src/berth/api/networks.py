"""``/networks/...``: list, inspect, create, remove, prune, connect, disconnect."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.errors import InvalidArgument

from .common import blocking, body_json, engine, filters, no_content, ok_json, typed


async def list_(request: web.Request) -> web.Response:
    eng = engine(request)
    flt = filters(request)
    return ok_json(await blocking(
        lambda: [eng.network_inspect(n.id) for n in eng.networks(filters=flt)]))


async def inspect(request: web.Request) -> web.Response:
    return ok_json(await blocking(engine(request).network_inspect, request.match_info["id"]))


async def create(request: web.Request) -> web.Response:
    body = await body_json(request, required=True)
    name = typed(body, "Name", str, "")
    if not name:
        raise InvalidArgument("network name is required")
    eng = engine(request)
    ipam = typed(body, "IPAM", dict, {}) or {}
    configs = typed(ipam, "Config", list, []) or []
    if len(configs) > 1:
        raise InvalidArgument("berth networks have one IPv4 subnet")
    cfg = configs[0] if configs else {}
    if not isinstance(cfg, dict):
        raise InvalidArgument("IPAM.Config entries must be objects")
    if typed(body, "CheckDuplicate", bool, True) is not False:
        existing = await blocking(lambda: [n for n in eng.networks() if n.name == name])
        if existing:
            from berth.errors import Conflict

            raise Conflict(f"network with name {name} already exists")
    net = await blocking(eng.network_create, name,
                         driver=typed(body, "Driver", str, "bridge") or "bridge",
                         subnet=typed(cfg, "Subnet", str, None),
                         gateway=typed(cfg, "Gateway", str, None),
                         ip_range=typed(cfg, "IPRange", str, None),
                         internal=typed(body, "Internal", bool, False),
                         labels=typed(body, "Labels", dict, {}) or {},
                         options=typed(body, "Options", dict, {}) or {})
    return ok_json({"Id": net.id, "Warning": ""}, 201)


async def remove(request: web.Request) -> web.Response:
    await blocking(engine(request).network_remove, request.match_info["id"])
    return no_content()


async def prune(request: web.Request) -> web.Response:
    removed = await blocking(engine(request).network_prune, filters=filters(request))
    return ok_json({"NetworksDeleted": removed or None})


async def connect(request: web.Request) -> web.Response:
    body = await body_json(request, required=True)
    container = typed(body, "Container", str, "")
    if not container:
        raise InvalidArgument("Container is required")
    ep = typed(body, "EndpointConfig", dict, {}) or {}
    ipam = typed(ep, "IPAMConfig", dict, {}) or {}
    await blocking(engine(request).network_connect, request.match_info["id"], container,
                   aliases=typed(ep, "Aliases", list, []) or [],
                   ip=typed(ipam, "IPv4Address", str, None) or None)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await body_json(request, required=True)
    container = typed(body, "Container", str, "")
    if not container:
        raise InvalidArgument("Container is required")
    await blocking(engine(request).network_disconnect, request.match_info["id"], container,
                   force=typed(body, "Force", bool, False))
    return web.Response(status=200)


def register(routes: Any) -> None:
    routes.add("GET", "/networks", list_)
    routes.add("POST", "/networks/create", create)
    routes.add("POST", "/networks/prune", prune)
    routes.add("GET", "/networks/{id}", inspect)
    routes.add("DELETE", "/networks/{id}", remove)
    routes.add("POST", "/networks/{id}/connect", connect)
    routes.add("POST", "/networks/{id}/disconnect", disconnect)
