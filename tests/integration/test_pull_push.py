"""berth pull/push/login/logout against a real docker-registry (distribution 2.8) on loopback.

Images with particular shapes (several layers, gzip/zstd, two-platform indexes) are built
directly in the registry with httpx, so each test says exactly what the registry serves.
Failure modes that a healthy registry cannot produce (a blob that does not match its
digest, a Bearer token server whose tokens expire mid-pull) come from a small in-process
fake registry at the end of this file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tarfactory import file, gzipped, make_tar, zstded  # noqa: E402

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "s390x" if GO_ARCH != "s390x" else "amd64"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A docker-registry process on 127.0.0.1:<free port>, optionally with htpasswd auth."""

    def __init__(self, base: Path, *, htpasswd: Path | None = None,
                 access_log: Path | None = None) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self.data = base / "data"
        cfg = base / "config.yml"
        auth = (f"auth: {{htpasswd: {{realm: berth-test, path: {htpasswd}}}}}\n"
                if htpasswd else "")
        log = "{level: info, accesslog: {disabled: false}}" if access_log else "{level: error}"
        cfg.write_text(f"version: 0.1\nlog: {log}\n"
                       f"storage: {{filesystem: {{rootdirectory: {self.data}}}, "
                       "delete: {enabled: true}}\n"
                       f"http: {{addr: {self.host}}}\n" + auth)
        out = open(access_log, "wb") if access_log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=out, stderr=out)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                httpx.get(self.url + "/v2/", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry is not installed")
    reg = Registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test's credentials away from the real ~/.docker."""
    d = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


# -- building images inside the registry ------------------------------------------------------
def put_blob(url: str, repo: str, data: bytes, auth: Any = None) -> str:
    digest = sha(data)
    r = httpx.post(f"{url}/v2/{repo}/blobs/uploads/", auth=auth)
    assert r.status_code == 202, r.text
    loc = httpx.URL(url).join(r.headers["location"])
    r = httpx.put(loc.copy_merge_params({"digest": digest}), content=data, auth=auth,
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    return digest


def put_manifest(url: str, repo: str, ref: str, body: bytes, media_type: str) -> str:
    r = httpx.put(f"{url}/v2/{repo}/manifests/{ref}", content=body,
                  headers={"Content-Type": media_type})
    assert r.status_code == 201, r.text
    return sha(body)


def layer_tar(tag: str, n: int = 3) -> bytes:
    return make_tar([file(f"{tag}/f{i}.txt", f"{tag} {i}\n".encode() * 50) for i in range(n)])


def publish(url: str, repo: str, ref: str | None, tars: list[bytes], *,
            compress: list[str] | None = None, arch: str = GO_ARCH, docker: bool = False,
            label: str = "") -> tuple[bytes, str, str]:
    """Push an image made of ``tars``; returns (manifest bytes, manifest digest, config digest)."""
    compress = compress or ["gzip"] * len(tars)
    descs = []
    for tar, kind in zip(tars, compress):
        blob = {"gzip": gzipped, "zstd": zstded, "none": lambda b: b}[kind](tar)
        suffix = {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[kind]
        mt = (f"application/vnd.docker.image.rootfs.diff.tar{'.' + kind if kind != 'none' else ''}"
              if docker else f"application/vnd.oci.image.layer.v1.tar{suffix}")
        descs.append({"mediaType": mt, "digest": put_blob(url, repo, blob), "size": len(blob)})
    config = json.dumps({"architecture": arch, "os": "linux",
                         "config": {"Cmd": ["sh"], "Labels": {"l": label} if label else None},
                         "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]}}
                        ).encode()
    cfg_digest = put_blob(url, repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json" if docker
                   else "application/vnd.oci.image.config.v1+json",
                   "digest": cfg_digest, "size": len(config)},
        "layers": descs}).encode()
    digest = put_manifest(url, repo, ref or sha(manifest), manifest,
                          DOCKER_MANIFEST if docker else OCI_MANIFEST)
    return manifest, digest, cfg_digest


# -- push, rmi, pull ----------------------------------------------------------------------------
def test_push_then_pull_by_tag_and_digest(berth, busybox_image, registry: Registry,
                                          engine) -> None:
    ref = f"{registry.host}/test/bb:1"
    assert berth("tag", "busybox:latest", ref).returncode == 0
    r = berth("push", ref)
    assert r.returncode == 0, r.stderr
    assert f"The push refers to repository [{registry.host}/test/bb]" in r.stdout
    assert ": Pushed" in r.stdout
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("1: digest: sha256:") and " size: " in last
    digest = last.split()[2]

    again = berth("push", ref)
    assert again.returncode == 0 and "Layer already exists" in again.stdout

    assert berth("rmi", ref, "busybox:latest").returncode == 0
    r = berth("pull", ref)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "1: Pulling from test/bb"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-3:] == [f"Digest: {digest}", f"Status: Downloaded newer image for {ref}", ref]
    pulled = berth("images", "-q", "--no-trunc", ref).stdout.strip()
    assert pulled == busybox_image

    r = berth("pull", ref)
    assert f"Status: Image is up to date for {ref}" in r.stdout
    assert "Already exists" in r.stdout
    digests = berth("images", "--digests").stdout
    assert digest in digests

    assert berth("rmi", ref).returncode == 0
    r = berth("pull", f"{registry.host}/test/bb@{digest}")
    assert r.returncode == 0, r.stderr
    assert berth("images", "-q", "--no-trunc").stdout.strip() == busybox_image
    q = berth("pull", "-q", ref)
    assert q.stdout == f"{ref}\n"
    assert engine.system_check().ok


def test_pull_multi_layer_gzip_zstd_and_plain(engine, registry: Registry) -> None:
    tars = [layer_tar(f"m{i}") for i in range(4)]
    _, digest, cfg = publish(registry.url, "test/multi", "v1", tars,
                             compress=["gzip", "zstd", "none", "gzip"])
    (res,) = engine.pull(f"{registry.host}/test/multi:v1")
    assert res.digest == digest and res.image_id == cfg and res.layers_downloaded == 4
    layers = engine.image_service.layers(cfg)
    assert [row["diff_id"] for row in layers] == [sha(t) for t in tars]
    # pulled layers are verified and unpacked while they download: ready to run
    assert [r["unpacked"] for r in engine.store.db.query(
        "SELECT l.unpacked FROM layers l JOIN image_layers il ON il.chain_id=l.chain_id "
        "WHERE il.image_id=? ORDER BY il.idx", (cfg,))] == [1, 1, 1, 1]
    assert engine.system_check().ok
    diff = engine.store.layers.diff_dir(layers[1]["chain_id"])
    assert (Path(diff) / "m1" / "f0.txt").read_bytes().startswith(b"m1 0\n")
    assert f"{registry.host}/test/multi@{digest}" in engine.image(cfg).repo_digests
    assert engine.system_check().ok


def test_pull_docker_schema2_with_zstd_layer(engine, registry: Registry) -> None:
    tars = [layer_tar("d0"), layer_tar("d1")]
    _, digest, cfg = publish(registry.url, "test/docker", "z", tars, compress=["zstd", "gzip"],
                             docker=True)
    (res,) = engine.pull(f"{registry.host}/test/docker:z")
    assert res.image_id == cfg
    assert engine.image_service.manifest(cfg) == httpx.get(
        f"{registry.url}/v2/test/docker/manifests/z",
        headers={"Accept": DOCKER_MANIFEST}).content


def test_pull_index_picks_host_platform(engine, registry: Registry) -> None:
    host_m, host_d, host_cfg = publish(registry.url, "test/multiarch", None,
                                       [layer_tar("host")], arch=GO_ARCH)
    other_m, other_d, other_cfg = publish(registry.url, "test/multiarch", None,
                                          [layer_tar("other")], arch=OTHER_ARCH)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": other_d, "size": len(other_m),
         "platform": {"architecture": OTHER_ARCH, "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": host_d, "size": len(host_m),
         "platform": {"architecture": GO_ARCH, "os": "linux"}},
    ]}).encode()
    index_digest = put_manifest(registry.url, "test/multiarch", "latest", index, OCI_INDEX)
    (res,) = engine.pull(f"{registry.host}/test/multiarch")
    assert res.image_id == host_cfg and res.digest == index_digest
    assert engine.image_inspect(f"{registry.host}/test/multiarch")["Architecture"] == GO_ARCH
    (res,) = engine.pull(f"{registry.host}/test/multiarch:latest",
                         platform=f"linux/{OTHER_ARCH}")
    assert res.image_id == other_cfg
    from berth.errors import InvalidManifest

    with pytest.raises(InvalidManifest, match="no matching manifest"):
        engine.pull(f"{registry.host}/test/multiarch", platform="linux/mips64")


def test_pull_all_tags(berth, registry: Registry) -> None:
    for t in ("a", "b"):
        publish(registry.url, "test/alltags", t, [layer_tar(t)])
    r = berth("pull", "-a", f"{registry.host}/test/alltags")
    assert r.returncode == 0, r.stderr
    tags = berth("images", "--format", "{{.Tag}}", f"{registry.host}/test/alltags").stdout.split()
    assert sorted(tags) == ["a", "b"]


def test_errors_are_one_line(berth, registry: Registry) -> None:
    r = berth("pull", f"{registry.host}/test/bb:nope")
    assert r.returncode == 1
    assert r.stderr == (f"Error: manifest for {registry.host}/test/bb:nope not found: "
                        "manifest unknown: manifest unknown\n")
    r = berth("pull", f"127.0.0.1:{free_port()}/x/y:1")
    assert r.returncode == 1 and "connection refused" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = berth("pull", "UPPER/Case")
    assert r.returncode == 1 and r.stderr.startswith("Error: invalid reference format")
    r = berth("push", f"{registry.host}/test/none:1")
    assert r.returncode == 1 and "does not exist locally" in r.stderr


def test_cross_repository_mount_and_push_all_tags(berth, busybox_image, registry: Registry) -> None:
    src = f"{registry.host}/mount/src:1"
    berth("tag", "busybox", src)
    assert berth("push", src).returncode == 0
    for t in ("x", "y"):
        berth("tag", "busybox", f"{registry.host}/mount/dst:{t}")
    r = berth("push", "-a", f"{registry.host}/mount/dst")
    assert r.returncode == 0, r.stderr
    assert "Mounted from mount/src" in r.stdout
    assert sum(line.split(":")[0] in ("x", "y") and "digest:" in line
               for line in r.stdout.splitlines()) == 2


def test_chunked_upload_of_a_large_layer(engine, tmp_path, monkeypatch) -> None:
    """A layer over the threshold goes up in PATCH chunks (seen in the registry's own
    access log: docker-registry takes a monolithic upload just as well)."""
    from berth.registry.client import push as push_mod

    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry is not installed")
    log = tmp_path / "access.log"
    (tmp_path / "reg").mkdir()
    registry = Registry(tmp_path / "reg", access_log=log)
    try:
        monkeypatch.setattr(push_mod, "CHUNKED_THRESHOLD", 64 * 1024)
        monkeypatch.setattr(push_mod, "CHUNK_SIZE", 100 * 1024)
        big = make_tar([file("big.bin", os.urandom(300 * 1024))])
        image_id = engine.import_image(__import__("io").BytesIO(gzipped(big)),
                                       f"{registry.host}/test/chunked:1")
        (res,) = engine.push(f"{registry.host}/test/chunked:1")
        engine.rmi([f"{registry.host}/test/chunked:1"])
        (back,) = engine.pull(f"{registry.host}/test/chunked:1")
    finally:
        registry.stop()
    assert back.image_id == image_id and back.digest == res.digest
    patches = [line for line in log.read_text().splitlines()
               if '"PATCH /v2/test/chunked/blobs/uploads/' in line]
    assert len(patches) >= 3, log.read_text()[-2000:]  # ~300 KiB in 100 KiB chunks


# -- interrupted and corrupt pulls (fake registry) -----------------------------------------------
class FakeRegistry:
    """A minimal distribution API over a dict, with knobs for misbehaving.

    ``corrupt``: digests whose blob is served with one byte flipped; ``truncate``: digests
    whose body stops half-way; ``truncate_once``: digests whose first GET stops half-way
    and that are then served with ``Range`` support (``Accept-Ranges: bytes``, 206 answers,
    the offsets asked for kept in ``range_starts``); ``token``: require Bearer tokens from ``/token`` (user
    ``alice``/``secret``), each token valid for ``token_uses`` requests.
    """

    def __init__(self, *, token: bool = False, token_uses: int = 1000) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.truncate_once: set[str] = set()
        self.range_starts: list[int] = []
        self.blob_gets: dict[str, int] = {}
        self.token = token
        self.token_uses = token_uses
        self.tokens: dict[str, int] = {}
        self.scopes: list[list[str]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      length: int | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _authorized(self) -> bool:
                if not fake.token:
                    return True
                got = self.headers.get("Authorization", "")
                with fake.lock:
                    left = fake.tokens.get(got.removeprefix("Bearer "), 0)
                    if got.startswith("Bearer ") and left > 0:
                        fake.tokens[got[7:]] = left - 1
                        return True
                challenge = (f'Bearer realm="http://{fake.host}/token",service="fake",'
                             'scope="repository:test/app:pull"')
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication '
                           b'required"}]}', {"WWW-Authenticate": challenge})
                return False

            def _token(self) -> None:
                want = "Basic " + base64.b64encode(b"alice:secret").decode()
                if self.headers.get("Authorization") != want:
                    self._send(401, b'{"details":"incorrect username or password"}')
                    return
                q = httpx.URL(self.path).params
                with fake.lock:
                    fake.scopes.append(q.get_list("scope"))
                    tok = os.urandom(8).hex()
                    fake.tokens[tok] = fake.token_uses
                self._send(200, json.dumps({"token": tok, "expires_in": 300}).encode())

            def do_GET(self) -> None:  # noqa: N802
                self._route()

            def do_HEAD(self) -> None:  # noqa: N802
                self._route()

            def do_POST(self) -> None:  # noqa: N802
                self._route()

            def do_PUT(self) -> None:  # noqa: N802
                self._route()

            def do_PATCH(self) -> None:  # noqa: N802
                self._route()

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _route(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/token":
                    return self._token()
                body = self._body()
                if not self._authorized():
                    return
                parts = path.split("/")
                if path == "/v2/":
                    return self._send(200, b"{}")
                if "/manifests/" in path:
                    ref = parts[-1]
                    if self.command == "PUT":
                        mt = self.headers["Content-Type"]
                        fake.manifests[ref] = (body, mt)
                        fake.manifests[sha(body)] = (body, mt)
                        return self._send(201, headers={"Docker-Content-Digest": sha(body)})
                    if ref not in fake.manifests:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN",'
                                          b'"message":"manifest unknown"}]}')
                    data, mt = fake.manifests[ref]
                    return self._send(200, data, {"Content-Type": mt,
                                                  "Docker-Content-Digest": sha(data)})
                if "/blobs/uploads/" in path:
                    if self.command == "POST":
                        uid = os.urandom(4).hex()
                        fake.uploads[uid] = bytearray()
                        return self._send(202, headers={
                            "Location": f"/v2/test/app/blobs/uploads/{uid}"})
                    uid = parts[-1]
                    fake.uploads[uid] += body
                    if self.command == "PATCH":
                        return self._send(202, headers={
                            "Location": f"/v2/test/app/blobs/uploads/{uid}"})
                    digest = httpx.URL(self.path).params["digest"]
                    data = bytes(fake.uploads.pop(uid))
                    assert sha(data) == digest
                    fake.blobs[digest] = data
                    return self._send(201)
                if "/blobs/" in path:
                    digest = parts[-1]
                    if digest not in fake.blobs:
                        return self._send(404)
                    data = fake.blobs[digest]
                    if self.command == "HEAD":
                        return self._send(200, length=len(data))
                    with fake.lock:
                        fake.blob_gets[digest] = fake.blob_gets.get(digest, 0) + 1
                    if digest in fake.corrupt:
                        data = data[:-1] + bytes([data[-1] ^ 1])
                    if digest in fake.truncate:
                        self._send(200, data[: len(data) // 2], length=len(data))
                        self.close_connection = True
                        return
                    if digest in fake.truncate_once:
                        rng = self.headers.get("Range", "")
                        if not rng:
                            self._send(200, data[: len(data) // 2], {"Accept-Ranges": "bytes"},
                                       length=len(data))
                            self.close_connection = True
                            return
                        start = int(rng.removeprefix("bytes=").split("-")[0])
                        fake.range_starts.append(start)
                        return self._send(206, data[start:], {
                            "Accept-Ranges": "bytes",
                            "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
                    return self._send(200, data)
                self._send(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add_image(self, tag: str, tars: list[bytes]) -> tuple[list[str], str]:
        blobs = [gzipped(t) for t in tars]
        for b in blobs:
            self.blobs[sha(b)] = b
        config = json.dumps({"architecture": GO_ARCH, "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [sha(t) for t in tars]}}).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha(b), "size": len(b)} for b in blobs]}).encode()
        self.manifests[tag] = (manifest, OCI_MANIFEST)
        return [sha(b) for b in blobs], sha(config)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    f = FakeRegistry()
    yield f
    f.close()


def test_corrupt_blob_fails_cleanly_and_resume_fetches_only_missing(engine, fake) -> None:
    from berth.errors import DigestMismatch, InvalidArchive

    tars = [layer_tar(f"r{i}", 20) for i in range(3)]
    layer_digests, cfg = fake.add_image("v1", tars)
    bad = layer_digests[2]
    fake.corrupt.add(bad)
    with pytest.raises((DigestMismatch, InvalidArchive)):  # gzip's own CRC may see it first
        engine.pull(f"{fake.host}/test/app:v1", max_concurrent=1)
    assert engine.images() == []
    report = engine.system_check()
    assert report.ok, report.damage
    assert not [n for n in os.listdir(engine.store.tmp) if not n.startswith("trash")]
    for d in layer_digests[:2]:  # finished before the failure: kept for the next try
        assert engine.store.content.exists(d)
    assert not engine.store.content.exists(bad)

    fake.corrupt.clear()
    (res,) = engine.pull(f"{fake.host}/test/app:v1")
    assert res.image_id == cfg
    assert fake.blob_gets == {layer_digests[0]: 1, layer_digests[1]: 1, bad: 2, cfg: 1}
    assert engine.system_check().ok


def test_truncated_body_is_retried_then_reported(engine, fake) -> None:
    from berth.errors import RegistryError

    layer_digests, _ = fake.add_image("v1", [layer_tar("t", 200)])
    fake.truncate.add(layer_digests[0])
    with pytest.raises(RegistryError):
        engine.pull(f"{fake.host}/test/app:v1")
    assert fake.blob_gets[layer_digests[0]] == 3  # first try + two retries
    assert engine.images() == [] and engine.system_check().ok


def test_dropped_download_resumes_with_a_range_request(engine, fake) -> None:
    tar = layer_tar("resume", 400)
    layer_digests, cfg = fake.add_image("v1", [tar])
    fake.truncate_once.add(layer_digests[0])
    (res,) = engine.pull(f"{fake.host}/test/app:v1")
    assert res.image_id == cfg
    half = len(fake.blobs[layer_digests[0]]) // 2
    assert fake.blob_gets[layer_digests[0]] == 2  # the first GET and one Range request
    assert fake.range_starts == [half]  # resumed from the bytes received, not from 0
    assert engine.system_check().ok  # the digest and diff ID checks covered every byte


def test_registry_killed_mid_pull_leaves_store_consistent(engine, tmp_path_factory) -> None:
    """The real registry dies while a big layer streams; nothing half-done is left."""
    reg = Registry(tmp_path_factory.mktemp("dying"))
    try:
        small = layer_tar("small")
        big = make_tar([file("big.bin", os.urandom(48 * 1024 * 1024))])
        publish(reg.url, "test/dying", "1", [small, big])

        from berth.registry.client.progress import NullProgress

        class KillHalfway(NullProgress):
            seen = 0

            def advance(self, layer: str, n: int) -> None:
                KillHalfway.seen += n
                if KillHalfway.seen > 8 * 1024 * 1024 and reg.proc.poll() is None:
                    reg.proc.kill()
                    reg.proc.wait()

        from berth.errors import RegistryError

        with pytest.raises(RegistryError):
            engine.pull(f"{reg.host}/test/dying:1", progress=KillHalfway())
        assert engine.images() == [] and engine.system_check().ok
    finally:
        reg.stop()


# -- authentication ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if not os.path.exists(REGISTRY_BIN):
        pytest.skip("docker-registry is not installed")
    import bcrypt

    base = tmp_path_factory.mktemp("authreg")
    htpasswd = base / "htpasswd"
    htpasswd.write_text("bob:" + bcrypt.hashpw(b"hunter2", bcrypt.gensalt(5)).decode() + "\n")
    reg = Registry(base, htpasswd=htpasswd)
    yield reg
    reg.stop()


def test_login_logout_with_htpasswd(berth, busybox_image, auth_registry: Registry,
                                    docker_config: Path) -> None:
    host = auth_registry.host
    ref = f"{host}/private/bb:1"
    berth("tag", "busybox", ref)
    r = berth("push", ref)
    assert r.returncode == 1 and "unauthorized" in r.stderr, r.stderr

    r = berth("login", "-u", "bob", "-p", "wrong", host)
    assert r.returncode == 1 and "unauthorized" in r.stderr and "Login" not in r.stdout
    assert not (docker_config / "config.json").exists()

    r = berth("login", "-u", "bob", "--password-stdin", host, input="hunter2\n")
    assert r.returncode == 0 and r.stdout.strip() == "Login Succeeded", r.stderr
    cfg_file = docker_config / "config.json"
    assert stat.S_IMODE(cfg_file.stat().st_mode) == 0o600
    entry = json.loads(cfg_file.read_text())["auths"][host]
    assert base64.b64decode(entry["auth"]) == b"bob:hunter2"

    assert berth("push", ref).returncode == 0
    berth("rmi", ref)
    assert berth("pull", ref).returncode == 0

    r = berth("logout", host)
    assert r.returncode == 0 and r.stdout.strip() == f"Removing login credentials for {host}"
    assert host not in json.loads(cfg_file.read_text())["auths"]
    assert berth("logout", host).stdout.strip() == f"Not logged in to {host}"

    berth("rmi", ref)
    r = berth("pull", ref)
    assert r.returncode == 1
    assert r.stderr.startswith(f"Error: pull access denied for {host}/private/bb")
    assert "unauthorized" in r.stderr and r.stderr.count("\n") == 1


def test_bearer_token_flow_scopes_and_refresh(engine, docker_config: Path) -> None:
    f = FakeRegistry(token=True, token_uses=3)
    try:
        from berth.errors import Unauthorized

        with pytest.raises(Unauthorized):
            engine.login(f.host, "alice", "wrong")
        assert engine.login(f.host, "alice", "secret") == f.host
        _, cfg = f.add_image("v1", [layer_tar("a"), layer_tar("b"), layer_tar("c")])
        (res,) = engine.pull(f"{f.host}/test/app:v1", max_concurrent=1)
        assert res.image_id == cfg
        pulls = [s for s in f.scopes if s]
        assert pulls and all(s == ["repository:test/app:pull"] for s in pulls)
        assert len(pulls) >= 2  # each token lasts 3 requests: refreshed mid-pull

        engine.tag(f"{f.host}/test/app:v1", f"{f.host}/test/app:v2")
        (pushed,) = engine.push(f"{f.host}/test/app:v2")
        assert ["repository:test/app:pull,push"] in f.scopes
        assert f.manifests["v2"][0] == f.manifests["v1"][0]
        assert pushed.digest == sha(f.manifests["v1"][0])

        engine.logout(f.host)
        engine.rmi([f"{f.host}/test/app:v1", f"{f.host}/test/app:v2"])
        with pytest.raises(Unauthorized, match="pull access denied"):
            engine.pull(f"{f.host}/test/app:v1")
    finally:
        f.close()


def test_insecure_registries_file_and_credentials_helpers(tmp_path: Path, monkeypatch) -> None:
    from berth.registry.client import credentials
    from berth.registry.client.transport import configured_insecure, is_loopback

    (tmp_path / "registries.json").write_text('{"insecure": ["reg.example:5000"]}')
    assert configured_insecure(str(tmp_path)) == {"reg.example:5000"}
    assert is_loopback("127.0.0.5:80") and is_loopback("[::1]:5000") and is_loopback("localhost")
    assert not is_loopback("example.com:5000")
    assert credentials.normalize_server("https://index.docker.io/v1/") == "docker.io"
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    credentials.save("docker.io", credentials.Credentials("u", "p:w"))
    doc = json.loads((tmp_path / "dc" / "config.json").read_text())
    assert list(doc["auths"]) == ["https://index.docker.io/v1/"]
    assert credentials.load("docker.io") == credentials.Credentials("u", "p:w")


def test_pull_without_isal_uses_zlib(engine, registry: Registry, monkeypatch) -> None:
    from berth.registry.client import unpack

    monkeypatch.setattr(unpack, "_have_isal", lambda: False)
    tars = [layer_tar("noisal0"), layer_tar("noisal1")]
    _, _, cfg = publish(registry.url, "test/noisal", "1", tars)
    (res,) = engine.pull(f"{registry.host}/test/noisal:1")
    assert res.image_id == cfg and engine.system_check().ok


def test_pull_unpacks_while_downloading(berth, busybox_image, registry: Registry,
                                       engine) -> None:
    """A pulled image is ready to run: its layers are unpacked during the pull, and its
    compressed blobs are kept, so a re-push sends the same bytes."""
    ref = f"{registry.host}/lazy/bb:1"
    assert berth("tag", "busybox", ref).returncode == 0
    assert berth("push", "-q", ref).returncode == 0
    raw = httpx.get(f"{registry.url}/v2/lazy/bb/manifests/1",
                    headers={"Accept": OCI_MANIFEST}).content
    pushed = json.loads(raw)
    assert berth("rmi", "busybox", ref).returncode == 0
    r = berth("pull", "-q", ref)
    assert r.returncode == 0, r.stderr
    db = engine.store.db
    assert db.one("SELECT COUNT(*) AS n FROM layers")["n"] == 1
    assert db.one("SELECT COUNT(*) AS n FROM layers WHERE unpacked=0")["n"] == 0
    (layer,) = pushed["layers"]
    assert engine.store.content.exists(layer["digest"])  # the gzip blob, as pulled
    r = berth("run", "--rm", "--network", "none", ref, "cat", "/etc/group")
    assert r.returncode == 0 and r.stdout.startswith("root:x:0:"), r.stderr
    again = f"{registry.host}/lazy/again:1"
    assert berth("tag", ref, again).returncode == 0
    r = berth("push", again)
    assert r.returncode == 0 and "Mounted from lazy/bb" in r.stdout, r.stdout
    assert f"digest: {sha(raw)} size: {len(raw)}" in r.stdout  # the very same manifest
    rep = engine.system_check()
    assert rep.ok and not rep.garbage, rep.garbage


def test_two_first_uses_of_a_packed_layer_at_once(berth, busybox_image, engine) -> None:
    """A committed layer is stored packed and unpacked on first use, once, for everyone."""
    assert berth("run", "--name", "cc", "--network", "none", "busybox", "sh", "-c",
                 "echo hi > /made").returncode == 0
    assert berth("commit", "cc", "packed:1").returncode == 0
    assert berth("rm", "cc").returncode == 0
    assert engine.store.db.one("SELECT COUNT(*) AS n FROM layers WHERE unpacked=0")["n"] == 1
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "berth", "run", "--rm", "--network",
                               "none", "packed:1", "cat", "/made"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out == "hi\n"
    assert engine.store.db.one("SELECT COUNT(*) AS n FROM layers WHERE unpacked=0")["n"] == 0
    rep = engine.system_check()
    assert rep.ok and not [g for g in rep.garbage if "layer" in g], rep.garbage
