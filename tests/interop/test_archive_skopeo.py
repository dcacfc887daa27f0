"""Archives cross the border both ways: skopeo and podman read ours, we read theirs.

The image is made locally (a busybox layer), never pulled. Every peer runs against temp
dirs only; podman gets its own ``--root``/``--runroot`` so nothing leaks into the host.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from berth.oci import mediatypes as mt
from berth.oci.archive_read import open_archive
from berth.oci.archive_write import ExportImage, ExportLayer, write_docker_archive, write_oci_archive
from berth.oci.compression import open_compressor
from berth.oci.digest import sha256_bytes
from berth.oci.image_config import new_config
from berth.oci.manifest import Descriptor, build_manifest, host_arch

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed"),
    pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static missing"),
]


def _busybox_layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        with open("/bin/busybox", "rb") as f:
            data = f.read()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
        sh = tarfile.TarInfo("bin/sh")
        sh.type, sh.linkname = tarfile.SYMTYPE, "busybox"
        tf.addfile(sh)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image() -> ExportImage:
    raw = _busybox_layer()
    out = io.BytesIO()
    with open_compressor("gzip", out) as gz:
        gz.write(raw)
    blob = out.getvalue()
    layer = ExportLayer(mt.OCI_LAYER_GZIP, sha256_bytes(blob), len(blob), sha256_bytes(raw),
                        lambda: io.BytesIO(blob))
    config = new_config(diff_ids=[layer.diff_id], architecture=host_arch(),
                        created="2024-01-01T00:00:00Z", config={"Cmd": ["/bin/sh"]},
                        history=[{"created": "2024-01-01T00:00:00Z", "created_by": "test"}])
    manifest = build_manifest(Descriptor(mt.OCI_CONFIG, sha256_bytes(config), len(config)),
                              [Descriptor(layer.media_type, layer.digest, layer.size)])
    return ExportImage(config, sha256_bytes(config), manifest, sha256_bytes(manifest),
                       mt.OCI_MANIFEST, [layer], ["busybox:latest"])


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def _skopeo_config_digest(ref: str) -> str:
    raw = subprocess.run(["skopeo", "inspect", "--config", "--raw", ref], capture_output=True,
                         timeout=120, check=True).stdout
    return sha256_bytes(raw)


def _write(path, fn, img: ExportImage, tmp_path) -> str:
    with open(path, "wb") as f:
        if fn is write_docker_archive:
            fn(f, [img], str(tmp_path))
        else:
            fn(f, [img])
    return str(path)


def test_skopeo_reads_our_docker_archive(tmp_path, image):
    path = _write(tmp_path / "d.tar", write_docker_archive, image, tmp_path)
    info = json.loads(_run("skopeo", "inspect", f"docker-archive:{path}"))
    assert info["Layers"] == [image.layers[0].diff_id]
    assert info["Architecture"] == host_arch()
    assert _skopeo_config_digest(f"docker-archive:{path}") == image.config_digest
    assert _skopeo_config_digest(f"docker-archive:{path}:busybox:latest") == image.config_digest


def test_skopeo_reads_our_oci_archive(tmp_path, image):
    path = _write(tmp_path / "o.tar", write_oci_archive, image, tmp_path)
    info = json.loads(_run("skopeo", "inspect", f"oci-archive:{path}"))
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == [image.layers[0].digest]
    assert _skopeo_config_digest(f"oci-archive:{path}") == image.config_digest
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{path}"],
                         capture_output=True, check=True, timeout=120).stdout
    assert raw == image.manifest


def test_we_read_skopeo_archives(tmp_path, image):
    oci = _write(tmp_path / "o.tar", write_oci_archive, image, tmp_path)
    dock = tmp_path / "from-skopeo.tar"
    _run("skopeo", "copy", "-q", f"oci-archive:{oci}", f"docker-archive:{dock}:app:v1")
    with open_archive(str(dock)) as arc:
        assert arc.format == "docker-archive"
        img = arc.images[0]
        assert img.config_digest == image.config_digest
        assert img.repo_tags == ["app:v1"]
        assert [x.diff_id for x in img.layers] == [image.layers[0].diff_id]
        with img.layers[0].open() as f:
            assert sha256_bytes(f.read()) == image.layers[0].diff_id
    back = tmp_path / "back.tar"
    _run("skopeo", "copy", "-q", f"docker-archive:{dock}", f"oci-archive:{back}:app:v2")
    with open_archive(str(back)) as arc:
        assert arc.format == "oci-archive"
        img = arc.images[0]
        assert img.config_digest == image.config_digest
        assert img.repo_tags == ["app:v2"]
        assert img.manifest_media_type == mt.OCI_MANIFEST


def test_skopeo_round_trips_our_docker_archive(tmp_path, image):
    ours = _write(tmp_path / "d.tar", write_docker_archive, image, tmp_path)
    theirs = tmp_path / "o.tar"
    _run("skopeo", "copy", "-q", f"docker-archive:{ours}", f"oci-archive:{theirs}")
    with open_archive(str(theirs)) as arc:
        assert arc.images[0].config_digest == image.config_digest


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")
def test_we_read_podman_save(tmp_path, image):
    root = tmp_path / "root"
    runroot = tempfile.mkdtemp(prefix="berth-prr-")  # podman refuses runroots over 50 chars
    podman = ["podman", "--root", str(root), "--runroot", str(runroot),
              "--cgroup-manager=cgroupfs", "--events-backend=file", "--storage-driver=vfs"]
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(_busybox_layer())
    try:
        _run(*podman, "import", "-q", str(rootfs), "pimg:1")
        _run(*podman, "save", "-q", "-o", str(tmp_path / "p.tar"), "pimg:1")
        _run(*podman, "save", "-q", "--format", "oci-archive", "-o", str(tmp_path / "p-oci.tar"),
             "pimg:1")
        image_id = _run(*podman, "image", "inspect", "--format", "{{.Id}}", "pimg:1").strip()
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)
    with open_archive(str(tmp_path / "p.tar")) as arc:
        assert arc.format == "docker-archive"
        img = arc.images[0]
        assert img.config_digest == "sha256:" + image_id
        assert img.repo_tags == ["localhost/pimg:1"]
        assert len(img.layers) == 1
        with img.layers[0].open() as f:
            assert sha256_bytes(f.read()) == img.layers[0].diff_id
    with open_archive(str(tmp_path / "p-oci.tar")) as arc:
        assert arc.format == "oci-archive"
        assert arc.images[0].config_digest == "sha256:" + image_id
        assert len(arc.images[0].layers) == 1


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")
@pytest.mark.parametrize("writer", [write_docker_archive, write_oci_archive])
def test_podman_loads_our_archives(tmp_path, image, writer):
    path = _write(tmp_path / "x.tar", writer, image, tmp_path)
    runroot = tempfile.mkdtemp(prefix="berth-prr-")
    podman = ["podman", "--root", str(tmp_path / "root"), "--runroot", runroot,
              "--cgroup-manager=cgroupfs", "--events-backend=file", "--storage-driver=vfs"]
    try:
        _run(*podman, "load", "-q", "-i", path)
        image_id = _run(*podman, "image", "inspect", "--format", "{{.Id}}",
                        "busybox:latest").strip()
    finally:
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True, timeout=120)
        shutil.rmtree(runroot, ignore_errors=True)
    assert "sha256:" + image_id == image.config_digest
