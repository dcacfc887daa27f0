"""Registry credentials in Docker's own file, so ``docker login`` and ``berth login`` share them.

The file is ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``) and its
``auths`` map holds, per server, ``{"auth": base64("user:password")}``. Docker Hub is keyed
``https://index.docker.io/v1/`` for historical reasons; every other registry by
``host[:port]``. Other keys in the file (``psFormat``, ...) are kept as they are when we
rewrite it.

When the file names a credential helper for a registry (``credHelpers[host]``, else
``credsStore``), the password goes to the helper and never into the file, as with Docker:
``auths`` then gets only an empty entry for the server, which is how ``docker login``
marks it. See :mod:`berth.registry.client.credhelpers`.

Writes are atomic (temp file, fsync, rename) and the file is mode 0600, because it holds
passwords in a reversible encoding.
"""

from __future__ import annotations

import base64
import contextvars
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from berth.errors import InvalidArgument

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def config_path() -> str:
    """Where the credentials file lives; ``DOCKER_CONFIG`` names its directory."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def normalize_server(server: str | None) -> str:
    """The registry domain a user meant: strips a scheme and path; Hub aliases → docker.io."""
    if not server:
        return "docker.io"
    s = server.strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if not s:
        raise InvalidArgument(f"invalid registry address: {server!r}")
    return "docker.io" if s.lower() in _HUB_ALIASES else s


def server_key(domain: str) -> str:
    """The ``auths`` key Docker uses for a registry domain."""
    return DOCKER_HUB_KEY if domain == "docker.io" else domain


def _read() -> dict[str, Any]:
    try:
        with open(config_path(), encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot read {config_path()}: {e}") from None
    return doc if isinstance(doc, dict) else {}


def _write(doc: dict[str, Any]) -> None:
    from berth.store.fsutil import atomic_write

    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomic_write(path, (json.dumps(doc, indent="\t") + "\n").encode(), mode=0o600)


def _candidates(domain: str) -> list[str]:
    """Keys an entry for ``domain`` may have been written under (by Docker or by hand)."""
    if domain == "docker.io":
        return [DOCKER_HUB_KEY, "index.docker.io", "docker.io", "https://index.docker.io"]
    return [domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v2/",
            f"https://{domain}/v1/"]


_override: contextvars.ContextVar[tuple[str | None, Credentials] | None] = \
    contextvars.ContextVar("berth_registry_credentials", default=None)


@contextmanager
def override(server: str | None, creds: Credentials) -> Iterator[None]:
    """Use ``creds`` instead of the file in this context (the API's ``X-Registry-Auth``).

    ``server`` limits them to one registry; None means whichever registry is contacted.
    """
    token = _override.set((normalize_server(server) if server else None, creds))
    try:
        yield
    finally:
        _override.reset(token)


def _helper(doc: dict[str, Any], domain: str) -> str | None:
    """The credential helper config.json names for ``domain`` (per-registry first)."""
    per = doc.get("credHelpers")
    if isinstance(per, dict):
        for key in _candidates(domain):
            name = per.get(key)
            if isinstance(name, str) and name:
                return name
    store = doc.get("credsStore")
    return store if isinstance(store, str) and store else None


def load(domain: str) -> Credentials | None:
    """Stored credentials for a registry domain (or the context's override), or None."""
    over = _override.get()
    if over is not None and over[0] in (None, domain):
        return over[1]
    doc = _read()
    helper = _helper(doc, domain)
    if helper is not None:
        from berth.registry.client import credhelpers

        got = credhelpers.get(helper, server_key(domain))
        if got is not None:
            return Credentials(*got)
        # like Docker, an inline entry still counts when the helper holds nothing
    auths = doc.get("auths") or {}
    if not isinstance(auths, dict):
        return None
    for key in _candidates(domain):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]))
        encoded = entry.get("auth")
        if isinstance(encoded, str) and encoded:
            try:
                user, sep, pw = base64.b64decode(encoded).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            if sep:
                return Credentials(user, pw)
    return None


def save(domain: str, creds: Credentials) -> None:
    """Store credentials for ``domain`` (replacing any entry under an alias key)."""
    doc = _read()
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    for key in _candidates(domain):
        auths.pop(key, None)
    helper = _helper(doc, domain)
    if helper is not None:
        from berth.registry.client import credhelpers

        credhelpers.store(helper, server_key(domain), creds.username, creds.password)
        auths[server_key(domain)] = {}
    else:
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        auths[server_key(domain)] = {"auth": token}
    doc["auths"] = auths
    _write(doc)


def erase(domain: str) -> bool:
    """Forget ``domain``'s credentials; False when there were none."""
    doc = _read()
    found = False
    helper = _helper(doc, domain)
    if helper is not None:
        from berth.registry.client import credhelpers

        found = credhelpers.erase(helper, server_key(domain))
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return found
    for key in _candidates(domain):
        if key in auths:
            del auths[key]
            found = True
    if found:
        _write(doc)
    return found
