"""``/images/...``, ``/build``, ``/commit``: images in and out, with Docker's JSON progress."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from aiohttp import web

from berth.errors import BerthError, InvalidArgument

from .common import (
    JsonLines,
    blocking,
    engine,
    error_message,
    filters,
    json_stream_response,
    ok_json,
    qbool,
    qjson,
    spool_body,
    stream_from_thread,
)
from .views import image_summary


class JsonPullProgress:
    """Registry progress as Docker's ``{"status", "id", "progressDetail"}`` messages."""

    def __init__(self, out: JsonLines) -> None:
        self.out = out
        self.totals: dict[str, tuple[int, int | None]] = {}

    def status(self, message: str, layer: str | None = None) -> None:
        self.out.send({"status": message, **({"id": layer} if layer else {})})

    def layer_start(self, layer: str, action: str, total: int | None) -> None:
        self.totals[layer] = (0, total)
        self.action = action
        self.out.send({"status": action, "id": layer,
                       "progressDetail": {"current": 0, "total": total or 0}})

    def advance(self, layer: str, n: int) -> None:
        cur, total = self.totals.get(layer, (0, None))
        step = max((total or 0) // 20, 1 << 18)
        if (cur + n) // step != cur // step:
            self.out.send({"status": getattr(self, "action", "Downloading"), "id": layer,
                           "progressDetail": {"current": cur + n, "total": total or 0}})
        self.totals[layer] = (cur + n, total)

    def done(self, layer: str, status: str) -> None:
        self.out.send({"status": status, "id": layer, "progressDetail": {}})


class _StreamText:
    """A text stream whose writes become ``{"stream": ...}`` messages (build output)."""

    def __init__(self, out: JsonLines) -> None:
        self.out = out

    def write(self, text: str) -> int:
        if text:
            self.out.send({"stream": text})
        return len(text)

    def flush(self) -> None:
        pass


def _auth_header(request: web.Request) -> dict[str, Any] | None:
    raw = request.headers.get("X-Registry-Auth")
    if not raw:
        return None
    try:
        pad = "=" * (-len(raw) % 4)
        data = json.loads(base64.urlsafe_b64decode(raw + pad))
    except (ValueError, TypeError):
        raise InvalidArgument("invalid X-Registry-Auth header") from None
    return data if isinstance(data, dict) else None


async def _progress_call(request: web.Request, work: Any) -> web.StreamResponse:
    """Run ``work(lines)`` on a thread, streaming its messages; an error is the last one."""
    resp = await json_stream_response(request)
    lines = JsonLines(request, resp)

    def run() -> None:
        try:
            work(lines)
        except BerthError as e:
            lines.send(error_message(e))
        except Exception as e:  # noqa: BLE001 - reported in the stream, logged as a bug
            import sys
            import traceback

            sys.stderr.write(f"berth service: {request.path}: internal error\n"
                             f"{traceback.format_exc()}")
            lines.send(error_message(RuntimeError(f"internal error: {type(e).__name__}")))

    await lines.run(run)
    return resp


# -- listing and metadata ----------------------------------------------------------------
async def list_(request: web.Request) -> web.Response:
    eng = engine(request)
    flt = filters(request)
    recs = await blocking(eng.images, all=qbool(request, "all"), filters=flt)
    return ok_json([image_summary(r) for r in recs])


async def inspect(request: web.Request) -> web.Response:
    return ok_json(await blocking(engine(request).image_inspect, request.match_info["name"]))


async def history(request: web.Request) -> web.Response:
    rows = await blocking(engine(request).history, request.match_info["name"])
    return ok_json([{"Id": r["ID"], "Created": int(r["Created"]), "CreatedBy": r["CreatedBy"],
                     "Tags": r["Tags"] or None, "Size": r["Size"], "Comment": r["Comment"]}
                    for r in rows])


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo")
    if not repo:
        raise InvalidArgument("repository name is required")
    target = repo + (":" + request.query["tag"] if request.query.get("tag") else "")
    await blocking(engine(request).tag, request.match_info["name"], target)
    return web.Response(status=201)


def _removed(result: Any) -> list[dict[str, str]]:
    return [{"Untagged": t} for t in result.untagged] + [{"Deleted": d} for d in result.deleted]


async def remove(request: web.Request) -> web.Response:
    result, errors = await blocking(engine(request).rmi, [request.match_info["name"]],
                                    force=qbool(request, "force"),
                                    prune_parents=not qbool(request, "noprune"))
    if errors:
        raise errors[0]
    return ok_json(_removed(result))


async def prune(request: web.Request) -> web.Response:
    flt = filters(request)
    dangling = flt.pop("dangling", ["true"])
    all_ = any(v.lower() in ("false", "0") for v in dangling)
    result = await blocking(engine(request).image_prune, all=all_, filters=flt)
    return ok_json({"ImagesDeleted": _removed(result) or None,
                    "SpaceReclaimed": result.reclaimed})


async def search(request: web.Request) -> web.Response:
    return ok_json({"message": "berth has no index service: search is not supported; "
                               "browse your registry instead"}, 501)


# -- registry ------------------------------------------------------------------------------
async def create(request: web.Request) -> web.StreamResponse:
    """``fromImage`` pulls, ``fromSrc`` imports (``-``: the body)."""
    eng = engine(request)
    src, image = request.query.get("fromSrc"), request.query.get("fromImage")
    tag_ = request.query.get("tag") or ""
    if src:
        return await _import(request, src)
    if not image:
        raise InvalidArgument("fromImage or fromSrc is required")
    ref = image
    if tag_:
        ref = f"{image}@{tag_}" if tag_.startswith("sha256:") else f"{image}:{tag_}"
    auth = _auth_header(request)
    platform = request.query.get("platform") or None

    def work(lines: JsonLines) -> None:
        with eng.registry_credentials(auth):
            results = eng.pull(ref, platform=platform, progress=JsonPullProgress(lines))
        for r in results:
            lines.send({"status": f"Digest: {r.digest}"})
            what = "Image is up to date for" if r.up_to_date else \
                "Downloaded newer image for"
            lines.send({"status": f"Status: {what} {r.reference.familiar}"})

    return await _progress_call(request, work)


async def _import(request: web.Request, src: str) -> web.StreamResponse:
    eng = engine(request)
    if src != "-":
        raise InvalidArgument("fromSrc must be '-' (the request body): berth does not "
                              "fetch URLs")
    repo = request.query.get("repo") or None
    if repo and request.query.get("tag"):
        repo += ":" + request.query["tag"]
    changes = request.query.getall("changes", [])
    spooled = await spool_body(request, eng.store.tmp)

    def work(lines: JsonLines) -> None:
        try:
            with open(spooled, "rb") as f:
                image_id = eng.import_image(f, repo, changes=changes,
                                            message=request.query.get("message", ""))
        finally:
            os.unlink(spooled)
        lines.send({"status": image_id})

    return await _progress_call(request, work)


async def push(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    name = request.match_info["name"]
    if request.query.get("tag"):
        name += ":" + request.query["tag"]
    auth = _auth_header(request)

    def work(lines: JsonLines) -> None:
        with eng.registry_credentials(auth):
            results = eng.push(name, all_tags=":" not in name.rsplit("/", 1)[-1],
                               progress=JsonPullProgress(lines))
        for r in results:
            tag_ = r.reference.tag or "latest"
            lines.send({"status": f"{tag_}: digest: {r.digest} size: {r.size}"})
            lines.send({"progressDetail": {}, "aux": {"Tag": tag_, "Digest": r.digest,
                                                      "Size": r.size}})

    return await _progress_call(request, work)


# -- archives ------------------------------------------------------------------------------
async def get(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    names = [request.match_info["name"]] if "name" in request.match_info else \
        request.query.getall("names", [])
    if not names:
        raise InvalidArgument("no image names given")
    for n in names:
        await blocking(eng.image, n)  # a 404 before any byte is sent
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await resp.prepare(request)
    await stream_from_thread(request, resp, lambda out: eng.save(names, out))
    return resp


async def load(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    spooled = await spool_body(request, eng.store.tmp)

    def work(lines: JsonLines) -> None:
        try:
            result = eng.load(spooled)
        finally:
            os.unlink(spooled)
        for line in result.lines():
            lines.send({"stream": line + "\n"})

    return await _progress_call(request, work)


async def commit(request: web.Request) -> web.Response:
    eng = engine(request)
    q = request.query
    container = q.get("container")
    if not container:
        raise InvalidArgument("container is required")
    ref = q.get("repo") or None
    if ref and q.get("tag"):
        ref += ":" + q["tag"]
    image_id = await blocking(eng.commit, container, ref, author=q.get("author", ""),
                              message=q.get("comment", ""), changes=q.getall("changes", []),
                              pause=qbool(request, "pause", True))
    return ok_json({"Id": image_id}, 201)


# -- build ---------------------------------------------------------------------------------
async def build(request: web.Request) -> web.StreamResponse:
    from berth.build.progress import ClassicProgress

    eng = engine(request)
    q = request.query
    if q.get("remote"):
        raise InvalidArgument("remote build contexts are not supported by berth; send the "
                              "context as the request body")
    build_args = {k: v for k, v in (qjson(request, "buildargs", {}) or {}).items()
                  if v is not None}
    labels = qjson(request, "labels", {}) or {}
    if not isinstance(build_args, dict) or not isinstance(labels, dict):
        raise InvalidArgument("buildargs and labels must be JSON objects")
    opts: dict[str, Any] = {
        "tags": q.getall("t", []), "build_args": {str(k): str(v) for k, v in
                                                  build_args.items()},
        "target": q.get("target") or None, "no_cache": qbool(request, "nocache"),
        "pull": qbool(request, "pull"), "labels": {str(k): str(v) for k, v in labels.items()}}
    mode = q.get("networkmode")
    if mode and mode != "default":
        opts["network"] = mode
    quiet = qbool(request, "q")
    spooled = await spool_body(request, eng.store.tmp)

    def work(lines: JsonLines) -> None:
        from berth.build.progress import BuildProgress

        progress = BuildProgress() if quiet else ClassicProgress(_StreamText(lines))
        try:
            with open(spooled, "rb") as f:
                result = eng.build(f, dockerfile=q.get("dockerfile") or "Dockerfile",
                                   progress=progress, **opts)
        finally:
            os.unlink(spooled)
        lines.send({"aux": {"ID": result.image_id}})
        if quiet:
            lines.send({"stream": result.image_id + "\n"})

    return await _progress_call(request, work)


async def build_prune(request: web.Request) -> web.Response:
    got = await blocking(engine(request).builder_prune, all=qbool(request, "all"))
    return ok_json({"CachesDeleted": got.removed or None,
                    "SpaceReclaimed": got.reclaimed})


def register(routes: Any) -> None:
    r = routes.add
    r("GET", "/images/json", list_)
    r("POST", "/images/create", create)
    r("POST", "/images/load", load)
    r("GET", "/images/get", get)
    r("GET", "/images/search", search)
    r("POST", "/images/prune", prune)
    r("POST", "/build", build)
    r("POST", "/build/prune", build_prune)
    r("POST", "/commit", commit)
    r("GET", "/images/{name:.+}/json", inspect)
    r("GET", "/images/{name:.+}/history", history)
    r("GET", "/images/{name:.+}/get", get)
    r("POST", "/images/{name:.+}/tag", tag)
    r("POST", "/images/{name:.+}/push", push)
    r("DELETE", "/images/{name:.+}", remove)
