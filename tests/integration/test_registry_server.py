"""``berth registry serve`` against the OCI distribution spec, driven over real HTTP.

Each server is the real CLI in a subprocess on ``127.0.0.1:0`` (the port is read from its
``listening on`` line) and is stopped in teardown. httpx checks each endpoint and error
code; curl checks a few error cases the way a user would see them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tlscerts import CA

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def berth_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "berth", *args]


class Server:
    """One ``berth registry serve`` subprocess; ``url`` once it is listening."""

    def __init__(self, storage: Path, *extra: str, log: Path) -> None:
        self.storage = storage
        self.log = log
        self.proc = subprocess.Popen(
            berth_cmd("registry", "serve", "--addr", "127.0.0.1:0", "--storage", str(storage),
                      *extra),
            stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        self.url = self._wait_url()

    def _wait_url(self) -> str:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log.read_text() if self.log.exists() else ""
            for line in text.splitlines():
                if line.startswith("listening on "):
                    return line.split()[2]
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {text}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    d = tmp_path_factory.mktemp("registry")
    s = Server(d / "storage", log=d / "log")
    yield s
    s.stop()


@pytest.fixture
def c(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def sha(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def code_of(r: httpx.Response) -> str:
    return r.json()["errors"][0]["code"]


def push_blob(c: httpx.Client, repo: str, data: bytes) -> str:
    d = sha(data)
    r = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": d}, content=data)
    assert r.status_code == 201, r.text
    return d


def image_manifest(c: httpx.Client, repo: str, layer: bytes = b"layer",
                   config: bytes = b'{"architecture":"amd64","os":"linux"}',
                   **extra: object) -> tuple[bytes, str]:
    cfg, lay = push_blob(c, repo, config), push_blob(c, repo, layer)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": CONFIG_TYPE, "digest": cfg, "size": len(config)},
           "layers": [{"mediaType": LAYER_TYPE, "digest": lay, "size": len(layer)}], **extra}
    body = json.dumps(doc).encode()
    return body, sha(body)


def put_manifest(c: httpx.Client, repo: str, ref: str, body: bytes,
                 media_type: str = OCI_MANIFEST, **kw: object) -> httpx.Response:
    return c.put(f"/v2/{repo}/manifests/{ref}", content=body,
                 headers={"Content-Type": media_type}, **kw)  # type: ignore[arg-type]


# -- base and names --------------------------------------------------------------------------

def test_base_endpoint(c: httpx.Client) -> None:
    r = c.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("name", ["Upper", "a..b", "-a", "a/", "a//b", "a/_b", "%2e%2e/x",
                                  "a/..%2fetc", "x" * 300])
def test_invalid_repository_names(c: httpx.Client, name: str) -> None:
    r = c.get(f"/v2/{name}/tags/list")
    assert r.status_code == 400 and code_of(r) == "NAME_INVALID"


def test_unknown_repository(c: httpx.Client) -> None:
    r = c.get("/v2/nothing/here/tags/list")
    assert r.status_code == 404 and code_of(r) == "NAME_UNKNOWN"
    r = c.get("/v2/nothing/here/manifests/latest")
    assert r.status_code == 404


# -- blobs -------------------------------------------------------------------------------------

def test_post_then_put_and_pull(c: httpx.Client) -> None:
    data = os.urandom(100_000)
    d = sha(data)
    r = c.post("/v2/blobs/a/blobs/uploads/")
    assert r.status_code == 202 and r.headers["Range"] == "0-0"
    loc = r.headers["Location"]
    r = c.put(loc, params={"digest": d}, content=data,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d
    assert r.headers["Location"] == f"/v2/blobs/a/blobs/{d}"
    h = c.head(f"/v2/blobs/a/blobs/{d}")
    assert h.status_code == 200 and h.headers["Content-Length"] == str(len(data))
    assert h.headers["Docker-Content-Digest"] == d and h.content == b""
    g = c.get(f"/v2/blobs/a/blobs/{d}")
    assert g.status_code == 200 and g.content == data


def test_range_requests(c: httpx.Client) -> None:
    data = bytes(range(256)) * 10
    d = push_blob(c, "ranges", data)
    r = c.get(f"/v2/ranges/blobs/{d}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = c.get(f"/v2/ranges/blobs/{d}", headers={"Range": "bytes=5000-6000"})
    assert r.status_code == 416


def test_chunked_upload_in_order_and_out_of_order(c: httpx.Client) -> None:
    data = os.urandom(30_000)
    loc = c.post("/v2/chunks/blobs/uploads/", headers={"Content-Length": "0"}).headers["Location"]
    r = c.patch(loc, content=data[:10_000], headers={"Content-Range": "0-9999"})
    assert r.status_code == 202 and r.headers["Range"] == "0-9999"
    loc = r.headers["Location"]
    r = c.patch(loc, content=data[20_000:], headers={"Content-Range": "20000-29999"})
    assert r.status_code == 416
    st = c.get(loc)
    assert st.status_code == 204 and st.headers["Range"] == "0-9999"
    r = c.patch(st.headers["Location"], content=data[10_000:20_000],
                headers={"Content-Range": "10000-19999"})
    assert r.status_code == 202 and r.headers["Range"] == "0-19999"
    r = c.put(r.headers["Location"], params={"digest": sha(data)}, content=data[20_000:],
              headers={"Content-Range": "20000-29999"})
    assert r.status_code == 201
    assert c.get(f"/v2/chunks/blobs/{sha(data)}").content == data


def test_out_of_order_final_chunk_on_put(c: httpx.Client) -> None:
    loc = c.post("/v2/chunks/blobs/uploads/").headers["Location"]
    r = c.put(loc, params={"digest": sha(b"abc")}, content=b"c",
              headers={"Content-Range": "2-2"})
    assert r.status_code == 416


def test_streamed_patch_without_content_range(c: httpx.Client) -> None:
    parts = [os.urandom(300_000) for _ in range(10)]
    data = b"".join(parts)
    loc = c.post("/v2/stream/blobs/uploads/").headers["Location"]
    r = c.patch(loc, content=iter(parts))  # chunked transfer encoding, no length
    assert r.status_code == 202 and r.headers["Range"] == f"0-{len(data) - 1}"
    r = c.put(r.headers["Location"], params={"digest": sha(data)})
    assert r.status_code == 201
    assert hashlib.sha256(c.get(f"/v2/stream/blobs/{sha(data)}").content).hexdigest() == \
        sha(data).split(":")[1]


def test_wrong_digest_on_put(c: httpx.Client) -> None:
    loc = c.post("/v2/wrong/blobs/uploads/").headers["Location"]
    r = c.put(loc, params={"digest": sha(b"other")}, content=b"data")
    assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"
    assert c.get(loc).status_code == 404  # the session is gone
    r = c.head(f"/v2/wrong/blobs/{sha(b'other')}")
    assert r.status_code == 404


def test_monolithic_post_wrong_digest(c: httpx.Client) -> None:
    r = c.post("/v2/wrong/blobs/uploads/", params={"digest": sha(b"x")}, content=b"y")
    assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"


@pytest.mark.parametrize("digest", ["sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64,
                                    "nocolon", "sha256:" + "A" * 64, "sha512:" + "0" * 64])
def test_malformed_digests_are_400(c: httpx.Client, digest: str) -> None:
    for r in (c.get(f"/v2/x/blobs/{digest}"), c.head(f"/v2/x/blobs/{digest}"),
              c.delete(f"/v2/x/blobs/{digest}"), c.get(f"/v2/x/referrers/{digest}"),
              c.post("/v2/x/blobs/uploads/", params={"digest": digest}, content=b"z"),
              c.post("/v2/x/blobs/uploads/", params={"mount": digest, "from": "y"})):
        assert r.status_code == 400, (r.request.method, r.request.url)
        if r.request.method != "HEAD":
            assert code_of(r) == "DIGEST_INVALID"
    if ":" in digest:  # without a colon it is a tag, not a digest
        r = c.get(f"/v2/x/manifests/{digest}")
        assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"
    loc = c.post("/v2/x/blobs/uploads/").headers["Location"]
    r = c.put(loc, params={"digest": digest}, content=b"z")
    assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"
    r = c.put(loc.rsplit("?", 1)[0], content=b"z")  # digest missing altogether
    assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"


def test_unknown_blob_and_repo_isolation(c: httpx.Client) -> None:
    d = push_blob(c, "iso/one", b"only in one")
    r = c.get(f"/v2/iso/two/blobs/{d}")
    assert r.status_code == 404 and code_of(r) == "BLOB_UNKNOWN"
    r = c.get(f"/v2/iso/one/blobs/{sha(b'never pushed')}")
    assert r.status_code == 404 and code_of(r) == "BLOB_UNKNOWN"


def test_cancel_and_unknown_upload(c: httpx.Client) -> None:
    loc = c.post("/v2/cancel/blobs/uploads/").headers["Location"]
    assert c.delete(loc).status_code == 204
    r = c.get(loc)
    assert r.status_code == 404 and code_of(r) == "BLOB_UPLOAD_UNKNOWN"
    r = c.patch("/v2/cancel/blobs/uploads/" + "0" * 32, content=b"x")
    assert r.status_code == 404 and code_of(r) == "BLOB_UPLOAD_UNKNOWN"
    r = c.get("/v2/cancel/blobs/uploads/not-a-uuid")
    assert r.status_code == 404 and code_of(r) == "BLOB_UPLOAD_UNKNOWN"
    other = c.post("/v2/cancel/blobs/uploads/").headers["Location"]
    r = c.get(other.replace("/cancel/", "/elsewhere/"))  # a session belongs to its repo
    assert r.status_code == 404


def test_cross_repo_mount(c: httpx.Client) -> None:
    d = push_blob(c, "mount/src", b"mount me")
    r = c.post("/v2/mount/dst/blobs/uploads/", params={"mount": d, "from": "mount/src"})
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/mount/dst/blobs/{d}"
    assert c.get(f"/v2/mount/dst/blobs/{d}").content == b"mount me"
    missing = sha(b"not there")
    r = c.post("/v2/mount/dst/blobs/uploads/", params={"mount": missing, "from": "mount/src"})
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]
    r = c.post("/v2/mount/dst/blobs/uploads/", params={"mount": d, "from": "Bad Name"})
    assert r.status_code == 202


def test_sha512_blobs(c: httpx.Client) -> None:
    data = b"sha512 content" * 100
    d = sha(data, "sha512")
    r = c.post("/v2/five12/blobs/uploads/", params={"digest-algorithm": "sha512"})
    assert r.status_code == 202
    r = c.put(r.headers["Location"], params={"digest": d}, content=data)
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == d
    r = c.get(f"/v2/five12/blobs/{d}")
    assert r.content == data and r.headers["Docker-Content-Digest"] == d
    r = c.post("/v2/five12/blobs/uploads/", params={"digest": sha(b"m", "sha512")}, content=b"m")
    assert r.status_code == 201  # monolithic, algorithm taken from the digest
    r = c.post("/v2/five12/blobs/uploads/", params={"digest-algorithm": "md5"})
    assert r.status_code == 400


def test_delete_blob(c: httpx.Client) -> None:
    d = push_blob(c, "delblob", b"delete me")
    assert c.delete(f"/v2/delblob/blobs/{d}").status_code == 202
    assert c.get(f"/v2/delblob/blobs/{d}").status_code == 404
    r = c.delete(f"/v2/delblob/blobs/{d}")
    assert r.status_code == 404 and code_of(r) == "BLOB_UNKNOWN"


def test_concurrent_uploads_of_same_blob(c: httpx.Client, server: Server) -> None:
    data = os.urandom(3_000_000)
    d = sha(data)
    results: list[int] = []
    sessions: list[str] = []

    def one() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as cl:
            loc = cl.post("/v2/same/blobs/uploads/").headers["Location"]
            sessions.append(loc.rsplit("/", 1)[1])
            results.append(cl.put(loc, params={"digest": d}, content=data).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 8
    assert c.get(f"/v2/same/blobs/{d}").content == data
    assert not any((server.storage / "uploads" / s).exists() for s in sessions)


# -- manifests ------------------------------------------------------------------------------

def test_manifest_push_pull_by_tag_and_digest(c: httpx.Client) -> None:
    body, d = image_manifest(c, "man/img")
    r = put_manifest(c, "man/img", "v1", body)
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == d
    assert r.headers["Location"] == f"/v2/man/img/manifests/{d}"
    for ref in ("v1", d):
        g = c.get(f"/v2/man/img/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert g.status_code == 200 and g.content == body
        assert g.headers["Content-Type"] == OCI_MANIFEST
        assert g.headers["Docker-Content-Digest"] == d
        h = c.head(f"/v2/man/img/manifests/{ref}")
        assert h.status_code == 200 and h.headers["Content-Length"] == str(len(body))
        assert h.headers["Docker-Content-Digest"] == d
    r = c.get("/v2/man/img/manifests/nope")
    assert r.status_code == 404 and code_of(r) == "MANIFEST_UNKNOWN"


def test_manifest_bytes_preserved_exactly(c: httpx.Client) -> None:
    body, _ = image_manifest(c, "man/exact")
    odd = b"  " + body.replace(b", ", b",\n\t ") + b"\n"
    r = put_manifest(c, "man/exact", "odd", odd)
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == sha(odd)
    assert c.get("/v2/man/exact/manifests/odd").content == odd


def test_docker_schema2_content_type_preserved(c: httpx.Client) -> None:
    cfg, lay = push_blob(c, "man/docker", b"{}"), push_blob(c, "man/docker", b"L")
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "size": 2, "digest": cfg},
                       "layers": [{"mediaType":
                                   "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                   "size": 1, "digest": lay}]}).encode()
    assert put_manifest(c, "man/docker", "d", body, DOCKER_MANIFEST).status_code == 201
    assert c.get("/v2/man/docker/manifests/d").headers["Content-Type"] == DOCKER_MANIFEST


def test_manifest_blob_unknown(c: httpx.Client) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": CONFIG_TYPE, "size": 1, "digest": sha(b"?")},
                       "layers": []}).encode()
    r = put_manifest(c, "man/missing", "t", body)
    assert r.status_code == 400 and code_of(r) == "MANIFEST_BLOB_UNKNOWN"
    # a blob known only to another repository does not count
    d = push_blob(c, "man/other", b"elsewhere")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": CONFIG_TYPE, "size": 9, "digest": d},
                       "layers": []}).encode()
    r = put_manifest(c, "man/missing", "t", body)
    assert r.status_code == 400 and code_of(r) == "MANIFEST_BLOB_UNKNOWN"


def test_index_requires_children(c: httpx.Client) -> None:
    child, cd = image_manifest(c, "man/index")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "size": len(child), "digest": cd}]}).encode()
    r = put_manifest(c, "man/index", "multi", index, OCI_INDEX)
    assert r.status_code == 400 and code_of(r) == "MANIFEST_BLOB_UNKNOWN"
    assert put_manifest(c, "man/index", cd, child).status_code == 201
    r = put_manifest(c, "man/index", "multi", index, OCI_INDEX)
    assert r.status_code == 201
    assert c.get("/v2/man/index/manifests/multi").headers["Content-Type"] == OCI_INDEX


@pytest.mark.parametrize("body,ctype", [
    (b"not json", OCI_MANIFEST),
    (b"[1, 2]", OCI_MANIFEST),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
     OCI_MANIFEST),  # mediaType disagrees with Content-Type
    (json.dumps({"schemaVersion": 1, "mediaType": OCI_MANIFEST}).encode(), OCI_MANIFEST),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": "x",
                 "layers": []}).encode(), OCI_MANIFEST),
])
def test_invalid_manifests(c: httpx.Client, body: bytes, ctype: str) -> None:
    r = put_manifest(c, "man/bad", "t", body, ctype)
    assert r.status_code == 400 and code_of(r) == "MANIFEST_INVALID", r.text


def test_manifest_digest_mismatch_and_bad_tag(c: httpx.Client) -> None:
    body, _ = image_manifest(c, "man/dm")
    r = put_manifest(c, "man/dm", sha(b"something else"), body)
    assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"
    r = put_manifest(c, "man/dm", "sha256:xyz", body)
    assert r.status_code == 400 and code_of(r) == "DIGEST_INVALID"
    r = put_manifest(c, "man/dm", ".hidden", body)
    assert r.status_code == 400


def test_huge_manifest_is_413(c: httpx.Client) -> None:
    body = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    r = put_manifest(c, "man/huge", "t", body)
    assert r.status_code == 413
    r = c.put("/v2/man/huge/manifests/t", content=iter([body[:1 << 20], body[1 << 20:]]),
              headers={"Content-Type": OCI_MANIFEST})  # no Content-Length: cap while reading
    assert r.status_code == 413


def test_push_by_digest_with_tags(c: httpx.Client) -> None:
    body, d = image_manifest(c, "man/tags")
    r = put_manifest(c, "man/tags", d, body, params={"tag": ["1.0", "1", "latest"]})
    assert r.status_code == 201 and r.headers["OCI-Tag"] == "1.0, 1, latest"
    assert c.get("/v2/man/tags/manifests/1").headers["Docker-Content-Digest"] == d


def test_tags_list_and_pagination(c: httpx.Client) -> None:
    body, d = image_manifest(c, "pages")
    tags = ["b", "a", "C", "c", "a1", "latest"]
    for t in tags:
        assert put_manifest(c, "pages", t, body).status_code == 201
    r = c.get("/v2/pages/tags/list")
    assert r.json() == {"name": "pages", "tags": sorted(tags)}
    r = c.get("/v2/pages/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["C", "a"]
    assert r.headers["Link"] == '</v2/pages/tags/list?n=2&last=a>; rel="next"'
    r = c.get("/v2/pages/tags/list", params={"n": 2, "last": "a"})
    assert r.json()["tags"] == ["a1", "b"]
    r = c.get("/v2/pages/tags/list", params={"n": 10, "last": "b"})
    assert r.json()["tags"] == ["c", "latest"] and "Link" not in r.headers
    r = c.get("/v2/pages/tags/list", params={"n": 0})
    assert r.json()["tags"] == [] and "Link" not in r.headers
    assert c.get("/v2/pages/tags/list", params={"last": "c"}).json()["tags"] == ["latest"]
    assert c.get("/v2/pages/tags/list", params={"n": "x"}).status_code == 400


def test_catalog(c: httpx.Client) -> None:
    for repo in ("cat/a", "cat/b", "cat/c"):
        body, _ = image_manifest(c, repo)
        assert put_manifest(c, repo, "t", body).status_code == 201
    repos = c.get("/v2/_catalog").json()["repositories"]
    assert {"cat/a", "cat/b", "cat/c"} <= set(repos) and repos == sorted(repos)
    r = c.get("/v2/_catalog", params={"n": 1, "last": "cat/a"})
    assert r.json()["repositories"] == ["cat/b"]
    assert r.headers["Link"] == '</v2/_catalog?n=1&last=cat%2Fb>; rel="next"'


def test_delete_tag_and_manifest(c: httpx.Client) -> None:
    body, d = image_manifest(c, "del/man")
    put_manifest(c, "del/man", "one", body)
    put_manifest(c, "del/man", "two", body)
    assert c.delete("/v2/del/man/manifests/one").status_code == 202
    assert c.get("/v2/del/man/manifests/one").status_code == 404
    assert c.get("/v2/del/man/manifests/two").status_code == 200
    assert c.delete(f"/v2/del/man/manifests/{d}").status_code == 202
    assert c.get(f"/v2/del/man/manifests/{d}").status_code == 404
    assert c.get("/v2/del/man/manifests/two").status_code == 404
    r = c.delete(f"/v2/del/man/manifests/{d}")
    assert r.status_code == 404 and code_of(r) == "MANIFEST_UNKNOWN"
    r = c.delete(f"/v2/del/nothing/manifests/{d}")
    assert r.status_code == 404


# -- referrers ------------------------------------------------------------------------------

def test_referrers(c: httpx.Client) -> None:
    body, subject = image_manifest(c, "ref/img")
    put_manifest(c, "ref/img", "v1", body)
    empty = push_blob(c, "ref/img", b"{}")
    made = {}
    for art in ("application/vnd.example.sbom", "application/vnd.example.sig"):
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": art,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                          "digest": empty},
               "layers": [], "subject": {"mediaType": OCI_MANIFEST, "size": len(body),
                                         "digest": subject},
               "annotations": {"org.example.kind": art}}
        ab = json.dumps(doc).encode()
        r = put_manifest(c, "ref/img", sha(ab), ab)
        assert r.status_code == 201 and r.headers["OCI-Subject"] == subject
        made[art] = (sha(ab), len(ab))
    r = c.get(f"/v2/ref/img/referrers/{subject}")
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
    idx = r.json()
    assert idx["schemaVersion"] == 2 and idx["mediaType"] == OCI_INDEX
    got = {m["artifactType"]: m for m in idx["manifests"]}
    assert set(got) == set(made)
    for art, (dg, size) in made.items():
        assert got[art]["digest"] == dg and got[art]["size"] == size
        assert got[art]["mediaType"] == OCI_MANIFEST
        assert got[art]["annotations"] == {"org.example.kind": art}
    r = c.get(f"/v2/ref/img/referrers/{subject}",
              params={"artifactType": "application/vnd.example.sig"})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["artifactType"] for m in r.json()["manifests"]] == ["application/vnd.example.sig"]
    none = c.get(f"/v2/ref/img/referrers/{sha(b'no referrers')}")
    assert none.status_code == 200 and none.json()["manifests"] == []
    assert c.get(f"/v2/ref/unknown/referrers/{subject}").status_code == 200
    # deleting a referrer removes it from the list
    sig = made["application/vnd.example.sig"][0]
    assert c.delete(f"/v2/ref/img/manifests/{sig}").status_code == 202
    left = c.get(f"/v2/ref/img/referrers/{subject}").json()["manifests"]
    assert [m["digest"] for m in left] == [made["application/vnd.example.sbom"][0]]


def test_referrer_artifact_type_from_config_and_subject_first(c: httpx.Client) -> None:
    cfg = push_blob(c, "ref/order", b'{"x":1}')
    missing_subject = sha(b"pushed later")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.example.config", "size": 7, "digest": cfg},
           "layers": [], "subject": {"mediaType": OCI_MANIFEST, "size": 1,
                                     "digest": missing_subject}}
    ab = json.dumps(doc).encode()
    r = put_manifest(c, "ref/order", "art", ab)
    assert r.status_code == 201  # subject need not exist yet
    m = c.get(f"/v2/ref/order/referrers/{missing_subject}").json()["manifests"]
    assert m[0]["artifactType"] == "application/vnd.example.config"


# -- server modes: auth, TLS, read-only, restart ------------------------------------------

@pytest.fixture
def tmp_server(tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    started: list[Server] = []

    def start(*extra: str, storage: Path | None = None) -> Server:
        s = Server(storage or tmp_path / "storage", *extra, log=tmp_path / f"log{len(started)}")
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _htpasswd(path: Path, user: str, password: str) -> Path:
    import bcrypt

    path.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}\n")
    return path


def test_basic_auth(tmp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = tmp_server("--htpasswd", str(_htpasswd(tmp_path / "htpasswd", "alice", "s3cret")))
    r = httpx.get(s.url + "/v2/")
    assert r.status_code == 401 and code_of(r) == "UNAUTHORIZED"
    assert r.headers["WWW-Authenticate"] == 'Basic realm="berth-registry"'
    assert httpx.get(s.url + "/v2/", auth=("alice", "wrong")).status_code == 401
    assert httpx.get(s.url + "/v2/", auth=("bob", "s3cret")).status_code == 401
    assert httpx.get(s.url + "/v2/x/tags/list").status_code == 401
    with httpx.Client(base_url=s.url, auth=("alice", "s3cret")) as cl:
        assert cl.get("/v2/").status_code == 200
        d = push_blob(cl, "private", b"secret bytes")
        assert cl.get(f"/v2/private/blobs/{d}").content == b"secret bytes"


def test_htpasswd_must_be_bcrypt(tmp_path: Path) -> None:
    f = tmp_path / "htpasswd"
    f.write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    r = subprocess.run(berth_cmd("registry", "serve", "--addr", "127.0.0.1:0", "--storage",
                                 str(tmp_path / "s"), "--htpasswd", str(f)),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("Error: ") and "bcrypt" in r.stderr


def test_tls(tmp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca = CA(tmp_path / "ca")
    issued = ca.issue(tmp_path / "server", "127.0.0.1")
    cert, key = issued.cert, issued.key
    s = tmp_server("--tls-cert", str(cert), "--tls-key", str(key))
    assert s.url.startswith("https://")
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca.files.cert))
    with httpx.Client(base_url=s.url, verify=ctx) as cl:
        assert cl.get("/v2/").status_code == 200
        d = push_blob(cl, "tls", b"over tls" * 1000)
        assert cl.get(f"/v2/tls/blobs/{d}").content == b"over tls" * 1000
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/v2/")  # not trusted without the CA
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(s.url.replace("https", "http") + "/v2/")


def test_read_only(tmp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = tmp_server()
    d = push_blob(httpx.Client(base_url=s.url), "ro", b"before")
    s.stop()
    s = tmp_server("--read-only")
    with httpx.Client(base_url=s.url) as cl:
        assert cl.get(f"/v2/ro/blobs/{d}").content == b"before"
        for r in (cl.post("/v2/ro/blobs/uploads/"), cl.delete(f"/v2/ro/blobs/{d}"),
                  cl.put("/v2/ro/manifests/t", content=b"{}")):
            assert r.status_code == 405 and code_of(r) == "UNSUPPORTED"


def test_upload_survives_restart(tmp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(50_000)
    s = tmp_server()
    with httpx.Client(base_url=s.url) as cl:
        loc = cl.post("/v2/resume/blobs/uploads/").headers["Location"]
        assert cl.patch(loc, content=data[:20_000], headers={"Content-Range": "0-19999"}
                        ).status_code == 202
    s.stop()
    s = tmp_server()
    with httpx.Client(base_url=s.url) as cl:
        st = cl.get(loc)
        assert st.status_code == 204 and st.headers["Range"] == "0-19999"
        r = cl.put(loc, params={"digest": sha(data)}, content=data[20_000:],
                   headers={"Content-Range": "20000-49999"})
        assert r.status_code == 201
        assert cl.get(f"/v2/resume/blobs/{sha(data)}").content == data


# -- CLI: flags, curl, signals, gc -------------------------------------------------------

@pytest.mark.parametrize("args,needle,code", [
    (["serve", "--addr", "nonsense"], "invalid --addr", 1),
    (["serve", "--bogus"], "unknown flag: --bogus", 125),
    (["serve", "--tls-cert", "/nonexistent"], "--tls-cert and --tls-key", 125),
    (["serve", "--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"], "TLS", 1),
    (["frobnicate"], "unknown command", 125),
])
def test_cli_bad_flags(args: list[str], needle: str, code: int) -> None:
    r = subprocess.run(berth_cmd("registry", *args), capture_output=True, text=True, timeout=30)
    assert r.returncode == code and r.stderr.startswith("Error: ") and needle in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stdout == ""


def test_cli_serves_default_storage_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, BERTH_ROOT=str(tmp_path / "root"))
    log = tmp_path / "log"
    proc = subprocess.Popen(berth_cmd("registry", "serve", "--addr", "127.0.0.1:0"),
                            stdout=subprocess.PIPE, stderr=open(log, "wb"), env=env)
    try:
        for _ in range(200):
            if "listening on" in log.read_text():
                break
            time.sleep(0.05)
        url = log.read_text().split()[2]
        push_blob(httpx.Client(base_url=url), "default", b"x")
        assert (tmp_path / "root" / "registry" / "blobs" / "sha256").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert proc.stdout is not None and proc.stdout.read() == b""
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("listening on http://127.0.0.1:")


@pytest.mark.skipif(not shutil.which("curl"), reason="curl missing")
def test_curl_error_cases(server: Server) -> None:
    def curl(*args: str) -> tuple[int, dict]:
        out = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *args],
                             capture_output=True, text=True, timeout=30).stdout
        body, _, status = out.rpartition("\n")
        return int(status), (json.loads(body) if body.strip() else {})

    u = server.url
    st, body = curl("--path-as-is", f"{u}/v2/../../etc/blobs/sha256:{'0' * 64}")
    assert st in (400, 404)
    st, body = curl("--path-as-is", f"{u}/v2/a/../../etc/passwd/manifests/latest")
    assert st in (400, 404)
    st, body = curl(f"{u}/v2/foo/blobs/sha256:nothex")
    assert st == 400 and body["errors"][0]["code"] == "DIGEST_INVALID"
    st, body = curl(f"{u}/v2/foo/blobs/sha256:{'0' * 64}")
    assert st == 404 and body["errors"][0]["code"] == "BLOB_UNKNOWN"
    st, body = curl("-X", "POST", "--data-binary", "abc",
                    f"{u}/v2/foo/blobs/uploads/?digest=sha256:{'1' * 64}")
    assert st == 400 and body["errors"][0]["code"] == "DIGEST_INVALID"
    st, body = curl("-X", "DELETE", f"{u}/v2/")
    assert st == 405


def test_gc(tmp_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    storage = tmp_path / "storage"
    s = tmp_server(storage=storage)
    with httpx.Client(base_url=s.url) as cl:
        body, d = image_manifest(cl, "gc/keep", layer=b"kept layer")
        put_manifest(cl, "gc/keep", "v1", body)
        child_index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "size": len(body), "digest": d}]}).encode()
        put_manifest(cl, "gc/keep", "idx", child_index, OCI_INDEX)
        put_manifest(cl, "gc/keep", "v1", body)
        orphan = push_blob(cl, "gc/drop", b"orphan blob!")
        shared = push_blob(cl, "gc/drop", b"kept layer")  # also referenced by gc/keep
    s.stop()
    run = lambda *a: subprocess.run(  # noqa: E731
        berth_cmd("registry", "gc", "--storage", str(storage), *a),
        capture_output=True, text=True, timeout=60)
    r = run("--dry-run")
    assert r.returncode == 0, r.stderr
    assert f"would remove blob {orphan} (12 bytes)" in r.stdout
    assert "would reclaim 12 bytes" in r.stdout
    assert (storage / "blobs" / "sha256" / orphan.split(":")[1]).exists()
    r = run()
    assert r.returncode == 0 and f"removed blob {orphan}" in r.stdout
    assert f"removed link gc/drop@{orphan}" in r.stdout and "reclaimed 12 bytes" in r.stdout
    assert not (storage / "blobs" / "sha256" / orphan.split(":")[1]).exists()
    assert "reclaimed 0 bytes" in run().stdout  # idempotent
    s = tmp_server(storage=storage)
    with httpx.Client(base_url=s.url) as cl:
        assert cl.get("/v2/gc/keep/manifests/idx").status_code == 200
        assert cl.get(f"/v2/gc/keep/manifests/{d}").content == body
        assert cl.get(f"/v2/gc/drop/blobs/{shared}").content == b"kept layer"
        assert cl.get(f"/v2/gc/drop/blobs/{orphan}").status_code == 404
    r = subprocess.run(berth_cmd("registry", "gc", "--storage", str(tmp_path / "none")),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stderr.startswith("Error: ")


def test_referrers_include_tag_schema_index(c: httpx.Client, server: Server) -> None:
    """Manifests listed under a pre-API ``<alg>-<hex>`` tag index count as referrers."""
    body, subject = image_manifest(c, "ref/legacy")
    put_manifest(c, "ref/legacy", "v1", body)
    sig, _ = image_manifest(c, "ref/legacy", layer=b"signature", config=b'{"sig":1}')
    doc = json.loads(sig)
    doc["subject"] = {"mediaType": OCI_MANIFEST, "size": len(body), "digest": subject}
    sig = json.dumps(doc).encode()
    # as if pushed before the referrers API existed: manifest, then the referrers tag index
    assert put_manifest(c, "ref/legacy", sha(sig), sig).status_code == 201
    shutil.rmtree(server.storage / "repositories" / "ref" / "legacy" / "_referrers")
    assert c.get(f"/v2/ref/legacy/referrers/{subject}").json()["manifests"] == []
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "size": len(sig), "digest": sha(sig),
         "artifactType": CONFIG_TYPE}]}).encode()
    tag = "sha256-" + subject.split(":")[1]
    assert put_manifest(c, "ref/legacy", tag, idx, OCI_INDEX).status_code == 201
    got = c.get(f"/v2/ref/legacy/referrers/{subject}").json()["manifests"]
    assert [m["digest"] for m in got] == [sha(sig)]
    assert got[0]["artifactType"] == CONFIG_TYPE and got[0]["size"] == len(sig)
    # pushed again now, it is indexed as well, yet listed once
    assert put_manifest(c, "ref/legacy", sha(sig), sig).status_code == 201
    got = c.get(f"/v2/ref/legacy/referrers/{subject}").json()["manifests"]
    assert [m["digest"] for m in got] == [sha(sig)]


def test_client_disconnect_mid_chunk_rolls_back(server: Server, c: httpx.Client) -> None:
    import socket

    loc = c.post("/v2/drop/blobs/uploads/").headers["Location"]
    c.patch(loc, content=b"a" * 100, headers={"Content-Range": "0-99"})
    host, port = server.url.split("://")[1].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
                  f"Content-Range: 100-1000099\r\n\r\n".encode() + b"b" * 5000)
        time.sleep(0.3)
    time.sleep(0.3)
    st = c.get(loc)
    assert st.status_code == 204 and st.headers["Range"] == "0-99"
    r = c.put(loc, params={"digest": sha(b"a" * 150)}, content=b"a" * 50,
              headers={"Content-Range": "100-149"})
    assert r.status_code == 201
    assert "Traceback" not in server.log.read_text()


def test_large_blob_streams_without_buffering(server: Server) -> None:
    """A 256 MiB push and pull must not grow the server's memory by anything like 256 MiB."""
    piece = os.urandom(1 << 20)
    h = hashlib.sha256()
    for _ in range(256):
        h.update(piece)
    digest = "sha256:" + h.hexdigest()
    with httpx.Client(base_url=server.url, timeout=120) as cl:
        loc = cl.post("/v2/big/blobs/uploads/").headers["Location"]
        r = cl.put(loc, params={"digest": digest}, content=(piece for _ in range(256)))
        assert r.status_code == 201
        got = hashlib.sha256()
        with cl.stream("GET", f"/v2/big/blobs/{digest}") as resp:
            assert resp.headers["Content-Length"] == str(256 << 20)
            for chunk in resp.iter_bytes():
                got.update(chunk)
        assert "sha256:" + got.hexdigest() == digest
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    peak_kib = int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1])
    assert peak_kib < 160 * 1024, f"server peak RSS {peak_kib} KiB"


def test_malformed_requests_are_one_log_line_each(tmp_path: Path) -> None:
    """Garbage on the wire gets a 400 and one log line (who, status, why), no traceback."""
    import socket

    s = Server(tmp_path / "storage", log=tmp_path / "log")
    try:
        host, port = s.url.split("://")[1].rsplit(":", 1)
        bad = [b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
               b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
               b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"]
        for payload in bad:
            with socket.create_connection((host, int(port)), timeout=10) as conn:
                conn.sendall(payload)
                assert conn.recv(64).startswith(b"HTTP/1.0 400 ")
        with httpx.Client(base_url=s.url, timeout=10) as cl:  # and the server still serves
            assert cl.get("/v2/").status_code == 200
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [ln for ln in s.log.read_text().splitlines()
                     if not ln.startswith("listening on ")]
            if len(lines) >= len(bad):
                break
            time.sleep(0.05)
    finally:
        s.stop()
    assert len(lines) == len(bad), lines
    assert all(ln.startswith("bad HTTP request from 127.0.0.1: 400 ") for ln in lines), lines
