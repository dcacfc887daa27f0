"""The container record and where a container's files live: the contract between the
ContainerService and the commands built on it (cp, diff, export, stats, top, commit).

On disk, per container ``<root>/containers/<id>/``:
    upper/ work/ merged/      overlay upperdir, workdir and the mounted rootfs
    config.json               the OCI bundle (the container dir *is* the bundle)
    ctr.log                   conmon's k8s-file log
    hosts hostname resolv.conf  files bind-mounted into the container
and per container in the run dir ``<runroot>/containers/<id>/``: exit files, conmon pid
file, persist dir; attach sockets under the short ``<runroot>/s/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

RUNNING_STATES = ("running", "paused", "restarting")


@dataclass
class ContainerRecord:
    id: str                      # 64 hex, no prefix
    name: str                    # without the leading "/"
    image_id: str                # sha256:...
    image_name: str              # what the user typed (``busybox``)
    created: float
    config: dict[str, Any]       # create options: Cmd, Entrypoint, Env, WorkingDir, User, ...
    status: str = "created"      # created|running|paused|restarting|exited|dead|removing
    pid: int | None = None
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    oom_killed: bool = False
    restart_count: int = 0
    runtime: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    root: str = ""               # store root, to derive paths
    runroot: str = ""
    monitor: dict[str, Any] | None = None  # conmon handle of the current run (MonitorHandle)
    manual_stop: bool = False    # stopped by the user: restart policies leave it stopped
    error: str = ""              # why the last start failed (inspect State.Error)
    health: dict[str, Any] | None = None  # State.Health (berth.container.health)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATES

    @property
    def dir(self) -> str:
        return os.path.join(self.root, "containers", self.id)

    @property
    def upper(self) -> str:
        return os.path.join(self.dir, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.dir, "work")

    @property
    def merged(self) -> str:
        return os.path.join(self.dir, "merged")

    @property
    def bundle(self) -> str:
        return self.dir

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "ctr.log")

    @property
    def run_dir(self) -> str:
        return os.path.join(self.runroot, "containers", self.id)

    @classmethod
    def from_row(cls, row: Any, root: str, runroot: str) -> ContainerRecord:
        return cls(id=row["id"], name=row["name"], image_id=row["image_id"],
                   image_name=row["image_name"], created=row["created"],
                   config=json.loads(row["config"]), status=row["status"], pid=row["pid"],
                   exit_code=row["exit_code"], started_at=row["started_at"],
                   finished_at=row["finished_at"], oom_killed=bool(row["oom_killed"]),
                   restart_count=row["restart_count"], runtime=row["runtime"],
                   labels=json.loads(row["labels"]), root=root, runroot=runroot,
                   **_extra(row))


def _extra(row: Any) -> dict[str, Any]:
    """Columns added by later migrations (absent from rows of hand-made tables)."""
    keys = row.keys()
    out: dict[str, Any] = {}
    if "monitor" in keys and row["monitor"]:
        out["monitor"] = json.loads(row["monitor"])
    if "manual_stop" in keys:
        out["manual_stop"] = bool(row["manual_stop"])
    if "error" in keys:
        out["error"] = row["error"] or ""
    if "health" in keys and row["health"]:
        out["health"] = json.loads(row["health"])
    return out
