"""Engine: the one facade over berth's services, and the Python API people import.

    from berth import Engine
    eng = Engine(root="/tmp/r", runroot="/tmp/rr")
    eng.import_image(open("rootfs.tar", "rb"), "busybox:latest")
    print([i.tags for i in eng.images()])

It composes the services (images, containers, registry, build); it never prints and never
parses argv. Services are created on first use so a command pays only for what it touches.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from datetime import UTC
from typing import Any, BinaryIO

from berth.config import StorageSection
from berth.engine_api import EngineApiMixin
from berth.images.records import ImageRecord, RemoveResult
from berth.store.store import Store

_NO_STORAGE_LIMITS = StorageSection()


class Engine(EngineApiMixin):
    def __init__(self, root: str | None = None, runroot: str | None = None) -> None:
        if os.geteuid() != 0:  # rootless: join the store's user namespace (berth.rootless)
            from berth.rootless import enter

            root, runroot = enter(root, runroot)
        self.store = Store(root, runroot)
        self.store.clean_tmp()
        self._adding_depth = 0
        self._gone = False
        if self.store.db.one("SELECT 1 FROM store_meta WHERE key='layer_format'") is None:
            from berth.images.onecopy import convert_store

            convert_store(self.store)  # a store from before one-copy layers, or a new one
        self._sweep_dead_build_steps()

    def _sweep_dead_build_steps(self) -> None:
        """Free the network seat (address, veth, netns) of a RUN step whose build was killed.

        A step's seat is a file under ``<runroot>/build-net/<network>/``; this looks for one
        with two ``listdir`` calls and loads the network code only when there is one.
        """
        top = os.path.join(self.store.runroot, "build-net")
        try:
            busy = any(os.listdir(os.path.join(top, n)) for n in os.listdir(top))
        except OSError:
            return
        if busy:
            from berth.build.stepnet import sweep

            sweep(self.store)

    @property
    def root(self) -> str:
        return self.store.root

    @property
    def runroot(self) -> str:
        return self.store.runroot

    def close(self) -> None:
        if self._gone:
            return  # system reset removed the store: closing must not write into it again
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- storage budget -----------------------------------------------------------------
    @property
    def config(self):  # type: ignore[no-untyped-def]
        """berth.toml (host file, then the root's), re-read when either changes."""
        from berth import config

        return config.current(self.root)

    @contextlib.contextmanager
    def _adding(self) -> Iterator[None]:
        """Around a command that adds data (pull, build, load, import, commit, create).

        With a budget set: before, a store at or over it is collected and the command
        refused (nothing written) when even that cannot make room; after, a store left
        over it is collected to 90%. Nested calls (build pulling its base) check once.
        Without a budget this costs two stats of config files.
        """
        if self._adding_depth or self.config.storage == _NO_STORAGE_LIMITS:
            self._adding_depth += 1
            try:
                yield
            finally:
                self._adding_depth -= 1
            return
        from berth.images import gc

        self._adding_depth += 1
        try:
            use = gc.store_use(self.store)
            limit = gc.budget(self.store, self.config, use)
            if limit is not None and use >= limit:
                self._auto_gc(wait=True)
                use = gc.store_use(self.store)
                if use >= limit:
                    from berth.errors import BerthError
                    from berth.units import human_size

                    raise BerthError(
                        f"storage budget of {gc.budget_text(self.config)} reached: "
                        f"{human_size(use)} is in use by containers and tagged images; "
                        "remove some or raise storage.max_size")
            yield
            use = gc.store_use(self.store)
            limit = gc.budget(self.store, self.config, use)
            if limit is not None and use > limit:
                self._auto_gc(wait=False)
        finally:
            self._adding_depth -= 1

    def _auto_gc(self, *, wait: bool) -> None:
        """A GC pass under the exclusive lock; skipped when busy unless ``wait``."""
        from berth.images.gc import Collector
        from berth.store.locks import flock, try_flock

        lock = flock(self.store.lock_path, exclusive=True) if wait else \
            try_flock(self.store.lock_path, exclusive=True)
        with lock as got:
            if got is False:
                return  # another command ingests now; the next one collects
            Collector(self.store, self.config, self._gc_remove_container).run()

    def _gc_remove_container(self, cid: str) -> int:
        row = self.store.db.one("SELECT size_rw FROM containers WHERE id=?", (cid,))
        try:
            self.container_service.remove(cid)
        except Exception:  # noqa: BLE001 - taken or started meanwhile: not removed
            return 0
        return int(row["size_rw"] or 0) if row else 0

    def system_gc(self, *, dry_run: bool = False):  # type: ignore[no-untyped-def]
        """``system gc``: the automatic pass by hand (everything collectable when no budget
        is set); a :class:`~berth.images.gc.GcResult`."""
        from berth.images.gc import Collector

        with self.store.collecting():
            return Collector(self.store, self.config, self._gc_remove_container).run(
                dry_run=dry_run, force=True)

    def storage_info(self) -> dict[str, Any]:
        """``info``'s storage lines: budget, use and the last GC."""
        from berth.images import gc

        use = gc.store_use(self.store)
        limit = gc.budget(self.store, self.config, use)
        return {"StorageBudget": gc.budget_text(self.config) or "none",
                "StorageBudgetBytes": limit, "StorageUsed": use,
                "LastGC": gc.last_gc(self.store)}

    def _drop_unpacked_blobs(self) -> None:
        """Tar blobs of layers unpacked while the shared lock was held (one copy kept)."""
        if self.store.pending_drops:
            from berth.images.onecopy import drop_pending

            drop_pending(self.store)

    def _ancestry(self, image_id: str) -> list[str]:
        """An image and its parents (build steps, the base image), nearest first."""
        out: list[str] = []
        cur: str | None = image_id
        while cur and cur not in out:
            out.append(cur)
            row = self.store.db.one("SELECT parent FROM images WHERE id=?", (cur,))
            cur = row["parent"] if row else None
        return out

    def _touch(self, *image_ids: str) -> None:
        """Record use of images (GC's least-recently-used order).

        To the minute: a write (an fsync'd transaction) happens only when the recorded use
        is older than that, so a burst of ``run``s pays one read each, not one commit.
        """
        import time

        now = time.time()
        ids = [i for i in image_ids if i]
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        stale = [r["id"] for r in self.store.db.query(
            f"SELECT id FROM images WHERE id IN ({marks}) AND "
            f"(last_used IS NULL OR last_used < ?)", [*ids, now - 60])]
        if stale:
            with self.store.db.tx() as tx:
                tx.executemany("UPDATE images SET last_used=? WHERE id=?",
                               [(now, i) for i in stale])

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
        self._image_event("tag", target)
        self._touch(self.image_service.resolve(target))

    def rmi(self, names: list[str], *, force: bool = False,
            prune_parents: bool = True) -> tuple[RemoveResult, list[Exception]]:
        result = self.image_service.remove(names, force=force, prune_parents=prune_parents)
        self._removed_events(result[0])
        return result

    def image_prune(self, *, all: bool = False,  # noqa: A002
                    filters: dict[str, list[str]] | None = None) -> RemoveResult:
        from berth.units import parse_timestamp

        filters = filters or {}
        until = min((parse_timestamp(v) for v in filters.get("until", [])), default=None)
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        result = self.image_service.prune(all_unused=all, until=until, label_filters=labels)
        self._removed_events(result)
        return result

    def import_image(self, src: BinaryIO, ref: str | None = None, *,
                     changes: list[str] = (), message: str = "") -> str:  # type: ignore[assignment]
        """A rootfs tarball becomes a one-layer image; returns the image ID."""
        from berth.images.archives import import_rootfs

        with self._adding():
            image_id = import_rootfs(self.store, src, ref=ref, changes=changes,
                                     message=message).image_id
        self._image_event("import", image_id)
        return image_id

    def load(self, path_or_stream: str | BinaryIO):  # type: ignore[no-untyped-def]
        """``docker load`` from a path or a stream (spooled to the store's tmp dir)."""
        from berth.images.archives import load, spool

        with self._adding():
            if isinstance(path_or_stream, str):
                result = load(self.store, path_or_stream)
            else:
                path = spool(self.store, path_or_stream)
                try:
                    result = load(self.store, path)
                finally:
                    os.unlink(path)
        for r in result.images:
            self._image_event("load", r.tagged[0] if r.tagged else r.image_id)
        return result

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
        for name in names:
            self._image_event("save", name)

    # -- system -------------------------------------------------------------------------
    def system_check(self, *, repair: bool = False):  # type: ignore[no-untyped-def]
        from berth.images.check import check

        return check(self.store, repair=repair)

    def system_reset(self) -> dict[str, int]:
        """``system reset``: every container, image, volume, network and cache entry of the
        store, and the host state made for them (bridges, rules, mounts, namespaces,
        processes), then the root and run root themselves. The engine is closed after.

        Services take down what they know (so rules and bridges are found by owner);
        :mod:`berth.store.wipe` then sweeps by path whatever no row remembers.
        """
        from berth.store import wipe

        db = self.store.db
        counts = {t: db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]
                  for t in ("containers", "images", "volumes", "networks", "build_cache")}
        paths = [self.root, self.runroot]
        with self.store.collecting():
            self.remove_all_containers()
            wipe.stop_processes(paths)
            self.remove_all_networks()
            wipe.unmount_all(paths)
            self.store.db.close()
            self._gone = True
            self._stop_pause()
            wipe.remove_store_dirs(self.root, self.runroot)
        return counts

    def _stop_pause(self) -> None:
        """Rootless: end the store's pause process, as Podman's ``system reset``/``migrate``."""
        from berth.procs import rootless

        if rootless():
            from berth.rootless.userns import stop

            stop(self.store.runroot)

    def system_boot(self):  # type: ignore[no-untyped-def]
        """After a reboot: start the containers whose restart policy wants them running
        (see :mod:`berth.container.boot`); returns a ``BootResult``."""
        from berth.container.boot import boot

        return boot(self.container_service)

    def df(self) -> list[dict[str, Any]]:
        """``system df`` rows: Images, Containers, Local Volumes, Build Cache.

        Sizes are disk bytes kept in the database (layers when written, a container's
        writable layer when it exits): no tree is walked, whatever the store's size.
        """
        from berth.images.usage import images_usage

        iu = images_usage(self.store)
        c = self.store.db.one(
            "SELECT COUNT(*) AS n, COALESCE(SUM(status IN ('running','paused','restarting')),"
            " 0) AS running, COALESCE(SUM(size_rw), 0) AS size, COALESCE(SUM(CASE WHEN status"
            " IN ('running','paused','restarting') THEN 0 ELSE size_rw END), 0) AS idle "
            "FROM containers")
        assert c is not None
        return [
            {"Type": "Images", "TotalCount": iu.total_count, "Active": iu.active,
             "Size": iu.disk, "Reclaimable": iu.reclaimable},
            {"Type": "Containers", "TotalCount": c["n"], "Active": c["running"],
             "Size": c["size"], "Reclaimable": c["idle"]},
            self.volume_df(),
            self.build_cache_usage(),
        ]

    def df_verbose(self) -> dict[str, Any]:
        """``system df -v``: the four tables (Docker's ``DiskUsage`` object, plus rows)."""
        from berth.images.usage import images_usage

        iu = images_usage(self.store, per_image=True)
        recs = {r.id: r for r in self.image_service.list()}
        images = []
        for u in iu.images:
            rec = recs.get(u.id)
            if rec is None:
                continue
            images.append({"Id": u.id, "RepoTags": rec.tags, "Created": rec.created,
                           "Size": u.size, "SharedSize": u.shared_size,
                           "UniqueSize": u.unique_size, "Containers": u.containers})
        images.sort(key=lambda i: -i["Created"])
        sizes = {r["id"]: r["size_rw"] for r in self.store.db.query(
            "SELECT id, size_rw FROM containers")}
        nvol = {r["container_id"]: r["n"] for r in self.store.db.query(
            "SELECT container_id, COUNT(*) AS n FROM container_volumes GROUP BY container_id")}
        containers = [{"Record": rec, "SizeRw": sizes.get(rec.id) or 0,
                       "LocalVolumes": nvol.get(rec.id, 0)}
                      for rec in self.containers(all=True)]
        vsvc = self.volume_service
        used = vsvc.in_use()
        links: dict[str, int] = {}
        for r in self.store.db.query("SELECT volume_name, COUNT(DISTINCT container_id) AS n "
                                     "FROM container_volumes GROUP BY volume_name"):
            links[r["volume_name"]] = r["n"]
        volumes = [{"Name": v.name, "Links": links.get(v.name, 0), "Size": vsvc.size(v),
                    "InUse": v.name in used} for v in vsvc.list()]
        from berth.build.cache import BuildCache

        cache = BuildCache(self.store).entries()
        return {"Images": images, "Containers": containers, "Volumes": volumes,
                "BuildCache": cache}

    def info(self) -> dict[str, Any]:
        """``docker info``: every key of the API's SystemInfo (:mod:`berth.sysinfo`)."""
        from berth.sysinfo import runtimes_on_path, system_info

        base = self._info()
        return system_info(self.root, base, runtimes_on_path(), base["DefaultRuntime"])

    def _info(self) -> dict[str, Any]:
        from berth import __version__

        db = self.store.db
        counts = {t: db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"]
                  for t in ("images", "containers", "layers")}
        running = db.one("SELECT COUNT(*) AS n FROM containers WHERE status='running'")["n"]
        paused = db.one("SELECT COUNT(*) AS n FROM containers WHERE status='paused'")["n"]
        info: dict[str, Any] = {
            "ServerVersion": __version__,
            "Root": self.root,
            "RunRoot": self.runroot,
            "Driver": "overlay",
            "Images": counts["images"],
            "Layers": counts["layers"],
            "Containers": counts["containers"],
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": counts["containers"] - running - paused,
            "DefaultNetwork": "bridge",
            "OperatingSystem": _os_name(),
            "KernelVersion": os.uname().release,
            "Architecture": os.uname().machine,
            "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
            "Storage": self.storage_info(),
            **self._container_info(),
        }
        from berth.procs import rootless  # rootless: flag, ID maps, limits (berth.rootless)

        if rootless():
            from berth.rootless.info import info as rootless_info

            extra = rootless_info()
            info["Warnings"] += extra.pop("RootlessWarnings")
            info.update(extra)
            from berth.rootless.pasta import usable

            info["DefaultNetwork"] = "pasta" if usable() is None else "none"
        return info

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

        with self._adding():
            results = pull(self.store, name, platform=platform, all_tags=all_tags,
                           tls_verify=tls_verify, progress=progress,
                           max_concurrent=max_concurrent)
            self._touch(*(r.image_id for r in results))
        for r in results:
            self._image_event("pull", r.reference.familiar)
        return results

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

        results = push(self.store, name, all_tags=all_tags, tls_verify=tls_verify,
                       progress=progress, max_concurrent=max_concurrent,
                       compression=Compression(compression_format,
                                               compression_level).or_config(self.root))
        for r in results:
            self._image_event("push", r.reference.familiar)
        self._touch(*(self.image_service.resolve(str(r.reference)) for r in results))
        return results

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

    def _image_for_run(self, name: str, notify: Any = None, *, policy: str = "missing",
                       platform: str | None = None) -> str:
        """Image ID for ``run``/``create``; ``--pull`` policy (Docker's default: pull a
        missing image), ``--platform`` checked against a local image or passed to pull."""
        from berth.errors import NotFound
        from berth.oci import reference

        if policy != "always":
            try:
                image_id = self.image_service.resolve(name)
            except NotFound:
                pass
            else:
                if platform:
                    self._check_platform(name, image_id, platform)
                return image_id
        # not stored: it must be a well-formed reference before we say we will pull it
        familiar = reference.parse(name).with_default_tag().familiar
        if policy == "never":
            raise NotFound(f"No such image: {familiar}", exit_code=125)
        if notify is not None and policy != "always":
            notify(f"Unable to find image '{familiar}' locally")
        pull = getattr(self, "pull", None)
        if pull is None:
            raise NotFound(f"No such image: {familiar}", exit_code=125)
        pull(name, platform=platform)
        return self.image_service.resolve(name)

    def _check_platform(self, name: str, image_id: str, platform: str) -> None:
        """Docker: a local image of another platform is an error, not silently used."""
        from berth.errors import InvalidArgument

        parts = platform.lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"\"{platform}\": unknown operating system or "
                                  "architecture: invalid argument")
        cfg = self.image_service.config(image_id)
        actual = [cfg.get("os") or "linux", cfg.get("architecture") or "amd64"]
        if cfg.get("variant"):
            actual.append(cfg["variant"])
        if parts[:2] != actual[:2] or (len(parts) == 3 and parts != actual):
            raise InvalidArgument(f"image with reference {name} was found but does not match "
                                  f"the specified platform: wanted {platform}, actual: "
                                  f"{'/'.join(actual)}")

    def container_create(self, opts: Any, *, notify: Any = None, keep_mounted: bool = False):  # type: ignore[no-untyped-def]
        """``create``: a container row, its dirs and OCI bundle (nothing runs yet).

        ``--cidfile`` is refused up front when it exists (Docker's guard against two runs
        sharing one) and written atomically once the container exists."""
        cidfile = getattr(opts, "cidfile", None)
        if cidfile and os.path.exists(cidfile):
            from berth.errors import InvalidArgument

            raise InvalidArgument(f"Container ID file found, make sure the other container "
                                  f"isn't running or delete {cidfile}")
        try:
            with self._adding():
                image_id = self._image_for_run(opts.image, notify,
                                               policy=getattr(opts, "pull", "missing"),
                                               platform=getattr(opts, "platform", None))
                self._touch(image_id)
                rec = self.container_service.create(opts, image_id, keep_mounted=keep_mounted)
        finally:
            self._drop_unpacked_blobs()
        self.container_service.emit_event("create", rec)
        if cidfile:
            _write_cidfile(cidfile, rec.id, lambda: self.container_service.remove(
                rec.id, force=True, volumes=True))
        return rec

    def container_run(self, opts: Any, *, notify: Any = None, stdin_fd: int | None = None,
                      stdout_fd: int = 1, stderr_fd: int = 2,
                      detach_keys: bytes | None = None):  # type: ignore[no-untyped-def]
        """``run``: create + start; foreground returns ``(record, exit code or None)``.

        ``detach_keys`` (from :func:`berth.container.detachkeys.parse`) replaces Docker's
        ctrl-p,ctrl-q for a tty session."""
        from berth.errors import PortAllocated

        svc = self.container_service
        rec = self.container_create(opts, notify=notify, keep_mounted=True)
        try:
            if opts.detach:
                svc.start(rec.id)
                return rec, None
            code = svc.run_attached(rec, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                                    stderr_fd=stderr_fd, **_keys(detach_keys))
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
                                 stdout_fd: int = 1, stderr_fd: int = 2,
                                 detach_keys: bytes | None = None) -> int | None:
        svc = self.container_service
        rec = svc.get(name)
        if rec.running:
            return svc.attach(name, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                              stderr_fd=stderr_fd, **_keys(detach_keys))
        return svc.run_attached(rec, stdin_fd=stdin_fd, stdout_fd=stdout_fd,
                                stderr_fd=stderr_fd, **_keys(detach_keys))

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

    def container_update(self, name: str, opts: Any) -> None:
        """``update``: resources (live) and restart policy; ``opts`` an UpdateOptions."""
        from berth.container.update import update

        update(self.container_service, name, opts)

    def container_healthcheck(self, name: str, *, loop: bool = False
                              ) -> dict[str, Any] | None:
        """One health probe now (``healthcheck run``); the container's new State.Health.

        ``loop`` is the container's own health loop asking: None tells it to end."""
        return self.container_service.health_probe(name, loop=loop)

    def container_exec(self, name: str, cmd: list[str], **kw: Any) -> int | None:
        return self.container_service.exec(name, cmd, **kw)

    def container_logs(self, name: str, *, follow: bool = False, tail: int | None = None,
                       since: float | None = None, until: float | None = None,
                       cancel: Any = None):  # type: ignore[no-untyped-def]
        """(stream, datetime, line) records; with ``follow`` until the container exits."""
        from datetime import datetime

        from berth.container.logs import read_logs

        svc = self.container_service
        rec = svc.get(name)
        if (rec.config.get("HostConfig", {}).get("LogConfig") or {}).get("Type") == "none":
            from berth.errors import InvalidArgument

            raise InvalidArgument("configured logging driver does not support reading",
                                  exit_code=1)
        tz = UTC
        return read_logs(rec.log_path, follow=follow, tail=tail,
                         since=datetime.fromtimestamp(since, tz) if since else None,
                         until=datetime.fromtimestamp(until, tz) if until else None,
                         stop=_either(svc.is_done(rec), cancel))

    def container_inspect(self, name: str, *, size: bool = False) -> dict[str, Any]:
        from berth.container.views import inspect

        rec = self.container_service.get(name)
        layers = self.image_service.layers(rec.image_id)
        lowers = [self.store.layers.diff_dir(r["chain_id"]) for r in reversed(layers)]
        sizes = None
        if size:  # inspect -s: the writable layer, and it plus the image (Docker's pair)
            from berth.store.fsutil import tree_size

            rw = tree_size(rec.upper)
            sizes = (rw, rw + sum(r["size"] for r in layers))
        data = inspect(rec, lowers, size=sizes)
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

    def system_migrate(self) -> list[str]:
        """Podman's rootless ``system migrate``: stop running containers, then the pause
        process, so the next command makes a new user namespace (after an ``/etc/subuid``
        change). Returns the IDs stopped; as root there is no pause process: nothing to do.
        """
        from berth.procs import rootless

        if not rootless():
            return []
        stopped = [rec.id for rec in self.container_service.list() if rec.running]
        for cid in stopped:
            self.container_service.stop(cid)
        self._stop_pause()
        return stopped

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

    def container_cp(self, name: str, path: str, host: str | BinaryIO, *,
                     to_container: bool, follow_link: bool = False, archive: bool = False):  # type: ignore[no-untyped-def]
        """``cp``: ``host`` is a host path, or a binary stream for ``-`` (a tar either way).

        Returns a :class:`~berth.container.copy.CopyResult` (bytes of tar moved). Paths
        resolve against the container's mount table (volumes, binds, tmpfs) as the
        container sees it (:mod:`berth.container.mountview`).
        """
        from berth.container import copy as cp
        from berth.container.mountview import in_container_view

        rec, merged = self._rootfs(name)

        def copy(root: str):  # type: ignore[no-untyped-def]
            if to_container:
                if isinstance(host, str):
                    return cp.copy_to_container(root, host, path, follow=follow_link,
                                                archive=archive, container=name)
                return cp.extract_to_container(root, host, path, archive=archive,
                                               container=name)
            if isinstance(host, str):
                return cp.copy_from_container(root, path, host, follow=follow_link,
                                              archive=archive, container=name)
            return cp.archive_from_container(root, path, host, follow=follow_link,
                                             container=name)

        return in_container_view(rec, merged, copy)

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
        from berth.procs import rootless

        if rootless():  # no per-container cgroup to read (berth.rootless)
            from berth.errors import BerthError
            from berth.rootless.cgroups import delegated, stats_error

            if not delegated():
                raise BerthError(stats_error())
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
        svc.emit_event("commit", rec)
        with self._adding():
            result = commit(
                self.store, rec, base_config=self.store.content.read(rec.image_id),
                base_layers=self.image_service.layers(rec.image_id), tags=tags,
                author=author, message=message, changes=list(changes), pause=pause,
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
        rec, made = self.volume_service.create(name, driver=driver, labels=labels,
                                               options=options)
        if made:
            self.store.events.emit("volume", "create", rec.name, {"driver": rec.driver})
        return rec

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
        gone = self.volume_service.remove(name, force=force)
        if gone:
            self.store.events.emit("volume", "destroy", name, {"driver": "local"})
        return gone

    def volume_prune(self, *, all: bool = False,  # noqa: A002 - docker's flag name
                     filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Unused volumes (anonymous only unless ``all``): (removed names, bytes freed)."""
        filters = filters or {}
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        if filters.get("all"):
            all = any(v.lower() in ("1", "true") for v in filters["all"])  # noqa: A001
        removed, space = self.volume_service.prune(all_unused=all, labels=labels)
        for name in removed:
            self.store.events.emit("volume", "destroy", name, {"driver": "local"})
        return removed, space

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
        net = self.network_service.create(name, **kw)
        self._network_event("create", net.id, net.name, net.driver)
        return net

    def networks(self, *, filters: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
        """``network ls``: bridge, host, none and user networks; Docker's filters."""
        from berth.network.filters import build_predicate

        pred = build_predicate(filters or {})
        return [n for n in self.network_service.list() if pred(n)]

    def network_inspect(self, name: str) -> dict[str, Any]:
        return self.network_service.inspect(name)

    def network_remove(self, name: str):  # type: ignore[no-untyped-def]
        net = self.network_service.remove(name)
        self._network_event("destroy", net.id, net.name, net.driver)
        return net

    def network_prune(self, *, filters: dict[str, list[str]] | None = None) -> list[str]:
        """User networks no container is attached to: their names."""
        from berth.units import parse_timestamp

        filters = filters or {}
        until = min((parse_timestamp(v) for v in filters.get("until", [])), default=None)
        labels = filters.get("label", []) + ["!" + v for v in filters.get("label!", [])]
        removed = self.network_service.prune(until=until, labels=labels)
        for name in removed:
            self._network_event("destroy", name, name, "bridge")
        return removed

    def network_connect(self, network: str, container: str, *,
                        aliases: list[str] = (), ip: str | None = None) -> None:  # type: ignore[assignment]
        rec = self.container(container)
        self.network_service.connect(network, rec, aliases=list(aliases), ip=ip)
        self._network_event("connect", network, network, "bridge", container=rec.id)

    def network_disconnect(self, network: str, container: str, *,
                           force: bool = False) -> None:
        rec = self.container(container)
        self.network_service.disconnect(network, rec)
        self._network_event("disconnect", network, network, "bridge", container=rec.id)

    def container_ports(self, name: str):  # type: ignore[no-untyped-def]
        """Published ports of a running container (Engine API ``Ports`` entries)."""
        rec = self.container(name)
        return self._port_view().display_ports(rec) if self._has_netns(rec) else []

    def ports_column(self, rec: Any) -> str:
        """``ps`` PORTS for one container record (empty unless it runs on a network)."""
        from berth.network.ports import format_ports_column

        if not self._has_netns(rec) or rec.status not in ("running", "paused"):
            return ""
        return format_ports_column(self._port_view().display_ports(rec))

    def _port_view(self) -> Any:
        """Who knows a container's forwards: the network service, or pasta (rootless)."""
        from berth.procs import rootless

        if rootless():
            from berth.rootless.pasta import PastaNetwork

            return PastaNetwork(self.runroot)
        return self.network_service

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
    def build(self, context: str | BinaryIO | None, *, dockerfile: str = "Dockerfile",
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
            try:
                with self._adding(), self.store.ingesting():
                    # held shared for the whole build: a GC waits, so no finished step's
                    # image (dangling until the end) can go from under the steps after it
                    result = session.run()
            finally:
                self._drop_unpacked_blobs()
            self._touch(*self._ancestry(result.image_id))  # the FROM image is one of them
        finally:
            ctx.close()
        for t in result.tags:
            self._image_event("tag", t)
        return result

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

    # -- events (berth.store.events; read by ``berth events`` and ``GET /events``) ----------
    def _image_event(self, action: str, ref: str) -> None:
        self.store.events.emit("image", action, ref, {"name": ref})

    def _removed_events(self, result: RemoveResult) -> None:
        for ref in result.untagged:
            self._image_event("untag", ref)
        for image_id in result.deleted:
            self._image_event("delete", image_id)

    def _network_event(self, action: str, net_id: str, name: str, driver: str,
                       **extra: str) -> None:
        self.store.events.emit("network", action, net_id,
                               {"name": name, "type": driver, **extra})

    def events(self, *, since: float | None = None, until: float | None = None,
               filters: dict[str, list[str]] | None = None):  # type: ignore[no-untyped-def]
        """Stored events in order; ``filters`` as ``docker events --filter``."""
        from berth.store.events import build_predicate

        return self.store.events.read(since=since, until=until,
                                      match=build_predicate(filters or {}))


def _either(first: Any, second: Any) -> Any:
    """``stop`` callbacks: the first, or either of two when a caller adds its own."""
    return first if second is None else (lambda: first() or second())


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return os.uname().sysname


def _keys(detach_keys: bytes | None) -> dict[str, bytes]:
    """Pass ``detach_keys`` on only when given, so the session keeps Docker's default."""
    return {} if detach_keys is None else {"detach_keys": detach_keys}


def _write_cidfile(path: str, cid: str, undo: Any) -> None:
    """The container ID into ``path`` (temp file + rename); on failure the container goes."""
    from berth.errors import InvalidArgument

    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(cid)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        undo()
        raise InvalidArgument(f"failed to create the container ID file: open {path}: "
                              f"{(e.strerror or '').lower()}") from None
