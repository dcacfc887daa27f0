"""System endpoints: ``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``, ``/auth``,
and the swarm family, which berth does not have (Docker's own 503)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from typing import Any

from aiohttp import web

from berth.errors import InvalidArgument

from .common import blocking, body_json, closed, engine, filters, ok_json, qfloat
from .views import container_summary, image_summary

SWARM_MESSAGE = ("This node is not a swarm manager. Use \"docker swarm init\" or "
                 "\"docker swarm join\" to connect this node to swarm and try again.")


def _ping_headers() -> dict[str, str]:
    from .server import API_VERSION

    return {"API-Version": API_VERSION, "Ostype": "linux", "Docker-Experimental": "false",
            "Builder-Version": "1", "Cache-Control": "no-cache, no-store, must-revalidate",
            "Pragma": "no-cache"}


async def ping(request: web.Request) -> web.Response:
    if request.method == "HEAD":
        return web.Response(headers=_ping_headers(), content_type="text/plain")
    return web.Response(text="OK", headers=_ping_headers())


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


async def version(request: web.Request) -> web.Response:
    from berth import __version__

    from .server import API_VERSION, MIN_API_VERSION

    info = {"Version": __version__, "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "",
            "Os": "linux", "Arch": _arch(), "KernelVersion": os.uname().release,
            "BuildTime": "", "Experimental": False}
    return ok_json({"Platform": {"Name": "berth"},
                    "Components": [{"Name": "Engine", "Version": __version__,
                                    "Details": {"ApiVersion": API_VERSION,
                                                "MinAPIVersion": MIN_API_VERSION,
                                                "Os": "linux", "Arch": _arch()}}],
                    **info})


async def info(request: web.Request) -> web.Response:
    eng = engine(request)
    data: dict[str, Any] = await blocking(eng.info)
    mem = await blocking(_mem_total)
    paused = data.get("ContainersPaused", 0)
    out = {
        "ID": "berth", "Containers": data["Containers"],
        "ContainersRunning": data["ContainersRunning"], "ContainersPaused": paused,
        "ContainersStopped": data["ContainersStopped"], "Images": data["Images"],
        "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "extfs"]],
        "DockerRootDir": data["Root"], "Plugins": {"Volume": ["local"],
                                                   "Network": ["bridge", "host", "null"],
                                                   "Authorization": None, "Log": ["k8s-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "BridgeNfIptables": True, "BridgeNfIp6tables": True, "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": False,
        "NGoroutines": 0, "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z",
                                                       time.gmtime()),
        "LoggingDriver": "k8s-file", "CgroupDriver": "cgroupfs",
        "CgroupVersion": data.get("CgroupVersion", "2"), "NEventsListener": 0,
        "KernelVersion": data["KernelVersion"], "OperatingSystem": data["OperatingSystem"],
        "OSVersion": "", "OSType": "linux", "Architecture": data["Architecture"],
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "IndexConfigs": {}, "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": mem, "GenericResources": None,
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Name": os.uname().nodename,
        "Labels": [], "ExperimentalBuild": False, "ServerVersion": data["ServerVersion"],
        "Runtimes": {data.get("Runtime", "runc"): {"path": data.get("Runtime", "runc")}},
        "DefaultRuntime": data.get("DefaultRuntime", "runc"),
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "catatonit",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""}, "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": data.get("Warnings", []),
    }
    return ok_json(out)


def _mem_total() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


async def events(request: web.Request) -> web.StreamResponse:
    """Stored events since ``since``, then new ones as they are written, until ``until``."""
    from berth.store.events import build_predicate

    eng = engine(request)
    pred = build_predicate(filters(request))
    since, until = qfloat(request, "since"), qfloat(request, "until")
    now = time.time()
    follower = eng.store.events.follower() if until is None or until > now else None
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)

    async def send(ev: dict[str, Any]) -> None:
        await resp.write((json.dumps(ev) + "\n").encode())

    try:
        if since is not None:
            past = await blocking(lambda: list(eng.store.events.read(
                since=since, until=until, match=pred)))
            for ev in past:
                await send(ev)
        while follower is not None and not closed(request):
            if until is not None and time.time() > until:
                break
            for ev in follower.poll():
                if pred(ev) and (until is None or ev["timeNano"] / 1e9 <= until):
                    await send(ev)
            await asyncio.sleep(0.1)
    except ConnectionError:
        pass
    finally:
        if follower is not None:
            follower.close()
    return resp


async def system_df(request: web.Request) -> web.Response:
    eng = engine(request)

    def collect() -> dict[str, Any]:
        images = eng.images()
        containers = eng.containers(all=True)
        used: dict[str, int] = {}
        for c in containers:
            used[c.image_id] = used.get(c.image_id, 0) + 1
        rows = {r["Type"]: r for r in eng.df()}
        vols = []
        in_use = eng.volume_service.in_use()
        for v in eng.volumes():
            d = v.inspect()
            d["UsageData"] = {"Size": eng.volume_service.size(v),
                              "RefCount": 1 if v.name in in_use else 0}
            vols.append(d)
        imgs = []
        for r in images:
            s = image_summary(r)
            s["Containers"] = used.get(r.id, 0)
            imgs.append(s)
        return {"LayersSize": rows["Images"]["Size"], "Images": imgs,
                "Containers": [container_summary(eng, c, size=True) for c in containers],
                "Volumes": vols, "BuildCache": []}

    return ok_json(await blocking(collect))


async def auth(request: web.Request) -> web.Response:
    """Check credentials against the registry (they are not stored: the client keeps them)."""
    from berth.registry.client.login import login

    body = await body_json(request, required=True)
    user, password = body.get("username"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        raise InvalidArgument("username and password are required")
    server = body.get("serveraddress") or None
    eng = engine(request)

    def check() -> None:
        login(server, user, password, root=eng.root, save=False)

    await blocking(check)
    return ok_json({"Status": "Login Succeeded", "IdentityToken": ""})


async def not_swarm(request: web.Request) -> web.Response:
    return ok_json({"message": SWARM_MESSAGE}, 503)


async def no_plugins(request: web.Request) -> web.Response:
    if request.method == "GET" and request.path.rstrip("/").endswith("/plugins"):
        return ok_json([])
    return ok_json({"message": "plugins are not supported by berth"}, 501)


def register(routes: Any) -> None:
    routes.add("GET", "/_ping", ping)
    routes.add("HEAD", "/_ping", ping)
    routes.add("GET", "/version", version)
    routes.add("GET", "/info", info)
    routes.add("GET", "/events", events)
    routes.add("GET", "/system/df", system_df)
    routes.add("POST", "/auth", auth)
    for prefix in ("/swarm", "/services", "/nodes", "/secrets", "/configs", "/tasks"):
        routes.add("*", prefix, not_swarm)
        routes.add("*", prefix + "/{rest:.*}", not_swarm)
    routes.add("*", "/plugins", no_plugins)
    routes.add("*", "/plugins/{rest:.*}", no_plugins)
