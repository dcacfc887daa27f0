"""Engine: the one facade over berth's services, and the Python API people import.

    from berth import Engine
    eng = Engine(root="/tmp/r", runroot="/tmp/rr")
    eng.import_image(open("rootfs.tar", "rb"), "busybox:latest")
    print([i.tags for i in eng.images()])

It composes the services (images, containers, registry, build); it never prints and never
parses argv. Services are created on first use so a command pays only for what it touches.
"""

from __future__ import annotations

import functools
import os
from typing import Any, BinaryIO

from berth.images.records import ImageRecord, RemoveResult
from berth.store.store import Store


class Engine:
    def __init__(self, root: str | None = None, runroot: str | None = None) -> None:
        self.store = Store(root, runroot)
        self.store.clean_tmp()

    @property
    def root(self) -> str:
        return self.store.root

    @property
    def runroot(self) -> str:
        return self.store.runroot

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- images -------------------------------------------------------------------------
    @functools.cached_property
    def image_service(self):  # type: ignore[no-untyped-def]
        from berth.images.service import ImageService

        return ImageService(self.store)

    def images(self, *, all: bool = False,  # noqa: A002 - docker's flag name
               filters: dict[str, list[str]] | None = None) -> list[ImageRecord]:
        """``docker images``: newest first; intermediate images only with ``all``."""
        from berth.images.filters import build_predicate

        svc = self.image_service
        recs = svc.list()
        parents = svc.parent_ids()
        pred = build_predicate(filters or {}, svc.get)
        return [r for r in recs if (all or not svc.is_intermediate(r, parents)) and pred(r)]

    def image(self, name: str) -> ImageRecord:
        return self.image_service.get(name)

    def image_inspect(self, name: str) -> dict[str, Any]:
        from berth.images.views import inspect

        return inspect(self.image_service, self.image_service.get(name))

    def history(self, name: str) -> list[dict[str, Any]]:
        from berth.images.views import history

        return history(self.image_service, self.image_service.get(name))

    def tag(self, source: str, target: str) -> None:
        self.image_service.tag(source, target)

    def rmi(self, names: list[str], *, force: bool = False,
            prune_parents: bool = True) -> tuple[RemoveResult, list[Exception]]:
        return self.image_service.remove(names, force=force, prune_parents=prune_parents)

    def image_prune(self, *, all: bool = False,  # noqa: A002
                    filters: dict[str, list[str]] | None = None) -> RemoveResult:
        from berth.units import parse_timestamp

        filters = filters or {}
        until = min((parse_timestamp(v) for v in filters.get("until", [])), default=None)
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        return self.image_service.prune(all_unused=all, until=until, label_filters=labels)

    def import_image(self, src: BinaryIO, ref: str | None = None, *,
                     changes: list[str] = (), message: str = "") -> str:  # type: ignore[assignment]
        """A rootfs tarball becomes a one-layer image; returns the image ID."""
        from berth.images.archives import import_rootfs

        return import_rootfs(self.store, src, ref=ref, changes=changes, message=message).image_id

    def load(self, path_or_stream: str | BinaryIO):  # type: ignore[no-untyped-def]
        """``docker load`` from a path or a stream (spooled to the store's tmp dir)."""
        from berth.images.archives import load, spool

        if isinstance(path_or_stream, str):
            return load(self.store, path_or_stream)
        path = spool(self.store, path_or_stream)
        try:
            return load(self.store, path)
        finally:
            os.unlink(path)

    def save(self, names: list[str], out: BinaryIO, *, format: str = "docker-archive") -> None:  # noqa: A002
        """``docker save`` of one or more images (by name keeps that tag; by ID no tag)."""
        from berth.images.archives import save
        from berth.oci import reference

        chosen: dict[str, list[str]] = {}
        svc = self.image_service
        for name in names:
            image_id = svc.resolve(name)
            tags = chosen.setdefault(image_id, [])
            if svc._by_reference(name) == image_id:
                ref = reference.parse(name).with_default_tag()
                if ref.tag and ref.familiar not in tags:
                    tags.append(ref.familiar)
        save(self.store, list(chosen.items()), out, fmt=format)

    # -- system -------------------------------------------------------------------------
    def system_check(self, *, repair: bool = False):  # type: ignore[no-untyped-def]
        from berth.images.check import check

        return check(self.store, repair=repair)

    def system_boot(self):  # type: ignore[no-untyped-def]
        """After a reboot: start the containers whose restart policy wants them running
        (see :mod:`berth.container.boot`); returns a ``BootResult``."""
        from berth.container.boot import boot

        return boot(self.container_service)

    def df(self) -> list[dict[str, Any]]:
        """``system df`` rows: Images, Containers, Local Volumes, Build Cache."""
        recs = self.image_service.list()
        used = {r["image_id"] for r in self.store.db.query("SELECT image_id FROM containers")}
        # shared layers are counted once, as Docker does
        layer_rows = self.store.db.query("SELECT chain_id, size FROM layers")
        total = sum(r["size"] for r in layer_rows)
        active_layers = {r["chain_id"] for r in self.store.db.query(
            "SELECT DISTINCT chain_id FROM image_layers WHERE image_id IN "
            "(SELECT image_id FROM containers)")}
        active_size = sum(r["size"] for r in layer_rows if r["chain_id"] in active_layers)
        n_cont = len(self.store.db.query("SELECT id FROM containers"))
        n_running = len(self.store.db.query(
            "SELECT id FROM containers WHERE status IN ('running','paused','restarting')"))
        return [
            {"Type": "Images", "TotalCount": len(recs), "Active": len(used & {r.id for r in recs}),
             "Size": total, "Reclaimable": total - active_size},
            {"Type": "Containers", "TotalCount": n_cont, "Active": n_running, "Size": 0,
             "Reclaimable": 0},
            self.volume_df(),
            self.build_cache_usage(),
        ]

    def info(self) -> dict[str, Any]:
        from berth import __version__

        db = self.store.db
        counts = {t: db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]
                  for t in ("images", "containers", "layers")}
        running = db.one("SELECT COUNT(*) AS n FROM containers WHERE status='running'")["n"]
        return {
            "ServerVersion": __version__,
            "Root": self.root,
            "RunRoot": self.runroot,
            "Driver": "overlay",
            "Images": counts["images"],
            "Layers": counts["layers"],
            "Containers": counts["containers"],
            "ContainersRunning": running,
            "ContainersStopped": counts["containers"] - running,
            "DefaultNetwork": "bridge",
            "OperatingSystem": _os_name(),
            "KernelVersion": os.uname().release,
            "Architecture": os.uname().machine,
            "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
            **self._container_info(),
        }

    def _container_info(self) -> dict[str, Any]:
        rt = self.runtime_info()
        warnings = [rt["RuntimeNotice"]] if rt.get("RuntimeNotice") else []
        warnings += self._network_warnings()
        return {"Runtime": rt["Runtime"], "DefaultRuntime": rt["Runtime"],
                "Warnings": warnings}

    # -- registries ---------------------------------------------------------------------------
    def pull(self, name: str, *, platform: str | None = None, all_tags: bool = False,
             tls_verify: bool = True, progress: Any = None,
             max_concurrent: int = 3) -> list[Any]:
        """``docker pull``: returns one :class:`~berth.registry.client.pull.PullResult` per tag."""
        from berth.registry.client.pull import pull

        return pull(self.store, name, platform=platform, all_tags=all_tags,
                    tls_verify=tls_verify, progress=progress, max_concurrent=max_concurrent)

    def push(self, name: str, *, all_tags: bool = False, tls_verify: bool = True,
             progress: Any = None, max_concurrent: int = 3,
             compression_format: str | None = None,
             compression_level: int | None = None) -> list[Any]:
        """``docker push``: returns one :class:`~berth.registry.client.push.PushResult` per tag.

        Layers stored uncompressed go out gzip-compressed unless ``compression_format``
        (``gzip``/``zstd``) says otherwise; compressed layers go as they are unless a
        different format is asked for.
        """
        from berth.registry.client.push import push
        from berth.registry.client.push_layers import Compression

        return push(self.store, name, all_tags=all_tags, tls_verify=tls_verify,
                    progress=progress, max_concurrent=max_concurrent,
                    compression=Compression(compression_format, compression_level))

    def login(self, server: str | None, username: str, password: str, *,
              tls_verify: bool = True) -> str:
        """Verify credentials against the registry and store them; returns its domain."""
        from berth.registry.client.login import login

        return login(server, username, password, root=self.root, tls_verify=tls_verify)

    def logout(self, server: str | None) -> tuple[str, bool]:
        """Forget stored credentials: (domain, whether there were any)."""
        from berth.registry.client.login import logout

        return logout(server)


    # -- containers ---------------------------------------------------------------------
    @functools.cached_property
    def container_service(self):  # type: ignore[no-untyped-def]
        from berth.container.service import ContainerService

        return ContainerService(self.store, self.image_service)

    def _image_for_run(self, name: str, notify: Any = None) -> str:
        """Image ID for ``run``/``create``; pulls a missing image when pull exists (Docker)."""
        from berth.errors import NotFound
        from berth.oci import reference

        try:
            return self.image_service.resolve(name)
        except NotFound:
            pass
        # not stored: it must be a well-formed reference before we say we will pull it
        familiar = reference.parse(name).with_default_tag().familiar
        if notify is not None:
            notify(f"Unable to find image '{familiar}' locally")
        pull = getattr(self, "pull", None)
        if pull is None:
            raise NotFound(f"No such image: {familiar}", exit_code=125)
        pull(name)
        return self.image_service.resolve(name)

    def container_create(self, opts: Any, *, notify: Any = None, keep_mounted: bool = False):  # type: ignore[no-untyped-def]
        """``create``: a container row, its dirs and OCI bundle (nothing runs yet)."""
        image_id = self._image_for_run(opts.image, notify)
        return self.container_service.create(opts, image_id, keep_mounted=keep_mounted)

    def container_run(self, opts: Any, *, notify: Any = None, stdin_fd: int | None = None,
                      stdout_fd: int = 1, stderr_fd: int = 2):  # type: ignore[no-untyped-def]
        """``run``: create + start; foreground returns ``(record, exit code or None)``."""
        from berth.errors import PortAllocated

        svc = self.container_service
        rec = self.container_create(opts, notify=notify, keep_mounted=True)
        try:
            if opts.detach:
                svc.start(rec.id)
                return rec, None
            code = svc.run_attached(rec, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                                    stderr_fd=stderr_fd)
        except BaseException as e:
            # A host port taken between create's check and the start (parallel runs on one
            # port) ends like the check itself catching it: no Created container is left.
            if (opts.auto_remove or isinstance(e, PortAllocated)) and \
                    svc.find(rec.id) is not None:
                try:
                    svc.remove(rec.id, force=True, volumes=True)
                except Exception:  # noqa: BLE001 - the start's error is the one to report
                    pass
            raise
        return rec, code

    def container(self, name: str):  # type: ignore[no-untyped-def]
        return self.container_service.get(name)

    def containers(self, *, all: bool = False,  # noqa: A002 - docker's flag name
                   filters: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
        """``ps``: newest first; only running ones unless ``all`` (or a status filter)."""
        from berth.container.views import build_filter

        svc = self.container_service
        filters = filters or {}

        def image_ids(name: str) -> set[str]:
            try:
                return {self.image_service.resolve(name)}
            except Exception:  # noqa: BLE001 - an unknown ancestor matches nothing
                return set()

        pred = build_filter(filters, svc.get, image_ids)
        show_all = all or "status" in filters or "exited" in filters
        return [r for r in svc.list() if (show_all or r.running) and pred(r)]

    def container_start(self, name: str):  # type: ignore[no-untyped-def]
        return self.container_service.start(name)

    def container_start_attached(self, name: str, *, stdin_fd: int | None = None,
                                 stdout_fd: int = 1, stderr_fd: int = 2) -> int | None:
        svc = self.container_service
        rec = svc.get(name)
        if rec.running:
            return svc.attach(name, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                              stderr_fd=stderr_fd)
        return svc.run_attached(rec, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                                stderr_fd=stderr_fd)

    def container_stop(self, name: str, timeout: int | None = None) -> None:
        self.container_service.stop(name, timeout)

    def container_restart(self, name: str, timeout: int | None = None) -> None:
        self.container_service.restart(name, timeout)

    def container_kill(self, name: str, signal: str = "KILL") -> None:
        self.container_service.kill(name, signal)

    def container_remove(self, name: str, *, force: bool = False,  # type: ignore[no-untyped-def]
                         volumes: bool = False):
        """``rm``; ``volumes`` (``rm -v``) also removes the container's anonymous volumes."""
        return self.container_service.remove(name, force=force, volumes=volumes)

    def container_pause(self, name: str) -> None:
        self.container_service.pause(name)

    def container_unpause(self, name: str) -> None:
        self.container_service.unpause(name)

    def container_rename(self, old: str, new: str) -> None:
        self.container_service.rename(old, new)

    def container_wait(self, name: str) -> int:
        return self.container_service.wait(name)

    def container_cleanup(self, cid: str) -> None:
        """conmon's exit command: record the exit, ``--rm``, restart policy."""
        self.container_service.cleanup(cid)

    def container_attach(self, name: str, **kw: Any) -> int | None:
        return self.container_service.attach(name, **kw)

    def container_exec(self, name: str, cmd: list[str], **kw: Any) -> int | None:
        return self.container_service.exec(name, cmd, **kw)

    def container_logs(self, name: str, *, follow: bool = False, tail: int | None = None,
                       since: float | None = None, until: float | None = None):  # type: ignore[no-untyped-def]
        """(stream, datetime, line) records; with ``follow`` until the container exits."""
        from datetime import datetime, timezone

        from berth.container.logs import read_logs

        svc = self.container_service
        rec = svc.get(name)
        tz = timezone.utc
        return read_logs(rec.log_path, follow=follow, tail=tail,
                         since=datetime.fromtimestamp(since, tz) if since else None,
                         until=datetime.fromtimestamp(until, tz) if until else None,
                         stop=svc.is_done(rec))

    def container_inspect(self, name: str) -> dict[str, Any]:
        from berth.container.views import inspect

        rec = self.container_service.get(name)
        lowers = [self.store.layers.diff_dir(r["chain_id"]) for r in
                  reversed(self.image_service.layers(rec.image_id))]
        data = inspect(rec, lowers)
        data["NetworkSettings"] = self.network_service.settings(rec)
        return data

    def container_mount(self, name: str) -> str:
        """Mount a container's rootfs (stopped ones too); returns the merged dir."""
        return self.container_service.mount(name)

    def container_prune(self, *, filters: dict[str, list[str]] | None = None
                        ) -> tuple[list[str], int]:
        """Remove stopped containers: (removed IDs, reclaimed bytes)."""
        from berth.units import parse_timestamp

        filters = filters or {}
        until = min((parse_timestamp(v) for v in filters.get("until", [])), default=None)
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        return self.container_service.prune(until=until, labels=labels)

    def remove_all_containers(self) -> None:
        self.container_service.remove_all()

    def runtime_info(self) -> dict[str, Any]:
        """Which OCI runtime ``run`` uses here, and why (crun fallback notice)."""
        try:
            rt = self.container_service.runtime(None)
        except Exception as e:  # noqa: BLE001 - info must still print
            return {"Runtime": "none", "RuntimeNotice": str(e)}
        notice = rt.notice
        if notice is None and rt.name == "runc":
            from berth.container import cgroups

            if cgroups.hybrid_v2_controllers():
                notice = ("crun refuses this host's hybrid cgroup layout; using runc")
        return {"Runtime": rt.name, "RuntimePath": rt.path, "RuntimeNotice": notice}

    # -- container files and stats ---------------------------------------------------------
    def _lowers(self, image_id: str) -> list[str]:
        """The image's unpacked layer dirs, topmost first (overlay's lowerdir order)."""
        return [self.store.layers.diff_dir(r["chain_id"])
                for r in reversed(self.image_service.layers(image_id))]

    def _rootfs(self, name: str):  # type: ignore[no-untyped-def]
        """(record, merged dir): stopped containers get their rootfs mounted (until rm)."""
        rec = self.container(name)
        return rec, self.container_mount(rec.id)

    def container_cp(self, name: str, path: str, host: "str | BinaryIO", *,
                     to_container: bool, follow_link: bool = False, archive: bool = False):  # type: ignore[no-untyped-def]
        """``cp``: ``host`` is a host path, or a binary stream for ``-`` (a tar either way).

        Returns a :class:`~berth.container.copy.CopyResult` (bytes of tar moved).
        """
        from berth.container import copy as cp

        rec, merged = self._rootfs(name)
        if to_container:
            if isinstance(host, str):
                return cp.copy_to_container(merged, host, path, follow=follow_link,
                                            archive=archive, container=name)
            return cp.extract_to_container(merged, host, path, archive=archive, container=name)
        if isinstance(host, str):
            return cp.copy_from_container(merged, path, host, follow=follow_link,
                                          archive=archive, container=name)
        return cp.archive_from_container(merged, path, host, follow=follow_link, container=name)

    def container_diff(self, name: str):  # type: ignore[no-untyped-def]
        """``diff``: sorted :class:`~berth.container.diff.Change` list (A/C/D, path)."""
        from berth.container.diff import changes, mount_targets

        rec = self.container(name)
        return changes(rec.upper, self._lowers(rec.image_id),
                       exclude=mount_targets(rec.bundle))

    def container_export(self, name: str, out: BinaryIO | None = None, *,
                         path: str | None = None) -> int:
        """``export`` to a stream, or atomically to the file ``path``; returns tar bytes."""
        from berth.container.export import export_to_file, export_tree

        _, merged = self._rootfs(name)
        if path is not None:
            return export_to_file(merged, path)
        assert out is not None
        return export_tree(merged, out)

    def container_stats(self, names: list[str] | None = None, *, all: bool = False,  # noqa: A002
                        interval: float = 0.5) -> list[dict[str, Any]]:
        """``stats --no-stream`` rows (record, cpu %, sample); running only unless named/all."""
        from berth.container.stats import collect

        if names:
            recs = [self.container(n) for n in names]
        else:
            recs = [r for r in self.container_service.list() if all or r.running]
        return collect(recs, interval)

    def container_top(self, name: str, ps_args: list[str] | None = None
                      ) -> tuple[list[str], list[list[str]]]:
        """``top``: (titles, rows) of the container's processes."""
        from berth.container.top import container_pids, top

        rec = self.container(name)
        pid = rec.pid if rec.running else None
        return top(container_pids(pid, rec.name), ps_args)

    def commit(self, name: str, ref: str | None = None, *, author: str = "",
               message: str = "", changes: list[str] = (),  # type: ignore[assignment]
               pause: bool = True) -> str:
        """``commit``: the container's upper dir becomes a new image; returns its ID."""
        from berth.container.commit import commit
        from berth.container.diff import mount_targets, placeholders
        from berth.images.ingest import parse_tag

        tags = [parse_tag(ref)] if ref else []
        rec = self.container(name)
        svc = self.container_service
        skip = placeholders(rec.upper, self._lowers(rec.image_id), mount_targets(rec.bundle))
        result = commit(
            self.store, rec, base_config=self.store.content.read(rec.image_id),
            base_layers=self.image_service.layers(rec.image_id), tags=tags, author=author,
            message=message, changes=list(changes), pause=pause,
            runtime_for=lambda r: svc.runtime(
                r.config.get("HostConfig", {}).get("Runtime") or r.runtime),
            exclude=(lambda rel: rel in skip) if skip else None)
        return result.image_id

    # -- volumes ----------------------------------------------------------------------------
    @functools.cached_property
    def volume_service(self):  # type: ignore[no-untyped-def]
        from berth.volumes.service import VolumeService

        return VolumeService(self.store)

    def volume_create(self, name: str | None = None, *, driver: str = "local",
                      labels: dict[str, str] | None = None,
                      options: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        """``volume create``: the volume (an existing one of that name is returned)."""
        return self.volume_service.create(name, driver=driver, labels=labels,
                                          options=options)[0]

    def volumes(self, *, filters: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
        """``volume ls``: by name; filters dangling, name (substring), label, driver."""
        from berth.volumes.filters import build_predicate

        svc = self.volume_service
        pred = build_predicate(filters or {}, svc.in_use)
        return [v for v in svc.list() if pred(v)]

    def volume_inspect(self, name: str) -> dict[str, Any]:
        from berth.errors import NotFound

        rec = self.volume_service.find(name)
        if rec is None:
            raise NotFound(f"No such volume: {name}")
        return rec.inspect()

    def volume_remove(self, name: str, *, force: bool = False) -> bool:
        """``volume rm``: refused while any container (running or not) uses it."""
        return self.volume_service.remove(name, force=force)

    def volume_prune(self, *, all: bool = False,  # noqa: A002 - docker's flag name
                     filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Unused volumes (anonymous only unless ``all``): (removed names, bytes freed)."""
        filters = filters or {}
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        if filters.get("all"):
            all = any(v.lower() in ("1", "true") for v in filters["all"])  # noqa: A001
        return self.volume_service.prune(all_unused=all, labels=labels)

    def volume_df(self) -> dict[str, Any]:
        """The ``system df`` Local Volumes row (no row read when there are no volumes)."""
        row = self.store.db.one("SELECT COUNT(*) AS n FROM volumes")
        if not row or not row["n"]:
            return {"Type": "Local Volumes", "TotalCount": 0, "Active": 0, "Size": 0,
                    "Reclaimable": 0}
        svc = self.volume_service
        used = svc.in_use()
        recs = svc.list()
        sizes = {v.name: svc.size(v) for v in recs}
        return {"Type": "Local Volumes", "TotalCount": len(recs),
                "Active": sum(1 for v in recs if v.name in used),
                "Size": sum(sizes.values()),
                "Reclaimable": sum(s for n, s in sizes.items() if n not in used)}

    # -- networks ---------------------------------------------------------------------------
    @functools.cached_property
    def network_service(self):  # type: ignore[no-untyped-def]
        from berth.network.service import NetworkService

        return NetworkService(self.store)

    def network_create(self, name: str, **kw: Any):  # type: ignore[no-untyped-def]
        """``network create``: a bridge network (subnet chosen unless given)."""
        return self.network_service.create(name, **kw)

    def networks(self, *, filters: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
        """``network ls``: bridge, host, none and user networks; Docker's filters."""
        from berth.network.filters import build_predicate

        pred = build_predicate(filters or {})
        return [n for n in self.network_service.list() if pred(n)]

    def network_inspect(self, name: str) -> dict[str, Any]:
        return self.network_service.inspect(name)

    def network_remove(self, name: str):  # type: ignore[no-untyped-def]
        return self.network_service.remove(name)

    def network_prune(self, *, filters: dict[str, list[str]] | None = None) -> list[str]:
        """User networks no container is attached to: their names."""
        from berth.units import parse_timestamp

        filters = filters or {}
        until = min((parse_timestamp(v) for v in filters.get("until", [])), default=None)
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        return self.network_service.prune(until=until, labels=labels)

    def network_connect(self, network: str, container: str, *,
                        aliases: list[str] = (), ip: str | None = None) -> None:  # type: ignore[assignment]
        rec = self.container(container)
        self.network_service.connect(network, rec, aliases=list(aliases), ip=ip)

    def network_disconnect(self, network: str, container: str, *,
                           force: bool = False) -> None:
        rec = self.container(container)
        self.network_service.disconnect(network, rec)

    def container_ports(self, name: str):  # type: ignore[no-untyped-def]
        """Published ports of a running container (Engine API ``Ports`` entries)."""
        rec = self.container(name)
        return self.network_service.display_ports(rec) if self._has_netns(rec) else []

    def ports_column(self, rec: Any) -> str:
        """``ps`` PORTS for one container record (empty unless it runs on a network)."""
        from berth.network.ports import format_ports_column

        if not self._has_netns(rec) or rec.status not in ("running", "paused"):
            return ""
        return format_ports_column(self.network_service.display_ports(rec))

    @staticmethod
    def _has_netns(rec: Any) -> bool:
        mode = rec.config.get("HostConfig", {}).get("NetworkMode") or "none"
        return mode not in ("none", "host") and not mode.startswith("container:")

    def remove_all_networks(self) -> None:
        """Every network of this store and its bridge/rules (test teardown, reset)."""
        if self.store.db.one("SELECT 1 FROM networks LIMIT 1") is not None:
            self.network_service.remove_all()

    def _network_warnings(self) -> list[str]:
        try:
            with open("/proc/sys/net/ipv4/ip_forward") as f:
                on = f.read().strip() == "1"
        except OSError:
            on = True
        return [] if on else ["IPv4 forwarding is disabled: containers reach the host and "
                              "each other, but not beyond the host (net.ipv4.ip_forward=0; "
                              "berth enables it on 'network create')"]

    # -- build ------------------------------------------------------------------------------
    def build(self, context: "str | BinaryIO | None", *, dockerfile: str = "Dockerfile",
              dockerfile_text: str | None = None, progress: Any = None,
              **options: Any):  # type: ignore[no-untyped-def]
        """``build``: a Dockerfile and a context become an image; a BuildResult.

        ``context`` is a directory, a tar stream, or None (``dockerfile_text`` is then the
        whole input, as ``berth build - < Dockerfile``). ``options`` are
        :class:`~berth.build.executor.BuildOptions` fields (tags, build_args, target,
        no_cache, pull, labels, secrets, network, source_date_epoch).
        """
        from berth.build.context import BuildContext
        from berth.build.executor import BuildOptions, BuildSession

        name = "Dockerfile" if dockerfile_text is not None and dockerfile in ("-", "") \
            else dockerfile
        if context is None:
            ctx = BuildContext.from_dockerfile_only(dockerfile_text or "")
        elif isinstance(context, str):
            ctx = BuildContext.from_dir(context, dockerfile_name=os.path.basename(name))
        else:
            ctx = BuildContext.from_tar(context, os.path.basename(name), tmp_dir=self.store.tmp)
        if dockerfile_text is not None:
            ctx.dockerfile_text = dockerfile_text
        try:
            session = BuildSession(
                self.store, self.image_service, lambda: self.container_service.runtime(None),
                lambda ref: self.pull(ref), ctx, BuildOptions(dockerfile=name, **options),
                progress)
            return session.run()
        finally:
            ctx.close()

    def builder_prune(self, *, all: bool = False):  # type: ignore[no-untyped-def]  # noqa: A002
        """``builder prune``: unreachable build cache (everything with ``all``)."""
        from berth.build.cache import BuildCache
        from berth.build.executor import cache_mounts_dir

        return BuildCache(self.store).prune(all_entries=all,
                                            mounts_dir=cache_mounts_dir(self.store))

    def build_cache_usage(self) -> dict[str, Any]:
        """``system df``'s Build Cache row."""
        from berth.build.cache import BuildCache

        return {"Type": "Build Cache", **BuildCache(self.store).usage()}


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return os.uname().sysname
