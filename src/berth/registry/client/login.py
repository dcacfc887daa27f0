"""``login``/``logout``: check credentials against a registry, then remember or forget them.

Credentials are verified the way the registry will use them — ``GET /v2/`` through the full
challenge flow (Basic, or a Bearer token fetched with the password) — before anything is
written, so a typo never lands in the credentials file.
"""

from __future__ import annotations

from berth.errors import Unauthorized
from berth.registry.client import credentials
from berth.registry.client.credentials import Credentials
from berth.registry.client.errors import describe_status
from berth.registry.client.session import Session


def login(server: str | None, username: str, password: str, *, root: str | None = None,
          tls_verify: bool = True, save: bool = True) -> str:
    """Verify and (unless ``save`` is false: the API's ``/auth``) store credentials;
    return the registry domain."""
    domain = credentials.normalize_server(server)
    creds = Credentials(username, password)
    with Session(domain, root=root, tls_verify=tls_verify, creds=creds,
                 use_stored_creds=False) as session:
        url = session.transport.url("/v2/")
        if session.auth.scheme is not None:
            try:
                resp = session.request("GET", "/v2/", scopes=[])
            except Unauthorized as e:
                raise Unauthorized(f'Get "{url}": {e.message}') from None
            if resp.status_code != 200:
                reason = describe_status(resp)
                resp.close()
                raise Unauthorized(f'Get "{url}": {reason}')
            resp.close()
    if save:
        credentials.save(domain, creds)
    return domain


def logout(server: str | None) -> tuple[str, bool]:
    """Forget credentials; returns (domain, whether any were stored)."""
    domain = credentials.normalize_server(server)
    return domain, credentials.erase(domain)
