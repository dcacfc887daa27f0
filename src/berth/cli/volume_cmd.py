"""``berth volume create|ls|inspect|rm|prune``: Docker's flags, columns and messages.

Thin adapters over the Engine's volume methods; the rules (names, in-use, what prune
takes) live in :mod:`berth.volumes`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from berth.cli.common import confirm, out, run_group
from berth.cli.main import Ctx
from berth.cli.parser import Parser, add_filter, add_format, parse_filters
from berth.errors import BerthError, InvalidArgument

VOLUME_COLUMNS = [("DRIVER", "Driver"), ("VOLUME NAME", "Name")]
VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
                  "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                  "Size": "SIZE"}


def volume(ctx: Ctx, argv: list[str]) -> int:
    """``berth volume SUBCOMMAND``."""
    subs: dict[str, Callable[[Ctx, list[str]], int]] = {
        "create": create, "ls": ls, "list": ls, "inspect": inspect, "rm": rm,
        "remove": rm, "prune": prune}
    return run_group(ctx, argv, group="volume", title="Manage volumes", subs=subs,
                     listed=("create", "inspect", "ls", "prune", "rm"))


def _pairs(items: list[str], flag: str, need_value: bool) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k or (need_value and not eq):
            raise InvalidArgument(f"invalid argument \"{item}\" for \"{flag}\" flag: invalid "
                                  "key value pair format")
        out[k] = v
    return out


def create(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth volume create", "Create a volume")
    p.add_argument("name", nargs="?", metavar="VOLUME")
    p.add_argument("--name", dest="name_flag", help=None)
    p.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    p.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    p.add_argument("-o", "--opt", action="append", default=[],
                   help="Set driver specific options")
    a = p.parse(argv)
    if a.name and a.name_flag and a.name != a.name_flag:
        raise InvalidArgument("conflicting options: cannot specify a volume-name through "
                              "both --name and as a positional arg")
    rec = ctx.engine.volume_create(a.name or a.name_flag or None, driver=a.driver,
                                   labels=_pairs(a.label, "--label", False),
                                   options=_pairs(a.opt, "-o, --opt", True))
    out(rec.name)
    return 0


def _row(rec: Any) -> dict[str, Any]:
    return {"Name": rec.name, "Driver": rec.driver, "Scope": "local",
            "Mountpoint": rec.mountpoint, "Links": "N/A", "Size": "N/A",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(rec.labels.items()))}


def ls(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import format_rows
    from berth.volumes.filters import VOLUME_FILTERS

    p = Parser("berth volume ls", "List volumes")
    p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    add_filter(p)
    add_format(p)
    a = p.parse(argv)
    filters = parse_filters(a.filter, VOLUME_FILTERS, p.prog)
    from berth.cli.output import LabeledRow

    rows: list[dict[str, Any]] = [LabeledRow(_row(v), v.labels)
                                  for v in ctx.engine.volumes(filters=filters)]
    out(format_rows(rows, VOLUME_COLUMNS, a.format, quiet=a.quiet, quiet_key="Name",
                     headers=VOLUME_HEADERS))
    return 0


def inspect(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.inspect_cmd import inspect as inspect_any

    p = Parser("berth volume inspect", "Display detailed information on one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--format", default=None, help="Format output using a Go template")
    a = p.parse(argv)
    return inspect_any(ctx, ["--type", "volume", *(["--format", a.format] if a.format else []),
                             *a.names])


def rm(ctx: Ctx, argv: list[str]) -> int:
    p = Parser("berth volume rm", "Remove one or more volumes")
    p.add_argument("names", nargs="+", metavar="VOLUME")
    p.add_argument("-f", "--force", action="store_true",
                   help="Force the removal of one or more volumes")
    a = p.parse(argv)
    failed = False
    for n in a.names:
        try:
            ctx.engine.volume_remove(n, force=a.force)
        except BerthError as e:
            sys.stderr.write(f"Error: {e}\n")
            failed = True
            continue
        out(n)
    return 1 if failed else 0


def prune(ctx: Ctx, argv: list[str]) -> int:
    from berth.units import human_size

    p = Parser("berth volume prune", "Remove unused local volumes")
    p.add_argument("-a", "--all", action="store_true",
                   help="Remove all unused volumes, not just anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    add_filter(p, short=False)
    a = p.parse(argv)
    filters = parse_filters(a.filter, {"label", "label!", "all"}, p.prog)
    if not a.force:
        what = "all local volumes" if a.all else "anonymous local volumes"
        if not confirm(f"WARNING! This will remove {what} not used by at least one "
                        "container."):
            return 0
    names, space = ctx.engine.volume_prune(all=a.all, filters=filters)
    if names:
        out("Deleted Volumes:\n" + "\n".join(names) + "\n\n")
    out(f"Total reclaimed space: {human_size(space)}")
    return 0
