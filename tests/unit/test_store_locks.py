"""``flock``-based locks: exclusive vs shared, released by death, never inherited."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from berth.store.locks import flock, is_locked

HOLD = """
import sys, time
from berth.store.locks import flock
with flock(sys.argv[1], exclusive=sys.argv[2] == "ex"):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(path, mode: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), mode],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


def _acquired_within(path, exclusive: bool, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    done = threading.Event()

    def take() -> None:
        with flock(str(path), exclusive=exclusive):
            done.set()

    t = threading.Thread(target=take, daemon=True)
    t.start()
    return done.wait(seconds)


def test_missing_file_is_not_locked_and_flock_creates_it(tmp_path):
    path = tmp_path / "new.lock"
    assert is_locked(str(path)) is False
    with flock(str(path), exclusive=True):
        assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert is_locked(str(path)) is False


@pytest.mark.parametrize("mode", ["ex", "sh"])
def test_a_live_holder_is_seen_and_its_death_releases(tmp_path, mode):
    path = tmp_path / "l"
    p = _holder(path, mode)
    try:
        assert is_locked(str(path)) is True
        # shared holders admit other shared holders, never an exclusive one
        assert _acquired_within(path, exclusive=False, seconds=1) is (mode == "sh")
    finally:
        p.kill()
        p.wait()
    assert is_locked(str(path)) is False  # SIGKILL released it
    assert _acquired_within(path, exclusive=True, seconds=5)


def test_exclusive_waits_for_shared(tmp_path):
    path = tmp_path / "l"
    p = _holder(path, "sh")
    try:
        assert not _acquired_within(path, exclusive=True, seconds=0.5)
    finally:
        p.kill()
        p.wait()


def test_lock_is_not_inherited_by_children(tmp_path):
    """A child (conmon, a container) outliving the command must not keep the store
    locked: the lock fd is close-on-exec."""
    path = tmp_path / "l"
    with flock(str(path), exclusive=True):
        child = subprocess.Popen(["sleep", "30"], close_fds=False)
    try:
        time.sleep(0.1)
        assert is_locked(str(path)) is False
    finally:
        child.kill()
        child.wait()
