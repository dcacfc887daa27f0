"""Plain data the image service hands upward (to Engine, CLI and API)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class ImageRecord:
    """One stored image with its names; cheap to build for 1,000 images from one query."""

    id: str
    manifest_digest: str
    manifest_media_type: str
    created: float
    added: float
    size: int
    labels: dict[str, str]
    parent: str | None
    tags: list[str] = field(default_factory=list)          # full names, e.g. docker.io/library/busybox:latest
    repo_digests: list[str] = field(default_factory=list)  # repository@digest
    containers: int = 0

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def dangling(self) -> bool:
        return not self.tags

    @classmethod
    def from_row(cls, row) -> ImageRecord:  # type: ignore[no-untyped-def]
        return cls(id=row["id"], manifest_digest=row["manifest_digest"],
                   manifest_media_type=row["manifest_media_type"], created=row["created"],
                   added=row["added"], size=row["size"], labels=json.loads(row["labels"]),
                   parent=row["parent"])


@dataclass
class RemoveResult:
    """What ``rmi``/``prune`` did, in Docker's words: lines of Untagged:/Deleted:."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reclaimed: int = 0

    def lines(self) -> list[str]:
        return [f"Untagged: {t}" for t in self.untagged] + [f"Deleted: {d}" for d in self.deleted]
