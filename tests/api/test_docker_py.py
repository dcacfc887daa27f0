"""docker-py (PyPI ``docker``) for the rest of the surface: exec inspect, archives, commit,
save/load, stats, pause, rename, prune, wait conditions."""

from __future__ import annotations

import io
import tarfile
import time

import pytest


@pytest.fixture
def client(service):  # type: ignore[no-untyped-def]
    import docker

    c = docker.DockerClient(base_url=service["host"], version="1.41", timeout=60)
    yield c
    c.close()


def test_containers_exec_archive_commit(client):
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="py1",
                              labels={"who": "py"})
    assert client.containers.get("py1").labels["who"] == "py"
    res = c.exec_run(["sh", "-c", "echo out; echo err >&2; exit 5"], demux=True)
    assert res.exit_code == 5 and res.output == (b"out\n", b"err\n")
    api = client.api
    eid = api.exec_create(c.id, ["true"])["Id"]
    api.exec_start(eid)
    got = api.exec_inspect(eid)
    assert got["ExitCode"] == 0 and got["Running"] is False
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = b"hello archive\n"
        info = tarfile.TarInfo("in.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue())
    stream, stat = c.get_archive("/tmp/in.txt")
    assert stat["name"] == "in.txt" and stat["size"] == len(data)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as t:
        assert t.extractfile("in.txt").read() == data  # type: ignore[union-attr]
    # attach with logs=1: what it printed so far, then (stream=0) done
    c3 = client.containers.run("busybox", ["sh", "-c", "echo early; sleep 30"], detach=True)
    for _ in range(100):
        if c3.logs():
            break
        time.sleep(0.05)
    assert c3.attach(stdout=True, stderr=True, stream=False, logs=True) == b"early\n"
    c3.remove(force=True)
    c.pause()
    assert client.containers.get("py1").status == "paused"
    c.unpause()
    c.rename("py2")
    assert client.containers.get("py2").id == c.id
    s = c.stats(stream=False)
    assert s["id"] == c.id and "memory_stats" in s
    stream = c.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    assert second["precpu_stats"] == first["cpu_stats"]
    stream.close()
    with tarfile.open(fileobj=io.BytesIO(b"".join(c.export()))) as t:
        assert "tmp/in.txt" in t.getnames()
    assert {"Path": "/tmp/in.txt", "Kind": 1} in c.diff()
    img = c.commit("committed", "v1")
    assert "committed:v1" in img.tags
    c.remove(force=True)
    # (run(remove=True) reads logs only from json-file/journald drivers; berth's is k8s-file)
    c2 = client.containers.run("committed:v1", ["cat", "/tmp/in.txt"], detach=True)
    assert c2.wait()["StatusCode"] == 0
    assert c2.logs() == data
    c2.remove()


def test_images_save_load_tag_prune(client):
    img = client.images.get("busybox")
    img.tag("again", "x")
    blob = b"".join(client.images.get("again:x").save(named=True))
    client.images.remove("again:x")
    loaded = client.images.load(blob)
    assert any("again:x" in i.tags for i in loaded)
    assert client.images.get("again:x").id == img.id
    client.containers.run("busybox", ["true"], name="done1")
    pruned = client.containers.prune()
    assert len(pruned["ContainersDeleted"]) == 1
    client.api.prune_builds()
    with pytest.raises(Exception) as e:
        client.images.get("nope:nope")
    assert "No such image" in str(e.value) or "404" in str(e.value)
