"""Exit handling of ContainerService: conmon's exit command and what it does.

Every container's conmon runs ``python -m berth ... container cleanup ID`` when the
container exits (through the wrapper :meth:`ExitHandling._conmon` writes). ``cleanup``
records the exit, deletes the runtime state, unmounts, applies ``--rm`` and the restart
policy; a foreground ``run``/``start -a`` holding the ``.fg`` lock does that work itself
(:meth:`ExitHandling._finish`), so the exit command then leaves it alone.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..errors import BerthError
from . import monitor, restart
from .records import ContainerRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..store.db import Database
    from ..store.store import Store
    from .runtime import OCIRuntime


class ExitHandling:
    """Mixin of :class:`~berth.container.service.ContainerService` (uses its lookup,
    lock, runtime, network and teardown helpers)."""

    if TYPE_CHECKING:  # what the mixin uses of ContainerService
        store: Store
        db: Database

        def _reload(self, cid: str) -> ContainerRecord | None: ...
        def _lock(self, cid: str, kind: str = "") -> AbstractContextManager[None]: ...
        def _launch(self, rec: ContainerRecord, *, stdin: bool, connect: bool = False
                    ) -> tuple[monitor.MonitorHandle, Any]: ...
        def _record_exit(self, rec: ContainerRecord, code: int, finished: float,
                         oom: bool, *, lost: bool = False) -> None: ...
        def _set_status(self, cid: str, status: str, *, only_if: str | None = None
                        ) -> None: ...
        def _stop_health(self, rec: ContainerRecord) -> None: ...
        def _runtime_of(self, rec: ContainerRecord) -> OCIRuntime: ...
        def _net(self, rec: ContainerRecord) -> Any: ...
        def _destroy(self, rec: ContainerRecord) -> None: ...
        def _release_volumes(self, rec: ContainerRecord) -> None: ...
        def _unmount(self, rec: ContainerRecord) -> None: ...

    # -- conmon and its exit command ------------------------------------------------------
    def _conmon(self) -> str:
        """conmon behind a wrapper that adds our ``--exit-command`` for this container.

        monitor.py takes a conmon path but no extra arguments; the wrapper (written once
        per store, content-addressed) finds the container ID after ``-c`` and execs the
        real conmon, so nothing stays in between.
        """
        import binascii
        import shlex

        import berth

        src = os.path.dirname(os.path.dirname(os.path.abspath(berth.__file__)))
        args = [sys.executable, "-m", "berth", "--root", self.store.root,
                "--runroot", self.store.runroot, "container", "cleanup"]
        exit_args = " ".join(f"--exit-command-arg {shlex.quote(a)}" for a in args[1:])
        script = (
            "#!/bin/sh\n# berth: conmon plus the exit command that applies --rm and "
            "restart policies\n"
            f"PYTHONPATH={shlex.quote(src)}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH\n"
            'cid=; prev=\nfor a in "$@"; do [ "$prev" = "-c" ] && cid=$a; prev=$a; done\n'
            f'exec {monitor.CONMON} "$@" --exit-command {shlex.quote(args[0])} {exit_args} '
            '--exit-command-arg "$cid"\n')
        digest = f"{binascii.crc32(script.encode()):08x}"  # a name per script, not security
        path = os.path.join(self.store.runroot, "bin", f"conmon-{digest}")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(script)
            os.chmod(tmp, 0o700)
            os.replace(tmp, path)
        return path

    # -- foreground lock ------------------------------------------------------------------
    def _attached_elsewhere(self, cid: str) -> bool:
        """Whether a live foreground ``run``/``start -a`` will finish this container.

        conmon waits for its exit command, and the attached CLI may wait for conmon, so
        the exit command must not queue behind that CLI: it leaves the work to it.
        """
        from ..store.locks import is_locked

        return is_locked(os.path.join(self.store.runroot, "locks", cid + ".fg"))

    # -- exit handling --------------------------------------------------------------------
    def cleanup(self, cid: str) -> None:
        """The exit command: record the exit, tear down, ``--rm``, restart policy."""
        if self._reload(cid) is None or self._attached_elsewhere(cid):
            return
        # held from before the row can say "restarting" until the restart is done: a
        # restarting row whose lock nobody holds was orphaned (reboot) and shows Exited
        with self._lock(cid, ".restart"):
            with self._lock(cid):
                rec = self._reload(cid)
                if rec is None or not rec.monitor:
                    return
                h = monitor.MonitorHandle.from_dict(rec.monitor)
                got = monitor.wait_exit(h, timeout=0)
                if got is None:
                    return  # an older run's exit command: this run is still going
                again = self._finish(rec, h, got)
            if again is not None:
                self._restart_later(again)

    def _finish(self, rec: ContainerRecord, h: monitor.MonitorHandle,
                got: tuple[int, float, bool]) -> ContainerRecord | None:
        """After an exit (lock held): row, runtime state, mount; the record to restart."""
        code, finished, oom = got
        rec = self._reload(rec.id) or rec
        if rec.status in ("running", "paused"):
            self._record_exit(rec, code, finished, oom)
        if rec.status == "restarting" and rec.manual_stop:
            rec.status = "exited"
            self._set_status(rec.id, "exited")
        again = rec.status == "restarting"
        self._stop_health(rec)
        rt = self._runtime_of(rec)
        try:
            rt.delete(rec.id, force=True)
        except BerthError:
            pass
        net = self._net(rec)
        if net is not None:
            net.container_stopped(rec)
        if rec.config.get("HostConfig", {}).get("AutoRemove") and not again:
            self._destroy(rec)
            self._release_volumes(rec)
            return None
        size_rw = None
        if not again:
            self._unmount(rec)
            from ..store.fsutil import tree_size

            size_rw = tree_size(rec.upper)  # system df's figure, kept until the next exit
        with self.db.tx() as tx:
            tx.execute("UPDATE containers SET monitor=NULL, size_rw=COALESCE(?, size_rw) "
                       "WHERE id=?", (size_rw, rec.id))
        rec.monitor = None
        return rec if again else None

    def _backoff(self, rec: ContainerRecord, ran: float) -> float:
        """This restart's wait; the last one is kept in the run dir as ``COUNT DELAY``
        (stale after a manual start, whose count no longer follows on)."""
        path = os.path.join(rec.run_dir, "restart-backoff")
        previous = 0.0
        try:
            with open(path, encoding="ascii") as f:
                count, last = f.read().split()
            if int(count) == rec.restart_count - 1:
                previous = float(last)
        except (OSError, ValueError):
            pass
        wait = restart.delay(previous, ran)
        try:
            with open(path, "w", encoding="ascii") as f:
                f.write(f"{rec.restart_count} {wait}\n")
        except OSError:
            pass  # the run dir went with the container: nothing left to restart
        return wait

    def _restart_later(self, rec: ContainerRecord) -> None:
        """Sleep the backoff (unlocked, watching for stop/rm), then start again."""
        cid = rec.id
        ran = (rec.finished_at or 0) - (rec.started_at or 0)
        deadline = time.monotonic() + self._backoff(rec, ran)
        while time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            cur = self._reload(cid)
            if cur is None or cur.status != "restarting" or cur.manual_stop:
                return
        with self._lock(cid):
            cur = self._reload(cid)
            if cur is None or cur.status != "restarting" or cur.manual_stop:
                return
            with self.db.tx() as tx:
                tx.execute("UPDATE containers SET restart_count=restart_count+1 WHERE id=?",
                           (cid,))
            cur.restart_count += 1
            try:
                self._launch(cur, stdin=bool(cur.config.get("OpenStdin")))
            except BerthError:
                with self.db.tx() as tx:
                    tx.execute("UPDATE containers SET status='exited' WHERE id=?", (cid,))
                self._unmount(cur)

