"""The event log: what happened to containers, images, volumes and networks, in order.

Lifecycle: every berth process that changes something (the CLI, the API service, a
container's exit command) *appends* one JSON line per event to ``<root>/events.log`` with a
single ``O_APPEND`` write, so concurrent writers never interleave inside a line and no lock
is taken on the hot path. Readers (``berth events``, ``GET /events``) scan the file and,
when following, keep reading from where they stopped. When the file grows past
:data:`MAX_BYTES` the writer that notices renames it to ``events.log.1`` (one generation
is kept, as Docker keeps a bounded ring of recent events); a follower holding the old file
open finishes it and moves on to the new one.

Events are news, not truth: a crash may lose the last line (a torn line is skipped by
readers) and nothing else depends on them. The truth stays in ``berth.db``.

Each line is already in Docker's shape (``Type``, ``Action``, ``Actor.ID``,
``Actor.Attributes``, ``scope``, ``time``, ``timeNano`` and, for containers and images,
the legacy ``status``/``id``/``from``), so the API streams lines as they are.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

MAX_BYTES = 4 << 20
_NAME = "events.log"


class EventLog:
    """Append and read ``<root>/events.log`` (and its one rotated generation)."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, _NAME)
        self.old_path = self.path + ".1"

    # -- writing --------------------------------------------------------------------------
    def emit(self, type_: str, action: str, actor_id: str,
             attributes: dict[str, str] | None = None) -> dict[str, Any]:
        """Append one event; never raises (an event that cannot be written is dropped)."""
        now = time.time_ns()
        ev: dict[str, Any] = {}
        attrs = {k: str(v) for k, v in (attributes or {}).items()}
        if type_ in ("container", "image"):
            # the pre-1.22 fields docker's own CLI still formats with
            ev = {"status": action, "id": actor_id}
            if type_ == "container" and "image" in attrs:
                ev["from"] = attrs["image"]
        ev.update({"Type": type_, "Action": action,
                   "Actor": {"ID": actor_id, "Attributes": attrs},
                   "scope": "local", "time": now // 1_000_000_000, "timeNano": now})
        line = (json.dumps(ev, separators=(",", ":")) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except OSError:
            return ev
        try:
            os.write(fd, line)
            if os.fstat(fd).st_size > MAX_BYTES:
                self._rotate(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
        return ev

    def _rotate(self, fd: int) -> None:
        """Rename the full log aside, unless another writer already did."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        if st.st_ino == os.fstat(fd).st_ino:
            os.replace(self.path, self.old_path)

    # -- reading --------------------------------------------------------------------------
    def read(self, *, since: float | None = None, until: float | None = None,
             match: Callable[[dict[str, Any]], bool] | None = None
             ) -> Iterator[dict[str, Any]]:
        """Stored events in order, within ``[since, until]`` (epoch seconds)."""
        for path in (self.old_path, self.path):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            for ev in _parse(data):
                if _in_window(ev, since, until) and (match is None or match(ev)):
                    yield ev

    def follower(self) -> Follower:
        """A reader positioned at the end of the log: it yields only events after now."""
        return Follower(self)


class Follower:
    """Yields events appended after it was made; call :meth:`poll` as often as you like."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._f = self._open()
        if self._f is not None:
            self._f.seek(0, os.SEEK_END)
        self._partial = b""

    def _open(self) -> Any:
        try:
            return open(self.log.path, "rb")
        except FileNotFoundError:
            return None

    def poll(self) -> list[dict[str, Any]]:
        """Events written since the last call (none: an empty list; never blocks)."""
        out: list[dict[str, Any]] = []
        if self._f is None:
            self._f = self._open()
            if self._f is None:
                return out
        out += self._drain()
        try:
            rotated = os.stat(self.log.path).st_ino != os.fstat(self._f.fileno()).st_ino
        except FileNotFoundError:
            rotated = False
        if rotated:
            self._f.close()
            self._partial = b""
            self._f = self._open()
            if self._f is not None:
                out += self._drain()
        return out

    def _drain(self) -> list[dict[str, Any]]:
        data = self._partial + self._f.read()
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return list(_parse(data[:cut]))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line torn by a crash
        if isinstance(ev, dict):
            yield ev


def _in_window(ev: dict[str, Any], since: float | None, until: float | None) -> bool:
    t = ev.get("timeNano", 0) / 1e9
    return (since is None or t >= since) and (until is None or t <= until)


FILTER_KEYS = ("container", "event", "image", "label", "network", "type", "volume", "scope",
            "daemon", "node", "plugin", "service", "secret", "config")


def build_predicate(filters: dict[str, list[str]]) -> Callable[[dict[str, Any]], bool]:
    """``docker events --filter``: OR within a key, AND across keys (Docker's rule).

    ``container``/``image``/``volume``/``network`` match the actor's ID or ``name``
    attribute (and an ID prefix); ``label`` is ``key`` or ``key=value``.
    """
    from berth.errors import InvalidArgument

    for key in filters:
        if key not in FILTER_KEYS:
            raise InvalidArgument(f"Invalid filter '{key}'")

    def named(ev: dict[str, Any], values: list[str]) -> bool:
        actor = ev.get("Actor") or {}
        aid = str(actor.get("ID", ""))
        attrs = actor.get("Attributes") or {}
        for v in values:
            if v in (aid, attrs.get("name"), attrs.get("image")) or (
                    len(v) >= 3 and aid.startswith(v)):
                return True
            if ev.get("Type") == "network" and attrs.get("container") == v:
                return True
        return False

    def labels_ok(ev: dict[str, Any], values: list[str]) -> bool:
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        for v in values:
            k, eq, val = v.partition("=")
            if k in attrs and (not eq or attrs[k] == val):
                return True
        return False

    def pred(ev: dict[str, Any]) -> bool:
        typ = ev.get("Type")
        for key, values in filters.items():
            if not values:
                continue
            if key == "type" and typ not in values:
                return False
            if key == "event" and ev.get("Action", "").partition(":")[0] not in values \
                    and ev.get("Action") not in values:
                return False
            if key == "scope" and "local" not in values:
                return False
            if key in ("container", "image", "volume", "network"):
                if typ == key:
                    if not named(ev, values):
                        return False
                elif key == "image" and typ == "container":
                    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                    if attrs.get("image") not in values:
                        return False
                elif key == "container" and typ == "network":
                    attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                    if attrs.get("container") not in values:
                        return False
                else:
                    return False
            if key == "label" and not labels_ok(ev, values):
                return False
        return True

    return pred
