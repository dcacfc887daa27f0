"""Find a container by name, full ID or unique ID prefix, the way Docker resolves them.

Kept apart from the ContainerService so commands that only *read* a container (cp, diff,
export, stats, top, commit) need nothing but the store: the containers table is the one
source of truth, and this is the one place that turns what a user typed into a row.
"""

from __future__ import annotations

import re

from berth.container.records import ContainerRecord
from berth.errors import Conflict, NotFound
from berth.store.store import Store

_HEX = re.compile(r"^[0-9a-f]{1,64}$")


def find_container(store: Store, name_or_id: str) -> ContainerRecord:
    """The container named ``name_or_id`` (``/name`` too), or with that ID or ID prefix.

    Docker's order: an exact ID wins, then an exact name, then a unique ID prefix.
    """
    key = name_or_id.strip()
    if not key:
        raise NotFound("No such container: ")
    db = store.db
    row = db.one("SELECT * FROM containers WHERE id=?", (key,))
    if row is None:
        row = db.one("SELECT * FROM containers WHERE name=?", (key.removeprefix("/"),))
    if row is None and _HEX.match(key):
        rows = db.query("SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                        (key, key + "g"))
        if len(rows) > 1:
            raise Conflict(f"multiple IDs found with provided prefix: {key}")
        row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"No such container: {name_or_id}")
    return ContainerRecord.from_row(row, store.root, store.runroot)


def all_containers(store: Store, *, running_only: bool = False) -> list[ContainerRecord]:
    """Every container, newest first (``stats`` without names lists these)."""
    sql = "SELECT * FROM containers"
    if running_only:
        sql += " WHERE status IN ('running','paused','restarting')"
    rows = store.db.query(sql + " ORDER BY created DESC")
    return [ContainerRecord.from_row(r, store.root, store.runroot) for r in rows]
