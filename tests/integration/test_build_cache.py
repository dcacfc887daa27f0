"""The build cache: what reuses a step, what must not, and how the cache is cleared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def write(d: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(body)
    return d


class Recorder:
    """Progress that remembers which steps came from the cache."""

    def __init__(self) -> None:
        self.hits: list[str] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return lambda *a, **k: None

    def cached(self, ref, image_id):  # type: ignore[no-untyped-def]
        self.hits.append(ref.text)


def build(engine, ctx: Path, **kw):  # type: ignore[no-untyped-def]
    rec = Recorder()
    return engine.build(str(ctx), progress=rec, **kw), rec


@pytest.fixture
def trust_now(monkeypatch):  # type: ignore[no-untyped-def]
    """Let the stat-keyed digest cache trust files written a moment ago (tests only)."""
    import berth.build.sourcehash as sh

    monkeypatch.setattr(sh, "RACY_NS", 0)


def test_content_not_mtime_decides(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY src /src\nRUN ls /src\n",
                                   "src/a": "aaaa", "src/b": "b"})
    first, rec = build(engine, ctx)
    assert rec.hits == []
    again, rec = build(engine, ctx)
    assert again.image_id == first.image_id and len(rec.hits) == 2
    os.utime(ctx / "src" / "a", (1, 1))           # touch: same bytes, new mtime
    again, rec = build(engine, ctx)
    assert again.image_id == first.image_id and len(rec.hits) == 2
    (ctx / "src" / "a").write_text("aaab")         # same size, one byte different
    changed, rec = build(engine, ctx)
    assert changed.image_id != first.image_id and rec.hits == []
    os.chmod(ctx / "src" / "b", 0o600)             # mode counts
    _, rec = build(engine, ctx)
    assert rec.hits == []
    (ctx / "src" / "c").write_text("")             # a new name counts
    _, rec = build(engine, ctx)
    assert rec.hits == []


def test_hard_link_write_breaks_cache(engine, busybox_image, tmp_path, trust_now):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY data /data\n",
                                   "data": "x" * 4096})
    outside = tmp_path / "outside-link"
    os.link(ctx / "data", outside)
    first, _ = build(engine, ctx)
    assert engine.store.db.one("SELECT COUNT(*) AS n FROM build_file_hashes")["n"] == 1
    st = os.stat(ctx / "data")
    with open(outside, "r+b") as f:                # write through the other name
        f.write(b"y")
    os.utime(outside, ns=(st.st_atime_ns, st.st_mtime_ns))  # and hide it from mtime
    assert os.stat(ctx / "data").st_size == st.st_size
    second, rec = build(engine, ctx)
    assert rec.hits == [] and second.image_id != first.image_id
    third, rec = build(engine, ctx)                # and the new digest is reused after
    assert third.image_id == second.image_id and len(rec.hits) == 1


def test_racy_files_are_rehashed(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    """A file changed within the racy window is never trusted from the stat cache."""
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "1"})
    build(engine, ctx)
    assert engine.store.db.one("SELECT COUNT(*) AS n FROM build_file_hashes")["n"] == 0


def test_args_no_cache_and_keys(engine, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG V=1\nRUN echo $V > /v\n"
                                                 "ARG UNUSED_BY_RUN\nLABEL x=y\n"})
    a, _ = build(engine, ctx)
    b, rec = build(engine, ctx, build_args={"V": "2"})
    assert b.image_id != a.image_id and not any("RUN" in t for t in rec.hits)
    c, rec = build(engine, ctx, build_args={"V": "1"})
    assert c.image_id == a.image_id
    d, rec = build(engine, ctx, no_cache=True)
    assert rec.hits == [] and d.image_id != a.image_id
    # proxies are not part of the key unless declared
    e, rec = build(engine, ctx, build_args={"HTTP_PROXY": "http://proxy:3128"})
    assert any("RUN" in t for t in rec.hits)


def test_cli_cached_output_and_builder_prune(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo 1 > /one\n"
                                                 "COPY f /f\n", "f": "data" * 1000})
    assert berth("build", "-t", "c", str(ctx)).returncode == 0
    (ctx / "f").write_text("other")
    assert berth("build", "-t", "c", str(ctx)).returncode == 0  # old image: dangling
    df = berth("system", "df").stdout
    row = [line for line in df.splitlines() if line.startswith("Build Cache")][0]
    assert row.split()[2] == "3"  # RUN, both COPYs
    r = berth("builder", "prune", "-f")
    assert r.returncode == 0 and "Deleted build cache objects:" in r.stdout
    assert "Total:" in r.stdout
    again = berth("build", "-t", "c", str(ctx)).stdout
    assert again.count("Using cache") == 2  # the live image's steps survived
    r = berth("builder", "prune", "-a", "-f")
    assert r.returncode == 0
    again = berth("build", "-t", "c", str(ctx)).stdout
    assert "Using cache" not in again
    r = berth("run", "--rm", "--network", "none", "c", "cat", "/one")
    assert r.stdout == "1\n", r.stderr


def test_system_prune_clears_build_cache(berth, busybox_image, tmp_path):  # type: ignore[no-untyped-def]
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo 1 > /one\n"})
    assert berth("build", str(ctx)).returncode == 0  # untagged: nothing keeps it
    r = berth("system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert "Using cache" not in berth("build", str(ctx)).stdout
