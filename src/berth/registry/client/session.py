"""One authenticated conversation with a registry: the transport, the credentials, retries.

Pull and push speak to the registry only through :meth:`Session.request`, which adds the
right ``Authorization`` header for the scopes the operation needs, answers a 401 once (new
challenge or expired token) and otherwise hands the response back untouched — callers
decide what each status means for them.

The session pings ``/v2/`` when it opens, so the auth challenge is known before the first
real request; that matters for uploads, whose streamed bodies cannot be replayed cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from berth.errors import RegistryError, Unauthorized
from berth.registry.client.auth import Authenticator
from berth.registry.client.credentials import Credentials, load
from berth.registry.client.errors import describe_status
from berth.registry.client.transport import Transport

if TYPE_CHECKING:  # pragma: no cover
    import httpx

Body = bytes | Callable[[], Iterable[bytes]] | None


class Session:
    """A registry client bound to one domain; share it between worker threads."""

    def __init__(self, domain: str, *, root: str | None = None, tls_verify: bool = True,
                 creds: Credentials | None = None, use_stored_creds: bool = True) -> None:
        self.domain = domain
        self.transport = Transport(domain, root=root, tls_verify=tls_verify)
        if creds is None and use_stored_creds:
            creds = load(domain)
        self.creds = creds
        self.auth = Authenticator(self.transport, creds)
        try:
            resp = self.transport.ping()
            if resp.status_code == 401:
                self.auth.learn(resp)
            resp.close()
        except BaseException:
            self.transport.close()
            raise

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, scopes: list[str],
                headers: dict[str, str] | None = None, content: Body = None,
                stream: bool = False, follow_redirects: bool = False) -> httpx.Response:
        """Send with auth; retry once after a 401 that taught us something new.

        ``content`` may be a callable returning a fresh iterable so a streamed body can be
        sent again on that retry.
        """
        for attempt in (0, 1):
            hdrs = dict(headers or {})
            authz = self.auth.authorization(scopes)
            if authz:
                hdrs["Authorization"] = authz
            body: Any = content() if callable(content) else content
            resp = self.transport.send(method, path, headers=hdrs, content=body,
                                       stream=stream, follow_redirects=follow_redirects)
            if resp.status_code != 401 or attempt:
                return resp
            retry = self.auth.on_unauthorized(resp, scopes)
            if not retry:
                return resp
            resp.close()
        raise AssertionError("unreachable")

    def fail(self, resp: httpx.Response, what: str) -> RegistryError:
        """The error to raise for an unexpected response to ``what``."""
        from berth.registry.client.errors import error_text

        reason = error_text(resp) if resp.status_code in (401, 403) else describe_status(resp)
        resp.close()
        if resp.status_code == 401:
            return Unauthorized(f"{what}: {reason or 'unauthorized: authentication required'}")
        if resp.status_code == 403:
            return Unauthorized(
                f"{what}: {reason or 'denied: requested access to the resource is denied'}")
        return RegistryError(f"{what}: {reason}")
