"""True accounting: ``system df`` counts stopped containers' writable layers and shared
layers once, and RECLAIMABLE / prune's figure are the bytes a prune really frees."""

from __future__ import annotations

import json
import os


def _bytes(root: str) -> int:
    """Apparent bytes of every regular file (each inode once) of the image store."""
    seen: set[int] = set()
    total = 0
    for sub in ("blobs", "layers"):
        for r, _, files in os.walk(os.path.join(root, sub)):
            for f in files:
                st = os.lstat(os.path.join(r, f))
                if os.path.stat.S_ISREG(st.st_mode) and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total


def _df(engine) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {r["Type"]: r for r in engine.df()}


def test_stopped_containers_count_and_prune_frees_that(engine, berth, busybox_image):  # type: ignore[no-untyped-def]
    r = berth("run", "--name", "filler", "busybox", "sh", "-c",
              "head -c 400000 /dev/urandom > /a; head -c 100000 /dev/urandom > /b")
    assert r.returncode == 0, r.stderr
    row = _df(engine)["Containers"]
    assert row["TotalCount"] == 1 and row["Active"] == 0
    assert 500_000 <= row["Size"] < 520_000
    assert row["Reclaimable"] == row["Size"]
    removed, space = engine.container_prune()
    assert len(removed) == 1 and space == row["Size"]
    assert _df(engine)["Containers"]["Size"] == 0


def test_shared_layers_once_and_reclaimable_is_what_prune_frees(engine, berth, busybox_image):  # type: ignore[no-untyped-def]
    for name, size in (("c1", 200_000), ("c2", 300_000)):
        r = berth("run", "--name", name, "busybox", "sh", "-c",
                  f"head -c {size} /dev/urandom > /f")
        assert r.returncode == 0, r.stderr
    assert berth("commit", "c1", "derived:1").returncode == 0
    assert berth("commit", "c2").returncode == 0  # dangling
    r = berth("run", "--rm", "derived:1", "true")  # unpacks derived's layer
    assert r.returncode == 0, r.stderr
    assert berth("rm", "c1", "c2").returncode == 0
    assert berth("create", "--name", "keeper", "busybox").returncode == 0

    images = _df(engine)["Images"]
    base = engine.image_service.layers(busybox_image)[0]["size"]
    # three images, the busybox layer is counted once, not three times
    assert images["TotalCount"] == 3 and images["Active"] == 1
    assert base + 500_000 <= images["Size"] < 1.1 * (base + 500_000)
    assert images["Size"] == _bytes(engine.root)

    v = berth("system", "df", "-v", "--format", "json")
    doc = json.loads(v.stdout)
    derived = next(i for i in doc["Images"] if i["Repository"] == "derived")
    assert derived["SharedSize"] != "0B" and derived["UniqueSize"] == "200kB"

    before = _bytes(engine.root)
    res = engine.image_prune(all=True)
    freed = before - _bytes(engine.root)
    assert res.reclaimed == freed == images["Reclaimable"]
    assert freed >= 500_000


def test_df_verbose_prints_the_four_tables(berth, busybox_image):  # type: ignore[no-untyped-def]
    assert berth("run", "--name", "v1c", "-v", "data1:/d", "busybox", "true").returncode == 0
    r = berth("system", "df", "-v")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for title in ("Images space usage:", "Containers space usage:",
                  "Local Volumes space usage:", "Build cache usage: 0B"):
        assert title in out
    for header in ("SHARED SIZE", "UNIQUE SIZE", "CONTAINERS", "LOCAL VOLUMES", "LINKS",
                   "CACHE ID"):
        assert header in out
    assert "busybox" in out and "v1c" in out and "data1" in out
    r = berth("system", "df", "-v", "--format", "{{range .Volumes}}{{.Name}} {{.Links}}{{end}}")
    assert r.stdout.strip() == "data1 1"
