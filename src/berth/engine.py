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
import platform
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
        return self.image_service.prune(all_unused=all, until=until,
                                        label_filters=filters.get("label", []))

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
            {"Type": "Local Volumes", "TotalCount": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
            {"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
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
            "DefaultNetwork": "none",
            "OperatingSystem": _os_name(),
            "KernelVersion": platform.release(),
            "Architecture": platform.machine(),
            "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        }

    # -- registries ---------------------------------------------------------------------------
    def pull(self, name: str, *, platform: str | None = None, all_tags: bool = False,
             tls_verify: bool = True, progress: Any = None,
             max_concurrent: int = 3) -> list[Any]:
        """``docker pull``: returns one :class:`~berth.registry.client.pull.PullResult` per tag."""
        from berth.registry.client.pull import pull

        return pull(self.store, name, platform=platform, all_tags=all_tags,
                    tls_verify=tls_verify, progress=progress, max_concurrent=max_concurrent)

    def push(self, name: str, *, all_tags: bool = False, tls_verify: bool = True,
             progress: Any = None, max_concurrent: int = 3) -> list[Any]:
        """``docker push``: returns one :class:`~berth.registry.client.push.PushResult` per tag."""
        from berth.registry.client.push import push

        return push(self.store, name, all_tags=all_tags, tls_verify=tls_verify,
                    progress=progress, max_concurrent=max_concurrent)

    def login(self, server: str | None, username: str, password: str, *,
              tls_verify: bool = True) -> str:
        """Verify credentials against the registry and store them; returns its domain."""
        from berth.registry.client.login import login

        return login(server, username, password, root=self.root, tls_verify=tls_verify)

    def logout(self, server: str | None) -> tuple[str, bool]:
        """Forget stored credentials: (domain, whether there were any)."""
        from berth.registry.client.login import logout

        return logout(server)


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()
