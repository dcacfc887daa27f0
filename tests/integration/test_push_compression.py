"""Push compresses layers stored plain, once, deterministically; compressed ones go as they are.

Against docker-registry on 127.0.0.1: what the registry ends up holding is read back with
httpx, so each test checks the bytes a real client would pull.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import httpx
import pytest
from test_pull_push import (  # noqa: F401 - fixtures
    OCI_MANIFEST,
    Registry,
    docker_config,
    layer_tar,
    publish,
    registry,
)

from berth.registry.client.progress import NullProgress

ACCEPT = {"Accept": OCI_MANIFEST + ",application/vnd.docker.distribution.manifest.v2+json"}


class Statuses(NullProgress):
    """A Progress that keeps each layer's final status (``Pushed``, ``Mounted from …``)."""

    def __init__(self) -> None:
        self.final: list[str] = []

    def done(self, layer: str, status: str) -> None:
        self.final.append(status)


def _manifest(reg: Registry, repo: str, ref: str) -> tuple[dict, str]:
    r = httpx.get(f"{reg.url}/v2/{repo}/manifests/{ref}", headers=ACCEPT)
    r.raise_for_status()
    return r.json(), "sha256:" + hashlib.sha256(r.content).hexdigest()


def _blob(reg: Registry, repo: str, digest: str) -> bytes:
    r = httpx.get(f"{reg.url}/v2/{repo}/blobs/{digest}", follow_redirects=True)
    r.raise_for_status()
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == digest
    return r.content


def test_plain_layers_go_out_gzip_and_come_back_as_the_same_image(
        engine, busybox_image: str, registry: Registry) -> None:
    ref = f"{registry.host}/comp/bb:1"
    engine.tag("busybox", ref)
    first = engine.push(ref)[0]
    doc, digest = _manifest(registry, "comp/bb", "1")
    assert digest == first.digest
    layer = doc["layers"][0]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    data = _blob(registry, "comp/bb", layer["digest"])
    assert data[:2] == b"\x1f\x8b" and layer["size"] == len(data)
    plain = gzip.decompress(data)
    config = json.loads(_blob(registry, "comp/bb", doc["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(plain).hexdigest()]
    assert len(data) < len(plain) / 1.5  # busybox compresses well; it really is compressed
    assert doc["config"]["digest"] == busybox_image  # the image ID does not change

    engine.rmi([ref, "busybox"])
    assert engine.pull(ref)[0].digest == digest
    assert engine.image_inspect(ref)["Id"] == busybox_image


def test_a_repush_compresses_nothing_and_keeps_the_manifest_digest(
        engine, busybox_image: str, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.oci import stream_compress

    ref = f"{registry.host}/comp/again:1"
    engine.tag("busybox", ref)
    first = engine.push(ref)[0]

    def refuse(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("layer compressed again")

    monkeypatch.setattr(stream_compress, "compress_stream", refuse)
    seen = Statuses()
    assert engine.push(ref, progress=seen)[0].digest == first.digest
    assert seen.final == ["Layer already exists"]

    other = f"{registry.host}/comp/elsewhere:2"
    engine.tag("busybox", other)
    seen = Statuses()
    assert engine.push(other, progress=seen)[0].digest == first.digest
    assert seen.final == ["Mounted from comp/again"]


def test_compression_is_deterministic_across_stores(
        engine, busybox_image: str, registry: Registry) -> None:
    ref = f"{registry.host}/comp/det:1"
    engine.tag("busybox", ref)
    first = engine.push(ref)[0]
    with engine.store.db.tx() as tx:  # forget what the layer compressed to
        tx.execute("DELETE FROM compressed_blobs")
    httpx.delete(f"{registry.url}/v2/comp/det/manifests/{first.digest}")
    ref2 = f"{registry.host}/comp/det2:1"
    engine.tag("busybox", ref2)
    assert engine.push(ref2)[0].digest == first.digest


def test_zstd_format_and_level_flags(berth, busybox_image: str, registry: Registry) -> None:
    ref = f"{registry.host}/comp/zst:1"
    berth("tag", "busybox", ref)
    r = berth("push", "--compression-format", "zstd", "--compression-level", "5", ref)
    assert r.returncode == 0, r.stderr
    doc, _ = _manifest(registry, "comp/zst", "1")
    layer = doc["layers"][0]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert _blob(registry, "comp/zst", layer["digest"])[:4] == b"\x28\xb5\x2f\xfd"
    berth("rmi", ref, "busybox")
    r = berth("pull", ref)
    assert r.returncode == 0, r.stderr
    assert berth("images", "-q", "--no-trunc", ref).stdout.strip() == busybox_image

    r = berth("push", "--compression-level", "0", ref)
    assert (r.returncode, r.stderr) == (1, "Error: gzip compression level must be 1..9, not 0\n")
    r = berth("push", "--compression-format", "lz4", ref)
    assert r.returncode == 125 and "invalid choice: 'lz4'" in r.stderr


def test_pulled_gzip_layers_are_pushed_byte_for_byte(engine, registry: Registry) -> None:
    manifest, digest, _ = publish(registry.url, "comp/src", "1", [layer_tar("a"), layer_tar("b")])
    src = f"{registry.host}/comp/src:1"
    engine.pull(src)
    dst = f"{registry.host}/comp/dst:1"
    engine.tag(src, dst)
    assert engine.push(dst)[0].digest == digest  # same manifest, so the same layer blobs
    assert [x["digest"] for x in _manifest(registry, "comp/dst", "1")[0]["layers"]] == \
        [x["digest"] for x in json.loads(manifest)["layers"]]


def test_large_compressed_layers_go_in_several_patches(
        engine, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from berth.registry.client import push as push_mod

    monkeypatch.setattr(push_mod, "COMPRESSED_CHUNK", 64 * 1024)
    tar = tmp_path / "rand.tar"
    import tarfile

    payload = tmp_path / "random.bin"
    payload.write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible: 3 igzip blocks
    with tarfile.open(tar, "w") as tf:
        tf.add(payload, arcname="random.bin")
    with open(tar, "rb") as f:
        engine.import_image(f, "rand:1")
    patches: list[str] = []
    real = push_mod._Pusher._patch

    def counting(self, location, start, content, digest, length=None):  # type: ignore[no-untyped-def]
        patches.append(f"{start}")
        return real(self, location, start, content, digest, length)

    monkeypatch.setattr(push_mod._Pusher, "_patch", counting)
    ref = f"{registry.host}/comp/big:1"
    engine.tag("rand:1", ref)
    engine.push(ref)
    assert len(patches) >= 3 and patches[0] == "0"
    doc, _ = _manifest(registry, "comp/big", "1")
    data = _blob(registry, "comp/big", doc["layers"][0]["digest"])
    assert gzip.decompress(data) == tar.read_bytes()


def test_push_section_of_berth_toml(berth, berth_env, busybox_image: str,
                                    registry: Registry) -> None:
    """``[push] compression_format`` in the root's berth.toml; a flag still wins."""
    toml = Path(berth_env["root"]) / "berth.toml"
    toml.write_text('[push]\ncompression_format = "zstd"\ncompression_level = 7\n')
    ref = f"{registry.host}/comp/toml:1"
    berth("tag", "busybox", ref)
    assert berth("push", "-q", ref).returncode == 0
    doc, _ = _manifest(registry, "comp/toml", "1")
    assert doc["layers"][0]["mediaType"].endswith("+zstd")
    ref2 = f"{registry.host}/comp/toml2:1"
    berth("tag", "busybox", ref2)
    assert berth("push", "-q", "--compression-format", "gzip", ref2).returncode == 0
    doc, _ = _manifest(registry, "comp/toml2", "1")
    assert doc["layers"][0]["mediaType"].endswith("+gzip")
    toml.write_text('[push]\ncompression_format = "lz4"\n')
    r = berth("push", ref)
    assert r.returncode == 1
    assert r.stderr == (f"Error: invalid {toml}: [push] unsupported compression format "
                        "'lz4' (expected gzip or zstd)\n")
