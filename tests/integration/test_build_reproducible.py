"""SOURCE_DATE_EPOCH: the same Dockerfile and context give the same image ID anywhere."""

from __future__ import annotations

import io
import os
from pathlib import Path

from berth.engine import Engine

DOCKERFILE = """\
FROM busybox
COPY app /app
RUN mkdir -p /out && echo built > /out/file && cp /app/src.txt /out/copy.txt
WORKDIR /srv
ENV MODE=prod
CMD ["cat", "/out/file"]
"""


def _context(d: Path, mtime: int) -> Path:
    (d / "app").mkdir(parents=True)
    (d / "Dockerfile").write_text(DOCKERFILE)
    (d / "app" / "src.txt").write_text("source\n")
    for p in (d / "app" / "src.txt", d / "app"):
        os.utime(p, (mtime, mtime))
    return d


def test_two_fresh_roots_same_image_id(engine, busybox_image, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    # the same base image in both roots: saved from the first, loaded into the second
    archive = io.BytesIO()
    engine.save(["busybox:latest"], archive)
    other = Engine(root=str(tmp_path / "root2"), runroot=str(tmp_path / "run2"))
    try:
        archive.seek(0)
        other.load(archive)
        epoch = 1_700_000_000
        # two checkouts of the "same" sources, made at different times
        ctx1 = _context(tmp_path / "c1", epoch + 10)
        ctx2 = _context(tmp_path / "c2", epoch + 99999)
        first = engine.build(str(ctx1), tags=["repro"], source_date_epoch=epoch)
        second = other.build(str(ctx2), tags=["repro"], source_date_epoch=epoch)
        assert first.image_id == second.image_id
        doc = engine.image_service.config(first.image_id)
        assert doc["created"] == "2023-11-14T22:13:20Z"
        assert {h["created"] for h in doc["history"][1:]} == {doc["created"]}
        # without the epoch the IDs differ (created times), with it a rebuild is cached
        again = engine.build(str(ctx1), tags=["repro"], source_date_epoch=epoch)
        assert again.image_id == first.image_id and again.cached_steps == 5
        plain = other.build(str(ctx2), no_cache=True)
        assert plain.image_id != first.image_id
    finally:
        other.remove_all_containers()
        other.remove_all_networks()  # RUN steps put the bridge up: host state to take down
        other.close()
