"""Registry authentication: what the ``WWW-Authenticate`` challenge asks for, and answering it.

Registries speak two schemes. *Basic*: send the user's password with every request.
*Bearer* (Docker's token flow): trade the password — or nothing, for anonymous pulls — at
the challenge's ``realm`` for a short-lived token limited to a ``scope`` such as
``repository:library/busybox:pull`` (``pull,push`` when pushing), then send the token.

Tokens are cached per set of scopes until shortly before they expire. A 401 in the middle
of an operation (a token that expired during a long upload) drops the cached token so the
next attempt fetches a new one; the session retries such a request once.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from berth.errors import Unauthorized

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from berth.registry.client.credentials import Credentials
    from berth.registry.client.transport import Transport

_TOKEN_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_EXPIRY_MARGIN = 10.0  # seconds: refresh a little early rather than race the expiry


@dataclass
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: its scheme and parameters."""

    scheme: str  # lowercased: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``Bearer realm="…",service="…",scope="…"`` (several challenges allowed).

    A new challenge starts at a bare word followed by a space, which is how RFC 7235
    separates them; quoted values may contain commas and escaped quotes.
    """
    out: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = re.match(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s+|$)", text[pos:])
        if not m:
            break
        ch = Challenge(m.group(1).lower())
        pos += m.end()
        while pos < len(text):
            pm = _TOKEN_RE.match(text, pos)
            if not pm or not pm.group(0).strip():
                break
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            ch.params[pm.group(1).lower()] = value
            pos = pm.end()
        out.append(ch)
    return out


def repository_scope(path: str, actions: str) -> str:
    """``repository:test/bb:pull,push``: the token scope for one repository."""
    return f"repository:{path}:{actions}"


class Authenticator:
    """Answers a registry's challenges for one session; thread-safe, caches tokens."""

    def __init__(self, transport: Transport, creds: Credentials | None) -> None:
        self._transport = transport
        self._creds = creds
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def scheme(self) -> str | None:
        return self._challenge.scheme if self._challenge else None

    def learn(self, resp: httpx.Response) -> bool:
        """Take the challenge from a 401; False if there is none we can answer."""
        for header in resp.headers.get_list("www-authenticate"):
            for ch in parse_challenges(header):
                if ch.scheme == "bearer" and ch.params.get("realm"):
                    self._challenge = ch
                    return True
                if ch.scheme == "basic":
                    self._challenge = ch
                    return True
        return False

    def authorization(self, scopes: list[str]) -> str | None:
        """The ``Authorization`` header to send for ``scopes`` (None before any challenge)."""
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self._basic()
        key = tuple(sorted(scopes))
        with self._lock:
            cached = self._tokens.get(key)
            if cached and cached[1] > time.monotonic():
                return f"Bearer {cached[0]}"
            token, ttl = self._fetch_token(ch, scopes)
            self._tokens[key] = (token, time.monotonic() + max(ttl - _EXPIRY_MARGIN, 1.0))
            return f"Bearer {token}"

    def on_unauthorized(self, resp: httpx.Response, scopes: list[str]) -> bool:
        """A request was refused: learn the (new) challenge and drop the stale token.

        Returns True when a retry could succeed (we now know how to authenticate, or the
        token we used may simply have expired).
        """
        before = self._challenge
        if not self.learn(resp):
            return False
        with self._lock:
            self._tokens.pop(tuple(sorted(scopes)), None)
        if self._challenge and self._challenge.scheme == "basic":
            # Basic fails the same way twice; retry only if we had not tried yet.
            return before is None and self._creds is not None
        return True

    def _basic(self) -> str | None:
        if self._creds is None:
            return None
        raw = f"{self._creds.username}:{self._creds.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _fetch_token(self, ch: Challenge, scopes: list[str]) -> tuple[str, float]:
        """Trade credentials (or nothing) for a token at the realm."""
        params: list[tuple[str, str | int | float | bool | None]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        for s in scopes:
            params.append(("scope", s))
        headers = {}
        if self._creds is not None:
            params.append(("account", self._creds.username))
            headers["Authorization"] = self._basic() or ""
        import httpx

        url = httpx.URL(ch.params["realm"]).copy_merge_params(params)
        resp = self._transport.send("GET", str(url), headers=headers, follow_redirects=True)
        if resp.status_code in (401, 403):
            raise Unauthorized(f"unauthorized: {_reason(resp) or 'authentication required'}")
        if resp.status_code != 200:
            raise Unauthorized(f"token server at {url.host} answered {resp.status_code}: "
                               f"{_reason(resp) or resp.reason_phrase}")
        try:
            doc = resp.json()
        except ValueError:
            raise Unauthorized("token server sent a response that is not JSON") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise Unauthorized("token server sent no token")
        ttl = doc.get("expires_in")
        return token, float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else 60.0


def _reason(resp: httpx.Response) -> str:
    """The message of a registry/token-server error body, if it has one."""
    from berth.registry.client.errors import error_text

    return error_text(resp)
