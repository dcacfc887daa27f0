"""The host-wide network lock.

Bridges, the ``berth`` nft table and host ports belong to the *host*, not to one store:
two berth stores (two ``--root`` s, or parallel test runs) choosing a subnet, adding rules
(check-then-add) or probing a port at the same moment would collide. So the lock lives in
one fixed place for the whole host, not under a store's runroot. It is an ``flock``, so a
SIGKILLed holder releases it; critical sections are short (no container runs under it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_CANDIDATES = ("/run/lock", "/run", "/tmp")


def lock_path() -> str:
    """``$BERTH_NETWORK_LOCK`` or ``/run/lock/berth-network.lock`` (first writable dir)."""
    env = os.environ.get("BERTH_NETWORK_LOCK")
    if env:
        return env
    for d in _CANDIDATES:
        if os.path.isdir(d) and os.access(d, os.W_OK):
            return os.path.join(d, "berth-network.lock")
    return os.path.join("/tmp", "berth-network.lock")


_depth = threading.local()


@contextmanager
def network_lock() -> Iterator[None]:
    """Hold the host-wide network lock (exclusive) for the ``with`` body.

    Re-entrant within a thread: a second ``flock`` on a new descriptor of the same file
    would wait for the first one forever, and the service's steps nest (start calls
    refresh, which locks too).
    """
    from ..store.locks import flock

    if getattr(_depth, "n", 0):
        _depth.n += 1
        try:
            yield
        finally:
            _depth.n -= 1
        return
    with flock(lock_path(), exclusive=True):
        _depth.n = 1
        try:
            yield
        finally:
            _depth.n = 0
