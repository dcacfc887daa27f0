"""HTTP to one registry: which scheme, which certificates, one pooled httpx client.

TLS is the rule. A registry is *insecure* — berth will skip certificate checks and fall
back to plain HTTP when the HTTPS handshake fails — only when it is

* on a loopback address (``localhost``, ``127.0.0.0/8``, ``::1``), as Docker does;
* listed in ``<root>/registries.json`` as ``{"insecure": ["host:port", ...]}``;
* named on the command line with ``--tls-verify=false``.

Otherwise certificates are checked against the system CAs plus any ``*.crt`` in
``/etc/berth/certs.d/HOST[:PORT]/`` or ``/etc/docker/certs.d/HOST[:PORT]/`` (Docker's
layout, so existing setups keep working); a ``client.cert``/``client.key`` pair there is
presented as a client certificate.

The scheme is decided once per :class:`Transport` by pinging ``/v2/``, the one endpoint
every registry answers (200, or 401 with the auth challenge we need anyway).
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
from typing import TYPE_CHECKING, Any

from berth.errors import RegistryUnreachable

if TYPE_CHECKING:  # pragma: no cover
    import ssl

    import httpx

CERT_DIRS = ("/etc/berth/certs.d", "/etc/docker/certs.d")
USER_AGENT = "berth/0.1 (registry client)"
_HUB_API = "registry-1.docker.io"


def api_host(domain: str) -> str:
    """The host that serves the API for a reference domain (Docker Hub's differs)."""
    return _HUB_API if domain == "docker.io" else domain


def _hostname(domain: str) -> str:
    if domain.startswith("["):
        return domain[1:].split("]", 1)[0]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def is_loopback(domain: str) -> bool:
    host = _hostname(domain)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_insecure(root: str | None) -> set[str]:
    """Registries listed as insecure in ``<root>/registries.json`` (missing file → none)."""
    if not root:
        return set()
    try:
        with open(os.path.join(root, "registries.json"), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return set()
    items = doc.get("insecure") if isinstance(doc, dict) else None
    return {str(x).strip() for x in items} if isinstance(items, list) else set()


def ssl_context(domain: str, *, verify: bool = True) -> ssl.SSLContext:
    """System CAs plus the registry's own CA files and client certificate, if any."""
    import ssl

    if verify:
        ctx = ssl.create_default_context()
    else:  # no CA bundle to load (~0.1 s) when nothing will be verified against it
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for base in CERT_DIRS:
        d = os.path.join(base, domain)
        if not os.path.isdir(d):
            continue
        for ca in sorted(glob.glob(os.path.join(d, "*.crt")) if verify else []):
            ctx.load_verify_locations(cafile=ca)
        for cert in sorted(glob.glob(os.path.join(d, "*.cert"))):
            key = cert[:-len(".cert")] + ".key"
            if os.path.exists(key):
                ctx.load_cert_chain(cert, key)
    return ctx


class Transport:
    """A pooled HTTP client bound to one registry, safe to share between worker threads."""

    def __init__(self, domain: str, *, root: str | None = None, tls_verify: bool = True,
                 timeout: float = 60.0) -> None:
        import httpx

        self.domain = domain
        self.host = api_host(domain)
        self.insecure = (not tls_verify or is_loopback(domain)
                         or domain in configured_insecure(root))
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 15.0))
        self._limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        self.client = self._new_client(verify=not self.insecure)
        self.base_url: str | None = None

    def _new_client(self, *, verify: bool) -> httpx.Client:
        import httpx

        return httpx.Client(verify=ssl_context(self.domain, verify=verify),
                            timeout=self._timeout, limits=self._limits,
                            headers={"User-Agent": USER_AGENT}, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    # -- scheme selection ----------------------------------------------------------------
    def ping(self) -> httpx.Response:
        """``GET /v2/``; on first use also settles the scheme (https, or http if insecure)."""
        import httpx

        if self.base_url is not None:
            return self.client.get(self.base_url + "/v2/")
        schemes = ["https", "http"] if self.insecure else ["https"]
        last: Exception | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.host}"
            try:
                resp = self.client.get(base + "/v2/")
            except httpx.TransportError as e:
                last = e
                continue
            if scheme == "https" or resp.status_code in (200, 401):
                self.base_url = base
                return resp
            last = RegistryUnreachable(
                f"{base}/v2/ answered {resp.status_code}: not a registry")
        raise RegistryUnreachable(
            f'Get "{schemes[-1]}://{self.host}/v2/": {describe(last)}') from None

    def url(self, path: str) -> str:
        """An absolute URL for an API path (or a Location the registry handed us)."""
        if path.startswith(("http://", "https://")):
            return path
        if self.base_url is None:
            self.ping()
        assert self.base_url is not None
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def send(self, method: str, url: str, *, headers: dict[str, str] | None = None,
             content: Any = None, stream: bool = False,
             follow_redirects: bool = False) -> httpx.Response:
        """One request; network failures become :class:`RegistryUnreachable`."""
        import httpx

        req = self.client.build_request(method, self.url(url), headers=headers,
                                        content=content)
        try:
            return self.client.send(req, stream=stream, follow_redirects=follow_redirects)
        except httpx.TransportError as e:
            raise RegistryUnreachable(
                f'{method.capitalize()} "{req.url}": {describe(e)}') from None


def describe(err: BaseException | None) -> str:
    """A short, human reason for a network failure (no nested exception reprs)."""
    if err is None:
        return "unknown error"
    if isinstance(err, RegistryUnreachable):
        return err.message
    text = str(err) or type(err).__name__
    low = text.lower()
    if "connection refused" in low or "errno 111" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename nor servname" in low:
        return "no such host"
    if "timed out" in low or "timeout" in type(err).__name__.lower():
        return "i/o timeout"
    return text.splitlines()[0]
