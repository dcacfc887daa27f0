"""ContainerService: the container lifecycle over the store, the runtime and conmon.

There is no daemon. The database row is the truth about a container; conmon keeps each
container's stdio, log and exit file, and outlives every berth process. Three rules keep
the row honest without anything resident:

* **Exit commands.** Every container's conmon is started with ``--exit-command``
  ``python -m berth --root R --runroot RR container cleanup ID`` (through a tiny generated
  shell wrapper around conmon, see :mod:`berth.container.exits`). That process records
  the exit, deletes the runtime state, unmounts the rootfs, removes ``--rm`` containers and
  applies the restart policy (Docker's backoff, slept *without* holding the lock).
* **One lock per container** (``<runroot>/locks/<id>``, flock, so a killed process frees
  it) serializes start, cleanup and removal. A foreground ``run``/``start -a`` holds it
  while attached and finishes the container itself; the exit command then finds nothing to
  do. If that CLI is SIGKILLed, the lock is released and the exit command takes over.
* **Lazy reconciliation.** Reading a row that says running also looks at conmon's exit
  file (one ``stat``/``read``, never a runtime call), so ``ps -a`` stays cheap and correct
  even when an exit command could not run.

The class is split by job: this module has lookup, create/prepare, start/stop/kill/remove/
rename/pause and reconciliation; :mod:`.exits` the exit command and what it does after an
exit (:class:`~.exits.ExitHandling`); :mod:`.sessions` foreground runs, attach, exec and
waiting (:class:`~.sessions.Sessions`).
"""

from __future__ import annotations

import builtins
import copy
import functools
import json
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import BerthError, Conflict, InvalidArgument, NotFound
from ..procs import pid_alive
from ..store.fsutil import tree_size
from . import monitor, restart
from .create_options import CreateOptions, argv_of, merge, parse_signal
from .exits import ExitHandling
from .liveness import LiveSet, RowCache
from .records import ContainerRecord
from .sessions import Sessions

if TYPE_CHECKING:  # pragma: no cover
    from ..images.service import ImageService
    from ..store.store import Store
    from .runtime import OCIRuntime

_SOCK_MAX = 100          # conmon binds <socket_dir>/<12 chars>/attach; AF_UNIX limit is 107
_HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
          "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
          "ff02::2\tip6-allrouters\n")
_LINKS_ABOVE = 20        # beyond this many layers mount through the short links


class ContainerService(ExitHandling, Sessions):
    def __init__(self, store: Store, images: ImageService) -> None:
        self.store = store
        self.db = store.db
        self.images = images
        self._runtimes: dict[str | None, OCIRuntime] = {}
        self._live = LiveSet()
        self._rows = RowCache()
        self._listed = False  # proofs of life pay off from the second listing on

    # -- lookup -----------------------------------------------------------------------
    def _rec(self, row: Any) -> ContainerRecord:
        return ContainerRecord.from_row(row, self.store.root, self.store.runroot)

    def find(self, name_or_id: str) -> ContainerRecord | None:
        """By full ID, name (with or without ``/``) or unique ID prefix; reconciled."""
        key = name_or_id[1:] if name_or_id.startswith("/") else name_or_id
        row = self.db.one("SELECT * FROM containers WHERE id=? OR name=? "
                          "ORDER BY id=? DESC LIMIT 1", (key, key, key))
        if row is None and key and all(c in "0123456789abcdef" for c in key):
            rows = self.db.query("SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2",
                                 (key, key + "g"))
            if len(rows) > 1:
                raise NotFound(f"multiple IDs found with provided prefix: {key}")
            row = rows[0] if rows else None
        return self.refresh(self._rec(row)) if row is not None else None

    def get(self, name_or_id: str) -> ContainerRecord:
        rec = self.find(name_or_id)
        if rec is None:
            raise NotFound(f"No such container: {name_or_id}")
        return rec

    def _reload(self, cid: str) -> ContainerRecord | None:
        row = self.db.one("SELECT * FROM containers WHERE id=?", (cid,))
        return self._rec(row) if row is not None else None

    def list(self) -> list[ContainerRecord]:
        """Every container, newest first, reconciled with conmon's exit files.

        Repeated listings (the API service) reuse the parsed rows while the table is
        unchanged and skip the per-container file and ``/proc`` checks for containers whose
        main process is held, proven, by a pidfd (:mod:`.liveness`)."""
        from .orphans import frozen_ids, thaw_if_orphaned

        recs = self._rows.records(self.db.conn, lambda: [
            self._rec(r) for r in
            self.db.query("SELECT * FROM containers ORDER BY created DESC, id")])
        handles = {r.id: monitor.MonitorHandle.from_dict(r.monitor) for r in recs
                   if r.status in ("running", "paused") and r.monitor}
        alive = self._live.running(handles)
        frozen = frozen_ids(self.store.runroot) if alive else set()
        for i, rec in enumerate(recs):
            if rec.id in alive:
                if rec.id in frozen and rec.status == "running":  # by a killed commit?
                    thaw_if_orphaned(rec, functools.partial(self._runtime_of, rec))
            elif rec.running:
                recs[i] = rec = self.refresh(copy.copy(rec))  # never edit the cached one
                if rec.id in handles and rec.status in ("running", "paused") \
                        and self._listed:  # a one-shot `berth ps` need not prove
                    self._live.prove(rec.id, handles[rec.id])
        self._live.keep_only({r.id for r in recs if r.status in ("running", "paused")})
        self._listed = True
        return recs

    # -- reconciliation -----------------------------------------------------------------
    def refresh(self, rec: ContainerRecord) -> ContainerRecord:
        """If the row says running but conmon recorded an exit (or died), say so in the row.

        Only file reads, ``kill(pid, 0)`` and ``/proc`` reads; the exit command does the
        real cleanup. A pid counts as the container's only with proof (conmon's argv, the
        container's cgroup): after a reboot the same numbers belong to other processes.
        When conmon died without recording an exit (killed, or a reboot emptied the
        runroot) no exit command will come, so no restart either: the row says Exited
        (``berth system boot`` brings back what a restart policy wants back).
        """
        from .orphans import conmon_alive, container_alive

        h = monitor.MonitorHandle.from_dict(rec.monitor) if rec.monitor else None
        if rec.status == "restarting":
            # the exit command (a child conmon waits for) holds ".restart" until the new
            # run is up; with neither left, nobody will restart it
            if (h is None or not conmon_alive(h)) and not self._restart_pending(rec.id):
                self._set_status(rec.id, "exited", only_if="restarting")
                rec.status = "exited"
            return rec
        if rec.status not in ("running", "paused") or h is None:
            return rec
        got = monitor.read_exit(h)
        lost = False
        if got is None:
            if conmon_alive(h) or container_alive(h):
                if rec.status == "running":  # frozen by a commit that was killed?
                    from .orphans import thaw_if_orphaned

                    thaw_if_orphaned(rec, lambda: self._runtime_of(rec))
                return rec
            got, lost = (255, time.time()), True
        oom = os.path.exists(os.path.join(h.persist_dir, "oom"))
        self._record_exit(rec, got[0], got[1], oom, lost=lost)
        return rec

    def _record_exit(self, rec: ContainerRecord, code: int, finished: float,
                     oom: bool, *, lost: bool = False) -> None:
        """Status after an exit: ``restarting`` when the policy will bring it back
        (never for a ``lost`` exit: nothing is left to run the restart)."""
        policy = restart.from_dict(rec.config.get("HostConfig", {}).get("RestartPolicy"))
        again = not lost and restart.decide(policy, code, rec.restart_count, rec.manual_stop)
        rec.status = "restarting" if again else "exited"
        rec.exit_code, rec.finished_at, rec.oom_killed, rec.pid = code, finished, oom, None
        with self.db.tx() as tx:
            cur = tx.execute("UPDATE containers SET status=?, exit_code=?, finished_at=?, "
                             "oom_killed=?, pid=NULL WHERE id=? AND status IN "
                             "('running','paused')",
                             (rec.status, code, finished, int(oom), rec.id))
        if cur.rowcount:
            self.emit_event("oom" if oom else "die", rec, exitCode=str(code))

    # -- networking (berth.network owns it; never imported for none/host) ----------------
    def _net(self, rec: ContainerRecord) -> Any:
        """The network service when this container has its own network stack, else None."""
        mode = rec.config.get("HostConfig", {}).get("NetworkMode") or "none"
        if mode in ("none", "host"):
            return None
        from ..procs import in_userns

        if in_userns():  # rootless: pasta instead of bridges (berth.rootless.pasta)
            from ..rootless.pasta import PastaNetwork

            return PastaNetwork(self.store.runroot)
        from ..network.service import NetworkService

        return NetworkService(self.store)

    def _spec_network(self, rec: ContainerRecord) -> str:
        net = self._net(rec)
        if net is not None:
            return net.spec_network(rec)
        return rec.config.get("HostConfig", {}).get("NetworkMode") or "none"

    # -- paths, runtime, locks ----------------------------------------------------------
    def paths(self, rec: ContainerRecord) -> monitor.MonitorPaths:
        return monitor.MonitorPaths(bundle=rec.bundle, log_path=rec.log_path,
                                    exit_dir=os.path.join(rec.run_dir, "exits"),
                                    persist_dir=os.path.join(rec.run_dir, "persist"),
                                    socket_dir=self._socket_dir())

    def _socket_dir(self) -> str:
        d = os.path.join(self.store.runroot, "s")
        if len(d) + len("/123456789012/attach") > _SOCK_MAX:
            import hashlib

            d = "/tmp/berth-s-" + hashlib.sha256(d.encode()).hexdigest()[:12]
        return d

    def runtime(self, name: str | None = None) -> OCIRuntime:
        if name not in self._runtimes:
            from .runtime import select_runtime

            self._runtimes[name] = select_runtime(name, self.store.runroot)
        return self._runtimes[name]

    def _runtime_of(self, rec: ContainerRecord) -> OCIRuntime:
        return self.runtime(rec.config.get("HostConfig", {}).get("Runtime") or rec.runtime)

    @contextmanager
    def _lock(self, cid: str, kind: str = "") -> Iterator[None]:
        """The container's lock; ``kind=".fg"``: a foreground CLI is attached to it."""
        from ..store.locks import flock

        d = os.path.join(self.store.runroot, "locks")
        os.makedirs(d, mode=0o700, exist_ok=True)
        with flock(os.path.join(d, cid + kind), exclusive=True):
            yield

    # -- create ---------------------------------------------------------------------------
    def create(self, opts: CreateOptions, image_id: str, *,
               keep_mounted: bool = False) -> ContainerRecord:
        """Row + dirs + bundle; on any failure nothing of it remains."""
        try:
            image_config = self.images.config(image_id)
        except NotFound:  # removed (and collected) since it was resolved: a lost race
            raise NotFound(f"No such image: {opts.image}") from None
        config = merge(opts, image_config, opts.image)
        from ..procs import rootless

        if rootless():  # rootless: refuse what needs host root before any state (berth.rootless)
            from ..rootless.containers import check_config

            check_config(config)
        if config["HostConfig"].get("VolumesFrom"):
            from ..volumes.hooks import inherit_volumes

            inherit_volumes(config, self.get)
        rt = self.runtime(opts.runtime)
        cid = os.urandom(32).hex()
        config["Hostname"] = config["Hostname"] or cid[:12]
        self._insert(cid, opts.name, image_id, opts.image, config, rt.name)
        rec = self._reload(cid)
        assert rec is not None
        try:
            net = self._net(rec)
            if net is not None:
                net.container_created(rec, opts)
            self._prepare(rec, image_id)
            from ..testpoints import pause

            pause("create-prepared")
            if not keep_mounted:
                self._unmount(rec)
        except BaseException:
            self._destroy(rec)
            self._release_volumes(rec)
            raise
        return rec

    def _insert(self, cid: str, name: str | None, image_id: str, image_name: str,
                config: dict[str, Any], runtime: str) -> None:
        """The container's row, with the true error when a racing command got there first.

        The image and the name are checked inside the write transaction: an ``rmi`` that
        won the race is "No such image", never a foreign-key failure passed off as a name
        conflict; a random name taken meanwhile is simply picked again.
        """
        from . import names

        if name is not None:
            name = names.validate(name)
        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM images WHERE id=?", (image_id,)) is None:
                raise NotFound(f"No such image: {image_name}")
            candidate = name
            for attempt in range(200):
                if candidate is None:
                    candidate = names.random_name(attempt)
                row = tx.one("SELECT id FROM containers WHERE name=?", (candidate,))
                if row is None:
                    break
                if name is not None:
                    raise Conflict(_name_conflict(name, row["id"]))
                candidate = None
            else:
                raise Conflict("could not generate a unique container name")
            tx.execute("INSERT INTO containers(id, name, image_id, image_name, created, "
                       "config, status, runtime, labels) VALUES (?,?,?,?,?,?,?,?,?)",
                       (cid, candidate, image_id, image_name, time.time(), json.dumps(config),
                        "created", runtime, json.dumps(config.get("Labels") or {})))

    def _prepare(self, rec: ContainerRecord, image_id: str) -> None:
        from .spec import SpecOptions, build_spec

        for d in (rec.upper, rec.work, rec.merged):
            os.makedirs(d, mode=0o755, exist_ok=True)
        os.makedirs(rec.run_dir, mode=0o700, exist_ok=True)
        self._mount(rec, image_id)
        cfg, host = rec.config, rec.config["HostConfig"]
        mounts = self._etc_files(rec)
        for b in host.get("Mounts") or []:
            _ensure_bind_source(b["Source"])
            mounts.append({"type": "bind", "source": b["Source"],
                           "destination": b["Destination"], "ro": not b["RW"]})
        for dst, o in (host.get("Tmpfs") or {}).items():
            mounts.append({"type": "tmpfs", "destination": dst,
                           "options": [x for x in o.split(",") if x]})
        if host.get("VolumeMounts"):
            mounts = self._volume_mounts(rec, mounts)
        secopts = host.get("SecurityOpt") or []
        seccomp = "default"
        for o in secopts:
            if o.startswith(("seccomp=", "seccomp:")):
                seccomp = o[8:]
        memory_swap = host.get("MemorySwap") or None
        extra: dict[str, Any] = {}
        if host.get("Ulimits") or host.get("Devices") or host.get("PidMode") or \
                host.get("IpcMode", "private") != "private" or host.get("Sysctls"):
            from .namespaces import spec_options

            extra = spec_options(host, self.get)
        spec = build_spec(SpecOptions(
            rootfs=rec.merged, args=argv_of(cfg), env=cfg["Env"],
            cwd=cfg.get("WorkingDir") or "/", user=cfg.get("User") or None,
            hostname=cfg["Hostname"], terminal=bool(cfg.get("Tty")),
            readonly_rootfs=bool(host.get("ReadonlyRootfs")),
            privileged=bool(host.get("Privileged")), cap_add=host.get("CapAdd") or [],
            cap_drop=host.get("CapDrop") or [],
            no_new_privileges=any(o in ("no-new-privileges", "no-new-privileges:true",
                                        "no-new-privileges=true") for o in secopts),
            seccomp=seccomp, mounts=mounts, network=self._spec_network(rec),
            memory=host.get("Memory") or None, memory_swap=memory_swap,
            cpus=(host.get("NanoCpus") or 0) / 1e9 or None,
            cpu_shares=host.get("CpuShares") or None, pids_limit=host.get("PidsLimit"),
            cgroups_path=_cgroups_path(rec), init=bool(host.get("Init")),
            annotations={"io.berth.name": rec.name}, group_add=host.get("GroupAdd") or [],
            shm_size=host.get("ShmSize") or 64 << 20, oom_score_adj=host.get("OomScoreAdj") or None,
            cpuset_cpus=host.get("CpusetCpus") or "",
            memory_reservation=host.get("MemoryReservation") or None, **extra))
        from ..procs import rootless

        if rootless():  # rootless: a spec runc can run inside the user namespace
            from ..rootless.containers import adjust_spec

            adjust_spec(spec)
        tmp = os.path.join(rec.bundle, ".config.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(spec, f)
        os.replace(tmp, os.path.join(rec.bundle, "config.json"))

    def _etc_files(self, rec: ContainerRecord) -> builtins.list[dict[str, Any]]:
        """/etc/hosts, /etc/hostname, /etc/resolv.conf as files in the container dir."""
        net = self._net(rec)
        if net is not None:  # bridge networks: the network service renders them
            return net.etc_files(rec)
        host = rec.config["HostConfig"]
        hostnet = host.get("NetworkMode") == "host"
        hosts = _read("/etc/hosts") if hostnet else _HOSTS
        if not hostnet:
            hosts += f"127.0.1.1\t{rec.config['Hostname']}\n"
        for h in host.get("ExtraHosts") or []:
            name, _, ip = h.partition(":")
            hosts += f"{ip}\t{name}\n"
        files = {"hosts": hosts, "hostname": rec.config["Hostname"] + "\n",
                 "resolv.conf": _read("/etc/resolv.conf") if hostnet else ""}
        from ..etcbinds import bind_etc_files

        return bind_etc_files(rec.dir, files)

    def _mount(self, rec: ContainerRecord, image_id: str | None = None) -> None:
        from .rootfs import is_mounted, mount_overlay

        if is_mounted(rec.merged):
            return
        from berth.images.unpack import ensure_unpacked

        ensure_unpacked(self.store, image_id or rec.image_id)  # pulled layers: first use
        layers = self.images.layers(image_id or rec.image_id)
        lowers = [self.store.layers.diff_dir(r["chain_id"]) for r in reversed(layers)]
        links = self.store.layers.links if len(lowers) > _LINKS_ABOVE else None
        mount_overlay(lowers, rec.upper, rec.work, rec.merged, links_dir=links)

    def mount(self, name_or_id: str) -> str:
        """Make sure the rootfs is mounted (for cp/export on a stopped container)."""
        rec = self.get(name_or_id)
        self._mount(rec)
        return rec.merged

    def _unmount(self, rec: ContainerRecord) -> None:
        from .rootfs import unmount

        unmount(rec.merged)

    # -- start ----------------------------------------------------------------------------
    def _restart_pending(self, cid: str) -> bool:
        """Whether an exit command holds this container's restart (sleeping its backoff)."""
        from ..store.locks import is_locked

        return is_locked(os.path.join(self.store.runroot, "locks", cid + ".restart"))

    def start(self, name_or_id: str) -> ContainerRecord:
        """Detached start; starting a running container does nothing (as Docker)."""
        return self._start(name_or_id, connect=False)[0]

    def start_connected(self, name_or_id: str) -> Any:
        """Start with conmon's attach socket connected before the process runs (the API's
        ``POST /attach`` before ``/start``, so no early output is lost): the socket. A
        container already running is attached to instead."""
        return self._start(name_or_id, connect=True)[1]

    def _start(self, name_or_id: str, *, connect: bool) -> tuple[ContainerRecord, Any]:
        rec = self.get(name_or_id)
        with self._lock(rec.id):
            fresh = self._reload(rec.id)
            if fresh is None:
                raise NotFound(f"No such container: {name_or_id}")
            fresh = self.refresh(fresh)
            if fresh.status in ("running", "paused"):
                if not connect:
                    return fresh, None
                if fresh.monitor:
                    return fresh, monitor.connect(monitor.MonitorHandle.from_dict(fresh.monitor))
            _, sock = self._launch(fresh, stdin=bool(fresh.config.get("OpenStdin")),
                                   connect=connect)
            return fresh, sock

    def _launch(self, rec: ContainerRecord, *, stdin: bool, connect: bool = False
                ) -> tuple[monitor.MonitorHandle, Any]:
        """create + (connect) + start under conmon; the row says running afterwards.

        A foreground run's stdin closes when its client's input ends (Docker's StdinOnce),
        except a tty's: Docker keeps that open so ``attach`` after a detach still types
        into it. Call with the container's lock held. On failure the runtime state and conmon are
        gone, the error is recorded (State.Error, 126/127 as ExitCode) and re-raised.
        """
        from ..testpoints import pause

        rt = self._runtime_of(rec)
        # the runroot is a tmpfs a reboot empties: what a start needs there is made here
        os.makedirs(rec.run_dir, mode=0o700, exist_ok=True)
        self._mount(rec)
        if rec.config.get("HostConfig", {}).get("PidMode") or \
                rec.config.get("HostConfig", {}).get("IpcMode", "private") != "private":
            from .namespaces import rejoin

            rejoin(rec.bundle, rec.config["HostConfig"], self.get)
        if os.path.exists(os.path.join(rt.root, rec.id)):
            rt.delete(rec.id, force=True)
        h = None
        sock = None
        net = self._net(rec)
        try:
            if net is not None:
                self._clear_dead_sandbox(rec, net)
                net.container_starting(rec)
                pause("start-network")
            h = monitor.create_container(
                rt, rec.id, self.paths(rec), terminal=bool(rec.config.get("Tty")),
                stdin=stdin, stdin_once=connect and not rec.config.get("Tty"),
                cgroups_path=_cgroups_path(rec), conmon=self._conmon(),
                **_log_args(rec))
            if connect:
                sock = monitor.connect(h)
            monitor.start(rt, h)
        except BaseException as e:
            if sock is not None:
                sock.close()
            if h is not None:
                monitor.kill_monitor(h)
            try:
                rt.delete(rec.id, force=True)
            except BerthError:
                pass
            if net is not None:
                net.container_stopped(rec)
            code = e.exit_code if isinstance(e, BerthError) else 125
            with self.db.tx() as tx:
                tx.execute("UPDATE containers SET error=?, exit_code=?, monitor=NULL, "
                           "status=CASE WHEN started_at IS NULL THEN 'created' ELSE "
                           "'exited' END WHERE id=?", (str(e), code, rec.id))
            if rec.started_at is None:
                self._unmount(rec)
            raise
        now = time.time()
        with self.db.tx() as tx:
            tx.execute("UPDATE containers SET status='running', pid=?, started_at=?, "
                       "exit_code=0, oom_killed=0, error='', manual_stop=0, monitor=? "
                       "WHERE id=?", (h.container_pid, now, json.dumps(h.to_dict()),
                                      rec.id))
        rec.status, rec.pid, rec.started_at, rec.monitor = "running", h.container_pid, \
            now, h.to_dict()
        self.emit_event("start", rec)
        if rec.config.get("Healthcheck"):
            from . import health

            health.start_loop(self.db, rec, self.store.root, self.store.runroot)
        return h, sock

    def _clear_dead_sandbox(self, rec: ContainerRecord, net: Any) -> None:
        """Undo the netns/veths/proxy of a start that died half-way (a killed ``run -d``),
        which would otherwise make this start fail with "File exists"."""
        from ..network.netns import netns_path

        if self.db.one("SELECT 1 FROM sandboxes WHERE container_id=?", (rec.id,)) \
                or os.path.lexists(netns_path(self.store.runroot, rec.id)):
            net.container_stopped(rec)

    # -- stop / kill / restart ------------------------------------------------------------
    def _handle(self, rec: ContainerRecord) -> monitor.MonitorHandle | None:
        return monitor.MonitorHandle.from_dict(rec.monitor) if rec.monitor else None

    def stop(self, name_or_id: str, timeout: int | None = None) -> None:
        """STOPSIGNAL, then SIGKILL after the timeout; never restarted by its policy."""
        rec = self.get(name_or_id)
        with self.db.tx() as tx:
            tx.execute("UPDATE containers SET manual_stop=1 WHERE id=?", (rec.id,))
        rec.manual_stop = True
        if rec.status == "restarting":
            self._settle(rec)
            return
        h = self._handle(rec)
        if rec.status not in ("running", "paused") or h is None:
            return
        if timeout is None:
            timeout = rec.config.get("StopTimeout")
        timeout = 10 if timeout is None else timeout
        rt = self._runtime_of(rec)
        sig = parse_signal(rec.config.get("StopSignal") or "SIGTERM")
        self.emit_event("kill", rec, signal=str(sig))
        self._signal(rt, rec, sig)
        got = monitor.wait_exit(h, timeout=max(0, timeout)) if timeout >= 0 else \
            monitor.wait_exit(h)
        if got is None:
            self._signal(rt, rec, signal.SIGKILL)
            if monitor.wait_exit(h, timeout=30) is None:
                self._still_running(rec, h)
        self.cleanup(rec.id)
        self.emit_event("stop", rec)

    def _settle(self, rec: ContainerRecord) -> None:
        """A restarting container told to stop: it stays exited and unmounted."""
        self.cleanup(rec.id)
        with self._lock(rec.id):
            cur = self._reload(rec.id)
            if cur is not None and cur.status == "restarting" and not cur.monitor:
                self._set_status(rec.id, "exited")
                self._unmount(cur)

    def _signal(self, rt: OCIRuntime, rec: ContainerRecord, sig: int) -> bool:
        """Signal the container; without runtime state (runroot gone) through its cgroup.
        False when no process of it was found."""
        try:
            rt.kill(rec.id, sig)
            if rec.status == "paused":
                rt.resume(rec.id)
            return True
        except NotFound:
            h = self._handle(rec)
            if h is None:
                return False
            from .orphans import signal_all

            if sig == signal.SIGKILL:
                from ..cgroupprocs import kill_cgroup

                if h.cgroups_path:
                    kill_cgroup(h.cgroups_path)
            return signal_all(h, sig) or sig == signal.SIGKILL
        except BerthError:
            return False  # already gone: the exit is what we wait for anyway

    def _still_running(self, rec: ContainerRecord, h: monitor.MonitorHandle) -> None:
        """Fail loudly rather than report a stop while the process lives."""
        from .orphans import container_alive

        if container_alive(h):
            from ..errors import RuntimeFailure

            raise RuntimeFailure(f"container {rec.id} did not stop: its process "
                                 f"{h.container_pid} is still running")

    def kill(self, name_or_id: str, sig: str = "KILL") -> None:
        rec = self.get(name_or_id)
        signum = parse_signal(sig)
        h = self._handle(rec)
        if rec.status not in ("running", "paused") or h is None:
            raise Conflict(f"Cannot kill container: {name_or_id}: Container {rec.id} is "
                           "not running")
        stop_sig = parse_signal(rec.config.get("StopSignal") or "SIGTERM")
        if signum in (signal.SIGKILL, stop_sig):
            with self.db.tx() as tx:
                tx.execute("UPDATE containers SET manual_stop=1 WHERE id=?", (rec.id,))
        rt = self._runtime_of(rec)
        self.emit_event("kill", rec, signal=str(signum))
        if not self._signal(rt, rec, signum):
            from .orphans import container_alive

            if container_alive(h):
                from ..errors import RuntimeFailure

                raise RuntimeFailure(f"Cannot kill container: {name_or_id}: its process "
                                     f"{h.container_pid} could not be signalled")
        if signum == signal.SIGKILL:
            if monitor.wait_exit(h, timeout=10) is not None:
                self.cleanup(rec.id)
            else:
                self._still_running(rec, h)

    def restart(self, name_or_id: str, timeout: int | None = None) -> None:
        self.stop(name_or_id, timeout)
        self.start(name_or_id)

    # -- pause ----------------------------------------------------------------------------
    def pause(self, name_or_id: str) -> None:
        rec = self.get(name_or_id)
        if rec.status == "paused":
            raise Conflict(f"Container {rec.id} is already paused")
        if rec.status != "running":
            raise Conflict(f"Container {rec.id} is not running")
        self._runtime_of(rec).pause(rec.id)
        self._set_status(rec.id, "paused")
        self.emit_event("pause", rec)

    def unpause(self, name_or_id: str) -> None:
        rec = self.get(name_or_id)
        if rec.status != "paused":
            raise Conflict(f"Container {rec.id} is not paused")
        self._runtime_of(rec).resume(rec.id)
        self._set_status(rec.id, "running")
        self.emit_event("unpause", rec)

    def _set_status(self, cid: str, status: str, *, only_if: str | None = None) -> None:
        with self.db.tx() as tx:
            if only_if is None:
                tx.execute("UPDATE containers SET status=? WHERE id=?", (status, cid))
            else:
                tx.execute("UPDATE containers SET status=? WHERE id=? AND status=?",
                           (status, cid, only_if))

    # -- remove ---------------------------------------------------------------------------
    def remove(self, name_or_id: str, *, force: bool = False,
               volumes: bool = False) -> ContainerRecord:
        """``rm``; ``volumes`` (``rm -v``) also drops its anonymous volumes."""
        rec = self.get(name_or_id)
        if rec.running and not force:
            if rec.status == "paused":
                raise Conflict(f'cannot remove container "/{rec.name}": container is paused:'
                               " unpause and then stop the container before removing or "
                               "force remove")
            raise Conflict(f'cannot remove container "/{rec.name}": container is running: '
                           "stop the container before removing or force remove")
        if rec.running:
            with self.db.tx() as tx:
                tx.execute("UPDATE containers SET manual_stop=1 WHERE id=?", (rec.id,))
            h = self._handle(rec)
            if h is not None and rec.status != "restarting":
                self._signal(self._runtime_of(rec), rec, signal.SIGKILL)
                if monitor.wait_exit(h, timeout=10) is None:
                    self._still_running(rec, h)
        from ..testpoints import pause

        pause("rm-killed")
        with self._lock(rec.id):
            cur = self._reload(rec.id)
            if cur is not None:
                self._destroy(cur)
                if volumes:
                    self._release_volumes(cur)
        return rec

    # -- volume hooks (berth.volumes, imported only for containers with volumes) ----------
    def _volume_mounts(self, rec: ContainerRecord, mounts: builtins.list[dict[str, Any]]
                       ) -> builtins.list[dict[str, Any]]:
        """Create, record and seed the container's volumes (rootfs mounted); all mounts."""
        from ..volumes.hooks import attach

        return attach(self.store, rec, mounts)

    def _release_volumes(self, rec: ContainerRecord) -> None:
        """After the row is gone: its anonymous volumes go too, unless still in use."""
        if rec.config.get("HostConfig", {}).get("VolumeMounts"):
            from ..volumes.hooks import release

            release(self.store, rec)

    def _destroy(self, rec: ContainerRecord) -> None:
        """Everything of a container goes: conmon, runtime state, mount, dirs, row.

        Its processes are killed through its cgroup too, in case the runtime's state was
        lost; if one survives the row stays and the error says so.
        """
        h = self._handle(rec)
        if h is not None:
            monitor.kill_monitor(h)
        self._stop_health(rec)
        try:
            rt = self._runtime_of(rec)
            if os.path.exists(os.path.join(rt.root, rec.id)):
                rt.delete(rec.id, force=True)
        except BerthError:
            pass
        from .orphans import reap

        if h is not None and not reap(h):
            from ..errors import RuntimeFailure

            raise RuntimeFailure(f"cannot remove container {rec.id}: its process "
                                 f"{h.container_pid} could not be killed")
        net = self._net(rec)
        if net is not None:
            net.container_removed(rec)
        self._unmount(rec)
        for d in (rec.dir, rec.run_dir):
            shutil.rmtree(d, ignore_errors=True)
        with self.db.tx() as tx:
            gone = tx.execute("DELETE FROM containers WHERE id=?", (rec.id,)).rowcount
        if gone:
            self.emit_event("destroy", rec)
        for kind in ("", ".fg", ".restart"):
            try:
                os.unlink(os.path.join(self.store.runroot, "locks", rec.id + kind))
            except FileNotFoundError:
                pass

    def _stop_health(self, rec: ContainerRecord) -> None:
        """The container's health loop ends with its run (see berth.container.health)."""
        if rec.config.get("Healthcheck"):
            from . import health

            health.stop_loop(rec)

    def remove_all(self) -> None:
        """Force-remove every container and wait for their monitors (test teardown)."""
        pids = []
        for rec in self.list():
            h = self._handle(rec)
            if h is not None:
                pids.append(h.conmon_pid)
            try:
                self.remove(rec.id, force=True)
            except NotFound:
                pass
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)

    def prune(self, *, until: float | None = None,
              # () as the empty default: immutable, and label_match only iterates it
              labels: builtins.list[str] = ()  # type: ignore[assignment]
              ) -> tuple[builtins.list[str], int]:
        from .views import label_match

        removed, space = [], 0
        for rec in self.list():
            if rec.running or (until is not None and rec.created >= until):
                continue
            if not label_match(rec.labels, labels):
                continue
            size = tree_size(rec.upper)
            try:
                self.remove(rec.id)
            except (Conflict, NotFound):
                continue
            removed.append(rec.id)
            space += size
        return removed, space

    # -- rename ---------------------------------------------------------------------------
    def rename(self, old: str, new: str) -> None:
        from . import names

        rec = self.get(old)
        new = names.validate(new)
        if new == rec.name:
            raise InvalidArgument("Renaming a container with the same name as its current "
                                  "name")
        try:
            with self.db.tx() as tx:
                tx.execute("UPDATE containers SET name=? WHERE id=?", (new, rec.id))
        except sqlite3.IntegrityError:
            row = self.db.one("SELECT id FROM containers WHERE name=?", (new,))
            raise Conflict(_name_conflict(new, row["id"] if row else "")) from None
        old_name, rec.name = rec.name, new
        self.emit_event("rename", rec, oldName="/" + old_name)

    # -- events (berth.store.events: one JSON line per lifecycle step) -------------------
    def emit_event(self, action: str, rec: ContainerRecord, **extra: str) -> None:
        """Docker's container event: image, name and the container's labels as attributes."""
        attrs = {**rec.labels, "image": rec.image_name, "name": rec.name, **extra}
        self.store.events.emit("container", action, rec.id, attrs)


# -- helpers ---------------------------------------------------------------------------------
def _name_conflict(name: str, cid: str) -> str:
    return (f'Conflict. The container name "/{name}" is already in use by container "{cid}". '
            "You have to remove (or rename) that container to be able to reuse that name.")


def _cgroups_path(rec: ContainerRecord) -> str:
    """``/berth/ID``, or ``PARENT/ID`` under ``--cgroup-parent`` (absolute or relative)."""
    parent = rec.config.get("HostConfig", {}).get("CgroupParent") or "/berth"
    return "/" + os.path.join(parent.strip("/"), rec.id)


def _log_args(rec: ContainerRecord) -> dict[str, Any]:
    """conmon's log driver and size cap from HostConfig.LogConfig (default: none given)."""
    log = rec.config.get("HostConfig", {}).get("LogConfig") or {}
    if log.get("Type") == "none":
        return {"log_driver": "none"}
    if not log.get("Config"):
        return {}
    from .host_options import log_size_max

    return {"log_size_max": log_size_max(log)}


def _ensure_bind_source(src: str) -> None:
    """Docker creates a missing ``-v`` source as a directory; an existing file stays a
    file (the runtime then binds it onto a file). ``--mount`` sources were checked to
    exist just before, at create, so this only ever creates ``-v`` sources."""
    if os.path.lexists(src):
        return
    try:
        os.makedirs(src, exist_ok=True)
    except OSError as e:
        raise InvalidArgument(f"error while creating mount source path '{src}': "
                              f"mkdir {src}: {(e.strerror or str(e)).lower()}") from None


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""
