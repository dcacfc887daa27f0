"""``-p``/``-P``/``--expose`` as they are *stored*: Docker's ``HostConfig.PortBindings``.

The container row keeps what the user asked for in Docker's own shape
(``{"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}``, ``HostPort`` "" for any
port, ``"8000-8010"`` for "one from this range"), so ``inspect`` shows Docker's JSON and a
restart re-derives the same requests. Host ports are only *decided* at start
(:func:`berth.network.ports.allocate`); the decision lives in the sandbox row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .ports import PortRequest


def bindings_from_flags(publish: Sequence[str]) -> dict[str, list[dict[str, str]]]:
    """``-p`` values -> ``PortBindings`` (invalid specs raise InvalidArgument)."""
    from .ports import parse_publish

    out: dict[str, list[dict[str, str]]] = {}
    for spec in publish:
        for req in parse_publish(spec):
            if not req.host_port_first:
                hp = ""
            elif req.host_port_first == req.host_port_last:
                hp = str(req.host_port_first)
            else:
                hp = f"{req.host_port_first}-{req.host_port_last}"
            out.setdefault(f"{req.container_port}/{req.proto}", []).append(
                {"HostIp": req.host_ip, "HostPort": hp})
    return out


def exposed_from_flags(expose: Sequence[str], bindings: dict[str, Any],
                       image_exposed: dict[str, Any] | None) -> dict[str, dict] | None:
    """Config.ExposedPorts: the image's, ``--expose`` ones and every published port."""
    from .ports import parse_expose

    keys = list((image_exposed or {}).keys())
    for e in expose:
        keys += parse_expose(e)
    keys += list(bindings)
    return {k: {} for k in dict.fromkeys(_normal(k) for k in keys)} or None


def _normal(key: str) -> str:
    return key if "/" in key else f"{key}/tcp"


def requests_of(host_config: dict[str, Any], exposed: Iterable[str] | None
                ) -> list[PortRequest]:
    """The start-time requests: explicit bindings, plus every exposed port under ``-P``.

    Most containers publish nothing: they return before :mod:`.ports` is even imported
    (it is on every bridge start and stop path).
    """
    bindings = host_config.get("PortBindings") or {}
    if not bindings and not host_config.get("PublishAllPorts"):
        return []
    from .ports import PortRequest, publish_all

    reqs: list[PortRequest] = []
    bound: set[str] = set()
    for key, items in bindings.items():
        port, _, proto = _normal(key).partition("/")
        bound.add(_normal(key))
        for b in items or [{}]:
            hp = (b or {}).get("HostPort") or ""
            first, _, last = hp.partition("-")
            f = int(first) if first else 0
            reqs.append(PortRequest(int(port), proto, (b or {}).get("HostIp") or "", f,
                                    int(last) if last else f))
    if host_config.get("PublishAllPorts"):
        reqs += [r for r in publish_all(_normal(k) for k in exposed or ())
                 if f"{r.container_port}/{r.proto}" not in bound]
    return reqs


def fixed_host_ports(reqs: Iterable[PortRequest]) -> list[PortRequest]:
    """Requests that name exactly one host port (the ones a create can check up front)."""
    return [r for r in reqs if r.host_port_first and r.host_port_first == r.host_port_last]
