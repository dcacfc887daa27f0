"""What every handler needs: query parsing, JSON bodies, threads, streams, hijacking.

The Engine blocks (SQLite, the runtime, conmon, registries); the service must not. Every
Engine call runs on a worker thread (:func:`blocking`), and every long stream is fed from a
thread or a non-blocking socket, so one ``logs -f`` never holds up another client.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from aiohttp import web

from berth.errors import InvalidArgument

T = TypeVar("T")

ENGINE_KEY = web.AppKey("engine", object)
# containers that ``POST /attach`` started, so the client's following ``/start`` is a no-op
# (connection-scoped bookkeeping, not state: it is empty after a restart and expires)
ATTACH_STARTED = web.AppKey("attach_started", dict)
RAW_STREAM = "application/vnd.docker.raw-stream"


def engine(request: web.Request) -> Any:
    return request.app[ENGINE_KEY]


async def blocking(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Run an Engine call on a worker thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: fn(*args, **kw))


# -- request parsing -------------------------------------------------------------------------
def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    return v.lower() not in ("0", "false", "no")


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {v!r}") from None


def qfloat(request: web.Request, name: str) -> float | None:
    v = request.query.get(name)
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        from berth.units import parse_timestamp

        return parse_timestamp(v)


def qjson(request: web.Request, name: str, default: Any = None) -> Any:
    v = request.query.get(name)
    if not v:
        return default
    try:
        return json.loads(v)
    except ValueError:
        raise InvalidArgument(f"invalid JSON in parameter {name}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """Docker's ``filters`` parameter: ``{"k": ["v"]}`` or the old ``{"k": {"v": true}}``."""
    raw = qjson(request, "filters", {})
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            out[k] = [x for x, on in v.items() if on]
        elif isinstance(v, list):
            out[k] = [str(x) for x in v]
        elif isinstance(v, str):
            out[k] = [v]
        else:
            raise InvalidArgument(f"invalid filter value for {k!r}")
    return out


async def body_json(request: web.Request, *, required: bool = False) -> dict[str, Any]:
    """The JSON object in the body ({} when empty); malformed JSON is a 400, never a 500."""
    data = await request.read()
    if not data.strip():
        if required:
            raise InvalidArgument("request body is empty")
        return {}
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid JSON body: {e}") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise InvalidArgument("invalid JSON body: expected an object")
    return obj


def typed(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None
          ) -> Any:
    """``obj[key]`` if it has the right JSON type (None counts as absent), else a 400."""
    v = obj.get(key)
    if v is None:
        return default
    if kind is int and isinstance(v, bool) or not isinstance(v, kind):
        raise InvalidArgument(f"json: cannot unmarshal {type(v).__name__} into field "
                              f"{key} of the request")
    return v


def ok_json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)


# -- request bodies into blocking readers ----------------------------------------------------
async def spool_body(request: web.Request, tmp_dir: str) -> str:
    """The request body in a temp file (build contexts, archives, image tarballs)."""
    path = os.path.join(tmp_dir, f"api-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    return path


# -- streamed responses ----------------------------------------------------------------------
def closed(request: web.Request) -> bool:
    t = request.transport
    return t is None or t.is_closing()


async def stream_from_thread(request: web.Request, resp: web.StreamResponse,
                             produce: Callable[[BinaryIO], None]) -> None:
    """Run ``produce(out)`` on a thread; what it writes to ``out`` streams to the client.

    A pipe connects them: the thread blocks on a full pipe (back-pressure), and a client
    that goes away closes the read end, so the thread gets EPIPE instead of running on.
    """
    r, w = os.pipe()
    loop = asyncio.get_running_loop()
    out = os.fdopen(w, "wb", buffering=1 << 16)

    def run() -> None:
        try:
            produce(out)
        finally:
            try:
                out.close()
            except OSError:
                pass

    fut = loop.run_in_executor(None, run)
    reader = os.fdopen(r, "rb", buffering=0)
    try:
        while True:
            chunk = await loop.run_in_executor(None, reader.read, 1 << 16)
            if not chunk:
                break
            await resp.write(chunk)
    finally:
        reader.close()
        await asyncio.gather(fut, return_exceptions=True)
    exc = fut.exception()
    if exc is not None:
        # headers are gone: the stream just ends short; say why on the service's stderr
        import sys

        sys.stderr.write(f"berth service: {request.method} {request.path}: stream ended "
                         f"early: {type(exc).__name__}: {exc}\n")


class JsonLines:
    """A response of JSON messages, one per line, written from any thread."""

    def __init__(self, request: web.Request, resp: web.StreamResponse) -> None:
        self.request = request
        self.resp = resp
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def send(self, msg: dict[str, Any]) -> None:
        """Thread-safe: queue one message."""
        data = (json.dumps(msg) + "\r\n").encode()
        self.loop.call_soon_threadsafe(self.queue.put_nowait, data)

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` on a thread while its messages are written; its result."""
        fut = self.loop.run_in_executor(None, work)
        fut.add_done_callback(lambda _f: self.loop.call_soon_threadsafe(
            self.queue.put_nowait, None))
        while True:
            data = await self.queue.get()
            if data is None:
                break
            try:
                await self.resp.write(data)
            except (ConnectionError, RuntimeError):
                pass
        while not self.queue.empty():  # messages queued just before the end
            data = self.queue.get_nowait()
            if data:
                try:
                    await self.resp.write(data)
                except (ConnectionError, RuntimeError):
                    pass
        return await fut


async def json_stream_response(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    return resp


def error_message(e: BaseException) -> dict[str, Any]:
    msg = str(e) or type(e).__name__
    return {"errorDetail": {"message": msg}, "error": msg}


# -- multiplexed framing ---------------------------------------------------------------------
def frame(stream: int, data: bytes) -> bytes:
    """Docker's stdcopy header: stream (0 stdin, 1 stdout, 2 stderr), 3 zero bytes, size."""
    return struct.pack(">BxxxL", stream, len(data)) + data


# -- hijacked connections --------------------------------------------------------------------
class _HijackResponse(web.StreamResponse):
    _length_check = False  # raw bytes after the headers, neither chunked nor sized


class _Input:
    """Receives what the client sends after the upgrade (aiohttp's payload-parser hook)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        if not self.eof:
            self.eof = True
            self.queue.put_nowait(b"")


async def hijack(request: web.Request, *, tty: bool) -> tuple[web.StreamResponse, _Input]:
    """Answer ``101 UPGRADED`` (``Upgrade: tcp``) and take over the connection.

    Returns the response to write output to and the client's input queue (``b""`` at EOF).
    A client's half-close (``docker`` closes its write side at stdin EOF) must not close
    our side, since output may still follow: the protocol's ``eof_received`` keeps it open.
    """
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    resp = _HijackResponse(status=101 if upgrade else 200)
    resp.headers["Content-Type"] = RAW_STREAM if tty else \
        "application/vnd.docker.multiplexed-stream"
    if upgrade:
        resp.headers["Connection"] = "Upgrade"
        resp.headers["Upgrade"] = "tcp"
    resp.force_close()
    await resp.prepare(request)
    inp = _Input()
    proto: Any = request.protocol
    proto.set_parser(inp)
    transport: Any = request.transport
    transport.set_protocol(_KeepOpenOnEof(proto, inp.feed_eof))
    return resp, inp


class _KeepOpenOnEof(asyncio.Protocol):
    """aiohttp's protocol, except that the client's EOF half-closes instead of closing."""

    def __init__(self, inner: Any, on_eof: Callable[[], None]) -> None:
        self.inner = inner
        self.on_eof = on_eof

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.on_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def detach_keys(spec: str | None) -> bytes:
    """Docker's ``detachKeys`` (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``...) as bytes."""
    if not spec:
        return b"\x10\x11"
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(k))
        elif k.startswith("ctrl-") and len(k) == 6 and ("a" <= k[5] <= "z" or k[5] in "@[\\]^_"):
            out.append(ord(k[5].upper()) & 0x1F)
        else:
            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


async def pump_input(inp: _Input, sock: socket.socket, *, close_on_eof: bool,
                     detach: bytes | None = None) -> bool:
    """Client input → a non-blocking socket (conmon's attach socket, or a socketpair).

    With ``detach`` (a tty), that key sequence ends the session without forwarding it, as
    dockerd does; returns True then, False at the client's EOF.
    """
    loop = asyncio.get_running_loop()
    pending = b""
    while True:
        data = await inp.queue.get()
        if detach and data:
            buf = pending + data
            if detach in buf:
                return True
            keep = len(detach) - 1
            pending = buf[-keep:] if keep else b""
        if not data:
            if close_on_eof:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            return False
        for i in range(0, len(data), 4096):
            try:
                await loop.sock_sendall(sock, data[i:i + 4096])
            except OSError:
                return False


