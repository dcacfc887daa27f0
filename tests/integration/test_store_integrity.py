"""Crash safety and consistency of the store: SIGKILL during load, system check/repair."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _big_archive(engine, busybox_tar, tmp):  # type: ignore[no-untyped-def]
    """A multi-MB archive so that a kill lands at many different points of a load."""
    import io
    import tarfile


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


# Points inside a load of two images (each: layer blob, config, manifest; then a commit):
# the N-th blob stored, and the first and second image commits. Every kill lands mid-way.
LOAD_POINTS = ["after-blob#1", "after-blob#2", "after-blob#4", "after-blob#6",
               "before-commit#1", "before-commit#2"]


def test_sigkill_during_load_leaves_store_consistent(engine, busybox_tar, berth_env):  # type: ignore[no-untyped-def]
    """SIGKILL at named points of ``load`` (a test hook pauses it there), each round on a
    fresh store: nothing visible is half-done, and the next command cleans up."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "faults"))
    from killing import kill_at

    from berth.engine import Engine

    archive = _big_archive(engine, busybox_tar, berth_env["tmp"])
    tmp = berth_env["tmp"]
    for n, point in enumerate(LOAD_POINTS):
        env = {"BERTH_ROOT": str(tmp / f"r{n}"), "BERTH_RUNROOT": str(tmp / f"rr{n}")}
        kill_at(["load", "-i", str(archive)], point, tmp, env=env)
        with Engine(root=env["BERTH_ROOT"], runroot=env["BERTH_RUNROOT"]) as eng:
            rep = eng.system_check()
            assert rep.ok, rep.damage
            # what the kill left was cleaned when this engine opened the store
            assert not rep.garbage, (point, rep.garbage)
            # any image that is visible is complete and usable
            for rec in eng.images(all=True):
                assert eng.image_inspect(rec.id)["Id"] == rec.id
                assert eng.history(rec.id)
            res = eng.load(str(archive))  # a later, uninterrupted load completes
            assert len(res.images) == 2
            rep = eng.system_check()
            assert rep.ok and not rep.garbage, rep.garbage


def test_packed_layers_are_not_garbage_and_repair_keeps_images_usable(berth, busybox_image,  # type: ignore[no-untyped-def]
                                                                      tmp_path):
    """Layers made by commit or a build's last step are packed (unpacked on first use):
    their short links point where their files will go. ``system check`` must not call them
    garbage, and ``--repair`` must not delete them: an image of more than 20 layers mounts
    through those links."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n" + "".join(
        f"RUN echo {i} > /f{i}\n" for i in range(21)))
    r = berth("build", "-q", "-t", "deep", str(ctx))
    assert r.returncode == 0, r.stderr
    r = berth("run", "-d", "--name", "cm", "--network", "none", "busybox", "sleep", "100")
    assert r.returncode == 0, r.stderr
    assert berth("exec", "cm", "sh", "-c", "echo x > /x").returncode == 0
    assert berth("commit", "cm", "committed").returncode == 0
    assert berth("rm", "-f", "cm").returncode == 0
    r = berth("system", "check")
    assert r.returncode == 0 and "(0 damaged, 0 garbage)" in r.stdout, r.stdout
    r = berth("system", "check", "--repair")
    assert r.returncode == 0 and "(0 damaged, 0 garbage)" in r.stdout, r.stdout
    r = berth("run", "--rm", "--network", "none", "deep", "cat", "/f0", "/f20")
    assert (r.returncode, r.stdout) == (0, "0\n20\n"), r.stderr
    r = berth("run", "--rm", "--network", "none", "committed", "cat", "/x")
    assert (r.returncode, r.stdout) == (0, "x\n"), r.stderr


def test_repair_removes_stray_links_and_layer_dirs(engine, busybox_image):  # type: ignore[no-untyped-def]
    """What is garbage really is: a link no row names, a layer dir without a row."""
    links = engine.store.layers.links
    os.symlink("../nowhere/diff", os.path.join(links, "0123456789abcdef"))
    os.makedirs(os.path.join(engine.store.layers.dir, "f" * 64, "diff"))
    rep = engine.system_check()
    assert rep.ok and len(rep.garbage) == 2, rep.garbage
    engine.system_check(repair=True)
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
