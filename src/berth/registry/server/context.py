"""The state one registry server shares between its handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from berth.registry.server.auth import Htpasswd
from berth.registry.server.storage import Storage
from berth.registry.server.uploads import Uploads


@dataclass
class Registry:
    """Storage, live uploads and policy (auth, read-only) of one running server."""

    storage: Storage
    uploads: Uploads
    htpasswd: Htpasswd | None = None
    read_only: bool = False


REGISTRY = web.AppKey("registry", Registry)


def registry_of(request: web.Request) -> Registry:
    return request.app[REGISTRY]
