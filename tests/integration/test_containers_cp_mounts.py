"""``cp`` sees the container's mounts: volumes, binds and tmpfs, running or stopped."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _untar_one(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}


@pytest.fixture
def hidden_image(berth, busybox_image):
    """An image with files at /data, which a bind mount at /data must hide."""
    r = berth("run", "--name", "mk", "busybox", "sh", "-c",
              "mkdir /data && echo image > /data/hidden.txt")
    assert r.returncode == 0, r.stderr
    assert berth("commit", "mk", "hidden:1").returncode == 0
    berth("rm", "mk")
    return "hidden:1"


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_cp_resolves_paths_through_mounts(berth, hidden_image, tmp_path, berth_env, running):
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "b.txt").write_text("from-bind\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    r = berth("run", "-d", "--name", "cpm", "-v", "vol:/vol", "-v", f"{bind}:/data",
              "-v", f"{ro}:/ro:ro", "--tmpfs", "/scratch", "hidden:1", "sh", "-c",
              "echo in-volume > /vol/v.txt; echo in-tmpfs > /scratch/t.txt;"
              " ln -s /etc/hostname /vol/hn; touch /vol/ready; sleep 300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    for _ in range(100):
        if berth("exec", "cpm", "test", "-e", "/vol/ready").returncode == 0:
            break
    if not running:
        berth("stop", "-t", "0", "cpm")
    out = tmp_path / "out"
    out.mkdir()
    # out of a volume; a mount-point directory gives the mount's content, not the image's
    assert berth("cp", "cpm:/vol/v.txt", str(out)).returncode == 0
    assert (out / "v.txt").read_text() == "in-volume\n"
    r = berth("cp", "cpm:/data", str(out / "data"))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out / "data")) == ["b.txt"]
    # a symlink inside a volume resolves in the container's root (its own /etc/hostname)
    r = berth("cp", "-L", "cpm:/vol/hn", "-", input=b"")
    assert list(_untar_one(r.stdout).values()) == [(cid[:12] + "\n").encode()]
    if running:  # tmpfs content exists only while the container's namespace does
        assert berth("cp", "cpm:/scratch/t.txt", str(out)).returncode == 0
        assert (out / "t.txt").read_text() == "in-tmpfs\n"
    # into a volume: the volume gets it, the container sees it, commit/diff do not
    src = tmp_path / "new.txt"
    src.write_text("copied-in\n")
    r = berth("cp", str(src), "cpm:/vol/")
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(berth_env["root"], "volumes", "vol", "_data",
                                       "new.txt"))
    r = berth("cp", str(src), "cpm:/data/")
    assert (bind / "new.txt").read_text() == "copied-in\n"
    diff = berth("diff", "cpm").stdout
    assert "new.txt" not in diff
    r = berth("cp", str(src), "cpm:/ro/")
    assert r.returncode == 1 and "read-only" in r.stderr.lower()
    assert not (ro / "new.txt").exists()
    if not running:
        berth("start", "cpm")
    r = berth("exec", "cpm", "cat", "/vol/new.txt", "/data/new.txt")
    assert r.stdout == "copied-in\ncopied-in\n"
    berth("rm", "-f", "cpm")
    berth("volume", "rm", "vol")
