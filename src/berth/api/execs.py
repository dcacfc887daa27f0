"""``/containers/{id}/exec`` and ``/exec/{id}/...``: create, start (hijacked), resize, inspect.

The Engine runs an exec with file descriptors (the CLI hands it its terminal); here they are
socketpairs whose other ends this loop reads and writes without blocking: client input
goes into one, each output stream comes out of its own and is framed (stdout 1, stderr 2)
unless the exec has a tty.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web

from berth.errors import InvalidArgument

from .common import (
    blocking,
    body_json,
    engine,
    frame,
    hijack,
    ok_json,
    pump_input,
    qint,
    typed,
)


async def create(request: web.Request) -> web.Response:
    body = await body_json(request, required=True)
    cmd = typed(body, "Cmd", (list, str), [])
    if isinstance(cmd, str):
        cmd = [cmd]
    env = typed(body, "Env", list, []) or []
    eid = await blocking(
        engine(request).exec_create, request.match_info["id"], cmd,
        tty=typed(body, "Tty", bool, False), stdin=typed(body, "AttachStdin", bool, False),
        env=[e for e in env if isinstance(e, str) and "=" in e],
        user=typed(body, "User", str, ""), workdir=typed(body, "WorkingDir", str, ""),
        privileged=typed(body, "Privileged", bool, False),
        detach_keys=typed(body, "DetachKeys", str, ""))
    return ok_json({"Id": eid}, 201)


async def inspect(request: web.Request) -> web.Response:
    eng = engine(request)

    def get() -> dict[str, Any]:
        state: dict[str, Any] = eng.exec_inspect(request.match_info["id"])
        if state["Running"] and not state["Pid"]:
            state["Pid"] = eng.exec_running_pid(state["ID"])
        return state

    return ok_json(await blocking(get))


async def resize(request: web.Request) -> web.Response:
    await blocking(engine(request).exec_resize, request.match_info["id"],
                   qint(request, "h", 0) or 0, qint(request, "w", 0) or 0)
    return web.Response(status=201)


async def start(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    eid = request.match_info["id"]
    body = await body_json(request)
    detach = typed(body, "Detach", bool, False)
    state = await blocking(eng.exec_inspect, eid)
    if state["Running"] or state["ExitCode"] is not None:
        from berth.errors import Conflict

        raise Conflict(f"Error: Exec command {state['ID']} has already run")
    if detach:
        await blocking(eng.exec_start, eid, detach=True)
        return ok_json({})
    tty = bool(state["ProcessConfig"]["tty"])
    in_ours, in_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    out_ours, out_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    err_ours, err_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (in_ours, out_ours, err_ours):
        s.setblocking(False)
    resp, inp = await hijack(request, tty=tty)
    loop = asyncio.get_running_loop()

    def run() -> int | None:
        try:
            return eng.exec_start(eid, stdin_fd=in_theirs.fileno(),
                                  stdout_fd=out_theirs.fileno(),
                                  stderr_fd=err_theirs.fileno())
        finally:
            for s in (in_theirs, out_theirs, err_theirs):
                s.close()

    async def relay(sock: socket.socket, stream: int) -> None:
        try:
            while True:
                data = await loop.sock_recv(sock, 65536)
                if not data:
                    return
                await resp.write(data if tty else frame(stream, data))
        except (ConnectionError, OSError):
            return

    job = loop.run_in_executor(None, run)
    feeder = asyncio.ensure_future(pump_input(inp, in_ours, close_on_eof=True))
    try:
        await asyncio.gather(relay(out_ours, 1), relay(err_ours, 2))
        await asyncio.gather(job, return_exceptions=True)
    finally:
        feeder.cancel()
        for s in (in_ours, out_ours, err_ours):
            s.close()
    exc = job.exception() if job.done() else None
    if exc is not None and not isinstance(exc, InvalidArgument):
        try:
            await resp.write(frame(2, f"Error: {exc}\n".encode()) if not tty
                             else f"Error: {exc}\r\n".encode())
        except ConnectionError:
            pass
    return resp


def register(routes: Any) -> None:
    routes.add("POST", "/containers/{id}/exec", create)
    routes.add("POST", "/exec/{id}/start", start)
    routes.add("POST", "/exec/{id}/resize", resize)
    routes.add("GET", "/exec/{id}/json", inspect)
