"""One copy of each layer: a local layer is its tree plus a small record, not tree + tar.

The store holding an imported Debian rootfs stays within 1.15x the unpacked size; a
committed layer reports the same size before and after its first use, and loses its tar
blob once unpacked; save gives the same bytes before and after.
"""

from __future__ import annotations

import io
import os


def _disk(path: str) -> int:
    """Bytes allocated under ``path`` (hard links once), like ``du -s``."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def test_debian_store_is_one_copy(engine, debian_image):  # type: ignore[no-untyped-def]
    layer = engine.image_service.layers(debian_image)[0]
    tree = _disk(engine.store.layers.diff_dir(layer["chain_id"]))
    store = _disk(engine.root)
    assert tree > 100 << 20
    assert store <= 1.15 * tree  # guarantee, f"store {store} bytes for a {tree}-byte tree"
    assert not engine.store.content.exists(layer["blob_digest"])
    # the same layer sizes everywhere: content bytes, whether unpacked or not
    inodes = {}
    for r, _, fs in os.walk(engine.store.layers.diff_dir(layer["chain_id"])):
        for f in fs:
            st = os.lstat(os.path.join(r, f))
            if os.path.stat.S_ISREG(st.st_mode) and st.st_rdev == 0:
                inodes[st.st_ino] = st.st_size
    content = sum(inodes.values())  # a hard link is a tar member without data
    assert layer["size"] == content


def test_committed_layer_one_size_and_one_copy(engine, berth, busybox_image):  # type: ignore[no-untyped-def]
    r = berth("run", "--name", "cw1", "busybox", "sh", "-c",
              "head -c 300000 /dev/urandom > /big; echo hi > /small")
    assert r.returncode == 0, r.stderr
    assert berth("commit", "cw1", "committed:1").returncode == 0
    hist_before = berth("history", "--format", "{{.Size}}", "committed:1").stdout.split()
    image_id = engine.image_service.resolve("committed:1")
    top = engine.image_service.layers(image_id)[-1]
    assert engine.store.content.exists(top["blob_digest"])  # packed: the tar only
    saved_before = io.BytesIO()
    engine.save(["committed:1"], saved_before)

    r = berth("run", "--rm", "committed:1", "cat", "/small")  # first use unpacks it
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
    top = engine.image_service.layers(image_id)[-1]
    assert not engine.store.content.exists(top["blob_digest"])  # tree + record only
    assert os.path.exists(engine.store.layers.split_path(top["chain_id"]))
    hist_after = berth("history", "--format", "{{.Size}}", "committed:1").stdout.split()
    assert hist_before == hist_after and hist_after[0] == "300kB"
    saved_after = io.BytesIO()
    engine.save(["committed:1"], saved_after)
    assert saved_after.getvalue() == saved_before.getvalue()
    assert engine.system_check().ok
