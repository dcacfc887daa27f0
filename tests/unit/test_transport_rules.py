"""Which registries berth talks to insecurely, and where their certificates come from.

The end-to-end checks (a real TLS registry in a private namespace) are in
tests/security/test_registry_transport.py; these pin each rule on its own, quickly."""

from __future__ import annotations

import json
import ssl

import pytest

from berth.errors import RegistryUnreachable
from berth.registry.client import transport as t
from tlscerts import CA


@pytest.mark.parametrize(("domain", "loopback"), [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1", True),
    ("127.0.0.1:5000", True), ("127.9.9.9:1", True), ("[::1]", True), ("[::1]:5000", True),
    ("::1", True),
    ("10.254.0.1:5000", False), ("registry.example:5000", False), ("docker.io", False),
    ("localhost.example", False), ("[::2]:5000", False), ("128.0.0.1", False),
    ("my-localhost:5000", False),
])
def test_is_loopback(domain, loopback):
    assert t.is_loopback(domain) is loopback


def test_hostname():
    assert t._hostname("[fe80::1]:5000") == "fe80::1"
    assert t._hostname("[fe80::1]") == "fe80::1"
    assert t._hostname("host:5000") == "host"
    assert t._hostname("host") == "host"
    assert t._hostname("fe80::1") == "fe80::1"  # bare IPv6: colons are not a port


def test_api_host():
    assert t.api_host("docker.io") == "registry-1.docker.io"
    assert t.api_host("quay.io") == "quay.io"


def test_configured_insecure(tmp_path):
    assert t.configured_insecure(None) == set()
    assert t.configured_insecure(str(tmp_path)) == set()  # no file
    f = tmp_path / "registries.json"
    f.write_text(json.dumps({"insecure": ["10.0.0.1:5000", " reg.lan "]}))
    assert t.configured_insecure(str(tmp_path)) == {"10.0.0.1:5000", "reg.lan"}
    for bad in ("{not json", "[]", '{"insecure": "10.0.0.1:5000"}', "{}"):
        f.write_text(bad)
        assert t.configured_insecure(str(tmp_path)) == set(), bad


@pytest.mark.parametrize(("kw", "domain", "insecure"), [
    ({}, "10.0.0.1:5000", False),
    ({}, "127.0.0.1:5000", True),
    ({"tls_verify": False}, "10.0.0.1:5000", True),
    ({"listed": True}, "10.0.0.1:5000", True),
    ({"listed": True}, "10.0.0.1:5001", False),
])
def test_transport_insecure_rule(tmp_path, kw, domain, insecure):
    if kw.pop("listed", False):
        (tmp_path / "registries.json").write_text(json.dumps({"insecure": ["10.0.0.1:5000"]}))
    tr = t.Transport(domain, root=str(tmp_path), **kw)
    try:
        assert tr.insecure is insecure
        # an insecure registry's certificate is not checked; a secure one's is
        verify = tr.client._transport._pool._ssl_context.verify_mode  # type: ignore[attr-defined]
        assert verify == (ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED)
    finally:
        tr.close()


def test_ssl_context_loads_certs_d(tmp_path, monkeypatch):
    monkeypatch.setattr(t, "CERT_DIRS", (str(tmp_path / "absent"), str(tmp_path / "certs.d")))
    ca = CA(tmp_path / "ca")
    d = tmp_path / "certs.d" / "reg.lan:5000"
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(ca.files.cert.read_bytes())
    before = len(ssl.create_default_context().get_ca_certs())
    ctx = t.ssl_context("reg.lan:5000")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    subjects = [c["subject"] for c in ctx.get_ca_certs()]
    assert ((("commonName", ca.name),),) in subjects and len(subjects) == before + 1
    assert len(t.ssl_context("reg.lan:5001").get_ca_certs()) == before  # per registry
    off = t.ssl_context("reg.lan:5000", verify=False)
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname
    assert off.get_ca_certs() == []


def test_ssl_context_presents_a_client_certificate(tmp_path, monkeypatch):
    monkeypatch.setattr(t, "CERT_DIRS", (str(tmp_path / "certs.d"),))
    issued = CA(tmp_path / "ca").issue(tmp_path / "client", "client")
    d = tmp_path / "certs.d" / "reg.lan"
    d.mkdir(parents=True)
    (d / "client.cert").write_bytes(issued.cert.read_bytes())
    (d / "client.key").write_bytes(issued.key.read_bytes())
    (d / "lonely.cert").write_bytes(issued.cert.read_bytes())  # no key: ignored
    calls = []
    real = ssl.SSLContext.load_cert_chain
    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain",
                        lambda self, c, k=None: calls.append((c, k)) or real(self, c, k))
    t.ssl_context("reg.lan")
    assert calls == [(str(d / "client.cert"), str(d / "client.key"))]


@pytest.mark.parametrize(("err", "text"), [
    (None, "unknown error"),
    (RegistryUnreachable("already said"), "already said"),
    (OSError("[Errno 111] Connection refused"), "connection refused"),
    (OSError("Connection refused"), "connection refused"),
    (OSError("Name or service not known"), "no such host"),
    (OSError("read timed out"), "i/o timeout"),
    (TimeoutError(), "i/o timeout"),
    (OSError("first line\nsecond"), "first line"),
])
def test_describe(err, text):
    assert t.describe(err) == text


def test_client_settings():
    tr = t.Transport("127.0.0.1:1")
    try:
        assert tr.client.follow_redirects is False  # a redirect is never followed blindly
        assert tr.client.timeout.connect == 15.0 and tr.client.timeout.read == 60.0
        assert tr.client.headers["User-Agent"] == t.USER_AGENT
    finally:
        tr.close()


def test_ping_settles_the_scheme_once_and_urls_follow_it():
    import http.server
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            seen.append(self.path)
            if self.path == "/v2/redirect":
                self.send_response(307)
                self.send_header("Location", "/v2/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200 if self.path == "/v2/" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{srv.server_address[1]}"
    tr = t.Transport(host)
    try:
        assert tr.ping().status_code == 200  # https fails, loopback falls back to http
        assert tr.base_url == f"http://{host}"
        assert tr.ping().status_code == 200 and seen == ["/v2/", "/v2/"]
        assert tr.url("/v2/x/blobs/y") == f"http://{host}/v2/x/blobs/y"
        assert tr.url("v2/x") == f"http://{host}/v2/x"
        assert tr.url("https://elsewhere/upload?x=1") == "https://elsewhere/upload?x=1"
        assert tr.send("GET", "/v2/missing").status_code == 404
        assert tr.send("GET", "/v2/redirect").status_code == 307  # not followed unasked
    finally:
        tr.close()
        srv.shutdown()
        srv.server_close()


def test_unreachable_registry_is_one_clear_error():
    tr = t.Transport("127.0.0.1:1")  # nothing listens on port 1
    try:
        with pytest.raises(RegistryUnreachable, match=r'^Get "http://127.0.0.1:1/v2/": '
                                                      "connection refused$"):
            tr.ping()
    finally:
        tr.close()
