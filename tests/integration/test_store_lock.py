"""The store lock: garbage collection never deletes what a concurrent ingest writes.

An ingest (import, load, pull) writes layer dirs and blobs *before* an image row references
them; ``rmi``/``prune`` delete whatever no row references. ``store.lock`` (shared for
ingests, exclusive for collection) is what keeps the second from eating the first's bytes.

Here a separate process runs garbage collection in a tight loop while this one ingests, for
many rounds, each with new content (so nothing is shared with an earlier, referenced
image); every image must come out whole, and ``system check`` must find no damage.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tarfactory import file, make_tar

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

ROUNDS = 25
COLLECTOR = """
import os, sys
from berth.engine import Engine
stop, kind = sys.argv[1], sys.argv[2]
with Engine() as eng:
    n = 0
    while not os.path.exists(stop):
        if kind == "rmi":
            eng.rmi(["victim:1"])  # absent: only its garbage collection runs
        else:
            eng.image_prune()
        n += 1
print(n)
"""


def _rootfs(i: int) -> bytes:
    """A small rootfs with content of its own (a new layer, a new blob, every round)."""
    return make_tar([file(f"data/f{j}", f"round {i} file {j}\n".encode() * 200)
                     for j in range(40)])


class Collector:
    """A process collecting garbage in a loop until stopped."""

    def __init__(self, tmp: Path, kind: str) -> None:
        self.stop_file = tmp / "stop-collector"
        self.proc = subprocess.Popen([sys.executable, "-c", COLLECTOR, str(self.stop_file),
                                      kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def finish(self) -> int:
        self.stop_file.touch()
        out, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return int(out)


def _assert_whole(engine, ref: str) -> None:  # type: ignore[no-untyped-def]
    """The image's config, manifest and layer blobs and its layer dirs all exist."""
    from berth.images.onecopy import has_layer_blob

    info = engine.image_inspect(ref)
    store = engine.store
    assert store.content.exists(info["Id"])
    for il in store.db.query("SELECT l.chain_id, il.blob_digest FROM image_layers il "
                             "JOIN layers l USING (chain_id) WHERE il.image_id=?",
                             (info["Id"],)):
        # a layer blob is a stored file, or a tree plus its tar-split record (one copy)
        assert has_layer_blob(store, il["blob_digest"], il["chain_id"]), \
            (ref, il["blob_digest"])
        assert os.path.isdir(store.layers.diff_dir(il["chain_id"])) or store.db.one(
            "SELECT 1 FROM layers WHERE chain_id=? AND unpacked=0", (il["chain_id"],))


def _ingest_rounds(engine, tmp: Path, kind: str, ingest) -> None:  # type: ignore[no-untyped-def]
    collector = Collector(tmp, kind)
    try:
        time.sleep(0.3)  # the collector is looping before the first ingest
        for i in range(ROUNDS):
            ingest(i)
            _assert_whole(engine, f"img{i}:1")
    finally:
        loops = collector.finish()
    assert loops >= ROUNDS  # it really ran alongside
    report = engine.system_check()
    assert report.damage == [], report.damage
    assert report.images_checked >= ROUNDS


@pytest.mark.parametrize("kind", ["prune", "rmi"])
def test_gc_during_import(engine, tmp_path, kind):
    def ingest(i: int) -> None:
        engine.import_image(io.BytesIO(_rootfs(i)), f"img{i}:1")

    _ingest_rounds(engine, tmp_path, kind, ingest)


def test_gc_during_load(engine, tmp_path):
    archives = []
    for i in range(ROUNDS):  # archives first, then nothing of them left in the store
        engine.import_image(io.BytesIO(_rootfs(i)), f"img{i}:1")
        path = tmp_path / f"img{i}.tar"
        with open(path, "wb") as f:
            engine.save([f"img{i}:1"], f)
        archives.append(str(path))
        engine.rmi([f"img{i}:1"])
    assert engine.images() == []

    _ingest_rounds(engine, tmp_path, "prune", lambda i: engine.load(archives[i]))


@pytest.mark.slow
def test_gc_during_pull(engine, tmp_path):
    from test_registry_server import Server

    reg = Server(tmp_path / "storage", log=tmp_path / "registry.log")
    try:
        host = reg.url.split("://", 1)[1]
        for i in range(ROUNDS):  # the registry has them all, the store none
            engine.import_image(io.BytesIO(_rootfs(i)), f"{host}/img{i}:1")
            engine.push(f"{host}/img{i}:1")
            engine.rmi([f"{host}/img{i}:1"])
        assert engine.images() == []

        _ingest_rounds(engine, tmp_path, "prune", lambda i: _pull_tagged(engine, host, i))
    finally:
        reg.stop()


def _pull_tagged(engine, host: str, i: int) -> None:  # type: ignore[no-untyped-def]
    """Pull, then give the image the name the round check looks for."""
    engine.pull(f"{host}/img{i}:1")
    engine.tag(f"{host}/img{i}:1", f"img{i}:1")
