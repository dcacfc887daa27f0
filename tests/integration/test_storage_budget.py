"""The storage budget (berth.toml): automatic LRU GC after commands that add data, never
touching what containers use or tagged images (by default), refusing to write when even
GC cannot make room; ``system gc``; ``info``; config errors."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

MB = 1 << 20


def _config(root: str, text: str) -> None:
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "berth.toml"), "w") as f:
        f.write(text)


def _rootfs(n: int, size: int) -> io.BytesIO:
    """A one-file rootfs of ``size`` random bytes (``n`` only names the file)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = os.urandom(size)
        ti = tarfile.TarInfo(f"blob{n}")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def _use(engine) -> int:  # type: ignore[no-untyped-def]
    from berth.images.gc import store_use

    return store_use(engine.store)


@pytest.fixture(autouse=True)
def _no_host_config(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("BERTH_CONFIG", "")  # only the root's berth.toml counts here


def test_bad_config_is_one_clear_error(berth, berth_env, busybox_tar):  # type: ignore[no-untyped-def]
    _config(berth_env["root"], '[storage]\nmax_size = "lots"\n')
    r = berth("import", str(busybox_tar), "bb:1")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: invalid ") and "[storage]" in r.stderr
    assert "Traceback" not in r.stderr
    assert berth("images", "-q").stdout == ""  # refused before writing
    _config(berth_env["root"], '[gc]\nimages = "everything"\n')
    r = berth("info")
    assert r.returncode == 1 and "images must be" in r.stderr


def test_dangling_images_go_least_recently_used_first(engine, berth_env):  # type: ignore[no-untyped-def]
    _config(berth_env["root"], '[storage]\nmax_size = "20MB"\n')
    ids = [engine.import_image(_rootfs(i, 3 * MB), "churn:latest") for i in range(12)]
    assert _use(engine) <= 20 * MB
    names = {t for r in engine.images() for t in r.tags}
    assert "docker.io/library/churn:latest" in names
    left = {r.id for r in engine.images(all=True)}
    assert ids[-1] in left and ids[0] not in left  # newest kept, oldest collected
    kept = [i for i in ids if i in left]
    assert kept == ids[-len(kept):]  # strictly least recently used first
    assert engine.system_check().ok


def test_gc_spares_tagged_images_and_images_of_containers(engine, berth, berth_env):  # type: ignore[no-untyped-def]
    _config(berth_env["root"], '[storage]\nmax_size = "12MB"\n')
    tagged = engine.import_image(_rootfs(0, 4 * MB), "keep:1")
    used = engine.import_image(_rootfs(1, 4 * MB), "used:1")
    assert berth("create", "--name", "holder", "used:1", "true").returncode == 0
    assert berth("rmi", "-f", "used:1").returncode == 0  # dangling, but a container has it
    with pytest.raises(Exception) as err:  # 4 + 4 + 4 > 12: nothing may go
        engine.import_image(_rootfs(2, 4 * MB), "more:1")
        engine.import_image(_rootfs(3, 4 * MB), "more:2")
    assert "storage budget of 12MB reached" in str(err.value)
    left = {r.id for r in engine.images(all=True)}
    assert tagged in left and used in left
    r = berth("create", "--name", "nope", "keep:1", "true")  # refused before writing anything
    assert r.returncode == 125 and "storage budget of 12MB reached" in r.stderr
    assert "nope" not in berth("ps", "-a", "--format", "{{.Names}}").stdout
    assert engine.system_check().ok


def test_unused_policy_and_system_gc_by_hand(engine, berth, berth_env):  # type: ignore[no-untyped-def]
    old = engine.import_image(_rootfs(0, 2 * MB), "old:1")
    new = engine.import_image(_rootfs(1, 2 * MB), "new:1")
    engine.tag("new:1", "new:2")  # a use: new is more recent than old
    _config(berth_env["root"], '[storage]\nmax_size = "4MB"\n[gc]\nimages = "unused"\n')
    r = berth("system", "gc", "--dry-run")
    assert r.returncode == 0 and "Would remove" in r.stdout
    assert {old, new} <= {i.id for i in engine.images(all=True)}  # dry run kept all
    r = berth("system", "gc")
    assert r.returncode == 0, r.stderr
    assert f"Removed tagged image {old.split(':')[1][:12]}" in r.stdout
    left = {i.id for i in engine.images(all=True)}
    assert old not in left and new in left
    info = berth("info").stdout
    assert "Storage Budget: 4MB" in info and "Last GC: " in info and "never" not in info


def test_keep_duration_protects_recent_use(engine, berth_env):  # type: ignore[no-untyped-def]
    _config(berth_env["root"], '[storage]\nmax_size = "7MB"\n[gc]\nkeep_duration = "1h"\n')
    engine.import_image(_rootfs(0, 3 * MB), "x:1")
    engine.import_image(_rootfs(1, 3 * MB), "x:1")  # first one dangles, but is fresh
    engine.import_image(_rootfs(2, 3 * MB), "x:1")  # over budget now: GC finds nothing
    assert len(engine.images(all=True)) == 3
    with pytest.raises(Exception, match="storage budget of 7MB reached"):
        engine.import_image(_rootfs(3, 3 * MB), "x:1")
    assert len(engine.images(all=True)) == 3


@pytest.mark.slow
def test_churn_stays_within_budget(engine, berth, berth_env, busybox_image):  # type: ignore[no-untyped-def]
    """200 imports and runs adding ~5 MB each under a 300 MB budget: the store never
    exceeds the budget plus the largest item, a running container keeps working, the
    newest images survive."""
    _config(berth_env["root"], '[storage]\nmax_size = "300MB"\n')
    r = berth("run", "-d", "--name", "steady", "busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    limit, item = 300 * MB, 5 * MB + MB // 4
    peak = 0
    for i in range(200):
        if i % 10 == 9:  # a run that adds 5 MB, committed as the newest churn-run image
            name = f"churner{i}"
            r = berth("run", "--name", name, "busybox", "sh", "-c",
                      "head -c 5000000 /dev/urandom > /f")
            assert r.returncode == 0, r.stderr
            assert berth("commit", name, "churn-run:latest").returncode == 0
            assert berth("rm", name).returncode == 0
        else:
            engine.import_image(_rootfs(i, 5 * MB), "churn:latest")
        peak = max(peak, _use(engine))
        assert _use(engine) <= limit + item, f"step {i}: {_use(engine)} bytes"
    assert peak > limit * 0.8  # the budget was actually reached, GC actually ran
    tags = {t for r in engine.images() for t in r.tags}
    assert {"docker.io/library/churn:latest", "docker.io/library/churn-run:latest",
            "docker.io/library/busybox:latest"} <= tags
    r = berth("exec", "steady", "echo", "alive")
    assert r.returncode == 0 and r.stdout == "alive\n"
    assert engine.system_check().ok


def test_gc_killed_anywhere_leaves_a_clean_store(engine, berth_env):  # type: ignore[no-untyped-def]
    import signal
    import subprocess
    import sys
    import time

    for delay in (0.05, 0.15, 0.3, 0.45, 0.6):
        for i in range(8):
            engine.import_image(_rootfs(i, MB // 2), "gone:latest")
        p = subprocess.Popen([sys.executable, "-m", "berth", "system", "gc"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        rep = engine.system_check()
        assert rep.ok, rep.damage
    engine.system_gc()  # finishes what the killed passes left
    rep = engine.system_check(repair=True)
    assert rep.ok
    assert len(engine.images(all=True)) == 1  # only the tagged one survives


def test_containers_after_removes_only_old_stopped_containers(engine, berth, berth_env,  # type: ignore[no-untyped-def]
                                                              busybox_image):
    import time

    r = berth("run", "--name", "oldone", "busybox", "sh", "-c", "head -c 300000 /dev/urandom > /f")
    assert r.returncode == 0, r.stderr
    assert berth("run", "-d", "--name", "live", "busybox", "sleep", "60").returncode == 0
    _config(berth_env["root"], '[gc]\ncontainers_after = "1s"\n')
    time.sleep(1.2)
    assert berth("run", "--name", "young", "busybox", "true").returncode == 0
    r = berth("system", "gc")
    assert r.returncode == 0, r.stderr
    assert "Removed container" in r.stdout
    names = set(berth("ps", "-a", "--format", "{{.Names}}").stdout.split())
    assert names == {"live", "young"}
    assert busybox_image in {i.id for i in engine.images()}  # tagged: kept


@pytest.mark.slow
def test_builds_and_runs_beside_gc_never_fail(engine, berth, berth_env, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    """A GC pass that would take every dangling image runs in a loop while a multi-step
    build (whose finished steps are dangling until it ends) and runs go on."""
    import subprocess
    import sys
    import threading

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n" + "".join(f"RUN echo step{i} > /s{i} && sleep 0.3\n"
                                   for i in range(6)) + "CMD cat /s5\n")
    stop = threading.Event()
    failures: list[str] = []

    def collect() -> None:
        while not stop.is_set():
            r = subprocess.run([sys.executable, "-m", "berth", "system", "gc"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                failures.append(r.stderr)

    t = threading.Thread(target=collect)
    t.start()
    try:
        for i in range(2):
            r = berth("build", "--no-cache", "-t", f"built:{i}", str(ctx))
            assert r.returncode == 0, r.stderr
            r = berth("run", "--rm", f"built:{i}")
            assert r.returncode == 0 and r.stdout == "step5\n", r.stderr
    finally:
        stop.set()
        t.join()
    assert failures == []
    assert engine.system_check().ok
