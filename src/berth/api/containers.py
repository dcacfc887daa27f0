"""``/containers/...``: the container lifecycle, logs, attach, archives and stats."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from typing import Any

from aiohttp import web

from berth.errors import Conflict, InvalidArgument, NotFound

from .common import (
    ATTACH_STARTED,
    RAW_STREAM,
    blocking,
    body_json,
    closed,
    detach_keys,
    engine,
    filters,
    frame,
    hijack,
    no_content,
    ok_json,
    pump_input,
    qbool,
    qfloat,
    qint,
    spool_body,
    stream_from_thread,
)
from .views import container_summary

_STREAMS = {"stdout": 1, "stderr": 2}


async def list_(request: web.Request) -> web.Response:
    eng = engine(request)
    show_all, limit = qbool(request, "all"), qint(request, "limit", -1) or -1
    size, flt = qbool(request, "size"), filters(request)

    def collect() -> list[dict[str, Any]]:
        recs = eng.containers(all=show_all or limit > 0, filters=flt)
        if limit > 0:
            recs = recs[:limit]
        return [container_summary(eng, r, size=size) for r in recs]

    return ok_json(await blocking(collect))


async def create(request: web.Request) -> web.Response:
    from .create import options_from_json

    eng = engine(request)
    body = await body_json(request, required=True)
    name = request.query.get("name") or None
    opts, extra = options_from_json(body, name)

    def make() -> Any:
        from berth.oci import reference

        # a missing image is the client's to pull (docker pulls, shows progress, retries)
        try:
            eng.image_service.resolve(opts.image)
        except NotFound:
            familiar = reference.parse(opts.image).with_default_tag().familiar
            raise NotFound(f"No such image: {familiar}") from None
        rec = eng.container_create(opts, notify=None)
        try:
            for net, ep in extra:
                ipam = ep.get("IPAMConfig") or {}
                eng.network_connect(net, rec.id, aliases=ep.get("Aliases") or [],
                                    ip=ipam.get("IPv4Address") or None)
        except BaseException:
            eng.container_remove(rec.id, force=True, volumes=True)
            raise
        return rec

    rec = await blocking(make)
    return ok_json({"Id": rec.id, "Warnings": []}, 201)


def _cid(request: web.Request) -> str:
    return request.match_info["id"]


async def inspect(request: web.Request) -> web.Response:
    eng = engine(request)

    def get() -> dict[str, Any]:
        data: dict[str, Any] = eng.container_inspect(_cid(request))
        if qbool(request, "size"):
            from berth.store.fsutil import tree_size

            data["SizeRw"] = tree_size(eng.container(_cid(request)).upper)
            data["SizeRootFs"] = 0
        return data

    return ok_json(await blocking(get))


async def start(request: web.Request) -> web.Response:
    eng = engine(request)
    rec = await blocking(eng.container, _cid(request))
    started = request.app[ATTACH_STARTED]
    if time.monotonic() - started.pop(rec.id, -60.0) < 60:
        return no_content()  # the client's attach already started this run
    if rec.status in ("running", "paused"):
        return web.Response(status=304)
    await blocking(eng.container_start, rec.id)
    return no_content()


async def stop(request: web.Request) -> web.Response:
    eng = engine(request)
    rec = await blocking(eng.container, _cid(request))
    if not rec.running:
        return web.Response(status=304)
    await blocking(eng.container_stop, rec.id, qint(request, "t"))
    return no_content()


async def restart(request: web.Request) -> web.Response:
    await blocking(engine(request).container_restart, _cid(request), qint(request, "t"))
    return no_content()


async def kill(request: web.Request) -> web.Response:
    await blocking(engine(request).container_kill, _cid(request),
                   request.query.get("signal") or "KILL")
    return no_content()


async def remove(request: web.Request) -> web.Response:
    await blocking(engine(request).container_remove, _cid(request),
                   force=qbool(request, "force"), volumes=qbool(request, "v"))
    return no_content()


async def rename(request: web.Request) -> web.Response:
    new = request.query.get("name")
    if not new:
        raise InvalidArgument("name is required")
    await blocking(engine(request).container_rename, _cid(request), new)
    return no_content()


async def pause(request: web.Request) -> web.Response:
    await blocking(engine(request).container_pause, _cid(request))
    return no_content()


async def unpause(request: web.Request) -> web.Response:
    await blocking(engine(request).container_unpause, _cid(request))
    return no_content()


async def prune(request: web.Request) -> web.Response:
    removed, space = await blocking(engine(request).container_prune, filters=filters(request))
    return ok_json({"ContainersDeleted": removed or None, "SpaceReclaimed": space})


async def changes(request: web.Request) -> web.Response:
    kinds = {"C": 0, "A": 1, "D": 2}
    got = await blocking(engine(request).container_diff, _cid(request))
    return ok_json([{"Path": c.path, "Kind": kinds.get(c.kind, 0)} for c in got] or None)


async def top(request: web.Request) -> web.Response:
    ps_args = request.query.get("ps_args")
    titles, rows = await blocking(engine(request).container_top, _cid(request),
                                  ps_args.split() if ps_args else None)
    return ok_json({"Titles": titles, "Processes": rows})


async def resize(request: web.Request) -> web.Response:
    await blocking(engine(request).container_resize, _cid(request),
                   qint(request, "h", 0) or 0, qint(request, "w", 0) or 0)
    return web.Response(status=200)


async def update(request: web.Request) -> web.Response:
    """``docker update``: resources live through the runtime, the bundle, restart policy."""
    from .update import update_options

    eng = engine(request)
    body = await body_json(request)
    opts = update_options(body)
    await blocking(eng.container, _cid(request))  # 404 before "nothing to change"
    if not opts.empty():
        await blocking(eng.container_update, _cid(request), opts)
    return ok_json({"Warnings": []})


# -- wait ------------------------------------------------------------------------------------
async def wait(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    cond = request.query.get("condition") or "not-running"
    if cond not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {cond!r}")
    key = _cid(request)
    try:
        rec = await blocking(eng.container, key)
    except NotFound:
        # an --rm container that an attach started may be gone before its client asks
        # to wait for it: its exit code is in the event log
        code = await blocking(_exit_from_events, eng, key) \
            if cond in ("next-exit", "removed") else None
        if code is None:
            raise
        return ok_json({"StatusCode": code, "Error": None})
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)  # headers now: the client may start the container
    # the run an attach just started is the "next" exit the client is waiting for
    started0 = None if rec.id in request.app[ATTACH_STARTED] else rec.started_at

    def waiter() -> int:
        last = rec
        t0 = time.monotonic()
        while True:
            cur = eng.container_service.find(rec.id)
            if cur is None:
                return last.exit_code or 0
            last = cur
            if cond == "not-running" and not cur.running:
                return cur.exit_code or 0
            if cond == "next-exit" and not cur.running and cur.started_at != started0:
                return cur.exit_code or 0
            if closed(request):
                return -1
            # short runs are the common case (run --rm): look often at first
            time.sleep(0.01 if time.monotonic() - t0 < 5 else 0.1)

    code = await blocking(waiter)
    try:
        await resp.write(json.dumps({"StatusCode": code, "Error": None}).encode())
    except ConnectionError:
        pass
    return resp


def _exit_from_events(eng: Any, cid: str) -> int | None:
    """The exit code of the last ``die`` event of a (removed) container given by full ID."""
    if len(cid) != 64:
        return None
    code = None
    for ev in eng.store.events.read(
            since=time.time() - 300,
            match=lambda e: e.get("Type") == "container" and e.get("Action") == "die"
            and (e.get("Actor") or {}).get("ID") == cid):
        try:
            code = int(ev["Actor"]["Attributes"].get("exitCode", 0))
        except (KeyError, ValueError, TypeError):
            code = 0
    return code


# -- logs ------------------------------------------------------------------------------------
async def logs(request: web.Request) -> web.StreamResponse:
    from berth.units import rfc3339_nano

    eng = engine(request)
    out, err = qbool(request, "stdout"), qbool(request, "stderr")
    if not (out or err):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    rec = await blocking(eng.container, _cid(request))
    tty = bool(rec.config.get("Tty"))
    tail_s = request.query.get("tail", "all")
    tail = None if tail_s in ("all", "") else qint(request, "tail")
    stamps = qbool(request, "timestamps")
    follow = qbool(request, "follow")
    resp = web.StreamResponse(headers={"Content-Type": RAW_STREAM if tty else
                                       "application/vnd.docker.multiplexed-stream"})
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=256)
    gone = False

    def produce() -> None:
        try:
            for stream, ts, line in eng.container_logs(
                    rec.id, follow=follow, tail=tail, since=qfloat(request, "since"),
                    until=qfloat(request, "until"), cancel=lambda: gone):
                if gone:
                    return
                if (stream == "stderr" and not err) or (stream != "stderr" and not out):
                    continue
                if stamps:
                    line = rfc3339_nano(ts.timestamp()).encode() + b" " + line
                data = line if tty else frame(_STREAMS.get(stream, 1), line)
                asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    fut = loop.run_in_executor(None, produce)
    try:
        while True:
            data = await queue.get()
            if data is None:
                break
            await resp.write(data)
    except ConnectionError:
        pass
    finally:
        gone = True
        while not queue.empty():
            queue.get_nowait()
        await asyncio.gather(fut, return_exceptions=True)
    return resp


# -- attach ----------------------------------------------------------------------------------
async def attach(request: web.Request) -> web.StreamResponse:
    """Hijack the connection and relay conmon's attach socket (starting a created container,
    as Podman does, so output from its first instant is not lost)."""
    from berth.container import monitor

    eng = engine(request)
    rec = await blocking(eng.container, _cid(request))
    if rec.status == "paused":
        raise Conflict("You cannot attach to a paused container, unpause it first")
    if rec.status not in ("running", "created", "exited"):
        raise Conflict("You cannot attach to a stopped container, start it first")
    want_in = qbool(request, "stdin")
    want_out, want_err = qbool(request, "stdout"), qbool(request, "stderr")
    if not qbool(request, "stream") and not qbool(request, "logs"):
        raise InvalidArgument("Bad parameters: you must choose stream or logs")
    tty = bool(rec.config.get("Tty"))

    def connect() -> socket.socket:
        cur = eng.container(rec.id)
        if cur.status != "running":
            sock = eng.container_start_connected(cur.id)
            request.app[ATTACH_STARTED][cur.id] = time.monotonic()
            return sock
        return monitor.connect(monitor.MonitorHandle.from_dict(cur.monitor))

    if qbool(request, "logs"):
        past = await blocking(lambda: list(eng.container_logs(rec.id)))
    if not qbool(request, "stream"):  # the logs so far, and done
        resp, _ = await hijack(request, tty=tty)
        await _write_records(resp, past, tty, want_out, want_err)
        return resp
    sock = await blocking(connect)
    sock.setblocking(False)
    resp, inp = await hijack(request, tty=tty)
    if qbool(request, "logs"):
        await _write_records(resp, past, tty, want_out, want_err)
    loop = asyncio.get_running_loop()
    keys = detach_keys(request.query.get("detachKeys")) if tty else None
    feeder = asyncio.ensure_future(pump_input(inp, sock, close_on_eof=not tty,
                                              detach=keys)) if want_in else None
    reader: asyncio.Future[bytes] | None = None
    try:
        while True:
            if reader is None:
                reader = asyncio.ensure_future(loop.sock_recv(sock, 65536))
            waits: set[asyncio.Future[Any]] = {reader}
            if feeder is not None and not feeder.done():
                waits.add(feeder)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if feeder is not None and feeder.done() and not feeder.cancelled() \
                    and feeder.exception() is None and feeder.result():
                break  # the user typed the detach keys: the container runs on
            if not reader.done():
                continue
            data = reader.result()
            reader = None
            if not data:
                break
            stream = 2 if data[0] == monitor.STDERR else 1
            if (stream == 1 and not want_out) or (stream == 2 and not want_err):
                continue
            await resp.write(data[1:] if tty else frame(stream, data[1:]))
    except (ConnectionError, OSError):
        pass
    finally:
        if reader is not None:
            reader.cancel()
        if feeder is not None:
            feeder.cancel()
        sock.close()
    return resp


async def _write_records(resp: web.StreamResponse, records: list[Any], tty: bool,
                         want_out: bool, want_err: bool) -> None:
    """Log records (``attach?logs=1``) as the attach stream would have carried them.

    docker-py reads a hijacked stream from the raw socket under its HTTP reader, so bytes
    arriving with the 101 headers would be lost in that reader's buffer: let the client
    take the headers first (dockerd's replay is slow enough not to meet this).
    """
    if records:
        await asyncio.sleep(0.05)
    for stream, _ts, line in records:
        n = _STREAMS.get(stream, 1)
        if (n == 1 and want_out) or (n == 2 and want_err):
            await resp.write(line if tty else frame(n, line))


# -- archive ---------------------------------------------------------------------------------
def _path(request: web.Request) -> str:
    p = request.query.get("path")
    if not p:
        raise InvalidArgument("path is required")
    return p


async def archive_head(request: web.Request) -> web.Response:
    st = await blocking(engine(request).container_path_stat, _cid(request), _path(request))
    hdr = base64.b64encode(json.dumps(st).encode()).decode()
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": hdr,
                                             "Content-Type": "application/x-tar"})


async def archive_get(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    path = _path(request)
    st = await blocking(eng.container_path_stat, _cid(request), path)
    resp = web.StreamResponse(headers={
        "Content-Type": "application/x-tar",
        "X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(st).encode()).decode()})
    await resp.prepare(request)
    await stream_from_thread(request, resp, lambda out: eng.container_cp(
        _cid(request), path, out, to_container=False))
    return resp


async def archive_put(request: web.Request) -> web.Response:
    eng = engine(request)
    path = _path(request)
    await blocking(eng.container, _cid(request))
    spooled = await spool_body(request, eng.store.tmp)
    try:
        def put() -> None:
            with open(spooled, "rb") as f:
                eng.container_cp(_cid(request), path, f, to_container=True)

        await blocking(put)
    finally:
        os.unlink(spooled)
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    await blocking(eng.container, _cid(request))
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await resp.prepare(request)
    await stream_from_thread(request, resp,
                             lambda out: eng.container_export(_cid(request), out))
    return resp


# -- stats -----------------------------------------------------------------------------------
def _stats_json(row: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
    rec, s = row["record"], row["sample"]
    ncpu = os.cpu_count() or 1
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    cpu = {"cpu_usage": {"total_usage": s.cpu_ns, "usage_in_kernelmode": 0,
                         "usage_in_usermode": s.cpu_ns},
           "system_cpu_usage": int(time.monotonic() * 1e9) * ncpu, "online_cpus": ncpu,
           "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    return {"read": now, "preread": prev["read"] if prev else "0001-01-01T00:00:00Z",
            "id": rec.id, "name": "/" + rec.name,
            "pids_stats": {"current": s.pids},
            "cpu_stats": cpu, "precpu_stats": prev["cpu_stats"] if prev else {
                "cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": ncpu},
            "memory_stats": {"usage": s.mem_usage, "limit": s.mem_limit, "stats": {}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "Read", "value": s.blk_read},
                {"major": 0, "minor": 0, "op": "Write", "value": s.blk_write}]},
            "networks": {"eth0": {"rx_bytes": s.net_rx, "tx_bytes": s.net_tx,
                                  "rx_packets": 0, "tx_packets": 0, "rx_errors": 0,
                                  "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}}}


async def stats(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    stream = qbool(request, "stream", True) and not qbool(request, "one-shot")
    await blocking(eng.container, _cid(request))
    if not stream:
        rows = await blocking(eng.container_stats, [_cid(request)], interval=0.1)
        return ok_json(_stats_json(rows[0], None))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    prev = None
    try:
        while not closed(request):
            rows = await blocking(eng.container_stats, [_cid(request)], interval=0.5)
            cur = _stats_json(rows[0], prev)
            await resp.write((json.dumps(cur) + "\n").encode())
            prev = cur
            if not rows[0]["record"].running:
                break
            await asyncio.sleep(0.5)
    except (ConnectionError, NotFound):
        pass
    return resp


def register(routes: Any) -> None:
    r = routes.add
    r("GET", "/containers/json", list_)
    r("POST", "/containers/create", create)
    r("POST", "/containers/prune", prune)
    r("GET", "/containers/{id}/json", inspect)
    r("POST", "/containers/{id}/start", start)
    r("POST", "/containers/{id}/stop", stop)
    r("POST", "/containers/{id}/restart", restart)
    r("POST", "/containers/{id}/kill", kill)
    r("DELETE", "/containers/{id}", remove)
    r("POST", "/containers/{id}/rename", rename)
    r("POST", "/containers/{id}/pause", pause)
    r("POST", "/containers/{id}/unpause", unpause)
    r("POST", "/containers/{id}/wait", wait)
    r("POST", "/containers/{id}/update", update)
    r("POST", "/containers/{id}/resize", resize)
    r("GET", "/containers/{id}/changes", changes)
    r("GET", "/containers/{id}/top", top)
    r("GET", "/containers/{id}/logs", logs)
    r("POST", "/containers/{id}/attach", attach)
    r("HEAD", "/containers/{id}/archive", archive_head)
    r("GET", "/containers/{id}/archive", archive_get)
    r("PUT", "/containers/{id}/archive", archive_put)
    r("GET", "/containers/{id}/export", export)
    r("GET", "/containers/{id}/stats", stats)
