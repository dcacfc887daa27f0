"""``berth system boot``: after a reboot, start what the restart policies want running.

berth has no daemon that could come back up with the machine, so a restart policy cannot
act on its own across a reboot: conmon is gone, its exit command never ran, and the rows
that said running are reconciled as Exited (exit code 255) by the next command that reads
them. This hook — run once at boot by ``contrib/systemd/berth-restart.service``, as Podman's
``podman-restart.service`` runs ``podman start --all --filter restart-policy=always`` —
applies Docker's rules for a daemon start:

* ``always``: started, even if it had been stopped by the user;
* ``unless-stopped``: started unless the user had stopped it;
* ``on-failure[:N]``: started if its last exit was non-zero (a lost run counts as 255) and
  the retry count is not used up, unless the user had stopped it;
* ``no``: left as it is.

Running it again (or while containers run) starts nothing twice: a running container is
left alone. Without the hook such containers simply show Exited until started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import BerthError
from . import restart

if TYPE_CHECKING:  # pragma: no cover
    from .records import ContainerRecord
    from .service import ContainerService


@dataclass
class BootResult:
    started: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, error)


def wanted(rec: ContainerRecord) -> bool:
    """Whether the container's restart policy brings it back when the engine comes up."""
    policy = restart.from_dict(rec.config.get("HostConfig", {}).get("RestartPolicy"))
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not rec.manual_stop
    if policy.name == "on-failure":
        return restart.decide(policy, rec.exit_code or 0, rec.restart_count, rec.manual_stop)
    return False


def boot(svc: ContainerService) -> BootResult:
    """Reconcile every container (``list`` does) and start the ones the policy wants."""
    res = BootResult()
    for rec in reversed(svc.list()):  # oldest first, as they were created
        if rec.status not in ("exited", "created") or rec.started_at is None:
            continue
        if not wanted(rec):
            continue
        try:
            svc.start(rec.id)
            res.started.append(rec.name)
        except BerthError as e:
            res.failed.append((rec.name, str(e)))
    return res
