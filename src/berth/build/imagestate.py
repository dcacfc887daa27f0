"""The image a build stage is growing, and how one step turns it into the next image.

Every step that changes the image commits a real (untagged, intermediate) image whose
``parent`` is the image before the step, as Docker's classic builder does. That one choice
gives the build cache its GC story for free: a cache entry names an image, images are GC
roots, and an entry disappears with its image (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - imported where a step really commits
    from berth.images.ingest import IngestedLayer
    from berth.store.store import Store


@dataclass
class ImageState:
    """An image as the build sees it: ID (None for scratch), config document, layers."""

    image_id: str | None
    doc: dict[str, Any]
    layers: list[Any] = field(default_factory=list)  # IngestedLayer or image_layers rows

    @classmethod
    def scratch(cls, arch: str, os_name: str = "linux") -> ImageState:
        return cls(None, {"architecture": arch, "os": os_name, "config": {},
                          "rootfs": {"type": "layers", "diff_ids": []}, "history": []})

    @classmethod
    def load(cls, store: Store, image_id: str, layer_rows: list[Any]) -> ImageState:
        doc = json.loads(store.content.read(image_id))
        layers = list(layer_rows)  # made IngestedLayers only when a step commits on them
        if doc.get("history") is None:  # keep history and layers in step from here on
            doc["history"] = [{"created": doc.get("created")} for _ in layers]
        doc["config"] = doc.get("config") or {}
        return cls(image_id, doc, layers)

    @property
    def config(self) -> dict[str, Any]:
        """The container config (Env, Cmd, ...) — mutable only through :meth:`derive`."""
        return self.doc["config"]

    @property
    def top_chain(self) -> str | None:
        if not self.layers:
            return None
        top = self.layers[-1]
        return top["chain_id"] if not hasattr(top, "chain_id") else top.chain_id

    def env(self) -> dict[str, str]:
        return dict(e.partition("=")[::2] for e in self.config.get("Env") or [])

    def derive(self) -> ImageState:
        """A private copy to edit for the next step (this state stays as it was)."""
        return ImageState(self.image_id, copy.deepcopy(self.doc), list(self.layers))


def created_at(epoch: int | None) -> str:
    """The ``created`` time for configs and history: SOURCE_DATE_EPOCH when set."""
    from berth.units import rfc3339_nano

    return rfc3339_nano(float(epoch) if epoch is not None else time.time())


def commit_step(store: Store, before: ImageState, after: ImageState, *, created_by: str,
                layer: IngestedLayer | None, created: str,
                history: bool = True) -> ImageState:
    """Publish ``after`` (``before`` edited, plus ``layer``) as an image whose parent is
    ``before``; returns it with its new ID. The layer's pending dir is published or
    discarded here, whatever happens."""
    from berth.images.ingest import IngestedLayer, commit_image
    from berth.oci.image_config import finish_config

    doc = after.doc
    layers = [x if isinstance(x, IngestedLayer) else IngestedLayer(
        x["chain_id"], x["diff_id"], x["blob_digest"], x["blob_size"], x["media_type"],
        x["size"]) for x in after.layers]
    if layer is not None:
        layers.append(layer)
        doc["rootfs"] = {"type": "layers", "diff_ids": [*doc["rootfs"]["diff_ids"],
                                                       layer.diff_id]}
    doc["created"] = created
    if history:
        entry: dict[str, Any] = {"created": created, "created_by": created_by,
                                 "comment": "buildkit.dockerfile.v0"}
        if layer is None:
            entry["empty_layer"] = True
        doc["history"] = [*(doc.get("history") or []), entry]
    try:
        raw = finish_config(doc)
    except BaseException:
        if layer is not None and layer.pending is not None:
            layer.pending.discard()
        raise
    result = commit_image(store, layers, raw, parent=before.image_id)
    return ImageState(result.image_id, json.loads(raw), layers)
