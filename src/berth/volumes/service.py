"""VolumeService: volume rows in ``berth.db`` and their directories on disk.

Lifecycle of a volume, and why each step is ordered as it is:

* **create** builds ``<root>/volumes/.tmp-<pid>-<rand>/_data`` first, then inserts the row
  and renames the directory to ``<root>/volumes/<name>`` *inside* the transaction, so a
  committed row always points at an existing directory; a crash leaves only a temp dir
  (or an orphan dir without a row), which the next create of that name or
  :meth:`VolumeService.collect` removes.
* **use** is a ``container_volumes`` row per (container, destination), written when the
  container is prepared. The table's foreign key to ``volumes`` makes the database itself
  refuse to drop a volume that a container still references, whatever races above it.
* **rm/prune** delete the row first (refused while any container references it), then
  move the directory aside and delete it: readers never see a row without its bytes.

The local driver's ``--opt type=tmpfs`` and ``type=none,o=bind,device=PATH`` volumes keep
no bytes of their own; the container hooks turn them into tmpfs or bind mounts.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..procs import owner_alive
from . import specs

if TYPE_CHECKING:  # pragma: no cover
    from ..store.store import Store

LOCAL_OPTS = {"type", "device", "o"}


@dataclass
class VolumeRecord:
    name: str
    driver: str
    mountpoint: str
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False

    def inspect(self) -> dict[str, Any]:
        """``docker volume inspect`` for this volume."""
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        return {"CreatedAt": created,
                "Driver": self.driver, "Labels": dict(self.labels),
                "Mountpoint": self.mountpoint, "Name": self.name,
                "Options": dict(self.options), "Scope": "local"}


class VolumeService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db
        self.dir = os.path.join(store.root, "volumes")

    # -- lookup -----------------------------------------------------------------------
    def _rec(self, row: Any) -> VolumeRecord:
        return VolumeRecord(name=row["name"], driver=row["driver"],
                            mountpoint=specs.data_dir(self.store.root, row["name"]),
                            created=row["created"], labels=json.loads(row["labels"]),
                            options=json.loads(row["options"]),
                            anonymous=bool(row["anonymous"]))

    def find(self, name: str) -> VolumeRecord | None:
        row = self.db.one("SELECT * FROM volumes WHERE name=?", (name,))
        return self._rec(row) if row is not None else None

    def get(self, name: str) -> VolumeRecord:
        rec = self.find(name)
        if rec is None:
            raise NotFound(f"get {name}: no such volume")
        return rec

    def list(self) -> builtins.list[VolumeRecord]:
        return [self._rec(r) for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def users(self, name: str) -> builtins.list[str]:
        """IDs of the containers (any state) that mount this volume."""
        return [r["container_id"] for r in self.db.query(
            "SELECT DISTINCT container_id FROM container_volumes WHERE volume_name=? "
            "ORDER BY container_id", (name,))]

    def in_use(self) -> set[str]:
        return {r["volume_name"] for r in self.db.query(
            "SELECT DISTINCT volume_name FROM container_volumes")}

    # -- create -----------------------------------------------------------------------
    def create(self, name: str | None = None, *, driver: str = "local",
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None,
               anonymous: bool = False) -> tuple[VolumeRecord, bool]:
        """The volume ``name`` (random when None): (record, whether it was made now).

        An existing volume of the same driver is returned as is, as Docker does.
        """
        if name is None:
            name, anonymous = specs.new_anonymous_name(), True
        if not specs.valid_name(name):
            raise InvalidArgument(specs.name_error(name))
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: plugin "
                           f"\"{driver}\" not found")
        options = dict(options or {})
        for k in options:
            if k not in LOCAL_OPTS:
                raise InvalidArgument(f"create {name}: invalid option key: \"{k}\"")
        _check_local_options(name, options)
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault(specs.ANONYMOUS_LABEL, "")
        existing = self.find(name)
        if existing is not None:
            return existing, False
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        tmp = os.path.join(self.dir, f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
        os.makedirs(os.path.join(tmp, "_data"), mode=0o755)
        final = os.path.join(self.dir, name)
        try:
            with self.db.tx() as tx:
                if tx.one("SELECT 1 FROM volumes WHERE name=?", (name,)) is not None:
                    raise _Exists()
                tx.execute("INSERT INTO volumes(name, driver, labels, options, created, "
                           "anonymous) VALUES (?,?,?,?,?,?)",
                           (name, driver, json.dumps(labels, sort_keys=True),
                            json.dumps(options, sort_keys=True), time.time(),
                            int(anonymous)))
                if os.path.lexists(final):
                    _remove_aside(final, self.dir)  # an orphan: no row ever pointed at it
                os.rename(tmp, final)
        except _Exists:
            _remove_aside(tmp, self.dir)
            return self.get(name), False
        except BaseException:
            _remove_aside(tmp, self.dir)
            raise
        return self.get(name), True

    # -- remove -------------------------------------------------------------------------
    def remove(self, name: str, *, force: bool = False) -> bool:
        """Remove an unused volume; ``force`` only forgives a missing one (as Docker)."""
        try:
            with self.db.tx() as tx:
                if tx.one("SELECT 1 FROM volumes WHERE name=?", (name,)) is None:
                    if force:
                        return False
                    raise NotFound(f"get {name}: no such volume")
                users = [r["container_id"] for r in tx.query(
                    "SELECT DISTINCT container_id FROM container_volumes WHERE "
                    "volume_name=? ORDER BY container_id", (name,))]
                if users:
                    raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
                tx.execute("DELETE FROM volumes WHERE name=?", (name,))
        except sqlite3.IntegrityError:
            raise Conflict(f"remove {name}: volume is in use - "
                           f"[{' '.join(self.users(name))}]") from None
        _remove_aside(os.path.join(self.dir, name), self.dir)
        return True

    def prune(self, *, all_unused: bool = False,
              labels: Sequence[str] = ()) -> tuple[builtins.list[str], int]:
        """Unused volumes (anonymous ones unless ``all_unused``): (names, bytes freed)."""
        used = self.in_use()
        removed, space = [], 0
        for rec in self.list():
            if rec.name in used or not (all_unused or rec.anonymous):
                continue
            if not label_filter(rec.labels, labels):
                continue
            size = self.size(rec)
            try:
                self.remove(rec.name)
            except (Conflict, NotFound):
                continue  # taken by a container meanwhile: not unused after all
            removed.append(rec.name)
            space += size
        return removed, space

    def size(self, rec: VolumeRecord) -> int:
        from ..store.fsutil import tree_size

        return tree_size(rec.mountpoint) if os.path.isdir(rec.mountpoint) else 0

    def collect(self) -> builtins.list[str]:
        """Remove directories under ``volumes/`` that no row owns (crash leftovers)."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        known = {r["name"] for r in self.db.query("SELECT name FROM volumes")}
        gone = []
        for n in names:
            if n in known or (n.startswith(".tmp-") and owner_alive(n)):
                continue
            _remove_aside(os.path.join(self.dir, n), self.dir)
            gone.append(n)
        return gone

    # -- container use --------------------------------------------------------------------
    def attach(self, container_id: str, entries: builtins.list[tuple[str, str, bool]]) -> None:
        """Record that a container mounts these (volume, destination, rw); one tx."""
        if not entries:
            return
        try:
            with self.db.tx() as tx:
                tx.executemany("INSERT OR REPLACE INTO container_volumes(container_id, "
                               "volume_name, destination, rw) VALUES (?,?,?,?)",
                               [(container_id, n, d, int(rw)) for n, d, rw in entries])
        except sqlite3.IntegrityError:
            missing = [n for n, _, _ in entries if self.find(n) is None]
            raise NotFound(f"get {missing[0] if missing else entries[0][0]}: no such volume"
                           ) from None


class _Exists(Exception):
    """Another process created the same name between our check and our insert."""


def _check_local_options(name: str, options: dict[str, str]) -> None:
    """What berth's local driver can mount: nothing, ``type=tmpfs``, or a bind of a path."""
    if not options:
        return
    kind = options.get("type", "")
    flags = [o for o in options.get("o", "").split(",") if o]
    if kind == "tmpfs":
        return
    if "bind" in flags or "rbind" in flags:
        dev = options.get("device", "")
        if not dev.startswith("/"):
            raise InvalidArgument(f"create {name}: a bind volume needs an absolute "
                                  "device=PATH")
        return
    raise InvalidArgument(f"create {name}: the local driver of berth mounts only "
                          "type=tmpfs or o=bind volumes (got type=" + (kind or '""') + ")")


def label_filter(labels: dict[str, str], wanted: Sequence[str]) -> bool:
    """``label=k``/``label=k=v`` must hold, ``!k``/``!k=v`` (from ``label!=``) must not."""
    for w in wanted:
        neg = w.startswith("!")
        k, eq, v = (w[1:] if neg else w).partition("=")
        hit = k in labels and (not eq or labels[k] == v)
        if hit == neg:
            return False
    return True


def _remove_aside(path: str, parent: str) -> None:
    """Rename out of sight first (so the name is free at once), then delete."""
    from ..store.fsutil import remove_tree

    if not os.path.lexists(path):
        return
    trash = os.path.join(parent, f".tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        os.rename(path, trash)
    except OSError:
        trash = path
    remove_tree(trash)


