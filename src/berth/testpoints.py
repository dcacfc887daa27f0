"""Named pause points for fault tests, so a test can SIGKILL a command *inside* its work.

``BERTH_TEST_PAUSE=after-blob`` (a comma-separated list of point names, each optionally
``name#N`` for the N-th time the point is reached) makes the process that gets there write
``<name> <pid>`` to the file named by ``BERTH_TEST_PAUSE_MARKER`` and then sleep until it
is killed. A test waits for the marker and kills the process at a point known to be
mid-way, instead of guessing a delay. Unset (always, outside tests), a point costs one
truthiness check of an empty dict.
"""

from __future__ import annotations

import os
import time


def _parse(text: str) -> dict[str, int]:
    out = {}
    for item in text.split(","):
        name, _, nth = item.strip().partition("#")
        if name:
            out[name] = int(nth) if nth.isdigit() else 1
    return out


_WANTED = _parse(os.environ.get("BERTH_TEST_PAUSE", ""))
_SEEN: dict[str, int] = {}


def pause(name: str) -> None:
    """Stop here forever when a fault test asked for point ``name`` (this time round)."""
    if not _WANTED or name not in _WANTED:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] != _WANTED[name]:
        return
    marker = os.environ.get("BERTH_TEST_PAUSE_MARKER")
    if marker:
        tmp = f"{marker}.{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{name} {os.getpid()}\n")
        os.replace(tmp, marker)
    while True:
        time.sleep(3600)
