"""Which repositories on which registry are known to hold a blob (the ``blob_sources`` table).

Pushing a layer that another repository of the same registry already has is a cheap
cross-repository *mount* (``POST …/blobs/uploads/?mount=DIGEST&from=REPO``) instead of an
upload. We learn where blobs live from our own pulls and pushes; the table is only a hint
— a registry may refuse the mount, and then we upload as usual.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from berth.store.store import Store


def record(store: Store, registry: str, repository: str, digests: Iterable[str]) -> None:
    """Remember that ``registry``/``repository`` holds each of ``digests``."""
    now = time.time()
    rows = [(registry, repository, d, now) for d in dict.fromkeys(digests)]
    if not rows:
        return
    with store.db.tx() as tx:
        tx.executemany("INSERT OR REPLACE INTO blob_sources(registry, repository, digest, seen)"
                       " VALUES (?,?,?,?)", rows)


def other_repository(store: Store, registry: str, digest: str, exclude: str) -> str | None:
    """A repository on ``registry`` other than ``exclude`` known to hold ``digest``."""
    row = store.db.one("SELECT repository FROM blob_sources WHERE registry=? AND digest=? "
                       "AND repository<>? ORDER BY seen DESC LIMIT 1",
                       (registry, digest, exclude))
    return row["repository"] if row else None
