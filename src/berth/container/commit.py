"""``commit``: a container's writable layer becomes the top layer of a new image.

:func:`write_layer` turns the upper dir into a deterministic tar (overlay whiteouts become
OCI ``.wh.`` entries), and :func:`ingest_layer` reads it once, storing the blob and
unpacking the layer for future containers at the same time — the same code path a pulled
layer takes, so the unpacked layer is exactly what the blob says. The same upper contents
always give the same diff_id, and an already stored layer is not unpacked again.

The new config is the container's config (its Cmd, Env, ... as Docker's commit keeps
them) on top of the image's, then ``--change`` lines, plus one history entry. A running
container is paused while its upper dir is read, so the layer is a consistent snapshot.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import Any

from berth.container.records import ContainerRecord
from berth.images.ingest import CommitResult, IngestedLayer, commit_image, ingest_layer
from berth.oci.layer_write import write_layer
from berth.store.store import Store

# Keys of a container's config that describe the image, not the one container.
IMAGE_KEYS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
              "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "StopTimeout",
              "Shell")
_BUFFER = 1 << 20


def image_config_from(image_inner: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The image's inner config updated with what the container was created with."""
    out = copy.deepcopy(image_inner or {})
    for key in IMAGE_KEYS:
        if key not in container:
            continue
        value = container[key]
        if value is None or value == "":
            out.pop(key, None)  # the container runs without it, so the image has none
        else:
            out[key] = copy.deepcopy(value)
    return {k: v for k, v in out.items() if v is not None}


@contextmanager
def paused(rec: ContainerRecord, pause: bool,
           runtime_for: Callable[[ContainerRecord], Any]) -> Iterator[None]:
    """Freeze a running container for the duration (no-op when stopped or already paused).

    A marker with our pid says who froze it: if this process is killed meanwhile, the
    next command that looks the container up thaws it (:func:`~.orphans.thaw_if_orphaned`).
    """
    from ..procs import in_userns

    # rootless without a delegated cgroup has no freezer: commit unpaused, as Podman does
    if not pause or rec.status != "running" or in_userns():
        yield
        return
    from berth.container.orphans import freeze_marker, thaw_if_orphaned

    rt = runtime_for(rec)
    thaw_if_orphaned(rec, lambda: rt)
    marker = freeze_marker(rec)
    os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
    with open(marker, "w", encoding="ascii") as f:
        f.write(str(os.getpid()))
    rt.pause(rec.id)
    try:
        from berth.testpoints import pause as test_point

        test_point("commit-frozen")
        yield
    finally:
        rt.resume(rec.id)
        with suppress(FileNotFoundError):
            os.unlink(marker)


def layer_from_upper(store: Store, upper: str, parent: str | None,
                     exclude: Callable[[str], bool] | None = None,
                     hold: Callable[[], AbstractContextManager[None]] | None = None,
                     *, source_date_epoch: int | None = None) -> IngestedLayer:
    """Write ``upper`` as a layer tar and ingest it as a verified, packed layer.

    ``hold`` (the pause) covers only the read of the upper dir. The layer's files are not
    written here: like a pulled layer it is unpacked when a container first uses the new
    image (:mod:`berth.images.unpack`), so a commit costs about what a ``tar`` of the
    changes costs. The tar goes to a temp file in the store's tmp dir (removed at the next
    start if we die).
    The caller holds ``store.ingesting()`` and commits or discards the result.
    ``build`` shares this path; its ``source_date_epoch`` clamps mtimes (reproducible).
    """
    tmp = os.path.join(store.tmp, f"commit-{os.getpid()}-{os.urandom(6).hex()}")
    try:
        with open(tmp, "xb+", buffering=_BUFFER) as f:
            with hold() if hold is not None else nullcontext():
                written = write_layer(upper, f, overlay_upper=True, exclude=exclude,
                                      source_date_epoch=source_date_epoch)
            f.seek(0)
            return ingest_layer(store, f, parent=parent,  # type: ignore[arg-type]
                                expected_digest=written.digest,
                                expected_size=written.compressed_size,
                                expected_diff_id=written.diff_id, unpack=False)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def commit(store: Store, rec: ContainerRecord, *, base_config: bytes,
           base_layers: list[Any], tags: list[Any] = (),  # type: ignore[assignment]
           author: str = "", message: str = "", changes: list[str] = (),  # type: ignore[assignment]
           pause: bool = True, runtime_for: Callable[[ContainerRecord], Any] | None = None,
           exclude: Callable[[str], bool] | None = None) -> CommitResult:
    """Commit ``rec`` on top of its image (``base_config`` raw, ``base_layers`` rows)."""
    from berth.container.create_options import argv_of
    from berth.oci.image_config import apply_changes, finish_config
    from berth.units import rfc3339_nano

    doc = json.loads(base_config)
    inner = image_config_from(doc.get("config") or {}, rec.config)
    if changes:
        inner = apply_changes(inner, list(changes))
    layers = [IngestedLayer(row["chain_id"], row["diff_id"], row["blob_digest"],
                            row["blob_size"], row["media_type"], row["size"])
              for row in base_layers]
    parent_chain = layers[-1].chain_id if layers else None
    with store.ingesting():
        layer = layer_from_upper(
            store, rec.upper, parent_chain, exclude,
            hold=lambda: paused(rec, pause, runtime_for or _default_runtime))
        now = rfc3339_nano(time.time())
        doc["created"] = now
        doc["author"] = author or None
        doc["config"] = inner
        rootfs = doc.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), layer.diff_id]
        if doc.get("history") is not None:
            entry = {"created": now, "created_by": " ".join(argv_of(rec.config)),
                     "author": author, "comment": message}
            doc["history"] = [*doc["history"], entry]
        try:
            raw = finish_config(doc)
        except BaseException:
            if layer.pending is not None:
                layer.pending.discard()
            raise
        return commit_image(store, [*layers, layer], raw, tags=list(tags), parent=rec.image_id)


def _default_runtime(rec: ContainerRecord) -> Any:
    from berth.container.runtime import select_runtime

    return select_runtime(rec.runtime, rec.runroot)
