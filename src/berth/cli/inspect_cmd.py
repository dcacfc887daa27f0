"""``berth inspect``: Docker-compatible JSON for images (and containers, volumes, networks
once those services exist), with ``--format`` templates."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from berth.cli.main import Ctx
from berth.cli.parser import Parser
from berth.errors import BerthError, NotFound

# kind -> name of the Engine method returning the inspect object for one name
INSPECTORS: dict[str, str] = {
    "container": "container_inspect",
    "image": "image_inspect",
    "volume": "volume_inspect",
    "network": "network_inspect",
}


def _lookup(ctx: Ctx, kind: str | None, name: str, size: bool = False) -> dict[str, Any]:
    kinds = [kind] if kind else list(INSPECTORS)
    for k in kinds:
        fn: Callable[..., dict[str, Any]] | None = getattr(ctx.engine, INSPECTORS[k], None)
        if fn is None:
            continue
        try:
            return fn(name, size=True) if size and k == "container" else fn(name)
        except NotFound:
            continue
    raise NotFound(f"No such object: {name}" if not kind else f"No such {kind}: {name}")


def inspect(ctx: Ctx, argv: list[str]) -> int:
    from berth.cli.output import print_json

    p = Parser("berth inspect", "Return low-level information on berth objects")
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", default=None, help="Format output using a Go template")
    p.add_argument("--type", choices=list(INSPECTORS), default=None,
                   help="Return JSON for specified type")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    a = p.parse(argv)
    results, errors = [], []
    for n in a.names:
        try:
            results.append(_lookup(ctx, a.type, n, a.size))
        except BerthError as e:
            errors.append(e)
    if a.format and a.format != "json":
        from berth.cli.gotemplate import compile_template

        tpl = compile_template(a.format)
        for obj in results:
            sys.stdout.write(tpl.render(obj) + "\n")
    else:
        sys.stdout.write(print_json(results) + "\n")
    for err in errors:
        sys.stderr.write(f"Error: {err}\n")
    return 1 if errors else 0
