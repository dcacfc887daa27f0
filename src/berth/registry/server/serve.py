"""Run the registry in the foreground until SIGINT/SIGTERM.

We bind the socket ourselves (rather than let aiohttp do it) so that ``--addr host:0``
works: the caller learns the real port from :func:`serve`'s ``on_listen`` callback, which is
how tests start a server on a free port without races.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from berth.errors import InvalidArgument
from berth.registry.server.app import make_app
from berth.registry.server.auth import Htpasswd


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces) → (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"invalid --addr {addr!r}: expected HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server-side TLS from a PEM certificate chain and key."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgument(f"cannot load TLS certificate/key: {e}") from None
    return ctx


class OneLineBadRequests(logging.Filter):
    """aiohttp logs every malformed HTTP request with a 9-line traceback; make it one line.

    A client that sends garbage already got its ``400``; the log only needs who and why.
    Other errors keep their traceback: those are ours to debug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # a filter must never raise (that would turn the 400 into a 500): on any
            # surprise aiohttp's own record goes out unchanged
            with contextlib.suppress(Exception):
                why = next((ln.strip() for ln in str(exc.message).splitlines()
                            if ln.strip()), type(exc).__name__).rstrip(":")
                where = record.getMessage().replace("Error handling request",
                                                    "bad HTTP request")
                record.msg, record.args = "%s: %s %s", (where, exc.code, why)
                record.exc_info, record.exc_text = None, None
        return True


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1024,
                                    reuse_port=False)
    except OSError as e:
        raise InvalidArgument(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


async def serve(storage_dir: str, addr: str = "127.0.0.1:5000", *,
                htpasswd: str | None = None, tls: ssl.SSLContext | None = None,
                read_only: bool = False, access_log: bool = False,
                on_listen: Callable[[str], None] | None = None) -> None:
    """Serve until a stop signal; ``on_listen`` receives the URL once the socket is bound."""
    host, port = parse_addr(addr)
    auth = Htpasswd(htpasswd) if htpasswd else None
    app = make_app(storage_dir, htpasswd=auth, read_only=read_only)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="registry"))
    sock = bind(host, port)
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineBadRequests) for f in server_log.filters):
        server_log.addFilter(OneLineBadRequests())
    logger = None
    if access_log:
        logger = logging.getLogger("berth.registry.access")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    runner = web.AppRunner(app, access_log=logger, handle_signals=False, shutdown_timeout=3.0)
    await runner.setup()
    try:
        site = web.SockSite(runner, sock, ssl_context=tls, backlog=1024)
        await site.start()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if on_listen is not None:
            on_listen(f"{'https' if tls else 'http'}://{shown}:{bound_port}")
        await stop.wait()
    finally:
        await runner.cleanup()
        sock.close()
