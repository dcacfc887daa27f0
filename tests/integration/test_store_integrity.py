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
    layer = engine.image_service.layers(busybox_image)[0]
    blob = engine.store.content.path(layer["blob_digest"])
    with open(blob, "r+b") as f:
        f.seek(100)
        f.write(b"CORRUPT")
    rep = engine.system_check()
    assert not rep.ok
    assert any("does not match" in d for d in rep.damage)
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
