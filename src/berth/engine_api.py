"""Engine methods the Docker Engine API needs that the CLI had no call for yet.

A mixin of :class:`berth.engine.Engine`, kept apart so the API's needs stay in one place:

* **exec instances** — Docker splits ``exec`` into create, start and inspect calls, possibly
  on different connections, so an exec's configuration and state live in a small state
  file under the run dir (``<runroot>/execs/<id>.json``): nothing is kept in the service's
  memory, a restarted service still answers ``GET /exec/<id>/json``;
* **archive stat** — ``HEAD /containers/<id>/archive`` reports a path inside the container
  (resolved inside its rootfs, never by the host's path walk);
* **per-request registry credentials** — ``X-Registry-Auth`` headers for pull and push.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from berth.errors import Conflict, InvalidArgument, NotFound

# Go's os.FileMode bits (what X-Docker-Container-Path-Stat carries)
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27


class EngineApiMixin:
    """Mixed into Engine; uses its ``store``, ``container`` and ``container_service``."""

    store: Any
    container: Any
    container_service: Any

    # -- exec instances -----------------------------------------------------------------
    def _exec_path(self, eid: str) -> str:
        if not eid or not all(c in "0123456789abcdef" for c in eid):
            raise NotFound(f"No such exec instance: {eid}")
        return os.path.join(self.store.runroot, "execs", eid + ".json")

    def _exec_write(self, state: dict[str, Any]) -> None:
        """Replace the state file atomically; no fsync: it describes processes, which do
        not survive a reboot either (the run dir is a tmpfs)."""
        path = self._exec_path(state["ID"])
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}-{os.urandom(4).hex()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f)
        os.replace(tmp, path)

    def _exec_read(self, eid: str) -> dict[str, Any]:
        path = self._exec_path(eid)
        try:
            with open(path, encoding="utf-8") as f:
                state: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            matches = [n[:-5] for n in _listdir(os.path.dirname(path))
                       if n.startswith(eid) and n.endswith(".json")]
            if len(matches) != 1:
                raise NotFound(f"No such exec instance: {eid}") from None
            return self._exec_read(matches[0])
        return state

    def exec_create(self, name: str, cmd: list[str], *, tty: bool = False,
                    stdin: bool = False, env: list[str] | None = None,
                    user: str = "", workdir: str = "", privileged: bool = False,
                    detach_keys: str = "") -> str:
        """Record an exec to start later (``POST /containers/<id>/exec``); its ID."""
        rec = self.container(name)
        if rec.status == "paused":
            raise Conflict(f"Container {rec.id} is paused, unpause the container before exec")
        if rec.status != "running":
            raise Conflict(f"Container {rec.id} is not running")
        if not cmd or not all(isinstance(c, str) for c in cmd):
            raise InvalidArgument("No exec command specified")
        self._exec_gc()
        eid = os.urandom(32).hex()
        self._exec_write({
            "ID": eid, "ContainerID": rec.id, "Running": False, "ExitCode": None,
            "Pid": 0, "OpenStdin": stdin, "OpenStdout": True, "OpenStderr": True,
            "CanRemove": False, "DetachKeys": detach_keys,
            "ProcessConfig": {"tty": tty, "entrypoint": cmd[0], "arguments": cmd[1:],
                              "privileged": privileged, "user": user},
            "Env": list(env or []), "WorkingDir": workdir, "Created": time.time()})
        self.container_service.emit_event("exec_create: " + " ".join(cmd), rec, execID=eid)
        return eid

    def _exec_gc(self, keep_seconds: float = 600) -> None:
        """Forget execs that ended (or never started) more than ``keep_seconds`` ago."""
        d = os.path.join(self.store.runroot, "execs")
        now = time.time()
        for name in _listdir(d):
            path = os.path.join(d, name)
            try:
                if now - os.stat(path).st_mtime < keep_seconds:
                    continue
                with open(path, encoding="utf-8") as f:
                    running = json.load(f).get("Running")
                if not running:
                    os.unlink(path)
            except (OSError, ValueError):
                continue

    def exec_inspect(self, eid: str) -> dict[str, Any]:
        """Docker's ``ExecInspect``; ``Running`` is checked against the process itself."""
        from berth.procs import pid_alive

        state = self._exec_read(eid)
        if state["Running"]:
            code = self._exec_exit_code(state)
            if code is not None:  # a detached exec ended: conmon wrote its exit file
                state.update(Running=False, ExitCode=code)
                self._exec_write(state)
            elif not (state["Pid"] and pid_alive(state["Pid"])) \
                    and state.get("Owner") and not pid_alive(state["Owner"]):
                state["Running"] = False  # the service that ran it died before recording
        out = {k: v for k, v in state.items() if k not in ("Env", "WorkingDir", "Created",
                                                            "Owner")}
        return out

    def exec_start(self, eid: str, *, stdin_fd: int | None = None, stdout_fd: int = 1,
                   stderr_fd: int = 2, detach: bool = False) -> int | None:
        """Run a created exec (once); its exit code (None when detached)."""
        state = self._exec_read(eid)
        if state["Running"] or state["ExitCode"] is not None:
            raise Conflict(f"Error: Exec command {state['ID']} has already run")
        rec = self.container(state["ContainerID"])
        pc = state["ProcessConfig"]
        state.update(Running=True, Owner=os.getpid())
        self._exec_write(state)
        self.container_service.emit_event(
            "exec_start: " + " ".join([pc["entrypoint"], *pc["arguments"]]), rec,
            execID=state["ID"])
        code: int | None = None

        def started(pid: int) -> None:
            """Keep the pid: Docker's inspect still shows it after the exec ended."""
            state["Pid"] = pid
            self._exec_write(state)

        try:
            code = self.container_service.exec(
                rec.id, [pc["entrypoint"], *pc["arguments"]], detach=detach, tty=pc["tty"],
                stdin_fd=stdin_fd if state["OpenStdin"] else None, stdout_fd=stdout_fd,
                stderr_fd=stderr_fd, env=state["Env"], user=pc["user"] or None,
                workdir=state["WorkingDir"] or None, privileged=pc["privileged"],
                exec_id=state["ID"], on_pid=started)
        finally:
            state.update(Running=bool(detach and code is None), ExitCode=code,
                         Pid=state["Pid"] or self._exec_pid(rec, state["ID"]))
            if not state["Running"] and code is None:
                state["ExitCode"] = 126 if not detach else None
            self._exec_write(state)
        if code is not None:
            self.container_service.emit_event("exec_die", rec, execID=state["ID"],
                                              exitCode=str(code))
        return code

    def _exec_exit_code(self, state: dict[str, Any]) -> int | None:
        """conmon's exit file of a detached exec's session (kept: only attached sessions
        are removed at their end), None while it runs. Layout: ContainerRecord.run_dir and
        ContainerService.exec."""
        path = os.path.join(self.store.runroot, "containers", state["ContainerID"], "exec",
                            state["ID"], "exits", state["ContainerID"])
        try:
            with open(path, encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def exec_running_pid(self, eid: str) -> int:
        """The exec's process ID once its runtime wrote it (0 before)."""
        state = self._exec_read(eid)
        return self._exec_pid(self.container(state["ContainerID"]), state["ID"])

    @staticmethod
    def _exec_pid(rec: Any, eid: str) -> int:
        try:
            with open(os.path.join(rec.run_dir, "exec", eid, "pidfile"),
                      encoding="ascii") as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def exec_resize(self, eid: str, height: int, width: int) -> None:
        from berth.container import monitor

        state = self._exec_read(eid)
        rec = self.container(state["ContainerID"])
        monitor.resize(os.path.join(rec.run_dir, "exec", state["ID"]), height, width)

    def container_resize(self, name: str, height: int, width: int) -> None:
        """Set a running container's pty size (no-op without a tty, as Docker)."""
        from berth.container import monitor

        rec = self.container(name)
        if rec.status != "running" or not rec.monitor:
            raise Conflict(f"Container {rec.id} is not running")
        monitor.resize(monitor.MonitorHandle.from_dict(rec.monitor), height, width)

    def container_start_connected(self, name: str) -> Any:
        """Start a created or exited container with conmon's attach socket connected
        before its process runs (``POST /attach`` before ``/start``): the socket.

        Unlike a foreground ``run`` nothing waits here: the exit command finishes it.
        """
        return self.container_service.start_connected(name)

    # -- archive stat -----------------------------------------------------------------
    def container_path_stat(self, name: str, path: str) -> dict[str, Any]:
        """Docker's ``ContainerPathStat`` of ``path`` inside the container."""
        from berth.container.rootpath import RootFS

        _, merged = self._rootfs(name)  # type: ignore[attr-defined]
        if not path.startswith("/"):
            path = "/" + path
        with RootFS(merged) as rootfs:
            try:
                node = rootfs.locate(path, follow=False)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the file {path} in container {name}") from None
            try:
                st, link = node.st, ""
                if stat.S_ISLNK(st.st_mode):
                    link = os.readlink(node.name, dir_fd=node.pfd)
                    try:
                        target = rootfs.locate(path, follow=True)
                        st = target.st
                        target.close()
                    except OSError:
                        pass
            finally:
                node.close()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            mode |= _GO_DIR
        if link:
            mode |= _GO_SYMLINK
        return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
                "mode": mode, "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                     time.gmtime(st.st_mtime)),
                "linkTarget": link}

    # -- registry credentials for one call ----------------------------------------------
    @contextmanager
    def registry_credentials(self, auth: dict[str, Any] | None) -> Iterator[None]:
        """Use ``auth`` (Docker's AuthConfig) instead of stored credentials in this thread."""
        from berth.registry.client import credentials

        if not auth or not (auth.get("username") or auth.get("identitytoken")):
            yield
            return
        creds = credentials.Credentials(str(auth.get("username", "")),
                                        str(auth.get("password", "")))
        with credentials.override(auth.get("serveraddress") or None, creds):
            yield


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
