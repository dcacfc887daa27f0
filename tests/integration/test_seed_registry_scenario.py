"""The seed scenario: a registry in a container, published on loopback, pushed and pulled.

    berth run -d -p 127.0.0.1:PORT:5000 --name docker-registry registry
    berth ps                       # PORTS: 127.0.0.1:PORT->5000/tcp
    berth push/pull 127.0.0.1:PORT/busybox

The registry image is made here from Debian's ``/usr/bin/docker-registry`` plus the
libraries ``ldd`` names and a config with storage in /var/lib/registry on ``:5000``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.request

import pytest
from test_networks import leftovers  # noqa: E402 - same directory (pytest rootdir import)
from test_published_ports import free_port  # noqa: E402

REGISTRY = "/usr/bin/docker-registry"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not os.path.exists(REGISTRY),
    reason="needs root, nft and the docker-registry package")

CONFIG = b"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
"""


@pytest.fixture(autouse=True)
def _no_host_forwarding(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BERTH_IP_FORWARD", "0")


def registry_rootfs(path: str) -> str:
    """A rootfs tar: the registry binary, the libraries it links, its config."""
    libs = re.findall(r"(/\S+) \(0x", subprocess.run(["ldd", REGISTRY], capture_output=True,
                                                    text=True).stdout)
    with tarfile.open(path, "w") as tar:
        for d in ("etc", "etc/docker", "etc/docker/registry", "var", "var/lib",
                  "var/lib/registry", "tmp", "usr", "usr/bin"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(ti)
        for f in [REGISTRY, *libs]:
            tar.add(os.path.realpath(f), arcname=f.lstrip("/"))
        ti = tarfile.TarInfo("etc/docker/registry/config.yml")
        ti.size, ti.mode = len(CONFIG), 0o644
        tar.addfile(ti, io.BytesIO(CONFIG))
    return path


def _until(pred, timeout=20.0):  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def test_registry_in_a_container_push_and_pull(berth, engine, busybox_image, berth_env):
    with open(registry_rootfs(str(berth_env["tmp"] / "registry.tar")), "rb") as f:
        engine.import_image(f, "registry:2", changes=[
            'ENTRYPOINT ["/usr/bin/docker-registry"]',
            'CMD ["serve", "/etc/docker/registry/config.yml"]', "EXPOSE 5000"])
    port = free_port()
    r = berth("run", "-d", "-p", f"127.0.0.1:{port}:5000", "--name", "docker-registry",
              "registry:2")
    assert r.returncode == 0, r.stderr
    assert _until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/",
                                                 timeout=2).status == 200), \
        berth("logs", "docker-registry").stderr
    ps = berth("ps").stdout.splitlines()
    assert re.split(r"\s{3,}", ps[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
                                          "STATUS", "PORTS", "NAMES"]
    row = re.split(r"\s{3,}", ps[1])
    assert row[1] == "registry:2" and row[-2:] == [f"127.0.0.1:{port}->5000/tcp",
                                                   "docker-registry"]
    ref = f"127.0.0.1:{port}/seed/busybox:latest"
    assert berth("tag", "busybox", ref).returncode == 0
    r = berth("push", ref)
    assert r.returncode == 0, r.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/seed/busybox/tags/list") as resp:
        assert b'"latest"' in resp.read()
    assert berth("rmi", ref).returncode == 0
    r = berth("pull", ref)
    assert r.returncode == 0, r.stderr
    r = berth("run", "--rm", ref, "echo", "pulled")
    assert (r.returncode, r.stdout) == (0, "pulled\n")
    assert berth("rm", "-f", "docker-registry").returncode == 0
    assert leftovers(berth_env["root"], berth_env["runroot"], networks_gone=False) == []
