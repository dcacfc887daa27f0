"""The service: listeners, the request guard rails, versioned routes, idle shutdown.

``berth system service`` serves the Docker Engine API v1.41 over the same store as the CLI.
It keeps no state of its own (DESIGN.md): every handler is a thin adapter over
:class:`~berth.engine.Engine`, so stopping the service never touches a container (conmon
owns them) and a restarted service picks everything up.

Guard rails, in order, for every request:
* a browser ``Origin`` header is refused (403): a web page must not drive the socket through
  a TCP port (DNS rebinding, cross-site POSTs) — Docker does not check; berth does;
* ``/vX.Y/`` outside 1.24..1.41 is a 400 naming the supported range;
* :class:`~berth.errors.BerthError` becomes ``{"message": ...}`` with its HTTP status; any
  other exception is a bug: 500 with a one-line message, its traceback on stderr only.
"""

from __future__ import annotations

import asyncio
import grp
import os
import ssl
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from berth.errors import BerthError, InvalidArgument

from .common import ATTACH_STARTED, ENGINE_KEY, ok_json

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServiceOptions:
    hosts: list[str] = field(default_factory=list)
    timeout: float = 5.0          # idle seconds before exiting; 0 = serve forever
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None


def default_socket(runroot: str) -> str:
    return "unix://" + os.path.join(runroot, "docker.sock")


# -- guard rails ---------------------------------------------------------------------------
def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        raise InvalidArgument(f"invalid API version: {v}") from None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.headers.get("Origin"):
        return ok_json({"message": "requests from a web browser (with an Origin header) "
                                   "are refused"}, 403)
    ver = request.match_info.get("ver")
    try:
        if ver:
            v = _version_tuple(ver[1:])
            if v > _version_tuple(API_VERSION):
                raise InvalidArgument(f"client version {ver[1:]} is too new. Maximum "
                                      f"supported API version is {API_VERSION}")
            if v < _version_tuple(MIN_API_VERSION):
                raise InvalidArgument(f"client version {ver[1:]} is too old. Minimum "
                                      f"supported API version is {MIN_API_VERSION}, please "
                                      "upgrade your client to a newer version")
        resp = await handler(request)
    except BerthError as e:
        return ok_json({"message": e.message}, e.http_status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return ok_json({"message": e.reason if e.status != 404 else
                        f"page not found: {request.path}"}, e.status)
    except (ConnectionError, asyncio.CancelledError):
        raise
    except Exception as e:  # noqa: BLE001 - a bug: log it, answer one line
        sys.stderr.write(f"berth service: {request.method} {request.path_qs}: "
                         f"internal error\n{traceback.format_exc()}")
        sys.stderr.flush()
        return ok_json({"message": f"internal error: {type(e).__name__}"}, 500)
    resp.headers.setdefault("Api-Version", API_VERSION)
    resp.headers.setdefault("Server", "berth")
    resp.headers.setdefault("Docker-Experimental", "false")
    resp.headers.setdefault("Ostype", "linux")
    return resp


class _Routes:
    """Registers each route twice: ``/path`` and ``/v{version}/path``."""

    def __init__(self, app: web.Application) -> None:
        self.router = app.router

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.router.add_route(method, path, handler)
        self.router.add_route(method, "/{ver:v[0-9]+[.][0-9]+}" + path, handler)


def make_app(engine: Any) -> web.Application:
    from . import containers, execs, images, networks, system, volumes

    app = web.Application(middlewares=[guard], client_max_size=0)
    app[ENGINE_KEY] = engine
    app[ATTACH_STARTED] = {}
    routes = _Routes(app)
    for mod in (system, containers, execs, images, volumes, networks):
        mod.register(routes)
    return app


# -- listeners -------------------------------------------------------------------------------
def _tls_context(opts: ServiceOptions) -> ssl.SSLContext | None:
    if not (opts.tls_cert or opts.tls_key or opts.tls_ca):
        return None
    if not (opts.tls_cert and opts.tls_key and opts.tls_ca):
        raise InvalidArgument("--tls-cert, --tls-key and --tls-ca go together (mutual TLS)")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=opts.tls_ca)
    ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _parse_host(host: str) -> tuple[str, str, int]:
    """``unix:///path`` or ``tcp://ADDR:PORT`` → (kind, address, port)."""
    if host.startswith("unix://"):
        path = host[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid host {host!r}: the socket path must be absolute")
        return "unix", path, 0
    if host.startswith("tcp://"):
        addr, sep, port = host[len("tcp://"):].rstrip("/").rpartition(":")
        if not sep or not port.isdigit():
            raise InvalidArgument(f"invalid host {host!r}: expected tcp://ADDRESS:PORT")
        return "tcp", addr.strip("[]") or "127.0.0.1", int(port)
    raise InvalidArgument(f"invalid host {host!r}: expected unix:///PATH or tcp://ADDR:PORT")


def _is_loopback(addr: str) -> bool:
    import ipaddress

    if addr == "localhost":
        return True
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def check_hosts(opts: ServiceOptions) -> list[tuple[str, str, int]]:
    """Parse ``-H`` values; TCP beyond loopback only with mutual TLS."""
    tls = _tls_context(opts) is not None
    out = []
    for h in opts.hosts:
        kind, addr, port = _parse_host(h)
        if kind == "tcp" and not tls and not _is_loopback(addr):
            raise InvalidArgument(f"refusing to listen on {h} without TLS: pass --tls-cert, "
                                  "--tls-key and --tls-ca (mutual TLS), or use a loopback "
                                  "address")
        out.append((kind, addr, port))
    return out


def _secure_socket(path: str) -> None:
    """0660 root, group ``berth`` when it exists (who may drive the engine).

    The group must also reach the socket: a parent directory closed to it (the runroot is
    0700) gets group ``berth`` and search permission only (no listing), nothing more.
    """
    try:
        gid = grp.getgrnam("berth").gr_gid
    except KeyError:
        gid = 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    parent = os.path.dirname(path)
    st = os.stat(parent)
    if gid and not st.st_mode & 0o011:
        os.chown(parent, -1, gid)
        os.chmod(parent, (st.st_mode & 0o7777) | 0o010)


class _Idle:
    """Exit after ``timeout`` seconds with no request in flight (0: never)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.active = 0
        self.last = time.monotonic()

    @web.middleware
    async def track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.active += 1
        try:
            return await handler(request)
        finally:
            self.active -= 1
            self.last = time.monotonic()

    async def wait(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.timeout / 4) if self.timeout else 3600)
            if self.timeout and not self.active and \
                    time.monotonic() - self.last >= self.timeout:
                return


async def _serve(engine: Any, opts: ServiceOptions, ready: Callable[[list[str]], None]
                 ) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=256,
                                                 thread_name_prefix="berth-api"))
    hosts = check_hosts(opts)
    tls = _tls_context(opts)
    idle = _Idle(opts.timeout)
    app = make_app(engine)
    app.middlewares.insert(0, idle.track)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    listening = []
    try:
        for kind, addr, port in hosts:
            site: web.BaseSite
            if kind == "unix":
                os.makedirs(os.path.dirname(addr), mode=0o755, exist_ok=True)
                if os.path.exists(addr):
                    _unlink_stale(addr)
                site = web.UnixSite(runner, addr)
                await site.start()
                _secure_socket(addr)
                listening.append("unix://" + addr)
            else:
                site = web.TCPSite(runner, addr, port, ssl_context=tls, reuse_address=True)
                await site.start()
                listening.append(f"tcp://{addr}:{port}")
        ready(listening)
        stop = asyncio.Event()
        import signal

        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        waiter = asyncio.ensure_future(idle.wait())
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        stopper.cancel()
    finally:
        await runner.cleanup()
        for kind, addr, _ in hosts:
            if kind == "unix":
                try:
                    os.unlink(addr)
                except OSError:
                    pass


def _unlink_stale(path: str) -> None:
    """Remove a socket left by a dead service; refuse if one is still answering."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        s.close()
    raise InvalidArgument(f"{path}: another service is already listening there")


def serve(engine: Any, opts: ServiceOptions,
          ready: Callable[[list[str]], None] = lambda _l: None) -> None:
    """Serve until SIGINT/SIGTERM or the idle timeout. Running containers are untouched."""
    asyncio.run(_serve(engine, opts, ready))
