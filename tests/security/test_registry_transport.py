"""The registry client's transport rules, end to end through ``berth push``/``pull``.

Rules under test (``berth.registry.client.transport``): plain HTTP and unchecked
certificates only for loopback registries, registries listed in ``registries.json`` and
``--tls-verify=false``; everything else is HTTPS checked against the system CAs plus the
``*.crt`` files in ``certs.d/HOST:PORT/``.

A registry that is *not* loopback is needed to test any of that, and no test may send
traffic off the machine or change the host's network. So each test makes its own network
namespace holding only ``lo`` with ``10.254.0.1/32`` on it, and a private mount namespace
with an empty tmpfs over ``/etc/docker`` (one of the two ``certs.d`` roots berth reads, the
other, ``/etc/berth``, being absent on test machines). The registry (``berth registry
serve``) and the client both run in there through ``nsenter``: the traffic never leaves
the namespace and the host's ``certs.d`` is never touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tlscerts import CA

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces)")

ADDR = "10.254.0.1"
REG = f"{ADDR}:5000"
CERTS_ROOT = "/etc/docker" if os.path.isdir("/etc/docker") else "/etc/berth"
SETUP = (f"ip link set lo up && ip addr add {ADDR}/32 dev lo && "
         f"mkdir -p {CERTS_ROOT} && mount -t tmpfs berth-test {CERTS_ROOT} && "
         f"mkdir -p {CERTS_ROOT}/certs.d && echo ready && exec sleep 3600")


class Namespace:
    """One private net+mount namespace, pinned by a sleeping process."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.anchor = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", SETUP],
            stdout=subprocess.PIPE)
        assert self.anchor.stdout is not None
        if self.anchor.stdout.readline() != b"ready\n":
            raise RuntimeError("could not set up the test namespace")
        self.servers: list[subprocess.Popen[bytes]] = []

    def cmd(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.anchor.pid), "-n", "-m", "--", *argv]

    def berth(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        return subprocess.run(self.cmd(sys.executable, "-m", "berth", *args), env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    def trust(self, ca_cert: Path, registry: str = REG) -> None:
        """Put ``ca_cert`` in ``certs.d/<registry>/ca.crt`` inside the namespace."""
        d = f"{CERTS_ROOT}/certs.d/{registry}"
        subprocess.run(self.cmd("sh", "-c", f"mkdir -p '{d}' && cat > '{d}/ca.crt'"),
                       input=ca_cert.read_bytes(), check=True)

    def serve(self, *extra: str, addr: str = REG) -> None:
        log = self.tmp / f"registry{len(self.servers)}.log"
        with open(log, "wb") as f:
            p = subprocess.Popen(self.cmd(sys.executable, "-m", "berth", "registry", "serve",
                                          "--addr", addr, "--storage",
                                          str(self.tmp / f"storage{len(self.servers)}"),
                                          *extra), stdout=subprocess.DEVNULL, stderr=f)
        self.servers.append(p)
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text():
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"registry did not start: {log.read_text()}")
            time.sleep(0.05)

    def close(self) -> None:
        for p in self.servers:
            p.terminate()
            p.wait(10)
        self.anchor.kill()
        self.anchor.wait()


@pytest.fixture
def ns(tmp_path, berth_env):  # type: ignore[no-untyped-def]
    n = Namespace(tmp_path)
    yield n
    n.close()


@pytest.fixture
def image(ns, berth, busybox_image):  # type: ignore[no-untyped-def]
    """A local image tagged for the namespace's registry."""
    assert berth("tag", "busybox", f"{REG}/bb:1").returncode == 0
    return f"{REG}/bb:1"


def _refused(r: subprocess.CompletedProcess[str], *why: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.startswith("Error: ") and "Traceback" not in r.stderr, r.stderr
    assert any(w in r.stderr for w in why), r.stderr


def _round_trip(ns: Namespace, berth, image: str, *flags: str) -> None:  # type: ignore[no-untyped-def]
    r = ns.berth("push", *flags, image)
    assert r.returncode == 0, r.stderr
    assert berth("rmi", image).returncode == 0
    r = ns.berth("pull", *flags, image)
    assert r.returncode == 0, r.stderr
    assert berth("image", "inspect", image).returncode == 0


# -- plain HTTP ----------------------------------------------------------------------------

def test_plain_http_refused_for_a_non_loopback_registry(ns, berth, image):
    ns.serve()
    _refused(ns.berth("push", image), "http", "HTTP", "SSL", "ssl", "TLS", "tls")
    _refused(ns.berth("pull", image), "http", "HTTP", "SSL", "ssl", "TLS", "tls")


def test_plain_http_with_tls_verify_false(ns, berth, image):
    ns.serve()
    _round_trip(ns, berth, image, "--tls-verify=false")


def test_plain_http_for_a_registry_listed_insecure(ns, berth, berth_env, image):
    ns.serve()
    Path(berth_env["root"], "registries.json").write_text(json.dumps({"insecure": [REG]}))
    _round_trip(ns, berth, image)
    # the entry is for that host:port only
    Path(berth_env["root"], "registries.json").write_text(
        json.dumps({"insecure": [f"{ADDR}:5001"]}))
    _refused(ns.berth("push", image), "http", "HTTP", "SSL", "ssl", "TLS", "tls")


def test_plain_http_for_loopback(ns, berth, busybox_image):
    ns.serve(addr="127.0.0.1:5000")
    assert berth("tag", "busybox", "127.0.0.1:5000/bb:1").returncode == 0
    _round_trip(ns, berth, "127.0.0.1:5000/bb:1")


# -- certificates --------------------------------------------------------------------------

def _tls_server(ns: Namespace, tmp: Path, *hosts: str) -> CA:
    ca = CA(tmp / "ca")
    issued = ca.issue(tmp / "server", *hosts)
    ns.serve("--tls-cert", str(issued.cert), "--tls-key", str(issued.key))
    return ca


CERT_ERRORS = ("certificate", "CERTIFICATE", "x509", "SSL", "ssl")


def test_ca_from_certs_d_is_trusted(ns, berth, image, tmp_path):
    ca = _tls_server(ns, tmp_path, ADDR)
    _refused(ns.berth("push", image), *CERT_ERRORS)  # unknown CA: refused ...
    ns.trust(ca.files.cert)
    _round_trip(ns, berth, image)  # ... trusted once certs.d holds it


def test_certificate_of_another_ca_refused(ns, berth, image, tmp_path):
    _tls_server(ns, tmp_path, ADDR)
    ns.trust(CA(tmp_path / "other-ca").files.cert)
    _refused(ns.berth("push", image), *CERT_ERRORS)
    _refused(ns.berth("pull", image), *CERT_ERRORS)


def test_certificate_for_another_host_refused(ns, berth, image, tmp_path):
    ca = _tls_server(ns, tmp_path, "10.254.0.2", "registry.example")
    ns.trust(ca.files.cert)
    _refused(ns.berth("push", image), *CERT_ERRORS, "match", "hostname")


def test_certs_d_is_per_registry(ns, berth, image, tmp_path):
    ca = _tls_server(ns, tmp_path, ADDR)
    ns.trust(ca.files.cert, registry=f"{ADDR}:5001")
    _refused(ns.berth("push", image), *CERT_ERRORS)


def test_tls_verify_false_accepts_an_unknown_certificate(ns, berth, image, tmp_path):
    _tls_server(ns, tmp_path, ADDR)
    _round_trip(ns, berth, image, "--tls-verify=false")
