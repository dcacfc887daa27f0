"""Sessions of ContainerService: foreground runs, attach, exec, waiting on an exit.

Everything here streams through conmon (:mod:`berth.container.monitor`) or blocks until a
container's run is over; the lifecycle itself stays in :mod:`berth.container.service`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Any

from ..errors import BerthError, Conflict, InvalidArgument, NotFound
from ..procs import pid_alive
from . import monitor
from .records import ContainerRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..store.db import Database
    from .runtime import OCIRuntime


class Sessions:
    """Mixin of :class:`~berth.container.service.ContainerService` (uses its lookup,
    lock, launch and exit handling)."""

    if TYPE_CHECKING:  # what the mixin uses of ContainerService (and of ExitHandling)
        db: Database

        def find(self, name_or_id: str) -> ContainerRecord | None: ...
        def get(self, name_or_id: str) -> ContainerRecord: ...
        def _reload(self, cid: str) -> ContainerRecord | None: ...
        def _lock(self, cid: str, kind: str = "") -> AbstractContextManager[None]: ...
        def _launch(self, rec: ContainerRecord, *, stdin: bool, connect: bool = False
                    ) -> tuple[monitor.MonitorHandle, Any]: ...
        def _handle(self, rec: ContainerRecord) -> monitor.MonitorHandle | None: ...
        def _socket_dir(self) -> str: ...
        def runtime(self, name: str | None = None) -> OCIRuntime: ...
        def _runtime_of(self, rec: ContainerRecord) -> OCIRuntime: ...
        def _finish(self, rec: ContainerRecord, h: monitor.MonitorHandle,
                    got: tuple[int, float, bool]) -> ContainerRecord | None: ...
        def _restart_later(self, rec: ContainerRecord) -> None: ...

    # -- foreground run -------------------------------------------------------------------
    def run_attached(self, rec: ContainerRecord, *, stdin_fd: int | None, stdout_fd: int,
                     stderr_fd: int, sig_proxy: bool = True,
                     detach_keys: bytes | None = monitor.DETACH_KEYS) -> int | None:
        """Start and stream until the container exits; its exit code (None: detached).

        Holds the container's lock throughout, so the exit command waits and this process
        finishes the container (records the exit, unmounts, ``--rm``) before returning.
        """
        with ExitStack() as keep:
            with self._lock(rec.id, ".fg"):
                with self._lock(rec.id):
                    fresh = self._reload(rec.id)
                    if fresh is None:
                        raise NotFound(f"No such container: {rec.id}")
                    if fresh.running:
                        raise Conflict(f"container {rec.id} is already running")
                    tty = bool(fresh.config.get("Tty"))
                    h, sock = self._launch(fresh, stdin=stdin_fd is not None, connect=True)
                restore = self._proxy_signals(h) if sig_proxy and not tty else None
                try:
                    detached = monitor.pump(sock, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                                            stderr_fd=stderr_fd, tty=tty, bundle=h.bundle,
                                            detach_keys=detach_keys)
                finally:
                    sock.close()
                    if restore:
                        restore()
                if detached:
                    return None
                got = monitor.wait_exit(h)
                assert got is not None
                # held until the restart is done; see ExitHandling.cleanup
                keep.enter_context(self._lock(rec.id, ".restart"))
                with self._lock(rec.id):
                    again = self._finish(fresh, h, got)
            if again is not None:
                self._restart_later(again)
            return got[0]

    def _proxy_signals(self, h: monitor.MonitorHandle) -> Callable[[], None]:
        """Forward SIGINT/SIGTERM/SIGHUP to the container, like Docker's --sig-proxy."""
        rt = self.runtime(None)
        old = {}

        def forward(signum: int, _frame: object) -> None:
            try:
                rt.kill(h.cid, signum)
            except BerthError:
                pass

        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, forward)

        def restore() -> None:
            for s, f in old.items():
                signal.signal(s, f)

        return restore

    # -- wait -----------------------------------------------------------------------------
    def wait(self, name_or_id: str) -> int:
        """Block until the container is not running; its exit code."""
        rec = self.get(name_or_id)
        while rec.status == "restarting" and not rec.monitor:
            time.sleep(0.05)
            rec = self.find(rec.id) or rec
            if rec is None:
                break
        h = self._handle(rec)
        if rec.status in ("running", "paused") and h is not None:
            got = monitor.wait_exit(h)
            return got[0] if got else 255
        return rec.exit_code or 0

    def is_done(self, rec: ContainerRecord) -> Callable[[], bool]:
        """For ``logs -f``: true once the run that was live at the call has exited."""
        h = self._handle(rec)
        if rec.status not in ("running", "paused") or h is None:
            return lambda: True
        return lambda: monitor.read_exit(h) is not None or not pid_alive(h.conmon_pid)

    # -- attach, exec ---------------------------------------------------------------------
    def attach(self, name_or_id: str, *, stdin_fd: int | None, stdout_fd: int = 1,
               stderr_fd: int = 2, detach_keys: bytes | None = monitor.DETACH_KEYS
               ) -> int | None:
        rec = self.get(name_or_id)
        h = self._handle(rec)
        if rec.status != "running" or h is None:
            raise Conflict("You cannot attach to a stopped container, start it first"
                           if rec.status != "paused" else
                           "You cannot attach to a paused container, unpause it first")
        detached = monitor.attach(h, stdin_fd=stdin_fd if h.stdin else None,
                                  stdout_fd=stdout_fd, stderr_fd=stderr_fd,
                                  detach_keys=detach_keys)
        if detached:
            return None
        got = monitor.wait_exit(h, timeout=30)
        return got[0] if got else 0

    def exec(self, name_or_id: str, cmd: list[str], *, detach: bool = False,
             tty: bool = False, stdin_fd: int | None = None, stdout_fd: int = 1,
             stderr_fd: int = 2, env: Sequence[str] = (),
             user: str | None = None, workdir: str | None = None,
             privileged: bool = False,
             detach_keys: bytes | None = monitor.DETACH_KEYS,
             exec_id: str | None = None,
             on_pid: Callable[[int], None] | None = None) -> int | None:
        from .create_options import _expand_env, merge_env
        from .users import resolve_user

        rec = self.get(name_or_id)
        if rec.status == "paused":
            raise Conflict(f"Container {rec.id} is paused, unpause the container before "
                           "exec")
        if rec.status != "running" or not rec.monitor:
            raise Conflict(f"Container {rec.id} is not running")
        if not cmd:
            raise InvalidArgument("exec requires at least 1 argument")
        proc = _process(rec)
        proc["args"] = list(cmd)
        proc["terminal"] = tty
        proc["env"] = merge_env(proc["env"], _expand_env(list(env)))
        if workdir:
            if not workdir.startswith("/"):
                raise InvalidArgument(f"the working directory '{workdir}' is invalid, it "
                                      "needs to be an absolute path")
            proc["cwd"] = workdir
        if user:
            u = resolve_user(rec.merged, user)
            proc["user"] = {"uid": u.uid, "gid": u.gid, **(
                {"additionalGids": u.additional_gids} if u.additional_gids else {})}
        if tty and not any(e.startswith("TERM=") for e in proc["env"]):
            proc["env"].append("TERM=xterm")
        if privileged:
            from .caps import effective_set

            full = list(effective_set([], [], True))
            proc["capabilities"] = {k: full for k in ("bounding", "effective", "permitted")}
        eid = exec_id or os.urandom(16).hex()
        d = os.path.join(rec.run_dir, "exec", eid)
        paths = monitor.MonitorPaths(bundle=d, log_path=os.path.join(d, "exec.log"),
                                     exit_dir=os.path.join(d, "exits"),
                                     persist_dir=os.path.join(d, "persist"),
                                     socket_dir=self._socket_dir())
        try:
            return monitor.exec_process(self._runtime_of(rec), rec.id, proc, paths,
                                        terminal=tty, stdin_fd=stdin_fd,
                                        stdout_fd=stdout_fd, stderr_fd=stderr_fd,
                                        detach=detach, detach_keys=detach_keys,
                                        on_pid=on_pid)
        finally:
            if not detach:
                shutil.rmtree(d, ignore_errors=True)

    # -- health checks (berth.container.health) -------------------------------------------
    def health_probe(self, name_or_id: str, *, loop: bool = False) -> dict[str, Any] | None:
        """One probe now, recorded in the row; the new State.Health.

        ``loop``: called by the container's health loop, which ends when this returns None
        (the container stopped, or a newer start replaced that loop).
        """
        from . import health

        rec = self.find(name_or_id) if loop else self.get(name_or_id)
        if loop and (rec is None or rec.status != "running" or
                     health.current_loop(rec) != os.getppid()):
            return None  # removed, stopped, or restarted with a newer loop: this one ends
        assert rec is not None
        if not health.configured(rec.config):
            raise Conflict(f"container {rec.name} has no defined healthcheck")
        if rec.status != "running" or not rec.monitor:
            raise Conflict(f"container {rec.name} is not running")
        entry = health.probe(self._runtime_of(rec), rec, _process(rec))
        return health.record(self.db, rec, entry)


def _process(rec: ContainerRecord) -> dict[str, Any]:
    """The container's OCI process (user, env, cwd, caps): what exec and probes start from."""
    with open(os.path.join(rec.bundle, "config.json"), encoding="utf-8") as f:
        return dict(json.load(f)["process"])
