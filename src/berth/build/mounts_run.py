"""``RUN --mount``: turn parsed mount specs into OCI mounts for the step's container.

* ``bind`` — a context path (or a path in a stage's/image's rootfs), read-only by default;
  ``rw`` gets a throwaway overlay so writes never reach the source (BuildKit discards them);
* ``cache`` — a persistent dir per id under ``<root>/build/cache-mounts`` that survives
  builds (``builder prune -a`` removes it); ``sharing=locked`` serialises users by flock;
  with ``from=`` (and ``source=``) a new cache starts as a copy of that stage's or image's
  directory, resolved inside its rootfs like every other source;
* ``tmpfs`` — a fresh tmpfs;
* ``secret`` — the file given with ``build --secret id=...,src=...``, copied into the
  workspace with the requested mode/owner and bound read-only, or exported as an env var.
  Secrets never enter a layer or a cache key.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import shutil
from typing import TYPE_CHECKING, Any

from berth.build.plan import Step
from berth.build.workspace import Workspace
from berth.errors import DockerfileError, NotFound

if TYPE_CHECKING:  # pragma: no cover
    from berth.build.executor import BuildSession


def run_mounts(s: BuildSession, ws: Workspace, step: Step, workdir: str
               ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """OCI mounts for the step's ``--mount`` flags, plus env vars from ``secret,env=``."""
    mounts: list[dict[str, Any]] = []
    env: dict[str, str] = {}
    for i, m in enumerate(step.mounts):
        target = posixpath.normpath(posixpath.join(workdir, m.target)) if m.target else None
        where = f"Dockerfile:{step.line}"
        if m.type == "bind":
            src = _source_root(s, ws, m.from_stage, m.from_, i)
            try:
                host = s.scoped(src, m.source or "/") if src is not None \
                    else s.context_path(m.source or ".")
            except OSError:
                host = ""
            if not host or not os.path.lexists(host):
                raise NotFound(f"{where}: bind mount source {m.source or '.'} not found")
            if not m.readonly:
                host = _writable_copy(ws, host, i)
            mounts.append({"type": "bind", "source": host, "destination": target,
                           "ro": m.readonly})
        elif m.type == "cache":
            seed = None
            if m.from_ or m.from_stage is not None:  # BuildKit: the new cache starts as that
                try:
                    seed = s.scoped(_source_root(s, ws, m.from_stage, m.from_, i),
                                    m.source or "/")
                except OSError:
                    raise NotFound(f"{where}: cache mount source {m.source or '/'} not "
                                   "found") from None
            host = s.cache_mount(m.id or target or "", m.mode, m.uid, m.gid, seed=seed)
            if m.sharing == "locked":
                s.hold(_lock(host))
            mounts.append({"type": "bind", "source": host, "destination": target,
                           "ro": m.readonly})
        elif m.type == "tmpfs":
            opts = [f"size={m.size}"] if m.size else []
            mounts.append({"type": "tmpfs", "destination": target, "options": opts})
        elif m.type == "secret":
            src = s.secrets.get(m.id or "")
            if src is None or not os.path.isfile(src):
                if m.required:
                    raise NotFound(f"{where}: secret {m.id} not found")
                continue
            if m.env:
                with open(src, encoding="utf-8", errors="replace") as f:
                    env[m.env] = f.read()
            if target:
                copy = ws.path(f"secret-{i}")
                shutil.copyfile(src, copy)
                os.chown(copy, m.uid or 0, m.gid or 0)
                os.chmod(copy, 0o400 if m.mode is None else m.mode)
                mounts.append({"type": "bind", "source": copy, "destination": target,
                               "ro": True})
        elif m.type == "ssh":
            if m.required:
                raise DockerfileError(f"{where}: ssh mounts are not supported")
        else:  # pragma: no cover - parse_mount rejects other types
            raise DockerfileError(f"{where}: unsupported mount type {m.type}")
    return mounts, env


def _source_root(s: BuildSession, ws: Workspace, stage: int | None, ref: str | None,
                 i: int) -> str | None:
    """The mounted rootfs a ``from=`` names (None: the build context)."""
    if stage is None and not ref:
        return None
    image_id = s.stage_image(stage) if stage is not None else s.image_for(ref or "")
    return s.mounted_image(image_id)


def _writable_copy(ws: Workspace, host: str, i: int) -> str:
    """An overlay over ``host`` (a dir) or a copy (a file): writes go nowhere that lasts."""
    if os.path.isdir(host):
        from berth.container.rootfs import mount_overlay

        base = ws.path(f"rw-{i}")
        up, wk, mnt = (os.path.join(base, d) for d in ("upper", "work", "merged"))
        for d in (up, wk, mnt):
            os.makedirs(d)
        mount_overlay([host], up, wk, mnt)
        ws.track(mnt)
        return mnt
    copy = ws.path(f"rw-{i}")
    shutil.copy2(host, copy)
    return copy


def cache_dir_name(cache_id: str) -> str:
    return hashlib.sha256(cache_id.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _lock(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
