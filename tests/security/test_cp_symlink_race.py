"""``cp`` must never read or write host files through symlinks the container controls.

CVE-2018-15664: a container swaps a directory for a symlink to ``/`` while ``docker cp``
resolves a path through it with the host's view. Here the links are static (to ``/``,
``/etc``, a climbing relative link) and then swapped in a tight loop by a host thread
writing in the container's merged dir while cp runs 200 times in each direction. The
secret lives at a host path the container does not have, so any escape shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import uuid

import pytest

from berth.container import rootpath
from berth.container.create_options import CreateOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
                                reason="needs root and busybox-static")

ROUNDS = 200


@pytest.fixture
def box(engine, busybox_image):  # type: ignore[no-untyped-def]
    rec, _ = engine.container_run(CreateOptions(network="none",
        image="busybox", name="box", detach=True, command=["sleep", "300"]))
    return engine.container("box")


@pytest.fixture
def secret():  # type: ignore[no-untyped-def]
    """A host directory the container has no such path for, with a secret in it."""
    d = f"/tmp/berth-secret-{uuid.uuid4().hex[:12]}"
    os.makedirs(d)
    with open(os.path.join(d, "f"), "w") as f:
        f.write("HOST-SECRET\n")
    yield d
    shutil.rmtree(d)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "berth", *args], capture_output=True,
                          timeout=60)


def test_static_links_stay_inside(box, engine, tmp_path, secret):  # type: ignore[no-untyped-def]
    m = box.merged
    os.symlink("/", f"{m}/rootlink")
    os.symlink("/etc", f"{m}/etclink")
    os.symlink("../../../../../../..", f"{m}/tmp/up")
    os.symlink(secret, f"{m}/secretlink")
    want = open(f"{m}/etc/passwd").read()
    assert want != open("/etc/passwd").read()
    for src in ("/rootlink/etc/passwd", "/etclink/passwd", "/tmp/up/etc/passwd"):
        out = tmp_path / src.replace("/", "_")
        r = cli("cp", f"box:{src}", str(out))
        assert r.returncode == 0, r.stderr
        assert out.read_text() == want
    r = cli("cp", "box:/secretlink/f", str(tmp_path / "leak"))
    assert r.returncode == 1 and not (tmp_path / "leak").exists()
    r = cli("cp", "-L", "box:/secretlink", str(tmp_path / "leak2"))
    assert r.returncode == 1 and not (tmp_path / "leak2").exists()
    # writes through the same links land in the container
    (tmp_path / "payload").write_text("payload")
    # (the host's /tmp is shared with tests running in parallel: check the one name a
    # breakout would write, not the whole listing)
    assert not os.path.exists("/tmp/payload")
    for dest in ("/rootlink/tmp/", "/tmp/up/tmp/", "/etclink/"):
        assert cli("cp", str(tmp_path / "payload"), f"box:{dest}").returncode == 0
    assert not os.path.exists("/tmp/payload")
    assert not os.path.exists("/etc/payload")
    assert open(f"{m}/tmp/payload").read() == "payload"
    assert open(f"{m}/etc/payload").read() == "payload"
    r = cli("cp", str(tmp_path / "payload"), "box:/secretlink/")
    assert r.returncode == 1 and os.listdir(secret) == ["f"]
    # the openat2-less fallback walk clamps the same way
    with rootpath.RootFS(m) as fs:
        for path in ("/rootlink/etc/passwd", "/tmp/up/etc/passwd", "/etclink/passwd"):
            fd = rootpath._walk(fs.fd, path, os.O_RDONLY)
            with os.fdopen(fd) as f:
                assert f.read() == want
        with pytest.raises(FileNotFoundError):
            rootpath._walk(fs.fd, "/secretlink/f", os.O_RDONLY)


def _swapper(base: str, target: str, stop: threading.Event) -> threading.Thread:
    """Flip ``base/dir`` between a real directory and a symlink to ``target``."""
    real, parked = f"{base}/dir", f"{base}/dir.parked"

    def loop() -> None:
        while not stop.is_set():
            try:
                os.rename(real, parked)
                os.symlink(target, real)
                os.unlink(real)
                os.rename(parked, real)
            except OSError:
                pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def test_race_swapping_dir_for_symlink(box, engine, tmp_path, secret):  # type: ignore[no-untyped-def]
    m = box.merged
    inside = f"{m}/data/dir{secret}"  # same relative path as the host secret
    os.makedirs(inside)
    with open(f"{inside}/f", "w") as f:
        f.write("CONTAINER\n")
    payload = tmp_path / "payload"
    payload.write_text("payload")
    stop = threading.Event()
    threads = [_swapper(f"{m}/data", "/", stop)]
    got: set[str] = set()
    failures = 0
    try:
        for i in range(ROUNDS):
            out = tmp_path / f"out{i}"
            try:
                engine.container_cp("box", f"/data/dir{secret}/f", str(out), to_container=False)
                got.add(out.read_text())
            except Exception:  # noqa: BLE001 - losing the race is fine, escaping is not
                failures += 1
            try:
                engine.container_cp("box", f"/data/dir{secret}/", str(payload),
                                    to_container=True)
            except Exception:  # noqa: BLE001
                failures += 1
            assert os.listdir(secret) == ["f"], "cp wrote into the host"
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert got <= {"CONTAINER\n"}, "cp read a host file"
    assert "CONTAINER\n" in got  # the race was real: some copies went through
    assert open(os.path.join(secret, "f")).read() == "HOST-SECRET\n"
    # and through the CLI a few times, with the swapper running
    stop.clear()
    threads = [_swapper(f"{m}/data", "/", stop)]
    try:
        for _ in range(10):
            r = cli("cp", f"box:/data/dir{secret}/f", "-")
            assert b"HOST-SECRET" not in r.stdout
    finally:
        stop.set()
        for t in threads:
            t.join()
