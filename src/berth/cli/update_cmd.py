"""``berth update [OPTIONS] CONTAINER...``: resources and restart policy, Docker's flags."""

from __future__ import annotations

from berth.cli.container_cmd import _each
from berth.cli.main import Ctx
from berth.cli.parser import Parser
from berth.errors import InvalidArgument


def update(ctx: Ctx, argv: list[str]) -> int:
    from berth.container.update import UpdateOptions
    from berth.units import parse_size

    p = Parser("berth update", "Update configuration of one or more containers")
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.add_argument("--cpus")
    p.add_argument("-c", "--cpu-shares", type=int)
    p.add_argument("--cpuset-cpus")
    p.add_argument("-m", "--memory")
    p.add_argument("--memory-swap")
    p.add_argument("--memory-reservation")
    p.add_argument("--pids-limit", type=int)
    p.add_argument("--restart")
    a = p.parse(argv)
    cpus = None
    if a.cpus is not None:
        try:
            cpus = float(a.cpus)
        except ValueError:
            raise InvalidArgument(f'invalid argument "{a.cpus}" for "--cpus" flag') from None
    swap = None
    if a.memory_swap is not None:
        swap = -1 if a.memory_swap == "-1" else parse_size(a.memory_swap)
    opts = UpdateOptions(
        cpus=cpus, cpu_shares=a.cpu_shares, cpuset_cpus=a.cpuset_cpus,
        memory=parse_size(a.memory) if a.memory is not None else None, memory_swap=swap,
        memory_reservation=parse_size(a.memory_reservation)
        if a.memory_reservation is not None else None,
        pids_limit=a.pids_limit, restart=a.restart)
    if opts.empty():
        raise InvalidArgument("you must provide one or more flags when using this command")
    return _each(a.containers, lambda n: ctx.engine.container_update(n, opts))
