"""The store's event log: appends from many writers, torn lines, rotation, followers."""

from __future__ import annotations

import os
import time

from berth.store import events
from berth.store.events import EventLog, build_predicate


def test_emit_read_in_docker_shape(tmp_path):
    log = EventLog(str(tmp_path))
    t0 = time.time()
    log.emit("container", "start", "c" * 64, {"name": "web", "image": "busybox"})
    log.emit("volume", "create", "data", {"driver": "local"})
    got = list(log.read(since=t0 - 1))
    assert [e["Action"] for e in got] == ["start", "create"]
    ev = got[0]
    assert ev["status"] == "start" and ev["id"] == "c" * 64 and ev["from"] == "busybox"
    assert ev["Actor"]["Attributes"]["name"] == "web" and ev["scope"] == "local"
    assert ev["time"] == ev["timeNano"] // 1_000_000_000
    assert "status" not in got[1]  # legacy fields only for containers and images
    assert list(log.read(since=time.time() + 10)) == []


def test_a_torn_line_is_skipped_not_fatal(tmp_path):
    log = EventLog(str(tmp_path))
    log.emit("image", "tag", "a:1")
    with open(log.path, "ab") as f:
        f.write(b'{"Type": "image", "Acti')  # a writer died mid-line
    log.emit("image", "tag", "b:1")
    # the event appended onto the torn line is lost with it; nothing else is
    assert [e["Actor"]["ID"] for e in log.read()] == ["a:1"]
    with open(log.path, "ab") as f:
        f.write(b"\n")
    log.emit("image", "tag", "c:1")
    assert [e["Actor"]["ID"] for e in log.read()][-1] == "c:1"


def test_rotation_keeps_one_generation_and_followers_cross_it(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 2000)
    log = EventLog(str(tmp_path))
    fol = log.follower()
    seen = []
    for i in range(100):
        log.emit("network", "create", f"n{i}", {"name": f"n{i}"})
        seen += [e["Actor"]["ID"] for e in fol.poll()]
    seen += [e["Actor"]["ID"] for e in fol.poll()]
    assert seen == [f"n{i}" for i in range(100)]
    assert os.path.exists(log.old_path)
    assert os.path.getsize(log.path) <= 2000 + 400
    stored = [e["Actor"]["ID"] for e in log.read()]
    assert stored == sorted(stored, key=lambda s: int(s[1:]))  # in order, oldest dropped
    assert stored[-1] == "n99" and len(stored) < 100
    fol.close()


def test_follower_sees_only_new_events(tmp_path):
    log = EventLog(str(tmp_path))
    log.emit("volume", "create", "old")
    fol = log.follower()
    assert fol.poll() == []
    log.emit("volume", "create", "new")
    assert [e["Actor"]["ID"] for e in fol.poll()] == ["new"]
    fol.close()


def test_filters_follow_docker_rules(tmp_path):
    log = EventLog(str(tmp_path))
    log.emit("container", "die", "c1", {"name": "web", "image": "busybox", "tier": "front"})
    log.emit("container", "start", "c2", {"name": "db", "image": "postgres"})
    log.emit("image", "pull", "busybox:latest", {"name": "busybox:latest"})
    log.emit("network", "connect", "n1", {"name": "net", "container": "c2"})

    def ids(f):  # type: ignore[no-untyped-def]
        return [e["Actor"]["ID"] for e in log.read(match=build_predicate(f))]

    assert ids({"type": ["container"]}) == ["c1", "c2"]
    assert ids({"container": ["web"]}) == ["c1"]
    assert ids({"container": ["c2"]}) == ["c2", "n1"]  # its network events too
    assert ids({"event": ["die", "pull"]}) == ["c1", "busybox:latest"]
    assert ids({"label": ["tier=front"]}) == ["c1"]
    assert ids({"type": ["container"], "image": ["postgres"]}) == ["c2"]
    import pytest

    from berth.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        build_predicate({"bogus": ["x"]})
