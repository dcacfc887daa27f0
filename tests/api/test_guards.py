"""Guard rails that need no container: a bug is a one-line 500 (traceback on stderr only),
and TCP with mutual TLS refuses clients without a certificate."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

from tests.api.conftest import DOCKER


class _BuggyEngine:
    """An Engine stand-in whose listing has a bug (a non-BerthError escapes)."""

    def containers(self, **_kw):  # type: ignore[no-untyped-def]
        raise KeyError("boom")


def test_a_bug_is_a_one_line_500_with_the_traceback_on_stderr(capsys):
    from aiohttp.test_utils import TestClient, TestServer

    from berth.api.server import make_app

    async def go() -> tuple[int, dict]:
        async with TestClient(TestServer(make_app(_BuggyEngine()))) as client:
            r = await client.get("/v1.41/containers/json")
            return r.status, await r.json()

    status, body = asyncio.run(go())
    assert status == 500
    assert body == {"message": "internal error: KeyError"}
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'boom'" in err


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certs(d: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    for who, cn in (("server", "127.0.0.1"), ("client", "client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out",
                 f"{who}.csr", "-subj", f"/CN={cn}", cwd=d)
        ext = os.path.join(d, f"{who}.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n" if who == "server" else
                    "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{who}.pem", "-days", "1", "-extfile", ext,
                 cwd=d)


def test_mutual_tls_over_tcp(berth_env, busybox_image, tmp_path):
    d = str(tmp_path)
    _certs(d)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "berth", "system", "service", "-H",
                             f"tcp://127.0.0.1:{port}", "--timeout", "0",
                             "--tls-cert", f"{d}/server.pem", "--tls-key", f"{d}/server.key",
                             "--tls-ca", f"{d}/ca.pem"], stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        env = dict(os.environ, DOCKER_HOST=f"tcp://127.0.0.1:{port}",
                   DOCKER_CONFIG=f"{d}/cfg")
        ok = subprocess.run([DOCKER, "--tlsverify", "--tlscacert", f"{d}/ca.pem",
                             "--tlscert", f"{d}/client.pem", "--tlskey", f"{d}/client.key",
                             "images", "--format", "{{.Repository}}"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
        assert ok.returncode == 0 and ok.stdout.split() == ["busybox"], ok.stderr
        # no client certificate: the handshake is refused
        bare = subprocess.run([DOCKER, "--tlsverify", "--tlscacert", f"{d}/ca.pem",
                               "images"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        assert bare.returncode != 0
        # plain HTTP on the TLS port gets nowhere either
        plain = subprocess.run([DOCKER, "images"], env=env, capture_output=True, text=True,
                               timeout=60, check=False)
        assert plain.returncode != 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_socket_group_berth_reaches_the_socket(tmp_path, monkeypatch):
    import grp
    import stat
    from types import SimpleNamespace

    from berth.api import server

    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    path = str(d / "docker.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    monkeypatch.setattr(grp, "getgrnam", lambda name: SimpleNamespace(gr_gid=4242))
    try:
        server._secure_socket(path)
    finally:
        s.close()
    st, pst = os.stat(path), os.stat(d)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 4242, 0o660)
    assert (pst.st_gid, stat.S_IMODE(pst.st_mode)) == (4242, 0o710)
