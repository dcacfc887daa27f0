"""Named pause points for fault tests, so a test can SIGKILL a command *inside* its work.

``BERTH_TEST_PAUSE=after-blob`` (a comma-separated list of point names) makes the process
that reaches :func:`pause` with one of those names write ``<name> <pid>`` to the file named
by ``BERTH_TEST_PAUSE_MARKER`` and then sleep until it is killed. A test waits for the
marker and kills the process at a point known to be mid-way, instead of guessing a delay.
Unset (always, outside tests), a point costs one truthiness check of a frozenset.
"""

from __future__ import annotations

import os
import time

_WANTED = frozenset(p for p in os.environ.get("BERTH_TEST_PAUSE", "").split(",") if p)


def pause(name: str) -> None:
    """Stop here forever when a fault test asked for point ``name``."""
    if not _WANTED or name not in _WANTED:
        return
    marker = os.environ.get("BERTH_TEST_PAUSE_MARKER")
    if marker:
        tmp = f"{marker}.{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{name} {os.getpid()}\n")
        os.replace(tmp, marker)
    while True:
        time.sleep(3600)
