"""berth's registry client against peers: skopeo reads what berth pushed, berth pulls what
skopeo pushed, all through a real docker-registry on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.interop
SKOPEO = shutil.which("skopeo")
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if SKOPEO is None or not os.path.exists(REGISTRY_BIN):
        pytest.skip("skopeo or docker-registry is not installed")
    base = tmp_path_factory.mktemp("peer-registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = base / "config.yml"
    cfg.write_text(f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: "
                   f"{{rootdirectory: {base / 'data'}}}, delete: {{enabled: true}}}}\n"
                   f"http: {{addr: 127.0.0.1:{port}}}\n")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    host = f"127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"http://{host}/v2/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield host
    proc.terminate()
    proc.wait(10)


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": os.environ.get("HOME", "/root")})


def test_skopeo_reads_what_berth_pushed(berth, busybox_image, registry: str,
                                        tmp_path: Path) -> None:
    ref = f"{registry}/peer/bb:1"
    berth("tag", "busybox", ref)
    r = berth("push", ref)
    assert r.returncode == 0, r.stderr
    digest = r.stdout.strip().splitlines()[-1].split()[2]
    out = skopeo("inspect", "--tls-verify=false", f"docker://{ref}")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["Digest"] == digest
    assert len(info["Layers"]) == 1
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--config",
                            f"docker://{ref}").stdout)
    assert raw["rootfs"]["diff_ids"] == [
        berth("image", "inspect", "--format", "{{json .RootFS.Layers}}", ref).stdout.strip()
        .strip('[]"')]
    copy = skopeo("copy", "--src-tls-verify=false", f"docker://{ref}",
                  f"oci:{tmp_path / 'layout'}:bb")
    assert copy.returncode == 0, copy.stderr  # skopeo verified every digest on the way


def test_berth_pulls_what_skopeo_pushed(berth, busybox_image, registry: str,
                                        tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    assert berth("save", "-o", str(archive), "busybox").returncode == 0
    ref = f"{registry}/peer/from-skopeo:2"
    for fmt in ("v2s2", "oci"):
        r = skopeo("copy", "--dest-tls-verify=false", "--format", fmt,
                   "--dest-compress-format", "zstd" if fmt == "oci" else "gzip",
                   f"docker-archive:{archive}", f"docker://{ref}-{fmt}")
        assert r.returncode == 0, r.stderr
        p = berth("pull", f"{ref}-{fmt}")
        assert p.returncode == 0, p.stderr
        assert berth("image", "inspect", "--format", "{{.Id}}",
                     f"{ref}-{fmt}").stdout.strip() == busybox_image
    assert berth("system", "check").returncode == 0
