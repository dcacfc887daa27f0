"""``berth network ...`` and ``berth port``: thin adapters over the Engine's network API.

Output follows Docker: ``network create`` prints the new ID, ``rm`` echoes each name as
given, ``ls`` is the NETWORK ID/NAME/DRIVER/SCOPE table, ``prune`` lists
``Deleted Networks:``; errors go to stderr as ``Error: ...`` with exit 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from berth.cli.common import confirm, err, out, run_group
from berth.cli.main import Ctx
from berth.cli.parser import Parser, add_format, parse_filters
from berth.container.create_options import parse_key_values
from berth.errors import BerthError, InvalidArgument

LS_COLUMNS = [("NETWORK ID", "ID"), ("NAME", "Name"), ("DRIVER", "Driver"),
              ("SCOPE", "Scope")]
LS_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
              "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
              "CreatedAt": "CREATED AT"}


def create(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth network create", "Create a network")
    p.add_argument("-d", "--driver", default="bridge")
    p.add_argument("--subnet", action="append", default=[])
    p.add_argument("--gateway", action="append", default=[])
    p.add_argument("--ip-range", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    p.add_argument("-o", "--opt", action="append", default=[])
    p.add_argument("--internal", action="store_true")
    p.add_argument("name", metavar="NETWORK")
    a = p.parse(argv)
    if len(a.subnet) > 1 or len(a.gateway) > 1 or len(a.ip_range) > 1:
        raise InvalidArgument("berth bridge networks take one --subnet/--gateway/--ip-range")
    net = ctx.engine.network_create(
        a.name, driver=a.driver, subnet=a.subnet[0] if a.subnet else None,
        gateway=a.gateway[0] if a.gateway else None,
        ip_range=a.ip_range[0] if a.ip_range else None, internal=a.internal,
        labels=parse_key_values(a.label), options=parse_key_values(a.opt, "option"))
    out(net.id)
    return 0


def ls(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import format_rows
    from berth.network.filters import KEYS
    from berth.network.records import ls_row

    p = Parser("berth network ls", "List networks")
    p.add_argument("-f", "--filter", action="append", default=[])
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--no-trunc", action="store_true")
    add_format(p)
    a = p.parse(argv)
    nets = ctx.engine.networks(filters=parse_filters(a.filter, KEYS, p.prog))
    from berth.cli.output import LabeledRow

    rows: list[dict[str, Any]] = [LabeledRow(ls_row(n, trunc=not a.no_trunc), n.labels) for n in nets]
    if a.quiet:
        out("\n".join(r["ID"] for r in rows))
        return 0
    out(format_rows(rows, LS_COLUMNS, a.format, headers=LS_HEADERS))
    return 0


def inspect(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.inspect_cmd import inspect as inspect_any

    p = Parser("berth network inspect", "Display detailed information on one or more "
               "networks")
    p.add_argument("-f", "--format")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    a = p.parse(argv)
    return inspect_any(ctx, ["--type", "network", *(["-f", a.format] if a.format else []),
                             *a.names])


def rm(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth network rm", "Remove one or more networks")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("names", nargs="+", metavar="NETWORK")
    a = p.parse(argv)
    return _each(a.names, ctx.engine.network_remove, missing_ok=a.force)


def _each(names: list[str], fn: Callable[[str], object], *, missing_ok: bool = False) -> int:
    from berth.errors import NotFound

    failed = False
    for n in names:
        try:
            fn(n)
        except NotFound as e:
            if not missing_ok:
                err(f"Error: {e}")
                failed = True
            continue
        except BerthError as e:
            err(f"Error: {e}")
            failed = True
            continue
        out(n)
    return 1 if failed else 0


def prune(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth network prune", "Remove all unused networks")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("--filter", action="append", default=[])
    a = p.parse(argv)
    filters = parse_filters(a.filter, {"until", "label", "label!"}, p.prog)
    if not a.force:
        if not confirm("WARNING! This will remove all custom networks not used by at "
                        "least one container."):
            return 0
    gone = ctx.engine.network_prune(filters=filters)
    if gone:
        out("Deleted Networks:\n" + "\n".join(gone))
    return 0


def connect(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth network connect", "Connect a container to a network")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--ip")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    a = p.parse(argv)
    ctx.engine.network_connect(a.network, a.container, aliases=a.alias, ip=a.ip)
    return 0


def disconnect(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth network disconnect", "Disconnect a container from a network")
    p.add_argument("-f", "--force", action="store_true")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")
    a = p.parse(argv)
    ctx.engine.network_disconnect(a.network, a.container, force=a.force)
    return 0


SUBCOMMANDS: dict[str, Callable[[Ctx, list[str]], int]] = {
    "create": create, "ls": ls, "list": ls, "inspect": inspect, "rm": rm, "remove": rm,
    "prune": prune, "connect": connect, "disconnect": disconnect,
}


def network(ctx: Ctx, argv: list[str]) -> int:
    """``berth network SUBCOMMAND``."""
    return run_group(ctx, argv, group="network", title="Manage networks", subs=SUBCOMMANDS,
                     listed=("connect", "create", "disconnect", "inspect", "ls", "prune", "rm"))


def port(ctx: Ctx, argv: list[str]) -> int:
    """``berth port CONTAINER [PRIVATE_PORT[/PROTO]]``: Docker's ``80/tcp -> 0.0.0.0:8080``."""
    from berth.network.ports import format_port_lines

    p = Parser("berth port", "List port mappings or a specific mapping for the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("private_port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    a = p.parse(argv)
    ports = ctx.engine.container_ports(a.container)
    out("\n".join(format_port_lines(ports, a.private_port, a.container)))
    return 0
