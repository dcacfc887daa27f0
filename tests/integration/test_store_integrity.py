"""Crash safety and consistency of the store: SIGKILL during load, system check/repair."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


def _big_archive(engine, busybox_tar, tmp):  # type: ignore[no-untyped-def]
    """A multi-MB archive so that a kill lands at many different points of a load."""
    import io
    import tarfile

    from conftest import busybox_rootfs_tar  # noqa: F401

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        for i in range(40):
            data = os.urandom(256 * 1024)
            ti = tarfile.TarInfo(f"data/f{i}")
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    with open(busybox_tar, "rb") as f:
        engine.import_image(f, "base:1")
    payload.seek(0)
    engine.import_image(payload, "big:1")
    out = tmp / "big.tar"
    with open(out, "wb") as f:
        engine.save(["base:1", "big:1"], f)
    engine.rmi(["base:1", "big:1"])
    return out


def test_sigkill_during_load_leaves_store_consistent(engine, busybox_tar, berth_env):  # type: ignore[no-untyped-def]
    archive = _big_archive(engine, busybox_tar, berth_env["tmp"])
    env = dict(os.environ)
    delays = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8]
    for delay in delays:
        p = subprocess.Popen([sys.executable, "-m", "berth", "load", "-i", str(archive)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        rep = engine.system_check()
        assert rep.ok, rep.damage
        # any image that is visible is complete and usable
        for rec in engine.images(all=True):
            assert engine.image_inspect(rec.id)["Id"] == rec.id
    # a later, uninterrupted load completes and cleans the leftovers
    res = engine.load(str(archive))
    assert len(res.images) == 2
    rep = engine.system_check(repair=True)
    assert rep.ok
    rep = engine.system_check()
    assert rep.ok and not rep.garbage, rep.garbage


def test_check_finds_and_repairs_damage(engine, busybox_image):  # type: ignore[no-untyped-def]
    blob = engine.store.content.path(busybox_image)  # the config blob
    with open(blob, "r+b") as f:
        f.seek(10)
        f.write(b"CORRUPT")
    rep = engine.system_check()
    assert not rep.ok
    assert any("does not match" in d for d in rep.damage)
    rep = engine.system_check(repair=True)
    assert any("removed damaged image" in r for r in rep.repaired)
    assert engine.system_check().ok
    assert engine.images() == []


def test_check_verifies_layers_rebuilt_from_their_files(engine, busybox_image):  # type: ignore[no-untyped-def]
    """A layer kept as tree + tar-split record: a changed file is damage (the rebuilt tar
    no longer has the layer's digest), found by ``system check``."""
    layer = engine.image_service.layers(busybox_image)[0]
    assert not engine.store.content.exists(layer["blob_digest"])  # one copy: no tar blob
    passwd = os.path.join(engine.store.layers.diff_dir(layer["chain_id"]), "etc", "passwd")
    with open(passwd, "r+b") as f:
        f.write(b"X")
    rep = engine.system_check()
    assert not rep.ok
    assert any("no longer rebuild" in d for d in rep.damage), rep.damage
    rep = engine.system_check(repair=True)
    assert any("removed damaged image" in r for r in rep.repaired)
    assert engine.system_check().ok
    assert engine.images() == []


def test_concurrent_imports_share_store(berth_env, busybox_tar):  # type: ignore[no-untyped-def]
    procs = [subprocess.Popen([sys.executable, "-m", "berth", "import", str(busybox_tar),
                               f"bb:{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(8)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    from berth.engine import Engine

    with Engine() as eng:
        assert eng.system_check().ok
        assert len(eng.store.db.query("SELECT * FROM layers")) == 1


@pytest.mark.parametrize("bad", ["sha256:xyz", "../../etc/passwd", "sha256:" + "A" * 64])
def test_digests_validated_before_paths(engine, bad):  # type: ignore[no-untyped-def]
    from berth.errors import InvalidDigest

    with pytest.raises(InvalidDigest):
        engine.store.content.path(bad)


def test_an_old_store_is_converted_to_one_copy_on_first_use(berth_env, busybox_tar):  # type: ignore[no-untyped-def]
    """A store from before one-copy layers (tar blob + tree, no record) is converted when a
    new berth first opens it: the blob goes, save still gives the same bytes."""
    import io

    from berth.engine import Engine
    from berth.images.onecopy import open_layer_blob

    with Engine() as eng:
        with open(busybox_tar, "rb") as f:
            image_id = eng.import_image(f, "old:1")
        layer = eng.image_service.layers(image_id)[0]
        with open_layer_blob(eng.store, layer["blob_digest"]) as src:
            tar = src.read()
        before = io.BytesIO()
        eng.save(["old:1"], before)
        # make it look like an old store: the blob stored, no record, not marked
        eng.store.content.put(tar, layer["blob_digest"])
        os.unlink(eng.store.layers.split_path(layer["chain_id"]))
        with eng.store.db.tx() as tx:
            tx.execute("UPDATE layers SET split_size=NULL")
            tx.execute("DELETE FROM store_meta")
    with Engine() as eng:
        assert not eng.store.content.exists(layer["blob_digest"])
        assert os.path.exists(eng.store.layers.split_path(layer["chain_id"]))
        after = io.BytesIO()
        eng.save(["old:1"], after)
        assert after.getvalue() == before.getvalue()
        assert eng.system_check().ok
