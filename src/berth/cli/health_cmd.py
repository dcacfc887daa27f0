"""``berth healthcheck run CONTAINER``: run a container's health check now (Podman's command).

Prints nothing and exits 0 when the probe leaves the container healthy (or still
starting); prints ``unhealthy`` and exits 1 otherwise. The container's health loop calls
it with the hidden ``--loop`` flag, and ends when told to (exit 3).
"""

from __future__ import annotations

from berth.cli.common import out, run_group
from berth.cli.main import Ctx
from berth.cli.parser import Parser


def run(ctx: Ctx, argv: list[str]) -> int:
    from berth.container.health import STALE_LOOP

    p = Parser("berth healthcheck run", "Run the health check of a container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("--loop", action="store_true", help="(internal) from the health loop")
    a = p.parse(argv)
    health = ctx.engine.container_healthcheck(a.container, loop=a.loop)
    if health is None:
        return STALE_LOOP
    if health["Status"] == "unhealthy" or (health["Log"] and health["Log"][-1]["ExitCode"]):
        out("unhealthy")
        return 1
    return 0


def healthcheck(ctx: Ctx, argv: list[str]) -> int:
    return run_group(ctx, argv, group="healthcheck", title="Manage health checks on "
                     "containers", subs={"run": run})
