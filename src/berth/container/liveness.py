"""Cheap repeated listing: proofs of life kept as pidfds, parsed rows kept per connection.

A ``ps`` (``GET /containers/json``) must say which rows that claim "running" still run.
:meth:`ContainerService.refresh` answers it per container with file reads and ``/proc``
reads (conmon's exit file, conmon's argv, the container's cgroup): correct, but a
long-lived process (the API service) listing many times a second pays them again and again
for an answer that has not changed.

A **pidfd** keeps the answer honest for as long as it holds: it names one process, not a
number, so it can never come to mean another process after pid reuse (or a reboot — and a
reboot ends this process, and every pidfd with it). The proof is taken once, the slow way:
open the pidfd *first*, then verify that the pid is the container's (alive, in the
container's cgroup); if the pid was reused in between, the verification looks at the very
process the pidfd names. From then on one ``poll`` over every held pidfd says which
containers' main processes exited: those (and any without a proof) take the slow path.
A live main process means conmon has not written an exit file (it writes it after reaping
that process), so the fast path skips nothing the slow path would have found.

Rows are parsed once per change of the database: SQLite's ``PRAGMA data_version`` changes
when another connection commits (another thread or process), ``total_changes`` when this
connection writes; both unchanged means the ``containers`` table reads the same.
"""

from __future__ import annotations

import os
import select
import sqlite3
import threading
from typing import Any

from ..cgroupprocs import in_cgroup
from ..procs import pid_alive
from .monitor import MonitorHandle
from .records import ContainerRecord


def _key(h: MonitorHandle) -> tuple[int, int, str]:
    """One run of one container (a restart starts new processes)."""
    return (h.container_pid, h.conmon_pid, h.cid)


class LiveSet:
    """Containers whose main process was proven alive, each held by a pidfd of it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[tuple[int, int, str], int]] = {}

    def running(self, handles: dict[str, MonitorHandle]) -> set[str]:
        """IDs among ``handles`` whose proven main process still runs (one ``poll``)."""
        with self._lock:
            fds = {fd: cid for cid, (key, fd) in self._held.items()
                   if cid in handles and key == _key(handles[cid])}
            if not fds:
                return set()
            p = select.poll()
            for fd in fds:
                p.register(fd, select.POLLIN)
            exited = {fd for fd, _ev in p.poll(0)}
            return {cid for fd, cid in fds.items() if fd not in exited}

    def prove(self, cid: str, h: MonitorHandle) -> None:
        """After the slow path said running: hold a pidfd when the main process is provably
        the container's (else nothing: the slow path keeps answering for it)."""
        try:
            fd = os.pidfd_open(h.container_pid)
        except OSError:
            return
        ok = pid_alive(h.container_pid) and (not h.cgroups_path
                                             or in_cgroup(h.container_pid, h.cgroups_path))
        with self._lock:
            old = self._held.pop(cid, None)
            if ok:
                self._held[cid] = (_key(h), fd)
        if old is not None:
            os.close(old[1])
        if not ok:
            os.close(fd)

    def keep_only(self, cids: set[str]) -> None:
        """Close the pidfds of containers no longer listed as running (removed, exited)."""
        with self._lock:
            if self._held.keys() <= cids:  # the usual case
                return
            gone = [cid for cid in self._held if cid not in cids]
            fds = [self._held.pop(cid)[1] for cid in gone]
        for fd in fds:
            os.close(fd)


class RowCache:
    """The parsed ``containers`` table per thread's connection, valid until a commit."""

    def __init__(self) -> None:
        self._local = threading.local()

    def records(self, conn: sqlite3.Connection, load: Any) -> list[ContainerRecord]:
        """The cached records (a new list), or ``load()``'s when the table may have changed.

        The records themselves are shared between calls: callers read them; whoever needs
        to change one (:meth:`ContainerService.refresh`) works on a copy."""
        version = (conn, conn.execute("PRAGMA data_version").fetchone()[0],
                   conn.total_changes)
        got = getattr(self._local, "entry", None)
        if got is None or got[0] != version:
            got = (version, load())
            self._local.entry = got
        return list(got[1])
