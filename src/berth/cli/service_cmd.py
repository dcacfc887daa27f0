"""``system service`` (the Docker Engine API) and ``events`` (the store's event log).

Both are thin: the service is :mod:`berth.api` (aiohttp, imported only here), ``events``
reads :mod:`berth.store.events` through the Engine, the same log ``GET /events`` streams.
"""

from __future__ import annotations

import json
import sys
import time

from berth.cli.main import Ctx
from berth.cli.parser import Parser, parse_filters


def service(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth system service", "Serve the Docker Engine API (v1.41) for docker, "
               "Docker Compose and docker-py")
    p.add_argument("-H", "--host", action="append", default=[],
                   help="unix:///PATH or tcp://127.0.0.1:PORT to listen on (repeatable; "
                        "default unix://RUNROOT/docker.sock)")
    p.add_argument("-t", "--timeout", type=float, default=5.0,
                   help="Exit after this many idle seconds (0: serve forever)")
    p.add_argument("--tls-cert", default=None, help="Server certificate (mutual TLS)")
    p.add_argument("--tls-key", default=None, help="Server key (mutual TLS)")
    p.add_argument("--tls-ca", default=None, help="CA that client certificates must chain to")
    a = p.parse(argv)
    from berth.api.server import ServiceOptions, check_hosts, default_socket, serve
    from berth.errors import InvalidArgument

    if a.timeout < 0:
        raise InvalidArgument("--timeout must be 0 (forever) or more seconds")
    opts = ServiceOptions(hosts=a.host, timeout=a.timeout, tls_cert=a.tls_cert,
                          tls_key=a.tls_key, tls_ca=a.tls_ca)
    check_hosts(opts)  # bad flags fail before the store is opened
    eng = ctx.engine
    if not opts.hosts:
        opts.hosts = [default_socket(eng.runroot)]

    def ready(listening: list[str]) -> None:
        for addr in listening:
            sys.stderr.write(f"berth: serving the Docker Engine API on {addr}\n")
        sys.stderr.flush()

    serve(eng, opts, ready)
    return 0


def events(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import parse_timestamp

    p = Parser("berth events", "Get real time events from the store")
    p.add_argument("-f", "--filter", action="append", default=[],
                   help="Filter output based on conditions provided")
    p.add_argument("--format", default=None, help="Format the output using a Go template "
                   "or 'json'")
    p.add_argument("--since", default=None, help="Show all events created since timestamp")
    p.add_argument("--until", default=None, help="Stream events until this timestamp")
    a = p.parse(argv)
    from berth.store.events import FILTER_KEYS, build_predicate

    filters = parse_filters(a.filter, set(FILTER_KEYS), "events")
    pred = build_predicate(filters)
    since = parse_timestamp(a.since) if a.since else None
    until = parse_timestamp(a.until) if a.until else None
    log = ctx.engine.store.events
    follower = log.follower() if until is None or until > time.time() else None
    if since is not None:
        for ev in log.read(since=since, until=until, match=pred):
            _print(ev, a.format)
    if follower is None:
        return 0
    try:
        while until is None or time.time() < until:
            for ev in follower.poll():
                if pred(ev) and (until is None or ev["timeNano"] / 1e9 <= until):
                    _print(ev, a.format)
            time.sleep(0.1)
    finally:
        follower.close()
    return 0


def _print(ev: dict, fmt: str | None) -> None:
    if fmt == "json" or fmt == "{{json .}}":
        line = json.dumps(ev)
    elif fmt:
        from berth.cli.gotemplate import render

        line = render(fmt, ev)
    else:
        line = format_event(ev)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def format_event(ev: dict) -> str:
    """Docker's line: ``2024-01-02T03:04:05.000000000Z container start ID (k=v, ...)``."""
    ns = ev.get("timeNano", 0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    actor = ev.get("Actor") or {}
    attrs = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
    return (f"{stamp}.{ns % 1_000_000_000:09d}Z {ev.get('Type')} {ev.get('Action')} "
            f"{actor.get('ID', '')}" + (f" ({attrs})" if attrs else ""))
