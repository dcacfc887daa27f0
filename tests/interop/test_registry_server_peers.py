"""berth's registry server with real peers: skopeo and podman push to it and pull from it.

The image is built here by hand (busybox rootfs tar → gzip → config, manifest, index.json,
oci-layout) so nothing comes from the internet; round trips must keep manifest digests
(skopeo) and image IDs (podman) unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop



def need(tool: str) -> None:
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed")


class Server:
    """``berth registry serve`` on a free port of 127.0.0.1, stopped by :meth:`stop`."""

    def __init__(self, storage: Path, log: Path, *extra: str) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "berth", "registry", "serve", "--addr", "127.0.0.1:0",
             "--storage", str(storage), *extra],
            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        deadline = time.monotonic() + 20
        while "listening on" not in log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start: {log.read_text()}")
            time.sleep(0.05)
        self.url = log.read_text().split()[2]
        self.host = self.url.split("://", 1)[1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "storage", tmp_path / "server.log")
    yield s
    s.stop()


def _blob(layout: Path, data: bytes) -> tuple[str, int]:
    hexd = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(data)
    return "sha256:" + hexd, len(data)


def make_oci_layout(layout: Path, rootfs_tar: Path, tag: str = "latest") -> str:
    """Write an OCI image layout of one busybox layer; return the manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    raw = rootfs_tar.read_bytes()
    layer_d, layer_n = _blob(layout, gzip.compress(raw, mtime=0))
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"]},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
    cfg_d, cfg_n = _blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cfg_d, "size": cfg_n},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": layer_d, "size": layer_n}]}
    man_d, man_n = _blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": man_d, "size": man_n,
                            "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return man_d


def _run(*cmd: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return r


def _layout_manifest_digest(layout: Path) -> str:
    return json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]


def test_skopeo_copy_round_trip(server: Server, busybox_tar: Path, tmp_path: Path) -> None:
    need("skopeo")
    src = tmp_path / "src"
    digest = make_oci_layout(src, busybox_tar)
    dest = f"docker://{server.host}/berth/busybox:1.0"
    _run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{src}:latest", dest)
    out = tmp_path / "out"
    _run("skopeo", "copy", "--src-tls-verify=false", dest, f"oci:{out}:latest")
    assert _layout_manifest_digest(out) == digest
    info = json.loads(_run("skopeo", "inspect", "--tls-verify=false", dest).stdout)
    assert info["Digest"] == digest and info["Architecture"] == "amd64"
    raw = _run("skopeo", "inspect", "--raw", "--tls-verify=false", dest).stdout
    assert "sha256:" + hashlib.sha256(raw.encode()).hexdigest() == digest
    tags = json.loads(_run("skopeo", "list-tags", "--tls-verify=false",
                           f"docker://{server.host}/berth/busybox").stdout)
    assert tags["Tags"] == ["1.0"]
    # a second push to another repo mounts or re-uses blobs and keeps the digest
    _run("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", dest,
         f"docker://{server.host}/other/copy:x")
    info = json.loads(_run("skopeo", "inspect", "--tls-verify=false",
                           f"docker://{server.host}/other/copy:x").stdout)
    assert info["Digest"] == digest


def test_skopeo_with_auth(tmp_path: Path, busybox_tar: Path) -> None:
    need("skopeo")
    import bcrypt

    pw = tmp_path / "htpasswd"
    pw.write_text(f"ci:{bcrypt.hashpw(b'pass', bcrypt.gensalt(5)).decode()}\n")
    s = Server(tmp_path / "storage", tmp_path / "log", "--htpasswd", str(pw))
    try:
        src = tmp_path / "src"
        make_oci_layout(src, busybox_tar)
        dest = f"docker://{s.host}/auth/busybox:1"
        r = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{src}:latest",
                            dest], capture_output=True, text=True, timeout=120)
        assert r.returncode != 0
        _run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "ci:pass",
             f"oci:{src}:latest", dest)
        _run("skopeo", "inspect", "--tls-verify=false", "--creds", "ci:pass", dest)
    finally:
        s.stop()


def test_podman_push_pull(server: Server, busybox_tar: Path, tmp_path: Path) -> None:
    need("podman")
    runroot = tempfile.mkdtemp(prefix="brp-", dir="/tmp")  # podman wants a short runroot
    base = ["podman", "--root", str(tmp_path / "proot"), "--runroot", runroot,
            "--tmpdir", str(Path(runroot) / "libpod"),
            "--cgroup-manager=cgroupfs", "--events-backend=file",
            "--storage-driver=vfs"]
    ref = f"{server.host}/podman/busybox:latest"
    try:
        image_id = _run(*base, "import", str(busybox_tar), ref).stdout.strip().splitlines()[-1]
        _run(*base, "push", "--tls-verify=false", ref)
        _run(*base, "rmi", ref)
        _run(*base, "pull", "--tls-verify=false", ref)
        pulled = _run(*base, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        assert pulled == image_id.removeprefix("sha256:")
    finally:
        subprocess.run([*base, "rmi", "-af"], capture_output=True, timeout=60)
        subprocess.run([*base, "system", "reset", "-f"], capture_output=True, timeout=60)
        shutil.rmtree(runroot, ignore_errors=True)
